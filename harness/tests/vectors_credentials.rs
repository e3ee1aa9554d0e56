//! The committed identity-credential vectors (`vectors/credentials/`): the generator
//! reproduces them byte for byte, and each one verifies from its files alone (DID
//! Documents, credentials, presentation and proof as committed).
//!
//! Run with `--profile ci`: post-quantum signatures and Bulletproofs are slow unoptimised.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use mtp_harness::vectors::{self, MASTER, REGENERATE, VectorError, VectorFile, credentials};
use mtp_protocol::cbor::{self, diag};
use mtp_protocol::crypto::{SignatureAlgorithm, SigningKey, seed};
use mtp_protocol::identity::authority_proof::{
    self as ap, MaxValueCommitment, MinorAmount, ProofContext, ZkRangeProof,
};
use mtp_protocol::identity::credential::{self, Credential, Cryptosuite, DocumentResolver};
use mtp_protocol::identity::delegation::AuthorityDelegation;
use mtp_protocol::identity::disclosure::{self, Disclosure};
use mtp_protocol::identity::document::DidDocument;
use mtp_protocol::identity::jsonld;
use mtp_protocol::primitives::common::{Number, PriceSpec, PriceUnit};
use mtp_protocol::uuid::MtpUuid;
use serde_json::Value;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../vectors")
}

fn read(rel: &str) -> Vec<u8> {
    let path = corpus().join(rel);
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}\nregenerate with: {REGENERATE}", path.display()))
}

fn load(rel: &str) -> Value {
    serde_json::from_slice(&read(rel)).unwrap_or_else(|e| panic!("{rel}: not JSON: {e}"))
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{pointer} is not a string"))
}

fn credential_at(v: &Value, pointer: &str) -> Credential {
    Credential::from_value(v.pointer(pointer).cloned().expect(pointer)).expect("credential")
}

/// Every `- id:` of docs/requirements.yaml.
fn requirement_ids() -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/requirements.yaml");
    std::fs::read_to_string(path)
        .expect("requirements.yaml")
        .lines()
        .filter_map(|l| l.strip_prefix("- id: "))
        .map(|s| s.trim().to_owned())
        .collect()
}

/// The resolver of `inputs.did_documents`, after checking the documents and that every
/// seed in `inputs.seeds` derives as stated (and each signature key is in a document).
fn resolver(v: &Value) -> DocumentResolver {
    assert_eq!(str_at(v, "/inputs/master_seed"), hex::encode(MASTER));
    let docs: Vec<DidDocument> = v["inputs"]["did_documents"]
        .as_array()
        .expect("did_documents")
        .iter()
        .map(|d| serde_json::from_value(d.clone()).expect("DID Document"))
        .collect();
    for d in &docs {
        d.validate().unwrap_or_else(|e| panic!("{}: {e:?}", d.id));
    }
    let public_keys: Vec<Vec<u8>> = docs
        .iter()
        .flat_map(|d| d.assertion_keys())
        .map(|(_, _, pk)| pk)
        .collect();
    for s in v["inputs"]["seeds"].as_array().expect("seeds") {
        let label = str_at(s, "/label");
        let seed_hex = str_at(s, "/seed");
        let derived = if seed_hex.len() == 128 {
            seed::derive_array::<64>(&MASTER, label).to_vec()
        } else {
            seed::derive(&MASTER, label).to_vec()
        };
        assert_eq!(hex::encode(&derived), seed_hex, "seed {label}");
        let alg = SignatureAlgorithm::ALL
            .into_iter()
            .find(|a| a.label() == str_at(s, "/purpose"));
        if let Some(alg) = alg {
            let key = SigningKey::from_seed(alg, &derived.try_into().expect("32 bytes"));
            assert!(
                public_keys.contains(&key.public_key().as_bytes().to_vec()),
                "{label}: key not in any DID Document"
            );
        }
    }
    docs.into_iter().collect()
}

