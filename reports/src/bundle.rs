//! The certification bundle, format `mtp-cert-bundle/1` (documented in
//! `docs/report-schema.md`): a deterministic-CBOR document (BIND IV-A) that says what was
//! tested, with what, and what was observed, signed with ML-DSA-65 (SPEC VIII-A, PROFILE
//! G-02) by the operator, whose `did:mtp` (BIND II-A, PROFILE G-05) is derived from the
//! signing key.
//!
//! ```text
//! bundle    = { "payload": bstr,        ; deterministic CBOR of the payload map
//!               "signature": { "alg": "ML-DSA-65", "key": bstr, "did": tstr, "value": bstr } }
//! signed    = "mtp-cert-bundle/1" || 0x00 || payload
//! ```
//!
//! The signature covers the payload bytes as carried, so verification never re-encodes.
//! [`verify`] checks structure, deterministic encoding (outer document and payload), the
//! DID ↔ key binding, the signature, and that the recorded decision follows from the
//! recorded verdicts.

use std::fmt;
use std::path::Path;

use mtp_protocol::cbor::{self, DecodeError, EncodeError, Value};
use mtp_protocol::crypto::{CryptoError, PublicKey, SignatureAlgorithm, SigningKey, sha256};
use mtp_protocol::identity::{Did, DidError};
use mtp_protocol::time::Timestamp;

use crate::model::{
    Ics, Layer, Level, OptionalAlgorithm, Role, RunResults, ScenarioResult, Verdict,
};
use crate::view::direction_name;

/// Format identifier of the bundle (the payload's `format`).
pub const BUNDLE_FORMAT: &str = "mtp-cert-bundle/1";
/// Prefix of the signed message: the format id and a zero byte (domain separation).
pub const SIGNING_PREFIX: &[u8] = b"mtp-cert-bundle/1\0";
/// The one signature algorithm of format 1.
pub const BUNDLE_ALGORITHM: SignatureAlgorithm = SignatureAlgorithm::MlDsa65;

/// Why a bundle cannot be built or does not verify.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot encode the bundle: {0}")]
    Encode(#[from] EncodeError),
    #[error("{what} is not well-formed CBOR: {source}")]
    Malformed {
        what: &'static str,
        #[source]
        source: DecodeError,
    },
    #[error("{what} is not deterministically encoded (BIND IV-A): {source}")]
    NotDeterministic {
        what: &'static str,
        #[source]
        source: DecodeError,
    },
    #[error("bad bundle structure: {0}")]
    Structure(String),
    #[error("unsupported bundle format `{0}` (expected `{BUNDLE_FORMAT}`)")]
    Format(String),
    #[error("unsupported signature algorithm `{0}` (expected ML-DSA-65)")]
    Algorithm(String),
    #[error("bad operator DID: {0}")]
    Did(#[from] DidError),
    #[error("the signature block names {signature} but the payload names {payload}")]
    OperatorMismatch { signature: String, payload: String },
    #[error("signature does not verify: {0}")]
    Signature(#[from] CryptoError),
    #[error("{field}: not an RFC 3339 date-time: {value:?}")]
    Timestamp { field: String, value: String },
    #[error("the IUT description given hashes to {actual}, the run header records {expected}")]
    IutDescription { expected: String, actual: String },
    #[error("{list} lists `{path}` twice")]
    DuplicatePath { list: &'static str, path: String },
    #[error("the recorded decision does not follow from the recorded verdicts: {0}")]
    Decision(String),
}

/// The operator's signing identity: an ML-DSA-65 key and its `did:mtp`.
pub struct BundleSigner {
    key: SigningKey,
    public: PublicKey,
    did: Did,
}

impl fmt::Debug for BundleSigner {
    /// Never prints key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BundleSigner")
            .field("did", &self.did.as_str())
            .finish_non_exhaustive()
    }
}

impl BundleSigner {
    /// Deterministic ML-DSA-65 key from a 32-byte seed (FIPS 204 ξ).
    pub fn from_seed(seed: [u8; 32]) -> BundleSigner {
        let key = SigningKey::from_seed(BUNDLE_ALGORITHM, &seed);
        let public = key.public_key();
        // A key generated for ML-DSA-65 always has the ML-DSA-65 length: derive cannot fail.
        let did = Did::derive(BUNDLE_ALGORITHM, public.as_bytes())
            .unwrap_or_else(|_| Did::from_digest(sha256(public.as_bytes())));
        BundleSigner { key, public, did }
    }

    pub fn did(&self) -> &Did {
        &self.did
    }

    /// Raw FIPS 204 public key.
    pub fn public_key(&self) -> &[u8] {
        self.public.as_bytes()
    }
}

/// What the caller adds to the run's results.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BundleInputs {
    /// `(path, SHA-256)` of every scenario file loaded.
    pub scenario_files: Vec<(String, [u8; 32])>,
    /// `(path, SHA-256)` of every vector file used.
    pub vector_files: Vec<(String, [u8; 32])>,
    /// SHA-256 of the `mtp-cert` binary that ran the suite.
    pub binary_sha256: [u8; 32],
    /// The IUT description file as read; must hash to the header's `description_sha256`.
    pub iut_description: String,
    /// When the bundle is issued (RFC 3339; the caller's clock).
    pub issued: String,
}

/// SHA-256 of a file's bytes (for [`BundleInputs`]).
pub fn file_sha256(path: &Path) -> std::io::Result<[u8; 32]> {
    std::fs::read(path).map(|b| sha256(&b))
}

/// SHA-256 over the deterministic CBOR of a scenario's transcript: an array, in step order,
/// of `{step, direction, channel, frame_type, diag, hash}` maps (`step` the step index, the
/// others the model's strings).
pub fn transcript_hash(r: &ScenarioResult) -> Result<[u8; 32], EncodeError> {
    let entries: Vec<Value> = r
        .steps
        .iter()
        .flat_map(|s| {
            s.transcript.iter().map(move |e| {
                Value::map([
                    ("step", Value::Integer(i128::from(s.index))),
                    ("direction", Value::text(direction_name(e.direction))),
                    ("channel", Value::text(e.channel.as_str())),
                    ("frame_type", Value::text(e.frame_type.as_str())),
                    ("diag", Value::text(e.diag.as_str())),
                    ("hash", Value::text(e.hash.as_str())),
                ])
            })
        })
        .collect();
    Ok(sha256(&cbor::to_vec(&Value::Array(entries))?))
}

/// The certification decision derived from verdicts.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Decision {
    certified: bool,
    mandatory_not_passed: Vec<String>,
    errors: Vec<String>,
}

