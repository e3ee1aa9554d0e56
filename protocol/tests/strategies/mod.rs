//! Reusable proptest strategies for protocol objects (`mod strategies;` from a test crate).
//! Function names are stable: other test files depend on them.
#![allow(dead_code)]

use mtp_protocol::cbor::{self, Value, mutate};
use mtp_protocol::crypto::{PublicKey, SignatureAlgorithm, SigningKey};
use mtp_protocol::error_record::{MtpErrorRecord, Notification, NotificationType};
use mtp_protocol::errors::Coded;
use mtp_protocol::errors::{ErrorCode, Severity};
use mtp_protocol::identity::{AnyDid, Did};
use mtp_protocol::primitives::common::{
    AgentSignature, Map, Number, Participant, PriceSpec, PriceUnit, Role, Signature,
};
use mtp_protocol::primitives::json::{from_json, to_json};
use mtp_protocol::primitives::offer::{
    DeliverySpec, Description, Offer, Prerequisite, SettlementSpec, SettlementTiming,
    TermsTemplate, TimeOrDuration, ValidityWindow,
};
use mtp_protocol::primitives::receipt::{
    DisputeInitiation, Outcome, PartialFulfillment, Receipt, Verification, VerificationMethod,
};
use mtp_protocol::primitives::request::{
    AuthorityAttestation, AuthorityProof, Constraints, DelegationLink, FallbackSpec, Request,
};
use mtp_protocol::primitives::terms::{
    DiscountTier, DisputeResolution, Terms, TermsDelivery, TermsPrice, TermsSettlement,
};
use mtp_protocol::primitives::{CborObject, SingleSigned};
use mtp_protocol::taxonomy::Classifier;
use mtp_protocol::time::Timestamp;
use mtp_protocol::uuid::{MtpUuid, ObjectType};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// Sorts map entries into deterministic order (bytewise order of the encoded keys),
/// recursively, as the strict decoder yields them.
pub fn canonical_map(es: Vec<(Value, Value)>) -> Vec<(Value, Value)> {
    let mut es: Vec<(Vec<u8>, (Value, Value))> = es
        .into_iter()
        .map(|(k, v)| {
            (
                mtp_protocol::cbor::to_vec(&k).expect("encodable key"),
                (k, canonical(v)),
            )
        })
        .collect();
    es.sort_by(|a, b| a.0.cmp(&b.0));
    es.into_iter().map(|(_, e)| e).collect()
}

/// [`canonical_map`] applied to every map inside `v`.
pub fn canonical(v: Value) -> Value {
    match v {
        Value::Map(es) => Value::Map(canonical_map(es)),
        Value::Array(a) => Value::Array(a.into_iter().map(canonical).collect()),
        Value::Tag(t, inner) => Value::Tag(t, Box::new(canonical(*inner))),
        other => other,
    }
}

pub fn arb_did() -> impl Strategy<Value = Did> {
    any::<[u8; 32]>().prop_map(Did::from_digest)
}

pub fn arb_any_did() -> impl Strategy<Value = AnyDid> {
    prop_oneof![
        arb_did().prop_map(|d| d.to_any()),
        "[a-z0-9]{1,12}"
            .prop_map(|id| AnyDid::parse(&format!("did:web:{id}.example")).expect("valid did:web")),
    ]
}

pub fn arb_uuid(ty: ObjectType) -> impl Strategy<Value = MtpUuid> {
    (any::<u64>(), any::<[u8; 6]>(), any::<[u8; 17]>())
        .prop_map(move |(t, s, r)| MtpUuid::new(ty, t, s, r))
}

/// Years 1970–2096 with a random nanosecond fraction.
pub fn arb_timestamp() -> impl Strategy<Value = Timestamp> {
    (
        0i64..4_000_000_000,
        prop_oneof![Just(0u32), 0u32..1_000_000_000],
    )
        .prop_map(|(s, n)| Timestamp::new(s, n).expect("in range"))
}

pub fn arb_text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 _.é€-]{0,24}"
}

