//! The encrypted NATS envelope on the transport (BIND-V-B-01; PROFILE G-06, G-40, G-41):
//! every MTPAsync payload is sealed with AES-256-GCM under a content key wrapped per
//! recipient with ML-KEM, and signed by the sender's assertion key. The crypto is
//! [`mtp_protocol::wire::seal`] / [`mtp_protocol::wire::open`]; this module wires it to
//! subjects, headers and key lookup.
//!
//! Sender-key lookup is abstract ([`SenderKeyLookup`]): the agent plugs in DID resolution.
//! A resolver that must do I/O resolves first (see [`peek_sender`]) and passes the key.

use std::collections::HashMap;

use mtp_protocol::cbor::Value;
use mtp_protocol::crypto::aead::{IvSequence, IvTracker};
use mtp_protocol::crypto::{CryptoError, DecapsulationKey, PublicKey, SeededRng, SigningKey};
use mtp_protocol::errors::{Coded, ErrorCode};
use mtp_protocol::wire::{
    self, EnvelopeHeader, EnvelopeRandomness, Opened, RecipientKey, WireError,
};

use super::dedup::is_storable_id;
use super::jetstream::{AsyncTransport, NatsError, PublishReceipt, Received};

/// The sender's assertion key could not be found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no assertion key for {sender} (key id {key_id:?}): {reason}")]
pub struct LookupError {
    pub sender: String,
    pub key_id: Option<String>,
    pub reason: String,
    /// 1100 when the sender cannot be authenticated (PROFILE G-41); 1200 for a resolution
    /// timeout.
    pub code: ErrorCode,
}

impl LookupError {
    /// An unknown sender or key: the envelope cannot be authenticated (1100).
    pub fn unknown(sender: &str, key_id: Option<&str>) -> Self {
        LookupError {
            sender: sender.to_owned(),
            key_id: key_id.map(str::to_owned),
            reason: "unknown sender or key".into(),
            code: ErrorCode::SignatureVerificationFailure,
        }
    }
}

/// Resolves a sender DID (and the signature's key id, a DID URL) to its assertion key.
pub trait SenderKeyLookup {
    fn assertion_key(&self, sender: &str, key_id: Option<&str>) -> Result<PublicKey, LookupError>;
}

impl<F> SenderKeyLookup for F
where
    F: Fn(&str, Option<&str>) -> Result<PublicKey, LookupError>,
{
    fn assertion_key(&self, sender: &str, key_id: Option<&str>) -> Result<PublicKey, LookupError> {
        self(sender, key_id)
    }
}

/// A fixed table of keys by DID URL (key id) or DID.
#[derive(Clone, Debug, Default)]
pub struct StaticKeys(HashMap<String, PublicKey>);

impl StaticKeys {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `key` under a DID or a DID URL.
    pub fn with(mut self, did_or_key_id: impl Into<String>, key: PublicKey) -> Self {
        self.0.insert(did_or_key_id.into(), key);
        self
    }
}

impl SenderKeyLookup for StaticKeys {
    fn assertion_key(&self, sender: &str, key_id: Option<&str>) -> Result<PublicKey, LookupError> {
        key_id
            .and_then(|k| self.0.get(k))
            .or_else(|| self.0.get(sender))
            .cloned()
            .ok_or_else(|| LookupError::unknown(sender, key_id))
    }
}

/// Why a received envelope was refused.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Shape, signature (1100), AEAD / hash (0108), CBOR (0101 / 0200), KEM label (0106).
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// The signature's key id names another DID than `sender` (1100, PROFILE G-41).
    #[error("signature key {key_id} does not belong to sender {sender}")]
    ForeignKey { sender: String, key_id: String },
    /// `Nats-Msg-Id` differs from the signed `msg_id` (0108): the header drives
    /// de-duplication, so it must not be forged (PROFILE G-06).
    #[error("Nats-Msg-Id {header:?} does not match the envelope msg_id {envelope:?}")]
    MsgIdMismatch { header: String, envelope: String },
    /// A (content key, IV) pair was about to be reused (0104, PROFILE G-40).
    #[error(transparent)]
    IvReuse(CryptoError),
}

impl Coded for EnvelopeError {
    fn code(&self) -> ErrorCode {
        match self {
            EnvelopeError::Wire(e) => e.code(),
            EnvelopeError::Lookup(e) => e.code,
            EnvelopeError::ForeignKey { .. } => ErrorCode::SignatureVerificationFailure,
            EnvelopeError::MsgIdMismatch { .. } => ErrorCode::MessageIntegrityFailure,
            EnvelopeError::IvReuse(e) => e.code(),
        }
    }
    fn requirement(&self) -> Option<&'static str> {
        match self {
            EnvelopeError::Wire(e) => e.requirement(),
            EnvelopeError::IvReuse(e) => e.requirement(),
            _ => None,
        }
    }
}

fn shape(msg: &str) -> EnvelopeError {
    EnvelopeError::Wire(WireError::Shape(msg.to_owned()))
}

