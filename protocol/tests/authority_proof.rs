//! Bulletproofs authority proofs (BIND-III-C-02, BIND-III-C-03, BIND-III-C-04,
//! BIND-III-C-I01, SPEC-III-A-1-08; PROFILE G-36, G-04).
//!
//! Run with `--profile ci`: an unoptimised Bulletproof takes seconds.

use std::time::Instant;

use mtp_protocol::errors::{Coded, ErrorCode};
use mtp_protocol::identity::authority_proof::{
    AuthorityProofError, MaxValueCommitment, MinorAmount, PROOF_LEN, ProofContext, ZkRangeProof,
    prove, verify,
};
use mtp_protocol::primitives::common::{Number, PriceSpec, PriceUnit};
use mtp_protocol::uuid::{MtpUuid, ObjectType};

const SECRET: [u8; 32] = [0x42; 32];
const CRED_A: &str = "urn:uuid:00000000-0000-4000-8000-00000000000a";
const CRED_B: &str = "urn:uuid:00000000-0000-4000-8000-00000000000b";
const COUNTERPARTY: &str = "did:mtp:z6MkCounterparty";

fn request_id(n: u8) -> MtpUuid {
    MtpUuid::new(
        ObjectType::Request,
        1_750_000_000_000_000_000,
        [n; 6],
        [n; 17],
    )
}

fn usd(amount: Number) -> PriceSpec {
    PriceSpec::new(amount, PriceUnit::Iso4217("USD".into()))
}

/// Limit 5 000.00 USD = 500 000 minor units.
fn limit() -> MinorAmount {
    MinorAmount::new(500_000, "USD")
}

fn ctx(req: u8, counterparty: &str, proof_value: &str) -> ProofContext {
    ProofContext::new(&request_id(req), counterparty, proof_value)
}

#[test]
fn valid_proof_verifies_and_timings() {
    let c = MaxValueCommitment::commit(&limit(), &SECRET, CRED_A).unwrap();
    let amount = usd(Number::Float(1234.56));
    let cx = ctx(1, COUNTERPARTY, "zProofValueA");
    // Warm-up (generator tables), then the mean of 10 runs.
    let p = prove(&limit(), &SECRET, CRED_A, &amount, &cx).unwrap();
    const N: u32 = 10;
    let t = Instant::now();
    for _ in 0..N {
        prove(&limit(), &SECRET, CRED_A, &amount, &cx).unwrap();
    }
    let prove_time = t.elapsed() / N;
    assert_eq!(p.proof.len(), PROOF_LEN);
    assert_eq!(p.commitment, c.point);
    let t = Instant::now();
    for _ in 0..N {
        verify(&c, &amount, &cx, &p).unwrap();
    }
    let verify_time = t.elapsed() / N;
    println!("TIMING bulletproof prove {prove_time:?}, verify {verify_time:?}");

    // Boundary: amount == max and amount == 0 both verify.
    for a in [usd(Number::Int(5000)), usd(Number::Int(0))] {
        let p = prove(&limit(), &SECRET, CRED_A, &a, &cx).unwrap();
        verify(&c, &a, &cx, &p).unwrap();
    }
    // The claim text round-trips.
    let claim = c.to_claim();
    assert_eq!(claim.len(), 43);
    assert_eq!(MaxValueCommitment::from_claim(&claim, "USD").unwrap(), c);
}

#[test]
fn amount_above_limit_cannot_be_proved() {
    let cx = ctx(1, COUNTERPARTY, "zProofValueA");
    let e = prove(&limit(), &SECRET, CRED_A, &usd(Number::Float(5000.01)), &cx).unwrap_err();
    assert_eq!(
        e,
        AuthorityProofError::AmountExceedsLimit { amount: 500_001 }
    );
    assert_eq!(e.code(), ErrorCode::AuthorityAttestationInvalid);

    // A proof for a lower amount does not verify for a higher one.
    let c = MaxValueCommitment::commit(&limit(), &SECRET, CRED_A).unwrap();
    let p = prove(&limit(), &SECRET, CRED_A, &usd(Number::Int(100)), &cx).unwrap();
    let high = usd(Number::Int(6000));
    let mut forged = p.clone();
    forged.amount = high.clone();
    assert_eq!(
        verify(&c, &high, &cx, &forged).unwrap_err(),
        AuthorityProofError::InvalidProof
    );
    assert_eq!(
        verify(&c, &high, &cx, &p).unwrap_err(),
        AuthorityProofError::AmountMismatch
    );
}

