//! The scenario runner's own tests: loader diagnostics, every verdict kind, wrong
//! expectations, timeouts, panics, JSONL streaming and resume, seed stability, and the CLI.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use mtp_harness::iut::{self, IutDescription};
use mtp_harness::runner::scripted::{Script, Scripted};
use mtp_harness::runner::{
    self, Action, AuditObservation, ControlError, ExecutorFactory, Observation, PeerError,
    ReceivedMessage, ReplaySpec, RunError, RunOptions, RunOutput, Silent, StepFault, StepReport,
    scenario_seed,
};
use mtp_harness::scenario::{self, Scenario};
use mtp_protocol::cbor::Value;
use mtp_reports::model::{RunOutcome, StepPhase, Verdict, jsonl};

// ---------------------------------------------------------------------------------------
// Helpers

fn iut_with_roles(dir: &Path, roles: &str) -> IutDescription {
    let text = iut::TEMPLATE.replace("roles: [requester, provider]", &format!("roles: [{roles}]"));
    let text = text
        .replace("step: 10s ", "step: 400ms")
        .replace("scenario: 120s", "scenario: 20s");
    let path = dir.join("iut.yaml");
    std::fs::write(&path, &text).unwrap();
    iut::load(&path).unwrap()
}

fn iut(dir: &Path) -> IutDescription {
    iut_with_roles(dir, "requester, provider")
}

/// Parses scenario YAML documents (one per string).
fn scenarios(texts: &[&str]) -> Vec<Scenario> {
    let mut out = Vec::new();
    for (i, t) in texts.iter().enumerate() {
        let file = PathBuf::from(format!("mem-{i}.yaml"));
        match scenario::parse_str(t, &file) {
            Ok(s) => out.extend(s),
            Err(e) => panic!("scenario {i} does not load:\n{e}"),
        }
    }
    out
}

/// A minimal scenario with the given id and steps (YAML, indented by 2).
fn sc(id: &str, level: &str, extra: &str, steps: &str) -> String {
    format!(
        "id: {id}\ntitle: test {id}\nrequirements: [SPEC-II-A-06]\nlayer: discovery\nlevel: {level}\n{extra}steps:\n{steps}"
    )
}

const SEND_AND_EXPECT_ERROR: &str = "  - send:\n      frame: offer\n      channel: grpc:Index/Publish\n      template: {value_type: inference.text}\n      faults: [bad_signature]\n  - expect:\n      error: {codes: [2101], grpc_status: [INVALID_ARGUMENT]}\n      within: 200ms\n";

fn opts(out: &Path, seed: u64, jobs: usize, resume: bool) -> RunOptions {
    RunOptions {
        seed: Some(seed),
        jobs,
        out_dir: out.to_owned(),
        resume,
        replay: ReplaySpec {
            iut: "iut.yaml".into(),
            scenarios: Vec::new(),
            extra: Vec::new(),
        },
        suite_version: "test".into(),
    }
}

fn run<F: ExecutorFactory>(
    factory: F,
    iut: &IutDescription,
    scenarios: Vec<Scenario>,
    opts: RunOptions,
) -> Result<RunOutput, RunError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(runner::run(
        Arc::new(factory),
        Arc::new(iut.clone()),
        scenarios,
        opts,
        &mut Silent,
    ))
}

fn verdict_of(out: &RunOutput, id: &str) -> (Verdict, String) {
    let r = out
        .results
        .results
        .iter()
        .find(|r| r.scenario_id == id)
        .unwrap_or_else(|| panic!("no result for {id}"));
    (r.verdict, r.reason.clone())
}

fn refused(code: u16, status: &str) -> Script {
    Script::Report(StepReport::observed(Observation::Refused(PeerError {
        code: Some(code),
        grpc_status: Some(status.into()),
        message: "refused".into(),
    })))
}

fn received(frame: &str, body: Value) -> Script {
    Script::Report(StepReport::observed(Observation::Received(
        ReceivedMessage {
            channel: "grpc:Agent/Negotiate".into(),
            frame_type: frame.into(),
            body,
        },
    )))
}

fn is_expect(a: &Action) -> bool {
    matches!(a, Action::Expect { .. })
}

// ---------------------------------------------------------------------------------------
// Loader

struct Case {
    name: &'static str,
    text: String,
    line: usize,
    message: &'static str,
}

