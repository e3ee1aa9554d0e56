//! Verification Layer (SPEC III-F): delivery, the four verification methods, Receipts,
//! disputes and revised Receipts (SPEC II-D; PROFILE G-21, G-22).
//!
//! - `deliver`: the provider sends a signed `delivery` over `Agent/Deliver` (push); called
//!   on the requester it sends a signed `delivery_request` and stores the `delivery` the
//!   provider answers with (pull, the computation method's input).
//! - `verify`: the requester applies one of the four methods (SPEC-III-F-1-01) and issues
//!   a signed Receipt for every outcome; it is stored, exchanged over `Agent/Verify` and
//!   drives Verifying → Fulfilled / Disputed / Failed (SPEC-IV-B-I07, SPEC-IV-B-I08).
//!   - `attestation`: the provider's signed delivery carries its attestation of
//!     fulfilment; the requester (the receiving Agent) confirms it with its own signed
//!     statement, the Receipt.
//!   - `evidence`: the SHA-256 of the delivered payload is the evidence; a claimed digest
//!     that differs is 6100 Evidence Tampered.
//!   - `computation`: the requester recomputes the deterministic service function
//!     [`computation_output`] of the delivery input and compares (6100 on mismatch).
//!   - `third_party`: the designated verifier Agent (a known peer) signs the Receipt
//!     itself (PROFILE G-22); the requester checks and distributes it. A verifier builds
//!     one with [`third_party_receipt`].
//! - `dispute`: a signed Dispute Initiation Record (SPEC-III-F-2-02) in a `disputed`
//!   Receipt (Verifying → Disputed); `resolve_dispute`: the revised Receipt naming the
//!   disputed one as `predecessor` (Disputed → Resolved, SPEC-II-D-09; receipts are never
//!   superseded, SPEC-II-D-08 / PROFILE G-21).
//!
//! The shared plumbing of the settlement, verification and attribution layers (sending a
//! frame to a peer with audit and events, signed error notifications, Fatal handling) is
//! at the end of this file.

use std::collections::BTreeMap;
use std::sync::Mutex;

use mtp_protocol::audit::{AuditRecord, events as audit_events};
use mtp_protocol::cbor::Value;
use mtp_protocol::crypto::sha256;
use mtp_protocol::error_record::{MtpErrorRecord, Notification, NotificationType};
use mtp_protocol::errors::{Coded, ErrorCode, Layer, Severity};
use mtp_protocol::primitives::common::{
    CborObject, Errors, Map, MapBuilder, MapReader, ObjectError, Participant, Role as PRole,
    Signature, SingleSigned, ValidationError, check_encodable, read_bytes, read_open_map,
    read_signature_field, read_tdate, read_text, read_uuid, tdate_value, uuid_value,
};
use mtp_protocol::primitives::receipt::{
    DisputeInitiation, Outcome, PartialFulfillment, Verification, VerificationMethod,
};
use mtp_protocol::primitives::{Receipt, Terms};
use mtp_protocol::state_machine::{ReceiptOutcome, TxEvent, TxState};
use mtp_protocol::time::Timestamp;
use mtp_protocol::uuid::{MtpUuid, ObjectType};
use mtp_protocol::verification::DisputeInitiationRecord;
use mtp_protocol::wire::{self, WireError};
use tonic::{Request, Response, Status};

use crate::agent::Agent;
use crate::deal::Deal;
use crate::events::{Event, EventKind};
use crate::services::control::{ControlError, ControlResult, uuid_arg};
use crate::transaction::AGENT_TRAIL_ID;
use crate::transport::sync::framing::{self, Ack, ErrorContext, FramingError, RemoteError, Rpc};
use crate::transport::sync::{ConnectError, pb};

use super::{attribution, settlement};

/// Deliberate defects of this layer (`crate::faults`).
pub const FAULTS: &[crate::faults::Fault] = &[
    crate::faults::Fault {
        name: "disputed-receipt-fulfils",
        breaks: "SPEC-IV-B-I08 SPEC-IV-A-I07",
        description: "a Receipt with outcome disputed (issued or received) moves Verifying to Fulfilled instead of Disputed",
    },
    crate::faults::Fault {
        name: "dispute-procedure-not-started",
        breaks: "SPEC-II-D-05",
        description: "entering Disputed does not start (log) the dispute resolution procedure named in the Terms",
    },
    crate::faults::Fault {
        name: "extension-adds-transition",
        breaks: "SPEC-XI-06",
        description: "a received Receipt carrying extension (unknown) fields adds an extension transition `lemay.ext.review` to the audit trail",
    },
    crate::faults::Fault {
        name: "settlement-failure-as-fatal-error",
        breaks: "SPEC-IV-B-I06",
        description: "a settlement failure ends Settling by the generic fatal_error event instead of the settlement_failed transition (T6)",
    },
    crate::faults::Fault {
        name: "receipt-requires-attribution",
        breaks: "SPEC-III-G-I01",
        description: "refuses a two-party Receipt that carries no Attribution Record",
    },
    crate::faults::Fault {
        name: "receipt-participants-from-terms",
        breaks: "SPEC-II-D-01",
        description: "a received Receipt without participants is completed from its own Terms",
    },
    crate::faults::Fault {
        name: "skip-receipt-outcome-blocks",
        breaks: "SPEC-II-D-02, SPEC-II-D-04, SPEC-II-D-06",
        description: "accepts a Receipt whose outcome-dependent block is missing",
    },
    crate::faults::Fault {
        name: "receipt-mandate-by-sender",
        breaks: "BIND-VII-D-02",
        description: "a Receipt naming an unknown Mandate is applied to the sender's latest transaction",
    },
    crate::faults::Fault {
        name: "receipt-overwrite-by-id",
        breaks: "SPEC-II-D-08",
        description: "a known receipt_id with other content replaces the stored Receipt",
    },
    crate::faults::Fault {
        name: "revised-receipt-as-new-outcome",
        breaks: "SPEC-II-D-09",
        description: "a received Receipt with predecessor is treated as a first Receipt",
    },
    crate::faults::Fault {
        name: "skip-predecessor-check",
        breaks: "BIND-VII-D-I02",
        description: "accepts a revised Receipt whose predecessor was never issued",
    },
    crate::faults::Fault {
        name: "receipt-signed-before-evidence",
        breaks: "SPEC-II-D-01",
        description: "adds to the evidence after signing the Receipt (the signature no longer binds it)",
    },
    crate::faults::Fault {
        name: "computation-trusts-delivery",
        breaks: "SPEC-III-F-01",
        description: "computation-based verification takes the delivered result without recomputing it",
    },
    crate::faults::Fault {
        name: "third-party-signer-is-requester",
        breaks: "SPEC-III-F-1-01",
        description: "checks a third-party Receipt against the requester's key instead of the verifier's",
    },
    crate::faults::Fault {
        name: "partial-ratio-ignored",
        breaks: "SPEC-II-D-02",
        description: "the Partial Fulfillment Specification ignores the announced ratio (always 0.5)",
    },
    crate::faults::Fault {
        name: "dispute-record-without-provisions",
        breaks: "SPEC-III-F-2-02",
        description: "the Dispute Initiation Record names no violated Terms provision",
    },
    crate::faults::Fault {
        name: "revised-receipt-without-predecessor",
        breaks: "SPEC-II-D-09",
        description: "the revised Receipt of a dispute resolution omits predecessor",
    },
    crate::faults::Fault {
        name: "receipt-without-attribution",
        breaks: "BIND-VII-D-04, SPEC-III-G-2-03",
        description: "issues Receipts without the transaction's Attribution Record",
    },
];

/// Requirement of the delivery objects (the Value reaches the requester, SPEC-III-F-01).
const DELIVERY_REQ: &str = "SPEC-III-F-01";
/// Failure classification when the verifying Agent determines a failure without a failing
/// check and names no code (PROFILE G-22).
pub const DEFAULT_FAILURE_CLASSIFICATION: ErrorCode = ErrorCode::VerificationEvidenceUnavailable;
/// Domain separation of the reference computation service.
const COMPUTATION_DOMAIN: &[u8] = b"mtp-reference-computation/1";

// ---------------------------------------------------------------------------------------
// Delivery objects (mtp.cddl `delivery`, `delivery-request`; PROFILE G-09)
// ---------------------------------------------------------------------------------------

/// `delivery = { mandate_id, content_type, payload, timestamp, signature }`, signed by the
/// provider. This agent adds (open map, PROFILE G-26) `input` — the computation input the
/// payload was produced from — and `attestation` — the provider's statement of fulfilment
/// `{ statement: tstr, terms_id: mtp-uuid }`.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    pub mandate_id: MtpUuid,
    pub content_type: String,
    pub payload: Vec<u8>,
    pub timestamp: Timestamp,
    pub input: Option<Vec<u8>>,
    pub attestation: Option<Map>,
    pub signature: Option<Signature>,
    pub unknown: Map,
}

impl CborObject for Delivery {
    const NAME: &'static str = "delivery";

    fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("mandate_id", uuid_value(&self.mandate_id))
            .put("content_type", Value::text(self.content_type.as_str()))
            .put("payload", Value::Bytes(self.payload.clone()))
            .put("timestamp", tdate_value(self.timestamp))
            .put_opt("input", self.input.clone().map(Value::Bytes))
            .put_opt("attestation", self.attestation.clone().map(Value::Map))
            .put_opt(
                "signature",
                self.signature.as_ref().map(Signature::to_value),
            )
            .extend_unknown(&self.unknown)
            .build()
    }

    fn from_value(v: &Value) -> Result<Self, ObjectError> {
        check_encodable(v)?;
        let req = DELIVERY_REQ;
        let mut r = MapReader::new(v, "")?;
        let mut e = Errors::new();
        let mandate_id = r.field("mandate_id", req, &mut e, |v, p| {
            read_uuid(v, p, ObjectType::Mandate, req)
        });
        let content_type = r.field("content_type", req, &mut e, |v, p| {
            read_text(v, p, req).map(str::to_owned)
        });
        let payload = r.field("payload", req, &mut e, |v, p| {
            read_bytes(v, p, req).map(<[u8]>::to_vec)
        });
        let timestamp = r.field("timestamp", req, &mut e, |v, p| read_tdate(v, p, req));
        let input = r.field_opt("input", &mut e, |v, p| {
            read_bytes(v, p, req).map(<[u8]>::to_vec)
        });
        let attestation = r.field_opt("attestation", &mut e, |v, p| read_open_map(v, p, req));
        let signature = read_signature_field(&mut r, req, &mut e);
        let unknown = r.unknown();
        match (mandate_id, content_type, payload, timestamp, signature) {
            (Some(mandate_id), Some(content_type), Some(payload), Some(timestamp), Some(sig))
                if e.is_empty() =>
            {
                Ok(Delivery {
                    mandate_id,
                    content_type,
                    payload,
                    timestamp,
                    input,
                    attestation,
                    signature: Some(sig),
                    unknown,
                })
            }
            _ => Err(e.into_object_error()),
        }
    }
}

