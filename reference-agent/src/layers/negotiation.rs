//! Negotiation Layer (SPEC III-C): single-round, multi-round, conditional and multi-party
//! negotiation; strategies; the signed negotiation log in the Terms.
//!
//! The round rules are `mtp_protocol::negotiation::RoundTracker`'s (one tracker per
//! counterparty stream); this module runs the sessions over `Agent/Negotiate` (PROFILE
//! G-09), decides what to answer (the agent's [`Policy`]), counts multi-party acceptances,
//! builds the Terms with the negotiation log (PROFILE G-10) and collects their signatures
//! (PROFILE G-48).
//!
//! Session rules beyond the protocol tracker (PROFILE G-10, G-48 as refined here):
//! - the NIM carries `participants` (the Terms participants, in order) as an extension key;
//! - every Acceptance carries the accepter's `terms_signature` over the Terms built from the
//!   accepted proposal; the proposer of the agreed proposal closes with an Acceptance of the
//!   same digest carrying `terms_signatures` (every participant, in participants order), so
//!   the negotiation ends with fully signed Terms on every side;
//! - multi-party (SPEC III-C-3): the requester coordinates; every round it sends the same
//!   proposal on every stream, with the previous round's counterproposals `relayed`; Terms
//!   exist only when every participant accepted the same digest. An Acceptance that did not
//!   close the negotiation counts, when the coordinator moves on, as a counterproposal
//!   repeating the accepted terms.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use mtp_protocol::audit::{AuditRecord, events as audit_events};
use mtp_protocol::cbor::Value;
use mtp_protocol::crypto::{self, PublicKey};
use mtp_protocol::error_record::{MtpErrorRecord, Notification, NotificationType};
use mtp_protocol::errors::{Coded, ErrorCode, Severity};
use mtp_protocol::identity::Did;
use mtp_protocol::negotiation::{
    Acceptance, Condition, NegotiationInitiation, NegotiationMessage, Proposal, ProposalKind,
    Rejection, RoundError, RoundTracker, Step, Termination, TerminationStatus,
};
use mtp_protocol::primitives::common::{
    AgentSignature, Map, MultiSigned, Number, ObjectError, Participant, Role as PartyRole, Signed,
    SingleSigned, participants_value, read_agent_signatures, read_participants, tdate_value,
    uuid_value,
};
use mtp_protocol::primitives::offer::TimeOrDuration;
use mtp_protocol::primitives::request::DelegationLink;
use mtp_protocol::primitives::{CborObject, Offer, Request as MtpRequest, Terms};
use mtp_protocol::state_machine::{TerminationReason, TxEvent, TxState};
use mtp_protocol::time::Timestamp;
use mtp_protocol::uuid::{MtpUuid, ObjectType};
use mtp_protocol::wire::{self, WireError};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::agent::{Agent, AgentError};
use crate::deal::{Deal, Role};
use crate::events::{Event, EventKind};
use crate::services::control::{ControlError, ControlResult};
use crate::transaction::TxError;
use crate::transport::sync::framing::{
    self, Direction, ErrorContext, FramingError, RemoteError, Rpc,
};
use crate::transport::sync::{ConnectError, pb, session};

/// Deliberate defects of this layer (`crate::faults`).
pub const FAULTS: &[crate::faults::Fault] = &[
    crate::faults::Fault {
        name: "counter-acceptable-proposal",
        breaks: "SPEC-III-C-1-I02",
        description: "under the accept policy, answers a complete proposal with a counterproposal repeating it",
    },
    crate::faults::Fault {
        name: "negotiation-log-drops-counterproposals",
        breaks: "BIND-VII-C-04",
        description: "builds the Terms' negotiation_log from the proposals only, leaving the counterproposals out",
    },
    crate::faults::Fault {
        name: "rejection-keeps-negotiating",
        breaks: "SPEC-IV-B-I03",
        description: "sends a Rejection but leaves the transaction in Negotiating",
    },
    crate::faults::Fault {
        name: "received-rejection-ignored",
        breaks: "SPEC-IV-B-I03",
        description: "as requester, ignores a Rejection from the counterparty and waits on (no 3100, no Failed)",
    },
    crate::faults::Fault {
        name: "ignore-max-rounds",
        breaks: "SPEC-III-C-1-04",
        description: "at the round limit accepts the proposal on the table instead of terminating with exhausted",
    },
    crate::faults::Fault {
        name: "no-round-timeout",
        breaks: "SPEC-III-C-1-02",
        description: "a party waiting for a reply (responder or coordinating requester) never applies the round timeout",
    },
    crate::faults::Fault {
        name: "skip-proposal-signature-check",
        breaks: "SPEC-III-C-1-05",
        description: "accepts negotiation messages whose signature does not verify",
    },
    crate::faults::Fault {
        name: "default-missing-max-rounds",
        breaks: "SPEC-III-C-1-03",
        description: "accepts a NIM without max_rounds, using its own default",
    },
    crate::faults::Fault {
        name: "ignore-non-negotiable",
        breaks: "BIND-VII-A-I01",
        description: "does not check proposals against the Offer's non_negotiable fields",
    },
    crate::faults::Fault {
        name: "revocation-keeps-negotiating",
        breaks: "SPEC-III-B-3-04, SPEC-III-B-3-05",
        description: "an Offer revocation ends its open negotiations without a revoked termination on their streams",
    },
    crate::faults::Fault {
        name: "unsigned-opening-proposal",
        breaks: "SPEC-III-C-1-05",
        description: "signs the opening proposal of its NIM, then stamps a later timestamp on it",
    },
    crate::faults::Fault {
        name: "fiat-only-prices",
        breaks: "SPEC-II-C-03",
        description: "rejects every proposal priced in a unit other than an ISO 4217 code (no compute credits); as requester labels such a price USD",
    },
    crate::faults::Fault {
        name: "fiat-usd-only",
        breaks: "SPEC-II-C-02, SPEC-II-C-03",
        description: "supports USD only: rejects every proposal priced in another unit (EUR, compute credits); as requester labels every price USD",
    },
    crate::faults::Fault {
        name: "fixed-delivery-terms",
        breaks: "SPEC-III-C-2-02",
        description: "rejects any proposal that negotiates the delivery timeline (max_latency_ms)",
    },
];

/// Default round timeout of a `negotiate` without `round_timeout_ms`.
pub const DEFAULT_ROUND_TIMEOUT_MS: u64 = 5_000;
/// Default maximum rounds of a `negotiate` without `max_rounds`.
pub const DEFAULT_MAX_ROUNDS: u64 = 10;
/// How long a server waits for the first frame (the NIM) of a `Negotiate` call.
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(30);
/// Terms proposed by this agent expire at most this long after the first proposal.
const TERMS_VALIDITY_S: i64 = 3_600;
/// Keys of `mtp-terms` that a proposal never carries (the session supplies them).
const SESSION_KEYS: [&str; 6] = [
    "terms_id",
    "participants",
    "offer_ref",
    "request_ref",
    "negotiation_log",
    "signatures",
];
/// Extension keys of this module (PROFILE G-10, G-48 as refined in docs/profile.md).
const EXT_PARTICIPANTS: &str = "participants";
const EXT_RELAYED: &str = "relayed";
const EXT_TERMS_SIGNATURE: &str = "terms_signature";
const EXT_TERMS_SIGNATURES: &str = "terms_signatures";
const EXT_DELEGATION_CHAIN: &str = "delegation_chain";

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Why a negotiation step failed (each variant carries its MTP code, SPEC VI).
#[derive(Debug, thiserror::Error)]
pub enum NegotiationError {
    #[error(transparent)]
    Object(#[from] ObjectError),
    #[error(transparent)]
    Round(#[from] RoundError),
    #[error(transparent)]
    Framing(#[from] FramingError),
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error(transparent)]
    Tx(#[from] TxError),
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error("{what} by {signer}: signature does not verify")]
    BadSignature { what: &'static str, signer: String },
    #[error("authority of the Request refused: {0}")]
    Authority(String, ErrorCode),
    #[error("offer {0} is not known to this agent")]
    UnknownOffer(String),
    #[error("offer {0} is revoked (SPEC-III-B-3-03)")]
    OfferRevoked(String),
    #[error("offer {0} is outside its validity window")]
    OfferExpired(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Remote(Box<RemoteError>),
    #[error("cannot reach {peer}: {reason}")]
    Unreachable { peer: String, reason: String },
    #[error("negotiation terminated: {}", .0.as_str())]
    Terminated(TerminationStatus),
    #[error("incomplete stream: {0}")]
    Incomplete(String),
    #[error("MTP-UUID {0} already names another transaction (SPEC-IX-04)")]
    Reuse(String),
}

impl Coded for NegotiationError {
    fn code(&self) -> ErrorCode {
        match self {
            NegotiationError::Object(e) => e.code(),
            NegotiationError::Round(e) => e.code(),
            NegotiationError::Framing(e) => e.code(),
            NegotiationError::Wire(e) => e.code(),
            NegotiationError::Tx(e) => e.code(),
            NegotiationError::Agent(e) => e.code(),
            NegotiationError::BadSignature { .. } => ErrorCode::SignatureVerificationFailure,
            NegotiationError::Authority(_, c) => *c,
            NegotiationError::UnknownOffer(_)
            | NegotiationError::OfferExpired(_)
            | NegotiationError::Invalid(_) => ErrorCode::SchemaViolation,
            NegotiationError::OfferRevoked(_) => ErrorCode::OfferRevoked,
            NegotiationError::Remote(r) => r.error_code().unwrap_or(ErrorCode::SchemaViolation),
            // No reply from the counterparty: the round cannot complete (SPEC-III-C-1-02).
            NegotiationError::Unreachable { .. } => ErrorCode::RoundTimeout,
            NegotiationError::Terminated(s) => s.code(),
            NegotiationError::Incomplete(_) => ErrorCode::TransientSerializationFailure,
            NegotiationError::Reuse(_) => ErrorCode::UuidReuse,
        }
    }

    fn requirement(&self) -> Option<&'static str> {
        match self {
            NegotiationError::Object(e) => e.requirement(),
            NegotiationError::Round(e) => e.requirement(),
            NegotiationError::BadSignature { .. } => Some("SPEC-III-C-1-05"),
            NegotiationError::OfferRevoked(_) => Some("SPEC-III-B-3-03"),
            NegotiationError::Terminated(s) => Some(s.requirement()),
            _ => None,
        }
    }
}

impl From<ConnectError> for NegotiationError {
    fn from(e: ConnectError) -> Self {
        NegotiationError::Unreachable {
            peer: String::new(),
            reason: e.to_string(),
        }
    }
}

/// A bare registry code as a [`Coded`] error (audit entries of received errors).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct CodeError(pub ErrorCode);

impl Coded for CodeError {
    fn code(&self) -> ErrorCode {
        self.0
    }
}

// ---------------------------------------------------------------------------------------
// Policy and strategies
// ---------------------------------------------------------------------------------------

/// `strategy.kind` (protocol/wire/control.cddl `set_policy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrategyKind {
    /// Accept every valid proposal / counterproposal.
    Accept,
    /// Reject every proposal (responder) or counterproposal (requester).
    Reject,
    /// Counter-propose `rounds` times, then accept.
    Counter,
    /// Concede on price toward the reservation value while improving a dimension the other
    /// side weights; accept once the price is within the reservation (SPEC-III-C-3-02).
    Pareto,
    /// Never answer (the counterparty's round timeout fires).
    Silent,
    /// Answer after `delay_ms`, as `then` (default accept).
    Delay,
}

impl StrategyKind {
    pub fn parse(s: &str) -> Option<StrategyKind> {
        Some(match s {
            "accept" => StrategyKind::Accept,
            "reject" => StrategyKind::Reject,
            "counter" => StrategyKind::Counter,
            "pareto" => StrategyKind::Pareto,
            "silent" => StrategyKind::Silent,
            "delay" => StrategyKind::Delay,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StrategyKind::Accept => "accept",
            StrategyKind::Reject => "reject",
            StrategyKind::Counter => "counter",
            StrategyKind::Pareto => "pareto",
            StrategyKind::Silent => "silent",
            StrategyKind::Delay => "delay",
        }
    }
}

/// Reservation values (`strategy.limits`): `price_floor` (provider), `price_ceiling`
/// (requester), `price_target` (the opening price).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Limits {
    pub price_floor: Option<f64>,
    pub price_ceiling: Option<f64>,
    pub price_target: Option<f64>,
}

/// How this agent answers and conducts negotiations.
#[derive(Clone, Debug, PartialEq)]
pub struct Strategy {
    pub kind: StrategyKind,
    /// `counter`: counter-propose this many times, then accept.
    pub rounds: u64,
    /// `delay`: answer after this long.
    pub delay_ms: u64,
    /// `delay`: what to answer (accept, reject or counter).
    pub then: StrategyKind,
    pub limits: Limits,
}

impl Default for Strategy {
    fn default() -> Strategy {
        Strategy::of(StrategyKind::Accept)
    }
}

impl Strategy {
    pub fn of(kind: StrategyKind) -> Strategy {
        Strategy {
            kind,
            rounds: 1,
            delay_ms: 0,
            then: StrategyKind::Accept,
            limits: Limits::default(),
        }
    }

    /// Reads `strategy` of `set_policy` / `negotiate`.
    pub fn from_value(v: &Value) -> Result<Strategy, String> {
        let kind = v
            .get("kind")
            .and_then(Value::as_text)
            .ok_or("strategy.kind is required")?;
        let kind = StrategyKind::parse(kind).ok_or(format!("unknown strategy kind {kind:?}"))?;
        let uint = |k: &str| -> Result<Option<u64>, String> {
            match v.get(k) {
                None => Ok(None),
                Some(x) => x
                    .as_u64()
                    .map(Some)
                    .ok_or(format!("strategy.{k} must be a uint")),
            }
        };
        let then = match v.get("then").and_then(Value::as_text) {
            Some(t) => match StrategyKind::parse(t) {
                Some(k @ (StrategyKind::Accept | StrategyKind::Reject | StrategyKind::Counter)) => {
                    k
                }
                _ => {
                    return Err(format!(
                        "strategy.then {t:?} must be accept, reject or counter"
                    ));
                }
            },
            None => StrategyKind::Accept,
        };
        let num = |m: &Value, k: &str| m.get(k).and_then(Value::as_f64);
        let limits = match v.get("limits") {
            Some(m) if m.as_map().is_some() => Limits {
                price_floor: num(m, "price_floor"),
                price_ceiling: num(m, "price_ceiling"),
                price_target: num(m, "price_target"),
            },
            Some(_) => return Err("strategy.limits must be a map".into()),
            None => Limits::default(),
        };
        Ok(Strategy {
            kind,
            rounds: uint("rounds")?.unwrap_or(1),
            delay_ms: uint("delay_ms")?.unwrap_or(0),
            then,
            limits,
        })
    }
}

/// The agent's negotiation policy (test-control `set_policy`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Policy {
    pub strategy: Strategy,
    /// Preferred settlement rail put in proposals.
    pub rail: Option<String>,
    /// Preferred verification method put in proposals (PROFILE G-47).
    pub verification: Option<String>,
}

/// How a negotiation ended, as this agent saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Terms agreed and signed by every participant.
    Agreed,
    Terminated(TerminationStatus),
    /// A Fatal error ended it (code).
    Failed(ErrorCode),
}

impl Outcome {
    /// `negotiate-result.outcome`.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Agreed => "agreed",
            Outcome::Terminated(s) => s.as_str(),
            Outcome::Failed(_) => "failed",
        }
    }
}

// ---------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------

/// What both sides derive from the NIM.
#[derive(Clone, Debug)]
pub struct NegotiationContext {
    pub negotiation_id: MtpUuid,
    pub request: MtpRequest,
    pub offer_ref: MtpUuid,
    /// The matched Offer, when this agent knows it.
    pub offer: Option<Offer>,
    /// The Terms participants, in order (PROFILE G-04, G-10).
    pub participants: Vec<Participant>,
    pub round_timeout_ms: u64,
    pub max_rounds: u64,
}

impl NegotiationContext {
    pub fn tx(&self) -> [u8; 32] {
        *self.negotiation_id.as_bytes()
    }

    pub fn requester(&self) -> &str {
        self.request.agent_id.as_str()
    }

    /// More than two participants (SPEC III-C-3).
    pub fn multi_party(&self) -> bool {
        self.participants.len() > 2
    }

    /// Every participant but `me`, in participants order.
    pub fn others(&self, me: &str) -> Vec<String> {
        self.participants
            .iter()
            .map(|p| p.agent_id.as_str().to_owned())
            .filter(|d| d != me)
            .collect()
    }

    fn round_timeout(&self) -> Duration {
        Duration::from_millis(self.round_timeout_ms)
    }
}

/// A negotiation this agent took part in.
#[derive(Clone, Debug)]
pub struct NegotiationRecord {
    pub context: NegotiationContext,
    /// Delegation chains the participants sent with their acceptances (for the Mandate's
    /// delegation attestations, SPEC-III-D-1-01).
    pub chains: BTreeMap<String, Vec<DelegationLink>>,
    pub outcome: Option<Outcome>,
}

enum Command {
    /// End the session with a termination of this status; `send`: also send the signed
    /// termination frame (false when the peer already told us).
    Terminate {
        status: TerminationStatus,
        send: bool,
    },
    /// A Fatal error reported by a peer.
    Fail(ErrorCode),
    /// Stop without any transition (test-control `reset`).
    Stop,
}

#[derive(Debug)]
struct SessionHandle {
    offer_ref: MtpUuid,
    cmd: mpsc::UnboundedSender<Command>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Terminate { status, send } => write!(f, "Terminate({status:?}, {send})"),
            Command::Fail(c) => write!(f, "Fail({c})"),
            Command::Stop => write!(f, "Stop"),
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    policy: Policy,
    offers: BTreeMap<[u8; 32], Offer>,
    requests: BTreeMap<[u8; 32], MtpRequest>,
    revoked: BTreeSet<[u8; 32]>,
    own_chain: Vec<DelegationLink>,
    sessions: BTreeMap<[u8; 32], SessionHandle>,
    records: BTreeMap<[u8; 32], NegotiationRecord>,
    outcomes: BTreeMap<[u8; 32], watch::Sender<Option<Outcome>>>,
}

