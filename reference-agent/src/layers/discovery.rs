//! Discovery Layer (SPEC III-B): Capability Manifests, Offer/Request publication, the index service, federated query and merge, offer revocation.
//!
//! - Publisher side: Capability Manifests (SPEC-III-B-1-01..05), Offers and Requests are
//!   built from test-control templates (every mandatory field filled, PROFILE G-30, G-43),
//!   signed with the agent's key, bound to their MTP-UUID (SPEC-IX-04) and published to
//!   every index (`Index/Publish`, SPEC-III-B-2-02) and, when MTPAsync is up, on the
//!   discovery subjects sealed to the index peers' KEM keys (PROFILE G-06).
//! - Index targets: an entry of `config.indexes` (or of `indexes` in a control action) is a
//!   DID (`did:mtp:…`, the peer's DID Document known through `add_peer` / `peers`), a DID
//!   Document file, or `grpcs://host:port#sha256:<hex>`; peers given the `index` role by
//!   `add_peer` are indexes too.
//! - Querying: one index, or several merged (union by `offer_id`, PROFILE G-31;
//!   SPEC-III-B-2-03); Offers requiring an extension this agent does not support are
//!   declined with 2103 (SPEC-XI-10).
//! - Revocation (SPEC III-B-3): a signed notice to every index and on
//!   `mtp.revocation.offer.<top>`; local deals on the Offer still in Initiated or
//!   Negotiating fail (`offer_revoked` events, SPEC-III-B-3-03/04) and the counterparties
//!   are notified (`offer_revoked` notification, SPEC-III-B-3-05).
//! - The index itself is `services::index`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use mtp_protocol::cbor::Value;
use mtp_protocol::discovery::{
    self as disc, CapabilityManifest, ExtensionRef, IndexQuery, IndexQueryResponse, IndexResult,
    MatchRefusal, OfferRevocation,
};
use mtp_protocol::error_record::{Notification, NotificationType};
use mtp_protocol::errors::{Coded, ErrorCode, RetryDecision, after_failure};
use mtp_protocol::primitives::common::{
    Map, MapBuilder, ObjectError, PriceSpec, Signature, tdate_value, uuid_value,
};
use mtp_protocol::primitives::request::Constraints;
use mtp_protocol::primitives::{CborObject, Offer, Request as MtpRequest, SingleSigned};
use mtp_protocol::state_machine::{TerminationReason, TxEvent, TxState};
use mtp_protocol::taxonomy::{Category, Classifier, DimensionKind};
use mtp_protocol::time::Timestamp;
use mtp_protocol::uuid::{MtpUuid, ObjectType};
use mtp_protocol::wire::{self, Frame};
use tonic::Status;

use super::identity::{self, AttestationInput, IdentityError, Verifier, audit_message};
use crate::agent::{Agent, AgentError};
use crate::events::{Event, EventKind};
use crate::services::control::{ControlError, ControlResult};
use crate::transport::sync::framing::{self, ErrorContext, FramingError, RemoteError, Rpc};
use crate::transport::sync::pb::index_client::IndexClient;

/// Deliberate defects of this layer and of its index service (`crate::faults`).
pub const FAULTS: &[crate::faults::Fault] = &[
    crate::faults::Fault {
        name: "index-no-retry",
        breaks: "SPEC-VI-02, SPEC-VI-I03",
        description: "an index call failing with 2200 (Recoverable) is escalated at once, without a retry",
    },
    crate::faults::Fault {
        name: "index-retry-beyond-limit",
        breaks: "SPEC-VI-02",
        description: "an index call failing with 2200 is retried up to 10 times instead of RETRY_LIMIT (3)",
    },
    crate::faults::Fault {
        name: "index-retry-without-backoff",
        breaks: "SPEC-VI-02",
        description: "an index call failing with 2200 is retried at once, without the G-08 back-off",
    },
    crate::faults::Fault {
        name: "skip-offer-signature-check",
        breaks: "SPEC-II-A-06",
        description: "accepts an Offer whose signature does not verify",
    },
    crate::faults::Fault {
        name: "offer-signer-not-bound",
        breaks: "SPEC-II-A-06",
        description: "verifies an Offer with the key its signature names, even when that key is not a key of the Offer's agent_id",
    },
    crate::faults::Fault {
        name: "index-accepts-unsigned-offer",
        breaks: "SPEC-II-A-04",
        description: "the index indexes an Offer that carries no signature",
    },
    crate::faults::Fault {
        name: "skip-manifest-signature-check",
        breaks: "SPEC-III-B-1-04",
        description: "the index indexes a Capability Manifest whose signature does not verify",
    },
    crate::faults::Fault {
        name: "index-acks-unparseable",
        breaks: "SPEC-I-B-04 SPEC-III-B-1-02 SPEC-III-B-1-05 SPEC-II-A-01 SPEC-II-B-01 SPEC-V-01 SPEC-V-02",
        description: "the index acknowledges a published object it cannot parse (and silently drops it) instead of refusing it",
    },
    crate::faults::Fault {
        name: "index-rebinds-offer-id",
        breaks: "SPEC-II-A-08",
        description: "the index replaces an indexed Offer by a different one published under the same offer_id",
    },
    crate::faults::Fault {
        name: "index-ignores-revocation",
        breaks: "SPEC-III-B-3-02",
        description: "the index acknowledges a valid revocation notice but keeps serving the Offer",
    },
    crate::faults::Fault {
        name: "match-ignores-revocation",
        breaks: "SPEC-III-B-3-03",
        description: "a revoked Offer is not treated as revoked when a negotiation on it starts",
    },
    crate::faults::Fault {
        name: "revocation-skips-publication-indexes",
        breaks: "SPEC-II-A-10 SPEC-III-B-3-01",
        description: "an Offer revocation goes to the configured indexes only, not to every index the Offer was published to",
    },
    crate::faults::Fault {
        name: "offer-without-manifest",
        breaks: "SPEC-III-B-1-01",
        description: "publishing an Offer does not publish a Capability Manifest listing it",
    },
    crate::faults::Fault {
        name: "index-result-drops-signature",
        breaks: "SPEC-II-A-01 SPEC-II-A-03",
        description: "the index returns Offers without their signature",
    },
    crate::faults::Fault {
        name: "index-skips-request-attestation",
        breaks: "SPEC-II-B-03 SPEC-II-B-05 BIND-VII-B-02",
        description: "the index processes a Request without checking its Authority Attestation",
    },
    crate::faults::Fault {
        name: "request-drops-constraints",
        breaks: "SPEC-II-B-01",
        description: "a Request built from a template leaves the template's constraints out of its Constraints Envelope",
    },
    crate::faults::Fault {
        name: "index-rejects-request-fallbacks",
        breaks: "SPEC-II-B-02",
        description: "the index refuses a Request that carries the optional fallback_preferences",
    },
    crate::faults::Fault {
        name: "case-sensitive-value-type",
        breaks: "BIND-VIII-01",
        description: "the index compares Value Type classifiers as received, without lower-casing them",
    },
    crate::faults::Fault {
        name: "absent-budget-is-zero",
        breaks: "BIND-VII-B-I01",
        description: "a query without budget_ceiling is matched as if the ceiling were 0",
    },
    crate::faults::Fault {
        name: "index-ignores-constraints",
        breaks: "SPEC-III-B-01 SPEC-II-A-02",
        description: "the index ignores the query's constraints (budget, jurisdiction, latency, accuracy)",
    },
    crate::faults::Fault {
        name: "index-ignores-counterparty",
        breaks: "SPEC-III-B-01",
        description: "the index ignores the query's counterparty attributes",
    },
    crate::faults::Fault {
        name: "index-ranks-oldest-first",
        breaks: "SPEC-III-B-1-06",
        description: "the index orders results oldest manifest first and never deprioritizes stale manifests",
    },
    crate::faults::Fault {
        name: "publish-to-one-index",
        breaks: "SPEC-III-B-2-02 SPEC-III-B-2-05",
        description: "manifests and Offers are published to the first configured index only",
    },
    crate::faults::Fault {
        name: "query-first-index-only",
        breaks: "SPEC-III-B-2-03",
        description: "a query over several indexes asks the first one only",
    },
    crate::faults::Fault {
        name: "merge-keeps-duplicates",
        breaks: "SPEC-III-B-2-03",
        description: "merging several indexes' results keeps an Offer once per index instead of de-duplicating by offer_id",
    },
    crate::faults::Fault {
        name: "manifest-unsigned",
        breaks: "SPEC-III-B-1-03",
        description: "Capability Manifests are published without their signature",
    },
    crate::faults::Fault {
        name: "manifest-omits-extensions",
        breaks: "SPEC-XI-09",
        description: "the Capability Manifest leaves the supported extensions out",
    },
    crate::faults::Fault {
        name: "ignore-required-extensions",
        breaks: "SPEC-XI-10",
        description: "Offers requiring an extension this agent does not support are matched anyway",
    },
    crate::faults::Fault {
        name: "modify-offer-in-place",
        breaks: "SPEC-II-A-09",
        description: "modifying an Offer republishes the changed Offer under its old offer_id, without revoking it",
    },
    crate::faults::Fault {
        name: "extension-relaxes-mandatory-fields",
        breaks: "SPEC-XI-04",
        description: "the index acknowledges an Offer that declares a required extension although a mandatory field is missing or malformed",
    },
    crate::faults::Fault {
        name: "extension-weakens-crypto",
        breaks: "SPEC-XI-07",
        description: "an Offer that declares a required extension is accepted without the profile's signature check (any algorithm)",
    },
    crate::faults::Fault {
        name: "match-accepts-unsigned-offer",
        breaks: "SPEC-II-A-05",
        description: "an unsigned Offer returned by an index is kept among the query's matches",
    },
    crate::faults::Fault {
        name: "emits-undeclared-extension-keys",
        breaks: "SPEC-II-03",
        description: "template keys outside the schema and outside every declared extension are put into the signed Offer",
    },
];

/// Test-control actions of this layer (docs/iut-contract.md).
pub const ACTIONS: &[&str] = &[
    "publish_manifest",
    "publish_offer",
    "revoke_offer",
    "modify_offer",
    "create_request",
    "query_index",
];

/// Deadline of one index call.
pub const INDEX_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline of a notification to a counterparty.
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(5);
/// Manifest schema version written by this agent (PROFILE G-30).
pub const MANIFEST_VERSION: &str = "1.0.0";
/// Default validity of an Offer built from a template.
pub const OFFER_VALIDITY_S: i64 = 24 * 3600;

/// This layer's state inside the agent.
#[derive(Debug, Default)]
pub struct State {
    inner: Mutex<Inner>,
    /// What this agent holds as an index (`services::index`).
    pub index: Mutex<crate::services::index::IndexStore>,
}

