//! The scenario commands of `mtp-cert`: `run`, `list`, `replay`, `validate`, `ics-template`.
//!
//! Exit codes: 0 every applicable MUST scenario passed; 1 failures (a MUST scenario failed or
//! was inconclusive; `validate`: never); 2 usage or configuration error (bad arguments, an
//! invalid IUT description or scenario file, a resume mismatch); 3 infrastructure error (a
//! scenario ended in `error`, results could not be written, no live executor).
//!
//! `run` and `replay` drive the IUT with the live executor ([`crate::live`]); the hidden flag
//! `--dry-run` runs them with [`DryRun`] instead (no IUT is contacted; every verdict is what a
//! perfectly conforming IUT would get). `certify`, `mutants` and `bundle`: [`crate::certify`].

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use mtp_reports::baseline::Gate;
use mtp_reports::model::{Level, RunOutcome, RunSummary, ScenarioResult, Verdict};

use crate::certify;
use crate::iut::{self, IutDescription};
use crate::live::HarnessKeys;
use crate::runner::dry::DryRun;
use crate::runner::{self, Progress, ReplaySpec, RunOptions, RunOutput, Selection, Suite, select};
use crate::scenario::{self, Scenario};

/// The default scenario folder: `scenarios/` of the working directory, else the repository's.
pub fn default_scenarios() -> PathBuf {
    repo_folder("scenarios")
}

/// `name/` of the working directory when it exists, else the repository's.
pub fn repo_folder(name: &str) -> PathBuf {
    let local = PathBuf::from(name);
    if local.is_dir() {
        return local;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name);
    if repo.is_dir() { repo } else { local }
}

fn code(c: u8) -> ExitCode {
    ExitCode::from(c)
}

#[derive(Args, Debug, Clone)]
pub struct SelectArgs {
    /// `all`, `smoke`, `layer:<layer>`, `req:<id pattern>` (e.g. `req:SPEC-II-A-*`), `tag:<tag>`.
    #[arg(long, default_value = "all")]
    pub suite: String,
    /// Only scenarios whose id matches one of these patterns (`*`, `?`; repeatable or
    /// comma-separated).
    #[arg(long)]
    pub only: Vec<String>,
    /// Leave out scenarios whose id matches one of these patterns.
    #[arg(long)]
    pub exclude: Vec<String>,
    /// Scenario files or folders (default: `scenarios/`).
    #[arg(long)]
    pub scenarios: Vec<PathBuf>,
}

impl SelectArgs {
    fn selection(&self) -> Result<Selection, String> {
        Ok(Selection {
            suite: self.suite.parse::<Suite>()?,
            only: select::globs(&self.only),
            exclude: select::globs(&self.exclude),
        })
    }

    pub fn paths(&self) -> Vec<PathBuf> {
        if self.scenarios.is_empty() {
            vec![default_scenarios()]
        } else {
            self.scenarios.clone()
        }
    }

    /// Loads, validates and selects; prints problems and gives the exit code on failure.
    pub fn load(&self) -> Result<Vec<Scenario>, ExitCode> {
        let selection = self.selection().map_err(|e| {
            eprintln!("mtp-cert: --suite: {e}");
            code(2)
        })?;
        let all = scenario::load_paths(&self.paths()).map_err(|e| {
            eprintln!("{e}");
            eprintln!(
                "mtp-cert: {} problem(s) in the scenario files",
                e.diagnostics.len()
            );
            code(2)
        })?;
        Ok(selection.apply(all))
    }
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// The IUT description (`mtp-cert ics-template` prints one).
    #[arg(long)]
    pub iut: PathBuf,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Scenarios run at the same time (default: the number of CPUs).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub jobs: Option<u64>,
    /// Run seed; every scenario seed derives from it (default 1, or the resumed run's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output folder; results stream to `<out>/results.jsonl`.
    #[arg(long, default_value = "reports/out")]
    pub out: PathBuf,
    /// An earlier `results.jsonl`: regressions are listed, and failures already present in
    /// it do not fail the exit code.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Continue the run in `<out>/results.jsonl`: scenarios with a verdict there are not
    /// run again (same seed and IUT description required).
    #[arg(long)]
    pub resume: bool,
    /// Run without an IUT: every step answered as a conforming IUT would (tests, scenario
    /// authoring). The verdicts say nothing about any implementation.
    #[arg(long, hide = true)]
    pub dry_run: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ListArgs {
    #[command(flatten)]
    pub select: SelectArgs,
}

#[derive(Args, Debug, Clone)]
pub struct ReplayArgs {
    /// The scenario id.
    pub id: String,
    /// The run seed printed with the failure.
    #[arg(long)]
    pub seed: u64,
    /// The IUT description.
    #[arg(
        long,
        required_unless_present = "self_iut",
        conflicts_with = "self_iut"
    )]
    pub iut: Option<PathBuf>,
    /// Replay against a fresh reference agent (a failure of `certify --self`).
    #[arg(long = "self")]
    pub self_iut: bool,
    /// With `--self`: the reference agent's deliberate defect (`mtp-cert mutants`).
    #[arg(long = "agent-fault", hide = true)]
    pub agent_faults: Vec<String>,
    /// Scenario files or folders (default: `scenarios/`).
    #[arg(long)]
    pub scenarios: Vec<PathBuf>,
    /// Output folder for the replay's `results.jsonl`.
    #[arg(long, default_value = "reports/out/replay")]
    pub out: PathBuf,
    #[arg(long, hide = true)]
    pub dry_run: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ValidateArgs {
    /// Scenario files or folders (default: `scenarios/`).
    pub paths: Vec<PathBuf>,
}

