//! DID resolution (registry and peer) and signed DID Update Transactions with version
//! history, as pure request/response types (BIND-II-B-01..05; PROFILE G-32).
//!
//! ```cddl
//! did-update = { did: did-string, version: uint, previous_hash: bstr .size 32, document: tstr,
//!                timestamp: tdate, signature: mtp-signature, * tstr => any }
//! did-resolution-request  = { did: did-string, ? version: uint, * tstr => any }
//! did-resolution-response = { did: did-string, document: tstr, version: uint,
//!                             ? history: [* did-update], * tstr => any }
//! ```
//!
//! - [`DidUpdate`]: version 1 is the initial document (`previous_hash` = 32 zero bytes) and
//!   is signed by the initial ML-DSA key the DID derives from, listed as an authentication
//!   key of that document; version n > 1 is signed by an authentication key of version n − 1
//!   (the current, pre-update key, BIND-II-B-03) and carries `previous_hash` =
//!   SHA-256(det-CBOR of update n − 1, signature included). SLH-DSA may sign (PROFILE G-39).
//! - [`DidHistory`]: the verified version chain (the Registry's version history,
//!   BIND-II-B-05). Keys of every version stay resolvable, so signatures made under rotated
//!   keys still verify ([`DidHistory::assertion_key_at`], [`HistoricalKeys`]).
//! - [`Registry`]: a pure in-memory registry (publish, resolve) — the primary path.
//! - [`verify_response`]: the client-side consistency check of a resolution response.
//! - [`DualPathResolution`]: registry first, peer as the fallback when the registry is
//!   unavailable, times out, or has not indexed the DID (BIND-II-B-01, BIND-II-B-02).
//!
//! Error codes (PROFILE G-32): a bad or misplaced signature is 1100; an update or response
//! that does not chain (version gap or duplicate, wrong `previous_hash`, foreign DID,
//! document id ≠ DID, timestamp regression, response ≠ its history) is 1101 — the document
//! is then not attested by the DID's controller; a structurally malformed object or DID
//! Document is 0103 (or the more specific code of the offending field); a DID or version the
//! resolver cannot produce, and a timeout, are 1200 (Recoverable: retry, then escalate,
//! SPEC-VI-02).

use std::collections::BTreeMap;

use crate::cbor::Value;
use crate::crypto::{self, PublicKey};
use crate::errors::{Coded, ErrorCode};
use crate::identity::credential::{self, CredentialError, KeyResolver};
use crate::identity::did::{Did, DidError, DidUrl};
use crate::identity::document::DidDocument;
use crate::identity::multikey::Multikey;
use crate::primitives::common::*;
use crate::primitives::json::{Hint, Kind};
use crate::time::Timestamp;
use crate::wire::{Frame, WireError};

/// DID updates are signed DID Update Transactions (BIND-II-B-I02).
pub const UPDATE_REQ: &str = "BIND-II-B-I02";
/// Resolution request / response shape (BIND-II-B-I01).
pub const RESOLUTION_REQ: &str = "BIND-II-B-I01";
/// Frame type of a resolution request (`Agent/ResolveDid`, PROFILE G-32).
pub const REQUEST_FRAME: &str = "did_resolution_request";
/// Frame type of a resolution response.
pub const RESPONSE_FRAME: &str = "did_resolution_response";
/// `previous_hash` of version 1.
pub const GENESIS_PREVIOUS_HASH: [u8; 32] = [0; 32];

/// Why an update, a history or a resolution is refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ResolutionError {
    /// Not a well-formed object (0103, or the decoder's code).
    #[error("malformed {what}: {source}")]
    Malformed {
        what: &'static str,
        source: ObjectError,
    },
    /// A frame of another type where a resolution message was expected (0103).
    #[error("frame type {found:?}, expected {expected:?}")]
    FrameType {
        expected: &'static str,
        found: String,
    },
    /// The `document` text is not a valid DID Document (code of the first problem).
    #[error("DID Document of version {version} is invalid: {}", .errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    InvalidDocument { version: u64, errors: Vec<DidError> },
    /// The document's `id` is not the update's DID (1101).
    #[error("DID Document of version {version} has id {document_id:?}, expected {did}")]
    DocumentIdMismatch {
        version: u64,
        document_id: String,
        did: String,
    },
    /// An update or response for another DID (1101).
    #[error("update or response is for {found}, expected {expected}")]
    DidMismatch { expected: String, found: String },
    /// Gap or duplicate (1101).
    #[error("version {found} out of sequence, expected {expected}")]
    VersionOutOfSequence { expected: u64, found: u64 },
    /// `previous_hash` is not SHA-256 of the previous update (1101).
    #[error("previous_hash of version {version} does not match the previous update")]
    PreviousHashMismatch { version: u64 },
    /// An update dated before its predecessor (1101).
    #[error("version {version} is dated {timestamp}, before its predecessor ({previous})")]
    TimestampRegression {
        version: u64,
        timestamp: Timestamp,
        previous: Timestamp,
    },
    /// A history without any update (1101).
    #[error("empty version history")]
    EmptyHistory,
    /// No authentication key of the current version matches the signature's key id (1100).
    #[error("version {version}: no current authentication key {key_id:?}")]
    UnknownSigningKey {
        version: u64,
        key_id: Option<String>,
    },
    /// Version 1 not signed by the key the DID derives from (1100).
    #[error("version 1 is not signed by the DID's initial key: {source}")]
    InitialKey { source: DidError },
    /// The signature does not verify under the current authentication key (1100).
    #[error("signature of version {version} does not verify: {source}")]
    Signature { version: u64, source: ObjectError },
    /// The response is not consistent with itself or the request (1101).
    #[error("resolution response inconsistent: {reason}")]
    InconsistentResponse { reason: &'static str },
    /// The resolver does not know the DID (1200; the registry path falls back to the peer).
    #[error("{did} is not indexed")]
    NotIndexed { did: String },
    /// The requested version does not exist (1200).
    #[error("{did} has no version {version}")]
    NoSuchVersion { did: String, version: u64 },
    /// Both paths failed: unavailable or timed out (1200, Recoverable).
    #[error("DID resolution of {did} failed on every path (registry: {registry}, peer: {peer})")]
    Timeout {
        did: String,
        registry: &'static str,
        peer: &'static str,
    },
}