mtp_protocol::impl_single_signed!(Delivery);

/// `delivery-request = { mandate_id, ? content_type, ? input, timestamp, signature }`,
/// signed by the requester (synchronous delivery, `Agent/Deliver` answered by `delivery`).
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryRequest {
    pub mandate_id: MtpUuid,
    pub content_type: Option<String>,
    pub input: Option<Vec<u8>>,
    pub timestamp: Timestamp,
    pub signature: Option<Signature>,
    pub unknown: Map,
}

impl CborObject for DeliveryRequest {
    const NAME: &'static str = "delivery-request";

    fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("mandate_id", uuid_value(&self.mandate_id))
            .put_opt(
                "content_type",
                self.content_type.as_deref().map(Value::text),
            )
            .put_opt("input", self.input.clone().map(Value::Bytes))
            .put("timestamp", tdate_value(self.timestamp))
            .put_opt(
                "signature",
                self.signature.as_ref().map(Signature::to_value),
            )
            .extend_unknown(&self.unknown)
            .build()
    }

    fn from_value(v: &Value) -> Result<Self, ObjectError> {
        check_encodable(v)?;
        let req = DELIVERY_REQ;
        let mut r = MapReader::new(v, "")?;
        let mut e = Errors::new();
        let mandate_id = r.field("mandate_id", req, &mut e, |v, p| {
            read_uuid(v, p, ObjectType::Mandate, req)
        });
        let content_type = r.field_opt("content_type", &mut e, |v, p| {
            read_text(v, p, req).map(str::to_owned)
        });
        let input = r.field_opt("input", &mut e, |v, p| {
            read_bytes(v, p, req).map(<[u8]>::to_vec)
        });
        let timestamp = r.field("timestamp", req, &mut e, |v, p| read_tdate(v, p, req));
        let signature = read_signature_field(&mut r, req, &mut e);
        let unknown = r.unknown();
        match (mandate_id, timestamp, signature) {
            (Some(mandate_id), Some(timestamp), Some(sig)) if e.is_empty() => Ok(DeliveryRequest {
                mandate_id,
                content_type,
                input,
                timestamp,
                signature: Some(sig),
                unknown,
            }),
            _ => Err(e.into_object_error()),
        }
    }
}

mtp_protocol::impl_single_signed!(DeliveryRequest);

/// The reference computation service: a deterministic function of the delivery input,
/// `SHA-256("mtp-reference-computation/1" ‖ input)`. Computation-based verification
/// recomputes it and compares with the delivered payload.
pub fn computation_output(input: &[u8]) -> [u8; 32] {
    let mut buf = COMPUTATION_DOMAIN.to_vec();
    buf.extend_from_slice(input);
    sha256(&buf)
}

// ---------------------------------------------------------------------------------------
// State and errors
// ---------------------------------------------------------------------------------------

/// A delivery this agent sent or received, with the hash of the frame that carried it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredDelivery {
    pub delivery: Delivery,
    pub frame_hash: [u8; 32],
}

/// This layer's state inside the agent: the latest delivery of each transaction.
#[derive(Debug, Default)]
pub struct State {
    deliveries: Mutex<BTreeMap<[u8; 32], StoredDelivery>>,
}

impl State {
    /// The latest delivery of a transaction.
    pub fn delivery(&self, tx: &[u8; 32]) -> Option<StoredDelivery> {
        self.lock().get(tx).cloned()
    }

    fn put(&self, tx: [u8; 32], d: StoredDelivery) {
        self.lock().insert(tx, d);
    }

    /// Forget everything (test-control `reset`).
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<[u8; 32], StoredDelivery>> {
        self.deliveries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Why a delivery, receipt or verification is refused.
#[derive(Debug, thiserror::Error)]
pub enum VerificationError {
    #[error("{0}")]
    Object(#[from] ObjectError),
    #[error("no transaction of this agent has Mandate {0}")]
    UnknownMandate(String),
    #[error("{0} is not a party of this transaction")]
    NotAParty(String),
    #[error("signer {0} is not a known peer")]
    UnknownSigner(String),
    #[error("evidence tampered: {0}")]
    Tampered(String),
    #[error("receipt {0} reuses an id with different content")]
    ReceiptIdReuse(String),
    #[error("revised receipt names predecessor {0}, which this transaction never issued")]
    UnknownPredecessor(String),
    #[error("receipt does not match the transaction: {0}")]
    Mismatch(String),
    #[error(transparent)]
    Attribution(#[from] attribution::AttributeError),
    #[error(transparent)]
    Tx(#[from] crate::transaction::TxError),
}

impl Coded for VerificationError {
    fn code(&self) -> ErrorCode {
        match self {
            VerificationError::Object(e) => e.code(),
            VerificationError::UnknownMandate(_)
            | VerificationError::NotAParty(_)
            | VerificationError::Mismatch(_)
            | VerificationError::UnknownPredecessor(_) => ErrorCode::SchemaViolation,
            VerificationError::UnknownSigner(_) => ErrorCode::SignatureVerificationFailure,
            VerificationError::Tampered(_) => ErrorCode::EvidenceTampered,
            VerificationError::ReceiptIdReuse(_) => ErrorCode::UuidReuse,
            VerificationError::Attribution(e) => e.code(),
            VerificationError::Tx(e) => e.code(),
        }
    }

    fn requirement(&self) -> Option<&'static str> {
        match self {
            VerificationError::Object(e) => e.requirement(),
            VerificationError::ReceiptIdReuse(_) => Some("SPEC-II-D-08"),
            VerificationError::UnknownPredecessor(_) => Some("SPEC-II-D-09"),
            VerificationError::Attribution(e) => e.requirement(),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Test-control actions
// ---------------------------------------------------------------------------------------

/// This layer's test-control actions (docs/iut-contract.md); `None` for other actions.
pub async fn control(agent: &Agent, action: &str, args: &Value) -> Option<ControlResult> {
    Some(match action {
        "deliver" => deliver(agent, args).await,
        "verify" => verify(agent, args).await,
        "dispute" => dispute(agent, args).await,
        "resolve_dispute" => resolve_dispute(agent, args).await,
        "reset" => {
            agent.verification.clear();
            Ok(Value::Map(Vec::new()))
        }
        _ => return None,
    })
}

/// The deal of `transaction_id` with its Terms and Mandate.
pub(crate) fn committed_deal(
    agent: &Agent,
    args: &Value,
) -> Result<(Deal, Terms, MtpUuid), ControlError> {
    let tx = uuid_arg(args, "transaction_id")?;
    let deal = agent
        .deals
        .get(&tx)
        .ok_or_else(|| ControlError::NotFound(format!("transaction {}", hex::encode(tx))))?;
    let mandate_id =
        deal.mandate
            .as_ref()
            .map(|m| m.mandate_id)
            .ok_or_else(|| ControlError::Mtp {
                code: ErrorCode::UndefinedTransition,
                message: "the transaction has no Mandate (not committed)".into(),
            })?;
    let terms = deal_terms(&deal).ok_or_else(|| ControlError::Mtp {
        code: ErrorCode::UndefinedTransition,
        message: "the transaction has no Terms".into(),
    })?;
    Ok((deal, terms, mandate_id))
}

/// The Terms of a deal (its own, or those embedded in its Mandate).
pub(crate) fn deal_terms(deal: &Deal) -> Option<Terms> {
    deal.terms
        .clone()
        .or_else(|| deal.mandate.as_ref().map(|m| m.terms().clone()))
}

/// The DID of the participant with `role` in the Terms.
pub(crate) fn participant(terms: &Terms, role: PRole) -> Option<String> {
    terms
        .participants
        .iter()
        .find(|p| p.role == role)
        .map(|p| p.agent_id.as_str().to_owned())
}

fn undefined(what: &str, state: Option<TxState>) -> ControlError {
    ControlError::Mtp {
        code: ErrorCode::UndefinedTransition,
        message: format!(
            "{what} is not defined in state {}",
            state.map(|s| s.name()).unwrap_or("unknown")
        ),
    }
}

fn opt_text<'a>(args: &'a Value, key: &str) -> Result<Option<&'a str>, ControlError> {
    match args.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_text()
            .map(Some)
            .ok_or_else(|| ControlError::BadArgs(format!("argument {key:?} must be text"))),
    }
}

fn opt_bytes<'a>(args: &'a Value, key: &str) -> Result<Option<&'a [u8]>, ControlError> {
    match args.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_bytes()
            .map(Some)
            .ok_or_else(|| ControlError::BadArgs(format!("argument {key:?} must be bytes"))),
    }
}

fn opt_map(args: &Value, key: &str) -> Result<Map, ControlError> {
    match args.get(key) {
        None => Ok(Map::new()),
        Some(Value::Map(m)) => Ok(m.clone()),
        Some(_) => Err(ControlError::BadArgs(format!(
            "argument {key:?} must be a map"
        ))),
    }
}

fn opt_number(args: &Value, key: &str) -> Result<Option<f64>, ControlError> {
    match args.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|f| f.is_finite())
            .map(Some)
            .ok_or_else(|| ControlError::BadArgs(format!("argument {key:?} must be a number"))),
    }
}

fn text_list(args: &Value, key: &str, default: &[&str]) -> Result<Vec<String>, ControlError> {
    match args.get(key) {
        None => Ok(default.iter().map(|s| (*s).to_owned()).collect()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_text().map(str::to_owned).ok_or_else(|| {
                    ControlError::BadArgs(format!("argument {key:?} must be a list of text"))
                })
            })
            .collect(),
        Some(_) => Err(ControlError::BadArgs(format!(
            "argument {key:?} must be a list of text"
        ))),
    }
}

fn map_get<'a>(m: &'a Map, key: &str) -> Option<&'a Value> {
    m.iter()
        .find(|(k, _)| k.as_text() == Some(key))
        .map(|(_, v)| v)
}

