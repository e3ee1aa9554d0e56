//! SD-JWT selective disclosure adapted to the JSON-LD credential (BIND-III-C-01,
//! SPEC-III-A-1-06, SPEC-III-A-1-07; PROFILE G-35).

use std::time::Instant;

use base64::Engine as _;
use mtp_protocol::crypto::{
    AlgorithmSupportProfile, DecapsulationKey, KemAlgorithm, SeededRng, SignatureAlgorithm,
    SigningKey,
};
use mtp_protocol::errors::{Coded, ErrorCode};
use mtp_protocol::identity::credential::{self, Credential, DocumentResolver, ProofOptions};
use mtp_protocol::identity::disclosure::{
    Disclosure, DisclosureError, KeyBinding, SdCredential, issue, make_disclosable, nonce_for,
    present, verify_presentation,
};
use mtp_protocol::identity::document::{AgentDocumentParams, DidDocument, SyncEndpoint};
use mtp_protocol::identity::jsonld::{CREDENTIALS_V2, MTP_V1};
use mtp_protocol::time::Timestamp;
use mtp_protocol::uuid::{MtpUuid, ObjectType};
use serde_json::{Value as Json, json};

const DISCLOSABLE: [&str; 5] = [
    "maxTransactionValue",
    "permittedJurisdictions",
    "permittedPaymentRails",
    "permittedCounterpartyClasses",
    "constraints",
];
const REVEAL: [&str; 2] = ["permittedJurisdictions", "maxTransactionValue"];
/// Distinctive values of the three claims that stay hidden.
const HIDDEN_MARKERS: [&str; 3] = [
    "rail-marker-ach",
    "class-marker-merchant",
    "dailyLimitMarker",
];

fn key(seed: u8) -> SigningKey {
    SigningKey::from_seed(SignatureAlgorithm::MlDsa65, &[seed; 32])
}

fn document(k: &SigningKey) -> DidDocument {
    let kem = DecapsulationKey::from_seed(KemAlgorithm::MlKem768, &[7; 64]);
    DidDocument::new_agent(&AgentDocumentParams {
        signing_keys: vec![(k.algorithm(), k.public_key().as_bytes().to_vec())],
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
    })
    .expect("document")
}

struct World {
    issuer_key: SigningKey,
    holder_key: SigningKey,
    other_key: SigningKey,
    issuer: DidDocument,
    holder: DidDocument,
    resolver: DocumentResolver,
}

fn world() -> World {
    let issuer_key = key(1);
    let holder_key = key(2);
    let other_key = key(3);
    let issuer = document(&issuer_key);
    let holder = document(&holder_key);
    let other = document(&other_key);
    let resolver = DocumentResolver::new()
        .with(issuer.clone())
        .with(holder.clone())
        .with(other);
    World {
        issuer_key,
        holder_key,
        other_key,
        issuer,
        holder,
        resolver,
    }
}

fn unsigned(w: &World, contexts: &[&str]) -> Credential {
    Credential::from_value(json!({
        "@context": contexts,
        "id": "urn:uuid:6b1f3c2e-8d4a-4f0b-9c1e-2a3b4c5d6e7f",
        "type": ["VerifiableCredential", "MTPAuthorityDelegation"],
        "issuer": w.issuer.id,
        "validFrom": "2026-01-01T00:00:00Z",
        "credentialSubject": {
            "id": w.holder.id,
            "scope": ["mtp:compute/inference"],
            "maxTransactionValue": { "amount": 5000, "currency": "USD" },
            "permittedJurisdictions": ["US", "DE"],
            "permittedPaymentRails": ["rail-marker-ach"],
            "permittedCounterpartyClasses": ["class-marker-merchant"],
            "constraints": { "dailyLimitMarker": 20000 }
        }
    }))
    .expect("credential")
}

fn options(w: &World) -> ProofOptions {
    ProofOptions {
        verification_method: format!("{}#key-1", w.issuer.id),
        created: Timestamp::from_unix_secs(1_767_225_600).unwrap(),
    }
}

fn issued(w: &World, seed: u8) -> SdCredential {
    let mut rng = SeededRng::from_seed([seed; 32]);
    issue(
        &unsigned(w, &[CREDENTIALS_V2, MTP_V1]),
        &DISCLOSABLE,
        2,
        &mut rng,
        &w.issuer_key,
        &options(w),
    )
    .expect("issue")
}