impl Coded for ResolutionError {
    fn code(&self) -> ErrorCode {
        match self {
            ResolutionError::Malformed { source, .. } => source.code(),
            ResolutionError::FrameType { .. } => ErrorCode::SchemaViolation,
            ResolutionError::InvalidDocument { errors, .. } => errors
                .first()
                .map_or(ErrorCode::SchemaViolation, Coded::code),
            ResolutionError::DocumentIdMismatch { .. }
            | ResolutionError::DidMismatch { .. }
            | ResolutionError::VersionOutOfSequence { .. }
            | ResolutionError::PreviousHashMismatch { .. }
            | ResolutionError::TimestampRegression { .. }
            | ResolutionError::EmptyHistory
            | ResolutionError::InconsistentResponse { .. } => {
                ErrorCode::AuthorityAttestationInvalid
            }
            ResolutionError::UnknownSigningKey { .. }
            | ResolutionError::InitialKey { .. }
            | ResolutionError::Signature { .. } => ErrorCode::SignatureVerificationFailure,
            ResolutionError::NotIndexed { .. }
            | ResolutionError::NoSuchVersion { .. }
            | ResolutionError::Timeout { .. } => ErrorCode::DidResolutionTimeout,
        }
    }

    fn requirement(&self) -> Option<&'static str> {
        Some(match self {
            ResolutionError::Malformed { source, .. } => return source.requirement(),
            ResolutionError::FrameType { .. } => RESOLUTION_REQ,
            ResolutionError::InvalidDocument { errors, .. } => {
                return errors.first().and_then(Coded::requirement);
            }
            ResolutionError::UnknownSigningKey { .. }
            | ResolutionError::InitialKey { .. }
            | ResolutionError::Signature { .. } => "BIND-II-B-04",
            ResolutionError::NotIndexed { .. }
            | ResolutionError::NoSuchVersion { .. }
            | ResolutionError::Timeout { .. } => "BIND-II-B-01",
            _ => "BIND-II-B-05",
        })
    }
}

// ---------------------------------------------------------------------------------------
// DID Update Transaction
// ---------------------------------------------------------------------------------------

/// A DID Update Transaction (BIND-II-B-I02; PROFILE G-32).
#[derive(Clone, Debug, PartialEq)]
pub struct DidUpdate {
    pub did: Did,
    /// 1 = the initial document, +1 per update.
    pub version: u64,
    /// SHA-256(det-CBOR of update `version − 1`); 32 zero bytes for version 1.
    pub previous_hash: [u8; 32],
    /// The complete new DID Document as JSON-LD text, signed byte for byte.
    pub document: String,
    pub timestamp: Timestamp,
    /// By the current (pre-update) authentication key, `key_id` = its DID URL (BIND-II-B-03).
    pub signature: Option<Signature>,
    pub unknown: Map,
}

impl DidUpdate {
    /// The unsigned version-1 update publishing `document` (its `id` is the DID).
    pub fn genesis(document: &DidDocument, timestamp: Timestamp) -> Result<DidUpdate, DidError> {
        Ok(DidUpdate {
            did: document.did()?,
            version: 1,
            previous_hash: GENESIS_PREVIOUS_HASH,
            document: document.to_json(),
            timestamp,
            signature: None,
            unknown: Map::new(),
        })
    }

