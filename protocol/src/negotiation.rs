//! Negotiation Layer messages (SPEC III-C; PROFILE G-10, G-17, G-47) and the round rules
//! (SPEC III-C-1) as a pure state tracker.
//!
//! Messages: Negotiation Initiation Message (`nim`), Proposal / Counterproposal,
//! Acceptance, Rejection and Termination, each a CBOR map dispatched on its `type` key
//! ([`NegotiationMessage`]). `negotiation_id` is the `terms_id` (type 0x3) reserved at
//! initiation (PROFILE G-10, G-16). A round is one Proposal/Counterproposal and the reply
//! to it; round 1 is the NIM's proposal.

use crate::cbor::Value;
use crate::crypto::sha256;
use crate::error_record::MtpErrorRecord;
use crate::errors::{Coded, ErrorCode};
use crate::identity::Did;
use crate::primitives::common::{
    CborObject, Errors, Map, MapBuilder, MapReader, ObjectError, SCHEMA_REQ, Signature,
    SingleSigned, ValidationError, check_encodable, index_path, join_path, read_array, read_bytes,
    read_did, read_open_map, read_signature_field, read_tdate, read_text, read_uint, read_uuid,
    tdate_value, uuid_value,
};
use crate::primitives::json::{Hint, Kind, compose_hints};
use crate::primitives::{Request, Terms};
use crate::profile::{MAX_ROUNDS_RANGE, ROUND_TIMEOUT_MS_RANGE};
use crate::time::Timestamp;
use crate::uuid::{MtpUuid, ObjectType};

/// The NIM carries the Request, the matched Offer id and the initial Proposal (SPEC III-C-1).
pub const NIM_REQ: &str = "SPEC-III-C-1-I01";
/// Responses: Acceptance, Counterproposal or Rejection (SPEC III-C-1).
pub const RESPONSE_REQ: &str = "SPEC-III-C-1-I02";
/// Round timeout in the NIM (SPEC-III-C-1-01).
pub const ROUND_TIMEOUT_REQ: &str = "SPEC-III-C-1-01";
/// Maximum rounds in the NIM (SPEC-III-C-1-03).
pub const MAX_ROUNDS_REQ: &str = "SPEC-III-C-1-03";
/// Every Proposal and Counterproposal is signed by the proposing Agent (SPEC-III-C-1-05).
pub const PROPOSAL_SIGNATURE_REQ: &str = "SPEC-III-C-1-05";

const SIGNATURE_HINT: Hint = Hint {
    path: "signature.value",
    kind: Kind::Bytes,
};
const NEGOTIATION_ID_HINT: Hint = Hint {
    path: "negotiation_id",
    kind: Kind::Uuid,
};
/// A Proposal's own JSON hints (its `terms` take the Terms hints; PROFILE G-27).
pub(crate) const PROPOSAL_OWN_HINTS: &[Hint] = &[
    NEGOTIATION_ID_HINT,
    Hint {
        path: "timestamp",
        kind: Kind::Tdate,
    },
    SIGNATURE_HINT,
];
/// An Acceptance's JSON hints (PROFILE G-27).
pub(crate) const ACCEPTANCE_HINTS: &[Hint] = &[
    NEGOTIATION_ID_HINT,
    Hint {
        path: "accepted",
        kind: Kind::Bytes,
    },
    SIGNATURE_HINT,
];
const REJECTION_HINTS: &[Hint] = &[NEGOTIATION_ID_HINT, SIGNATURE_HINT];

fn proposal_hints() -> &'static [Hint] {
    static H: std::sync::OnceLock<Vec<Hint>> = std::sync::OnceLock::new();
    // `terms` is a partial mtp-terms: the Terms hints apply to the keys it has.
    H.get_or_init(|| compose_hints(PROPOSAL_OWN_HINTS, &[("terms", Terms::json_hints())]))
}

fn read_type(
    r: &mut MapReader<'_>,
    expected: &[&'static str],
    errs: &mut Errors,
) -> Option<&'static str> {
    let path = r.child_path("type");
    let v = errs.take(r.required("type", SCHEMA_REQ))?;
    let s = errs.take(read_text(v, &path, SCHEMA_REQ))?;
    match expected.iter().find(|e| **e == s) {
        Some(e) => Some(e),
        None => {
            errs.push(ValidationError::invalid(
                path,
                SCHEMA_REQ,
                format!("type {s:?}, expected one of {expected:?}"),
            ));
            None
        }
    }
}

fn read_negotiation_id(
    r: &mut MapReader<'_>,
    req: &'static str,
    errs: &mut Errors,
) -> Option<MtpUuid> {
    let path = r.child_path("negotiation_id");
    let v = errs.take(r.required("negotiation_id", req))?;
    errs.take(read_uuid(v, &path, ObjectType::Terms, req))
}

fn read_round(r: &mut MapReader<'_>, req: &'static str, errs: &mut Errors) -> Option<u64> {
    let path = r.child_path("round");
    let v = errs.take(r.required("round", req))?;
    let n = errs.take(read_uint(v, &path, req))?;
    if n == 0 {
        errs.push(ValidationError::out_of_range(
            path,
            req,
            "rounds are numbered from 1",
        ));
        return None;
    }
    Some(n)
}

fn finish<T>(v: &Value, errs: Errors, out: Option<T>) -> Result<T, ObjectError> {
    match out {
        Some(o) if errs.is_empty() => {
            check_encodable(v)?;
            Ok(o)
        }
        _ => Err(errs.into_object_error()),
    }
}

// ---------------------------------------------------------------------------------------
// Proposal / Counterproposal
// ---------------------------------------------------------------------------------------

/// `proposal` vs `counterproposal` (PROFILE G-10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProposalKind {
    Proposal,
    Counterproposal,
}

impl ProposalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProposalKind::Proposal => "proposal",
            ProposalKind::Counterproposal => "counterproposal",
        }
    }
}

/// A conditional term `{ if: tstr, then: tstr }` (SPEC III-C conditional negotiation; PROFILE G-10).
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub if_: String,
    pub then: String,
    pub unknown: Map,
}

