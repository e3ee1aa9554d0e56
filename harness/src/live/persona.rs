//! The harness's personas: the counterparty Agent(s) it plays and the Principal that
//! delegates authority to them and to the IUT.
//!
//! Every key derives from the scenario seed and the persona name
//! (`mtp_protocol::crypto::seed`), so a replay of a scenario uses the same DIDs, keys and
//! certificates: `master(persona) = seed::derive(scenario_master, "mtp-cert/persona/<name>")`
//! with `scenario_master = SHA-256("mtp-cert/live/1" ‖ 0x00 ‖ seed as 8 bytes big-endian)`.
//! The DID Document's MTPSync endpoint names the persona's harness server (a free loopback
//! port), the only part of a persona that varies between runs.

use mtp_protocol::cbor::Value;
use mtp_protocol::crypto::{
    AlgorithmSupportProfile, DecapsulationKey, KemAlgorithm, SeededRng, SignatureAlgorithm,
    SigningKey, seed, sha256,
};
use mtp_protocol::identity::credential::{self, ProofOptions};
use mtp_protocol::identity::delegation::{AuthorityDelegation, MaxTransactionValue};
use mtp_protocol::identity::status_list::{
    MIN_LIST_BITS, StatusListFormat, StatusListIssuer, StatusPurpose,
};
use mtp_protocol::identity::{AgentDocumentParams, Did, DidDocument, SyncEndpoint};
use mtp_protocol::taxonomy::Classifier;
use mtp_protocol::time::Timestamp;
use mtp_protocol::uuid::{MtpUuid, ObjectType, source_of};
use mtp_protocol::verification::Decimal;
use mtp_reference_agent::transport::sync::TlsIdentity;

/// The persona that plays the counterparty unless a step names another (`as:`).
pub const COUNTERPARTY: &str = "counterparty";
/// The Principal persona (issues delegation credentials and the status list).
pub const PRINCIPAL: &str = "principal";

/// Top-level categories a Principal delegates (PROFILE G-07).
pub const ALL_CATEGORIES: [&str; 9] = [
    "physical_goods",
    "digital_goods",
    "services",
    "compute",
    "inference",
    "information",
    "communication",
    "logistics",
    "compliance",
];
/// The ceiling the Principal delegates (USD), to the IUT and to every persona.
pub const DELEGATED_MAX_USD: i128 = 10_000;
/// Rails the Principal permits.
pub const PERMITTED_RAILS: [&str; 3] = ["ledger", "flaky", "test"];

/// Why a persona could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PersonaError {
    #[error("persona {name}: {reason}")]
    Build { name: String, reason: String },
}

fn err(name: &str, reason: impl std::fmt::Display) -> PersonaError {
    PersonaError::Build {
        name: name.to_owned(),
        reason: reason.to_string(),
    }
}

/// The per-scenario master seed of every persona.
pub fn scenario_master(scenario_seed: u64) -> [u8; 32] {
    let mut input = b"mtp-cert/live/1\0".to_vec();
    input.extend_from_slice(&scenario_seed.to_be_bytes());
    sha256(&input)
}

/// Where a persona's services are (its DID Document).
#[derive(Clone, Debug)]
pub struct Endpoints {
    /// The harness server port of this persona (MTPSync).
    pub sync_port: u16,
    /// `(host, port)` of the NATS server, when the IUT has MTPAsync.
    pub nats: Option<(String, u16)>,
}

/// One Agent the harness plays.
pub struct Persona {
    pub name: String,
    pub signing: SigningKey,
    pub kem: DecapsulationKey,
    pub did: String,
    pub tls: TlsIdentity,
    pub document: DidDocument,
    pub document_json: String,
    /// DID URL of the assertion key (`key_id` of every signature).
    pub key_id: String,
    /// DID URL of the ML-KEM keyAgreement key.
    pub kem_kid: String,
    /// Seeded randomness for MTP-UUIDs and nonces.
    rng: SeededRng,
}

impl std::fmt::Debug for Persona {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persona")
            .field("name", &self.name)
            .field("did", &self.did)
            .finish_non_exhaustive()
    }
}

