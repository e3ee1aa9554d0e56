//! `mtp-agent`: the MTP reference agent (see `mtp-agent --help` and README.md).
//!
//! Exit codes: 0 success; 2 usage or configuration error; 1 runtime failure.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use mtp_protocol::cbor::{self, Value};
use mtp_reference_agent::agent::{Agent, Bound};
use mtp_reference_agent::config::{AgentConfig, ConfigError, LogFormat, NatsConfig};
use mtp_reference_agent::keys::{self, SeedError};
use mtp_reference_agent::runtime;
use mtp_reference_agent::services::control::ControlClient;
use mtp_reference_agent::transport::sync::Fingerprint;

/// The MTP reference agent: a complete Massachusetts Transaction Protocol agent over
/// gRPC/mutual TLS 1.3 (MTPSync) and NATS JetStream (MTPAsync), with the test-control
/// interface of the conformance suite (docs/iut-contract.md).
#[derive(Debug, Parser)]
#[command(name = "mtp-agent", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent until SIGINT or SIGTERM.
    Run {
        #[command(flatten)]
        config: ConfigArgs,
        /// Log output format (overrides `log.format`).
        #[arg(long, value_enum)]
        log_format: Option<LogFormatArg>,
        /// Log filter, tracing-subscriber EnvFilter syntax, e.g.
        /// `info,mtp_reference_agent=debug` (overrides `log.filter`).
        #[arg(long, value_name = "FILTER")]
        log: Option<String>,
    },
    /// Print a commented configuration file with every key at its default.
    ConfigTemplate,
    /// Print the DID Document an agent with this seed and configuration publishes
    /// (needs a fixed `--sync-listen` port).
    Did {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Print the SHA-256 fingerprint (`sha256:<hex>`) of the TLS certificate derived from
    /// a seed: the MTPSync and test-control certificate of an agent with this seed, or the
    /// client certificate `mtp-agent control` presents with it (put it in `control_pins`).
    Fingerprint {
        /// Seed file (64 hex characters; created with a random seed if missing).
        #[arg(long, value_name = "FILE")]
        seed_file: PathBuf,
    },
    /// Run one test-control action against a running agent and print its result in CBOR
    /// diagnostic notation.
    Control {
        #[command(flatten)]
        client: ClientArgs,
        /// Action name (docs/iut-contract.md), e.g. `hello`, `transaction`, `audit`.
        action: String,
        /// Arguments: a map in CBOR diagnostic notation (JSON is accepted; byte strings
        /// as h'hex'), e.g. `{"transaction_id": h'…'}`.
        #[arg(default_value = "{}")]
        args: String,
        /// Print the result as JSON (byte strings base64url) instead of diagnostic notation.
        #[arg(long)]
        json: bool,
    },
    /// Act as a Principal (the key from `--seed-file`): issue an Authority Delegation
    /// Credential to an agent and print, as JSON, the Principal's DID Document and the
    /// arguments of the agent's test-control `provision` action.
    Principal {
        /// The Principal's seed file (created with a random seed if missing).
        #[arg(long, value_name = "FILE")]
        seed_file: PathBuf,
        /// The delegatee agent's DID.
        #[arg(long, value_name = "DID")]
        subject: String,
        /// Value-type classifier the agent may transact in (repeatable).
        #[arg(long, value_name = "CLASSIFIER", default_values_t = ["inference".to_owned()])]
        scope: Vec<String>,
        /// Maximum transaction value.
        #[arg(long, value_name = "AMOUNT", default_value_t = 1000)]
        max: i64,
        /// Currency of the maximum (ISO 4217).
        #[arg(long, value_name = "UNIT", default_value = "USD")]
        currency: String,
        /// Permitted payment rail (repeatable).
        #[arg(long = "rail", value_name = "RAIL", default_values_t = ["ledger".to_owned(), "flaky".to_owned()])]
        rails: Vec<String>,
        /// Permitted jurisdiction, ISO 3166-1 alpha-2 (repeatable).
        #[arg(long = "jurisdiction", value_name = "CC", default_values_t = ["US".to_owned(), "DE".to_owned()])]
        jurisdictions: Vec<String>,
        /// Index of the credential in the Principal's revocation list (one per agent).
        #[arg(long, value_name = "N", default_value_t = 0)]
        status_index: u64,
        /// Validity of the credential, in days.
        #[arg(long, value_name = "DAYS", default_value_t = 30)]
        days: i64,
    },
    /// Stream a running agent's events (test-control `Observe`), one per line, until
    /// interrupted.
    Observe {
        #[command(flatten)]
        client: ClientArgs,
        /// Start after this event sequence number (0 = from the first event).
        #[arg(long, default_value_t = 0)]
        after: u64,
    },
}

