//! Offer (SPEC II-A, BIND VII-A): what an Agent can provide.

use super::common::*;
use super::json::{Hint, Kind};
use crate::cbor::Value;
use crate::identity::Did;
use crate::profile::{CLOCK_SKEW_S, HUMAN_DESCRIPTION_MAX_CHARS};
use crate::taxonomy::{self, Classifier};
use crate::time::Timestamp;
use crate::uuid::{MtpUuid, ObjectType};

const MANDATORY: &str = "SPEC-II-A-01";

/// `description: { human: tstr, machine: { * tstr => any } }` (Offer and Request).
#[derive(Clone, Debug, PartialEq)]
pub struct Description {
    /// At most 4,096 Unicode scalar values (BIND-VII-A-04; PROFILE G-53).
    pub human: String,
    pub machine: Map,
    pub unknown: Map,
}

impl Description {
    pub fn new(human: impl Into<String>) -> Self {
        Description {
            human: human.into(),
            machine: Map::new(),
            unknown: Map::new(),
        }
    }

    pub fn from_value(
        v: &Value,
        path: &str,
        req: &'static str,
    ) -> Result<Self, Vec<ValidationError>> {
        let mut r = MapReader::new(v, path).map_err(|e| vec![e])?;
        let mut e = Errors::new();
        let human = r.field("human", req, &mut e, |v, p| {
            let s = read_text(v, p, "BIND-VII-A-04")?;
            let n = s.chars().count();
            if n > HUMAN_DESCRIPTION_MAX_CHARS {
                return Err(ValidationError::out_of_range(
                    p,
                    "BIND-VII-A-04",
                    format!("{n} characters, at most {HUMAN_DESCRIPTION_MAX_CHARS} (PROFILE G-53)"),
                ));
            }
            Ok(s.to_owned())
        });
        let machine = r.field("machine", req, &mut e, |v, p| {
            read_open_map(v, p, SCHEMA_REQ)
        });
        let unknown = r.unknown();
        match (human, machine) {
            (Some(human), Some(machine)) if e.is_empty() => Ok(Description {
                human,
                machine,
                unknown,
            }),
            _ => Err(e.into_vec()),
        }
    }

    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("human", Value::text(self.human.as_str()))
            .put("machine", Value::Map(self.machine.clone()))
            .extend_unknown(&self.unknown)
            .build()
    }
}

/// `tdate / duration` in an Offer's delivery-spec (PROFILE G-24).
#[derive(Clone, Debug, PartialEq)]
pub enum TimeOrDuration {
    Time(Timestamp),
    /// ISO 8601 duration text, e.g. `P2D` (PROFILE G-53).
    Duration(String),
}

impl TimeOrDuration {
    fn from_value(v: &Value, path: &str) -> Result<Self, ValidationError> {
        match v {
            Value::Text(s) if taxonomy::is_iso8601_duration(s) => {
                Ok(TimeOrDuration::Duration(s.clone()))
            }
            Value::Text(s) => Err(ValidationError::invalid(
                path,
                SCHEMA_REQ,
                format!("{s:?} is neither a tag-0 tdate nor an ISO 8601 duration (PROFILE G-24)"),
            )),
            _ => read_tdate(v, path, "BIND-VII-A-05").map(TimeOrDuration::Time),
        }
    }

    fn to_value(&self) -> Value {
        match self {
            TimeOrDuration::Time(t) => tdate_value(*t),
            TimeOrDuration::Duration(d) => Value::text(d.as_str()),
        }
    }
}

/// `delivery-spec` (PROFILE G-24): every field optional.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeliverySpec {
    pub method: Option<String>,
    pub earliest: Option<TimeOrDuration>,
    pub latest: Option<TimeOrDuration>,
    pub max_latency_ms: Option<u64>,
    pub format: Option<String>,
    pub unknown: Map,
}