impl Condition {
    fn from_value(v: &Value, path: &str) -> Result<Condition, Vec<ValidationError>> {
        let mut r = MapReader::new(v, path).map_err(|e| vec![e])?;
        let mut errs = Errors::new();
        let if_ = errs.take(
            r.required("if", SCHEMA_REQ)
                .and_then(|v| read_text(v, &join_path(path, "if"), SCHEMA_REQ)),
        );
        let then = errs.take(
            r.required("then", SCHEMA_REQ)
                .and_then(|v| read_text(v, &join_path(path, "then"), SCHEMA_REQ)),
        );
        let unknown = r.unknown();
        match (if_, then) {
            (Some(i), Some(t)) if errs.is_empty() => Ok(Condition {
                if_: i.to_owned(),
                then: t.to_owned(),
                unknown,
            }),
            _ => Err(errs.into_vec()),
        }
    }

    fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("if", Value::text(self.if_.as_str()))
            .put("then", Value::text(self.then.as_str()))
            .extend_unknown(&self.unknown)
            .build()
    }
}

/// A Proposal or Counterproposal (SPEC III-C-1; PROFILE G-10), signed by its proposer
/// (SPEC-III-C-1-05). `terms` is a partial `mtp-terms` over the negotiable dimensions.
#[derive(Clone, Debug, PartialEq)]
pub struct Proposal {
    pub kind: ProposalKind,
    pub negotiation_id: MtpUuid,
    pub round: u64,
    pub proposer: Did,
    /// `{ * tstr => any }`: the proposed (partial) Terms, kept verbatim.
    pub terms: Map,
    pub conditions: Option<Vec<Condition>>,
    pub timestamp: Timestamp,
    pub signature: Option<Signature>,
    pub unknown: Map,
}

impl Proposal {
    /// SHA-256 of the deterministic CBOR of the full (signed) proposal: what an Acceptance
    /// names in `accepted` (PROFILE G-10). Panics only as [`CborObject::to_cbor`] does (never
    /// for a decoded proposal).
    pub fn digest(&self) -> [u8; 32] {
        sha256(&self.to_cbor())
    }

    fn decode(v: &Value, path: &str) -> Result<Proposal, Vec<ValidationError>> {
        let mut r = MapReader::new(v, path).map_err(|e| vec![e])?;
        let mut errs = Errors::new();
        let kind = read_type(&mut r, &["proposal", "counterproposal"], &mut errs).map(|t| {
            if t == "proposal" {
                ProposalKind::Proposal
            } else {
                ProposalKind::Counterproposal
            }
        });
        let negotiation_id = read_negotiation_id(&mut r, RESPONSE_REQ, &mut errs);
        let round = read_round(&mut r, RESPONSE_REQ, &mut errs);
        let proposer = errs.take(
            r.required("proposer", PROPOSAL_SIGNATURE_REQ)
                .and_then(|v| read_did(v, &join_path(path, "proposer"), PROPOSAL_SIGNATURE_REQ)),
        );
        let terms = errs.take(
            r.required("terms", RESPONSE_REQ)
                .and_then(|v| read_open_map(v, &join_path(path, "terms"), RESPONSE_REQ)),
        );
        let conditions = r.optional("conditions").and_then(|v| {
            let p = join_path(path, "conditions");
            let items = errs.take(read_array(v, &p, SCHEMA_REQ))?;
            let mut out = Vec::with_capacity(items.len());
            for (i, c) in items.iter().enumerate() {
                if let Some(c) = errs.take_all(Condition::from_value(c, &index_path(&p, i))) {
                    out.push(c);
                }
            }
            Some(out)
        });
        let timestamp = errs.take(
            r.required("timestamp", SCHEMA_REQ)
                .and_then(|v| read_tdate(v, &join_path(path, "timestamp"), SCHEMA_REQ)),
        );
        let signature = read_signature_field(&mut r, PROPOSAL_SIGNATURE_REQ, &mut errs);
        let unknown = r.unknown();
        match (
            kind,
            negotiation_id,
            round,
            proposer,
            terms,
            timestamp,
            signature,
        ) {
            (
                Some(kind),
                Some(negotiation_id),
                Some(round),
                Some(proposer),
                Some(terms),
                Some(timestamp),
                Some(sig),
            ) if errs.is_empty() => Ok(Proposal {
                kind,
                negotiation_id,
                round,
                proposer,
                terms,
                conditions,
                timestamp,
                signature: Some(sig),
                unknown,
            }),
            _ => Err(errs.into_vec()),
        }
    }
}

impl CborObject for Proposal {
    const NAME: &'static str = "proposal";

    fn json_hints() -> &'static [Hint] {
        proposal_hints()
    }

    fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("type", Value::text(self.kind.as_str()))
            .put("negotiation_id", uuid_value(&self.negotiation_id))
            .put("round", Value::Integer(self.round.into()))
            .put("proposer", Value::text(self.proposer.as_str()))
            .put("terms", Value::Map(self.terms.clone()))
            .put_opt(
                "conditions",
                self.conditions
                    .as_ref()
                    .map(|cs| Value::Array(cs.iter().map(Condition::to_value).collect())),
            )
            .put("timestamp", tdate_value(self.timestamp))
            .put_opt(
                "signature",
                self.signature.as_ref().map(Signature::to_value),
            )
            .extend_unknown(&self.unknown)
            .build()
    }

    fn from_value(v: &Value) -> Result<Self, ObjectError> {
        let p = Proposal::decode(v, "")?;
        check_encodable(v)?;
        Ok(p)
    }
}

crate::impl_single_signed!(Proposal);

// ---------------------------------------------------------------------------------------
// Negotiation Initiation Message
// ---------------------------------------------------------------------------------------

/// Negotiation Initiation Message (SPEC III-C-1; PROFILE G-10), sent and signed by the
/// requesting Agent. Structural rules checked by `from_value`: the embedded proposal is of
/// type `proposal`, round 1, same `negotiation_id`, proposed by the Request's Agent;
/// `round_timeout_ms` and `max_rounds` within the profile ranges (PROFILE G-08).
#[derive(Clone, Debug, PartialEq)]
pub struct NegotiationInitiation {
    pub negotiation_id: MtpUuid,
    pub request: Request,
    pub offer_ref: MtpUuid,
    pub proposal: Proposal,
    pub round_timeout_ms: u64,
    pub max_rounds: u64,
    pub signature: Option<Signature>,
    pub unknown: Map,
}

impl CborObject for NegotiationInitiation {
    const NAME: &'static str = "nim";

