//! The harness's own MTP `Agent` gRPC server, one per persona (BIND V-A; PROFILE G-09):
//! on a free loopback port, mutual TLS 1.3 with the persona's certificate (the one its DID
//! Document names), the IUT's certificate pinned. Calls the IUT makes to the harness are
//! queued for `expect message`:
//!
//! - streams (`Negotiate`, `Commit`): frames from the IUT are queued; a `send` on that
//!   channel answers on the stream. On `Commit`, unless the scenario answers itself, the
//!   persona signs every `mandate_draft` (`mandate_signature`) and ends the stream after
//!   the `mandate`, as a conforming participant would (PROFILE G-48);
//! - unary calls: answered with the scenario's next `send` on that channel when the
//!   scenario has one, else automatically (`ack` with the frame's hash; a DID resolution
//!   with the persona's document; a delivery for a delivery request) — unless `drop_reply`
//!   is set, when the call gets no answer.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use mtp_protocol::cbor::{self, Value};
use mtp_protocol::crypto::SigningKey;
use mtp_protocol::primitives::common::tdate_value;
use mtp_reference_agent::transport::sync::framing;
use mtp_reference_agent::transport::sync::pb::{self, agent_server};
use mtp_reference_agent::transport::sync::server::{ServerError, ServerOptions, SyncServer};
use mtp_reference_agent::transport::sync::{Fingerprint, PinSet, TlsIdentity};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::build::agent_signature_with;
use super::channels::{Inbound, MAX_MESSAGE_BYTES, Shared, Sink};
use super::values::{now, without};

/// How long a unary call of the IUT waits for the scenario's explicit answer.
const EXPLICIT_REPLY_WAIT: Duration = Duration::from_secs(30);
/// How long a call under `drop_reply` is held before it is abandoned.
const DROP_HOLD: Duration = Duration::from_secs(120);

type FrameStream = Pin<Box<dyn Stream<Item = Result<pb::Frame, Status>> + Send>>;

/// What the server needs of its persona.
#[derive(Clone)]
pub struct ServerPersona {
    pub did: String,
    pub key_id: String,
    pub signing: SigningKey,
    pub document_json: String,
}

struct HarnessAgent {
    shared: Arc<Shared>,
    me: ServerPersona,
}

fn respond(body_type: &str, body: Value) -> Result<Response<pb::Frame>, Status> {
    let frame = mtp_protocol::wire::Frame::new(body_type, body)
        .and_then(|f| f.encode())
        .map_err(|e| Status::internal(format!("harness: {e}")))?;
    let mut r = Response::new(pb::Frame { cbor: frame });
    framing::set_version(r.metadata_mut());
    Ok(r)
}

impl HarnessAgent {
    fn channel(method: &str) -> String {
        format!("grpc:Agent/{method}")
    }

    fn sign(&self, mut body: Value) -> Value {
        let input = cbor::to_vec(&without(&body, &["signature"])).unwrap_or_default();
        super::values::set(
            &mut body,
            "signature",
            Value::map([
                ("algorithm", Value::text("ML-DSA-65")),
                ("key_id", Value::text(&self.me.key_id)),
                ("value", Value::bytes(self.me.signing.sign(&input))),
            ]),
        );
        body
    }

