//! Shared machinery of every protocol object (BIND VII; PROFILE G-02, G-03, G-13, G-25, G-26):
//! field readers that collect [`ValidationError`]s with a path and a requirement id, the
//! [`CborObject`] / [`Signed`] traits, signatures, prices, participants and numbers.
//!
//! Conventions every object follows:
//! - every struct that models a CBOR map has `pub unknown: Map`: the entries it does not know,
//!   in decoded (canonical) order, re-emitted verbatim and covered by the signature (PROFILE
//!   G-26, SPEC-VII-B-04, SPEC-VII-B-05);
//! - structural rules are checked in `from_value`; checks that need context (time, keys,
//!   other objects) are methods taking that context explicitly;
//! - a map key that is not a text string, or a repeated key, is a schema violation (every MTP
//!   map is `{ * tstr => any }` at most, PROFILE G-26).

use std::collections::HashSet;
use std::fmt;

use crate::cbor::{self, DecodeError, EncodeError, Value};
use crate::crypto::{AlgorithmError, CryptoError, PublicKey, SignatureAlgorithm, SigningKey};
use crate::errors::{Coded, ErrorCode, split_code};
use crate::identity::{AnyDid, Did};
use crate::taxonomy::{Classifier, is_jurisdiction};
use crate::time::Timestamp;
use crate::uuid::{MtpUuid, ObjectType};

/// Unknown entries of an open map, in decoded order, re-emitted verbatim (PROFILE G-26).
pub type Map = Vec<(Value, Value)>;

/// Catalogue id used for generic schema conformance (BIND VII "conform to these schemas exactly").
pub const SCHEMA_REQ: &str = "BIND-VII-01";

// ---------------------------------------------------------------------------------------
// Validation errors
// ---------------------------------------------------------------------------------------

/// What is wrong with one field.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ValidationErrorKind {
    #[error("mandatory field missing")]
    Missing,
    #[error("expected {expected}, found {found}")]
    WrongType {
        expected: &'static str,
        found: &'static str,
    },
    #[error("invalid value: {0}")]
    Invalid(String),
    #[error("out of range: {0}")]
    OutOfRange(String),
}

/// One schema violation: where (`terms_template.price.unit`), which requirement, which code.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub struct ValidationError {
    /// Dotted path from the object root; array elements as `participants[1]`; `""` = root.
    pub path: String,
    /// Catalogue id (docs/requirements.yaml) of the broken requirement.
    pub requirement: &'static str,
    /// Registry code: 0103 Schema Violation unless a more specific one applies (0102 ids).
    pub code: ErrorCode,
    pub kind: ValidationErrorKind,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "<root>"
        } else {
            &self.path
        };
        write!(
            f,
            "{path}: {} ({}, error {})",
            self.kind, self.requirement, self.code
        )
    }
}

impl ValidationError {
    pub fn new(
        path: impl Into<String>,
        requirement: &'static str,
        kind: ValidationErrorKind,
    ) -> Self {
        ValidationError {
            path: path.into(),
            requirement,
            code: ErrorCode::SchemaViolation,
            kind,
        }
    }

    pub fn missing(path: impl Into<String>, requirement: &'static str) -> Self {
        Self::new(path, requirement, ValidationErrorKind::Missing)
    }

    pub fn wrong_type(
        path: impl Into<String>,
        requirement: &'static str,
        expected: &'static str,
        found: &Value,
    ) -> Self {
        Self::new(
            path,
            requirement,
            ValidationErrorKind::WrongType {
                expected,
                found: found.kind(),
            },
        )
    }

    pub fn invalid(
        path: impl Into<String>,
        requirement: &'static str,
        msg: impl Into<String>,
    ) -> Self {
        Self::new(path, requirement, ValidationErrorKind::Invalid(msg.into()))
    }

    pub fn out_of_range(
        path: impl Into<String>,
        requirement: &'static str,
        msg: impl Into<String>,
    ) -> Self {
        Self::new(
            path,
            requirement,
            ValidationErrorKind::OutOfRange(msg.into()),
        )
    }

    /// Replaces the registry code (default 0103).
    pub fn with_code(mut self, code: ErrorCode) -> Self {
        self.code = code;
        self
    }
}

impl Coded for ValidationError {
    fn code(&self) -> ErrorCode {
        self.code
    }
    fn requirement(&self) -> Option<&'static str> {
        Some(self.requirement)
    }
}

/// Accumulates validation errors so one pass reports every problem of an object.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Errors(pub Vec<ValidationError>);

impl Errors {
    pub fn new() -> Self {
        Errors(Vec::new())
    }

    pub fn push(&mut self, e: ValidationError) {
        self.0.push(e);
    }

    pub fn extend(&mut self, es: impl IntoIterator<Item = ValidationError>) {
        self.0.extend(es);
    }

    /// `Some(value)` on success; records the error and gives `None` otherwise.
    pub fn take<T>(&mut self, r: Result<T, ValidationError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(e);
                None
            }
        }
    }

    /// Like [`Errors::take`] for sub-readers that return several errors.
    pub fn take_all<T>(&mut self, r: Result<T, Vec<ValidationError>>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(es) => {
                self.0.extend(es);
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when nothing was recorded.
    pub fn finish(self) -> Result<(), Vec<ValidationError>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }

    /// The collected errors as an [`ObjectError`]. Never empty: when nothing was recorded
    /// (a reader gave `None` without an error — a bug) a root-level error stands in.
    pub fn into_object_error(self) -> ObjectError {
        ObjectError::Schema(self.into_vec())
    }

    /// The collected errors, never empty (see [`Errors::into_object_error`]).
    pub fn into_vec(self) -> Vec<ValidationError> {
        if self.0.is_empty() {
            vec![ValidationError::invalid(
                "",
                SCHEMA_REQ,
                "incomplete object",
            )]
        } else {
            self.0
        }
    }
}

// ---------------------------------------------------------------------------------------
// Object errors
// ---------------------------------------------------------------------------------------

