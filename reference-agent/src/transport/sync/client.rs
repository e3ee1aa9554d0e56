//! MTPSync client: a tonic [`Channel`] over TLS 1.3 to a `grpcs://host:port` endpoint
//! (PROFILE G-32), with the server pinned to the fingerprint of the peer's DID Document
//! and our certificate presented (BIND-V-A-03, BIND-V-A-05).

use std::fmt;
use std::future::Future;
use std::io;
use std::net::Ipv6Addr;
use std::pin::Pin;
use std::str::FromStr;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use mtp_protocol::errors::{Coded, ErrorCode};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tonic::codegen::http::Uri;
use tonic::transport::{Channel, Endpoint};

use super::certs::{Fingerprint, TlsIdentity};
use super::tls::{
    self, DEFAULT_HANDSHAKE_TIMEOUT, EventSink, HandshakeRefused, KxPolicy, TlsError,
    TransportEvent,
};

/// URI scheme of an `MTPSync.serviceEndpoint` (PROFILE G-32).
pub const SCHEME: &str = "grpcs";

/// A parsed `grpcs://host:port` endpoint. `host` is a DNS name or an IP address (IPv6
/// without brackets); the port is mandatory.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SyncEndpoint {
    pub host: String,
    pub port: u16,
}

/// An `MTPSync.serviceEndpoint` that is not `grpcs://host:port` (PROFILE G-32).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("endpoint scheme must be grpcs://")]
    Scheme,
    #[error("endpoint must be grpcs://host:port without path, query or user info")]
    Shape,
    #[error("invalid endpoint host {0:?}")]
    Host(String),
    #[error("invalid endpoint port {0:?}")]
    Port(String),
    /// The peer is unknown or its DID Document has no MTPSync endpoint.
    #[error("no MTPSync endpoint known for {0}")]
    Missing(String),
}

impl Coded for EndpointError {
    fn code(&self) -> ErrorCode {
        ErrorCode::SchemaViolation
    }
}

impl SyncEndpoint {
    pub fn parse(s: &str) -> Result<SyncEndpoint, EndpointError> {
        let prefix = s.get(..SCHEME.len() + 3).ok_or(EndpointError::Scheme)?;
        if !prefix.eq_ignore_ascii_case("grpcs://") {
            return Err(EndpointError::Scheme);
        }
        let rest = &s[prefix.len()..];
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
            return Err(EndpointError::Shape);
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (addr, after) = v6.split_once(']').ok_or(EndpointError::Shape)?;
            let port = after.strip_prefix(':').ok_or(EndpointError::Shape)?;
            Ipv6Addr::from_str(addr).map_err(|_| EndpointError::Host(addr.to_owned()))?;
            (addr, port)
        } else {
            let (host, port) = rest.rsplit_once(':').ok_or(EndpointError::Shape)?;
            let valid = !host.is_empty()
                && host.len() <= 253
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if !valid {
                return Err(EndpointError::Host(host.to_owned()));
            }
            (host, port)
        };
        let port_num = (!port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
            .then(|| port.parse::<u16>().ok())
            .flatten()
            .filter(|p| *p != 0)
            .ok_or_else(|| EndpointError::Port(port.to_owned()))?;
        ServerName::try_from(host).map_err(|_| EndpointError::Host(host.to_owned()))?;
        Ok(SyncEndpoint {
            host: host.to_ascii_lowercase(),
            port: port_num,
        })
    }

    /// `host:port`, IPv6 hosts bracketed.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    fn server_name(&self) -> Result<ServerName<'static>, EndpointError> {
        ServerName::try_from(self.host.clone()).map_err(|_| EndpointError::Host(self.host.clone()))
    }
}

impl fmt::Display for SyncEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}://{}", self.authority())
    }
}

impl FromStr for SyncEndpoint {
    type Err = EndpointError;
    fn from_str(s: &str) -> Result<SyncEndpoint, EndpointError> {
        SyncEndpoint::parse(s)
    }
}

/// Client settings.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub kx: KxPolicy,
    pub handshake_timeout: Duration,
    /// TCP connect limit.
    pub connect_timeout: Duration,
    /// Receives refusals of the server (e.g. a certificate that is not the pinned one)
    /// and established sessions.
    pub events: EventSink,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            kx: KxPolicy::default(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            connect_timeout: Duration::from_secs(10),
            events: EventSink::none(),
        }
    }
}

