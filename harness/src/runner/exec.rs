//! Runs one scenario: starts its executor, resolves and executes each step under its time
//! budget, judges, captures, and assembles the one verdict with its evidence.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use mtp_protocol::cbor::Value;
use mtp_reports::model::{ScenarioResult, StepPhase, StepResult, TranscriptEntry, Verdict};

use super::executor::{
    Action, ExecutorFactory, ResolvedChannel, ResolvedExpectation, ScenarioContext, StepExecutor,
    StepFault, StepInput, StepReport,
};
use super::judge::{Judgement, apply_captures, capture_root, clip, judge};
use crate::iut::Timeouts;
use crate::scenario::template::{ResolveError, Variables};
use crate::scenario::{CaptureRoot, Channel, Expectation, Fault, Step, StepKind};

/// Added to an expectation's `within` for the step's hard budget, so that the executor can
/// report silence itself before the runner gives up on it.
pub const GRACE: Duration = Duration::from_secs(1);
/// How long `finish` may take.
const FINISH_BUDGET: Duration = Duration::from_secs(5);

/// Current time as canonical RFC 3339 (millisecond precision).
pub fn now_rfc3339() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    mtp_protocol::time::Timestamp::from_unix_nanos(ms.saturating_mul(1_000_000)).to_rfc3339()
}

/// The text of a panic payload.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-text panic payload)".to_owned()
    }
}

/// The verdict of a step whose budget ran out: silence of the IUT where a reply was required
/// is `fail`; a control action that never returned leaves a precondition unmet
/// (`inconclusive`); `capture` and `sleep` cannot hang unless the harness is broken (`error`).
/// In `setup`, `fail` becomes `inconclusive`.
pub fn timeout_verdict(kind: &StepKind, phase: StepPhase) -> Verdict {
    let v = match kind {
        StepKind::Control(_) => Verdict::Inconclusive,
        StepKind::Send(_)
        | StepKind::Expect(_)
        | StepKind::ExpectState(_)
        | StepKind::ExpectAudit(_)
        | StepKind::CheckVectors(_) => Verdict::Fail,
        StepKind::Capture(_) | StepKind::Sleep(_) => Verdict::Error,
    };
    in_phase(v, phase)
}

/// A setup step cannot make a scenario fail: it did not reach the state under test.
fn in_phase(v: Verdict, phase: StepPhase) -> Verdict {
    match (phase, v) {
        (StepPhase::Setup, Verdict::Fail) => Verdict::Inconclusive,
        _ => v,
    }
}

/// The `within` of an expectation step (default: the IUT description's step timeout).
fn within_of(step: &Step, defaults: &Timeouts) -> Option<Duration> {
    let w = match &step.kind {
        StepKind::Expect(e) => e.within,
        StepKind::ExpectState(s) => s.within,
        StepKind::ExpectAudit(a) => a.within,
        _ => return None,
    };
    Some(w.unwrap_or(defaults.step))
}

/// The step's hard budget: its `timeout`, else `within` + [`GRACE`] for expectations and
/// `sleep`, else the IUT description's step timeout.
pub fn step_budget(step: &Step, defaults: &Timeouts) -> Duration {
    if let Some(t) = step.timeout {
        return t;
    }
    if let Some(w) = within_of(step, defaults) {
        return w + GRACE;
    }
    match &step.kind {
        StepKind::Sleep(d) => *d + GRACE,
        _ => defaults.step,
    }
}

fn channel(c: &Channel, vars: &Variables) -> Result<ResolvedChannel, ResolveError> {
    Ok(match c {
        Channel::Grpc { service, method } => ResolvedChannel::Grpc {
            service: *service,
            method: method.clone(),
        },
        Channel::Nats { subject } => ResolvedChannel::Nats {
            subject: subject.resolve(vars)?,
        },
    })
}

