//! Self-signed ML-DSA-65 X.509 certificates for MTPSync and their pins (BIND V-A;
//! PROFILE G-37, G-32).
//!
//! Keys are reproducible: the TLS key is the FIPS 204 key pair derived from a 32-byte
//! seed (ξ). The private key travels as an RFC 9881 seed-form PKCS#8 document, which
//! aws-lc-rs (the rustls provider) loads; the certificate is signed with the same key by
//! `mtp_protocol`'s deterministic ML-DSA-65, so one seed and one subject always give the
//! same certificate bytes and hence the same fingerprint.
//!
//! "Certificate chain verification" under PROFILE G-37 is the valid self-signature plus
//! the SHA-256 pin (BIND-V-A-04, BIND-V-A-05); [`check_self_signed`] does the former.

use std::fmt;
use std::str::FromStr;

use mtp_protocol::crypto::{self, PublicKey, SignatureAlgorithm, SigningKey};
use mtp_protocol::errors::{Coded, ErrorCode};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, alg_id};

/// Prefix of `MTPSync.tlsCertificateFingerprint` (PROFILE G-32).
pub const FINGERPRINT_PREFIX: &str = "sha256:";

/// Prefix of an RFC 9881 seed-form ML-DSA-65 PKCS#8 document; the 32-byte seed follows.
/// `SEQUENCE { INTEGER 0, SEQUENCE { id-ml-dsa-65 }, OCTET STRING { [0] seed } }`.
const SEED_PKCS8_PREFIX: [u8; 22] = [
    0x30, 0x34, 0x02, 0x01, 0x00, 0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04,
    0x03, 0x12, 0x04, 0x22, 0x80, 0x20,
];

/// SHA-256 of a DER certificate: the MTPSync pin (PROFILE G-32, BIND-V-C-02).
/// Text form `sha256:<64 lowercase hex>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER certificate.
    pub fn of_der(cert_der: &[u8]) -> Fingerprint {
        Fingerprint(crypto::sha256(cert_der))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Fingerprint {
        Fingerprint(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses the text form strictly: `sha256:` then exactly 64 lowercase hex digits
    /// (PROFILE G-32).
    pub fn parse(s: &str) -> Result<Fingerprint, FingerprintError> {
        let hex_part = s
            .strip_prefix(FINGERPRINT_PREFIX)
            .ok_or(FingerprintError::MissingPrefix)?;
        if hex_part.len() != 64 {
            return Err(FingerprintError::Length(hex_part.len()));
        }
        if !hex_part
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(FingerprintError::NotLowercaseHex);
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut out).map_err(|_| FingerprintError::NotLowercaseHex)?;
        Ok(Fingerprint(out))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{FINGERPRINT_PREFIX}{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = FingerprintError;
    fn from_str(s: &str) -> Result<Fingerprint, FingerprintError> {
        Fingerprint::parse(s)
    }
}

/// A `tlsCertificateFingerprint` that is not `sha256:<64 lowercase hex>` (PROFILE G-32).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FingerprintError {
    #[error("fingerprint must start with \"sha256:\"")]
    MissingPrefix,
    #[error("fingerprint must have 64 hex digits, found {0}")]
    Length(usize),
    #[error("fingerprint must be lowercase hexadecimal")]
    NotLowercaseHex,
}

impl Coded for FingerprintError {
    fn code(&self) -> ErrorCode {
        ErrorCode::SchemaViolation
    }
    fn requirement(&self) -> Option<&'static str> {
        Some("BIND-V-C-02")
    }
}

/// Why a certificate is not a valid self-signed ML-DSA-65 certificate (PROFILE G-37).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CertCheckError {
    #[error("malformed certificate: {0}")]
    Malformed(&'static str),
    #[error("certificate key or signature algorithm is not ML-DSA-65 (PROFILE G-37)")]
    NotMlDsa65,
    #[error("certificate is not self-issued (issuer differs from subject)")]
    NotSelfIssued,
    #[error("certificate self-signature does not verify")]
    BadSelfSignature,
}

impl Coded for CertCheckError {
    fn code(&self) -> ErrorCode {
        ErrorCode::TransportSecurityFailure
    }
    fn requirement(&self) -> Option<&'static str> {
        Some("BIND-V-A-04")
    }
}

