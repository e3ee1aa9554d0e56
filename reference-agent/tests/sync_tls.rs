//! MTPSync over real loopback TCP: tonic gRPC over mutual TLS 1.3 with ML-DSA-65
//! certificates and ML-KEM-768 (BIND V-A; PROFILE G-09, G-32, G-37).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mtp_protocol::cbor::Value;
use mtp_protocol::errors::{Coded, ErrorCode};
use mtp_protocol::wire;
use mtp_reference_agent::transport::sync::framing::{self, Ack, ErrorContext, RemoteError, Rpc};
use mtp_reference_agent::transport::sync::pb::{
    self,
    agent_client::AgentClient,
    agent_server::{Agent, AgentServer},
};
use mtp_reference_agent::transport::sync::tls::{self, PinnedServerVerifier, Side};
use mtp_reference_agent::transport::sync::{
    ClientOptions, ConnectError, EventSink, Fingerprint, HandshakeRefused, KxPolicy, PinSet,
    RefusalReason, ServerOptions, SessionInfo, SyncServer, TlsIdentity, TransportEvent, connect,
    session,
};
use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls::pki_types::ServerName;
use rustls::{CipherSuite, ClientConfig, NamedGroup, ProtocolVersion, SupportedCipherSuite};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedReceiver;
use tonic::{Request, Response, Status, Streaming};

const SERVER_DID: &str = "did:mtp:server";
const CLIENT_DID: &str = "did:mtp:client";

fn server_identity() -> TlsIdentity {
    TlsIdentity::from_seed(&[1; 32], SERVER_DID).expect("server identity")
}

fn client_identity() -> TlsIdentity {
    TlsIdentity::from_seed(&[2; 32], CLIENT_DID).expect("client identity")
}

fn stranger_identity() -> TlsIdentity {
    TlsIdentity::from_seed(&[3; 32], "did:mtp:stranger").expect("stranger identity")
}

/// A minimal Agent service: `Notify` acknowledges; everything else is unimplemented.
#[derive(Clone, Default)]
struct TestAgent {
    seen: Arc<Mutex<Vec<SessionInfo>>>,
}

type FrameStream = Pin<Box<dyn futures::Stream<Item = Result<pb::Frame, Status>> + Send>>;

#[tonic::async_trait]
impl Agent for TestAgent {
    async fn resolve_did(&self, _: Request<pb::Frame>) -> Result<Response<pb::Frame>, Status> {
        Err(Status::unimplemented("ResolveDid"))
    }

    type NegotiateStream = FrameStream;
    async fn negotiate(
        &self,
        _: Request<Streaming<pb::Frame>>,
    ) -> Result<Response<FrameStream>, Status> {
        Err(Status::unimplemented("Negotiate"))
    }

    type CommitStream = FrameStream;
    async fn commit(
        &self,
        _: Request<Streaming<pb::Frame>>,
    ) -> Result<Response<FrameStream>, Status> {
        Err(Status::unimplemented("Commit"))
    }

    async fn settle(&self, _: Request<pb::Frame>) -> Result<Response<pb::Frame>, Status> {
        Err(Status::unimplemented("Settle"))
    }

    async fn deliver(&self, _: Request<pb::Frame>) -> Result<Response<pb::Frame>, Status> {
        Err(Status::unimplemented("Deliver"))
    }

    async fn verify(&self, _: Request<pb::Frame>) -> Result<Response<pb::Frame>, Status> {
        Err(Status::unimplemented("Verify"))
    }

    async fn notify(&self, req: Request<pb::Frame>) -> Result<Response<pb::Frame>, Status> {
        if let Some(s) = session(&req) {
            self.seen.lock().expect("lock").push(s.clone());
        }
        let frame = framing::receive(&req, Rpc::Notify)
            .map_err(|e| framing::status_for(&e, Rpc::Notify, &ErrorContext::now(SERVER_DID)))?;
        let ack = Ack::of(&frame)
            .to_frame()
            .map_err(|e| framing::status_for(&e, Rpc::Notify, &ErrorContext::now(SERVER_DID)))?;
        framing::response(&ack)
            .map_err(|e| framing::status_for(&e, Rpc::Notify, &ErrorContext::now(SERVER_DID)))
    }
}

