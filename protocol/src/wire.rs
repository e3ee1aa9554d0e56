//! Transport framing (BIND V): the gRPC `Frame` payload (PROFILE G-09, G-41) and the
//! encrypted NATS envelope (BIND V-B, PROFILE G-06). Pure: randomness comes from the caller.
//!
//! Every message carries `hash = SHA-256(det-CBOR(body))` that the receiver checks
//! (SPEC-VII-A-05, SPEC-VII-A-06); a mismatch is 0108.

use crate::cbor::{self, DecodeError, Value};
use crate::crypto::{
    self, CryptoError, DecapsulationKey, KemAlgorithm, PublicKey, SignatureAlgorithm, SigningKey,
    aead,
};
use crate::errors::{Coded, ErrorCode};
use crate::primitives::common::{MapBuilder, MapReader, Signature};

/// Why a frame or envelope is refused.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Not one complete CBOR item, or not deterministic (→ 0200 / 0101 via the decoder).
    #[error("frame is not valid deterministic CBOR: {0}")]
    Cbor(#[from] DecodeError),
    /// Deterministic CBOR, but not the frame/envelope shape (→ 0103).
    #[error("frame does not have the profile shape: {0}")]
    Shape(String),
    /// `hash` does not match the body (→ 0108).
    #[error("message integrity hash mismatch (SPEC-VII-A-06)")]
    HashMismatch,
    /// The envelope has no recipient entry for this agent's key.
    #[error("no recipient entry for key {0}")]
    NotARecipient(String),
    /// Signature, KEM or AEAD failure.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// A KEM label in the envelope is forbidden or unknown (→ 0106).
    #[error(transparent)]
    Algorithm(#[from] crate::crypto::AlgorithmError),
    /// The value could not be encoded (only for values that are not CBOR-encodable).
    #[error("cannot encode: {0}")]
    Encode(#[from] cbor::EncodeError),
}

impl Coded for WireError {
    fn code(&self) -> ErrorCode {
        match self {
            WireError::Cbor(e) => e.code(),
            WireError::Shape(_) | WireError::Encode(_) => ErrorCode::SchemaViolation,
            WireError::HashMismatch | WireError::NotARecipient(_) => {
                ErrorCode::MessageIntegrityFailure
            }
            WireError::Crypto(e) => e.code(),
            WireError::Algorithm(e) => e.code(),
        }
    }
    fn requirement(&self) -> Option<&'static str> {
        match self {
            WireError::HashMismatch => Some("SPEC-VII-A-06"),
            WireError::Crypto(e) => e.requirement(),
            WireError::Cbor(e) => e.requirement(),
            _ => None,
        }
    }
}

fn shape(msg: impl Into<String>) -> WireError {
    WireError::Shape(msg.into())
}

/// A decoded gRPC frame: `{type, body, hash}` (PROFILE G-09).
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    pub frame_type: String,
    pub body: Value,
    /// SHA-256 of the deterministic CBOR of `body` (checked on decode).
    pub hash: [u8; 32],
}

impl Frame {
    /// Builds a frame around `body`, computing its hash.
    pub fn new(frame_type: &str, body: Value) -> Result<Frame, WireError> {
        let hash = crypto::sha256(&cbor::to_vec(&body)?);
        Ok(Frame {
            frame_type: frame_type.to_owned(),
            body,
            hash,
        })
    }

