//! AES-256-GCM (SPEC VIII-A, BIND VI-D; PROFILE G-40).
//!
//! 256-bit key, 96-bit IV, 128-bit tag, tag appended to the ciphertext (BIND-VI-D-01). The
//! reference implementation's IVs come from [`IvSequence`] (32-bit random session id ‖
//! 64-bit big-endian counter, the BIND-VI-D-I02 construction); random IVs from peers are
//! accepted. [`IvTracker`] refuses a repeated (key, IV) pair with 0104 (BIND-VI-D-I01,
//! BIND-VI-D-03).

use super::error::CryptoError;
use super::hash::sha256;
use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit};
use std::collections::HashSet;

pub const KEY_LEN: usize = 32;
pub const IV_LEN: usize = 12;
pub const TAG_LEN: usize = 16;

/// Encrypts `plaintext` and returns ciphertext ‖ 128-bit tag (BIND-VI-D-01).
///
/// The caller is responsible for IV uniqueness under `key`: use [`IvSequence`] and
/// [`IvTracker::seal`]. Panics only for a plaintext above the SP 800-38D limit of
/// 2^36 − 32 bytes (64 GiB), which no MTP message approaches.
pub fn seal(key: &[u8; 32], iv: &[u8; 12], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new(&(*key).into());
    match cipher.encrypt(
        &(*iv).into(),
        Payload {
            msg: plaintext,
            aad,
        },
    ) {
        Ok(ct) => ct,
        Err(_) => panic!("AES-GCM plaintext exceeds 2^36 - 32 bytes"),
    }
}

/// Decrypts ciphertext ‖ tag; any authentication failure (including an input shorter than
/// the tag) is [`CryptoError::AeadOpen`] (0108).
pub fn open(
    key: &[u8; 32],
    iv: &[u8; 12],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    if ciphertext.len() < TAG_LEN {
        return Err(CryptoError::AeadOpen);
    }
    let cipher = Aes256Gcm::new(&(*key).into());
    cipher
        .decrypt(
            &(*iv).into(),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map_err(|_| CryptoError::AeadOpen)
}

/// Deterministic IV construction of PROFILE G-40 (NIST SP 800-38D §8.2.1): a 32-bit random
/// session id followed by a 64-bit big-endian per-session counter starting at 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IvSequence {
    session_id: [u8; 4],
    /// The counter of the next IV; `None` once all 2^64 values are used.
    next: Option<u64>,
}

impl IvSequence {
    /// `session_id` MUST come from a CSPRNG and be fresh for the key (BIND-VI-D-02).
    pub fn new(session_id: [u8; 4]) -> Self {
        IvSequence {
            session_id,
            next: Some(0),
        }
    }

    /// Resumes a persisted sequence at counter `next` (PROFILE G-40: counters are persisted
    /// across restarts, or the key is rotated).
    pub fn resume(session_id: [u8; 4], next: u64) -> Self {
        IvSequence {
            session_id,
            next: Some(next),
        }
    }

    pub fn session_id(&self) -> [u8; 4] {
        self.session_id
    }

    /// The counter the next IV will carry; `None` when exhausted.
    pub fn next_counter(&self) -> Option<u64> {
        self.next
    }

    /// The next IV; after the counter value 2^64 − 1 has been issued every call fails with
    /// [`CryptoError::IvExhausted`] (0104) — never wraps.
    #[allow(clippy::should_implement_trait)] // fallible: not an Iterator
    pub fn next(&mut self) -> Result<[u8; 12], CryptoError> {
        let counter = self.next.ok_or(CryptoError::IvExhausted)?;
        self.next = counter.checked_add(1);
        let mut iv = [0u8; 12];
        iv[..4].copy_from_slice(&self.session_id);
        iv[4..].copy_from_slice(&counter.to_be_bytes());
        Ok(iv)
    }
}

/// Records every (key, IV) pair seen and refuses a repeat (BIND-VI-D-03, BIND-VI-D-I01).
/// Keys are stored as their SHA-256 fingerprint, never in the clear.
#[derive(Clone, Debug, Default)]
pub struct IvTracker {
    seen: HashSet<([u8; 32], [u8; 12])>,
}

