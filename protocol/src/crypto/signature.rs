//! Signatures (SPEC VIII-A, BIND VI-A, BIND VI-C; PROFILE G-02, G-39).
//!
//! Pure ML-DSA (FIPS 204) and pure SLH-DSA (FIPS 205), both with the EMPTY context string.
//! Signing is deterministic (FIPS 204 deterministic variant, FIPS 205 deterministic
//! variant) so runs are reproducible; verification accepts hedged and deterministic
//! signatures alike (PROFILE G-02). Which objects may carry SLH-DSA (PROFILE G-39) is the
//! object layer's decision, not this module's.

use super::algorithms::SignatureAlgorithm;
use super::error::CryptoError;
use super::hash::hkdf_sha256;
use ml_dsa::signature::{Signer, Verifier};
use ml_dsa::{EncodedVerifyingKey, MlDsa65, MlDsa87, MlDsaParams};
use slh_dsa::Sha2_192s;

/// HKDF `info` of the SLH-DSA key derivation (PROFILE G-02/G-39).
pub const SLH_DSA_KEYGEN_INFO: &str = "MTP-SLH-DSA-SHA2-192s-keygen";

/// SLH-DSA-SHA2-192s security parameter n (bytes).
const SLH_N: usize = 24;

/// A private signing key of one of the three MTP signature algorithms.
#[derive(Clone)]
pub enum SigningKey {
    MlDsa65(Box<ml_dsa::SigningKey<MlDsa65>>),
    MlDsa87(Box<ml_dsa::SigningKey<MlDsa87>>),
    SlhDsaSha2_192s(Box<slh_dsa::SigningKey<Sha2_192s>>),
}

impl std::fmt::Debug for SigningKey {
    /// Never prints key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Deterministic key generation from a 32-byte seed.
    ///
    /// - ML-DSA-65/87: FIPS 204 `ML-DSA.KeyGen_internal` with ξ = `seed`.
    /// - SLH-DSA-SHA2-192s (PROFILE G-02/G-39 key derivation): SK.seed ‖ SK.prf ‖ PK.seed
    ///   (3 × 24 bytes) = HKDF-SHA-256(ikm = `seed`, salt = empty,
    ///   info = `"MTP-SLH-DSA-SHA2-192s-keygen"`, L = 72), then FIPS 205
    ///   `slh_keygen_internal`. (FIPS 205 has no seed-expansion step of its own.)
    pub fn from_seed(algorithm: SignatureAlgorithm, seed: &[u8; 32]) -> SigningKey {
        match algorithm {
            SignatureAlgorithm::MlDsa65 => {
                SigningKey::MlDsa65(Box::new(ml_dsa::SigningKey::from_seed(&(*seed).into())))
            }
            SignatureAlgorithm::MlDsa87 => {
                SigningKey::MlDsa87(Box::new(ml_dsa::SigningKey::from_seed(&(*seed).into())))
            }
            SignatureAlgorithm::SlhDsaSha2_192s => {
                let mut okm = [0u8; 3 * SLH_N];
                // 72 bytes is far below the HKDF limit; this cannot fail.
                if hkdf_sha256(seed, &[], SLH_DSA_KEYGEN_INFO.as_bytes(), &mut okm).is_err() {
                    unreachable!("72-byte HKDF output is always valid");
                }
                let (sk_seed, rest) = okm.split_at(SLH_N);
                let (sk_prf, pk_seed) = rest.split_at(SLH_N);
                SigningKey::SlhDsaSha2_192s(Box::new(slh_dsa::SigningKey::slh_keygen_internal(
                    sk_seed, sk_prf, pk_seed,
                )))
            }
        }
    }

    pub fn algorithm(&self) -> SignatureAlgorithm {
        match self {
            SigningKey::MlDsa65(_) => SignatureAlgorithm::MlDsa65,
            SigningKey::MlDsa87(_) => SignatureAlgorithm::MlDsa87,
            SigningKey::SlhDsaSha2_192s(_) => SignatureAlgorithm::SlhDsaSha2_192s,
        }
    }

