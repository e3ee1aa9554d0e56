//! The MTPSync TLS 1.3 profile (BIND V-A; PROFILE G-37): rustls on the aws-lc-rs provider
//! restricted to `TLS_AES_256_GCM_SHA384` and the pure ML-KEM group `MLKEM768` (optionally
//! `MLKEM1024`), TLS 1.3 only, ALPN `h2`, mutual authentication with self-signed ML-DSA-65
//! certificates pinned by SHA-256 fingerprint (PROFILE G-32), no session resumption.
//!
//! Every refused handshake becomes a typed [`HandshakeRefused`] (code 0109) delivered to an
//! [`EventSink`], so the agent can append it to its audit trail.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use mtp_protocol::errors::{Coded, ErrorCode};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms, aws_lc_rs};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    AlertDescription, CertificateError, CipherSuite, ClientConfig, DigitallySignedStruct,
    DistinguishedName, NamedGroup, OtherError, PeerIncompatible, ProtocolVersion, ServerConfig,
    SignatureScheme,
};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::certs::{CertCheckError, Fingerprint, TlsIdentity, check_self_signed};

/// ALPN protocol id of gRPC over HTTP/2 (PROFILE G-37).
pub const ALPN_H2: &[u8] = b"h2";

/// Default limit for a TLS handshake, from TCP accept/connect to Finished.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Which ML-KEM groups to offer/accept (PROFILE G-37: `MLKEM768` mandatory, `MLKEM1024`
/// optional; hybrids with ECDH are refused).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KxPolicy {
    /// `MLKEM768` only.
    #[default]
    MlKem768,
    /// `MLKEM768` (preferred) and `MLKEM1024`.
    MlKem768OrMlKem1024,
}

/// The rustls provider of the profile: aws-lc-rs with exactly `TLS13_AES_256_GCM_SHA384`
/// (BIND-V-A-06) and pure ML-KEM groups (SPEC-VIII-A-04, SPEC-VIII-A-05).
pub fn crypto_provider(kx: KxPolicy) -> CryptoProvider {
    let mut p = aws_lc_rs::default_provider();
    p.cipher_suites = vec![aws_lc_rs::cipher_suite::TLS13_AES_256_GCM_SHA384];
    p.kx_groups = match kx {
        KxPolicy::MlKem768 => vec![aws_lc_rs::kx_group::MLKEM768],
        KxPolicy::MlKem768OrMlKem1024 => {
            vec![
                aws_lc_rs::kx_group::MLKEM768,
                aws_lc_rs::kx_group::MLKEM1024,
            ]
        }
    };
    p
}

/// The pinned peer certificates a server accepts: fingerprint → peer label (normally the
/// peer's DID, taken from its DID Document `MTPSync.tlsCertificateFingerprint`,
/// BIND-V-A-05). Shared and updatable while the server runs.
#[derive(Clone, Default)]
pub struct PinSet {
    inner: Arc<RwLock<HashMap<Fingerprint, String>>>,
}

impl PinSet {
    pub fn new() -> PinSet {
        PinSet::default()
    }

    /// Pins `fingerprint` for `label`; returns the previous label.
    pub fn insert(&self, fingerprint: Fingerprint, label: impl Into<String>) -> Option<String> {
        self.inner
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(fingerprint, label.into())
    }

    /// Unpins `fingerprint`; new handshakes with it are refused (no resumption exists).
    pub fn remove(&self, fingerprint: &Fingerprint) -> Option<String> {
        self.inner
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(fingerprint)
    }

    /// The label of a pinned fingerprint.
    pub fn label(&self, fingerprint: &Fingerprint) -> Option<String> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(fingerprint)
            .cloned()
    }

    pub fn contains(&self, fingerprint: &Fingerprint) -> bool {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(fingerprint)
    }

    pub fn len(&self) -> usize {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of the current pins.
    pub fn snapshot(&self) -> Vec<(Fingerprint, String)> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(f, l)| (*f, l.clone()))
            .collect()
    }
}

impl fmt::Debug for PinSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.snapshot()).finish()
    }
}

