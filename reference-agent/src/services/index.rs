//! The discovery `Index` gRPC service (SPEC III-B-2; PROFILE G-09, G-31): Query, Publish,
//! Revoke over MTPSync.
//!
//! - `Publish` accepts manifests, Offers and Requests. A manifest whose signature fails is
//!   refused with 2100 and never indexed or returned (SPEC-III-B-1-04); an unsigned or
//!   wrongly signed Offer with 2101 (SPEC II-A); a revoked Offer id with 2102; a Request
//!   must be signed by its agent (1100) and carry a valid Authority Attestation (the chain,
//!   SPEC II-B). Only the highest manifest `revision` per agent is kept (PROFILE G-30).
//! - `Query` is the standard query interface (SPEC-III-B-2-04; PROFILE G-31): the Offers
//!   matching the query (`discovery::matches`), each with its agent's manifest, newest
//!   first, stale manifests last (SPEC-III-B-1-06), paged by `limit` / `cursor`; a manifest
//!   approaching staleness is a 2300 warning.
//! - `Revoke` removes the Offer at once (within one propagation cycle, SPEC-III-B-3-02)
//!   when the notice is signed by the offering agent; the id stays refused.
//!
//! The same ingestion serves the NATS discovery subjects (`layers::discovery::on_nats_message`).
//! Register with `Server::builder().add_service(services::index::index_server(agent))`.

use std::collections::BTreeMap;

use mtp_protocol::cbor::Value;
use mtp_protocol::discovery::{
    self as disc, CapabilityManifest, ExtensionRef, Freshness, IndexQuery, IndexQueryResponse,
    IndexResult, OfferRevocation,
};
use mtp_protocol::errors::ErrorCode;
use mtp_protocol::primitives::common::{Number, PriceSpec, PriceUnit};
use mtp_protocol::primitives::offer::Description;
use mtp_protocol::primitives::request::{AuthorityAttestation, AuthorityProof, Constraints};
use mtp_protocol::primitives::{CborObject, Offer, Request as MtpRequest};
use mtp_protocol::time::Timestamp;
use mtp_protocol::uuid::{MtpUuid, ObjectType};
use mtp_protocol::wire::Frame;
use tonic::{Request, Response, Status};

use crate::agent::Agent;
use crate::layers::discovery::{self, DiscoveryError, peer_of};
use crate::layers::identity::{self, Verifier, audit_message, refuse};
use crate::transport::sync::framing::{self, Ack, ErrorContext, Rpc};
use crate::transport::sync::pb;
use crate::transport::sync::pb::index_server::{Index, IndexServer};

/// Results per page when the query gives no `limit`.
pub const DEFAULT_LIMIT: u64 = 100;

/// What an index holds.
#[derive(Debug, Default)]
pub struct IndexStore {
    /// The highest-revision manifest per agent DID (PROFILE G-30).
    manifests: BTreeMap<String, CapabilityManifest>,
    offers: BTreeMap<[u8; 32], Offer>,
    requests: BTreeMap<[u8; 32], MtpRequest>,
    /// Revoked Offer ids and when the notice arrived.
    revoked: BTreeMap<[u8; 32], Timestamp>,
    /// Staleness threshold in seconds (0 = `profile::MANIFEST_STALENESS_S`).
    pub staleness_threshold_s: u64,
}

impl IndexStore {
    pub fn offer(&self, id: &MtpUuid) -> Option<Offer> {
        self.offers.get(id.as_bytes()).cloned()
    }

    pub fn is_revoked(&self, id: &MtpUuid) -> bool {
        self.revoked.contains_key(id.as_bytes())
    }

    pub fn manifest_of(&self, did: &str) -> Option<CapabilityManifest> {
        self.manifests.get(did).cloned()
    }

    pub fn request(&self, id: &MtpUuid) -> Option<MtpRequest> {
        self.requests.get(id.as_bytes()).cloned()
    }

    pub fn offer_count(&self) -> usize {
        self.offers.len()
    }

    fn threshold(&self) -> u64 {
        if self.staleness_threshold_s == 0 {
            mtp_protocol::profile::MANIFEST_STALENESS_S
        } else {
            self.staleness_threshold_s
        }
    }
}

