//! Settlement, Verification and Attribution layers between real agents on loopback
//! (MTPSync over mutual TLS 1.3): settlement notices over `Agent/Settle`, deliveries over
//! `Agent/Deliver`, Receipts and Attribution Records over `Agent/Verify`, error
//! notifications over `Agent/Notify` (SPEC III-E, III-F, III-G, VI; PROFILE G-20..G-23).
//!
//! Committed transactions are built directly (Terms and a fully signed Mandate on every
//! side); negotiation and commitment are tested elsewhere.

use std::net::SocketAddr;
use std::time::Duration;

use mtp_protocol::attribution::{AttributionRecord, coalition_key};
use mtp_protocol::audit::AuditTrail;
use mtp_protocol::cbor::Value;
use mtp_protocol::commitment::{DelegationAttestation, Mandate};
use mtp_protocol::errors::{Coded, ErrorCode};
use mtp_protocol::identity::Did;
use mtp_protocol::primitives::offer::SettlementTiming;
use mtp_protocol::primitives::receipt::Outcome;
use mtp_protocol::primitives::terms::{
    DisputeResolution, TermsDelivery, TermsPrice, TermsSettlement,
};
use mtp_protocol::primitives::{
    CborObject, MultiSigned, Number, Participant, PriceUnit, Receipt, Role, SingleSigned, Terms,
};
use mtp_protocol::state_machine::{MandateStatus, TxEvent, TxState};
use mtp_protocol::uuid::{MtpUuid, ObjectType};
use mtp_protocol::verification::{Decimal, DisputeInitiationRecord};
use mtp_protocol::wire;
use mtp_reference_agent::agent::Agent;
use mtp_reference_agent::config::AgentConfig;
use mtp_reference_agent::deal::{Deal, Role as DealRole};
use mtp_reference_agent::events::EventKind;
use mtp_reference_agent::layers::{attribution, settlement, verification};
use mtp_reference_agent::runtime::{RunningAgent, start};
use mtp_reference_agent::services::control::{ControlError, ControlResult};
use mtp_reference_agent::transport::sync::framing::Rpc;

struct Node {
    run: RunningAgent,
    _dir: tempfile::TempDir,
}

impl Node {
    fn a(&self) -> &Agent {
        &self.run.agent
    }
}

async fn nodes(n: u8) -> Vec<Node> {
    let mut out = Vec::new();
    for i in 0..n {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = AgentConfig {
            name: format!("agent-{i}"),
            state_dir: dir.path().to_path_buf(),
            sync_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..AgentConfig::default()
        };
        let run = start(config, [i + 1; 32], None)
            .await
            .expect("agent starts");
        out.push(Node { run, _dir: dir });
    }
    for x in &out {
        for y in &out {
            if x.a().did() != y.a().did() {
                x.a().add_peer(y.a().document()).expect("peer");
            }
        }
    }
    out
}

fn usd() -> PriceUnit {
    PriceUnit::parse("USD").expect("USD")
}