/// Configuration file and the flags that override it.
#[derive(Debug, Args)]
struct ConfigArgs {
    /// YAML configuration file (`mtp-agent config-template` prints one).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Seed file (64 hex characters; every key derives from it; created with a random seed
    /// if missing). Default: `<state-dir>/seed.hex`.
    #[arg(long, value_name = "FILE")]
    seed_file: Option<PathBuf>,
    /// State directory: audit trails, receipts, reserved MTP-UUIDs, NATS de-duplication.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Agent name shown in logs and `hello`.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// MTPSync listen address (gRPC over mutual TLS 1.3).
    #[arg(long, value_name = "ADDR")]
    sync_listen: Option<SocketAddr>,
    /// Host put in the DID Document's MTPSync endpoint.
    #[arg(long, value_name = "HOST")]
    advertise_host: Option<String>,
    /// Test-control listen address (enables the service).
    #[arg(long, value_name = "ADDR")]
    control_listen: Option<SocketAddr>,
    /// Fingerprint (`sha256:<64 hex>`) of a client allowed to use the test-control service
    /// (repeatable; added to `control_pins`).
    #[arg(long = "control-pin", value_name = "FP")]
    control_pins: Vec<String>,
    /// NATS URL (`nats://host:port`; enables MTPAsync).
    #[arg(long, value_name = "URL")]
    nats_url: Option<String>,
    /// NATS cluster name put in the DID Document.
    #[arg(long, value_name = "NAME")]
    nats_cluster: Option<String>,
    /// Serve the discovery index (Index gRPC service, discovery NATS subjects).
    #[arg(long)]
    serve_index: bool,
    /// An index to publish to and query (`grpcs://host:port#sha256:<hex>` or a DID Document
    /// file; repeatable; added to `indexes`).
    #[arg(long = "index", value_name = "INDEX")]
    indexes: Vec<String>,
    /// DID Document file of a trusted peer (repeatable; added to `peers`).
    #[arg(long = "peer", value_name = "FILE")]
    peers: Vec<PathBuf>,
}

/// How `control` / `observe` reach an agent's test-control service.
#[derive(Debug, Args)]
struct ClientArgs {
    /// The agent's test-control endpoint, `grpcs://host:port`.
    #[arg(long, value_name = "URL")]
    endpoint: String,
    /// The agent's TLS certificate fingerprint (`mtp-agent fingerprint --seed-file
    /// <agent seed>`, or `tls_fingerprint` in `hello`).
    #[arg(long, value_name = "FP")]
    pin: String,
    /// Seed file of this client's TLS identity; its fingerprint must be in the agent's
    /// `control_pins` (created with a random seed if missing).
    #[arg(long, value_name = "FILE")]
    seed_file: PathBuf,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

/// A failure with its exit code.
#[derive(Debug, thiserror::Error)]
enum CliError {
    /// Exit 2.
    #[error("{0}")]
    Usage(String),
    /// Exit 1.
    #[error("{0}")]
    Runtime(String),
}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        CliError::Usage(e.to_string())
    }
}

