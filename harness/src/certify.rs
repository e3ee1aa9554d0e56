//! `mtp-cert certify` (the whole suite, reports and a signed certification bundle), `mtp-cert
//! certify --self` (the same against the reference agent, started privately), `mtp-cert
//! mutants` (each scenario against the reference agent with the defects that must make it
//! fail) and `mtp-cert bundle verify`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use mtp_reports::baseline::{self, Gate};
use mtp_reports::bundle::{self, BundleInputs, BundleSigner};
use mtp_reports::model::{RunResults, ScenarioResult, Verdict};
use mtp_reports::{WriteOptions, write_all};

use crate::cli::{self, SelectArgs};
use crate::iut::{self, IutDescription};
use crate::live::{HarnessKeys, LiveFactory};
use crate::runner::{self, Progress, ReplaySpec, RunOptions, RunOutput};
use crate::scenario::{Scenario, catalogue};
use crate::selfiut::{SelfIut, SelfIutOptions};

fn code(c: u8) -> ExitCode {
    ExitCode::from(c)
}

#[derive(Args, Debug, Clone)]
pub struct CertifyArgs {
    /// Certify the reference agent: start a private nats-server and reference agents (one per
    /// job) with their test-control interface, and run the suite against them.
    #[arg(long = "self", conflicts_with = "iut")]
    pub self_iut: bool,
    /// The IUT description of the implementation to certify.
    #[arg(long, required_unless_present = "self_iut")]
    pub iut: Option<PathBuf>,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Scenarios run at the same time (default: the IUT's instances; `--self`: the CPUs).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub jobs: Option<u64>,
    /// Run seed; every scenario seed derives from it.
    #[arg(long, default_value_t = runner::DEFAULT_SEED)]
    pub seed: u64,
    /// Output folder: results.jsonl, report.{xml,json,html}, summary.md, certification.cbor.
    #[arg(long, default_value = "reports/out")]
    pub out: PathBuf,
    /// An earlier report.json or results.jsonl: only new failures fail the run.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// The operator's signing seed (64 hex digits); created with a fresh random seed when
    /// missing. Default: `<out>/operator-seed.hex`.
    #[arg(long)]
    pub operator_seed: Option<PathBuf>,
    /// `--self`: use this NATS server instead of starting private ones.
    #[arg(long)]
    pub nats_url: Option<String>,
    /// `--self`: switch on a deliberate defect of the reference agent (tests of the suite).
    #[arg(long = "agent-fault", hide = true)]
    pub agent_faults: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct MutantsArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    /// Concurrent scenarios (reference agents per defect).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub jobs: Option<u64>,
    #[arg(long, default_value_t = runner::DEFAULT_SEED)]
    pub seed: u64,
    /// Output folder (`mutants.json`, one results folder per defect).
    #[arg(long, default_value = "reports/out/mutants")]
    pub out: PathBuf,
    /// Exit 1 also when a selected scenario has no `killed_by`.
    #[arg(long)]
    pub strict: bool,
}

#[derive(Subcommand, Debug, Clone)]
pub enum BundleCommand {
    /// Checks a certification bundle offline and prints what it attests.
    Verify {
        /// The bundle (`certification.cbor`).
        file: PathBuf,
    },
}

fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8)
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

/// Runs `scenarios` against the live IUT described by `iut`.
pub async fn run_live(
    iut: Arc<IutDescription>,
    keys: HarnessKeys,
    scenarios: Vec<Scenario>,
    mut opts: RunOptions,
    jobs: Option<usize>,
    progress: &mut dyn Progress,
) -> Result<RunOutput, (u8, String)> {
    let factory = LiveFactory::connect(iut.clone(), keys)
        .await
        .map_err(|e| (e.exit_code(), e.to_string()))?;
    // One scenario per IUT instance at a time (a scenario resets the instance).
    let instances = factory.instances().max(1);
    if jobs.is_some_and(|j| j > instances) {
        eprintln!("mtp-cert: --jobs capped at {instances}, the IUT instances available");
    }
    opts.jobs = jobs.unwrap_or(instances).clamp(1, instances);
    runner::run(Arc::new(factory), iut, scenarios, opts, progress)
        .await
        .map_err(|e| (e.exit_code(), e.to_string()))
}