/// `deliver`: the provider pushes a signed `delivery`; the requester pulls one with a
/// signed `delivery_request` (its `input` is the computation input).
async fn deliver(agent: &Agent, args: &Value) -> ControlResult {
    let (deal, terms, mandate_id) = committed_deal(agent, args)?;
    let state = agent.transactions.state(&deal.id);
    if !matches!(
        state,
        Some(TxState::Committed | TxState::Settling | TxState::Verifying)
    ) {
        return Err(undefined("delivery", state));
    }
    let me = agent.did();
    let content_type = opt_text(args, "content_type")?
        .unwrap_or("application/octet-stream")
        .to_owned();
    let input = opt_bytes(args, "input")?.map(<[u8]>::to_vec);
    let provider = participant(&terms, PRole::Provider);
    let requester = participant(&terms, PRole::Requester);
    if provider.as_deref() != Some(me.as_str()) {
        if requester.as_deref() != Some(me.as_str()) {
            return Err(ControlError::BadArgs(
                "only the provider delivers and only the requester requests a delivery".into(),
            ));
        }
        // Requester side: pull (synchronous delivery).
        let provider = provider.ok_or_else(|| {
            ControlError::BadArgs("the Terms name no provider to request delivery from".into())
        })?;
        let mut request = DeliveryRequest {
            mandate_id,
            content_type: Some(content_type),
            input,
            timestamp: agent.now(),
            signature: None,
            unknown: Map::new(),
        };
        request
            .sign(&agent.keys.signing, key_id(agent))
            .map_err(|e| ControlError::mtp(&e))?;
        let frame = wire::Frame::new("delivery_request", request.to_value())
            .map_err(|e| ControlError::mtp(&e))?;
        let answer = call(agent, &provider, Rpc::Deliver, &frame, Some(deal.id))
            .await
            .map_err(|e| ControlError::mtp(&e))?;
        if answer.frame_type != "delivery" {
            return Err(ControlError::Mtp {
                code: ErrorCode::SchemaViolation,
                message: format!("provider answered {:?}, not a delivery", answer.frame_type),
            });
        }
        let stored = accept_delivery(agent, &deal, &answer, &provider)
            .await
            .map_err(|e| ControlError::mtp(&e))?;
        return Ok(delivery_result(&stored));
    }
    // Provider side: push.
    let payload = match opt_bytes(args, "payload")? {
        Some(p) => p.to_vec(),
        None => match &input {
            Some(i) => computation_output(i).to_vec(),
            None => b"mtp reference delivery".to_vec(),
        },
    };
    let delivery = sign_delivery(agent, &terms, mandate_id, content_type, payload, input)
        .map_err(|e| ControlError::mtp(&e))?;
    let frame =
        wire::Frame::new("delivery", delivery.to_value()).map_err(|e| ControlError::mtp(&e))?;
    let stored = StoredDelivery {
        delivery,
        frame_hash: frame.hash,
    };
    agent.verification.put(deal.id, stored.clone());
    let requesters: Vec<String> = terms
        .participants
        .iter()
        .filter(|p| p.role == PRole::Requester && p.agent_id.as_str() != me)
        .map(|p| p.agent_id.as_str().to_owned())
        .collect();
    for peer in &requesters {
        call(agent, peer, Rpc::Deliver, &frame, Some(deal.id))
            .await
            .map_err(|e| ControlError::mtp(&e))?;
    }
    Ok(delivery_result(&stored))
}

fn sign_delivery(
    agent: &Agent,
    terms: &Terms,
    mandate_id: MtpUuid,
    content_type: String,
    payload: Vec<u8>,
    input: Option<Vec<u8>>,
) -> Result<Delivery, ObjectError> {
    let mut delivery = Delivery {
        mandate_id,
        content_type,
        payload,
        timestamp: agent.now(),
        input,
        attestation: Some(vec![
            (Value::text("statement"), Value::text("fulfilled")),
            (Value::text("terms_id"), uuid_value(&terms.terms_id)),
        ]),
        signature: None,
        unknown: Map::new(),
    };
    delivery.sign(&agent.keys.signing, key_id(agent))?;
    Ok(delivery)
}

fn delivery_result(d: &StoredDelivery) -> Value {
    Value::map([
        ("frame_hash", Value::Bytes(d.frame_hash.to_vec())),
        (
            "payload_sha256",
            Value::Bytes(sha256(&d.delivery.payload).to_vec()),
        ),
        ("delivery", Value::Bytes(d.delivery.to_cbor())),
    ])
}

/// Requested outcome of `verify` (control.cddl).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Requested {
    Fulfilled,
    Failed,
    Partial,
}

/// `verify`: one of the four methods, then a signed Receipt (SPEC-III-F-1-01, SPEC-II-D-01).
async fn verify(agent: &Agent, args: &Value) -> ControlResult {
    let (deal, terms, mandate_id) = committed_deal(agent, args)?;
    let state = agent.transactions.state(&deal.id);
    if state != Some(TxState::Verifying) {
        return Err(undefined("a Receipt", state));
    }
    // A counterparty credential revoked after commit: the Terms' dispute procedure, whatever
    // was delivered — a `disputed` Receipt citing 1102 (SPEC-III-A-3-03; PROFILE G-18, G-55).
    if let Some(revoked) = agent.settlement.revoked_after_commit(&deal.id) {
        let reason = format!("credential of {revoked} revoked after commit (1102)");
        let dargs = Value::map([
            (
                "transaction_id",
                args.get("transaction_id").cloned().unwrap_or(Value::Null),
            ),
            ("reason", Value::text(reason)),
            (
                "violated_provisions",
                Value::Array(vec![Value::text("authority")]),
            ),
        ]);
        return dispute_citing(agent, &dargs, Some(ErrorCode::CredentialRevoked)).await;
    }
    let method = match opt_text(args, "method")? {
        None => VerificationMethod::Attestation,
        Some(m) => VerificationMethod::parse(m)
            .ok_or_else(|| ControlError::BadArgs(format!("unknown verification method {m:?}")))?,
    };
    let requested = match opt_text(args, "outcome")? {
        None | Some("fulfilled") => Requested::Fulfilled,
        Some("failed") => Requested::Failed,
        Some("partial") | Some("partially_fulfilled") => Requested::Partial,
        Some(o) => return Err(ControlError::BadArgs(format!("unknown outcome {o:?}"))),
    };
    let given = opt_map(args, "evidence")?;
    if method == VerificationMethod::ThirdParty {
        return accept_third_party(agent, &deal, &terms, mandate_id, &given).await;
    }
    let me = agent.did();
    if participant(&terms, PRole::Requester).as_deref() != Some(me.as_str()) {
        return Err(ControlError::BadArgs(
            "the requester issues Receipts for attestation, evidence and computation (PROFILE G-22)"
                .into(),
        ));
    }
    let stored = agent
        .verification
        .delivery(&deal.id)
        .ok_or_else(|| ControlError::Mtp {
            code: ErrorCode::VerificationEvidenceUnavailable,
            message: "nothing was delivered for this transaction".into(),
        })?;
    let d = &stored.delivery;
    let payload_sha = sha256(&d.payload);
    let provider = participant(&terms, PRole::Provider).unwrap_or_default();
    let mut evidence: Map = given.clone();
    let mut put = |k: &str, v: Value| {
        evidence.retain(|(key, _)| key.as_text() != Some(k));
        evidence.push((Value::text(k), v));
    };
    put("delivery_hash", Value::Bytes(stored.frame_hash.to_vec()));
    // A failing check: the Receipt is `failed` with this classification (PROFILE G-22).
    let mut check_failure: Option<VerificationError> = None;
    match method {
        VerificationMethod::Attestation => {
            let Some(att) = &d.attestation else {
                return Err(ControlError::Mtp {
                    code: ErrorCode::VerificationEvidenceUnavailable,
                    message: "the delivery carries no attestation".into(),
                });
            };
            put("attested_by", Value::text(provider.as_str()));
            put("attestation", Value::Map(att.clone()));
            put("delivery", Value::Bytes(d.to_cbor()));
            put(
                "statement",
                Value::text(match requested {
                    Requested::Fulfilled => "received; quality thresholds satisfied",
                    Requested::Partial => "received; some quality thresholds not satisfied",
                    Requested::Failed => "not fulfilled",
                }),
            );
        }
        VerificationMethod::Evidence => {
            if let Some(claimed) = map_get(&given, "payload_sha256")
                && claimed.as_bytes() != Some(payload_sha.as_slice())
            {
                check_failure = Some(VerificationError::Tampered(
                    "the evidence digest differs from the SHA-256 of the delivered payload".into(),
                ));
            }
            put("payload_sha256", Value::Bytes(payload_sha.to_vec()));
            put("content_type", Value::text(d.content_type.as_str()));
        }
        VerificationMethod::Computation => {
            let input = map_get(&given, "input")
                .and_then(Value::as_bytes)
                .map(<[u8]>::to_vec)
                .or_else(|| d.input.clone())
                .ok_or_else(|| ControlError::Mtp {
                    code: ErrorCode::VerificationEvidenceUnavailable,
                    message: "no computation input (delivery `input` or evidence `input`)".into(),
                })?;
            let expected = computation_output(&input);
            let matches = expected.as_slice() == d.payload.as_slice()
                || agent.fault("computation-trusts-delivery");
            if !matches {
                check_failure = Some(VerificationError::Tampered(
                    "the delivered result differs from the recomputation of its input".into(),
                ));
            }
            put("input_sha256", Value::Bytes(sha256(&input).to_vec()));
            put("expected_sha256", Value::Bytes(sha256(&expected).to_vec()));
            put("delivered_sha256", Value::Bytes(payload_sha.to_vec()));
            put("match", Value::Bool(matches));
        }
        VerificationMethod::ThirdParty => {}
    }
    let mut receipt = Receipt {
        receipt_id: agent.new_uuid(ObjectType::Receipt),
        mandate_id,
        participants: terms.participants.clone(),
        outcome: Outcome::Fulfilled,
        verification: Verification {
            method,
            evidence,
            third_party: None,
            unknown: Map::new(),
        },
        partial_fulfillment: None,
        dispute_initiation: None,
        failure_classification: None,
        attribution: attribution_block(agent, &deal, &terms)?,
        timestamp: agent.now(),
        predecessor: None,
        signature: None,
        unknown: Map::new(),
    };
    match (&check_failure, requested) {
        (Some(e), _) => {
            receipt.outcome = Outcome::Failed;
            receipt.failure_classification = Some(e.code().as_u16());
        }
        (None, Requested::Fulfilled) => {}
        (None, Requested::Failed) => {
            receipt.outcome = Outcome::Failed;
            receipt.failure_classification = Some(failure_code(args)?);
        }
        (None, Requested::Partial) => {
            receipt.outcome = Outcome::PartiallyFulfilled;
            receipt.partial_fulfillment = Some(partial_block(agent, &deal, args)?);
        }
    }
    if let Some(e) = &check_failure {
        // The failing check is a Fatal error (6100): audited and raised; every party is
        // notified after the failed Receipt (SPEC-VI-01).
        agent.raise(Some(deal.id), e, None);
    }
    receipt
        .sign(&agent.keys.signing, key_id(agent))
        .map_err(|e| ControlError::mtp(&e))?;
    if agent.fault("receipt-signed-before-evidence") {
        receipt
            .verification
            .evidence
            .push((Value::text("verified_at"), tdate_value(receipt.timestamp)));
    }
    let result = issue_receipt(agent, &deal, receipt).await?;
    if let Some(e) = &check_failure {
        let record = error_record(agent, Some(deal.id), e);
        notify_error(agent, deal.id, &deal.counterparties, record).await;
    }
    Ok(result)
}

