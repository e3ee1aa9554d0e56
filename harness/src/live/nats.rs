//! MTPAsync for the harness (BIND V-B; PROFILE G-06): sealed, signed envelopes published
//! to the IUT's JetStream subjects, and the persona's inbox subscription whose envelopes
//! are opened and queued for `expect message` on `nats:<subject>`.

use std::sync::Arc;

use futures::StreamExt;
use mtp_protocol::cbor::Value;
use mtp_protocol::crypto::{PublicKey, SignatureAlgorithm, sha256};
use mtp_protocol::identity::DidDocument;
use mtp_protocol::uuid::MtpUuid;
use mtp_protocol::wire::{self, EnvelopeHeader, EnvelopeRandomness, RecipientKey};
use mtp_reference_agent::transport::nats::{AsyncTransport, TransportOptions};

use super::channels::{Inbound, Shared};
use super::oracle::IvOracle;
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
    /// IVs of every envelope of the IUT seen on this link (BIND-VI-D-02).
    ivs: Arc<std::sync::Mutex<IvOracle>>,
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
        Ok(NatsLink {
            transport,
            ivs: Arc::default(),
        })
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
        reuse_iv: bool,
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
        let randomness = if reuse_iv {
            last_randomness(&persona.did)
                .filter(|r| r.per_recipient.len() == recipients.len())
                .ok_or_else(|| {
                    NatsFailure::Envelope(
                        "reused_iv: the persona sealed no envelope for these recipients before"
                            .into(),
                    )
                })?
        } else {
            let mut r = EnvelopeRandomness::draw(persona.rng(), recipients.len());
            salt(&mut r, &persona.did);
            r
        };
        remember_randomness(&persona.did, &randomness);
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
        self.subscribe_with(pattern, kem_kid, kem, iut_document, shared, false)
            .await
    }

    /// Subscribes to a broadcast subject (discovery, PROFILE G-06): only envelopes the IUT
    /// sealed for the persona are queued; the others (other senders, other recipients) are
    /// not the harness's business.
    pub async fn subscribe_broadcast(
        &self,
        subject: &str,
        kem_kid: String,
        kem: mtp_protocol::crypto::DecapsulationKey,
        iut_document: String,
        shared: Arc<Shared>,
    ) -> Result<tokio::task::JoinHandle<()>, NatsFailure> {
        self.subscribe_with(subject, kem_kid, kem, iut_document, shared, true)
            .await
    }

    async fn subscribe_with(
        &self,
        pattern: &str,
        kem_kid: String,
        kem: mtp_protocol::crypto::DecapsulationKey,
        iut_document: String,
        shared: Arc<Shared>,
        broadcast: bool,
    ) -> Result<tokio::task::JoinHandle<()>, NatsFailure> {
        let ivs = self.ivs.clone();
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
                if broadcast {
                    let iut = shared.iut_did();
                    let ours = wire::peek_sender(&payload).is_ok_and(|(h, _)| h.sender == iut)
                        && !matches!(&opened, Err(w) if w.contains("recipient"));
                    if !ours {
                        continue;
                    }
                }
                let opened = opened.and_then(|o| {
                    ivs.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .check(&payload)
                        .map(|()| o)
                        .map_err(|v| format!("{}: {} — {}", v.requirement, v.expected, v.observed))
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

/// The randomness (content key, IVs, KEM randomness) of each persona's last envelope, for
/// the `reused_iv` fault (BIND-VI-D-I01). Keyed by the persona's DID, which the scenario
/// seed makes unique.
static LAST_RANDOMNESS: std::sync::Mutex<Vec<(String, EnvelopeRandomness)>> =
    std::sync::Mutex::new(Vec::new());

/// Makes the seed-derived envelope randomness unique to this moment (BIND-VI-D-02,
/// BIND-VI-D-03; PROFILE G-40): the same scenario seed run twice against one IUT would
/// otherwise repeat (content key, IV) pairs under the IUT's long-term key, which the IUT
/// must refuse (0104). The content key, the KEM randomness and every IV are XORed with a
/// stream keyed by the time, the process, a counter and the persona.
fn salt(r: &mut EnvelopeRandomness, did: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let input = format!(
        "mtp-cert/envelope-salt/1\0{did}\0{nanos}\0{}\0{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let mut rng = mtp_protocol::crypto::SeededRng::from_seed(sha256(input.as_bytes()));
    fn xor<const N: usize>(dst: &mut [u8; N], src: [u8; N]) {
        for (d, s) in dst.iter_mut().zip(src) {
            *d ^= s;
        }
    }
    xor(&mut r.content_key, rng.bytes());
    xor(&mut r.iv, rng.bytes());
    for (m, iv) in &mut r.per_recipient {
        xor(m, rng.bytes());
        xor(iv, rng.bytes());
    }
}

fn last_randomness(did: &str) -> Option<EnvelopeRandomness> {
    LAST_RANDOMNESS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .rev()
        .find(|(d, _)| d == did)
        .map(|(_, r)| r.clone())
}

fn remember_randomness(did: &str, r: &EnvelopeRandomness) {
    let mut g = LAST_RANDOMNESS.lock().unwrap_or_else(|p| p.into_inner());
    g.retain(|(d, _)| d != did);
    g.push((did.to_owned(), r.clone()));
    // Bounded: only recent personas matter.
    if g.len() > 256 {
        g.remove(0);
    }
}

/// `Nats-Msg-Id` of a message: the MTP-UUID text of the carried object, else `fallback`.
pub fn msg_id_text(id: Option<&Value>, fallback: &str) -> (Value, String) {
    match id.and_then(|v| MtpUuid::from_value(v).ok()) {
        Some(u) => (u.to_value(), u.to_string()),
        None => (Value::text(fallback), fallback.to_owned()),
    }
}
