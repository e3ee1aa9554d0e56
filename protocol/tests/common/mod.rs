//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The read-only `shared/` folder beside the checkout (public vectors), if present.
/// Users of the suite do not have it: tests that need it report themselves skipped.
/// `MTP_SHARED_DIR` overrides the location.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("MTP_SHARED_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
    };
    dir.join("vectors/external").is_dir().then_some(dir)
}

/// The external vector folder, or `None` after printing a skip notice for `what`.
pub fn external_vectors(what: &str) -> Option<PathBuf> {
    match shared_dir() {
        Some(d) => Some(d.join("vectors/external")),
        None => {
            println!("SKIPPED {what}: ../shared/vectors/external not found (set MTP_SHARED_DIR)");
            None
        }
    }
}

/// One line per vector file: how many cases ran, and how many were not applicable.
pub fn report(file: &str, run: usize, not_applicable: usize, reason: &str) {
    if not_applicable == 0 {
        println!("VECTORS {file}: {run} cases run");
    } else {
        println!("VECTORS {file}: {run} cases run, {not_applicable} not applicable ({reason})");
    }
}
