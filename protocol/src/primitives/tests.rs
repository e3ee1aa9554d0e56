//! Unit tests: one failing example per validation rule (path + requirement id), and the
//! SPEC II informative examples as negative vectors (PROFILE G-11, G-12).

use super::common::*;
use super::json::{from_json, to_json};
use super::offer::Offer;
use super::receipt::Receipt;
use super::request::Request;
use super::terms::Terms;
use crate::cbor::Value;
use crate::errors::{Coded, ErrorCode};
use crate::identity::Did;
use crate::taxonomy::Category;
use crate::uuid::{MtpUuid, ObjectType};

fn did(n: u8) -> String {
    Did::from_digest([n; 32]).as_str().to_owned()
}

fn id(ty: ObjectType) -> Value {
    MtpUuid::new(ty, 1_772_755_200_000_000_000, [1; 6], [2; 17]).to_value()
}

fn t(s: &str) -> Value {
    Value::Tag(0, Box::new(Value::text(s)))
}

fn sig() -> Value {
    Value::map([
        ("algorithm", Value::text("ML-DSA-65")),
        ("value", Value::bytes(vec![1, 2, 3])),
    ])
}

fn price(amount: Value, unit: &str) -> Value {
    Value::map([("amount", amount), ("unit", Value::text(unit))])
}

fn inference_quality() -> Value {
    Value::map([
        ("accuracy_threshold", Value::Float(0.75)),
        ("max_latency_ms", Value::Integer(3000)),
        ("output_format", Value::text("text/plain")),
        ("model_version", Value::text("m-1")),
    ])
}

fn participants(n: u8) -> Value {
    Value::Array(
        (0..n)
            .map(|i| {
                Value::map([
                    ("agent_id", Value::text(did(i + 1))),
                    (
                        "role",
                        Value::text(if i == 0 { "provider" } else { "requester" }),
                    ),
                ])
            })
            .collect(),
    )
}

fn offer() -> Value {
    Value::map([
        ("offer_id", id(ObjectType::Offer)),
        ("agent_id", Value::text(did(1))),
        ("value_type", Value::text("inference.text_generation")),
        (
            "description",
            Value::map([
                ("human", Value::text("GPU text generation")),
                ("machine", Value::map::<&str>([])),
            ]),
        ),
        (
            "terms_template",
            Value::map([
                ("price", price(Value::Integer(89), "USD")),
                (
                    "delivery",
                    Value::map([
                        ("earliest", Value::text("P2D")),
                        ("latest", t("2026-06-01T00:00:00Z")),
                    ]),
                ),
                ("quality", inference_quality()),
            ]),
        ),
        (
            "validity_window",
            Value::map([
                ("not_before", t("2026-03-06T00:00:00Z")),
                ("not_after", t("2026-06-06T00:00:00Z")),
            ]),
        ),
        ("non_negotiable", Value::Array(vec![Value::text("price")])),
        ("signature", sig()),
    ])
}

fn request() -> Value {
    Value::map([
        ("request_id", id(ObjectType::Request)),
        ("agent_id", Value::text(did(2))),
        ("value_type", Value::text("inference.text_generation")),
        (
            "description",
            Value::map([
                ("human", Value::text("need text")),
                ("machine", Value::map::<&str>([])),
            ]),
        ),
        (
            "constraints",
            Value::map([
                ("accuracy_threshold", Value::Float(0.5)),
                ("max_latency_ms", Value::Integer(3000)),
            ]),
        ),
        (
            "authority_attestation",
            Value::map([
                ("principal_did", Value::text("did:web:lemay.example")),
                ("scope", Value::Array(vec![Value::text("inference")])),
                ("max_tx_value", price(Value::Integer(500), "USD")),
                (
                    "delegation_chain",
                    Value::Array(vec![Value::map([
                        ("issuer", Value::text("did:web:lemay.example")),
                        ("subject", Value::text(did(2))),
                        ("credential", Value::text("{}")),
                    ])]),
                ),
                (
                    "proof",
                    Value::map([
                        ("type", Value::text("vc_presentation")),
                        ("presentation", Value::text("{}")),
                    ]),
                ),
            ]),
        ),
        ("signature", sig()),
    ])
}