#[derive(Debug, Default)]
struct Inner {
    /// This agent's latest Capability Manifest.
    manifest: Option<CapabilityManifest>,
    /// Offers and Requests this agent published, by id.
    offers: BTreeMap<[u8; 32], Offer>,
    requests: BTreeMap<[u8; 32], MtpRequest>,
    /// Offers learned from queries and NATS, by id.
    known_offers: BTreeMap<[u8; 32], Offer>,
    /// Indexes each own Offer was published to (its revocation goes there too,
    /// SPEC-III-B-3-01).
    published_to: BTreeMap<[u8; 32], Vec<String>>,
    /// Offers known to be revoked (own or others'), with the revocation time.
    revoked: BTreeMap<[u8; 32], Timestamp>,
    /// DIDs of index targets that are DID Document files, by path.
    file_dids: BTreeMap<String, String>,
    /// Channels to index targets given as `grpcs://` endpoints.
    endpoints: BTreeMap<String, tonic::transport::Channel>,
}

impl State {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn index(&self) -> std::sync::MutexGuard<'_, crate::services::index::IndexStore> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Why a discovery operation failed or a discovery object was refused.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The object is not well formed (its own code, 0103 by default).
    #[error("{what}: {source}")]
    Object {
        what: &'static str,
        source: Box<ObjectError>,
    },
    /// 2100: a manifest whose signature fails is neither indexed nor returned
    /// (SPEC-III-B-1-04).
    #[error("manifest signature invalid: {0}")]
    ManifestSignature(String),
    /// 2101: an unsigned or wrongly signed Offer is not indexed (SPEC II-A).
    #[error("offer signature missing or invalid: {0}")]
    OfferSignature(String),
    /// 1100: a Request, revocation notice or notification not signed by its agent.
    #[error("signature verification failure: {0}")]
    Signature(String),
    /// 2102: the Offer is revoked (SPEC III-B-3).
    #[error("offer {0} is revoked")]
    Revoked(MtpUuid),
    /// 2103: a required extension is not supported (SPEC-XI-10).
    #[error("{0}")]
    Extension(Box<MatchRefusal>),
    #[error("merging index results: {0}")]
    Merge(Box<disc::MergeError>),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Agent(Box<AgentError>),
    #[error(transparent)]
    Framing(Box<FramingError>),
    #[error("wire: {0}")]
    Wire(Box<wire::WireError>),
    /// 2200 (Recoverable): the index could not be reached or is unavailable.
    #[error("index {target} unavailable: {detail}")]
    Unavailable { target: String, detail: String },
    /// 2200 escalated after the retries (PROFILE G-17).
    #[error("index {target} unavailable after {attempts} attempts: {detail}")]
    Escalated {
        target: String,
        attempts: u32,
        detail: String,
    },
    /// The index refused the call with an MTP error.
    #[error("index {target} refused: {error}")]
    Remote {
        target: String,
        error: Box<RemoteError>,
    },
    /// A template that cannot become a valid object, or a bad index name (0103).
    #[error("{0}")]
    Invalid(String),
    #[error("unknown {0}")]
    NotFound(String),
    #[error("NATS: {0}")]
    Nats(String),
    /// 0102: a key outside the schema that no declared extension defines (SPEC-II-03;
    /// PROFILE G-26, G-50).
    #[error("{0}")]
    UndeclaredExtension(String),
}

impl From<disc::MergeError> for DiscoveryError {
    fn from(e: disc::MergeError) -> Self {
        DiscoveryError::Merge(Box::new(e))
    }
}

impl From<AgentError> for DiscoveryError {
    fn from(e: AgentError) -> Self {
        DiscoveryError::Agent(Box::new(e))
    }
}

impl From<FramingError> for DiscoveryError {
    fn from(e: FramingError) -> Self {
        DiscoveryError::Framing(Box::new(e))
    }
}

impl From<wire::WireError> for DiscoveryError {
    fn from(e: wire::WireError) -> Self {
        DiscoveryError::Wire(Box::new(e))
    }
}

impl Coded for DiscoveryError {
    fn code(&self) -> ErrorCode {
        match self {
            DiscoveryError::Object { source, .. } => source.code(),
            DiscoveryError::ManifestSignature(_) => ErrorCode::ManifestSignatureInvalid,
            DiscoveryError::OfferSignature(_) => ErrorCode::OfferSignatureInvalid,
            DiscoveryError::Signature(_) => ErrorCode::SignatureVerificationFailure,
            DiscoveryError::Revoked(_) => ErrorCode::OfferRevoked,
            DiscoveryError::Extension(_) => ErrorCode::RequiredExtensionUnsupported,
            DiscoveryError::Merge(e) => e.code(),
            DiscoveryError::Identity(e) => e.code(),
            DiscoveryError::Agent(e) => e.code(),
            DiscoveryError::Framing(e) => e.code(),
            DiscoveryError::Wire(e) => e.code(),
            DiscoveryError::Unavailable { .. } | DiscoveryError::Escalated { .. } => {
                ErrorCode::IndexUnavailable
            }
            DiscoveryError::Remote { error, .. } => {
                error.error_code().unwrap_or(ErrorCode::IndexUnavailable)
            }
            DiscoveryError::Invalid(_) | DiscoveryError::NotFound(_) => ErrorCode::SchemaViolation,
            DiscoveryError::Nats(_) => ErrorCode::IndexUnavailable,
            DiscoveryError::UndeclaredExtension(_) => ErrorCode::SchemaViolation,
        }
    }

    fn requirement(&self) -> Option<&'static str> {
        match self {
            DiscoveryError::Object { source, .. } => source.requirement(),
            DiscoveryError::ManifestSignature(_) => Some("SPEC-III-B-1-04"),
            DiscoveryError::OfferSignature(_) => Some("SPEC-II-A-03"),
            DiscoveryError::Revoked(_) => Some("SPEC-III-B-3-03"),
            DiscoveryError::Extension(_) => Some("SPEC-XI-10"),
            DiscoveryError::Merge(e) => e.requirement(),
            DiscoveryError::Identity(e) => e.requirement(),
            DiscoveryError::Escalated { .. } => Some("SPEC-VI-02"),
            DiscoveryError::UndeclaredExtension(_) => Some("SPEC-II-03"),
            _ => None,
        }
    }
}

fn object_err(what: &'static str) -> impl Fn(ObjectError) -> DiscoveryError {
    move |source| DiscoveryError::Object {
        what,
        source: Box::new(source),
    }
}

// ---------------------------------------------------------------------------------------
// Lookups shared with the other layers
// ---------------------------------------------------------------------------------------

/// An Offer this agent published, learned from an index or NATS, or holds as an index.
pub fn known_offer(agent: &Agent, offer_id: &MtpUuid) -> Option<Offer> {
    let id = offer_id.as_bytes();
    {
        let g = agent.discovery.lock();
        if let Some(o) = g.offers.get(id).or_else(|| g.known_offers.get(id)) {
            return Some(o.clone());
        }
    }
    agent.discovery.index().offer(offer_id)
}

/// A Request this agent created.
pub fn own_request(agent: &Agent, request_id: &MtpUuid) -> Option<MtpRequest> {
    agent
        .discovery
        .lock()
        .requests
        .get(request_id.as_bytes())
        .cloned()
}

/// Whether the Offer is known to be revoked (SPEC-III-B-3-03: such a match must not proceed
/// to the Negotiation Layer).
pub fn is_offer_revoked(agent: &Agent, offer_id: &MtpUuid) -> bool {
    if agent.fault("match-ignores-revocation") {
        return false;
    }
    agent
        .discovery
        .lock()
        .revoked
        .contains_key(offer_id.as_bytes())
        || agent.discovery.index().is_revoked(offer_id)
}

/// Extensions this agent supports: those declared in its latest manifest (PROFILE G-50).
pub fn supported_extensions(agent: &Agent) -> Vec<ExtensionRef> {
    agent
        .discovery
        .lock()
        .manifest
        .as_ref()
        .and_then(|m| m.extensions.clone())
        .unwrap_or_default()
}

/// Declines an Offer or Request requiring an extension this agent does not support
/// (2103, SPEC-XI-10; PROFILE G-50).
pub fn check_required_extensions(agent: &Agent, unknown: &Map) -> Result<(), DiscoveryError> {
    let supported = supported_extensions(agent);
    match disc::required_extensions(unknown) {
        None => Ok(()),
        Some(Err(_)) => Err(DiscoveryError::Extension(Box::new(
            MatchRefusal::MalformedRequiredExtensions("object"),
        ))),
        Some(Ok(required)) => match required
            .iter()
            .find(|r| !supported.iter().any(|s| r.satisfied_by(s)))
        {
            None => Ok(()),
            Some(missing) => Err(DiscoveryError::Extension(Box::new(
                MatchRefusal::ExtensionUnsupported {
                    id: missing.id.clone(),
                    version: missing.version.clone(),
                },
            ))),
        },
    }
}

/// Keys outside an object's schema are only those of an extension this agent declares: the
/// Extension Identifier itself or `<id>.<key>`, and the G-50 / G-26 markers
/// `required_extensions`, `non_negotiable` (SPEC-II-03; PROFILE G-26, G-50).
pub fn check_extension_keys(agent: &Agent, unknown: &Map) -> Result<(), DiscoveryError> {
    if agent.fault("emits-undeclared-extension-keys") {
        return Ok(());
    }
    let declared = supported_extensions(agent);
    for (k, _) in unknown.iter() {
        let key = k.as_text().unwrap_or_default();
        let allowed = matches!(key, "required_extensions" | "non_negotiable")
            || declared.iter().any(|e| {
                key == e.id
                    || key
                        .strip_prefix(e.id.as_str())
                        .is_some_and(|r| r.starts_with('.'))
            });
        if !allowed {
            return Err(DiscoveryError::UndeclaredExtension(format!(
                "key {key:?} is neither in the schema nor defined by a declared extension (SPEC-II-03)"
            )));
        }
    }
    Ok(())
}

/// Forgets offers, requests, manifests and the index catalogue (test-control `reset`).
pub fn reset(agent: &Agent) {
    {
        let mut g = agent.discovery.lock();
        let file_dids = std::mem::take(&mut g.file_dids);
        *g = Inner {
            file_dids,
            ..Inner::default()
        };
    }
    *agent.discovery.index() = crate::services::index::IndexStore::default();
}

// ---------------------------------------------------------------------------------------
// Index targets
// ---------------------------------------------------------------------------------------

/// How an index is reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexTarget {
    /// A known peer (its DID Document gives the endpoint and pins the certificate).
    Did(String),
    /// `grpcs://host:port` with the pinned certificate fingerprint.
    Endpoint {
        url: String,
        fingerprint: crate::transport::sync::Fingerprint,
    },
}