/// Failure to build or load a [`TlsIdentity`].
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS private key rejected: {0}")]
    Key(rustls::Error),
    #[error(transparent)]
    Invalid(#[from] CertCheckError),
    #[error("no randomness available for key generation")]
    Randomness,
}

/// The agent's MTPSync TLS identity: a self-signed ML-DSA-65 certificate, its private key
/// (PKCS#8, seed form when built from a seed) and the pin published in the DID Document
/// (`MTPSync.tlsCertificateFingerprint`, PROFILE G-32).
pub struct TlsIdentity {
    pub cert_der: CertificateDer<'static>,
    pub key_der: PrivatePkcs8KeyDer<'static>,
    pub fingerprint: Fingerprint,
}

impl Clone for TlsIdentity {
    fn clone(&self) -> TlsIdentity {
        TlsIdentity {
            cert_der: self.cert_der.clone(),
            key_der: self.key_der.clone_key(),
            fingerprint: self.fingerprint,
        }
    }
}

impl fmt::Debug for TlsIdentity {
    /// Never prints key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("fingerprint", &self.fingerprint)
            .field("cert_len", &self.cert_der.len())
            .finish_non_exhaustive()
    }
}

/// The RFC 9881 seed-form PKCS#8 document of the ML-DSA-65 key with seed ξ = `seed`.
pub fn seed_pkcs8(seed: &[u8; 32]) -> PrivatePkcs8KeyDer<'static> {
    let mut der = Vec::with_capacity(SEED_PKCS8_PREFIX.len() + 32);
    der.extend_from_slice(&SEED_PKCS8_PREFIX);
    der.extend_from_slice(seed);
    PrivatePkcs8KeyDer::from(der)
}

/// rcgen signer backed by `mtp_protocol`'s deterministic ML-DSA-65 (FIPS 204, empty
/// context), so certificates are byte-reproducible.
struct DeterministicMlDsa65 {
    key: SigningKey,
    public: Vec<u8>,
}

impl rcgen::PublicKeyData for DeterministicMlDsa65 {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ML_DSA_65
    }
}

impl rcgen::SigningKey for DeterministicMlDsa65 {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        Ok(self.key.sign(msg))
    }
}

impl TlsIdentity {
    /// Deterministic identity from a 32-byte seed: the same seed and subject always give
    /// the same certificate and fingerprint. `subject` (normally the agent's DID) becomes
    /// the certificate's CN and, when it is ASCII, a URI subjectAltName.
    pub fn from_seed(seed: &[u8; 32], subject: &str) -> Result<TlsIdentity, CertError> {
        let key = SigningKey::from_seed(SignatureAlgorithm::MlDsa65, seed);
        let signer = DeterministicMlDsa65 {
            public: key.public_key().as_bytes().to_vec(),
            key,
        };
        let mut params = rcgen::CertificateParams::default();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, subject);
        params.distinguished_name = dn;
        if let Ok(uri) = rcgen::string::Ia5String::try_from(subject)
            && !subject.is_empty()
        {
            params.subject_alt_names = vec![rcgen::SanType::URI(uri)];
        }
        let cert = params.self_signed(&signer)?;
        TlsIdentity::from_der(
            cert.der().to_vec(),
            seed_pkcs8(seed).secret_pkcs8_der().to_vec(),
        )
    }

    /// A fresh identity from an OS-random seed. Persist [`TlsIdentity::key_der`] (or the
    /// seed, via [`TlsIdentity::from_seed`]) to keep the published fingerprint stable.
    pub fn generate(subject: &str) -> Result<TlsIdentity, CertError> {
        let mut seed = [0u8; 32];
        rustls::crypto::aws_lc_rs::default_provider()
            .secure_random
            .fill(&mut seed)
            .map_err(|_| CertError::Randomness)?;
        TlsIdentity::from_seed(&seed, subject)
    }

    /// Loads a persisted identity: checks that the certificate is a valid self-signed
    /// ML-DSA-65 certificate and that the PKCS#8 key belongs to it.
    pub fn from_der(cert_der: Vec<u8>, key_der: Vec<u8>) -> Result<TlsIdentity, CertError> {
        check_self_signed(&cert_der)?;
        let cert_der = CertificateDer::from(cert_der);
        let key_der = PrivatePkcs8KeyDer::from(key_der);
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        rustls::sign::CertifiedKey::from_der(
            vec![cert_der.clone()],
            PrivateKeyDer::Pkcs8(key_der.clone_key()),
            &provider,
        )
        .map_err(CertError::Key)?
        .keys_match()
        .map_err(CertError::Key)?;
        Ok(TlsIdentity {
            fingerprint: Fingerprint::of_der(&cert_der),
            cert_der,
            key_der,
        })
    }

    /// The private key in the form rustls takes.
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key_der.clone_key())
    }
}

