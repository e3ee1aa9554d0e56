//! Decentralized Identifiers (SPEC III-A-1, BIND II-A; PROFILE G-05).
//!
//! - [`Did`]: a `did:mtp` — `did:mtp:` ‖ base58btc (Bitcoin alphabet, no multibase
//!   prefix) of SHA-256 over the raw FIPS 204 public key of the Agent's initial ML-DSA
//!   key. The identifier must decode to exactly 32 bytes.
//! - [`AnyDid`]: any DID Core DID (Principals may use any method, PROFILE G-05).
//! - [`DidUrl`]: `did ‖ "#" fragment`, used for verification-method ids (`…#key-1`).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::crypto::{AlgorithmError, SignatureAlgorithm};
use crate::errors::{Coded, ErrorCode};
use crate::identity::multikey::MultikeyError;

/// `did:mtp:` prefix (BIND-II-A-I01).
pub const MTP_PREFIX: &str = "did:mtp:";
/// Bounds of the base58btc method-specific id (PROFILE G-05 regex `{32,44}`).
pub const MTP_ID_MIN: usize = 32;
pub const MTP_ID_MAX: usize = 44;
/// Longest DID / DID URL accepted (bounds work on untrusted input).
pub const MAX_DID_LEN: usize = 2048;

/// Why a DID, DID URL or DID Document is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DidError {
    /// Not DID Core syntax (SPEC-III-A-1-01).
    #[error("not a DID ({reason}): {input:?}")]
    Syntax { input: String, reason: &'static str },
    /// A DID URL that is not `did#fragment` (SPEC-III-A-1-01).
    #[error("not a DID URL with a fragment ({reason}): {input:?}")]
    DidUrl { input: String, reason: &'static str },
    /// Agent DIDs use the method `mtp` (BIND-II-A-I01).
    #[error("DID method {method:?} is not did:mtp")]
    NotMtpMethod { method: String },
    /// did:mtp id not 32–44 characters (PROFILE G-05).
    #[error("did:mtp method-specific id must be 32-44 base58btc characters, got {len}")]
    IdLength { len: usize },
    /// Not Bitcoin-alphabet base58 (e.g. `0`, `O`, `I`, `l`) (BIND-II-A-I02).
    #[error("did:mtp method-specific id is not base58btc: {reason}")]
    Base58 { reason: String },
    /// Decodes to something other than a 32-byte SHA-256 digest (BIND-II-A-I02).
    #[error("did:mtp method-specific id decodes to {len} bytes, not 32")]
    DigestLength { len: usize },
    /// Does not re-encode to itself (BIND-II-A-I02).
    #[error("did:mtp method-specific id is not the canonical base58btc spelling")]
    NonCanonical,
    /// did:mtp derives from an ML-DSA key only (BIND-II-A-I02).
    #[error("did:mtp cannot be derived from a {0:?} key (initial key must be ML-DSA)")]
    DerivationAlgorithm(SignatureAlgorithm),
    #[error("{algorithm:?} public key must be {expected} bytes, got {found}")]
    KeyLength {
        algorithm: SignatureAlgorithm,
        expected: usize,
        found: usize,
    },
    /// A key claimed to be the DID's initial key does not hash to it (BIND-II-A-I02).
    #[error("public key does not derive {did}")]
    KeyMismatch { did: String },

    // ---- DID Document (BIND II-A, V-C, X; PROFILE G-32) -------------------------------
    #[error("DID Document is not valid JSON of the expected shape: {message}")]
    Json { message: String },
    /// `@context` (BIND-II-A-01).
    #[error("DID Document @context: {reason}")]
    Context { reason: &'static str },
    #[error("DID Document has no verificationMethod")]
    MissingVerificationMethod,
    #[error("verification method {id:?}: {reason}")]
    VerificationMethod { id: String, reason: &'static str },
    #[error("verification method {id:?}: {source}")]
    Multikey { id: String, source: MultikeyError },
    #[error("DID Document has no {relationship} entries")]
    MissingRelationship { relationship: &'static str },
    #[error("{relationship} entry {reference:?} does not resolve to a verification method")]
    DanglingReference {
        relationship: &'static str,
        reference: String,
    },
    #[error("{relationship} entry {reference:?} is not {expected}")]
    WrongKeyKind {
        relationship: &'static str,
        reference: String,
        expected: &'static str,
    },
    #[error("DID Document has no {service_type} service")]
    MissingService { service_type: &'static str },
    #[error("service {id:?} property {property}: {reason}")]
    Service {
        id: String,
        property: &'static str,
        reason: String,
        requirement: &'static str,
    },
    #[error("DID Document has no mtpAlgorithmSupport")]
    MissingAlgorithmSupport,
    #[error("mtpAlgorithmSupport.{function}: {source}")]
    Algorithm {
        function: &'static str,
        source: AlgorithmError,
    },
    #[error("mtpAlgorithmSupport.{function} lacks the baseline {label}")]
    MissingBaseline {
        function: &'static str,
        label: &'static str,
    },
    /// No ML-DSA verification method derives the document's DID (BIND-II-A-I02).
    #[error("no ML-DSA verification method derives {did}")]
    NoInitialKey { did: String },
}

impl Coded for DidError {
    fn code(&self) -> ErrorCode {
        match self {
            DidError::KeyMismatch { .. } | DidError::NoInitialKey { .. } => {
                ErrorCode::SignatureVerificationFailure
            }
            DidError::Multikey { source, .. } => source.code(),
            DidError::Algorithm { source, .. } => source.code(),
            DidError::MissingBaseline { .. } => ErrorCode::AlgorithmNegotiationFailure,
            _ => ErrorCode::SchemaViolation,
        }
    }

    fn requirement(&self) -> Option<&'static str> {
        Some(match self {
            DidError::Syntax { .. } | DidError::DidUrl { .. } => "SPEC-III-A-1-01",
            DidError::NotMtpMethod { .. } => "BIND-II-A-I01",
            DidError::IdLength { .. }
            | DidError::Base58 { .. }
            | DidError::DigestLength { .. }
            | DidError::NonCanonical
            | DidError::DerivationAlgorithm(_)
            | DidError::KeyLength { .. }
            | DidError::KeyMismatch { .. }
            | DidError::NoInitialKey { .. } => "BIND-II-A-I02",
            DidError::Json { .. } | DidError::Context { .. } => "BIND-II-A-01",
            DidError::MissingVerificationMethod
            | DidError::VerificationMethod { .. }
            | DidError::MissingRelationship { .. }
            | DidError::DanglingReference { .. }
            | DidError::WrongKeyKind { .. } => "BIND-II-A-02",
            DidError::Multikey { source, .. } => return source.requirement(),
            DidError::MissingService { .. } => "BIND-V-C-01",
            DidError::Service { requirement, .. } => requirement,
            DidError::MissingAlgorithmSupport => "BIND-X-I03",
            DidError::Algorithm { .. } | DidError::MissingBaseline { .. } => "BIND-X-I02",
        })
    }
}

fn syntax(input: &str, reason: &'static str) -> DidError {
    let mut shown: String = input.chars().take(128).collect();
    if shown.len() < input.len() {
        shown.push('…');
    }
    DidError::Syntax {
        input: shown,
        reason,
    }
}

fn is_idchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_')
}

/// Checks `%XX` escapes and the character class `ok` over `s`.
fn check_pct(s: &[u8], ok: impl Fn(u8) -> bool) -> bool {
    let mut i = 0;
    while let Some(&c) = s.get(i) {
        if c == b'%' {
            match (s.get(i + 1), s.get(i + 2)) {
                (Some(a), Some(b)) if a.is_ascii_hexdigit() && b.is_ascii_hexdigit() => i += 3,
                _ => return false,
            }
        } else if ok(c) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

/// Any DID (W3C DID Core §3.1 ABNF):
/// `"did:" 1*(%x61-7A / DIGIT) ":" *( *idchar ":" ) 1*idchar`, `idchar` incl. `%XX`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AnyDid {
    text: String,
    method_len: usize,
}

impl AnyDid {
    pub fn parse(s: &str) -> Result<AnyDid, DidError> {
        if s.len() > MAX_DID_LEN {
            return Err(syntax(s, "longer than 2048 bytes"));
        }
        let rest = s
            .strip_prefix("did:")
            .ok_or_else(|| syntax(s, "missing \"did:\" scheme"))?;
        let (method, msid) = rest
            .split_once(':')
            .ok_or_else(|| syntax(s, "missing method-specific id"))?;
        if method.is_empty() {
            return Err(syntax(s, "empty method name"));
        }
        if !method
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        {
            return Err(syntax(
                s,
                "method name must be lowercase letters and digits",
            ));
        }
        if msid.is_empty() || msid.ends_with(':') {
            return Err(syntax(s, "method-specific id must end in an idchar"));
        }
        if !check_pct(msid.as_bytes(), |c| is_idchar(c) || c == b':') {
            return Err(syntax(s, "invalid character in method-specific id"));
        }
        Ok(AnyDid {
            text: s.to_owned(),
            method_len: method.len(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn method(&self) -> &str {
        self.text.get(4..4 + self.method_len).unwrap_or_default()
    }

    pub fn method_specific_id(&self) -> &str {
        self.text.get(5 + self.method_len..).unwrap_or_default()
    }

    /// The did:mtp view of this DID, if it is one.
    pub fn to_mtp(&self) -> Result<Did, DidError> {
        Did::parse(&self.text)
    }
}

impl fmt::Display for AnyDid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for AnyDid {
    type Err = DidError;
    fn from_str(s: &str) -> Result<AnyDid, DidError> {
        AnyDid::parse(s)
    }
}

/// A `did:mtp` identifier (BIND II-A; PROFILE G-05).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Did {
    text: String,
    digest: [u8; 32],
}

impl Did {
    /// Derives the DID of an Agent whose initial key is `public_key` (raw FIPS 204
    /// encoding). ML-DSA-65 and ML-DSA-87 only (PROFILE G-05).
    pub fn derive(alg: SignatureAlgorithm, public_key: &[u8]) -> Result<Did, DidError> {
        if !alg.is_ml_dsa() {
            return Err(DidError::DerivationAlgorithm(alg));
        }
        if public_key.len() != alg.public_key_len() {
            return Err(DidError::KeyLength {
                algorithm: alg,
                expected: alg.public_key_len(),
                found: public_key.len(),
            });
        }
        Ok(Did::from_digest(crate::crypto::sha256(public_key)))
    }

    /// The DID whose method-specific id encodes `digest`.
    pub fn from_digest(digest: [u8; 32]) -> Did {
        Did {
            text: format!("{MTP_PREFIX}{}", bs58::encode(digest).into_string()),
            digest,
        }
    }

    /// Strict parse: `did:mtp:` + 32–44 base58btc characters decoding to exactly 32 bytes
    /// and re-encoding to the same text (PROFILE G-05).
    pub fn parse(s: &str) -> Result<Did, DidError> {
        let any = AnyDid::parse(s)?;
        if any.method() != "mtp" {
            return Err(DidError::NotMtpMethod {
                method: any.method().to_owned(),
            });
        }
        let id = any.method_specific_id();
        if !(MTP_ID_MIN..=MTP_ID_MAX).contains(&id.len()) {
            return Err(DidError::IdLength {
                len: id.chars().count(),
            });
        }
        let raw = bs58::decode(id).into_vec().map_err(|e| DidError::Base58 {
            reason: e.to_string(),
        })?;
        let digest: [u8; 32] = raw
            .as_slice()
            .try_into()
            .map_err(|_| DidError::DigestLength { len: raw.len() })?;
        if bs58::encode(digest).into_string() != id {
            return Err(DidError::NonCanonical);
        }
        Ok(Did {
            text: s.to_owned(),
            digest,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The base58btc method-specific id (the `<did-id>` of NATS subjects, PROFILE G-06).
    pub fn method_specific_id(&self) -> &str {
        self.text.get(MTP_PREFIX.len()..).unwrap_or_default()
    }

    /// SHA-256 of the initial ML-DSA public key.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// Whether `public_key` is this DID's initial key (BIND-II-A-I02).
    pub fn matches_key(&self, alg: SignatureAlgorithm, public_key: &[u8]) -> bool {
        Did::derive(alg, public_key).is_ok_and(|d| d.digest == self.digest)
    }

    /// As [`Did::matches_key`], failing with 1100 on a mismatch.
    pub fn verify_key(&self, alg: SignatureAlgorithm, public_key: &[u8]) -> Result<(), DidError> {
        let derived = Did::derive(alg, public_key)?;
        if derived.digest == self.digest {
            Ok(())
        } else {
            Err(DidError::KeyMismatch {
                did: self.text.clone(),
            })
        }
    }

    pub fn to_any(&self) -> AnyDid {
        AnyDid {
            text: self.text.clone(),
            method_len: 3,
        }
    }

    /// `did:mtp:…#fragment`.
    pub fn url(&self, fragment: &str) -> String {
        format!("{}#{fragment}", self.text)
    }
}

impl fmt::Display for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Did({})", self.text)
    }
}

impl std::str::FromStr for Did {
    type Err = DidError;
    fn from_str(s: &str) -> Result<Did, DidError> {
        Did::parse(s)
    }
}

impl Serialize for Did {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Did {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Did, D::Error> {
        let s = String::deserialize(d)?;
        Did::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A DID URL with a fragment, `did#fragment` (DID Core §3.2), as used for
/// verification-method and service ids. Paths and queries are refused.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DidUrl {
    did: AnyDid,
    fragment: String,
}

impl DidUrl {
    pub fn parse(s: &str) -> Result<DidUrl, DidError> {
        let err = |reason| DidError::DidUrl {
            input: s.chars().take(128).collect(),
            reason,
        };
        let (did, fragment) = s
            .split_once('#')
            .ok_or_else(|| err("missing '#fragment'"))?;
        if did.contains(['/', '?']) {
            return Err(err("paths and queries are not supported"));
        }
        let did = AnyDid::parse(did)?;
        if fragment.is_empty() {
            return Err(err("empty fragment"));
        }
        // RFC 3986 fragment = *( pchar / "/" / "?" ).
        let ok = |c: u8| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b'!'
                        | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b';'
                        | b'='
                        | b':'
                        | b'@'
                        | b'/'
                        | b'?'
                )
        };
        if !check_pct(fragment.as_bytes(), ok) {
            return Err(err("invalid character in fragment"));
        }
        Ok(DidUrl {
            did,
            fragment: fragment.to_owned(),
        })
    }

    /// Resolves `reference` against `base`: `"#frag"` → `base#frag`; absolute DID URLs
    /// are parsed as they are.
    pub fn resolve(reference: &str, base: &str) -> Result<DidUrl, DidError> {
        if reference.starts_with('#') {
            DidUrl::parse(&format!("{base}{reference}"))
        } else {
            DidUrl::parse(reference)
        }
    }

    pub fn did(&self) -> &AnyDid {
        &self.did
    }

    pub fn fragment(&self) -> &str {
        &self.fragment
    }

    /// The did:mtp part, if the DID is a did:mtp.
    pub fn mtp_did(&self) -> Result<Did, DidError> {
        self.did.to_mtp()
    }
}

impl fmt::Display for DidUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.did, self.fragment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    pub(crate) fn mldsa65_pk(seed: u8) -> Vec<u8> {
        use ml_dsa::{Keypair, MlDsa65, SigningKey};
        let sk = SigningKey::<MlDsa65>::from_seed(&[seed; 32].into());
        sk.verifying_key().encode().to_vec()
    }

    #[test]
    fn derive_from_real_ml_dsa_key() {
        let pk = mldsa65_pk(7);
        assert_eq!(pk.len(), 1952);
        let did = Did::derive(SignatureAlgorithm::MlDsa65, &pk).unwrap();
        let expected = format!(
            "did:mtp:{}",
            bs58::encode(Sha256::digest(&pk)).into_string()
        );
        assert_eq!(did.as_str(), expected);
        assert!((32..=44).contains(&did.method_specific_id().len()));
        assert_eq!(did.digest(), <[u8; 32]>::from(Sha256::digest(&pk)));
        assert_eq!(Did::parse(did.as_str()), Ok(did.clone()));
        assert!(did.matches_key(SignatureAlgorithm::MlDsa65, &pk));
        assert!(did.verify_key(SignatureAlgorithm::MlDsa65, &pk).is_ok());
        let other = mldsa65_pk(8);
        assert!(!did.matches_key(SignatureAlgorithm::MlDsa65, &other));
        let e = did
            .verify_key(SignatureAlgorithm::MlDsa65, &other)
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::SignatureVerificationFailure);
        // ML-DSA-87 initial keys hash the 2,592-byte key.
        let did87 = Did::derive(SignatureAlgorithm::MlDsa87, &[3; 2592]).unwrap();
        assert!(did87.matches_key(SignatureAlgorithm::MlDsa87, &[3; 2592]));
        assert!(!did87.matches_key(SignatureAlgorithm::MlDsa65, &[3; 1952]));
    }

    #[test]
    fn derive_refusals() {
        assert_eq!(
            Did::derive(SignatureAlgorithm::SlhDsaSha2_192s, &[0; 48]),
            Err(DidError::DerivationAlgorithm(
                SignatureAlgorithm::SlhDsaSha2_192s
            ))
        );
        assert_eq!(
            Did::derive(SignatureAlgorithm::MlDsa65, &[0; 2592]),
            Err(DidError::KeyLength {
                algorithm: SignatureAlgorithm::MlDsa65,
                expected: 1952,
                found: 2592
            })
        );
    }

    #[test]
    fn parse_refusals() {
        let good = Did::from_digest([0x5a; 32]);
        let id = good.method_specific_id().to_owned();
        assert!(Did::parse(good.as_str()).is_ok());
        // 0, O, I, l are outside the Bitcoin alphabet.
        for bad in ['0', 'O', 'I', 'l'] {
            let s = format!("did:mtp:{bad}{}", &id[1..]);
            assert!(
                matches!(Did::parse(&s), Err(DidError::Base58 { .. })),
                "{s}"
            );
        }
        // Multibase 'z' prefix: either a length or a digest-length/canonical failure.
        let z = format!("did:mtp:z{id}");
        let e = Did::parse(&z).unwrap_err();
        assert!(
            matches!(e, DidError::IdLength { .. } | DidError::DigestLength { .. }),
            "{e:?}"
        );
        // Wrong digest length (31 and 33 bytes).
        for n in [31usize, 33] {
            let mut raw = vec![0x77; n];
            raw[0] = 1;
            let s = format!("did:mtp:{}", bs58::encode(raw).into_string());
            assert!(s.len() - 8 <= 44, "{s}");
            assert_eq!(Did::parse(&s), Err(DidError::DigestLength { len: n }));
        }
        assert!(matches!(
            Did::parse("did:mtp:abc"),
            Err(DidError::IdLength { len: 3 })
        ));
        assert!(matches!(
            Did::parse(&format!("did:mtp:{}", "2".repeat(45))),
            Err(DidError::IdLength { .. })
        ));
        assert_eq!(
            Did::parse("did:web:example.com"),
            Err(DidError::NotMtpMethod {
                method: "web".into()
            })
        );
        // SPEC examples are negative vectors (PROFILE G-05/G-11).
        for ex in [
            "did:mtp:7a3f2b9c1d4e8f01a2b3c4d5e6f7...",
            "did:mtp:principal:lemay-inc-001...",
            "did:mtp:7a3f...",
        ] {
            let e = Did::parse(ex).unwrap_err();
            assert_eq!(e.code(), ErrorCode::SchemaViolation, "{ex}");
        }
        assert!(matches!(
            Did::parse("DID:mtp:x"),
            Err(DidError::Syntax { .. })
        ));
        assert!(matches!(
            Did::parse(&format!("{}#key-1", good)),
            Err(DidError::Syntax { .. })
        ));
        // Leading zero bytes are '1's; canonical by construction.
        let zeros = Did::from_digest([0; 32]);
        assert_eq!(zeros.method_specific_id(), "1".repeat(32));
        assert_eq!(Did::parse(zeros.as_str()), Ok(zeros));
    }

    #[test]
    fn any_did_syntax() {
        for ok in [
            "did:example:123",
            "did:web:example.com:user:alice",
            "did:key:z6Mk%20x",
            "did:a1:b::c",
        ] {
            let d = AnyDid::parse(ok).unwrap();
            assert_eq!(d.as_str(), ok);
        }
        let d = AnyDid::parse("did:web:example.com").unwrap();
        assert_eq!(d.method(), "web");
        assert_eq!(d.method_specific_id(), "example.com");
        for bad in [
            "",
            "did:",
            "did::x",
            "did:Web:x",
            "did:web:",
            "did:web:x:",
            "did:web:a b",
            "did:web:%2",
            "did:web:%zz",
            "urn:web:x",
            "did:web",
            "did:wéb:x",
            "did:web:x/y",
        ] {
            let e = AnyDid::parse(bad).unwrap_err();
            assert!(matches!(e, DidError::Syntax { .. }), "{bad}");
            assert_eq!(e.code(), ErrorCode::SchemaViolation);
            assert_eq!(e.requirement(), Some("SPEC-III-A-1-01"));
        }
        assert!(AnyDid::parse(&format!("did:x:{}", "a".repeat(MAX_DID_LEN))).is_err());
    }

    #[test]
    fn did_urls() {
        let did = Did::from_digest([9; 32]);
        let u = DidUrl::parse(&did.url("key-1")).unwrap();
        assert_eq!(u.fragment(), "key-1");
        assert_eq!(u.mtp_did(), Ok(did.clone()));
        assert_eq!(u.to_string(), did.url("key-1"));
        assert_eq!(DidUrl::resolve("#key-1", did.as_str()), Ok(u.clone()));
        assert_eq!(DidUrl::resolve(&did.url("key-1"), "did:other:x"), Ok(u));
        for bad in [
            did.as_str().to_owned(),
            format!("{did}#"),
            format!("{did}#a b"),
            format!("{did}/path#x"),
            "#x".into(),
        ] {
            assert!(DidUrl::parse(&bad).is_err(), "{bad}");
        }
        assert!(DidUrl::parse("did:web:example.com#k%41").is_ok());
    }

    #[test]
    fn serde_as_string() {
        let did = Did::from_digest([1; 32]);
        let j = serde_json::to_string(&did).unwrap();
        assert_eq!(j, format!("\"{did}\""));
        assert_eq!(serde_json::from_str::<Did>(&j).unwrap(), did);
        assert!(serde_json::from_str::<Did>("\"did:mtp:0\"").is_err());
    }
}
