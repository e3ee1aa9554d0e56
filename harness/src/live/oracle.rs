//! The harness's oracle over every frame received from the IUT, written from the
//! specification (not from the reference agent). Each check names the requirement of
//! `docs/requirements.yaml` it enforces:
//!
//! - the frame is one deterministic CBOR item (BIND-IV-A-01..05) of the shape
//!   `{type, body, hash}` (PROFILE G-09; BIND-VII-01);
//! - `hash` = SHA-256 of the body's deterministic CBOR (SPEC-VII-A-07; PROFILE G-41);
//! - the body has the fields `protocol/wire/mtp.cddl` requires (BIND-VII-01; an error
//!   object, the `mtp-error-bin` trailer included: SPEC-VI-06) and its
//!   `type` (where it has one) agrees with the frame;
//! - every MTP-UUID is a 32-byte byte string of version 1 with the object's type nibble
//!   (SPEC-IX-01, SPEC-IX-03, BIND-IX-01; BIND-VII-C-01 for `terms_id`);
//! - every signature by the IUT uses an allowed algorithm — ML-DSA-65/87, never ML-DSA-44
//!   (SPEC-VIII-A-01, BIND-VI-A-02) — and verifies under an assertion key of the IUT's
//!   DID Document over det-CBOR of the object without its signature (BIND-VII-A-06;
//!   PROFILE G-02): top-level, a NIM's Request and proposal (SPEC-III-C-1-05), Terms
//!   signatures in Acceptances (BIND-VII-C-05; PROFILE G-48) and Mandate signatures.

use mtp_protocol::cbor::{self, Value};
use mtp_protocol::crypto::{PublicKey, SignatureAlgorithm, sha256};
use mtp_protocol::identity::DidDocument;
use mtp_protocol::uuid::{MtpUuid, ObjectType};

use super::session::{Session, proposal_digest};
use super::values::without;

/// A requirement the IUT's message breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub requirement: &'static str,
    /// What the requirement asks for.
    pub expected: String,
    /// What the message had.
    pub observed: String,
}

impl Violation {
    fn new(
        requirement: &'static str,
        expected: impl Into<String>,
        observed: impl Into<String>,
    ) -> Self {
        Violation {
            requirement,
            expected: expected.into(),
            observed: observed.into(),
        }
    }
}

/// The IUT's identity as the oracle needs it.
#[derive(Clone, Debug, Default)]
pub struct IutIdentity {
    pub did: String,
    /// `(key id, algorithm, public key)` of its `assertionMethod` keys.
    pub assertion_keys: Vec<(String, SignatureAlgorithm, Vec<u8>)>,
}

impl IutIdentity {
    pub fn from_document(did: &str, document_json: &str) -> IutIdentity {
        let keys = DidDocument::from_json(document_json)
            .map(|d| d.assertion_keys())
            .unwrap_or_default();
        IutIdentity {
            did: did.to_owned(),
            assertion_keys: keys,
        }
    }
}

/// A frame that passed the checks.
#[derive(Clone, Debug, PartialEq)]
pub struct Checked {
    pub frame_type: String,
    pub body: Value,
    pub hash: [u8; 32],
}

/// BIND-VI-D-02 (PROFILE G-40): the IVs of the MTPAsync envelopes the IUT sends — the
/// payload `iv` and every recipient `iv` — never repeat across different envelopes. A
/// 96-bit IV drawn from a CSPRNG (or session id ‖ counter) repeats with negligible
/// probability; a repeat shows IVs that are not generated per encryption. The same
/// envelope seen twice (a broadcast on two subscriptions, a redelivery) is not a repeat.
#[derive(Debug, Default)]
pub struct IvOracle {
    /// IV → SHA-256 of the envelope's `ct` that used it first.
    seen: std::collections::HashMap<[u8; 12], [u8; 32]>,
}

