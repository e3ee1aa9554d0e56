//! Identity and Discovery layers between real agents over loopback MTPSync (gRPC over
//! mutual TLS 1.3): publication to two indexes and federated query (SPEC-III-B-2-02/03),
//! a tampered Offer refused with 2101, revocation removing the Offer from both indexes and
//! failing a deal on it with the counterparty notified (SPEC-III-B-3-02/04/05), Request
//! authority (valid chain, revoked credential 1102, out of scope 1101, SD-JWT and zk_range
//! proofs bound to the counterparty), and DID resolution through a registry with the peer
//! path as fallback (BIND-II-B-01/02).

use std::net::SocketAddr;

use mtp_protocol::cbor::{self, Value};
use mtp_protocol::crypto::{
    AlgorithmSupportProfile, DecapsulationKey, KemAlgorithm, SeededRng, SignatureAlgorithm,
    SigningKey,
};
use mtp_protocol::discovery::IndexQuery;
use mtp_protocol::errors::{Coded, ErrorCode};
use mtp_protocol::identity::authority_proof::{MaxValueCommitment, MinorAmount};
use mtp_protocol::identity::credential::{self, Credential, ProofOptions};
use mtp_protocol::identity::delegation::{AuthorityDelegation, MaxTransactionValue};
use mtp_protocol::identity::disclosure;
use mtp_protocol::identity::status_list::{
    MIN_LIST_BITS, StatusListFormat, StatusListIssuer, StatusPurpose,
};
use mtp_protocol::identity::{AgentDocumentParams, Did, DidDocument, SyncEndpoint};
use mtp_protocol::primitives::common::{Number, PriceSpec, PriceUnit};
use mtp_protocol::primitives::offer::Description;
use mtp_protocol::primitives::request::Constraints;
use mtp_protocol::primitives::{CborObject, Offer, Request, SingleSigned};
use mtp_protocol::state_machine::{TxEvent, TxState};
use mtp_protocol::taxonomy::Classifier;
use mtp_protocol::time::Timestamp;
use mtp_protocol::uuid::{MtpUuid, ObjectType};
use mtp_protocol::verification::Decimal;
use mtp_protocol::wire::Frame;
use mtp_reference_agent::agent::{Agent, Bound};
use mtp_reference_agent::config::AgentConfig;
use mtp_reference_agent::deal::{Deal, Role};
use mtp_reference_agent::events::EventKind;
use mtp_reference_agent::keys::AgentKeys;
use mtp_reference_agent::layers::discovery::{self, DiscoveryError};
use mtp_reference_agent::layers::identity::{self, AttestationInput};
use mtp_reference_agent::services::agent::AgentService;
use mtp_reference_agent::services::control::ControlError;
use mtp_reference_agent::services::index;
use mtp_reference_agent::transport::sync::framing::Rpc;
use mtp_reference_agent::transport::sync::{ServerOptions, SyncServer};

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

struct Node {
    agent: Agent,
    _sync: SyncServer,
    _dir: tempfile::TempDir,
}

impl Node {
    fn did(&self) -> String {
        self.agent.did()
    }
}

fn did_of(seed: u8) -> String {
    AgentKeys::from_seed([seed; 32]).did.as_str().to_owned()
}

/// An agent with the MTP `Agent` service and the discovery `Index` service on loopback.
async fn node(seed: u8, serve_index: bool, indexes: Vec<String>) -> Node {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = AgentConfig {
        name: format!("agent-{seed}"),
        state_dir: dir.path().to_path_buf(),
        sync_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        serve_index,
        indexes,
        ..AgentConfig::default()
    };
    let listener = tokio::net::TcpListener::bind(config.sync_listen)
        .await
        .expect("bind");
    let sync_addr = listener.local_addr().expect("addr");
    let agent = Agent::new(
        config,
        [seed; 32],
        &Bound {
            sync_addr,
            nats: None,
        },
    )
    .expect("agent");
    let router = tonic::transport::Server::builder()
        .add_service(AgentService::new(agent.clone()).into_server())
        .add_service(index::index_server(agent.clone()));
    let sync = SyncServer::serve(
        listener,
        &agent.tls,
        agent.pins.clone(),
        ServerOptions::default(),
        router,
    )
    .expect("serve");
    Node {
        agent,
        _sync: sync,
        _dir: dir,
    }
}

