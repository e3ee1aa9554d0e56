//! Property tests of the layer objects (SPEC III-B…G; PROFILE G-01, G-10, G-22, G-23, G-26,
//! G-27, G-30, G-31): round trips with unknown fields, order independence, strict-decoder
//! rejections, signatures (4100 Mandate, 2100 Manifest, 1100 others), JSON conversion,
//! no panics on arbitrary input; plus matching and merging of discovery results.

mod strategies;

use mtp_protocol::attribution::{
    AttributionConfig, AttributionRecord, Methodology, Sampling, verify_exact,
};
use mtp_protocol::cbor::{Value, mutate};
use mtp_protocol::commitment::{
    DelegationAttestation, Mandate, Precondition, Predicate, PredicateKind,
};
use mtp_protocol::discovery::{
    CapabilityManifest, Capacity, ExtensionRef, IndexQuery, IndexQueryResponse, IndexResult,
    Jurisdictions, MatchRefusal, OfferRevocation, matches, merge_results,
};
use mtp_protocol::errors::{Coded, ErrorCode};
use mtp_protocol::identity::Did;
use mtp_protocol::negotiation::{
    Acceptance, Condition, NegotiationInitiation, NegotiationMessage, NegotiationRound, Proposal,
    ProposalKind, Rejection, RoundTracker, Step, Termination, TerminationStatus,
};
use mtp_protocol::primitives::common::{Map, Number, PriceSpec, PriceUnit};
use mtp_protocol::primitives::json::{from_json, to_json};
use mtp_protocol::primitives::request::DelegationLink;
use mtp_protocol::primitives::{AgentSignature, CborObject, MultiSigned, Offer, Request};
use mtp_protocol::taxonomy::Classifier;
use mtp_protocol::time::Timestamp;
use mtp_protocol::uuid::{MtpUuid, ObjectType};
use mtp_protocol::verification::DisputeInitiationRecord;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use strategies::*;

// ---------------------------------------------------------------------------------------
// Helpers (same checks as object_properties.rs)
// ---------------------------------------------------------------------------------------

fn bump(t: Timestamp) -> Timestamp {
    t.add_secs(1).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// One deterministic sample of a strategy.
fn sample<S: Strategy>(s: S) -> S::Value {
    s.new_tree(&mut TestRunner::deterministic())
        .expect("tree")
        .current()
}

// ---------------------------------------------------------------------------------------
// Strategies for the layer objects
// ---------------------------------------------------------------------------------------

fn arb_conditions() -> impl Strategy<Value = Option<Vec<Condition>>> {
    option::of(
        vec(("[a-z.]{1,12}", "[a-z.]{1,12}", arb_unknown_map()), 0..3).prop_map(|cs| {
            cs.into_iter()
                .map(|(i, t, unknown)| Condition {
                    if_: i,
                    then: t,
                    unknown,
                })
                .collect()
        }),
    )
}

fn arb_proposal_with(kind: ProposalKind) -> impl Strategy<Value = Proposal> {
    (
        arb_uuid(ObjectType::Terms),
        1u64..=100,
        arb_did(),
        arb_open_map(),
        arb_conditions(),
        arb_timestamp(),
        arb_signature(),
        arb_unknown_map(),
    )
        .prop_map(
            move |(negotiation_id, round, proposer, terms, conditions, timestamp, sig, unknown)| {
                Proposal {
                    kind,
                    negotiation_id,
                    round,
                    proposer,
                    terms,
                    conditions,
                    timestamp,
                    signature: Some(sig),
                    unknown,
                }
            },
        )
}

fn arb_proposal() -> impl Strategy<Value = Proposal> {
    prop_oneof![
        arb_proposal_with(ProposalKind::Proposal),
        arb_proposal_with(ProposalKind::Counterproposal)
    ]
}

fn arb_nim() -> impl Strategy<Value = NegotiationInitiation> {
    (
        arb_request(),
        arb_proposal_with(ProposalKind::Proposal),
        arb_uuid(ObjectType::Offer),
        100u64..=3_600_000,
        1u64..=100,
        arb_signature(),
        arb_unknown_map(),
    )
        .prop_map(
            |(request, mut proposal, offer_ref, round_timeout_ms, max_rounds, sig, unknown)| {
                proposal.round = 1;
                proposal.proposer = request.agent_id.clone();
                NegotiationInitiation {
                    negotiation_id: proposal.negotiation_id,
                    request,
                    offer_ref,
                    proposal,
                    round_timeout_ms,
                    max_rounds,
                    signature: Some(sig),
                    unknown,
                }
            },
        )
}

fn arb_acceptance() -> impl Strategy<Value = Acceptance> {
    (
        arb_uuid(ObjectType::Terms),
        1u64..=100,
        any::<[u8; 32]>(),
        arb_signature(),
        arb_unknown_map(),
    )
        .prop_map(
            |(negotiation_id, round, accepted, sig, unknown)| Acceptance {
                negotiation_id,
                round,
                accepted,
                signature: Some(sig),
                unknown,
            },
        )
}

fn arb_rejection() -> impl Strategy<Value = Rejection> {
    (
        arb_uuid(ObjectType::Terms),
        1u64..=100,
        option::of(arb_text()),
        arb_signature(),
        arb_unknown_map(),
    )
        .prop_map(|(negotiation_id, round, reason, sig, unknown)| Rejection {
            negotiation_id,
            round,
            reason,
            signature: Some(sig),
            unknown,
        })
}

fn arb_termination() -> impl Strategy<Value = Termination> {
    (
        arb_uuid(ObjectType::Terms),
        prop::sample::select(TerminationStatus::ALL.to_vec()),
        arb_error_record(),
        arb_signature(),
        arb_unknown_map(),
    )
        .prop_map(|(negotiation_id, status, mut error, sig, unknown)| {
            if matches!(
                status,
                TerminationStatus::Timeout | TerminationStatus::Exhausted
            ) {
                error.code = status.code().as_u16();
                error.severity = mtp_protocol::errors::Severity::Recoverable;
                error.layer = mtp_protocol::errors::Layer::Negotiation;
            }
            Termination {
                negotiation_id,
                status,
                error,
                signature: Some(sig),
                unknown,
            }
        })
}

fn arb_message() -> impl Strategy<Value = NegotiationMessage> {
    prop_oneof![
        arb_nim().prop_map(|m| NegotiationMessage::Initiation(Box::new(m))),
        arb_proposal().prop_map(NegotiationMessage::Proposal),
        arb_acceptance().prop_map(NegotiationMessage::Acceptance),
        arb_rejection().prop_map(NegotiationMessage::Rejection),
        arb_termination().prop_map(NegotiationMessage::Termination),
    ]
}

fn arb_predicate() -> impl Strategy<Value = Predicate> {
    let leaf = prop_oneof![
        (
            "[a-z_]{1,16}",
            option::of(arb_uuid(ObjectType::Receipt)),
            arb_unknown_map()
        )
            .prop_map(|(e, r, unknown)| {
                Predicate {
                    kind: PredicateKind::Event {
                        event: e,
                        reference: r,
                    },
                    unknown,
                }
            }),
        (arb_timestamp(), arb_unknown_map()).prop_map(|(at, unknown)| Predicate {
            kind: PredicateKind::TimeAfter { at },
            unknown
        }),
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        (vec(inner, 1..3), any::<bool>(), arb_unknown_map()).prop_map(|(args, all, unknown)| {
            Predicate {
                kind: if all {
                    PredicateKind::All(args)
                } else {
                    PredicateKind::Any(args)
                },
                unknown,
            }
        })
    })
}

