//! The live executor: drives a real IUT over MTPSync, MTPAsync and its test-control
//! interface (docs/iut-contract.md, docs/scenarios.md).
//!
//! - [`LiveFactory`]: connects the test-control channel of every IUT instance of the
//!   description (`hello`), keeps them in a pool — one scenario per instance at a time, since
//!   `reset` clears an instance's whole protocol state — and starts a [`LiveExecutor`] per
//!   scenario on a free instance.
//! - [`HarnessKeys`]: the harness's fixed control-channel TLS identity, which the IUT pins.
//! - [`persona`]: the counterparty Agents and the Principal the harness plays, derived from
//!   the scenario seed; [`server`]: their MTP `Agent` gRPC servers.
//! - [`build`], [`faults`], [`session`]: messages completed and signed as a conforming peer
//!   would, then given the scenario's deliberate defects.
//! - [`oracle`], [`transitions`], [`audit_chain`]: the harness's judgement of what the IUT
//!   sends, of its state histories and of its audit trails — written from the specification.

pub mod audit_chain;
pub mod build;
pub mod channels;
pub mod control;
pub mod executor;
pub mod faults;
pub mod nats;
pub mod oracle;
pub mod persona;
pub mod presentation;
pub mod registry;
pub mod server;
pub mod session;
pub mod tls_probe;
pub mod transitions;
pub mod values;
pub mod vectors;

use std::sync::Arc;
use std::time::Duration;

use mtp_protocol::cbor::Value;
use mtp_protocol::crypto::seed;
use mtp_reference_agent::transport::sync::TlsIdentity;
use tokio::sync::{Mutex, mpsc};

pub use executor::LiveExecutor;

use crate::iut::{Endpoints, HarnessIdentity, IutDescription};
use crate::runner::{ExecutorFactory, ScenarioContext, StepFault};
use control::{CallError, ControlChannel};

/// Label of the harness's control identity when the IUT description says
/// `harness_identity: {generate: true}`: the TLS key seed is
/// `HKDF-SHA-256(ikm = 32 zero bytes, info = "MTP-seed-v1/" ‖ label)`
/// (`mtp_protocol::crypto::seed::derive`), so every mtp-cert presents the same certificate.
pub const GENERATED_IDENTITY_LABEL: &str = "mtp-cert/harness-control-tls/1";
/// Subject (CN) of the harness's control certificate.
pub const HARNESS_SUBJECT: &str = "mtp-cert";

/// Why the live executor could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The IUT description or the harness identity is unusable (exit 2).
    #[error("{0}")]
    Usage(String),
    /// An IUT instance cannot be reached or does not answer `hello` (exit 3).
    #[error("{0}")]
    Infrastructure(String),
}

impl LiveError {
    /// The `mtp-cert` exit code of this class (docs/scenarios.md).
    pub fn exit_code(&self) -> u8 {
        match self {
            LiveError::Usage(_) => 2,
            LiveError::Infrastructure(_) => 3,
        }
    }
}

/// The harness's control-channel TLS identity (a self-signed ML-DSA-65 certificate, PROFILE
/// G-37) that every IUT instance pins.
#[derive(Clone, Debug)]
pub struct HarnessKeys {
    tls: TlsIdentity,
}

impl HarnessKeys {
    /// From the IUT description's `harness_identity`.
    pub fn from_identity(id: &HarnessIdentity) -> Result<HarnessKeys, LiveError> {
        match id {
            HarnessIdentity::Generated => {
                HarnessKeys::from_seed(&seed::derive(&[0u8; 32], GENERATED_IDENTITY_LABEL))
            }
            HarnessIdentity::SeedFile { seed, .. } => HarnessKeys::from_seed(seed),
        }
    }

    /// The identity with TLS key seed `seed`.
    pub fn from_seed(seed: &[u8; 32]) -> Result<HarnessKeys, LiveError> {
        TlsIdentity::from_seed(seed, HARNESS_SUBJECT)
            .map(|tls| HarnessKeys { tls })
            .map_err(|e| LiveError::Usage(format!("harness identity: {e}")))
    }

    /// `sha256:<64 hex>`: what the IUT pins ("pin this in your IUT").
    pub fn fingerprint(&self) -> String {
        self.tls.fingerprint.to_string()
    }

    pub fn tls(&self) -> &TlsIdentity {
        &self.tls
    }
}

/// What `hello` told the harness about an instance.
#[derive(Clone, Debug, Default)]
pub struct Hello {
    pub did: String,
    pub did_document: String,
    pub actions: Vec<String>,
    /// `async.subject_prefix`, when the IUT has MTPAsync.
    pub subject_prefix: Option<String>,
    pub async_url: Option<String>,
}

impl Hello {
    fn from_value(v: &Value) -> Result<Hello, String> {
        let text = |k: &str| {
            v.get(k)
                .and_then(Value::as_text)
                .map(str::to_owned)
                .ok_or_else(|| format!("hello has no text `{k}` (control.cddl hello-result)"))
        };
        let contract = text("contract")?;
        if !contract.starts_with("mtp-iut-control/1") {
            return Err(format!(
                "the IUT speaks contract {contract:?}, this harness mtp-iut-control/1"
            ));
        }
        let a = v.get("async");
        Ok(Hello {
            did: text("did")?,
            did_document: text("did_document")?,
            actions: v
                .get("actions")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_text)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            subject_prefix: a
                .and_then(|a| a.get("subject_prefix"))
                .and_then(Value::as_text)
                .map(str::to_owned),
            async_url: a
                .and_then(|a| a.get("url"))
                .and_then(Value::as_text)
                .map(str::to_owned),
        })
    }
}

