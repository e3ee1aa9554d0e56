//! Crypto suite (SPEC VIII, BIND VI, BIND X), built on the RustCrypto post-quantum crates;
//! nothing here is hand-rolled cryptography.
//!
//! - [`signature`]: ML-DSA-65/87 and SLH-DSA-SHA2-192s, deterministic signing, pure
//!   verification with the empty context (PROFILE G-02).
//! - [`kem`]: ML-KEM-768/1024 with caller-supplied seeds and randomness.
//! - [`aead`]: AES-256-GCM, the PROFILE G-40 IV sequence and the (key, IV) reuse tracker.
//! - [`hash`]: SHA-256, SHA3-256, HKDF-SHA-256.
//! - [`agility`]: Algorithm Support Profiles and negotiation (BIND X, PROFILE G-38).
//! - [`seed`], [`rng`]: one master seed per run; a seeded ChaCha20 RNG.

pub mod aead;
pub mod agility;
mod algorithms;
mod error;
pub mod hash;
pub mod kem;
pub mod rng;
pub mod seed;
pub mod signature;

pub use agility::{AlgorithmSupportProfile, NegotiatedSuite, negotiate};
pub use algorithms::{
    AlgorithmError, HashAlgorithm, KemAlgorithm, SignatureAlgorithm, SymmetricAlgorithm,
};
pub use error::{CryptoError, CryptoFunction};
pub use hash::{digest, hkdf_sha256, sha3_256, sha256};
pub use kem::{DecapsulationKey, encapsulate};
pub use rng::SeededRng;
pub use signature::{PublicKey, SigningKey, verify};
