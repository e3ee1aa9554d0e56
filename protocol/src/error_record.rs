//! Error records and notifications on the wire (SPEC VI, SPEC IX; PROFILE G-16).
//!
//! ```cddl
//! mtp-error = { error_id: mtp-uuid, code: error-code, severity: 1..4, layer: 0..7,
//!               description: tstr, ? transaction_id: mtp-uuid, timestamp: tdate,
//!               ? details: { * tstr => any }, ? signature: mtp-signature }
//! mtp-notification = { type: "error" / "mandate_void" / "offer_revoked" /
//!                      "negotiation_terminated" / "credential_revoked",
//!                      ? transaction_id: mtp-uuid, ? subject_ref: mtp-uuid,
//!                      ? error: mtp-error, timestamp: tdate, signature: mtp-signature }
//! ```
//! The transaction id is the `terms_id` reserved when the transaction enters Initiated
//! (type 0x3, PROFILE G-16).

use crate::cbor::Value;
use crate::errors::{Coded, ErrorCode, Layer, Severity, split_code};
use crate::primitives::common::*;
use crate::primitives::json::{Hint, Kind};
use crate::time::Timestamp;
use crate::uuid::{MtpUuid, ObjectType};

/// "Every error MUST include: code, description, layer, transaction id if applicable, and
/// a timestamp" (SPEC-VI-06).
const MANDATORY: &str = "SPEC-VI-06";

/// `mtp-error` (PROFILE G-16). `layer` equals the code's L digit; `severity` equals the S
/// digit, or is 1 (Fatal) for an escalated Recoverable code (SPEC-VI-02; PROFILE G-16/G-17).
#[derive(Clone, Debug, PartialEq)]
pub struct MtpErrorRecord {
    /// Type 0x9 (SPEC-IX-01).
    pub error_id: MtpUuid,
    /// `LSCC` wire value; may be a code this suite does not know.
    pub code: u16,
    pub severity: Severity,
    pub layer: Layer,
    pub description: String,
    pub transaction_id: Option<MtpUuid>,
    pub timestamp: Timestamp,
    pub details: Option<Map>,
    pub signature: Option<Signature>,
    pub unknown: Map,
}

impl MtpErrorRecord {
    /// A record for a typed error: code, layer and severity from its registry code.
    pub fn from_coded(
        err: &impl Coded,
        description: impl Into<String>,
        error_id: MtpUuid,
        transaction_id: Option<MtpUuid>,
        now: Timestamp,
    ) -> MtpErrorRecord {
        let code = err.code();
        let mut details = Map::new();
        if let Some(req) = err.requirement() {
            details.push((Value::text("requirement"), Value::text(req)));
        }
        MtpErrorRecord {
            error_id,
            code: code.as_u16(),
            severity: code.severity(),
            layer: code.layer(),
            description: description.into(),
            transaction_id,
            timestamp: now,
            details: (!details.is_empty()).then_some(details),
            signature: None,
            unknown: Map::new(),
        }
    }

    /// Marks a Recoverable error as escalated to Fatal (severity 1, code unchanged).
    pub fn escalated(mut self) -> Self {
        self.severity = Severity::Fatal;
        self
    }

    /// The registry code, when the wire value is one.
    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::from_u16(self.code)
    }

    /// `true` when a Recoverable code is reported with severity 1.
    pub fn is_escalated(&self) -> bool {
        matches!(split_code(self.code), Some((_, Severity::Recoverable, _)))
            && self.severity == Severity::Fatal
    }
}

fn read_small(
    v: &Value,
    path: &str,
    range: std::ops::RangeInclusive<u8>,
) -> Result<u8, ValidationError> {
    let n = read_uint(v, path, MANDATORY)?;
    u8::try_from(n)
        .ok()
        .filter(|d| range.contains(d))
        .ok_or_else(|| {
            ValidationError::out_of_range(path, MANDATORY, format!("{n} outside {range:?}"))
        })
}

