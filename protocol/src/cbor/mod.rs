//! Serialization binding (BIND IV): deterministic CBOR (RFC 8949 §4.2.1), a strict and a
//! lenient decoder, CBOR diagnostic notation (RFC 8949 §8) and JSON conversion (§6).
//!
//! CONTRACT (other modules rely on these signatures; bodies are filled by the CBOR work):
//! - [`to_vec`]: the one deterministic encoding of a value.
//! - [`from_slice`]: strict decoder; rejects every non-deterministic or malformed input
//!   with a [`DecodeError`] carrying the byte offset.
//! - [`from_slice_lenient`]: accepts any well-formed CBOR (for diagnostics).

mod value;

pub use value::{INT_MAX, INT_MIN, Value};

/// Why a value cannot be encoded deterministically.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum EncodeError {
    #[error("integer {0} outside the CBOR range")]
    IntegerOutOfRange(i128),
    #[error("duplicate map key (RFC 8949 §5.6)")]
    DuplicateKey,
}

/// Where and why decoding failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{kind} at byte offset {offset}")]
pub struct DecodeError {
    pub offset: usize,
    pub kind: DecodeErrorKind,
}

/// What is wrong with the input.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DecodeErrorKind {
    #[error("unexpected end of input")]
    Truncated,
    #[error("not implemented yet")]
    Unimplemented,
}

/// The deterministic encoding (RFC 8949 §4.2.1, BIND-IV-A-02..05).
pub fn to_vec(_value: &Value) -> Result<Vec<u8>, EncodeError> {
    todo!("CBOR work package")
}

/// Strict decoder: exactly one data item, deterministically encoded.
pub fn from_slice(_bytes: &[u8]) -> Result<Value, DecodeError> {
    Err(DecodeError { offset: 0, kind: DecodeErrorKind::Unimplemented })
}

/// Lenient decoder: any well-formed single data item.
pub fn from_slice_lenient(_bytes: &[u8]) -> Result<Value, DecodeError> {
    Err(DecodeError { offset: 0, kind: DecodeErrorKind::Unimplemented })
}