#[test]
fn loader_errors_carry_file_and_line() {
    let base =
        "id: X-LOAD-001\ntitle: t\nrequirements: [SPEC-II-A-06]\nlayer: discovery\nlevel: MUST\n";
    let cases = vec![
        Case {
            name: "unknown step kind",
            text: format!("{base}steps:\n  - control: hello\n  - sned:\n      frame: offer\n"),
            line: 8,
            message: "unknown step kind `sned`",
        },
        Case {
            name: "unknown fault",
            text: format!("{base}steps:\n  - send:\n      frame: offer\n      channel: grpc:Index/Publish\n      faults: [bad_signature, flip_bits]\n"),
            line: 10,
            message: "unknown fault `flip_bits`",
        },
        Case {
            name: "missing field",
            text: format!("{base}steps:\n  - send:\n      frame: offer\n"),
            line: 8,
            message: "missing field `channel`",
        },
        Case {
            name: "unknown requirement",
            text: "id: X-LOAD-001\ntitle: t\nrequirements:\n  - SPEC-II-A-06\n  - SPEC-NOPE-99\nlayer: discovery\nlevel: MUST\nsteps:\n  - control: hello\n".into(),
            line: 5,
            message: "unknown requirement id `SPEC-NOPE-99`",
        },
        Case {
            name: "unknown field",
            text: format!("{base}priority: high\nsteps:\n  - control: hello\n"),
            line: 6,
            message: "unknown field `priority`",
        },
        Case {
            name: "uncaptured variable",
            text: format!("{base}steps:\n  - control: hello\n  - control:\n      action: transaction\n      args: {{transaction_id: \"${{tx}}\"}}\n"),
            line: 8,
            message: "`${tx}` is used before any step captures it",
        },
        Case {
            name: "bad level",
            text: "id: X-LOAD-001\ntitle: t\nrequirements: [SPEC-II-A-06]\nlayer: discovery\nlevel: must\nsteps:\n  - control: hello\n".into(),
            line: 5,
            message: "level must be MUST, SHOULD or MAY",
        },
        Case {
            name: "unknown error code",
            text: format!("{base}steps:\n  - expect:\n      error: {{codes: [9999]}}\n"),
            line: 8,
            message: "unknown error code 9999",
        },
        Case {
            name: "unknown gRPC method",
            text: format!("{base}steps:\n  - send:\n      frame: offer\n      channel: grpc:Agent/Publish\n"),
            line: 9,
            message: "unknown method `Agent/Publish`",
        },
        Case {
            name: "unknown state",
            text: format!("{base}steps:\n  - expect_state:\n      transaction: abc\n      state: done\n"),
            line: 9,
            message: "unknown transaction state `done`",
        },
        Case {
            name: "two signature faults",
            text: format!("{base}steps:\n  - send:\n      frame: offer\n      channel: grpc:Index/Publish\n      faults:\n        - bad_signature\n        - missing_signature\n"),
            line: 12,
            message: "both decide the signature",
        },
        Case {
            name: "YAML syntax",
            text: format!("{base}steps:\n  - control: {{action: hello\n"),
            line: 8,
            message: "YAML syntax error",
        },
        Case {
            name: "duplicate key",
            text: format!("{base}level: SHOULD\nsteps:\n  - control: hello\n"),
            line: 6,
            message: "duplicate key `level`",
        },
    ];
    for c in cases {
        let file = PathBuf::from(format!("case-{}.yaml", c.name.replace(' ', "-")));
        let err = match scenario::parse_str(&c.text, &file) {
            Ok(_) => panic!("{}: loaded without error", c.name),
            Err(e) => e,
        };
        let d = err
            .diagnostics
            .iter()
            .find(|d| d.message.contains(c.message))
            .unwrap_or_else(|| panic!("{}: no `{}` in\n{err}", c.name, c.message));
        assert_eq!(d.file, file, "{}", c.name);
        assert_eq!(d.line, c.line, "{}: {d}", c.name);
        let shown = d.to_string();
        assert!(
            shown.starts_with(&format!("{}:{}: ", file.display(), c.line)),
            "{}: {shown}",
            c.name
        );
    }
}

#[test]
fn duplicate_ids_across_files_name_both_places() {
    let dir = tempfile::tempdir().unwrap();
    let text = sc("X-DUP-001", "MUST", "", "  - control: hello\n");
    std::fs::write(dir.path().join("a.yaml"), &text).unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/b.yml"), &text).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a scenario").unwrap();
    let err = scenario::load_paths(&[dir.path().to_owned()]).unwrap_err();
    assert_eq!(err.diagnostics.len(), 1, "{err}");
    let d = &err.diagnostics[0];
    assert!(d.file.ends_with("sub/b.yml"), "{d}");
    assert_eq!(d.line, 1);
    assert!(
        d.message.contains("duplicate scenario id `X-DUP-001`"),
        "{d}"
    );
    assert!(d.message.contains("a.yaml:1"), "{d}");
}

#[test]
fn garbage_inputs_are_errors_not_panics() {
    let inputs: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"- 1\n- 2\n".to_vec(),
        b"id: [\n".to_vec(),
        vec![0xff, 0xfe, 0x00],
        b"steps: 5\n".to_vec(),
        b"&a [*a]\n".to_vec(),
        b"id: A-1\nsteps:\n  - {}\n  - []\n  - null\n  - send: {faults: {x: 1}}\n".to_vec(),
        b"id: A-1\nsteps:\n  - expect: {message: offer, error: any}\n".to_vec(),
        b"id: A-1\nsteps:\n  - send: {frame: Offer!, channel: nats:}\n".to_vec(),
        "ключ: значение\n".as_bytes().to_vec(),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (i, bytes) in inputs.iter().enumerate() {
        let p = dir.path().join(format!("g{i}.yaml"));
        std::fs::write(&p, bytes).unwrap();
        assert!(scenario::load_file(&p).is_err(), "input {i} loaded");
    }
}

#[test]
fn example_scenarios_are_valid_and_use_every_step_kind() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let all = scenario::load_paths(&[dir]).unwrap_or_else(|e| panic!("{e}"));
    assert!(all.len() >= 5);
    let mut kinds: Vec<&str> = all
        .iter()
        .flat_map(|s| s.all_steps())
        .map(|s| s.kind.name())
        .collect();
    kinds.sort();
    kinds.dedup();
    assert_eq!(kinds.len(), scenario::StepKind::NAMES.len(), "{kinds:?}");
}