    fn json_hints() -> &'static [Hint] {
        static H: std::sync::OnceLock<Vec<Hint>> = std::sync::OnceLock::new();
        H.get_or_init(|| {
            compose_hints(
                &[
                    NEGOTIATION_ID_HINT,
                    Hint {
                        path: "offer_ref",
                        kind: Kind::Uuid,
                    },
                    SIGNATURE_HINT,
                ],
                &[
                    ("request", Request::json_hints()),
                    ("proposal", proposal_hints()),
                ],
            )
        })
    }

    fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("type", Value::text("nim"))
            .put("negotiation_id", uuid_value(&self.negotiation_id))
            .put("request", self.request.to_value())
            .put("offer_ref", uuid_value(&self.offer_ref))
            .put("proposal", self.proposal.to_value())
            .put(
                "round_timeout_ms",
                Value::Integer(self.round_timeout_ms.into()),
            )
            .put("max_rounds", Value::Integer(self.max_rounds.into()))
            .put_opt(
                "signature",
                self.signature.as_ref().map(Signature::to_value),
            )
            .extend_unknown(&self.unknown)
            .build()
    }

    fn from_value(v: &Value) -> Result<Self, ObjectError> {
        let mut r = MapReader::new(v, "")?;
        let mut errs = Errors::new();
        read_type(&mut r, &["nim"], &mut errs);
        let negotiation_id = read_negotiation_id(&mut r, NIM_REQ, &mut errs);
        let request = errs.take(r.required("request", NIM_REQ)).and_then(|v| {
            errs.take_all(Request::from_value(v).map_err(|e| e.nested_under("request", SCHEMA_REQ)))
        });
        let offer_ref = errs
            .take(r.required("offer_ref", NIM_REQ))
            .and_then(|v| errs.take(read_uuid(v, "offer_ref", ObjectType::Offer, NIM_REQ)));
        let proposal = errs
            .take(r.required("proposal", NIM_REQ))
            .and_then(|v| errs.take_all(Proposal::decode(v, "proposal")));
        let round_timeout_ms = errs
            .take(r.required("round_timeout_ms", ROUND_TIMEOUT_REQ))
            .and_then(|v| errs.take(read_uint(v, "round_timeout_ms", ROUND_TIMEOUT_REQ)));
        if let Some(t) = round_timeout_ms.filter(|t| !ROUND_TIMEOUT_MS_RANGE.contains(t)) {
            errs.push(ValidationError::out_of_range(
                "round_timeout_ms",
                ROUND_TIMEOUT_REQ,
                format!("{t} ms outside {ROUND_TIMEOUT_MS_RANGE:?} (PROFILE G-08)"),
            ));
        }
        let max_rounds = errs
            .take(r.required("max_rounds", MAX_ROUNDS_REQ))
            .and_then(|v| errs.take(read_uint(v, "max_rounds", MAX_ROUNDS_REQ)));
        if let Some(m) = max_rounds.filter(|m| !MAX_ROUNDS_RANGE.contains(m)) {
            errs.push(ValidationError::out_of_range(
                "max_rounds",
                MAX_ROUNDS_REQ,
                format!("{m} outside {MAX_ROUNDS_RANGE:?} (PROFILE G-08)"),
            ));
        }
        let signature = read_signature_field(&mut r, NIM_REQ, &mut errs);
        let unknown = r.unknown();
        if let (Some(id), Some(p)) = (&negotiation_id, &proposal) {
            if p.negotiation_id != *id {
                errs.push(ValidationError::invalid(
                    "proposal.negotiation_id",
                    NIM_REQ,
                    "differs from the NIM's negotiation_id",
                ));
            }
            if p.kind != ProposalKind::Proposal || p.round != 1 {
                errs.push(ValidationError::invalid(
                    "proposal",
                    NIM_REQ,
                    format!("the initial proposal must be type \"proposal\" round 1, found {:?} round {}", p.kind.as_str(), p.round),
                ));
            }
        }
        if let (Some(req), Some(p)) = (&request, &proposal)
            && req.agent_id != p.proposer
        {
            errs.push(ValidationError::invalid(
                "proposal.proposer",
                PROPOSAL_SIGNATURE_REQ,
                "the initial proposal must be proposed by the requesting Agent",
            ));
        }
        let out = match (
            negotiation_id,
            request,
            offer_ref,
            proposal,
            round_timeout_ms,
            max_rounds,
            signature,
        ) {
            (
                Some(negotiation_id),
                Some(request),
                Some(offer_ref),
                Some(proposal),
                Some(round_timeout_ms),
                Some(max_rounds),
                Some(sig),
            ) => Some(NegotiationInitiation {
                negotiation_id,
                request,
                offer_ref,
                proposal,
                round_timeout_ms,
                max_rounds,
                signature: Some(sig),
                unknown,
            }),
            _ => None,
        };
        finish(v, errs, out)
    }
}

crate::impl_single_signed!(NegotiationInitiation);

// ---------------------------------------------------------------------------------------
// Acceptance, Rejection, Termination
// ---------------------------------------------------------------------------------------

/// Acceptance of the proposal whose [`Proposal::digest`] is `accepted` (PROFILE G-10).
/// Multi-party: Terms are agreed when every participant accepted the same digest.
#[derive(Clone, Debug, PartialEq)]
pub struct Acceptance {
    pub negotiation_id: MtpUuid,
    pub round: u64,
    pub accepted: [u8; 32],
    pub signature: Option<Signature>,
    pub unknown: Map,
}

impl CborObject for Acceptance {
    const NAME: &'static str = "acceptance";

    fn json_hints() -> &'static [Hint] {
        ACCEPTANCE_HINTS
    }

    fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("type", Value::text("acceptance"))
            .put("negotiation_id", uuid_value(&self.negotiation_id))
            .put("round", Value::Integer(self.round.into()))
            .put("accepted", Value::Bytes(self.accepted.to_vec()))
            .put_opt(
                "signature",
                self.signature.as_ref().map(Signature::to_value),
            )
            .extend_unknown(&self.unknown)
            .build()
    }

    fn from_value(v: &Value) -> Result<Self, ObjectError> {
        let mut r = MapReader::new(v, "")?;
        let mut errs = Errors::new();
        read_type(&mut r, &["acceptance"], &mut errs);
        let negotiation_id = read_negotiation_id(&mut r, RESPONSE_REQ, &mut errs);
        let round = read_round(&mut r, RESPONSE_REQ, &mut errs);
        let accepted = errs.take(r.required("accepted", RESPONSE_REQ).and_then(|v| {
            let b = read_bytes(v, "accepted", RESPONSE_REQ)?;
            <[u8; 32]>::try_from(b).map_err(|_| {
                ValidationError::invalid(
                    "accepted",
                    RESPONSE_REQ,
                    format!("{} bytes, a SHA-256 digest has 32", b.len()),
                )
            })
        }));
        let signature = read_signature_field(&mut r, RESPONSE_REQ, &mut errs);
        let unknown = r.unknown();
        let out = match (negotiation_id, round, accepted, signature) {
            (Some(negotiation_id), Some(round), Some(accepted), Some(sig)) => Some(Acceptance {
                negotiation_id,
                round,
                accepted,
                signature: Some(sig),
                unknown,
            }),
            _ => None,
        };
        finish(v, errs, out)
    }
}

