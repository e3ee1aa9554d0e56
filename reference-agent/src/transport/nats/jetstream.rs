//! MTPAsync over NATS JetStream (BIND-V-B-01, BIND-V-C-03; PROFILE G-06).
//!
//! - Two file-backed streams cover the profile subjects: discovery (`mtp.offer.>`,
//!   `mtp.request.>`, `mtp.manifest.>`, `mtp.revocation.>`, `mtp.alg`) and the per-agent
//!   inboxes (`mtp.agent.>`). Stream and consumer names are local broker configuration
//!   (PROFILE G-06). Streams are created or updated idempotently on connect.
//! - Publishing sets `Nats-Msg-Id` (the envelope's `msg_id` as text) and `Mtp-Version`, and
//!   awaits the publish ack; within the stream's duplicate window the server stores a
//!   re-published id once and acks it as a duplicate (0400, PROFILE G-29).
//! - Durable pull consumers with explicit ack deliver at least once. A [`Received`] is
//!   acknowledged only after the caller processed it; its id is recorded in a
//!   [`DedupStore`](super::dedup::DedupStore) first, so a redelivery (lost ack, crash before
//!   ack, restart) comes back as [`Delivery::Duplicate`] (0400) instead of being processed
//!   twice.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer, stream};
use futures::StreamExt;
use mtp_protocol::errors::{Coded, ErrorCode};

use super::dedup::{DedupError, SharedDedup, is_storable_id};
use super::envelope::EnvelopeError;

/// JetStream de-duplication header: the envelope's `msg_id` as text (PROFILE G-06).
pub const MSG_ID_HEADER: &str = "Nats-Msg-Id";
/// Protocol version header (PROFILE G-06, G-49).
pub const VERSION_HEADER: &str = "Mtp-Version";
/// Discovery subjects (PROFILE G-06).
pub const DISCOVERY_SUBJECTS: [&str; 5] = [
    "mtp.offer.>",
    "mtp.request.>",
    "mtp.manifest.>",
    "mtp.revocation.>",
    "mtp.alg",
];
/// Per-agent inbox subjects `mtp.agent.<did-id>.<class>` (PROFILE G-06).
pub const INBOX_SUBJECTS: [&str; 1] = ["mtp.agent.>"];
/// Most publish acks kept outstanding by [`AsyncTransport::publish_batch`] (the client
/// hangs beyond ~5000 unawaited acks).
pub const MAX_PUBLISH_WINDOW: usize = 1000;

/// Transport failures. Broker failures carry no MTP code; envelope failures do
/// ([`NatsError::code`]).
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("cannot connect to NATS at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("stream {stream}: {reason}")]
    Stream { stream: String, reason: String },
    #[error("consumer {consumer}: {reason}")]
    Consumer { consumer: String, reason: String },
    #[error("subject {subject:?} refused: {reason}")]
    Subject {
        subject: String,
        reason: &'static str,
    },
    #[error("name {name:?} refused: a JetStream name has no '.', '*', '>' or whitespace")]
    Name { name: String },
    #[error("publish to {subject} failed: {reason}")]
    Publish { subject: String, reason: String },
    #[error("receive from consumer {consumer} failed: {reason}")]
    Receive { consumer: String, reason: String },
    #[error("acknowledgement failed: {0}")]
    Ack(String),
    #[error(transparent)]
    Dedup(#[from] DedupError),
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
}

impl NatsError {
    /// The MTP error code, where one applies (envelope failures).
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            NatsError::Envelope(e) => Some(e.code()),
            _ => None,
        }
    }
}

/// The two streams of the profile subject space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamKind {
    Discovery,
    Inbox,
}

