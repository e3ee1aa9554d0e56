//! The deterministic encoder (RFC 8949 §4.2.1 core deterministic encoding; BIND-IV-A-01..06).
//!
//! Heads are written with `ciborium_ll::Header` (always the shortest argument width);
//! floats with [`FloatBits::preferred`] (shortest exact width, NaN as `f9 7e00`); map
//! entries in bytewise order of their encoded keys, equal encoded keys rejected.

use ciborium_ll::{Encoder, Header};

use super::head::FloatBits;
use super::syntax::bignum_is_preferred;
use super::{EncodeError, INT_MAX, INT_MIN, MAX_DEPTH, Value};

/// Appends the shortest head for `h` (at most 9 bytes, so the write cannot run out of space).
fn push(out: &mut Vec<u8>, h: Header) {
    let mut buf = [0u8; 9];
    let mut rest: &mut [u8] = &mut buf;
    let ok = Encoder::from(&mut rest).push(h).is_ok();
    let n = if ok { 9 - rest.len() } else { 0 };
    out.extend_from_slice(buf.get(..n).unwrap_or_default());
}

pub(crate) fn encode(v: &Value, out: &mut Vec<u8>, depth: usize) -> Result<(), EncodeError> {
    match v {
        Value::Integer(i) => {
            if !(INT_MIN..=INT_MAX).contains(i) {
                return Err(EncodeError::IntegerOutOfRange(*i));
            }
            if *i >= 0 {
                push(out, Header::Positive(*i as u64));
            } else {
                push(out, Header::Negative((-1 - *i) as u64));
            }
        }
        Value::Bytes(b) => {
            push(out, Header::Bytes(Some(b.len())));
            out.extend_from_slice(b);
        }
        Value::Text(s) => {
            push(out, Header::Text(Some(s.len())));
            out.extend_from_slice(s.as_bytes());
        }
        Value::Array(items) => {
            let depth = enter(depth)?;
            push(out, Header::Array(Some(items.len())));
            for i in items {
                encode(i, out, depth)?;
            }
        }
        Value::Map(entries) => {
            let depth = enter(depth)?;
            let mut encoded = Vec::with_capacity(entries.len());
            for (k, val) in entries {
                let mut kb = Vec::new();
                encode(k, &mut kb, depth)?;
                encoded.push((kb, val));
            }
            // BIND-IV-A-02: bytewise lexicographic order of the encoded keys.
            encoded.sort_by(|a, b| a.0.cmp(&b.0));
            if encoded.windows(2).any(|w| w[0].0 == w[1].0) {
                // BIND-IV-A-05.
                return Err(EncodeError::DuplicateKey);
            }
            push(out, Header::Map(Some(encoded.len())));
            for (kb, val) in encoded {
                out.extend_from_slice(&kb);
                encode(val, out, depth)?;
            }
        }
        Value::Tag(t, inner) => {
            if (*t == 2 || *t == 3)
                && matches!(&**inner, Value::Bytes(b) if !bignum_is_preferred(b))
            {
                return Err(EncodeError::NonPreferredBignum);
            }
            let depth = enter(depth)?;
            push(out, Header::Tag(*t));
            encode(inner, out, depth)?;
        }
        Value::Bool(b) => push(out, Header::Simple(if *b { 21 } else { 20 })),
        Value::Null => push(out, Header::Simple(22)),
        Value::Undefined => push(out, Header::Simple(23)),
        Value::Simple(s) => {
            if (24..32).contains(s) {
                return Err(EncodeError::InvalidSimple(*s));
            }
            push(out, Header::Simple(*s));
        }
        // BIND-IV-A-04: shortest exact width.
        Value::Float(f) => FloatBits::preferred(*f).write(out),
    }
    Ok(())
}

fn enter(depth: usize) -> Result<usize, EncodeError> {
    if depth >= MAX_DEPTH {
        return Err(EncodeError::DepthExceeded);
    }
    Ok(depth + 1)
}

fn sort_key(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // A key that cannot be encoded sorts by what was written before the failure;
    // to_vec reports the error itself.
    let _ = encode(v, &mut out, 0);
    out
}

impl Value {
    /// Puts the value in the form the strict decoder would return for its deterministic
    /// encoding: every map sorted by encoded key (recursively), simple values 20–23 as
    /// `Bool`/`Null`/`Undefined`, every NaN as the canonical NaN. Duplicate keys stay
    /// (adjacent); [`super::to_vec`] rejects them.
    pub fn canonicalize(&mut self) {
        match self {
            Value::Array(items) => items.iter_mut().for_each(Value::canonicalize),
            Value::Map(entries) => {
                for (k, v) in entries.iter_mut() {
                    k.canonicalize();
                    v.canonicalize();
                }
                let mut keyed: Vec<(Vec<u8>, (Value, Value))> =
                    entries.drain(..).map(|e| (sort_key(&e.0), e)).collect();
                keyed.sort_by(|a, b| a.0.cmp(&b.0));
                entries.extend(keyed.into_iter().map(|(_, e)| e));
            }
            Value::Tag(_, inner) => inner.canonicalize(),
            Value::Simple(20) => *self = Value::Bool(false),
            Value::Simple(21) => *self = Value::Bool(true),
            Value::Simple(22) => *self = Value::Null,
            Value::Simple(23) => *self = Value::Undefined,
            Value::Float(f) if f.is_nan() => *f = f64::NAN,
            _ => {}
        }
    }

    /// [`Value::canonicalize`] on a copy.
    pub fn canonical(&self) -> Value {
        let mut v = self.clone();
        v.canonicalize();
        v
    }

    /// Equality of logical values with floats compared by bit pattern (so NaN equals NaN
    /// and `-0.0` differs from `0.0`); map entries compared in order.
    pub fn bitwise_eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits(),
            (Value::Array(a), Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.bitwise_eq(y))
            }
            (Value::Map(a), Value::Map(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|((k1, v1), (k2, v2))| k1.bitwise_eq(k2) && v1.bitwise_eq(v2))
            }
            (Value::Tag(t1, a), Value::Tag(t2, b)) => t1 == t2 && a.bitwise_eq(b),
            _ => self == other,
        }
    }
}
