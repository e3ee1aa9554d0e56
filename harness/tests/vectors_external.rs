//! The public vector sets under `/work/shared/vectors/external` (ACVP, Wycheproof, CBOR
//! Appendix A, dCBOR), run through the project's crypto and CBOR layers
//! (`vectors::external::check_external`): no unexplained failure. The sets are not shipped
//! to users: the test passes vacuously when the folder is absent. `MTP_EXTERNAL_VECTORS`
//! names another location.
//!
//! Run with `--profile ci`.

use std::path::PathBuf;

use mtp_harness::vectors::external::{ExternalOptions, check_external, render_table};

fn external_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("MTP_EXTERNAL_VECTORS") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/external"),
    };
    dir.is_dir().then_some(dir)
}

#[test]
fn external_vectors_have_no_unexplained_failure() {
    let Some(dir) = external_dir() else {
        eprintln!("external vectors not present; nothing to check");
        return;
    };
    let reports = check_external(&dir, &ExternalOptions::default()).expect("external vectors");
    let table = render_table(&reports);
    println!("{table}");
    assert!(reports.len() >= 20, "{} files checked", reports.len());
    let failed: usize = reports.iter().map(|r| r.failed).sum();
    assert_eq!(failed, 0, "unexplained failures:\n{table}");
    let passed: usize = reports.iter().map(|r| r.passed).sum();
    assert!(passed > 1000, "only {passed} cases passed");
    // Every file ran something or said why not.
    for r in &reports {
        assert_eq!(
            r.total,
            r.passed + r.failed + r.explained_count() + r.skipped_count(),
            "{}",
            r.file
        );
        assert!(r.total > 0, "{}: no case", r.file);
    }
}

#[test]
fn the_slow_limit_skips_large_data_tests() {
    let Some(dir) = external_dir() else {
        return;
    };
    let reports = check_external(
        &dir,
        &ExternalOptions {
            limit_slow: Some(0),
        },
    )
    .expect("external vectors");
    let sha = reports
        .iter()
        .find(|r| r.file.contains("SHA2-256"))
        .expect("SHA2-256 file");
    assert!(
        sha.skipped.keys().any(|k| k.contains("limit-slow")),
        "{sha:?}"
    );
}
