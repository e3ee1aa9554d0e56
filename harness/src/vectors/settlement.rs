//! Partial-fulfilment settlement vectors (SPEC III-E-2; PROFILE G-03, G-20), folder
//! `settlement/`: `adjusted = round_half_even(amount × fulfillment_ratio)` at the unit's
//! minor-unit precision in exact decimal arithmetic (amount and binary32 ratio taken at
//! their shortest decimal spelling), the partial reversal `amount − adjusted`, and inputs
//! that have no adjustment.

use serde_json::json;

use mtp_protocol::cbor::{self, Value};
use mtp_protocol::errors::Coded;
use mtp_protocol::primitives::common::{Number, PriceUnit};
use mtp_protocol::verification::adjusted_amount;

use super::doc::{VectorDoc, files_of};
use super::world::f32v;
use super::{At, VectorError, VectorFile, ensure, input_error};

/// The family name (folder under `vectors/`).
pub const FAMILY: &str = "settlement";

fn case(
    name: &str,
    amount: Number,
    unit: &str,
    ratio: f32,
    expect: Option<(i128, i128)>,
    why: &str,
) -> Result<VectorDoc, VectorError> {
    let id = format!("{FAMILY}/{name}");
    let u = PriceUnit::parse(unit).map_err(|e| input_error(&id, e))?;
    let result = adjusted_amount(&amount, &u, ratio);
    let mut item = vec![
        ("amount", amount.to_value()),
        ("unit", Value::text(unit)),
        ("fulfillment_ratio", f32v(ratio)),
    ];
    let amount_json = match amount {
        Number::Int(i) => json!(i),
        Number::Float(f) => json!(f),
    };
    let doc = VectorDoc::new(
        id.clone(),
        &["SPEC-III-E-2-03", "SPEC-III-E-2-I01"],
        &format!("Partial-fulfilment adjustment (PROFILE G-20): {why}"),
    )
    .input("amount", amount_json)
    .input("unit", unit)
    .input("fulfillment_ratio", f64::from(ratio))
    .input(
        "fulfillment_ratio_binary32",
        hex::encode(ratio.to_be_bytes()),
    );
    let doc = match (result, expect) {
        (Ok(p), Some((adj, rev))) => {
            ensure(
                &id,
                p.adjusted_minor == adj && p.reversal_minor == rev,
                || {
                    format!(
                        "adjusted {} reversal {}",
                        p.adjusted_minor, p.reversal_minor
                    )
                },
            )?;
            item.push(("exponent", Value::from(u64::from(p.exponent))));
            item.push(("adjusted_minor", Value::Integer(p.adjusted_minor)));
            item.push(("reversal_minor", Value::Integer(p.reversal_minor)));
            doc.expected("valid", true)
                .expected("exponent", p.exponent)
                .expected("amount_minor", p.amount_minor.to_string())
                .expected("adjusted_minor", p.adjusted_minor.to_string())
                .expected("reversal_minor", p.reversal_minor.to_string())
                .expected("adjusted", p.adjusted().to_string())
                .expected("reversal", p.reversal().to_string())
        }
        (Err(e), None) => {
            item.push(("code", Value::from(u64::from(e.code().as_u16()))));
            doc.expected("valid", false)
                .expected("code", e.code().as_u16())
                .expected("error", e.to_string())
        }
        (r, _) => {
            return Err(super::VectorError::SelfCheck {
                vector: id,
                what: format!("unexpected result {r:?}"),
            });
        }
    };
    Ok(doc.bytes(cbor::to_vec(&Value::map(item)).at(&id)?))
}

/// Generates the family's files.
pub fn generate() -> Result<Vec<VectorFile>, VectorError> {
    let docs = vec![
        case(
            "usd-0.08-ratio-0.75",
            Number::Float(0.08),
            "USD",
            0.75,
            Some((6, 2)),
            "0.08 USD (8 cents) at ratio 0.75 keeps 0.06 and reverses 0.02.",
        )?,
        case(
            "usd-100-ratio-0.333",
            Number::Int(100),
            "USD",
            0.333,
            Some((3330, 6670)),
            "100 USD at the binary32 ratio whose shortest spelling is 0.333: 33.30 kept.",
        )?,
        case(
            "usd-half-even-down",
            Number::Float(10.05),
            "USD",
            0.5,
            Some((502, 503)),
            "10.05 USD at 0.5 = 5.025: half to even rounds down to 5.02.",
        )?,
        case(
            "usd-half-even-up",
            Number::Float(10.15),
            "USD",
            0.5,
            Some((508, 507)),
            "10.15 USD at 0.5 = 5.075: half to even rounds up to 5.08.",
        )?,
        case(
            "jpy-no-minor-unit",
            Number::Int(1234),
            "JPY",
            0.25,
            Some((308, 926)),
            "1234 JPY (exponent 0) at 0.25 = 308.5: half to even gives 308.",
        )?,
        case(
            "bhd-three-decimals",
            Number::Int(5),
            "BHD",
            0.1,
            Some((500, 4500)),
            "5 BHD (exponent 3) at the binary32 value spelled 0.1: 0.500 kept.",
        )?,
        case(
            "compute-credit",
            Number::Float(1.5),
            "MTP_COMPUTE_CREDIT",
            0.7,
            Some((1_050_000, 450_000)),
            "1.5 MTP_COMPUTE_CREDIT (6 decimals, PROFILE G-03) at 0.7: 1.050000 kept.",
        )?,
        case(
            "reciprocal-no-precision",
            Number::Int(1),
            "RECIPROCAL",
            0.5,
            None,
            "RECIPROCAL has no minor-unit precision, so no adjustment is defined (0103).",
        )?,
        case(
            "ratio-above-one",
            Number::Int(100),
            "USD",
            1.5,
            None,
            "A ratio outside 0..1 has no adjustment (0103).",
        )?,
    ];
    files_of(&docs)
}