#[test]
fn iut_description_errors_carry_lines() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("iut.yaml");
    let good = iut::parse(iut::TEMPLATE, &p).expect("the template parses");
    assert_eq!(good.endpoints.sync.address.port, 7443);
    assert_eq!(good.timeouts.step, Duration::from_secs(10));

    let bad_fp = iut::TEMPLATE.replacen("sha256:0000", "sha256:zz00", 1);
    let line = bad_fp
        .lines()
        .position(|l| l.contains("sha256:zz"))
        .unwrap()
        + 1;
    let e = iut::parse(&bad_fp, &p).unwrap_err();
    assert_eq!(e.problems[0].line, line, "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("{}:{line}: fingerprint", p.display())),
        "{e}"
    );

    let bad_role =
        iut::TEMPLATE.replace("roles: [requester, provider]", "roles: [requester, seller]");
    let line = bad_role.lines().position(|l| l.contains("seller")).unwrap() + 1;
    let e = iut::parse(&bad_role, &p).unwrap_err();
    assert_eq!(e.problems[0].line, line, "{e}");
    assert!(e.to_string().contains("unknown role `seller`"), "{e}");

    let seed_file = iut::TEMPLATE.replace("generate: true", "seed_file: missing.seed");
    let e = iut::parse(&seed_file, &p).unwrap_err();
    assert!(e.to_string().contains("missing.seed"), "{e}");
    std::fs::write(dir.path().join("h.seed"), "ab".repeat(32)).unwrap();
    let ok = iut::parse(
        &iut::TEMPLATE.replace("generate: true", "seed_file: h.seed"),
        &p,
    )
    .unwrap();
    assert!(
        matches!(ok.harness_identity, iut::HarnessIdentity::SeedFile { seed, .. } if seed == [0xab; 32])
    );

    let e = iut::parse("name: x\n", &p).unwrap_err();
    assert!(e.to_string().contains("missing field `endpoints`"), "{e}");
}

// ---------------------------------------------------------------------------------------
// Verdicts

#[test]
fn each_verdict_kind_arises_where_it_should() {
    let dir = tempfile::tempdir().unwrap();
    let iut = iut_with_roles(dir.path(), "requester");
    let list = scenarios(&[
        // pass: a conforming IUT.
        &sc("V-PASS-001", "MUST", "", SEND_AND_EXPECT_ERROR),
        // fail: the IUT accepts the bad Offer.
        &sc("V-FAIL-001", "MUST", "", SEND_AND_EXPECT_ERROR),
        // inconclusive: the control action is not implemented.
        &sc(
            "V-INCONC-001",
            "MUST",
            "",
            "  - control: publish_offer\n  - control: hello\n",
        ),
        // inconclusive: a setup step fails (even though it is an expectation).
        &sc(
            "V-INCONC-002",
            "MUST",
            "setup:\n  - expect:\n      message: ack\n      within: 100ms\n",
            "  - control: hello\n",
        ),
        // error: the harness side fails.
        &sc("V-ERROR-001", "MUST", "", "  - control: hello\n"),
        // error: the executor cannot start (IUT unreachable).
        &sc("V-ERROR-002", "MUST", "", "  - control: hello\n"),
        // not applicable: the ICS does not claim the provider role.
        &sc(
            "V-NA-001",
            "MUST",
            "ics:\n  roles: [provider]\n",
            "  - control: hello\n",
        ),
        // not applicable: `none` of a claimed role.
        &sc(
            "V-NA-002",
            "MUST",
            "ics:\n  roles: {none: [requester]}\n",
            "  - control: hello\n",
        ),
        // applicable: `any`.
        &sc(
            "V-ANY-001",
            "MUST",
            "ics:\n  roles: {any: [provider, requester]}\n",
            "  - control: hello\n",
        ),
    ]);
    let factory = Scripted::new(
        |ctx, input| match (ctx.scenario.id.as_str(), &input.action) {
            ("V-FAIL-001", a) if is_expect(a) => {
                received("ack", Value::map([("ok", Value::Bool(true))]))
            }
            ("V-INCONC-001", Action::Control { action, .. }) if action == "publish_offer" => {
                Script::Report(StepReport::observed(Observation::Control(Err(
                    ControlError {
                        kind: "unsupported_action".into(),
                        code: None,
                        message: "no".into(),
                    },
                ))))
            }
            ("V-INCONC-002", a) if is_expect(a) => {
                Script::Report(StepReport::observed(Observation::Silence))
            }
            ("V-ERROR-001", _) => Script::Report(StepReport::fault(StepFault::Infrastructure(
                "control channel closed".into(),
            ))),
            _ => Script::Conform,
        },
    )
    .with_start(|ctx| {
        if ctx.scenario.id == "V-ERROR-002" {
            Err(StepFault::Infrastructure("connection refused".into()))
        } else {
            Ok(())
        }
    });
    let out = run(factory.clone(), &iut, list, opts(dir.path(), 5, 3, false)).unwrap();
    let expect = [
        ("V-PASS-001", Verdict::Pass, "all 2 steps passed"),
        ("V-FAIL-001", Verdict::Fail, "expected error 2101"),
        (
            "V-INCONC-001",
            Verdict::Inconclusive,
            "does not implement control action `publish_offer`",
        ),
        ("V-INCONC-002", Verdict::Inconclusive, "setup step 1"),
        ("V-ERROR-001", Verdict::Error, "control channel closed"),
        ("V-ERROR-002", Verdict::Error, "connection refused"),
        (
            "V-NA-001",
            Verdict::NotApplicable,
            "does not claim `provider` in roles",
        ),
        (
            "V-NA-002",
            Verdict::NotApplicable,
            "claims `requester` in roles",
        ),
        ("V-ANY-001", Verdict::Pass, ""),
    ];
    for (id, v, why) in expect {
        let (got, reason) = verdict_of(&out, id);
        assert_eq!(got, v, "{id}: {reason}");
        assert!(reason.contains(why), "{id}: `{reason}` lacks `{why}`");
    }
    // Not-applicable scenarios never start an executor.
    assert!(
        !factory
            .calls()
            .iter()
            .any(|c| c.scenario_id.starts_with("V-NA"))
    );
    // A failure names its requirement and how to replay it.
    let fail = out
        .results
        .results
        .iter()
        .find(|r| r.scenario_id == "V-FAIL-001")
        .unwrap();
    assert_eq!(fail.requirements, ["SPEC-II-A-06"]);
    assert_eq!(
        fail.replay,
        "mtp-cert replay V-FAIL-001 --seed 5 --iut iut.yaml"
    );
    let step = fail.steps.last().unwrap();
    assert_eq!(step.verdict, Verdict::Fail);
    assert!(step.expected.as_deref().unwrap().contains("2101"));
    assert!(step.observed.as_deref().unwrap().contains("ack"));
    // The setup step is recorded as setup.
    let inc = out
        .results
        .results
        .iter()
        .find(|r| r.scenario_id == "V-INCONC-002")
        .unwrap();
    assert_eq!(inc.steps[0].phase, StepPhase::Setup);
    assert_eq!(inc.steps[0].verdict, Verdict::Inconclusive);
    // A failed MUST scenario decides the run (exit 1), errors elsewhere notwithstanding.
    assert_eq!(out.results.summary.outcome, RunOutcome::Failed);
    assert_eq!(out.results.summary.outcome.exit_code(), 1);
}

