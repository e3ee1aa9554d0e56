//! One master seed per run: every key and every random value of a reproducible run is
//! derived from it by label, so runs are byte-reproducible (sans-IO; PROFILE G-02).

use super::hash::{HKDF_SHA256_MAX_LEN, hkdf_sha256};

/// HKDF `info` prefix of every derivation.
pub const INFO_PREFIX: &str = "MTP-seed-v1/";

/// `HKDF-SHA-256(ikm = master, salt = empty, info = "MTP-seed-v1/" ‖ label, L = 32)`.
pub fn derive(master: &[u8; 32], label: &str) -> [u8; 32] {
    derive_array(master, label)
}

/// [`derive`] with an `N`-byte output (e.g. 64 for an ML-KEM seed d‖z). `N` ≤ 8160 is
/// checked at compile time.
pub fn derive_array<const N: usize>(master: &[u8; 32], label: &str) -> [u8; N] {
    const {
        assert!(
            N <= HKDF_SHA256_MAX_LEN,
            "HKDF-SHA-256 output is at most 8160 bytes"
        )
    };
    let mut info = Vec::with_capacity(INFO_PREFIX.len() + label.len());
    info.extend_from_slice(INFO_PREFIX.as_bytes());
    info.extend_from_slice(label.as_bytes());
    let mut out = [0u8; N];
    // N is bounded at compile time, so HKDF cannot fail.
    if hkdf_sha256(master, &[], &info, &mut out).is_err() {
        unreachable!("N <= 8160 is asserted at compile time");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_separate_and_derivation_is_stable() {
        let m = [7u8; 32];
        assert_eq!(derive(&m, "agent/signing"), derive(&m, "agent/signing"));
        assert_ne!(derive(&m, "agent/signing"), derive(&m, "agent/kem"));
        assert_ne!(derive(&m, "a"), derive(&[8u8; 32], "a"));
        let long: [u8; 64] = derive_array(&m, "agent/signing");
        assert_eq!(long[..32], derive(&m, "agent/signing"));
        // Equals the HKDF definition spelled out.
        let mut expect = [0u8; 32];
        hkdf_sha256(&m, &[], b"MTP-seed-v1/x", &mut expect).unwrap();
        assert_eq!(derive(&m, "x"), expect);
    }
}
