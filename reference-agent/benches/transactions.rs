//! Throughput of complete 2-party transactions between two `mtp-agent` processes over real
//! gRPC/mTLS 1.3 and NATS JetStream (issue "Reference agent": transactions per second, and the
//! ML-DSA time spent per transaction so the ratio to the crypto bound can be read).
//!
//! `cargo bench -p mtp-reference-agent --bench transactions` (`MTP_BENCH_TX`, default 20).
//! Each transaction: create_request → negotiate → commit → settle (ledger) → deliver →
//! verify (attestation), sequentially, both agents fulfilled.
#![allow(dead_code)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use mtp_protocol::cbor::Value;
use mtp_protocol::crypto::{SignatureAlgorithm, SigningKey};
use support::*;

const VT: &str = "inference.text";
const LONG: Duration = Duration::from_secs(60);

fn tx_args(tx: &[u8]) -> Vec<(&'static str, Value)> {
    vec![("transaction_id", Value::Bytes(tx.to_vec()))]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let n: usize = std::env::var("MTP_BENCH_TX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let Some(nats) = nats().await else {
        eprintln!("nats-server missing: skipped");
        return;
    };
    let index = AgentProcess::spawn(AgentSpec::new("index", 1).nats(Some(&nats)).index()).await;
    let p = AgentProcess::spawn(AgentSpec::new("provider", 2).nats(Some(&nats))).await;
    let r = AgentProcess::spawn(AgentSpec::new("requester", 3).nats(Some(&nats))).await;
    introduce(&[&index, &p, &r]).await;
    let principal = Principal::new(0x50);
    for a in [&p, &r] {
        principal.provision(a, &["inference"], 1_000_000).await;
        a.call(
            "set_policy",
            m(vec![
                ("strategy", m(vec![("kind", t("accept"))])),
                ("rail", t("ledger")),
                ("verification", t("attestation")),
            ]),
        )
        .await;
    }
    p.call(
        "publish_manifest",
        m(vec![(
            "template",
            m(vec![
                ("value_types", arr(vec![t(VT)])),
                ("payment_rails", arr(vec![t("ledger")])),
            ]),
        )]),
    )
    .await;
    let offer = p
        .call(
            "publish_offer",
            m(vec![(
                "template",
                m(vec![
                    ("value_type", t(VT)),
                    (
                        "terms_template",
                        m(vec![
                            ("price", price(5, "USD")),
                            ("settlement", m(vec![("rail", t("ledger"))])),
                        ]),
                    ),
                ]),
            )]),
        )
        .await;
    let offer_id = bytes_of(&offer, "offer_id");
    // The requester learns the offer from the index (SPEC III-B-2).
    let deadline = Instant::now() + LONG;
    loop {
        let q = r
            .call(
                "query_index",
                m(vec![
                    ("index", t(&index.did)),
                    ("query", m(vec![("value_type", t(VT))])),
                ]),
            )
            .await;
        if q.get("results")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
        {
            break;
        }
        assert!(Instant::now() < deadline, "offer never indexed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut txs = Vec::with_capacity(n);
    let started = Instant::now();
    for _ in 0..n {
        let request = r
            .call(
                "create_request",
                m(vec![(
                    "template",
                    m(vec![
                        ("value_type", t(VT)),
                        ("constraints", m(vec![("budget_ceiling", price(10, "USD"))])),
                    ]),
                )]),
            )
            .await;
        let neg = r
            .call(
                "negotiate",
                m(vec![
                    ("counterparty", t(&p.did)),
                    ("offer_id", Value::Bytes(offer_id.clone())),
                    ("request_id", Value::Bytes(bytes_of(&request, "request_id"))),
                    ("round_timeout_ms", u(10_000)),
                    ("max_rounds", u(4)),
                    ("wait", Value::Bool(true)),
                ]),
            )
            .await;
        let tx = bytes_of(&neg, "transaction_id");
        r.call("commit", m(tx_args(&tx))).await;
        p.wait_state(&tx, "committed", LONG).await;
        let mut s = tx_args(&tx);
        s.push(("rail", t("ledger")));
        r.call("settle", m(s)).await;
        p.wait_state(&tx, "verifying", LONG).await;
        let mut d = tx_args(&tx);
        d.push(("payload", Value::bytes(b"the summary".to_vec())));
        d.push(("content_type", t("text/plain")));
        p.call("deliver", m(d)).await;
        let mut v = tx_args(&tx);
        v.push(("method", t("attestation")));
        v.push(("outcome", t("fulfilled")));
        r.call("verify", m(v)).await;
        p.wait_state(&tx, "fulfilled", LONG).await;
        txs.push(tx);
    }
    let wall = started.elapsed();

    // Signatures checked and messages sent (each signed) per transaction, both agents.
    let (mut checks, mut sent) = (0usize, 0usize);
    for tx in &txs {
        for a in [&p, &r] {
            for e in a.audit(Some(tx)).await {
                if e.signature_check.is_some() {
                    checks += 1;
                }
                if e.event == mtp_protocol::audit::events::MESSAGE_SENT {
                    sent += 1;
                }
            }
        }
    }
    // ML-DSA-65 cost in this process, same machine, same run.
    let key = SigningKey::from_seed(SignatureAlgorithm::MlDsa65, &[9; 32]);
    let public = key.public_key();
    let msg = vec![0x5a; 1024];
    let k = 500;
    let t0 = Instant::now();
    let mut sig = Vec::new();
    for _ in 0..k {
        sig = key.sign(&msg);
    }
    let sign = t0.elapsed() / k;
    let t0 = Instant::now();
    for _ in 0..k {
        public.verify(&msg, &sig).expect("verify");
    }
    let verify = t0.elapsed() / k;

    let per_tx = wall / n as u32;
    let checks_per_tx = checks as f64 / n as f64;
    let sent_per_tx = sent as f64 / n as f64;
    let crypto_ms =
        sent_per_tx * sign.as_secs_f64() * 1e3 + checks_per_tx * verify.as_secs_f64() * 1e3;
    println!(
        "transactions: {n} in {wall:.2?} → {:.2} tx/s ({per_tx:.1?} per transaction)",
        n as f64 / wall.as_secs_f64()
    );
    println!(
        "per transaction (both agents): {checks_per_tx:.1} signature verifications, {sent_per_tx:.1} signed messages sent"
    );
    println!("ML-DSA-65 sign {sign:.2?}, verify {verify:.2?} (1 KiB message)");
    println!(
        "ML-DSA time per transaction ≈ {crypto_ms:.2} ms = {:.1} % of the wall time per transaction",
        crypto_ms / (per_tx.as_secs_f64() * 1e3) * 100.0
    );
}