/// This layer's state inside the agent.
#[derive(Debug, Default)]
pub struct State {
    inner: Mutex<Inner>,
}

impl State {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Sets the policy used from now on (test-control `set_policy`).
pub fn set_policy(agent: &Agent, policy: Policy) {
    agent.negotiation.lock().policy = policy;
}

pub fn policy(agent: &Agent) -> Policy {
    agent.negotiation.lock().policy.clone()
}

/// Makes an Offer known (this agent's own published Offers, and Offers found by discovery):
/// a NIM is answered only for a known, own, unrevoked Offer.
pub fn register_offer(agent: &Agent, offer: Offer) {
    agent
        .negotiation
        .lock()
        .offers
        .insert(*offer.offer_id.as_bytes(), offer);
}

/// Makes a Request known (requests this agent created, for `negotiate`).
pub fn register_request(agent: &Agent, request: MtpRequest) {
    agent
        .negotiation
        .lock()
        .requests
        .insert(*request.request_id.as_bytes(), request);
}

/// An Offer registered here or known to the discovery layer (published, queried, indexed).
pub fn known_offer(agent: &Agent, id: &MtpUuid) -> Option<Offer> {
    let own = agent.negotiation.lock().offers.get(id.as_bytes()).cloned();
    own.or_else(|| super::discovery::known_offer(agent, id))
}

/// A Request registered here or created by the discovery layer (`create_request`).
pub fn known_request(agent: &Agent, id: &MtpUuid) -> Option<MtpRequest> {
    let own = agent
        .negotiation
        .lock()
        .requests
        .get(id.as_bytes())
        .cloned();
    own.or_else(|| super::discovery::own_request(agent, id))
}

/// Revoked as reported here or as known to the discovery layer (SPEC-III-B-3-03).
pub fn is_revoked(agent: &Agent, offer_id: &MtpUuid) -> bool {
    agent
        .negotiation
        .lock()
        .revoked
        .contains(offer_id.as_bytes())
        || super::discovery::is_offer_revoked(agent, offer_id)
}

/// This agent's own delegation chain (Principal → this Agent), sent with its acceptances
/// for the Mandate's delegation attestations. Installed by `provision`.
pub fn set_delegation_chain(agent: &Agent, chain: Vec<DelegationLink>) {
    agent.negotiation.lock().own_chain = chain;
}

/// The chain set with [`set_delegation_chain`], else the one provisioned in the identity
/// layer (Principal first, credentials byte-exact; PROFILE G-04).
pub fn own_delegation_chain(agent: &Agent) -> Vec<DelegationLink> {
    let set = agent.negotiation.lock().own_chain.clone();
    if !set.is_empty() {
        return set;
    }
    let texts = agent.identity.chain_texts();
    let links: Option<Vec<DelegationLink>> = texts
        .iter()
        .map(|text| {
            let c = mtp_protocol::identity::credential::Credential::from_json(text).ok()?;
            let adc = mtp_protocol::identity::delegation::AuthorityDelegation::from_credential(&c)
                .ok()?;
            Some(DelegationLink {
                issuer: mtp_protocol::identity::AnyDid::parse(&adc.issuer).ok()?,
                subject: adc.subject.to_any(),
                credential: text.clone(),
                unknown: Map::new(),
            })
        })
        .collect();
    links.unwrap_or_default()
}

/// The negotiation behind transaction `tx`, if this agent took part in it.
pub fn record(agent: &Agent, tx: &[u8; 32]) -> Option<NegotiationRecord> {
    agent.negotiation.lock().records.get(tx).cloned()
}

/// The outcome, once the negotiation has ended.
pub fn outcome(agent: &Agent, tx: &[u8; 32]) -> Option<Outcome> {
    agent
        .negotiation
        .lock()
        .outcomes
        .get(tx)
        .and_then(|w| *w.borrow())
}

/// Waits up to `timeout` for the negotiation of `tx` to end.
pub async fn wait_outcome(agent: &Agent, tx: &[u8; 32], timeout: Duration) -> Option<Outcome> {
    let mut rx = {
        let mut g = agent.negotiation.lock();
        g.outcomes
            .entry(*tx)
            .or_insert_with(|| watch::channel(None).0)
            .subscribe()
    };
    let res = tokio::time::timeout(timeout, rx.wait_for(Option::is_some)).await;
    match res {
        Ok(Ok(v)) => *v,
        _ => None,
    }
}

/// Forgets policies, offers, requests, records and outcomes (test-control `reset`); running
/// sessions are told to stop.
pub fn reset(agent: &Agent) {
    let mut g = agent.negotiation.lock();
    for (_, s) in std::mem::take(&mut g.sessions) {
        let _ = s.cmd.send(Command::Stop);
    }
    *g = Inner::default();
}

fn publish_outcome(agent: &Agent, tx: &[u8; 32], outcome: Outcome) {
    let mut g = agent.negotiation.lock();
    g.sessions.remove(tx);
    if let Some(r) = g.records.get_mut(tx) {
        r.outcome = Some(outcome);
    }
    let w = g
        .outcomes
        .entry(*tx)
        .or_insert_with(|| watch::channel(None).0);
    w.send_replace(Some(outcome));
}

fn register_session(agent: &Agent, ctx: &NegotiationContext) -> mpsc::UnboundedReceiver<Command> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut g = agent.negotiation.lock();
    g.sessions.insert(
        ctx.tx(),
        SessionHandle {
            offer_ref: ctx.offer_ref,
            cmd: tx,
        },
    );
    g.records.insert(
        ctx.tx(),
        NegotiationRecord {
            context: ctx.clone(),
            chains: BTreeMap::new(),
            outcome: None,
        },
    );
    g.outcomes
        .entry(ctx.tx())
        .or_insert_with(|| watch::channel(None).0);
    rx
}

fn remember_chain(agent: &Agent, tx: &[u8; 32], did: &str, chain: Vec<DelegationLink>) {
    if let Some(r) = agent.negotiation.lock().records.get_mut(tx) {
        r.chains.insert(did.to_owned(), chain);
    }
}

/// Ends the running negotiation of `tx` with a signed termination of `status`
/// (PROFILE G-10). `false` when no session of this agent runs for `tx`.
pub fn terminate(agent: &Agent, tx: &[u8; 32], status: TerminationStatus) -> bool {
    let g = agent.negotiation.lock();
    match g.sessions.get(tx) {
        Some(s) => s
            .cmd
            .send(Command::Terminate { status, send: true })
            .is_ok(),
        None => false,
    }
}

/// The discovery layer reports that an Offer is revoked (SPEC III-B-3): it is remembered
/// (a NIM for it is refused, SPEC-III-B-3-03) and every running negotiation on it ends
/// with a signed `revoked` termination (3101), both sides notified (SPEC-III-B-3-04).
/// Returns the transactions that were told to terminate.
pub fn offer_revoked(agent: &Agent, offer_id: &MtpUuid) -> Vec<[u8; 32]> {
    let mut g = agent.negotiation.lock();
    g.revoked.insert(*offer_id.as_bytes());
    let mut out = Vec::new();
    if agent.fault("revocation-keeps-negotiating") {
        return out;
    }
    for (tx, s) in &g.sessions {
        if s.offer_ref == *offer_id
            && s.cmd
                .send(Command::Terminate {
                    status: TerminationStatus::Revoked,
                    send: true,
                })
                .is_ok()
        {
            out.push(*tx);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Bookkeeping shared with the commitment layer
// ---------------------------------------------------------------------------------------

/// The DID URL of this agent's first assertion key (`key_id` of its signatures, G-02).
pub(crate) fn key_id(agent: &Agent) -> Option<String> {
    agent.key_id()
}

/// The public key `did` signs with (`key_id` when it is one of `did`'s keys).
pub(crate) fn signer_key(
    agent: &Agent,
    did: &str,
    key_id: Option<&str>,
) -> Result<PublicKey, AgentError> {
    agent.signer_key(did, key_id)
}

/// `now + ms`, when representable.
pub(crate) fn now_plus_ms(agent: &Agent, ms: u64) -> Option<Timestamp> {
    agent.now().add_millis(i64::try_from(ms).ok()?)
}

/// Audits a message sent or received (PROFILE G-42) and emits the matching event.
pub(crate) fn audit_message(
    agent: &Agent,
    tx: &[u8; 32],
    sent: bool,
    frame: &wire::Frame,
    peer: &str,
) {
    agent.audit_message(Some(*tx), sent, frame, Some(peer));
}

/// Audits a signature verification (`object` = the MTP-UUID of the signed object, or the
/// SHA-256 of its deterministic CBOR; PROFILE G-42).
pub(crate) fn audit_signature(
    agent: &Agent,
    tx: &[u8; 32],
    object: [u8; 32],
    ok: bool,
    signer: &str,
) {
    agent.audit_signature(Some(*tx), object, ok, signer);
}

/// Records an error received from a peer (audit entry + `error_received` event).
pub(crate) fn record_received_error(agent: &Agent, tx: &[u8; 32], code: u16, peer: &str) {
    let now = agent.now();
    let rec = AuditRecord {
        event: audit_events::ERROR.into(),
        agents: vec![peer.to_owned()],
        error_code: Some(code),
        ..AuditRecord::default()
    };
    if let Err(e) = agent.transactions.record(tx, rec, now) {
        tracing::warn!(error = %e, "cannot audit received error");
    }
    let mut ev = Event::new(EventKind::ErrorReceived, now);
    ev.transaction_id = Some(*tx);
    ev.code = Some(code);
    ev.peer = Some(peer.to_owned());
    agent.events.push(ev);
}

/// Applies `event` unless the transaction already ended; `false` when nothing changed.
pub(crate) fn transition(agent: &Agent, tx: &[u8; 32], event: TxEvent) -> bool {
    match agent.transactions.state(tx) {
        Some(s) if !s.is_terminal() => match agent.transactions.apply(tx, event, agent.now()) {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "transition refused");
                agent.raise(Some(*tx), &e, None);
                false
            }
        },
        _ => false,
    }
}

/// The transaction event of an error `code` that ends a negotiation (SPEC VI, IV-B T3).
pub(crate) fn event_for_code(code: ErrorCode) -> TxEvent {
    match code {
        ErrorCode::CounterpartyRejected => TxEvent::NegotiationTerminated {
            reason: TerminationReason::Rejected,
        },
        ErrorCode::RoundTimeout => TxEvent::NegotiationTerminated {
            reason: TerminationReason::Timeout,
        },
        ErrorCode::RoundLimitExhausted => TxEvent::NegotiationTerminated {
            reason: TerminationReason::Exhausted,
        },
        ErrorCode::NegotiationTerminatedByRevocation | ErrorCode::OfferRevoked => {
            TxEvent::NegotiationTerminated {
                reason: TerminationReason::OfferRevoked,
            }
        }
        c if c.severity() == Severity::Fatal => TxEvent::FatalError { code: c },
        // A Recoverable error whose retries are spent is handled as Fatal (SPEC-VI-02); in a
        // negotiation that is "no valid reply within the round" (PROFILE G-17).
        _ => TxEvent::NegotiationTerminated {
            reason: TerminationReason::Timeout,
        },
    }
}

fn reason_of(status: TerminationStatus) -> TerminationReason {
    match status {
        TerminationStatus::Timeout => TerminationReason::Timeout,
        TerminationStatus::Exhausted => TerminationReason::Exhausted,
        TerminationStatus::Rejected => TerminationReason::Rejected,
        TerminationStatus::Revoked => TerminationReason::OfferRevoked,
    }
}

fn status_of_code(code: u16) -> Option<TerminationStatus> {
    TerminationStatus::ALL
        .into_iter()
        .find(|s| s.code().as_u16() == code)
}

/// Sends a signed notification to `peer` over `Agent/Notify` (PROFILE G-16), retrying a
/// Recoverable failure per SPEC-VI-02.
pub(crate) async fn send_notification(
    agent: &Agent,
    tx: Option<[u8; 32]>,
    peer: &str,
    mut notification: Notification,
) -> Result<(), NegotiationError> {
    notification.sign(&agent.keys.signing, key_id(agent))?;
    let frame = wire::Frame::new("notification", notification.to_value())?;
    let mut failures = 0u32;
    loop {
        let attempt = async {
            let mut client =
                agent
                    .agent_client(peer)
                    .await
                    .map_err(|e| NegotiationError::Unreachable {
                        peer: peer.to_owned(),
                        reason: e.to_string(),
                    })?;
            let req = framing::with_deadline(framing::request(&frame)?, Duration::from_secs(5));
            if let Some(t) = tx {
                audit_message(agent, &t, true, &frame, peer);
            }
            let resp = client
                .notify(req)
                .await
                .map_err(|s| NegotiationError::Remote(Box::new(RemoteError::from_status(&s))))?;
            framing::receive_response(&resp, Rpc::Notify)?;
            Ok::<(), NegotiationError>(())
        };
        match attempt.await {
            Ok(()) => return Ok(()),
            Err(e) => {
                let retryable = matches!(&e, NegotiationError::Unreachable { .. })
                    || matches!(&e, NegotiationError::Remote(r) if r.grpc_code == tonic::Code::Unavailable);
                failures += 1;
                match mtp_protocol::errors::after_failure(ErrorCode::DidResolutionTimeout, failures)
                {
                    mtp_protocol::errors::RetryDecision::Retry { backoff_ms, .. } if retryable => {
                        tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                    }
                    _ => return Err(e),
                }
            }
        }
    }
}

/// A signed notification about `tx` (type, optional subject and error).
pub(crate) fn notification(
    agent: &Agent,
    kind: NotificationType,
    tx: &[u8; 32],
    subject: Option<MtpUuid>,
    error: Option<&(dyn Coded + Send + Sync)>,
    description: String,
) -> Notification {
    let tid = MtpUuid::from_bytes(tx).ok();
    let error = error.map(|e| {
        let mut ctx = ErrorContext::now(&agent.did());
        ctx.transaction_id = tid;
        MtpErrorRecord::from_coded(
            &CodeError(e.code()),
            description,
            ctx.error_id,
            tid,
            ctx.now,
        )
    });
    Notification {
        kind,
        transaction_id: tid,
        subject_ref: subject,
        error,
        timestamp: agent.now(),
        signature: None,
        unknown: Map::new(),
    }
}

/// Verifies a notification against the keys of the transaction's counterparties (the
/// notification names no signer; PROFILE G-16). Returns the signer.
pub(crate) fn verify_notification(
    agent: &Agent,
    tx: &[u8; 32],
    n: &Notification,
    candidates: &[String],
) -> Option<String> {
    let object = crypto::sha256(&n.try_to_cbor().unwrap_or_default());
    for c in candidates {
        if let Ok(pk) = signer_key(
            agent,
            c,
            n.signature.as_ref().and_then(|s| s.key_id.as_deref()),
        ) && n.verify_signature(&pk).is_ok()
        {
            audit_signature(agent, tx, object, true, c);
            return Some(c.clone());
        }
    }
    audit_signature(
        agent,
        tx,
        object,
        false,
        candidates.first().map(String::as_str).unwrap_or(""),
    );
    None
}

// ---------------------------------------------------------------------------------------
// Terms (PROFILE G-10, G-47, G-48)
// ---------------------------------------------------------------------------------------

/// The Terms of an agreed proposal (PROFILE G-48 as refined here): the proposal's `terms`
/// (which must hold every mandatory Terms field) plus `terms_id` = negotiation id, the
/// participants, `offer_ref`, `request_ref` and the negotiation log; no signatures yet.
/// Both sides build identical bytes. The mandatory quality dimensions of the category are
/// checked (SPEC-V-02; PROFILE G-43).
pub fn build_terms(
    ctx: &NegotiationContext,
    accepted: &Proposal,
    log: &[Value],
) -> Result<Terms, NegotiationError> {
    let mut m: Map = accepted
        .terms
        .iter()
        .filter(|(k, _)| !k.as_text().is_some_and(|k| SESSION_KEYS.contains(&k)))
        .cloned()
        .collect();
    let placeholder = |did: &str| {
        Value::map([
            ("agent", Value::text(did)),
            ("algorithm", Value::text("ML-DSA-65")),
            ("value", Value::bytes(vec![0])),
        ])
    };
    m.push((Value::text("terms_id"), uuid_value(&ctx.negotiation_id)));
    m.push((
        Value::text("participants"),
        participants_value(&ctx.participants),
    ));
    m.push((Value::text("offer_ref"), uuid_value(&ctx.offer_ref)));
    m.push((
        Value::text("request_ref"),
        uuid_value(&ctx.request.request_id),
    ));
    let log: Vec<Value> = if crate::transport::test_fault("negotiation-log-drops-counterproposals")
    {
        log.iter()
            .filter(|v| v.get("type").and_then(Value::as_text) != Some("counterproposal"))
            .cloned()
            .collect()
    } else {
        log.to_vec()
    };
    m.push((Value::text("negotiation_log"), Value::Array(log)));
    // Terms need [2* agent-signature] to parse; the placeholders are removed below.
    m.push((
        Value::text("signatures"),
        Value::Array(
            ctx.participants
                .iter()
                .map(|p| placeholder(p.agent_id.as_str()))
                .collect(),
        ),
    ));
    let mut terms = Terms::from_value(&Value::Map(m))?;
    let category = ctx
        .offer
        .as_ref()
        .map(|o| o.value_type.category())
        .unwrap_or_else(|| ctx.request.value_type.category());
    terms
        .check_quality(category)
        .map_err(|e| NegotiationError::Object(ObjectError::Schema(e)))?;
    terms.signatures.clear();
    Ok(terms)
}

/// This agent's signature over `terms` (BIND-VII-C-05; PROFILE G-02).
pub fn sign_terms(agent: &Agent, terms: &Terms) -> Result<AgentSignature, NegotiationError> {
    Ok(terms.sign_as(&agent.did(), &agent.keys.signing, key_id(agent))?)
}

/// Checks one participant's signature over `terms`.
fn verify_terms_signature(
    agent: &Agent,
    tx: &[u8; 32],
    terms: &Terms,
    sig: &AgentSignature,
    expected: &str,
) -> Result<(), NegotiationError> {
    let input = terms.try_signing_input().ok();
    if agent.check_agent_signature(*tx, *terms.terms_id.as_bytes(), input, sig, expected) {
        Ok(())
    } else {
        Err(NegotiationError::BadSignature {
            what: "Terms signature",
            signer: expected.to_owned(),
        })
    }
}

/// The fully signed Terms: `sigs` in participants order, verified as a set
/// (BIND-VII-C-05).
fn assemble_terms(
    agent: &Agent,
    tx: &[u8; 32],
    terms: &Terms,
    sigs: &BTreeMap<String, AgentSignature>,
) -> Result<Terms, NegotiationError> {
    let mut t = terms.clone();
    t.signatures = Vec::with_capacity(t.participants.len());
    for p in &terms.participants {
        let s = sigs
            .get(p.agent_id.as_str())
            .ok_or_else(|| NegotiationError::BadSignature {
                what: "Terms signature (missing)",
                signer: p.agent_id.as_str().to_owned(),
            })?;
        t.signatures.push(s.clone());
    }
    let res = t.verify_signatures(|did, kid| signer_key(agent, did, kid).ok());
    audit_signature(agent, tx, *t.terms_id.as_bytes(), res.is_ok(), &agent.did());
    res?;
    Ok(t)
}

// ---------------------------------------------------------------------------------------
// Dimensions, conditions and strategies (SPEC III-C-2, III-C-3; PROFILE G-10, G-47)
// ---------------------------------------------------------------------------------------

fn map_get<'a>(m: &'a Map, key: &str) -> Option<&'a Value> {
    m.iter()
        .find(|(k, _)| k.as_text() == Some(key))
        .map(|(_, v)| v)
}