impl StreamKind {
    pub fn subjects(self) -> &'static [&'static str] {
        match self {
            StreamKind::Discovery => &DISCOVERY_SUBJECTS,
            StreamKind::Inbox => &INBOX_SUBJECTS,
        }
    }

    /// The stream holding `subject` (a concrete subject or a filter pattern within one
    /// stream); `None` outside the profile subject space.
    pub fn for_subject(subject: &str) -> Option<StreamKind> {
        const DISCOVERY_PREFIXES: [&str; 4] = [
            "mtp.offer.",
            "mtp.request.",
            "mtp.manifest.",
            "mtp.revocation.",
        ];
        if subject == "mtp.alg" || DISCOVERY_PREFIXES.iter().any(|p| subject.starts_with(p)) {
            Some(StreamKind::Discovery)
        } else if subject.starts_with("mtp.agent.") {
            Some(StreamKind::Inbox)
        } else {
            None
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            StreamKind::Discovery => "DISCOVERY",
            StreamKind::Inbox => "INBOX",
        }
    }
}

/// Checks subject syntax: non-empty tokens without whitespace; wildcards (`*`, a final `>`)
/// only in filters.
pub fn check_subject(subject: &str, filter: bool) -> Result<StreamKind, NatsError> {
    let refuse = |reason| NatsError::Subject {
        subject: subject.to_owned(),
        reason,
    };
    let tokens: Vec<&str> = subject.split('.').collect();
    for (i, t) in tokens.iter().enumerate() {
        if t.is_empty() {
            return Err(refuse("empty token"));
        }
        if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(refuse("whitespace or control character"));
        }
        let wildcard = *t == "*" || (*t == ">" && i == tokens.len() - 1);
        if t.contains(['*', '>']) && !(filter && wildcard) {
            return Err(refuse(if filter {
                "misplaced wildcard"
            } else {
                "wildcard in a publish subject"
            }));
        }
    }
    StreamKind::for_subject(subject).ok_or_else(|| refuse("outside the PROFILE G-06 subject space"))
}

