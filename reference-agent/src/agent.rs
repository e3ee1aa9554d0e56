//! The agent: identity, known peers, transactions, events and the per-layer state, shared by
//! every service and task (`Agent` is a cheap `Arc` handle). Protocol decisions are made by
//! `mtp_protocol` and the `layers` modules; this module only holds state and does the
//! bookkeeping every layer needs (ids, signatures, errors, audit, events).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

use mtp_protocol::crypto::{AlgorithmSupportProfile, PublicKey, SeededRng};
use mtp_protocol::errors::{Coded, ErrorCode};
use mtp_protocol::identity::credential::{CredentialError, KeyResolver};
use mtp_protocol::identity::{AgentDocumentParams, DidDocument, SyncEndpoint};
use mtp_protocol::time::Timestamp;
use mtp_protocol::uuid::{MtpUuid, ObjectType, UuidError, UuidRegistry};

use crate::config::AgentConfig;
use crate::events::{Event, EventKind, EventLog};
use crate::keys::{AgentKeys, LABEL_RUN, LABEL_TLS};
use crate::layers;
use crate::store::{StateStore, StoreError};
use crate::transaction::{Transactions, TxError};
use crate::transport::sync::certs::{CertError, Fingerprint, TlsIdentity};
use crate::transport::sync::tls::PinSet;