/// A fake IUT with fixed behaviour (refuses with 0102 / INVALID_ARGUMENT, answers
/// `rejection` on the stream, reports state `void` and a broken audit chain), and scenarios
/// whose expectations are right or wrong about it. Right ones pass; wrong ones fail — none
/// passes by accident.
#[test]
fn a_wrong_expectation_fails_rather_than_passes() {
    let dir = tempfile::tempdir().unwrap();
    let iut = iut(dir.path());
    let send = "  - send:\n      frame: nim\n      channel: grpc:Agent/Negotiate\n      faults: [{malformed_uuid: negotiation_id}]\n";
    let with_send = |id: &str, expect: &str| sc(id, "MUST", "", &format!("{send}{expect}"));
    let list = scenarios(&[
        &with_send(
            "W-RIGHT-001",
            "  - expect:\n      error: {codes: [\"0102\"], grpc_status: [INVALID_ARGUMENT]}\n",
        ),
        &with_send(
            "W-WRONG-CODE-001",
            "  - expect:\n      error: {codes: [2101]}\n",
        ),
        &with_send(
            "W-WRONG-STATUS-001",
            "  - expect:\n      error: {codes: [102], grpc_status: [FAILED_PRECONDITION]}\n",
        ),
        &with_send("W-WRONG-KIND-001", "  - expect:\n      response: ack\n"),
        &with_send(
            "W-WRONG-SILENCE-001",
            "  - expect:\n      silence: true\n      within: 100ms\n",
        ),
        &sc(
            "W-RIGHT-002",
            "MUST",
            "",
            "  - expect:\n      message: rejection\n      match: {round: 1}\n",
        ),
        &sc(
            "W-WRONG-MSG-001",
            "MUST",
            "",
            "  - expect:\n      message: acceptance\n",
        ),
        &sc(
            "W-WRONG-MATCH-001",
            "MUST",
            "",
            "  - expect:\n      message: rejection\n      match: {round: 2}\n",
        ),
        &sc(
            "W-RIGHT-003",
            "MUST",
            "",
            "  - expect_state:\n      transaction: t1\n      state: void\n      history: [initiated, negotiating, void]\n",
        ),
        &sc(
            "W-WRONG-STATE-001",
            "MUST",
            "",
            "  - expect_state:\n      transaction: t1\n      state: committed\n",
        ),
        &sc(
            "W-WRONG-HISTORY-001",
            "MUST",
            "",
            "  - expect_state:\n      transaction: t1\n      state: void\n      history: [initiated, void]\n",
        ),
        &sc(
            "W-WRONG-AUDIT-001",
            "MUST",
            "",
            "  - expect_audit:\n      transaction: t1\n      events: [negotiation_initiated]\n",
        ),
        &sc(
            "W-RIGHT-004",
            "MUST",
            "",
            "  - expect_audit:\n      transaction: t1\n      events: [negotiation_initiated]\n      chain_verifies: false\n",
        ),
        &sc(
            "W-WRONG-EVENT-001",
            "MUST",
            "",
            "  - expect_audit:\n      transaction: t1\n      events: [mandate_fully_signed]\n      chain_verifies: false\n",
        ),
        &sc(
            "W-WRONG-CTRL-001",
            "MUST",
            "",
            "  - control:\n      action: create_request\n      expect_error: {codes: [1101]}\n",
        ),
        &sc(
            "W-WRONG-CAPTURE-001",
            "MUST",
            "",
            "  - expect:\n      message: rejection\n      capture: {reason: body.reason}\n",
        ),
    ]);
    let factory = Scripted::new(|_, input| match &input.action {
        Action::Send { .. } => Script::Report(StepReport::observed(Observation::Sent)),
        Action::Expect { .. }
            if input.step.summary().contains("rejection")
                || input.step.summary().contains("acceptance") =>
        {
            received(
                "rejection",
                Value::map([
                    ("round", Value::Integer(1)),
                    ("negotiation_id", Value::text("n")),
                ]),
            )
        }
        Action::Expect { .. } => refused(102, "INVALID_ARGUMENT"),
        Action::ExpectState { .. } => Script::Report(StepReport::observed(Observation::State {
            state: "void".into(),
            history: vec!["initiated".into(), "negotiating".into(), "void".into()],
        })),
        Action::ExpectAudit { .. } => Script::Report(StepReport::observed(Observation::Audit {
            entries: vec![AuditObservation {
                event: "negotiation_initiated".into(),
                error_code: None,
            }],
            chain: Err("entry 1: prev_hash mismatch".into()),
        })),
        Action::Control { .. } => Script::Report(StepReport::observed(Observation::Control(Ok(
            Value::map([("request_id", Value::text("r"))]),
        )))),
        _ => Script::Conform,
    });
    let out = run(factory, &iut, list, opts(dir.path(), 9, 4, false)).unwrap();
    for r in &out.results.results {
        let want = if r.scenario_id.starts_with("W-RIGHT") {
            Verdict::Pass
        } else {
            Verdict::Fail
        };
        assert_eq!(r.verdict, want, "{}: {}", r.scenario_id, r.reason);
    }
    let (_, why) = verdict_of(&out, "W-WRONG-AUDIT-001");
    assert!(why.contains("hash chain does not verify"), "{why}");
    let (_, why) = verdict_of(&out, "W-WRONG-CAPTURE-001");
    assert!(why.contains("has no `body.reason`"), "{why}");
}

