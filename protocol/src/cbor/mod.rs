//! Serialization binding (BIND IV): deterministic CBOR (RFC 8949 §4.2.1), a strict and a
//! lenient decoder, CBOR diagnostic notation (RFC 8949 §8) and JSON conversion (§6).
//!
//! Filled by the CBOR work package; the API below is the contract other modules use.

mod value;

pub use value::{INT_MAX, INT_MIN, Value};