fn terms() -> Value {
    Value::map([
        ("terms_id", id(ObjectType::Terms)),
        ("participants", participants(2)),
        ("offer_ref", id(ObjectType::Offer)),
        ("request_ref", id(ObjectType::Request)),
        ("price", price(Value::Float(0.08), "USD")),
        (
            "delivery",
            Value::map([("method", Value::text("synchronous"))]),
        ),
        ("quality", inference_quality()),
        (
            "dispute_resolution",
            Value::map([("method", Value::text("automated_arbitration"))]),
        ),
        (
            "settlement",
            Value::map([
                ("rail", Value::text("lemay")),
                ("timing", Value::text("on_verification")),
            ]),
        ),
        ("expiration", t("2026-03-07T00:00:00Z")),
        ("negotiation_log", Value::Array(vec![])),
        (
            "signatures",
            Value::Array(
                (1..=2)
                    .map(|i| {
                        Value::map([
                            ("agent", Value::text(did(i))),
                            ("algorithm", Value::text("ML-DSA-65")),
                            ("value", Value::bytes(vec![i])),
                        ])
                    })
                    .collect(),
            ),
        ),
    ])
}

fn receipt() -> Value {
    Value::map([
        ("receipt_id", id(ObjectType::Receipt)),
        ("mandate_id", id(ObjectType::Mandate)),
        ("participants", participants(2)),
        ("outcome", Value::text("fulfilled")),
        (
            "verification",
            Value::map([
                ("method", Value::text("computation")),
                ("evidence", Value::map::<&str>([])),
            ]),
        ),
        ("timestamp", t("2026-03-06T14:22:31.391Z")),
        ("signature", sig()),
    ])
}

/// Follows a dotted path (array index as a number segment) to a map entry.
fn entry<'a>(v: &'a mut Value, path: &str) -> (&'a mut Vec<(Value, Value)>, String) {
    let mut segs: Vec<&str> = path.split('.').collect();
    let last = segs.pop().expect("non-empty path").to_owned();
    let mut cur = v;
    for s in segs {
        cur = match cur {
            Value::Map(es) => {
                &mut es
                    .iter_mut()
                    .find(|(k, _)| k.as_text() == Some(s))
                    .expect("path exists")
                    .1
            }
            Value::Array(a) => &mut a[s.parse::<usize>().expect("index")],
            _ => panic!("not a container at {s}"),
        };
    }
    match cur {
        Value::Map(es) => (es, last),
        _ => panic!("not a map"),
    }
}

fn set(mut v: Value, path: &str, new: Value) -> Value {
    let (es, k) = entry(&mut v, path);
    match es.iter_mut().find(|(key, _)| key.as_text() == Some(&k)) {
        Some(e) => e.1 = new,
        None => es.push((Value::text(k), new)),
    }
    v
}

fn remove(mut v: Value, path: &str) -> Value {
    let (es, k) = entry(&mut v, path);
    es.retain(|(key, _)| key.as_text() != Some(&k));
    v
}

fn rename(v: Value, path: &str, new_key: &str) -> Value {
    let mut v = v;
    let (es, k) = entry(&mut v, path);
    for e in es.iter_mut() {
        if e.0.as_text() == Some(&k) {
            e.0 = Value::text(new_key);
        }
    }
    v
}

#[track_caller]
fn rejects<T: CborObject + std::fmt::Debug>(v: Value, path: &str, req: &str) {
    let err = T::from_value(&v).expect_err("must be rejected");
    assert!(err.has(path, req), "expected {path} / {req}, got {err}");
}

#[test]
fn fixtures_are_valid() {
    Offer::from_value(&offer()).expect("offer");
    Request::from_value(&request()).expect("request");
    Terms::from_value(&terms()).expect("terms");
    Receipt::from_value(&receipt()).expect("receipt");
}

