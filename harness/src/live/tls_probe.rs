//! The harness as a misbehaving MTPSync client (send fault `tls`; BIND V-A; SPEC VII-A,
//! VIII-A; PROFILE G-37): one `send` travels over a fresh connection whose TLS profile
//! deviates from the profile in one way — no client certificate, a certificate not bound to
//! the persona's DID Document, TLS 1.2, another cipher suite, a pre-quantum or hybrid key
//! exchange group, or no TLS at all.
//!
//! A conforming IUT refuses the connection before any MTP message is processed. What the
//! harness sees is queued like the answer to any send:
//!
//! - the handshake fails, or the connection is closed / reset / refused at the HTTP layer
//!   (`UNAUTHENTICATED`, or a transport error without an `mtp-error-bin` trailer) → a
//!   refusal with code **0109** (Transport Security Failure) and gRPC status
//!   `UNAUTHENTICATED` (PROFILE G-09: "transport failures before MTP → UNAUTHENTICATED");
//! - the IUT answers the frame (a response, or a refusal with an MTP trailer) → that
//!   answer: the message was processed over a channel the profile forbids, so an
//!   `expect: {error: {codes: [109]}}` fails.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use mtp_protocol::crypto::sha256;
use mtp_reference_agent::transport::sync::tls::{ALPN_H2, PinnedServerVerifier};
use mtp_reference_agent::transport::sync::{Fingerprint, TlsIdentity, framing, pb};
use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::http::Uri;
use tonic::transport::{Channel, Endpoint};

use super::channels::{Inbound, MAX_MESSAGE_BYTES, Shared};
use crate::scenario::{GrpcService, TlsVariant};

/// Subject of the certificate of `unbound_certificate`.
const UNBOUND_SUBJECT: &str = "mtp-cert unbound";

/// The TLS identity of `unbound_certificate`: a valid self-signed ML-DSA-65 certificate of
/// the persona that its DID Document does not name (BIND-V-A-05). Key seed =
/// SHA-256("mtp-cert/unbound-tls/1" ‖ 0x00 ‖ persona DID).
pub fn unbound_identity(persona_did: &str) -> Result<TlsIdentity, String> {
    let mut input = b"mtp-cert/unbound-tls/1\0".to_vec();
    input.extend_from_slice(persona_did.as_bytes());
    TlsIdentity::from_seed(&sha256(&input), UNBOUND_SUBJECT).map_err(|e| e.to_string())
}

/// The refusal a probe observes: 0109, `UNAUTHENTICATED`, no trailer.
pub fn refusal(variant: TlsVariant, detail: &str) -> Inbound {
    Inbound::Status {
        code: tonic::Code::Unauthenticated,
        message: format!(
            "0109 the IUT refused the connection (tls: {}): {detail}",
            variant.name()
        ),
        trailer: None,
    }
}

/// What one probe needs.
#[derive(Clone)]
pub struct Probe {
    /// `grpcs://host:port` of the IUT's MTPSync endpoint.
    pub endpoint: String,
    /// The IUT's certificate fingerprint (the harness still pins it).
    pub iut_fingerprint: Fingerprint,
    /// The persona's own (DID-bound) identity.
    pub identity: TlsIdentity,
    /// The persona's DID (seed of its unbound certificate).
    pub persona_did: String,
    pub variant: TlsVariant,
    pub connect_timeout: Duration,
}

/// A probe that could not even try (TCP unreachable, configuration): infrastructure.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("TLS probe: {0}")]
    Setup(String),
}

fn provider(variant: TlsVariant) -> CryptoProvider {
    use aws_lc_rs::{cipher_suite as cs, kx_group as kx};
    let mut p = aws_lc_rs::default_provider();
    p.cipher_suites = vec![cs::TLS13_AES_256_GCM_SHA384];
    p.kx_groups = vec![kx::MLKEM768];
    match variant {
        TlsVariant::Aes128Only => p.cipher_suites = vec![cs::TLS13_AES_128_GCM_SHA256],
        TlsVariant::Chacha20Only => p.cipher_suites = vec![cs::TLS13_CHACHA20_POLY1305_SHA256],
        TlsVariant::X25519Only => p.kx_groups = vec![kx::X25519],
        TlsVariant::HybridOnly => p.kx_groups = vec![kx::X25519MLKEM768],
        TlsVariant::Tls12Only => {
            p.cipher_suites = vec![
                cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            ];
            p.kx_groups = vec![kx::X25519, kx::SECP256R1];
        }
        TlsVariant::NoClientCertificate
        | TlsVariant::UnboundCertificate
        | TlsVariant::Plaintext => {}
    }
    p
}

