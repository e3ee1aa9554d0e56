//! The test-control service (`mtp.control.v1.TestControl`, contract `mtp-iut-control/1`,
//! docs/iut-contract.md): actions dispatched to the layers, events from the agent's log.
//!
//! `Invoke` decodes `args` (a deterministic CBOR map with text keys, else `bad_args`) and
//! runs the action: the session, inspection and codec actions are handled here; every
//! other action is offered to each layer's `control` in turn (identity, discovery,
//! negotiation, commitment, settlement, verification, attribution); when none claims it
//! the answer is `unsupported_action` (contract rule 1). `reset` and `add_peer` are
//! handled here *and then broadcast* to every layer, so that a layer can drop its own state
//! on `reset` and record `roles` / `status_lists` on `add_peer`; the layer results are
//! merged into the answer.
//!
//! `Observe` streams the agent's [`EventLog`](crate::events::EventLog) after
//! `after_sequence`: the catch-up first, then live events, without gaps or duplicates.
//!
//! The service runs on its own port under the MTPSync TLS profile (PROFILE G-37) with the
//! harness's certificate pinned from `control_pins` ([`serve`]).

use std::pin::Pin;

use futures::Stream;
use mtp_protocol::audit::AuditRecord;
use mtp_protocol::cbor::{self, Value};
use mtp_protocol::errors::{Coded, ErrorCode};
use mtp_protocol::identity::DidDocument;
use mtp_protocol::uuid::MtpUuid;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tonic::{Request, Response, Status};

use crate::agent::Agent;
use crate::events::Event;
use crate::layers;
use crate::transaction::{AGENT_TRAIL_ID, TxError};
use crate::transport::sync::certs::Fingerprint;
use crate::transport::sync::server::{ServerError, ServerOptions, SyncServer};
use crate::transport::sync::tls::{EventSink, PinSet, TransportEvent};

/// Generated gRPC code for `protocol/wire/mtp/control/v1/control.proto`
/// (package `mtp.control.v1`).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("mtp.control.v1");
}

/// The contract version this service implements (docs/iut-contract.md).
pub const CONTRACT: &str = "mtp-iut-control/1";

/// Actions handled by this module.
pub const CORE_ACTIONS: &[&str] = &[
    "hello",
    "reset",
    "add_peer",
    "transaction",
    "audit",
    "codec_encode",
    "codec_parse",
    "codec_sign",
    "codec_verify",
];

/// Actions of the contract that the layers implement (control.cddl `action-name`).
pub const LAYER_ACTIONS: &[&str] = &[
    "provision",
    "resolve_did",
    "publish_manifest",
    "publish_offer",
    "revoke_offer",
    "modify_offer",
    "create_request",
    "query_index",
    "set_policy",
    "negotiate",
    "commit",
    "supersede",
    "configure_rail",
    "settle",
    "deliver",
    "verify",
    "dispute",
    "resolve_dispute",
    "attribute",
    "revoke_credential",
    "update_did",
];

/// Actions handled here first and then offered to every layer.
pub const BROADCAST_ACTIONS: &[&str] = &["reset", "add_peer"];

/// Largest control message (audit exports of long transactions can be large).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Why an action failed (`ControlError.kind` in control.proto).
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("unsupported action {0}")]
    Unsupported(String),
    #[error("bad arguments: {0}")]
    BadArgs(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("{code} {message}")]
    Mtp { code: ErrorCode, message: String },
    #[error("internal: {0}")]
    Internal(String),
}

impl ControlError {
    /// An MTP error the agent raised while performing the action.
    pub fn mtp(err: &(impl Coded + std::fmt::Display + ?Sized)) -> ControlError {
        ControlError::Mtp {
            code: err.code(),
            message: err.to_string(),
        }
    }

    /// `ControlError.kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            ControlError::Unsupported(_) => "unsupported_action",
            ControlError::BadArgs(_) => "bad_args",
            ControlError::NotFound(_) => "not_found",
            ControlError::Mtp { .. } => "mtp_error",
            ControlError::Internal(_) => "internal",
        }
    }

    /// The protobuf error.
    pub fn to_pb(&self) -> pb::ControlError {
        pb::ControlError {
            kind: self.kind().to_owned(),
            mtp_code: match self {
                ControlError::Mtp { code, .. } => u32::from(code.as_u16()),
                _ => 0,
            },
            message: match self {
                ControlError::Unsupported(a) => a.clone(),
                ControlError::BadArgs(m)
                | ControlError::NotFound(m)
                | ControlError::Internal(m)
                | ControlError::Mtp { message: m, .. } => m.clone(),
            },
        }
    }

    /// The error carried in a `ControlResponse` (client side).
    pub fn from_pb(e: &pb::ControlError) -> ControlError {
        let m = e.message.clone();
        match e.kind.as_str() {
            "unsupported_action" => ControlError::Unsupported(m),
            "bad_args" => ControlError::BadArgs(m),
            "not_found" => ControlError::NotFound(m),
            "mtp_error" => match u16::try_from(e.mtp_code).ok().and_then(ErrorCode::from_u16) {
                Some(code) => ControlError::Mtp { code, message: m },
                None => ControlError::Internal(format!("mtp_error {}: {m}", e.mtp_code)),
            },
            _ => ControlError::Internal(m),
        }
    }

    fn internal(e: impl std::fmt::Display) -> ControlError {
        ControlError::Internal(e.to_string())
    }
}

/// Result of one action: the CBOR result map.
pub type ControlResult = Result<Value, ControlError>;

// ---- argument helpers (also for the layers) ------------------------------------------

/// Decodes `ControlRequest.args`: empty = `{}`; otherwise one deterministic CBOR map with
/// text keys (control.cddl), anything else is `bad_args`.
pub fn decode_args(bytes: &[u8]) -> Result<Value, ControlError> {
    if bytes.is_empty() {
        return Ok(empty());
    }
    let v = cbor::from_slice(bytes).map_err(|e| {
        ControlError::BadArgs(format!("args are not one deterministic CBOR item: {e}"))
    })?;
    match &v {
        Value::Map(entries) if entries.iter().all(|(k, _)| matches!(k, Value::Text(_))) => Ok(v),
        Value::Map(_) => Err(ControlError::BadArgs("args map keys must be text".into())),
        other => Err(ControlError::BadArgs(format!(
            "args must be a map, got a {}",
            other.kind()
        ))),
    }
}

/// A required argument.
pub fn required<'a>(args: &'a Value, key: &str) -> Result<&'a Value, ControlError> {
    args.get(key)
        .ok_or_else(|| ControlError::BadArgs(format!("missing argument {key:?}")))
}

/// A required text argument.
pub fn text_arg<'a>(args: &'a Value, key: &str) -> Result<&'a str, ControlError> {
    required(args, key)?
        .as_text()
        .ok_or_else(|| ControlError::BadArgs(format!("argument {key:?} must be a text string")))
}

/// A required byte-string argument.
pub fn bytes_arg<'a>(args: &'a Value, key: &str) -> Result<&'a [u8], ControlError> {
    required(args, key)?
        .as_bytes()
        .ok_or_else(|| ControlError::BadArgs(format!("argument {key:?} must be a byte string")))
}

/// An optional boolean argument (absent = `false`).
pub fn flag_arg(args: &Value, key: &str) -> Result<bool, ControlError> {
    match args.get(key) {
        None => Ok(false),
        Some(v) => v
            .as_bool()
            .ok_or_else(|| ControlError::BadArgs(format!("argument {key:?} must be a bool"))),
    }
}