/// `failure_classification` from the arguments, else the default (PROFILE G-22).
fn failure_code(args: &Value) -> Result<u16, ControlError> {
    match args.get("failure_classification") {
        None => Ok(DEFAULT_FAILURE_CLASSIFICATION.as_u16()),
        Some(v) => v
            .as_u64()
            .and_then(|c| u16::try_from(c).ok())
            .filter(|c| mtp_protocol::errors::split_code(*c).is_some())
            .ok_or_else(|| {
                ControlError::BadArgs("failure_classification must be an LSCC error code".into())
            }),
    }
}

/// The `partial_fulfillment` block: ratio from `ratio`, else the ratio announced by
/// `settle {partial}`, else 0.5 (PROFILE G-20, G-22).
fn partial_block(
    agent: &Agent,
    deal: &Deal,
    args: &Value,
) -> Result<PartialFulfillment, ControlError> {
    let ratio = match opt_number(args, "ratio")? {
        Some(r) => r as f32,
        None if agent.fault("partial-ratio-ignored") => 0.5,
        None => agent.settlement.announced_ratio(&deal.id).unwrap_or(0.5),
    };
    if !(ratio > 0.0 && ratio < 1.0) {
        return Err(ControlError::BadArgs(format!(
            "fulfillment ratio {ratio} outside (0, 1) (PROFILE G-22)"
        )));
    }
    Ok(PartialFulfillment {
        fulfilled_elements: text_list(args, "fulfilled_elements", &["delivery"])?,
        unfulfilled_elements: text_list(args, "unfulfilled_elements", &["quality"])?,
        fulfillment_ratio: ratio,
        unknown: Map::new(),
    })
}

/// The Attribution Record a Receipt must carry for three or more participants
/// (BIND-VII-D-04, SPEC-III-G-2-03): the one `attribute` produced or received.
fn attribution_block(
    agent: &Agent,
    deal: &Deal,
    terms: &Terms,
) -> Result<Option<Value>, ControlError> {
    if agent.fault("receipt-without-attribution") {
        return Ok(None);
    }
    if terms.participants.len() < mtp_protocol::profile::ATTRIBUTION_MIN_CONTRIBUTORS {
        return Ok(agent.attribution.get(&deal.id).map(|r| r.to_value()));
    }
    agent
        .attribution
        .get(&deal.id)
        .map(|r| Some(r.to_value()))
        .ok_or_else(|| ControlError::Mtp {
            code: ErrorCode::SchemaViolation,
            message: "three or more participants: the Receipt needs an Attribution Record; \
                      run `attribute` first (BIND-VII-D-04)"
                .into(),
        })
}

/// The Receipt a designated third-party verifier signs (PROFILE G-22: its signer is the
/// `verification.third_party` Agent); `report` is its evidence.
pub fn third_party_receipt(
    verifier: &Agent,
    mandate_id: MtpUuid,
    participants: Vec<Participant>,
    outcome: Outcome,
    report: Map,
) -> Result<Receipt, ObjectError> {
    let mut r = Receipt {
        receipt_id: verifier.new_uuid(ObjectType::Receipt),
        mandate_id,
        participants,
        outcome,
        verification: Verification {
            method: VerificationMethod::ThirdParty,
            evidence: report,
            third_party: Some(verifier.keys.did.clone()),
            unknown: Map::new(),
        },
        partial_fulfillment: None,
        dispute_initiation: None,
        failure_classification: (outcome == Outcome::Failed)
            .then_some(DEFAULT_FAILURE_CLASSIFICATION.as_u16()),
        attribution: None,
        timestamp: verifier.now(),
        predecessor: None,
        signature: None,
        unknown: Map::new(),
    };
    if outcome == Outcome::PartiallyFulfilled {
        r.partial_fulfillment = Some(PartialFulfillment {
            fulfilled_elements: vec!["delivery".into()],
            unfulfilled_elements: vec!["quality".into()],
            fulfillment_ratio: 0.5,
            unknown: Map::new(),
        });
    }
    r.sign(&verifier.keys.signing, key_id(verifier))?;
    Ok(r)
}

/// `verify {method: third_party, evidence: {receipt}}`: the verifier's signed Receipt is
/// checked and distributed like one of ours.
async fn accept_third_party(
    agent: &Agent,
    deal: &Deal,
    terms: &Terms,
    mandate_id: MtpUuid,
    given: &Map,
) -> ControlResult {
    let bytes = map_get(given, "receipt")
        .and_then(Value::as_bytes)
        .ok_or_else(|| {
            ControlError::BadArgs(
            "third_party verification: evidence.receipt must carry the verifier's signed Receipt"
                .into(),
        )
        })?;
    let receipt = Receipt::from_cbor(bytes).map_err(|e| ControlError::mtp(&e))?;
    if receipt.verification.method != VerificationMethod::ThirdParty {
        return Err(ControlError::BadArgs(
            "the verifier's Receipt must use method third_party".into(),
        ));
    }
    if receipt.mandate_id != mandate_id || receipt.participants != terms.participants {
        return Err(ControlError::mtp(&VerificationError::Mismatch(
            "mandate or participants differ".into(),
        )));
    }
    let signer = expected_signer(agent, &receipt, terms).map_err(|e| ControlError::mtp(&e))?;
    let ok = verify_signed(agent, &receipt, &signer);
    audit_signature(
        agent,
        deal.id,
        *receipt.receipt_id.as_bytes(),
        ok.is_ok(),
        &signer,
    );
    if let Err(e) = ok {
        agent.raise(Some(deal.id), &e, Some(&signer));
        return Err(ControlError::mtp(&e));
    }
    if terms.participants.len() >= mtp_protocol::profile::ATTRIBUTION_MIN_CONTRIBUTORS
        || receipt.attribution.is_some()
    {
        check_embedded_attribution(agent, deal, &receipt)
            .await
            .map_err(|e| ControlError::mtp(&e))?;
    }
    issue_receipt(agent, deal, receipt).await
}

/// `dispute`: a signed Dispute Initiation Record in a `disputed` Receipt
/// (SPEC-III-F-2-01, SPEC-III-F-2-02, SPEC-II-D-04).
async fn dispute(agent: &Agent, args: &Value) -> ControlResult {
    dispute_citing(agent, args, None).await
}

/// [`dispute`]; with `cite`, the record's evidence and the Receipt's verification evidence
/// carry `error_code` (the MTP code that started the dispute, e.g. 1102, PROFILE G-55).
async fn dispute_citing(agent: &Agent, args: &Value, cite: Option<ErrorCode>) -> ControlResult {
    let (deal, terms, mandate_id) = committed_deal(agent, args)?;
    let state = agent.transactions.state(&deal.id);
    if state != Some(TxState::Verifying) {
        return Err(undefined("a dispute", state));
    }
    let me = agent.did();
    if participant(&terms, PRole::Requester).as_deref() != Some(me.as_str()) {
        return Err(ControlError::BadArgs(
            "the requester files disputes and issues the disputed Receipt (PROFILE G-22)".into(),
        ));
    }
    let reason = crate::services::control::text_arg(args, "reason")?;
    let mut evidence = vec![(Value::text("reason"), Value::text(reason))];
    let cited = cite.map(|c| {
        (
            Value::text("error_code"),
            Value::from(u64::from(c.as_u16())),
        )
    });
    evidence.extend(cited.clone());
    let mut proposed = opt_text(args, "proposed_resolution")?.map(str::to_owned);
    if let Some(claim) = args.get("claimed_amount") {
        let price = mtp_protocol::primitives::common::PriceSpec::from_value(
            claim,
            "claimed_amount",
            "SPEC-III-F-2-02",
        )
        .map_err(|e| ControlError::BadArgs(ObjectError::Schema(e).to_string()))?;
        proposed.get_or_insert_with(|| {
            format!(
                "refund {} {}",
                mtp_protocol::verification::Decimal::from_number(&price.amount)
                    .map(|d| d.to_string())
                    .unwrap_or_default(),
                price.unit
            )
        });
        evidence.push((Value::text("claimed_amount"), price.to_value()));
    }
    let evidence_refs = match agent.verification.delivery(&deal.id) {
        Some(d) => vec![format!("sha256:{}", hex::encode(d.frame_hash))],
        None => vec!["delivery:none".to_owned()],
    };
    let mut record = DisputeInitiationRecord {
        mandate_id,
        receipt_ref: None,
        disputing_agent: agent.keys.did.clone(),
        violated_provisions: if agent.fault("dispute-record-without-provisions") {
            Vec::new()
        } else {
            text_list(args, "violated_provisions", &["quality"])?
        },
        evidence_refs: text_list(
            args,
            "evidence_refs",
            &evidence_refs.iter().map(String::as_str).collect::<Vec<_>>(),
        )?,
        evidence: Some(evidence),
        proposed_resolution: proposed.unwrap_or_else(|| "full refund".to_owned()),
        timestamp: agent.now(),
        signature: None,
        unknown: Map::new(),
    };
    record
        .sign(&agent.keys.signing, key_id(agent))
        .map_err(|e| ControlError::mtp(&e))?;
    let record_bytes = record
        .try_to_cbor()
        .map_err(|e| ControlError::Internal(e.to_string()))?;
    let mut block: DisputeInitiation = record.to_receipt_block();
    // The block has no room for the record's other fields: the signed record travels with
    // it (open map, PROFILE G-26).
    block
        .unknown
        .push((Value::text("record"), Value::Bytes(record_bytes.clone())));
    let previous = deal.receipts.last().cloned();
    let mut receipt = Receipt {
        receipt_id: agent.new_uuid(ObjectType::Receipt),
        mandate_id,
        participants: terms.participants.clone(),
        outcome: Outcome::Disputed,
        verification: Verification {
            method: previous
                .as_ref()
                .map(|r| r.verification.method)
                .filter(|m| *m != VerificationMethod::ThirdParty)
                .unwrap_or(VerificationMethod::Attestation),
            evidence: [
                (Value::text("reason"), Value::text(reason)),
                (
                    Value::text("dispute_record_sha256"),
                    Value::Bytes(sha256(&record_bytes).to_vec()),
                ),
            ]
            .into_iter()
            .chain(cited)
            .collect(),
            third_party: None,
            unknown: Map::new(),
        },
        partial_fulfillment: None,
        dispute_initiation: Some(block),
        failure_classification: None,
        attribution: attribution_block(agent, &deal, &terms)?,
        timestamp: agent.now(),
        predecessor: None,
        signature: None,
        unknown: Map::new(),
    };
    receipt
        .sign(&agent.keys.signing, key_id(agent))
        .map_err(|e| ControlError::mtp(&e))?;
    let result = issue_receipt(agent, &deal, receipt).await?;
    Ok(merge(result, vec![("dispute", Value::Bytes(record_bytes))]))
}

