//! Verification Layer objects and arithmetic (SPEC III-E-2, III-F; PROFILE G-03, G-20, G-22):
//! the standalone signed Dispute Initiation Record and its mapping to the Receipt's
//! `dispute_initiation` block, and exact decimal money arithmetic — the deterministic
//! partial-settlement adjustment of PROFILE G-20. The verification methods are
//! [`crate::primitives::receipt::VerificationMethod`].

use std::cmp::Ordering;

use crate::cbor::Value;
use crate::errors::{Coded, ErrorCode};
use crate::identity::Did;
use crate::primitives::common::{
    CborObject, Errors, Map, MapBuilder, MapReader, Number, ObjectError, PriceSpec, PriceUnit,
    Signature, ValidationError, check_encodable, read_open_map, read_signature_field, read_tdate,
    read_text, read_text_array, read_uuid, tdate_value, text_array_value, uuid_value,
};
use crate::primitives::json::{Hint, Kind};
use crate::primitives::receipt::DisputeInitiation;
use crate::time::Timestamp;
use crate::uuid::{MtpUuid, ObjectType};

pub use crate::primitives::receipt::VerificationMethod;

/// Dispute Initiation Record contents (SPEC-III-F-2-02).
pub const DISPUTE_REQ: &str = "SPEC-III-F-2-02";
/// The adjusted amount is deterministically calculable (SPEC-III-E-2-03).
pub const ADJUSTMENT_REQ: &str = "SPEC-III-E-2-03";

// ---------------------------------------------------------------------------------------
// Decimal money arithmetic (PROFILE G-03, G-20)
// ---------------------------------------------------------------------------------------

/// An exact decimal `mantissa × 10^-scale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Decimal {
    pub mantissa: i128,
    pub scale: u32,
}

/// Why an amount cannot be handled as an exact decimal.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DecimalError {
    #[error("amount is NaN or infinite")]
    NotFinite,
    #[error("amount does not fit the exact decimal range (i128 minor units)")]
    Overflow,
    #[error("price unit {0:?} has no minor-unit precision (PROFILE G-03)")]
    NoPrecision(String),
    #[error("fulfillment ratio {0} is outside 0..=1")]
    RatioOutOfRange(f32),
    #[error("amount {0} is negative")]
    Negative(String),
}

impl Decimal {
    pub const ZERO: Decimal = Decimal {
        mantissa: 0,
        scale: 0,
    };

    pub fn from_int(i: i128) -> Decimal {
        Decimal {
            mantissa: i,
            scale: 0,
        }
    }

    /// The shortest decimal that round-trips to `f` (Rust's `Display`, which never uses
    /// exponent notation): `0.08_f64` is exactly `0.08`, not its binary expansion.
    pub fn from_f64(f: f64) -> Result<Decimal, DecimalError> {
        if !f.is_finite() {
            return Err(DecimalError::NotFinite);
        }
        Decimal::parse(&format!("{f}"))
    }

    /// As [`Decimal::from_f64`] for a binary32 value (its own shortest spelling).
    pub fn from_f32(f: f32) -> Result<Decimal, DecimalError> {
        if !f.is_finite() {
            return Err(DecimalError::NotFinite);
        }
        Decimal::parse(&format!("{f}"))
    }

    /// Parses `-?digits(.digits)?`; trailing fraction zeros are dropped.
    pub fn parse(s: &str) -> Result<Decimal, DecimalError> {
        let (neg, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (int_part, frac_part) = match body.split_once('.') {
            Some((i, f)) => (i, f),
            None => (body, ""),
        };
        if int_part.is_empty()
            || !int_part
                .bytes()
                .chain(frac_part.bytes())
                .all(|b| b.is_ascii_digit())
        {
            return Err(DecimalError::NotFinite);
        }
        let frac_part = frac_part.trim_end_matches('0');
        let mut mantissa: i128 = 0;
        for b in int_part.bytes().chain(frac_part.bytes()) {
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(i128::from(b - b'0')))
                .ok_or(DecimalError::Overflow)?;
        }
        let scale = u32::try_from(frac_part.len()).map_err(|_| DecimalError::Overflow)?;
        Ok(Decimal {
            mantissa: if neg { -mantissa } else { mantissa },
            scale,
        })
    }

