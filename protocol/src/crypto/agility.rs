//! Algorithm Support Profiles and Algorithm Negotiation (SPEC VIII-B, BIND X; PROFILE G-38).
//!
//! A profile lists, per function, the algorithms an Agent supports; listing an algorithm is
//! agreeing to use it. Negotiation picks, per function, the algorithm both profiles list
//! that ranks first in the preference order below: highest NIST category first, ties broken
//! ML-DSA-65 > SLH-DSA-SHA2-192s and SHA-256 > SHA3-256 (PROFILE G-38; BIND-X-I04).
//! Negotiation is a pure function of the two sets, so it is deterministic and symmetric.

use super::algorithms::{
    AlgorithmError, HashAlgorithm, KemAlgorithm, SignatureAlgorithm, SymmetricAlgorithm,
};
use super::error::{CryptoError, CryptoFunction};
use crate::cbor::Value;

/// Signature preference order (PROFILE G-38): category 5, then 3 with ML-DSA first.
pub const SIGNATURE_PREFERENCE: [SignatureAlgorithm; 3] = [
    SignatureAlgorithm::MlDsa87,
    SignatureAlgorithm::MlDsa65,
    SignatureAlgorithm::SlhDsaSha2_192s,
];
/// KEM preference order: ML-KEM-1024 (category 5) over ML-KEM-768 (category 3).
pub const KEM_PREFERENCE: [KemAlgorithm; 2] = [KemAlgorithm::MlKem1024, KemAlgorithm::MlKem768];
/// Symmetric preference order: AES-256-GCM is the only MTP cipher.
pub const SYMMETRIC_PREFERENCE: [SymmetricAlgorithm; 1] = [SymmetricAlgorithm::Aes256Gcm];
/// Hash preference order: SHA-256 over SHA3-256 (equal strength; PROFILE G-38 tie-break).
pub const HASH_PREFERENCE: [HashAlgorithm; 2] = [HashAlgorithm::Sha256, HashAlgorithm::Sha3_256];

/// An Agent's Algorithm Support Profile (BIND-X-I02; PROFILE G-38). Every list is
/// duplicate-free and keeps the order in which the labels were given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlgorithmSupportProfile {
    pub signature: Vec<SignatureAlgorithm>,
    pub kem: Vec<KemAlgorithm>,
    pub symmetric: Vec<SymmetricAlgorithm>,
    pub hash: Vec<HashAlgorithm>,
    /// Labels not known to this implementation (future algorithms), ignored for
    /// negotiation (SPEC-VIII-B-01 agility), recorded as `"<function>:<label>"`.
    pub ignored: Vec<String>,
}

/// The algorithms selected for a session (BIND X).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NegotiatedSuite {
    pub signature: SignatureAlgorithm,
    pub kem: KemAlgorithm,
    pub symmetric: SymmetricAlgorithm,
    pub hash: HashAlgorithm,
}

impl NegotiatedSuite {
    /// The baseline suite (ML-DSA-65, ML-KEM-768, AES-256-GCM, SHA-256).
    pub fn baseline() -> Self {
        NegotiatedSuite {
            signature: SignatureAlgorithm::MlDsa65,
            kem: KemAlgorithm::MlKem768,
            symmetric: SymmetricAlgorithm::Aes256Gcm,
            hash: HashAlgorithm::Sha256,
        }
    }
}

