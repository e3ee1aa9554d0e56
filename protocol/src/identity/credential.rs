//! W3C Verifiable Credentials Data Model 2.0 in JSON-LD with `DataIntegrityProof`,
//! cryptosuites `mtp-mldsa-2026` and `mtp-slhdsa-2026` (SPEC-III-A-1-04, BIND-III-A-01;
//! PROFILE G-34, G-39).
//!
//! The proof procedure mirrors W3C `eddsa-rdfc-2022` (PROFILE G-34):
//!
//! ```text
//! proofConfig = proof options (the proof without proofValue) with "@context" set to the
//!               credential's "@context"
//! hashData    = SHA-256(RDFC-1.0(proofConfig)) ‖ SHA-256(RDFC-1.0(credential without proof))
//! signature   = ML-DSA / SLH-DSA over hashData (64 bytes), pure, empty context
//! proofValue  = "z" ‖ base58btc(signature)
//! ```
//!
//! Error codes: a proof that does not verify — missing or malformed proof, unknown
//! cryptosuite, cryptosuite that does not match the key, refused key type, bad signature —
//! is 1100; a credential that is not a valid VC 2.0 JSON-LD document, or whose proof is
//! made by someone other than its issuer, is 1101; text that is not a JSON object is 0103.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::crypto::{CryptoError, PublicKey, SignatureAlgorithm, SigningKey, sha256};
use crate::errors::{Coded, ErrorCode};
use crate::identity::document::{DidDocument, Relationship};
use crate::identity::jsonld::{self, JsonLdError};
use crate::identity::multikey::{Multikey, MultikeyError};
use crate::time::Timestamp;

/// The proof type (VC Data Integrity 1.0).
pub const DATA_INTEGRITY_PROOF: &str = "DataIntegrityProof";
/// The only accepted proof purpose.
pub const ASSERTION_METHOD: &str = "assertionMethod";
/// The base credential type (VC 2.0 §4.5).
pub const VERIFIABLE_CREDENTIAL: &str = "VerifiableCredential";
/// Longest accepted `proofValue` (an SLH-DSA-SHA2-192s signature, 16,224 bytes, is about
/// 22,160 base58 characters); bounds the quadratic base58 decoding on untrusted input.
pub const MAX_PROOF_VALUE_LEN: usize = 24_000;

/// Credential proof suites (PROFILE G-34).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cryptosuite {
    /// `mtp-mldsa-2026`: ML-DSA (the verification method's parameter set; 65 baseline).
    MtpMlDsa2026,
    /// `mtp-slhdsa-2026`: SLH-DSA-SHA2-192s (SPEC VIII-A; PROFILE G-39).
    MtpSlhDsa2026,
}

impl Cryptosuite {
    pub const ALL: [Cryptosuite; 2] = [Cryptosuite::MtpMlDsa2026, Cryptosuite::MtpSlhDsa2026];

    /// The `cryptosuite` value.
    pub fn label(self) -> &'static str {
        match self {
            Cryptosuite::MtpMlDsa2026 => "mtp-mldsa-2026",
            Cryptosuite::MtpSlhDsa2026 => "mtp-slhdsa-2026",
        }
    }

    /// Exact match of a `cryptosuite` value.
    pub fn from_label(label: &str) -> Option<Cryptosuite> {
        Cryptosuite::ALL.into_iter().find(|c| c.label() == label)
    }

    /// The suite of a signing / verification key: ML-DSA-65 and ML-DSA-87 →
    /// `mtp-mldsa-2026`, SLH-DSA-SHA2-192s → `mtp-slhdsa-2026` (PROFILE G-34, G-39).
    pub fn for_algorithm(algorithm: SignatureAlgorithm) -> Cryptosuite {
        match algorithm {
            SignatureAlgorithm::MlDsa65 | SignatureAlgorithm::MlDsa87 => Cryptosuite::MtpMlDsa2026,
            SignatureAlgorithm::SlhDsaSha2_192s => Cryptosuite::MtpSlhDsa2026,
        }
    }

    /// Whether a key of `algorithm` may sign under this suite.
    pub fn accepts(self, algorithm: SignatureAlgorithm) -> bool {
        Cryptosuite::for_algorithm(algorithm) == self
    }
}

