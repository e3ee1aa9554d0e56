//! Multikey public keys (W3C Controlled Identifiers §2.2.2) for DID Documents
//! (BIND-II-A-02; PROFILE G-32).
//!
//! `publicKeyMultibase` = `z` ‖ base58btc(unsigned-varint(multicodec) ‖ raw public key).
//! Codes from the multicodec table (all `draft` status there):
//!
//! | key | code | MTP |
//! |---|---|---|
//! | mldsa-65-pub | 0x1211 | yes |
//! | mldsa-87-pub | 0x1212 | yes |
//! | slhdsa-sha2-192s-pub | 0x1224 | yes |
//! | mlkem-768-pub | 0x120c | yes |
//! | mlkem-1024-pub | 0x120d | yes |
//! | mldsa-44-pub, mlkem-512-pub | 0x1210, 0x120b | refused (BIND-VI-A-03, BIND-VI-B-02) |
//! | ed25519, x25519, secp256k1, p256, p384, p521, ed448, x448, rsa | 0xed, 0xec, 0xe7, 0x1200–0x1205 | refused: pre-quantum |

use crate::crypto::{KemAlgorithm, SignatureAlgorithm};
use crate::errors::{Coded, ErrorCode};

/// multicodec `mldsa-65-pub`.
pub const MLDSA_65_PUB: u64 = 0x1211;
/// multicodec `mldsa-87-pub`.
pub const MLDSA_87_PUB: u64 = 0x1212;
/// multicodec `slhdsa-sha2-192s-pub` (PROFILE G-32: the multicodec table's entry, status
/// `draft`, added by multiformats/multicodec PR #394; recorded here as the profile value).
pub const SLHDSA_SHA2_192S_PUB: u64 = 0x1224;
/// multicodec `mlkem-768-pub`.
pub const MLKEM_768_PUB: u64 = 0x120c;
/// multicodec `mlkem-1024-pub`.
pub const MLKEM_1024_PUB: u64 = 0x120d;
/// multicodec `mldsa-44-pub` (recognised only to be refused, BIND-VI-A-03).
pub const MLDSA_44_PUB: u64 = 0x1210;
/// multicodec `mlkem-512-pub` (recognised only to be refused, BIND-VI-B-02).
pub const MLKEM_512_PUB: u64 = 0x120b;

/// Pre-quantum key codecs recognised to be refused (SPEC-VIII-A-02, SPEC-VIII-A-04).
const PRE_QUANTUM: &[(u64, &str, &str)] = &[
    (0xed, "ed25519-pub", "SPEC-VIII-A-02"),
    (0xec, "x25519-pub", "SPEC-VIII-A-04"),
    (0xe7, "secp256k1-pub", "SPEC-VIII-A-02"),
    (0x1200, "p256-pub", "SPEC-VIII-A-02"),
    (0x1201, "p384-pub", "SPEC-VIII-A-02"),
    (0x1202, "p521-pub", "SPEC-VIII-A-02"),
    (0x1203, "ed448-pub", "SPEC-VIII-A-02"),
    (0x1204, "x448-pub", "SPEC-VIII-A-04"),
    (0x1205, "rsa-pub", "SPEC-VIII-A-02"),
];

/// Longest accepted `publicKeyMultibase` (an ML-DSA-87 key is ≈ 3,540 characters); bounds
/// the quadratic base58 decoding on untrusted input.
pub const MAX_MULTIBASE_LEN: usize = 4096;

/// The algorithm a Multikey carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyType {
    Signature(SignatureAlgorithm),
    Kem(KemAlgorithm),
}

impl KeyType {
    pub const ALL: [KeyType; 5] = [
        KeyType::Signature(SignatureAlgorithm::MlDsa65),
        KeyType::Signature(SignatureAlgorithm::MlDsa87),
        KeyType::Signature(SignatureAlgorithm::SlhDsaSha2_192s),
        KeyType::Kem(KemAlgorithm::MlKem768),
        KeyType::Kem(KemAlgorithm::MlKem1024),
    ];