/// Which end of the handshake observed the refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Server,
    Client,
}

/// Why a TLS handshake was refused or failed (all map to 0109).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    /// The client presented no certificate (BIND-V-A-02).
    NoClientCertificate,
    /// The certificate's fingerprint is not pinned / not the expected one (BIND-V-A-05).
    UnpinnedCertificate,
    /// Malformed, not ML-DSA-65, not self-issued, or a chain was sent (BIND-V-A-04).
    BadCertificate,
    /// No `TLS_AES_256_GCM_SHA384` offered (BIND-V-A-06).
    NoCommonCipherSuite,
    /// No pure ML-KEM group offered, e.g. only X25519 or the hybrid (SPEC-VIII-A-05).
    NoCommonKeyExchangeGroup,
    /// Not TLS 1.3 (BIND-V-A-01).
    UnsupportedProtocolVersion,
    /// No common signature scheme (ML-DSA-65).
    NoCommonSignatureScheme,
    /// ALPN `h2` not negotiated.
    NoCommonApplicationProtocol,
    /// Handshake signature (CertificateVerify) or certificate self-signature invalid.
    BadSignature,
    /// The peer aborted the handshake with an alert.
    PeerAlert,
    /// The handshake did not finish within the limit.
    Timeout,
    /// Anything else (I/O error, connection closed, protocol error).
    Other,
}

impl RefusalReason {
    /// Snake-case name for logs and audit entries.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::NoClientCertificate => "no_client_certificate",
            RefusalReason::UnpinnedCertificate => "unpinned_certificate",
            RefusalReason::BadCertificate => "bad_certificate",
            RefusalReason::NoCommonCipherSuite => "no_common_cipher_suite",
            RefusalReason::NoCommonKeyExchangeGroup => "no_common_key_exchange_group",
            RefusalReason::UnsupportedProtocolVersion => "unsupported_protocol_version",
            RefusalReason::NoCommonSignatureScheme => "no_common_signature_scheme",
            RefusalReason::NoCommonApplicationProtocol => "no_common_application_protocol",
            RefusalReason::BadSignature => "bad_signature",
            RefusalReason::PeerAlert => "peer_alert",
            RefusalReason::Timeout => "timeout",
            RefusalReason::Other => "other",
        }
    }

    /// The requirement the refusal enforces, where one applies.
    pub fn requirement(self) -> Option<&'static str> {
        match self {
            RefusalReason::NoClientCertificate => Some("BIND-V-A-02"),
            RefusalReason::UnpinnedCertificate => Some("BIND-V-A-05"),
            RefusalReason::BadCertificate
            | RefusalReason::BadSignature
            | RefusalReason::NoCommonSignatureScheme => Some("BIND-V-A-04"),
            RefusalReason::NoCommonCipherSuite => Some("BIND-V-A-06"),
            RefusalReason::NoCommonKeyExchangeGroup => Some("SPEC-VIII-A-05"),
            RefusalReason::UnsupportedProtocolVersion => Some("BIND-V-A-01"),
            RefusalReason::NoCommonApplicationProtocol
            | RefusalReason::PeerAlert
            | RefusalReason::Timeout
            | RefusalReason::Other => None,
        }
    }
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused or failed MTPSync TLS handshake: error 0109 Transport Security Failure
/// (PROFILE G-37), to be recorded in the audit trail.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("TLS handshake refused ({side:?} side, peer {peer}): {reason}: {detail}", peer = display_addr(.peer_addr))]
pub struct HandshakeRefused {
    pub side: Side,
    pub peer_addr: Option<SocketAddr>,
    pub reason: RefusalReason,
    /// The fingerprint of the certificate the peer presented, when known.
    pub peer_fingerprint: Option<Fingerprint>,
    pub detail: String,
}

fn display_addr(a: &Option<SocketAddr>) -> String {
    a.map_or_else(|| "unknown".to_owned(), |a| a.to_string())
}

impl Coded for HandshakeRefused {
    fn code(&self) -> ErrorCode {
        ErrorCode::TransportSecurityFailure
    }
    fn requirement(&self) -> Option<&'static str> {
        self.reason.requirement()
    }
}

