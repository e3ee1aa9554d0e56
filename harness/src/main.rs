//! `mtp-cert`: the MTP conformance harness.
//!
//! `mtp-cert self-check` (known-answer self-check of the protocol core), `mtp-cert vectors
//! generate` (the deterministic vector corpus), and the scenario runner: `run`, `list`,
//! `replay`, `validate`, `ics-template` (`mtp_harness::cli`; exit codes documented there and
//! in `docs/scenarios.md`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mtp_harness::cli;

mod selfcheck;

#[derive(Parser)]
#[command(
    name = "mtp-cert",
    version,
    about = "Conformance harness for the Massachusetts Transaction Protocol"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Known-answer self-check of the protocol core (codecs, identifiers, crypto suite,
    /// objects, state machine, audit trail, wire framing). Writes `self-check.json` and
    /// `self-check.md` to the output folder; exits 1 when any check fails.
    SelfCheck {
        /// Seed for every key and random value; same seed, same bytes.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output folder for the reports.
        #[arg(long, default_value = "reports/out")]
        out: PathBuf,
        /// Run only the checks whose id starts with this prefix (e.g. `crypto.`).
        #[arg(long)]
        only: Option<String>,
    },
    /// The deterministic test-vector corpus (`vectors/`).
    Vectors {
        #[command(subcommand)]
        command: VectorsCommand,
    },
    /// Runs the scenarios against an implementation under test; streams results to
    /// `<out>/results.jsonl`. Exit 0: every applicable MUST scenario passed; 1: failures;
    /// 2: usage or configuration error; 3: infrastructure error.
    Run(cli::RunArgs),
    /// Lists the selected scenarios: id, layer, level, requirements.
    List(cli::ListArgs),
    /// Replays one scenario with the run seed printed with its failure.
    Replay(cli::ReplayArgs),
    /// Loads and validates scenario files; every problem as `file:line: message`.
    Validate(cli::ValidateArgs),
    /// Prints a commented IUT description template.
    IcsTemplate,
    /// Runs the whole suite against an IUT (`--iut FILE`) or the reference agent (`--self`),
    /// writes the reports and a signed certification bundle (`<out>/certification.cbor`).
    Certify(mtp_harness::certify::CertifyArgs),
    /// Runs each scenario against the reference agent with each defect in its `killed_by`;
    /// every one must fail.
    Mutants(mtp_harness::certify::MutantsArgs),
    /// Requirement coverage: per requirement the scenarios citing it and their last verdict,
    /// totals, uncovered MUST requirements, untestable ones with reasons.
    Coverage(mtp_harness::coverage::CoverageArgs),
    /// Certification bundles.
    Bundle {
        #[command(subcommand)]
        command: mtp_harness::certify::BundleCommand,
    },
    /// Runs the reference agent (used by `certify --self`; not for direct use).
    #[command(hide = true)]
    ReferenceAgent {
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum VectorsCommand {
    /// Regenerates every vector family from its fixed seeds (byte-identical on every run)
    /// and writes it under the output folder; prints the file count per family.
    Generate {
        /// Root folder of the corpus.
        #[arg(long, default_value = "vectors")]
        out: PathBuf,
    },
    /// Has the IUT encode, parse, sign and verify every vector through its test-control
    /// interface; the harness judges each result. Exit 1 when any check fails.
    Verify(mtp_harness::vectors_cli::VerifyArgs),
    /// Runs the suite's own crypto and CBOR layers over public vector sets (ACVP, Wycheproof,
    /// RFC 8949 Appendix A, dCBOR) and prints counts per file.
    CheckExternal(mtp_harness::vectors_cli::ExternalArgs),
}

fn vectors_generate(out: &std::path::Path) -> ExitCode {
    let families = match mtp_harness::vectors::generate_all() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("mtp-cert vectors generate: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut total = 0;
    for family in &families {
        if let Err(e) = mtp_harness::vectors::write(out, &family.files) {
            eprintln!("mtp-cert vectors generate: {e}");
            return ExitCode::FAILURE;
        }
        mtp_harness::outln!("{}: {} files", family.name, family.files.len());
        total += family.files.len();
    }
    mtp_harness::outln!("{total} files written under {}", out.display());
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::SelfCheck { seed, out, only } => selfcheck::run(seed, &out, only.as_deref()),
        Command::Vectors {
            command: VectorsCommand::Generate { out },
        } => vectors_generate(&out),
        Command::Vectors {
            command: VectorsCommand::Verify(args),
        } => mtp_harness::vectors_cli::verify(&args),
        Command::Vectors {
            command: VectorsCommand::CheckExternal(args),
        } => mtp_harness::vectors_cli::check_external(&args),
        Command::Run(args) => cli::run(&args),
        Command::List(args) => cli::list(&args),
        Command::Replay(args) => cli::replay(&args),
        Command::Validate(args) => cli::validate(&args),
        Command::IcsTemplate => cli::ics_template(),
        Command::Certify(args) => mtp_harness::certify::certify(&args),
        Command::Mutants(args) => mtp_harness::certify::mutants(&args),
        Command::Coverage(args) => mtp_harness::coverage::run_coverage(&args),
        Command::Bundle { command } => mtp_harness::certify::bundle_command(&command),
        Command::ReferenceAgent { config } => mtp_harness::selfiut::run_reference_agent(&config),
    }
}