#[test]
fn timeouts_map_to_documented_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    let iut = iut(dir.path()); // step timeout 400 ms
    let list = scenarios(&[
        // The IUT never answers an expectation: fail.
        &sc(
            "T-EXPECT-001",
            "MUST",
            "",
            "  - expect:\n      message: ack\n      within: 200ms\n",
        ),
        // A control action never returns: inconclusive.
        &sc("T-CONTROL-001", "MUST", "", "  - control: hello\n"),
        // A hung setup step: inconclusive.
        &sc(
            "T-SETUP-001",
            "MUST",
            "setup:\n  - send:\n      frame: offer\n      channel: grpc:Index/Publish\n",
            "  - control: hello\n",
        ),
        // The scenario budget ends a step that has its own, longer budget.
        &sc(
            "T-SCENARIO-001",
            "MUST",
            "timeout: 300ms\n",
            "  - expect:\n      message: ack\n      within: 5s\n",
        ),
        // An explicit step timeout.
        &sc(
            "T-STEP-001",
            "MUST",
            "",
            "  - check_vectors:\n      family: credentials\n    timeout: 150ms\n",
        ),
        // A slow but timely answer passes.
        &sc(
            "T-SLOW-001",
            "MUST",
            "",
            "  - expect:\n      message: ack\n      within: 300ms\n",
        ),
    ]);
    let factory = Scripted::new(|ctx, _| match ctx.scenario.id.as_str() {
        "T-SLOW-001" => Script::Delayed(Duration::from_millis(150), Box::new(Script::Conform)),
        _ => Script::Hang,
    });
    let started = std::time::Instant::now();
    let out = run(factory, &iut, list, opts(dir.path(), 1, 6, false)).unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    let expect = [
        ("T-EXPECT-001", Verdict::Fail, "step budget of 1200 ms"),
        (
            "T-CONTROL-001",
            Verdict::Inconclusive,
            "step budget of 400 ms",
        ),
        ("T-SETUP-001", Verdict::Inconclusive, "setup step"),
        ("T-SCENARIO-001", Verdict::Fail, "scenario timeout (300 ms)"),
        ("T-STEP-001", Verdict::Fail, "step budget of 150 ms"),
        ("T-SLOW-001", Verdict::Pass, ""),
    ];
    for (id, v, why) in expect {
        let (got, reason) = verdict_of(&out, id);
        assert_eq!(got, v, "{id}: {reason}");
        assert!(reason.contains(why), "{id}: `{reason}` lacks `{why}`");
    }
}

