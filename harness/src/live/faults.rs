//! The deliberate defects of a `send` (`scenario::Fault`) applied to a completed body, and
//! the frame bytes around it (PROFILE G-09 `{type, body, hash}`).
//!
//! Order: value-level defects that a signature must cover (`unknown_field`,
//! `malformed_uuid`, `reused_uuid`; `expired`, `authority_out_of_scope` and
//! `revoked_credential` are handled while building) → signature (or its fault) →
//! `tamper_after_signing` → byte-level encoding defects (`cbor::mutate`) on the body's
//! bytes inside the frame. `hash` is always SHA-256 of the deterministic body, so that the
//! only defect is the one the scenario asked for.

use mtp_protocol::cbor::{self, Value, mutate};
use mtp_protocol::crypto::sha256;

use super::build::{BuildError, SINGLE_SIGNED, finish, id_field, malformed_uuid};
use super::persona::Persona;
use super::values::{has_narrow_float, set, tampered};
use crate::runner::dry::put_path;
use crate::scenario::Fault;
use crate::scenario::template::{PathSeg, ValuePath};

/// Why the faults could not be applied (a scenario that asks for a defect the message
/// cannot carry is a scenario error).
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error("fault {fault}: {reason}")]
    NotApplicable { fault: String, reason: String },
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("cannot encode the message: {0}")]
    Encode(String),
}

fn na(f: &Fault, reason: impl Into<String>) -> FaultError {
    FaultError::NotApplicable {
        fault: f.to_string(),
        reason: reason.into(),
    }
}

fn key_path(key: &str) -> ValuePath {
    ValuePath(vec![PathSeg::Key(key.to_owned())])
}

