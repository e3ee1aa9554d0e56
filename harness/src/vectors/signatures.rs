//! Signature vectors (SPEC VIII-A, BIND VI-A/C, BIND VII; PROFILE G-02, G-39), folder
//! `signatures/`: every signed protocol object of [`super::catalogue`] signed with
//! ML-DSA-65 (`#key-1`) and ML-DSA-87 (`#key-2`) of the world's parties, SLH-DSA-SHA2-192s
//! (`#key-3`) where PROFILE G-39 allows it (Mandates, DID updates) and once where it does
//! not (an Offer, refused with 1100), and invalid signatures: tampered message, wrong key,
//! wrong and unknown algorithm labels, truncated values, a signature over the JSON form,
//! a signature over the map including its signature field, missing and reordered Terms
//! signatures. Signing is deterministic (FIPS 204 rnd = 0, FIPS 205 opt_rand = PK.seed).

use serde_json::{Value as Json, json};

use mtp_protocol::attribution::AttributionRecord;
use mtp_protocol::cbor::{self, Value};
use mtp_protocol::commitment::Mandate;
use mtp_protocol::crypto::{PublicKey, SignatureAlgorithm, sha256};
use mtp_protocol::discovery::{CapabilityManifest, OfferRevocation};
use mtp_protocol::error_record::{MtpErrorRecord, Notification};
use mtp_protocol::errors::{Coded, ErrorCode};
use mtp_protocol::identity::resolution::DidUpdate;
use mtp_protocol::negotiation::{
    Acceptance, NegotiationInitiation, Proposal, Rejection, Termination,
};
use mtp_protocol::primitives::common::{MultiSigned, SingleSigned};
use mtp_protocol::primitives::{Offer, Receipt, Request, Terms};
use mtp_protocol::verification::DisputeInitiationRecord;
use mtp_reference_agent::layers::settlement::SettlementNotice;
use mtp_reference_agent::layers::verification::{Delivery, DeliveryRequest};

use super::catalogue::{Entry, Signing, agent_signature, catalogue};
use super::doc::{VectorDoc, files_of, seed_header};
use super::world::{Party, set_path, signature_value, signing_input, with_entry, world};
use super::{At, VectorError, VectorFile, ensure, input_error};

/// The family name (folder under `vectors/`).
pub const FAMILY: &str = "signatures";

/// Objects signed with every ML-DSA parameter set (one per CDDL rule).
const OBJECTS: &[&str] = &[
    "offer",
    "request",
    "terms",
    "receipt",
    "mandate",
    "manifest",
    "attribution-record",
    "mtp-error",
    "notification",
    "offer-revocation",
    "dispute-initiation-record",
    "nim",
    "proposal",
    "acceptance",
    "rejection",
    "termination",
    "settlement-notice",
    "delivery-request",
    "delivery",
    "did-update",
    "alg-profile-message",
];

/// Who may sign what with SLH-DSA (PROFILE G-39): credentials, DID updates, Mandates.
pub fn slh_dsa_allowed(rule: &str) -> bool {
    matches!(rule, "mtp-mandate" | "did-update")
}

/// The code of a failed signature check of `rule` (PROFILE G-02; BIND XI).
pub fn failure_code(rule: &str) -> ErrorCode {
    match rule {
        "mtp-mandate" => ErrorCode::MandateSignatureInvalid,
        "mtp-manifest" => ErrorCode::ManifestSignatureInvalid,
        _ => ErrorCode::SignatureVerificationFailure,
    }
}

fn single<T: SingleSigned>(bytes: &[u8], pk: &PublicKey) -> Result<(), ErrorCode> {
    let obj = T::from_cbor(bytes).map_err(|e| e.code())?;
    obj.verify_signature(pk).map_err(|e| e.code())
}

fn multi<T: MultiSigned>(
    bytes: &[u8],
    resolve: &dyn Fn(&str, Option<&str>) -> Option<PublicKey>,
) -> Result<(), ErrorCode> {
    let obj = T::from_cbor(bytes).map_err(|e| e.code())?;
    obj.verify_signatures(resolve).map_err(|e| e.code())
}

