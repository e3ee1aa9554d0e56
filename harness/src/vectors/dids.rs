//! `did:mtp` vectors (BIND II-A; PROFILE G-05, G-32): derivations from fixed ML-DSA keys
//! (`did:mtp:` ‖ base58btc(SHA-256(raw FIPS 204 public key))), the shared world's DID
//! Documents (JSON-LD, Multikey verification methods, MTPSync / MTPAsync services,
//! Algorithm Support Profile), and malformed DIDs.
//!
//! Seeds: `did/ml-dsa-65/<n>`, `did/ml-dsa-87/1`, `did/leading-zero/<n>` (the first `n`
//! whose key's SHA-256 starts with a zero byte), and the world's party keys.

use serde_json::{Value as Json, json};

use mtp_protocol::cbor::{self, Value};
use mtp_protocol::crypto::{SignatureAlgorithm, SigningKey, seed, sha256};
use mtp_protocol::errors::Coded;
use mtp_protocol::identity::{Did, DidDocument};

use super::doc::{VectorDoc, files_of, seed_header};
use super::world::{Party, world};
use super::{At, MASTER, VectorError, VectorFile, ensure};

/// The family name (folder under `vectors/`).
pub const FAMILY: &str = "did";

const DERIVATION: &[&str] = &[
    "SPEC-III-A-1-01",
    "SPEC-III-A-1-02",
    "BIND-II-A-I01",
    "BIND-II-A-I02",
    "BIND-VI-E-02",
    "BIND-VI-E-I01",
];

fn derivation(name: &str, label: &str, alg: SignatureAlgorithm) -> Result<VectorDoc, VectorError> {
    let id = format!("{FAMILY}/{name}");
    let s = seed::derive(&MASTER, label);
    let key = SigningKey::from_seed(alg, &s);
    let pk = key.public_key();
    let digest = sha256(pk.as_bytes());
    let did = Did::derive(alg, pk.as_bytes()).at(&id)?;
    ensure(
        &id,
        Did::parse(did.as_str()).ok().as_ref() == Some(&did),
        || "derived DID does not parse back".into(),
    )?;
    ensure(&id, did.matches_key(alg, pk.as_bytes()), || {
        "derived DID does not match its key".into()
    })?;
    let item = Value::map([
        ("algorithm", Value::text(alg.label())),
        ("public_key", Value::Bytes(pk.as_bytes().to_vec())),
        ("sha256", Value::Bytes(digest.to_vec())),
        ("did", Value::text(did.as_str())),
    ]);
    let mut reqs: Vec<&'static str> = DERIVATION.to_vec();
    reqs.push(match alg {
        SignatureAlgorithm::MlDsa87 => "BIND-VI-01",
        _ => "BIND-VI-A-I01",
    });
    let mut doc = VectorDoc::new(
        id.clone(),
        &reqs,
        &format!(
            "did:mtp derivation (PROFILE G-05): the method-specific id is the base58btc \
             (Bitcoin alphabet, no multibase prefix) encoding of SHA-256 over the raw {} \
             public key ({} bytes), keygen FIPS 204 ML-DSA.KeyGen_internal(xi = seed).",
            alg.label(),
            alg.public_key_len()
        ),
    );
    for (k, v) in seed_header() {
        doc = doc.input(&k, v);
    }
    Ok(doc
        .input("seed_label", label)
        .input("seed", hex::encode(s))
        .input("algorithm", alg.label())
        .input("public_key", hex::encode(pk.as_bytes()))
        .expected("public_key_length", pk.as_bytes().len())
        .expected("public_key_sha256", hex::encode(digest))
        .expected("method_specific_id", did.method_specific_id())
        .expected("did", did.as_str())
        .bytes(cbor::to_vec(&item).at(&id)?))
}

