//! The MTP conformance harness library behind `mtp-cert`.
//!
//! - [`vectors`]: the deterministic test-vector corpus (`mtp-cert vectors generate`).
//! - [`scenario`]: the scenario language — model, loader, validation (`docs/scenarios.md`).
//! - [`iut`]: the IUT description and its Implementation Conformance Statement.
//! - [`runner`]: selection, scheduling, timeouts, verdicts, JSONL streaming, resume, and the
//!   [`runner::StepExecutor`] trait the live executors implement.
//! - [`cli`]: the `mtp-cert run | list | replay | validate | ics-template` commands.

pub mod certify;
pub mod cli;
pub mod coverage;
pub mod iut;
pub mod live;
pub mod runner;
pub mod scenario;
pub mod selfiut;
pub mod vectors;
pub mod vectors_cli;