crate::impl_single_signed!(Acceptance);

/// Rejection: the responder declines to negotiate further (SPEC III-C-1; PROFILE G-10).
#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    pub negotiation_id: MtpUuid,
    pub round: u64,
    pub reason: Option<String>,
    pub signature: Option<Signature>,
    pub unknown: Map,
}

impl CborObject for Rejection {
    const NAME: &'static str = "rejection";

    fn json_hints() -> &'static [Hint] {
        REJECTION_HINTS
    }

    fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("type", Value::text("rejection"))
            .put("negotiation_id", uuid_value(&self.negotiation_id))
            .put("round", Value::Integer(self.round.into()))
            .put_opt("reason", self.reason.as_deref().map(Value::text))
            .put_opt(
                "signature",
                self.signature.as_ref().map(Signature::to_value),
            )
            .extend_unknown(&self.unknown)
            .build()
    }

    fn from_value(v: &Value) -> Result<Self, ObjectError> {
        let mut r = MapReader::new(v, "")?;
        let mut errs = Errors::new();
        read_type(&mut r, &["rejection"], &mut errs);
        let negotiation_id = read_negotiation_id(&mut r, RESPONSE_REQ, &mut errs);
        let round = read_round(&mut r, RESPONSE_REQ, &mut errs);
        let reason = r
            .optional("reason")
            .and_then(|v| errs.take(read_text(v, "reason", SCHEMA_REQ)));
        let signature = read_signature_field(&mut r, RESPONSE_REQ, &mut errs);
        let unknown = r.unknown();
        let out = match (negotiation_id, round, signature) {
            (Some(negotiation_id), Some(round), Some(sig)) => Some(Rejection {
                negotiation_id,
                round,
                reason: reason.map(str::to_owned),
                signature: Some(sig),
                unknown,
            }),
            _ => None,
        };
        finish(v, errs, out)
    }
}

crate::impl_single_signed!(Rejection);

/// Why a negotiation ended without agreement (SPEC III-C-1, III-B-3; PROFILE G-10, G-17).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TerminationStatus {
    /// A round did not complete within `round_timeout_ms` (SPEC-III-C-1-02) → 3200.
    Timeout,
    /// No agreement within `max_rounds` (SPEC-III-C-1-04) → 3201.
    Exhausted,
    /// The counterparty sent a Rejection → 3100.
    Rejected,
    /// The matched Offer was revoked (SPEC-III-B-3-04) → 3101.
    Revoked,
}

impl TerminationStatus {
    pub const ALL: [TerminationStatus; 4] = [
        TerminationStatus::Timeout,
        TerminationStatus::Exhausted,
        TerminationStatus::Rejected,
        TerminationStatus::Revoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TerminationStatus::Timeout => "timeout",
            TerminationStatus::Exhausted => "exhausted",
            TerminationStatus::Rejected => "rejected",
            TerminationStatus::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<TerminationStatus> {
        TerminationStatus::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The error code carried in the termination's `error` (PROFILE G-14, G-17).
    pub fn code(self) -> ErrorCode {
        match self {
            TerminationStatus::Timeout => ErrorCode::RoundTimeout,
            TerminationStatus::Exhausted => ErrorCode::RoundLimitExhausted,
            TerminationStatus::Rejected => ErrorCode::CounterpartyRejected,
            TerminationStatus::Revoked => ErrorCode::NegotiationTerminatedByRevocation,
        }
    }

    /// The requirement that demands the termination.
    pub fn requirement(self) -> &'static str {
        match self {
            TerminationStatus::Timeout => "SPEC-III-C-1-02",
            TerminationStatus::Exhausted => "SPEC-III-C-1-04",
            TerminationStatus::Rejected => RESPONSE_REQ,
            TerminationStatus::Revoked => "SPEC-III-B-3-04",
        }
    }
}

/// Termination notice (PROFILE G-10, G-16, G-17), signed by the terminating Agent. For
/// `timeout` / `exhausted` the `error` carries 3200 / 3201 (PROFILE G-17; checked by
/// `from_value`).
#[derive(Clone, Debug, PartialEq)]
pub struct Termination {
    pub negotiation_id: MtpUuid,
    pub status: TerminationStatus,
    /// The `mtp-error` (PROFILE G-16).
    pub error: MtpErrorRecord,
    pub signature: Option<Signature>,
    pub unknown: Map,
}

impl CborObject for Termination {
    const NAME: &'static str = "termination";

    fn json_hints() -> &'static [Hint] {
        static H: std::sync::OnceLock<Vec<Hint>> = std::sync::OnceLock::new();
        H.get_or_init(|| {
            compose_hints(
                &[NEGOTIATION_ID_HINT, SIGNATURE_HINT],
                &[("error", MtpErrorRecord::json_hints())],
            )
        })
    }

    fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("type", Value::text("termination"))
            .put("negotiation_id", uuid_value(&self.negotiation_id))
            .put("status", Value::text(self.status.as_str()))
            .put("error", self.error.to_value())
            .put_opt(
                "signature",
                self.signature.as_ref().map(Signature::to_value),
            )
            .extend_unknown(&self.unknown)
            .build()
    }

    fn from_value(v: &Value) -> Result<Self, ObjectError> {
        let mut r = MapReader::new(v, "")?;
        let mut errs = Errors::new();
        read_type(&mut r, &["termination"], &mut errs);
        let negotiation_id = read_negotiation_id(&mut r, SCHEMA_REQ, &mut errs);
        let status = errs.take(r.required("status", SCHEMA_REQ).and_then(|v| {
            let s = read_text(v, "status", SCHEMA_REQ)?;
            TerminationStatus::parse(s).ok_or_else(|| {
                ValidationError::invalid(
                    "status",
                    SCHEMA_REQ,
                    format!("{s:?} is not timeout/exhausted/rejected/revoked"),
                )
            })
        }));
        let error = errs.take(r.required("error", SCHEMA_REQ)).and_then(|v| {
            errs.take_all(
                MtpErrorRecord::from_value(v).map_err(|e| e.nested_under("error", SCHEMA_REQ)),
            )
        });
        if let (Some(s), Some(e)) = (status, &error) {
            let expected = s.code();
            if matches!(s, TerminationStatus::Timeout | TerminationStatus::Exhausted)
                && e.code != expected.as_u16()
            {
                errs.push(ValidationError::invalid(
                    "error.code",
                    s.requirement(),
                    format!(
                        "status {} carries error {expected}, found {:04} (PROFILE G-17)",
                        s.as_str(),
                        e.code
                    ),
                ));
            }
        }
        let signature = read_signature_field(&mut r, SCHEMA_REQ, &mut errs);
        let unknown = r.unknown();
        let out = match (negotiation_id, status, error, signature) {
            (Some(negotiation_id), Some(status), Some(error), Some(sig)) => Some(Termination {
                negotiation_id,
                status,
                error,
                signature: Some(sig),
                unknown,
            }),
            _ => None,
        };
        finish(v, errs, out)
    }
}

crate::impl_single_signed!(Termination);

// ---------------------------------------------------------------------------------------
// Dispatch
// ---------------------------------------------------------------------------------------

/// Any negotiation message, dispatched on its `type` key (PROFILE G-10).
#[derive(Clone, Debug, PartialEq)]
pub enum NegotiationMessage {
    Initiation(Box<NegotiationInitiation>),
    /// `proposal` or `counterproposal`.
    Proposal(Proposal),
    Acceptance(Acceptance),
    Rejection(Rejection),
    Termination(Termination),
}

impl NegotiationMessage {
    pub fn negotiation_id(&self) -> MtpUuid {
        match self {
            NegotiationMessage::Initiation(m) => m.negotiation_id,
            NegotiationMessage::Proposal(m) => m.negotiation_id,
            NegotiationMessage::Acceptance(m) => m.negotiation_id,
            NegotiationMessage::Rejection(m) => m.negotiation_id,
            NegotiationMessage::Termination(m) => m.negotiation_id,
        }
    }

    /// The wire `type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            NegotiationMessage::Initiation(_) => "nim",
            NegotiationMessage::Proposal(p) => p.kind.as_str(),
            NegotiationMessage::Acceptance(_) => "acceptance",
            NegotiationMessage::Rejection(_) => "rejection",
            NegotiationMessage::Termination(_) => "termination",
        }
    }

    /// The signature, if any (every message type is signed, PROFILE G-10).
    pub fn signature(&self) -> Option<&Signature> {
        match self {
            NegotiationMessage::Initiation(m) => m.signature.as_ref(),
            NegotiationMessage::Proposal(m) => m.signature.as_ref(),
            NegotiationMessage::Acceptance(m) => m.signature.as_ref(),
            NegotiationMessage::Rejection(m) => m.signature.as_ref(),
            NegotiationMessage::Termination(m) => m.signature.as_ref(),
        }
    }

    /// Verifies the message's signature with the sender's key (code 1100 on failure).
    pub fn verify_signature(
        &self,
        public_key: &crate::crypto::PublicKey,
    ) -> Result<(), ObjectError> {
        match self {
            NegotiationMessage::Initiation(m) => m.verify_signature(public_key),
            NegotiationMessage::Proposal(m) => m.verify_signature(public_key),
            NegotiationMessage::Acceptance(m) => m.verify_signature(public_key),
            NegotiationMessage::Rejection(m) => m.verify_signature(public_key),
            NegotiationMessage::Termination(m) => m.verify_signature(public_key),
        }
    }
}

fn message_type(v: &Value) -> Result<&str, ObjectError> {
    let mut r = MapReader::new(v, "")?;
    let t = r.required("type", SCHEMA_REQ)?;
    Ok(read_text(t, "type", SCHEMA_REQ)?)
}

impl CborObject for NegotiationMessage {
    const NAME: &'static str = "negotiation-message";

    /// The union of every message type's hints (their paths do not collide).
    fn json_hints() -> &'static [Hint] {
        static H: std::sync::OnceLock<Vec<Hint>> = std::sync::OnceLock::new();
        H.get_or_init(|| {
            let mut all: Vec<Hint> = Vec::new();
            for hs in [
                NegotiationInitiation::json_hints(),
                proposal_hints(),
                ACCEPTANCE_HINTS,
                REJECTION_HINTS,
                Termination::json_hints(),
            ] {
                for h in hs {
                    if !all.contains(h) {
                        all.push(*h);
                    }
                }
            }
            all
        })
    }

    fn to_value(&self) -> Value {
        match self {
            NegotiationMessage::Initiation(m) => m.to_value(),
            NegotiationMessage::Proposal(m) => m.to_value(),
            NegotiationMessage::Acceptance(m) => m.to_value(),
            NegotiationMessage::Rejection(m) => m.to_value(),
            NegotiationMessage::Termination(m) => m.to_value(),
        }
    }

    fn from_value(v: &Value) -> Result<Self, ObjectError> {
        match message_type(v)? {
            "nim" => NegotiationInitiation::from_value(v)
                .map(|m| NegotiationMessage::Initiation(Box::new(m))),
            "proposal" | "counterproposal" => {
                Proposal::from_value(v).map(NegotiationMessage::Proposal)
            }
            "acceptance" => Acceptance::from_value(v).map(NegotiationMessage::Acceptance),
            "rejection" => Rejection::from_value(v).map(NegotiationMessage::Rejection),
            "termination" => Termination::from_value(v).map(NegotiationMessage::Termination),
            other => Err(ValidationError::invalid(
                "type",
                SCHEMA_REQ,
                format!("unknown negotiation message type {other:?}"),
            )
            .into()),
        }
    }
}

/// `negotiation-round = proposal / acceptance / rejection`, as logged verbatim in
/// `Terms.negotiation_log` (PROFILE G-10; BIND-VII-C-04).
#[derive(Clone, Debug, PartialEq)]
pub enum NegotiationRound {
    Proposal(Proposal),
    Acceptance(Acceptance),
    Rejection(Rejection),
}

impl CborObject for NegotiationRound {
    const NAME: &'static str = "negotiation-round";