/// Verifies a signed object with the protocol crate's typed verification where it
/// exists, else generically (signature over det-CBOR without `signature`); applies the
/// G-39 rule. `pk` is the key a single signature must verify under; multi-signed objects
/// resolve keys from the world's DID Documents.
pub fn verify(rule: &str, bytes: &[u8], pk: Option<&PublicKey>) -> Result<(), ErrorCode> {
    let resolve = |did: &str, kid: Option<&str>| -> Option<PublicKey> {
        let w = world().ok()?;
        let party = w.parties().into_iter().find(|p| p.did_str() == did)?;
        let doc_keys = party.doc.assertion_keys();
        let (_, alg, key) = match kid {
            Some(k) => doc_keys.into_iter().find(|(id, _, _)| id == k)?,
            None => doc_keys.into_iter().next()?,
        };
        PublicKey::from_bytes(alg, &key).ok()
    };
    // PROFILE G-39: SLH-DSA only on credentials, DID updates and Mandates.
    let v = cbor::from_slice(bytes).map_err(|e| e.code())?;
    let labels: Vec<String> = match v.get("signature").or_else(|| v.get("signatures")) {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|s| {
                s.get("algorithm")
                    .and_then(Value::as_text)
                    .map(str::to_owned)
            })
            .collect(),
        Some(s) => s
            .get("algorithm")
            .and_then(Value::as_text)
            .map(str::to_owned)
            .into_iter()
            .collect(),
        None => Vec::new(),
    };
    if !slh_dsa_allowed(rule)
        && labels
            .iter()
            .any(|l| l == SignatureAlgorithm::SlhDsaSha2_192s.label())
    {
        return Err(failure_code(rule));
    }
    let need = || pk.ok_or(ErrorCode::SignatureVerificationFailure);
    match rule {
        "mtp-terms" => multi::<Terms>(bytes, &resolve),
        "mtp-mandate" => multi::<Mandate>(bytes, &resolve),
        "mtp-offer" => single::<Offer>(bytes, need()?),
        "mtp-request" => single::<Request>(bytes, need()?),
        "mtp-receipt" => single::<Receipt>(bytes, need()?),
        "mtp-manifest" => single::<CapabilityManifest>(bytes, need()?),
        "attribution-record" => single::<AttributionRecord>(bytes, need()?),
        "mtp-error" => single::<MtpErrorRecord>(bytes, need()?),
        "mtp-notification" => single::<Notification>(bytes, need()?),
        "offer-revocation" => single::<OfferRevocation>(bytes, need()?),
        "dispute-initiation-record" => single::<DisputeInitiationRecord>(bytes, need()?),
        "nim" => single::<NegotiationInitiation>(bytes, need()?),
        "proposal" => single::<Proposal>(bytes, need()?),
        "acceptance" => single::<Acceptance>(bytes, need()?),
        "rejection" => single::<Rejection>(bytes, need()?),
        "termination" => single::<Termination>(bytes, need()?),
        "did-update" => single::<DidUpdate>(bytes, need()?),
        "settlement-notice" => single::<SettlementNotice>(bytes, need()?),
        "delivery" => single::<Delivery>(bytes, need()?),
        "delivery-request" => single::<DeliveryRequest>(bytes, need()?),
        _ => {
            let pk = need()?;
            let sig = v
                .get("signature")
                .ok_or(ErrorCode::SignatureVerificationFailure)?;
            let label = sig
                .get("algorithm")
                .and_then(Value::as_text)
                .ok_or(ErrorCode::SchemaViolation)?;
            let value = sig
                .get("value")
                .and_then(Value::as_bytes)
                .ok_or(ErrorCode::SchemaViolation)?;
            let input = cbor::to_vec(&with_entry(&v, "signature", None)).map_err(|e| e.code())?;
            mtp_protocol::crypto::verify(label, pk.as_bytes(), &input, value).map_err(|e| e.code())
        }
    }
}