#[test]
fn offer_rules() {
    rejects::<Offer>(remove(offer(), "offer_id"), "offer_id", "SPEC-II-A-01");
    rejects::<Offer>(
        set(offer(), "offer_id", id(ObjectType::Request)),
        "offer_id",
        "BIND-VII-A-01",
    );
    let e = Offer::from_value(&set(offer(), "offer_id", Value::text("x"))).expect_err("text id");
    assert_eq!(e.code(), ErrorCode::MalformedUuid);
    rejects::<Offer>(
        set(offer(), "agent_id", Value::text("did:web:x.example")),
        "agent_id",
        "BIND-VII-A-02",
    );
    rejects::<Offer>(
        set(offer(), "value_type", Value::text("vehicles.cars")),
        "value_type",
        "BIND-VII-A-03",
    );
    let long = "é".repeat(4097);
    rejects::<Offer>(
        set(offer(), "description.human", Value::text(long)),
        "description.human",
        "BIND-VII-A-04",
    );
    Offer::from_value(&set(
        offer(),
        "description.human",
        Value::text("é".repeat(4096)),
    ))
    .expect("4096 scalars ok");
    rejects::<Offer>(
        set(
            offer(),
            "validity_window.not_before",
            Value::text("2026-03-06T00:00:00Z"),
        ),
        "validity_window.not_before",
        "BIND-VII-A-05",
    );
    rejects::<Offer>(
        set(
            offer(),
            "validity_window.not_before",
            t("2026-03-06T00:00:00+00:00"),
        ),
        "validity_window.not_before",
        "BIND-VII-A-05",
    );
    rejects::<Offer>(
        set(
            offer(),
            "validity_window.not_before",
            t("2026-07-06T00:00:00Z"),
        ),
        "validity_window.not_after",
        "SPEC-II-A-01",
    );
    rejects::<Offer>(remove(offer(), "signature"), "signature", "SPEC-II-A-03");
    rejects::<Offer>(
        remove(offer(), "terms_template.quality.model_version"),
        "terms_template.quality.model_version",
        "BIND-VIII-B-01",
    );
    rejects::<Offer>(
        set(offer(), "terms_template.price.amount", Value::Float(89.0)),
        "terms_template.price.amount",
        "SPEC-II-A-01",
    );
    rejects::<Offer>(
        set(offer(), "terms_template.price.unit", Value::text("usd")),
        "terms_template.price.unit",
        "BIND-VII-C-03",
    );
    rejects::<Offer>(
        set(
            offer(),
            "geographic_constraints",
            Value::Array(vec![Value::text("usa")]),
        ),
        "geographic_constraints[0]",
        "SPEC-II-A-02",
    );
    // Unknown fields at every level are kept and re-emitted (PROFILE G-26).
    let v = set(
        set(offer(), "x_new", Value::Integer(1)),
        "terms_template.price.x_grant",
        Value::text("g"),
    );
    let o = Offer::from_cbor(&crate::cbor::to_vec(&v).expect("encodes"))
        .expect("unknown fields accepted");
    assert_eq!(o.unknown.len(), 1);
    assert_eq!(o.terms_template.price.unknown.len(), 1);
    assert_eq!(Offer::from_cbor(&o.to_cbor()).expect("round trip"), o);
}

#[test]
fn offer_validity_window_at() {
    let o = Offer::from_value(&offer()).expect("offer");
    let inside = crate::time::Timestamp::parse("2026-04-01T00:00:00Z").expect("ts");
    let after = crate::time::Timestamp::parse("2026-06-06T00:01:00Z").expect("ts");
    assert!(o.validate_at(inside).is_ok());
    assert!(o.validate_at(after).is_err());
}

#[test]
fn request_rules() {
    rejects::<Request>(
        set(request(), "request_id", id(ObjectType::Offer)),
        "request_id",
        "BIND-VII-B-01",
    );
    rejects::<Request>(
        set(
            request(),
            "authority_attestation.delegation_chain",
            Value::Array(vec![]),
        ),
        "authority_attestation.delegation_chain",
        "BIND-VII-B-02",
    );
    rejects::<Request>(
        set(
            request(),
            "authority_attestation.delegation_chain.0.subject",
            Value::text(did(9)),
        ),
        "authority_attestation.delegation_chain[0].subject",
        "BIND-VII-B-02",
    );
    rejects::<Request>(
        set(
            request(),
            "authority_attestation.proof.type",
            Value::text("zero_knowledge"),
        ),
        "authority_attestation.proof.type",
        "BIND-VII-B-03",
    );
    rejects::<Request>(
        remove(request(), "authority_attestation"),
        "authority_attestation",
        "SPEC-II-B-03",
    );
    rejects::<Request>(
        set(
            request(),
            "constraints.accuracy_threshold",
            Value::Float(0.92),
        ),
        "constraints.accuracy_threshold",
        "BIND-VII-01",
    );
    rejects::<Request>(
        set(
            request(),
            "constraints.accuracy_threshold",
            Value::Float(1.5),
        ),
        "constraints.accuracy_threshold",
        "BIND-VII-01",
    );
    let ok = set(
        request(),
        "constraints.accuracy_threshold",
        Value::Float(0.92f32 as f64),
    );
    Request::from_value(&ok).expect("binary32 value accepted");
}