/// A JSON-stable CBOR value (text, i64 integer, bool, null, non-integral float, and
/// arrays/maps of these): survives the generic RFC 8949 §6 round trip.
pub fn arb_json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        arb_text().prop_map(Value::Text),
        any::<i64>().prop_map(|i| Value::Integer(i as i128)),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
        (-1000i32..1000).prop_map(|i| Value::Float(i as f64 + 0.25)),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            vec(("[a-z]{1,6}", inner), 0..4).prop_map(|es| {
                let mut seen = std::collections::HashSet::new();
                Value::Map(canonical_map(
                    es.into_iter()
                        .filter(|(k, _)| seen.insert(k.clone()))
                        .map(|(k, v)| (Value::Text(k), v))
                        .collect(),
                ))
            }),
        ]
    })
}

/// Any CBOR value (for never-panic tests): every major type, tags, odd keys.
pub fn arb_cbor_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(|i| Value::Integer(i as i128)),
        any::<u64>().prop_map(|i| Value::Integer(i as i128)),
        vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
        arb_text().prop_map(Value::Text),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
        Just(Value::Undefined),
        any::<f64>().prop_map(Value::Float),
        (0u8..20).prop_map(Value::Simple),
        prop_oneof![
            Just("offer_id"),
            Just("agent_id"),
            Just("signature"),
            Just("participants"),
            Just("price"),
            Just("amount"),
            Just("unit"),
            Just("outcome"),
            Just("code"),
            Just("type"),
        ]
        .prop_map(Value::text),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec((inner.clone(), inner.clone()), 0..6).prop_map(Value::Map),
            (0u64..30, inner).prop_map(|(t, v)| Value::Tag(t, Box::new(v))),
        ]
    })
}

/// 0–3 unknown entries with keys `x_…` (never a schema key), JSON-stable values.
pub fn arb_unknown_map() -> impl Strategy<Value = Map> {
    vec(("x_[a-z]{1,8}", arb_json_value()), 0..3).prop_map(|es| {
        let mut seen = std::collections::HashSet::new();
        canonical_map(
            es.into_iter()
                .filter(|(k, _)| seen.insert(k.clone()))
                .map(|(k, v)| (Value::Text(k), v))
                .collect(),
        )
    })
}

/// `{ * tstr => any }` content.
pub fn arb_open_map() -> impl Strategy<Value = Map> {
    vec(("[a-z]{1,8}", arb_json_value()), 0..3).prop_map(|es| {
        let mut seen = std::collections::HashSet::new();
        canonical_map(
            es.into_iter()
                .filter(|(k, _)| seen.insert(k.clone()))
                .map(|(k, v)| (Value::Text(k), v))
                .collect(),
        )
    })
}

pub fn arb_number() -> impl Strategy<Value = Number> {
    prop_oneof![
        (0i64..1_000_000_000).prop_map(Number::from),
        (0i64..1_000_000)
            .prop_map(|c| Number::Float(c as f64 + 0.01))
            .prop_filter("non-integral", |n| {
                matches!(n, Number::Float(f) if f.fract() != 0.0)
            }),
    ]
}

pub fn arb_price_unit() -> impl Strategy<Value = PriceUnit> {
    prop_oneof![
        Just("USD"),
        Just("EUR"),
        Just("JPY"),
        Just("CHF"),
        Just("MTP_COMPUTE_CREDIT"),
        Just("RECIPROCAL"),
        Just("ext:data-access:grant"),
    ]
    .prop_map(|s| PriceUnit::parse(s).expect("valid unit"))
}

pub fn arb_price_spec() -> impl Strategy<Value = PriceSpec> {
    (arb_number(), arb_price_unit(), arb_unknown_map()).prop_map(|(amount, unit, unknown)| {
        PriceSpec {
            amount,
            unit,
            unknown,
        }
    })
}

/// A binary32 value in [0, 1].
pub fn arb_fraction32() -> impl Strategy<Value = f32> {
    (0u32..=1000).prop_map(|i| i as f32 / 1000.0)
}