impl IvOracle {
    /// Records the IVs of `payload` (a det-CBOR `nats-envelope`); a violation when one was
    /// already used by another envelope.
    pub fn check(&mut self, payload: &[u8]) -> Result<(), Violation> {
        let Ok(v) = cbor::from_slice_lenient(payload) else {
            return Ok(());
        };
        let ct = sha256(v.get("ct").and_then(Value::as_bytes).unwrap_or_default());
        let mut ivs: Vec<[u8; 12]> = Vec::new();
        if let Some(iv) = v
            .get("iv")
            .and_then(Value::as_bytes)
            .and_then(|b| b.try_into().ok())
        {
            ivs.push(iv);
        }
        if let Some(Value::Array(rs)) = v.get("recipients") {
            ivs.extend(
                rs.iter()
                    .filter_map(|r| r.get("iv").and_then(Value::as_bytes))
                    .filter_map(|b| <[u8; 12]>::try_from(b).ok()),
            );
        }
        for iv in ivs {
            match self.seen.get(&iv) {
                Some(first) if *first != ct => {
                    return Err(Violation {
                        requirement: "BIND-VI-D-02",
                        expected: "a fresh IV for each AES-256-GCM encryption of an MTPAsync envelope (PROFILE G-40)".into(),
                        observed: format!(
                            "IV {} already used by an earlier envelope of the IUT",
                            hex::encode(iv)
                        ),
                    });
                }
                Some(_) => {}
                None => {
                    self.seen.insert(iv, ct);
                }
            }
        }
        Ok(())
    }
}

/// Checks the bytes of a gRPC frame from the IUT (`mtp.v1.Frame.cbor`).
pub fn check_frame(
    bytes: &[u8],
    iut: &IutIdentity,
    session: Option<&Session>,
) -> Result<Checked, Violation> {
    let v = cbor::from_slice(bytes).map_err(|e| {
        use mtp_protocol::errors::Coded;
        let req = match e.requirement() {
            Some("BIND-IV-A-02") => "BIND-IV-A-02",
            Some("BIND-IV-A-03") => "BIND-IV-A-03",
            Some("BIND-IV-A-04") => "BIND-IV-A-04",
            Some("BIND-IV-A-05") => "BIND-IV-A-05",
            _ => "BIND-IV-A-01",
        };
        Violation::new(
            req,
            "one deterministically encoded CBOR frame (RFC 8949 §4.2.1)",
            format!("{e}"),
        )
    })?;
    let shape = |what: &str| {
        Violation::new(
            "BIND-VII-01",
            "a frame {type: tstr, body, hash: bstr .size 32} (PROFILE G-09)",
            what.to_owned(),
        )
    };
    let Value::Map(_) = &v else {
        return Err(shape(&format!("a {}", v.kind())));
    };
    let frame_type = v
        .get("type")
        .and_then(Value::as_text)
        .ok_or_else(|| shape("no text `type`"))?
        .to_owned();
    let body = v.get("body").cloned().ok_or_else(|| shape("no `body`"))?;
    let hash: [u8; 32] = v
        .get("hash")
        .and_then(Value::as_bytes)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| shape("no 32-byte `hash`"))?;
    let det = cbor::to_vec(&body).map_err(|e| shape(&e.to_string()))?;
    let actual = sha256(&det);
    if actual != hash {
        return Err(Violation::new(
            "SPEC-VII-A-07",
            format!("hash = SHA-256(det-CBOR(body)) = {}", hex::encode(actual)),
            format!("hash {}", hex::encode(hash)),
        ));
    }
    check_body(&frame_type, &body, iut, session)?;
    Ok(Checked {
        frame_type,
        body,
        hash,
    })
}