impl DeliverySpec {
    pub fn from_value(v: &Value, path: &str) -> Result<Self, Vec<ValidationError>> {
        let mut r = MapReader::new(v, path).map_err(|e| vec![e])?;
        let mut e = Errors::new();
        let method = r.field_opt("method", &mut e, |v, p| {
            read_text(v, p, SCHEMA_REQ).map(str::to_owned)
        });
        let earliest = r.field_opt("earliest", &mut e, TimeOrDuration::from_value);
        let latest = r.field_opt("latest", &mut e, TimeOrDuration::from_value);
        let max_latency_ms =
            r.field_opt("max_latency_ms", &mut e, |v, p| read_uint(v, p, SCHEMA_REQ));
        let format = r.field_opt("format", &mut e, |v, p| {
            read_text(v, p, SCHEMA_REQ).map(str::to_owned)
        });
        let unknown = r.unknown();
        e.finish()?;
        Ok(DeliverySpec {
            method,
            earliest,
            latest,
            max_latency_ms,
            format,
            unknown,
        })
    }

    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .put_opt("method", self.method.as_deref().map(Value::text))
            .put_opt(
                "earliest",
                self.earliest.as_ref().map(TimeOrDuration::to_value),
            )
            .put_opt("latest", self.latest.as_ref().map(TimeOrDuration::to_value))
            .put_opt("max_latency_ms", self.max_latency_ms.map(Value::from))
            .put_opt("format", self.format.as_deref().map(Value::text))
            .extend_unknown(&self.unknown)
            .build()
    }
}

/// `settlement-timing` (PROFILE G-24).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SettlementTiming {
    Prepaid,
    OnDelivery,
    OnVerification,
    EscrowRelease,
}

impl SettlementTiming {
    pub fn as_str(self) -> &'static str {
        match self {
            SettlementTiming::Prepaid => "prepaid",
            SettlementTiming::OnDelivery => "on_delivery",
            SettlementTiming::OnVerification => "on_verification",
            SettlementTiming::EscrowRelease => "escrow_release",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "prepaid" => Some(SettlementTiming::Prepaid),
            "on_delivery" => Some(SettlementTiming::OnDelivery),
            "on_verification" => Some(SettlementTiming::OnVerification),
            "escrow_release" => Some(SettlementTiming::EscrowRelease),
            _ => None,
        }
    }

    pub(crate) fn read(v: &Value, path: &str) -> Result<Self, ValidationError> {
        let s = read_text(v, path, SCHEMA_REQ)?;
        SettlementTiming::parse(s).ok_or_else(|| {
            ValidationError::invalid(
                path,
                SCHEMA_REQ,
                format!("{s:?} is not prepaid, on_delivery, on_verification or escrow_release (PROFILE G-24)"),
            )
        })
    }
}

/// `settlement-spec = { rail, ? timing, ? escrow }` (PROFILE G-24).
#[derive(Clone, Debug, PartialEq)]
pub struct SettlementSpec {
    pub rail: String,
    pub timing: Option<SettlementTiming>,
    pub escrow: Option<bool>,
    pub unknown: Map,
}

