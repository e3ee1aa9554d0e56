//! Schema-directed JSON conversion of protocol objects (BIND IV-C; PROFILE G-27).
//!
//! RFC 8949 §6 alone cannot round-trip an MTP object: it turns an `mtp-uuid` into base64url
//! (BIND IX wants the 67-character text), cannot tell a JSON string back into a byte string
//! or a tag-0 date, and does not know that `0.92` must become a binary32 value. So each
//! object type lists *hints*: which paths hold a uuid, a byte string, a `tdate`, a
//! `float32`, a `float` or a `number`. Everything without a hint (unknown fields, open maps)
//! goes through the generic converter [`crate::cbor::json`].
//!
//! | CDDL type | JSON |
//! |---|---|
//! | `mtp-uuid` ([`Kind::Uuid`]) | 67-char lowercase hex text |
//! | other `bstr` ([`Kind::Bytes`]) | base64url, no padding |
//! | `tdate` ([`Kind::Tdate`]) | string; tag 0 restored on import |
//! | `float32` ([`Kind::Float32`]) | number, rounded to binary32 on import |
//! | `float` ([`Kind::Float`]) | number, kept a float on import |
//! | `number` ([`Kind::Number`]) | number, numeric reduction on import |
//!
//! **JSON is never signed** (BIND-IV-C-02): [`from_json`] converts to a CBOR value, encodes
//! it deterministically and decodes that strictly before the object exists, so signature
//! checks always run over deterministic CBOR (BIND-IV-C-03; CBOR is authoritative,
//! BIND-IV-C-I01). A byte string or tag inside an *unknown* field has no hint and comes
//! back as text, so such an object's signature does not survive a JSON round trip.
//!
//! ## Adding hints for another object type
//! Implement [`CborObject::json_hints`] returning a `&'static [Hint]`. Paths are dotted map
//! keys from the object root; `[]` after a key means "every element of this array", `*`
//! matches any map key: `"signatures[].value"`, `"negotiation_log[].signature.value"`,
//! `"coalition_values.*"`. The same paths can be used with [`value_to_json`] /
//! [`value_from_json`] for values that are not `CborObject`s.

use base64::Engine as _;
use serde_json::Value as Json;

use super::common::{CborObject, ObjectError, ValidationError};
use crate::cbor::json::JsonError;
use crate::cbor::{self, MAX_DEPTH, Value};
use crate::errors::ErrorCode;
use crate::uuid::MtpUuid;

/// How a field at a path is represented in JSON (PROFILE G-27).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `mtp-uuid` ↔ 67-character lowercase hex text.
    Uuid,
    /// Other `bstr` ↔ base64url without padding.
    Bytes,
    /// `tdate` ↔ JSON string; tag 0 restored on import.
    Tdate,
    /// `tdate / duration`: a string that parses as a canonical `tdate` gets tag 0 on
    /// import, any other string stays text.
    TdateOrText,
    /// `float32` ↔ JSON number, rounded to binary32 on import.
    Float32,
    /// `float` ↔ JSON number, imported as a float even when integral.
    Float,
    /// `number` ↔ JSON number with numeric reduction.
    Number,
}

/// A path pattern and the representation of the value found there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hint {
    pub path: &'static str,
    pub kind: Kind,
}

/// One step of a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seg<'a> {
    Key(&'a str),
    Index,
}

fn pattern(path: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut key = part;
        let mut indices = 0;
        while let Some(k) = key.strip_suffix("[]") {
            key = k;
            indices += 1;
        }
        if !key.is_empty() {
            out.push(Seg::Key(key));
        }
        out.extend(std::iter::repeat_n(Seg::Index, indices));
    }
    out
}

fn seg_matches(pat: Seg<'_>, at: Seg<'_>) -> bool {
    match (pat, at) {
        (Seg::Index, Seg::Index) => true,
        (Seg::Key("*"), Seg::Key(_)) => true,
        (Seg::Key(p), Seg::Key(a)) => p == a,
        _ => false,
    }
}

