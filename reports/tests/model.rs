//! The result model: certification rule, JSONL round trip and crash tolerance, field order.

use mtp_reports::model::*;

fn result(id: &str, level: Level, verdict: Verdict) -> ScenarioResult {
    ScenarioResult {
        scenario_id: id.into(),
        title: format!("title {id}"),
        layer: Layer::Discovery,
        level,
        requirements: vec!["SPEC-II-A-06".into()],
        verdict,
        reason: "r".into(),
        started: "2026-01-01T00:00:00Z".into(),
        finished: "2026-01-01T00:00:01Z".into(),
        duration_ms: 1000,
        seed: u64::MAX,
        replay: format!("mtp-cert replay {id} --seed 1 --iut iut.yaml"),
        steps: vec![StepResult {
            index: 0,
            phase: StepPhase::Main,
            kind: "expect".into(),
            description: "expect error 2101".into(),
            verdict,
            expected: Some("error 2101".into()),
            observed: None,
            duration_ms: 3,
            transcript: vec![TranscriptEntry {
                direction: Direction::Received,
                channel: "grpc:Index/Publish".into(),
                frame_type: "error".into(),
                diag: "{\"code\": 2101}".into(),
                hash: "00".repeat(32),
            }],
        }],
    }
}

fn header() -> RunHeader {
    RunHeader {
        schema: SCHEMA.into(),
        suite_version: "0.1.0".into(),
        seed: 1,
        iut: IutSummary {
            name: "x".into(),
            description_sha256: "ab".repeat(32),
        },
        started: "2026-01-01T00:00:00Z".into(),
        ics: Ics {
            roles: vec![Role::Provider],
            algorithms: vec![OptionalAlgorithm::MlDsa87],
            ..Ics::default()
        },
        executor: "live".into(),
    }
}

#[test]
fn certification_rule() {
    use Level::*;
    use Verdict::*;
    let s = RunSummary::from_results(&[
        result("A", Must, Pass),
        result("B", Must, NotApplicable),
        result("C", Should, Fail),
        result("D", May, Inconclusive),
    ]);
    assert!(s.certified);
    assert_eq!(s.outcome, RunOutcome::Certified);
    assert_eq!(s.warnings, ["C"]);
    assert_eq!(s.total, 4);
    assert_eq!(s.by_level[&Must].pass, 1);

    let s = RunSummary::from_results(&[result("A", Must, Inconclusive)]);
    assert_eq!((s.certified, s.outcome), (false, RunOutcome::Failed));

    let s = RunSummary::from_results(&[result("A", Must, Pass), result("E", Should, Error)]);
    assert_eq!(s.outcome, RunOutcome::InfrastructureError);
    assert_eq!(s.outcome.exit_code(), 3);

    let s = RunSummary::from_results(&[result("A", Must, Fail), result("E", Must, Error)]);
    assert_eq!(s.outcome, RunOutcome::Failed);
    assert_eq!(s.mandatory_not_passed, ["A", "E"]);
}

#[test]
fn jsonl_round_trip_and_truncated_tail() {
    let mut text = jsonl::line(&Record::Header(header()));
    text.push_str(&jsonl::line(&Record::Scenario(result(
        "A",
        Level::Must,
        Verdict::Pass,
    ))));
    let good_len = text.len();
    let second = jsonl::line(&Record::Scenario(result("B", Level::Must, Verdict::Fail)));
    text.push_str(&second[..second.len() / 2]);
    let c = jsonl::parse(&text).unwrap().unwrap();
    assert_eq!(c.header, header());
    assert_eq!(c.results, vec![result("A", Level::Must, Verdict::Pass)]);
    assert!(c.truncated_tail);
    assert_eq!(c.valid_len, good_len);

    // A bad line that is not the last one is an error, with its line number.
    let bad = format!("{}garbage\n{}", &text[..good_len], second);
    assert_eq!(
        jsonl::parse(&bad).unwrap_err().to_string(),
        "3: not a result record: expected value at line 1 column 1"
    );
    assert_eq!(jsonl::parse("").unwrap(), None);
    assert_eq!(jsonl::parse("{\"rec").unwrap(), None);
    assert!(
        jsonl::parse(&jsonl::line(&Record::Scenario(result(
            "A",
            Level::Must,
            Verdict::Pass
        ))))
        .is_err()
    );
    let other_schema = jsonl::line(&Record::Header(RunHeader {
        schema: "mtp-cert-results/9".into(),
        ..header()
    }));
    assert!(matches!(
        jsonl::parse(&other_schema),
        Err(jsonl::JsonlError::Schema { .. })
    ));
}

#[test]
fn serialisation_is_deterministic_and_named_as_documented() {
    let line = jsonl::line(&Record::Scenario(result(
        "A",
        Level::Should,
        Verdict::NotApplicable,
    )));
    assert_eq!(
        line,
        jsonl::line(&Record::Scenario(result(
            "A",
            Level::Should,
            Verdict::NotApplicable
        )))
    );
    let keys = [
        "\"record\":\"scenario\"",
        "\"scenario_id\"",
        "\"title\"",
        "\"layer\":\"discovery\"",
        "\"level\":\"should\"",
        "\"requirements\"",
        "\"verdict\":\"not_applicable\"",
        "\"reason\"",
        "\"started\"",
        "\"finished\"",
        "\"duration_ms\"",
        "\"seed\":18446744073709551615",
        "\"replay\"",
        "\"steps\"",
        "\"direction\":\"received\"",
    ];
    let mut at = 0;
    for k in keys {
        let i = line[at..]
            .find(k)
            .unwrap_or_else(|| panic!("{k} missing or out of order in {line}"));
        at += i;
    }
    let h = jsonl::line(&Record::Header(header()));
    assert!(
        h.starts_with("{\"record\":\"header\",\"schema\":\"mtp-cert-results/1\""),
        "{h}"
    );
    assert!(h.contains("\"algorithms\":[\"ML-DSA-87\"]"), "{h}");
    let doc = RunResults::new(
        header(),
        vec![
            result("B", Level::Must, Verdict::Pass),
            result("A", Level::Must, Verdict::Pass),
        ],
        5,
    );
    assert_eq!(doc.results[0].scenario_id, "A");
    let json = serde_json::to_string(&doc).unwrap();
    assert_eq!(serde_json::from_str::<RunResults>(&json).unwrap(), doc);
}

#[test]
fn baseline_comparison() {
    use Level::Must;
    use Verdict::*;
    let base = [
        result("A", Must, Pass),
        result("B", Must, Fail),
        result("C", Must, Fail),
        result("D", Must, Inconclusive),
    ];
    let now = [
        result("A", Must, Fail),
        result("B", Must, Fail),
        result("C", Must, Pass),
        result("D", Must, Fail),
        result("E", Must, Pass),
    ];
    let c = Comparison::new(&base, &now);
    assert_eq!(
        c.regressions,
        vec![("A".into(), Pass, Fail), ("D".into(), Inconclusive, Fail)]
    );
    assert_eq!(c.fixed, ["C"]);
    assert_eq!(c.known, ["B"]);
    assert_eq!(c.new, ["E"]);
    let s = RunSummary::from_results(&now);
    assert!(!c.only_known_failures(&s));
    let only_b = [result("B", Must, Fail)];
    assert!(
        Comparison::new(&base, &only_b).only_known_failures(&RunSummary::from_results(&only_b))
    );
}
