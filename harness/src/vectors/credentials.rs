//! Identity-credential vectors (issue 3): Verifiable Credentials with `DataIntegrityProof`,
//! Authority Delegation Certificates, selective disclosure and zero-knowledge authority
//! proofs.
//!
//! | file | content |
//! |---|---|
//! | `credentials/adc-mldsa65.json` | ADC Principal → Agent with a `StatusList2021Entry`, `mtp-mldsa-2026` (ML-DSA-65): signed credential, canonical N-Quads of the document and of the proof configuration, hashData, proofValue |
//! | `credentials/adc-slhdsa192s.json` | the same ADC, `mtp-slhdsa-2026` (SLH-DSA-SHA2-192s) |
//! | `credentials/sd-2-of-5.json` | SD credential with 5 disclosable claims (+2 decoys), all disclosures, a key-bound presentation of exactly 2 |
//! | `credentials/zk-range.json` | ADC with a hidden limit (`maxTransactionValueCommitment`) and a `zk_range` authority proof bound to a request and counterparty; negative case against a second credential with the same limit |
//! | `credentials/zk-range.cbor` | the deterministic CBOR of that authority-proof map |
//! | `credentials/zk-range.diag` | its CBOR diagnostic notation |
//!
//! Parties: a Principal (signing keys `#key-1` ML-DSA-65 and `#key-2` SLH-DSA-SHA2-192s),
//! the Agent it delegates to (`#key-1` ML-DSA-65) and a counterparty (`#key-1` ML-DSA-65);
//! each also has an ML-KEM-768 `#kem-1`. Seed labels, all under [`super::MASTER`]:
//!
//! - `credentials/<party>/ml-dsa-65`, `credentials/principal/slh-dsa-sha2-192s`: 32-byte
//!   signature key seeds ([`SigningKey::from_seed`]);
//! - `credentials/<party>/ml-kem-768`: 64-byte ML-KEM seeds (d ‖ z);
//! - `credentials/<party>/tls-certificate`: the sync endpoint's certificate fingerprint;
//! - `credentials/request/random`: the 17 random bytes of the Request's `request_id`;
//! - `credentials/sd-2-of-5/salts`: the [`SeededRng`] stream of disclosure salts and decoys;
//! - `credentials/zk-range/holder-secret`: the holder secret of the hidden limit.
//!
//! Every timestamp is a constant ([`ISSUED`], [`VALID_UNTIL`], [`REQUEST_TIME`]).

use base64::Engine as _;
use serde_json::{Map, Value, json};

use mtp_protocol::cbor::diag;
use mtp_protocol::crypto::{
    AlgorithmSupportProfile, DecapsulationKey, KemAlgorithm, SeededRng, SignatureAlgorithm,
    SigningKey, seed, sha256,
};
use mtp_protocol::identity::Did;
use mtp_protocol::identity::authority_proof::{
    self as ap, MaxValueCommitment, MinorAmount, ProofContext, ZkRangeProof,
};
use mtp_protocol::identity::credential::{
    self, Credential, Cryptosuite, DocumentResolver, ProofOptions,
};
use mtp_protocol::identity::delegation::{AuthorityDelegation, MaxTransactionValue};
use mtp_protocol::identity::disclosure::{self, KeyBinding};
use mtp_protocol::identity::document::{AgentDocumentParams, DidDocument, SyncEndpoint};
use mtp_protocol::identity::jsonld;
use mtp_protocol::identity::status_list::{
    MIN_LIST_BITS, StatusEntry, StatusListFormat, StatusListIssuer, StatusPurpose,
};
use mtp_protocol::primitives::common::{Number, PriceSpec, PriceUnit};
use mtp_protocol::taxonomy::Classifier;
use mtp_protocol::time::Timestamp;
use mtp_protocol::uuid::{MtpUuid, ObjectType};
use mtp_protocol::verification::Decimal;

use super::{At, Cause, MASTER, VectorError, VectorFile, ensure};

/// The family name (folder under `vectors/`).
pub const FAMILY: &str = "credentials";

/// Vector ids (= paths without extension).
pub const ADC_MLDSA65: &str = "credentials/adc-mldsa65";
pub const ADC_SLHDSA192S: &str = "credentials/adc-slhdsa192s";
pub const SD_2_OF_5: &str = "credentials/sd-2-of-5";
pub const ZK_RANGE: &str = "credentials/zk-range";

/// Seed labels that are not per-party keys.
pub const LABEL_REQUEST_RANDOM: &str = "credentials/request/random";
pub const LABEL_SD_SALTS: &str = "credentials/sd-2-of-5/salts";
pub const LABEL_ZK_HOLDER_SECRET: &str = "credentials/zk-range/holder-secret";

