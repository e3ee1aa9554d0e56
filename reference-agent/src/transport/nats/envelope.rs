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
    open_payload(
        message.subject(),
        message.payload(),
        message.header(super::jetstream::MSG_ID_HEADER),
        own_keys,
        lookup,
    )
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