    /// The unsigned update succeeding `previous` with `document`.
    pub fn successor(
        previous: &DidUpdate,
        document: &DidDocument,
        timestamp: Timestamp,
    ) -> Result<DidUpdate, ResolutionError> {
        Ok(DidUpdate {
            did: previous.did.clone(),
            version: previous.version.saturating_add(1),
            previous_hash: previous.hash()?,
            document: document.to_json(),
            timestamp,
            signature: None,
            unknown: Map::new(),
        })
    }

    /// SHA-256 of the deterministic CBOR of the whole update (signature included): the
    /// next update's `previous_hash`.
    pub fn hash(&self) -> Result<[u8; 32], ResolutionError> {
        self.try_to_cbor()
            .map(|b| crypto::sha256(&b))
            .map_err(|e| ResolutionError::Malformed {
                what: "did-update",
                source: ValidationError::invalid("", UPDATE_REQ, e.to_string()).into(),
            })
    }

    /// The document, parsed (shape only).
    pub fn parse_document(&self) -> Result<DidDocument, ResolutionError> {
        DidDocument::from_json(&self.document).map_err(|e| ResolutionError::InvalidDocument {
            version: self.version,
            errors: vec![e],
        })
    }
}

const UPDATE_HINTS: &[Hint] = &[
    Hint {
        path: "previous_hash",
        kind: Kind::Bytes,
    },
    Hint {
        path: "timestamp",
        kind: Kind::Tdate,
    },
    Hint {
        path: "signature.value",
        kind: Kind::Bytes,
    },
];

impl DidUpdate {
    fn read(v: &Value, path: &str) -> Result<DidUpdate, Vec<ValidationError>> {
        let req = UPDATE_REQ;
        let mut r = MapReader::new(v, path).map_err(|e| vec![e])?;
        let mut e = Errors::new();
        let did = r.field("did", req, &mut e, |v, p| read_did(v, p, req));
        let version = r.field("version", req, &mut e, |v, p| {
            let n = read_uint(v, p, req)?;
            if n == 0 {
                Err(ValidationError::out_of_range(p, req, "versions start at 1"))
            } else {
                Ok(n)
            }
        });
        let previous_hash = r.field("previous_hash", req, &mut e, |v, p| {
            let b = read_bytes(v, p, req)?;
            <[u8; 32]>::try_from(b).map_err(|_| {
                ValidationError::invalid(p, req, format!("{} bytes, expected 32", b.len()))
            })
        });
        let document = r.field("document", req, &mut e, |v, p| {
            read_text(v, p, req).map(str::to_owned)
        });
        let timestamp = r.field("timestamp", req, &mut e, |v, p| read_tdate(v, p, req));
        let sig_path = r.child_path("signature");
        let signature = r.field_all("signature", req, &mut e, |v, _| {
            Signature::from_value(v, &sig_path, req)
        });
        let unknown = r.unknown();
        match (did, version, previous_hash, document, timestamp, signature) {
            (
                Some(did),
                Some(version),
                Some(previous_hash),
                Some(document),
                Some(timestamp),
                Some(signature),
            ) if e.is_empty() => Ok(DidUpdate {
                did,
                version,
                previous_hash,
                document,
                timestamp,
                signature: Some(signature),
                unknown,
            }),
            _ => Err(e.into_vec()),
        }
    }

    fn write(&self) -> Value {
        MapBuilder::new()
            .put("did", Value::text(self.did.as_str()))
            .put("version", Value::Integer(i128::from(self.version)))
            .put("previous_hash", Value::bytes(self.previous_hash.to_vec()))
            .put("document", Value::text(self.document.as_str()))
            .put("timestamp", tdate_value(self.timestamp))
            .put_opt(
                "signature",
                self.signature.as_ref().map(Signature::to_value),
            )
            .extend_unknown(&self.unknown)
            .build()
    }
}

impl CborObject for DidUpdate {
    const NAME: &'static str = "did-update";

    fn json_hints() -> &'static [Hint] {
        UPDATE_HINTS
    }

    fn to_value(&self) -> Value {
        self.write()
    }

    fn from_value(v: &Value) -> Result<Self, ObjectError> {
        let u = DidUpdate::read(v, "").map_err(ObjectError::Schema)?;
        check_encodable(v)?;
        Ok(u)
    }
}

impl crate::primitives::common::Signed for DidUpdate {
    const SIGNATURE_FIELD: &'static str = "signature";
    /// PROFILE G-39 (a): DID Update Transactions may be signed with SLH-DSA.
    const ALLOWS_SLH_DSA: bool = true;
}
crate::impl_single_signed!(@single DidUpdate);

// ---------------------------------------------------------------------------------------
// Version history
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
struct VersionEntry {
    update: DidUpdate,
    document: DidDocument,
    hash: [u8; 32],
}

/// A verified chain of DID updates, version 1 first (BIND-II-B-05). Never empty.
#[derive(Clone, Debug, PartialEq)]
pub struct DidHistory {
    did: Did,
    first: VersionEntry,
    later: Vec<VersionEntry>,
}

