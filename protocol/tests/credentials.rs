//! VC 2.0 credentials with `DataIntegrityProof` over RDFC-1.0 (BIND-III-A-01; PROFILE G-34,
//! G-39): sign/verify with every MTP signature algorithm, canonical-form properties, a
//! known-answer test of the canonical N-Quads and the refusals with their codes.
//!
//! Run with `--profile ci` (post-quantum signing is slow unoptimised); `--nocapture`
//! prints the timings.

use std::sync::OnceLock;
use std::time::Instant;

use mtp_protocol::crypto::seed::derive;
use mtp_protocol::crypto::{AlgorithmSupportProfile, SignatureAlgorithm, SigningKey, sha256};
use mtp_protocol::errors::{Coded, ErrorCode};
use mtp_protocol::identity::credential::{
    self, Credential, CredentialError, Cryptosuite, DocumentResolver, KeyResolver, ProofOptions,
    encode_proof_value, hash_data, proof_config,
};
use mtp_protocol::identity::jsonld::{self, JsonLdError};
use mtp_protocol::identity::multikey::MultikeyError;
use mtp_protocol::identity::{AgentDocumentParams, DidDocument, SyncEndpoint};
use mtp_protocol::time::Timestamp;
use serde_json::{Map, Value, json};

const MASTER: [u8; 32] = [7; 32];

struct Issuer {
    mldsa65: SigningKey,
    slhdsa: SigningKey,
    mldsa87: SigningKey,
    doc: DidDocument,
}

impl Issuer {
    fn did(&self) -> &str {
        &self.doc.id
    }
    /// key-1: ML-DSA-65, key-2: SLH-DSA-SHA2-192s, key-3: ML-DSA-87.
    fn vm(&self, n: u8) -> String {
        format!("{}#key-{n}", self.doc.id)
    }
}

fn make_issuer(label: &str) -> Issuer {
    let key = |alg, l: &str| SigningKey::from_seed(alg, &derive(&MASTER, &format!("{label}/{l}")));
    let mldsa65 = key(SignatureAlgorithm::MlDsa65, "mldsa65");
    let slhdsa = key(SignatureAlgorithm::SlhDsaSha2_192s, "slhdsa");
    let mldsa87 = key(SignatureAlgorithm::MlDsa87, "mldsa87");
    let doc = DidDocument::new_agent(&AgentDocumentParams {
        signing_keys: [&mldsa65, &slhdsa, &mldsa87]
            .iter()
            .map(|k| (k.algorithm(), k.public_key().as_bytes().to_vec()))
            .collect(),
        kem_keys: vec![],
        sync: SyncEndpoint {
            host: "issuer.example".into(),
            port: 7443,
            tls_certificate_sha256: [1; 32],
        },
        nats_host: "nats.example".into(),
        nats_port: 4222,
        nats_cluster: "mtp-test".into(),
        delegation_chain: vec![],
        algorithms: AlgorithmSupportProfile::full(),
    })
    .expect("agent document");
    Issuer {
        mldsa65,
        slhdsa,
        mldsa87,
        doc,
    }
}

fn issuer() -> &'static Issuer {
    static I: OnceLock<Issuer> = OnceLock::new();
    I.get_or_init(|| make_issuer("issuer"))
}

fn other() -> &'static Issuer {
    static I: OnceLock<Issuer> = OnceLock::new();
    I.get_or_init(|| make_issuer("other"))
}

fn resolver() -> DocumentResolver {
    [issuer().doc.clone(), other().doc.clone()]
        .into_iter()
        .collect()
}

fn created() -> Timestamp {
    Timestamp::parse("2026-03-01T12:00:00Z").unwrap()
}

/// An ADC-shaped unsigned credential issued by `issuer()`.
fn unsigned() -> Credential {
    Credential::from_value(json!({
        "@context": [jsonld::CREDENTIALS_V2, jsonld::MTP_V1],
        "id": "urn:uuid:0195a3c4-0000-7000-8000-000000000001",
        "type": ["VerifiableCredential", "MTPAuthorityDelegation"],
        "issuer": issuer().did(),
        "validFrom": "2026-03-01T00:00:00Z",
        "validUntil": "2027-03-01T00:00:00Z",
        "credentialSubject": {
            "id": "did:mtp:agent-under-test",
            "scope": ["goods.physical", "services.digital"],
            "maxTransactionValue": {"amount": "1000.00", "currency": "USD"},
            "permittedJurisdictions": ["US", "CA"],
            "permittedPaymentRails": ["card"],
            "constraints": {"maxDailyTransactions": 10}
        }
    }))
    .expect("valid credential")
}

