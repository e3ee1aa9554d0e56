//! Hash functions (BIND VI-E) and HKDF-SHA-256 (RFC 5869).
//!
//! SHA-256 is the baseline for every protocol hash (BIND-VI-E-I01, BIND-VI-E-02); SHA3-256
//! only when negotiated (BIND-VI-E-01, PROFILE G-38).

use super::algorithms::HashAlgorithm;
use super::error::CryptoError;
use sha2::Digest;

/// Output length of every MTP hash function, in bytes.
pub const HASH_LEN: usize = 32;

/// Largest HKDF-SHA-256 output (RFC 5869 §2.3: 255 × HashLen).
pub const HKDF_SHA256_MAX_LEN: usize = 255 * HASH_LEN;

/// SHA-256 (FIPS 180-4).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(data).into()
}

/// SHA3-256 (FIPS 202).
pub fn sha3_256(data: &[u8]) -> [u8; 32] {
    sha3::Sha3_256::digest(data).into()
}

/// The negotiated hash of `data` (BIND VI-E; PROFILE G-38).
pub fn digest(algorithm: HashAlgorithm, data: &[u8]) -> [u8; 32] {
    match algorithm {
        HashAlgorithm::Sha256 => sha256(data),
        HashAlgorithm::Sha3_256 => sha3_256(data),
    }
}

/// Incremental SHA-256, for inputs assembled from parts without concatenating them.
#[derive(Clone, Debug, Default)]
pub struct Sha256Hasher(sha2::Sha256);

impl Sha256Hasher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, data: &[u8]) -> &mut Self {
        self.0.update(data);
        self
    }

    pub fn finalize(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

/// HKDF-SHA-256 (RFC 5869) filling `out`. An empty `salt` is the RFC's default salt
/// (HashLen zero bytes give the same HMAC key). Fails only when `out` is longer than
/// [`HKDF_SHA256_MAX_LEN`].
pub fn hkdf_sha256(
    ikm: &[u8],
    salt: &[u8],
    info: &[u8],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    let salt = if salt.is_empty() { None } else { Some(salt) };
    hkdf::Hkdf::<sha2::Sha256>::new(salt, ikm)
        .expand(info, out)
        .map_err(|_| CryptoError::HkdfLength {
            requested: out.len(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        assert_eq!(
            hex::encode(sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex::encode(sha3_256(b"abc")),
            "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532"
        );
        assert_eq!(digest(HashAlgorithm::Sha256, b"abc"), sha256(b"abc"));
        assert_eq!(digest(HashAlgorithm::Sha3_256, b"abc"), sha3_256(b"abc"));
        let mut h = Sha256Hasher::new();
        h.update(b"a").update(b"bc");
        assert_eq!(h.finalize(), sha256(b"abc"));
    }

    #[test]
    fn hkdf_rfc5869_case_1_and_limits() {
        // RFC 5869 Appendix A.1.
        let ikm = [0x0b; 22];
        let salt = hex::decode("000102030405060708090a0b0c").unwrap();
        let info = hex::decode("f0f1f2f3f4f5f6f7f8f9").unwrap();
        let mut okm = [0u8; 42];
        hkdf_sha256(&ikm, &salt, &info, &mut okm).unwrap();
        assert_eq!(
            hex::encode(okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
        // RFC 5869 Appendix A.3: empty salt and info.
        let mut okm = [0u8; 42];
        hkdf_sha256(&ikm, &[], &[], &mut okm).unwrap();
        assert_eq!(
            hex::encode(okm),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
        );
        let mut max = vec![0u8; HKDF_SHA256_MAX_LEN];
        assert!(hkdf_sha256(b"k", b"", b"", &mut max).is_ok());
        let mut too_long = vec![0u8; HKDF_SHA256_MAX_LEN + 1];
        let err = hkdf_sha256(b"k", b"", b"", &mut too_long).unwrap_err();
        assert_eq!(
            err,
            CryptoError::HkdfLength {
                requested: HKDF_SHA256_MAX_LEN + 1
            }
        );
    }
}