/// An MTP-UUID argument: a 32-byte byte string (mtp.cddl `mtp-uuid`) or, for hand-typed
/// calls, its 67-character text form (SPEC-IX-02).
pub fn uuid_arg(args: &Value, key: &str) -> Result<[u8; 32], ControlError> {
    let bad = |why: String| ControlError::BadArgs(format!("argument {key:?}: {why}"));
    match required(args, key)? {
        Value::Bytes(b) => <[u8; 32]>::try_from(b.as_slice())
            .map_err(|_| bad(format!("an MTP-UUID has 32 bytes, got {}", b.len()))),
        Value::Text(t) => MtpUuid::parse(t)
            .map(|u| *u.as_bytes())
            .map_err(|e| bad(e.to_string())),
        other => Err(bad(format!("expected an MTP-UUID, got a {}", other.kind()))),
    }
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::map(entries)
}

fn empty() -> Value {
    Value::Map(Vec::new())
}

/// Adds the entries of `extra` whose keys `base` lacks.
fn merge(base: Value, extra: Value) -> Value {
    match (base, extra) {
        (Value::Map(mut b), Value::Map(e)) => {
            for (k, v) in e {
                if !b.iter().any(|(bk, _)| *bk == k) {
                    b.push((k, v));
                }
            }
            Value::Map(b)
        }
        (b, _) => b,
    }
}

// ---- dispatch ----------------------------------------------------------------------------

/// Runs one action (docs/iut-contract.md).
pub async fn dispatch(agent: &Agent, action: &str, args: &Value) -> ControlResult {
    match action {
        "hello" => hello(agent),
        "reset" => {
            let r = reset(agent, args)?;
            broadcast(agent, action, args, r).await
        }
        "add_peer" => {
            let r = add_peer(agent, args)?;
            let r = broadcast(agent, action, args, r).await;
            // Algorithm Negotiation over MTPAsync with the new peer (BIND-X-I01; G-38).
            if r.is_ok()
                && let Some(doc) = args.get("document").and_then(Value::as_text)
                && let Err(e) = crate::transport::nats::alg::announce(agent, doc).await
            {
                tracing::warn!(error = %e, "alg_profile announcement failed");
            }
            r
        }
        "transaction" => transaction(agent, args),
        "audit" => audit(agent, args),
        "codec_encode" => codec::run(agent, codec::Op::Encode, args),
        "codec_parse" => codec::run(agent, codec::Op::Parse, args),
        "codec_sign" => codec::run(agent, codec::Op::Sign, args),
        "codec_verify" => codec::run(agent, codec::Op::Verify, args),
        _ => layer_action(agent, action, args)
            .await
            .unwrap_or_else(|| Err(ControlError::Unsupported(action.to_owned()))),
    }
}

/// The first layer that claims `action`.
pub async fn layer_action(agent: &Agent, action: &str, args: &Value) -> Option<ControlResult> {
    if let Some(r) = layers::identity::control(agent, action, args).await {
        return Some(r);
    }
    if let Some(r) = layers::discovery::control(agent, action, args).await {
        return Some(r);
    }
    if let Some(r) = layers::negotiation::control(agent, action, args).await {
        return Some(r);
    }
    if let Some(r) = layers::commitment::control(agent, action, args).await {
        return Some(r);
    }
    if let Some(r) = layers::settlement::control(agent, action, args).await {
        return Some(r);
    }
    if let Some(r) = layers::verification::control(agent, action, args).await {
        return Some(r);
    }
    layers::attribution::control(agent, action, args).await
}

/// Offers a core action to every layer; the first layer error fails the action, layer
/// results are merged into `core`.
async fn broadcast(agent: &Agent, action: &str, args: &Value, core: Value) -> ControlResult {
    let results = [
        layers::identity::control(agent, action, args).await,
        layers::discovery::control(agent, action, args).await,
        layers::negotiation::control(agent, action, args).await,
        layers::commitment::control(agent, action, args).await,
        layers::settlement::control(agent, action, args).await,
        layers::verification::control(agent, action, args).await,
        layers::attribution::control(agent, action, args).await,
    ];
    let mut out = core;
    for r in results.into_iter().flatten() {
        out = merge(out, r?);
    }
    Ok(out)
}

// ---- session -------------------------------------------------------------------------

/// The MTPAsync subject prefix `mtp.agent.<did-id>` (PROFILE G-06).
pub fn subject_prefix(agent: &Agent) -> String {
    format!("mtp.agent.{}", agent.keys.did.method_specific_id())
}

fn hello(agent: &Agent) -> ControlResult {
    let doc = agent.document();
    let sync = doc
        .sync_endpoint()
        .map(|s| format!("grpcs://{}:{}", s.host, s.port))
        .unwrap_or_default();
    let actions = CORE_ACTIONS
        .iter()
        .chain(LAYER_ACTIONS)
        .map(|a| Value::text(*a))
        .collect();
    let mut m = vec![
        ("contract", Value::text(CONTRACT)),
        (
            "implementation",
            map(vec![
                ("name", Value::text("mtp-agent")),
                ("version", Value::text(env!("CARGO_PKG_VERSION"))),
                ("instance", Value::text(agent.config.name.clone())),
            ]),
        ),
        ("did", Value::text(agent.did())),
        ("did_document", Value::text(doc.to_json())),
        ("sync_endpoint", Value::text(sync)),
        (
            "tls_fingerprint",
            Value::text(agent.tls.fingerprint.to_string()),
        ),
        ("index", Value::Bool(agent.config.serve_index)),
        ("actions", Value::Array(actions)),
    ];
    if !agent.config.test_faults.is_empty() {
        let faults = agent.config.test_faults.iter();
        m.push((
            "test_faults",
            Value::Array(faults.map(|f| Value::text(f.clone())).collect()),
        ));
    }
    if let Some(n) = &agent.config.nats {
        let url = agent
            .nats
            .get()
            .map(|t| t.url().to_owned())
            .unwrap_or_else(|| n.url.clone());
        m.push((
            "async",
            map(vec![
                ("url", Value::text(url)),
                ("subject_prefix", Value::text(subject_prefix(agent))),
                ("cluster", Value::text(n.cluster.clone())),
                ("connected", Value::Bool(agent.nats.get().is_some())),
            ]),
        ));
    }
    Ok(map(m))
}