fn map_set(m: &mut Map, key: &str, v: Value) {
    match m.iter_mut().find(|(k, _)| k.as_text() == Some(key)) {
        Some((_, slot)) => *slot = v,
        None => m.push((Value::text(key), v)),
    }
}

/// The value at a dotted path of a terms map.
pub fn path_get<'a>(m: &'a Map, path: &str) -> Option<&'a Value> {
    let mut segs = path.split('.');
    let first = segs.next()?;
    segs.try_fold(map_get(m, first)?, |cur, seg| cur.get(seg))
}

/// Sets the value at a dotted path, creating intermediate maps.
pub fn path_set(m: &mut Map, path: &str, v: Value) {
    match path.split_once('.') {
        None => map_set(m, path, v),
        Some((head, rest)) => {
            let mut child = match map_get(m, head) {
                Some(Value::Map(c)) => c.clone(),
                _ => Map::new(),
            };
            path_set(&mut child, rest, v);
            map_set(m, head, Value::Map(child));
        }
    }
}

/// Rounds a money amount to its unit's precision (PROFILE G-03) and reduces it (G-13).
fn money(amount: f64, unit: &str) -> Value {
    let exp = mtp_protocol::verification::minor_unit_exponent(unit).unwrap_or(6);
    let f = 10f64.powi(i32::try_from(exp).unwrap_or(6));
    let v = ((amount.max(0.0) * f).round() / f).max(0.0);
    Number::from_f64(v)
        .map(Number::to_value)
        .unwrap_or(Value::Integer(0))
}

/// `price.amount` and `price.unit` of a terms map.
pub fn price_of(terms: &Map) -> Option<(f64, String)> {
    let p = map_get(terms, "price")?;
    Some((
        p.get("amount")?.as_f64()?,
        p.get("unit")?.as_text()?.to_owned(),
    ))
}

fn set_price(terms: &mut Map, amount: f64) {
    if let Some((_, unit)) = price_of(terms) {
        path_set(terms, "price.amount", money(amount, &unit));
    }
}

/// The opening terms of the requesting side, from the Offer's Terms Template and the
/// policy, covering every normative dimension (SPEC-III-C-2-02; PROFILE G-47): price,
/// delivery timeline, quality, payment terms (rail, timing, escrow), dispute resolution,
/// verification method, expiration, and for more than two participants the attribution
/// methodology.
pub fn baseline_terms(offer: &Offer, policy: &Policy, now: Timestamp, participants: usize) -> Map {
    let t = &offer.terms_template;
    let mut price: Map = vec![
        (Value::text("amount"), t.price.amount.to_value()),
        (Value::text("unit"), Value::text(t.price.unit.as_str())),
    ];
    price.extend(t.price.unknown.iter().cloned());
    let mut delivery: Map = vec![(
        Value::text("method"),
        Value::text(t.delivery.method.as_deref().unwrap_or("synchronous")),
    )];
    for (k, v) in [
        ("earliest", &t.delivery.earliest),
        ("latest", &t.delivery.latest),
    ] {
        if let Some(TimeOrDuration::Time(ts)) = v {
            delivery.push((Value::text(k), tdate_value(*ts)));
        }
    }
    if let Some(ms) = t.delivery.max_latency_ms {
        delivery.push((Value::text("max_latency_ms"), Value::from(ms)));
    }
    if let Some(f) = &t.delivery.format {
        delivery.push((Value::text("format"), Value::text(f.as_str())));
    }
    delivery.extend(t.delivery.unknown.iter().cloned());
    let rail = policy
        .rail
        .clone()
        .or_else(|| t.settlement.as_ref().map(|s| s.rail.clone()))
        .unwrap_or_else(|| "ledger".into());
    let timing = t
        .settlement
        .as_ref()
        .and_then(|s| s.timing)
        .map(|x| x.as_str())
        .unwrap_or("on_verification");
    let mut settlement: Map = vec![
        (Value::text("rail"), Value::text(rail)),
        (Value::text("timing"), Value::text(timing)),
    ];
    if let Some(e) = t.settlement.as_ref().and_then(|s| s.escrow) {
        settlement.push((Value::text("escrow"), Value::Bool(e)));
    }
    let horizon = now.add_secs(TERMS_VALIDITY_S).unwrap_or(now);
    let expiration = if offer.validity_window.not_after < horizon {
        offer.validity_window.not_after
    } else {
        horizon
    };
    let mut m: Map = vec![
        (Value::text("price"), Value::Map(price)),
        (Value::text("delivery"), Value::Map(delivery)),
        (Value::text("quality"), Value::Map(t.quality.clone())),
        (
            Value::text("dispute_resolution"),
            Value::map([("method", Value::text("automated_arbitration"))]),
        ),
        (Value::text("settlement"), Value::Map(settlement)),
        (
            Value::text("verification"),
            Value::map([(
                "method",
                Value::text(policy.verification.as_deref().unwrap_or("attestation")),
            )]),
        ),
        (Value::text("expiration"), tdate_value(expiration)),
    ];
    if participants > 2 {
        m.push((
            Value::text("attribution_method"),
            Value::map([("methodology", Value::text("exact_shapley"))]),
        ));
    }
    m
}

/// Overlays `changes` on `terms`: map values merge key by key, anything else replaces.
pub fn merge_terms(terms: &mut Map, changes: &Map) {
    for (k, v) in changes {
        let Some(key) = k.as_text() else { continue };
        match (map_get(terms, key), v) {
            (Some(Value::Map(old)), Value::Map(new)) => {
                let mut merged = old.clone();
                merge_terms(&mut merged, new);
                map_set(terms, key, Value::Map(merged));
            }
            _ => map_set(terms, key, v.clone()),
        }
    }
}

/// Fills the top-level dimensions a proposal lacks from `baseline`.
fn complete_terms(terms: &Map, baseline: &Map) -> Map {
    let mut out = terms.clone();
    for (k, v) in baseline {
        if let Some(key) = k.as_text()
            && map_get(&out, key).is_none()
        {
            out.push((k.clone(), v.clone()));
        }
    }
    out
}

fn covers(template: &Value, proposed: Option<&Value>) -> bool {
    match (template, proposed) {
        (_, None) => false,
        (Value::Map(tm), Some(p @ Value::Map(_))) => tm.iter().all(|(k, v)| match k.as_text() {
            Some(key) => covers(v, p.get(key)),
            None => true,
        }),
        (t, Some(p)) => match (t.as_f64(), p.as_f64()) {
            (Some(a), Some(b)) => a == b,
            _ => t == p,
        },
    }
}

/// The first `non_negotiable` path of the Offer (PROFILE G-26) that `terms` changes
/// (PROFILE G-10: → rejection).
pub fn non_negotiable_violation(offer: &Offer, terms: &Map) -> Option<String> {
    let template = offer.terms_template.to_value();
    for path in offer.non_negotiable.iter().flatten() {
        let Some(tv) = template
            .as_map()
            .and_then(|m| path_get(&m.to_vec(), path).cloned())
        else {
            continue;
        };
        // Durations in a template's delivery window have no Terms counterpart to compare.
        if matches!(&tv, Value::Text(s) if mtp_protocol::taxonomy::is_iso8601_duration(s)) {
            continue;
        }
        if !covers(&tv, path_get(terms, path)) {
            return Some(path.clone());
        }
    }
    None
}

/// A condition whose `if` or `then` is not a path into the proposed terms (PROFILE G-10).
fn invalid_condition(p: &Proposal) -> Option<String> {
    p.conditions.iter().flatten().find_map(|c| {
        (path_get(&p.terms, &c.if_).is_none() || path_get(&p.terms, &c.then).is_none()).then(|| {
            format!(
                "condition {} -> {} names a term not proposed",
                c.if_, c.then
            )
        })
    })
}

/// Conditional negotiation (PROFILE G-10): a `then` term stands only together with its
/// `if` term. When `next` changes the `if` term of a condition of `previous` but keeps its
/// `then` term, the `then` term returns to its `baseline` value. Conditions whose paths
/// still exist are carried forward.
fn apply_conditions(previous: &Proposal, next: &mut Map, baseline: &Map) -> Option<Vec<Condition>> {
    let conds = previous.conditions.as_ref()?;
    for c in conds {
        let if_changed = path_get(next, &c.if_) != path_get(&previous.terms, &c.if_);
        let then_kept = path_get(next, &c.then) == path_get(&previous.terms, &c.then);
        if if_changed
            && then_kept
            && let Some(base) = path_get(baseline, &c.then).cloned()
        {
            path_set(next, &c.then, base);
        }
    }
    let kept: Vec<Condition> = conds
        .iter()
        .filter(|c| path_get(next, &c.if_).is_some() && path_get(next, &c.then).is_some())
        .cloned()
        .collect();
    (!kept.is_empty()).then_some(kept)
}

/// Improves, at no price cost, a dimension the requesting side weights (SPEC-III-C-3-02):
/// escrow protection, else a lower latency bound. Paths the Offer fixes are left alone.
fn improve_for_requester(terms: &mut Map, request: &MtpRequest, offer: Option<&Offer>) {
    let fixed = |p: &str| {
        offer
            .and_then(|o| o.non_negotiable.as_ref())
            .is_some_and(|n| n.iter().any(|x| p == x || p.starts_with(&format!("{x}."))))
    };
    if !fixed("settlement.escrow")
        && path_get(terms, "settlement.escrow").and_then(Value::as_bool) != Some(true)
        && map_get(terms, "settlement").is_some()
    {
        path_set(terms, "settlement.escrow", Value::Bool(true));
        return;
    }
    if fixed("delivery.max_latency_ms") {
        return;
    }
    let current = path_get(terms, "delivery.max_latency_ms").and_then(Value::as_u64);
    let wanted = request.constraints.max_latency_ms;
    let next = match (current, wanted) {
        (Some(c), Some(w)) if w < c => Some(w),
        (Some(c), _) if c > 1 => Some(c - c / 10),
        (None, Some(w)) => Some(w),
        _ => None,
    };
    if let Some(n) = next {
        path_set(terms, "delivery.max_latency_ms", Value::from(n));
    }
}

/// A price unit the agent refuses under the defects `fiat-only-prices` (anything but an ISO
/// 4217 code) or `fiat-usd-only` (anything but USD); SPEC-II-C-02, SPEC-II-C-03.
fn unit_refused_by_defect(agent: &Agent, unit: &str) -> bool {
    let iso = unit.len() == 3 && unit.bytes().all(|b| b.is_ascii_uppercase());
    (agent.fault("fiat-only-prices") && !iso) || (agent.fault("fiat-usd-only") && unit != "USD")
}

/// The most the requesting Agent may agree to pay: its budget ceiling and the maximum of
/// its Authority Attestation (SPEC-III-A-2-06; PROFILE G-33), when in the price's unit.
fn authority_cap(ctx: &NegotiationContext, unit: &str) -> Option<f64> {
    let c = &ctx.request.constraints.budget_ceiling;
    let m = &ctx.request.authority_attestation.max_tx_value;
    [c.as_ref(), Some(m)]
        .into_iter()
        .flatten()
        .filter(|p| p.unit.as_str() == unit)
        .map(|p| p.amount.as_f64())
        .fold(None, |acc: Option<f64>, a| {
            Some(acc.map_or(a, |x| x.min(a)))
        })
}

/// What to answer.
#[derive(Clone, Debug, PartialEq)]
enum Decision {
    Accept,
    Reject(String),
    Counter(Map),
    Silent,
    Delay(u64, Box<Decision>),
}

/// The responder's reply to `p` under `strategy` (SPEC III-C-1 responses).
fn responder_decision(
    strategy: &Strategy,
    ctx: &NegotiationContext,
    p: &Proposal,
    log: &[Value],
    counters_sent: u64,
    my_last_price: Option<f64>,
) -> Decision {
    if strategy.delay_ms > 0 && strategy.kind != StrategyKind::Delay {
        // `delay_ms` with any other strategy: the same answer, later.
        let inner = Strategy {
            delay_ms: 0,
            ..strategy.clone()
        };
        return Decision::Delay(
            strategy.delay_ms,
            Box::new(responder_decision(
                &inner,
                ctx,
                p,
                log,
                counters_sent,
                my_last_price,
            )),
        );
    }
    if let Some(offer) = &ctx.offer
        && !crate::transport::test_fault("ignore-non-negotiable")
        && let Some(path) = non_negotiable_violation(offer, &p.terms)
    {
        return Decision::Reject(format!("non-negotiable term {path} changed (PROFILE G-10)"));
    }
    if let Some(why) = invalid_condition(p) {
        return Decision::Reject(why);
    }
    if let Some((price, unit)) = price_of(&p.terms)
        && authority_cap(ctx, &unit).is_some_and(|cap| price > cap)
    {
        return Decision::Reject(
            "price above the Request's budget or authority (SPEC-III-A-2-06)".into(),
        );
    }
    let complete = build_terms(ctx, p, log).is_ok();
    let baseline = ctx
        .offer
        .as_ref()
        .map(|o| baseline_terms(o, &Policy::default(), p.timestamp, ctx.participants.len()));
    let completed = |terms: &Map| match &baseline {
        Some(b) => complete_terms(terms, b),
        None => terms.clone(),
    };
    let ask = strategy.limits.price_target.or_else(|| {
        ctx.offer
            .as_ref()
            .map(|o| o.terms_template.price.amount.as_f64())
    });
    let accept_or_complete = || {
        if complete {
            Decision::Accept
        } else if baseline.is_some() {
            Decision::Counter(completed(&p.terms))
        } else {
            Decision::Reject("proposal lacks mandatory Terms fields".into())
        }
    };
    let with_conditions = |mut terms: Map| {
        if let Some(b) = &baseline {
            apply_conditions(p, &mut terms, b);
        }
        terms
    };
    let counter = || {
        let mut terms = completed(&p.terms);
        if let Some((price, _)) = price_of(&terms) {
            let target = ask.unwrap_or(price);
            set_price(
                &mut terms,
                if price < target { target } else { price * 1.1 },
            );
        }
        with_conditions(terms)
    };
    match strategy.kind {
        StrategyKind::Accept => accept_or_complete(),
        StrategyKind::Reject => Decision::Reject("declined by policy".into()),
        StrategyKind::Silent => Decision::Silent,
        StrategyKind::Counter => {
            if counters_sent < strategy.rounds {
                Decision::Counter(counter())
            } else {
                accept_or_complete()
            }
        }
        StrategyKind::Pareto => {
            let floor = strategy.limits.price_floor.or(ask);
            let price = price_of(&p.terms).map(|(a, _)| a);
            match (price, floor) {
                (Some(pr), Some(fl)) if pr >= fl => accept_or_complete(),
                (Some(_), Some(fl)) => {
                    let last = my_last_price.or(ask).unwrap_or(fl).max(fl);
                    let mut terms = completed(&p.terms);
                    set_price(&mut terms, fl.max(last - (last - fl) / 2.0));
                    improve_for_requester(&mut terms, &ctx.request, ctx.offer.as_ref());
                    Decision::Counter(with_conditions(terms))
                }
                _ => accept_or_complete(),
            }
        }
        StrategyKind::Delay => {
            let inner = Strategy {
                kind: strategy.then,
                ..strategy.clone()
            };
            Decision::Delay(
                strategy.delay_ms,
                Box::new(responder_decision(
                    &inner,
                    ctx,
                    p,
                    log,
                    counters_sent,
                    my_last_price,
                )),
            )
        }
    }
}