fn options(vm: String) -> ProofOptions {
    ProofOptions {
        verification_method: vm,
        created: created(),
    }
}

/// `unsigned()` signed with ML-DSA-65 (computed once).
fn signed_mldsa65() -> &'static Credential {
    static C: OnceLock<Credential> = OnceLock::new();
    C.get_or_init(|| {
        credential::sign(&unsigned(), &issuer().mldsa65, &options(issuer().vm(1))).unwrap()
    })
}

fn proof_map(c: &Credential) -> Map<String, Value> {
    c.as_map()["proof"].as_object().unwrap().clone()
}

fn with_proof_member(c: &Credential, k: &str, v: Value) -> Credential {
    let mut c = c.clone();
    c.as_map_mut()["proof"]
        .as_object_mut()
        .unwrap()
        .insert(k.into(), v);
    c
}

/// Signs `c` with an arbitrary proof object (adversarial proofs): PROFILE G-34 hashData.
fn sign_raw(c: &Credential, key: &SigningKey, mut proof: Map<String, Value>) -> Credential {
    proof.remove("proofValue");
    let data = hash_data(c, &proof).unwrap();
    proof.insert(
        "proofValue".into(),
        encode_proof_value(&key.sign(&data)).into(),
    );
    let mut out = c.clone();
    out.as_map_mut()
        .insert("proof".into(), Value::Object(proof));
    out
}

fn err_code(r: Result<impl std::fmt::Debug, CredentialError>) -> (ErrorCode, CredentialError) {
    let e = r.expect_err("must be refused");
    (e.code(), e)
}