/// Issuance instant of every credential and proof: 2026-01-01T00:00:00Z.
pub const ISSUED: i64 = 1_767_225_600;
/// `validUntil` of every credential: 2027-01-01T00:00:00Z.
pub const VALID_UNTIL: i64 = 1_798_761_600;
/// Creation of the Request and the key-binding `iat`: 2026-01-15T12:00:00Z.
pub const REQUEST_TIME: i64 = 1_768_478_400;

/// Credential ids.
pub const ADC_ID: &str = "urn:uuid:3f6b2a10-7c4e-4d8a-9e21-0a1b2c3d4e01";
pub const SD_ID: &str = "urn:uuid:3f6b2a10-7c4e-4d8a-9e21-0a1b2c3d4e02";
pub const ZK_ID: &str = "urn:uuid:3f6b2a10-7c4e-4d8a-9e21-0a1b2c3d4e03";
pub const ZK_OTHER_ID: &str = "urn:uuid:3f6b2a10-7c4e-4d8a-9e21-0a1b2c3d4e04";

/// The Principal's revocation list (StatusList2021 entries, indexes allocated in order:
/// ADC 0, SD credential 1, hidden-limit ADC 2, second hidden-limit ADC 3).
pub const STATUS_LIST_URL: &str = "https://status.example/credentials/principal/revocation";

/// The claims made disclosable in `sd-2-of-5`, and the two revealed.
pub const SD_DISCLOSABLE: [&str; 5] = [
    "maxTransactionValue",
    "permittedJurisdictions",
    "permittedPaymentRails",
    "permittedCounterpartyClasses",
    "constraints",
];
pub const SD_REVEAL: [&str; 2] = ["maxTransactionValue", "permittedJurisdictions"];
/// Decoy digests added to `_sd`.
pub const SD_DECOYS: usize = 2;

/// The hidden limit of `zk-range`: 5 000.00 USD in minor units.
pub const ZK_LIMIT_UNITS: u64 = 500_000;
/// The transaction amount proven below it.
pub const ZK_AMOUNT: f64 = 1234.56;
pub const ZK_CURRENCY: &str = "USD";

/// Generates the family's files (pure and deterministic; see the module documentation).
pub fn generate() -> Result<Vec<VectorFile>, VectorError> {
    let w = World::new()?;
    let mut files = vec![
        VectorFile::json(
            format!("{ADC_MLDSA65}.json"),
            &adc_vector(&w, ADC_MLDSA65, 1)?,
        )?,
        VectorFile::json(
            format!("{ADC_SLHDSA192S}.json"),
            &adc_vector(&w, ADC_SLHDSA192S, 2)?,
        )?,
        VectorFile::json(format!("{SD_2_OF_5}.json"), &sd_vector(&w)?)?,
    ];
    let zk = zk_vector(&w)?;
    files.push(VectorFile::json(format!("{ZK_RANGE}.json"), &zk.json)?);
    files.push(VectorFile::binary(format!("{ZK_RANGE}.cbor"), zk.cbor));
    files.push(VectorFile::text(format!("{ZK_RANGE}.diag"), &zk.diag));
    Ok(files)
}

// ---------------------------------------------------------------------------------------
// Parties
// ---------------------------------------------------------------------------------------

fn ts(vector: &'static str, secs: i64) -> Result<Timestamp, VectorError> {
    Timestamp::from_unix_secs(secs).ok_or_else(|| VectorError::Step {
        vector: vector.into(),
        cause: Box::new(Cause::Input(format!("timestamp {secs} out of range"))),
    })
}

fn input<T, E: std::fmt::Display>(vector: &'static str, r: Result<T, E>) -> Result<T, VectorError> {
    r.map_err(|e| VectorError::Step {
        vector: vector.into(),
        cause: Box::new(Cause::Input(e.to_string())),
    })
}

/// One seed as it appears in `inputs.seeds`.
struct SeedRecord {
    label: String,
    purpose: &'static str,
    seed: Vec<u8>,
}

struct Party {
    /// Signature keys in document order (`#key-1`, `#key-2`, ...).
    keys: Vec<SigningKey>,
    doc: DidDocument,
    did: Did,
    seeds: Vec<SeedRecord>,
}

