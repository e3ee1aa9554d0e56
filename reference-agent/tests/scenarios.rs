//! Process-level scenarios (issue 4 "Done when"): `mtp-agent run` processes talking over
//! real gRPC/mutual TLS 1.3 and a real NATS JetStream (`nats-server` on a free loopback
//! port), driven through their test-control interfaces (docs/iut-contract.md) exactly as
//! the conformance harness drives an IUT.
//!
//! 1. a full 2-party transaction through all seven layers;
//! 2. a 3-party transaction with Shapley attribution in the receipt;
//! 3. a conditional mandate that voids when its precondition expires;
//! 4. a disputed receipt that ends Resolved with a revised receipt;
//! 5. an offer revoked mid-negotiation;
//! 6. a settlement on the failing rail that retries, escalates and ends Failed with the
//!    reversal;
//!
//! plus the negative transport scenarios (BIND V-A; PROFILE G-37): off-profile peers are
//! refused, and each refusal is in the agent trail (0109) and an `handshake_refused` event;
//! and the CLI (`--help`, `fingerprint`, `did`, `config-template`, `control`, exit codes,
//! graceful SIGTERM, restart with the state directory).
//!
//! Without `nats-server` the NATS scenarios fail with the install hint, unless
//! `MTP_SKIP_NATS=1`.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mtp_protocol::cbor::{self, Value};
use mtp_protocol::primitives::common::tdate_value;
use mtp_protocol::primitives::{CborObject, Receipt};
use mtp_reference_agent::transport::nats::NatsServer;
use support::*;

/// Value type used by every scenario (PROFILE G-07).
const VT: &str = "inference.text";
/// Generous bound for asynchronous progress (NATS propagation, retries with back-off).
const LONG: Duration = Duration::from_secs(60);

/// A broker, a Principal, an index agent and the named agents, all introduced to each
/// other and provisioned.
struct World {
    _nats: NatsServer,
    principal: Principal,
    index: AgentProcess,
    agents: Vec<AgentProcess>,
}

impl World {
    async fn new(names: &[&str]) -> Option<World> {
        let nats = nats().await?;
        let index_spec = AgentSpec::new("index", 1).nats(Some(&nats)).index();
        let specs: Vec<AgentSpec> = names
            .iter()
            .enumerate()
            .map(|(i, n)| AgentSpec::new(n, 2 + i as u8).nats(Some(&nats)))
            .collect();
        let (index, agents) = tokio::join!(
            AgentProcess::spawn(index_spec),
            futures::future::join_all(specs.into_iter().map(AgentProcess::spawn))
        );
        let all: Vec<&AgentProcess> = std::iter::once(&index).chain(agents.iter()).collect();
        introduce(&all).await;
        let principal = Principal::new(0x50);
        for a in &agents {
            principal.provision(a, &["inference"], 1000).await;
        }
        Some(World {
            _nats: nats,
            principal,
            index,
            agents,
        })
    }

    fn agent(&self, name: &str) -> &AgentProcess {
        self.agents
            .iter()
            .find(|a| a.name == name)
            .unwrap_or_else(|| panic!("no agent {name}"))
    }
}

fn offer_template(amount: u64, rail: &str) -> Value {
    m(vec![
        ("value_type", t(VT)),
        (
            "description",
            m(vec![
                ("human", t("text completion")),
                ("machine", m(vec![("model", t("reference"))])),
            ]),
        ),
        (
            "terms_template",
            m(vec![
                ("price", price(amount, "USD")),
                ("settlement", m(vec![("rail", t(rail))])),
            ]),
        ),
    ])
}

fn request_template(budget: u64) -> Value {
    m(vec![
        ("value_type", t(VT)),
        (
            "description",
            m(vec![
                ("human", t("summarise a text")),
                ("machine", m(vec![("task", t("summary"))])),
            ]),
        ),
        (
            "constraints",
            m(vec![("budget_ceiling", price(budget, "USD"))]),
        ),
    ])
}

