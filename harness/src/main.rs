//! `mtp-cert`: the MTP conformance harness.
//!
//! Today: `mtp-cert self-check`, the known-answer self-check of the protocol core. The
//! scenario runner, vector commands and reports arrive with the next issues.

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::SelfCheck { seed, out, only } => selfcheck::run(seed, &out, only.as_deref()),
    }
}