#[test]
fn terms_rules() {
    rejects::<Terms>(
        set(terms(), "terms_id", id(ObjectType::Offer)),
        "terms_id",
        "BIND-VII-C-01",
    );
    rejects::<Terms>(
        set(terms(), "offer_ref", id(ObjectType::Request)),
        "offer_ref",
        "SPEC-II-C-01",
    );
    rejects::<Terms>(
        set(terms(), "participants", participants(1)),
        "participants",
        "BIND-VII-C-02",
    );
    rejects::<Terms>(
        set(terms(), "participants.0.role", Value::text("seller")),
        "participants[0].role",
        "BIND-VII-C-02",
    );
    rejects::<Terms>(
        set(terms(), "price.unit", Value::text("BTC")),
        "price.unit",
        "BIND-VII-C-03",
    );
    Terms::from_value(&set(
        terms(),
        "price.unit",
        Value::text("MTP_COMPUTE_CREDIT"),
    ))
    .expect("credits");
    Terms::from_value(&set(
        terms(),
        "price.unit",
        Value::text("ext:data-access:grant"),
    ))
    .expect("custom");
    rejects::<Terms>(
        set(terms(), "price.amount", Value::Float(f64::NAN)),
        "price.amount",
        "SPEC-II-C-01",
    );
    rejects::<Terms>(
        remove(terms(), "negotiation_log"),
        "negotiation_log",
        "BIND-VII-C-04",
    );
    let one_sig = match terms().get("signatures") {
        Some(Value::Array(a)) => Value::Array(a[..1].to_vec()),
        _ => unreachable!(),
    };
    rejects::<Terms>(
        set(terms(), "signatures", one_sig),
        "signatures",
        "BIND-VII-C-05",
    );
    rejects::<Terms>(
        set(terms(), "settlement.timing", Value::text("later")),
        "settlement.timing",
        "BIND-VII-01",
    );
    let tm = Terms::from_value(&terms()).expect("terms");
    assert!(tm.check_signature_set().is_ok());
    let mut swapped = tm.clone();
    swapped.signatures.swap(0, 1);
    let errs = swapped.check_signature_set().expect_err("order");
    assert_eq!(errs[0].requirement, "BIND-VII-C-05");
    assert!(tm.check_quality(Category::Inference).is_ok());
    let errs = tm
        .check_quality(Category::PhysicalGoods)
        .expect_err("wrong category");
    assert!(
        errs.iter()
            .any(|e| e.path == "quality.condition" && e.requirement == "BIND-VIII-A-01")
    );
}

