//! Errors of the crypto suite (SPEC VIII, BIND VI, BIND X) and their registry codes.
//!
//! Code choices (PROFILE G-02, G-14, G-38, G-40, G-41):
//! - anything that makes a signature unverifiable — bad signature, wrong signature or
//!   public-key length, an unknown, forbidden or pre-quantum signature label — is 1100;
//! - forbidden KEM/symmetric/hash labels, invalid Algorithm Support Profiles and failed
//!   negotiation are 0106;
//! - a repeated (key, IV) pair, or an IV sequence that cannot produce a fresh IV, is 0104;
//! - an AEAD tag failure or a KEM ciphertext of the wrong length is 0108 (the message
//!   cannot be authenticated);
//! - a malformed ML-KEM encapsulation key (length or FIPS 203 §7.2 modulus check) and a
//!   malformed profile map are 0103 (the carrying object is not schema-conformant).

use super::algorithms::{AlgorithmError, KemAlgorithm, SignatureAlgorithm};
use crate::errors::{Coded, ErrorCode};

/// Cryptographic function an algorithm belongs to (BIND X).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CryptoFunction {
    Signature,
    Kem,
    Symmetric,
    Hash,
}

impl CryptoFunction {
    pub const ALL: [CryptoFunction; 4] = [
        CryptoFunction::Signature,
        CryptoFunction::Kem,
        CryptoFunction::Symmetric,
        CryptoFunction::Hash,
    ];

    /// Key of this function in an Algorithm Support Profile map (PROFILE G-38).
    pub fn key(self) -> &'static str {
        match self {
            CryptoFunction::Signature => "signature",
            CryptoFunction::Kem => "kem",
            CryptoFunction::Symmetric => "symmetric",
            CryptoFunction::Hash => "hash",
        }
    }
}

impl std::fmt::Display for CryptoFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key())
    }
}

/// Every failure of the crypto suite.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// A signature `algorithm` label was refused at verification: unknown, ML-DSA-44 or
    /// pre-quantum (PROFILE G-02 → 1100; SPEC-VIII-A-01, SPEC-VIII-A-02, BIND-VI-A-03).
    #[error("signature algorithm refused: {0}")]
    Algorithm(AlgorithmError),

    /// The signature does not verify (SPEC-VIII-A-01; BIND-VI-C-01 for SLH-DSA).
    #[error("{algorithm:?} signature does not verify")]
    BadSignature { algorithm: SignatureAlgorithm },

    /// Signature of the wrong length (BIND-VI-A-I01, BIND-VI-A-I02, BIND-VI-C-I01).
    #[error("{algorithm:?} signature must be {expected} bytes, got {actual}")]
    SignatureLength {
        algorithm: SignatureAlgorithm,
        expected: usize,
        actual: usize,
    },

    /// Public key of the wrong length (BIND-VI-A-I01, BIND-VI-A-I02, BIND-VI-C-I01).
    #[error("{algorithm:?} public key must be {expected} bytes, got {actual}")]
    PublicKeyLength {
        algorithm: SignatureAlgorithm,
        expected: usize,
        actual: usize,
    },

    /// ML-KEM encapsulation key of the wrong length or failing the FIPS 203 §7.2 modulus
    /// check (BIND-VI-B-I01).
    #[error("invalid {algorithm:?} encapsulation key ({reason})")]
    InvalidEncapsulationKey {
        algorithm: KemAlgorithm,
        reason: &'static str,
    },

    /// ML-KEM ciphertext of the wrong length (BIND-VI-B-I01).
    #[error("{algorithm:?} ciphertext must be {expected} bytes, got {actual}")]
    CiphertextLength {
        algorithm: KemAlgorithm,
        expected: usize,
        actual: usize,
    },

    /// AES-256-GCM authentication failed, or the input is shorter than the 128-bit tag
    /// (BIND-VI-D-01).
    #[error("AES-256-GCM authentication failed")]
    AeadOpen,

    /// The same (key, IV) pair was presented twice (BIND-VI-D-I01, BIND-VI-D-03; PROFILE G-40).
    #[error("AES-256-GCM IV reused under the same key")]
    IvReuse,

    /// The 64-bit per-session IV counter is spent: a new key or session id is needed
    /// (BIND-VI-D-03; PROFILE G-40).
    #[error("IV counter exhausted for this session")]
    IvExhausted,

    /// HKDF-SHA-256 asked for more than 255 × 32 output bytes (RFC 5869).
    #[error("HKDF-SHA-256 output length {requested} exceeds 8160 bytes")]
    HkdfLength { requested: usize },

    /// An Algorithm Support Profile lists a forbidden algorithm (BIND X; PROFILE G-38).
    #[error("{function} list of the algorithm support profile: {error}")]
    ForbiddenInProfile {
        function: CryptoFunction,
        error: AlgorithmError,
    },

    /// A known algorithm label listed under the wrong function (PROFILE G-38).
    #[error("{label} is not a {function} algorithm")]
    MisplacedLabel {
        function: CryptoFunction,
        label: String,
    },

    /// A baseline algorithm is missing from an Algorithm Support Profile (PROFILE G-38;
    /// BIND-VI-A-02, BIND-VI-B-I01, SPEC-VIII-A-09, BIND-VI-E-02).
    #[error("algorithm support profile lacks the {function} baseline {baseline}")]
    MissingBaseline {
        function: CryptoFunction,
        baseline: &'static str,
    },

    /// The two profiles share no algorithm for a function (BIND-X-I04; PROFILE G-38).
    #[error("no common {function} algorithm")]
    NoCommonAlgorithm { function: CryptoFunction },

    /// The Algorithm Support Profile map is not `{signature: [tstr], kem: [tstr],
    /// symmetric: [tstr], hash: [tstr]}` (BIND-X-I02; PROFILE G-38).
    #[error("malformed algorithm support profile: {reason}")]
    MalformedProfile { reason: &'static str },
}

