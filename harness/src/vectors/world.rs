//! The fixed world every family except `credentials` shares: parties with keys derived
//! from [`MASTER`] (labels `world/<party>/<algorithm>`), constant timestamps, MTP-UUIDs
//! with seeded random parts, the Principal's Authority Delegation Certificates, and the
//! signing helpers of PROFILE G-02 (signing input = det-CBOR of the map without its
//! signature field).
//!
//! Parties: `provider` and `requester` (`#key-1` ML-DSA-65, `#key-2` ML-DSA-87, `#key-3`
//! SLH-DSA-SHA2-192s; `#kem-1` ML-KEM-768, `#kem-2` ML-KEM-1024), `contributor` (`#key-1`
//! ML-DSA-65, `#kem-1` ML-KEM-768) and `principal` (`#key-1` ML-DSA-65, `#kem-1`), whose
//! ADCs delegate to the provider and the requester.

use std::sync::OnceLock;

use serde_json::{Map as JsonMap, Value as Json, json};

use mtp_protocol::cbor::{self, Value};
use mtp_protocol::crypto::{
    AlgorithmSupportProfile, DecapsulationKey, KemAlgorithm, SeededRng, SignatureAlgorithm,
    SigningKey, seed,
};
use mtp_protocol::identity::credential::{self, Credential, ProofOptions};
use mtp_protocol::identity::delegation::{AuthorityDelegation, MaxTransactionValue};
use mtp_protocol::identity::document::{AgentDocumentParams, DidDocument, SyncEndpoint};
use mtp_protocol::identity::status_list::{
    MIN_LIST_BITS, StatusListFormat, StatusListIssuer, StatusPurpose,
};
use mtp_protocol::identity::{Did, authority_proof as ap};
use mtp_protocol::taxonomy::Classifier;
use mtp_protocol::time::Timestamp;
use mtp_protocol::uuid::{MtpUuid, ObjectType};
use mtp_protocol::verification::Decimal;

use super::{At, MASTER, VectorError, input_error};

/// 2026-03-06T12:00:00Z: every timestamp of the shared world is `T0` plus a constant.
pub const T0: i64 = 1_772_798_400;
/// One day in seconds.
pub const DAY: i64 = 86_400;

/// `T0 + secs` as a timestamp.
pub fn ts(secs: i64) -> Timestamp {
    Timestamp::from_unix_secs(T0 + secs).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// `T0 + secs` as a CBOR `tdate` (tag 0, PROFILE G-25).
pub fn tdate(secs: i64) -> Value {
    Value::Tag(0, Box::new(Value::text(ts(secs).to_rfc3339())))
}

/// A map with text keys, in the given order (the encoder sorts).
pub fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::map(entries)
}

/// A price-spec map.
pub fn price(amount: Value, unit: &str) -> Value {
    map(vec![("amount", amount), ("unit", Value::text(unit))])
}

/// A binary32 value as a CBOR float (float16-32 fields, PROFILE G-13).
pub fn f32v(x: f32) -> Value {
    Value::Float(f64::from(x))
}

/// A text array.
pub fn texts(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|s| Value::text(*s)).collect())
}

/// One seed as it appears in `inputs.seeds`.
#[derive(Clone, Debug)]
pub struct SeedRecord {
    pub label: String,
    pub purpose: String,
    pub seed: Vec<u8>,
}

impl SeedRecord {
    pub fn to_json(&self) -> Json {
        json!({"label": self.label, "purpose": self.purpose, "seed": hex::encode(&self.seed)})
    }
}

/// A party of the shared world.
pub struct Party {
    pub name: &'static str,
    /// Signature keys in document order (`#key-1`, ...).
    pub keys: Vec<SigningKey>,
    /// ML-KEM keys in document order (`#kem-1`, ...).
    pub kems: Vec<DecapsulationKey>,
    pub doc: DidDocument,
    pub did: Did,
    pub seeds: Vec<SeedRecord>,
}

