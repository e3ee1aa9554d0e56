//! Selective disclosure: SD-JWT salted, hashed, individually disclosable claims adapted to
//! the JSON-LD credential (SPEC-III-A-1-06/07, BIND-III-C-01; PROFILE G-35).
//!
//! - **Issue**: chosen members of `credentialSubject` (never `id`) are replaced by the
//!   digests of their disclosures `base64url([salt, name, value])` in `_sd` (sorted, with
//!   optional decoys) and `_sd_alg: "sha-256"`; the issuer then signs the credential with
//!   its `DataIntegrityProof` as usual ([`credential::sign`]).
//! - **Present**: `<base64url(credential JSON)>~<disclosure>~…~<kb>`, where `kb` is a key
//!   binding by the holder (`credentialSubject.id`'s assertion key):
//!   `base64url(JSON {nonce, aud, iat, sd_hash, kid}) "." base64url(signature)`.
//! - **Verify**: the credential's proof, every disclosure against `_sd`, the key binding.
//!
//! `_sd` and `_sd_alg` are the VC 2.0 context's terms (IANA JWT claim IRIs; `_sd` is
//! `@json`, so the sorted digest array is signed as a JSON literal). All base64url is
//! RFC 4648 §5 without padding; non-canonical encodings are refused.

use std::collections::HashSet;

use base64::Engine as _;
use serde_json::{Map, Value as Json};

use crate::crypto::{SeededRng, SigningKey, sha256};
use crate::errors::{Coded, ErrorCode};
use crate::identity::credential::{
    self, Credential, CredentialError, KeyResolver, ProofOptions, VerifiedCredential,
};
use crate::time::Timestamp;
use crate::uuid::MtpUuid;

/// Member of `credentialSubject` holding the digests (SD-JWT `_sd`).
pub const SD: &str = "_sd";
/// Member naming the digest algorithm (SD-JWT `_sd_alg`).
pub const SD_ALG: &str = "_sd_alg";
/// The only digest algorithm (BIND VI-E baseline).
pub const SHA_256: &str = "sha-256";
/// Salt length in bytes (128 bits, RFC 9901 §4.2.1).
pub const SALT_LEN: usize = 16;

const REQ: &str = "BIND-III-C-01";

/// Why selective disclosure failed. Disclosure-level problems are 1101 Authority
/// Attestation Invalid; signature problems are 1100 Signature Verification Failure (or the
/// credential error's own code).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DisclosureError {
    /// The credential's `DataIntegrityProof` (or its decoding) failed.
    #[error("credential: {0}")]
    Credential(CredentialError),
    #[error("credentialSubject is not a single object with a string id")]
    BadSubject,
    #[error("claim {0:?} cannot be made disclosable")]
    NotDisclosable(String),
    #[error("credentialSubject already carries _sd or _sd_alg")]
    AlreadySelective,
    #[error("no disclosure for claim {0:?}")]
    UnknownClaim(String),
    #[error("malformed: {0}")]
    Malformed(&'static str),
    #[error("_sd_alg is missing or not sha-256")]
    UnsupportedAlgorithm,
    #[error("disclosure digest {0} is not in _sd")]
    NotInSd(String),
    #[error("disclosure digest {0} appears twice")]
    Duplicate(String),
    #[error("disclosed claim {0:?} collides with a visible or disclosed claim")]
    NameCollision(String),
    #[error("no key-binding proof")]
    MissingKeyBinding,
    #[error("key-binding kid {0:?} is not a key of credentialSubject.id")]
    HolderMismatch(String),
    #[error("holder key: {0}")]
    HolderKey(CredentialError),
    #[error("key-binding signature does not verify")]
    KeyBindingSignature,
    #[error("key-binding nonce does not match")]
    NonceMismatch,
    #[error("key-binding aud does not match")]
    AudienceMismatch,
    #[error("key-binding sd_hash does not match the presentation")]
    SdHashMismatch,
}

