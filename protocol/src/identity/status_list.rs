//! W3C Status List 2021 revocation (SPEC-III-A-3-01..04, BIND-III-B-05; PROFILE G-33, G-55).
//!
//! - [`Bitstring`]: at least 131,072 bits (16 KiB); bit 0 is the most significant bit of
//!   the first byte. `encodedList` = base64url without padding of the GZIP-compressed
//!   bitstring, compressed deterministically (level 9, `mtime` 0, OS byte 255), so the same
//!   list always gives the same text. Decoding also accepts padding, and refuses lists whose
//!   decompressed size exceeds [`MAX_LIST_BYTES`] (no zip bombs) or is below 16 KiB.
//! - [`StatusEntry`]: a credential's `credentialStatus`: `StatusList2021Entry`, or the
//!   accepted alternative `BitstringStatusListEntry` (PROFILE G-33), with `statusPurpose`
//!   `revocation` or `suspension`.
//! - [`StatusListCredential`]: the signed list. Issued as a `BitstringStatusListCredential`
//!   (subject `BitstringStatusList`, `encodedList` = multibase `u` + the base64url above)
//!   under the VC 2.0 context, for either entry type: a `StatusList2021Credential` cannot be
//!   processed under VC 2.0 (the 2021 context's type-scoped context redefines the protected
//!   terms `name` and `description` as `http://schema.org/…`, JSON-LD "protected term
//!   redefinition"), PROFILE G-33. A `StatusList2021Credential` (plain base64url
//!   `encodedList`) is still parsed.
//! - [`StatusListIssuer`]: allocates indexes; every revocation publishes a newly signed list
//!   credential whose `validFrom` is the revocation time (PROFILE G-55: revocation
//!   timestamp = `validFrom` of the first list credential showing the bit).
//! - [`check`]: verifies a credential's status against a list credential; [`disposition`]
//!   turns a revocation time into the typed outcome for a transaction (refuse / reject before
//!   commit / dispute, PROFILE G-55); [`check_validity`] is scheduled revocation by
//!   `validUntil` (1102, SPEC-III-A-3-04) and the 1300 approaching-expiry warning.
//! - [`StatusCache`]: cache decisions with TTL ≤ `CREDENTIAL_REVOCATION_LATENCY_S`
//!   (SPEC-III-A-3-01).

use std::collections::BTreeMap;
use std::io::{Read, Write};

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value};

use crate::crypto::SigningKey;
use crate::errors::{Coded, ErrorCode};
use crate::identity::credential::{self, Credential, CredentialError, KeyResolver, ProofOptions};
use crate::identity::jsonld;
use crate::profile;
use crate::time::Timestamp;

/// Minimum list length: 16 KiB of bits (W3C Status List 2021 §"herd privacy").
pub const MIN_LIST_BITS: usize = 131_072;
/// Largest decompressed list accepted (2 MiB = 16,777,216 entries).
pub const MAX_LIST_BYTES: usize = 2 * 1024 * 1024;
/// Largest `encodedList` text accepted before decoding.
pub const MAX_ENCODED_LEN: usize = 4 * 1024 * 1024;

pub const STATUS_LIST_2021_ENTRY: &str = "StatusList2021Entry";
pub const STATUS_LIST_2021_CREDENTIAL: &str = "StatusList2021Credential";
pub const STATUS_LIST_2021: &str = "StatusList2021";
pub const BITSTRING_STATUS_LIST_ENTRY: &str = "BitstringStatusListEntry";
pub const BITSTRING_STATUS_LIST_CREDENTIAL: &str = "BitstringStatusListCredential";
pub const BITSTRING_STATUS_LIST: &str = "BitstringStatusList";

/// `credentialStatus` must reference a Status List 2021 endpoint (BIND-III-B-05).
pub const STATUS_REQ: &str = "BIND-III-B-05";
/// Status checking by index (BIND-III-B-I01).
pub const CHECK_REQ: &str = "BIND-III-B-I01";