    pub fn multicodec(self) -> u64 {
        match self {
            KeyType::Signature(SignatureAlgorithm::MlDsa65) => MLDSA_65_PUB,
            KeyType::Signature(SignatureAlgorithm::MlDsa87) => MLDSA_87_PUB,
            KeyType::Signature(SignatureAlgorithm::SlhDsaSha2_192s) => SLHDSA_SHA2_192S_PUB,
            KeyType::Kem(KemAlgorithm::MlKem768) => MLKEM_768_PUB,
            KeyType::Kem(KemAlgorithm::MlKem1024) => MLKEM_1024_PUB,
        }
    }

    pub fn from_multicodec(code: u64) -> Option<KeyType> {
        KeyType::ALL.into_iter().find(|k| k.multicodec() == code)
    }

    /// Raw public-key length (FIPS 203/204/205).
    pub fn key_len(self) -> usize {
        match self {
            KeyType::Signature(a) => a.public_key_len(),
            KeyType::Kem(k) => k.encapsulation_key_len(),
        }
    }

    /// The algorithm label (PROFILE G-38).
    pub fn label(self) -> &'static str {
        match self {
            KeyType::Signature(a) => a.label(),
            KeyType::Kem(k) => k.label(),
        }
    }
}

/// Why a `publicKeyMultibase` value is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MultikeyError {
    #[error("publicKeyMultibase must start with 'z' (base58btc)")]
    NotBase58btc,
    #[error("publicKeyMultibase longer than {MAX_MULTIBASE_LEN} characters")]
    TooLong { len: usize },
    #[error("publicKeyMultibase is not valid base58btc: {0}")]
    Base58(String),
    #[error("multicodec varint prefix is truncated, over-long or not minimal")]
    BadVarint,
    #[error("multicodec 0x{code:x} is not an MTP key type")]
    UnknownCodec { code: u64 },
    /// ML-DSA-44 / ML-KEM-512 (BIND-VI-A-03, BIND-VI-B-02).
    #[error("key type {name} is forbidden for MTP")]
    Forbidden {
        name: &'static str,
        requirement: &'static str,
    },
    /// Pre-quantum key (SPEC-VIII-A-02, SPEC-VIII-A-04).
    #[error("pre-quantum key type {name} is forbidden for MTP")]
    PreQuantum {
        name: &'static str,
        requirement: &'static str,
    },
    #[error("{key_type} public key must be {expected} bytes, got {found}")]
    KeyLength {
        key_type: &'static str,
        expected: usize,
        found: usize,
    },
}

impl Coded for MultikeyError {
    fn code(&self) -> ErrorCode {
        match self {
            MultikeyError::Forbidden { .. } | MultikeyError::PreQuantum { .. } => {
                ErrorCode::AlgorithmNegotiationFailure
            }
            _ => ErrorCode::SchemaViolation,
        }
    }

    fn requirement(&self) -> Option<&'static str> {
        Some(match self {
            MultikeyError::Forbidden { requirement, .. }
            | MultikeyError::PreQuantum { requirement, .. } => requirement,
            _ => "BIND-II-A-02",
        })
    }
}

/// A decoded MTP Multikey: algorithm and raw public-key bytes (length checked).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Multikey {
    key_type: KeyType,
    key: Vec<u8>,
}

/// Unsigned varint (multiformats unsigned-varint: LEB128, minimal, ≤ 9 bytes).
fn write_varint(mut n: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Returns the value and the number of bytes read.
fn read_varint(b: &[u8]) -> Result<(u64, usize), MultikeyError> {
    let mut n: u64 = 0;
    for (i, &byte) in b.iter().enumerate().take(9) {
        n |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            // Minimal: a multi-byte varint must not end in a zero group.
            if i > 0 && byte == 0 {
                return Err(MultikeyError::BadVarint);
            }
            return Ok((n, i + 1));
        }
    }
    Err(MultikeyError::BadVarint)
}