fn arb_precondition() -> impl Strategy<Value = Precondition> {
    (
        "[a-z0-9]{1,8}",
        arb_predicate(),
        arb_timestamp(),
        arb_unknown_map(),
    )
        .prop_map(|(id, predicate, expires, unknown)| Precondition {
            id,
            predicate,
            expires,
            unknown,
        })
}

fn arb_delegation_link() -> impl Strategy<Value = DelegationLink> {
    (arb_any_did(), arb_any_did(), arb_text(), arb_unknown_map()).prop_map(
        |(issuer, subject, credential, unknown)| DelegationLink {
            issuer,
            subject,
            credential,
            unknown,
        },
    )
}

fn arb_mandate() -> impl Strategy<Value = Mandate> {
    (
        arb_terms(),
        arb_uuid(ObjectType::Mandate),
        (
            vec(arb_uuid(ObjectType::Offer), 0..2),
            vec(arb_uuid(ObjectType::Request), 0..2),
        ),
        vec((vec(arb_delegation_link(), 0..2), arb_unknown_map()), 4),
        option::of(vec(arb_precondition(), 1..3)),
        (
            arb_timestamp(),
            0i64..1_000_000,
            option::of(arb_uuid(ObjectType::Mandate)),
        ),
        (vec(arb_signature(), 4), arb_unknown_map()),
    )
        .prop_map(
            |(
                terms,
                mandate_id,
                (offers, requests),
                atts,
                pre,
                (ts, back, predecessor),
                (sigs, unknown),
            )| {
                let mut pre = pre;
                if let Some(ps) = &mut pre {
                    for (i, p) in ps.iter_mut().enumerate() {
                        p.id = format!("{}{i}", p.id);
                    }
                }
                let mut offer_refs = vec![terms.offer_ref];
                offer_refs.extend(offers);
                let mut request_refs = requests;
                request_refs.insert(0, terms.request_ref);
                let attestations = terms
                    .participants
                    .iter()
                    .zip(atts)
                    .map(|(p, (chain, unknown))| DelegationAttestation {
                        agent_id: p.agent_id.clone(),
                        delegation_chain: chain,
                        unknown,
                    })
                    .collect();
                let expiration = terms.expiration.add_secs(-back).unwrap_or(terms.expiration);
                let predecessor = predecessor.filter(|p| *p != mandate_id);
                let mut m = Mandate::new(
                    mandate_id,
                    offer_refs,
                    request_refs,
                    &terms,
                    attestations,
                    pre,
                    ts,
                    expiration,
                    predecessor,
                )
                .expect("valid mandate");
                m.signatures = terms
                    .participants
                    .iter()
                    .zip(sigs)
                    .map(|(p, s)| AgentSignature {
                        agent: p.agent_id.as_str().to_owned(),
                        algorithm: s.algorithm,
                        key_id: s.key_id,
                        value: s.value,
                        unknown: s.unknown,
                    })
                    .collect();
                m.unknown = unknown;
                m
            },
        )
}