/// Certified only when every applicable MUST scenario passed, at least one did, no scenario
/// ended in `error`, and an IUT was contacted (not the dry-run executor).
fn decide<'a>(
    scenarios: impl IntoIterator<Item = (&'a str, Level, Verdict)>,
    executor: &str,
) -> Decision {
    let mut mandatory_not_passed = Vec::new();
    let mut errors = Vec::new();
    let mut must_passed = false;
    for (id, level, verdict) in scenarios {
        if level == Level::Must {
            match verdict {
                Verdict::Pass => must_passed = true,
                Verdict::NotApplicable => {}
                _ => mandatory_not_passed.push(id.to_owned()),
            }
        }
        if verdict == Verdict::Error {
            errors.push(id.to_owned());
        }
    }
    mandatory_not_passed.sort();
    errors.sort();
    Decision {
        certified: mandatory_not_passed.is_empty()
            && errors.is_empty()
            && must_passed
            && executor != "dry-run",
        mandatory_not_passed,
        errors,
    }
}

/// Builds and signs the bundle of a run.
pub fn build(
    results: &RunResults,
    inputs: &BundleInputs,
    signer: &BundleSigner,
) -> Result<Vec<u8>, BundleError> {
    let h = &results.header;
    let description_sha256 = sha256(inputs.iut_description.as_bytes());
    if hex::encode(description_sha256) != h.iut.description_sha256.to_ascii_lowercase() {
        return Err(BundleError::IutDescription {
            expected: h.iut.description_sha256.clone(),
            actual: hex::encode(description_sha256),
        });
    }
    let mut scenarios = results.results.clone();
    scenarios.sort_by(|a, b| a.scenario_id.cmp(&b.scenario_id));

    let decision = decide(
        scenarios
            .iter()
            .map(|r| (r.scenario_id.as_str(), r.level, r.verdict)),
        &h.executor,
    );
    let mut reasons = Vec::new();
    for r in &scenarios {
        if decision.mandatory_not_passed.contains(&r.scenario_id) {
            reasons.push(format!(
                "{}: applicable MUST scenario ended {}: {}",
                r.scenario_id, r.verdict, r.reason
            ));
        } else if r.verdict == Verdict::Error {
            reasons.push(format!(
                "{}: ended in error ({} scenario): {}",
                r.scenario_id,
                r.level.keyword(),
                r.reason
            ));
        }
    }
    if h.executor == "dry-run" {
        reasons.push("dry run: no IUT was contacted".to_owned());
    }
    if !scenarios
        .iter()
        .any(|r| r.level == Level::Must && r.verdict == Verdict::Pass)
        && decision.mandatory_not_passed.is_empty()
    {
        reasons.push("no applicable MUST scenario was run".to_owned());
    }

    let finished = scenarios
        .iter()
        .map(|r| r.finished.as_str())
        .max()
        .unwrap_or(h.started.as_str());
    let mut scenario_values = Vec::with_capacity(scenarios.len());
    for r in &scenarios {
        scenario_values.push(Value::map([
            ("id", Value::text(r.scenario_id.as_str())),
            ("title", Value::text(r.title.as_str())),
            ("layer", Value::text(r.layer.name())),
            ("level", Value::text(r.level.keyword())),
            ("verdict", Value::text(r.verdict.name())),
            ("requirements", text_array(&r.requirements)),
            ("reason", Value::text(r.reason.as_str())),
            ("seed", Value::Integer(i128::from(r.seed))),
            (
                "transcript_sha256",
                Value::bytes(transcript_hash(r)?.to_vec()),
            ),
        ]));
    }
    let payload = Value::map([
        ("format", Value::text(BUNDLE_FORMAT)),
        ("suite_version", Value::text(h.suite_version.as_str())),
        ("results_schema", Value::text(results.schema.as_str())),
        ("issued", tdate("issued", &inputs.issued)?),
        (
            "run",
            Value::map([
                ("seed", Value::Integer(i128::from(h.seed))),
                ("started", tdate("run.started", &h.started)?),
                ("finished", tdate("run.finished", finished)?),
                ("executor", Value::text(h.executor.as_str())),
                (
                    "wall_ms",
                    Value::Integer(i128::from(results.summary.wall_ms)),
                ),
            ]),
        ),
        (
            "iut",
            Value::map([
                ("name", Value::text(h.iut.name.as_str())),
                ("description", Value::text(inputs.iut_description.as_str())),
                (
                    "description_sha256",
                    Value::bytes(description_sha256.to_vec()),
                ),
                ("ics", ics_value(&h.ics)),
            ]),
        ),
        (
            "hashes",
            Value::map([
                ("binary", Value::bytes(inputs.binary_sha256.to_vec())),
                (
                    "scenarios",
                    files_value("scenario_files", &inputs.scenario_files)?,
                ),
                (
                    "vectors",
                    files_value("vector_files", &inputs.vector_files)?,
                ),
            ]),
        ),
        ("scenarios", Value::Array(scenario_values)),
        (
            "decision",
            Value::map([
                ("certified", Value::Bool(decision.certified)),
                (
                    "mandatory_not_passed",
                    text_array(&decision.mandatory_not_passed),
                ),
                ("errors", text_array(&decision.errors)),
                ("reasons", text_array(&reasons)),
            ]),
        ),
        (
            "operator",
            Value::map([
                ("did", Value::text(signer.did.as_str())),
                ("alg", Value::text(BUNDLE_ALGORITHM.label())),
            ]),
        ),
    ]);
    let payload = cbor::to_vec(&payload)?;
    let mut message = SIGNING_PREFIX.to_vec();
    message.extend_from_slice(&payload);
    let signature = signer.key.sign(&message);
    Ok(cbor::to_vec(&Value::map([
        ("payload", Value::Bytes(payload)),
        (
            "signature",
            Value::map([
                ("alg", Value::text(BUNDLE_ALGORITHM.label())),
                ("key", Value::bytes(signer.public_key().to_vec())),
                ("did", Value::text(signer.did.as_str())),
                ("value", Value::Bytes(signature)),
            ]),
        ),
    ]))?)
}