/// Random bytes standing in for a signature (structure tests only).
pub fn arb_signature() -> impl Strategy<Value = Signature> {
    (
        prop_oneof![
            Just("ML-DSA-65"),
            Just("ML-DSA-87"),
            Just("SLH-DSA-SHA2-192s")
        ],
        option::of("did:mtp:[1-9A-HJ-NP-Za-km-z]{8}#key-[0-9]"),
        vec(any::<u8>(), 0..48),
        arb_unknown_map(),
    )
        .prop_map(|(a, key_id, value, unknown)| Signature {
            algorithm: a.to_owned(),
            key_id,
            value,
            unknown,
        })
}

pub fn arb_agent_signature(agent: Did) -> impl Strategy<Value = AgentSignature> {
    (arb_signature(), Just(agent)).prop_map(|(s, agent)| AgentSignature {
        agent: agent.as_str().to_owned(),
        algorithm: s.algorithm,
        key_id: s.key_id,
        value: s.value,
        unknown: s.unknown,
    })
}

pub fn arb_role() -> impl Strategy<Value = Role> {
    prop_oneof![
        Just(Role::Provider),
        Just(Role::Requester),
        Just(Role::Contributor)
    ]
}

pub fn arb_participants(n: std::ops::Range<usize>) -> impl Strategy<Value = Vec<Participant>> {
    vec((arb_did(), arb_role(), arb_unknown_map()), n).prop_map(|ps| {
        ps.into_iter()
            .map(|(agent_id, role, unknown)| Participant {
                agent_id,
                role,
                unknown,
            })
            .collect()
    })
}

/// A valid inference quality map (BIND VIII-B) plus extra dimensions.
pub fn arb_inference_quality() -> impl Strategy<Value = Map> {
    (
        arb_fraction32(),
        any::<u32>(),
        "[a-z0-9.-]{1,10}",
        arb_open_map(),
    )
        .prop_map(|(acc, lat, mv, extra)| {
            let mut m: Map = vec![
                (Value::text("accuracy_threshold"), Value::Float(acc as f64)),
                (Value::text("max_latency_ms"), Value::Integer(lat as i128)),
                (Value::text("output_format"), Value::text("text/plain")),
                (Value::text("model_version"), Value::Text(mv)),
            ];
            for (k, v) in extra {
                if !m.iter().any(|(mk, _)| *mk == k) {
                    m.push((k, v));
                }
            }
            canonical_map(m)
        })
}

pub fn arb_description() -> impl Strategy<Value = Description> {
    (arb_text(), arb_open_map(), arb_unknown_map()).prop_map(|(human, machine, unknown)| {
        Description {
            human,
            machine,
            unknown,
        }
    })
}

fn arb_time_or_duration() -> impl Strategy<Value = TimeOrDuration> {
    prop_oneof![
        arb_timestamp().prop_map(TimeOrDuration::Time),
        (1u32..60).prop_map(|d| TimeOrDuration::Duration(format!("P{d}D"))),
    ]
}