    /// The automatic answer to a unary call (mtp.cddl; PROFILE G-09).
    fn automatic(&self, method: &str, bytes: &[u8]) -> Result<Response<pb::Frame>, Status> {
        let Ok(frame) = mtp_protocol::wire::Frame::decode(bytes) else {
            return Err(Status::invalid_argument(
                "0103 the frame is not a deterministic {type, body, hash} (mtp-cert)",
            ));
        };
        match (method, frame.frame_type.as_str()) {
            ("ResolveDid", _) => respond(
                "did_resolution_response",
                Value::map([
                    ("did", Value::text(&self.me.did)),
                    ("document", Value::text(&self.me.document_json)),
                    ("version", Value::from(1u64)),
                ]),
            ),
            ("Deliver", "delivery_request") => {
                let body = Value::map([
                    (
                        "mandate_id",
                        frame.body.get("mandate_id").cloned().unwrap_or(Value::Null),
                    ),
                    ("content_type", Value::text("text/plain")),
                    ("payload", Value::bytes(b"delivered by mtp-cert".to_vec())),
                    ("timestamp", tdate_value(now())),
                ]);
                respond("delivery", self.sign(body))
            }
            _ => respond(
                "ack",
                Value::map([
                    ("ok", Value::Bool(true)),
                    ("ref", Value::bytes(frame.hash.to_vec())),
                ]),
            ),
        }
    }

    async fn unary(
        &self,
        method: &str,
        req: Request<pb::Frame>,
    ) -> Result<Response<pb::Frame>, Status> {
        let channel = Self::channel(method);
        let bytes = req.into_inner().cbor;
        let iut = self.shared.iut_did();
        self.shared.observe_frame(&bytes, &iut, &self.me.did);
        let explicit = self.shared.explicit.contains(&channel);
        let dropped = self.shared.take_drop();
        let waiter = (explicit && !dropped).then(|| self.shared.await_reply(&channel));
        self.shared
            .inbox
            .push(&channel, Inbound::Frame(bytes.clone()));
        if dropped {
            tokio::time::sleep(DROP_HOLD).await;
            return Err(Status::deadline_exceeded("mtp-cert: drop_reply"));
        }
        if let Some(rx) = waiter {
            match tokio::time::timeout(EXPLICIT_REPLY_WAIT, rx).await {
                Ok(Ok(reply)) => {
                    return reply.map(|f| {
                        let mut r = Response::new(f);
                        framing::set_version(r.metadata_mut());
                        r
                    });
                }
                // The scenario's answer carried drop_reply: no answer at all.
                Ok(Err(_)) => {
                    tokio::time::sleep(DROP_HOLD).await;
                    return Err(Status::deadline_exceeded("mtp-cert: drop_reply"));
                }
                // No explicit answer in time: answered as a conforming peer would.
                Err(_) => {}
            }
        }
        self.automatic(method, &bytes)
    }

    /// A streaming call of the IUT: frames queued, answers from `send` steps (or automatic
    /// on `Commit`).
    fn stream(&self, method: &str, req: Request<Streaming<pb::Frame>>) -> Response<FrameStream> {
        let channel = Self::channel(method);
        let (tx, rx) = mpsc::channel::<Result<pb::Frame, Status>>(32);
        let auto_commit = method == "Commit" && !self.shared.explicit.contains(&channel);
        if !auto_commit {
            // The scenario answers on this stream (its `send` steps).
            self.shared
                .streams
                .register(&channel, Sink::Server(tx.clone()));
        }
        let shared = self.shared.clone();
        let me = self.me.clone();
        let mut inbound = req.into_inner();
        tokio::spawn(async move {
            let mut tx = Some(tx);
            loop {
                let msg = match tokio::time::timeout(DROP_HOLD, inbound.message()).await {
                    Ok(Ok(Some(f))) => f,
                    _ => break,
                };
                let iut = shared.iut_did();
                shared.observe_frame(&msg.cbor, &iut, &me.did);
                shared
                    .inbox
                    .push(&channel, Inbound::Frame(msg.cbor.clone()));
                if !auto_commit {
                    continue;
                }
                let Ok(frame) = mtp_protocol::wire::Frame::decode(&msg.cbor) else {
                    continue;
                };
                match frame.frame_type.as_str() {
                    "mandate_draft" => {
                        let input = cbor::to_vec(&without(&frame.body, &["signatures"]))
                            .unwrap_or_default();
                        let body = Value::map([
                            (
                                "mandate_id",
                                frame.body.get("mandate_id").cloned().unwrap_or(Value::Null),
                            ),
                            (
                                "signature",
                                agent_signature_with(&me.did, &me.key_id, &me.signing, &input),
                            ),
                        ]);
                        shared.observe("mandate_signature", &body, &me.did, &iut);
                        if let (Some(t), Ok(f)) = (
                            tx.as_ref(),
                            mtp_protocol::wire::Frame::new("mandate_signature", body)
                                .and_then(|f| f.encode()),
                        ) {
                            let _ = t.send(Ok(pb::Frame { cbor: f })).await;
                        }
                    }
                    "mandate" => {
                        // The participant ends the stream with OK (PROFILE G-48).
                        tx = None;
                    }
                    _ => {}
                }
            }
            drop(tx);
        });
        let mut r: Response<FrameStream> = Response::new(Box::pin(ReceiverStream::new(rx)));
        framing::set_version(r.metadata_mut());
        r
    }
}

