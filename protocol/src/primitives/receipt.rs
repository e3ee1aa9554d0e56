//! Receipt (SPEC II-D, BIND VII-D): the verified outcome of a transaction.

use super::common::*;
use super::json::{Hint, Kind};
use crate::cbor::Value;
use crate::identity::Did;
use crate::profile::ATTRIBUTION_MIN_CONTRIBUTORS;
use crate::time::Timestamp;
use crate::uuid::{MtpUuid, ObjectType};

const MANDATORY: &str = "SPEC-II-D-01";
const METHOD: &str = "BIND-VII-D-03";

/// Receipt `outcome` (SPEC-II-D-01; PROFILE G-12 spellings).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    Fulfilled,
    PartiallyFulfilled,
    Disputed,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Fulfilled => "fulfilled",
            Outcome::PartiallyFulfilled => "partially_fulfilled",
            Outcome::Disputed => "disputed",
            Outcome::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "fulfilled" => Some(Outcome::Fulfilled),
            "partially_fulfilled" => Some(Outcome::PartiallyFulfilled),
            "disputed" => Some(Outcome::Disputed),
            "failed" => Some(Outcome::Failed),
            _ => None,
        }
    }
}

/// `verification-method` (BIND-VII-D-03).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VerificationMethod {
    Attestation,
    Evidence,
    Computation,
    ThirdParty,
}

impl VerificationMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            VerificationMethod::Attestation => "attestation",
            VerificationMethod::Evidence => "evidence",
            VerificationMethod::Computation => "computation",
            VerificationMethod::ThirdParty => "third_party",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "attestation" => Some(VerificationMethod::Attestation),
            "evidence" => Some(VerificationMethod::Evidence),
            "computation" => Some(VerificationMethod::Computation),
            "third_party" => Some(VerificationMethod::ThirdParty),
            _ => None,
        }
    }
}

/// `verification: { method, evidence: { * tstr => any }, ? third_party: did-string }`.
/// `third_party` is REQUIRED when `method` is `third_party` (PROFILE G-22); it is the
/// verifier Agent, so a `did:mtp`.
#[derive(Clone, Debug, PartialEq)]
pub struct Verification {
    pub method: VerificationMethod,
    pub evidence: Map,
    pub third_party: Option<Did>,
    pub unknown: Map,
}

impl Verification {
    pub fn new(method: VerificationMethod) -> Self {
        Verification {
            method,
            evidence: Map::new(),
            third_party: None,
            unknown: Map::new(),
        }
    }

    pub fn from_value(v: &Value, path: &str) -> Result<Self, Vec<ValidationError>> {
        let mut r = MapReader::new(v, path).map_err(|e| vec![e])?;
        let mut e = Errors::new();
        let method = r.field("method", MANDATORY, &mut e, |v, p| {
            let s = read_text(v, p, METHOD)?;
            VerificationMethod::parse(s).ok_or_else(|| {
                ValidationError::invalid(
                    p,
                    METHOD,
                    format!("{s:?} is not attestation, evidence, computation or third_party"),
                )
            })
        });
        let evidence = r.field("evidence", MANDATORY, &mut e, |v, p| {
            read_open_map(v, p, MANDATORY)
        });
        let third_party = r.field_opt("third_party", &mut e, |v, p| read_did(v, p, "SPEC-II-D-01"));
        let unknown = r.unknown();
        if method == Some(VerificationMethod::ThirdParty)
            && third_party.is_none()
            && !r_has_error(&e, path)
        {
            e.push(ValidationError::missing(
                join_path(path, "third_party"),
                METHOD,
            ));
        }
        match (method, evidence) {
            (Some(method), Some(evidence)) if e.is_empty() => Ok(Verification {
                method,
                evidence,
                third_party,
                unknown,
            }),
            _ => Err(e.into_vec()),
        }
    }

    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("method", Value::text(self.method.as_str()))
            .put("evidence", Value::Map(self.evidence.clone()))
            .put_opt(
                "third_party",
                self.third_party.as_ref().map(|d| Value::text(d.as_str())),
            )
            .extend_unknown(&self.unknown)
            .build()
    }
}