#[test]
fn a_panicking_step_is_an_error_and_the_run_continues() {
    let dir = tempfile::tempdir().unwrap();
    let iut = iut(dir.path());
    let list = scenarios(&[
        &sc("P-A-001", "MUST", "", "  - control: hello\n"),
        &sc(
            "P-BOOM-001",
            "MUST",
            "",
            "  - control: hello\n  - control: hello\n",
        ),
        &sc("P-C-001", "MUST", "", "  - control: hello\n"),
    ]);
    let factory = Scripted::new(|ctx, input| {
        if ctx.scenario.id == "P-BOOM-001" && input.index == 1 {
            Script::Panic("executor bug: index out of range".into())
        } else {
            Script::Conform
        }
    });
    let out = run(factory, &iut, list, opts(dir.path(), 1, 1, false)).unwrap();
    assert_eq!(verdict_of(&out, "P-A-001").0, Verdict::Pass);
    assert_eq!(verdict_of(&out, "P-C-001").0, Verdict::Pass);
    let (v, why) = verdict_of(&out, "P-BOOM-001");
    assert_eq!(v, Verdict::Error);
    assert!(why.contains("harness panic: executor bug"), "{why}");
    let boom = out
        .results
        .results
        .iter()
        .find(|r| r.scenario_id == "P-BOOM-001")
        .unwrap();
    assert_eq!(boom.steps.len(), 2, "the evidence before the panic is kept");
    assert_eq!(out.results.summary.outcome, RunOutcome::InfrastructureError);
    assert_eq!(out.results.summary.outcome.exit_code(), 3);
}

#[test]
fn captures_flow_into_later_steps() {
    let dir = tempfile::tempdir().unwrap();
    let iut = iut(dir.path());
    let text = sc(
        "C-FLOW-001",
        "MUST",
        "",
        "  - control:\n      action: publish_offer\n      capture: {offer: offer_id}\n  - send:\n      frame: nim\n      channel: \"nats:${subject_prefix}.agent.x\"\n      template:\n        offer_ref: ${offer}\n        note: \"offer ${offer} in ${scenario_id}\"\n        seed: ${seed}\n  - expect:\n      message: counterproposal\n      capture: {round: body.round}\n  - capture:\n      again: received.body.round\n      sent_ref: sent.body.offer_ref\n  - expect_state:\n      transaction: \"tx-${again}\"\n      state: negotiating\n",
    );
    let list = scenarios(&[&text]);
    let factory = Scripted::new(|_, input| match &input.action {
        Action::Control { .. } => Script::Report(StepReport::observed(Observation::Control(Ok(
            Value::map([("offer_id", Value::text("OFFER-1"))]),
        )))),
        Action::Expect { .. } => received(
            "counterproposal",
            Value::map([("round", Value::Integer(2))]),
        ),
        Action::ExpectState { transaction, .. } => {
            assert_eq!(transaction, "tx-2");
            Script::Conform
        }
        _ => Script::Conform,
    });
    let out = run(factory.clone(), &iut, list, opts(dir.path(), 3, 1, false)).unwrap();
    assert_eq!(
        verdict_of(&out, "C-FLOW-001").0,
        Verdict::Pass,
        "{:?}",
        verdict_of(&out, "C-FLOW-001")
    );
    let send = factory
        .calls()
        .into_iter()
        .find_map(|c| match c.action {
            Some(Action::Send { body, channel, .. }) => Some((body, channel)),
            _ => None,
        })
        .unwrap();
    assert_eq!(send.1.to_string(), "nats:mtp.agent.x");
    let get = |k: &str| match &send.0 {
        Value::Map(e) => e
            .iter()
            .find(|(kk, _)| kk.as_text() == Some(k))
            .map(|(_, v)| v.clone()),
        _ => None,
    };
    assert_eq!(get("offer_ref"), Some(Value::text("OFFER-1")));
    assert_eq!(
        get("note"),
        Some(Value::text("offer OFFER-1 in C-FLOW-001"))
    );
    assert_eq!(
        get("seed"),
        Some(Value::Integer(scenario_seed(3, "C-FLOW-001").into()))
    );
}

// ---------------------------------------------------------------------------------------
// Streaming, resume, seeds

fn many(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| sc(&format!("R-S-{i:03}"), "MUST", "", "  - control: hello\n"))
        .collect()
}

#[test]
fn results_stream_as_scenarios_finish() {
    let dir = tempfile::tempdir().unwrap();
    let iut = iut(dir.path());
    let out_dir = dir.path().join("out");
    let results = out_dir.join("results.jsonl");
    let list = scenarios(&[
        &sc("S-FAST-001", "MUST", "", "  - control: hello\n"),
        &sc(
            "S-SLOW-001",
            "MUST",
            "",
            "  - sleep: 300ms\n  - control: hello\n",
        ),
    ]);
    let probe = results.clone();
    let factory = Scripted::new(move |ctx, _| {
        if ctx.scenario.id == "S-SLOW-001" {
            // By now the fast scenario has ended: its line must already be on disk.
            let text = std::fs::read_to_string(&probe).unwrap_or_default();
            if !text.contains("\"S-FAST-001\"") {
                return Script::Report(StepReport::fault(StepFault::Infrastructure(
                    "S-FAST-001 was not streamed".into(),
                )));
            }
        }
        Script::Conform
    });
    let out = run(factory, &iut, list, opts(&out_dir, 1, 2, false)).unwrap();
    assert_eq!(
        verdict_of(&out, "S-SLOW-001"),
        (Verdict::Pass, "all 2 steps passed".into())
    );
    let text = std::fs::read_to_string(&results).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "header, two scenarios, summary");
    for l in &lines {
        serde_json::from_str::<serde_json::Value>(l).unwrap();
    }
    assert!(lines[0].starts_with("{\"record\":\"header\",\"schema\":\"mtp-cert-results/1\""));
    assert!(lines[3].starts_with("{\"record\":\"summary\""));
    let parsed = jsonl::parse(&text).unwrap().unwrap();
    assert_eq!(parsed.results.len(), 2);
    assert!(!parsed.truncated_tail);
}

