//! The dry-run executor: contacts no IUT and plays a perfectly conforming one, answering
//! every step with exactly what the scenario expects (and with the fields later steps
//! capture). A dry run exercises the scenario files and the runner end to end — variables,
//! captures, seeds, results streaming, resume — and says nothing about any implementation;
//! its results header names the executor `dry-run`.

use std::sync::Arc;

use mtp_protocol::cbor::Value;

use super::executor::*;
use crate::scenario::template::{PathSeg, ValuePath};
use crate::scenario::{CaptureRoot, Scenario, StepKind};

/// Factory of [`DryRunExecutor`]s.
#[derive(Clone, Debug, Default)]
pub struct DryRun;

/// One scenario's dry executor.
pub struct DryRunExecutor {
    scenario: Arc<Scenario>,
}

impl ExecutorFactory for DryRun {
    type Executor = DryRunExecutor;

    fn name(&self) -> String {
        "dry-run".to_owned()
    }

    async fn start(&self, ctx: &ScenarioContext) -> Result<DryRunExecutor, StepFault> {
        Ok(DryRunExecutor {
            scenario: ctx.scenario.clone(),
        })
    }
}

/// Sets `path` inside `root` to `v`, creating maps (and padding arrays) on the way.
pub fn put_path(root: &mut Value, path: &[PathSeg], v: Value) {
    let Some((first, rest)) = path.split_first() else {
        *root = v;
        return;
    };
    match first {
        PathSeg::Key(k) => {
            if !matches!(root, Value::Map(_)) {
                *root = Value::Map(Vec::new());
            }
            let Value::Map(entries) = root else { return };
            let pos = entries
                .iter()
                .position(|(ek, _)| ek.as_text() == Some(k.as_str()));
            let i = match pos {
                Some(i) => i,
                None => {
                    entries.push((Value::text(k), Value::Null));
                    entries.len() - 1
                }
            };
            put_path(&mut entries[i].1, rest, v);
        }
        PathSeg::Index(n) => {
            if !matches!(root, Value::Array(_)) {
                *root = Value::Array(Vec::new());
            }
            let Value::Array(items) = root else { return };
            // Bounded: scenario paths are validated, and indices stay small in practice.
            let n = (*n).min(1024);
            while items.len() <= n {
                items.push(Value::Null);
            }
            put_path(&mut items[n], rest, v);
        }
    }
}

impl DryRunExecutor {
    /// Paths (relative to the observation's capture root) that the step at `index` and the
    /// `capture` steps after it read from the same root, until a step replaces that root.
    fn wanted(&self, index: usize, root: CaptureRoot) -> Vec<(String, ValuePath)> {
        let steps: Vec<_> = self.scenario.all_steps().collect();
        let mut out = Vec::new();
        if let Some(step) = steps.get(index) {
            match &step.kind {
                StepKind::Control(c) => {
                    out.extend(c.capture.iter().map(|s| (s.name.clone(), s.path.clone())))
                }
                StepKind::Expect(e) => {
                    out.extend(e.capture.iter().map(|s| (s.name.clone(), s.path.clone())))
                }
                _ => {}
            }
        }
        for step in steps.iter().skip(index + 1) {
            match (&step.kind, root) {
                (StepKind::Capture(c), _) => out.extend(
                    c.values
                        .iter()
                        .filter(|(r, _)| *r == root)
                        .map(|(_, s)| (s.name.clone(), s.path.clone())),
                ),
                (StepKind::Control(_), CaptureRoot::Control)
                | (StepKind::Expect(_), CaptureRoot::Received)
                | (StepKind::Send(_), CaptureRoot::Sent) => break,
                _ => {}
            }
        }
        out
    }
}

fn placeholder(name: &str) -> Value {
    Value::text(format!("dry:{name}"))
}

impl StepExecutor for DryRunExecutor {
    fn variables(&self) -> Vec<(String, Value)> {
        vec![
            ("iut_did".into(), Value::text("did:mtp:dry-run-iut")),
            ("harness_did".into(), Value::text("did:mtp:dry-run-harness")),
            (
                "harness_did_document".into(),
                Value::text("{\"id\": \"did:mtp:dry-run-harness\"}"),
            ),
            ("subject_prefix".into(), Value::text("mtp")),
        ]
    }