/// The provider publishes a manifest and an offer on NATS only (no index given): the index
/// learns them from JetStream; the requester finds the offer by querying the index over
/// MTPSync. Returns the offer id.
async fn discover_over_nats(
    w: &World,
    provider: &AgentProcess,
    requester: &AgentProcess,
    rail: &str,
) -> Vec<u8> {
    provider
        .call(
            "publish_manifest",
            m(vec![
                (
                    "template",
                    m(vec![
                        ("value_types", arr(vec![t(VT)])),
                        ("payment_rails", arr(vec![t("ledger"), t("flaky")])),
                    ]),
                ),
                // No index over MTPSync: NATS only.
                ("indexes", arr(vec![])),
                ("via_nats", Value::Bool(true)),
            ]),
        )
        .await;
    let offer = provider
        .call(
            "publish_offer",
            m(vec![
                ("template", offer_template(5, rail)),
                ("indexes", arr(vec![])),
                ("via_nats", Value::Bool(true)),
            ]),
        )
        .await;
    let offer_id = bytes_of(&offer, "offer_id");
    let deadline = Instant::now() + LONG;
    loop {
        let r = requester
            .invoke(
                "query_index",
                m(vec![
                    ("index", t(&w.index.did)),
                    ("query", m(vec![("value_type", t(VT))])),
                ]),
            )
            .await;
        let found = r.as_ref().ok().is_some_and(|r| {
            r.get("results")
                .and_then(Value::as_array)
                .unwrap_or_default()
                .iter()
                .filter_map(Value::as_bytes)
                .filter_map(|b| cbor::from_slice(b).ok())
                .any(|item| {
                    item.get("offer")
                        .and_then(|o| o.get("offer_id"))
                        .and_then(Value::as_bytes)
                        == Some(offer_id.as_slice())
                })
        });
        if found {
            // The index received it from JetStream (runtime consumer → discovery layer).
            let events = w.index.events().await;
            assert!(
                events.iter().any(|e| {
                    e.get("kind").and_then(Value::as_text) == Some("message_received")
                        && e.get("frame_type").and_then(Value::as_text) == Some("offer")
                        && e.get("peer").and_then(Value::as_text) == Some(provider.did.as_str())
                }),
                "the index did not receive the offer over NATS"
            );
            return offer_id;
        }
        assert!(
            Instant::now() < deadline,
            "the offer never reached the index over NATS; last query: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Requester negotiates with `counterparties` until agreement; returns the transaction id.
async fn negotiate(
    requester: &AgentProcess,
    counterparties: &[&AgentProcess],
    offer_id: &[u8],
) -> Vec<u8> {
    let request = requester
        .call(
            "create_request",
            m(vec![("template", request_template(10))]),
        )
        .await;
    let request_id = bytes_of(&request, "request_id");
    let counterparty = match counterparties {
        [one] => t(&one.did),
        many => arr(many.iter().map(|a| t(&a.did)).collect()),
    };
    let r = requester
        .call(
            "negotiate",
            m(vec![
                ("counterparty", counterparty),
                ("offer_id", Value::Bytes(offer_id.to_vec())),
                ("request_id", Value::Bytes(request_id)),
                ("round_timeout_ms", u(10_000)),
                ("max_rounds", u(4)),
                ("wait", Value::Bool(true)),
            ]),
        )
        .await;
    let tx = bytes_of(&r, "transaction_id");
    if let Some(outcome) = r.get("outcome").and_then(Value::as_text) {
        assert!(
            !matches!(outcome, "rejected" | "timeout" | "exhausted" | "failed"),
            "negotiation outcome {outcome}"
        );
    }
    tx
}

async fn accept_policy(a: &AgentProcess, rail: &str) {
    a.call(
        "set_policy",
        m(vec![
            ("strategy", m(vec![("kind", t("accept"))])),
            ("rail", t(rail)),
            ("verification", t("attestation")),
        ]),
    )
    .await;
}

fn tx_args(tx: &[u8]) -> Vec<(&'static str, Value)> {
    vec![("transaction_id", Value::Bytes(tx.to_vec()))]
}

/// Negotiated, committed, settled and delivered: the transaction is Verifying.
async fn up_to_verifying(
    w: &World,
    requester: &AgentProcess,
    providers: &[&AgentProcess],
) -> Vec<u8> {
    for p in providers {
        accept_policy(p, "ledger").await;
    }
    accept_policy(requester, "ledger").await;
    let offer_id = discover_over_nats(w, providers[0], requester, "ledger").await;
    let tx = negotiate(requester, providers, &offer_id).await;
    let c = requester.call("commit", m(tx_args(&tx))).await;
    assert!(c.get("mandate_id").is_some(), "{c:?}");
    for a in std::iter::once(requester).chain(providers.iter().copied()) {
        a.wait_state(&tx, "committed", LONG).await;
    }
    let mut s = tx_args(&tx);
    s.push(("rail", t("ledger")));
    requester.call("settle", m(s)).await;
    for a in std::iter::once(requester).chain(providers.iter().copied()) {
        a.wait_state(&tx, "verifying", LONG).await;
    }
    // The provider delivers (contributors take part in the Terms, not in the delivery).
    let mut d = tx_args(&tx);
    d.push(("payload", Value::bytes(b"the summary".to_vec())));
    d.push(("content_type", t("text/plain")));
    providers[0].call("deliver", m(d)).await;
    tx
}

fn history(v: &Value) -> Vec<String> {
    texts_of(v, "history")
}

// ---- 1 ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s1_two_party_transaction_through_all_seven_layers() {
    let Some(w) = World::new(&["provider", "requester"]).await else {
        return;
    };
    let (p, r) = (w.agent("provider"), w.agent("requester"));
    let tx = up_to_verifying(&w, r, &[p]).await;
    let mut v = tx_args(&tx);
    v.push(("method", t("attestation")));
    v.push(("outcome", t("fulfilled")));
    let verified = r.call("verify", m(v)).await;
    let receipt = Receipt::from_cbor(&bytes_of(&verified, "receipt")).expect("receipt");
    assert_eq!(receipt.outcome.as_str(), "fulfilled");
    let want = [
        "initiated",
        "negotiating",
        "committed",
        "settling",
        "verifying",
        "fulfilled",
    ];
    for a in [p, r] {
        let view = a.wait_state(&tx, "fulfilled", LONG).await;
        assert_eq!(history(&view), want, "{}", a.name);
        assert!(codes_of(&view).is_empty(), "{}: {view:?}", a.name);
        // Every message, signature check and settlement operation is in the chained trail.
        let trail = a.audit(Some(&tx)).await;
        assert!(trail.iter().any(|e| e.message_hash.is_some()), "{}", a.name);
        assert!(
            trail.iter().any(|e| e.signature_check.is_some()),
            "{}",
            a.name
        );
    }
    let trail = r.audit(Some(&tx)).await;
    assert!(
        trail
            .iter()
            .any(|e| e.settlement_op.as_deref() == Some("initiate")),
        "settlement operations are audited"
    );
    assert!(r.transaction(&tx).await.get("receipt_ids").is_some());
    // The receipt verifies against the requester's published key (codec action).
    let ok = p
        .call(
            "codec_verify",
            m(vec![
                ("type", t("receipt")),
                ("cbor", Value::Bytes(bytes_of(&verified, "receipt"))),
                ("document", t(&r.document)),
            ]),
        )
        .await;
    assert_eq!(ok.get("ok").and_then(Value::as_bool), Some(true), "{ok:?}");
}

// ---- 2 ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s2_three_party_transaction_with_shapley_attribution_in_the_receipt() {
    let Some(w) = World::new(&["provider", "contributor", "requester"]).await else {
        return;
    };
    let (p, c, r) = (
        w.agent("provider"),
        w.agent("contributor"),
        w.agent("requester"),
    );
    let tx = up_to_verifying(&w, r, &[p, c]).await;
    // v over the three participants (indices in participants order), superadditive.
    let values = [
        ("", 0u64),
        ("0", 1),
        ("1", 2),
        ("2", 0),
        ("0,1", 5),
        ("0,2", 1),
        ("1,2", 2),
        ("0,1,2", 6),
    ];
    let mut a = tx_args(&tx);
    a.push((
        "coalition_values",
        Value::Map(values.iter().map(|(k, v)| (t(k), u(*v))).collect()),
    ));
    let attributed = r.call("attribute", m(a)).await;
    let record =
        mtp_protocol::attribution::AttributionRecord::from_cbor(&bytes_of(&attributed, "record"))
            .expect("attribution record");
    assert_eq!(record.contributors.len(), 3);
    let exact = mtp_protocol::attribution::verify_exact(&record).expect("exact Shapley");
    assert_eq!(exact.len(), 3);
    let sum: f64 = record.contributors.iter().map(|c| c.share).sum();
    assert!((sum - 1.0).abs() < 1e-9, "shares sum to {sum}");

    let mut v = tx_args(&tx);
    v.push(("method", t("attestation")));
    v.push(("outcome", t("fulfilled")));
    let verified = r.call("verify", m(v)).await;
    let receipt = Receipt::from_cbor(&bytes_of(&verified, "receipt")).expect("receipt");
    let appended = receipt
        .attribution
        .expect("attribution record appended to the receipt");
    let appended = mtp_protocol::attribution::AttributionRecord::from_value(&appended)
        .expect("appended record");
    assert_eq!(appended.contributors.len(), 3);
    for a in [p, c, r] {
        a.wait_state(&tx, "fulfilled", LONG).await;
    }
}

// ---- 3 ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_conditional_mandate_voids_when_its_precondition_expires() {
    let Some(w) = World::new(&["provider", "requester"]).await else {
        return;
    };
    let (p, r) = (w.agent("provider"), w.agent("requester"));
    accept_policy(p, "ledger").await;
    accept_policy(r, "ledger").await;
    let offer_id = discover_over_nats(&w, p, r, "ledger").await;
    let tx = negotiate(r, &[p], &offer_id).await;
    let expires = w.principal.agent.now().add_secs(3).expect("time");
    let mut c = tx_args(&tx);
    c.push((
        "preconditions",
        arr(vec![m(vec![
            ("id", t("delivery-first")),
            (
                "predicate",
                m(vec![("op", t("event")), ("event", t("delivery_confirmed"))]),
            ),
            ("expires", tdate_value(expires)),
        ])]),
    ));
    r.call("commit", m(c)).await;
    let pending = r.wait_state(&tx, "committed", LONG).await;
    assert_eq!(text_of(&pending, "mandate_status"), "pending");
    for a in [p, r] {
        let view = a.wait_state(&tx, "void", LONG).await;
        assert_eq!(text_of(&view, "mandate_status"), "void", "{}", a.name);
        assert!(codes_of(&view).contains(&4101), "{}: {view:?}", a.name);
        assert_eq!(
            history(&view),
            ["initiated", "negotiating", "committed", "void"],
            "{}",
            a.name
        );
    }
    // Every party was notified (SPEC III-D-2).
    let events = p.events().await;
    assert!(
        events.iter().any(|e| {
            e.get("kind").and_then(Value::as_text) == Some("notification_received")
                || e.get("code").and_then(Value::as_u64) == Some(4101)
        }),
        "provider saw no mandate_void notification"
    );
}

