//! Property tests of the primitives and error objects (BIND IV-A, BIND VII, PROFILE G-02,
//! G-26, G-27): round trips, order independence, strict-decoder rejections, signatures,
//! JSON conversion, and no panics on arbitrary input.

mod strategies;

use mtp_protocol::cbor::{self, Value, mutate};
use mtp_protocol::crypto::{PublicKey, SignatureAlgorithm, SigningKey};
use mtp_protocol::error_record::{MtpErrorRecord, Notification};
use mtp_protocol::errors::{Coded, ErrorCode};
use mtp_protocol::identity::Did;
use mtp_protocol::primitives::json::{from_json, to_json};
use mtp_protocol::primitives::{
    CborObject, MultiSigned, Offer, Receipt, Request, SingleSigned, Terms,
};
use proptest::prelude::*;
use strategies::*;

/// Recursively shuffles every map's entries (xorshift on `state`).
fn shuffle(v: &Value, state: &mut u64) -> Value {
    let mut next = || {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    };
    match v {
        Value::Map(es) => {
            let mut es: Vec<(Value, Value)> =
                es.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            for i in (1..es.len()).rev() {
                let j = (next() % (i as u64 + 1)) as usize;
                es.swap(i, j);
            }
            Value::Map(
                es.into_iter()
                    .map(|(k, v)| (k, shuffle(&v, state)))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| shuffle(x, state)).collect()),
        Value::Tag(t, inner) => Value::Tag(*t, Box::new(shuffle(inner, state))),
        other => other.clone(),
    }
}

fn key(seed: u8) -> (SigningKey, PublicKey, Did) {
    let k = SigningKey::from_seed(SignatureAlgorithm::MlDsa65, &[seed; 32]);
    let pk = k.public_key();
    let did = Did::derive(SignatureAlgorithm::MlDsa65, pk.as_bytes()).expect("ML-DSA-65 key");
    (k, pk, did)
}

/// Adds `x_injected: 1` to the top-level map.
fn with_extra_field<T: CborObject>(x: &T) -> T {
    let Value::Map(mut es) = x.to_value() else {
        panic!("objects are maps")
    };
    es.push((Value::text("x_injected_after_signing"), Value::Integer(1)));
    T::from_value(&Value::Map(es)).expect("still valid")
}

fn check_codec<T: CborObject + PartialEq + std::fmt::Debug>(
    x: &T,
    seed: u64,
) -> Result<(), TestCaseError> {
    let bytes = x.to_cbor();
    let back = T::from_cbor(&bytes).map_err(|e| TestCaseError::fail(format!("decode: {e}")))?;
    prop_assert_eq!(&back, x);
    prop_assert_eq!(back.to_cbor(), bytes.clone());
    // Insertion order does not matter (BIND-IV-A-02, SPEC-VII-B-02).
    let mut state = seed | 1;
    let shuffled = shuffle(&x.to_value(), &mut state);
    prop_assert_eq!(cbor::to_vec(&shuffled).expect("encodable"), bytes.clone());
    // The strict decoder refuses every non-deterministic variant (BIND-IV-A-02..05).
    for (name, m) in [
        (
            "reorder",
            mutate::reorder_map_keys as fn(&[u8]) -> Option<Vec<u8>>,
        ),
        ("indefinite", mutate::indefinite_length),
        ("non-shortest int", mutate::non_shortest_int),
        ("non-shortest float", mutate::non_shortest_float),
        ("duplicate key", mutate::duplicate_key),
        ("length-first", mutate::length_first_order),
    ] {
        if let Some(bad) = m(&bytes) {
            prop_assert!(T::from_cbor(&bad).is_err(), "{} variant accepted", name);
        }
    }
    // JSON round trip (PROFILE G-27).
    let j = to_json(x).map_err(|e| TestCaseError::fail(format!("to_json: {e}")))?;
    let text = serde_json::to_string(&j).expect("serialisable");
    let j2: serde_json::Value = serde_json::from_str(&text).expect("parses");
    let back: T =
        from_json(&j2).map_err(|e| TestCaseError::fail(format!("from_json: {e}\n{text}")))?;
    prop_assert_eq!(&back, x);
    Ok(())
}

fn check_single_signed<T: SingleSigned + PartialEq + std::fmt::Debug>(
    mut x: T,
    flip: impl Fn(&mut T),
) -> Result<(), TestCaseError> {
    let (k, pk, _) = key(7);
    x.sign(&k, Some("did:mtp:x#key-1".into())).expect("sign");
    prop_assert!(x.verify_signature(&pk).is_ok());
    // Survives CBOR and JSON round trips (BIND-IV-C-03).
    let back = T::from_cbor(&x.to_cbor()).expect("decodes");
    prop_assert!(back.verify_signature(&pk).is_ok());
    let back: T = from_json(&to_json(&x).expect("json")).expect("from json");
    prop_assert!(back.verify_signature(&pk).is_ok());
    // A changed field breaks it (1100).
    let mut y = T::from_cbor(&x.to_cbor()).expect("decodes");
    flip(&mut y);
    let err = y
        .verify_signature(&pk)
        .expect_err("tampered object verifies");
    prop_assert_eq!(err.code(), ErrorCode::SignatureVerificationFailure);
    // An unknown field added after signing is covered too (PROFILE G-26).
    let z = with_extra_field(&x);
    prop_assert_eq!(
        z.verify_signature(&pk).map_err(|e| e.code()),
        Err(ErrorCode::SignatureVerificationFailure)
    );
    Ok(())
}

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
        check_single_signed(x, |o: &mut Offer| o.description.human.push('!'))?;
    }
    #[test]
    fn request_signature(x in arb_request()) {
        check_single_signed(x, |r: &mut Request| r.constraints.max_latency_ms = Some(r.constraints.max_latency_ms.unwrap_or(0).wrapping_add(1)))?;
    }
    #[test]
    fn receipt_signature(x in arb_receipt()) {
        check_single_signed(x, |r: &mut Receipt| r.timestamp = r.timestamp.add_secs(1).unwrap_or(mtp_protocol::time::Timestamp::UNIX_EPOCH))?;
    }
    #[test]
    fn error_record_signature(x in arb_error_record()) {
        check_single_signed(x, |r: &mut MtpErrorRecord| r.description.push('!'))?;
    }
    #[test]
    fn notification_signature(x in arb_notification()) {
        check_single_signed(x, |n: &mut Notification| n.timestamp = n.timestamp.add_secs(1).unwrap_or(mtp_protocol::time::Timestamp::UNIX_EPOCH))?;
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
