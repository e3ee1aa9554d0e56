//! MTPSync server: TCP accepted here, one TLS 1.3 handshake task per connection
//! (PROFILE G-37), accepted streams fed to tonic (`serve_with_incoming_shutdown`). Handlers
//! see the peer's pinned fingerprint and the negotiated parameters as request
//! connect-info ([`session`]). Refused handshakes go to the [`EventSink`] (0109).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, Router};

use super::certs::TlsIdentity;
use super::client::SCHEME;
use super::tls::{
    self, DEFAULT_HANDSHAKE_TIMEOUT, EventSink, KxPolicy, PinSet, SessionInfo, TlsError,
    TransportEvent,
};

/// Server settings.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    pub kx: KxPolicy,
    pub handshake_timeout: Duration,
    /// Handshakes in progress at once; further TCP connections wait in the backlog.
    pub max_pending_handshakes: usize,
    pub events: EventSink,
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            kx: KxPolicy::default(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_pending_handshakes: 256,
            events: EventSink::none(),
        }
    }
}

/// Server failures.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("server task failed: {0}")]
    Task(String),
}

/// A TLS stream accepted under the profile, carrying its [`SessionInfo`].
pub struct SyncStream {
    inner: Inner,
    info: SessionInfo,
}

/// The accepted connection: TLS, or (only under the defect `sync-accept-plaintext`) bare
/// TCP carrying HTTP/2 without TLS.
enum Inner {
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    Plain(TcpStream),
}

impl SyncStream {
    pub fn session(&self) -> &SessionInfo {
        &self.info
    }
}

impl Connected for SyncStream {
    type ConnectInfo = SessionInfo;
    fn connect_info(&self) -> SessionInfo {
        self.info.clone()
    }
}

impl AsyncRead for SyncStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Tls(t) => Pin::new(t.as_mut()).poll_read(cx, buf),
            Inner::Plain(t) => Pin::new(t).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for SyncStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().inner {
            Inner::Tls(t) => Pin::new(t.as_mut()).poll_write(cx, buf),
            Inner::Plain(t) => Pin::new(t).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Tls(t) => Pin::new(t.as_mut()).poll_flush(cx),
            Inner::Plain(t) => Pin::new(t).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Tls(t) => Pin::new(t.as_mut()).poll_shutdown(cx),
            Inner::Plain(t) => Pin::new(t).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().inner {
            Inner::Tls(t) => Pin::new(t.as_mut()).poll_write_vectored(cx, bufs),
            Inner::Plain(t) => Pin::new(t).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.inner {
            Inner::Tls(t) => t.is_write_vectored(),
            Inner::Plain(t) => t.is_write_vectored(),
        }
    }
}

/// The session of the connection a request arrived on (peer fingerprint, pin label,
/// cipher suite, key-exchange group).
pub fn session<T>(request: &tonic::Request<T>) -> Option<&SessionInfo> {
    request.extensions().get::<SessionInfo>()
}

/// A running MTPSync server.
#[derive(Debug)]
pub struct SyncServer {
    local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    accept_task: JoinHandle<()>,
    serve_task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl SyncServer {
    /// Binds `addr` and serves `router` (e.g. `Server::builder().add_service(AgentServer::new(..))`).
    /// `pins` may be updated while the server runs.
    pub async fn bind(
        addr: SocketAddr,
        identity: &TlsIdentity,
        pins: PinSet,
        options: ServerOptions,
        router: Router,
    ) -> Result<SyncServer, ServerError> {
        let listener = TcpListener::bind(addr).await?;
        SyncServer::serve(listener, identity, pins, options, router)
    }

    /// Serves on an already bound listener. Must be called within a tokio runtime.
    pub fn serve(
        listener: TcpListener,
        identity: &TlsIdentity,
        pins: PinSet,
        options: ServerOptions,
        router: Router,
    ) -> Result<SyncServer, ServerError> {
        let local_addr = listener.local_addr()?;
        let config = tls::server_config(identity, pins.clone(), options.kx)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (tx, rx) = mpsc::channel::<Result<SyncStream, io::Error>>(64);

        let accept_task = tokio::spawn(accept_loop(
            listener,
            acceptor,
            pins,
            options,
            tx,
            shutdown_rx.clone(),
        ));
        let mut signal_rx = shutdown_rx;
        let serve_task = tokio::spawn(
            router.serve_with_incoming_shutdown(ReceiverStream::new(rx), async move {
                stopped(&mut signal_rx).await
            }),
        );
        Ok(SyncServer {
            local_addr,
            shutdown,
            accept_task,
            serve_task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The `grpcs://host:port` endpoint of this server (PROFILE G-32).
    pub fn endpoint(&self) -> String {
        format!("{SCHEME}://{}", self.local_addr)
    }

    /// Stops accepting, lets open calls finish (HTTP/2 GOAWAY), then returns.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        let _ = self.shutdown.send(true);
        self.accept_task
            .await
            .map_err(|e| ServerError::Task(e.to_string()))?;
        self.serve_task
            .await
            .map_err(|e| ServerError::Task(e.to_string()))??;
        Ok(())
    }
}

/// Resolves once shutdown is requested (or the server handle is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // Err = the sender is gone, which also means shut down.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    pins: PinSet,
    options: ServerOptions,
    tx: mpsc::Sender<Result<SyncStream, io::Error>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(options.max_pending_handshakes.max(1)));
    loop {
        let permit = tokio::select! {
            _ = stopped(&mut shutdown) => return,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let accepted = tokio::select! {
            _ = stopped(&mut shutdown) => return,
            r = listener.accept() => r,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Per-connection errors and resource exhaustion (EMFILE): back off.
                tracing::warn!(error = %e, "MTPSync accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let pins = pins.clone();
        let events = options.events.clone();
        let timeout = options.handshake_timeout;
        let tx = tx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            // Defect `sync-accept-plaintext`: a connection that does not start with a TLS
            // handshake record (0x16) is served as HTTP/2 without TLS (SPEC-VII-A-03).
            if crate::transport::test_fault("sync-accept-plaintext") {
                let mut first = [0u8; 1];
                if matches!(tcp.peek(&mut first).await, Ok(1) if first[0] != 0x16) {
                    let info = plaintext_session(&tcp);
                    let _ = tx
                        .send(Ok(SyncStream {
                            inner: Inner::Plain(tcp),
                            info,
                        }))
                        .await;
                    return;
                }
            }
            match tls::accept(&acceptor, tcp, timeout, &pins).await {
                Ok((inner, info)) => {
                    events.emit(TransportEvent::Established(info.clone()));
                    // A closed channel means the server is shutting down.
                    let _ = tx
                        .send(Ok(SyncStream {
                            inner: Inner::Tls(Box::new(inner)),
                            info,
                        }))
                        .await;
                }
                Err(refused) => events.emit(TransportEvent::HandshakeRefused(refused)),
            }
        });
    }
}

/// The session of a plaintext connection (defect `sync-accept-plaintext` only).
fn plaintext_session(tcp: &TcpStream) -> SessionInfo {
    SessionInfo {
        side: tls::Side::Server,
        peer_addr: tcp.peer_addr().ok(),
        local_addr: tcp.local_addr().ok(),
        peer_fingerprint: super::certs::Fingerprint::of_der(&[]),
        peer_label: None,
        protocol_version: rustls::ProtocolVersion::Unknown(0),
        cipher_suite: rustls::CipherSuite::Unknown(0),
        kx_group: rustls::NamedGroup::Unknown(0),
        alpn: b"h2c".to_vec(),
    }
}