/// The requester's reaction to counterproposal terms `counter` (the merged demands of every
/// counterparty in a multi-party round) after its own proposal `mine`.
fn requester_decision(
    strategy: &Strategy,
    ctx: &NegotiationContext,
    mine: &Proposal,
    counter: &Map,
    counters_sent: u64,
) -> Decision {
    if strategy.delay_ms > 0 && strategy.kind != StrategyKind::Delay {
        let inner = Strategy {
            delay_ms: 0,
            ..strategy.clone()
        };
        return Decision::Delay(
            strategy.delay_ms,
            Box::new(requester_decision(
                &inner,
                ctx,
                mine,
                counter,
                counters_sent,
            )),
        );
    }
    let my_price = price_of(&mine.terms).map(|(a, _)| a);
    let their_price = price_of(counter).map(|(a, _)| a);
    let cap = price_of(counter).and_then(|(_, unit)| authority_cap(ctx, &unit));
    let concede = |limit: Option<f64>| {
        let mut terms = counter.clone();
        if let (Some(m), Some(t)) = (my_price, their_price) {
            let mid = m + (t - m) / 2.0;
            let limit = match (limit, cap) {
                (Some(l), Some(c)) => Some(l.min(c)),
                (l, c) => l.or(c),
            };
            set_price(&mut terms, limit.map_or(mid, |l| mid.min(l)));
        }
        terms
    };
    // Never beyond the Request's budget or authority, whatever the strategy.
    if let (Some(t), Some(c)) = (their_price, cap)
        && t > c
        && !matches!(
            strategy.kind,
            StrategyKind::Reject | StrategyKind::Silent | StrategyKind::Delay
        )
    {
        return Decision::Counter(concede(Some(c)));
    }
    match strategy.kind {
        StrategyKind::Accept => Decision::Accept,
        StrategyKind::Reject => Decision::Reject("declined by policy".into()),
        StrategyKind::Silent => Decision::Silent,
        StrategyKind::Counter => {
            if counters_sent < strategy.rounds {
                Decision::Counter(concede(None))
            } else {
                Decision::Accept
            }
        }
        StrategyKind::Pareto => {
            let ceiling = strategy.limits.price_ceiling.or_else(|| {
                ctx.request
                    .constraints
                    .budget_ceiling
                    .as_ref()
                    .map(|b| b.amount.as_f64())
            });
            match (their_price, ceiling) {
                (Some(t), Some(c)) if t > c => Decision::Counter(concede(Some(c))),
                _ => Decision::Accept,
            }
        }
        StrategyKind::Delay => {
            let inner = Strategy {
                kind: strategy.then,
                ..strategy.clone()
            };
            Decision::Delay(
                strategy.delay_ms,
                Box::new(requester_decision(
                    &inner,
                    ctx,
                    mine,
                    counter,
                    counters_sent,
                )),
            )
        }
    }
}

/// Multi-party: the requester's proposal terms with every counterparty's changes (in
/// participants order) and the highest price asked.
fn merge_counters(mine: &Proposal, counters: &[&Proposal]) -> Map {
    let mut out = mine.terms.clone();
    for c in counters {
        for (k, v) in &c.terms {
            if let Some(key) = k.as_text()
                && map_get(&mine.terms, key) != Some(v)
            {
                map_set(&mut out, key, v.clone());
            }
        }
    }
    let max = counters
        .iter()
        .filter_map(|c| price_of(&c.terms).map(|(a, _)| a))
        .fold(None, |acc: Option<f64>, a| {
            Some(acc.map_or(a, |m| m.max(a)))
        });
    if let Some(m) = max {
        set_price(&mut out, m);
    }
    out
}

// ---------------------------------------------------------------------------------------
// Message construction
// ---------------------------------------------------------------------------------------

fn did_of(s: &str) -> Result<Did, NegotiationError> {
    Did::parse(s).map_err(|e| NegotiationError::Invalid(format!("{s}: {e}")))
}

fn new_proposal(
    agent: &Agent,
    ctx: &NegotiationContext,
    kind: ProposalKind,
    round: u64,
    terms: Map,
    conditions: Option<Vec<Condition>>,
    unknown: Map,
) -> Result<Proposal, NegotiationError> {
    let mut p = Proposal {
        kind,
        negotiation_id: ctx.negotiation_id,
        round,
        proposer: did_of(&agent.did())?,
        terms,
        conditions,
        timestamp: agent.now(),
        signature: None,
        unknown,
    };
    p.sign(&agent.keys.signing, key_id(agent))?;
    if round == 1 && kind == ProposalKind::Proposal && agent.fault("unsigned-opening-proposal") {
        p.timestamp = p.timestamp.add_secs(1).unwrap_or(p.timestamp);
    }
    Ok(p)
}

fn new_acceptance(
    agent: &Agent,
    ctx: &NegotiationContext,
    round: u64,
    accepted: [u8; 32],
    unknown: Map,
) -> Result<Acceptance, NegotiationError> {
    let mut a = Acceptance {
        negotiation_id: ctx.negotiation_id,
        round,
        accepted,
        signature: None,
        unknown,
    };
    a.sign(&agent.keys.signing, key_id(agent))?;
    Ok(a)
}

fn new_rejection(
    agent: &Agent,
    ctx: &NegotiationContext,
    round: u64,
    reason: String,
) -> Result<Rejection, NegotiationError> {
    let mut r = Rejection {
        negotiation_id: ctx.negotiation_id,
        round,
        reason: Some(reason),
        signature: None,
        unknown: Map::new(),
    };
    r.sign(&agent.keys.signing, key_id(agent))?;
    Ok(r)
}

/// A signed termination (PROFILE G-10, G-17) whose `error` carries the status code.
pub fn new_termination(
    agent: &Agent,
    negotiation_id: MtpUuid,
    status: TerminationStatus,
) -> Result<Termination, NegotiationError> {
    let ctx = ErrorContext::now(&agent.did()).with_transaction(negotiation_id);
    let error = framing::error_record(&NegotiationError::Terminated(status), &ctx);
    let mut t = Termination {
        negotiation_id,
        status,
        error,
        signature: None,
        unknown: Map::new(),
    };
    t.sign(&agent.keys.signing, key_id(agent))?;
    Ok(t)
}

fn message_frame(msg: &NegotiationMessage) -> Result<wire::Frame, NegotiationError> {
    Ok(wire::Frame::new(msg.type_name(), msg.to_value())?)
}

/// The acceptance extension: this agent's Terms signature and its delegation chain.
fn acceptance_extension(agent: &Agent, sig: &AgentSignature) -> Map {
    let mut m: Map = vec![(Value::text(EXT_TERMS_SIGNATURE), sig.to_value())];
    let chain = own_delegation_chain(agent);
    if !chain.is_empty() {
        m.push((
            Value::text(EXT_DELEGATION_CHAIN),
            Value::Array(chain.iter().map(DelegationLink::to_value).collect()),
        ));
    }
    m
}

fn closing_extension(ctx: &NegotiationContext, sigs: &BTreeMap<String, AgentSignature>) -> Map {
    let ordered: Vec<Value> = ctx
        .participants
        .iter()
        .filter_map(|p| sigs.get(p.agent_id.as_str()).map(AgentSignature::to_value))
        .collect();
    vec![(Value::text(EXT_TERMS_SIGNATURES), Value::Array(ordered))]
}

fn ext<'a>(unknown: &'a Map, key: &str) -> Option<&'a Value> {
    map_get(unknown, key)
}

fn read_terms_signature(a: &Acceptance) -> Option<AgentSignature> {
    ext(&a.unknown, EXT_TERMS_SIGNATURE)
        .and_then(|v| AgentSignature::from_value(v, EXT_TERMS_SIGNATURE, "BIND-VII-C-05").ok())
}

fn read_delegation_chain(a: &Acceptance) -> Option<Vec<DelegationLink>> {
    let items = ext(&a.unknown, EXT_DELEGATION_CHAIN)?.as_array()?;
    items
        .iter()
        .map(|v| DelegationLink::from_value(v, EXT_DELEGATION_CHAIN).ok())
        .collect()
}