/// Contract rule 4: transactions, objects, deals, events and peers are dropped; identity
/// stays. A `seed` must be the agent's own (identity cannot change without a restart);
/// it restarts the run RNG so that ids and nonces replay (contract rule 7).
fn reset(agent: &Agent, args: &Value) -> ControlResult {
    if let Some(seed) = args.get("seed") {
        let seed: [u8; 32] = seed
            .as_bytes()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| ControlError::BadArgs("seed must be a 32-byte byte string".into()))?;
        let keys = crate::keys::AgentKeys::from_seed(seed);
        if keys.did != agent.keys.did {
            return Err(ControlError::BadArgs(
                "reset with a different seed changes the identity: restart mtp-agent with that \
                 seed file instead (docs/iut-contract.md, reference agent notes)"
                    .into(),
            ));
        }
        *agent.rng.lock().unwrap_or_else(|p| p.into_inner()) =
            mtp_protocol::crypto::SeededRng::from_seed(keys.derive(crate::keys::LABEL_RUN));
    }
    agent.transactions.clear().map_err(ControlError::internal)?;
    agent.deals.clear();
    agent.events.clear();
    let dropped: Vec<DidDocument> = {
        let mut peers = agent.peers.write().unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *peers).into_values().collect()
    };
    for doc in dropped {
        if let Some(s) = doc.sync_endpoint() {
            agent
                .pins
                .remove(&Fingerprint::from_bytes(s.tls_certificate_sha256));
        }
    }
    agent
        .channels
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
    // Peers of the configuration file are configuration, not protocol state.
    for path in &agent.config.peers {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ControlError::Internal(format!("peer document {}: {e}", path.display()))
        })?;
        let doc = DidDocument::from_json(&text).map_err(|e| {
            ControlError::Internal(format!("peer document {}: {e}", path.display()))
        })?;
        agent.add_peer(doc).map_err(ControlError::internal)?;
    }
    // The agent trail restarts with a new genesis entry (contract rule 4; PROFILE G-42).
    agent
        .transactions
        .record(
            &AGENT_TRAIL_ID,
            AuditRecord {
                event: "reset".into(),
                agents: vec![agent.did()],
                ..AuditRecord::default()
            },
            agent.now(),
        )
        .map_err(ControlError::internal)?;
    tracing::info!("test-control reset");
    Ok(map(vec![("did", Value::text(agent.did()))]))
}

/// Trusts a peer's DID Document (pins its MTPSync certificate); `roles` and
/// `status_lists` go to the identity layer (`layers::identity::on_add_peer`), and the
/// action is then offered to every layer (broadcast).
fn add_peer(agent: &Agent, args: &Value) -> ControlResult {
    let text = text_arg(args, "document")?;
    let doc = DidDocument::from_json(text)
        .map_err(|e| ControlError::BadArgs(format!("document is not a DID Document: {e}")))?;
    if let Some(roles) = args.get("roles") {
        let ok = roles.as_array().is_some_and(|a| {
            a.iter().all(|r| {
                matches!(
                    r.as_text(),
                    Some("agent" | "index" | "registry" | "principal")
                )
            })
        });
        if !ok {
            return Err(ControlError::BadArgs(
                "roles must be an array of agent / index / registry / principal".into(),
            ));
        }
    }
    let did = agent
        .add_peer(doc)
        .map_err(|e| ControlError::BadArgs(format!("document refused: {e}")))?;
    // A channel opened before (to an older document) must not be reused.
    agent
        .channels
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&did);
    // Roles and hosted status lists belong to the identity layer.
    layers::identity::on_add_peer(agent, &did, args)
        .map_err(|e| ControlError::BadArgs(format!("add_peer: {e}")))?;
    Ok(map(vec![("did", Value::text(did))]))
}

// ---- inspection ----------------------------------------------------------------------

/// `ErrorCode` as a [`Coded`] error for building error records.
struct CodeOnly(ErrorCode);

impl Coded for CodeOnly {
    fn code(&self) -> ErrorCode {
        self.0
    }
}

fn transaction(agent: &Agent, args: &Value) -> ControlResult {
    let id = uuid_arg(args, "transaction_id")?;
    let rec = agent
        .transactions
        .get(&id)
        .filter(|_| id != AGENT_TRAIL_ID)
        .ok_or_else(|| ControlError::NotFound(format!("transaction {}", hex::encode(id))))?;
    let tx_uuid = MtpUuid::from_bytes(&id).ok();
    let source = mtp_protocol::uuid::source_of(&agent.did());
    let mut errors = Vec::new();
    let mut codes = Vec::new();
    for e in rec.audit.entries() {
        let Some(c) = e.error_code else { continue };
        codes.push(Value::from(u64::from(c)));
        let Some(code) = ErrorCode::from_u16(c) else {
            continue;
        };
        let mut random = [0u8; 17];
        random.copy_from_slice(&e.hash[..17]);
        let error_id = MtpUuid::new(
            mtp_protocol::uuid::ObjectType::Error,
            e.timestamp.unix_nanos().unwrap_or(0),
            source,
            random,
        );
        let record = mtp_protocol::error_record::MtpErrorRecord::from_coded(
            &CodeOnly(code),
            code.description(),
            error_id,
            tx_uuid,
            e.timestamp,
        );
        errors.push(mtp_protocol::primitives::CborObject::to_value(&record));
    }
    let mut m = vec![
        ("state", Value::text(rec.state.name())),
        (
            "history",
            Value::Array(rec.history.iter().map(|s| Value::text(s.name())).collect()),
        ),
        ("errors", Value::Array(errors)),
        ("error_codes", Value::Array(codes)),
        (
            "agents",
            Value::Array(rec.agents.iter().map(|a| Value::text(a.clone())).collect()),
        ),
        (
            "audit_entries",
            Value::from(rec.audit.entries().len() as u64),
        ),
    ];
    if let Some(deal) = agent.deals.get(&id) {
        m.push((
            "role",
            Value::text(match deal.role {
                crate::deal::Role::Requester => "requester",
                crate::deal::Role::Provider => "provider",
                crate::deal::Role::Contributor => "contributor",
            }),
        ));
        if let Some(s) = deal.mandate_status {
            m.push(("mandate_status", Value::text(s.name())));
        }
        if let Some(mandate) = &deal.mandate {
            m.push(("mandate_id", mandate.mandate_id.to_value()));
        }
        if let Some((rail, settlement)) = &deal.settlement {
            m.push((
                "settlement",
                map(vec![
                    ("rail", Value::text(rail.clone())),
                    ("settlement_id", Value::text(settlement.clone())),
                ]),
            ));
        }
        m.push((
            "receipt_ids",
            Value::Array(
                deal.receipts
                    .iter()
                    .map(|r| r.receipt_id.to_value())
                    .collect(),
            ),
        ));
    }
    Ok(map(m))
}

/// The audit trail as an RFC 8742 CBOR sequence (PROFILE G-42); without `transaction_id`
/// the agent trail. `diagnostic: true` adds the CBOR diagnostic notation (BIND IV-B).
fn audit(agent: &Agent, args: &Value) -> ControlResult {
    let id = match args.get("transaction_id") {
        None => AGENT_TRAIL_ID,
        Some(_) => uuid_arg(args, "transaction_id")?,
    };
    let bytes = agent.transactions.export_audit(&id).map_err(|e| match e {
        TxError::Unknown(t) => ControlError::NotFound(format!("transaction {t}")),
        e => ControlError::internal(e),
    })?;
    let items = cbor::sequence_from_slice(&bytes)
        .map_err(|(i, e)| ControlError::Internal(format!("audit entry {i}: {e}")))?;
    let mut m = vec![("count", Value::from(items.len() as u64))];
    if flag_arg(args, "diagnostic")? {
        let diag = items
            .iter()
            .map(cbor::diag::value_to_diag)
            .collect::<Vec<_>>()
            .join(",\n");
        m.push(("diagnostic", Value::text(diag)));
    }
    m.push(("entries", Value::Bytes(bytes)));
    Ok(map(m))
}

// ---- codec -----------------------------------------------------------------------------

mod codec {
    //! `codec_encode` / `codec_parse` / `codec_sign` / `codec_verify` over the objects of
    //! `mtp-protocol` (vector checks, `mtp-cert vectors verify`).