    /// Rounds (half to even) to `scale` fraction digits and returns the integer
    /// `self × 10^scale` — e.g. minor units for `scale` = the unit's exponent.
    pub fn to_scaled_half_even(self, scale: u32) -> Result<i128, DecimalError> {
        if scale >= self.scale {
            let factor = pow10(scale - self.scale).ok_or(DecimalError::Overflow)?;
            self.mantissa
                .checked_mul(factor)
                .ok_or(DecimalError::Overflow)
        } else {
            Ok(div_pow10_half_even(self.mantissa, self.scale - scale))
        }
    }

    /// Exact comparison.
    pub fn cmp_exact(self, other: Decimal) -> Option<std::cmp::Ordering> {
        let s = self.scale.max(other.scale);
        let a = self.to_scaled_half_even(s).ok()?;
        let b = other.to_scaled_half_even(s).ok()?;
        Some(a.cmp(&b))
    }

    /// `true` when the value is an integer.
    pub fn is_integral(self) -> bool {
        self.scale == 0 || self.mantissa == 0
    }
}

impl std::fmt::Display for Decimal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let digits = self.mantissa.unsigned_abs().to_string();
        let sign = if self.mantissa < 0 { "-" } else { "" };
        let scale = self.scale as usize;
        if scale == 0 {
            return write!(f, "{sign}{digits}");
        }
        let padded = if digits.len() <= scale {
            format!("{}{digits}", "0".repeat(scale + 1 - digits.len()))
        } else {
            digits
        };
        let (i, frac) = padded.split_at(padded.len() - scale);
        write!(f, "{sign}{i}.{frac}")
    }
}

fn pow10(e: u32) -> Option<i128> {
    10i128.checked_pow(e)
}

/// `m / 10^e` rounded half to even; exact for every `i128` and `e`.
fn div_pow10_half_even(m: i128, e: u32) -> i128 {
    let Some(d) = pow10(e) else {
        // 10^e > i128::MAX > 2·|m|: the quotient is 0 and the remainder is below one half.
        return 0;
    };
    let q = m / d;
    let r = m % d; // same sign as m
    let r_abs = r.unsigned_abs();
    // 2·|r| vs d, without overflow: |r| vs d − |r|.
    let rest = d.unsigned_abs() - r_abs;
    let round_away = match r_abs.cmp(&rest) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => q % 2 != 0,
    };
    if !round_away {
        q
    } else if m < 0 {
        q - 1
    } else {
        q + 1
    }
}

/// ISO 4217 minor-unit exponent of a price unit (PROFILE G-03): 2 by default; the ISO
/// exceptions; `MTP_COMPUTE_CREDIT` 6. `None` for units without a defined precision
/// (`RECIPROCAL`, custom `ext:` units, ISO codes whose minor unit is "N.A.").
pub fn minor_unit_exponent(unit: &str) -> Option<u32> {
    const ZERO: &[&str] = &[
        "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
        "VUV", "XAF", "XOF", "XPF",
    ];
    const THREE: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];
    const FOUR: &[&str] = &["CLF", "UYW"];
    const NONE: &[&str] = &[
        "XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XDR", "XPD", "XPT", "XSU", "XTS", "XUA", "XXX",
    ];
    if unit == "MTP_COMPUTE_CREDIT" {
        return Some(6);
    }
    if unit.len() != 3 || !unit.bytes().all(|b| b.is_ascii_uppercase()) || NONE.contains(&unit) {
        return None;
    }
    Some(if ZERO.contains(&unit) {
        0
    } else if THREE.contains(&unit) {
        3
    } else if FOUR.contains(&unit) {
        4
    } else {
        2
    })
}

