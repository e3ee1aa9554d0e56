//! The IUT of `mtp-cert certify --self`: reference agents (`mtp-agent`'s runtime, started as
//! child processes of `mtp-cert` through the hidden `reference-agent` subcommand), each with
//! its own private `nats-server` on a free loopback port, and the IUT description that points
//! the harness at them. Children are killed when [`SelfIut`] is dropped; a child whose parent
//! dies exits when its stdin closes.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use mtp_reference_agent::config::{AgentConfig, LogConfig, LogFormat, NatsConfig};
use mtp_reference_agent::transport::nats::{NatsServer, NatsServerOptions};

/// How long an agent may take to print its ready line.
const STARTUP: Duration = Duration::from_secs(60);

/// Why the self IUT could not be started (an infrastructure error, exit 3).
#[derive(Debug, thiserror::Error)]
pub enum SelfIutError {
    #[error("nats-server: {0} (install it: apt-get install -y nats-server, or give --nats-url)")]
    Nats(String),
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("reference agent {name}: {message} (log: {log})")]
    Agent {
        name: String,
        message: String,
        log: PathBuf,
    },
}

/// What to start.
#[derive(Clone, Debug)]
pub struct SelfIutOptions {
    /// Identical agents, one per concurrent scenario.
    pub instances: usize,
    /// The agents' seeds derive from it.
    pub run_seed: u64,
    /// Deliberate defects (tests of the suite itself).
    pub faults: Vec<String>,
    /// Use this broker for every instance instead of starting one per instance.
    pub nats_url: Option<String>,
    /// The harness's control-channel certificate fingerprint (`sha256:<hex>`), pinned by the
    /// agents' test-control services.
    pub harness_fingerprint: String,
    /// Agent configurations, seeds, state and logs.
    pub work_dir: PathBuf,
}

/// One running reference agent.
#[derive(Debug)]
pub struct SelfInstance {
    pub name: String,
    pub did: String,
    /// `grpcs://127.0.0.1:<port>`.
    pub sync_endpoint: String,
    pub control_endpoint: String,
    /// `sha256:<hex>` of the agent's certificate (MTPSync and test-control).
    pub fingerprint: String,
    pub nats_url: String,
    pub log: PathBuf,
    child: Child,
    /// Closing it tells the child to exit.
    _stdin: Option<ChildStdin>,
}

/// The running self IUT.
pub struct SelfIut {
    pub instances: Vec<SelfInstance>,
    brokers: Vec<NatsServer>,
}

/// The seed of instance `i` of a self-certification run.
pub fn agent_seed(run_seed: u64, i: usize) -> [u8; 32] {
    let mut input = b"mtp-cert/self-iut/1".to_vec();
    input.extend_from_slice(&run_seed.to_be_bytes());
    input.extend_from_slice(&(i as u64).to_be_bytes());
    mtp_protocol::crypto::sha256(&input)
}

fn free_port() -> Result<u16, SelfIutError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| SelfIutError::Io {
            path: PathBuf::from("127.0.0.1:0"),
            message: format!("no free port: {e}"),
        })
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SelfIutError + '_ {
    move |e| SelfIutError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

impl SelfIut {
    /// Starts the brokers and the agents and waits until every agent is ready.
    pub fn start(opts: &SelfIutOptions) -> Result<SelfIut, SelfIutError> {
        let exe = std::env::current_exe().map_err(io_err(Path::new("mtp-cert")))?;
        SelfIut::start_with(&exe, opts)
    }

    /// [`SelfIut::start`] with the `mtp-cert` binary given (tests).
    pub fn start_with(exe: &Path, opts: &SelfIutOptions) -> Result<SelfIut, SelfIutError> {
        std::fs::create_dir_all(&opts.work_dir).map_err(io_err(&opts.work_dir))?;
        let mut brokers = Vec::new();
        let mut instances = Vec::new();
        for i in 0..opts.instances.max(1) {
            let nats_url = match &opts.nats_url {
                Some(u) => u.clone(),
                None => {
                    let dir = opts.work_dir.join(format!("nats-{i}"));
                    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
                    let server = NatsServer::start(NatsServerOptions {
                        store_dir: Some(dir),
                        ..NatsServerOptions::default()
                    })
                    .map_err(|e| SelfIutError::Nats(e.to_string()))?;
                    let url = server.url();
                    brokers.push(server);
                    url
                }
            };
            instances.push(start_agent(exe, opts, i, nats_url)?);
        }
        Ok(SelfIut { instances, brokers })
    }

    /// The IUT description (YAML) for these instances; `ics` is the reference agent's claim.
    pub fn description(&self, harness_seed_file: &str) -> String {
        let mut out = String::from(
            "# Generated by `mtp-cert certify --self`: the reference agent, one entry per instance.\n\
             name: mtp-agent (reference agent) ",
        );
        out.push_str(env!("CARGO_PKG_VERSION"));
        out.push_str("\nendpoints:\n");
        for inst in &self.instances {
            out.push_str(&format!(
                "  - sync:\n      address: {}\n      fingerprint: {}\n    \
                 async:\n      url: {}\n      subject_prefix: mtp\n    \
                 control:\n      address: {}\n      fingerprint: {}\n",
                inst.sync_endpoint,
                inst.fingerprint,
                inst.nats_url,
                inst.control_endpoint,
                inst.fingerprint
            ));
        }
        out.push_str(&format!(
            "harness_identity:\n  seed_file: {harness_seed_file}\n{SELF_ICS}"
        ));
        out
    }