fn party_vector(p: &Party) -> Result<VectorDoc, VectorError> {
    let id = format!("{FAMILY}/{}", p.name);
    let json_doc = p.doc_json(&id)?;
    let text = p.doc.to_json();
    let parsed = DidDocument::from_json(&text).at(&id)?;
    parsed
        .validate()
        .map_err(|e| super::input_error(&id, format!("{e:?}")))?;
    ensure(&id, parsed.did().ok().as_ref() == Some(&p.did), || {
        "document id does not derive from its first ML-DSA key".into()
    })?;
    let initial = p
        .keys
        .first()
        .map(|k| k.public_key())
        .ok_or_else(|| super::input_error(&id, "party without keys"))?;
    let keys: Vec<Json> = p
        .keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            json!({
                "id": p.kid(i + 1),
                "algorithm": k.algorithm().label(),
                "public_key": hex::encode(k.public_key().as_bytes()),
                "public_key_length": k.public_key().as_bytes().len(),
            })
        })
        .collect();
    let kems: Vec<Json> = p
        .kems
        .iter()
        .enumerate()
        .map(|(i, k)| {
            json!({
                "id": p.kem_kid(i + 1),
                "algorithm": k.algorithm().label(),
                "encapsulation_key": hex::encode(k.encapsulation_key()),
            })
        })
        .collect();
    let mut doc = VectorDoc::new(
        id,
        &[
            "SPEC-III-A-1-01",
            "SPEC-III-A-1-02",
            "BIND-II-A-01",
            "BIND-II-A-02",
            "BIND-II-A-I01",
            "BIND-II-A-I02",
            "BIND-V-C-01",
            "BIND-V-C-02",
            "BIND-V-C-03",
            "BIND-X-I02",
            "BIND-X-I03",
            "BIND-VI-A-02",
            "BIND-VI-A-I01",
            "BIND-VI-E-02",
        ],
        &format!(
            "The shared world's {} Agent: its keys from fixed seeds and its DID Document \
             (PROFILE G-32): JSON-LD with the DID v1, Multikey v1 and MTP contexts, Multikey \
             verification methods #key-n (authentication, assertionMethod) and #kem-n \
             (keyAgreement), an MTPSync service with the TLS certificate fingerprint, an \
             MTPAsync service with the NATS cluster and subject pattern, and \
             mtpAlgorithmSupport (PROFILE G-38). The DID derives from #key-1.",
            p.name
        ),
    );
    for (k, v) in seed_header() {
        doc = doc.input(&k, v);
    }
    Ok(doc
        .input(
            "seeds",
            Json::Array(p.seeds.iter().map(|s| s.to_json()).collect()),
        )
        .expected("did", p.did_str())
        .expected(
            "initial_key_sha256",
            hex::encode(sha256(initial.as_bytes())),
        )
        .expected("signature_keys", Json::Array(keys))
        .expected("kem_keys", Json::Array(kems))
        .expected("did_document", json_doc)
        .expected("valid", true))
}

fn invalid_dids() -> Result<VectorDoc, VectorError> {
    let id = format!("{FAMILY}/invalid");
    let good = world()?.provider.did.method_specific_id().to_owned();
    let b58 = |bytes: &[u8]| bs58_encode(bytes);
    let cases: Vec<(&str, String)> = vec![
        ("empty method-specific id", "did:mtp:".into()),
        (
            "characters outside the base58btc alphabet (0, O, I, l)",
            format!("did:mtp:0OIl{}", &good[4..]),
        ),
        ("31 characters", format!("did:mtp:{}", &good[..31])),
        (
            "decodes to 31 bytes",
            format!("did:mtp:{}", b58(&[7u8; 31])),
        ),
        (
            "decodes to 33 bytes",
            format!("did:mtp:{}", b58(&[7u8; 33])),
        ),
        ("another DID method", "did:web:provider.example".into()),
        (
            "principal sub-namespace (not a did:mtp)",
            format!("did:mtp:principal:{good}"),
        ),
        ("upper-case scheme", format!("DID:mtp:{good}")),
        ("upper-case method", format!("did:MTP:{good}")),
        ("trailing path", format!("did:mtp:{good}/keys")),
    ];
    let mut out = Vec::new();
    let mut items = Vec::new();
    for (why, text) in &cases {
        let err = match Did::parse(text) {
            Ok(_) => {
                return Err(VectorError::SelfCheck {
                    vector: id,
                    what: format!("{text} parses as a did:mtp"),
                });
            }
            Err(e) => e,
        };
        out.push(json!({
            "did": text,
            "why": why,
            "error": err.to_string(),
            "code": err.code().as_u16(),
        }));
        items.push(Value::text(text.as_str()));
    }
    // A did:mtp may not derive from an SLH-DSA key (PROFILE G-05).
    let slh = SigningKey::from_seed(
        SignatureAlgorithm::SlhDsaSha2_192s,
        &seed::derive(&MASTER, "did/slh-dsa/1"),
    );
    let slh_err = match Did::derive(
        SignatureAlgorithm::SlhDsaSha2_192s,
        slh.public_key().as_bytes(),
    ) {
        Ok(_) => {
            return Err(VectorError::SelfCheck {
                vector: id,
                what: "an SLH-DSA key derives a did:mtp".into(),
            });
        }
        Err(e) => e,
    };
    Ok(VectorDoc::new(
        id.clone(),
        &["BIND-II-A-I01", "BIND-II-A-I02", "BIND-VII-A-02", "SPEC-III-A-1-01"],
        "Malformed did:mtp identifiers (PROFILE G-05): valid iff ^did:mtp:[1-9A-HJ-NP-Za-km-z]{32,44}$ \
         and the id decodes to exactly 32 bytes; each case is refused (0103 where a DID is a \
         field of an object). A did:mtp cannot derive from an SLH-DSA key. The .cbor file is \
         the array of the malformed strings.",
    )
    .input("slh_dsa_seed_label", "did/slh-dsa/1")
    .input("slh_dsa_public_key", hex::encode(slh.public_key().as_bytes()))
    .expected("cases", Json::Array(out))
    .expected(
        "slh_dsa_derivation",
        json!({"valid": false, "error": slh_err.to_string(), "code": slh_err.code().as_u16()}),
    )
    .bytes(cbor::to_vec(&Value::Array(items)).at(&id)?))
}