impl From<SeedError> for CliError {
    fn from(e: SeedError) -> Self {
        match e {
            SeedError::Malformed(_) => CliError::Usage(e.to_string()),
            _ => CliError::Runtime(e.to_string()),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mtp-agent: {e}");
            match e {
                CliError::Usage(_) => ExitCode::from(2),
                CliError::Runtime(_) => ExitCode::from(1),
            }
        }
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::ConfigTemplate => {
            print!("{}", AgentConfig::template());
            Ok(())
        }
        Command::Fingerprint { seed_file } => {
            let seed = keys::load_or_create_seed(&seed_file)?;
            let (_, tls) =
                runtime::identity_of(seed).map_err(|e| CliError::Runtime(e.to_string()))?;
            print_line(&tls.fingerprint.to_string());
            Ok(())
        }
        Command::Did { config } => {
            let (cfg, seed_file) = load_config(&config)?;
            if cfg.sync_listen.port() == 0 {
                return Err(CliError::Usage(
                    "the DID Document names the MTPSync port: give a fixed --sync-listen".into(),
                ));
            }
            let seed = keys::load_or_create_seed(&seed_file)?;
            let nats = match &cfg.nats {
                Some(n) => Some(runtime::nats_host_port(&n.url).ok_or_else(|| {
                    CliError::Usage(format!("NATS URL {:?} is not nats://host:port", n.url))
                })?),
                None => None,
            };
            let scratch = tempfile::tempdir().map_err(|e| CliError::Runtime(e.to_string()))?;
            let sync_addr = cfg.sync_listen;
            let cfg = AgentConfig {
                state_dir: scratch.path().to_path_buf(),
                ..cfg
            };
            let agent = Agent::new(cfg, seed, &Bound { sync_addr, nats })
                .map_err(|e| CliError::Runtime(e.to_string()))?;
            print_line(&agent.document().to_json_pretty());
            Ok(())
        }
        Command::Run {
            config,
            log_format,
            log,
        } => {
            let (mut cfg, seed_file) = load_config(&config)?;
            if let Some(f) = log_format {
                cfg.log.format = match f {
                    LogFormatArg::Text => LogFormat::Text,
                    LogFormatArg::Json => LogFormat::Json,
                };
            }
            if let Some(l) = log {
                cfg.log.filter = l;
            }
            init_logging(&cfg)?;
            let seed = keys::load_or_create_seed(&seed_file)?;
            tokio_runtime()?.block_on(serve(cfg, seed))
        }
        Command::Control {
            client,
            action,
            args,
            json,
        } => {
            let bytes =
                cbor::diag::from_diag(&args).map_err(|e| CliError::Usage(format!("args: {e}")))?;
            let args = cbor::from_slice_lenient(&bytes)
                .map_err(|e| CliError::Usage(format!("args: {e}")))?;
            if !matches!(args, Value::Map(_)) {
                return Err(CliError::Usage("args must be a map".into()));
            }
            tokio_runtime()?.block_on(async move {
                let c = connect(&client).await?;
                let result = c
                    .invoke(&action, args)
                    .await
                    .map_err(|e| CliError::Runtime(format!("{action}: {e}")))?;
                let text = if json {
                    let j = cbor::json::to_json(&result)
                        .map_err(|e| CliError::Runtime(e.to_string()))?;
                    serde_json::to_string_pretty(&j)
                        .map_err(|e| CliError::Runtime(e.to_string()))?
                } else {
                    cbor::diag::value_to_diag(&result)
                };
                let _ = print_line(&text);
                Ok(())
            })
        }
        Command::Principal {
            seed_file,
            subject,
            scope,
            max,
            currency,
            rails,
            jurisdictions,
            status_index,
            days,
        } => {
            let seed = keys::load_or_create_seed(&seed_file)?;
            let out = principal::issue(
                seed,
                &principal::Grant {
                    subject,
                    scope,
                    max,
                    currency,
                    rails,
                    jurisdictions,
                    status_index,
                    days,
                },
            )?;
            print_line(
                &serde_json::to_string_pretty(&out)
                    .map_err(|e| CliError::Runtime(e.to_string()))?,
            );
            Ok(())
        }
        Command::Observe { client, after } => tokio_runtime()?.block_on(async move {
            let c = connect(&client).await?;
            let mut stream = c
                .observe(after)
                .await
                .map_err(|e| CliError::Runtime(e.to_string()))?;
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                    m = stream.message() => match m {
                        Ok(Some(ev)) => {
                            let text = cbor::diag::to_diag(&ev.event)
                                .unwrap_or_else(|e| format!("<undecodable event: {e}>"));
                            if !print_line(&format!("{} {text}", ev.sequence)) {
                                return Ok(());
                            }
                        }
                        Ok(None) => return Ok(()),
                        Err(e) => return Err(CliError::Runtime(e.to_string())),
                    }
                }
            }
        }),
    }
}

/// Writes one line to stdout; `false` when stdout is gone (e.g. a closed pipe).
fn print_line(text: &str) -> bool {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").and_then(|()| out.flush()).is_ok()
}

fn tokio_runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Runtime(format!("cannot start the async runtime: {e}")))
}

