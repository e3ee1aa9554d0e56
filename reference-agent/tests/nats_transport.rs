//! MTPAsync over NATS JetStream against a real `nats-server` started per test on a free
//! loopback port (BIND-V-B-01; PROFILE G-06, G-29, G-40, G-41).
//!
//! Without `nats-server` the tests fail with the install hint, unless `MTP_SKIP_NATS=1`.

use std::time::{Duration, Instant};

use mtp_protocol::cbor::Value;
use mtp_protocol::crypto::aead::{IvSequence, IvTracker};
use mtp_protocol::crypto::{
    DecapsulationKey, KemAlgorithm, SeededRng, SignatureAlgorithm, SigningKey,
};
use mtp_protocol::errors::{Coded, ErrorCode};
use mtp_protocol::identity::Did;
use mtp_protocol::uuid::{MtpUuid, ObjectType, source_of};
use mtp_protocol::wire::{RecipientKey, subject};
use mtp_reference_agent::transport::nats::envelope::{draw_randomness, open_payload};
use mtp_reference_agent::transport::nats::{
    AsyncTransport, ConsumerOptions, Delivery, FileDedup, NatsServer, NatsServerOptions, Outbound,
    SealedMessage, SenderIdentity, ServerError, SharedDedup, StaticKeys, StreamKind,
    TransportOptions, open_received,
};

const WAIT: Duration = Duration::from_secs(5);
const SHORT: Duration = Duration::from_millis(300);