/// Why status information is refused, or a credential is revoked or expired.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum StatusListError {
    /// `encodedList` is not base64url(GZIP(bits)) of an acceptable size (1101).
    #[error("encodedList: {reason}")]
    Encoding { reason: &'static str },
    /// The credential has no `credentialStatus` (1101).
    #[error("credential has no credentialStatus")]
    MissingStatus,
    /// A malformed `credentialStatus` member (1101).
    #[error("credentialStatus.{field}: {reason}")]
    Entry { field: &'static str, reason: String },
    /// The list credential is not a status list credential of the expected shape (1101).
    #[error("status list credential: {reason}")]
    ListCredential { reason: String },
    /// The list credential's signature or key does not verify (its code, 1100 for a bad
    /// signature).
    #[error("status list credential signature: {0}")]
    ListSignature(CredentialError),
    /// The list's `id` is not the entry's `statusListCredential` (1101).
    #[error("status list credential id {found:?}, entry references {expected:?}")]
    ListUrlMismatch { expected: String, found: String },
    /// The list is issued by someone else than the credential (1101).
    #[error("status list issued by {list_issuer}, credential issued by {credential_issuer}")]
    ListIssuerMismatch {
        list_issuer: String,
        credential_issuer: String,
    },
    /// Entry and list disagree on the status purpose (1101).
    #[error("entry ({entry}) does not match the list ({list})")]
    ListMismatch { entry: String, list: String },
    /// `statusListIndex` beyond the list (1101).
    #[error("statusListIndex {index} outside the list of {bits} entries")]
    IndexOutOfRange { index: u64, bits: usize },
    /// The list credential is outside its own validity window (1101).
    #[error("status list credential not valid at {at}")]
    ListNotValid { at: Timestamp },
    /// The status source could not provide the list (1101: status cannot be confirmed).
    #[error("status list {url} unavailable")]
    Unavailable { url: String },
    /// A malformed `validFrom` / `validUntil` (1101).
    #[error("{field}: {reason}")]
    Validity { field: &'static str, reason: String },
    /// `validFrom` in the future (1101).
    #[error("credential not valid before {valid_from}")]
    NotYetValid { valid_from: Timestamp },
    /// Scheduled revocation: `validUntil` has passed (1102, SPEC-III-A-3-04).
    #[error("credential expired at {valid_until} (scheduled revocation)")]
    Expired { valid_until: Timestamp },
    /// Immediate revocation: the status bit is set (1102, SPEC-III-A-3-02).
    #[error("credential revoked ({purpose:?}, index {index}) at {revoked_at}")]
    Revoked {
        index: u64,
        purpose: StatusPurpose,
        revoked_at: Timestamp,
    },
    /// The issuer could not allocate or set a bit (1101).
    #[error("status list issuer: {reason}")]
    Issuer { reason: &'static str },
    /// Building or signing a list credential failed (the credential error's code).
    #[error("status list credential could not be built or signed: {0}")]
    Sign(CredentialError),
}

impl Coded for StatusListError {
    fn code(&self) -> ErrorCode {
        match self {
            StatusListError::ListSignature(e) | StatusListError::Sign(e) => e.code(),
            StatusListError::Expired { .. } | StatusListError::Revoked { .. } => {
                ErrorCode::CredentialRevoked
            }
            _ => ErrorCode::AuthorityAttestationInvalid,
        }
    }

    fn requirement(&self) -> Option<&'static str> {
        Some(match self {
            StatusListError::ListSignature(e) | StatusListError::Sign(e) => {
                return e.requirement();
            }
            StatusListError::Expired { .. } => "SPEC-III-A-3-04",
            StatusListError::Revoked { .. } => "SPEC-III-A-3-02",
            StatusListError::MissingStatus | StatusListError::Entry { .. } => STATUS_REQ,
            _ => CHECK_REQ,
        })
    }
}

fn encoding(reason: &'static str) -> StatusListError {
    StatusListError::Encoding { reason }
}

// ---------------------------------------------------------------------------------------
// Bitstring
// ---------------------------------------------------------------------------------------

/// A status bitstring; bit `i` is bit `7 − i % 8` of byte `i / 8` (MSB first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bitstring {
    bytes: Vec<u8>,
}

/// base64url, padding optional on input.
const B64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

impl Bitstring {
    /// An all-zero list of at least `bits` entries (rounded up to whole bytes), at least
    /// [`MIN_LIST_BITS`].
    pub fn new(bits: usize) -> Result<Bitstring, StatusListError> {
        let bytes = bits.max(MIN_LIST_BITS).div_ceil(8);
        if bytes > MAX_LIST_BYTES {
            return Err(encoding("list larger than MAX_LIST_BYTES"));
        }
        Ok(Bitstring {
            bytes: vec![0; bytes],
        })
    }

    /// From raw bytes (16 KiB ..= [`MAX_LIST_BYTES`]).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Bitstring, StatusListError> {
        if bytes.len() < MIN_LIST_BITS / 8 {
            return Err(encoding("decompressed list shorter than 16 KiB"));
        }
        if bytes.len() > MAX_LIST_BYTES {
            return Err(encoding("decompressed list larger than MAX_LIST_BYTES"));
        }
        Ok(Bitstring { bytes })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.bytes.len().saturating_mul(8)
    }

    /// Never true (a list has at least 131,072 entries); for clippy's `len` convention.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn locate(index: u64) -> Option<(usize, u8)> {
        let i = usize::try_from(index).ok()?;
        Some((i / 8, 0x80u8 >> (i % 8)))
    }

    /// The bit at `index`; `None` outside the list.
    pub fn get(&self, index: u64) -> Option<bool> {
        let (byte, mask) = Bitstring::locate(index)?;
        self.bytes.get(byte).map(|b| b & mask != 0)
    }

    pub fn set(&mut self, index: u64, value: bool) -> Result<(), StatusListError> {
        let bits = self.len();
        let (byte, mask) =
            Bitstring::locate(index).ok_or(StatusListError::IndexOutOfRange { index, bits })?;
        let b = self
            .bytes
            .get_mut(byte)
            .ok_or(StatusListError::IndexOutOfRange { index, bits })?;
        if value {
            *b |= mask;
        } else {
            *b &= !mask;
        }
        Ok(())
    }

    /// Deterministic GZIP (level 9, mtime 0, OS 255) of the bytes.
    pub fn gzip(&self) -> Vec<u8> {
        let mut enc = flate2::GzBuilder::new()
            .mtime(0)
            .operating_system(255)
            .write(Vec::new(), flate2::Compression::best());
        // Writing to a Vec cannot fail.
        if enc.write_all(&self.bytes).is_err() {
            return Vec::new();
        }
        enc.finish().unwrap_or_default()
    }

    /// `encodedList`: base64url without padding of [`Bitstring::gzip`].
    pub fn encode(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.gzip())
    }

    /// `encodedList` of a `BitstringStatusListCredential`: multibase `u` + base64url.
    pub fn encode_multibase(&self) -> String {
        format!("u{}", self.encode())
    }

    /// Decodes base64url (padding optional) → GZIP → bits, bounded by [`MAX_LIST_BYTES`].
    pub fn decode(encoded: &str) -> Result<Bitstring, StatusListError> {
        if encoded.len() > MAX_ENCODED_LEN {
            return Err(encoding("encodedList text too long"));
        }
        let gz = B64_LENIENT
            .decode(encoded.as_bytes())
            .map_err(|_| encoding("not base64url"))?;
        let mut out = Vec::new();
        let limit = u64::try_from(MAX_LIST_BYTES)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        flate2::read::GzDecoder::new(gz.as_slice())
            .take(limit)
            .read_to_end(&mut out)
            .map_err(|_| encoding("not a GZIP stream"))?;
        Bitstring::from_bytes(out)
    }

    /// Decodes a multibase `u…` (BitstringStatusList) value.
    pub fn decode_multibase(encoded: &str) -> Result<Bitstring, StatusListError> {
        let rest = encoded
            .strip_prefix('u')
            .ok_or(encoding("multibase prefix must be 'u' (base64url)"))?;
        Bitstring::decode(rest)
    }
}