impl SettlementSpec {
    pub fn from_value(v: &Value, path: &str) -> Result<Self, Vec<ValidationError>> {
        let mut r = MapReader::new(v, path).map_err(|e| vec![e])?;
        let mut e = Errors::new();
        let rail = r.field("rail", SCHEMA_REQ, &mut e, |v, p| {
            read_text(v, p, SCHEMA_REQ).map(str::to_owned)
        });
        let timing = r.field_opt("timing", &mut e, SettlementTiming::read);
        let escrow = r.field_opt("escrow", &mut e, |v, p| read_bool(v, p, SCHEMA_REQ));
        let unknown = r.unknown();
        match rail {
            Some(rail) if e.is_empty() => Ok(SettlementSpec {
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
            .put_opt("timing", self.timing.map(|t| Value::text(t.as_str())))
            .put_opt("escrow", self.escrow.map(Value::Bool))
            .extend_unknown(&self.unknown)
            .build()
    }
}

/// `terms_template` (BIND VII-A).
#[derive(Clone, Debug, PartialEq)]
pub struct TermsTemplate {
    pub price: PriceSpec,
    pub delivery: DeliverySpec,
    /// `quality-spec = { * tstr => any }`; must carry the category's mandatory dimensions (G-43).
    pub quality: Map,
    pub settlement: Option<SettlementSpec>,
    pub unknown: Map,
}

impl TermsTemplate {
    pub fn from_value(v: &Value, path: &str) -> Result<Self, Vec<ValidationError>> {
        let mut r = MapReader::new(v, path).map_err(|e| vec![e])?;
        let mut e = Errors::new();
        let price = r.field_all("price", MANDATORY, &mut e, |v, p| {
            PriceSpec::from_value(v, p, MANDATORY)
        });
        let delivery = r.field_all("delivery", MANDATORY, &mut e, DeliverySpec::from_value);
        let quality = r.field("quality", MANDATORY, &mut e, |v, p| {
            read_open_map(v, p, SCHEMA_REQ)
        });
        let settlement = r.field_opt_all("settlement", &mut e, SettlementSpec::from_value);
        let unknown = r.unknown();
        match (price, delivery, quality) {
            (Some(price), Some(delivery), Some(quality)) if e.is_empty() => Ok(TermsTemplate {
                price,
                delivery,
                quality,
                settlement,
                unknown,
            }),
            _ => Err(e.into_vec()),
        }
    }

    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("price", self.price.to_value())
            .put("delivery", self.delivery.to_value())
            .put("quality", Value::Map(self.quality.clone()))
            .put_opt(
                "settlement",
                self.settlement.as_ref().map(SettlementSpec::to_value),
            )
            .extend_unknown(&self.unknown)
            .build()
    }
}

/// `validity_window: { not_before: tdate, not_after: tdate }` with `not_before < not_after`.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidityWindow {
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    pub unknown: Map,
}

impl ValidityWindow {
    pub fn new(not_before: Timestamp, not_after: Timestamp) -> Self {
        ValidityWindow {
            not_before,
            not_after,
            unknown: Map::new(),
        }
    }

    pub fn from_value(v: &Value, path: &str) -> Result<Self, Vec<ValidationError>> {
        let req = "BIND-VII-A-05";
        let mut r = MapReader::new(v, path).map_err(|e| vec![e])?;
        let mut e = Errors::new();
        let nb = r.field("not_before", MANDATORY, &mut e, |v, p| {
            read_tdate(v, p, req)
        });
        let na = r.field("not_after", MANDATORY, &mut e, |v, p| read_tdate(v, p, req));
        let unknown = r.unknown();
        if let (Some(nb), Some(na)) = (nb, na)
            && nb >= na
        {
            e.push(ValidationError::invalid(
                join_path(path, "not_after"),
                MANDATORY,
                "not_after must be later than not_before",
            ));
        }
        match (nb, na) {
            (Some(not_before), Some(not_after)) if e.is_empty() => Ok(ValidityWindow {
                not_before,
                not_after,
                unknown,
            }),
            _ => Err(e.into_vec()),
        }
    }

    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("not_before", tdate_value(self.not_before))
            .put("not_after", tdate_value(self.not_after))
            .extend_unknown(&self.unknown)
            .build()
    }

    /// `not_before − skew ≤ now ≤ not_after + skew` (PROFILE G-08 clock skew).
    pub fn contains(&self, now: Timestamp) -> bool {
        let skew = CLOCK_SKEW_S as i128 * 1_000_000_000;
        now.nanos_since(self.not_before) >= -skew && self.not_after.nanos_since(now) >= -skew
    }
}

/// `prerequisite-condition = { type: tstr, ? params: { * tstr => any } }` (PROFILE G-24).
#[derive(Clone, Debug, PartialEq)]
pub struct Prerequisite {
    pub kind: String,
    pub params: Option<Map>,
    pub unknown: Map,
}

