//! DID Update Transactions, version history, registry and dual-path resolution
//! (BIND-II-B-01..05; PROFILE G-32, G-39).

use mtp_protocol::crypto::{
    AlgorithmSupportProfile, DecapsulationKey, KemAlgorithm, SignatureAlgorithm, SigningKey,
};
use mtp_protocol::errors::{Coded, ErrorCode, Severity};
use mtp_protocol::identity::Did;
use mtp_protocol::identity::document::{AgentDocumentParams, DidDocument, SyncEndpoint};
use mtp_protocol::identity::resolution::*;
use mtp_protocol::primitives::common::{CborObject, SingleSigned};
use mtp_protocol::time::Timestamp;
use mtp_protocol::wire::Frame;

fn key(alg: SignatureAlgorithm, seed: u8) -> SigningKey {
    SigningKey::from_seed(alg, &[seed; 32])
}

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_unix_secs(1_780_000_000 + secs).expect("in range")
}

/// An agent document for `did` listing `keys` (authentication + assertion, `#key-1…`).
/// `new_agent` derives the DID from the first key, so for rotated documents the derived
/// id is rewritten to the original DID.
fn document(did: Option<&Did>, keys: &[&SigningKey]) -> DidDocument {
    let kem = DecapsulationKey::from_seed(KemAlgorithm::MlKem768, &[7; 64]);
    let p = AgentDocumentParams {
        signing_keys: keys
            .iter()
            .map(|k| (k.algorithm(), k.public_key().as_bytes().to_vec()))
            .collect(),
        kem_keys: vec![(KemAlgorithm::MlKem768, kem.encapsulation_key())],
        sync: SyncEndpoint {
            host: "agent.example".into(),
            port: 7443,
            tls_certificate_sha256: [0xab; 32],
        },
        nats_host: "nats.example".into(),
        nats_port: 4222,
        nats_cluster: "mtp-test".into(),
        delegation_chain: vec![],
        algorithms: AlgorithmSupportProfile::full(),
    };
    let doc = DidDocument::new_agent(&p).expect("document");
    match did {
        None => doc,
        Some(did) => {
            let derived = doc.did().expect("did");
            let json = doc
                .to_json()
                .replace(derived.method_specific_id(), did.method_specific_id());
            DidDocument::from_json(&json).expect("rewritten document")
        }
    }
}

fn signed(mut u: DidUpdate, k: &SigningKey, key_id: &str) -> DidUpdate {
    u.sign(k, Some(key_id.to_owned())).expect("sign");
    u
}

struct Chain {
    did: Did,
    a: SigningKey,
    b: SigningKey,
    c: SigningKey,
    updates: Vec<DidUpdate>,
}

/// v1 = key A (initial), v2 = key B (signed by A), v3 = key C (signed by B).
fn rotation_chain() -> Chain {
    let a = key(SignatureAlgorithm::MlDsa65, 1);
    let b = key(SignatureAlgorithm::MlDsa65, 2);
    let c = key(SignatureAlgorithm::MlDsa65, 3);
    let d1 = document(None, &[&a]);
    let did = d1.did().expect("did");
    let kid = did.url("key-1");
    let u1 = signed(DidUpdate::genesis(&d1, ts(0)).expect("genesis"), &a, &kid);
    let u2 = signed(
        DidUpdate::successor(&u1, &document(Some(&did), &[&b]), ts(100)).expect("u2"),
        &a,
        &kid,
    );
    let u3 = signed(
        DidUpdate::successor(&u2, &document(Some(&did), &[&c]), ts(200)).expect("u3"),
        &b,
        &kid,
    );
    Chain {
        did,
        a,
        b,
        c,
        updates: vec![u1, u2, u3],
    }
}