fn text_array(items: &[String]) -> Value {
    Value::Array(items.iter().map(|s| Value::text(s.as_str())).collect())
}

fn tdate(field: &str, s: &str) -> Result<Value, BundleError> {
    let t = Timestamp::parse_lenient(s).map_err(|_| BundleError::Timestamp {
        field: field.to_owned(),
        value: s.to_owned(),
    })?;
    Ok(Value::Tag(0, Box::new(Value::text(t.to_rfc3339()))))
}

fn ics_value(ics: &Ics) -> Value {
    let names = |v: Vec<&str>| Value::Array(v.into_iter().map(Value::text).collect());
    Value::map([
        ("roles", names(ics.roles.iter().map(|r| r.name()).collect())),
        (
            "algorithms",
            names(ics.algorithms.iter().map(|a| a.name()).collect()),
        ),
        ("price_units", text_array(&ics.price_units)),
        (
            "verification_methods",
            text_array(&ics.verification_methods),
        ),
        ("extensions", text_array(&ics.extensions)),
        ("settlement_rails", text_array(&ics.settlement_rails)),
    ])
}

fn files_value(list: &'static str, files: &[(String, [u8; 32])]) -> Result<Value, BundleError> {
    let mut sorted: Vec<&(String, [u8; 32])> = files.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(w) = sorted.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(BundleError::DuplicatePath {
            list,
            path: w[0].0.clone(),
        });
    }
    Ok(Value::Array(
        sorted
            .into_iter()
            .map(|(p, h)| {
                Value::map([
                    ("path", Value::text(p.as_str())),
                    ("sha256", Value::bytes(h.to_vec())),
                ])
            })
            .collect(),
    ))
}