fn arb_semver() -> impl Strategy<Value = String> {
    (0u32..5, 0u32..20, 0u32..20).prop_map(|(a, b, c)| format!("{a}.{b}.{c}"))
}

fn arb_extension() -> impl Strategy<Value = ExtensionRef> {
    ("[a-z_]{1,10}", arb_semver(), arb_unknown_map()).prop_map(|(n, version, unknown)| {
        ExtensionRef {
            id: format!("lemay.ext.{n}"),
            version,
            unknown,
        }
    })
}

fn arb_classifier() -> impl Strategy<Value = Classifier> {
    prop::sample::select(vec![
        "inference",
        "inference.text_generation",
        "physical_goods.manufactured",
        "services",
    ])
    .prop_map(|s| Classifier::parse(s).expect("valid"))
}

fn arb_jurisdictions() -> impl Strategy<Value = Option<Vec<String>>> {
    option::of(vec(
        prop::sample::select(vec!["US", "US-CA", "DE", "FR", "JP"]).prop_map(str::to_owned),
        0..3,
    ))
}

fn arb_manifest() -> impl Strategy<Value = CapabilityManifest> {
    (
        (
            arb_uuid(ObjectType::Manifest),
            arb_did(),
            arb_semver(),
            any::<u64>(),
        ),
        (
            vec(arb_classifier(), 1..3),
            vec(arb_uuid(ObjectType::Offer), 0..3),
        ),
        (
            option::of(any::<u32>()),
            option::of(arb_text()),
            arb_unknown_map(),
        ),
        (arb_jurisdictions(), arb_jurisdictions(), arb_unknown_map()),
        (arb_open_map(), vec("[a-z_]{1,10}", 1..3)),
        (
            option::of(vec(arb_extension(), 0..3)),
            option::of(vec(arb_semver(), 1..3)),
        ),
        (arb_timestamp(), arb_signature(), arb_unknown_map()),
    )
        .prop_map(
            |(
                ids,
                offered,
                cap,
                jur,
                (quality, payment_rails),
                (extensions, protocol_versions),
                tail,
            )| {
                let (manifest_id, agent_id, manifest_version, revision) = ids;
                let (value_types, offers) = offered;
                let (freshness, sig, unknown) = tail;
                CapabilityManifest {
                    manifest_id,
                    agent_id,
                    manifest_version,
                    revision,
                    value_types,
                    offers,
                    capacity: Capacity {
                        max_concurrent: cap.0.map(u64::from),
                        availability: cap.1,
                        unknown: cap.2,
                    },
                    jurisdictions: Jurisdictions {
                        available: jur.0,
                        prohibited: jur.1,
                        unknown: jur.2,
                    },
                    quality,
                    payment_rails,
                    extensions,
                    protocol_versions,
                    freshness,
                    signature: Some(sig),
                    unknown,
                }
            },
        )
}

fn arb_index_query() -> impl Strategy<Value = IndexQuery> {
    (
        arb_classifier(),
        option::of(arb_open_map()),
        option::of(arb_open_map()),
        option::of(any::<u32>()),
        option::of(vec(any::<u8>(), 0..16)),
        arb_unknown_map(),
    )
        .prop_map(
            |(value_type, constraints, counterparty, limit, cursor, unknown)| IndexQuery {
                value_type,
                constraints,
                counterparty,
                limit: limit.map(u64::from),
                cursor,
                unknown,
            },
        )
}

fn arb_index_result() -> impl Strategy<Value = IndexResult> {
    (
        arb_offer(),
        arb_uuid(ObjectType::Manifest),
        arb_timestamp(),
        arb_unknown_map(),
    )
        .prop_map(|(offer, manifest_id, freshness, unknown)| IndexResult {
            offer,
            manifest_id,
            freshness,
            unknown,
        })
}

fn arb_index_response() -> impl Strategy<Value = IndexQueryResponse> {
    (
        vec(arb_index_result(), 0..3),
        option::of(vec(any::<u8>(), 0..16)),
        arb_unknown_map(),
    )
        .prop_map(|(results, cursor, unknown)| IndexQueryResponse {
            results,
            cursor,
            unknown,
        })
}

fn arb_revocation() -> impl Strategy<Value = OfferRevocation> {
    (
        arb_uuid(ObjectType::Offer),
        arb_did(),
        arb_timestamp(),
        arb_signature(),
        arb_unknown_map(),
    )
        .prop_map(
            |(offer_id, agent_id, revoked_at, sig, unknown)| OfferRevocation {
                offer_id,
                agent_id,
                revoked_at,
                signature: Some(sig),
                unknown,
            },
        )
}

