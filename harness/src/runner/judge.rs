//! The runner's half of the oracle: whether an executor's [`Observation`] meets the step.
//! What cannot be seen from an observation (signatures, encodings) is judged by the executor.

use mtp_protocol::cbor::{Value, diag::value_to_diag};
use mtp_reports::model::Verdict;

use super::executor::{
    Action, ControlError, Observation, PeerError, ReceivedMessage, ResolvedExpectation,
};
use crate::scenario::template::{Variables, subset_match};
use crate::scenario::{CaptureSpec, StepKind};

/// Longest `expected` / `observed` text kept in a result (the transcript has everything).
const MAX_TEXT: usize = 4_000;

pub(crate) fn clip(s: String) -> String {
    if s.len() <= MAX_TEXT {
        return s;
    }
    let mut end = MAX_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

/// A step's verdict with its evidence.
#[derive(Clone, Debug, PartialEq)]
pub struct Judgement {
    pub verdict: Verdict,
    pub expected: Option<String>,
    pub observed: Option<String>,
    /// One line for the scenario's `reason` when this step ends it.
    pub reason: String,
}

impl Judgement {
    pub fn new(
        verdict: Verdict,
        expected: Option<String>,
        observed: Option<String>,
        reason: impl Into<String>,
    ) -> Judgement {
        Judgement {
            verdict,
            expected: expected.map(clip),
            observed: observed.map(clip),
            reason: reason.into(),
        }
    }
}

fn codes_text(codes: &[u16]) -> String {
    let v: Vec<String> = codes.iter().map(|c| format!("{c:04}")).collect();
    v.join(" | ")
}

fn refusal_text(e: &PeerError) -> String {
    let mut s = String::from("refused");
    if let Some(c) = e.code {
        s.push_str(&format!(" with code {c:04}"));
    } else {
        s.push_str(" without an MTP error code");
    }
    if let Some(st) = &e.grpc_status {
        s.push_str(&format!(", gRPC status {st}"));
    }
    if !e.message.is_empty() {
        s.push_str(&format!(": {}", e.message));
    }
    s
}

fn message_text(m: &ReceivedMessage) -> String {
    format!(
        "{} on {}: {}",
        m.frame_type,
        m.channel,
        value_to_diag(&m.body)
    )
}

fn control_error_text(e: &ControlError) -> String {
    match e.code {
        Some(c) => format!("{} {c:04}: {}", e.kind, e.message),
        None => format!("{}: {}", e.kind, e.message),
    }
}

fn wrong_observation(kind: &str, obs: &Observation) -> Judgement {
    Judgement::new(
        Verdict::Error,
        None,
        Some(obs.kind().to_owned()),
        format!(
            "harness error: the executor reported a {} for a {kind} step",
            obs.kind()
        ),
    )
}

/// The code carried by an `error` frame body (`code` as an integer or a 4-digit text).
fn body_code(body: &Value) -> Option<u16> {
    let Value::Map(entries) = body else {
        return None;
    };
    entries.iter().find_map(|(k, v)| {
        (k.as_text() == Some("code")).then_some(())?;
        match v {
            Value::Integer(i) => u16::try_from(*i).ok(),
            Value::Text(t) => t.parse().ok(),
            _ => None,
        }
    })
}

/// Judges `obs` for the step `kind` (whose templates resolved into `action`).
pub fn judge(kind: &StepKind, action: &Action, obs: &Observation) -> Judgement {
    match (kind, action) {
        (StepKind::Control(c), Action::Control { action: name, .. }) => {
            let expected = match &c.expect_error {
                Some(codes) if codes.is_empty() => format!("`{name}` refused with an mtp_error"),
                Some(codes) => format!("`{name}` refused with mtp_error {}", codes_text(codes)),
                None => format!("`{name}` succeeds"),
            };
            let Observation::Control(result) = obs else {
                return wrong_observation("control", obs);
            };
            match (result, &c.expect_error) {
                (Ok(v), None) => {
                    Judgement::new(Verdict::Pass, Some(expected), Some(value_to_diag(v)), "ok")
                }
                (Ok(v), Some(_)) => Judgement::new(
                    Verdict::Fail,
                    Some(expected),
                    Some(format!("accepted: {}", value_to_diag(v))),
                    format!("the IUT performed `{name}` where it must refuse"),
                ),
                (Err(e), _) if e.kind == "unsupported_action" => Judgement::new(
                    Verdict::Inconclusive,
                    Some(expected),
                    Some(control_error_text(e)),
                    format!("the IUT does not implement control action `{name}`"),
                ),
                (Err(e), Some(codes)) => {
                    let ok = e.kind == "mtp_error"
                        && (codes.is_empty() || e.code.is_some_and(|c| codes.contains(&c)));
                    if ok {
                        Judgement::new(
                            Verdict::Pass,
                            Some(expected),
                            Some(control_error_text(e)),
                            "ok",
                        )
                    } else {
                        Judgement::new(
                            Verdict::Fail,
                            Some(expected.clone()),
                            Some(control_error_text(e)),
                            format!("expected {expected}, got {}", control_error_text(e)),
                        )
                    }
                }
                (Err(e), None) => Judgement::new(
                    Verdict::Inconclusive,
                    Some(expected),
                    Some(control_error_text(e)),
                    format!("control action `{name}` failed: {}", control_error_text(e)),
                ),
            }
        }
        (StepKind::Send(_), Action::Send { .. }) => match obs {
            Observation::Sent | Observation::Received(_) | Observation::Refused(_) => {
                Judgement::new(Verdict::Pass, None, None, "ok")
            }
            other => wrong_observation("send", other),
        },
        (
            StepKind::Expect(_),
            Action::Expect {
                expectation,
                within,
                ..
            },
        ) => judge_expect(expectation, *within, obs),
        (StepKind::ExpectState(s), Action::ExpectState { .. }) => {
            let Observation::State { state, history } = obs else {
                return wrong_observation("expect_state", obs);
            };
            let mut expected = format!("state {}", s.state);
            if let Some(h) = &s.history {
                expected.push_str(&format!(", history [{}]", h.join(", ")));
            }
            let observed = format!("state {state}, history [{}]", history.join(", "));
            let ok = *state == s.state && s.history.as_ref().is_none_or(|h| h == history);
            if ok {
                Judgement::new(Verdict::Pass, Some(expected), Some(observed), "ok")
            } else {
                Judgement::new(
                    Verdict::Fail,
                    Some(expected.clone()),
                    Some(observed.clone()),
                    format!("expected {expected}, observed {observed}"),
                )
            }
        }
        (StepKind::ExpectAudit(a), Action::ExpectAudit { .. }) => {
            let Observation::Audit { entries, chain } = obs else {
                return wrong_observation("expect_audit", obs);
            };
            let mut expected = Vec::new();
            if a.chain_verifies {
                expected.push("hash chain verifies".to_owned());
            }
            if !a.events.is_empty() {
                expected.push(format!("events [{}]", a.events.join(", ")));
            }
            if !a.codes.is_empty() {
                expected.push(format!("error codes [{}]", codes_text(&a.codes)));
            }
            let events: Vec<&str> = entries.iter().map(|e| e.event.as_str()).collect();
            let codes: Vec<u16> = entries.iter().filter_map(|e| e.error_code).collect();
            let observed = format!(
                "{} entries, chain {}; events [{}]; error codes [{}]",
                entries.len(),
                match chain {
                    Ok(()) => "verifies".to_owned(),
                    Err(why) => format!("broken ({why})"),
                },
                events.join(", "),
                codes_text(&codes)
            );
            let mut problems = Vec::new();
            if a.chain_verifies
                && let Err(why) = chain
            {
                problems.push(format!("the audit hash chain does not verify: {why}"));
            }
            for e in &a.events {
                if !events.contains(&e.as_str()) {
                    problems.push(format!("no `{e}` entry"));
                }
            }
            for c in &a.codes {
                if !codes.contains(c) {
                    problems.push(format!("no entry with error code {c:04}"));
                }
            }
            if problems.is_empty() {
                Judgement::new(
                    Verdict::Pass,
                    Some(expected.join("; ")),
                    Some(observed),
                    "ok",
                )
            } else {
                Judgement::new(
                    Verdict::Fail,
                    Some(expected.join("; ")),
                    Some(observed),
                    problems.join("; "),
                )
            }
        }
        (StepKind::CheckVectors(v), Action::CheckVectors { .. }) => {
            let Observation::Vectors { checked, failures } = obs else {
                return wrong_observation("check_vectors", obs);
            };
            let expected = format!("every `{}` vector reproduced", v.family);
            if *checked == 0 {
                Judgement::new(
                    Verdict::Inconclusive,
                    Some(expected),
                    Some("no vector checked".into()),
                    format!("no `{}` vector could be checked", v.family),
                )
            } else if failures.is_empty() {
                Judgement::new(
                    Verdict::Pass,
                    Some(expected),
                    Some(format!("{checked} vectors reproduced")),
                    "ok",
                )
            } else {
                Judgement::new(
                    Verdict::Fail,
                    Some(expected),
                    Some(failures.join("\n")),
                    format!(
                        "{} of {checked} vectors differ: {}",
                        failures.len(),
                        failures[0]
                    ),
                )
            }
        }
        _ => Judgement::new(
            Verdict::Error,
            None,
            None,
            "harness error: step and action do not correspond",
        ),
    }
}

fn judge_expect(
    e: &ResolvedExpectation,
    within: std::time::Duration,
    obs: &Observation,
) -> Judgement {
    let silence = format!(
        "nothing within {}",
        crate::scenario::yaml::format_duration(within)
    );
    match e {
        ResolvedExpectation::Message { frame, matches }
        | ResolvedExpectation::Response { frame, matches } => {
            let what = if matches!(e, ResolvedExpectation::Message { .. }) {
                "message"
            } else {
                "response"
            };
            let expected = match matches {
                Some(m) => format!("{what} {frame} matching {}", value_to_diag(m)),
                None => format!("{what} {frame}"),
            };
            match obs {
                Observation::Received(m) => {
                    let ok = m.frame_type == *frame
                        && matches.as_ref().is_none_or(|t| subset_match(t, &m.body));
                    let observed = message_text(m);
                    if ok {
                        Judgement::new(Verdict::Pass, Some(expected), Some(observed), "ok")
                    } else if m.frame_type != *frame {
                        Judgement::new(
                            Verdict::Fail,
                            Some(expected),
                            Some(observed),
                            format!("expected {what} {frame}, the IUT sent {}", m.frame_type),
                        )
                    } else {
                        Judgement::new(
                            Verdict::Fail,
                            Some(expected),
                            Some(observed),
                            format!("the IUT's {frame} does not match the expected fields"),
                        )
                    }
                }
                Observation::Refused(err) => Judgement::new(
                    Verdict::Fail,
                    Some(expected),
                    Some(refusal_text(err)),
                    format!("expected {what} {frame}, the IUT {}", refusal_text(err)),
                ),
                Observation::Silence => Judgement::new(
                    Verdict::Fail,
                    Some(expected),
                    Some(silence.clone()),
                    format!("expected {what} {frame}, the IUT was silent ({silence})"),
                ),
                other => wrong_observation("expect", other),
            }
        }
        ResolvedExpectation::Error { codes, grpc_status } => {
            let mut expected = if codes.is_empty() {
                "an MTP error".to_owned()
            } else {
                format!("error {}", codes_text(codes))
            };
            if !grpc_status.is_empty() {
                expected.push_str(&format!(" with gRPC status {}", grpc_status.join(" | ")));
            }
            let (code, status, observed) = match obs {
                Observation::Refused(err) => (err.code, err.grpc_status.clone(), refusal_text(err)),
                Observation::Received(m) if m.frame_type == "error" => {
                    (body_code(&m.body), None, message_text(m))
                }
                Observation::Received(m) => {
                    return Judgement::new(
                        Verdict::Fail,
                        Some(expected.clone()),
                        Some(message_text(m)),
                        format!(
                            "expected {expected}, the IUT accepted and sent {}",
                            m.frame_type
                        ),
                    );
                }
                Observation::Silence => {
                    return Judgement::new(
                        Verdict::Fail,
                        Some(expected.clone()),
                        Some(silence.clone()),
                        format!("expected {expected}, the IUT was silent ({silence})"),
                    );
                }
                other => return wrong_observation("expect", other),
            };
            let code_ok = codes.is_empty() || code.is_some_and(|c| codes.contains(&c));
            let status_ok =
                grpc_status.is_empty() || status.as_ref().is_some_and(|s| grpc_status.contains(s));
            if code_ok && status_ok {
                Judgement::new(Verdict::Pass, Some(expected), Some(observed), "ok")
            } else {
                Judgement::new(
                    Verdict::Fail,
                    Some(expected.clone()),
                    Some(observed.clone()),
                    format!("expected {expected}, the IUT {observed}"),
                )
            }
        }
        ResolvedExpectation::Silence => match obs {
            Observation::Silence => {
                Judgement::new(Verdict::Pass, Some(silence.clone()), Some(silence), "ok")
            }
            Observation::Received(m) => Judgement::new(
                Verdict::Fail,
                Some(silence),
                Some(message_text(m)),
                format!("expected silence, the IUT sent {}", m.frame_type),
            ),
            Observation::Refused(err) => Judgement::new(
                Verdict::Fail,
                Some(silence),
                Some(refusal_text(err)),
                format!("expected silence, the IUT {}", refusal_text(err)),
            ),
            other => wrong_observation("expect", other),
        },
    }
}

/// The value an observation offers to `capture` (and to later `capture` steps).
pub fn capture_root(obs: &Observation) -> Option<Value> {
    match obs {
        Observation::Control(Ok(v)) => Some(v.clone()),
        Observation::Received(m) => Some(Value::map([
            ("type", Value::text(&m.frame_type)),
            ("body", m.body.clone()),
        ])),
        Observation::Refused(e) => Some(Value::map([
            (
                "code",
                e.code.map_or(Value::Null, |c| Value::Integer(c.into())),
            ),
            (
                "grpc_status",
                e.grpc_status.clone().map_or(Value::Null, Value::Text),
            ),
            ("message", Value::text(&e.message)),
        ])),
        _ => None,
    }
}

/// Stores each `name ← path` of `specs` looked up in `root`; `Err(path)` for the first
/// path that is not there.
pub fn apply_captures(
    specs: &[CaptureSpec],
    root: &Value,
    vars: &mut Variables,
) -> Result<(), String> {
    for s in specs {
        let v = s.path.lookup(root).ok_or_else(|| s.path.to_string())?;
        vars.set(s.name.clone(), v.clone());
    }
    Ok(())
}