/// Why a signature check failed (PROFILE G-02).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SignatureFailure {
    #[error("no signature present")]
    Missing,
    #[error("algorithm refused: {0}")]
    Algorithm(AlgorithmError),
    #[error("signature label {label} does not match the key's algorithm {key}")]
    AlgorithmMismatch { label: String, key: &'static str },
    #[error("{0} may not sign this object (PROFILE G-39: ML-DSA only)")]
    AlgorithmNotAllowed(&'static str),
    #[error("signature does not verify: {0}")]
    Crypto(CryptoError),
    #[error("no public key known for signer {agent}")]
    UnknownSigner { agent: String },
    #[error("{found} signatures for {expected} participants")]
    CountMismatch { expected: usize, found: usize },
    #[error("signature {index} is by {found}, expected participant {expected}")]
    SignerOrder {
        index: usize,
        expected: String,
        found: String,
    },
    #[error("the object has no deterministic encoding: {0}")]
    Encoding(EncodeError),
}

/// Why a protocol object is refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ObjectError {
    /// Strict deterministic decoding failed (BIND IV-A).
    #[error("CBOR: {0}")]
    Cbor(DecodeError),
    /// The value does not match the schema (every violation found, in field order).
    #[error("schema: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Schema(Vec<ValidationError>),
    /// A signature is missing, refused or invalid. `code` is 1100 for the primitives,
    /// 4100 for a Mandate, 2100 for a Manifest.
    #[error("signature at {path}: {reason} (error {code})")]
    Signature {
        path: String,
        reason: SignatureFailure,
        code: ErrorCode,
    },
}

impl ObjectError {
    /// Re-roots the schema errors of an object embedded at `prefix` (e.g. the Request in a
    /// NIM); any other failure becomes one error at `prefix` that keeps its own code
    /// (non-deterministic embedded bytes stay 0101).
    pub fn nested_under(self, prefix: &str, requirement: &'static str) -> Vec<ValidationError> {
        match self {
            ObjectError::Schema(es) => es
                .into_iter()
                .map(|mut e| {
                    e.path = if e.path.is_empty() {
                        prefix.to_owned()
                    } else {
                        join_path(prefix, &e.path)
                    };
                    e
                })
                .collect(),
            other => vec![
                ValidationError::invalid(prefix, requirement, format!("embedded object: {other}"))
                    .with_code(other.code()),
            ],
        }
    }

    /// The schema errors, if this is a schema failure.
    pub fn schema_errors(&self) -> &[ValidationError] {
        match self {
            ObjectError::Schema(es) => es,
            _ => &[],
        }
    }

    /// `true` when a schema error at exactly `path` cites `requirement`.
    pub fn has(&self, path: &str, requirement: &str) -> bool {
        self.schema_errors()
            .iter()
            .any(|e| e.path == path && e.requirement == requirement)
    }
}

impl From<Vec<ValidationError>> for ObjectError {
    fn from(es: Vec<ValidationError>) -> Self {
        ObjectError::Schema(es)
    }
}

impl From<ValidationError> for ObjectError {
    fn from(e: ValidationError) -> Self {
        ObjectError::Schema(vec![e])
    }
}

impl Coded for ObjectError {
    /// The CBOR error's code; for schema failures the most severe code (lowest severity
    /// digit, then first found); the signature code otherwise.
    fn code(&self) -> ErrorCode {
        match self {
            ObjectError::Cbor(e) => e.code(),
            ObjectError::Schema(es) => es
                .iter()
                .min_by_key(|e| e.code.severity())
                .map(|e| e.code)
                .unwrap_or(ErrorCode::SchemaViolation),
            ObjectError::Signature { code, .. } => *code,
        }
    }

    fn requirement(&self) -> Option<&'static str> {
        match self {
            ObjectError::Cbor(e) => e.requirement(),
            ObjectError::Schema(es) => {
                let c = self.code();
                es.iter().find(|e| e.code == c).map(|e| e.requirement)
            }
            ObjectError::Signature { reason, .. } => match reason {
                SignatureFailure::Algorithm(a) => a.requirement().or(Some("BIND-VI-A-01")),
                _ => Some("BIND-VII-A-06"),
            },
        }
    }
}

// ---------------------------------------------------------------------------------------
// Map reading and building
// ---------------------------------------------------------------------------------------

/// Joins a parent path and a key: `("terms_template", "price")` → `terms_template.price`.
pub fn join_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// `participants` + 1 → `participants[1]`.
pub fn index_path(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// Reads the entries of one CBOR map by key, remembering which were consumed so that the
/// rest can be kept as unknown fields (PROFILE G-26).
#[derive(Debug)]
pub struct MapReader<'a> {
    entries: &'a [(Value, Value)],
    used: Vec<bool>,
    path: String,
}

impl<'a> MapReader<'a> {
    /// Fails unless `v` is a map whose keys are distinct text strings.
    pub fn new(v: &'a Value, path: &str) -> Result<Self, ValidationError> {
        let Value::Map(entries) = v else {
            return Err(ValidationError::wrong_type(path, SCHEMA_REQ, "map", v));
        };
        check_text_keys(entries, path)?;
        Ok(MapReader {
            entries,
            used: vec![false; entries.len()],
            path: path.to_owned(),
        })
    }

    /// The path of this map.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `path.key`.
    pub fn child_path(&self, key: &str) -> String {
        join_path(&self.path, key)
    }