/// Every `*.yaml` file under `paths` with its SHA-256, by path relative to its root.
pub fn hash_files(paths: &[PathBuf], ext: Option<&str>) -> Vec<(String, [u8; 32])> {
    fn walk(root: &Path, dir: &Path, ext: Option<&str>, out: &mut Vec<(String, [u8; 32])>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(root, &p, ext, out);
            } else if ext.is_none_or(|x| p.extension().and_then(|e| e.to_str()) == Some(x))
                && let Ok(h) = bundle::file_sha256(&p)
            {
                let rel = p.strip_prefix(root).unwrap_or(&p);
                out.push((rel.display().to_string(), h));
            }
        }
    }
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, p, ext, &mut out);
        } else if let Ok(h) = bundle::file_sha256(p) {
            out.push((p.display().to_string(), h));
        }
    }
    out.sort();
    out
}

/// Requirement id → text, for the HTML traceability matrix.
fn requirement_texts() -> BTreeMap<String, String> {
    catalogue::requirements()
        .iter()
        .map(|(id, r)| (id.clone(), r.text.clone()))
        .collect()
}

/// Writes the four reports; prints their paths. `Err(exit code)` on an I/O failure.
pub fn write_reports(results: &RunResults, out: &Path, gate: Option<Gate>) -> Result<(), ExitCode> {
    let opts = WriteOptions {
        baseline: gate,
        requirement_texts: requirement_texts(),
    };
    match write_all(results, out, &opts) {
        Ok(ws) => {
            for w in ws {
                crate::outln!("report: {} ({} bytes)", w.path.display(), w.bytes);
            }
            Ok(())
        }
        Err(e) => {
            eprintln!("mtp-cert: reports: {e}");
            Err(code(3))
        }
    }
}

fn read_gate(path: &Option<PathBuf>) -> Result<Option<Vec<ScenarioResult>>, ExitCode> {
    match path {
        None => Ok(None),
        Some(p) => baseline::read(p).map(|b| Some(b.results)).map_err(|e| {
            eprintln!("mtp-cert: --baseline: {e}");
            code(2)
        }),
    }
}

/// The run's exit code, after the baseline gate when there is one.
pub fn exit_with_gate(results: &RunResults, gate: Option<&Gate>) -> u8 {
    match gate {
        Some(g) => {
            for l in g.lines() {
                crate::outln!("{l}");
            }
            g.exit_code
        }
        None => results.summary.outcome.exit_code(),
    }
}

fn operator_signer(path: &Path) -> Result<BundleSigner, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let seed = mtp_reference_agent::keys::load_or_create_seed(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(BundleSigner::from_seed(seed))
}

/// Builds, writes and re-verifies `<out>/certification.cbor`.
fn write_bundle(
    results: &RunResults,
    out: &Path,
    iut_text: &str,
    scenario_paths: &[PathBuf],
    operator_seed: &Path,
) -> Result<(), String> {
    let signer = operator_signer(operator_seed)?;
    let exe = std::env::current_exe().map_err(|e| format!("mtp-cert binary: {e}"))?;
    let inputs = BundleInputs {
        scenario_files: hash_files(scenario_paths, Some("yaml")),
        vector_files: crate::vectors::corpus_files(&crate::vectors::default_corpus())
            .map_err(|e| e.to_string())?,
        binary_sha256: bundle::file_sha256(&exe).map_err(|e| format!("{}: {e}", exe.display()))?,
        iut_description: iut_text.to_owned(),
        issued: runner::exec::now_rfc3339(),
    };
    let bytes = bundle::build(results, &inputs, &signer).map_err(|e| e.to_string())?;
    let path = out.join("certification.cbor");
    mtp_reports::write_atomic(&path, &bytes).map_err(|e| e.to_string())?;
    let verified = bundle::verify(&bytes)
        .map_err(|e| format!("the bundle just written does not verify: {e}"))?;
    crate::outln!(
        "bundle: {} ({} bytes), signed by {}",
        path.display(),
        bytes.len(),
        signer.did()
    );
    let _ = verified;
    Ok(())
}

/// `mtp-cert bundle verify FILE`.
pub fn bundle_command(cmd: &BundleCommand) -> ExitCode {
    match cmd {
        BundleCommand::Verify { file } => {
            let bytes = match std::fs::read(file) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("mtp-cert bundle verify: {}: {e}", file.display());
                    return code(2);
                }
            };
            match bundle::verify(&bytes) {
                Ok(v) => {
                    crate::outln!("{v}");
                    crate::outln!("signature: valid");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("mtp-cert bundle verify: {}: REJECTED: {e}", file.display());
                    code(1)
                }
            }
        }
    }
}