fn arb_dispute() -> impl Strategy<Value = DisputeInitiationRecord> {
    (
        (
            arb_uuid(ObjectType::Mandate),
            option::of(arb_uuid(ObjectType::Receipt)),
            arb_did(),
        ),
        (
            vec("[a-z_.]{1,20}", 1..3),
            vec(arb_text(), 1..3),
            option::of(arb_open_map()),
        ),
        (
            "[a-z ]{1,30}",
            arb_timestamp(),
            arb_signature(),
            arb_unknown_map(),
        ),
    )
        .prop_map(
            |(
                (mandate_id, receipt_ref, disputing_agent),
                (violated, refs, evidence),
                (res, ts, sig, unknown),
            )| {
                DisputeInitiationRecord {
                    mandate_id,
                    receipt_ref,
                    disputing_agent,
                    violated_provisions: violated,
                    evidence_refs: refs,
                    evidence,
                    proposed_resolution: res,
                    timestamp: ts,
                    signature: Some(sig),
                    unknown,
                }
            },
        )
}

/// Exact records from random games with 3–6 contributors (v(N) > 0), and approximate ones.
fn arb_attribution() -> impl Strategy<Value = AttributionRecord> {
    (3usize..=6)
        .prop_flat_map(|n| {
            (
                vec(arb_did(), n),
                vec(0i64..1000, 1 << n),
                arb_uuid(ObjectType::Mandate),
                option::of((1u32..1000, any::<[u8; 32]>(), arb_unknown_map())),
                arb_signature(),
                arb_unknown_map(),
            )
        })
        .prop_filter_map(
            "distinct contributors, v(N) > 0",
            |(dids, mut vals, mid, approx, sig, unknown)| {
                let n = dids.len();
                vals[0] = 0;
                vals[(1 << n) - 1] += 1;
                let values: Vec<Number> = vals.into_iter().map(Number::from).collect();
                let mut r = AttributionRecord::exact(mid, dids, &values).ok()?;
                if r.contributors
                    .iter()
                    .enumerate()
                    .any(|(i, c)| r.contributors[..i].iter().any(|d| d.agent_id == c.agent_id))
                {
                    return None;
                }
                if let Some((permutations, seed, su)) = approx {
                    r.methodology = Methodology::ApproximateShapley;
                    r.error_bound = Some(0.015625);
                    r.sampling = Some(Sampling {
                        permutations: permutations.into(),
                        seed,
                        unknown: su,
                    });
                }
                r.signature = Some(sig);
                r.unknown = unknown;
                Some(r)
            },
        )
}

fn arb_attribution_config() -> impl Strategy<Value = AttributionConfig> {
    (any::<bool>(), option::of(1u32..100), arb_unknown_map()).prop_map(
        |(approx, perms, unknown)| AttributionConfig {
            methodology: if approx {
                Methodology::ApproximateShapley
            } else {
                Methodology::ExactShapley
            },
            error_bound: approx.then_some(0.25),
            permutations: perms.map(u64::from),
            unknown,
        },
    )
}

// ---------------------------------------------------------------------------------------
// Codec properties
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn proposal_codec(x in arb_proposal(), seed in any::<u64>()) { check_codec(&x, seed)?; }
    #[test]
    fn nim_codec(x in arb_nim(), seed in any::<u64>()) { check_codec(&x, seed)?; }
    #[test]
    fn acceptance_codec(x in arb_acceptance(), seed in any::<u64>()) { check_codec(&x, seed)?; }
    #[test]
    fn rejection_codec(x in arb_rejection(), seed in any::<u64>()) { check_codec(&x, seed)?; }
    #[test]
    fn termination_codec(x in arb_termination(), seed in any::<u64>()) { check_codec(&x, seed)?; }
    #[test]
    fn negotiation_message_codec(x in arb_message(), seed in any::<u64>()) { check_codec(&x, seed)?; }
    #[test]
    fn negotiation_round_codec(x in arb_proposal(), seed in any::<u64>()) {
        check_codec(&NegotiationRound::Proposal(x), seed)?;
    }
    #[test]
    fn mandate_codec(x in arb_mandate(), seed in any::<u64>()) {
        check_codec(&x, seed)?;
        prop_assert_eq!(Mandate::decode_terms(x.terms_bytes()).expect("terms"), x.terms().clone());
    }
    #[test]
    fn manifest_codec(x in arb_manifest(), seed in any::<u64>()) { check_codec(&x, seed)?; }
    #[test]
    fn index_query_codec(x in arb_index_query(), seed in any::<u64>()) { check_codec(&x, seed)?; }
    #[test]
    fn index_response_codec(x in arb_index_response(), seed in any::<u64>()) { check_codec(&x, seed)?; }
    #[test]
    fn revocation_codec(x in arb_revocation(), seed in any::<u64>()) { check_codec(&x, seed)?; }
    #[test]
    fn dispute_codec(x in arb_dispute(), seed in any::<u64>()) {
        check_codec(&x, seed)?;
        let block = x.to_receipt_block();
        let back = DisputeInitiationRecord::from_receipt_block(&block, x.mandate_id, x.disputing_agent.clone(), x.timestamp).expect("maps back");
        prop_assert!(back.matches_block(&block, &x.mandate_id));
        prop_assert!(x.matches_block(&block, &x.mandate_id));
    }
    #[test]
    fn attribution_codec(x in arb_attribution(), seed in any::<u64>()) {
        check_codec(&x, seed)?;
        if x.methodology == Methodology::ExactShapley {
            prop_assert!(verify_exact(&x).is_ok());
        }
    }
    #[test]
    fn attribution_config_codec(x in arb_attribution_config(), seed in any::<u64>()) { check_codec(&x, seed)?; }
}

