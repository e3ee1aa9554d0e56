//! DID Documents for did:mtp (BIND II-A, V-C, X; SPEC III-A-1; PROFILE G-32, G-38).
//!
//! JSON-LD with the contexts `https://www.w3.org/ns/did/v1` (first),
//! `https://w3id.org/security/multikey/v1` and the suite's provisional MTP context
//! [`MTP_CONTEXT`] (PROFILE G-34 names it `https://suite.invalid/mtp/v1`; one context for
//! credentials and DID Documents). Unknown members are preserved at every level.
//!
//! Service shapes (PROFILE G-32):
//! `{id, type: "MTPSync", serviceEndpoint: "grpcs://host:port", tlsCertificateFingerprint: "sha256:<64 lowercase hex of the DER certificate>"}`,
//! `{id, type: "MTPAsync", serviceEndpoint: "nats://host:port", natsCluster, subjectPattern: "mtp.agent.<did-id>.>"}`,
//! optional `{id, type: "MTPDelegationChain", serviceEndpoint: [<ADC URLs or data: URIs>]}`.
//! Algorithm Support Profile: `mtpAlgorithmSupport: {signature, kem, symmetric, hash}`
//! (BIND-X-I03), canonical labels (PROFILE G-38).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::crypto::{
    AlgorithmSupportProfile, HashAlgorithm, KemAlgorithm, SignatureAlgorithm, SymmetricAlgorithm,
};
use crate::identity::did::{Did, DidError, DidUrl};
use crate::identity::multikey::{KeyType, Multikey};

use super::did::AnyDid;

/// DID Core v1 context; must be the first `@context` entry (BIND-II-A-01).
pub const DID_V1_CONTEXT: &str = "https://www.w3.org/ns/did/v1";
/// Multikey context (W3C Controlled Identifiers), required for `type: "Multikey"`.
pub const MULTIKEY_V1_CONTEXT: &str = "https://w3id.org/security/multikey/v1";
/// The suite's provisional MTP JSON-LD context (PROFILE G-32, G-34). Emitted by the
/// reference agent; not required from peers (no published context exists).
pub const MTP_CONTEXT: &str = "https://suite.invalid/mtp/v1";

pub const SERVICE_SYNC: &str = "MTPSync";
pub const SERVICE_ASYNC: &str = "MTPAsync";
pub const SERVICE_DELEGATION: &str = "MTPDelegationChain";
pub const MULTIKEY_TYPE: &str = "Multikey";

/// `@context`: a single entry or an ordered list (JSON-LD 1.1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Context {
    Many(Vec<Json>),
    One(Json),
}

impl Context {
    pub fn entries(&self) -> &[Json] {
        match self {
            Context::Many(v) => v,
            Context::One(v) => std::slice::from_ref(v),
        }
    }
}

/// A verification method (DID Core §5.2) in Multikey form.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerificationMethod {
    pub id: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub controller: String,
    #[serde(
        rename = "publicKeyMultibase",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub public_key_multibase: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Json>,
}

/// A verification-relationship entry: a reference (absolute or `#fragment`) or an
/// embedded verification method (DID Core §5.3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Relationship {
    Reference(String),
    Embedded(VerificationMethod),
}

/// A string or a set of strings (DID Core service `type`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn contains(&self, s: &str) -> bool {
        match self {
            OneOrMany::One(t) => t == s,
            OneOrMany::Many(v) => v.iter().any(|t| t == s),
        }
    }
}

/// A service endpoint (DID Core §5.4) with the MTP properties of PROFILE G-32.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub id: String,
    #[serde(rename = "type")]
    pub type_: OneOrMany,
    #[serde(rename = "serviceEndpoint")]
    pub service_endpoint: Json,
    #[serde(
        rename = "tlsCertificateFingerprint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub tls_certificate_fingerprint: Option<String>,
    #[serde(
        rename = "natsCluster",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub nats_cluster: Option<String>,
    #[serde(
        rename = "subjectPattern",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub subject_pattern: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Json>,
}

/// `mtpAlgorithmSupport` as written (labels), BIND-X-I03.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AlgorithmSupport {
    #[serde(default)]
    pub signature: Vec<String>,
    #[serde(default)]
    pub kem: Vec<String>,
    #[serde(default)]
    pub symmetric: Vec<String>,
    #[serde(default)]
    pub hash: Vec<String>,
    #[serde(flatten)]
    pub extra: Map<String, Json>,
}

impl AlgorithmSupport {
    /// The labels of a parsed profile, as written in a DID Document.
    pub fn from_profile(p: &AlgorithmSupportProfile) -> AlgorithmSupport {
        fn labels<T: Copy>(xs: &[T], label: fn(T) -> &'static str) -> Vec<String> {
            xs.iter().map(|&x| label(x).to_owned()).collect()
        }
        AlgorithmSupport {
            signature: labels(&p.signature, SignatureAlgorithm::label),
            kem: labels(&p.kem, KemAlgorithm::label),
            symmetric: labels(&p.symmetric, SymmetricAlgorithm::label),
            hash: labels(&p.hash, HashAlgorithm::label),
            extra: Map::new(),
        }
    }