    /// The raw public key (FIPS 204 `pkEncode` / FIPS 205 PK.seed ‖ PK.root).
    pub fn public_key(&self) -> PublicKey {
        let bytes = match self {
            SigningKey::MlDsa65(k) => {
                let vk: &ml_dsa::VerifyingKey<MlDsa65> = (**k).as_ref();
                vk.encode().to_vec()
            }
            SigningKey::MlDsa87(k) => {
                let vk: &ml_dsa::VerifyingKey<MlDsa87> = (**k).as_ref();
                vk.encode().to_vec()
            }
            SigningKey::SlhDsaSha2_192s(k) => {
                let vk: &slh_dsa::VerifyingKey<Sha2_192s> = (**k).as_ref();
                vk.to_vec()
            }
        };
        PublicKey {
            algorithm: self.algorithm(),
            bytes,
        }
    }

    /// Deterministic signature over `msg` with the empty context (PROFILE G-02): FIPS 204
    /// deterministic `ML-DSA.Sign` (rnd = 0³²) or FIPS 205 `slh_sign` with
    /// opt_rand = PK.seed. An SLH-DSA-SHA2-192s signature takes about 0.5 s optimised.
    ///
    /// The underlying crates abort only if ML-DSA rejection sampling exhausts its nonce
    /// space, which FIPS 204 bounds at a negligible probability.
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        match self {
            SigningKey::MlDsa65(k) => k.sign(msg).encode().to_vec(),
            SigningKey::MlDsa87(k) => k.sign(msg).encode().to_vec(),
            SigningKey::SlhDsaSha2_192s(k) => k.sign(msg).to_vec(),
        }
    }
}

/// A signature public key, length-checked for its algorithm.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PublicKey {
    algorithm: SignatureAlgorithm,
    bytes: Vec<u8>,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey")
            .field("algorithm", &self.algorithm)
            .field("sha256", &hex::encode(super::hash::sha256(&self.bytes)))
            .finish()
    }
}

impl PublicKey {
    /// Accepts exactly the FIPS 204 / FIPS 205 public-key length of `algorithm` (every
    /// byte string of that length is a well-formed key encoding for these parameter sets).
    pub fn from_bytes(
        algorithm: SignatureAlgorithm,
        bytes: &[u8],
    ) -> Result<PublicKey, CryptoError> {
        let expected = algorithm.public_key_len();
        if bytes.len() != expected {
            return Err(CryptoError::PublicKeyLength {
                algorithm,
                expected,
                actual: bytes.len(),
            });
        }
        Ok(PublicKey {
            algorithm,
            bytes: bytes.to_vec(),
        })
    }

    pub fn algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Pure ML-DSA / SLH-DSA verification with the empty context (PROFILE G-02). A
    /// signature of the wrong length or with a malformed encoding is an error, never a
    /// panic.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        let algorithm = self.algorithm;
        let expected = algorithm.signature_len();
        if sig.len() != expected {
            return Err(CryptoError::SignatureLength {
                algorithm,
                expected,
                actual: sig.len(),
            });
        }
        let ok = match algorithm {
            SignatureAlgorithm::MlDsa65 => ml_dsa_verify::<MlDsa65>(&self.bytes, msg, sig),
            SignatureAlgorithm::MlDsa87 => ml_dsa_verify::<MlDsa87>(&self.bytes, msg, sig),
            SignatureAlgorithm::SlhDsaSha2_192s => slh_dsa_verify(&self.bytes, msg, sig),
        };
        if ok {
            Ok(())
        } else {
            Err(CryptoError::BadSignature { algorithm })
        }
    }
}

fn ml_dsa_verify<P: MlDsaParams>(pk: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    let Ok(enc) = EncodedVerifyingKey::<P>::try_from(pk) else {
        return false;
    };
    let vk = ml_dsa::VerifyingKey::<P>::decode(&enc);
    let Ok(sig) = ml_dsa::Signature::<P>::try_from(sig) else {
        return false;
    };
    vk.verify(msg, &sig).is_ok()
}

