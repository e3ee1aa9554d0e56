//! Where messages from the IUT wait for `expect` steps, and where the harness's own sends
//! go on open streams.
//!
//! - [`Inbox`]: one queue per channel name (`grpc:Agent/Negotiate`, `nats:<subject>`, and
//!   `reply:<channel>` for answers to the harness's unary calls), filled by the harness
//!   server, the client stream readers and the NATS subscription.
//! - [`Streams`]: the open stream of each streaming channel that a `send` continues — the
//!   newest of the harness's own client stream and the IUT's call into the harness server.
//! - [`Shared`]: both, the sessions, pending unary replies and the `drop_reply` flags, shared
//!   by the executor and its servers.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use mtp_protocol::cbor::{self, Value};
use mtp_reference_agent::transport::sync::pb;
use tokio::sync::{Notify, mpsc, oneshot};

use super::session::Sessions;

/// Largest MTP message the harness accepts or sends (gRPC decoding limit).
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Something that arrived for the harness.
#[derive(Clone, Debug)]
pub enum Inbound {
    /// A gRPC frame: `mtp.v1.Frame.cbor` as received.
    Frame(Vec<u8>),
    /// A NATS message, opened: frame type, body and the envelope payload.
    Envelope {
        frame_type: String,
        body: Value,
        payload: Vec<u8>,
    },
    /// A NATS message that could not be opened (why).
    BadEnvelope { payload: Vec<u8>, why: String },
    /// A failed call: gRPC status, message, `mtp-error-bin` bytes.
    Status {
        code: tonic::Code,
        message: String,
        trailer: Option<Vec<u8>>,
    },
}

/// Queues of received messages by channel.
#[derive(Debug, Default)]
pub struct Inbox {
    queues: Mutex<HashMap<String, VecDeque<Inbound>>>,
    notify: Notify,
}

impl Inbox {
    pub fn push(&self, channel: &str, item: Inbound) {
        self.queues
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(channel.to_owned())
            .or_default()
            .push_back(item);
        self.notify.notify_waiters();
    }

    fn try_pop(&self, channel: &str) -> Option<Inbound> {
        self.queues
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(channel)
            .and_then(VecDeque::pop_front)
    }

    /// The first item on `channel` that `wanted` accepts (the others stay queued), waiting
    /// at most `within` — an index receives manifests, Offers and Requests interleaved.
    pub async fn pop_matching(
        &self,
        channel: &str,
        within: Duration,
        wanted: impl Fn(&Inbound) -> bool,
    ) -> Option<Inbound> {
        let deadline = tokio::time::Instant::now() + within;
        let take = || {
            let mut g = self.queues.lock().unwrap_or_else(|p| p.into_inner());
            let q = g.get_mut(channel)?;
            let i = q.iter().position(&wanted)?;
            q.remove(i)
        };
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(x) = take() {
                return Some(x);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return take();
            }
        }
    }

    /// The next item on `channel`, waiting at most `within`.
    pub async fn pop(&self, channel: &str, within: Duration) -> Option<Inbound> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(x) = self.try_pop(channel) {
                return Some(x);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.try_pop(channel);
            }
        }
    }
}

/// The sending half of an open stream.
#[derive(Clone, Debug)]
pub enum Sink {
    /// The harness's own call (client side).
    Client(mpsc::Sender<pb::Frame>),
    /// The IUT's call into the harness server (the harness answers on it).
    Server(mpsc::Sender<Result<pb::Frame, tonic::Status>>),
}

impl Sink {
    pub fn is_closed(&self) -> bool {
        match self {
            Sink::Client(s) => s.is_closed(),
            Sink::Server(s) => s.is_closed(),
        }
    }

    /// Sends one frame; `false` when the stream is gone.
    pub async fn send(&self, bytes: Vec<u8>) -> bool {
        let f = pb::Frame { cbor: bytes };
        match self {
            Sink::Client(s) => s.send(f).await.is_ok(),
            Sink::Server(s) => s.send(Ok(f)).await.is_ok(),
        }
    }
}

/// The newest open stream per streaming channel.
#[derive(Debug, Default)]
pub struct Streams {
    map: Mutex<HashMap<String, Sink>>,
}