// ---------------------------------------------------------------------------------------
// Signatures
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn proposal_signature(x in arb_proposal()) {
        check_single_signed(x, ErrorCode::SignatureVerificationFailure, |p: &mut Proposal| p.round += 1)?;
    }
    #[test]
    fn nim_signature(x in arb_nim()) {
        check_single_signed(x, ErrorCode::SignatureVerificationFailure, |n: &mut NegotiationInitiation| n.max_rounds = n.max_rounds % 100 + 1 - (n.max_rounds == 100) as u64)?;
    }
    #[test]
    fn acceptance_signature(x in arb_acceptance()) {
        check_single_signed(x, ErrorCode::SignatureVerificationFailure, |a: &mut Acceptance| a.accepted[0] ^= 1)?;
    }
    #[test]
    fn rejection_signature(x in arb_rejection()) {
        check_single_signed(x, ErrorCode::SignatureVerificationFailure, |r: &mut Rejection| r.round += 1)?;
    }
    #[test]
    fn termination_signature(x in arb_termination()) {
        check_single_signed(x, ErrorCode::SignatureVerificationFailure, |t: &mut Termination| t.error.description.push('!'))?;
    }
    #[test]
    fn manifest_signature(x in arb_manifest()) {
        check_single_signed(x, ErrorCode::ManifestSignatureInvalid, |m: &mut CapabilityManifest| m.revision = m.revision.wrapping_add(1))?;
    }
    #[test]
    fn revocation_signature(x in arb_revocation()) {
        check_single_signed(x, ErrorCode::SignatureVerificationFailure, |r: &mut OfferRevocation| r.revoked_at = bump(r.revoked_at))?;
    }
    #[test]
    fn dispute_signature(x in arb_dispute()) {
        check_single_signed(x, ErrorCode::SignatureVerificationFailure, |d: &mut DisputeInitiationRecord| d.proposed_resolution.push('!'))?;
    }
    #[test]
    fn attribution_signature(x in arb_attribution()) {
        check_single_signed(x, ErrorCode::SignatureVerificationFailure, |a: &mut AttributionRecord| a.coalition_values.push(("x".into(), Number::Int(0))))?;
    }

    #[test]
    fn mandate_signatures(x in arb_mandate()) {
        let (k1, pk1, d1) = key(1);
        let (k2, pk2, d2) = key(2);
        let mut terms = x.terms().clone();
        terms.participants.truncate(2);
        terms.participants[0].agent_id = d1.clone();
        terms.participants[1].agent_id = d2.clone();
        let atts: Vec<DelegationAttestation> = [d1.clone(), d2.clone()]
            .into_iter()
            .map(|agent_id| DelegationAttestation { agent_id, delegation_chain: vec![], unknown: Map::new() })
            .collect();
        let mut m = Mandate::new(x.mandate_id, x.offer_refs.clone(), x.request_refs.clone(), &terms, atts,
            x.preconditions.clone(), x.commitment_timestamp, x.expiration, x.predecessor).expect("valid");
        m.unknown = x.unknown.clone();
        m.add_signature(d1.as_str(), &k1, None).expect("sign");
        m.add_signature(d2.as_str(), &k2, Some(format!("{}#key-1", d2.as_str()))).expect("sign");
        let resolve = |agent: &str, _: Option<&str>| {
            if agent == d1.as_str() { Some(pk1.clone()) } else if agent == d2.as_str() { Some(pk2.clone()) } else { None }
        };
        prop_assert!(m.verify_signatures(resolve).is_ok());
        let back = Mandate::from_cbor(&m.to_cbor()).expect("decodes");
        prop_assert!(back.verify_signatures(resolve).is_ok());
        let back: Mandate = from_json(&to_json(&m).expect("json")).expect("from json");
        prop_assert!(back.verify_signatures(resolve).is_ok());
        let mut y = m.clone();
        y.commitment_timestamp = bump(y.commitment_timestamp);
        prop_assert_eq!(y.verify_signatures(resolve).map_err(|e| e.code()), Err(ErrorCode::MandateSignatureInvalid));
        let mut y = m.clone();
        y.signatures.swap(0, 1);
        prop_assert_eq!(y.verify_signatures(resolve).map_err(|e| e.code()), Err(ErrorCode::MandateSignatureInvalid));
        let mut y = m.clone();
        y.signatures.pop();
        prop_assert_eq!(y.verify_signatures(resolve).map_err(|e| e.code()), Err(ErrorCode::MandateSignatureInvalid));
        let z = with_extra_field(&m);
        prop_assert_eq!(z.verify_signatures(resolve).map_err(|e| e.code()), Err(ErrorCode::MandateSignatureInvalid));
    }
}

// ---------------------------------------------------------------------------------------
// Never panic
// ---------------------------------------------------------------------------------------