/// Public signature keys of `doc`'s authentication relationship, optionally only `key_id`.
fn authentication_keys(doc: &DidDocument, key_id: Option<&str>) -> Vec<(String, PublicKey)> {
    let wanted = key_id.and_then(|k| DidUrl::resolve(k, &doc.id).ok().map(|u| u.to_string()));
    if key_id.is_some() && wanted.is_none() {
        return Vec::new();
    }
    doc.authentication_keys()
        .into_iter()
        .filter(|(id, _, _)| wanted.as_ref().is_none_or(|w| w == id))
        .filter_map(|(id, alg, bytes)| Some((id, PublicKey::from_bytes(alg, &bytes).ok()?)))
        .collect()
}

/// Tries each candidate key; the first that verifies wins.
fn verify_with(
    update: &DidUpdate,
    candidates: &[(String, PublicKey)],
) -> Result<(), ResolutionError> {
    let key_id = update.signature.as_ref().and_then(|s| s.key_id.clone());
    let mut last = None;
    for (_, pk) in candidates {
        match update.verify_signature(pk) {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(source) => ResolutionError::Signature {
            version: update.version,
            source,
        },
        None => ResolutionError::UnknownSigningKey {
            version: update.version,
            key_id,
        },
    })
}

/// Parses and validates the document of `update`. For versions after the first the
/// initial key may have been rotated out: the chain, not the document, binds it to the
/// DID, so [`DidError::NoInitialKey`] is not an error there (PROFILE G-32).
fn checked_document(update: &DidUpdate) -> Result<DidDocument, ResolutionError> {
    let doc = update.parse_document()?;
    if let Err(errors) = doc.validate() {
        let errors: Vec<DidError> = errors
            .into_iter()
            .filter(|e| update.version == 1 || !matches!(e, DidError::NoInitialKey { .. }))
            .collect();
        if !errors.is_empty() {
            return Err(ResolutionError::InvalidDocument {
                version: update.version,
                errors,
            });
        }
    }
    if doc.id != update.did.as_str() {
        return Err(ResolutionError::DocumentIdMismatch {
            version: update.version,
            document_id: doc.id.clone(),
            did: update.did.to_string(),
        });
    }
    Ok(doc)
}

impl DidHistory {
    /// Starts a history from a version-1 update: the document is valid, its id is the DID,
    /// and the update is signed by an authentication key of that document from which the
    /// DID derives (`Did::verify_key`, BIND-II-A-I02).
    pub fn genesis(update: DidUpdate) -> Result<DidHistory, ResolutionError> {
        if update.version != 1 {
            return Err(ResolutionError::VersionOutOfSequence {
                expected: 1,
                found: update.version,
            });
        }
        if update.previous_hash != GENESIS_PREVIOUS_HASH {
            return Err(ResolutionError::PreviousHashMismatch { version: 1 });
        }
        let document = checked_document(&update)?;
        let key_id = update.signature.as_ref().and_then(|s| s.key_id.as_deref());
        let all = authentication_keys(&document, key_id);
        let initial: Vec<(String, PublicKey)> = all
            .iter()
            .filter(|(_, pk)| update.did.matches_key(pk.algorithm(), pk.as_bytes()))
            .cloned()
            .collect();
        if initial.is_empty()
            && let Some((_, pk)) = all.first()
        {
            let source = match update.did.verify_key(pk.algorithm(), pk.as_bytes()) {
                Err(e) => e,
                Ok(()) => DidError::KeyMismatch {
                    did: update.did.to_string(),
                },
            };
            return Err(ResolutionError::InitialKey { source });
        }
        verify_with(&update, &initial)?;
        let hash = update.hash()?;
        Ok(DidHistory {
            did: update.did.clone(),
            first: VersionEntry {
                update,
                document,
                hash,
            },
            later: Vec::new(),
        })
    }

    /// Replays a complete history (version 1 first), verifying every link.
    pub fn from_updates(updates: &[DidUpdate]) -> Result<DidHistory, ResolutionError> {
        let (first, rest) = updates.split_first().ok_or(ResolutionError::EmptyHistory)?;
        let mut h = DidHistory::genesis(first.clone())?;
        for u in rest {
            h.apply(u.clone())?;
        }
        Ok(h)
    }

    fn last(&self) -> &VersionEntry {
        self.later.last().unwrap_or(&self.first)
    }

    fn entries(&self) -> impl DoubleEndedIterator<Item = &VersionEntry> {
        std::iter::once(&self.first).chain(self.later.iter())
    }