fn parse_faults(names: &[String]) -> Result<Vec<String>, ExitCode> {
    names
        .iter()
        .map(|n| match mtp_reference_agent::faults::find(n) {
            Some(f) => Ok(f.name.to_owned()),
            None => {
                let all = mtp_reference_agent::faults::names();
                eprintln!(
                    "mtp-cert: unknown agent fault `{n}` (one of: {})",
                    all.join(", ")
                );
                Err(code(2))
            }
        })
        .collect()
}

/// A private self IUT, its description file and the harness keys it pins.
struct SelfSetup {
    iut: SelfIut,
    description_path: PathBuf,
    description_text: String,
    keys: HarnessKeys,
}

fn start_self(
    out: &Path,
    seed: u64,
    instances: usize,
    faults: Vec<String>,
    nats_url: Option<String>,
) -> Result<SelfSetup, ExitCode> {
    let work = out.join("self-iut");
    let _ = std::fs::remove_dir_all(&work);
    if let Err(e) = std::fs::create_dir_all(&work) {
        eprintln!("mtp-cert: {}: {e}", work.display());
        return Err(code(3));
    }
    let mut input = b"mtp-cert/self-harness/1".to_vec();
    input.extend_from_slice(&seed.to_be_bytes());
    let harness_seed = mtp_protocol::crypto::sha256(&input);
    let seed_path = work.join("harness-seed.hex");
    if let Err(e) = std::fs::write(&seed_path, format!("{}\n", hex::encode(harness_seed))) {
        eprintln!("mtp-cert: {}: {e}", seed_path.display());
        return Err(code(3));
    }
    let keys = HarnessKeys::from_seed(&harness_seed).map_err(|e| {
        eprintln!("mtp-cert: {e}");
        code(3)
    })?;
    let opts = SelfIutOptions {
        instances,
        run_seed: seed,
        faults,
        nats_url,
        harness_fingerprint: keys.fingerprint(),
        work_dir: work.clone(),
    };
    let iut = SelfIut::start(&opts).map_err(|e| {
        eprintln!("mtp-cert: {e}");
        code(3)
    })?;
    let description_text = iut.description("self-iut/harness-seed.hex");
    let description_path = out.join("iut-self.yaml");
    if let Err(e) = std::fs::write(&description_path, &description_text) {
        eprintln!("mtp-cert: {}: {e}", description_path.display());
        return Err(code(3));
    }
    Ok(SelfSetup {
        iut,
        description_path,
        description_text,
        keys,
    })
}

fn load_iut(path: &Path) -> Result<IutDescription, ExitCode> {
    iut::load(path).map_err(|e| {
        eprintln!("{e}");
        code(2)
    })
}

fn scenario_strings(select: &SelectArgs) -> Vec<String> {
    select
        .scenarios
        .iter()
        .map(|p| p.display().to_string())
        .collect()
}