#[test]
fn currency_mismatch_is_1101() {
    let c = MaxValueCommitment::commit(&limit(), &SECRET, CRED_A).unwrap();
    let cx = ctx(1, COUNTERPARTY, "zProofValueA");
    let eur = PriceSpec::new(Number::Int(10), PriceUnit::Iso4217("EUR".into()));
    let e = prove(&limit(), &SECRET, CRED_A, &eur, &cx).unwrap_err();
    assert!(matches!(e, AuthorityProofError::CurrencyMismatch { .. }));
    let p = prove(&limit(), &SECRET, CRED_A, &usd(Number::Int(10)), &cx).unwrap();
    let e = verify(&c, &eur, &cx, &p).unwrap_err();
    assert!(matches!(e, AuthorityProofError::CurrencyMismatch { .. }));
    assert_eq!(e.code(), ErrorCode::AuthorityAttestationInvalid);
    // A unit without minor-unit precision cannot be committed or proved.
    assert!(matches!(
        MaxValueCommitment::commit(&MinorAmount::new(1, "RECIPROCAL"), &SECRET, CRED_A),
        Err(AuthorityProofError::NoMinorUnit(_))
    ));
}

#[test]
fn bound_to_credential_request_and_counterparty() {
    let amount = usd(Number::Int(100));
    let cx = ctx(1, COUNTERPARTY, "zProofValueA");
    let p = prove(&limit(), &SECRET, CRED_A, &amount, &cx).unwrap();
    let c = MaxValueCommitment::commit(&limit(), &SECRET, CRED_A).unwrap();
    verify(&c, &amount, &cx, &p).unwrap();

    // Credential B with an equal limit and the same holder secret: a different commitment
    // (credential id in the blinding) and a different proofValue binding.
    let c_b = MaxValueCommitment::commit(&limit(), &SECRET, CRED_B).unwrap();
    assert_ne!(c_b.point, c.point);
    assert_eq!(
        verify(&c_b, &amount, &ctx(1, COUNTERPARTY, "zProofValueB"), &p).unwrap_err(),
        AuthorityProofError::CommitmentMismatch
    );
    // Even with the commitment rewritten, the binding to A's proofValue fails.
    let mut moved = p.clone();
    moved.commitment = c_b.point;
    let e = verify(&c_b, &amount, &ctx(1, COUNTERPARTY, "zProofValueB"), &moved).unwrap_err();
    assert_eq!(e, AuthorityProofError::InvalidProof);
    // Same commitment (equal limits, equal blinding) but another credential's proofValue.
    let e = verify(&c, &amount, &ctx(1, COUNTERPARTY, "zProofValueB"), &p).unwrap_err();
    assert_eq!(e, AuthorityProofError::InvalidProof);

    // Another request_id / counterparty.
    let e = verify(&c, &amount, &ctx(2, COUNTERPARTY, "zProofValueA"), &p).unwrap_err();
    assert_eq!(e, AuthorityProofError::InvalidProof);
    let e = verify(
        &c,
        &amount,
        &ctx(1, "did:mtp:z6MkSomeoneElse", "zProofValueA"),
        &p,
    )
    .unwrap_err();
    assert_eq!(e, AuthorityProofError::InvalidProof);
    assert_eq!(e.code(), ErrorCode::AuthorityAttestationInvalid);
}