fn read_relayed(p: &Proposal) -> Result<Vec<Proposal>, NegotiationError> {
    match ext(&p.unknown, EXT_RELAYED) {
        None => Ok(Vec::new()),
        Some(v) => v
            .as_array()
            .ok_or_else(|| NegotiationError::Invalid("relayed must be an array".into()))?
            .iter()
            .map(|x| Proposal::from_value(x).map_err(NegotiationError::from))
            .collect(),
    }
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Verifies a negotiation message's signature by `signer` and audits the check (1100 on
/// failure, SPEC-III-C-1-05).
fn verify_message(
    agent: &Agent,
    tx: &[u8; 32],
    msg: &NegotiationMessage,
    signer: &str,
) -> Result<(), NegotiationError> {
    let object = crypto::sha256(&msg.try_to_cbor().unwrap_or_default());
    let kid = msg.signature().and_then(|s| s.key_id.as_deref());
    let ok = agent.fault("skip-proposal-signature-check")
        || signer_key(agent, signer, kid).is_ok_and(|pk| msg.verify_signature(&pk).is_ok());
    audit_signature(agent, tx, object, ok, signer);
    if ok {
        Ok(())
    } else {
        Err(NegotiationError::BadSignature {
            what: msg.type_name(),
            signer: signer.to_owned(),
        })
    }
}

/// Round-limit warning 3300 (PROFILE G-08: at round `max_rounds − 1`).
fn maybe_warn(agent: &Agent, ctx: &NegotiationContext, round: u64, warned: &mut bool) {
    if !*warned && ctx.max_rounds >= 2 && round + 1 >= ctx.max_rounds {
        *warned = true;
        agent.warn(
            Some(ctx.tx()),
            ErrorCode::RoundLimitApproaching,
            format!("round {round} of {}", ctx.max_rounds),
        );
    }
}

/// Inbound traffic of one stream.
enum Inbound {
    Frame(pb::Frame),
    End,
    Error(Status),
}

fn spawn_reader(
    index: usize,
    mut inbound: tonic::Streaming<pb::Frame>,
    sink: mpsc::UnboundedSender<(usize, Inbound)>,
) {
    tokio::spawn(async move {
        loop {
            let item = match inbound.message().await {
                Ok(Some(f)) => Inbound::Frame(f),
                Ok(None) => Inbound::End,
                Err(s) => Inbound::Error(s),
            };
            let last = !matches!(item, Inbound::Frame(_));
            if sink.send((index, item)).is_err() || last {
                break;
            }
        }
    });
}

/// How a session ends whose transaction another layer ended: a revoked Offer is a
/// `revoked` termination (SPEC-III-B-3-04), anything else the Fatal error recorded last.
fn ended_elsewhere(agent: &Agent, ctx: &NegotiationContext) -> Outcome {
    if is_revoked(agent, &ctx.offer_ref) && !agent.fault("revocation-keeps-negotiating") {
        return Outcome::Terminated(TerminationStatus::Revoked);
    }
    let code = agent
        .transactions
        .get(&ctx.tx())
        .and_then(|r| r.errors.last().copied())
        .and_then(ErrorCode::from_u16)
        .unwrap_or(ErrorCode::UndefinedTransition);
    Outcome::Failed(code)
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}

// ---------------------------------------------------------------------------------------
// Requester: the coordinator
// ---------------------------------------------------------------------------------------

/// What `negotiate` needs (SPEC III-C-1: Request, matched Offer, initial proposal).
#[derive(Clone, Debug)]
pub struct NegotiationSpec {
    /// One counterparty, or several (multi-party, SPEC III-C-3). The Offer's Agent is the
    /// provider; the others are contributors.
    pub counterparties: Vec<String>,
    pub offer: Offer,
    pub request: MtpRequest,
    pub round_timeout_ms: u64,
    pub max_rounds: u64,
    pub strategy: Strategy,
    pub conditions: Option<Vec<Condition>>,
    /// Changes to the opening terms (merged over the Offer's template).
    pub terms: Option<Map>,
}

struct Link {
    peer: String,
    out: Option<mpsc::Sender<pb::Frame>>,
    tracker: RoundTracker,
    /// Tracker before this link's last Acceptance (multi-party re-open).
    snapshot: Option<RoundTracker>,
    reply: Option<Reply>,
    reply_at: Instant,
}

#[derive(Clone)]
enum Reply {
    Accept,
    Counter(Box<Proposal>),
}

enum CPhase {
    AwaitReplies,
    /// Two-party: this agent accepted the counterparty's counterproposal and waits for its
    /// closing Acceptance.
    AwaitClosing {
        deadline: Instant,
    },
    Idle,
    Delayed {
        at: Instant,
        decision: Decision,
    },
    Done(Outcome),
}

struct Coordinator {
    agent: Agent,
    ctx: NegotiationContext,
    tx: [u8; 32],
    links: Vec<Link>,
    log: Vec<Value>,
    /// This agent's last proposal.
    current: Proposal,
    /// Terms of `current` (what acceptances of it sign).
    current_terms: Terms,
    sent_at: Instant,
    strategy: Strategy,
    counters_sent: u64,
    /// Terms signatures collected for the proposal under consideration.
    sigs: BTreeMap<String, AgentSignature>,
    /// Two-party: the counterproposal this agent accepted, and its Terms.
    accepted: Option<(Proposal, Terms)>,
    warned: bool,
    phase: CPhase,
}

/// Opens a negotiation as requester (SPEC III-C-1): reserves the transaction id (the
/// `terms_id`, PROFILE G-16), begins the transaction, sends the signed NIM on
/// `Agent/Negotiate` to every counterparty (Initiated → Negotiating) and runs the rounds in
/// a task whose handle yields the outcome.
pub async fn negotiate(
    agent: &Agent,
    spec: NegotiationSpec,
) -> Result<(MtpUuid, tokio::task::JoinHandle<Outcome>), NegotiationError> {
    let me = agent.did();
    let now = agent.now();
    if spec.request.agent_id.as_str() != me {
        return Err(NegotiationError::Invalid(
            "the Request must be this agent's own".into(),
        ));
    }
    if spec.counterparties.is_empty()
        || spec.counterparties.contains(&me)
        || spec.counterparties.iter().collect::<BTreeSet<_>>().len() != spec.counterparties.len()
    {
        return Err(NegotiationError::Invalid(
            "counterparties must be distinct other agents".into(),
        ));
    }
    let provider = spec.offer.agent_id.as_str().to_owned();
    if !spec.counterparties.contains(&provider) {
        return Err(NegotiationError::Invalid(format!(
            "the Offer's agent {provider} is not a counterparty"
        )));
    }
    if is_revoked(agent, &spec.offer.offer_id) {
        return Err(NegotiationError::OfferRevoked(
            spec.offer.offer_id.to_string(),
        ));
    }
    if !spec.offer.validity_window.contains(now) {
        return Err(NegotiationError::OfferExpired(
            spec.offer.offer_id.to_string(),
        ));
    }
    for c in &spec.counterparties {
        if agent.peer(c).is_none() {
            return Err(NegotiationError::Agent(AgentError::UnknownPeer(c.clone())));
        }
    }
    let mut participants = vec![
        Participant::new(did_of(&provider)?, PartyRole::Provider),
        Participant::new(did_of(&me)?, PartyRole::Requester),
    ];
    for c in spec.counterparties.iter().filter(|c| **c != provider) {
        participants.push(Participant::new(did_of(c)?, PartyRole::Contributor));
    }
    let nid = agent.new_uuid(ObjectType::Terms);
    let tx = *nid.as_bytes();
    let ctx = NegotiationContext {
        negotiation_id: nid,
        request: spec.request.clone(),
        offer_ref: spec.offer.offer_id,
        offer: Some(spec.offer.clone()),
        participants,
        round_timeout_ms: spec.round_timeout_ms,
        max_rounds: spec.max_rounds,
    };
    let policy = policy(agent);
    let mut terms = baseline_terms(&spec.offer, &policy, now, ctx.participants.len());
    if let Some(t) = spec.strategy.limits.price_target.or_else(|| {
        (spec.strategy.kind == StrategyKind::Pareto)
            .then(|| spec.offer.terms_template.price.amount.as_f64() * 0.8)
    }) {
        set_price(&mut terms, t);
    }
    if let Some(changes) = &spec.terms {
        merge_terms(&mut terms, changes);
    }
    if price_of(&terms).is_some_and(|(_, u)| unit_refused_by_defect(agent, &u)) {
        // Defects `fiat-only-prices` / `fiat-usd-only`: the price is labelled USD.
        path_set(&mut terms, "price.unit", Value::text("USD"));
    }
    if let Some((price, unit)) = price_of(&terms)
        && let Some(cap) = authority_cap(&ctx, &unit).filter(|c| price > *c)
    {
        // Never open beyond the Request's budget or authority (SPEC-III-A-2-06).
        set_price(&mut terms, cap);
    }
    let first = new_proposal(
        agent,
        &ctx,
        ProposalKind::Proposal,
        1,
        terms,
        spec.conditions.clone(),
        Map::new(),
    )?;
    if let Some(why) = invalid_condition(&first) {
        return Err(NegotiationError::Invalid(why));
    }
    let log = vec![first.to_value()];
    let current_terms = build_terms(&ctx, &first, &log)?;
    let mut nim = NegotiationInitiation {
        negotiation_id: nid,
        request: spec.request.clone(),
        offer_ref: spec.offer.offer_id,
        proposal: first.clone(),
        round_timeout_ms: spec.round_timeout_ms,
        max_rounds: spec.max_rounds,
        signature: None,
        unknown: vec![(
            Value::text(EXT_PARTICIPANTS),
            participants_value(&ctx.participants),
        )],
    };
    nim.sign(&agent.keys.signing, key_id(agent))?;
    // Structural rules (round_timeout_ms / max_rounds ranges, 0103) are the protocol's.
    let nim = NegotiationInitiation::from_value(&nim.to_value())?;
    let tracker = RoundTracker::start(&nim)?;
    let frame = wire::Frame::new("nim", nim.to_value())?;

    agent.transactions.begin(
        tx,
        ctx.participants
            .iter()
            .map(|p| p.agent_id.as_str().to_owned())
            .collect(),
        now,
    )?;
    let mut deal = Deal::new(tx, Role::Requester, ctx.others(&me));
    deal.offer = Some(spec.offer.clone());
    deal.request = Some(spec.request.clone());
    agent.deals.insert(deal);
    let cmds = register_session(agent, &ctx);
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let mut links = Vec::new();
    let others = ctx.others(&me);
    for (i, peer) in others.iter().enumerate() {
        audit_message(agent, &tx, true, &frame, peer);
        if i == 0 {
            // T1: the first NIM (SPEC-IV-B-I01).
            agent
                .transactions
                .apply(&tx, TxEvent::NegotiationInitiated, agent.now())?;
        }
        match open_stream(agent, peer, &frame, &ctx).await {
            Ok((out, inbound)) => {
                spawn_reader(i, inbound, events_tx.clone());
                links.push(Link {
                    peer: peer.clone(),
                    out: Some(out),
                    tracker: tracker.clone(),
                    snapshot: None,
                    reply: None,
                    reply_at: Instant::now(),
                });
            }
            Err(e) => {
                let code = e.code();
                match &e {
                    NegotiationError::Remote(r) => {
                        record_received_error(agent, &tx, r.code.unwrap_or(code.as_u16()), peer)
                    }
                    _ => agent.raise(Some(tx), &e, Some(peer)),
                }
                // The others already received the NIM: terminate their sessions.
                let status = status_of_code(code.as_u16()).unwrap_or(TerminationStatus::Rejected);
                if let Ok(t) = new_termination(agent, nid, status) {
                    let msg = NegotiationMessage::Termination(t);
                    if let Ok(f) = message_frame(&msg) {
                        for l in &links {
                            if let Some(o) = &l.out
                                && let Ok(pbf) = framing::encode(&f)
                            {
                                audit_message(agent, &tx, true, &f, &l.peer);
                                let _ = o.send(pbf).await;
                            }
                        }
                    }
                }
                transition(agent, &tx, event_for_code(code));
                let outcome = match event_for_code(code) {
                    TxEvent::NegotiationTerminated { .. } => Outcome::Terminated(
                        status_of_code(code.as_u16()).unwrap_or(TerminationStatus::Timeout),
                    ),
                    _ => Outcome::Failed(code),
                };
                publish_outcome(agent, &tx, outcome);
                return Err(e);
            }
        }
    }
    drop(events_tx);
    let mut warned = false;
    maybe_warn(agent, &ctx, 1, &mut warned);
    let coordinator = Coordinator {
        agent: agent.clone(),
        tx,
        links,
        log,
        current: first,
        current_terms,
        sent_at: Instant::now(),
        strategy: spec.strategy,
        counters_sent: 0,
        sigs: BTreeMap::new(),
        accepted: None,
        warned,
        phase: CPhase::AwaitReplies,
        ctx,
    };
    let handle = tokio::spawn(coordinator.run(events_rx, cmds));
    Ok((nid, handle))
}

/// Opens `Agent/Negotiate` to `peer` with the NIM as first frame; the deadline is
/// `round_timeout_ms × max_rounds` (PROFILE G-09).
async fn open_stream(
    agent: &Agent,
    peer: &str,
    nim: &wire::Frame,
    ctx: &NegotiationContext,
) -> Result<(mpsc::Sender<pb::Frame>, tonic::Streaming<pb::Frame>), NegotiationError> {
    let mut client = agent
        .agent_client(peer)
        .await
        .map_err(|e| NegotiationError::Unreachable {
            peer: peer.to_owned(),
            reason: e.to_string(),
        })?;
    let (out, rx) = mpsc::channel::<pb::Frame>(32);
    out.send(framing::encode(nim)?)
        .await
        .map_err(|_| NegotiationError::Invalid("stream closed".into()))?;
    let mut req = Request::new(ReceiverStream::new(rx));
    framing::set_version(req.metadata_mut());
    // The whole negotiation, plus the closing exchange (PROFILE G-48).
    let deadline =
        framing::negotiate_deadline(ctx.round_timeout_ms, ctx.max_rounds) + ctx.round_timeout();
    let req = framing::with_deadline(req, deadline);
    let resp = client
        .negotiate(req)
        .await
        .map_err(|s| NegotiationError::Remote(Box::new(RemoteError::from_status(&s))))?;
    framing::check_version(resp.metadata())?;
    Ok((out, resp.into_inner()))
}

impl Coordinator {
    async fn run(
        mut self,
        mut events: mpsc::UnboundedReceiver<(usize, Inbound)>,
        mut cmds: mpsc::UnboundedReceiver<Command>,
    ) -> Outcome {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut events_open = true;
        loop {
            if let CPhase::Done(o) = self.phase {
                for l in &mut self.links {
                    l.out = None;
                }
                publish_outcome(&self.agent, &self.tx, o);
                return o;
            }
            let deadline = self.deadline();
            tokio::select! {
                ev = events.recv(), if events_open => match ev {
                    Some((i, inbound)) => self.on_inbound(i, inbound).await,
                    None => events_open = false,
                },
                _ = tokio::time::sleep_until(deadline) => self.on_timer().await,
                Some(cmd) = cmds.recv() => self.on_command(cmd).await,
                _ = tick.tick() => {
                    if self.agent.transactions.state(&self.tx).is_none_or(TxState::is_terminal) {
                        // Ended elsewhere (e.g. the discovery layer applied an Offer
                        // revocation): tell the counterparties and stop the session.
                        let outcome = ended_elsewhere(&self.agent, &self.ctx);
                        if let Outcome::Terminated(status) = outcome
                            && let Ok(t) = new_termination(&self.agent, self.ctx.negotiation_id, status)
                        {
                            let msg = NegotiationMessage::Termination(t);
                            for i in 0..self.links.len() {
                                self.send(i, &msg).await;
                            }
                        }
                        self.phase = CPhase::Done(outcome);
                    }
                }
            }
        }
    }

    fn deadline(&self) -> Instant {
        match &self.phase {
            CPhase::AwaitReplies => {
                self.sent_at + self.ctx.round_timeout() + Duration::from_millis(1)
            }
            CPhase::AwaitClosing { deadline } => *deadline,
            CPhase::Delayed { at, .. } => *at,
            CPhase::Idle | CPhase::Done(_) => far_future(),
        }
    }

    async fn send(&mut self, i: usize, msg: &NegotiationMessage) {
        let Ok(frame) = message_frame(msg) else {
            return;
        };
        let Some(link) = self.links.get_mut(i) else {
            return;
        };
        audit_message(&self.agent, &self.tx, true, &frame, &link.peer);
        if let (Some(out), Ok(pbf)) = (&link.out, framing::encode(&frame))
            && out.send(pbf).await.is_err()
        {
            link.out = None;
        }
    }

    async fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Terminate { status, send } => {
                if send {
                    self.terminate_all(status, None).await;
                } else {
                    self.end(Outcome::Terminated(status));
                }
            }
            Command::Fail(code) => self.end(Outcome::Failed(code)),
            Command::Stop => {
                self.phase = CPhase::Done(Outcome::Failed(ErrorCode::UndefinedTransition))
            }
        }
    }

    /// Ends the session locally: the transition and the outcome.
    fn end(&mut self, outcome: Outcome) {
        let event = match outcome {
            Outcome::Agreed => None,
            Outcome::Terminated(s) => Some(TxEvent::NegotiationTerminated {
                reason: reason_of(s),
            }),
            Outcome::Failed(c) => Some(event_for_code(c)),
        };
        if let Some(e) = event {
            transition(&self.agent, &self.tx, e);
        }
        self.phase = CPhase::Done(outcome);
    }

    /// Sends a signed termination on every stream but `except` and ends the session.
    async fn terminate_all(&mut self, status: TerminationStatus, except: Option<usize>) {
        if let Ok(t) = new_termination(&self.agent, self.ctx.negotiation_id, status) {
            let msg = NegotiationMessage::Termination(t);
            for i in 0..self.links.len() {
                if Some(i) != except {
                    self.send(i, &msg).await;
                }
            }
        }
        self.end(Outcome::Terminated(status));
    }

    /// A locally detected violation: raise it, fail the transaction (Fatal → Failed) and
    /// notify every counterparty (SPEC-VI-01; PROFILE G-16).
    async fn fail(&mut self, err: NegotiationError, peer: Option<usize>) {
        let code = err.code();
        let peer_did = peer.and_then(|i| self.links.get(i)).map(|l| l.peer.clone());
        self.agent.raise(Some(self.tx), &err, peer_did.as_deref());
        if matches!(event_for_code(code), TxEvent::NegotiationTerminated { .. }) {
            let status = status_of_code(code.as_u16()).unwrap_or(TerminationStatus::Timeout);
            self.terminate_all(status, None).await;
            return;
        }
        for l in &mut self.links {
            l.out = None;
        }
        let agent = self.agent.clone();
        let tx = self.tx;
        let peers: Vec<String> = self.links.iter().map(|l| l.peer.clone()).collect();
        let description = err.to_string();
        tokio::spawn(async move {
            for p in peers {
                let n = notification(
                    &agent,
                    NotificationType::Error,
                    &tx,
                    None,
                    Some(&CodeError(code)),
                    description.clone(),
                );
                if let Err(e) = send_notification(&agent, Some(tx), &p, n).await {
                    tracing::warn!(error = %e, peer = %p, "cannot notify a fatal error");
                }
            }
        });
        self.end(Outcome::Failed(code));
    }

    async fn on_timer(&mut self) {
        match std::mem::replace(&mut self.phase, CPhase::Idle) {
            CPhase::AwaitReplies => {
                self.phase = CPhase::AwaitReplies;
                if self.agent.fault("no-round-timeout") {
                    // The deadline stays passed: pace the loop instead of spinning.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    return;
                }
                let elapsed = elapsed_ms(self.sent_at);
                let mut timed_out = false;
                for l in &mut self.links {
                    if l.reply.is_none()
                        && l.tracker.on_wait(elapsed)
                            == mtp_protocol::negotiation::NegotiationState::Terminated(
                                TerminationStatus::Timeout,
                            )
                    {
                        timed_out = true;
                    }
                }
                if timed_out {
                    // SPEC-III-C-1-02: no reply within the round timeout.
                    let err = NegotiationError::Terminated(TerminationStatus::Timeout);
                    self.agent.raise(Some(self.tx), &err, None);
                    self.terminate_all(TerminationStatus::Timeout, None).await;
                }
            }
            CPhase::AwaitClosing { .. } => {
                let err = NegotiationError::Terminated(TerminationStatus::Timeout);
                self.agent.raise(Some(self.tx), &err, None);
                self.terminate_all(TerminationStatus::Timeout, None).await;
            }
            CPhase::Delayed { decision, .. } => {
                self.phase = CPhase::AwaitReplies;
                self.execute(decision).await;
            }
            other => self.phase = other,
        }
    }

    async fn on_inbound(&mut self, i: usize, inbound: Inbound) {
        if matches!(self.phase, CPhase::Done(_)) {
            return;
        }
        let Some(peer) = self.links.get(i).map(|l| l.peer.clone()) else {
            return;
        };
        let pbf = match inbound {
            Inbound::Frame(f) => f,
            Inbound::End => {
                if let Some(l) = self.links.get_mut(i) {
                    l.out = None;
                }
                let waiting = match &self.phase {
                    CPhase::AwaitReplies => self.links.get(i).is_some_and(|l| l.reply.is_none()),
                    CPhase::AwaitClosing { .. } => true,
                    _ => false,
                };
                if waiting {
                    // No reply can come any more (SPEC-III-C-1-02).
                    self.terminate_all(TerminationStatus::Timeout, Some(i))
                        .await;
                }
                return;
            }
            Inbound::Error(status) => {
                let remote = RemoteError::from_status(&status);
                if let Some(l) = self.links.get_mut(i) {
                    l.out = None;
                }
                // No MTP code (a transport failure, the call deadline): no reply came in
                // time (PROFILE G-09: DEADLINE_EXCEEDED in Negotiate is 3200).
                let code = remote.error_code().unwrap_or(ErrorCode::RoundTimeout);
                record_received_error(&self.agent, &self.tx, code.as_u16(), &peer);
                let status_t = status_of_code(code.as_u16());
                // Tell the others, then end with the peer's verdict.
                if self.links.len() > 1 {
                    self.terminate_all(status_t.unwrap_or(TerminationStatus::Rejected), Some(i))
                        .await;
                }
                let outcome = match event_for_code(code) {
                    TxEvent::NegotiationTerminated { reason } => {
                        Outcome::Terminated(match reason {
                            TerminationReason::Rejected => TerminationStatus::Rejected,
                            TerminationReason::Timeout => TerminationStatus::Timeout,
                            TerminationReason::Exhausted => TerminationStatus::Exhausted,
                            TerminationReason::OfferRevoked => TerminationStatus::Revoked,
                        })
                    }
                    _ => Outcome::Failed(code),
                };
                if let CPhase::Done(_) = self.phase {
                    // terminate_all already applied the transition; keep the peer's code.
                    self.phase = CPhase::Done(outcome);
                } else {
                    self.end(outcome);
                }
                return;
            }
        };
        let frame = match framing::decode_for(&pbf, Rpc::Negotiate, Direction::Response) {
            Ok(f) => f,
            Err(e) => return self.fail(e.into(), Some(i)).await,
        };
        audit_message(&self.agent, &self.tx, false, &frame, &peer);
        let msg = match NegotiationMessage::from_value(&frame.body) {
            Ok(m) if m.type_name() == frame.frame_type => m,
            Ok(m) => {
                return self
                    .fail(
                        NegotiationError::Invalid(format!(
                            "frame type {} carries a {}",
                            frame.frame_type,
                            m.type_name()
                        )),
                        Some(i),
                    )
                    .await;
            }
            Err(e) => return self.fail(e.into(), Some(i)).await,
        };
        if let Err(e) = verify_message(&self.agent, &self.tx, &msg, &peer) {
            return self.fail(e, Some(i)).await;
        }
        if let NegotiationMessage::Proposal(p) = &msg
            && p.proposer.as_str() != peer
        {
            return self
                .fail(
                    NegotiationError::BadSignature {
                        what: "counterproposal (proposer is not the sender)",
                        signer: peer,
                    },
                    Some(i),
                )
                .await;
        }
        // Two-party closing: the proposer's Acceptance of the counterproposal we accepted.
        if let (CPhase::AwaitClosing { .. }, NegotiationMessage::Acceptance(a)) =
            (&self.phase, &msg)
        {
            return self.on_closing(i, a).await;
        }
        let elapsed = elapsed_ms(self.sent_at);
        let before = self.links[i].tracker.clone();
        match self.links[i].tracker.apply(&msg, elapsed) {
            Ok(Step::Agreed { .. }) => {
                let NegotiationMessage::Acceptance(a) = &msg else {
                    return;
                };
                let Some(sig) = read_terms_signature(a) else {
                    return self
                        .fail(
                            NegotiationError::BadSignature {
                                what: "acceptance without terms_signature (PROFILE G-48)",
                                signer: peer,
                            },
                            Some(i),
                        )
                        .await;
                };
                let terms = self.current_terms.clone();
                if let Err(e) = verify_terms_signature(&self.agent, &self.tx, &terms, &sig, &peer) {
                    return self.fail(e, Some(i)).await;
                }
                if let Some(chain) = read_delegation_chain(a) {
                    remember_chain(&self.agent, &self.tx, &peer, chain);
                }
                self.sigs.insert(peer.clone(), sig);
                let l = &mut self.links[i];
                l.snapshot = Some(before);
                l.reply = Some(Reply::Accept);
                l.reply_at = Instant::now();
                self.round_complete().await;
            }
            Ok(Step::Continue { round }) => {
                let NegotiationMessage::Proposal(p) = msg else {
                    return;
                };
                maybe_warn(&self.agent, &self.ctx, round, &mut self.warned);
                let l = &mut self.links[i];
                l.reply = Some(Reply::Counter(Box::new(p)));
                l.reply_at = Instant::now();
                self.round_complete().await;
            }
            Ok(Step::Terminated(status)) => {
                if self.agent.fault("received-rejection-ignored")
                    && status == TerminationStatus::Rejected
                {
                    return;
                }
                // A Rejection (3100) or the peer's termination.
                record_received_error(&self.agent, &self.tx, status.code().as_u16(), &peer);
                if self.links.len() > 1 {
                    self.terminate_all(status, Some(i)).await;
                } else {
                    self.end(Outcome::Terminated(status));
                }
            }
            Err(RoundError::Timeout { .. }) if self.agent.fault("no-round-timeout") => {}
            Err(e @ (RoundError::Timeout { .. } | RoundError::Exhausted { .. })) => {
                let status = if matches!(e, RoundError::Timeout { .. }) {
                    TerminationStatus::Timeout
                } else {
                    TerminationStatus::Exhausted
                };
                self.agent.raise(Some(self.tx), &e, Some(&peer));
                self.terminate_all(status, None).await;
            }
            Err(e) => self.fail(e.into(), Some(i)).await,
        }
    }

    /// Every counterparty answered the current proposal: close, or go on (SPEC III-C-3).
    async fn round_complete(&mut self) {
        if self.links.iter().any(|l| l.reply.is_none()) {
            return;
        }
        if self
            .links
            .iter()
            .all(|l| matches!(l.reply, Some(Reply::Accept)))
        {
            return self.close_consensus().await;
        }
        let counters: Vec<Proposal> = self
            .links
            .iter()
            .filter_map(|l| match &l.reply {
                Some(Reply::Counter(p)) => Some((**p).clone()),
                _ => None,
            })
            .collect();
        for c in &counters {
            self.log.push(c.to_value());
        }
        let merged = if self.links.len() == 1 {
            counters
                .first()
                .map(|c| c.terms.clone())
                .unwrap_or_default()
        } else {
            merge_counters(&self.current, &counters.iter().collect::<Vec<_>>())
        };
        let decision = requester_decision(
            &self.strategy,
            &self.ctx,
            &self.current,
            &merged,
            self.counters_sent,
        );
        self.execute(decision).await;
    }

    async fn execute(&mut self, decision: Decision) {
        let counters: Vec<(usize, Proposal)> = self
            .links
            .iter()
            .enumerate()
            .filter_map(|(i, l)| match &l.reply {
                Some(Reply::Counter(p)) => Some((i, (**p).clone())),
                _ => None,
            })
            .collect();
        match decision {
            Decision::Accept if self.links.len() == 1 => {
                let Some((_, counter)) = counters.into_iter().next() else {
                    return;
                };
                self.accept_counter(counter).await;
            }
            Decision::Accept => {
                let merged = merge_counters(
                    &self.current,
                    &counters.iter().map(|(_, p)| p).collect::<Vec<_>>(),
                );
                self.propose(merged, counters).await;
            }
            Decision::Counter(terms) => self.propose(terms, counters).await,
            Decision::Reject(reason) => {
                for (i, c) in &counters {
                    if let Ok(r) = new_rejection(&self.agent, &self.ctx, c.round, reason.clone()) {
                        let msg = NegotiationMessage::Rejection(r);
                        let _ = self.links[*i].tracker.apply(&msg, 0);
                        self.send(*i, &msg).await;
                    }
                }
                let others: Vec<usize> = (0..self.links.len())
                    .filter(|i| !counters.iter().any(|(c, _)| c == i))
                    .collect();
                if !others.is_empty()
                    && let Ok(t) = new_termination(
                        &self.agent,
                        self.ctx.negotiation_id,
                        TerminationStatus::Rejected,
                    )
                {
                    let msg = NegotiationMessage::Termination(t);
                    for i in others {
                        self.send(i, &msg).await;
                    }
                }
                self.end(Outcome::Terminated(TerminationStatus::Rejected));
            }
            Decision::Silent => self.phase = CPhase::Idle,
            Decision::Delay(ms, inner) => {
                self.phase = CPhase::Delayed {
                    at: Instant::now() + Duration::from_millis(ms),
                    decision: *inner,
                }
            }
        }
    }

    /// Two-party: accept the counterproposal, signing its Terms (PROFILE G-48).
    async fn accept_counter(&mut self, counter: Proposal) {
        let terms = match build_terms(&self.ctx, &counter, &self.log) {
            Ok(t) => t,
            Err(_) => {
                // Incomplete: answer with the completed terms instead.
                let base = self
                    .ctx
                    .offer
                    .as_ref()
                    .map(|o| baseline_terms(o, &policy(&self.agent), counter.timestamp, 2));
                let terms = match base {
                    Some(b) => complete_terms(&counter.terms, &b),
                    None => counter.terms.clone(),
                };
                let idx: Vec<(usize, Proposal)> = vec![(0, counter)];
                return self.propose(terms, idx).await;
            }
        };
        let sig = match sign_terms(&self.agent, &terms) {
            Ok(s) => s,
            Err(e) => return self.fail(e, None).await,
        };
        let accepted = counter.digest();
        let acc = match new_acceptance(
            &self.agent,
            &self.ctx,
            counter.round,
            accepted,
            acceptance_extension(&self.agent, &sig),
        ) {
            Ok(a) => a,
            Err(e) => return self.fail(e, None).await,
        };
        let msg = NegotiationMessage::Acceptance(acc);
        let elapsed = elapsed_ms(self.links[0].reply_at);
        if let Err(e) = self.links[0].tracker.apply(&msg, elapsed) {
            let status = if matches!(e, RoundError::Exhausted { .. }) {
                TerminationStatus::Exhausted
            } else {
                TerminationStatus::Timeout
            };
            return self.terminate_all(status, None).await;
        }
        self.sigs.clear();
        self.sigs.insert(self.agent.did(), sig);
        self.accepted = Some((counter, terms));
        self.send(0, &msg).await;
        self.phase = CPhase::AwaitClosing {
            deadline: Instant::now() + self.ctx.round_timeout() + Duration::from_millis(1),
        };
    }

    /// The counterparty's closing Acceptance with every Terms signature (PROFILE G-48).
    async fn on_closing(&mut self, i: usize, a: &Acceptance) {
        let Some((counter, terms)) = self.accepted.clone() else {
            return;
        };
        if a.accepted != counter.digest() || a.round != counter.round {
            return self
                .fail(NegotiationError::Round(RoundError::DigestMismatch), Some(i))
                .await;
        }
        let sigs = match ext(&a.unknown, EXT_TERMS_SIGNATURES)
            .map(|v| read_agent_signatures(v, EXT_TERMS_SIGNATURES, 2, "BIND-VII-C-05"))
        {
            Some(Ok(s)) => s,
            _ => {
                return self
                    .fail(
                        NegotiationError::BadSignature {
                            what: "closing acceptance without terms_signatures",
                            signer: self.links[i].peer.clone(),
                        },
                        Some(i),
                    )
                    .await;
            }
        };
        if let Some(chain) = read_delegation_chain(a) {
            remember_chain(&self.agent, &self.tx, &self.links[i].peer.clone(), chain);
        }
        let mut all = BTreeMap::new();
        for s in sigs {
            all.insert(s.agent.clone(), s);
        }
        // Our own signature must be the one we sent.
        if let Some(mine) = self.sigs.get(&self.agent.did())
            && all.get(&self.agent.did()) != Some(mine)
        {
            return self
                .fail(
                    NegotiationError::BadSignature {
                        what: "closing acceptance alters our Terms signature",
                        signer: self.links[i].peer.clone(),
                    },
                    Some(i),
                )
                .await;
        }
        match assemble_terms(&self.agent, &self.tx, &terms, &all) {
            Ok(signed) => {
                self.agent
                    .deals
                    .update(&self.tx, |d| d.terms = Some(signed));
                self.end(Outcome::Agreed);
            }
            Err(e) => self.fail(e, Some(i)).await,
        }
    }

    /// Every participant accepted the current proposal: sign the Terms and close with the
    /// full signature set on every stream (PROFILE G-10 multi-party, G-48).
    async fn close_consensus(&mut self) {
        let sig = match sign_terms(&self.agent, &self.current_terms) {
            Ok(s) => s,
            Err(e) => return self.fail(e, None).await,
        };
        self.sigs.insert(self.agent.did(), sig);
        let signed = match assemble_terms(&self.agent, &self.tx, &self.current_terms, &self.sigs) {
            Ok(t) => t,
            Err(e) => return self.fail(e, None).await,
        };
        let closing = match new_acceptance(
            &self.agent,
            &self.ctx,
            self.current.round,
            self.current.digest(),
            closing_extension(&self.ctx, &self.sigs),
        ) {
            Ok(a) => a,
            Err(e) => return self.fail(e, None).await,
        };
        let msg = NegotiationMessage::Acceptance(closing);
        for i in 0..self.links.len() {
            self.send(i, &msg).await;
        }
        self.agent
            .deals
            .update(&self.tx, |d| d.terms = Some(signed));
        self.end(Outcome::Agreed);
    }

    /// The next proposal, on every stream (same bytes, same digest); in a multi-party
    /// negotiation the round's counterproposals are relayed in it.
    async fn propose(&mut self, terms: Map, counters: Vec<(usize, Proposal)>) {
        let next_round = self.current.round + 2;
        let now = Instant::now();
        // Re-open the streams whose peer accepted (PROFILE G-10 multi-party rule).
        for l in &mut self.links {
            if matches!(l.reply, Some(Reply::Accept)) {
                let Some(mut t) = l.snapshot.take() else {
                    continue;
                };
                let virtual_counter = Proposal {
                    kind: ProposalKind::Counterproposal,
                    negotiation_id: self.ctx.negotiation_id,
                    round: self.current.round + 1,
                    proposer: match Did::parse(&l.peer) {
                        Ok(d) => d,
                        Err(_) => continue,
                    },
                    terms: self.current.terms.clone(),
                    conditions: None,
                    timestamp: self.agent.now(),
                    signature: None,
                    unknown: Map::new(),
                };
                if t.apply(&NegotiationMessage::Proposal(virtual_counter), 0)
                    .is_err()
                {
                    return self.terminate_all(TerminationStatus::Exhausted, None).await;
                }
                l.tracker = t;
            }
        }
        if self.links.iter().any(|l| !l.tracker.may_counter()) {
            // The side that cannot accept must terminate (SPEC-III-C-1-04).
            let err = NegotiationError::Terminated(TerminationStatus::Exhausted);
            self.agent.raise(Some(self.tx), &err, None);
            return self.terminate_all(TerminationStatus::Exhausted, None).await;
        }
        let base = self
            .ctx
            .offer
            .as_ref()
            .map(|o| {
                baseline_terms(
                    o,
                    &policy(&self.agent),
                    self.current.timestamp,
                    self.ctx.participants.len(),
                )
            })
            .unwrap_or_default();
        let mut terms = terms;
        let previous = counters
            .first()
            .map(|(_, c)| c.clone())
            .unwrap_or_else(|| self.current.clone());
        let mut conditions = apply_conditions(&previous, &mut terms, &base);
        if conditions.is_none() {
            conditions = self
                .current
                .conditions
                .clone()
                .map(|cs| {
                    cs.into_iter()
                        .filter(|c| {
                            path_get(&terms, &c.if_).is_some()
                                && path_get(&terms, &c.then).is_some()
                        })
                        .collect::<Vec<_>>()
                })
                .filter(|cs| !cs.is_empty());
        }
        let unknown = if self.ctx.multi_party() {
            vec![(
                Value::text(EXT_RELAYED),
                Value::Array(counters.iter().map(|(_, c)| c.to_value()).collect()),
            )]
        } else {
            Map::new()
        };
        let p = match new_proposal(
            &self.agent,
            &self.ctx,
            ProposalKind::Counterproposal,
            next_round,
            terms,
            conditions,
            unknown,
        ) {
            Ok(p) => p,
            Err(e) => return self.fail(e, None).await,
        };
        let msg = NegotiationMessage::Proposal(p.clone());
        for l in &mut self.links {
            if let Err(e) = l.tracker.apply(&msg, elapsed_ms(l.reply_at)) {
                tracing::debug!(error = %e, peer = %l.peer, "own proposal refused by the round rules");
                let status = if matches!(e, RoundError::Timeout { .. }) {
                    TerminationStatus::Timeout
                } else {
                    TerminationStatus::Exhausted
                };
                return self.terminate_all(status, None).await;
            }
        }
        self.log.push(p.to_value());
        self.current_terms = match build_terms(&self.ctx, &p, &self.log) {
            Ok(t) => t,
            Err(e) => return self.fail(e, None).await,
        };
        self.current = p;
        self.counters_sent += 1;
        self.sigs.clear();
        for l in &mut self.links {
            l.reply = None;
            l.snapshot = None;
        }
        for i in 0..self.links.len() {
            self.send(i, &msg).await;
        }
        self.sent_at = now;
        maybe_warn(&self.agent, &self.ctx, next_round, &mut self.warned);
        self.phase = CPhase::AwaitReplies;
    }
}

