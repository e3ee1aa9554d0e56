//! Property tests of the primitives and error objects (BIND IV-A, BIND VII, PROFILE G-02,
//! G-26, G-27): round trips, order independence, strict-decoder rejections, signatures,
//! JSON conversion, and no panics on arbitrary input.

mod strategies;

use mtp_protocol::cbor::Value;
use mtp_protocol::error_record::{MtpErrorRecord, Notification};
use mtp_protocol::errors::{Coded, ErrorCode};
use mtp_protocol::primitives::json::{from_json, to_json};
use mtp_protocol::primitives::{CborObject, MultiSigned, Offer, Receipt, Request, Terms};
use proptest::prelude::*;
use strategies::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn offer_codec(x in arb_offer(), seed in any::<u64>()) { check_codec(&x, seed)?; }
    #[test]
    fn request_codec(x in arb_request(), seed in any::<u64>()) { check_codec(&x, seed)?; }
    #[test]
    fn terms_codec(x in arb_terms(), seed in any::<u64>()) { check_codec(&x, seed)?; }
    #[test]
    fn receipt_codec(x in arb_receipt(), seed in any::<u64>()) { check_codec(&x, seed)?; }
    #[test]
    fn error_record_codec(x in arb_error_record(), seed in any::<u64>()) { check_codec(&x, seed)?; }
    #[test]
    fn notification_codec(x in arb_notification(), seed in any::<u64>()) { check_codec(&x, seed)?; }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn offer_signature(x in arb_offer()) {
        check_single_signed(x, ErrorCode::SignatureVerificationFailure, |o: &mut Offer| o.description.human.push('!'))?;
    }
    #[test]
    fn request_signature(x in arb_request()) {
        check_single_signed(x, ErrorCode::SignatureVerificationFailure, |r: &mut Request| r.constraints.max_latency_ms = Some(r.constraints.max_latency_ms.unwrap_or(0).wrapping_add(1)))?;
    }
    #[test]
    fn receipt_signature(x in arb_receipt()) {
        check_single_signed(x, ErrorCode::SignatureVerificationFailure, |r: &mut Receipt| r.timestamp = r.timestamp.add_secs(1).unwrap_or(mtp_protocol::time::Timestamp::UNIX_EPOCH))?;
    }
    #[test]
    fn error_record_signature(x in arb_error_record()) {
        check_single_signed(x, ErrorCode::SignatureVerificationFailure, |r: &mut MtpErrorRecord| r.description.push('!'))?;
    }
    #[test]
    fn notification_signature(x in arb_notification()) {
        check_single_signed(x, ErrorCode::SignatureVerificationFailure, |n: &mut Notification| n.timestamp = n.timestamp.add_secs(1).unwrap_or(mtp_protocol::time::Timestamp::UNIX_EPOCH))?;
    }

    #[test]
    fn terms_signatures(mut x in arb_terms()) {
        let (k1, pk1, d1) = key(1);
        let (k2, pk2, d2) = key(2);
        x.participants.truncate(2);
        x.participants[0].agent_id = d1.clone();
        x.participants[1].agent_id = d2.clone();
        x.signatures.clear();
        x.add_signature(d1.as_str(), &k1, None).expect("sign");
        x.add_signature(d2.as_str(), &k2, None).expect("sign");
        let resolve = |agent: &str, _: Option<&str>| {
            if agent == d1.as_str() { Some(pk1.clone()) } else if agent == d2.as_str() { Some(pk2.clone()) } else { None }
        };
        prop_assert!(x.check_signature_set().is_ok());
        prop_assert!(x.verify_signatures(resolve).is_ok());
        let back = Terms::from_cbor(&x.to_cbor()).expect("decodes");
        prop_assert!(back.verify_signatures(resolve).is_ok());
        let back: Terms = from_json(&to_json(&x).expect("json")).expect("from json");
        prop_assert!(back.verify_signatures(resolve).is_ok());
        // Tampering, reordering and extra fields all fail.
        let mut y = x.clone();
        y.expiration = y.expiration.add_secs(1).unwrap_or(mtp_protocol::time::Timestamp::UNIX_EPOCH);
        prop_assert_eq!(y.verify_signatures(resolve).map_err(|e| e.code()), Err(ErrorCode::SignatureVerificationFailure));
        let mut y = x.clone();
        y.signatures.swap(0, 1);
        prop_assert!(y.verify_signatures(resolve).is_err());
        prop_assert!(y.check_signature_set().is_err());
        let z = with_extra_field(&x);
        prop_assert!(z.verify_signatures(resolve).is_err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn from_value_never_panics(v in arb_cbor_value()) {
        let _ = Offer::from_value(&v);
        let _ = Request::from_value(&v);
        let _ = Terms::from_value(&v);
        let _ = Receipt::from_value(&v);
        let _ = MtpErrorRecord::from_value(&v);
        let _ = Notification::from_value(&v);
    }

    #[test]
    fn from_cbor_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Offer::from_cbor(&bytes);
        let _ = Request::from_cbor(&bytes);
        let _ = Terms::from_cbor(&bytes);
        let _ = Receipt::from_cbor(&bytes);
        let _ = MtpErrorRecord::from_cbor(&bytes);
        let _ = Notification::from_cbor(&bytes);
    }

    /// Valid objects with one field replaced by an arbitrary value: no panic, and any
    /// accepted result re-encodes.
    #[test]
    fn perturbed_objects_never_panic(x in arb_terms(), i in any::<prop::sample::Index>(), v in arb_cbor_value()) {
        let Value::Map(mut es) = x.to_value() else { unreachable!() };
        let j = i.index(es.len());
        es[j].1 = v;
        if let Ok(t) = Terms::from_value(&Value::Map(es)) {
            let _ = t.to_cbor();
        }
    }
}