#[test]
fn any_flipped_byte_fails() {
    let amount = usd(Number::Int(100));
    let cx = ctx(1, COUNTERPARTY, "zProofValueA");
    let c = MaxValueCommitment::commit(&limit(), &SECRET, CRED_A).unwrap();
    let p = prove(&limit(), &SECRET, CRED_A, &amount, &cx).unwrap();
    // One bit in each 32-byte element (points, scalars, L/R vectors).
    for i in (0..PROOF_LEN).step_by(32).map(|i| i + 7) {
        let mut bad = p.clone();
        bad.proof[i] ^= 0x01;
        let e = verify(&c, &amount, &cx, &bad).unwrap_err();
        assert!(
            matches!(
                e,
                AuthorityProofError::InvalidProof | AuthorityProofError::MalformedProof
            ),
            "byte {i}: {e:?}"
        );
        assert_eq!(e.code(), ErrorCode::AuthorityAttestationInvalid);
    }
    // Truncated / extended / empty proofs.
    for len in [0, 32, PROOF_LEN - 32, PROOF_LEN - 1] {
        let mut bad = p.clone();
        bad.proof.truncate(len);
        assert_eq!(
            verify(&c, &amount, &cx, &bad).unwrap_err(),
            AuthorityProofError::MalformedProof
        );
    }
    let mut bad = p.clone();
    bad.proof.extend_from_slice(&[0; 64]);
    assert_eq!(
        verify(&c, &amount, &cx, &bad).unwrap_err(),
        AuthorityProofError::MalformedProof
    );
    // A commitment that is not a Ristretto point.
    assert_eq!(
        MaxValueCommitment::from_claim(&"_".repeat(43), "USD").unwrap_err(),
        AuthorityProofError::InvalidCommitment
    );
    assert_eq!(
        MaxValueCommitment::from_claim("AAAA", "USD").unwrap_err(),
        AuthorityProofError::InvalidCommitment
    );
}

/// SHA-256 of the CBOR of the `deterministic` proof.
const KAT_SHA256: &str = "53dccfa3da21962a168390d72248b998953ab8e2b1cdcd557e7feb25cbae5977";

#[test]
fn deterministic() {
    let amount = usd(Number::Float(99.99));
    let cx = ctx(3, COUNTERPARTY, "zProofValueA");
    let a = prove(&limit(), &SECRET, CRED_A, &amount, &cx).unwrap();
    let b = prove(&limit(), &SECRET, CRED_A, &amount, &cx).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.to_cbor().unwrap(), b.to_cbor().unwrap());
    // Pinned across runs and platforms (PROFILE G-36 derandomisation).
    let h = hex::encode(mtp_protocol::crypto::sha256(&a.to_cbor().unwrap()));
    println!("KAT zk_range sha256 {h}");
    assert_eq!(h, KAT_SHA256);
    // Different secrets give different commitments and proofs.
    let c = prove(&limit(), &[0x43; 32], CRED_A, &amount, &cx).unwrap();
    assert_ne!(a.commitment, c.commitment);
    assert_ne!(a.proof, c.proof);
}

#[test]
fn cbor_shape_per_g04() {
    let amount = usd(Number::Float(12.5));
    let cx = ctx(1, COUNTERPARTY, "zProofValueA");
    let p = prove(&limit(), &SECRET, CRED_A, &amount, &cx).unwrap();
    let bytes = p.to_cbor().unwrap();
    let back = ZkRangeProof::from_cbor(&bytes).unwrap();
    assert_eq!(back, p);
    let v = p.to_value();
    assert_eq!(v.get("type").and_then(|t| t.as_text()), Some("zk_range"));
    assert_eq!(
        v.get("commitment")
            .and_then(|t| t.as_bytes())
            .map(<[u8]>::len),
        Some(32)
    );
    assert_eq!(
        v.get("proof").and_then(|t| t.as_bytes()).map(<[u8]>::len),
        Some(PROOF_LEN)
    );
    assert!(v.get("amount").is_some());
    let c = MaxValueCommitment::commit(&limit(), &SECRET, CRED_A).unwrap();
    verify(&c, &amount, &cx, &back).unwrap();
    // Malformed CBOR is a typed error, never a panic.
    assert!(ZkRangeProof::from_cbor(&bytes[..bytes.len() - 1]).is_err());
    assert!(ZkRangeProof::from_cbor(&[0xa0]).is_err());
}

