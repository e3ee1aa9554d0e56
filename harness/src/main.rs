//! `mtp-cert`: the MTP conformance harness.
//!
//! Today: `mtp-cert self-check`, the known-answer self-check of the protocol core, and
//! `mtp-cert vectors generate`, which writes the deterministic vector corpus. The scenario
//! runner and reports arrive with the next issues.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
        println!("{}: {} files", family.name, family.files.len());
        total += family.files.len();
    }
    println!("{total} files written under {}", out.display());
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::SelfCheck { seed, out, only } => selfcheck::run(seed, &out, only.as_deref()),
        Command::Vectors {
            command: VectorsCommand::Generate { out },
        } => vectors_generate(&out),
    }
}