impl Party {
    fn new(
        name: &'static str,
        sig: &[SignatureAlgorithm],
        kem: &[KemAlgorithm],
    ) -> Result<Party, VectorError> {
        let v = "world/parties";
        let mut seeds = Vec::new();
        let mut keys = Vec::new();
        for &alg in sig {
            let label = format!("world/{name}/{}", alg.label().to_ascii_lowercase());
            let s = seed::derive(&MASTER, &label);
            keys.push(SigningKey::from_seed(alg, &s));
            seeds.push(SeedRecord {
                label,
                purpose: alg.label().into(),
                seed: s.to_vec(),
            });
        }
        let mut kems = Vec::new();
        for &alg in kem {
            let label = format!("world/{name}/{}", alg.label().to_ascii_lowercase());
            let s: [u8; 64] = seed::derive_array(&MASTER, &label);
            kems.push(DecapsulationKey::from_seed(alg, &s));
            seeds.push(SeedRecord {
                label,
                purpose: alg.label().into(),
                seed: s.to_vec(),
            });
        }
        let tls_label = format!("world/{name}/tls-certificate");
        let tls = seed::derive(&MASTER, &tls_label);
        seeds.push(SeedRecord {
            label: tls_label,
            purpose: "sync endpoint TLS certificate SHA-256 fingerprint".into(),
            seed: tls.to_vec(),
        });
        let mut algorithms = AlgorithmSupportProfile::baseline();
        for k in &keys {
            if !algorithms.signature.contains(&k.algorithm()) {
                algorithms.signature.push(k.algorithm());
            }
        }
        for k in &kems {
            if !algorithms.kem.contains(&k.algorithm()) {
                algorithms.kem.push(k.algorithm());
            }
        }
        let doc = DidDocument::new_agent(&AgentDocumentParams {
            signing_keys: keys
                .iter()
                .map(|k| (k.algorithm(), k.public_key().as_bytes().to_vec()))
                .collect(),
            kem_keys: kems
                .iter()
                .map(|k| (k.algorithm(), k.encapsulation_key()))
                .collect(),
            sync: SyncEndpoint {
                host: format!("{name}.example"),
                port: 7443,
                tls_certificate_sha256: tls,
            },
            nats_host: "nats.example".into(),
            nats_port: 4222,
            nats_cluster: "mtp-vectors".into(),
            delegation_chain: vec![],
            algorithms,
        })
        .at(v)?;
        let did = doc.did().at(v)?;
        Ok(Party {
            name,
            keys,
            kems,
            doc,
            did,
            seeds,
        })
    }

    /// DID URL of `#key-n` (1-based).
    pub fn kid(&self, n: usize) -> String {
        self.did.url(&format!("key-{n}"))
    }

    /// DID URL of `#kem-n` (1-based).
    pub fn kem_kid(&self, n: usize) -> String {
        self.did.url(&format!("kem-{n}"))
    }

    /// `#key-n` (1-based).
    pub fn key(&self, vector: &str, n: usize) -> Result<&SigningKey, VectorError> {
        n.checked_sub(1)
            .and_then(|i| self.keys.get(i))
            .ok_or_else(|| input_error(vector, format!("{} has no #key-{n}", self.name)))
    }

    /// `#kem-n` (1-based).
    pub fn kem(&self, vector: &str, n: usize) -> Result<&DecapsulationKey, VectorError> {
        n.checked_sub(1)
            .and_then(|i| self.kems.get(i))
            .ok_or_else(|| input_error(vector, format!("{} has no #kem-{n}", self.name)))
    }

    /// The `#key-n` of the given algorithm.
    pub fn key_of(
        &self,
        vector: &str,
        alg: SignatureAlgorithm,
    ) -> Result<(usize, &SigningKey), VectorError> {
        self.keys
            .iter()
            .enumerate()
            .find(|(_, k)| k.algorithm() == alg)
            .map(|(i, k)| (i + 1, k))
            .ok_or_else(|| input_error(vector, format!("{} has no {} key", self.name, alg.label())))
    }

    pub fn did_str(&self) -> &str {
        self.did.as_str()
    }

    pub fn did_value(&self) -> Value {
        Value::text(self.did.as_str())
    }

    /// The DID Document as JSON.
    pub fn doc_json(&self, vector: &str) -> Result<Json, VectorError> {
        serde_json::to_value(&self.doc).at(vector)
    }
}

/// The world's constant ids of the Principal's credentials.
pub const ADC_PROVIDER_ID: &str = "urn:uuid:7c1e0b52-3d4f-4a6b-8c9d-0e1f2a3b4c01";
pub const ADC_REQUESTER_ID: &str = "urn:uuid:7c1e0b52-3d4f-4a6b-8c9d-0e1f2a3b4c02";
pub const ADC_REQUESTER_HIDDEN_ID: &str = "urn:uuid:7c1e0b52-3d4f-4a6b-8c9d-0e1f2a3b4c03";
/// The Principal's revocation list.
pub const STATUS_LIST_URL: &str = "https://status.example/world/principal/revocation";
/// Seed label of the requester's range-proof holder secret (PROFILE G-36).
pub const LABEL_RANGE_SECRET: &str = "world/requester/range-secret";
/// The requester's hidden limit in minor units: 5 000.00 USD.
pub const HIDDEN_LIMIT_UNITS: u64 = 500_000;

