//! Small helpers over CBOR maps (`mtp_protocol::cbor::Value`) used by the builders, the
//! sessions and the oracle.

use mtp_protocol::cbor::Value;
use mtp_protocol::primitives::common::tdate_value;
use mtp_protocol::time::Timestamp;

/// Wall-clock now (contract rule 6: time is real).
pub fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::from_unix_nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// `now + secs` as a `tdate` value (now when out of range).
pub fn tdate_in(now: Timestamp, secs: i64) -> Value {
    tdate_value(now.add_secs(secs).unwrap_or(now))
}

/// The entry `key` of a map.
pub fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key)
}

/// Sets `key` of a map (turning a non-map into a map).
pub fn set(v: &mut Value, key: &str, val: Value) {
    if !matches!(v, Value::Map(_)) {
        *v = Value::Map(Vec::new());
    }
    if let Value::Map(entries) = v {
        match entries.iter_mut().find(|(k, _)| k.as_text() == Some(key)) {
            Some((_, slot)) => *slot = val,
            None => entries.push((Value::text(key), val)),
        }
    }
}

/// Sets `key` only when the map lacks it.
pub fn set_default(v: &mut Value, key: &str, val: Value) {
    if v.get(key).is_none() {
        set(v, key, val);
    }
}

/// Removes `key` from a map.
pub fn remove(v: &mut Value, key: &str) -> Option<Value> {
    let Value::Map(entries) = v else { return None };
    let i = entries.iter().position(|(k, _)| k.as_text() == Some(key))?;
    Some(entries.remove(i).1)
}

/// `over` laid on `base`: maps merge key by key (recursively), anything else replaces.
pub fn merge(base: Value, over: &Value) -> Value {
    match (base, over) {
        (Value::Map(mut b), Value::Map(o)) => {
            for (k, v) in o {
                match b.iter_mut().find(|(bk, _)| bk == k) {
                    Some((_, slot)) => {
                        let old = std::mem::replace(slot, Value::Null);
                        *slot = merge(old, v);
                    }
                    None => b.push((k.clone(), v.clone())),
                }
            }
            Value::Map(b)
        }
        (_, o) => o.clone(),
    }
}

/// The map without `keys`.
pub fn without(v: &Value, keys: &[&str]) -> Value {
    match v {
        Value::Map(entries) => Value::Map(
            entries
                .iter()
                .filter(|(k, _)| !k.as_text().is_some_and(|t| keys.contains(&t)))
                .cloned()
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A text entry.
pub fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_text)
}

/// A 32-byte entry (MTP-UUID, digest).
pub fn bytes32(v: &Value, key: &str) -> Option<[u8; 32]> {
    v.get(key)
        .and_then(Value::as_bytes)
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
}

/// Whether `v` holds a float whose shortest encoding is narrower than binary64 (one a
/// non-shortest encoding can widen).
pub fn has_narrow_float(v: &Value) -> bool {
    match v {
        Value::Float(f) => f.is_nan() || f64::from(*f as f32) == *f,
        Value::Array(items) => items.iter().any(has_narrow_float),
        Value::Map(entries) => entries
            .iter()
            .any(|(k, v)| has_narrow_float(k) || has_narrow_float(v)),
        Value::Tag(_, inner) => has_narrow_float(inner),
        _ => false,
    }
}

/// A changed copy of a value (tampering after signing): integers +1, texts and byte
/// strings altered, booleans negated, containers grown.
pub fn tampered(v: &Value) -> Value {
    match v {
        Value::Integer(i) => Value::Integer(if *i < mtp_protocol::cbor::INT_MAX {
            i + 1
        } else {
            i - 1
        }),
        Value::Float(f) => Value::Float(f + 1.0),
        Value::Text(t) => Value::Text(format!("{t}x")),
        Value::Bytes(b) => {
            let mut b = b.clone();
            match b.first_mut() {
                Some(x) => *x ^= 0x01,
                None => b.push(0),
            }
            Value::Bytes(b)
        }
        Value::Bool(b) => Value::Bool(!b),
        Value::Array(items) => {
            let mut items = items.clone();
            items.push(Value::Null);
            Value::Array(items)
        }
        Value::Map(entries) => {
            let mut entries = entries.clone();
            entries.push((Value::text("x-tampered"), Value::Bool(true)));
            Value::Map(entries)
        }
        Value::Tag(t, inner) => Value::Tag(*t, Box::new(tampered(inner))),
        Value::Null | Value::Undefined | Value::Simple(_) => Value::Bool(true),
    }
}
