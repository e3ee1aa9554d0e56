//! MTPSync: tonic gRPC over TLS 1.3 with mutual authentication and DID-pinned ML-DSA-65
//! certificates (BIND V-A; PROFILE G-09, G-32, G-37).
//!
//! - [`certs`]: reproducible self-signed ML-DSA-65 certificates and `sha256:` pins.
//! - [`tls`]: the TLS profile (TLS 1.3, `TLS_AES_256_GCM_SHA384`, `MLKEM768`, ALPN `h2`),
//!   pinning verifiers, handshake refusal events (0109).
//! - [`server`]: TCP + per-connection TLS handshake feeding tonic, peer session as
//!   connect-info, graceful shutdown.
//! - [`client`]: `grpcs://host:port` endpoints and pinned channels.
//! - [`framing`]: `mtp.v1.Frame` ↔ `wire::Frame`, metadata, error trailers, status mapping,
//!   deadlines.

pub mod certs;
pub mod client;
pub mod framing;
pub mod server;
pub mod tls;

/// Generated gRPC code for `protocol/wire/mtp/v1/*.proto` (package `mtp.v1`, PROFILE G-09).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("mtp.v1");
}

pub use certs::{Fingerprint, TlsIdentity};
pub use client::{ClientOptions, ConnectError, SyncEndpoint, connect};
pub use server::{ServerOptions, SyncServer, session};
pub use tls::{
    EventSink, HandshakeRefused, KxPolicy, PinSet, RefusalReason, SessionInfo, TransportEvent,
};