/// `mtp-cert ics-template`.
pub fn ics_template() -> ExitCode {
    crate::out!("{}", iut::TEMPLATE);
    ExitCode::SUCCESS
}

/// `mtp-cert validate [PATHS]`.
pub fn validate(args: &ValidateArgs) -> ExitCode {
    let paths = if args.paths.is_empty() {
        vec![default_scenarios()]
    } else {
        args.paths.clone()
    };
    match scenario::load_paths(&paths) {
        Ok(s) => {
            let steps: usize = s.iter().map(|s| s.setup.len() + s.steps.len()).sum();
            crate::outln!("{} scenarios, {steps} steps: valid", s.len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            eprintln!("mtp-cert validate: {} problem(s)", e.diagnostics.len());
            code(2)
        }
    }
}

/// `mtp-cert list`.
pub fn list(args: &ListArgs) -> ExitCode {
    let scenarios = match args.select.load() {
        Ok(s) => s,
        Err(c) => return c,
    };
    let w = scenarios
        .iter()
        .map(|s| s.id.len())
        .max()
        .unwrap_or(2)
        .max(2);
    crate::outln!(
        "{:<w$}  {:<12}  {:<6}  requirements",
        "id",
        "layer",
        "level"
    );
    for s in &scenarios {
        crate::outln!(
            "{:<w$}  {:<12}  {:<6}  {}",
            s.id,
            s.layer.name(),
            s.level.keyword(),
            s.requirements.join(", ")
        );
    }
    crate::outln!("{} scenarios", scenarios.len());
    ExitCode::SUCCESS
}

fn load_iut(path: &Path) -> Result<IutDescription, ExitCode> {
    iut::load(path).map_err(|e| {
        eprintln!("{e}");
        code(2)
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("mtp-cert: cannot start the async runtime: {e}");
            code(3)
        })
}

/// Progress as plain lines (CI, pipes).
pub struct LineProgress {
    total: usize,
    n: usize,
}

/// Progress as a bar on the terminal (stderr); failures printed above it.
pub struct BarProgress {
    bar: indicatif::ProgressBar,
}

fn failure_lines(r: &ScenarioResult) -> Vec<String> {
    vec![
        format!("    {}", r.reason),
        format!("    requirements: {}", r.requirements.join(", ")),
        format!("    replay: {}", r.replay),
    ]
}

fn needs_detail(r: &ScenarioResult) -> bool {
    matches!(
        r.verdict,
        Verdict::Fail | Verdict::Error | Verdict::Inconclusive
    )
}

impl Progress for LineProgress {
    fn begin(&mut self, total: usize, already_done: usize) {
        self.total = total;
        self.n = already_done;
        if already_done > 0 {
            crate::outln!("resuming: {already_done} of {total} scenarios already have a verdict");
        }
    }
    fn finished(&mut self, r: &ScenarioResult) {
        self.n += 1;
        let w = self.total.to_string().len();
        crate::outln!(
            "[{:>w$}/{}] {:<12} {} ({} ms)",
            self.n,
            self.total,
            r.verdict.label(),
            r.scenario_id,
            r.duration_ms
        );
        if needs_detail(r) {
            for l in failure_lines(r) {
                crate::outln!("{l}");
            }
        }
    }
}

impl Progress for BarProgress {
    fn begin(&mut self, total: usize, already_done: usize) {
        self.bar.set_length(total as u64);
        self.bar.set_position(already_done as u64);
        if already_done > 0 {
            self.bar.println(format!(
                "resuming: {already_done} of {total} scenarios already have a verdict"
            ));
        }
    }
    fn finished(&mut self, r: &ScenarioResult) {
        if needs_detail(r) {
            self.bar
                .println(format!("{:<12} {}", r.verdict.label(), r.scenario_id));
            for l in failure_lines(r) {
                self.bar.println(l);
            }
        }
        self.bar.set_message(r.scenario_id.clone());
        self.bar.inc(1);
    }
    fn end(&mut self, _: &RunSummary) {
        self.bar.finish_and_clear();
    }
}

pub fn progress() -> Box<dyn Progress> {
    if std::io::stderr().is_terminal() {
        let style = indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} {msg}",
        )
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        Box::new(BarProgress {
            bar: indicatif::ProgressBar::new(0).with_style(style),
        })
    } else {
        Box::new(LineProgress { total: 0, n: 0 })
    }
}