// ---------------------------------------------------------------------------------------
// credentialStatus entries
// ---------------------------------------------------------------------------------------

/// `statusPurpose`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StatusPurpose {
    Revocation,
    Suspension,
}

impl StatusPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusPurpose::Revocation => "revocation",
            StatusPurpose::Suspension => "suspension",
        }
    }

    pub fn parse(s: &str) -> Option<StatusPurpose> {
        match s {
            "revocation" => Some(StatusPurpose::Revocation),
            "suspension" => Some(StatusPurpose::Suspension),
            _ => None,
        }
    }
}

/// Which status-list vocabulary an entry or list uses (PROFILE G-33).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatusListFormat {
    /// `StatusList2021Entry` (the BIND's format; ADCs carry it) / `StatusList2021Credential`.
    StatusList2021,
    /// `BitstringStatusListEntry` (accepted alternative) / `BitstringStatusListCredential`
    /// (the list credential this suite issues).
    Bitstring,
}

impl StatusListFormat {
    pub fn entry_type(self) -> &'static str {
        match self {
            StatusListFormat::StatusList2021 => STATUS_LIST_2021_ENTRY,
            StatusListFormat::Bitstring => BITSTRING_STATUS_LIST_ENTRY,
        }
    }

    pub fn credential_type(self) -> &'static str {
        match self {
            StatusListFormat::StatusList2021 => STATUS_LIST_2021_CREDENTIAL,
            StatusListFormat::Bitstring => BITSTRING_STATUS_LIST_CREDENTIAL,
        }
    }

    pub fn subject_type(self) -> &'static str {
        match self {
            StatusListFormat::StatusList2021 => STATUS_LIST_2021,
            StatusListFormat::Bitstring => BITSTRING_STATUS_LIST,
        }
    }
}

/// One `credentialStatus` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusEntry {
    pub id: Option<String>,
    pub format: StatusListFormat,
    pub purpose: StatusPurpose,
    pub index: u64,
    /// URL of the status list credential.
    pub list_credential: String,
}

fn entry_err(field: &'static str, reason: impl Into<String>) -> StatusListError {
    StatusListError::Entry {
        field,
        reason: reason.into(),
    }
}

/// `scheme ":" rest`, no whitespace or controls, ≤ 2048 characters.
pub fn is_url(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut sc = scheme.bytes();
    s.len() <= 2048
        && sc.next().is_some_and(|c| c.is_ascii_alphabetic())
        && sc.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
        && !rest.is_empty()
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// A canonical decimal: digits only, no sign, no leading zero (except `"0"`), fits u64.
fn parse_index(s: &str) -> Option<u64> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if canonical { s.parse().ok() } else { None }
}