/// The YAML file (or the defaults) with the flags applied, and the seed file to use.
fn load_config(a: &ConfigArgs) -> Result<(AgentConfig, PathBuf), CliError> {
    let mut c = match &a.config {
        Some(path) => AgentConfig::load(path)?,
        None => AgentConfig::default(),
    };
    if let Some(v) = &a.seed_file {
        c.seed_file = Some(v.clone());
    }
    if let Some(v) = &a.state_dir {
        c.state_dir = v.clone();
    }
    if let Some(v) = &a.name {
        c.name = v.clone();
    }
    if let Some(v) = a.sync_listen {
        c.sync_listen = v;
    }
    if let Some(v) = &a.advertise_host {
        c.advertise_host = v.clone();
    }
    if let Some(v) = a.control_listen {
        c.control_listen = Some(v);
    }
    c.control_pins.extend(a.control_pins.iter().cloned());
    if let Some(url) = &a.nats_url {
        c.nats.get_or_insert_with(NatsConfig::default).url = url.clone();
    }
    if let Some(cluster) = &a.nats_cluster {
        c.nats.get_or_insert_with(NatsConfig::default).cluster = cluster.clone();
    }
    if a.serve_index {
        c.serve_index = true;
    }
    c.indexes.extend(a.indexes.iter().cloned());
    c.peers.extend(a.peers.iter().cloned());
    // Relative paths of the file are relative to the file's directory.
    if let Some(base) = a.config.as_deref().and_then(Path::parent) {
        let rebase = |p: &mut PathBuf| {
            if p.is_relative() && !base.as_os_str().is_empty() {
                *p = base.join(&*p);
            }
        };
        if a.state_dir.is_none() {
            rebase(&mut c.state_dir);
        }
        if a.seed_file.is_none()
            && let Some(s) = c.seed_file.as_mut()
        {
            rebase(s);
        }
        let from_flags = a.peers.len();
        let from_file = c.peers.len() - from_flags;
        for p in c.peers.iter_mut().take(from_file) {
            rebase(p);
        }
    }
    c.validate()?;
    let seed_file = c
        .seed_file
        .clone()
        .unwrap_or_else(|| c.state_dir.join("seed.hex"));
    Ok((c, seed_file))
}

fn init_logging(cfg: &AgentConfig) -> Result<(), CliError> {
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.log.filter)
        .map_err(|e| CliError::Usage(format!("log filter {:?}: {e}", cfg.log.filter)))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let installed = match cfg.log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|e| CliError::Runtime(format!("cannot install the logger: {e}")))
}