pub fn arb_offer() -> impl Strategy<Value = Offer> {
    let template = (
        arb_price_spec(),
        (
            option::of(prop_oneof![
                Just("synchronous".to_owned()),
                Just("asynchronous".to_owned())
            ]),
            option::of(arb_time_or_duration()),
            option::of(arb_time_or_duration()),
            option::of(any::<u32>()),
            arb_unknown_map(),
        ),
        arb_inference_quality(),
        option::of((
            "[a-z]{2,8}",
            option::of(Just(SettlementTiming::Prepaid)),
            option::of(any::<bool>()),
            arb_unknown_map(),
        )),
        arb_unknown_map(),
    )
        .prop_map(
            |(price, (method, earliest, latest, lat, du), quality, settlement, unknown)| {
                TermsTemplate {
                    price,
                    delivery: DeliverySpec {
                        method,
                        earliest,
                        latest,
                        max_latency_ms: lat.map(u64::from),
                        format: None,
                        unknown: du,
                    },
                    quality,
                    settlement: settlement.map(|(rail, timing, escrow, unknown)| SettlementSpec {
                        rail,
                        timing,
                        escrow,
                        unknown,
                    }),
                    unknown,
                }
            },
        );
    (
        (
            arb_uuid(ObjectType::Offer),
            arb_did(),
            arb_description(),
            template,
        ),
        (arb_timestamp(), 1i64..10_000_000, arb_unknown_map()),
        (
            option::of(vec(
                prop_oneof![Just("US".to_owned()), Just("DE-BY".to_owned())],
                0..3,
            )),
            option::of(any::<u32>()),
            option::of(vec(
                ("[a-z]{1,8}", option::of(arb_open_map()), arb_unknown_map()),
                0..2,
            )),
            option::of(arb_open_map()),
            option::of(vec(
                prop_oneof![Just("price".to_owned()), Just("delivery.latest".to_owned())],
                0..2,
            )),
        ),
        arb_signature(),
        arb_unknown_map(),
    )
        .prop_map(
            |(
                (offer_id, agent_id, description, terms_template),
                (nb, len, vwu),
                opts,
                sig,
                unknown,
            )| {
                let (geo, capacity, prereqs, metadata, non_negotiable) = opts;
                let not_after = nb.add_secs(len).unwrap_or(nb);
                Offer {
                    offer_id,
                    agent_id,
                    value_type: Classifier::parse("inference.text_generation").expect("valid"),
                    description,
                    terms_template,
                    validity_window: ValidityWindow {
                        not_before: nb,
                        not_after,
                        unknown: vwu,
                    },
                    geographic_constraints: geo,
                    capacity: capacity.map(u64::from),
                    prerequisites: prereqs.map(|ps| {
                        ps.into_iter()
                            .map(|(kind, params, unknown)| Prerequisite {
                                kind,
                                params,
                                unknown,
                            })
                            .collect()
                    }),
                    metadata,
                    non_negotiable,
                    signature: Some(sig),
                    unknown,
                }
            },
        )
        .prop_filter("not_before < not_after", |o| {
            o.validity_window.not_before < o.validity_window.not_after
        })
}

pub fn arb_authority_proof() -> impl Strategy<Value = AuthorityProof> {
    prop_oneof![
        (arb_text(), arb_unknown_map()).prop_map(|(presentation, unknown)| {
            AuthorityProof::VcPresentation {
                presentation,
                unknown,
            }
        }),
        (
            any::<[u8; 32]>(),
            vec(any::<u8>(), 0..64),
            arb_price_spec(),
            arb_unknown_map()
        )
            .prop_map(
                |(commitment, proof, amount, unknown)| AuthorityProof::ZkRange {
                    commitment,
                    proof,
                    amount,
                    unknown
                }
            ),
    ]
}