/// Parses one function's label list: forbidden → error, unknown → ignored, a known label of
/// another function → error, duplicates dropped.
fn parse_list<T: PartialEq + Copy, S: AsRef<str>>(
    function: CryptoFunction,
    labels: &[S],
    parse: fn(&str) -> Result<T, AlgorithmError>,
    ignored: &mut Vec<String>,
) -> Result<Vec<T>, CryptoError> {
    let mut out = Vec::new();
    for label in labels {
        let label = label.as_ref();
        match parse(label) {
            Ok(a) => {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
            Err(error @ AlgorithmError::Forbidden { .. }) => {
                return Err(CryptoError::ForbiddenInProfile { function, error });
            }
            Err(AlgorithmError::Unknown { .. }) => {
                if belongs_elsewhere(function, label) {
                    return Err(CryptoError::MisplacedLabel {
                        function,
                        label: label.to_owned(),
                    });
                }
                ignored.push(format!("{function}:{label}"));
            }
        }
    }
    Ok(out)
}

fn belongs_elsewhere(function: CryptoFunction, label: &str) -> bool {
    CryptoFunction::ALL
        .into_iter()
        .filter(|f| *f != function)
        .any(|f| match f {
            CryptoFunction::Signature => SignatureAlgorithm::from_label(label).is_ok(),
            CryptoFunction::Kem => KemAlgorithm::from_label(label).is_ok(),
            CryptoFunction::Symmetric => SymmetricAlgorithm::from_label(label).is_ok(),
            CryptoFunction::Hash => HashAlgorithm::from_label(label).is_ok(),
        })
}

fn first_common<T: PartialEq + Copy>(
    function: CryptoFunction,
    preference: &[T],
    a: &[T],
    b: &[T],
) -> Result<T, CryptoError> {
    preference
        .iter()
        .copied()
        .find(|x| a.contains(x) && b.contains(x))
        .ok_or(CryptoError::NoCommonAlgorithm { function })
}

impl AlgorithmSupportProfile {
    /// The minimal valid profile: the four baselines only.
    pub fn baseline() -> Self {
        AlgorithmSupportProfile {
            signature: vec![SignatureAlgorithm::MlDsa65],
            kem: vec![KemAlgorithm::MlKem768],
            symmetric: vec![SymmetricAlgorithm::Aes256Gcm],
            hash: vec![HashAlgorithm::Sha256],
            ignored: Vec::new(),
        }
    }

    /// Everything this implementation supports.
    pub fn full() -> Self {
        AlgorithmSupportProfile {
            signature: SignatureAlgorithm::ALL.to_vec(),
            kem: KemAlgorithm::ALL.to_vec(),
            symmetric: SymmetricAlgorithm::ALL.to_vec(),
            hash: HashAlgorithm::ALL.to_vec(),
            ignored: Vec::new(),
        }
    }

    /// Builds and validates a profile from wire labels (canonical ids of PROFILE G-38;
    /// `SHA-3-256` accepted as an alias). Forbidden labels (ML-DSA-44, ML-KEM-512,
    /// pre-quantum, non-AES-256 ciphers, …) and a missing baseline are errors (0106);
    /// unknown labels are ignored and recorded in [`ignored`](Self::ignored).
    pub fn from_labels<S: AsRef<str>>(
        signature: &[S],
        kem: &[S],
        symmetric: &[S],
        hash: &[S],
    ) -> Result<Self, CryptoError> {
        let mut ignored = Vec::new();
        let profile = AlgorithmSupportProfile {
            signature: parse_list(
                CryptoFunction::Signature,
                signature,
                SignatureAlgorithm::from_label,
                &mut ignored,
            )?,
            kem: parse_list(
                CryptoFunction::Kem,
                kem,
                KemAlgorithm::from_label,
                &mut ignored,
            )?,
            symmetric: parse_list(
                CryptoFunction::Symmetric,
                symmetric,
                SymmetricAlgorithm::from_label,
                &mut ignored,
            )?,
            hash: parse_list(
                CryptoFunction::Hash,
                hash,
                HashAlgorithm::from_label,
                &mut ignored,
            )?,
            ignored,
        };
        profile.validate()?;
        Ok(profile)
    }

    /// Checks that the four baselines are listed (PROFILE G-38; BIND-VI-A-02,
    /// BIND-VI-B-I01, SPEC-VIII-A-09, BIND-VI-E-02).
    pub fn validate(&self) -> Result<(), CryptoError> {
        let missing = |function, baseline| Err(CryptoError::MissingBaseline { function, baseline });
        if !self.signature.contains(&SignatureAlgorithm::MlDsa65) {
            return missing(
                CryptoFunction::Signature,
                SignatureAlgorithm::MlDsa65.label(),
            );
        }
        if !self.kem.contains(&KemAlgorithm::MlKem768) {
            return missing(CryptoFunction::Kem, KemAlgorithm::MlKem768.label());
        }
        if !self.symmetric.contains(&SymmetricAlgorithm::Aes256Gcm) {
            return missing(
                CryptoFunction::Symmetric,
                SymmetricAlgorithm::Aes256Gcm.label(),
            );
        }
        if !self.hash.contains(&HashAlgorithm::Sha256) {
            return missing(CryptoFunction::Hash, HashAlgorithm::Sha256.label());
        }
        Ok(())
    }

    /// `true` if the profile lists `algorithm` (e.g. both parties must list SLH-DSA before a
    /// Mandate may carry an SLH-DSA signature, PROFILE G-39).
    pub fn supports_signature(&self, algorithm: SignatureAlgorithm) -> bool {
        self.signature.contains(&algorithm)
    }

    /// The profile as a CBOR map `{signature: [labels], kem: [...], symmetric: [...],
    /// hash: [...]}` with canonical labels (PROFILE G-38). Ignored labels are not emitted.
    pub fn to_value(&self) -> Value {
        fn labels<T: Copy>(xs: &[T], label: fn(T) -> &'static str) -> Value {
            Value::Array(xs.iter().map(|x| Value::text(label(*x))).collect())
        }
        Value::map([
            (
                "signature",
                labels(&self.signature, SignatureAlgorithm::label),
            ),
            ("kem", labels(&self.kem, KemAlgorithm::label)),
            (
                "symmetric",
                labels(&self.symmetric, SymmetricAlgorithm::label),
            ),
            ("hash", labels(&self.hash, HashAlgorithm::label)),
        ])
    }

    /// Reads a profile map (PROFILE G-38). Each of the four keys must be present with an
    /// array of text strings; other keys are ignored (open maps, PROFILE G-26). Then as
    /// [`from_labels`](Self::from_labels).
    pub fn from_value(value: &Value) -> Result<Self, CryptoError> {
        if value.as_map().is_none() {
            return Err(CryptoError::MalformedProfile {
                reason: "not a map",
            });
        }
        let list = |key: &str| -> Result<Vec<&str>, CryptoError> {
            let arr = value
                .get(key)
                .ok_or(CryptoError::MalformedProfile {
                    reason: "missing function key",
                })?
                .as_array()
                .ok_or(CryptoError::MalformedProfile {
                    reason: "function entry is not an array",
                })?;
            arr.iter()
                .map(|v| {
                    v.as_text().ok_or(CryptoError::MalformedProfile {
                        reason: "algorithm label is not text",
                    })
                })
                .collect()
        };
        Self::from_labels(
            &list("signature")?,
            &list("kem")?,
            &list("symmetric")?,
            &list("hash")?,
        )
    }
}

/// Algorithm Negotiation (BIND X; PROFILE G-38): per function the most preferred algorithm
/// both profiles list; none in common → [`CryptoError::NoCommonAlgorithm`] (0106). The
/// result does not depend on argument order or on the order of the lists. Baseline
/// presence is checked when a profile is parsed ([`AlgorithmSupportProfile::validate`]),
/// not here.
pub fn negotiate(
    a: &AlgorithmSupportProfile,
    b: &AlgorithmSupportProfile,
) -> Result<NegotiatedSuite, CryptoError> {
    Ok(NegotiatedSuite {
        signature: first_common(
            CryptoFunction::Signature,
            &SIGNATURE_PREFERENCE,
            &a.signature,
            &b.signature,
        )?,
        kem: first_common(CryptoFunction::Kem, &KEM_PREFERENCE, &a.kem, &b.kem)?,
        symmetric: first_common(
            CryptoFunction::Symmetric,
            &SYMMETRIC_PREFERENCE,
            &a.symmetric,
            &b.symmetric,
        )?,
        hash: first_common(CryptoFunction::Hash, &HASH_PREFERENCE, &a.hash, &b.hash)?,
    })
}

/// Reads a peer's profile from its deterministic CBOR (gRPC `mtp-alg-profile-bin`, the
/// `profile` of a NATS `alg_profile` message; PROFILE G-38) and negotiates it against `own`
/// (BIND X). Bytes that are not one deterministic CBOR item are a malformed profile (0200);
/// an invalid profile or no common algorithm is 0106 (BIND-X-I06).
pub fn negotiate_with_peer(
    own: &AlgorithmSupportProfile,
    peer_cbor: &[u8],
) -> Result<(AlgorithmSupportProfile, NegotiatedSuite), CryptoError> {
    let value = crate::cbor::from_slice(peer_cbor).map_err(|_| CryptoError::MalformedProfile {
        reason: "not one deterministic CBOR item",
    })?;
    let peer = AlgorithmSupportProfile::from_value(&value)?;
    let suite = negotiate(own, &peer)?;
    Ok((peer, suite))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::{Coded, ErrorCode};

    fn p(sig: &[&str], kem: &[&str], hash: &[&str]) -> AlgorithmSupportProfile {
        AlgorithmSupportProfile::from_labels(sig, kem, &["AES-256-GCM"], hash).unwrap()
    }

    #[test]
    fn preference_orders_rank_by_category() {
        for w in SIGNATURE_PREFERENCE.windows(2) {
            assert!(w[0].nist_category() >= w[1].nist_category());
        }
        for w in KEM_PREFERENCE.windows(2) {
            assert!(w[0].nist_category() >= w[1].nist_category());
        }
        assert_eq!(SIGNATURE_PREFERENCE.len(), SignatureAlgorithm::ALL.len());
        assert_eq!(HASH_PREFERENCE.len(), HashAlgorithm::ALL.len());
    }

    #[test]
    fn negotiation_table_all_pairs_and_symmetry() {
        let base = p(&["ML-DSA-65"], &["ML-KEM-768"], &["SHA-256"]);
        let full = p(
            &["SLH-DSA-SHA2-192s", "ML-DSA-87", "ML-DSA-65"],
            &["ML-KEM-1024", "ML-KEM-768"],
            &["SHA3-256", "SHA-256"],
        );
        let slh = p(
            &["ML-DSA-65", "SLH-DSA-SHA2-192s"],
            &["ML-KEM-768"],
            &["SHA-256", "SHA-3-256"],
        );
        let high = p(
            &["ML-DSA-87", "ML-DSA-65"],
            &["ML-KEM-768", "ML-KEM-1024"],
            &["SHA-256"],
        );
        let profiles = [&base, &full, &slh, &high];
        use HashAlgorithm::*;
        use KemAlgorithm::*;
        use SignatureAlgorithm::*;
        // expected[i][j] = (signature, kem, hash)
        let expected = [
            [(MlDsa65, MlKem768, Sha256); 4],
            [
                (MlDsa65, MlKem768, Sha256),
                (MlDsa87, MlKem1024, Sha256),
                (MlDsa65, MlKem768, Sha256),
                (MlDsa87, MlKem1024, Sha256),
            ],
            [
                (MlDsa65, MlKem768, Sha256),
                (MlDsa65, MlKem768, Sha256),
                (MlDsa65, MlKem768, Sha256),
                (MlDsa65, MlKem768, Sha256),
            ],
            [
                (MlDsa65, MlKem768, Sha256),
                (MlDsa87, MlKem1024, Sha256),
                (MlDsa65, MlKem768, Sha256),
                (MlDsa87, MlKem1024, Sha256),
            ],
        ];
        for (i, a) in profiles.iter().enumerate() {
            for (j, b) in profiles.iter().enumerate() {
                let s = negotiate(a, b).unwrap();
                assert_eq!(s, negotiate(b, a).unwrap(), "symmetry {i},{j}");
                assert_eq!((s.signature, s.kem, s.hash), expected[i][j], "pair {i},{j}");
                assert_eq!(s.symmetric, SymmetricAlgorithm::Aes256Gcm);
            }
        }
        assert_eq!(
            negotiate(&base, &base).unwrap(),
            NegotiatedSuite::baseline()
        );
        assert_eq!(
            negotiate(
                &AlgorithmSupportProfile::baseline(),
                &AlgorithmSupportProfile::full()
            )
            .unwrap(),
            NegotiatedSuite::baseline()
        );
    }

    #[test]
    fn ties_slh_only_overlap_and_no_overlap() {
        // SHA3-256 only when both list it and SHA-256 is absent from one (struct-built
        // profiles; parsed ones always carry the baseline).
        let mut a = AlgorithmSupportProfile::full();
        let mut b = AlgorithmSupportProfile::full();
        a.signature = vec![
            SignatureAlgorithm::SlhDsaSha2_192s,
            SignatureAlgorithm::MlDsa65,
        ];
        b.signature = vec![
            SignatureAlgorithm::SlhDsaSha2_192s,
            SignatureAlgorithm::MlDsa87,
        ];
        a.hash = vec![HashAlgorithm::Sha3_256];
        let s = negotiate(&a, &b).unwrap();
        assert_eq!(s.signature, SignatureAlgorithm::SlhDsaSha2_192s);
        assert_eq!(s.hash, HashAlgorithm::Sha3_256);
        assert_eq!(negotiate(&b, &a).unwrap(), s);
        // Tie ML-DSA-65 vs SLH-DSA (both category 3): ML-DSA-65 wins.
        b.signature.push(SignatureAlgorithm::MlDsa65);
        assert_eq!(
            negotiate(&a, &b).unwrap().signature,
            SignatureAlgorithm::MlDsa65
        );
        // No overlap → 0106.
        a.kem = vec![KemAlgorithm::MlKem768];
        b.kem = vec![KemAlgorithm::MlKem1024];
        let e = negotiate(&a, &b).unwrap_err();
        assert_eq!(
            e,
            CryptoError::NoCommonAlgorithm {
                function: CryptoFunction::Kem
            }
        );
        assert_eq!(e.code(), ErrorCode::AlgorithmNegotiationFailure);
        assert_eq!(e.requirement(), Some("BIND-X-I04"));
        assert_eq!(negotiate(&b, &a).unwrap_err(), e);
        a.signature.clear();
        assert!(matches!(
            negotiate(&a, &b),
            Err(CryptoError::NoCommonAlgorithm {
                function: CryptoFunction::Signature
            })
        ));
    }

    #[test]
    fn forbidden_missing_baseline_unknown_and_misplaced() {
        let ok_sig = ["ML-DSA-65"];
        let ok_kem = ["ML-KEM-768"];
        let ok_sym = ["AES-256-GCM"];
        let ok_hash = ["SHA-256"];
        let forbidden = [
            (
                ["ML-DSA-65", "ML-DSA-44"].as_slice(),
                ok_kem.as_slice(),
                ok_sym.as_slice(),
                ok_hash.as_slice(),
            ),
            (
                ok_sig.as_slice(),
                ["ML-KEM-512", "ML-KEM-768"].as_slice(),
                ok_sym.as_slice(),
                ok_hash.as_slice(),
            ),
            (
                ok_sig.as_slice(),
                ["ML-KEM-768", "X25519"].as_slice(),
                ok_sym.as_slice(),
                ok_hash.as_slice(),
            ),
            (
                ["Ed25519", "ML-DSA-65"].as_slice(),
                ok_kem.as_slice(),
                ok_sym.as_slice(),
                ok_hash.as_slice(),
            ),
            (
                ok_sig.as_slice(),
                ok_kem.as_slice(),
                ["AES-256-GCM", "AES-128-GCM"].as_slice(),
                ok_hash.as_slice(),
            ),
            (
                ok_sig.as_slice(),
                ok_kem.as_slice(),
                ok_sym.as_slice(),
                ["SHA-256", "SHA-1"].as_slice(),
            ),
        ];
        for (s, k, y, h) in forbidden {
            let e = AlgorithmSupportProfile::from_labels(s, k, y, h).unwrap_err();
            assert!(matches!(e, CryptoError::ForbiddenInProfile { .. }), "{e:?}");
            assert_eq!(e.code(), ErrorCode::AlgorithmNegotiationFailure);
            assert!(e.requirement().is_some());
        }
        let e = AlgorithmSupportProfile::from_labels(&["ML-DSA-44"], &ok_kem, &ok_sym, &ok_hash)
            .unwrap_err();
        assert_eq!(e.requirement(), Some("BIND-VI-A-03"));

        let missing = [
            (
                ["ML-DSA-87"].as_slice(),
                ok_kem.as_slice(),
                ok_sym.as_slice(),
                ok_hash.as_slice(),
                CryptoFunction::Signature,
            ),
            (
                ok_sig.as_slice(),
                ["ML-KEM-1024"].as_slice(),
                ok_sym.as_slice(),
                ok_hash.as_slice(),
                CryptoFunction::Kem,
            ),
            (
                ok_sig.as_slice(),
                ok_kem.as_slice(),
                [].as_slice(),
                ok_hash.as_slice(),
                CryptoFunction::Symmetric,
            ),
            (
                ok_sig.as_slice(),
                ok_kem.as_slice(),
                ok_sym.as_slice(),
                ["SHA3-256"].as_slice(),
                CryptoFunction::Hash,
            ),
        ];
        for (s, k, y, h, f) in missing {
            let e = AlgorithmSupportProfile::from_labels(s, k, y, h).unwrap_err();
            assert!(
                matches!(e, CryptoError::MissingBaseline { function, .. } if function == f),
                "{e:?}"
            );
            assert_eq!(e.code(), ErrorCode::AlgorithmNegotiationFailure);
        }

        // Unknown future labels are ignored and recorded; duplicates dropped; alias accepted.
        let prof = AlgorithmSupportProfile::from_labels(
            &["ML-DSA-65", "ML-DSA-2030", "ML-DSA-65"],
            &["ML-KEM-768", "HQC-256"],
            &["AES-256-GCM"],
            &["SHA-256", "SHA-3-256"],
        )
        .unwrap();
        assert_eq!(prof.signature, [SignatureAlgorithm::MlDsa65]);
        assert_eq!(prof.hash, [HashAlgorithm::Sha256, HashAlgorithm::Sha3_256]);
        assert_eq!(prof.ignored, ["signature:ML-DSA-2030", "kem:HQC-256"]);

        // A known label under the wrong function.
        let e = AlgorithmSupportProfile::from_labels(
            &["ML-DSA-65", "ML-KEM-768"],
            &ok_kem,
            &ok_sym,
            &ok_hash,
        )
        .unwrap_err();
        assert!(matches!(
            e,
            CryptoError::MisplacedLabel {
                function: CryptoFunction::Signature,
                ..
            }
        ));
    }

    #[test]
    fn negotiate_with_peer_from_cbor() {
        let own = AlgorithmSupportProfile::baseline();
        let full = crate::cbor::to_vec(&AlgorithmSupportProfile::full().to_value()).unwrap();
        let (peer, suite) = negotiate_with_peer(&own, &full).unwrap();
        assert_eq!(peer, AlgorithmSupportProfile::full());
        assert_eq!(suite, NegotiatedSuite::baseline());
        let only87 = Value::map([
            ("signature", Value::Array(vec![Value::text("ML-DSA-87")])),
            ("kem", Value::Array(vec![Value::text("ML-KEM-768")])),
            ("symmetric", Value::Array(vec![Value::text("AES-256-GCM")])),
            ("hash", Value::Array(vec![Value::text("SHA-256")])),
        ]);
        let e = negotiate_with_peer(&own, &crate::cbor::to_vec(&only87).unwrap()).unwrap_err();
        assert_eq!(e.code(), ErrorCode::AlgorithmNegotiationFailure);
        let e = negotiate_with_peer(&own, &[0xff]).unwrap_err();
        assert_eq!(e.code(), ErrorCode::SchemaViolation);
    }

    #[test]
    fn cbor_value_round_trip_and_malformed() {
        let prof = AlgorithmSupportProfile::full();
        let v = prof.to_value();
        assert_eq!(
            v.get("hash").and_then(Value::as_array).map(<[Value]>::len),
            Some(2)
        );
        assert_eq!(
            v.get("symmetric"),
            Some(&Value::Array(vec![Value::text("AES-256-GCM")]))
        );
        assert_eq!(AlgorithmSupportProfile::from_value(&v).unwrap(), prof);
        let b = AlgorithmSupportProfile::baseline();
        assert_eq!(
            AlgorithmSupportProfile::from_value(&b.to_value()).unwrap(),
            b
        );

        // Extra keys ignored.
        let mut entries = v.as_map().unwrap().to_vec();
        entries.push((Value::text("x-ext"), Value::Integer(1)));
        assert_eq!(
            AlgorithmSupportProfile::from_value(&Value::Map(entries)).unwrap(),
            prof
        );

        let bad = [
            Value::Array(vec![]),
            Value::map([("signature", Value::Array(vec![Value::text("ML-DSA-65")]))]),
            Value::map([
                ("signature", Value::text("ML-DSA-65")),
                ("kem", Value::Array(vec![])),
                ("symmetric", Value::Array(vec![])),
                ("hash", Value::Array(vec![])),
            ]),
            Value::map([
                ("signature", Value::Array(vec![Value::Integer(1)])),
                ("kem", Value::Array(vec![])),
                ("symmetric", Value::Array(vec![])),
                ("hash", Value::Array(vec![])),
            ]),
        ];
        for v in bad {
            let e = AlgorithmSupportProfile::from_value(&v).unwrap_err();
            assert!(matches!(e, CryptoError::MalformedProfile { .. }), "{e:?}");
            assert_eq!(e.code(), ErrorCode::SchemaViolation);
        }
        let forbidden = Value::map([
            (
                "signature",
                Value::Array(vec![Value::text("ML-DSA-65"), Value::text("ML-DSA-44")]),
            ),
            ("kem", Value::Array(vec![Value::text("ML-KEM-768")])),
            ("symmetric", Value::Array(vec![Value::text("AES-256-GCM")])),
            ("hash", Value::Array(vec![Value::text("SHA-256")])),
        ]);
        assert_eq!(
            AlgorithmSupportProfile::from_value(&forbidden)
                .unwrap_err()
                .code(),
            ErrorCode::AlgorithmNegotiationFailure
        );
    }
}