    fn json_hints() -> &'static [Hint] {
        static H: std::sync::OnceLock<Vec<Hint>> = std::sync::OnceLock::new();
        H.get_or_init(|| {
            let mut all: Vec<Hint> = proposal_hints().to_vec();
            for h in ACCEPTANCE_HINTS.iter().chain(REJECTION_HINTS) {
                if !all.contains(h) {
                    all.push(*h);
                }
            }
            all
        })
    }

    fn to_value(&self) -> Value {
        match self {
            NegotiationRound::Proposal(m) => m.to_value(),
            NegotiationRound::Acceptance(m) => m.to_value(),
            NegotiationRound::Rejection(m) => m.to_value(),
        }
    }

    fn from_value(v: &Value) -> Result<Self, ObjectError> {
        match message_type(v)? {
            "proposal" | "counterproposal" => Proposal::from_value(v).map(NegotiationRound::Proposal),
            "acceptance" => Acceptance::from_value(v).map(NegotiationRound::Acceptance),
            "rejection" => Rejection::from_value(v).map(NegotiationRound::Rejection),
            other => Err(ValidationError::invalid(
                "type",
                "BIND-VII-C-04",
                format!("{other:?} is not a negotiation-round (proposal, counterproposal, acceptance, rejection)"),
            )
            .into()),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Round rules (SPEC III-C-1), pure
// ---------------------------------------------------------------------------------------

/// Where a negotiation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NegotiationState {
    /// Waiting for the reply to the current round's proposal.
    Open,
    /// The current proposal was accepted.
    Agreed { round: u64, accepted: [u8; 32] },
    /// Ended without agreement.
    Terminated(TerminationStatus),
}

/// What a message did to the negotiation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// A counterproposal opened round `round`.
    Continue { round: u64 },
    /// The current proposal was accepted.
    Agreed { round: u64, accepted: [u8; 32] },
    /// The negotiation ended (a Rejection counts as `Rejected`).
    Terminated(TerminationStatus),
}

/// Why a message breaks the round rules.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RoundError {
    #[error("the reply came {elapsed_ms} ms after the proposal, round timeout is {timeout_ms} ms")]
    Timeout { elapsed_ms: u64, timeout_ms: u64 },
    #[error("round {round} would exceed max_rounds {max_rounds}")]
    Exhausted { round: u64, max_rounds: u64 },
    #[error("message for negotiation {found}, expected {expected}")]
    WrongNegotiation { expected: MtpUuid, found: MtpUuid },
    #[error("message for round {found}, expected round {expected}")]
    WrongRound { expected: u64, found: u64 },
    #[error("acceptance names a proposal other than the current one")]
    DigestMismatch,
    #[error("a counterproposal must come from the other party, not from {0}")]
    SameProposer(String),
    #[error("{0} is not a valid reply at this point")]
    Unexpected(&'static str),
    #[error("the negotiation is already closed ({0:?})")]
    Closed(NegotiationState),
    #[error("NIM parameter out of range: {0}")]
    Parameter(String),
}

impl Coded for RoundError {
    fn code(&self) -> ErrorCode {
        match self {
            RoundError::Timeout { .. } => ErrorCode::RoundTimeout,
            RoundError::Exhausted { .. } => ErrorCode::RoundLimitExhausted,
            RoundError::Closed(_) => ErrorCode::UndefinedTransition,
            _ => ErrorCode::SchemaViolation,
        }
    }

    fn requirement(&self) -> Option<&'static str> {
        Some(match self {
            RoundError::Timeout { .. } => "SPEC-III-C-1-02",
            RoundError::Exhausted { .. } => "SPEC-III-C-1-04",
            RoundError::Closed(_) => "SPEC-IV-01",
            RoundError::Parameter(_) => MAX_ROUNDS_REQ,
            _ => RESPONSE_REQ,
        })
    }
}

/// The round rules of one negotiation (SPEC III-C-1; PROFILE G-10, G-17), as a pure state
/// machine: no clock — the caller passes `elapsed_ms`, the time since the current round's
/// proposal was sent (or received, on the responder's side).
///
/// - round 1 is the NIM's proposal; a counterproposal opens the next round and must come
///   from the other party;
/// - an Acceptance names the current proposal's digest and round → agreed;
/// - a Rejection of the current round → terminated `rejected`;
/// - a reply later than `round_timeout_ms` → `timeout` (SPEC-III-C-1-02, 3200);
/// - a counterproposal that would open round `max_rounds + 1` → `exhausted`
///   (SPEC-III-C-1-04, 3201): the party that cannot accept must terminate instead;
/// - a Termination ends the negotiation with its status.
#[derive(Clone, Debug, PartialEq)]
pub struct RoundTracker {
    negotiation_id: MtpUuid,
    round_timeout_ms: u64,
    max_rounds: u64,
    round: u64,
    current: [u8; 32],
    proposer: Did,
    state: NegotiationState,
}

impl RoundTracker {
    /// Starts at round 1 with the NIM's proposal.
    pub fn start(nim: &NegotiationInitiation) -> Result<RoundTracker, RoundError> {
        RoundTracker::new(
            nim.negotiation_id,
            nim.round_timeout_ms,
            nim.max_rounds,
            &nim.proposal,
        )
    }

    /// Starts at round 1 with `first` (the NIM's proposal) and the NIM parameters.
    pub fn new(
        negotiation_id: MtpUuid,
        round_timeout_ms: u64,
        max_rounds: u64,
        first: &Proposal,
    ) -> Result<RoundTracker, RoundError> {
        if !ROUND_TIMEOUT_MS_RANGE.contains(&round_timeout_ms) {
            return Err(RoundError::Parameter(format!(
                "round_timeout_ms {round_timeout_ms}"
            )));
        }
        if !MAX_ROUNDS_RANGE.contains(&max_rounds) {
            return Err(RoundError::Parameter(format!("max_rounds {max_rounds}")));
        }
        Ok(RoundTracker {
            negotiation_id,
            round_timeout_ms,
            max_rounds,
            round: 1,
            current: first.digest(),
            proposer: first.proposer.clone(),
            state: NegotiationState::Open,
        })
    }

    pub fn state(&self) -> NegotiationState {
        self.state
    }

    /// The current round (1-based).
    pub fn round(&self) -> u64 {
        self.round
    }

    /// Digest of the proposal awaiting a reply.
    pub fn current_digest(&self) -> [u8; 32] {
        self.current
    }

