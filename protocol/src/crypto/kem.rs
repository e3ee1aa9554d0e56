//! Key encapsulation: ML-KEM-768 / ML-KEM-1024 (FIPS 203; SPEC VIII-A, BIND VI-B).
//!
//! Sans-IO: key generation takes the 64-byte seed d ‖ z and encapsulation takes the
//! 32-byte randomness m from the caller. ML-KEM-512 is not representable
//! ([`KemAlgorithm`] has no such variant; its label is refused, BIND-VI-B-02).

use super::algorithms::KemAlgorithm;
use super::error::CryptoError;
use ml_kem::{Decapsulate, KeyExport, MlKem768, MlKem1024, TryKeyInit};

/// Length of an ML-KEM shared secret.
pub const SHARED_SECRET_LEN: usize = 32;

#[derive(Clone)]
enum Inner {
    MlKem768(Box<ml_kem::DecapsulationKey<MlKem768>>),
    MlKem1024(Box<ml_kem::DecapsulationKey<MlKem1024>>),
}

/// An ML-KEM decapsulation (private) key.
#[derive(Clone)]
pub struct DecapsulationKey {
    algorithm: KemAlgorithm,
    inner: Inner,
}

impl std::fmt::Debug for DecapsulationKey {
    /// Never prints key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecapsulationKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl DecapsulationKey {
    /// FIPS 203 `ML-KEM.KeyGen_internal(d, z)` with `seed` = d ‖ z.
    pub fn from_seed(algorithm: KemAlgorithm, seed: &[u8; 64]) -> DecapsulationKey {
        let seed = ml_kem::Seed::from(*seed);
        let inner = match algorithm {
            KemAlgorithm::MlKem768 => {
                Inner::MlKem768(Box::new(ml_kem::DecapsulationKey::from_seed(seed)))
            }
            KemAlgorithm::MlKem1024 => {
                Inner::MlKem1024(Box::new(ml_kem::DecapsulationKey::from_seed(seed)))
            }
        };
        DecapsulationKey { algorithm, inner }
    }

    pub fn algorithm(&self) -> KemAlgorithm {
        self.algorithm
    }

    /// The encapsulation (public) key, 1,184 or 1,568 bytes (BIND-VI-B-I01).
    pub fn encapsulation_key(&self) -> Vec<u8> {
        match &self.inner {
            Inner::MlKem768(k) => k.encapsulation_key().to_bytes().to_vec(),
            Inner::MlKem1024(k) => k.encapsulation_key().to_bytes().to_vec(),
        }
    }

    /// FIPS 203 `ML-KEM.Decaps`. A ciphertext of the right length always yields a key (a
    /// modified ciphertext yields the implicit-rejection key); a wrong length is an error.
    pub fn decapsulate(&self, ciphertext: &[u8]) -> Result<[u8; 32], CryptoError> {
        let expected = self.algorithm.ciphertext_len();
        let length_error = || CryptoError::CiphertextLength {
            algorithm: self.algorithm,
            expected,
            actual: ciphertext.len(),
        };
        let shared = match &self.inner {
            Inner::MlKem768(k) => {
                let ct = ml_kem::Ciphertext::<MlKem768>::try_from(ciphertext)
                    .map_err(|_| length_error())?;
                k.decapsulate(&ct)
            }
            Inner::MlKem1024(k) => {
                let ct = ml_kem::Ciphertext::<MlKem1024>::try_from(ciphertext)
                    .map_err(|_| length_error())?;
                k.decapsulate(&ct)
            }
        };
        Ok(shared.into())
    }
}

/// Checks an encapsulation key: exact length and the FIPS 203 §7.2 modulus check.
pub fn check_encapsulation_key(algorithm: KemAlgorithm, ek: &[u8]) -> Result<(), CryptoError> {
    match algorithm {
        KemAlgorithm::MlKem768 => {
            parse_ek::<ml_kem::EncapsulationKey<MlKem768>>(algorithm, ek).map(|_| ())
        }
        KemAlgorithm::MlKem1024 => {
            parse_ek::<ml_kem::EncapsulationKey<MlKem1024>>(algorithm, ek).map(|_| ())
        }
    }
}

fn parse_ek<E: TryKeyInit>(algorithm: KemAlgorithm, ek: &[u8]) -> Result<E, CryptoError> {
    if ek.len() != algorithm.encapsulation_key_len() {
        return Err(CryptoError::InvalidEncapsulationKey {
            algorithm,
            reason: "wrong length",
        });
    }
    E::new_from_slice(ek).map_err(|_| CryptoError::InvalidEncapsulationKey {
        algorithm,
        reason: "coefficient not reduced modulo q",
    })
}

