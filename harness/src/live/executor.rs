//! One scenario against one IUT instance: the [`StepExecutor`] of the live executor.
//!
//! Every await is bounded by the step's budget; a reset connection, a hang, an oversized
//! (> 4 MiB) or malformed message ends the step as silence, a refusal, a violation of the
//! oracle or an infrastructure error — never a panic.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mtp_protocol::cbor::{self, Value};
use mtp_protocol::uuid::MtpUuid;
use mtp_reference_agent::transport::sync::client::connect_lazy;
use mtp_reference_agent::transport::sync::server::SyncServer;
use mtp_reference_agent::transport::sync::{ClientOptions, Fingerprint, framing, pb};
use mtp_reports::model::Direction;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use super::build::{self, Authority, BuildCtx, id_field};
use super::channels::{Inbound, MAX_MESSAGE_BYTES, Shared, Sink};
use super::control::{CallError, ControlChannel};
use super::faults::{self, FaultError};
use super::nats::{NatsLink, msg_id_text};
use super::oracle::{self, IutIdentity, Violation};
use super::persona::{
    self, ALL_CATEGORIES, COUNTERPARTY, DELEGATED_MAX_USD, PRINCIPAL, Persona, Principal,
};
use super::server::{self, ServerPersona};
use super::values::{now, set};
use super::{Hello, Lease, audit_chain, transitions};
use crate::iut::{IutDescription, Timeouts};
use crate::runner::executor::{transcript_entry, transcript_value};
use crate::runner::{
    Action, Observation, PeerError, ReceivedMessage, ResolvedChannel, ResolvedExpectation,
    ScenarioContext, StepExecutor, StepFault, StepInput, StepReport,
};
use crate::scenario::{Channel as ScenarioChannel, Expectation, Fault, GrpcService, StepKind};

/// How often `expect_state` / `expect_audit` poll.
const POLL: Duration = Duration::from_millis(100);
/// Kept back from a step's budget so that the executor answers before the runner gives up.
const MARGIN: Duration = Duration::from_millis(300);

/// One persona with its authority, harness server and MTPSync client channel.
struct Slot {
    persona: Persona,
    authority: Authority,
    server: Option<SyncServer>,
    client: Option<Channel>,
    offer: Option<Value>,
}

/// Executes the steps of one scenario against one IUT instance.
pub struct LiveExecutor {
    lease: Lease,
    iut: Arc<IutDescription>,
    timeouts: Timeouts,
    /// The scenario's whole budget (stream deadlines).
    scenario_budget: Duration,
    hello: Hello,
    identity: IutIdentity,
    shared: Arc<Shared>,
    slots: BTreeMap<String, Slot>,
    principal: Principal,
    iut_offers: Vec<Value>,
    /// Claims the last `create_request` asked the IUT to reveal (super::presentation).
    reveal: Option<Vec<String>>,
    last_channel: Option<ResolvedChannel>,
    /// The channel of the last outgoing unary call (its answer is `reply:<channel>`).
    last_unary: Option<String>,
    /// The metadata faults (`protocol_version`, `alg_profile`) of the send in progress.
    send_metadata: Vec<Fault>,
    last_sent: HashMap<String, Vec<u8>>,
    last_sent_any: Option<Vec<u8>>,
    last_id: Option<Value>,
    last_received: HashMap<String, (String, Value, [u8; 32])>,
    nats: Option<NatsLink>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Some persona server presents an unbound certificate (`personas:`): the IUT client
    /// aborting that handshake (a peer alert) is the expected outcome, not a violation.
    unbound_personas: bool,
}

fn infra(m: impl Into<String>) -> StepFault {
    StepFault::Infrastructure(m.into())
}

fn violation(v: Violation) -> StepFault {
    StepFault::Violation {
        expected: format!("{}: {}", v.requirement, v.expected),
        observed: v.observed,
    }
}

/// Channels the scenario answers on itself (a `send` after an `expect message` there), the
/// personas it uses and whether it listens on NATS.
struct Scan {
    explicit: HashSet<String>,
    personas: BTreeSet<String>,
    nats_expect: bool,
    /// Personas the IUT must know as indexes (calls expected or answered on their
    /// `grpc:Index/<Method>[@persona]` channels; issue B-2).
    index_personas: BTreeSet<String>,
}

/// The persona an `Index` channel names (`grpc:Index/<M>@<persona>`, else the counterparty).
fn index_persona(c: &ScenarioChannel) -> Option<String> {
    match c {
        ScenarioChannel::Grpc {
            service: GrpcService::Index,
            method,
        } => Some(
            method
                .split_once('@')
                .map_or(COUNTERPARTY, |(_, p)| p)
                .to_owned(),
        ),
        _ => None,
    }
}

/// Frames the harness sends as an index's answer to the IUT's call.
fn is_index_answer(frame: &str) -> bool {
    matches!(frame, "index_response" | "ack")
}

fn scan(ctx: &ScenarioContext) -> Scan {
    let mut explicit = HashSet::new();
    let mut personas = BTreeSet::from([COUNTERPARTY.to_owned()]);
    let mut expected: HashSet<String> = HashSet::new();
    let mut nats_expect = false;
    let mut index_personas = BTreeSet::new();
    for step in ctx.scenario.all_steps() {
        match &step.kind {
            StepKind::Expect(e) => {
                if let Some(c) = &e.channel
                    && let Some(p) = index_persona(c)
                {
                    personas.insert(p.clone());
                    if matches!(e.what, Expectation::Message { .. }) {
                        index_personas.insert(p);
                    }
                }
                if let Some(c) = &e.channel {
                    if matches!(c, ScenarioChannel::Nats { .. }) {
                        nats_expect = true;
                    }
                    if matches!(e.what, Expectation::Message { .. }) {
                        expected.insert(c.to_string());
                    }
                }
            }
            StepKind::Send(s) => {
                personas.insert(s.persona.clone());
                if let Some(p) = index_persona(&s.channel)
                    && is_index_answer(&s.frame)
                {
                    personas.insert(p.clone());
                    index_personas.insert(p);
                }
                let c = s.channel.to_string();
                if expected.contains(&c) {
                    explicit.insert(c);
                }
            }
            _ => {}
        }
    }
    for p in &ctx.scenario.personas {
        personas.insert(p.name.clone());
    }
    personas.remove(PRINCIPAL);
    Scan {
        explicit,
        personas,
        nats_expect,
        index_personas,
    }
}