/// What was negotiated on an accepted MTPSync connection. On the server it is the
/// connect-info of every request ([`super::server::session`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    pub side: Side,
    pub peer_addr: Option<SocketAddr>,
    pub local_addr: Option<SocketAddr>,
    /// SHA-256 of the peer's DER certificate (PROFILE G-32).
    pub peer_fingerprint: Fingerprint,
    /// The pin label (server side: from the [`PinSet`]; client side: `None`).
    pub peer_label: Option<String>,
    pub protocol_version: ProtocolVersion,
    pub cipher_suite: CipherSuite,
    pub kx_group: NamedGroup,
    pub alpn: Vec<u8>,
}

/// An observable transport event.
#[derive(Clone, Debug)]
pub enum TransportEvent {
    Established(SessionInfo),
    HandshakeRefused(HandshakeRefused),
}

type EventFn = dyn Fn(TransportEvent) + Send + Sync;

/// Where transport events go (e.g. to the audit trail). Cheap to clone; the default
/// drops events (they are still logged with `tracing`).
#[derive(Clone, Default)]
pub struct EventSink(Option<Arc<EventFn>>);

impl EventSink {
    pub fn none() -> EventSink {
        EventSink(None)
    }

    pub fn from_fn(f: impl Fn(TransportEvent) + Send + Sync + 'static) -> EventSink {
        EventSink(Some(Arc::new(f)))
    }

    /// A sink feeding an unbounded channel.
    pub fn channel() -> (EventSink, mpsc::UnboundedReceiver<TransportEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            EventSink::from_fn(move |e| {
                // A closed receiver means nobody listens any more; dropping is correct.
                let _ = tx.send(e);
            }),
            rx,
        )
    }

    pub fn emit(&self, event: TransportEvent) {
        match &event {
            TransportEvent::HandshakeRefused(r) => tracing::warn!(
                side = ?r.side,
                peer = %display_addr(&r.peer_addr),
                reason = r.reason.as_str(),
                detail = %r.detail,
                "MTPSync TLS handshake refused (0109)"
            ),
            TransportEvent::Established(s) => tracing::debug!(
                side = ?s.side,
                peer = %display_addr(&s.peer_addr),
                fingerprint = %s.peer_fingerprint,
                suite = ?s.cipher_suite,
                kx = ?s.kx_group,
                "MTPSync TLS session established"
            ),
        }
        if let Some(f) = &self.0 {
            f(event);
        }
    }
}

impl fmt::Debug for EventSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "EventSink(fn)"
        } else {
            "EventSink(none)"
        })
    }
}

/// A TLS configuration the profile cannot be built with.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS configuration rejected: {0}")]
    Config(#[from] rustls::Error),
}

/// The typed refusal a verifier embeds in the rustls error, recovered by [`classify`].
#[derive(Debug, thiserror::Error)]
#[error("{reason}: {detail}")]
struct VerifierRefusal {
    reason: RefusalReason,
    fingerprint: Option<Fingerprint>,
    detail: String,
}

fn refuse(
    reason: RefusalReason,
    fingerprint: Option<Fingerprint>,
    detail: impl Into<String>,
) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(
        VerifierRefusal {
            reason,
            fingerprint,
            detail: detail.into(),
        },
    ))))
}

/// Pin and self-signature check shared by both verifiers (PROFILE G-37).
fn check_peer_certificate(
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    pinned: impl FnOnce(&Fingerprint) -> bool,
) -> Result<(), rustls::Error> {
    let fp = Fingerprint::of_der(end_entity);
    if !intermediates.is_empty() {
        return Err(refuse(
            RefusalReason::BadCertificate,
            Some(fp),
            "a chain was sent; PROFILE G-37 requires one self-signed certificate",
        ));
    }
    if !pinned(&fp) {
        return Err(refuse(
            RefusalReason::UnpinnedCertificate,
            Some(fp),
            format!("certificate {fp} is not pinned"),
        ));
    }
    check_self_signed(end_entity).map_err(|e| {
        let reason = match e {
            CertCheckError::BadSelfSignature => RefusalReason::BadSignature,
            _ => RefusalReason::BadCertificate,
        };
        refuse(reason, Some(fp), e.to_string())
    })
}