// ---- Against real signed ADC-like credentials --------------------------------------------

use mtp_protocol::crypto::{
    AlgorithmSupportProfile, DecapsulationKey, KemAlgorithm, SignatureAlgorithm, SigningKey,
};
use mtp_protocol::identity::credential::{self, Credential, DocumentResolver, ProofOptions};
use mtp_protocol::identity::document::{AgentDocumentParams, DidDocument, SyncEndpoint};
use mtp_protocol::identity::jsonld::{CREDENTIALS_V2, MTP_V1};
use mtp_protocol::time::Timestamp;
use serde_json::json;

fn issuer() -> (SigningKey, DidDocument) {
    let k = SigningKey::from_seed(SignatureAlgorithm::MlDsa65, &[1; 32]);
    let kem = DecapsulationKey::from_seed(KemAlgorithm::MlKem768, &[7; 64]);
    let doc = DidDocument::new_agent(&AgentDocumentParams {
        signing_keys: vec![(k.algorithm(), k.public_key().as_bytes().to_vec())],
        kem_keys: vec![(KemAlgorithm::MlKem768, kem.encapsulation_key())],
        sync: SyncEndpoint {
            host: "principal.example".into(),
            port: 7443,
            tls_certificate_sha256: [0xab; 32],
        },
        nats_host: "nats.example".into(),
        nats_port: 4222,
        nats_cluster: "mtp-test".into(),
        delegation_chain: vec![],
        algorithms: AlgorithmSupportProfile::full(),
    })
    .expect("document");
    (k, doc)
}

/// An ADC whose limit is only committed: `maxTransactionValue` shows the currency,
/// `maxTransactionValueCommitment` carries `C_max`.
fn adc(key: &SigningKey, doc: &DidDocument, id: &str, valid_from: &str) -> Credential {
    let c = MaxValueCommitment::commit(&limit(), &SECRET, id).unwrap();
    let unsigned = Credential::from_value(json!({
        "@context": [CREDENTIALS_V2, MTP_V1],
        "id": id,
        "type": ["VerifiableCredential", "MTPAuthorityDelegation"],
        "issuer": doc.id,
        "validFrom": valid_from,
        "credentialSubject": {
            "id": "did:mtp:agent-under-test",
            "scope": ["goods.physical"],
            "maxTransactionValue": { "currency": "USD" },
            "maxTransactionValueCommitment": c.to_claim(),
            "permittedJurisdictions": ["US"],
        }
    }))
    .expect("credential");
    credential::sign(
        &unsigned,
        key,
        &ProofOptions {
            verification_method: format!("{}#key-1", doc.id),
            created: Timestamp::from_unix_secs(1_767_225_600).unwrap(),
        },
    )
    .expect("signed")
}

