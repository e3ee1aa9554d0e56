//! Terms (SPEC II-C, BIND VII-C): the agreed parameters, signed by every participant.

use super::common::*;
use super::json::{Hint, Kind};
use super::offer::{SettlementTiming, quality_errors};
use crate::cbor::Value;
use crate::taxonomy::{self, Category};
use crate::time::Timestamp;
use crate::uuid::{MtpUuid, ObjectType};

const MANDATORY: &str = "SPEC-II-C-01";
const SIGS: &str = "BIND-VII-C-05";

/// `discount-schedule` entry `{ min_quantity: uint, discount: float }`, discount in 0..=1
/// (PROFILE G-24).
#[derive(Clone, Debug, PartialEq)]
pub struct DiscountTier {
    pub min_quantity: u64,
    pub discount: f64,
    pub unknown: Map,
}

impl DiscountTier {
    pub fn from_value(v: &Value, path: &str) -> Result<Self, Vec<ValidationError>> {
        let mut r = MapReader::new(v, path).map_err(|e| vec![e])?;
        let mut e = Errors::new();
        let min_quantity = r.field("min_quantity", SCHEMA_REQ, &mut e, |v, p| {
            read_uint(v, p, SCHEMA_REQ)
        });
        let discount = r.field("discount", SCHEMA_REQ, &mut e, |v, p| match v {
            Value::Float(f) if (0.0..=1.0).contains(f) && !(*f == 0.0 && f.is_sign_negative()) => {
                Ok(*f)
            }
            Value::Float(f) => Err(ValidationError::out_of_range(
                p,
                SCHEMA_REQ,
                format!("discount {f} outside 0..=1"),
            )),
            _ => Err(ValidationError::wrong_type(p, SCHEMA_REQ, "float", v)),
        });
        let unknown = r.unknown();
        match (min_quantity, discount) {
            (Some(min_quantity), Some(discount)) if e.is_empty() => Ok(DiscountTier {
                min_quantity,
                discount,
                unknown,
            }),
            _ => Err(e.into_vec()),
        }
    }

    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("min_quantity", Value::from(self.min_quantity))
            .put(
                "discount",
                Value::Float(if self.discount == 0.0 {
                    0.0
                } else {
                    self.discount
                }),
            )
            .extend_unknown(&self.unknown)
            .build()
    }
}

/// Terms `price: { amount: number, unit: price-unit, ? volume_discount }` (BIND-VII-C-03).
#[derive(Clone, Debug, PartialEq)]
pub struct TermsPrice {
    pub amount: Number,
    pub unit: PriceUnit,
    /// `[+ discount tier]` (PROFILE G-24).
    pub volume_discount: Option<Vec<DiscountTier>>,
    pub unknown: Map,
}

impl TermsPrice {
    pub fn from_value(v: &Value, path: &str) -> Result<Self, Vec<ValidationError>> {
        let mut r = MapReader::new(v, path).map_err(|e| vec![e])?;
        let mut e = Errors::new();
        let amount = r.field("amount", MANDATORY, &mut e, |v, p| {
            read_number(v, p, MANDATORY)
        });
        let unit = r.field("unit", PRICE_UNIT_REQ, &mut e, read_price_unit);
        let volume_discount = r.field_opt_all("volume_discount", &mut e, |v, p| {
            let tiers = super::offer::read_items(v, p, SCHEMA_REQ, DiscountTier::from_value)?;
            if tiers.is_empty() {
                return Err(vec![ValidationError::out_of_range(
                    p,
                    SCHEMA_REQ,
                    "empty discount schedule",
                )]);
            }
            Ok(tiers)
        });
        let unknown = r.unknown();
        match (amount, unit) {
            (Some(amount), Some(unit)) if e.is_empty() => Ok(TermsPrice {
                amount,
                unit,
                volume_discount,
                unknown,
            }),
            _ => Err(e.into_vec()),
        }
    }

    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("amount", self.amount.to_value())
            .put("unit", Value::text(self.unit.as_str()))
            .put_opt(
                "volume_discount",
                self.volume_discount
                    .as_ref()
                    .map(|ts| Value::Array(ts.iter().map(DiscountTier::to_value).collect())),
            )
            .extend_unknown(&self.unknown)
            .build()
    }
}