// ---------------------------------------------------------------------------------------
// Building
// ---------------------------------------------------------------------------------------

/// One signer: party and key number.
#[derive(Clone, Copy)]
struct Signer {
    party: &'static Party,
    key: usize,
}

fn sign_with(
    vector: &str,
    e: &Entry,
    unsigned: &Value,
    signers: &[Signer],
) -> Result<Value, VectorError> {
    match e.signing {
        Signing::Multi { .. } => {
            let input = signing_input(vector, unsigned, "signatures")?;
            let mut sigs = Vec::new();
            for s in signers {
                sigs.push(agent_signature(
                    s.party.did_str(),
                    s.party.key(vector, s.key)?,
                    &s.party.kid(s.key),
                    &input,
                ));
            }
            Ok(with_entry(unsigned, "signatures", Some(Value::Array(sigs))))
        }
        _ => {
            let s = signers
                .first()
                .ok_or_else(|| input_error(vector, "no signer"))?;
            super::world::sign_plain(
                vector,
                unsigned,
                "signature",
                s.party.key(vector, s.key)?,
                &s.party.kid(s.key),
            )
        }
    }
}

fn signers_of(e: &Entry, key: usize) -> Vec<Signer> {
    match &e.signing {
        Signing::Single { party, .. } => vec![Signer { party, key }],
        Signing::Multi { signers } => signers
            .iter()
            .map(|(party, _)| Signer { party, key })
            .collect(),
        _ => Vec::new(),
    }
}

fn signer_json(s: &Signer) -> Json {
    let seed = s
        .party
        .seeds
        .get(s.key - 1)
        .map(|r| json!({"label": r.label, "seed": hex::encode(&r.seed)}));
    let pk = s
        .party
        .keys
        .get(s.key - 1)
        .map(|k| k.public_key().as_bytes().to_vec())
        .unwrap_or_default();
    json!({
        "agent": s.party.did_str(),
        "key_id": s.party.kid(s.key),
        "algorithm": s.party.keys.get(s.key - 1).map(|k| k.algorithm().label()),
        "public_key": hex::encode(&pk),
        "seed": seed,
    })
}

fn public_key(s: &Signer) -> Option<PublicKey> {
    s.party.keys.get(s.key - 1).map(|k| k.public_key())
}

/// The `codec.verify` member: single-signed objects name the key to verify with,
/// multi-signed ones the DID Documents the IUT must know (`add_peer`).
fn verify_codec(
    e: &Entry,
    key: Option<&PublicKey>,
    peers: &[&Party],
    ok: bool,
    code: Option<u16>,
) -> Option<Json> {
    let codec = e.codec?;
    let mut v = json!({"ok": ok});
    if let Some(c) = code {
        v["code"] = json!(c);
    }
    match e.signing {
        Signing::Multi { .. } => {
            v["peers"] = json!(
                peers
                    .iter()
                    .map(|p| format!("did/{}", p.name))
                    .collect::<Vec<_>>()
            );
        }
        _ => {
            let k = key?;
            v["public_key"] =
                json!({"alg": k.algorithm().label(), "key": hex::encode(k.as_bytes())});
        }
    }
    Some(json!({"type": codec, "operations": ["verify"], "verify": v}))
}

