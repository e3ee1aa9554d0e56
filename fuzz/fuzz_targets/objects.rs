//! Every protocol object decoder on hostile bytes: never panics; whatever it accepts
//! re-encodes to the same bytes (deterministic, unknown fields preserved).
#![no_main]
use libfuzzer_sys::fuzz_target;
use mtp_protocol::attribution::{AttributionConfig, AttributionRecord};
use mtp_protocol::commitment::Mandate;
use mtp_protocol::discovery::{CapabilityManifest, IndexQuery, IndexQueryResponse, OfferRevocation};
use mtp_protocol::error_record::{MtpErrorRecord, Notification};
use mtp_protocol::negotiation::NegotiationMessage;
use mtp_protocol::primitives::{CborObject, Offer, Receipt, Request, Terms};
use mtp_protocol::verification::DisputeInitiationRecord;

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
    roundtrip::<MtpErrorRecord>(data);
    roundtrip::<Notification>(data);
    roundtrip::<NegotiationMessage>(data);
    roundtrip::<Mandate>(data);
    roundtrip::<CapabilityManifest>(data);
    roundtrip::<IndexQuery>(data);
    roundtrip::<IndexQueryResponse>(data);
    roundtrip::<OfferRevocation>(data);
    roundtrip::<DisputeInitiationRecord>(data);
    roundtrip::<AttributionRecord>(data);
    roundtrip::<AttributionConfig>(data);
});