/// A committed transaction on every party: Terms and Mandate signed by all, states
/// Initiated → Negotiating → Committed, the Mandate Active.
fn commit(parties: &[(&Agent, Role)], amount: Number) -> [u8; 32] {
    let req = parties[0].0;
    let now = req.now();
    let participants: Vec<Participant> = parties
        .iter()
        .map(|(a, r)| Participant::new(a.keys.did.clone(), *r))
        .collect();
    let mut terms = Terms {
        terms_id: req.new_uuid(ObjectType::Terms),
        participants,
        offer_ref: req.new_uuid(ObjectType::Offer),
        request_ref: req.new_uuid(ObjectType::Request),
        price: TermsPrice {
            amount,
            unit: usd(),
            volume_discount: None,
            unknown: Vec::new(),
        },
        delivery: TermsDelivery::new("synchronous"),
        quality: Vec::new(),
        dispute_resolution: DisputeResolution::new("automated_arbitration"),
        settlement: TermsSettlement::new("ledger", SettlementTiming::OnVerification),
        attribution_method: None,
        expiration: now.add_secs(3600).expect("time"),
        negotiation_log: Vec::new(),
        signatures: Vec::new(),
        unknown: Vec::new(),
    };
    for (a, _) in parties {
        terms
            .add_signature(&a.did(), &a.keys.signing, None)
            .expect("terms signature");
    }
    let mut mandate = Mandate::new(
        req.new_uuid(ObjectType::Mandate),
        vec![terms.offer_ref],
        vec![terms.request_ref],
        &terms,
        parties
            .iter()
            .map(|(a, _)| DelegationAttestation {
                agent_id: a.keys.did.clone(),
                delegation_chain: Vec::new(),
                unknown: Vec::new(),
            })
            .collect(),
        None,
        now,
        now.add_secs(1800).expect("time"),
        None,
    )
    .expect("mandate");
    for (a, _) in parties {
        mandate
            .add_signature(&a.did(), &a.keys.signing, None)
            .expect("mandate signature");
    }
    let tx = *terms.terms_id.as_bytes();
    let dids: Vec<String> = parties.iter().map(|(a, _)| a.did()).collect();
    for (a, r) in parties {
        a.transactions.begin(tx, dids.clone(), now).expect("begin");
        a.transactions
            .apply(&tx, TxEvent::NegotiationInitiated, now)
            .expect("T1");
        a.transactions
            .apply(&tx, TxEvent::MandateFullySigned, now)
            .expect("T2");
        let role = match r {
            Role::Requester => DealRole::Requester,
            Role::Provider => DealRole::Provider,
            Role::Contributor => DealRole::Contributor,
        };
        let me = a.did();
        let mut deal = Deal::new(
            tx,
            role,
            dids.iter().filter(|d| **d != me).cloned().collect(),
        );
        deal.terms = Some(terms.clone());
        deal.mandate = Some(mandate.clone());
        deal.mandate_status = Some(MandateStatus::Active);
        a.deals.insert(deal);
    }
    tx
}

fn args(tx: [u8; 32], extra: Vec<(&str, Value)>) -> Value {
    let mut v = vec![("transaction_id", Value::Bytes(tx.to_vec()))];
    v.extend(extra);
    Value::map(v)
}

async fn settle(a: &Agent, tx: [u8; 32], extra: Vec<(&str, Value)>) -> ControlResult {
    settlement::control(a, "settle", &args(tx, extra))
        .await
        .expect("settle is a settlement action")
}

async fn configure(a: &Agent, extra: Vec<(&str, Value)>) {
    let mut v = vec![("rail", Value::text("flaky"))];
    v.extend(extra);
    settlement::control(a, "configure_rail", &Value::map(v))
        .await
        .expect("settlement action")
        .expect("configured");
}

async fn deliver(a: &Agent, tx: [u8; 32], extra: Vec<(&str, Value)>) -> Value {
    verification::control(a, "deliver", &args(tx, extra))
        .await
        .expect("verification action")
        .expect("delivered")
}

async fn vaction(
    a: &Agent,
    action: &str,
    tx: [u8; 32],
    extra: Vec<(&str, Value)>,
) -> ControlResult {
    verification::control(a, action, &args(tx, extra))
        .await
        .expect("verification action")
}

fn state(a: &Agent, tx: [u8; 32]) -> TxState {
    a.transactions.state(&tx).expect("known transaction")
}

fn errors(a: &Agent, tx: [u8; 32]) -> Vec<u16> {
    a.transactions.get(&tx).expect("tx").errors
}

fn mtp_code(r: &ControlResult) -> Option<ErrorCode> {
    match r {
        Err(ControlError::Mtp { code, .. }) => Some(*code),
        _ => None,
    }
}

/// `(settlement_op, result)` of every settlement audit entry.
fn settlement_ops(a: &Agent, tx: [u8; 32]) -> Vec<(String, String)> {
    let bytes = a.transactions.export_audit(&tx).expect("audit");
    let entries = AuditTrail::from_cbor_sequence(&bytes).expect("entries");
    AuditTrail::verify(&entries).expect("hash chain holds");
    entries
        .iter()
        .filter_map(|e| {
            let op = e.settlement_op.clone()?;
            let result = e
                .extensions
                .iter()
                .find(|(k, _)| k == "result")
                .map(|(_, v)| match v {
                    Value::Text(t) => t.clone(),
                    other => other.as_u64().map(|c| c.to_string()).unwrap_or_default(),
                })
                .unwrap_or_default();
            Some((op, result))
        })
        .collect()
}

