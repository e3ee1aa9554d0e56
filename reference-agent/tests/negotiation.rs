//! Negotiation and Commitment layers between real agents over loopback MTPSync (gRPC over
//! mutual TLS 1.3): single-round and multi-round negotiation, round timeout (3200), round
//! limit (3201), rejection (3100), 3-party consensus, commitment on every side, conditional
//! Mandates (Void with the other party notified, and activation), a tampered proposal
//! signature (1100), Mandate immutability (0100) and supersession (SPEC III-C, III-D;
//! PROFILE G-10, G-19, G-47, G-48).

use std::net::SocketAddr;
use std::time::Duration;

use mtp_protocol::audit::AuditTrail;
use mtp_protocol::cbor::Value;
use mtp_protocol::commitment::Mandate;
use mtp_protocol::crypto::{
    AlgorithmSupportProfile, DecapsulationKey, KemAlgorithm, SignatureAlgorithm, SigningKey,
};
use mtp_protocol::errors::ErrorCode;
use mtp_protocol::identity::credential::{self, Credential, ProofOptions};
use mtp_protocol::identity::delegation::{AuthorityDelegation, MaxTransactionValue};
use mtp_protocol::identity::status_list::{
    MIN_LIST_BITS, StatusListFormat, StatusListIssuer, StatusPurpose,
};
use mtp_protocol::identity::{AgentDocumentParams, Did, DidDocument, SyncEndpoint};
use mtp_protocol::negotiation::{
    NegotiationInitiation, NegotiationMessage, Proposal, ProposalKind,
};
use mtp_protocol::primitives::common::{Map, uuid_value};
use mtp_protocol::primitives::{CborObject, MultiSigned, Offer, Request, SingleSigned};
use mtp_protocol::state_machine::{MandateStatus, TxState};
use mtp_protocol::taxonomy::Classifier;
use mtp_protocol::time::Timestamp;
use mtp_protocol::uuid::ObjectType;
use mtp_protocol::verification::Decimal;
use mtp_protocol::wire::Frame;
use mtp_reference_agent::agent::Agent;
use mtp_reference_agent::config::AgentConfig;
use mtp_reference_agent::events::EventKind;
use mtp_reference_agent::layers::negotiation::{self, Outcome, Policy};
use mtp_reference_agent::layers::{commitment, discovery, identity};
use mtp_reference_agent::runtime::{self, RunningAgent};
use mtp_reference_agent::services::control::{ControlError, ControlResult};
use mtp_reference_agent::transport::sync::framing::{self, Direction, RemoteError, Rpc};
use tokio_stream::wrappers::ReceiverStream;

const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock");
    Timestamp::from_unix_secs(d.as_secs() as i64).expect("time")
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::map(entries)
}

/// The Principal: a did:mtp party with a revocation list, delegating to the requesters.
struct Principal {
    key: SigningKey,
    doc: DidDocument,
    did: Did,
    list: StatusListIssuer,
}

impl Principal {
    fn new(seed: u8) -> Principal {
        let key = SigningKey::from_seed(SignatureAlgorithm::MlDsa65, &[seed; 32]);
        let kem = DecapsulationKey::from_seed(KemAlgorithm::MlKem768, &[seed; 64]);
        let doc = DidDocument::new_agent(&AgentDocumentParams {
            signing_keys: vec![(key.algorithm(), key.public_key().as_bytes().to_vec())],
            kem_keys: vec![(KemAlgorithm::MlKem768, kem.encapsulation_key())],
            sync: SyncEndpoint {
                host: "principal.invalid".into(),
                port: 7443,
                tls_certificate_sha256: [seed; 32],
            },
            nats_host: "nats.invalid".into(),
            nats_port: 4222,
            nats_cluster: "mtp-test".into(),
            delegation_chain: vec![],
            algorithms: AlgorithmSupportProfile::baseline(),
        })
        .expect("document");
        let did = doc.did().expect("did");
        let list = StatusListIssuer::new(
            &format!("https://status.example/{seed}"),
            did.as_str(),
            StatusListFormat::StatusList2021,
            StatusPurpose::Revocation,
            MIN_LIST_BITS,
            key.clone(),
            &did.url("key-1"),
        )
        .expect("list");
        Principal {
            key,
            doc,
            did,
            list,
        }
    }

    fn credential(&mut self, subject: &str) -> Credential {
        let t = now();
        let adc = AuthorityDelegation {
            id: Some(format!("urn:uuid:adc-{subject}")),
            issuer: self.did.to_string(),
            principal: Some(self.did.to_string()),
            subject: Did::parse(subject).expect("did"),
            scope: vec![Classifier::parse("inference").expect("classifier")],
            max_transaction_value: MaxTransactionValue::new(
                Decimal::parse("500").expect("decimal"),
                "USD",
            )
            .expect("value"),
            max_transaction_value_commitment: None,
            permitted_jurisdictions: vec!["US".into()],
            permitted_payment_rails: vec!["ledger".into()],
            permitted_counterparty_classes: None,
            constraints: serde_json::Map::new(),
            valid_from: t.add_secs(-86_400).expect("time"),
            valid_until: t.add_secs(365 * 86_400).expect("time"),
            status: vec![self.list.allocate().expect("entry")],
        };
        credential::sign(
            &adc.to_unsigned_credential().expect("unsigned"),
            &self.key,
            &ProofOptions {
                verification_method: self.did.url("key-1"),
                created: now().add_secs(-3600).expect("time"),
            },
        )
        .expect("sign")
    }