/// The shared world.
pub struct World {
    pub provider: Party,
    pub requester: Party,
    pub contributor: Party,
    pub principal: Party,
    /// ADC Principal → provider, Principal → requester (visible 5000 USD limit), and
    /// Principal → requester with a hidden limit (`maxTransactionValueCommitment`).
    pub adc_provider: Credential,
    pub adc_requester: Credential,
    pub adc_requester_hidden: Credential,
}

static WORLD: OnceLock<Result<World, String>> = OnceLock::new();

/// The shared world (built once per process).
pub fn world() -> Result<&'static World, VectorError> {
    WORLD
        .get_or_init(|| World::build().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| input_error("world", e.clone()))
}

impl World {
    fn build() -> Result<World, VectorError> {
        use KemAlgorithm::{MlKem768, MlKem1024};
        use SignatureAlgorithm::{MlDsa65, MlDsa87, SlhDsaSha2_192s};
        let v = "world/credentials";
        let provider = Party::new(
            "provider",
            &[MlDsa65, MlDsa87, SlhDsaSha2_192s],
            &[MlKem768, MlKem1024],
        )?;
        let requester = Party::new(
            "requester",
            &[MlDsa65, MlDsa87, SlhDsaSha2_192s],
            &[MlKem768, MlKem1024],
        )?;
        let contributor = Party::new("contributor", &[MlDsa65], &[MlKem768])?;
        let principal = Party::new("principal", &[MlDsa65], &[MlKem768])?;

        let mut list = StatusListIssuer::new(
            STATUS_LIST_URL,
            principal.did.as_str(),
            StatusListFormat::StatusList2021,
            StatusPurpose::Revocation,
            MIN_LIST_BITS,
            principal.key(v, 1)?.clone(),
            &principal.kid(1),
        )
        .at(v)?;
        let options = ProofOptions {
            verification_method: principal.kid(1),
            created: ts(-30 * DAY),
        };
        let classifier = |s: &str| Classifier::parse(s).map_err(|e| input_error(v, e.to_string()));
        let mut adc = |id: &str,
                       subject: &Did,
                       scope: &[&str],
                       max: MaxTransactionValue,
                       commitment: Option<[u8; 32]>|
         -> Result<Credential, VectorError> {
            let constraints = match json!({"maxDailyTransactions": 50}) {
                Json::Object(m) => m,
                _ => JsonMap::new(),
            };
            let d = AuthorityDelegation {
                id: Some(id.to_owned()),
                issuer: principal.did.to_string(),
                principal: Some(principal.did.to_string()),
                subject: subject.clone(),
                scope: scope
                    .iter()
                    .map(|s| classifier(s))
                    .collect::<Result<_, _>>()?,
                max_transaction_value: max,
                max_transaction_value_commitment: commitment,
                permitted_jurisdictions: vec!["US".into(), "DE".into()],
                permitted_payment_rails: vec!["lemay".into(), "ach".into()],
                permitted_counterparty_classes: Some(vec!["verified_business".into()]),
                constraints,
                valid_from: ts(-30 * DAY),
                valid_until: ts(335 * DAY),
                status: vec![list.allocate().at(v)?],
            };
            let unsigned = d.to_unsigned_credential().at(v)?;
            credential::sign(&unsigned, principal.key(v, 1)?, &options).at(v)
        };
        let visible = || MaxTransactionValue::new(Decimal::from_int(5000), "USD").at(v);
        let adc_provider = adc(
            ADC_PROVIDER_ID,
            &provider.did,
            &["inference", "compute"],
            visible()?,
            None,
        )?;
        let adc_requester = adc(
            ADC_REQUESTER_ID,
            &requester.did,
            &["inference", "compute"],
            visible()?,
            None,
        )?;
        let secret = seed::derive(&MASTER, LABEL_RANGE_SECRET);
        let limit = ap::MinorAmount::new(HIDDEN_LIMIT_UNITS, "USD");
        let commitment =
            ap::MaxValueCommitment::commit(&limit, &secret, ADC_REQUESTER_HIDDEN_ID).at(v)?;
        let adc_requester_hidden = adc(
            ADC_REQUESTER_HIDDEN_ID,
            &requester.did,
            &["inference", "compute"],
            MaxTransactionValue::hidden("USD").at(v)?,
            Some(commitment.point),
        )?;
        Ok(World {
            provider,
            requester,
            contributor,
            principal,
            adc_provider,
            adc_requester,
            adc_requester_hidden,
        })
    }