    /// The bytes carried in `mtp.v1.Frame.cbor`.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let v = MapBuilder::new()
            .put("type", Value::text(&self.frame_type))
            .put("body", self.body.clone())
            .put("hash", Value::bytes(self.hash.to_vec()))
            .build();
        Ok(cbor::to_vec(&v)?)
    }

    /// Strictly decodes `mtp.v1.Frame.cbor` and checks the integrity hash (SPEC-VII-A-06).
    /// Unknown keys are tolerated (PROFILE G-26).
    pub fn decode(bytes: &[u8]) -> Result<Frame, WireError> {
        let v = cbor::from_slice(bytes)?;
        let mut r = MapReader::new(&v, "frame").map_err(|e| shape(e.to_string()))?;
        let frame_type = r
            .required("type", "SPEC-VII-A-05")
            .ok()
            .and_then(Value::as_text)
            .ok_or_else(|| shape("frame.type must be a text string"))?
            .to_owned();
        let body = r
            .required("body", "SPEC-VII-A-05")
            .map_err(|e| shape(e.to_string()))?
            .clone();
        let hash: [u8; 32] = r
            .required("hash", "SPEC-VII-A-05")
            .ok()
            .and_then(Value::as_bytes)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| shape("frame.hash must be a 32-byte byte string"))?;
        if crypto::sha256(&cbor::to_vec(&body)?) != hash {
            return Err(WireError::HashMismatch);
        }
        Ok(Frame {
            frame_type,
            body,
            hash,
        })
    }
}

/// NATS subjects (PROFILE G-06). Tokens are the lowercase classifier segments.
pub mod subject {
    use crate::identity::Did;
    use crate::taxonomy::Classifier;

    fn segments(c: &Classifier) -> String {
        c.normalized().to_string()
    }

    /// `mtp.offer.<top>.<sub…>`
    pub fn offer(value_type: &Classifier) -> String {
        format!("mtp.offer.{}", segments(value_type))
    }
    /// `mtp.request.<top>.<sub…>`
    pub fn request(value_type: &Classifier) -> String {
        format!("mtp.request.{}", segments(value_type))
    }
    /// `mtp.manifest.<top>`
    pub fn manifest(category: crate::taxonomy::Category) -> String {
        format!("mtp.manifest.{}", category.name())
    }
    /// `mtp.revocation.offer.<top>`
    pub fn offer_revocation(category: crate::taxonomy::Category) -> String {
        format!("mtp.revocation.offer.{}", category.name())
    }
    /// `mtp.revocation.credential`
    pub const CREDENTIAL_REVOCATION: &str = "mtp.revocation.credential";
    /// `mtp.alg`
    pub const ALG: &str = "mtp.alg";
    /// Per-agent inbox `mtp.agent.<did-id>.<class>`; `class` is a gRPC method name in
    /// snake case (`negotiate`, `notify`, ...).
    pub fn inbox(agent: &Did, class: &str) -> String {
        format!("mtp.agent.{}.{}", agent.method_specific_id(), class)
    }
    /// The MTPAsync subscription pattern `mtp.agent.<did-id>.>`.
    pub fn inbox_pattern(agent: &Did) -> String {
        format!("mtp.agent.{}.>", agent.method_specific_id())
    }
}

/// One recipient of an envelope: its `keyAgreement` key id and ML-KEM encapsulation key.
#[derive(Clone, Debug)]
pub struct RecipientKey<'a> {
    pub kid: &'a str,
    pub algorithm: KemAlgorithm,
    pub encapsulation_key: &'a [u8],
}

/// Fresh randomness for one envelope (sans-IO: the caller draws it from its CSPRNG).
#[derive(Clone, Debug)]
pub struct EnvelopeRandomness {
    /// Content key K.
    pub content_key: [u8; 32],
    /// Payload IV (PROFILE G-40: session id ‖ counter, or random).
    pub iv: [u8; 12],
    /// Per recipient, in order: ML-KEM encapsulation randomness `m` and the wrap IV.
    pub per_recipient: Vec<([u8; 32], [u8; 12])>,
}

impl EnvelopeRandomness {
    /// Draws everything from a seeded RNG.
    pub fn draw(rng: &mut crypto::SeededRng, recipients: usize) -> EnvelopeRandomness {
        EnvelopeRandomness {
            content_key: rng.bytes(),
            iv: rng.bytes(),
            per_recipient: (0..recipients)
                .map(|_| (rng.bytes(), rng.bytes()))
                .collect(),
        }
    }
}

