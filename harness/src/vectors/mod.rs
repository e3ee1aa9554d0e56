//! The deterministic test-vector corpus under `vectors/` (issue "Deterministic test
//! vectors"), the IUT vector check ([`iut_check`]) and the external public vector sets
//! ([`external`]).
//!
//! Every family is a pure function of fixed inputs: each key comes from
//! [`seed::derive`]`(&`[`MASTER`]`, label)` with a documented label, each timestamp is a
//! constant and each random value (salts, nonces) is drawn from a
//! [`SeededRng`](mtp_protocol::crypto::SeededRng) seeded the same way, so
//! [`generate_all`] returns the same bytes on every run and on every machine. Each
//! generator also verifies what it has just produced and fails with a [`VectorError`]
//! rather than emit a vector that does not check.
//!
//! A JSON vector is one object `{id, requirements, description, inputs, expected[, codec]}`,
//! pretty-printed (two-space indent, members in insertion order) with a trailing newline;
//! `<id>.cbor` / `<id>.diag` hold the bytes under test and their diagnostic notation.
//! [`manifest`] indexes every vector in `vectors/manifest.json` (`mtp-vectors/1`).
//!
//! [`seed::derive`]: mtp_protocol::crypto::seed::derive

use std::path::{Path, PathBuf};

use serde_json::Value;

use mtp_protocol::attribution::AttributionError;
use mtp_protocol::audit::AuditError;
use mtp_protocol::cbor::{DecodeError, EncodeError};
use mtp_protocol::crypto::CryptoError;
use mtp_protocol::identity::DidError;
use mtp_protocol::identity::authority_proof::AuthorityProofError;
use mtp_protocol::identity::credential::CredentialError;
use mtp_protocol::identity::delegation::DelegationError;
use mtp_protocol::identity::disclosure::DisclosureError;
use mtp_protocol::identity::jsonld::JsonLdError;
use mtp_protocol::identity::status_list::StatusListError;
use mtp_protocol::primitives::ObjectError;
use mtp_protocol::uuid::UuidError;
use mtp_protocol::wire::WireError;

pub mod algorithms;
pub mod attribution;
pub mod audit;
pub mod catalogue;
pub mod credentials;
pub mod dids;
pub(crate) mod doc;
pub mod envelopes;
pub mod external;
pub mod iut_check;
pub mod kem;
pub mod manifest;
pub mod objects;
pub mod registry;
pub mod settlement;
pub mod signatures;
pub mod taxonomy;
pub mod uuids;
pub(crate) mod world;

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

/// One family of vectors (a sub-folder of the corpus; `manifest` is the root index).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Family {
    pub name: &'static str,
    pub files: Vec<VectorFile>,
}

/// A family generator.
pub type Generator = fn() -> Result<Vec<VectorFile>, VectorError>;

/// Every family, in generation order. New families are appended here.
pub const FAMILIES: &[(&str, Generator)] = &[
    (credentials::FAMILY, credentials::generate),
    (uuids::FAMILY, uuids::generate),
    (dids::FAMILY, dids::generate),
    (objects::FAMILY, objects::generate),
    (signatures::FAMILY, signatures::generate),
    (kem::FAMILY, kem::generate),
    (envelopes::FAMILY, envelopes::generate),
    (audit::FAMILY, audit::generate),
    (algorithms::FAMILY, algorithms::generate),
    (attribution::FAMILY, attribution::generate),
    (registry::FAMILY, registry::generate),
    (settlement::FAMILY, settlement::generate),
    (taxonomy::FAMILY, taxonomy::generate),
];

