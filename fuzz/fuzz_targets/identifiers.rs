//! MTP-UUID, did:mtp, Multikey, classifiers, tdate, DID Documents: never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mtp_protocol::{identity, taxonomy, time::Timestamp, uuid::MtpUuid};

fuzz_target!(|data: &[u8]| {
    let _ = MtpUuid::from_bytes(data);
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(id) = MtpUuid::parse(s) {
            assert_eq!(id.to_string(), s);
        }
        let _ = identity::Did::parse(s);
        let _ = identity::AnyDid::parse(s);
        let _ = identity::multikey::Multikey::decode(s);
        let _ = taxonomy::Classifier::parse(s);
        let _ = Timestamp::parse(s);
        if let Ok(doc) = identity::DidDocument::from_json(s) {
            let _ = doc.validate();
        }
    }
});