impl Coded for DisclosureError {
    fn code(&self) -> ErrorCode {
        match self {
            DisclosureError::Credential(e) => e.code(),
            DisclosureError::MissingKeyBinding
            | DisclosureError::HolderMismatch(_)
            | DisclosureError::HolderKey(_)
            | DisclosureError::KeyBindingSignature => ErrorCode::SignatureVerificationFailure,
            _ => ErrorCode::AuthorityAttestationInvalid,
        }
    }

    fn requirement(&self) -> Option<&'static str> {
        match self {
            DisclosureError::Credential(e) => e.requirement(),
            _ => Some(REQ),
        }
    }
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

fn b64_decode(s: &str, what: &'static str) -> Result<Vec<u8>, DisclosureError> {
    b64()
        .decode(s)
        .map_err(|_| DisclosureError::Malformed(what))
}

/// `base64url(SHA-256(ASCII(text)))`: the digest of a disclosure and the KB `sd_hash`.
pub fn digest(text: &str) -> String {
    b64().encode(sha256(text.as_bytes()))
}

/// The KB `nonce` for a Request: its `request_id` text form (PROFILE G-35).
pub fn nonce_for(request_id: &MtpUuid) -> String {
    request_id.to_string()
}

/// Names that can never be disclosed: the SD members, the subject `id`, JSON-LD keywords.
fn reserved(name: &str) -> bool {
    name == SD || name == SD_ALG || name == "id" || name.starts_with('@')
}

/// One disclosure: `base64url(UTF-8 JSON [salt, name, value])`.
#[derive(Clone, Debug, PartialEq)]
pub struct Disclosure {
    encoded: String,
    salt: String,
    name: String,
    value: Json,
}

impl Disclosure {
    /// Encodes `[base64url(salt), name, value]` as compact JSON.
    pub fn new(salt: &[u8], name: &str, value: Json) -> Disclosure {
        let salt = b64().encode(salt);
        let array = Json::Array(vec![
            Json::String(salt.clone()),
            Json::String(name.to_owned()),
            value.clone(),
        ]);
        Disclosure {
            encoded: b64().encode(array.to_string()),
            salt,
            name: name.to_owned(),
            value,
        }
    }

    /// Decodes and checks the shape: a 3-element array, the salt base64url of at least
    /// [`SALT_LEN`] bytes, the name a string that is not reserved.
    pub fn parse(encoded: &str) -> Result<Disclosure, DisclosureError> {
        let bytes = b64_decode(encoded, "disclosure is not base64url")?;
        let json: Json = serde_json::from_slice(&bytes)
            .map_err(|_| DisclosureError::Malformed("disclosure is not JSON"))?;
        let Json::Array(items) = json else {
            return Err(DisclosureError::Malformed("disclosure is not an array"));
        };
        let [Json::String(salt), Json::String(name), value] = <[Json; 3]>::try_from(items)
            .map_err(|_| DisclosureError::Malformed("disclosure is not a 3-element array"))?
        else {
            return Err(DisclosureError::Malformed(
                "disclosure salt or name is not a string",
            ));
        };
        if b64_decode(&salt, "disclosure salt is not base64url")?.len() < SALT_LEN {
            return Err(DisclosureError::Malformed(
                "disclosure salt is under 128 bits",
            ));
        }
        if reserved(&name) {
            return Err(DisclosureError::NotDisclosable(name));
        }
        Ok(Disclosure {
            encoded: encoded.to_owned(),
            salt,
            name,
            value,
        })
    }

    /// The base64url text that travels in a presentation.
    pub fn as_str(&self) -> &str {
        &self.encoded
    }

