//! MTPAsync for the harness (BIND V-B; PROFILE G-06): sealed, signed envelopes published
//! to the IUT's JetStream subjects, and the persona's inbox subscription whose envelopes
//! are opened and queued for `expect message` on `nats:<subject>`.

use std::sync::Arc;

use futures::StreamExt;
use mtp_protocol::cbor::Value;
use mtp_protocol::crypto::{PublicKey, SignatureAlgorithm};
use mtp_protocol::identity::DidDocument;
use mtp_protocol::uuid::MtpUuid;
use mtp_protocol::wire::{self, EnvelopeHeader, EnvelopeRandomness, RecipientKey};
use mtp_reference_agent::transport::nats::{AsyncTransport, TransportOptions};

use super::channels::{Inbound, Shared};
use super::persona::Persona;

/// Why a NATS operation failed (infrastructure).
#[derive(Debug, thiserror::Error)]
pub enum NatsFailure {
    #[error("NATS: {0}")]
    Broker(String),
    #[error("envelope: {0}")]
    Envelope(String),
}

/// A connection to the IUT's broker.
#[derive(Clone, Debug)]
pub struct NatsLink {
    transport: AsyncTransport,
}

impl NatsLink {
    pub async fn connect(url: &str) -> Result<NatsLink, NatsFailure> {
        let options = TransportOptions {
            client_name: "mtp-cert".into(),
            ensure_streams: false,
            ..TransportOptions::default()
        };
        let transport = AsyncTransport::connect(url, options)
            .await
            .map_err(|e| NatsFailure::Broker(e.to_string()))?;
        Ok(NatsLink { transport })
    }

    /// Seals `body` for the IUT's keyAgreement keys and signs the envelope as `persona`
    /// (PROFILE G-06); the payload bytes.
    pub fn seal(
        subject: &str,
        frame_type: &str,
        body: &Value,
        msg_id: Value,
        persona: &mut Persona,
        iut_document: &str,
    ) -> Result<Vec<u8>, NatsFailure> {
        let doc = DidDocument::from_json(iut_document)
            .map_err(|e| NatsFailure::Envelope(format!("IUT DID Document: {e}")))?;
        let keys = doc.key_agreement_keys();
        if keys.is_empty() {
            return Err(NatsFailure::Envelope(
                "the IUT's DID Document has no keyAgreement key".into(),
            ));
        }
        let recipients: Vec<RecipientKey<'_>> = keys
            .iter()
            .map(|(kid, alg, ek)| RecipientKey {
                kid,
                algorithm: *alg,
                encapsulation_key: ek,
            })
            .collect();
        let header = EnvelopeHeader {
            msg_type: frame_type.to_owned(),
            sender: persona.did.clone(),
            msg_id,
        };
        let randomness = EnvelopeRandomness::draw(persona.rng(), recipients.len());
        let key_id = persona.key_id.clone();
        wire::seal(
            subject,
            &header,
            body,
            &recipients,
            &randomness,
            &persona.signing,
            Some(&key_id),
        )
        .map_err(|e| NatsFailure::Envelope(e.to_string()))
    }

    /// Publishes with `Nats-Msg-Id` and `Mtp-Version` (PROFILE G-06).
    pub async fn publish(
        &self,
        subject: &str,
        msg_id: &str,
        payload: Vec<u8>,
    ) -> Result<(), NatsFailure> {
        self.transport
            .publish(subject, msg_id, payload)
            .await
            .map(|_| ())
            .map_err(|e| NatsFailure::Broker(e.to_string()))
    }

    /// Subscribes to `pattern` (the persona's inbox); every envelope is opened with the
    /// persona's key and queued under `nats:<subject>`. Ends with the returned handle.
    pub async fn subscribe(
        &self,
        pattern: &str,
        kem_kid: String,
        kem: mtp_protocol::crypto::DecapsulationKey,
        iut_document: String,
        shared: Arc<Shared>,
    ) -> Result<tokio::task::JoinHandle<()>, NatsFailure> {
        let mut sub = self
            .transport
            .client()
            .subscribe(pattern.to_owned())
            .await
            .map_err(|e| NatsFailure::Broker(e.to_string()))?;
        Ok(tokio::spawn(async move {
            let sender_keys: Vec<(String, SignatureAlgorithm, Vec<u8>)> =
                DidDocument::from_json(&iut_document)
                    .map(|d| d.assertion_keys())
                    .unwrap_or_default();
            while let Some(msg) = sub.next().await {
                let subject = msg.subject.to_string();
                let payload = msg.payload.to_vec();
                let channel = format!("nats:{subject}");
                let opened = wire::peek_sender(&payload)
                    .map_err(|e| e.to_string())
                    .and_then(|(_, kid)| {
                        let key = sender_keys
                            .iter()
                            .find(|(id, _, _)| kid.as_deref().is_none_or(|k| k == id))
                            .ok_or_else(|| "the sender's key is not the IUT's".to_owned())?;
                        let pk = PublicKey::from_bytes(key.1, &key.2).map_err(|e| e.to_string())?;
                        wire::open(&subject, &payload, &pk, &kem_kid, &kem)
                            .map_err(|e| e.to_string())
                    });
                let item = match opened {
                    Ok(o) => {
                        let iut = shared.iut_did();
                        shared.observe(&o.header.msg_type, &o.body, &iut, "harness");
                        Inbound::Envelope {
                            frame_type: o.header.msg_type,
                            body: o.body,
                            payload,
                        }
                    }
                    Err(why) => Inbound::BadEnvelope { payload, why },
                };
                shared.inbox.push(&channel, item);
            }
        }))
    }
}

/// `Nats-Msg-Id` of a message: the MTP-UUID text of the carried object, else `fallback`.
pub fn msg_id_text(id: Option<&Value>, fallback: &str) -> (Value, String) {
    match id.and_then(|v| MtpUuid::from_value(v).ok()) {
        Some(u) => (u.to_value(), u.to_string()),
        None => (Value::text(fallback), fallback.to_owned()),
    }
}