    /// The parties in a fixed order.
    pub fn parties(&self) -> [&Party; 4] {
        [
            &self.provider,
            &self.requester,
            &self.contributor,
            &self.principal,
        ]
    }

    /// An MTP-UUID of type `ty` created by `creator` at `T0 + secs`; its 17 random bytes
    /// are the first bytes of `SeededRng(derive(MASTER, "world/ids/" ‖ label))`.
    pub fn id(
        &self,
        ty: ObjectType,
        creator: &Party,
        secs: i64,
        label: &str,
    ) -> Result<MtpUuid, VectorError> {
        let random: [u8; 17] =
            SeededRng::from_master(&MASTER, &format!("world/ids/{label}")).bytes();
        MtpUuid::generate(ty, ts(secs), creator.did.as_str(), random).at("world/ids")
    }

    /// The holder secret of the requester's hidden limit.
    pub fn range_secret(&self) -> [u8; 32] {
        seed::derive(&MASTER, LABEL_RANGE_SECRET)
    }

    /// Every seed of the world, for `inputs.seeds`.
    pub fn seeds_json(&self, parties: &[&Party]) -> Json {
        Json::Array(
            parties
                .iter()
                .flat_map(|p| p.seeds.iter())
                .map(SeedRecord::to_json)
                .collect(),
        )
    }
}

/// A delegation link `{issuer, subject, credential}` for an ADC (PROFILE G-04).
pub fn delegation_link(principal: &Party, agent: &Party, adc: &Credential) -> Value {
    map(vec![
        ("issuer", principal.did_value()),
        ("subject", agent.did_value()),
        ("credential", Value::text(adc.to_json())),
    ])
}

// ---------------------------------------------------------------------------------------
// Signing (PROFILE G-02)
// ---------------------------------------------------------------------------------------

/// Replaces (or adds) the entry `field` of a map.
pub fn with_entry(v: &Value, field: &str, new: Option<Value>) -> Value {
    let mut entries: Vec<(Value, Value)> = v
        .as_map()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.as_text() != Some(field))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    if let Some(n) = new {
        entries.push((Value::text(field), n));
    }
    Value::Map(entries)
}

/// Sets the value at a dotted path of nested maps (created when missing).
pub fn set_path(v: &Value, path: &str, new: Value) -> Value {
    match path.split_once('.') {
        None => with_entry(v, path, Some(new)),
        Some((head, rest)) => {
            let inner = v
                .get(head)
                .cloned()
                .unwrap_or_else(|| Value::Map(Vec::new()));
            with_entry(v, head, Some(set_path(&inner, rest, new)))
        }
    }
}

/// Removes the entry at a dotted path of nested maps.
pub fn remove_path(v: &Value, path: &str) -> Value {
    match path.split_once('.') {
        None => with_entry(v, path, None),
        Some((head, rest)) => match v.get(head) {
            Some(inner) => with_entry(v, head, Some(remove_path(inner, rest))),
            None => v.clone(),
        },
    }
}

/// The `mtp-signature` map.
pub fn signature_value(alg: &str, key_id: Option<&str>, value: Vec<u8>) -> Value {
    let mut m = vec![
        ("algorithm", Value::text(alg)),
        ("value", Value::Bytes(value)),
    ];
    if let Some(k) = key_id {
        m.push(("key_id", Value::text(k)));
    }
    map(m)
}

/// Signs a map that has no object type in the protocol crate: `field` = signature over
/// det-CBOR of the map without `field` (PROFILE G-02).
pub fn sign_plain(
    vector: &str,
    unsigned: &Value,
    field: &str,
    key: &SigningKey,
    key_id: &str,
) -> Result<Value, VectorError> {
    let input = cbor::to_vec(&with_entry(unsigned, field, None)).at(vector)?;
    let sig = signature_value(key.algorithm().label(), Some(key_id), key.sign(&input));
    Ok(with_entry(unsigned, field, Some(sig)))
}

/// The signing input of a map: det-CBOR without `field`.
pub fn signing_input(vector: &str, v: &Value, field: &str) -> Result<Vec<u8>, VectorError> {
    cbor::to_vec(&with_entry(v, field, None)).at(vector)
}
