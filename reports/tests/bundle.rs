//! The certification bundle: builds deterministically, verifies, attests what it should;
//! any flipped byte, a re-signature under another key, a non-deterministic re-encoding or a
//! decision that does not follow from the verdicts is rejected.

mod common;

use mtp_protocol::cbor::{self, Value};
use mtp_protocol::crypto::{SignatureAlgorithm, SigningKey, sha256};
use mtp_reports::bundle::{
    self, BundleError, BundleInputs, BundleSigner, SIGNING_PREFIX, transcript_hash,
};
use mtp_reports::model::{Level, RunResults, Verdict};

const SEED_A: [u8; 32] = [7; 32];
const SEED_B: [u8; 32] = [8; 32];

fn inputs() -> BundleInputs {
    BundleInputs {
        scenario_files: vec![
            (
                "scenarios/examples/neg-round-timeout.yaml".into(),
                sha256(b"neg"),
            ),
            (
                "scenarios/examples/disc-offer-sig.yaml".into(),
                sha256(b"disc"),
            ),
        ],
        vector_files: vec![(
            "vectors/credentials/adc-mldsa65.cbor".into(),
            sha256(b"adc"),
        )],
        binary_sha256: sha256(b"mtp-cert binary"),
        iut_description: common::IUT_DESCRIPTION.into(),
        issued: "2026-03-06T09:05:00Z".into(),
    }
}

fn passing() -> RunResults {
    let mut s = common::scenarios();
    for r in &mut s {
        if r.level == Level::Must {
            r.verdict = Verdict::Pass;
        }
    }
    RunResults::new(common::header(), s, 1000)
}

fn build(results: &RunResults) -> Vec<u8> {
    bundle::build(results, &inputs(), &BundleSigner::from_seed(SEED_A)).unwrap()
}

/// Replaces `key` of a CBOR map.
fn set(map: &mut Value, key: &str, v: Value) {
    let Value::Map(entries) = map else {
        panic!("not a map")
    };
    let e = entries
        .iter_mut()
        .find(|(k, _)| k.as_text() == Some(key))
        .unwrap();
    e.1 = v;
}

/// Re-signs `payload` with the key of `seed`, putting `key_seed`'s public key and `did`
/// in the signature block.
fn resign(payload: Vec<u8>, seed: [u8; 32], did: &str) -> Vec<u8> {
    let key = SigningKey::from_seed(SignatureAlgorithm::MlDsa65, &seed);
    let mut msg = SIGNING_PREFIX.to_vec();
    msg.extend_from_slice(&payload);
    cbor::to_vec(&Value::map([
        ("payload", Value::Bytes(payload)),
        (
            "signature",
            Value::map([
                ("alg", Value::text("ML-DSA-65")),
                ("key", Value::Bytes(key.public_key().as_bytes().to_vec())),
                ("did", Value::text(did)),
                ("value", Value::Bytes(key.sign(&msg))),
            ]),
        ),
    ]))
    .unwrap()
}

fn payload_of(bytes: &[u8]) -> Value {
    let outer = cbor::from_slice(bytes).unwrap();
    cbor::from_slice(outer.get("payload").unwrap().as_bytes().unwrap()).unwrap()
}

#[test]
fn a_bundle_verifies_and_says_what_it_attests() {
    let fx = common::fixture();
    let bytes = build(&fx);
    assert_eq!(bytes, build(&fx), "deterministic");
    let v = bundle::verify(&bytes).unwrap();
    let signer = BundleSigner::from_seed(SEED_A);
    assert_eq!(v.operator_did, *signer.did());
    assert_eq!(v.operator_key, signer.public_key());
    assert!(!v.certified);
    assert_eq!(
        v.mandatory_not_passed,
        [
            "DISC-OFFER-SIG-001",
            "NEG-COUNTER-001",
            "NEG-ROUND-TIMEOUT-001"
        ]
    );
    assert_eq!(v.errors, ["NEG-ROUND-TIMEOUT-001"]);
    assert_eq!(v.reasons.len(), 3);
    assert!(v.reasons[0].starts_with("DISC-OFFER-SIG-001: applicable MUST scenario ended fail"));
    assert_eq!(v.run_seed, 42);
    assert_eq!(v.run_started, "2026-03-06T09:00:00Z");
    assert_eq!(v.run_finished, "2026-03-06T09:00:12.25Z");
    assert_eq!(v.ics, fx.header.ics);
    assert_eq!(v.iut_description, common::IUT_DESCRIPTION);
    assert_eq!(
        hex::encode(v.iut_description_sha256),
        fx.header.iut.description_sha256
    );
    assert_eq!(
        v.scenario_files[0].0,
        "scenarios/examples/disc-offer-sig.yaml"
    );
    assert_eq!(v.scenarios.len(), 6);
    for (s, r) in v.scenarios.iter().zip(&fx.results) {
        assert_eq!(s.id, r.scenario_id);
        assert_eq!((s.level, s.verdict, s.seed), (r.level, r.verdict, r.seed));
        assert_eq!(s.requirements, r.requirements);
        assert_eq!(s.transcript_sha256, transcript_hash(r).unwrap());
    }
    // The payload's own diagnostic notation (readable), then the whole bundle (payload as a
    // byte string, key and signature: byte-exact, deterministic signing).
    let payload = cbor::to_vec(&payload_of(&bytes)).unwrap();
    insta::assert_snapshot!(
        "bundle_payload_diag",
        cbor::diag::to_diag(&payload).unwrap()
    );
    insta::assert_snapshot!("bundle_diag", cbor::diag::to_diag(&bytes).unwrap());
    insta::assert_snapshot!("bundle_summary", v.to_string());
}