    pub fn salt(&self) -> &str {
        &self.salt
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn value(&self) -> &Json {
        &self.value
    }

    /// `base64url(SHA-256(ASCII(disclosure)))`.
    pub fn digest(&self) -> String {
        digest(&self.encoded)
    }
}

/// An issued credential and all of its disclosures (held by the holder).
#[derive(Clone, Debug, PartialEq)]
pub struct SdCredential {
    pub credential: Credential,
    /// In `credentialSubject` member order.
    pub disclosures: Vec<Disclosure>,
}

/// Replaces the `names` members of `credentialSubject` by digests (unsigned output).
/// Salts, then `decoys` decoy values, are drawn from `rng` in `credentialSubject` member
/// order, so a fixed seed gives a fixed result. Decoy digest = digest of base64url of 16
/// random bytes (RFC 9901 §4.2.5).
pub fn make_disclosable(
    unsigned: &Credential,
    names: &[&str],
    decoys: usize,
    rng: &mut SeededRng,
) -> Result<SdCredential, DisclosureError> {
    let mut map = cred_map(unsigned).clone();
    let Some(Json::Object(subject)) = map.get_mut("credentialSubject") else {
        return Err(DisclosureError::BadSubject);
    };
    if subject.contains_key(SD) || subject.contains_key(SD_ALG) {
        return Err(DisclosureError::AlreadySelective);
    }
    let mut wanted = HashSet::new();
    for &n in names {
        if reserved(n) || !subject.contains_key(n) || !wanted.insert(n) {
            return Err(DisclosureError::NotDisclosable(n.to_owned()));
        }
    }
    let mut disclosures = Vec::with_capacity(names.len());
    let mut kept = Map::new();
    for (name, value) in std::mem::take(subject) {
        if wanted.contains(name.as_str()) {
            let salt: [u8; SALT_LEN] = rng.bytes();
            disclosures.push(Disclosure::new(&salt, &name, value));
        } else {
            kept.insert(name, value);
        }
    }
    let mut digests: Vec<String> = disclosures.iter().map(Disclosure::digest).collect();
    for _ in 0..decoys {
        let r: [u8; SALT_LEN] = rng.bytes();
        digests.push(digest(&b64().encode(r)));
    }
    digests.sort();
    kept.insert(
        SD.to_owned(),
        Json::Array(digests.into_iter().map(Json::String).collect()),
    );
    kept.insert(SD_ALG.to_owned(), Json::String(SHA_256.to_owned()));
    *subject = kept;
    Ok(SdCredential {
        credential: cred_from_map(map)?,
        disclosures,
    })
}

/// [`make_disclosable`], then the issuer's `DataIntegrityProof` ([`credential::sign`]).
pub fn issue(
    unsigned: &Credential,
    names: &[&str],
    decoys: usize,
    rng: &mut SeededRng,
    issuer_key: &SigningKey,
    options: &ProofOptions,
) -> Result<SdCredential, DisclosureError> {
    let sd = make_disclosable(unsigned, names, decoys, rng)?;
    let credential = credential::sign(&sd.credential, issuer_key, options)
        .map_err(DisclosureError::Credential)?;
    Ok(SdCredential {
        credential,
        disclosures: sd.disclosures,
    })
}

/// What the holder binds a presentation to (PROFILE G-35).
#[derive(Clone, Copy, Debug)]
pub struct KeyBinding<'a> {
    /// The holder's assertion key (a key of `credentialSubject.id`).
    pub holder_key: &'a SigningKey,
    /// Its DID URL (`kid`).
    pub verification_method: &'a str,
    /// The Request's `request_id` text form ([`nonce_for`]).
    pub nonce: &'a str,
    /// The counterparty DID.
    pub aud: &'a str,
    pub iat: Timestamp,
}