fn decode_all_values(v: &Value) {
    let _ = Proposal::from_value(v);
    let _ = NegotiationInitiation::from_value(v);
    let _ = Acceptance::from_value(v);
    let _ = Rejection::from_value(v);
    let _ = Termination::from_value(v);
    let _ = NegotiationMessage::from_value(v);
    let _ = NegotiationRound::from_value(v);
    let _ = Mandate::from_value(v);
    let _ = Predicate::from_value(v, "p");
    let _ = Precondition::from_value(v, "p");
    let _ = CapabilityManifest::from_value(v);
    let _ = IndexQuery::from_value(v);
    let _ = IndexQueryResponse::from_value(v);
    let _ = OfferRevocation::from_value(v);
    let _ = DisputeInitiationRecord::from_value(v);
    if let Ok(r) = AttributionRecord::from_value(v) {
        let _ = verify_exact(&r);
    }
    let _ = AttributionConfig::from_value(v);
}

/// Replaces the value at top-level key `i` of `x`'s map with `v`.
fn perturb<T: CborObject>(x: &T, i: prop::sample::Index, v: Value) -> Value {
    let Value::Map(mut es) = x.to_value() else {
        unreachable!()
    };
    let j = i.index(es.len());
    es[j].1 = v;
    Value::Map(es)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn from_value_never_panics(v in arb_cbor_value()) {
        decode_all_values(&v);
        let typed = Value::Map(vec![(Value::text("type"), Value::text("nim")), (Value::text("x"), v.clone())]);
        decode_all_values(&typed);
    }

    #[test]
    fn from_cbor_never_panics(bytes in vec(any::<u8>(), 0..200)) {
        let _ = NegotiationMessage::from_cbor(&bytes);
        let _ = Mandate::from_cbor(&bytes);
        let _ = CapabilityManifest::from_cbor(&bytes);
        let _ = IndexQueryResponse::from_cbor(&bytes);
        let _ = AttributionRecord::from_cbor(&bytes);
        let _ = DisputeInitiationRecord::from_cbor(&bytes);
    }

    #[test]
    fn perturbed_objects_never_panic(
        m in arb_mandate(), a in arb_attribution(), mf in arb_manifest(), p in arb_proposal(),
        i in any::<prop::sample::Index>(), v in arb_cbor_value(),
    ) {
        if let Ok(x) = Mandate::from_value(&perturb(&m, i, v.clone())) { let _ = x.try_to_cbor(); }
        if let Ok(x) = AttributionRecord::from_value(&perturb(&a, i, v.clone())) { let _ = verify_exact(&x); }
        if let Ok(x) = CapabilityManifest::from_value(&perturb(&mf, i, v.clone())) { let _ = x.try_to_cbor(); }
        if let Ok(x) = NegotiationMessage::from_value(&perturb(&p, i, v)) { let _ = x.try_to_cbor(); }
    }
}

// ---------------------------------------------------------------------------------------
// Structural rules needing full objects
// ---------------------------------------------------------------------------------------

#[test]
fn nim_structural_rules() {
    let nim = sample(arb_nim());
    let mut bad = nim.clone();
    bad.proposal.round = 2;
    assert!(
        NegotiationInitiation::from_value(&bad.to_value())
            .unwrap_err()
            .has("proposal", "SPEC-III-C-1-I01")
    );
    let mut bad = nim.clone();
    bad.round_timeout_ms = 99;
    bad.max_rounds = 0;
    let e = NegotiationInitiation::from_value(&bad.to_value()).unwrap_err();
    assert!(
        e.has("round_timeout_ms", "SPEC-III-C-1-01") && e.has("max_rounds", "SPEC-III-C-1-03"),
        "{e}"
    );
    let mut bad = nim.clone();
    bad.proposal.proposer = Did::from_digest([9; 32]);
    assert!(
        NegotiationInitiation::from_value(&bad.to_value())
            .unwrap_err()
            .has("proposal.proposer", "SPEC-III-C-1-05")
    );
    let mut bad = nim.clone();
    bad.request.description.human = "x".repeat(5000);
    let e = NegotiationInitiation::from_value(&bad.to_value()).unwrap_err();
    assert!(
        e.schema_errors()
            .iter()
            .all(|x| x.path.starts_with("request.")),
        "{e}"
    );
    // The tracker follows the NIM.
    let t = RoundTracker::start(&nim).expect("valid nim");
    let acc = NegotiationMessage::Acceptance(Acceptance {
        negotiation_id: nim.negotiation_id,
        round: 1,
        accepted: nim.proposal.digest(),
        signature: None,
        unknown: Map::new(),
    });
    assert!(matches!(
        t.check(&acc, 0),
        Ok(Step::Agreed { round: 1, .. })
    ));
}

#[test]
fn termination_code_consistency() {
    let mut t = sample(arb_termination());
    t.status = TerminationStatus::Timeout;
    t.error.code = 3201;
    assert!(
        Termination::from_value(&t.to_value())
            .unwrap_err()
            .has("error.code", "SPEC-III-C-1-02")
    );
}