impl Party {
    /// `name`'s keys: ML-DSA-65 (`#key-1`), optionally SLH-DSA-SHA2-192s (`#key-2`), and an
    /// ML-KEM-768 key agreement key.
    fn new(name: &str, with_slh_dsa: bool) -> Result<Party, VectorError> {
        const V: &str = "credentials/parties";
        let mut seeds = Vec::new();
        let mut keys = Vec::new();
        let mut algs = vec![(SignatureAlgorithm::MlDsa65, "ml-dsa-65")];
        if with_slh_dsa {
            algs.push((SignatureAlgorithm::SlhDsaSha2_192s, "slh-dsa-sha2-192s"));
        }
        for (alg, slug) in algs {
            let label = format!("{FAMILY}/{name}/{slug}");
            let s = seed::derive(&MASTER, &label);
            keys.push(SigningKey::from_seed(alg, &s));
            seeds.push(SeedRecord {
                label,
                purpose: alg.label(),
                seed: s.to_vec(),
            });
        }
        let kem_label = format!("{FAMILY}/{name}/ml-kem-768");
        let kem_seed: [u8; 64] = seed::derive_array(&MASTER, &kem_label);
        let kem = DecapsulationKey::from_seed(KemAlgorithm::MlKem768, &kem_seed);
        seeds.push(SeedRecord {
            label: kem_label,
            purpose: KemAlgorithm::MlKem768.label(),
            seed: kem_seed.to_vec(),
        });
        let tls_label = format!("{FAMILY}/{name}/tls-certificate");
        let tls = seed::derive(&MASTER, &tls_label);
        seeds.push(SeedRecord {
            label: tls_label,
            purpose: "sync endpoint TLS certificate SHA-256 fingerprint",
            seed: tls.to_vec(),
        });
        let doc = DidDocument::new_agent(&AgentDocumentParams {
            signing_keys: keys
                .iter()
                .map(|k| (k.algorithm(), k.public_key().as_bytes().to_vec()))
                .collect(),
            kem_keys: vec![(KemAlgorithm::MlKem768, kem.encapsulation_key())],
            sync: SyncEndpoint {
                host: format!("{name}.example"),
                port: 7443,
                tls_certificate_sha256: tls,
            },
            nats_host: "nats.example".into(),
            nats_port: 4222,
            nats_cluster: "mtp-vectors".into(),
            delegation_chain: vec![],
            algorithms: AlgorithmSupportProfile::full(),
        })
        .at(V)?;
        let did = doc.did().at(V)?;
        Ok(Party {
            keys,
            doc,
            did,
            seeds,
        })
    }

    /// DID URL of `#key-n`.
    fn vm(&self, n: usize) -> String {
        self.did.url(&format!("key-{n}"))
    }

    fn key(&self, vector: &'static str, n: usize) -> Result<&SigningKey, VectorError> {
        n.checked_sub(1)
            .and_then(|i| self.keys.get(i))
            .ok_or_else(|| VectorError::Step {
                vector: vector.into(),
                cause: Box::new(Cause::Input(format!("no signing key #key-{n}"))),
            })
    }
}

struct World {
    principal: Party,
    agent: Party,
    counterparty: Party,
    /// StatusList2021 entries in allocation order: ADC, SD, ZK, ZK-other.
    status: Vec<StatusEntry>,
}

impl World {
    fn new() -> Result<World, VectorError> {
        const V: &str = "credentials/parties";
        let principal = Party::new("principal", true)?;
        let agent = Party::new("agent", false)?;
        let counterparty = Party::new("counterparty", false)?;
        let mut list = StatusListIssuer::new(
            STATUS_LIST_URL,
            principal.did.as_str(),
            StatusListFormat::StatusList2021,
            StatusPurpose::Revocation,
            MIN_LIST_BITS,
            principal.key(V, 1)?.clone(),
            &principal.vm(1),
        )
        .at(V)?;
        let status = (0..4)
            .map(|_| list.allocate().at(V))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(World {
            principal,
            agent,
            counterparty,
            status,
        })
    }

    fn resolver(&self) -> DocumentResolver {
        [&self.principal, &self.agent, &self.counterparty]
            .into_iter()
            .map(|p| p.doc.clone())
            .collect()
    }

    fn status(&self, vector: &'static str, i: usize) -> Result<StatusEntry, VectorError> {
        self.status
            .get(i)
            .cloned()
            .ok_or_else(|| VectorError::Step {
                vector: vector.into(),
                cause: Box::new(Cause::Input(format!("no status entry {i}"))),
            })
    }

    /// The ADC Principal → Agent.
    fn adc(
        &self,
        vector: &'static str,
        id: &str,
        status: StatusEntry,
        max: MaxTransactionValue,
        commitment: Option<[u8; 32]>,
    ) -> Result<AuthorityDelegation, VectorError> {
        let classifier = |s: &str| input(vector, Classifier::parse(s));
        let constraints = match json!({"maxDailyTransactions": 10}) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        Ok(AuthorityDelegation {
            id: Some(id.to_owned()),
            issuer: self.principal.did.to_string(),
            principal: Some(self.principal.did.to_string()),
            subject: self.agent.did.clone(),
            scope: vec![
                classifier("services.consulting")?,
                classifier("compute.gpu")?,
            ],
            max_transaction_value: max,
            max_transaction_value_commitment: commitment,
            permitted_jurisdictions: vec!["US".into(), "DE".into()],
            permitted_payment_rails: vec!["ach".into(), "sepa_credit".into()],
            permitted_counterparty_classes: Some(vec!["verified_business".into()]),
            constraints,
            valid_from: ts(vector, ISSUED)?,
            valid_until: ts(vector, VALID_UNTIL)?,
            status: vec![status],
        })
    }