    /// Verifies and appends the next update (BIND-II-B-03, BIND-II-B-04): same DID,
    /// version = latest + 1, `previous_hash` = SHA-256(det-CBOR of the latest update), a
    /// timestamp not before the latest, a valid document for the DID, and a signature by an
    /// authentication key of the latest (current) document. Nothing changes on error.
    pub fn apply(&mut self, update: DidUpdate) -> Result<u64, ResolutionError> {
        let current = self.last();
        if update.did != self.did {
            return Err(ResolutionError::DidMismatch {
                expected: self.did.to_string(),
                found: update.did.to_string(),
            });
        }
        let expected = current.update.version.saturating_add(1);
        if update.version != expected {
            return Err(ResolutionError::VersionOutOfSequence {
                expected,
                found: update.version,
            });
        }
        if update.previous_hash != current.hash {
            return Err(ResolutionError::PreviousHashMismatch {
                version: update.version,
            });
        }
        if update.timestamp < current.update.timestamp {
            return Err(ResolutionError::TimestampRegression {
                version: update.version,
                timestamp: update.timestamp,
                previous: current.update.timestamp,
            });
        }
        let key_id = update.signature.as_ref().and_then(|s| s.key_id.as_deref());
        let candidates = authentication_keys(&current.document, key_id);
        verify_with(&update, &candidates)?;
        let document = checked_document(&update)?;
        let hash = update.hash()?;
        let version = update.version;
        self.later.push(VersionEntry {
            update,
            document,
            hash,
        });
        Ok(version)
    }

    pub fn did(&self) -> &Did {
        &self.did
    }

    /// The latest version number.
    pub fn version(&self) -> u64 {
        self.last().update.version
    }

    /// The latest document.
    pub fn latest(&self) -> &DidDocument {
        &self.last().document
    }

    pub fn latest_update(&self) -> &DidUpdate {
        &self.last().update
    }

    fn entry(&self, version: u64) -> Option<&VersionEntry> {
        match version {
            0 => None,
            1 => Some(&self.first),
            v => self.later.get(usize::try_from(v - 2).ok()?),
        }
    }

    /// The document of `version` (1-based).
    pub fn document_at(&self, version: u64) -> Option<&DidDocument> {
        self.entry(version).map(|e| &e.document)
    }

    pub fn update_at(&self, version: u64) -> Option<&DidUpdate> {
        self.entry(version).map(|e| &e.update)
    }

    /// Every update, version 1 first.
    pub fn updates(&self) -> impl Iterator<Item = &DidUpdate> {
        self.entries().map(|e| &e.update)
    }

    /// The version in force at `t`: the latest one published at or before `t`.
    pub fn version_at_time(&self, t: Timestamp) -> Option<u64> {
        self.entries()
            .rev()
            .find(|e| e.update.timestamp <= t)
            .map(|e| e.update.version)
    }

    /// Any verification method `vm_id` (absolute or `#fragment`) of `version`.
    pub fn key_at(&self, vm_id: &str, version: u64) -> Option<Multikey> {
        self.document_at(version)?.key(vm_id)
    }

    /// The assertion key `vm_id` of `version`, as a signature public key.
    pub fn assertion_key_at(&self, vm_id: &str, version: u64) -> Option<PublicKey> {
        let doc = self.document_at(version)?;
        let target = DidUrl::resolve(vm_id, &doc.id).ok()?.to_string();
        doc.assertion_keys()
            .into_iter()
            .find(|(id, _, _)| *id == target)
            .and_then(|(_, alg, bytes)| PublicKey::from_bytes(alg, &bytes).ok())
    }

    /// Every version listing `vm_id` as an assertion key, oldest first, with its key. A
    /// signature made under rotated-out key material verifies against the version that
    /// listed it (BIND-II-B-05).
    pub fn assertion_key_versions(&self, vm_id: &str) -> Vec<(u64, PublicKey)> {
        self.entries()
            .filter_map(|e| {
                let v = e.update.version;
                Some((v, self.assertion_key_at(vm_id, v)?))
            })
            .collect()
    }

    /// A key lookup over the whole history (the newest version listing the key), or over
    /// one version.
    pub fn keys(&self, version: Option<u64>) -> HistoricalKeys<'_> {
        HistoricalKeys {
            history: self,
            version,
        }
    }
}

/// Assertion-key lookup in a [`DidHistory`]: pinned to one version, or (`version: None`)
/// the newest version that lists the key, so that credentials signed under keys that were
/// rotated out still verify (BIND-II-B-05). Implements `credential::KeyResolver`.
#[derive(Clone, Copy, Debug)]
pub struct HistoricalKeys<'a> {
    pub history: &'a DidHistory,
    pub version: Option<u64>,
}

impl HistoricalKeys<'_> {
    /// The assertion key `vm_id` (absolute DID URL of this DID) under this lookup.
    pub fn assertion_key(&self, vm_id: &str) -> Option<PublicKey> {
        let url = DidUrl::parse(vm_id).ok()?;
        if url.did().as_str() != self.history.did.as_str() {
            return None;
        }
        match self.version {
            Some(v) => self.history.assertion_key_at(vm_id, v),
            None => self
                .history
                .assertion_key_versions(vm_id)
                .pop()
                .map(|(_, k)| k),
        }
    }
}

