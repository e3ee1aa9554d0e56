//! Snapshot tests of every writer over the fixed fixture, plus `write_all`.

mod common;

use std::collections::BTreeMap;

use mtp_reports::baseline::Gate;
use mtp_reports::json::{JsonReport, REPORT_SCHEMA};
use mtp_reports::model::Verdict;
use mtp_reports::{ReportKind, WriteOptions, html, json, junit, markdown, write_all};

#[test]
fn junit_snapshot() {
    let xml = junit::render(&common::fixture()).unwrap();
    insta::assert_snapshot!("junit", xml);
}

#[test]
fn json_snapshot_and_round_trip() {
    let fx = common::fixture();
    let text = json::render(&fx, None).unwrap();
    insta::assert_snapshot!("json", text);
    let back: JsonReport = serde_json::from_str(&text).unwrap();
    assert_eq!(back.schema, REPORT_SCHEMA);
    assert_eq!(back.results, fx.results);
    assert_eq!(back.summary, fx.summary);
    assert_eq!(back.header, fx.header);
}

#[test]
fn html_snapshot() {
    let mut texts = BTreeMap::new();
    texts.insert(
        "SPEC-II-A-06".to_owned(),
        "Offers with invalid signatures MUST be rejected <by indexes>.".to_owned(),
    );
    let page = html::render(&common::fixture(), None, &texts);
    insta::assert_snapshot!("html", page);
}

#[test]
fn markdown_snapshot() {
    insta::assert_snapshot!("markdown", markdown::render(&common::fixture(), None));
}

#[test]
fn writers_with_a_baseline() {
    let fx = common::fixture();
    let mut base = common::scenarios();
    // The baseline knew the MUST failure; the error is new; the inconclusive one passed then.
    base[3].verdict = Verdict::Pass;
    base.retain(|r| r.scenario_id != "NEG-ROUND-TIMEOUT-001");
    let gate = Gate::evaluate(&base, &fx);
    let md = markdown::render(&fx, Some(&gate));
    insta::assert_snapshot!("markdown_baseline", md);
    let page = html::render(&fx, Some(&gate), &BTreeMap::new());
    assert!(page.contains("<section id=\"baseline\">"));
    assert!(page.contains("NEW FAILURES"));
    let j: serde_json::Value =
        serde_json::from_str(&json::render(&fx, Some(&gate)).unwrap()).unwrap();
    assert_eq!(
        j["baseline"]["new_failures"],
        serde_json::json!(["NEG-COUNTER-001", "NEG-ROUND-TIMEOUT-001"])
    );
}

#[test]
fn html_escapes_every_result_string() {
    let page = html::render(&common::fixture(), None, &BTreeMap::new());
    assert!(!page.contains("<script>alert"));
    assert!(page.contains(
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; ]]&gt; &#39;quoted&#39;"
    ));
    // Self-contained: no external reference of any kind.
    for needle in ["src=", "href=\"http", "href=\"//", "url(", "@import"] {
        assert!(!page.contains(needle), "{needle} in the HTML report");
    }
    assert_eq!(page.matches("<script>").count(), 1);
}

#[test]
fn writers_are_deterministic() {
    let opts = WriteOptions::default();
    for kind in ReportKind::ALL {
        let a = mtp_reports::render(kind, &common::fixture(), &opts).unwrap();
        let b = mtp_reports::render(kind, &common::fixture(), &opts).unwrap();
        assert_eq!(a, b, "{kind:?}");
    }
}

#[test]
fn write_all_writes_four_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nested/out");
    let written = write_all(&common::fixture(), &out, &WriteOptions::default()).unwrap();
    let names: Vec<&str> = written
        .iter()
        .map(|w| w.path.file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["report.xml", "report.json", "report.html", "summary.md"]
    );
    for w in &written {
        assert_eq!(std::fs::metadata(&w.path).unwrap().len(), w.bytes);
        assert!(w.bytes > 0);
    }
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        4,
        "no temporary file left"
    );
}

#[test]
fn empty_run() {
    let fx = mtp_reports::model::RunResults::new(common::header(), vec![], 0);
    let xml = junit::render(&fx).unwrap();
    assert!(
        xml.contains("<testsuites name=\"mtp-cert NOT CERTIFIED\"")
            || xml.contains("<testsuites name=\"mtp-cert CERTIFIED\""),
        "{xml}"
    );
    let r = junit_parser::from_reader(std::io::Cursor::new(xml.as_bytes())).unwrap();
    assert_eq!(r.tests, 0);
    html::render(&fx, None, &BTreeMap::new());
    markdown::render(&fx, None);
    json::render(&fx, None).unwrap();
}