#[test]
fn rotation_chain_of_three_versions() {
    let ch = rotation_chain();
    let mut reg = Registry::new();
    for (i, u) in ch.updates.iter().enumerate() {
        assert_eq!(reg.publish(u.clone()).expect("publish"), i as u64 + 1);
    }
    let h = reg.history(&ch.did).expect("indexed");
    assert_eq!(h.version(), 3);
    let kid = ch.did.url("key-1");
    let pk = |k: &SigningKey| k.public_key();
    assert_eq!(h.assertion_key_at(&kid, 1), Some(pk(&ch.a)));
    assert_eq!(h.assertion_key_at(&kid, 2), Some(pk(&ch.b)));
    assert_eq!(h.assertion_key_at(&kid, 3), Some(pk(&ch.c)));
    assert_eq!(h.version_at_time(ts(150)), Some(2));
    assert_eq!(h.version_at_time(ts(-1)), None);

    // Latest and pinned resolution, both verified client-side.
    let req = DidResolutionRequest::new(ch.did.clone(), None);
    let resp = reg.resolve(&req).expect("resolve");
    assert_eq!(resp.version, 3);
    let resolved = verify_response(&resp, &req).expect("consistent");
    assert_eq!(resolved.document, *h.latest());
    let req1 = DidResolutionRequest::new(ch.did.clone(), Some(1));
    let resp1 = reg.resolve(&req1).expect("resolve v1");
    assert_eq!(resp1.history.as_ref().map(Vec::len), Some(1));
    let r1 = verify_response(&resp1, &req1).expect("v1 consistent");
    assert_eq!(r1.document, *h.document_at(1).expect("v1"));

    // Unknown version / DID → 1200.
    let e = reg
        .resolve(&DidResolutionRequest::new(ch.did.clone(), Some(4)))
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::DidResolutionTimeout);
    let other = document(None, &[&key(SignatureAlgorithm::MlDsa65, 9)])
        .did()
        .expect("did");
    let e = reg
        .resolve(&DidResolutionRequest::new(other, None))
        .unwrap_err();
    assert!(matches!(e, ResolutionError::NotIndexed { .. }));
}

#[test]
fn rotated_out_key_still_verifies_against_its_version() {
    let ch = rotation_chain();
    let h = DidHistory::from_updates(&ch.updates).expect("history");
    let kid = ch.did.url("key-1");
    let msg = b"signed under version 1";
    let sig = ch.a.sign(msg);
    // Version 1 key verifies; the current key does not.
    let v1 = h.keys(Some(1)).assertion_key(&kid).expect("v1 key");
    assert!(v1.verify(msg, &sig).is_ok());
    let latest = h.keys(None).assertion_key(&kid).expect("latest key");
    assert!(latest.verify(msg, &sig).is_err());
    // Every version's key material stays available.
    let all = h.assertion_key_versions(&kid);
    assert_eq!(all.len(), 3);
    assert!(
        all.iter()
            .any(|(v, k)| *v == 1 && k.verify(msg, &sig).is_ok())
    );
    // Pinned by time: the version in force when the signature was made.
    let v = h.version_at_time(ts(50)).expect("in force");
    assert!(
        h.keys(Some(v))
            .assertion_key(&kid)
            .expect("key")
            .verify(msg, &sig)
            .is_ok()
    );
    // A key of another DID is never returned.
    assert!(
        h.keys(None)
            .assertion_key("did:mtp:11111111111111111111111111111111#key-1")
            .is_none()
    );
}

#[test]
fn update_signed_by_non_current_key_is_refused() {
    let ch = rotation_chain();
    let kid = ch.did.url("key-1");
    let mut reg = Registry::new();
    reg.publish(ch.updates[0].clone()).expect("v1");
    reg.publish(ch.updates[1].clone()).expect("v2");
    // v3 signed by A, rotated out in v2.
    let mut u3 = ch.updates[2].clone();
    u3.sign(&ch.a, Some(kid.clone())).expect("sign");
    let e = reg.publish(u3).unwrap_err();
    assert_eq!(e.code(), ErrorCode::SignatureVerificationFailure, "{e}");
    // v3 signed by the future key C.
    let mut u3 = ch.updates[2].clone();
    u3.sign(&ch.c, Some(kid.clone())).expect("sign");
    assert_eq!(
        reg.publish(u3).unwrap_err().code(),
        ErrorCode::SignatureVerificationFailure
    );
    // A key id that is not an authentication key of the current version.
    let mut u3 = ch.updates[2].clone();
    u3.sign(&ch.b, Some(ch.did.url("key-9"))).expect("sign");
    let e = reg.publish(u3).unwrap_err();
    assert!(
        matches!(e, ResolutionError::UnknownSigningKey { .. }),
        "{e}"
    );
    assert_eq!(e.code(), ErrorCode::SignatureVerificationFailure);
    // Tampering after signing.
    let mut u3 = ch.updates[2].clone();
    u3.timestamp = ts(201);
    assert_eq!(
        reg.publish(u3).unwrap_err().code(),
        ErrorCode::SignatureVerificationFailure
    );
    // The registry is unchanged; the genuine update still applies.
    assert_eq!(reg.publish(ch.updates[2].clone()).expect("v3"), 3);
}