impl KeyResolver for HistoricalKeys<'_> {
    fn resolve_assertion_key(
        &self,
        verification_method: &str,
    ) -> Result<PublicKey, CredentialError> {
        if credential::did_of(verification_method) != self.history.did.as_str() {
            return Err(CredentialError::UnknownDid(
                credential::did_of(verification_method).to_owned(),
            ));
        }
        self.assertion_key(verification_method)
            .ok_or_else(|| CredentialError::NotAssertionMethod(verification_method.to_owned()))
    }
}

/// The whole history: the newest version listing the key (BIND-II-B-05).
impl KeyResolver for DidHistory {
    fn resolve_assertion_key(
        &self,
        verification_method: &str,
    ) -> Result<PublicKey, CredentialError> {
        self.keys(None).resolve_assertion_key(verification_method)
    }
}

// ---------------------------------------------------------------------------------------
// Resolution request / response
// ---------------------------------------------------------------------------------------

/// `did-resolution-request` (frame `did_resolution_request`).
#[derive(Clone, Debug, PartialEq)]
pub struct DidResolutionRequest {
    pub did: Did,
    /// A specific version; absent = the latest.
    pub version: Option<u64>,
    pub unknown: Map,
}

impl DidResolutionRequest {
    pub fn new(did: Did, version: Option<u64>) -> DidResolutionRequest {
        DidResolutionRequest {
            did,
            version,
            unknown: Map::new(),
        }
    }

    pub fn to_frame(&self) -> Result<Frame, WireError> {
        Frame::new(REQUEST_FRAME, self.to_value())
    }

    pub fn from_frame(frame: &Frame) -> Result<DidResolutionRequest, ResolutionError> {
        from_frame(frame, REQUEST_FRAME)
    }
}

impl CborObject for DidResolutionRequest {
    const NAME: &'static str = "did-resolution-request";

    fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("did", Value::text(self.did.as_str()))
            .put_opt(
                "version",
                self.version.map(|v| Value::Integer(i128::from(v))),
            )
            .extend_unknown(&self.unknown)
            .build()
    }

    fn from_value(v: &Value) -> Result<Self, ObjectError> {
        let req = RESOLUTION_REQ;
        let mut r = MapReader::new(v, "")?;
        let mut e = Errors::new();
        let did = r.field("did", req, &mut e, |v, p| read_did(v, p, req));
        let version = r.field_opt("version", &mut e, |v, p| read_uint(v, p, req));
        let unknown = r.unknown();
        match did {
            Some(did) if e.is_empty() => {
                check_encodable(v)?;
                Ok(DidResolutionRequest {
                    did,
                    version,
                    unknown,
                })
            }
            _ => Err(e.into_object_error()),
        }
    }
}

/// `did-resolution-response` (frame `did_resolution_response`).
#[derive(Clone, Debug, PartialEq)]
pub struct DidResolutionResponse {
    pub did: Did,
    /// The JSON-LD DID Document text of `version`.
    pub document: String,
    pub version: u64,
    /// Updates 1 ..= `version` (the registry always sends it; peers may omit it).
    pub history: Option<Vec<DidUpdate>>,
    pub unknown: Map,
}

impl DidResolutionResponse {
    /// The response for `version` (latest when `None`) of `history`, with the history up
    /// to that version.
    pub fn from_history(
        history: &DidHistory,
        version: Option<u64>,
    ) -> Result<DidResolutionResponse, ResolutionError> {
        let version = version.unwrap_or_else(|| history.version());
        let update = history
            .update_at(version)
            .ok_or_else(|| ResolutionError::NoSuchVersion {
                did: history.did.to_string(),
                version,
            })?;
        Ok(DidResolutionResponse {
            did: history.did.clone(),
            document: update.document.clone(),
            version,
            history: Some(
                history
                    .updates()
                    .take_while(|u| u.version <= version)
                    .cloned()
                    .collect(),
            ),
            unknown: Map::new(),
        })
    }

    pub fn to_frame(&self) -> Result<Frame, WireError> {
        Frame::new(RESPONSE_FRAME, self.to_value())
    }

    pub fn from_frame(frame: &Frame) -> Result<DidResolutionResponse, ResolutionError> {
        from_frame(frame, RESPONSE_FRAME)
    }
}

fn from_frame<T: CborObject>(frame: &Frame, expected: &'static str) -> Result<T, ResolutionError> {
    if frame.frame_type != expected {
        return Err(ResolutionError::FrameType {
            expected,
            found: frame.frame_type.clone(),
        });
    }
    T::from_value(&frame.body).map_err(|source| ResolutionError::Malformed {
        what: T::NAME,
        source,
    })
}

const RESPONSE_HINTS: &[Hint] = &[
    Hint {
        path: "history[].previous_hash",
        kind: Kind::Bytes,
    },
    Hint {
        path: "history[].timestamp",
        kind: Kind::Tdate,
    },
    Hint {
        path: "history[].signature.value",
        kind: Kind::Bytes,
    },
];