/// CertificateVerify check: ML-DSA-65 only, verified with the provider's algorithms.
fn verify_ml_dsa_65(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
    algs: &WebPkiSupportedAlgorithms,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    if dss.scheme != SignatureScheme::ML_DSA_65 {
        return Err(refuse(
            RefusalReason::BadSignature,
            Some(Fingerprint::of_der(cert)),
            format!("handshake signed with {:?}, not ML-DSA-65", dss.scheme),
        ));
    }
    rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
}

fn tls12_refused() -> rustls::Error {
    rustls::Error::PeerIncompatible(PeerIncompatible::SupportedVersionsExtensionRequired)
}

/// Server side: client certificate mandatory, accepted only if its fingerprint is in the
/// [`PinSet`] (BIND-V-A-02, BIND-V-A-05).
#[derive(Debug)]
pub struct PinnedClientVerifier {
    pins: PinSet,
    algs: WebPkiSupportedAlgorithms,
}

impl PinnedClientVerifier {
    pub fn new(pins: PinSet, provider: &CryptoProvider) -> PinnedClientVerifier {
        PinnedClientVerifier {
            pins,
            algs: provider.signature_verification_algorithms,
        }
    }
}

impl ClientCertVerifier for PinnedClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        !crate::transport::test_fault("tls-server-no-client-auth")
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let unpinned = crate::transport::test_fault("tls-server-unpinned");
        check_peer_certificate(end_entity, intermediates, |fp| {
            unpinned || self.pins.contains(fp)
        })?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_ml_dsa_65(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ML_DSA_65]
    }
}

/// Client side: the server certificate must be the one pinned in the peer's DID Document
/// (`MTPSync.tlsCertificateFingerprint`, BIND-V-A-05). The server name is not checked.
#[derive(Debug)]
pub struct PinnedServerVerifier {
    expected: Fingerprint,
    algs: WebPkiSupportedAlgorithms,
}

impl PinnedServerVerifier {
    pub fn new(expected: Fingerprint, provider: &CryptoProvider) -> PinnedServerVerifier {
        PinnedServerVerifier {
            expected,
            algs: provider.signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for PinnedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let unpinned = crate::transport::test_fault("tls-client-unpinned");
        check_peer_certificate(end_entity, intermediates, |fp| {
            unpinned || *fp == self.expected
        })?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_ml_dsa_65(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ML_DSA_65]
    }
}

/// The server configuration of the profile (PROFILE G-37): TLS 1.3 only, the restricted
/// provider, mandatory pinned client certificates, ALPN `h2`, no resumption or tickets.
pub fn server_config(
    identity: &TlsIdentity,
    pins: PinSet,
    kx: KxPolicy,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut provider = crypto_provider(kx);
    if crate::transport::test_fault("tls-server-any-cipher") {
        provider.cipher_suites = vec![
            aws_lc_rs::cipher_suite::TLS13_AES_256_GCM_SHA384,
            aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256,
            aws_lc_rs::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        ];
    }
    if crate::transport::test_fault("tls-server-ecdh-groups") {
        provider.kx_groups.extend([
            aws_lc_rs::kx_group::X25519MLKEM768,
            aws_lc_rs::kx_group::X25519,
            aws_lc_rs::kx_group::SECP256R1,
        ]);
    }
    let provider = Arc::new(provider);
    let verifier = Arc::new(PinnedClientVerifier::new(pins, &provider));
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![identity.cert_der.clone()], identity.private_key())?;
    cfg.alpn_protocols = vec![ALPN_H2.to_vec()];
    cfg.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    cfg.send_tls13_tickets = 0;
    cfg.ignore_client_order = true;
    Ok(Arc::new(cfg))
}