/// `<base64url(credential JSON)>~<d>~…~<kb>` revealing the claims `reveal` (in issuance
/// order of the disclosures).
pub fn present(
    sd: &SdCredential,
    reveal: &[&str],
    kb: &KeyBinding<'_>,
) -> Result<String, DisclosureError> {
    for &n in reveal {
        if !sd.disclosures.iter().any(|d| d.name == n) {
            return Err(DisclosureError::UnknownClaim(n.to_owned()));
        }
    }
    let mut out = b64().encode(cred_to_json(&sd.credential));
    out.push('~');
    for d in sd.disclosures.iter().filter(|d| reveal.contains(&d.name())) {
        out.push_str(&d.encoded);
        out.push('~');
    }
    let payload = serde_json::json!({
        "nonce": kb.nonce,
        "aud": kb.aud,
        "iat": kb.iat.unix_secs(),
        "sd_hash": digest(&out),
        "kid": kb.verification_method,
    });
    let first = b64().encode(payload.to_string());
    let sig = kb.holder_key.sign(first.as_bytes());
    out.push_str(&first);
    out.push('.');
    out.push_str(&b64().encode(sig));
    Ok(out)
}

/// What a verified presentation establishes.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedPresentation {
    pub credential: VerifiedCredential,
    /// `credentialSubject.id`, the holder that signed the key binding.
    pub holder: String,
    /// Visible `credentialSubject` members (without `_sd`, `_sd_alg`), then the disclosed
    /// claims in presentation order.
    pub claims: Map<String, Json>,
    /// Names of the disclosed claims, in presentation order.
    pub disclosed: Vec<String>,
    /// Digests of `_sd` not disclosed (undisclosed claims and decoys).
    pub undisclosed: usize,
    /// The key binding's `iat` (Unix seconds); freshness is the caller's policy.
    pub issued_at: i64,
}

/// Verifies a presentation made by [`present`] (BIND-III-C-01): the credential proof,
/// each disclosure against `_sd`, and the key binding for `expected_nonce`/`expected_aud`.
pub fn verify_presentation(
    presentation: &str,
    resolver: &dyn KeyResolver,
    expected_nonce: &str,
    expected_aud: &str,
) -> Result<VerifiedPresentation, DisclosureError> {
    let kb_start = presentation
        .rfind('~')
        .map(|i| i + 1)
        .ok_or(DisclosureError::Malformed(
            "presentation has no '~' separator",
        ))?;
    let (head, kb) = presentation.split_at(kb_start);
    let mut parts = head.split('~');
    let cred_text = parts.next().unwrap_or_default();
    // `head` ends with '~', so the last split item is empty.
    let disclosure_texts: Vec<&str> = parts.collect();
    let Some((_, disclosure_texts)) = disclosure_texts.split_last() else {
        return Err(DisclosureError::Malformed("presentation structure"));
    };

    let cred_json = String::from_utf8(b64_decode(cred_text, "credential is not base64url")?)
        .map_err(|_| DisclosureError::Malformed("credential is not UTF-8"))?;
    let cred = cred_from_json(&cred_json)?;
    let verified = credential::verify(&cred, resolver).map_err(DisclosureError::Credential)?;
    let map = cred_map(&cred);
    let Some(Json::Object(subject)) = map.get("credentialSubject") else {
        return Err(DisclosureError::BadSubject);
    };
    let Some(Json::String(holder)) = subject.get("id") else {
        return Err(DisclosureError::BadSubject);
    };

    // `_sd` digests (unique strings) and `_sd_alg`.
    let mut sd: HashSet<&str> = HashSet::new();
    match subject.get(SD) {
        None => {}
        Some(Json::Array(a)) => {
            if subject.get(SD_ALG).and_then(Json::as_str) != Some(SHA_256) {
                return Err(DisclosureError::UnsupportedAlgorithm);
            }
            for d in a {
                let d = d
                    .as_str()
                    .ok_or(DisclosureError::Malformed("_sd entry is not a string"))?;
                if !sd.insert(d) {
                    return Err(DisclosureError::Duplicate(d.to_owned()));
                }
            }
        }
        Some(_) => return Err(DisclosureError::Malformed("_sd is not an array")),
    }
    if subject.contains_key(SD_ALG) && !subject.contains_key(SD) {
        return Err(DisclosureError::Malformed("_sd_alg without _sd"));
    }

    let mut claims: Map<String, Json> = subject
        .iter()
        .filter(|(k, _)| k.as_str() != SD && k.as_str() != SD_ALG)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut used: HashSet<String> = HashSet::new();
    let mut disclosed = Vec::with_capacity(disclosure_texts.len());
    for &text in disclosure_texts {
        if text.is_empty() {
            return Err(DisclosureError::Malformed("empty disclosure"));
        }
        let dg = digest(text);
        if !used.insert(dg.clone()) {
            return Err(DisclosureError::Duplicate(dg));
        }
        let d = Disclosure::parse(text)?;
        if !sd.contains(dg.as_str()) {
            return Err(DisclosureError::NotInSd(dg));
        }
        if claims.contains_key(&d.name) {
            return Err(DisclosureError::NameCollision(d.name));
        }
        disclosed.push(d.name.clone());
        claims.insert(d.name, d.value);
    }

    let issued_at = verify_key_binding(kb, head, holder, resolver, expected_nonce, expected_aud)?;
    Ok(VerifiedPresentation {
        credential: verified,
        holder: holder.clone(),
        claims,
        disclosed,
        undisclosed: sd.len() - used.len(),
        issued_at,
    })
}