    use mtp_protocol::attribution::AttributionRecord;
    use mtp_protocol::cbor::{self, Value};
    use mtp_protocol::commitment::Mandate;
    use mtp_protocol::crypto::{PublicKey, SignatureAlgorithm};
    use mtp_protocol::discovery::{
        CapabilityManifest, IndexQuery, IndexQueryResponse, OfferRevocation,
    };
    use mtp_protocol::error_record::{MtpErrorRecord, Notification};
    use mtp_protocol::errors::{Coded, ErrorCode};
    use mtp_protocol::identity::DidDocument;
    use mtp_protocol::identity::credential::KeyResolver;
    use mtp_protocol::primitives::{
        CborObject, MultiSigned, Offer, Receipt, Request, SingleSigned, Terms,
    };
    use mtp_protocol::uuid::MtpUuid;
    use mtp_protocol::verification::DisputeInitiationRecord;

    use super::{ControlError, ControlResult, bytes_arg, map, required, text_arg};
    use crate::agent::Agent;

    /// The four codec actions.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Op {
        Encode,
        Parse,
        Sign,
        Verify,
    }

    /// Object types (control.cddl `codec-type`, plus a few more objects of mtp.cddl).
    pub const TYPES: &[&str] = &[
        "offer",
        "request",
        "terms",
        "receipt",
        "mandate",
        "manifest",
        "attribution_record",
        "mtp_error",
        "notification",
        "mtp_uuid",
        "offer_revocation",
        "dispute_initiation_record",
        "index_query",
        "index_response",
    ];

    pub fn run(agent: &Agent, op: Op, args: &super::Value) -> ControlResult {
        let out = run_type(agent, op, args)?;
        if op == Op::Encode
            && agent.fault("length-first-map-keys")
            && let Some(b) = out.get("cbor").and_then(Value::as_bytes)
        {
            let b = cbor::mutate::length_first_order(b).unwrap_or_else(|| b.to_vec());
            return Ok(map(vec![("cbor", Value::Bytes(b))]));
        }
        Ok(out)
    }

    fn run_type(agent: &Agent, op: Op, args: &super::Value) -> ControlResult {
        let ty = text_arg(args, "type")?;
        match ty {
            "offer" => single::<Offer>(agent, op, args),
            "request" => single::<Request>(agent, op, args),
            "receipt" => single::<Receipt>(agent, op, args),
            "manifest" => single::<CapabilityManifest>(agent, op, args),
            "attribution_record" => single::<AttributionRecord>(agent, op, args),
            "mtp_error" => single::<MtpErrorRecord>(agent, op, args),
            "notification" => single::<Notification>(agent, op, args),
            "offer_revocation" => single::<OfferRevocation>(agent, op, args),
            "dispute_initiation_record" => single::<DisputeInitiationRecord>(agent, op, args),
            "terms" => multi::<Terms>(agent, op, args),
            "mandate" => multi::<Mandate>(agent, op, args),
            "index_query" => plain::<IndexQuery>(op, args),
            "index_response" => plain::<IndexQueryResponse>(op, args),
            "mtp_uuid" => uuid(agent, op, args),
            other => Err(ControlError::BadArgs(format!(
                "unknown codec type {other:?} (known: {})",
                TYPES.join(", ")
            ))),
        }
    }

    fn not_ok(code: ErrorCode) -> Value {
        map(vec![
            ("ok", Value::Bool(false)),
            ("code", Value::from(u64::from(code.as_u16()))),
        ])
    }

    fn encode<T: CborObject>(args: &Value) -> ControlResult {
        let value = required(args, "value")?;
        let obj = T::from_value(value).map_err(|e| ControlError::mtp(&e))?;
        let bytes = obj.try_to_cbor().map_err(|e| ControlError::mtp(&e))?;
        Ok(map(vec![("cbor", Value::Bytes(bytes))]))
    }

    fn parse<T: CborObject>(args: &Value) -> ControlResult {
        let bytes = bytes_arg(args, "cbor")?;
        Ok(match T::from_cbor(bytes) {
            Ok(obj) => match obj.try_to_cbor() {
                Ok(re) => map(vec![
                    ("ok", Value::Bool(true)),
                    ("reencoded", Value::Bytes(re)),
                ]),
                Err(e) => not_ok(e.code()),
            },
            Err(e) => not_ok(e.code()),
        })
    }

    /// The `cbor` argument strictly decoded (BIND IV-A); failure is an `mtp_error`.
    fn decoded(args: &Value) -> Result<Value, ControlError> {
        cbor::from_slice(bytes_arg(args, "cbor")?).map_err(|e| ControlError::mtp(&e))
    }

    /// Replaces the signature field of an object map (`None` removes it).
    fn with_signatures(
        v: Value,
        field: &str,
        f: impl FnOnce(Option<Value>) -> Option<Value>,
    ) -> Result<Value, ControlError> {
        let Value::Map(mut entries) = v else {
            return Err(ControlError::Mtp {
                code: ErrorCode::SchemaViolation,
                message: "the object is not a map".into(),
            });
        };
        let pos = entries.iter().position(|(k, _)| k.as_text() == Some(field));
        let old = pos.map(|i| entries.remove(i).1);
        if let Some(new) = f(old) {
            entries.push((Value::text(field), new));
        }
        Ok(Value::Map(entries))
    }

    /// A structurally valid stand-in for a signature about to be made (signing inputs
    /// exclude the signature field, so it never influences the signature).
    fn placeholder_signature(agent: &Agent, signer: Option<&str>) -> Value {
        let mut m = vec![
            (
                "algorithm",
                Value::text(agent.keys.signing.algorithm().label()),
            ),
            ("value", Value::Bytes(Vec::new())),
        ];
        if let Some(did) = signer {
            m.push(("agent", Value::text(did)));
        }
        map(m)
    }

    /// The agent's signing key and the DID URL of its assertion key; `algorithm`, when
    /// given, must be the key's (PROFILE G-39).
    fn signer(agent: &Agent, args: &Value) -> Result<Option<String>, ControlError> {
        if let Some(a) = args.get("algorithm") {
            let label = a
                .as_text()
                .ok_or_else(|| ControlError::BadArgs("algorithm must be a text string".into()))?;
            let own = agent.keys.signing.algorithm().label();
            if label != own {
                return Err(ControlError::Mtp {
                    code: ErrorCode::AlgorithmNegotiationFailure,
                    message: format!("this agent signs with {own}, not {label}"),
                });
            }
        }
        Ok(agent
            .document()
            .assertion_keys()
            .into_iter()
            .next()
            .map(|(id, _, _)| id))
    }

    /// `public_key: {alg, key}` argument.
    fn explicit_key(args: &Value) -> Result<Option<PublicKey>, ControlError> {
        let Some(pk) = args.get("public_key") else {
            return Ok(None);
        };
        let alg = text_arg(pk, "alg")?;
        let key = bytes_arg(pk, "key")?;
        let alg = SignatureAlgorithm::from_label(alg).map_err(|e| ControlError::mtp(&e))?;
        PublicKey::from_bytes(alg, key)
            .map(Some)
            .map_err(|e| ControlError::BadArgs(format!("public_key: {e}")))
    }

    /// `document` argument (a DID Document, JSON).
    fn document(args: &Value) -> Result<Option<DidDocument>, ControlError> {
        match args.get("document") {
            None => Ok(None),
            Some(d) => {
                let text = d
                    .as_text()
                    .ok_or_else(|| ControlError::BadArgs("document must be JSON text".into()))?;
                DidDocument::from_json(text)
                    .map(Some)
                    .map_err(|e| ControlError::BadArgs(format!("document: {e}")))
            }
        }
    }

    fn first_assertion_key(doc: &DidDocument) -> Option<PublicKey> {
        doc.assertion_keys()
            .into_iter()
            .find_map(|(_, alg, bytes)| PublicKey::from_bytes(alg, &bytes).ok())
    }

    /// The object of `codec_verify`: from `cbor`, or from `json` — the object's JSON form
    /// (text), converted schema-directed to deterministic CBOR before anything is verified
    /// (BIND-IV-C-03; PROFILE G-27: JSON is never signed). Malformed → the refusal code.
    fn object_to_verify<T: CborObject>(
        agent: &Agent,
        args: &Value,
    ) -> Result<Result<T, ErrorCode>, ControlError> {
        let Some(j) = args.get("json") else {
            return Ok(T::from_cbor(bytes_arg(args, "cbor")?).map_err(|e| e.code()));
        };
        let text = j
            .as_text()
            .ok_or_else(|| ControlError::BadArgs("json must be a text string".into()))?;
        let Ok(json) = serde_json::from_str::<serde_json::Value>(text) else {
            return Ok(Err(ErrorCode::SerializationMismatch));
        };
        // Defect: the generic RFC 8949 §6 conversion (byte strings stay text, no tags).
        if agent.fault("json-generic-conversion") {
            return Ok(cbor::json::from_json(&json)
                .map_err(|e| e.code())
                .and_then(|v| T::from_value(&v).map_err(|e| e.code())));
        }
        Ok(mtp_protocol::primitives::json::from_json::<T>(&json).map_err(|e| e.code()))
    }

    /// Defect `json-unverified`: an object given in JSON form is accepted unverified.
    fn json_unverified<T: CborObject>(agent: &Agent, args: &Value, obj: &T) -> Option<Value> {
        (args.get("json").is_some() && agent.fault("json-unverified")).then(|| verified(args, obj))
    }

    /// `{ok: true}`; for a JSON input also `cbor`, the deterministic form kept (BIND-IV-C-03).
    fn verified<T: CborObject>(args: &Value, obj: &T) -> Value {
        let mut out = vec![("ok", Value::Bool(true))];
        if args.get("json").is_some()
            && let Ok(bytes) = obj.try_to_cbor()
        {
            out.push(("cbor", Value::Bytes(bytes)));
        }
        map(out)
    }

    fn single<T: SingleSigned>(agent: &Agent, op: Op, args: &Value) -> ControlResult {
        match op {
            Op::Encode => encode::<T>(args),
            Op::Parse => parse::<T>(args),
            Op::Sign => {
                let kid = signer(agent, args)?;
                let placeholder = placeholder_signature(agent, None);
                let v = with_signatures(decoded(args)?, T::SIGNATURE_FIELD, |s| {
                    s.or(Some(placeholder))
                })?;
                let mut obj = T::from_value(&v).map_err(|e| ControlError::mtp(&e))?;
                obj.sign(&agent.keys.signing, kid)
                    .map_err(|e| ControlError::mtp(&e))?;
                let bytes = obj.try_to_cbor().map_err(|e| ControlError::mtp(&e))?;
                Ok(map(vec![("cbor", Value::Bytes(bytes))]))
            }
            Op::Verify => {
                let obj = match object_to_verify::<T>(agent, args)? {
                    Ok(o) => o,
                    Err(code) => return Ok(not_ok(code)),
                };
                if let Some(done) = json_unverified(agent, args, &obj) {
                    return Ok(done);
                }
                let kid = obj.signature().and_then(|s| s.key_id.clone());
                let key = match (explicit_key(args)?, document(args)?) {
                    (Some(k), _) => k,
                    // A key the document does not hold cannot have made the signature.
                    (None, Some(doc)) => match match &kid {
                        Some(k) => doc.resolve_assertion_key(k).ok(),
                        None => first_assertion_key(&doc),
                    } {
                        Some(key) => key,
                        None => return Ok(not_ok(T::SIGNATURE_CODE)),
                    },
                    (None, None) => match &kid {
                        Some(k) => match agent.assertion_key(k) {
                            Ok(key) => key,
                            Err(_) => return Ok(not_ok(T::SIGNATURE_CODE)),
                        },
                        None => {
                            return Err(ControlError::BadArgs(
                                "the signature names no key: give public_key or document".into(),
                            ));
                        }
                    },
                };
                Ok(match obj.verify_signature(&key) {
                    Ok(()) => verified(args, &obj),
                    Err(e) => not_ok(e.code()),
                })
            }
        }
    }

    fn multi<T: MultiSigned>(agent: &Agent, op: Op, args: &Value) -> ControlResult {
        match op {
            Op::Encode => encode::<T>(args),
            Op::Parse => parse::<T>(args),
            Op::Sign => {
                let kid = signer(agent, args)?;
                // Validate with the signature array padded to its minimum of two; sign
                // after the signatures present (the signing input excludes them).
                let mut present = 0;
                let v = with_signatures(decoded(args)?, T::SIGNATURE_FIELD, |s| {
                    let mut sigs = s
                        .and_then(|s| s.as_array().map(<[Value]>::to_vec))
                        .unwrap_or_default();
                    present = sigs.len();
                    while sigs.len() < 2 {
                        sigs.push(placeholder_signature(agent, Some(&agent.did())));
                    }
                    Some(Value::Array(sigs))
                })?;
                let mut obj = T::from_value(&v).map_err(|e| ControlError::mtp(&e))?;
                obj.signatures_mut().truncate(present);
                obj.add_signature(&agent.did(), &agent.keys.signing, kid)
                    .map_err(|e| ControlError::mtp(&e))?;
                let bytes = obj.try_to_cbor().map_err(|e| ControlError::mtp(&e))?;
                Ok(map(vec![("cbor", Value::Bytes(bytes))]))
            }
            Op::Verify => {
                let obj = match object_to_verify::<T>(agent, args)? {
                    Ok(o) => o,
                    Err(code) => return Ok(not_ok(code)),
                };
                if let Some(done) = json_unverified(agent, args, &obj) {
                    return Ok(done);
                }
                let explicit = explicit_key(args)?;
                let doc = document(args)?;
                let resolve = |did: &str, kid: Option<&str>| -> Option<PublicKey> {
                    if let Some(k) = &explicit {
                        return Some(k.clone());
                    }
                    if let Some(d) = doc.as_ref().filter(|d| d.id == did) {
                        return match kid {
                            Some(k) => d.resolve_assertion_key(k).ok(),
                            None => first_assertion_key(d),
                        };
                    }
                    agent.assertion_key(kid.unwrap_or(did)).ok()
                };
                Ok(match obj.verify_signatures(resolve) {
                    Ok(()) => verified(args, &obj),
                    Err(e) => not_ok(e.code()),
                })
            }
        }
    }

    fn plain<T: CborObject>(op: Op, args: &Value) -> ControlResult {
        match op {
            Op::Encode => encode::<T>(args),
            Op::Parse => parse::<T>(args),
            Op::Sign | Op::Verify => Err(ControlError::BadArgs(format!(
                "{} is not a signed object",
                T::NAME
            ))),
        }
    }

    fn uuid(agent: &Agent, op: Op, args: &Value) -> ControlResult {
        match op {
            Op::Encode => {
                let id = match required(args, "value")? {
                    Value::Text(t) => MtpUuid::parse(t),
                    v => MtpUuid::from_value(v),
                }
                .map_err(|e| ControlError::mtp(&e))?;
                let bytes = cbor::to_vec(&id.to_value()).map_err(|e| ControlError::mtp(&e))?;
                Ok(map(vec![("cbor", Value::Bytes(bytes))]))
            }
            Op::Parse => {
                let bytes = bytes_arg(args, "cbor")?;
                let v = match cbor::from_slice(bytes) {
                    Ok(v) => v,
                    Err(e) => return Ok(not_ok(e.code())),
                };
                // Defect: any 32-byte string passes as an MTP-UUID.
                if agent.fault("codec-uuid-lenient")
                    && MtpUuid::from_value(&v).is_err()
                    && v.as_bytes().is_some_and(|b| b.len() == 32)
                {
                    return Ok(map(vec![
                        ("ok", Value::Bool(true)),
                        ("reencoded", Value::Bytes(bytes.to_vec())),
                    ]));
                }
                Ok(match MtpUuid::from_value(&v) {
                    Ok(id) => match cbor::to_vec(&id.to_value()) {
                        Ok(re) => map(vec![
                            ("ok", Value::Bool(true)),
                            ("reencoded", Value::Bytes(re)),
                            ("text", Value::text(id.to_string())),
                        ]),
                        Err(e) => not_ok(e.code()),
                    },
                    Err(e) => not_ok(e.code()),
                })
            }
            Op::Sign | Op::Verify => Err(ControlError::BadArgs(
                "an MTP-UUID is not a signed object".into(),
            )),
        }
    }
}