/// A signed object vector; `expect_ok` must match what verification gives (`code` when
/// refused).
#[allow(clippy::too_many_arguments)]
fn vector(
    e: &Entry,
    name: &str,
    value: &Value,
    signers: &[Signer],
    verify_key: Option<PublicKey>,
    expect: Result<(), ErrorCode>,
    requirements: &[&'static str],
    description: &str,
) -> Result<VectorDoc, VectorError> {
    let id = format!("{FAMILY}/{name}");
    let bytes = cbor::to_vec(value).at(&id)?;
    let got = verify(e.rule, &bytes, verify_key.as_ref());
    ensure(&id, got == expect, || {
        format!("verification gives {got:?}, expected {expect:?}")
    })?;
    let field = e.signature_field().unwrap_or("signature");
    let input = signing_input(&id, value, field)?;
    let sigs: Vec<Json> = match value.get(field) {
        Some(Value::Array(a)) => a.clone(),
        Some(s) => vec![s.clone()],
        None => Vec::new(),
    }
    .iter()
    .map(|s| {
        let v = s.get("value").and_then(Value::as_bytes).unwrap_or_default();
        json!({
            "agent": s.get("agent").and_then(Value::as_text),
            "algorithm": s.get("algorithm").and_then(Value::as_text),
            "key_id": s.get("key_id").and_then(Value::as_text),
            "length": v.len(),
            "value": hex::encode(v),
        })
    })
    .collect();
    let peers: Vec<&Party> = signers.iter().map(|s| s.party).collect();
    let code = expect.err().map(ErrorCode::as_u16);
    let mut doc = VectorDoc::new(id, requirements, description);
    for (k, v) in seed_header() {
        doc = doc.input(&k, v);
    }
    doc = doc
        .input("object", format!("cbor/{}", e.name))
        .input("rule", e.rule)
        .input(
            "signers",
            Json::Array(signers.iter().map(signer_json).collect()),
        )
        .input("signature_field", field)
        .input("signing_input_length", input.len())
        .input("signing_input_sha256", hex::encode(sha256(&input)))
        .expected("signatures", Json::Array(sigs))
        .expected("verification", code.is_none());
    if input.len() <= super::doc::INLINE_MAX {
        doc = doc.input("signing_input", hex::encode(&input));
    }
    if let Some(k) = &verify_key {
        doc = doc.input(
            "verify_with",
            json!({"algorithm": k.algorithm().label(), "public_key": hex::encode(k.as_bytes())}),
        );
    }
    if let Some(c) = code {
        doc = doc.expected("code", c);
    }
    if let Some(c) = verify_codec(e, verify_key.as_ref(), &peers, code.is_none(), code) {
        doc = doc.codec(c);
    }
    Ok(doc.bytes(bytes))
}

fn alg_reqs(alg: SignatureAlgorithm) -> &'static [&'static str] {
    match alg {
        SignatureAlgorithm::MlDsa65 => &["BIND-VI-A-02", "BIND-VI-A-I01", "BIND-VI-01"],
        SignatureAlgorithm::MlDsa87 => &["BIND-VI-A-I02", "BIND-VI-01", "SPEC-VIII-B-03"],
        SignatureAlgorithm::SlhDsaSha2_192s => &[
            "SPEC-VIII-A-06",
            "BIND-VI-C-01",
            "BIND-VI-C-03",
            "BIND-VI-C-I01",
            "BIND-VI-01",
        ],
    }
}

fn object_reqs(rule: &str) -> &'static [&'static str] {
    match rule {
        "mtp-offer" => &["BIND-VII-A-06"],
        "mtp-terms" => &["BIND-VII-C-05", "SPEC-II-C-05"],
        "mtp-mandate" => &["SPEC-III-D-1-02", "SPEC-III-D-1-03"],
        "attribution-record" => &["SPEC-III-G-2-04"],
        "mtp-request" => &["SPEC-II-B-04"],
        _ => &[],
    }
}

