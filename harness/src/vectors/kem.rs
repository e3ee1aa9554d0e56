//! ML-KEM vectors (FIPS 203; BIND VI-B; PROFILE G-06), folder `kem/`: key generation from
//! a 64-byte seed d ‖ z and deterministic encapsulation from a 32-byte m, for ML-KEM-768
//! and ML-KEM-1024; decapsulation of a modified ciphertext (implicit rejection); a
//! ciphertext of the wrong length (0108) and an encapsulation key failing the FIPS 203
//! §7.2 modulus check (0103).
//!
//! Seeds: `kem/<alg>/<n>/keygen` (64 bytes, d ‖ z) and `kem/<alg>/<n>/m` (32 bytes).

use mtp_protocol::cbor::{self, Value};
use mtp_protocol::crypto::{DecapsulationKey, KemAlgorithm, encapsulate, kem, seed, sha256};
use mtp_protocol::errors::Coded;

use super::doc::{VectorDoc, files_of, seed_header};
use super::{At, MASTER, VectorError, VectorFile, ensure};

/// The family name (folder under `vectors/`).
pub const FAMILY: &str = "kem";

fn slug(alg: KemAlgorithm) -> String {
    alg.label().to_ascii_lowercase().replace('-', "")
}

fn reqs(alg: KemAlgorithm) -> Vec<&'static str> {
    match alg {
        KemAlgorithm::MlKem768 => vec!["BIND-VI-B-I01", "BIND-VI-01", "BIND-VI-B-01"],
        KemAlgorithm::MlKem1024 => vec!["BIND-VI-01", "BIND-VI-B-01"],
    }
}

struct Keys {
    seed_label: String,
    seed: [u8; 64],
    m_label: String,
    m: [u8; 32],
    dk: DecapsulationKey,
    ek: Vec<u8>,
}

fn keys(alg: KemAlgorithm, n: u32) -> Keys {
    let seed_label = format!("kem/{}/{n}/keygen", slug(alg));
    let m_label = format!("kem/{}/{n}/m", slug(alg));
    let s: [u8; 64] = seed::derive_array(&MASTER, &seed_label);
    let m = seed::derive(&MASTER, &m_label);
    let dk = DecapsulationKey::from_seed(alg, &s);
    let ek = dk.encapsulation_key();
    Keys {
        seed_label,
        seed: s,
        m_label,
        m,
        dk,
        ek,
    }
}

fn header(doc: VectorDoc, alg: KemAlgorithm, k: &Keys) -> VectorDoc {
    let mut doc = doc;
    for (key, v) in seed_header() {
        doc = doc.input(&key, v);
    }
    doc.input("algorithm", alg.label())
        .input("seed_label", k.seed_label.clone())
        .input("seed_d_z", hex::encode(k.seed))
        .input("m_label", k.m_label.clone())
        .input("m", hex::encode(k.m))
}

fn round_trip(alg: KemAlgorithm, n: u32) -> Result<VectorDoc, VectorError> {
    let id = format!("{FAMILY}/{}-{n}", slug(alg));
    let k = keys(alg, n);
    let (ct, ss) = encapsulate(alg, &k.ek, &k.m).at(&id)?;
    ensure(&id, k.dk.decapsulate(&ct).at(&id)? == ss, || {
        "decapsulation does not recover the shared secret".into()
    })?;
    ensure(
        &id,
        k.ek.len() == alg.encapsulation_key_len() && ct.len() == alg.ciphertext_len(),
        || format!("lengths ek {}, ct {}", k.ek.len(), ct.len()),
    )?;
    let item = Value::map([
        ("algorithm", Value::text(alg.label())),
        ("seed", Value::Bytes(k.seed.to_vec())),
        ("ek", Value::Bytes(k.ek.clone())),
        ("m", Value::Bytes(k.m.to_vec())),
        ("ct", Value::Bytes(ct.clone())),
        ("ss", Value::Bytes(ss.to_vec())),
    ]);
    let doc = VectorDoc::new(
        id.clone(),
        &reqs(alg),
        &format!(
            "{}: FIPS 203 ML-KEM.KeyGen_internal(d, z) from the 64-byte seed, then \
             ML-KEM.Encaps_internal(ek, m); decapsulation with the same key recovers the \
             shared secret. Encapsulation key {} bytes, ciphertext {} bytes.",
            alg.label(),
            alg.encapsulation_key_len(),
            alg.ciphertext_len()
        ),
    );
    Ok(header(doc, alg, &k)
        .expected("ek", hex::encode(&k.ek))
        .expected("ek_sha256", hex::encode(sha256(&k.ek)))
        .expected("ek_length", k.ek.len())
        .expected("ct", hex::encode(&ct))
        .expected("ct_length", ct.len())
        .expected("shared_secret", hex::encode(ss))
        .bytes(cbor::to_vec(&item).at(&id)?))
}

