//! Strict decoder: never panics; whatever it accepts re-encodes to the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mtp_protocol::cbor;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = cbor::from_slice(data) {
        let again = cbor::to_vec(&v).expect("a strictly decoded value re-encodes");
        assert_eq!(again, data, "strict decoding accepted a non-canonical encoding");
    }
});
