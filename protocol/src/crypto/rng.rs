//! A deterministic, seedable CSPRNG for the crates that take an RNG argument (sans-IO: the
//! crate never reads OS randomness). ChaCha20 (`chacha20` crate) on rand_core 0.10, the
//! `rand_core` of ml-dsa, ml-kem and slh-dsa.

use chacha20::ChaCha20Rng;
use chacha20::rand_core::{Infallible, SeedableRng, TryCryptoRng, TryRng};

/// The `rand_core` (0.10) this RNG implements; use its traits to pass a [`SeededRng`] to the
/// post-quantum crates.
pub use chacha20::rand_core;

/// ChaCha20 keystream RNG seeded with 32 bytes; identical seeds give identical streams.
#[derive(Debug)]
pub struct SeededRng(ChaCha20Rng);

impl SeededRng {
    pub fn from_seed(seed: [u8; 32]) -> Self {
        SeededRng(ChaCha20Rng::from_seed(seed))
    }

    /// A labelled child stream of a master seed (see [`super::seed::derive`]).
    pub fn from_master(master: &[u8; 32], label: &str) -> Self {
        Self::from_seed(super::seed::derive(master, label))
    }

    /// Fills `dst` with the next keystream bytes.
    pub fn fill(&mut self, dst: &mut [u8]) {
        match self.0.try_fill_bytes(dst) {
            Ok(()) => {}
            Err(never) => match never {},
        }
    }

    /// The next `N` keystream bytes.
    pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        self.fill(&mut out);
        out
    }
}

impl TryRng for SeededRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        self.0.try_next_u32()
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        self.0.try_next_u64()
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.0.try_fill_bytes(dst)
    }
}

impl TryCryptoRng for SeededRng {}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::Rng;

    #[test]
    fn reproducible_and_seed_sensitive() {
        let mut a = SeededRng::from_seed([1; 32]);
        let mut b = SeededRng::from_seed([1; 32]);
        let mut c = SeededRng::from_seed([2; 32]);
        let x: [u8; 48] = a.bytes();
        assert_eq!(x, b.bytes::<48>());
        assert_ne!(x, c.bytes::<48>());
        assert_eq!(a.next_u64(), b.next_u64());
        assert_ne!(
            SeededRng::from_master(&[1; 32], "a").bytes::<32>(),
            SeededRng::from_master(&[1; 32], "b").bytes::<32>()
        );
    }

    #[test]
    fn chacha20_keystream_known_answer() {
        // RFC 8439 §2.3.2 block function with an all-zero key and nonce, counter 0: the
        // first keystream bytes of ChaCha20 (rand_chacha / chacha20 `ChaCha20Rng` layout).
        let mut r = SeededRng::from_seed([0; 32]);
        assert_eq!(
            hex::encode(r.bytes::<16>()),
            "76b8e0ada0f13d90405d6ae55386bd28"
        );
    }
}
