//! Process-level test support: a real `nats-server`, `mtp-agent run` processes with
//! generated configurations, a harness TLS identity pinned by every agent's test-control
//! service, a typed control client, and a Principal that issues delegation chains.
//!
//! Without `nats-server` the NATS tests fail with the install hint, unless `MTP_SKIP_NATS=1`
//! (then they skip), as in tests/nats_transport.rs.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mtp_protocol::cbor::{self, Value};
use mtp_protocol::identity::credential::{self, Credential, ProofOptions};
use mtp_protocol::identity::delegation::{AuthorityDelegation, MaxTransactionValue};
use mtp_protocol::identity::status_list::{
    MIN_LIST_BITS, StatusListFormat, StatusListIssuer, StatusPurpose,
};
use mtp_protocol::identity::{Did, DidDocument};
use mtp_protocol::taxonomy::Classifier;
use mtp_protocol::verification::Decimal;
use mtp_reference_agent::agent::{Agent, Bound};
use mtp_reference_agent::config::{AgentConfig, LogConfig, LogFormat, NatsConfig};
use mtp_reference_agent::services::control::{ClientError, ControlClient, ControlError};
use mtp_reference_agent::transport::nats::{NatsServer, NatsServerOptions, ServerError};
use mtp_reference_agent::transport::sync::{Fingerprint, TlsIdentity};

/// How long an agent may take to answer `hello` after spawning.
pub const STARTUP: Duration = Duration::from_secs(60);

// ---- NATS ------------------------------------------------------------------------------