fn check_requirements(v: &Value) {
    let known = requirement_ids();
    let reqs = v["requirements"].as_array().expect("requirements");
    assert!(!reqs.is_empty());
    for r in reqs {
        let r = r.as_str().expect("id");
        assert!(known.contains(r), "{}: unknown requirement {r}", v["id"]);
    }
}

// ---------------------------------------------------------------------------------------
// Byte-for-byte regeneration
// ---------------------------------------------------------------------------------------

#[test]
fn committed_credentials_vectors_match_the_generator() {
    let files = credentials::generate().expect("generate");
    let mut names: Vec<String> = files
        .iter()
        .map(|f| f.path.to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "credentials/adc-mldsa65.json",
            "credentials/adc-slhdsa192s.json",
            "credentials/sd-2-of-5.json",
            "credentials/zk-range.cbor",
            "credentials/zk-range.diag",
            "credentials/zk-range.json",
        ]
    );
    let mut problems = Vec::new();
    for f in &files {
        let path = corpus().join(&f.path);
        match std::fs::read(&path) {
            Ok(bytes) if bytes == f.bytes => {}
            Ok(bytes) => {
                let at = bytes
                    .iter()
                    .zip(&f.bytes)
                    .position(|(a, b)| a != b)
                    .unwrap_or(bytes.len().min(f.bytes.len()));
                problems.push(format!(
                    "{}: differs from the generator (first difference at byte {at}; \
                     committed {} bytes, generated {})",
                    path.display(),
                    bytes.len(),
                    f.bytes.len()
                ));
            }
            Err(e) => problems.push(format!("{}: {e}", path.display())),
        }
    }
    // No stray files in the family folder.
    if let Ok(dir) = std::fs::read_dir(corpus().join(credentials::FAMILY)) {
        for entry in dir.flatten() {
            let rel = format!(
                "{}/{}",
                credentials::FAMILY,
                entry.file_name().to_string_lossy()
            );
            if !names.contains(&rel) {
                problems.push(format!("{rel}: not produced by the generator"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{}\nregenerate with: {REGENERATE}",
        problems.join("\n")
    );
    // JSON vectors are pretty-printed with a trailing newline.
    for f in files
        .iter()
        .filter(|f| f.path.extension().is_some_and(|e| e == "json"))
    {
        assert_eq!(f.bytes.last(), Some(&b'\n'));
        let v: Value = serde_json::from_slice(&f.bytes).expect("JSON");
        let mut again = serde_json::to_vec_pretty(&v).expect("JSON");
        again.push(b'\n');
        assert_eq!(again, f.bytes, "{}", f.path.display());
        assert_eq!(
            format!("{}.json", str_at(&v, "/id")),
            f.path.to_string_lossy()
        );
        for k in ["id", "requirements", "description", "inputs", "expected"] {
            assert!(v.get(k).is_some(), "{}: no {k}", f.path.display());
        }
        check_requirements(&v);
    }
}

#[test]
fn families_are_listed_and_write_stays_inside_the_folder() {
    assert!(
        vectors::FAMILIES
            .iter()
            .any(|(name, _)| *name == credentials::FAMILY)
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let files = vec![
        VectorFile::text("a/b.diag", "x"),
        VectorFile::binary("a/c.cbor", vec![0xa0]),
        VectorFile::json("d.json", &serde_json::json!({"k": 1})).expect("json"),
    ];
    vectors::write(dir.path(), &files).expect("write");
    assert_eq!(std::fs::read(dir.path().join("a/b.diag")).unwrap(), b"x\n");
    assert_eq!(std::fs::read(dir.path().join("a/c.cbor")).unwrap(), [0xa0]);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("d.json")).unwrap(),
        "{\n  \"k\": 1\n}\n"
    );
    for bad in ["../escape.json", "/abs.json"] {
        let e = vectors::write(dir.path(), &[VectorFile::text(bad, "x")]).unwrap_err();
        assert!(matches!(e, VectorError::BadPath(_)), "{e}");
    }
}

// ---------------------------------------------------------------------------------------
// Verification from the committed files alone
// ---------------------------------------------------------------------------------------

fn check_adc(rel: &str, suite: Cryptosuite) {
    let v = load(rel);
    let keys = resolver(&v);
    let signed = credential_at(&v, "/expected/signed_credential");
    let verified = credential::verify(&signed, &keys).expect("credential verifies");
    assert_eq!(verified.cryptosuite, suite);
    assert_eq!(str_at(&v, "/expected/cryptosuite"), suite.label());
    assert_eq!(
        verified.verification_method,
        str_at(&v, "/inputs/proof_options/verificationMethod")
    );

    // The signed credential is the unsigned input plus its proof.
    let unsigned = credential_at(&v, "/inputs/unsigned_credential");
    assert_eq!(signed.without_proof(), unsigned);
    let adc = AuthorityDelegation::from_credential(&signed).expect("ADC");
    assert_eq!(adc.issuer, verified.issuer);
    assert_eq!(adc.principal.as_deref(), Some(verified.issuer.as_str()));
    assert_eq!(
        signed.as_map()["credentialStatus"]["type"],
        "StatusList2021Entry"
    );

    // Intermediate values (PROFILE G-34).
    let proof = signed
        .proof_value()
        .and_then(Value::as_object)
        .expect("proof");
    let config = credential::proof_config(&unsigned, proof);
    assert_eq!(Value::Object(config.clone()), v["expected"]["proof_config"]);
    assert_eq!(
        jsonld::canonicalize(&Value::Object(config)).expect("RDFC"),
        str_at(&v, "/expected/canonical_proof_config_nquads")
    );
    assert_eq!(
        unsigned.canonical_nquads().expect("RDFC"),
        str_at(&v, "/expected/canonical_document_nquads")
    );
    let hash = credential::hash_data(&unsigned, proof).expect("hashData");
    assert_eq!(hex::encode(&hash), str_at(&v, "/expected/hash_data"));
    assert_eq!(proof["proofValue"], v["expected"]["proof_value"]);
    let sig = credential::decode_proof_value(str_at(&v, "/expected/proof_value")).expect("z…");
    assert_eq!(
        Some(sig.len() as u64),
        v["expected"]["signature_length"].as_u64()
    );
    assert_eq!(v["expected"]["verification"], true);

    // The recorded tamper breaks the proof.
    let mut tampered = signed.clone().into_value();
    *tampered
        .pointer_mut(str_at(&v, "/inputs/tamper/pointer"))
        .expect("tamper target") = v["inputs"]["tamper"]["value"].clone();
    let tampered = Credential::from_value(tampered).expect("credential");
    assert!(credential::verify(&tampered, &keys).is_err());
    assert_eq!(v["expected"]["tampered_verification"], false);
}

#[test]
fn adc_mldsa65_verifies_from_the_files() {
    check_adc("credentials/adc-mldsa65.json", Cryptosuite::MtpMlDsa2026);
}

#[test]
fn adc_slhdsa192s_verifies_from_the_files() {
    check_adc(
        "credentials/adc-slhdsa192s.json",
        Cryptosuite::MtpSlhDsa2026,
    );
}

#[test]
fn sd_2_of_5_verifies_from_the_files() {
    let v = load("credentials/sd-2-of-5.json");
    let keys = resolver(&v);
    let presentation = str_at(&v, "/expected/presentation");
    let nonce = str_at(&v, "/inputs/key_binding/nonce");
    let aud = str_at(&v, "/inputs/key_binding/aud");
    let request_id = MtpUuid::parse(str_at(&v, "/inputs/key_binding/request_id")).expect("id");
    assert_eq!(disclosure::nonce_for(&request_id), nonce);

    let vp = disclosure::verify_presentation(presentation, &keys, nonce, aud)
        .expect("presentation verifies");
    assert_eq!(v["expected"]["verification"], true);
    assert_eq!(vp.holder, str_at(&v, "/expected/holder"));
    assert_eq!(
        serde_json::to_value(&vp.disclosed).unwrap(),
        v["expected"]["disclosed"]
    );
    assert_eq!(vp.disclosed.len(), 2);
    assert_eq!(Value::Object(vp.claims.clone()), v["expected"]["claims"]);
    assert_eq!(
        Some(vp.undisclosed as u64),
        v["expected"]["undisclosed_digests"].as_u64()
    );
    assert_eq!(
        vp.issued_at,
        v["inputs"]["key_binding"]["iat"].as_i64().expect("iat")
    );

    // The presentation carries the committed SD credential.
    let first = presentation.split('~').next().expect("credential part");
    let cred_json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(first)
        .expect("base64url");
    let cred: Value = serde_json::from_slice(&cred_json).expect("JSON");
    assert_eq!(cred, v["expected"]["sd_credential"]);
    let sd = cred["credentialSubject"]["_sd"]
        .as_array()
        .expect("_sd")
        .iter()
        .map(|d| d.as_str().expect("digest").to_owned())
        .collect::<BTreeSet<_>>();
    assert_eq!(
        sd.len() as u64,
        v["inputs"]["disclosable"].as_array().unwrap().len() as u64
            + v["inputs"]["decoys"].as_u64().unwrap()
    );

    // Every disclosure parses, is in _sd, and appears in the presentation iff revealed.
    let reveal = v["inputs"]["reveal"].as_array().expect("reveal");
    let all = v["expected"]["disclosures"]
        .as_array()
        .expect("disclosures");
    assert_eq!(all.len(), 5);
    for d in all {
        let parsed = Disclosure::parse(str_at(d, "/disclosure")).expect("disclosure");
        assert_eq!(parsed.name(), str_at(d, "/name"));
        assert_eq!(parsed.salt(), str_at(d, "/salt"));
        assert_eq!(parsed.value(), &d["value"]);
        assert_eq!(parsed.digest(), str_at(d, "/digest"));
        assert!(sd.contains(&parsed.digest()));
        let revealed = reveal.iter().any(|r| r == parsed.name());
        assert_eq!(
            presentation.contains(parsed.as_str()),
            revealed,
            "{}",
            parsed.name()
        );
        assert!(
            !cred["credentialSubject"]
                .as_object()
                .unwrap()
                .contains_key(parsed.name())
        );
    }

    // Bound to the nonce and audience.
    assert!(disclosure::verify_presentation(presentation, &keys, "other", aud).is_err());
    assert!(disclosure::verify_presentation(presentation, &keys, nonce, "did:example:x").is_err());
    assert_eq!(v["expected"]["wrong_nonce_verification"], false);
}

fn price(v: &Value) -> PriceSpec {
    let amount = match (v["amount"].as_i64(), v["amount"].as_f64()) {
        (Some(i), _) => Number::Int(i.into()),
        (None, Some(f)) => Number::Float(f),
        _ => panic!("amount is not a number"),
    };
    PriceSpec::new(amount, PriceUnit::parse(str_at(v, "/unit")).expect("unit"))
}

#[test]
fn zk_range_verifies_from_the_files() {
    let v = load("credentials/zk-range.json");
    let keys = resolver(&v);

    // CBOR and diagnostic notation files.
    let bytes = read("credentials/zk-range.cbor");
    assert_eq!(
        hex::encode(&bytes),
        str_at(&v, "/expected/authority_proof_cbor")
    );
    cbor::check_deterministic(&bytes).expect("deterministic CBOR");
    let proof = ZkRangeProof::from_cbor(&bytes).expect("authority proof");
    assert_eq!(proof.to_cbor().expect("encode"), bytes);
    let diag_text = String::from_utf8(read("credentials/zk-range.diag")).expect("UTF-8");
    let value = cbor::from_slice(&bytes).expect("CBOR");
    assert_eq!(diag_text, format!("{}\n", diag::value_to_diag(&value)));
    assert_eq!(
        diag_text,
        format!("{}\n", str_at(&v, "/expected/authority_proof_diag"))
    );
    assert_eq!(hex::encode(&proof.proof), str_at(&v, "/expected/proof"));
    assert_eq!(proof.commitment.len(), 32);

    // The credential: signed, limit hidden, commitment as recorded.
    let cred = credential_at(&v, "/inputs/credential");
    credential::verify(&cred, &keys).expect("credential verifies");
    let limit_claim = &cred.subject().expect("subject")["maxTransactionValue"];
    assert!(limit_claim.get("amount").is_none(), "limit is visible");
    let commitment = MaxValueCommitment::from_credential(&cred).expect("commitment");
    assert_eq!(
        hex::encode(commitment.point),
        str_at(&v, "/expected/commitment")
    );
    assert_eq!(
        commitment.to_claim(),
        str_at(&v, "/expected/commitment_claim")
    );
    assert_eq!(proof.commitment, commitment.point);

    // The holder's side: the commitment re-derives from the secret and the limit.
    let secret: [u8; 32] = hex::decode(str_at(&v, "/inputs/holder_secret"))
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    let limit = MinorAmount::new(
        v["inputs"]["limit"]["minor_units"].as_u64().expect("units"),
        str_at(&v, "/inputs/limit/currency"),
    );
    let recommitted =
        MaxValueCommitment::commit(&limit, &secret, cred.id().expect("id")).expect("commit");
    assert_eq!(recommitted, commitment);

    // The proof verifies for the recorded amount, request and counterparty.
    let amount = price(&v["inputs"]["amount"]);
    assert_eq!(proof.amount, amount);
    let request_id = MtpUuid::parse(str_at(&v, "/inputs/request_id")).expect("request id");
    assert_eq!(
        hex::encode(request_id.as_bytes()),
        str_at(&v, "/inputs/request_id_hex")
    );
    let counterparty = str_at(&v, "/inputs/counterparty");
    let ctx = ProofContext::for_credential(&request_id, counterparty, &cred).expect("ctx");
    assert_eq!(
        hex::encode(ctx.credential_binding),
        str_at(&v, "/expected/credential_binding")
    );
    assert_eq!(
        ap::verify(&commitment, &amount, &ctx, &proof).is_ok(),
        v["expected"]["verification"].as_bool().expect("bool")
    );
    assert_eq!(v["expected"]["verification"], true);
    // Another counterparty does not verify.
    let other_cp = ProofContext::for_credential(&request_id, "did:example:other", &cred).unwrap();
    assert!(ap::verify(&commitment, &amount, &other_cp, &proof).is_err());

    // Negative case: the second credential with the same limit.
    let other = credential_at(&v, "/inputs/other_credential");
    credential::verify(&other, &keys).expect("other credential verifies");
    let other_commitment = MaxValueCommitment::from_credential(&other).expect("commitment");
    assert_eq!(
        hex::encode(other_commitment.point),
        str_at(&v, "/expected/other_commitment")
    );
    assert_eq!(
        MaxValueCommitment::commit(&limit, &secret, other.id().expect("id")).unwrap(),
        other_commitment
    );
    let other_ctx = ProofContext::for_credential(&request_id, counterparty, &other).expect("ctx");
    assert_eq!(
        ap::verify(&other_commitment, &amount, &other_ctx, &proof).is_ok(),
        v["expected"]["expected_other_credential"]
            .as_bool()
            .expect("bool")
    );
    assert_eq!(v["expected"]["expected_other_credential"], false);
    // Even with the commitment rewritten to the other credential's.
    let mut moved = proof.clone();
    moved.commitment = other_commitment.point;
    assert!(ap::verify(&other_commitment, &amount, &other_ctx, &moved).is_err());
}