/// The result of a proportional settlement adjustment (PROFILE G-20), in minor units of
/// the unit (`value = minor × 10^-exponent`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartialSettlement {
    pub exponent: u32,
    /// The Terms amount at the unit's precision.
    pub amount_minor: i128,
    /// `round_half_even(amount × fulfillment_ratio)`: what the payee keeps.
    pub adjusted_minor: i128,
    /// `amount − adjusted`: the partial Reverse Settlement.
    pub reversal_minor: i128,
}

impl PartialSettlement {
    pub fn amount(&self) -> Decimal {
        Decimal {
            mantissa: self.amount_minor,
            scale: self.exponent,
        }
    }
    pub fn adjusted(&self) -> Decimal {
        Decimal {
            mantissa: self.adjusted_minor,
            scale: self.exponent,
        }
    }
    pub fn reversal(&self) -> Decimal {
        Decimal {
            mantissa: self.reversal_minor,
            scale: self.exponent,
        }
    }
}

/// PROFILE G-20: `adjusted = round_half_even(amount × fulfillment_ratio)` at the unit's
/// minor-unit precision (SPEC-III-E-2-03, SPEC-III-E-2-I01). Exact decimal arithmetic: the
/// amount and the ratio are taken at their shortest decimal spelling, the amount is first
/// brought to the unit's precision (half-even), then multiplied and rounded once.
pub fn adjust_decimal(
    amount: Decimal,
    unit: &str,
    fulfillment_ratio: f32,
) -> Result<PartialSettlement, DecimalError> {
    let exponent =
        minor_unit_exponent(unit).ok_or_else(|| DecimalError::NoPrecision(unit.to_owned()))?;
    if !fulfillment_ratio.is_finite() || !(0.0..=1.0).contains(&fulfillment_ratio) {
        return Err(DecimalError::RatioOutOfRange(fulfillment_ratio));
    }
    if amount.mantissa < 0 {
        return Err(DecimalError::Negative(amount.to_string()));
    }
    let ratio = Decimal::from_f32(fulfillment_ratio)?;
    let amount_minor = amount.to_scaled_half_even(exponent)?;
    let product = amount_minor
        .checked_mul(ratio.mantissa)
        .ok_or(DecimalError::Overflow)?;
    let adjusted_minor = div_pow10_half_even(product, ratio.scale);
    Ok(PartialSettlement {
        exponent,
        amount_minor,
        adjusted_minor,
        reversal_minor: amount_minor - adjusted_minor,
    })
}

impl Coded for DecimalError {
    fn code(&self) -> ErrorCode {
        ErrorCode::SchemaViolation
    }
    fn requirement(&self) -> Option<&'static str> {
        Some(ADJUSTMENT_REQ)
    }
}

impl Decimal {
    /// The exact decimal of a CDDL `number` (a float at its shortest spelling, G-03).
    pub fn from_number(n: &Number) -> Result<Decimal, DecimalError> {
        match n {
            Number::Int(i) => Ok(Decimal::from_int(*i)),
            Number::Float(f) => Decimal::from_f64(*f),
        }
    }

    /// Back to a CDDL `number` (numeric reduction: integral → `Int`; otherwise the nearest
    /// binary64, which spells back as this decimal whenever it has ≤ 15 significant digits).
    pub fn to_number(self) -> Number {
        if self.is_integral() {
            let int = self.to_scaled_half_even(0).unwrap_or(0);
            return Number::Int(int);
        }
        Number::Float(self.to_string().parse::<f64>().unwrap_or(0.0))
    }
}

