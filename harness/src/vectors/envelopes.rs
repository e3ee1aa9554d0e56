//! NATS envelope vectors (BIND V-B, BIND VI-B/D; PROFILE G-06, G-40, G-41), folder
//! `envelope/`: AES-256-GCM envelopes sealed with [`mtp_protocol::wire::seal`] from seeded
//! randomness, with every intermediate value (AAD, ML-KEM ciphertext and shared secret,
//! KEK, wrapped content key), and envelopes that must not open: tampered ciphertext, wrong
//! subject, bad signature, plaintext hash mismatch, a receiver that is not a recipient, a
//! short IV.
//!
//! Seeds: `envelope/<name>/randomness` (a [`SeededRng`]: content key, payload IV, then
//! per recipient the ML-KEM `m` and the wrap IV) and the world's party keys.

use serde_json::{Value as Json, json};

use mtp_protocol::cbor::{self, Value};
use mtp_protocol::crypto::{SeededRng, encapsulate, hkdf_sha256, sha256};
use mtp_protocol::errors::Coded;
use mtp_protocol::taxonomy::Classifier;
use mtp_protocol::wire::{self, EnvelopeHeader, EnvelopeRandomness, RecipientKey, subject};

use super::catalogue::catalogue;
use super::doc::{VectorDoc, files_of, seed_header};
use super::world::{Party, sign_plain, with_entry, world};
use super::{At, MASTER, VectorError, VectorFile, ensure, input_error};

/// The family name (folder under `vectors/`).
pub const FAMILY: &str = "envelope";

const REQS: &[&str] = &[
    "BIND-VI-D-01",
    "BIND-VI-B-I01",
    "BIND-VI-E-02",
    "BIND-VI-01",
    "BIND-V-B-01",
    "SPEC-VII-A-05",
    "SPEC-VII-A-06",
];