pub fn arb_request() -> impl Strategy<Value = Request> {
    let constraints = (
        option::of(any::<u32>()),
        option::of(arb_fraction32()),
        option::of(arb_price_spec()),
        option::of(arb_timestamp()),
        option::of(vec(Just("FR".to_owned()), 0..2)),
        option::of(arb_open_map()),
        arb_unknown_map(),
    )
        .prop_map(
            |(lat, acc, budget, deadline, jur, custom, unknown)| Constraints {
                max_latency_ms: lat.map(u64::from),
                accuracy_threshold: acc,
                budget_ceiling: budget,
                delivery_deadline: deadline,
                jurisdiction: jur,
                custom,
                unknown,
            },
        );
    (
        (
            arb_uuid(ObjectType::Request),
            arb_did(),
            arb_description(),
            constraints,
        ),
        (
            arb_any_did(),
            vec(arb_any_did(), 0..2),
            arb_price_spec(),
            arb_authority_proof(),
            arb_unknown_map(),
        ),
        option::of(vec(
            (
                option::of(Just("inference")),
                option::of(arb_open_map()),
                arb_unknown_map(),
            ),
            0..2,
        )),
        arb_signature(),
        arb_unknown_map(),
    )
        .prop_map(
            |((request_id, agent_id, description, constraints), att, fallback, sig, unknown)| {
                let (principal, middles, max_tx_value, proof, att_unknown) = att;
                // Chain principal → middles… → agent.
                let mut nodes: Vec<AnyDid> = vec![principal.clone()];
                nodes.extend(middles);
                nodes.push(agent_id.to_any());
                let delegation_chain = nodes
                    .windows(2)
                    .map(|w| DelegationLink {
                        issuer: w[0].clone(),
                        subject: w[1].clone(),
                        credential: "{\"type\":\"MTPAuthorityDelegation\"}".to_owned(),
                        unknown: Map::new(),
                    })
                    .collect();
                Request {
                    request_id,
                    agent_id,
                    value_type: Classifier::parse("inference.text_generation").expect("valid"),
                    description,
                    constraints,
                    authority_attestation: AuthorityAttestation {
                        principal_did: principal,
                        scope: vec![Classifier::parse("inference").expect("valid")],
                        max_tx_value,
                        delegation_chain,
                        proof,
                        unknown: att_unknown,
                    },
                    fallback_preferences: fallback.map(|fs| {
                        fs.into_iter()
                            .map(|(vt, constraints, unknown)| FallbackSpec {
                                value_type: vt.map(|v| Classifier::parse(v).expect("valid")),
                                constraints,
                                unknown,
                            })
                            .collect()
                    }),
                    signature: Some(sig),
                    unknown,
                }
            },
        )
}

pub fn arb_terms() -> impl Strategy<Value = Terms> {
    let price = (
        arb_number(),
        arb_price_unit(),
        option::of(vec(
            (
                any::<u32>(),
                (0u32..=100).prop_map(|d| d as f64 / 100.0),
                arb_unknown_map(),
            ),
            1..3,
        )),
        arb_unknown_map(),
    )
        .prop_map(|(amount, unit, vd, unknown)| TermsPrice {
            amount,
            unit,
            volume_discount: vd.map(|ts| {
                ts.into_iter()
                    .map(|(q, discount, unknown)| DiscountTier {
                        min_quantity: q.into(),
                        discount,
                        unknown,
                    })
                    .collect()
            }),
            unknown,
        });
    let delivery = (
        prop_oneof![
            Just("synchronous".to_owned()),
            Just("digital_download".to_owned())
        ],
        option::of(any::<u32>()),
        option::of(arb_timestamp()),
        option::of(arb_timestamp()),
        option::of(Just("application/json".to_owned())),
        arb_unknown_map(),
    )
        .prop_map(
            |(method, lat, earliest, latest, format, unknown)| TermsDelivery {
                method,
                max_latency_ms: lat.map(u64::from),
                earliest,
                latest,
                format,
                unknown,
            },
        );
    let dispute = (
        option::of(Just("US-CA".to_owned())),
        option::of(arb_price_spec()),
        arb_unknown_map(),
    )
        .prop_map(|(jurisdiction, liability_cap, unknown)| DisputeResolution {
            method: "automated_arbitration".to_owned(),
            jurisdiction,
            liability_cap,
            unknown,
        });
    let settlement = (
        prop_oneof![
            Just(SettlementTiming::Prepaid),
            Just(SettlementTiming::OnVerification)
        ],
        option::of(any::<bool>()),
        arb_unknown_map(),
    )
        .prop_map(|(timing, escrow, unknown)| TermsSettlement {
            rail: "lemay".to_owned(),
            timing,
            escrow,
            unknown,
        });
    (
        (
            arb_uuid(ObjectType::Terms),
            arb_participants(2..4),
            arb_uuid(ObjectType::Offer),
            arb_uuid(ObjectType::Request),
        ),
        (
            price,
            delivery,
            arb_inference_quality(),
            dispute,
            settlement,
        ),
        (
            option::of(arb_open_map()),
            arb_timestamp(),
            vec(arb_open_map(), 0..3),
        ),
        (vec(arb_signature(), 2..4), arb_unknown_map()),
    )
        .prop_map(|(ids, body, tail, (sigs, unknown))| {
            let (terms_id, participants, offer_ref, request_ref) = ids;
            let (price, delivery, quality, dispute_resolution, settlement) = body;
            let (attribution_method, expiration, log) = tail;
            let signatures = sigs
                .into_iter()
                .zip(participants.iter().cycle())
                .map(|(s, p)| AgentSignature {
                    agent: p.agent_id.as_str().to_owned(),
                    algorithm: s.algorithm,
                    key_id: s.key_id,
                    value: s.value,
                    unknown: s.unknown,
                })
                .collect();
            Terms {
                terms_id,
                participants,
                offer_ref,
                request_ref,
                price,
                delivery,
                quality,
                dispute_resolution,
                settlement,
                attribution_method: attribution_method.map(Value::Map),
                expiration,
                negotiation_log: log.into_iter().map(Value::Map).collect(),
                signatures,
                unknown,
            }
        })
}

