//! Algorithm identifiers of the crypto suite (SPEC VIII, BIND VI, BIND X) and the refusal of
//! every algorithm the documents forbid. Canonical labels: PROFILE G-38.

use crate::errors::{Coded, ErrorCode};

/// Signature algorithms an MTP object may carry (BIND VI-A, VI-C).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SignatureAlgorithm {
    /// Baseline, MUST be supported (BIND-VI-A).
    MlDsa65,
    /// MAY be used when both parties list it (BIND-VI-A).
    MlDsa87,
    /// REQUIRED to support, OPTIONAL to use (BIND-VI-C).
    SlhDsaSha2_192s,
}

/// Key-encapsulation algorithms (BIND VI-B).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KemAlgorithm {
    /// Baseline (BIND-VI-B).
    MlKem768,
    /// MAY be used when negotiated.
    MlKem1024,
}

/// Symmetric encryption (SPEC VIII-A): only AES-256-GCM exists in MTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SymmetricAlgorithm {
    Aes256Gcm,
}

/// Hash functions (BIND VI-E).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashAlgorithm {
    /// Baseline.
    Sha256,
    /// MAY be used when negotiated.
    Sha3_256,
}

/// Why an algorithm label is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AlgorithmError {
    /// Named by the documents as MUST NOT (ML-DSA-44, ML-KEM-512, any pre-quantum
    /// algorithm: SPEC-VIII-A, BIND-VI-A, BIND-VI-B).
    #[error("algorithm {label} is forbidden for MTP ({reason})")]
    Forbidden {
        label: String,
        reason: &'static str,
        requirement: &'static str,
    },
    /// Not an MTP algorithm label at all.
    #[error("unknown {function} algorithm label {label:?}")]
    Unknown {
        function: &'static str,
        label: String,
    },
}

impl Coded for AlgorithmError {
    fn code(&self) -> ErrorCode {
        ErrorCode::AlgorithmNegotiationFailure
    }
    fn requirement(&self) -> Option<&'static str> {
        match self {
            AlgorithmError::Forbidden { requirement, .. } => Some(requirement),
            AlgorithmError::Unknown { .. } => None,
        }
    }
}

/// Labels of forbidden algorithms and the requirement that forbids each.
const FORBIDDEN: &[(&str, &str, &str)] = &[
    ("ML-DSA-44", "insufficient security margin", "BIND-VI-A-03"),
    ("ML-KEM-512", "insufficient security margin", "BIND-VI-B-02"),
    ("RSA", "pre-quantum signature", "SPEC-VIII-A-02"),
    ("ECDSA", "pre-quantum signature", "SPEC-VIII-A-02"),
    ("EdDSA", "pre-quantum signature", "SPEC-VIII-A-02"),
    ("Ed25519", "pre-quantum signature", "SPEC-VIII-A-02"),
    ("Ed448", "pre-quantum signature", "SPEC-VIII-A-02"),
    ("ES256", "pre-quantum signature", "SPEC-VIII-A-02"),
    ("ES384", "pre-quantum signature", "SPEC-VIII-A-02"),
    ("RS256", "pre-quantum signature", "SPEC-VIII-A-02"),
    ("PS256", "pre-quantum signature", "SPEC-VIII-A-02"),
    ("DSA", "pre-quantum signature", "SPEC-VIII-A-02"),
    ("DH", "pre-quantum key exchange", "SPEC-VIII-A-05"),
    ("ECDH", "pre-quantum key exchange", "SPEC-VIII-A-05"),
    ("X25519", "pre-quantum key exchange", "SPEC-VIII-A-05"),
    ("X448", "pre-quantum key exchange", "SPEC-VIII-A-05"),
    (
        "X25519MLKEM768",
        "hybrid group includes ECDH (PROFILE G-37)",
        "SPEC-VIII-A-05",
    ),
    (
        "AES-128-GCM",
        "symmetric encryption must be AES-256-GCM",
        "SPEC-VIII-A-09",
    ),
    (
        "AES-192-GCM",
        "symmetric encryption must be AES-256-GCM",
        "SPEC-VIII-A-09",
    ),
    (
        "ChaCha20-Poly1305",
        "symmetric encryption must be AES-256-GCM",
        "SPEC-VIII-A-09",
    ),
    ("SHA-1", "not an MTP hash function", "BIND-VI-E-I01"),
    ("MD5", "not an MTP hash function", "BIND-VI-E-I01"),
];

fn refuse(function: &'static str, label: &str) -> AlgorithmError {
    match FORBIDDEN
        .iter()
        .find(|(l, _, _)| l.eq_ignore_ascii_case(label))
    {
        Some((l, reason, req)) => AlgorithmError::Forbidden {
            label: (*l).to_owned(),
            reason,
            requirement: req,
        },
        None => AlgorithmError::Unknown {
            function,
            label: label.to_owned(),
        },
    }
}

impl SignatureAlgorithm {
    pub const ALL: [SignatureAlgorithm; 3] = [
        SignatureAlgorithm::MlDsa65,
        SignatureAlgorithm::MlDsa87,
        SignatureAlgorithm::SlhDsaSha2_192s,
    ];