pub fn print_summary(s: &RunSummary) {
    let c = &s.counts;
    crate::outln!(
        "{} scenarios: {} pass, {} fail, {} inconclusive, {} error, {} not applicable ({} ms)",
        s.total,
        c.pass,
        c.fail,
        c.inconclusive,
        c.error,
        c.not_applicable,
        s.wall_ms
    );
    for level in Level::ALL {
        if let Some(lc) = s.by_level.get(&level) {
            crate::outln!(
                "  {:<6} {} pass, {} fail, {} inconclusive, {} error, {} n/a",
                level.keyword(),
                lc.pass,
                lc.fail,
                lc.inconclusive,
                lc.error,
                lc.not_applicable
            );
        }
    }
    if !s.warnings.is_empty() {
        crate::outln!(
            "warnings (SHOULD scenarios failed): {}",
            s.warnings.join(", ")
        );
    }
    match s.outcome {
        RunOutcome::Certified => crate::outln!("CERTIFIED: every applicable MUST scenario passed"),
        RunOutcome::Failed => crate::outln!(
            "NOT CERTIFIED: MUST scenarios not passed: {}",
            s.mandatory_not_passed.join(", ")
        ),
        RunOutcome::InfrastructureError => crate::outln!(
            "INCOMPLETE: infrastructure errors in {}",
            s.errors.join(", ")
        ),
    }
}

/// Runs with the dry-run executor, or connects the live one.
async fn execute(
    iut: Arc<IutDescription>,
    scenarios: Vec<Scenario>,
    mut opts: RunOptions,
    jobs: Option<usize>,
    dry_run: bool,
    progress: &mut dyn Progress,
) -> Result<RunOutput, (u8, String)> {
    if dry_run {
        opts.jobs = jobs.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        return runner::run(Arc::new(DryRun), iut, scenarios, opts, progress)
            .await
            .map_err(|e| (e.exit_code(), e.to_string()));
    }
    let keys = HarnessKeys::from_identity(&iut.harness_identity)
        .map_err(|e| (e.exit_code(), e.to_string()))?;
    certify::run_live(iut, keys, scenarios, opts, jobs, progress).await
}