    fn find(&mut self, key: &str) -> Option<&'a Value> {
        let entries = self.entries;
        let i = entries.iter().position(|(k, _)| k.as_text() == Some(key))?;
        if let Some(u) = self.used.get_mut(i) {
            *u = true;
        }
        entries.get(i).map(|(_, v)| v)
    }

    /// A mandatory field; `Missing` (citing `requirement`) when absent.
    pub fn required(
        &mut self,
        key: &str,
        requirement: &'static str,
    ) -> Result<&'a Value, ValidationError> {
        self.find(key)
            .ok_or_else(|| ValidationError::missing(self.child_path(key), requirement))
    }

    /// An optional field.
    pub fn optional(&mut self, key: &str) -> Option<&'a Value> {
        self.find(key)
    }

    /// A mandatory field read with `f(value, path)`; errors go to `errs`.
    pub fn field<T>(
        &mut self,
        key: &str,
        req: &'static str,
        errs: &mut Errors,
        f: impl FnOnce(&'a Value, &str) -> Result<T, ValidationError>,
    ) -> Option<T> {
        let path = self.child_path(key);
        let v = errs.take(self.required(key, req))?;
        errs.take(f(v, &path))
    }

    /// An optional field read with `f(value, path)`; `None` when absent or invalid.
    pub fn field_opt<T>(
        &mut self,
        key: &str,
        errs: &mut Errors,
        f: impl FnOnce(&'a Value, &str) -> Result<T, ValidationError>,
    ) -> Option<T> {
        let path = self.child_path(key);
        let v = self.optional(key)?;
        errs.take(f(v, &path))
    }

    /// [`MapReader::field`] for readers reporting several errors.
    pub fn field_all<T>(
        &mut self,
        key: &str,
        req: &'static str,
        errs: &mut Errors,
        f: impl FnOnce(&'a Value, &str) -> Result<T, Vec<ValidationError>>,
    ) -> Option<T> {
        let path = self.child_path(key);
        let v = errs.take(self.required(key, req))?;
        errs.take_all(f(v, &path))
    }

    /// [`MapReader::field_opt`] for readers reporting several errors.
    pub fn field_opt_all<T>(
        &mut self,
        key: &str,
        errs: &mut Errors,
        f: impl FnOnce(&'a Value, &str) -> Result<T, Vec<ValidationError>>,
    ) -> Option<T> {
        let path = self.child_path(key);
        let v = self.optional(key)?;
        errs.take_all(f(v, &path))
    }

    /// `true` when `key` is present (without consuming it).
    pub fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| k.as_text() == Some(key))
    }

    /// Every entry not consumed, in order.
    pub fn unknown(self) -> Map {
        self.entries
            .iter()
            .zip(self.used.iter())
            .filter(|(_, used)| !**used)
            .map(|(e, _)| e.clone())
            .collect()
    }
}

/// Rejects maps with non-text or repeated keys.
fn check_text_keys(entries: &[(Value, Value)], path: &str) -> Result<(), ValidationError> {
    let mut seen = HashSet::with_capacity(entries.len());
    for (k, _) in entries {
        let Value::Text(t) = k else {
            return Err(ValidationError::invalid(
                path,
                SCHEMA_REQ,
                format!("map key is a {}, MTP map keys are text strings", k.kind()),
            ));
        };
        if !seen.insert(t.as_str()) {
            return Err(ValidationError::invalid(
                path,
                SCHEMA_REQ,
                format!("duplicate key {t:?}"),
            ));
        }
    }
    Ok(())
}

/// Builds a map value; entry order does not matter (the encoder sorts, BIND IV-A).
#[derive(Clone, Debug, Default)]
pub struct MapBuilder(Map);

impl MapBuilder {
    pub fn new() -> Self {
        MapBuilder(Vec::new())
    }

    pub fn put(mut self, key: &str, v: Value) -> Self {
        self.0.push((Value::text(key), v));
        self
    }

    pub fn put_opt(self, key: &str, v: Option<Value>) -> Self {
        match v {
            Some(v) => self.put(key, v),
            None => self,
        }
    }

    pub fn extend_unknown(mut self, unknown: &Map) -> Self {
        self.0.extend(unknown.iter().cloned());
        self
    }

    pub fn build(self) -> Value {
        Value::Map(self.0)
    }
}

// ---------------------------------------------------------------------------------------
// Typed readers and writers
// ---------------------------------------------------------------------------------------

pub fn read_text<'a>(
    v: &'a Value,
    path: &str,
    req: &'static str,
) -> Result<&'a str, ValidationError> {
    v.as_text()
        .ok_or_else(|| ValidationError::wrong_type(path, req, "text string", v))
}

pub fn read_uint(v: &Value, path: &str, req: &'static str) -> Result<u64, ValidationError> {
    match v {
        Value::Integer(i) => u64::try_from(*i).map_err(|_| {
            ValidationError::out_of_range(path, req, format!("{i} is not an unsigned integer"))
        }),
        _ => Err(ValidationError::wrong_type(
            path,
            req,
            "unsigned integer",
            v,
        )),
    }
}

pub fn read_bool(v: &Value, path: &str, req: &'static str) -> Result<bool, ValidationError> {
    v.as_bool()
        .ok_or_else(|| ValidationError::wrong_type(path, req, "bool", v))
}

pub fn read_bytes<'a>(
    v: &'a Value,
    path: &str,
    req: &'static str,
) -> Result<&'a [u8], ValidationError> {
    v.as_bytes()
        .ok_or_else(|| ValidationError::wrong_type(path, req, "byte string", v))
}

pub fn read_array<'a>(
    v: &'a Value,
    path: &str,
    req: &'static str,
) -> Result<&'a [Value], ValidationError> {
    v.as_array()
        .ok_or_else(|| ValidationError::wrong_type(path, req, "array", v))
}

/// `[* tstr]`.
pub fn read_text_array(
    v: &Value,
    path: &str,
    req: &'static str,
) -> Result<Vec<String>, Vec<ValidationError>> {
    let items = read_array(v, path, req).map_err(|e| vec![e])?;
    let mut errs = Errors::new();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        if let Some(s) = errs.take(read_text(item, &index_path(path, i), req)) {
            out.push(s.to_owned());
        }
    }
    errs.finish().map(|_| out)
}

/// `{ * tstr => any }`: an open map kept as entries (text keys, no duplicates).
pub fn read_open_map(v: &Value, path: &str, req: &'static str) -> Result<Map, ValidationError> {
    let Value::Map(entries) = v else {
        return Err(ValidationError::wrong_type(path, req, "map", v));
    };
    check_text_keys(entries, path).map_err(|e| ValidationError {
        requirement: req,
        ..e
    })?;
    Ok(entries.clone())
}

/// `tdate` = `#6.0(tstr)` in the one canonical spelling (PROFILE G-25, BIND-VII-A-05).
pub fn read_tdate(v: &Value, path: &str, req: &'static str) -> Result<Timestamp, ValidationError> {
    match v {
        Value::Tag(0, inner) => {
            let s = inner
                .as_text()
                .ok_or_else(|| ValidationError::wrong_type(path, req, "tag 0 text", inner))?;
            Timestamp::parse(s).map_err(|e| ValidationError::invalid(path, req, e.to_string()))
        }
        Value::Text(_) => Err(ValidationError::invalid(
            path,
            req,
            "tdate without tag 0 (PROFILE G-25)",
        )),
        _ => Err(ValidationError::wrong_type(path, req, "tdate (tag 0)", v)),
    }
}