    pub fn label(self) -> &'static str {
        match self {
            SignatureAlgorithm::MlDsa65 => "ML-DSA-65",
            SignatureAlgorithm::MlDsa87 => "ML-DSA-87",
            SignatureAlgorithm::SlhDsaSha2_192s => "SLH-DSA-SHA2-192s",
        }
    }

    /// Exact-match parse of a canonical label; forbidden labels give `Forbidden`.
    pub fn from_label(label: &str) -> Result<Self, AlgorithmError> {
        Self::ALL
            .into_iter()
            .find(|a| a.label() == label)
            .ok_or_else(|| refuse("signature", label))
    }

    /// NIST security category (FIPS 204/205), used for negotiation ranking (BIND X).
    pub fn nist_category(self) -> u8 {
        match self {
            SignatureAlgorithm::MlDsa65 | SignatureAlgorithm::SlhDsaSha2_192s => 3,
            SignatureAlgorithm::MlDsa87 => 5,
        }
    }

    /// Raw public-key length in bytes (FIPS 204 / FIPS 205).
    pub fn public_key_len(self) -> usize {
        match self {
            SignatureAlgorithm::MlDsa65 => 1952,
            SignatureAlgorithm::MlDsa87 => 2592,
            SignatureAlgorithm::SlhDsaSha2_192s => 48,
        }
    }

    /// Signature length in bytes (BIND VI-A, VI-C).
    pub fn signature_len(self) -> usize {
        match self {
            SignatureAlgorithm::MlDsa65 => 3309,
            SignatureAlgorithm::MlDsa87 => 4627,
            SignatureAlgorithm::SlhDsaSha2_192s => 16224,
        }
    }

    pub fn is_ml_dsa(self) -> bool {
        matches!(
            self,
            SignatureAlgorithm::MlDsa65 | SignatureAlgorithm::MlDsa87
        )
    }
}

impl KemAlgorithm {
    pub const ALL: [KemAlgorithm; 2] = [KemAlgorithm::MlKem768, KemAlgorithm::MlKem1024];

    pub fn label(self) -> &'static str {
        match self {
            KemAlgorithm::MlKem768 => "ML-KEM-768",
            KemAlgorithm::MlKem1024 => "ML-KEM-1024",
        }
    }

    pub fn from_label(label: &str) -> Result<Self, AlgorithmError> {
        Self::ALL
            .into_iter()
            .find(|a| a.label() == label)
            .ok_or_else(|| refuse("kem", label))
    }

    pub fn nist_category(self) -> u8 {
        match self {
            KemAlgorithm::MlKem768 => 3,
            KemAlgorithm::MlKem1024 => 5,
        }
    }

    /// Encapsulation-key length (FIPS 203).
    pub fn encapsulation_key_len(self) -> usize {
        match self {
            KemAlgorithm::MlKem768 => 1184,
            KemAlgorithm::MlKem1024 => 1568,
        }
    }

    /// Ciphertext length (FIPS 203).
    pub fn ciphertext_len(self) -> usize {
        match self {
            KemAlgorithm::MlKem768 => 1088,
            KemAlgorithm::MlKem1024 => 1568,
        }
    }
}

impl SymmetricAlgorithm {
    pub const ALL: [SymmetricAlgorithm; 1] = [SymmetricAlgorithm::Aes256Gcm];

    pub fn label(self) -> &'static str {
        "AES-256-GCM"
    }

    pub fn from_label(label: &str) -> Result<Self, AlgorithmError> {
        if label == "AES-256-GCM" {
            Ok(SymmetricAlgorithm::Aes256Gcm)
        } else {
            Err(refuse("symmetric", label))
        }
    }
}

impl HashAlgorithm {
    pub const ALL: [HashAlgorithm; 2] = [HashAlgorithm::Sha256, HashAlgorithm::Sha3_256];

    pub fn label(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "SHA-256",
            HashAlgorithm::Sha3_256 => "SHA3-256",
        }
    }

    /// Accepts the BIND X spelling `SHA-3-256` as an alias (PROFILE G-38).
    pub fn from_label(label: &str) -> Result<Self, AlgorithmError> {
        match label {
            "SHA-256" => Ok(HashAlgorithm::Sha256),
            "SHA3-256" | "SHA-3-256" => Ok(HashAlgorithm::Sha3_256),
            _ => Err(refuse("hash", label)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_and_forbidden_are_refused() {
        for a in SignatureAlgorithm::ALL {
            assert_eq!(SignatureAlgorithm::from_label(a.label()), Ok(a));
        }
        for a in KemAlgorithm::ALL {
            assert_eq!(KemAlgorithm::from_label(a.label()), Ok(a));
        }
        assert!(matches!(
            SignatureAlgorithm::from_label("ML-DSA-44"),
            Err(AlgorithmError::Forbidden { .. })
        ));
        assert!(matches!(
            KemAlgorithm::from_label("ML-KEM-512"),
            Err(AlgorithmError::Forbidden { .. })
        ));
        assert!(matches!(
            SignatureAlgorithm::from_label("Ed25519"),
            Err(AlgorithmError::Forbidden { .. })
        ));
        assert!(matches!(
            KemAlgorithm::from_label("X25519MLKEM768"),
            Err(AlgorithmError::Forbidden { .. })
        ));
        assert!(matches!(
            SignatureAlgorithm::from_label("ml-dsa-65"),
            Err(AlgorithmError::Unknown { .. })
        ));
        assert_eq!(
            HashAlgorithm::from_label("SHA-3-256"),
            Ok(HashAlgorithm::Sha3_256)
        );
    }
}