/// Starts a broker, or `None` when `MTP_SKIP_NATS=1` and none is installed.
fn start(options: NatsServerOptions) -> Option<NatsServer> {
    match NatsServer::start(options) {
        Ok(s) => Some(s),
        Err(e @ ServerError::NotInstalled { .. }) if NatsServer::skip_requested() => {
            eprintln!("skipping: {e}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

struct Agent {
    did: Did,
    key_id: String,
    signing: SigningKey,
    kem_kid: String,
    kem: DecapsulationKey,
}

impl Agent {
    fn new(seed: u8) -> Agent {
        let signing = SigningKey::from_seed(SignatureAlgorithm::MlDsa65, &[seed; 32]);
        let did =
            Did::derive(SignatureAlgorithm::MlDsa65, signing.public_key().as_bytes()).unwrap();
        Agent {
            key_id: did.url("key-1"),
            kem_kid: did.url("kem-1"),
            kem: DecapsulationKey::from_seed(KemAlgorithm::MlKem768, &[seed; 64]),
            signing,
            did,
        }
    }

    fn sender(&self) -> SenderIdentity<'_> {
        SenderIdentity {
            did: self.did.as_str(),
            key_id: Some(&self.key_id),
            signing_key: &self.signing,
        }
    }
}

async fn connect(server: &NatsServer) -> AsyncTransport {
    AsyncTransport::connect(&server.url(), TransportOptions::default())
        .await
        .unwrap()
}

fn new(d: Option<Delivery>) -> mtp_reference_agent::transport::nats::Received {
    match d {
        Some(Delivery::New(r)) => *r,
        other => panic!("expected a new delivery, got {other:?}"),
    }
}

#[test]
fn missing_binary_reports_the_install_hint() {
    let e = NatsServer::start(NatsServerOptions {
        binary: Some("/nonexistent/nats-server".into()),
        ..Default::default()
    })
    .unwrap_err();
    assert!(matches!(e, ServerError::NotInstalled { .. }));
    assert!(
        e.to_string().contains("apt-get install -y nats-server"),
        "{e}"
    );
}

#[tokio::test]
async fn inbox_publish_and_durable_receive() {
    let Some(server) = start(NatsServerOptions::default()) else {
        return;
    };
    println!("{:?} at {}", server.version(), server.url());
    let t = connect(&server).await;
    // Streams are created or updated idempotently.
    t.ensure_streams().await.unwrap();
    connect(&server).await;

    let (bob, carol) = (Agent::new(2), Agent::new(3));
    let inbox = subject::inbox(&bob.did, "negotiate");
    let c = t
        .consumer(
            ConsumerOptions::inbox("bob-inbox", &bob.did),
            SharedDedup::memory(),
        )
        .await
        .unwrap();
    assert_eq!(c.filter_subject(), subject::inbox_pattern(&bob.did));
    // Another agent's inbox is not delivered to Bob.
    t.publish(&subject::inbox(&carol.did, "notify"), "m-0", b"x".to_vec())
        .await
        .unwrap();
    let r = t.publish(&inbox, "m-1", b"hello".to_vec()).await.unwrap();
    assert!(!r.duplicate);
    assert_eq!(r.stream, t.stream_name(StreamKind::Inbox));

    let m = new(c.next(WAIT).await.unwrap());
    assert_eq!(m.subject(), inbox);
    assert_eq!(m.payload(), b"hello");
    assert_eq!(m.msg_id(), Some("m-1"));
    assert_eq!(m.mtp_version(), Some("1.0.0"));
    assert_eq!(m.header("Nats-Msg-Id"), Some("m-1"));
    assert_eq!(m.delivered(), 1);
    assert!(!m.is_redelivery());
    m.ack_confirmed().await.unwrap();
    assert!(c.next(SHORT).await.unwrap().is_none());

    // A discovery subject goes to the discovery stream; subjects outside the profile and
    // wildcards in publish subjects are refused.
    let r = t.publish("mtp.alg", "alg-1", b"p".to_vec()).await.unwrap();
    assert_eq!(r.stream, t.stream_name(StreamKind::Discovery));
    for bad in [
        "other.subject",
        "mtp.agent.*.notify",
        "mtp.offer..x",
        "mtp.offer. x",
    ] {
        assert!(t.publish(bad, "z", vec![]).await.is_err(), "{bad}");
    }
    // A waiting receive returns as soon as a message arrives.
    let t2 = t.clone();
    let inbox2 = inbox.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        t2.publish(&inbox2, "m-2", b"later".to_vec()).await.unwrap();
    });
    let started = Instant::now();
    let m = new(c.next(WAIT).await.unwrap());
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(m.payload(), b"later");
    m.ack().await.unwrap();
}

#[tokio::test]
async fn sealed_envelope_round_trip_between_agents() {
    let Some(server) = start(NatsServerOptions::default()) else {
        return;
    };
    let t = connect(&server).await;
    let (alice, bob, carol) = (Agent::new(1), Agent::new(2), Agent::new(3));
    let ek = bob.kem.encapsulation_key();
    let recipients = [RecipientKey {
        kid: &bob.kem_kid,
        algorithm: KemAlgorithm::MlKem768,
        encapsulation_key: &ek,
    }];
    let inbox = subject::inbox(&bob.did, "negotiate");
    let id = MtpUuid::new(
        ObjectType::Offer,
        1_700_000_000_000_000_000,
        source_of(alice.did.as_str()),
        [7; 17],
    );
    let msg_id = id.to_value();
    let body = Value::map([("hello", Value::text("bob"))]);
    let msg = SealedMessage {
        subject: &inbox,
        frame_type: "offer",
        msg_id: &msg_id,
        body: &body,
        recipients: &recipients,
    };
    let mut rng = SeededRng::from_seed([42; 32]);
    let mut ivs = IvSequence::new(rng.bytes());
    let mut tracker = IvTracker::new();
    let rnd = draw_randomness(&mut rng, &mut ivs, 1).unwrap();
    t.publish_sealed(&msg, &alice.sender(), &rnd, Some(&mut tracker))
        .await
        .unwrap();
    // Re-using the randomness is refused before anything is sent (0104, PROFILE G-40).
    let e = t
        .publish_sealed(&msg, &alice.sender(), &rnd, Some(&mut tracker))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::IvReuse));

    let c = t
        .consumer(
            ConsumerOptions::inbox("bob-inbox", &bob.did),
            SharedDedup::memory(),
        )
        .await
        .unwrap();
    let m = new(c.next(WAIT).await.unwrap());
    assert_eq!(m.msg_id(), Some(id.to_string().as_str()));
    assert_eq!(m.msg_id().unwrap().len(), 67);
    let keys = StaticKeys::new().with(alice.did.as_str(), alice.signing.public_key());
    let opened = open_received(&m, &[(&bob.kem_kid, &bob.kem)], &keys).unwrap();
    assert_eq!(opened.body, body);
    assert_eq!(opened.header.sender, alice.did.as_str());
    assert_eq!(opened.header.msg_type, "offer");
    assert_eq!(opened.header.msg_id, msg_id);

    // A non-recipient cannot open it (0108).
    let e = open_received(&m, &[(&carol.kem_kid, &carol.kem)], &keys).unwrap_err();
    assert_eq!(e.code(), ErrorCode::MessageIntegrityFailure);
    // Bob's key under Carol's kid: still not a recipient entry.
    let e = open_received(&m, &[(&carol.kem_kid, &bob.kem)], &keys).unwrap_err();
    assert_eq!(e.code(), ErrorCode::MessageIntegrityFailure);
    // Unknown sender: cannot be authenticated (1100).
    let e = open_received(&m, &[(&bob.kem_kid, &bob.kem)], &StaticKeys::new()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::SignatureVerificationFailure);
    // A closure works as the lookup; the wrong key fails the signature (1100).
    let wrong = |_: &str, _: Option<&str>| Ok(carol.signing.public_key());
    let e = open_received(&m, &[(&bob.kem_kid, &bob.kem)], &wrong).unwrap_err();
    assert_eq!(e.code(), ErrorCode::SignatureVerificationFailure);
    // Another subject (bound into the AAD): 0108.
    let other = subject::inbox(&bob.did, "notify");
    let e = open_payload(
        &other,
        m.payload(),
        m.msg_id(),
        &[(&bob.kem_kid, &bob.kem)],
        &keys,
    )
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::MessageIntegrityFailure);
    // A forged Nats-Msg-Id (it drives de-duplication): 0108.
    let e = open_payload(
        m.subject(),
        m.payload(),
        Some("forged"),
        &[(&bob.kem_kid, &bob.kem)],
        &keys,
    )
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::MessageIntegrityFailure);
    // Tampered payloads fail with the envelope's error code, never a panic.
    let payload = m.payload().to_vec();
    let mut codes = std::collections::BTreeSet::new();
    for i in (0..payload.len()).step_by(61) {
        let mut bad = payload.clone();
        bad[i] ^= 0x01;
        let e =
            open_payload(m.subject(), &bad, None, &[(&bob.kem_kid, &bob.kem)], &keys).unwrap_err();
        codes.insert(e.code());
    }
    println!("tamper codes: {codes:?}");
    assert!(codes.contains(&ErrorCode::SignatureVerificationFailure));
    assert!(codes.iter().all(|c| matches!(
        c,
        ErrorCode::SignatureVerificationFailure
            | ErrorCode::MessageIntegrityFailure
            | ErrorCode::SchemaViolation
            | ErrorCode::SerializationMismatch
            | ErrorCode::TransientSerializationFailure
            | ErrorCode::AlgorithmNegotiationFailure
    )));
    // A signature key of another DID is refused (1100).
    let mallory = SenderIdentity {
        did: alice.did.as_str(),
        key_id: Some(&carol.key_id),
        signing_key: &carol.signing,
    };
    let rnd = draw_randomness(&mut rng, &mut ivs, 1).unwrap();
    let other_id = Value::text("mallory-1");
    let forged = SealedMessage {
        msg_id: &other_id,
        ..msg
    };
    let r = t
        .publish_sealed(&forged, &mallory, &rnd, None)
        .await
        .unwrap();
    assert!(!r.duplicate);
    // The same msg_id again is dropped by the server (0400).
    let rnd = draw_randomness(&mut rng, &mut ivs, 1).unwrap();
    let r = t
        .publish_sealed(&msg, &alice.sender(), &rnd, None)
        .await
        .unwrap();
    assert_eq!(
        r.duplicate_code(),
        Some(ErrorCode::DuplicateDeliveryIgnored)
    );
    m.ack_confirmed().await.unwrap();
    let m = new(c.next(WAIT).await.unwrap());
    let keys = keys.with(carol.key_id.as_str(), carol.signing.public_key());
    let e = open_received(&m, &[(&bob.kem_kid, &bob.kem)], &keys).unwrap_err();
    assert_eq!(e.code(), ErrorCode::SignatureVerificationFailure);
    m.ack().await.unwrap();
}

