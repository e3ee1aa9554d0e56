//! The contract between the runner and whatever executes steps against an IUT.
//!
//! The runner owns scheduling, timeouts, variables, captures and the verdict; an executor
//! only *does* things (call the test-control interface, send a frame, wait for one, read the
//! IUT's state) and reports what it *observed*. The runner then judges the observation
//! against the step ([`super::judge`]). An executor may also judge what the runner cannot see
//! (a bad signature on a message from the IUT, a non-deterministic encoding) and report a
//! [`StepFault::Violation`]; that is the harness's oracle, written from the specification.
//!
//! One [`ExecutorFactory`] serves the whole run; it starts one [`StepExecutor`] per scenario
//! (fresh connections, IUT `reset` with the scenario seed, ...), which executes the steps in
//! order and is finished when the scenario ends.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use mtp_protocol::cbor::{self, Value};
use mtp_reports::model::{Direction, StepPhase, TranscriptEntry};

use crate::iut::IutDescription;
use crate::scenario::{Fault, GrpcService, Scenario, Step, VectorOp};

/// What a scenario's executor is told when it starts.
#[derive(Clone, Debug)]
pub struct ScenarioContext {
    pub scenario: Arc<Scenario>,
    /// The scenario seed: every key, nonce and MTP-UUID the harness makes for this scenario
    /// derives from it (and the IUT gets it with `reset`).
    pub seed: u64,
    /// The run seed it was derived from.
    pub run_seed: u64,
    pub iut: Arc<IutDescription>,
}

/// Makes one [`StepExecutor`] per scenario.
pub trait ExecutorFactory: Send + Sync + 'static {
    type Executor: StepExecutor;

    /// Recorded in the results header: `live`, `dry-run`, or a test executor's name. A run
    /// is resumed only with the same executor.
    fn name(&self) -> String;

    /// Prepares a scenario. `Err(Unmet)` makes it inconclusive, `Err(Infrastructure)` an
    /// error (for example: the IUT cannot be reached).
    fn start(
        &self,
        ctx: &ScenarioContext,
    ) -> impl Future<Output = Result<Self::Executor, StepFault>> + Send;
}

/// Executes the steps of one scenario against the IUT.
pub trait StepExecutor: Send + 'static {
    /// Values of the predefined variables this executor provides (`iut_did`,
    /// `harness_did`, `subject_prefix`); the runner adds `scenario_id` and `seed`.
    fn variables(&self) -> Vec<(String, Value)>;

    /// Executes one step and reports what happened. Must return within `input.budget`
    /// (an expectation waits at most its `within`, then reports [`Observation::Silence`]);
    /// the runner abandons the future when the budget is spent.
    fn execute(&mut self, input: StepInput) -> impl Future<Output = StepReport> + Send;

    /// Releases connections; called once, after the last step (also after a failure).
    fn finish(self) -> impl Future<Output = ()> + Send;
}

/// One step, with every template resolved.
#[derive(Clone, Debug)]
pub struct StepInput {
    /// Position among all steps (setup first), from 0.
    pub index: u32,
    pub phase: StepPhase,
    /// The step as written (for executors that need more than [`Action`] carries).
    pub step: Step,
    pub action: Action,
    /// How long the runner waits for this step.
    pub budget: Duration,
}

/// A channel with its variables substituted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResolvedChannel {
    Grpc {
        service: GrpcService,
        method: String,
    },
    Nats {
        subject: String,
    },
}

impl std::fmt::Display for ResolvedChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResolvedChannel::Grpc { service, method } => {
                let s = match service {
                    GrpcService::Agent => "Agent",
                    GrpcService::Index => "Index",
                };
                write!(f, "grpc:{s}/{method}")
            }
            ResolvedChannel::Nats { subject } => write!(f, "nats:{subject}"),
        }
    }
}

/// An `expect` with its `match` template resolved.
#[derive(Clone, Debug, PartialEq)]
pub enum ResolvedExpectation {
    Message {
        frame: String,
        matches: Option<Value>,
    },
    Response {
        frame: String,
        matches: Option<Value>,
    },
    Error {
        codes: Vec<u16>,
        grpc_status: Vec<String>,
    },
    Silence,
}

/// What the executor is asked to do. (`capture` and `sleep` steps never reach it.)
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Invoke a test-control action with these CBOR arguments.
    Control { action: String, args: Value },
    /// Build `body` into a `frame` message, sign it as `persona` unless a fault says
    /// otherwise, apply the faults, and send it on `channel`. A reply (unary gRPC) is kept
    /// for the next `expect`.
    Send {
        persona: String,
        frame: String,
        channel: ResolvedChannel,
        body: Value,
        faults: Vec<Fault>,
        /// The resolved `reused_uuid: {from: var}` value, when given.
        reused_uuid: Option<Value>,
    },
    /// Wait up to `within` for the expectation (or, for `response`/`error`, take the reply
    /// to the last send); report what came, or [`Observation::Silence`].
    Expect {
        expectation: ResolvedExpectation,
        /// `None`: the channel of the last send.
        channel: Option<ResolvedChannel>,
        within: Duration,
    },
    /// Read the transaction (control action `transaction`), polling until `state` is reached
    /// or `within` passes; report the last state seen.
    ExpectState {
        transaction: String,
        state: String,
        within: Duration,
    },
    /// Export the audit trail (control action `audit`; `None`: the agent trail), verify its
    /// hash chain, and report its entries (polling up to `within` for the expected events).
    ExpectAudit {
        transaction: Option<String>,
        events: Vec<String>,
        codes: Vec<u16>,
        within: Duration,
    },
    /// Run the IUT's codec actions over vectors of `family` and compare with the corpus.
    CheckVectors {
        family: String,
        ids: Vec<String>,
        operations: Vec<VectorOp>,
    },
}