/// The hint for exactly `at`, if any.
fn hint_at(hints: &[Hint], at: &[Seg<'_>]) -> Option<Kind> {
    hints.iter().find_map(|h| {
        let p = pattern(h.path);
        (p.len() == at.len() && p.iter().zip(at).all(|(p, a)| seg_matches(*p, *a)))
            .then_some(h.kind)
    })
}

/// `true` when some hint lies strictly below `at`.
fn hints_below(hints: &[Hint], at: &[Seg<'_>]) -> bool {
    hints.iter().any(|h| {
        let p = pattern(h.path);
        p.len() > at.len() && p.iter().zip(at).all(|(p, a)| seg_matches(*p, *a))
    })
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

/// CBOR value → JSON, directed by `hints`.
pub fn value_to_json(v: &Value, hints: &[Hint]) -> Result<Json, JsonError> {
    let mut at = Vec::new();
    to_json_at(v, hints, &mut at)
}

fn to_json_at<'a>(v: &'a Value, hints: &[Hint], at: &mut Vec<Seg<'a>>) -> Result<Json, JsonError> {
    if at.len() > MAX_DEPTH {
        return Err(JsonError::DepthExceeded);
    }
    if let Some(kind) = hint_at(hints, at) {
        match (kind, v) {
            (Kind::Uuid, Value::Bytes(b)) => {
                if let Ok(id) = MtpUuid::from_bytes(b) {
                    return Ok(Json::String(id.to_string()));
                }
            }
            (Kind::Bytes, Value::Bytes(b)) => return Ok(Json::String(b64().encode(b))),
            (Kind::Tdate | Kind::TdateOrText, Value::Tag(0, inner)) => {
                if let Value::Text(s) = &**inner {
                    return Ok(Json::String(s.clone()));
                }
            }
            _ => {}
        }
        return cbor::json::to_json(v);
    }
    if !hints_below(hints, at) {
        return cbor::json::to_json(v);
    }
    match v {
        Value::Map(entries) if entries.iter().all(|(k, _)| matches!(k, Value::Text(_))) => {
            let mut obj = serde_json::Map::with_capacity(entries.len());
            for (k, val) in entries {
                let Value::Text(key) = k else { continue };
                at.push(Seg::Key(key));
                let j = to_json_at(val, hints, at);
                at.pop();
                if obj.insert(key.clone(), j?).is_some() {
                    return Err(JsonError::DuplicateKey(key.clone()));
                }
            }
            Ok(Json::Object(obj))
        }
        Value::Array(items) => {
            at.push(Seg::Index);
            let out: Result<Vec<Json>, JsonError> =
                items.iter().map(|i| to_json_at(i, hints, at)).collect();
            at.pop();
            out.map(Json::Array)
        }
        _ => cbor::json::to_json(v),
    }
}

fn path_text(at: &[Seg<'_>]) -> String {
    let mut s = String::new();
    for seg in at {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index => s.push_str("[]"),
        }
    }
    s
}

/// JSON → CBOR value, directed by `hints`. A JSON value of the wrong JSON type for its
/// hint is converted generically (the object's schema check then reports it).
pub fn value_from_json(j: &Json, hints: &[Hint]) -> Result<Value, Vec<ValidationError>> {
    let mut at = Vec::new();
    from_json_at(j, hints, &mut at)
}

fn generic(j: &Json, at: &[Seg<'_>]) -> Result<Value, Vec<ValidationError>> {
    cbor::json::from_json(j).map_err(|e| {
        vec![ValidationError::invalid(
            path_text(at),
            "BIND-IV-C-01",
            e.to_string(),
        )]
    })
}

fn from_json_at<'a>(
    j: &'a Json,
    hints: &[Hint],
    at: &mut Vec<Seg<'a>>,
) -> Result<Value, Vec<ValidationError>> {
    if at.len() > MAX_DEPTH {
        return Err(vec![ValidationError::invalid(
            path_text(at),
            "BIND-IV-C-01",
            "nesting too deep",
        )]);
    }
    if let Some(kind) = hint_at(hints, at) {
        match (kind, j) {
            (Kind::Uuid, Json::String(s)) => {
                return MtpUuid::parse(s).map(|id| id.to_value()).map_err(|e| {
                    vec![
                        ValidationError::invalid(path_text(at), "SPEC-IX-03", e.to_string())
                            .with_code(ErrorCode::MalformedUuid),
                    ]
                });
            }
            (Kind::Bytes, Json::String(s)) => {
                return b64().decode(s).map(Value::Bytes).map_err(|e| {
                    vec![ValidationError::invalid(
                        path_text(at),
                        "BIND-IV-C-01",
                        format!("not base64url: {e}"),
                    )]
                });
            }
            (Kind::Tdate, Json::String(s)) => {
                return Ok(Value::Tag(0, Box::new(Value::Text(s.clone()))));
            }
            (Kind::TdateOrText, Json::String(s)) => {
                return Ok(if crate::time::Timestamp::parse(s).is_ok() {
                    Value::Tag(0, Box::new(Value::Text(s.clone())))
                } else {
                    Value::Text(s.clone())
                });
            }
            (Kind::Float32, Json::Number(n)) => {
                if let Some(f) = n.as_f64() {
                    let g = f as f32;
                    return Ok(Value::Float(if g == 0.0 { 0.0 } else { g as f64 }));
                }
            }
            (Kind::Float, Json::Number(n)) => {
                if let Some(f) = n.as_f64() {
                    return Ok(Value::Float(if f == 0.0 { 0.0 } else { f }));
                }
            }
            _ => {}
        }
        return generic(j, at);
    }
    if !hints_below(hints, at) {
        return generic(j, at);
    }
    match j {
        Json::Object(obj) => {
            let mut entries = Vec::with_capacity(obj.len());
            let mut errs = Vec::new();
            for (k, val) in obj {
                at.push(Seg::Key(k));
                match from_json_at(val, hints, at) {
                    Ok(v) => entries.push((Value::Text(k.clone()), v)),
                    Err(e) => errs.extend(e),
                }
                at.pop();
            }
            if errs.is_empty() {
                Ok(Value::Map(entries))
            } else {
                Err(errs)
            }
        }
        Json::Array(items) => {
            at.push(Seg::Index);
            let mut out = Vec::with_capacity(items.len());
            let mut errs = Vec::new();
            for i in items {
                match from_json_at(i, hints, at) {
                    Ok(v) => out.push(v),
                    Err(e) => errs.extend(e),
                }
            }
            at.pop();
            if errs.is_empty() {
                Ok(Value::Array(out))
            } else {
                Err(errs)
            }
        }
        _ => generic(j, at),
    }
}

/// Schema-directed JSON hints (PROFILE G-27): `own` plus the hints of embedded objects
/// re-rooted under their prefix (for `CborObject::json_hints` of objects that embed
/// others). Each call leaks its prefixed paths into `'static`: call it only inside a
/// per-type `OnceLock` initialiser, so the leak is bounded by the number of types.
pub fn compose_hints(own: &[Hint], nested: &[(&str, &[Hint])]) -> Vec<Hint> {
    let mut out = own.to_vec();
    for (prefix, hints) in nested {
        for h in hints.iter() {
            let path: &'static str = Box::leak(format!("{prefix}.{}", h.path).into_boxed_str());
            out.push(Hint { path, kind: h.kind });
        }
    }
    out
}

/// The JSON form of a protocol object (PROFILE G-27). Fails only for unknown fields the
/// generic converter refuses (nesting deeper than [`MAX_DEPTH`]).
pub fn to_json<T: CborObject>(obj: &T) -> Result<Json, JsonError> {
    value_to_json(&obj.to_value(), T::json_hints())
}

/// A protocol object from its JSON form: schema-directed conversion, deterministic CBOR
/// encoding, strict decoding (BIND-IV-C-03), then the object's schema checks.
pub fn from_json<T: CborObject>(j: &Json) -> Result<T, ObjectError> {
    let v = value_from_json(j, T::json_hints()).map_err(ObjectError::Schema)?;
    let bytes = cbor::to_vec(&v).map_err(|e| {
        ObjectError::Schema(vec![ValidationError::invalid(
            "",
            "BIND-IV-C-03",
            format!("no deterministic encoding: {e}"),
        )])
    })?;
    T::from_cbor(&bytes)
}