fn balance(a: &Agent, rail: &str, who: &Agent) -> Decimal {
    a.settlement
        .balance(rail, &who.did(), "USD")
        .expect("ledger balance")
}

fn cents(c: i128) -> Decimal {
    Decimal {
        mantissa: c,
        scale: 2,
    }
}

fn received(a: &Agent, tx: [u8; 32], code: u16) -> bool {
    a.events.snapshot().iter().any(|e| {
        e.kind == EventKind::ErrorReceived && e.transaction_id == Some(tx) && e.code == Some(code)
    })
}

fn receipt_of(v: &Value) -> Receipt {
    Receipt::from_cbor(
        v.get("receipt")
            .and_then(Value::as_bytes)
            .expect("receipt bytes"),
    )
    .expect("valid receipt")
}

fn mandate_id(a: &Agent, tx: [u8; 32]) -> MtpUuid {
    a.deals
        .get(&tx)
        .and_then(|d| d.mandate)
        .map(|m| m.mandate_id)
        .expect("mandate")
}

#[tokio::test]
async fn ledger_settlement_delivery_and_the_four_verification_methods() {
    let n = nodes(3).await;
    let (r, p, v) = (n[0].a(), n[1].a(), n[2].a());
    for (i, method) in ["attestation", "evidence", "computation", "third_party"]
        .into_iter()
        .enumerate()
    {
        let tx = commit(&[(r, Role::Requester), (p, Role::Provider)], Number::Int(5));
        let s = settle(r, tx, vec![]).await.expect("settled");
        assert_eq!(s.get("status").and_then(Value::as_text), Some("confirmed"));
        assert_eq!(state(r, tx), TxState::Verifying, "{method}");
        assert_eq!(state(p, tx), TxState::Verifying, "{method}: notice applied");
        assert!(p.deals.get(&tx).and_then(|d| d.settlement).is_some());
        assert_eq!(
            settlement_ops(r, tx),
            vec![
                ("initiate".into(), "ok".into()),
                ("confirm".into(), "ok".into()),
                ("query".into(), "ok".into())
            ]
        );
        if method == "computation" {
            // The requester pulls: delivery_request with the input, signed delivery back.
            deliver(r, tx, vec![("input", Value::Bytes(b"2+2".to_vec()))]).await;
        } else {
            deliver(
                p,
                tx,
                vec![("payload", Value::Bytes(b"the answer".to_vec()))],
            )
            .await;
        }
        assert!(r.verification.delivery(&tx).is_some(), "{method}: stored");
        let out = if method == "third_party" {
            let terms = r.deals.get(&tx).and_then(|d| d.terms).expect("terms");
            let report = vec![(Value::text("report"), Value::text("independently checked"))];
            let signed = verification::third_party_receipt(
                v,
                mandate_id(r, tx),
                terms.participants.clone(),
                Outcome::Fulfilled,
                report,
            )
            .expect("verifier signs");
            let evidence = Value::map([("receipt", Value::Bytes(signed.to_cbor()))]);
            vaction(
                r,
                "verify",
                tx,
                vec![("method", Value::text(method)), ("evidence", evidence)],
            )
            .await
        } else {
            vaction(r, "verify", tx, vec![("method", Value::text(method))]).await
        }
        .expect("verified");
        let receipt = receipt_of(&out);
        assert_eq!(receipt.outcome, Outcome::Fulfilled, "{method}");
        assert_eq!(receipt.verification.method.as_str(), method);
        assert_eq!(state(r, tx), TxState::Fulfilled, "{method}");
        assert_eq!(
            state(p, tx),
            TxState::Fulfilled,
            "{method}: receipt applied"
        );
        let theirs = p.deals.get(&tx).expect("deal").receipts;
        assert_eq!(theirs.len(), 1);
        assert!(
            theirs[0].to_cbor() == receipt.to_cbor(),
            "{method}: same receipt on both sides"
        );
        for a in [r, p] {
            assert!(
                a.store
                    .receipts()
                    .expect("receipts")
                    .iter()
                    .any(|(id, _)| id == receipt.receipt_id.as_bytes()),
                "{method}: stored"
            );
        }
        assert_eq!(balance(r, "ledger", p), cents(500 * (i as i128 + 1)));
        assert_eq!(balance(r, "ledger", r), cents(-500 * (i as i128 + 1)));
    }

    // Tampered evidence: 6100, a failed Receipt, both parties Failed, the payment reversed.
    let tx = commit(&[(r, Role::Requester), (p, Role::Provider)], Number::Int(5));
    settle(r, tx, vec![]).await.expect("settled");
    deliver(p, tx, vec![("payload", Value::Bytes(b"data".to_vec()))]).await;
    let out = vaction(
        r,
        "verify",
        tx,
        vec![
            ("method", Value::text("evidence")),
            (
                "evidence",
                Value::map([("payload_sha256", Value::Bytes(vec![0; 32]))]),
            ),
        ],
    )
    .await
    .expect("a failed receipt");
    let receipt = receipt_of(&out);
    assert_eq!(receipt.outcome, Outcome::Failed);
    assert_eq!(receipt.failure_classification, Some(6100));
    assert_eq!(state(r, tx), TxState::Failed);
    assert_eq!(state(p, tx), TxState::Failed);
    assert!(errors(r, tx).contains(&6100));
    assert!(received(p, tx, 6100), "the provider is notified");
    assert_eq!(
        balance(r, "ledger", p),
        cents(2000),
        "the failed one is reversed"
    );
    assert!(settlement_ops(r, tx).contains(&("reverse".into(), "ok".into())));

    // A wrong computation result fails the computation check.
    let tx = commit(&[(r, Role::Requester), (p, Role::Provider)], Number::Int(5));
    settle(r, tx, vec![]).await.expect("settled");
    deliver(
        p,
        tx,
        vec![
            ("input", Value::Bytes(b"2+2".to_vec())),
            ("payload", Value::Bytes(b"5".to_vec())),
        ],
    )
    .await;
    let out = vaction(
        r,
        "verify",
        tx,
        vec![("method", Value::text("computation"))],
    )
    .await
    .expect("a failed receipt");
    assert_eq!(receipt_of(&out).outcome, Outcome::Failed);
    assert_eq!(state(p, tx), TxState::Failed);

    // A Receipt before settlement confirmation is refused and changes nothing (SPEC-IV-02).
    let tx = commit(&[(r, Role::Requester), (p, Role::Provider)], Number::Int(5));
    let early = vaction(r, "verify", tx, vec![]).await;
    assert_eq!(mtp_code(&early), Some(ErrorCode::UndefinedTransition));
    assert_eq!(state(r, tx), TxState::Committed);
    for x in n {
        x.run.shutdown().await.expect("shutdown");
    }
}