struct Harness {
    server: SyncServer,
    agent: TestAgent,
    events: UnboundedReceiver<TransportEvent>,
    pins: PinSet,
    identity: TlsIdentity,
}

async fn start(kx: KxPolicy, handshake_timeout: Duration) -> Harness {
    let identity = server_identity();
    let pins = PinSet::new();
    pins.insert(client_identity().fingerprint, CLIENT_DID);
    let (events, rx) = EventSink::channel();
    let agent = TestAgent::default();
    let router = tonic::transport::Server::builder().add_service(AgentServer::new(agent.clone()));
    let server = SyncServer::bind(
        "127.0.0.1:0".parse().expect("addr"),
        &identity,
        pins.clone(),
        ServerOptions {
            kx,
            handshake_timeout,
            events,
            ..ServerOptions::default()
        },
        router,
    )
    .await
    .expect("server starts");
    Harness {
        server,
        agent,
        events: rx,
        pins,
        identity,
    }
}

async fn start_default() -> Harness {
    start(KxPolicy::MlKem768, Duration::from_secs(5)).await
}

async fn next_event(rx: &mut UnboundedReceiver<TransportEvent>) -> TransportEvent {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an event in time")
        .expect("event channel open")
}

async fn next_refusal(rx: &mut UnboundedReceiver<TransportEvent>) -> HandshakeRefused {
    match next_event(rx).await {
        TransportEvent::HandshakeRefused(r) => r,
        TransportEvent::Established(s) => panic!("expected a refusal, got a session {s:?}"),
    }
}

fn notification() -> wire::Frame {
    wire::Frame::new(
        "notification",
        Value::Map(vec![(Value::text("note"), Value::text("hello"))]),
    )
    .expect("frame")
}

#[tokio::test]
async fn pinned_client_completes_a_call_over_post_quantum_tls() {
    let mut h = start_default().await;
    let client_id = client_identity();
    let (client_events, mut client_rx) = EventSink::channel();
    let channel = connect(
        &h.server.endpoint(),
        h.identity.fingerprint,
        &client_id,
        &ClientOptions {
            events: client_events,
            ..ClientOptions::default()
        },
    )
    .await
    .expect("pinned client connects");
    let mut client = AgentClient::new(channel);

    let frame = notification();
    let resp = client
        .notify(framing::request(&frame).expect("request"))
        .await
        .expect("notify succeeds");
    let ack_frame = framing::receive_response(&resp, Rpc::Notify).expect("valid ack frame");
    assert_eq!(
        Ack::from_frame(&ack_frame).expect("ack"),
        Ack {
            ok: true,
            reference: frame.hash
        }
    );

    // Other methods are unimplemented, over the same connection.
    let err = client
        .settle(framing::request(&frame).expect("request"))
        .await
        .expect_err("unimplemented");
    assert_eq!(err.code(), tonic::Code::Unimplemented);

    // The handler saw the client's pinned certificate and the profile's parameters.
    let seen = h.agent.seen.lock().expect("lock").clone();
    let s = seen.first().expect("handler saw a session");
    assert_eq!(s.side, Side::Server);
    assert_eq!(s.peer_fingerprint, client_id.fingerprint);
    assert_eq!(s.peer_label.as_deref(), Some(CLIENT_DID));
    assert_eq!(s.protocol_version, ProtocolVersion::TLSv1_3);
    assert_eq!(s.cipher_suite, CipherSuite::TLS13_AES_256_GCM_SHA384);
    assert_eq!(s.kx_group, NamedGroup::MLKEM768);
    assert_eq!(s.alpn, b"h2");

    // Both ends reported the established session.
    match next_event(&mut h.events).await {
        TransportEvent::Established(info) => {
            assert_eq!(info.peer_fingerprint, client_id.fingerprint)
        }
        other => panic!("server: {other:?}"),
    }
    match next_event(&mut client_rx).await {
        TransportEvent::Established(info) => {
            assert_eq!(info.side, Side::Client);
            assert_eq!(info.peer_fingerprint, h.identity.fingerprint);
            assert_eq!(info.cipher_suite, CipherSuite::TLS13_AES_256_GCM_SHA384);
            assert_eq!(info.kx_group, NamedGroup::MLKEM768);
        }
        other => panic!("client: {other:?}"),
    }

    drop(client);
    h.server.shutdown().await.expect("graceful shutdown");
}