    fn visible_limit(vector: &'static str) -> Result<MaxTransactionValue, VectorError> {
        MaxTransactionValue::new(Decimal::from_int(5000), "USD").at(vector)
    }

    /// The Agent's Request id, created at [`REQUEST_TIME`].
    fn request_id(&self, vector: &'static str) -> Result<MtpUuid, VectorError> {
        let random: [u8; 17] = SeededRng::from_master(&MASTER, LABEL_REQUEST_RANDOM).bytes();
        input(
            vector,
            MtpUuid::generate(
                ObjectType::Request,
                ts(vector, REQUEST_TIME)?,
                self.agent.did.as_str(),
                random,
            ),
        )
    }

    /// `inputs.seeds` and `inputs.did_documents` for the given parties.
    fn seeds_and_documents(
        &self,
        vector: &'static str,
        parties: &[&Party],
        extra: &[(&str, &str)],
    ) -> Result<(Value, Value), VectorError> {
        let mut seeds: Vec<Value> = parties
            .iter()
            .flat_map(|p| p.seeds.iter())
            .map(|s| {
                json!({
                    "label": s.label,
                    "purpose": s.purpose,
                    "seed": hex::encode(&s.seed),
                })
            })
            .collect();
        for &(label, purpose) in extra {
            let s = seed::derive(&MASTER, label);
            seeds.push(json!({"label": label, "purpose": purpose, "seed": hex::encode(s)}));
        }
        let docs = parties
            .iter()
            .map(|p| serde_json::to_value(&p.doc).at(vector))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((Value::Array(seeds), Value::Array(docs)))
    }
}

/// `inputs` members common to every vector.
fn seed_header() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("master_seed".into(), hex::encode(MASTER).into());
    m.insert(
        "seed_derivation".into(),
        "HKDF-SHA-256(ikm = master_seed, salt = empty, info = \"MTP-seed-v1/\" || label, \
         L = 32; 64 for ML-KEM seeds d || z)"
            .into(),
    );
    m
}

fn vector_doc(
    id: &str,
    requirements: &[&str],
    description: &str,
    inputs: Value,
    expected: Value,
) -> Value {
    json!({
        "id": id,
        "requirements": requirements,
        "description": description,
        "inputs": inputs,
        "expected": expected,
    })
}

fn sign_options(
    party: &Party,
    n: usize,
    vector: &'static str,
) -> Result<ProofOptions, VectorError> {
    Ok(ProofOptions {
        verification_method: party.vm(n),
        created: ts(vector, ISSUED)?,
    })
}

fn proof_options_json(o: &ProofOptions) -> Value {
    json!({
        "verificationMethod": o.verification_method,
        "created": o.created.to_rfc3339(),
    })
}

/// Signs and self-verifies (credential proof with the world's documents).
fn sign_checked(
    w: &World,
    vector: &'static str,
    unsigned: &Credential,
    key: &SigningKey,
    options: &ProofOptions,
) -> Result<Credential, VectorError> {
    let signed = credential::sign(unsigned, key, options).at(vector)?;
    let verified = credential::verify(&signed, &w.resolver()).at(vector)?;
    ensure(
        vector,
        verified.cryptosuite == Cryptosuite::for_algorithm(key.algorithm())
            && verified.verification_method == options.verification_method,
        || format!("verified as {verified:?}"),
    )?;
    Ok(signed)
}

fn proof_map<'a>(
    vector: &'static str,
    signed: &'a Credential,
) -> Result<&'a Map<String, Value>, VectorError> {
    signed
        .proof_value()
        .and_then(Value::as_object)
        .ok_or_else(|| VectorError::SelfCheck {
            vector: vector.into(),
            what: "signed credential has no proof object".into(),
        })
}

fn proof_value_text<'a>(
    vector: &'static str,
    signed: &'a Credential,
) -> Result<&'a str, VectorError> {
    proof_map(vector, signed)?
        .get("proofValue")
        .and_then(Value::as_str)
        .ok_or_else(|| VectorError::SelfCheck {
            vector: vector.into(),
            what: "proof has no proofValue".into(),
        })
}

// ---------------------------------------------------------------------------------------
// adc-mldsa65 / adc-slhdsa192s
// ---------------------------------------------------------------------------------------