fn check_name(name: &str) -> Result<(), NatsError> {
    if name.is_empty()
        || name.chars().any(|c| {
            matches!(c, '.' | '*' | '>' | '/' | '\\') || c.is_whitespace() || c.is_control()
        })
    {
        return Err(NatsError::Name {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Connection and stream configuration.
#[derive(Clone, Debug)]
pub struct TransportOptions {
    /// Client name shown by the server.
    pub client_name: String,
    /// Streams are `<prefix>_DISCOVERY` and `<prefix>_INBOX`.
    pub stream_prefix: String,
    /// Server-side `Nats-Msg-Id` de-duplication window.
    pub duplicate_window: Duration,
    /// Message retention; zero keeps messages until `max_bytes` discards the oldest.
    pub max_age: Duration,
    /// Per-stream size limit; −1 = unlimited.
    pub max_bytes: i64,
    pub connect_timeout: Duration,
    /// Bound on JetStream API requests and awaited publish acks.
    pub request_timeout: Duration,
    /// Create or update the streams on connect.
    pub ensure_streams: bool,
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            client_name: "mtp-agent".into(),
            stream_prefix: "MTP".into(),
            duplicate_window: Duration::from_secs(120),
            max_age: Duration::ZERO,
            max_bytes: -1,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            ensure_streams: true,
        }
    }
}

/// The server's answer to a publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishReceipt {
    pub stream: String,
    pub sequence: u64,
    /// The id was already stored within the duplicate window: not stored again.
    pub duplicate: bool,
}

impl PublishReceipt {
    /// 0400 Duplicate Delivery Ignored when the server dropped the message as a duplicate
    /// (PROFILE G-29).
    pub fn duplicate_code(&self) -> Option<ErrorCode> {
        self.duplicate
            .then_some(ErrorCode::DuplicateDeliveryIgnored)
    }
}

/// One message for [`AsyncTransport::publish_batch`].
#[derive(Clone, Debug)]
pub struct Outbound {
    pub subject: String,
    pub msg_id: String,
    pub payload: Vec<u8>,
}

/// A connection to the broker with the profile streams in place.
#[derive(Clone, Debug)]
pub struct AsyncTransport {
    url: String,
    client: async_nats::Client,
    js: jetstream::Context,
    options: TransportOptions,
}

impl AsyncTransport {
    /// Connects and (by default) creates or updates the streams.
    pub async fn connect(url: &str, options: TransportOptions) -> Result<Self, NatsError> {
        check_name(&options.stream_prefix)?;
        let client = async_nats::ConnectOptions::new()
            .name(&options.client_name)
            .connection_timeout(options.connect_timeout)
            .connect(url)
            .await
            .map_err(|e| NatsError::Connect {
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
        let js = jetstream::ContextBuilder::new()
            .timeout(options.request_timeout)
            .build(client.clone());
        let t = AsyncTransport {
            url: url.to_owned(),
            client,
            js,
            options,
        };
        if t.options.ensure_streams {
            t.ensure_streams().await?;
        }
        Ok(t)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn options(&self) -> &TransportOptions {
        &self.options
    }

    /// The underlying client (for the harness: raw subscriptions, flush).
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// `<prefix>_DISCOVERY` / `<prefix>_INBOX`.
    pub fn stream_name(&self, kind: StreamKind) -> String {
        format!("{}_{}", self.options.stream_prefix, kind.suffix())
    }

    fn stream_config(&self, kind: StreamKind) -> stream::Config {
        stream::Config {
            name: self.stream_name(kind),
            description: Some(format!("MTP {} subjects (PROFILE G-06)", kind.suffix())),
            subjects: kind.subjects().iter().map(|s| (*s).to_owned()).collect(),
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
            duplicate_window: self.options.duplicate_window,
            max_age: self.options.max_age,
            max_bytes: self.options.max_bytes,
            max_messages: -1,
            ..Default::default()
        }
    }

    /// Creates the streams, or updates them to this configuration; idempotent.
    pub async fn ensure_streams(&self) -> Result<(), NatsError> {
        for kind in [StreamKind::Discovery, StreamKind::Inbox] {
            let config = self.stream_config(kind);
            self.js
                .create_or_update_stream(config)
                .await
                .map_err(|e| NatsError::Stream {
                    stream: self.stream_name(kind),
                    reason: e.to_string(),
                })?;
        }
        Ok(())
    }

    /// Messages currently stored in a stream.
    pub async fn stream_message_count(&self, kind: StreamKind) -> Result<u64, NatsError> {
        let name = self.stream_name(kind);
        let err = |reason: String| NatsError::Stream {
            stream: name.clone(),
            reason,
        };
        let mut s = self
            .js
            .get_stream(&name)
            .await
            .map_err(|e| err(e.to_string()))?;
        let info = s.info().await.map_err(|e| err(e.to_string()))?;
        Ok(info.state.messages)
    }

    fn headers(msg_id: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(MSG_ID_HEADER, msg_id);
        h.insert(VERSION_HEADER, mtp_protocol::profile::PROTOCOL_VERSION);
        h
    }

    async fn send(
        &self,
        subject: &str,
        msg_id: &str,
        payload: Vec<u8>,
    ) -> Result<jetstream::context::PublishAckFuture, NatsError> {
        check_subject(subject, false)?;
        if !is_storable_id(msg_id) {
            return Err(NatsError::Dedup(DedupError::InvalidId));
        }
        self.js
            .publish_with_headers(subject.to_owned(), Self::headers(msg_id), payload.into())
            .await
            .map_err(|e| NatsError::Publish {
                subject: subject.to_owned(),
                reason: e.to_string(),
            })
    }

    async fn receipt(
        subject: &str,
        msg_id: &str,
        ack: jetstream::context::PublishAckFuture,
    ) -> Result<PublishReceipt, NatsError> {
        let ack = ack.await.map_err(|e| NatsError::Publish {
            subject: subject.to_owned(),
            reason: e.to_string(),
        })?;
        if ack.duplicate {
            tracing::info!(
                code = %ErrorCode::DuplicateDeliveryIgnored,
                msg_id,
                subject,
                "server dropped a duplicate publish"
            );
        }
        Ok(PublishReceipt {
            stream: ack.stream,
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        })
    }

    /// Publishes with `Nats-Msg-Id: msg_id` and `Mtp-Version`, awaiting the server's ack.
    pub async fn publish(
        &self,
        subject: &str,
        msg_id: &str,
        payload: Vec<u8>,
    ) -> Result<PublishReceipt, NatsError> {
        let ack = self.send(subject, msg_id, payload).await?;
        Self::receipt(subject, msg_id, ack).await
    }

    /// Publishes many messages, keeping at most `window` (≤ [`MAX_PUBLISH_WINDOW`]) acks
    /// outstanding; receipts in input order.
    pub async fn publish_batch(
        &self,
        messages: Vec<Outbound>,
        window: usize,
    ) -> Result<Vec<PublishReceipt>, NatsError> {
        let window = window.clamp(1, MAX_PUBLISH_WINDOW);
        let mut receipts = Vec::with_capacity(messages.len());
        let mut it = messages.into_iter().peekable();
        while it.peek().is_some() {
            let mut pending = Vec::with_capacity(window);
            for m in it.by_ref().take(window) {
                let ack = self.send(&m.subject, &m.msg_id, m.payload).await?;
                pending.push((m.subject, m.msg_id, ack));
            }
            for (subject, msg_id, ack) in pending {
                receipts.push(Self::receipt(&subject, &msg_id, ack).await?);
            }
        }
        Ok(receipts)
    }

    /// Flushes buffered client output (fire-and-forget acks) to the server.
    pub async fn flush(&self) -> Result<(), NatsError> {
        self.client
            .flush()
            .await
            .map_err(|e| NatsError::Ack(e.to_string()))
    }

    /// Creates (or binds to, updating what the server allows) a durable pull consumer.
    pub async fn consumer(
        &self,
        options: ConsumerOptions,
        dedup: SharedDedup,
    ) -> Result<InboxConsumer, NatsError> {
        check_name(&options.durable_name)?;
        let kind = check_subject(&options.filter_subject, true)?;
        let stream = self.stream_name(kind);
        let err = |reason: String| NatsError::Consumer {
            consumer: options.durable_name.clone(),
            reason,
        };
        let config = consumer::pull::Config {
            durable_name: Some(options.durable_name.clone()),
            description: options.description.clone(),
            filter_subject: options.filter_subject.clone(),
            deliver_policy: consumer::DeliverPolicy::All,
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: options.ack_wait,
            max_deliver: options.max_deliver,
            max_ack_pending: options.max_ack_pending,
            ..Default::default()
        };
        let consumer = self
            .js
            .create_consumer_on_stream(config, &stream)
            .await
            .map_err(|e| err(e.to_string()))?;
        Ok(InboxConsumer {
            consumer,
            dedup,
            name: options.durable_name,
            filter: options.filter_subject,
        })
    }
}

/// A durable pull consumer's configuration.
#[derive(Clone, Debug)]
pub struct ConsumerOptions {
    /// Durable name (local configuration; survives client and server restarts).
    pub durable_name: String,
    /// e.g. `mtp.agent.<did-id>.>` ([`mtp_protocol::wire::subject::inbox_pattern`]) or a
    /// discovery subject.
    pub filter_subject: String,
    /// Redelivery after this long without an ack.
    pub ack_wait: Duration,
    /// Delivery attempts before the server gives up on a message.
    pub max_deliver: i64,
    /// Unacknowledged messages the server hands out at once.
    pub max_ack_pending: i64,
    pub description: Option<String>,
}

impl ConsumerOptions {
    pub fn new(durable_name: impl Into<String>, filter_subject: impl Into<String>) -> Self {
        ConsumerOptions {
            durable_name: durable_name.into(),
            filter_subject: filter_subject.into(),
            ack_wait: Duration::from_secs(30),
            max_deliver: 10,
            max_ack_pending: 10_000,
            description: None,
        }
    }

    /// The agent's inbox `mtp.agent.<did-id>.>` (PROFILE G-06).
    pub fn inbox(durable_name: impl Into<String>, agent: &mtp_protocol::identity::Did) -> Self {
        Self::new(
            durable_name,
            mtp_protocol::wire::subject::inbox_pattern(agent),
        )
    }
}

/// A redelivery of an already processed message: acknowledged at the server and ignored,
/// 0400 Duplicate Delivery Ignored, Informational (PROFILE G-06, G-29).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("duplicate delivery of {msg_id} on {subject} (delivery {delivered}) ignored")]
pub struct DuplicateDelivery {
    pub msg_id: String,
    pub subject: String,
    pub stream_sequence: u64,
    pub delivered: u64,
}

impl Coded for DuplicateDelivery {
    fn code(&self) -> ErrorCode {
        ErrorCode::DuplicateDeliveryIgnored
    }
}

/// What a consumer hands out.
#[derive(Debug)]
pub enum Delivery {
    /// Not processed before: process it, then [`Received::ack`].
    New(Box<Received>),
    /// Already processed (its id is in the store): acknowledged and ignored.
    Duplicate(DuplicateDelivery),
}

impl Delivery {
    pub fn into_new(self) -> Option<Received> {
        match self {
            Delivery::New(r) => Some(*r),
            Delivery::Duplicate(_) => None,
        }
    }

    pub fn is_duplicate(&self) -> bool {
        matches!(self, Delivery::Duplicate(_))
    }
}

/// A delivered message and its ack handle. Dropping it without acking leaves it to be
/// redelivered after the consumer's ack wait (at-least-once).
pub struct Received {
    message: jetstream::Message,
    msg_id: Option<String>,
    stream_sequence: u64,
    consumer_sequence: u64,
    delivered: u64,
    pending: u64,
    dedup: SharedDedup,
}

impl std::fmt::Debug for Received {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Received")
            .field("subject", &self.subject())
            .field("msg_id", &self.msg_id)
            .field("stream_sequence", &self.stream_sequence)
            .field("delivered", &self.delivered)
            .field("payload_len", &self.payload().len())
            .finish()
    }
}

fn ack_err(e: impl std::fmt::Display) -> NatsError {
    NatsError::Ack(e.to_string())
}

impl Received {
    pub fn subject(&self) -> &str {
        self.message.subject.as_str()
    }

    pub fn payload(&self) -> &[u8] {
        &self.message.payload
    }

    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.message.headers.as_ref()?.get(name).map(|v| v.as_str())
    }

    pub fn headers(&self) -> Option<&HeaderMap> {
        self.message.headers.as_ref()
    }

    /// `Nats-Msg-Id`, when present and storable.
    pub fn msg_id(&self) -> Option<&str> {
        self.msg_id.as_deref()
    }

    /// `Mtp-Version`.
    pub fn mtp_version(&self) -> Option<&str> {
        self.header(VERSION_HEADER)
    }

    /// Delivery attempt, 1 for the first.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    pub fn is_redelivery(&self) -> bool {
        self.delivered > 1
    }

    pub fn stream_sequence(&self) -> u64 {
        self.stream_sequence
    }

    pub fn consumer_sequence(&self) -> u64 {
        self.consumer_sequence
    }

    /// Messages pending for the consumer after this one.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// Records the id as processed without acking (a crash between this and the ack makes
    /// the redelivery a [`Delivery::Duplicate`]).
    pub fn mark_processed(&self) -> Result<(), NatsError> {
        if let Some(id) = &self.msg_id {
            self.dedup.record(id)?;
        }
        Ok(())
    }

    /// Records the id, then acks (fire-and-forget: a lost ack means a redelivery, which
    /// the store catches).
    pub async fn ack(self) -> Result<(), NatsError> {
        self.mark_processed()?;
        self.message.ack().await.map_err(ack_err)
    }

    /// Records the id, then acks and waits for the server's confirmation.
    pub async fn ack_confirmed(self) -> Result<(), NatsError> {
        self.mark_processed()?;
        self.message.double_ack().await.map_err(ack_err)
    }

    /// Negative ack: redeliver (after `delay`, if given). The id is not recorded.
    pub async fn nak(self, delay: Option<Duration>) -> Result<(), NatsError> {
        self.message
            .ack_with(AckKind::Nak(delay))
            .await
            .map_err(ack_err)
    }

    /// Extends the ack wait while processing takes long.
    pub async fn in_progress(&self) -> Result<(), NatsError> {
        self.message
            .ack_with(AckKind::Progress)
            .await
            .map_err(ack_err)
    }

    /// Never redeliver (a message that can never be processed, e.g. undecodable).
    pub async fn term(self) -> Result<(), NatsError> {
        self.message.ack_with(AckKind::Term).await.map_err(ack_err)
    }
}

/// A durable pull consumer with client-side de-duplication.
#[derive(Debug)]
pub struct InboxConsumer {
    consumer: consumer::PullConsumer,
    dedup: SharedDedup,
    name: String,
    filter: String,
}

impl InboxConsumer {
    pub fn durable_name(&self) -> &str {
        &self.name
    }

    pub fn filter_subject(&self) -> &str {
        &self.filter
    }

    pub fn dedup(&self) -> &SharedDedup {
        &self.dedup
    }

    fn receive_err(&self, e: impl std::fmt::Display) -> NatsError {
        NatsError::Receive {
            consumer: self.name.clone(),
            reason: e.to_string(),
        }
    }

    /// Up to `max` messages: what is available now, or — when nothing is — what arrives
    /// within `wait`.
    pub async fn fetch(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, NatsError> {
        let max = max.max(1);
        let mut out = self.pull(max, None).await?;
        if out.is_empty() && !wait.is_zero() {
            out = self.pull(1, Some(wait)).await?;
            if !out.is_empty() && max > 1 {
                out.extend(self.pull(max - 1, None).await?);
            }
        }
        Ok(out)
    }

    /// The next message, waiting up to `wait`.
    pub async fn next(&self, wait: Duration) -> Result<Option<Delivery>, NatsError> {
        Ok(self.fetch(1, wait).await?.into_iter().next())
    }

    async fn pull(&self, max: usize, wait: Option<Duration>) -> Result<Vec<Delivery>, NatsError> {
        let batch = match wait {
            // no_wait: returns what is stored now.
            None => self.consumer.fetch().max_messages(max).messages().await,
            // Held by the server until one message arrives or `wait` expires. One only:
            // messages of a larger request arriving after we stopped reading would sit
            // unacknowledged until the ack wait expires.
            Some(w) => {
                self.consumer
                    .batch()
                    .max_messages(1)
                    .expires(w)
                    .messages()
                    .await
            }
        };
        let mut batch = batch.map_err(|e| self.receive_err(e))?;
        let mut out = Vec::new();
        while let Some(m) = batch.next().await {
            let m = m.map_err(|e| self.receive_err(e))?;
            out.push(self.classify(m).await?);
        }
        Ok(out)
    }

    async fn classify(&self, message: jetstream::Message) -> Result<Delivery, NatsError> {
        let (stream_sequence, consumer_sequence, delivered, pending) = {
            let info = message
                .info()
                .map_err(|e| self.receive_err(format!("no JetStream metadata: {e}")))?;
            (
                info.stream_sequence,
                info.consumer_sequence,
                u64::try_from(info.delivered).unwrap_or(0),
                info.pending,
            )
        };
        let msg_id = message
            .headers
            .as_ref()
            .and_then(|h| h.get(MSG_ID_HEADER))
            .map(|v| v.as_str().to_owned())
            .filter(|id| is_storable_id(id));
        if let Some(id) = &msg_id
            && self.dedup.contains(id)
        {
            let dup = DuplicateDelivery {
                msg_id: id.clone(),
                subject: message.subject.to_string(),
                stream_sequence,
                delivered,
            };
            tracing::info!(code = %dup.code(), %dup, "ignoring a redelivery");
            message.ack().await.map_err(ack_err)?;
            return Ok(Delivery::Duplicate(dup));
        }
        Ok(Delivery::New(Box::new(Received {
            message,
            msg_id,
            stream_sequence,
            consumer_sequence,
            delivered,
            pending,
            dedup: self.dedup.clone(),
        })))
    }
}