/// Why the agent could not start or an operation on its state failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tx(#[from] TxError),
    #[error("TLS identity: {0}")]
    Cert(#[from] CertError),
    #[error("DID Document: {0}")]
    Document(String),
    #[error(transparent)]
    Uuid(#[from] UuidError),
    #[error("unknown peer {0}")]
    UnknownPeer(String),
}

impl Coded for AgentError {
    fn code(&self) -> ErrorCode {
        match self {
            AgentError::Tx(e) => e.code(),
            AgentError::Uuid(e) => e.code(),
            AgentError::UnknownPeer(_) => ErrorCode::DidResolutionTimeout,
            _ => ErrorCode::SchemaViolation,
        }
    }
}

/// Shared agent state.
pub struct AgentInner {
    pub config: AgentConfig,
    pub keys: AgentKeys,
    pub tls: TlsIdentity,
    /// MTPSync client certificates accepted by this agent's server (peers' fingerprints).
    pub pins: PinSet,
    pub document: RwLock<DidDocument>,
    /// Known DID Documents by DID (peers, indexes, registries, principals).
    pub peers: RwLock<BTreeMap<String, DidDocument>>,
    pub transactions: Transactions,
    pub events: Arc<EventLog>,
    pub store: StateStore,
    pub rng: Mutex<SeededRng>,
    pub uuids: Mutex<UuidRegistry>,
    /// Open MTPSync channels by peer DID.
    pub channels: Mutex<BTreeMap<String, tonic::transport::Channel>>,
    /// Per-transaction objects shared by the layers.
    pub deals: crate::deal::Deals,
    /// MTPAsync, once connected (set by the runtime).
    pub nats: std::sync::OnceLock<crate::transport::nats::AsyncTransport>,
    pub identity: layers::identity::State,
    pub discovery: layers::discovery::State,
    pub negotiation: layers::negotiation::State,
    pub commitment: layers::commitment::State,
    pub settlement: layers::settlement::State,
    pub verification: layers::verification::State,
    pub attribution: layers::attribution::State,
}

/// Cheap, cloneable handle on the agent.
#[derive(Clone)]
pub struct Agent(Arc<AgentInner>);

impl std::ops::Deref for Agent {
    type Target = AgentInner;
    fn deref(&self) -> &AgentInner {
        &self.0
    }
}

/// Inputs that are only known once listeners are bound.
#[derive(Clone, Debug)]
pub struct Bound {
    pub sync_addr: SocketAddr,
    /// `(host, port)` of the NATS server put in the DID Document, if any.
    pub nats: Option<(String, u16)>,
}

impl Agent {
    /// Build the agent from its configuration and master seed. Reopens the state directory:
    /// transactions, audit trails and reserved MTP-UUIDs of a previous run are restored.
    pub fn new(config: AgentConfig, seed: [u8; 32], bound: &Bound) -> Result<Agent, AgentError> {
        let keys = AgentKeys::from_seed(seed);
        let tls = TlsIdentity::from_seed(&keys.derive(LABEL_TLS), keys.did.as_str())?;
        let store = StateStore::open(&config.state_dir)?;
        let events = Arc::new(EventLog::new());
        let transactions = Transactions::open(store.clone(), events.clone())?;
        let mut uuids = UuidRegistry::new();
        for (id, digest) in store.reserved_uuids()? {
            if let Ok(u) = MtpUuid::from_bytes(&id) {
                let _ = uuids.reserve(u, digest);
            }
        }
        let (nats_host, nats_port) = bound
            .nats
            .clone()
            .unwrap_or_else(|| (config.advertise_host.clone(), 4222));
        let params = AgentDocumentParams {
            signing_keys: vec![(
                keys.signing.algorithm(),
                keys.public_key().as_bytes().to_vec(),
            )],
            kem_keys: vec![(keys.kem.algorithm(), keys.kem.encapsulation_key())],
            sync: SyncEndpoint {
                host: config.advertise_host.clone(),
                port: bound.sync_addr.port(),
                tls_certificate_sha256: *tls.fingerprint.as_bytes(),
            },
            nats_host,
            nats_port,
            nats_cluster: config
                .nats
                .as_ref()
                .map(|n| n.cluster.clone())
                .unwrap_or_else(|| "mtp-local".into()),
            delegation_chain: Vec::new(),
            algorithms: AlgorithmSupportProfile::baseline(),
        };
        let document =
            DidDocument::new_agent(&params).map_err(|e| AgentError::Document(e.to_string()))?;
        let rng = SeededRng::from_seed(keys.derive(LABEL_RUN));
        let settlement = layers::settlement::State::new(&config.rails);
        crate::transport::set_test_faults(&config.test_faults);
        Ok(Agent(Arc::new(AgentInner {
            config,
            keys,
            tls,
            pins: PinSet::new(),
            document: RwLock::new(document),
            peers: RwLock::new(BTreeMap::new()),
            transactions,
            events,
            store,
            rng: Mutex::new(rng),
            uuids: Mutex::new(uuids),
            channels: Mutex::new(BTreeMap::new()),
            deals: crate::deal::Deals::default(),
            nats: std::sync::OnceLock::new(),
            identity: layers::identity::State::default(),
            discovery: layers::discovery::State::default(),
            negotiation: layers::negotiation::State::default(),
            commitment: layers::commitment::State::default(),
            settlement,
            verification: layers::verification::State::default(),
            attribution: layers::attribution::State::default(),
        })))
    }

    /// Whether a deliberate defect is switched on (`config.test_faults`).
    pub fn fault(&self, name: &str) -> bool {
        debug_assert!(crate::faults::find(name).is_some(), "unknown fault {name}");
        self.config.test_faults.iter().any(|f| f == name)
    }

    pub fn did(&self) -> String {
        self.keys.did.as_str().to_owned()
    }

    pub fn document(&self) -> DidDocument {
        self.document
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Wall clock as a protocol timestamp (the only clock read of the agent's core).
    pub fn now(&self) -> Timestamp {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp::from_unix_nanos(d.as_nanos().min(u128::from(u64::MAX)) as u64)
    }

    /// `N` bytes from the agent's seeded run RNG.
    pub fn random<const N: usize>(&self) -> [u8; N] {
        self.rng
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .bytes::<N>()
    }

    /// A fresh MTP-UUID for an object this agent creates (SPEC IX; PROFILE G-29).
    pub fn new_uuid(&self, ty: ObjectType) -> MtpUuid {
        let ts = self.now().unix_nanos().unwrap_or(0);
        let source = mtp_protocol::uuid::source_of(self.keys.did.as_str());
        MtpUuid::new(ty, ts, source, self.random::<17>())
    }

    /// Bind an id to the content it names, permanently (SPEC-IX-04/05): a second, different
    /// content under the same id is 0100.
    pub fn reserve_uuid(&self, id: MtpUuid, content: &[u8]) -> Result<(), AgentError> {
        if self.fault("skip-uuid-reservation") {
            return Ok(());
        }
        let digest = mtp_protocol::crypto::sha256(content);
        let fresh = {
            let mut g = self.uuids.lock().unwrap_or_else(|p| p.into_inner());
            matches!(g.reserve(id, digest)?, mtp_protocol::uuid::Reservation::New)
        };
        if fresh {
            self.store.reserve_uuid(id.as_bytes(), &digest)?;
        }
        Ok(())
    }

    /// Trust a peer: remember its DID Document and pin its MTPSync certificate.
    pub fn add_peer(&self, document: DidDocument) -> Result<String, AgentError> {
        document
            .validate()
            .map_err(|e| AgentError::Document(format!("{e:?}")))?;
        let did = document.id.clone();
        if let Some(sync) = document.sync_endpoint() {
            self.pins.insert(
                Fingerprint::from_bytes(sync.tls_certificate_sha256),
                did.clone(),
            );
        }
        self.peers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(did.clone(), document);
        Ok(did)
    }

    pub fn peer(&self, did: &str) -> Option<DidDocument> {
        if did == self.keys.did.as_str() {
            return Some(self.document());
        }
        self.peers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(did)
            .cloned()
    }

    /// An assertion key of a known DID (for object signatures), by DID URL or bare DID.
    pub fn assertion_key(&self, did_or_url: &str) -> Result<PublicKey, AgentError> {
        let did = did_or_url.split('#').next().unwrap_or(did_or_url);
        let doc = self
            .peer(did)
            .ok_or_else(|| AgentError::UnknownPeer(did.to_owned()))?;
        if did_or_url.contains('#') {
            return KeyResolver::resolve_assertion_key(&doc, did_or_url)
                .map_err(|_| AgentError::UnknownPeer(did_or_url.to_owned()));
        }
        doc.assertion_keys()
            .into_iter()
            .find_map(|(_, alg, bytes)| PublicKey::from_bytes(alg, &bytes).ok())
            .ok_or_else(|| AgentError::UnknownPeer(did_or_url.to_owned()))
    }

    /// Raise an error against a transaction (or the agent trail): audit entry with its
    /// code, and an `error_raised` event (SPEC VI; docs/iut-contract.md rule 3).
    pub fn raise(&self, transaction: Option<[u8; 32]>, err: &dyn Coded, peer: Option<&str>) {
        let code = err.code();
        let now = self.now();
        let tx = transaction.unwrap_or(crate::transaction::AGENT_TRAIL_ID);
        let agents = peer.map(|p| vec![p.to_owned()]).unwrap_or_default();
        if !self.fault("errors-not-audited")
            && let Err(e) = self.transactions.record_error(&tx, code, agents, now)
        {
            tracing::error!(error = %e, "cannot record error in the audit trail");
        }
        let mut ev = Event::new(EventKind::ErrorRaised, now);
        ev.transaction_id = transaction;
        ev.code = Some(code.as_u16());
        ev.peer = peer.map(str::to_owned);
        self.events.push(ev);
    }

    /// A Warning (SPEC VI): logged, surfaced as an event and audited.
    pub fn warn(&self, transaction: Option<[u8; 32]>, code: ErrorCode, detail: String) {
        let now = self.now();
        let tx = transaction.unwrap_or(crate::transaction::AGENT_TRAIL_ID);
        if !self.fault("warnings-not-audited")
            && let Err(e) = self.transactions.record_error(&tx, code, Vec::new(), now)
        {
            tracing::error!(error = %e, "cannot record warning in the audit trail");
        }
        let mut ev = Event::new(EventKind::Warning, now);
        ev.transaction_id = transaction;
        ev.code = Some(code.as_u16());
        ev.detail = Some(detail);
        self.events.push(ev);
    }
}

impl Agent {
    /// The DID URL of this agent's first assertion key (`key_id` of its signatures, G-02).
    pub fn key_id(&self) -> Option<String> {
        self.document()
            .assertion_keys()
            .into_iter()
            .next()
            .map(|(id, _, _)| id)
    }

    /// The public key `did` signs with: `key_id` when it names one of `did`'s keys, else
    /// `did`'s first assertion key.
    pub fn signer_key(&self, did: &str, key_id: Option<&str>) -> Result<PublicKey, AgentError> {
        let r = match key_id {
            Some(k)
                if k.strip_prefix(did)
                    .is_some_and(|rest| rest.starts_with('#')) =>
            {
                k
            }
            _ => did,
        };
        self.assertion_key(r)
    }

    /// Audit a message sent or received (SPEC-X-C-02; PROFILE G-42) in a transaction's trail
    /// (or the agent trail) and emit the matching event.
    pub fn audit_message(
        &self,
        transaction: Option<[u8; 32]>,
        sent: bool,
        frame: &mtp_protocol::wire::Frame,
        peer: Option<&str>,
    ) {
        use mtp_protocol::audit::{AuditRecord, events};
        let now = self.now();
        let rec = AuditRecord {
            event: if sent {
                events::MESSAGE_SENT
            } else {
                events::MESSAGE_RECEIVED
            }
            .into(),
            agents: peer.map(|p| vec![p.to_owned()]).unwrap_or_default(),
            message_hash: Some(frame.hash),
            ..AuditRecord::default()
        };
        let id = transaction.unwrap_or(crate::transaction::AGENT_TRAIL_ID);
        if !self.fault("messages-not-audited")
            && let Err(e) = self.transactions.record(&id, rec, now)
        {
            tracing::error!(error = %e, "cannot audit message");
        }
        let kind = match (sent, frame.frame_type.as_str()) {
            (true, "notification") => EventKind::NotificationSent,
            (false, "notification") => EventKind::NotificationReceived,
            (true, _) => EventKind::MessageSent,
            (false, _) => EventKind::MessageReceived,
        };
        let mut ev = Event::new(kind, now);
        ev.transaction_id = transaction;
        ev.peer = peer.map(str::to_owned);
        ev.frame_type = Some(frame.frame_type.clone());
        ev.hash = Some(frame.hash);
        self.events.push(ev);
    }

    /// Audit a signature verification (`object` = the MTP-UUID of the signed object, or the
    /// SHA-256 of its deterministic CBOR; SPEC-X-C-02, PROFILE G-42).
    pub fn audit_signature(
        &self,
        transaction: Option<[u8; 32]>,
        object: [u8; 32],
        ok: bool,
        signer: &str,
    ) {
        use mtp_protocol::audit::{AuditRecord, SignatureCheck, events};
        let rec = AuditRecord {
            event: events::SIGNATURE_CHECKED.into(),
            agents: vec![signer.to_owned()],
            signature_check: Some(SignatureCheck::new(object, ok)),
            ..AuditRecord::default()
        };
        let id = transaction.unwrap_or(crate::transaction::AGENT_TRAIL_ID);
        if let Err(e) = self.transactions.record(&id, rec, self.now()) {
            tracing::error!(error = %e, "cannot audit signature check");
        }
    }

    /// Check one participant's `AgentSignature` over a multi-signed object's signing input
    /// (G-02): `sig` must be `expected`'s and verify under its key. Audited as a signature
    /// check on `object` in the transaction's trail.
    pub fn check_agent_signature(
        &self,
        transaction: [u8; 32],
        object: [u8; 32],
        signing_input: Option<Vec<u8>>,
        sig: &mtp_protocol::primitives::AgentSignature,
        expected: &str,
    ) -> bool {
        let ok = sig.agent == expected
            && signing_input.is_some_and(|msg| {
                self.signer_key(&sig.agent, sig.key_id.as_deref())
                    .is_ok_and(|pk| {
                        mtp_protocol::crypto::verify(
                            &sig.algorithm,
                            pk.as_bytes(),
                            &msg,
                            &sig.value,
                        )
                        .is_ok()
                    })
            });
        self.audit_signature(Some(transaction), object, ok, expected);
        ok
    }

    /// A pinned MTPSync channel to a known peer (its DID Document's `#sync` endpoint and
    /// certificate fingerprint, PROFILE G-32/G-37). Channels are cached per DID.
    pub async fn channel(
        &self,
        did: &str,
    ) -> Result<tonic::transport::Channel, crate::transport::sync::ConnectError> {
        if let Some(c) = self
            .channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(did)
        {
            return Ok(c.clone());
        }
        let doc = self.peer(did).ok_or_else(|| {
            crate::transport::sync::ConnectError::Endpoint(
                crate::transport::sync::client::EndpointError::Missing(did.to_owned()),
            )
        })?;
        let sync = doc.sync_endpoint().ok_or_else(|| {
            crate::transport::sync::ConnectError::Endpoint(
                crate::transport::sync::client::EndpointError::Missing(did.to_owned()),
            )
        })?;
        let endpoint = format!("grpcs://{}:{}", sync.host, sync.port);
        let channel = crate::transport::sync::connect(
            &endpoint,
            Fingerprint::from_bytes(sync.tls_certificate_sha256),
            &self.tls,
            &crate::transport::sync::ClientOptions::default(),
        )
        .await?;
        self.channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(did.to_owned(), channel.clone());
        Ok(channel)
    }

    /// The MTP `Agent` service client of a known peer.
    pub async fn agent_client(
        &self,
        did: &str,
    ) -> Result<
        crate::transport::sync::pb::agent_client::AgentClient<tonic::transport::Channel>,
        crate::transport::sync::ConnectError,
    > {
        Ok(crate::transport::sync::pb::agent_client::AgentClient::new(
            self.channel(did).await?,
        ))
    }
}

impl KeyResolver for Agent {
    fn resolve_assertion_key(
        &self,
        verification_method: &str,
    ) -> Result<PublicKey, CredentialError> {
        let did = verification_method
            .split('#')
            .next()
            .unwrap_or(verification_method);
        match self.peer(did) {
            Some(doc) => doc.resolve_assertion_key(verification_method),
            None => Err(CredentialError::UnknownDid(did.to_owned())),
        }
    }
}