/// The service object registered with tonic.
#[derive(Clone)]
pub struct IndexService {
    pub agent: Agent,
}

impl IndexService {
    pub fn new(agent: Agent) -> IndexService {
        IndexService { agent }
    }

    pub fn into_server(self) -> IndexServer<IndexService> {
        IndexServer::new(self)
    }
}

/// The `Index` service of `agent`, for `Server::builder().add_service(..)` when
/// `config.serve_index` is set.
pub fn index_server(agent: Agent) -> IndexServer<IndexService> {
    IndexService::new(agent).into_server()
}

fn object_err(
    what: &'static str,
) -> impl Fn(mtp_protocol::primitives::ObjectError) -> DiscoveryError {
    move |source| DiscoveryError::Object {
        what,
        source: Box::new(source),
    }
}

/// A syntactically valid stand-in signature (for the `index-accepts-unsigned-offer` defect).
fn placeholder_signature() -> Value {
    Value::map([
        ("algorithm", Value::text("ML-DSA-65")),
        ("value", Value::Bytes(vec![0])),
    ])
}

fn bytes_of<T: CborObject>(o: &T) -> Result<Vec<u8>, DiscoveryError> {
    o.try_to_cbor()
        .map_err(|e| DiscoveryError::Invalid(e.to_string()))
}

/// Ingests a published object or a revocation notice (gRPC `Publish` / `Revoke` and the
/// NATS discovery subjects).
pub async fn ingest(
    agent: &Agent,
    frame: &Frame,
    peer: Option<&str>,
) -> Result<(), DiscoveryError> {
    let _ = peer;
    let r = match frame.frame_type.as_str() {
        "manifest" => ingest_manifest(agent, &frame.body).await,
        "offer" => ingest_offer(agent, &frame.body).await,
        "request" => ingest_request(agent, &frame.body).await,
        "offer_revocation" => ingest_revocation(agent, &frame.body).await,
        other => Err(DiscoveryError::Invalid(format!(
            "frame type {other:?} is not a discovery object"
        ))),
    };
    match r {
        Err(DiscoveryError::Object { .. }) if agent.fault("index-acks-unparseable") => Ok(()),
        // Defect: an extension is taken to redefine the mandatory fields (SPEC-XI-04).
        Err(DiscoveryError::Object { .. })
            if agent.fault("extension-relaxes-mandatory-fields")
                && frame.body.get("required_extensions").is_some() =>
        {
            Ok(())
        }
        other => other,
    }
}

async fn ingest_manifest(agent: &Agent, body: &Value) -> Result<(), DiscoveryError> {
    if body.get("signature").is_none() {
        return Err(DiscoveryError::ManifestSignature(
            "unsigned manifest".into(),
        ));
    }
    let m = CapabilityManifest::from_value(body).map_err(object_err("manifest"))?;
    discovery::verify_manifest(agent, &m).await?;
    agent.reserve_uuid(m.manifest_id, &bytes_of(&m)?)?;
    let now = agent.now();
    let fresh = disc::staleness(&m, now, agent.discovery.index().threshold());
    if let Some(code) = fresh.warning() {
        agent.warn(
            None,
            code,
            format!(
                "manifest {} of {} approaches staleness",
                m.manifest_id, m.agent_id
            ),
        );
    }
    let mut idx = agent.discovery.index();
    let newer = idx
        .manifests
        .get(m.agent_id.as_str())
        .is_none_or(|old| m.revision > old.revision);
    if newer {
        idx.manifests.insert(m.agent_id.to_string(), m);
    } else {
        tracing::info!(agent = %m.agent_id, revision = m.revision, "manifest revision not newer: kept the indexed one");
    }
    Ok(())
}