/// `#6.0(canonical text)`.
pub fn tdate_value(t: Timestamp) -> Value {
    Value::Tag(0, Box::new(Value::Text(t.to_rfc3339())))
}

/// `mtp-uuid` with the given type nibble; every failure is 0102 Malformed MTP-UUID.
pub fn read_uuid(
    v: &Value,
    path: &str,
    ty: ObjectType,
    req: &'static str,
) -> Result<MtpUuid, ValidationError> {
    let id = MtpUuid::from_value(v).map_err(|e| {
        ValidationError::invalid(path, e.requirement().unwrap_or(req), e.to_string())
            .with_code(ErrorCode::MalformedUuid)
    })?;
    id.expect_type(ty).map_err(|e| {
        ValidationError::invalid(path, req, e.to_string()).with_code(ErrorCode::MalformedUuid)
    })?;
    Ok(id)
}

pub fn uuid_value(id: &MtpUuid) -> Value {
    id.to_value()
}

/// A `did:mtp` agent identifier (PROFILE G-05).
pub fn read_did(v: &Value, path: &str, req: &'static str) -> Result<Did, ValidationError> {
    let s = read_text(v, path, req)?;
    Did::parse(s).map_err(|e| ValidationError::invalid(path, req, e.to_string()))
}

/// Any DID (principals, PROFILE G-05).
pub fn read_any_did(v: &Value, path: &str, req: &'static str) -> Result<AnyDid, ValidationError> {
    let s = read_text(v, path, req)?;
    AnyDid::parse(s).map_err(|e| ValidationError::invalid(path, req, e.to_string()))
}

/// A value-type classifier (PROFILE G-07).
pub fn read_classifier(
    v: &Value,
    path: &str,
    req: &'static str,
) -> Result<Classifier, ValidationError> {
    let s = read_text(v, path, req)?;
    Classifier::parse(s).map_err(|e| ValidationError::invalid(path, req, e.to_string()))
}

/// A CDDL `number` (PROFILE G-13): integral values are CBOR integers (numeric reduction),
/// others finite floats.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Number {
    Int(i128),
    Float(f64),
}

impl Number {
    /// Numeric reduction of a float: integral → `Int`; `None` for NaN/±Inf or out of range.
    pub fn from_f64(f: f64) -> Option<Number> {
        if !f.is_finite() {
            return None;
        }
        if f.trunc() == f {
            // |f| < 2^64 fits a CBOR integer; −0.0 becomes 0.
            if f.abs() < 18_446_744_073_709_551_616.0 {
                return Some(Number::Int(f as i128));
            }
            return None;
        }
        Some(Number::Float(f))
    }

    pub fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }

    pub fn to_value(self) -> Value {
        match self {
            Number::Int(i) => Value::Integer(i),
            Number::Float(f) => match Number::from_f64(f) {
                Some(Number::Int(i)) => Value::Integer(i),
                _ => Value::Float(f),
            },
        }
    }
}

impl From<i64> for Number {
    fn from(i: i64) -> Number {
        Number::Int(i as i128)
    }
}

pub fn read_number(v: &Value, path: &str, req: &'static str) -> Result<Number, ValidationError> {
    match v {
        Value::Integer(i) => Ok(Number::Int(*i)),
        Value::Float(f) if !f.is_finite() => Err(ValidationError::out_of_range(
            path,
            req,
            "NaN and infinities are not MTP numbers (PROFILE G-13)",
        )),
        Value::Float(f) if f.trunc() == *f => Err(ValidationError::invalid(
            path,
            req,
            format!("{f} is integral: not numerically reduced (PROFILE G-13)"),
        )),
        Value::Float(f) => Ok(Number::Float(*f)),
        _ => Err(ValidationError::wrong_type(path, req, "number", v)),
    }
}

/// A CDDL `float32` (PROFILE G-13): a finite binary32 value (encoded f16 or f32 by the
/// deterministic encoder); −0.0, NaN, ±Inf and values needing binary64 are refused.
pub fn read_float32(v: &Value, path: &str, req: &'static str) -> Result<f32, ValidationError> {
    match v {
        Value::Float(f) => {
            if !f.is_finite() {
                return Err(ValidationError::out_of_range(
                    path,
                    req,
                    "NaN and infinities are refused (PROFILE G-13)",
                ));
            }
            let g = *f as f32;
            if g as f64 != *f {
                return Err(ValidationError::invalid(
                    path,
                    req,
                    format!("{f} is not a binary32 value (PROFILE G-13)"),
                ));
            }
            if g == 0.0 && g.is_sign_negative() {
                return Err(ValidationError::invalid(
                    path,
                    req,
                    "negative zero (PROFILE G-13)",
                ));
            }
            Ok(g)
        }
        _ => Err(ValidationError::wrong_type(path, req, "float32", v)),
    }
}

/// The value of a `float32` field (−0.0 written as 0.0).
pub fn float32_value(f: f32) -> Value {
    Value::Float(if f == 0.0 { 0.0 } else { f as f64 })
}

/// Rounds to the nearest binary32 (what a producer does before encoding, PROFILE G-13).
pub fn to_binary32(f: f64) -> f32 {
    f as f32
}

/// `jurisdiction` = ISO 3166-1 alpha-2 [+ ISO 3166-2 subdivision] (PROFILE G-24, G-46; shape only).
pub fn read_jurisdiction(
    v: &Value,
    path: &str,
    req: &'static str,
) -> Result<String, ValidationError> {
    let s = read_text(v, path, req)?;
    if is_jurisdiction(s) {
        Ok(s.to_owned())
    } else {
        Err(ValidationError::invalid(
            path,
            req,
            format!("{s:?} is not an ISO 3166 jurisdiction (PROFILE G-46)"),
        ))
    }
}