fn request_nonce() -> String {
    nonce_for(&MtpUuid::new(
        ObjectType::Request,
        1_767_225_600_000_000_000,
        [1; 6],
        [2; 17],
    ))
}

const AUD: &str = "did:mtp:counterparty";

fn kb<'a>(w: &'a World, vm: &'a str, nonce: &'a str) -> KeyBinding<'a> {
    KeyBinding {
        holder_key: &w.holder_key,
        verification_method: vm,
        nonce,
        aud: AUD,
        iat: Timestamp::from_unix_secs(1_767_225_700).unwrap(),
    }
}

fn holder_vm(w: &World) -> String {
    format!("{}#key-1", w.holder.id)
}

fn b64d(s: &str) -> String {
    String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .unwrap(),
    )
    .unwrap()
}

fn expect_err(
    w: &World,
    presentation: &str,
    nonce: &str,
    aud: &str,
    code: ErrorCode,
) -> DisclosureError {
    let e = verify_presentation(presentation, &w.resolver, nonce, aud).unwrap_err();
    assert_eq!(e.code(), code, "{e:?}");
    e
}

#[test]
fn two_of_five_revealed_and_timings() {
    let w = world();
    let t = Instant::now();
    let sd = issued(&w, 9);
    let issue_time = t.elapsed();
    assert_eq!(sd.disclosures.len(), 5);
    let subject = sd.credential.subject().unwrap();
    for n in DISCLOSABLE {
        assert!(!subject.contains_key(n), "{n} still visible");
    }
    let digests = subject["_sd"].as_array().unwrap();
    assert_eq!(digests.len(), 7, "5 digests + 2 decoys");
    let mut sorted = digests.clone();
    sorted.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    assert_eq!(&sorted, digests);
    assert_eq!(subject["_sd_alg"], "sha-256");
    credential::verify(&sd.credential, &w.resolver).expect("credential proof");

    let nonce = request_nonce();
    let vm = holder_vm(&w);
    let t = Instant::now();
    let p = present(&sd, &REVEAL, &kb(&w, &vm, &nonce)).unwrap();
    let present_time = t.elapsed();
    verify_presentation(&p, &w.resolver, &nonce, AUD).expect("verifies");
    const N: u32 = 10;
    let t = Instant::now();
    for _ in 0..N {
        verify_presentation(&p, &w.resolver, &nonce, AUD).expect("verifies");
    }
    let verify_time = t.elapsed() / N;
    let v = verify_presentation(&p, &w.resolver, &nonce, AUD).expect("verifies");
    println!(
        "TIMING sd issue (RDFC + ML-DSA-65) {issue_time:?}, present {present_time:?}, verify {verify_time:?}"
    );

    // Disclosures are in issuance (credentialSubject) order.
    assert_eq!(
        v.disclosed,
        ["maxTransactionValue", "permittedJurisdictions"]
    );
    assert_eq!(v.undisclosed, 5);
    assert_eq!(v.holder, w.holder.id);
    assert_eq!(v.credential.issuer, w.issuer.id);
    assert_eq!(v.issued_at, 1_767_225_700);
    let keys: Vec<&str> = v.claims.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "id",
            "scope",
            "maxTransactionValue",
            "permittedJurisdictions"
        ]
    );
    assert_eq!(v.claims["permittedJurisdictions"], json!(["US", "DE"]));
    assert_eq!(
        v.claims["maxTransactionValue"],
        json!({ "amount": 5000, "currency": "USD" })
    );

    // Neither the text nor any decoded part carries the three hidden claims.
    let mut decoded = String::new();
    for part in p.split('~') {
        for piece in part.split('.') {
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(piece)
                .unwrap();
            decoded.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    for m in HIDDEN_MARKERS.iter().chain(&[
        "permittedPaymentRails",
        "permittedCounterpartyClasses",
        "constraints",
    ]) {
        assert!(!p.contains(m) && !decoded.contains(m), "{m} leaked");
    }
    // The revealed ones are there.
    assert!(decoded.contains("permittedJurisdictions"));

    // No disclosure at all is also a valid presentation.
    let p0 = present(&sd, &[], &kb(&w, &vm, &nonce)).unwrap();
    let v0 = verify_presentation(&p0, &w.resolver, &nonce, AUD).unwrap();
    assert_eq!(v0.undisclosed, 7);
    assert!(v0.disclosed.is_empty());
}

/// Re-presents with `disclosures` swapped in (the key binding is then valid for it).
fn with_disclosures(sd: &SdCredential, extra: Vec<Disclosure>) -> SdCredential {
    let mut sd = sd.clone();
    sd.disclosures.extend(extra);
    sd
}

#[test]
fn forged_disclosures_fail() {
    let w = world();
    let sd = issued(&w, 9);
    let nonce = request_nonce();
    let vm = holder_vm(&w);
    let jur = sd
        .disclosures
        .iter()
        .find(|d| d.name() == "permittedJurisdictions")
        .unwrap()
        .clone();
    let salt = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(jur.salt())
        .unwrap();

    let cases: Vec<(&str, Disclosure)> = vec![
        (
            "never issued",
            Disclosure::new(&[5; 16], "spendingCategory", json!("anything")),
        ),
        (
            "value changed",
            Disclosure::new(&salt, "permittedJurisdictions", json!(["US", "DE", "FR"])),
        ),
        (
            "re-salted",
            Disclosure::new(&[6; 16], "permittedJurisdictions", json!(["US", "DE"])),
        ),
    ];
    for (what, d) in cases {
        // Replace the genuine disclosure by the forged one.
        let mut forged = sd.clone();
        forged
            .disclosures
            .retain(|x| x.name() != "permittedJurisdictions");
        forged.disclosures.push(d);
        let reveal: Vec<&str> = forged.disclosures.iter().map(Disclosure::name).collect();
        let p = present(&forged, &reveal, &kb(&w, &vm, &nonce)).unwrap();
        let e = expect_err(&w, &p, &nonce, AUD, ErrorCode::AuthorityAttestationInvalid);
        assert!(matches!(e, DisclosureError::NotInSd(_)), "{what}: {e:?}");
    }

    // The same disclosure twice.
    let twice = with_disclosures(&sd, vec![jur.clone()]);
    let p = present(&twice, &["permittedJurisdictions"], &kb(&w, &vm, &nonce)).unwrap();
    let e = expect_err(&w, &p, &nonce, AUD, ErrorCode::AuthorityAttestationInvalid);
    assert!(matches!(e, DisclosureError::Duplicate(_)), "{e:?}");

    // Malformed disclosure texts.
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let salt16 = b64(&"s".repeat(16));
    let salt8 = b64(&"s".repeat(8));
    for text in [
        "!!".to_owned(),
        b64("not json"),
        b64("{\"a\":1}"),
        b64(&format!("[\"{salt16}\",\"x\"]")),
        b64(&format!("[\"{salt16}\",\"x\",1,2]")),
        b64(&format!("[\"{salt8}\",\"x\",1]")),
        b64("[1,\"x\",1]"),
        b64(&format!("[\"{salt16}\",2,1]")),
        b64(&format!("[\"{salt16}\",\"_sd\",1]")),
        b64(&format!("[\"{salt16}\",\"_sd_alg\",1]")),
        b64(&format!("[\"{salt16}\",\"id\",1]")),
        b64(&format!("[\"{salt16}\",\"@id\",1]")),
    ] {
        let e = Disclosure::parse(&text).unwrap_err();
        assert_eq!(e.code(), ErrorCode::AuthorityAttestationInvalid, "{text}");
        // Spliced into a presentation (KB recomputed over it by hand is not needed: the
        // disclosure check comes first).
        let p = present(&sd, &[], &kb(&w, &vm, &nonce)).unwrap();
        let (head, kbp) = p.split_at(p.rfind('~').unwrap() + 1);
        let spliced = format!("{head}{text}~{kbp}");
        expect_err(
            &w,
            &spliced,
            &nonce,
            AUD,
            ErrorCode::AuthorityAttestationInvalid,
        );
    }
    // An empty disclosure segment.
    let p = present(&sd, &[], &kb(&w, &vm, &nonce)).unwrap();
    let (head, kbp) = p.split_at(p.rfind('~').unwrap() + 1);
    expect_err(
        &w,
        &format!("{head}~{kbp}"),
        &nonce,
        AUD,
        ErrorCode::AuthorityAttestationInvalid,
    );
}

#[test]
fn tampered_credential_fails_signature() {
    let w = world();
    let sd = issued(&w, 9);
    let nonce = request_nonce();
    let vm = holder_vm(&w);
    let mut t = sd.clone();
    t.credential.as_map_mut()["credentialSubject"]["scope"] = json!(["mtp:everything"]);
    let p = present(&t, &REVEAL, &kb(&w, &vm, &nonce)).unwrap();
    let e = expect_err(&w, &p, &nonce, AUD, ErrorCode::SignatureVerificationFailure);
    assert!(matches!(e, DisclosureError::Credential(_)), "{e:?}");
    // Removing a digest from _sd also breaks the credential proof.
    let mut t = sd.clone();
    t.credential.as_map_mut()["credentialSubject"]["_sd"]
        .as_array_mut()
        .unwrap()
        .pop();
    let p = present(&t, &[], &kb(&w, &vm, &nonce)).unwrap();
    expect_err(&w, &p, &nonce, AUD, ErrorCode::SignatureVerificationFailure);
}

#[test]
fn key_binding_checks() {
    let w = world();
    let sd = issued(&w, 9);
    let nonce = request_nonce();
    let vm = holder_vm(&w);
    let p = present(&sd, &REVEAL, &kb(&w, &vm, &nonce)).unwrap();

    // Wrong nonce / aud.
    let e = expect_err(
        &w,
        &p,
        "another-request",
        AUD,
        ErrorCode::AuthorityAttestationInvalid,
    );
    assert_eq!(e, DisclosureError::NonceMismatch);
    let e = expect_err(
        &w,
        &p,
        &nonce,
        "did:mtp:someone-else",
        ErrorCode::AuthorityAttestationInvalid,
    );
    assert_eq!(e, DisclosureError::AudienceMismatch);

    // Missing KB.
    let (head, kb_text) = p.split_at(p.rfind('~').unwrap() + 1);
    let e = expect_err(
        &w,
        head,
        &nonce,
        AUD,
        ErrorCode::SignatureVerificationFailure,
    );
    assert_eq!(e, DisclosureError::MissingKeyBinding);

    // Forged KB: another key under the holder's kid.
    let forged = KeyBinding {
        holder_key: &w.other_key,
        ..kb(&w, &vm, &nonce)
    };
    let p2 = present(&sd, &REVEAL, &forged).unwrap();
    let e = expect_err(
        &w,
        &p2,
        &nonce,
        AUD,
        ErrorCode::SignatureVerificationFailure,
    );
    assert_eq!(e, DisclosureError::KeyBindingSignature);

    // A KB by someone other than the credential subject (the issuer, with its own kid).
    let issuer_vm = format!("{}#key-1", w.issuer.id);
    let by_issuer = KeyBinding {
        holder_key: &w.issuer_key,
        ..kb(&w, &issuer_vm, &nonce)
    };
    let p3 = present(&sd, &REVEAL, &by_issuer).unwrap();
    let e = expect_err(
        &w,
        &p3,
        &nonce,
        AUD,
        ErrorCode::SignatureVerificationFailure,
    );
    assert!(matches!(e, DisclosureError::HolderMismatch(_)), "{e:?}");

    // Payload edited after signing (nonce swapped).
    let (first, sig) = kb_text.split_once('.').unwrap();
    let payload = b64d(first).replace(&nonce, "another-request");
    let edited = format!(
        "{head}{}.{sig}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload)
    );
    let e = expect_err(
        &w,
        &edited,
        "another-request",
        AUD,
        ErrorCode::SignatureVerificationFailure,
    );
    assert_eq!(e, DisclosureError::KeyBindingSignature);

    // A flipped signature byte.
    let mut sig_bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sig)
        .unwrap();
    sig_bytes[100] ^= 1;
    let flipped = format!(
        "{head}{first}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig_bytes)
    );
    expect_err(
        &w,
        &flipped,
        &nonce,
        AUD,
        ErrorCode::SignatureVerificationFailure,
    );

    // A valid KB moved to a presentation with fewer disclosures: sd_hash differs.
    let fewer = present(&sd, &["maxTransactionValue"], &kb(&w, &vm, &nonce)).unwrap();
    let fewer_head = &fewer[..fewer.rfind('~').unwrap() + 1];
    let e = expect_err(
        &w,
        &format!("{fewer_head}{kb_text}"),
        &nonce,
        AUD,
        ErrorCode::AuthorityAttestationInvalid,
    );
    assert_eq!(e, DisclosureError::SdHashMismatch);

    // Garbage KBs.
    for bad in ["x", "x.y", ".", "e30.AAAA"] {
        let e = verify_presentation(&format!("{head}{bad}"), &w.resolver, &nonce, AUD).unwrap_err();
        assert!(
            matches!(
                e.code(),
                ErrorCode::AuthorityAttestationInvalid | ErrorCode::SignatureVerificationFailure
            ),
            "{bad}: {e:?}"
        );
    }
    // Not a presentation at all.
    for bad in ["", "~", "abc", "~~"] {
        assert!(verify_presentation(bad, &w.resolver, &nonce, AUD).is_err());
    }
}