/// Exact comparison of two prices in the same unit (PROFILE G-03): both amounts at the
/// unit's minor-unit precision (half-even) when the unit has one, exactly otherwise.
/// `None` when the units differ (no FX) or an amount is not representable.
pub fn money_cmp(a: &PriceSpec, b: &PriceSpec) -> Option<Ordering> {
    if a.unit != b.unit {
        return None;
    }
    let x = Decimal::from_number(&a.amount).ok()?;
    let y = Decimal::from_number(&b.amount).ok()?;
    match minor_unit_exponent(a.unit.as_str()) {
        Some(e) => Some(
            x.to_scaled_half_even(e)
                .ok()?
                .cmp(&y.to_scaled_half_even(e).ok()?),
        ),
        None => x.cmp_exact(y),
    }
}

/// PROFILE G-20 on wire types: the Terms `amount`/`unit` and the Receipt's
/// `partial_fulfillment.fulfillment_ratio` → adjusted amount and partial reversal.
pub fn adjusted_amount(
    amount: &Number,
    unit: &PriceUnit,
    fulfillment_ratio: f32,
) -> Result<PartialSettlement, DecimalError> {
    adjust_decimal(
        Decimal::from_number(amount)?,
        unit.as_str(),
        fulfillment_ratio,
    )
}

// ---------------------------------------------------------------------------------------
// Dispute Initiation Record (SPEC III-F-2; PROFILE G-22)
// ---------------------------------------------------------------------------------------

/// The Dispute Initiation Record as a standalone signed object (SPEC-III-F-2-02; PROFILE
/// G-22), sent by the disputing party when verification fails:
///
/// ```cddl
/// dispute-initiation-record = {
///   type: "dispute_initiation", mandate_id: mtp-uuid, ? receipt_ref: mtp-uuid,
///   disputing_agent: did-string, violated_provisions: [+ tstr], evidence_refs: [+ tstr],
///   ? evidence: { * tstr => any }, proposed_resolution: tstr, timestamp: tdate,
///   signature: mtp-signature }
/// ```
///
/// Inside a Receipt the record is the `dispute_initiation` block (mandate id = the
/// Receipt's `mandate_id`), see [`DisputeInitiationRecord::to_receipt_block`].
#[derive(Clone, Debug, PartialEq)]
pub struct DisputeInitiationRecord {
    pub mandate_id: MtpUuid,
    pub receipt_ref: Option<MtpUuid>,
    pub disputing_agent: Did,
    /// Dotted paths into the Terms map (PROFILE G-22), e.g. `quality.accuracy_threshold`.
    pub violated_provisions: Vec<String>,
    pub evidence_refs: Vec<String>,
    pub evidence: Option<Map>,
    pub proposed_resolution: String,
    pub timestamp: Timestamp,
    pub signature: Option<Signature>,
    pub unknown: Map,
}

impl DisputeInitiationRecord {
    /// The Receipt's `dispute_initiation` block carrying this record (SPEC-II-D-04). The
    /// block has no room for the other fields; they stay in the standalone record.
    pub fn to_receipt_block(&self) -> DisputeInitiation {
        DisputeInitiation {
            violated_provisions: self.violated_provisions.clone(),
            evidence_refs: self.evidence_refs.clone(),
            proposed_resolution: self.proposed_resolution.clone(),
            unknown: Map::new(),
        }
    }

    /// An unsigned record from a Receipt's block (mandate id = the Receipt's, G-22); the
    /// block's unknown entries are carried over. Checks SPEC-III-F-2-02 (at least one
    /// violated provision and one piece of evidence).
    pub fn from_receipt_block(
        block: &DisputeInitiation,
        mandate_id: MtpUuid,
        disputing_agent: Did,
        timestamp: Timestamp,
    ) -> Result<DisputeInitiationRecord, Vec<ValidationError>> {
        let record = DisputeInitiationRecord {
            mandate_id,
            receipt_ref: None,
            disputing_agent,
            violated_provisions: block.violated_provisions.clone(),
            evidence_refs: block.evidence_refs.clone(),
            evidence: None,
            proposed_resolution: block.proposed_resolution.clone(),
            timestamp,
            signature: None,
            unknown: block.unknown.clone(),
        };
        let mut errs = Errors::new();
        record.check_contents("dispute_initiation", &mut errs);
        errs.finish().map(|_| record)
    }