/// `resolve_dispute`: the final determination as a revised Receipt whose `predecessor` is
/// the disputed one (SPEC-II-D-09, SPEC-IV-B-I09; PROFILE G-21). `upheld` → `failed`,
/// `rejected` → `fulfilled`, `partial` → `partially_fulfilled` (ratio from
/// `adjusted_amount` / amount, or `ratio`).
async fn resolve_dispute(agent: &Agent, args: &Value) -> ControlResult {
    let (deal, terms, mandate_id) = committed_deal(agent, args)?;
    let state = agent.transactions.state(&deal.id);
    if state != Some(TxState::Disputed) {
        return Err(undefined("a dispute resolution", state));
    }
    let me = agent.did();
    if participant(&terms, PRole::Requester).as_deref() != Some(me.as_str()) {
        return Err(ControlError::BadArgs(
            "the requester issues the revised Receipt (PROFILE G-22)".into(),
        ));
    }
    let disputed =
        deal.receipts.last().cloned().ok_or_else(|| {
            ControlError::BadArgs("no Receipt to revise in this transaction".into())
        })?;
    let determination = crate::services::control::text_arg(args, "outcome")?;
    let mut receipt = Receipt {
        receipt_id: agent.new_uuid(ObjectType::Receipt),
        mandate_id,
        participants: terms.participants.clone(),
        outcome: Outcome::Fulfilled,
        verification: Verification {
            method: Some(disputed.verification.method)
                .filter(|m| *m != VerificationMethod::ThirdParty)
                .unwrap_or(VerificationMethod::Attestation),
            evidence: vec![
                (Value::text("determination"), Value::text(determination)),
                (
                    Value::text("dispute_method"),
                    Value::text(terms.dispute_resolution.method.as_str()),
                ),
            ],
            third_party: None,
            unknown: Map::new(),
        },
        partial_fulfillment: None,
        dispute_initiation: None,
        failure_classification: None,
        attribution: attribution_block(agent, &deal, &terms)?,
        timestamp: agent.now(),
        predecessor: Some(disputed.receipt_id),
        signature: None,
        unknown: Map::new(),
    };
    match determination {
        "rejected" => {}
        "upheld" => {
            receipt.outcome = Outcome::Failed;
            receipt.failure_classification = Some(failure_code(args)?);
        }
        "partial" => {
            let ratio = match args.get("adjusted_amount") {
                Some(v) => {
                    let adj = mtp_protocol::primitives::common::PriceSpec::from_value(
                        v,
                        "adjusted_amount",
                        "SPEC-III-E-2-03",
                    )
                    .map_err(|e| ControlError::BadArgs(ObjectError::Schema(e).to_string()))?;
                    if adj.unit != terms.price.unit {
                        return Err(ControlError::BadArgs(
                            "adjusted_amount must be in the Terms' unit".into(),
                        ));
                    }
                    let total = terms.price.amount.as_f64();
                    if total <= 0.0 {
                        return Err(ControlError::BadArgs("the Terms amount is zero".into()));
                    }
                    Some((adj.amount.as_f64() / total) as f32)
                }
                None => None,
            };
            let mut pf = partial_block(agent, &deal, args)?;
            if let Some(r) = ratio {
                if !(r > 0.0 && r < 1.0) {
                    return Err(ControlError::BadArgs(format!(
                        "adjusted amount gives ratio {r}, outside (0, 1)"
                    )));
                }
                pf.fulfillment_ratio = r;
            }
            receipt.outcome = Outcome::PartiallyFulfilled;
            receipt.partial_fulfillment = Some(pf);
        }
        other => {
            return Err(ControlError::BadArgs(format!(
                "outcome {other:?} is not upheld, rejected or partial"
            )));
        }
    }
    if agent.fault("revised-receipt-without-predecessor") {
        receipt.predecessor = None;
    }
    receipt
        .sign(&agent.keys.signing, key_id(agent))
        .map_err(|e| ControlError::mtp(&e))?;
    issue_receipt_as(agent, &deal, receipt, TxEvent::DisputeResolved).await
}

fn merge(v: Value, extra: Vec<(&str, Value)>) -> Value {
    match v {
        Value::Map(mut m) => {
            m.extend(extra.into_iter().map(|(k, v)| (Value::text(k), v)));
            Value::Map(m)
        }
        other => other,
    }
}

/// The transaction event a Receipt triggers.
fn receipt_event(agent: &Agent, r: &Receipt) -> TxEvent {
    if r.predecessor.is_some() && !agent.fault("revised-receipt-as-new-outcome") {
        return TxEvent::DisputeResolved;
    }
    TxEvent::ReceiptIssued {
        outcome: match r.outcome {
            Outcome::Fulfilled => ReceiptOutcome::Fulfilled,
            Outcome::PartiallyFulfilled => ReceiptOutcome::PartiallyFulfilled,
            Outcome::Disputed if agent.fault("disputed-receipt-fulfils") => {
                ReceiptOutcome::Fulfilled
            }
            Outcome::Disputed => ReceiptOutcome::Disputed,
            Outcome::Failed => ReceiptOutcome::Failed,
        },
    }
}

/// Audit event that starts the dispute resolution procedure of the Terms.
pub const DISPUTE_PROCEDURE_STARTED: &str = "dispute_procedure_started";

/// Verifying → Disputed starts the dispute resolution procedure named in the Terms
/// (`terms.dispute_resolution.method`, SPEC-II-D-05, SPEC-IV-A-I07): logged on the
/// transaction's trail with the extension keys `method` and `receipt_ref` (PROFILE G-18,
/// G-26, G-42).
fn start_dispute_procedure(agent: &Agent, deal: &Deal, receipt: &Receipt, peer: Option<&str>) {
    if agent.fault("dispute-procedure-not-started") {
        return;
    }
    let method = deal_terms(deal)
        .map(|t| t.dispute_resolution.method.as_str().to_owned())
        .unwrap_or_default();
    let mut agents = vec![agent.did()];
    agents.extend(peer.map(str::to_owned));
    let rec = AuditRecord {
        event: DISPUTE_PROCEDURE_STARTED.into(),
        agents,
        extensions: vec![
            ("method".into(), Value::text(method)),
            ("receipt_ref".into(), uuid_value(&receipt.receipt_id)),
        ],
        ..AuditRecord::default()
    };
    if let Err(e) = agent.transactions.record(&deal.id, rec, agent.now()) {
        tracing::error!(error = %e, "cannot log the dispute procedure");
    }
}

/// Issue a signed Receipt: transition, reserve its id, store it, send it to every other
/// party over `Agent/Verify`, then the settlement consequences (SPEC-III-E-3-01) and the
/// `delivery_confirmed` event for conditional Mandates.
async fn issue_receipt(agent: &Agent, deal: &Deal, receipt: Receipt) -> ControlResult {
    let event = receipt_event(agent, &receipt);
    issue_receipt_as(agent, deal, receipt, event).await
}

/// [`issue_receipt`] with the transaction event given.
async fn issue_receipt_as(
    agent: &Agent,
    deal: &Deal,
    receipt: Receipt,
    event: TxEvent,
) -> ControlResult {
    let bytes = receipt
        .try_to_cbor()
        .map_err(|e| ControlError::Internal(e.to_string()))?;
    let to = agent
        .transactions
        .apply(&deal.id, event, agent.now())
        .map_err(|e| ControlError::mtp(&e))?;
    if to == TxState::Disputed {
        start_dispute_procedure(agent, deal, &receipt, None);
    }
    record_receipt(agent, deal, &receipt, &bytes).map_err(|e| ControlError::mtp(&e))?;
    let frame =
        wire::Frame::new("receipt", receipt.to_value()).map_err(|e| ControlError::mtp(&e))?;
    let mut peers = deal.counterparties.clone();
    if let Some(tp) = &receipt.verification.third_party {
        peers.retain(|p| p != tp.as_str());
    }
    broadcast(agent, deal.id, &peers, Rpc::Verify, &frame).await;
    after_receipt(agent, deal, &receipt).await;
    Ok(Value::map([
        ("receipt_id", uuid_value(&receipt.receipt_id)),
        ("receipt", Value::Bytes(bytes)),
        ("outcome", Value::text(receipt.outcome.as_str())),
    ]))
}

/// Reserve, persist and remember a Receipt (SPEC-II-D-08: never modified; a later outcome
/// is a new Receipt, PROFILE G-21).
fn record_receipt(
    agent: &Agent,
    deal: &Deal,
    receipt: &Receipt,
    bytes: &[u8],
) -> Result<(), VerificationError> {
    agent
        .reserve_uuid(receipt.receipt_id, bytes)
        .map_err(|_| VerificationError::ReceiptIdReuse(receipt.receipt_id.to_string()))?;
    if let Err(e) = agent
        .store
        .put_receipt(receipt.receipt_id.as_bytes(), bytes)
    {
        tracing::error!(error = %e, "cannot persist receipt");
    }
    agent.deals.update(&deal.id, |d| {
        if !d
            .receipts
            .iter()
            .any(|r| r.receipt_id == receipt.receipt_id)
        {
            d.receipts.push(receipt.clone());
        }
    });
    Ok(())
}

/// What follows a Receipt on either side: settlement adjustment or reversal by the Agent
/// that settled (SPEC-II-D-07, SPEC-III-E-3-01; PROFILE G-20) and, on fulfilment, the
/// `delivery_confirmed` event for conditional Mandates (SPEC III-D-2).
async fn after_receipt(agent: &Agent, deal: &Deal, receipt: &Receipt) {
    settlement::after_receipt(agent, deal, receipt).await;
    if receipt.outcome == Outcome::Fulfilled {
        delivery_confirmed(agent, &receipt.mandate_id);
    }
}

/// Conditional Mandates waiting on `delivery_confirmed` for `mandate_id` (SPEC III-D-2).
fn delivery_confirmed(agent: &Agent, mandate_id: &MtpUuid) {
    super::commitment::record_event(agent, "delivery_confirmed", Some(*mandate_id));
}

// ---------------------------------------------------------------------------------------
// MTPSync handlers
// ---------------------------------------------------------------------------------------