/// The client configuration of the profile: pinned server certificate, our certificate
/// presented (BIND-V-A-03), ALPN `h2`, no resumption.
pub fn client_config(
    identity: &TlsIdentity,
    expected_server: Fingerprint,
    kx: KxPolicy,
) -> Result<Arc<ClientConfig>, TlsError> {
    let mut provider = crypto_provider(kx);
    if crate::transport::test_fault("tls-client-aes128") {
        provider.cipher_suites = vec![aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256];
    }
    let provider = Arc::new(provider);
    let verifier = Arc::new(PinnedServerVerifier::new(expected_server, &provider));
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut cfg = if crate::transport::test_fault("tls-client-no-certificate") {
        builder.with_no_client_auth()
    } else {
        builder.with_client_auth_cert(vec![identity.cert_der.clone()], identity.private_key())?
    };
    cfg.alpn_protocols = vec![ALPN_H2.to_vec()];
    cfg.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(cfg))
}

/// Maps a rustls handshake error to a refusal reason (and the presented fingerprint when
/// a verifier refused it).
pub fn classify(side: Side, err: &rustls::Error) -> (RefusalReason, Option<Fingerprint>) {
    use RefusalReason as R;
    use rustls::Error as E;
    match err {
        E::NoCertificatesPresented => match side {
            Side::Server => (R::NoClientCertificate, None),
            Side::Client => (R::BadCertificate, None),
        },
        E::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
            match inner.downcast_ref::<VerifierRefusal>() {
                Some(v) => (v.reason, v.fingerprint),
                None => (R::BadCertificate, None),
            }
        }
        E::InvalidCertificate(CertificateError::BadSignature) => (R::BadSignature, None),
        E::InvalidCertificate(_) => (R::BadCertificate, None),
        E::PeerIncompatible(p) => (
            match p {
                PeerIncompatible::NoCipherSuitesInCommon => R::NoCommonCipherSuite,
                PeerIncompatible::NoKxGroupsInCommon
                | PeerIncompatible::NamedGroupsExtensionRequired
                | PeerIncompatible::KeyShareExtensionRequired => R::NoCommonKeyExchangeGroup,
                PeerIncompatible::Tls12NotOffered
                | PeerIncompatible::Tls12NotOfferedOrEnabled
                | PeerIncompatible::SupportedVersionsExtensionRequired
                | PeerIncompatible::ServerDoesNotSupportTls12Or13
                | PeerIncompatible::ServerTlsVersionIsDisabledByOurConfig => {
                    R::UnsupportedProtocolVersion
                }
                PeerIncompatible::NoSignatureSchemesInCommon
                | PeerIncompatible::NoCertificateRequestSignatureSchemesInCommon
                | PeerIncompatible::SignatureAlgorithmsExtensionRequired => {
                    R::NoCommonSignatureScheme
                }
                _ => R::Other,
            },
            None,
        ),
        E::NoApplicationProtocol => (R::NoCommonApplicationProtocol, None),
        E::AlertReceived(AlertDescription::ProtocolVersion) => {
            (R::UnsupportedProtocolVersion, None)
        }
        E::AlertReceived(_) => (R::PeerAlert, None),
        _ => (R::Other, None),
    }
}

/// Maps the I/O error of a failed tokio-rustls handshake.
pub fn classify_io(side: Side, err: &io::Error) -> (RefusalReason, Option<Fingerprint>, String) {
    match err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => {
            let (reason, fp) = classify(side, tls);
            (reason, fp, tls.to_string())
        }
        None => (RefusalReason::Other, None, err.to_string()),
    }
}