/// Why a credential was refused; every variant carries its registry code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// The text is not JSON, or not a JSON object (0103).
    #[error("credential is not a JSON object: {0}")]
    NotJsonObject(String),
    /// A VC 2.0 structural rule is broken (1101); `rule` names it.
    #[error("not a VC 2.0 credential: {rule}")]
    Structure { rule: &'static str },
    /// `validFrom` / `validUntil` is not an RFC 3339 date-time (1101).
    #[error("{member} is not an RFC 3339 date-time")]
    BadDate { member: &'static str },
    /// `validFrom` is after `validUntil` (1101).
    #[error("validFrom is after validUntil")]
    ValidityWindow,
    /// JSON-LD expansion or RDFC-1.0 failed: unknown context, undefined term, … (1101).
    #[error("credential is not valid JSON-LD: {0}")]
    JsonLd(#[from] JsonLdError),
    /// `sign` was given a credential that already has a `proof` (0103).
    #[error("credential already has a proof")]
    AlreadySigned,
    /// No `proof` member (1100).
    #[error("credential has no proof")]
    MissingProof,
    /// `proof` is not a single proof object, or a member is missing or of the wrong type
    /// (1100); `rule` names what is wrong.
    #[error("malformed proof: {rule}")]
    MalformedProof { rule: &'static str },
    /// `proof.type` is not `DataIntegrityProof` (1100).
    #[error("proof type {0:?} is not DataIntegrityProof")]
    ProofType(String),
    /// `proof.cryptosuite` is not an MTP cryptosuite (1100, BIND-III-A-01).
    #[error("unknown cryptosuite {0:?}")]
    UnknownCryptosuite(String),
    /// `proof.proofPurpose` is not `assertionMethod` (1100).
    #[error("proof purpose {0:?} is not assertionMethod")]
    ProofPurpose(String),
    /// The verification method belongs to a DID other than the issuer (1101).
    #[error("verification method {verification_method} is not a key of the issuer {issuer}")]
    WrongIssuer {
        issuer: String,
        verification_method: String,
    },
    /// No DID Document is known for the verification method's DID (1101).
    #[error("no DID Document for {0}")]
    UnknownDid(String),
    /// The verification method is not an assertionMethod key of the DID Document (1100).
    #[error("{0} is not an assertionMethod key")]
    NotAssertionMethod(String),
    /// The verification method's `publicKeyMultibase` is missing or undecodable, or a
    /// refused key type: ML-DSA-44, pre-quantum (1100; SPEC-VIII-A-02, BIND-VI-A-03).
    #[error("verification method {verification_method}: {source}")]
    Key {
        verification_method: String,
        source: MultikeyError,
    },
    /// The verification method has no `publicKeyMultibase` (1100).
    #[error("verification method {0} has no publicKeyMultibase")]
    MissingPublicKey(String),
    /// The verification method is a KEM key (1100).
    #[error("verification method {0} is not a signature key")]
    NotSignatureKey(String),
    /// The cryptosuite does not match the key's algorithm (1100; PROFILE G-34).
    #[error("cryptosuite {} does not match a {} key", cryptosuite.label(), algorithm.label())]
    CryptosuiteMismatch {
        cryptosuite: Cryptosuite,
        algorithm: SignatureAlgorithm,
    },
    /// `proofValue` is not multibase base58btc (`z…`) or is too long (1100).
    #[error("proofValue is not multibase base58btc ({0})")]
    ProofValueEncoding(&'static str),
    /// The signature does not verify, or has the wrong length (1100).
    #[error("signature: {0}")]
    Signature(CryptoError),
}

impl Coded for CredentialError {
    fn code(&self) -> ErrorCode {
        use CredentialError as E;
        match self {
            E::NotJsonObject(_) | E::AlreadySigned => ErrorCode::SchemaViolation,
            E::Structure { .. }
            | E::BadDate { .. }
            | E::ValidityWindow
            | E::JsonLd(_)
            | E::WrongIssuer { .. }
            | E::UnknownDid(_) => ErrorCode::AuthorityAttestationInvalid,
            E::MissingProof
            | E::MalformedProof { .. }
            | E::ProofType(_)
            | E::UnknownCryptosuite(_)
            | E::ProofPurpose(_)
            | E::NotAssertionMethod(_)
            | E::Key { .. }
            | E::MissingPublicKey(_)
            | E::NotSignatureKey(_)
            | E::CryptosuiteMismatch { .. }
            | E::ProofValueEncoding(_)
            | E::Signature(_) => ErrorCode::SignatureVerificationFailure,
        }
    }

    fn requirement(&self) -> Option<&'static str> {
        use CredentialError as E;
        match self {
            E::Key { source, .. } => source.requirement(),
            E::Structure { .. } | E::BadDate { .. } | E::ValidityWindow => Some("SPEC-III-A-1-04"),
            E::NotJsonObject(_) | E::AlreadySigned => None,
            _ => Some("BIND-III-A-01"),
        }
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
    fn resolve_assertion_key(
        &self,
        verification_method: &str,
    ) -> Result<PublicKey, CredentialError>;
}

/// What a successful verification established.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedCredential {
    pub issuer: String,
    pub verification_method: String,
    pub cryptosuite: Cryptosuite,
    pub created: Timestamp,
}

fn structure(rule: &'static str) -> CredentialError {
    CredentialError::Structure { rule }
}

fn malformed(rule: &'static str) -> CredentialError {
    CredentialError::MalformedProof { rule }
}

/// `scheme ":" rest` with an RFC 3986 scheme and a non-empty rest, no whitespace.
fn is_url(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The DID of a DID URL: everything before the first `/`, `?` or `#`.
pub fn did_of(verification_method: &str) -> &str {
    verification_method
        .split(['/', '?', '#'])
        .next()
        .unwrap_or(verification_method)
}

impl DataIntegrityProof {
    /// Parses a proof object. `created` accepts any RFC 3339 date-time (the original text
    /// is what is signed; verification never re-serialises it).
    pub fn from_map(m: &Map<String, Value>) -> Result<DataIntegrityProof, CredentialError> {
        let text = |k: &str, rule: &'static str| -> Result<String, CredentialError> {
            match m.get(k) {
                Some(Value::String(s)) => Ok(s.clone()),
                _ => Err(malformed(rule)),
            }
        };
        match m.get("type") {
            Some(Value::String(t)) if t == DATA_INTEGRITY_PROOF => {}
            Some(Value::String(t)) => return Err(CredentialError::ProofType(t.clone())),
            Some(other) => return Err(CredentialError::ProofType(other.to_string())),
            None => return Err(malformed("type is missing")),
        }
        let created = text("created", "created is missing or not a string")?;
        let created =
            Timestamp::parse_lenient(&created).map_err(|_| malformed("created is not RFC 3339"))?;
        let extra = m
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "type"
                        | "cryptosuite"
                        | "verificationMethod"
                        | "created"
                        | "proofPurpose"
                        | "proofValue"
                )
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(DataIntegrityProof {
            cryptosuite: text("cryptosuite", "cryptosuite is missing or not a string")?,
            verification_method: text(
                "verificationMethod",
                "verificationMethod is missing or not a string",
            )?,
            created,
            proof_purpose: text("proofPurpose", "proofPurpose is missing or not a string")?,
            proof_value: text("proofValue", "proofValue is missing or not a string")?,
            extra,
        })
    }

    /// The proof as JSON (`created` in canonical form).
    pub fn to_map(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("type".into(), DATA_INTEGRITY_PROOF.into());
        m.insert("cryptosuite".into(), self.cryptosuite.clone().into());
        m.insert("created".into(), self.created.to_rfc3339().into());
        m.insert(
            "verificationMethod".into(),
            self.verification_method.clone().into(),
        );
        m.insert("proofPurpose".into(), self.proof_purpose.clone().into());
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        m.insert("proofValue".into(), self.proof_value.clone().into());
        m
    }

    /// The signature bytes of `proofValue` (multibase base58btc).
    pub fn signature(&self) -> Result<Vec<u8>, CredentialError> {
        decode_proof_value(&self.proof_value)
    }
}

/// `z` ‖ base58btc → bytes.
pub fn decode_proof_value(s: &str) -> Result<Vec<u8>, CredentialError> {
    if s.len() > MAX_PROOF_VALUE_LEN {
        return Err(CredentialError::ProofValueEncoding("too long"));
    }
    let body = s
        .strip_prefix('z')
        .ok_or(CredentialError::ProofValueEncoding("missing 'z' prefix"))?;
    base58::decode(body).ok_or(CredentialError::ProofValueEncoding("invalid base58btc"))
}

/// bytes → `z` ‖ base58btc.
pub fn encode_proof_value(signature: &[u8]) -> String {
    format!("z{}", base58::encode(signature))
}

/// Base58btc (Bitcoin alphabet), identical output to the `bs58` crate but with multi-digit
/// limbs: `bs58` works one byte × one digit at a time, which makes a 16 KB SLH-DSA
/// signature cost ~0.3 s to encode; here each step is 4 bytes × 5 digits (~20× fewer).
pub mod base58 {
    const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    /// 58⁵ < 2³⁰: a limb of five base-58 digits.
    const B58_5: u64 = 58 * 58 * 58 * 58 * 58;

    /// Multiplies the little-endian `limbs` (each < `base`) by `mul` and adds `add`.
    /// Needs `base * mul + add` < 2⁶⁴ (base < 2³², mul ≤ 2³², add < 2³²).
    fn mul_add(limbs: &mut Vec<u64>, base: u64, mul: u64, add: u64) {
        let mut carry = add;
        for limb in limbs.iter_mut() {
            let x = *limb * mul + carry;
            *limb = x % base;
            carry = x / base;
        }
        while carry > 0 {
            limbs.push(carry % base);
            carry /= base;
        }
    }

    pub fn encode(input: &[u8]) -> String {
        let zeros = input.iter().take_while(|b| **b == 0).count();
        let rest = input.get(zeros..).unwrap_or_default();
        // Base-58⁵ limbs, fed 4 bytes at a time (a shorter first chunk).
        let mut limbs: Vec<u64> = Vec::with_capacity(rest.len() * 138 / 500 + 1);
        let head = rest.len() % 4;
        let (first, tail) = rest.split_at(head);
        if !first.is_empty() {
            let v = first.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b));
            mul_add(&mut limbs, B58_5, 1 << (8 * head), v);
        }
        for chunk in tail.chunks_exact(4) {
            let v = chunk.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b));
            mul_add(&mut limbs, B58_5, 1 << 32, v);
        }
        let mut digits: Vec<u8> = Vec::with_capacity(limbs.len() * 5);
        for mut limb in limbs {
            for _ in 0..5 {
                digits.push((limb % 58) as u8);
                limb /= 58;
            }
        }
        while digits.last() == Some(&0) {
            digits.pop();
        }
        let mut out = String::with_capacity(zeros + digits.len());
        out.extend(std::iter::repeat_n('1', zeros));
        // Every digit is < 58 (a remainder mod 58), so `get` never misses.
        out.extend(
            digits
                .iter()
                .rev()
                .filter_map(|d| ALPHABET.get(usize::from(*d)).copied().map(char::from)),
        );
        out
    }

    fn digit(c: u8) -> Option<u64> {
        ALPHABET.iter().position(|a| *a == c).map(|p| p as u64)
    }

    /// `None` for a character outside the alphabet.
    pub fn decode(input: &str) -> Option<Vec<u8>> {
        let bytes = input.as_bytes();
        let zeros = bytes.iter().take_while(|c| **c == b'1').count();
        let rest = bytes.get(zeros..).unwrap_or_default();
        // Base-2³² limbs, fed 5 digits at a time (a shorter first chunk).
        let mut limbs: Vec<u64> = Vec::with_capacity(rest.len() * 733 / 4000 + 1);
        let head = rest.len() % 5;
        let (first, tail) = rest.split_at(head);
        let chunk_value = |chunk: &[u8]| -> Option<u64> {
            chunk
                .iter()
                .try_fold(0u64, |a, c| Some(a * 58 + digit(*c)?))
        };
        if !first.is_empty() {
            let mul = (0..head).fold(1u64, |m, _| m * 58);
            mul_add(&mut limbs, 1 << 32, mul, chunk_value(first)?);
        }
        for chunk in tail.chunks_exact(5) {
            mul_add(&mut limbs, 1 << 32, B58_5, chunk_value(chunk)?);
        }
        let mut le: Vec<u8> = Vec::with_capacity(limbs.len() * 4);
        for limb in limbs {
            le.extend_from_slice(&(limb as u32).to_le_bytes());
        }
        while le.last() == Some(&0) {
            le.pop();
        }
        let mut out = vec![0u8; zeros];
        out.extend(le.iter().rev());
        Some(out)
    }
}