    /// Parses every label; unknown or forbidden labels and missing baselines are errors
    /// (BIND-X-I02; PROFILE G-38). Returns all problems.
    pub fn parse(&self) -> Result<AlgorithmSupportProfile, Vec<DidError>> {
        let mut errs = Vec::new();
        fn each<T: PartialEq>(
            function: &'static str,
            labels: &[String],
            parse: impl Fn(&str) -> Result<T, crate::crypto::AlgorithmError>,
            baseline: T,
            baseline_label: &'static str,
            errs: &mut Vec<DidError>,
        ) -> Vec<T> {
            let mut out = Vec::new();
            for l in labels {
                match parse(l) {
                    Ok(a) if !out.contains(&a) => out.push(a),
                    Ok(_) => {}
                    Err(source) => errs.push(DidError::Algorithm { function, source }),
                }
            }
            if !out.contains(&baseline) {
                errs.push(DidError::MissingBaseline {
                    function,
                    label: baseline_label,
                });
            }
            out
        }
        let signature = each(
            "signature",
            &self.signature,
            SignatureAlgorithm::from_label,
            SignatureAlgorithm::MlDsa65,
            "ML-DSA-65",
            &mut errs,
        );
        let kem = each(
            "kem",
            &self.kem,
            KemAlgorithm::from_label,
            KemAlgorithm::MlKem768,
            "ML-KEM-768",
            &mut errs,
        );
        let symmetric = each(
            "symmetric",
            &self.symmetric,
            SymmetricAlgorithm::from_label,
            SymmetricAlgorithm::Aes256Gcm,
            "AES-256-GCM",
            &mut errs,
        );
        let hash = each(
            "hash",
            &self.hash,
            HashAlgorithm::from_label,
            HashAlgorithm::Sha256,
            "SHA-256",
            &mut errs,
        );
        if errs.is_empty() {
            Ok(AlgorithmSupportProfile {
                signature,
                kem,
                symmetric,
                hash,
                ignored: Vec::new(),
            })
        } else {
            Err(errs)
        }
    }
}

/// The MTPSync endpoint (BIND-V-C-01, BIND-V-C-02).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncEndpoint {
    pub host: String,
    pub port: u16,
    /// SHA-256 of the DER TLS certificate (PROFILE G-32, G-37).
    pub tls_certificate_sha256: [u8; 32],
}

/// The MTPAsync endpoint (BIND-V-C-01, BIND-V-C-03).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AsyncEndpoint {
    pub host: String,
    pub port: u16,
    pub nats_cluster: String,
    pub subject_pattern: String,
}

/// Inputs of [`DidDocument::new_agent`].
#[derive(Clone, Debug)]
pub struct AgentDocumentParams {
    /// Signature keys; the first must be the initial ML-DSA key (the DID derives from it).
    pub signing_keys: Vec<(SignatureAlgorithm, Vec<u8>)>,
    /// ML-KEM encapsulation keys for keyAgreement.
    pub kem_keys: Vec<(KemAlgorithm, Vec<u8>)>,
    pub sync: SyncEndpoint,
    pub nats_host: String,
    pub nats_port: u16,
    pub nats_cluster: String,
    /// ADC locations for the MTPDelegationChain service (omitted when empty).
    pub delegation_chain: Vec<String>,
    pub algorithms: AlgorithmSupportProfile,
}

/// A DID Document (BIND-II-A-01, BIND-II-A-02).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DidDocument {
    #[serde(rename = "@context")]
    pub context: Context,
    pub id: String,
    #[serde(
        rename = "verificationMethod",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub verification_method: Option<Vec<VerificationMethod>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<Vec<Relationship>>,
    #[serde(
        rename = "assertionMethod",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub assertion_method: Option<Vec<Relationship>>,
    #[serde(
        rename = "keyAgreement",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub key_agreement: Option<Vec<Relationship>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Vec<Service>>,
    #[serde(
        rename = "mtpAlgorithmSupport",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub mtp_algorithm_support: Option<AlgorithmSupport>,
    #[serde(flatten)]
    pub extra: Map<String, Json>,
}

/// Relationship names as they appear in the document.
const AUTHENTICATION: &str = "authentication";
const ASSERTION_METHOD: &str = "assertionMethod";
const KEY_AGREEMENT: &str = "keyAgreement";

/// `scheme://host:port` with nothing after the port.
fn parse_host_port(url: &str, scheme: &str) -> Result<(String, u16), String> {
    let rest = url
        .strip_prefix(scheme)
        .and_then(|r| r.strip_prefix("://"))
        .ok_or_else(|| format!("must be a {scheme}://host:port URL"))?;
    let (host, port) = rest.rsplit_once(':').ok_or("missing :port")?;
    let host_ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        !inner.is_empty()
            && inner
                .bytes()
                .all(|c| c.is_ascii_hexdigit() || c == b':' || c == b'.')
    } else {
        !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|l| !l.is_empty())
            && host
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
    };
    if !host_ok {
        return Err("invalid host".into());
    }
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|c| c.is_ascii_digit()) {
        return Err("invalid port".into());
    }
    match port.parse::<u16>() {
        Ok(p) if p != 0 => Ok((host.to_owned(), p)),
        _ => Err("port out of range".into()),
    }
}

/// `sha256:` + 64 lowercase hex (PROFILE G-32).
fn parse_fingerprint(s: &str) -> Option<[u8; 32]> {
    let h = s.strip_prefix("sha256:")?;
    if h.len() != 64
        || !h
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(h, &mut out).ok()?;
    Some(out)
}

/// The NATS subscription pattern of an Agent (PROFILE G-06, G-32).
pub fn subject_pattern_for(did: &Did) -> String {
    format!("mtp.agent.{}.>", did.method_specific_id())
}

/// A verification method with its absolute id and decoded key.
struct Indexed<'a> {
    id: String,
    key: Option<Multikey>,
    _vm: &'a VerificationMethod,
}

impl DidDocument {
    /// Parses the JSON text (shape only; call [`DidDocument::validate`] for the rules).
    pub fn from_json(s: &str) -> Result<DidDocument, DidError> {
        serde_json::from_str(s).map_err(|e| DidError::Json {
            message: e.to_string(),
        })
    }

    /// Compact JSON; members in declaration order, unknown members after them in their
    /// original order.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The document's DID, if it is a valid did:mtp.
    pub fn did(&self) -> Result<Did, DidError> {
        Did::parse(&self.id)
    }

