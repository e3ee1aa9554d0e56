//! W3C Verifiable Credentials Data Model 2.0 in JSON-LD with `DataIntegrityProof`,
//! cryptosuites `mtp-mldsa-2026` and `mtp-slhdsa-2026` (SPEC-III-A-1-04, BIND-III-A-01;
//! PROFILE G-34, G-39).

use serde_json::{Map, Value};

use crate::crypto::{PublicKey, SigningKey};
use crate::errors::{Coded, ErrorCode};
use crate::time::Timestamp;

/// Credential proof suites (PROFILE G-34).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cryptosuite {
    /// `mtp-mldsa-2026`: ML-DSA (the verification method's parameter set; 65 baseline).
    MtpMlDsa2026,
    /// `mtp-slhdsa-2026`: SLH-DSA-SHA2-192s (SPEC VIII-A; PROFILE G-39).
    MtpSlhDsa2026,
}

/// Why a credential was refused; every variant carries its registry code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("placeholder")]
    Placeholder,
}

impl Coded for CredentialError {
    fn code(&self) -> ErrorCode {
        todo!("issue 3 helper A")
    }
}

/// A VC 2.0 credential as a JSON-LD object (with or without `proof`). The JSON text is kept
/// as given (serde_json `preserve_order`), so what was signed is what is re-serialised.
#[derive(Clone, Debug, PartialEq)]
pub struct Credential(Map<String, Value>);

/// A parsed `DataIntegrityProof`.
#[derive(Clone, Debug, PartialEq)]
pub struct DataIntegrityProof {
    pub cryptosuite: String,
    pub verification_method: String,
    pub created: Timestamp,
    pub proof_purpose: String,
    pub proof_value: String,
    /// Any other proof members (signed as part of the proof options).
    pub extra: Map<String, Value>,
}

/// Proof options chosen by the signer.
#[derive(Clone, Debug, PartialEq)]
pub struct ProofOptions {
    /// DID URL of an assertion key in the issuer's DID Document.
    pub verification_method: String,
    pub created: Timestamp,
}

/// Resolves a verification method (DID URL) to an assertion public key.
pub trait KeyResolver {
    fn resolve_assertion_key(&self, verification_method: &str) -> Result<PublicKey, CredentialError>;
}

/// What a successful verification established.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedCredential {
    pub issuer: String,
    pub verification_method: String,
    pub cryptosuite: Cryptosuite,
    pub created: Timestamp,
}

/// Sign an unsigned credential (any existing `proof` is an error).
pub fn sign(
    unsigned: &Credential,
    key: &SigningKey,
    options: &ProofOptions,
) -> Result<Credential, CredentialError> {
    let _ = (unsigned, key, options);
    todo!("issue 3 helper A")
}

/// Verify a credential's `DataIntegrityProof` (signature only: validity window, status and
/// authority are checked by `status_list` and `delegation`).
pub fn verify(
    credential: &Credential,
    resolver: &dyn KeyResolver,
) -> Result<VerifiedCredential, CredentialError> {
    let _ = (credential, resolver);
    todo!("issue 3 helper A")
}