/// The executor's action for `step`, templates resolved; `None` for `capture` and `sleep`.
pub fn resolve_action(
    step: &Step,
    vars: &Variables,
    within: Duration,
) -> Result<Option<Action>, ResolveError> {
    Ok(Some(match &step.kind {
        StepKind::Control(c) => Action::Control {
            action: c.action.clone(),
            args: c.args.resolve(vars)?,
        },
        StepKind::Send(s) => {
            let mut reused_uuid = None;
            for f in &s.faults {
                if let Fault::ReusedUuid { from: Some(v) } = f {
                    reused_uuid = Some(
                        vars.get(v)
                            .cloned()
                            .ok_or_else(|| ResolveError::Unbound(v.clone()))?,
                    );
                }
            }
            Action::Send {
                persona: s.persona.clone(),
                frame: s.frame.clone(),
                channel: channel(&s.channel, vars)?,
                body: s.template.resolve(vars)?,
                faults: s.faults.clone(),
                reused_uuid,
            }
        }
        StepKind::Expect(e) => {
            let resolve_opt = |m: &Option<crate::scenario::template::Template>| {
                m.as_ref().map(|t| t.resolve(vars)).transpose()
            };
            let expectation = match &e.what {
                Expectation::Message { frame, matches } => ResolvedExpectation::Message {
                    frame: frame.clone(),
                    matches: resolve_opt(matches)?,
                },
                Expectation::Response { frame, matches } => ResolvedExpectation::Response {
                    frame: frame.clone(),
                    matches: resolve_opt(matches)?,
                },
                Expectation::Error { codes, grpc_status } => ResolvedExpectation::Error {
                    codes: codes.clone(),
                    grpc_status: grpc_status.clone(),
                },
                Expectation::Silence => ResolvedExpectation::Silence,
            };
            Action::Expect {
                expectation,
                channel: e.channel.as_ref().map(|c| channel(c, vars)).transpose()?,
                within,
            }
        }
        StepKind::ExpectState(s) => Action::ExpectState {
            transaction: s.transaction.resolve(vars)?,
            state: s.state.clone(),
            within,
        },
        StepKind::ExpectAudit(a) => Action::ExpectAudit {
            transaction: a
                .transaction
                .as_ref()
                .map(|t| t.resolve(vars))
                .transpose()?,
            events: a.events.clone(),
            codes: a.codes.clone(),
            within,
        },
        StepKind::CheckVectors(v) => Action::CheckVectors {
            family: v.family.clone(),
            ids: v.ids.clone(),
            operations: v.operations.clone(),
        },
        StepKind::Capture(_) | StepKind::Sleep(_) => return Ok(None),
    }))
}

/// The last values `capture` steps can read.
#[derive(Default)]
struct Memory {
    received: Option<Value>,
    control: Option<Value>,
    sent: Option<Value>,
}

impl Memory {
    fn get(&self, root: CaptureRoot) -> Option<&Value> {
        match root {
            CaptureRoot::Received => self.received.as_ref(),
            CaptureRoot::Control => self.control.as_ref(),
            CaptureRoot::Sent => self.sent.as_ref(),
        }
    }
}

struct StepOutcome {
    judgement: Judgement,
    transcript: Vec<TranscriptEntry>,
    /// The executor's oracle saw the IUT violate the specification: a failure even in setup.
    violation: bool,
}

fn outcome(verdict: Verdict, reason: impl Into<String>) -> StepOutcome {
    StepOutcome {
        judgement: Judgement::new(verdict, None, None, reason),
        transcript: Vec::new(),
        violation: false,
    }
}