    fn provision_args(&mut self, chain: &[String]) -> Value {
        let list = match self.list.current() {
            Some(c) => c.clone(),
            None => self
                .list
                .publish(now().add_secs(-3600).expect("time"))
                .expect("publish"),
        };
        map(vec![
            ("principal", Value::text(self.did.as_str())),
            (
                "delegation_chain",
                Value::Array(chain.iter().cloned().map(Value::text).collect()),
            ),
            (
                "status_lists",
                Value::Map(vec![(
                    Value::text(self.list.url()),
                    Value::text(list.to_json()),
                )]),
            ),
        ])
    }
}

/// A requester (index 0) and `providers` other agents, all mutually trusted; the
/// requester holds a delegation chain, everyone knows the Principal and its status list.
struct Net {
    agents: Vec<RunningAgent>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Net {
    async fn new(base_seed: u8, providers: usize) -> Net {
        let mut agents = Vec::new();
        let mut dirs = Vec::new();
        for i in 0..=providers {
            let dir = tempfile::tempdir().expect("tempdir");
            let config = AgentConfig {
                name: format!("agent-{i}"),
                state_dir: dir.path().to_path_buf(),
                sync_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                ..AgentConfig::default()
            };
            let seed = [base_seed.wrapping_add(i as u8); 32];
            agents.push(runtime::start(config, seed, None).await.expect("start"));
            dirs.push(dir);
        }
        for a in &agents {
            for b in &agents {
                if a.agent.did() != b.agent.did() {
                    a.agent.add_peer(b.agent.document()).expect("peer");
                }
            }
        }
        let mut principal = Principal::new(base_seed.wrapping_add(100));
        for a in &agents {
            a.agent.add_peer(principal.doc.clone()).expect("principal");
        }
        let cred = principal.credential(&agents[0].agent.did());
        let args = principal.provision_args(&[cred.to_json()]);
        expect_ok(identity::control(&agents[0].agent, "provision", &args).await);
        // Every Mandate signer carries a delegation chain (PROFILE G-01, G-04): a co-signer
        // refuses a participant without one (SPEC-III-A-2-06).
        for a in &agents[1..] {
            let cred = principal.credential(&a.agent.did());
            let args = principal.provision_args(&[cred.to_json()]);
            expect_ok(identity::control(&a.agent, "provision", &args).await);
        }
        Net {
            agents,
            _dirs: dirs,
        }
    }

    fn agent(&self, i: usize) -> &Agent {
        &self.agents[i].agent
    }
}

fn expect_ok(r: Option<ControlResult>) -> Value {
    match r {
        Some(Ok(v)) => v,
        Some(Err(e)) => panic!("action failed: {e}"),
        None => panic!("action not handled"),
    }
}

fn expect_err(r: Option<ControlResult>) -> ControlError {
    match r {
        Some(Err(e)) => e,
        Some(Ok(v)) => panic!("action succeeded: {v:?}"),
        None => panic!("action not handled"),
    }
}

/// A signed Offer of `provider` (inference.text at `price` USD over `ledger`).
fn offer_of(provider: &Agent, price: u64) -> Offer {
    let t = map(vec![
        ("value_type", Value::text("inference.text")),
        (
            "terms_template",
            map(vec![
                (
                    "price",
                    map(vec![
                        ("amount", Value::from(price)),
                        ("unit", Value::text("USD")),
                    ]),
                ),
                ("settlement", map(vec![("rail", Value::text("ledger"))])),
            ]),
        ),
    ]);
    let offer = discovery::build_offer(provider, &t).expect("offer");
    negotiation::register_offer(provider, offer.clone());
    offer
}

/// A Request of `requester` with its Authority Attestation (JSON VP, PROFILE G-04).
async fn request_of(requester: &Agent) -> Request {
    let t = map(vec![
        ("value_type", Value::text("inference.text")),
        (
            "constraints",
            map(vec![(
                "budget_ceiling",
                map(vec![
                    ("amount", Value::from(100u64)),
                    ("unit", Value::text("USD")),
                ]),
            )]),
        ),
    ]);
    let r = discovery::build_request(requester, &t, "", None)
        .await
        .expect("request");
    negotiation::register_request(requester, r.clone());
    r
}

async fn set_policy(agent: &Agent, strategy: Value) {
    expect_ok(negotiation::control(agent, "set_policy", &map(vec![("strategy", strategy)])).await);
}

fn strategy(kind: &str, rounds: u64) -> Value {
    map(vec![
        ("kind", Value::text(kind)),
        ("rounds", Value::from(rounds)),
    ])
}

/// `negotiate` with `wait: true`; returns the transaction id and the outcome.
async fn negotiate(
    requester: &Agent,
    counterparties: &[&Agent],
    offer: &Offer,
    request: &Request,
    extra: Vec<(&str, Value)>,
) -> ([u8; 32], String) {
    let cp = match counterparties {
        [one] => Value::text(one.did()),
        many => Value::Array(many.iter().map(|a| Value::text(a.did())).collect()),
    };
    let mut args = vec![
        ("counterparty", cp),
        ("offer_id", uuid_value(&offer.offer_id)),
        // As found by discovery (the signed Offer, det-CBOR).
        ("offer", Value::Bytes(offer.to_cbor())),
        ("request_id", uuid_value(&request.request_id)),
        ("wait", Value::Bool(true)),
    ];
    args.extend(extra);
    let r = expect_ok(negotiation::control(requester, "negotiate", &map(args)).await);
    let tx: [u8; 32] = r
        .get("transaction_id")
        .and_then(Value::as_bytes)
        .and_then(|b| b.try_into().ok())
        .expect("transaction id");
    let outcome = r
        .get("outcome")
        .and_then(Value::as_text)
        .expect("outcome")
        .to_owned();
    (tx, outcome)
}

fn tx_uuid(tx: &[u8; 32]) -> Value {
    Value::Bytes(tx.to_vec())
}

async fn commit(agent: &Agent, tx: &[u8; 32], extra: Vec<(&str, Value)>) -> Mandate {
    let mut args = vec![("transaction_id", tx_uuid(tx))];
    args.extend(extra);
    let r = expect_ok(commitment::control(agent, "commit", &map(args)).await);
    Mandate::from_cbor(r.get("mandate").and_then(Value::as_bytes).expect("mandate"))
        .expect("mandate decodes")
}

fn state(agent: &Agent, tx: &[u8; 32]) -> Option<TxState> {
    agent.transactions.state(tx)
}

async fn wait_state(agent: &Agent, tx: &[u8; 32], want: TxState) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while state(agent, tx) != Some(want) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} stays {:?}, expected {want:?}",
            agent.config.name,
            state(agent, tx)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn errors(agent: &Agent, tx: &[u8; 32]) -> Vec<u16> {
    agent
        .transactions
        .get(tx)
        .map(|r| r.errors)
        .unwrap_or_default()
}

