//! The test-control channel to one IUT instance (docs/iut-contract.md): `TestControl.Invoke`
//! over the MTPSync TLS profile, the IUT's certificate pinned, the harness's fixed control
//! identity presented. Every call is bounded.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mtp_protocol::cbor::{self, Value};
use mtp_reference_agent::services::control::pb;
use mtp_reference_agent::transport::sync::{ClientOptions, Fingerprint, TlsIdentity, connect};
use tonic::transport::Channel;

use crate::runner::ControlError;

/// Largest control answer accepted (audit exports of long transactions are large).
pub const MAX_CONTROL_BYTES: usize = 16 * 1024 * 1024;

/// Why a control call gave no answer of the IUT's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The call did not complete (connection, TLS, timeout, gRPC status).
    #[error("control channel: {0}")]
    Transport(String),
    /// The IUT answered with an error.
    #[error("{}: {}", .0.kind, .0.message)]
    Action(ControlError),
}

/// A connected test-control client.
#[derive(Clone, Debug)]
pub struct ControlChannel {
    client: pb::test_control_client::TestControlClient<Channel>,
    next: std::sync::Arc<AtomicU64>,
    pub endpoint: String,
}

impl ControlChannel {
    /// Connects to `endpoint` (`grpcs://host:port`) pinning `server`.
    pub async fn connect(
        endpoint: &str,
        server: [u8; 32],
        identity: &TlsIdentity,
        timeout: Duration,
    ) -> Result<ControlChannel, String> {
        let options = ClientOptions {
            connect_timeout: timeout,
            handshake_timeout: timeout,
            ..ClientOptions::default()
        };
        let fut = connect(
            endpoint,
            Fingerprint::from_bytes(server),
            identity,
            &options,
        );
        let channel = tokio::time::timeout(timeout + Duration::from_secs(1), fut)
            .await
            .map_err(|_| {
                format!(
                    "{endpoint}: no connection within {} ms",
                    timeout.as_millis()
                )
            })?
            .map_err(|e| format!("{endpoint}: {e}"))?;
        Ok(ControlChannel {
            client: pb::test_control_client::TestControlClient::new(channel)
                .max_decoding_message_size(MAX_CONTROL_BYTES)
                .max_encoding_message_size(MAX_CONTROL_BYTES),
            next: Default::default(),
            endpoint: endpoint.to_owned(),
        })
    }

    /// Runs `action` with `args` (a CBOR map), waiting at most `timeout`.
    pub async fn invoke(
        &self,
        action: &str,
        args: &Value,
        timeout: Duration,
    ) -> Result<Value, CallError> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let args = cbor::to_vec(args).map_err(|e| {
            CallError::Action(ControlError {
                kind: "bad_args".into(),
                code: None,
                message: format!("the harness cannot encode the arguments: {e}"),
            })
        })?;
        let mut req = tonic::Request::new(pb::ControlRequest {
            action: action.to_owned(),
            args,
            correlation_id: format!("mtp-cert-{n}"),
        });
        req.set_timeout(timeout);
        let mut client = self.client.clone();
        let call = client.invoke(req);
        let resp = tokio::time::timeout(timeout + Duration::from_millis(200), call)
            .await
            .map_err(|_| {
                CallError::Transport(format!(
                    "`{action}` gave no answer within {} ms",
                    timeout.as_millis()
                ))
            })?
            .map_err(|s| {
                CallError::Transport(format!("`{action}`: {:?}: {}", s.code(), s.message()))
            })?
            .into_inner();
        if let Some(e) = resp.error {
            return Err(CallError::Action(ControlError {
                code: (e.kind == "mtp_error")
                    .then(|| u16::try_from(e.mtp_code).ok())
                    .flatten(),
                kind: e.kind,
                message: e.message,
            }));
        }
        if resp.result.is_empty() {
            return Ok(Value::Map(Vec::new()));
        }
        match cbor::from_slice(&resp.result) {
            Ok(v @ Value::Map(_)) => Ok(v),
            Ok(other) => Err(CallError::Action(ControlError {
                kind: "internal".into(),
                code: None,
                message: format!("the result is a {}, not a map (control.cddl)", other.kind()),
            })),
            Err(e) => Err(CallError::Action(ControlError {
                kind: "internal".into(),
                code: None,
                message: format!("the result is not deterministic CBOR: {e}"),
            })),
        }
    }
}
