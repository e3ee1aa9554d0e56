//! Every protocol object decoder on hostile bytes: never panics; whatever it accepts
//! re-encodes to the same bytes (deterministic, unknown fields preserved).
#![no_main]
use libfuzzer_sys::fuzz_target;
use mtp_protocol::primitives::{CborObject, Offer, Receipt, Request, Terms};

fn roundtrip<T: CborObject>(data: &[u8]) {
    if let Ok(obj) = T::from_cbor(data) {
        if let Ok(bytes) = obj.try_to_cbor() {
            assert_eq!(bytes, data, "{} did not re-encode identically", T::NAME);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    roundtrip::<Offer>(data);
    roundtrip::<Request>(data);
    roundtrip::<Terms>(data);
    roundtrip::<Receipt>(data);
    roundtrip::<mtp_protocol::error_record::MtpErrorRecord>(data);
});