/// Runs one scenario to its verdict. Never panics out: a panic in the executor (or here)
/// becomes `error`.
pub async fn run_scenario<F: ExecutorFactory>(
    factory: Arc<F>,
    ctx: ScenarioContext,
    replay: String,
) -> ScenarioResult {
    let started = now_rfc3339();
    let t0 = Instant::now();
    let scenario = ctx.scenario.clone();
    let defaults = ctx.iut.timeouts;
    let budget = scenario.timeout.unwrap_or(defaults.scenario);
    let deadline = t0 + budget;
    let mut steps: Vec<StepResult> = Vec::new();

    let finish = |verdict: Verdict, reason: String, steps: Vec<StepResult>| ScenarioResult {
        scenario_id: scenario.id.clone(),
        title: scenario.title.clone(),
        layer: scenario.layer,
        level: scenario.level,
        requirements: scenario.requirements.clone(),
        verdict,
        reason,
        started: started.clone(),
        finished: now_rfc3339(),
        duration_ms: t0.elapsed().as_millis() as u64,
        seed: ctx.seed,
        replay: replay.clone(),
        steps,
    };

    // Start the executor (connect, reset the IUT with the seed, ...).
    let start_budget = defaults.connect.max(defaults.step).min(budget);
    let started_exec = tokio::time::timeout(
        start_budget,
        AssertUnwindSafe(factory.start(&ctx)).catch_unwind(),
    )
    .await;
    let mut executor = match started_exec {
        Ok(Ok(Ok(e))) => e,
        Ok(Ok(Err(fault))) => {
            let (v, why) = match fault {
                StepFault::Unmet(m) => (Verdict::Inconclusive, m),
                StepFault::Infrastructure(m) => (Verdict::Error, m),
                StepFault::Violation { expected, observed } => (
                    Verdict::Error,
                    format!(
                        "executor start judged a violation (expected {expected}, observed {observed})"
                    ),
                ),
            };
            return finish(v, format!("scenario start: {why}"), steps);
        }
        Ok(Err(p)) => {
            return finish(
                Verdict::Error,
                format!(
                    "harness panic while starting the scenario: {}",
                    panic_message(&*p)
                ),
                steps,
            );
        }
        Err(_) => {
            return finish(
                Verdict::Error,
                format!(
                    "the executor did not start within {} ms",
                    start_budget.as_millis()
                ),
                steps,
            );
        }
    };

    let mut vars = Variables::new();
    for (k, v) in executor.variables() {
        vars.set(k, v);
    }
    vars.set("scenario_id", Value::text(&scenario.id));
    vars.set("seed", Value::Integer(ctx.seed.into()));
    let mut memory = Memory::default();

    let all: Vec<(StepPhase, &Step)> = scenario
        .setup
        .iter()
        .map(|s| (StepPhase::Setup, s))
        .chain(scenario.steps.iter().map(|s| (StepPhase::Main, s)))
        .collect();
    let total = all.len();
    let mut end: Option<(Verdict, String)> = None;

    for (index, (phase, step)) in all.into_iter().enumerate() {
        let index = index as u32;
        let t_step = Instant::now();
        let remaining = deadline.saturating_duration_since(t_step);
        let own = step_budget(step, &defaults);
        let step_budget = own.min(remaining);
        let cut_by_scenario = step_budget < own;
        let within = within_of(step, &defaults)
            .unwrap_or(Duration::ZERO)
            .min(step_budget.saturating_sub(GRACE.min(step_budget / 2)));
        let timed_out = |kind: &StepKind| {
            let why = if cut_by_scenario {
                format!(
                    "the scenario timeout ({} ms) expired during this step",
                    budget.as_millis()
                )
            } else {
                format!("no result within the step budget of {} ms", own.as_millis())
            };
            outcome(timeout_verdict(kind, phase), why)
        };

        let out: StepOutcome = match &step.kind {
            StepKind::Sleep(d) => {
                if *d > step_budget {
                    tokio::time::sleep(step_budget).await;
                    timed_out(&step.kind)
                } else {
                    tokio::time::sleep(*d).await;
                    outcome(Verdict::Pass, "ok")
                }
            }
            StepKind::Capture(c) => {
                let mut result = outcome(Verdict::Pass, "ok");
                for (root, spec) in &c.values {
                    let Some(value) = memory.get(*root) else {
                        result = outcome(
                            Verdict::Error,
                            format!(
                                "scenario error: nothing {} before capturing `{}`",
                                match root {
                                    CaptureRoot::Received => "received",
                                    CaptureRoot::Control => "returned by a control action",
                                    CaptureRoot::Sent => "sent",
                                },
                                spec.name
                            ),
                        );
                        break;
                    };
                    if let Err(path) = apply_captures(std::slice::from_ref(spec), value, &mut vars)
                    {
                        let (v, why) = match root {
                            CaptureRoot::Received => (
                                in_phase(Verdict::Fail, phase),
                                format!("the IUT's message has no `{path}`"),
                            ),
                            CaptureRoot::Control => (
                                Verdict::Inconclusive,
                                format!("the control result has no `{path}`"),
                            ),
                            CaptureRoot::Sent => (
                                Verdict::Error,
                                format!("scenario error: the sent message has no `{path}`"),
                            ),
                        };
                        result = StepOutcome {
                            judgement: Judgement::new(
                                v,
                                Some(format!("{}.{path}", root.name())),
                                Some(clip(mtp_protocol::cbor::diag::value_to_diag(value))),
                                why,
                            ),
                            transcript: Vec::new(),
                            violation: false,
                        };
                        break;
                    }
                }
                result
            }
            _ => match resolve_action(step, &vars, within) {
                Err(e) => outcome(Verdict::Error, format!("harness error: {e}")),
                Ok(None) => outcome(Verdict::Error, "harness error: nothing to execute"),
                Ok(Some(action)) => {
                    let input = StepInput {
                        index,
                        phase,
                        step: step.clone(),
                        action: action.clone(),
                        budget: step_budget,
                    };
                    let fut = AssertUnwindSafe(executor.execute(input)).catch_unwind();
                    match tokio::time::timeout(step_budget, fut).await {
                        Err(_) => timed_out(&step.kind),
                        Ok(Err(p)) => outcome(
                            Verdict::Error,
                            format!("harness panic: {}", panic_message(&*p)),
                        ),
                        Ok(Ok(report)) => {
                            judge_report(step, phase, &action, report, &mut vars, &mut memory)
                        }
                    }
                }
            },
        };

        let verdict = if out.violation {
            out.judgement.verdict
        } else {
            in_phase(out.judgement.verdict, phase)
        };
        steps.push(StepResult {
            index,
            phase,
            kind: step.kind.name().to_owned(),
            description: step.summary(),
            verdict,
            expected: out.judgement.expected.clone(),
            observed: out.judgement.observed.clone(),
            duration_ms: t_step.elapsed().as_millis() as u64,
            transcript: out.transcript,
        });
        if verdict != Verdict::Pass {
            let where_ = match phase {
                StepPhase::Setup => "setup step",
                StepPhase::Main => "step",
            };
            end = Some((
                verdict,
                format!(
                    "{where_} {} of {total} ({}, line {}): {}",
                    index + 1,
                    step.summary(),
                    step.line,
                    out.judgement.reason
                ),
            ));
            break;
        }
    }

    // Release the executor whatever happened; its failures do not change the verdict.
    let _ = tokio::time::timeout(
        FINISH_BUDGET,
        AssertUnwindSafe(executor.finish()).catch_unwind(),
    )
    .await;

    let (verdict, reason) = end.unwrap_or((Verdict::Pass, format!("all {total} steps passed")));
    finish(verdict, reason, steps)
}