// ---------------------------------------------------------------------------------------
// Responder
// ---------------------------------------------------------------------------------------

enum RPhase {
    /// Waiting for the requester's reply to our counterproposal.
    AwaitReply {
        deadline: Instant,
    },
    /// We accepted; waiting for the closing Acceptance (PROFILE G-48).
    AwaitClosing {
        deadline: Instant,
    },
    /// We owe a reply and do not give it (policy `silent`).
    Idle,
    Delayed {
        at: Instant,
        decision: Decision,
    },
    Done(Outcome),
}

struct Responder {
    agent: Agent,
    ctx: NegotiationContext,
    tx: [u8; 32],
    peer: String,
    out: Option<mpsc::Sender<Result<pb::Frame, Status>>>,
    tracker: RoundTracker,
    snapshot: Option<RoundTracker>,
    log: Vec<Value>,
    strategy: Strategy,
    /// The proposal we answer.
    current: Proposal,
    received_at: Instant,
    sent_at: Instant,
    counters_sent: u64,
    my_last_price: Option<f64>,
    /// Our last counterproposal and its Terms.
    mine: Option<(Proposal, Terms)>,
    /// What we accepted: Terms and our signature.
    accepted: Option<(Terms, AgentSignature)>,
    warned: bool,
    phase: RPhase,
}

/// `Agent/Negotiate` (PROFILE G-09): the responder side of SPEC III-C-1. The NIM is
/// validated (schema and parameter ranges 0103, signatures 1100, the Offer ours and not
/// revoked, the Request's authority), the transaction begins under the negotiation id,
/// and a session task answers every proposal per this agent's policy.
pub async fn serve_negotiate(
    agent: Agent,
    request: Request<tonic::Streaming<pb::Frame>>,
) -> Result<Response<super::FrameStream>, Status> {
    let ectx = ErrorContext::now(&agent.did());
    let refuse = |err: &NegotiationError, tx: Option<[u8; 32]>, peer: Option<&str>| {
        agent.raise(tx, err, peer);
        let mut c = ectx;
        c.transaction_id = tx.and_then(|t| MtpUuid::from_bytes(&t).ok());
        framing::status_for(err, Rpc::Negotiate, &c)
    };
    if let Err(e) = framing::check_version(request.metadata()) {
        return Err(refuse(&e.into(), None, None));
    }
    let peer = session(&request).and_then(|s| s.peer_label.clone());
    let mut inbound = request.into_inner();
    let first = match tokio::time::timeout(FIRST_FRAME_TIMEOUT, inbound.message()).await {
        Ok(Ok(Some(f))) => f,
        Ok(Err(s)) => return Err(s),
        _ => {
            let e = NegotiationError::Incomplete("no NIM on the Negotiate stream".into());
            return Err(refuse(&e, None, peer.as_deref()));
        }
    };
    let frame = framing::decode_for(&first, Rpc::Negotiate, Direction::Request)
        .map_err(|e| refuse(&e.into(), None, peer.as_deref()))?;
    if frame.frame_type != "nim" {
        let e = NegotiationError::Invalid(format!(
            "the first Negotiate frame must be a nim, got {}",
            frame.frame_type
        ));
        return Err(refuse(&e, None, peer.as_deref()));
    }
    let mut body = frame.body.clone();
    if agent.fault("default-missing-max-rounds")
        && let Value::Map(entries) = &mut body
    {
        for (k, v) in entries.iter_mut() {
            if k.as_text() == Some("max_rounds") && *v == Value::Null {
                *v = Value::from(DEFAULT_MAX_ROUNDS);
            }
        }
    }
    if agent.fault("skip-chain-principal-check") {
        principal_from_first_link(&mut body);
    }
    let nim = NegotiationInitiation::from_value(&body)
        .map_err(|e| refuse(&e.into(), None, peer.as_deref()))?;
    let tx = *nim.negotiation_id.as_bytes();
    let requester = nim.request.agent_id.as_str().to_owned();
    let participants = match ext(&nim.unknown, EXT_PARTICIPANTS) {
        Some(v) => read_participants(v, EXT_PARTICIPANTS).map_err(|e| {
            refuse(
                &NegotiationError::Object(ObjectError::Schema(e)),
                None,
                peer.as_deref(),
            )
        })?,
        None => vec![
            Participant::new(
                did_of(&agent.did()).map_err(|e| refuse(&e, None, None))?,
                PartyRole::Provider,
            ),
            Participant::new(nim.request.agent_id.clone(), PartyRole::Requester),
        ],
    };
    let me = agent.did();
    let my_role = participants
        .iter()
        .find(|p| p.agent_id.as_str() == me)
        .map(|p| p.role);
    let begin = agent.transactions.begin(
        tx,
        participants
            .iter()
            .map(|p| p.agent_id.as_str().to_owned())
            .collect(),
        agent.now(),
    );
    if let Err(e) = begin {
        // The negotiation id names another transaction: MTP-UUID reuse (SPEC-IX-04).
        let e = match e {
            TxError::Exists(_) => NegotiationError::Reuse(nim.negotiation_id.to_string()),
            other => NegotiationError::Tx(other),
        };
        // A participant reusing the id of its live transaction ends it (0100 Fatal,
        // SPEC-IX-I03; PROFILE G-18); a non-participant's NIM changes nothing.
        if matches!(e, NegotiationError::Reuse(_))
            && let Some(p) = peer.as_deref()
            && let Err(te) = agent.transactions.terminate_by_participant(
                &tx,
                ErrorCode::UuidReuse,
                p,
                agent.now(),
            )
        {
            tracing::error!(error = %te, "cannot terminate the reused transaction");
        }
        return Err(refuse(&e, None, peer.as_deref()));
    }
    audit_message(
        &agent,
        &tx,
        false,
        &frame,
        peer.as_deref().unwrap_or(&requester),
    );
    let fail = |e: NegotiationError| {
        let status = if matches!(e, NegotiationError::Authority(..)) {
            // Already raised by the identity layer.
            let mut c = ectx;
            c.transaction_id = Some(nim.negotiation_id);
            framing::status_for(&e, Rpc::Negotiate, &c)
        } else {
            refuse(&e, Some(tx), peer.as_deref())
        };
        let code = e.code();
        let event = match &e {
            NegotiationError::OfferRevoked(_) => TxEvent::OfferRevokedBeforeNegotiation,
            _ => event_for_code(code),
        };
        let event = match (event, agent.transactions.state(&tx)) {
            (TxEvent::NegotiationTerminated { .. }, Some(TxState::Initiated)) => {
                TxEvent::FatalError {
                    code: ErrorCode::SchemaViolation,
                }
            }
            (ev, _) => ev,
        };
        transition(&agent, &tx, event);
        publish_outcome(&agent, &tx, Outcome::Failed(code));
        status
    };
    // Who is on the other end of the mutually authenticated channel (PROFILE G-32).
    if peer.as_deref().is_some_and(|p| p != requester) {
        return Err(fail(NegotiationError::BadSignature {
            what: "nim (sent by an agent other than the Request's)",
            signer: peer.clone().unwrap_or_default(),
        }));
    }
    let nim_msg = NegotiationMessage::Initiation(Box::new(nim.clone()));
    if let Err(e) = verify_message(&agent, &tx, &nim_msg, &requester) {
        return Err(fail(e));
    }
    if let Err(e) = verify_message(
        &agent,
        &tx,
        &NegotiationMessage::Proposal(nim.proposal.clone()),
        &requester,
    ) {
        return Err(fail(e));
    }
    let req_ok = signer_key(
        &agent,
        &requester,
        nim.request
            .signature
            .as_ref()
            .and_then(|s| s.key_id.as_deref()),
    )
    .is_ok_and(|pk| nim.request.verify_signature(&pk).is_ok());
    audit_signature(
        &agent,
        &tx,
        *nim.request.request_id.as_bytes(),
        req_ok,
        &requester,
    );
    if !req_ok {
        return Err(fail(NegotiationError::BadSignature {
            what: "request",
            signer: requester,
        }));
    }
    let requester_listed = participants
        .iter()
        .any(|p| p.agent_id.as_str() == requester && p.role == PartyRole::Requester);
    let providers = participants
        .iter()
        .filter(|p| p.role == PartyRole::Provider)
        .count();
    if !requester_listed || providers != 1 {
        return Err(fail(NegotiationError::Invalid(
            "participants must list the Request's agent as requester and one provider".into(),
        )));
    }
    let offer = known_offer(&agent, &nim.offer_ref);
    if is_revoked(&agent, &nim.offer_ref) {
        return Err(fail(NegotiationError::OfferRevoked(
            nim.offer_ref.to_string(),
        )));
    }
    let role = match my_role {
        Some(PartyRole::Provider) => match &offer {
            Some(o) if o.agent_id.as_str() == me => {
                if !o.validity_window.contains(agent.now()) {
                    return Err(fail(NegotiationError::OfferExpired(o.offer_id.to_string())));
                }
                Role::Provider
            }
            _ => {
                return Err(fail(NegotiationError::UnknownOffer(
                    nim.offer_ref.to_string(),
                )));
            }
        },
        Some(PartyRole::Contributor) => Role::Contributor,
        _ => {
            return Err(fail(NegotiationError::Invalid(
                "this agent is not a provider or contributor of the negotiation".into(),
            )));
        }
    };
    if let Err(e) =
        crate::layers::identity::verify_request_authority(&agent, &nim.request, Some(tx)).await
    {
        let code = e.code();
        return Err(fail(NegotiationError::Authority(e.to_string(), code)));
    }
    let tracker = match RoundTracker::start(&nim) {
        Ok(t) => t,
        Err(e) => return Err(fail(e.into())),
    };
    // T1 (SPEC-IV-B-I01).
    if let Err(e) = agent
        .transactions
        .apply(&tx, TxEvent::NegotiationInitiated, agent.now())
    {
        return Err(fail(e.into()));
    }
    let ctx = NegotiationContext {
        negotiation_id: nim.negotiation_id,
        request: nim.request.clone(),
        offer_ref: nim.offer_ref,
        offer: offer.clone(),
        participants,
        round_timeout_ms: nim.round_timeout_ms,
        max_rounds: nim.max_rounds,
    };
    let mut deal = Deal::new(tx, role, ctx.others(&me));
    deal.offer = offer;
    deal.request = Some(nim.request.clone());
    agent.deals.insert(deal);
    let cmds = register_session(&agent, &ctx);
    let (out_tx, out_rx) = mpsc::channel::<Result<pb::Frame, Status>>(32);
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    spawn_reader(0, inbound, events_tx);
    let strategy = policy(&agent).strategy;
    let now = Instant::now();
    let responder = Responder {
        agent: agent.clone(),
        tx,
        peer: ctx.requester().to_owned(),
        out: Some(out_tx),
        tracker,
        snapshot: None,
        log: Vec::new(),
        strategy,
        current: nim.proposal.clone(),
        received_at: now,
        sent_at: now,
        counters_sent: 0,
        my_last_price: None,
        mine: None,
        accepted: None,
        warned: false,
        phase: RPhase::Idle,
        ctx,
    };
    tokio::spawn(responder.run(nim.proposal, events_rx, cmds));
    let mut resp: Response<super::FrameStream> =
        Response::new(Box::pin(ReceiverStream::new(out_rx)));
    framing::set_version(resp.metadata_mut());
    Ok(resp)
}