#[tokio::test]
async fn flaky_rail_unavailable_twice_then_settles_with_audited_retries() {
    let n = nodes(2).await;
    let (r, p) = (n[0].a(), n[1].a());
    configure(
        r,
        vec![
            ("mode", Value::text("unavailable")),
            ("unavailable_attempts", Value::from(2u64)),
        ],
    )
    .await;
    let tx = commit(&[(r, Role::Requester), (p, Role::Provider)], Number::Int(7));
    let s = settle(r, tx, vec![("rail", Value::text("flaky"))])
        .await
        .expect("settled after two retries");
    assert_eq!(s.get("rail").and_then(Value::as_text), Some("flaky"));
    assert_eq!(
        settlement_ops(r, tx),
        vec![
            ("initiate".into(), "5200".into()),
            ("initiate".into(), "5200".into()),
            ("initiate".into(), "ok".into()),
            ("confirm".into(), "ok".into()),
            ("query".into(), "ok".into()),
        ]
    );
    assert_eq!(
        errors(r, tx).iter().filter(|c| **c == 5200).count(),
        2,
        "every failed attempt is audited"
    );
    assert_eq!(state(r, tx), TxState::Verifying);
    assert_eq!(state(p, tx), TxState::Verifying);
    assert_eq!(balance(r, "flaky", p), cents(700));
    for x in n {
        x.run.shutdown().await.expect("shutdown");
    }
}