/// Tamper step recorded in the ADC vectors: the visible limit raised tenfold.
pub const TAMPERED_AMOUNT: i64 = 50_000;

fn adc_vector(w: &World, vector: &'static str, key_n: usize) -> Result<Value, VectorError> {
    let adc = w.adc(
        vector,
        ADC_ID,
        w.status(vector, 0)?,
        World::visible_limit(vector)?,
        None,
    )?;
    let unsigned = adc.to_unsigned_credential().at(vector)?;
    let key = w.principal.key(vector, key_n)?;
    let options = sign_options(&w.principal, key_n, vector)?;
    let signed = sign_checked(w, vector, &unsigned, key, &options)?;

    // The ADC reads back as what was issued.
    let back = AuthorityDelegation::from_credential(&signed).at(vector)?;
    ensure(vector, back == adc, || "ADC does not read back".into())?;

    // Intermediate values of PROFILE G-34, recomputed independently of `sign`.
    let proof = proof_map(vector, &signed)?;
    let config = credential::proof_config(&unsigned, proof);
    let config_nquads = jsonld::canonicalize(&Value::Object(config.clone())).at(vector)?;
    let document_nquads = unsigned.canonical_nquads().at(vector)?;
    ensure(
        vector,
        signed.canonical_nquads().at(vector)? == document_nquads,
        || "canonical N-Quads depend on the proof".into(),
    )?;
    let hash_data = credential::hash_data(&unsigned, proof).at(vector)?;
    let mut recomputed = sha256(config_nquads.as_bytes()).to_vec();
    recomputed.extend_from_slice(&sha256(document_nquads.as_bytes()));
    ensure(vector, hash_data == recomputed, || {
        "hashData is not SHA-256(config) || SHA-256(document)".into()
    })?;
    let proof_value = proof_value_text(vector, &signed)?;
    let signature = credential::decode_proof_value(proof_value).at(vector)?;
    ensure(
        vector,
        key.public_key().verify(&hash_data, &signature).is_ok(),
        || "signature does not verify over hashData".into(),
    )?;

    // Negative: the visible limit raised after signing.
    let mut tampered = signed.clone();
    if let Some(m) = tampered
        .as_map_mut()
        .get_mut("credentialSubject")
        .and_then(|s| s.get_mut("maxTransactionValue"))
        .and_then(Value::as_object_mut)
    {
        m.insert("amount".into(), TAMPERED_AMOUNT.into());
    }
    let tampered_result = credential::verify(&tampered, &w.resolver());
    ensure(vector, tampered_result.is_err(), || {
        "tampered credential verifies".into()
    })?;

    let suite = Cryptosuite::for_algorithm(key.algorithm());
    let (seeds, documents) = w.seeds_and_documents(vector, &[&w.principal, &w.agent], &[])?;
    let mut inputs = seed_header();
    inputs.insert("seeds".into(), seeds);
    inputs.insert("did_documents".into(), documents);
    inputs.insert(
        "signing_key".into(),
        json!({
            "verificationMethod": options.verification_method,
            "algorithm": key.algorithm().label(),
        }),
    );
    inputs.insert("proof_options".into(), proof_options_json(&options));
    inputs.insert("unsigned_credential".into(), unsigned.to_value());
    inputs.insert(
        "tamper".into(),
        json!({
            "pointer": "/credentialSubject/maxTransactionValue/amount",
            "value": TAMPERED_AMOUNT,
        }),
    );

    let expected = json!({
        "signed_credential": signed.to_value(),
        "cryptosuite": suite.label(),
        "proof_config": Value::Object(config),
        "canonical_proof_config_nquads": config_nquads,
        "canonical_document_nquads": document_nquads,
        "hash_data": hex::encode(&hash_data),
        "signature_length": signature.len(),
        "proof_value": proof_value,
        "verification": true,
        "tampered_verification": false,
        "tampered_error": tampered_result.err().map(|e| e.to_string()),
    });

    let (requirements, description): (&[&str], String) = match key.algorithm() {
        SignatureAlgorithm::SlhDsaSha2_192s => (
            &[
                "SPEC-III-A-1-04",
                "SPEC-III-A-1-05",
                "SPEC-III-A-2-01",
                "SPEC-III-A-2-03",
                "SPEC-III-A-2-I01",
                "SPEC-II-B-04",
                "BIND-III-A-I01",
                "BIND-III-A-I02",
                "SPEC-VIII-A-07",
                "SPEC-VIII-A-06",
                "BIND-VI-C-01",
                "BIND-VI-C-03",
                "BIND-VI-C-I01",
                "BIND-III-B-01",
                "BIND-III-B-02",
                "BIND-III-B-03",
                "BIND-III-B-04",
                "BIND-III-B-05",
            ],
            format!(
                "Authority Delegation Certificate (MTPAuthorityDelegation) Principal -> Agent \
                 with a StatusList2021Entry, DataIntegrityProof {} (SLH-DSA-SHA2-192s over \
                 RDFC-1.0, PROFILE G-34/G-39). hashData = SHA-256(canonical proof config) || \
                 SHA-256(canonical document); proofValue = 'z' base58btc(signature). Raising \
                 the limit after signing breaks the proof.",
                suite.label()
            ),
        ),
        _ => (
            &[
                "SPEC-III-A-1-04",
                "SPEC-III-A-1-05",
                "SPEC-III-A-2-01",
                "SPEC-III-A-2-03",
                "SPEC-III-A-2-I01",
                "SPEC-II-B-04",
                "BIND-III-A-I01",
                "BIND-III-A-I02",
                "BIND-III-A-01",
                "BIND-III-B-01",
                "BIND-III-B-02",
                "BIND-III-B-03",
                "BIND-III-B-04",
                "BIND-III-B-05",
            ],
            format!(
                "Authority Delegation Certificate (MTPAuthorityDelegation) Principal -> Agent \
                 with a StatusList2021Entry, DataIntegrityProof {} (ML-DSA-65 over RDFC-1.0, \
                 PROFILE G-34). hashData = SHA-256(canonical proof config) || \
                 SHA-256(canonical document); proofValue = 'z' base58btc(signature). Raising \
                 the limit after signing breaks the proof.",
                suite.label()
            ),
        ),
    };
    Ok(vector_doc(
        vector,
        requirements,
        &description,
        Value::Object(inputs),
        expected,
    ))
}