fn implicit_rejection(alg: KemAlgorithm) -> Result<VectorDoc, VectorError> {
    let id = format!("{FAMILY}/{}-implicit-rejection", slug(alg));
    let k = keys(alg, 1);
    let (ct, ss) = encapsulate(alg, &k.ek, &k.m).at(&id)?;
    let mut bad = ct.clone();
    if let Some(b) = bad.first_mut() {
        *b ^= 0x01;
    }
    let rejected = k.dk.decapsulate(&bad).at(&id)?;
    ensure(&id, rejected != ss, || {
        "a modified ciphertext decapsulates to the shared secret".into()
    })?;
    ensure(&id, k.dk.decapsulate(&bad).at(&id)? == rejected, || {
        "implicit rejection is not deterministic".into()
    })?;
    let item = Value::map([
        ("algorithm", Value::text(alg.label())),
        ("seed", Value::Bytes(k.seed.to_vec())),
        ("ct", Value::Bytes(bad.clone())),
        ("k_bar", Value::Bytes(rejected.to_vec())),
    ]);
    let doc = VectorDoc::new(
        id.clone(),
        &reqs(alg),
        &format!(
            "{}: the ciphertext of {}-1 with its first byte XOR 0x01. Decapsulation does not \
             fail: it returns the implicit-rejection key K-bar = J(z || c) (FIPS 203), which \
             differs from the encapsulated shared secret, so the AEAD that follows fails \
             (0108).",
            alg.label(),
            slug(alg)
        ),
    );
    Ok(header(doc, alg, &k)
        .input("ct", hex::encode(&bad))
        .expected(
            "shared_secret_of_the_unmodified_ciphertext",
            hex::encode(ss),
        )
        .expected("implicit_rejection_key", hex::encode(rejected))
        .bytes(cbor::to_vec(&item).at(&id)?))
}

fn wrong_length(alg: KemAlgorithm) -> Result<VectorDoc, VectorError> {
    let id = format!("{FAMILY}/{}-wrong-ciphertext-length", slug(alg));
    let k = keys(alg, 1);
    let (ct, _) = encapsulate(alg, &k.ek, &k.m).at(&id)?;
    let short = ct[..ct.len() - 1].to_vec();
    let err = match k.dk.decapsulate(&short) {
        Ok(_) => {
            return Err(VectorError::SelfCheck {
                vector: id,
                what: "a short ciphertext decapsulates".into(),
            });
        }
        Err(e) => e,
    };
    let code = err.code().as_u16();
    ensure(&id, code == 108, || format!("code {code}"))?;
    let item = Value::map([
        ("algorithm", Value::text(alg.label())),
        ("seed", Value::Bytes(k.seed.to_vec())),
        ("ct", Value::Bytes(short.clone())),
    ]);
    let doc = VectorDoc::new(
        id.clone(),
        &reqs(alg),
        &format!(
            "{}: a ciphertext one byte short ({} instead of {} bytes) is refused before \
             decapsulation with 0108 Message Integrity Failure (PROFILE G-06).",
            alg.label(),
            short.len(),
            alg.ciphertext_len()
        ),
    );
    Ok(header(doc, alg, &k)
        .input("ct", hex::encode(&short))
        .expected("valid", false)
        .expected("code", code)
        .expected("error", err.to_string())
        .bytes(cbor::to_vec(&item).at(&id)?))
}

fn invalid_ek(alg: KemAlgorithm) -> Result<VectorDoc, VectorError> {
    let id = format!("{FAMILY}/{}-invalid-encapsulation-key", slug(alg));
    let k = keys(alg, 1);
    let mut bad = k.ek.clone();
    // 0xFF 0xFF: the first 12-bit coefficient is 4095 > q - 1 = 3328.
    if let Some(x) = bad.get_mut(0..2) {
        x.copy_from_slice(&[0xff, 0xff]);
    }
    let err = match encapsulate(alg, &bad, &k.m) {
        Ok(_) => {
            return Err(VectorError::SelfCheck {
                vector: id,
                what: "an unreduced encapsulation key is accepted".into(),
            });
        }
        Err(e) => e,
    };
    ensure(
        &id,
        kem::check_encapsulation_key(alg, &bad).is_err(),
        || "the key check accepts the key".into(),
    )?;
    let code = err.code().as_u16();
    ensure(&id, code == 103, || format!("code {code}"))?;
    let item = Value::map([
        ("algorithm", Value::text(alg.label())),
        ("ek", Value::Bytes(bad.clone())),
        ("m", Value::Bytes(k.m.to_vec())),
    ]);
    let doc = VectorDoc::new(
        id.clone(),
        &reqs(alg),
        &format!(
            "{}: the encapsulation key of {}-1 with its first two bytes set to 0xFF, so its \
             first coefficient (4095) is not reduced modulo q; the FIPS 203 §7.2 modulus check \
             refuses it (0103).",
            alg.label(),
            slug(alg)
        ),
    );
    Ok(header(doc, alg, &k)
        .input("ek", hex::encode(&bad))
        .expected("valid", false)
        .expected("code", code)
        .expected("error", err.to_string())
        .bytes(cbor::to_vec(&item).at(&id)?))
}

/// Generates the family's files.
pub fn generate() -> Result<Vec<VectorFile>, VectorError> {
    let mut docs = Vec::new();
    for alg in KemAlgorithm::ALL {
        for n in 1..=2 {
            docs.push(round_trip(alg, n)?);
        }
        docs.push(implicit_rejection(alg)?);
        docs.push(wrong_length(alg)?);
        docs.push(invalid_ek(alg)?);
    }
    files_of(&docs)
}
