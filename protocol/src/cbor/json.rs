//! Generic CBOR ↔ JSON conversion (RFC 8949 §6; BIND-IV-C-01). The schema-directed
//! conversion of protocol objects (PROFILE G-27) lives in the objects layer.
//!
//! JSON is never signed (BIND-IV-C-02): an object received as JSON is converted to its
//! deterministic CBOR, `cbor::to_vec(&from_json(&json)?)`, before any signature check or
//! storage (BIND-IV-C-03), and the CBOR form is authoritative (BIND-IV-C-I01).
//!
//! CBOR → JSON ([`to_json`], §6.1):
//! - integers → JSON numbers (outside the i64/u64 range: the nearest f64);
//! - byte strings → base64url without padding, unless inside tag 21 (base64url), 22
//!   (base64, padded) or 23 (base16) which set the encoding for nested byte strings;
//! - bignums (tag 2/3 over a byte string) → base64url string, tag 3 prefixed with `~`;
//! - every other tag (0, 1, ...) → its content, the tag number dropped;
//! - finite floats → numbers; NaN and ±Infinity → `null`; `undefined` and other simple
//!   values → `null` (the substitute value);
//! - maps → objects. Decision: a non-text key becomes its diagnostic notation
//!   ([`super::diag::value_to_diag`], e.g. `1`, `h'01'`); if two keys end up as the same
//!   JSON name the conversion fails with [`JsonError::DuplicateKey`].
//!
//! JSON → CBOR ([`from_json`], §6.2): integers → CBOR integers; non-integral numbers →
//! floats (shortest exact width when encoded); integral numbers written as floats (`89.0`,
//! `-0.0`, `1e3`) → CBOR integers (numeric reduction, PROFILE G-13) when in the CBOR
//! integer range; objects → maps with text keys in the given order.

use base64::Engine as _;
use serde_json::{Map, Number, Value as Json};

use super::{INT_MAX, INT_MIN, MAX_DEPTH, Value};
use crate::errors::{Coded, ErrorCode};

/// Why a JSON conversion failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum JsonError {
    /// Two CBOR map keys convert to the same JSON member name.
    #[error("map key {0:?} occurs twice after conversion to JSON")]
    DuplicateKey(String),
    #[error("nesting deeper than {MAX_DEPTH}")]
    DepthExceeded,
}

impl Coded for JsonError {
    fn code(&self) -> ErrorCode {
        ErrorCode::TransientSerializationFailure
    }
    fn requirement(&self) -> Option<&'static str> {
        Some("BIND-IV-C-01")
    }
}

#[derive(Clone, Copy)]
enum BytesAs {
    Base64Url,
    Base64,
    Base16,
}

/// RFC 8949 §6.1 CBOR → JSON.
pub fn to_json(value: &Value) -> Result<Json, JsonError> {
    to_json_at(value, BytesAs::Base64Url, 0)
}

fn bytes_json(b: &[u8], how: BytesAs) -> String {
    match how {
        BytesAs::Base64Url => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b),
        BytesAs::Base64 => base64::engine::general_purpose::STANDARD.encode(b),
        BytesAs::Base16 => hex::encode(b),
    }
}