    /// Whether a counterproposal is still allowed (the current round is not the last).
    pub fn may_counter(&self) -> bool {
        self.round < self.max_rounds
    }

    /// Warning 3300 condition: the current round is the last one.
    pub fn approaching_limit(&self) -> bool {
        self.round >= self.max_rounds
    }

    /// Whether a reply `elapsed_ms` after the proposal is too late (SPEC-III-C-1-01).
    pub fn timed_out(&self, elapsed_ms: u64) -> bool {
        elapsed_ms > self.round_timeout_ms
    }

    /// For the waiting side: when no reply has come within the timeout, the negotiation is
    /// terminated with status Timeout (SPEC-III-C-1-02). Returns the new state.
    pub fn on_wait(&mut self, elapsed_ms: u64) -> NegotiationState {
        if self.state == NegotiationState::Open && self.timed_out(elapsed_ms) {
            self.state = NegotiationState::Terminated(TerminationStatus::Timeout);
        }
        self.state
    }

    /// Checks `msg` against the rules without changing state.
    pub fn check(&self, msg: &NegotiationMessage, elapsed_ms: u64) -> Result<Step, RoundError> {
        let found = msg.negotiation_id();
        if found != self.negotiation_id {
            return Err(RoundError::WrongNegotiation {
                expected: self.negotiation_id,
                found,
            });
        }
        if self.state != NegotiationState::Open {
            return Err(RoundError::Closed(self.state));
        }
        if let NegotiationMessage::Termination(t) = msg {
            return Ok(Step::Terminated(t.status));
        }
        if self.timed_out(elapsed_ms) {
            return Err(RoundError::Timeout {
                elapsed_ms,
                timeout_ms: self.round_timeout_ms,
            });
        }
        match msg {
            NegotiationMessage::Initiation(_) => Err(RoundError::Unexpected("nim")),
            NegotiationMessage::Proposal(p) if p.kind == ProposalKind::Proposal => {
                Err(RoundError::Unexpected("proposal"))
            }
            NegotiationMessage::Proposal(p) => {
                if !self.may_counter() {
                    return Err(RoundError::Exhausted {
                        round: self.round + 1,
                        max_rounds: self.max_rounds,
                    });
                }
                if p.round != self.round + 1 {
                    return Err(RoundError::WrongRound {
                        expected: self.round + 1,
                        found: p.round,
                    });
                }
                if p.proposer == self.proposer {
                    return Err(RoundError::SameProposer(p.proposer.as_str().to_owned()));
                }
                Ok(Step::Continue { round: p.round })
            }
            NegotiationMessage::Acceptance(a) => {
                if a.round != self.round {
                    return Err(RoundError::WrongRound {
                        expected: self.round,
                        found: a.round,
                    });
                }
                if a.accepted != self.current {
                    return Err(RoundError::DigestMismatch);
                }
                Ok(Step::Agreed {
                    round: a.round,
                    accepted: a.accepted,
                })
            }
            NegotiationMessage::Rejection(r) => {
                if r.round != self.round {
                    return Err(RoundError::WrongRound {
                        expected: self.round,
                        found: r.round,
                    });
                }
                Ok(Step::Terminated(TerminationStatus::Rejected))
            }
            NegotiationMessage::Termination(t) => Ok(Step::Terminated(t.status)),
        }
    }