#[test]
fn genesis_must_be_signed_by_the_initial_key() {
    let a = key(SignatureAlgorithm::MlDsa65, 1);
    let x = key(SignatureAlgorithm::MlDsa65, 5);
    // A document for A's DID whose only key is X: not derivable → refused.
    let did = document(None, &[&a]).did().expect("did");
    let foreign = document(Some(&did), &[&x]);
    let u = signed(
        DidUpdate::genesis(&foreign, ts(0)).expect("genesis"),
        &x,
        &did.url("key-1"),
    );
    let e = DidHistory::genesis(u).unwrap_err();
    assert_eq!(e.code(), ErrorCode::SignatureVerificationFailure, "{e}");
    // Document with A and X, genesis signed by X (#key-2): X does not derive the DID.
    let both = document(None, &[&a, &x]);
    let u = signed(
        DidUpdate::genesis(&both, ts(0)).expect("genesis"),
        &x,
        &did.url("key-2"),
    );
    let e = DidHistory::genesis(u).unwrap_err();
    assert!(matches!(e, ResolutionError::InitialKey { .. }), "{e}");
    assert_eq!(e.code(), ErrorCode::SignatureVerificationFailure);
    // Without key_id the initial key is found.
    let mut u = DidUpdate::genesis(&both, ts(0)).expect("genesis");
    u.sign(&a, None).expect("sign");
    assert!(DidHistory::genesis(u).is_ok());
}

#[test]
fn gap_duplicate_and_broken_hash_are_refused() {
    let ch = rotation_chain();
    let mut reg = Registry::new();
    // Registering with version 2 first.
    let e = reg.publish(ch.updates[1].clone()).unwrap_err();
    assert!(matches!(
        e,
        ResolutionError::VersionOutOfSequence {
            expected: 1,
            found: 2
        }
    ));
    reg.publish(ch.updates[0].clone()).expect("v1");
    // Gap: v3 before v2.
    let e = reg.publish(ch.updates[2].clone()).unwrap_err();
    assert!(matches!(
        e,
        ResolutionError::VersionOutOfSequence {
            expected: 2,
            found: 3
        }
    ));
    assert_eq!(e.code(), ErrorCode::AuthorityAttestationInvalid);
    reg.publish(ch.updates[1].clone()).expect("v2");
    // Duplicate v2.
    let e = reg.publish(ch.updates[1].clone()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::AuthorityAttestationInvalid);
    // Wrong previous_hash (re-signed so only the chain is wrong).
    let kid = ch.did.url("key-1");
    let mut u3 = ch.updates[2].clone();
    u3.previous_hash = [9; 32];
    u3.sign(&ch.b, Some(kid.clone())).expect("sign");
    let e = reg.publish(u3).unwrap_err();
    assert!(matches!(
        e,
        ResolutionError::PreviousHashMismatch { version: 3 }
    ));
    assert_eq!(e.code(), ErrorCode::AuthorityAttestationInvalid);
    // Timestamp regression.
    let mut u3 = ch.updates[2].clone();
    u3.timestamp = ts(50);
    u3.sign(&ch.b, Some(kid.clone())).expect("sign");
    assert!(matches!(
        reg.publish(u3).unwrap_err(),
        ResolutionError::TimestampRegression { .. }
    ));
    // A document for another DID.
    let other = document(None, &[&key(SignatureAlgorithm::MlDsa65, 8)]);
    let mut u3 = DidUpdate::successor(&ch.updates[1], &other, ts(300)).expect("u3");
    u3.sign(&ch.b, Some(kid)).expect("sign");
    let e = reg.publish(u3).unwrap_err();
    assert!(
        matches!(e, ResolutionError::DocumentIdMismatch { .. }),
        "{e}"
    );
    // Replaying an empty history.
    assert_eq!(
        DidHistory::from_updates(&[]).unwrap_err(),
        ResolutionError::EmptyHistory
    );
}

