//! The agent's key material, all derived from one 32-byte master seed by label
//! (`mtp_protocol::crypto::seed`), so a seed file reproduces the same DID and keys.

use std::path::Path;

use mtp_protocol::crypto::{
    DecapsulationKey, KemAlgorithm, PublicKey, SignatureAlgorithm, SigningKey, seed,
};
use mtp_protocol::identity::Did;

/// Seed derivation labels (stable: changing one changes every DID derived from a seed file).
pub const LABEL_SIGNING: &str = "mtp-agent/ml-dsa-65/1";
pub const LABEL_KEM: &str = "mtp-agent/ml-kem-768/1";
pub const LABEL_TLS: &str = "mtp-agent/tls-ml-dsa-65/1";
pub const LABEL_RANGE_SECRET: &str = "mtp-agent/range-secret/1";
pub const LABEL_RUN: &str = "mtp-agent/run/1";

/// Why a seed file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("cannot read seed file {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write seed file {path}: {source}")]
    Write {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("seed file {0} must hold exactly 64 hex characters (32 bytes)")]
    Malformed(std::path::PathBuf),
    #[error("no system randomness for a new seed")]
    NoRandomness,
}

/// Every key of one agent.
#[derive(Clone, Debug)]
pub struct AgentKeys {
    master: [u8; 32],
    /// ML-DSA-65: authentication and assertionMethod; the DID derives from it (G-05).
    pub signing: SigningKey,
    /// ML-KEM-768: keyAgreement (NATS envelopes, G-06).
    pub kem: DecapsulationKey,
    pub did: Did,
}

impl AgentKeys {
    pub fn from_seed(master: [u8; 32]) -> AgentKeys {
        let signing = SigningKey::from_seed(
            SignatureAlgorithm::MlDsa65,
            &seed::derive(&master, LABEL_SIGNING),
        );
        let kem = DecapsulationKey::from_seed(
            KemAlgorithm::MlKem768,
            &seed::derive_array::<64>(&master, LABEL_KEM),
        );
        let public = signing.public_key();
        let did = Did::from_digest(mtp_protocol::crypto::sha256(public.as_bytes()));
        AgentKeys {
            master,
            signing,
            kem,
            did,
        }
    }

    pub fn public_key(&self) -> PublicKey {
        self.signing.public_key()
    }

    /// A sub-seed for another purpose (TLS key, run randomness, range-proof secret).
    pub fn derive(&self, label: &str) -> [u8; 32] {
        seed::derive(&self.master, label)
    }
}

/// Read a seed file (64 hex characters, surrounding whitespace ignored), or create it with a
/// fresh random seed when it does not exist.
pub fn load_or_create_seed(path: &Path) -> Result<[u8; 32], SeedError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_seed(text.trim()).ok_or_else(|| SeedError::Malformed(path.into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            rustls::crypto::aws_lc_rs::default_provider()
                .secure_random
                .fill(&mut seed)
                .map_err(|_| SeedError::NoRandomness)?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| SeedError::Write {
                    path: path.into(),
                    source,
                })?;
            }
            std::fs::write(path, format!("{}\n", hex::encode(seed))).map_err(|source| {
                SeedError::Write {
                    path: path.into(),
                    source,
                }
            })?;
            Ok(seed)
        }
        Err(source) => Err(SeedError::Read {
            path: path.into(),
            source,
        }),
    }
}

/// 64 hex characters → 32 bytes.
pub fn parse_seed(hex_text: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(hex_text).ok()?;
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_did_and_the_did_binds_the_key() {
        let a = AgentKeys::from_seed([7; 32]);
        let b = AgentKeys::from_seed([7; 32]);
        assert_eq!(a.did, b.did);
        assert_eq!(a.kem.encapsulation_key(), b.kem.encapsulation_key());
        assert!(
            a.did
                .matches_key(SignatureAlgorithm::MlDsa65, a.public_key().as_bytes())
        );
        assert_ne!(a.did, AgentKeys::from_seed([8; 32]).did);
    }

    #[test]
    fn seed_file_is_created_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/seed.hex");
        let s1 = load_or_create_seed(&path).unwrap();
        let s2 = load_or_create_seed(&path).unwrap();
        assert_eq!(s1, s2);
        std::fs::write(&path, "zz").unwrap();
        assert!(matches!(
            load_or_create_seed(&path),
            Err(SeedError::Malformed(_))
        ));
    }
}