/// `[* jurisdiction]`.
pub fn read_jurisdictions(
    v: &Value,
    path: &str,
    req: &'static str,
) -> Result<Vec<String>, Vec<ValidationError>> {
    let items = read_array(v, path, req).map_err(|e| vec![e])?;
    let mut errs = Errors::new();
    let out: Vec<String> = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| errs.take(read_jurisdiction(item, &index_path(path, i), req)))
        .collect();
    errs.finish().map(|_| out)
}

/// `error-code = uint .le 7499` whose digits form a valid `LSCC` code (PROFILE G-15).
pub fn read_error_code(v: &Value, path: &str, req: &'static str) -> Result<u16, ValidationError> {
    let n = read_uint(v, path, req)?;
    u16::try_from(n)
        .ok()
        .filter(|c| split_code(*c).is_some())
        .ok_or_else(|| {
            ValidationError::invalid(
                path,
                req,
                format!("{n} is not an LSCC error code ≤ 7499 (PROFILE G-15)"),
            )
        })
}

pub fn text_array_value(items: &[String]) -> Value {
    Value::Array(items.iter().map(|s| Value::text(s.as_str())).collect())
}

// ---------------------------------------------------------------------------------------
// Signatures (PROFILE G-02)
// ---------------------------------------------------------------------------------------

/// `mtp-signature = { algorithm: sig-alg, ? key_id: tstr, value: bstr }` (PROFILE G-02).
/// The algorithm is kept as its wire label so that refused labels stay representable.
#[derive(Clone, Debug, PartialEq)]
pub struct Signature {
    pub algorithm: String,
    pub key_id: Option<String>,
    pub value: Vec<u8>,
    pub unknown: Map,
}

impl Signature {
    /// The algorithm, or why its label is refused (→ 1100, PROFILE G-02).
    pub fn algorithm(&self) -> Result<SignatureAlgorithm, AlgorithmError> {
        SignatureAlgorithm::from_label(&self.algorithm)
    }

    pub fn from_value(
        v: &Value,
        path: &str,
        req: &'static str,
    ) -> Result<Signature, Vec<ValidationError>> {
        let mut r = MapReader::new(v, path).map_err(|e| vec![e])?;
        let mut errs = Errors::new();
        let algorithm = errs.take(
            r.required("algorithm", req)
                .and_then(|v| read_text(v, &join_path(path, "algorithm"), req)),
        );
        let key_id = r
            .optional("key_id")
            .and_then(|v| errs.take(read_text(v, &join_path(path, "key_id"), req)));
        let value = errs.take(
            r.required("value", req)
                .and_then(|v| read_bytes(v, &join_path(path, "value"), req)),
        );
        let unknown = r.unknown();
        match (algorithm, value) {
            (Some(a), Some(val)) if errs.is_empty() => Ok(Signature {
                algorithm: a.to_owned(),
                key_id: key_id.map(str::to_owned),
                value: val.to_vec(),
                unknown,
            }),
            _ => Err(errs.into_vec()),
        }
    }

    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("algorithm", Value::text(self.algorithm.as_str()))
            .put_opt("key_id", self.key_id.as_deref().map(Value::text))
            .put("value", Value::Bytes(self.value.clone()))
            .extend_unknown(&self.unknown)
            .build()
    }
}

/// `agent-signature = { agent: did-string, algorithm, ? key_id, value }` (PROFILE G-02).
/// `agent` is kept as text so a signature by a non-participant is representable.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentSignature {
    pub agent: String,
    pub algorithm: String,
    pub key_id: Option<String>,
    pub value: Vec<u8>,
    pub unknown: Map,
}

impl AgentSignature {
    pub fn algorithm(&self) -> Result<SignatureAlgorithm, AlgorithmError> {
        SignatureAlgorithm::from_label(&self.algorithm)
    }

    pub fn from_value(
        v: &Value,
        path: &str,
        req: &'static str,
    ) -> Result<AgentSignature, Vec<ValidationError>> {
        let mut r = MapReader::new(v, path).map_err(|e| vec![e])?;
        let mut errs = Errors::new();
        let agent = errs.take(
            r.required("agent", req)
                .and_then(|v| read_text(v, &join_path(path, "agent"), req)),
        );
        let algorithm = errs.take(
            r.required("algorithm", req)
                .and_then(|v| read_text(v, &join_path(path, "algorithm"), req)),
        );
        let key_id = r
            .optional("key_id")
            .and_then(|v| errs.take(read_text(v, &join_path(path, "key_id"), req)));
        let value = errs.take(
            r.required("value", req)
                .and_then(|v| read_bytes(v, &join_path(path, "value"), req)),
        );
        let unknown = r.unknown();
        match (agent, algorithm, value) {
            (Some(ag), Some(a), Some(val)) if errs.is_empty() => Ok(AgentSignature {
                agent: ag.to_owned(),
                algorithm: a.to_owned(),
                key_id: key_id.map(str::to_owned),
                value: val.to_vec(),
                unknown,
            }),
            _ => Err(errs.into_vec()),
        }
    }

    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("agent", Value::text(self.agent.as_str()))
            .put("algorithm", Value::text(self.algorithm.as_str()))
            .put_opt("key_id", self.key_id.as_deref().map(Value::text))
            .put("value", Value::Bytes(self.value.clone()))
            .extend_unknown(&self.unknown)
            .build()
    }
}

/// `[* agent-signature]` with at least `min` entries.
pub fn read_agent_signatures(
    v: &Value,
    path: &str,
    min: usize,
    req: &'static str,
) -> Result<Vec<AgentSignature>, Vec<ValidationError>> {
    let items = read_array(v, path, req).map_err(|e| vec![e])?;
    let mut errs = Errors::new();
    if items.len() < min {
        errs.push(ValidationError::out_of_range(
            path,
            req,
            format!("{} signatures, at least {min} required", items.len()),
        ));
    }
    let out: Vec<AgentSignature> = items
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            errs.take_all(AgentSignature::from_value(s, &index_path(path, i), req))
        })
        .collect();
    errs.finish().map(|_| out)
}

// ---------------------------------------------------------------------------------------
// Prices (PROFILE G-03, G-45)
// ---------------------------------------------------------------------------------------