#[test]
fn resume_after_a_crash_does_not_rerun_finished_scenarios() {
    let dir = tempfile::tempdir().unwrap();
    let iut = iut(dir.path());
    let out_dir = dir.path().join("out");
    let texts = many(6);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();

    // A complete run, then a simulated crash: header, three results, half of the fourth.
    let first = run(
        Scripted::conforming(),
        &iut,
        scenarios(&refs),
        opts(&out_dir, 42, 2, false),
    )
    .unwrap();
    assert_eq!(first.executed.len(), 6);
    let path = out_dir.join("results.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut crashed = lines[..4].join("\n");
    crashed.push('\n');
    crashed.push_str(&lines[4][..lines[4].len() / 2]);
    std::fs::write(&path, &crashed).unwrap();
    let done: Vec<String> = jsonl::parse(&crashed)
        .unwrap()
        .unwrap()
        .results
        .iter()
        .map(|r| r.scenario_id.clone())
        .collect();
    assert_eq!(done.len(), 3);

    // A different seed is refused.
    let err = run(
        Scripted::conforming(),
        &iut,
        scenarios(&refs),
        opts(&out_dir, 43, 2, true),
    )
    .unwrap_err();
    assert!(
        matches!(err, RunError::Usage(ref m) if m.contains("--seed 43 differs")),
        "{err}"
    );
    assert_eq!(err.exit_code(), 2);
    // So is another executor.
    let err = run(
        Scripted::conforming().named("other"),
        &iut,
        scenarios(&refs),
        opts(&out_dir, 42, 2, true),
    )
    .unwrap_err();
    assert!(matches!(err, RunError::Usage(_)), "{err}");

    // Resume (seed taken from the file when not given).
    let factory = Scripted::conforming();
    let mut o = opts(&out_dir, 42, 3, true);
    o.seed = None;
    let second = run(factory.clone(), &iut, scenarios(&refs), o).unwrap();
    let rerun: Vec<String> = factory
        .calls()
        .into_iter()
        .filter(|c| c.step.is_none())
        .map(|c| c.scenario_id)
        .collect();
    assert_eq!(rerun.len(), 3, "{rerun:?}");
    for id in &done {
        assert!(!rerun.contains(id), "{id} ran again");
    }
    assert_eq!(second.resumed.len(), 3);
    assert_eq!(second.results.results.len(), 6);
    assert_eq!(second.results.header.seed, 42);
    assert_eq!(second.results.summary.counts.pass, 6);

    // The file is whole again: one header, six results, one summary, no truncated line.
    let text = std::fs::read_to_string(&path).unwrap();
    let parsed = jsonl::parse(&text).unwrap().unwrap();
    assert!(!parsed.truncated_tail);
    assert_eq!(parsed.results.len(), 6);
    assert_eq!(text.lines().count(), 8);
    // Results of both invocations are identical apart from timing.
    for (a, b) in first.results.results.iter().zip(&second.results.results) {
        assert_eq!(
            (&a.scenario_id, a.verdict, a.seed, &a.replay),
            (&b.scenario_id, b.verdict, b.seed, &b.replay)
        );
    }

    // Resuming a finished run runs nothing.
    let factory = Scripted::conforming();
    let third = run(
        factory.clone(),
        &iut,
        scenarios(&refs),
        opts(&out_dir, 42, 3, true),
    )
    .unwrap();
    assert!(factory.calls().is_empty());
    assert_eq!(third.results.results.len(), 6);
}

#[test]
fn a_corrupt_results_file_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let iut = iut(dir.path());
    let out_dir = dir.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    std::fs::write(
        out_dir.join("results.jsonl"),
        "{\"record\":\"header\"}\ngarbage\n{}\n",
    )
    .unwrap();
    let texts = many(1);
    let err = run(
        Scripted::conforming(),
        &iut,
        scenarios(&[&texts[0]]),
        opts(&out_dir, 1, 1, true),
    )
    .unwrap_err();
    assert!(
        matches!(err, RunError::Usage(ref m) if m.contains("results.jsonl:1:")),
        "{err}"
    );
}