/// Recursively reverses the member order of every object.
fn reverse_members(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .rev()
                .map(|(k, v)| (k.clone(), reverse_members(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(reverse_members).collect()),
        other => other.clone(),
    }
}

#[test]
fn mldsa65_sign_and_verify() {
    let signed = signed_mldsa65();
    let proof = signed.proof().unwrap().unwrap();
    assert_eq!(proof.cryptosuite, "mtp-mldsa-2026");
    assert_eq!(proof.proof_purpose, "assertionMethod");
    assert_eq!(proof.created, created());
    assert!(proof.proof_value.starts_with('z'));
    assert_eq!(
        proof.signature().unwrap().len(),
        SignatureAlgorithm::MlDsa65.signature_len()
    );
    let v = credential::verify(signed, &resolver()).unwrap();
    assert_eq!(v.issuer, issuer().did());
    assert_eq!(v.verification_method, issuer().vm(1));
    assert_eq!(v.cryptosuite, Cryptosuite::MtpMlDsa2026);
    assert_eq!(v.created, created());
    // A single DID Document is a resolver too.
    credential::verify(signed, &issuer().doc).unwrap();
    // Deterministic signing.
    let again = credential::sign(&unsigned(), &issuer().mldsa65, &options(issuer().vm(1)));
    assert_eq!(&again.unwrap(), signed);
    // JSON round trip keeps it verifiable.
    let reparsed = Credential::from_json(&signed.to_json()).unwrap();
    credential::verify(&reparsed, &resolver()).unwrap();
    assert_eq!(reparsed.without_proof(), unsigned());
    // Signing twice is refused.
    let (code, e) = err_code(credential::sign(
        signed,
        &issuer().mldsa65,
        &options(issuer().vm(1)),
    ));
    assert_eq!(
        (code, e),
        (ErrorCode::SchemaViolation, CredentialError::AlreadySigned)
    );
}

#[test]
fn mldsa87_signs_under_mtp_mldsa_2026() {
    let signed =
        credential::sign(&unsigned(), &issuer().mldsa87, &options(issuer().vm(3))).unwrap();
    assert_eq!(
        signed.proof().unwrap().unwrap().cryptosuite,
        "mtp-mldsa-2026"
    );
    let v = credential::verify(&signed, &resolver()).unwrap();
    assert_eq!(v.cryptosuite, Cryptosuite::MtpMlDsa2026);
}

#[test]
fn slhdsa_sign_and_verify_with_timings() {
    let t = Instant::now();
    let signed = credential::sign(&unsigned(), &issuer().slhdsa, &options(issuer().vm(2))).unwrap();
    let slh_sign = t.elapsed();
    assert_eq!(
        signed.proof().unwrap().unwrap().cryptosuite,
        "mtp-slhdsa-2026"
    );
    let t = Instant::now();
    let v = credential::verify(&signed, &resolver()).unwrap();
    let slh_verify = t.elapsed();
    assert_eq!(v.cryptosuite, Cryptosuite::MtpSlhDsa2026);
    assert_eq!(v.verification_method, issuer().vm(2));

    // The SLH-DSA proof relabelled as mtp-mldsa-2026 is refused (cryptosuite ≠ key).
    let relabelled = with_proof_member(&signed, "cryptosuite", "mtp-mldsa-2026".into());
    let (code, e) = err_code(credential::verify(&relabelled, &resolver()));
    assert_eq!(code, ErrorCode::SignatureVerificationFailure);
    assert!(
        matches!(e, CredentialError::CryptosuiteMismatch { .. }),
        "{e:?}"
    );

    // Timings (printed, not asserted).
    let _ = signed_mldsa65();
    let n = 20;
    let t = Instant::now();
    for _ in 0..n {
        credential::sign(&unsigned(), &issuer().mldsa65, &options(issuer().vm(1))).unwrap();
    }
    let ml_sign = t.elapsed() / n;
    let t = Instant::now();
    for _ in 0..n {
        credential::verify(signed_mldsa65(), &resolver()).unwrap();
    }
    let ml_verify = t.elapsed() / n;
    let doc = unsigned().into_value();
    let t = Instant::now();
    for _ in 0..n {
        jsonld::canonicalize(&doc).unwrap();
    }
    let canon = t.elapsed() / n;
    let t = Instant::now();
    for _ in 0..n {
        issuer().mldsa65.sign(&[0; 64]);
    }
    let raw_sign = t.elapsed() / n;
    println!(
        "timings: ML-DSA-65 sign {ml_sign:?}, verify {ml_verify:?}; \
         SLH-DSA-SHA2-192s sign {slh_sign:?}, verify {slh_verify:?}; \
         canonicalize (ADC) {canon:?}; raw ML-DSA-65 sign of 64 bytes {raw_sign:?}"
    );
}

#[test]
fn canonical_form_is_independent_of_member_order() {
    let doc = unsigned().into_value();
    let reversed = reverse_members(&doc);
    assert_ne!(doc.to_string(), reversed.to_string());
    assert_eq!(
        jsonld::canonicalize(&doc).unwrap(),
        jsonld::canonicalize(&reversed).unwrap()
    );
    // The signed credential with every object reordered still verifies.
    let reordered = Credential::from_value(reverse_members(&signed_mldsa65().to_value())).unwrap();
    credential::verify(&reordered, &resolver()).unwrap();
    // Canonicalisation is repeatable.
    assert_eq!(
        jsonld::canonicalize(&doc).unwrap(),
        jsonld::canonicalize(&doc).unwrap()
    );
}

#[test]
fn tampered_claim_is_1100() {
    let mut c = signed_mldsa65().clone();
    c.as_map_mut()["credentialSubject"]["permittedJurisdictions"] = json!(["US", "CA", "FR"]);
    let (code, e) = err_code(credential::verify(&c, &resolver()));
    assert_eq!(code, ErrorCode::SignatureVerificationFailure);
    assert!(matches!(e, CredentialError::Signature(_)), "{e:?}");
    // A @json value changed inside (canonical JSON literal differs).
    let mut c = signed_mldsa65().clone();
    c.as_map_mut()["credentialSubject"]["maxTransactionValue"]["amount"] = json!("1000.01");
    assert_eq!(
        err_code(credential::verify(&c, &resolver())).0,
        ErrorCode::SignatureVerificationFailure
    );
    // The proof options are signed too.
    let c = with_proof_member(signed_mldsa65(), "created", "2026-03-01T12:00:01Z".into());
    assert_eq!(
        err_code(credential::verify(&c, &resolver())).0,
        ErrorCode::SignatureVerificationFailure
    );
}

#[test]
fn undefined_term_is_refused() {
    // Added after signing: refused before any signature check.
    let mut c = signed_mldsa65().clone();
    c.as_map_mut()["credentialSubject"]
        .as_object_mut()
        .unwrap()
        .insert("unlimitedSpending".into(), true.into());
    let (code, e) = err_code(credential::verify(&c, &resolver()));
    assert_eq!(code, ErrorCode::AuthorityAttestationInvalid);
    assert_eq!(
        e,
        CredentialError::JsonLd(JsonLdError::UndefinedTerm("unlimitedSpending".into()))
    );
    // And an issuer cannot sign one either.
    let mut u = unsigned();
    u.as_map_mut().insert("extraClaim".into(), 1.into());
    let (code, e) = err_code(credential::sign(
        &u,
        &issuer().mldsa65,
        &options(issuer().vm(1)),
    ));
    assert_eq!(code, ErrorCode::AuthorityAttestationInvalid);
    assert_eq!(
        e,
        CredentialError::JsonLd(JsonLdError::UndefinedTerm("extraClaim".into()))
    );
    // An undefined type and a relative IRI are refused as well.
    let mut u = unsigned();
    u.as_map_mut()["type"] = json!(["VerifiableCredential", "SuperCredential"]);
    assert_eq!(
        jsonld::canonicalize(&u.into_value()),
        Err(JsonLdError::UndefinedTerm("SuperCredential".into()))
    );
    let mut u = unsigned();
    u.as_map_mut()["credentialSubject"]["id"] = json!("agent-under-test");
    assert_eq!(
        jsonld::canonicalize(&u.into_value()),
        Err(JsonLdError::UndefinedTerm("agent-under-test".into()))
    );
}

#[test]
fn wrong_cryptosuite_is_1100() {
    for label in ["eddsa-rdfc-2022", "mtp-mldsa-2025", ""] {
        let c = with_proof_member(signed_mldsa65(), "cryptosuite", label.into());
        let (code, e) = err_code(credential::verify(&c, &resolver()));
        assert_eq!(code, ErrorCode::SignatureVerificationFailure, "{label}");
        assert_eq!(e, CredentialError::UnknownCryptosuite(label.into()));
    }
    // A valid signature whose proof says mtp-slhdsa-2026 over an ML-DSA key.
    let mut p = proof_map(signed_mldsa65());
    p.insert("cryptosuite".into(), "mtp-slhdsa-2026".into());
    let c = sign_raw(&unsigned(), &issuer().mldsa65, p);
    let (code, e) = err_code(credential::verify(&c, &resolver()));
    assert_eq!(code, ErrorCode::SignatureVerificationFailure);
    assert_eq!(
        e,
        CredentialError::CryptosuiteMismatch {
            cryptosuite: Cryptosuite::MtpSlhDsa2026,
            algorithm: SignatureAlgorithm::MlDsa65
        }
    );
}

#[test]
fn malformed_proofs_are_1100() {
    let sig = proof_map(signed_mldsa65())["proofValue"]
        .as_str()
        .unwrap()
        .to_owned();
    let cases = [
        with_proof_member(signed_mldsa65(), "proofValue", sig[..sig.len() - 1].into()),
        with_proof_member(signed_mldsa65(), "proofValue", sig[..sig.len() / 2].into()),
        with_proof_member(
            signed_mldsa65(),
            "proofValue",
            format!("u{}", &sig[1..]).into(),
        ),
        with_proof_member(signed_mldsa65(), "proofValue", "z0OIl".into()),
        with_proof_member(
            signed_mldsa65(),
            "proofValue",
            format!("z{}", "1".repeat(30_000)).into(),
        ),
        with_proof_member(signed_mldsa65(), "type", "Ed25519Signature2020".into()),
        with_proof_member(signed_mldsa65(), "proofPurpose", "authentication".into()),
        with_proof_member(signed_mldsa65(), "created", "yesterday".into()),
        with_proof_member(signed_mldsa65(), "verificationMethod", json!(1)),
        signed_mldsa65().without_proof(),
        {
            let mut c = signed_mldsa65().clone();
            let p = c.as_map()["proof"].clone();
            c.as_map_mut()["proof"] = json!([p]);
            c
        },
    ];
    for (i, c) in cases.iter().enumerate() {
        let (code, e) = err_code(credential::verify(c, &resolver()));
        assert_eq!(
            code,
            ErrorCode::SignatureVerificationFailure,
            "case {i}: {e:?}"
        );
    }
    // Truncated proofValue: a signature of the wrong length, never a panic.
    let c = with_proof_member(signed_mldsa65(), "proofValue", sig[..sig.len() - 1].into());
    assert!(matches!(
        credential::verify(&c, &resolver()),
        Err(CredentialError::Signature(_))
    ));
}

#[test]
fn verification_method_of_another_did_is_1101() {
    // A genuine signature by `other()`'s assertion key over a credential naming `issuer()`.
    let mut p = proof_map(signed_mldsa65());
    p.insert("verificationMethod".into(), other().vm(1).into());
    let c = sign_raw(&unsigned(), &other().mldsa65, p);
    let (code, e) = err_code(credential::verify(&c, &resolver()));
    assert_eq!(code, ErrorCode::AuthorityAttestationInvalid);
    assert!(matches!(e, CredentialError::WrongIssuer { .. }), "{e:?}");
    // The signer refuses it up front too.
    let (code, _) = err_code(credential::sign(
        &unsigned(),
        &other().mldsa65,
        &options(other().vm(1)),
    ));
    assert_eq!(code, ErrorCode::AuthorityAttestationInvalid);
    // An issuer whose DID Document is unknown.
    let empty = DocumentResolver::new();
    let (code, e) = err_code(credential::verify(signed_mldsa65(), &empty));
    assert_eq!(code, ErrorCode::AuthorityAttestationInvalid);
    assert_eq!(e, CredentialError::UnknownDid(issuer().did().into()));
    // A key id that is not an assertionMethod key of the issuer.
    let mut p = proof_map(signed_mldsa65());
    p.insert("verificationMethod".into(), issuer().vm(9).into());
    let c = sign_raw(&unsigned(), &issuer().mldsa65, p);
    let (code, e) = err_code(credential::verify(&c, &resolver()));
    assert_eq!(code, ErrorCode::SignatureVerificationFailure);
    assert!(matches!(e, CredentialError::NotAssertionMethod(_)), "{e:?}");
}

/// The DID Document of `issuer()` with an extra assertion key `#key-44` whose Multikey has
/// codec `codec` (refused types).
fn doc_with_refused_key(codec: [u8; 2], key_len: usize) -> DidDocument {
    let mut raw = codec.to_vec();
    raw.extend(std::iter::repeat_n(0x42, key_len));
    let multibase = format!("z{}", bs58::encode(raw).into_string());
    let mut v: Value = serde_json::from_str(&issuer().doc.to_json()).unwrap();
    let id = format!("{}#key-44", issuer().did());
    v["verificationMethod"].as_array_mut().unwrap().push(json!({
        "id": id,
        "type": "Multikey",
        "controller": issuer().did(),
        "publicKeyMultibase": multibase
    }));
    v["assertionMethod"].as_array_mut().unwrap().push(json!(id));
    DidDocument::from_json(&v.to_string()).unwrap()
}

#[test]
fn refused_key_types_are_1100() {
    let mut p = proof_map(signed_mldsa65());
    p.insert("verificationMethod".into(), issuer().vm(44).into());
    let c = sign_raw(&unsigned(), &issuer().mldsa65, p);
    // mldsa-44-pub (0x1210 → varint 90 24), 1312-byte key.
    let doc = doc_with_refused_key([0x90, 0x24], 1312);
    let (code, e) = err_code(credential::verify(&c, &doc));
    assert_eq!(code, ErrorCode::SignatureVerificationFailure);
    assert_eq!(e.requirement(), Some("BIND-VI-A-03"));
    assert!(
        matches!(
            e,
            CredentialError::Key {
                source: MultikeyError::Forbidden { .. },
                ..
            }
        ),
        "{e:?}"
    );
    // ed25519-pub (0xed → varint ed 01), pre-quantum.
    let doc = doc_with_refused_key([0xed, 0x01], 32);
    let (code, e) = err_code(credential::verify(&c, &doc));
    assert_eq!(code, ErrorCode::SignatureVerificationFailure);
    assert_eq!(e.requirement(), Some("SPEC-VIII-A-02"));
    // The same through the resolver interface.
    assert!(matches!(
        doc.resolve_assertion_key(&issuer().vm(44)),
        Err(CredentialError::Key { .. })
    ));
}

#[test]
fn broken_canonical_form_is_1100() {
    // hashData over the JSON text instead of the RDFC-1.0 N-Quads.
    let u = unsigned();
    let mut p = proof_map(signed_mldsa65());
    p.remove("proofValue");
    let config = Value::Object(proof_config(&u, &p)).to_string();
    let mut data = sha256(config.as_bytes()).to_vec();
    data.extend_from_slice(&sha256(u.to_json().as_bytes()));
    p.insert(
        "proofValue".into(),
        encode_proof_value(&issuer().mldsa65.sign(&data)).into(),
    );
    let mut c = u.clone();
    c.as_map_mut()
        .insert("proof".into(), Value::Object(p.clone()));
    let (code, e) = err_code(credential::verify(&c, &resolver()));
    assert_eq!(code, ErrorCode::SignatureVerificationFailure);
    assert!(matches!(e, CredentialError::Signature(_)), "{e:?}");
    // Non-canonical N-Quads (the processor's order and blank-node labels, no RDFC-1.0).
    let mut p2 = p.clone();
    p2.remove("proofValue");
    let mut data = sha256(
        jsonld::to_nquads(&Value::Object(proof_config(&u, &p2)))
            .unwrap()
            .as_bytes(),
    )
    .to_vec();
    data.extend_from_slice(&sha256(
        jsonld::to_nquads(&u.to_value()).unwrap().as_bytes(),
    ));
    p2.insert(
        "proofValue".into(),
        encode_proof_value(&issuer().mldsa65.sign(&data)).into(),
    );
    let mut c = u.clone();
    c.as_map_mut().insert("proof".into(), Value::Object(p2));
    assert_eq!(
        err_code(credential::verify(&c, &resolver())).0,
        ErrorCode::SignatureVerificationFailure
    );
}

#[test]
fn unknown_context_is_refused() {
    let url = "https://www.w3.org/2018/credentials/examples/v1";
    let mut u = unsigned();
    u.as_map_mut()["@context"]
        .as_array_mut()
        .unwrap()
        .push(url.into());
    let (code, e) = err_code(credential::sign(
        &u,
        &issuer().mldsa65,
        &options(issuer().vm(1)),
    ));
    assert_eq!(code, ErrorCode::AuthorityAttestationInvalid);
    assert_eq!(
        e,
        CredentialError::JsonLd(JsonLdError::UnknownContext(url.into()))
    );
    let mut c = signed_mldsa65().clone();
    c.as_map_mut()["@context"]
        .as_array_mut()
        .unwrap()
        .push(url.into());
    let (code, e) = err_code(credential::verify(&c, &resolver()));
    assert_eq!(code, ErrorCode::AuthorityAttestationInvalid);
    assert_eq!(
        e,
        CredentialError::JsonLd(JsonLdError::UnknownContext(url.into()))
    );
}

#[test]
fn principal_with_another_did_method() {
    // PROFILE G-05: a Principal's DID need not be did:mtp.
    let key = SigningKey::from_seed(SignatureAlgorithm::MlDsa65, &derive(&MASTER, "principal"));
    let did = "did:web:principal.example";
    let mk = mtp_protocol::identity::Multikey::new(
        mtp_protocol::identity::KeyType::Signature(SignatureAlgorithm::MlDsa65),
        key.public_key().as_bytes().to_vec(),
    )
    .unwrap();
    let doc = DidDocument::from_json(
        &json!({
            "@context": [jsonld::DID_V1, jsonld::MULTIKEY_V1],
            "id": did,
            "verificationMethod": [{
                "id": "#assert",
                "type": "Multikey",
                "controller": did,
                "publicKeyMultibase": mk.encode()
            }],
            "assertionMethod": ["#assert"]
        })
        .to_string(),
    )
    .unwrap();
    let mut u = unsigned();
    u.as_map_mut()["issuer"] = json!({"id": did, "name": "Principal Inc."});
    let vm = format!("{did}#assert");
    let signed = credential::sign(&u, &key, &options(vm.clone())).unwrap();
    let r = resolver().with(doc);
    let v = credential::verify(&signed, &r).unwrap();
    assert_eq!(v.issuer, did);
    assert_eq!(v.verification_method, vm);
}

#[test]
fn accessors() {
    let c = signed_mldsa65();
    assert_eq!(
        c.id(),
        Some("urn:uuid:0195a3c4-0000-7000-8000-000000000001")
    );
    assert_eq!(
        c.types(),
        ["VerifiableCredential", "MTPAuthorityDelegation"]
    );
    assert!(c.has_type("MTPAuthorityDelegation"));
    assert_eq!(c.issuer(), Some(issuer().did()));
    assert_eq!(c.subject_id(), Some("did:mtp:agent-under-test"));
    assert_eq!(
        c.subject().unwrap()["permittedJurisdictions"],
        json!(["US", "CA"])
    );
    assert_eq!(
        c.valid_from(),
        Timestamp::parse("2026-03-01T00:00:00Z").ok()
    );
    assert_eq!(
        c.valid_until(),
        Timestamp::parse("2027-03-01T00:00:00Z").ok()
    );
    assert_eq!(c.credential_status(), None);
    assert!(c.proof().unwrap().is_some());
    assert_eq!(c.without_proof().proof().unwrap(), None);
    assert_eq!(Credential::from_json(&c.to_json()).unwrap(), *c);
    assert_eq!(
        Credential::from_json("not json").unwrap_err().code(),
        ErrorCode::SchemaViolation
    );
}

/// Known answer: RDFC-1.0 N-Quads of a small credential, derived by hand.
///
/// Expansion (VC 2.0 context; `VerifiableCredential` type-scoped terms): `issuer` and
/// `credentialSubject` are `@id`-typed, `validFrom` is `xsd:dateTime`, `name` is
/// `https://schema.org/name`; the subject has no `id`, so it is a blank node. RDFC-1.0:
/// the single blank node gets `_:c14n0`; a plain string literal is written without
/// `^^xsd:string`; lines are sorted by code point (`<` before `_`, `http:` before
/// `https:`, then `credentialSubject` < `issuer` < `validFrom`).
#[test]
fn known_answer_canonical_nquads() {
    let doc = json!({
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "id": "urn:uuid:00000000-0000-0000-0000-000000000001",
        "type": ["VerifiableCredential"],
        "issuer": "did:example:issuer",
        "validFrom": "2026-01-01T00:00:00Z",
        "credentialSubject": {"name": "Alice \"A\" Example"}
    });
    let expected = concat!(
        "<urn:uuid:00000000-0000-0000-0000-000000000001> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <https://www.w3.org/2018/credentials#VerifiableCredential> .\n",
        "<urn:uuid:00000000-0000-0000-0000-000000000001> <https://www.w3.org/2018/credentials#credentialSubject> _:c14n0 .\n",
        "<urn:uuid:00000000-0000-0000-0000-000000000001> <https://www.w3.org/2018/credentials#issuer> <did:example:issuer> .\n",
        "<urn:uuid:00000000-0000-0000-0000-000000000001> <https://www.w3.org/2018/credentials#validFrom> \"2026-01-01T00:00:00Z\"^^<http://www.w3.org/2001/XMLSchema#dateTime> .\n",
        "_:c14n0 <https://schema.org/name> \"Alice \\\"A\\\" Example\" .\n",
    );
    assert_eq!(jsonld::canonicalize(&doc).unwrap(), expected);

    // The proof configuration of PROFILE G-34 (Data Integrity terms of the same context).
    let config = json!({
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "type": "DataIntegrityProof",
        "cryptosuite": "mtp-mldsa-2026",
        "created": "2026-01-01T00:00:00Z",
        "verificationMethod": "did:example:issuer#key-1",
        "proofPurpose": "assertionMethod"
    });
    let expected = concat!(
        "_:c14n0 <http://purl.org/dc/terms/created> \"2026-01-01T00:00:00Z\"^^<http://www.w3.org/2001/XMLSchema#dateTime> .\n",
        "_:c14n0 <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <https://w3id.org/security#DataIntegrityProof> .\n",
        "_:c14n0 <https://w3id.org/security#cryptosuite> \"mtp-mldsa-2026\"^^<https://w3id.org/security#cryptosuiteString> .\n",
        "_:c14n0 <https://w3id.org/security#proofPurpose> <https://w3id.org/security#assertionMethod> .\n",
        "_:c14n0 <https://w3id.org/security#verificationMethod> <did:example:issuer#key-1> .\n",
    );
    assert_eq!(jsonld::canonicalize(&config).unwrap(), expected);
}

#[test]
fn bundled_contexts_cover_mtp_documents() {
    // A DID Document of the reference agent (DID v1 + Multikey + MTP contexts).
    let doc: Value = serde_json::from_str(&issuer().doc.to_json()).unwrap();
    let nq = jsonld::canonicalize(&doc).unwrap();
    assert!(
        nq.contains("<https://suite.invalid/mtp/v1#MTPSync>"),
        "{nq}"
    );
    // SD-JWT members (`_sd`, `_sd_alg` come from the VC 2.0 context, PROFILE G-35).
    let mut u = unsigned();
    let subject = u.as_map_mut()["credentialSubject"].as_object_mut().unwrap();
    subject.insert("_sd".into(), json!(["a1", "b2"]));
    subject.insert("_sd_alg".into(), "sha-256".into());
    jsonld::canonicalize(&u.into_value()).unwrap();
    // A Status List 2021 entry next to the VC 2.0 context.
    let mut u = unsigned();
    u.as_map_mut()["@context"]
        .as_array_mut()
        .unwrap()
        .push(jsonld::STATUS_LIST_2021_V1.into());
    u.as_map_mut().insert(
        "credentialStatus".into(),
        json!({
            "id": "https://status.example/1#94567",
            "type": "StatusList2021Entry",
            "statusPurpose": "revocation",
            "statusListIndex": "94567",
            "statusListCredential": "https://status.example/1"
        }),
    );
    jsonld::canonicalize(&u.into_value()).unwrap();
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Member names: defined terms (VC 2.0, MTP), undefined ones, keywords and odd names.
    fn arb_key() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "id",
            "type",
            "name",
            "description",
            "issuer",
            "credentialSubject",
            "validFrom",
            "validUntil",
            "credentialStatus",
            "evidence",
            "scope",
            "constraints",
            "maxTransactionValue",
            "permittedJurisdictions",
            "principal",
            "proof",
            "undefined",
            "ex:prop",
            "https://example.com/p",
            "_:b0",
            "@id",
            "@type",
            "@value",
            "@language",
            "@list",
            "@set",
            "@graph",
            "@included",
            "@json",
            "@nest",
            "@vocab",
            "@base",
            "@context",
            "@index",
            "@foo",
            "",
            "@",
        ])
        .prop_map(str::to_owned)
    }

    fn arb_leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            prop::sample::select(vec![
                "VerifiableCredential",
                "MTPAuthorityDelegation",
                "did:example:a#k",
                "urn:uuid:1",
                "relative",
                "_:b1",
                "2026-01-01T00:00:00Z",
                "not a date",
                "https://www.w3.org/ns/credentials/v2",
                "https://example.com/ctx",
                "@json",
                "@id",
                "en",
                "\u{0}\u{7f}\"\\\n",
                "",
            ])
            .prop_map(Value::from),
        ]
    }

    fn arb_doc() -> impl Strategy<Value = Value> {
        arb_leaf().prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((arb_key(), inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn arb_credential_like() -> impl Strategy<Value = Value> {
        (
            arb_doc(),
            prop::collection::vec((arb_key(), arb_doc()), 0..4),
        )
            .prop_map(|(subject, extra)| {
                let mut m = Map::new();
                m.insert(
                    "@context".into(),
                    json!([jsonld::CREDENTIALS_V2, jsonld::MTP_V1]),
                );
                m.insert("type".into(), json!(["VerifiableCredential"]));
                m.insert("issuer".into(), "did:example:issuer".into());
                m.insert("credentialSubject".into(), subject);
                for (k, v) in extra {
                    m.insert(k, v);
                }
                Value::Object(m)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Arbitrary input never panics; when canonicalisation succeeds it does not depend on
        /// member order, and verification of a proof-less document is a typed refusal.
        #[test]
        fn canonicalize_never_panics(doc in prop_oneof![arb_doc(), arb_credential_like()]) {
            let first = jsonld::canonicalize(&doc);
            if let Ok(nq) = &first {
                let reversed = jsonld::canonicalize(&reverse_members(&doc));
                prop_assert_eq!(Some(nq), reversed.as_ref().ok());
                prop_assert!(nq.is_empty() || nq.ends_with('\n'));
            }
            if let Ok(c) = Credential::from_value(doc) {
                let e = credential::verify(&c, &resolver()).unwrap_err();
                prop_assert!(matches!(
                    e.code(),
                    ErrorCode::SignatureVerificationFailure | ErrorCode::AuthorityAttestationInvalid
                ));
            }
        }
    }
}

mod base58 {
    use mtp_protocol::identity::credential::base58;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

        /// Same text as the `bs58` crate (Bitcoin alphabet), and a round trip.
        #[test]
        fn matches_bs58(bytes in prop::collection::vec(
            prop_oneof![3 => Just(0u8), 1 => Just(255u8), 6 => any::<u8>()], 0..80)
        ) {
            let ours = base58::encode(&bytes);
            prop_assert_eq!(&ours, &bs58::encode(&bytes).into_string());
            prop_assert_eq!(base58::decode(&ours), Some(bytes));
        }

        #[test]
        fn decode_matches_bs58(text in "[1-9A-HJ-NP-Za-km-z0OIl]{0,60}") {
            prop_assert_eq!(base58::decode(&text), bs58::decode(&text).into_vec().ok());
        }
    }

    #[test]
    fn long_inputs() {
        for len in [3309usize, 4627, 16224] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 131 % 251) as u8).collect();
            let text = base58::encode(&bytes);
            assert_eq!(text, bs58::encode(&bytes).into_string());
            assert_eq!(base58::decode(&text), Some(bytes));
        }
    }
}