#[tokio::test]
async fn rail_unavailable_beyond_the_retry_limit_escalates_and_fails_both_sides() {
    let n = nodes(2).await;
    let (r, p) = (n[0].a(), n[1].a());
    configure(
        r,
        vec![
            ("mode", Value::text("unavailable")),
            ("unavailable_attempts", Value::from(10u64)),
        ],
    )
    .await;
    let tx = commit(&[(r, Role::Requester), (p, Role::Provider)], Number::Int(7));
    let res = settle(r, tx, vec![("rail", Value::text("flaky"))]).await;
    assert_eq!(mtp_code(&res), Some(ErrorCode::RailTemporarilyUnavailable));
    let attempts = settlement_ops(r, tx);
    assert_eq!(
        attempts.len(),
        1 + mtp_protocol::profile::RETRY_LIMIT as usize,
        "{attempts:?}"
    );
    assert_eq!(state(r, tx), TxState::Failed);
    let history = r.transactions.get(&tx).expect("tx").history;
    assert_eq!(
        &history[history.len() - 2..],
        &[TxState::Settling, TxState::Failed]
    );
    assert_eq!(
        state(p, tx),
        TxState::Failed,
        "the counterparty is notified"
    );
    assert!(received(p, tx, 5200));
    assert!(r.events.snapshot().iter().any(|e| {
        e.kind == EventKind::NotificationSent && e.peer.as_deref() == Some(p.did().as_str())
    }));
    for x in n {
        x.run.shutdown().await.expect("shutdown");
    }
}

#[tokio::test]
async fn failure_after_confirmation_is_reversed() {
    let n = nodes(2).await;
    let (r, p) = (n[0].a(), n[1].a());
    configure(r, vec![("mode", Value::text("fail"))]).await;
    let tx = commit(&[(r, Role::Requester), (p, Role::Provider)], Number::Int(9));
    let res = settle(r, tx, vec![("rail", Value::text("flaky"))]).await;
    assert_eq!(mtp_code(&res), Some(ErrorCode::SettlementFailed));
    let ops: Vec<String> = settlement_ops(r, tx).into_iter().map(|(o, _)| o).collect();
    assert_eq!(ops, ["initiate", "confirm", "query", "reverse"]);
    assert_eq!(balance(r, "flaky", p), cents(0), "no net transfer");
    assert_eq!(balance(r, "flaky", r), cents(0));
    assert_eq!(state(r, tx), TxState::Failed);
    assert_eq!(state(p, tx), TxState::Failed);
    assert!(received(p, tx, 5101));
    for x in n {
        x.run.shutdown().await.expect("shutdown");
    }
}

#[tokio::test]
async fn reversal_failure_is_5100() {
    let n = nodes(2).await;
    let (r, p) = (n[0].a(), n[1].a());
    // Settlement fails after the transfer and the reversal fails too.
    configure(
        r,
        vec![
            ("mode", Value::text("fail_reversal")),
            ("fail_at", Value::text("query")),
        ],
    )
    .await;
    let tx = commit(&[(r, Role::Requester), (p, Role::Provider)], Number::Int(3));
    let res = settle(r, tx, vec![("rail", Value::text("flaky"))]).await;
    assert_eq!(mtp_code(&res), Some(ErrorCode::SettlementReversalFailed));
    assert!(errors(r, tx).contains(&5100));
    assert!(errors(r, tx).contains(&5101));
    assert_eq!(state(p, tx), TxState::Failed);
    assert!(received(p, tx, 5100));

    // A failed Receipt on a settled transaction triggers the reversal (SPEC-II-D-07),
    // which fails: 5100 raised and every party notified.
    configure(r, vec![("mode", Value::text("fail_reversal"))]).await;
    let tx = commit(&[(r, Role::Requester), (p, Role::Provider)], Number::Int(3));
    settle(r, tx, vec![("rail", Value::text("flaky"))])
        .await
        .expect("settled");
    deliver(p, tx, vec![]).await;
    let out = vaction(
        r,
        "verify",
        tx,
        vec![
            ("method", Value::text("attestation")),
            ("outcome", Value::text("failed")),
        ],
    )
    .await
    .expect("failed receipt");
    assert_eq!(receipt_of(&out).outcome, Outcome::Failed);
    assert_eq!(state(r, tx), TxState::Failed);
    assert_eq!(state(p, tx), TxState::Failed);
    assert!(errors(r, tx).contains(&5100));
    assert!(received(p, tx, 5100));
    assert_eq!(balance(r, "flaky", p), cents(600), "nothing came back");
    for x in n {
        x.run.shutdown().await.expect("shutdown");
    }
}