#[test]
fn scenario_seeds_do_not_depend_on_jobs_or_order() {
    let dir = tempfile::tempdir().unwrap();
    let iut = iut(dir.path());
    let texts = many(8);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut reversed = scenarios(&refs);
    reversed.reverse();

    let seen = |jobs: usize, list: Vec<Scenario>, seed: u64, sub: &str| {
        let factory = Scripted::conforming();
        let out = run(
            factory.clone(),
            &iut,
            list,
            opts(&dir.path().join(sub), seed, jobs, false),
        )
        .unwrap();
        let mut from_results: Vec<(String, u64)> = out
            .results
            .results
            .iter()
            .map(|r| (r.scenario_id.clone(), r.seed))
            .collect();
        from_results.sort();
        let mut from_executor: Vec<(String, u64)> = factory
            .calls()
            .into_iter()
            .filter(|c| c.step.is_none())
            .map(|c| (c.scenario_id, c.seed))
            .collect();
        from_executor.sort();
        assert_eq!(from_results, from_executor);
        from_results
    };
    let a = seen(1, scenarios(&refs), 77, "a");
    let b = seen(8, reversed, 77, "b");
    let c = seen(3, scenarios(&refs[2..5]), 77, "c");
    assert_eq!(a, b);
    for (id, s) in &c {
        assert!(a.contains(&(id.clone(), *s)));
    }
    for (id, s) in &a {
        assert_eq!(*s, scenario_seed(77, id));
    }
    let other = seen(2, scenarios(&refs), 78, "d");
    assert!(a.iter().zip(&other).all(|(x, y)| x.1 != y.1));
}

// ---------------------------------------------------------------------------------------
// CLI

fn mtp_cert(args: &[&str], cwd: &Path) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_mtp-cert"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("mtp-cert runs");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn cli_validate_list_template_and_dry_run_with_resume() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let examples = examples.to_str().unwrap();

    let (code, out, _) = mtp_cert(&["validate", examples], d);
    assert_eq!(code, 0);
    assert!(out.contains("valid"));

    std::fs::write(d.join("bad.yaml"), "id: BAD-1\ntitle: t\nrequirements: [SPEC-II-A-06]\nlayer: discovery\nlevel: MUST\nsteps:\n  - teleport: now\n").unwrap();
    let (code, _, err) = mtp_cert(&["validate", "bad.yaml"], d);
    assert_eq!(code, 2);
    assert!(
        err.contains("bad.yaml:7: unknown step kind `teleport`"),
        "{err}"
    );

    let (code, out, _) = mtp_cert(
        &[
            "list",
            "--scenarios",
            examples,
            "--suite",
            "layer:cross_layer",
        ],
        d,
    );
    assert_eq!(code, 0);
    assert!(
        out.contains("XL-UUID-MALFORMED-001") && !out.contains("DISC-OFFER-SIG-001"),
        "{out}"
    );

    let (code, template, _) = mtp_cert(&["ics-template"], d);
    assert_eq!(code, 0);
    std::fs::write(d.join("iut.yaml"), &template).unwrap();

    // The template's placeholder endpoints cannot be reached: an infrastructure error (exit 3).
    let (code, _, err) = mtp_cert(
        &[
            "run",
            "--iut",
            "iut.yaml",
            "--scenarios",
            examples,
            "--out",
            "out",
        ],
        d,
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("test-control channel"), "{err}");

    // Usage errors: bad suite, bad IUT file.
    let (code, _, _) = mtp_cert(
        &[
            "run",
            "--iut",
            "iut.yaml",
            "--scenarios",
            examples,
            "--suite",
            "layer:x",
            "--dry-run",
        ],
        d,
    );
    assert_eq!(code, 2);
    std::fs::write(d.join("bad-iut.yaml"), "name: x\n").unwrap();
    let (code, _, err) = mtp_cert(
        &[
            "run",
            "--iut",
            "bad-iut.yaml",
            "--scenarios",
            examples,
            "--dry-run",
        ],
        d,
    );
    assert_eq!(code, 2);
    assert!(err.contains("bad-iut.yaml"), "{err}");

    // A dry run passes, streams results, and resumes after a crash.
    let args = [
        "run",
        "--iut",
        "iut.yaml",
        "--scenarios",
        examples,
        "--out",
        "out",
        "--seed",
        "7",
        "--jobs",
        "2",
        "--dry-run",
    ];
    let (code, out, err) = mtp_cert(&args, d);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("CERTIFIED"), "{out}");
    let path = d.join("out/results.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let n = jsonl::parse(&text).unwrap().unwrap().results.len();
    let keep: Vec<&str> = text.lines().take(2).collect();
    std::fs::write(&path, format!("{}\n{{\"record\":\"scen", keep.join("\n"))).unwrap();
    let mut resume: Vec<&str> = args.to_vec();
    resume.push("--resume");
    let (code, out, _) = mtp_cert(&resume, d);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("resuming: 1 of {n} scenarios")),
        "{out}"
    );
    let parsed = jsonl::parse(&std::fs::read_to_string(&path).unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(parsed.results.len(), n);

    // A resume with another seed is a usage error.
    let mut other = resume.clone();
    other[8] = "8";
    let (code, _, err) = mtp_cert(&other, d);
    assert_eq!(code, 2, "{err}");

    // The replay command printed in the results runs.
    let replay = &parsed.results[0].replay;
    assert!(
        replay.starts_with(&format!(
            "mtp-cert replay {} --seed 7 --iut iut.yaml",
            parsed.results[0].scenario_id
        )),
        "{replay}"
    );
    let words: Vec<&str> = replay.split(' ').skip(1).collect();
    let (code, out, err) = mtp_cert(&words, d);
    assert!(code == 0, "{out}\n{err}");
    assert!(out.contains(&parsed.results[0].scenario_id));
}