/// Required top-level fields per frame type (protocol/wire/mtp.cddl).
fn required_fields(frame_type: &str) -> &'static [&'static str] {
    match frame_type {
        "nim" => &[
            "type",
            "negotiation_id",
            "request",
            "offer_ref",
            "proposal",
            "round_timeout_ms",
            "max_rounds",
            "signature",
        ],
        "proposal" | "counterproposal" => &[
            "type",
            "negotiation_id",
            "round",
            "proposer",
            "terms",
            "timestamp",
            "signature",
        ],
        "acceptance" => &["type", "negotiation_id", "round", "accepted", "signature"],
        "rejection" => &["type", "negotiation_id", "round", "signature"],
        "termination" => &["type", "negotiation_id", "status", "error", "signature"],
        "mandate_draft" => &[
            "mandate_id",
            "offer_refs",
            "request_refs",
            "terms",
            "delegation_attestations",
            "commitment_timestamp",
            "expiration",
        ],
        "mandate" => &[
            "mandate_id",
            "offer_refs",
            "request_refs",
            "terms",
            "delegation_attestations",
            "commitment_timestamp",
            "expiration",
            "signatures",
        ],
        "mandate_signature" => &["mandate_id", "signature"],
        "settlement_notice" => &[
            "type",
            "mandate_id",
            "settlement_id",
            "amount",
            "timestamp",
            "signature",
        ],
        "delivery" => &[
            "mandate_id",
            "content_type",
            "payload",
            "timestamp",
            "signature",
        ],
        "delivery_request" => &["mandate_id", "timestamp", "signature"],
        "receipt" => &[
            "receipt_id",
            "mandate_id",
            "participants",
            "outcome",
            "verification",
            "timestamp",
            "signature",
        ],
        "attribution_record" => &[
            "mandate_id",
            "contributors",
            "methodology",
            "coalition_values",
            "signature",
        ],
        "notification" => &["type", "timestamp", "signature"],
        "error" => &[
            "error_id",
            "code",
            "severity",
            "layer",
            "description",
            "timestamp",
        ],
        "ack" => &["ok", "ref"],
        "did_resolution_response" => &["did", "document", "version"],
        "index_response" => &["results"],
        "offer" => &[
            "offer_id",
            "agent_id",
            "value_type",
            "description",
            "terms_template",
            "validity_window",
            "signature",
        ],
        "offer_revocation" => &["type", "offer_id", "agent_id", "revoked_at", "signature"],
        _ => &[],
    }
}

/// Fields whose value is an MTP-UUID of a known type (SPEC IX; PROFILE G-16, G-29).
fn uuid_type(key: &str) -> Option<ObjectType> {
    Some(match key {
        "offer_id" | "offer_ref" | "offer_refs" => ObjectType::Offer,
        "request_id" | "request_ref" | "request_refs" => ObjectType::Request,
        "terms_id" | "negotiation_id" | "transaction_id" => ObjectType::Terms,
        "receipt_id" => ObjectType::Receipt,
        "mandate_id" => ObjectType::Mandate,
        "manifest_id" => ObjectType::Manifest,
        "error_id" => ObjectType::Error,
        _ => return None,
    })
}

fn check_uuid(path: &str, v: &Value, ty: ObjectType) -> Result<(), Violation> {
    let req = if path.ends_with("terms_id") {
        "BIND-VII-C-01"
    } else {
        "SPEC-IX-01"
    };
    let u = MtpUuid::from_value(v).map_err(|e| {
        Violation::new(
            "SPEC-IX-03",
            format!("`{path}`: a well-formed MTP-UUID (32-byte byte string, BIND-IX-01)"),
            e.to_string(),
        )
    })?;
    if u.object_type() != Some(ty) {
        return Err(Violation::new(
            req,
            format!("`{path}`: an MTP-UUID of type {ty}"),
            format!("type nibble {}", u.type_nibble()),
        ));
    }
    Ok(())
}