#[test]
fn receipt_rules() {
    rejects::<Receipt>(
        set(receipt(), "receipt_id", id(ObjectType::Terms)),
        "receipt_id",
        "BIND-VII-D-01",
    );
    rejects::<Receipt>(
        set(receipt(), "mandate_id", id(ObjectType::Terms)),
        "mandate_id",
        "BIND-VII-D-02",
    );
    rejects::<Receipt>(
        set(receipt(), "outcome", Value::text("Fulfilled")),
        "outcome",
        "SPEC-II-D-01",
    );
    rejects::<Receipt>(
        set(
            receipt(),
            "verification.method",
            Value::text("computation_based"),
        ),
        "verification.method",
        "BIND-VII-D-03",
    );
    rejects::<Receipt>(
        set(receipt(), "verification.method", Value::text("third_party")),
        "verification.third_party",
        "BIND-VII-D-03",
    );
    rejects::<Receipt>(
        set(receipt(), "outcome", Value::text("partially_fulfilled")),
        "partial_fulfillment",
        "SPEC-II-D-02",
    );
    rejects::<Receipt>(
        set(receipt(), "outcome", Value::text("disputed")),
        "dispute_initiation",
        "SPEC-II-D-04",
    );
    rejects::<Receipt>(
        set(receipt(), "outcome", Value::text("failed")),
        "failure_classification",
        "SPEC-II-D-06",
    );
    rejects::<Receipt>(
        set(
            set(receipt(), "outcome", Value::text("failed")),
            "failure_classification",
            Value::Integer(7500),
        ),
        "failure_classification",
        "SPEC-II-D-06",
    );
    rejects::<Receipt>(
        set(
            set(receipt(), "outcome", Value::text("failed")),
            "failure_classification",
            Value::Integer(1500),
        ),
        "failure_classification",
        "SPEC-II-D-06",
    );
    let failed = set(
        set(receipt(), "outcome", Value::text("failed")),
        "failure_classification",
        Value::Integer(5101),
    );
    assert_eq!(
        Receipt::from_value(&failed).expect("failed").failure_code(),
        Some(ErrorCode::SettlementFailed)
    );
    let pf = |ratio: f64| {
        set(
            set(receipt(), "outcome", Value::text("partially_fulfilled")),
            "partial_fulfillment",
            Value::map([
                ("fulfilled_elements", Value::Array(vec![])),
                ("unfulfilled_elements", Value::Array(vec![])),
                ("fulfillment_ratio", Value::Float(ratio)),
            ]),
        )
    };
    Receipt::from_value(&pf(0.5)).expect("0.5");
    rejects::<Receipt>(
        pf(1.0),
        "partial_fulfillment.fulfillment_ratio",
        "SPEC-II-D-02",
    );
    rejects::<Receipt>(
        pf(0.0),
        "partial_fulfillment.fulfillment_ratio",
        "SPEC-II-D-02",
    );
    rejects::<Receipt>(
        pf(0.3),
        "partial_fulfillment.fulfillment_ratio",
        "SPEC-II-D-02",
    );
    rejects::<Receipt>(
        set(receipt(), "participants", participants(3)),
        "attribution",
        "BIND-VII-D-04",
    );
    // An extraneous block is accepted with a warning (PROFILE G-22).
    let extra = set(receipt(), "failure_classification", Value::Integer(5101));
    let r = Receipt::from_value(&extra).expect("accepted");
    assert_eq!(r.warnings().len(), 1);
}

#[test]
fn strict_number_and_float32_rules() {
    let p = "x";
    assert!(read_number(&Value::Float(2.0), p, "R").is_err());
    assert!(read_number(&Value::Float(-0.0), p, "R").is_err());
    assert!(read_number(&Value::Float(f64::INFINITY), p, "R").is_err());
    assert_eq!(
        read_number(&Value::Float(0.08), p, "R"),
        Ok(Number::Float(0.08))
    );
    assert_eq!(Number::Float(89.0).to_value(), Value::Integer(89));
    assert!(read_float32(&Value::Float(0.92), p, "R").is_err());
    assert!(read_float32(&Value::Float(-0.0), p, "R").is_err());
    assert!(read_float32(&Value::Integer(1), p, "R").is_err());
    assert_eq!(read_float32(&Value::Float(0.5), p, "R"), Ok(0.5));
    assert!(PriceUnit::parse("XXX").is_err());
    assert!(PriceUnit::parse("ext:").is_err());
}