#[test]
fn slh_dsa_may_sign_updates() {
    // PROFILE G-39: v2 adds an SLH-DSA authentication key, which signs v3 (which rotates
    // A out; `new_agent` wants an ML-DSA key first, so v3 lists C then the SLH-DSA key).
    let a = key(SignatureAlgorithm::MlDsa65, 1);
    let c = key(SignatureAlgorithm::MlDsa65, 3);
    let s = key(SignatureAlgorithm::SlhDsaSha2_192s, 4);
    let d1 = document(None, &[&a]);
    let did = d1.did().expect("did");
    let u1 = signed(
        DidUpdate::genesis(&d1, ts(0)).expect("g"),
        &a,
        &did.url("key-1"),
    );
    let u2 = signed(
        DidUpdate::successor(&u1, &document(Some(&did), &[&a, &s]), ts(10)).expect("u2"),
        &a,
        &did.url("key-1"),
    );
    let u3 = signed(
        DidUpdate::successor(&u2, &document(Some(&did), &[&c, &s]), ts(20)).expect("u3"),
        &s,
        &did.url("key-2"),
    );
    let h = DidHistory::from_updates(&[u1, u2, u3]).expect("history");
    assert_eq!(h.version(), 3);
}

#[test]
fn cbor_and_frames_round_trip() {
    let ch = rotation_chain();
    for u in &ch.updates {
        let bytes = u.to_cbor();
        assert_eq!(&DidUpdate::from_cbor(&bytes).expect("decode"), u);
        assert_eq!(
            u.hash().expect("hash"),
            mtp_protocol::crypto::sha256(&bytes)
        );
    }
    assert_eq!(
        ch.updates[1].previous_hash,
        ch.updates[0].hash().expect("h")
    );

    let mut reg = Registry::new();
    for u in &ch.updates {
        reg.publish(u.clone()).expect("publish");
    }
    let req = DidResolutionRequest::new(ch.did.clone(), Some(2));
    let frame =
        Frame::decode(&req.to_frame().expect("frame").encode().expect("enc")).expect("decode");
    assert_eq!(frame.frame_type, "did_resolution_request");
    let req2 = DidResolutionRequest::from_frame(&frame).expect("request");
    assert_eq!(req2, req);
    let resp = reg.resolve(&req2).expect("resolve");
    let frame =
        Frame::decode(&resp.to_frame().expect("frame").encode().expect("enc")).expect("decode");
    let resp2 = DidResolutionResponse::from_frame(&frame).expect("response");
    assert_eq!(resp2, resp);
    assert!(verify_response(&resp2, &req).is_ok());
    // A request frame is not a response.
    let e = DidResolutionResponse::from_frame(&req.to_frame().expect("frame")).unwrap_err();
    assert_eq!(e.code(), ErrorCode::SchemaViolation);

    // Unknown fields are preserved and signed.
    let mut u = ch.updates[0].clone();
    u.unknown.push((
        mtp_protocol::cbor::Value::text("x_note"),
        mtp_protocol::cbor::Value::text("kept"),
    ));
    let back = DidUpdate::from_cbor(&u.to_cbor()).expect("decode");
    assert_eq!(back.unknown, u.unknown);
    assert!(
        DidHistory::genesis(back).is_err(),
        "unknown field is signed"
    );

    // Malformed objects: 0103.
    let mut v = ch.updates[0].to_value();
    if let mtp_protocol::cbor::Value::Map(m) = &mut v {
        m.retain(|(k, _)| k.as_text() != Some("previous_hash"));
    }
    let e = DidUpdate::from_value(&v).unwrap_err();
    assert_eq!(e.code(), ErrorCode::SchemaViolation);
}