impl Multikey {
    /// Checks the key length for the algorithm (no structural key validation).
    pub fn new(key_type: KeyType, key: Vec<u8>) -> Result<Multikey, MultikeyError> {
        if key.len() != key_type.key_len() {
            return Err(MultikeyError::KeyLength {
                key_type: key_type.label(),
                expected: key_type.key_len(),
                found: key.len(),
            });
        }
        Ok(Multikey { key_type, key })
    }

    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    pub fn public_key(&self) -> &[u8] {
        &self.key
    }

    pub fn into_public_key(self) -> Vec<u8> {
        self.key
    }

    /// `Some` for ML-DSA / SLH-DSA keys.
    pub fn signature_algorithm(&self) -> Option<SignatureAlgorithm> {
        match self.key_type {
            KeyType::Signature(a) => Some(a),
            KeyType::Kem(_) => None,
        }
    }

    /// `Some` for ML-KEM keys.
    pub fn kem_algorithm(&self) -> Option<KemAlgorithm> {
        match self.key_type {
            KeyType::Kem(k) => Some(k),
            KeyType::Signature(_) => None,
        }
    }

    /// The `publicKeyMultibase` text.
    pub fn encode(&self) -> String {
        let mut raw = Vec::with_capacity(self.key.len() + 3);
        write_varint(self.key_type.multicodec(), &mut raw);
        raw.extend_from_slice(&self.key);
        // Same output as bs58, much faster on 2–3 KB keys (credential::base58).
        format!("z{}", crate::identity::credential::base58::encode(&raw))
    }