/// The scenario sees MTP-UUIDs in their 67-character text form (SPEC-IX-02) — in control
/// results and in the bodies of received messages (`*_id`, `*_ref`, `*_refs` fields) — so
/// that a captured id works wherever a text template is (`expect_state.transaction`); they
/// go back to the IUT as byte strings ([`uuid_bytes`]). The oracle and the transcript see
/// the bytes as they travelled.
pub fn uuid_texts(v: &Value) -> Value {
    fn text_of(v: &Value) -> Value {
        match v {
            Value::Bytes(b) if b.len() == 32 => MtpUuid::from_bytes(b)
                .map(|u| Value::text(u.to_string()))
                .unwrap_or_else(|_| v.clone()),
            other => other.clone(),
        }
    }
    match v {
        Value::Map(entries) => Value::Map(
            entries
                .iter()
                .map(|(k, val)| {
                    let key = k.as_text().unwrap_or_default();
                    let out = match val {
                        Value::Bytes(_)
                            if key.ends_with("_id")
                                || key.ends_with("_ref")
                                || key == "predecessor" =>
                        {
                            text_of(val)
                        }
                        Value::Array(items) if key.ends_with("_refs") => {
                            Value::Array(items.iter().map(text_of).collect())
                        }
                        other => uuid_texts(other),
                    };
                    (k.clone(), out)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(uuid_texts).collect()),
        other => other.clone(),
    }
}

/// Text MTP-UUIDs (67 characters, SPEC-IX-02) back to their 32-byte form (BIND-IX-01),
/// wherever they occur in a template or control arguments.
pub fn uuid_bytes(v: &Value) -> Value {
    match v {
        Value::Text(t) if t.len() == mtp_protocol::uuid::TEXT_LEN => MtpUuid::parse(t)
            .map(|u| Value::bytes(u.as_bytes().to_vec()))
            .unwrap_or_else(|_| v.clone()),
        Value::Map(entries) => Value::Map(
            entries
                .iter()
                .map(|(k, val)| (k.clone(), uuid_bytes(val)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(uuid_bytes).collect()),
        other => other.clone(),
    }
}

fn grpc_status_name(c: tonic::Code) -> &'static str {
    use tonic::Code as C;
    match c {
        C::Ok => "OK",
        C::Cancelled => "CANCELLED",
        C::Unknown => "UNKNOWN",
        C::InvalidArgument => "INVALID_ARGUMENT",
        C::DeadlineExceeded => "DEADLINE_EXCEEDED",
        C::NotFound => "NOT_FOUND",
        C::AlreadyExists => "ALREADY_EXISTS",
        C::PermissionDenied => "PERMISSION_DENIED",
        C::ResourceExhausted => "RESOURCE_EXHAUSTED",
        C::FailedPrecondition => "FAILED_PRECONDITION",
        C::Aborted => "ABORTED",
        C::OutOfRange => "OUT_OF_RANGE",
        C::Unimplemented => "UNIMPLEMENTED",
        C::Internal => "INTERNAL",
        C::Unavailable => "UNAVAILABLE",
        C::DataLoss => "DATA_LOSS",
        C::Unauthenticated => "UNAUTHENTICATED",
    }
}

fn status_item(s: &tonic::Status) -> Inbound {
    Inbound::Status {
        code: s.code(),
        message: s.message().to_owned(),
        trailer: s
            .metadata()
            .get_bin(framing::ERROR_TRAILER)
            .and_then(|v| v.to_bytes().ok())
            .map(|b| b.to_vec()),
    }
}

impl LiveExecutor {
    /// Prepares a scenario on the leased instance (docs/iut-contract.md "Minimal session"):
    /// `hello`, `reset` (no seed: contract rule 4), the personas and their servers,
    /// `add_peer` of each persona and of the Principal, and `provision` of the IUT with the
    /// Principal's delegation.
    pub async fn start(
        mut lease: Lease,
        ctx: &ScenarioContext,
        keys: &super::HarnessKeys,
    ) -> Result<LiveExecutor, StepFault> {
        let iut = ctx.iut.clone();
        let timeouts = iut.timeouts;
        let scenario_budget = ctx.scenario.timeout.unwrap_or(timeouts.scenario);
        let step = timeouts.step;
        // hello (reconnecting once if the channel broke since the last scenario).
        let hello = match lease.hello(step).await {
            Ok(h) => h,
            Err(_) => {
                lease
                    .reconnect(keys, timeouts.connect)
                    .await
                    .map_err(infra)?;
                lease.hello(step).await.map_err(|e| match e {
                    CallError::Transport(m) => infra(m),
                    CallError::Action(a) => {
                        infra(format!("hello failed: {}: {}", a.kind, a.message))
                    }
                })?
            }
        };
        let control = lease.control()?;
        match control.invoke("reset", &Value::Map(vec![]), step).await {
            Ok(_) => {}
            Err(CallError::Transport(m)) => return Err(infra(m)),
            Err(CallError::Action(a)) => {
                return Err(StepFault::Unmet(format!(
                    "the IUT's reset failed: {}: {}",
                    a.kind, a.message
                )));
            }
        }
        let scan = scan(ctx);
        let shared = Arc::new(Shared::new(scan.explicit.clone()));
        *shared.iut_did.lock().unwrap_or_else(|p| p.into_inner()) = hello.did.clone();
        let identity = IutIdentity::from_document(&hello.did, &hello.did_document);
        let endpoints = lease.endpoints()?.clone();
        let nats_hp = endpoints
            .nats
            .as_ref()
            .map(|n| (n.url.host.clone(), n.url.port));
        let t = now();

        // The Principal (no server of its own).
        let principal_persona = Persona::derive(
            ctx.seed,
            PRINCIPAL,
            &persona::Endpoints {
                sync_port: 9,
                nats: nats_hp.clone(),
            },
        )
        .map_err(|e| infra(e.to_string()))?;
        let mut principal =
            Principal::new(principal_persona, t).map_err(|e| infra(e.to_string()))?;

        // The IUT's certificate pins: the description's and its DID Document's.
        let mut pins = vec![(endpoints.sync.fingerprint, hello.did.clone())];
        if let Ok(doc) = mtp_protocol::identity::DidDocument::from_json(&hello.did_document)
            && let Some(s) = doc.sync_endpoint()
            && s.tls_certificate_sha256 != endpoints.sync.fingerprint
        {
            pins.push((s.tls_certificate_sha256, hello.did.clone()));
        }
        let sync_endpoint = endpoints.sync.address.to_string();
        let mut slots = BTreeMap::new();
        for name in &scan.personas {
            let listener = server::bind().await.map_err(|e| infra(e.to_string()))?;
            let port = listener
                .local_addr()
                .map_err(|e| infra(e.to_string()))?
                .port();
            let p = Persona::derive(
                ctx.seed,
                name,
                &persona::Endpoints {
                    sync_port: port,
                    nats: nats_hp.clone(),
                },
            )
            .map_err(|e| infra(e.to_string()))?;
            // `personas: {<name>: {tls: unbound_certificate}}`: the server presents a
            // certificate its DID Document does not name (BIND-V-A-05).
            let unbound = ctx.scenario.personas.iter().any(|s| {
                s.name == *name && s.tls == Some(crate::scenario::TlsVariant::UnboundCertificate)
            });
            let server_tls = if unbound {
                super::tls_probe::unbound_identity(&p.did).map_err(infra)?
            } else {
                p.tls.clone()
            };
            let srv = server::serve(
                listener,
                &server_tls,
                &pins,
                ServerPersona {
                    did: p.did.clone(),
                    key_id: p.key_id.clone(),
                    signing: p.signing.clone(),
                    document_json: p.document_json.clone(),
                },
                shared.clone(),
            )
            .map_err(|e| infra(format!("harness server for {name}: {e}")))?;
            let client = connect_lazy(
                &sync_endpoint,
                Fingerprint::from_bytes(endpoints.sync.fingerprint),
                &p.tls,
                &ClientOptions {
                    connect_timeout: timeouts.connect,
                    handshake_timeout: timeouts.connect,
                    ..ClientOptions::default()
                },
            )
            .map_err(|e| infra(format!("MTPSync endpoint {sync_endpoint}: {e}")))?;
            let adc = principal
                .delegate(&p.did, &ALL_CATEGORIES, DELEGATED_MAX_USD, t)
                .map_err(|e| infra(e.to_string()))?;
            let authority = Authority::single(principal.did(), &p.did, &adc.json);
            slots.insert(
                name.clone(),
                Slot {
                    persona: p,
                    authority,
                    server: Some(srv),
                    client: Some(client),
                    offer: None,
                },
            );
        }
        let iut_adc = if hello.actions.iter().any(|a| a == "provision") {
            Some(
                principal
                    .delegate(&hello.did, &ALL_CATEGORIES, DELEGATED_MAX_USD, t)
                    .map_err(|e| infra(e.to_string()))?,
            )
        } else {
            None
        };

        let mut exec = LiveExecutor {
            lease,
            iut: iut.clone(),
            timeouts,
            scenario_budget,
            hello,
            identity,
            shared,
            slots,
            principal,
            iut_offers: Vec::new(),
            reveal: None,
            last_channel: None,
            last_unary: None,
            send_metadata: Vec::new(),
            last_sent: HashMap::new(),
            last_sent_any: None,
            last_id: None,
            last_received: HashMap::new(),
            nats: None,
            tasks: Vec::new(),
            unbound_personas: ctx
                .scenario
                .personas
                .iter()
                .any(|p| p.tls == Some(crate::scenario::TlsVariant::UnboundCertificate)),
        };

        // The Principal and the personas become known to the IUT.
        exec.add_principal().await?;
        let docs: Vec<(String, String)> = exec
            .slots
            .iter()
            .map(|(n, s)| (n.clone(), s.persona.document_json.clone()))
            .collect();
        {
            let mut known = exec
                .shared
                .personas
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for s in exec.slots.values() {
                known.insert(
                    s.persona.did.clone(),
                    super::channels::PersonaInfo {
                        name: s.persona.name.clone(),
                        document_json: s.persona.document_json.clone(),
                        standing_offer: None,
                    },
                );
            }
        }
        for (name, doc) in docs {
            let mut roles = vec![Value::text("agent")];
            if scan.index_personas.contains(&name) {
                roles.push(Value::text("index"));
            }
            exec.setup_call(
                "add_peer",
                Value::map([
                    ("document", Value::text(doc)),
                    ("roles", Value::Array(roles)),
                ]),
            )
            .await?;
        }
        if let Some(adc) = iut_adc {
            let args = Value::map([
                ("principal", Value::text(exec.principal.did())),
                (
                    "delegation_chain",
                    Value::Array(vec![Value::text(adc.json)]),
                ),
                ("status_lists", exec.principal.status_lists_value()),
            ]);
            exec.setup_call("provision", args).await?;
        }
        // Each persona's standing Offer (what the IUT negotiates against as requester).
        let names: Vec<String> = exec.slots.keys().cloned().collect();
        for n in names {
            let offer = exec.build_standing_offer(&n)?;
            if let Some(s) = exec.slots.get_mut(&n) {
                if let Some(p) = exec
                    .shared
                    .personas
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_mut(&s.persona.did)
                {
                    p.standing_offer = Some(offer.clone());
                }
                s.offer = Some(offer);
            }
        }
        if scan.nats_expect {
            exec.subscribe_nats().await?;
            // Broadcast subjects the scenario listens on (discovery, PROFILE G-06).
            let subjects: BTreeSet<String> = ctx
                .scenario
                .all_steps()
                .filter_map(|s| match &s.kind {
                    StepKind::Expect(e) => match &e.channel {
                        Some(ScenarioChannel::Nats { subject }) => Some(subject.to_string()),
                        _ => None,
                    },
                    _ => None,
                })
                .filter(|t| !t.contains("${") && !t.starts_with("mtp.agent."))
                .collect();
            exec.subscribe_broadcasts(&subjects).await?;
        }
        Ok(exec)
    }

    fn control(&self) -> Result<&ControlChannel, StepFault> {
        self.lease.control()
    }

    /// A control call of the executor itself (setup): unsupported or refused → unmet.
    async fn setup_call(&self, action: &str, args: Value) -> Result<Value, StepFault> {
        match self
            .control()?
            .invoke(action, &args, self.timeouts.step)
            .await
        {
            Ok(v) => Ok(v),
            Err(CallError::Transport(m)) => Err(infra(m)),
            Err(CallError::Action(a)) => Err(StepFault::Unmet(format!(
                "the harness's `{action}` failed: {}: {}",
                a.kind, a.message
            ))),
        }
    }

    async fn add_principal(&self) -> Result<(), StepFault> {
        let args = Value::map([
            (
                "document",
                Value::text(self.principal.persona.document_json.clone()),
            ),
            ("roles", Value::Array(vec![Value::text("principal")])),
            ("status_lists", self.principal.status_lists_value()),
        ]);
        self.setup_call("add_peer", args).await.map(|_| ())
    }

    /// `provision {authority_unit: U}` (issue C-1; PROFILE G-33, G-45): the Principal
    /// re-delegates to every persona and to the IUT with `maxTransactionValue` in `U`; the
    /// personas' standing Offers are re-priced in `U`; the call made is `provision` of the
    /// IUT's new chain. `None` for any other call.
    fn authority_in_unit(
        &mut self,
        action: &str,
        args: &Value,
    ) -> Result<Option<Value>, StepFault> {
        let Some(unit) = (action == "provision")
            .then(|| args.get("authority_unit").and_then(Value::as_text))
            .flatten()
            .map(str::to_owned)
        else {
            return Ok(None);
        };
        let t = now();
        let principal_did = self.principal.did().to_owned();
        let iut_did = self.hello.did.clone();
        let names: Vec<String> = self.slots.keys().cloned().collect();
        for n in names {
            let did = self.slots[&n].persona.did.clone();
            let adc = super::session::delegate_in_unit(&mut self.principal, &did, &unit, t)
                .map_err(|e| StepFault::Unmet(format!("authority in {unit}: {e}")))?;
            let iut_offers = self.iut_offers.clone();
            let sessions = super::session::Sessions::default();
            let slot = self
                .slots
                .get_mut(&n)
                .ok_or_else(|| infra(format!("no persona {n}")))?;
            slot.authority = Authority::single(&principal_did, &did, &adc.json);
            let mut bctx = BuildCtx {
                persona: &mut slot.persona,
                authority: &slot.authority,
                iut_did: &iut_did,
                iut_offers: &iut_offers,
                own_offer: None,
                sessions: &sessions,
                last_received: None,
                now: t,
                expired: false,
            };
            let template = Value::map([(
                "terms_template",
                Value::map([(
                    "price",
                    Value::map([("amount", Value::from(10u64)), ("unit", Value::text(&unit))]),
                )]),
            )]);
            let offer =
                build::standing_offer(&mut bctx, &template).map_err(|e| infra(e.to_string()))?;
            slot.offer = Some(offer);
        }
        let adc = super::session::delegate_in_unit(&mut self.principal, &iut_did, &unit, t)
            .map_err(|e| StepFault::Unmet(format!("authority in {unit}: {e}")))?;
        Ok(Some(Value::map([
            ("principal", Value::text(principal_did)),
            (
                "delegation_chain",
                Value::Array(vec![Value::text(adc.json)]),
            ),
            ("status_lists", self.principal.status_lists_value()),
        ])))
    }

    fn build_standing_offer(&mut self, name: &str) -> Result<Value, StepFault> {
        let sessions = super::session::Sessions::default();
        let iut_did = self.hello.did.clone();
        let slot = self
            .slots
            .get_mut(name)
            .ok_or_else(|| infra(format!("no persona {name}")))?;
        let mut bctx = BuildCtx {
            persona: &mut slot.persona,
            authority: &slot.authority,
            iut_did: &iut_did,
            iut_offers: &[],
            own_offer: None,
            sessions: &sessions,
            last_received: None,
            now: now(),
            expired: false,
        };
        build::standing_offer(&mut bctx, &Value::Map(vec![])).map_err(|e| infra(e.to_string()))
    }

    async fn nats_link(&mut self) -> Result<NatsLink, StepFault> {
        if let Some(n) = &self.nats {
            return Ok(n.clone());
        }
        let url = match (&self.hello.async_url, self.lease.endpoints()?.nats.as_ref()) {
            (_, Some(n)) => n.url.to_string(),
            (Some(u), None) => u.clone(),
            (None, None) => {
                return Err(StepFault::Unmet(
                    "the IUT description has no MTPAsync endpoint".into(),
                ));
            }
        };
        let link = NatsLink::connect(&url)
            .await
            .map_err(|e| infra(e.to_string()))?;
        self.nats = Some(link.clone());
        Ok(link)
    }

    async fn subscribe_nats(&mut self) -> Result<(), StepFault> {
        let link = match self.nats_link().await {
            Ok(l) => l,
            Err(StepFault::Unmet(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut handles = Vec::new();
        for slot in self.slots.values() {
            let did = mtp_protocol::identity::Did::parse(&slot.persona.did)
                .map_err(|e| infra(e.to_string()))?;
            let pattern = mtp_protocol::wire::subject::inbox_pattern(&did);
            let h = link
                .subscribe(
                    &pattern,
                    slot.persona.kem_kid.clone(),
                    slot.persona.kem.clone(),
                    self.hello.did_document.clone(),
                    self.shared.clone(),
                )
                .await
                .map_err(|e| infra(e.to_string()))?;
            handles.push(h);
        }
        self.tasks.extend(handles);
        Ok(())
    }

    /// Subscribes the counterparty persona to broadcast `subjects` (its envelopes from the
    /// IUT are queued under `nats:<subject>`; BIND-VI-D-02 IVs checked on the way).
    async fn subscribe_broadcasts(&mut self, subjects: &BTreeSet<String>) -> Result<(), StepFault> {
        if subjects.is_empty() {
            return Ok(());
        }
        let link = match self.nats_link().await {
            Ok(l) => l,
            Err(StepFault::Unmet(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let Some(slot) = self.slots.get(COUNTERPARTY) else {
            return Ok(());
        };
        let mut handles = Vec::new();
        for subject in subjects {
            let h = link
                .subscribe_broadcast(
                    subject,
                    slot.persona.kem_kid.clone(),
                    slot.persona.kem.clone(),
                    self.hello.did_document.clone(),
                    self.shared.clone(),
                )
                .await
                .map_err(|e| infra(e.to_string()))?;
            handles.push(h);
        }
        self.tasks.extend(handles);
        Ok(())
    }

    // ---- control ------------------------------------------------------------------------

    /// `negotiate` with a persona as counterparty and no Offer: the persona's standing
    /// Offer is named (`offer_id`) and given (`offer`, its deterministic CBOR).
    fn complete_control_args(&self, action: &str, args: &Value) -> Value {
        let mut args = uuid_bytes(args);
        if action == "negotiate" && args.get("offer_id").is_none() {
            let counterparties: Vec<&str> = match args.get("counterparty") {
                Some(Value::Text(t)) => vec![t.as_str()],
                Some(Value::Array(items)) => items.iter().filter_map(Value::as_text).collect(),
                _ => vec![],
            };
            let offer = self
                .slots
                .values()
                .find(|s| counterparties.contains(&s.persona.did.as_str()))
                .and_then(|s| s.offer.clone());
            if let Some(o) = offer {
                if let Some(id) = o.get("offer_id") {
                    set(&mut args, "offer_id", id.clone());
                }
                if let Ok(bytes) = cbor::to_vec(&o) {
                    set(&mut args, "offer", Value::Bytes(bytes));
                }
            }
        }
        args
    }

    /// [`server::judge_query_result`] over the answers the harness indexes gave during the
    /// call; the IUT's supported extensions are those of its manifests seen by the harness
    /// and of its ICS (`id` or `id@version`).
    fn judge_query(&self, args: &Value, result: &Value) -> Result<(), oracle::Violation> {
        let answers = std::mem::take(
            &mut *self
                .shared
                .index_answers
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        if answers.is_empty() {
            return Ok(());
        }
        let mut supported: Vec<(String, String)> = self
            .shared
            .iut_extensions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|e| {
                (
                    e.get("id")
                        .and_then(Value::as_text)
                        .unwrap_or_default()
                        .to_owned(),
                    e.get("version")
                        .and_then(Value::as_text)
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect();
        for e in &self.iut.ics.extensions {
            let (id, v) = e.split_once('@').unwrap_or((e.as_str(), ""));
            supported.push((id.to_owned(), v.to_owned()));
        }
        let personas = self
            .shared
            .personas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        server::judge_query_result(&answers, args, result, &personas, &supported)
    }

    /// Remembers the IUT's objects from a control result (its published Offers).
    fn record_result(&mut self, result: &Value) {
        if let Some(b) = result.get("offer").and_then(Value::as_bytes)
            && let Ok(o) = cbor::from_slice(b)
        {
            self.iut_offers.push(o);
        }
    }

    /// `add_peer {revoke_credential_of: DID}` (SPEC III-A-3; PROFILE G-55): the harness's
    /// Principal revokes the credential it issued last to that DID (a persona's or the
    /// IUT's), publishes the new status list, and the call made is `add_peer` of the
    /// Principal with that list. `None` for any other call.
    fn revocation_by_principal(
        &mut self,
        action: &str,
        args: &Value,
    ) -> Result<Option<Value>, StepFault> {
        let Some(did) = (action == "add_peer")
            .then(|| args.get("revoke_credential_of").and_then(Value::as_text))
            .flatten()
            .map(str::to_owned)
        else {
            return Ok(None);
        };
        self.principal
            .revoke(&did, now())
            .map_err(|e| StepFault::Unmet(format!("revoke_credential_of: {e}")))?;
        Ok(Some(Value::map([
            (
                "document",
                Value::text(self.principal.persona.document_json.clone()),
            ),
            ("roles", Value::Array(vec![Value::text("principal")])),
            ("status_lists", self.principal.status_lists_value()),
        ])))
    }

    async fn do_control(&mut self, action: &str, args: &Value, budget: Duration) -> StepReport {
        let args = match self.revocation_by_principal(action, args) {
            Ok(Some(a)) => a,
            Ok(None) => args.clone(),
            Err(f) => return StepReport::fault(f),
        };
        let args = match self.authority_in_unit(action, &args) {
            Ok(Some(a)) => a,
            Ok(None) => args,
            Err(f) => return StepReport::fault(f),
        };
        // PROFILE G-35: a provision with selective_disclosure is issued by the harness's
        // Principal (super::presentation).
        let args = if action == "provision" {
            match super::presentation::provision_args(
                &mut self.principal,
                &self.hello.did,
                &args,
                now(),
            ) {
                None => args,
                Some(Ok(a)) => a,
                Some(Err(e)) => return StepReport::fault(infra(e)),
            }
        } else {
            args
        };
        if action == "create_request" {
            self.reveal = args.get("reveal").and_then(Value::as_array).map(|a| {
                a.iter()
                    .filter_map(Value::as_text)
                    .map(str::to_owned)
                    .collect()
            });
        }
        let args = self.complete_control_args(action, &args);
        let mut transcript = vec![transcript_value(
            Direction::Control,
            "control",
            action,
            &args,
        )];
        let wait = budget
            .saturating_sub(MARGIN)
            .max(Duration::from_millis(100));
        let control = match self.control() {
            Ok(c) => c.clone(),
            Err(f) => return StepReport::fault(f),
        };
        let _ = self.shared.take_refused_handshakes();
        self.shared
            .index_answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        let outcome = match control.invoke(action, &args, wait).await {
            Ok(v) => {
                transcript.push(transcript_value(Direction::Control, "control", action, &v));
                // What the IUT matched of the harness indexes' answers (issue B-2).
                if action == "query_index"
                    && let Err(v) = self.judge_query(&args, &v)
                {
                    return StepReport {
                        outcome: Err(violation(v)),
                        transcript,
                        sent: None,
                    };
                }
                self.record_result(&v);
                Ok(Observation::Control(Ok(uuid_texts(&v))))
            }
            Err(CallError::Action(e)) => {
                transcript.push(transcript_value(
                    Direction::Control,
                    "control",
                    action,
                    &Value::map([
                        ("kind", Value::text(&e.kind)),
                        (
                            "code",
                            e.code.map_or(Value::Null, |c| Value::from(u64::from(c))),
                        ),
                        ("message", Value::text(&e.message)),
                    ]),
                ));
                // The action failed because the harness refused the IUT's TLS client: that is
                // the IUT's violation, seen by the harness (BIND V-A), not an unmet setup.
                let mut refused = self.shared.take_refused_handshakes();
                if self.unbound_personas {
                    refused.retain(|r| !r.contains(": peer_alert"));
                }
                if let Some(first) = refused.first() {
                    let req = first.split(':').next().unwrap_or("BIND-V-A-03");
                    return StepReport {
                        outcome: Err(StepFault::Violation {
                            expected: format!(
                                "{req}: the IUT's MTPSync client completes the mutual TLS 1.3 handshake of the profile"
                            ),
                            observed: format!(
                                "the harness refused the IUT's TLS handshake: {}",
                                refused.join("; ")
                            ),
                        }),
                        transcript,
                        sent: None,
                    };
                }
                Ok(Observation::Control(Err(e)))
            }
            Err(CallError::Transport(m)) if m.contains("no answer within") => {
                Err(StepFault::Unmet(m))
            }
            Err(CallError::Transport(m)) => Err(infra(m)),
        };
        StepReport {
            outcome,
            transcript,
            sent: None,
        }
    }

    // ---- send -----------------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    async fn do_send(
        &mut self,
        persona_name: &str,
        frame: &str,
        channel: &ResolvedChannel,
        template: &Value,
        faults_list: &[Fault],
        reused: Option<&Value>,
        budget: Duration,
    ) -> StepReport {
        let started = Instant::now();
        let ch = channel.to_string();
        for f in faults_list {
            if let Fault::DelayMs(ms) = f {
                let d = Duration::from_millis(*ms).min(budget.saturating_sub(MARGIN));
                tokio::time::sleep(d).await;
            }
        }
        if faults_list.iter().any(|f| matches!(f, Fault::DropReply)) {
            self.shared
                .drop_next
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let prepared = if faults_list.iter().any(|f| matches!(f, Fault::Replay)) {
            match self
                .last_sent
                .get(&ch)
                .cloned()
                .or_else(|| self.last_sent_any.clone())
            {
                Some(bytes) => Prepared {
                    bytes,
                    body: None,
                    id: None,
                    nats_msg_id: String::new(),
                },
                None => {
                    return StepReport::fault(infra(
                        "scenario error: `replay` with nothing sent before",
                    ));
                }
            }
        } else {
            match self
                .prepare(persona_name, frame, channel, template, faults_list, reused)
                .await
            {
                Ok(p) => p,
                Err(f) => return StepReport::fault(f),
            }
        };
        let remaining = budget.saturating_sub(started.elapsed());
        self.send_metadata = faults_list
            .iter()
            .filter(|f| matches!(f, Fault::ProtocolVersion(_) | Fault::AlgProfile(_)))
            .cloned()
            .collect();
        let transcript = vec![transcript_entry(
            Direction::Sent,
            ch.clone(),
            frame,
            &prepared.bytes,
        )];
        let tls_variant = faults_list.iter().find_map(|f| match f {
            Fault::Tls(v) => Some(*v),
            _ => None,
        });
        let outcome = match tls_variant {
            Some(v) => {
                self.transmit_probe(persona_name, v, channel, &prepared, remaining)
                    .await
            }
            None => {
                self.transmit(persona_name, frame, channel, &prepared, remaining)
                    .await
            }
        };
        if outcome.is_ok() {
            if let Some(body) = &prepared.body {
                let me = self
                    .slots
                    .get(persona_name)
                    .map(|s| s.persona.did.clone())
                    .unwrap_or_default();
                self.shared.observe(frame, body, &me, &self.hello.did);
            }
            self.last_sent.insert(ch.clone(), prepared.bytes.clone());
            self.last_sent_any = Some(prepared.bytes.clone());
            if prepared.id.is_some() {
                self.last_id = prepared.id.clone();
            }
            self.last_channel = Some(channel.clone());
        }
        StepReport {
            outcome,
            transcript,
            sent: prepared.body.as_ref().map(uuid_texts),
        }
    }

    /// Completes, signs and applies the faults; the bytes that will travel.
    async fn prepare(
        &mut self,
        persona_name: &str,
        frame: &str,
        channel: &ResolvedChannel,
        template: &Value,
        faults_list: &[Fault],
        reused: Option<&Value>,
    ) -> Result<Prepared, StepFault> {
        if !self.slots.contains_key(persona_name) {
            return Err(infra(format!(
                "scenario error: no persona `{persona_name}`"
            )));
        }
        let t = now();
        let template = uuid_bytes(template);
        let reused = reused.map(uuid_bytes).or_else(|| self.last_id.clone());
        if faults_list
            .iter()
            .any(|f| matches!(f, Fault::RevokedCredential))
        {
            let did = self.slots[persona_name].persona.did.clone();
            self.principal
                .revoke(&did, t)
                .map_err(|e| infra(e.to_string()))?;
            // The IUT learns the new list (add_peer status_lists, control.cddl).
            self.add_principal().await?;
        }
        let narrow = if faults_list
            .iter()
            .any(|f| matches!(f, Fault::AuthorityOutOfScope))
        {
            // A properly signed delegation over another category only.
            let did = self.slots[persona_name].persona.did.clone();
            let adc = self
                .principal
                .delegate(&did, &["logistics.freight"], DELEGATED_MAX_USD, t)
                .map_err(|e| infra(e.to_string()))?;
            Some(Authority::single(self.principal.did(), &did, &adc.json))
        } else {
            None
        };
        let last_received = self.last_received.get(&channel.to_string()).cloned();
        let sessions = self
            .shared
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .snapshot();
        let iut_did = self.hello.did.clone();
        let known_personas = self
            .shared
            .personas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let slot = self
            .slots
            .get_mut(persona_name)
            .ok_or_else(|| infra(format!("scenario error: no persona `{persona_name}`")))?;
        let authority = narrow.unwrap_or_else(|| slot.authority.clone());
        let own_offer = slot.offer.clone();
        let mut bctx = BuildCtx {
            persona: &mut slot.persona,
            authority: &authority,
            iut_did: &iut_did,
            iut_offers: &self.iut_offers,
            own_offer: own_offer.as_ref(),
            sessions: &sessions,
            last_received: last_received.as_ref(),
            now: t,
            expired: faults_list.iter().any(|f| matches!(f, Fault::Expired)),
        };
        let fe = |e: FaultError| infra(format!("scenario error: {e}"));
        let mut body = if frame == "index_response" {
            server::complete_index_response(&template, &mut bctx, &known_personas).map_err(infra)?
        } else {
            build::complete(frame, &template, &mut bctx).map_err(|e| infra(e.to_string()))?
        };
        faults::before_signing(frame, &mut body, faults_list, reused.as_ref()).map_err(fe)?;
        faults::sign(frame, &mut body, faults_list, &slot.persona).map_err(fe)?;
        faults::after_signing(&mut body, faults_list);
        let id = id_field(frame).and_then(|f| body.get(f).cloned());
        let mut nats_msg_id = String::new();
        let bytes = match channel {
            ResolvedChannel::Grpc { .. } => {
                let b = faults::body_bytes(&body, faults_list).map_err(fe)?;
                let fb = faults::frame_bytes(frame, &body, &b).map_err(fe)?;
                faults::with_frame_hash(frame, &body, &b, faults_list, fb).map_err(fe)?
            }
            ResolvedChannel::Nats { subject } => {
                if let Some(f) = faults_list.iter().find(|f| faults::is_encoding_fault(f)) {
                    return Err(infra(format!(
                        "scenario error: fault {f} is not supported on NATS by this harness"
                    )));
                }
                let fallback = format!("mtp-cert-{}", hex::encode(slot.persona.random::<8>()));
                let (msg_id, text_id) = msg_id_text(id.as_ref(), &fallback);
                nats_msg_id = text_id;
                NatsLink::seal(
                    subject,
                    frame,
                    &body,
                    msg_id,
                    &mut slot.persona,
                    &self.hello.did_document,
                    faults_list.iter().any(|f| matches!(f, Fault::ReusedIv)),
                )
                .map_err(|e| infra(e.to_string()))?
            }
        };
        Ok(Prepared {
            bytes,
            body: Some(body),
            id,
            nats_msg_id,
        })
    }

    async fn transmit(
        &mut self,
        persona_name: &str,
        frame: &str,
        channel: &ResolvedChannel,
        p: &Prepared,
        budget: Duration,
    ) -> Result<Observation, StepFault> {
        let ch = channel.to_string();
        match channel {
            ResolvedChannel::Nats { subject } => {
                let link = self.nats_link().await?;
                let msg_id = if p.nats_msg_id.is_empty() {
                    // A byte-for-byte replay keeps the id of the original (a duplicate).
                    msg_id_text(p.id.as_ref(), "mtp-cert-replay").1
                } else {
                    p.nats_msg_id.clone()
                };
                let publish = link.publish(subject, &msg_id, p.bytes.clone());
                tokio::time::timeout(budget.saturating_sub(MARGIN), publish)
                    .await
                    .map_err(|_| infra("NATS publish gave no acknowledgement in time"))?
                    .map_err(|e| infra(e.to_string()))?;
                self.last_unary = None;
                Ok(Observation::Sent)
            }
            ResolvedChannel::Grpc { service, method } => {
                let streaming =
                    *service == GrpcService::Agent && (method == "Negotiate" || method == "Commit");
                if streaming {
                    let opener = matches!(frame, "nim" | "mandate_draft");
                    if !opener && let Some(sink) = self.shared.streams.current(&ch) {
                        if sink.send(p.bytes.clone()).await {
                            return Ok(Observation::Sent);
                        }
                        return Ok(Observation::Refused(PeerError {
                            code: None,
                            grpc_status: None,
                            message: "the stream ended before the harness could send".into(),
                        }));
                    }
                    if !opener && self.shared.streams.had(&ch) {
                        return Ok(Observation::Refused(PeerError {
                            code: None,
                            grpc_status: None,
                            message: "the IUT ended the stream before the harness could send"
                                .into(),
                        }));
                    }
                    self.open_stream(persona_name, method, &ch, p.bytes.clone())?;
                    self.last_unary = None;
                    return Ok(Observation::Sent);
                }
                // The harness as index (issue B-2): an answer to the IUT's call on this
                // channel, or staged for its next one.
                if *service == GrpcService::Index && is_index_answer(frame) {
                    if let Some(tx) = self.shared.take_pending(&ch) {
                        if self.shared.take_drop() {
                            drop(tx);
                            return Ok(Observation::Sent);
                        }
                        let _ = tx.send(Ok(pb::Frame {
                            cbor: p.bytes.clone(),
                        }));
                    } else {
                        self.shared.stage(&ch, p.bytes.clone());
                    }
                    self.last_unary = None;
                    return Ok(Observation::Sent);
                }
                // A refusal staged for the IUT's next query of this harness index (SPEC-VI-02,
                // SPEC-VI-I03: 2200 Index Unavailable; super::server, staged answers).
                if *service == GrpcService::Index && method.starts_with("Query") && frame == "error"
                {
                    self.shared.stage(&ch, p.bytes.clone());
                    self.last_unary = None;
                    return Ok(Observation::Sent);
                }
                if *service == GrpcService::Index && method.contains('@') {
                    return Err(infra(format!(
                        "scenario error: `{ch}` names a harness index; only its answers (index_response, ack) are sent there"
                    )));
                }
                // An answer to a call the IUT made to the harness?
                if *service == GrpcService::Agent
                    && let Some(tx) = self.shared.take_pending(&ch)
                {
                    if self.shared.take_drop() {
                        // drop_reply on the answer itself: the call gets no answer.
                        drop(tx);
                        return Ok(Observation::Sent);
                    }
                    let _ = tx.send(Ok(pb::Frame {
                        cbor: p.bytes.clone(),
                    }));
                    return Ok(Observation::Sent);
                }
                // A persona publishing its DID history (PROFILE G-32, super::registry): no
                // call pending, kept as its answer to the IUT's later resolutions.
                if *service == GrpcService::Agent
                    && method == "ResolveDid"
                    && frame == "did_resolution_response"
                {
                    if let Some(s) = self.slots.get(persona_name) {
                        super::registry::publish(&s.persona.document_json, p.bytes.clone());
                    }
                    return Ok(Observation::Sent);
                }
                // A refusal staged for the IUT's next call there (SPEC-VI-02): an `error` sent
                // on `grpc:Agent/ResolveDid` while no call is pending answers the IUT's next
                // resolution as a failed call (super::server, staged answers).
                if *service == GrpcService::Agent && method == "ResolveDid" && frame == "error" {
                    self.shared.stage(&ch, p.bytes.clone());
                    self.last_unary = None;
                    return Ok(Observation::Sent);
                }
                self.call_unary(persona_name, *service, method, &ch, p.bytes.clone(), budget)?;
                self.last_unary = Some(ch);
                Ok(Observation::Sent)
            }
        }
    }

    /// `tls` fault: the frame goes over a fresh connection with a deviant TLS profile
    /// ([`super::tls_probe`]; PROFILE G-37); the outcome is queued like an answer.
    async fn transmit_probe(
        &mut self,
        persona_name: &str,
        variant: crate::scenario::TlsVariant,
        channel: &ResolvedChannel,
        p: &Prepared,
        budget: Duration,
    ) -> Result<Observation, StepFault> {
        let ResolvedChannel::Grpc { service, method } = channel else {
            return Err(infra("scenario error: fault `tls` needs a grpc: channel"));
        };
        let ch = channel.to_string();
        let endpoints = self.lease.endpoints()?.clone();
        let slot = self
            .slots
            .get(persona_name)
            .ok_or_else(|| infra(format!("scenario error: no persona `{persona_name}`")))?;
        let probe = super::tls_probe::Probe {
            endpoint: endpoints.sync.address.to_string(),
            iut_fingerprint: Fingerprint::from_bytes(endpoints.sync.fingerprint),
            identity: slot.persona.tls.clone(),
            persona_did: slot.persona.did.clone(),
            variant,
            connect_timeout: self.timeouts.connect,
        };
        let streaming =
            *service == GrpcService::Agent && (method == "Negotiate" || method == "Commit");
        let key = if streaming {
            ch.clone()
        } else {
            format!("reply:{ch}")
        };
        let task = super::tls_probe::send(
            probe,
            *service,
            method.clone(),
            p.bytes.clone(),
            key,
            self.scenario_budget.max(budget),
            self.shared.clone(),
        )
        .await
        .map_err(|e| infra(e.to_string()))?;
        self.tasks.push(task);
        self.last_unary = (!streaming).then_some(ch);
        Ok(Observation::Sent)
    }

    fn client(&self, persona_name: &str) -> Result<Channel, StepFault> {
        self.slots
            .get(persona_name)
            .and_then(|s| s.client.clone())
            .ok_or_else(|| infra(format!("no MTPSync channel for persona {persona_name}")))
    }

    /// Opens the harness's own stream with `first` as its first frame; answers are queued.
    fn open_stream(
        &mut self,
        persona_name: &str,
        method: &str,
        ch: &str,
        first: Vec<u8>,
    ) -> Result<(), StepFault> {
        let channel = self.client(persona_name)?;
        let (tx, rx) = mpsc::channel::<pb::Frame>(32);
        if tx.try_send(pb::Frame { cbor: first }).is_err() {
            return Err(infra("cannot queue the first frame of the stream"));
        }
        self.shared.streams.register(ch, Sink::Client(tx));
        let mut req = tonic::Request::new(ReceiverStream::new(rx));
        framing::set_version(req.metadata_mut());
        super::faults::apply_metadata(req.metadata_mut(), &std::mem::take(&mut self.send_metadata));
        req.set_timeout(self.scenario_budget);
        let shared = self.shared.clone();
        let me = self
            .slots
            .get(persona_name)
            .map(|s| s.persona.did.clone())
            .unwrap_or_default();
        let key = ch.to_owned();
        let is_commit = method == "Commit";
        let limit = self.scenario_budget;
        let task = tokio::spawn(async move {
            let mut client = pb::agent_client::AgentClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES);
            let call = async {
                if is_commit {
                    client.commit(req).await
                } else {
                    client.negotiate(req).await
                }
            };
            let resp = match tokio::time::timeout(limit, call).await {
                Ok(Ok(r)) => r,
                Ok(Err(s)) => {
                    shared.inbox.push(&key, status_item(&s));
                    return;
                }
                Err(_) => return,
            };
            let mut stream = resp.into_inner();
            loop {
                match tokio::time::timeout(limit, stream.message()).await {
                    Ok(Ok(Some(f))) => {
                        let iut = shared.iut_did();
                        shared.observe_frame(&f.cbor, &iut, &me);
                        shared.inbox.push(&key, Inbound::Frame(f.cbor));
                    }
                    Ok(Ok(None)) | Err(_) => break,
                    Ok(Err(s)) => {
                        shared.inbox.push(&key, status_item(&s));
                        break;
                    }
                }
            }
        });
        self.tasks.push(task);
        Ok(())
    }

    /// An outgoing unary call; its answer (or status) is queued as `reply:<channel>`.
    fn call_unary(
        &mut self,
        persona_name: &str,
        service: GrpcService,
        method: &str,
        ch: &str,
        bytes: Vec<u8>,
        budget: Duration,
    ) -> Result<(), StepFault> {
        let channel = self.client(persona_name)?;
        let shared = self.shared.clone();
        let key = format!("reply:{ch}");
        let method = method.to_owned();
        let limit = self.scenario_budget.max(budget);
        let metadata = std::mem::take(&mut self.send_metadata);
        let task = tokio::spawn(async move {
            let mut req = tonic::Request::new(pb::Frame { cbor: bytes });
            framing::set_version(req.metadata_mut());
            super::faults::apply_metadata(req.metadata_mut(), &metadata);
            req.set_timeout(limit);
            let fut = super::channels::unary_call(channel, service, &method, req);
            match tokio::time::timeout(limit, fut).await {
                Ok(Ok(r)) => shared.inbox.push(&key, Inbound::Frame(r.into_inner().cbor)),
                Ok(Err(s)) => shared.inbox.push(&key, status_item(&s)),
                Err(_) => {}
            }
        });
        self.tasks.push(task);
        Ok(())
    }

    // ---- expect ---------------------------------------------------------------------------

    async fn do_expect(
        &mut self,
        expectation: &ResolvedExpectation,
        channel: Option<&ResolvedChannel>,
        within: Duration,
    ) -> StepReport {
        let Some(ch) = channel.or(self.last_channel.as_ref()).cloned() else {
            return StepReport::fault(infra(
                "scenario error: `expect` without a channel and nothing sent before",
            ));
        };
        let name = ch.to_string();
        let unary = match &ch {
            ResolvedChannel::Grpc { service, method } => {
                !(*service == GrpcService::Agent && (method == "Negotiate" || method == "Commit"))
            }
            ResolvedChannel::Nats { .. } => false,
        };
        let key = match expectation {
            ResolvedExpectation::Message { .. } => name.clone(),
            _ if unary && self.last_unary.as_deref() == Some(name.as_str()) => {
                format!("reply:{name}")
            }
            _ => name.clone(),
        };
        let item = match (&ch, expectation) {
            // The harness as index: manifests, Offers and revocations interleave (issue B-2).
            (
                ResolvedChannel::Grpc {
                    service: GrpcService::Index,
                    ..
                },
                ResolvedExpectation::Message { frame, .. },
            ) => {
                let frame = frame.clone();
                self.shared
                    .inbox
                    .pop_matching(&key, within, move |i| match i {
                        Inbound::Frame(b) => cbor::from_slice_lenient(b)
                            .ok()
                            .and_then(|v| v.get("type").and_then(Value::as_text).map(str::to_owned))
                            .is_none_or(|t| t == frame),
                        _ => true,
                    })
                    .await
            }
            _ => self.shared.inbox.pop(&key, within).await,
        };
        let Some(item) = item else {
            return StepReport::observed(Observation::Silence);
        };
        self.judge_inbound(&name, item)
    }

    /// The Authority Attestation check of super::presentation for a body from the IUT.
    fn check_presentation(&self, frame_type: &str, body: &Value) -> Result<(), Violation> {
        let mut documents = vec![self.principal.persona.document.clone()];
        if let Ok(d) = mtp_protocol::identity::DidDocument::from_json(&self.hello.did_document) {
            documents.push(d);
        }
        let audiences: Vec<String> = self.slots.values().map(|s| s.persona.did.clone()).collect();
        documents.extend(self.slots.values().map(|s| s.persona.document.clone()));
        let ctx = super::presentation::PresentationCtx {
            documents,
            audiences: &audiences,
            reveal: self.reveal.as_deref(),
        };
        super::presentation::check_attestation(frame_type, body, &ctx)
    }

    /// Runs the oracle over an item from the IUT and turns it into an observation.
    fn judge_inbound(&mut self, channel: &str, item: Inbound) -> StepReport {
        match item {
            Inbound::Frame(bytes) => {
                let lenient = cbor::from_slice_lenient(&bytes).ok();
                let frame_type = lenient
                    .as_ref()
                    .and_then(|v| v.get("type"))
                    .and_then(Value::as_text)
                    .unwrap_or("frame")
                    .to_owned();
                let transcript = vec![transcript_entry(
                    Direction::Received,
                    channel,
                    frame_type.clone(),
                    &bytes,
                )];
                let session = lenient.as_ref().and_then(|v| v.get("body")).and_then(|b| {
                    self.shared
                        .sessions
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .snapshot()
                        .for_body(b)
                });
                match oracle::check_frame(&bytes, &self.identity, session.as_ref()) {
                    // BIND-II-B-03/05: a history the IUT serves must verify (super::registry).
                    // SPEC-III-A-1-04/07: the credentials the IUT presents (super::presentation).
                    Ok(c)
                        if matches!(c.frame_type.as_str(), "nim" | "request")
                            && self.check_presentation(&c.frame_type, &c.body).is_err() =>
                    {
                        match self.check_presentation(&c.frame_type, &c.body) {
                            Err(v) => StepReport::fault(violation(v)).with_transcript(transcript),
                            Ok(()) => StepReport::fault(infra("presentation check changed")),
                        }
                    }
                    Ok(c)
                        if c.frame_type == "did_resolution_response"
                            && super::registry::check_response(&c.body).is_err() =>
                    {
                        match super::registry::check_response(&c.body) {
                            Err(v) => StepReport::fault(violation(v)).with_transcript(transcript),
                            Ok(()) => StepReport::fault(infra("registry check changed")),
                        }
                    }
                    // The harness as index judges what the IUT publishes to it (issue B-2).
                    Ok(c)
                        if server::check_published(
                            channel,
                            &c.frame_type,
                            &c.body,
                            &self.identity,
                        )
                        .is_err() =>
                    {
                        match server::check_published(
                            channel,
                            &c.frame_type,
                            &c.body,
                            &self.identity,
                        ) {
                            Err(v) => StepReport::fault(violation(v)).with_transcript(transcript),
                            Ok(()) => StepReport::fault(infra("index check changed")),
                        }
                    }
                    Ok(c) => {
                        self.last_received.insert(
                            channel.to_owned(),
                            (c.frame_type.clone(), c.body.clone(), c.hash),
                        );
                        StepReport::observed(Observation::Received(ReceivedMessage {
                            channel: channel.to_owned(),
                            frame_type: c.frame_type,
                            body: uuid_texts(&c.body),
                        }))
                        .with_transcript(transcript)
                    }
                    Err(v) => StepReport::fault(violation(v)).with_transcript(transcript),
                }
            }
            Inbound::Envelope {
                frame_type,
                body,
                payload,
            } => {
                let transcript = vec![transcript_entry(
                    Direction::Received,
                    channel,
                    frame_type.clone(),
                    &payload,
                )];
                // An announced Algorithm Support Profile must be valid (PROFILE G-38).
                let checked = oracle::check_body(&frame_type, &body, &self.identity, None)
                    .and_then(|()| alg_profile_valid(&frame_type, &body));
                match checked {
                    Ok(()) => {
                        let hash =
                            mtp_protocol::crypto::sha256(&cbor::to_vec(&body).unwrap_or_default());
                        self.last_received
                            .insert(channel.to_owned(), (frame_type.clone(), body.clone(), hash));
                        StepReport::observed(Observation::Received(ReceivedMessage {
                            channel: channel.to_owned(),
                            frame_type,
                            body: uuid_texts(&body),
                        }))
                        .with_transcript(transcript)
                    }
                    Err(v) => StepReport::fault(violation(v)).with_transcript(transcript),
                }
            }
            Inbound::BadEnvelope { payload, why } => {
                let transcript = vec![transcript_entry(
                    Direction::Received,
                    channel,
                    "envelope",
                    &payload,
                )];
                StepReport::fault(StepFault::Violation {
                    expected: "BIND-V-B-01: an envelope sealed for the harness and signed by the IUT (PROFILE G-06)".into(),
                    observed: why,
                })
                .with_transcript(transcript)
            }
            Inbound::Status {
                code,
                message,
                trailer,
            } => self.judge_status(channel, code, message, trailer),
        }
    }

    fn judge_status(
        &self,
        channel: &str,
        code: tonic::Code,
        message: String,
        trailer: Option<Vec<u8>>,
    ) -> StepReport {
        let status = grpc_status_name(code);
        let transcript = vec![transcript_entry(
            Direction::Received,
            channel,
            format!("grpc-status {status}"),
            trailer.as_deref().unwrap_or(message.as_bytes()),
        )];
        // The harness's own size limit, not the IUT's refusal.
        if trailer.is_none() && message.contains("message length too large") {
            return StepReport::fault(infra(format!(
                "the IUT sent a message larger than the harness's limit of {MAX_MESSAGE_BYTES} bytes: {message}"
            )))
            .with_transcript(transcript);
        }
        // A failure before MTP (connection, TLS) is the infrastructure's, not a refusal.
        if trailer.is_none()
            && matches!(code, tonic::Code::Unavailable | tonic::Code::Unknown)
            && (message.contains("transport error") || message.contains("connect"))
        {
            return StepReport::fault(infra(format!(
                "MTPSync call failed before MTP: {status}: {message}"
            )))
            .with_transcript(transcript);
        }
        let mut code_value = None;
        if let Some(t) = &trailer {
            match cbor::from_slice(t) {
                Ok(v) => {
                    if let Err(v) = oracle::check_body("error", &v, &self.identity, None) {
                        return StepReport::fault(violation(Violation {
                            expected: format!(
                                "the mtp-error-bin trailer (PROFILE G-09, G-16): {}",
                                v.expected
                            ),
                            ..v
                        }))
                        .with_transcript(transcript);
                    }
                    code_value = v
                        .get("code")
                        .and_then(Value::as_u64)
                        .and_then(|c| u16::try_from(c).ok());
                }
                Err(e) => {
                    return StepReport::fault(StepFault::Violation {
                        expected: "BIND-IV-A-01: mtp-error-bin is the deterministic CBOR of an mtp-error (PROFILE G-09)".into(),
                        observed: e.to_string(),
                    })
                    .with_transcript(transcript);
                }
            }
        }
        if code_value.is_none() {
            code_value = message
                .get(..4)
                .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|d| d.parse().ok());
        }
        StepReport::observed(Observation::Refused(PeerError {
            code: code_value,
            grpc_status: Some(status.to_owned()),
            message,
        }))
        .with_transcript(transcript)
    }

    // ---- state and audit ----------------------------------------------------------------

    fn transaction_arg(transaction: &str) -> Value {
        match MtpUuid::parse(transaction) {
            Ok(u) => Value::bytes(u.as_bytes().to_vec()),
            Err(_) => match hex::decode(transaction) {
                Ok(b) if b.len() == 32 => Value::Bytes(b),
                _ => Value::text(transaction),
            },
        }
    }

    async fn do_expect_state(
        &mut self,
        transaction: &str,
        state: &str,
        within: Duration,
    ) -> StepReport {
        let args = Value::map([("transaction_id", Self::transaction_arg(transaction))]);
        let deadline = Instant::now() + within;
        let control = match self.control() {
            Ok(c) => c.clone(),
            Err(f) => return StepReport::fault(f),
        };
        let mut last: Option<Result<Value, CallError>>;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = left.max(Duration::from_millis(500)).min(self.timeouts.step);
            let r = control.invoke("transaction", &args, wait).await;
            let reached =
                matches!(&r, Ok(v) if v.get("state").and_then(Value::as_text) == Some(state));
            let stop = matches!(&r, Err(CallError::Transport(_)))
                || matches!(&r, Err(CallError::Action(a)) if a.kind == "unsupported_action");
            last = Some(r);
            if reached || stop || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(POLL.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
        let mut transcript = vec![transcript_value(
            Direction::Control,
            "control",
            "transaction",
            &args,
        )];
        match last {
            Some(Ok(v)) => {
                transcript.push(transcript_value(
                    Direction::Control,
                    "control",
                    "transaction",
                    &v,
                ));
                let got = v
                    .get("state")
                    .and_then(Value::as_text)
                    .unwrap_or_default()
                    .to_owned();
                let history: Vec<String> = v
                    .get("history")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_text)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                if let Err(why) = transitions::check_history(&history, &got) {
                    return StepReport::fault(StepFault::Violation {
                        expected: "SPEC-IV-01: a run of the SPEC IV state machine (PROFILE G-18) starting at initiated".into(),
                        observed: format!("state {got}, history [{}]: {why}", history.join(", ")),
                    })
                    .with_transcript(transcript);
                }
                StepReport::observed(Observation::State {
                    state: got,
                    history,
                })
                .with_transcript(transcript)
            }
            Some(Err(CallError::Action(e))) => StepReport::fault(StepFault::Unmet(format!(
                "`transaction` failed: {}: {}",
                e.kind, e.message
            )))
            .with_transcript(transcript),
            Some(Err(CallError::Transport(m))) => {
                StepReport::fault(infra(m)).with_transcript(transcript)
            }
            None => StepReport::fault(infra("no transaction read")),
        }
    }

    async fn do_expect_audit(
        &mut self,
        transaction: Option<&str>,
        events: &[String],
        codes: &[u16],
        within: Duration,
    ) -> StepReport {
        let args = match transaction {
            Some(t) => Value::map([("transaction_id", Self::transaction_arg(t))]),
            None => Value::Map(vec![]),
        };
        let deadline = Instant::now() + within;
        let control = match self.control() {
            Ok(c) => c.clone(),
            Err(f) => return StepReport::fault(f),
        };
        let mut transcript = vec![transcript_value(
            Direction::Control,
            "control",
            "audit",
            &args,
        )];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = left.max(Duration::from_millis(500)).min(self.timeouts.step);
            match control.invoke("audit", &args, wait).await {
                Ok(v) => {
                    let Some(bytes) = v.get("entries").and_then(Value::as_bytes) else {
                        return StepReport::fault(StepFault::Unmet(
                            "`audit` returned no `entries` byte string".into(),
                        ))
                        .with_transcript(transcript);
                    };
                    let (entries, chain) = audit_chain::check_export(bytes);
                    let complete = events.iter().all(|e| entries.iter().any(|x| &x.event == e))
                        && codes
                            .iter()
                            .all(|c| entries.iter().any(|x| x.error_code == Some(*c)));
                    if complete || Instant::now() >= deadline {
                        transcript.push(transcript_entry(
                            Direction::Control,
                            "control",
                            "audit",
                            bytes,
                        ));
                        return StepReport::observed(Observation::Audit { entries, chain })
                            .with_transcript(transcript);
                    }
                }
                Err(CallError::Action(e)) => {
                    return StepReport::fault(StepFault::Unmet(format!(
                        "`audit` failed: {}: {}",
                        e.kind, e.message
                    )))
                    .with_transcript(transcript);
                }
                Err(CallError::Transport(m)) => {
                    transcript.push(transcript_value(
                        Direction::Control,
                        "control",
                        "audit",
                        &Value::text(&m),
                    ));
                    return StepReport::fault(infra(m)).with_transcript(transcript);
                }
            }
            tokio::time::sleep(POLL.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
    }
}

impl LiveExecutor {
    /// `control.background`: the action is invoked from a task of the scenario (stopped at
    /// its end) and the step passes at once; its result is not judged — later steps observe
    /// what the IUT does (e.g. the successor negotiation of `supersede`, SPEC III-D-3).
    fn do_control_background(
        &mut self,
        action: &str,
        args: &Value,
        budget: Duration,
    ) -> StepReport {
        let args = self.complete_control_args(action, args);
        let transcript = vec![transcript_value(
            Direction::Control,
            "control",
            action,
            &args,
        )];
        let control = match self.control() {
            Ok(c) => c.clone(),
            Err(f) => return StepReport::fault(f),
        };
        let wait = self.scenario_budget.max(budget);
        let name = action.to_owned();
        self.tasks.push(tokio::spawn(async move {
            if let Err(e) = control.invoke(&name, &args, wait).await {
                tracing::debug!(action = %name, error = ?e, "background control action failed");
            }
        }));
        StepReport::observed(Observation::Control(Ok(Value::Map(Vec::new()))))
            .with_transcript(transcript)
    }

    /// `expect_audit.transitions_complete` (SPEC-IV-B-02; PROFILE G-18, G-42): the harness
    /// reads the trail and the transaction's history again and checks every transition
    /// entry itself (`audit_chain::check_transitions`); a problem is a violation.
    async fn check_transitions_complete(
        &mut self,
        transaction: &str,
        report: StepReport,
    ) -> StepReport {
        let control = match self.control() {
            Ok(c) => c.clone(),
            Err(f) => return StepReport::fault(f),
        };
        let args = Value::map([("transaction_id", Self::transaction_arg(transaction))]);
        let mut transcript = report.transcript.clone();
        let wait = self.timeouts.step;
        let (audit, tx) = match (
            control.invoke("audit", &args, wait).await,
            control.invoke("transaction", &args, wait).await,
        ) {
            (Ok(a), Ok(t)) => (a, t),
            (Err(CallError::Transport(m)), _) | (_, Err(CallError::Transport(m))) => {
                return StepReport::fault(infra(m)).with_transcript(transcript);
            }
            (Err(CallError::Action(e)), _) | (_, Err(CallError::Action(e))) => {
                return StepReport::fault(StepFault::Unmet(format!(
                    "`audit` / `transaction` failed: {}: {}",
                    e.kind, e.message
                )))
                .with_transcript(transcript);
            }
        };
        transcript.push(transcript_value(
            Direction::Control,
            "control",
            "transaction",
            &tx,
        ));
        let Some(bytes) = audit.get("entries").and_then(Value::as_bytes) else {
            return StepReport::fault(StepFault::Unmet(
                "`audit` returned no `entries` byte string".into(),
            ))
            .with_transcript(transcript);
        };
        let history: Option<Vec<String>> = tx.get("history").and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(Value::as_text)
                .map(str::to_owned)
                .collect()
        });
        match audit_chain::check_transitions(bytes, history.as_deref()) {
            Ok(()) => report,
            Err(problems) => StepReport::fault(StepFault::Violation {
                expected: "SPEC-IV-B-02: every state transition logged with a timestamp, its triggering event (PROFILE G-18) and the identifiers of the Agents involved, replaying the transaction's history".into(),
                observed: problems.join("; "),
            })
            .with_transcript(transcript),
        }
    }
}

/// A message ready to go.
struct Prepared {
    bytes: Vec<u8>,
    /// The logical body (absent for a byte-for-byte replay).
    body: Option<Value>,
    /// The object's MTP-UUID (`reused_uuid` default of the next send).
    id: Option<Value>,
    /// `Nats-Msg-Id` (NATS sends).
    nats_msg_id: String,
}

impl StepExecutor for LiveExecutor {
    fn variables(&self) -> Vec<(String, Value)> {
        let (did, doc) = self
            .slots
            .get(COUNTERPARTY)
            .map(|s| (s.persona.did.clone(), s.persona.document_json.clone()))
            .unwrap_or_default();
        let prefix = self
            .hello
            .subject_prefix
            .clone()
            .or_else(|| {
                self.iut
                    .endpoints
                    .nats
                    .as_ref()
                    .map(|n| n.subject_prefix.clone())
            })
            .unwrap_or_else(|| "mtp".into());
        vec![
            ("iut_did".into(), Value::text(&self.hello.did)),
            ("harness_did".into(), Value::text(did)),
            ("harness_did_document".into(), Value::text(doc)),
            ("subject_prefix".into(), Value::text(prefix)),
        ]
    }

    async fn execute(&mut self, input: StepInput) -> StepReport {
        match &input.action {
            Action::Control { action, args } if matches!(&input.step.kind, StepKind::Control(c) if c.background) => {
                self.do_control_background(action, args, input.budget)
            }
            Action::Control { action, args } => self.do_control(action, args, input.budget).await,
            Action::Send {
                persona,
                frame,
                channel,
                body,
                faults,
                reused_uuid,
            } => {
                self.do_send(
                    persona,
                    frame,
                    channel,
                    body,
                    faults,
                    reused_uuid.as_ref(),
                    input.budget,
                )
                .await
            }
            Action::Expect {
                expectation,
                channel,
                within,
            } => self.do_expect(expectation, channel.as_ref(), *within).await,
            Action::ExpectState {
                transaction,
                state,
                within,
            } => self.do_expect_state(transaction, state, *within).await,
            Action::ExpectAudit {
                transaction,
                events,
                codes,
                within,
            } => {
                let report = self
                    .do_expect_audit(transaction.as_deref(), events, codes, *within)
                    .await;
                let complete = matches!(
                    &input.step.kind,
                    StepKind::ExpectAudit(a) if a.transitions_complete
                );
                match transaction.as_deref() {
                    Some(t) if complete && report.outcome.is_ok() => {
                        self.check_transitions_complete(t, report).await
                    }
                    _ => report,
                }
            }
            Action::CheckVectors {
                family,
                ids,
                operations,
            } => {
                let control = match self.control() {
                    Ok(c) => c.clone(),
                    Err(f) => return StepReport::fault(f),
                };
                super::vectors::check(&control, self.timeouts.step, family, ids, operations).await
            }
        }
    }

    async fn finish(mut self) {
        for slot in self.slots.values() {
            super::registry::forget(&slot.persona.document_json);
        }
        self.shared.streams.close_all();
        for t in self.tasks.drain(..) {
            t.abort();
        }
        for slot in self.slots.values_mut() {
            slot.client = None;
            if let Some(s) = slot.server.take() {
                let _ = tokio::time::timeout(Duration::from_secs(2), s.shutdown()).await;
            }
        }
        // The lease returns the instance to the pool when dropped.
    }
}

impl Drop for LiveExecutor {
    /// An executor abandoned without `finish` (a failed start, a cancelled scenario) still
    /// stops its tasks and servers.
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        for slot in self.slots.values() {
            super::registry::forget(&slot.persona.document_json);
        }
        self.shared.streams.close_all();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            for slot in self.slots.values_mut() {
                if let Some(s) = slot.server.take() {
                    rt.spawn(async move {
                        let _ = tokio::time::timeout(Duration::from_secs(5), s.shutdown()).await;
                    });
                }
            }
        }
    }
}

/// An `alg_profile` message's `profile` is a valid Algorithm Support Profile: the four
/// functions, the baselines, nothing forbidden (PROFILE G-38; BIND-X-I02).
fn alg_profile_valid(frame_type: &str, body: &Value) -> Result<(), oracle::Violation> {
    if frame_type != "alg_profile" {
        return Ok(());
    }
    let profile = body.get("profile").cloned().unwrap_or(Value::Null);
    mtp_protocol::crypto::AlgorithmSupportProfile::from_value(&profile)
        .map(|_| ())
        .map_err(|e| oracle::Violation {
            requirement: "BIND-X-I02",
            expected: "alg_profile: a valid Algorithm Support Profile (PROFILE G-38)".into(),
            observed: e.to_string(),
        })
}