/// Terms `delivery: { method, ? max_latency_ms, ? earliest, ? latest, ? format }`.
#[derive(Clone, Debug, PartialEq)]
pub struct TermsDelivery {
    /// `delivery-method` (open enumeration, PROFILE G-24).
    pub method: String,
    pub max_latency_ms: Option<u64>,
    pub earliest: Option<Timestamp>,
    pub latest: Option<Timestamp>,
    pub format: Option<String>,
    pub unknown: Map,
}

impl TermsDelivery {
    pub fn new(method: impl Into<String>) -> Self {
        TermsDelivery {
            method: method.into(),
            max_latency_ms: None,
            earliest: None,
            latest: None,
            format: None,
            unknown: Map::new(),
        }
    }

    pub fn from_value(v: &Value, path: &str) -> Result<Self, Vec<ValidationError>> {
        let mut r = MapReader::new(v, path).map_err(|e| vec![e])?;
        let mut e = Errors::new();
        let method = r.field("method", MANDATORY, &mut e, |v, p| {
            read_text(v, p, MANDATORY).map(str::to_owned)
        });
        let max_latency_ms =
            r.field_opt("max_latency_ms", &mut e, |v, p| read_uint(v, p, SCHEMA_REQ));
        let earliest = r.field_opt("earliest", &mut e, |v, p| read_tdate(v, p, SCHEMA_REQ));
        let latest = r.field_opt("latest", &mut e, |v, p| read_tdate(v, p, SCHEMA_REQ));
        let format = r.field_opt("format", &mut e, |v, p| {
            read_text(v, p, SCHEMA_REQ).map(str::to_owned)
        });
        let unknown = r.unknown();
        match method {
            Some(method) if e.is_empty() => Ok(TermsDelivery {
                method,
                max_latency_ms,
                earliest,
                latest,
                format,
                unknown,
            }),
            _ => Err(e.into_vec()),
        }
    }

    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("method", Value::text(self.method.as_str()))
            .put_opt("max_latency_ms", self.max_latency_ms.map(Value::from))
            .put_opt("earliest", self.earliest.map(tdate_value))
            .put_opt("latest", self.latest.map(tdate_value))
            .put_opt("format", self.format.as_deref().map(Value::text))
            .extend_unknown(&self.unknown)
            .build()
    }
}

/// `dispute_resolution: { method: dispute-method, ? jurisdiction, ? liability_cap }`.
#[derive(Clone, Debug, PartialEq)]
pub struct DisputeResolution {
    /// `dispute-method` (open enumeration, PROFILE G-24).
    pub method: String,
    pub jurisdiction: Option<String>,
    pub liability_cap: Option<PriceSpec>,
    pub unknown: Map,
}

impl DisputeResolution {
    pub fn new(method: impl Into<String>) -> Self {
        DisputeResolution {
            method: method.into(),
            jurisdiction: None,
            liability_cap: None,
            unknown: Map::new(),
        }
    }

    pub fn from_value(v: &Value, path: &str) -> Result<Self, Vec<ValidationError>> {
        let mut r = MapReader::new(v, path).map_err(|e| vec![e])?;
        let mut e = Errors::new();
        let method = r.field("method", MANDATORY, &mut e, |v, p| {
            read_text(v, p, MANDATORY).map(str::to_owned)
        });
        let jurisdiction = r.field_opt("jurisdiction", &mut e, |v, p| {
            read_jurisdiction(v, p, SCHEMA_REQ)
        });
        let liability_cap = r.field_opt_all("liability_cap", &mut e, |v, p| {
            PriceSpec::from_value(v, p, SCHEMA_REQ)
        });
        let unknown = r.unknown();
        match method {
            Some(method) if e.is_empty() => Ok(DisputeResolution {
                method,
                jurisdiction,
                liability_cap,
                unknown,
            }),
            _ => Err(e.into_vec()),
        }
    }

    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("method", Value::text(self.method.as_str()))
            .put_opt(
                "jurisdiction",
                self.jurisdiction.as_deref().map(Value::text),
            )
            .put_opt(
                "liability_cap",
                self.liability_cap.as_ref().map(PriceSpec::to_value),
            )
            .extend_unknown(&self.unknown)
            .build()
    }
}