// ---- 4 ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s4_disputed_receipt_ends_resolved_with_a_revised_receipt() {
    let Some(w) = World::new(&["provider", "requester"]).await else {
        return;
    };
    let (p, r) = (w.agent("provider"), w.agent("requester"));
    let tx = up_to_verifying(&w, r, &[p]).await;
    let mut d = tx_args(&tx);
    d.push(("reason", t("summary misses two sections")));
    d.push(("claimed_amount", price(2, "USD")));
    let disputed = r.call("dispute", m(d)).await;
    assert!(disputed.get("dispute").is_some(), "{disputed:?}");
    for a in [p, r] {
        a.wait_state(&tx, "disputed", LONG).await;
    }
    let before = r.transaction(&tx).await;
    let first_receipt = before
        .get("receipt_ids")
        .and_then(Value::as_array)
        .and_then(|a| a.last().cloned());
    let mut res = tx_args(&tx);
    res.push(("outcome", t("partial")));
    res.push(("adjusted_amount", price(3, "USD")));
    let resolved = r.call("resolve_dispute", m(res)).await;
    let revised = Receipt::from_cbor(&bytes_of(&resolved, "receipt")).expect("revised receipt");
    let predecessor = revised
        .predecessor
        .expect("revised receipt names its predecessor");
    if let Some(first) = first_receipt {
        assert_eq!(Some(predecessor.as_bytes().as_slice()), first.as_bytes());
    }
    for a in [p, r] {
        let view = a.wait_state(&tx, "resolved", LONG).await;
        assert_eq!(
            history(&view),
            [
                "initiated",
                "negotiating",
                "committed",
                "settling",
                "verifying",
                "disputed",
                "resolved"
            ],
            "{}",
            a.name
        );
    }
}