    /// Stops agents and brokers.
    pub fn stop(mut self) {
        self.kill_all();
    }

    fn kill_all(&mut self) {
        for inst in &mut self.instances {
            inst._stdin.take();
            let _ = inst.child.kill();
            let _ = inst.child.wait();
        }
        for b in &mut self.brokers {
            let _ = b.stop();
        }
        self.brokers.clear();
    }
}

impl Drop for SelfIut {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// What the reference agent claims (its ICS).
pub const SELF_ICS: &str = "ics:
  roles: [requester, provider, index, registry, verifier]
  algorithms: []
  price_units: [USD, EUR]
  verification_methods: [attestation, evidence, computation, third_party]
  extensions: []
  settlement_rails: [ledger, flaky]
timeouts:
  step: 10s
  scenario: 90s
  connect: 5s
";

fn start_agent(
    exe: &Path,
    opts: &SelfIutOptions,
    i: usize,
    nats_url: String,
) -> Result<SelfInstance, SelfIutError> {
    let name = format!("self-{i}");
    let dir = opts.work_dir.join(&name);
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let seed_file = dir.join("seed.hex");
    let seed = agent_seed(opts.run_seed, i);
    std::fs::write(&seed_file, format!("{}\n", hex::encode(seed))).map_err(io_err(&seed_file))?;
    let sync_port = free_port()?;
    let control_port = free_port()?;
    let cfg = AgentConfig {
        name: name.clone(),
        seed_file: Some(seed_file),
        state_dir: dir.join("state"),
        sync_listen: SocketAddr::from(([127, 0, 0, 1], sync_port)),
        advertise_host: "127.0.0.1".into(),
        control_listen: Some(SocketAddr::from(([127, 0, 0, 1], control_port))),
        control_pins: vec![opts.harness_fingerprint.clone()],
        nats: Some(NatsConfig {
            url: nats_url.clone(),
            cluster: "mtp-cert-self".into(),
        }),
        serve_index: true,
        log: LogConfig {
            format: LogFormat::Text,
            filter: "info".into(),
        },
        test_faults: opts.faults.clone(),
        ..AgentConfig::default()
    };
    let config_path = dir.join("agent.yaml");
    let yaml = serde_yaml::to_string(&cfg).map_err(|e| SelfIutError::Io {
        path: config_path.clone(),
        message: e.to_string(),
    })?;
    std::fs::write(&config_path, yaml).map_err(io_err(&config_path))?;
    let log = dir.join("agent.log");
    let log_file = std::fs::File::create(&log).map_err(io_err(&log))?;
    let agent_err = |message: String| SelfIutError::Agent {
        name: name.clone(),
        message,
        log: log.clone(),
    };
    let mut child = Command::new(exe)
        .arg("reference-agent")
        .arg("--config")
        .arg(&config_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file))
        .spawn()
        .map_err(|e| agent_err(format!("cannot start: {e}")))?;
    let stdin = child.stdin.take();
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        return Err(agent_err("no stdout".into()));
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let r = BufReader::new(stdout).read_line(&mut line).map(|_| line);
        let _ = tx.send(r);
    });
    let ready = match rx.recv_timeout(STARTUP) {
        Ok(Ok(line)) if !line.trim().is_empty() => line,
        Ok(Ok(_)) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(agent_err("exited before it was ready".into()));
        }
        Ok(Err(e)) => {
            let _ = child.kill();
            return Err(agent_err(format!("reading its ready line: {e}")));
        }
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(agent_err(format!("not ready within {STARTUP:?}")));
        }
    };
    let v: serde_json::Value = serde_json::from_str(ready.trim())
        .map_err(|e| agent_err(format!("ready line {ready:?}: {e}")))?;
    let text = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    Ok(SelfInstance {
        name: name.clone(),
        did: text("did"),
        sync_endpoint: format!("grpcs://127.0.0.1:{sync_port}"),
        control_endpoint: format!("grpcs://127.0.0.1:{control_port}"),
        fingerprint: text("tls_fingerprint"),
        nats_url,
        log: log.clone(),
        child,
        _stdin: stdin,
    })
}

/// The hidden `mtp-cert reference-agent --config FILE` subcommand: runs the reference agent
/// until SIGINT/SIGTERM or until its stdin closes (the parent is gone).
pub fn run_reference_agent(config: &Path) -> std::process::ExitCode {
    use std::process::ExitCode;
    let cfg = match AgentConfig::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mtp-cert reference-agent: {e}");
            return ExitCode::from(2);
        }
    };
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_new(&cfg.log.filter) {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .try_init();
    }
    let Some(seed_file) = cfg.seed_file.clone() else {
        eprintln!("mtp-cert reference-agent: the configuration names no seed_file");
        return ExitCode::from(2);
    };
    let seed = match mtp_reference_agent::keys::load_or_create_seed(&seed_file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mtp-cert reference-agent: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mtp-cert reference-agent: tokio: {e}");
            return ExitCode::from(3);
        }
    };
    rt.block_on(async move {
        let running = match mtp_reference_agent::runtime::start(cfg, seed, None).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("mtp-cert reference-agent: {e}");
                return ExitCode::from(3);
            }
        };
        crate::outln!("{}", running.ready_line());
        let stdin_closed = tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin()
                .read_line(&mut sink)
                .map(|n| n > 0)
                .unwrap_or(false)
            {
                sink.clear();
            }
        });
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
            _ = stdin_closed => {}
        }
        match running.shutdown().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mtp-cert reference-agent: shutdown: {e}");
                ExitCode::from(3)
            }
        }
    })
}