/// Starts a broker, or `None` when `MTP_SKIP_NATS=1` and none is installed.
pub async fn nats() -> Option<NatsServer> {
    let started = tokio::task::spawn_blocking(|| NatsServer::start(NatsServerOptions::default()))
        .await
        .expect("nats start task");
    match started {
        Ok(s) => Some(s),
        Err(e @ ServerError::NotInstalled { .. }) if NatsServer::skip_requested() => {
            eprintln!("skipping: {e}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

// ---- ports, identities ---------------------------------------------------------------------

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The harness's TLS identity (the test-control client certificate every agent pins).
pub fn harness_identity() -> TlsIdentity {
    TlsIdentity::from_seed(&[0x48; 32], "mtp-harness").expect("harness identity")
}

/// A deterministic agent seed.
pub fn seed(n: u8) -> [u8; 32] {
    let mut s = [n; 32];
    s[0] = 0xa0;
    s
}

/// CBOR map from text keys.
pub fn m(entries: Vec<(&str, Value)>) -> Value {
    Value::map(entries)
}

pub fn t(s: &str) -> Value {
    Value::text(s)
}

pub fn u(n: u64) -> Value {
    Value::from(n)
}

pub fn arr(items: Vec<Value>) -> Value {
    Value::Array(items)
}

pub fn price(amount: u64, unit: &str) -> Value {
    m(vec![("amount", u(amount)), ("unit", t(unit))])
}

// ---- agent processes ----------------------------------------------------------------------

/// What to start.
#[derive(Clone, Debug)]
pub struct AgentSpec {
    pub name: String,
    pub seed: [u8; 32],
    pub nats_url: Option<String>,
    pub serve_index: bool,
    /// Pins of the test-control service (default: the harness identity).
    pub control_pins: Vec<String>,
}

impl AgentSpec {
    pub fn new(name: &str, seed_byte: u8) -> AgentSpec {
        AgentSpec {
            name: name.to_owned(),
            seed: seed(seed_byte),
            nats_url: None,
            serve_index: false,
            control_pins: vec![harness_identity().fingerprint.to_string()],
        }
    }

    pub fn nats(mut self, server: Option<&NatsServer>) -> AgentSpec {
        self.nats_url = server.map(NatsServer::url);
        self
    }

    pub fn index(mut self) -> AgentSpec {
        self.serve_index = true;
        self
    }
}

/// A running `mtp-agent run` process, killed on drop; its stderr log is printed when the
/// test fails.
pub struct AgentProcess {
    pub name: String,
    pub did: String,
    /// DID Document JSON (from `hello`).
    pub document: String,
    pub sync_port: u16,
    pub control_endpoint: String,
    pub fingerprint: Fingerprint,
    pub serve_index: bool,
    pub control: ControlClient,
    child: Child,
    log: PathBuf,
    config_path: PathBuf,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for AgentProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentProcess")
            .field("name", &self.name)
            .field("did", &self.did)
            .finish_non_exhaustive()
    }
}

/// The generated configuration of `spec` in `dir`.
pub fn config_for(spec: &AgentSpec, dir: &Path, sync_port: u16, control_port: u16) -> AgentConfig {
    AgentConfig {
        name: spec.name.clone(),
        seed_file: Some(dir.join("seed.hex")),
        state_dir: dir.join("state"),
        sync_listen: SocketAddr::from(([127, 0, 0, 1], sync_port)),
        advertise_host: "127.0.0.1".into(),
        control_listen: Some(SocketAddr::from(([127, 0, 0, 1], control_port))),
        control_pins: spec.control_pins.clone(),
        nats: spec.nats_url.as_ref().map(|url| NatsConfig {
            url: url.clone(),
            cluster: "mtp-test".into(),
        }),
        serve_index: spec.serve_index,
        log: LogConfig {
            format: LogFormat::Text,
            filter: "info,mtp_reference_agent=debug".into(),
        },
        ..AgentConfig::default()
    }
}

impl AgentProcess {
    /// Writes the seed and the YAML configuration, starts `mtp-agent run --config`, and
    /// waits until its test-control service answers `hello`.
    pub async fn spawn(spec: AgentSpec) -> AgentProcess {
        let dir = tempfile::tempdir().expect("agent dir");
        let sync_port = free_port();
        let control_port = free_port();
        let cfg = config_for(&spec, dir.path(), sync_port, control_port);
        std::fs::write(
            dir.path().join("seed.hex"),
            format!("{}\n", hex::encode(spec.seed)),
        )
        .expect("seed file");
        let config_path = dir.path().join("agent.yaml");
        std::fs::write(
            &config_path,
            serde_yaml::to_string(&cfg).expect("config yaml"),
        )
        .expect("config file");
        let log = dir.path().join("agent.log");
        let (_, tls) = mtp_reference_agent::runtime::identity_of(spec.seed).expect("identity");
        let endpoint = format!("grpcs://127.0.0.1:{control_port}");
        let (child, control, hello) =
            launch(&spec.name, &config_path, &log, &endpoint, tls.fingerprint).await;
        let text = |k: &str| {
            hello
                .get(k)
                .and_then(Value::as_text)
                .unwrap_or_else(|| panic!("hello.{k} missing: {hello:?}"))
                .to_owned()
        };
        assert_eq!(text("contract"), "mtp-iut-control/1");
        AgentProcess {
            name: spec.name.clone(),
            did: text("did"),
            document: text("did_document"),
            sync_port,
            control_endpoint: endpoint,
            fingerprint: tls.fingerprint,
            serve_index: spec.serve_index,
            control,
            child,
            log,
            config_path,
            dir,
        }
    }

    /// Stops the process gracefully and starts it again on the same configuration and
    /// state directory.
    pub async fn restart(&mut self) {
        self.terminate();
        let (child, control, hello) = launch(
            &self.name,
            &self.config_path,
            &self.log,
            &self.control_endpoint,
            self.fingerprint,
        )
        .await;
        assert_eq!(
            hello.get("did").and_then(Value::as_text),
            Some(self.did.as_str()),
            "same seed, same DID"
        );
        self.child = child;
        self.control = control;
    }

    /// One action; the IUT's error as [`ControlError`].
    pub async fn invoke(&self, action: &str, args: Value) -> Result<Value, ControlError> {
        match self.control.invoke(action, args).await {
            Ok(v) => Ok(v),
            Err(ClientError::Action(e)) => Err(e),
            Err(e) => Err(ControlError::Internal(format!("control call failed: {e}"))),
        }
    }

    /// One action that must succeed.
    pub async fn call(&self, action: &str, args: Value) -> Value {
        match self.invoke(action, args).await {
            Ok(v) => v,
            Err(e) => panic!("{}: {action} failed: {} ({e})", self.name, e.kind()),
        }
    }

    /// The transaction as the agent sees it (`transaction` action).
    pub async fn transaction(&self, id: &[u8]) -> Value {
        self.call(
            "transaction",
            m(vec![("transaction_id", Value::bytes(id.to_vec()))]),
        )
        .await
    }

    pub async fn state(&self, id: &[u8]) -> String {
        text_of(&self.transaction(id).await, "state")
    }

    /// Polls until the transaction is in `state` (panics with its last view otherwise).
    pub async fn wait_state(&self, id: &[u8], state: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let last = self
                .invoke(
                    "transaction",
                    m(vec![("transaction_id", Value::bytes(id.to_vec()))]),
                )
                .await;
            if let Ok(v) = &last
                && v.get("state").and_then(Value::as_text) == Some(state)
            {
                return v.clone();
            }
            if Instant::now() > deadline {
                panic!(
                    "{}: transaction {} not {state} within {within:?}; last: {last:?}",
                    self.name,
                    hex::encode(id)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The audit trail (`audit`): entries decoded, and the chain checked (PROFILE G-42).
    pub async fn audit(&self, id: Option<&[u8]>) -> Vec<mtp_protocol::audit::AuditEntry> {
        let args = match id {
            Some(id) => m(vec![("transaction_id", Value::bytes(id.to_vec()))]),
            None => m(vec![]),
        };
        let r = self.call("audit", args).await;
        let bytes = r.get("entries").and_then(Value::as_bytes).expect("entries");
        let items = cbor::sequence_from_slice(bytes).expect("audit CBOR sequence");
        let entries: Vec<_> = items
            .iter()
            .enumerate()
            .map(|(i, v)| mtp_protocol::audit::AuditEntry::from_value(v, i).expect("audit entry"))
            .collect();
        mtp_protocol::audit::AuditTrail::verify(&entries).expect("audit hash chain");
        entries
    }

    /// Every event so far (`Observe` from 0, until the stream is idle).
    pub async fn events(&self) -> Vec<Value> {
        let mut stream = self.control.observe(0).await.expect("observe");
        let mut out = Vec::new();
        while let Ok(Ok(Some(ev))) =
            tokio::time::timeout(Duration::from_millis(500), stream.message()).await
        {
            out.push(cbor::from_slice(&ev.event).expect("event CBOR"));
        }
        out
    }

    pub fn log(&self) -> String {
        read_log(&self.log)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Sends SIGTERM (graceful stop) and waits for the exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        if let Ok(Some(s)) = self.child.try_wait() {
            return Some(s);
        }
        #[cfg(unix)]
        {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(s)) = self.child.try_wait() {
                    return Some(s);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

/// Starts `mtp-agent run --config <config>` (stderr appended to `log`) and waits until
/// its test-control service answers `hello`.
async fn launch(
    name: &str,
    config: &Path,
    log: &Path,
    endpoint: &str,
    fingerprint: Fingerprint,
) -> (Child, ControlClient, Value) {
    let open = |p: &Path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .expect("log file")
    };
    let child = Command::new(env!("CARGO_BIN_EXE_mtp-agent"))
        .arg("run")
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(open(&log.with_extension("out")))
        .stderr(open(log))
        .spawn()
        .expect("spawn mtp-agent");
    let mut guard = ChildGuard { child: Some(child) };
    let deadline = Instant::now() + STARTUP;
    loop {
        if let Some(Ok(Some(status))) = guard.child.as_mut().map(Child::try_wait) {
            panic!(
                "{name} exited during start-up ({status}); log:\n{}",
                read_log(log)
            );
        }
        let attempt = async {
            let c = ControlClient::connect(endpoint, fingerprint, &harness_identity())
                .await
                .ok()?;
            let h = c.invoke("hello", m(vec![])).await.ok()?;
            Some((c, h))
        };
        if let Some((c, h)) = attempt.await {
            let child = guard.child.take().expect("child");
            return (child, c, h);
        }
        if Instant::now() > deadline {
            panic!(
                "{name} did not answer hello within {STARTUP:?}; log:\n{}",
                read_log(log)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Owns the child until start-up succeeded (killed otherwise).
struct ChildGuard {
    child: Option<Child>,
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "===== {} ({}) log =====\n{}\n===== end of {} log =====",
                self.name,
                self.did,
                tail(&read_log(&self.log), 400),
                self.name
            );
        }
    }
}

pub fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| format!("<no log: {e}>"))
}

fn tail(s: &str, lines: usize) -> String {
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub fn text_of(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_text)
        .unwrap_or_else(|| panic!("{key} missing in {v:?}"))
        .to_owned()
}

pub fn bytes_of(v: &Value, key: &str) -> Vec<u8> {
    v.get(key)
        .and_then(Value::as_bytes)
        .unwrap_or_else(|| panic!("{key} missing in {v:?}"))
        .to_vec()
}

pub fn texts_of(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_text)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

pub fn codes_of(v: &Value) -> Vec<u64> {
    v.get("error_codes")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

/// Every agent learns every other's DID Document (`add_peer`); index agents get the
/// `index` and `registry` roles.
pub async fn introduce(agents: &[&AgentProcess]) {
    for a in agents {
        for b in agents {
            if a.did == b.did {
                continue;
            }
            let mut roles = vec![t("agent")];
            if b.serve_index {
                roles.push(t("index"));
                roles.push(t("registry"));
            }
            a.call(
                "add_peer",
                m(vec![("document", t(&b.document)), ("roles", arr(roles))]),
            )
            .await;
        }
    }
}

// ---- the Principal -------------------------------------------------------------------------

/// The harness as Principal: issues each agent an Authority Delegation Credential with a
/// revocation entry in its own status list (BIND III-B; PROFILE G-33).
pub struct Principal {
    pub agent: Agent,
    issuer: std::sync::Mutex<StatusListIssuer>,
    _dir: tempfile::TempDir,
}

impl Principal {
    pub fn new(seed_byte: u8) -> Principal {
        let dir = tempfile::tempdir().expect("principal dir");
        let cfg = AgentConfig {
            name: "principal".into(),
            state_dir: dir.path().to_path_buf(),
            ..AgentConfig::default()
        };
        let agent = Agent::new(
            cfg,
            seed(seed_byte),
            &Bound {
                sync_addr: SocketAddr::from(([127, 0, 0, 1], 9)),
                nats: None,
            },
        )
        .expect("principal");
        let key_id = agent
            .document()
            .assertion_keys()
            .first()
            .map(|k| k.0.clone())
            .expect("assertion key");
        let issuer = StatusListIssuer::new(
            &format!(
                "urn:mtp:status:{}:revocation",
                agent.keys.did.method_specific_id()
            ),
            &agent.did(),
            StatusListFormat::StatusList2021,
            StatusPurpose::Revocation,
            MIN_LIST_BITS,
            agent.keys.signing.clone(),
            &key_id,
        )
        .expect("status list issuer");
        Principal {
            agent,
            issuer: std::sync::Mutex::new(issuer),
            _dir: dir,
        }
    }

    pub fn did(&self) -> String {
        self.agent.did()
    }

    pub fn document(&self) -> String {
        self.agent.document().to_json()
    }

    /// An ADC for `agent` over `scope` up to `max` USD on the `ledger` and `flaky` rails.
    pub fn delegate(
        &self,
        agent_did: &str,
        scope: &[&str],
        max: i128,
    ) -> (Credential, Credential, String) {
        let now = self.agent.now();
        let mut issuer = self.issuer.lock().unwrap();
        let entry = issuer.allocate().expect("status entry");
        let list = match issuer.current() {
            Some(c) => c.clone(),
            None => issuer.publish(now).expect("status list"),
        };
        let adc = AuthorityDelegation {
            id: Some(format!(
                "urn:mtp:adc:{}",
                hex::encode(self.agent.random::<16>())
            )),
            issuer: self.did(),
            principal: None,
            subject: Did::parse(agent_did).expect("agent DID"),
            scope: scope
                .iter()
                .map(|s| Classifier::parse(s).expect("scope"))
                .collect(),
            max_transaction_value: MaxTransactionValue::new(Decimal::from_int(max), "USD")
                .expect("max value"),
            max_transaction_value_commitment: None,
            permitted_jurisdictions: vec!["US".into(), "DE".into()],
            permitted_payment_rails: vec!["ledger".into(), "flaky".into()],
            permitted_counterparty_classes: None,
            constraints: Default::default(),
            valid_from: now.add_secs(-60).expect("time"),
            valid_until: now.add_secs(86_400).expect("time"),
            status: vec![entry],
        };
        let unsigned = adc.to_unsigned_credential().expect("ADC");
        let key_id = self
            .agent
            .document()
            .assertion_keys()
            .first()
            .map(|k| k.0.clone())
            .expect("assertion key");
        let signed = credential::sign(
            &unsigned,
            &self.agent.keys.signing,
            &ProofOptions {
                verification_method: key_id,
                created: now,
            },
        )
        .expect("sign ADC");
        let url = issuer.url().to_owned();
        (signed, list, url)
    }

    /// `add_peer` of the Principal's document (role `principal`), then `provision`.
    pub async fn provision(&self, agent: &AgentProcess, scope: &[&str], max: i128) {
        agent
            .call(
                "add_peer",
                m(vec![
                    ("document", t(&self.document())),
                    ("roles", arr(vec![t("principal")])),
                ]),
            )
            .await;
        let (adc, list, url) = self.delegate(&agent.did, scope, max);
        agent
            .call(
                "provision",
                m(vec![
                    ("principal", t(&self.did())),
                    ("delegation_chain", arr(vec![t(&adc.to_json())])),
                    (
                        "status_lists",
                        Value::Map(vec![(t(&url), t(&list.to_json()))]),
                    ),
                ]),
            )
            .await;
    }
}

/// Parses a DID Document (checks the `hello` document is valid).
pub fn document(json: &str) -> DidDocument {
    DidDocument::from_json(json).expect("DID Document")
}