struct Sealed {
    subject: String,
    header: EnvelopeHeader,
    body: Value,
    recipients: Vec<(&'static Party, usize)>,
    randomness_label: String,
    randomness: EnvelopeRandomness,
    bytes: Vec<u8>,
}

fn seal(
    name: &str,
    subject: String,
    header: EnvelopeHeader,
    body: Value,
    recipients: Vec<(&'static Party, usize)>,
) -> Result<Sealed, VectorError> {
    let id = format!("{FAMILY}/{name}");
    let w = world()?;
    let label = format!("{FAMILY}/{name}/randomness");
    let mut rng = SeededRng::from_master(&MASTER, &label);
    let randomness = EnvelopeRandomness::draw(&mut rng, recipients.len());
    let kids: Vec<String> = recipients.iter().map(|(p, n)| p.kem_kid(*n)).collect();
    let eks: Vec<Vec<u8>> = recipients
        .iter()
        .map(|(p, n)| p.kem(&id, *n).map(|k| k.encapsulation_key()))
        .collect::<Result<_, _>>()?;
    let mut keys = Vec::new();
    for (i, (p, n)) in recipients.iter().enumerate() {
        keys.push(RecipientKey {
            kid: &kids[i],
            algorithm: p.kem(&id, *n)?.algorithm(),
            encapsulation_key: &eks[i],
        });
    }
    let bytes = wire::seal(
        &subject,
        &header,
        &body,
        &keys,
        &randomness,
        w.provider.key(&id, 1)?,
        Some(&w.provider.kid(1)),
    )
    .at(&id)?;
    Ok(Sealed {
        subject,
        header,
        body,
        recipients,
        randomness_label: label,
        randomness,
        bytes,
    })
}

/// Opens `bytes` as `receiver` (`#kem-n`) on `subject`: the opened body or the error code.
fn open(
    vector: &str,
    subject: &str,
    bytes: &[u8],
    receiver: (&Party, usize),
) -> Result<Result<Value, u16>, VectorError> {
    let w = world()?;
    let sender = w.provider.key(vector, 1)?.public_key();
    let (p, n) = receiver;
    Ok(
        wire::open(subject, bytes, &sender, &p.kem_kid(n), p.kem(vector, n)?)
            .map(|o| o.body)
            .map_err(|e| e.code().as_u16()),
    )
}

fn header_value(h: &EnvelopeHeader) -> Value {
    Value::map([
        ("v", Value::Integer(1)),
        ("type", Value::text(h.msg_type.as_str())),
        ("sender", Value::text(h.sender.as_str())),
        ("msg_id", h.msg_id.clone()),
    ])
}

fn valid(name: &str, s: &Sealed, description: &str) -> Result<VectorDoc, VectorError> {
    let id = format!("{FAMILY}/{name}");
    let w = world()?;
    let plaintext = cbor::to_vec(&s.body).at(&id)?;
    let mut aad = s.subject.as_bytes().to_vec();
    aad.push(0);
    aad.extend(cbor::to_vec(&header_value(&s.header)).at(&id)?);
    let mut recipients = Vec::new();
    for (i, (p, n)) in s.recipients.iter().enumerate() {
        let dk = p.kem(&id, *n)?;
        let (m, wrap_iv) = s
            .randomness
            .per_recipient
            .get(i)
            .ok_or_else(|| input_error(&id, "randomness"))?;
        let (kem_ct, ss) = encapsulate(dk.algorithm(), &dk.encapsulation_key(), m).at(&id)?;
        let mut info = b"MTP-NATS-v1".to_vec();
        info.extend_from_slice(p.kem_kid(*n).as_bytes());
        let mut kek = [0u8; 32];
        hkdf_sha256(&ss, &[], &info, &mut kek).at(&id)?;
        let seed = p
            .seeds
            .iter()
            .find(|r| r.purpose == dk.algorithm().label())
            .map(|r| json!({"label": r.label, "seed": hex::encode(&r.seed)}));
        recipients.push(json!({
            "kid": p.kem_kid(*n),
            "kem_alg": dk.algorithm().label(),
            "decapsulation_seed": seed,
            "encapsulation_key_sha256": hex::encode(sha256(&dk.encapsulation_key())),
            "m": hex::encode(m),
            "wrap_iv": hex::encode(wrap_iv),
            "kem_ct": hex::encode(&kem_ct),
            "shared_secret": hex::encode(ss),
            "kek": hex::encode(kek),
        }));
        // Every recipient opens it.
        let body = open(&id, &s.subject, &s.bytes, (p, *n))?
            .map_err(|c| input_error(&id, format!("recipient {} cannot open: {c}", p.name)))?;
        ensure(&id, body == s.body || body == s.body.canonical(), || {
            "the opened body differs".into()
        })?;
    }
    let env = cbor::from_slice(&s.bytes).at(&id)?;
    let ct = env.get("ct").and_then(Value::as_bytes).unwrap_or_default();
    ensure(&id, ct.len() == plaintext.len() + 16, || {
        "ciphertext is not plaintext + 16-byte tag".into()
    })?;
    let mut doc = VectorDoc::new(id.clone(), REQS, description);
    for (k, v) in seed_header() {
        doc = doc.input(&k, v);
    }
    Ok(doc
        .input("subject", s.subject.clone())
        .input(
            "sender",
            json!({
                "did": w.provider.did_str(),
                "key_id": w.provider.kid(1),
                "public_key": hex::encode(w.provider.key(&id, 1)?.public_key().as_bytes()),
            }),
        )
        .input(
            "header",
            json!({
                "v": 1,
                "type": s.header.msg_type,
                "sender": s.header.sender,
                "msg_id": match &s.header.msg_id {
                    Value::Bytes(b) => Json::String(hex::encode(b)),
                    Value::Text(t) => Json::String(t.clone()),
                    _ => Json::Null,
                },
            }),
        )
        .input("body_cbor", hex::encode(&plaintext))
        .input("randomness_label", s.randomness_label.clone())
        .input("content_key", hex::encode(s.randomness.content_key))
        .input("iv", hex::encode(s.randomness.iv))
        .expected("aad", hex::encode(&aad))
        .expected("plaintext_sha256", hex::encode(sha256(&plaintext)))
        .expected("ct", hex::encode(ct))
        .expected("recipients", Json::Array(recipients))
        .expected("opens", true)
        .bytes(s.bytes.clone()))
}

/// An envelope that must not open for `receiver` on `subject`.
#[allow(clippy::too_many_arguments)]
fn refused(
    name: &str,
    base: &str,
    subject: &str,
    bytes: Vec<u8>,
    receiver: (&Party, usize),
    code: u16,
    reqs: &[&'static str],
    description: &str,
) -> Result<VectorDoc, VectorError> {
    let id = format!("{FAMILY}/{name}");
    let got = open(&id, subject, &bytes, receiver)?;
    ensure(&id, got == Err(code), || {
        format!(
            "opening gives {:?}, expected code {code}",
            got.map(|_| "a body")
        )
    })?;
    Ok(VectorDoc::new(id, reqs, description)
        .input("base", format!("{FAMILY}/{base}"))
        .input("subject", subject)
        .input("receiver_kid", receiver.0.kem_kid(receiver.1))
        .expected("opens", false)
        .expected("code", code)
        .bytes(bytes))
}

/// Re-signs an envelope map (`sig` over det-CBOR without `sig`, PROFILE G-02, G-06).
fn resign(vector: &str, env: &Value) -> Result<Vec<u8>, VectorError> {
    let w = world()?;
    let v = sign_plain(
        vector,
        env,
        "sig",
        w.provider.key(vector, 1)?,
        &w.provider.kid(1),
    )?;
    cbor::to_vec(&v).at(vector)
}

/// Generates the family's files.
pub fn generate() -> Result<Vec<VectorFile>, VectorError> {
    let w = world()?;
    let cat = catalogue()?;
    let offer = cat.get("offer")?.value.clone();
    let revocation = cat.get("offer-revocation")?.value.clone();
    let classifier = Classifier::parse("inference.text_generation")
        .map_err(|e| input_error(FAMILY, e.to_string()))?;
    let mut docs = Vec::new();

    let one = seal(
        "offer-mlkem768",
        subject::offer(&classifier),
        EnvelopeHeader {
            msg_type: "offer".into(),
            sender: w.provider.did_str().into(),
            msg_id: cat.offer_id.to_value(),
        },
        offer,
        vec![(&w.requester, 1)],
    )?;
    docs.push(valid(
        "offer-mlkem768",
        &one,
        "The provider's signed Offer on mtp.offer.inference.text_generation, encrypted to the \
         requester's ML-KEM-768 key (PROFILE G-06): P = det-CBOR(body), hash = SHA-256(P), \
         AAD = UTF-8(subject) || 00 || det-CBOR({v, type, sender, msg_id}), ct = \
         AES-256-GCM(K, iv, AAD, P) with a 96-bit IV and a 128-bit tag; per recipient kem_ct \
         and ss = ML-KEM.Encaps(ek, m), KEK = HKDF-SHA-256(ss, salt empty, info \
         \"MTP-NATS-v1\" || kid), wrapped_key = AES-256-GCM(KEK, wrap_iv, empty AAD, K); sig by \
         the provider's #key-1 over the envelope without sig.",
    )?);
    let two = seal(
        "revocation-two-recipients",
        subject::offer_revocation(classifier.category()),
        EnvelopeHeader {
            msg_type: "offer_revocation".into(),
            sender: w.provider.did_str().into(),
            msg_id: Value::text(format!("offer_revocation:{}", cat.offer_id)),
        },
        revocation,
        vec![(&w.requester, 2), (&w.contributor, 1)],
    )?;
    docs.push(valid(
        "revocation-two-recipients",
        &two,
        "The provider's offer revocation on mtp.revocation.offer.inference for two recipients, \
         the requester's ML-KEM-1024 key (1,568-byte kem_ct) and the contributor's ML-KEM-768 \
         key; msg_id is a text id because the notice has no MTP-UUID (PROFILE G-06).",
    )?);

    let env = cbor::from_slice(&one.bytes).at(FAMILY)?;
    let unsigned = with_entry(&env, "sig", None);
    let receiver = (&w.requester, 1usize);

    // Ciphertext modified, envelope re-signed: the signature holds, AES-GCM does not.
    let name = "tampered-ciphertext";
    let mut ct = env
        .get("ct")
        .and_then(Value::as_bytes)
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    if let Some(b) = ct.get_mut(5) {
        *b ^= 0x01;
    }
    let bytes = resign(name, &with_entry(&unsigned, "ct", Some(Value::Bytes(ct))))?;
    docs.push(refused(
        name,
        "offer-mlkem768",
        &one.subject,
        bytes,
        receiver,
        108,
        &[REQS, &["BIND-VI-D-01"]].concat(),
        "envelope/offer-mlkem768 with one ciphertext bit flipped and the envelope re-signed: \
         the signature verifies, AES-256-GCM authentication fails; refused with 0108.",
    )?);

    // The same envelope delivered on another subject: the AAD differs.
    let name = "wrong-subject";
    docs.push(refused(
        name,
        "offer-mlkem768",
        "mtp.offer.inference.image_generation",
        one.bytes.clone(),
        receiver,
        108,
        REQS,
        "envelope/offer-mlkem768 unchanged but received on mtp.offer.inference.image_generation: \
         the subject is part of the AAD, so decryption fails; refused with 0108.",
    )?);

    // Signature value modified.
    let name = "bad-signature";
    let sig = env.get("sig").cloned().unwrap_or(Value::Null);
    let mut sv = sig
        .get("value")
        .and_then(Value::as_bytes)
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    if let Some(b) = sv.get_mut(10) {
        *b ^= 0x01;
    }
    let bytes = cbor::to_vec(&with_entry(
        &env,
        "sig",
        Some(with_entry(&sig, "value", Some(Value::Bytes(sv)))),
    ))
    .at(name)?;
    docs.push(refused(
        name,
        "offer-mlkem768",
        &one.subject,
        bytes,
        receiver,
        1100,
        REQS,
        "envelope/offer-mlkem768 with one bit of the sender's signature flipped: the sender is \
         not authenticated; refused with 1100 (PROFILE G-41).",
    )?);

    // The hash names other plaintext (re-signed): decryption works, the hash check fails.
    let name = "hash-mismatch";
    let bytes = resign(
        name,
        &with_entry(
            &unsigned,
            "hash",
            Some(Value::Bytes(sha256(b"another body").to_vec())),
        ),
    )?;
    docs.push(refused(
        name,
        "offer-mlkem768",
        &one.subject,
        bytes,
        receiver,
        108,
        &[REQS, &["SPEC-VII-A-06"]].concat(),
        "envelope/offer-mlkem768 whose plaintext hash is replaced (envelope re-signed): the body \
         decrypts but SHA-256(P) differs from `hash`; refused with 0108 (PROFILE G-41).",
    )?);

    // Opened by an agent that is not a recipient.
    docs.push(refused(
        "not-a-recipient",
        "offer-mlkem768",
        &one.subject,
        one.bytes.clone(),
        (&w.contributor, 1),
        108,
        REQS,
        "envelope/offer-mlkem768 received by the contributor, which has no recipient entry; \
         refused with 0108.",
    )?);

    // An 8-byte payload IV (re-signed): BIND VI-D requires 96-bit IVs.
    let name = "short-iv";
    let bytes = resign(
        name,
        &with_entry(&unsigned, "iv", Some(Value::Bytes(vec![0; 8]))),
    )?;
    docs.push(refused(
        name,
        "offer-mlkem768",
        &one.subject,
        bytes,
        receiver,
        103,
        &[REQS, &["BIND-VI-D-01"]].concat(),
        "envelope/offer-mlkem768 with an 8-byte payload IV (envelope re-signed): AES-256-GCM in \
         MTP uses 96-bit IVs only (BIND-VI-D-01); refused with 0103.",
    )?);
    files_of(&docs)
}
