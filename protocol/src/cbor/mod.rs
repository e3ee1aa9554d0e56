//! Serialization binding (BIND IV): deterministic CBOR (RFC 8949 §4.2.1), a strict and a
//! lenient decoder, CBOR diagnostic notation (RFC 8949 §8; [`diag`]) and JSON conversion
//! (RFC 8949 §6; [`json`]), plus [`mutate`] for negative test cases.
//!
//! - [`to_vec`]: the one deterministic encoding of a value (BIND-IV-A-01..06).
//! - [`from_slice`]: strict decoder; rejects every non-deterministic or malformed input
//!   with a [`DecodeError`] carrying the byte offset where the problem starts.
//! - [`from_slice_lenient`]: accepts any well-formed CBOR item (for diagnostics).
//!
//! Both decoders bound nesting at [`MAX_DEPTH`] and check every declared length against
//! the remaining input before allocating.

pub mod diag;
mod encode;
mod head;
pub mod json;
pub mod mutate;
mod syntax;
mod value;

pub use value::{INT_MAX, INT_MIN, Value};

use crate::errors::{Coded, ErrorCode};

/// Deepest nesting of arrays, maps and tags accepted or produced: an item inside more
/// than this many containers is rejected.
pub const MAX_DEPTH: usize = 128;

/// Why a value cannot be encoded deterministically.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum EncodeError {
    #[error("integer {0} outside the CBOR range")]
    IntegerOutOfRange(i128),
    #[error("duplicate map key (RFC 8949 §5.6)")]
    DuplicateKey,
    /// Simple values 24–31 have no well-formed encoding (RFC 8949 §3.3).
    #[error("simple value {0} has no well-formed encoding")]
    InvalidSimple(u8),
    /// Tag 2/3 over a byte string with a leading zero or a value that fits major type 0/1
    /// (RFC 8949 §3.4.3 preferred serialization).
    #[error("bignum not in preferred serialization")]
    NonPreferredBignum,
    #[error("nesting deeper than {MAX_DEPTH}")]
    DepthExceeded,
}

impl Coded for EncodeError {
    fn code(&self) -> ErrorCode {
        ErrorCode::SerializationMismatch
    }
    fn requirement(&self) -> Option<&'static str> {
        match self {
            EncodeError::DuplicateKey => Some("BIND-IV-A-05"),
            _ => Some("BIND-IV-A-01"),
        }
    }
}

/// Where and why decoding failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{kind} at byte offset {offset}")]
pub struct DecodeError {
    pub offset: usize,
    pub kind: DecodeErrorKind,
}

/// What is wrong with the input. The first group is "not well-formed" (RFC 8949 §5.3.1,
/// plus invalid UTF-8 and the resource limits); the second is well-formed but not
/// deterministically encoded (RFC 8949 §4.2.1).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DecodeErrorKind {
    #[error("unexpected end of input")]
    Truncated,
    #[error("declared length exceeds the remaining input")]
    LengthExceedsInput,
    #[error("bytes after the data item")]
    TrailingBytes,
    #[error("reserved additional information value {0}")]
    ReservedAdditionalInfo(u8),
    #[error("indefinite length on an integer or tag")]
    InvalidIndefinite,
    #[error("break outside an indefinite-length item")]
    StrayBreak,
    #[error("indefinite-length string chunk of the wrong type")]
    InvalidChunk,
    #[error("two-byte simple value {0} (< 32) is not well-formed")]
    InvalidSimple(u8),
    #[error("invalid UTF-8 in a text string")]
    InvalidUtf8,
    #[error("nesting deeper than {MAX_DEPTH}")]
    DepthExceeded,

    #[error("integer, length or tag not in its shortest form")]
    NonShortestHead,
    #[error("indefinite-length encoding")]
    IndefiniteLength,
    #[error("float not in its shortest exact form (or non-canonical NaN)")]
    NonShortestFloat,
    #[error("map keys not in bytewise lexicographic order")]
    UnsortedKeys,
    #[error("duplicate map key")]
    DuplicateKey,
    #[error("bignum not in preferred serialization")]
    NonPreferredBignum,
}

impl DecodeErrorKind {
    /// Well-formed but not deterministically encoded.
    pub fn is_non_deterministic(&self) -> bool {
        matches!(
            self,
            DecodeErrorKind::NonShortestHead
                | DecodeErrorKind::IndefiniteLength
                | DecodeErrorKind::NonShortestFloat
                | DecodeErrorKind::UnsortedKeys
                | DecodeErrorKind::DuplicateKey
                | DecodeErrorKind::NonPreferredBignum
        )
    }
}

impl Coded for DecodeError {
    /// Non-deterministic encodings → 0101 (BIND IV-A); truncated or not well-formed →
    /// 0200 Transient Serialization Failure (PROFILE G-14, G-17).
    fn code(&self) -> ErrorCode {
        if self.kind.is_non_deterministic() {
            ErrorCode::SerializationMismatch
        } else {
            ErrorCode::TransientSerializationFailure
        }
    }
    fn requirement(&self) -> Option<&'static str> {
        Some(match self.kind {
            DecodeErrorKind::UnsortedKeys => "BIND-IV-A-02",
            DecodeErrorKind::IndefiniteLength => "BIND-IV-A-03",
            DecodeErrorKind::NonShortestFloat => "BIND-IV-A-04",
            DecodeErrorKind::DuplicateKey => "BIND-IV-A-05",
            DecodeErrorKind::NonShortestHead | DecodeErrorKind::NonPreferredBignum => {
                "BIND-IV-A-01"
            }
            _ => "BIND-IV-A-I01",
        })
    }
}

/// The deterministic encoding (RFC 8949 §4.2.1, BIND-IV-A-02..05): shortest heads,
/// definite lengths, shortest exact floats (NaN as `f9 7e00`), map entries in bytewise
/// order of their encoded keys; duplicate keys are an error.
pub fn to_vec(value: &Value) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    encode::encode(value, &mut out, 0)?;
    Ok(out)
}

/// Strict decoder: exactly one data item, deterministically encoded (BIND-IV-A-01..05).
pub fn from_slice(bytes: &[u8]) -> Result<Value, DecodeError> {
    Ok(syntax::parse(bytes, syntax::Mode::Strict)?.to_value())
}

/// Checks that `bytes` is exactly one deterministically encoded data item
/// (BIND-IV-A-01), without building the value.
pub fn check_deterministic(bytes: &[u8]) -> Result<(), DecodeError> {
    syntax::parse(bytes, syntax::Mode::Strict).map(|_| ())
}

/// Strict decoder for an RFC 8742 CBOR sequence (e.g. an audit-trail export, PROFILE G-42):
/// zero or more concatenated items, each deterministically encoded. On failure, the index
/// of the failing item and its error, whose offset is into `bytes`.
pub fn sequence_from_slice(bytes: &[u8]) -> Result<Vec<Value>, (usize, DecodeError)> {
    let mut items = Vec::new();
    let mut start = 0;
    while start < bytes.len() {
        let (node, end) =
            syntax::parse_at(bytes, start, syntax::Mode::Strict).map_err(|e| (items.len(), e))?;
        items.push(node.to_value());
        start = end;
    }
    Ok(items)
}

/// Lenient decoder: any well-formed single data item (indefinite lengths, non-shortest
/// forms, unsorted and duplicate keys accepted; depth and lengths still bounded).
pub fn from_slice_lenient(bytes: &[u8]) -> Result<Value, DecodeError> {
    Ok(syntax::parse(bytes, syntax::Mode::Lenient)?.to_value())
}

#[cfg(test)]
mod tests;