/// `mtp-cert run`.
pub fn run(args: &RunArgs) -> ExitCode {
    let iut = match load_iut(&args.iut) {
        Ok(i) => i,
        Err(c) => return c,
    };
    let scenarios = match args.select.load() {
        Ok(s) => s,
        Err(c) => return c,
    };
    if scenarios.is_empty() {
        eprintln!("mtp-cert run: no scenario selected");
        return code(2);
    }
    let baseline = match &args.baseline {
        Some(p) => match mtp_reports::baseline::read(p) {
            Ok(b) => Some(b.results),
            Err(e) => {
                eprintln!("mtp-cert run: --baseline: {e}");
                return code(2);
            }
        },
        None => None,
    };
    if args.dry_run {
        eprintln!(
            "mtp-cert run: DRY RUN — no IUT is contacted; the verdicts say nothing about conformance"
        );
    }
    let opts = RunOptions {
        seed: args.seed,
        jobs: 1,
        out_dir: args.out.clone(),
        resume: args.resume,
        replay: ReplaySpec {
            iut: args.iut.display().to_string(),
            scenarios: args
                .select
                .scenarios
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            extra: if args.dry_run {
                vec!["--dry-run".into()]
            } else {
                Vec::new()
            },
        },
        suite_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(c) => return c,
    };
    let mut progress = progress();
    let out = rt.block_on(execute(
        Arc::new(iut),
        scenarios,
        opts,
        args.jobs.map(|j| j as usize),
        args.dry_run,
        progress.as_mut(),
    ));
    let out = match out {
        Ok(o) => o,
        Err((c, e)) => {
            eprintln!("mtp-cert run: {e}");
            return code(c);
        }
    };
    print_summary(&out.results.summary);
    crate::outln!(
        "seed {}; results: {}",
        out.results.header.seed,
        out.results_path.display()
    );
    let gate = baseline.map(|b| Gate::evaluate(&b, &out.results));
    if let Err(c) = certify::write_reports(&out.results, &args.out, gate.clone()) {
        return c;
    }
    code(certify::exit_with_gate(&out.results, gate.as_ref()))
}

/// `mtp-cert replay`.
pub fn replay(args: &ReplayArgs) -> ExitCode {
    let select = SelectArgs {
        suite: "all".into(),
        only: Vec::new(),
        exclude: Vec::new(),
        scenarios: args.scenarios.clone(),
    };
    let Some(iut_path) = args.iut.clone().filter(|_| !args.self_iut) else {
        return certify::replay_self(&args.id, args.seed, &select, &args.out, &args.agent_faults);
    };
    let iut = match load_iut(&iut_path) {
        Ok(i) => i,
        Err(c) => return c,
    };
    let scenarios = match select.load() {
        Ok(s) => s,
        Err(c) => return c,
    };
    let Some(s) = scenarios.into_iter().find(|s| s.id == args.id) else {
        eprintln!("mtp-cert replay: no scenario `{}`", args.id);
        return code(2);
    };
    let opts = RunOptions {
        seed: Some(args.seed),
        jobs: 1,
        out_dir: args.out.clone(),
        resume: false,
        replay: ReplaySpec {
            iut: iut_path.display().to_string(),
            scenarios: args
                .scenarios
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            extra: if args.dry_run {
                vec!["--dry-run".into()]
            } else {
                Vec::new()
            },
        },
        suite_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(c) => return c,
    };
    let out = rt.block_on(execute(
        Arc::new(iut),
        vec![s],
        opts,
        Some(1),
        args.dry_run,
        &mut runner::Silent,
    ));
    match out {
        Ok(o) => finish_replay(&o),
        Err((c, e)) => {
            eprintln!("mtp-cert replay: {e}");
            code(c)
        }
    }
}

/// Prints the replayed scenario; its exit code.
pub fn finish_replay(out: &RunOutput) -> ExitCode {
    let Some(r) = out.results.results.first() else {
        return code(3);
    };
    print_result(r);
    code(match r.verdict {
        Verdict::Pass | Verdict::NotApplicable => 0,
        Verdict::Fail | Verdict::Inconclusive => 1,
        Verdict::Error => 3,
    })
}

/// One scenario with its steps and evidence, for `replay`.
pub fn print_result(r: &ScenarioResult) {
    crate::outln!(
        "{} {} — {} (seed {}, {} ms)",
        r.verdict.label(),
        r.scenario_id,
        r.title,
        r.seed,
        r.duration_ms
    );
    crate::outln!("  requirements: {}", r.requirements.join(", "));
    crate::outln!("  {}", r.reason);
    for s in &r.steps {
        crate::outln!(
            "  [{}] {:<12} {} {}",
            s.index,
            s.verdict.label(),
            s.kind,
            s.description
        );
        if let Some(e) = &s.expected {
            crate::outln!("        expected: {e}");
        }
        if let Some(o) = &s.observed {
            crate::outln!("        observed: {o}");
        }
        for t in &s.transcript {
            crate::outln!(
                "        {:?} {} {}: {}",
                t.direction,
                t.channel,
                t.frame_type,
                t.diag
            );
        }
    }
}