impl StatusEntry {
    /// Parses one entry object.
    pub fn from_json(v: &Value) -> Result<StatusEntry, StatusListError> {
        let m = v
            .as_object()
            .ok_or_else(|| entry_err("", "must be an object"))?;
        let text = |field: &'static str| -> Result<&str, StatusListError> {
            m.get(field)
                .ok_or_else(|| entry_err(field, "missing"))?
                .as_str()
                .ok_or_else(|| entry_err(field, "must be a string"))
        };
        let id = match m.get("id") {
            None => None,
            Some(v) => Some(
                v.as_str()
                    .filter(|s| is_url(s))
                    .ok_or_else(|| entry_err("id", "must be a URL"))?
                    .to_owned(),
            ),
        };
        let format = match text("type")? {
            STATUS_LIST_2021_ENTRY => StatusListFormat::StatusList2021,
            BITSTRING_STATUS_LIST_ENTRY => StatusListFormat::Bitstring,
            other => {
                return Err(entry_err(
                    "type",
                    format!("{other:?} is not StatusList2021Entry or BitstringStatusListEntry"),
                ));
            }
        };
        let purpose_text = text("statusPurpose")?;
        let purpose = StatusPurpose::parse(purpose_text).ok_or_else(|| {
            entry_err(
                "statusPurpose",
                format!("{purpose_text:?} is not \"revocation\" or \"suspension\""),
            )
        })?;
        let index_text = text("statusListIndex")?;
        let index = parse_index(index_text).ok_or_else(|| {
            entry_err(
                "statusListIndex",
                format!("{index_text:?} is not a canonical decimal string"),
            )
        })?;
        let list_credential = text("statusListCredential")?;
        if !is_url(list_credential) {
            return Err(entry_err("statusListCredential", "must be a URL"));
        }
        if format == StatusListFormat::Bitstring
            && let Some(size) = m.get("statusSize")
            && size.as_u64() != Some(1)
        {
            return Err(entry_err("statusSize", "only 1-bit statuses are supported"));
        }
        Ok(StatusEntry {
            id,
            format,
            purpose,
            index,
            list_credential: list_credential.to_owned(),
        })
    }

    /// Every entry of a `credentialStatus` value (one object or an array of objects).
    pub fn all_from_json(v: &Value) -> Result<Vec<StatusEntry>, StatusListError> {
        match v {
            Value::Array(items) if !items.is_empty() => {
                items.iter().map(StatusEntry::from_json).collect()
            }
            Value::Array(_) => Err(StatusListError::MissingStatus),
            other => StatusEntry::from_json(other).map(|e| vec![e]),
        }
    }

    /// The JSON object (members in the W3C example order).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        if let Some(id) = &self.id {
            m.insert("id".into(), Value::String(id.clone()));
        }
        m.insert(
            "type".into(),
            Value::String(self.format.entry_type().into()),
        );
        m.insert(
            "statusPurpose".into(),
            Value::String(self.purpose.as_str().into()),
        );
        m.insert(
            "statusListIndex".into(),
            Value::String(self.index.to_string()),
        );
        m.insert(
            "statusListCredential".into(),
            Value::String(self.list_credential.clone()),
        );
        Value::Object(m)
    }
}

// ---------------------------------------------------------------------------------------
// Validity windows: scheduled revocation and the 1300 warning
// ---------------------------------------------------------------------------------------

/// A credential's `validFrom` / `validUntil`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValidityWindow {
    pub valid_from: Option<Timestamp>,
    pub valid_until: Option<Timestamp>,
}

/// Warning 1300: the credential expires soon (SPEC VI; PROFILE G-08).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("credential expires at {valid_until} ({remaining_s} s left)")]
pub struct ExpiryWarning {
    pub valid_until: Timestamp,
    pub remaining_s: i64,
}

impl Coded for ExpiryWarning {
    fn code(&self) -> ErrorCode {
        ErrorCode::CredentialApproachingExpiry
    }
}

/// Parses an XML Schema `dateTimeStamp` as used by VC 2.0 (any RFC 3339 offset).
pub fn parse_datetime(field: &'static str, v: &Value) -> Result<Timestamp, StatusListError> {
    let s = v.as_str().ok_or_else(|| StatusListError::Validity {
        field,
        reason: "must be a string".into(),
    })?;
    Timestamp::parse_lenient(s).map_err(|e| StatusListError::Validity {
        field,
        reason: e.to_string(),
    })
}

impl ValidityWindow {
    /// `validFrom` / `validUntil` of a credential's JSON map (both optional).
    pub fn from_json(m: &Map<String, Value>) -> Result<ValidityWindow, StatusListError> {
        let read = |field: &'static str| m.get(field).map(|v| parse_datetime(field, v)).transpose();
        let w = ValidityWindow {
            valid_from: read("validFrom")?,
            valid_until: read("validUntil")?,
        };
        if let (Some(f), Some(u)) = (w.valid_from, w.valid_until)
            && u < f
        {
            return Err(StatusListError::Validity {
                field: "validUntil",
                reason: "before validFrom".into(),
            });
        }
        Ok(w)
    }

    /// Whether `at` lies in the window, with ± `CLOCK_SKEW_S` tolerance (PROFILE G-08).
    /// Past `validUntil` is scheduled revocation (1102, SPEC-III-A-3-04); before
    /// `validFrom` is 1101. Inside, the 1300 warning is returned when `validUntil` is
    /// within min(7 days, 10 % of the validity period).
    pub fn check(&self, at: Timestamp) -> Result<Option<ExpiryWarning>, StatusListError> {
        let skew = i128::from(profile::CLOCK_SKEW_S) * 1_000_000_000;
        if let Some(f) = self.valid_from
            && f.nanos_since(at) > skew
        {
            return Err(StatusListError::NotYetValid { valid_from: f });
        }
        let Some(u) = self.valid_until else {
            return Ok(None);
        };
        let remaining = u.nanos_since(at);
        if remaining < -skew {
            return Err(StatusListError::Expired { valid_until: u });
        }
        let max = i128::from(profile::CREDENTIAL_EXPIRY_WARNING_MAX_S) * 1_000_000_000;
        let threshold = match self.valid_from {
            Some(f) => (u.nanos_since(f) / 10).min(max),
            None => max,
        };
        Ok((remaining <= threshold).then(|| ExpiryWarning {
            valid_until: u,
            remaining_s: i64::try_from(remaining / 1_000_000_000).unwrap_or(0),
        }))
    }
}