    /// Parses a `publicKeyMultibase` value; refuses forbidden and pre-quantum key types
    /// with typed errors and checks the key length.
    pub fn decode(s: &str) -> Result<Multikey, MultikeyError> {
        if s.len() > MAX_MULTIBASE_LEN {
            return Err(MultikeyError::TooLong { len: s.len() });
        }
        let body = s.strip_prefix('z').ok_or(MultikeyError::NotBase58btc)?;
        let raw = crate::identity::credential::base58::decode(body)
            .ok_or_else(|| MultikeyError::Base58("not base58btc".into()))?;
        let (code, used) = read_varint(&raw)?;
        let key = raw.get(used..).unwrap_or_default().to_vec();
        if let Some(kt) = KeyType::from_multicodec(code) {
            return Multikey::new(kt, key);
        }
        match code {
            MLDSA_44_PUB => Err(MultikeyError::Forbidden {
                name: "mldsa-44-pub",
                requirement: "BIND-VI-A-03",
            }),
            MLKEM_512_PUB => Err(MultikeyError::Forbidden {
                name: "mlkem-512-pub",
                requirement: "BIND-VI-B-02",
            }),
            _ => match PRE_QUANTUM.iter().find(|(c, _, _)| *c == code) {
                Some((_, name, requirement)) => {
                    Err(MultikeyError::PreQuantum { name, requirement })
                }
                None => Err(MultikeyError::UnknownCodec { code }),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_raw(code: u64, key: &[u8]) -> String {
        let mut raw = Vec::new();
        write_varint(code, &mut raw);
        raw.extend_from_slice(key);
        // Same output as bs58, much faster on 2–3 KB keys (credential::base58).
        format!("z{}", crate::identity::credential::base58::encode(&raw))
    }

    #[test]
    fn varint_prefixes() {
        let mut v = Vec::new();
        write_varint(MLDSA_65_PUB, &mut v);
        assert_eq!(v, [0x91, 0x24]);
        v.clear();
        write_varint(SLHDSA_SHA2_192S_PUB, &mut v);
        assert_eq!(v, [0xa4, 0x24]);
        v.clear();
        write_varint(0xed, &mut v);
        assert_eq!(v, [0xed, 0x01]);
        assert_eq!(read_varint(&[0x91, 0x24, 0x00]), Ok((0x1211, 2)));
        assert_eq!(
            read_varint(&[0x91, 0x80, 0x00]),
            Err(MultikeyError::BadVarint)
        );
        assert_eq!(read_varint(&[0x91]), Err(MultikeyError::BadVarint));
        assert_eq!(read_varint(&[]), Err(MultikeyError::BadVarint));
        assert_eq!(read_varint(&[0xff; 12]), Err(MultikeyError::BadVarint));
    }

    #[test]
    fn round_trip_every_mtp_key_type() {
        for kt in KeyType::ALL {
            let key: Vec<u8> = (0..kt.key_len()).map(|i| (i % 251) as u8 + 1).collect();
            let mk = Multikey::new(kt, key.clone()).unwrap();
            let s = mk.encode();
            assert!(s.starts_with('z'));
            assert!(s.len() <= MAX_MULTIBASE_LEN);
            let back = Multikey::decode(&s).unwrap();
            assert_eq!(back, mk);
            assert_eq!(back.public_key(), &key[..]);
        }
        // The ML-DSA-65 prefix renders as the well-known "z6MkW…"-style family; just check
        // the header bytes survive.
        let mk = Multikey::new(
            KeyType::Signature(SignatureAlgorithm::MlDsa65),
            vec![0; 1952],
        )
        .unwrap();
        let raw = bs58::decode(&mk.encode()[1..]).into_vec().unwrap();
        assert_eq!(&raw[..2], &[0x91, 0x24]);
    }

    #[test]
    fn refusals() {
        assert_eq!(Multikey::decode("u6Mk"), Err(MultikeyError::NotBase58btc));
        assert!(matches!(
            Multikey::decode("z0OIl"),
            Err(MultikeyError::Base58(_))
        ));
        assert!(matches!(
            Multikey::decode(&"z".repeat(MAX_MULTIBASE_LEN + 1)),
            Err(MultikeyError::TooLong { .. })
        ));
        assert_eq!(Multikey::decode("z"), Err(MultikeyError::BadVarint));
        let e = Multikey::decode(&encode_raw(MLDSA_44_PUB, &[1; 1312])).unwrap_err();
        assert!(matches!(
            e,
            MultikeyError::Forbidden {
                name: "mldsa-44-pub",
                ..
            }
        ));
        assert_eq!(e.code(), ErrorCode::AlgorithmNegotiationFailure);
        assert_eq!(e.requirement(), Some("BIND-VI-A-03"));
        let e = Multikey::decode(&encode_raw(MLKEM_512_PUB, &[1; 800])).unwrap_err();
        assert!(matches!(
            e,
            MultikeyError::Forbidden {
                name: "mlkem-512-pub",
                ..
            }
        ));
        for (code, name, len) in [
            (0xed, "ed25519-pub", 32),
            (0xec, "x25519-pub", 32),
            (0xe7, "secp256k1-pub", 33),
            (0x1200, "p256-pub", 33),
        ] {
            let e = Multikey::decode(&encode_raw(code, &vec![2; len])).unwrap_err();
            assert_eq!(
                e,
                MultikeyError::PreQuantum {
                    name,
                    requirement: e.requirement().unwrap()
                }
            );
            assert_eq!(e.code(), ErrorCode::AlgorithmNegotiationFailure);
        }
        assert_eq!(
            Multikey::decode(&encode_raw(0x1220, &[1; 32])),
            Err(MultikeyError::UnknownCodec { code: 0x1220 })
        );
        let e = Multikey::decode(&encode_raw(MLDSA_65_PUB, &[1; 1951])).unwrap_err();
        assert_eq!(
            e,
            MultikeyError::KeyLength {
                key_type: "ML-DSA-65",
                expected: 1952,
                found: 1951
            }
        );
        assert_eq!(e.code(), ErrorCode::SchemaViolation);
        assert!(Multikey::new(KeyType::Kem(KemAlgorithm::MlKem768), vec![0; 1568]).is_err());
    }
}