/// One IUT instance of the pool.
#[derive(Debug)]
struct Instance {
    index: usize,
    endpoints: Endpoints,
    control: ControlChannel,
}

/// An instance checked out for one scenario; it goes back to the pool when dropped (also
/// when a scenario is abandoned).
#[derive(Debug)]
pub struct Lease {
    inst: Option<Instance>,
    back: mpsc::UnboundedSender<Instance>,
}

impl Lease {
    fn instance(&self) -> Result<&Instance, StepFault> {
        self.inst
            .as_ref()
            .ok_or_else(|| StepFault::Infrastructure("the IUT instance was released".into()))
    }

    pub(crate) fn control(&self) -> Result<&ControlChannel, StepFault> {
        Ok(&self.instance()?.control)
    }

    pub(crate) fn endpoints(&self) -> Result<&Endpoints, StepFault> {
        Ok(&self.instance()?.endpoints)
    }

    /// Which instance (1-based) this is.
    pub fn number(&self) -> usize {
        self.inst.as_ref().map_or(0, |i| i.index + 1)
    }

    pub(crate) async fn hello(&self, timeout: Duration) -> Result<Hello, CallError> {
        let c = self
            .instance()
            .map_err(|_| CallError::Transport("the IUT instance was released".into()))?
            .control
            .clone();
        let v = c.invoke("hello", &Value::Map(vec![]), timeout).await?;
        Hello::from_value(&v).map_err(CallError::Transport)
    }

    pub(crate) async fn reconnect(
        &mut self,
        keys: &HarnessKeys,
        timeout: Duration,
    ) -> Result<(), String> {
        let inst = self
            .inst
            .as_mut()
            .ok_or_else(|| "the IUT instance was released".to_owned())?;
        let ep = &inst.endpoints.control;
        inst.control =
            ControlChannel::connect(&ep.address.to_string(), ep.fingerprint, &keys.tls, timeout)
                .await?;
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(i) = self.inst.take() {
            // A closed pool means the run is over.
            let _ = self.back.send(i);
        }
    }
}

/// Starts live executors on a pool of identical IUT instances.
#[derive(Debug)]
pub struct LiveFactory {
    keys: HarnessKeys,
    instances: usize,
    back: mpsc::UnboundedSender<Instance>,
    pool: Mutex<mpsc::UnboundedReceiver<Instance>>,
}

impl LiveFactory {
    /// Connects the test-control channel of every instance and checks it answers `hello`.
    pub async fn connect(
        iut: Arc<IutDescription>,
        harness: HarnessKeys,
    ) -> Result<LiveFactory, LiveError> {
        if iut.instances.is_empty() {
            return Err(LiveError::Usage(
                "the IUT description lists no endpoints".into(),
            ));
        }
        let (back, rx) = mpsc::unbounded_channel();
        let timeout = iut.timeouts.connect;
        for (index, endpoints) in iut.instances.iter().enumerate() {
            let ep = &endpoints.control;
            let what = format!("IUT instance {} ({})", index + 1, ep.address);
            let control =
                ControlChannel::connect(&ep.address.to_string(), ep.fingerprint, &harness.tls, timeout)
                    .await
                    .map_err(|e| {
                        LiveError::Infrastructure(format!(
                            "{what}: test-control channel: {e} (the IUT must pin the harness certificate {})",
                            harness.fingerprint()
                        ))
                    })?;
            let hello = control
                .invoke("hello", &Value::Map(vec![]), iut.timeouts.step)
                .await
                .map_err(|e| LiveError::Infrastructure(format!("{what}: hello: {e}")))?;
            Hello::from_value(&hello)
                .map_err(|e| LiveError::Infrastructure(format!("{what}: {e}")))?;
            let _ = back.send(Instance {
                index,
                endpoints: endpoints.clone(),
                control,
            });
        }
        Ok(LiveFactory {
            keys: harness,
            instances: iut.instances.len(),
            back,
            pool: Mutex::new(rx),
        })
    }

    /// How many IUT instances the pool holds (the natural `--jobs`).
    pub fn instances(&self) -> usize {
        self.instances
    }

    /// The fingerprint the IUT must pin.
    pub fn harness_fingerprint(&self) -> String {
        self.keys.fingerprint()
    }
}

impl ExecutorFactory for LiveFactory {
    type Executor = LiveExecutor;

    fn name(&self) -> String {
        "live".to_owned()
    }

    async fn start(&self, ctx: &ScenarioContext) -> Result<LiveExecutor, StepFault> {
        // Waits for a free instance (one scenario per instance at a time).
        let inst = {
            let mut rx = self.pool.lock().await;
            rx.recv().await
        }
        .ok_or_else(|| StepFault::Infrastructure("the IUT instance pool is closed".into()))?;
        let lease = Lease {
            inst: Some(inst),
            back: self.back.clone(),
        };
        LiveExecutor::start(lease, ctx, &self.keys).await
    }
}