/// `Agent/Deliver` (PROFILE G-09): a `delivery` is checked and stored (requester side); a
/// `delivery_request` is answered with a signed `delivery` (provider side).
pub async fn on_deliver(
    agent: &Agent,
    request: Request<pb::Frame>,
) -> Result<Response<pb::Frame>, Status> {
    let rpc = Rpc::Deliver;
    let sender = sender_of(&request);
    let frame = receive(agent, &request, rpc, sender.as_deref())?;
    let peer = sender.clone().unwrap_or_default();
    let mandate_id = match frame.body.get("mandate_id").map(MtpUuid::from_value) {
        Some(Ok(m)) => m,
        _ => {
            let e = VerificationError::Object(ObjectError::Schema(vec![ValidationError::missing(
                "mandate_id",
                DELIVERY_REQ,
            )]));
            return Err(refuse(agent, None, &e, rpc, sender.as_deref()));
        }
    };
    let deal = find_deal(agent, &mandate_id, &peer)
        .map_err(|e| refuse(agent, None, &e, rpc, sender.as_deref()))?;
    audit_message(agent, Some(deal.id), false, &frame, &peer);
    if frame.frame_type == "delivery" {
        accept_delivery(agent, &deal, &frame, &peer)
            .await
            .map_err(|e| refuse(agent, Some(deal.id), &e, rpc, sender.as_deref()))?;
        return ack(agent, Some(deal.id), &frame, &peer, rpc);
    }
    // delivery_request: the provider computes and answers.
    let req = DeliveryRequest::from_value(&frame.body).map_err(|e| {
        refuse(
            agent,
            Some(deal.id),
            &VerificationError::Object(e),
            rpc,
            sender.as_deref(),
        )
    })?;
    let ok = verify_signed(agent, &req, &peer);
    audit_signature(agent, deal.id, frame.hash, ok.is_ok(), &peer);
    if let Err(e) = ok {
        return Err(fatal_refusal(agent, deal.id, &e, rpc, &peer).await);
    }
    let terms = deal_terms(&deal).ok_or_else(|| {
        refuse(
            agent,
            Some(deal.id),
            &VerificationError::Mismatch("no Terms".into()),
            rpc,
            sender.as_deref(),
        )
    })?;
    let me = agent.did();
    if participant(&terms, PRole::Provider).as_deref() != Some(me.as_str())
        || participant(&terms, PRole::Requester).as_deref() != Some(peer.as_str())
    {
        let e = VerificationError::NotAParty(format!(
            "{peer} (a delivery request goes from the requester to the provider)"
        ));
        return Err(refuse(agent, Some(deal.id), &e, rpc, sender.as_deref()));
    }
    let input = req.input.clone().unwrap_or_default();
    let delivery = sign_delivery(
        agent,
        &terms,
        mandate_id,
        req.content_type
            .clone()
            .unwrap_or_else(|| "application/octet-stream".into()),
        computation_output(&input).to_vec(),
        Some(input),
    )
    .map_err(|e| {
        refuse(
            agent,
            Some(deal.id),
            &VerificationError::Object(e),
            rpc,
            None,
        )
    })?;
    let out = wire::Frame::new("delivery", delivery.to_value())
        .map_err(|e| refuse(agent, Some(deal.id), &e, rpc, None))?;
    agent.verification.put(
        deal.id,
        StoredDelivery {
            delivery,
            frame_hash: out.hash,
        },
    );
    audit_message(agent, Some(deal.id), true, &out, &peer);
    framing::response(&out).map_err(|e| refuse(agent, Some(deal.id), &e, rpc, None))
}

/// Check and store a received `delivery` (signed by the provider).
async fn accept_delivery(
    agent: &Agent,
    deal: &Deal,
    frame: &wire::Frame,
    sender: &str,
) -> Result<StoredDelivery, VerificationError> {
    let delivery = Delivery::from_value(&frame.body)?;
    let terms = deal_terms(deal).ok_or_else(|| VerificationError::Mismatch("no Terms".into()))?;
    let provider = participant(&terms, PRole::Provider).unwrap_or_default();
    if sender != provider {
        return Err(VerificationError::NotAParty(format!(
            "{sender} (only the provider delivers)"
        )));
    }
    let ok = verify_signed(agent, &delivery, &provider);
    audit_signature(agent, deal.id, frame.hash, ok.is_ok(), &provider);
    ok?;
    let stored = StoredDelivery {
        delivery,
        frame_hash: frame.hash,
    };
    agent.verification.put(deal.id, stored.clone());
    Ok(stored)
}

/// `Agent/Verify` (PROFILE G-09): a Receipt or an Attribution Record from another party.
pub async fn on_verify(
    agent: &Agent,
    request: Request<pb::Frame>,
) -> Result<Response<pb::Frame>, Status> {
    let rpc = Rpc::Verify;
    let sender = sender_of(&request);
    let frame = receive(agent, &request, rpc, sender.as_deref())?;
    let peer = sender.clone().unwrap_or_default();
    if frame.frame_type == "attribution_record" {
        let record = mtp_protocol::attribution::AttributionRecord::from_value(&frame.body)
            .map_err(|e| {
                refuse(
                    agent,
                    None,
                    &VerificationError::Object(e),
                    rpc,
                    sender.as_deref(),
                )
            })?;
        let deal = find_deal(agent, &record.mandate_id, &peer)
            .map_err(|e| refuse(agent, None, &e, rpc, sender.as_deref()))?;
        audit_message(agent, Some(deal.id), false, &frame, &peer);
        if let Err(e) = attribution::accept_record(agent, &deal, &record, &peer) {
            let e = VerificationError::from(e);
            return Err(fatal_refusal(agent, deal.id, &e, rpc, &peer).await);
        }
        return ack(agent, Some(deal.id), &frame, &peer, rpc);
    }
    let receipt = parse_receipt(agent, &frame.body, &peer).map_err(|e| {
        refuse(
            agent,
            None,
            &VerificationError::Object(e),
            rpc,
            sender.as_deref(),
        )
    })?;
    let third_party = receipt
        .verification
        .third_party
        .as_ref()
        .map(|d| d.as_str().to_owned());
    let deal = match agent.deals.by_mandate(receipt.mandate_id.as_bytes()) {
        Some(d)
            if d.counterparties.contains(&peer)
                || third_party.as_deref() == Some(peer.as_str()) =>
        {
            d
        }
        Some(_) => {
            let e = VerificationError::NotAParty(peer.clone());
            return Err(refuse(agent, None, &e, rpc, sender.as_deref()));
        }
        None => match agent
            .fault("receipt-mandate-by-sender")
            .then(|| agent.deals.latest_with(&peer))
            .flatten()
        {
            Some(d) => d,
            None => {
                let e = VerificationError::UnknownMandate(receipt.mandate_id.to_string());
                return Err(refuse(agent, None, &e, rpc, sender.as_deref()));
            }
        },
    };
    audit_message(agent, Some(deal.id), false, &frame, &peer);
    // A byte-identical redelivery is answered like the original (0400, PROFILE G-09).
    if let Some(known) = deal
        .receipts
        .iter()
        .find(|r| r.receipt_id == receipt.receipt_id)
    {
        if known.try_to_cbor().ok() == receipt.try_to_cbor().ok() {
            agent.warn(
                Some(deal.id),
                ErrorCode::DuplicateDeliveryIgnored,
                format!("receipt {} received again", receipt.receipt_id),
            );
            return ack(agent, Some(deal.id), &frame, &peer, rpc);
        }
        if agent.fault("receipt-overwrite-by-id") {
            agent.deals.update(&deal.id, |d| {
                for r in d.receipts.iter_mut() {
                    if r.receipt_id == receipt.receipt_id {
                        *r = receipt.clone();
                    }
                }
            });
            return ack(agent, Some(deal.id), &frame, &peer, rpc);
        }
        let e = VerificationError::ReceiptIdReuse(receipt.receipt_id.to_string());
        return Err(fatal_refusal(agent, deal.id, &e, rpc, &peer).await);
    }
    if let Err(e) = check_receipt(agent, &deal, &receipt).await {
        return Err(fatal_refusal(agent, deal.id, &e, rpc, &peer).await);
    }
    match agent
        .transactions
        .apply(&deal.id, receipt_event(agent, &receipt), agent.now())
    {
        Ok(TxState::Disputed) => start_dispute_procedure(agent, &deal, &receipt, Some(&peer)),
        Ok(to) if agent.fault("extension-adds-transition") && !receipt.unknown.is_empty() => {
            let rec = AuditRecord {
                event: "lemay.ext.review".into(),
                from_state: Some(to),
                to_state: Some(to),
                agents: vec![agent.did(), peer.clone()],
                ..AuditRecord::default()
            };
            let _ = agent.transactions.record(&deal.id, rec, agent.now());
        }
        Ok(_) => {}
        Err(e) => {
            let e = VerificationError::Tx(e);
            return Err(fatal_refusal(agent, deal.id, &e, rpc, &peer).await);
        }
    }
    let bytes = frame_body_bytes(&frame);
    if let Err(e) = record_receipt(agent, &deal, &receipt, &bytes) {
        return Err(fatal_refusal(agent, deal.id, &e, rpc, &peer).await);
    }
    after_receipt(agent, &deal, &receipt).await;
    ack(agent, Some(deal.id), &frame, &peer, rpc)
}

/// A received Receipt (BIND VII-D; PROFILE G-22). The defects `receipt-participants-from-terms`
/// and `skip-receipt-outcome-blocks` loosen it.
fn parse_receipt(agent: &Agent, body: &Value, peer: &str) -> Result<Receipt, ObjectError> {
    let mut body = body.clone();
    if agent.fault("receipt-participants-from-terms") && body.get("participants").is_none() {
        let terms = body
            .get("mandate_id")
            .and_then(|m| MtpUuid::from_value(m).ok())
            .and_then(|m| agent.deals.by_mandate(m.as_bytes()))
            .filter(|d| d.counterparties.iter().any(|c| c == peer))
            .and_then(|d| deal_terms(&d));
        if let (Some(t), Value::Map(entries)) = (terms, &mut body) {
            entries.push((
                Value::text("participants"),
                Value::Array(t.participants.iter().map(Participant::to_value).collect()),
            ));
        }
    }
    match Receipt::from_value(&body) {
        Err(e) if agent.fault("skip-receipt-outcome-blocks") => {
            let outcome = body
                .get("outcome")
                .and_then(Value::as_text)
                .and_then(Outcome::parse);
            let mut relaxed = body.clone();
            if let Value::Map(entries) = &mut relaxed {
                for (k, v) in entries.iter_mut() {
                    if k.as_text() == Some("outcome") {
                        *v = Value::text("fulfilled");
                    }
                }
            }
            match (outcome, Receipt::from_value(&relaxed)) {
                (Some(o), Ok(mut r)) => {
                    r.outcome = o;
                    Ok(r)
                }
                _ => Err(e),
            }
        }
        other => other,
    }
}