fn history(agent: &Agent, tx: &[u8; 32]) -> Vec<TxState> {
    agent
        .transactions
        .get(tx)
        .map(|r| r.history)
        .unwrap_or_default()
}

/// The trail is a valid chain, replays to the current state, and holds messages and
/// signature checks (PROFILE G-42).
fn check_trail(agent: &Agent, tx: &[u8; 32]) {
    check_chain(agent, tx);
    let rec = agent.transactions.get(tx).expect("transaction");
    assert!(
        rec.audit
            .entries()
            .iter()
            .any(|e| e.signature_check.as_ref().is_some_and(|c| c.result))
    );
}

/// The trail is a valid chain that replays to the current state and logs messages.
fn check_chain(agent: &Agent, tx: &[u8; 32]) {
    let rec = agent.transactions.get(tx).expect("transaction");
    AuditTrail::verify(rec.audit.entries()).expect("hash chain");
    assert_eq!(
        AuditTrail::replay(rec.audit.entries()).expect("replay"),
        rec.state
    );
    assert!(rec.audit.entries().iter().any(|e| e.message_hash.is_some()));
}

fn terms_of(agent: &Agent, tx: &[u8; 32]) -> mtp_protocol::primitives::Terms {
    agent
        .deals
        .get(tx)
        .and_then(|d| d.terms)
        .expect("agreed Terms")
}

