//! The scenario runner: selects scenarios, evaluates the ICS, runs scenarios concurrently
//! (`--jobs`) under per-step and per-scenario timeouts, turns each into exactly one verdict
//! with its evidence, and streams every result to `<out>/results.jsonl` as soon as it ends
//! (flushed and fsynced per line), so that `--resume` can finish a broken run.
//!
//! Execution against an IUT is delegated to a [`StepExecutor`] made per scenario by an
//! [`ExecutorFactory`]; this crate ships [`dry::DryRun`] (no IUT) and
//! [`scripted::Scripted`] (tests). Verdict rules: `docs/scenarios.md`, "Verdicts".

pub mod dry;
pub mod exec;
pub mod executor;
pub mod judge;
pub mod results;
pub mod scripted;
pub mod select;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use mtp_reports::model::{RunHeader, RunResults, RunSummary, SCHEMA, ScenarioResult, Verdict};

pub use executor::{
    Action, AuditObservation, ControlError, ExecutorFactory, Observation, PeerError,
    ReceivedMessage, ResolvedChannel, ResolvedExpectation, ScenarioContext, StepExecutor,
    StepFault, StepInput, StepReport,
};
pub use select::{Glob, Selection, Suite, scenario_seed};

use crate::iut::IutDescription;
use crate::scenario::Scenario;

/// The run seed when `--seed` is not given (and no run is resumed).
pub const DEFAULT_SEED: u64 = 1;

/// Why a run could not be carried out. Scenario outcomes are never errors here.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Bad arguments or configuration (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The results could not be written (exit 3).
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
}

impl RunError {
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Usage(_) => 2,
            RunError::Io { .. } => 3,
        }
    }
}

/// How the replay command of a result is spelt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplaySpec {
    /// The IUT description path as given on the command line (empty: none, e.g. `--self`
    /// in `extra`).
    pub iut: String,
    /// `--scenarios` paths when they are not the default.
    pub scenarios: Vec<String>,
    /// Extra flags to repeat (e.g. the hidden `--dry-run`).
    pub extra: Vec<String>,
}

fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@+,".contains(&b));
    if safe {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

impl ReplaySpec {
    /// `mtp-cert replay <id> --seed <run seed> --iut <file> [--scenarios DIR]`.
    pub fn command(&self, scenario_id: &str, run_seed: u64) -> String {
        let mut c = format!(
            "mtp-cert replay {} --seed {run_seed}",
            shell_quote(scenario_id)
        );
        if !self.iut.is_empty() {
            c.push_str(&format!(" --iut {}", shell_quote(&self.iut)));
        }
        for s in &self.scenarios {
            c.push_str(&format!(" --scenarios {}", shell_quote(s)));
        }
        for e in &self.extra {
            c.push(' ');
            c.push_str(&shell_quote(e));
        }
        c
    }
}

/// What a run is asked to do.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// `None`: [`DEFAULT_SEED`], or the seed of the run being resumed.
    pub seed: Option<u64>,
    /// Concurrent scenarios (at least 1).
    pub jobs: usize,
    /// Where `results.jsonl` goes.
    pub out_dir: PathBuf,
    pub resume: bool,
    pub replay: ReplaySpec,
    /// `mtp-cert` version for the header.
    pub suite_version: String,
}

/// Progress reporting; every method has a silent default.
pub trait Progress: Send {
    /// `total` scenarios selected, of which `already_done` come from the resumed file.
    fn begin(&mut self, total: usize, already_done: usize) {
        let _ = (total, already_done);
    }
    fn finished(&mut self, result: &ScenarioResult) {
        let _ = result;
    }
    fn end(&mut self, summary: &RunSummary) {
        let _ = summary;
    }
}

/// Reports nothing.
pub struct Silent;
impl Progress for Silent {}

/// The outcome of a run.
#[derive(Clone, Debug)]
pub struct RunOutput {
    /// Every result of the run (resumed ones included), sorted by id, with the summary.
    pub results: RunResults,
    pub results_path: PathBuf,
    /// Ids executed (or judged not applicable) by this invocation, in completion order.
    pub executed: Vec<String>,
    /// Ids taken from the resumed file instead of running again.
    pub resumed: Vec<String>,
}

