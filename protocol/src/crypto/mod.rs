//! Crypto suite (SPEC VIII, BIND VI, BIND X), built on the RustCrypto post-quantum crates;
//! nothing here is hand-rolled cryptography.

mod algorithms;

pub use algorithms::{AlgorithmError, HashAlgorithm, KemAlgorithm, SignatureAlgorithm, SymmetricAlgorithm};