// ---------------------------------------------------------------------------------------
// sd-2-of-5
// ---------------------------------------------------------------------------------------

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

fn sd_vector(w: &World) -> Result<Value, VectorError> {
    const V: &str = SD_2_OF_5;
    let adc = w.adc(V, SD_ID, w.status(V, 1)?, World::visible_limit(V)?, None)?;
    let unsigned = adc.to_unsigned_credential().at(V)?;
    let options = sign_options(&w.principal, 1, V)?;
    let mut rng = SeededRng::from_master(&MASTER, LABEL_SD_SALTS);
    let sd = disclosure::issue(
        &unsigned,
        &SD_DISCLOSABLE,
        SD_DECOYS,
        &mut rng,
        w.principal.key(V, 1)?,
        &options,
    )
    .at(V)?;
    credential::verify(&sd.credential, &w.resolver()).at(V)?;

    let request_id = w.request_id(V)?;
    let nonce = disclosure::nonce_for(&request_id);
    let aud = w.counterparty.did.to_string();
    let kid = w.agent.vm(1);
    let iat = ts(V, REQUEST_TIME)?;
    let kb = KeyBinding {
        holder_key: w.agent.key(V, 1)?,
        verification_method: &kid,
        nonce: &nonce,
        aud: &aud,
        iat,
    };
    let presentation = disclosure::present(&sd, &SD_REVEAL, &kb).at(V)?;

    // Self-verification.
    let vp = disclosure::verify_presentation(&presentation, &w.resolver(), &nonce, &aud).at(V)?;
    let mut disclosed = vp.disclosed.clone();
    disclosed.sort();
    let mut reveal: Vec<String> = SD_REVEAL.iter().map(|s| (*s).to_owned()).collect();
    reveal.sort();
    ensure(V, disclosed == reveal, || {
        format!("disclosed {:?}", vp.disclosed)
    })?;
    let undisclosed_expected = SD_DISCLOSABLE.len() - SD_REVEAL.len() + SD_DECOYS;
    ensure(V, vp.undisclosed == undisclosed_expected, || {
        format!("{} undisclosed digests", vp.undisclosed)
    })?;
    for d in &sd.disclosures {
        let revealed = SD_REVEAL.contains(&d.name());
        ensure(V, presentation.contains(d.as_str()) == revealed, || {
            format!("disclosure of {} present: {}", d.name(), !revealed)
        })?;
    }
    let wrong_nonce =
        disclosure::verify_presentation(&presentation, &w.resolver(), "not-the-nonce", &aud);
    ensure(V, wrong_nonce.is_err(), || {
        "presentation verifies with another nonce".into()
    })?;

    // The key-binding payload, decoded for readers.
    let kb_text = presentation.rsplit('~').next().unwrap_or_default();
    let kb_payload: Value = match kb_text.split_once('.') {
        Some((first, _)) => {
            let bytes = input(V, b64().decode(first))?;
            serde_json::from_slice(&bytes).at(V)?
        }
        None => {
            return Err(VectorError::SelfCheck {
                vector: V.into(),
                what: "key binding is not payload.signature".into(),
            });
        }
    };

    let (seeds, documents) = w.seeds_and_documents(
        V,
        &[&w.principal, &w.agent],
        &[
            (
                LABEL_SD_SALTS,
                "SeededRng seed of the disclosure salts, then the decoys",
            ),
            (
                LABEL_REQUEST_RANDOM,
                "SeededRng seed of the request_id random bytes",
            ),
        ],
    )?;
    let mut inputs = seed_header();
    inputs.insert("seeds".into(), seeds);
    inputs.insert("did_documents".into(), documents);
    inputs.insert("unsigned_credential".into(), unsigned.to_value());
    inputs.insert("proof_options".into(), proof_options_json(&options));
    inputs.insert("disclosable".into(), json!(SD_DISCLOSABLE));
    inputs.insert("decoys".into(), json!(SD_DECOYS));
    inputs.insert("reveal".into(), json!(SD_REVEAL));
    inputs.insert(
        "key_binding".into(),
        json!({
            "kid": kid,
            "request_id": request_id.to_string(),
            "nonce": nonce,
            "aud": aud,
            "iat": iat.unix_secs(),
        }),
    );

    let disclosures: Vec<Value> = sd
        .disclosures
        .iter()
        .map(|d| {
            json!({
                "name": d.name(),
                "salt": d.salt(),
                "value": d.value(),
                "disclosure": d.as_str(),
                "digest": d.digest(),
            })
        })
        .collect();
    let expected = json!({
        "sd_credential": sd.credential.to_value(),
        "disclosures": disclosures,
        "presentation": presentation,
        "key_binding_payload": kb_payload,
        "holder": vp.holder,
        "disclosed": vp.disclosed,
        "claims": Value::Object(vp.claims.clone()),
        "undisclosed_digests": vp.undisclosed,
        "verification": true,
        "wrong_nonce_verification": false,
    });
    Ok(vector_doc(
        V,
        &[
            "SPEC-III-A-1-06",
            "SPEC-III-A-1-07",
            "BIND-III-C-01",
            "BIND-III-A-01",
            "SPEC-II-B-04",
        ],
        "Selective disclosure (SD-JWT adapted to JSON-LD, PROFILE G-35): an ADC whose five \
         claims maxTransactionValue, permittedJurisdictions, permittedPaymentRails, \
         permittedCounterpartyClasses and constraints are replaced by salted digests in \
         credentialSubject._sd (sorted, plus 2 decoys), signed mtp-mldsa-2026; a \
         presentation <base64url(credential)>~<disclosure>~<disclosure>~<kb> revealing exactly \
         maxTransactionValue and permittedJurisdictions, key-bound by the Agent (nonce = the \
         Request's request_id, aud = the counterparty DID). The other three disclosures do not \
         appear; 5 digests stay undisclosed; another nonce fails.",
        Value::Object(inputs),
        expected,
    ))
}