/// `true` when an error was already recorded for `path.third_party`.
fn r_has_error(e: &Errors, path: &str) -> bool {
    let p = join_path(path, "third_party");
    e.0.iter().any(|x| x.path == p)
}

/// `partial_fulfillment` (SPEC-II-D-02); `fulfillment_ratio` ∈ (0, 1) (PROFILE G-22).
/// Element strings are dotted paths into the Terms map.
#[derive(Clone, Debug, PartialEq)]
pub struct PartialFulfillment {
    pub fulfilled_elements: Vec<String>,
    pub unfulfilled_elements: Vec<String>,
    pub fulfillment_ratio: f32,
    pub unknown: Map,
}

impl PartialFulfillment {
    pub fn from_value(v: &Value, path: &str) -> Result<Self, Vec<ValidationError>> {
        let req = "SPEC-II-D-02";
        let mut r = MapReader::new(v, path).map_err(|e| vec![e])?;
        let mut e = Errors::new();
        let fulfilled = r.field_all("fulfilled_elements", req, &mut e, |v, p| {
            read_text_array(v, p, req)
        });
        let unfulfilled = r.field_all("unfulfilled_elements", req, &mut e, |v, p| {
            read_text_array(v, p, req)
        });
        let ratio = r.field("fulfillment_ratio", req, &mut e, |v, p| {
            let f = read_float32(v, p, req)?;
            if f > 0.0 && f < 1.0 {
                Ok(f)
            } else {
                Err(ValidationError::out_of_range(
                    p,
                    req,
                    format!("{f} outside (0, 1) (PROFILE G-22)"),
                ))
            }
        });
        let unknown = r.unknown();
        match (fulfilled, unfulfilled, ratio) {
            (Some(fulfilled_elements), Some(unfulfilled_elements), Some(fulfillment_ratio))
                if e.is_empty() =>
            {
                Ok(PartialFulfillment {
                    fulfilled_elements,
                    unfulfilled_elements,
                    fulfillment_ratio,
                    unknown,
                })
            }
            _ => Err(e.into_vec()),
        }
    }

    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .put(
                "fulfilled_elements",
                text_array_value(&self.fulfilled_elements),
            )
            .put(
                "unfulfilled_elements",
                text_array_value(&self.unfulfilled_elements),
            )
            .put("fulfillment_ratio", float32_value(self.fulfillment_ratio))
            .extend_unknown(&self.unknown)
            .build()
    }
}

/// `dispute_initiation` (SPEC-II-D-04; SPEC III-F-2; mandate id = the Receipt's, G-22).
#[derive(Clone, Debug, PartialEq)]
pub struct DisputeInitiation {
    pub violated_provisions: Vec<String>,
    pub evidence_refs: Vec<String>,
    pub proposed_resolution: String,
    pub unknown: Map,
}

impl DisputeInitiation {
    pub fn from_value(v: &Value, path: &str) -> Result<Self, Vec<ValidationError>> {
        let req = "SPEC-II-D-04";
        let mut r = MapReader::new(v, path).map_err(|e| vec![e])?;
        let mut e = Errors::new();
        let violated = r.field_all("violated_provisions", req, &mut e, |v, p| {
            read_text_array(v, p, req)
        });
        let refs = r.field_all("evidence_refs", req, &mut e, |v, p| {
            read_text_array(v, p, req)
        });
        let proposed = r.field("proposed_resolution", req, &mut e, |v, p| {
            read_text(v, p, req).map(str::to_owned)
        });
        let unknown = r.unknown();
        match (violated, refs, proposed) {
            (Some(violated_provisions), Some(evidence_refs), Some(proposed_resolution))
                if e.is_empty() =>
            {
                Ok(DisputeInitiation {
                    violated_provisions,
                    evidence_refs,
                    proposed_resolution,
                    unknown,
                })
            }
            _ => Err(e.into_vec()),
        }
    }

    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .put(
                "violated_provisions",
                text_array_value(&self.violated_provisions),
            )
            .put("evidence_refs", text_array_value(&self.evidence_refs))
            .put(
                "proposed_resolution",
                Value::text(self.proposed_resolution.as_str()),
            )
            .extend_unknown(&self.unknown)
            .build()
    }
}