/// `msg_id` as header text (PROFILE G-06): an MTP-UUID (32 bytes) in its 67-character text
/// form (G-29), a text id as itself.
pub fn msg_id_text(msg_id: &Value) -> Result<String, EnvelopeError> {
    let text = match msg_id {
        Value::Text(t) => t.clone(),
        Value::Bytes(b) if b.len() == 32 => {
            let h = |r: std::ops::Range<usize>| hex::encode(&b[r]);
            format!("{}-{}-{}-{}", h(0..1), h(1..9), h(9..15), h(15..32))
        }
        _ => return Err(shape("envelope msg_id must be a 32-byte MTP-UUID or text")),
    };
    if !is_storable_id(&text) {
        return Err(shape(
            "envelope msg_id text must be 1–256 bytes without control characters",
        ));
    }
    Ok(text)
}

/// The sender of an envelope.
#[derive(Clone, Copy, Debug)]
pub struct SenderIdentity<'a> {
    /// The sender's DID (`envelope.sender`).
    pub did: &'a str,
    /// DID URL of the assertion key (`sig.kid`).
    pub key_id: Option<&'a str>,
    pub signing_key: &'a SigningKey,
}

/// One envelope to seal.
#[derive(Clone, Copy, Debug)]
pub struct SealedMessage<'a> {
    pub subject: &'a str,
    /// Frame type (PROFILE G-09 vocabulary): `offer`, `negotiation`, ...
    pub frame_type: &'a str,
    /// The carried object's MTP-UUID (bytes) or a unique text id.
    pub msg_id: &'a Value,
    pub body: &'a Value,
    /// One per recipient `keyAgreement` key.
    pub recipients: &'a [RecipientKey<'a>],
}

/// Envelope randomness per PROFILE G-40: content key and KEM randomness from `rng`, every
/// IV (payload and wraps) from the session's `ivs` sequence.
pub fn draw_randomness(
    rng: &mut SeededRng,
    ivs: &mut IvSequence,
    recipients: usize,
) -> Result<EnvelopeRandomness, CryptoError> {
    let content_key = rng.bytes();
    let iv = ivs.next()?;
    let mut per_recipient = Vec::with_capacity(recipients);
    for _ in 0..recipients {
        per_recipient.push((rng.bytes(), ivs.next()?));
    }
    Ok(EnvelopeRandomness {
        content_key,
        iv,
        per_recipient,
    })
}

/// Seals `message` (PROFILE G-06): returns the `Nats-Msg-Id` text and the payload. With
/// `iv_tracker`, a repeated (content key, IV) pair is refused with 0104 (PROFILE G-40).
pub fn seal_envelope(
    message: &SealedMessage<'_>,
    sender: &SenderIdentity<'_>,
    randomness: &EnvelopeRandomness,
    iv_tracker: Option<&mut IvTracker>,
) -> Result<(String, Vec<u8>), EnvelopeError> {
    let id = msg_id_text(message.msg_id)?;
    if let Some(t) = iv_tracker {
        t.check_and_record(&randomness.content_key, &randomness.iv)
            .map_err(EnvelopeError::IvReuse)?;
    }
    let header = EnvelopeHeader {
        msg_type: message.frame_type.to_owned(),
        sender: sender.did.to_owned(),
        msg_id: message.msg_id.clone(),
    };
    // Defect `nats-iv-constant`: every envelope uses the same IVs (BIND-VI-D-02).
    let constant;
    let randomness = if crate::transport::test_fault("nats-iv-constant") {
        let mut r = randomness.clone();
        r.iv = [0x4d; 12];
        for (_, iv) in &mut r.per_recipient {
            *iv = [0x4e; 12];
        }
        constant = r;
        &constant
    } else {
        randomness
    };
    let payload = wire::seal(
        message.subject,
        &header,
        message.body,
        message.recipients,
        randomness,
        sender.signing_key,
        sender.key_id,
    )?;
    Ok((id, payload))
}

/// The sender and signature key id of an envelope, before opening it (to resolve the
/// sender's DID Document asynchronously).
pub fn peek_sender(payload: &[u8]) -> Result<(EnvelopeHeader, Option<String>), EnvelopeError> {
    Ok(wire::peek_sender(payload)?)
}

/// Verifies and decrypts a payload received on `subject` (PROFILE G-06, G-41): the
/// signature against the sender's assertion key (1100), this agent's recipient entry among
/// `own_keys` (`(kid, key)`; none listed → 0108), AEAD and hash (0108), and
/// `Nats-Msg-Id` against the signed `msg_id` (0108).
pub fn open_payload(
    subject: &str,
    payload: &[u8],
    msg_id_header: Option<&str>,
    own_keys: &[(&str, &DecapsulationKey)],
    lookup: &dyn SenderKeyLookup,
) -> Result<Opened, EnvelopeError> {
    let (header, key_id) = wire::peek_sender(payload)?;
    if let Some(kid) = &key_id {
        // A relative `#fragment` is the sender's own; an absolute DID URL must be.
        let did = kid.split_once('#').map_or(kid.as_str(), |(d, _)| d);
        if !did.is_empty() && did != header.sender {
            return Err(EnvelopeError::ForeignKey {
                sender: header.sender,
                key_id: kid.clone(),
            });
        }
    }
    if let Some(h) = msg_id_header {
        let envelope = msg_id_text(&header.msg_id)?;
        if h != envelope {
            return Err(EnvelopeError::MsgIdMismatch {
                header: h.to_owned(),
                envelope,
            });
        }
    }
    let sender_key = lookup.assertion_key(&header.sender, key_id.as_deref())?;
    let mut last = WireError::NotARecipient(
        own_keys
            .iter()
            .map(|(k, _)| *k)
            .collect::<Vec<_>>()
            .join(", "),
    );
    for (kid, key) in own_keys {
        match wire::open(subject, payload, &sender_key, kid, key) {
            Ok(opened) => return Ok(opened),
            Err(WireError::NotARecipient(_)) => {}
            Err(e) => {
                last = e;
                break;
            }
        }
    }
    Err(last.into())
}