async fn ingest_offer(agent: &Agent, body: &Value) -> Result<(), DiscoveryError> {
    let unsigned = body.get("signature").is_none();
    if unsigned && !agent.fault("index-accepts-unsigned-offer") {
        return Err(DiscoveryError::OfferSignature("unsigned offer".into()));
    }
    let offer = if unsigned {
        let mut signed = body.clone();
        if let Value::Map(entries) = &mut signed {
            entries.push((Value::text("signature"), placeholder_signature()));
        }
        let mut o = Offer::from_value(&signed).map_err(object_err("offer"))?;
        o.signature = None;
        o
    } else {
        Offer::from_value(body).map_err(object_err("offer"))?
    };
    if agent.discovery.index().is_revoked(&offer.offer_id) {
        return Err(DiscoveryError::Revoked(offer.offer_id));
    }
    if !unsigned {
        discovery::verify_offer(agent, &offer).await?;
    }
    if !agent.fault("index-rebinds-offer-id") {
        agent.reserve_uuid(offer.offer_id, &bytes_of(&offer)?)?;
    }
    agent
        .discovery
        .index()
        .offers
        .insert(*offer.offer_id.as_bytes(), offer);
    Ok(())
}

async fn ingest_request(agent: &Agent, body: &Value) -> Result<(), DiscoveryError> {
    let r = MtpRequest::from_value(body).map_err(object_err("request"))?;
    if agent.fault("index-rejects-request-fallbacks") && r.fallback_preferences.is_some() {
        return Err(DiscoveryError::Invalid(
            "fallback_preferences not supported".into(),
        ));
    }
    discovery::verify_request_signature(agent, &r).await?;
    // A Request without a valid Authority Attestation is not processed (SPEC II-B).
    if !agent.fault("index-skips-request-attestation") {
        identity::request_authority(agent, &r, None, Verifier::Chain).await?;
    }
    agent.reserve_uuid(r.request_id, &bytes_of(&r)?)?;
    agent
        .discovery
        .index()
        .requests
        .insert(*r.request_id.as_bytes(), r);
    Ok(())
}

async fn ingest_revocation(agent: &Agent, body: &Value) -> Result<(), DiscoveryError> {
    let n = OfferRevocation::from_value(body).map_err(object_err("offer-revocation"))?;
    discovery::verify_revocation(agent, &n).await?;
    if agent.fault("index-ignores-revocation") {
        return Ok(());
    }
    {
        let mut idx = agent.discovery.index();
        if let Some(o) = idx.offers.get(n.offer_id.as_bytes())
            && !n.applies_to(o)
        {
            return Err(DiscoveryError::Signature(format!(
                "revocation of {} not signed by the offering agent",
                n.offer_id
            )));
        }
        idx.offers.remove(n.offer_id.as_bytes());
        idx.revoked.insert(*n.offer_id.as_bytes(), agent.now());
    }
    // Local deals of this agent on the Offer fail too.
    discovery::fail_deals_on_revoked_offer(agent, &n.offer_id, false).await;
    Ok(())
}