#[tokio::test]
async fn server_and_client_side_deduplication() {
    let Some(server) = start(NatsServerOptions::default()) else {
        return;
    };
    let t = connect(&server).await;
    let bob = Agent::new(2);
    let inbox = subject::inbox(&bob.did, "notify");

    // Server side: the same Nats-Msg-Id within the window is stored once.
    let a = t.publish(&inbox, "dup-1", b"one".to_vec()).await.unwrap();
    let b = t.publish(&inbox, "dup-1", b"one".to_vec()).await.unwrap();
    assert!(!a.duplicate && b.duplicate);
    assert_eq!(a.sequence, b.sequence);
    assert_eq!(
        b.duplicate_code(),
        Some(ErrorCode::DuplicateDeliveryIgnored)
    );
    assert_eq!(t.stream_message_count(StreamKind::Inbox).await.unwrap(), 1);

    // Client side: processed, then nak'd (a crash before the ack): the redelivery is
    // recognised and ignored (0400).
    let mut opts = ConsumerOptions::inbox("bob-dedup", &bob.did);
    opts.ack_wait = Duration::from_secs(1);
    let dedup = SharedDedup::memory();
    let c = t.consumer(opts.clone(), dedup.clone()).await.unwrap();
    let m = new(c.next(WAIT).await.unwrap());
    m.mark_processed().unwrap();
    m.nak(None).await.unwrap();
    match c.next(WAIT).await.unwrap() {
        Some(Delivery::Duplicate(d)) => {
            assert_eq!(d.msg_id, "dup-1");
            assert_eq!(d.delivered, 2);
            assert_eq!(d.code(), ErrorCode::DuplicateDeliveryIgnored);
            assert_eq!(d.code().severity(), mtp_protocol::Severity::Informational);
        }
        other => panic!("expected a duplicate, got {other:?}"),
    }
    // The duplicate was acked at the server: nothing comes back.
    assert!(c.next(Duration::from_millis(1500)).await.unwrap().is_none());

    // Not acked at all: redelivered after the ack wait, still a new message (nothing was
    // recorded), then processed once.
    t.publish(&inbox, "dup-2", b"two".to_vec()).await.unwrap();
    let m = new(c.next(WAIT).await.unwrap());
    assert_eq!(m.msg_id(), Some("dup-2"));
    drop(m);
    let m = new(c.next(WAIT).await.unwrap());
    assert_eq!((m.msg_id(), m.delivered()), (Some("dup-2"), 2));
    m.ack_confirmed().await.unwrap();

    // File-backed store: processed, crash before the ack, restart of the receiver (new
    // client, same durable, store reopened from its state dir): a duplicate.
    let state = tempfile::tempdir().unwrap();
    let mut fopts = ConsumerOptions::inbox("bob-file", &bob.did);
    fopts.ack_wait = Duration::from_secs(1);
    {
        let store = FileDedup::open_in(state.path(), "bob-file", 1000).unwrap();
        let c = t
            .consumer(fopts.clone(), SharedDedup::new(store))
            .await
            .unwrap();
        let m = new(c.next(WAIT).await.unwrap());
        assert_eq!(m.msg_id(), Some("dup-1"));
        m.ack_confirmed().await.unwrap();
        let m = new(c.next(WAIT).await.unwrap());
        assert_eq!(m.msg_id(), Some("dup-2"));
        m.mark_processed().unwrap();
        // crash: no ack
    }
    let t2 = connect(&server).await;
    let store = FileDedup::open_in(state.path(), "bob-file", 1000).unwrap();
    let c = t2.consumer(fopts, SharedDedup::new(store)).await.unwrap();
    match c.next(WAIT).await.unwrap() {
        Some(Delivery::Duplicate(d)) => assert_eq!(d.msg_id, "dup-2"),
        other => panic!("expected a duplicate after restart, got {other:?}"),
    }
    assert!(c.next(SHORT).await.unwrap().is_none());
}

