//! The harness's own MTP `Agent` and `Index` gRPC server, one per persona (BIND V-A; PROFILE
//! G-09, G-31; issue B-2):
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
//!   is set, when the call gets no answer;
//! - `Index` calls (Query, Publish, Revoke; the harness as a discovery index): queued on
//!   `grpc:Index/<Method>` for the counterparty and `grpc:Index/<Method>@<persona>` for the
//!   other personas; answered with an answer the scenario staged before the call (a `send`
//!   of `index_response` / `ack` on that channel), else its explicit answer, else
//!   automatically: `ack` for Publish and Revoke, for Query an `index_response` holding the
//!   persona's standing Offer when it is within the queried Value Type.
//!
//! The harness judges what it receives as an index: [`check_published`] (a manifest is
//! signed by its publisher, SPEC-III-B-1-03; extensions declared with id and version,
//! SPEC-XI-09) and [`judge_query_result`] (what the IUT's `query_index` kept of the harness
//! indexes' answers: merged without duplicates, SPEC-III-B-2-03; no unsigned Offer,
//! SPEC-II-A-05; none requiring an unsupported extension, SPEC-XI-10).

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

use std::collections::HashMap;

use mtp_protocol::crypto::{PublicKey, SignatureAlgorithm};
use mtp_protocol::taxonomy::Classifier;
use mtp_protocol::uuid::{MtpUuid, ObjectType, source_of};
use mtp_reference_agent::transport::sync::pb::index_server;

use super::build::{BuildCtx, agent_signature_with};
use super::channels::{Inbound, MAX_MESSAGE_BYTES, PersonaInfo, Shared, Sink};
use super::oracle::{IutIdentity, Violation};
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

/// A staged `error` frame: the call fails with its G-09 status (UNAVAILABLE for a
/// Recoverable code) and the error object as the `mtp-error-bin` trailer (SPEC-VI-02
/// scenarios: a resolver failing n times). The harness-only key `min_gap_ms` (removed from
/// the trailer) is returned with it: see [`refusal_is_early`].
fn staged_refusal(answer: &[u8]) -> Option<(Status, Option<Duration>)> {
    use mtp_protocol::primitives::CborObject;
    let frame = mtp_protocol::wire::Frame::decode(answer).ok()?;
    if frame.frame_type != "error" {
        return None;
    }
    let gap = frame
        .body
        .get("min_gap_ms")
        .and_then(Value::as_u64)
        .map(Duration::from_millis);
    let body = without(&frame.body, &["min_gap_ms"]);
    let record = mtp_protocol::error_record::MtpErrorRecord::from_value(&body).ok()?;
    framing::error_status(&record, framing::Rpc::ResolveDid).map(|st| (st, gap))
}

/// When the staged refusals of a channel were last used, by executor and channel.
static LAST_REFUSAL: std::sync::OnceLock<
    std::sync::Mutex<std::collections::HashMap<(usize, String), std::time::Instant>>,
> = std::sync::OnceLock::new();

