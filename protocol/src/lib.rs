//! # mtp-protocol — the Massachusetts Transaction Protocol as code
//!
//! A pure, sans-IO model of MTP-SPEC-001 Part Two and MTP-BIND-001: codecs, identifiers,
//! objects, crypto suite, state machine and error registry. No sockets, no clocks, no OS
//! randomness: time is passed in as [`time::Timestamp`] and randomness as a
//! [`rand_core::CryptoRng`]-style source, so every function is a deterministic function of
//! its inputs. Where the documents are silent the decision is written in `docs/profile.md`
//! and cited here as `PROFILE G-xx`. Requirement ids (`SPEC-IX-03`, `BIND-IV-A-02`, ...)
//! refer to `docs/requirements.yaml`.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod errors;
pub mod profile;
pub mod time;

pub mod cbor;
pub mod crypto;
pub mod identity;
pub mod taxonomy;
pub mod uuid;

pub mod attribution;
pub mod commitment;
pub mod discovery;
pub mod error_record;
pub mod negotiation;
pub mod primitives;
pub mod verification;

pub mod audit;
pub mod state_machine;
pub mod wire;

pub use errors::{Coded, ErrorCode, Layer, Severity};
