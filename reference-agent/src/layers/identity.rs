//! Identity Layer (SPEC III-A, BIND II–III): counterparty identity, delegation chain and
//! revocation checks; credentials this agent holds and issues; DID resolution (registry
//! first, peer path as fallback) and this agent's own signed DID history.
//!
//! What the Principal provisions (test-control `provision`) lives in [`State`]: the
//! Principal's DID, the delegation chain (ADC JSON-LD texts, kept byte-exact), status-list
//! credentials by URL (plus those learned from peers), SD-JWT disclosures for the last link
//! and the range-proof holder secret (with the hidden limit the holder proves against).
//! Every validity decision is `mtp_protocol`'s (`identity::{delegation, status_list,
//! disclosure, authority_proof, resolution}`); this module gathers inputs, does the I/O and
//! records the outcome (audit trail, events, warnings).
//!
//! Registry role (PROFILE G-32 resolution): an agent started with `serve_index` also serves
//! as a DID Registry — it answers `Agent/ResolveDid` for every DID whose verified history it
//! holds (its own, and every history it verified while resolving). A client uses as
//! registries the peers given the `registry` role (`add_peer`), else its configured indexes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use mtp_protocol::cbor::Value;
use mtp_protocol::error_record::{Notification, NotificationType};
use mtp_protocol::errors::{Coded, ErrorCode, RetryDecision, after_failure};
use mtp_protocol::identity::authority_proof::{
    self, AuthorityProofError, MinorAmount, ProofContext, ZkRangeProof,
};
use mtp_protocol::identity::credential::{self, Credential, CredentialError, ProofOptions};
use mtp_protocol::identity::delegation::{
    self, AuthorityDelegation, ChainContext, ChainError, DelegationError, EffectiveAuthority,
    EnforcementError, MaxTransactionValue,
};
use mtp_protocol::identity::disclosure::{
    self, Disclosure, DisclosureError, KeyBinding, SdCredential,
};
use mtp_protocol::identity::resolution::{
    DidHistory, DidResolutionRequest, DidResolutionResponse, DidUpdate, DualPathResolution,
    NextAction, PathOutcome, Registry, ResolutionError, ResolutionPath,
};
use mtp_protocol::identity::status_list::{
    MIN_LIST_BITS, StatusListCredential, StatusListError, StatusListFormat, StatusListIssuer,
    StatusPurpose, StatusSource,
};
use mtp_protocol::identity::{AnyDid, Did, DidDocument, DidError};
use mtp_protocol::primitives::common::{Map, ObjectError, PriceSpec, PriceUnit};
use mtp_protocol::primitives::request::{
    AuthorityAttestation, AuthorityProof, DelegationLink, Request as MtpRequest,
};
use mtp_protocol::primitives::{CborObject, SingleSigned};
use mtp_protocol::taxonomy::Classifier;
use mtp_protocol::time::Timestamp;
use mtp_protocol::uuid::MtpUuid;
use mtp_protocol::verification::Decimal;
use tonic::{Request, Response, Status};

use crate::agent::{Agent, AgentError};
use crate::services::control::{ControlError, ControlResult};
use crate::transport::sync::framing::{self, ErrorContext, RemoteError, Rpc};
use crate::transport::sync::pb;

/// Deliberate defects of this layer (`crate::faults`).
pub const FAULTS: &[crate::faults::Fault] = &[
    crate::faults::Fault {
        name: "skip-chain-principal-check",
        breaks: "SPEC-I-B-02, SPEC-I-B-03",
        description: "takes the Principal of a Request's chain from its first link instead of checking it against principal_did",
    },
    crate::faults::Fault {
        name: "skip-scope-check",
        breaks: "SPEC-III-A-01",
        description: "does not check a Request's value type and scope against the delegated scope",
    },
    crate::faults::Fault {
        name: "skip-max-value-check",
        breaks: "SPEC-III-A-01",
        description: "does not check max_tx_value and budget_ceiling against the delegated maximum transaction value",
    },
    crate::faults::Fault {
        name: "skip-jurisdiction-check",
        breaks: "SPEC-III-A-01",
        description: "does not check a Request's jurisdictions against the permitted jurisdictions",
    },
    crate::faults::Fault {
        name: "stale-status-list",
        breaks: "SPEC-III-A-3-02, SPEC-III-A-3-01, BIND-III-B-I01",
        description: "keeps the first status list learned for a URL and ignores newer ones",
    },
    crate::faults::Fault {
        name: "fixed-delegation-depth",
        breaks: "SPEC-III-A-2-02",
        description: "refuses delegation chains longer than one link (1101)",
    },
    crate::faults::Fault {
        name: "revocation-not-published",
        breaks: "SPEC-III-A-3-01, SPEC-III-A-3-02",
        description: "revoke_credential sets the bit but keeps serving and checking against the old status list",
    },
    crate::faults::Fault {
        name: "issue-beyond-own-authority",
        breaks: "SPEC-III-A-2-05",
        description: "delegate issues a sub-delegation without the subset check against its own last link",
    },
    crate::faults::Fault {
        name: "peer-resolution-only-as-registry",
        breaks: "BIND-II-B-01",
        description: "answers a peer DID Resolution Request for its own DID only from its registry (1200 otherwise)",
    },
    crate::faults::Fault {
        name: "resolution-no-retry",
        breaks: "SPEC-VI-02, SPEC-VI-I03",
        description: "a DID resolution failing on both paths (1200, Recoverable) is escalated at once, without a retry",
    },
    crate::faults::Fault {
        name: "resolution-retry-beyond-limit",
        breaks: "SPEC-VI-02",
        description: "a DID resolution failing with 1200 is retried up to 10 times instead of RETRY_LIMIT (3)",
    },
    crate::faults::Fault {
        name: "resolution-retry-without-backoff",
        breaks: "SPEC-VI-02",
        description: "a DID resolution failing with 1200 is retried at once, without the G-08 back-off",
    },
    crate::faults::Fault {
        name: "resolution-skips-update-chain",
        breaks: "BIND-II-B-03",
        description: "trusts the document of a peer's DID resolution response without verifying its update history",
    },
    crate::faults::Fault {
        name: "registry-indexes-unverified-history",
        breaks: "BIND-II-B-04",
        description: "as a registry, keeps and serves a peer's DID history even when its updates do not verify",
    },
    crate::faults::Fault {
        name: "registry-latest-version-only",
        breaks: "BIND-II-B-05",
        description: "as a registry, answers only the latest version of a DID Document (earlier versions: 1200)",
    },
    crate::faults::Fault {
        name: "did-update-signed-by-new-key",
        breaks: "BIND-II-B-03",
        description: "signs its own key-rotating DID Update Transaction with the new authentication key instead of the current one",
    },
    crate::faults::Fault {
        name: "did-update-not-published",
        breaks: "BIND-II-B-I02",
        description: "update_did changes the DID Document but publishes no DID Update Transaction (resolution keeps serving the old version)",
    },
    crate::faults::Fault {
        name: "present-every-disclosure",
        breaks: "SPEC-III-A-1-07",
        description: "an SD-JWT presentation discloses every provisioned claim, ignoring the claims asked for",
    },
    crate::faults::Fault {
        name: "present-credential-without-proof",
        breaks: "SPEC-III-A-1-04",
        description: "presents its delegation credential in an SD-JWT presentation with its Data Integrity proof stripped",
    },
];

/// Test-control actions of this layer (docs/iut-contract.md); `delegate` is an extension
/// (sub-delegation, SPEC-III-A-2-03).
pub const ACTIONS: &[&str] = &[
    "provision",
    "resolve_did",
    "revoke_credential",
    "delegate",
    "update_did",
];

/// Deadline of one resolution call on one path (PROFILE G-32: a timeout is 1200).
pub const RESOLUTION_TIMEOUT: Duration = Duration::from_secs(5);

/// This layer's state inside the agent.
#[derive(Debug, Default)]
pub struct State {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    principal: Option<String>,
    /// The delegation chain, Principal first: the texts as provisioned (byte-exact,
    /// PROFILE G-04) and their parsed form.
    chain_texts: Vec<String>,
    chain: Vec<Credential>,
    /// Status-list credentials by URL (provisioned, learned from peers, own).
    status_lists: BTreeMap<String, Credential>,
    /// SD-JWT disclosures of the last chain link (PROFILE G-35).
    sd_disclosures: Vec<String>,
    /// Holder secret of zk_range proofs (PROFILE G-36); derived from the seed when absent.
    range_secret: Option<[u8; 32]>,
    /// The hidden limit of the last link, known to the holder (PROFILE G-36).
    hidden_limit: Option<PriceSpec>,
    /// This agent's own DID Update Transactions as published, version 1 first (signed by
    /// its initial key; each later one by the authentication key it replaces, BIND-II-B-03).
    own_updates: Vec<DidUpdate>,
    /// The current authentication key and its DID URL once rotated (`update_did`); the
    /// initial key before.
    auth_key: Option<(mtp_protocol::crypto::SigningKey, String)>,
    /// Key rotations so far (`update_did`).
    rotations: u32,
    /// Registry defect `registry-indexes-unverified-history`: peer answers kept unverified.
    unverified: BTreeMap<String, DidResolutionResponse>,
    /// Verified histories of other DIDs (served when this agent is a registry).
    registry: Registry,
    /// Roles given to peers by `add_peer` (`agent`, `index`, `registry`, `principal`).
    roles: BTreeMap<String, BTreeSet<String>>,
    /// The revocation list of the credentials this agent issues (sub-delegations).
    issuer: Option<StatusListIssuer>,
    /// Credentials this agent issued, by credential id → status-list index.
    issued: BTreeMap<String, u64>,
}

