//! JUnit XML via the `junit-report` crate: one `<testsuite>` per layer, one `<testcase>` per
//! scenario (classname = layer, name = scenario id).
//!
//! | verdict | rendered as |
//! |---|---|
//! | `pass` | passed testcase |
//! | `fail`, MUST | `<failure message="reason">` with expected vs observed, replay, transcript |
//! | `fail`, SHOULD / MAY | passed testcase, `<system-out>` starting `warning: ` (never a failure) |
//! | `error` | `<error message="reason">` |
//! | `inconclusive` | `<skipped message="inconclusive: reason">` (never a pass) |
//! | `not_applicable` | `<skipped message="not applicable: reason">` |
//!
//! `junit-report` 0.8 has no `<properties>`, no message on `<skipped>` and no totals on
//! `<testsuites>`; [`augment`] adds them to its output: per-testcase and per-testsuite
//! `<properties>` (requirement ids, level, seed, replay; suite version, run seed, IUT), the
//! `skipped` message and `<system-out>` of skipped testcases, `skipped` counts, and line
//! breaks between testsuites and testcases. The same values are also in each testcase's
//! `<system-out>` (or failure text) for tools that ignore testcase properties.

use std::fmt::Write as _;

use junit_report::{Duration, OffsetDateTime, Report, TestCase, TestSuite};
use mtp_protocol::time::Timestamp;

use crate::model::{Layer, RunResults, ScenarioResult};
use crate::text::{cdata, xml_attr, xml_chars};
use crate::view::{Shown, evidence_text, headline, identity_text};

