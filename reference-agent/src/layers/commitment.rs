//! Commitment Layer (SPEC III-D): Mandates, multi-party signature collection, conditional
//! Mandates and preconditions, supersession.
//!
//! - `commit` builds the Mandate over the fully signed Terms of a negotiation (PROFILE G-01,
//!   G-48), sends the `mandate_draft` on `Agent/Commit` to every other participant,
//!   collects and verifies their `mandate_signature`s (4100) and closes with the `mandate`;
//!   the final signature is T2 (Negotiating → Committed) on every side.
//! - A conditional Mandate is Pending; a monitor task per Mandate evaluates its
//!   preconditions (`mtp_protocol::commitment`) on every recorded event and timer:
//!   satisfied → Active (Committed → Settling), expired → Void (4101) with a signed
//!   `mandate_void` notification to every party; an unconditional Mandate not settled before
//!   its expiration → Void (4102) (PROFILE G-19).
//! - Immutability: a Mandate id is bound to its content (`Agent::reserve_uuid`, 0100);
//!   `supersede` negotiates a successor whose Mandate names the original as `predecessor`,
//!   and the Pending original becomes Superseded (SPEC III-D-3).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use mtp_protocol::cbor::Value;
use mtp_protocol::commitment::{
    DelegationAttestation, Mandate, MandateError, Precondition, Predicate, PredicateKind,
    PredicateResult,
};
use mtp_protocol::error_record::{Notification, NotificationType};
use mtp_protocol::errors::{Coded, ErrorCode};
use mtp_protocol::primitives::common::{
    AgentSignature, Map, MultiSigned, ObjectError, Signed, uuid_value,
};
use mtp_protocol::primitives::request::DelegationLink;
use mtp_protocol::primitives::{CborObject, Terms};
use mtp_protocol::state_machine::{
    MandateEvent, MandateStatus, TransitionError, TxEvent, TxState, mandate_transition,
};
use mtp_protocol::time::Timestamp;
use mtp_protocol::uuid::{MtpUuid, ObjectType};
use mtp_protocol::wire::{self, WireError};
use tokio::sync::{Notify, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::identity::{self, IdentityError};
use super::negotiation::{
    self, CodeError, NegotiationError, audit_message, audit_signature, key_id,
    record_received_error, signer_key, transition,
};
use crate::agent::{Agent, AgentError};
use crate::services::control::{ControlError, ControlResult};
use crate::transaction::TxError;
use crate::transport::sync::framing::{
    self, Direction, ErrorContext, FramingError, RemoteError, Rpc,
};
use crate::transport::sync::{pb, session};

/// Deliberate defects of this layer (`crate::faults`).
pub const FAULTS: &[crate::faults::Fault] = &[
    crate::faults::Fault {
        name: "skip-mandate-id-binding",
        breaks: "SPEC-III-D-3-01",
        description: "signs a re-sent Mandate draft with a known mandate_id without comparing its content",
    },
    crate::faults::Fault {
        name: "final-mandate-omits-attestations",
        breaks: "SPEC-III-D-1-01",
        description: "sends the final, fully signed Mandate without its delegation attestations",
    },
    crate::faults::Fault {
        name: "void-without-notification",
        breaks: "SPEC-III-D-2-06",
        description: "voids a Mandate without notifying the other parties",
    },
    crate::faults::Fault {
        name: "ignore-mandate-expiration",
        breaks: "SPEC-IV-B-I10",
        description: "an Active Mandate that expires before settlement stays Committed",
    },
    crate::faults::Fault {
        name: "precondition-never-activates",
        breaks: "SPEC-III-D-2-04",
        description: "evaluates preconditions but never moves a satisfied Mandate from Pending to Active",
    },
    crate::faults::Fault {
        name: "undefined-transition-keeps-state",
        breaks: "SPEC-IV-02",
        description: "refuses a participant's message that needs an undefined transition (0105) but leaves the transaction in its state instead of terminating it (fatal_error.0105 → Failed)",
    },
    crate::faults::Fault {
        name: "reuse-keeps-transaction",
        breaks: "SPEC-IX-I03",
        description: "refuses a participant's message that reuses an MTP-UUID of the transaction (0100) but lets the transaction go on",
    },
    crate::faults::Fault {
        name: "transition-entries-anonymous",
        breaks: "SPEC-IV-B-02",
        description: "logs state transitions to the audit trail without the identities of the agents involved",
    },
    crate::faults::Fault {
        name: "successor-without-predecessor",
        breaks: "SPEC-III-D-3-02 SPEC-III-D-3-I03",
        description: "the successor Mandate of `supersede` does not name the original as predecessor (and the original is not superseded)",
    },
    crate::faults::Fault {
        name: "predecessor-not-superseded",
        breaks: "SPEC-III-D-3-I02",
        description: "committing a successor Mandate leaves the Pending predecessor Pending and its transaction Committed",
    },
    crate::faults::Fault {
        name: "audit-chain-unlinked",
        breaks: "SPEC-IV-B-03",
        description: "exports the audit trail with the second entry's prev_hash zeroed (the chain link dropped)",
    },
    crate::faults::Fault {
        name: "mandate-skips-delegation-check",
        breaks: "SPEC-III-A-2-06",
        description: "co-signs a received Mandate draft without verifying the other participants' delegation attestations",
    },
];

/// Deadline of one `Agent/Commit` exchange.
pub const COMMIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Deepest `all`/`any` nesting of a precondition predicate (PROFILE G-01).
pub const MAX_PREDICATE_DEPTH: usize = 8;
/// Most predicate nodes in one precondition (PROFILE G-01).
pub const MAX_PREDICATE_NODES: usize = 64;
/// Longest sleep of a monitor between two evaluations.
const MONITOR_TICK: Duration = Duration::from_millis(500);

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Why a commitment step failed (each variant carries its MTP code, SPEC VI).
#[derive(Debug, thiserror::Error)]
pub enum CommitmentError {
    #[error(transparent)]
    Object(#[from] ObjectError),
    #[error(transparent)]
    Mandate(#[from] MandateError),
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error(transparent)]
    Tx(#[from] TxError),
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error(transparent)]
    Framing(#[from] FramingError),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error(transparent)]
    Negotiation(Box<NegotiationError>),
    #[error("mandate signature by {0} does not verify")]
    BadSignature(String),
    #[error("{0}")]
    NotReady(String),
    #[error("the draft's Terms are not the Terms agreed in transaction {0}")]
    TermsMismatch(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Remote(Box<RemoteError>),
    #[error("cannot reach {peer}: {reason}")]
    Unreachable { peer: String, reason: String },
    /// A participant's delegation attestation does not verify (SPEC-III-A-2-06).
    #[error("delegation attestation of {participant}: {error}")]
    Authority {
        participant: String,
        error: Box<IdentityError>,
    },
}

impl From<NegotiationError> for CommitmentError {
    fn from(e: NegotiationError) -> Self {
        CommitmentError::Negotiation(Box::new(e))
    }
}

impl Coded for CommitmentError {
    fn code(&self) -> ErrorCode {
        match self {
            CommitmentError::Object(e) => e.code(),
            CommitmentError::Mandate(e) => e.code(),
            CommitmentError::Agent(e) => e.code(),
            CommitmentError::Tx(e) => e.code(),
            CommitmentError::Wire(e) => e.code(),
            CommitmentError::Framing(e) => e.code(),
            CommitmentError::Transition(e) => e.code(),
            CommitmentError::Negotiation(e) => e.code(),
            CommitmentError::BadSignature(_) => ErrorCode::MandateSignatureInvalid,
            CommitmentError::NotReady(_) => ErrorCode::UndefinedTransition,
            CommitmentError::TermsMismatch(_) | CommitmentError::Invalid(_) => {
                ErrorCode::SchemaViolation
            }
            CommitmentError::Remote(r) => r.error_code().unwrap_or(ErrorCode::SchemaViolation),
            // A participant that cannot be reached cannot sign (recoverable, retried).
            CommitmentError::Unreachable { .. } => ErrorCode::DidResolutionTimeout,
            CommitmentError::Authority { error, .. } => error.code(),
        }
    }

    fn requirement(&self) -> Option<&'static str> {
        match self {
            CommitmentError::Object(e) => e.requirement(),
            CommitmentError::Mandate(e) => e.requirement(),
            CommitmentError::Transition(e) => e.requirement(),
            CommitmentError::BadSignature(_) => Some("SPEC-III-D-1-01"),
            CommitmentError::TermsMismatch(_) => Some("SPEC-III-D-1-01"),
            CommitmentError::Authority { error, .. } => {
                error.requirement().or(Some("SPEC-III-A-2-06"))
            }
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Inner {
    /// Observed events (`record_event`): name and reference.
    facts: Vec<(String, Option<MtpUuid>)>,
    /// Transactions with a running monitor.
    monitors: BTreeSet<[u8; 32]>,
}

/// This layer's state inside the agent.
#[derive(Debug, Default)]
pub struct State {
    inner: Mutex<Inner>,
    /// Wakes the monitors when an event is recorded.
    wake: Notify,
}

impl State {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Forgets recorded events (test-control `reset`); monitors stop with their transactions.
pub fn reset(agent: &Agent) {
    agent.commitment.lock().facts.clear();
    agent.commitment.wake.notify_waiters();
}

/// An event for precondition predicates (PROFILE G-01): `delivery_confirmed`,
/// `settlement_confirmed`, `mandate_fulfilled` (reference = a `mandate_id`),
/// `receipt_issued` (reference = a `receipt_id`), or `ext:…` events. Every Pending
/// Mandate is re-evaluated (SPEC-III-D-2-03).
pub fn record_event(agent: &Agent, event: &str, reference: Option<MtpUuid>) {
    {
        let mut g = agent.commitment.lock();
        let fact = (event.to_owned(), reference);
        if !g.facts.contains(&fact) {
            g.facts.push(fact);
        }
    }
    agent.commitment.wake.notify_waiters();
}

/// Whether `event` was observed for `reference`. A predicate without `ref` names the
/// Mandate's own transaction: it matches an observation without reference or one whose
/// reference is this Mandate (PROFILE G-01 as refined in docs/profile.md G-19).
fn observed(
    facts: &[(String, Option<MtpUuid>)],
    own: &MtpUuid,
    event: &str,
    reference: Option<&MtpUuid>,
) -> bool {
    facts.iter().any(|(e, r)| {
        e == event
            && match reference {
                Some(want) => r.as_ref() == Some(want),
                None => r.is_none() || r.as_ref() == Some(own),
            }
    })
}

/// PROFILE G-01 bounds: nesting depth ≤ 8 and ≤ 64 nodes per precondition (else 0103).
pub fn check_predicate_limits(preconditions: &[Precondition]) -> Result<(), CommitmentError> {
    fn walk(p: &Predicate, depth: usize, nodes: &mut usize) -> Result<(), String> {
        *nodes += 1;
        if depth > MAX_PREDICATE_DEPTH {
            return Err(format!(
                "predicate nested deeper than {MAX_PREDICATE_DEPTH}"
            ));
        }
        if *nodes > MAX_PREDICATE_NODES {
            return Err(format!("more than {MAX_PREDICATE_NODES} predicate nodes"));
        }
        if let PredicateKind::All(args) | PredicateKind::Any(args) = &p.kind {
            for a in args {
                walk(a, depth + 1, nodes)?;
            }
        }
        Ok(())
    }
    for pre in preconditions {
        let mut nodes = 0;
        walk(&pre.predicate, 1, &mut nodes).map_err(|m| {
            CommitmentError::Invalid(format!("precondition {}: {m} (PROFILE G-01)", pre.id))
        })?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Mandate construction and checks
// ---------------------------------------------------------------------------------------

/// The draft map (`mandate_draft` body): the Mandate without `signatures` — its signing
/// input (PROFILE G-01, G-09).
fn draft_value(m: &Mandate) -> Value {
    match m.to_value() {
        Value::Map(entries) => Value::Map(
            entries
                .into_iter()
                .filter(|(k, _)| k.as_text() != Some("signatures"))
                .collect(),
        ),
        other => other,
    }
}

/// Parses a `mandate_draft` body with the Mandate's structural rules (PROFILE G-01).
fn parse_draft(v: &Value) -> Result<Mandate, CommitmentError> {
    let Value::Map(entries) = v else {
        return Err(CommitmentError::Invalid(
            "mandate_draft is not a map".into(),
        ));
    };
    if entries
        .iter()
        .any(|(k, _)| k.as_text() == Some("signatures"))
    {
        return Err(CommitmentError::Invalid(
            "a mandate_draft carries no signatures (PROFILE G-09)".into(),
        ));
    }
    let placeholder = Value::map([
        ("agent", Value::text("did:mtp:placeholder")),
        ("algorithm", Value::text("ML-DSA-65")),
        ("value", Value::bytes(vec![0])),
    ]);
    let mut with_sigs = entries.clone();
    with_sigs.push((
        Value::text("signatures"),
        Value::Array(vec![placeholder.clone(), placeholder]),
    ));
    let mut m = Mandate::from_value(&Value::Map(with_sigs))?;
    m.signatures.clear();
    Ok(m)
}

/// This agent's signature over the Mandate (every participant signs the same bytes).
fn sign_mandate(agent: &Agent, m: &Mandate) -> Result<AgentSignature, CommitmentError> {
    Ok(m.sign_as(&agent.did(), &agent.keys.signing, key_id(agent))?)
}

/// One participant's signature over the Mandate's signing input (4100 on failure).
fn verify_one(
    agent: &Agent,
    tx: &[u8; 32],
    m: &Mandate,
    sig: &AgentSignature,
    expected: &str,
) -> Result<(), CommitmentError> {
    let input = m.try_signing_input().ok();
    if agent.check_agent_signature(*tx, *m.mandate_id.as_bytes(), input, sig, expected) {
        Ok(())
    } else {
        Err(CommitmentError::BadSignature(expected.to_owned()))
    }
}

/// Every signature of a full Mandate, in participants order (4100).
fn verify_all(agent: &Agent, tx: &[u8; 32], m: &Mandate) -> Result<(), CommitmentError> {
    let res = m.verify_signatures(|did, kid| signer_key(agent, did, kid).ok());
    audit_signature(
        agent,
        tx,
        *m.mandate_id.as_bytes(),
        res.is_ok(),
        &agent.did(),
    );
    res.map_err(|e| match e {
        ObjectError::Signature { path, .. } => CommitmentError::BadSignature(path),
        other => other.into(),
    })
}

/// The fully signed Terms (every participant's signature verifies, BIND-VII-C-05).
fn check_terms(agent: &Agent, tx: &[u8; 32], terms: &Terms) -> Result<(), CommitmentError> {
    let res = terms.verify_signatures(|did, kid| signer_key(agent, did, kid).ok());
    audit_signature(
        agent,
        tx,
        *terms.terms_id.as_bytes(),
        res.is_ok(),
        &agent.did(),
    );
    Ok(res?)
}

/// The delegation attestations (SPEC-III-D-1-01): the requester's from its Request, each
/// other participant's from the chain it sent with its acceptance, this agent's own.
fn attestations(agent: &Agent, tx: &[u8; 32], terms: &Terms) -> Vec<DelegationAttestation> {
    let record = negotiation::record(agent, tx);
    let request = agent
        .deals
        .get(tx)
        .and_then(|d| d.request)
        .or_else(|| record.as_ref().map(|r| r.context.request.clone()));
    let me = agent.did();
    terms
        .participants
        .iter()
        .map(|p| {
            let did = p.agent_id.as_str();
            let chain: Vec<DelegationLink> = match &request {
                Some(r) if r.agent_id.as_str() == did => {
                    r.authority_attestation.delegation_chain.clone()
                }
                _ if did == me => negotiation::own_delegation_chain(agent),
                _ => record
                    .as_ref()
                    .and_then(|r| r.chains.get(did).cloned())
                    .unwrap_or_default(),
            };
            DelegationAttestation {
                agent_id: p.agent_id.clone(),
                delegation_chain: chain,
                unknown: Map::new(),
            }
        })
        .collect()
}

/// Verifies every other participant's delegation attestation of `m` against its complete
/// chain (SPEC-III-A-2-06; PROFILE G-01, G-04, G-33): the requester's from its Request's
/// Principal, the others' from their first link's issuer. A participant without an
/// attestation has an empty chain (1101). With `committed_at`, a revocation after commit is
/// the dispute path (`IdentityError::is_dispute`, SPEC-III-A-3-03; PROFILE G-55).
pub async fn verify_attestations(
    agent: &Agent,
    tx: &[u8; 32],
    m: &Mandate,
    committed_at: Option<Timestamp>,
) -> Result<(), CommitmentError> {
    let request = agent
        .deals
        .get(tx)
        .and_then(|d| d.request)
        .or_else(|| negotiation::record(agent, tx).map(|r| r.context.request.clone()));
    let me = agent.did();
    for p in &m.terms().participants {
        let did = p.agent_id.as_str();
        if did == me {
            continue;
        }
        let chain: &[DelegationLink] = m
            .delegation_attestations
            .iter()
            .find(|a| a.agent_id.as_str() == did)
            .map(|a| a.delegation_chain.as_slice())
            .unwrap_or(&[]);
        let principal = request
            .as_ref()
            .filter(|r| r.agent_id.as_str() == did)
            .map(|r| r.authority_attestation.principal_did.as_str().to_owned());
        identity::verify_participant_chain(
            agent,
            did,
            chain,
            principal.as_deref(),
            *tx,
            committed_at,
        )
        .await
        .map_err(|e| CommitmentError::Authority {
            participant: did.to_owned(),
            error: Box::new(e),
        })?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Initiator
// ---------------------------------------------------------------------------------------

/// One participant's open `Commit` stream.
struct CommitLink {
    peer: String,
    out: mpsc::Sender<pb::Frame>,
    inbound: tonic::Streaming<pb::Frame>,
}

/// Produces the Mandate of transaction `tx` and collects every participant's signature
/// (SPEC III-D-1; PROFILE G-01, G-48): Negotiating → Committed on every side. With
/// `preconditions` the Mandate is conditional (Pending); `expires_in_ms` sets its
/// expiration (default: the Terms'); `predecessor` names the Mandate it supersedes.
pub async fn commit(
    agent: &Agent,
    tx: [u8; 32],
    preconditions: Option<Vec<Precondition>>,
    expires_in_ms: Option<u64>,
    predecessor: Option<MtpUuid>,
) -> Result<Mandate, CommitmentError> {
    let deal = agent
        .deals
        .get(&tx)
        .ok_or_else(|| CommitmentError::NotReady(format!("no transaction {}", hex::encode(tx))))?;
    if agent.transactions.state(&tx) != Some(TxState::Negotiating) {
        return Err(CommitmentError::NotReady(format!(
            "transaction is {}, a Mandate is made from Negotiating with agreed Terms",
            agent
                .transactions
                .state(&tx)
                .map(|s| s.name())
                .unwrap_or("unknown")
        )));
    }
    let terms = deal
        .terms
        .clone()
        .ok_or_else(|| CommitmentError::NotReady("no agreed Terms yet".into()))?;
    check_terms(agent, &tx, &terms)?;
    if let Some(ps) = &preconditions {
        check_predicate_limits(ps)?;
    }
    let now = agent.now();
    let expiration = match expires_in_ms {
        Some(ms) => negotiation::now_plus_ms(agent, ms)
            .ok_or_else(|| CommitmentError::Invalid("expires_in_ms out of range".into()))?,
        None => terms.expiration,
    };
    if let Some(p) = &predecessor {
        check_predecessor(agent, p)?;
    }
    let predecessor = predecessor.filter(|_| !agent.fault("successor-without-predecessor"));
    let mandate_id = agent.new_uuid(ObjectType::Mandate);
    let mut mandate = Mandate::new(
        mandate_id,
        vec![terms.offer_ref],
        vec![terms.request_ref],
        &terms,
        attestations(agent, &tx, &terms),
        preconditions.filter(|p| !p.is_empty()),
        now,
        expiration,
        predecessor,
    )?;
    // Round-trip through the strict decoder: the draft is what the others will check.
    let draft = draft_value(&mandate);
    mandate = parse_draft(&draft)?;
    let signing_input = mandate.try_signing_input().map_err(|e| {
        CommitmentError::Invalid(format!("Mandate has no deterministic encoding: {e}"))
    })?;
    // Immutability: the id is bound to this content for good (SPEC-IX-04; SPEC-III-D-3-01).
    agent.reserve_uuid(mandate_id, &signing_input)?;
    let frame = wire::Frame::new("mandate_draft", draft)?;
    let me = agent.did();
    let mut sigs: BTreeMap<String, AgentSignature> = BTreeMap::new();
    sigs.insert(me.clone(), sign_mandate(agent, &mandate)?);
    let others: Vec<String> = terms
        .participants
        .iter()
        .map(|p| p.agent_id.as_str().to_owned())
        .filter(|d| *d != me)
        .collect();
    let mut links = Vec::new();
    for peer in &others {
        match collect_signature(agent, &tx, &mandate, &frame, peer).await {
            Ok((link, sig)) => {
                sigs.insert(peer.clone(), sig);
                links.push(link);
            }
            Err(e) => {
                fail_commit(agent, &tx, &e, peer, &others).await;
                return Err(e);
            }
        }
    }
    mandate.signatures = terms
        .participants
        .iter()
        .filter_map(|p| sigs.get(p.agent_id.as_str()).cloned())
        .collect();
    verify_all(agent, &tx, &mandate)?;
    // The final signature: T2 (SPEC-IV-B-I02; PROFILE G-48).
    finalize(agent, &tx, &mandate)?;
    let full_value = if agent.fault("final-mandate-omits-attestations") {
        values_without(&mandate.to_value(), "delegation_attestations")
    } else {
        mandate.to_value()
    };
    let full = wire::Frame::new("mandate", full_value)?;
    for link in links {
        let CommitLink {
            peer,
            out,
            mut inbound,
        } = link;
        audit_message(agent, &tx, true, &full, &peer);
        if let Ok(pbf) = framing::encode(&full) {
            let _ = out.send(pbf).await;
        }
        drop(out);
        // Committed already (T2): the peer's end of the stream is awaited in the background
        // so that `commit` returns once this side has committed (docs/iut-contract.md rule 5).
        let agent2 = agent.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(COMMIT_TIMEOUT, inbound.message()).await {
                Ok(Ok(_)) => {}
                Ok(Err(status)) => {
                    let remote = RemoteError::from_status(&status);
                    let code = remote.code.unwrap_or(ErrorCode::SchemaViolation.as_u16());
                    record_received_error(&agent2, &tx, code, &peer);
                }
                Err(_) => tracing::warn!(peer = %peer, "no confirmation of the final mandate"),
            }
        });
    }
    Ok(mandate)
}

/// Opens `Agent/Commit` to `peer`, sends the draft and reads its `mandate_signature`.
async fn collect_signature(
    agent: &Agent,
    tx: &[u8; 32],
    mandate: &Mandate,
    draft: &wire::Frame,
    peer: &str,
) -> Result<(CommitLink, AgentSignature), CommitmentError> {
    let mut client = agent
        .agent_client(peer)
        .await
        .map_err(|e| CommitmentError::Unreachable {
            peer: peer.to_owned(),
            reason: e.to_string(),
        })?;
    let (out, rx) = mpsc::channel::<pb::Frame>(4);
    out.send(framing::encode(draft)?)
        .await
        .map_err(|_| CommitmentError::Invalid("commit stream closed".into()))?;
    audit_message(agent, tx, true, draft, peer);
    let mut req = Request::new(ReceiverStream::new(rx));
    framing::set_version(req.metadata_mut());
    let req = framing::with_deadline(req, COMMIT_TIMEOUT);
    let resp = client
        .commit(req)
        .await
        .map_err(|s| CommitmentError::Remote(Box::new(RemoteError::from_status(&s))))?;
    framing::check_version(resp.metadata())?;
    let mut inbound = resp.into_inner();
    let pbf = match tokio::time::timeout(COMMIT_TIMEOUT, inbound.message()).await {
        Ok(Ok(Some(f))) => f,
        Ok(Ok(None)) => {
            return Err(CommitmentError::Invalid(format!(
                "{peer} closed the Commit stream without a signature"
            )));
        }
        Ok(Err(s)) => {
            return Err(CommitmentError::Remote(Box::new(RemoteError::from_status(
                &s,
            ))));
        }
        Err(_) => {
            return Err(CommitmentError::Unreachable {
                peer: peer.to_owned(),
                reason: "no mandate_signature in time".into(),
            });
        }
    };
    let frame = framing::decode_for(&pbf, Rpc::Commit, Direction::Response)?;
    audit_message(agent, tx, false, &frame, peer);
    let id = frame
        .body
        .get("mandate_id")
        .map(MtpUuid::from_value)
        .transpose()
        .map_err(|e| CommitmentError::Invalid(format!("mandate_signature.mandate_id: {e}")))?;
    if id != Some(mandate.mandate_id) {
        return Err(CommitmentError::Invalid(
            "mandate_signature names another Mandate".into(),
        ));
    }
    let sig = frame
        .body
        .get("signature")
        .ok_or_else(|| CommitmentError::BadSignature(peer.to_owned()))
        .and_then(|v| {
            AgentSignature::from_value(v, "signature", "SPEC-III-D-1-01")
                .map_err(|_| CommitmentError::BadSignature(peer.to_owned()))
        })?;
    verify_one(agent, tx, mandate, &sig, peer)?;
    Ok((
        CommitLink {
            peer: peer.to_owned(),
            out,
            inbound,
        },
        sig,
    ))
}

/// A failed signature collection: raise it; a Fatal error fails the transaction with every
/// participant notified (SPEC-VI-01).
async fn fail_commit(
    agent: &Agent,
    tx: &[u8; 32],
    err: &CommitmentError,
    peer: &str,
    participants: &[String],
) {
    let code = err.code();
    match err {
        CommitmentError::Remote(r) => {
            record_received_error(agent, tx, r.code.unwrap_or(code.as_u16()), peer);
        }
        _ => agent.raise(Some(*tx), err, Some(peer)),
    }
    if code.severity() != mtp_protocol::errors::Severity::Fatal {
        return;
    }
    transition(agent, tx, TxEvent::FatalError { code });
    for p in participants {
        let n = negotiation::notification(
            agent,
            NotificationType::Error,
            tx,
            None,
            Some(&CodeError(code)),
            err.to_string(),
        );
        if let Err(e) = negotiation::send_notification(agent, Some(*tx), p, n).await {
            tracing::warn!(error = %e, peer = %p, "cannot notify the commitment failure");
        }
    }
}

/// A successor may name only a Pending Mandate (PROFILE G-19).
fn check_predecessor(agent: &Agent, predecessor: &MtpUuid) -> Result<(), CommitmentError> {
    let old = agent
        .deals
        .by_mandate(predecessor.as_bytes())
        .ok_or_else(|| CommitmentError::NotReady(format!("no Mandate {predecessor}")))?;
    let status = old.mandate_status.unwrap_or(MandateStatus::Active);
    mandate_transition(status, MandateEvent::SuccessorCommitted)?;
    Ok(())
}

/// The final signature on either side: store the Mandate, Negotiating → Committed (T2),
/// status Pending or Active, supersede the predecessor, start the monitor.
fn finalize(agent: &Agent, tx: &[u8; 32], m: &Mandate) -> Result<(), CommitmentError> {
    if agent.transactions.state(tx) != Some(TxState::Negotiating) {
        return Err(CommitmentError::NotReady(
            "another Mandate committed this transaction first".into(),
        ));
    }
    let status = MandateStatus::initial(m.is_conditional());
    let previous = agent.deals.update(tx, |d| {
        let prev = (d.mandate.take(), d.mandate_status.take());
        d.mandate = Some(m.clone());
        d.mandate_status = Some(status);
        prev
    });
    if let Err(e) = agent
        .transactions
        .apply(tx, TxEvent::MandateFullySigned, agent.now())
    {
        if let Some((pm, ps)) = previous {
            agent.deals.update(tx, |d| {
                d.mandate = pm;
                d.mandate_status = ps;
            });
        }
        return Err(e.into());
    }
    if let Some(p) = &m.predecessor
        && !agent.fault("predecessor-not-superseded")
    {
        supersede_predecessor(agent, p);
    }
    spawn_monitor(agent.clone(), *tx);
    Ok(())
}

/// The predecessor becomes Superseded and its transaction Void (SPEC-III-D-3-I02;
/// PROFILE G-19).
fn supersede_predecessor(agent: &Agent, predecessor: &MtpUuid) {
    let Some(old) = agent.deals.by_mandate(predecessor.as_bytes()) else {
        return;
    };
    let Some(status) = old.mandate_status else {
        return;
    };
    match mandate_transition(status, MandateEvent::SuccessorCommitted) {
        Ok(next) => {
            agent
                .deals
                .update(&old.id, |d| d.mandate_status = Some(next));
            transition(agent, &old.id, MandateEvent::SuccessorCommitted.tx_event());
            agent.commitment.wake.notify_waiters();
        }
        Err(e) => agent.raise(Some(old.id), &e, None),
    }
}

// ---------------------------------------------------------------------------------------
// Responder: `Agent/Commit`
// ---------------------------------------------------------------------------------------

/// `Agent/Commit` (PROFILE G-09): the `mandate_draft` is checked against the agreed Terms
/// (its `terms` bytes are exactly the Terms of the deal, fully signed), signed and
/// answered with `mandate_signature`; the closing `mandate` must carry every signature
/// How long a received Mandate draft waits for this side to record the agreed Terms.
const TERMS_RECORD_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// (4100) over the same content, and its arrival is T2 on this side.
pub async fn serve_commit(
    agent: Agent,
    request: Request<tonic::Streaming<pb::Frame>>,
) -> Result<Response<super::FrameStream>, Status> {
    let ectx = ErrorContext::now(&agent.did());
    if let Err(e) = framing::check_version(request.metadata()) {
        agent.raise(None, &e, None);
        return Err(framing::status_for(&e, Rpc::Commit, &ectx));
    }
    let peer = session(&request).and_then(|s| s.peer_label.clone());
    let mut inbound = request.into_inner();
    let first = match tokio::time::timeout(COMMIT_TIMEOUT, inbound.message()).await {
        Ok(Ok(Some(f))) => f,
        Ok(Err(s)) => return Err(s),
        _ => {
            let e = NegotiationError::Incomplete("no mandate_draft on the Commit stream".into());
            agent.raise(None, &e, peer.as_deref());
            return Err(framing::status_for(&e, Rpc::Commit, &ectx));
        }
    };
    match accept_draft(&agent, &first, peer.as_deref()).await {
        Ok((tx, mandate, answer)) => {
            let (out_tx, out_rx) = mpsc::channel::<Result<pb::Frame, Status>>(4);
            let _ = out_tx.send(Ok(answer)).await;
            let agent2 = agent.clone();
            let peer2 = peer.clone().unwrap_or_default();
            tokio::spawn(async move {
                if let Err(e) = await_mandate(&agent2, &tx, &mandate, &mut inbound, &peer2).await {
                    let code = e.code();
                    agent2.raise(Some(tx), &e, Some(&peer2));
                    let mut c = ErrorContext::now(&agent2.did());
                    c.transaction_id = MtpUuid::from_bytes(&tx).ok();
                    let _ = out_tx
                        .send(Err(framing::status_for(&e, Rpc::Commit, &c)))
                        .await;
                    terminate_by_peer(&agent2, &tx, code, &peer2);
                }
            });
            let mut resp: Response<super::FrameStream> =
                Response::new(Box::pin(ReceiverStream::new(out_rx)));
            framing::set_version(resp.metadata_mut());
            Ok(resp)
        }
        Err((tx, e)) => {
            let mut c = ectx;
            c.transaction_id = tx.and_then(|t| MtpUuid::from_bytes(&t).ok());
            agent.raise(tx, &e, peer.as_deref());
            // A Fatal refusal of a participant's draft terminates its transaction, whatever
            // its state: an undefined transition (0105) or a reused Mandate id (0100) ends
            // it Failed (SPEC-IV-02, SPEC-IX-I03; PROFILE G-18). A non-participant's draft
            // changes nothing.
            if let (Some(t), Some(p)) = (tx, peer.as_deref()) {
                terminate_by_peer(&agent, &t, e.code(), p);
            }
            Err(framing::status_for(&e, Rpc::Commit, &c))
        }
    }
}

/// `fatal_error.<code>` → Failed when `peer` is a participant of `tx` and `code` is Fatal
/// (PROFILE G-18; `Transactions::terminate_by_participant`).
fn terminate_by_peer(agent: &Agent, tx: &[u8; 32], code: ErrorCode, peer: &str) {
    if let Err(e) = agent
        .transactions
        .terminate_by_participant(tx, code, peer, agent.now())
    {
        tracing::error!(error = %e, "cannot terminate the transaction");
    }
}

type DraftError = (Option<[u8; 32]>, CommitmentError);

/// Checks and signs a `mandate_draft`; returns the transaction, the draft and the answer.
async fn accept_draft(
    agent: &Agent,
    first: &pb::Frame,
    peer: Option<&str>,
) -> Result<([u8; 32], Mandate, pb::Frame), DraftError> {
    let frame = framing::decode_for(first, Rpc::Commit, Direction::Request)
        .map_err(|e| (None, e.into()))?;
    if frame.frame_type != "mandate_draft" {
        return Err((
            None,
            CommitmentError::Invalid(format!(
                "the first Commit frame must be a mandate_draft, got {}",
                frame.frame_type
            )),
        ));
    }
    let mandate = parse_draft(&frame.body).map_err(|e| (None, e))?;
    let tx = *mandate.terms().terms_id.as_bytes();
    let known = agent.transactions.get(&tx).is_some();
    let ktx = known.then_some(tx);
    if known {
        audit_message(agent, &tx, false, &frame, peer.unwrap_or(""));
    }
    if let Some(ps) = &mandate.preconditions {
        check_predicate_limits(ps).map_err(|e| (ktx, e))?;
    }
    let signing_input = mandate.try_signing_input().map_err(|e| {
        (
            ktx,
            CommitmentError::Invalid(format!("no deterministic encoding: {e}")),
        )
    })?;
    // Immutability: another content under a known Mandate id is 0100 (SPEC-IX-04).
    if !agent.fault("skip-mandate-id-binding") {
        agent
            .reserve_uuid(mandate.mandate_id, &signing_input)
            .map_err(|e| (ktx, e.into()))?;
    }
    // The requester may commit the moment it holds the Terms, a little before this side has
    // recorded them from the closing acceptance: wait for them, bounded.
    let deadline = tokio::time::Instant::now() + TERMS_RECORD_GRACE;
    let deal = loop {
        let deal = agent.deals.get(&tx);
        if deal.as_ref().is_some_and(|d| d.terms.is_some())
            || tokio::time::Instant::now() >= deadline
        {
            break deal;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    let deal = deal.ok_or_else(|| {
        (
            None,
            CommitmentError::NotReady(format!("no transaction {}", hex::encode(tx))),
        )
    })?;
    let me = agent.did();
    let participants: Vec<String> = mandate
        .terms()
        .participants
        .iter()
        .map(|p| p.agent_id.as_str().to_owned())
        .collect();
    if !participants.contains(&me) || peer.is_some_and(|p| !participants.iter().any(|x| x == p)) {
        return Err((
            ktx,
            CommitmentError::Invalid("the Mandate's participants do not include both ends".into()),
        ));
    }
    let state = agent.transactions.state(&tx);
    let sig = sign_mandate(agent, &mandate).map_err(|e| (ktx, e))?;
    match (state, &deal.mandate) {
        (Some(TxState::Negotiating), _) => {}
        // The same draft again (a retry): the same signature, nothing changes.
        (_, Some(m)) if m.mandate_id == mandate.mandate_id => {}
        (s, _) => {
            return Err((
                ktx,
                CommitmentError::NotReady(format!(
                    "transaction is {}, not Negotiating",
                    s.map(|s| s.name()).unwrap_or("unknown")
                )),
            ));
        }
    }
    let agreed = deal
        .terms
        .as_ref()
        .ok_or_else(|| (ktx, CommitmentError::NotReady("no agreed Terms".into())))?;
    let agreed_bytes = agreed
        .try_to_cbor()
        .map_err(|e| (ktx, CommitmentError::Invalid(e.to_string())))?;
    if agreed_bytes != mandate.terms_bytes() {
        return Err((ktx, CommitmentError::TermsMismatch(hex::encode(tx))));
    }
    check_terms(agent, &tx, mandate.terms()).map_err(|e| (ktx, e))?;
    if agent.now() >= mandate.expiration {
        return Err((
            ktx,
            MandateError::Expired {
                expiration: mandate.expiration,
                now: agent.now(),
            }
            .into(),
        ));
    }
    if let Some(p) = &mandate.predecessor {
        check_predecessor(agent, p).map_err(|e| (ktx, e))?;
    }
    // The complete delegation chain of every other signer, before co-signing
    // (SPEC-III-A-2-06). Defect: co-signs unchecked.
    if !agent.fault("mandate-skips-delegation-check") {
        verify_attestations(agent, &tx, &mandate, None)
            .await
            .map_err(|e| (ktx, e))?;
    }
    let body = Value::map([
        ("mandate_id", uuid_value(&mandate.mandate_id)),
        ("signature", sig.to_value()),
    ]);
    let answer = wire::Frame::new("mandate_signature", body).map_err(|e| (ktx, e.into()))?;
    audit_message(agent, &tx, true, &answer, peer.unwrap_or(""));
    let pbf = framing::encode(&answer).map_err(|e| (ktx, e.into()))?;
    Ok((tx, mandate, pbf))
}

/// Waits for the closing `mandate` and applies it (T2 on this side).
async fn await_mandate(
    agent: &Agent,
    tx: &[u8; 32],
    draft: &Mandate,
    inbound: &mut tonic::Streaming<pb::Frame>,
    peer: &str,
) -> Result<(), CommitmentError> {
    let pbf = match tokio::time::timeout(COMMIT_TIMEOUT, inbound.message()).await {
        Ok(Ok(Some(f))) => f,
        Ok(Ok(None)) => return Ok(()), // the initiator gave up: nothing was committed
        Ok(Err(s)) => {
            return Err(CommitmentError::Remote(Box::new(RemoteError::from_status(
                &s,
            ))));
        }
        Err(_) => {
            return Err(CommitmentError::Unreachable {
                peer: peer.to_owned(),
                reason: "no final mandate in time".into(),
            });
        }
    };
    let frame = framing::decode_for(&pbf, Rpc::Commit, Direction::Request)?;
    audit_message(agent, tx, false, &frame, peer);
    if frame.frame_type != "mandate" {
        return Err(CommitmentError::Invalid(format!(
            "expected the final mandate, got {}",
            frame.frame_type
        )));
    }
    let m = Mandate::from_value(&frame.body)?;
    let same = m.try_signing_input().ok() == draft.try_signing_input().ok();
    if !same {
        // Altered after signing (SPEC-III-D-3-01): the signatures cannot cover it.
        return Err(CommitmentError::BadSignature(peer.to_owned()));
    }
    verify_all(agent, tx, &m)?;
    let already = agent
        .deals
        .get(tx)
        .and_then(|d| d.mandate)
        .is_some_and(|x| x.mandate_id == m.mandate_id);
    if !already {
        finalize(agent, tx, &m)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Monitor: preconditions and expiration (SPEC III-D-2; PROFILE G-19)
// ---------------------------------------------------------------------------------------

fn spawn_monitor(agent: Agent, tx: [u8; 32]) {
    if !agent.commitment.lock().monitors.insert(tx) {
        return;
    }
    tokio::spawn(async move {
        monitor(&agent, tx).await;
        agent.commitment.lock().monitors.remove(&tx);
    });
}

/// The next instant at which the evaluation can change: a `time_after`, a precondition
/// expiry or the Mandate's expiration.
fn next_change(m: &Mandate, now: Timestamp) -> Option<Timestamp> {
    fn times(p: &Predicate, out: &mut Vec<Timestamp>) {
        match &p.kind {
            PredicateKind::TimeAfter { at } => out.push(*at),
            PredicateKind::All(a) | PredicateKind::Any(a) => a.iter().for_each(|x| times(x, out)),
            PredicateKind::Event { .. } => {}
        }
    }
    let mut all = vec![m.expiration];
    for p in m.preconditions.iter().flatten() {
        all.push(p.expires);
        times(&p.predicate, &mut all);
    }
    all.into_iter().filter(|t| *t > now).min()
}

async fn monitor(agent: &Agent, tx: [u8; 32]) {
    loop {
        let notified = agent.commitment.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let Some(deal) = agent.deals.get(&tx) else {
            return;
        };
        let (Some(m), Some(status)) = (deal.mandate, deal.mandate_status) else {
            return;
        };
        if agent.transactions.state(&tx) != Some(TxState::Committed) {
            return;
        }
        let now = agent.now();
        let facts = agent.commitment.lock().facts.clone();
        let own = m.mandate_id;
        let f = |e: &str, r: Option<&MtpUuid>| observed(&facts, &own, e, r);
        match status {
            MandateStatus::Pending => match m.check_activation(&f, now) {
                Ok(PredicateResult::Satisfied) if !agent.fault("precondition-never-activates") => {
                    activate(agent, &tx);
                    return;
                }
                Ok(_) => {}
                Err(e @ MandateError::PreconditionExpired { .. }) => {
                    void(agent, &tx, &m, MandateEvent::PreconditionExpired, &e).await;
                    return;
                }
                Err(e @ MandateError::Expired { .. }) => {
                    void(agent, &tx, &m, MandateEvent::MandateExpired, &e).await;
                    return;
                }
                Err(_) => return,
            },
            // Active but not yet settled: void when it expires first (SPEC IV-A Void).
            MandateStatus::Active
                if now >= m.expiration && !agent.fault("ignore-mandate-expiration") =>
            {
                let e = MandateError::Expired {
                    expiration: m.expiration,
                    now,
                };
                void(agent, &tx, &m, MandateEvent::MandateExpired, &e).await;
                return;
            }
            MandateStatus::Active => {}
            MandateStatus::Void | MandateStatus::Superseded => return,
        }
        let wait = next_change(&m, now)
            .map(|t| {
                let ns = t.nanos_since(now).max(0);
                Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
                    + Duration::from_millis(1)
            })
            .unwrap_or(MONITOR_TICK)
            .min(MONITOR_TICK);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = &mut notified => {}
        }
    }
}

/// Every precondition satisfied: Pending → Active, Committed → Settling (T4,
/// SPEC-III-D-2-03; PROFILE G-19). Settlement starts from Settling (`settle`).
fn activate(agent: &Agent, tx: &[u8; 32]) {
    let Some(deal) = agent.deals.get(tx) else {
        return;
    };
    let Some(status) = deal.mandate_status else {
        return;
    };
    match mandate_transition(status, MandateEvent::PreconditionsSatisfied) {
        Ok(next) => {
            agent.deals.update(tx, |d| d.mandate_status = Some(next));
            transition(agent, tx, MandateEvent::PreconditionsSatisfied.tx_event());
        }
        Err(e) => agent.raise(Some(*tx), &e, None),
    }
}

/// Void (4101 / 4102): status, Committed → Void (T10) and a signed `mandate_void`
/// notification to every other participant (SPEC-III-D-2-05/06).
async fn void(agent: &Agent, tx: &[u8; 32], m: &Mandate, event: MandateEvent, err: &MandateError) {
    let Some(deal) = agent.deals.get(tx) else {
        return;
    };
    let status = deal.mandate_status.unwrap_or(MandateStatus::Active);
    // An Active Mandate that was never settled voids on expiry too (SPEC IV-A Void); its
    // status change is outside `mandate_transition`, which starts from Pending only.
    let next = mandate_transition(status, event).unwrap_or(MandateStatus::Void);
    agent.deals.update(tx, |d| d.mandate_status = Some(next));
    agent.raise(Some(*tx), err, None);
    if !transition(agent, tx, event.tx_event()) || agent.fault("void-without-notification") {
        return;
    }
    let me = agent.did();
    for p in &deal.counterparties {
        if *p == me {
            continue;
        }
        let n = negotiation::notification(
            agent,
            NotificationType::MandateVoid,
            tx,
            Some(m.mandate_id),
            Some(&CodeError(err.code())),
            err.to_string(),
        );
        if let Err(e) = negotiation::send_notification(agent, Some(*tx), p, n).await {
            agent.raise(Some(*tx), &e, Some(p));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Notifications
// ---------------------------------------------------------------------------------------

/// A notification received over `Agent/Notify` or NATS (SPEC VI): `mandate_void` from a
/// participant voids our copy of the Mandate (SPEC-III-D-2-05/06) when its precondition
/// or expiration has indeed passed by our clock (± skew).
pub async fn on_notification(agent: &Agent, notification: &Notification) -> Result<(), Status> {
    if notification.kind != NotificationType::MandateVoid {
        return Ok(());
    }
    let deal = notification
        .subject_ref
        .and_then(|m| agent.deals.by_mandate(m.as_bytes()))
        .or_else(|| {
            notification
                .transaction_id
                .and_then(|t| agent.deals.get(t.as_bytes()))
        });
    let Some(deal) = deal else { return Ok(()) };
    let Some(m) = deal.mandate.clone() else {
        return Ok(());
    };
    let tx = deal.id;
    let Some(signer) =
        negotiation::verify_notification(agent, &tx, notification, &deal.counterparties)
    else {
        let err = NegotiationError::BadSignature {
            what: "mandate_void notification",
            signer: deal.counterparties.join(","),
        };
        agent.raise(Some(tx), &err, None);
        return Err(framing::status_for(
            &err,
            Rpc::Notify,
            &ErrorContext::now(&agent.did()),
        ));
    };
    if let Ok(frame) = wire::Frame::new("notification", notification.to_value()) {
        audit_message(agent, &tx, false, &frame, &signer);
    }
    let code = notification.error.as_ref().map(|e| e.code);
    if let Some(c) = code {
        record_received_error(agent, &tx, c, &signer);
    }
    if agent.transactions.state(&tx) != Some(TxState::Committed) {
        return Ok(());
    }
    let skewed = agent
        .now()
        .add_secs(mtp_protocol::profile::CLOCK_SKEW_S as i64)
        .unwrap_or_else(|| agent.now());
    let facts = agent.commitment.lock().facts.clone();
    let own = m.mandate_id;
    let f = |e: &str, r: Option<&MtpUuid>| observed(&facts, &own, e, r);
    let (event, err) = match m.check_activation(&f, skewed) {
        Err(e @ MandateError::PreconditionExpired { .. }) => (MandateEvent::PreconditionExpired, e),
        Err(e @ MandateError::Expired { .. }) => (MandateEvent::MandateExpired, e),
        _ => {
            tracing::warn!(mandate = %m.mandate_id, "mandate_void while the Mandate is valid here");
            return Ok(());
        }
    };
    let status = deal.mandate_status.unwrap_or(MandateStatus::Active);
    let next = mandate_transition(status, event).unwrap_or(MandateStatus::Void);
    agent.deals.update(&tx, |d| d.mandate_status = Some(next));
    let _ = err;
    transition(agent, &tx, event.tx_event());
    Ok(())
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

/// The map `v` without `key`.
fn values_without(v: &Value, key: &str) -> Value {
    match v {
        Value::Map(m) => Value::Map(
            m.iter()
                .filter(|(k, _)| k.as_text() != Some(key))
                .cloned()
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Test-control convenience (docs/iut-contract.md rule 6, time is real): a precondition's
/// `expires_in_ms` and a `time_after` predicate's `at_in_ms` are relative to now; they
/// become the absolute `expires` / `at` of PROFILE G-01.
fn relative_times(agent: &Agent, v: &Value) -> Result<Value, ControlError> {
    let Value::Map(m) = v else {
        return Ok(v.clone());
    };
    let mut out = Vec::with_capacity(m.len());
    for (k, val) in m {
        let rel = match k.as_text() {
            Some("expires_in_ms") => Some("expires"),
            Some("at_in_ms") => Some("at"),
            _ => None,
        };
        match rel {
            Some(abs) => {
                let ms = val
                    .as_u64()
                    .ok_or_else(|| bad(format!("{} must be a uint", k.as_text().unwrap_or(""))))?;
                let t = negotiation::now_plus_ms(agent, ms)
                    .ok_or_else(|| bad("relative time out of range"))?;
                out.push((
                    Value::text(abs),
                    mtp_protocol::primitives::common::tdate_value(t),
                ));
            }
            None => {
                let inner = match val {
                    Value::Array(items) => Value::Array(
                        items
                            .iter()
                            .map(|x| relative_times(agent, x))
                            .collect::<Result<_, _>>()?,
                    ),
                    Value::Map(_) => relative_times(agent, val)?,
                    other => other.clone(),
                };
                out.push((k.clone(), inner));
            }
        }
    }
    Ok(Value::Map(out))
}

fn preconditions_arg(
    agent: &Agent,
    args: &Value,
) -> Result<Option<Vec<Precondition>>, ControlError> {
    let Some(v) = args.get("preconditions") else {
        return Ok(None);
    };
    let items = v
        .as_array()
        .ok_or_else(|| bad("preconditions must be an array"))?;
    let mut out = Vec::with_capacity(items.len());
    for (i, p) in items.iter().enumerate() {
        let p = &relative_times(agent, p)?;
        let pre = Precondition::from_value(p, &format!("preconditions[{i}]"))
            .map_err(|e| ControlError::mtp(&CommitmentError::Object(ObjectError::Schema(e))))?;
        out.push(pre);
    }
    Ok((!out.is_empty()).then_some(out))
}

fn mandate_result(m: &Mandate) -> ControlResult {
    let bytes = m
        .try_to_cbor()
        .map_err(|e| ControlError::Internal(e.to_string()))?;
    Ok(Value::map([
        ("mandate_id", uuid_value(&m.mandate_id)),
        ("mandate", Value::Bytes(bytes)),
    ]))
}

async fn control_commit(agent: &Agent, args: &Value) -> ControlResult {
    let tx = uuid_arg(args, "transaction_id")?;
    let preconditions = preconditions_arg(agent, args)?;
    let expires = match args.get("expires_in_ms") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| bad("expires_in_ms must be a uint"))?,
        ),
    };
    let tx = *tx.as_bytes();
    if agent.deals.get(&tx).is_none() {
        return Err(ControlError::NotFound(format!(
            "transaction {}",
            hex::encode(tx)
        )));
    }
    let m = commit(agent, tx, preconditions, expires, None)
        .await
        .map_err(|e| ControlError::mtp(&e))?;
    mandate_result(&m)
}

/// `supersede {mandate_id, changes?}` (SPEC III-D-3; PROFILE G-19): a new negotiation with
/// the same parties, Offer and Request, opening with the agreed Terms plus `changes`; its
/// Mandate names the original as `predecessor`. `changes.preconditions` (an array) makes
/// the successor conditional; `changes.expires_in_ms` sets its expiration.
async fn control_supersede(agent: &Agent, args: &Value) -> ControlResult {
    let mandate_id = uuid_arg(args, "mandate_id")?;
    let old = agent
        .deals
        .by_mandate(mandate_id.as_bytes())
        .ok_or_else(|| ControlError::NotFound(format!("mandate {mandate_id}")))?;
    check_predecessor(agent, &mandate_id).map_err(|e| ControlError::mtp(&e))?;
    let (Some(offer), Some(request), Some(terms)) =
        (old.offer.clone(), old.request.clone(), old.terms.clone())
    else {
        return Err(ControlError::Mtp {
            code: ErrorCode::UndefinedTransition,
            message: "only the requesting side, holding the Offer and Request, supersedes".into(),
        });
    };
    if request.agent_id.as_str() != agent.did() {
        return Err(ControlError::Mtp {
            code: ErrorCode::UndefinedTransition,
            message: "only the requesting agent opens the successor negotiation".into(),
        });
    }
    let mut changes: Map = args
        .get("changes")
        .and_then(Value::as_map)
        .map(<[_]>::to_vec)
        .unwrap_or_default();
    let take = |m: &mut Map, k: &str| {
        m.iter()
            .position(|(key, _)| key.as_text() == Some(k))
            .map(|i| m.remove(i).1)
    };
    let pre = take(&mut changes, "preconditions")
        .map(|v| preconditions_arg(agent, &Value::map([("preconditions", v)])))
        .transpose()?
        .flatten();
    let expires = take(&mut changes, "expires_in_ms").and_then(|v| v.as_u64());
    // The agreed dimensions, with the changes over them.
    let mut opening: Map = match terms.to_value() {
        Value::Map(m) => m
            .into_iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_text(),
                    Some(
                        "terms_id"
                            | "participants"
                            | "offer_ref"
                            | "request_ref"
                            | "negotiation_log"
                            | "signatures"
                    )
                )
            })
            .collect(),
        _ => Map::new(),
    };
    negotiation::merge_terms(&mut opening, &changes);
    let record = negotiation::record(agent, &old.id);
    let (round_timeout_ms, max_rounds) = record
        .as_ref()
        .map(|r| (r.context.round_timeout_ms, r.context.max_rounds))
        .unwrap_or((
            negotiation::DEFAULT_ROUND_TIMEOUT_MS,
            negotiation::DEFAULT_MAX_ROUNDS,
        ));
    let spec = negotiation::NegotiationSpec {
        counterparties: old.counterparties.clone(),
        offer,
        request,
        round_timeout_ms,
        max_rounds,
        strategy: negotiation::policy(agent).strategy,
        conditions: None,
        terms: Some(opening),
    };
    let (nid, handle) = negotiation::negotiate(agent, spec)
        .await
        .map_err(|e| ControlError::mtp(&e))?;
    let outcome = handle
        .await
        .map_err(|e| ControlError::Internal(e.to_string()))?;
    if outcome != negotiation::Outcome::Agreed {
        return Err(ControlError::Mtp {
            code: match outcome {
                negotiation::Outcome::Terminated(s) => s.code(),
                negotiation::Outcome::Failed(c) => c,
                negotiation::Outcome::Agreed => ErrorCode::UndefinedTransition,
            },
            message: format!("successor negotiation ended: {}", outcome.name()),
        });
    }
    let m = commit(agent, *nid.as_bytes(), pre, expires, Some(mandate_id))
        .await
        .map_err(|e| ControlError::mtp(&e))?;
    let mut out = mandate_result(&m)?;
    if let Value::Map(entries) = &mut out {
        entries.push((Value::text("transaction_id"), uuid_value(&nid)));
    }
    Ok(out)
}

/// This layer's test-control actions (docs/iut-contract.md): `commit`, `supersede`.
pub async fn control(agent: &Agent, action: &str, args: &Value) -> Option<ControlResult> {
    match action {
        "commit" => Some(control_commit(agent, args).await),
        "supersede" => Some(control_supersede(agent, args).await),
        "reset" => {
            reset(agent);
            Some(Ok(Value::map::<&str>([])))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix_secs(1_800_000_000 + s).expect("time")
    }

    #[test]
    fn predicate_limits_follow_g01() {
        let mut p = Predicate::event("delivery_confirmed", None);
        for _ in 0..7 {
            p = Predicate::all(vec![p]);
        }
        let ok = Precondition {
            id: "p".into(),
            predicate: p.clone(),
            expires: t(10),
            unknown: Map::new(),
        };
        assert!(check_predicate_limits(std::slice::from_ref(&ok)).is_ok());
        let deep = Precondition {
            predicate: Predicate::all(vec![p]),
            ..ok.clone()
        };
        let e = check_predicate_limits(&[deep]).expect_err("depth 9");
        assert_eq!(e.code(), ErrorCode::SchemaViolation);
        let wide = Precondition {
            predicate: Predicate::any(
                (0..64)
                    .map(|_| Predicate::time_after(t(1)))
                    .collect::<Vec<_>>(),
            ),
            ..ok
        };
        assert!(check_predicate_limits(&[wide]).is_err(), "65 nodes");
    }

    #[test]
    fn events_without_ref_name_the_own_mandate() {
        let own = MtpUuid::new(ObjectType::Mandate, 1, [0; 6], [1; 17]);
        let other = MtpUuid::new(ObjectType::Mandate, 1, [0; 6], [2; 17]);
        let facts = vec![("delivery_confirmed".to_owned(), Some(other))];
        assert!(!observed(&facts, &own, "delivery_confirmed", None));
        assert!(observed(&facts, &own, "delivery_confirmed", Some(&other)));
        let facts = vec![("delivery_confirmed".to_owned(), Some(own))];
        assert!(observed(&facts, &own, "delivery_confirmed", None));
        let facts = vec![("ext:x:y".to_owned(), None)];
        assert!(observed(&facts, &own, "ext:x:y", None));
    }
}