#[tokio::test]
async fn tampered_frame_is_0108_invalid_argument_with_error_trailer() {
    let h = start_default().await;
    let channel = connect(
        &h.server.endpoint(),
        h.identity.fingerprint,
        &client_identity(),
        &ClientOptions::default(),
    )
    .await
    .expect("connects");
    let mut client = AgentClient::new(channel);

    let mut frame = notification();
    frame.hash[31] ^= 0x80;
    let status = client
        .notify(framing::request(&frame).expect("request"))
        .await
        .expect_err("hash mismatch refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().starts_with("0108 "),
        "{}",
        status.message()
    );
    let remote = RemoteError::from_status(&status);
    assert_eq!(remote.code, Some(108));
    assert_eq!(remote.trailer_problem, None);
    let record = remote.record.as_ref().expect("mtp-error-bin trailer");
    assert_eq!(
        record.error_code(),
        Some(ErrorCode::MessageIntegrityFailure)
    );
    assert!(remote.status_matches_profile(Rpc::Notify));

    // Without mtp-version the call fails with 0107 (PROFILE G-49).
    let status = client
        .notify(Request::new(
            framing::encode(&notification()).expect("frame"),
        ))
        .await
        .expect_err("no version");
    let remote = RemoteError::from_status(&status);
    assert_eq!(
        remote.error_code(),
        Some(ErrorCode::ProtocolVersionUnsupported)
    );
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);

    drop(client);
    h.server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn client_refuses_a_server_certificate_that_is_not_pinned() {
    let mut h = start_default().await;
    let (client_events, mut client_rx) = EventSink::channel();
    let err = connect(
        &h.server.endpoint(),
        stranger_identity().fingerprint,
        &client_identity(),
        &ClientOptions {
            events: client_events,
            ..ClientOptions::default()
        },
    )
    .await
    .expect_err("wrong pin refused");
    let ConnectError::Refused(r) = &err else {
        panic!("expected a handshake refusal, got {err:?}");
    };
    assert_eq!(r.side, Side::Client);
    assert_eq!(r.reason, RefusalReason::UnpinnedCertificate);
    assert_eq!(r.peer_fingerprint, Some(h.identity.fingerprint));
    assert_eq!(err.mtp_code(), Some(ErrorCode::TransportSecurityFailure));
    assert_eq!(r.requirement(), Some("BIND-V-A-05"));
    match next_event(&mut client_rx).await {
        TransportEvent::HandshakeRefused(e) => assert_eq!(&e, r),
        other => panic!("client: {other:?}"),
    }
    // The server saw the client abort (normally with an alert; a reset is possible when
    // the client closes with unread handshake bytes).
    let s = next_refusal(&mut h.events).await;
    assert_eq!(s.side, Side::Server);
    assert!(
        matches!(s.reason, RefusalReason::PeerAlert | RefusalReason::Other),
        "{s}"
    );
    h.server.shutdown().await.expect("shutdown");
}

// ---- raw clients built with tokio-rustls --------------------------------------------

/// Accepts any server certificate; advertises every scheme the provider knows, so the
/// only misconfiguration is the one under test.
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
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn provider(
    suites: Vec<SupportedCipherSuite>,
    groups: Vec<&'static dyn rustls::crypto::SupportedKxGroup>,
) -> CryptoProvider {
    let mut p = aws_lc_rs::default_provider();
    p.cipher_suites = suites;
    p.kx_groups = groups;
    p
}

enum ClientCert {
    None,
    Of(TlsIdentity),
}