/// Terms `settlement: { rail, timing, ? escrow }`.
#[derive(Clone, Debug, PartialEq)]
pub struct TermsSettlement {
    pub rail: String,
    pub timing: SettlementTiming,
    pub escrow: Option<bool>,
    pub unknown: Map,
}

impl TermsSettlement {
    pub fn new(rail: impl Into<String>, timing: SettlementTiming) -> Self {
        TermsSettlement {
            rail: rail.into(),
            timing,
            escrow: None,
            unknown: Map::new(),
        }
    }

    pub fn from_value(v: &Value, path: &str) -> Result<Self, Vec<ValidationError>> {
        let mut r = MapReader::new(v, path).map_err(|e| vec![e])?;
        let mut e = Errors::new();
        let rail = r.field("rail", MANDATORY, &mut e, |v, p| {
            read_text(v, p, MANDATORY).map(str::to_owned)
        });
        let timing = r.field("timing", MANDATORY, &mut e, SettlementTiming::read);
        let escrow = r.field_opt("escrow", &mut e, |v, p| read_bool(v, p, SCHEMA_REQ));
        let unknown = r.unknown();
        match (rail, timing) {
            (Some(rail), Some(timing)) if e.is_empty() => Ok(TermsSettlement {
                rail,
                timing,
                escrow,
                unknown,
            }),
            _ => Err(e.into_vec()),
        }
    }

    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("rail", Value::text(self.rail.as_str()))
            .put("timing", Value::text(self.timing.as_str()))
            .put_opt("escrow", self.escrow.map(Value::Bool))
            .extend_unknown(&self.unknown)
            .build()
    }
}

/// `mtp-terms` (BIND VII-C).
///
/// `negotiation_log` rounds and `attribution_method` are kept as raw maps (their types
/// belong to the negotiation and attribution modules). `signatures` is structurally
/// `[2* agent-signature]` here; "one per participant, in participants order"
/// (BIND-VII-C-05; PROFILE G-02) is [`Terms::check_signature_set`] and
/// [`MultiSigned::verify_signatures`]. Terms carry no `value_type`: the category's
/// mandatory quality dimensions are checked by [`Terms::check_quality`] with the category
/// of the referenced Offer.
#[derive(Clone, Debug, PartialEq)]
pub struct Terms {
    pub terms_id: MtpUuid,
    pub participants: Vec<Participant>,
    pub offer_ref: MtpUuid,
    pub request_ref: MtpUuid,
    pub price: TermsPrice,
    pub delivery: TermsDelivery,
    pub quality: Map,
    pub dispute_resolution: DisputeResolution,
    pub settlement: TermsSettlement,
    pub attribution_method: Option<Value>,
    pub expiration: Timestamp,
    pub negotiation_log: Vec<Value>,
    pub signatures: Vec<AgentSignature>,
    pub unknown: Map,
}

impl Terms {
    /// Mandatory quality dimensions of `category` present in `quality` (SPEC-V-02; G-43).
    pub fn check_quality(&self, category: Category) -> Result<(), Vec<ValidationError>> {
        taxonomy::check_quality(category, &Value::Map(self.quality.clone()))
            .map_err(|q| quality_errors("quality", q))
    }