#[tokio::test]
async fn partial_settlement_amount_is_exact() {
    let n = nodes(2).await;
    let (r, p) = (n[0].a(), n[1].a());
    let tx = commit(
        &[(r, Role::Requester), (p, Role::Provider)],
        Number::Int(89),
    );
    let s = settle(r, tx, vec![("partial", Value::Float(0.3))])
        .await
        .expect("settled");
    let amount = |k: &str| {
        s.get(k)
            .and_then(|v| v.get("amount"))
            .and_then(Value::as_f64)
            .expect("amount")
    };
    assert_eq!(amount("adjusted_amount"), 26.7);
    assert_eq!(amount("reversal_amount"), 62.3);
    // The whole amount moves first (SPEC-III-E-2-02).
    assert_eq!(balance(r, "ledger", p), cents(8900));
    deliver(p, tx, vec![]).await;
    let out = vaction(
        r,
        "verify",
        tx,
        vec![
            ("method", Value::text("evidence")),
            ("outcome", Value::text("partial")),
        ],
    )
    .await
    .expect("partial receipt");
    let receipt = receipt_of(&out);
    assert_eq!(receipt.outcome, Outcome::PartiallyFulfilled);
    assert_eq!(
        receipt
            .partial_fulfillment
            .as_ref()
            .map(|p| p.fulfillment_ratio),
        Some(0.3)
    );
    assert_eq!(state(r, tx), TxState::Disputed);
    assert_eq!(state(p, tx), TxState::Disputed);
    // round_half_even(89.00 × 0.3) = 26.70 kept, 62.30 reversed (PROFILE G-20).
    assert_eq!(balance(r, "ledger", p), cents(2670));
    assert_eq!(balance(r, "ledger", r), cents(-2670));
    assert_eq!(
        r.settlement.local(&tx).expect("local").reversed,
        cents(6230)
    );
    for x in n {
        x.run.shutdown().await.expect("shutdown");
    }
}

#[tokio::test]
async fn dispute_then_revised_receipt_with_predecessor() {
    let n = nodes(2).await;
    let (r, p) = (n[0].a(), n[1].a());
    let tx = commit(
        &[(r, Role::Requester), (p, Role::Provider)],
        Number::Int(20),
    );
    settle(r, tx, vec![]).await.expect("settled");
    deliver(p, tx, vec![]).await;
    let out = vaction(
        r,
        "dispute",
        tx,
        vec![
            ("reason", Value::text("accuracy below the agreed threshold")),
            (
                "claimed_amount",
                Value::map([("amount", Value::from(20u64)), ("unit", Value::text("USD"))]),
            ),
            (
                "violated_provisions",
                Value::Array(vec![Value::text("quality.accuracy_threshold")]),
            ),
        ],
    )
    .await
    .expect("disputed");
    let record = DisputeInitiationRecord::from_cbor(
        out.get("dispute")
            .and_then(Value::as_bytes)
            .expect("record"),
    )
    .expect("valid record");
    record
        .verify_signature(&r.keys.signing.public_key())
        .expect("signed by the requester");
    assert_eq!(record.mandate_id, mandate_id(r, tx));
    assert_eq!(record.proposed_resolution, "refund 20 USD");
    let disputed = receipt_of(&out);
    assert_eq!(disputed.outcome, Outcome::Disputed);
    assert!(record.matches_block(
        disputed.dispute_initiation.as_ref().expect("block"),
        &disputed.mandate_id
    ));
    assert_eq!(state(r, tx), TxState::Disputed);
    assert_eq!(state(p, tx), TxState::Disputed);
    let original = out
        .get("receipt")
        .and_then(Value::as_bytes)
        .expect("bytes")
        .to_vec();

    let out = vaction(
        r,
        "resolve_dispute",
        tx,
        vec![("outcome", Value::text("rejected"))],
    )
    .await
    .expect("resolved");
    let revised = receipt_of(&out);
    assert_eq!(revised.predecessor, Some(disputed.receipt_id));
    assert_eq!(revised.outcome, Outcome::Fulfilled);
    for a in [r, p] {
        assert_eq!(state(a, tx), TxState::Resolved);
        let receipts = a.deals.get(&tx).expect("deal").receipts;
        assert_eq!(receipts.len(), 2, "the original stays (PROFILE G-21)");
        let stored = a.store.receipts().expect("receipts");
        let kept = stored
            .iter()
            .find(|(id, _)| id == disputed.receipt_id.as_bytes())
            .map(|(_, b)| b.clone())
            .expect("original stored");
        assert_eq!(kept, original, "byte-identical");
    }
    assert_eq!(
        balance(r, "ledger", p),
        cents(2000),
        "rejected: no reversal"
    );

    // Upheld: a failed revised Receipt and a full reversal.
    let tx = commit(
        &[(r, Role::Requester), (p, Role::Provider)],
        Number::Int(20),
    );
    settle(r, tx, vec![]).await.expect("settled");
    deliver(p, tx, vec![]).await;
    vaction(
        r,
        "dispute",
        tx,
        vec![("reason", Value::text("never arrived"))],
    )
    .await
    .expect("disputed");
    let out = vaction(
        r,
        "resolve_dispute",
        tx,
        vec![("outcome", Value::text("upheld"))],
    )
    .await
    .expect("resolved");
    assert_eq!(receipt_of(&out).outcome, Outcome::Failed);
    assert_eq!(state(r, tx), TxState::Resolved);
    assert_eq!(state(p, tx), TxState::Resolved);
    assert_eq!(
        balance(r, "ledger", p),
        cents(2000),
        "the second payment came back"
    );
    for x in n {
        x.run.shutdown().await.expect("shutdown");
    }
}

