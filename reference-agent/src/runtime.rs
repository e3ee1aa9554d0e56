//! Starting an agent: bind the MTPSync listener, build the [`Agent`], serve the MTP `Agent`
//! service (and the discovery `Index` service for an index agent) over mutual TLS 1.3,
//! record every refused handshake in the agent trail (0109), load the configured peers,
//! serve the test-control interface (docs/iut-contract.md) and run MTPAsync: connect to NATS
//! JetStream, consume this agent's inbox (and, for an index, the discovery subjects) with
//! durable consumers, open every envelope, de-duplicate, dispatch, acknowledge.

use std::net::SocketAddr;
use std::time::Duration;

use mtp_protocol::crypto::{DecapsulationKey, PublicKey};
use mtp_protocol::errors::{Coded, ErrorCode};
use mtp_protocol::wire::{Frame, WireError};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::agent::{Agent, AgentError, Bound};
use crate::config::AgentConfig;
use crate::events::{Event, EventKind};
use crate::keys::{AgentKeys, LABEL_TLS};
use crate::layers;
use crate::services::agent::AgentService;
use crate::services::control::{self, ControlServerError};
use crate::transport::nats::envelope::peek_sender;
use crate::transport::nats::{
    AsyncTransport, ConsumerOptions, DedupError, Delivery, EnvelopeError, FileDedup, LookupError,
    NatsError, Received, SharedDedup, TransportOptions, open_received,
};
use crate::transport::sync::certs::{CertError, TlsIdentity};
use crate::transport::sync::framing;
use crate::transport::sync::pb::agent_server::Agent as _;
use crate::transport::sync::server::{ServerError, ServerOptions, SyncServer};
use crate::transport::sync::tls::{EventSink, TransportEvent};

/// Why an agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind MTPSync listener {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot bind test-control listener {addr}: {source}")]
    BindControl {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("test-control service: {0}")]
    Control(#[from] ControlServerError),
    #[error("peer document {path}: {reason}")]
    Peer { path: String, reason: String },
    #[error("NATS URL {0:?} is not nats://host:port")]
    NatsUrl(String),
    #[error("MTPAsync: {0}")]
    Nats(#[from] NatsError),
    #[error("MTPAsync de-duplication store: {0}")]
    Dedup(#[from] DedupError),
}

/// A started agent.
pub struct RunningAgent {
    pub agent: Agent,
    pub sync: SyncServer,
    /// The test-control service, when `control_listen` is configured.
    pub control: Option<SyncServer>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningAgent {
    /// `grpcs://host:port` of the MTPSync server.
    pub fn sync_endpoint(&self) -> String {
        self.sync.endpoint()
    }

    /// `grpcs://host:port` of the test-control server.
    pub fn control_endpoint(&self) -> Option<String> {
        self.control.as_ref().map(SyncServer::endpoint)
    }

    /// The one JSON line a started agent prints on stdout for scripts and parent processes:
    /// who it is and where it listens.
    pub fn ready_line(&self) -> String {
        serde_json::json!({
            "did": self.agent.did(),
            "sync_endpoint": self.agent.document().sync_endpoint()
                .map(|s| format!("grpcs://{}:{}", s.host, s.port)),
            "listen": self.sync_endpoint(),
            "control_endpoint": self.control_endpoint(),
            "tls_fingerprint": self.agent.tls.fingerprint.to_string(),
        })
        .to_string()
    }

    /// Stops the NATS consumers (unacknowledged messages are redelivered to the next run),
    /// then the servers, letting open calls finish.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        if let Some(c) = self.control {
            c.shutdown().await?;
        }
        self.sync.shutdown().await
    }
}

/// The keys and MTPSync/test-control TLS identity an agent derives from its seed (the
/// certificate, hence its fingerprint, is reproducible).
pub fn identity_of(seed: [u8; 32]) -> Result<(AgentKeys, TlsIdentity), CertError> {
    let keys = AgentKeys::from_seed(seed);
    let tls = TlsIdentity::from_seed(&keys.derive(LABEL_TLS), keys.did.as_str())?;
    Ok((keys, tls))
}

/// `(host, port)` of a `nats://host:port` URL (port 4222 when absent).
pub fn nats_host_port(url: &str) -> Option<(String, u16)> {
    let rest = url
        .strip_prefix("nats://")
        .or_else(|| url.strip_prefix("tls://"))?;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') {
        return None;
    }
    if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => 4222,
            None => return None,
        };
        return Some((host.to_owned(), port));
    }
    match rest.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => Some((host.to_owned(), port.parse().ok()?)),
        Some(_) => None,
        None => Some((rest.to_owned(), 4222)),
    }
}