impl Responder {
    async fn run(
        mut self,
        first: Proposal,
        mut events: mpsc::UnboundedReceiver<(usize, Inbound)>,
        mut cmds: mpsc::UnboundedReceiver<Command>,
    ) -> Outcome {
        self.on_proposal(first, Vec::new()).await;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut events_open = true;
        let hard_deadline = Instant::now()
            + framing::negotiate_deadline(self.ctx.round_timeout_ms, self.ctx.max_rounds)
            + self.ctx.round_timeout() * 2;
        loop {
            if let RPhase::Done(o) = self.phase {
                self.out = None;
                publish_outcome(&self.agent, &self.tx, o);
                return o;
            }
            let deadline = self.deadline().min(hard_deadline);
            tokio::select! {
                ev = events.recv(), if events_open => match ev {
                    Some((_, inbound)) => self.on_inbound(inbound).await,
                    None => events_open = false,
                },
                _ = tokio::time::sleep_until(deadline) => {
                    if Instant::now() >= hard_deadline {
                        self.end(Outcome::Terminated(TerminationStatus::Timeout));
                    } else {
                        self.on_timer().await;
                    }
                }
                Some(cmd) = cmds.recv() => match cmd {
                    Command::Terminate { status, send } => {
                        if send {
                            self.terminate(status).await;
                        } else {
                            self.end(Outcome::Terminated(status));
                        }
                    }
                    Command::Fail(code) => self.end(Outcome::Failed(code)),
                    Command::Stop => {
                        self.phase = RPhase::Done(Outcome::Failed(ErrorCode::UndefinedTransition))
                    }
                },
                _ = tick.tick() => {
                    if self.agent.transactions.state(&self.tx).is_none_or(TxState::is_terminal) {
                        let outcome = ended_elsewhere(&self.agent, &self.ctx);
                        if let Outcome::Terminated(status) = outcome
                            && let Ok(t) = new_termination(&self.agent, self.ctx.negotiation_id, status)
                        {
                            self.send(&NegotiationMessage::Termination(t)).await;
                        }
                        self.phase = RPhase::Done(outcome);
                    }
                }
            }
        }
    }

    fn deadline(&self) -> Instant {
        match &self.phase {
            RPhase::AwaitReply { deadline } | RPhase::AwaitClosing { deadline } => *deadline,
            RPhase::Delayed { at, .. } => *at,
            RPhase::Idle | RPhase::Done(_) => far_future(),
        }
    }

    async fn send(&mut self, msg: &NegotiationMessage) -> bool {
        let Ok(frame) = message_frame(msg) else {
            return false;
        };
        audit_message(&self.agent, &self.tx, true, &frame, &self.peer);
        self.sent_at = Instant::now();
        match (&self.out, framing::encode(&frame)) {
            (Some(out), Ok(pbf)) => {
                if out.send(Ok(pbf)).await.is_err() {
                    self.out = None;
                    false
                } else {
                    true
                }
            }
            _ => false,
        }
    }

    fn end(&mut self, outcome: Outcome) {
        let event = match outcome {
            Outcome::Agreed => None,
            Outcome::Terminated(s) => Some(TxEvent::NegotiationTerminated {
                reason: reason_of(s),
            }),
            Outcome::Failed(c) => Some(event_for_code(c)),
        };
        if let Some(e) = event {
            transition(&self.agent, &self.tx, e);
        }
        self.phase = RPhase::Done(outcome);
    }

    /// Sends a signed termination and ends (PROFILE G-10, G-17). When the stream is gone
    /// the requester is told with a `negotiation_terminated` notification (PROFILE G-16).
    async fn terminate(&mut self, status: TerminationStatus) {
        let mut delivered = false;
        if let Ok(t) = new_termination(&self.agent, self.ctx.negotiation_id, status) {
            delivered = self.send(&NegotiationMessage::Termination(t)).await;
        }
        if !delivered {
            let agent = self.agent.clone();
            let tx = self.tx;
            let peer = self.peer.clone();
            tokio::spawn(async move {
                let n = notification(
                    &agent,
                    NotificationType::NegotiationTerminated,
                    &tx,
                    None,
                    Some(&NegotiationError::Terminated(status)),
                    format!("negotiation terminated: {}", status.as_str()),
                );
                let _ = send_notification(&agent, Some(tx), &peer, n).await;
            });
        }
        self.end(Outcome::Terminated(status));
    }

    /// A violation by the requester: raise, answer the call with the error status (the
    /// `mtp-error-bin` trailer is the notification, PROFILE G-09/G-16), fail the transaction.
    async fn fail(&mut self, err: NegotiationError) {
        let code = err.code();
        self.agent.raise(Some(self.tx), &err, Some(&self.peer));
        if matches!(event_for_code(code), TxEvent::NegotiationTerminated { .. }) {
            let status = status_of_code(code.as_u16()).unwrap_or(TerminationStatus::Timeout);
            return self.terminate(status).await;
        }
        let ectx = ErrorContext::now(&self.agent.did()).with_transaction(self.ctx.negotiation_id);
        if let Some(out) = self.out.take() {
            let _ = out
                .send(Err(framing::status_for(&err, Rpc::Negotiate, &ectx)))
                .await;
        }
        self.end(Outcome::Failed(code));
    }

    async fn on_timer(&mut self) {
        match std::mem::replace(&mut self.phase, RPhase::Idle) {
            RPhase::AwaitReply { deadline } => {
                if self.agent.fault("no-round-timeout") {
                    self.phase = RPhase::Idle;
                    return;
                }
                self.phase = RPhase::AwaitReply { deadline };
                let state = self.tracker.on_wait(elapsed_ms(self.sent_at));
                if state
                    == mtp_protocol::negotiation::NegotiationState::Terminated(
                        TerminationStatus::Timeout,
                    )
                {
                    let err = NegotiationError::Terminated(TerminationStatus::Timeout);
                    self.agent.raise(Some(self.tx), &err, Some(&self.peer));
                    self.terminate(TerminationStatus::Timeout).await;
                }
            }
            RPhase::AwaitClosing { .. } => {
                let err = NegotiationError::Terminated(TerminationStatus::Timeout);
                self.agent.raise(Some(self.tx), &err, Some(&self.peer));
                self.terminate(TerminationStatus::Timeout).await;
            }
            RPhase::Delayed { decision, .. } => self.execute(decision).await,
            other => self.phase = other,
        }
    }

    /// A proposal to answer (the NIM's, or a counterproposal), with its relayed messages.
    async fn on_proposal(&mut self, p: Proposal, relayed: Vec<Proposal>) {
        for r in relayed {
            self.log.push(r.to_value());
        }
        self.log.push(p.to_value());
        self.received_at = Instant::now();
        maybe_warn(&self.agent, &self.ctx, p.round, &mut self.warned);
        let decision = responder_decision(
            &self.strategy,
            &self.ctx,
            &p,
            &self.log,
            self.counters_sent,
            self.my_last_price,
        );
        let decision = match decision {
            Decision::Accept if self.agent.fault("counter-acceptable-proposal") => {
                Decision::Counter(p.terms.clone())
            }
            _ if price_of(&p.terms)
                .is_some_and(|(_, u)| unit_refused_by_defect(&self.agent, &u)) =>
            {
                Decision::Reject("only ISO 4217 prices are supported".into())
            }
            d if self.agent.fault("fixed-delivery-terms")
                && path_get(&p.terms, "delivery.max_latency_ms").is_some() =>
            {
                let _ = d;
                Decision::Reject("delivery terms are fixed".into())
            }
            d => d,
        };
        self.current = p;
        self.execute(decision).await;
    }

    async fn execute(&mut self, decision: Decision) {
        let decision = match decision {
            Decision::Counter(_)
                if !self.tracker.may_counter() && self.agent.fault("ignore-max-rounds") =>
            {
                Decision::Accept
            }
            d => d,
        };
        let p = self.current.clone();
        let elapsed = elapsed_ms(self.received_at);
        match decision {
            Decision::Accept => {
                let terms = match build_terms(&self.ctx, &p, &self.log) {
                    Ok(t) => t,
                    Err(e) => return self.fail(e).await,
                };
                let sig = match sign_terms(&self.agent, &terms) {
                    Ok(s) => s,
                    Err(e) => return self.fail(e).await,
                };
                let acc = match new_acceptance(
                    &self.agent,
                    &self.ctx,
                    p.round,
                    p.digest(),
                    acceptance_extension(&self.agent, &sig),
                ) {
                    Ok(a) => a,
                    Err(e) => return self.fail(e).await,
                };
                let msg = NegotiationMessage::Acceptance(acc);
                let before = self.tracker.clone();
                if let Err(e) = self.tracker.apply(&msg, elapsed) {
                    return self.round_error(e).await;
                }
                self.snapshot = Some(before);
                self.accepted = Some((terms, sig));
                self.send(&msg).await;
                self.phase = RPhase::AwaitClosing {
                    deadline: Instant::now() + self.ctx.round_timeout() + Duration::from_millis(1),
                };
            }
            Decision::Reject(reason) => {
                let r = match new_rejection(&self.agent, &self.ctx, p.round, reason) {
                    Ok(r) => r,
                    Err(e) => return self.fail(e).await,
                };
                let msg = NegotiationMessage::Rejection(r);
                let _ = self.tracker.apply(&msg, elapsed);
                self.send(&msg).await;
                if self.agent.fault("rejection-keeps-negotiating") {
                    self.phase = RPhase::Idle;
                    return;
                }
                self.end(Outcome::Terminated(TerminationStatus::Rejected));
            }
            Decision::Counter(terms) => {
                if !self.tracker.may_counter() {
                    // The party that cannot accept must terminate (SPEC-III-C-1-04).
                    let err = NegotiationError::Terminated(TerminationStatus::Exhausted);
                    self.agent.raise(Some(self.tx), &err, Some(&self.peer));
                    return self.terminate(TerminationStatus::Exhausted).await;
                }
                let conditions = {
                    let base = self
                        .ctx
                        .offer
                        .as_ref()
                        .map(|o| {
                            baseline_terms(
                                o,
                                &Policy::default(),
                                p.timestamp,
                                self.ctx.participants.len(),
                            )
                        })
                        .unwrap_or_default();
                    let mut t = terms.clone();
                    let c = apply_conditions(&p, &mut t, &base);
                    (t, c)
                };
                let (terms, conditions) = conditions;
                let c = match new_proposal(
                    &self.agent,
                    &self.ctx,
                    ProposalKind::Counterproposal,
                    p.round + 1,
                    terms,
                    conditions,
                    Map::new(),
                ) {
                    Ok(c) => c,
                    Err(e) => return self.fail(e).await,
                };
                let msg = NegotiationMessage::Proposal(c.clone());
                if let Err(e) = self.tracker.apply(&msg, elapsed) {
                    return self.round_error(e).await;
                }
                // Two-party: our counterproposal is in the log now; multi-party: it comes
                // back relayed in the coordinator's next proposal.
                if !self.ctx.multi_party() {
                    self.log.push(c.to_value());
                }
                let mut log = self.log.clone();
                if self.ctx.multi_party() {
                    log.push(c.to_value());
                }
                let terms = build_terms(&self.ctx, &c, &log).ok();
                self.my_last_price = price_of(&c.terms).map(|(a, _)| a);
                self.counters_sent += 1;
                self.mine = terms.map(|t| (c.clone(), t));
                maybe_warn(&self.agent, &self.ctx, c.round, &mut self.warned);
                self.send(&msg).await;
                self.phase = RPhase::AwaitReply {
                    deadline: Instant::now() + self.ctx.round_timeout() + Duration::from_millis(1),
                };
            }
            Decision::Silent => self.phase = RPhase::Idle,
            Decision::Delay(ms, inner) => {
                self.phase = RPhase::Delayed {
                    at: Instant::now() + Duration::from_millis(ms),
                    decision: *inner,
                }
            }
        }
    }

    async fn round_error(&mut self, e: RoundError) {
        let status = match e {
            RoundError::Timeout { .. } => TerminationStatus::Timeout,
            RoundError::Exhausted { .. } => TerminationStatus::Exhausted,
            other => return self.fail(other.into()).await,
        };
        self.agent.raise(Some(self.tx), &e, Some(&self.peer));
        self.terminate(status).await;
    }