fn raw_config(
    p: CryptoProvider,
    versions: &[&'static rustls::SupportedProtocolVersion],
    cert: ClientCert,
) -> ClientConfig {
    let verifier = Arc::new(AnyServer(p.clone()));
    let builder = ClientConfig::builder_with_provider(Arc::new(p))
        .with_protocol_versions(versions)
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut cfg = match cert {
        ClientCert::None => builder.with_no_client_auth(),
        ClientCert::Of(id) => builder
            .with_client_auth_cert(vec![id.cert_der.clone()], id.private_key())
            .expect("client cert"),
    };
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    cfg
}

/// Tries a TLS session and an HTTP/2 preface; `Ok` only if the server answered.
async fn raw_attempt(cfg: ClientConfig, addr: SocketAddr) -> Result<(), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let name = ServerName::try_from("localhost").expect("name");
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    // In TLS 1.3 the server's verdict on our certificate arrives after our Finished.
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

fn aes256() -> SupportedCipherSuite {
    aws_lc_rs::cipher_suite::TLS13_AES_256_GCM_SHA384
}

async fn expect_refused(
    h: &mut Harness,
    cfg: ClientConfig,
    reason: RefusalReason,
) -> HandshakeRefused {
    let outcome = raw_attempt(cfg, h.server.local_addr()).await;
    assert!(outcome.is_err(), "{reason:?}: the server accepted");
    let r = next_refusal(&mut h.events).await;
    assert_eq!(r.side, Side::Server);
    assert_eq!(r.reason, reason, "{r}");
    assert_eq!(r.code(), ErrorCode::TransportSecurityFailure);
    assert!(r.peer_addr.is_some());
    r
}

#[tokio::test]
async fn server_refuses_each_off_profile_client() {
    let mut h = start_default().await;
    let mlkem = || vec![aws_lc_rs::kx_group::MLKEM768];
    let tls13 = &[&rustls::version::TLS13][..];

    // The well-configured raw client is accepted (sanity check of the harness).
    let good = raw_config(
        provider(vec![aes256()], mlkem()),
        tls13,
        ClientCert::Of(client_identity()),
    );
    raw_attempt(good, h.server.local_addr())
        .await
        .expect("profile client accepted");
    assert!(matches!(
        next_event(&mut h.events).await,
        TransportEvent::Established(_)
    ));

    // No client certificate (BIND-V-A-02).
    let r = expect_refused(
        &mut h,
        raw_config(provider(vec![aes256()], mlkem()), tls13, ClientCert::None),
        RefusalReason::NoClientCertificate,
    )
    .await;
    assert_eq!(r.requirement(), Some("BIND-V-A-02"));

    // A valid self-signed ML-DSA-65 certificate that is not pinned (BIND-V-A-05).
    let stranger = stranger_identity();
    let r = expect_refused(
        &mut h,
        raw_config(
            provider(vec![aes256()], mlkem()),
            tls13,
            ClientCert::Of(stranger.clone()),
        ),
        RefusalReason::UnpinnedCertificate,
    )
    .await;
    assert_eq!(r.peer_fingerprint, Some(stranger.fingerprint));

    // Only AES-128 (BIND-V-A-06).
    expect_refused(
        &mut h,
        raw_config(
            provider(
                vec![aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256],
                mlkem(),
            ),
            tls13,
            ClientCert::Of(client_identity()),
        ),
        RefusalReason::NoCommonCipherSuite,
    )
    .await;

    // Only X25519 (SPEC-VIII-A-05).
    expect_refused(
        &mut h,
        raw_config(
            provider(vec![aes256()], vec![aws_lc_rs::kx_group::X25519]),
            tls13,
            ClientCert::Of(client_identity()),
        ),
        RefusalReason::NoCommonKeyExchangeGroup,
    )
    .await;

    // Only the hybrid X25519MLKEM768 (PROFILE G-37 refuses ECDH hybrids).
    expect_refused(
        &mut h,
        raw_config(
            provider(vec![aes256()], vec![aws_lc_rs::kx_group::X25519MLKEM768]),
            tls13,
            ClientCert::Of(client_identity()),
        ),
        RefusalReason::NoCommonKeyExchangeGroup,
    )
    .await;

    // The stock aws-lc-rs client: its defaults offer no pure ML-KEM group.
    expect_refused(
        &mut h,
        raw_config(
            aws_lc_rs::default_provider(),
            tls13,
            ClientCert::Of(client_identity()),
        ),
        RefusalReason::NoCommonKeyExchangeGroup,
    )
    .await;

    // TLS 1.2 only (BIND-V-A-01).
    expect_refused(
        &mut h,
        raw_config(
            aws_lc_rs::default_provider(),
            &[&rustls::version::TLS12],
            ClientCert::Of(client_identity()),
        ),
        RefusalReason::UnsupportedProtocolVersion,
    )
    .await;

    h.server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn pins_are_updatable_while_serving() {
    let mut h = start_default().await;
    let stranger = stranger_identity();
    let attempt = |id: TlsIdentity| {
        let endpoint = h.server.endpoint();
        let fp = h.identity.fingerprint;
        async move { connect(&endpoint, fp, &id, &ClientOptions::default()).await }
    };
    // Unpinned: the handshake completes on the client side, the first call fails.
    if let Ok(ch) = attempt(stranger.clone()).await {
        // The server's alert surfaces as a transport error of the call.
        AgentClient::new(ch)
            .notify(framing::request(&notification()).expect("request"))
            .await
            .expect_err("unpinned client refused");
    }
    assert_eq!(
        next_refusal(&mut h.events).await.reason,
        RefusalReason::UnpinnedCertificate
    );

    // Pinned at runtime (e.g. after resolving the peer's DID Document): accepted.
    h.pins.insert(stranger.fingerprint, "did:mtp:stranger");
    let ch = attempt(stranger.clone()).await.expect("now pinned");
    AgentClient::new(ch)
        .notify(framing::request(&notification()).expect("request"))
        .await
        .expect("call succeeds");
    match next_event(&mut h.events).await {
        TransportEvent::Established(s) => {
            assert_eq!(s.peer_label.as_deref(), Some("did:mtp:stranger"))
        }
        other => panic!("{other:?}"),
    }

    // Unpinned again: new connections are refused (no session resumption).
    h.pins.remove(&stranger.fingerprint);
    if let Ok(ch) = attempt(stranger).await {
        assert!(
            AgentClient::new(ch)
                .notify(framing::request(&notification()).expect("request"))
                .await
                .is_err()
        );
    }
    assert_eq!(
        next_refusal(&mut h.events).await.reason,
        RefusalReason::UnpinnedCertificate
    );
    h.server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn mlkem1024_is_optional_and_negotiable() {
    let mut h = start(KxPolicy::MlKem768OrMlKem1024, Duration::from_secs(5)).await;
    let only_1024 = raw_config(
        provider(vec![aes256()], vec![aws_lc_rs::kx_group::MLKEM1024]),
        &[&rustls::version::TLS13],
        ClientCert::Of(client_identity()),
    );
    raw_attempt(only_1024, h.server.local_addr())
        .await
        .expect("MLKEM1024 accepted when enabled");
    match next_event(&mut h.events).await {
        TransportEvent::Established(s) => assert_eq!(s.kx_group, NamedGroup::MLKEM1024),
        other => panic!("{other:?}"),
    }
    // A default (MLKEM768-only) client still works with this server.
    let ch = connect(
        &h.server.endpoint(),
        h.identity.fingerprint,
        &client_identity(),
        &ClientOptions::default(),
    )
    .await
    .expect("connects");
    AgentClient::new(ch)
        .notify(framing::request(&notification()).expect("request"))
        .await
        .expect("call");
    match next_event(&mut h.events).await {
        TransportEvent::Established(s) => assert_eq!(s.kx_group, NamedGroup::MLKEM768),
        other => panic!("{other:?}"),
    }
    h.server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn silent_peer_times_out() {
    let mut h = start(KxPolicy::MlKem768, Duration::from_millis(300)).await;
    let _tcp = TcpStream::connect(h.server.local_addr())
        .await
        .expect("tcp");
    let r = next_refusal(&mut h.events).await;
    assert_eq!(r.reason, RefusalReason::Timeout);
    h.server.shutdown().await.expect("shutdown");
}

#[test]
fn fingerprints_are_what_the_did_document_publishes() {
    let id = server_identity();
    let text = id.fingerprint.to_string();
    assert!(text.starts_with("sha256:") && text.len() == 7 + 64);
    assert_eq!(Fingerprint::parse(&text), Ok(id.fingerprint));
    assert_eq!(id.fingerprint, Fingerprint::of_der(&id.cert_der));
    // Reproducible from the seed.
    assert_eq!(server_identity().fingerprint, id.fingerprint);
    // The verifier type is usable on its own (e.g. for custom connectors).
    let p = tls::crypto_provider(KxPolicy::MlKem768);
    let _ = PinnedServerVerifier::new(id.fingerprint, &p);
}