/// The query interface (SPEC-III-B-2-04; PROFILE G-31).
pub fn query(agent: &Agent, q: &IndexQuery) -> Result<IndexQueryResponse, DiscoveryError> {
    let given = if agent.fault("index-ignores-constraints") {
        None
    } else {
        q.constraints.as_ref()
    };
    let mut constraints = match given {
        None => Constraints::default(),
        Some(c) => Constraints::from_value(&Value::Map(c.clone()), "constraints").map_err(|e| {
            DiscoveryError::Invalid(format!(
                "constraints: {}",
                e.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
        })?,
    };
    if agent.fault("absent-budget-is-zero") && constraints.budget_ceiling.is_none() {
        constraints.budget_ceiling = Some(PriceSpec::new(
            Number::Int(0),
            PriceUnit::parse("USD").map_err(DiscoveryError::Invalid)?,
        ));
    }
    let probe = MtpRequest {
        request_id: MtpUuid::new(ObjectType::Request, 0, [0; 6], [0; 17]),
        agent_id: agent.keys.did.clone(),
        value_type: q.value_type.clone(),
        description: Description::new(""),
        constraints,
        authority_attestation: AuthorityAttestation {
            principal_did: agent.keys.did.to_any(),
            scope: Vec::new(),
            max_tx_value: PriceSpec::new(
                Number::Int(0),
                PriceUnit::parse("USD").map_err(DiscoveryError::Invalid)?,
            ),
            delegation_chain: Vec::new(),
            proof: AuthorityProof::VcPresentation {
                presentation: String::new(),
                unknown: Vec::new(),
            },
            unknown: Vec::new(),
        },
        fallback_preferences: None,
        signature: None,
        unknown: q
            .unknown
            .iter()
            .filter(|(k, _)| k.as_text() == Some("required_extensions"))
            .cloned()
            .collect(),
    };
    let declared: Option<Vec<ExtensionRef>> = q
        .unknown
        .iter()
        .find(|(k, _)| k.as_text() == Some("supported_extensions"))
        .and_then(|(_, v)| v.as_array())
        .map(|items| {
            items
                .iter()
                .filter_map(|i| {
                    ExtensionRef::from_value(i, "supported_extensions", "SPEC-XI-09").ok()
                })
                .collect()
        });
    let counterparty = if agent.fault("index-ignores-counterparty") {
        None
    } else {
        q.counterparty.as_ref()
    };
    let case_sensitive = agent.fault("case-sensitive-value-type");
    let wanted_agents: Option<Vec<String>> = counterparty.and_then(|c| {
        c.iter()
            .find(|(k, _)| k.as_text() == Some("agent_id"))
            .map(|(_, v)| match v {
                Value::Text(t) => vec![t.clone()],
                Value::Array(a) => a
                    .iter()
                    .filter_map(Value::as_text)
                    .map(str::to_owned)
                    .collect(),
                _ => Vec::new(),
            })
    });
    let drop_signature = agent.fault("index-result-drops-signature");
    let now = agent.now();
    let idx = agent.discovery.index();
    let threshold = idx.threshold();
    let mut hits: Vec<(bool, IndexResult)> = Vec::new();
    let mut warned: Vec<String> = Vec::new();
    for offer in idx.offers.values() {
        if idx.revoked.contains_key(offer.offer_id.as_bytes()) {
            continue;
        }
        if let Some(w) = &wanted_agents
            && !w.iter().any(|a| a == offer.agent_id.as_str())
        {
            continue;
        }
        // Offers are returned with their agent's manifest (SPEC-III-B-1-01).
        let Some(m) = idx.manifests.get(offer.agent_id.as_str()) else {
            continue;
        };
        let supported = match &declared {
            Some(d) => d.clone(),
            // Undeclared: the querying agent declines what it does not support itself.
            None => disc::required_extensions(&offer.unknown)
                .and_then(Result::ok)
                .unwrap_or_default(),
        };
        if disc::matches(offer, &probe, now, &supported).is_err() {
            continue;
        }
        if case_sensitive && !offer.value_type.as_str().starts_with(q.value_type.as_str()) {
            continue;
        }
        let freshness = disc::staleness(m, now, threshold);
        if freshness == Freshness::ApproachingStale && !warned.contains(&m.agent_id.to_string()) {
            warned.push(m.agent_id.to_string());
        }
        hits.push((
            freshness == Freshness::Stale,
            IndexResult {
                offer: if drop_signature {
                    Offer {
                        signature: None,
                        ..offer.clone()
                    }
                } else {
                    offer.clone()
                },
                manifest_id: m.manifest_id,
                freshness: m.freshness,
                unknown: Vec::new(),
            },
        ));
    }
    drop(idx);
    for a in warned {
        agent.warn(
            None,
            ErrorCode::ManifestApproachingStaleness,
            format!("manifest of {a} approaches the staleness threshold"),
        );
    }
    // Newest first, stale last (SPEC-III-B-1-06; PROFILE G-31).
    let oldest_first = agent.fault("index-ranks-oldest-first");
    hits.sort_by(|(sa, a), (sb, b)| {
        if oldest_first {
            return a.freshness.cmp(&b.freshness);
        }
        sa.cmp(sb)
            .then(b.freshness.cmp(&a.freshness))
            .then(a.offer.offer_id.as_bytes().cmp(b.offer.offer_id.as_bytes()))
    });
    let start = match &q.cursor {
        None => 0usize,
        Some(c) => {
            let b = <[u8; 8]>::try_from(c.as_slice())
                .map_err(|_| DiscoveryError::Invalid("cursor is not one of this index's".into()))?;
            usize::try_from(u64::from_be_bytes(b)).unwrap_or(usize::MAX)
        }
    };
    let limit = usize::try_from(q.limit.unwrap_or(DEFAULT_LIMIT)).unwrap_or(usize::MAX);
    let total = hits.len();
    let results: Vec<IndexResult> = hits
        .into_iter()
        .skip(start)
        .take(limit)
        .map(|(_, r)| r)
        .collect();
    let end = start.saturating_add(results.len());
    let cursor = (end < total).then(|| (end as u64).to_be_bytes().to_vec());
    Ok(IndexQueryResponse {
        results,
        cursor,
        unknown: Vec::new(),
    })
}

fn ack(frame: &Frame, rpc: Rpc, ctx: &ErrorContext) -> Result<Response<pb::Frame>, Status> {
    let out = Ack::of(frame)
        .to_frame()
        .map_err(|e| framing::status_for(&e, rpc, ctx))?;
    framing::response(&out).map_err(|e| framing::status_for(&e, rpc, ctx))
}

#[tonic::async_trait]
impl Index for IndexService {
    async fn query(&self, req: Request<pb::Frame>) -> Result<Response<pb::Frame>, Status> {
        let agent = &self.agent;
        let ctx = ErrorContext::now(&agent.did());
        let peer = peer_of(&req);
        let rpc = Rpc::IndexQuery;
        let frame = framing::receive(&req, rpc)
            .map_err(|e| refuse(agent, &e, peer.as_deref(), rpc, &ctx))?;
        audit_message(
            agent,
            mtp_protocol::audit::events::MESSAGE_RECEIVED,
            &frame,
            peer.as_deref(),
        );
        let q = IndexQuery::from_value(&frame.body)
            .map_err(object_err("index-query"))
            .map_err(|e| refuse(agent, &e, peer.as_deref(), rpc, &ctx))?;
        let resp = query(agent, &q).map_err(|e| refuse(agent, &e, peer.as_deref(), rpc, &ctx))?;
        let out = Frame::new("index_response", resp.to_value())
            .map_err(|e| framing::status_for(&e, rpc, &ctx))?;
        audit_message(
            agent,
            mtp_protocol::audit::events::MESSAGE_SENT,
            &out,
            peer.as_deref(),
        );
        framing::response(&out).map_err(|e| framing::status_for(&e, rpc, &ctx))
    }

    async fn publish(&self, req: Request<pb::Frame>) -> Result<Response<pb::Frame>, Status> {
        let agent = &self.agent;
        let ctx = ErrorContext::now(&agent.did());
        let peer = peer_of(&req);
        let rpc = Rpc::IndexPublish;
        let frame = framing::receive(&req, rpc)
            .map_err(|e| refuse(agent, &e, peer.as_deref(), rpc, &ctx))?;
        audit_message(
            agent,
            mtp_protocol::audit::events::MESSAGE_RECEIVED,
            &frame,
            peer.as_deref(),
        );
        ingest(agent, &frame, peer.as_deref())
            .await
            .map_err(|e| refuse(agent, &e, peer.as_deref(), rpc, &ctx))?;
        ack(&frame, rpc, &ctx)
    }

    async fn revoke(&self, req: Request<pb::Frame>) -> Result<Response<pb::Frame>, Status> {
        let agent = &self.agent;
        let ctx = ErrorContext::now(&agent.did());
        let peer = peer_of(&req);
        let rpc = Rpc::IndexRevoke;
        let frame = framing::receive(&req, rpc)
            .map_err(|e| refuse(agent, &e, peer.as_deref(), rpc, &ctx))?;
        audit_message(
            agent,
            mtp_protocol::audit::events::MESSAGE_RECEIVED,
            &frame,
            peer.as_deref(),
        );
        ingest(agent, &frame, peer.as_deref())
            .await
            .map_err(|e| refuse(agent, &e, peer.as_deref(), rpc, &ctx))?;
        ack(&frame, rpc, &ctx)
    }
}