    async fn execute(&mut self, input: StepInput) -> StepReport {
        let index = input.index as usize;
        let obs = match &input.action {
            Action::Control { .. } => {
                if let StepKind::Control(c) = &input.step.kind
                    && let Some(codes) = &c.expect_error
                {
                    return StepReport::observed(Observation::Control(Err(ControlError {
                        kind: "mtp_error".into(),
                        code: Some(codes.first().copied().unwrap_or(103)),
                        message: "dry run".into(),
                    })));
                }
                let mut result = Value::Map(Vec::new());
                for (name, path) in self.wanted(index, CaptureRoot::Control) {
                    put_path(&mut result, &path.0, placeholder(&name));
                }
                Observation::Control(Ok(result))
            }
            Action::Send { frame, body, .. } => {
                // The body as a conforming executor would complete it: every path a later
                // `capture: sent.…` reads gets a placeholder.
                let mut sent = Value::map([("type", Value::text(frame)), ("body", body.clone())]);
                let wanted = self.wanted(index, CaptureRoot::Sent);
                if wanted.is_empty() {
                    return StepReport::observed(Observation::Sent);
                }
                for (name, path) in wanted {
                    if path.root() != Some("type") && path.lookup(&sent).is_none() {
                        put_path(&mut sent, &path.0, placeholder(&name));
                    }
                }
                let body = ValuePath(vec![PathSeg::Key("body".into())])
                    .lookup(&sent)
                    .cloned();
                let mut report = StepReport::observed(Observation::Sent);
                report.sent = body;
                return report;
            }
            Action::Expect {
                expectation,
                channel,
                ..
            } => match expectation {
                ResolvedExpectation::Message { frame, matches }
                | ResolvedExpectation::Response { frame, matches } => {
                    let mut frame_value = Value::map([
                        ("type", Value::text(frame)),
                        ("body", matches.clone().unwrap_or(Value::Map(Vec::new()))),
                    ]);
                    for (name, path) in self.wanted(index, CaptureRoot::Received) {
                        if path.root() != Some("type") {
                            put_path(&mut frame_value, &path.0, placeholder(&name));
                        }
                    }
                    let body = ValuePath(vec![PathSeg::Key("body".into())])
                        .lookup(&frame_value)
                        .cloned()
                        .unwrap_or(Value::Null);
                    Observation::Received(ReceivedMessage {
                        channel: channel
                            .as_ref()
                            .map_or_else(|| "dry-run".to_owned(), |c| c.to_string()),
                        frame_type: frame.clone(),
                        body,
                    })
                }
                ResolvedExpectation::Error { codes, grpc_status } => {
                    Observation::Refused(PeerError {
                        code: Some(codes.first().copied().unwrap_or(103)),
                        grpc_status: grpc_status.first().cloned(),
                        message: "dry run".into(),
                    })
                }
                ResolvedExpectation::Silence => Observation::Silence,
            },
            Action::ExpectState { state, .. } => {
                let history = match &input.step.kind {
                    StepKind::ExpectState(s) => {
                        s.history.clone().unwrap_or_else(|| vec![state.clone()])
                    }
                    _ => vec![state.clone()],
                };
                Observation::State {
                    state: state.clone(),
                    history,
                }
            }
            Action::ExpectAudit { events, codes, .. } => Observation::Audit {
                entries: events
                    .iter()
                    .map(|e| AuditObservation {
                        event: e.clone(),
                        error_code: None,
                    })
                    .chain(codes.iter().map(|c| AuditObservation {
                        event: "error".into(),
                        error_code: Some(*c),
                    }))
                    .collect(),
                chain: Ok(()),
            },
            Action::CheckVectors { ids, .. } => Observation::Vectors {
                checked: ids.len().max(1) as u32,
                failures: Vec::new(),
            },
        };
        StepReport::observed(obs)
    }

    async fn finish(self) {}
}