impl Streams {
    pub fn register(&self, channel: &str, sink: Sink) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(channel.to_owned(), sink);
    }

    /// Whether a stream was ever open on `channel` (open or ended).
    pub fn had(&self, channel: &str) -> bool {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(channel)
    }

    /// The open stream of `channel`, if any.
    pub fn current(&self, channel: &str) -> Option<Sink> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(channel)
            .filter(|s| !s.is_closed())
            .cloned()
    }

    /// Ends the harness's side of every stream.
    pub fn close_all(&self) {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// An explicit answer to a unary call the IUT made to the harness.
pub type Reply = Result<pb::Frame, tonic::Status>;

/// State shared by the executor, its harness servers and its stream readers.
#[derive(Debug, Default)]
pub struct Shared {
    pub inbox: Inbox,
    pub streams: Streams,
    pub sessions: Mutex<Sessions>,
    /// Unary calls of the IUT waiting for the scenario's explicit answer, by channel.
    pending: Mutex<HashMap<String, VecDeque<oneshot::Sender<Reply>>>>,
    /// Channels on which the scenario answers the IUT itself (no automatic answer).
    pub explicit: HashSet<String>,
    /// `drop_reply`: the next call of the IUT into the harness gets no answer.
    pub drop_next: AtomicBool,
    /// The IUT's DID (sessions record who sent what).
    pub iut_did: Mutex<String>,
    /// Counts frames received, for the transcript order.
    pub received: AtomicU64,
    /// TLS handshakes of the IUT's client that the persona servers refused
    /// (`requirement id: reason`): the IUT reached the harness and broke BIND V-A.
    pub refused_handshakes: Mutex<Vec<String>>,
    /// The personas by DID (the harness as index, issue B-2).
    pub personas: Mutex<HashMap<String, PersonaInfo>>,
    /// Answers a `send` gave before the IUT's call they answer, by channel.
    pub staged: Mutex<HashMap<String, VecDeque<Vec<u8>>>>,
    /// `index_response` bodies the harness indexes answered to the IUT's queries since the
    /// last control step: `(persona DID, body)`.
    pub index_answers: Mutex<Vec<(String, Value)>>,
    /// `extensions` entries of the manifests the IUT published to harness indexes.
    pub iut_extensions: Mutex<Vec<Value>>,
}

/// What the harness servers know of a persona (PROFILE G-31: the harness as index).
#[derive(Clone, Debug, Default)]
pub struct PersonaInfo {
    pub name: String,
    pub document_json: String,
    /// Its standing Offer (det-CBOR map), the automatic answer of its index.
    pub standing_offer: Option<Value>,
}

impl Shared {
    pub fn new(explicit: HashSet<String>) -> Shared {
        Shared {
            explicit,
            ..Shared::default()
        }
    }

    /// Takes the handshake refusals recorded since the last call.
    pub fn take_refused_handshakes(&self) -> Vec<String> {
        std::mem::take(
            &mut *self
                .refused_handshakes
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        )
    }

    pub fn iut_did(&self) -> String {
        self.iut_did
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records a frame in the sessions (`sender` sent it to `receiver`). Undecodable frames
    /// are left to the oracle.
    pub fn observe_frame(&self, bytes: &[u8], sender: &str, receiver: &str) {
        let Ok(v) = cbor::from_slice_lenient(bytes) else {
            return;
        };
        let (Some(t), Some(body)) = (v.get("type").and_then(Value::as_text), v.get("body")) else {
            return;
        };
        self.observe(t, body, sender, receiver);
    }

    pub fn observe(&self, frame_type: &str, body: &Value, sender: &str, receiver: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .observe(frame_type, body, sender, receiver);
    }

    /// Registers a unary call awaiting an explicit answer.
    pub fn await_reply(&self, channel: &str) -> oneshot::Receiver<Reply> {
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(channel.to_owned())
            .or_default()
            .push_back(tx);
        rx
    }

    /// The oldest unary call of the IUT on `channel` still waiting for an answer.
    pub fn take_pending(&self, channel: &str) -> Option<oneshot::Sender<Reply>> {
        let mut g = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let q = g.get_mut(channel)?;
        while let Some(tx) = q.pop_front() {
            if !tx.is_closed() {
                return Some(tx);
            }
        }
        None
    }

    /// Queues an answer for the IUT's next call on `channel`.
    pub fn stage(&self, channel: &str, bytes: Vec<u8>) {
        self.staged
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(channel.to_owned())
            .or_default()
            .push_back(bytes);
    }

    /// The oldest answer staged for `channel`.
    pub fn take_staged(&self, channel: &str) -> Option<Vec<u8>> {
        self.staged
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(channel)
            .and_then(VecDeque::pop_front)
    }

    /// Consumes the `drop_reply` flag.
    pub fn take_drop(&self) -> bool {
        self.drop_next.swap(false, Ordering::SeqCst)
    }
}

/// One unary MTPSync call `service`/`method` (PROFILE G-09) with the harness's message
/// size limits; an unknown Agent method is `Notify`, an unknown Index method `Publish`.
pub async fn unary_call(
    channel: tonic::transport::Channel,
    service: crate::scenario::GrpcService,
    method: &str,
    req: tonic::Request<pb::Frame>,
) -> Result<tonic::Response<pb::Frame>, tonic::Status> {
    use crate::scenario::GrpcService;
    match service {
        GrpcService::Agent => {
            let mut c = pb::agent_client::AgentClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES);
            match method {
                "ResolveDid" => c.resolve_did(req).await,
                "Settle" => c.settle(req).await,
                "Deliver" => c.deliver(req).await,
                "Verify" => c.verify(req).await,
                _ => c.notify(req).await,
            }
        }
        GrpcService::Index => {
            let mut c = pb::index_client::IndexClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES);
            match method {
                "Query" => c.query(req).await,
                "Revoke" => c.revoke(req).await,
                _ => c.publish(req).await,
            }
        }
    }
}