/// What the sender says about the message (bound into the AAD).
#[derive(Clone, Debug, PartialEq)]
pub struct EnvelopeHeader {
    pub msg_type: String,
    pub sender: String,
    /// The MTP-UUID bytes of the carried object, or a unique text id.
    pub msg_id: Value,
}

/// An opened envelope.
#[derive(Clone, Debug, PartialEq)]
pub struct Opened {
    pub header: EnvelopeHeader,
    pub body: Value,
}

const KEK_INFO: &[u8] = b"MTP-NATS-v1";

fn header_value(h: &EnvelopeHeader) -> Value {
    MapBuilder::new()
        .put("v", Value::Integer(1))
        .put("type", Value::text(&h.msg_type))
        .put("sender", Value::text(&h.sender))
        .put("msg_id", h.msg_id.clone())
        .build()
}

fn aad(subject: &str, h: &EnvelopeHeader) -> Result<Vec<u8>, WireError> {
    let mut a = subject.as_bytes().to_vec();
    a.push(0);
    a.extend(cbor::to_vec(&header_value(h))?);
    Ok(a)
}

fn kek(shared: &[u8; 32], kid: &str) -> Result<[u8; 32], WireError> {
    let mut info = KEK_INFO.to_vec();
    info.extend_from_slice(kid.as_bytes());
    let mut out = [0u8; 32];
    crypto::hkdf_sha256(shared, &[], &info, &mut out)?;
    Ok(out)
}

/// Seals `body` for `recipients` on `subject` and signs the envelope (PROFILE G-06).
/// Returns the deterministic CBOR of the envelope (the NATS payload).
pub fn seal(
    subject: &str,
    header: &EnvelopeHeader,
    body: &Value,
    recipients: &[RecipientKey<'_>],
    randomness: &EnvelopeRandomness,
    signer: &SigningKey,
    key_id: Option<&str>,
) -> Result<Vec<u8>, WireError> {
    if recipients.is_empty() || randomness.per_recipient.len() != recipients.len() {
        return Err(shape(
            "an envelope needs one randomness entry per recipient, and ≥ 1 recipient",
        ));
    }
    let plaintext = cbor::to_vec(body)?;
    let ct = aead::seal(
        &randomness.content_key,
        &randomness.iv,
        &aad(subject, header)?,
        &plaintext,
    );
    let mut rec = Vec::with_capacity(recipients.len());
    for (r, (m, wrap_iv)) in recipients.iter().zip(&randomness.per_recipient) {
        let (kem_ct, shared) = crypto::encapsulate(r.algorithm, r.encapsulation_key, m)?;
        let wrapped = aead::seal(&kek(&shared, r.kid)?, wrap_iv, &[], &randomness.content_key);
        rec.push(
            MapBuilder::new()
                .put("kid", Value::text(r.kid))
                .put("kem_alg", Value::text(r.algorithm.label()))
                .put("kem_ct", Value::bytes(kem_ct))
                .put("iv", Value::bytes(wrap_iv.to_vec()))
                .put("wrapped_key", Value::bytes(wrapped))
                .build(),
        );
    }
    let unsigned = MapBuilder::new()
        .put("v", Value::Integer(1))
        .put("type", Value::text(&header.msg_type))
        .put("sender", Value::text(&header.sender))
        .put("msg_id", header.msg_id.clone())
        .put("recipients", Value::Array(rec))
        .put("iv", Value::bytes(randomness.iv.to_vec()))
        .put("ct", Value::bytes(ct))
        .put("hash", Value::bytes(crypto::sha256(&plaintext).to_vec()))
        .build();
    let sig = Signature {
        algorithm: signer.algorithm().label().to_owned(),
        key_id: key_id.map(str::to_owned),
        value: signer.sign(&cbor::to_vec(&unsigned)?),
        unknown: Vec::new(),
    };
    let Value::Map(mut entries) = unsigned else {
        return Err(shape("internal: envelope is not a map"));
    };
    entries.push((Value::text("sig"), sig.to_value()));
    Ok(cbor::to_vec(&Value::Map(entries))?)
}

fn bytes_field<'a>(r: &mut MapReader<'a>, key: &str) -> Result<&'a [u8], WireError> {
    r.required(key, "BIND-V-B-01")
        .ok()
        .and_then(Value::as_bytes)
        .ok_or_else(|| shape(format!("envelope.{key} must be a byte string")))
}