impl State {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The provisioned Principal DID.
    pub fn principal(&self) -> Option<String> {
        self.lock().principal.clone()
    }

    /// The provisioned delegation chain (texts, Principal first).
    pub fn chain_texts(&self) -> Vec<String> {
        self.lock().chain_texts.clone()
    }

    /// Every status-list credential known to the agent, by URL.
    pub fn status_lists(&self) -> BTreeMap<String, Credential> {
        self.lock().status_lists.clone()
    }

    /// Peers having `role` (`add_peer` roles), in DID order.
    pub fn peers_with_role(&self, role: &str) -> Vec<String> {
        self.lock()
            .roles
            .iter()
            .filter(|(_, r)| r.contains(role))
            .map(|(d, _)| d.clone())
            .collect()
    }

    /// Records roles of a peer (`add_peer`).
    pub fn set_roles(&self, did: &str, roles: impl IntoIterator<Item = String>) {
        self.lock()
            .roles
            .entry(did.to_owned())
            .or_default()
            .extend(roles);
    }
}

impl StatusSource for Inner {
    fn status_list_credential(&self, url: &str) -> Result<Credential, StatusListError> {
        if let Some(c) = self.status_lists.get(url) {
            return Ok(c.clone());
        }
        match &self.issuer {
            Some(i) => i.status_list_credential(url),
            None => Err(StatusListError::Unavailable {
                url: url.to_owned(),
            }),
        }
    }
}

/// Why a counterparty's identity or authority was refused, or an identity operation failed
/// (SPEC III-A). The code is the protocol's.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("not implemented")]
    Unimplemented,
    /// No delegation chain (or Principal) has been provisioned (1101).
    #[error("no delegation chain provisioned")]
    NotProvisioned,
    #[error("{0}")]
    Chain(Box<ChainError>),
    #[error("outside the delegated authority: {0}")]
    Enforcement(Box<EnforcementError>),
    #[error("credential: {0}")]
    Credential(Box<CredentialError>),
    #[error("delegation: {0}")]
    Delegation(Box<DelegationError>),
    #[error("status list: {0}")]
    Status(Box<StatusListError>),
    #[error("selective disclosure: {0}")]
    Disclosure(Box<DisclosureError>),
    #[error("zk_range authority proof: {0}")]
    RangeProof(Box<AuthorityProofError>),
    /// The authority proof does not fit the Request (1101).
    #[error("authority proof: {0}")]
    Presentation(String),
    #[error("DID resolution: {0}")]
    Resolution(Box<ResolutionError>),
    /// 1200 retried up to the retry limit, then escalated (SPEC-VI-02; PROFILE G-17).
    #[error("DID resolution of {did} failed after {attempts} attempts: {last}")]
    ResolutionEscalated {
        did: String,
        attempts: u32,
        last: Box<ResolutionError>,
    },
    #[error(transparent)]
    Agent(Box<AgentError>),
    #[error("object: {0}")]
    Object(Box<ObjectError>),
    #[error("DID: {0}")]
    Did(Box<DidError>),
    /// A malformed provisioning or control input.
    #[error("bad input: {0}")]
    BadInput(String),
}

impl From<ChainError> for IdentityError {
    fn from(e: ChainError) -> Self {
        IdentityError::Chain(Box::new(e))
    }
}

impl From<EnforcementError> for IdentityError {
    fn from(e: EnforcementError) -> Self {
        IdentityError::Enforcement(Box::new(e))
    }
}

impl From<CredentialError> for IdentityError {
    fn from(e: CredentialError) -> Self {
        IdentityError::Credential(Box::new(e))
    }
}

impl From<DelegationError> for IdentityError {
    fn from(e: DelegationError) -> Self {
        IdentityError::Delegation(Box::new(e))
    }
}

impl From<StatusListError> for IdentityError {
    fn from(e: StatusListError) -> Self {
        IdentityError::Status(Box::new(e))
    }
}

impl From<DisclosureError> for IdentityError {
    fn from(e: DisclosureError) -> Self {
        IdentityError::Disclosure(Box::new(e))
    }
}

impl From<AuthorityProofError> for IdentityError {
    fn from(e: AuthorityProofError) -> Self {
        IdentityError::RangeProof(Box::new(e))
    }
}

impl From<ResolutionError> for IdentityError {
    fn from(e: ResolutionError) -> Self {
        IdentityError::Resolution(Box::new(e))
    }
}

impl From<AgentError> for IdentityError {
    fn from(e: AgentError) -> Self {
        IdentityError::Agent(Box::new(e))
    }
}

impl From<ObjectError> for IdentityError {
    fn from(e: ObjectError) -> Self {
        IdentityError::Object(Box::new(e))
    }
}

impl From<DidError> for IdentityError {
    fn from(e: DidError) -> Self {
        IdentityError::Did(Box::new(e))
    }
}

impl mtp_protocol::errors::Coded for IdentityError {
    fn code(&self) -> ErrorCode {
        match self {
            IdentityError::Unimplemented
            | IdentityError::NotProvisioned
            | IdentityError::Presentation(_) => ErrorCode::AuthorityAttestationInvalid,
            IdentityError::Chain(e) => e.code(),
            IdentityError::Enforcement(e) => e.code(),
            IdentityError::Credential(e) => e.code(),
            IdentityError::Delegation(e) => e.code(),
            IdentityError::Status(e) => e.code(),
            IdentityError::Disclosure(e) => e.code(),
            IdentityError::RangeProof(e) => e.code(),
            IdentityError::Resolution(e) => e.code(),
            IdentityError::ResolutionEscalated { .. } => ErrorCode::DidResolutionTimeout,
            IdentityError::Agent(e) => e.code(),
            IdentityError::Object(e) => e.code(),
            IdentityError::Did(e) => e.code(),
            IdentityError::BadInput(_) => ErrorCode::SchemaViolation,
        }
    }

    fn requirement(&self) -> Option<&'static str> {
        match self {
            IdentityError::Chain(e) => e.requirement(),
            IdentityError::Enforcement(e) => e.requirement(),
            IdentityError::Credential(e) => e.requirement(),
            IdentityError::Delegation(e) => e.requirement(),
            IdentityError::Status(e) => e.requirement(),
            IdentityError::Disclosure(e) => e.requirement(),
            IdentityError::RangeProof(e) => e.requirement(),
            IdentityError::Resolution(e) => e.requirement(),
            IdentityError::ResolutionEscalated { .. } => Some("SPEC-VI-02"),
            IdentityError::NotProvisioned => Some("SPEC-III-A-2-06"),
            _ => None,
        }
    }
}

impl IdentityError {
    /// A revocation after commit: the dispute path, not a refusal (PROFILE G-55).
    pub fn is_dispute(&self) -> bool {
        matches!(self, IdentityError::Chain(e) if e.is_dispute())
    }
}

// ---------------------------------------------------------------------------------------
// Test-control actions
// ---------------------------------------------------------------------------------------

/// This layer's test-control actions (docs/iut-contract.md); `None` for other actions.
pub async fn control(agent: &Agent, action: &str, args: &Value) -> Option<ControlResult> {
    Some(match action {
        "provision" => provision(agent, args).map_err(|e| control_error(&e)),
        "resolve_did" => control_resolve(agent, args).await,
        "revoke_credential" => control_revoke(agent, args).await,
        "delegate" => control_delegate(agent, args),
        "update_did" => control_update_did(agent, args),
        // Broadcast by the control service after its own handling (`add_peer` calls
        // `on_add_peer` itself).
        "reset" => {
            reset(agent);
            Ok(Value::map::<&str>([]))
        }
        _ => return None,
    })
}

fn control_error(e: &IdentityError) -> ControlError {
    match e {
        IdentityError::BadInput(m) => ControlError::BadArgs(m.clone()),
        other => ControlError::mtp(other),
    }
}

fn text_arg<'a>(args: &'a Value, key: &str) -> Option<&'a str> {
    args.get(key).and_then(Value::as_text)
}

/// `provision`: installs what the Principal issued to this agent (docs/iut-contract.md).
/// Fields present replace the previous ones; `status_lists` are merged.
pub fn provision(agent: &Agent, args: &Value) -> Result<Value, IdentityError> {
    let bad = |m: &str| IdentityError::BadInput(m.to_owned());
    let principal = match args.get("principal") {
        None => None,
        Some(v) => {
            let p = v
                .as_text()
                .ok_or_else(|| bad("principal must be a DID string"))?;
            AnyDid::parse(p)?;
            Some(p.to_owned())
        }
    };
    let chain = match args.get("delegation_chain") {
        None => None,
        Some(v) => {
            let items = v
                .as_array()
                .ok_or_else(|| bad("delegation_chain must be an array of texts"))?;
            let mut texts = Vec::with_capacity(items.len());
            let mut creds = Vec::with_capacity(items.len());
            for i in items {
                let t = i
                    .as_text()
                    .ok_or_else(|| bad("delegation_chain items must be texts"))?;
                creds.push(Credential::from_json(t)?);
                texts.push(t.to_owned());
            }
            Some((texts, creds))
        }
    };
    let lists = match args.get("status_lists") {
        None => Vec::new(),
        Some(v) => parse_status_lists(v)?,
    };
    let disclosures = match args.get("sd_disclosures") {
        None => None,
        Some(v) => {
            let items = v
                .as_array()
                .ok_or_else(|| bad("sd_disclosures must be an array of texts"))?;
            let mut out = Vec::new();
            for i in items {
                let t = i
                    .as_text()
                    .ok_or_else(|| bad("sd_disclosures items must be texts"))?;
                Disclosure::parse(t)?;
                out.push(t.to_owned());
            }
            Some(out)
        }
    };
    let secret = match args.get("range_secret") {
        None => None,
        Some(v) => Some(
            v.as_bytes()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| bad("range_secret must be 32 bytes"))?,
        ),
    };
    let hidden_limit = match args.get("hidden_limit") {
        None => None,
        Some(v) => Some(
            PriceSpec::from_value(v, "hidden_limit", "SPEC-III-A-1-08")
                .map_err(|e| bad(&format!("hidden_limit: {e:?}")))?,
        ),
    };
    {
        let mut g = agent.identity.lock();
        if let Some(p) = principal {
            g.principal = Some(p);
        }
        if let Some((texts, creds)) = chain {
            g.chain_texts = texts;
            g.chain = creds;
            // Disclosures belong to the last link: a new chain without them has none
            // (PROFILE G-35).
            if disclosures.is_none() {
                g.sd_disclosures.clear();
            }
        }
        for (url, c) in lists {
            g.status_lists.insert(url, c);
        }
        if let Some(d) = disclosures {
            g.sd_disclosures = d;
        }
        if let Some(s) = secret {
            g.range_secret = Some(s);
        }
        if let Some(h) = hidden_limit {
            g.hidden_limit = Some(h);
        }
    }
    Ok(Value::map([("did", Value::text(agent.did()))]))
}