/// Why a channel could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid MTPSync endpoint: {0}")]
    Endpoint(#[from] EndpointError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("TCP connection to {endpoint} failed: {source}")]
    Tcp {
        endpoint: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Refused(#[from] HandshakeRefused),
    #[error("gRPC channel failed: {0}")]
    Transport(tonic::transport::Error),
}

impl ConnectError {
    /// The MTP code, where one applies: 0109 for a refused handshake, 0103 for a
    /// malformed endpoint. An unreachable peer has no MTP code (retry per PROFILE G-08).
    pub fn mtp_code(&self) -> Option<ErrorCode> {
        match self {
            ConnectError::Endpoint(e) => Some(e.code()),
            ConnectError::Refused(r) => Some(r.code()),
            ConnectError::Tls(_) | ConnectError::Tcp { .. } | ConnectError::Transport(_) => None,
        }
    }

    /// The handshake refusal, if that is what failed.
    pub fn refusal(&self) -> Option<&HandshakeRefused> {
        match self {
            ConnectError::Refused(r) => Some(r),
            _ => None,
        }
    }

    /// Recovers our own error from the tonic error chain.
    fn from_transport(err: tonic::transport::Error) -> ConnectError {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        while let Some(e) = cur {
            if let Some(ours) = e.downcast_ref::<ConnectError>() {
                match ours {
                    ConnectError::Refused(r) => return ConnectError::Refused(r.clone()),
                    ConnectError::Tcp { endpoint, source } => {
                        return ConnectError::Tcp {
                            endpoint: endpoint.clone(),
                            source: io::Error::new(source.kind(), source.to_string()),
                        };
                    }
                    _ => {}
                }
            }
            if let Some(r) = e.downcast_ref::<HandshakeRefused>() {
                return ConnectError::Refused(r.clone());
            }
            cur = e.source();
        }
        ConnectError::Transport(err)
    }
}

/// Opens a channel to `endpoint` (`grpcs://host:port`), accepting only a server whose
/// certificate has `expected_server` as fingerprint, presenting `identity`.
/// Reconnections (the channel reconnects on demand) run the same checks.
pub async fn connect(
    endpoint: &str,
    expected_server: Fingerprint,
    identity: &TlsIdentity,
    options: &ClientOptions,
) -> Result<Channel, ConnectError> {
    let connector = PinnedConnector::new(endpoint, expected_server, identity, options)?;
    connector
        .tonic_endpoint()?
        .connect_with_connector(connector)
        .await
        .map_err(ConnectError::from_transport)
}

/// Like [`connect`], but the first connection is made on the first call.
pub fn connect_lazy(
    endpoint: &str,
    expected_server: Fingerprint,
    identity: &TlsIdentity,
    options: &ClientOptions,
) -> Result<Channel, ConnectError> {
    let connector = PinnedConnector::new(endpoint, expected_server, identity, options)?;
    Ok(connector
        .tonic_endpoint()?
        .connect_with_connector_lazy(connector))
}

/// The connector behind [`connect`]: TCP to the endpoint, then the profile's TLS 1.3
/// handshake with the pinned server certificate. Ignores the URI tonic passes in.
#[derive(Clone)]
pub struct PinnedConnector {
    target: SyncEndpoint,
    server_name: ServerName<'static>,
    tls: tokio_rustls::TlsConnector,
    handshake_timeout: Duration,
    connect_timeout: Duration,
    events: EventSink,
}

impl fmt::Debug for PinnedConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedConnector")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl PinnedConnector {
    pub fn new(
        endpoint: &str,
        expected_server: Fingerprint,
        identity: &TlsIdentity,
        options: &ClientOptions,
    ) -> Result<PinnedConnector, ConnectError> {
        let target = SyncEndpoint::parse(endpoint)?;
        let server_name = target.server_name()?;
        let config = tls::client_config(identity, expected_server, options.kx)?;
        Ok(PinnedConnector {
            target,
            server_name,
            tls: tokio_rustls::TlsConnector::from(config),
            handshake_timeout: options.handshake_timeout,
            connect_timeout: options.connect_timeout,
            events: options.events.clone(),
        })
    }

    /// The tonic endpoint to hand this connector to. The TLS is ours, so tonic sees a
    /// plain `http` URI (it would refuse `https` without its own TLS); the authority is
    /// the peer's.
    pub fn tonic_endpoint(&self) -> Result<Endpoint, ConnectError> {
        Ok(
            Endpoint::from_shared(format!("http://{}", self.target.authority()))
                .map_err(|_| EndpointError::Shape)?,
        )
    }

    async fn open(
        self,
    ) -> Result<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>, ConnectError> {
        let tcp_error = |source| ConnectError::Tcp {
            endpoint: self.target.to_string(),
            source,
        };
        let tcp = tokio::time::timeout(
            self.connect_timeout,
            TcpStream::connect((self.target.host.as_str(), self.target.port)),
        )
        .await
        .map_err(|_| tcp_error(io::Error::from(io::ErrorKind::TimedOut)))?
        .map_err(tcp_error)?;
        let _ = tcp.set_nodelay(true);
        match tls::connect(&self.tls, self.server_name, tcp, self.handshake_timeout).await {
            Ok((stream, info)) => {
                self.events.emit(TransportEvent::Established(info));
                Ok(TokioIo::new(stream))
            }
            Err(refused) => {
                self.events
                    .emit(TransportEvent::HandshakeRefused(refused.clone()));
                Err(ConnectError::Refused(refused))
            }
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl tower::Service<Uri> for PinnedConnector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = ConnectError;
    type Future = BoxFuture<Result<Self::Response, ConnectError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        Box::pin(self.clone().open())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let e = SyncEndpoint::parse("grpcs://agent.example:8443").expect("dns");
        assert_eq!(
            e,
            SyncEndpoint {
                host: "agent.example".into(),
                port: 8443
            }
        );
        assert_eq!(e.to_string(), "grpcs://agent.example:8443");
        let e = SyncEndpoint::parse("GRPCS://127.0.0.1:1/").expect("ipv4");
        assert_eq!(e.authority(), "127.0.0.1:1");
        let e = SyncEndpoint::parse("grpcs://[::1]:50051").expect("ipv6");
        assert_eq!(
            (e.host.as_str(), e.authority()),
            ("::1", "[::1]:50051".into())
        );
        for bad in [
            "https://a:1",
            "grpc://a:1",
            "grpcs://a",
            "grpcs://a:0",
            "grpcs://a:65536",
            "grpcs://a:+1",
            "grpcs://:1",
            "grpcs://u@a:1",
            "grpcs://a:1/path",
            "grpcs://a b:1",
            "grpcs://[::1:1",
            "grpcs://[zz]:1",
            "grpcs",
            "",
        ] {
            assert!(SyncEndpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
