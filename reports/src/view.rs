//! What the writers share: how a scenario is shown (a failed SHOULD or MAY scenario is a
//! warning, never a failure), the run's headline, and the plain-text evidence of a scenario.

use std::fmt::Write as _;

use crate::model::{
    Direction, Level, RunOutcome, RunResults, ScenarioResult, StepPhase, StepResult, Verdict,
};

/// How a writer presents one scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Shown {
    Pass,
    /// `fail` of an applicable MUST scenario.
    Fail,
    /// `fail` of a SHOULD or MAY scenario: reported, never blocking (`docs/scenarios.md`,
    /// Certification).
    Warning,
    Error,
    Inconclusive,
    NotApplicable,
}

impl Shown {
    pub fn of(r: &ScenarioResult) -> Shown {
        match r.verdict {
            Verdict::Pass => Shown::Pass,
            Verdict::Fail if r.level == Level::Must => Shown::Fail,
            Verdict::Fail => Shown::Warning,
            Verdict::Error => Shown::Error,
            Verdict::Inconclusive => Shown::Inconclusive,
            Verdict::NotApplicable => Shown::NotApplicable,
        }
    }

    /// CSS class / filter token.
    pub fn token(self) -> &'static str {
        match self {
            Shown::Pass => "pass",
            Shown::Fail => "fail",
            Shown::Warning => "warning",
            Shown::Error => "error",
            Shown::Inconclusive => "inconclusive",
            Shown::NotApplicable => "not_applicable",
        }
    }
}

/// Whether the scenario keeps the run from certification (applicable MUST not passed, or
/// any `error`).
pub fn is_blocking(r: &ScenarioResult) -> bool {
    r.verdict == Verdict::Error
        || (r.level == Level::Must && !matches!(r.verdict, Verdict::Pass | Verdict::NotApplicable))
}

/// The run's headline: `CERTIFIED`, `NOT CERTIFIED`, `INCOMPLETE`, each prefixed with
/// `DRY RUN — ` when no IUT was contacted.
pub fn headline(results: &RunResults) -> String {
    let base = match results.summary.outcome {
        RunOutcome::Certified => "CERTIFIED",
        RunOutcome::Failed => "NOT CERTIFIED",
        RunOutcome::InfrastructureError => "INCOMPLETE",
    };
    if is_dry_run(results) {
        format!("DRY RUN — {base}")
    } else {
        base.to_owned()
    }
}

/// One sentence explaining the headline.
pub fn headline_reason(results: &RunResults) -> String {
    let s = &results.summary;
    let mut text = match s.outcome {
        RunOutcome::Certified => "every applicable MUST scenario passed".to_owned(),
        RunOutcome::Failed => format!(
            "applicable MUST scenarios not passed: {}",
            s.mandatory_not_passed.join(", ")
        ),
        RunOutcome::InfrastructureError => {
            format!("infrastructure errors in {}", s.errors.join(", "))
        }
    };
    if is_dry_run(results) {
        text.push_str(
            " (dry run: no IUT was contacted; these verdicts say nothing about conformance)",
        );
    }
    text
}

/// `dry-run` executor: the verdicts say nothing about conformance.
pub fn is_dry_run(results: &RunResults) -> bool {
    results.header.executor == "dry-run"
}

/// The step that ended the scenario (the last one that did not pass), if any.
pub fn deciding_step(r: &ScenarioResult) -> Option<&StepResult> {
    r.steps.iter().rev().find(|s| s.verdict != Verdict::Pass)
}

pub fn phase_name(p: StepPhase) -> &'static str {
    match p {
        StepPhase::Setup => "setup",
        StepPhase::Main => "main",
    }
}

pub fn direction_name(d: Direction) -> &'static str {
    match d {
        Direction::Sent => "sent",
        Direction::Received => "received",
        Direction::Control => "control",
    }
}

/// Milliseconds as seconds with three decimals.
pub fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// The identifying lines of a scenario: title, requirements, level, layer, seed, replay.
pub fn identity_text(r: &ScenarioResult) -> String {
    format!(
        "{}\nrequirements: {}\nlevel: {}  layer: {}  seed: {}\nreplay: {}\n",
        r.title,
        r.requirements.join(", "),
        r.level.keyword(),
        r.layer.name(),
        r.seed,
        r.replay
    )
}

/// Plain-text evidence of a scenario that did not pass: reason, the deciding step with
/// expected vs observed, the replay command and the whole transcript in CBOR diagnostic
/// notation.
pub fn evidence_text(r: &ScenarioResult) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "{} {}: {}", r.verdict.label(), r.scenario_id, r.reason);
    t.push_str(&identity_text(r));
    if let Some(step) = deciding_step(r) {
        let _ = writeln!(
            t,
            "step {} ({}, {}): {} -> {}",
            step.index,
            phase_name(step.phase),
            step.kind,
            step.description,
            step.verdict.label()
        );
        let _ = writeln!(
            t,
            "  expected: {}",
            step.expected.as_deref().unwrap_or("(nothing judged)")
        );
        let _ = writeln!(
            t,
            "  observed: {}",
            step.observed.as_deref().unwrap_or("(nothing observed)")
        );
    }
    let entries: usize = r.steps.iter().map(|s| s.transcript.len()).sum();
    if entries > 0 {
        t.push_str("transcript:\n");
        for step in &r.steps {
            for e in &step.transcript {
                let _ = writeln!(
                    t,
                    "  [step {}] {} {} {} sha256:{}",
                    step.index,
                    direction_name(e.direction),
                    e.channel,
                    e.frame_type,
                    e.hash
                );
                let _ = writeln!(t, "    {}", e.diag);
            }
        }
    }
    t
}