fn slh_dsa_verify(pk: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    let Ok(vk) = slh_dsa::VerifyingKey::<Sha2_192s>::try_from(pk) else {
        return false;
    };
    let Ok(sig) = slh_dsa::Signature::<Sha2_192s>::try_from(sig) else {
        return false;
    };
    vk.verify(msg, &sig).is_ok()
}

/// Verifies `sig` over `msg` under the wire `algorithm` label (PROFILE G-02): unknown
/// labels, ML-DSA-44 and pre-quantum labels are refused with
/// [`CryptoError::Algorithm`] (1100; SPEC-VIII-A-01, SPEC-VIII-A-02, BIND-VI-A-03).
pub fn verify(
    algorithm: &str,
    public_key: &[u8],
    msg: &[u8],
    sig: &[u8],
) -> Result<(), CryptoError> {
    let alg = SignatureAlgorithm::from_label(algorithm).map_err(CryptoError::Algorithm)?;
    PublicKey::from_bytes(alg, public_key)?.verify(msg, sig)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::AlgorithmError;
    use crate::errors::{Coded, ErrorCode};
    use std::sync::OnceLock;

    /// SLH-DSA signing is slow: one key and one signature shared by the tests.
    fn slh() -> &'static (SigningKey, Vec<u8>) {
        static SLH: OnceLock<(SigningKey, Vec<u8>)> = OnceLock::new();
        SLH.get_or_init(|| {
            let k = SigningKey::from_seed(SignatureAlgorithm::SlhDsaSha2_192s, &[3; 32]);
            let s = k.sign(b"mtp slh message");
            (k, s)
        })
    }

    #[test]
    fn ml_dsa_round_trip_tamper_and_lengths() {
        for alg in [SignatureAlgorithm::MlDsa65, SignatureAlgorithm::MlDsa87] {
            let k = SigningKey::from_seed(alg, &[1; 32]);
            assert_eq!(k.algorithm(), alg);
            let pk = k.public_key();
            assert_eq!(pk.as_bytes().len(), alg.public_key_len());
            let sig = k.sign(b"hello");
            assert_eq!(sig.len(), alg.signature_len());
            // Deterministic.
            assert_eq!(sig, k.sign(b"hello"));
            assert_eq!(pk, SigningKey::from_seed(alg, &[1; 32]).public_key());
            pk.verify(b"hello", &sig).unwrap();
            verify(alg.label(), pk.as_bytes(), b"hello", &sig).unwrap();

            // Tampered message, signature, wrong key.
            assert_eq!(
                pk.verify(b"hellO", &sig),
                Err(CryptoError::BadSignature { algorithm: alg })
            );
            let mut bad = sig.clone();
            bad[10] ^= 1;
            assert!(pk.verify(b"hello", &bad).is_err());
            let last = bad.len() - 1;
            let mut bad = sig.clone();
            bad[last] = 0xff; // malformed hint encoding
            assert!(pk.verify(b"hello", &bad).is_err());
            let other = SigningKey::from_seed(alg, &[2; 32]).public_key();
            assert_eq!(
                other.verify(b"hello", &sig).unwrap_err().code(),
                ErrorCode::SignatureVerificationFailure
            );

            // Wrong lengths are errors, not panics.
            for n in [0, 1, sig.len() - 1, sig.len() + 1] {
                let e = pk.verify(b"hello", &vec![0; n]).unwrap_err();
                assert!(matches!(e, CryptoError::SignatureLength { .. }), "{e:?}");
            }
            assert!(pk.verify(b"hello", &vec![0; sig.len()]).is_err());
            for n in [0, 32, alg.public_key_len() - 1, alg.public_key_len() + 1] {
                let e = PublicKey::from_bytes(alg, &vec![0; n]).unwrap_err();
                assert!(matches!(e, CryptoError::PublicKeyLength { .. }));
                assert!(verify(alg.label(), &vec![0; n], b"hello", &sig).is_err());
            }
            // A zero key of the right length is well-formed and simply does not verify.
            let zero = PublicKey::from_bytes(alg, &vec![0; alg.public_key_len()]).unwrap();
            assert!(zero.verify(b"hello", &sig).is_err());
        }
        // ML-DSA-65 and -87 keys from the same seed differ, and a signature is bound to its
        // parameter set.
        let k65 = SigningKey::from_seed(SignatureAlgorithm::MlDsa65, &[1; 32]);
        let sig = k65.sign(b"x");
        assert!(verify("ML-DSA-87", k65.public_key().as_bytes(), b"x", &sig).is_err());
    }

    #[test]
    fn slh_dsa_round_trip_tamper_and_lengths() {
        let (k, sig) = slh();
        let alg = SignatureAlgorithm::SlhDsaSha2_192s;
        assert_eq!(k.algorithm(), alg);
        let pk = k.public_key();
        assert_eq!(pk.as_bytes().len(), 48);
        assert_eq!(sig.len(), 16224);
        pk.verify(b"mtp slh message", sig).unwrap();
        verify("SLH-DSA-SHA2-192s", pk.as_bytes(), b"mtp slh message", sig).unwrap();
        // Key derivation is deterministic (PROFILE G-02/G-39) and seed-sensitive.
        assert_eq!(SigningKey::from_seed(alg, &[3; 32]).public_key(), pk);
        assert_ne!(SigningKey::from_seed(alg, &[4; 32]).public_key(), pk);
        // The derivation is the documented HKDF + FIPS 205 keygen_internal.
        let mut okm = [0u8; 72];
        hkdf_sha256(&[3; 32], &[], SLH_DSA_KEYGEN_INFO.as_bytes(), &mut okm).unwrap();
        let direct = slh_dsa::SigningKey::<Sha2_192s>::slh_keygen_internal(
            &okm[..24],
            &okm[24..48],
            &okm[48..],
        );
        assert_eq!(
            direct.to_bytes().as_slice(),
            [&okm[..], &pk.as_bytes()[24..]].concat()
        );
        assert_eq!(&pk.as_bytes()[..24], &okm[48..]);

        assert!(pk.verify(b"mtp slh messagE", sig).is_err());
        let mut bad = sig.clone();
        bad[100] ^= 0x80;
        assert_eq!(
            pk.verify(b"mtp slh message", &bad),
            Err(CryptoError::BadSignature { algorithm: alg })
        );
        let other = PublicKey::from_bytes(alg, &[9; 48]).unwrap();
        assert!(other.verify(b"mtp slh message", sig).is_err());
        for n in [0, 3309, 16223, 16225] {
            assert!(matches!(
                pk.verify(b"m", &vec![0; n]),
                Err(CryptoError::SignatureLength { .. })
            ));
        }
        assert!(PublicKey::from_bytes(alg, &[0; 47]).is_err());
        // An ML-DSA label over an SLH-DSA key is a length error.
        assert!(verify("ML-DSA-65", pk.as_bytes(), b"mtp slh message", sig).is_err());
    }

    #[test]
    fn refused_labels() {
        let k = SigningKey::from_seed(SignatureAlgorithm::MlDsa65, &[1; 32]);
        let (pk, sig) = (k.public_key(), k.sign(b"m"));
        for label in ["ML-DSA-44", "Ed25519", "ECDSA", "RSA", "ml-dsa-44"] {
            let e = verify(label, pk.as_bytes(), b"m", &sig).unwrap_err();
            assert!(
                matches!(e, CryptoError::Algorithm(AlgorithmError::Forbidden { .. })),
                "{label}: {e:?}"
            );
            assert_eq!(e.code(), ErrorCode::SignatureVerificationFailure);
            assert!(e.requirement().is_some());
        }
        let e = verify("ML-DSA-65-TURBO", pk.as_bytes(), b"m", &sig).unwrap_err();
        assert!(matches!(
            e,
            CryptoError::Algorithm(AlgorithmError::Unknown { .. })
        ));
        assert_eq!(e.code(), ErrorCode::SignatureVerificationFailure);
        assert_eq!(e.requirement(), Some("SPEC-VIII-A-01"));
        assert_eq!(
            verify("ML-DSA-44", pk.as_bytes(), b"m", &sig)
                .unwrap_err()
                .requirement(),
            Some("BIND-VI-A-03")
        );
        assert!(format!("{k:?}").contains("MlDsa65"));
    }
}