    /// Exactly one signature per participant, by that participant, in participants order
    /// (BIND-VII-C-05; PROFILE G-02). No cryptography: see [`MultiSigned::verify_signatures`].
    pub fn check_signature_set(&self) -> Result<(), Vec<ValidationError>> {
        let mut e = Errors::new();
        if self.signatures.len() != self.participants.len() {
            e.push(ValidationError::invalid(
                "signatures",
                SIGS,
                format!(
                    "{} signatures for {} participants",
                    self.signatures.len(),
                    self.participants.len()
                ),
            ));
        }
        for (i, (s, p)) in self.signatures.iter().zip(&self.participants).enumerate() {
            if s.agent != p.agent_id.as_str() {
                e.push(ValidationError::invalid(
                    format!("signatures[{i}].agent"),
                    SIGS,
                    format!(
                        "signed by {}, expected participant {}",
                        s.agent,
                        p.agent_id.as_str()
                    ),
                ));
            }
        }
        e.finish()
    }

    /// `true` once `now` is past `expiration` (+ clock skew; SPEC II-C).
    pub fn is_expired(&self, now: Timestamp) -> bool {
        now.nanos_since(self.expiration) > crate::profile::CLOCK_SKEW_S as i128 * 1_000_000_000
    }
}

const TERMS_HINTS: &[Hint] = &[
    // Fraction quality dimensions are floats (BIND VIII; PROFILE G-27, G-43).
    Hint {
        path: "quality.accuracy_threshold",
        kind: Kind::Float,
    },
    // Fraction quality dimensions are floats (BIND VIII; PROFILE G-27, G-43).
    Hint {
        path: "quality.availability_guarantee",
        kind: Kind::Float,
    },
    // Fraction quality dimensions are floats (BIND VIII; PROFILE G-27, G-43).
    Hint {
        path: "quality.reliability_guarantee",
        kind: Kind::Float,
    },
    Hint {
        path: "terms_id",
        kind: Kind::Uuid,
    },
    Hint {
        path: "offer_ref",
        kind: Kind::Uuid,
    },
    Hint {
        path: "request_ref",
        kind: Kind::Uuid,
    },
    Hint {
        path: "price.amount",
        kind: Kind::Number,
    },
    Hint {
        path: "price.volume_discount[].discount",
        kind: Kind::Float,
    },
    Hint {
        path: "delivery.earliest",
        kind: Kind::Tdate,
    },
    Hint {
        path: "delivery.latest",
        kind: Kind::Tdate,
    },
    Hint {
        path: "dispute_resolution.liability_cap.amount",
        kind: Kind::Number,
    },
    Hint {
        path: "expiration",
        kind: Kind::Tdate,
    },
    Hint {
        path: "signatures[].value",
        kind: Kind::Bytes,
    },
];

impl CborObject for Terms {
    const NAME: &'static str = "mtp-terms";

    fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("terms_id", uuid_value(&self.terms_id))
            .put("participants", participants_value(&self.participants))
            .put("offer_ref", uuid_value(&self.offer_ref))
            .put("request_ref", uuid_value(&self.request_ref))
            .put("price", self.price.to_value())
            .put("delivery", self.delivery.to_value())
            .put("quality", Value::Map(self.quality.clone()))
            .put("dispute_resolution", self.dispute_resolution.to_value())
            .put("settlement", self.settlement.to_value())
            .put_opt("attribution_method", self.attribution_method.clone())
            .put("expiration", tdate_value(self.expiration))
            .put(
                "negotiation_log",
                Value::Array(self.negotiation_log.clone()),
            )
            .put(
                "signatures",
                Value::Array(
                    self.signatures
                        .iter()
                        .map(AgentSignature::to_value)
                        .collect(),
                ),
            )
            .extend_unknown(&self.unknown)
            .build()
    }

    fn from_value(v: &Value) -> Result<Self, ObjectError> {
        check_encodable(v)?;
        let mut r = MapReader::new(v, "")?;
        let mut e = Errors::new();
        let terms_id = r.field("terms_id", MANDATORY, &mut e, |v, p| {
            read_uuid(v, p, ObjectType::Terms, "BIND-VII-C-01")
        });
        let participants = r.field_all("participants", MANDATORY, &mut e, read_participants);
        let offer_ref = r.field("offer_ref", MANDATORY, &mut e, |v, p| {
            read_uuid(v, p, ObjectType::Offer, MANDATORY)
        });
        let request_ref = r.field("request_ref", MANDATORY, &mut e, |v, p| {
            read_uuid(v, p, ObjectType::Request, MANDATORY)
        });
        let price = r.field_all("price", MANDATORY, &mut e, TermsPrice::from_value);
        let delivery = r.field_all("delivery", MANDATORY, &mut e, TermsDelivery::from_value);
        let quality = r.field("quality", MANDATORY, &mut e, |v, p| {
            read_open_map(v, p, MANDATORY)
        });
        let dispute_resolution = r.field_all(
            "dispute_resolution",
            MANDATORY,
            &mut e,
            DisputeResolution::from_value,
        );
        let settlement = r.field_all("settlement", MANDATORY, &mut e, TermsSettlement::from_value);
        let attribution_method = r.field_opt("attribution_method", &mut e, |v, p| {
            read_open_map(v, p, SCHEMA_REQ).map(|_| v.clone())
        });
        let expiration = r.field("expiration", MANDATORY, &mut e, |v, p| {
            read_tdate(v, p, MANDATORY)
        });
        let negotiation_log = r.field_all("negotiation_log", "BIND-VII-C-04", &mut e, |v, p| {
            let items = read_array(v, p, "BIND-VII-C-04").map_err(|e| vec![e])?;
            let mut e = Errors::new();
            for (i, item) in items.iter().enumerate() {
                e.take(read_open_map(item, &index_path(p, i), "BIND-VII-C-04"));
            }
            e.finish().map(|_| items.to_vec())
        });
        let signatures = r.field_all("signatures", SIGS, &mut e, |v, p| {
            read_agent_signatures(v, p, 2, SIGS)
        });
        let unknown = r.unknown();
        let (
            Some(terms_id),
            Some(participants),
            Some(offer_ref),
            Some(request_ref),
            Some(price),
            Some(delivery),
            Some(quality),
            Some(dispute_resolution),
            Some(settlement),
            Some(expiration),
            Some(negotiation_log),
            Some(signatures),
        ) = (
            terms_id,
            participants,
            offer_ref,
            request_ref,
            price,
            delivery,
            quality,
            dispute_resolution,
            settlement,
            expiration,
            negotiation_log,
            signatures,
        )
        else {
            return Err(e.into_object_error());
        };
        if !e.is_empty() {
            return Err(e.into_object_error());
        }
        Ok(Terms {
            terms_id,
            participants,
            offer_ref,
            request_ref,
            price,
            delivery,
            quality,
            dispute_resolution,
            settlement,
            attribution_method,
            expiration,
            negotiation_log,
            signatures,
            unknown,
        })
    }

    fn json_hints() -> &'static [Hint] {
        // The negotiation log holds signed rounds (proposals with a partial mtp-terms, and
        // acceptances; PROFILE G-10, G-27).
        static H: std::sync::OnceLock<Vec<Hint>> = std::sync::OnceLock::new();
        H.get_or_init(|| {
            let mut own = crate::negotiation::PROPOSAL_OWN_HINTS.to_vec();
            own.extend_from_slice(crate::negotiation::ACCEPTANCE_HINTS);
            let entry = crate::primitives::json::compose_hints(&own, &[("terms", TERMS_HINTS)]);
            crate::primitives::json::compose_hints(TERMS_HINTS, &[("negotiation_log[]", &entry)])
        })
    }
}

impl Signed for Terms {
    const SIGNATURE_FIELD: &'static str = "signatures";
}

impl MultiSigned for Terms {
    fn signer_dids(&self) -> Vec<&str> {
        self.participants
            .iter()
            .map(|p| p.agent_id.as_str())
            .collect()
    }
    fn signatures(&self) -> &[AgentSignature] {
        &self.signatures
    }
    fn signatures_mut(&mut self) -> &mut Vec<AgentSignature> {
        &mut self.signatures
    }
}