fn valid(e: &Entry, key: usize, alg: SignatureAlgorithm) -> Result<VectorDoc, VectorError> {
    let name = format!(
        "{}-{}",
        e.name,
        alg.label().to_ascii_lowercase().replace('-', "")
    );
    let signers = signers_of(e, key);
    let value = if key == 1 {
        e.value.clone()
    } else {
        sign_with(&name, e, &e.unsigned(), &signers)?
    };
    let pk = signers.first().and_then(public_key);
    let allowed = alg != SignatureAlgorithm::SlhDsaSha2_192s || slh_dsa_allowed(e.rule);
    let expect = if allowed {
        Ok(())
    } else {
        Err(failure_code(e.rule))
    };
    let description = if allowed {
        format!(
            "cbor/{} signed with {} (#key-{key}) over the deterministic CBOR of the map without \
             `{}` (PROFILE G-02; pure {}, empty context, deterministic). Verifies.",
            e.name,
            alg.label(),
            e.signature_field().unwrap_or("signature"),
            if alg.is_ml_dsa() {
                "FIPS 204 ML-DSA.Sign"
            } else {
                "FIPS 205 slh_sign"
            }
        )
    } else {
        format!(
            "cbor/{} with a cryptographically valid SLH-DSA-SHA2-192s signature: refused with \
             {} because PROFILE G-39 allows SLH-DSA only on credentials, DID updates and \
             Mandates.",
            e.name,
            failure_code(e.rule)
        )
    };
    let reqs = [alg_reqs(alg), object_reqs(e.rule)].concat();
    let doc = vector(e, &name, &value, &signers, pk, expect, &reqs, &description)?;
    if !allowed {
        // The signature itself is good: only the G-39 rule refuses it.
        let input = signing_input(&name, &value, "signature")?;
        let sig = value
            .get("signature")
            .and_then(|s| s.get("value"))
            .and_then(Value::as_bytes)
            .unwrap_or_default();
        let ok = signers
            .first()
            .and_then(public_key)
            .is_some_and(|k| k.verify(&input, sig).is_ok());
        ensure(&name, ok, || "the SLH-DSA signature does not verify".into())?;
    }
    Ok(doc)
}

/// The first signature map of a signed value.
fn first_signature(value: &Value, field: &str) -> Option<Value> {
    match value.get(field)? {
        Value::Array(a) => a.first().cloned(),
        s => Some(s.clone()),
    }
}

fn replace_first_signature(value: &Value, field: &str, new: Value) -> Value {
    match value.get(field) {
        Some(Value::Array(a)) => {
            let mut a = a.clone();
            if let Some(x) = a.first_mut() {
                *x = new;
            }
            with_entry(value, field, Some(Value::Array(a)))
        }
        _ => with_entry(value, field, Some(new)),
    }
}

/// Field changed after signing ("tampered message") per object.
fn tamper(rule: &str, v: &Value) -> Value {
    match rule {
        "mtp-offer" => set_path(v, "terms_template.price.amount", Value::Float(0.8)),
        "mtp-terms" => set_path(v, "price.amount", Value::Float(0.8)),
        "mtp-mandate" => set_path(
            v,
            "commitment_timestamp",
            Value::Tag(0, Box::new(Value::text("2026-03-06T13:06:41Z"))),
        ),
        "mtp-manifest" => set_path(v, "revision", Value::Integer(4)),
        _ => set_path(
            v,
            "timestamp",
            Value::Tag(0, Box::new(Value::text("2026-03-06T14:13:21Z"))),
        ),
    }
}