/// ISO 4217 List One active alphabetic codes (including codes in a published transition
/// period; `XTS` testing and `XXX` no-currency excluded).
const ISO_4217: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD",
    "CAD", "CDF", "CHE", "CHF", "CHW", "CLF", "CLP", "CNY", "COP", "COU", "CRC", "CUP", "CVE",
    "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL",
    "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR",
    "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD",
    "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK",
    "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN", "NIO",
    "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON",
    "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD",
    "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD",
    "TZS", "UAH", "UGX", "USD", "USN", "UYI", "UYU", "UYW", "UZS", "VED", "VES", "VND", "VUV",
    "WST", "XAF", "XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XCD", "XCG", "XDR", "XOF", "XPD",
    "XPF", "XPT", "XSU", "XUA", "YER", "ZAR", "ZMW", "ZWG", "ZWL",
];

/// `price-unit` (BIND-VII-C-03; PROFILE G-03, G-45).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PriceUnit {
    /// ISO 4217 alphabetic code, uppercase, in the active list.
    Iso4217(String),
    /// `"MTP_COMPUTE_CREDIT"` (6 decimals, PROFILE G-44).
    ComputeCredit,
    /// `"RECIPROCAL"` (PROFILE G-45).
    Reciprocal,
    /// Custom unit: contains a colon, e.g. `ext:data-access:grant` (PROFILE G-45).
    Custom(String),
}

impl PriceUnit {
    pub fn parse(s: &str) -> Result<PriceUnit, String> {
        match s {
            "MTP_COMPUTE_CREDIT" => return Ok(PriceUnit::ComputeCredit),
            "RECIPROCAL" => return Ok(PriceUnit::Reciprocal),
            _ => {}
        }
        if ISO_4217.contains(&s) {
            return Ok(PriceUnit::Iso4217(s.to_owned()));
        }
        if s.contains(':')
            && !s.starts_with(':')
            && !s.ends_with(':')
            && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Ok(PriceUnit::Custom(s.to_owned()));
        }
        Err(format!(
            "{s:?} is not a price unit (ISO 4217 code, MTP_COMPUTE_CREDIT, RECIPROCAL or a custom unit with a colon)"
        ))
    }

    pub fn as_str(&self) -> &str {
        match self {
            PriceUnit::Iso4217(s) | PriceUnit::Custom(s) => s,
            PriceUnit::ComputeCredit => "MTP_COMPUTE_CREDIT",
            PriceUnit::Reciprocal => "RECIPROCAL",
        }
    }
}

impl fmt::Display for PriceUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub const PRICE_UNIT_REQ: &str = "BIND-VII-C-03";

pub fn read_price_unit(v: &Value, path: &str) -> Result<PriceUnit, ValidationError> {
    let s = read_text(v, path, PRICE_UNIT_REQ)?;
    PriceUnit::parse(s).map_err(|m| ValidationError::invalid(path, PRICE_UNIT_REQ, m))
}

/// `price-spec = { amount: number, unit: price-unit }` (PROFILE G-03).
#[derive(Clone, Debug, PartialEq)]
pub struct PriceSpec {
    pub amount: Number,
    pub unit: PriceUnit,
    pub unknown: Map,
}

impl PriceSpec {
    pub fn new(amount: Number, unit: PriceUnit) -> PriceSpec {
        PriceSpec {
            amount,
            unit,
            unknown: Map::new(),
        }
    }

    /// `req` is cited for a missing field; the unit always cites BIND-VII-C-03.
    pub fn from_value(
        v: &Value,
        path: &str,
        req: &'static str,
    ) -> Result<PriceSpec, Vec<ValidationError>> {
        let mut r = MapReader::new(v, path).map_err(|e| vec![e])?;
        let mut errs = Errors::new();
        let amount = errs.take(
            r.required("amount", req)
                .and_then(|v| read_number(v, &join_path(path, "amount"), req)),
        );
        let unit = errs.take(
            r.required("unit", PRICE_UNIT_REQ)
                .and_then(|v| read_price_unit(v, &join_path(path, "unit"))),
        );
        let unknown = r.unknown();
        match (amount, unit) {
            (Some(amount), Some(unit)) if errs.is_empty() => Ok(PriceSpec {
                amount,
                unit,
                unknown,
            }),
            _ => Err(errs.into_vec()),
        }
    }

    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("amount", self.amount.to_value())
            .put("unit", Value::text(self.unit.as_str()))
            .extend_unknown(&self.unknown)
            .build()
    }
}

// ---------------------------------------------------------------------------------------
// Participants (PROFILE G-04)
// ---------------------------------------------------------------------------------------

/// Participant role (BIND-VII-C-02).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Provider,
    Requester,
    Contributor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Provider => "provider",
            Role::Requester => "requester",
            Role::Contributor => "contributor",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "provider" => Some(Role::Provider),
            "requester" => Some(Role::Requester),
            "contributor" => Some(Role::Contributor),
            _ => None,
        }
    }
}

pub const PARTICIPANTS_REQ: &str = "BIND-VII-C-02";

/// `participant-entry = { agent_id: did-string, role }` (PROFILE G-04).
#[derive(Clone, Debug, PartialEq)]
pub struct Participant {
    pub agent_id: Did,
    pub role: Role,
    pub unknown: Map,
}

impl Participant {
    pub fn new(agent_id: Did, role: Role) -> Participant {
        Participant {
            agent_id,
            role,
            unknown: Map::new(),
        }
    }

    pub fn from_value(v: &Value, path: &str) -> Result<Participant, Vec<ValidationError>> {
        let req = PARTICIPANTS_REQ;
        let mut r = MapReader::new(v, path).map_err(|e| vec![e])?;
        let mut errs = Errors::new();
        let agent_id = errs.take(
            r.required("agent_id", req)
                .and_then(|v| read_did(v, &join_path(path, "agent_id"), req)),
        );
        let role = errs.take(r.required("role", req).and_then(|v| {
            let p = join_path(path, "role");
            let s = read_text(v, &p, req)?;
            Role::parse(s).ok_or_else(|| {
                ValidationError::invalid(
                    p,
                    req,
                    format!("role {s:?} is not provider, requester or contributor"),
                )
            })
        }));
        let unknown = r.unknown();
        match (agent_id, role) {
            (Some(agent_id), Some(role)) if errs.is_empty() => Ok(Participant {
                agent_id,
                role,
                unknown,
            }),
            _ => Err(errs.into_vec()),
        }
    }

    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("agent_id", Value::text(self.agent_id.as_str()))
            .put("role", Value::text(self.role.as_str()))
            .extend_unknown(&self.unknown)
            .build()
    }
}