#[test]
fn deterministic_for_a_fixed_seed() {
    let w = world();
    let a = issued(&w, 9);
    let b = issued(&w, 9);
    assert_eq!(a, b);
    assert_eq!(a.credential.to_json(), b.credential.to_json());
    let nonce = request_nonce();
    let vm = holder_vm(&w);
    assert_eq!(
        present(&a, &REVEAL, &kb(&w, &vm, &nonce)).unwrap(),
        present(&b, &REVEAL, &kb(&w, &vm, &nonce)).unwrap()
    );
    let c = issued(&w, 10);
    assert_ne!(a.disclosures[0].salt(), c.disclosures[0].salt());
    assert_ne!(
        a.credential.subject().unwrap()["_sd"],
        c.credential.subject().unwrap()["_sd"]
    );
    // Salts are 128-bit.
    for d in &a.disclosures {
        assert_eq!(d.salt().len(), 22);
        assert_eq!(Disclosure::parse(d.as_str()).unwrap(), d.clone());
    }
}

#[test]
fn issuance_rules() {
    let w = world();
    let mut rng = SeededRng::from_seed([1; 32]);
    let good = unsigned(&w, &[CREDENTIALS_V2, MTP_V1]);
    for bad in ["id", "_sd", "@type", "notAClaim"] {
        assert_eq!(
            make_disclosable(&good, &[bad], 0, &mut rng).unwrap_err(),
            DisclosureError::NotDisclosable(bad.into())
        );
    }
    assert!(matches!(
        make_disclosable(&good, &["constraints", "constraints"], 0, &mut rng),
        Err(DisclosureError::NotDisclosable(_))
    ));
    let sd = make_disclosable(&good, &["constraints"], 0, &mut rng).unwrap();
    assert_eq!(
        make_disclosable(&sd.credential, &["scope"], 0, &mut rng).unwrap_err(),
        DisclosureError::AlreadySelective
    );
    let nonce = request_nonce();
    let vm = holder_vm(&w);
    let signed = issued(&w, 9);
    assert_eq!(
        present(&signed, &["scope"], &kb(&w, &vm, &nonce)).unwrap_err(),
        DisclosureError::UnknownClaim("scope".into())
    );
}