pub fn arb_outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::Fulfilled),
        Just(Outcome::PartiallyFulfilled),
        Just(Outcome::Disputed),
        Just(Outcome::Failed)
    ]
}

/// A registry or well-formed profile `LSCC` code.
pub fn arb_error_code() -> impl Strategy<Value = u16> {
    prop_oneof![
        proptest::sample::select(ErrorCode::ALL.to_vec()).prop_map(|c| c.as_u16()),
        (0u16..=7, 1u16..=4, 0u16..100).prop_map(|(l, s, c)| l * 1000 + s * 100 + c),
    ]
}

pub fn arb_receipt() -> impl Strategy<Value = Receipt> {
    let verification = (
        prop_oneof![
            Just(VerificationMethod::Attestation),
            Just(VerificationMethod::Evidence),
            Just(VerificationMethod::Computation),
            Just(VerificationMethod::ThirdParty)
        ],
        arb_open_map(),
        arb_did(),
        any::<bool>(),
        arb_unknown_map(),
    )
        .prop_map(|(method, evidence, tp, with_tp, unknown)| Verification {
            method,
            evidence,
            third_party: (with_tp || method == VerificationMethod::ThirdParty).then_some(tp),
            unknown,
        });
    let partial = (
        vec("[a-z_.]{1,12}", 0..3),
        vec("[a-z_.]{1,12}", 0..3),
        1u32..1000,
        arb_unknown_map(),
    )
        .prop_map(|(fulfilled_elements, unfulfilled_elements, r, unknown)| {
            PartialFulfillment {
                fulfilled_elements,
                unfulfilled_elements,
                fulfillment_ratio: r as f32 / 1000.0,
                unknown,
            }
        });
    let dispute = (
        vec(arb_text(), 0..3),
        vec(arb_text(), 0..3),
        arb_text(),
        arb_unknown_map(),
    )
        .prop_map(
            |(violated_provisions, evidence_refs, proposed_resolution, unknown)| {
                DisputeInitiation {
                    violated_provisions,
                    evidence_refs,
                    proposed_resolution,
                    unknown,
                }
            },
        );
    (
        (
            arb_uuid(ObjectType::Receipt),
            arb_uuid(ObjectType::Mandate),
            arb_participants(2..5),
            arb_outcome(),
        ),
        (
            verification,
            option::of(partial),
            option::of(dispute),
            option::of(arb_error_code()),
        ),
        (
            arb_open_map(),
            arb_timestamp(),
            option::of(arb_uuid(ObjectType::Receipt)),
            arb_signature(),
            arb_unknown_map(),
        ),
    )
        .prop_map(|(head, blocks, tail)| {
            let (receipt_id, mandate_id, participants, outcome) = head;
            let (verification, mut pf, mut di, mut fc) = blocks;
            let (attr, timestamp, predecessor, sig, unknown) = tail;
            // Supply the block the outcome requires (PROFILE G-22); others stay random.
            match outcome {
                Outcome::PartiallyFulfilled if pf.is_none() => {
                    pf = Some(PartialFulfillment {
                        fulfilled_elements: vec!["delivery".into()],
                        unfulfilled_elements: vec!["quality.accuracy_threshold".into()],
                        fulfillment_ratio: 0.5,
                        unknown: Map::new(),
                    })
                }
                Outcome::Disputed if di.is_none() => {
                    di = Some(DisputeInitiation {
                        violated_provisions: vec!["quality".into()],
                        evidence_refs: vec![],
                        proposed_resolution: "refund".into(),
                        unknown: Map::new(),
                    })
                }
                Outcome::Failed if fc.is_none() => fc = Some(ErrorCode::SettlementFailed.as_u16()),
                _ => {}
            }
            let attribution = (participants.len() >= 3 || !attr.is_empty()).then(|| {
                let mut m = attr;
                if !m.iter().any(|(k, _)| k.as_text() == Some("methodology")) {
                    m.push((Value::text("methodology"), Value::text("exact_shapley")));
                }
                Value::Map(canonical_map(m))
            });
            Receipt {
                receipt_id,
                mandate_id,
                participants,
                outcome,
                verification,
                partial_fulfillment: pf,
                dispute_initiation: di,
                failure_classification: fc,
                attribution,
                timestamp,
                predecessor,
                signature: Some(sig),
                unknown,
            }
        })
}