/// One DER TLV: tag, contents, and the whole encoding.
struct Tlv<'a> {
    tag: u8,
    contents: &'a [u8],
    whole: &'a [u8],
}

/// Minimal DER reader for the fixed certificate skeleton (RFC 5280 §4.1). Bounded, never
/// panics on peer input.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    fn next(&mut self) -> Result<Tlv<'a>, CertCheckError> {
        let bad = CertCheckError::Malformed;
        let b = self.0;
        let (&tag, rest) = b.split_first().ok_or(bad("truncated tag"))?;
        if tag & 0x1f == 0x1f {
            return Err(bad("multi-byte tags are not used in certificates"));
        }
        let (&first, rest) = rest.split_first().ok_or(bad("truncated length"))?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return Err(bad("unsupported length encoding"));
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, &d| (acc << 8) | usize::from(d));
            (len, &rest[n..])
        };
        if rest.len() < len {
            return Err(bad("truncated contents"));
        }
        let header = b.len() - rest.len();
        let whole = &b[..header + len];
        self.0 = &rest[len..];
        Ok(Tlv {
            tag,
            contents: &rest[..len],
            whole,
        })
    }

    fn expect(&mut self, tag: u8, what: &'static str) -> Result<Tlv<'a>, CertCheckError> {
        let t = self.next()?;
        if t.tag == tag {
            Ok(t)
        } else {
            Err(CertCheckError::Malformed(what))
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

const SEQUENCE: u8 = 0x30;
const BIT_STRING: u8 = 0x03;
const INTEGER: u8 = 0x02;
const VERSION_TAG: u8 = 0xa0;

/// The raw bits of a BIT STRING with no unused bits.
fn bit_string_bytes(contents: &[u8]) -> Result<&[u8], CertCheckError> {
    match contents.split_first() {
        Some((0, bits)) => Ok(bits),
        _ => Err(CertCheckError::Malformed("bit string with unused bits")),
    }
}

/// Checks a peer certificate under PROFILE G-37: a well-formed X.509 certificate whose
/// key and signature algorithm are ML-DSA-65, whose issuer equals its subject, and whose
/// signature verifies under its own public key (BIND-V-A-04). Validity dates are not part
/// of the G-37 check (the pin is the trust decision).
pub fn check_self_signed(cert_der: &[u8]) -> Result<(), CertCheckError> {
    let mut outer = Der(cert_der);
    let cert = outer.expect(SEQUENCE, "certificate is not a SEQUENCE")?;
    if !outer.is_empty() {
        return Err(CertCheckError::Malformed(
            "trailing bytes after certificate",
        ));
    }
    let mut c = Der(cert.contents);
    let tbs = c.expect(SEQUENCE, "tbsCertificate")?;
    let sig_alg = c.expect(SEQUENCE, "signatureAlgorithm")?;
    let sig_value = c.expect(BIT_STRING, "signatureValue")?;
    if !c.is_empty() {
        return Err(CertCheckError::Malformed("trailing fields in certificate"));
    }

    let mut t = Der(tbs.contents);
    let mut field = t.next()?;
    if field.tag == VERSION_TAG {
        field = t.next()?;
    }
    if field.tag != INTEGER {
        return Err(CertCheckError::Malformed("serialNumber"));
    }
    let tbs_sig_alg = t.expect(SEQUENCE, "tbsCertificate.signature")?;
    let issuer = t.expect(SEQUENCE, "issuer")?;
    t.expect(SEQUENCE, "validity")?;
    let subject = t.expect(SEQUENCE, "subject")?;
    let spki = t.expect(SEQUENCE, "subjectPublicKeyInfo")?;
    let mut s = Der(spki.contents);
    let key_alg = s.expect(SEQUENCE, "subjectPublicKeyInfo.algorithm")?;
    let key_bits = s.expect(BIT_STRING, "subjectPublicKey")?;

    // Contents of the `id-ml-dsa-65` AlgorithmIdentifier (parameters absent).
    let ml_dsa_65: &[u8] = alg_id::ML_DSA_65.as_ref();
    if sig_alg.contents != ml_dsa_65
        || tbs_sig_alg.contents != ml_dsa_65
        || key_alg.contents != ml_dsa_65
    {
        return Err(CertCheckError::NotMlDsa65);
    }
    if issuer.whole != subject.whole {
        return Err(CertCheckError::NotSelfIssued);
    }
    let public = PublicKey::from_bytes(
        SignatureAlgorithm::MlDsa65,
        bit_string_bytes(key_bits.contents)?,
    )
    .map_err(|_| CertCheckError::Malformed("ML-DSA-65 public key length"))?;
    public
        .verify(tbs.whole, bit_string_bytes(sig_value.contents)?)
        .map_err(|_| CertCheckError::BadSelfSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_text_form() {
        let fp = Fingerprint::of_der(b"abc");
        let s = fp.to_string();
        assert_eq!(
            s,
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Fingerprint::parse(&s), Ok(fp));
        assert_eq!(
            Fingerprint::parse(&s.to_uppercase().replace("SHA256", "sha256")),
            Err(FingerprintError::NotLowercaseHex)
        );
        assert_eq!(
            Fingerprint::parse("sha256:00"),
            Err(FingerprintError::Length(2))
        );
        assert_eq!(
            Fingerprint::parse(&s[7..]),
            Err(FingerprintError::MissingPrefix)
        );
    }

    #[test]
    fn seeded_identity_is_reproducible_and_self_signed() {
        let a = TlsIdentity::from_seed(&[7; 32], "did:mtp:agent-a").expect("identity");
        let b = TlsIdentity::from_seed(&[7; 32], "did:mtp:agent-a").expect("identity");
        assert_eq!(a.cert_der, b.cert_der);
        assert_eq!(a.fingerprint, Fingerprint::of_der(&a.cert_der));
        check_self_signed(&a.cert_der).expect("self-signed ML-DSA-65");
        let c = TlsIdentity::from_seed(&[8; 32], "did:mtp:agent-a").expect("identity");
        assert_ne!(a.fingerprint, c.fingerprint);
        // The key of one identity does not load with another's certificate.
        assert!(
            TlsIdentity::from_der(a.cert_der.to_vec(), c.key_der.secret_pkcs8_der().to_vec())
                .is_err()
        );
        // Persisted form round-trips.
        let d = TlsIdentity::from_der(a.cert_der.to_vec(), a.key_der.secret_pkcs8_der().to_vec())
            .expect("reload");
        assert_eq!(d.fingerprint, a.fingerprint);
    }

    #[test]
    fn tampered_certificates_are_refused_without_panics() {
        let a = TlsIdentity::from_seed(&[9; 32], "did:mtp:x").expect("identity");
        let der = a.cert_der.to_vec();
        for i in (0..der.len()).step_by(53) {
            let mut bad = der.clone();
            bad[i] ^= 0x01;
            assert!(check_self_signed(&bad).is_err(), "flip at {i}");
        }
        for n in [0, 1, 2, 10, der.len() - 1] {
            assert!(check_self_signed(&der[..n]).is_err());
        }
    }
}