/// SPEC II informative examples, shaped as written (PROFILE G-11/G-12 negative vectors).
#[test]
fn spec_examples_are_rejected() {
    // Uppercase, version-0 example id.
    let ex_id = "01-0018A3F29B7C4E01-7A3F2B9C1D4E-8F2A0000000000000000000000000000000";
    assert!(MtpUuid::parse(ex_id).is_err());
    let j = serde_json::json!({
        "offer_id": ex_id,
        "agent_id": "did:mtp:7a3f2b9c1d4e8f01a2b3c4d5e6f7",
        "value_type": "physical_goods.manufactured",
        "description": { "human": "Organic linen-blend pullover, sizes S-XL", "machine": { "sku": "LMY-PLV-4471" } },
        "terms_template": {
            "price": { "amount": 89.00, "currency": "USD" },
            "delivery": { "earliest": "P2D", "latest": "P7D" },
            "quality": { "condition": "new", "return_window": "P30D" }
        },
        "validity_window": { "not_before": "2026-03-06T00:00:00Z", "not_after": "2026-06-06T00:00:00Z" },
        "signature": { "algorithm": "ML-DSA-65", "value": "..." }
    });
    let err = from_json::<Offer>(&j).expect_err("example offer");
    assert!(err.has("offer_id", "SPEC-IX-03"), "{err}");
    assert!(err.has("signature.value", "BIND-IV-C-01"), "{err}");
    // Same example with a valid id and signature: still non-conformant (currency, agent id, quality).
    let mut j2 = j.clone();
    j2["offer_id"] = serde_json::json!(
        MtpUuid::from_value(&id(ObjectType::Offer))
            .expect("id")
            .to_string()
    );
    j2["signature"]["value"] = serde_json::json!("AQID");
    let err = from_json::<Offer>(&j2).expect_err("example offer");
    assert!(
        err.has("terms_template.price.unit", "BIND-VII-C-03"),
        "{err}"
    );
    assert!(err.has("agent_id", "BIND-VII-A-02"), "{err}");
    // With the CDDL price shape, the physical-goods quality dimensions are still missing.
    j2["terms_template"]["price"] = serde_json::json!({ "amount": 89, "unit": "USD" });
    let err = from_json::<Offer>(&j2).expect_err("example offer");
    assert!(
        err.has("terms_template.quality.dimensions", "BIND-VIII-A-01"),
        "{err}"
    );

    // Receipt example: top-level verification_method, "computation_based".
    let r = rename(receipt(), "verification", "verification_method");
    let r = set(r, "verification_method", Value::text("computation_based"));
    rejects::<Receipt>(r, "verification", "SPEC-II-D-01");
    // Terms example: currency, string dispute_resolution, settlement_method, no log.
    let tm = rename(terms(), "price.unit", "currency");
    rejects::<Terms>(tm, "price.unit", "BIND-VII-C-03");
    rejects::<Terms>(
        set(
            terms(),
            "dispute_resolution",
            Value::text("automated_arbitration"),
        ),
        "dispute_resolution",
        "BIND-VII-01",
    );
    rejects::<Terms>(
        rename(terms(), "settlement", "settlement_method"),
        "settlement",
        "SPEC-II-C-01",
    );
    // Request example: max_transaction_value, zero_knowledge proof.
    let rq = rename(
        request(),
        "authority_attestation.max_tx_value",
        "max_transaction_value",
    );
    rejects::<Request>(rq, "authority_attestation.max_tx_value", "SPEC-II-B-03");
}

#[test]
fn json_round_trip_keeps_signing_input() {
    let o = Offer::from_cbor(&crate::cbor::to_vec(&offer()).expect("encodes")).expect("offer");
    let j = to_json(&o).expect("json");
    assert_eq!(j["offer_id"].as_str().map(str::len), Some(67));
    assert_eq!(j["validity_window"]["not_before"], "2026-03-06T00:00:00Z");
    assert_eq!(j["signature"]["value"], "AQID");
    let back: Offer = from_json(&j).expect("back");
    assert_eq!(back.signing_input(), o.signing_input());
    assert_eq!(back, o);
    // float32 fields are rounded to binary32 on import.
    let r = Request::from_value(&request()).expect("request");
    let mut j = to_json(&r).expect("json");
    j["constraints"]["accuracy_threshold"] = serde_json::json!(0.92);
    let back: Request = from_json(&j).expect("rounded");
    assert_eq!(back.constraints.accuracy_threshold, Some(0.92f32));
}

#[test]
fn non_text_and_duplicate_keys_rejected() {
    let mut v = offer();
    if let Value::Map(es) = &mut v {
        es.push((Value::Integer(1), Value::Null));
    }
    assert!(Offer::from_value(&v).is_err());
    let mut v = offer();
    if let Value::Map(es) = &mut v {
        es.push((Value::text("offer_id"), Value::Null));
    }
    assert!(Offer::from_value(&v).is_err());
}

/// Integral fraction dimensions (1.0, 0.0) stay floats through JSON, so the signing input
/// survives the round trip; an integer fraction is a schema error (BIND VIII-B).
#[test]
fn integral_fraction_dimensions_survive_json() {
    for acc in [0.0, 1.0] {
        let v = set(
            offer(),
            "terms_template.quality.accuracy_threshold",
            Value::Float(acc),
        );
        let o = Offer::from_value(&v).expect("offer");
        let back: Offer = from_json(&to_json(&o).expect("json")).expect("back");
        assert_eq!(back.signing_input(), o.signing_input(), "accuracy {acc}");
    }
    let v = set(
        offer(),
        "terms_template.quality.accuracy_threshold",
        Value::Integer(1),
    );
    assert!(Offer::from_value(&v).is_err(), "integer fraction accepted");
}