    /// Absolute id of a reference (`#frag` resolved against the document id).
    fn absolute(&self, reference: &str) -> Option<String> {
        DidUrl::resolve(reference, &self.id)
            .ok()
            .map(|u| u.to_string())
    }

    /// Every verification method: top level, then embedded ones.
    pub fn verification_methods(&self) -> impl Iterator<Item = &VerificationMethod> {
        let embedded = [
            &self.authentication,
            &self.assertion_method,
            &self.key_agreement,
        ]
        .into_iter()
        .flat_map(|r| r.iter().flatten())
        .filter_map(|r| match r {
            Relationship::Embedded(vm) => Some(vm),
            Relationship::Reference(_) => None,
        });
        self.verification_method.iter().flatten().chain(embedded)
    }

    fn index(&self) -> Vec<Indexed<'_>> {
        self.verification_methods()
            .filter_map(|vm| {
                let id = self.absolute(&vm.id)?;
                let key = vm
                    .public_key_multibase
                    .as_deref()
                    .and_then(|m| Multikey::decode(m).ok());
                Some(Indexed { id, key, _vm: vm })
            })
            .collect()
    }

    /// Decoded keys of a relationship, as (absolute key id, key).
    fn relationship_keys(&self, rel: &Option<Vec<Relationship>>) -> Vec<(String, Multikey)> {
        let index = self.index();
        rel.iter()
            .flatten()
            .filter_map(|r| {
                let target = match r {
                    Relationship::Reference(s) => self.absolute(s)?,
                    Relationship::Embedded(vm) => self.absolute(&vm.id)?,
                };
                let found = index.iter().find(|i| i.id == target)?;
                Some((target, found.key.clone()?))
            })
            .collect()
    }

    fn signature_keys(
        &self,
        rel: &Option<Vec<Relationship>>,
    ) -> Vec<(String, SignatureAlgorithm, Vec<u8>)> {
        self.relationship_keys(rel)
            .into_iter()
            .filter_map(|(id, k)| Some((id, k.signature_algorithm()?, k.into_public_key())))
            .collect()
    }

    /// Keys authorised to sign protocol objects (assertionMethod), decodable ones only.
    pub fn assertion_keys(&self) -> Vec<(String, SignatureAlgorithm, Vec<u8>)> {
        self.signature_keys(&self.assertion_method)
    }

    /// Keys authorised for Agent authentication (e.g. DID Update Transactions, BIND-II-B-03).
    pub fn authentication_keys(&self) -> Vec<(String, SignatureAlgorithm, Vec<u8>)> {
        self.signature_keys(&self.authentication)
    }

    /// ML-KEM keys for establishing encrypted channels (keyAgreement).
    pub fn key_agreement_keys(&self) -> Vec<(String, KemAlgorithm, Vec<u8>)> {
        self.relationship_keys(&self.key_agreement)
            .into_iter()
            .filter_map(|(id, k)| Some((id, k.kem_algorithm()?, k.into_public_key())))
            .collect()
    }

    /// Looks a key up by absolute or relative id.
    pub fn key(&self, key_id: &str) -> Option<Multikey> {
        let target = self.absolute(key_id)?;
        self.index().into_iter().find(|i| i.id == target)?.key
    }

    fn services_of_type<'a>(&'a self, t: &'a str) -> impl Iterator<Item = &'a Service> + 'a {
        self.service
            .iter()
            .flatten()
            .filter(move |s| s.type_.contains(t))
    }

    fn sync_of(s: &Service) -> Result<SyncEndpoint, DidError> {
        let err = |property, reason: String, requirement| DidError::Service {
            id: s.id.clone(),
            property,
            reason,
            requirement,
        };
        let url = s
            .service_endpoint
            .as_str()
            .ok_or_else(|| err("serviceEndpoint", "must be a string".into(), "BIND-V-C-01"))?;
        let (host, port) =
            parse_host_port(url, "grpcs").map_err(|r| err("serviceEndpoint", r, "BIND-V-C-01"))?;
        let fp = s
            .tls_certificate_fingerprint
            .as_deref()
            .ok_or_else(|| err("tlsCertificateFingerprint", "missing".into(), "BIND-V-C-02"))?;
        let tls_certificate_sha256 = parse_fingerprint(fp).ok_or_else(|| {
            err(
                "tlsCertificateFingerprint",
                "must be \"sha256:\" + 64 lowercase hex".into(),
                "BIND-V-C-02",
            )
        })?;
        Ok(SyncEndpoint {
            host,
            port,
            tls_certificate_sha256,
        })
    }

    fn async_of(&self, s: &Service) -> Result<AsyncEndpoint, DidError> {
        let err = |property, reason: String, requirement| DidError::Service {
            id: s.id.clone(),
            property,
            reason,
            requirement,
        };
        let url = s
            .service_endpoint
            .as_str()
            .ok_or_else(|| err("serviceEndpoint", "must be a string".into(), "BIND-V-C-01"))?;
        let (host, port) =
            parse_host_port(url, "nats").map_err(|r| err("serviceEndpoint", r, "BIND-V-C-01"))?;
        let nats_cluster = match s.nats_cluster.as_deref() {
            Some(c) if !c.is_empty() => c.to_owned(),
            _ => return Err(err("natsCluster", "missing or empty".into(), "BIND-V-C-03")),
        };
        let subject_pattern = s
            .subject_pattern
            .clone()
            .ok_or_else(|| err("subjectPattern", "missing".into(), "BIND-V-C-03"))?;
        if let Ok(did) = self.did() {
            let expected = subject_pattern_for(&did);
            if subject_pattern != expected {
                return Err(err(
                    "subjectPattern",
                    format!("must be {expected:?}"),
                    "BIND-V-C-03",
                ));
            }
        }
        Ok(AsyncEndpoint {
            host,
            port,
            nats_cluster,
            subject_pattern,
        })
    }

    /// The first valid MTPSync endpoint.
    pub fn sync_endpoint(&self) -> Option<SyncEndpoint> {
        self.services_of_type(SERVICE_SYNC)
            .find_map(|s| DidDocument::sync_of(s).ok())
    }

    /// The first valid MTPAsync endpoint.
    pub fn async_endpoint(&self) -> Option<AsyncEndpoint> {
        self.services_of_type(SERVICE_ASYNC)
            .find_map(|s| self.async_of(s).ok())
    }

    /// The MTPDelegationChain entries (SPEC-III-A-1-03), if the service is present and
    /// well-formed.
    pub fn delegation_chain(&self) -> Option<Vec<String>> {
        let s = self.services_of_type(SERVICE_DELEGATION).next()?;
        s.service_endpoint
            .as_array()?
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect()
    }

    /// The parsed Algorithm Support Profile.
    pub fn algorithm_support(&self) -> Option<AlgorithmSupportProfile> {
        self.mtp_algorithm_support.as_ref()?.parse().ok()
    }

    /// Checks every rule and returns all violations (BIND-II-A-01, BIND-II-A-02,
    /// BIND-II-A-I02, BIND-V-C-01..03, BIND-X-I02, BIND-X-I03; PROFILE G-05, G-32, G-38).
    ///
    /// The DID must derive from at least one ML-DSA verification method. A rotated
    /// document may list further keys; any ML-DSA key that derives the DID is accepted as
    /// the initial key (the registry's version history, BIND-II-B-05, is not consulted here).
    pub fn validate(&self) -> Result<(), Vec<DidError>> {
        let mut errs = Vec::new();

        // @context (BIND-II-A-01).
        let ctx = self.context.entries();
        if ctx.first().and_then(Json::as_str) != Some(DID_V1_CONTEXT) {
            errs.push(DidError::Context {
                reason: "first entry must be https://www.w3.org/ns/did/v1",
            });
        }
        if !ctx.iter().any(|c| c.as_str() == Some(MULTIKEY_V1_CONTEXT)) {
            errs.push(DidError::Context {
                reason: "must include https://w3id.org/security/multikey/v1",
            });
        }

        // id (BIND-II-A-I02).
        let did = match Did::parse(&self.id) {
            Ok(d) => Some(d),
            Err(e) => {
                errs.push(e);
                None
            }
        };

        // Verification methods (BIND-II-A-02).
        if self.verification_method.as_ref().is_none_or(Vec::is_empty) {
            errs.push(DidError::MissingVerificationMethod);
        }
        let mut seen: Vec<String> = Vec::new();
        for vm in self.verification_methods() {
            let bad = |reason| DidError::VerificationMethod {
                id: vm.id.clone(),
                reason,
            };
            match DidUrl::resolve(&vm.id, &self.id) {
                Ok(u) if u.did().as_str() != self.id => {
                    errs.push(bad("id must be a DID URL of the document's DID"))
                }
                Ok(u) => {
                    let abs = u.to_string();
                    if seen.contains(&abs) {
                        errs.push(bad("duplicate id"));
                    }
                    seen.push(abs);
                }
                Err(_) => errs.push(bad("id is not a DID URL")),
            }
            if vm.type_ != MULTIKEY_TYPE {
                errs.push(bad("type must be \"Multikey\""));
            }
            if AnyDid::parse(&vm.controller).is_err() {
                errs.push(bad("controller is not a DID"));
            }
            match vm.public_key_multibase.as_deref() {
                None => errs.push(bad("publicKeyMultibase missing")),
                Some(m) => {
                    if let Err(source) = Multikey::decode(m) {
                        errs.push(DidError::Multikey {
                            id: vm.id.clone(),
                            source,
                        });
                    }
                }
            }
        }

        // Relationships (BIND-II-A-02).
        let index = self.index();
        let rels: [(&'static str, &Option<Vec<Relationship>>, bool); 3] = [
            (AUTHENTICATION, &self.authentication, false),
            (ASSERTION_METHOD, &self.assertion_method, false),
            (KEY_AGREEMENT, &self.key_agreement, true),
        ];
        for (relationship, entries, wants_kem) in rels {
            if entries.as_ref().is_none_or(Vec::is_empty) {
                errs.push(DidError::MissingRelationship { relationship });
            }
            for r in entries.iter().flatten() {
                let reference = match r {
                    Relationship::Reference(s) => s.clone(),
                    Relationship::Embedded(vm) => vm.id.clone(),
                };
                let Some(found) = self
                    .absolute(&reference)
                    .and_then(|a| index.iter().find(|i| i.id == a))
                else {
                    errs.push(DidError::DanglingReference {
                        relationship,
                        reference,
                    });
                    continue;
                };
                // Undecodable keys are already reported above.
                if let Some(k) = &found.key {
                    match (wants_kem, k.key_type()) {
                        (true, KeyType::Kem(_)) | (false, KeyType::Signature(_)) => {}
                        (true, _) => errs.push(DidError::WrongKeyKind {
                            relationship,
                            reference,
                            expected: "an ML-KEM key",
                        }),
                        (false, _) => errs.push(DidError::WrongKeyKind {
                            relationship,
                            reference,
                            expected: "an ML-DSA or SLH-DSA key",
                        }),
                    }
                }
            }
        }

        // Initial-key derivation (BIND-II-A-I02; PROFILE G-05).
        if let Some(did) = &did {
            let derives = index.iter().filter_map(|i| i.key.as_ref()).any(|k| {
                k.signature_algorithm()
                    .is_some_and(|a| a.is_ml_dsa() && did.matches_key(a, k.public_key()))
            });
            if !derives {
                errs.push(DidError::NoInitialKey {
                    did: did.to_string(),
                });
            }
        }

        // Services (BIND-V-C-01..03; PROFILE G-32).
        for s in self.service.iter().flatten() {
            if DidUrl::resolve(&s.id, &self.id).is_err() {
                errs.push(DidError::Service {
                    id: s.id.clone(),
                    property: "id",
                    reason: "not a DID URL".into(),
                    requirement: "BIND-V-C-01",
                });
            }
        }
        let mut any_sync = false;
        for s in self.services_of_type(SERVICE_SYNC) {
            any_sync = true;
            if let Err(e) = DidDocument::sync_of(s) {
                errs.push(e);
            }
        }
        if !any_sync {
            errs.push(DidError::MissingService {
                service_type: SERVICE_SYNC,
            });
        }
        let mut any_async = false;
        for s in self.services_of_type(SERVICE_ASYNC) {
            any_async = true;
            if let Err(e) = self.async_of(s) {
                errs.push(e);
            }
        }
        if !any_async {
            errs.push(DidError::MissingService {
                service_type: SERVICE_ASYNC,
            });
        }
        for s in self.services_of_type(SERVICE_DELEGATION) {
            let ok = s.service_endpoint.as_array().is_some_and(|a| {
                !a.is_empty() && a.iter().all(|v| v.as_str().is_some_and(|t| !t.is_empty()))
            });
            if !ok {
                errs.push(DidError::Service {
                    id: s.id.clone(),
                    property: "serviceEndpoint",
                    reason: "must be a non-empty array of URLs".into(),
                    requirement: "SPEC-III-A-1-03",
                });
            }
        }

        // Algorithm Support Profile (BIND-X-I02, BIND-X-I03; PROFILE G-38).
        match &self.mtp_algorithm_support {
            None => errs.push(DidError::MissingAlgorithmSupport),
            Some(a) => {
                if let Err(mut e) = a.parse() {
                    errs.append(&mut e);
                }
            }
        }

        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }

    /// The reference agent's DID Document (PROFILE G-32). Key ids `#key-n` (signature
    /// keys: authentication and assertionMethod) and `#kem-n` (keyAgreement); services
    /// `#sync`, `#async` and, when a chain is given, `#delegation`.
    pub fn new_agent(p: &AgentDocumentParams) -> Result<DidDocument, DidError> {
        let (alg, pk) = p
            .signing_keys
            .first()
            .ok_or(DidError::MissingVerificationMethod)?;
        let did = Did::derive(*alg, pk)?;
        let mk = |kt: KeyType, key: &[u8], id: String| -> Result<VerificationMethod, DidError> {
            let m = Multikey::new(kt, key.to_vec()).map_err(|source| DidError::Multikey {
                id: id.clone(),
                source,
            })?;
            Ok(VerificationMethod {
                id,
                type_: MULTIKEY_TYPE.into(),
                controller: did.to_string(),
                public_key_multibase: Some(m.encode()),
                extra: Map::new(),
            })
        };
        let mut vms = Vec::new();
        let mut sig_refs = Vec::new();
        for (i, (a, k)) in p.signing_keys.iter().enumerate() {
            let id = did.url(&format!("key-{}", i + 1));
            vms.push(mk(KeyType::Signature(*a), k, id.clone())?);
            sig_refs.push(Relationship::Reference(id));
        }
        let mut kem_refs = Vec::new();
        for (i, (a, k)) in p.kem_keys.iter().enumerate() {
            let id = did.url(&format!("kem-{}", i + 1));
            vms.push(mk(KeyType::Kem(*a), k, id.clone())?);
            kem_refs.push(Relationship::Reference(id));
        }
        let service = |id: &str, t: &str, endpoint: Json| Service {
            id: did.url(id),
            type_: OneOrMany::One(t.into()),
            service_endpoint: endpoint,
            tls_certificate_fingerprint: None,
            nats_cluster: None,
            subject_pattern: None,
            extra: Map::new(),
        };
        let host = |h: &str| {
            if h.contains(':') {
                format!("[{h}]")
            } else {
                h.to_owned()
            }
        };
        let mut services = vec![
            Service {
                tls_certificate_fingerprint: Some(format!(
                    "sha256:{}",
                    hex::encode(p.sync.tls_certificate_sha256)
                )),
                ..service(
                    "sync",
                    SERVICE_SYNC,
                    Json::String(format!("grpcs://{}:{}", host(&p.sync.host), p.sync.port)),
                )
            },
            Service {
                nats_cluster: Some(p.nats_cluster.clone()),
                subject_pattern: Some(subject_pattern_for(&did)),
                ..service(
                    "async",
                    SERVICE_ASYNC,
                    Json::String(format!("nats://{}:{}", host(&p.nats_host), p.nats_port)),
                )
            },
        ];
        if !p.delegation_chain.is_empty() {
            services.push(service(
                "delegation",
                SERVICE_DELEGATION,
                Json::Array(
                    p.delegation_chain
                        .iter()
                        .cloned()
                        .map(Json::String)
                        .collect(),
                ),
            ));
        }
        Ok(DidDocument {
            context: Context::Many(vec![
                Json::String(DID_V1_CONTEXT.into()),
                Json::String(MULTIKEY_V1_CONTEXT.into()),
                Json::String(MTP_CONTEXT.into()),
            ]),
            id: did.to_string(),
            verification_method: Some(vms),
            authentication: Some(sig_refs.clone()),
            assertion_method: Some(sig_refs),
            key_agreement: Some(kem_refs),
            service: Some(services),
            mtp_algorithm_support: Some(AlgorithmSupport::from_profile(&p.algorithms)),
            extra: Map::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::{Coded, ErrorCode};
    use crate::identity::multikey::MultikeyError;
    use std::sync::OnceLock;

    fn mldsa65_pk(seed: u8) -> Vec<u8> {
        use ml_dsa::{Keypair, MlDsa65, SigningKey};
        SigningKey::<MlDsa65>::from_seed(&[seed; 32].into())
            .verifying_key()
            .encode()
            .to_vec()
    }

    fn mlkem768_ek(seed: u8) -> Vec<u8> {
        use ml_kem::{DecapsulationKey, KeyExport, MlKem768};
        DecapsulationKey::<MlKem768>::from_seed([seed; 64].into())
            .encapsulation_key()
            .to_bytes()
            .to_vec()
    }

    fn params() -> AgentDocumentParams {
        AgentDocumentParams {
            signing_keys: vec![
                (SignatureAlgorithm::MlDsa65, mldsa65_pk(1)),
                (SignatureAlgorithm::SlhDsaSha2_192s, vec![5; 48]),
            ],
            kem_keys: vec![(KemAlgorithm::MlKem768, mlkem768_ek(2))],
            sync: SyncEndpoint {
                host: "agent.example".into(),
                port: 7443,
                tls_certificate_sha256: [0xab; 32],
            },
            nats_host: "nats.example".into(),
            nats_port: 4222,
            nats_cluster: "mtp-test".into(),
            delegation_chain: vec!["https://principal.example/adc/1".into()],
            algorithms: AlgorithmSupportProfile::full(),
        }
    }

    fn doc() -> DidDocument {
        static DOC: OnceLock<DidDocument> = OnceLock::new();
        DOC.get_or_init(|| DidDocument::new_agent(&params()).unwrap())
            .clone()
    }

    /// Mutates the JSON form and re-parses.
    fn mutate(f: impl FnOnce(&mut Json)) -> DidDocument {
        let mut j: Json = serde_json::from_str(&doc().to_json()).unwrap();
        f(&mut j);
        DidDocument::from_json(&j.to_string()).unwrap()
    }

    fn errors(d: &DidDocument) -> Vec<DidError> {
        d.validate().err().unwrap_or_default()
    }

    #[test]
    fn reference_document_is_valid_and_round_trips() {
        let d = doc();
        assert_eq!(d.validate(), Ok(()));
        let json = d.to_json();
        let back = DidDocument::from_json(&json).unwrap();
        assert_eq!(back, d);
        assert_eq!(back.to_json(), json);
        assert!(json.starts_with(r#"{"@context":["https://www.w3.org/ns/did/v1","#));
        let did = d.did().unwrap();
        assert!(did.matches_key(SignatureAlgorithm::MlDsa65, &mldsa65_pk(1)));
        let a = d.assertion_keys();
        assert_eq!(a.len(), 2);
        assert_eq!(
            a[0],
            (did.url("key-1"), SignatureAlgorithm::MlDsa65, mldsa65_pk(1))
        );
        assert_eq!(a[1].1, SignatureAlgorithm::SlhDsaSha2_192s);
        assert_eq!(d.authentication_keys().len(), 2);
        assert_eq!(
            d.key_agreement_keys(),
            vec![(did.url("kem-1"), KemAlgorithm::MlKem768, mlkem768_ek(2))]
        );
        assert_eq!(d.sync_endpoint(), Some(params().sync));
        let a = d.async_endpoint().unwrap();
        assert_eq!(
            (a.host.as_str(), a.port, a.nats_cluster.as_str()),
            ("nats.example", 4222, "mtp-test")
        );
        assert_eq!(
            a.subject_pattern,
            format!("mtp.agent.{}.>", did.method_specific_id())
        );
        assert_eq!(
            d.delegation_chain(),
            Some(vec!["https://principal.example/adc/1".to_owned()])
        );
        assert_eq!(d.algorithm_support(), Some(AlgorithmSupportProfile::full()));
        assert_eq!(
            d.key("#kem-1").map(|k| k.key_type()),
            Some(KeyType::Kem(KemAlgorithm::MlKem768))
        );
    }

    #[test]
    fn unknown_members_preserved_and_relative_refs_accepted() {
        let d = mutate(|j| {
            j["alsoKnownAs"] = serde_json::json!(["https://agent.example"]);
            j["verificationMethod"][0]["x-note"] = "kept".into();
            j["service"][0]["x-extra"] = 1.into();
            j["service"][0]["id"] = "#sync".into();
            j["mtpAlgorithmSupport"]["future"] = serde_json::json!([]);
            j["assertionMethod"][0] = "#key-1".into();
        });
        assert_eq!(d.validate(), Ok(()));
        let json = d.to_json();
        for needle in [
            "alsoKnownAs",
            "\"x-note\":\"kept\"",
            "x-extra",
            "\"future\":[]",
            "\"#sync\"",
        ] {
            assert!(json.contains(needle), "{needle}");
        }
        assert_eq!(d.assertion_keys()[0].0, d.did().unwrap().url("key-1"));
        // Embedded verification methods are resolved too.
        let e = mutate(|j| {
            let vm = j["verificationMethod"][1].clone();
            j["assertionMethod"][1] = vm;
            j["verificationMethod"].as_array_mut().unwrap().remove(1);
        });
        assert_eq!(e.validate(), Ok(()));
        assert_eq!(e.assertion_keys().len(), 2);
    }

    type Case = (
        &'static str,
        Box<dyn Fn(&mut Json)>,
        Box<dyn Fn(&DidError) -> bool>,
    );

    #[test]
    fn missing_mandatory_parts() {
        let cases: Vec<Case> = vec![
            (
                "context order",
                Box::new(|j| {
                    j["@context"] = serde_json::json!(["https://w3id.org/security/multikey/v1"])
                }),
                Box::new(|e| matches!(e, DidError::Context { .. })),
            ),
            (
                "verificationMethod",
                Box::new(|j| {
                    j.as_object_mut().unwrap().remove("verificationMethod");
                }),
                Box::new(|e| matches!(e, DidError::MissingVerificationMethod)),
            ),
            (
                "authentication",
                Box::new(|j| {
                    j.as_object_mut().unwrap().remove("authentication");
                }),
                Box::new(|e| {
                    matches!(
                        e,
                        DidError::MissingRelationship {
                            relationship: "authentication"
                        }
                    )
                }),
            ),
            (
                "assertionMethod",
                Box::new(|j| j["assertionMethod"] = serde_json::json!([])),
                Box::new(|e| {
                    matches!(
                        e,
                        DidError::MissingRelationship {
                            relationship: "assertionMethod"
                        }
                    )
                }),
            ),
            (
                "keyAgreement",
                Box::new(|j| {
                    j.as_object_mut().unwrap().remove("keyAgreement");
                }),
                Box::new(|e| {
                    matches!(
                        e,
                        DidError::MissingRelationship {
                            relationship: "keyAgreement"
                        }
                    )
                }),
            ),
            (
                "sync service",
                Box::new(|j| {
                    j["service"].as_array_mut().unwrap().remove(0);
                }),
                Box::new(|e| {
                    matches!(
                        e,
                        DidError::MissingService {
                            service_type: "MTPSync"
                        }
                    )
                }),
            ),
            (
                "async service",
                Box::new(|j| {
                    j["service"].as_array_mut().unwrap().remove(1);
                }),
                Box::new(|e| {
                    matches!(
                        e,
                        DidError::MissingService {
                            service_type: "MTPAsync"
                        }
                    )
                }),
            ),
            (
                "fingerprint",
                Box::new(|j| {
                    j["service"][0]
                        .as_object_mut()
                        .unwrap()
                        .remove("tlsCertificateFingerprint");
                }),
                Box::new(|e| {
                    matches!(
                        e,
                        DidError::Service {
                            requirement: "BIND-V-C-02",
                            ..
                        }
                    )
                }),
            ),
            (
                "fingerprint upper-case",
                Box::new(|j| {
                    j["service"][0]["tlsCertificateFingerprint"] =
                        format!("sha256:{}", "AB".repeat(32)).into()
                }),
                Box::new(|e| {
                    matches!(
                        e,
                        DidError::Service {
                            requirement: "BIND-V-C-02",
                            ..
                        }
                    )
                }),
            ),
            (
                "grpcs scheme",
                Box::new(|j| {
                    j["service"][0]["serviceEndpoint"] = "https://agent.example:7443".into()
                }),
                Box::new(|e| {
                    matches!(
                        e,
                        DidError::Service {
                            property: "serviceEndpoint",
                            ..
                        }
                    )
                }),
            ),
            (
                "port",
                Box::new(|j| {
                    j["service"][1]["serviceEndpoint"] = "nats://nats.example:70000".into()
                }),
                Box::new(|e| {
                    matches!(
                        e,
                        DidError::Service {
                            property: "serviceEndpoint",
                            ..
                        }
                    )
                }),
            ),
            (
                "natsCluster",
                Box::new(|j| {
                    j["service"][1]
                        .as_object_mut()
                        .unwrap()
                        .remove("natsCluster");
                }),
                Box::new(|e| {
                    matches!(
                        e,
                        DidError::Service {
                            property: "natsCluster",
                            ..
                        }
                    )
                }),
            ),
            (
                "subjectPattern",
                Box::new(|j| j["service"][1]["subjectPattern"] = "mtp.agent.other.>".into()),
                Box::new(|e| {
                    matches!(
                        e,
                        DidError::Service {
                            property: "subjectPattern",
                            ..
                        }
                    )
                }),
            ),
            (
                "delegation shape",
                Box::new(|j| j["service"][2]["serviceEndpoint"] = "https://x".into()),
                Box::new(|e| {
                    matches!(
                        e,
                        DidError::Service {
                            requirement: "SPEC-III-A-1-03",
                            ..
                        }
                    )
                }),
            ),
            (
                "algorithm support",
                Box::new(|j| {
                    j.as_object_mut().unwrap().remove("mtpAlgorithmSupport");
                }),
                Box::new(|e| matches!(e, DidError::MissingAlgorithmSupport)),
            ),
            (
                "baseline",
                Box::new(|j| j["mtpAlgorithmSupport"]["kem"] = serde_json::json!(["ML-KEM-1024"])),
                Box::new(|e| {
                    matches!(
                        e,
                        DidError::MissingBaseline {
                            label: "ML-KEM-768",
                            ..
                        }
                    )
                }),
            ),
            (
                "forbidden label",
                Box::new(|j| {
                    j["mtpAlgorithmSupport"]["signature"] =
                        serde_json::json!(["ML-DSA-65", "Ed25519"])
                }),
                Box::new(|e| {
                    matches!(
                        e,
                        DidError::Algorithm {
                            function: "signature",
                            ..
                        }
                    )
                }),
            ),
            (
                "id not did:mtp",
                Box::new(|j| j["id"] = "did:web:agent.example".into()),
                Box::new(|e| matches!(e, DidError::NotMtpMethod { .. })),
            ),
            (
                "dangling reference",
                Box::new(|j| j["authentication"][0] = "#nope".into()),
                Box::new(|e| matches!(e, DidError::DanglingReference { .. })),
            ),
            (
                "keyAgreement to a signature key",
                Box::new(|j| j["keyAgreement"][0] = "#key-1".into()),
                Box::new(|e| {
                    matches!(
                        e,
                        DidError::WrongKeyKind {
                            relationship: "keyAgreement",
                            ..
                        }
                    )
                }),
            ),
            (
                "assertionMethod to a KEM key",
                Box::new(|j| j["assertionMethod"][0] = "#kem-1".into()),
                Box::new(|e| {
                    matches!(
                        e,
                        DidError::WrongKeyKind {
                            relationship: "assertionMethod",
                            ..
                        }
                    )
                }),
            ),
            (
                "type",
                Box::new(|j| j["verificationMethod"][0]["type"] = "JsonWebKey2020".into()),
                Box::new(|e| matches!(e, DidError::VerificationMethod { .. })),
            ),
            (
                "controller",
                Box::new(|j| j["verificationMethod"][0]["controller"] = "me".into()),
                Box::new(|e| matches!(e, DidError::VerificationMethod { .. })),
            ),
            (
                "duplicate id",
                Box::new(|j| {
                    j["verificationMethod"][1]["id"] = j["verificationMethod"][0]["id"].clone()
                }),
                Box::new(|e| {
                    matches!(
                        e,
                        DidError::VerificationMethod {
                            reason: "duplicate id",
                            ..
                        }
                    )
                }),
            ),
            (
                "publicKeyMultibase",
                Box::new(|j| {
                    j["verificationMethod"][2]
                        .as_object_mut()
                        .unwrap()
                        .remove("publicKeyMultibase");
                }),
                Box::new(|e| matches!(e, DidError::VerificationMethod { .. })),
            ),
        ];
        for (name, f, pred) in cases {
            let d = mutate(|j| f(j));
            let errs = errors(&d);
            assert!(errs.iter().any(&*pred), "{name}: {errs:?}");
            for e in &errs {
                assert!(e.requirement().is_some(), "{name}: {e:?}");
            }
        }
    }

    #[test]
    fn keys_forbidden_and_derivation() {
        // Pre-quantum key (ed25519, 0xed) in a verification method.
        let d = mutate(|j| {
            let mut raw = vec![0xed, 0x01];
            raw.extend_from_slice(&[7; 32]);
            j["verificationMethod"][1]["publicKeyMultibase"] =
                format!("z{}", bs58::encode(raw).into_string()).into();
        });
        let errs = errors(&d);
        let e = errs
            .iter()
            .find(|e| {
                matches!(
                    e,
                    DidError::Multikey {
                        source: MultikeyError::PreQuantum { .. },
                        ..
                    }
                )
            })
            .unwrap();
        assert_eq!(e.code(), ErrorCode::AlgorithmNegotiationFailure);
        // The DID must derive from an ML-DSA key in the document.
        let other = Did::derive(SignatureAlgorithm::MlDsa65, &mldsa65_pk(9)).unwrap();
        let d = mutate(|j| {
            let s = j.to_string().replace(
                doc().did().unwrap().method_specific_id(),
                other.method_specific_id(),
            );
            *j = serde_json::from_str(&s).unwrap();
        });
        let errs = errors(&d);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(matches!(errs[0], DidError::NoInitialKey { .. }));
        assert_eq!(errs[0].code(), ErrorCode::SignatureVerificationFailure);
    }

    #[test]
    fn json_shape_errors() {
        for bad in [
            "",
            "[]",
            "{}",
            r#"{"@context":"https://www.w3.org/ns/did/v1","id":5}"#,
            "{\"id\":\"x\"",
        ] {
            let e = DidDocument::from_json(bad).unwrap_err();
            assert!(matches!(e, DidError::Json { .. }));
            assert_eq!(e.code(), ErrorCode::SchemaViolation);
        }
        // Minimal shape parses and then fails validation with many errors.
        let d =
            DidDocument::from_json(r#"{"@context":"https://www.w3.org/ns/did/v1","id":"did:x:y"}"#)
                .unwrap();
        assert!(errors(&d).len() >= 7);
    }

    #[test]
    fn builder_refusals() {
        let mut p = params();
        p.signing_keys[0] = (SignatureAlgorithm::SlhDsaSha2_192s, vec![0; 48]);
        assert!(matches!(
            DidDocument::new_agent(&p),
            Err(DidError::DerivationAlgorithm(_))
        ));
        let mut p = params();
        p.kem_keys[0].1.pop();
        assert!(matches!(
            DidDocument::new_agent(&p),
            Err(DidError::Multikey { .. })
        ));
        let mut p = params();
        p.sync.host = "::1".into();
        let d = DidDocument::new_agent(&p).unwrap();
        assert_eq!(d.validate(), Ok(()));
        assert_eq!(d.sync_endpoint().unwrap().host, "[::1]");
    }

    #[test]
    fn host_port_and_fingerprint_parsers() {
        assert_eq!(
            parse_host_port("grpcs://a.b:1", "grpcs"),
            Ok(("a.b".into(), 1))
        );
        assert_eq!(
            parse_host_port("grpcs://[::1]:443", "grpcs"),
            Ok(("[::1]".into(), 443))
        );
        for bad in [
            "grpcs://a.b",
            "grpcs://:1",
            "grpcs://a.b:0",
            "grpcs://a.b:65536",
            "grpcs://a..b:1",
            "grpcs://a b:1",
            "grpcs://a.b:1/x",
            "grpc://a.b:1",
            "grpcs://[]:1",
            "grpcs://a.b:+1",
        ] {
            assert!(parse_host_port(bad, "grpcs").is_err(), "{bad}");
        }
        assert_eq!(
            parse_fingerprint(&format!("sha256:{}", "0f".repeat(32))),
            Some([0x0f; 32])
        );
        assert_eq!(
            parse_fingerprint(&format!("sha256:{}", "0f".repeat(31))),
            None
        );
        assert_eq!(
            parse_fingerprint(&format!("SHA256:{}", "0f".repeat(32))),
            None
        );
    }
}