fn frame_body_bytes(frame: &wire::Frame) -> Vec<u8> {
    mtp_protocol::cbor::to_vec(&frame.body).unwrap_or_default()
}

/// Who must have signed a Receipt (PROFILE G-22): the third-party verifier for
/// `third_party`, else the requester.
fn expected_signer(
    agent: &Agent,
    receipt: &Receipt,
    terms: &Terms,
) -> Result<String, VerificationError> {
    if receipt.verification.method == VerificationMethod::ThirdParty
        && !agent.fault("third-party-signer-is-requester")
    {
        return receipt
            .verification
            .third_party
            .as_ref()
            .map(|d| d.as_str().to_owned())
            .ok_or_else(|| VerificationError::Mismatch("third_party missing".into()));
    }
    participant(terms, PRole::Requester)
        .ok_or_else(|| VerificationError::Mismatch("the Terms name no requester".into()))
}

/// A received Receipt against the transaction: participants, signer and signature
/// (SPEC-II-D-01; PROFILE G-22), predecessor (G-21), the evidence digest this agent
/// delivered (6100), and an embedded Attribution Record (SPEC-III-G-2-04, 7100).
async fn check_receipt(
    agent: &Agent,
    deal: &Deal,
    receipt: &Receipt,
) -> Result<(), VerificationError> {
    let terms = deal_terms(deal).ok_or_else(|| VerificationError::Mismatch("no Terms".into()))?;
    if receipt.participants != terms.participants {
        return Err(VerificationError::Mismatch(
            "participants differ from the Terms".into(),
        ));
    }
    let signer = expected_signer(agent, receipt, &terms)?;
    let ok = verify_signed(agent, receipt, &signer);
    audit_signature(
        agent,
        deal.id,
        *receipt.receipt_id.as_bytes(),
        ok.is_ok(),
        &signer,
    );
    ok?;
    if agent.fault("receipt-requires-attribution") && receipt.attribution.is_none() {
        return Err(VerificationError::Mismatch(
            "the Receipt carries no Attribution Record".into(),
        ));
    }
    if let Some(p) = &receipt.predecessor
        && !deal.receipts.iter().any(|r| r.receipt_id == *p)
        && !agent.fault("skip-predecessor-check")
    {
        return Err(VerificationError::UnknownPredecessor(p.to_string()));
    }
    if receipt.verification.method == VerificationMethod::Evidence
        && matches!(
            receipt.outcome,
            Outcome::Fulfilled | Outcome::PartiallyFulfilled
        )
        && let Some(mine) = agent.verification.delivery(&deal.id)
        && let Some(claimed) = map_get(&receipt.verification.evidence, "payload_sha256")
        && claimed.as_bytes() != Some(sha256(&mine.delivery.payload).as_slice())
    {
        return Err(VerificationError::Tampered(
            "the Receipt's payload digest is not the SHA-256 of what was delivered".into(),
        ));
    }
    for w in receipt.warnings() {
        agent.warn(
            Some(deal.id),
            ErrorCode::SchemaViolation,
            format!(
                "block {} present with outcome {} (PROFILE G-22)",
                w.field,
                w.outcome.as_str()
            ),
        );
    }
    check_embedded_attribution(agent, deal, receipt).await
}

/// Verify the `attribution` appendix of a Receipt and remember it (SPEC-III-G-2-04).
async fn check_embedded_attribution(
    agent: &Agent,
    deal: &Deal,
    receipt: &Receipt,
) -> Result<(), VerificationError> {
    let Some(v) = &receipt.attribution else {
        return Ok(());
    };
    let record = mtp_protocol::attribution::AttributionRecord::from_value(v)?;
    if record.mandate_id != receipt.mandate_id {
        return Err(VerificationError::Mismatch(
            "the Attribution Record names another Mandate".into(),
        ));
    }
    attribution::accept_record(agent, deal, &record, "")?;
    Ok(())
}

/// A notification received over `Agent/Notify` or NATS (SPEC VI): Verification errors
/// (6xxx), and errors of other layers for transactions in Verifying or Disputed, are
/// recorded and terminate the transaction when Fatal (SPEC-VI-01).
pub async fn on_notification(agent: &Agent, notification: &Notification) -> Result<(), Status> {
    on_error_notification(agent, notification, |layer, state| {
        layer == Layer::Verification
            || (!matches!(
                layer,
                Layer::Settlement | Layer::Verification | Layer::Attribution
            ) && matches!(state, TxState::Verifying | TxState::Disputed))
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Shared plumbing (settlement, verification, attribution)
// ---------------------------------------------------------------------------------------

/// Why a frame did not reach a peer or was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot reach {peer}: {source}")]
    Connect {
        peer: String,
        #[source]
        source: ConnectError,
    },
    #[error(transparent)]
    Remote(RemoteError),
    #[error(transparent)]
    Framing(#[from] FramingError),
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("{0} refused the frame (ack ok = false or wrong ref)")]
    Nack(String),
    #[error("RPC {0:?} does not carry single frames")]
    NotUnary(Rpc),
}

impl Coded for SendError {
    fn code(&self) -> ErrorCode {
        match self {
            SendError::Connect { source, .. } => {
                source.mtp_code().unwrap_or(ErrorCode::DidResolutionTimeout)
            }
            SendError::Remote(r) => r.error_code().unwrap_or(ErrorCode::SchemaViolation),
            SendError::Framing(e) => e.code(),
            SendError::Wire(e) => e.code(),
            SendError::Nack(_) | SendError::NotUnary(_) => ErrorCode::SchemaViolation,
        }
    }
}

/// This agent's assertion key id (absolute DID URL) for `signature.key_id` (PROFILE G-02).
pub fn key_id(agent: &Agent) -> Option<String> {
    agent.key_id()
}

/// The DID of the MTPSync peer a request came from (its pinned certificate's label).
pub fn sender_of<T>(request: &Request<T>) -> Option<String> {
    crate::transport::sync::session(request).and_then(|s| s.peer_label.clone())
}

/// Verify a single-signed object against `signer`'s assertion key (`key_id` when it names
/// one of the signer's keys). Unknown signer or bad signature: 1100.
pub fn verify_signed<T: SingleSigned>(
    agent: &Agent,
    object: &T,
    signer: &str,
) -> Result<(), VerificationError> {
    let key = object
        .signature()
        .and_then(|s| s.key_id.clone())
        .filter(|k| k.split('#').next() == Some(signer))
        .and_then(|k| agent.assertion_key(&k).ok())
        .or_else(|| agent.assertion_key(signer).ok())
        .ok_or_else(|| VerificationError::UnknownSigner(signer.to_owned()))?;
    object.verify_signature(&key)?;
    Ok(())
}

/// An error object for an error this agent raised (id from the agent RNG, PROFILE G-16).
pub fn error_record(
    agent: &Agent,
    tx: Option<[u8; 32]>,
    err: &(impl Coded + std::fmt::Display + ?Sized),
) -> MtpErrorRecord {
    framing::error_record(err, &error_context(agent, tx))
}

fn error_context(agent: &Agent, tx: Option<[u8; 32]>) -> ErrorContext {
    ErrorContext {
        error_id: agent.new_uuid(ObjectType::Error),
        now: agent.now(),
        transaction_id: tx.and_then(|t| MtpUuid::from_bytes(&t).ok()),
    }
}

/// Audit a message sent or received (SPEC-X-C-02) and emit its event.
pub fn audit_message(
    agent: &Agent,
    tx: Option<[u8; 32]>,
    sent: bool,
    frame: &wire::Frame,
    peer: &str,
) {
    agent.audit_message(tx, sent, frame, Some(peer));
}

/// Audit a signature verification result (SPEC-X-C-02).
pub fn audit_signature(agent: &Agent, tx: [u8; 32], object: [u8; 32], ok: bool, signer: &str) {
    agent.audit_signature(Some(tx), object, ok, signer);
}

/// Send one frame on a unary RPC to a known peer and read its answer (an `ack` is checked
/// against the frame's hash). Both messages are audited; a peer's refusal is recorded as
/// an error received.
pub async fn call(
    agent: &Agent,
    peer: &str,
    rpc: Rpc,
    frame: &wire::Frame,
    tx: Option<[u8; 32]>,
) -> Result<wire::Frame, SendError> {
    let mut client = agent
        .agent_client(peer)
        .await
        .map_err(|source| SendError::Connect {
            peer: peer.to_owned(),
            source,
        })?;
    let req = framing::request(frame)?;
    audit_message(agent, tx, true, frame, peer);
    let resp = match rpc {
        Rpc::Settle => client.settle(req).await,
        Rpc::Deliver => client.deliver(req).await,
        Rpc::Verify => client.verify(req).await,
        Rpc::Notify => client.notify(req).await,
        other => return Err(SendError::NotUnary(other)),
    };
    let resp = match resp {
        Ok(r) => r,
        Err(status) => {
            let remote = RemoteError::from_status(&status);
            record_received_error(agent, tx, remote.code, peer);
            return Err(SendError::Remote(remote));
        }
    };
    let out = framing::receive_response(&resp, rpc)?;
    audit_message(agent, tx, false, &out, peer);
    if out.frame_type == "ack" {
        let ack = Ack::from_frame(&out)?;
        if !ack.ok || ack.reference != frame.hash {
            return Err(SendError::Nack(peer.to_owned()));
        }
    }
    Ok(out)
}

/// [`call`] to each peer; failures are logged (the frame is sent to the others anyway).
pub async fn broadcast(
    agent: &Agent,
    tx: [u8; 32],
    peers: &[String],
    rpc: Rpc,
    frame: &wire::Frame,
) -> Vec<(String, SendError)> {
    let mut failed = Vec::new();
    for peer in peers {
        if *peer == agent.did() {
            continue;
        }
        if let Err(e) = call(agent, peer, rpc, frame, Some(tx)).await {
            tracing::warn!(peer = %peer, frame = %frame.frame_type, error = %e, "frame not accepted");
            failed.push((peer.clone(), e));
        }
    }
    failed
}

/// An error a peer reported: audited with its code and surfaced as `error_received`.
pub fn record_received_error(agent: &Agent, tx: Option<[u8; 32]>, code: Option<u16>, peer: &str) {
    let now = agent.now();
    if let Some(c) = code {
        let rec = AuditRecord {
            event: audit_events::ERROR.into(),
            agents: vec![peer.to_owned()],
            error_code: Some(c),
            ..AuditRecord::default()
        };
        if let Err(e) = agent
            .transactions
            .record(&tx.unwrap_or(AGENT_TRAIL_ID), rec, now)
        {
            tracing::error!(error = %e, "cannot audit received error");
        }
    }
    let mut ev = Event::new(EventKind::ErrorReceived, now);
    ev.transaction_id = tx;
    ev.code = code;
    ev.peer = Some(peer.to_owned());
    agent.events.push(ev);
}

/// A signed `notification` of type `error` to every peer over `Agent/Notify` (SPEC-VI-01;
/// PROFILE G-16).
pub async fn notify_error(agent: &Agent, tx: [u8; 32], peers: &[String], record: MtpErrorRecord) {
    let mut n = Notification {
        kind: NotificationType::Error,
        transaction_id: MtpUuid::from_bytes(&tx).ok(),
        subject_ref: None,
        error: Some(record),
        timestamp: agent.now(),
        signature: None,
        unknown: Map::new(),
    };
    if let Err(e) = n.sign(&agent.keys.signing, key_id(agent)) {
        tracing::error!(error = %e, "cannot sign notification");
        return;
    }
    let frame = match wire::Frame::new("notification", n.to_value()) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "cannot frame notification");
            return;
        }
    };
    for peer in peers {
        if *peer == agent.did() {
            continue;
        }
        let mut ev = Event::new(EventKind::NotificationSent, agent.now());
        ev.transaction_id = Some(tx);
        ev.peer = Some(peer.clone());
        ev.code = n.error.as_ref().map(|e| e.code);
        ev.hash = Some(frame.hash);
        agent.events.push(ev);
        if let Err(e) = call(agent, peer, Rpc::Notify, &frame, Some(tx)).await {
            tracing::warn!(peer = %peer, error = %e, "notification not delivered");
        }
    }
}