/// `[2* participant-entry]` (BIND-VII-C-02).
pub fn read_participants(v: &Value, path: &str) -> Result<Vec<Participant>, Vec<ValidationError>> {
    let items = read_array(v, path, PARTICIPANTS_REQ).map_err(|e| vec![e])?;
    let mut errs = Errors::new();
    if items.len() < 2 {
        errs.push(ValidationError::out_of_range(
            path,
            PARTICIPANTS_REQ,
            format!("{} participants, at least 2 required", items.len()),
        ));
    }
    let out: Vec<Participant> = items
        .iter()
        .enumerate()
        .filter_map(|(i, p)| errs.take_all(Participant::from_value(p, &index_path(path, i))))
        .collect();
    errs.finish().map(|_| out)
}

pub fn participants_value(ps: &[Participant]) -> Value {
    Value::Array(ps.iter().map(Participant::to_value).collect())
}

// ---------------------------------------------------------------------------------------
// Object traits
// ---------------------------------------------------------------------------------------

/// A protocol object with a CBOR map form.
pub trait CborObject: Sized {
    /// CDDL rule name, e.g. `"mtp-offer"`.
    const NAME: &'static str;

    /// The map, unknown fields included (entry order irrelevant; the encoder sorts).
    fn to_value(&self) -> Value;

    /// Structural validation; collects every schema violation found.
    fn from_value(v: &Value) -> Result<Self, ObjectError>;

    /// Schema-directed JSON hints (PROFILE G-27), see [`super::json`].
    fn json_hints() -> &'static [super::json::Hint] {
        &[]
    }

    /// The deterministic encoding (BIND IV-A), or why there is none.
    fn try_to_cbor(&self) -> Result<Vec<u8>, EncodeError> {
        cbor::to_vec(&self.to_value())
    }

    /// The deterministic encoding (BIND IV-A).
    ///
    /// # Panics
    /// Only if a hand-built object holds a value without a CBOR encoding (an integer
    /// outside the CBOR range or a map with repeated keys inside an `any` field); objects
    /// returned by `from_value`/`from_cbor` always encode. Use [`CborObject::try_to_cbor`]
    /// for objects of unknown provenance.
    fn to_cbor(&self) -> Vec<u8> {
        match self.try_to_cbor() {
            Ok(b) => b,
            Err(e) => panic!("{} has no deterministic encoding: {e}", Self::NAME),
        }
    }

    /// Strict decoding (BIND IV-A) followed by [`CborObject::from_value`].
    fn from_cbor(bytes: &[u8]) -> Result<Self, ObjectError> {
        let v = cbor::from_slice(bytes).map_err(ObjectError::Cbor)?;
        Self::from_value(&v)
    }
}

/// Refuses a value that has no deterministic encoding (out-of-range integers, repeated
/// keys in nested `any` maps), so that every decoded object can be re-encoded.
pub fn check_encodable(v: &Value) -> Result<(), ObjectError> {
    cbor::to_vec(v).map(|_| ()).map_err(|e| {
        ValidationError::invalid("", SCHEMA_REQ, format!("no deterministic encoding: {e}")).into()
    })
}

/// A signed object: signing input = deterministic CBOR of the map without its
/// `SIGNATURE_FIELD` entry (PROFILE G-02; BIND-VII-A-06). Unknown fields are signed.
pub trait Signed: CborObject {
    /// `"signature"` or `"signatures"`.
    const SIGNATURE_FIELD: &'static str;
    /// Code of a failed check: 1100 primitives, 4100 Mandate, 2100 Manifest.
    const SIGNATURE_CODE: ErrorCode = ErrorCode::SignatureVerificationFailure;
    /// SLH-DSA may sign this object (PROFILE G-39: Mandates only; credentials are not
    /// `Signed` objects). Everything else is ML-DSA (SPEC VIII-A).
    const ALLOWS_SLH_DSA: bool = false;

    fn try_signing_input(&self) -> Result<Vec<u8>, EncodeError> {
        let v = match self.to_value() {
            Value::Map(entries) => Value::Map(
                entries
                    .into_iter()
                    .filter(|(k, _)| k.as_text() != Some(Self::SIGNATURE_FIELD))
                    .collect(),
            ),
            other => other,
        };
        cbor::to_vec(&v)
    }

    /// # Panics
    /// As [`CborObject::to_cbor`].
    fn signing_input(&self) -> Vec<u8> {
        match self.try_signing_input() {
            Ok(b) => b,
            Err(e) => panic!("{} has no deterministic encoding: {e}", Self::NAME),
        }
    }
}

fn signature_error<T: Signed>(path: impl Into<String>, reason: SignatureFailure) -> ObjectError {
    ObjectError::Signature {
        path: path.into(),
        reason,
        code: T::SIGNATURE_CODE,
    }
}

/// Checks one signature (label, key algorithm, value) over `msg`.
fn check_one<T: Signed>(
    path: String,
    label: &str,
    value: &[u8],
    msg: &[u8],
    public_key: &PublicKey,
) -> Result<(), ObjectError> {
    let alg = SignatureAlgorithm::from_label(label)
        .map_err(|e| signature_error::<T>(path.clone(), SignatureFailure::Algorithm(e)))?;
    if alg == SignatureAlgorithm::SlhDsaSha2_192s && !T::ALLOWS_SLH_DSA {
        return Err(signature_error::<T>(
            path,
            SignatureFailure::AlgorithmNotAllowed(alg.label()),
        ));
    }
    if alg != public_key.algorithm() {
        return Err(signature_error::<T>(
            path,
            SignatureFailure::AlgorithmMismatch {
                label: label.to_owned(),
                key: public_key.algorithm().label(),
            },
        ));
    }
    public_key
        .verify(msg, value)
        .map_err(|e| signature_error::<T>(path, SignatureFailure::Crypto(e)))
}