/// `status_lists: { url => credential JSON text }`.
fn parse_status_lists(v: &Value) -> Result<Vec<(String, Credential)>, IdentityError> {
    let entries = v
        .as_map()
        .ok_or_else(|| IdentityError::BadInput("status_lists must be a map".into()))?;
    let mut out = Vec::with_capacity(entries.len());
    for (k, v) in entries {
        let (Some(url), Some(text)) = (k.as_text(), v.as_text()) else {
            return Err(IdentityError::BadInput(
                "status_lists must map URL texts to credential texts".into(),
            ));
        };
        out.push((url.to_owned(), Credential::from_json(text)?));
    }
    Ok(out)
}

/// What `add_peer` adds to the identity layer: the peer's roles and status lists it hosts
/// (`add_peer-args`, protocol/wire/control.cddl). Call after `Agent::add_peer`.
pub fn on_add_peer(agent: &Agent, did: &str, args: &Value) -> Result<(), IdentityError> {
    if let Some(roles) = args.get("roles").and_then(Value::as_array) {
        agent.identity.set_roles(
            did,
            roles
                .iter()
                .filter_map(Value::as_text)
                .map(str::to_owned)
                .collect::<Vec<_>>(),
        );
    }
    if let Some(v) = args.get("status_lists") {
        for (url, c) in parse_status_lists(v)? {
            learn_status_list(agent, &url, c);
        }
    }
    Ok(())
}

/// Keeps a status-list credential learned from a peer, unless a list with a later
/// publication time is already known for that URL (the list's proof is checked when an
/// entry is checked, `status_list::check_entry`).
pub fn learn_status_list(agent: &Agent, url: &str, list: Credential) {
    let published = |c: &Credential| {
        StatusListCredential::from_credential(c)
            .ok()
            .and_then(|p| p.published_at)
    };
    let mut g = agent.identity.lock();
    let newer = match g.status_lists.get(url) {
        Some(_) if agent.fault("stale-status-list") => false,
        Some(old) => published(&list) >= published(old),
        None => true,
    };
    if newer {
        g.status_lists.insert(url.to_owned(), list);
    }
}

/// Forgets protocol state (`reset`): peer roles and lists learned from peers go; identity,
/// provisioned credentials and issued credentials stay (docs/iut-contract.md rule 4).
pub fn reset(agent: &Agent) {
    let mut g = agent.identity.lock();
    g.roles.clear();
    g.registry = Registry::new();
    g.unverified.clear();
}

async fn control_resolve(agent: &Agent, args: &Value) -> ControlResult {
    let did =
        text_arg(args, "did").ok_or_else(|| ControlError::BadArgs("did is required".into()))?;
    let choice = match text_arg(args, "path") {
        None | Some("auto") => PathChoice::Auto,
        Some("registry") => PathChoice::Registry,
        Some("peer") => PathChoice::Peer,
        Some(other) => return Err(ControlError::BadArgs(format!("unknown path {other:?}"))),
    };
    let r = resolve_did_with(agent, did, choice)
        .await
        .map_err(|e| ControlError::mtp(&e))?;
    Ok(Value::map([
        ("document", Value::text(r.document.to_json())),
        (
            "path",
            Value::text(match r.path {
                ResolutionPath::Registry => "registry",
                ResolutionPath::Peer => "peer",
            }),
        ),
        ("version", Value::from(r.version)),
    ]))
}

async fn control_revoke(agent: &Agent, args: &Value) -> ControlResult {
    let id = text_arg(args, "credential_id")
        .ok_or_else(|| ControlError::BadArgs("credential_id is required".into()))?;
    let list = revoke_credential(agent, id).await.map_err(|e| match e {
        IdentityError::BadInput(m) => ControlError::NotFound(m),
        other => ControlError::mtp(&other),
    })?;
    Ok(Value::map([("status_list", Value::text(list.to_json()))]))
}