#[test]
fn certified_only_when_every_applicable_must_scenario_passed() {
    let v = bundle::verify(&build(&passing())).unwrap();
    assert!(v.certified, "{v}");
    assert!(v.reasons.is_empty());

    // A dry run never certifies.
    let mut dry = passing();
    dry.header.executor = "dry-run".into();
    let v = bundle::verify(&build(&dry)).unwrap();
    assert!(!v.certified);
    assert_eq!(v.reasons, ["dry run: no IUT was contacted"]);

    // An error in a SHOULD scenario: the run is incomplete, no certificate.
    let mut s = passing().results;
    let i = s.iter().position(|r| r.level == Level::Should).unwrap();
    s[i].verdict = Verdict::Error;
    let v = bundle::verify(&build(&RunResults::new(common::header(), s, 0))).unwrap();
    assert!(!v.certified);
    assert_eq!(v.errors, ["DISC-QUERY-LATENCY-001"]);

    // Nothing mandatory was run.
    let s: Vec<_> = passing()
        .results
        .into_iter()
        .filter(|r| r.level != Level::Must)
        .collect();
    let v = bundle::verify(&build(&RunResults::new(common::header(), s, 0))).unwrap();
    assert_eq!(v.reasons, ["no applicable MUST scenario was run"]);
}

#[test]
fn one_flipped_byte_anywhere_is_rejected() {
    let bytes = build(&common::fixture());
    for mask in [0x01u8, 0x80] {
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= mask;
            assert!(
                bundle::verify(&b).is_err(),
                "flipping byte {i} with {mask:#04x} was accepted"
            );
        }
    }
    // Truncated or extended.
    assert!(bundle::verify(&bytes[..bytes.len() - 1]).is_err());
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(bundle::verify(&longer).is_err());
}

#[test]
fn resigned_by_another_key_claiming_the_first_did_is_rejected() {
    let bytes = build(&common::fixture());
    let a = BundleSigner::from_seed(SEED_A);
    let b = BundleSigner::from_seed(SEED_B);
    let payload = cbor::to_vec(&payload_of(&bytes)).unwrap();
    let forged = resign(payload.clone(), SEED_B, a.did().as_str());
    assert!(matches!(
        bundle::verify(&forged),
        Err(BundleError::Did(
            mtp_protocol::identity::DidError::KeyMismatch { .. }
        ))
    ));
    // Signed by B under B's own DID, but the payload names A as the operator.
    let forged = resign(payload.clone(), SEED_B, b.did().as_str());
    assert!(matches!(
        bundle::verify(&forged),
        Err(BundleError::OperatorMismatch { .. })
    ));
    // Re-signing the same payload with A again gives a bundle that verifies.
    assert_eq!(resign(payload, SEED_A, a.did().as_str()), bytes);
}

#[test]
fn non_deterministic_encoding_is_rejected() {
    let bytes = build(&common::fixture());
    let reordered = cbor::mutate::reorder_map_keys(&bytes).unwrap();
    assert!(matches!(
        bundle::verify(&reordered),
        Err(BundleError::NotDeterministic { .. })
    ));
    // A validly signed payload that is itself not deterministically encoded.
    let payload = cbor::to_vec(&payload_of(&bytes)).unwrap();
    let bad = cbor::mutate::reorder_map_keys(&payload).unwrap();
    let a = BundleSigner::from_seed(SEED_A);
    assert!(matches!(
        bundle::verify(&resign(bad, SEED_A, a.did().as_str())),
        Err(BundleError::NotDeterministic { .. })
    ));
}

#[test]
fn a_signed_decision_that_does_not_follow_from_the_verdicts_is_rejected() {
    let bytes = build(&common::fixture());
    let mut payload = payload_of(&bytes);
    set(
        &mut payload,
        "decision",
        Value::map([
            ("certified", Value::Bool(true)),
            ("mandatory_not_passed", Value::Array(vec![])),
            ("errors", Value::Array(vec![])),
            ("reasons", Value::Array(vec![])),
        ]),
    );
    let a = BundleSigner::from_seed(SEED_A);
    let forged = resign(cbor::to_vec(&payload).unwrap(), SEED_A, a.did().as_str());
    assert!(matches!(
        bundle::verify(&forged),
        Err(BundleError::Decision(_))
    ));
}

#[test]
fn build_refuses_inconsistent_inputs() {
    let signer = BundleSigner::from_seed(SEED_A);
    let mut i = inputs();
    i.iut_description.push(' ');
    assert!(matches!(
        bundle::build(&common::fixture(), &i, &signer),
        Err(BundleError::IutDescription { .. })
    ));
    let mut i = inputs();
    i.vector_files.push(i.vector_files[0].clone());
    assert!(matches!(
        bundle::build(&common::fixture(), &i, &signer),
        Err(BundleError::DuplicatePath { .. })
    ));
    let mut i = inputs();
    i.issued = "yesterday".into();
    assert!(matches!(
        bundle::build(&common::fixture(), &i, &signer),
        Err(BundleError::Timestamp { .. })
    ));
}

#[test]
fn transcript_hash_covers_every_entry() {
    let r = common::fixture().results[1].clone();
    let h = transcript_hash(&r).unwrap();
    let mut changed = r.clone();
    changed.steps[1].transcript[0].diag.push(' ');
    assert_ne!(transcript_hash(&changed).unwrap(), h);
    let mut moved = r.clone();
    moved.steps[1].index = 5;
    assert_ne!(transcript_hash(&moved).unwrap(), h);
}
