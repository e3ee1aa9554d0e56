//! The main job runs end to end: `mtp-cert self-check` passes and writes its reports, and
//! the same seed gives the same report.

use std::process::Command;

fn run(out: &std::path::Path, seed: &str) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_mtp-cert"))
        .args(["self-check", "--seed", seed, "--out"])
        .arg(out)
        .output()
        .expect("mtp-cert runs");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

/// The report without its timing fields.
fn stable(path: &std::path::Path) -> serde_json::Value {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("report written"))
            .expect("JSON");
    for c in v["checks"].as_array_mut().expect("checks") {
        c.as_object_mut().expect("object").remove("duration_ms");
    }
    v
}

#[test]
fn self_check_passes_and_is_reproducible() {
    let base = std::env::temp_dir().join(format!("mtp-self-check-{}", std::process::id()));
    let (a, b) = (base.join("a"), base.join("b"));
    let (ok, stdout) = run(&a, "7");
    assert!(ok, "self-check failed:\n{stdout}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    assert!(a.join("self-check.md").is_file());
    let report = stable(&a.join("self-check.json"));
    assert_eq!(report["totals"]["failed"], 0);
    assert!(
        report["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .all(|c| { !c["requirements"].as_array().expect("ids").is_empty() })
    );
    let (ok, _) = run(&b, "7");
    assert!(ok);
    assert_eq!(
        report,
        stable(&b.join("self-check.json")),
        "same seed, different report"
    );
    let _ = std::fs::remove_dir_all(&base);
}