/// v(S) = (Σ_{i∈S} wᵢ)²: φᵢ = wᵢ·Σw, share = wᵢ / Σw.
fn squares(w: &[f64]) -> Value {
    Value::Map(
        (0..1usize << w.len())
            .map(|m| {
                let s: f64 = w
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| m & (1 << i) != 0)
                    .map(|(_, x)| x)
                    .sum();
                (Value::text(coalition_key(m)), Value::Float(s * s))
            })
            .collect(),
    )
}

#[tokio::test]
async fn three_party_attribution_is_exact_and_in_the_receipt() {
    let n = nodes(3).await;
    let (r, p, c) = (n[0].a(), n[1].a(), n[2].a());
    let tx = commit(
        &[
            (r, Role::Requester),
            (p, Role::Provider),
            (c, Role::Contributor),
        ],
        Number::Int(30),
    );
    settle(r, tx, vec![]).await.expect("settled");
    assert_eq!(state(c, tx), TxState::Verifying);
    deliver(p, tx, vec![]).await;
    // Three parties: no Receipt without an Attribution Record (BIND-VII-D-04).
    let early = vaction(r, "verify", tx, vec![]).await;
    assert_eq!(mtp_code(&early), Some(ErrorCode::SchemaViolation));
    let out = attribution::control(
        r,
        "attribute",
        &args(tx, vec![("coalition_values", squares(&[1.0, 2.0, 3.0]))]),
    )
    .await
    .expect("attribution action")
    .expect("attributed");
    let record =
        AttributionRecord::from_cbor(out.get("record").and_then(Value::as_bytes).expect("record"))
            .expect("valid record");
    assert_eq!(record.methodology.as_str(), "exact_shapley");
    let shares: Vec<f64> = record.contributors.iter().map(|c| c.share).collect();
    for (got, want) in shares.iter().zip([1.0 / 6.0, 1.0 / 3.0, 0.5]) {
        assert!((got - want).abs() < 1e-12, "{shares:?}");
    }
    assert!(
        p.attribution.get(&tx) == Some(record.clone()),
        "verified by the provider"
    );
    assert!(
        c.attribution.get(&tx) == Some(record.clone()),
        "verified by the contributor"
    );
    let out = vaction(r, "verify", tx, vec![]).await.expect("receipt");
    let receipt = receipt_of(&out);
    let embedded = receipt
        .attribution
        .as_ref()
        .map(|v| AttributionRecord::from_value(v).expect("valid appendix"));
    assert!(
        embedded == Some(record.clone()),
        "the record is the Receipt's appendix"
    );
    for a in [r, p, c] {
        assert_eq!(state(a, tx), TxState::Fulfilled);
        let theirs = a.deals.get(&tx).expect("deal").receipts;
        assert_eq!(theirs.len(), 1);
        assert!(
            theirs[0].to_cbor() == receipt.to_cbor(),
            "same receipt everywhere"
        );
    }
    for x in n {
        x.run.shutdown().await.expect("shutdown");
    }
}