/// Implements [`Signed`] (field `signature`) and [`SingleSigned`] for structs whose
/// `signature` field is an `Option<Signature>`. `Type => CODE` overrides the code of a
/// signature failure (default 1100).
#[macro_export]
macro_rules! impl_single_signed {
    ($t:ty => $code:expr) => {
        impl $crate::primitives::common::Signed for $t {
            const SIGNATURE_FIELD: &'static str = "signature";
            const SIGNATURE_CODE: $crate::errors::ErrorCode = $code;
        }
        $crate::impl_single_signed!(@single $t);
    };
    ($($t:ty),+ $(,)?) => {$(
        impl $crate::primitives::common::Signed for $t {
            const SIGNATURE_FIELD: &'static str = "signature";
        }
        $crate::impl_single_signed!(@single $t);
    )+};
    (@single $t:ty) => {
        impl $crate::primitives::common::SingleSigned for $t {
            fn signature(&self) -> Option<&$crate::primitives::common::Signature> {
                self.signature.as_ref()
            }
            fn set_signature(&mut self, s: Option<$crate::primitives::common::Signature>) {
                self.signature = s;
            }
        }
    };
}

/// Objects with one `signature: mtp-signature` (Offer, Request, Receipt, error records, …).
pub trait SingleSigned: Signed {
    fn signature(&self) -> Option<&Signature>;
    fn set_signature(&mut self, s: Option<Signature>);

    /// Signs deterministically (FIPS 204 deterministic variant, empty context; PROFILE G-02)
    /// and stores the signature.
    fn sign(&mut self, key: &SigningKey, key_id: Option<String>) -> Result<(), ObjectError> {
        let msg = self.try_signing_input().map_err(|e| {
            signature_error::<Self>(Self::SIGNATURE_FIELD, SignatureFailure::Encoding(e))
        })?;
        let value = key.sign(&msg);
        self.set_signature(Some(Signature {
            algorithm: key.algorithm().label().to_owned(),
            key_id,
            value,
            unknown: Map::new(),
        }));
        Ok(())
    }

    /// Verifies the signature over [`Signed::signing_input`] with `public_key`: the label
    /// must be an MTP signature algorithm equal to the key's (PROFILE G-02, G-39).
    fn verify_signature(&self, public_key: &PublicKey) -> Result<(), ObjectError> {
        let sig = self.signature().ok_or_else(|| {
            signature_error::<Self>(Self::SIGNATURE_FIELD, SignatureFailure::Missing)
        })?;
        let msg = self.try_signing_input().map_err(|e| {
            signature_error::<Self>(Self::SIGNATURE_FIELD, SignatureFailure::Encoding(e))
        })?;
        check_one::<Self>(
            Self::SIGNATURE_FIELD.to_owned(),
            &sig.algorithm,
            &sig.value,
            &msg,
            public_key,
        )
    }
}

/// Objects with `signatures: [2* agent-signature]` in participants order (Terms, Mandate).
pub trait MultiSigned: Signed {
    /// The DIDs that must sign, in order.
    fn signer_dids(&self) -> Vec<&str>;
    fn signatures(&self) -> &[AgentSignature];
    fn signatures_mut(&mut self) -> &mut Vec<AgentSignature>;

    /// A deterministic signature by `agent` over the signing input, which leaves out every
    /// signature already present, so all participants sign the same bytes (PROFILE G-02).
    fn sign_as(
        &self,
        agent: &str,
        key: &SigningKey,
        key_id: Option<String>,
    ) -> Result<AgentSignature, ObjectError> {
        let msg = self.try_signing_input().map_err(|e| {
            signature_error::<Self>(Self::SIGNATURE_FIELD, SignatureFailure::Encoding(e))
        })?;
        Ok(AgentSignature {
            agent: agent.to_owned(),
            algorithm: key.algorithm().label().to_owned(),
            key_id,
            value: key.sign(&msg),
            unknown: Map::new(),
        })
    }

    /// Appends a deterministic signature by `agent` (callers add them in participants order).
    fn add_signature(
        &mut self,
        agent: &str,
        key: &SigningKey,
        key_id: Option<String>,
    ) -> Result<(), ObjectError> {
        let sig = self.sign_as(agent, key, key_id)?;
        self.signatures_mut().push(sig);
        Ok(())
    }

    /// One valid signature per signer, in signer order (PROFILE G-02; BIND-VII-C-05).
    /// `resolve(agent_did, key_id)` gives the signer's public key.
    fn verify_signatures(
        &self,
        resolve: impl Fn(&str, Option<&str>) -> Option<PublicKey>,
    ) -> Result<(), ObjectError> {
        let signers = self.signer_dids();
        let sigs = self.signatures();
        if signers.len() != sigs.len() {
            return Err(signature_error::<Self>(
                Self::SIGNATURE_FIELD,
                SignatureFailure::CountMismatch {
                    expected: signers.len(),
                    found: sigs.len(),
                },
            ));
        }
        let msg = self.try_signing_input().map_err(|e| {
            signature_error::<Self>(Self::SIGNATURE_FIELD, SignatureFailure::Encoding(e))
        })?;
        for (i, (signer, sig)) in signers.iter().zip(sigs).enumerate() {
            let path = index_path(Self::SIGNATURE_FIELD, i);
            if sig.agent != *signer {
                return Err(signature_error::<Self>(
                    path,
                    SignatureFailure::SignerOrder {
                        index: i,
                        expected: (*signer).to_owned(),
                        found: sig.agent.clone(),
                    },
                ));
            }
            let pk = resolve(&sig.agent, sig.key_id.as_deref()).ok_or_else(|| {
                signature_error::<Self>(
                    path.clone(),
                    SignatureFailure::UnknownSigner {
                        agent: sig.agent.clone(),
                    },
                )
            })?;
            check_one::<Self>(path, &sig.algorithm, &sig.value, &msg, &pk)?;
        }
        Ok(())
    }
}

/// Reads an optional `signature: mtp-signature`; `Missing` citing `req` when absent.
pub fn read_signature_field(
    r: &mut MapReader<'_>,
    req: &'static str,
    errs: &mut Errors,
) -> Option<Signature> {
    let path = r.child_path("signature");
    let v = errs.take(r.required("signature", req))?;
    errs.take_all(Signature::from_value(v, &path, req))
}
