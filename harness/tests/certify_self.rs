//! `mtp-cert certify --self` end to end, as the README's main job runs it: the whole suite
//! against private reference agents and nats-servers, the four reports and a bundle that
//! `bundle verify` accepts (and rejects with one flipped byte); a deliberately broken agent
//! fails the matching scenario with its requirement id; `mutants` kills every scenario.

use std::path::Path;
use std::process::{Command, Output};

fn mtp_cert(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mtp-cert"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run mtp-cert")
}

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn certify_self_passes_writes_reports_and_a_verifiable_bundle() {
    let out = tempfile::tempdir().unwrap();
    let o = mtp_cert(
        &["certify", "--self", "--out", out.path().to_str().unwrap()],
        repo(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("CERTIFIED"), "{stdout}");
    for f in [
        "results.jsonl",
        "report.xml",
        "report.json",
        "report.html",
        "summary.md",
        "certification.cbor",
    ] {
        let p = out.path().join(f);
        assert!(
            p.is_file() && p.metadata().unwrap().len() > 0,
            "{f} missing"
        );
    }
    let bundle = out.path().join("certification.cbor");
    let v = mtp_cert(&["bundle", "verify", bundle.to_str().unwrap()], repo());
    assert_eq!(v.status.code(), Some(0), "{}", show(&v));
    assert!(String::from_utf8_lossy(&v.stdout).contains("CERTIFIED"));

    let mut bytes = std::fs::read(&bundle).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    let flipped = out.path().join("flipped.cbor");
    std::fs::write(&flipped, &bytes).unwrap();
    let v = mtp_cert(&["bundle", "verify", flipped.to_str().unwrap()], repo());
    assert_eq!(v.status.code(), Some(1), "{}", show(&v));
}

#[test]
fn a_broken_agent_fails_the_matching_scenario_naming_the_requirement() {
    let out = tempfile::tempdir().unwrap();
    let o = mtp_cert(
        &[
            "certify",
            "--self",
            "--agent-fault",
            "skip-offer-signature-check",
            "--only",
            "DISC-OFFER-SIG-001",
            "--jobs",
            "1",
            "--out",
            out.path().to_str().unwrap(),
        ],
        repo(),
    );
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("NOT CERTIFIED"), "{stdout}");
    assert!(stdout.contains("SPEC-II-A-06"), "{stdout}");
    assert!(
        stdout.contains("mtp-cert replay DISC-OFFER-SIG-001 --seed 1 --self"),
        "{stdout}"
    );
    let junit = std::fs::read_to_string(out.path().join("report.xml")).unwrap();
    assert!(
        junit.contains("SPEC-II-A-06") && junit.contains("<failure"),
        "{junit}"
    );
}

#[test]
fn mutants_kill_every_scenario() {
    let out = tempfile::tempdir().unwrap();
    let o = mtp_cert(&["mutants", "--out", out.path().to_str().unwrap()], repo());
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
}

#[test]
fn vectors_verify_passes_the_reference_agent_and_names_what_a_length_first_agent_breaks() {
    let o = mtp_cert(&["vectors", "verify", "--self"], repo());
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let o = mtp_cert(
        &[
            "vectors",
            "verify",
            "--self",
            "--agent-fault",
            "length-first-map-keys",
            "--family",
            "cbor",
        ],
        repo(),
    );
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("cbor/offer-extension encode: failed"),
        "{stdout}"
    );
}
