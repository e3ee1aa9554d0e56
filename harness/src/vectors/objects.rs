//! Deterministic CBOR of every protocol object (BIND IV-A, BIND VII; PROFILE G-25, G-26,
//! G-27, G-28), folder `cbor/`:
//!
//! - `cbor/<object>`: every object of `protocol/wire/mtp.cddl`, from the shared world's
//!   transaction ([`super::catalogue`]): the deterministic CBOR (`.cbor`), its diagnostic
//!   notation (`.diag`), and in the JSON its schema-directed JSON form (PROFILE G-27);
//! - `cbor/nondeterministic/<object>-<variant>`: the same objects re-encoded
//!   non-deterministically (unsorted keys, RFC 7049 length-first order, indefinite
//!   lengths, non-shortest integers and floats, duplicate keys, non-deterministic embedded
//!   Terms), each refused with 0101;
//! - `cbor/invalid/<case>`: deterministic CBOR that breaks the schema (wrong MTP-UUID
//!   type, bad classifier, missing quality dimension, ...), each refused with its code;
//! - `cbor/encoding/<topic>`: generic deterministic-encoding cases (floats, integers,
//!   map order, strings and tags).

use serde_json::{Value as Json, json};

use mtp_protocol::attribution::AttributionRecord;
use mtp_protocol::cbor::{self, DecodeErrorKind, Value, diag, mutate};
use mtp_protocol::commitment::Mandate;
use mtp_protocol::discovery::{
    CapabilityManifest, IndexQuery, IndexQueryResponse, OfferRevocation,
};
use mtp_protocol::error_record::{MtpErrorRecord, Notification};
use mtp_protocol::errors::Coded;
use mtp_protocol::primitives::common::CborObject;
use mtp_protocol::primitives::json as pjson;
use mtp_protocol::primitives::{Offer, Receipt, Request, Terms};
use mtp_protocol::taxonomy::Category;
use mtp_protocol::uuid::ObjectType;
use mtp_protocol::verification::DisputeInitiationRecord;

use super::catalogue::{Entry, Signing, catalogue, reencode, sign_multi, sign_single};
use super::doc::{VectorDoc, files_of, generic_json};
use super::world::{f32v, remove_path, set_path, world};
use super::{At, VectorError, VectorFile, ensure, input_error};

/// The family name (folder under `vectors/`).
pub const FAMILY: &str = "cbor";

/// Requirements every object vector supports.
const COMMON: &[&str] = &[
    "SPEC-VII-B-01",
    "SPEC-VII-B-06",
    "BIND-IV-B-01",
    "BIND-IV-B-I01",
    "BIND-VII-01",
];

// ---------------------------------------------------------------------------------------
// JSON forms (PROFILE G-27)
// ---------------------------------------------------------------------------------------

fn typed_json<T: CborObject>(vector: &str, bytes: &[u8]) -> Result<(Json, bool), VectorError> {
    let obj = T::from_cbor(bytes).at(vector)?;
    let j = pjson::to_json(&obj).map_err(|e| input_error(vector, e.to_string()))?;
    let round = pjson::from_json::<T>(&j)
        .ok()
        .and_then(|o| o.try_to_cbor().ok())
        .is_some_and(|b| b == bytes);
    Ok((j, round))
}

/// The JSON form of an object and whether JSON → CBOR gives the same bytes back.
pub fn json_form(vector: &str, rule: &str, bytes: &[u8]) -> Result<(Json, bool), VectorError> {
    match rule {
        "mtp-offer" => typed_json::<Offer>(vector, bytes),
        "mtp-request" => typed_json::<Request>(vector, bytes),
        "mtp-terms" => typed_json::<Terms>(vector, bytes),
        "mtp-receipt" => typed_json::<Receipt>(vector, bytes),
        "mtp-mandate" => typed_json::<Mandate>(vector, bytes),
        "mtp-manifest" => typed_json::<CapabilityManifest>(vector, bytes),
        "attribution-record" => typed_json::<AttributionRecord>(vector, bytes),
        "mtp-error" => typed_json::<MtpErrorRecord>(vector, bytes),
        "mtp-notification" => typed_json::<Notification>(vector, bytes),
        "offer-revocation" => typed_json::<OfferRevocation>(vector, bytes),
        "dispute-initiation-record" => typed_json::<DisputeInitiationRecord>(vector, bytes),
        "index-query" => typed_json::<IndexQuery>(vector, bytes),
        "index-response" => typed_json::<IndexQueryResponse>(vector, bytes),
        _ => {
            let v = cbor::from_slice(bytes).at(vector)?;
            let j = generic_json(vector, &v)?;
            let round = cbor::json::from_json(&j)
                .ok()
                .and_then(|v| cbor::to_vec(&v).ok())
                .is_some_and(|b| b == bytes);
            Ok((j, round))
        }
    }
}