// ---------------------------------------------------------------------------------------
// Negotiation
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn single_round_accept_then_commit_on_both_sides() {
    let net = Net::new(10, 1).await;
    let (a, b) = (net.agent(0), net.agent(1));
    set_policy(b, strategy("accept", 0)).await;
    let offer = offer_of(b, 5);
    let request = request_of(a).await;
    let (tx, outcome) = negotiate(a, &[b], &offer, &request, vec![]).await;
    assert_eq!(outcome, "agreed");
    assert_eq!(
        negotiation::wait_outcome(b, &tx, WAIT).await,
        Some(Outcome::Agreed)
    );
    // Identical, fully signed Terms with the signed negotiation log (PROFILE G-10, G-48).
    let (ta, tb) = (terms_of(a, &tx), terms_of(b, &tx));
    assert_eq!(ta.to_cbor(), tb.to_cbor());
    assert_eq!(ta.terms_id.as_bytes(), &tx);
    assert_eq!(ta.negotiation_log.len(), 1);
    assert_eq!(ta.signatures.len(), 2);
    ta.verify_signatures(|did, _| a.assertion_key(did).ok())
        .expect("Terms signatures");
    let p1 = Proposal::from_value(&ta.negotiation_log[0]).expect("logged proposal");
    p1.verify_signature(&a.assertion_key(&a.did()).expect("key"))
        .expect("logged proposal is signed");
    // Every normative dimension is in the Terms (PROFILE G-47).
    let v = ta.to_value();
    for k in [
        "price",
        "delivery",
        "quality",
        "settlement",
        "dispute_resolution",
        "verification",
        "expiration",
    ] {
        assert!(v.get(k).is_some(), "Terms lack {k}");
    }
    for agent in [a, b] {
        assert_eq!(state(agent, &tx), Some(TxState::Negotiating));
    }

    let m = commit(a, &tx, vec![]).await;
    wait_state(b, &tx, TxState::Committed).await;
    assert_eq!(state(a, &tx), Some(TxState::Committed));
    for agent in [a, b] {
        let d = agent.deals.get(&tx).expect("deal");
        assert_eq!(d.mandate.as_ref().map(|x| x.to_cbor()), Some(m.to_cbor()));
        assert_eq!(d.mandate_status, Some(MandateStatus::Active));
        assert_eq!(
            history(agent, &tx),
            [TxState::Initiated, TxState::Negotiating, TxState::Committed]
        );
        assert!(errors(agent, &tx).is_empty(), "{:?}", errors(agent, &tx));
        check_trail(agent, &tx);
    }
    assert_eq!(m.terms_bytes(), ta.to_cbor().as_slice());
    m.verify_signatures(|did, _| a.assertion_key(did).ok())
        .expect("Mandate signatures");
    assert_eq!(m.delegation_attestations.len(), 2);
    // Committing again is refused (already Committed: 0105).
    let e = expect_err(
        commitment::control(a, "commit", &map(vec![("transaction_id", tx_uuid(&tx))])).await,
    );
    assert!(
        matches!(
            e,
            ControlError::Mtp {
                code: ErrorCode::UndefinedTransition,
                ..
            }
        ),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multi_round_counter_then_accept() {
    let net = Net::new(20, 1).await;
    let (a, b) = (net.agent(0), net.agent(1));
    set_policy(b, strategy("counter", 2)).await;
    let offer = offer_of(b, 5);
    let request = request_of(a).await;
    let (tx, outcome) = negotiate(
        a,
        &[b],
        &offer,
        &request,
        vec![
            ("strategy", strategy("counter", 1)),
            ("max_rounds", Value::from(5u64)),
            (
                "conditions",
                Value::Array(vec![map(vec![
                    ("if", Value::text("price.amount")),
                    ("then", Value::text("settlement.timing")),
                ])]),
            ),
        ],
    )
    .await;
    assert_eq!(outcome, "agreed");
    assert_eq!(
        negotiation::wait_outcome(b, &tx, WAIT).await,
        Some(Outcome::Agreed)
    );
    // P1 (requester), C2 (provider), P3 (requester), C4 (provider) accepted by the requester.
    let t = terms_of(a, &tx);
    assert_eq!(t.to_cbor(), terms_of(b, &tx).to_cbor());
    let kinds: Vec<(u64, String)> = t
        .negotiation_log
        .iter()
        .map(|v| {
            let p = Proposal::from_value(v).expect("proposal");
            (p.round, p.proposer.as_str().to_owned())
        })
        .collect();
    assert_eq!(
        kinds,
        vec![(1, a.did()), (2, b.did()), (3, a.did()), (4, b.did())]
    );
    let first = Proposal::from_value(&t.negotiation_log[0]).expect("p1");
    assert!(first.conditions.is_some(), "conditional terms are carried");
    let p1_price = first
        .terms
        .iter()
        .find(|(k, _)| k.as_text() == Some("price"))
        .and_then(|(_, v)| v.get("amount"))
        .and_then(Value::as_f64)
        .expect("p1 price");
    assert!(
        t.price.amount.as_f64() > p1_price,
        "the provider's counters raised the price"
    );
    // Round-limit warning 3300 at round max_rounds − 1 (PROFILE G-08).
    for agent in [a, b] {
        assert!(
            errors(agent, &tx).contains(&3300),
            "{}: {:?}",
            agent.config.name,
            errors(agent, &tx)
        );
        check_trail(agent, &tx);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn round_timeout_terminates_both_sides_with_3200() {
    let net = Net::new(30, 1).await;
    let (a, b) = (net.agent(0), net.agent(1));
    set_policy(b, strategy("silent", 0)).await;
    let offer = offer_of(b, 5);
    let request = request_of(a).await;
    let (tx, outcome) = negotiate(
        a,
        &[b],
        &offer,
        &request,
        vec![("round_timeout_ms", Value::from(200u64))],
    )
    .await;
    assert_eq!(outcome, "timeout");
    assert_eq!(
        negotiation::wait_outcome(b, &tx, WAIT).await,
        Some(Outcome::Terminated(
            mtp_protocol::negotiation::TerminationStatus::Timeout
        ))
    );
    for agent in [a, b] {
        assert_eq!(state(agent, &tx), Some(TxState::Failed));
        assert!(
            errors(agent, &tx).contains(&3200),
            "{:?}",
            errors(agent, &tx)
        );
        let rec = agent.transactions.get(&tx).expect("tx");
        assert!(
            rec.audit
                .entries()
                .iter()
                .any(|e| e.event == "negotiation_terminated.timeout")
        );
        check_chain(agent, &tx);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn round_limit_exhausted_terminates_with_3201() {
    let net = Net::new(40, 1).await;
    let (a, b) = (net.agent(0), net.agent(1));
    set_policy(b, strategy("counter", 50)).await;
    let offer = offer_of(b, 5);
    let request = request_of(a).await;
    let (tx, outcome) = negotiate(
        a,
        &[b],
        &offer,
        &request,
        vec![
            ("strategy", strategy("counter", 50)),
            ("max_rounds", Value::from(3u64)),
        ],
    )
    .await;
    assert_eq!(outcome, "exhausted");
    negotiation::wait_outcome(b, &tx, WAIT).await;
    for agent in [a, b] {
        assert_eq!(state(agent, &tx), Some(TxState::Failed));
        let errs = errors(agent, &tx);
        assert!(errs.contains(&3201), "{}: {errs:?}", agent.config.name);
        assert!(errs.contains(&3300), "{}: {errs:?}", agent.config.name);
        check_trail(agent, &tx);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rejection_terminates_with_3100() {
    let net = Net::new(50, 1).await;
    let (a, b) = (net.agent(0), net.agent(1));
    set_policy(b, strategy("reject", 0)).await;
    let offer = offer_of(b, 5);
    let request = request_of(a).await;
    let (tx, outcome) = negotiate(a, &[b], &offer, &request, vec![]).await;
    assert_eq!(outcome, "rejected");
    negotiation::wait_outcome(b, &tx, WAIT).await;
    for agent in [a, b] {
        assert_eq!(state(agent, &tx), Some(TxState::Failed));
        let rec = agent.transactions.get(&tx).expect("tx");
        assert!(
            rec.audit
                .entries()
                .iter()
                .any(|e| e.event == "negotiation_terminated.rejected")
        );
        check_trail(agent, &tx);
    }
    assert!(errors(a, &tx).contains(&3100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn non_negotiable_change_is_rejected() {
    let net = Net::new(55, 1).await;
    let (a, b) = (net.agent(0), net.agent(1));
    set_policy(b, strategy("accept", 0)).await;
    let t = map(vec![
        ("value_type", Value::text("inference.text")),
        (
            "terms_template",
            map(vec![(
                "price",
                map(vec![
                    ("amount", Value::from(5u64)),
                    ("unit", Value::text("USD")),
                ]),
            )]),
        ),
        ("non_negotiable", Value::Array(vec![Value::text("price")])),
    ]);
    let offer = discovery::build_offer(b, &t).expect("offer");
    negotiation::register_offer(b, offer.clone());
    let request = request_of(a).await;
    let (tx, outcome) = negotiate(
        a,
        &[b],
        &offer,
        &request,
        vec![(
            "terms",
            map(vec![("price", map(vec![("amount", Value::from(3u64))]))]),
        )],
    )
    .await;
    assert_eq!(outcome, "rejected");
    assert!(errors(a, &tx).contains(&3100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_party_consensus_and_commitment() {
    let net = Net::new(60, 2).await;
    let (a, b, c) = (net.agent(0), net.agent(1), net.agent(2));
    set_policy(b, strategy("accept", 0)).await;
    set_policy(c, strategy("counter", 1)).await;
    let offer = offer_of(b, 5);
    let request = request_of(a).await;
    let (tx, outcome) = negotiate(a, &[b, c], &offer, &request, vec![]).await;
    assert_eq!(outcome, "agreed");
    for agent in [b, c] {
        assert_eq!(
            negotiation::wait_outcome(agent, &tx, WAIT).await,
            Some(Outcome::Agreed)
        );
    }
    let t = terms_of(a, &tx);
    for agent in [b, c] {
        assert_eq!(terms_of(agent, &tx).to_cbor(), t.to_cbor());
    }
    assert_eq!(t.participants.len(), 3);
    assert_eq!(t.signatures.len(), 3);
    assert!(t.attribution_method.is_some());
    // P1, C's counterproposal (relayed), P3 accepted by all.
    let rounds: Vec<u64> = t
        .negotiation_log
        .iter()
        .map(|v| Proposal::from_value(v).expect("proposal").round)
        .collect();
    assert_eq!(rounds, vec![1, 2, 3]);
    assert_eq!(
        c.deals.get(&tx).map(|d| d.role),
        Some(mtp_reference_agent::deal::Role::Contributor)
    );

    let m = commit(a, &tx, vec![]).await;
    assert_eq!(m.signatures.len(), 3);
    for agent in [a, b, c] {
        wait_state(agent, &tx, TxState::Committed).await;
        check_trail(agent, &tx);
    }
}

// ---------------------------------------------------------------------------------------
// Commitment
// ---------------------------------------------------------------------------------------

fn precondition(event: &str, expires: Timestamp) -> Value {
    map(vec![
        ("id", Value::text("p1")),
        (
            "predicate",
            map(vec![
                ("op", Value::text("event")),
                ("event", Value::text(event)),
            ]),
        ),
        (
            "expires",
            mtp_protocol::primitives::common::tdate_value(expires),
        ),
    ])
}

async fn agreed(net: &Net, seed_price: u64) -> ([u8; 32], Offer, Request) {
    let (a, b) = (net.agent(0), net.agent(1));
    set_policy(b, strategy("accept", 0)).await;
    let offer = offer_of(b, seed_price);
    let request = request_of(a).await;
    let (tx, outcome) = negotiate(a, &[b], &offer, &request, vec![]).await;
    assert_eq!(outcome, "agreed");
    negotiation::wait_outcome(b, &tx, WAIT).await;
    (tx, offer, request)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conditional_mandate_voids_when_its_precondition_expires() {
    let net = Net::new(70, 1).await;
    let (a, b) = (net.agent(0), net.agent(1));
    let (tx, _, _) = agreed(&net, 5).await;
    let expires = a.now().add_millis(400).expect("time");
    let m = commit(
        a,
        &tx,
        vec![(
            "preconditions",
            Value::Array(vec![precondition("delivery_confirmed", expires)]),
        )],
    )
    .await;
    assert!(m.is_conditional());
    wait_state(b, &tx, TxState::Committed).await;
    assert_eq!(
        a.deals.get(&tx).and_then(|d| d.mandate_status),
        Some(MandateStatus::Pending)
    );
    for agent in [a, b] {
        wait_state(agent, &tx, TxState::Void).await;
        assert_eq!(
            agent.deals.get(&tx).and_then(|d| d.mandate_status),
            Some(MandateStatus::Void)
        );
        assert!(
            errors(agent, &tx).contains(&4101),
            "{:?}",
            errors(agent, &tx)
        );
        assert_eq!(
            history(agent, &tx),
            [
                TxState::Initiated,
                TxState::Negotiating,
                TxState::Committed,
                TxState::Void
            ]
        );
    }
    // Every party was notified with a signed mandate_void (SPEC-III-D-2-05/06).
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got =
            |agent: &Agent| {
                agent.events.snapshot().iter().any(|e| {
                    e.kind == EventKind::NotificationReceived && e.transaction_id == Some(tx)
                })
            };
        if got(a) && got(b) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no mandate_void received"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for agent in [a, b] {
        check_trail(agent, &tx);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conditional_mandate_activates_when_its_event_is_observed() {
    let net = Net::new(80, 1).await;
    let (a, b) = (net.agent(0), net.agent(1));
    let (tx, _, _) = agreed(&net, 5).await;
    let expires = a.now().add_secs(60).expect("time");
    let m = commit(
        a,
        &tx,
        vec![(
            "preconditions",
            Value::Array(vec![precondition("delivery_confirmed", expires)]),
        )],
    )
    .await;
    wait_state(b, &tx, TxState::Committed).await;
    for agent in [a, b] {
        commitment::record_event(agent, "delivery_confirmed", Some(m.mandate_id));
    }
    for agent in [a, b] {
        wait_state(agent, &tx, TxState::Settling).await;
        assert_eq!(
            agent.deals.get(&tx).and_then(|d| d.mandate_status),
            Some(MandateStatus::Active)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn supersession_voids_the_pending_predecessor() {
    let net = Net::new(90, 1).await;
    let (a, b) = (net.agent(0), net.agent(1));
    let (tx, _, _) = agreed(&net, 5).await;
    let expires = a.now().add_secs(60).expect("time");
    let old = commit(
        a,
        &tx,
        vec![(
            "preconditions",
            Value::Array(vec![precondition("delivery_confirmed", expires)]),
        )],
    )
    .await;
    wait_state(b, &tx, TxState::Committed).await;
    let r = expect_ok(
        commitment::control(
            a,
            "supersede",
            &map(vec![
                ("mandate_id", uuid_value(&old.mandate_id)),
                (
                    "changes",
                    map(vec![("price", map(vec![("amount", Value::from(7u64))]))]),
                ),
            ]),
        )
        .await,
    );
    let successor =
        Mandate::from_cbor(r.get("mandate").and_then(Value::as_bytes).expect("mandate"))
            .expect("successor");
    assert_eq!(successor.predecessor, Some(old.mandate_id));
    assert_eq!(successor.terms().price.amount.as_f64(), 7.0);
    let new_tx = *successor.terms().terms_id.as_bytes();
    for agent in [a, b] {
        wait_state(agent, &new_tx, TxState::Committed).await;
        wait_state(agent, &tx, TxState::Void).await;
        assert_eq!(
            agent.deals.get(&tx).and_then(|d| d.mandate_status),
            Some(MandateStatus::Superseded)
        );
        assert!(
            agent
                .transactions
                .get(&tx)
                .expect("tx")
                .audit
                .entries()
                .iter()
                .any(|e| e.event == "superseded")
        );
    }
    // Only a Pending Mandate can be superseded (PROFILE G-19).
    let e = expect_err(
        commitment::control(
            a,
            "supersede",
            &map(vec![("mandate_id", uuid_value(&old.mandate_id))]),
        )
        .await,
    );
    assert!(
        matches!(
            e,
            ControlError::Mtp {
                code: ErrorCode::UndefinedTransition,
                ..
            }
        ),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------
// Misbehaving peers (raw MTPSync client)
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tampered_proposal_signature_is_1100_and_fails_the_negotiation() {
    let net = Net::new(100, 1).await;
    let (a, b) = (net.agent(0), net.agent(1));
    set_policy(b, strategy("counter", 5)).await;
    let offer = offer_of(b, 5);
    let request = request_of(a).await;
    // `a` plays a hand-driven requester: a valid NIM (no `participants` extension: the
    // two-party default applies), then a counterproposal with a corrupted signature.
    let nid = a.new_uuid(ObjectType::Terms);
    let tx = *nid.as_bytes();
    let terms = negotiation::baseline_terms(&offer, &Policy::default(), a.now(), 2);
    let mut p1 = Proposal {
        kind: ProposalKind::Proposal,
        negotiation_id: nid,
        round: 1,
        proposer: a.keys.did.clone(),
        terms: terms.clone(),
        conditions: None,
        timestamp: a.now(),
        signature: None,
        unknown: Map::new(),
    };
    p1.sign(&a.keys.signing, None).expect("sign");
    let mut nim = NegotiationInitiation {
        negotiation_id: nid,
        request,
        offer_ref: offer.offer_id,
        proposal: p1,
        round_timeout_ms: 5_000,
        max_rounds: 10,
        signature: None,
        unknown: Map::new(),
    };
    nim.sign(&a.keys.signing, None).expect("sign");
    let frame = Frame::new("nim", nim.to_value()).expect("frame");
    let mut client = a.agent_client(&b.did()).await.expect("client");
    let (out, rx) = tokio::sync::mpsc::channel(8);
    out.send(framing::encode(&frame).expect("encode"))
        .await
        .expect("queue");
    let mut req = tonic::Request::new(ReceiverStream::new(rx));
    framing::set_version(req.metadata_mut());
    let mut inbound = client
        .negotiate(req)
        .await
        .expect("NIM accepted")
        .into_inner();
    let reply = inbound
        .message()
        .await
        .expect("reply")
        .expect("a counterproposal");
    let reply = framing::decode_for(&reply, Rpc::Negotiate, Direction::Response).expect("frame");
    let NegotiationMessage::Proposal(c2) =
        NegotiationMessage::from_value(&reply.body).expect("message")
    else {
        panic!("expected a counterproposal, got {}", reply.frame_type);
    };
    assert_eq!((c2.kind, c2.round), (ProposalKind::Counterproposal, 2));
    let mut p3 = Proposal {
        kind: ProposalKind::Counterproposal,
        round: 3,
        terms: c2.terms.clone(),
        timestamp: a.now(),
        proposer: a.keys.did.clone(),
        signature: None,
        ..c2
    };
    p3.sign(&a.keys.signing, None).expect("sign");
    if let Some(s) = p3.signature.as_mut() {
        s.value[10] ^= 0x40;
    }
    let bad = Frame::new("counterproposal", p3.to_value()).expect("frame");
    out.send(framing::encode(&bad).expect("encode"))
        .await
        .expect("send");
    let status = loop {
        match inbound.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("stream ended without an error"),
            Err(s) => break s,
        }
    };
    let remote = RemoteError::from_status(&status);
    assert_eq!(remote.code, Some(1100), "{remote}");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    wait_state(b, &tx, TxState::Failed).await;
    assert!(errors(b, &tx).contains(&1100));
    let rec = b.transactions.get(&tx).expect("tx");
    assert!(
        rec.audit
            .entries()
            .iter()
            .any(|e| e.signature_check.as_ref().is_some_and(|c| !c.result)),
        "the failed check is audited"
    );
    assert!(
        b.events
            .snapshot()
            .iter()
            .any(|e| e.kind == EventKind::ErrorRaised && e.code == Some(1100))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_different_mandate_under_a_used_id_is_0100() {
    let net = Net::new(110, 1).await;
    let (a, b) = (net.agent(0), net.agent(1));
    let (tx, _, _) = agreed(&net, 5).await;
    let m = commit(a, &tx, vec![]).await;
    wait_state(b, &tx, TxState::Committed).await;
    // The same mandate_id over different content (another commitment timestamp).
    let mut other = m.clone();
    other.commitment_timestamp = m.commitment_timestamp.add_secs(1).expect("time");
    other.signatures.clear();
    let body = match other.to_value() {
        Value::Map(e) => Value::Map(
            e.into_iter()
                .filter(|(k, _)| k.as_text() != Some("signatures"))
                .collect(),
        ),
        v => v,
    };
    let frame = Frame::new("mandate_draft", body).expect("frame");
    let mut client = a.agent_client(&b.did()).await.expect("client");
    let (out, rx) = tokio::sync::mpsc::channel(4);
    out.send(framing::encode(&frame).expect("encode"))
        .await
        .expect("queue");
    let mut req = tonic::Request::new(ReceiverStream::new(rx));
    framing::set_version(req.metadata_mut());
    let status = client.commit(req).await.expect_err("refused");
    let remote = RemoteError::from_status(&status);
    assert_eq!(remote.code, Some(100), "{remote}");
    // Reuse by a participant is Fatal and terminates the transaction (SPEC-IX-I03; PROFILE
    // G-18, G-19), but the committed Mandate is never replaced (SPEC-III-D-3-01).
    assert_eq!(state(b, &tx), Some(TxState::Failed));
    assert_eq!(
        b.deals
            .get(&tx)
            .and_then(|d| d.mandate)
            .map(|x| x.to_cbor()),
        Some(m.to_cbor())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pareto_strategies_converge_inside_both_reservations() {
    let net = Net::new(120, 1).await;
    let (a, b) = (net.agent(0), net.agent(1));
    set_policy(
        b,
        map(vec![
            ("kind", Value::text("pareto")),
            ("limits", map(vec![("price_floor", Value::from(8u64))])),
        ]),
    )
    .await;
    let offer = offer_of(b, 10);
    let request = request_of(a).await;
    let (tx, outcome) = negotiate(
        a,
        &[b],
        &offer,
        &request,
        vec![(
            "strategy",
            map(vec![
                ("kind", Value::text("pareto")),
                (
                    "limits",
                    map(vec![
                        ("price_ceiling", Value::from(9u64)),
                        ("price_target", Value::from(5u64)),
                    ]),
                ),
            ]),
        )],
    )
    .await;
    assert_eq!(outcome, "agreed");
    negotiation::wait_outcome(b, &tx, WAIT).await;
    let t = terms_of(a, &tx);
    let price = t.price.amount.as_f64();
    assert!((8.0..=9.0).contains(&price), "price {price}");
    // The provider conceded on price and improved what the requester weights.
    assert_eq!(t.settlement.escrow, Some(true));
    assert!(t.negotiation_log.len() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offer_revoked_mid_negotiation_terminates_both_sides() {
    let net = Net::new(130, 1).await;
    let (a, b) = (net.agent(0), net.agent(1));
    set_policy(
        b,
        map(vec![
            ("kind", Value::text("counter")),
            ("rounds", Value::from(50u64)),
            ("delay_ms", Value::from(200u64)),
        ]),
    )
    .await;
    let published = expect_ok(
        discovery::control(
            b,
            "publish_offer",
            &map(vec![
                (
                    "template",
                    map(vec![("value_type", Value::text("inference.text"))]),
                ),
                ("indexes", Value::Array(vec![])),
                ("via_nats", Value::Bool(false)),
            ]),
        )
        .await,
    );
    let offer = Offer::from_cbor(
        published
            .get("offer")
            .and_then(Value::as_bytes)
            .expect("offer"),
    )
    .expect("offer");
    let request = request_of(a).await;
    let r = expect_ok(
        negotiation::control(
            a,
            "negotiate",
            &map(vec![
                ("counterparty", Value::text(b.did())),
                ("offer_id", uuid_value(&offer.offer_id)),
                ("offer", Value::Bytes(offer.to_cbor())),
                ("request_id", uuid_value(&request.request_id)),
                ("strategy", strategy("counter", 50)),
                ("max_rounds", Value::from(60u64)),
                ("wait", Value::Bool(false)),
            ]),
        )
        .await,
    );
    let tx: [u8; 32] = r
        .get("transaction_id")
        .and_then(Value::as_bytes)
        .and_then(|x| x.try_into().ok())
        .expect("tx");
    wait_state(b, &tx, TxState::Negotiating).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    expect_ok(
        discovery::control(
            b,
            "revoke_offer",
            &map(vec![("offer_id", uuid_value(&offer.offer_id))]),
        )
        .await,
    );
    for agent in [a, b] {
        wait_state(agent, &tx, TxState::Failed).await;
        assert!(
            errors(agent, &tx).contains(&3101),
            "{}: {:?}",
            agent.config.name,
            errors(agent, &tx)
        );
        let rec = agent.transactions.get(&tx).expect("tx");
        assert!(
            rec.audit
                .entries()
                .iter()
                .any(|e| e.event == "negotiation_terminated.offer_revoked")
        );
    }
    // The requester's session ended with the signed `revoked` termination (3101).
    assert_eq!(
        negotiation::wait_outcome(a, &tx, WAIT).await,
        Some(Outcome::Terminated(
            mtp_protocol::negotiation::TerminationStatus::Revoked
        ))
    );
}