    /// Whether `block` (of a Receipt for `mandate_id`) carries this record's contents.
    pub fn matches_block(&self, block: &DisputeInitiation, mandate_id: &MtpUuid) -> bool {
        self.mandate_id == *mandate_id
            && self.violated_provisions == block.violated_provisions
            && self.evidence_refs == block.evidence_refs
            && self.proposed_resolution == block.proposed_resolution
    }

    fn check_contents(&self, path: &str, errs: &mut Errors) {
        use crate::primitives::common::join_path;
        if self.violated_provisions.is_empty() {
            errs.push(ValidationError::out_of_range(
                join_path(path, "violated_provisions"),
                DISPUTE_REQ,
                "at least one violated provision",
            ));
        }
        if self.evidence_refs.is_empty() && self.evidence.as_ref().is_none_or(|e| e.is_empty()) {
            errs.push(ValidationError::out_of_range(
                join_path(path, "evidence_refs"),
                DISPUTE_REQ,
                "the evidence supporting the determination is missing",
            ));
        }
        if self.proposed_resolution.is_empty() {
            errs.push(ValidationError::invalid(
                join_path(path, "proposed_resolution"),
                DISPUTE_REQ,
                "empty",
            ));
        }
    }
}

impl CborObject for DisputeInitiationRecord {
    const NAME: &'static str = "dispute-initiation-record";

    fn json_hints() -> &'static [Hint] {
        &[
            Hint {
                path: "mandate_id",
                kind: Kind::Uuid,
            },
            Hint {
                path: "receipt_ref",
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
        ]
    }

    fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("type", Value::text("dispute_initiation"))
            .put("mandate_id", uuid_value(&self.mandate_id))
            .put_opt("receipt_ref", self.receipt_ref.as_ref().map(uuid_value))
            .put(
                "disputing_agent",
                Value::text(self.disputing_agent.as_str()),
            )
            .put(
                "violated_provisions",
                text_array_value(&self.violated_provisions),
            )
            .put("evidence_refs", text_array_value(&self.evidence_refs))
            .put_opt("evidence", self.evidence.clone().map(Value::Map))
            .put(
                "proposed_resolution",
                Value::text(self.proposed_resolution.as_str()),
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
        let req = DISPUTE_REQ;
        let mut r = MapReader::new(v, "")?;
        let mut errs = Errors::new();
        if let Some(t) = errs
            .take(r.required("type", req))
            .and_then(|t| errs.take(read_text(t, "type", req)))
            && t != "dispute_initiation"
        {
            errs.push(ValidationError::invalid(
                "type",
                req,
                format!("{t:?}, expected \"dispute_initiation\""),
            ));
        }
        let mandate_id = errs
            .take(r.required("mandate_id", req))
            .and_then(|v| errs.take(read_uuid(v, "mandate_id", ObjectType::Mandate, req)));
        let receipt_ref = r
            .optional("receipt_ref")
            .and_then(|v| errs.take(read_uuid(v, "receipt_ref", ObjectType::Receipt, req)));
        let disputing_agent = errs.take(r.required("disputing_agent", req)).and_then(|v| {
            errs.take(crate::primitives::common::read_did(
                v,
                "disputing_agent",
                req,
            ))
        });
        let violated = errs
            .take(r.required("violated_provisions", req))
            .and_then(|v| errs.take_all(read_text_array(v, "violated_provisions", req)));
        let evidence_refs = errs
            .take(r.required("evidence_refs", req))
            .and_then(|v| errs.take_all(read_text_array(v, "evidence_refs", req)));
        let evidence = r
            .optional("evidence")
            .and_then(|v| errs.take(read_open_map(v, "evidence", req)));
        let proposed = errs
            .take(r.required("proposed_resolution", req))
            .and_then(|v| errs.take(read_text(v, "proposed_resolution", req)));
        let timestamp = errs
            .take(r.required("timestamp", req))
            .and_then(|v| errs.take(read_tdate(v, "timestamp", req)));
        let signature = read_signature_field(&mut r, req, &mut errs);
        let unknown = r.unknown();
        let record = match (
            mandate_id,
            disputing_agent,
            violated,
            evidence_refs,
            proposed,
            timestamp,
            signature,
        ) {
            (
                Some(mandate_id),
                Some(disputing_agent),
                Some(violated_provisions),
                Some(evidence_refs),
                Some(proposed),
                Some(timestamp),
                Some(sig),
            ) => Some(DisputeInitiationRecord {
                mandate_id,
                receipt_ref,
                disputing_agent,
                violated_provisions,
                evidence_refs,
                evidence,
                proposed_resolution: proposed.to_owned(),
                timestamp,
                signature: Some(sig),
                unknown,
            }),
            _ => None,
        };
        if let Some(rec) = &record {
            rec.check_contents("", &mut errs);
        }
        match record {
            Some(rec) if errs.is_empty() => {
                check_encodable(v)?;
                Ok(rec)
            }
            _ => Err(errs.into_object_error()),
        }
    }
}