/// Checks `kb` = `base64url(JSON) "." base64url(sig)` over everything before it; returns
/// its `iat`.
fn verify_key_binding(
    kb: &str,
    head: &str,
    holder: &str,
    resolver: &dyn KeyResolver,
    expected_nonce: &str,
    expected_aud: &str,
) -> Result<i64, DisclosureError> {
    if kb.is_empty() {
        return Err(DisclosureError::MissingKeyBinding);
    }
    let Some((first, sig)) = kb.split_once('.') else {
        return Err(DisclosureError::Malformed(
            "key binding is not payload.signature",
        ));
    };
    let payload: Json = serde_json::from_slice(&b64_decode(first, "key binding is not base64url")?)
        .map_err(|_| DisclosureError::Malformed("key binding payload is not JSON"))?;
    let sig = b64_decode(sig, "key binding signature is not base64url")?;
    let text = |k: &'static str| {
        payload
            .get(k)
            .and_then(Json::as_str)
            .ok_or(DisclosureError::Malformed(
                "key binding member missing or not a string",
            ))
    };
    let kid = text("kid")?;
    if credential::did_of(kid) != holder || !kid.contains('#') {
        return Err(DisclosureError::HolderMismatch(kid.to_owned()));
    }
    let key = resolver
        .resolve_assertion_key(kid)
        .map_err(DisclosureError::HolderKey)?;
    key.verify(first.as_bytes(), &sig)
        .map_err(|_| DisclosureError::KeyBindingSignature)?;
    if text("nonce")? != expected_nonce {
        return Err(DisclosureError::NonceMismatch);
    }
    if text("aud")? != expected_aud {
        return Err(DisclosureError::AudienceMismatch);
    }
    if text("sd_hash")? != digest(head) {
        return Err(DisclosureError::SdHashMismatch);
    }
    payload
        .get("iat")
        .and_then(Json::as_i64)
        .ok_or(DisclosureError::Malformed(
            "key binding iat is not an integer",
        ))
}

// ---- Credential JSON access ---------------------------------------------------------------

fn cred_map(c: &Credential) -> &Map<String, Json> {
    c.as_map()
}

fn cred_from_map(map: Map<String, Json>) -> Result<Credential, DisclosureError> {
    Credential::from_value(Json::Object(map)).map_err(DisclosureError::Credential)
}

fn cred_to_json(c: &Credential) -> String {
    c.to_json()
}

fn cred_from_json(s: &str) -> Result<Credential, DisclosureError> {
    Credential::from_json(s).map_err(DisclosureError::Credential)
}