/// A scenario as recorded in a bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleScenario {
    pub id: String,
    pub title: String,
    pub layer: Layer,
    pub level: Level,
    pub verdict: Verdict,
    pub requirements: Vec<String>,
    pub reason: String,
    pub seed: u64,
    pub transcript_sha256: [u8; 32],
}

/// A bundle whose structure, encoding, DID binding, signature and decision verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedBundle {
    pub suite_version: String,
    pub results_schema: String,
    pub issued: String,
    pub run_seed: u64,
    pub run_started: String,
    pub run_finished: String,
    pub executor: String,
    pub wall_ms: u64,
    pub iut_name: String,
    pub iut_description: String,
    pub iut_description_sha256: [u8; 32],
    pub ics: Ics,
    pub binary_sha256: [u8; 32],
    pub scenario_files: Vec<(String, [u8; 32])>,
    pub vector_files: Vec<(String, [u8; 32])>,
    pub scenarios: Vec<BundleScenario>,
    pub certified: bool,
    pub mandatory_not_passed: Vec<String>,
    pub errors: Vec<String>,
    pub reasons: Vec<String>,
    pub operator_did: Did,
    /// Raw ML-DSA-65 public key of the operator.
    pub operator_key: Vec<u8>,
    /// SHA-256 of the signed payload bytes.
    pub payload_sha256: [u8; 32],
}