crate::impl_single_signed!(DisputeInitiationRecord);

#[cfg(test)]
mod tests {
    use super::*;

    fn adj(amount: &str, unit: &str, r: f32) -> PartialSettlement {
        adjust_decimal(Decimal::parse(amount).unwrap(), unit, r).unwrap()
    }

    #[test]
    fn partial_settlement_rounding() {
        assert_eq!(adj("0.08", "USD", 0.5).adjusted().to_string(), "0.04");
        assert_eq!(adj("0.08", "USD", 0.5).reversal().to_string(), "0.04");
        // 1 JPY × 0.5 = 0.5 → 0 (half to even); 3 JPY × 0.5 = 1.5 → 2
        assert_eq!(adj("1", "JPY", 0.5).adjusted_minor, 0);
        assert_eq!(adj("1", "JPY", 0.5).reversal_minor, 1);
        assert_eq!(adj("3", "JPY", 0.5).adjusted_minor, 2);
        // 2.5 cents cases: 5 ¢ × 0.5 = 2.5 ¢ → 2 ¢; 7 ¢ × 0.5 = 3.5 ¢ → 4 ¢
        assert_eq!(adj("0.05", "USD", 0.5).adjusted_minor, 2);
        assert_eq!(adj("0.07", "USD", 0.5).adjusted_minor, 4);
        // ratios at their shortest decimal spelling: 0.1 (f32) is exactly 0.1 here
        assert_eq!(adj("0.05", "USD", 0.1).adjusted_minor, 0);
        assert_eq!(adj("0.15", "USD", 0.1).adjusted_minor, 2);
        assert_eq!(adj("89", "USD", 0.3).adjusted().to_string(), "26.70");
        assert_eq!(adj("1.0005", "BHD", 1.0).amount_minor, 1000);
        assert_eq!(adj("1.0015", "BHD", 0.5).amount().to_string(), "1.002");
        assert_eq!(adj("1.0015", "BHD", 0.5).adjusted().to_string(), "0.501");
        assert_eq!(
            adj("12.3456789", "MTP_COMPUTE_CREDIT", 0.25)
                .adjusted()
                .to_string(),
            "3.086420"
        );
        assert_eq!(
            adj("10", "CLF", 0.33333334).adjusted().to_string(),
            "3.3333"
        );
        assert_eq!(adj("2", "USD", 1e-45).adjusted_minor, 0);
        assert_eq!(adj("2", "USD", 0.0).adjusted_minor, 0);
        assert_eq!(adj("2", "USD", 1.0).reversal_minor, 0);
        for (unit, e) in [
            ("USD", 2),
            ("EUR", 2),
            ("JPY", 0),
            ("KRW", 0),
            ("KWD", 3),
            ("OMR", 3),
            ("CLF", 4),
        ] {
            assert_eq!(minor_unit_exponent(unit), Some(e), "{unit}");
        }
        assert_eq!(minor_unit_exponent("RECIPROCAL"), None);
        assert_eq!(minor_unit_exponent("XAU"), None);
        assert!(matches!(
            adjust_decimal(Decimal::from_int(1), "ext:data-access:grant", 0.5),
            Err(DecimalError::NoPrecision(_))
        ));
        assert!(matches!(
            adjust_decimal(Decimal::from_int(1), "USD", 1.5),
            Err(DecimalError::RatioOutOfRange(_))
        ));
        assert!(matches!(
            adjust_decimal(Decimal::from_int(1), "USD", f32::NAN),
            Err(DecimalError::RatioOutOfRange(_))
        ));
        assert!(matches!(
            adjust_decimal(Decimal::from_int(-1), "USD", 0.5),
            Err(DecimalError::Negative(_))
        ));
    }