#[tonic::async_trait]
impl agent_server::Agent for HarnessAgent {
    async fn resolve_did(&self, req: Request<pb::Frame>) -> Result<Response<pb::Frame>, Status> {
        self.unary("ResolveDid", req).await
    }

    type NegotiateStream = FrameStream;
    async fn negotiate(
        &self,
        req: Request<Streaming<pb::Frame>>,
    ) -> Result<Response<FrameStream>, Status> {
        Ok(self.stream("Negotiate", req))
    }

    type CommitStream = FrameStream;
    async fn commit(
        &self,
        req: Request<Streaming<pb::Frame>>,
    ) -> Result<Response<FrameStream>, Status> {
        Ok(self.stream("Commit", req))
    }

    async fn settle(&self, req: Request<pb::Frame>) -> Result<Response<pb::Frame>, Status> {
        self.unary("Settle", req).await
    }

    async fn deliver(&self, req: Request<pb::Frame>) -> Result<Response<pb::Frame>, Status> {
        self.unary("Deliver", req).await
    }

    async fn verify(&self, req: Request<pb::Frame>) -> Result<Response<pb::Frame>, Status> {
        self.unary("Verify", req).await
    }

    async fn notify(&self, req: Request<pb::Frame>) -> Result<Response<pb::Frame>, Status> {
        self.unary("Notify", req).await
    }
}

/// A bound listener (so the persona's DID Document can name its port before serving).
pub async fn bind() -> Result<TcpListener, ServerError> {
    Ok(TcpListener::bind(("127.0.0.1", 0)).await?)
}

/// Serves the persona's Agent service on `listener`, accepting only the pinned IUT
/// certificates.
pub fn serve(
    listener: TcpListener,
    tls: &TlsIdentity,
    iut_pins: &[([u8; 32], String)],
    me: ServerPersona,
    shared: Arc<Shared>,
) -> Result<SyncServer, ServerError> {
    let pins = PinSet::new();
    for (fp, label) in iut_pins {
        pins.insert(Fingerprint::from_bytes(*fp), label.clone());
    }
    let sink = {
        let shared = shared.clone();
        mtp_reference_agent::transport::sync::tls::EventSink::from_fn(move |ev| {
            if let mtp_reference_agent::transport::sync::tls::TransportEvent::HandshakeRefused(r) =
                ev
            {
                let req = r.reason.requirement().unwrap_or("BIND-V-A-03");
                if let Ok(mut v) = shared.refused_handshakes.lock() {
                    v.push(format!("{req}: {} ({})", r.reason.as_str(), r.detail));
                }
            }
        })
    };
    let svc = agent_server::AgentServer::new(HarnessAgent { shared, me })
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let router = tonic::transport::Server::builder()
        .timeout(DROP_HOLD + Duration::from_secs(5))
        .add_service(svc);
    let options = ServerOptions {
        events: sink,
        ..ServerOptions::default()
    };
    SyncServer::serve(listener, tls, pins, options, router)
}