/// Parses an index name: a DID, `grpcs://host:port#sha256:<hex>`, or a DID Document file
/// (loaded and trusted with `add_peer`).
pub fn index_target(agent: &Agent, name: &str) -> Result<IndexTarget, DiscoveryError> {
    if name.starts_with("did:") {
        return Ok(IndexTarget::Did(name.to_owned()));
    }
    if let Some(rest) = name.strip_prefix("grpcs://") {
        let (addr, fp) = rest.split_once('#').ok_or_else(|| {
            DiscoveryError::Invalid(format!(
                "index {name:?}: grpcs:// targets need #sha256:<fingerprint>"
            ))
        })?;
        let fingerprint = crate::transport::sync::Fingerprint::parse(fp)
            .map_err(|e| DiscoveryError::Invalid(format!("index {name:?}: {e}")))?;
        return Ok(IndexTarget::Endpoint {
            url: format!("grpcs://{addr}"),
            fingerprint,
        });
    }
    if let Some(did) = agent.discovery.lock().file_dids.get(name) {
        return Ok(IndexTarget::Did(did.clone()));
    }
    let text = std::fs::read_to_string(name)
        .map_err(|e| DiscoveryError::Invalid(format!("index {name:?}: {e}")))?;
    let doc = mtp_protocol::identity::DidDocument::from_json(&text)
        .map_err(|e| DiscoveryError::Invalid(format!("index {name:?}: {e}")))?;
    let did = agent.add_peer(doc)?;
    agent
        .discovery
        .lock()
        .file_dids
        .insert(name.to_owned(), did.clone());
    Ok(IndexTarget::Did(did))
}

/// The index names to use: `explicit` when given, else `config.indexes` and the peers
/// with the `index` role.
pub fn index_names(agent: &Agent, explicit: Option<Vec<String>>) -> Vec<String> {
    if let Some(e) = explicit {
        return e;
    }
    let mut out: Vec<String> = agent.config.indexes.clone();
    for d in agent.identity.peers_with_role("index") {
        if !out.contains(&d) {
            out.push(d);
        }
    }
    out
}

/// DIDs of the configured indexes (those named by DID or DID Document file).
pub fn index_dids(agent: &Agent) -> Vec<String> {
    index_names(agent, None)
        .iter()
        .filter_map(|n| match index_target(agent, n) {
            Ok(IndexTarget::Did(d)) => Some(d),
            _ => None,
        })
        .collect()
}

async fn index_client(
    agent: &Agent,
    target: &IndexTarget,
) -> Result<IndexClient<tonic::transport::Channel>, crate::transport::sync::ConnectError> {
    match target {
        IndexTarget::Did(did) => Ok(IndexClient::new(agent.channel(did).await?)),
        IndexTarget::Endpoint { url, fingerprint } => {
            let cached = agent.discovery.lock().endpoints.get(url).cloned();
            let channel = match cached {
                Some(c) => c,
                None => {
                    let c = crate::transport::sync::connect(
                        url,
                        *fingerprint,
                        &agent.tls,
                        &crate::transport::sync::ClientOptions::default(),
                    )
                    .await?;
                    agent
                        .discovery
                        .lock()
                        .endpoints
                        .insert(url.clone(), c.clone());
                    c
                }
            };
            Ok(IndexClient::new(channel))
        }
    }
}

/// One index RPC with retry-then-escalate on unavailability (2200, SPEC-VI-02).
pub async fn index_call(
    agent: &Agent,
    name: &str,
    rpc: Rpc,
    frame: &Frame,
) -> Result<Frame, DiscoveryError> {
    let target = index_target(agent, name)?;
    let peer = match &target {
        IndexTarget::Did(d) => Some(d.as_str()),
        IndexTarget::Endpoint { .. } => None,
    };
    let mut failures = 0u32;
    loop {
        let detail = match index_client(agent, &target).await {
            Err(e) => e.to_string(),
            Ok(mut client) => {
                let req = framing::with_deadline(framing::request(frame)?, INDEX_CALL_TIMEOUT);
                audit_message(
                    agent,
                    mtp_protocol::audit::events::MESSAGE_SENT,
                    frame,
                    peer,
                );
                let call = async {
                    match rpc {
                        Rpc::IndexPublish => client.publish(req).await,
                        Rpc::IndexQuery => client.query(req).await,
                        _ => client.revoke(req).await,
                    }
                };
                match tokio::time::timeout(INDEX_CALL_TIMEOUT, call).await {
                    Err(_) => "timeout".to_owned(),
                    Ok(Ok(resp)) => {
                        let f = framing::receive_response(&resp, rpc)?;
                        audit_message(
                            agent,
                            mtp_protocol::audit::events::MESSAGE_RECEIVED,
                            &f,
                            peer,
                        );
                        return Ok(f);
                    }
                    Ok(Err(status)) => {
                        let error = RemoteError::from_status(&status);
                        let recoverable = status.code() == tonic::Code::Unavailable
                            || status.code() == tonic::Code::DeadlineExceeded
                            || (error.is_transport_failure() && error.code.is_none());
                        if !recoverable {
                            return Err(DiscoveryError::Remote {
                                target: name.to_owned(),
                                error: Box::new(error),
                            });
                        }
                        error.to_string()
                    }
                }
            }
        };
        failures += 1;
        let decision = if agent.fault("index-no-retry") {
            RetryDecision::Escalate
        } else if agent.fault("index-retry-beyond-limit") && failures <= 10 {
            after_failure(ErrorCode::IndexUnavailable, 1)
        } else {
            after_failure(ErrorCode::IndexUnavailable, failures)
        };
        match decision {
            RetryDecision::Retry { backoff_ms, .. } => {
                tracing::info!(index = name, attempt = failures, %detail, "index call retried");
                let backoff_ms = if agent.fault("index-retry-without-backoff") {
                    0
                } else {
                    backoff_ms
                };
                tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
            }
            RetryDecision::Escalate => {
                let err = DiscoveryError::Escalated {
                    target: name.to_owned(),
                    attempts: failures,
                    detail,
                };
                agent.raise(None, &err, peer);
                return Err(err);
            }
        }
    }
}

/// Whether `name` names this agent while it serves an index itself.
fn is_own_index(agent: &Agent, name: &str) -> bool {
    agent.config.serve_index && name == agent.did()
}

/// Publishes `frame` to every index concurrently (SPEC-III-B-2-02); per index `Ok` or the
/// error.
async fn publish_everywhere(
    agent: &Agent,
    names: &[String],
    rpc: Rpc,
    frame: &Frame,
) -> Vec<(String, Result<(), DiscoveryError>)> {
    let names = if rpc == Rpc::IndexPublish && agent.fault("publish-to-one-index") {
        &names[..names.len().min(1)]
    } else {
        names
    };
    let calls = names.iter().map(|n| async move {
        if is_own_index(agent, n) {
            // This agent's own index: ingested directly (SPEC-III-B-2-02).
            return (
                n.clone(),
                crate::services::index::ingest(agent, frame, None).await,
            );
        }
        let r = index_call(agent, n, rpc, frame).await.and_then(|f| {
            let ack = framing::Ack::from_frame(&f)?;
            if ack.ok && ack.reference == frame.hash {
                Ok(())
            } else {
                Err(DiscoveryError::Invalid(format!(
                    "index {n} answered a negative or foreign ack"
                )))
            }
        });
        (n.clone(), r)
    });
    futures::future::join_all(calls).await
}

/// Sealed broadcast on a discovery subject to the KEM keys of the known index peers
/// (PROFILE G-06). `Ok(false)` when there is no connection or no recipient.
async fn nats_broadcast(
    agent: &Agent,
    subject: &str,
    frame_type: &str,
    msg_id: &Value,
    body: &Value,
) -> Result<bool, DiscoveryError> {
    let Some(nats) = agent.nats.get() else {
        return Ok(false);
    };
    let keys: Vec<(String, mtp_protocol::crypto::KemAlgorithm, Vec<u8>)> = index_dids(agent)
        .iter()
        .filter(|d| **d != agent.did())
        .filter_map(|d| agent.peer(d))
        .filter_map(|doc| doc.key_agreement_keys().into_iter().next())
        .collect();
    if keys.is_empty() {
        return Ok(false);
    }
    let recipients: Vec<wire::RecipientKey<'_>> = keys
        .iter()
        .map(|(kid, alg, key)| wire::RecipientKey {
            kid,
            algorithm: *alg,
            encapsulation_key: key,
        })
        .collect();
    let randomness = {
        let mut rng = agent.rng.lock().unwrap_or_else(|p| p.into_inner());
        wire::EnvelopeRandomness::draw(&mut rng, recipients.len())
    };
    let did = agent.did();
    let key_id = identity::own_key_id(agent);
    nats.publish_sealed(
        &crate::transport::nats::SealedMessage {
            subject,
            frame_type,
            msg_id,
            body,
            recipients: &recipients,
        },
        &crate::transport::nats::SenderIdentity {
            did: &did,
            key_id: Some(&key_id),
            signing_key: &agent.keys.signing,
        },
        &randomness,
        None,
    )
    .await
    .map_err(|e| DiscoveryError::Nats(e.to_string()))?;
    Ok(true)
}

// ---------------------------------------------------------------------------------------
// Templates (docs/iut-contract.md rule 2)
// ---------------------------------------------------------------------------------------

/// `overlay` merged into `base`: maps merge key by key (recursively), anything else
/// replaces.
pub fn merge_template(base: Value, overlay: &Value) -> Value {
    match (base, overlay) {
        (Value::Map(mut entries), Value::Map(over)) => {
            for (k, v) in over {
                match entries.iter().position(|(bk, _)| bk == k) {
                    Some(i) => {
                        let old = std::mem::replace(&mut entries[i].1, Value::Null);
                        entries[i].1 = merge_template(old, v);
                    }
                    None => entries.push((k.clone(), v.clone())),
                }
            }
            Value::Map(entries)
        }
        (_, other) => other.clone(),
    }
}

fn set(v: &mut Value, key: &str, value: Value) {
    if let Value::Map(entries) = v {
        match entries.iter().position(|(k, _)| k.as_text() == Some(key)) {
            Some(i) => entries[i].1 = value,
            None => entries.push((Value::text(key), value)),
        }
    }
}

fn remove(v: &mut Value, key: &str) {
    if let Value::Map(entries) = v {
        entries.retain(|(k, _)| k.as_text() != Some(key));
    }
}

/// A placeholder signature so that a template can be parsed before it is signed.
fn placeholder_signature() -> Value {
    Signature {
        algorithm: "ML-DSA-65".into(),
        key_id: None,
        value: vec![0],
        unknown: Map::new(),
    }
    .to_value()
}

/// A value of the given quality dimension kind (PROFILE G-43).
fn default_dimension(name: &str, kind: &DimensionKind) -> Value {
    match kind {
        DimensionKind::Enum(values) => Value::text(values.first().copied().unwrap_or("standard")),
        DimensionKind::Uint if name.contains("latency") => Value::from(1000u64),
        DimensionKind::Uint => Value::from(1u64),
        DimensionKind::Fraction => Value::Float(0.95),
        DimensionKind::Percent => Value::from(10u64),
        DimensionKind::NonNegativeNumber => Value::from(1u64),
        DimensionKind::Duration => Value::text("P30D"),
        DimensionKind::Mime => Value::text("application/json"),
        DimensionKind::Text => Value::text("standard"),
        DimensionKind::TextOrTextList => Value::text("as described"),
        DimensionKind::Bool => Value::Bool(false),
        DimensionKind::PriceSpec => Value::map([
            ("amount", Value::from(100u64)),
            ("unit", Value::text("USD")),
        ]),
        DimensionKind::Jurisdiction => Value::text("US"),
        DimensionKind::Object(members) => Value::map(
            members
                .iter()
                .map(|d| (d.name, default_dimension(d.name, &d.kind))),
        ),
    }
}