/// The whole corpus, family by family, followed by the `manifest` pseudo-family
/// (`manifest.json` at the corpus root, built from the families' files).
pub fn generate_all() -> Result<Vec<Family>, VectorError> {
    let mut families = FAMILIES
        .iter()
        .map(|&(name, generate)| {
            Ok(Family {
                name,
                files: generate()?,
            })
        })
        .collect::<Result<Vec<_>, VectorError>>()?;
    let manifest = manifest::build(&families)?;
    families.push(Family {
        name: manifest::FAMILY,
        files: vec![manifest],
    });
    Ok(families)
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

/// The corpus folder: `./vectors` when it exists, else the repository's `vectors/`
/// (as `cli::default_scenarios` finds `scenarios/`).
pub fn default_corpus() -> PathBuf {
    crate::cli::repo_folder("vectors")
}

/// Every file of the corpus under `dir` (README and manifest included): its path relative
/// to `dir` with `/` separators and its SHA-256, sorted by path (for the certification
/// bundle).
pub fn corpus_files(dir: &Path) -> Result<Vec<(String, [u8; 32])>, VectorError> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, [u8; 32])>) -> Result<(), VectorError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| VectorError::Io { path, source }
        };
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let entry = entry.map_err(io(dir))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(io(&path))?;
            if kind.is_dir() {
                walk(root, &path, out)?;
            } else if kind.is_file() {
                let bytes = std::fs::read(&path).map_err(io(&path))?;
                let rel = path
                    .strip_prefix(root)
                    .map_err(|_| VectorError::BadPath(path.clone()))?
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((rel, mtp_protocol::crypto::sha256(&bytes)));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.sort();
    Ok(out)
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
    #[error("CBOR decoding: {0}")]
    Decode(#[from] DecodeError),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("object: {0}")]
    Object(#[from] ObjectError),
    #[error("crypto: {0}")]
    Crypto(#[from] CryptoError),
    #[error("MTP-UUID: {0}")]
    Uuid(#[from] UuidError),
    #[error("wire: {0}")]
    Wire(#[from] WireError),
    #[error("audit: {0}")]
    Audit(#[from] AuditError),
    #[error("attribution: {0}")]
    Attribution(#[from] AttributionError),
    /// A fixed input that the protocol crate refused (a bad constant in the generator).
    #[error("input: {0}")]
    Input(String),
}

/// Why the corpus could not be generated, written or read.
#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    /// A generator step failed.
    #[error("{vector}: {cause}")]
    Step { vector: String, cause: Box<Cause> },
    /// What a generator just produced does not verify (or a negative case verifies).
    #[error("{vector}: self-verification failed: {what}")]
    SelfCheck { vector: String, what: String },
    #[error("{}: cannot serialise JSON: {message}", path.display())]
    Json { path: PathBuf, message: String },
    #[error("{}: not a relative path inside the corpus", .0.display())]
    BadPath(PathBuf),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The IUT could not be reached (a transport failure, not an answer of the IUT).
    #[error("IUT unreachable: {what}")]
    Iut { what: String },
    /// A corpus file that a reader needs is missing or not what the manifest says.
    #[error("corpus {}: {what}", path.display())]
    Corpus { path: PathBuf, what: String },
}

/// Attaches the vector name to a step's error.
pub(crate) trait At<T> {
    fn at(self, vector: &str) -> Result<T, VectorError>;
}

impl<T, E: Into<Cause>> At<T> for Result<T, E> {
    fn at(self, vector: &str) -> Result<T, VectorError> {
        self.map_err(|e| VectorError::Step {
            vector: vector.to_owned(),
            cause: Box::new(e.into()),
        })
    }
}

/// A self-verification requirement.
pub(crate) fn ensure(
    vector: &str,
    cond: bool,
    what: impl FnOnce() -> String,
) -> Result<(), VectorError> {
    if cond {
        Ok(())
    } else {
        Err(VectorError::SelfCheck {
            vector: vector.to_owned(),
            what: what(),
        })
    }
}

/// A generator input the protocol crate refused.
pub(crate) fn input_error(vector: &str, what: impl Into<String>) -> VectorError {
    VectorError::Step {
        vector: vector.to_owned(),
        cause: Box::new(Cause::Input(what.into())),
    }
}
