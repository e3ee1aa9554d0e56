//! Algorithm-negotiation vectors (BIND X, BIND VI; PROFILE G-38), folder `negotiation/`:
//! pairs of Algorithm Support Profiles and the suite negotiation must select (per
//! function the common algorithm with the highest NIST category; ties ML-DSA-65 >
//! SLH-DSA-SHA2-192s and SHA-256 > SHA3-256), independent of argument and list order; and
//! profiles that must be refused (0106: forbidden labels, a missing baseline, a label of
//! another function). Unknown labels are ignored.

use serde_json::{Value as Json, json};

use mtp_protocol::cbor::{self, Value};
use mtp_protocol::crypto::{AlgorithmSupportProfile, CryptoError, NegotiatedSuite, negotiate};
use mtp_protocol::errors::Coded;

use super::doc::{VectorDoc, files_of};
use super::{At, VectorError, VectorFile, ensure};

/// The family name (folder under `vectors/`).
pub const FAMILY: &str = "negotiation";

const REQS: &[&str] = &["BIND-X-I02", "BIND-X-I04", "BIND-VI-01"];

/// A profile as four label lists (signature, kem, symmetric, hash).
type Labels = [&'static [&'static str]; 4];

const BASE: Labels = [
    &["ML-DSA-65"],
    &["ML-KEM-768"],
    &["AES-256-GCM"],
    &["SHA-256"],
];
const FULL: Labels = [
    &["SLH-DSA-SHA2-192s", "ML-DSA-87", "ML-DSA-65"],
    &["ML-KEM-1024", "ML-KEM-768"],
    &["AES-256-GCM"],
    &["SHA3-256", "SHA-256"],
];

fn profile(l: &Labels) -> Result<AlgorithmSupportProfile, CryptoError> {
    AlgorithmSupportProfile::from_labels(l[0], l[1], l[2], l[3])
}

fn labels_value(l: &Labels) -> Value {
    let arr = |xs: &[&str]| Value::Array(xs.iter().map(|s| Value::text(*s)).collect());
    Value::map([
        ("signature", arr(l[0])),
        ("kem", arr(l[1])),
        ("symmetric", arr(l[2])),
        ("hash", arr(l[3])),
    ])
}

fn labels_json(l: &Labels) -> Json {
    json!({"signature": l[0], "kem": l[1], "symmetric": l[2], "hash": l[3]})
}

fn suite_value(s: &NegotiatedSuite) -> Value {
    Value::map([
        ("signature", Value::text(s.signature.label())),
        ("kem", Value::text(s.kem.label())),
        ("symmetric", Value::text(s.symmetric.label())),
        ("hash", Value::text(s.hash.label())),
    ])
}

fn suite_json(s: &NegotiatedSuite) -> Json {
    json!({
        "signature": s.signature.label(),
        "kem": s.kem.label(),
        "symmetric": s.symmetric.label(),
        "hash": s.hash.label(),
    })
}