/// Runs until SIGINT/SIGTERM, then shuts down gracefully.
async fn serve(cfg: AgentConfig, seed: [u8; 32]) -> Result<(), CliError> {
    let running = runtime::start(cfg, seed, None).await.map_err(|e| match e {
        runtime::StartError::Peer { .. }
        | runtime::StartError::NatsUrl(_)
        | runtime::StartError::Control(_) => CliError::Usage(e.to_string()),
        e => CliError::Runtime(e.to_string()),
    })?;
    // One JSON line on stdout for scripts: where the agent is and who it is.
    print_line(&running.ready_line());
    wait_for_signal().await;
    tracing::info!("shutting down");
    running
        .shutdown()
        .await
        .map_err(|e| CliError::Runtime(format!("shutdown: {e}")))
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "no SIGTERM handler; waiting for SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

async fn connect(a: &ClientArgs) -> Result<ControlClient, CliError> {
    let pin = Fingerprint::parse(&a.pin)
        .map_err(|e| CliError::Usage(format!("--pin {:?}: {e}", a.pin)))?;
    let seed = keys::load_or_create_seed(&a.seed_file)?;
    let (_, identity) = runtime::identity_of(seed).map_err(|e| CliError::Runtime(e.to_string()))?;
    ControlClient::connect(&a.endpoint, pin, &identity)
        .await
        .map_err(|e| CliError::Runtime(format!("{}: {e}", a.endpoint)))
}

mod principal {
    //! `mtp-agent principal`: the harness's Principal role by hand — an Authority
    //! Delegation Credential (BIND III-B; PROFILE G-33) with a revocation entry in the
    //! Principal's own status list (PROFILE G-34).

    use mtp_protocol::identity::Did;
    use mtp_protocol::identity::credential::{self, ProofOptions};
    use mtp_protocol::identity::delegation::{AuthorityDelegation, MaxTransactionValue};
    use mtp_protocol::identity::status_list::{
        MIN_LIST_BITS, StatusListFormat, StatusListIssuer, StatusPurpose,
    };
    use mtp_protocol::taxonomy::Classifier;
    use mtp_protocol::verification::Decimal;
    use mtp_reference_agent::agent::{Agent, Bound};
    use mtp_reference_agent::config::AgentConfig;

    use super::CliError;

    pub struct Grant {
        pub subject: String,
        pub scope: Vec<String>,
        pub max: i64,
        pub currency: String,
        pub rails: Vec<String>,
        pub jurisdictions: Vec<String>,
        pub status_index: u64,
        pub days: i64,
    }

    fn usage(what: &str) -> impl Fn(String) -> CliError + '_ {
        move |e| CliError::Usage(format!("{what}: {e}"))
    }

    /// `{principal, principal_document, provision: {principal, delegation_chain,
    /// status_lists}}`.
    pub fn issue(seed: [u8; 32], g: &Grant) -> Result<serde_json::Value, CliError> {
        let runtime = |e: String| CliError::Runtime(e);
        let scratch = tempfile::tempdir().map_err(|e| runtime(e.to_string()))?;
        let agent = Agent::new(
            AgentConfig {
                name: "principal".into(),
                state_dir: scratch.path().to_path_buf(),
                ..AgentConfig::default()
            },
            seed,
            &Bound {
                sync_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 9)),
                nats: None,
            },
        )
        .map_err(|e| runtime(e.to_string()))?;
        let document = agent.document();
        let key_id = document
            .assertion_keys()
            .into_iter()
            .next()
            .map(|(id, _, _)| id)
            .ok_or_else(|| runtime("the Principal has no assertion key".into()))?;
        let url = format!(
            "urn:mtp:status:{}:revocation",
            agent.keys.did.method_specific_id()
        );
        let mut issuer = StatusListIssuer::new(
            &url,
            &agent.did(),
            StatusListFormat::StatusList2021,
            StatusPurpose::Revocation,
            MIN_LIST_BITS,
            agent.keys.signing.clone(),
            &key_id,
        )
        .map_err(|e| runtime(e.to_string()))?;
        let mut entry = issuer.allocate().map_err(|e| runtime(e.to_string()))?;
        for _ in 0..g.status_index {
            entry = issuer
                .allocate()
                .map_err(|e| usage("--status-index")(e.to_string()))?;
        }
        let now = agent.now();
        let list = issuer.publish(now).map_err(|e| runtime(e.to_string()))?;
        let scope = g
            .scope
            .iter()
            .map(|s| Classifier::parse(s).map_err(|e| CliError::Usage(format!("--scope {s}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let adc = AuthorityDelegation {
            id: Some(format!(
                "urn:mtp:adc:{}:{}",
                agent.keys.did.method_specific_id(),
                entry.index
            )),
            issuer: agent.did(),
            principal: None,
            subject: Did::parse(&g.subject).map_err(|e| usage("--subject")(e.to_string()))?,
            scope,
            max_transaction_value: MaxTransactionValue::new(
                Decimal::from_int(i128::from(g.max)),
                &g.currency,
            )
            .map_err(|e| usage("--max/--currency")(e.to_string()))?,
            max_transaction_value_commitment: None,
            permitted_jurisdictions: g.jurisdictions.clone(),
            permitted_payment_rails: g.rails.clone(),
            permitted_counterparty_classes: None,
            constraints: Default::default(),
            valid_from: now.add_secs(-60).unwrap_or(now),
            valid_until: now
                .add_secs(g.days.saturating_mul(86_400))
                .ok_or_else(|| CliError::Usage("--days out of range".into()))?,
            status: vec![entry],
        };
        let unsigned = adc
            .to_unsigned_credential()
            .map_err(|e| usage("delegation")(e.to_string()))?;
        let signed = credential::sign(
            &unsigned,
            &agent.keys.signing,
            &ProofOptions {
                verification_method: key_id,
                created: now,
            },
        )
        .map_err(|e| runtime(e.to_string()))?;
        let mut lists = serde_json::Map::new();
        lists.insert(url, serde_json::Value::String(list.to_json()));
        Ok(serde_json::json!({
            "principal": agent.did(),
            "principal_document": document.to_json(),
            "provision": {
                "principal": agent.did(),
                "delegation_chain": [signed.to_json()],
                "status_lists": lists,
            },
        }))
    }
}
