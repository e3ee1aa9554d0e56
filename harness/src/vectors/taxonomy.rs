//! Value Type taxonomy vectors (SPEC V, BIND VIII; PROFILE G-07, G-43), folder
//! `taxonomy/`: valid and malformed classifiers, and the mandatory quality dimensions of
//! the nine categories with their types.

use serde_json::{Value as Json, json};

use mtp_protocol::cbor::{self, Value};
use mtp_protocol::errors::Coded;
use mtp_protocol::taxonomy::{Category, Classifier, Dimension, DimensionKind};

use super::doc::{VectorDoc, files_of};
use super::{At, VectorError, VectorFile, ensure};

/// The family name (folder under `vectors/`).
pub const FAMILY: &str = "taxonomy";

fn classifiers() -> Result<Vec<VectorDoc>, VectorError> {
    let valid = [
        "inference",
        "inference.text_generation",
        "compute.gpu.h100",
        "physical_goods.electronics.laptops",
        "Inference.Text_Generation",
        "compliance.a.b.c.d.e.f.g",
    ];
    let invalid = [
        "",
        "energy.solar",
        "inference..text",
        ".inference",
        "inference.",
        "inference.text-generation",
        "inference text",
        "compliance.a.b.c.d.e.f.g.h",
    ];
    let id = format!("{FAMILY}/classifiers-valid");
    let mut ok = Vec::new();
    for s in valid {
        let c = Classifier::parse(s).map_err(|e| super::input_error(&id, format!("{s}: {e}")))?;
        ok.push(json!({
            "classifier": s,
            "category": c.category().name(),
            "normalized": c.normalized(),
            "canonical": c.is_canonical(),
            "segments": c.segments(),
        }));
    }
    let long = format!("inference.{}", "a".repeat(247));
    ensure(&id, Classifier::parse(&long).is_err(), || {
        "257 characters accepted".into()
    })?;
    let bad_id = format!("{FAMILY}/classifiers-invalid");
    let mut bad = Vec::new();
    for s in invalid.iter().map(|s| (*s).to_owned()).chain([long]) {
        let e = match Classifier::parse(&s) {
            Ok(_) => {
                return Err(VectorError::SelfCheck {
                    vector: bad_id,
                    what: format!("{s} parses"),
                });
            }
            Err(e) => e,
        };
        bad.push(json!({"classifier": s, "error": e.to_string(), "code": e.code().as_u16()}));
    }
    let texts = |xs: &[Json]| {
        Value::Array(
            xs.iter()
                .filter_map(|x| x.get("classifier").and_then(Json::as_str))
                .map(Value::text)
                .collect(),
        )
    };
    Ok(vec![
        VectorDoc::new(
            id.clone(),
            &[
                "SPEC-V-I01",
                "BIND-VIII-I01",
                "BIND-VIII-I02",
                "BIND-VII-A-03",
            ],
            "Valid Value Type classifiers (PROFILE G-07): 1-8 dot-separated segments of \
             [a-z0-9_] (compared ASCII-lowercased; producers emit lowercase, so the mixed-case \
             example is accepted but not canonical), at most 256 characters, the first segment \
             one of the nine categories.",
        )
        .expected("cases", Json::Array(ok.clone()))
        .bytes(cbor::to_vec(&texts(&ok)).at(&id)?),
        VectorDoc::new(
            bad_id.clone(),
            &[
                "SPEC-V-I01",
                "BIND-VIII-I01",
                "BIND-VIII-I02",
                "BIND-VII-A-03",
            ],
            "Malformed classifiers, each refused (0103 where a classifier is a field): empty, \
             unknown category, empty segments, hyphen, space, nine segments, 257 characters.",
        )
        .expected("cases", Json::Array(bad.clone()))
        .bytes(cbor::to_vec(&texts(&bad)).at(&bad_id)?),
    ])
}

fn kind_json(k: &DimensionKind) -> Json {
    match k {
        DimensionKind::Enum(values) => json!({"type": "enum", "values": values}),
        DimensionKind::Object(members) => json!({
            "type": "object",
            "members": members.iter().map(dim_json).collect::<Vec<_>>(),
        }),
        other => json!({"type": other.describe()}),
    }
}

fn dim_json(d: &Dimension) -> Json {
    json!({"name": d.name, "kind": kind_json(&d.kind)})
}

fn dimensions() -> Result<VectorDoc, VectorError> {
    let id = format!("{FAMILY}/quality-dimensions");
    let mut out = Vec::new();
    let mut items = Vec::new();
    let mut reqs: Vec<&'static str> = vec!["SPEC-V-I01", "BIND-VIII-I02"];
    for c in Category::ALL {
        reqs.push(c.quality_requirement());
        out.push(json!({
            "category": c.name(),
            "requirement": c.quality_requirement(),
            "dimensions": c.mandatory_dimensions().iter().map(dim_json).collect::<Vec<_>>(),
        }));
        items.push(Value::map([
            ("category", Value::text(c.name())),
            (
                "dimensions",
                Value::Array(
                    c.mandatory_dimensions()
                        .iter()
                        .map(|d| Value::text(d.name))
                        .collect(),
                ),
            ),
        ]));
    }
    Ok(VectorDoc::new(
        id.clone(),
        &reqs,
        "The mandatory quality dimensions of each of the nine categories as keys of \
         terms.quality with their types (PROFILE G-43; BIND VIII-A..D). Fractions are CBOR \
         floats in [0, 1], percentages numbers in [0, 100], durations ISO 8601, formats MIME \
         types. The cbor/offer-<category> vectors carry them; cbor/invalid/offer-<category>-\
         missing-<dimension> lack one (0103).",
    )
    .expected("categories", Json::Array(out))
    .bytes(cbor::to_vec(&Value::Array(items)).at(&id)?))
}

/// Generates the family's files.
pub fn generate() -> Result<Vec<VectorFile>, VectorError> {
    let mut docs = classifiers()?;
    docs.push(dimensions()?);
    files_of(&docs)
}