impl CborObject for DidResolutionResponse {
    const NAME: &'static str = "did-resolution-response";

    fn json_hints() -> &'static [Hint] {
        RESPONSE_HINTS
    }

    fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("did", Value::text(self.did.as_str()))
            .put("document", Value::text(self.document.as_str()))
            .put("version", Value::Integer(i128::from(self.version)))
            .put_opt(
                "history",
                self.history
                    .as_ref()
                    .map(|h| Value::Array(h.iter().map(DidUpdate::write).collect())),
            )
            .extend_unknown(&self.unknown)
            .build()
    }

    fn from_value(v: &Value) -> Result<Self, ObjectError> {
        let req = RESOLUTION_REQ;
        let mut r = MapReader::new(v, "")?;
        let mut e = Errors::new();
        let did = r.field("did", req, &mut e, |v, p| read_did(v, p, req));
        let document = r.field("document", req, &mut e, |v, p| {
            read_text(v, p, req).map(str::to_owned)
        });
        let version = r.field("version", req, &mut e, |v, p| read_uint(v, p, req));
        let history = r.field_opt_all("history", &mut e, |v, p| {
            let items = read_array(v, p, req).map_err(|e| vec![e])?;
            let mut errs = Errors::new();
            let out: Vec<DidUpdate> = items
                .iter()
                .enumerate()
                .filter_map(|(i, u)| errs.take_all(DidUpdate::read(u, &index_path(p, i))))
                .collect();
            errs.finish().map(|_| out)
        });
        let unknown = r.unknown();
        match (did, document, version) {
            (Some(did), Some(document), Some(version)) if e.is_empty() => {
                check_encodable(v)?;
                Ok(DidResolutionResponse {
                    did,
                    document,
                    version,
                    history,
                    unknown,
                })
            }
            _ => Err(e.into_object_error()),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Registry (primary path) and client-side checks
// ---------------------------------------------------------------------------------------

/// A pure in-memory DID Registry: verifies every update before accepting it and keeps the
/// full version history (BIND-II-B-04, BIND-II-B-05).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Registry {
    dids: BTreeMap<String, DidHistory>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Accepts a verified update (version 1 registers the DID); returns the new version.
    pub fn publish(&mut self, update: DidUpdate) -> Result<u64, ResolutionError> {
        match self.dids.get_mut(update.did.as_str()) {
            Some(h) => h.apply(update),
            None => {
                let h = DidHistory::genesis(update)?;
                let v = h.version();
                self.dids.insert(h.did.to_string(), h);
                Ok(v)
            }
        }
    }

    pub fn history(&self, did: &Did) -> Option<&DidHistory> {
        self.dids.get(did.as_str())
    }

    /// Answers a resolution request with the document and its history.
    pub fn resolve(
        &self,
        request: &DidResolutionRequest,
    ) -> Result<DidResolutionResponse, ResolutionError> {
        let h = self
            .history(&request.did)
            .ok_or_else(|| ResolutionError::NotIndexed {
                did: request.did.to_string(),
            })?;
        DidResolutionResponse::from_history(h, request.version)
    }
}

/// A resolution result the client has checked.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedDid {
    pub did: Did,
    pub document: DidDocument,
    pub version: u64,
    /// The verified history, when the response carried one.
    pub history: Option<DidHistory>,
}

/// Client-side check of a response to `request` (BIND-II-B-05): same DID (and version, if
/// one was asked for); with a history, the history verifies from a version 1 signed by
/// the DID's initial key, ends at `version`, and `document` is byte-equal to that update's
/// document; without one (peer path), the document must be valid on its own, including
/// listing the ML-DSA key the DID derives from.
pub fn verify_response(
    response: &DidResolutionResponse,
    request: &DidResolutionRequest,
) -> Result<ResolvedDid, ResolutionError> {
    if response.did != request.did {
        return Err(ResolutionError::DidMismatch {
            expected: request.did.to_string(),
            found: response.did.to_string(),
        });
    }
    if request.version.is_some_and(|v| v != response.version) {
        return Err(ResolutionError::InconsistentResponse {
            reason: "version differs from the requested version",
        });
    }
    match &response.history {
        Some(updates) => {
            let h = DidHistory::from_updates(updates)?;
            if h.did != response.did {
                return Err(ResolutionError::DidMismatch {
                    expected: response.did.to_string(),
                    found: h.did.to_string(),
                });
            }
            if h.version() != response.version {
                return Err(ResolutionError::InconsistentResponse {
                    reason: "history does not end at the returned version",
                });
            }
            if h.latest_update().document != response.document {
                return Err(ResolutionError::InconsistentResponse {
                    reason: "document differs from the latest update's document",
                });
            }
            Ok(ResolvedDid {
                did: h.did.clone(),
                document: h.latest().clone(),
                version: h.version(),
                history: Some(h),
            })
        }
        None => {
            let doc = DidDocument::from_json(&response.document).map_err(|e| {
                ResolutionError::InvalidDocument {
                    version: response.version,
                    errors: vec![e],
                }
            })?;
            doc.validate()
                .map_err(|errors| ResolutionError::InvalidDocument {
                    version: response.version,
                    errors,
                })?;
            if doc.id != response.did.as_str() {
                return Err(ResolutionError::DocumentIdMismatch {
                    version: response.version,
                    document_id: doc.id.clone(),
                    did: response.did.to_string(),
                });
            }
            Ok(ResolvedDid {
                did: response.did.clone(),
                document: doc,
                version: response.version,
                history: None,
            })
        }
    }
}