#[test]
fn mandate_structural_rules() {
    let m = sample(arb_mandate());
    let v = m.to_value();
    let set = |key: &str, val: Value| {
        let Value::Map(mut es) = v.clone() else {
            unreachable!()
        };
        for (k, x) in es.iter_mut() {
            if k.as_text() == Some(key) {
                *x = val.clone();
            }
        }
        Value::Map(es)
    };
    // Terms expire before the Mandate (PROFILE G-19).
    let late = mtp_protocol::primitives::common::tdate_value(
        m.terms().expiration.add_secs(1).expect("in range"),
    );
    assert!(
        Mandate::from_value(&set("expiration", late))
            .unwrap_err()
            .has("expiration", "SPEC-III-D-1-01")
    );
    // The Terms' own references must be listed.
    let other = Value::Array(vec![
        MtpUuid::new(ObjectType::Offer, 1, [0; 6], [0; 17]).to_value(),
    ]);
    assert!(
        Mandate::from_value(&set("offer_refs", other))
            .unwrap_err()
            .has("offer_refs", "SPEC-III-D-1-01")
    );
    // Terms bytes that are not deterministic CBOR keep the CBOR error's code.
    let mut noncanon = m.terms_bytes().to_vec();
    if let Some(bad) = mutate::reorder_map_keys(&noncanon) {
        noncanon = bad;
        let e = Mandate::from_value(&set("terms", Value::Bytes(noncanon))).unwrap_err();
        assert_eq!(e.schema_errors()[0].path, "terms");
        assert_eq!(e.schema_errors()[0].code, ErrorCode::SerializationMismatch);
    }
    // Wrong type nibble → 0102.
    let e = Mandate::from_value(&set(
        "mandate_id",
        MtpUuid::new(ObjectType::Terms, 1, [0; 6], [0; 17]).to_value(),
    ))
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::MalformedUuid);
    // Mandate::new refuses a Mandate outliving its Terms.
    let after = m.terms().expiration.add_secs(1).expect("in range");
    assert!(
        Mandate::new(
            m.mandate_id,
            m.offer_refs.clone(),
            m.request_refs.clone(),
            m.terms(),
            m.delegation_attestations.clone(),
            None,
            m.commitment_timestamp,
            after,
            None
        )
        .is_err()
    );
}

#[test]
fn manifest_structural_rules() {
    let mut m = sample(arb_manifest());
    m.manifest_version = "1.0".into();
    m.payment_rails.clear();
    m.extensions = Some(vec![ExtensionRef::new("acme.ext.x", "1.0.0")]);
    let e = CapabilityManifest::from_value(&m.to_value()).unwrap_err();
    assert!(e.has("manifest_version", "SPEC-III-B-1-02"), "{e}");
    assert!(e.has("payment_rails", "SPEC-III-B-1-02"), "{e}");
    assert!(e.has("extensions[0].id", "SPEC-XI-09"), "{e}");
}

// ---------------------------------------------------------------------------------------
// Matching and merging (PROFILE G-31, G-50)
// ---------------------------------------------------------------------------------------

fn matching_pair() -> (Offer, Request, Timestamp) {
    let mut offer = sample(arb_offer());
    let mut request = sample(arb_request());
    offer.value_type = Classifier::parse("inference.text_generation").expect("valid");
    request.value_type = Classifier::parse("inference").expect("valid");
    let now = Timestamp::from_unix_secs(1_800_000_000).expect("in range");
    offer.validity_window.not_before = now.add_secs(-3600).expect("in range");
    offer.validity_window.not_after = now.add_secs(3600).expect("in range");
    offer.terms_template.price =
        PriceSpec::new(Number::Float(0.08), PriceUnit::parse("USD").expect("unit"));
    offer.terms_template.delivery.max_latency_ms = Some(500);
    offer
        .terms_template
        .quality
        .retain(|(k, _)| k.as_text() != Some("accuracy_threshold"));
    offer
        .terms_template
        .quality
        .push((Value::text("accuracy_threshold"), Value::Float(0.9)));
    offer.geographic_constraints = Some(vec!["US".into(), "DE".into()]);
    offer.capacity = Some(3);
    offer.metadata = None;
    offer.unknown.clear();
    request.unknown.clear();
    let c = &mut request.constraints;
    c.budget_ceiling = Some(PriceSpec::new(
        Number::Float(0.08),
        PriceUnit::parse("USD").expect("unit"),
    ));
    c.max_latency_ms = Some(500);
    c.accuracy_threshold = Some(0.9);
    c.jurisdiction = Some(vec!["US-CA".into()]);
    (offer, request, now)
}