#[test]
fn disclosure_colliding_with_a_visible_claim_is_refused() {
    // An issuer that (wrongly) hides a second `scope` behind a digest.
    let w = world();
    let d = Disclosure::new(&[8; 16], "scope", json!(["mtp:everything"]));
    let mut c = unsigned(&w, &[CREDENTIALS_V2, MTP_V1]);
    let subject = c.as_map_mut()["credentialSubject"].as_object_mut().unwrap();
    subject.insert("_sd".into(), json!([d.digest()]));
    subject.insert("_sd_alg".into(), Json::from("sha-256"));
    let signed = credential::sign(&c, &w.issuer_key, &options(&w)).unwrap();
    let sd = SdCredential {
        credential: signed,
        disclosures: vec![d],
    };
    let nonce = request_nonce();
    let vm = holder_vm(&w);
    let p = present(&sd, &["scope"], &kb(&w, &vm, &nonce)).unwrap();
    let e = expect_err(&w, &p, &nonce, AUD, ErrorCode::AuthorityAttestationInvalid);
    assert_eq!(e, DisclosureError::NameCollision("scope".into()));

    // And an unsupported _sd_alg.
    let mut c = unsigned(&w, &[CREDENTIALS_V2, MTP_V1]);
    let subject = c.as_map_mut()["credentialSubject"].as_object_mut().unwrap();
    subject.insert("_sd".into(), json!([]));
    subject.insert("_sd_alg".into(), Json::from("sha-512"));
    let sd = SdCredential {
        credential: credential::sign(&c, &w.issuer_key, &options(&w)).unwrap(),
        disclosures: vec![],
    };
    let p = present(&sd, &[], &kb(&w, &vm, &nonce)).unwrap();
    let e = expect_err(&w, &p, &nonce, AUD, ErrorCode::AuthorityAttestationInvalid);
    assert_eq!(e, DisclosureError::UnsupportedAlgorithm);
}