/// Verifies a bundle (see the module doc) and returns what it attests.
pub fn verify(bytes: &[u8]) -> Result<VerifiedBundle, BundleError> {
    let outer = decode("the bundle", bytes)?;
    let m = Fields::new(&outer, "bundle", &["payload", "signature"])?;
    let payload_bytes = m.bytes("payload")?;
    let sig = Fields::new(
        m.get("signature")?,
        "signature",
        &["alg", "key", "did", "value"],
    )?;
    let alg = sig.text("alg")?;
    if alg != BUNDLE_ALGORITHM.label() {
        return Err(BundleError::Algorithm(alg.to_owned()));
    }
    let key = sig.bytes("key")?;
    let did = Did::parse(sig.text("did")?)?;
    did.verify_key(BUNDLE_ALGORITHM, key)?;
    let public = PublicKey::from_bytes(BUNDLE_ALGORITHM, key)?;
    let mut message = SIGNING_PREFIX.to_vec();
    message.extend_from_slice(payload_bytes);
    public.verify(&message, sig.bytes("value")?)?;

    let payload = decode("the payload", payload_bytes)?;
    let p = Fields::new(
        &payload,
        "payload",
        &[
            "format",
            "suite_version",
            "results_schema",
            "issued",
            "run",
            "iut",
            "hashes",
            "scenarios",
            "decision",
            "operator",
        ],
    )?;
    let format = p.text("format")?;
    if format != BUNDLE_FORMAT {
        return Err(BundleError::Format(format.to_owned()));
    }
    let op = Fields::new(p.get("operator")?, "operator", &["did", "alg"])?;
    if op.text("did")? != did.as_str() || op.text("alg")? != alg {
        return Err(BundleError::OperatorMismatch {
            signature: format!("{} ({alg})", did.as_str()),
            payload: format!("{} ({})", op.text("did")?, op.text("alg")?),
        });
    }
    let run = Fields::new(
        p.get("run")?,
        "run",
        &["seed", "started", "finished", "executor", "wall_ms"],
    )?;
    let iut = Fields::new(
        p.get("iut")?,
        "iut",
        &["name", "description", "description_sha256", "ics"],
    )?;
    let iut_description = iut.text("description")?.to_owned();
    let iut_description_sha256 = iut.hash("description_sha256")?;
    if sha256(iut_description.as_bytes()) != iut_description_sha256 {
        return Err(BundleError::Structure(
            "iut.description does not hash to iut.description_sha256".into(),
        ));
    }
    let hashes = Fields::new(
        p.get("hashes")?,
        "hashes",
        &["binary", "scenarios", "vectors"],
    )?;
    let mut scenarios = Vec::new();
    for v in p.array("scenarios")? {
        scenarios.push(parse_scenario(v)?);
    }
    if scenarios.windows(2).any(|w| w[0].id >= w[1].id) {
        return Err(BundleError::Structure(
            "scenarios are not sorted by unique id".into(),
        ));
    }
    let executor = run.text("executor")?.to_owned();
    let dec = Fields::new(
        p.get("decision")?,
        "decision",
        &["certified", "mandatory_not_passed", "errors", "reasons"],
    )?;
    let recorded = Decision {
        certified: dec.bool("certified")?,
        mandatory_not_passed: dec.texts("mandatory_not_passed")?,
        errors: dec.texts("errors")?,
    };
    let reasons = dec.texts("reasons")?;
    let derived = decide(
        scenarios
            .iter()
            .map(|s| (s.id.as_str(), s.level, s.verdict)),
        &executor,
    );
    if recorded != derived {
        return Err(BundleError::Decision(format!(
            "recorded certified={} mandatory_not_passed={:?} errors={:?}, derived certified={} mandatory_not_passed={:?} errors={:?}",
            recorded.certified,
            recorded.mandatory_not_passed,
            recorded.errors,
            derived.certified,
            derived.mandatory_not_passed,
            derived.errors
        )));
    }
    if recorded.certified != reasons.is_empty() {
        return Err(BundleError::Decision(
            "a certified bundle lists no reasons, a non-certified one at least one".into(),
        ));
    }
    Ok(VerifiedBundle {
        suite_version: p.text("suite_version")?.to_owned(),
        results_schema: p.text("results_schema")?.to_owned(),
        issued: p.tdate("issued")?,
        run_seed: run.uint("seed")?,
        run_started: run.tdate("started")?,
        run_finished: run.tdate("finished")?,
        executor,
        wall_ms: run.uint("wall_ms")?,
        iut_name: iut.text("name")?.to_owned(),
        iut_description,
        iut_description_sha256,
        ics: parse_ics(iut.get("ics")?)?,
        binary_sha256: hashes.hash("binary")?,
        scenario_files: parse_files(hashes.array("scenarios")?)?,
        vector_files: parse_files(hashes.array("vectors")?)?,
        scenarios,
        certified: recorded.certified,
        mandatory_not_passed: recorded.mandatory_not_passed,
        errors: recorded.errors,
        reasons,
        operator_did: did,
        operator_key: key.to_vec(),
        payload_sha256: sha256(payload_bytes),
    })
}

fn decode(what: &'static str, bytes: &[u8]) -> Result<Value, BundleError> {
    cbor::from_slice(bytes).map_err(|source| {
        if source.kind.is_non_deterministic() {
            BundleError::NotDeterministic { what, source }
        } else {
            BundleError::Malformed { what, source }
        }
    })
}

/// A map with exactly the given text keys.
struct Fields<'a> {
    what: &'static str,
    value: &'a Value,
}