    async fn on_inbound(&mut self, inbound: Inbound) {
        if matches!(self.phase, RPhase::Done(_)) {
            return;
        }
        let pbf = match inbound {
            Inbound::Frame(f) => f,
            Inbound::End | Inbound::Error(_) => {
                // The requester went away without a termination: no reply will come.
                if !matches!(self.phase, RPhase::Done(_)) {
                    self.end(Outcome::Terminated(TerminationStatus::Timeout));
                }
                return;
            }
        };
        let frame = match framing::decode_for(&pbf, Rpc::Negotiate, Direction::Request) {
            Ok(f) => f,
            Err(e) => return self.fail(e.into()).await,
        };
        audit_message(&self.agent, &self.tx, false, &frame, &self.peer);
        let msg = match NegotiationMessage::from_value(&frame.body) {
            Ok(m)
                if m.type_name() == frame.frame_type
                    && !matches!(m, NegotiationMessage::Initiation(_)) =>
            {
                m
            }
            Ok(m) => {
                return self
                    .fail(NegotiationError::Invalid(format!(
                        "unexpected {} in frame {}",
                        m.type_name(),
                        frame.frame_type
                    )))
                    .await;
            }
            Err(e) => return self.fail(e.into()).await,
        };
        let peer = self.peer.clone();
        if let Err(e) = verify_message(&self.agent, &self.tx, &msg, &peer) {
            return self.fail(e).await;
        }
        if let NegotiationMessage::Proposal(p) = &msg
            && p.proposer.as_str() != peer
        {
            return self
                .fail(NegotiationError::BadSignature {
                    what: "proposal (proposer is not the sender)",
                    signer: peer,
                })
                .await;
        }
        if let (RPhase::AwaitClosing { .. }, NegotiationMessage::Acceptance(a)) =
            (&self.phase, &msg)
        {
            return self.on_closing(a).await;
        }
        if let (RPhase::AwaitClosing { .. }, NegotiationMessage::Proposal(p)) = (&self.phase, &msg)
            && self.ctx.multi_party()
        {
            // Multi-party: the coordinator moves on; our Acceptance counts as a
            // counterproposal repeating the accepted terms (PROFILE G-10).
            if let Some(mut t) = self.snapshot.take() {
                let v = Proposal {
                    kind: ProposalKind::Counterproposal,
                    negotiation_id: self.ctx.negotiation_id,
                    round: p.round.saturating_sub(1),
                    proposer: match did_of(&self.agent.did()) {
                        Ok(d) => d,
                        Err(e) => return self.fail(e).await,
                    },
                    terms: self.current.terms.clone(),
                    conditions: None,
                    timestamp: self.agent.now(),
                    signature: None,
                    unknown: Map::new(),
                };
                if let Err(e) = t.apply(&NegotiationMessage::Proposal(v), 0) {
                    return self.round_error(e).await;
                }
                self.tracker = t;
                self.accepted = None;
            }
        }
        let elapsed = elapsed_ms(self.sent_at);
        match self.tracker.apply(&msg, elapsed) {
            Ok(Step::Continue { .. }) => {
                let NegotiationMessage::Proposal(p) = msg else {
                    return;
                };
                let relayed = if self.ctx.multi_party() {
                    match read_relayed(&p) {
                        Ok(r) => r,
                        Err(e) => return self.fail(e).await,
                    }
                } else {
                    Vec::new()
                };
                for r in &relayed {
                    // Relayed counterproposals are signed by their proposers.
                    if let Err(e) = verify_message(
                        &self.agent,
                        &self.tx,
                        &NegotiationMessage::Proposal(r.clone()),
                        r.proposer.as_str(),
                    ) {
                        return self.fail(e).await;
                    }
                }
                self.on_proposal(p, relayed).await;
            }
            Ok(Step::Agreed { .. }) => {
                // The requester accepted our counterproposal: close (PROFILE G-48).
                let NegotiationMessage::Acceptance(a) = &msg else {
                    return;
                };
                let Some((_, terms)) = self.mine.clone() else {
                    return self
                        .fail(NegotiationError::Invalid(
                            "acceptance of a proposal without complete Terms".into(),
                        ))
                        .await;
                };
                let Some(sig) = read_terms_signature(a) else {
                    return self
                        .fail(NegotiationError::BadSignature {
                            what: "acceptance without terms_signature (PROFILE G-48)",
                            signer: peer,
                        })
                        .await;
                };
                if let Err(e) = verify_terms_signature(&self.agent, &self.tx, &terms, &sig, &peer) {
                    return self.fail(e).await;
                }
                let mine = match sign_terms(&self.agent, &terms) {
                    Ok(s) => s,
                    Err(e) => return self.fail(e).await,
                };
                let mut sigs = BTreeMap::new();
                sigs.insert(peer.clone(), sig);
                sigs.insert(self.agent.did(), mine);
                let signed = match assemble_terms(&self.agent, &self.tx, &terms, &sigs) {
                    Ok(t) => t,
                    Err(e) => return self.fail(e).await,
                };
                let Some((c, _)) = &self.mine else { return };
                let closing = match new_acceptance(&self.agent, &self.ctx, c.round, c.digest(), {
                    let mut m = closing_extension(&self.ctx, &sigs);
                    let chain = own_delegation_chain(&self.agent);
                    if !chain.is_empty() {
                        m.push((
                            Value::text(EXT_DELEGATION_CHAIN),
                            Value::Array(chain.iter().map(DelegationLink::to_value).collect()),
                        ));
                    }
                    m
                }) {
                    Ok(a) => a,
                    Err(e) => return self.fail(e).await,
                };
                self.send(&NegotiationMessage::Acceptance(closing)).await;
                self.agent
                    .deals
                    .update(&self.tx, |d| d.terms = Some(signed));
                self.end(Outcome::Agreed);
            }
            Ok(Step::Terminated(status)) => {
                record_received_error(&self.agent, &self.tx, status.code().as_u16(), &peer);
                self.end(Outcome::Terminated(status));
            }
            Err(e) => self.round_error(e).await,
        }
    }

    /// The proposer's closing Acceptance with every Terms signature (PROFILE G-48).
    async fn on_closing(&mut self, a: &Acceptance) {
        let Some((terms, mine)) = self.accepted.clone() else {
            return;
        };
        if a.accepted != self.current.digest() {
            return self
                .fail(NegotiationError::Round(RoundError::DigestMismatch))
                .await;
        }
        let sigs = match ext(&a.unknown, EXT_TERMS_SIGNATURES)
            .map(|v| read_agent_signatures(v, EXT_TERMS_SIGNATURES, 2, "BIND-VII-C-05"))
        {
            Some(Ok(s)) => s,
            _ => {
                return self
                    .fail(NegotiationError::BadSignature {
                        what: "closing acceptance without terms_signatures",
                        signer: self.peer.clone(),
                    })
                    .await;
            }
        };
        let mut all = BTreeMap::new();
        for s in sigs {
            all.insert(s.agent.clone(), s);
        }
        if all.get(&self.agent.did()) != Some(&mine) {
            return self
                .fail(NegotiationError::BadSignature {
                    what: "closing acceptance alters our Terms signature",
                    signer: self.peer.clone(),
                })
                .await;
        }
        match assemble_terms(&self.agent, &self.tx, &terms, &all) {
            Ok(signed) => {
                self.agent
                    .deals
                    .update(&self.tx, |d| d.terms = Some(signed));
                self.end(Outcome::Agreed);
            }
            Err(e) => self.fail(e).await,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Notifications
// ---------------------------------------------------------------------------------------

/// A notification received over `Agent/Notify` or NATS (SPEC VI): `negotiation_terminated`
/// and Fatal `error`s end a running negotiation; `offer_revoked` terminates negotiations
/// on the revoked Offer (SPEC-III-B-3-04).
pub async fn on_notification(agent: &Agent, notification: &Notification) -> Result<(), Status> {
    let tx = notification.transaction_id.map(|t| *t.as_bytes());
    match notification.kind {
        NotificationType::NegotiationTerminated | NotificationType::Error => {
            let Some(tx) = tx else { return Ok(()) };
            let Some(rec) = record(agent, &tx) else {
                return Ok(());
            };
            if !matches!(
                agent.transactions.state(&tx),
                Some(TxState::Initiated | TxState::Negotiating)
            ) {
                return Ok(());
            }
            let me = agent.did();
            let candidates = rec.context.others(&me);
            let Some(signer) = verify_notification(agent, &tx, notification, &candidates) else {
                let err = NegotiationError::BadSignature {
                    what: "notification",
                    signer: candidates.join(","),
                };
                agent.raise(Some(tx), &err, None);
                return Err(framing::status_for(
                    &err,
                    Rpc::Notify,
                    &ErrorContext::now(&me),
                ));
            };
            let Some(code) = notification.error.as_ref().map(|e| e.code) else {
                return Ok(());
            };
            if let Ok(frame) = wire::Frame::new("notification", notification.to_value()) {
                audit_message(agent, &tx, false, &frame, &signer);
            }
            record_received_error(agent, &tx, code, &signer);
            let cmd = match (notification.kind, status_of_code(code)) {
                (NotificationType::NegotiationTerminated, Some(status)) => Command::Terminate {
                    status,
                    send: false,
                },
                _ => match ErrorCode::from_u16(code) {
                    Some(c) if c.severity() == Severity::Fatal => Command::Fail(c),
                    _ => return Ok(()),
                },
            };
            let sent = {
                let g = agent.negotiation.lock();
                g.sessions.get(&tx).map(|s| &s.cmd).cloned()
            };
            let event = match &cmd {
                Command::Terminate { status, .. } => TxEvent::NegotiationTerminated {
                    reason: reason_of(*status),
                },
                Command::Fail(c) => event_for_code(*c),
                Command::Stop => return Ok(()),
            };
            match sent {
                Some(s) if s.send(cmd).is_ok() => {}
                _ => {
                    transition(agent, &tx, event);
                }
            }
            Ok(())
        }
        NotificationType::OfferRevoked => {
            let Some(offer_id) = notification.subject_ref else {
                return Ok(());
            };
            // Only the Offer's own agent can revoke it.
            let Some(offer) = known_offer(agent, &offer_id) else {
                return Ok(());
            };
            let owner = offer.agent_id.as_str().to_owned();
            let ok = signer_key(
                agent,
                &owner,
                notification
                    .signature
                    .as_ref()
                    .and_then(|s| s.key_id.as_deref()),
            )
            .is_ok_and(|pk| notification.verify_signature(&pk).is_ok());
            if ok {
                offer_revoked(agent, &offer_id);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------
// Test control
// ---------------------------------------------------------------------------------------

fn bad(msg: impl Into<String>) -> ControlError {
    ControlError::BadArgs(msg.into())
}

fn uuid_arg(args: &Value, key: &str) -> Result<MtpUuid, ControlError> {
    let v = args
        .get(key)
        .ok_or_else(|| bad(format!("{key} is required")))?;
    MtpUuid::from_value(v).map_err(|e| bad(format!("{key}: {e}")))
}

fn conditions_arg(args: &Value) -> Result<Option<Vec<Condition>>, ControlError> {
    let Some(v) = args.get("conditions") else {
        return Ok(None);
    };
    let items = v
        .as_array()
        .ok_or_else(|| bad("conditions must be an array"))?;
    let mut out = Vec::with_capacity(items.len());
    for c in items {
        let if_ = c.get("if").and_then(Value::as_text);
        let then = c.get("then").and_then(Value::as_text);
        match (if_, then) {
            (Some(i), Some(t)) => out.push(Condition {
                if_: i.to_owned(),
                then: t.to_owned(),
                unknown: c
                    .as_map()
                    .map(|m| {
                        m.iter()
                            .filter(|(k, _)| !matches!(k.as_text(), Some("if" | "then")))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
            _ => return Err(bad("each condition needs if and then (dotted paths)")),
        }
    }
    Ok((!out.is_empty()).then_some(out))
}

/// `negotiate` (docs/iut-contract.md): the Offer and Request by id (known to this agent:
/// `register_offer` / `register_request`, or given as det-CBOR in `offer` / `request`).
/// Extension argument `terms`: changes to the opening proposal.
async fn control_negotiate(agent: &Agent, args: &Value) -> ControlResult {
    let counterparties: Vec<String> = match args.get("counterparty") {
        Some(Value::Text(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_text().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("counterparty must be DIDs"))?,
        _ => return Err(bad("counterparty is required")),
    };
    let offer_id = uuid_arg(args, "offer_id")?;
    let request_id = uuid_arg(args, "request_id")?;
    if let Some(b) = args.get("offer").and_then(Value::as_bytes) {
        let o = Offer::from_cbor(b).map_err(|e| ControlError::mtp(&e))?;
        register_offer(agent, o);
    }
    if let Some(b) = args.get("request").and_then(Value::as_bytes) {
        let r = MtpRequest::from_cbor(b).map_err(|e| ControlError::mtp(&e))?;
        register_request(agent, r);
    }
    let offer = known_offer(agent, &offer_id)
        .ok_or_else(|| ControlError::NotFound(format!("offer {offer_id}")))?;
    let request = known_request(agent, &request_id)
        .ok_or_else(|| ControlError::NotFound(format!("request {request_id}")))?;
    let policy = policy(agent);
    let strategy = match args.get("strategy") {
        Some(v) => Strategy::from_value(v).map_err(bad)?,
        None => policy.strategy.clone(),
    };
    let uint = |k: &str, d: u64| -> Result<u64, ControlError> {
        match args.get(k) {
            None => Ok(d),
            Some(v) => v.as_u64().ok_or_else(|| bad(format!("{k} must be a uint"))),
        }
    };
    let spec = NegotiationSpec {
        counterparties,
        offer,
        request,
        round_timeout_ms: uint("round_timeout_ms", DEFAULT_ROUND_TIMEOUT_MS)?,
        max_rounds: uint("max_rounds", DEFAULT_MAX_ROUNDS)?,
        strategy,
        conditions: conditions_arg(args)?,
        terms: args.get("terms").and_then(Value::as_map).map(<[_]>::to_vec),
    };
    let wait = args.get("wait").and_then(Value::as_bool).unwrap_or(false);
    let (nid, handle) = negotiate(agent, spec)
        .await
        .map_err(|e| ControlError::mtp(&e))?;
    let mut result = vec![("transaction_id", uuid_value(&nid))];
    if wait {
        let outcome = handle
            .await
            .map_err(|e| ControlError::Internal(e.to_string()))?;
        result.push(("outcome", Value::text(outcome.name())));
        if let Outcome::Failed(code) = outcome {
            result.push(("code", Value::from(u64::from(code.as_u16()))));
        }
    }
    Ok(Value::map(result))
}

/// This layer's test-control actions (docs/iut-contract.md): `set_policy`, `negotiate`.
pub async fn control(agent: &Agent, action: &str, args: &Value) -> Option<ControlResult> {
    match action {
        "set_policy" => Some((|| {
            let strategy = match args.get("strategy") {
                Some(v) => Strategy::from_value(v).map_err(bad)?,
                None => return Err(bad("strategy is required")),
            };
            let text = |k: &str| args.get(k).and_then(Value::as_text).map(str::to_owned);
            set_policy(
                agent,
                Policy {
                    strategy,
                    rail: text("rail"),
                    verification: text("verification"),
                },
            );
            Ok(Value::map::<&str>([]))
        })()),
        "negotiate" => Some(control_negotiate(agent, args).await),
        "reset" => {
            reset(agent);
            Some(Ok(Value::map::<&str>([])))
        }
        _ => None,
    }
}

/// Defect `skip-chain-principal-check` (identity layer): the Request's Principal is taken from
/// the first link of its delegation chain instead of being checked against `principal_did`.
fn principal_from_first_link(nim: &mut Value) {
    let Value::Map(entries) = nim else { return };
    let Some((_, Value::Map(request))) = entries
        .iter_mut()
        .find(|(k, _)| k.as_text() == Some("request"))
    else {
        return;
    };
    let Some((_, Value::Map(att))) = request
        .iter_mut()
        .find(|(k, _)| k.as_text() == Some("authority_attestation"))
    else {
        return;
    };
    let first_issuer = att
        .iter()
        .find(|(k, _)| k.as_text() == Some("delegation_chain"))
        .and_then(|(_, c)| c.as_array())
        .and_then(|c| c.first())
        .and_then(|l| l.get("issuer"))
        .cloned();
    if let Some(issuer) = first_issuer {
        for (k, v) in att.iter_mut() {
            if k.as_text() == Some("principal_did") {
                *v = issuer.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_parse() {
        let v = Value::map([
            ("kind", Value::text("counter")),
            ("rounds", Value::Integer(3)),
            (
                "limits",
                Value::map([
                    ("price_floor", Value::Float(4.5)),
                    ("price_ceiling", Value::Integer(9)),
                ]),
            ),
        ]);
        let s = Strategy::from_value(&v).unwrap();
        assert_eq!(s.kind, StrategyKind::Counter);
        assert_eq!(s.rounds, 3);
        assert_eq!(s.limits.price_floor, Some(4.5));
        assert_eq!(s.limits.price_ceiling, Some(9.0));
        assert!(Strategy::from_value(&Value::map([("kind", Value::text("bogus"))])).is_err());
        assert!(Strategy::from_value(&Value::map::<&str>([])).is_err());
    }

    #[test]
    fn money_is_rounded_and_reduced() {
        assert_eq!(money(5.0, "USD"), Value::Integer(5));
        assert_eq!(money(5.456, "USD"), Value::Float(5.46));
        assert_eq!(money(7.6, "JPY"), Value::Integer(8));
    }

    #[test]
    fn paths_merge_and_conditions() {
        let mut m: Map = Vec::new();
        path_set(&mut m, "price.amount", Value::Integer(5));
        path_set(&mut m, "price.unit", Value::text("USD"));
        path_set(&mut m, "delivery.latest", Value::text("x"));
        assert_eq!(price_of(&m), Some((5.0, "USD".into())));
        merge_terms(
            &mut m,
            &vec![(
                Value::text("price"),
                Value::map([("amount", Value::Integer(6))]),
            )],
        );
        assert_eq!(price_of(&m), Some((6.0, "USD".into())));
        let prev = Proposal {
            kind: ProposalKind::Proposal,
            negotiation_id: MtpUuid::new(ObjectType::Terms, 1, [0; 6], [0; 17]),
            round: 1,
            proposer: Did::from_digest([1; 32]),
            terms: m.clone(),
            conditions: Some(vec![Condition {
                if_: "price.amount".into(),
                then: "delivery.latest".into(),
                unknown: Map::new(),
            }]),
            timestamp: Timestamp::from_unix_secs(1_800_000_000).unwrap(),
            signature: None,
            unknown: Map::new(),
        };
        assert_eq!(invalid_condition(&prev), None);
        let mut next = m.clone();
        set_price(&mut next, 8.0);
        let mut base: Map = Vec::new();
        path_set(&mut base, "delivery.latest", Value::text("base"));
        let kept = apply_conditions(&prev, &mut next, &base).unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(
            path_get(&next, "delivery.latest"),
            Some(&Value::text("base")),
            "the then-term is not agreed without its if-term"
        );
    }

    #[test]
    fn requester_concedes_toward_its_ceiling() {
        let mut mine_terms: Map = Vec::new();
        path_set(&mut mine_terms, "price.amount", Value::Integer(4));
        path_set(&mut mine_terms, "price.unit", Value::text("USD"));
        let mut counter = mine_terms.clone();
        path_set(&mut counter, "price.amount", Value::Integer(10));
        let p1 = Proposal {
            kind: ProposalKind::Proposal,
            negotiation_id: MtpUuid::new(ObjectType::Terms, 1, [0; 6], [0; 17]),
            round: 1,
            proposer: Did::from_digest([1; 32]),
            terms: mine_terms,
            conditions: None,
            timestamp: Timestamp::from_unix_secs(1_800_000_000).unwrap(),
            signature: None,
            unknown: Map::new(),
        };
        let merged = merge_counters(
            &p1,
            &[&Proposal {
                terms: counter.clone(),
                ..p1.clone()
            }],
        );
        assert_eq!(price_of(&merged).map(|p| p.0), Some(10.0));
    }
}