/// Mutual trust (documents known, certificates pinned both ways).
fn link(a: &Node, b: &Node) {
    a.agent.add_peer(b.agent.document()).expect("add peer");
    b.agent.add_peer(a.agent.document()).expect("add peer");
}

fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock");
    Timestamp::from_unix_secs(d.as_secs() as i64).expect("time")
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::map(entries)
}

fn usd(amount: i64) -> PriceSpec {
    PriceSpec::new(
        Number::Int(i128::from(amount)),
        PriceUnit::parse("USD").expect("USD"),
    )
}

fn bytes_field<'a>(v: &'a Value, k: &str) -> &'a [u8] {
    v.get(k).and_then(Value::as_bytes).expect("bytes field")
}

/// The Principal: a did:mtp party with a revocation list.
struct Principal {
    key: SigningKey,
    doc: DidDocument,
    did: Did,
    list: StatusListIssuer,
}

fn principal(seed: u8) -> Principal {
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

impl Principal {
    fn options(&self) -> ProofOptions {
        ProofOptions {
            verification_method: self.did.url("key-1"),
            created: now().add_secs(-3600).expect("time"),
        }
    }

    /// An ADC to `subject` for `inference` up to 500 USD in the US over `ledger`.
    fn adc(&mut self, subject: &str, id: &str) -> AuthorityDelegation {
        let t = now();
        AuthorityDelegation {
            id: Some(id.into()),
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
        }
    }

    fn sign(&self, adc: &AuthorityDelegation) -> Credential {
        credential::sign(
            &adc.to_unsigned_credential().expect("unsigned"),
            &self.key,
            &self.options(),
        )
        .expect("sign")
    }

    fn current_list(&mut self) -> Credential {
        match self.list.current() {
            Some(c) => c.clone(),
            None => self
                .list
                .publish(now().add_secs(-3600).expect("time"))
                .expect("publish"),
        }
    }

    fn provision_args(&mut self, chain: &[String], extra: Vec<(&str, Value)>) -> Value {
        let list = self.current_list();
        let mut m = vec![
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
        ];
        m.extend(extra);
        map(m)
    }
}

async fn control(agent: &Agent, action: &str, args: Value) -> Result<Value, ControlError> {
    match identity::control(agent, action, &args).await {
        Some(r) => r,
        None => discovery::control(agent, action, &args)
            .await
            .expect("action of the identity or discovery layer"),
    }
}

fn mtp_code(e: &ControlError) -> Option<u16> {
    match e {
        ControlError::Mtp { code, .. } => Some(code.as_u16()),
        _ => None,
    }
}

fn offer_template(value_type: &str, price: u64) -> Value {
    map(vec![(
        "template",
        map(vec![
            ("value_type", Value::text(value_type)),
            (
                "terms_template",
                map(vec![(
                    "price",
                    map(vec![
                        ("amount", Value::from(price)),
                        ("unit", Value::text("USD")),
                    ]),
                )]),
            ),
        ]),
    )])
}

fn query_ids(result: &Value) -> Vec<MtpUuid> {
    result
        .get("results")
        .and_then(Value::as_array)
        .expect("results")
        .iter()
        .map(|b| {
            let v = cbor::from_slice(b.as_bytes().expect("bytes")).expect("cbor");
            Offer::from_value(v.get("offer").expect("offer"))
                .expect("offer")
                .offer_id
        })
        .collect()
}

fn terms_id(did: &str, n: u8) -> [u8; 32] {
    MtpUuid::new(
        ObjectType::Terms,
        now().unix_nanos().unwrap_or(0),
        mtp_protocol::uuid::source_of(did),
        [n; 17],
    )
    .to_bytes()
}

fn index_query(value_type: &str) -> IndexQuery {
    IndexQuery {
        value_type: Classifier::parse(value_type).expect("classifier"),
        constraints: None,
        counterparty: None,
        limit: None,
        cursor: None,
        unknown: Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------
// Discovery
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publish_query_tamper_and_revoke_across_two_indexes() {
    let (i1_did, i2_did) = (did_of(11), did_of(12));
    let i1 = node(11, true, vec![]).await;
    let i2 = node(12, true, vec![]).await;
    let p = node(13, false, vec![i1_did.clone(), i2_did.clone()]).await;
    let q = node(14, false, vec![i1_did.clone(), i2_did.clone()]).await;
    for (a, b) in [(&p, &i1), (&p, &i2), (&q, &i1), (&q, &i2), (&p, &q)] {
        link(a, b);
    }

    // Offer A to both indexes (manifest first), Offer B to I2 only.
    let a = control(
        &p.agent,
        "publish_offer",
        offer_template("inference.text", 5),
    )
    .await
    .expect("publish A");
    let offer_a = MtpUuid::from_value(a.get("offer_id").expect("id")).expect("uuid");
    let offer_a_obj = Offer::from_cbor(bytes_field(&a, "offer")).expect("offer bytes");
    let mut b_args = offer_template("inference.code", 7);
    if let Value::Map(m) = &mut b_args {
        m.push((
            Value::text("indexes"),
            Value::Array(vec![Value::text(i2_did.clone())]),
        ));
    }
    let b = control(&p.agent, "publish_offer", b_args)
        .await
        .expect("publish B");
    let offer_b = MtpUuid::from_value(b.get("offer_id").expect("id")).expect("uuid");
    for i in [&i1, &i2] {
        let m = i
            .agent
            .discovery
            .index
            .lock()
            .expect("index")
            .manifest_of(&p.did());
        let m = m.expect("manifest indexed (SPEC-III-B-1-01)");
        assert!(m.offers.contains(&offer_a));
    }

    // Federated query merges both indexes (de-duplicated), newest first.
    let query = map(vec![
        ("index", Value::text("*")),
        ("query", map(vec![("value_type", Value::text("inference"))])),
    ]);
    let merged = query_ids(
        &control(&q.agent, "query_index", query.clone())
            .await
            .expect("query"),
    );
    assert_eq!(merged.len(), 2, "{merged:?}");
    assert!(merged.contains(&offer_a) && merged.contains(&offer_b));
    let only_i1 = query_ids(
        &control(
            &q.agent,
            "query_index",
            map(vec![
                ("index", Value::text(i1_did.clone())),
                ("query", map(vec![("value_type", Value::text("inference"))])),
            ]),
        )
        .await
        .expect("query I1"),
    );
    assert_eq!(only_i1, vec![offer_a]);

    // A tampered Offer is refused with 2101 and never indexed.
    let mut tampered = discovery::build_offer(
        &p.agent,
        &map(vec![("value_type", Value::text("inference.text"))]),
    )
    .expect("offer");
    tampered.description.human = "tampered after signing".into();
    let frame = Frame::new("offer", tampered.to_value()).expect("frame");
    match discovery::index_call(&p.agent, &i1_did, Rpc::IndexPublish, &frame).await {
        Err(DiscoveryError::Remote { error, .. }) => {
            assert_eq!(error.code, Some(ErrorCode::OfferSignatureInvalid.as_u16()));
        }
        other => panic!("expected 2101, got {other:?}"),
    }
    assert!(
        i1.agent
            .discovery
            .index
            .lock()
            .expect("index")
            .offer(&tampered.offer_id)
            .is_none()
    );
    assert!(
        i1.agent
            .events
            .snapshot()
            .iter()
            .any(|e| e.kind == EventKind::ErrorRaised
                && e.code == Some(ErrorCode::OfferSignatureInvalid.as_u16()))
    );

    // A deal on Offer A in Negotiating at both parties.
    let tx = terms_id(&q.did(), 1);
    let t = p.agent.now();
    for (n, role, other) in [
        (&p, Role::Provider, q.did()),
        (&q, Role::Requester, p.did()),
    ] {
        n.agent
            .transactions
            .begin(tx, vec![p.did(), q.did()], t)
            .expect("begin");
        n.agent
            .transactions
            .apply(&tx, TxEvent::NegotiationInitiated, t)
            .expect("negotiating");
        let mut deal = Deal::new(tx, role, vec![other]);
        deal.offer = Some(offer_a_obj.clone());
        n.agent.deals.insert(deal);
    }

    // Revocation: both indexes drop Offer A; the deal fails at both parties; Q is notified.
    let r = control(
        &p.agent,
        "revoke_offer",
        map(vec![("offer_id", offer_a.to_value())]),
    )
    .await
    .expect("revoke");
    assert!(!bytes_field(&r, "revocation").is_empty());
    for i in [&i1, &i2] {
        let resp = index::query(&i.agent, &index_query("inference")).expect("query");
        assert!(resp.results.iter().all(|x| x.offer.offer_id != offer_a));
        assert!(
            i.agent
                .discovery
                .index
                .lock()
                .expect("index")
                .is_revoked(&offer_a)
        );
    }
    assert_eq!(p.agent.transactions.state(&tx), Some(TxState::Failed));
    assert_eq!(q.agent.transactions.state(&tx), Some(TxState::Failed));
    assert!(
        p.agent
            .events
            .snapshot()
            .iter()
            .any(|e| e.kind == EventKind::NotificationSent)
    );
    assert!(
        q.agent
            .events
            .snapshot()
            .iter()
            .any(|e| e.kind == EventKind::NotificationReceived)
    );
    let after = query_ids(
        &control(&q.agent, "query_index", query)
            .await
            .expect("query"),
    );
    assert_eq!(after, vec![offer_b]);
    // The revoked id stays refused at the index (2102).
    let frame = Frame::new("offer", offer_a_obj.to_value()).expect("frame");
    match discovery::index_call(&p.agent, &i1_did, Rpc::IndexPublish, &frame).await {
        Err(DiscoveryError::Remote { error, .. }) => {
            assert_eq!(error.code, Some(ErrorCode::OfferRevoked.as_u16()))
        }
        other => panic!("expected 2102, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Request authority
// ---------------------------------------------------------------------------------------

/// A Request signed by `r` carrying `r`'s attestation, without the holder's self-check.
fn signed_request(r: &Agent, value_type: &str, counterparty: &str, budget: PriceSpec) -> Request {
    let request_id = r.new_uuid(ObjectType::Request);
    let vt = Classifier::parse(value_type).expect("classifier");
    let att = identity::build_attestation(
        r,
        &AttestationInput {
            request_id: &request_id,
            value_type: &vt,
            amount: Some(budget.clone()),
            counterparty,
            reveal: None,
        },
    )
    .expect("attestation");
    let mut req = Request {
        request_id,
        agent_id: r.keys.did.clone(),
        value_type: vt,
        description: Description::new("test request"),
        constraints: Constraints {
            budget_ceiling: Some(budget),
            ..Constraints::default()
        },
        authority_attestation: att,
        fallback_preferences: None,
        signature: None,
        unknown: Vec::new(),
    };
    req.sign(&r.keys.signing, Some(identity::own_key_id(r)))
        .expect("sign");
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn request_authority_chain_revocation_scope_and_bound_proofs() {
    let mut pr = principal(40);
    let r = node(41, false, vec![]).await;
    let v = node(42, false, vec![]).await;
    let w = node(43, false, vec![]).await;
    link(&r, &v);
    link(&r, &w);
    for n in [&r, &v, &w] {
        n.agent.add_peer(pr.doc.clone()).expect("principal");
    }

    // Valid chain: created by the holder (self-checked), accepted by the counterparty; it
    // expires within the hour, so the counterparty warns 1300.
    let mut adc = pr.adc(&r.did(), "urn:uuid:adc-r-1");
    adc.valid_until = now().add_secs(3600).expect("time");
    let index_r = adc.status[0].index;
    let cred = pr.sign(&adc);
    let args = pr.provision_args(&[cred.to_json()], vec![]);
    control(&r.agent, "provision", args)
        .await
        .expect("provision R");
    let lists = pr.provision_args(&[], vec![]);
    control(
        &v.agent,
        "provision",
        map(vec![(
            "status_lists",
            lists.get("status_lists").expect("lists").clone(),
        )]),
    )
    .await
    .expect("provision V");
    let created = control(
        &r.agent,
        "create_request",
        map(vec![(
            "template",
            map(vec![
                ("value_type", Value::text("inference.text")),
                (
                    "constraints",
                    map(vec![("budget_ceiling", usd(100).to_value())]),
                ),
            ]),
        )]),
    )
    .await
    .expect("create_request");
    let req = Request::from_cbor(bytes_field(&created, "request")).expect("request");
    identity::verify_request_authority(&v.agent, &req, None)
        .await
        .expect("valid chain accepted");
    assert!(
        v.agent
            .events
            .snapshot()
            .iter()
            .any(|e| e.kind == EventKind::Warning
                && e.code == Some(ErrorCode::CredentialApproachingExpiry.as_u16()))
    );

    // Hierarchical delegation (SPEC-III-A-2-03): R delegates to S; V verifies the two-link
    // chain, then R revokes its credential and V refuses with 1102.
    let s_node = node(44, false, vec![]).await;
    link(&s_node, &v);
    link(&s_node, &r);
    s_node.agent.add_peer(pr.doc.clone()).expect("principal");
    let d = control(
        &r.agent,
        "delegate",
        map(vec![
            ("subject", Value::text(s_node.did())),
            ("max_transaction_value", usd(200).to_value()),
        ]),
    )
    .await
    .expect("delegate");
    let sub_text = d
        .get("credential")
        .and_then(Value::as_text)
        .expect("credential");
    let sub_id = d.get("credential_id").and_then(Value::as_text).expect("id");
    let r_list = d.get("status_list").and_then(Value::as_text).expect("list");
    let r_list_url = identity::own_status_list_url(&r.agent);
    let mut s_args = pr.provision_args(&[cred.to_json(), sub_text.to_owned()], vec![]);
    if let Value::Map(m) = &mut s_args
        && let Some((_, Value::Map(lists))) = m
            .iter_mut()
            .find(|(k, _)| k.as_text() == Some("status_lists"))
    {
        lists.push((Value::text(r_list_url.clone()), Value::text(r_list)));
    }
    control(&s_node.agent, "provision", s_args.clone())
        .await
        .expect("provision S");
    control(
        &v.agent,
        "provision",
        map(vec![(
            "status_lists",
            s_args.get("status_lists").expect("lists").clone(),
        )]),
    )
    .await
    .expect("lists at V");
    let sub_req = signed_request(&s_node.agent, "inference.text", "", usd(150));
    identity::verify_request_authority(&v.agent, &sub_req, None)
        .await
        .expect("two-link chain accepted");
    let above = signed_request(&s_node.agent, "inference.text", "", usd(300));
    let e = identity::verify_request_authority(&v.agent, &above, None)
        .await
        .expect_err("above the sub-delegated limit");
    assert_eq!(e.code(), ErrorCode::AuthorityAttestationInvalid);
    let revoked = control(
        &r.agent,
        "revoke_credential",
        map(vec![("credential_id", Value::text(sub_id))]),
    )
    .await
    .expect("revoke_credential");
    let list = Credential::from_json(
        revoked
            .get("status_list")
            .and_then(Value::as_text)
            .expect("list"),
    )
    .expect("list credential");
    identity::learn_status_list(&v.agent, &r_list_url, list);
    let e = identity::verify_request_authority(&v.agent, &sub_req, None)
        .await
        .expect_err("sub-delegation revoked");
    assert_eq!(e.code(), ErrorCode::CredentialRevoked);

    // Out of scope: refused by the holder (1101) and by the counterparty (1101).
    let err = control(
        &r.agent,
        "create_request",
        map(vec![(
            "template",
            map(vec![("value_type", Value::text("compute.gpu"))]),
        )]),
    )
    .await
    .expect_err("compute is out of scope");
    assert_eq!(mtp_code(&err), Some(1101));
    let gpu = signed_request(&r.agent, "compute.gpu", "", usd(10));
    let e = identity::verify_request_authority(&v.agent, &gpu, None)
        .await
        .expect_err("out of scope");
    assert_eq!(e.code(), ErrorCode::AuthorityAttestationInvalid);
    // Above the delegated maximum: 1101.
    let big = signed_request(&r.agent, "inference.text", "", usd(900));
    let e = identity::verify_request_authority(&v.agent, &big, None)
        .await
        .expect_err("over the limit");
    assert_eq!(e.code(), ErrorCode::AuthorityAttestationInvalid);

    // Revoked before the transaction starts: 1102 (SPEC-III-A-3-02).
    let revoked_list = pr.list.revoke(index_r, now()).expect("revoke");
    identity::learn_status_list(&v.agent, pr.list.url(), revoked_list);
    let e = identity::verify_request_authority(&v.agent, &req, None)
        .await
        .expect_err("revoked");
    assert_eq!(e.code(), ErrorCode::CredentialRevoked);

    // SD-JWT presentation (PROFILE G-35), bound to the counterparty V.
    let mut sd_adc = pr.adc(&r.did(), "urn:uuid:adc-r-sd");
    sd_adc.permitted_counterparty_classes = Some(vec!["verified_business".into()]);
    let sd = disclosure::issue(
        &sd_adc.to_unsigned_credential().expect("unsigned"),
        &["principal"],
        1,
        &mut SeededRng::from_seed([9; 32]),
        &pr.key,
        &pr.options(),
    )
    .expect("sd issue");
    let args = pr.provision_args(
        &[sd.credential.to_json()],
        vec![(
            "sd_disclosures",
            Value::Array(
                sd.disclosures
                    .iter()
                    .map(|d| Value::text(d.as_str()))
                    .collect(),
            ),
        )],
    );
    control(&r.agent, "provision", args)
        .await
        .expect("provision SD");
    let lists = pr.provision_args(&[], vec![]);
    for n in [&v, &w] {
        control(
            &n.agent,
            "provision",
            map(vec![(
                "status_lists",
                lists.get("status_lists").expect("lists").clone(),
            )]),
        )
        .await
        .expect("lists");
    }
    let sd_req = signed_request(&r.agent, "inference.text", &v.did(), usd(50));
    assert!(matches!(
        &sd_req.authority_attestation.proof,
        mtp_protocol::primitives::request::AuthorityProof::VcPresentation { presentation, .. }
            if presentation.contains('~')
    ));
    identity::verify_request_authority(&v.agent, &sd_req, None)
        .await
        .expect("SD presentation accepted by its audience");
    let e = identity::verify_request_authority(&w.agent, &sd_req, None)
        .await
        .expect_err("another audience");
    assert_eq!(e.code(), ErrorCode::AuthorityAttestationInvalid);

    // zk_range against a hidden limit (PROFILE G-36).
    let secret = [7u8; 32];
    let mut zk_adc = pr.adc(&r.did(), "urn:uuid:adc-r-zk");
    zk_adc.max_transaction_value = MaxTransactionValue::hidden("USD").expect("hidden");
    zk_adc.max_transaction_value_commitment = Some(
        MaxValueCommitment::commit(
            &MinorAmount::new(50_000, "USD"),
            &secret,
            "urn:uuid:adc-r-zk",
        )
        .expect("commit")
        .point,
    );
    let zk_cred = pr.sign(&zk_adc);
    let args = pr.provision_args(
        &[zk_cred.to_json()],
        vec![
            ("sd_disclosures", Value::Array(vec![])),
            ("range_secret", Value::Bytes(secret.to_vec())),
            ("hidden_limit", usd(500).to_value()),
        ],
    );
    control(&r.agent, "provision", args)
        .await
        .expect("provision zk");
    let lists = pr.provision_args(&[], vec![]);
    control(
        &v.agent,
        "provision",
        map(vec![(
            "status_lists",
            lists.get("status_lists").expect("lists").clone(),
        )]),
    )
    .await
    .expect("lists");
    let zk_req = signed_request(&r.agent, "inference.text", &v.did(), usd(120));
    identity::verify_request_authority(&v.agent, &zk_req, None)
        .await
        .expect("zk_range proof accepted");
    let err = control(
        &r.agent,
        "create_request",
        map(vec![
            ("counterparty", Value::text(v.did())),
            (
                "template",
                map(vec![
                    ("value_type", Value::text("inference.text")),
                    (
                        "constraints",
                        map(vec![("budget_ceiling", usd(600).to_value())]),
                    ),
                ]),
            ),
        ]),
    )
    .await
    .expect_err("no proof above the hidden limit");
    assert_eq!(mtp_code(&err), Some(1101));
}

// ---------------------------------------------------------------------------------------
// DID resolution
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn did_resolution_registry_first_then_peer() {
    let g_did = did_of(31);
    let g = node(31, true, vec![]).await;
    let a = node(32, false, vec![g_did.clone()]).await;
    let b = node(33, false, vec![]).await;
    let c = node(34, false, vec![]).await;
    for (x, y) in [(&g, &a), (&g, &b), (&a, &b), (&a, &c)] {
        link(x, y);
    }
    // The registry indexes B by resolving it on the peer path.
    let r = control(
        &g.agent,
        "resolve_did",
        map(vec![("did", Value::text(b.did()))]),
    )
    .await
    .expect("registry resolves B");
    assert_eq!(r.get("path").and_then(Value::as_text), Some("peer"));
    // A resolves B through the registry…
    let r = control(
        &a.agent,
        "resolve_did",
        map(vec![("did", Value::text(b.did()))]),
    )
    .await
    .expect("A resolves B");
    assert_eq!(r.get("path").and_then(Value::as_text), Some("registry"));
    assert_eq!(r.get("version").and_then(Value::as_u64), Some(1));
    let doc = DidDocument::from_json(r.get("document").and_then(Value::as_text).expect("doc"))
        .expect("document");
    assert_eq!(doc.id, b.did());
    // …and C, which the registry has not indexed, on the peer path (BIND-II-B-02).
    let r = control(
        &a.agent,
        "resolve_did",
        map(vec![("did", Value::text(c.did()))]),
    )
    .await
    .expect("A resolves C");
    assert_eq!(r.get("path").and_then(Value::as_text), Some("peer"));
    // Registry only: not indexed is 1200, retried then escalated.
    let err = control(
        &a.agent,
        "resolve_did",
        map(vec![
            ("did", Value::text(c.did())),
            ("path", Value::text("registry")),
        ]),
    )
    .await
    .expect_err("registry does not know C");
    assert_eq!(mtp_code(&err), Some(1200));
}

// ---------------------------------------------------------------------------------------
// MTPAsync publication (PROFILE G-06)
// ---------------------------------------------------------------------------------------

async fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
    for _ in 0..100 {
        if ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offer_and_revocation_over_nats_reach_the_index() {
    use mtp_reference_agent::transport::nats::{NatsServer, NatsServerOptions, ServerError};
    let server = match NatsServer::start(NatsServerOptions::default()) {
        Ok(s) => s,
        Err(e @ ServerError::NotInstalled { .. }) if NatsServer::skip_requested() => {
            eprintln!("skipping: {e}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let nats = Some(mtp_reference_agent::config::NatsConfig {
        url: server.url(),
        cluster: "mtp-test".into(),
    });
    let (di, dp) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let config = |dir: &tempfile::TempDir, serve_index: bool, indexes: Vec<String>| AgentConfig {
        state_dir: dir.path().to_path_buf(),
        sync_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        serve_index,
        indexes,
        nats: nats.clone(),
        ..AgentConfig::default()
    };
    let i = mtp_reference_agent::runtime::start(config(&di, true, vec![]), [51; 32], None)
        .await
        .expect("index");
    let p = mtp_reference_agent::runtime::start(
        config(&dp, false, vec![i.agent.did()]),
        [52; 32],
        None,
    )
    .await
    .expect("publisher");
    i.agent.add_peer(p.agent.document()).expect("peer");
    p.agent.add_peer(i.agent.document()).expect("peer");

    // NATS only (no gRPC index call): manifest and Offer sealed to the index's KEM key.
    let mut args = offer_template("inference.text", 3);
    if let Value::Map(m) = &mut args {
        m.push((Value::text("via_nats"), Value::Bool(true)));
        m.push((Value::text("indexes"), Value::Array(vec![])));
    }
    let r = control(&p.agent, "publish_offer", args)
        .await
        .expect("publish over NATS");
    let id = MtpUuid::from_value(r.get("offer_id").expect("id")).expect("uuid");
    let p_did = p.agent.did();
    eventually("the Offer and manifest at the index", || {
        let idx = i.agent.discovery.index.lock().expect("index");
        idx.offer(&id).is_some() && idx.manifest_of(&p_did).is_some()
    })
    .await;
    let found = index::query(&i.agent, &index_query("inference")).expect("query");
    assert!(found.results.iter().any(|x| x.offer.offer_id == id));

    // The revocation notice on mtp.revocation.offer.inference removes it.
    control(
        &p.agent,
        "revoke_offer",
        map(vec![("offer_id", id.to_value())]),
    )
    .await
    .expect("revoke");
    eventually("the revocation at the index", || {
        i.agent
            .discovery
            .index
            .lock()
            .expect("index")
            .is_revoked(&id)
    })
    .await;
    assert!(
        index::query(&i.agent, &index_query("inference"))
            .expect("query")
            .results
            .is_empty()
    );
    p.shutdown().await.expect("shutdown");
    i.shutdown().await.expect("shutdown");
    drop(server);
}