/// A test-control action that did not succeed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlError {
    /// `unsupported_action`, `bad_args`, `not_found`, `mtp_error`, `internal`.
    pub kind: String,
    /// The MTP error code when `kind` is `mtp_error`.
    pub code: Option<u16>,
    pub message: String,
}

/// A message from the IUT.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedMessage {
    /// `grpc:Agent/Negotiate`, `nats:<subject>`.
    pub channel: String,
    pub frame_type: String,
    pub body: Value,
}

/// The IUT refused a message: a failed gRPC call (status + `mtp-error-bin`) or an MTP error
/// notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerError {
    pub code: Option<u16>,
    /// gRPC status name (`INVALID_ARGUMENT`), when the refusal was a gRPC call status.
    pub grpc_status: Option<String>,
    pub message: String,
}

/// One audit-trail entry, as far as the runner judges it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditObservation {
    pub event: String,
    pub error_code: Option<u16>,
}

/// What an executor saw.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    /// The control action's result map, or its error.
    Control(Result<Value, ControlError>),
    /// The message went out.
    Sent,
    Received(ReceivedMessage),
    Refused(PeerError),
    /// Nothing arrived within the deadline.
    Silence,
    /// The transaction's state and the states it went through (in order, ending with `state`).
    State {
        state: String,
        history: Vec<String>,
    },
    /// The audit trail; `chain` is `Err(why)` when the hash chain does not verify.
    Audit {
        entries: Vec<AuditObservation>,
        chain: Result<(), String>,
    },
    /// Vectors checked and the ones the IUT got wrong (`id: what`).
    Vectors {
        checked: u32,
        failures: Vec<String>,
    },
}

impl Observation {
    pub fn kind(&self) -> &'static str {
        match self {
            Observation::Control(_) => "control result",
            Observation::Sent => "sent",
            Observation::Received(_) => "message",
            Observation::Refused(_) => "refusal",
            Observation::Silence => "silence",
            Observation::State { .. } => "state",
            Observation::Audit { .. } => "audit trail",
            Observation::Vectors { .. } => "vector results",
        }
    }
}

/// A step that could not produce an observation to judge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepFault {
    /// The executor's oracle found a violation (→ `fail`).
    Violation { expected: String, observed: String },
    /// A precondition was not reached: an unsupported or failed control action, a missing
    /// transport (→ `inconclusive`).
    Unmet(String),
    /// The harness or the infrastructure failed (→ `error`).
    Infrastructure(String),
}

/// The outcome of one step plus its evidence.
#[derive(Clone, Debug, PartialEq)]
pub struct StepReport {
    pub outcome: Result<Observation, StepFault>,
    pub transcript: Vec<TranscriptEntry>,
    /// For a send: the body as completed and signed by the executor, before byte-level
    /// faults (what `capture: sent.body...` reads); `None`: the resolved template.
    pub sent: Option<Value>,
}

impl StepReport {
    pub fn observed(o: Observation) -> StepReport {
        StepReport {
            outcome: Ok(o),
            transcript: Vec::new(),
            sent: None,
        }
    }

    pub fn fault(f: StepFault) -> StepReport {
        StepReport {
            outcome: Err(f),
            transcript: Vec::new(),
            sent: None,
        }
    }

    pub fn with_transcript(mut self, t: Vec<TranscriptEntry>) -> StepReport {
        self.transcript = t;
        self
    }
}

/// A transcript entry for the exact `bytes` that travelled: diagnostic notation (lenient, so
/// that a deliberately malformed encoding still shows; `h'..'` when it is not CBOR at all)
/// and SHA-256.
pub fn transcript_entry(
    direction: Direction,
    channel: impl Into<String>,
    frame_type: impl Into<String>,
    bytes: &[u8],
) -> TranscriptEntry {
    let diag = match cbor::from_slice_lenient(bytes) {
        Ok(v) => cbor::diag::value_to_diag(&v),
        Err(_) => format!("h'{}'", hex::encode(bytes)),
    };
    TranscriptEntry {
        direction,
        channel: channel.into(),
        frame_type: frame_type.into(),
        diag,
        hash: hex::encode(mtp_protocol::crypto::sha256(bytes)),
    }
}

/// A transcript entry for a value (encoded deterministically first).
pub fn transcript_value(
    direction: Direction,
    channel: impl Into<String>,
    frame_type: impl Into<String>,
    value: &Value,
) -> TranscriptEntry {
    match cbor::to_vec(value) {
        Ok(bytes) => transcript_entry(direction, channel, frame_type, &bytes),
        Err(_) => TranscriptEntry {
            direction,
            channel: channel.into(),
            frame_type: frame_type.into(),
            diag: cbor::diag::value_to_diag(value),
            hash: String::new(),
        },
    }
}