// ---------------------------------------------------------------------------------------
// Valid objects
// ---------------------------------------------------------------------------------------

fn signers_json(e: &Entry) -> Json {
    match &e.signing {
        Signing::Single { party, key } => json!([{
            "agent": party.did_str(),
            "key_id": party.kid(*key),
            "algorithm": party.keys.get(key - 1).map(|k| k.algorithm().label()),
        }]),
        Signing::Multi { signers } => Json::Array(
            signers
                .iter()
                .map(|(p, k)| {
                    json!({
                        "agent": p.did_str(),
                        "key_id": p.kid(*k),
                        "algorithm": p.keys.get(k - 1).map(|x| x.algorithm().label()),
                    })
                })
                .collect(),
        ),
        _ => Json::Array(Vec::new()),
    }
}

fn object_vector(e: &Entry) -> Result<VectorDoc, VectorError> {
    let id = format!("{FAMILY}/{}", e.name);
    let bytes = cbor::to_vec(&e.value).at(&id)?;
    cbor::check_deterministic(&bytes).at(&id)?;
    let (j, round) = json_form(&id, e.rule, &bytes)?;
    let mut reqs: Vec<&'static str> = e.requirements.clone();
    for r in COMMON {
        if !reqs.contains(r) {
            reqs.push(r);
        }
    }
    if round {
        reqs.push("BIND-IV-C-01");
        reqs.push("BIND-IV-C-I01");
    }
    let mut doc = VectorDoc::new(id.clone(), &reqs, &e.description)
        .input("rule", e.rule)
        .input("json", j)
        .input("signers", signers_json(e))
        .expected("valid", true)
        .expected("json_round_trip", round);
    if let Some(f) = e.signature_field() {
        let input = super::world::signing_input(&id, &e.value, f)?;
        doc = doc
            .expected(
                "signing_input_sha256",
                hex::encode(mtp_protocol::crypto::sha256(&input)),
            )
            .expected("signature_field", f);
    }
    if let Some(codec) = e.codec {
        let mut ops = vec!["encode", "parse"];
        if e.signature_field().is_some() {
            ops.push("sign");
        }
        doc = doc.codec(json!({"type": codec, "operations": ops, "valid": true}));
    }
    Ok(doc.bytes(bytes))
}

// ---------------------------------------------------------------------------------------
// Non-deterministic variants
// ---------------------------------------------------------------------------------------

type Mutation = fn(&[u8]) -> Option<Vec<u8>>;

const MUTATIONS: &[(&str, Mutation, DecodeErrorKind, &str, &str)] = &[
    (
        "unsorted-keys",
        mutate::reorder_map_keys,
        DecodeErrorKind::UnsortedKeys,
        "BIND-IV-A-02",
        "the first two entries of the top-level map swapped",
    ),
    (
        "length-first-order",
        mutate::length_first_order,
        DecodeErrorKind::UnsortedKeys,
        "BIND-IV-A-02",
        "every map in RFC 7049 length-first canonical order instead of bytewise order",
    ),
    (
        "indefinite-length",
        mutate::indefinite_length,
        DecodeErrorKind::IndefiniteLength,
        "BIND-IV-A-03",
        "the top-level map encoded with indefinite length (0xbf ... 0xff)",
    ),
    (
        "non-shortest-int",
        mutate::non_shortest_int,
        DecodeErrorKind::NonShortestHead,
        "BIND-IV-A-01",
        "the top-level map's length head one width wider than necessary",
    ),
    (
        "non-shortest-float",
        mutate::non_shortest_float,
        DecodeErrorKind::NonShortestFloat,
        "BIND-IV-A-04",
        "the first float narrower than binary64 encoded one width wider",
    ),
    (
        "duplicate-key",
        mutate::duplicate_key,
        DecodeErrorKind::DuplicateKey,
        "BIND-IV-A-05",
        "the first map entry repeated",
    ),
];