impl Probe {
    fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, ProbeError> {
        let setup = |e: rustls::Error| ProbeError::Setup(e.to_string());
        let provider = Arc::new(provider(self.variant));
        let verifier = Arc::new(PinnedServerVerifier::new(self.iut_fingerprint, &provider));
        let versions: &[&rustls::SupportedProtocolVersion] = match self.variant {
            TlsVariant::Tls12Only => &[&rustls::version::TLS12],
            _ => &[&rustls::version::TLS13],
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .map_err(setup)?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut cfg = match self.variant {
            TlsVariant::NoClientCertificate => builder.with_no_client_auth(),
            TlsVariant::UnboundCertificate => {
                let did_free = unbound_identity(&self.persona_did).map_err(ProbeError::Setup)?;
                builder
                    .with_client_auth_cert(vec![did_free.cert_der.clone()], did_free.private_key())
                    .map_err(setup)?
            }
            _ => builder
                .with_client_auth_cert(
                    vec![self.identity.cert_der.clone()],
                    self.identity.private_key(),
                )
                .map_err(setup)?,
        };
        cfg.alpn_protocols = vec![ALPN_H2.to_vec()];
        cfg.resumption = rustls::client::Resumption::disabled();
        Ok(Arc::new(cfg))
    }

    /// `host:port` of the endpoint.
    fn authority(&self) -> Result<(String, u16), ProbeError> {
        let rest = self
            .endpoint
            .split_once("://")
            .map_or(self.endpoint.as_str(), |(_, r)| r)
            .trim_end_matches('/');
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| ProbeError::Setup(format!("endpoint {} has no port", self.endpoint)))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = port
            .parse()
            .map_err(|_| ProbeError::Setup(format!("endpoint {} has a bad port", self.endpoint)))?;
        Ok((host, port))
    }
}

/// The stream under the probe's HTTP/2: TLS or (for `plaintext`) bare TCP.
enum ProbeIo {
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Plain(TcpStream),
}

impl AsyncRead for ProbeIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ProbeIo::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            ProbeIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ProbeIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ProbeIo::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            ProbeIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ProbeIo::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            ProbeIo::Plain(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ProbeIo::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            ProbeIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Why the probe connection did not come up.
#[derive(Debug, thiserror::Error)]
enum OpenError {
    /// TCP did not connect: the endpoint is down (infrastructure).
    #[error("TCP connection to {0} failed: {1}")]
    Tcp(String, io::Error),
    /// The TLS handshake failed: the IUT refused (or the profile variant cannot be spoken).
    #[error("TLS handshake failed: {0}")]
    Handshake(io::Error),
    #[error("{0}")]
    Setup(String),
}

/// One connection with the deviant profile.
#[derive(Clone)]
struct ProbeConnector {
    host: String,
    port: u16,
    tls: Option<tokio_rustls::TlsConnector>,
    timeout: Duration,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl ProbeConnector {
    async fn open(self) -> Result<TokioIo<ProbeIo>, OpenError> {
        let what = format!("{}:{}", self.host, self.port);
        let tcp = tokio::time::timeout(
            self.timeout,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| OpenError::Tcp(what.clone(), io::ErrorKind::TimedOut.into()))?
        .map_err(|e| OpenError::Tcp(what, e))?;
        let _ = tcp.set_nodelay(true);
        let Some(tls) = self.tls else {
            return Ok(TokioIo::new(ProbeIo::Plain(tcp)));
        };
        let name =
            ServerName::try_from(self.host.clone()).map_err(|e| OpenError::Setup(e.to_string()))?;
        let stream = tokio::time::timeout(self.timeout, tls.connect(name, tcp))
            .await
            .map_err(|_| OpenError::Handshake(io::ErrorKind::TimedOut.into()))?
            .map_err(OpenError::Handshake)?;
        Ok(TokioIo::new(ProbeIo::Tls(Box::new(stream))))
    }
}

impl tower::Service<Uri> for ProbeConnector {
    type Response = TokioIo<ProbeIo>;
    type Error = OpenError;
    type Future = BoxFuture<Result<Self::Response, OpenError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), OpenError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        Box::pin(self.clone().open())
    }
}

/// Finds our [`OpenError`] in a tonic transport error's sources.
fn open_error(err: &tonic::transport::Error) -> Option<&OpenError> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(o) = e.downcast_ref::<OpenError>() {
            return Some(o);
        }
        cur = e.source();
    }
    None
}

/// The full chain of an error, for the transcript.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}

/// Connects with the deviant profile; `Ok(Err(item))` is the IUT's refusal to queue.
async fn connect(probe: &Probe) -> Result<Result<Channel, Inbound>, ProbeError> {
    let (host, port) = probe.authority()?;
    let tls = match probe.variant {
        TlsVariant::Plaintext => None,
        _ => Some(tokio_rustls::TlsConnector::from(probe.client_config()?)),
    };
    let connector = ProbeConnector {
        host: host.clone(),
        port,
        tls,
        timeout: probe.connect_timeout,
    };
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let endpoint = Endpoint::from_shared(format!("http://{authority}"))
        .map_err(|e| ProbeError::Setup(e.to_string()))?
        .connect_timeout(probe.connect_timeout);
    match endpoint.connect_with_connector(connector).await {
        Ok(c) => Ok(Ok(c)),
        Err(e) => match open_error(&e) {
            Some(OpenError::Tcp(..)) | Some(OpenError::Setup(_)) => {
                Err(ProbeError::Setup(chain(&e)))
            }
            _ => Ok(Err(refusal(probe.variant, &chain(&e)))),
        },
    }
}