/// `mtp-cert certify`.
pub fn certify(args: &CertifyArgs) -> ExitCode {
    let scenarios = match args.select.load() {
        Ok(s) if s.is_empty() => {
            eprintln!("mtp-cert certify: no scenario selected");
            return code(2);
        }
        Ok(s) => s,
        Err(c) => return c,
    };
    let baseline = match read_gate(&args.baseline) {
        Ok(b) => b,
        Err(c) => return c,
    };
    let faults = match parse_faults(&args.agent_faults) {
        Ok(f) => f,
        Err(c) => return c,
    };
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        eprintln!("mtp-cert certify: {}: {e}", args.out.display());
        return code(3);
    }
    let jobs = args.jobs.map(|j| j as usize);
    let (setup, iut_path, iut_text, keys, replay) = if args.self_iut {
        let instances = jobs.unwrap_or_else(default_jobs);
        let s = match start_self(
            &args.out,
            args.seed,
            instances,
            faults,
            args.nats_url.clone(),
        ) {
            Ok(s) => s,
            Err(c) => return c,
        };
        crate::outln!(
            "self IUT: {} reference agent(s) ({}), harness {}",
            s.iut.instances.len(),
            s.description_path.display(),
            s.keys.fingerprint()
        );
        for inst in &s.iut.instances {
            crate::outln!("  {} {} log {}", inst.name, inst.did, inst.log.display());
        }
        let replay = ReplaySpec {
            iut: String::new(),
            scenarios: scenario_strings(&args.select),
            extra: vec!["--self".into()],
        };
        let (p, t, k) = (
            s.description_path.clone(),
            s.description_text.clone(),
            s.keys.clone(),
        );
        (Some(s), p, t, k, replay)
    } else {
        let Some(path) = args.iut.clone() else {
            eprintln!("mtp-cert certify: give --iut FILE or --self");
            return code(2);
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("mtp-cert certify: {}: {e}", path.display());
                return code(2);
            }
        };
        let desc = match load_iut(&path) {
            Ok(d) => d,
            Err(c) => return c,
        };
        let keys = match HarnessKeys::from_identity(&desc.harness_identity) {
            Ok(k) => k,
            Err(e) => {
                eprintln!("mtp-cert certify: {e}");
                return code(e.exit_code());
            }
        };
        let replay = ReplaySpec {
            iut: path.display().to_string(),
            scenarios: scenario_strings(&args.select),
            extra: Vec::new(),
        };
        (None, path, text, keys, replay)
    };
    let desc = match load_iut(&iut_path) {
        Ok(d) => d,
        Err(c) => return c,
    };
    let opts = RunOptions {
        seed: Some(args.seed),
        jobs: 1,
        out_dir: args.out.clone(),
        resume: false,
        replay,
        suite_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(c) => return c,
    };
    let mut progress = cli::progress();
    let out = rt.block_on(run_live(
        Arc::new(desc),
        keys,
        scenarios,
        opts,
        jobs,
        progress.as_mut(),
    ));
    if let Some(s) = setup {
        s.iut.stop();
    }
    let out = match out {
        Ok(o) => o,
        Err((c, e)) => {
            eprintln!("mtp-cert certify: {e}");
            return code(c);
        }
    };
    cli::print_summary(&out.results.summary);
    crate::outln!(
        "seed {}; results: {}",
        out.results.header.seed,
        out.results_path.display()
    );
    let gate = baseline.map(|b| Gate::evaluate(&b, &out.results));
    if let Err(c) = write_reports(&out.results, &args.out, gate.clone()) {
        return c;
    }
    let operator = args
        .operator_seed
        .clone()
        .unwrap_or_else(|| args.out.join("operator-seed.hex"));
    let paths = args.select.paths();
    if let Err(e) = write_bundle(&out.results, &args.out, &iut_text, &paths, &operator) {
        eprintln!("mtp-cert certify: bundle: {e}");
        return code(3);
    }
    code(exit_with_gate(&out.results, gate.as_ref()))
}

/// `mtp-cert replay ID --seed N --self`: one scenario against a fresh reference agent.
pub fn replay_self(
    id: &str,
    seed: u64,
    select: &SelectArgs,
    out: &Path,
    faults: &[String],
) -> ExitCode {
    let scenarios = match select.load() {
        Ok(s) => s,
        Err(c) => return c,
    };
    let Some(s) = scenarios.into_iter().find(|s| s.id == id) else {
        eprintln!("mtp-cert replay: no scenario `{id}`");
        return code(2);
    };
    let faults = match parse_faults(faults) {
        Ok(f) => f,
        Err(c) => return c,
    };
    if let Err(e) = std::fs::create_dir_all(out) {
        eprintln!("mtp-cert replay: {}: {e}", out.display());
        return code(3);
    }
    let setup = match start_self(out, seed, 1, faults, None) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let desc = match load_iut(&setup.description_path) {
        Ok(d) => d,
        Err(c) => return c,
    };
    let opts = RunOptions {
        seed: Some(seed),
        jobs: 1,
        out_dir: out.to_path_buf(),
        resume: false,
        replay: ReplaySpec {
            iut: String::new(),
            scenarios: scenario_strings(select),
            extra: vec!["--self".into()],
        },
        suite_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(c) => return c,
    };
    let keys = setup.keys.clone();
    let r = rt.block_on(run_live(
        Arc::new(desc),
        keys,
        vec![s],
        opts,
        Some(1),
        &mut runner::Silent,
    ));
    setup.iut.stop();
    match r {
        Ok(o) => cli::finish_replay(&o),
        Err((c, e)) => {
            eprintln!("mtp-cert replay: {e}");
            code(c)
        }
    }
}