/// Every mandatory quality dimension of the category with a default value (PROFILE G-43).
pub fn default_quality(category: Category) -> Value {
    Value::map(
        category
            .mandatory_dimensions()
            .iter()
            .map(|d| (d.name, default_dimension(d.name, &d.kind))),
    )
}

fn template_value_type(template: &Value, default: &str) -> Result<Classifier, DiscoveryError> {
    let text = template
        .get("value_type")
        .and_then(Value::as_text)
        .unwrap_or(default);
    Classifier::parse(text).map_err(|e| DiscoveryError::Invalid(format!("value_type: {e}")))
}

fn default_rail(agent: &Agent) -> String {
    agent
        .config
        .rails
        .first()
        .map(|r| r.id.clone())
        .unwrap_or_else(|| "ledger".into())
}

/// A signed Offer from a (partial) template (SPEC II-A; PROFILE G-43).
pub fn build_offer(agent: &Agent, template: &Value) -> Result<Offer, DiscoveryError> {
    let now = agent.now();
    let value_type = template_value_type(template, "inference.text")?;
    let offer_id = agent.new_uuid(ObjectType::Offer);
    let base = MapBuilder::new()
        .put("offer_id", uuid_value(&offer_id))
        .put("value_type", Value::text(value_type.as_str()))
        .put(
            "description",
            Value::map([
                (
                    "human",
                    Value::text(format!(
                        "{} offered by {}",
                        value_type.as_str(),
                        agent.config.name
                    )),
                ),
                ("machine", Value::map::<&str>([])),
            ]),
        )
        .put(
            "terms_template",
            Value::map([
                (
                    "price",
                    Value::map([("amount", Value::from(10u64)), ("unit", Value::text("USD"))]),
                ),
                ("delivery", Value::map::<&str>([])),
                ("quality", default_quality(value_type.category())),
                (
                    "settlement",
                    Value::map([("rail", Value::text(default_rail(agent)))]),
                ),
            ]),
        )
        .put(
            "validity_window",
            Value::map([
                ("not_before", tdate_value(now.add_secs(-60).unwrap_or(now))),
                (
                    "not_after",
                    tdate_value(now.add_secs(OFFER_VALIDITY_S).unwrap_or(now)),
                ),
            ]),
        )
        .build();
    // `price` at the template's top level is the Terms Template's price
    // (docs/iut-contract.md "Minimal session"), never a key of its own (SPEC-II-03).
    let mut template = template.clone();
    if let Some(price) = template.get("price").cloned()
        && !agent.fault("emits-undeclared-extension-keys")
    {
        remove(&mut template, "price");
        template = merge_template(
            template,
            &Value::map([("terms_template", Value::map([("price", price)]))]),
        );
    }
    let mut v = merge_template(base, &template);
    set(&mut v, "agent_id", Value::text(agent.did()));
    set(&mut v, "signature", placeholder_signature());
    let mut offer = Offer::from_value(&v).map_err(object_err("offer template"))?;
    check_extension_keys(agent, &offer.unknown)?;
    offer.signature = None;
    offer
        .sign(&agent.keys.signing, Some(identity::own_key_id(agent)))
        .map_err(object_err("offer"))?;
    Ok(offer)
}

/// A signed Capability Manifest: the previous one's declarations, the template over them,
/// every live own Offer, a strictly greater `revision` and a fresh `freshness`
/// (SPEC-III-B-1-02, SPEC-III-B-1-05; PROFILE G-30).
pub fn build_manifest(
    agent: &Agent,
    template: &Value,
) -> Result<CapabilityManifest, DiscoveryError> {
    let now = agent.now();
    let (previous, offers) = {
        let g = agent.discovery.lock();
        let offers: Vec<Offer> = g
            .offers
            .values()
            .filter(|o| !g.revoked.contains_key(o.offer_id.as_bytes()))
            .cloned()
            .collect();
        (g.manifest.clone(), offers)
    };
    let revision = previous
        .as_ref()
        .map_or(1, |m| m.revision.saturating_add(1));
    let mut value_types: Vec<String> = Vec::new();
    for o in &offers {
        let t = o.value_type.as_str().to_owned();
        if !value_types.contains(&t) {
            value_types.push(t);
        }
    }
    let base = match &previous {
        Some(m) => {
            let mut v = m.to_value();
            remove(&mut v, "signature");
            if !value_types.is_empty() {
                let mut all: Vec<String> = m
                    .value_types
                    .iter()
                    .map(|c| c.as_str().to_owned())
                    .collect();
                for t in &value_types {
                    if !all.contains(t) {
                        all.push(t.clone());
                    }
                }
                set(
                    &mut v,
                    "value_types",
                    Value::Array(all.into_iter().map(Value::text).collect()),
                );
            }
            v
        }
        None => {
            if value_types.is_empty() {
                value_types.push("inference.text".into());
            }
            MapBuilder::new()
                .put("manifest_version", Value::text(MANIFEST_VERSION))
                .put(
                    "value_types",
                    Value::Array(value_types.iter().map(Value::text).collect()),
                )
                .put(
                    "capacity",
                    Value::map([
                        ("max_concurrent", Value::from(16u64)),
                        ("availability", Value::text("available")),
                    ]),
                )
                .put("jurisdictions", Value::map::<&str>([]))
                .put("quality", Value::map::<&str>([]))
                .put(
                    "payment_rails",
                    Value::Array(
                        agent
                            .config
                            .rails
                            .iter()
                            .map(|r| Value::text(r.id.clone()))
                            .collect(),
                    ),
                )
                .put(
                    "protocol_versions",
                    Value::Array(vec![Value::text(mtp_protocol::profile::PROTOCOL_VERSION)]),
                )
                .build()
        }
    };
    let mut v = merge_template(base, template);
    if agent.fault("manifest-omits-extensions") {
        remove(&mut v, "extensions");
    }
    let revision = match v.get("revision").and_then(Value::as_u64) {
        Some(r) if previous.is_none() || r > revision.saturating_sub(1) => r,
        _ => revision,
    };
    set(
        &mut v,
        "manifest_id",
        uuid_value(&agent.new_uuid(ObjectType::Manifest)),
    );
    set(&mut v, "agent_id", Value::text(agent.did()));
    set(&mut v, "revision", Value::from(revision));
    set(
        &mut v,
        "offers",
        Value::Array(offers.iter().map(|o| uuid_value(&o.offer_id)).collect()),
    );
    set(&mut v, "freshness", tdate_value(now));
    set(&mut v, "signature", placeholder_signature());
    let mut m = CapabilityManifest::from_value(&v).map_err(object_err("manifest template"))?;
    m.signature = None;
    m.sign(&agent.keys.signing, Some(identity::own_key_id(agent)))
        .map_err(object_err("manifest"))?;
    Ok(m)
}