impl Prerequisite {
    pub fn from_value(v: &Value, path: &str) -> Result<Self, Vec<ValidationError>> {
        let mut r = MapReader::new(v, path).map_err(|e| vec![e])?;
        let mut e = Errors::new();
        let kind = r.field("type", SCHEMA_REQ, &mut e, |v, p| {
            read_text(v, p, SCHEMA_REQ).map(str::to_owned)
        });
        let params = r.field_opt("params", &mut e, |v, p| read_open_map(v, p, SCHEMA_REQ));
        let unknown = r.unknown();
        match kind {
            Some(kind) if e.is_empty() => Ok(Prerequisite {
                kind,
                params,
                unknown,
            }),
            _ => Err(e.into_vec()),
        }
    }

    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("type", Value::text(self.kind.as_str()))
            .put_opt("params", self.params.clone().map(Value::Map))
            .extend_unknown(&self.unknown)
            .build()
    }
}

/// `[* T]` of map-shaped items.
pub(crate) fn read_items<T>(
    v: &Value,
    path: &str,
    req: &'static str,
    f: impl Fn(&Value, &str) -> Result<T, Vec<ValidationError>>,
) -> Result<Vec<T>, Vec<ValidationError>> {
    let items = read_array(v, path, req).map_err(|e| vec![e])?;
    let mut e = Errors::new();
    let out: Vec<T> = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| e.take_all(f(item, &index_path(path, i))))
        .collect();
    e.finish().map(|_| out)
}

/// Converts quality-check findings into validation errors under `path`.
pub(crate) fn quality_errors(
    path: &str,
    errs: Vec<taxonomy::QualityError>,
) -> Vec<ValidationError> {
    errs.into_iter()
        .map(|q| {
            let p = join_path(path, q.dimension());
            ValidationError::invalid(p, q.requirement(), q.to_string())
        })
        .collect()
}

/// `mtp-offer` (BIND VII-A). `non_negotiable: [* tstr]` (dotted paths into
/// `terms_template`) is accepted at the top level (PROFILE G-26).
///
/// `from_value` also requires `terms_template.quality` to carry the mandatory quality
/// dimensions of the `value_type`'s category (PROFILE G-43; SPEC-V-02): an Offer whose
/// template could never become valid Terms is refused up front.
#[derive(Clone, Debug, PartialEq)]
pub struct Offer {
    pub offer_id: MtpUuid,
    pub agent_id: Did,
    pub value_type: Classifier,
    pub description: Description,
    pub terms_template: TermsTemplate,
    pub validity_window: ValidityWindow,
    pub geographic_constraints: Option<Vec<String>>,
    pub capacity: Option<u64>,
    pub prerequisites: Option<Vec<Prerequisite>>,
    pub metadata: Option<Map>,
    pub non_negotiable: Option<Vec<String>>,
    /// Mandatory on the wire (SPEC-II-A-03); `None` only while building.
    pub signature: Option<Signature>,
    pub unknown: Map,
}

impl Offer {
    /// The Offer is within its validity window at `now` (± clock skew; SPEC-II-A-01).
    pub fn validate_at(&self, now: Timestamp) -> Result<(), Vec<ValidationError>> {
        if self.validity_window.contains(now) {
            Ok(())
        } else {
            Err(vec![ValidationError::out_of_range(
                "validity_window",
                MANDATORY,
                format!("{now} is outside the validity window"),
            )])
        }
    }
}

const OFFER_HINTS: &[Hint] = &[
    // Fraction quality dimensions are floats (BIND VIII; PROFILE G-27, G-43).
    Hint {
        path: "terms_template.quality.accuracy_threshold",
        kind: Kind::Float,
    },
    // Fraction quality dimensions are floats (BIND VIII; PROFILE G-27, G-43).
    Hint {
        path: "terms_template.quality.availability_guarantee",
        kind: Kind::Float,
    },
    // Fraction quality dimensions are floats (BIND VIII; PROFILE G-27, G-43).
    Hint {
        path: "terms_template.quality.reliability_guarantee",
        kind: Kind::Float,
    },
    Hint {
        path: "offer_id",
        kind: Kind::Uuid,
    },
    Hint {
        path: "terms_template.price.amount",
        kind: Kind::Number,
    },
    Hint {
        path: "terms_template.delivery.earliest",
        kind: Kind::TdateOrText,
    },
    Hint {
        path: "terms_template.delivery.latest",
        kind: Kind::TdateOrText,
    },
    Hint {
        path: "validity_window.not_before",
        kind: Kind::Tdate,
    },
    Hint {
        path: "validity_window.not_after",
        kind: Kind::Tdate,
    },
    Hint {
        path: "signature.value",
        kind: Kind::Bytes,
    },
];