/// What happened to one scenario under one defect.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MutantOutcome {
    pub scenario_id: String,
    pub fault: String,
    /// `killed` (failed, as it must), `survived` (passed), or the verdict otherwise.
    pub outcome: String,
    pub verdict: String,
    pub reason: String,
}

/// `mtp-cert mutants`.
pub fn mutants(args: &MutantsArgs) -> ExitCode {
    let scenarios = match args.select.load() {
        Ok(s) => s,
        Err(c) => return c,
    };
    let unproven: Vec<String> = scenarios
        .iter()
        .filter(|s| s.killed_by.is_empty())
        .map(|s| s.id.clone())
        .collect();
    let mut by_fault: BTreeMap<String, Vec<Scenario>> = BTreeMap::new();
    for s in &scenarios {
        for f in &s.killed_by {
            by_fault.entry(f.clone()).or_default().push(s.clone());
        }
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(c) => return c,
    };
    let jobs = args.jobs.map(|j| j as usize).unwrap_or_else(default_jobs);
    let mut outcomes = Vec::new();
    for (fault, list) in by_fault {
        let Some(f) = mtp_reference_agent::faults::find(&fault) else {
            continue;
        };
        let f = f.name.to_owned();
        let out = args.out.join(&fault);
        if let Err(e) = std::fs::create_dir_all(&out) {
            eprintln!("mtp-cert mutants: {}: {e}", out.display());
            return code(3);
        }
        let setup = match start_self(&out, args.seed, jobs.min(list.len()), vec![f], None) {
            Ok(s) => s,
            Err(c) => return c,
        };
        let desc = match load_iut(&setup.description_path) {
            Ok(d) => d,
            Err(c) => return c,
        };
        let opts = RunOptions {
            seed: Some(args.seed),
            jobs: 1,
            out_dir: out.clone(),
            resume: false,
            replay: ReplaySpec {
                iut: String::new(),
                scenarios: scenario_strings(&args.select),
                extra: vec!["--self".into(), "--agent-fault".into(), fault.clone()],
            },
            suite_version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        crate::outln!("defect {fault}: {} scenario(s)", list.len());
        let r = rt.block_on(run_live(
            Arc::new(desc),
            setup.keys.clone(),
            list,
            opts,
            None,
            &mut runner::Silent,
        ));
        setup.iut.stop();
        let o = match r {
            Ok(o) => o,
            Err((c, e)) => {
                eprintln!("mtp-cert mutants: {fault}: {e}");
                return code(c);
            }
        };
        for r in &o.results.results {
            let outcome = match r.verdict {
                Verdict::Fail => "killed",
                Verdict::Pass => "survived",
                other => other.name(),
            };
            crate::outln!("  {outcome:<12} {}", r.scenario_id);
            if outcome != "killed" {
                crate::outln!("    {}", r.reason);
            }
            outcomes.push(MutantOutcome {
                scenario_id: r.scenario_id.clone(),
                fault: fault.clone(),
                outcome: outcome.to_owned(),
                verdict: r.verdict.name().to_owned(),
                reason: r.reason.clone(),
            });
        }
    }
    let killed = outcomes.iter().filter(|o| o.outcome == "killed").count();
    let not_killed: Vec<&MutantOutcome> =
        outcomes.iter().filter(|o| o.outcome != "killed").collect();
    crate::outln!(
        "{killed} of {} (scenario, defect) pairs killed; {} scenario(s) without killed_by",
        outcomes.len(),
        unproven.len()
    );
    for u in &unproven {
        crate::outln!("  unproven {u}");
    }
    let doc = serde_json::json!({
        "format": "mtp-cert-mutants/1",
        "seed": args.seed,
        "outcomes": outcomes,
        "unproven": unproven,
    });
    let path = args.out.join("mutants.json");
    let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    if let Err(e) = mtp_reports::write_atomic(&path, text.as_bytes()) {
        eprintln!("mtp-cert mutants: {e}");
        return code(3);
    }
    crate::outln!("mutants: {}", path.display());
    if !not_killed.is_empty() || (args.strict && !unproven.is_empty()) {
        code(1)
    } else {
        ExitCode::SUCCESS
    }
}