fn control_delegate(agent: &Agent, args: &Value) -> ControlResult {
    let subject = text_arg(args, "subject")
        .ok_or_else(|| ControlError::BadArgs("subject is required".into()))?;
    let subject = Did::parse(subject).map_err(|e| ControlError::BadArgs(e.to_string()))?;
    let scope = match args.get("scope").and_then(Value::as_array) {
        None => None,
        Some(items) => Some(
            items
                .iter()
                .map(|c| {
                    c.as_text()
                        .and_then(|t| Classifier::parse(t).ok())
                        .ok_or_else(|| ControlError::BadArgs("scope: classifiers".into()))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let max = match args.get("max_transaction_value") {
        None => None,
        Some(v) => Some(
            PriceSpec::from_value(v, "max_transaction_value", "SPEC-III-A-2-04")
                .map_err(|e| ControlError::BadArgs(format!("{e:?}")))?,
        ),
    };
    let c = delegate(agent, &subject, scope, max).map_err(|e| control_error(&e))?;
    let list = agent
        .identity
        .lock()
        .issuer
        .as_ref()
        .and_then(|i| i.current().cloned());
    // The chain the subject presents (PROFILE G-04): this agent's links, then the new one.
    let mut links: Vec<Value> = {
        let g = agent.identity.lock();
        g.chain_texts
            .iter()
            .zip(&g.chain)
            .filter_map(|(text, cred)| {
                let adc = AuthorityDelegation::from_credential(cred).ok()?;
                Some(Value::map([
                    ("issuer", Value::text(adc.issuer)),
                    ("subject", Value::text(adc.subject.as_str())),
                    ("credential", Value::text(text.clone())),
                ]))
            })
            .collect()
    };
    links.push(Value::map([
        ("issuer", Value::text(agent.did())),
        ("subject", Value::text(subject.as_str())),
        ("credential", Value::text(c.to_json())),
    ]));
    let mut out = vec![
        ("chain", Value::Array(links)),
        ("credential", Value::text(c.to_json())),
        (
            "credential_id",
            Value::text(c.id().unwrap_or_default().to_owned()),
        ),
    ];
    if let Some(l) = list {
        out.push(("status_list", Value::text(l.to_json())));
    }
    Ok(Value::map(out))
}

// ---------------------------------------------------------------------------------------
// Issued credentials: sub-delegation and revocation (SPEC-III-A-2-03, SPEC-III-A-3-01)
// ---------------------------------------------------------------------------------------

/// The verification method of this agent's assertion key (`did#key-1`).
pub fn own_key_id(agent: &Agent) -> String {
    agent
        .document()
        .assertion_keys()
        .into_iter()
        .next()
        .map(|(id, _, _)| id)
        .unwrap_or_else(|| agent.keys.did.url("key-1"))
}

/// URL of this agent's revocation list (a URN: lists travel with `add_peer` / NATS, they
/// are never fetched).
pub fn own_status_list_url(agent: &Agent) -> String {
    format!(
        "urn:mtp:status:{}:revocation",
        agent.keys.did.method_specific_id()
    )
}

/// Delegates a subset of this agent's authority to `subject` (hierarchical delegation,
/// SPEC-III-A-2-03): an ADC issued by this agent, within its own last link (the subset rule
/// is re-checked here, SPEC-III-A-2-04), with a revocation entry in this agent's list.
pub fn delegate(
    agent: &Agent,
    subject: &Did,
    scope: Option<Vec<Classifier>>,
    max: Option<PriceSpec>,
) -> Result<Credential, IdentityError> {
    let now = agent.now();
    let (principal, parent) = {
        let g = agent.identity.lock();
        let p = g.principal.clone().ok_or(IdentityError::NotProvisioned)?;
        let last = g.chain.last().ok_or(IdentityError::NotProvisioned)?;
        (p, AuthorityDelegation::from_credential(last)?)
    };
    let mut child = parent.clone();
    child.issuer = agent.did();
    child.principal = Some(principal);
    child.subject = subject.clone();
    if let Some(s) = scope {
        child.scope = s;
    }
    if let Some(m) = max {
        let d = Decimal::from_number(&m.amount)
            .map_err(|e| IdentityError::BadInput(format!("max_transaction_value: {e}")))?;
        child.max_transaction_value = MaxTransactionValue::new(d, m.unit.as_str())?;
        child.max_transaction_value_commitment = None;
    }
    child.constraints = serde_json::Map::new();
    child.valid_from = parent.valid_from.max(now.add_secs(-60).unwrap_or(now));
    child.id = Some(format!("urn:mtp:adc:{}", hex::encode(agent.random::<16>())));
    if !agent.fault("issue-beyond-own-authority") {
        child.check_subset_of(&parent)?;
    }
    let key_id = own_key_id(agent);
    let (entry, issuer_list) = {
        let mut g = agent.identity.lock();
        if g.issuer.is_none() {
            g.issuer = Some(StatusListIssuer::new(
                &own_status_list_url(agent),
                &agent.did(),
                StatusListFormat::StatusList2021,
                StatusPurpose::Revocation,
                MIN_LIST_BITS,
                agent.keys.signing.clone(),
                &key_id,
            )?);
        }
        let issuer = g.issuer.as_mut().ok_or(IdentityError::NotProvisioned)?;
        let entry = issuer.allocate()?;
        let list = match issuer.current() {
            Some(c) => c.clone(),
            None => issuer.publish(now)?,
        };
        (entry, list)
    };
    child.status = vec![entry.clone()];
    let unsigned = child.to_unsigned_credential()?;
    let signed = credential::sign(
        &unsigned,
        &agent.keys.signing,
        &ProofOptions {
            verification_method: key_id,
            created: now,
        },
    )?;
    let mut g = agent.identity.lock();
    if let Some(id) = &child.id {
        g.issued.insert(id.clone(), entry.index);
    }
    g.status_lists
        .insert(own_status_list_url(agent), issuer_list);
    Ok(signed)
}

/// Revokes a credential this agent issued: sets its bit and publishes a new list whose
/// `validFrom` is the revocation time (PROFILE G-55); the list is announced on
/// `mtp.revocation.credential` when MTPAsync is up (SPEC-III-A-3-01).
pub async fn revoke_credential(
    agent: &Agent,
    credential_id: &str,
) -> Result<Credential, IdentityError> {
    let now = agent.now();
    let list = {
        let mut g = agent.identity.lock();
        let index = *g.issued.get(credential_id).ok_or_else(|| {
            IdentityError::BadInput(format!(
                "{credential_id} was not issued by this agent (only the issuer can revoke)"
            ))
        })?;
        let issuer = g.issuer.as_mut().ok_or(IdentityError::NotProvisioned)?;
        let list = issuer.revoke(index, now)?;
        let url = issuer.url().to_owned();
        if !agent.fault("revocation-not-published") {
            g.status_lists.insert(url, list.clone());
        }
        list
    };
    agent.warn(
        None,
        ErrorCode::CredentialRevoked,
        format!("credential {credential_id} revoked"),
    );
    announce_revocation(agent, credential_id, &list).await;
    Ok(list)
}

/// `credential_revoked` notification on `mtp.revocation.credential`, carrying the new list.
async fn announce_revocation(agent: &Agent, credential_id: &str, list: &Credential) {
    let Some(nats) = agent.nats.get() else {
        return;
    };
    let mut n = Notification {
        kind: NotificationType::CredentialRevoked,
        transaction_id: None,
        subject_ref: None,
        error: None,
        timestamp: agent.now(),
        signature: None,
        unknown: vec![
            (Value::text("credential_id"), Value::text(credential_id)),
            (Value::text("status_list"), Value::text(list.to_json())),
        ],
    };
    if n.sign(&agent.keys.signing, Some(own_key_id(agent)))
        .is_err()
    {
        return;
    }
    let peers: Vec<DidDocument> = agent
        .peers
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .cloned()
        .collect();
    let keys: Vec<(String, mtp_protocol::crypto::KemAlgorithm, Vec<u8>)> = peers
        .iter()
        .flat_map(|d| d.key_agreement_keys().into_iter().take(1))
        .collect();
    if keys.is_empty() {
        return;
    }
    let recipients: Vec<mtp_protocol::wire::RecipientKey<'_>> = keys
        .iter()
        .map(|(kid, alg, key)| mtp_protocol::wire::RecipientKey {
            kid,
            algorithm: *alg,
            encapsulation_key: key,
        })
        .collect();
    let randomness = {
        let mut rng = agent.rng.lock().unwrap_or_else(|p| p.into_inner());
        mtp_protocol::wire::EnvelopeRandomness::draw(&mut rng, recipients.len())
    };
    let body = n.to_value();
    let msg_id = Value::text(format!("revocation-{}", hex::encode(agent.random::<16>())));
    let key_id = own_key_id(agent);
    let did = agent.did();
    let sent = nats
        .publish_sealed(
            &crate::transport::nats::SealedMessage {
                subject: mtp_protocol::wire::subject::CREDENTIAL_REVOCATION,
                frame_type: "notification",
                msg_id: &msg_id,
                body: &body,
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
        .await;
    if let Err(e) = sent {
        tracing::warn!(error = %e, "credential revocation not announced on NATS");
    }
}

/// A notification received over `Agent/Notify` or NATS (SPEC VI): a `credential_revoked`
/// notification carrying a status list updates the known list (the list's own proof is
/// what is trusted, PROFILE G-55).
pub async fn on_notification(agent: &Agent, notification: &Notification) -> Result<(), Status> {
    if notification.kind != NotificationType::CredentialRevoked {
        return Ok(());
    }
    let list = notification
        .unknown
        .iter()
        .find(|(k, _)| k.as_text() == Some("status_list"))
        .and_then(|(_, v)| v.as_text())
        .and_then(|t| Credential::from_json(t).ok());
    if let Some(list) = list
        && let Some(url) = list.id().map(str::to_owned)
    {
        learn_status_list(agent, &url, list);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Building the Authority Attestation of a Request (SPEC II-B; PROFILE G-04, G-35, G-36)
// ---------------------------------------------------------------------------------------

/// What the Request being built needs from the identity layer.
#[derive(Clone, Debug)]
pub struct AttestationInput<'a> {
    pub request_id: &'a MtpUuid,
    pub value_type: &'a Classifier,
    /// The amount the attestation claims (`max_tx_value`): the budget, else the visible
    /// delegated maximum.
    pub amount: Option<PriceSpec>,
    /// The counterparty the proof is bound to (SD-JWT `aud`, zk_range transcript); the
    /// empty string when the Request is only published.
    pub counterparty: &'a str,
    /// Disclosures to reveal by claim name (`None` = all provisioned).
    pub reveal: Option<Vec<String>>,
}

/// Builds the Authority Attestation from what was provisioned: the delegation links
/// (byte-exact credential texts), the effective scope, the claimed maximum and a proof —
/// a zk_range proof when the last link hides its limit (PROFILE G-36), an SD-JWT
/// presentation when disclosures were provisioned (PROFILE G-35), else a JSON-LD VP naming
/// the holder.
pub fn build_attestation(
    agent: &Agent,
    input: &AttestationInput<'_>,
) -> Result<AuthorityAttestation, IdentityError> {
    let (principal, texts, chain, disclosures, secret, hidden_limit) = {
        let g = agent.identity.lock();
        (
            g.principal.clone(),
            g.chain_texts.clone(),
            g.chain.clone(),
            g.sd_disclosures.clone(),
            g.range_secret,
            g.hidden_limit.clone(),
        )
    };
    let principal = principal.ok_or(IdentityError::NotProvisioned)?;
    let last_cred = chain.last().ok_or(IdentityError::NotProvisioned)?;
    let last = AuthorityDelegation::from_credential(last_cred)?;
    let mut links = Vec::with_capacity(chain.len());
    for (text, c) in texts.iter().zip(&chain) {
        let adc = AuthorityDelegation::from_credential(c)?;
        links.push(DelegationLink {
            issuer: AnyDid::parse(&adc.issuer)?,
            subject: adc.subject.to_any(),
            credential: text.clone(),
            unknown: Map::new(),
        });
    }
    let max = &last.max_transaction_value;
    let amount = match &input.amount {
        Some(a) => a.clone(),
        None if max.hidden => match &hidden_limit {
            Some(h) => h.clone(),
            None => return Err(EnforcementError::HiddenLimit.into()),
        },
        None => PriceSpec::new(
            max.amount.to_number(),
            PriceUnit::parse(&max.currency).map_err(IdentityError::BadInput)?,
        ),
    };
    let proof = if max.hidden {
        let hidden = hidden_limit.ok_or(EnforcementError::HiddenLimit)?;
        let secret = secret.unwrap_or_else(|| agent.keys.derive(crate::keys::LABEL_RANGE_SECRET));
        let credential_id = last
            .id
            .clone()
            .ok_or_else(|| IdentityError::Presentation("the last link has no id".into()))?;
        let ctx = ProofContext::for_credential(input.request_id, input.counterparty, last_cred)?;
        authority_proof::prove(
            &MinorAmount::from_price_spec(&hidden)?,
            &secret,
            &credential_id,
            &amount,
            &ctx,
        )?
        .to_authority_proof()
    } else if !disclosures.is_empty() {
        let presented = if agent.fault("present-credential-without-proof") {
            let mut j: serde_json::Value = serde_json::from_str(&last_cred.to_json())
                .map_err(|e| IdentityError::BadInput(e.to_string()))?;
            if let Some(m) = j.as_object_mut() {
                m.remove("proof");
            }
            Credential::from_json(&j.to_string())?
        } else {
            last_cred.clone()
        };
        let sd = SdCredential {
            credential: presented,
            disclosures: disclosures
                .iter()
                .map(|d| Disclosure::parse(d))
                .collect::<Result<Vec<_>, _>>()?,
        };
        let names: Vec<String> = match &input.reveal {
            Some(r) if !agent.fault("present-every-disclosure") => r.clone(),
            _ => sd.disclosures.iter().map(|d| d.name().to_owned()).collect(),
        };
        let reveal: Vec<&str> = names.iter().map(String::as_str).collect();
        let key_id = own_key_id(agent);
        let nonce = disclosure::nonce_for(input.request_id);
        let presentation = disclosure::present(
            &sd,
            &reveal,
            &KeyBinding {
                holder_key: &agent.keys.signing,
                verification_method: &key_id,
                nonce: &nonce,
                aud: input.counterparty,
                iat: agent.now(),
            },
        )?;
        AuthorityProof::VcPresentation {
            presentation,
            unknown: Map::new(),
        }
    } else {
        AuthorityProof::VcPresentation {
            presentation: serde_json::json!({
                "@context": [mtp_protocol::identity::jsonld::CREDENTIALS_V2],
                "type": ["VerifiablePresentation"],
                "holder": agent.did(),
            })
            .to_string(),
            unknown: Map::new(),
        }
    };
    let _ = input.value_type;
    Ok(AuthorityAttestation {
        principal_did: AnyDid::parse(&principal)?,
        scope: last.scope.clone(),
        max_tx_value: amount,
        delegation_chain: links,
        proof,
        unknown: Map::new(),
    })
}

// ---------------------------------------------------------------------------------------
// Verifying a Request's authority (SPEC II-B, SPEC-III-A-2-06, SPEC-III-A-3-02)
// ---------------------------------------------------------------------------------------

/// Who verifies, which decides whether the counterparty-bound proof is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verifier {
    /// The counterparty: everything, the proof bound to this agent's DID.
    Counterparty,
    /// An index or the holder itself: chain, status and enforcement of the visible claims;
    /// the proof is bound to a counterparty and is not checked.
    Chain,
}

/// When a transaction started (its genesis audit entry), else now.
fn transaction_start(agent: &Agent, transaction: Option<[u8; 32]>) -> Timestamp {
    transaction
        .and_then(|t| agent.transactions.get(&t))
        .and_then(|r| r.audit.entries().first().map(|e| e.timestamp))
        .unwrap_or_else(|| agent.now())
}

/// Verify a Request's Authority Attestation: the delegation chain from its Principal to its
/// Agent, revocation status, and that the Request is within the effective authority
/// (SPEC II-B Authority Attestation, SPEC-III-A-2-06, SPEC-III-A-3-02; PROFILE G-04, G-33).
/// Evaluated at the transaction's start (its genesis audit entry; now without one). The
/// proof must be bound to this agent (SD-JWT `aud`, zk_range transcript). 1300 warnings
/// are surfaced with `Agent::warn`; a refusal is raised against `transaction` (audit trail
/// and `error_raised`, PROFILE G-42; the caller only answers the peer). A revocation after
/// commit is `IdentityError::is_dispute`.
pub async fn verify_request_authority(
    agent: &Agent,
    request: &mtp_protocol::primitives::Request,
    transaction: Option<[u8; 32]>,
) -> Result<(), IdentityError> {
    let r = request_authority(agent, request, transaction, Verifier::Counterparty).await;
    if let Err(e) = &r {
        agent.raise(transaction, e, Some(request.agent_id.as_str()));
    }
    r.map(|_| ())
}

/// [`verify_request_authority`] returning the effective authority (for checking Terms:
/// price, rail, counterparty class; PROFILE G-33). Like it, it does not raise: the caller
/// refuses the message and raises (`Agent::raise`) with the returned error's code.
pub async fn request_authority(
    agent: &Agent,
    request: &MtpRequest,
    transaction: Option<[u8; 32]>,
    verifier: Verifier,
) -> Result<EffectiveAuthority, IdentityError> {
    check_request_authority(agent, request, transaction, verifier, None).await
}

/// Re-verifies the chain of a committed transaction (before settlement): a credential
/// revoked after `committed_at` is not a refusal but the dispute path
/// (`IdentityError::is_dispute`, SPEC-III-A-3-03; PROFILE G-55).
pub async fn recheck_after_commit(
    agent: &Agent,
    request: &MtpRequest,
    transaction: [u8; 32],
    committed_at: Timestamp,
) -> Result<EffectiveAuthority, IdentityError> {
    check_request_authority(
        agent,
        request,
        Some(transaction),
        Verifier::Chain,
        Some(committed_at),
    )
    .await
}

/// Verifies one participant's delegation chain as a Mandate carries it (its
/// `delegation_attestations` entry): every link's proof, linkage from `principal` (else the
/// first link's issuer) to `participant`, claims, subset rule and status at the
/// transaction's start (SPEC-III-A-2-06; PROFILE G-01, G-04, G-33). An empty chain is
/// 1101, a bad signature 1100, a revocation 1102. With `committed_at`, a revocation after
/// it is the dispute path (`IdentityError::is_dispute`, SPEC-III-A-3-03; PROFILE G-55).
pub async fn verify_participant_chain(
    agent: &Agent,
    participant: &str,
    chain: &[DelegationLink],
    principal: Option<&str>,
    transaction: [u8; 32],
    committed_at: Option<Timestamp>,
) -> Result<EffectiveAuthority, IdentityError> {
    for link in chain {
        let issuer = link.issuer.as_str();
        if agent.peer(issuer).is_none()
            && Did::parse(issuer).is_ok()
            && let Err(e) = try_resolve(agent, issuer).await
        {
            tracing::info!(did = issuer, error = %e, "issuer not resolvable");
        }
    }
    let at = transaction_start(agent, Some(transaction));
    let g = agent.identity.lock();
    let root = principal
        .map(str::to_owned)
        .or_else(|| chain.first().map(|l| l.issuer.as_str().to_owned()))
        .unwrap_or_default();
    let ctx = ChainContext {
        principal: &root,
        agent: participant,
        at,
        committed_at,
        keys: agent,
        status: &*g,
    };
    Ok(delegation::verify_delegation_links(chain, &ctx)?)
}

async fn check_request_authority(
    agent: &Agent,
    request: &MtpRequest,
    transaction: Option<[u8; 32]>,
    verifier: Verifier,
    committed_at: Option<Timestamp>,
) -> Result<EffectiveAuthority, IdentityError> {
    let att = &request.authority_attestation;
    let at = transaction_start(agent, transaction);
    // Every issuer's document must be known: resolve unknown did:mtp issuers first.
    for link in &att.delegation_chain {
        let issuer = link.issuer.as_str();
        if agent.peer(issuer).is_none()
            && Did::parse(issuer).is_ok()
            && let Err(e) = try_resolve(agent, issuer).await
        {
            tracing::info!(did = issuer, error = %e, "issuer not resolvable");
        }
    }
    let eff = {
        let g = agent.identity.lock();
        // Defect: the Principal taken from the chain itself.
        let principal = match att.delegation_chain.first() {
            Some(l) if agent.fault("skip-chain-principal-check") => l.issuer.as_str(),
            _ => att.principal_did.as_str(),
        };
        let ctx = ChainContext {
            principal,
            agent: request.agent_id.as_str(),
            at,
            committed_at,
            keys: agent,
            status: &*g,
        };
        delegation::verify_delegation_links(&att.delegation_chain, &ctx)?
    };
    for w in &eff.warnings {
        agent.warn(transaction, w.code(), w.to_string());
    }
    if agent.fault("fixed-delegation-depth") && att.delegation_chain.len() > 1 {
        return Err(IdentityError::Presentation(
            "delegation chains longer than one link are not supported".into(),
        ));
    }
    if !agent.fault("skip-scope-check") {
        eff.check_value_type(&request.value_type)?;
        for s in &att.scope {
            eff.check_value_type(s)?;
        }
    }
    if let Some(js) = &request.constraints.jurisdiction
        && !agent.fault("skip-jurisdiction-check")
    {
        for j in js {
            eff.check_jurisdiction(j)?;
        }
    }
    let last_cred = att
        .delegation_chain
        .last()
        .map(|l| Credential::from_json(&l.credential))
        .transpose()?
        .ok_or(IdentityError::NotProvisioned)?;
    let hidden = eff.max_transaction_value.hidden;
    if !hidden && !agent.fault("skip-max-value-check") {
        eff.check_price(&att.max_tx_value)?;
        if let Some(b) = &request.constraints.budget_ceiling {
            eff.check_price(b)?;
        }
    }
    match verifier {
        Verifier::Chain => {}
        Verifier::Counterparty => {
            check_proof(agent, request, &eff, &last_cred, hidden)?;
        }
    }
    Ok(eff)
}

/// The Request's `authority-proof` (PROFILE G-04, G-35, G-36), bound to this agent.
fn check_proof(
    agent: &Agent,
    request: &MtpRequest,
    eff: &EffectiveAuthority,
    last_cred: &Credential,
    hidden: bool,
) -> Result<(), IdentityError> {
    let att = &request.authority_attestation;
    let me = agent.did();
    match &att.proof {
        AuthorityProof::ZkRange { .. } => {
            let proof = ZkRangeProof::from_authority_proof(&att.proof)?;
            let ctx = ProofContext::for_credential(&request.request_id, &me, last_cred)?;
            eff.check_amount_proven(&att.max_tx_value, &proof, &ctx)?;
            if let Some(b) = &request.constraints.budget_ceiling
                && MinorAmount::from_price_spec(b)?
                    != MinorAmount::from_price_spec(&att.max_tx_value)?
            {
                // The proof covers max_tx_value; a budget above it is not covered.
                let covered = Decimal::from_number(&att.max_tx_value.amount)
                    .ok()
                    .zip(Decimal::from_number(&b.amount).ok())
                    .and_then(|(m, b)| b.cmp_exact(m))
                    .is_some_and(|o| o != std::cmp::Ordering::Greater)
                    && b.unit == att.max_tx_value.unit;
                if !covered {
                    return Err(IdentityError::Presentation(
                        "budget_ceiling exceeds the proven amount".into(),
                    ));
                }
            }
            Ok(())
        }
        AuthorityProof::VcPresentation { presentation, .. } => {
            if hidden {
                return Err(EnforcementError::HiddenLimit.into());
            }
            if presentation.contains('~') {
                let nonce = disclosure::nonce_for(&request.request_id);
                let v = disclosure::verify_presentation(presentation, agent, &nonce, &me)?;
                if v.holder != request.agent_id.as_str() {
                    return Err(IdentityError::Presentation(format!(
                        "presentation holder {} is not the requesting agent",
                        v.holder
                    )));
                }
                let bound = |c: &Credential| {
                    c.proof_value()
                        .and_then(|p| p.get("proofValue"))
                        .and_then(serde_json::Value::as_str)
                        .map(str::to_owned)
                };
                let presented = disclosure_credential(presentation)?;
                if bound(&presented).is_none() || bound(&presented) != bound(last_cred) {
                    return Err(IdentityError::Presentation(
                        "the presented credential is not the last delegation link".into(),
                    ));
                }
                Ok(())
            } else {
                check_json_vp(presentation, request)
            }
        }
    }
}

/// The credential of an SD-JWT presentation (its first `~`-separated part).
fn disclosure_credential(presentation: &str) -> Result<Credential, IdentityError> {
    let first = presentation.split('~').next().unwrap_or_default();
    let bytes = base64url_decode(first)
        .ok_or_else(|| IdentityError::Presentation("credential is not base64url".into()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| IdentityError::Presentation("credential is not UTF-8".into()))?;
    Ok(Credential::from_json(&text)?)
}

/// RFC 4648 §5 base64url without padding (the presentation was already verified by
/// `disclosure::verify_presentation`, which refuses non-canonical encodings).
fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        })
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for c in s.bytes() {
        acc = (acc << 6) | val(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

/// A JSON-LD VP (PROFILE G-04): `type` ∋ `VerifiablePresentation`, `holder` (when present)
/// the requesting agent, and every embedded credential one of the delegation links.
fn check_json_vp(presentation: &str, request: &MtpRequest) -> Result<(), IdentityError> {
    let bad = |m: &str| IdentityError::Presentation(m.to_owned());
    let v: serde_json::Value =
        serde_json::from_str(presentation).map_err(|_| bad("presentation is not JSON"))?;
    let is_vp = match v.get("type") {
        Some(serde_json::Value::String(t)) => t == "VerifiablePresentation",
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .any(|t| t.as_str() == Some("VerifiablePresentation")),
        _ => false,
    };
    if !is_vp {
        return Err(bad("presentation type is not VerifiablePresentation"));
    }
    if let Some(h) = v.get("holder")
        && h.as_str() != Some(request.agent_id.as_str())
    {
        return Err(bad("presentation holder is not the requesting agent"));
    }
    if let Some(vcs) = v.get("verifiableCredential") {
        let chain: Vec<serde_json::Value> = request
            .authority_attestation
            .delegation_chain
            .iter()
            .filter_map(|l| serde_json::from_str(&l.credential).ok())
            .collect();
        let items: Vec<&serde_json::Value> = match vcs {
            serde_json::Value::Array(a) => a.iter().collect(),
            one => vec![one],
        };
        for i in items {
            if !chain.contains(i) {
                return Err(bad("a presented credential is not a delegation link"));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// DID resolution (BIND-II-B-01/02; PROFILE G-32)
// ---------------------------------------------------------------------------------------

/// Which paths a resolution may use (`resolve_did-args.path`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathChoice {
    /// Registry first, the peer as fallback (BIND-II-B-02).
    Auto,
    Registry,
    Peer,
}

/// A verified resolution.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub document: DidDocument,
    pub path: ResolutionPath,
    pub version: u64,
}

/// Whether this agent serves as a DID Registry (PROFILE G-32: agents serving the index).
pub fn is_registry(agent: &Agent) -> bool {
    agent.config.serve_index
}

/// This agent's own DID Update Transactions (PROFILE G-32): version 1 publishes its
/// initial document, signed by its initial key; a document changed since the last update
/// is published as the next version, signed by the current (pre-update) authentication key
/// (BIND-II-B-03, BIND-II-B-I02).
pub fn own_updates(agent: &Agent) -> Result<Vec<DidUpdate>, IdentityError> {
    let doc = agent.document();
    let now = agent.now();
    let mut g = agent.identity.lock();
    match g.own_updates.last().cloned() {
        None => {
            let mut u = DidUpdate::genesis(&doc, now)?;
            u.sign(&agent.keys.signing, Some(agent.keys.did.url("key-1")))?;
            DidHistory::genesis(u.clone())?;
            g.own_updates.push(u);
        }
        Some(last)
            if last.document != doc.to_json() && !agent.fault("did-update-not-published") =>
        {
            let ts = now.max(last.timestamp);
            let mut u = DidUpdate::successor(&last, &doc, ts)?;
            let (key, kid) = current_auth_key(agent, &g);
            u.sign(&key, Some(kid))?;
            g.own_updates.push(u);
        }
        Some(_) => {}
    }
    Ok(g.own_updates.clone())
}

/// The current authentication key (signs the next DID Update Transaction).
fn current_auth_key(agent: &Agent, g: &Inner) -> (mtp_protocol::crypto::SigningKey, String) {
    g.auth_key
        .clone()
        .unwrap_or_else(|| (agent.keys.signing.clone(), agent.keys.did.url("key-1")))
}

/// This agent's own verified DID history.
pub fn own_history(agent: &Agent) -> Result<DidHistory, IdentityError> {
    Ok(DidHistory::from_updates(&own_updates(agent)?)?)
}

/// `update_did` (contract extension, BIND-II-B-I02): `rotate` (default true) replaces the
/// authentication key by a fresh ML-DSA-65 key derived from the seed (`#auth-<n>`; the
/// assertion key the DID derives from stays, so object signatures keep verifying) and
/// publishes the new document as the next DID Update Transaction, signed by the
/// authentication key it replaces (BIND-II-B-03). Result: `{version, did_document, update}`
/// (`update` = det-CBOR of the signed update).
fn control_update_did(agent: &Agent, args: &Value) -> ControlResult {
    use mtp_protocol::identity::document::{Relationship, VerificationMethod};
    use mtp_protocol::identity::{KeyType, Multikey};
    let err = |e: IdentityError| ControlError::mtp(&e);
    let rotate = args.get("rotate").and_then(Value::as_bool).unwrap_or(true);
    if !rotate {
        return Err(ControlError::BadArgs(
            "nothing to update (rotate: false)".into(),
        ));
    }
    own_updates(agent).map_err(err)?;
    let mut doc = agent.document();
    let now = agent.now();
    let mut g = agent.identity.lock();
    let n = g.rotations + 1;
    let key = mtp_protocol::crypto::SigningKey::from_seed(
        mtp_protocol::crypto::SignatureAlgorithm::MlDsa65,
        &agent.keys.derive(&format!("mtp-agent/did-rotation/{n}")),
    );
    let kid = agent.keys.did.url(&format!("auth-{n}"));
    let mk = Multikey::new(
        KeyType::Signature(key.algorithm()),
        key.public_key().as_bytes().to_vec(),
    )
    .map_err(|e| ControlError::Internal(e.to_string()))?;
    doc.verification_method
        .get_or_insert_with(Vec::new)
        .push(VerificationMethod {
            id: kid.clone(),
            type_: "Multikey".into(),
            controller: agent.did(),
            public_key_multibase: Some(mk.encode()),
            extra: Default::default(),
        });
    doc.authentication = Some(vec![Relationship::Reference(kid.clone())]);
    let last = g
        .own_updates
        .last()
        .cloned()
        .ok_or_else(|| ControlError::Internal("no version 1".into()))?;
    let mut u =
        DidUpdate::successor(&last, &doc, now.max(last.timestamp)).map_err(|e| err(e.into()))?;
    let (pre, pre_kid) = current_auth_key(agent, &g);
    if agent.fault("did-update-signed-by-new-key") {
        u.sign(&key, Some(kid.clone()))
    } else {
        u.sign(&pre, Some(pre_kid))
    }
    .map_err(|e| ControlError::Internal(e.to_string()))?;
    if !agent.fault("did-update-signed-by-new-key") {
        // The agent checks its own update as a registry would (BIND-II-B-04).
        let mut all = g.own_updates.clone();
        all.push(u.clone());
        DidHistory::from_updates(&all).map_err(|e| err(e.into()))?;
    }
    *agent.document.write().unwrap_or_else(|p| p.into_inner()) = doc.clone();
    if !agent.fault("did-update-not-published") {
        g.own_updates.push(u.clone());
    }
    g.auth_key = Some((key, kid));
    g.rotations = n;
    let bytes = u
        .try_to_cbor()
        .map_err(|e| ControlError::Internal(e.to_string()))?;
    Ok(Value::map([
        ("version", Value::from(u.version)),
        ("did_document", Value::text(doc.to_json())),
        ("update", Value::Bytes(bytes)),
    ]))
}

/// The answer of this agent to a resolution request: its own DID from its history; as a
/// registry, any DID whose verified history it holds; otherwise 1200 (not indexed).
pub fn answer_resolution(
    agent: &Agent,
    request: &DidResolutionRequest,
) -> Result<DidResolutionResponse, IdentityError> {
    if request.did.as_str() == agent.did() && !agent.fault("peer-resolution-only-as-registry") {
        let ups = own_updates(agent)?;
        let latest = ups.len() as u64;
        let version = request.version.unwrap_or(latest);
        let too_old = agent.fault("registry-latest-version-only") && version < latest;
        if version == 0 || version > latest || too_old {
            return Err(ResolutionError::NoSuchVersion {
                did: request.did.to_string(),
                version,
            }
            .into());
        }
        let cut = usize::try_from(version).unwrap_or(usize::MAX);
        return Ok(DidResolutionResponse {
            did: request.did.clone(),
            document: ups[cut - 1].document.clone(),
            version,
            history: Some(ups[..cut].to_vec()),
            unknown: Map::new(),
        });
    }
    if is_registry(agent) {
        let g = agent.identity.lock();
        if agent.fault("registry-latest-version-only")
            && let (Some(v), Some(h)) = (request.version, g.registry.history(&request.did))
            && v < h.version()
        {
            return Err(ResolutionError::NoSuchVersion {
                did: request.did.to_string(),
                version: v,
            }
            .into());
        }
        if agent.fault("registry-indexes-unverified-history")
            && g.registry.history(&request.did).is_none()
            && let Some(r) = g.unverified.get(request.did.as_str())
        {
            return Ok(r.clone());
        }
        return Ok(g.registry.resolve(request)?);
    }
    Err(ResolutionError::NotIndexed {
        did: request.did.to_string(),
    }
    .into())
}

/// `Agent/ResolveDid` (PROFILE G-09, G-32): the peer path, and the registry path when this
/// agent is a registry (BIND-II-B-01).
pub async fn on_resolve_did(
    agent: &Agent,
    request: Request<pb::Frame>,
) -> Result<Response<pb::Frame>, Status> {
    let ctx = ErrorContext::now(&agent.did());
    let peer = crate::transport::sync::session(&request).and_then(|s| s.peer_label.clone());
    let frame = framing::receive(&request, Rpc::ResolveDid)
        .map_err(|e| refuse(agent, &e, peer.as_deref(), Rpc::ResolveDid, &ctx))?;
    audit_message(
        agent,
        mtp_protocol::audit::events::MESSAGE_RECEIVED,
        &frame,
        peer.as_deref(),
    );
    let req = DidResolutionRequest::from_frame(&frame)
        .map_err(|e| refuse(agent, &e, peer.as_deref(), Rpc::ResolveDid, &ctx))?;
    let resp = answer_resolution(agent, &req)
        .map_err(|e| refuse(agent, &e, peer.as_deref(), Rpc::ResolveDid, &ctx))?;
    let out = resp
        .to_frame()
        .map_err(|e| framing::status_for(&e, Rpc::ResolveDid, &ctx))?;
    audit_message(
        agent,
        mtp_protocol::audit::events::MESSAGE_SENT,
        &out,
        peer.as_deref(),
    );
    framing::response(&out).map_err(|e| framing::status_for(&e, Rpc::ResolveDid, &ctx))
}

/// A refused message: raised against the agent trail (audit + `error_raised`) and answered
/// with the G-09 status.
pub(crate) fn refuse<E: Coded + std::fmt::Display>(
    agent: &Agent,
    err: &E,
    peer: Option<&str>,
    rpc: Rpc,
    ctx: &ErrorContext,
) -> Status {
    agent.raise(None, err, peer);
    framing::status_for(err, rpc, ctx)
}

/// Records a message sent or received in the agent trail (PROFILE G-42) and as an event.
pub(crate) fn audit_message(
    agent: &Agent,
    event: &str,
    frame: &mtp_protocol::wire::Frame,
    peer: Option<&str>,
) {
    let sent = event == mtp_protocol::audit::events::MESSAGE_SENT;
    agent.audit_message(None, sent, frame, peer);
}

/// Resolves `did` (registry first, peer as fallback) and trusts the verified document
/// (`Agent::add_peer`). 1200 is retried per `errors::after_failure`, then escalated.
pub async fn resolve_did(agent: &Agent, did: &str) -> Result<DidDocument, IdentityError> {
    resolve_did_with(agent, did, PathChoice::Auto)
        .await
        .map(|r| r.document)
}

/// One resolution attempt (registry, then peer), without retry or escalation: for
/// opportunistic lookups of a signer whose document is not known yet.
pub async fn try_resolve(agent: &Agent, did: &str) -> Result<DidDocument, IdentityError> {
    let parsed = Did::parse(did)?;
    resolve_once(agent, &parsed, PathChoice::Auto)
        .await
        .map(|r| r.document)
}

/// [`resolve_did`] on the chosen paths.
pub async fn resolve_did_with(
    agent: &Agent,
    did: &str,
    choice: PathChoice,
) -> Result<Resolved, IdentityError> {
    let parsed = Did::parse(did)?;
    let mut failures = 0u32;
    loop {
        match resolve_once(agent, &parsed, choice).await {
            Ok(r) => return Ok(r),
            Err(IdentityError::Resolution(e)) if e.code() == ErrorCode::DidResolutionTimeout => {
                failures += 1;
                let decision = if agent.fault("resolution-no-retry") {
                    RetryDecision::Escalate
                } else if agent.fault("resolution-retry-beyond-limit") && failures <= 10 {
                    after_failure(e.code(), 1)
                } else {
                    after_failure(e.code(), failures)
                };
                match decision {
                    RetryDecision::Retry { backoff_ms, .. } => {
                        tracing::info!(did, attempt = failures, error = %e, "DID resolution retried");
                        let backoff_ms = if agent.fault("resolution-retry-without-backoff") {
                            0
                        } else {
                            backoff_ms
                        };
                        tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                    }
                    RetryDecision::Escalate => {
                        let err = IdentityError::ResolutionEscalated {
                            did: did.to_owned(),
                            attempts: failures,
                            last: e,
                        };
                        agent.raise(None, &err, Some(did));
                        return Err(err);
                    }
                }
            }
            Err(e) => {
                agent.raise(None, &e, Some(did));
                return Err(e);
            }
        }
    }
}

/// The registries this agent consults, in order: peers with the `registry` role, else its
/// configured indexes (PROFILE G-32 resolution; see the module doc).
pub fn registries(agent: &Agent) -> Vec<String> {
    let explicit = agent.identity.peers_with_role("registry");
    if !explicit.is_empty() {
        return explicit;
    }
    super::discovery::index_dids(agent)
}

async fn resolve_once(
    agent: &Agent,
    did: &Did,
    choice: PathChoice,
) -> Result<Resolved, IdentityError> {
    let request = DidResolutionRequest::new(did.clone(), None);
    let mut dual = DualPathResolution::new(request.clone());
    if choice == PathChoice::Peer {
        dual.on_registry_result(PathOutcome::Unavailable);
    }
    loop {
        match dual.next_action() {
            NextAction::Query {
                path: ResolutionPath::Registry,
                request,
            } => {
                let outcome = query_registries(agent, &request).await?;
                if choice == PathChoice::Registry && !matches!(outcome, PathOutcome::Response(_)) {
                    return Err(ResolutionError::NotIndexed {
                        did: did.to_string(),
                    }
                    .into());
                }
                dual.on_registry_result(outcome);
            }
            NextAction::Query {
                path: ResolutionPath::Peer,
                request,
            } => {
                let outcome = query_peer(agent, &request).await?;
                if let PathOutcome::Response(r) = &outcome {
                    if is_registry(agent) && agent.fault("registry-indexes-unverified-history") {
                        agent
                            .identity
                            .lock()
                            .unverified
                            .insert(did.to_string(), r.clone());
                    }
                    if agent.fault("resolution-skips-update-chain") {
                        let document = DidDocument::from_json(&r.document)?;
                        if document.id != did.as_str() {
                            return Err(ResolutionError::DocumentIdMismatch {
                                version: r.version,
                                document_id: document.id.clone(),
                                did: did.to_string(),
                            }
                            .into());
                        }
                        if did.as_str() != agent.did() {
                            trust_resolved(agent, document.clone(), r.version)?;
                        }
                        return Ok(Resolved {
                            document,
                            path: ResolutionPath::Peer,
                            version: r.version,
                        });
                    }
                }
                dual.on_peer_result(outcome);
            }
            NextAction::Resolved { path, resolved } => {
                if resolved.did.as_str() != agent.did() {
                    trust_resolved(agent, resolved.document.clone(), resolved.version)?;
                }
                if is_registry(agent)
                    && let Some(h) = &resolved.history
                {
                    index_history(agent, h);
                }
                return Ok(Resolved {
                    document: resolved.document.clone(),
                    path,
                    version: resolved.version,
                });
            }
            NextAction::Failed(e) => return Err(e.into()),
        }
    }
}

/// Trusts a resolved document (`Agent::add_peer`). From version 2 on the initial key may
/// have been rotated out — the verified update chain binds the DID to it (PROFILE G-32) —
/// so only that check of the document validation is waived there.
fn trust_resolved(agent: &Agent, document: DidDocument, version: u64) -> Result<(), IdentityError> {
    if version <= 1 {
        agent.add_peer(document)?;
        return Ok(());
    }
    if let Err(errors) = document.validate() {
        let errors: Vec<DidError> = errors
            .into_iter()
            .filter(|e| !matches!(e, DidError::NoInitialKey { .. }))
            .collect();
        if let Some(first) = errors.into_iter().next() {
            return Err(first.into());
        }
    }
    let did = document.id.clone();
    if let Some(sync) = document.sync_endpoint() {
        agent.pins.insert(
            crate::transport::sync::Fingerprint::from_bytes(sync.tls_certificate_sha256),
            did.clone(),
        );
    }
    agent
        .peers
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .insert(did, document);
    Ok(())
}

/// Adds the updates of a verified history this registry does not hold yet.
fn index_history(agent: &Agent, history: &DidHistory) {
    let mut g = agent.identity.lock();
    let have = g
        .registry
        .history(history.did())
        .map_or(0, DidHistory::version);
    for u in history.updates().filter(|u| u.version > have).cloned() {
        if let Err(e) = g.registry.publish(u) {
            tracing::warn!(did = %history.did(), error = %e, "registry refused an update");
            break;
        }
    }
}

/// Registers `did` in this registry by resolving it on the peer path (its verified history
/// is indexed, PROFILE G-32).
pub async fn register(agent: &Agent, did: &str) -> Result<(), IdentityError> {
    let parsed = Did::parse(did)?;
    let request = DidResolutionRequest::new(parsed, None);
    match query_peer(agent, &request).await? {
        PathOutcome::Response(r) => {
            let resolved = mtp_protocol::identity::resolution::verify_response(&r, &request)?;
            if let Some(h) = &resolved.history {
                index_history(agent, h);
            }
            Ok(())
        }
        _ => Err(ResolutionError::NotIndexed {
            did: did.to_owned(),
        }
        .into()),
    }
}

async fn query_registries(
    agent: &Agent,
    request: &DidResolutionRequest,
) -> Result<PathOutcome, IdentityError> {
    // This agent's own registry first.
    if is_registry(agent) {
        let local = agent.identity.lock().registry.resolve(request);
        if let Ok(r) = local {
            return Ok(PathOutcome::Response(r));
        }
    }
    let mut outcome = PathOutcome::Unavailable;
    for registry in registries(agent) {
        if registry == agent.did() {
            continue;
        }
        match call_resolve(agent, &registry, request).await? {
            PathOutcome::Response(r) => return Ok(PathOutcome::Response(r)),
            other => outcome = other,
        }
    }
    Ok(outcome)
}

async fn query_peer(
    agent: &Agent,
    request: &DidResolutionRequest,
) -> Result<PathOutcome, IdentityError> {
    if request.did.as_str() == agent.did() {
        return Ok(PathOutcome::Response(answer_resolution(agent, request)?));
    }
    if agent.peer(request.did.as_str()).is_none() {
        // No endpoint to reach the subject at.
        return Ok(PathOutcome::Unavailable);
    }
    call_resolve(agent, request.did.as_str(), request).await
}

/// One `Agent/ResolveDid` call to `target`. A malformed answer is an error (final); a
/// failed call is an outcome (fallback / retry).
async fn call_resolve(
    agent: &Agent,
    target: &str,
    request: &DidResolutionRequest,
) -> Result<PathOutcome, IdentityError> {
    let frame = request
        .to_frame()
        .map_err(|e| IdentityError::BadInput(e.to_string()))?;
    let mut client = match agent.agent_client(target).await {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(target, error = %e, "resolver unreachable");
            return Ok(PathOutcome::Unavailable);
        }
    };
    let req = framing::request(&frame).map_err(|e| IdentityError::BadInput(e.to_string()))?;
    audit_message(
        agent,
        mtp_protocol::audit::events::MESSAGE_SENT,
        &frame,
        Some(target),
    );
    let call = client.resolve_did(framing::with_deadline(req, RESOLUTION_TIMEOUT));
    let resp = match tokio::time::timeout(RESOLUTION_TIMEOUT, call).await {
        Err(_) => return Ok(PathOutcome::Timeout),
        Ok(Err(status)) => {
            let remote = RemoteError::from_status(&status);
            return Ok(match (status.code(), remote.error_code()) {
                (_, Some(ErrorCode::DidResolutionTimeout)) => PathOutcome::NotIndexed,
                (tonic::Code::DeadlineExceeded, _) => PathOutcome::Timeout,
                _ => PathOutcome::Unavailable,
            });
        }
        Ok(Ok(r)) => r,
    };
    let frame = framing::receive_response(&resp, Rpc::ResolveDid)
        .map_err(|e| IdentityError::BadInput(e.to_string()))?;
    audit_message(
        agent,
        mtp_protocol::audit::events::MESSAGE_RECEIVED,
        &frame,
        Some(target),
    );
    Ok(PathOutcome::Response(DidResolutionResponse::from_frame(
        &frame,
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::Bound;
    use crate::config::AgentConfig;
    use crate::events::EventKind;

    fn agent(dir: &std::path::Path, seed: u8, faults: &[&str]) -> Agent {
        let config = AgentConfig {
            state_dir: dir.to_path_buf(),
            test_faults: faults.iter().map(|f| (*f).to_owned()).collect(),
            ..AgentConfig::default()
        };
        Agent::new(
            config,
            [seed; 32],
            &Bound {
                sync_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 1)),
                nats: None,
            },
        )
        .expect("agent")
    }

    /// `p` as Principal delegates to `a` (10 000 USD, every category): the ADC text, the
    /// issuer (to revoke) and the entry's index (PROFILE G-33).
    fn delegate_from(p: &Agent, a: &Agent) -> (String, StatusListIssuer, u64) {
        let now = p.now();
        let url = format!(
            "urn:mtp:status:{}:revocation",
            p.keys.did.method_specific_id()
        );
        let mut issuer = StatusListIssuer::new(
            &url,
            &p.did(),
            StatusListFormat::StatusList2021,
            StatusPurpose::Revocation,
            MIN_LIST_BITS,
            p.keys.signing.clone(),
            &own_key_id(p),
        )
        .expect("issuer");
        let entry = issuer.allocate().expect("entry");
        issuer.publish(now).expect("list");
        let adc = AuthorityDelegation {
            id: Some("urn:mtp:adc:test".into()),
            issuer: p.did(),
            principal: None,
            subject: a.keys.did.clone(),
            scope: vec![Classifier::parse("inference").expect("classifier")],
            max_transaction_value: MaxTransactionValue::new(Decimal::from_int(10_000), "USD")
                .expect("max"),
            max_transaction_value_commitment: None,
            permitted_jurisdictions: vec!["US".into()],
            permitted_payment_rails: vec!["ledger".into()],
            permitted_counterparty_classes: None,
            constraints: Default::default(),
            valid_from: now.add_secs(-60).expect("time"),
            valid_until: now.add_secs(3_600).expect("time"),
            status: vec![entry.clone()],
        };
        let signed = credential::sign(
            &adc.to_unsigned_credential().expect("unsigned"),
            &p.keys.signing,
            &ProofOptions {
                verification_method: own_key_id(p),
                created: now,
            },
        )
        .expect("signed");
        (signed.to_json(), issuer, entry.index)
    }

    /// `update_did` publishes the rotated document as version 2, signed by the pre-update
    /// authentication key (BIND-II-B-03, BIND-II-B-I02); the defect signs with the new key.
    #[test]
    fn key_rotation_is_published_and_chained() {
        use mtp_protocol::identity::resolution::verify_response;
        let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().expect("dir")).collect();
        let good = agent(dirs[0].path(), 5, &[]);
        let bad = agent(dirs[1].path(), 6, &["did-update-signed-by-new-key"]);
        for (a, ok) in [(&good, true), (&bad, false)] {
            let r = control_update_did(a, &Value::map([("rotate", Value::Bool(true))]))
                .expect("update_did");
            assert_eq!(r.get("version").and_then(Value::as_u64), Some(2));
            let did = Did::parse(&a.did()).expect("did");
            let req = DidResolutionRequest::new(did, None);
            let resp = answer_resolution(a, &req).expect("answer");
            assert_eq!(resp.version, 2);
            assert_eq!(verify_response(&resp, &req).is_ok(), ok);
            let v1 = answer_resolution(a, &DidResolutionRequest::new(req.did.clone(), Some(1)))
                .expect("version 1");
            assert_eq!(v1.history.map(|h| h.len()), Some(1));
        }
    }

    /// A verifier refuses a Request under a revoked credential with 1102 and records the
    /// refusal itself (PROFILE G-42, G-55); `stale-status-list` keeps the old list.
    #[tokio::test]
    async fn revoked_credential_is_refused_and_raised() {
        let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().expect("dir")).collect();
        let p = agent(dirs[0].path(), 1, &[]);
        let a = agent(dirs[1].path(), 2, &[]);
        let b = agent(dirs[2].path(), 3, &[]);
        let stale = agent(dirs[3].path(), 4, &["stale-status-list"]);
        let (adc, mut issuer, index) = delegate_from(&p, &a);
        let url = issuer.url().to_owned();
        let list = issuer.current().cloned().expect("list");
        let args = Value::map([
            ("principal", Value::text(p.did())),
            ("delegation_chain", Value::Array(vec![Value::text(adc)])),
            (
                "status_lists",
                Value::Map(vec![(Value::text(&url), Value::text(list.to_json()))]),
            ),
        ]);
        provision(&a, &args).expect("provision");
        a.add_peer(p.document()).expect("principal");
        for v in [&b, &stale] {
            v.add_peer(p.document()).expect("principal");
            v.add_peer(a.document()).expect("agent");
            learn_status_list(v, &url, list.clone());
        }
        let template = Value::map([
            ("value_type", Value::text("inference.text")),
            (
                "constraints",
                Value::map([(
                    "budget_ceiling",
                    Value::map([("amount", Value::from(50u64)), ("unit", Value::text("USD"))]),
                )]),
            ),
        ]);
        let request = super::super::discovery::build_request(&a, &template, &b.did(), None)
            .await
            .expect("request");
        verify_request_authority(&b, &request, None)
            .await
            .expect("valid before the revocation");

        let revoked = issuer.revoke(index, p.now()).expect("revoke");
        for v in [&b, &stale] {
            learn_status_list(v, &url, revoked.clone());
        }
        let e = verify_request_authority(&b, &request, None)
            .await
            .expect_err("revoked");
        assert_eq!(e.code(), ErrorCode::CredentialRevoked);
        let raised = b.events.snapshot().into_iter().any(|ev| {
            ev.kind == EventKind::ErrorRaised
                && ev.code == Some(ErrorCode::CredentialRevoked.as_u16())
        });
        assert!(raised, "the refusal is raised by the verifier");
        let request_for_stale =
            super::super::discovery::build_request(&a, &template, &stale.did(), None)
                .await
                .expect("request");
        verify_request_authority(&stale, &request_for_stale, None)
            .await
            .expect("the defect keeps the unrevoked list");
    }
}