/// A retry that comes sooner than `min_gap` after the previous refused call on the same
/// channel is early (PROFILE G-08: back-off 500 ms × 2ⁿ⁻¹ ± 20 % before retry n); it is then
/// answered automatically instead of refused, so that a missing back-off shows in the
/// outcome (the IUT succeeds where it must escalate).
fn refusal_is_early(shared: &Arc<Shared>, channel: &str, min_gap: Option<Duration>) -> bool {
    let now = std::time::Instant::now();
    let key = (Arc::as_ptr(shared) as usize, channel.to_owned());
    let mut last = LAST_REFUSAL
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let early = min_gap.is_some_and(|g| last.get(&key).is_some_and(|t| now - *t < g));
    last.insert(key, now);
    early
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
        // What the persona published (super::registry), else its version-1 document.
        if method == "ResolveDid"
            && let Some(f) = super::registry::published(&self.me.document_json)
        {
            let mut r = Response::new(pb::Frame { cbor: f });
            framing::set_version(r.metadata_mut());
            return Ok(r);
        }
        match (method, frame.frame_type.as_str()) {
            // A DID this persona does not know: 1200, UNAVAILABLE (PROFILE G-32, G-09).
            ("ResolveDid", _)
                if frame
                    .body
                    .get("did")
                    .and_then(Value::as_text)
                    .is_some_and(|d| d != self.me.did) =>
            {
                let did = frame.body.get("did").and_then(Value::as_text).unwrap_or("");
                Err(framing::status_for(
                    &mtp_protocol::identity::resolution::ResolutionError::NotIndexed {
                        did: did.to_owned(),
                    },
                    framing::Rpc::ResolveDid,
                    &framing::ErrorContext::now(&self.me.did),
                ))
            }
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
        self.call(&channel, req.into_inner().cbor, |b| {
            self.automatic(method, b)
        })
        .await
    }

    /// A unary call of the IUT on `channel`: queued, then answered (staged, explicit or
    /// `automatic`).
    async fn call(
        &self,
        channel: &str,
        bytes: Vec<u8>,
        automatic: impl FnOnce(&[u8]) -> Result<Response<pb::Frame>, Status>,
    ) -> Result<Response<pb::Frame>, Status> {
        let channel = channel.to_owned();
        let iut = self.shared.iut_did();
        self.shared.observe_frame(&bytes, &iut, &self.me.did);
        if let Some(answer) = self.shared.take_staged(&channel) {
            self.shared
                .inbox
                .push(&channel, Inbound::Frame(bytes.clone()));
            if let Some((status, min_gap)) = staged_refusal(&answer) {
                if refusal_is_early(&self.shared, &channel, min_gap) {
                    return automatic(&bytes);
                }
                return Err(status);
            }
            let mut r = Response::new(pb::Frame { cbor: answer });
            framing::set_version(r.metadata_mut());
            return Ok(r);
        }
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
        automatic(&bytes)
    }

    /// `grpc:Index/<method>`, with `@<persona>` for a persona other than the counterparty.
    fn index_channel(&self, method: &str) -> String {
        let name = self
            .shared
            .personas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&self.me.did)
            .map(|p| p.name.clone());
        index_channel_of(method, name.as_deref())
    }

    /// The automatic answer of the persona's index (PROFILE G-31).
    fn automatic_index(&self, method: &str, bytes: &[u8]) -> Result<Response<pb::Frame>, Status> {
        if method != "Query" {
            return self.automatic(method, bytes);
        }
        let Ok(frame) = mtp_protocol::wire::Frame::decode(bytes) else {
            return Err(Status::invalid_argument(
                "0103 the frame is not a deterministic {type, body, hash} (mtp-cert)",
            ));
        };
        let standing = self
            .shared
            .personas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&self.me.did)
            .and_then(|p| p.standing_offer.clone());
        let scope = frame
            .body
            .get("value_type")
            .and_then(Value::as_text)
            .and_then(|t| Classifier::parse(t).ok());
        let mut results = Vec::new();
        if let (Some(offer), Some(scope)) = (standing, scope)
            && offer_within(&offer, &scope)
        {
            results.push(index_result(offer, &self.me.did));
        }
        respond(
            "index_response",
            Value::map([("results", Value::Array(results))]),
        )
    }

    /// An `Index` call of the IUT into this persona's index.
    async fn index(
        &self,
        method: &str,
        req: Request<pb::Frame>,
    ) -> Result<Response<pb::Frame>, Status> {
        let channel = self.index_channel(method);
        let bytes = req.into_inner().cbor;
        if method == "Publish"
            && let Ok(f) = mtp_protocol::wire::Frame::decode(&bytes)
            && f.frame_type == "manifest"
            && let Some(Value::Array(ext)) = f.body.get("extensions")
        {
            self.shared
                .iut_extensions
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(ext.iter().cloned());
        }
        let r = self
            .call(&channel, bytes, |b| self.automatic_index(method, b))
            .await;
        if method == "Query"
            && let Ok(resp) = &r
            && let Ok(f) = mtp_protocol::wire::Frame::decode(&resp.get_ref().cbor)
            && f.frame_type == "index_response"
        {
            self.shared
                .index_answers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((self.me.did.clone(), f.body));
        }
        r
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

#[tonic::async_trait]
impl index_server::Index for HarnessAgent {
    async fn query(&self, req: Request<pb::Frame>) -> Result<Response<pb::Frame>, Status> {
        self.index("Query", req).await
    }

    async fn publish(&self, req: Request<pb::Frame>) -> Result<Response<pb::Frame>, Status> {
        self.index("Publish", req).await
    }

    async fn revoke(&self, req: Request<pb::Frame>) -> Result<Response<pb::Frame>, Status> {
        self.index("Revoke", req).await
    }
}

/// The inbox channel of an `Index` call into persona `name` (issue B-2).
pub fn index_channel_of(method: &str, name: Option<&str>) -> String {
    match name {
        Some(n) if n != "counterparty" => format!("grpc:Index/{method}@{n}"),
        _ => format!("grpc:Index/{method}"),
    }
}

/// Whether the Offer's Value Type lies within `scope` (SPEC VIII; PROFILE G-07).
fn offer_within(offer: &Value, scope: &Classifier) -> bool {
    offer
        .get("value_type")
        .and_then(Value::as_text)
        .and_then(|t| Classifier::parse(t).ok())
        .is_some_and(|c| c == *scope || c.is_within(scope))
}

/// An `index-result` for `offer` held by the index of `holder` (PROFILE G-31).
fn index_result(offer: Value, holder: &str) -> Value {
    let seed = mtp_protocol::crypto::sha256(&cbor::to_vec(&offer).unwrap_or_default());
    let mut random = [0u8; 17];
    random.copy_from_slice(&seed[..17]);
    let t = now();
    let id = MtpUuid::new(
        ObjectType::Manifest,
        t.unix_nanos().unwrap_or(0),
        source_of(holder),
        random,
    );
    Value::map([
        ("offer", offer),
        ("manifest_id", Value::bytes(id.as_bytes().to_vec())),
        ("freshness", tdate_value(t)),
    ])
}

/// The body of a `send` of `index_response` (docs/scenarios.md "The harness as index"):
/// `results` items are `index-result` maps whose `offer` is an Offer template completed and
/// signed by the sending persona as a `send` of `offer` would be (`signature: null`: left
/// unsigned; any other `signature` value: kept as given), or `{standing_offer: <persona>}`
/// for that persona's standing Offer; `manifest_id` and `freshness` are filled when absent.
/// Without `results`: the sender's standing Offer.
pub fn complete_index_response(
    template: &Value,
    ctx: &mut BuildCtx<'_>,
    personas: &HashMap<String, PersonaInfo>,
) -> Result<Value, String> {
    let me = ctx.persona.did.clone();
    let standing_of = |name: &str| {
        personas
            .values()
            .find(|p| p.name == name)
            .and_then(|p| p.standing_offer.clone())
            .ok_or_else(|| format!("scenario error: no standing Offer of persona `{name}`"))
    };
    let items: Vec<Value> = match template.get("results") {
        None => vec![Value::map([(
            "standing_offer",
            Value::text(ctx.persona.name.clone()),
        )])],
        Some(Value::Array(a)) => a.clone(),
        Some(_) => return Err("scenario error: index_response `results` is not a list".into()),
    };
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        let Value::Map(entries) = item else {
            return Err("scenario error: an index_response result is not a map".into());
        };
        let mut offer = None;
        let mut rest: Vec<(Value, Value)> = Vec::new();
        for (k, v) in entries {
            match k.as_text() {
                Some("standing_offer") => {
                    let name = v
                        .as_text()
                        .ok_or("scenario error: standing_offer: a persona name")?;
                    offer = Some(standing_of(name)?);
                }
                Some("offer") => {
                    let mut o =
                        super::build::complete("offer", &v, ctx).map_err(|e| e.to_string())?;
                    match v.get("signature") {
                        Some(Value::Null) => {}
                        Some(given) => super::values::set(&mut o, "signature", given.clone()),
                        None => super::build::finish("offer", &mut o, ctx.persona)
                            .map_err(|e| e.to_string())?,
                    }
                    offer = Some(o);
                }
                _ => rest.push((k, v)),
            }
        }
        let offer = offer
            .ok_or("scenario error: an index_response result needs `offer` or `standing_offer`")?;
        let mut r = index_result(offer, &me);
        if let Value::Map(m) = &mut r {
            for (k, v) in rest {
                match m.iter().position(|(mk, _)| *mk == k) {
                    Some(i) => m[i].1 = v,
                    None => m.push((k, v)),
                }
            }
        }
        results.push(r);
    }
    let mut body = template.clone();
    super::values::set(&mut body, "results", Value::Array(results));
    Ok(body)
}