/// A Fatal error against a transaction (SPEC-VI-01): raised (audit + event), the
/// transaction terminated (Settling → Failed by `settlement_failed` for settlement codes
/// and escalated errors, else `fatal_error.<code>`), every party notified.
pub async fn terminate(
    agent: &Agent,
    tx: [u8; 32],
    err: &(impl Coded + std::fmt::Display),
    peer: Option<&str>,
    escalated: bool,
) -> MtpErrorRecord {
    agent.raise(Some(tx), err, peer);
    let mut record = error_record(agent, Some(tx), err);
    if escalated {
        record = record.escalated();
    }
    end_transaction(agent, tx, err.code(), escalated);
    let peers = agent
        .deals
        .get(&tx)
        .map(|d| d.counterparties)
        .unwrap_or_default();
    notify_error(agent, tx, &peers, record.clone()).await;
    record
}

/// Move a non-terminal transaction to Failed for `code` (SPEC-VI-01, SPEC-IV-B-I06).
pub fn end_transaction(agent: &Agent, tx: [u8; 32], code: ErrorCode, escalated: bool) {
    let Some(state) = agent.transactions.state(&tx) else {
        return;
    };
    if state.is_terminal() {
        return;
    }
    // Defect `undefined-transition-keeps-state` (`layers::commitment::FAULTS`, PROFILE G-18).
    if code == ErrorCode::UndefinedTransition && agent.fault("undefined-transition-keeps-state") {
        return;
    }
    let settlement_failure = code.layer() == Layer::Settlement;
    let mut state = state;
    // A settlement failure reported while this side is still Committed (the payer's
    // initiation never succeeded, so no `settlement_initiated` notice came): the payer
    // activated the Active Mandate and its settlement failed — T4 then T6 here too.
    if state == TxState::Committed
        && settlement_failure
        && agent.deals.get(&tx).and_then(|d| d.mandate_status)
            == Some(mtp_protocol::state_machine::MandateStatus::Active)
    {
        match agent
            .transactions
            .apply(&tx, TxEvent::MandateActivated, agent.now())
        {
            Ok(s) => state = s,
            Err(e) => tracing::error!(error = %e, "cannot activate before the failure"),
        }
    }
    let event = if state == TxState::Settling
        && (escalated || settlement_failure)
        && !agent.fault("settlement-failure-as-fatal-error")
    {
        TxEvent::SettlementFailed
    } else if code.severity() == Severity::Fatal {
        TxEvent::FatalError { code }
    } else {
        tracing::warn!(code = %code, "a non-Fatal code does not end the transaction");
        return;
    };
    if let Err(e) = agent.transactions.apply(&tx, event, agent.now()) {
        tracing::error!(error = %e, "cannot end transaction");
    }
}

/// A refused inbound message that concerns no transaction (yet): raised, answered per
/// PROFILE G-09.
pub fn refuse(
    agent: &Agent,
    tx: Option<[u8; 32]>,
    err: &(impl Coded + std::fmt::Display),
    rpc: Rpc,
    peer: Option<&str>,
) -> Status {
    agent.raise(tx, err, peer);
    framing::status_for(err, rpc, &error_context(agent, tx))
}

/// A refused inbound message that ends its transaction (Fatal, SPEC-VI-01).
pub async fn fatal_refusal(
    agent: &Agent,
    tx: [u8; 32],
    err: &(impl Coded + std::fmt::Display),
    rpc: Rpc,
    peer: &str,
) -> Status {
    let record = terminate(agent, tx, err, Some(peer), false).await;
    framing::error_status(&record, rpc).unwrap_or_else(|| Status::internal(err.to_string()))
}

/// Server side of a unary call: version, frame type and integrity (PROFILE G-09).
pub fn receive(
    agent: &Agent,
    request: &Request<pb::Frame>,
    rpc: Rpc,
    peer: Option<&str>,
) -> Result<wire::Frame, Status> {
    framing::receive(request, rpc).map_err(|e| refuse(agent, None, &e, rpc, peer))
}

/// The positive `ack` of `frame` (audited).
pub fn ack(
    agent: &Agent,
    tx: Option<[u8; 32]>,
    frame: &wire::Frame,
    peer: &str,
    rpc: Rpc,
) -> Result<Response<pb::Frame>, Status> {
    let out = Ack::of(frame)
        .to_frame()
        .map_err(|e| refuse(agent, tx, &e, rpc, None))?;
    audit_message(agent, tx, true, &out, peer);
    framing::response(&out).map_err(|e| refuse(agent, tx, &e, rpc, None))
}

/// The deal of `mandate_id`, whose counterparties include `sender`.
pub fn find_deal(
    agent: &Agent,
    mandate_id: &MtpUuid,
    sender: &str,
) -> Result<Deal, VerificationError> {
    let deal = agent
        .deals
        .by_mandate(mandate_id.as_bytes())
        .ok_or_else(|| VerificationError::UnknownMandate(mandate_id.to_string()))?;
    if !deal.counterparties.iter().any(|c| c == sender) {
        return Err(VerificationError::NotAParty(sender.to_owned()));
    }
    Ok(deal)
}

/// An error notification of a layer: checked (signed by a party of the transaction),
/// recorded as received, and — when Fatal and the transaction is not terminal — the end
/// of the transaction. `claims(layer, state)` says whether this layer handles it.
pub async fn on_error_notification(
    agent: &Agent,
    n: &Notification,
    claims: impl Fn(Layer, TxState) -> bool,
) -> Result<(), Status> {
    if n.kind != NotificationType::Error {
        return Ok(());
    }
    let Some(err) = &n.error else {
        return Ok(());
    };
    let Some(tx) = n
        .transaction_id
        .or(err.transaction_id)
        .map(|t| *t.as_bytes())
    else {
        return Ok(());
    };
    let Some(state) = agent.transactions.state(&tx) else {
        return Ok(());
    };
    if !claims(err.layer, state) {
        return Ok(());
    }
    let parties = agent
        .deals
        .get(&tx)
        .map(|d| d.counterparties)
        .unwrap_or_default();
    let signer = parties
        .iter()
        .find(|p| verify_signed(agent, n, p).is_ok())
        .cloned();
    let object = sha256(&mtp_protocol::cbor::to_vec(&n.to_value()).unwrap_or_default());
    audit_signature(
        agent,
        tx,
        object,
        signer.is_some(),
        signer.as_deref().unwrap_or(""),
    );
    let Some(signer) = signer else {
        let e = VerificationError::UnknownSigner(
            "no party of the transaction signed the notification".into(),
        );
        return Err(refuse(agent, Some(tx), &e, Rpc::Notify, None));
    };
    record_received_error(agent, Some(tx), Some(err.code), &signer);
    let mut ev = Event::new(EventKind::NotificationReceived, agent.now());
    ev.transaction_id = Some(tx);
    ev.peer = Some(signer);
    ev.code = Some(err.code);
    agent.events.push(ev);
    if let Some(code) = err.error_code()
        && (err.severity == Severity::Fatal)
    {
        end_transaction(agent, tx, code, err.is_escalated());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_objects_round_trip_and_sign() {
        let key = mtp_protocol::crypto::SigningKey::from_seed(
            mtp_protocol::crypto::SignatureAlgorithm::MlDsa65,
            &[7; 32],
        );
        let mid = MtpUuid::new(ObjectType::Mandate, 1, [0; 6], [3; 17]);
        let mut d = Delivery {
            mandate_id: mid,
            content_type: "text/plain".into(),
            payload: b"hello".to_vec(),
            timestamp: Timestamp::from_unix_secs(1_800_000_000).expect("t"),
            input: Some(b"in".to_vec()),
            attestation: Some(vec![(Value::text("statement"), Value::text("fulfilled"))]),
            signature: None,
            unknown: Map::new(),
        };
        d.sign(&key, None).expect("sign");
        let back = Delivery::from_cbor(&d.to_cbor()).expect("decodes");
        assert_eq!(back, d);
        back.verify_signature(&key.public_key()).expect("verifies");
        let mut bad = back.clone();
        bad.payload.push(0);
        assert_eq!(
            bad.verify_signature(&key.public_key())
                .expect_err("tampered")
                .code(),
            ErrorCode::SignatureVerificationFailure
        );
        let mut r = DeliveryRequest {
            mandate_id: mid,
            content_type: None,
            input: Some(vec![1, 2]),
            timestamp: Timestamp::from_unix_secs(1_800_000_000).expect("t"),
            signature: None,
            unknown: Map::new(),
        };
        r.sign(&key, None).expect("sign");
        assert_eq!(
            DeliveryRequest::from_cbor(&r.to_cbor()).expect("decodes"),
            r
        );
        // Missing fields are schema violations, never panics.
        let e = Delivery::from_value(&Value::map([("payload", Value::Bytes(vec![]))]))
            .expect_err("incomplete");
        assert_eq!(e.code(), ErrorCode::SchemaViolation);
        assert_ne!(computation_output(b"a"), computation_output(b"b"));
    }
}