/// Scheduled revocation and the approaching-expiry warning at `at` (SPEC-III-A-3-04).
pub fn check_validity(
    window: &ValidityWindow,
    at: Timestamp,
) -> Result<Option<ExpiryWarning>, StatusListError> {
    window.check(at)
}

// ---------------------------------------------------------------------------------------
// Revocation outcome for a transaction (PROFILE G-55)
// ---------------------------------------------------------------------------------------

/// The instants of a transaction a revocation is compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransactionTimes {
    /// Entry into Initiated (PROFILE G-55).
    pub initiated_at: Timestamp,
    /// Entry into Committed, once reached.
    pub committed_at: Option<Timestamp>,
}

/// What a revocation (status bit or expiry) means for one transaction (PROFILE G-55).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevocationDisposition {
    /// Not revoked at all for this transaction.
    Unaffected,
    /// Revoked at or before initiation: the credential MUST NOT be accepted for it
    /// (SPEC-III-A-3-02) — 1102.
    RefuseRevokedBeforeInitiation { revoked_at: Timestamp },
    /// Revoked after initiation but before commit: reject with 1102, transaction → Failed.
    RejectBeforeCommit { revoked_at: Timestamp },
    /// Revoked after commit: the dispute path — no new transition, the Receipt is
    /// `disputed` citing 1102 (SPEC-III-A-3-03).
    Dispute { revoked_at: Timestamp },
}

impl RevocationDisposition {
    /// 1102 unless unaffected.
    pub fn code(self) -> Option<ErrorCode> {
        (self != RevocationDisposition::Unaffected).then_some(ErrorCode::CredentialRevoked)
    }

    /// `true` for the two refusals (the credential is not accepted).
    pub fn refuses(self) -> bool {
        matches!(
            self,
            RevocationDisposition::RefuseRevokedBeforeInitiation { .. }
                | RevocationDisposition::RejectBeforeCommit { .. }
        )
    }

    pub fn is_dispute(self) -> bool {
        matches!(self, RevocationDisposition::Dispute { .. })
    }
}

/// Classifies a revocation at `revoked_at` (`None` = not revoked) against `tx`.
pub fn disposition(revoked_at: Option<Timestamp>, tx: &TransactionTimes) -> RevocationDisposition {
    let Some(r) = revoked_at else {
        return RevocationDisposition::Unaffected;
    };
    if r <= tx.initiated_at {
        return RevocationDisposition::RefuseRevokedBeforeInitiation { revoked_at: r };
    }
    match tx.committed_at {
        Some(c) if r > c => RevocationDisposition::Dispute { revoked_at: r },
        _ => RevocationDisposition::RejectBeforeCommit { revoked_at: r },
    }
}

// ---------------------------------------------------------------------------------------
// Status cache (SPEC-III-A-3-01)
// ---------------------------------------------------------------------------------------

/// What to do for a status list URL.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CacheDecision<'a> {
    /// A copy fetched less than the TTL ago.
    Fresh(&'a Credential),
    /// Fetch the list (absent, stale, or fetched "in the future").
    Fetch,
}

#[derive(Clone, Debug, PartialEq)]
struct CachedList {
    credential: Credential,
    fetched_at: Timestamp,
}

/// Status-list cache whose TTL never exceeds `CREDENTIAL_REVOCATION_LATENCY_S`, so a
/// revocation takes effect within that bound (SPEC-III-A-3-01). It also remembers the
/// earliest revocation time observed per (list, index): with one list credential per
/// revocation and this TTL, that is the PROFILE G-55 revocation timestamp within the bound.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusCache {
    ttl_s: u64,
    lists: BTreeMap<String, CachedList>,
    revocations: BTreeMap<(String, u64), Timestamp>,
}

impl StatusCache {
    /// `ttl_s` is clamped to `CREDENTIAL_REVOCATION_LATENCY_S`.
    pub fn new(ttl_s: u64) -> StatusCache {
        StatusCache {
            ttl_s: ttl_s.min(profile::CREDENTIAL_REVOCATION_LATENCY_S),
            lists: BTreeMap::new(),
            revocations: BTreeMap::new(),
        }
    }

    pub fn ttl_s(&self) -> u64 {
        self.ttl_s
    }

