//! `mtp-cert vectors verify` (the IUT encodes, parses, signs and verifies the corpus through its
//! test-control interface; the harness judges) and `mtp-cert vectors check-external` (the
//! suite's own crypto and CBOR layers against NIST ACVP, Wycheproof, RFC 8949 and dCBOR).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::iut;
use crate::live::HarnessKeys;
use crate::live::control::ControlChannel;
use crate::live::vectors::Invoker;
use crate::scenario::VectorOp;
use crate::selfiut::{SelfIut, SelfIutOptions};
use crate::vectors::external::{self, ExternalOptions};
use crate::vectors::iut_check::{self, CheckStatus, VectorCheck};

fn code(c: u8) -> ExitCode {
    ExitCode::from(c)
}

/// Connecting to the IUT's test-control service, and one codec action.
const CONNECT: Duration = Duration::from_secs(10);
const CALL: Duration = Duration::from_secs(30);

#[derive(Args, Debug, Clone)]
pub struct VerifyArgs {
    /// The IUT description (its first instance is used).
    #[arg(
        long,
        required_unless_present = "self_iut",
        conflicts_with = "self_iut"
    )]
    pub iut: Option<PathBuf>,
    /// Verify the reference agent (started privately).
    #[arg(long = "self")]
    pub self_iut: bool,
    /// With `--self`: a deliberate defect of the reference agent (tests of the suite).
    #[arg(long = "agent-fault", hide = true)]
    pub agent_faults: Vec<String>,
    /// Families to check (default: every family of the corpus).
    #[arg(long)]
    pub family: Vec<String>,
    /// Operations (`encode`, `parse`, `sign`, `verify`; default all).
    #[arg(long)]
    pub op: Vec<String>,
    /// The corpus (default: `vectors/`).
    #[arg(long)]
    pub vectors: Option<PathBuf>,
    /// Print every check, not only the failed ones.
    #[arg(long)]
    pub verbose: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ExternalArgs {
    /// The folder of public vector sets (e.g. `../shared/vectors/external`).
    pub dir: PathBuf,
    /// Run at most this many slow cases (1 GiB SHA-256 inputs).
    #[arg(long)]
    pub limit_slow: Option<usize>,
}

/// `mtp-cert vectors check-external DIR`.
pub fn check_external(args: &ExternalArgs) -> ExitCode {
    let opts = ExternalOptions {
        limit_slow: args.limit_slow,
    };
    match external::check_external(&args.dir, &opts) {
        Ok(reports) => {
            crate::out!("{}", external::render_table(&reports));
            let failed: usize = reports.iter().map(|r| r.failed).sum();
            if failed > 0 {
                eprintln!("mtp-cert vectors check-external: {failed} unexplained failure(s)");
                code(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("mtp-cert vectors check-external: {e}");
            code(2)
        }
    }
}

fn ops(names: &[String]) -> Result<Vec<VectorOp>, ExitCode> {
    if names.is_empty() {
        return Ok(VectorOp::ALL.to_vec());
    }
    names
        .iter()
        .map(|n| {
            VectorOp::from_name(n).ok_or_else(|| {
                eprintln!(
                    "mtp-cert vectors verify: unknown operation `{n}` (encode, parse, sign, verify)"
                );
                code(2)
            })
        })
        .collect()
}

/// `mtp-cert vectors verify`.
pub fn verify(args: &VerifyArgs) -> ExitCode {
    let ops = match ops(&args.op) {
        Ok(o) => o,
        Err(c) => return c,
    };
    let dir = args
        .vectors
        .clone()
        .unwrap_or_else(crate::vectors::default_corpus);
    let families: Vec<String> = if args.family.is_empty() {
        crate::vectors::FAMILIES
            .iter()
            .map(|(f, _)| (*f).to_owned())
            .collect()
    } else {
        args.family.clone()
    };
    let scratch = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("mtp-cert vectors verify: {e}");
            return code(3);
        }
    };
    // Where the IUT is and who the harness is.
    let mut own: Option<SelfIut> = None;
    let (endpoint, fingerprint, keys) = if args.self_iut {
        let keys = match HarnessKeys::from_seed(&[0x5a; 32]) {
            Ok(k) => k,
            Err(e) => {
                eprintln!("mtp-cert vectors verify: {e}");
                return code(3);
            }
        };
        let opts = SelfIutOptions {
            instances: 1,
            run_seed: 1,
            faults: args.agent_faults.clone(),
            nats_url: None,
            harness_fingerprint: keys.fingerprint(),
            work_dir: scratch.path().to_path_buf(),
        };
        let s = match SelfIut::start(&opts) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("mtp-cert vectors verify: {e}");
                return code(3);
            }
        };
        let inst = &s.instances[0];
        let Some(fp) = iut::parse_fingerprint(&inst.fingerprint) else {
            eprintln!(
                "mtp-cert vectors verify: bad fingerprint {}",
                inst.fingerprint
            );
            return code(3);
        };
        let r = (inst.control_endpoint.clone(), fp, keys);
        own = Some(s);
        r
    } else {
        let Some(path) = &args.iut else {
            return code(2);
        };
        let desc = match iut::load(path) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{e}");
                return code(2);
            }
        };
        let keys = match HarnessKeys::from_identity(&desc.harness_identity) {
            Ok(k) => k,
            Err(e) => {
                eprintln!("mtp-cert vectors verify: {e}");
                return code(e.exit_code());
            }
        };
        let first = &desc.endpoints;
        (
            first.control.address.to_string(),
            first.control.fingerprint,
            keys,
        )
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mtp-cert vectors verify: {e}");
            return code(3);
        }
    };
    let result = rt.block_on(async {
        let control = ControlChannel::connect(&endpoint, fingerprint, keys.tls(), CONNECT)
            .await
            .map_err(|e| format!("{endpoint}: {e}"))?;
        let mut c = Invoker {
            control,
            timeout: CALL,
        };
        let mut all: Vec<(String, Vec<VectorCheck>)> = Vec::new();
        for f in &families {
            let checks = iut_check::check_iut_in(&dir, &mut c, f, &[], &ops)
                .await
                .map_err(|e| format!("{f}: {e}"))?;
            all.push((f.clone(), checks));
        }
        Ok::<_, String>(all)
    });
    if let Some(s) = own {
        s.stop();
    }
    let all = match result {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mtp-cert vectors verify: {e}");
            return code(3);
        }
    };
    report(&all, args.verbose, &dir)
}

fn report(all: &[(String, Vec<VectorCheck>)], verbose: bool, dir: &Path) -> ExitCode {
    let (mut p, mut f, mut u) = (0, 0, 0);
    crate::outln!(
        "{:<14} {:>7} {:>7} {:>12}",
        "family",
        "passed",
        "failed",
        "unsupported"
    );
    for (family, checks) in all {
        let (fp, ff, fu) = iut_check::summary(checks);
        crate::outln!("{family:<14} {fp:>7} {ff:>7} {fu:>12}");
        p += fp;
        f += ff;
        u += fu;
    }
    crate::outln!("{:<14} {p:>7} {f:>7} {u:>12}", "all");
    for (_, checks) in all {
        for c in checks {
            if c.status == CheckStatus::Failed || verbose {
                crate::outln!("  {c}");
            }
        }
    }
    crate::outln!("corpus: {}", dir.display());
    if f > 0 {
        crate::outln!("FAILED: {f} vector check(s)");
        code(1)
    } else {
        ExitCode::SUCCESS
    }
}