/// [`open_payload`] for a delivered message (its subject and `Nats-Msg-Id`).
pub fn open_received(
    message: &Received,
    own_keys: &[(&str, &DecapsulationKey)],
    lookup: &dyn SenderKeyLookup,
) -> Result<Opened, EnvelopeError> {
    let opened = open_payload(
        message.subject(),
        message.payload(),
        message.header(super::jetstream::MSG_ID_HEADER),
        own_keys,
        lookup,
    )?;
    if !crate::transport::test_fault("nats-iv-reuse-accepted") {
        track_received_ivs(message.payload(), own_keys)?;
    }
    Ok(opened)
}

/// Every (content key, IV) and (KEK, wrap IV) pair of the envelopes this process opened
/// (BIND-VI-D-03; PROFILE G-40). Keys are kept as SHA-256 fingerprints.
static RECEIVED_IVS: std::sync::Mutex<Option<IvTracker>> = std::sync::Mutex::new(None);

/// Records the pairs of an opened envelope; a repeated pair is refused with 0104
/// (BIND-VI-D-I01, Fatal).
fn track_received_ivs(
    payload: &[u8],
    own_keys: &[(&str, &DecapsulationKey)],
) -> Result<(), EnvelopeError> {
    let crypto = |e: CryptoError| EnvelopeError::Wire(WireError::Crypto(e));
    let v = mtp_protocol::cbor::from_slice(payload).map_err(WireError::from)?;
    let iv: [u8; 12] = v
        .get("iv")
        .and_then(Value::as_bytes)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| shape("envelope.iv must be 12 bytes"))?;
    let recipients = v
        .get("recipients")
        .and_then(Value::as_array)
        .ok_or_else(|| shape("envelope.recipients must be an array"))?;
    let Some((kid, key, mine)) = own_keys.iter().find_map(|(kid, key)| {
        recipients
            .iter()
            .find(|e| e.get("kid").and_then(Value::as_text) == Some(kid))
            .map(|e| (*kid, *key, e))
    }) else {
        return Ok(());
    };
    let field = |k: &str| {
        mine.get(k)
            .and_then(Value::as_bytes)
            .ok_or_else(|| shape("envelope recipient field missing"))
    };
    let wrap_iv: [u8; 12] = field("iv")?
        .try_into()
        .map_err(|_| shape("recipient iv must be 12 bytes"))?;
    let shared = key.decapsulate(field("kem_ct")?).map_err(crypto)?;
    let mut info = b"MTP-NATS-v1".to_vec();
    info.extend_from_slice(kid.as_bytes());
    let mut kek = [0u8; 32];
    mtp_protocol::crypto::hkdf_sha256(&shared, &[], &info, &mut kek).map_err(crypto)?;
    let content_key: [u8; 32] =
        mtp_protocol::crypto::aead::open(&kek, &wrap_iv, &[], field("wrapped_key")?)
            .map_err(crypto)?
            .try_into()
            .map_err(|_| shape("wrapped key must be 32 bytes"))?;
    let mut guard = RECEIVED_IVS.lock().unwrap_or_else(|p| p.into_inner());
    let tracker = guard.get_or_insert_with(IvTracker::new);
    if tracker.contains(&content_key, &iv) || tracker.contains(&kek, &wrap_iv) {
        return Err(EnvelopeError::IvReuse(CryptoError::IvReuse));
    }
    tracker
        .check_and_record(&content_key, &iv)
        .and_then(|()| tracker.check_and_record(&kek, &wrap_iv))
        .map_err(EnvelopeError::IvReuse)
}

impl AsyncTransport {
    /// Seals and publishes an envelope with `Nats-Msg-Id` = its `msg_id` text
    /// (BIND-V-B-01; PROFILE G-06).
    pub async fn publish_sealed(
        &self,
        message: &SealedMessage<'_>,
        sender: &SenderIdentity<'_>,
        randomness: &EnvelopeRandomness,
        iv_tracker: Option<&mut IvTracker>,
    ) -> Result<PublishReceipt, NatsError> {
        super::jetstream::check_subject(message.subject, false)?;
        let (id, payload) = seal_envelope(message, sender, randomness, iv_tracker)?;
        self.publish(message.subject, &id, payload).await
    }
}