/// A conditional block present although the outcome does not call for it: accepted, and
/// reported by [`Receipt::warnings`] (PROFILE G-22).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtraneousBlock {
    pub field: &'static str,
    pub outcome: Outcome,
}

/// `mtp-receipt` (BIND VII-D).
///
/// Outcome-dependent blocks (SPEC-II-D-02/04/06; PROFILE G-22): `partially_fulfilled`
/// requires `partial_fulfillment`, `disputed` requires `dispute_initiation`, `failed`
/// requires `failure_classification`. A block present for another outcome is accepted and
/// listed by [`Receipt::warnings`]. `attribution` (kept raw; typed by the attribution
/// module) is REQUIRED when the transaction involves three or more contributing Agents
/// (BIND-VII-D-04), read here as "three or more `participants`".
#[derive(Clone, Debug, PartialEq)]
pub struct Receipt {
    pub receipt_id: MtpUuid,
    pub mandate_id: MtpUuid,
    pub participants: Vec<Participant>,
    pub outcome: Outcome,
    pub verification: Verification,
    pub partial_fulfillment: Option<PartialFulfillment>,
    pub dispute_initiation: Option<DisputeInitiation>,
    /// An `LSCC` error code (registry or not), as the wire integer.
    pub failure_classification: Option<u16>,
    pub attribution: Option<Value>,
    pub timestamp: Timestamp,
    /// The Receipt this one records a later outcome for (PROFILE G-21).
    pub predecessor: Option<MtpUuid>,
    /// Mandatory on the wire (SPEC-II-D-01); `None` only while building.
    pub signature: Option<Signature>,
    pub unknown: Map,
}

impl Receipt {
    /// Blocks present for an outcome that does not require them (PROFILE G-22).
    pub fn warnings(&self) -> Vec<ExtraneousBlock> {
        let mut w = Vec::new();
        if self.partial_fulfillment.is_some() && self.outcome != Outcome::PartiallyFulfilled {
            w.push(ExtraneousBlock {
                field: "partial_fulfillment",
                outcome: self.outcome,
            });
        }
        if self.dispute_initiation.is_some() && self.outcome != Outcome::Disputed {
            w.push(ExtraneousBlock {
                field: "dispute_initiation",
                outcome: self.outcome,
            });
        }
        if self.failure_classification.is_some() && self.outcome != Outcome::Failed {
            w.push(ExtraneousBlock {
                field: "failure_classification",
                outcome: self.outcome,
            });
        }
        w
    }

    /// The failure classification as a registry code, when it is one.
    pub fn failure_code(&self) -> Option<crate::errors::ErrorCode> {
        self.failure_classification
            .and_then(crate::errors::ErrorCode::from_u16)
    }
}

const RECEIPT_HINTS: &[Hint] = &[
    Hint {
        path: "receipt_id",
        kind: Kind::Uuid,
    },
    Hint {
        path: "mandate_id",
        kind: Kind::Uuid,
    },
    Hint {
        path: "predecessor",
        kind: Kind::Uuid,
    },
    Hint {
        path: "partial_fulfillment.fulfillment_ratio",
        kind: Kind::Float32,
    },
    Hint {
        path: "timestamp",
        kind: Kind::Tdate,
    },
    Hint {
        path: "signature.value",
        kind: Kind::Bytes,
    },
];

impl CborObject for Receipt {
    const NAME: &'static str = "mtp-receipt";

    fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("receipt_id", uuid_value(&self.receipt_id))
            .put("mandate_id", uuid_value(&self.mandate_id))
            .put("participants", participants_value(&self.participants))
            .put("outcome", Value::text(self.outcome.as_str()))
            .put("verification", self.verification.to_value())
            .put_opt(
                "partial_fulfillment",
                self.partial_fulfillment
                    .as_ref()
                    .map(PartialFulfillment::to_value),
            )
            .put_opt(
                "dispute_initiation",
                self.dispute_initiation
                    .as_ref()
                    .map(DisputeInitiation::to_value),
            )
            .put_opt(
                "failure_classification",
                self.failure_classification
                    .map(|c| Value::from(u64::from(c))),
            )
            .put_opt("attribution", self.attribution.clone())
            .put("timestamp", tdate_value(self.timestamp))
            .put_opt("predecessor", self.predecessor.as_ref().map(uuid_value))
            .put_opt(
                "signature",
                self.signature.as_ref().map(Signature::to_value),
            )
            .extend_unknown(&self.unknown)
            .build()
    }

    fn from_value(v: &Value) -> Result<Self, ObjectError> {
        check_encodable(v)?;
        let mut r = MapReader::new(v, "")?;
        let mut e = Errors::new();
        let receipt_id = r.field("receipt_id", MANDATORY, &mut e, |v, p| {
            read_uuid(v, p, ObjectType::Receipt, "BIND-VII-D-01")
        });
        let mandate_id = r.field("mandate_id", MANDATORY, &mut e, |v, p| {
            read_uuid(v, p, ObjectType::Mandate, "BIND-VII-D-02")
        });
        let participants = r.field_all("participants", MANDATORY, &mut e, read_participants);
        let outcome = r.field("outcome", MANDATORY, &mut e, |v, p| {
            let s = read_text(v, p, MANDATORY)?;
            Outcome::parse(s).ok_or_else(|| {
                ValidationError::invalid(
                    p,
                    MANDATORY,
                    format!("{s:?} is not fulfilled, partially_fulfilled, disputed or failed"),
                )
            })
        });
        let verification = r.field_all("verification", MANDATORY, &mut e, Verification::from_value);
        let partial_fulfillment = r.field_opt_all(
            "partial_fulfillment",
            &mut e,
            PartialFulfillment::from_value,
        );
        let dispute_initiation =
            r.field_opt_all("dispute_initiation", &mut e, DisputeInitiation::from_value);
        let failure_classification = r.field_opt("failure_classification", &mut e, |v, p| {
            read_error_code(v, p, "SPEC-II-D-06")
        });
        let attribution = r.field_opt("attribution", &mut e, |v, p| {
            read_open_map(v, p, "BIND-VII-D-05").map(|_| v.clone())
        });
        let timestamp = r.field("timestamp", MANDATORY, &mut e, |v, p| {
            read_tdate(v, p, MANDATORY)
        });
        let predecessor = r.field_opt("predecessor", &mut e, |v, p| {
            read_uuid(v, p, ObjectType::Receipt, "SPEC-II-D-09")
        });
        let signature = read_signature_field(&mut r, MANDATORY, &mut e);
        let has = |k: &str| r.has(k);
        let (has_pf, has_di, has_fc, has_attr) = (
            has("partial_fulfillment"),
            has("dispute_initiation"),
            has("failure_classification"),
            has("attribution"),
        );
        let unknown = r.unknown();
        match outcome {
            Some(Outcome::PartiallyFulfilled) if !has_pf => e.push(ValidationError::missing(
                "partial_fulfillment",
                "SPEC-II-D-02",
            )),
            Some(Outcome::Disputed) if !has_di => e.push(ValidationError::missing(
                "dispute_initiation",
                "SPEC-II-D-04",
            )),
            Some(Outcome::Failed) if !has_fc => e.push(ValidationError::missing(
                "failure_classification",
                "SPEC-II-D-06",
            )),
            _ => {}
        }
        if let Some(ps) = &participants
            && ps.len() >= ATTRIBUTION_MIN_CONTRIBUTORS
            && !has_attr
        {
            e.push(ValidationError::missing("attribution", "BIND-VII-D-04"));
        }
        let (
            Some(receipt_id),
            Some(mandate_id),
            Some(participants),
            Some(outcome),
            Some(verification),
            Some(timestamp),
            Some(signature),
        ) = (
            receipt_id,
            mandate_id,
            participants,
            outcome,
            verification,
            timestamp,
            signature,
        )
        else {
            return Err(e.into_object_error());
        };
        if !e.is_empty() {
            return Err(e.into_object_error());
        }
        Ok(Receipt {
            receipt_id,
            mandate_id,
            participants,
            outcome,
            verification,
            partial_fulfillment,
            dispute_initiation,
            failure_classification,
            attribution,
            timestamp,
            predecessor,
            signature: Some(signature),
            unknown,
        })
    }

    fn json_hints() -> &'static [Hint] {
        RECEIPT_HINTS
    }
}

crate::impl_single_signed!(Receipt);