fn invalid_set(e: &Entry) -> Result<Vec<VectorDoc>, VectorError> {
    let w = world()?;
    let field = e
        .signature_field()
        .ok_or_else(|| input_error("signatures", "not a signed object"))?;
    let signers = signers_of(e, 1);
    let pk = signers.first().and_then(public_key);
    let code = failure_code(e.rule);
    let mut out = Vec::new();
    let reqs = [&["BIND-VI-A-02", "BIND-VI-01"][..], object_reqs(e.rule)].concat();

    // Tampered message: a signed field changed after signing.
    let name = format!("{}-tampered-message", e.name);
    let v = tamper(e.rule, &e.value);
    out.push(vector(
        e,
        &name,
        &v,
        &signers,
        pk.clone(),
        Err(code),
        &reqs,
        &format!(
            "cbor/{} with a signed field changed after signing: the signature no longer covers \
             the content; refused with {code}.",
            e.name
        ),
    )?);

    // Wrong key: the first signature made with another party's key, key_id unchanged.
    let name = format!("{}-wrong-key", e.name);
    let other: &Party = if std::ptr::eq(signers[0].party, &w.requester) {
        &w.provider
    } else {
        &w.requester
    };
    let input = signing_input(&name, &e.value, field)?;
    let forged_value = other.key(&name, 1)?.sign(&input);
    let first =
        first_signature(&e.value, field).ok_or_else(|| input_error(&name, "no signature"))?;
    let forged = with_entry(&first, "value", Some(Value::Bytes(forged_value)));
    let v = replace_first_signature(&e.value, field, forged);
    out.push(vector(
        e,
        &name,
        &v,
        &signers,
        pk.clone(),
        Err(code),
        &reqs,
        &format!(
            "cbor/{} whose (first) signature was made with the {}'s #key-1 while key_id and \
             agent name the {}: refused with {code}.",
            e.name, other.name, signers[0].party.name
        ),
    )?);

    // Wrong algorithm label: an ML-DSA-65 signature labelled ML-DSA-87.
    let name = format!("{}-wrong-algorithm-label", e.name);
    let relabelled = with_entry(&first, "algorithm", Some(Value::text("ML-DSA-87")));
    let v = replace_first_signature(&e.value, field, relabelled);
    out.push(vector(
        e,
        &name,
        &v,
        &signers,
        pk.clone(),
        Err(code),
        &reqs,
        &format!(
            "cbor/{} whose ML-DSA-65 signature is labelled ML-DSA-87: the label must name the \
             key's algorithm (PROFILE G-02); refused with {code}.",
            e.name
        ),
    )?);

    // Refused algorithm label (PROFILE G-02: ML-DSA-44 and pre-quantum labels → 1100).
    let name = format!("{}-mldsa44-label", e.name);
    let relabelled = with_entry(&first, "algorithm", Some(Value::text("ML-DSA-44")));
    let v = replace_first_signature(&e.value, field, relabelled);
    out.push(vector(
        e,
        &name,
        &v,
        &signers,
        pk.clone(),
        Err(code),
        &[&reqs[..], &["BIND-VI-01"]].concat(),
        &format!(
            "cbor/{} whose signature is labelled ML-DSA-44, a parameter set MTP does not use \
             (PROFILE G-02); refused with {code}.",
            e.name
        ),
    )?);

    // Truncated value.
    let name = format!("{}-truncated", e.name);
    let sig = first
        .get("value")
        .and_then(Value::as_bytes)
        .unwrap_or_default();
    let cut = with_entry(
        &first,
        "value",
        Some(Value::Bytes(sig[..sig.len().saturating_sub(1)].to_vec())),
    );
    let v = replace_first_signature(&e.value, field, cut);
    out.push(vector(
        e,
        &name,
        &v,
        &signers,
        pk,
        Err(code),
        &[&reqs[..], &["BIND-VI-A-I01"]].concat(),
        &format!(
            "cbor/{} with its signature value one byte short (3,308 instead of 3,309 bytes); \
             refused with {code}.",
            e.name
        ),
    )?);
    Ok(out)
}

