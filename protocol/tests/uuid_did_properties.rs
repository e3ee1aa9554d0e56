//! Property tests: MTP-UUID text ⇄ bytes is lossless (BIND-IX-02); the parsers of
//! MTP-UUIDs, DIDs, Multikeys, DID Documents and classifiers never panic.

use mtp_protocol::cbor::Value;
use mtp_protocol::identity::{AnyDid, Did, DidDocument, DidUrl, Multikey};
use mtp_protocol::taxonomy::{self, Classifier};
use mtp_protocol::uuid::{MtpUuid, ObjectType, UuidError};
use proptest::prelude::*;

fn object_type() -> impl Strategy<Value = ObjectType> {
    prop::sample::select(ObjectType::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn uuid_text_bytes_lossless(ty in object_type(), ts: u64, source: [u8; 6], random: [u8; 17]) {
        let id = MtpUuid::new(ty, ts, source, random);
        let text = id.to_string();
        prop_assert_eq!(text.len(), 67);
        prop_assert!(text.bytes().all(|c| c == b'-' || c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        let back = MtpUuid::parse(&text).unwrap();
        prop_assert_eq!(back, id);
        prop_assert_eq!(back.to_string(), text);
        prop_assert_eq!(MtpUuid::from_bytes(id.as_bytes()).unwrap(), id);
        prop_assert_eq!(MtpUuid::from_value(&id.to_value()).unwrap(), id);
        prop_assert_eq!((back.object_type(), back.timestamp_ns(), back.source(), back.random()),
            (Some(ty), ts, source, random));
    }

    #[test]
    fn uuid_from_bytes_accepts_exactly_the_valid_ids(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
        let valid = bytes.len() == 32 && bytes[0] >> 4 == 1 && (1..=9).contains(&(bytes[0] & 0xf));
        match MtpUuid::from_bytes(&bytes) {
            Ok(id) => {
                prop_assert!(valid);
                prop_assert_eq!(MtpUuid::parse(&id.to_string()).unwrap(), id);
            }
            Err(_) => prop_assert!(!valid),
        }
    }

    #[test]
    fn uuid_parse_never_panics(s in "\\PC{0,80}") {
        let _ = MtpUuid::parse(&s);
    }

    #[test]
    fn uuid_parse_near_misses(s in "[0-9a-fA-F\\-gz ]{67}") {
        // Valid iff it is the canonical rendering of what it parses to.
        match MtpUuid::parse(&s) {
            Ok(id) => prop_assert_eq!(id.to_string(), s),
            Err(e) => {
                let unexpected = matches!(e, UuidError::Reuse { .. } | UuidError::WrongLength { .. });
                prop_assert!(!unexpected, "{:?}", e);
            }
        }
    }

    #[test]
    fn did_round_trip(digest: [u8; 32]) {
        let did = Did::from_digest(digest);
        let back = Did::parse(did.as_str()).unwrap();
        prop_assert_eq!(back.digest(), digest);
        prop_assert!(AnyDid::parse(did.as_str()).is_ok());
        prop_assert!(DidUrl::parse(&did.url("key-1")).is_ok());
    }

    #[test]
    fn did_parsers_never_panic(s in "\\PC{0,120}") {
        let _ = Did::parse(&s);
        let _ = AnyDid::parse(&s);
        let _ = DidUrl::parse(&s);
        let _ = Did::parse(&format!("did:mtp:{s}"));
        let _ = Multikey::decode(&s);
        let _ = Multikey::decode(&format!("z{s}"));
        let _ = DidDocument::from_json(&s);
    }

    #[test]
    fn did_mtp_base58_ids(s in "[1-9A-HJ-NP-Za-km-z]{30,46}") {
        if let Ok(d) = Did::parse(&format!("did:mtp:{s}")) {
            let again = Did::from_digest(d.digest());
            prop_assert_eq!(again.as_str(), d.as_str());
        }
    }

    #[test]
    fn classifier_parse_never_panics(s in "\\PC{0,300}") {
        if let Ok(c) = Classifier::parse(&s) {
            prop_assert!(c.is_within(&c));
            prop_assert_eq!(c.normalized(), s.to_ascii_lowercase());
            prop_assert!(c.segments().len() <= 8);
        }
        let _ = taxonomy::is_iso8601_duration(&s);
        let _ = taxonomy::is_mime_type(&s);
        let _ = taxonomy::is_jurisdiction(&s);
    }

    #[test]
    fn classifier_containment(a in "[a-z0-9_]{1,8}", b in "[a-z0-9_]{1,8}") {
        let scope = Classifier::parse(&format!("compute.{a}")).unwrap();
        let child = Classifier::parse(&format!("compute.{a}.{b}")).unwrap();
        let sibling = Classifier::parse(&format!("compute.{a}{b}")).unwrap();
        prop_assert!(child.is_within(&scope));
        prop_assert!(!scope.is_within(&child));
        prop_assert!(!sibling.is_within(&scope));
        let upper = Classifier::parse(&child.as_str().to_ascii_uppercase()).unwrap();
        prop_assert!(upper.is_within(&scope));
        prop_assert!(!upper.is_canonical() || child.as_str() == upper.as_str());
    }

    #[test]
    fn quality_check_never_panics(keys in prop::collection::vec("[a-z_]{1,12}", 0..6), n: i64, f: f64) {
        let vals = [Value::Integer(n as i128), Value::Float(f), Value::text("P1D"), Value::Null];
        let q = Value::Map(keys.iter().zip(vals.iter().cycle())
            .map(|(k, v)| (Value::text(k.clone()), v.clone())).collect());
        for c in taxonomy::Category::ALL {
            let _ = taxonomy::check_quality(c, &q);
        }
    }
}
