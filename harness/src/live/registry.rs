//! The harness as DID controller and as DID Registry (BIND II-B; PROFILE G-32).
//!
//! - As controller, a persona rotates its key: a `send` of `did_resolution_response` builds
//!   the persona's version history — version 1 (its document, signed by its initial key)
//!   and, with the template key `rotate`, a version 2 whose document replaces the initial
//!   key by a fresh ML-DSA-65 key. `rotate.signer` picks who signs version 2: `previous`
//!   (the pre-update authentication key, conforming, BIND-II-B-03), `new` (the new key) or
//!   `stranger` (an unrelated key under the old key id); `rotate.previous_hash: broken`
//!   breaks the chain. `rotate` is consumed by the harness and never sent; every other
//!   template field overrides the built response.
//! - Sent on `grpc:Agent/ResolveDid` while the IUT has no call pending there, the response
//!   is *published*: the persona's server answers the IUT's later resolutions of that
//!   persona with it (the peer path), instead of its version-1 document.
//! - As judge, [`check_response`] verifies every `did_resolution_response` the IUT sends
//!   that carries a `history`, independently of the IUT: the history replays from a
//!   version 1 signed by the DID's initial key, each later version signed by an
//!   authentication key of its predecessor with `previous_hash` chained (BIND-II-B-03),
//!   and it ends at `version` with `document` byte-equal to that version's (BIND-II-B-05).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use mtp_protocol::cbor::Value;
use mtp_protocol::crypto::{SignatureAlgorithm, SigningKey};
use mtp_protocol::errors::Coded;
use mtp_protocol::identity::document::{Relationship, VerificationMethod};
use mtp_protocol::identity::resolution::{
    DidHistory, DidResolutionResponse, DidUpdate, ResolutionError,
};
use mtp_protocol::identity::{DidDocument, KeyType, Multikey};
use mtp_protocol::primitives::{CborObject, SingleSigned};
use mtp_protocol::time::Timestamp;

use super::build::BuildError;
use super::oracle::Violation;
use super::persona::Persona;
use super::values::{merge, remove};

/// Who signs the rotating update (template `rotate.signer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signer {
    /// The pre-update authentication key (BIND-II-B-03: conforming).
    Previous,
    /// The key the update introduces.
    New,
    /// A key unrelated to the DID, under the pre-update key's id.
    Stranger,
}

/// The rotation a template asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    pub signer: Signer,
    pub broken_previous_hash: bool,
}

fn bad(reason: impl Into<String>) -> BuildError {
    BuildError::Missing {
        frame: "did_resolution_response".into(),
        reason: reason.into(),
    }
}

impl Rotation {
    /// Reads `rotate: {signer: previous|new|stranger, previous_hash: valid|broken}` (both
    /// optional; `rotate: true` is the conforming rotation).
    pub fn from_template(v: &Value) -> Result<Option<Rotation>, BuildError> {
        let Some(r) = v.get("rotate") else {
            return Ok(None);
        };
        if matches!(r, Value::Bool(false) | Value::Null) {
            return Ok(None);
        }
        let signer = match r.get("signer").and_then(Value::as_text) {
            None | Some("previous") => Signer::Previous,
            Some("new") => Signer::New,
            Some("stranger") => Signer::Stranger,
            Some(o) => {
                return Err(bad(format!(
                    "rotate.signer {o:?}: previous, new or stranger"
                )));
            }
        };
        let broken_previous_hash = match r.get("previous_hash").and_then(Value::as_text) {
            None | Some("valid") => false,
            Some("broken") => true,
            Some(o) => return Err(bad(format!("rotate.previous_hash {o:?}: valid or broken"))),
        };
        Ok(Some(Rotation {
            signer,
            broken_previous_hash,
        }))
    }
}