fn nondeterministic(
    base: &Entry,
    name: &str,
    bytes: Vec<u8>,
    kind: DecodeErrorKind,
    req: &'static str,
    what: &str,
) -> Result<VectorDoc, VectorError> {
    let id = format!("{FAMILY}/nondeterministic/{}-{name}", base.name);
    let err = match cbor::from_slice(&bytes) {
        Ok(_) => {
            return Err(VectorError::SelfCheck {
                vector: id,
                what: "the variant decodes strictly".into(),
            });
        }
        Err(e) => e,
    };
    ensure(&id, err.kind == kind, || {
        format!("decoded as {:?}", err.kind)
    })?;
    let code = err.code().as_u16();
    ensure(&id, code == 101, || format!("code {code}"))?;
    if let Some(r) = reencode(base.rule, &bytes) {
        let e = match r {
            Ok(_) => {
                return Err(VectorError::SelfCheck {
                    vector: id,
                    what: "the typed parser accepts the variant".into(),
                });
            }
            Err(e) => e,
        };
        ensure(&id, e.code().as_u16() == 101, || {
            format!("typed code {}", e.code())
        })?;
    }
    let lenient = cbor::from_slice_lenient(&bytes).at(&id)?;
    let canonical = cbor::to_vec(&lenient.canonical());
    let mut reqs = vec![
        req,
        "BIND-IV-A-06",
        "SPEC-VII-B-02",
        "SPEC-II-C-06",
        "SPEC-III-D-1-04",
        "BIND-XI-I02",
    ];
    if base.rule == "mtp-mandate" {
        reqs.push("SPEC-III-D-1-03");
    }
    if base.rule == "mtp-terms" {
        reqs.push("SPEC-II-C-05");
    }
    let mut doc = VectorDoc::new(
        id,
        &reqs,
        &format!(
            "Non-deterministic encoding of cbor/{} ({what}): well-formed CBOR of the same \
             logical object, refused by a strict decoder with 0101 Deterministic Serialization \
             Mismatch (BIND IV-A; PROFILE G-14, G-25).",
            base.name
        ),
    )
    .input("base", format!("{FAMILY}/{}", base.name))
    .input("mutation", name)
    .expected("valid", false)
    .expected("decode_error", format!("{kind:?}"))
    .expected("error_offset", err.offset)
    .expected("code", code);
    if let Ok(c) = canonical {
        doc = doc.expected(
            "deterministic_reencoding_sha256",
            hex::encode(mtp_protocol::crypto::sha256(&c)),
        );
    }
    if let Some(codec) = base.codec {
        doc = doc.codec(json!({
            "type": codec,
            "operations": ["parse"],
            "valid": false,
            "code": code,
        }));
    }
    Ok(doc.bytes(bytes))
}

// ---------------------------------------------------------------------------------------
// Schema violations
// ---------------------------------------------------------------------------------------

/// One schema-violating object: `base` changed by `change`, re-signed, refused with `code`.
struct Invalid {
    name: String,
    base: &'static str,
    change: Box<dyn Fn(&Value) -> Value>,
    code: u16,
    /// Other codes an IUT may use for the condition (`docs/requirements.yaml` test ideas).
    also: &'static [u16],
    requirements: Vec<&'static str>,
    what: String,
}

fn invalid_vector(inv: &Invalid) -> Result<VectorDoc, VectorError> {
    let cat = catalogue()?;
    let base = cat.get(inv.base)?;
    let id = format!("{FAMILY}/invalid/{}", inv.name);
    let changed = (inv.change)(&base.unsigned());
    let signed = match &base.signing {
        Signing::Single { party, key } => sign_single(&id, &changed, party, *key)?,
        Signing::Multi { signers } => {
            let s: Vec<(&super::world::Party, usize)> =
                signers.iter().map(|(p, k)| (*p, *k)).collect();
            sign_multi(&id, &changed, &s)?
        }
        _ => changed,
    };
    let bytes = cbor::to_vec(&signed).at(&id)?;
    let err = match reencode(base.rule, &bytes) {
        Some(Ok(_)) => {
            return Err(VectorError::SelfCheck {
                vector: id,
                what: "the typed parser accepts the invalid object".into(),
            });
        }
        Some(Err(e)) => e,
        None => return Err(input_error(&id, "no typed parser for the base object")),
    };
    let code = err.code().as_u16();
    ensure(&id, code == inv.code, || {
        format!("refused with {code}, expected {}: {err}", inv.code)
    })?;
    let mut doc = VectorDoc::new(
        id,
        &[&inv.requirements[..], &["SPEC-II-02", "BIND-VII-01"]].concat(),
        &format!(
            "cbor/{} with {}: deterministic CBOR with a valid signature, but the object breaks \
             the schema and is refused with {:04}.",
            base.name, inv.what, code
        ),
    )
    .input("base", format!("{FAMILY}/{}", base.name))
    .expected("valid", false)
    .expected("code", code)
    .expected("error", err.to_string());
    if let Some(req) = err.requirement() {
        doc = doc.expected("error_requirement", req);
    }
    if let Some(codec) = base.codec {
        let mut c = json!({
            "type": codec,
            "operations": ["encode", "parse"],
            "valid": false,
            "code": code,
        });
        if !inv.also.is_empty() {
            c["also"] = json!(inv.also);
        }
        doc = doc.codec(c);
    }
    Ok(doc.bytes(bytes))
}