impl CborObject for Offer {
    const NAME: &'static str = "mtp-offer";

    fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("offer_id", uuid_value(&self.offer_id))
            .put("agent_id", Value::text(self.agent_id.as_str()))
            .put("value_type", Value::text(self.value_type.as_str()))
            .put("description", self.description.to_value())
            .put("terms_template", self.terms_template.to_value())
            .put("validity_window", self.validity_window.to_value())
            .put_opt(
                "geographic_constraints",
                self.geographic_constraints.as_deref().map(text_array_value),
            )
            .put_opt("capacity", self.capacity.map(Value::from))
            .put_opt(
                "prerequisites",
                self.prerequisites
                    .as_ref()
                    .map(|ps| Value::Array(ps.iter().map(Prerequisite::to_value).collect())),
            )
            .put_opt("metadata", self.metadata.clone().map(Value::Map))
            .put_opt(
                "non_negotiable",
                self.non_negotiable.as_deref().map(text_array_value),
            )
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
        let offer_id = r.field("offer_id", MANDATORY, &mut e, |v, p| {
            read_uuid(v, p, ObjectType::Offer, "BIND-VII-A-01")
        });
        let agent_id = r.field("agent_id", MANDATORY, &mut e, |v, p| {
            read_did(v, p, "BIND-VII-A-02")
        });
        let value_type = r.field("value_type", MANDATORY, &mut e, |v, p| {
            read_classifier(v, p, "BIND-VII-A-03")
        });
        let description = r.field_all("description", MANDATORY, &mut e, |v, p| {
            Description::from_value(v, p, MANDATORY)
        });
        let terms_template = r.field_all(
            "terms_template",
            MANDATORY,
            &mut e,
            TermsTemplate::from_value,
        );
        let validity_window = r.field_all(
            "validity_window",
            MANDATORY,
            &mut e,
            ValidityWindow::from_value,
        );
        let geographic_constraints = r.field_opt_all("geographic_constraints", &mut e, |v, p| {
            read_jurisdictions(v, p, "SPEC-II-A-02")
        });
        let capacity = r.field_opt("capacity", &mut e, |v, p| read_uint(v, p, "SPEC-II-A-02"));
        let prerequisites = r.field_opt_all("prerequisites", &mut e, |v, p| {
            read_items(v, p, "SPEC-II-A-02", Prerequisite::from_value)
        });
        let metadata = r.field_opt("metadata", &mut e, |v, p| {
            read_open_map(v, p, "SPEC-II-A-02")
        });
        let non_negotiable = r.field_opt_all("non_negotiable", &mut e, |v, p| {
            read_text_array(v, p, "BIND-VII-A-I01")
        });
        let signature = read_signature_field(&mut r, "SPEC-II-A-03", &mut e);
        let unknown = r.unknown();
        if let (Some(vt), Some(tt)) = (&value_type, &terms_template)
            && let Err(q) = taxonomy::check_quality(vt.category(), &Value::Map(tt.quality.clone()))
        {
            e.extend(quality_errors("terms_template.quality", q));
        }
        let (
            Some(offer_id),
            Some(agent_id),
            Some(value_type),
            Some(description),
            Some(terms_template),
            Some(validity_window),
            Some(signature),
        ) = (
            offer_id,
            agent_id,
            value_type,
            description,
            terms_template,
            validity_window,
            signature,
        )
        else {
            return Err(e.into_object_error());
        };
        if !e.is_empty() {
            return Err(e.into_object_error());
        }
        Ok(Offer {
            offer_id,
            agent_id,
            value_type,
            description,
            terms_template,
            validity_window,
            geographic_constraints,
            capacity,
            prerequisites,
            metadata,
            non_negotiable,
            signature: Some(signature),
            unknown,
        })
    }

    fn json_hints() -> &'static [Hint] {
        OFFER_HINTS
    }
}

crate::impl_single_signed!(Offer);