impl<'a> Fields<'a> {
    fn new(value: &'a Value, what: &'static str, keys: &[&str]) -> Result<Fields<'a>, BundleError> {
        let entries = value
            .as_map()
            .ok_or_else(|| BundleError::Structure(format!("{what} is not a map")))?;
        for (k, _) in entries {
            match k.as_text() {
                Some(k) if keys.contains(&k) => {}
                _ => {
                    return Err(BundleError::Structure(format!(
                        "{what}: unexpected key {}",
                        cbor::diag::value_to_diag(k)
                    )));
                }
            }
        }
        if entries.len() != keys.len() {
            return Err(BundleError::Structure(format!(
                "{what}: expected the keys {keys:?}"
            )));
        }
        Ok(Fields { what, value })
    }

    fn get(&self, key: &str) -> Result<&'a Value, BundleError> {
        self.value
            .get(key)
            .ok_or_else(|| BundleError::Structure(format!("{}: missing `{key}`", self.what)))
    }

    fn bad(&self, key: &str, expected: &str) -> BundleError {
        BundleError::Structure(format!("{}.{key}: expected {expected}", self.what))
    }

    fn text(&self, key: &str) -> Result<&'a str, BundleError> {
        self.get(key)?
            .as_text()
            .ok_or_else(|| self.bad(key, "a text string"))
    }

    fn bytes(&self, key: &str) -> Result<&'a [u8], BundleError> {
        self.get(key)?
            .as_bytes()
            .ok_or_else(|| self.bad(key, "a byte string"))
    }

    fn hash(&self, key: &str) -> Result<[u8; 32], BundleError> {
        self.bytes(key)?
            .try_into()
            .map_err(|_| self.bad(key, "a 32-byte SHA-256"))
    }

    fn uint(&self, key: &str) -> Result<u64, BundleError> {
        self.get(key)?
            .as_u64()
            .ok_or_else(|| self.bad(key, "an unsigned integer"))
    }

    fn bool(&self, key: &str) -> Result<bool, BundleError> {
        self.get(key)?
            .as_bool()
            .ok_or_else(|| self.bad(key, "a bool"))
    }

    fn array(&self, key: &str) -> Result<&'a [Value], BundleError> {
        self.get(key)?
            .as_array()
            .ok_or_else(|| self.bad(key, "an array"))
    }

    fn texts(&self, key: &str) -> Result<Vec<String>, BundleError> {
        self.array(key)?
            .iter()
            .map(|v| {
                v.as_text()
                    .map(str::to_owned)
                    .ok_or_else(|| self.bad(key, "an array of text strings"))
            })
            .collect()
    }

    /// `0("canonical tdate")` (PROFILE G-25).
    fn tdate(&self, key: &str) -> Result<String, BundleError> {
        match self.get(key)? {
            Value::Tag(0, inner) => match inner.as_text() {
                Some(s) if Timestamp::parse(s).is_ok() => Ok(s.to_owned()),
                _ => Err(self.bad(key, "a canonical RFC 3339 date-time")),
            },
            _ => Err(self.bad(key, "a tag-0 date-time")),
        }
    }
}

fn parse_scenario(v: &Value) -> Result<BundleScenario, BundleError> {
    let f = Fields::new(
        v,
        "scenario",
        &[
            "id",
            "title",
            "layer",
            "level",
            "verdict",
            "requirements",
            "reason",
            "seed",
            "transcript_sha256",
        ],
    )?;
    let layer = Layer::from_name(f.text("layer")?).ok_or_else(|| f.bad("layer", "a layer"))?;
    let level = Level::from_keyword(f.text("level")?)
        .ok_or_else(|| f.bad("level", "MUST, SHOULD or MAY"))?;
    let verdict_name = f.text("verdict")?;
    let verdict = Verdict::ALL
        .into_iter()
        .find(|v| v.name() == verdict_name)
        .ok_or_else(|| f.bad("verdict", "a verdict"))?;
    Ok(BundleScenario {
        id: f.text("id")?.to_owned(),
        title: f.text("title")?.to_owned(),
        layer,
        level,
        verdict,
        requirements: f.texts("requirements")?,
        reason: f.text("reason")?.to_owned(),
        seed: f.uint("seed")?,
        transcript_sha256: f.hash("transcript_sha256")?,
    })
}