/// Runs `scenarios` (already selected) against the IUT with `factory`'s executors.
pub async fn run<F: ExecutorFactory>(
    factory: Arc<F>,
    iut: Arc<IutDescription>,
    scenarios: Vec<Scenario>,
    opts: RunOptions,
    progress: &mut dyn Progress,
) -> Result<RunOutput, RunError> {
    let t0 = Instant::now();
    let jobs = opts.jobs.max(1);
    let path = opts.out_dir.join("results.jsonl");
    let header_for = |seed: u64| RunHeader {
        schema: SCHEMA.to_owned(),
        suite_version: opts.suite_version.clone(),
        seed,
        iut: iut.summary(),
        started: exec::now_rfc3339(),
        ics: iut.ics.clone(),
        executor: factory.name(),
    };
    let (mut file, header, previous) = results::open(
        &path,
        opts.resume,
        opts.seed,
        &factory.name(),
        &iut,
        header_for,
    )?;
    let seed = header.seed;

    let mut done: BTreeMap<String, ScenarioResult> = previous
        .into_iter()
        .map(|r| (r.scenario_id.clone(), r))
        .collect();
    let mut queue: Vec<Arc<Scenario>> = Vec::new();
    let mut resumed = Vec::new();
    for s in scenarios {
        if done.contains_key(&s.id) {
            resumed.push(s.id.clone());
        } else {
            queue.push(Arc::new(s));
        }
    }
    queue.sort_by(|a, b| a.id.cmp(&b.id));
    progress.begin(queue.len() + resumed.len(), resumed.len());

    let mut executed = Vec::new();
    let mut record = |r: ScenarioResult,
                      file: &mut results::ResultsFile,
                      progress: &mut dyn Progress|
     -> Result<(), RunError> {
        file.append_result(&r)?;
        progress.finished(&r);
        executed.push(r.scenario_id.clone());
        done.insert(r.scenario_id.clone(), r);
        Ok(())
    };

    // Not applicable by the ICS: judged without starting anything.
    let mut runnable = Vec::new();
    for s in queue {
        match s.ics.iter().find_map(|c| c.evaluate(&iut.ics).err()) {
            Some(why) => {
                let now = exec::now_rfc3339();
                let r = ScenarioResult {
                    scenario_id: s.id.clone(),
                    title: s.title.clone(),
                    layer: s.layer,
                    level: s.level,
                    requirements: s.requirements.clone(),
                    verdict: Verdict::NotApplicable,
                    reason: why,
                    started: now.clone(),
                    finished: now,
                    duration_ms: 0,
                    seed: scenario_seed(seed, &s.id),
                    replay: opts.replay.command(&s.id, seed),
                    steps: Vec::new(),
                };
                record(r, &mut file, progress)?;
            }
            None => runnable.push(s),
        }
    }

    // Concurrent execution, at most `jobs` at a time, started in id order.
    let mut set = tokio::task::JoinSet::new();
    let mut in_flight: HashMap<tokio::task::Id, Arc<Scenario>> = HashMap::new();
    let mut pending = runnable.into_iter();
    loop {
        while set.len() < jobs {
            let Some(s) = pending.next() else { break };
            let ctx = ScenarioContext {
                scenario: s.clone(),
                seed: scenario_seed(seed, &s.id),
                run_seed: seed,
                iut: iut.clone(),
            };
            let replay = opts.replay.command(&s.id, seed);
            let handle = set.spawn(exec::run_scenario(factory.clone(), ctx, replay));
            in_flight.insert(handle.id(), s);
        }
        let Some(joined) = set.join_next_with_id().await else {
            break;
        };
        let r = match joined {
            Ok((id, r)) => {
                in_flight.remove(&id);
                r
            }
            Err(e) => {
                // A panic that escaped the per-step guards: the scenario is an error, the
                // run goes on.
                let Some(s) = in_flight.remove(&e.id()) else {
                    continue;
                };
                let why = if e.is_panic() {
                    format!("harness panic: {}", exec::panic_message(&*e.into_panic()))
                } else {
                    "the scenario task was cancelled".to_owned()
                };
                let now = exec::now_rfc3339();
                ScenarioResult {
                    scenario_id: s.id.clone(),
                    title: s.title.clone(),
                    layer: s.layer,
                    level: s.level,
                    requirements: s.requirements.clone(),
                    verdict: Verdict::Error,
                    reason: why,
                    started: now.clone(),
                    finished: now,
                    duration_ms: 0,
                    seed: scenario_seed(seed, &s.id),
                    replay: opts.replay.command(&s.id, seed),
                    steps: Vec::new(),
                }
            }
        };
        record(r, &mut file, progress)?;
    }

    let all: Vec<ScenarioResult> = done.into_values().collect();
    let results = RunResults::new(header, all, t0.elapsed().as_millis() as u64);
    file.append_summary(&results.summary)?;
    progress.end(&results.summary);
    Ok(RunOutput {
        results,
        results_path: path,
        executed,
        resumed,
    })
}