const ERROR_HINTS: &[Hint] = &[
    Hint {
        path: "error_id",
        kind: Kind::Uuid,
    },
    Hint {
        path: "transaction_id",
        kind: Kind::Uuid,
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

impl MtpErrorRecord {
    fn read(v: &Value, path: &str) -> Result<MtpErrorRecord, Vec<ValidationError>> {
        let mut r = MapReader::new(v, path).map_err(|e| vec![e])?;
        let mut e = Errors::new();
        let error_id = r.field("error_id", MANDATORY, &mut e, |v, p| {
            read_uuid(v, p, ObjectType::Error, "SPEC-IX-01")
        });
        let code = r.field("code", MANDATORY, &mut e, |v, p| {
            read_error_code(v, p, MANDATORY)
        });
        let severity = r.field("severity", MANDATORY, &mut e, |v, p| {
            read_small(v, p, 1..=4).map(|d| Severity::from_digit(d).unwrap_or(Severity::Fatal))
        });
        let layer = r.field("layer", MANDATORY, &mut e, |v, p| {
            read_small(v, p, 0..=7).map(|d| Layer::from_digit(d).unwrap_or(Layer::CrossLayer))
        });
        let description = r.field("description", MANDATORY, &mut e, |v, p| {
            read_text(v, p, MANDATORY).map(str::to_owned)
        });
        let transaction_id = r.field_opt("transaction_id", &mut e, |v, p| {
            read_uuid(v, p, ObjectType::Terms, MANDATORY)
        });
        let timestamp = r.field("timestamp", MANDATORY, &mut e, |v, p| {
            read_tdate(v, p, MANDATORY)
        });
        let details = r.field_opt("details", &mut e, |v, p| read_open_map(v, p, MANDATORY));
        let sig_path = r.child_path("signature");
        let signature = r.field_opt_all("signature", &mut e, |v, _| {
            Signature::from_value(v, &sig_path, MANDATORY)
        });
        let unknown = r.unknown();
        if let Some((l, s, _)) = code.and_then(split_code) {
            if let Some(layer) = layer
                && layer != l
            {
                e.push(ValidationError::invalid(
                    join_path(path, "layer"),
                    MANDATORY,
                    format!(
                        "layer {} disagrees with the code's layer digit {}",
                        layer as u8, l as u8
                    ),
                ));
            }
            if let Some(sev) = severity
                && sev != s
                && !(s == Severity::Recoverable && sev == Severity::Fatal)
            {
                e.push(ValidationError::invalid(
                    join_path(path, "severity"),
                    MANDATORY,
                    format!(
                        "severity {} disagrees with the code's severity digit {} (PROFILE G-16)",
                        sev as u8, s as u8
                    ),
                ));
            }
        }
        match (error_id, code, severity, layer, description, timestamp) {
            (
                Some(error_id),
                Some(code),
                Some(severity),
                Some(layer),
                Some(description),
                Some(timestamp),
            ) if e.is_empty() => Ok(MtpErrorRecord {
                error_id,
                code,
                severity,
                layer,
                description,
                transaction_id,
                timestamp,
                details,
                signature,
                unknown,
            }),
            _ => Err(e.into_vec()),
        }
    }
}

impl CborObject for MtpErrorRecord {
    const NAME: &'static str = "mtp-error";

    fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("error_id", uuid_value(&self.error_id))
            .put("code", Value::from(u64::from(self.code)))
            .put("severity", Value::from(self.severity as u64))
            .put("layer", Value::from(self.layer as u64))
            .put("description", Value::text(self.description.as_str()))
            .put_opt(
                "transaction_id",
                self.transaction_id.as_ref().map(uuid_value),
            )
            .put("timestamp", tdate_value(self.timestamp))
            .put_opt("details", self.details.clone().map(Value::Map))
            .put_opt(
                "signature",
                self.signature.as_ref().map(Signature::to_value),
            )
            .extend_unknown(&self.unknown)
            .build()
    }

    fn from_value(v: &Value) -> Result<Self, ObjectError> {
        check_encodable(v)?;
        MtpErrorRecord::read(v, "").map_err(ObjectError::Schema)
    }

    fn json_hints() -> &'static [Hint] {
        ERROR_HINTS
    }
}

crate::impl_single_signed!(MtpErrorRecord);

/// Notification `type` (PROFILE G-16).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NotificationType {
    /// An error to all participants (SPEC-VI-01); carries `error`.
    Error,
    /// A Mandate became Void (SPEC III-D-2).
    MandateVoid,
    /// An Offer was revoked (SPEC III-B-3).
    OfferRevoked,
    NegotiationTerminated,
    CredentialRevoked,
}