/// FIPS 203 `ML-KEM.Encaps_internal(ek, m)`: returns (ciphertext, shared secret). `m` MUST
/// be 32 fresh random bytes from the caller's CSPRNG (e.g. [`super::rng::SeededRng`]).
pub fn encapsulate(
    algorithm: KemAlgorithm,
    ek: &[u8],
    m: &[u8; 32],
) -> Result<(Vec<u8>, [u8; 32]), CryptoError> {
    let m = ml_kem::B32::from(*m);
    Ok(match algorithm {
        KemAlgorithm::MlKem768 => {
            let (ct, k) = parse_ek::<ml_kem::EncapsulationKey<MlKem768>>(algorithm, ek)?
                .encapsulate_deterministic(&m);
            (ct.to_vec(), k.into())
        }
        KemAlgorithm::MlKem1024 => {
            let (ct, k) = parse_ek::<ml_kem::EncapsulationKey<MlKem1024>>(algorithm, ek)?
                .encapsulate_deterministic(&m);
            (ct.to_vec(), k.into())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::{Coded, ErrorCode};

    #[test]
    fn round_trip_both_parameter_sets() {
        for alg in KemAlgorithm::ALL {
            let dk = DecapsulationKey::from_seed(alg, &[5; 64]);
            assert_eq!(dk.algorithm(), alg);
            let ek = dk.encapsulation_key();
            assert_eq!(ek.len(), alg.encapsulation_key_len());
            check_encapsulation_key(alg, &ek).unwrap();
            let (ct, k) = encapsulate(alg, &ek, &[9; 32]).unwrap();
            assert_eq!(ct.len(), alg.ciphertext_len());
            assert_eq!(dk.decapsulate(&ct).unwrap(), k);
            // Deterministic in (ek, m); different m gives a different secret.
            assert_eq!(encapsulate(alg, &ek, &[9; 32]).unwrap(), (ct.clone(), k));
            assert_ne!(encapsulate(alg, &ek, &[10; 32]).unwrap().1, k);
            // Modified ciphertext: implicit rejection, a different key, no error.
            let mut bad = ct.clone();
            bad[0] ^= 1;
            assert_ne!(dk.decapsulate(&bad).unwrap(), k);
            // Another key pair does not recover the secret.
            let other = DecapsulationKey::from_seed(alg, &[6; 64]);
            assert_ne!(other.decapsulate(&ct).unwrap(), k);
            assert_eq!(
                DecapsulationKey::from_seed(alg, &[5; 64]).encapsulation_key(),
                ek,
                "keygen is deterministic"
            );
        }
    }

    #[test]
    fn wrong_lengths_and_bad_keys_are_errors() {
        for alg in KemAlgorithm::ALL {
            let dk = DecapsulationKey::from_seed(alg, &[5; 64]);
            let ek = dk.encapsulation_key();
            for n in [0, 1, alg.ciphertext_len() - 1, alg.ciphertext_len() + 1] {
                let e = dk.decapsulate(&vec![0; n]).unwrap_err();
                assert!(matches!(e, CryptoError::CiphertextLength { .. }));
                assert_eq!(e.code(), ErrorCode::MessageIntegrityFailure);
            }
            for n in [0, 32, ek.len() - 1, ek.len() + 1] {
                let e = encapsulate(alg, &vec![0; n], &[0; 32]).unwrap_err();
                assert!(matches!(e, CryptoError::InvalidEncapsulationKey { .. }));
            }
            // 0xFF bytes decode to coefficients 4095 > q - 1: modulus check fails.
            let mut bad = ek.clone();
            bad[0] = 0xff;
            bad[1] = 0xff;
            let e = encapsulate(alg, &bad, &[0; 32]).unwrap_err();
            assert_eq!(
                e,
                CryptoError::InvalidEncapsulationKey {
                    algorithm: alg,
                    reason: "coefficient not reduced modulo q"
                }
            );
            assert_eq!(e.code(), ErrorCode::SchemaViolation);
            assert!(check_encapsulation_key(alg, &bad).is_err());
        }
        // An ML-KEM-768 key is not an ML-KEM-1024 key.
        let ek768 =
            DecapsulationKey::from_seed(KemAlgorithm::MlKem768, &[5; 64]).encapsulation_key();
        assert!(encapsulate(KemAlgorithm::MlKem1024, &ek768, &[0; 32]).is_err());
        assert!(
            format!(
                "{:?}",
                DecapsulationKey::from_seed(KemAlgorithm::MlKem768, &[5; 64])
            )
            .contains("MlKem768")
        );
    }
}