fn pair(
    name: &str,
    a: Labels,
    b: Labels,
    expect: [&str; 4],
    extra: &[&'static str],
    description: &str,
) -> Result<VectorDoc, VectorError> {
    let id = format!("{FAMILY}/{name}");
    let pa = profile(&a).at(&id)?;
    let pb = profile(&b).at(&id)?;
    let s = negotiate(&pa, &pb).at(&id)?;
    let back = negotiate(&pb, &pa).at(&id)?;
    ensure(&id, s == back, || "negotiation is not symmetric".into())?;
    let got = [
        s.signature.label(),
        s.kem.label(),
        s.symmetric.label(),
        s.hash.label(),
    ];
    ensure(&id, got == expect, || {
        format!("selected {got:?}, expected {expect:?}")
    })?;
    // List order does not matter.
    fn r<'a>(x: &[&'a str]) -> Vec<&'a str> {
        x.iter().rev().copied().collect()
    }
    let rev = |l: &Labels| -> Result<AlgorithmSupportProfile, CryptoError> {
        AlgorithmSupportProfile::from_labels(&r(l[0]), &r(l[1]), &r(l[2]), &r(l[3]))
    };
    ensure(
        &id,
        negotiate(&rev(&a).at(&id)?, &rev(&b).at(&id)?).at(&id)? == s,
        || "negotiation depends on list order".into(),
    )?;
    let item = Value::map([
        ("a", labels_value(&a)),
        ("b", labels_value(&b)),
        ("selected", suite_value(&s)),
    ]);
    let mut doc = VectorDoc::new(id.clone(), &[REQS, extra].concat(), description)
        .input("a", labels_json(&a))
        .input("b", labels_json(&b))
        .expected("valid", true)
        .expected("selected", suite_json(&s));
    let ignored: Vec<String> = pa.ignored.iter().chain(&pb.ignored).cloned().collect();
    if !ignored.is_empty() {
        doc = doc.expected("ignored_labels", json!(ignored));
    }
    Ok(doc.bytes(cbor::to_vec(&item).at(&id)?))
}