    pub fn decide(&self, url: &str, now: Timestamp) -> CacheDecision<'_> {
        let ttl = i128::from(self.ttl_s) * 1_000_000_000;
        match self.lists.get(url) {
            Some(c) if (0..ttl).contains(&now.nanos_since(c.fetched_at)) => {
                CacheDecision::Fresh(&c.credential)
            }
            _ => CacheDecision::Fetch,
        }
    }

    pub fn store(&mut self, url: &str, credential: Credential, fetched_at: Timestamp) {
        self.lists.insert(
            url.to_owned(),
            CachedList {
                credential,
                fetched_at,
            },
        );
    }

    /// Records that `url` showed `index` revoked as of `revoked_at`; returns the earliest
    /// such time seen.
    pub fn observe_revocation(
        &mut self,
        url: &str,
        index: u64,
        revoked_at: Timestamp,
    ) -> Timestamp {
        let slot = self
            .revocations
            .entry((url.to_owned(), index))
            .or_insert(revoked_at);
        if revoked_at < *slot {
            *slot = revoked_at;
        }
        *slot
    }

    pub fn first_revocation(&self, url: &str, index: u64) -> Option<Timestamp> {
        self.revocations.get(&(url.to_owned(), index)).copied()
    }
}

// ---------------------------------------------------------------------------------------
// Status list credentials
// ---------------------------------------------------------------------------------------

fn list_err(reason: impl Into<String>) -> StatusListError {
    StatusListError::ListCredential {
        reason: reason.into(),
    }
}

/// A parsed status list credential (signature not checked here; see [`check_entry`]).
#[derive(Clone, Debug, PartialEq)]
pub struct StatusListCredential {
    /// The credential `id`: the URL entries reference.
    pub url: String,
    pub issuer: String,
    pub format: StatusListFormat,
    pub purpose: StatusPurpose,
    pub list: Bitstring,
    pub window: ValidityWindow,
    /// `validFrom`, else the proof's `created`: the revocation timestamp of every bit this
    /// list is the first to show (PROFILE G-55).
    pub published_at: Option<Timestamp>,
}

impl StatusListCredential {
    /// Checks the shape: type `StatusList2021Credential` (subject type `StatusList2021`,
    /// `encodedList` base64url) or `BitstringStatusListCredential` (subject type
    /// `BitstringStatusList`, `encodedList` multibase `u`); `id`, issuer, purpose.
    pub fn from_credential(c: &Credential) -> Result<StatusListCredential, StatusListError> {
        let format = if c.has_type(STATUS_LIST_2021_CREDENTIAL) {
            StatusListFormat::StatusList2021
        } else if c.has_type(BITSTRING_STATUS_LIST_CREDENTIAL) {
            StatusListFormat::Bitstring
        } else {
            return Err(list_err(
                "type must include StatusList2021Credential or BitstringStatusListCredential",
            ));
        };
        let url = c
            .id()
            .filter(|u| is_url(u))
            .ok_or_else(|| list_err("id must be the list URL"))?;
        let issuer = c.issuer().ok_or_else(|| list_err("issuer missing"))?;
        let subject = c
            .subject()
            .ok_or_else(|| list_err("credentialSubject must be one object"))?;
        let subject_type_ok = match subject.get("type") {
            Some(Value::String(t)) => t == format.subject_type(),
            Some(Value::Array(a)) => a.iter().any(|t| t.as_str() == Some(format.subject_type())),
            _ => false,
        };
        if !subject_type_ok {
            return Err(list_err(format!(
                "credentialSubject.type must be {}",
                format.subject_type()
            )));
        }
        let purpose = subject
            .get("statusPurpose")
            .and_then(Value::as_str)
            .and_then(StatusPurpose::parse)
            .ok_or_else(|| {
                list_err("credentialSubject.statusPurpose must be revocation or suspension")
            })?;
        let encoded = subject
            .get("encodedList")
            .and_then(Value::as_str)
            .ok_or_else(|| list_err("credentialSubject.encodedList missing"))?;
        let list = match format {
            StatusListFormat::StatusList2021 => Bitstring::decode(encoded)?,
            StatusListFormat::Bitstring => Bitstring::decode_multibase(encoded)?,
        };
        let window = ValidityWindow::from_json(c.as_map())?;
        let created = c.proof().ok().flatten().map(|p| p.created);
        Ok(StatusListCredential {
            url: url.to_owned(),
            issuer: issuer.to_owned(),
            format,
            purpose,
            list,
            window,
            published_at: window.valid_from.or(created),
        })
    }

    /// The unsigned list credential: a `BitstringStatusListCredential` under the VC 2.0
    /// context alone, whatever the entry vocabulary (PROFILE G-33: a
    /// `StatusList2021Credential` cannot be processed under the VC 2.0 context, whose
    /// protected `name` / `description` the 2021 context redefines).
    pub fn build(
        url: &str,
        issuer: &str,
        purpose: StatusPurpose,
        list: &Bitstring,
        valid_from: Timestamp,
    ) -> Result<Credential, StatusListError> {
        let format = StatusListFormat::Bitstring;
        let mut subject = Map::new();
        subject.insert("id".into(), Value::String(format!("{url}#list")));
        subject.insert("type".into(), Value::String(format.subject_type().into()));
        subject.insert(
            "statusPurpose".into(),
            Value::String(purpose.as_str().into()),
        );
        subject.insert("encodedList".into(), Value::String(list.encode_multibase()));
        let mut m = Map::new();
        m.insert(
            "@context".into(),
            Value::Array(vec![Value::String(jsonld::CREDENTIALS_V2.into())]),
        );
        m.insert("id".into(), Value::String(url.into()));
        m.insert(
            "type".into(),
            Value::Array(vec![
                Value::String(credential::VERIFIABLE_CREDENTIAL.into()),
                Value::String(format.credential_type().into()),
            ]),
        );
        m.insert("issuer".into(), Value::String(issuer.into()));
        m.insert("validFrom".into(), Value::String(valid_from.to_rfc3339()));
        m.insert("credentialSubject".into(), Value::Object(subject));
        Credential::from_value(Value::Object(m)).map_err(StatusListError::Sign)
    }
}