/// Value-level defects applied before signing.
pub fn before_signing(
    frame: &str,
    body: &mut Value,
    faults: &[Fault],
    reused: Option<&Value>,
) -> Result<(), FaultError> {
    for f in faults {
        match f {
            Fault::UnknownField { name } => set(body, name, Value::text("unknown to the receiver")),
            Fault::MalformedUuid { field } => {
                let path = match field {
                    Some(p) => p.clone(),
                    None => key_path(
                        id_field(frame).ok_or_else(|| na(f, format!("{frame} has no id field")))?,
                    ),
                };
                put_path(body, &path.0, malformed_uuid(frame.as_bytes()));
            }
            Fault::ReusedUuid { .. } => {
                let field =
                    id_field(frame).ok_or_else(|| na(f, format!("{frame} has no id field")))?;
                let v = reused.ok_or_else(|| na(f, "no MTP-UUID sent before to reuse"))?;
                set(body, field, v.clone());
            }
            Fault::NonShortestFloat if !has_narrow_float(body) => {
                // A float narrower than binary64 for the encoder defect to widen, covered
                // by the signature.
                set(body, "x-float", Value::Float(0.5));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Signs (or not) according to the signature fault (PROFILE G-02).
pub fn sign(
    frame: &str,
    body: &mut Value,
    faults: &[Fault],
    persona: &Persona,
) -> Result<(), FaultError> {
    let fault = faults.iter().find(|f| f.is_signature_fault());
    match fault {
        None => Ok(finish(frame, body, persona)?),
        Some(f @ Fault::MissingSignature) => {
            let field = signature_field(frame).ok_or_else(|| na(f, "unsigned message"))?;
            super::values::remove(body, field);
            Ok(())
        }
        Some(f @ Fault::BadSignature) => {
            finish(frame, body, persona)?;
            let sig = signature_value_mut(frame, body).ok_or_else(|| na(f, "unsigned message"))?;
            if let Value::Bytes(b) = sig {
                let mid = b.len() / 2;
                match b.get_mut(mid) {
                    Some(x) => *x ^= 0x5a,
                    None => b.push(0),
                }
            }
            Ok(())
        }
        Some(f @ Fault::WrongAlgorithm) => {
            if !SINGLE_SIGNED.contains(&frame) {
                return Err(na(f, "only single-signed messages"));
            }
            // ML-DSA-44 is forbidden for every MTP object (BIND-VI-A-02).
            let input = cbor::to_vec(&super::values::without(body, &["signature"]))
                .map_err(|e| FaultError::Encode(e.to_string()))?;
            let seed = sha256(persona.did.as_bytes());
            let key = ml_dsa::SigningKey::<ml_dsa::MlDsa44>::from_seed(&seed.into());
            let value = ml_dsa::signature::Signer::sign(&key, &input)
                .encode()
                .to_vec();
            set(
                body,
                "signature",
                Value::map([
                    ("algorithm", Value::text("ML-DSA-44")),
                    ("key_id", Value::text(&persona.key_id)),
                    ("value", Value::bytes(value)),
                ]),
            );
            Ok(())
        }
        Some(f @ Fault::SignWith(label)) => {
            if !SINGLE_SIGNED.contains(&frame) {
                return Err(na(f, "only single-signed messages"));
            }
            // A key of `label` derived from the persona; its DID Document holds only the
            // ML-DSA-65 key, so the signature names that key's id (PROFILE G-39: SLH-DSA is
            // refused on these objects, 1100).
            let input = cbor::to_vec(&super::values::without(body, &["signature"]))
                .map_err(|e| FaultError::Encode(e.to_string()))?;
            let seed = sha256(format!("{}/sign_with/{label}", persona.did).as_bytes());
            let value = match mtp_protocol::crypto::SignatureAlgorithm::from_label(label) {
                Ok(alg) => mtp_protocol::crypto::SigningKey::from_seed(alg, &seed).sign(&input),
                Err(_) => {
                    let key = ml_dsa::SigningKey::<ml_dsa::MlDsa44>::from_seed(&seed.into());
                    ml_dsa::signature::Signer::sign(&key, &input)
                        .encode()
                        .to_vec()
                }
            };
            set(
                body,
                "signature",
                Value::map([
                    ("algorithm", Value::text(label)),
                    ("key_id", Value::text(&persona.key_id)),
                    ("value", Value::bytes(value)),
                ]),
            );
            Ok(())
        }
        Some(_) => Ok(finish(frame, body, persona)?),
    }
}

/// The gRPC metadata a send asks for (`protocol_version`, `alg_profile`; PROFILE G-49,
/// G-38): `mtp-version` replaced (empty: removed), `mtp-alg-profile-bin` added as the
/// deterministic CBOR of the profile map (functions not given list the baseline).
pub fn apply_metadata(md: &mut tonic::metadata::MetadataMap, faults: &[Fault]) {
    for f in faults {
        match f {
            Fault::ProtocolVersion(v) => {
                md.remove("mtp-version");
                if !v.is_empty()
                    && let Ok(value) = v.parse()
                {
                    md.insert("mtp-version", value);
                }
            }
            Fault::AlgProfile(functions) => {
                let mut entries: Vec<(Value, Value)> = Vec::new();
                for (function, baseline) in [
                    ("signature", "ML-DSA-65"),
                    ("kem", "ML-KEM-768"),
                    ("symmetric", "AES-256-GCM"),
                    ("hash", "SHA-256"),
                ] {
                    if !functions.iter().any(|(k, _)| k == function) {
                        entries.push((
                            Value::text(function),
                            Value::Array(vec![Value::text(baseline)]),
                        ));
                    }
                }
                for (k, labels) in functions {
                    entries.push((
                        Value::text(k),
                        Value::Array(labels.iter().map(Value::text).collect()),
                    ));
                }
                if let Ok(bytes) = cbor::to_vec(&Value::Map(entries)) {
                    md.insert_bin(
                        "mtp-alg-profile-bin",
                        tonic::metadata::MetadataValue::from_bytes(&bytes),
                    );
                }
            }
            _ => {}
        }
    }
}

fn signature_field(frame: &str) -> Option<&'static str> {
    if SINGLE_SIGNED.contains(&frame) || frame == "mandate_signature" {
        Some("signature")
    } else if frame == "mandate" {
        Some("signatures")
    } else {
        None
    }
}

fn signature_value_mut<'a>(frame: &str, body: &'a mut Value) -> Option<&'a mut Value> {
    let Value::Map(entries) = body else {
        return None;
    };
    let field = signature_field(frame)?;
    let (_, sig) = entries
        .iter_mut()
        .find(|(k, _)| k.as_text() == Some(field))?;
    let sig = match sig {
        Value::Array(items) => items.first_mut()?,
        other => other,
    };
    let Value::Map(se) = sig else { return None };
    se.iter_mut()
        .find(|(k, _)| k.as_text() == Some("value"))
        .map(|(_, v)| v)
}

/// `tamper_after_signing`: the field changes after the signature was computed.
pub fn after_signing(body: &mut Value, faults: &[Fault]) {
    for f in faults {
        if let Fault::TamperAfterSigning { field } = f {
            let new = match field.lookup(body) {
                Some(v) => tampered(v),
                None => Value::text("x-tampered"),
            };
            put_path(body, &field.0, new);
        }
    }
}

/// The body bytes with the encoding defects applied (deterministic when there are none).
pub fn body_bytes(body: &Value, faults: &[Fault]) -> Result<Vec<u8>, FaultError> {
    let mut bytes = cbor::to_vec(body).map_err(|e| FaultError::Encode(e.to_string()))?;
    for f in faults {
        let mutated = match f {
            Fault::ReorderKeys => mutate::reorder_map_keys(&bytes),
            Fault::NonShortestInt => mutate::non_shortest_int(&bytes),
            Fault::NonShortestFloat => mutate::non_shortest_float(&bytes),
            Fault::IndefiniteLength => mutate::indefinite_length(&bytes),
            Fault::DuplicateKey => mutate::duplicate_key(&bytes),
            _ => continue,
        };
        bytes = mutated.ok_or_else(|| na(f, "the message has nothing it applies to"))?;
    }
    Ok(bytes)
}

/// Whether a fault changes the encoding (not possible inside a NATS envelope here).
pub fn is_encoding_fault(f: &Fault) -> bool {
    matches!(
        f,
        Fault::ReorderKeys
            | Fault::NonShortestInt
            | Fault::NonShortestFloat
            | Fault::IndefiniteLength
            | Fault::DuplicateKey
    )
}

/// `mtp.v1.Frame.cbor`: the map `{body, hash, type}` in deterministic key order with the
/// body's bytes spliced in as they are; `hash` = SHA-256 of the deterministic body.
pub fn frame_bytes(
    frame_type: &str,
    body: &Value,
    body_bytes: &[u8],
) -> Result<Vec<u8>, FaultError> {
    let enc = |v: &Value| cbor::to_vec(v).map_err(|e| FaultError::Encode(e.to_string()));
    let det = enc(body)?;
    let mut out = vec![0xa3];
    out.extend(enc(&Value::text("body"))?);
    out.extend_from_slice(body_bytes);
    out.extend(enc(&Value::text("hash"))?);
    out.extend(enc(&Value::bytes(sha256(&det).to_vec()))?);
    out.extend(enc(&Value::text("type"))?);
    out.extend(enc(&Value::text(frame_type))?);
    Ok(out)
}

/// `frame_hash`: the frame of [`frame_bytes`] with `hash` computed by another algorithm
/// over the deterministic body (SPEC-VII-A-08; PROFILE G-09: the receiver refuses with
/// 0108). Without the fault, `bytes` unchanged.
pub fn with_frame_hash(
    frame_type: &str,
    body: &Value,
    body_bytes: &[u8],
    faults: &[Fault],
    bytes: Vec<u8>,
) -> Result<Vec<u8>, FaultError> {
    use crate::scenario::FrameHashAlg;
    use sha2::Digest;
    let Some(alg) = faults.iter().find_map(|f| match f {
        Fault::FrameHash(a) => Some(*a),
        _ => None,
    }) else {
        return Ok(bytes);
    };
    let enc = |v: &Value| cbor::to_vec(v).map_err(|e| FaultError::Encode(e.to_string()));
    let det = enc(body)?;
    let hash: Vec<u8> = match alg {
        FrameHashAlg::Sha3_256 => mtp_protocol::crypto::sha3_256(&det).to_vec(),
        FrameHashAlg::Sha512_256 => sha2::Sha512_256::digest(&det).to_vec(),
    };
    let mut out = vec![0xa3];
    out.extend(enc(&Value::text("body"))?);
    out.extend_from_slice(body_bytes);
    out.extend(enc(&Value::text("hash"))?);
    out.extend(enc(&Value::bytes(hash))?);
    out.extend(enc(&Value::text("type"))?);
    out.extend(enc(&Value::text(frame_type))?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_bytes_equal_the_protocol_frame_without_faults() {
        let body = Value::map([("b", Value::from(1u64)), ("a", Value::text("x"))]);
        let det = cbor::to_vec(&body).unwrap();
        let ours = frame_bytes("ack", &body, &det).unwrap();
        let theirs = mtp_protocol::wire::Frame::new("ack", body.clone())
            .unwrap()
            .encode()
            .unwrap();
        assert_eq!(ours, theirs);
        let reordered = body_bytes(&body, &[Fault::ReorderKeys]).unwrap();
        let f = frame_bytes("ack", &body, &reordered).unwrap();
        assert!(cbor::from_slice(&f).is_err());
        assert!(cbor::from_slice_lenient(&f).is_ok());
    }
}