// ---- the gRPC service ----------------------------------------------------------------------

/// The `TestControl` service object.
#[derive(Clone)]
pub struct ControlService {
    pub agent: Agent,
}

/// The `Observe` response stream.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<pb::ControlEvent, Status>> + Send>>;

impl ControlService {
    pub fn new(agent: Agent) -> ControlService {
        ControlService { agent }
    }

    pub fn into_server(self) -> pb::test_control_server::TestControlServer<ControlService> {
        pb::test_control_server::TestControlServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
}

#[tonic::async_trait]
impl pb::test_control_server::TestControl for ControlService {
    async fn invoke(
        &self,
        request: Request<pb::ControlRequest>,
    ) -> Result<Response<pb::ControlResponse>, Status> {
        let req = request.into_inner();
        let correlation_id = req.correlation_id;
        let action = req.action;
        let outcome = match decode_args(&req.args) {
            Err(e) => Err(e),
            Ok(args) => {
                let agent = self.agent.clone();
                let name = action.clone();
                // Own task: a panicking action answers `internal` instead of killing the
                // connection.
                match tokio::spawn(async move { dispatch(&agent, &name, &args).await }).await {
                    Ok(r) => r,
                    Err(e) => Err(ControlError::Internal(format!(
                        "action {action} failed: {e}"
                    ))),
                }
            }
        };
        let response = match outcome.and_then(|v| {
            cbor::to_vec(&v)
                .map_err(|e| ControlError::Internal(format!("result has no CBOR encoding: {e}")))
        }) {
            Ok(result) => {
                tracing::debug!(action, correlation_id, "control action done");
                pb::ControlResponse {
                    result,
                    error: None,
                    correlation_id,
                }
            }
            Err(e) => {
                tracing::info!(action, correlation_id, kind = e.kind(), error = %e, "control action failed");
                pb::ControlResponse {
                    result: Vec::new(),
                    error: Some(e.to_pb()),
                    correlation_id,
                }
            }
        };
        Ok(Response::new(response))
    }