/// The status of one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusOutcome {
    /// The bit is clear.
    Active,
    /// The bit is set. `since` = the list's `validFrom` (else its proof's `created`): the
    /// PROFILE G-55 revocation timestamp when this is the first list showing the bit, an
    /// upper bound otherwise (see [`StatusCache::observe_revocation`]).
    Revoked {
        purpose: StatusPurpose,
        index: u64,
        since: Timestamp,
    },
}

impl StatusOutcome {
    pub fn revoked_at(&self) -> Option<Timestamp> {
        match self {
            StatusOutcome::Active => None,
            StatusOutcome::Revoked { since, .. } => Some(*since),
        }
    }

    /// 1102 for any set bit, without regard to a transaction.
    pub fn into_result(self) -> Result<(), StatusListError> {
        match self {
            StatusOutcome::Active => Ok(()),
            StatusOutcome::Revoked {
                purpose,
                index,
                since,
            } => Err(StatusListError::Revoked {
                index,
                purpose,
                revoked_at: since,
            }),
        }
    }

    /// What the outcome means for a transaction (PROFILE G-55).
    pub fn disposition(&self, tx: &TransactionTimes) -> RevocationDisposition {
        disposition(self.revoked_at(), tx)
    }
}

/// Checks `entry` of a credential issued by `credential_issuer` against `list`
/// (SPEC-III-A-3-02, BIND-III-B-I01): the list's proof verifies; it is the list the entry
/// references, issued by the credential's issuer, for the entry's purpose, not
/// past its own `validUntil` at `at`; the index is inside the list. A set bit is
/// `Ok(Revoked)` — see [`StatusOutcome::into_result`] / [`StatusOutcome::disposition`].
pub fn check_entry(
    entry: &StatusEntry,
    credential_issuer: &str,
    list: &Credential,
    resolver: &dyn KeyResolver,
    at: Timestamp,
) -> Result<StatusOutcome, StatusListError> {
    credential::verify(list, resolver).map_err(StatusListError::ListSignature)?;
    let parsed = StatusListCredential::from_credential(list)?;
    if parsed.url != entry.list_credential {
        return Err(StatusListError::ListUrlMismatch {
            expected: entry.list_credential.clone(),
            found: parsed.url,
        });
    }
    if parsed.issuer != credential_issuer {
        return Err(StatusListError::ListIssuerMismatch {
            list_issuer: parsed.issuer,
            credential_issuer: credential_issuer.to_owned(),
        });
    }
    if parsed.purpose != entry.purpose {
        return Err(StatusListError::ListMismatch {
            entry: format!("{} {}", entry.format.entry_type(), entry.purpose.as_str()),
            list: format!(
                "{} {}",
                parsed.format.credential_type(),
                parsed.purpose.as_str()
            ),
        });
    }
    // A list published after `at` is fine (it may be what shows a later revocation); only
    // an expired list is stale.
    let expiry_only = ValidityWindow {
        valid_from: None,
        valid_until: parsed.window.valid_until,
    };
    if expiry_only.check(at).is_err() {
        return Err(StatusListError::ListNotValid { at });
    }
    let bit = parsed
        .list
        .get(entry.index)
        .ok_or(StatusListError::IndexOutOfRange {
            index: entry.index,
            bits: parsed.list.len(),
        })?;
    if !bit {
        return Ok(StatusOutcome::Active);
    }
    let since = parsed
        .published_at
        .ok_or_else(|| list_err("neither validFrom nor proof.created"))?;
    Ok(StatusOutcome::Revoked {
        purpose: entry.purpose,
        index: entry.index,
        since,
    })
}

/// Checks `credential`'s status against one list credential: every `credentialStatus`
/// entry that references `list` is checked ([`check_entry`]); the first set bit wins. An
/// error if no entry references the list.
pub fn check(
    credential: &Credential,
    list: &Credential,
    resolver: &dyn KeyResolver,
    at: Timestamp,
) -> Result<StatusOutcome, StatusListError> {
    let entries = StatusEntry::all_from_json(
        credential
            .credential_status()
            .ok_or(StatusListError::MissingStatus)?,
    )?;
    let issuer = credential
        .issuer()
        .ok_or_else(|| list_err("the credential has no issuer"))?;
    let url = list.id().unwrap_or_default();
    let mut outcome = None;
    for e in entries.iter().filter(|e| e.list_credential == url) {
        let o = check_entry(e, issuer, list, resolver, at)?;
        if matches!(o, StatusOutcome::Revoked { .. }) {
            return Ok(o);
        }
        outcome = Some(o);
    }
    outcome.ok_or_else(|| StatusListError::ListUrlMismatch {
        expected: entries
            .first()
            .map(|e| e.list_credential.clone())
            .unwrap_or_default(),
        found: url.to_owned(),
    })
}