impl Coded for CryptoError {
    fn code(&self) -> ErrorCode {
        match self {
            CryptoError::Algorithm(_)
            | CryptoError::BadSignature { .. }
            | CryptoError::SignatureLength { .. }
            | CryptoError::PublicKeyLength { .. } => ErrorCode::SignatureVerificationFailure,
            CryptoError::InvalidEncapsulationKey { .. } | CryptoError::MalformedProfile { .. } => {
                ErrorCode::SchemaViolation
            }
            CryptoError::CiphertextLength { .. } | CryptoError::AeadOpen => {
                ErrorCode::MessageIntegrityFailure
            }
            CryptoError::IvReuse | CryptoError::IvExhausted => ErrorCode::IvReuse,
            CryptoError::HkdfLength { .. }
            | CryptoError::ForbiddenInProfile { .. }
            | CryptoError::MisplacedLabel { .. }
            | CryptoError::MissingBaseline { .. }
            | CryptoError::NoCommonAlgorithm { .. } => ErrorCode::AlgorithmNegotiationFailure,
        }
    }

    fn requirement(&self) -> Option<&'static str> {
        Some(match self {
            CryptoError::Algorithm(e) => match e {
                AlgorithmError::Forbidden { requirement, .. } => requirement,
                AlgorithmError::Unknown { .. } => "SPEC-VIII-A-01",
            },
            CryptoError::BadSignature { algorithm } => match algorithm {
                SignatureAlgorithm::SlhDsaSha2_192s => "BIND-VI-C-01",
                _ => "SPEC-VIII-A-01",
            },
            CryptoError::SignatureLength { algorithm, .. }
            | CryptoError::PublicKeyLength { algorithm, .. } => match algorithm {
                SignatureAlgorithm::MlDsa65 => "BIND-VI-A-I01",
                SignatureAlgorithm::MlDsa87 => "BIND-VI-A-I02",
                SignatureAlgorithm::SlhDsaSha2_192s => "BIND-VI-C-I01",
            },
            CryptoError::InvalidEncapsulationKey { .. } | CryptoError::CiphertextLength { .. } => {
                "BIND-VI-B-I01"
            }
            CryptoError::AeadOpen => "BIND-VI-D-01",
            CryptoError::IvReuse => "BIND-VI-D-I01",
            CryptoError::IvExhausted => "BIND-VI-D-03",
            CryptoError::HkdfLength { .. } => return None,
            CryptoError::ForbiddenInProfile { error, .. } => match error {
                AlgorithmError::Forbidden { requirement, .. } => requirement,
                AlgorithmError::Unknown { .. } => "BIND-X-I02",
            },
            CryptoError::MisplacedLabel { .. } | CryptoError::MalformedProfile { .. } => {
                "BIND-X-I02"
            }
            CryptoError::MissingBaseline { function, .. } => match function {
                CryptoFunction::Signature => "BIND-VI-A-02",
                CryptoFunction::Kem => "BIND-VI-B-I01",
                CryptoFunction::Symmetric => "SPEC-VIII-A-09",
                CryptoFunction::Hash => "BIND-VI-E-02",
            },
            CryptoError::NoCommonAlgorithm { .. } => "BIND-X-I04",
        })
    }
}