fn parse_ics(v: &Value) -> Result<Ics, BundleError> {
    let f = Fields::new(
        v,
        "ics",
        &[
            "roles",
            "algorithms",
            "price_units",
            "verification_methods",
            "extensions",
            "settlement_rails",
        ],
    )?;
    let roles = f
        .texts("roles")?
        .iter()
        .map(|r| Role::from_name(r).ok_or_else(|| f.bad("roles", "role names")))
        .collect::<Result<_, _>>()?;
    let algorithms = f
        .texts("algorithms")?
        .iter()
        .map(|a| {
            OptionalAlgorithm::from_name(a).ok_or_else(|| f.bad("algorithms", "algorithm names"))
        })
        .collect::<Result<_, _>>()?;
    Ok(Ics {
        roles,
        algorithms,
        price_units: f.texts("price_units")?,
        verification_methods: f.texts("verification_methods")?,
        extensions: f.texts("extensions")?,
        settlement_rails: f.texts("settlement_rails")?,
    })
}

fn parse_files(items: &[Value]) -> Result<Vec<(String, [u8; 32])>, BundleError> {
    let files = items
        .iter()
        .map(|v| {
            let f = Fields::new(v, "file hash", &["path", "sha256"])?;
            Ok((f.text("path")?.to_owned(), f.hash("sha256")?))
        })
        .collect::<Result<Vec<_>, BundleError>>()?;
    if files.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(BundleError::Structure(
            "file hashes are not sorted by unique path".into(),
        ));
    }
    Ok(files)
}

impl VerifiedBundle {
    /// Verdict counts of the recorded scenarios.
    pub fn counts(&self) -> crate::model::VerdictCounts {
        let mut c = crate::model::VerdictCounts::default();
        for s in &self.scenarios {
            c.add(s.verdict);
        }
        c
    }
}

impl fmt::Display for VerifiedBundle {
    /// A human summary of what the bundle attests.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.counts();
        writeln!(
            f,
            "mtp-cert certification bundle ({BUNDLE_FORMAT}): signature VALID"
        )?;
        writeln!(
            f,
            "  signed by   {} (ML-DSA-65; key sha256 {})",
            self.operator_did.as_str(),
            hex::encode(sha256(&self.operator_key))
        )?;
        writeln!(f, "  issued      {}", self.issued)?;
        writeln!(
            f,
            "  decision    {}",
            if self.certified {
                "CERTIFIED: every applicable MUST scenario passed"
            } else {
                "NOT CERTIFIED"
            }
        )?;
        for r in &self.reasons {
            writeln!(f, "              - {r}")?;
        }
        writeln!(
            f,
            "  IUT         {} (description sha256 {})",
            self.iut_name,
            hex::encode(self.iut_description_sha256)
        )?;
        let roles: Vec<&str> = self.ics.roles.iter().map(|r| r.name()).collect();
        let algs: Vec<&str> = self.ics.algorithms.iter().map(|a| a.name()).collect();
        writeln!(
            f,
            "  ICS         roles [{}]; optional algorithms [{}]; price units [{}]; verification [{}]; extensions [{}]; rails [{}]",
            roles.join(", "),
            algs.join(", "),
            self.ics.price_units.join(", "),
            self.ics.verification_methods.join(", "),
            self.ics.extensions.join(", "),
            self.ics.settlement_rails.join(", ")
        )?;
        writeln!(
            f,
            "  suite       mtp-cert {} (binary sha256 {}), executor {}, results {}",
            self.suite_version,
            hex::encode(self.binary_sha256),
            self.executor,
            self.results_schema
        )?;
        writeln!(
            f,
            "  run         seed {}, {} .. {} ({} ms)",
            self.run_seed, self.run_started, self.run_finished, self.wall_ms
        )?;
        writeln!(
            f,
            "  inputs      {} scenario files, {} vector files (SHA-256 each)",
            self.scenario_files.len(),
            self.vector_files.len()
        )?;
        writeln!(
            f,
            "  scenarios   {}: {} pass, {} fail, {} inconclusive, {} error, {} not applicable",
            self.scenarios.len(),
            c.pass,
            c.fail,
            c.inconclusive,
            c.error,
            c.not_applicable
        )?;
        for s in &self.scenarios {
            writeln!(
                f,
                "    {:<12} {:<6} {} [{}] transcript {}",
                s.verdict.label(),
                s.level.keyword(),
                s.id,
                s.requirements.join(", "),
                &hex::encode(s.transcript_sha256)[..16]
            )?;
        }
        writeln!(
            f,
            "It attests that the operator above ran mtp-cert {} (the binary with the hash above) with the listed scenario and vector files against the described IUT, run seed {}, and observed these verdicts; each scenario's transcript hashes to the value recorded (SHA-256 over its deterministic CBOR).",
            self.suite_version, self.run_seed
        )
    }
}