fn refused(
    name: &str,
    a: Labels,
    extra: &[&'static str],
    description: &str,
) -> Result<VectorDoc, VectorError> {
    let id = format!("{FAMILY}/{name}");
    let err = match profile(&a) {
        Ok(_) => {
            return Err(VectorError::SelfCheck {
                vector: id,
                what: "the profile is accepted".into(),
            });
        }
        Err(e) => e,
    };
    let code = err.code().as_u16();
    ensure(&id, code == 106, || format!("code {code}"))?;
    let item = Value::map([
        ("a", labels_value(&a)),
        ("code", Value::from(u64::from(code))),
    ]);
    Ok(
        VectorDoc::new(id.clone(), &[REQS, extra].concat(), description)
            .input("a", labels_json(&a))
            .expected("valid", false)
            .expected("code", code)
            .expected("error", err.to_string())
            .bytes(cbor::to_vec(&item).at(&id)?),
    )
}

/// Generates the family's files.
pub fn generate() -> Result<Vec<VectorFile>, VectorError> {
    let docs = vec![
        pair(
            "baseline-baseline",
            BASE,
            BASE,
            ["ML-DSA-65", "ML-KEM-768", "AES-256-GCM", "SHA-256"],
            &["BIND-VI-A-02", "BIND-VI-E-02"],
            "Two baseline profiles select the baseline suite.",
        )?,
        pair(
            "full-full",
            FULL,
            FULL,
            ["ML-DSA-87", "ML-KEM-1024", "AES-256-GCM", "SHA-256"],
            &["BIND-VI-C-01"],
            "Two profiles listing every MTP algorithm: ML-DSA-87 and ML-KEM-1024 (NIST category \
             5) win; SHA-256 wins the hash tie with SHA3-256.",
        )?,
        pair(
            "full-baseline",
            FULL,
            BASE,
            ["ML-DSA-65", "ML-KEM-768", "AES-256-GCM", "SHA-256"],
            &["SPEC-VIII-B-03"],
            "A full profile against a baseline profile: only the baseline is common.",
        )?,
        pair(
            "mldsa87-kem768",
            [
                &["ML-DSA-65", "ML-DSA-87"],
                &["ML-KEM-768"],
                &["AES-256-GCM"],
                &["SHA-256"],
            ],
            FULL,
            ["ML-DSA-87", "ML-KEM-768", "AES-256-GCM", "SHA-256"],
            &[],
            "Per function independently: ML-DSA-87 is common, ML-KEM-1024 is not.",
        )?,
        pair(
            "slh-dsa-tie",
            [
                &["ML-DSA-65", "SLH-DSA-SHA2-192s"],
                &["ML-KEM-768"],
                &["AES-256-GCM"],
                &["SHA-256"],
            ],
            [
                &["SLH-DSA-SHA2-192s", "ML-DSA-65"],
                &["ML-KEM-768"],
                &["AES-256-GCM"],
                &["SHA-256"],
            ],
            ["ML-DSA-65", "ML-KEM-768", "AES-256-GCM", "SHA-256"],
            &["BIND-VI-C-01"],
            "ML-DSA-65 and SLH-DSA-SHA2-192s are both category 3: the tie goes to ML-DSA-65 \
             (PROFILE G-38); listing SLH-DSA only permits it where G-39 allows it.",
        )?,
        pair(
            "sha3-tie",
            [
                &["ML-DSA-65"],
                &["ML-KEM-768"],
                &["AES-256-GCM"],
                &["SHA-256", "SHA3-256"],
            ],
            [
                &["ML-DSA-65"],
                &["ML-KEM-768"],
                &["AES-256-GCM"],
                &["SHA-3-256", "SHA-256"],
            ],
            ["ML-DSA-65", "ML-KEM-768", "AES-256-GCM", "SHA-256"],
            &["BIND-VI-E-02"],
            "SHA-256 and SHA3-256 tie; SHA-256 wins. \"SHA-3-256\" is accepted as an alias.",
        )?,
        pair(
            "mlkem1024",
            [
                &["ML-DSA-65"],
                &["ML-KEM-1024", "ML-KEM-768"],
                &["AES-256-GCM"],
                &["SHA-256"],
            ],
            [
                &["ML-DSA-65"],
                &["ML-KEM-768", "ML-KEM-1024"],
                &["AES-256-GCM"],
                &["SHA-256"],
            ],
            ["ML-DSA-65", "ML-KEM-1024", "AES-256-GCM", "SHA-256"],
            &[],
            "ML-KEM-1024 (category 5) over ML-KEM-768 whatever the list order.",
        )?,
        pair(
            "unknown-label-ignored",
            [
                &["ML-DSA-65", "FALCON-1024"],
                &["ML-KEM-768", "HQC-256"],
                &["AES-256-GCM"],
                &["SHA-256"],
            ],
            BASE,
            ["ML-DSA-65", "ML-KEM-768", "AES-256-GCM", "SHA-256"],
            &[],
            "Labels this profile does not know (future algorithms) are ignored for negotiation \
             (algorithm agility), not refused.",
        )?,
        refused(
            "refused-mldsa44",
            [
                &["ML-DSA-65", "ML-DSA-44"],
                &["ML-KEM-768"],
                &["AES-256-GCM"],
                &["SHA-256"],
            ],
            &["BIND-VI-01", "BIND-VI-A-02"],
            "A profile listing ML-DSA-44 (not an MTP parameter set) is refused with 0106.",
        )?,
        refused(
            "refused-pre-quantum",
            [
                &["ML-DSA-65", "Ed25519"],
                &["ML-KEM-768"],
                &["AES-256-GCM"],
                &["SHA-256"],
            ],
            &["BIND-VI-01"],
            "A profile listing a pre-quantum signature algorithm is refused with 0106.",
        )?,
        refused(
            "refused-missing-baseline",
            [
                &["ML-DSA-87"],
                &["ML-KEM-1024"],
                &["AES-256-GCM"],
                &["SHA-256"],
            ],
            &["BIND-VI-A-02"],
            "A profile without the baselines ML-DSA-65 and ML-KEM-768 is invalid (0106).",
        )?,
        refused(
            "refused-misplaced-label",
            [
                &["ML-DSA-65", "ML-KEM-768"],
                &["ML-KEM-768"],
                &["AES-256-GCM"],
                &["SHA-256"],
            ],
            &[],
            "A KEM label in the signature list is refused with 0106.",
        )?,
        refused(
            "refused-aes128",
            [
                &["ML-DSA-65"],
                &["ML-KEM-768"],
                &["AES-256-GCM", "AES-128-GCM"],
                &["SHA-256"],
            ],
            &["BIND-VI-D-01"],
            "A profile listing AES-128-GCM is refused with 0106 (256-bit keys only).",
        )?,
    ];
    files_of(&docs)
}