#[test]
fn signed_credentials_bind_the_proof() {
    let (key, doc) = issuer();
    let resolver = DocumentResolver::new().with(doc.clone());
    let a = adc(&key, &doc, CRED_A, "2026-01-01T00:00:00Z");
    // Same id (so the same commitment), different content: another proofValue.
    let a2 = adc(&key, &doc, CRED_A, "2026-02-01T00:00:00Z");
    let b = adc(&key, &doc, CRED_B, "2026-01-01T00:00:00Z");
    for c in [&a, &a2, &b] {
        credential::verify(c, &resolver).expect("credential verifies");
    }
    let amount = usd(Number::Float(4999.99));
    let req = request_id(7);

    let cx_a = ProofContext::for_credential(&req, COUNTERPARTY, &a).unwrap();
    let p = prove(&limit(), &SECRET, CRED_A, &amount, &cx_a).unwrap();
    let c_a = MaxValueCommitment::from_credential(&a).unwrap();
    assert_eq!(c_a.currency, "USD");
    verify(&c_a, &amount, &cx_a, &p).unwrap();
    // Through the Request's authority-proof CBOR.
    let wire = ZkRangeProof::from_cbor(&p.to_cbor().unwrap()).unwrap();
    verify(&c_a, &amount, &cx_a, &wire).unwrap();

    // Equal limit and commitment, other credential (proofValue): fails.
    let c_a2 = MaxValueCommitment::from_credential(&a2).unwrap();
    assert_eq!(c_a2, c_a);
    let cx_a2 = ProofContext::for_credential(&req, COUNTERPARTY, &a2).unwrap();
    assert_eq!(
        verify(&c_a2, &amount, &cx_a2, &p).unwrap_err(),
        AuthorityProofError::InvalidProof
    );
    // Credential B (equal limit, other id): other commitment.
    let c_b = MaxValueCommitment::from_credential(&b).unwrap();
    let cx_b = ProofContext::for_credential(&req, COUNTERPARTY, &b).unwrap();
    assert_eq!(
        verify(&c_b, &amount, &cx_b, &p).unwrap_err(),
        AuthorityProofError::CommitmentMismatch
    );
    // Above the limit: no proof.
    assert!(matches!(
        prove(&limit(), &SECRET, CRED_A, &usd(Number::Int(5001)), &cx_a),
        Err(AuthorityProofError::AmountExceedsLimit { .. })
    ));
    // An unsigned credential has nothing to bind to.
    let mut unsigned = a.clone();
    unsigned.as_map_mut().shift_remove("proof");
    assert_eq!(
        ProofContext::for_credential(&req, COUNTERPARTY, &unsigned).unwrap_err(),
        AuthorityProofError::UnsignedCredential
    );
    // Missing claims are typed errors.
    let mut no_claim = a.clone();
    no_claim.as_map_mut()["credentialSubject"]
        .as_object_mut()
        .unwrap()
        .shift_remove("maxTransactionValueCommitment");
    assert!(matches!(
        MaxValueCommitment::from_credential(&no_claim),
        Err(AuthorityProofError::MissingClaim(_))
    ));
}

#[test]
fn minor_units_per_g03() {
    use mtp_protocol::identity::authority_proof::exponent;
    assert_eq!(exponent("USD"), Some(2));
    assert_eq!(exponent("JPY"), Some(0));
    assert_eq!(exponent("MTP_COMPUTE_CREDIT"), Some(6));
    assert_eq!(exponent("ext:gpu:hour"), Some(6));
    assert_eq!(exponent("RECIPROCAL"), None);
    assert_eq!(exponent("XAU"), None);
    let p = PriceSpec::new(Number::Float(0.125), PriceUnit::Iso4217("USD".into()));
    // Half-even at 2 digits: 0.125 → 0.12.
    assert_eq!(
        MinorAmount::from_price_spec(&p).unwrap(),
        MinorAmount::new(12, "USD")
    );
    let neg = PriceSpec::new(Number::Int(-1), PriceUnit::Iso4217("USD".into()));
    assert_eq!(
        MinorAmount::from_price_spec(&neg).unwrap_err(),
        AuthorityProofError::AmountOutOfRange
    );
    // A custom unit (6 decimals) can be committed and proved.
    let max = MinorAmount::new(2_000_000, "ext:gpu:hour");
    let c = MaxValueCommitment::commit(&max, &SECRET, CRED_A).unwrap();
    let amount = PriceSpec::new(Number::Float(1.5), PriceUnit::Custom("ext:gpu:hour".into()));
    let cx = ctx(1, COUNTERPARTY, "zProofValueA");
    let proof = prove(&max, &SECRET, CRED_A, &amount, &cx).unwrap();
    verify(&c, &amount, &cx, &proof).unwrap();
    assert_eq!(
        MinorAmount::new(150, "USD").to_price_spec().unwrap(),
        PriceSpec::new(Number::Float(1.5), PriceUnit::Iso4217("USD".into()))
    );
    let json = serde_json::json!({"amount": 5000, "currency": "USD"});
    assert_eq!(
        MinorAmount::from_json(&json).unwrap(),
        MinorAmount::new(500_000, "USD")
    );
}