impl Persona {
    /// Derives persona `name` of the scenario with seed `scenario_seed`.
    pub fn derive(
        scenario_seed: u64,
        name: &str,
        endpoints: &Endpoints,
    ) -> Result<Persona, PersonaError> {
        let master = seed::derive(
            &scenario_master(scenario_seed),
            &format!("mtp-cert/persona/{name}"),
        );
        let signing = SigningKey::from_seed(
            SignatureAlgorithm::MlDsa65,
            &seed::derive(&master, "ml-dsa-65"),
        );
        let kem = DecapsulationKey::from_seed(
            KemAlgorithm::MlKem768,
            &seed::derive_array::<64>(&master, "ml-kem-768"),
        );
        let did = Did::from_digest(sha256(signing.public_key().as_bytes()));
        let tls = TlsIdentity::from_seed(&seed::derive(&master, "tls"), did.as_str())
            .map_err(|e| err(name, e))?;
        let (nats_host, nats_port) = endpoints
            .nats
            .clone()
            .unwrap_or_else(|| ("127.0.0.1".to_owned(), 4222));
        let params = AgentDocumentParams {
            signing_keys: vec![(
                signing.algorithm(),
                signing.public_key().as_bytes().to_vec(),
            )],
            kem_keys: vec![(kem.algorithm(), kem.encapsulation_key())],
            sync: SyncEndpoint {
                host: "127.0.0.1".into(),
                port: endpoints.sync_port,
                tls_certificate_sha256: *tls.fingerprint.as_bytes(),
            },
            nats_host,
            nats_port,
            nats_cluster: "mtp-cert".into(),
            delegation_chain: Vec::new(),
            algorithms: AlgorithmSupportProfile::baseline(),
        };
        let document = DidDocument::new_agent(&params).map_err(|e| err(name, e))?;
        let key_id = document
            .assertion_keys()
            .first()
            .map(|k| k.0.clone())
            .ok_or_else(|| err(name, "no assertion key in the DID Document"))?;
        let kem_kid = document
            .key_agreement_keys()
            .first()
            .map(|k| k.0.clone())
            .ok_or_else(|| err(name, "no keyAgreement key in the DID Document"))?;
        Ok(Persona {
            name: name.to_owned(),
            document_json: document.to_json(),
            signing,
            kem,
            did: did.as_str().to_owned(),
            tls,
            document,
            key_id,
            kem_kid,
            rng: SeededRng::from_seed(seed::derive(&master, "run")),
        })
    }

    /// `N` bytes of the persona's seeded randomness.
    pub fn random<const N: usize>(&mut self) -> [u8; N] {
        self.rng.bytes::<N>()
    }

    /// A fresh MTP-UUID of type `ty` made by this persona (SPEC IX; PROFILE G-29).
    pub fn new_uuid(&mut self, ty: ObjectType, now: Timestamp) -> MtpUuid {
        let ts = now.unix_nanos().unwrap_or(0);
        MtpUuid::new(ty, ts, source_of(&self.did), self.random::<17>())
    }

    /// The persona's seeded RNG (envelope randomness).
    pub fn rng(&mut self) -> &mut SeededRng {
        &mut self.rng
    }
}

/// A credential the Principal issued: its JSON-LD text and status-list index.
#[derive(Clone, Debug)]
pub struct Issued {
    pub subject: String,
    pub json: String,
    pub status_index: u64,
}

/// The harness as Principal (BIND III-B; PROFILE G-33): issues Authority Delegation
/// Credentials with a revocation entry in its own status list.
pub struct Principal {
    pub persona: Persona,
    issuer: StatusListIssuer,
    /// The status list credential as last published (JSON-LD text).
    list_json: String,
    issued: Vec<Issued>,
}

impl std::fmt::Debug for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Principal")
            .field("did", &self.persona.did)
            .finish_non_exhaustive()
    }
}

impl Principal {
    pub fn new(persona: Persona, now: Timestamp) -> Result<Principal, PersonaError> {
        let name = persona.name.clone();
        let did = Did::parse(&persona.did).map_err(|e| err(&name, e))?;
        let mut issuer = StatusListIssuer::new(
            &format!("urn:mtp:status:{}:revocation", did.method_specific_id()),
            &persona.did,
            StatusListFormat::StatusList2021,
            StatusPurpose::Revocation,
            MIN_LIST_BITS,
            persona.signing.clone(),
            &persona.key_id,
        )
        .map_err(|e| err(&name, e))?;
        let list = issuer.publish(now).map_err(|e| err(&name, e))?;
        Ok(Principal {
            persona,
            list_json: list.to_json(),
            issuer,
            issued: Vec::new(),
        })
    }

    pub fn did(&self) -> &str {
        &self.persona.did
    }

    /// URL of the revocation status list.
    pub fn status_url(&self) -> String {
        self.issuer.url().to_owned()
    }

    /// The current status list credential (JSON-LD text).
    pub fn status_list_json(&self) -> &str {
        &self.list_json
    }

    /// `{url: status list}` as add_peer / provision take it (control.cddl).
    pub fn status_lists_value(&self) -> Value {
        Value::Map(vec![(
            Value::text(self.status_url()),
            Value::text(self.list_json.clone()),
        )])
    }