impl NotificationType {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationType::Error => "error",
            NotificationType::MandateVoid => "mandate_void",
            NotificationType::OfferRevoked => "offer_revoked",
            NotificationType::NegotiationTerminated => "negotiation_terminated",
            NotificationType::CredentialRevoked => "credential_revoked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "error" => Some(NotificationType::Error),
            "mandate_void" => Some(NotificationType::MandateVoid),
            "offer_revoked" => Some(NotificationType::OfferRevoked),
            "negotiation_terminated" => Some(NotificationType::NegotiationTerminated),
            "credential_revoked" => Some(NotificationType::CredentialRevoked),
            _ => None,
        }
    }
}

/// `mtp-notification` (PROFILE G-16). `type: "error"` requires `error` (SPEC-VI-01).
/// `subject_ref` may reference any object type.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    pub kind: NotificationType,
    pub transaction_id: Option<MtpUuid>,
    pub subject_ref: Option<MtpUuid>,
    pub error: Option<MtpErrorRecord>,
    pub timestamp: Timestamp,
    /// Mandatory on the wire; `None` only while building.
    pub signature: Option<Signature>,
    pub unknown: Map,
}

const NOTIFICATION_HINTS: &[Hint] = &[
    Hint {
        path: "transaction_id",
        kind: Kind::Uuid,
    },
    Hint {
        path: "subject_ref",
        kind: Kind::Uuid,
    },
    Hint {
        path: "error.error_id",
        kind: Kind::Uuid,
    },
    Hint {
        path: "error.transaction_id",
        kind: Kind::Uuid,
    },
    Hint {
        path: "error.timestamp",
        kind: Kind::Tdate,
    },
    Hint {
        path: "error.signature.value",
        kind: Kind::Bytes,
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

impl CborObject for Notification {
    const NAME: &'static str = "mtp-notification";

    fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("type", Value::text(self.kind.as_str()))
            .put_opt(
                "transaction_id",
                self.transaction_id.as_ref().map(uuid_value),
            )
            .put_opt("subject_ref", self.subject_ref.as_ref().map(uuid_value))
            .put_opt("error", self.error.as_ref().map(MtpErrorRecord::to_value))
            .put("timestamp", tdate_value(self.timestamp))
            .put_opt(
                "signature",
                self.signature.as_ref().map(Signature::to_value),
            )
            .extend_unknown(&self.unknown)
            .build()
    }

    fn from_value(v: &Value) -> Result<Self, ObjectError> {
        const REQ: &str = "SPEC-VI-01";
        check_encodable(v)?;
        let mut r = MapReader::new(v, "")?;
        let mut e = Errors::new();
        let kind = r.field("type", REQ, &mut e, |v, p| {
            let s = read_text(v, p, REQ)?;
            NotificationType::parse(s).ok_or_else(|| {
                ValidationError::invalid(
                    p,
                    REQ,
                    format!("unknown notification type {s:?} (PROFILE G-16)"),
                )
            })
        });
        let transaction_id = r.field_opt("transaction_id", &mut e, |v, p| {
            read_uuid(v, p, ObjectType::Terms, MANDATORY)
        });
        let subject_ref = r.field_opt("subject_ref", &mut e, |v, p| {
            MtpUuid::from_value(v).map_err(|err| {
                ValidationError::invalid(
                    p,
                    err.requirement().unwrap_or("SPEC-IX-03"),
                    err.to_string(),
                )
                .with_code(ErrorCode::MalformedUuid)
            })
        });
        let error = r.field_opt_all("error", &mut e, MtpErrorRecord::read);
        let timestamp = r.field("timestamp", REQ, &mut e, |v, p| read_tdate(v, p, REQ));
        let signature = read_signature_field(&mut r, REQ, &mut e);
        let has_error = r.has("error");
        let unknown = r.unknown();
        if kind == Some(NotificationType::Error) && !has_error {
            e.push(ValidationError::missing("error", REQ));
        }
        match (kind, timestamp, signature) {
            (Some(kind), Some(timestamp), Some(signature)) if e.is_empty() => Ok(Notification {
                kind,
                transaction_id,
                subject_ref,
                error,
                timestamp,
                signature: Some(signature),
                unknown,
            }),
            _ => Err(e.into_object_error()),
        }
    }

    fn json_hints() -> &'static [Hint] {
        NOTIFICATION_HINTS
    }
}