/// The persona's document after rotating its ML-DSA key: the initial key is replaced by
/// `new` (`#key-2`) under `authentication` and `assertionMethod` (PROFILE G-32: from
/// version 2 on the initial key may be rotated out).
fn rotated_document(doc: &DidDocument, new: &SigningKey) -> Result<DidDocument, BuildError> {
    let mut d = doc.clone();
    let id = d.id.clone();
    let key_id = format!("{id}#key-2");
    let mk = Multikey::new(
        KeyType::Signature(new.algorithm()),
        new.public_key().as_bytes().to_vec(),
    )
    .map_err(|e| bad(e.to_string()))?;
    let old: Vec<String> = doc
        .authentication_keys()
        .into_iter()
        .map(|(k, _, _)| k)
        .collect();
    let mut vms: Vec<VerificationMethod> = d
        .verification_method
        .take()
        .unwrap_or_default()
        .into_iter()
        .filter(|vm| {
            let abs = if vm.id.starts_with('#') {
                format!("{id}{}", vm.id)
            } else {
                vm.id.clone()
            };
            !old.contains(&abs)
        })
        .collect();
    vms.insert(
        0,
        VerificationMethod {
            id: key_id.clone(),
            type_: "Multikey".into(),
            controller: id.clone(),
            public_key_multibase: Some(mk.encode()),
            extra: Default::default(),
        },
    );
    d.verification_method = Some(vms);
    d.authentication = Some(vec![Relationship::Reference(key_id.clone())]);
    d.assertion_method = Some(vec![Relationship::Reference(key_id)]);
    Ok(d)
}

/// Completes a `did_resolution_response` of `persona` (see the module doc).
pub fn complete_response(
    persona: &mut Persona,
    template: &Value,
    now: Timestamp,
) -> Result<Value, BuildError> {
    let rotation = Rotation::from_template(template)?;
    let mut template = template.clone();
    remove(&mut template, "rotate");
    let e = |x: &dyn std::fmt::Display| bad(x.to_string());
    let t1 = now.add_secs(-60).ok_or_else(|| bad("time out of range"))?;
    let mut v1 = DidUpdate::genesis(&persona.document, t1).map_err(|x| e(&x))?;
    v1.sign(&persona.signing, Some(persona.key_id.clone()))
        .map_err(|x| e(&x))?;
    let mut updates = vec![v1.clone()];
    let mut document = persona.document_json.clone();
    if let Some(r) = rotation {
        let new = SigningKey::from_seed(SignatureAlgorithm::MlDsa65, &persona.random::<32>());
        let doc2 = rotated_document(&persona.document, &new)?;
        let mut v2 = DidUpdate::successor(&v1, &doc2, now).map_err(|x| e(&x))?;
        if r.broken_previous_hash {
            v2.previous_hash[0] ^= 0xff;
        }
        match r.signer {
            Signer::Previous => v2.sign(&persona.signing, Some(persona.key_id.clone())),
            Signer::New => v2.sign(&new, Some(format!("{}#key-2", persona.did))),
            Signer::Stranger => {
                let other =
                    SigningKey::from_seed(SignatureAlgorithm::MlDsa65, &persona.random::<32>());
                v2.sign(&other, Some(persona.key_id.clone()))
            }
        }
        .map_err(|x| e(&x))?;
        document = v2.document.clone();
        updates.push(v2);
    }
    let version = updates.len() as u64;
    let response = DidResolutionResponse {
        did: v1.did.clone(),
        document,
        version,
        history: Some(updates),
        unknown: Default::default(),
    };
    Ok(merge(response.to_value(), &template))
}

fn published_answers() -> &'static Mutex<HashMap<String, Vec<u8>>> {
    static P: OnceLock<Mutex<HashMap<String, Vec<u8>>>> = OnceLock::new();
    P.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Publishes `frame` (a complete `did_resolution_response` frame) as the answer of a
/// persona to the IUT's resolutions. `persona` = the persona's DID Document text, which
/// names its server's port and so tells apart two runs of one scenario in one process.
pub fn publish(persona: &str, frame: Vec<u8>) {
    published_answers()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(persona.to_owned(), frame);
}