#[tokio::test]
async fn broker_restart_with_same_store_loses_nothing() {
    let store = tempfile::tempdir().unwrap();
    let Some(mut server) = start(NatsServerOptions {
        store_dir: Some(store.path().to_path_buf()),
        ..Default::default()
    }) else {
        return;
    };
    let port = server.port();
    let bob = Agent::new(2);
    let inbox = subject::inbox(&bob.did, "settle");
    let opts = ConsumerOptions::inbox("bob-durable", &bob.did);
    {
        let t = connect(&server).await;
        t.consumer(opts.clone(), SharedDedup::memory())
            .await
            .unwrap();
        for i in 0..3 {
            t.publish(&inbox, &format!("r-{i}"), vec![i]).await.unwrap();
        }
    }
    // restart(): same port and store directory.
    server.restart().unwrap();
    assert_eq!(server.port(), port);
    {
        let t = connect(&server).await;
        let c = t
            .consumer(opts.clone(), SharedDedup::memory())
            .await
            .unwrap();
        let m = new(c.next(WAIT).await.unwrap());
        assert_eq!(m.msg_id(), Some("r-0"));
        m.ack_confirmed().await.unwrap();
        t.publish(&inbox, "r-3", vec![3]).await.unwrap();
    }
    // stop, then a new server process on the same port and store.
    server.stop().unwrap();
    assert!(!server.is_running());
    drop(server);
    let server = start(NatsServerOptions {
        store_dir: Some(store.path().to_path_buf()),
        port: Some(port),
        ..Default::default()
    })
    .unwrap();
    let t = connect(&server).await;
    let c = t.consumer(opts, SharedDedup::memory()).await.unwrap();
    let mut ids = Vec::new();
    while let Some(d) = c.next(SHORT).await.unwrap() {
        let m = new(Some(d));
        ids.push(m.msg_id().unwrap().to_owned());
        m.ack_confirmed().await.unwrap();
    }
    assert_eq!(ids, ["r-1", "r-2", "r-3"]);
    assert!(
        std::fs::read_to_string(server.log_path())
            .unwrap()
            .contains("Server is ready")
    );
}