// ---------------------------------------------------------------------------------------
// Dual-path policy (BIND-II-B-01, BIND-II-B-02)
// ---------------------------------------------------------------------------------------

/// The two resolution paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResolutionPath {
    /// The DID Registry (primary).
    Registry,
    /// `Agent/ResolveDid` at the subject Agent's MTPSync endpoint (secondary).
    Peer,
}

/// What one path produced.
#[derive(Clone, Debug, PartialEq)]
pub enum PathOutcome {
    Response(DidResolutionResponse),
    /// The resolver answered that it does not know the DID.
    NotIndexed,
    /// Connection refused, unreachable, server error.
    Unavailable,
    /// No answer within the caller's deadline.
    Timeout,
}

impl PathOutcome {
    fn label(&self) -> &'static str {
        match self {
            PathOutcome::Response(_) => "invalid response",
            PathOutcome::NotIndexed => "not indexed",
            PathOutcome::Unavailable => "unavailable",
            PathOutcome::Timeout => "timeout",
        }
    }
}

/// What the caller should do next.
#[derive(Clone, Debug, PartialEq)]
pub enum NextAction {
    /// Send `request` on `path` and report the outcome.
    Query {
        path: ResolutionPath,
        request: DidResolutionRequest,
    },
    Resolved {
        path: ResolutionPath,
        resolved: Box<ResolvedDid>,
    },
    /// A 1200 failure is Recoverable: start a new [`DualPathResolution`] after the
    /// back-off of `errors::after_failure`, escalating when the retries are spent.
    Failed(ResolutionError),
}

#[derive(Clone, Debug, PartialEq)]
enum DualState {
    AwaitRegistry,
    AwaitPeer { registry: &'static str },
    Done(NextAction),
}

/// Sans-IO dual-path resolution: the registry first; the peer when the registry is
/// unavailable, times out, or has not indexed the DID (BIND-II-B-01, BIND-II-B-02). A
/// registry response that fails [`verify_response`] is final (no fallback): the registry
/// verifies updates itself, so a bad answer is not an availability problem.
#[derive(Clone, Debug, PartialEq)]
pub struct DualPathResolution {
    request: DidResolutionRequest,
    state: DualState,
}

impl DualPathResolution {
    pub fn new(request: DidResolutionRequest) -> DualPathResolution {
        DualPathResolution {
            request,
            state: DualState::AwaitRegistry,
        }
    }

    pub fn next_action(&self) -> NextAction {
        match &self.state {
            DualState::AwaitRegistry => NextAction::Query {
                path: ResolutionPath::Registry,
                request: self.request.clone(),
            },
            DualState::AwaitPeer { .. } => NextAction::Query {
                path: ResolutionPath::Peer,
                request: self.request.clone(),
            },
            DualState::Done(a) => a.clone(),
        }
    }

    fn finish(&self, path: ResolutionPath, response: &DidResolutionResponse) -> NextAction {
        match verify_response(response, &self.request) {
            Ok(resolved) => NextAction::Resolved {
                path,
                resolved: Box::new(resolved),
            },
            Err(e) => NextAction::Failed(e),
        }
    }

    /// The registry's outcome; ignored unless the registry was being queried.
    pub fn on_registry_result(&mut self, outcome: PathOutcome) {
        if self.state != DualState::AwaitRegistry {
            return;
        }
        self.state = match &outcome {
            PathOutcome::Response(r) => DualState::Done(self.finish(ResolutionPath::Registry, r)),
            other => DualState::AwaitPeer {
                registry: other.label(),
            },
        };
    }

    /// The peer's outcome; ignored unless the peer was being queried.
    pub fn on_peer_result(&mut self, outcome: PathOutcome) {
        let DualState::AwaitPeer { registry } = self.state else {
            return;
        };
        self.state = DualState::Done(match &outcome {
            PathOutcome::Response(r) => self.finish(ResolutionPath::Peer, r),
            other => NextAction::Failed(ResolutionError::Timeout {
                did: self.request.did.to_string(),
                registry,
                peer: other.label(),
            }),
        });
    }
}
