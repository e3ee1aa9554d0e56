//! Error-code vectors (SPEC VI, BIND XI; PROFILE G-14, G-15), folder `errors/`: the
//! complete registry (published and profile codes) with layer, severity and condition
//! digits, and the `LSCC` decoding of well-formed and malformed values.

use serde_json::{Value as Json, json};

use mtp_protocol::cbor::{self, Value};
use mtp_protocol::errors::{ErrorCode, split_code};

use super::doc::{VectorDoc, files_of};
use super::{At, VectorError, VectorFile, ensure};

/// The family name (folder under `vectors/`).
pub const FAMILY: &str = "errors";

fn registry() -> Result<VectorDoc, VectorError> {
    let id = format!("{FAMILY}/registry");
    let mut items = Vec::new();
    let mut list = Vec::new();
    for &c in ErrorCode::ALL {
        let n = c.as_u16();
        let (layer, severity, cc) =
            split_code(n).ok_or_else(|| super::input_error(&id, format!("{n} does not decode")))?;
        ensure(&id, layer == c.layer() && severity == c.severity(), || {
            format!("{n}: digits disagree")
        })?;
        ensure(&id, ErrorCode::from_u16(n) == Some(c), || {
            format!("{n}: lookup")
        })?;
        list.push(json!({
            "code": n,
            "text": c.to_string(),
            "layer": layer as u8,
            "layer_name": layer.name(),
            "severity": severity as u8,
            "severity_name": severity.name(),
            "condition": cc,
            "description": c.description(),
            "published": c.is_published(),
        }));
        items.push(Value::map([
            ("code", Value::from(u64::from(n))),
            ("description", Value::text(c.description())),
            ("published", Value::Bool(c.is_published())),
        ]));
    }
    let published = ErrorCode::ALL.iter().filter(|c| c.is_published()).count();
    ensure(&id, published == 17, || {
        format!("{published} published codes")
    })?;
    Ok(VectorDoc::new(
        id.clone(),
        &[
            "SPEC-VI-07",
            "BIND-XI-01",
            "BIND-XI-I01",
            "BIND-XI-I02",
            "BIND-XI-I03",
        ],
        "Every error code the suite knows (PROFILE G-14): the 17 codes published in BIND XI \
         (compared exactly) and the profile codes from ranges the registry leaves unused. A \
         code keeps its meaning forever (never reused or reassigned). Text form is four \
         digits; on the wire a code is an unsigned integer (0101 travels as 101, 18 65). \
         L = code / 1000, S = (code / 100) mod 10, CC = code mod 100 (PROFILE G-15).",
    )
    .expected("codes", Json::Array(list))
    .expected("published_count", published)
    .bytes(cbor::to_vec(&Value::Array(items)).at(&id)?))
}

fn decoding() -> Result<VectorDoc, VectorError> {
    let id = format!("{FAMILY}/decoding");
    let values: [u16; 14] = [
        100, 101, 1100, 3201, 5200, 6100, 7100, 109, 400, 7499, 0, 1500, 7500, 8100,
    ];
    let mut list = Vec::new();
    let mut items = Vec::new();
    for n in values {
        let d = split_code(n);
        list.push(match d {
            Some((l, s, cc)) => json!({
                "value": n,
                "well_formed": true,
                "layer": l as u8,
                "severity": s as u8,
                "condition": cc,
                "registered": ErrorCode::from_u16(n).is_some(),
            }),
            None => json!({"value": n, "well_formed": false}),
        });
        items.push(Value::map([
            ("value", Value::from(u64::from(n))),
            ("well_formed", Value::Bool(d.is_some())),
        ]));
    }
    Ok(VectorDoc::new(
        id.clone(),
        &["BIND-XI-I01", "SPEC-VI-07"],
        "LSCC decoding (PROFILE G-15): L in 0-7, S in 1-4 (1 Fatal, 2 Recoverable, 3 Warning, \
         4 Informational), CC 00-99, at most 7499. 0 (S = 0), 1500 (S = 5), 7500 and 8100 \
         (no layer 8) are not codes; 7499 is well-formed but not registered.",
    )
    .expected("cases", Json::Array(list))
    .bytes(cbor::to_vec(&Value::Array(items)).at(&id)?))
}

/// Generates the family's files.
pub fn generate() -> Result<Vec<VectorFile>, VectorError> {
    files_of(&[registry()?, decoding()?])
}