pub fn arb_error_record() -> impl Strategy<Value = MtpErrorRecord> {
    (
        (
            arb_uuid(ObjectType::Error),
            arb_error_code(),
            any::<bool>(),
            arb_text(),
        ),
        (
            option::of(arb_uuid(ObjectType::Terms)),
            arb_timestamp(),
            option::of(arb_open_map()),
        ),
        (option::of(arb_signature()), arb_unknown_map()),
    )
        .prop_map(
            |(
                (error_id, code, escalate, description),
                (transaction_id, timestamp, details),
                (signature, unknown),
            )| {
                let (layer, severity, _) =
                    mtp_protocol::errors::split_code(code).expect("well-formed code");
                let severity = if escalate && severity == Severity::Recoverable {
                    Severity::Fatal
                } else {
                    severity
                };
                MtpErrorRecord {
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
                }
            },
        )
}

pub fn arb_notification() -> impl Strategy<Value = Notification> {
    (
        prop_oneof![
            Just(NotificationType::Error),
            Just(NotificationType::MandateVoid),
            Just(NotificationType::OfferRevoked),
            Just(NotificationType::NegotiationTerminated),
            Just(NotificationType::CredentialRevoked)
        ],
        option::of(arb_uuid(ObjectType::Terms)),
        option::of(arb_uuid(ObjectType::Offer)),
        option::of(arb_error_record()),
        arb_timestamp(),
        arb_signature(),
        arb_unknown_map(),
    )
        .prop_flat_map(
            |(kind, transaction_id, subject_ref, error, timestamp, sig, unknown)| {
                let err = if kind == NotificationType::Error {
                    arb_error_record().prop_map(Some).boxed()
                } else {
                    Just(error.clone()).boxed()
                };
                (
                    Just((kind, transaction_id, subject_ref, timestamp, sig, unknown)),
                    err,
                )
            },
        )
        .prop_map(
            |((kind, transaction_id, subject_ref, timestamp, sig, unknown), error)| Notification {
                kind,
                transaction_id,
                subject_ref,
                error,
                timestamp,
                signature: Some(sig),
                unknown,
            },
        )
}

// ---- Shared property checks -------------------------------------------------------------