crate::impl_single_signed!(Notification);

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ty: ObjectType) -> MtpUuid {
        MtpUuid::new(ty, 1_772_755_200_000_000_000, [1; 6], [2; 17])
    }

    fn now() -> Timestamp {
        Timestamp::parse("2026-03-06T00:00:00Z").expect("ts")
    }

    fn record() -> MtpErrorRecord {
        MtpErrorRecord::from_coded(
            &ValidationError::invalid("", "SPEC-III-C-1-02", "timeout")
                .with_code(ErrorCode::RoundTimeout),
            "round timed out",
            id(ObjectType::Error),
            Some(id(ObjectType::Terms)),
            now(),
        )
    }

    fn with(v: Value, key: &str, new: Value) -> Value {
        let Value::Map(mut es) = v else {
            unreachable!()
        };
        es.retain(|(k, _)| k.as_text() != Some(key));
        es.push((Value::text(key), new));
        Value::Map(es)
    }

    #[test]
    fn from_coded_round_trips() {
        let r = record();
        assert_eq!(
            (r.code, r.layer, r.severity),
            (3200, Layer::Negotiation, Severity::Recoverable)
        );
        assert_eq!(MtpErrorRecord::from_cbor(&r.to_cbor()).expect("decodes"), r);
        let esc = r.clone().escalated();
        assert!(esc.is_escalated());
        assert_eq!(
            MtpErrorRecord::from_cbor(&esc.to_cbor()).expect("escalated ok"),
            esc
        );
    }

    #[test]
    fn digits_must_agree() {
        let v = record().to_value();
        let e = MtpErrorRecord::from_value(&with(v.clone(), "layer", Value::Integer(2)))
            .expect_err("layer");
        assert!(e.has("layer", "SPEC-VI-06"));
        let e = MtpErrorRecord::from_value(&with(v.clone(), "severity", Value::Integer(3)))
            .expect_err("severity");
        assert!(e.has("severity", "SPEC-VI-06"));
        let e = MtpErrorRecord::from_value(&with(v.clone(), "code", Value::Integer(9999)))
            .expect_err("code");
        assert!(e.has("code", "SPEC-VI-06"));
        let e = MtpErrorRecord::from_value(&with(
            v.clone(),
            "error_id",
            id(ObjectType::Offer).to_value(),
        ))
        .expect_err("error id type");
        assert!(e.has("error_id", "SPEC-IX-01"));
        assert_eq!(e.code(), ErrorCode::MalformedUuid);
        let Value::Map(mut es) = v else {
            unreachable!()
        };
        es.retain(|(k, _)| k.as_text() != Some("description"));
        let e = MtpErrorRecord::from_value(&Value::Map(es)).expect_err("description");
        assert!(e.has("description", "SPEC-VI-06"));
        // A Fatal code cannot be reported with a milder severity.
        let fatal = MtpErrorRecord::from_coded(
            &ValidationError::invalid("", "SPEC-IX-04", "reuse").with_code(ErrorCode::UuidReuse),
            "reuse",
            id(ObjectType::Error),
            None,
            now(),
        );
        let e = MtpErrorRecord::from_value(&with(fatal.to_value(), "severity", Value::Integer(2)))
            .expect_err("sev");
        assert!(e.has("severity", "SPEC-VI-06"));
    }

    #[test]
    fn notification_rules() {
        let n = Notification {
            kind: NotificationType::Error,
            transaction_id: Some(id(ObjectType::Terms)),
            subject_ref: None,
            error: Some(record()),
            timestamp: now(),
            signature: Some(Signature {
                algorithm: "ML-DSA-65".into(),
                key_id: None,
                value: vec![1],
                unknown: Map::new(),
            }),
            unknown: Map::new(),
        };
        assert_eq!(Notification::from_cbor(&n.to_cbor()).expect("decodes"), n);
        let mut no_err = n.clone();
        no_err.error = None;
        let e = Notification::from_value(&no_err.to_value()).expect_err("error required");
        assert!(e.has("error", "SPEC-VI-01"));
        let mut unsigned = n.clone();
        unsigned.signature = None;
        assert!(
            Notification::from_value(&unsigned.to_value())
                .expect_err("unsigned")
                .has("signature", "SPEC-VI-01")
        );
        let e = Notification::from_value(&with(n.to_value(), "type", Value::text("oops")))
            .expect_err("type");
        assert!(e.has("type", "SPEC-VI-01"));
    }
}