impl IvTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records (key, IV); [`CryptoError::IvReuse`] (0104, Fatal) if it was seen before.
    pub fn check_and_record(&mut self, key: &[u8; 32], iv: &[u8; 12]) -> Result<(), CryptoError> {
        if self.seen.insert((sha256(key), *iv)) {
            Ok(())
        } else {
            Err(CryptoError::IvReuse)
        }
    }

    /// `true` if (key, IV) has been recorded.
    pub fn contains(&self, key: &[u8; 32], iv: &[u8; 12]) -> bool {
        self.seen.contains(&(sha256(key), *iv))
    }

    /// Number of recorded pairs.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// [`check_and_record`](Self::check_and_record) then [`seal`].
    pub fn seal(
        &mut self,
        key: &[u8; 32],
        iv: &[u8; 12],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        self.check_and_record(key, iv)?;
        Ok(seal(key, iv, aad, plaintext))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::{Coded, ErrorCode};

    #[test]
    fn round_trip_and_tamper() {
        let key = [0x42; 32];
        let iv = [7; 12];
        let ct = seal(&key, &iv, b"hdr", b"payload");
        assert_eq!(ct.len(), 7 + TAG_LEN);
        assert_eq!(open(&key, &iv, b"hdr", &ct).unwrap(), b"payload");
        assert_eq!(
            open(&key, &iv, b"hdr", &seal(&key, &iv, b"", b"")).unwrap_err(),
            CryptoError::AeadOpen
        );
        assert_eq!(
            open(&key, &iv, b"", &seal(&key, &iv, b"", b"")).unwrap(),
            b""
        );
        for i in 0..ct.len() {
            let mut bad = ct.clone();
            bad[i] ^= 1;
            assert_eq!(open(&key, &iv, b"hdr", &bad), Err(CryptoError::AeadOpen));
        }
        assert!(open(&key, &iv, b"hdR", &ct).is_err());
        assert!(open(&[0x43; 32], &iv, b"hdr", &ct).is_err());
        assert!(open(&key, &[8; 12], b"hdr", &ct).is_err());
        for n in 0..=TAG_LEN {
            let e = open(&key, &iv, b"hdr", &ct[..n]).unwrap_err();
            assert_eq!(e.code(), ErrorCode::MessageIntegrityFailure);
        }
    }

    #[test]
    fn known_answer_nist_gcm_test_case_13() {
        // McGrew–Viega GCM spec test case 13: 256-bit zero key, zero IV, empty input.
        let ct = seal(&[0; 32], &[0; 12], b"", b"");
        assert_eq!(hex::encode(ct), "530f8afbc74536b9a963b4f1c4cb738b");
        // Test case 14: one zero block.
        let ct = seal(&[0; 32], &[0; 12], b"", &[0; 16]);
        assert_eq!(
            hex::encode(ct),
            "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919"
        );
    }

    #[test]
    fn iv_sequence_layout_uniqueness_and_exhaustion() {
        let mut s = IvSequence::new([0xde, 0xad, 0xbe, 0xef]);
        let first = s.next().unwrap();
        assert_eq!(first, [0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 0, 0, 0, 0]);
        let second = s.next().unwrap();
        assert_eq!(second[11], 1);
        let mut seen = HashSet::new();
        seen.insert(first);
        seen.insert(second);
        for _ in 0..10_000 {
            assert!(seen.insert(s.next().unwrap()));
        }
        assert_eq!(s.next_counter(), Some(10_002));
        let mut end = IvSequence::resume([1, 2, 3, 4], u64::MAX - 1);
        assert_eq!(end.next().unwrap()[4..], (u64::MAX - 1).to_be_bytes());
        assert_eq!(end.next().unwrap()[4..], u64::MAX.to_be_bytes());
        assert_eq!(end.next_counter(), None);
        let e = end.next().unwrap_err();
        assert_eq!(e, CryptoError::IvExhausted);
        assert_eq!(e.code(), ErrorCode::IvReuse);
        assert!(end.next().is_err());
        assert_eq!(end.session_id(), [1, 2, 3, 4]);
    }

    #[test]
    fn tracker_refuses_reuse_per_key() {
        let mut t = IvTracker::new();
        assert!(t.is_empty());
        let (k1, k2) = ([1; 32], [2; 32]);
        let mut seq = IvSequence::new([9; 4]);
        let iv = seq.next().unwrap();
        t.check_and_record(&k1, &iv).unwrap();
        t.check_and_record(&k2, &iv).unwrap(); // same IV, other key: fine
        let e = t.check_and_record(&k1, &iv).unwrap_err();
        assert_eq!(e, CryptoError::IvReuse);
        assert_eq!(e.code(), ErrorCode::IvReuse);
        assert_eq!(e.requirement(), Some("BIND-VI-D-I01"));
        assert!(t.contains(&k1, &iv));
        assert_eq!(t.len(), 2);
        let iv2 = seq.next().unwrap();
        let ct = t.seal(&k1, &iv2, b"a", b"m").unwrap();
        assert_eq!(open(&k1, &iv2, b"a", &ct).unwrap(), b"m");
        assert_eq!(t.seal(&k1, &iv2, b"a", b"m"), Err(CryptoError::IvReuse));
    }
}