// ---- 5 ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s5_offer_revoked_mid_negotiation() {
    let Some(w) = World::new(&["provider", "requester"]).await else {
        return;
    };
    let (p, r) = (w.agent("provider"), w.agent("requester"));
    // The provider keeps countering so the negotiation is still open when it revokes.
    p.call(
        "set_policy",
        m(vec![(
            "strategy",
            m(vec![
                ("kind", t("counter")),
                ("rounds", u(50)),
                ("delay_ms", u(500)),
            ]),
        )]),
    )
    .await;
    r.call(
        "set_policy",
        m(vec![(
            "strategy",
            m(vec![("kind", t("counter")), ("rounds", u(50))]),
        )]),
    )
    .await;
    let offer_id = discover_over_nats(&w, p, r, "ledger").await;
    let request = r
        .call(
            "create_request",
            m(vec![("template", request_template(10))]),
        )
        .await;
    let started = r
        .call(
            "negotiate",
            m(vec![
                ("counterparty", t(&p.did)),
                ("offer_id", Value::Bytes(offer_id.clone())),
                ("request_id", Value::Bytes(bytes_of(&request, "request_id"))),
                ("round_timeout_ms", u(10_000)),
                ("max_rounds", u(60)),
                ("wait", Value::Bool(false)),
            ]),
        )
        .await;
    let tx = bytes_of(&started, "transaction_id");
    r.wait_state(&tx, "negotiating", LONG).await;
    let revoked = p
        .call(
            "revoke_offer",
            m(vec![("offer_id", Value::Bytes(offer_id.clone()))]),
        )
        .await;
    assert!(revoked.get("revocation").is_some(), "{revoked:?}");
    for a in [p, r] {
        let view = a.wait_state(&tx, "failed", LONG).await;
        let codes = codes_of(&view);
        assert!(
            codes.contains(&3101) || codes.contains(&2102),
            "{}: terminated by revocation, got {view:?}",
            a.name
        );
    }
    // The index dropped the revoked offer.
    let deadline = Instant::now() + LONG;
    loop {
        let q = r
            .call(
                "query_index",
                m(vec![
                    ("index", t(&w.index.did)),
                    ("query", m(vec![("value_type", t(VT))])),
                ]),
            )
            .await;
        let still = q
            .get("results")
            .and_then(Value::as_array)
            .unwrap_or_default()
            .iter()
            .filter_map(Value::as_bytes)
            .filter_map(|b| cbor::from_slice(b).ok())
            .any(|i| {
                i.get("offer")
                    .and_then(|o| o.get("offer_id"))
                    .and_then(Value::as_bytes)
                    == Some(offer_id.as_slice())
            });
        if !still {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the index still lists the revoked offer"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

// ---- 6 ---------------------------------------------------------------------------------

/// Settles `tx` on the flaky rail; the action may return once settlement started, or after
/// the failure with its (Fatal) code.
async fn settle_on_flaky(r: &AgentProcess, tx: &[u8], expected_codes: &[u16]) {
    let mut s = tx_args(tx);
    s.push(("rail", t("flaky")));
    match r.invoke("settle", m(s)).await {
        Ok(_) => {}
        Err(mtp_reference_agent::services::control::ControlError::Mtp { code, .. }) => assert!(
            expected_codes.contains(&code.as_u16()),
            "settle failed with {code}"
        ),
        Err(e) => panic!("settle: {} ({e})", e.kind()),
    }
}

async fn configure_flaky(agents: &[&AgentProcess], extra: Vec<(&str, Value)>) {
    for a in agents {
        let mut args = vec![("rail", t("flaky"))];
        args.extend(extra.iter().cloned());
        a.call("configure_rail", m(args)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s6_failing_rail_retries_escalates_and_fails_with_the_reversal() {
    let Some(w) = World::new(&["provider", "requester"]).await else {
        return;
    };
    let (p, r) = (w.agent("provider"), w.agent("requester"));
    accept_policy(p, "flaky").await;
    accept_policy(r, "flaky").await;

    // (a) The rail stays unavailable: every attempt fails with 5200 (Recoverable), is
    //     retried with back-off up to RETRY_LIMIT, then escalated to Fatal: Failed.
    configure_flaky(
        &[p, r],
        vec![
            ("mode", t("unavailable")),
            ("unavailable_attempts", u(1000)),
        ],
    )
    .await;
    let offer_id = discover_over_nats(&w, p, r, "flaky").await;
    let tx = negotiate(r, &[p], &offer_id).await;
    r.call("commit", m(tx_args(&tx))).await;
    r.wait_state(&tx, "committed", LONG).await;
    settle_on_flaky(r, &tx, &[5200]).await;
    for a in [p, r] {
        let view = a.wait_state(&tx, "failed", LONG).await;
        assert!(
            history(&view).iter().any(|h| h == "settling"),
            "{}: {view:?}",
            a.name
        );
    }
    let codes = codes_of(&r.transaction(&tx).await);
    let unavailable = codes.iter().filter(|c| **c == 5200).count() as u32;
    assert!(
        unavailable > mtp_protocol::profile::RETRY_LIMIT,
        "every attempt failed with 5200: {codes:?}"
    );
    let trail = r.audit(Some(&tx)).await;
    let initiations = trail
        .iter()
        .filter(|e| e.settlement_op.as_deref() == Some("initiate"))
        .count() as u32;
    assert_eq!(
        initiations,
        mtp_protocol::profile::RETRY_LIMIT + 1,
        "one attempt plus RETRY_LIMIT retries"
    );
    // The escalation ends Settling → Failed after the last 5200.
    let failed_at = trail
        .iter()
        .position(|e| e.to_state.map(|s| s.name()) == Some("failed"))
        .expect("transition into Failed");
    assert!(
        trail[..failed_at]
            .iter()
            .any(|e| e.error_code == Some(5200)),
        "5200 recorded before the escalation"
    );

    // (b) The rail takes the money and then reports the transfer failed (5101, Fatal):
    //     the confirmed settlement is reversed and the transaction ends Failed.
    configure_flaky(&[p, r], vec![("mode", t("fail")), ("fail_at", t("query"))]).await;
    let offer_id = discover_over_nats(&w, p, r, "flaky").await;
    let tx = negotiate(r, &[p], &offer_id).await;
    r.call("commit", m(tx_args(&tx))).await;
    r.wait_state(&tx, "committed", LONG).await;
    settle_on_flaky(r, &tx, &[5101]).await;
    for a in [p, r] {
        a.wait_state(&tx, "failed", LONG).await;
    }
    let codes = codes_of(&r.transaction(&tx).await);
    assert!(codes.contains(&5101), "{codes:?}");
    let trail = r.audit(Some(&tx)).await;
    let ops: Vec<&str> = trail
        .iter()
        .filter_map(|e| e.settlement_op.as_deref())
        .collect();
    assert!(ops.contains(&"confirm"), "{ops:?}");
    assert!(
        ops.contains(&"reverse"),
        "the settlement was reversed: {ops:?}"
    );

    // (c) One transaction with all of it: the money moves (initiate, confirm), then the rail
    //     cannot report the outcome (5200 on every query), the retries run out, the error is
    //     escalated to Fatal, the confirmed transfer is reversed and the transaction ends
    //     Failed at both parties.
    configure_flaky(
        &[p, r],
        vec![
            ("mode", t("unavailable")),
            ("unavailable_attempts", u(1000)),
            ("fail_at", t("query")),
        ],
    )
    .await;
    let offer_id = discover_over_nats(&w, p, r, "flaky").await;
    let tx = negotiate(r, &[p], &offer_id).await;
    r.call("commit", m(tx_args(&tx))).await;
    r.wait_state(&tx, "committed", LONG).await;
    settle_on_flaky(r, &tx, &[5200]).await;
    for a in [p, r] {
        a.wait_state(&tx, "failed", LONG).await;
    }
    let codes = codes_of(&r.transaction(&tx).await);
    assert!(
        codes.iter().filter(|c| **c == 5200).count() as u32 > mtp_protocol::profile::RETRY_LIMIT,
        "every query failed with 5200: {codes:?}"
    );
    let trail = r.audit(Some(&tx)).await;
    let ops: Vec<&str> = trail
        .iter()
        .filter_map(|e| e.settlement_op.as_deref())
        .collect();
    let confirm = ops.iter().position(|o| *o == "confirm").expect("confirmed");
    let reverse = ops.iter().rposition(|o| *o == "reverse").expect("reversed");
    assert!(confirm < reverse, "{ops:?}");
    assert!(
        ops.iter().filter(|o| **o == "query").count() as u32 > mtp_protocol::profile::RETRY_LIMIT,
        "the query was retried: {ops:?}"
    );
}

// ---- negative transport ----------------------------------------------------------------

mod raw {
    //! Raw TLS clients built with tokio-rustls, each off the MTPSync profile in one way.

    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::Duration;

    use rustls::crypto::{CryptoProvider, aws_lc_rs};
    use rustls::pki_types::ServerName;
    use rustls::{ClientConfig, SupportedCipherSuite};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use mtp_reference_agent::transport::sync::TlsIdentity;

    /// Accepts any server certificate; advertises every scheme the provider knows.
    #[derive(Debug)]
    struct AnyServer(CryptoProvider);

    impl rustls::client::danger::ServerCertVerifier for AnyServer {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &rustls::pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &rustls::pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    pub fn provider(
        suites: Vec<SupportedCipherSuite>,
        groups: Vec<&'static dyn rustls::crypto::SupportedKxGroup>,
    ) -> CryptoProvider {
        let mut p = aws_lc_rs::default_provider();
        p.cipher_suites = suites;
        p.kx_groups = groups;
        p
    }

    pub fn aes256() -> SupportedCipherSuite {
        aws_lc_rs::cipher_suite::TLS13_AES_256_GCM_SHA384
    }

    pub fn config(
        p: CryptoProvider,
        versions: &[&'static rustls::SupportedProtocolVersion],
        cert: Option<&TlsIdentity>,
    ) -> ClientConfig {
        let verifier = Arc::new(AnyServer(p.clone()));
        let builder = ClientConfig::builder_with_provider(Arc::new(p))
            .with_protocol_versions(versions)
            .expect("versions")
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut cfg = match cert {
            None => builder.with_no_client_auth(),
            Some(id) => builder
                .with_client_auth_cert(vec![id.cert_der.clone()], id.private_key())
                .expect("client cert"),
        };
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        cfg
    }

    /// A TLS session and an HTTP/2 preface; `Ok` only if the server answered.
    pub async fn attempt(cfg: ClientConfig, addr: SocketAddr) -> Result<(), String> {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
        let name = ServerName::try_from("localhost").expect("name");
        let mut tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf)).await {
            Ok(Ok(0)) => Err("closed".into()),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("read: {e}")),
            Err(_) => Err("no answer".into()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn off_profile_peers_are_refused_and_audited_in_the_agent_trail() {
    use rustls::crypto::aws_lc_rs;
    let a = AgentProcess::spawn(AgentSpec::new("target", 7)).await;
    let b = AgentProcess::spawn(AgentSpec::new("peer", 8)).await;
    introduce(&[&a, &b]).await;
    let addr = SocketAddr::from(([127, 0, 0, 1], a.sync_port));
    let peer_identity = mtp_reference_agent::runtime::identity_of(seed(8))
        .expect("peer identity")
        .1;
    let stranger =
        mtp_reference_agent::transport::sync::TlsIdentity::from_seed(&[0x5e; 32], "stranger")
            .expect("stranger");
    let mlkem = || vec![aws_lc_rs::kx_group::MLKEM768];
    let tls13 = &[&rustls::version::TLS13][..];

    // Sanity: the pinned peer on the profile is accepted.
    raw::attempt(
        raw::config(
            raw::provider(vec![raw::aes256()], mlkem()),
            tls13,
            Some(&peer_identity),
        ),
        addr,
    )
    .await
    .expect("the profile client is accepted");

    let cases: Vec<(&str, rustls::ClientConfig)> = vec![
        (
            "no client certificate",
            raw::config(raw::provider(vec![raw::aes256()], mlkem()), tls13, None),
        ),
        (
            "unpinned certificate",
            raw::config(
                raw::provider(vec![raw::aes256()], mlkem()),
                tls13,
                Some(&stranger),
            ),
        ),
        (
            "AES-128 only",
            raw::config(
                raw::provider(
                    vec![aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256],
                    mlkem(),
                ),
                tls13,
                Some(&peer_identity),
            ),
        ),
        (
            "classical key exchange only",
            raw::config(
                raw::provider(vec![raw::aes256()], vec![aws_lc_rs::kx_group::X25519]),
                tls13,
                Some(&peer_identity),
            ),
        ),
        (
            "hybrid key exchange only",
            raw::config(
                raw::provider(
                    vec![raw::aes256()],
                    vec![aws_lc_rs::kx_group::X25519MLKEM768],
                ),
                tls13,
                Some(&peer_identity),
            ),
        ),
        (
            "TLS 1.2",
            raw::config(
                aws_lc_rs::default_provider(),
                &[&rustls::version::TLS12],
                Some(&peer_identity),
            ),
        ),
    ];
    let n = cases.len();
    for (what, cfg) in cases {
        assert!(
            raw::attempt(cfg, addr).await.is_err(),
            "{what}: the agent accepted an off-profile peer"
        );
    }
    // Each refusal: an error entry 0109 in the agent trail and a handshake_refused event.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let trail = a.audit(None).await;
        let audited = trail.iter().filter(|e| e.error_code == Some(109)).count();
        let events = a.events().await;
        let refused = events
            .iter()
            .filter(|e| e.get("kind").and_then(Value::as_text) == Some("handshake_refused"))
            .count();
        if audited >= n && refused >= n {
            assert!(events.iter().all(|e| {
                e.get("kind").and_then(Value::as_text) != Some("handshake_refused")
                    || e.get("code").and_then(Value::as_u64) == Some(109)
            }));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{audited} audited and {refused} events for {n} refusals"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---- CLI ---------------------------------------------------------------------------------

fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_mtp-agent"))
}

#[test]
fn cli_help_documents_every_flag_and_usage_errors_exit_2() {
    let out = bin().args(["run", "--help"]).output().expect("run --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--seed-file",
        "--state-dir",
        "--sync-listen",
        "--advertise-host",
        "--control-listen",
        "--control-pin",
        "--nats-url",
        "--serve-index",
        "--index",
        "--peer",
        "--log-format",
        "--log",
    ] {
        assert!(help.contains(flag), "run --help lacks {flag}:\n{help}");
    }
    let out = bin().arg("--help").output().expect("--help");
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "run",
        "config-template",
        "did",
        "fingerprint",
        "control",
        "observe",
    ] {
        assert!(help.contains(cmd), "--help lacks {cmd}");
    }
    assert_eq!(
        bin().arg("frobnicate").output().unwrap().status.code(),
        Some(2)
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "sync_listn: 1.2.3.4:5\n").unwrap();
    let out = bin()
        .args(["run", "--config"])
        .arg(&bad)
        .output()
        .expect("run bad config");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("mtp-agent:"));
    let seed_file = dir.path().join("bad.seed");
    std::fs::write(&seed_file, "xyz").unwrap();
    let out = bin()
        .args(["fingerprint", "--seed-file"])
        .arg(&seed_file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn cli_config_template_fingerprint_and_did_are_reproducible() {
    let out = bin().arg("config-template").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    mtp_reference_agent::config::AgentConfig::from_yaml(&text, std::path::Path::new("t"))
        .expect("template parses");

    let dir = tempfile::tempdir().unwrap();
    let seed_file = dir.path().join("a.seed");
    std::fs::write(&seed_file, hex::encode(seed(9))).unwrap();
    let fp = bin()
        .args(["fingerprint", "--seed-file"])
        .arg(&seed_file)
        .output()
        .unwrap();
    assert!(fp.status.success());
    let (keys, tls) = mtp_reference_agent::runtime::identity_of(seed(9)).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&fp.stdout).trim(),
        tls.fingerprint.to_string()
    );

    let did = bin()
        .args(["did", "--sync-listen", "127.0.0.1:7555", "--seed-file"])
        .arg(&seed_file)
        .output()
        .unwrap();
    assert!(did.status.success(), "{did:?}");
    let doc = document(&String::from_utf8_lossy(&did.stdout));
    assert_eq!(doc.id, keys.did.as_str());
    let sync = doc.sync_endpoint().expect("MTPSync endpoint");
    assert_eq!(sync.port, 7555);
    assert_eq!(sync.tls_certificate_sha256, *tls.fingerprint.as_bytes());
    // Port 0 cannot be published.
    let zero = bin()
        .args(["did", "--sync-listen", "127.0.0.1:0", "--seed-file"])
        .arg(&seed_file)
        .output()
        .unwrap();
    assert_eq!(zero.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cli_control_client_sigterm_and_restart_keep_the_state() {
    // The operator's client identity, pinned by the agent.
    let dir = tempfile::tempdir().unwrap();
    let operator_seed = dir.path().join("operator.seed");
    let out = bin()
        .args(["fingerprint", "--seed-file"])
        .arg(&operator_seed)
        .output()
        .unwrap();
    assert!(out.status.success(), "seed file created on demand");
    let operator_fp = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let mut spec = AgentSpec::new("cli", 11);
    spec.control_pins.push(operator_fp);
    let mut a = AgentProcess::spawn(spec.clone()).await;

    let hello = bin()
        .args(["control", "--endpoint", &a.control_endpoint, "--pin"])
        .arg(a.fingerprint.to_string())
        .arg("--seed-file")
        .arg(&operator_seed)
        .arg("hello")
        .output()
        .unwrap();
    assert!(hello.status.success(), "{hello:?}");
    let text = String::from_utf8_lossy(&hello.stdout);
    assert!(
        text.contains("mtp-iut-control/1") && text.contains(&a.did),
        "{text}"
    );
    let unknown = bin()
        .args(["control", "--endpoint", &a.control_endpoint, "--pin"])
        .arg(a.fingerprint.to_string())
        .arg("--seed-file")
        .arg(&operator_seed)
        .args(["frobnicate", "{\"x\": h'00'}"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unsupported_action"));

    // A refused handshake goes to the agent trail; it survives a graceful restart.
    let stranger =
        mtp_reference_agent::transport::sync::TlsIdentity::from_seed(&[0x77; 32], "stranger")
            .unwrap();
    let cfg = raw::config(
        raw::provider(
            vec![raw::aes256()],
            vec![rustls::crypto::aws_lc_rs::kx_group::MLKEM768],
        ),
        &[&rustls::version::TLS13],
        Some(&stranger),
    );
    assert!(
        raw::attempt(cfg, SocketAddr::from(([127, 0, 0, 1], a.sync_port)))
            .await
            .is_err()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !a
        .audit(None)
        .await
        .iter()
        .any(|e| e.error_code == Some(109))
    {
        assert!(Instant::now() < deadline, "refusal not audited");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = a.terminate().expect("exit status");
    assert!(status.success(), "graceful SIGTERM exits 0: {status:?}");
    let state_dir = a.dir().join("state");
    assert!(state_dir.join("audit").is_dir());
    a.restart().await;
    assert!(
        a.audit(None)
            .await
            .iter()
            .any(|e| e.error_code == Some(109)),
        "the agent trail survived the restart"
    );
}

// ---- the codec over the wire ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn codec_actions_over_the_control_interface() {
    let a = AgentProcess::spawn(AgentSpec::new("codec", 12)).await;
    let hello = a.call("hello", m(vec![])).await;
    let actions = texts_of(&hello, "actions");
    for needed in [
        "hello",
        "reset",
        "add_peer",
        "transaction",
        "audit",
        "codec_encode",
        "codec_parse",
        "codec_sign",
        "codec_verify",
    ] {
        assert!(actions.iter().any(|x| x == needed), "{needed} missing");
    }
    let id = mtp_protocol::uuid::MtpUuid::new(
        mtp_protocol::uuid::ObjectType::Offer,
        1_800_000_000_000_000_000,
        [1; 6],
        [2; 17],
    );
    let enc = a
        .call(
            "codec_encode",
            m(vec![("type", t("mtp_uuid")), ("value", t(&id.to_string()))]),
        )
        .await;
    assert_eq!(
        bytes_of(&enc, "cbor"),
        cbor::to_vec(&id.to_value()).unwrap()
    );
    let e = a
        .invoke(
            "codec_encode",
            m(vec![("type", t("offer")), ("value", m(vec![]))]),
        )
        .await;
    assert!(matches!(e, Err(ref e) if e.kind() == "mtp_error"), "{e:?}");
    let e = a
        .invoke(
            "codec_parse",
            m(vec![("type", t("nope")), ("cbor", Value::bytes(vec![]))]),
        )
        .await;
    assert!(matches!(e, Err(ref e) if e.kind() == "bad_args"), "{e:?}");
    // Strict args: a non-deterministic args map is bad_args (sent raw, bypassing the encoder).
    let raw = mtp_reference_agent::services::control::pb::ControlRequest {
        action: "hello".into(),
        args: vec![0xa2, 0x61, b'b', 0x01, 0x61, b'a', 0x01],
        correlation_id: "raw".into(),
    };
    let channel = mtp_reference_agent::transport::sync::connect(
        &a.control_endpoint,
        a.fingerprint,
        &harness_identity(),
        &Default::default(),
    )
    .await
    .unwrap();
    let resp =
        mtp_reference_agent::services::control::pb::test_control_client::TestControlClient::new(
            channel,
        )
        .invoke(raw)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.correlation_id, "raw");
    assert_eq!(resp.error.map(|e| e.kind), Some("bad_args".to_owned()));
}