fn invalid_cases() -> Result<Vec<Invalid>, VectorError> {
    let w = world()?;
    let cat = catalogue()?;
    let wrong = |ty: ObjectType, label: &str| -> Result<Value, VectorError> {
        Ok(w.id(ty, &w.provider, 0, label)?.to_value())
    };
    let request_type_id = wrong(ObjectType::Request, "invalid/wrong-type")?;
    let offer_type_id = wrong(ObjectType::Offer, "invalid/wrong-type")?;
    let offer_text_id = Value::text(cat.offer_id.to_string());
    let tag = |s: &str| Value::Tag(0, Box::new(Value::text(s)));
    let set = |path: &'static str, v: Value| -> Box<dyn Fn(&Value) -> Value> {
        Box::new(move |x: &Value| set_path(x, path, v.clone()))
    };
    let mut out = vec![
        Invalid {
            name: "offer-id-wrong-type".into(),
            base: "offer",
            change: set("offer_id", request_type_id.clone()),
            code: 102,
            also: &[],
            requirements: vec!["BIND-VII-A-01", "BIND-IX-I03"],
            what: "offer_id of type 0x2 (Request)".into(),
        },
        Invalid {
            name: "offer-id-text".into(),
            base: "offer",
            change: set("offer_id", offer_text_id),
            code: 102,
            also: &[],
            requirements: vec!["BIND-IX-01", "BIND-VII-A-01"],
            what: "offer_id as its 67-character text form instead of a 32-byte byte string".into(),
        },
        Invalid {
            name: "offer-agent-not-did-mtp".into(),
            base: "offer",
            change: set("agent_id", Value::text("did:web:provider.example")),
            code: 103,
            also: &[],
            requirements: vec!["BIND-VII-A-02", "BIND-II-A-I01"],
            what: "agent_id did:web:provider.example (not a did:mtp)".into(),
        },
        Invalid {
            name: "offer-value-type-unknown-category".into(),
            base: "offer",
            change: set("value_type", Value::text("energy.solar")),
            code: 103,
            also: &[],
            requirements: vec![
                "BIND-VII-A-03",
                "BIND-VIII-I01",
                "BIND-VIII-I02",
                "SPEC-V-I01",
            ],
            what: "value_type energy.solar (not one of the nine categories)".into(),
        },
        Invalid {
            name: "offer-value-type-empty-segment".into(),
            base: "offer",
            change: set("value_type", Value::text("inference..text")),
            code: 103,
            also: &[],
            requirements: vec!["BIND-VII-A-03", "BIND-VIII-I01"],
            what: "value_type inference..text (empty segment)".into(),
        },
        Invalid {
            name: "offer-description-4097".into(),
            base: "offer",
            change: set("description.human", Value::text("é".repeat(4097))),
            code: 103,
            also: &[],
            requirements: vec!["BIND-VII-A-04"],
            what: "description.human of 4,097 characters".into(),
        },
        Invalid {
            name: "offer-not-before-offset".into(),
            base: "offer",
            change: set(
                "validity_window.not_before",
                tag("2026-03-06T13:00:00+01:00"),
            ),
            code: 103,
            also: &[],
            requirements: vec!["BIND-VII-A-05"],
            what: "validity_window.not_before with a +01:00 offset instead of Z".into(),
        },
        Invalid {
            name: "offer-not-before-untagged".into(),
            base: "offer",
            change: set(
                "validity_window.not_before",
                Value::text("2026-03-06T12:00:00Z"),
            ),
            code: 103,
            also: &[],
            requirements: vec!["BIND-VII-A-05"],
            what: "validity_window.not_before as plain text without tag 0 (PROFILE G-25)".into(),
        },
        Invalid {
            name: "offer-validity-reversed".into(),
            base: "offer",
            change: set("validity_window.not_before", tag("2026-12-31T00:00:00Z")),
            code: 103,
            also: &[],
            requirements: vec!["BIND-VII-A-05"],
            what: "validity_window.not_before after not_after".into(),
        },
        Invalid {
            name: "offer-price-nan".into(),
            base: "offer",
            change: set("terms_template.price.amount", Value::Float(f64::NAN)),
            code: 103,
            also: &[],
            requirements: vec!["BIND-IV-A-04"],
            what: "terms_template.price.amount NaN (PROFILE G-13)".into(),
        },
        Invalid {
            name: "offer-accuracy-integer".into(),
            base: "offer",
            change: set(
                "terms_template.quality.accuracy_threshold",
                Value::Integer(1),
            ),
            code: 103,
            also: &[],
            requirements: vec!["BIND-VIII-B-01"],
            what: "quality.accuracy_threshold as the integer 1 instead of a float (PROFILE G-43)"
                .into(),
        },
        Invalid {
            name: "request-id-wrong-type".into(),
            base: "request",
            change: set("request_id", offer_type_id.clone()),
            code: 102,
            also: &[],
            requirements: vec!["BIND-VII-B-01", "BIND-IX-I03"],
            what: "request_id of type 0x1 (Offer)".into(),
        },
        Invalid {
            name: "request-proof-unknown-type".into(),
            base: "request",
            change: set(
                "authority_attestation.proof",
                Value::map([
                    ("type", Value::text("jwt")),
                    ("presentation", Value::text("eyJ...")),
                ]),
            ),
            code: 103,
            also: &[1101],
            requirements: vec!["BIND-VII-B-03"],
            what: "an authority proof of type jwt (neither vc_presentation nor zk_range)".into(),
        },
        Invalid {
            name: "request-accuracy-float64".into(),
            base: "request",
            change: set("constraints.accuracy_threshold", Value::Float(0.92)),
            code: 103,
            also: &[],
            requirements: vec!["BIND-IV-A-04"],
            what: "constraints.accuracy_threshold 0.92 as binary64 (not a binary32 value, \
                   PROFILE G-13)"
                .into(),
        },
        Invalid {
            name: "terms-id-wrong-type".into(),
            base: "terms",
            change: set("terms_id", offer_type_id.clone()),
            code: 102,
            also: &[],
            requirements: vec!["BIND-VII-C-01", "BIND-IX-I03"],
            what: "terms_id of type 0x1 (Offer)".into(),
        },
        Invalid {
            name: "terms-one-participant".into(),
            base: "terms",
            change: Box::new(|x: &Value| {
                let first = x
                    .get("participants")
                    .and_then(Value::as_array)
                    .and_then(|a| a.first())
                    .cloned()
                    .unwrap_or(Value::Null);
                set_path(x, "participants", Value::Array(vec![first]))
            }),
            code: 103,
            also: &[],
            requirements: vec!["BIND-VII-C-02"],
            what: "a single participant".into(),
        },
        Invalid {
            name: "terms-unknown-role".into(),
            base: "terms",
            change: Box::new(|x: &Value| {
                let ps: Vec<Value> = x
                    .get("participants")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .enumerate()
                            .map(|(i, p)| {
                                if i == 1 {
                                    set_path(p, "role", Value::text("broker"))
                                } else {
                                    p.clone()
                                }
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                set_path(x, "participants", Value::Array(ps))
            }),
            code: 103,
            also: &[],
            requirements: vec!["BIND-VII-C-02"],
            what: "a participant with role broker".into(),
        },
        Invalid {
            name: "terms-price-unit-lowercase".into(),
            base: "terms",
            change: set("price.unit", Value::text("usd")),
            code: 103,
            also: &[],
            requirements: vec!["BIND-VII-C-03"],
            what: "price.unit usd (lower case)".into(),
        },
        Invalid {
            name: "terms-price-unit-unknown".into(),
            base: "terms",
            change: set("price.unit", Value::text("XYZ1")),
            code: 103,
            also: &[],
            requirements: vec!["BIND-VII-C-03"],
            what: "price.unit XYZ1 (not ISO 4217, MTP_COMPUTE_CREDIT, RECIPROCAL or ext:)".into(),
        },
        Invalid {
            name: "receipt-id-wrong-type".into(),
            base: "receipt",
            change: set("receipt_id", offer_type_id),
            code: 102,
            also: &[],
            requirements: vec!["BIND-VII-D-01", "BIND-IX-I03"],
            what: "receipt_id of type 0x1 (Offer)".into(),
        },
        Invalid {
            name: "receipt-method-unknown".into(),
            base: "receipt",
            change: set("verification.method", Value::text("computation_based")),
            code: 103,
            also: &[],
            requirements: vec!["BIND-VII-D-03"],
            what: "verification.method computation_based".into(),
        },
        Invalid {
            name: "receipt-partial-without-block".into(),
            base: "receipt-partial",
            change: Box::new(|x: &Value| remove_path(x, "partial_fulfillment")),
            code: 103,
            also: &[],
            requirements: vec!["BIND-VII-D-01"],
            what: "outcome partially_fulfilled without partial_fulfillment (PROFILE G-22)".into(),
        },
        Invalid {
            name: "receipt-ratio-one".into(),
            base: "receipt-partial",
            change: set("partial_fulfillment.fulfillment_ratio", f32v(1.0)),
            code: 103,
            also: &[],
            requirements: vec!["SPEC-III-E-2-03"],
            what: "fulfillment_ratio 1.0 (must lie strictly between 0 and 1, PROFILE G-22)".into(),
        },
        Invalid {
            name: "mandate-precondition-free-text".into(),
            base: "mandate",
            change: Box::new(|x: &Value| {
                set_path(
                    x,
                    "preconditions",
                    Value::Array(vec![Value::map([
                        ("id", Value::text("free-text")),
                        (
                            "predicate",
                            Value::text("when the earlier delivery arrived"),
                        ),
                        (
                            "expires",
                            Value::Tag(0, Box::new(Value::text("2026-03-07T00:00:00Z"))),
                        ),
                    ])]),
                )
            }),
            code: 103,
            also: &[],
            requirements: vec!["SPEC-III-D-2-02"],
            what: "a free-text precondition instead of a machine-evaluable predicate".into(),
        },
        Invalid {
            name: "mandate-empty-preconditions".into(),
            base: "mandate",
            change: set("preconditions", Value::Array(Vec::new())),
            code: 103,
            also: &[],
            requirements: vec!["SPEC-III-D-2-02"],
            what: "preconditions [] (an unconditional Mandate omits the key, PROFILE G-01)".into(),
        },
        Invalid {
            name: "mandate-expiration-after-terms".into(),
            base: "mandate",
            change: set("expiration", tag("2026-03-20T00:00:00Z")),
            code: 103,
            also: &[],
            requirements: vec!["SPEC-III-D-1-02"],
            what: "expiration after terms.expiration (PROFILE G-19)".into(),
        },
        Invalid {
            name: "mtp-error-severity-5".into(),
            base: "mtp-error",
            change: set("code", Value::Integer(1500)),
            code: 103,
            also: &[],
            requirements: vec!["BIND-XI-I01"],
            what: "code 1500 (severity digit 5 is not a severity, PROFILE G-15)".into(),
        },
        Invalid {
            name: "manifest-version-not-semver".into(),
            base: "manifest",
            change: set("manifest_version", Value::text("1.0")),
            code: 103,
            also: &[],
            requirements: vec!["SPEC-XII-I01"],
            what: "manifest_version 1.0 (not Major.Minor.Patch)".into(),
        },
    ];
    // One missing mandatory quality dimension per category (PROFILE G-43).
    for c in Category::ALL {
        let Some(first) = c.mandatory_dimensions().first() else {
            continue;
        };
        let dim = first.name;
        let base: &'static str = match c {
            Category::PhysicalGoods => "offer-physical-goods",
            Category::DigitalGoods => "offer-digital-goods",
            Category::Services => "offer-services",
            Category::Compute => "offer-compute",
            Category::Inference => "offer-inference",
            Category::Information => "offer-information",
            Category::Communication => "offer-communication",
            Category::Logistics => "offer-logistics",
            Category::Compliance => "offer-compliance",
        };
        let path = format!("terms_template.quality.{dim}");
        out.push(Invalid {
            name: format!("{base}-missing-{}", dim.replace('_', "-")),
            base,
            change: Box::new(move |x: &Value| remove_path(x, &path)),
            code: 103,
            also: &[],
            requirements: vec![c.quality_requirement(), "SPEC-V-I01"],
            what: format!("terms_template.quality without the mandatory dimension {dim}"),
        });
    }
    Ok(out)
}