fn offer_specials(e: &Entry) -> Result<Vec<VectorDoc>, VectorError> {
    let w = world()?;
    let p = &w.provider;
    let signers = signers_of(e, 1);
    let pk = signers.first().and_then(public_key);
    let mut out = Vec::new();

    // Signed over the JSON form instead of the deterministic CBOR (BIND-IV-C-02).
    let name = "offer-signed-over-json";
    let unsigned = e.unsigned();
    let (j, _) = super::objects::json_form(name, "mtp-offer", &cbor::to_vec(&e.value).at(name)?)?;
    let mut j = j;
    if let Some(m) = j.as_object_mut() {
        m.remove("signature");
    }
    let json_bytes = serde_json::to_vec(&j).at(name)?;
    let sig = signature_value(
        "ML-DSA-65",
        Some(&p.kid(1)),
        p.key(name, 1)?.sign(&json_bytes),
    );
    let v = with_entry(&unsigned, "signature", Some(sig));
    out.push(
        vector(
            e,
            name,
            &v,
            &signers,
            pk.clone(),
            Err(ErrorCode::SignatureVerificationFailure),
            &["BIND-IV-C-02", "BIND-VII-A-06", "BIND-IV-C-I01"],
            "cbor/offer signed over the UTF-8 bytes of its compact JSON form (PROFILE G-27) \
             instead of its deterministic CBOR: JSON is never signed (BIND-IV-C-02); refused \
             with 1100.",
        )?
        .input(
            "signed_json",
            String::from_utf8_lossy(&json_bytes).into_owned(),
        ),
    );

    // Signed over the map including a signature field (the signing input excludes it).
    let name = "offer-signed-over-full-map";
    let stand_in = with_entry(
        &unsigned,
        "signature",
        Some(signature_value("ML-DSA-65", Some(&p.kid(1)), Vec::new())),
    );
    let full = cbor::to_vec(&stand_in).at(name)?;
    let sig = signature_value("ML-DSA-65", Some(&p.kid(1)), p.key(name, 1)?.sign(&full));
    let v = with_entry(&unsigned, "signature", Some(sig));
    out.push(vector(
        e,
        name,
        &v,
        &signers,
        pk,
        Err(ErrorCode::SignatureVerificationFailure),
        &["BIND-VII-A-06"],
        "cbor/offer signed over the deterministic CBOR of the whole map including a \
         `signature` entry (with an empty value): the signature must cover all fields except \
         `signature` (BIND-VII-A-06); refused with 1100.",
    )?);
    Ok(out)
}

fn terms_specials(e: &Entry) -> Result<Vec<VectorDoc>, VectorError> {
    let signers = signers_of(e, 1);
    let sigs = e
        .value
        .get("signatures")
        .and_then(Value::as_array)
        .map(<[Value]>::to_vec)
        .unwrap_or_default();
    let mut out = Vec::new();
    if let [a, b] = &sigs[..] {
        let name = "terms-signature-missing";
        let v = with_entry(
            &e.value,
            "signatures",
            Some(Value::Array(vec![a.clone(), a.clone()])),
        );
        out.push(vector(
            e,
            name,
            &v,
            &signers,
            None,
            Err(ErrorCode::SignatureVerificationFailure),
            &["BIND-VII-C-05", "SPEC-II-C-05"],
            "cbor/terms whose second signature is replaced by a copy of the first: the \
             requester's signature is missing, so the Terms are not valid (BIND-VII-C-05); \
             refused with 1100.",
        )?);
        let name = "terms-signatures-reordered";
        let v = with_entry(
            &e.value,
            "signatures",
            Some(Value::Array(vec![b.clone(), a.clone()])),
        );
        out.push(vector(
            e,
            name,
            &v,
            &signers,
            None,
            Err(ErrorCode::SignatureVerificationFailure),
            &["BIND-VII-C-05"],
            "cbor/terms with both signatures valid but not in participants order (PROFILE \
             G-02); refused with 1100.",
        )?);
    }
    Ok(out)
}

/// Generates the family's files.
pub fn generate() -> Result<Vec<VectorFile>, VectorError> {
    let cat = catalogue()?;
    let mut docs = Vec::new();
    for name in OBJECTS {
        let e = cat.get(name)?;
        docs.push(valid(e, 1, SignatureAlgorithm::MlDsa65)?);
        docs.push(valid(e, 2, SignatureAlgorithm::MlDsa87)?);
    }
    // SLH-DSA where PROFILE G-39 allows it, and once where it does not.
    for name in ["mandate", "did-update", "offer"] {
        docs.push(valid(
            cat.get(name)?,
            3,
            SignatureAlgorithm::SlhDsaSha2_192s,
        )?);
    }
    for name in ["offer", "terms", "mandate", "manifest", "receipt"] {
        docs.extend(invalid_set(cat.get(name)?)?);
    }
    docs.extend(offer_specials(cat.get("offer")?)?);
    docs.extend(terms_specials(cat.get("terms")?)?);
    files_of(&docs)
}
