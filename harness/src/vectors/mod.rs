//! The deterministic test-vector corpus under `vectors/` (issue "Deterministic test
//! vectors").
//!
//! Every family is a pure function of fixed inputs: each key comes from
//! [`seed::derive`]`(&`[`MASTER`]`, label)` with a documented label, each timestamp is a
//! constant and each random value (salts, nonces) is drawn from a
//! [`SeededRng`](mtp_protocol::crypto::SeededRng) seeded the same way, so
//! [`generate_all`] returns the same bytes on every run and on every machine. Each
//! generator also verifies what it has just produced and fails with a [`VectorError`]
//! rather than emit a vector that does not check.
//!
//! A JSON vector is one object `{id, requirements, description, inputs, expected}`,
//! pretty-printed (two-space indent, members in insertion order) with a trailing newline.
//!
//! [`seed::derive`]: mtp_protocol::crypto::seed::derive

use std::path::{Path, PathBuf};

use serde_json::Value;

use mtp_protocol::cbor::EncodeError;
use mtp_protocol::identity::DidError;
use mtp_protocol::identity::authority_proof::AuthorityProofError;
use mtp_protocol::identity::credential::CredentialError;
use mtp_protocol::identity::delegation::DelegationError;
use mtp_protocol::identity::disclosure::DisclosureError;
use mtp_protocol::identity::jsonld::JsonLdError;
use mtp_protocol::identity::status_list::StatusListError;

pub mod credentials;

/// The master seed of the whole corpus (32 ASCII bytes). Every key and random value is
/// `HKDF-SHA-256(ikm = MASTER, salt = empty, info = "MTP-seed-v1/" ‖ label)`
/// ([`mtp_protocol::crypto::seed::derive`]); the labels are listed in each vector's
/// `inputs.seeds`.
pub const MASTER: [u8; 32] = *b"mtp-conformance/vectors/master/1";

/// The command that rewrites the committed corpus.
pub const REGENERATE: &str =
    "cargo run --profile ci -p mtp-harness --bin mtp-cert -- vectors generate";

/// One generated file: its path relative to the corpus root and its exact bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VectorFile {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

impl VectorFile {
    /// A JSON document, pretty-printed with a trailing newline.
    pub fn json(path: impl Into<PathBuf>, value: &Value) -> Result<VectorFile, VectorError> {
        let path = path.into();
        let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| VectorError::Json {
            path: path.clone(),
            message: e.to_string(),
        })?;
        bytes.push(b'\n');
        Ok(VectorFile { path, bytes })
    }

    /// A text file, with a trailing newline added when missing.
    pub fn text(path: impl Into<PathBuf>, text: &str) -> VectorFile {
        let mut bytes = text.as_bytes().to_vec();
        if !text.ends_with('\n') {
            bytes.push(b'\n');
        }
        VectorFile {
            path: path.into(),
            bytes,
        }
    }

    /// A binary file, as is.
    pub fn binary(path: impl Into<PathBuf>, bytes: Vec<u8>) -> VectorFile {
        VectorFile {
            path: path.into(),
            bytes,
        }
    }
}

/// One family of vectors (a sub-folder of the corpus).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Family {
    pub name: &'static str,
    pub files: Vec<VectorFile>,
}

/// A family generator.
pub type Generator = fn() -> Result<Vec<VectorFile>, VectorError>;

/// Every family, in generation order. New families are appended here.
pub const FAMILIES: &[(&str, Generator)] = &[(credentials::FAMILY, credentials::generate)];

/// The whole corpus, family by family.
pub fn generate_all() -> Result<Vec<Family>, VectorError> {
    FAMILIES
        .iter()
        .map(|&(name, generate)| {
            Ok(Family {
                name,
                files: generate()?,
            })
        })
        .collect()
}

/// Writes `files` under `dir`, creating folders as needed.
pub fn write(dir: &Path, files: &[VectorFile]) -> Result<(), VectorError> {
    for f in files {
        if f.path.is_absolute()
            || f.path
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(VectorError::BadPath(f.path.clone()));
        }
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| VectorError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(&path, &f.bytes).map_err(|source| VectorError::Io { path, source })?;
    }
    Ok(())
}

/// What a generator step failed on.
#[derive(Debug, thiserror::Error)]
pub enum Cause {
    #[error("credential: {0}")]
    Credential(#[from] CredentialError),
    #[error("delegation: {0}")]
    Delegation(#[from] DelegationError),
    #[error("status list: {0}")]
    StatusList(#[from] StatusListError),
    #[error("selective disclosure: {0}")]
    Disclosure(#[from] DisclosureError),
    #[error("authority proof: {0}")]
    AuthorityProof(#[from] AuthorityProofError),
    #[error("DID: {0}")]
    Did(#[from] DidError),
    #[error("JSON-LD: {0}")]
    JsonLd(#[from] JsonLdError),
    #[error("CBOR: {0}")]
    Cbor(#[from] EncodeError),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A fixed input that the protocol crate refused (a bad constant in the generator).
    #[error("input: {0}")]
    Input(String),
}

/// Why the corpus could not be generated or written.
#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    /// A generator step failed.
    #[error("{vector}: {cause}")]
    Step { vector: &'static str, cause: Cause },
    /// What a generator just produced does not verify (or a negative case verifies).
    #[error("{vector}: self-verification failed: {what}")]
    SelfCheck { vector: &'static str, what: String },
    #[error("{}: cannot serialise JSON: {message}", path.display())]
    Json { path: PathBuf, message: String },
    #[error("{}: not a relative path inside the corpus", .0.display())]
    BadPath(PathBuf),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Attaches the vector name to a step's error.
pub(crate) trait At<T> {
    fn at(self, vector: &'static str) -> Result<T, VectorError>;
}

impl<T, E: Into<Cause>> At<T> for Result<T, E> {
    fn at(self, vector: &'static str) -> Result<T, VectorError> {
        self.map_err(|e| VectorError::Step {
            vector,
            cause: e.into(),
        })
    }
}

/// A self-verification requirement.
pub(crate) fn ensure(
    vector: &'static str,
    cond: bool,
    what: impl FnOnce() -> String,
) -> Result<(), VectorError> {
    if cond {
        Ok(())
    } else {
        Err(VectorError::SelfCheck {
            vector,
            what: what(),
        })
    }
}