/// Why the JUnit report could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum JunitError {
    #[error("junit-report: {0}")]
    Write(#[from] junit_report::Error),
    #[error("junit-report output is not UTF-8")]
    Utf8,
    #[error("unexpected junit-report output: {0}")]
    Shape(&'static str),
}

/// What [`augment`] adds to `junit-report`'s output, in document order.
#[derive(Default)]
struct Plan {
    root_attrs: String,
    /// Per testsuite: `skipped` count and properties.
    suites: Vec<(usize, Vec<(String, String)>)>,
    /// Per testcase: properties.
    cases: Vec<Vec<(String, String)>>,
    /// Per skipped testcase: message and system-out.
    skipped: Vec<(String, String)>,
}

/// The JUnit XML document of a run.
pub fn render(results: &RunResults) -> Result<String, JunitError> {
    let mut report = Report::new();
    let mut plan = Plan::default();
    let (mut tests, mut failures, mut errors, mut skipped, mut ms) = (0usize, 0, 0, 0, 0u64);
    for layer in Layer::ALL {
        let in_layer: Vec<&ScenarioResult> = results
            .results
            .iter()
            .filter(|r| r.layer == layer)
            .collect();
        if in_layer.is_empty() {
            continue;
        }
        let mut suite = TestSuite::new(layer.name());
        suite.package = format!("mtp-cert/{}", layer.name());
        suite.timestamp = timestamp(
            in_layer
                .iter()
                .map(|r| r.started.as_str())
                .min()
                .unwrap_or(results.header.started.as_str()),
        );
        let mut suite_skipped = 0;
        for r in in_layer {
            let (case, skip) = testcase(r);
            if let Some(s) = skip {
                plan.skipped.push(s);
                suite_skipped += 1;
            }
            plan.cases.push(case_properties(r));
            tests += 1;
            ms = ms.saturating_add(r.duration_ms);
            match Shown::of(r) {
                Shown::Fail => failures += 1,
                Shown::Error => errors += 1,
                Shown::Inconclusive | Shown::NotApplicable => skipped += 1,
                Shown::Pass | Shown::Warning => {}
            }
            suite.add_testcase(case);
        }
        plan.suites.push((suite_skipped, suite_properties(results)));
        report.add_testsuite(suite);
    }
    plan.root_attrs = format!(
        " name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{}\"",
        xml_attr(&format!("mtp-cert {}", headline(results))),
        crate::view::seconds(ms)
    );
    let mut out = Vec::new();
    report.write_xml(&mut out)?;
    let xml = String::from_utf8(out).map_err(|_| JunitError::Utf8)?;
    augment(&xml, &plan)
}

/// The testcase of a scenario, and for a skipped one its `skipped` message and system-out.
fn testcase(r: &ScenarioResult) -> (TestCase, Option<(String, String)>) {
    let name = xml_chars(&r.scenario_id);
    let time = Duration::milliseconds(i64::try_from(r.duration_ms).unwrap_or(i64::MAX));
    let reason = one_line(&r.reason);
    let (mut case, skip) = match Shown::of(r) {
        Shown::Pass => {
            let mut c = TestCase::success(&name, time);
            c.set_system_out(&cdata(&identity_text(r)));
            (c, None)
        }
        Shown::Warning => {
            let mut c = TestCase::success(&name, time);
            c.set_system_out(&cdata(&format!(
                "warning: {} scenario failed (not blocking): {}\n{}",
                r.level.keyword(),
                r.reason,
                evidence_text(r)
            )));
            (c, None)
        }
        Shown::Fail => {
            let mut c = TestCase::failure(&name, time, "fail", &reason);
            c.set_system_out(&cdata(&evidence_text(r)));
            (c, None)
        }
        Shown::Error => {
            let mut c = TestCase::error(&name, time, "error", &reason);
            c.set_system_out(&cdata(&evidence_text(r)));
            (c, None)
        }
        Shown::Inconclusive => (
            TestCase::skipped(&name),
            Some((format!("inconclusive: {reason}"), evidence_text(r))),
        ),
        Shown::NotApplicable => (
            TestCase::skipped(&name),
            Some((format!("not applicable: {reason}"), identity_text(r))),
        ),
    };
    case.time = time;
    case.set_classname(r.layer.name());
    (case, skip)
}

fn case_properties(r: &ScenarioResult) -> Vec<(String, String)> {
    vec![
        ("title".into(), r.title.clone()),
        ("requirements".into(), r.requirements.join(",")),
        ("level".into(), r.level.keyword().into()),
        ("verdict".into(), r.verdict.name().into()),
        ("seed".into(), r.seed.to_string()),
        ("replay".into(), r.replay.clone()),
    ]
}

fn suite_properties(results: &RunResults) -> Vec<(String, String)> {
    let h = &results.header;
    vec![
        ("suite_version".into(), h.suite_version.clone()),
        ("run_seed".into(), h.seed.to_string()),
        ("iut".into(), h.iut.name.clone()),
        (
            "iut_description_sha256".into(),
            h.iut.description_sha256.clone(),
        ),
        ("executor".into(), h.executor.clone()),
        ("results_schema".into(), results.schema.clone()),
        ("outcome".into(), headline(results)),
    ]
}

fn one_line(s: &str) -> String {
    xml_chars(&s.replace(['\n', '\r'], " "))
}

/// RFC 3339 → the suite timestamp (the Unix epoch when the text is not a date-time).
fn timestamp(s: &str) -> OffsetDateTime {
    Timestamp::parse_lenient(s)
        .ok()
        .and_then(|t| {
            OffsetDateTime::from_unix_timestamp_nanos(
                i128::from(t.unix_secs()) * 1_000_000_000 + i128::from(t.subsec_nanos()),
            )
            .ok()
        })
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn properties(props: &[(String, String)]) -> String {
    let mut s = String::from("<properties>");
    for (k, v) in props {
        let _ = write!(
            s,
            "<property name=\"{}\" value=\"{}\"/>",
            xml_attr(k),
            xml_attr(v)
        );
    }
    s.push_str("</properties>");
    s
}

/// Adds what `junit-report` 0.8 cannot write (see the module doc). Its output has no
/// whitespace between elements, escapes `>` in attribute values and keeps free text in
/// CDATA sections, so tags are found by scanning for `<` outside CDATA.
fn augment(xml: &str, plan: &Plan) -> Result<String, JunitError> {
    let mut out = String::with_capacity(xml.len() * 2);
    let mut rest = xml;
    let (mut suite_i, mut case_i, mut skip_i) = (0usize, 0usize, 0usize);
    while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        rest = &rest[lt..];
        if rest.starts_with("<![CDATA[") {
            let end = rest
                .find("]]>")
                .ok_or(JunitError::Shape("unterminated CDATA"))?
                + 3;
            out.push_str(&rest[..end]);
            rest = &rest[end..];
            continue;
        }
        let gt = rest
            .find('>')
            .ok_or(JunitError::Shape("unterminated tag"))?
            + 1;
        let tag = &rest[..gt];
        rest = &rest[gt..];
        let self_closing = tag.ends_with("/>");
        let head = tag
            .strip_suffix("/>")
            .or_else(|| tag.strip_suffix('>'))
            .unwrap_or(tag);
        // `<name ...>` or `</name>`: the name including a leading `/`.
        let name = head[1..]
            .split(|c: char| c.is_whitespace())
            .next()
            .unwrap_or_default();
        match name {
            "testsuites" => {
                out.push_str(head);
                out.push_str(&plan.root_attrs);
                out.push_str(if self_closing { "/>" } else { ">" });
            }
            "/testsuites" => {
                out.push('\n');
                out.push_str(tag);
                out.push('\n');
            }
            "testsuite" => {
                let (skipped, props) = plan
                    .suites
                    .get(suite_i)
                    .ok_or(JunitError::Shape("more testsuites than planned"))?;
                suite_i += 1;
                out.push('\n');
                out.push_str(head);
                let _ = write!(out, " skipped=\"{skipped}\">");
                out.push_str(&properties(props));
                if self_closing {
                    out.push_str("</testsuite>");
                }
            }
            "/testsuite" => {
                out.push('\n');
                out.push_str(tag);
            }
            "testcase" => {
                let props = plan
                    .cases
                    .get(case_i)
                    .ok_or(JunitError::Shape("more testcases than planned"))?;
                case_i += 1;
                out.push_str("\n  ");
                out.push_str(head);
                out.push('>');
                out.push_str(&properties(props));
                if self_closing {
                    out.push_str("</testcase>");
                }
            }
            "skipped" if self_closing => {
                let (message, system_out) = plan
                    .skipped
                    .get(skip_i)
                    .ok_or(JunitError::Shape("more skipped testcases than planned"))?;
                skip_i += 1;
                let _ = write!(
                    out,
                    "<skipped message=\"{}\"/><system-out><![CDATA[{}]]></system-out>",
                    xml_attr(message),
                    cdata(system_out)
                );
            }
            _ => {
                out.push_str(tag);
                if tag.starts_with("<?") {
                    out.push('\n');
                }
            }
        }
    }
    out.push_str(rest);
    if suite_i != plan.suites.len() || case_i != plan.cases.len() || skip_i != plan.skipped.len() {
        return Err(JunitError::Shape("fewer elements than planned"));
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}