#[test]
fn matching_rules() {
    let (offer, request, now) = matching_pair();
    assert_eq!(matches(&offer, &request, now, &[]), Ok(()));

    let check = |f: &dyn Fn(&mut Offer, &mut Request), want: fn(&MatchRefusal) -> bool| {
        let (mut o, mut r, _) = matching_pair();
        f(&mut o, &mut r);
        let got = matches(&o, &r, now, &[]);
        assert!(got.as_ref().err().is_some_and(want), "{got:?}");
    };
    check(
        &|o, _| o.value_type = Classifier::parse("services").expect("valid"),
        |e| matches!(e, MatchRefusal::ValueType { .. }),
    );
    check(
        &|_, r| r.value_type = Classifier::parse("inference.text_generation.chat").expect("valid"),
        |e| matches!(e, MatchRefusal::ValueType { .. }),
    );
    check(
        &|o, _| o.validity_window.not_after = Timestamp::from_unix_secs(1_700_000_000).expect("t"),
        |e| matches!(e, MatchRefusal::OutsideValidity { .. }),
    );
    check(
        &|o, _| o.terms_template.price.amount = Number::Float(0.09),
        |e| matches!(e, MatchRefusal::OverBudget { .. }),
    );
    check(
        &|o, _| o.terms_template.price.unit = PriceUnit::parse("EUR").expect("unit"),
        |e| matches!(e, MatchRefusal::UnitMismatch { .. }),
    );
    check(
        &|o, _| o.terms_template.delivery.max_latency_ms = Some(501),
        |e| matches!(e, MatchRefusal::Latency { .. }),
    );
    check(&|_, r| r.constraints.accuracy_threshold = Some(0.95), |e| {
        matches!(e, MatchRefusal::Accuracy { .. })
    });
    check(
        &|o, _| o.geographic_constraints = Some(vec!["DE".into()]),
        |e| *e == MatchRefusal::Jurisdiction,
    );
    check(
        &|o, _| {
            o.metadata = Some(vec![(
                Value::text("prohibited_jurisdictions"),
                Value::Array(vec![Value::text("US")]),
            )])
        },
        |e| *e == MatchRefusal::Jurisdiction,
    );
    check(&|o, _| o.capacity = Some(0), |e| {
        *e == MatchRefusal::NoCapacity
    });
    let ext = Value::Array(vec![
        ExtensionRef::new("lemay.ext.escrow", "1.2.0").to_value(),
    ]);
    let ext2 = ext.clone();
    check(
        &move |o, _| {
            o.unknown
                .push((Value::text("required_extensions"), ext2.clone()))
        },
        |e| {
            matches!(e, MatchRefusal::ExtensionUnsupported { .. })
                && e.code() == Some(ErrorCode::RequiredExtensionUnsupported)
        },
    );
    // Cheaper, unconstrained, and extension-supported variants match.
    let (mut o, mut r, _) = matching_pair();
    o.terms_template.price.amount = Number::Int(0);
    r.constraints.jurisdiction = None;
    r.constraints.max_latency_ms = None;
    r.unknown.push((Value::text("required_extensions"), ext));
    assert_eq!(
        matches(
            &o,
            &r,
            now,
            &[ExtensionRef::new("lemay.ext.escrow", "1.4.0")]
        ),
        Ok(())
    );
    assert!(
        matches(
            &o,
            &r,
            now,
            &[ExtensionRef::new("lemay.ext.escrow", "2.0.0")]
        )
        .is_err()
    );
    // Budget equal at cent precision: 0.1 + 0.2 vs 0.3.
    o.terms_template.price.amount = Number::Float(0.1 + 0.2);
    r.constraints.budget_ceiling = Some(PriceSpec::new(
        Number::Float(0.3),
        PriceUnit::parse("USD").expect("unit"),
    ));
    assert_eq!(
        matches(
            &o,
            &r,
            now,
            &[ExtensionRef::new("lemay.ext.escrow", "1.2.0")]
        ),
        Ok(())
    );
}

#[test]
fn merging_rules() {
    let mut results: Vec<IndexResult> = sample(vec(arb_index_result(), 4));
    for (i, r) in results.iter_mut().enumerate() {
        r.freshness = Timestamp::from_unix_secs(1_000 + i as i64).expect("t");
    }
    let resp = |rs: Vec<IndexResult>| IndexQueryResponse {
        results: rs,
        cursor: None,
        unknown: Map::new(),
    };
    // Union, dedupe of identical offers (freshest kept), newest first.
    let mut dup = results[0].clone();
    dup.freshness = Timestamp::from_unix_secs(5_000).expect("t");
    let merged = merge_results(vec![
        resp(results[..3].to_vec()),
        resp(vec![dup.clone(), results[3].clone()]),
    ])
    .expect("no conflict");
    assert_eq!(merged.len(), 4);
    assert_eq!(merged[0], dup);
    assert!(merged.windows(2).all(|w| w[0].freshness >= w[1].freshness));
    // Same offer_id, different bytes → both dropped, 0100.
    let mut clash = results[1].clone();
    clash.offer.description.human.push('!');
    let e = merge_results(vec![resp(results.clone()), resp(vec![clash])]).unwrap_err();
    assert_eq!(e.code(), ErrorCode::UuidReuse);
    assert_eq!(e.conflicts, vec![results[1].offer.offer_id]);
    assert_eq!(e.merged.len(), 3);
    assert!(
        e.merged
            .iter()
            .all(|r| r.offer.offer_id != results[1].offer.offer_id)
    );
    assert_eq!(merge_results(vec![]).expect("empty"), vec![]);
}

#[test]
fn revocation_applies_only_to_the_offering_agent() {
    let offer = sample(arb_offer());
    let mut rev = sample(arb_revocation());
    rev.offer_id = offer.offer_id;
    rev.agent_id = offer.agent_id.clone();
    assert!(rev.applies_to(&offer));
    rev.agent_id = Did::from_digest([0xAB; 32]);
    assert!(!rev.applies_to(&offer));
    let t = Timestamp::from_unix_secs(0).expect("t");
    assert!(!OfferRevocation::removal_due(t, t.add_secs(29).expect("t")));
    assert!(OfferRevocation::removal_due(t, t.add_secs(30).expect("t")));
}