/// Whether `sig` (an `mtp-signature` map) verifies over `input` under one of `keys`.
fn signature_verifies(
    sig: &Value,
    input: &[u8],
    keys: &[(String, SignatureAlgorithm, Vec<u8>)],
) -> bool {
    let Some(value) = sig.get("value").and_then(Value::as_bytes) else {
        return false;
    };
    let key_id = sig.get("key_id").and_then(Value::as_text);
    keys.iter()
        .filter(|(k, _, _)| key_id.is_none_or(|id| id == k))
        .any(|(_, alg, pk)| {
            PublicKey::from_bytes(*alg, pk).is_ok_and(|k| k.verify(input, value).is_ok())
        })
}

fn violation(requirement: &'static str, expected: &str, observed: String) -> Violation {
    Violation {
        requirement,
        expected: expected.to_owned(),
        observed,
    }
}

/// G-50: `lemay.ext.<name>` with `[a-z0-9_.-]`.
fn extension_id_ok(id: &str) -> bool {
    id.strip_prefix("lemay.ext.").is_some_and(|n| {
        !n.is_empty()
            && n.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
            })
    })
}

/// Semantic version `MAJOR.MINOR.PATCH` (pre-release / build suffix allowed).
fn semver_ok(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// What the harness, as an index, checks of an object the IUT publishes to it on
/// `grpc:Index/Publish` (issue B-2): a Capability Manifest carries its publisher's signature
/// and it verifies under an assertion key of the IUT's DID Document (SPEC-III-B-1-03;
/// PROFILE G-30), and its `extensions` entries name an Extension Identifier and a semver
/// version (SPEC-XI-09; PROFILE G-50).
pub fn check_published(
    channel: &str,
    frame_type: &str,
    body: &Value,
    iut: &IutIdentity,
) -> Result<(), Violation> {
    if !channel.starts_with("grpc:Index/Publish") || frame_type != "manifest" {
        return Ok(());
    }
    let expected =
        "a Capability Manifest signed by the publishing Agent (its agent_id's assertion key)";
    let Some(sig) = body.get("signature") else {
        return Err(violation(
            "SPEC-III-B-1-03",
            expected,
            "no signature".into(),
        ));
    };
    let agent = body
        .get("agent_id")
        .and_then(Value::as_text)
        .unwrap_or_default();
    if agent != iut.did {
        return Err(violation(
            "SPEC-III-B-1-03",
            expected,
            format!("agent_id {agent:?} is not the IUT {}", iut.did),
        ));
    }
    let input = cbor::to_vec(&without(body, &["signature"])).unwrap_or_default();
    if !signature_verifies(sig, &input, &iut.assertion_keys) {
        return Err(violation(
            "SPEC-III-B-1-03",
            expected,
            "the signature does not verify under the IUT's assertion keys".into(),
        ));
    }
    if let Some(ext) = body.get("extensions") {
        let Value::Array(items) = ext else {
            return Err(violation(
                "SPEC-XI-09",
                "extensions: [{id, version}]",
                "extensions is not an array".into(),
            ));
        };
        for e in items {
            let id = e.get("id").and_then(Value::as_text).unwrap_or_default();
            let version = e
                .get("version")
                .and_then(Value::as_text)
                .unwrap_or_default();
            if !extension_id_ok(id) || !semver_ok(version) {
                return Err(violation(
                    "SPEC-XI-09",
                    "every declared extension with its Extension Identifier (lemay.ext.<name>) and semver version (PROFILE G-50)",
                    format!("entry id {id:?} version {version:?}"),
                ));
            }
        }
    }
    Ok(())
}

/// `(id, version)` of a `required_extensions` / `extensions` entry.
fn extension_ref(v: &Value) -> (String, String) {
    (
        v.get("id")
            .and_then(Value::as_text)
            .unwrap_or_default()
            .to_owned(),
        v.get("version")
            .and_then(Value::as_text)
            .unwrap_or_default()
            .to_owned(),
    )
}

/// Whether `supported` (declared `id` + version, or an ICS `id` / `id@version` string)
/// satisfies `required`: same id and major version, not older (PROFILE G-50).
fn extension_supported(required: &(String, String), supported: &[(String, String)]) -> bool {
    let core = |v: &str| -> Option<(u64, u64, u64)> {
        let c = v.split(['-', '+']).next()?;
        let mut it = c.split('.').map(|p| p.parse::<u64>().ok());
        Some((it.next()??, it.next()??, it.next()??))
    };
    supported.iter().any(|(id, v)| {
        id == &required.0
            && (v.is_empty()
                || match (core(&required.1), core(v)) {
                    (Some(r), Some(s)) => r.0 == s.0 && s >= r,
                    _ => false,
                })
    })
}

/// Judges the result of the IUT's `query_index` against what the harness indexes answered
/// during the call (docs/iut-contract.md: the result is what the IUT matched):
///
/// - no `offer_id` twice (merge = union de-duplicated by `offer_id`; SPEC-III-B-2-03,
///   PROFILE G-31);
/// - no Offer the harness answered unsigned (SPEC-II-A-05) or with a signature that does not
///   verify under its persona's key (SPEC-II-A-06);
/// - no Offer requiring an extension the IUT declares neither in its manifests nor in its ICS
///   (SPEC-XI-10; PROFILE G-50);
/// - when two or more harness indexes answered a query without constraints: every validly
///   signed Offer within the queried Value Type and requiring nothing unsupported is kept
///   (SPEC-III-B-2-03).
pub fn judge_query_result(
    answers: &[(String, Value)],
    args: &Value,
    result: &Value,
    personas: &HashMap<String, PersonaInfo>,
    supported: &[(String, String)],
) -> Result<(), Violation> {
    let returned: Vec<Value> = match result.get("results") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| match i {
                Value::Bytes(b) => cbor::from_slice(b).ok(),
                Value::Map(_) => Some(i.clone()),
                _ => None,
            })
            .filter_map(|r| r.get("offer").cloned())
            .collect(),
        _ => Vec::new(),
    };
    let id_of = |o: &Value| {
        o.get("offer_id")
            .and_then(Value::as_bytes)
            .map(<[u8]>::to_vec)
    };
    let mut seen: Vec<Vec<u8>> = Vec::new();
    for o in &returned {
        if let Some(id) = id_of(o) {
            if seen.contains(&id) {
                return Err(violation(
                    "SPEC-III-B-2-03",
                    "results of several indexes merged: a union de-duplicated by offer_id (PROFILE G-31)",
                    format!("offer_id {} returned twice", hex::encode(&id)),
                ));
            }
            seen.push(id);
        }
    }
    let query = args.get("query");
    let scope = query
        .and_then(|q| q.get("value_type"))
        .and_then(Value::as_text)
        .and_then(|t| Classifier::parse(t).ok());
    let unconstrained =
        query.is_some_and(|q| q.get("constraints").is_none() && q.get("counterparty").is_none());
    let answering: std::collections::BTreeSet<&str> =
        answers.iter().map(|(d, _)| d.as_str()).collect();
    // Every answered Offer with the bytes it had (an offer_id bound to two different
    // objects is dropped by the merge: PROFILE G-31).
    let mut answered: Vec<(Vec<u8>, Value, bool)> = Vec::new();
    for (_, body) in answers {
        let Some(Value::Array(items)) = body.get("results") else {
            continue;
        };
        for item in items {
            let Some(o) = item.get("offer") else { continue };
            let Some(id) = id_of(o) else { continue };
            match answered.iter_mut().find(|(i, _, _)| *i == id) {
                Some(entry) if entry.1 != *o => entry.2 = true,
                Some(_) => {}
                None => answered.push((id, o.clone(), false)),
            }
        }
    }
    for (id, o, conflicting) in &answered {
        let present = seen.contains(id);
        let agent = o
            .get("agent_id")
            .and_then(Value::as_text)
            .unwrap_or_default();
        let keys = personas
            .get(agent)
            .map(|p| IutIdentity::from_document(agent, &p.document_json).assertion_keys)
            .filter(|k| !k.is_empty());
        let input = cbor::to_vec(&without(o, &["signature"])).unwrap_or_default();
        let shown = hex::encode(id);
        let refused = match (o.get("signature"), &keys) {
            (None, _) => Some((
                "SPEC-II-A-05",
                "an unsigned Offer from an index is never matched",
            )),
            (Some(sig), Some(k)) if !signature_verifies(sig, &input, k) => Some((
                "SPEC-II-A-06",
                "an Offer whose signature fails verification is rejected",
            )),
            _ => None,
        };
        if let Some((req, expected)) = refused {
            if present {
                return Err(violation(
                    req,
                    expected,
                    format!("offer {shown} is in the IUT's query result"),
                ));
            }
            continue;
        }
        let required: Vec<(String, String)> = match o.get("required_extensions") {
            Some(Value::Array(r)) => r.iter().map(extension_ref).collect(),
            _ => Vec::new(),
        };
        if let Some(missing) = required.iter().find(|r| !extension_supported(r, supported)) {
            if present {
                return Err(violation(
                    "SPEC-XI-10",
                    "an Offer requiring an extension the Agent does not support is declined at Discovery (PROFILE G-50)",
                    format!(
                        "offer {shown} requiring {}@{} is in the IUT's query result (declared: {supported:?})",
                        missing.0, missing.1
                    ),
                ));
            }
            continue;
        }
        let wanted = !conflicting
            && keys.is_some()
            && unconstrained
            && answering.len() >= 2
            && scope.as_ref().is_some_and(|s| offer_within(o, s));
        if wanted && !present {
            return Err(violation(
                "SPEC-III-B-2-03",
                "the answers of every queried index merged (union by offer_id)",
                format!(
                    "offer {shown} answered by a harness index is missing from the IUT's query result"
                ),
            ));
        }
    }
    Ok(())
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
    let handler = Arc::new(HarnessAgent { shared, me });
    let svc = agent_server::AgentServer::from_arc(handler.clone())
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let index = index_server::IndexServer::from_arc(handler)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let router = tonic::transport::Server::builder()
        .timeout(DROP_HOLD + Duration::from_secs(5))
        .add_service(svc)
        .add_service(index);
    let options = ServerOptions {
        events: sink,
        ..ServerOptions::default()
    };
    SyncServer::serve(listener, tls, pins, options, router)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mtp_protocol::identity::Did;

    type Keys = Vec<(String, SignatureAlgorithm, Vec<u8>)>;

    fn key(seed: u8) -> (SigningKey, String, Keys) {
        let k = SigningKey::from_seed(SignatureAlgorithm::MlDsa65, &[seed; 32]);
        let did = Did::from_digest(mtp_protocol::crypto::sha256(k.public_key().as_bytes()))
            .as_str()
            .to_owned();
        let keys = vec![(
            format!("{did}#key-1"),
            SignatureAlgorithm::MlDsa65,
            k.public_key().as_bytes().to_vec(),
        )];
        (k, did, keys)
    }

    fn signed(k: &SigningKey, kid: &str, mut body: Value) -> Value {
        let input = cbor::to_vec(&without(&body, &["signature"])).expect("cbor");
        super::super::values::set(
            &mut body,
            "signature",
            Value::map([
                ("algorithm", Value::text("ML-DSA-65")),
                ("key_id", Value::text(kid)),
                ("value", Value::bytes(k.sign(&input))),
            ]),
        );
        body
    }

    #[test]
    fn index_channels_name_the_persona() {
        assert_eq!(index_channel_of("Publish", None), "grpc:Index/Publish");
        assert_eq!(
            index_channel_of("Publish", Some("counterparty")),
            "grpc:Index/Publish"
        );
        assert_eq!(
            index_channel_of("Query", Some("index2")),
            "grpc:Index/Query@index2"
        );
        assert!(extension_id_ok("lemay.ext.data_access-2"));
        assert!(!extension_id_ok("acme.ext.x") && !extension_id_ok("lemay.ext.X"));
        assert!(semver_ok("1.2.3") && semver_ok("1.0.0-rc.1") && !semver_ok("1.2"));
    }

    #[test]
    fn published_manifests_must_be_signed_by_the_iut() {
        let (k, did, keys) = key(7);
        let iut = IutIdentity {
            did: did.clone(),
            assertion_keys: keys.clone(),
        };
        let body = Value::map([
            ("agent_id", Value::text(&did)),
            (
                "extensions",
                Value::Array(vec![Value::map([
                    ("id", Value::text("lemay.ext.demo")),
                    ("version", Value::text("1.0.0")),
                ])]),
            ),
        ]);
        let ok = signed(&k, &keys[0].0, body.clone());
        let ch = "grpc:Index/Publish@lemay";
        assert!(check_published(ch, "manifest", &ok, &iut).is_ok());
        let v = check_published(ch, "manifest", &body, &iut).expect_err("unsigned");
        assert_eq!(v.requirement, "SPEC-III-B-1-03");
        let (other, _, okeys) = key(8);
        let forged = signed(&other, &okeys[0].0, body.clone());
        assert!(check_published(ch, "manifest", &forged, &iut).is_err());
        // Not a publication to the harness: not judged here.
        assert!(check_published("grpc:Agent/Notify", "manifest", &body, &iut).is_ok());
        let mut bad = body.clone();
        super::super::values::set(
            &mut bad,
            "extensions",
            Value::Array(vec![Value::map([("id", Value::text("lemay.ext.demo"))])]),
        );
        let bad = signed(&k, &keys[0].0, bad);
        let v = check_published(ch, "manifest", &bad, &iut).expect_err("no version");
        assert_eq!(v.requirement, "SPEC-XI-09");
    }

    #[test]
    fn query_results_are_judged_against_the_answers() {
        let (k, did, keys) = key(9);
        let doc_keys = keys.clone();
        let offer = |n: u8, extra: Option<(&str, Value)>| {
            let mut o = Value::map([
                ("offer_id", Value::bytes(vec![n; 32])),
                ("agent_id", Value::text(&did)),
                ("value_type", Value::text("inference.text")),
            ]);
            if let Some((key, v)) = extra {
                super::super::values::set(&mut o, key, v);
            }
            signed(&k, &doc_keys[0].0, o)
        };
        // Personas are looked up by DID; the document is only needed for the keys, so the
        // check falls back to "unknown agent" (no completeness demand) without one.
        let personas: HashMap<String, PersonaInfo> = HashMap::new();
        let a = offer(1, None);
        let unsigned = without(&offer(2, None), &["signature"]);
        let ext = offer(
            3,
            Some((
                "required_extensions",
                Value::Array(vec![Value::map([
                    ("id", Value::text("lemay.ext.nope")),
                    ("version", Value::text("1.0.0")),
                ])]),
            )),
        );
        let answer = |offers: Vec<Value>| {
            Value::map([(
                "results",
                Value::Array(
                    offers
                        .into_iter()
                        .map(|o| Value::map([("offer", o)]))
                        .collect(),
                ),
            )])
        };
        let answers = vec![
            (
                "did:mtp:a".to_owned(),
                answer(vec![a.clone(), unsigned.clone()]),
            ),
            ("did:mtp:b".to_owned(), answer(vec![a.clone(), ext.clone()])),
        ];
        let args = Value::map([(
            "query",
            Value::map([("value_type", Value::text("inference"))]),
        )]);
        let result = |offers: Vec<&Value>| {
            Value::map([(
                "results",
                Value::Array(
                    offers
                        .into_iter()
                        .map(|o| {
                            Value::Bytes(
                                cbor::to_vec(&Value::map([("offer", o.clone())])).expect("cbor"),
                            )
                        })
                        .collect(),
                ),
            )])
        };
        let judge = |r: &Value, supported: &[(String, String)]| {
            judge_query_result(&answers, &args, r, &personas, supported)
        };
        assert!(judge(&result(vec![&a]), &[]).is_ok());
        assert_eq!(
            judge(&result(vec![&a, &a]), &[])
                .expect_err("dup")
                .requirement,
            "SPEC-III-B-2-03"
        );
        assert_eq!(
            judge(&result(vec![&a, &unsigned]), &[])
                .expect_err("unsigned")
                .requirement,
            "SPEC-II-A-05"
        );
        assert_eq!(
            judge(&result(vec![&a, &ext]), &[])
                .expect_err("ext")
                .requirement,
            "SPEC-XI-10"
        );
        let declared = [("lemay.ext.nope".to_owned(), "1.2.0".to_owned())];
        assert!(judge(&result(vec![&a, &ext]), &declared).is_ok());
        let _ = keys;
    }

    #[test]
    fn a_merge_that_loses_an_offer_fails() {
        let ep = super::super::persona::Endpoints {
            sync_port: 9,
            nats: None,
        };
        let mut personas = HashMap::new();
        let mut offers = Vec::new();
        for (i, name) in ["counterparty", "index2"].into_iter().enumerate() {
            let p = super::super::persona::Persona::derive(1, name, &ep).expect("persona");
            let o = Value::map([
                ("offer_id", Value::bytes(vec![i as u8 + 1; 32])),
                ("agent_id", Value::text(&p.did)),
                ("value_type", Value::text("inference.text")),
            ]);
            offers.push(signed(&p.signing, &p.key_id, o));
            personas.insert(
                p.did.clone(),
                PersonaInfo {
                    name: name.into(),
                    document_json: p.document_json.clone(),
                    standing_offer: None,
                },
            );
        }
        let answers: Vec<(String, Value)> = offers
            .iter()
            .enumerate()
            .map(|(i, o)| {
                (
                    format!("did:mtp:index{i}"),
                    Value::map([(
                        "results",
                        Value::Array(vec![Value::map([("offer", o.clone())])]),
                    )]),
                )
            })
            .collect();
        let args = Value::map([(
            "query",
            Value::map([("value_type", Value::text("inference"))]),
        )]);
        let result = |kept: &[&Value]| {
            Value::map([(
                "results",
                Value::Array(
                    kept.iter()
                        .map(|o| Value::map([("offer", (*o).clone())]))
                        .collect(),
                ),
            )])
        };
        let all = result(&[&offers[0], &offers[1]]);
        assert!(judge_query_result(&answers, &args, &all, &personas, &[]).is_ok());
        let lost = result(&[&offers[1]]);
        let v = judge_query_result(&answers, &args, &lost, &personas, &[]).expect_err("lost");
        assert_eq!(v.requirement, "SPEC-III-B-2-03");
        // One index only: completeness is not demanded.
        assert!(judge_query_result(&answers[1..], &args, &lost, &personas, &[]).is_ok());
    }
}