/// Every MTP-UUID field of `v`, recursively (an `ack.ref` or a digest is not one).
fn walk_uuids(path: &str, v: &Value) -> Result<(), Violation> {
    match v {
        Value::Map(entries) => {
            for (k, val) in entries {
                let Some(key) = k.as_text() else { continue };
                let p = if path.is_empty() {
                    key.to_owned()
                } else {
                    format!("{path}.{key}")
                };
                match (uuid_type(key), val) {
                    (Some(ty), Value::Array(items)) if key.ends_with('s') => {
                        for (i, item) in items.iter().enumerate() {
                            check_uuid(&format!("{p}[{i}]"), item, ty)?;
                        }
                    }
                    (Some(ty), item) => check_uuid(&p, item, ty)?,
                    (None, _) => walk_uuids(&p, val)?,
                }
            }
            Ok(())
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk_uuids(&format!("{path}[{i}]"), item)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Schema, identifiers and signatures of a body the IUT sent.
pub fn check_body(
    frame_type: &str,
    body: &Value,
    iut: &IutIdentity,
    session: Option<&Session>,
) -> Result<(), Violation> {
    let schema = |what: String| {
        Violation::new(
            "BIND-VII-01",
            format!("a `{frame_type}` as protocol/wire/mtp.cddl defines it"),
            what,
        )
    };
    if !required_fields(frame_type).is_empty() && !matches!(body, Value::Map(_)) {
        return Err(schema(format!("a {}", body.kind())));
    }
    for f in required_fields(frame_type) {
        if body.get(f).is_none() {
            if frame_type == "error" {
                // Every error carries code, description, layer, ... (SPEC VI; PROFILE G-16).
                return Err(Violation::new(
                    "SPEC-VI-06",
                    "an mtp-error with error_id, code, severity, layer, description and timestamp",
                    format!("no `{f}`"),
                ));
            }
            return Err(schema(format!("no `{f}`")));
        }
    }
    let typed = [
        "nim",
        "proposal",
        "counterproposal",
        "acceptance",
        "rejection",
        "termination",
        "offer_revocation",
    ];
    if typed.contains(&frame_type) && body.get("type").and_then(Value::as_text) != Some(frame_type)
    {
        return Err(schema(format!(
            "body type {:?} in a `{frame_type}` frame",
            body.get("type")
        )));
    }
    walk_uuids("", body)?;
    check_signatures(frame_type, body, iut, session)
}

/// The IUT's public key for `key_id` (or every assertion key when absent).
fn candidate_keys<'a>(
    iut: &'a IutIdentity,
    key_id: Option<&str>,
) -> Vec<&'a (String, SignatureAlgorithm, Vec<u8>)> {
    match key_id {
        Some(k) => iut
            .assertion_keys
            .iter()
            .filter(|(id, _, _)| id == k)
            .collect(),
        None => iut.assertion_keys.iter().collect(),
    }
}

/// Checks one `mtp-signature` / `agent-signature` map by the IUT over `input`.
fn check_signature(
    what: &str,
    sig: &Value,
    input: &[u8],
    iut: &IutIdentity,
    requirement: &'static str,
) -> Result<(), Violation> {
    let label = sig
        .get("algorithm")
        .and_then(Value::as_text)
        .unwrap_or_default();
    let alg = match label {
        "ML-DSA-65" => SignatureAlgorithm::MlDsa65,
        "ML-DSA-87" => SignatureAlgorithm::MlDsa87,
        other => {
            let req = if other == "ML-DSA-44" {
                "BIND-VI-A-02"
            } else {
                "SPEC-VIII-A-01"
            };
            return Err(Violation::new(
                req,
                format!("{what}: ML-DSA-65 or ML-DSA-87 (never ML-DSA-44)"),
                format!("algorithm {other:?}"),
            ));
        }
    };
    let value = sig.get("value").and_then(Value::as_bytes).ok_or_else(|| {
        Violation::new(
            "BIND-VII-01",
            format!("{what}: a `value` byte string"),
            "none",
        )
    })?;
    let key_id = sig.get("key_id").and_then(Value::as_text);
    let keys = candidate_keys(iut, key_id);
    if keys.is_empty() {
        return Err(Violation::new(
            requirement,
            format!("{what}: signed with an assertionMethod key of {}", iut.did),
            format!("key_id {key_id:?} is not one of its keys"),
        ));
    }
    let ok = keys.iter().any(|(_, a, pk)| {
        *a == alg
            && PublicKey::from_bytes(alg, pk)
                .map(|k| k.verify(input, value).is_ok())
                .unwrap_or(false)
    });
    if ok {
        Ok(())
    } else {
        Err(Violation::new(
            requirement,
            format!(
                "{what}: a {label} signature by {} over det-CBOR of the object without its signature (PROFILE G-02)",
                iut.did
            ),
            "the signature does not verify".to_owned(),
        ))
    }
}

fn single(
    what: &str,
    obj: &Value,
    iut: &IutIdentity,
    requirement: &'static str,
) -> Result<(), Violation> {
    let Some(sig) = obj.get("signature") else {
        return Ok(());
    };
    let input = cbor::to_vec(&without(obj, &["signature"]))
        .map_err(|e| Violation::new("BIND-IV-A-01", format!("{what}: encodable"), e.to_string()))?;
    check_signature(what, sig, &input, iut, requirement)
}

fn check_signatures(
    frame_type: &str,
    body: &Value,
    iut: &IutIdentity,
    session: Option<&Session>,
) -> Result<(), Violation> {
    match frame_type {
        "ack" | "index_response" | "did_resolution_response" | "mandate_draft" => {}
        "mandate_signature" => {
            if let (Some(sig), Some(draft)) = (
                body.get("signature"),
                session.and_then(|s| s.draft.as_ref()),
            ) {
                let input = cbor::to_vec(&without(draft, &["signatures"])).unwrap_or_default();
                check_signature("mandate_signature", sig, &input, iut, "BIND-VII-A-06")?;
            }
        }
        "mandate" => {
            if let Some(Value::Array(sigs)) = body.get("signatures") {
                let input = cbor::to_vec(&without(body, &["signatures"])).unwrap_or_default();
                for s in sigs {
                    if s.get("agent").and_then(Value::as_text) == Some(iut.did.as_str()) {
                        check_signature("mandate.signatures", s, &input, iut, "BIND-VII-A-06")?;
                    }
                }
            }
        }
        "nim" => {
            single("nim", body, iut, "BIND-VII-A-06")?;
            if let Some(r) = body.get("request") {
                single("nim.request", r, iut, "BIND-VII-A-06")?;
            }
            if let Some(p) = body.get("proposal") {
                single("nim.proposal", p, iut, "SPEC-III-C-1-05")?;
            }
        }
        "proposal" | "counterproposal" => single(frame_type, body, iut, "SPEC-III-C-1-05")?,
        "acceptance" => {
            single("acceptance", body, iut, "BIND-VII-A-06")?;
            if let Some(s) = session {
                check_acceptance(body, s, iut)?;
            }
        }
        _ => single(frame_type, body, iut, "BIND-VII-A-06")?,
    }
    Ok(())
}

/// An Acceptance accepts the session's current proposal, and its Terms signatures by the
/// IUT verify over the Terms built from it (PROFILE G-10, G-48; BIND-VII-C-05).
fn check_acceptance(body: &Value, s: &Session, iut: &IutIdentity) -> Result<(), Violation> {
    let Some(accepted) = s.current() else {
        return Ok(());
    };
    let digest = proposal_digest(accepted).unwrap_or([0; 32]);
    let got = body.get("accepted").and_then(Value::as_bytes);
    // Multi-party re-opening aside, an Acceptance names the proposal on the table.
    if got.is_some_and(|g| g != digest.as_slice()) {
        return Ok(());
    }
    let Some(input) = s.terms_signing_input(accepted) else {
        return Ok(());
    };
    let mut sigs: Vec<&Value> = Vec::new();
    if let Some(sig) = body.get("terms_signature") {
        sigs.push(sig);
    }
    if let Some(Value::Array(all)) = body.get("terms_signatures") {
        sigs.extend(all.iter());
    }
    for sig in sigs {
        if sig.get("agent").and_then(Value::as_text) == Some(iut.did.as_str()) {
            check_signature("Terms signature", sig, &input, iut, "BIND-VII-C-05")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mtp_protocol::crypto::SigningKey;
    use mtp_protocol::identity::Did;
    use mtp_protocol::uuid::source_of;

    fn iut() -> (SigningKey, IutIdentity) {
        let k = SigningKey::from_seed(SignatureAlgorithm::MlDsa65, &[3; 32]);
        let did = Did::from_digest(sha256(k.public_key().as_bytes()));
        let id = IutIdentity {
            did: did.as_str().to_owned(),
            assertion_keys: vec![(
                format!("{}#key-1", did.as_str()),
                SignatureAlgorithm::MlDsa65,
                k.public_key().as_bytes().to_vec(),
            )],
        };
        (k, id)
    }

    fn signed(k: &SigningKey, id: &IutIdentity, mut body: Value) -> Value {
        let input = cbor::to_vec(&without(&body, &["signature"])).unwrap();
        super::super::values::set(
            &mut body,
            "signature",
            Value::map([
                ("algorithm", Value::text("ML-DSA-65")),
                ("key_id", Value::text(&id.assertion_keys[0].0)),
                ("value", Value::bytes(k.sign(&input))),
            ]),
        );
        body
    }

    fn rejection(id: &IutIdentity, ty: ObjectType) -> Value {
        let nid = MtpUuid::new(ty, 1_700_000_000_000_000_000, source_of(&id.did), [7; 17]);
        Value::map([
            ("type", Value::text("rejection")),
            ("negotiation_id", nid.to_value()),
            ("round", Value::from(1u64)),
        ])
    }

    fn frame(t: &str, body: &Value) -> Vec<u8> {
        mtp_protocol::wire::Frame::new(t, body.clone())
            .unwrap()
            .encode()
            .unwrap()
    }

    #[test]
    fn a_conforming_frame_passes_and_each_defect_names_its_requirement() {
        let (k, id) = iut();
        let good = signed(&k, &id, rejection(&id, ObjectType::Terms));
        assert!(check_frame(&frame("rejection", &good), &id, None).is_ok());

        // Wrong type nibble for a negotiation id.
        let bad = signed(&k, &id, rejection(&id, ObjectType::Offer));
        let v = check_frame(&frame("rejection", &bad), &id, None).unwrap_err();
        assert_eq!(v.requirement, "SPEC-IX-01");

        // A signature that does not verify.
        let mut tampered = good.clone();
        super::super::values::set(&mut tampered, "round", Value::from(2u64));
        let v = check_frame(&frame("rejection", &tampered), &id, None).unwrap_err();
        assert_eq!(v.requirement, "BIND-VII-A-06");

        // ML-DSA-44 is never allowed.
        let mut weak = good.clone();
        if let Some(Value::Map(sig)) = weak.get("signature").cloned() {
            let mut sig = Value::Map(sig);
            super::super::values::set(&mut sig, "algorithm", Value::text("ML-DSA-44"));
            super::super::values::set(&mut weak, "signature", sig);
        }
        let v = check_frame(&frame("rejection", &weak), &id, None).unwrap_err();
        assert_eq!(v.requirement, "BIND-VI-A-02");

        // Missing field.
        let v =
            check_frame(&frame("rejection", &without(&good, &["round"])), &id, None).unwrap_err();
        assert_eq!(v.requirement, "BIND-VII-01");

        // Hash mismatch and non-deterministic bytes.
        let mut f = mtp_protocol::wire::Frame::new("rejection", good.clone()).unwrap();
        f.hash[0] ^= 1;
        let v = check_frame(&f.encode().unwrap(), &id, None).unwrap_err();
        assert_eq!(v.requirement, "SPEC-VII-A-07");
        let reordered =
            mtp_protocol::cbor::mutate::reorder_map_keys(&frame("rejection", &good)).unwrap();
        let v = check_frame(&reordered, &id, None).unwrap_err();
        assert_eq!(v.requirement, "BIND-IV-A-02");
    }
}