    #[test]
    fn wire_numbers() {
        let usd = PriceUnit::parse("USD").unwrap();
        let r = adjusted_amount(&Number::Float(0.08), &usd, 0.5).unwrap();
        assert_eq!(r.adjusted().to_number(), Number::Float(0.04));
        assert_eq!(
            adjusted_amount(&Number::Int(3), &PriceUnit::parse("JPY").unwrap(), 0.5)
                .unwrap()
                .adjusted()
                .to_number(),
            Number::Int(2)
        );
        let a = PriceSpec::new(Number::Float(0.1 + 0.2), usd.clone());
        let b = PriceSpec::new(Number::Float(0.3), usd.clone());
        assert_eq!(money_cmp(&a, &b), Some(Ordering::Equal)); // equal at cent precision
        let c = PriceSpec::new(Number::Int(1), PriceUnit::parse("EUR").unwrap());
        assert_eq!(money_cmp(&a, &c), None);
        let big = PriceSpec::new(Number::Int(100), usd);
        assert_eq!(money_cmp(&a, &big), Some(Ordering::Less));
    }

    #[test]
    fn decimal_parsing_and_rounding() {
        assert_eq!(
            Decimal::from_f64(0.1 + 0.2).unwrap().to_string(),
            "0.30000000000000004"
        );
        assert_eq!(Decimal::from_f64(-0.0).unwrap(), Decimal::ZERO);
        assert!(Decimal::from_f64(1e300).is_err());
        assert!(Decimal::from_f64(f64::INFINITY).is_err());
        assert!(Decimal::parse("1e5").is_err());
        assert!(Decimal::parse(".5").is_err());
        for (s, r) in [
            ("-0.5", 0),
            ("-1.5", -2),
            ("-2.5", -2),
            ("-2.51", -3),
            ("2.5", 2),
            ("3.5", 4),
            ("0.49", 0),
        ] {
            assert_eq!(
                Decimal::parse(s).unwrap().to_scaled_half_even(0).unwrap(),
                r,
                "{s}"
            );
        }
        assert_eq!(
            Decimal {
                mantissa: 5,
                scale: 3
            }
            .to_string(),
            "0.005"
        );
        assert_eq!(
            Decimal {
                mantissa: -5,
                scale: 1
            }
            .to_string(),
            "-0.5"
        );
        assert_eq!(
            Decimal {
                mantissa: 1234,
                scale: 2
            }
            .to_string(),
            "12.34"
        );
        assert_eq!(
            Decimal::parse("1.50").unwrap(),
            Decimal {
                mantissa: 15,
                scale: 1
            }
        );
    }
}