fn text_field<'a>(r: &mut MapReader<'a>, key: &str) -> Result<&'a str, WireError> {
    r.required(key, "BIND-V-B-01")
        .ok()
        .and_then(Value::as_text)
        .ok_or_else(|| shape(format!("envelope.{key} must be a text string")))
}

/// Reads the sender and key id of an envelope without opening it, so the receiver can
/// resolve the sender's assertion key before [`open`].
pub fn peek_sender(bytes: &[u8]) -> Result<(EnvelopeHeader, Option<String>), WireError> {
    let v = cbor::from_slice(bytes)?;
    let header = read_header(&v)?;
    let sig = v.get("sig").ok_or_else(|| shape("envelope.sig missing"))?;
    let sig = read_sig(sig)?;
    Ok((header, sig.key_id))
}

fn read_sig(v: &Value) -> Result<Signature, WireError> {
    Signature::from_value(v, "envelope.sig", "BIND-V-B-01").map_err(|errs| {
        shape(
            errs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })
}

fn read_header(v: &Value) -> Result<EnvelopeHeader, WireError> {
    if v.get("v").and_then(Value::as_u64) != Some(1) {
        return Err(shape("envelope.v must be 1"));
    }
    let text = |k: &str| {
        v.get(k)
            .and_then(Value::as_text)
            .map(str::to_owned)
            .ok_or_else(|| shape(format!("envelope.{k} must be a text string")))
    };
    let msg_id = v
        .get("msg_id")
        .cloned()
        .ok_or_else(|| shape("envelope.msg_id missing"))?;
    if !matches!(msg_id, Value::Text(_) | Value::Bytes(_)) {
        return Err(shape("envelope.msg_id must be an MTP-UUID or text"));
    }
    Ok(EnvelopeHeader {
        msg_type: text("type")?,
        sender: text("sender")?,
        msg_id,
    })
}

/// Verifies, decrypts and integrity-checks an envelope (PROFILE G-06, G-41).
///
/// `sender_key` is the sender's assertion key from its DID Document (signature failure →
/// 1100); `my_kid`/`my_key` select and open this agent's recipient entry (AEAD or hash
/// failure → 0108). The body is decoded strictly (non-deterministic → 0101).
pub fn open(
    subject: &str,
    bytes: &[u8],
    sender_key: &PublicKey,
    my_kid: &str,
    my_key: &DecapsulationKey,
) -> Result<Opened, WireError> {
    let v = cbor::from_slice(bytes)?;
    let header = read_header(&v)?;
    let Value::Map(entries) = &v else {
        return Err(shape("envelope must be a map"));
    };
    // Signature over the envelope without `sig` (PROFILE G-02).
    let sig_value = v.get("sig").ok_or_else(|| shape("envelope.sig missing"))?;
    let sig = read_sig(sig_value)?;
    let alg = SignatureAlgorithm::from_label(&sig.algorithm)
        .map_err(|e| WireError::Crypto(CryptoError::Algorithm(e)))?;
    if alg != sender_key.algorithm() {
        return Err(WireError::Crypto(CryptoError::BadSignature {
            algorithm: alg,
        }));
    }
    let unsigned: Vec<(Value, Value)> = entries
        .iter()
        .filter(|(k, _)| k.as_text() != Some("sig"))
        .cloned()
        .collect();
    sender_key.verify(&cbor::to_vec(&Value::Map(unsigned))?, &sig.value)?;

    let mut r = MapReader::new(&v, "envelope").map_err(|e| shape(e.to_string()))?;
    let iv: [u8; 12] = bytes_field(&mut r, "iv")?
        .try_into()
        .map_err(|_| shape("envelope.iv must be 12 bytes"))?;
    let ct = bytes_field(&mut r, "ct")?;
    let hash = bytes_field(&mut r, "hash")?;
    let recipients = r
        .required("recipients", "BIND-V-B-01")
        .ok()
        .and_then(Value::as_array)
        .ok_or_else(|| shape("envelope.recipients must be an array"))?;
    let mine = recipients
        .iter()
        .find(|e| e.get("kid").and_then(Value::as_text) == Some(my_kid))
        .ok_or_else(|| WireError::NotARecipient(my_kid.to_owned()))?;
    let mut rr = MapReader::new(mine, "envelope.recipients[]").map_err(|e| shape(e.to_string()))?;
    let kem_alg = KemAlgorithm::from_label(text_field(&mut rr, "kem_alg")?)?;
    if kem_alg != my_key.algorithm() {
        return Err(shape("recipient kem_alg does not match this agent's key"));
    }
    let kem_ct = bytes_field(&mut rr, "kem_ct")?;
    let wrap_iv: [u8; 12] = bytes_field(&mut rr, "iv")?
        .try_into()
        .map_err(|_| shape("recipient iv must be 12 bytes"))?;
    let wrapped = bytes_field(&mut rr, "wrapped_key")?;
    let shared = my_key.decapsulate(kem_ct)?;
    let content_key: [u8; 32] = aead::open(&kek(&shared, my_kid)?, &wrap_iv, &[], wrapped)?
        .try_into()
        .map_err(|_| WireError::HashMismatch)?;
    let plaintext = aead::open(&content_key, &iv, &aad(subject, &header)?, ct)?;
    if crypto::sha256(&plaintext).as_slice() != hash {
        return Err(WireError::HashMismatch);
    }
    let body = cbor::from_slice(&plaintext)?;
    Ok(Opened { header, body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SeededRng;

    #[test]
    fn frame_round_trip_and_tamper() {
        let f = Frame::new("ack", Value::map([("ok", Value::Bool(true))])).unwrap();
        let bytes = f.encode().unwrap();
        assert_eq!(Frame::decode(&bytes).unwrap(), f);
        // Flip the body's bool: hash no longer matches (0108).
        let pos = bytes.iter().position(|&b| b == 0xf5).unwrap();
        let mut bad = bytes.clone();
        bad[pos] = 0xf4;
        let e = Frame::decode(&bad).unwrap_err();
        assert_eq!(e.code(), ErrorCode::MessageIntegrityFailure);
        // Truncated: transient serialization failure (0200).
        assert_eq!(
            Frame::decode(&bytes[..bytes.len() - 1]).unwrap_err().code(),
            ErrorCode::TransientSerializationFailure
        );
        // Not a frame shape: 0103.
        assert_eq!(
            Frame::decode(&cbor::to_vec(&Value::Integer(1)).unwrap())
                .unwrap_err()
                .code(),
            ErrorCode::SchemaViolation
        );
    }

    fn parties() -> (SigningKey, DecapsulationKey, DecapsulationKey) {
        (
            SigningKey::from_seed(SignatureAlgorithm::MlDsa65, &[1; 32]),
            DecapsulationKey::from_seed(KemAlgorithm::MlKem768, &[2; 64]),
            DecapsulationKey::from_seed(KemAlgorithm::MlKem1024, &[3; 64]),
        )
    }

    #[test]
    fn envelope_round_trip_two_recipients_deterministic() {
        let (signer, alice, bob) = parties();
        let (ek_a, ek_b) = (alice.encapsulation_key(), bob.encapsulation_key());
        let recipients = [
            RecipientKey {
                kid: "did:mtp:a#kem-1",
                algorithm: KemAlgorithm::MlKem768,
                encapsulation_key: &ek_a,
            },
            RecipientKey {
                kid: "did:mtp:b#kem-1",
                algorithm: KemAlgorithm::MlKem1024,
                encapsulation_key: &ek_b,
            },
        ];
        let header = EnvelopeHeader {
            msg_type: "offer".into(),
            sender: "did:mtp:sender".into(),
            msg_id: Value::text("m-1"),
        };
        let body = Value::map([("hello", Value::text("world"))]);
        let subject = "mtp.offer.inference";
        let rnd = EnvelopeRandomness::draw(&mut SeededRng::from_seed([9; 32]), 2);
        let env = seal(
            subject,
            &header,
            &body,
            &recipients,
            &rnd,
            &signer,
            Some("did:mtp:s#k1"),
        )
        .unwrap();
        // Same seed, same bytes.
        let rnd2 = EnvelopeRandomness::draw(&mut SeededRng::from_seed([9; 32]), 2);
        assert_eq!(
            env,
            seal(
                subject,
                &header,
                &body,
                &recipients,
                &rnd2,
                &signer,
                Some("did:mtp:s#k1")
            )
            .unwrap()
        );
        let pk = signer.public_key();
        for (kid, key) in [("did:mtp:a#kem-1", &alice), ("did:mtp:b#kem-1", &bob)] {
            let o = open(subject, &env, &pk, kid, key).unwrap();
            assert_eq!(o.body, body);
            assert_eq!(o.header, header);
        }
        assert_eq!(
            peek_sender(&env).unwrap().1.as_deref(),
            Some("did:mtp:s#k1")
        );
        // Wrong subject (AAD) → 0108; not a recipient → 0108; wrong sender key → 1100.
        assert_eq!(
            open("mtp.offer.compute", &env, &pk, "did:mtp:a#kem-1", &alice)
                .unwrap_err()
                .code(),
            ErrorCode::MessageIntegrityFailure
        );
        assert_eq!(
            open(subject, &env, &pk, "did:mtp:c#kem-1", &alice)
                .unwrap_err()
                .code(),
            ErrorCode::MessageIntegrityFailure
        );
        let other = SigningKey::from_seed(SignatureAlgorithm::MlDsa65, &[7; 32]).public_key();
        assert_eq!(
            open(subject, &env, &other, "did:mtp:a#kem-1", &alice)
                .unwrap_err()
                .code(),
            ErrorCode::SignatureVerificationFailure
        );
    }

    #[test]
    fn envelope_tampering_is_detected() {
        let (signer, alice, _) = parties();
        let ek = alice.encapsulation_key();
        let recipients = [RecipientKey {
            kid: "k",
            algorithm: KemAlgorithm::MlKem768,
            encapsulation_key: &ek,
        }];
        let header = EnvelopeHeader {
            msg_type: "notification".into(),
            sender: "s".into(),
            msg_id: Value::text("x"),
        };
        let rnd = EnvelopeRandomness::draw(&mut SeededRng::from_seed([5; 32]), 1);
        let env = seal(
            "mtp.alg",
            &header,
            &Value::Integer(7),
            &recipients,
            &rnd,
            &signer,
            None,
        )
        .unwrap();
        let pk = signer.public_key();
        // Every single-byte flip is refused with a typed error, never a panic.
        for i in (0..env.len()).step_by(97) {
            let mut bad = env.clone();
            bad[i] ^= 0x01;
            assert!(
                open("mtp.alg", &bad, &pk, "k", &alice).is_err(),
                "flip at {i}"
            );
        }
        assert!(open("mtp.alg", &env, &pk, "k", &alice).is_ok());
    }
}
