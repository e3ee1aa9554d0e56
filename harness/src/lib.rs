//! The MTP conformance harness library behind `mtp-cert`.
//!
//! - [`vectors`]: the deterministic test-vector corpus (`mtp-cert vectors generate`).
//! - [`scenario`]: the scenario language — model, loader, validation (`docs/scenarios.md`).
//! - [`iut`]: the IUT description and its Implementation Conformance Statement.
//! - [`runner`]: selection, scheduling, timeouts, verdicts, JSONL streaming, resume, and the
//!   [`runner::StepExecutor`] trait the live executors implement.
//! - [`cli`]: the `mtp-cert run | list | replay | validate | ics-template` commands.

/// `println!` that never panics: a closed standard output (`mtp-cert … | head`) loses only the
/// console text; the run goes on and its results and reports are still written.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stdout().lock(), $($arg)*);
    }};
}

/// `print!` that never panics (see [`outln!`]).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let mut o = ::std::io::stdout().lock();
        let _ = ::std::write!(o, $($arg)*);
        let _ = o.flush();
    }};
}

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
