//! Baseline gating: the three accepted baseline formats, and a run that fails only on new
//! failures and flags expected failures that now pass.

mod common;

use mtp_reports::baseline::{self, BaselineError, BaselineFormat, Gate, Regression};
use mtp_reports::json;
use mtp_reports::model::{Record, RunResults, Verdict, jsonl};

#[test]
fn accepts_the_json_report_a_results_document_and_results_jsonl() {
    let fx = common::fixture();
    let report = json::render(&fx, None).unwrap();
    let b = baseline::parse(&report).unwrap();
    assert_eq!(
        (b.format, &b.results),
        (BaselineFormat::Report, &fx.results)
    );

    let doc = serde_json::to_string_pretty(&fx).unwrap();
    let b = baseline::parse(&doc).unwrap();
    assert_eq!(
        (b.format, &b.results),
        (BaselineFormat::Results, &fx.results)
    );

    let mut lines = jsonl::line(&Record::Header(fx.header.clone()));
    for r in &fx.results {
        lines.push_str(&jsonl::line(&Record::Scenario(r.clone())));
    }
    lines.push_str(&jsonl::line(&Record::Summary(fx.summary.clone())));
    let b = baseline::parse(&lines).unwrap();
    assert_eq!((b.format, &b.results), (BaselineFormat::Jsonl, &fx.results));

    // A results.jsonl holding only its header line is still JSONL, not a document.
    let header_only = jsonl::line(&Record::Header(fx.header.clone()));
    let b = baseline::parse(&header_only).unwrap();
    assert_eq!((b.format, b.results.len()), (BaselineFormat::Jsonl, 0));

    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("expected.json");
    std::fs::write(&p, &report).unwrap();
    assert_eq!(baseline::read(&p).unwrap().results, fx.results);
    assert!(matches!(
        baseline::read(&dir.path().join("missing.json")),
        Err(BaselineError::Io { .. })
    ));
}

#[test]
fn rejects_other_documents() {
    assert!(matches!(baseline::parse(""), Err(BaselineError::Empty)));
    assert!(matches!(
        baseline::parse(r#"{"schema": "mtp-cert-report/9"}"#),
        Err(BaselineError::Schema { .. })
    ));
    assert!(matches!(
        baseline::parse(r#"{"schema": "mtp-cert-report/1", "results": 3}"#),
        Err(BaselineError::Json { .. })
    ));
    assert!(matches!(
        baseline::parse("garbage\nmore garbage\n"),
        Err(BaselineError::Jsonl(_))
    ));
}

#[test]
fn known_failures_pass_the_gate_new_ones_fail_it() {
    let fx = common::fixture();
    // The same run as baseline: every blocking result is known.
    let g = Gate::evaluate(&fx.results, &fx);
    assert!(g.passes(), "{g:?}");
    assert_eq!(g.exit_code, 0);
    assert_eq!(
        g.known,
        [
            "DISC-OFFER-SIG-001",
            "DISC-QUERY-LATENCY-001",
            "NEG-COUNTER-001",
            "NEG-ROUND-TIMEOUT-001"
        ]
    );

    // The baseline expected the MUST failure and the inconclusive, not the error.
    let mut base = fx.results.clone();
    base.retain(|r| r.scenario_id != "NEG-ROUND-TIMEOUT-001");
    let g = Gate::evaluate(&base, &fx);
    assert_eq!(g.new_failures, ["NEG-ROUND-TIMEOUT-001"]);
    assert_eq!(g.new, ["NEG-ROUND-TIMEOUT-001"]);
    assert_eq!(g.exit_code, 3, "only an error is new: infrastructure error");

    // A MUST scenario that passed in the baseline fails now: regression, exit 1.
    let mut now = fx.results.clone();
    now[0].verdict = Verdict::Fail;
    let run = RunResults::new(fx.header.clone(), now, 0);
    let g = Gate::evaluate(&fx.results, &run);
    assert_eq!(
        g.regressions,
        [Regression {
            scenario_id: "DISC-OFFER-PUB-001".into(),
            baseline: Verdict::Pass,
            now: Verdict::Fail
        }]
    );
    assert_eq!(g.new_failures, ["DISC-OFFER-PUB-001"]);
    assert_eq!(g.exit_code, 1);
    assert!(
        g.lines()
            .iter()
            .any(|l| l == "REGRESSION DISC-OFFER-PUB-001: pass -> fail")
    );

    // A SHOULD scenario regressing is reported but never fails the run.
    let mut base = fx.results.clone();
    base[2].verdict = Verdict::Pass;
    let g = Gate::evaluate(&base, &fx);
    assert_eq!(g.regressions.len(), 1);
    assert!(g.passes());
}

#[test]
fn expected_failures_that_now_pass_are_flagged() {
    let fx = common::fixture();
    let mut now = fx.results.clone();
    for r in &mut now {
        if r.verdict != Verdict::NotApplicable {
            r.verdict = Verdict::Pass;
        }
    }
    now.retain(|r| r.scenario_id != "NEG-MULTI-PARTY-001");
    let run = RunResults::new(fx.header.clone(), now, 0);
    let g = Gate::evaluate(&fx.results, &run);
    assert!(g.passes());
    assert_eq!(
        g.fixed,
        [
            "DISC-OFFER-SIG-001",
            "DISC-QUERY-LATENCY-001",
            "NEG-COUNTER-001",
            "NEG-ROUND-TIMEOUT-001"
        ]
    );
    assert_eq!(g.missing, ["NEG-MULTI-PARTY-001"]);
    let lines = g.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("expected failures that now pass (tighten the baseline)")),
        "{lines:?}"
    );
}