#[tokio::test]
async fn consumer_restart_resumes_after_last_ack() {
    let Some(server) = start(NatsServerOptions::default()) else {
        return;
    };
    let bob = Agent::new(2);
    let inbox = subject::inbox(&bob.did, "deliver");
    let opts = ConsumerOptions::inbox("bob-resume", &bob.did);
    {
        let t = connect(&server).await;
        let c = t
            .consumer(opts.clone(), SharedDedup::memory())
            .await
            .unwrap();
        for i in 0..5u8 {
            t.publish(&inbox, &format!("q-{i}"), vec![i]).await.unwrap();
        }
        for i in 0..3u8 {
            let m = new(c.next(WAIT).await.unwrap());
            assert_eq!(m.payload(), [i]);
            m.ack_confirmed().await.unwrap();
        }
    }
    let t = connect(&server).await;
    let c = t.consumer(opts, SharedDedup::memory()).await.unwrap();
    let all = c.fetch(10, WAIT).await.unwrap();
    let got: Vec<(u64, u64)> = all
        .into_iter()
        .map(|d| {
            let m = d.into_new().unwrap();
            (m.stream_sequence(), m.delivered())
        })
        .collect();
    assert_eq!(got, [(4, 1), (5, 1)]);
}

#[tokio::test]
async fn throughput_1000_small_messages() {
    let Some(server) = start(NatsServerOptions::default()) else {
        return;
    };
    let t = connect(&server).await;
    let bob = Agent::new(2);
    let inbox = subject::inbox(&bob.did, "notify");
    let payload = vec![0xab; 256];
    const N: usize = 1000;

    let started = Instant::now();
    for i in 0..N {
        t.publish(&inbox, &format!("s-{i}"), payload.clone())
            .await
            .unwrap();
    }
    let seq = N as f64 / started.elapsed().as_secs_f64();

    let batch: Vec<Outbound> = (0..N)
        .map(|i| Outbound {
            subject: inbox.clone(),
            msg_id: format!("w-{i}"),
            payload: payload.clone(),
        })
        .collect();
    let started = Instant::now();
    let receipts = t.publish_batch(batch, 1000).await.unwrap();
    let windowed = N as f64 / started.elapsed().as_secs_f64();
    assert!(receipts.iter().all(|r| !r.duplicate));
    assert_eq!(
        t.stream_message_count(StreamKind::Inbox).await.unwrap(),
        2 * N as u64
    );

    let c = t
        .consumer(
            ConsumerOptions::inbox("bob-bench", &bob.did),
            SharedDedup::memory(),
        )
        .await
        .unwrap();
    let started = Instant::now();
    let mut received = 0;
    while received < 2 * N {
        let batch = c.fetch(N, WAIT).await.unwrap();
        assert!(!batch.is_empty());
        for d in batch {
            d.into_new().unwrap().ack().await.unwrap();
            received += 1;
        }
    }
    t.flush().await.unwrap();
    let recv = received as f64 / started.elapsed().as_secs_f64();
    assert_eq!(c.dedup().len(), 2 * N);
    println!(
        "NATS 256 B messages: sequential publish+ack {seq:.0} msg/s; windowed (1000) publish {windowed:.0} msg/s; fetch+ack receive {recv:.0} msg/s"
    );
}