    /// Applies `msg`. On a rule violation the state is unchanged, except for Timeout and
    /// Exhausted, which terminate the negotiation (PROFILE G-17).
    pub fn apply(&mut self, msg: &NegotiationMessage, elapsed_ms: u64) -> Result<Step, RoundError> {
        match self.check(msg, elapsed_ms) {
            Ok(step) => {
                match step {
                    Step::Continue { round } => {
                        if let NegotiationMessage::Proposal(p) = msg {
                            self.round = round;
                            self.current = p.digest();
                            self.proposer = p.proposer.clone();
                        }
                    }
                    Step::Agreed { round, accepted } => {
                        self.state = NegotiationState::Agreed { round, accepted }
                    }
                    Step::Terminated(s) => self.state = NegotiationState::Terminated(s),
                }
                Ok(step)
            }
            Err(e) => {
                match e {
                    RoundError::Timeout { .. } => {
                        self.state = NegotiationState::Terminated(TerminationStatus::Timeout)
                    }
                    RoundError::Exhausted { .. } => {
                        self.state = NegotiationState::Terminated(TerminationStatus::Exhausted)
                    }
                    _ => {}
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn did(b: u8) -> Did {
        Did::from_digest([b; 32])
    }

    fn nid() -> MtpUuid {
        MtpUuid::new(
            ObjectType::Terms,
            1_772_807_327_000_000_000,
            [1; 6],
            [2; 17],
        )
    }

    fn sig() -> Option<Signature> {
        Some(Signature {
            algorithm: "ML-DSA-65".into(),
            key_id: None,
            value: vec![7; 8],
            unknown: Map::new(),
        })
    }

    fn proposal(kind: ProposalKind, round: u64, proposer: u8) -> Proposal {
        Proposal {
            kind,
            negotiation_id: nid(),
            round,
            proposer: did(proposer),
            terms: vec![(
                Value::text("price"),
                Value::map([("unit", Value::text("USD")), ("amount", Value::Integer(5))]),
            )],
            conditions: Some(vec![Condition {
                if_: "price.amount".into(),
                then: "delivery.latest".into(),
                unknown: Map::new(),
            }]),
            timestamp: Timestamp::from_unix_secs(1_772_807_327).unwrap(),
            signature: sig(),
            unknown: vec![(Value::text("x_extra"), Value::Integer(1))],
        }
    }

    fn accept(round: u64, p: &Proposal) -> NegotiationMessage {
        NegotiationMessage::Acceptance(Acceptance {
            negotiation_id: nid(),
            round,
            accepted: p.digest(),
            signature: sig(),
            unknown: Map::new(),
        })
    }

    #[test]
    fn messages_round_trip_through_cbor() {
        let p = proposal(ProposalKind::Counterproposal, 2, 1);
        let bytes = p.to_cbor();
        assert_eq!(Proposal::from_cbor(&bytes).unwrap(), p);
        let m = NegotiationMessage::from_cbor(&bytes).unwrap();
        assert_eq!(m, NegotiationMessage::Proposal(p.clone()));
        assert_eq!(m.type_name(), "counterproposal");
        let a = accept(2, &p);
        assert_eq!(NegotiationMessage::from_cbor(&a.to_cbor()).unwrap(), a);
        let r = Rejection {
            negotiation_id: nid(),
            round: 3,
            reason: Some("no".into()),
            signature: sig(),
            unknown: Map::new(),
        };
        assert_eq!(Rejection::from_cbor(&r.to_cbor()).unwrap(), r);
        assert_eq!(
            NegotiationRound::from_cbor(&r.to_cbor()).unwrap(),
            NegotiationRound::Rejection(r)
        );
    }

    #[test]
    fn schema_errors_name_path_and_requirement() {
        let mut p = proposal(ProposalKind::Proposal, 1, 1);
        p.signature = None;
        let e = Proposal::from_value(&p.to_value()).unwrap_err();
        assert!(e.has("signature", PROPOSAL_SIGNATURE_REQ), "{e}");
        let mut v = proposal(ProposalKind::Proposal, 1, 1).to_value();
        if let Value::Map(m) = &mut v {
            for (k, x) in m.iter_mut() {
                if k.as_text() == Some("round") {
                    *x = Value::Integer(0);
                }
                if k.as_text() == Some("negotiation_id") {
                    *x = MtpUuid::new(ObjectType::Offer, 1, [0; 6], [0; 17]).to_value();
                }
            }
        }
        let e = Proposal::from_value(&v).unwrap_err();
        assert!(e.has("round", RESPONSE_REQ), "{e}");
        assert!(
            e.schema_errors()
                .iter()
                .any(|x| x.path == "negotiation_id" && x.code == ErrorCode::MalformedUuid)
        );
        assert!(
            NegotiationMessage::from_value(&Value::map([("type", Value::text("bogus"))])).is_err()
        );
        assert!(NegotiationMessage::from_value(&Value::Integer(3)).is_err());
    }

    #[test]
    fn termination_status_codes() {
        for s in TerminationStatus::ALL {
            assert_eq!(TerminationStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(TerminationStatus::Timeout.code(), ErrorCode::RoundTimeout);
        assert_eq!(
            TerminationStatus::Exhausted.code(),
            ErrorCode::RoundLimitExhausted
        );
        assert_eq!(
            TerminationStatus::Rejected.code(),
            ErrorCode::CounterpartyRejected
        );
        assert_eq!(
            TerminationStatus::Revoked.code(),
            ErrorCode::NegotiationTerminatedByRevocation
        );
    }

    #[test]
    fn single_round_acceptance() {
        let first = proposal(ProposalKind::Proposal, 1, 1);
        let mut t = RoundTracker::new(nid(), 1000, 1, &first).unwrap();
        assert!(!t.may_counter() && t.approaching_limit());
        assert_eq!(
            t.apply(&accept(1, &first), 999).unwrap(),
            Step::Agreed {
                round: 1,
                accepted: first.digest()
            }
        );
        assert!(matches!(
            t.state(),
            NegotiationState::Agreed { round: 1, .. }
        ));
        assert!(matches!(
            t.apply(&accept(1, &first), 0),
            Err(RoundError::Closed(_))
        ));
    }

    #[test]
    fn multi_round_then_exhausted() {
        let first = proposal(ProposalKind::Proposal, 1, 1);
        let mut t = RoundTracker::new(nid(), 1000, 3, &first).unwrap();
        let c2 = proposal(ProposalKind::Counterproposal, 2, 2);
        assert_eq!(
            t.apply(&NegotiationMessage::Proposal(c2.clone()), 10)
                .unwrap(),
            Step::Continue { round: 2 }
        );
        // wrong round, same proposer, stale digest, and a plain "proposal" are refused
        let bad_round = proposal(ProposalKind::Counterproposal, 4, 1);
        assert!(matches!(
            t.check(&NegotiationMessage::Proposal(bad_round), 0),
            Err(RoundError::WrongRound {
                expected: 3,
                found: 4
            })
        ));
        let same = proposal(ProposalKind::Counterproposal, 3, 2);
        assert!(matches!(
            t.check(&NegotiationMessage::Proposal(same), 0),
            Err(RoundError::SameProposer(_))
        ));
        assert_eq!(
            t.check(&accept(2, &first), 0),
            Err(RoundError::DigestMismatch)
        );
        assert_eq!(
            t.check(&NegotiationMessage::Proposal(first.clone()), 0),
            Err(RoundError::Unexpected("proposal"))
        );
        let c3 = proposal(ProposalKind::Counterproposal, 3, 1);
        assert_eq!(
            t.apply(&NegotiationMessage::Proposal(c3), 10).unwrap(),
            Step::Continue { round: 3 }
        );
        assert!(!t.may_counter());
        let c4 = proposal(ProposalKind::Counterproposal, 4, 2);
        let e = t.apply(&NegotiationMessage::Proposal(c4), 10).unwrap_err();
        assert_eq!(e.code(), ErrorCode::RoundLimitExhausted);
        assert_eq!(
            t.state(),
            NegotiationState::Terminated(TerminationStatus::Exhausted)
        );
    }

    #[test]
    fn timeout_rejection_and_wrong_negotiation() {
        let first = proposal(ProposalKind::Proposal, 1, 1);
        let mut t = RoundTracker::new(nid(), 500, 5, &first).unwrap();
        assert_eq!(t.on_wait(500), NegotiationState::Open);
        let late = t.clone().apply(&accept(1, &first), 501).unwrap_err();
        assert_eq!(late.code(), ErrorCode::RoundTimeout);
        assert_eq!(
            t.clone().on_wait(501),
            NegotiationState::Terminated(TerminationStatus::Timeout)
        );
        let rej = NegotiationMessage::Rejection(Rejection {
            negotiation_id: nid(),
            round: 1,
            reason: None,
            signature: sig(),
            unknown: Map::new(),
        });
        assert_eq!(
            t.apply(&rej, 1).unwrap(),
            Step::Terminated(TerminationStatus::Rejected)
        );
        let mut other = accept(1, &first);
        if let NegotiationMessage::Acceptance(a) = &mut other {
            a.negotiation_id = MtpUuid::new(ObjectType::Terms, 5, [0; 6], [0; 17]);
        }
        assert!(matches!(
            t.check(&other, 0),
            Err(RoundError::WrongNegotiation { .. })
        ));
        assert!(RoundTracker::new(nid(), 99, 5, &first).is_err());
        assert!(RoundTracker::new(nid(), 100, 101, &first).is_err());
    }
}