/// The answer published by `persona` (its DID Document text), if any.
pub fn published(persona: &str) -> Option<Vec<u8>> {
    published_answers()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(persona)
        .cloned()
}

/// Forgets what `persona` published (end of scenario).
pub fn forget(persona: &str) {
    published_answers()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(persona);
}

/// Checks a `did_resolution_response` body sent by the IUT (see the module doc); a
/// response without `history` is left to the scenario.
pub fn check_response(body: &Value) -> Result<(), Violation> {
    if body.get("history").is_none() {
        return Ok(());
    }
    let v = |requirement: &'static str, expected: &str, observed: String| Violation {
        requirement,
        expected: expected.to_owned(),
        observed,
    };
    let r = DidResolutionResponse::from_value(body).map_err(|e| {
        v(
            "BIND-II-B-05",
            "a did-resolution-response whose history is a list of did-update (PROFILE G-32)",
            e.to_string(),
        )
    })?;
    let updates = r.history.unwrap_or_default();
    let h = DidHistory::from_updates(&updates).map_err(|e| {
        let requirement = match &e {
            ResolutionError::Signature { .. }
            | ResolutionError::UnknownSigningKey { .. }
            | ResolutionError::InitialKey { .. } => "BIND-II-B-03",
            _ => "BIND-II-B-05",
        };
        v(
            requirement,
            "a version history whose every update is signed by the pre-update authentication key and chained by previous_hash (PROFILE G-32)",
            format!("{e} (code {})", e.code()),
        )
    })?;
    if h.did() != &r.did {
        return Err(v(
            "BIND-II-B-05",
            "the history of the resolved DID",
            format!("history of {}", h.did()),
        ));
    }
    if h.version() != r.version || h.latest_update().document != r.document {
        return Err(v(
            "BIND-II-B-05",
            "a history ending at `version` whose last document is `document` byte for byte",
            format!(
                "history ends at version {} for response version {}",
                h.version(),
                r.version
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::persona::Endpoints;
    use mtp_protocol::identity::resolution::{DidResolutionRequest, verify_response};

    fn persona() -> Persona {
        Persona::derive(
            7,
            "counterparty",
            &Endpoints {
                sync_port: 4000,
                nats: None,
            },
        )
        .expect("persona")
    }

    fn resolve(body: &Value) -> Result<u64, u16> {
        let r = DidResolutionResponse::from_value(body).expect("shape");
        let req = DidResolutionRequest::new(r.did.clone(), None);
        verify_response(&r, &req)
            .map(|x| x.version)
            .map_err(|e| e.code().as_u16())
    }

    #[test]
    fn rotations_verify_only_when_signed_by_the_previous_key() {
        let mut p = persona();
        let now = Timestamp::from_unix_nanos(1_800_000_000_000_000_000);
        let t = |s: &str| {
            mtp_protocol::cbor::Value::map([("rotate", Value::map([("signer", Value::text(s))]))])
        };
        let good = complete_response(&mut p, &t("previous"), now).expect("good");
        assert_eq!(resolve(&good), Ok(2));
        assert!(check_response(&good).is_ok());
        for s in ["new", "stranger"] {
            let b = complete_response(&mut p, &t(s), now).expect("bad");
            assert_eq!(resolve(&b), Err(1100), "{s}");
            assert_eq!(check_response(&b).unwrap_err().requirement, "BIND-II-B-03");
        }
        let broken = Value::map([(
            "rotate",
            Value::map([("previous_hash", Value::text("broken"))]),
        )]);
        let b = complete_response(&mut p, &broken, now).expect("broken");
        assert_eq!(resolve(&b), Err(1101));
        let plain =
            complete_response(&mut p, &Value::map([("x", Value::from(1u64))]), now).expect("v1");
        assert_eq!(resolve(&plain), Ok(1));
    }
}