impl Credential {
    /// Parses JSON text and checks the VC 2.0 structure ([`Credential::validate`]).
    pub fn from_json(s: &str) -> Result<Credential, CredentialError> {
        let v: Value =
            serde_json::from_str(s).map_err(|e| CredentialError::NotJsonObject(e.to_string()))?;
        Credential::from_value(v)
    }

    /// Checks the VC 2.0 structure ([`Credential::validate`]).
    pub fn from_value(v: Value) -> Result<Credential, CredentialError> {
        match v {
            Value::Object(m) => {
                let c = Credential(m);
                c.validate()?;
                Ok(c)
            }
            other => Err(CredentialError::NotJsonObject(format!(
                "a JSON {} is not an object",
                json_kind(&other)
            ))),
        }
    }

    /// Compact JSON text, members in their original order.
    pub fn to_json(&self) -> String {
        Value::Object(self.0.clone()).to_string()
    }

    pub fn to_value(&self) -> Value {
        Value::Object(self.0.clone())
    }

    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }

    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// Mutable access (for building and for tests); `sign` and `verify` re-run
    /// [`Credential::validate`].
    pub fn as_map_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.0
    }

    /// VC 2.0 structural rules (SPEC-III-A-1-04): `@context` starts with the VC 2.0
    /// context; `type` contains `VerifiableCredential`; `id`, if present, is a URL;
    /// `issuer` is a URL or an object with a URL `id`; `credentialSubject` is an object or
    /// a non-empty array of objects; `validFrom` / `validUntil` are RFC 3339 date-times
    /// with `validFrom` ≤ `validUntil`.
    pub fn validate(&self) -> Result<(), CredentialError> {
        let m = &self.0;
        let first_context = match m.get("@context") {
            Some(Value::Array(a)) => a.first(),
            Some(v @ Value::String(_)) => Some(v),
            _ => return Err(structure("@context must be an array")),
        };
        if first_context.and_then(Value::as_str) != Some(jsonld::CREDENTIALS_V2) {
            return Err(structure(
                "the first @context entry must be https://www.w3.org/ns/credentials/v2",
            ));
        }
        match m.get("type") {
            Some(Value::String(_)) | Some(Value::Array(_)) => {}
            _ => return Err(structure("type must be a string or an array")),
        }
        if let Some(Value::Array(a)) = m.get("type")
            && !a.iter().all(Value::is_string)
        {
            return Err(structure("type entries must be strings"));
        }
        if !self.has_type(VERIFIABLE_CREDENTIAL) {
            return Err(structure("type must contain VerifiableCredential"));
        }
        match m.get("id") {
            None => {}
            Some(Value::String(s)) if is_url(s) => {}
            Some(_) => return Err(structure("id must be a URL")),
        }
        let issuer_ok = match m.get("issuer") {
            Some(Value::String(s)) => is_url(s),
            Some(Value::Object(o)) => o.get("id").and_then(Value::as_str).is_some_and(is_url),
            _ => false,
        };
        if !issuer_ok {
            return Err(structure(
                "issuer must be a URL or an object whose id is a URL",
            ));
        }
        let subject_ok = match m.get("credentialSubject") {
            Some(Value::Object(_)) => true,
            Some(Value::Array(a)) => !a.is_empty() && a.iter().all(Value::is_object),
            _ => false,
        };
        if !subject_ok {
            return Err(structure(
                "credentialSubject must be an object or a non-empty array of objects",
            ));
        }
        let date = |member: &'static str| -> Result<Option<Timestamp>, CredentialError> {
            match m.get(member) {
                None => Ok(None),
                Some(Value::String(s)) => Timestamp::parse_lenient(s)
                    .map(Some)
                    .map_err(|_| CredentialError::BadDate { member }),
                Some(_) => Err(CredentialError::BadDate { member }),
            }
        };
        let from = date("validFrom")?;
        let until = date("validUntil")?;
        if let (Some(f), Some(u)) = (from, until)
            && f > u
        {
            return Err(CredentialError::ValidityWindow);
        }
        Ok(())
    }

    /// The `@context` entries that are URLs.
    pub fn contexts(&self) -> Vec<&str> {
        match self.0.get("@context") {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            Some(Value::String(s)) => vec![s.as_str()],
            _ => Vec::new(),
        }
    }

    pub fn id(&self) -> Option<&str> {
        self.0.get("id").and_then(Value::as_str)
    }

    /// The `type` values.
    pub fn types(&self) -> Vec<&str> {
        match self.0.get("type") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    pub fn has_type(&self, t: &str) -> bool {
        self.types().contains(&t)
    }

    /// The issuer URL: `issuer` as a string, or its `id`.
    pub fn issuer(&self) -> Option<&str> {
        match self.0.get("issuer") {
            Some(Value::String(s)) => Some(s),
            Some(Value::Object(o)) => o.get("id").and_then(Value::as_str),
            _ => None,
        }
    }

    /// `credentialSubject` when it is a single object (or an array of exactly one).
    pub fn subject(&self) -> Option<&Map<String, Value>> {
        match self.0.get("credentialSubject") {
            Some(Value::Object(o)) => Some(o),
            Some(Value::Array(a)) if a.len() == 1 => a.first().and_then(Value::as_object),
            _ => None,
        }
    }

    /// `credentialSubject.id` of a single subject.
    pub fn subject_id(&self) -> Option<&str> {
        self.subject()?.get("id").and_then(Value::as_str)
    }

    pub fn valid_from(&self) -> Option<Timestamp> {
        let s = self.0.get("validFrom")?.as_str()?;
        Timestamp::parse_lenient(s).ok()
    }

    pub fn valid_until(&self) -> Option<Timestamp> {
        let s = self.0.get("validUntil")?.as_str()?;
        Timestamp::parse_lenient(s).ok()
    }

    /// `credentialStatus` (an object or an array of objects).
    pub fn credential_status(&self) -> Option<&Value> {
        self.0.get("credentialStatus")
    }

    /// The raw `proof` member.
    pub fn proof_value(&self) -> Option<&Value> {
        self.0.get("proof")
    }

    /// The proof, if any. Only a single proof object is accepted (no proof sets or
    /// chains): an array is [`CredentialError::MalformedProof`].
    pub fn proof(&self) -> Result<Option<DataIntegrityProof>, CredentialError> {
        match self.0.get("proof") {
            None => Ok(None),
            Some(Value::Object(m)) => DataIntegrityProof::from_map(m).map(Some),
            Some(Value::Array(_)) => Err(malformed("a proof set is not supported")),
            Some(_) => Err(malformed("proof must be an object")),
        }
    }

    /// The credential without its `proof`.
    pub fn without_proof(&self) -> Credential {
        let mut m = self.0.clone();
        m.shift_remove("proof");
        Credential(m)
    }

    /// RDFC-1.0 canonical N-Quads of the credential without its proof.
    pub fn canonical_nquads(&self) -> Result<String, CredentialError> {
        Ok(jsonld::canonicalize(&self.without_proof().into_value())?)
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The proof configuration of PROFILE G-34: the proof options (every proof member except
/// `proofValue`) with `@context` set to the credential's `@context`.
pub fn proof_config(
    credential: &Credential,
    proof_options: &Map<String, Value>,
) -> Map<String, Value> {
    let mut config = Map::new();
    if let Some(ctx) = credential.0.get("@context") {
        config.insert("@context".into(), ctx.clone());
    }
    for (k, v) in proof_options {
        if k != "proofValue" && k != "@context" {
            config.insert(k.clone(), v.clone());
        }
    }
    config
}

/// `hashData` of PROFILE G-34 (64 bytes): SHA-256 of the canonical proof configuration ‖
/// SHA-256 of the canonical credential without `proof`. `proof_options` is the proof
/// object; its `proofValue` and `@context` are ignored.
pub fn hash_data(
    credential: &Credential,
    proof_options: &Map<String, Value>,
) -> Result<Vec<u8>, CredentialError> {
    let config = jsonld::canonicalize(&Value::Object(proof_config(credential, proof_options)))?;
    let document = credential.canonical_nquads()?;
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&sha256(config.as_bytes()));
    out.extend_from_slice(&sha256(document.as_bytes()));
    Ok(out)
}

/// The issuer must be the DID of the verification method (PROFILE G-34).
fn check_issuer(
    credential: &Credential,
    verification_method: &str,
) -> Result<String, CredentialError> {
    let issuer = credential.issuer().ok_or(structure(
        "issuer must be a URL or an object whose id is a URL",
    ))?;
    if did_of(verification_method) != issuer {
        return Err(CredentialError::WrongIssuer {
            issuer: issuer.to_owned(),
            verification_method: verification_method.to_owned(),
        });
    }
    Ok(issuer.to_owned())
}

/// Sign an unsigned credential (any existing `proof` is an error).
///
/// The verification method must be a key of the issuer (its DID is the issuer); the
/// cryptosuite follows the key's algorithm. Deterministic: the same inputs give the same
/// proof.
pub fn sign(
    unsigned: &Credential,
    key: &SigningKey,
    options: &ProofOptions,
) -> Result<Credential, CredentialError> {
    if unsigned.0.contains_key("proof") {
        return Err(CredentialError::AlreadySigned);
    }
    unsigned.validate()?;
    check_issuer(unsigned, &options.verification_method)?;
    let suite = Cryptosuite::for_algorithm(key.algorithm());
    let mut proof = Map::new();
    proof.insert("type".into(), DATA_INTEGRITY_PROOF.into());
    proof.insert("cryptosuite".into(), suite.label().into());
    proof.insert("created".into(), options.created.to_rfc3339().into());
    proof.insert(
        "verificationMethod".into(),
        options.verification_method.clone().into(),
    );
    proof.insert("proofPurpose".into(), ASSERTION_METHOD.into());
    let data = hash_data(unsigned, &proof)?;
    proof.insert(
        "proofValue".into(),
        encode_proof_value(&key.sign(&data)).into(),
    );
    let mut signed = unsigned.0.clone();
    signed.insert("proof".into(), Value::Object(proof));
    Ok(Credential(signed))
}

/// Verify a credential's `DataIntegrityProof` (signature only: validity window, status and
/// authority are checked by `status_list` and `delegation`).
pub fn verify(
    credential: &Credential,
    resolver: &dyn KeyResolver,
) -> Result<VerifiedCredential, CredentialError> {
    credential.validate()?;
    let proof_map = match credential.0.get("proof") {
        None => return Err(CredentialError::MissingProof),
        Some(Value::Object(m)) => m,
        Some(Value::Array(_)) => return Err(malformed("a proof set is not supported")),
        Some(_) => return Err(malformed("proof must be an object")),
    };
    let proof = DataIntegrityProof::from_map(proof_map)?;
    let suite = Cryptosuite::from_label(&proof.cryptosuite)
        .ok_or_else(|| CredentialError::UnknownCryptosuite(proof.cryptosuite.clone()))?;
    if proof.proof_purpose != ASSERTION_METHOD {
        return Err(CredentialError::ProofPurpose(proof.proof_purpose));
    }
    let issuer = check_issuer(credential, &proof.verification_method)?;
    let key = resolver.resolve_assertion_key(&proof.verification_method)?;
    if !suite.accepts(key.algorithm()) {
        return Err(CredentialError::CryptosuiteMismatch {
            cryptosuite: suite,
            algorithm: key.algorithm(),
        });
    }
    let signature = proof.signature()?;
    let data = hash_data(&credential.without_proof(), proof_map)?;
    key.verify(&data, &signature)
        .map_err(CredentialError::Signature)?;
    Ok(VerifiedCredential {
        issuer,
        verification_method: proof.verification_method,
        cryptosuite: suite,
        created: proof.created,
    })
}

/// Assertion keys of one DID Document (PROFILE G-34): the verification method must be
/// listed (by reference or embedded) under `assertionMethod`; its Multikey is decoded with
/// the refusals of [`Multikey::decode`] (ML-DSA-44, pre-quantum → 1100).
impl KeyResolver for DidDocument {
    fn resolve_assertion_key(
        &self,
        verification_method: &str,
    ) -> Result<PublicKey, CredentialError> {
        if did_of(verification_method) != self.id {
            return Err(CredentialError::UnknownDid(
                did_of(verification_method).to_owned(),
            ));
        }
        let absolute = |r: &str| {
            if r.starts_with('#') {
                format!("{}{r}", self.id)
            } else {
                r.to_owned()
            }
        };
        let listed = self.assertion_method.iter().flatten().any(|r| match r {
            Relationship::Reference(s) => absolute(s) == verification_method,
            Relationship::Embedded(vm) => absolute(&vm.id) == verification_method,
        });
        if !listed {
            return Err(CredentialError::NotAssertionMethod(
                verification_method.to_owned(),
            ));
        }
        let vm = self
            .verification_methods()
            .find(|vm| absolute(&vm.id) == verification_method)
            .ok_or_else(|| CredentialError::NotAssertionMethod(verification_method.to_owned()))?;
        let multibase = vm
            .public_key_multibase
            .as_deref()
            .ok_or_else(|| CredentialError::MissingPublicKey(verification_method.to_owned()))?;
        let key = Multikey::decode(multibase).map_err(|source| CredentialError::Key {
            verification_method: verification_method.to_owned(),
            source,
        })?;
        let algorithm = key
            .signature_algorithm()
            .ok_or_else(|| CredentialError::NotSignatureKey(verification_method.to_owned()))?;
        PublicKey::from_bytes(algorithm, key.public_key()).map_err(CredentialError::Signature)
    }
}

/// Resolves verification methods against a set of DID Documents, by DID (any DID method,
/// PROFILE G-05).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DocumentResolver {
    documents: BTreeMap<String, DidDocument>,
}

impl DocumentResolver {
    pub fn new() -> DocumentResolver {
        DocumentResolver::default()
    }

    /// Adds (or replaces) the document for its `id`.
    pub fn insert(&mut self, document: DidDocument) {
        self.documents.insert(document.id.clone(), document);
    }

    pub fn with(mut self, document: DidDocument) -> DocumentResolver {
        self.insert(document);
        self
    }

    pub fn get(&self, did: &str) -> Option<&DidDocument> {
        self.documents.get(did)
    }
}

impl FromIterator<DidDocument> for DocumentResolver {
    fn from_iter<T: IntoIterator<Item = DidDocument>>(iter: T) -> Self {
        let mut r = DocumentResolver::new();
        for d in iter {
            r.insert(d);
        }
        r
    }
}

impl KeyResolver for DocumentResolver {
    fn resolve_assertion_key(
        &self,
        verification_method: &str,
    ) -> Result<PublicKey, CredentialError> {
        let did = did_of(verification_method);
        self.documents
            .get(did)
            .ok_or_else(|| CredentialError::UnknownDid(did.to_owned()))?
            .resolve_assertion_key(verification_method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cryptosuite_labels() {
        for c in Cryptosuite::ALL {
            assert_eq!(Cryptosuite::from_label(c.label()), Some(c));
        }
        assert_eq!(Cryptosuite::from_label("eddsa-rdfc-2022"), None);
        assert_eq!(
            Cryptosuite::for_algorithm(SignatureAlgorithm::MlDsa87),
            Cryptosuite::MtpMlDsa2026
        );
        assert!(!Cryptosuite::MtpMlDsa2026.accepts(SignatureAlgorithm::SlhDsaSha2_192s));
    }

    #[test]
    fn did_of_url() {
        assert_eq!(did_of("did:example:a#key-1"), "did:example:a");
        assert_eq!(did_of("did:example:a?v=1#k"), "did:example:a");
        assert_eq!(did_of("did:example:a"), "did:example:a");
        assert_eq!(did_of(""), "");
    }

    #[test]
    fn structure_checks() {
        let ok = serde_json::json!({
            "@context": [jsonld::CREDENTIALS_V2],
            "type": ["VerifiableCredential"],
            "issuer": {"id": "did:example:i", "name": "I"},
            "credentialSubject": [{"id": "did:example:s"}],
            "validFrom": "2026-01-01T00:00:00Z",
            "validUntil": "2026-01-02T00:00:00+00:00"
        });
        let c = Credential::from_value(ok.clone()).unwrap();
        assert_eq!(c.issuer(), Some("did:example:i"));
        assert_eq!(c.subject_id(), Some("did:example:s"));
        let bad = |f: &dyn Fn(&mut Map<String, Value>)| {
            let mut v = ok.clone();
            f(v.as_object_mut().unwrap());
            Credential::from_value(v).unwrap_err().code()
        };
        let aai = ErrorCode::AuthorityAttestationInvalid;
        assert_eq!(
            bad(&|m| {
                m.remove("issuer");
            }),
            aai
        );
        assert_eq!(
            bad(&|m| {
                m.insert("issuer".into(), "x".into());
            }),
            aai
        );
        assert_eq!(
            bad(&|m| {
                m.insert("type".into(), "Other".into());
            }),
            aai
        );
        assert_eq!(
            bad(&|m| {
                m.remove("credentialSubject");
            }),
            aai
        );
        assert_eq!(
            bad(&|m| {
                m.insert("@context".into(), serde_json::json!([jsonld::DID_V1]));
            }),
            aai
        );
        assert_eq!(
            bad(&|m| {
                m.insert("validFrom".into(), "2026-01-03T00:00:00Z".into());
            }),
            aai
        );
        assert_eq!(
            Credential::from_json("[1]").unwrap_err().code(),
            ErrorCode::SchemaViolation
        );
    }
}