/// Where status list credentials come from (an HTTP fetcher, a cache, a test map).
pub trait StatusSource {
    /// The current list credential at `url`, or [`StatusListError::Unavailable`].
    fn status_list_credential(&self, url: &str) -> Result<Credential, StatusListError>;
}

impl StatusSource for BTreeMap<String, Credential> {
    fn status_list_credential(&self, url: &str) -> Result<Credential, StatusListError> {
        self.get(url)
            .cloned()
            .ok_or_else(|| StatusListError::Unavailable {
                url: url.to_owned(),
            })
    }
}

// ---------------------------------------------------------------------------------------
// Issuer side
// ---------------------------------------------------------------------------------------

/// A pure status list issuer: allocates indexes sequentially and publishes a newly signed
/// list credential for every status change, with `validFrom` = the time of the change
/// (PROFILE G-55). Revocation is permanent; a suspension can be lifted.
#[derive(Clone, Debug)]
pub struct StatusListIssuer {
    url: String,
    issuer: String,
    entry_format: StatusListFormat,
    purpose: StatusPurpose,
    list: Bitstring,
    next: u64,
    key: SigningKey,
    verification_method: String,
    current: Option<Credential>,
    changed_at: BTreeMap<u64, Timestamp>,
}

impl StatusListIssuer {
    /// `verification_method` is an assertion key of `issuer` (its DID URL); `bits` is
    /// rounded up to at least [`MIN_LIST_BITS`]; `entry_format` is the vocabulary of the
    /// entries [`StatusListIssuer::allocate`] hands out (the list credential is always a
    /// `BitstringStatusListCredential`).
    pub fn new(
        url: &str,
        issuer: &str,
        entry_format: StatusListFormat,
        purpose: StatusPurpose,
        bits: usize,
        key: SigningKey,
        verification_method: &str,
    ) -> Result<StatusListIssuer, StatusListError> {
        if !is_url(url) {
            return Err(StatusListError::Issuer {
                reason: "list URL is not a URL",
            });
        }
        Ok(StatusListIssuer {
            url: url.to_owned(),
            issuer: issuer.to_owned(),
            entry_format,
            purpose,
            list: Bitstring::new(bits)?,
            next: 0,
            key,
            verification_method: verification_method.to_owned(),
            current: None,
            changed_at: BTreeMap::new(),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn list(&self) -> &Bitstring {
        &self.list
    }

    /// The latest published list credential.
    pub fn current(&self) -> Option<&Credential> {
        self.current.as_ref()
    }

    /// The next free index, as a `credentialStatus` entry (`id` = `<url>#<index>`).
    pub fn allocate(&mut self) -> Result<StatusEntry, StatusListError> {
        let index = self.next;
        if self.list.get(index).is_none() {
            return Err(StatusListError::Issuer {
                reason: "status list is full",
            });
        }
        self.next = index.saturating_add(1);
        Ok(StatusEntry {
            id: Some(format!("{}#{index}", self.url)),
            format: self.entry_format,
            purpose: self.purpose,
            index,
            list_credential: self.url.clone(),
        })
    }

    /// Signs and publishes the current list with `validFrom` = `at`.
    pub fn publish(&mut self, at: Timestamp) -> Result<Credential, StatusListError> {
        let unsigned =
            StatusListCredential::build(&self.url, &self.issuer, self.purpose, &self.list, at)?;
        let signed = credential::sign(
            &unsigned,
            &self.key,
            &ProofOptions {
                verification_method: self.verification_method.clone(),
                created: at,
            },
        )
        .map_err(StatusListError::Sign)?;
        self.current = Some(signed.clone());
        Ok(signed)
    }

    /// Sets the bit of `index` and publishes a new list with `validFrom` = `at`: the
    /// revocation timestamp (PROFILE G-55). Revoking twice keeps the first timestamp and
    /// publishes nothing new.
    pub fn revoke(&mut self, index: u64, at: Timestamp) -> Result<Credential, StatusListError> {
        if self.list.get(index) == Some(true)
            && let Some(c) = &self.current
        {
            return Ok(c.clone());
        }
        self.list.set(index, true)?;
        self.changed_at.insert(index, at);
        self.publish(at)
    }

    /// Lifts a suspension (suspension lists only) and publishes.
    pub fn reinstate(&mut self, index: u64, at: Timestamp) -> Result<Credential, StatusListError> {
        if self.purpose != StatusPurpose::Suspension {
            return Err(StatusListError::Issuer {
                reason: "revocation is permanent",
            });
        }
        self.list.set(index, false)?;
        self.changed_at.insert(index, at);
        self.publish(at)
    }

    /// When the bit of `index` last changed.
    pub fn changed_at(&self, index: u64) -> Option<Timestamp> {
        self.changed_at.get(&index).copied()
    }
}

impl StatusSource for StatusListIssuer {
    fn status_list_credential(&self, url: &str) -> Result<Credential, StatusListError> {
        match &self.current {
            Some(c) if url == self.url => Ok(c.clone()),
            _ => Err(StatusListError::Unavailable {
                url: url.to_owned(),
            }),
        }
    }
}