    type ObserveStream = EventStream;

    async fn observe(
        &self,
        request: Request<pb::ObserveRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let after = request.into_inner().after_sequence;
        let events = self.agent.events.clone();
        let (tx, rx) = mpsc::channel::<Result<pb::ControlEvent, Status>>(256);
        tokio::spawn(async move {
            let send = |seq: u64, e: &Event| {
                let tx = tx.clone();
                let item = pb::ControlEvent {
                    sequence: seq,
                    event: e.to_cbor(),
                };
                async move { tx.send(Ok(item)).await.is_ok() }
            };
            let (past, mut live) = events.since(after);
            let mut last = after;
            for (seq, e) in past {
                if !send(seq, &e).await {
                    return;
                }
                last = seq;
            }
            loop {
                let next = tokio::select! {
                    _ = tx.closed() => return,
                    n = live.recv() => n,
                };
                match next {
                    // `since` subscribes under the log's lock: live events continue the
                    // catch-up. A number not above the last one means the log was reset
                    // (numbering restarts at 1): follow the new numbering.
                    Ok((seq, e)) => {
                        if !send(seq, &e).await {
                            return;
                        }
                        last = seq;
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let (past, fresh) = events.since(last);
                        live = fresh;
                        for (seq, e) in past {
                            if !send(seq, &e).await {
                                return;
                            }
                            last = seq;
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

/// Why the control server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ControlServerError {
    #[error("control pin {pin:?}: {reason}")]
    Pin { pin: String, reason: String },
    #[error(transparent)]
    Server(#[from] ServerError),
}

/// The pins of `control_pins` (PROFILE G-32 `sha256:<hex>`).
pub fn control_pins(pins: &[String]) -> Result<PinSet, ControlServerError> {
    let set = PinSet::new();
    for (i, p) in pins.iter().enumerate() {
        let fp = Fingerprint::parse(p).map_err(|e| ControlServerError::Pin {
            pin: p.clone(),
            reason: e.to_string(),
        })?;
        set.insert(fp, format!("control-client-{i}"));
    }
    Ok(set)
}

/// Serves `TestControl` on `listener` under the MTPSync TLS profile, accepting only
/// clients pinned in `config.control_pins`. Refused handshakes are logged (the control
/// plane is not MTP: they do not enter the agent trail).
pub fn serve(agent: &Agent, listener: TcpListener) -> Result<SyncServer, ControlServerError> {
    let pins = control_pins(&agent.config.control_pins)?;
    if pins.is_empty() {
        tracing::warn!(
            "test-control service enabled without control_pins: every client is refused"
        );
    }
    let events = EventSink::from_fn(|ev| {
        if let TransportEvent::HandshakeRefused(r) = ev {
            tracing::warn!(refusal = %r, "test-control handshake refused");
        }
    });
    let router = tonic::transport::Server::builder()
        .add_service(ControlService::new(agent.clone()).into_server());
    let server = SyncServer::serve(
        listener,
        &agent.tls,
        pins,
        ServerOptions {
            events,
            ..ServerOptions::default()
        },
        router,
    )?;
    tracing::info!(endpoint = %server.endpoint(), "test-control service started");
    Ok(server)
}

// ---- client ----------------------------------------------------------------------------

/// A typed client of a `TestControl` service (harness side, `mtp-agent control`).
#[derive(Clone, Debug)]
pub struct ControlClient {
    inner: pb::test_control_client::TestControlClient<tonic::transport::Channel>,
    next_correlation: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// Why a control call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Connect(#[from] crate::transport::sync::ConnectError),
    #[error("control RPC failed: {0}")]
    Rpc(#[from] Status),
    #[error("args have no CBOR encoding: {0}")]
    Args(#[from] cbor::EncodeError),
    #[error("result is not a CBOR map: {0}")]
    Result(String),
    #[error("{}: {}", .0.kind(), .0)]
    Action(ControlError),
}

impl ClientError {
    /// The action's error, if the IUT answered with one.
    pub fn action(&self) -> Option<&ControlError> {
        match self {
            ClientError::Action(e) => Some(e),
            _ => None,
        }
    }
}

impl ControlClient {
    /// Connects to `endpoint` (`grpcs://host:port`), pinning the server's certificate
    /// fingerprint and presenting `identity` (which must be in the agent's control_pins).
    pub async fn connect(
        endpoint: &str,
        server: Fingerprint,
        identity: &crate::transport::sync::TlsIdentity,
    ) -> Result<ControlClient, ClientError> {
        let channel = crate::transport::sync::connect(
            endpoint,
            server,
            identity,
            &crate::transport::sync::ClientOptions::default(),
        )
        .await?;
        Ok(ControlClient {
            inner: pb::test_control_client::TestControlClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            next_correlation: Default::default(),
        })
    }

    /// Runs `action` with `args` (a CBOR map); the result map or the action's error.
    pub async fn invoke(&self, action: &str, args: Value) -> Result<Value, ClientError> {
        let n = self
            .next_correlation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let req = pb::ControlRequest {
            action: action.to_owned(),
            args: cbor::to_vec(&args)?,
            correlation_id: format!("c{n}"),
        };
        let resp = self.inner.clone().invoke(req).await?.into_inner();
        if let Some(e) = &resp.error {
            return Err(ClientError::Action(ControlError::from_pb(e)));
        }
        if resp.result.is_empty() {
            return Ok(Value::Map(Vec::new()));
        }
        cbor::from_slice(&resp.result).map_err(|e| ClientError::Result(e.to_string()))
    }

    /// Events after `after_sequence`, then live ones: `(sequence, control-event)`.
    pub async fn observe(
        &self,
        after_sequence: u64,
    ) -> Result<tonic::Streaming<pb::ControlEvent>, ClientError> {
        Ok(self
            .inner
            .clone()
            .observe(pb::ObserveRequest { after_sequence })
            .await?
            .into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::Bound;
    use crate::config::AgentConfig;
    use mtp_protocol::primitives::CborObject;

    fn agent(dir: &std::path::Path, seed: u8) -> Agent {
        let config = AgentConfig {
            state_dir: dir.to_path_buf(),
            ..AgentConfig::default()
        };
        Agent::new(
            config,
            [seed; 32],
            &Bound {
                sync_addr: "127.0.0.1:7443".parse().unwrap(),
                nats: None,
            },
        )
        .unwrap()
    }

    fn args(entries: Vec<(&str, Value)>) -> Value {
        Value::map(entries)
    }

    #[test]
    fn args_must_be_a_deterministic_map_with_text_keys() {
        assert_eq!(decode_args(&[]).unwrap(), empty());
        assert!(matches!(
            decode_args(&[0x01]),
            Err(ControlError::BadArgs(_))
        ));
        // {1: 2}
        assert!(matches!(
            decode_args(&[0xa1, 0x01, 0x02]),
            Err(ControlError::BadArgs(_))
        ));
        // {"b": 1, "a": 1} — unsorted keys are not deterministic.
        assert!(matches!(
            decode_args(&[0xa2, 0x61, b'b', 0x01, 0x61, b'a', 0x01]),
            Err(ControlError::BadArgs(_))
        ));
        let ok = cbor::to_vec(&args(vec![("a", Value::from(1u64))])).unwrap();
        assert!(decode_args(&ok).is_ok());
    }

    #[tokio::test]
    async fn hello_reset_add_peer_audit_and_unknown_actions() {
        let d1 = tempfile::tempdir().unwrap();
        let d2 = tempfile::tempdir().unwrap();
        let a = agent(d1.path(), 1);
        let b = agent(d2.path(), 2);
        let h = dispatch(&a, "hello", &empty()).await.unwrap();
        assert_eq!(h.get("contract").and_then(Value::as_text), Some(CONTRACT));
        assert_eq!(
            h.get("did").and_then(Value::as_text),
            Some(a.did().as_str())
        );
        assert!(h.get("async").is_none());
        let doc = h.get("did_document").and_then(Value::as_text).unwrap();
        assert_eq!(DidDocument::from_json(doc).unwrap().id, a.did());

        let r = dispatch(
            &a,
            "add_peer",
            &args(vec![
                ("document", Value::text(b.document().to_json())),
                ("roles", Value::Array(vec![Value::text("index")])),
            ]),
        )
        .await
        .unwrap();
        assert_eq!(
            r.get("did").and_then(Value::as_text),
            Some(b.did().as_str())
        );
        assert!(a.peer(&b.did()).is_some());
        assert!(matches!(
            dispatch(&a, "add_peer", &args(vec![("document", Value::text("{}"))])).await,
            Err(ControlError::BadArgs(_))
        ));

        a.raise(None, &CodeOnly(ErrorCode::TransportSecurityFailure), None);
        let au = dispatch(&a, "audit", &args(vec![("diagnostic", Value::Bool(true))]))
            .await
            .unwrap();
        assert_eq!(au.get("count").and_then(Value::as_u64), Some(1));
        assert!(
            au.get("diagnostic")
                .and_then(Value::as_text)
                .unwrap()
                .contains("error_code")
        );

        // reset with another seed is refused; with its own seed it forgets peers and events.
        assert!(matches!(
            dispatch(
                &a,
                "reset",
                &args(vec![("seed", Value::bytes(vec![9; 32]))])
            )
            .await,
            Err(ControlError::BadArgs(_))
        ));
        let r = dispatch(
            &a,
            "reset",
            &args(vec![("seed", Value::bytes(vec![1; 32]))]),
        )
        .await
        .unwrap();
        assert_eq!(
            r.get("did").and_then(Value::as_text),
            Some(a.did().as_str())
        );
        assert!(a.peer(&b.did()).is_none());
        assert!(a.pins.is_empty());
        assert!(a.events.snapshot().is_empty());
        let au = dispatch(&a, "audit", &empty()).await.unwrap();
        assert_eq!(
            au.get("count").and_then(Value::as_u64),
            Some(1),
            "new genesis"
        );

        assert!(matches!(
            dispatch(&a, "no_such_action", &empty()).await,
            Err(ControlError::Unsupported(_))
        ));
        assert!(matches!(
            dispatch(
                &a,
                "transaction",
                &args(vec![("transaction_id", Value::bytes(vec![7; 32]))])
            )
            .await,
            Err(ControlError::NotFound(_))
        ));
        assert!(matches!(
            dispatch(&a, "transaction", &empty()).await,
            Err(ControlError::BadArgs(_))
        ));
    }

    #[tokio::test]
    async fn transaction_reports_state_history_and_errors() {
        let d = tempfile::tempdir().unwrap();
        let a = agent(d.path(), 3);
        let id = *a.new_uuid(mtp_protocol::uuid::ObjectType::Terms).as_bytes();
        let now = a.now();
        a.transactions.begin(id, vec![a.did()], now).unwrap();
        a.transactions
            .apply(
                &id,
                mtp_protocol::state_machine::TxEvent::NegotiationInitiated,
                now,
            )
            .unwrap();
        a.raise(Some(id), &CodeOnly(ErrorCode::RoundTimeout), None);
        let t = dispatch(
            &a,
            "transaction",
            &args(vec![("transaction_id", Value::bytes(id.to_vec()))]),
        )
        .await
        .unwrap();
        assert_eq!(t.get("state").and_then(Value::as_text), Some("negotiating"));
        let history: Vec<&str> = t
            .get("history")
            .and_then(Value::as_array)
            .unwrap()
            .iter()
            .filter_map(Value::as_text)
            .collect();
        assert_eq!(history, ["initiated", "negotiating"]);
        let errors = t.get("errors").and_then(Value::as_array).unwrap();
        assert_eq!(errors.len(), 1);
        let rec = mtp_protocol::error_record::MtpErrorRecord::from_value(&errors[0]).unwrap();
        assert_eq!(rec.code, 3200);
        // The text form of the id is accepted too.
        let text = MtpUuid::from_bytes(&id).unwrap().to_string();
        assert!(
            dispatch(
                &a,
                "transaction",
                &args(vec![("transaction_id", Value::text(text))])
            )
            .await
            .is_ok()
        );
    }

    #[tokio::test]
    async fn codec_actions_round_trip_sign_and_verify() {
        let d = tempfile::tempdir().unwrap();
        let a = agent(d.path(), 4);
        // An MTP-UUID.
        let id = a.new_uuid(mtp_protocol::uuid::ObjectType::Offer);
        let enc = dispatch(
            &a,
            "codec_encode",
            &args(vec![
                ("type", Value::text("mtp_uuid")),
                ("value", Value::text(id.to_string())),
            ]),
        )
        .await
        .unwrap();
        let cbor_bytes = enc.get("cbor").and_then(Value::as_bytes).unwrap().to_vec();
        let parsed = dispatch(
            &a,
            "codec_parse",
            &args(vec![
                ("type", Value::text("mtp_uuid")),
                ("cbor", Value::Bytes(cbor_bytes.clone())),
            ]),
        )
        .await
        .unwrap();
        assert_eq!(parsed.get("ok").and_then(Value::as_bool), Some(true));
        assert_eq!(
            parsed.get("reencoded").and_then(Value::as_bytes),
            Some(cbor_bytes.as_slice())
        );
        let bad = dispatch(
            &a,
            "codec_parse",
            &args(vec![
                ("type", Value::text("offer")),
                ("cbor", Value::bytes(vec![0xa0])),
            ]),
        )
        .await
        .unwrap();
        assert_eq!(bad.get("ok").and_then(Value::as_bool), Some(false));
        assert_eq!(bad.get("code").and_then(Value::as_u64), Some(103));

        // A notification: sign with the agent key, verify via the document.
        let n = mtp_protocol::error_record::Notification {
            kind: mtp_protocol::error_record::NotificationType::OfferRevoked,
            transaction_id: None,
            subject_ref: Some(id),
            error: None,
            timestamp: a.now(),
            signature: None,
            unknown: Default::default(),
        };
        let unsigned = n.to_value();
        let signed = dispatch(
            &a,
            "codec_sign",
            &args(vec![
                ("type", Value::text("notification")),
                ("cbor", Value::Bytes(cbor::to_vec(&unsigned).unwrap())),
            ]),
        )
        .await
        .unwrap();
        let signed_bytes = signed
            .get("cbor")
            .and_then(Value::as_bytes)
            .unwrap()
            .to_vec();
        {
            use mtp_protocol::primitives::SingleSigned;
            let mut n = n;
            n.sign(
                &a.keys.signing,
                a.document().assertion_keys().first().map(|k| k.0.clone()),
            )
            .unwrap();
            assert_eq!(n.to_cbor(), signed_bytes, "same bytes as a typed signature");
        }
        // Signed without a key argument: the key id names the agent's own key.
        let v = dispatch(
            &a,
            "codec_verify",
            &args(vec![
                ("type", Value::text("notification")),
                ("cbor", Value::Bytes(signed_bytes.clone())),
            ]),
        )
        .await
        .unwrap();
        assert_eq!(v.get("ok").and_then(Value::as_bool), Some(true), "{v:?}");
        assert!(matches!(
            dispatch(
                &a,
                "codec_sign",
                &args(vec![
                    ("type", Value::text("notification")),
                    ("cbor", Value::Bytes(cbor::to_vec(&unsigned).unwrap())),
                    ("algorithm", Value::text("SLH-DSA-SHA2-192s")),
                ]),
            )
            .await,
            Err(ControlError::Mtp { .. })
        ));
        let v = dispatch(
            &a,
            "codec_verify",
            &args(vec![
                ("type", Value::text("notification")),
                ("cbor", Value::Bytes(signed_bytes.clone())),
                ("document", Value::text(a.document().to_json())),
            ]),
        )
        .await
        .unwrap();
        assert_eq!(v.get("ok").and_then(Value::as_bool), Some(true), "{v:?}");
        let other = agent(tempfile::tempdir().unwrap().path(), 5);
        let v = dispatch(
            &a,
            "codec_verify",
            &args(vec![
                ("type", Value::text("notification")),
                ("cbor", Value::Bytes(signed_bytes)),
                ("document", Value::text(other.document().to_json())),
            ]),
        )
        .await
        .unwrap();
        assert_eq!(v.get("ok").and_then(Value::as_bool), Some(false));
        assert_eq!(v.get("code").and_then(Value::as_u64), Some(1100));
    }

    #[tokio::test]
    async fn control_server_over_mtls_invoke_and_observe() {
        let d = tempfile::tempdir().unwrap();
        let harness =
            crate::transport::sync::TlsIdentity::from_seed(&[0xaa; 32], "harness").unwrap();
        let config = AgentConfig {
            state_dir: d.path().to_path_buf(),
            control_pins: vec![harness.fingerprint.to_string()],
            ..AgentConfig::default()
        };
        let a = Agent::new(
            config,
            [6; 32],
            &Bound {
                sync_addr: "127.0.0.1:7443".parse().unwrap(),
                nats: None,
            },
        )
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = serve(&a, listener).unwrap();
        let client = ControlClient::connect(&server.endpoint(), a.tls.fingerprint, &harness)
            .await
            .unwrap();
        let h = client.invoke("hello", empty()).await.unwrap();
        assert_eq!(h.get("contract").and_then(Value::as_text), Some(CONTRACT));
        let e = client.invoke("frobnicate", empty()).await.unwrap_err();
        assert_eq!(
            e.action().map(ControlError::kind),
            Some("unsupported_action")
        );

        a.warn(None, ErrorCode::RoundLimitApproaching, "one".into());
        let mut stream = client.observe(0).await.unwrap();
        a.warn(None, ErrorCode::RoundLimitApproaching, "two".into());
        let first = stream.message().await.unwrap().unwrap();
        let second = stream.message().await.unwrap().unwrap();
        assert_eq!((first.sequence, second.sequence), (1, 2));
        let ev = cbor::from_slice(&second.event).unwrap();
        assert_eq!(ev.get("kind").and_then(Value::as_text), Some("warning"));
        let mut from_one = client.observe(1).await.unwrap();
        assert_eq!(from_one.message().await.unwrap().unwrap().sequence, 2);

        // An unpinned client is refused.
        let stranger =
            crate::transport::sync::TlsIdentity::from_seed(&[0xbb; 32], "stranger").unwrap();
        let refused =
            match ControlClient::connect(&server.endpoint(), a.tls.fingerprint, &stranger).await {
                Ok(c) => c.invoke("hello", empty()).await.is_err(),
                Err(_) => true,
            };
        assert!(refused);
        drop(stream);
        drop(from_one);
        server.shutdown().await.unwrap();
    }
}