/// Fills the [`SessionInfo`] of a finished handshake and enforces ALPN `h2`.
fn session_info(
    side: Side,
    conn: &rustls::CommonState,
    peer_addr: Option<SocketAddr>,
    local_addr: Option<SocketAddr>,
    peer_label: Option<String>,
) -> Result<SessionInfo, HandshakeRefused> {
    let refused = |reason, fp, detail: &str| HandshakeRefused {
        side,
        peer_addr,
        reason,
        peer_fingerprint: fp,
        detail: detail.to_owned(),
    };
    // Defect `tls-server-no-client-auth`: an anonymous client gets the fingerprint of
    // an empty certificate.
    let anonymous =
        side == Side::Server && crate::transport::test_fault("tls-server-no-client-auth");
    let empty = CertificateDer::from(Vec::new());
    let peer_cert = conn
        .peer_certificates()
        .and_then(<[_]>::first)
        .or(anonymous.then_some(&empty));
    let Some(cert) = peer_cert else {
        let reason = match side {
            Side::Server => RefusalReason::NoClientCertificate,
            Side::Client => RefusalReason::BadCertificate,
        };
        return Err(refused(reason, None, "no peer certificate"));
    };
    let fp = Fingerprint::of_der(cert);
    let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
    if alpn.as_deref() != Some(ALPN_H2) {
        return Err(refused(
            RefusalReason::NoCommonApplicationProtocol,
            Some(fp),
            "ALPN h2 not negotiated (PROFILE G-37)",
        ));
    }
    let (Some(protocol_version), Some(suite), Some(kx)) = (
        conn.protocol_version(),
        conn.negotiated_cipher_suite(),
        conn.negotiated_key_exchange_group(),
    ) else {
        return Err(refused(
            RefusalReason::Other,
            Some(fp),
            "handshake parameters unavailable",
        ));
    };
    Ok(SessionInfo {
        side,
        peer_addr,
        local_addr,
        peer_fingerprint: fp,
        peer_label,
        protocol_version,
        cipher_suite: suite.suite(),
        kx_group: kx.name(),
        alpn: alpn.unwrap_or_default(),
    })
}

/// Runs the server side of one handshake with a time limit.
pub async fn accept(
    acceptor: &tokio_rustls::TlsAcceptor,
    tcp: TcpStream,
    timeout: Duration,
    pins: &PinSet,
) -> Result<(tokio_rustls::server::TlsStream<TcpStream>, SessionInfo), HandshakeRefused> {
    let peer_addr = tcp.peer_addr().ok();
    let local_addr = tcp.local_addr().ok();
    let stream = match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let (reason, peer_fingerprint, detail) = classify_io(Side::Server, &e);
            return Err(HandshakeRefused {
                side: Side::Server,
                peer_addr,
                reason,
                peer_fingerprint,
                detail,
            });
        }
        Err(_) => {
            return Err(HandshakeRefused {
                side: Side::Server,
                peer_addr,
                reason: RefusalReason::Timeout,
                peer_fingerprint: None,
                detail: format!("handshake not finished within {timeout:?}"),
            });
        }
    };
    let (_, conn) = stream.get_ref();
    let label = conn
        .peer_certificates()
        .and_then(<[_]>::first)
        .and_then(|c| pins.label(&Fingerprint::of_der(c)));
    let info = session_info(Side::Server, conn, peer_addr, local_addr, label)?;
    Ok((stream, info))
}

/// Runs the client side of one handshake with a time limit.
pub async fn connect(
    connector: &tokio_rustls::TlsConnector,
    server_name: ServerName<'static>,
    tcp: TcpStream,
    timeout: Duration,
) -> Result<(tokio_rustls::client::TlsStream<TcpStream>, SessionInfo), HandshakeRefused> {
    let peer_addr = tcp.peer_addr().ok();
    let local_addr = tcp.local_addr().ok();
    let stream = match tokio::time::timeout(timeout, connector.connect(server_name, tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let (reason, peer_fingerprint, detail) = classify_io(Side::Client, &e);
            return Err(HandshakeRefused {
                side: Side::Client,
                peer_addr,
                reason,
                peer_fingerprint,
                detail,
            });
        }
        Err(_) => {
            return Err(HandshakeRefused {
                side: Side::Client,
                peer_addr,
                reason: RefusalReason::Timeout,
                peer_fingerprint: None,
                detail: format!("handshake not finished within {timeout:?}"),
            });
        }
    };
    let (_, conn) = stream.get_ref();
    let info = session_info(Side::Client, conn, peer_addr, local_addr, None)?;
    Ok((stream, info))
}