/// Turns an executor report into the step's outcome (judging, captures, memory).
fn judge_report(
    step: &Step,
    phase: StepPhase,
    action: &Action,
    report: StepReport,
    vars: &mut Variables,
    memory: &mut Memory,
) -> StepOutcome {
    let transcript = report.transcript;
    let completed = report.sent;
    let obs = match report.outcome {
        Ok(o) => o,
        Err(StepFault::Violation { expected, observed }) => {
            let reason = format!("expected {expected}; observed {observed}");
            return StepOutcome {
                judgement: Judgement::new(Verdict::Fail, Some(expected), Some(observed), reason),
                transcript,
                violation: true,
            };
        }
        Err(StepFault::Unmet(m)) => {
            return StepOutcome {
                judgement: Judgement::new(Verdict::Inconclusive, None, None, m),
                transcript,
                violation: false,
            };
        }
        Err(StepFault::Infrastructure(m)) => {
            return StepOutcome {
                judgement: Judgement::new(Verdict::Error, None, None, m),
                transcript,
                violation: false,
            };
        }
    };
    let mut judgement = judge(&step.kind, action, &obs);
    if judgement.verdict == Verdict::Pass {
        // Remember what later `capture` steps may read.
        match (&obs, action) {
            (super::executor::Observation::Control(Ok(v)), _) => memory.control = Some(v.clone()),
            (
                super::executor::Observation::Received(_)
                | super::executor::Observation::Refused(_),
                _,
            ) => {
                memory.received = capture_root(&obs);
            }
            _ => {}
        }
        if let Action::Send { frame, body, .. } = action {
            memory.sent = Some(Value::map([
                ("type", Value::text(frame)),
                ("body", completed.unwrap_or_else(|| body.clone())),
            ]));
        }
        let specs = match &step.kind {
            StepKind::Control(c) => c.capture.as_slice(),
            StepKind::Expect(e) => e.capture.as_slice(),
            _ => &[],
        };
        if !specs.is_empty() {
            let root = capture_root(&obs).unwrap_or(Value::Null);
            if let Err(path) = apply_captures(specs, &root, vars) {
                let (v, why) = match &step.kind {
                    StepKind::Control(_) => (
                        Verdict::Inconclusive,
                        format!("the control result has no `{path}`"),
                    ),
                    _ => (
                        in_phase(Verdict::Fail, phase),
                        format!("the IUT's message has no `{path}`"),
                    ),
                };
                judgement = Judgement::new(
                    v,
                    Some(format!("a value at `{path}`")),
                    judgement.observed,
                    why,
                );
            }
        }
    }
    StepOutcome {
        judgement,
        transcript,
        violation: false,
    }
}