// ---------------------------------------------------------------------------------------
// zk-range
// ---------------------------------------------------------------------------------------

struct ZkOut {
    json: Value,
    cbor: Vec<u8>,
    diag: String,
}

fn zk_amount(vector: &'static str) -> Result<PriceSpec, VectorError> {
    Ok(PriceSpec::new(
        Number::Float(ZK_AMOUNT),
        input(vector, PriceUnit::parse(ZK_CURRENCY))?,
    ))
}

fn zk_vector(w: &World) -> Result<ZkOut, VectorError> {
    const V: &str = ZK_RANGE;
    let secret = seed::derive(&MASTER, LABEL_ZK_HOLDER_SECRET);
    let limit = MinorAmount::new(ZK_LIMIT_UNITS, ZK_CURRENCY);
    let options = sign_options(&w.principal, 1, V)?;
    let key = w.principal.key(V, 1)?;

    // The credential and a second one with the same limit (another id and status index).
    let issue =
        |id: &str, status: usize| -> Result<(Credential, MaxValueCommitment), VectorError> {
            let commitment = MaxValueCommitment::commit(&limit, &secret, id).at(V)?;
            let adc = w.adc(
                V,
                id,
                w.status(V, status)?,
                MaxTransactionValue::hidden(ZK_CURRENCY).at(V)?,
                Some(commitment.point),
            )?;
            let unsigned = adc.to_unsigned_credential().at(V)?;
            let signed = sign_checked(w, V, &unsigned, key, &options)?;
            let amount_visible = signed
                .subject()
                .and_then(|s| s.get("maxTransactionValue"))
                .is_some_and(|m| m.get("amount").is_some());
            ensure(V, !amount_visible, || "the limit is visible".into())?;
            let from_credential = MaxValueCommitment::from_credential(&signed).at(V)?;
            ensure(V, from_credential == commitment, || {
                "maxTransactionValueCommitment does not read back".into()
            })?;
            Ok((signed, commitment))
        };
    let (cred, commitment) = issue(ZK_ID, 2)?;
    let (other, other_commitment) = issue(ZK_OTHER_ID, 3)?;

    let amount = zk_amount(V)?;
    let amount_minor = MinorAmount::from_price_spec(&amount).at(V)?;
    let request_id = w.request_id(V)?;
    let counterparty = w.counterparty.did.to_string();
    let ctx = ProofContext::for_credential(&request_id, &counterparty, &cred).at(V)?;
    let proof = ap::prove(&limit, &secret, ZK_ID, &amount, &ctx).at(V)?;

    // Determinism (BIND-III-C-04) and verification.
    let again = ap::prove(&limit, &secret, ZK_ID, &amount, &ctx).at(V)?;
    ensure(V, again == proof, || "proving twice differs".into())?;
    ap::verify(&commitment, &amount, &ctx, &proof).at(V)?;
    let cbor = proof.to_cbor().at(V)?;
    let decoded = ZkRangeProof::from_cbor(&cbor).at(V)?;
    ensure(V, decoded == proof, || "CBOR does not round-trip".into())?;
    let diag = diag::value_to_diag(&proof.to_value());

    // Negative: the proof against the second credential.
    let other_ctx = ProofContext::for_credential(&request_id, &counterparty, &other).at(V)?;
    let other_result = ap::verify(&other_commitment, &amount, &other_ctx, &proof);
    ensure(V, other_result.is_err(), || {
        "the proof verifies against another credential".into()
    })?;

    let (seeds, documents) = w.seeds_and_documents(
        V,
        &[&w.principal, &w.agent, &w.counterparty],
        &[
            (LABEL_ZK_HOLDER_SECRET, "holder secret of the hidden limit"),
            (
                LABEL_REQUEST_RANDOM,
                "SeededRng seed of the request_id random bytes",
            ),
        ],
    )?;
    let mut inputs = seed_header();
    inputs.insert("seeds".into(), seeds);
    inputs.insert("did_documents".into(), documents);
    inputs.insert("holder_secret".into(), hex::encode(secret).into());
    inputs.insert(
        "limit".into(),
        json!({"amount": "5000.00", "currency": ZK_CURRENCY, "minor_units": ZK_LIMIT_UNITS}),
    );
    inputs.insert(
        "amount".into(),
        json!({"amount": ZK_AMOUNT, "unit": ZK_CURRENCY, "minor_units": amount_minor.units}),
    );
    inputs.insert("request_id".into(), request_id.to_string().into());
    inputs.insert(
        "request_id_hex".into(),
        hex::encode(request_id.as_bytes()).into(),
    );
    inputs.insert("counterparty".into(), counterparty.clone().into());
    inputs.insert("proof_options".into(), proof_options_json(&options));
    inputs.insert("credential".into(), cred.to_value());
    inputs.insert("other_credential".into(), other.to_value());

    let expected = json!({
        "commitment": hex::encode(commitment.point),
        "commitment_claim": commitment.to_claim(),
        "other_commitment": hex::encode(other_commitment.point),
        "credential_binding": hex::encode(ctx.credential_binding),
        "proof": hex::encode(&proof.proof),
        "proof_length": proof.proof.len(),
        "authority_proof_cbor": hex::encode(&cbor),
        "authority_proof_diag": diag,
        "verification": true,
        "expected_other_credential": false,
        "other_credential_error": other_result.err().map(|e| e.to_string()),
    });
    let json = vector_doc(
        V,
        &[
            "SPEC-III-A-1-08",
            "BIND-III-C-02",
            "BIND-III-C-03",
            "BIND-III-C-04",
            "BIND-III-C-I01",
            "BIND-III-B-01",
            "BIND-III-A-01",
            "SPEC-II-B-04",
        ],
        "Zero-knowledge authority proof (PROFILE G-36): an ADC with a hidden limit \
         (maxTransactionValue {currency: USD} + maxTransactionValueCommitment = base64url of \
         C_max = max*B + r*B_blinding on Ristretto, r = HKDF-SHA-256(holder_secret, info = \
         \"MTP-Authority-v1/blinding/\" || credential id)), and a zk_range authority proof \
         (64-bit Bulletproofs range proof that max - amount >= 0) for 1234.56 USD bound to \
         the request_id, the counterparty DID and SHA-256 of the credential's proofValue. \
         zk-range.cbor is the deterministic CBOR of the authority-proof map, zk-range.diag its \
         diagnostic notation. The same proof checked against a second credential with the same \
         limit (other id, so other commitment and binding) fails.",
        Value::Object(inputs),
        expected,
    );
    Ok(ZkOut { json, cbor, diag })
}
