//! The JUnit report read back with `junit-parser`: counts, properties, skipped messages,
//! warnings rendered as passes.

mod common;

use std::io::Cursor;

use mtp_reports::junit;
use mtp_reports::model::{Level, RunResults, Verdict};

fn parse(results: &RunResults) -> junit_parser::TestSuites {
    let xml = junit::render(results).unwrap();
    junit_parser::from_reader(Cursor::new(xml.as_bytes())).unwrap()
}

#[test]
fn counts_of_a_run_with_a_failure_an_error_and_an_inconclusive() {
    let fx = common::fixture();
    let r = parse(&fx);
    assert_eq!(
        (r.tests, r.failures, r.errors, r.skipped),
        (6, 1, 1, 2),
        "pass, fail, SHOULD fail (warning = pass), inconclusive and n/a (skipped), error"
    );
    assert_eq!(r.suites.len(), 2);
    let disc = &r.suites[0];
    assert_eq!(disc.name, "discovery");
    assert_eq!(
        (disc.tests, disc.failures, disc.errors, disc.skipped),
        (3, 1, 0, 0)
    );
    let neg = &r.suites[1];
    assert_eq!(neg.name, "negotiation");
    assert_eq!(
        (neg.tests, neg.failures, neg.errors, neg.skipped),
        (3, 0, 1, 2)
    );
    assert_eq!(neg.properties.hashmap["run_seed"], "42");

    let case = |id: &str| {
        r.suites
            .iter()
            .flat_map(|s| &s.cases)
            .find(|c| c.original_name == id)
            .unwrap()
    };
    let fail = case("DISC-OFFER-SIG-001");
    assert!(fail.status.is_failure());
    let f = fail.status.failure_as_ref();
    assert!(f.message.contains("expected an error with code 2101"));
    assert!(f.text.contains("expected: error code in {2101, 1100}"));
    assert!(f.text.contains("observed: response ack"));
    assert!(
        f.text
            .contains("replay: mtp-cert replay DISC-OFFER-SIG-001 --seed 42")
    );
    assert!(
        f.text
            .contains(r#"{"type": "ack", "body": {"status": "listed"}}"#)
    );
    assert_eq!(
        fail.properties.hashmap["requirements"],
        "SPEC-II-A-06,BIND-VI-A-03"
    );
    assert_eq!(fail.properties.hashmap["level"], "MUST");
    assert_eq!(
        fail.properties.hashmap["seed"],
        0x5555_6666_7777_8888u64.to_string()
    );

    let warning = case("DISC-QUERY-LATENCY-001");
    assert!(warning.status.is_success());
    assert!(
        warning
            .system_out
            .as_deref()
            .unwrap()
            .starts_with("warning: SHOULD")
    );

    let inconclusive = case("NEG-COUNTER-001");
    assert!(inconclusive.status.is_skipped());
    assert_eq!(
        inconclusive.status.skipped_as_ref().message,
        "inconclusive: setup step 0: control action add_peer is unsupported"
    );
    let na = case("NEG-MULTI-PARTY-001");
    assert_eq!(
        na.status.skipped_as_ref().message,
        "not applicable: ICS: roles must include requester"
    );
    let error = case("NEG-ROUND-TIMEOUT-001");
    assert!(error.status.is_error());
    let e = error.status.error_as_ref();
    assert_eq!(
        e.message,
        "transport: connection reset <script>alert(\"x\")</script> & ]]> 'quoted'"
    );
    // `]]>` is split over two CDATA sections (`]]` + `>`); junit-parser joins adjacent
    // sections with a line break, an XML parser without one.
    assert!(
        e.text.contains("& ]]\n> 'quoted'"),
        "CDATA split keeps ]]>: {}",
        e.text
    );
}

#[test]
fn never_a_pass_for_inconclusive_or_error_of_any_level() {
    for level in [Level::Must, Level::Should, Level::May] {
        let mut s = common::scenarios();
        for r in &mut s {
            r.level = level;
        }
        let r = parse(&RunResults::new(common::header(), s, 0));
        let cases: Vec<_> = r.suites.iter().flat_map(|s| &s.cases).collect();
        for c in cases {
            let v = common::scenarios()
                .into_iter()
                .find(|x| x.scenario_id == c.original_name)
                .unwrap()
                .verdict;
            match v {
                Verdict::Inconclusive | Verdict::NotApplicable => assert!(c.status.is_skipped()),
                Verdict::Error => assert!(c.status.is_error()),
                Verdict::Fail if level == Level::Must => assert!(c.status.is_failure()),
                Verdict::Fail | Verdict::Pass => assert!(c.status.is_success()),
            }
        }
    }
}

#[test]
fn hostile_strings_stay_well_formed() {
    let mut s = common::scenarios();
    s[0].scenario_id = "X-<&\"'>-1".into();
    s[0].title = "a\u{1}b ]]> <![CDATA[ c".into();
    s[0].verdict = Verdict::Inconclusive;
    s[0].reason = "line1\nline2 \"q\" ]]>".into();
    s[1].steps[1].observed = Some("]]>]]><x/>\u{0}".into());
    let r = parse(&RunResults::new(common::header(), s, 0));
    let c = r
        .suites
        .iter()
        .flat_map(|s| &s.cases)
        .find(|c| c.original_name == "X-<&\"'>-1")
        .unwrap();
    assert_eq!(
        c.status.skipped_as_ref().message,
        "inconclusive: line1 line2 \"q\" ]]>"
    );
    assert!(
        c.system_out
            .as_deref()
            .unwrap()
            .contains("a\u{FFFD}b ]]> <![CDATA[ c")
    );
    assert_eq!(r.tests, 6);
}