/// A Mandate whose embedded Terms bytes are not deterministic (0101 through the nesting).
fn embedded_terms() -> Result<VectorDoc, VectorError> {
    let cat = catalogue()?;
    let base = cat.get("mandate")?;
    let id = format!("{FAMILY}/nondeterministic/mandate-embedded-terms-unsorted");
    let bad_terms = mutate::reorder_map_keys(&cat.terms_bytes)
        .ok_or_else(|| input_error(&id, "terms have no map to reorder"))?;
    let changed =
        super::world::with_entry(&base.unsigned(), "terms", Some(Value::Bytes(bad_terms)));
    let (p, r) = {
        let w = world()?;
        (&w.provider, &w.requester)
    };
    let signed = sign_multi(&id, &changed, &[(p, 1), (r, 1)])?;
    let bytes = cbor::to_vec(&signed).at(&id)?;
    cbor::check_deterministic(&bytes).at(&id)?;
    let err = match Mandate::from_cbor(&bytes) {
        Ok(_) => {
            return Err(VectorError::SelfCheck {
                vector: id,
                what: "a Mandate with non-deterministic Terms is accepted".into(),
            });
        }
        Err(e) => e,
    };
    let code = err.code().as_u16();
    ensure(&id, code == 101, || format!("code {code}: {err}"))?;
    Ok(VectorDoc::new(
        id,
        &[
            "SPEC-III-D-1-03",
            "SPEC-III-D-1-04",
            "SPEC-II-C-05",
            "SPEC-II-C-06",
            "BIND-IV-A-02",
            "BIND-IV-A-06",
        ],
        "A Mandate that is itself deterministic CBOR (and validly signed) but whose embedded \
         `terms` bytes have two keys swapped: the Terms have exactly one valid serialization, \
         so the Mandate is refused with 0101 (PROFILE G-01).",
    )
    .input("base", format!("{FAMILY}/mandate"))
    .expected("valid", false)
    .expected("code", code)
    .expected("error", err.to_string())
    .codec(json!({"type": "mandate", "operations": ["parse"], "valid": false, "code": code}))
    .bytes(bytes))
}