/// Classifies a failed call over the probe connection.
fn status_outcome(variant: TlsVariant, s: &tonic::Status) -> Option<Inbound> {
    let trailer = s
        .metadata()
        .get_bin(framing::ERROR_TRAILER)
        .and_then(|v| v.to_bytes().ok())
        .map(|b| b.to_vec());
    if trailer.is_some() {
        // Refused at the MTP layer: the message was processed over the deviant channel.
        return Some(Inbound::Status {
            code: s.code(),
            message: s.message().to_owned(),
            trailer,
        });
    }
    use tonic::Code as C;
    match s.code() {
        C::Unauthenticated | C::Unavailable | C::Unknown | C::Cancelled | C::Internal => Some(
            refusal(variant, &format!("{:?}: {}", s.code(), s.message())),
        ),
        // A hang is silence.
        C::DeadlineExceeded => None,
        _ => Some(Inbound::Status {
            code: s.code(),
            message: s.message().to_owned(),
            trailer: None,
        }),
    }
}

/// Sends `bytes` on `service/method` over a fresh connection with the probe's profile and
/// queues what happens under `key` (`reply:<channel>` for unary calls, the channel for
/// streams). Returns the task; `Err` only when the probe could not be attempted.
pub async fn send(
    probe: Probe,
    service: GrpcService,
    method: String,
    bytes: Vec<u8>,
    key: String,
    limit: Duration,
    shared: Arc<Shared>,
) -> Result<tokio::task::JoinHandle<()>, ProbeError> {
    let variant = probe.variant;
    let channel = match connect(&probe).await? {
        Ok(c) => c,
        Err(refused) => {
            shared.inbox.push(&key, refused);
            return Ok(tokio::spawn(async {}));
        }
    };
    Ok(tokio::spawn(async move {
        let push = |item: Option<Inbound>| {
            if let Some(i) = item {
                shared.inbox.push(&key, i);
            }
        };
        let streaming =
            service == GrpcService::Agent && (method == "Negotiate" || method == "Commit");
        if streaming {
            let (tx, rx) = mpsc::channel::<pb::Frame>(4);
            let _ = tx.try_send(pb::Frame { cbor: bytes });
            let mut req = tonic::Request::new(ReceiverStream::new(rx));
            framing::set_version(req.metadata_mut());
            req.set_timeout(limit);
            let mut client = pb::agent_client::AgentClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES);
            let call = async {
                if method == "Commit" {
                    client.commit(req).await
                } else {
                    client.negotiate(req).await
                }
            };
            match tokio::time::timeout(limit, call).await {
                Ok(Ok(resp)) => {
                    let mut stream = resp.into_inner();
                    match tokio::time::timeout(limit, stream.message()).await {
                        Ok(Ok(Some(f))) => push(Some(Inbound::Frame(f.cbor))),
                        Ok(Err(s)) => push(status_outcome(variant, &s)),
                        Ok(Ok(None)) | Err(_) => {}
                    }
                }
                Ok(Err(s)) => push(status_outcome(variant, &s)),
                Err(_) => {}
            }
            drop(tx);
            return;
        }
        let mut req = tonic::Request::new(pb::Frame { cbor: bytes });
        framing::set_version(req.metadata_mut());
        req.set_timeout(limit);
        let fut = super::channels::unary_call(channel, service, &method, req);
        match tokio::time::timeout(limit, fut).await {
            Ok(Ok(r)) => push(Some(Inbound::Frame(r.into_inner().cbor))),
            Ok(Err(s)) => push(status_outcome(variant, &s)),
            Err(_) => {}
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_builds_a_client_configuration() {
        let id = TlsIdentity::from_seed(&[7; 32], "probe").unwrap();
        for variant in TlsVariant::ALL {
            let p = Probe {
                endpoint: "grpcs://127.0.0.1:1".into(),
                iut_fingerprint: id.fingerprint,
                identity: id.clone(),
                persona_did: "did:mtp:a".into(),
                variant,
                connect_timeout: Duration::from_secs(1),
            };
            if variant != TlsVariant::Plaintext {
                p.client_config()
                    .unwrap_or_else(|e| panic!("{variant:?}: {e}"));
            }
            assert_eq!(p.authority().unwrap(), ("127.0.0.1".to_owned(), 1));
        }
        let a = unbound_identity("did:mtp:a").unwrap();
        assert_ne!(
            a.fingerprint,
            unbound_identity("did:mtp:b").unwrap().fingerprint
        );
    }
}