fn to_json_at(value: &Value, how: BytesAs, depth: usize) -> Result<Json, JsonError> {
    if depth > MAX_DEPTH {
        return Err(JsonError::DepthExceeded);
    }
    Ok(match value {
        Value::Integer(i) => {
            if let Ok(u) = u64::try_from(*i) {
                Json::Number(Number::from(u))
            } else if let Ok(s) = i64::try_from(*i) {
                Json::Number(Number::from(s))
            } else {
                Number::from_f64(*i as f64).map_or(Json::Null, Json::Number)
            }
        }
        Value::Bytes(b) => Json::String(bytes_json(b, how)),
        Value::Text(s) => Json::String(s.clone()),
        Value::Array(items) => Json::Array(
            items
                .iter()
                .map(|i| to_json_at(i, how, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Value::Map(entries) => {
            let mut obj = Map::new();
            for (k, v) in entries {
                let name = match k {
                    Value::Text(s) => s.clone(),
                    other => super::diag::value_to_diag(other),
                };
                if obj.contains_key(&name) {
                    return Err(JsonError::DuplicateKey(name));
                }
                let v = to_json_at(v, how, depth + 1)?;
                obj.insert(name, v);
            }
            Json::Object(obj)
        }
        Value::Tag(t @ (2 | 3), inner) if matches!(**inner, Value::Bytes(_)) => {
            let b = inner.as_bytes().unwrap_or_default();
            let s = bytes_json(b, BytesAs::Base64Url);
            Json::String(if *t == 3 { format!("~{s}") } else { s })
        }
        Value::Tag(21, inner) => to_json_at(inner, BytesAs::Base64Url, depth + 1)?,
        Value::Tag(22, inner) => to_json_at(inner, BytesAs::Base64, depth + 1)?,
        Value::Tag(23, inner) => to_json_at(inner, BytesAs::Base16, depth + 1)?,
        Value::Tag(_, inner) => to_json_at(inner, how, depth + 1)?,
        Value::Bool(b) => Json::Bool(*b),
        Value::Null | Value::Undefined | Value::Simple(_) => Json::Null,
        Value::Float(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
    })
}

/// RFC 8949 §6.2 JSON → CBOR, with numeric reduction of integral floats (PROFILE G-13).
pub fn from_json(json: &Json) -> Result<Value, JsonError> {
    from_json_at(json, 0)
}

fn from_json_at(json: &Json, depth: usize) -> Result<Value, JsonError> {
    if depth > MAX_DEPTH {
        return Err(JsonError::DepthExceeded);
    }
    Ok(match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => number(n),
        Json::String(s) => Value::Text(s.clone()),
        Json::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| from_json_at(i, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(obj) => Value::Map(
            obj.iter()
                .map(|(k, v)| Ok((Value::Text(k.clone()), from_json_at(v, depth + 1)?)))
                .collect::<Result<_, JsonError>>()?,
        ),
    })
}

fn number(n: &Number) -> Value {
    if let Some(u) = n.as_u64() {
        return Value::Integer(i128::from(u));
    }
    if let Some(i) = n.as_i64() {
        return Value::Integer(i128::from(i));
    }
    let f = n.as_f64().unwrap_or(f64::NAN);
    // Numeric reduction: |f| < 2^65 here, so the cast is exact.
    if f.is_finite() && f.fract() == 0.0 && f.abs() <= 18446744073709551616.0 {
        let i = f as i128;
        if (INT_MIN..=INT_MAX).contains(&i) {
            return Value::Integer(i);
        }
    }
    Value::Float(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cbor_to_json() {
        let v = Value::map([
            ("b", Value::bytes(vec![0xfb, 0xff])),
            ("n", Value::Float(f64::NAN)),
            (
                "t",
                Value::Tag(0, Box::new(Value::text("2013-03-21T20:04:00Z"))),
            ),
            ("e", Value::Tag(1, Box::new(Value::Integer(1363896240)))),
            (
                "big",
                Value::Tag(3, Box::new(Value::bytes(vec![1, 0, 0, 0, 0, 0, 0, 0, 0]))),
            ),
            (
                "h",
                Value::Tag(23, Box::new(Value::Array(vec![Value::bytes(vec![0xab])]))),
            ),
            ("u", Value::Undefined),
            ("f", Value::Float(1.5)),
        ]);
        assert_eq!(
            to_json(&v).unwrap(),
            json!({"b": "-_8", "n": null, "t": "2013-03-21T20:04:00Z", "e": 1363896240,
                   "big": "~AQAAAAAAAAAA", "h": ["ab"], "u": null, "f": 1.5})
        );
        let m = Value::Map(vec![
            (Value::Integer(1), Value::Null),
            (Value::bytes(vec![1]), Value::Null),
        ]);
        assert_eq!(to_json(&m).unwrap(), json!({"1": null, "h'01'": null}));
        let dup = Value::Map(vec![
            (Value::Integer(1), Value::Null),
            (Value::text("1"), Value::Null),
        ]);
        assert_eq!(to_json(&dup), Err(JsonError::DuplicateKey("1".into())));
        assert_eq!(
            to_json(&Value::Integer(-(1i128 << 64))).unwrap(),
            json!(-18446744073709551616.0)
        );
    }

    #[test]
    fn json_to_cbor_numeric_reduction() {
        let j: Json = serde_json::from_str(
            r#"{"a": 89.0, "b": -0.0, "c": 1.5, "d": 1e3, "e": 1e300, "f": -7}"#,
        )
        .unwrap();
        let v = from_json(&j).unwrap();
        assert_eq!(v.get("a"), Some(&Value::Integer(89)));
        assert_eq!(v.get("b"), Some(&Value::Integer(0)));
        assert_eq!(v.get("c"), Some(&Value::Float(1.5)));
        assert_eq!(v.get("d"), Some(&Value::Integer(1000)));
        assert_eq!(v.get("e"), Some(&Value::Float(1e300)));
        assert_eq!(v.get("f"), Some(&Value::Integer(-7)));
        // Key order as received; the deterministic encoding sorts.
        assert_eq!(super::super::to_vec(&v).unwrap()[..3], [0xa6, 0x61, b'a']);
    }
}