    /// An ADC for `subject` over `scope` up to `max` USD (PROFILE G-33), signed by the
    /// Principal, with a fresh revocation entry.
    pub fn delegate(
        &mut self,
        subject: &str,
        scope: &[&str],
        max: i128,
        now: Timestamp,
    ) -> Result<Issued, PersonaError> {
        let name = self.persona.name.clone();
        let e = |r: String| err(&name, r);
        let entry = self.issuer.allocate().map_err(|x| e(x.to_string()))?;
        let list = self.issuer.publish(now).map_err(|x| e(x.to_string()))?;
        self.list_json = list.to_json();
        let id = hex::encode(self.persona.random::<16>());
        let adc = AuthorityDelegation {
            id: Some(format!("urn:mtp:adc:{id}")),
            issuer: self.persona.did.clone(),
            principal: None,
            subject: Did::parse(subject).map_err(|x| e(x.to_string()))?,
            scope: scope
                .iter()
                .map(|s| Classifier::parse(s).map_err(|x| e(x.to_string())))
                .collect::<Result<_, _>>()?,
            max_transaction_value: MaxTransactionValue::new(Decimal::from_int(max), "USD")
                .map_err(|x| e(x.to_string()))?,
            max_transaction_value_commitment: None,
            permitted_jurisdictions: vec!["US".into(), "DE".into()],
            permitted_payment_rails: PERMITTED_RAILS.iter().map(|r| (*r).to_owned()).collect(),
            permitted_counterparty_classes: None,
            constraints: Default::default(),
            valid_from: now
                .add_secs(-60)
                .ok_or_else(|| e("time out of range".into()))?,
            valid_until: now
                .add_secs(86_400)
                .ok_or_else(|| e("time out of range".into()))?,
            status: vec![entry.clone()],
        };
        let unsigned = adc.to_unsigned_credential().map_err(|x| e(x.to_string()))?;
        let signed = credential::sign(
            &unsigned,
            &self.persona.signing,
            &ProofOptions {
                verification_method: self.persona.key_id.clone(),
                created: now,
            },
        )
        .map_err(|x| e(x.to_string()))?;
        let issued = Issued {
            subject: subject.to_owned(),
            json: signed.to_json(),
            status_index: entry.index,
        };
        self.issued.push(issued.clone());
        Ok(issued)
    }

    /// An ADC for `subject` as [`Principal::delegate`] makes it, also carrying the optional
    /// claims `principal` and `maxTransactionValueCommitment`, whose `disclosable`
    /// `credentialSubject` members are made selectively disclosable with two decoys (PROFILE
    /// G-33, G-35): the credential and its disclosures (base64url texts).
    pub fn delegate_selective(
        &mut self,
        subject: &str,
        disclosable: &[&str],
        now: Timestamp,
    ) -> Result<(Issued, Vec<String>), PersonaError> {
        let name = self.persona.name.clone();
        let e = |r: String| err(&name, r);
        let entry = self.issuer.allocate().map_err(|x| e(x.to_string()))?;
        let list = self.issuer.publish(now).map_err(|x| e(x.to_string()))?;
        self.list_json = list.to_json();
        let id = hex::encode(self.persona.random::<16>());
        let commitment = self.persona.random::<32>();
        let adc = AuthorityDelegation {
            id: Some(format!("urn:mtp:adc:{id}")),
            issuer: self.persona.did.clone(),
            principal: Some(self.persona.did.clone()),
            subject: Did::parse(subject).map_err(|x| e(x.to_string()))?,
            scope: ALL_CATEGORIES
                .iter()
                .map(|s| Classifier::parse(s).map_err(|x| e(x.to_string())))
                .collect::<Result<_, _>>()?,
            max_transaction_value: MaxTransactionValue::new(
                Decimal::from_int(DELEGATED_MAX_USD),
                "USD",
            )
            .map_err(|x| e(x.to_string()))?,
            max_transaction_value_commitment: Some(commitment),
            permitted_jurisdictions: vec!["US".into(), "DE".into()],
            permitted_payment_rails: PERMITTED_RAILS.iter().map(|r| (*r).to_owned()).collect(),
            permitted_counterparty_classes: Some(vec!["verified_business".into()]),
            constraints: Default::default(),
            valid_from: now
                .add_secs(-60)
                .ok_or_else(|| e("time out of range".into()))?,
            valid_until: now
                .add_secs(86_400)
                .ok_or_else(|| e("time out of range".into()))?,
            status: vec![entry.clone()],
        };
        let unsigned = adc.to_unsigned_credential().map_err(|x| e(x.to_string()))?;
        let key_id = self.persona.key_id.clone();
        let signing = self.persona.signing.clone();
        let sd = mtp_protocol::identity::disclosure::issue(
            &unsigned,
            disclosable,
            2,
            self.persona.rng(),
            &signing,
            &ProofOptions {
                verification_method: key_id,
                created: now,
            },
        )
        .map_err(|x| e(x.to_string()))?;
        let issued = Issued {
            subject: subject.to_owned(),
            json: sd.credential.to_json(),
            status_index: entry.index,
        };
        self.issued.push(issued.clone());
        let disclosures = sd
            .disclosures
            .iter()
            .map(|d| d.as_str().to_owned())
            .collect();
        Ok((issued, disclosures))
    }

    /// Marks `subject`'s credential revoked and republishes the list (SPEC III-A-3).
    pub fn revoke(&mut self, subject: &str, now: Timestamp) -> Result<(), PersonaError> {
        let name = self.persona.name.clone();
        let index = self
            .issued
            .iter()
            .rev()
            .find(|i| i.subject == subject)
            .map(|i| i.status_index)
            .ok_or_else(|| err(&name, format!("no credential issued to {subject}")))?;
        let list = self.issuer.revoke(index, now).map_err(|e| err(&name, e))?;
        self.list_json = list.to_json();
        Ok(())
    }
}