/// Start an agent with its services. `nats` is the advertised NATS `(host, port)`; `None`
/// takes it from `config.nats.url`.
pub async fn start(
    config: AgentConfig,
    seed: [u8; 32],
    nats: Option<(String, u16)>,
) -> Result<RunningAgent, StartError> {
    let nats = match (nats, &config.nats) {
        (Some(n), _) => Some(n),
        (None, Some(n)) => {
            Some(nats_host_port(&n.url).ok_or_else(|| StartError::NatsUrl(n.url.clone()))?)
        }
        (None, None) => None,
    };
    let listener = TcpListener::bind(config.sync_listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.sync_listen,
            source,
        })?;
    let sync_addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.sync_listen,
        source,
    })?;
    let control_listener = match config.control_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::BindControl { addr, source })?,
        ),
        None => None,
    };
    let peers = config.peers.clone();
    let agent = Agent::new(config, seed, &Bound { sync_addr, nats })?;
    for path in peers {
        let text = std::fs::read_to_string(&path).map_err(|e| StartError::Peer {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let doc = mtp_protocol::identity::DidDocument::from_json(&text).map_err(|e| {
            StartError::Peer {
                path: path.display().to_string(),
                reason: e.to_string(),
            }
        })?;
        agent.add_peer(doc)?;
    }
    let sink_agent = agent.clone();
    let events = EventSink::from_fn(move |ev| {
        if let TransportEvent::HandshakeRefused(r) = ev {
            // PROFILE G-42 agent trail; docs/iut-contract.md event `handshake_refused`.
            sink_agent.raise(None, &r, None);
            let mut e = Event::new(EventKind::HandshakeRefused, sink_agent.now());
            e.code = Some(ErrorCode::TransportSecurityFailure.as_u16());
            e.detail = Some(r.to_string());
            sink_agent.events.push(e);
        }
    });
    let mut router = tonic::transport::Server::builder()
        .add_service(AgentService::new(agent.clone()).into_server());
    if agent.config.serve_index {
        // Discovery index on the MTPSync port (SPEC III-B-2; PROFILE G-09, G-31).
        router = router
            .add_service(crate::services::index::IndexService::new(agent.clone()).into_server());
    }
    let sync = SyncServer::serve(
        listener,
        &agent.tls,
        agent.pins.clone(),
        ServerOptions {
            events,
            ..ServerOptions::default()
        },
        router,
    )?;
    let control = match control_listener {
        Some(l) => Some(control::serve(&agent, l)?),
        None => None,
    };
    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    if let Some(n) = agent.config.nats.clone() {
        let transport = connect_nats(&n.url, &agent.config.name).await?;
        if agent.nats.set(transport.clone()).is_err() {
            tracing::warn!("MTPAsync transport was already set");
        }
        for spec in consumers(&agent) {
            let dedup = SharedDedup::new(FileDedup::open_in(
                agent.store.root(),
                &spec.options.durable_name,
                DEDUP_CAPACITY,
            )?);
            let consumer = transport.consumer(spec.options.clone(), dedup).await?;
            tracing::info!(
                consumer = consumer.durable_name(),
                filter = consumer.filter_subject(),
                "MTPAsync consumer started"
            );
            tasks.push(tokio::spawn(consume(
                agent.clone(),
                consumer,
                spec.source,
                stop_rx.clone(),
            )));
        }
    }
    tracing::info!(
        did = %agent.did(),
        endpoint = %sync.endpoint(),
        control = control.as_ref().map(|c| c.endpoint()),
        nats = agent.config.nats.as_ref().map(|n| n.url.clone()),
        index = agent.config.serve_index,
        "agent started"
    );
    for f in &agent.config.test_faults {
        tracing::warn!(
            fault = f.as_str(),
            "deliberate defect switched on (test_faults): this agent does not conform"
        );
    }
    Ok(RunningAgent {
        agent,
        sync,
        control,
        stop,
        tasks,
    })
}

// ---- MTPAsync ------------------------------------------------------------------------------

/// Message ids remembered per consumer for de-duplication (PROFILE G-29).
pub const DEDUP_CAPACITY: usize = 100_000;
/// Messages pulled at once, and how long one pull waits for the first.
const FETCH_BATCH: usize = 32;
const FETCH_WAIT: Duration = Duration::from_secs(1);

/// Connects, creating the streams. Agents started together race to create the same
/// streams; a failed attempt is retried.
async fn connect_nats(url: &str, name: &str) -> Result<AsyncTransport, NatsError> {
    let options = TransportOptions {
        client_name: name.to_owned(),
        ..TransportOptions::default()
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        match AsyncTransport::connect(url, options.clone()).await {
            Ok(t) => return Ok(t),
            Err(e @ NatsError::Stream { .. }) if attempt < 5 => {
                tracing::debug!(error = %e, attempt, "stream creation raced; retrying");
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Where a consumer's messages come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// This agent's inbox `mtp.agent.<did-id>.<class>`.
    Inbox,
    /// A discovery subject (broadcast: addressed to the indexes and subscribers listed as
    /// recipients).
    Discovery,
}

struct ConsumerSpec {
    options: ConsumerOptions,
    source: Source,
}

/// This agent's durable consumers: its inbox; offer and credential revocations; for an
/// index, every discovery subject (PROFILE G-06).
fn consumers(agent: &Agent) -> Vec<ConsumerSpec> {
    let id = agent.keys.did.method_specific_id().to_owned();
    let mut v = vec![ConsumerSpec {
        options: ConsumerOptions::inbox(format!("agent-{id}-inbox"), &agent.keys.did),
        source: Source::Inbox,
    }];
    let discovery: &[(&str, &str)] = if agent.config.serve_index {
        &[
            ("offer", "mtp.offer.>"),
            ("request", "mtp.request.>"),
            ("manifest", "mtp.manifest.>"),
            ("revocation", "mtp.revocation.>"),
        ]
    } else {
        &[("revocation", "mtp.revocation.>")]
    };
    for (name, filter) in discovery {
        v.push(ConsumerSpec {
            options: ConsumerOptions::new(format!("agent-{id}-{name}"), *filter),
            source: Source::Discovery,
        });
    }
    v
}

/// Set on the `tonic::Request` of a frame that arrived over MTPAsync (layers can tell it
/// from an MTPSync call, which carries a TLS `SessionInfo` instead).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsOrigin {
    /// The envelope's sender, authenticated by its signature (PROFILE G-41).
    pub sender: String,
    pub subject: String,
}

/// A frame received over MTPAsync that the agent does not serve there.
#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    /// `negotiate` / `commit` are bidirectional streams: MTPSync only (PROFILE G-09).
    #[error("frame class {0:?} is not served over MTPAsync")]
    Class(String),
}

impl Coded for InboxError {
    fn code(&self) -> ErrorCode {
        ErrorCode::SchemaViolation
    }
}

async fn consume(
    agent: Agent,
    consumer: crate::transport::nats::InboxConsumer,
    source: Source,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        let batch = tokio::select! {
            _ = stop.changed() => return,
            b = consumer.fetch(FETCH_BATCH, FETCH_WAIT) => b,
        };
        match batch {
            Ok(deliveries) => {
                for d in deliveries {
                    match d {
                        Delivery::New(msg) => handle(&agent, *msg, source).await,
                        Delivery::Duplicate(dup) => {
                            tracing::debug!(code = %dup.code(), %dup, "duplicate delivery ignored");
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, consumer = consumer.durable_name(), "MTPAsync fetch failed");
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }
}

/// Opens, dispatches and acknowledges one message (at-least-once: the ack follows the
/// processing; the de-duplication store makes a redelivery a 0400 duplicate).
async fn handle(agent: &Agent, msg: Received, source: Source) {
    let subject = msg.subject().to_owned();
    let kem_ids: Vec<String> = agent
        .document()
        .key_agreement_keys()
        .into_iter()
        .filter(|(_, alg, _)| *alg == agent.keys.kem.algorithm())
        .map(|(id, _, _)| id)
        .collect();
    let own: Vec<(&str, &DecapsulationKey)> = kem_ids
        .iter()
        .map(|k| (k.as_str(), &agent.keys.kem))
        .collect();
    let lookup = |sender: &str, kid: Option<&str>| -> Result<PublicKey, LookupError> {
        agent
            .assertion_key(kid.unwrap_or(sender))
            .map_err(|_| LookupError::unknown(sender, kid))
    };
    let opened = match open_received(&msg, &own, &lookup) {
        Ok(o) => o,
        Err(EnvelopeError::Wire(WireError::NotARecipient(_))) if source == Source::Discovery => {
            // A broadcast for other indexes or subscribers.
            ack(msg).await;
            return;
        }
        Err(e) => {
            let sender = peek_sender(msg.payload()).ok().map(|(h, _)| h.sender);
            tracing::warn!(subject, error = %e, sender, "MTPAsync envelope refused");
            agent.raise(None, &e, sender.as_deref());
            if let Err(e) = msg.term().await {
                tracing::warn!(error = %e, "cannot terminate a refused message");
            }
            return;
        }
    };
    let sender = opened.header.sender.clone();
    let frame = match Frame::new(&opened.header.msg_type, opened.body) {
        Ok(f) => f,
        Err(e) => {
            agent.raise(None, &e, Some(&sender));
            if let Err(e) = msg.term().await {
                tracing::warn!(error = %e, "cannot terminate a refused message");
            }
            return;
        }
    };
    let mut ev = Event::new(EventKind::MessageReceived, agent.now());
    ev.peer = Some(sender.clone());
    ev.frame_type = Some(frame.frame_type.clone());
    ev.hash = Some(frame.hash);
    ev.detail = Some(format!("MTPAsync {subject}"));
    agent.events.push(ev);
    match source {
        Source::Discovery if agent.fault("nats-discovery-ignored") => {}
        Source::Discovery => {
            if let Err(status) = layers::discovery::on_nats_message(agent, &subject, frame).await {
                tracing::info!(subject, %status, "discovery message refused");
            }
        }
        Source::Inbox => dispatch_inbox(agent, &subject, &sender, frame).await,
    }
    ack(msg).await;
}

async fn ack(msg: Received) {
    if let Err(e) = msg.ack().await {
        tracing::warn!(error = %e, "MTPAsync ack failed (the message will be redelivered)");
    }
}

/// An inbox frame (`mtp.agent.<did-id>.<class>`): handed to the handler of the gRPC
/// method `<class>`. MTPAsync is one-way: the handler's answer is not sent back.
async fn dispatch_inbox(agent: &Agent, subject: &str, sender: &str, frame: Frame) {
    let class = subject.rsplit('.').next().unwrap_or_default().to_owned();
    let mut request = match framing::request(&frame) {
        Ok(r) => r,
        Err(e) => {
            agent.raise(None, &e, Some(sender));
            return;
        }
    };
    request.extensions_mut().insert(NatsOrigin {
        sender: sender.to_owned(),
        subject: subject.to_owned(),
    });
    let outcome = match class.as_str() {
        "notify" => AgentService::new(agent.clone())
            .notify(request)
            .await
            .map(|_| ()),
        "resolve_did" => layers::identity::on_resolve_did(agent, request)
            .await
            .map(|_| ()),
        "settle" => layers::settlement::on_settle(agent, request)
            .await
            .map(|_| ()),
        "deliver" => layers::verification::on_deliver(agent, request)
            .await
            .map(|_| ()),
        "verify" => layers::verification::on_verify(agent, request)
            .await
            .map(|_| ()),
        other => {
            agent.raise(None, &InboxError::Class(other.to_owned()), Some(sender));
            Ok(())
        }
    };
    if let Err(status) = outcome {
        tracing::info!(subject, %status, "MTPAsync inbox frame refused");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path) -> AgentConfig {
        AgentConfig {
            state_dir: dir.to_path_buf(),
            sync_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..AgentConfig::default()
        }
    }

    #[test]
    fn nats_urls() {
        assert_eq!(
            nats_host_port("nats://127.0.0.1:4333"),
            Some(("127.0.0.1".into(), 4333))
        );
        assert_eq!(
            nats_host_port("nats://nats.example"),
            Some(("nats.example".into(), 4222))
        );
        assert_eq!(nats_host_port("nats://u:p@h:1/"), Some(("h".into(), 1)));
        assert_eq!(nats_host_port("nats://[::1]:7"), Some(("::1".into(), 7)));
        for bad in [
            "http://h:1",
            "nats://",
            "nats://h:x",
            "nats://:1",
            "nats://h/x",
        ] {
            assert_eq!(nats_host_port(bad), None, "{bad}");
        }
    }

    #[test]
    fn identity_is_the_agents() {
        let d = tempfile::tempdir().unwrap();
        let (keys, tls) = identity_of([4; 32]).unwrap();
        let agent = Agent::new(
            config(d.path()),
            [4; 32],
            &Bound {
                sync_addr: SocketAddr::from(([127, 0, 0, 1], 1)),
                nats: None,
            },
        )
        .unwrap();
        assert_eq!(keys.did, agent.keys.did);
        assert_eq!(tls.fingerprint, agent.tls.fingerprint);
    }

    #[tokio::test]
    async fn two_agents_notify_each_other_and_an_unpinned_peer_is_audited() {
        let d1 = tempfile::tempdir().unwrap();
        let d2 = tempfile::tempdir().unwrap();
        let a = start(config(d1.path()), [1; 32], None).await.unwrap();
        let b = start(config(d2.path()), [2; 32], None).await.unwrap();
        // b does not know a yet: a's handshake is refused and b records 0109.
        a.agent.add_peer(b.agent.document()).unwrap();
        let mut client = a.agent.agent_client(&b.agent.did()).await.ok();
        if let Some(c) = client.as_mut() {
            let frame =
                mtp_protocol::wire::Frame::new("error", mtp_protocol::cbor::Value::map::<&str>([]))
                    .unwrap();
            let req = crate::transport::sync::framing::request(&frame).unwrap();
            assert!(c.notify(req).await.is_err());
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let refused = b
            .agent
            .events
            .snapshot()
            .into_iter()
            .any(|e| e.kind == EventKind::HandshakeRefused);
        assert!(refused, "b must record the refused handshake");
        assert!(
            !b.agent
                .transactions
                .export_audit(&crate::transaction::AGENT_TRAIL_ID)
                .unwrap()
                .is_empty()
        );
        a.shutdown().await.unwrap();
        b.shutdown().await.unwrap();
    }

    /// Seals `body` as a `frame_type` envelope from `from` to `to` on `subject`.
    async fn publish(
        t: &AsyncTransport,
        from: &Agent,
        to: &mtp_protocol::identity::DidDocument,
        subject: &str,
        frame_type: &str,
        msg_id: &str,
        body: &mtp_protocol::cbor::Value,
    ) {
        use crate::transport::nats::envelope::draw_randomness;
        use crate::transport::nats::{SealedMessage, SenderIdentity};
        let (kid, alg, ek) = to.key_agreement_keys().into_iter().next().unwrap();
        let recipients = [mtp_protocol::wire::RecipientKey {
            kid: &kid,
            algorithm: alg,
            encapsulation_key: &ek,
        }];
        let msg_id = mtp_protocol::cbor::Value::text(msg_id);
        let key_id = from.document().assertion_keys()[0].0.clone();
        let mut rng = mtp_protocol::crypto::SeededRng::from_seed(from.random());
        let mut ivs = mtp_protocol::crypto::aead::IvSequence::new(rng.bytes());
        let rnd = draw_randomness(&mut rng, &mut ivs, 1).unwrap();
        t.publish_sealed(
            &SealedMessage {
                subject,
                frame_type,
                msg_id: &msg_id,
                body,
                recipients: &recipients,
            },
            &SenderIdentity {
                did: &from.did(),
                key_id: Some(&key_id),
                signing_key: &from.keys.signing,
            },
            &rnd,
            None,
        )
        .await
        .unwrap();
    }

    async fn wait_for(agent: &Agent, what: &str, f: impl Fn(&Event) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while !agent.events.snapshot().iter().any(&f) {
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: {:#?}",
                agent.events.snapshot()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nats_inbox_frames_are_opened_dispatched_acked_and_not_replayed_after_restart() {
        use crate::transport::nats::{NatsServer, NatsServerOptions, ServerError as NatsStart};
        let server =
            match tokio::task::spawn_blocking(|| NatsServer::start(NatsServerOptions::default()))
                .await
                .unwrap()
            {
                Ok(s) => s,
                Err(e @ NatsStart::NotInstalled { .. }) if NatsServer::skip_requested() => {
                    eprintln!("skipping: {e}");
                    return;
                }
                Err(e) => panic!("{e}"),
            };
        let d = tempfile::tempdir().unwrap();
        let da = tempfile::tempdir().unwrap();
        let dc = tempfile::tempdir().unwrap();
        let mut cfg = config(d.path());
        cfg.nats = Some(crate::config::NatsConfig {
            url: server.url(),
            cluster: "test".into(),
        });
        cfg.serve_index = true;
        let bound = Bound {
            sync_addr: SocketAddr::from(([127, 0, 0, 1], 1)),
            nats: None,
        };
        let a = Agent::new(config(da.path()), [21; 32], &bound).unwrap();
        let c = Agent::new(config(dc.path()), [23; 32], &bound).unwrap();
        let b = start(cfg.clone(), [22; 32], None).await.unwrap();
        assert_eq!(
            b.agent.document().async_endpoint().map(|e| e.port),
            Some(server.port())
        );
        b.agent.add_peer(a.document()).unwrap();
        let t = AsyncTransport::connect(&server.url(), TransportOptions::default())
            .await
            .unwrap();
        let bdoc = b.agent.document();
        let notify = mtp_protocol::wire::subject::inbox(&b.agent.keys.did, "notify");

        // A signed notification from a known peer reaches the notify handler.
        let mut n = mtp_protocol::error_record::Notification {
            kind: mtp_protocol::error_record::NotificationType::OfferRevoked,
            transaction_id: None,
            subject_ref: Some(a.new_uuid(mtp_protocol::uuid::ObjectType::Offer)),
            error: None,
            timestamp: a.now(),
            signature: None,
            unknown: Default::default(),
        };
        mtp_protocol::primitives::SingleSigned::sign(&mut n, &a.keys.signing, None).unwrap();
        let body = mtp_protocol::primitives::CborObject::to_value(&n);
        publish(&t, &a, &bdoc, &notify, "notification", "n-1", &body).await;
        let from_a = a.did();
        wait_for(&b.agent, "notification received", |e| {
            e.kind == EventKind::MessageReceived
                && e.frame_type.as_deref() == Some("notification")
                && e.peer.as_deref() == Some(from_a.as_str())
        })
        .await;

        // An unknown sender cannot be authenticated: 1100 in the agent trail.
        publish(&t, &c, &bdoc, &notify, "notification", "n-2", &body).await;
        wait_for(&b.agent, "1100 raised", |e| {
            e.kind == EventKind::ErrorRaised && e.code == Some(1100)
        })
        .await;

        // Streams are MTPSync only: 0103.
        let negotiate = mtp_protocol::wire::subject::inbox(&b.agent.keys.did, "negotiate");
        publish(&t, &a, &bdoc, &negotiate, "nim", "n-3", &body).await;
        wait_for(&b.agent, "0103 raised", |e| {
            e.kind == EventKind::ErrorRaised && e.code == Some(103)
        })
        .await;

        // A discovery broadcast addressed to another index is acknowledged silently.
        let errors_before = b
            .agent
            .events
            .snapshot()
            .iter()
            .filter(|e| e.kind == EventKind::ErrorRaised)
            .count();
        publish(
            &t,
            &a,
            &c.document(),
            "mtp.offer.inference.text",
            "offer",
            "o-1",
            &body,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let errors_after = b
            .agent
            .events
            .snapshot()
            .iter()
            .filter(|e| e.kind == EventKind::ErrorRaised)
            .count();
        assert_eq!(errors_before, errors_after);

        // Everything was acknowledged: a restart (same state directory, same durable
        // consumers) receives nothing again.
        b.shutdown().await.unwrap();
        let b = start(cfg, [22; 32], None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let replayed: Vec<_> = b
            .agent
            .events
            .snapshot()
            .into_iter()
            .filter(|e| matches!(e.kind, EventKind::MessageReceived | EventKind::ErrorRaised))
            .collect();
        assert!(replayed.is_empty(), "{replayed:#?}");
        b.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn control_listener_and_bad_pins() {
        let d = tempfile::tempdir().unwrap();
        let mut c = config(d.path());
        c.control_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        let a = start(c.clone(), [3; 32], None).await.unwrap();
        assert!(a.control_endpoint().is_some());
        a.shutdown().await.unwrap();
        c.control_pins = vec!["sha256:zz".into()];
        assert!(matches!(
            start(c, [3; 32], None).await,
            Err(StartError::Control(_))
        ));
    }
}