#[tokio::test]
async fn twelve_contributors_are_approximated_within_the_recorded_bound() {
    let n = nodes(2).await;
    let (r, p) = (n[0].a(), n[1].a());
    let tx = commit(
        &[(r, Role::Requester), (p, Role::Provider)],
        Number::Int(12),
    );
    let mut contributors = vec![Value::text(r.did()), Value::text(p.did())];
    contributors.extend((3..=12u8).map(|i| Value::text(Did::from_digest([i; 32]).as_str())));
    let w: Vec<f64> = (1..=12).map(f64::from).collect();
    let out = attribution::control(
        r,
        "attribute",
        &args(
            tx,
            vec![
                ("coalition_values", squares(&w)),
                ("contributors", Value::Array(contributors)),
                (
                    "config",
                    Value::map([
                        ("methodology", Value::text("approximate_shapley")),
                        ("error_bound", Value::Float(0.05)),
                    ]),
                ),
            ],
        ),
    )
    .await
    .expect("attribution action")
    .expect("attributed");
    let record =
        AttributionRecord::from_cbor(out.get("record").and_then(Value::as_bytes).expect("record"))
            .expect("valid record");
    assert_eq!(record.methodology.as_str(), "approximate_shapley");
    assert_eq!(record.error_bound, Some(0.05));
    let sampling = record
        .sampling
        .as_ref()
        .expect("sampling block (PROFILE G-23)");
    let total: f64 = w.iter().sum();
    let values: std::collections::BTreeMap<usize, f64> = (0..1usize << 12)
        .map(|m| {
            let s: f64 = (0..12).filter(|i| m & (1 << i) != 0).map(|i| w[i]).sum();
            (m, s * s)
        })
        .collect();
    let range = attribution::marginal_range(12, &values);
    assert_eq!(
        Some(sampling.permutations),
        attribution::hoeffding_permutations(12, range, total * total, 0.05, 0.95)
    );
    let confidence = sampling
        .unknown
        .iter()
        .find(|(k, _)| k.as_text() == Some("confidence"))
        .and_then(|(_, v)| v.as_f64())
        .expect("confidence recorded");
    assert!(confidence >= 0.95);
    for (i, c) in record.contributors.iter().enumerate() {
        assert!(
            (c.share - w[i] / total).abs() <= 0.05,
            "contributor {i}: {} vs {}",
            c.share,
            w[i] / total
        );
    }
    assert!(
        p.attribution.get(&tx) == Some(record.clone()),
        "replayed by the provider"
    );

    // A record whose shares do not follow from its coalition values: 7100, refused on the
    // wire (INVALID_ARGUMENT), and the transaction ends on both sides (SPEC-VI-01).
    let x = Did::from_digest([99; 32]);
    let values: Vec<Number> = [0.0, 1.0, 2.0, 3.0, 3.0, 4.0, 5.0, 6.0]
        .into_iter()
        .map(Number::Float)
        .collect();
    let mut bad = AttributionRecord::exact(
        mandate_id(r, tx),
        vec![r.keys.did.clone(), p.keys.did.clone(), x],
        &values,
    )
    .expect("record");
    bad.contributors[0].share += 1e-3;
    bad.contributors[1].share -= 1e-3;
    bad.sign(&r.keys.signing, verification::key_id(r))
        .expect("signed");
    let frame = wire::Frame::new("attribution_record", bad.to_value()).expect("frame");
    let err = verification::call(r, &p.did(), Rpc::Verify, &frame, Some(tx))
        .await
        .expect_err("refused");
    assert_eq!(err.code(), ErrorCode::ShapleyComputationDivergence);
    match &err {
        verification::SendError::Remote(remote) => {
            assert_eq!(remote.grpc_code, tonic::Code::InvalidArgument);
        }
        other => panic!("unexpected {other}"),
    }
    assert_eq!(state(p, tx), TxState::Failed);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(state(r, tx), TxState::Failed, "notified of 7100");
    for x in n {
        x.run.shutdown().await.expect("shutdown");
    }
}