/// Recursively shuffles every map's entries (xorshift on `state`).
pub fn shuffle(v: &Value, state: &mut u64) -> Value {
    let mut next = || {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    };
    match v {
        Value::Map(es) => {
            let mut es: Vec<(Value, Value)> = es.to_vec();
            for i in (1..es.len()).rev() {
                let j = (next() % (i as u64 + 1)) as usize;
                es.swap(i, j);
            }
            Value::Map(
                es.into_iter()
                    .map(|(k, v)| (k, shuffle(&v, state)))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| shuffle(x, state)).collect()),
        Value::Tag(t, inner) => Value::Tag(*t, Box::new(shuffle(inner, state))),
        other => other.clone(),
    }
}

pub fn key(seed: u8) -> (SigningKey, PublicKey, Did) {
    let k = SigningKey::from_seed(SignatureAlgorithm::MlDsa65, &[seed; 32]);
    let pk = k.public_key();
    let did = Did::derive(SignatureAlgorithm::MlDsa65, pk.as_bytes()).expect("ML-DSA-65 key");
    (k, pk, did)
}

pub fn with_extra_field<T: CborObject>(x: &T) -> T {
    let Value::Map(mut es) = x.to_value() else {
        panic!("objects are maps")
    };
    es.push((Value::text("x_injected_after_signing"), Value::Integer(1)));
    T::from_value(&Value::Map(es)).expect("still valid")
}

pub fn check_codec<T: CborObject + PartialEq + std::fmt::Debug>(
    x: &T,
    seed: u64,
) -> Result<(), TestCaseError> {
    let bytes = x.to_cbor();
    let back = T::from_cbor(&bytes).map_err(|e| TestCaseError::fail(format!("decode: {e}")))?;
    prop_assert_eq!(&back, x);
    prop_assert_eq!(back.to_cbor(), bytes.clone());
    let mut state = seed | 1;
    let shuffled = shuffle(&x.to_value(), &mut state);
    prop_assert_eq!(cbor::to_vec(&shuffled).expect("encodable"), bytes.clone());
    for (name, m) in [
        (
            "reorder",
            mutate::reorder_map_keys as fn(&[u8]) -> Option<Vec<u8>>,
        ),
        ("indefinite", mutate::indefinite_length),
        ("non-shortest int", mutate::non_shortest_int),
        ("non-shortest float", mutate::non_shortest_float),
        ("duplicate key", mutate::duplicate_key),
        ("length-first", mutate::length_first_order),
    ] {
        if let Some(bad) = m(&bytes) {
            prop_assert!(T::from_cbor(&bad).is_err(), "{} variant accepted", name);
        }
    }
    let j = to_json(x).map_err(|e| TestCaseError::fail(format!("to_json: {e}")))?;
    let text = serde_json::to_string(&j).expect("serialisable");
    let j2: serde_json::Value = serde_json::from_str(&text).expect("parses");
    let back: T =
        from_json(&j2).map_err(|e| TestCaseError::fail(format!("from_json: {e}\n{text}")))?;
    prop_assert_eq!(&back, x);
    Ok(())
}

pub fn check_single_signed<T: SingleSigned + PartialEq + std::fmt::Debug>(
    mut x: T,
    code: ErrorCode,
    flip: impl Fn(&mut T),
) -> Result<(), TestCaseError> {
    let (k, pk, _) = key(7);
    x.sign(&k, Some("did:mtp:x#key-1".into())).expect("sign");
    prop_assert!(x.verify_signature(&pk).is_ok());
    let back = T::from_cbor(&x.to_cbor()).expect("decodes");
    prop_assert!(back.verify_signature(&pk).is_ok());
    let back: T = from_json(&to_json(&x).expect("json")).expect("from json");
    prop_assert!(back.verify_signature(&pk).is_ok());
    let mut y = T::from_cbor(&x.to_cbor()).expect("decodes");
    flip(&mut y);
    prop_assert_eq!(y.verify_signature(&pk).map_err(|e| e.code()), Err(code));
    let z = with_extra_field(&x);
    prop_assert_eq!(z.verify_signature(&pk).map_err(|e| e.code()), Err(code));
    let (_, other, _) = key(8);
    prop_assert_eq!(x.verify_signature(&other).map_err(|e| e.code()), Err(code));
    Ok(())
}
