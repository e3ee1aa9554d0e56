//! gRPC frames and NATS envelopes from a hostile peer: never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mtp_protocol::wire;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = wire::Frame::decode(data) {
        assert_eq!(f.encode().expect("decoded frame re-encodes"), data);
    }
    let _ = wire::peek_sender(data);
});