/// A signed Request from a (partial) template with this agent's Authority Attestation
/// (SPEC II-B). The holder checks it is within its own authority first (1101 otherwise,
/// docs/iut-contract.md rule 2).
pub async fn build_request(
    agent: &Agent,
    template: &Value,
    counterparty: &str,
    reveal: Option<Vec<String>>,
) -> Result<MtpRequest, DiscoveryError> {
    let value_type = template_value_type(template, "inference.text")?;
    let request_id = agent.new_uuid(ObjectType::Request);
    let constraints = match template.get("constraints") {
        Some(c) => Constraints::from_value(c, "constraints").map_err(|e| {
            DiscoveryError::Invalid(format!(
                "constraints: {}",
                e.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
        })?,
        None => Constraints::default(),
    };
    let amount = match template
        .get("authority_attestation")
        .and_then(|a| a.get("max_tx_value"))
    {
        Some(v) => Some(
            PriceSpec::from_value(v, "authority_attestation.max_tx_value", "SPEC-II-B-03")
                .map_err(|e| DiscoveryError::Invalid(format!("max_tx_value: {e:?}")))?,
        ),
        None => constraints.budget_ceiling.clone(),
    };
    let att = identity::build_attestation(
        agent,
        &AttestationInput {
            request_id: &request_id,
            value_type: &value_type,
            amount,
            counterparty,
            reveal,
        },
    )?;
    let base = MapBuilder::new()
        .put("request_id", uuid_value(&request_id))
        .put("value_type", Value::text(value_type.as_str()))
        .put(
            "description",
            Value::map([
                (
                    "human",
                    Value::text(format!(
                        "{} wanted by {}",
                        value_type.as_str(),
                        agent.config.name
                    )),
                ),
                ("machine", Value::map::<&str>([])),
            ]),
        )
        .put("constraints", Value::map::<&str>([]))
        .build();
    let mut overlay = template.clone();
    remove(&mut overlay, "authority_attestation");
    remove(&mut overlay, "request_id");
    if agent.fault("request-drops-constraints") {
        remove(&mut overlay, "constraints");
    }
    let mut v = merge_template(base, &overlay);
    set(&mut v, "agent_id", Value::text(agent.did()));
    set(&mut v, "authority_attestation", att.to_value());
    set(&mut v, "signature", placeholder_signature());
    let mut request = MtpRequest::from_value(&v).map_err(object_err("request template"))?;
    request.signature = None;
    request
        .sign(&agent.keys.signing, Some(identity::own_key_id(agent)))
        .map_err(object_err("request"))?;
    identity::request_authority(agent, &request, None, Verifier::Chain).await?;
    Ok(request)
}

// ---------------------------------------------------------------------------------------
// Publication
// ---------------------------------------------------------------------------------------

/// How a publication went: per index and on NATS.
#[derive(Debug)]
pub struct Publication {
    pub indexes: Vec<(String, Result<(), DiscoveryError>)>,
    pub nats: Result<bool, DiscoveryError>,
}

impl Publication {
    /// `Err` when nothing accepted the object but something was tried.
    fn into_result(self) -> Result<Publication, DiscoveryError> {
        let any_ok = self.indexes.iter().any(|(_, r)| r.is_ok()) || matches!(self.nats, Ok(true));
        let tried = !self.indexes.is_empty() || self.nats.is_err();
        if any_ok || !tried {
            return Ok(self);
        }
        let Publication { indexes, nats } = self;
        match indexes.into_iter().find_map(|(_, r)| r.err()) {
            Some(e) => Err(e),
            None => Err(nats
                .err()
                .unwrap_or(DiscoveryError::Nats("no recipient".into()))),
        }
    }

    fn report(&self) -> Value {
        Value::Map(
            self.indexes
                .iter()
                .map(|(n, r)| {
                    (
                        Value::text(n.clone()),
                        match r {
                            Ok(()) => Value::text("ok"),
                            Err(e) => Value::text(format!("{} {e}", e.code())),
                        },
                    )
                })
                .collect(),
        )
    }
}

/// Stores, binds and publishes this agent's manifest.
pub async fn publish_manifest(
    agent: &Agent,
    manifest: CapabilityManifest,
    indexes: Option<Vec<String>>,
    via_nats: Option<bool>,
) -> Result<Publication, DiscoveryError> {
    let bytes = manifest
        .try_to_cbor()
        .map_err(|e| DiscoveryError::Invalid(e.to_string()))?;
    agent.reserve_uuid(manifest.manifest_id, &bytes)?;
    agent.discovery.lock().manifest = Some(manifest.clone());
    let mut body = manifest.to_value();
    if agent.fault("manifest-unsigned") {
        remove(&mut body, "signature");
    }
    let frame = Frame::new("manifest", body)?;
    let names = index_names(agent, indexes);
    let results = publish_everywhere(agent, &names, Rpc::IndexPublish, &frame).await;
    let nats = if via_nats == Some(false) {
        Ok(false)
    } else {
        let mut sent = Ok(false);
        let mut cats: BTreeSet<Category> = BTreeSet::new();
        for c in &manifest.value_types {
            cats.insert(c.category());
        }
        for c in cats {
            sent = nats_broadcast(
                agent,
                &wire::subject::manifest(c),
                "manifest",
                &uuid_value(&manifest.manifest_id),
                &manifest.to_value(),
            )
            .await;
            if sent.is_err() {
                break;
            }
        }
        sent
    };
    Publication {
        indexes: results,
        nats,
    }
    .into_result()
}

/// Stores, binds and publishes an Offer, with an updated manifest listing it first
/// (SPEC-III-B-1-01).
pub async fn publish_offer(
    agent: &Agent,
    offer: Offer,
    indexes: Option<Vec<String>>,
    via_nats: Option<bool>,
) -> Result<Publication, DiscoveryError> {
    let bytes = offer
        .try_to_cbor()
        .map_err(|e| DiscoveryError::Invalid(e.to_string()))?;
    agent.reserve_uuid(offer.offer_id, &bytes)?;
    agent
        .discovery
        .lock()
        .offers
        .insert(*offer.offer_id.as_bytes(), offer.clone());
    if !agent.fault("offer-without-manifest") {
        let manifest = build_manifest(agent, &Value::map::<&str>([]))?;
        publish_manifest(agent, manifest, indexes.clone(), via_nats).await?;
    }
    let frame = Frame::new("offer", offer.to_value())?;
    let names = index_names(agent, indexes);
    let results = if via_nats == Some(true) && names.is_empty() {
        Vec::new()
    } else {
        publish_everywhere(agent, &names, Rpc::IndexPublish, &frame).await
    };
    agent.discovery.lock().published_to.insert(
        *offer.offer_id.as_bytes(),
        results
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(n, _)| n.clone())
            .collect(),
    );
    let nats = if via_nats == Some(false) {
        Ok(false)
    } else {
        nats_broadcast(
            agent,
            &wire::subject::offer(&offer.value_type),
            "offer",
            &uuid_value(&offer.offer_id),
            &offer.to_value(),
        )
        .await
    };
    if via_nats == Some(true) && !matches!(nats, Ok(true)) {
        return Err(match nats {
            Err(e) => e,
            Ok(_) => DiscoveryError::Nats("MTPAsync not connected or no index key".into()),
        });
    }
    Publication {
        indexes: results,
        nats,
    }
    .into_result()
}

/// Stores, binds and (optionally) publishes a Request.
pub async fn publish_request(
    agent: &Agent,
    request: MtpRequest,
    publish: bool,
) -> Result<Option<Publication>, DiscoveryError> {
    let bytes = request
        .try_to_cbor()
        .map_err(|e| DiscoveryError::Invalid(e.to_string()))?;
    agent.reserve_uuid(request.request_id, &bytes)?;
    agent
        .discovery
        .lock()
        .requests
        .insert(*request.request_id.as_bytes(), request.clone());
    if !publish {
        return Ok(None);
    }
    let frame = Frame::new("request", request.to_value())?;
    let names = index_names(agent, None);
    let results = publish_everywhere(agent, &names, Rpc::IndexPublish, &frame).await;
    let nats = nats_broadcast(
        agent,
        &wire::subject::request(&request.value_type),
        "request",
        &uuid_value(&request.request_id),
        &request.to_value(),
    )
    .await;
    Publication {
        indexes: results,
        nats,
    }
    .into_result()
    .map(Some)
}

// ---------------------------------------------------------------------------------------
// Query and merge
// ---------------------------------------------------------------------------------------

/// Queries one index.
pub async fn query_one(
    agent: &Agent,
    index: &str,
    query: &IndexQuery,
) -> Result<IndexQueryResponse, DiscoveryError> {
    if is_own_index(agent, index) {
        return crate::services::index::query(agent, query);
    }
    let frame = Frame::new("index_query", query.to_value())?;
    let resp = index_call(agent, index, Rpc::IndexQuery, &frame).await?;
    if resp.frame_type != "index_response" {
        return Err(DiscoveryError::Invalid(format!(
            "index {index} answered {:?}",
            resp.frame_type
        )));
    }
    let (body, unsigned) = usable_results(agent, index, &resp.body);
    let mut r = IndexQueryResponse::from_value(&body).map_err(object_err("index-response"))?;
    for x in &mut r.results {
        if unsigned.contains(x.offer.offer_id.as_bytes()) {
            x.offer.signature = None;
        }
    }
    Ok(r)
}

/// The results of an index's answer this agent can use: an unsigned Offer is never matched
/// (2101, SPEC-II-A-05) and a result that is not a well-formed `index-result` is dropped
/// (its code) — the other results stay usable. Also the ids of the unsigned Offers kept
/// under the `match-accepts-unsigned-offer` defect.
fn usable_results(agent: &Agent, index: &str, body: &Value) -> (Value, Vec<[u8; 32]>) {
    let Some(Value::Array(items)) = body.get("results") else {
        return (body.clone(), Vec::new());
    };
    let mut kept = Vec::with_capacity(items.len());
    let mut unsigned_ids = Vec::new();
    for item in items {
        let mut item = item.clone();
        if let Some(offer) = item.get("offer")
            && offer.get("signature").is_none()
        {
            if !agent.fault("match-accepts-unsigned-offer") {
                let e =
                    DiscoveryError::OfferSignature(format!("unsigned offer from index {index}"));
                agent.raise(None, &e, None);
                continue;
            }
            let mut o = offer.clone();
            set(&mut o, "signature", placeholder_signature());
            if let Some(id) = o.get("offer_id").and_then(Value::as_bytes)
                && let Ok(id) = <[u8; 32]>::try_from(id)
            {
                unsigned_ids.push(id);
            }
            set(&mut item, "offer", o);
        }
        let one = Value::map([("results", Value::Array(vec![item.clone()]))]);
        match <IndexQueryResponse as CborObject>::from_value(&one) {
            Ok(_) => kept.push(item),
            Err(e) => {
                let e = DiscoveryError::Object {
                    what: "index-result",
                    source: Box::new(e),
                };
                agent.raise(None, &e, None);
            }
        }
    }
    let mut out = body.clone();
    set(&mut out, "results", Value::Array(kept));
    (out, unsigned_ids)
}

/// Federated query (SPEC-III-B-2-03): every index queried concurrently, the answers merged
/// (union, de-duplicated by `offer_id`, newest first; PROFILE G-31). An `offer_id` bound to
/// different bytes drops its entries and raises 0100; an unreachable index is skipped when
/// another answered; Offers this agent knows revoked or whose required extensions it does
/// not support (2103, SPEC-XI-10) are dropped; a badly signed Offer is dropped (2101).
pub async fn federated_query(
    agent: &Agent,
    indexes: &[String],
    query: &IndexQuery,
) -> Result<Vec<IndexResult>, DiscoveryError> {
    let indexes = if agent.fault("query-first-index-only") {
        &indexes[..indexes.len().min(1)]
    } else {
        indexes
    };
    let calls = indexes
        .iter()
        .map(|i| async move { (i.clone(), query_one(agent, i, query).await) });
    let answers = futures::future::join_all(calls).await;
    let mut responses = Vec::new();
    let mut first_err = None;
    for (name, r) in answers {
        match r {
            Ok(resp) => responses.push(resp),
            Err(e) => {
                tracing::warn!(index = %name, error = %e, "index query failed");
                first_err.get_or_insert(e);
            }
        }
    }
    if responses.is_empty()
        && let Some(e) = first_err
    {
        return Err(e);
    }
    let merged = if agent.fault("merge-keeps-duplicates") {
        responses.into_iter().flat_map(|r| r.results).collect()
    } else {
        match disc::merge_results(responses) {
            Ok(m) => m,
            Err(e) => {
                agent.raise(None, &e, None);
                e.merged.clone()
            }
        }
    };
    let now = agent.now();
    let mut out = Vec::with_capacity(merged.len());
    for r in merged {
        let id = r.offer.offer_id;
        if is_offer_revoked(agent, &id) {
            continue;
        }
        if let Err(e) = check_required_extensions(agent, &r.offer.unknown)
            && !agent.fault("ignore-required-extensions")
        {
            agent.raise(None, &e, Some(r.offer.agent_id.as_str()));
            continue;
        }
        let unsigned_kept =
            r.offer.signature.is_none() && agent.fault("match-accepts-unsigned-offer");
        if !unsigned_kept && let Err(e) = verify_offer(agent, &r.offer).await {
            agent.raise(None, &e, Some(r.offer.agent_id.as_str()));
            continue;
        }
        if disc::staleness_at(
            r.freshness,
            now,
            mtp_protocol::profile::MANIFEST_STALENESS_S,
        )
        .warning()
        .is_some()
        {
            agent.warn(
                None,
                ErrorCode::ManifestApproachingStaleness,
                format!(
                    "manifest {} of offer {id} approaches staleness",
                    r.manifest_id
                ),
            );
        }
        agent
            .discovery
            .lock()
            .known_offers
            .insert(*id.as_bytes(), r.offer.clone());
        out.push(r);
    }
    Ok(out)
}

/// `index-result` as a CBOR map (PROFILE G-31).
pub fn index_result_value(r: &IndexResult) -> Value {
    MapBuilder::new()
        .put("offer", r.offer.to_value())
        .put("manifest_id", uuid_value(&r.manifest_id))
        .put("freshness", tdate_value(r.freshness))
        .extend_unknown(&r.unknown)
        .build()
}

// ---------------------------------------------------------------------------------------
// Signatures of received discovery objects
// ---------------------------------------------------------------------------------------

/// The assertion key `signature` names for `agent_id` (its `key_id` must be a key of that
/// DID); an unknown `did:mtp` signer is resolved first.
pub async fn signer_key(
    agent: &Agent,
    agent_id: &str,
    signature: Option<&Signature>,
) -> Result<mtp_protocol::crypto::PublicKey, String> {
    let key_id = signature.and_then(|s| s.key_id.clone());
    if let Some(k) = &key_id
        && k.split('#').next() != Some(agent_id)
    {
        return Err(format!("key {k} is not a key of {agent_id}"));
    }
    let lookup = key_id.as_deref().unwrap_or(agent_id);
    match agent.assertion_key(lookup) {
        Ok(k) => Ok(k),
        Err(_) => {
            identity::try_resolve(agent, agent_id)
                .await
                .map_err(|e| format!("signer {agent_id} unknown: {e}"))?;
            agent.assertion_key(lookup).map_err(|e| e.to_string())
        }
    }
}

/// Records a signature check in the agent trail (PROFILE G-42).
fn audit_signature(agent: &Agent, object_hash: [u8; 32], ok: bool, signer: &str) {
    agent.audit_signature(None, object_hash, ok, signer);
}

fn object_hash<T: CborObject>(o: &T) -> [u8; 32] {
    o.try_to_cbor()
        .map(|b| mtp_protocol::crypto::sha256(&b))
        .unwrap_or([0; 32])
}

/// An Offer signed by its `agent_id` (2101 otherwise, SPEC II-A).
pub async fn verify_offer(agent: &Agent, offer: &Offer) -> Result<(), DiscoveryError> {
    let key = match signer_key(agent, offer.agent_id.as_str(), offer.signature.as_ref()).await {
        Err(e) if agent.fault("offer-signer-not-bound") => offer
            .signature
            .as_ref()
            .and_then(|s| s.key_id.as_deref())
            .and_then(|k| agent.assertion_key(k).ok())
            .ok_or(e),
        other => other,
    }
    .map_err(DiscoveryError::OfferSignature)?;
    let mut r = offer
        .verify_signature(&key)
        .map_err(|e| DiscoveryError::OfferSignature(e.to_string()));
    if agent.fault("skip-offer-signature-check")
        || (agent.fault("extension-weakens-crypto")
            && disc::required_extensions(&offer.unknown).is_some())
    {
        r = Ok(());
    }
    audit_signature(
        agent,
        object_hash(offer),
        r.is_ok(),
        offer.agent_id.as_str(),
    );
    r
}

/// A manifest signed by its `agent_id` (2100 otherwise, SPEC-III-B-1-04).
pub async fn verify_manifest(agent: &Agent, m: &CapabilityManifest) -> Result<(), DiscoveryError> {
    let key = signer_key(agent, m.agent_id.as_str(), m.signature.as_ref())
        .await
        .map_err(DiscoveryError::ManifestSignature)?;
    let mut r = m
        .verify_signature(&key)
        .map_err(|e| DiscoveryError::ManifestSignature(e.to_string()));
    if agent.fault("skip-manifest-signature-check") {
        r = Ok(());
    }
    audit_signature(agent, object_hash(m), r.is_ok(), m.agent_id.as_str());
    r
}

/// A Request signed by its `agent_id` (1100 otherwise).
pub async fn verify_request_signature(agent: &Agent, r: &MtpRequest) -> Result<(), DiscoveryError> {
    let key = signer_key(agent, r.agent_id.as_str(), r.signature.as_ref())
        .await
        .map_err(DiscoveryError::Signature)?;
    let res = r
        .verify_signature(&key)
        .map_err(|e| DiscoveryError::Signature(e.to_string()));
    audit_signature(agent, object_hash(r), res.is_ok(), r.agent_id.as_str());
    res
}

/// A revocation notice signed by the offering agent (1100 otherwise, PROFILE G-31).
pub async fn verify_revocation(agent: &Agent, r: &OfferRevocation) -> Result<(), DiscoveryError> {
    let key = signer_key(agent, r.agent_id.as_str(), r.signature.as_ref())
        .await
        .map_err(DiscoveryError::Signature)?;
    let res = r
        .verify_signature(&key)
        .map_err(|e| DiscoveryError::Signature(e.to_string()));
    audit_signature(agent, object_hash(r), res.is_ok(), r.agent_id.as_str());
    res
}

// ---------------------------------------------------------------------------------------
// Revocation (SPEC III-B-3)
// ---------------------------------------------------------------------------------------

/// Revokes one of this agent's Offers: a signed notice to every index (`Index/Revoke`) and
/// on `mtp.revocation.offer.<top>` (SPEC-III-B-3-01), a manifest no longer listing it,
/// and every local deal on it still in Initiated or Negotiating fails with its
/// counterparties notified (SPEC-III-B-3-03/04/05). The id stays reserved (SPEC-IX-05).
pub async fn revoke_offer(
    agent: &Agent,
    offer_id: &MtpUuid,
) -> Result<(OfferRevocation, Vec<(String, Result<(), DiscoveryError>)>), DiscoveryError> {
    let offer = agent
        .discovery
        .lock()
        .offers
        .get(offer_id.as_bytes())
        .cloned()
        .ok_or_else(|| DiscoveryError::NotFound(format!("own offer {offer_id}")))?;
    let now = agent.now();
    let mut notice = OfferRevocation {
        offer_id: *offer_id,
        agent_id: agent.keys.did.clone(),
        revoked_at: now,
        signature: None,
        unknown: Map::new(),
    };
    notice
        .sign(&agent.keys.signing, Some(identity::own_key_id(agent)))
        .map_err(object_err("offer-revocation"))?;
    agent
        .discovery
        .lock()
        .revoked
        .insert(*offer_id.as_bytes(), now);
    let deals = fail_deals_on_revoked_offer(agent, offer_id, true).await;
    tracing::info!(offer = %offer_id, deals, "offer revoked");
    let frame = Frame::new("offer_revocation", notice.to_value())?;
    let mut names = index_names(agent, None);
    if !agent.fault("revocation-skips-publication-indexes") {
        let published = agent
            .discovery
            .lock()
            .published_to
            .get(offer_id.as_bytes())
            .cloned()
            .unwrap_or_default();
        for n in published {
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    let results = publish_everywhere(agent, &names, Rpc::IndexRevoke, &frame).await;
    if let Err(e) = nats_broadcast(
        agent,
        &wire::subject::offer_revocation(offer.value_type.category()),
        "offer_revocation",
        &Value::text(format!("revocation-{offer_id}")),
        &notice.to_value(),
    )
    .await
    {
        tracing::warn!(error = %e, "offer revocation not published on NATS");
    }
    // A manifest that no longer lists the revoked Offer.
    match build_manifest(agent, &Value::map::<&str>([])) {
        Ok(m) => {
            if let Err(e) = publish_manifest(agent, m, None, None).await {
                tracing::warn!(error = %e, "manifest update after revocation failed");
            }
        }
        Err(e) => tracing::warn!(error = %e, "manifest update after revocation failed"),
    }
    Ok((notice, results))
}

/// Every local deal on `offer_id` still in Initiated or Negotiating goes to Failed
/// (`offer_revoked` / `negotiation_terminated.offer_revoked`, PROFILE G-18); with `notify`
/// its counterparties get a signed `offer_revoked` notification. Returns the number of
/// deals terminated.
pub async fn fail_deals_on_revoked_offer(agent: &Agent, offer_id: &MtpUuid, notify: bool) -> usize {
    let mut n = 0;
    for tx in agent.transactions.ids() {
        let Some(deal) = agent.deals.get(&tx) else {
            continue;
        };
        if deal.offer.as_ref().map(|o| o.offer_id) != Some(*offer_id) {
            continue;
        }
        let (event, code) = match agent.transactions.state(&tx) {
            Some(TxState::Initiated) => (
                TxEvent::OfferRevokedBeforeNegotiation,
                ErrorCode::OfferRevoked,
            ),
            Some(TxState::Negotiating) => (
                TxEvent::NegotiationTerminated {
                    reason: TerminationReason::OfferRevoked,
                },
                ErrorCode::NegotiationTerminatedByRevocation,
            ),
            _ => continue,
        };
        match agent.transactions.apply(&tx, event, agent.now()) {
            Ok(_) => n += 1,
            Err(e) => {
                // A concurrent transition won the race; the deal is no longer revocable.
                tracing::info!(error = %e, "deal not terminated by the revocation");
                continue;
            }
        }
        let _ =
            agent
                .transactions
                .record_error(&tx, code, deal.counterparties.clone(), agent.now());
        if notify {
            for cp in &deal.counterparties {
                if let Err(e) = notify_offer_revoked(agent, cp, &tx, offer_id).await {
                    agent.raise(Some(tx), &e, Some(cp));
                }
            }
        }
    }
    n
}

/// Sends a signed `offer_revoked` notification over `Agent/Notify`, falling back to the
/// peer's NATS inbox (PROFILE G-16).
pub async fn notify_offer_revoked(
    agent: &Agent,
    peer: &str,
    tx: &[u8; 32],
    offer_id: &MtpUuid,
) -> Result<(), DiscoveryError> {
    let mut n = Notification {
        kind: NotificationType::OfferRevoked,
        transaction_id: MtpUuid::from_bytes(tx).ok(),
        subject_ref: Some(*offer_id),
        error: None,
        timestamp: agent.now(),
        signature: None,
        unknown: Map::new(),
    };
    n.sign(&agent.keys.signing, Some(identity::own_key_id(agent)))
        .map_err(object_err("notification"))?;
    let frame = Frame::new("notification", n.to_value())?;
    let sent = async {
        let mut client =
            agent
                .agent_client(peer)
                .await
                .map_err(|e| DiscoveryError::Unavailable {
                    target: peer.to_owned(),
                    detail: e.to_string(),
                })?;
        let req = framing::with_deadline(framing::request(&frame)?, NOTIFY_TIMEOUT);
        let resp = tokio::time::timeout(NOTIFY_TIMEOUT, client.notify(req))
            .await
            .map_err(|_| DiscoveryError::Unavailable {
                target: peer.to_owned(),
                detail: "timeout".into(),
            })?
            .map_err(|s| DiscoveryError::Remote {
                target: peer.to_owned(),
                error: Box::new(RemoteError::from_status(&s)),
            })?;
        framing::receive_response(&resp, Rpc::Notify)?;
        Ok::<(), DiscoveryError>(())
    }
    .await;
    let sent = match sent {
        Ok(()) => Ok(()),
        Err(e) => match (agent.nats.get(), agent.peer(peer)) {
            (Some(nats), Some(doc)) => {
                let did = mtp_protocol::identity::Did::parse(peer)
                    .map_err(|x| DiscoveryError::Invalid(x.to_string()))?;
                let keys = doc.key_agreement_keys();
                let Some((kid, alg, key)) = keys.first() else {
                    return Err(e);
                };
                let recipients = [wire::RecipientKey {
                    kid,
                    algorithm: *alg,
                    encapsulation_key: key,
                }];
                let randomness = {
                    let mut rng = agent.rng.lock().unwrap_or_else(|p| p.into_inner());
                    wire::EnvelopeRandomness::draw(&mut rng, 1)
                };
                let me = agent.did();
                let key_id = identity::own_key_id(agent);
                nats.publish_sealed(
                    &crate::transport::nats::SealedMessage {
                        subject: &wire::subject::inbox(&did, "notify"),
                        frame_type: "notification",
                        msg_id: &Value::text(format!("notification-{}", hex::encode(frame.hash))),
                        body: &frame.body,
                        recipients: &recipients,
                    },
                    &crate::transport::nats::SenderIdentity {
                        did: &me,
                        key_id: Some(&key_id),
                        signing_key: &agent.keys.signing,
                    },
                    &randomness,
                    None,
                )
                .await
                .map(|_| ())
                .map_err(|x| DiscoveryError::Nats(x.to_string()))
            }
            _ => Err(e),
        },
    };
    if sent.is_ok() {
        let now = agent.now();
        let _ = agent.transactions.record(
            tx,
            mtp_protocol::audit::AuditRecord {
                event: mtp_protocol::audit::events::MESSAGE_SENT.into(),
                agents: vec![peer.to_owned()],
                message_hash: Some(frame.hash),
                ..Default::default()
            },
            now,
        );
        let mut ev = Event::new(EventKind::NotificationSent, now);
        ev.transaction_id = Some(*tx);
        ev.peer = Some(peer.to_owned());
        ev.frame_type = Some("notification".into());
        ev.hash = Some(frame.hash);
        ev.detail = Some("offer_revoked".into());
        agent.events.push(ev);
    }
    sent
}

/// A notification received over `Agent/Notify` or NATS (SPEC VI): an `offer_revoked`
/// notification signed by the offering agent fails the local deals on that Offer still in
/// Initiated or Negotiating (SPEC-III-B-3-04). A wrongly signed one is refused (1100).
pub async fn on_notification(agent: &Agent, notification: &Notification) -> Result<(), Status> {
    if notification.kind != NotificationType::OfferRevoked {
        return Ok(());
    }
    let Some(offer_id) = notification.subject_ref else {
        return Ok(());
    };
    // The offering agent is the only one who can revoke: its key must have signed.
    let offer = known_offer(agent, &offer_id).or_else(|| {
        notification
            .transaction_id
            .and_then(|t| agent.deals.get(t.as_bytes()))
            .and_then(|d| d.offer)
            .filter(|o| o.offer_id == offer_id)
    });
    let Some(offer) = offer else {
        return Ok(());
    };
    if offer.agent_id.as_str() == agent.did() {
        return Ok(());
    }
    let ctx = ErrorContext::now(&agent.did());
    let key = signer_key(
        agent,
        offer.agent_id.as_str(),
        notification.signature.as_ref(),
    )
    .await
    .map_err(DiscoveryError::Signature);
    let checked = key.and_then(|k| {
        notification
            .verify_signature(&k)
            .map_err(|e| DiscoveryError::Signature(e.to_string()))
    });
    if let Err(e) = checked {
        agent.raise(None, &e, Some(offer.agent_id.as_str()));
        return Err(framing::status_for(&e, Rpc::Notify, &ctx));
    }
    let now = agent.now();
    let mut ev = Event::new(EventKind::NotificationReceived, now);
    ev.transaction_id = notification.transaction_id.map(|t| t.to_bytes());
    ev.peer = Some(offer.agent_id.to_string());
    ev.frame_type = Some("notification".into());
    ev.detail = Some("offer_revoked".into());
    agent.events.push(ev);
    agent
        .discovery
        .lock()
        .revoked
        .insert(*offer_id.as_bytes(), now);
    fail_deals_on_revoked_offer(agent, &offer_id, false).await;
    Ok(())
}

/// A message received on a discovery NATS subject (`mtp.offer.>`, `mtp.request.>`,
/// `mtp.manifest.>`, `mtp.revocation.>`; PROFILE G-06), already opened and checked by the
/// runtime's consumer loop. An index ingests it like `Index/Publish` / `Index/Revoke`; any
/// agent applies a verified Offer revocation to its local deals.
pub async fn on_nats_message(
    agent: &Agent,
    subject: &str,
    frame: mtp_protocol::wire::Frame,
) -> Result<(), Status> {
    let ctx = ErrorContext::now(&agent.did());
    let rpc = if frame.frame_type == "offer_revocation" {
        Rpc::IndexRevoke
    } else {
        Rpc::IndexPublish
    };
    if agent.config.serve_index {
        if let Err(e) = crate::services::index::ingest(agent, &frame, None).await {
            tracing::info!(subject, error = %e, "discovery message refused");
            agent.raise(None, &e, None);
            return Err(framing::status_for(&e, rpc, &ctx));
        }
        return Ok(());
    }
    if frame.frame_type == "offer_revocation" {
        let r = OfferRevocation::from_value(&frame.body).map_err(object_err("offer-revocation"));
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                agent.raise(None, &e, None);
                return Err(framing::status_for(&e, rpc, &ctx));
            }
        };
        if let Err(e) = verify_revocation(agent, &r).await {
            agent.raise(None, &e, Some(r.agent_id.as_str()));
            return Err(framing::status_for(&e, rpc, &ctx));
        }
        agent
            .discovery
            .lock()
            .revoked
            .insert(*r.offer_id.as_bytes(), agent.now());
        fail_deals_on_revoked_offer(agent, &r.offer_id, false).await;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Test-control actions
// ---------------------------------------------------------------------------------------

fn strings_arg(args: &Value, key: &str) -> Option<Vec<String>> {
    args.get(key).and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(Value::as_text)
            .map(str::to_owned)
            .collect()
    })
}

fn template_arg(args: &Value) -> Value {
    args.get("template")
        .cloned()
        .unwrap_or_else(|| Value::map::<&str>([]))
}

fn uuid_arg(args: &Value, key: &str) -> Result<MtpUuid, ControlError> {
    let v = args
        .get(key)
        .ok_or_else(|| ControlError::BadArgs(format!("{key} is required")))?;
    match v {
        Value::Text(t) => MtpUuid::parse(t),
        other => MtpUuid::from_value(other),
    }
    .map_err(|e| ControlError::BadArgs(format!("{key}: {e}")))
}

fn mtp(e: &DiscoveryError) -> ControlError {
    match e {
        DiscoveryError::NotFound(m) => ControlError::NotFound(m.clone()),
        other => ControlError::mtp(other),
    }
}

/// This layer's test-control actions (docs/iut-contract.md); `None` for other actions.
pub async fn control(agent: &Agent, action: &str, args: &Value) -> Option<ControlResult> {
    Some(match action {
        "publish_manifest" => control_publish_manifest(agent, args).await,
        "publish_offer" => control_publish_offer(agent, args).await,
        "revoke_offer" => control_revoke_offer(agent, args).await,
        "modify_offer" => control_modify_offer(agent, args).await,
        "create_request" => control_create_request(agent, args).await,
        "query_index" => control_query_index(agent, args).await,
        // Broadcast by the control service after its own handling.
        "reset" => {
            reset(agent);
            Ok(Value::map::<&str>([]))
        }
        _ => return None,
    })
}

async fn control_publish_manifest(agent: &Agent, args: &Value) -> ControlResult {
    let m = build_manifest(agent, &template_arg(args)).map_err(|e| mtp(&e))?;
    let bytes = m
        .try_to_cbor()
        .map_err(|e| ControlError::Internal(e.to_string()))?;
    let via = args.get("via_nats").and_then(Value::as_bool);
    let p = publish_manifest(agent, m, strings_arg(args, "indexes"), via)
        .await
        .map_err(|e| mtp(&e))?;
    Ok(Value::map([
        ("manifest", Value::Bytes(bytes)),
        ("indexes", p.report()),
    ]))
}

async fn control_publish_offer(agent: &Agent, args: &Value) -> ControlResult {
    let offer = build_offer(agent, &template_arg(args)).map_err(|e| mtp(&e))?;
    let bytes = offer
        .try_to_cbor()
        .map_err(|e| ControlError::Internal(e.to_string()))?;
    let id = offer.offer_id;
    let via = args.get("via_nats").and_then(Value::as_bool);
    let p = publish_offer(agent, offer, strings_arg(args, "indexes"), via)
        .await
        .map_err(|e| mtp(&e))?;
    Ok(Value::map([
        ("offer_id", uuid_value(&id)),
        ("offer", Value::Bytes(bytes)),
        ("indexes", p.report()),
    ]))
}

async fn control_revoke_offer(agent: &Agent, args: &Value) -> ControlResult {
    let id = uuid_arg(args, "offer_id")?;
    let (notice, results) = revoke_offer(agent, &id).await.map_err(|e| mtp(&e))?;
    let bytes = notice
        .try_to_cbor()
        .map_err(|e| ControlError::Internal(e.to_string()))?;
    let report = Publication {
        indexes: results,
        nats: Ok(false),
    }
    .report();
    Ok(Value::map([
        ("revocation", Value::Bytes(bytes)),
        ("indexes", report),
    ]))
}

/// Modifies one of this agent's published Offers (SPEC-II-A-09): the original is revoked
/// (signed notice to every index it went to) and a new Offer — the old terms with the
/// template over them, a new `offer_id` — is published to the same indexes.
pub async fn modify_offer(
    agent: &Agent,
    offer_id: &MtpUuid,
    template: &Value,
    indexes: Option<Vec<String>>,
) -> Result<(Offer, Option<OfferRevocation>), DiscoveryError> {
    let (old, published) = {
        let g = agent.discovery.lock();
        (
            g.offers.get(offer_id.as_bytes()).cloned(),
            g.published_to.get(offer_id.as_bytes()).cloned(),
        )
    };
    let old = old.ok_or_else(|| DiscoveryError::NotFound(format!("own offer {offer_id}")))?;
    if agent
        .discovery
        .lock()
        .revoked
        .contains_key(offer_id.as_bytes())
    {
        return Err(DiscoveryError::Revoked(*offer_id));
    }
    let mut base = old.to_value();
    remove(&mut base, "signature");
    let indexes = indexes.or(published.filter(|p| !p.is_empty()));
    if agent.fault("modify-offer-in-place") {
        let mut v = merge_template(base, template);
        set(&mut v, "signature", placeholder_signature());
        let mut offer = Offer::from_value(&v).map_err(object_err("offer template"))?;
        offer.offer_id = *offer_id;
        offer.signature = None;
        offer
            .sign(&agent.keys.signing, Some(identity::own_key_id(agent)))
            .map_err(object_err("offer"))?;
        agent
            .discovery
            .lock()
            .offers
            .insert(*offer_id.as_bytes(), offer.clone());
        let frame = Frame::new("offer", offer.to_value())?;
        let names = index_names(agent, indexes);
        publish_everywhere(agent, &names, Rpc::IndexPublish, &frame).await;
        return Ok((offer, None));
    }
    let (notice, _) = revoke_offer(agent, offer_id).await?;
    remove(&mut base, "offer_id");
    remove(&mut base, "agent_id");
    let offer = build_offer(agent, &merge_template(base, template))?;
    publish_offer(agent, offer.clone(), indexes, None).await?;
    Ok((offer, Some(notice)))
}

async fn control_modify_offer(agent: &Agent, args: &Value) -> ControlResult {
    let id = uuid_arg(args, "offer_id")?;
    let (offer, notice) = modify_offer(
        agent,
        &id,
        &template_arg(args),
        strings_arg(args, "indexes"),
    )
    .await
    .map_err(|e| mtp(&e))?;
    let bytes = offer
        .try_to_cbor()
        .map_err(|e| ControlError::Internal(e.to_string()))?;
    let mut out = vec![
        ("offer_id", uuid_value(&offer.offer_id)),
        ("offer", Value::Bytes(bytes)),
    ];
    if let Some(n) = notice {
        out.push(("revoked_offer_id", uuid_value(&n.offer_id)));
        out.push((
            "revocation",
            Value::Bytes(
                n.try_to_cbor()
                    .map_err(|e| ControlError::Internal(e.to_string()))?,
            ),
        ));
    }
    Ok(Value::map(out))
}

async fn control_create_request(agent: &Agent, args: &Value) -> ControlResult {
    let template = template_arg(args);
    let counterparty = args
        .get("counterparty")
        .or_else(|| template.get("counterparty"))
        .and_then(Value::as_text)
        .unwrap_or_default()
        .to_owned();
    let mut template = template;
    remove(&mut template, "counterparty");
    let reveal = strings_arg(args, "reveal");
    let request = build_request(agent, &template, &counterparty, reveal)
        .await
        .map_err(|e| mtp(&e))?;
    let bytes = request
        .try_to_cbor()
        .map_err(|e| ControlError::Internal(e.to_string()))?;
    let id = request.request_id;
    let publish = args
        .get("publish")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let p = publish_request(agent, request, publish)
        .await
        .map_err(|e| mtp(&e))?;
    let mut out = vec![
        ("request_id", uuid_value(&id)),
        ("request", Value::Bytes(bytes)),
    ];
    if let Some(p) = p {
        out.push(("indexes", p.report()));
    }
    Ok(Value::map(out))
}

async fn control_query_index(agent: &Agent, args: &Value) -> ControlResult {
    let q = args
        .get("query")
        .ok_or_else(|| ControlError::BadArgs("query is required".into()))?;
    let query = IndexQuery::from_value(q).map_err(|e| ControlError::mtp(&e))?;
    let names = match (
        args.get("index").and_then(Value::as_text),
        strings_arg(args, "indexes"),
    ) {
        (_, Some(list)) => list,
        (Some("*") | Some("all") | None, None) => index_names(agent, None),
        (Some(one), None) => vec![one.to_owned()],
    };
    if names.is_empty() {
        return Err(ControlError::BadArgs("no index to query".into()));
    }
    let results = federated_query(agent, &names, &query)
        .await
        .map_err(|e| mtp(&e))?;
    let items = results
        .iter()
        .map(|r| {
            mtp_protocol::cbor::to_vec(&index_result_value(r))
                .map(Value::Bytes)
                .map_err(|e| ControlError::Internal(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Value::map([("results", Value::Array(items))]))
}

/// `Index/*` handlers share this: the frame's peer, for audit and errors.
pub(crate) fn peer_of<T>(request: &tonic::Request<T>) -> Option<String> {
    crate::transport::sync::session(request).and_then(|s| s.peer_label.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::Bound;
    use crate::config::AgentConfig;

    fn agent(dir: &std::path::Path, serve_index: bool) -> Agent {
        let config = AgentConfig {
            state_dir: dir.to_path_buf(),
            serve_index,
            ..AgentConfig::default()
        };
        Agent::new(
            config,
            [5; 32],
            &Bound {
                sync_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 1)),
                nats: None,
            },
        )
        .expect("agent")
    }

    #[test]
    fn templates_merge_deeply_and_fill_every_mandatory_field() {
        let base = Value::map([
            (
                "a",
                Value::map([("x", Value::from(1u64)), ("y", Value::from(2u64))]),
            ),
            ("b", Value::from(3u64)),
        ]);
        let merged = merge_template(
            base,
            &Value::map([("a", Value::map([("y", Value::from(9u64))]))]),
        );
        assert_eq!(
            merged.get("a").and_then(|a| a.get("x")),
            Some(&Value::from(1u64))
        );
        assert_eq!(
            merged.get("a").and_then(|a| a.get("y")),
            Some(&Value::from(9u64))
        );
        assert_eq!(merged.get("b"), Some(&Value::from(3u64)));

        let dir = tempfile::tempdir().expect("dir");
        let a = agent(dir.path(), false);
        for c in Category::ALL {
            let t = Value::map([("value_type", Value::text(c.name()))]);
            let offer = build_offer(&a, &t).unwrap_or_else(|e| panic!("{c}: {e}"));
            let key = a.assertion_key(&a.did()).expect("key");
            offer.verify_signature(&key).expect("signed by the agent");
            assert_eq!(offer.agent_id.as_str(), a.did());
        }
        // A template value that cannot become a valid Offer is refused, not "fixed".
        let bad = Value::map([(
            "terms_template",
            Value::map([(
                "quality",
                Value::map([("accuracy_threshold", Value::from(7u64))]),
            )]),
        )]);
        assert!(build_offer(&a, &bad).is_err());
        // Required extensions (PROFILE G-50): declined with 2103 unless declared.
        let ext = Value::Array(vec![Value::map([
            ("id", Value::text("lemay.ext.data_access")),
            ("version", Value::text("1.0.0")),
        ])]);
        let t = Value::map([("required_extensions", ext.clone())]);
        let offer = build_offer(&a, &t).expect("offer");
        let e = check_required_extensions(&a, &offer.unknown).expect_err("unsupported");
        assert_eq!(e.code(), ErrorCode::RequiredExtensionUnsupported);
        let with_ext = build_manifest(&a, &Value::map([("extensions", ext)])).expect("manifest");
        a.discovery.lock().manifest = Some(with_ext);
        check_required_extensions(&a, &offer.unknown).expect("declared");
        a.discovery.lock().manifest = None;
        let m1 = build_manifest(&a, &Value::map::<&str>([])).expect("manifest");
        a.discovery.lock().manifest = Some(m1.clone());
        let m2 = build_manifest(&a, &Value::map::<&str>([])).expect("manifest");
        assert!(m2.revision > m1.revision);
        assert_ne!(m1.manifest_id, m2.manifest_id);
    }

    #[test]
    fn offer_keys_outside_the_schema_need_a_declared_extension() {
        let dir = tempfile::tempdir().expect("dir");
        let a = agent(dir.path(), false);
        // SPEC-II-03: an undeclared key is refused (0103) ...
        let t = Value::map([("x-unapproved", Value::from(1u64))]);
        let e = build_offer(&a, &t).expect_err("undeclared key");
        assert_eq!(e.code(), ErrorCode::SchemaViolation);
        // ... a key of a declared extension is kept in the signed Offer.
        let ext = Value::Array(vec![Value::map([
            ("id", Value::text("lemay.ext.demo")),
            ("version", Value::text("1.0.0")),
        ])]);
        let m = build_manifest(&a, &Value::map([("extensions", ext)])).expect("manifest");
        a.discovery.lock().manifest = Some(m);
        let t = Value::map([("lemay.ext.demo.note", Value::text("x"))]);
        let offer = build_offer(&a, &t).expect("declared key");
        assert!(offer.to_value().get("lemay.ext.demo.note").is_some());
        assert!(build_offer(&a, &Value::map([("lemay.ext.demox", Value::from(1u64))])).is_err());
        // `price` at the top level is the Terms Template's price (docs/iut-contract.md).
        let t = Value::map([(
            "price",
            Value::map([("amount", Value::from(5u64)), ("unit", Value::text("USD"))]),
        )]);
        let v = build_offer(&a, &t).expect("offer").to_value();
        assert!(v.get("price").is_none());
        assert_eq!(
            v.get("terms_template")
                .and_then(|t| t.get("price"))
                .and_then(|p| p.get("amount")),
            Some(&Value::from(5u64))
        );
    }

    #[tokio::test]
    async fn own_index_receives_publications_and_their_revocation() {
        let dir = tempfile::tempdir().expect("dir");
        let a = agent(dir.path(), true);
        let me = a.did();
        let offer = build_offer(
            &a,
            &Value::map([("value_type", Value::text("inference.text"))]),
        )
        .expect("offer");
        let id = offer.offer_id;
        publish_offer(&a, offer, Some(vec![me.clone()]), Some(false))
            .await
            .expect("published to its own index");
        assert!(a.discovery.index().offer(&id).is_some());
        assert!(a.discovery.index().manifest_of(&me).is_some());
        let q = IndexQuery {
            value_type: Classifier::parse("Inference").expect("classifier"),
            constraints: None,
            counterparty: None,
            limit: None,
            cursor: None,
            unknown: Vec::new(),
        };
        let found = federated_query(&a, std::slice::from_ref(&me), &q)
            .await
            .expect("query");
        assert_eq!(found.len(), 1);
        // SPEC-III-B-3-01: the revocation reaches the index the Offer was published to.
        revoke_offer(&a, &id).await.expect("revoked");
        assert!(a.discovery.index().is_revoked(&id));
        assert!(a.discovery.index().offer(&id).is_none());
    }

    #[tokio::test]
    async fn index_pages_results_and_forgets_revoked_offers() {
        let dir = tempfile::tempdir().expect("dir");
        let a = agent(dir.path(), true);
        let mut ids = Vec::new();
        for _ in 0..3 {
            let o = build_offer(
                &a,
                &Value::map([("value_type", Value::text("compute.gpu"))]),
            )
            .expect("offer");
            ids.push(o.offer_id);
            a.discovery
                .lock()
                .offers
                .insert(*o.offer_id.as_bytes(), o.clone());
            let f = Frame::new("offer", o.to_value()).expect("frame");
            crate::services::index::ingest(&a, &f, None)
                .await
                .expect("offer");
        }
        let m = build_manifest(&a, &Value::map::<&str>([])).expect("manifest");
        let f = Frame::new("manifest", m.to_value()).expect("frame");
        crate::services::index::ingest(&a, &f, None)
            .await
            .expect("manifest");
        let mut q = IndexQuery {
            value_type: Classifier::parse("compute").expect("classifier"),
            constraints: None,
            counterparty: None,
            limit: Some(2),
            cursor: None,
            unknown: Vec::new(),
        };
        let p1 = crate::services::index::query(&a, &q).expect("page 1");
        assert_eq!(p1.results.len(), 2);
        q.cursor = p1.cursor.clone();
        let p2 = crate::services::index::query(&a, &q).expect("page 2");
        assert_eq!(p2.results.len(), 1);
        assert!(p2.cursor.is_none());
        // Another category does not match.
        q.value_type = Classifier::parse("inference").expect("classifier");
        q.cursor = None;
        assert!(
            crate::services::index::query(&a, &q)
                .expect("q")
                .results
                .is_empty()
        );
        // A revocation notice by the offering agent removes the Offer at once.
        let mut n = OfferRevocation {
            offer_id: ids[0],
            agent_id: a.keys.did.clone(),
            revoked_at: a.now(),
            signature: None,
            unknown: Map::new(),
        };
        n.sign(&a.keys.signing, Some(identity::own_key_id(&a)))
            .expect("sign");
        let f = Frame::new("offer_revocation", n.to_value()).expect("frame");
        crate::services::index::ingest(&a, &f, None)
            .await
            .expect("revoke");
        q.value_type = Classifier::parse("compute").expect("classifier");
        q.limit = None;
        let all = crate::services::index::query(&a, &q).expect("q");
        assert_eq!(all.results.len(), 2);
        assert!(all.results.iter().all(|r| r.offer.offer_id != ids[0]));
        // A tampered manifest is refused with 2100.
        let mut bad = m.clone();
        bad.revision += 10;
        let f = Frame::new("manifest", bad.to_value()).expect("frame");
        let e = crate::services::index::ingest(&a, &f, None)
            .await
            .expect_err("tampered");
        assert_eq!(e.code(), ErrorCode::ManifestSignatureInvalid);
    }
}