// ---------------------------------------------------------------------------------------
// Generic encoding cases
// ---------------------------------------------------------------------------------------

fn encoding_vector(
    name: &str,
    description: &str,
    reqs: &[&'static str],
    cases: Vec<(&str, Value)>,
) -> Result<VectorDoc, VectorError> {
    let id = format!("{FAMILY}/encoding/{name}");
    let mut items = Vec::new();
    let mut list = Vec::new();
    for (label, v) in cases {
        let bytes = cbor::to_vec(&v).at(&id)?;
        let back = cbor::from_slice(&bytes).at(&id)?;
        ensure(
            &id,
            cbor::to_vec(&back).ok().as_ref() == Some(&bytes),
            || format!("{label}: does not round-trip"),
        )?;
        let d = diag::to_diag(&bytes).at(&id)?;
        let mut case = json!({"case": label, "diagnostic": d, "cbor": hex::encode(&bytes)});
        if let Some(lf) = mutate::length_first_order(&bytes) {
            case["rfc7049_length_first"] = Json::String(hex::encode(lf));
        }
        list.push(case);
        items.push(v);
    }
    let all = cbor::to_vec(&Value::Array(items)).at(&id)?;
    Ok(VectorDoc::new(id, reqs, description)
        .expected("cases", Json::Array(list))
        .bytes(all))
}

fn encoding_vectors() -> Result<Vec<VectorDoc>, VectorError> {
    let f = |x: f64| Value::Float(x);
    let i = |x: i128| Value::Integer(x);
    let floats = encoding_vector(
        "floats",
        "Floats at the shortest width that preserves the value (RFC 8949 §4.2.1, BIND-IV-A-04, \
         PROFILE G-13): 1.5 -> f9 3e00, binary32 0.92 -> fa 3f6b851f, 0.08 -> binary64, -0.0 \
         keeps its sign, subnormal binary16, infinities and the canonical NaN f9 7e00. The \
         .cbor file is the array of all cases; the diagnostic notation carries the width \
         (_1 / _2 / _3, PROFILE G-28).",
        &[
            "BIND-IV-A-04",
            "SPEC-VII-B-01",
            "BIND-IV-B-01",
            "BIND-IV-B-I01",
            "BIND-IV-A-06",
        ],
        vec![
            ("0.0", f(0.0)),
            ("-0.0", f(-0.0)),
            ("1.0", f(1.0)),
            ("1.5", f(1.5)),
            ("0.5", f(0.5)),
            ("65504.0 (largest binary16)", f(65504.0)),
            ("100000.0", f(100_000.0)),
            ("binary32 0.92", f32v(0.92)),
            ("binary32 0.75", f32v(0.75)),
            ("0.08", f(0.08)),
            ("1.1", f(1.1)),
            (
                "5.960464477539063e-8 (binary16 subnormal)",
                f(5.960_464_477_539_063e-8),
            ),
            (
                "3.4028234663852886e38 (largest binary32)",
                f(3.402_823_466_385_288_6e38),
            ),
            ("1.0e300", f(1.0e300)),
            ("Infinity", f(f64::INFINITY)),
            ("-Infinity", f(f64::NEG_INFINITY)),
            ("NaN", f(f64::NAN)),
        ],
    )?;
    let ints = encoding_vector(
        "integers",
        "Integers with the shortest head (RFC 8949 §4.2.1): the 1/2/4/8-byte boundaries of \
         major types 0 and 1, up to 2^64-1 and down to -2^64. Integral numbers are integers, \
         never floats (numeric reduction, PROFILE G-13).",
        &["SPEC-VII-B-01", "BIND-IV-A-06", "BIND-IV-B-01"],
        vec![
            ("0", i(0)),
            ("23", i(23)),
            ("24", i(24)),
            ("255", i(255)),
            ("256", i(256)),
            ("65535", i(65_535)),
            ("65536", i(65_536)),
            ("4294967295", i(4_294_967_295)),
            ("4294967296", i(4_294_967_296)),
            ("18446744073709551615", i(i128::from(u64::MAX))),
            ("-1", i(-1)),
            ("-24", i(-24)),
            ("-25", i(-25)),
            ("-256", i(-256)),
            ("-257", i(-257)),
            ("-18446744073709551616", i(-(1i128 << 64))),
            ("error code 0101 as an integer (PROFILE G-15)", i(101)),
        ],
    )?;
    let maps = encoding_vector(
        "maps",
        "Map entries in bytewise lexicographic order of the encoded keys (BIND-IV-A-02), \
         definite lengths, no duplicates: \"b\" sorts before \"aa\" (shorter encoding first); \
         with mixed key types the bytewise order (1000 = 19 03e8 before -1 = 20 before h'01' \
         = 41 01 before \"u\" = 61 75) differs from the RFC 7049 length-first order, recorded \
         as rfc7049_length_first (not deterministic under RFC 8949 §4.2.1).",
        &[
            "BIND-IV-A-02",
            "BIND-IV-A-03",
            "BIND-IV-A-05",
            "SPEC-VII-B-01",
            "BIND-IV-A-06",
            "SPEC-VII-B-02",
        ],
        vec![
            (
                "text keys of different lengths",
                Value::map([
                    ("aa", i(1)),
                    ("b", i(2)),
                    ("terms_id", i(3)),
                    ("price", i(4)),
                ]),
            ),
            (
                "mixed key types",
                Value::Map(vec![
                    (Value::text("u"), i(1)),
                    (i(1000), i(2)),
                    (i(-1), i(3)),
                    (Value::Bytes(vec![1]), i(4)),
                ]),
            ),
            (
                "nested maps",
                Value::map([
                    ("z", Value::map([("b", i(1)), ("a", i(2))])),
                    (
                        "a",
                        Value::Array(vec![Value::map([("y", i(1)), ("x", i(2))])]),
                    ),
                ]),
            ),
            ("empty map", Value::Map(Vec::new())),
        ],
    )?;
    let strings = encoding_vector(
        "strings-and-tags",
        "Definite-length byte and text strings (UTF-8), arrays, and tag 0 around the canonical \
         tdate text (the only tag in MTP objects, PROFILE G-25).",
        &[
            "BIND-IV-A-03",
            "SPEC-VII-B-01",
            "BIND-IV-B-01",
            "BIND-VII-A-05",
        ],
        vec![
            ("empty text", Value::text("")),
            ("text", Value::text("IETF")),
            ("non-ASCII text", Value::text("Grüße")),
            ("empty bytes", Value::Bytes(Vec::new())),
            ("bytes", Value::Bytes(vec![1, 2, 3, 4])),
            (
                "24-byte text (1-byte length head)",
                Value::text("x".repeat(24)),
            ),
            (
                "tdate",
                Value::Tag(0, Box::new(Value::text("2026-03-06T12:00:00Z"))),
            ),
            (
                "tdate with fraction",
                Value::Tag(0, Box::new(Value::text("2026-03-06T14:22:31.391Z"))),
            ),
            ("empty array", Value::Array(Vec::new())),
            (
                "booleans and null",
                Value::Array(vec![Value::Bool(false), Value::Bool(true), Value::Null]),
            ),
        ],
    )?;
    Ok(vec![floats, ints, maps, strings])
}

/// Generates the family's files.
pub fn generate() -> Result<Vec<VectorFile>, VectorError> {
    let cat = catalogue()?;
    let mut docs = Vec::new();
    for e in &cat.entries {
        docs.push(object_vector(e)?);
    }
    for base in [
        "offer",
        "offer-extension",
        "request",
        "terms",
        "receipt-partial",
        "mandate",
    ] {
        let e = cat.get(base)?;
        let bytes = cbor::to_vec(&e.value).at(base)?;
        for (name, m, kind, req, what) in MUTATIONS {
            if let Some(b) = m(&bytes) {
                docs.push(nondeterministic(e, name, b, kind.clone(), req, what)?);
            }
        }
    }
    docs.push(embedded_terms()?);
    for inv in invalid_cases()? {
        docs.push(invalid_vector(&inv)?);
    }
    docs.extend(encoding_vectors()?);
    files_of(&docs)
}