#[test]
fn client_detects_inconsistent_responses() {
    let ch = rotation_chain();
    let h = DidHistory::from_updates(&ch.updates).expect("history");
    let req = DidResolutionRequest::new(ch.did.clone(), None);
    let good = DidResolutionResponse::from_history(&h, None).expect("resp");
    assert!(verify_response(&good, &req).is_ok());

    // Document not the latest update's document.
    let mut bad = good.clone();
    bad.document = ch.updates[0].document.clone();
    assert_eq!(
        verify_response(&bad, &req).unwrap_err().code(),
        ErrorCode::AuthorityAttestationInvalid
    );
    // Claims version 2 but carries 3 updates.
    let mut bad = good.clone();
    bad.version = 2;
    assert_eq!(
        verify_response(&bad, &req).unwrap_err().code(),
        ErrorCode::AuthorityAttestationInvalid
    );
    // Requested version 1, got 3.
    let r1 = DidResolutionRequest::new(ch.did.clone(), Some(1));
    assert!(verify_response(&good, &r1).is_err());
    // Forged middle update.
    let mut bad = good.clone();
    if let Some(hist) = bad.history.as_mut() {
        hist[1].timestamp = ts(101);
    }
    assert_eq!(
        verify_response(&bad, &req).unwrap_err().code(),
        ErrorCode::SignatureVerificationFailure
    );
    // Peer response without history: valid only when self-certifying (initial key listed).
    let peer = DidResolutionResponse {
        did: ch.did.clone(),
        document: ch.updates[0].document.clone(),
        version: 1,
        history: None,
        unknown: vec![],
    };
    assert!(verify_response(&peer, &req).is_ok());
    let rotated = DidResolutionResponse {
        document: ch.updates[2].document.clone(),
        version: 3,
        ..peer
    };
    assert!(verify_response(&rotated, &req).is_err());
}

#[test]
fn dual_path_registry_first_then_peer() {
    let ch = rotation_chain();
    let mut reg = Registry::new();
    for u in &ch.updates {
        reg.publish(u.clone()).expect("publish");
    }
    let h = reg.history(&ch.did).expect("h").clone();
    let req = DidResolutionRequest::new(ch.did.clone(), None);

    // Registry up: resolved on the primary path, the peer is never asked.
    let mut r = DualPathResolution::new(req.clone());
    let NextAction::Query { path, request } = r.next_action() else {
        panic!("expected a query")
    };
    assert_eq!(path, ResolutionPath::Registry);
    r.on_registry_result(PathOutcome::Response(
        reg.resolve(&request).expect("resolve"),
    ));
    match r.next_action() {
        NextAction::Resolved { path, resolved } => {
            assert_eq!(path, ResolutionPath::Registry);
            assert_eq!(resolved.version, 3);
        }
        other => panic!("{other:?}"),
    }

    // Not indexed / unavailable / timeout → peer fallback.
    for outcome in [
        PathOutcome::NotIndexed,
        PathOutcome::Unavailable,
        PathOutcome::Timeout,
    ] {
        let mut r = DualPathResolution::new(req.clone());
        r.on_peer_result(PathOutcome::Timeout); // ignored: the peer was not asked yet
        r.on_registry_result(outcome);
        let NextAction::Query { path, request } = r.next_action() else {
            panic!("expected the peer query")
        };
        assert_eq!(path, ResolutionPath::Peer);
        let answer = DidResolutionResponse::from_history(&h, request.version).expect("peer");
        r.on_peer_result(PathOutcome::Response(answer));
        assert!(matches!(
            r.next_action(),
            NextAction::Resolved {
                path: ResolutionPath::Peer,
                ..
            }
        ));
    }

    // Both paths down → 1200, Recoverable.
    let mut r = DualPathResolution::new(req.clone());
    r.on_registry_result(PathOutcome::Unavailable);
    r.on_peer_result(PathOutcome::Timeout);
    let NextAction::Failed(e) = r.next_action() else {
        panic!("expected failure")
    };
    assert_eq!(e.code(), ErrorCode::DidResolutionTimeout);
    assert_eq!(e.code().severity(), Severity::Recoverable);

    // An invalid registry answer is final (no fallback).
    let mut bad = reg.resolve(&req).expect("resolve");
    bad.document = ch.updates[0].document.clone();
    let mut r = DualPathResolution::new(req);
    r.on_registry_result(PathOutcome::Response(bad));
    assert!(matches!(r.next_action(), NextAction::Failed(_)));
}