/// Base58btc (Bitcoin alphabet) of `bytes`, via the protocol's DID encoder where the
/// length is 32, else by the same alphabet rule through `Did::from_digest` chunks.
fn bs58_encode(bytes: &[u8]) -> String {
    // The protocol crate encodes only 32-byte digests; encode other lengths with the
    // textbook big-number conversion (an encoding, not cryptography).
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut digits: Vec<u8> = Vec::new();
    for &b in bytes {
        let mut carry = u32::from(b);
        for d in digits.iter_mut() {
            carry += u32::from(*d) << 8;
            *d = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    let mut s: String = std::iter::repeat_n('1', zeros).collect();
    s.extend(digits.iter().rev().map(|d| {
        ALPHABET
            .get(usize::from(*d))
            .map_or('?', |c| char::from(*c))
    }));
    s
}

/// Generates the family's files.
pub fn generate() -> Result<Vec<VectorFile>, VectorError> {
    let w = world()?;
    let mut docs = Vec::new();
    for n in 1..=3 {
        docs.push(derivation(
            &format!("derive-mldsa65-{n}"),
            &format!("did/ml-dsa-65/{n}"),
            SignatureAlgorithm::MlDsa65,
        )?);
    }
    docs.push(derivation(
        "derive-mldsa87-1",
        "did/ml-dsa-87/1",
        SignatureAlgorithm::MlDsa87,
    )?);
    // A key whose SHA-256 starts with a zero byte: the id starts with '1' (leading zero
    // bytes are encoded as '1's) and is shorter than 44 characters.
    let n = (0..100_000u32)
        .find(|n| {
            let s = seed::derive(&MASTER, &format!("did/leading-zero/{n}"));
            let pk = SigningKey::from_seed(SignatureAlgorithm::MlDsa65, &s).public_key();
            sha256(pk.as_bytes())[0] == 0
        })
        .ok_or_else(|| super::input_error("did/derive-leading-zero", "no seed found"))?;
    let lz = derivation(
        "derive-leading-zero",
        &format!("did/leading-zero/{n}"),
        SignatureAlgorithm::MlDsa65,
    )?;
    let lz_did = lz
        .expected
        .get("method_specific_id")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_owned();
    ensure(&lz.id, lz_did.starts_with('1'), || {
        format!("{lz_did} does not start with 1")
    })?;
    docs.push(lz);
    for p in w.parties() {
        docs.push(party_vector(p)?);
    }
    docs.push(invalid_dids()?);
    // The hand-written base58 above agrees with the protocol's DID encoder.
    let probe = [9u8; 32];
    ensure(
        "did/invalid",
        bs58_encode(&probe) == Did::from_digest(probe).method_specific_id(),
        || "base58btc encoders disagree".into(),
    )?;
    files_of(&docs)
}
