//! Attribution Layer (SPEC III-G; PROFILE G-23): exact Shapley values for up to ten
//! contributors (SPEC-III-G-1-02), a bounded-error permutation-sampling approximation above
//! (SPEC-III-G-1-03), signed Attribution Records (SPEC-III-G-2-02) carried in the Receipt
//! and sent to every party over `Agent/Verify`, and their verification (7100,
//! SPEC-III-G-2-04).
//!
//! # Approximation algorithm and error bound (SPEC-III-G-1-04)
//!
//! Above [`SHAPLEY_EXACT_MAX_CONTRIBUTORS`] contributors (or when the configuration asks for
//! `approximate_shapley`) the shares are estimated by permutation sampling exactly as
//! PROFILE G-23 fixes it, so that every participant recomputes them bit for bit: `m`
//! permutations drawn from the SHA-256 counter-mode PRNG seeded with a 32-byte `seed` taken
//! from the agent's run RNG, each a Fisher–Yates shuffle of `0 … n−1`; φᵢ = the mean of
//! contributor i's marginal contributions; share = φᵢ / v(N).
//!
//! `m` comes from Hoeffding's inequality. Each marginal contribution of contributor i lies
//! in an interval of width Rᵢ (computed from the published coalition values; when they do
//! not cover every coalition, R = 2·(max v − min v)). With R = maxᵢ Rᵢ, a share error bound
//! ε (the configuration's `error_bound`, on shares, i.e. fractions of v(N)) and a
//! confidence 1 − δ (`confidence` in the configuration, default 0.95), the union bound over
//! the n contributors gives
//!
//! ```text
//! P(∃i: |φ̂ᵢ − φᵢ| ≥ ε·|v(N)|) ≤ 2n·exp(−2m(ε·v(N))² / R²) ≤ δ
//!   ⇐  m = ⌈R² · ln(2n/δ) / (2 (ε·v(N))²)⌉   (at least 1, at most 1,000,000)
//! ```
//!
//! An explicit `permutations` in the configuration is used as given; the confidence it
//! achieves is then recorded instead. The record's `sampling` block carries
//! `permutations` and `seed` (PROFILE G-23) plus `bound: "hoeffding"`, `confidence` and
//! `marginal_range`; `error_bound` is ε.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use mtp_protocol::attribution::{
    AttributionConfig, AttributionError, AttributionRecord, Contributor, Methodology, Sampling,
    coalition_key, parse_coalition_key, verify_exact,
};
use mtp_protocol::cbor::{self, Value};
use mtp_protocol::crypto::sha256;
use mtp_protocol::error_record::Notification;
use mtp_protocol::errors::{Coded, ErrorCode, Layer};
use mtp_protocol::identity::Did;
use mtp_protocol::primitives::common::{CborObject, Map, Number, SingleSigned};
use mtp_protocol::profile::{
    ATTRIBUTION_MIN_CONTRIBUTORS, SHAPLEY_EXACT_MAX_CONTRIBUTORS, SHAPLEY_EXACT_TOLERANCE,
};
use mtp_protocol::wire;
use tonic::Status;

use crate::agent::Agent;
use crate::deal::Deal;
use crate::services::control::{ControlError, ControlResult};
use crate::transport::sync::framing::Rpc;

use super::verification::{self as plumbing, committed_deal, deal_terms};

/// Deliberate defects of this layer (`crate::faults`).
pub const FAULTS: &[crate::faults::Fault] = &[
    crate::faults::Fault {
        name: "attribution-absolute-shares",
        breaks: "SPEC-III-G-2-02",
        description: "records each contributor's Shapley value instead of its share of v(N)",
    },
    crate::faults::Fault {
        name: "attribution-trusts-shares",
        breaks: "SPEC-III-G-2-04 SPEC-III-G-1-01",
        description: "keeps a received Attribution Record without recomputing its shares (no 7100)",
    },
];

/// Share error bound when the configuration gives none (approximate only).
pub const DEFAULT_ERROR_BOUND: f64 = 0.01;
/// Confidence of the Hoeffding bound when the configuration gives none.
pub const DEFAULT_CONFIDENCE: f64 = 0.95;
/// Upper limit on sampled permutations (and on what a received record may ask to replay).
pub const MAX_PERMUTATIONS: u64 = 1_000_000;
/// Contributors beyond which the sampling masks would not fit (coalition keys).
pub const MAX_CONTRIBUTORS: usize = 62;

/// Why an attribution cannot be computed or a record is refused.
#[derive(Debug, thiserror::Error)]
pub enum AttributeError {
    #[error(transparent)]
    Protocol(#[from] AttributionError),
    #[error("coalition value for {{{0}}} missing")]
    MissingCoalition(String),
    #[error(
        "share of contributor {index} ({agent}) is {recorded}, recomputed {computed} (bound {bound})"
    )]
    Divergence {
        index: usize,
        agent: String,
        recorded: f64,
        computed: f64,
        bound: f64,
    },
    #[error(
        "{0} contributors: attribution covers {ATTRIBUTION_MIN_CONTRIBUTORS}..={MAX_CONTRIBUTORS}"
    )]
    Contributors(usize),
    #[error("the approximate record's sampling block asks for {0} permutations")]
    Sampling(u64),
    #[error("error bound {0} needs more than {MAX_PERMUTATIONS} permutations")]
    TooTight(f64),
    #[error("the grand coalition's value is 0: shares are undefined")]
    ZeroGrand,
    #[error("methodology {0:?} is not supported by this agent")]
    Unsupported(String),
    #[error("the record is not signed by a party of the transaction: {0}")]
    Signature(String),
}

impl Coded for AttributeError {
    fn code(&self) -> ErrorCode {
        match self {
            AttributeError::Protocol(e) => e.code(),
            AttributeError::MissingCoalition(_)
            | AttributeError::Divergence { .. }
            | AttributeError::ZeroGrand => ErrorCode::ShapleyComputationDivergence,
            AttributeError::Signature(_) => ErrorCode::SignatureVerificationFailure,
            AttributeError::Contributors(_)
            | AttributeError::Sampling(_)
            | AttributeError::TooTight(_)
            | AttributeError::Unsupported(_) => ErrorCode::SchemaViolation,
        }
    }

    fn requirement(&self) -> Option<&'static str> {
        match self {
            AttributeError::Protocol(e) => e.requirement(),
            AttributeError::TooTight(_) => Some("SPEC-III-G-1-03"),
            AttributeError::Contributors(_) => Some("SPEC-III-G-01"),
            _ => Some("SPEC-III-G-2-04"),
        }
    }
}

/// This layer's state inside the agent: the Attribution Record of each transaction
/// (computed here or received and verified).
#[derive(Debug, Default)]
pub struct State {
    records: Mutex<BTreeMap<[u8; 32], AttributionRecord>>,
}

impl State {
    pub fn get(&self, tx: &[u8; 32]) -> Option<AttributionRecord> {
        self.lock().get(tx).cloned()
    }

    fn put(&self, tx: [u8; 32], r: AttributionRecord) {
        self.lock().insert(tx, r);
    }

    /// Forget everything (test-control `reset`).
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<[u8; 32], AttributionRecord>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }
}

// ---------------------------------------------------------------------------------------
// Sampling (PROFILE G-23)
// ---------------------------------------------------------------------------------------

/// The G-23 PRNG: block j = SHA-256(seed ‖ uint64-be(j)), read as consecutive uint64-be
/// words.
#[derive(Clone, Debug)]
pub struct SampleStream {
    seed: [u8; 32],
    block: u64,
    words: [u64; 4],
    next: usize,
}

impl SampleStream {
    pub fn new(seed: [u8; 32]) -> SampleStream {
        SampleStream {
            seed,
            block: 0,
            words: [0; 4],
            next: 4,
        }
    }

    pub fn next_word(&mut self) -> u64 {
        if self.next == 4 {
            let mut input = self.seed.to_vec();
            input.extend_from_slice(&self.block.to_be_bytes());
            let digest = sha256(&input);
            for (w, chunk) in self.words.iter_mut().zip(digest.chunks_exact(8)) {
                let mut b = [0u8; 8];
                b.copy_from_slice(chunk);
                *w = u64::from_be_bytes(b);
            }
            self.block += 1;
            self.next = 0;
        }
        let w = self.words[self.next];
        self.next += 1;
        w
    }
}

/// The outcome of permutation sampling.
#[derive(Clone, Debug, PartialEq)]
pub struct Sampled {
    /// φ̂ᵢ: mean marginal contribution of each contributor.
    pub phi: Vec<f64>,
    /// Every coalition (bitmask) the permutations visited, the empty one included.
    pub visited: BTreeSet<usize>,
}

/// Permutation sampling per PROFILE G-23 over `n` contributors with characteristic
/// function `v` (by bitmask; `None` = not published → 7100).
pub fn sample_shapley(
    n: usize,
    permutations: u64,
    seed: [u8; 32],
    v: impl Fn(usize) -> Option<f64>,
) -> Result<Sampled, AttributeError> {
    if n == 0 || n > MAX_CONTRIBUTORS {
        return Err(AttributeError::Contributors(n));
    }
    let value = |m: usize| v(m).ok_or_else(|| AttributeError::MissingCoalition(coalition_key(m)));
    let mut rng = SampleStream::new(seed);
    let mut acc = vec![0.0f64; n];
    let mut visited = BTreeSet::from([0usize]);
    let empty = value(0)?;
    let mut perm: Vec<usize> = Vec::with_capacity(n);
    for _ in 0..permutations {
        perm.clear();
        perm.extend(0..n);
        for k in (1..n).rev() {
            let j = (rng.next_word() % (k as u64 + 1)) as usize;
            perm.swap(k, j);
        }
        let mut mask = 0usize;
        let mut prev = empty;
        for &p in &perm {
            let next = mask | (1usize << p);
            let val = value(next)?;
            if let Some(a) = acc.get_mut(p) {
                *a += val - prev;
            }
            prev = val;
            mask = next;
            visited.insert(mask);
        }
    }
    let m = permutations.max(1) as f64;
    Ok(Sampled {
        phi: acc.into_iter().map(|a| a / m).collect(),
        visited,
    })
}

/// Width of the widest interval of marginal contributions (Rᵢ maximised over i): exact
/// when `table` covers every coalition, else 2·(max v − min v).
pub fn marginal_range(n: usize, table: &BTreeMap<usize, f64>) -> f64 {
    let complete = n < usize::BITS as usize - 1 && table.len() == 1usize << n;
    if !complete {
        let max = table.values().copied().fold(f64::NEG_INFINITY, f64::max);
        let min = table.values().copied().fold(f64::INFINITY, f64::min);
        return if max.is_finite() && min.is_finite() {
            2.0 * (max - min)
        } else {
            0.0
        };
    }
    let mut widest = 0.0f64;
    for i in 0..n {
        let bit = 1usize << i;
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for (&mask, &without) in table.range(..) {
            if mask & bit != 0 {
                continue;
            }
            if let Some(&with) = table.get(&(mask | bit)) {
                let d = with - without;
                lo = lo.min(d);
                hi = hi.max(d);
            }
        }
        if hi >= lo {
            widest = widest.max(hi - lo);
        }
    }
    widest
}

/// Hoeffding + union bound: permutations for share error `epsilon` at `confidence`
/// (see the module documentation). `None` when more than [`MAX_PERMUTATIONS`] are needed.
pub fn hoeffding_permutations(
    n: usize,
    range: f64,
    grand: f64,
    epsilon: f64,
    confidence: f64,
) -> Option<u64> {
    let t = epsilon * grand.abs();
    if range <= 0.0 {
        return Some(1);
    }
    if t <= 0.0 {
        return None;
    }
    let delta = (1.0 - confidence).clamp(1e-12, 1.0);
    let m = (range * range * (2.0 * n as f64 / delta).ln() / (2.0 * t * t)).ceil();
    if !m.is_finite() || m > MAX_PERMUTATIONS as f64 {
        return None;
    }
    Some((m as u64).max(1))
}

/// The confidence `m` permutations achieve for share error `epsilon` (Hoeffding).
pub fn achieved_confidence(n: usize, range: f64, grand: f64, epsilon: f64, m: u64) -> f64 {
    if range <= 0.0 {
        return 1.0;
    }
    let t = epsilon * grand.abs();
    let delta = 2.0 * n as f64 * (-2.0 * m as f64 * t * t / (range * range)).exp();
    (1.0 - delta).clamp(0.0, 1.0)
}

/// Recompute a record's shares (SPEC-III-G-2-04): exact records with `verify_exact`
/// (1e-9), approximate ones by replaying the sampling with its seed (within
/// `error_bound`). A divergence or a missing coalition is 7100.
pub fn verify_record(record: &AttributionRecord) -> Result<Vec<f64>, AttributeError> {
    match &record.methodology {
        Methodology::ExactShapley => Ok(verify_exact(record)?),
        Methodology::ApproximateShapley => {
            let n = record.contributors.len();
            let sampling = record
                .sampling
                .as_ref()
                .ok_or(AttributeError::Sampling(0))?;
            if sampling.permutations == 0 || sampling.permutations > MAX_PERMUTATIONS {
                return Err(AttributeError::Sampling(sampling.permutations));
            }
            let bound = record.error_bound.unwrap_or(SHAPLEY_EXACT_TOLERANCE);
            let mut table = BTreeMap::new();
            for (k, v) in &record.coalition_values {
                if let Some(m) = parse_coalition_key(k, n) {
                    table.insert(m, v.as_f64());
                }
            }
            let full = full_mask(n)?;
            let grand = *table
                .get(&full)
                .ok_or_else(|| AttributeError::MissingCoalition(coalition_key(full)))?;
            if grand == 0.0 {
                return Err(AttributeError::ZeroGrand);
            }
            let s = sample_shapley(n, sampling.permutations, sampling.seed, |m| {
                table.get(&m).copied()
            })?;
            let shares: Vec<f64> = s.phi.iter().map(|p| p / grand).collect();
            for (index, (c, computed)) in record.contributors.iter().zip(&shares).enumerate() {
                let diff = (c.share - computed).abs();
                if diff.is_nan() || diff > bound {
                    return Err(AttributeError::Divergence {
                        index,
                        agent: c.agent_id.as_str().to_owned(),
                        recorded: c.share,
                        computed: *computed,
                        bound,
                    });
                }
            }
            Ok(shares)
        }
        Methodology::Other(o) => Err(AttributeError::Unsupported(o.clone())),
    }
}

fn full_mask(n: usize) -> Result<usize, AttributeError> {
    if n == 0 || n > MAX_CONTRIBUTORS {
        return Err(AttributeError::Contributors(n));
    }
    Ok((1usize << n) - 1)
}

/// Coalition values in canonical (encoded-key) order, as a decoder yields them.
fn canonical(mut values: Vec<(String, Number)>) -> Vec<(String, Number)> {
    values.sort_by_cached_key(|(k, _)| cbor::to_vec(&Value::text(k.as_str())).unwrap_or_default());
    values
}

/// An unsigned approximate-Shapley record (PROFILE G-23) from a characteristic-function
/// table (bitmask → value).
pub fn approximate_record(
    mandate_id: mtp_protocol::uuid::MtpUuid,
    contributors: Vec<Did>,
    table: &BTreeMap<usize, Number>,
    epsilon: f64,
    confidence: f64,
    permutations: Option<u64>,
    seed: [u8; 32],
) -> Result<AttributionRecord, AttributeError> {
    let n = contributors.len();
    let full = full_mask(n)?;
    let values: BTreeMap<usize, f64> = table.iter().map(|(k, v)| (*k, v.as_f64())).collect();
    let grand = *values
        .get(&full)
        .ok_or_else(|| AttributeError::MissingCoalition(coalition_key(full)))?;
    if grand == 0.0 {
        return Err(AttributeError::ZeroGrand);
    }
    let range = marginal_range(n, &values);
    let (m, achieved) = match permutations {
        Some(p) if p > 0 && p <= MAX_PERMUTATIONS => {
            (p, achieved_confidence(n, range, grand, epsilon, p))
        }
        Some(p) => return Err(AttributeError::Sampling(p)),
        None => {
            let m = hoeffding_permutations(n, range, grand, epsilon, confidence)
                .ok_or(AttributeError::TooTight(epsilon))?;
            (m, achieved_confidence(n, range, grand, epsilon, m))
        }
    };
    let sampled = sample_shapley(n, m, seed, |mask| values.get(&mask).copied())?;
    let coalition_values = canonical(
        sampled
            .visited
            .iter()
            .filter_map(|mask| table.get(mask).map(|v| (coalition_key(*mask), *v)))
            .collect(),
    );
    Ok(AttributionRecord {
        mandate_id,
        contributors: contributors
            .into_iter()
            .zip(sampled.phi)
            .map(|(d, p)| Contributor::new(d, p / grand))
            .collect(),
        methodology: Methodology::ApproximateShapley,
        error_bound: Some(epsilon),
        coalition_values,
        sampling: Some(Sampling {
            permutations: m,
            seed,
            unknown: vec![
                (Value::text("bound"), Value::text("hoeffding")),
                (Value::text("confidence"), Value::Float(achieved)),
                (Value::text("marginal_range"), Value::Float(range)),
            ],
        }),
        signature: None,
        unknown: Map::new(),
    })
}

// ---------------------------------------------------------------------------------------
// Test-control
// ---------------------------------------------------------------------------------------

/// This layer's test-control actions (docs/iut-contract.md); `None` for other actions.
pub async fn control(agent: &Agent, action: &str, args: &Value) -> Option<ControlResult> {
    Some(match action {
        "attribute" => attribute(agent, args).await,
        "reset" => {
            agent.attribution.clear();
            Ok(Value::Map(Vec::new()))
        }
        _ => return None,
    })
}

/// `attribute {transaction_id, coalition_values, config?, contributors?}`
/// (SPEC-III-G-01, SPEC-III-G-2-01). `contributors` (this agent's extension) lists the
/// contributing Agents' DIDs in coalition-index order; default: the Terms participants.
async fn attribute(agent: &Agent, args: &Value) -> ControlResult {
    let (deal, terms, mandate_id) = committed_deal(agent, args)?;
    let contributors: Vec<Did> = match args.get("contributors") {
        None => terms
            .participants
            .iter()
            .map(|p| p.agent_id.clone())
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_text().and_then(|t| Did::parse(t).ok()).ok_or_else(|| {
                    ControlError::BadArgs("contributors must be did:mtp DIDs".into())
                })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(ControlError::BadArgs("contributors must be a list".into())),
    };
    let n = contributors.len();
    if !(ATTRIBUTION_MIN_CONTRIBUTORS..=MAX_CONTRIBUTORS).contains(&n) {
        return Err(ControlError::mtp(&AttributeError::Contributors(n)));
    }
    let Some(Value::Map(entries)) = args.get("coalition_values") else {
        return Err(ControlError::BadArgs(
            "coalition_values must be a map of coalition key → number".into(),
        ));
    };
    let mut table: BTreeMap<usize, Number> = BTreeMap::new();
    for (k, v) in entries {
        let key = k.as_text().unwrap_or_default();
        let mask = parse_coalition_key(key, n).ok_or_else(|| {
            ControlError::BadArgs(format!("coalition key {key:?} is not canonical over {n}"))
        })?;
        let num = match v {
            Value::Integer(i) => Number::Int(*i),
            Value::Float(f) if f.is_finite() => Number::Float(*f),
            _ => {
                return Err(ControlError::BadArgs(format!(
                    "coalition value for {key:?} is not a finite number"
                )));
            }
        };
        table.insert(mask, num);
    }
    let config = match args.get("config") {
        Some(v) => Some(
            AttributionConfig::read(v, "config")
                .map_err(|e| ControlError::BadArgs(format!("{e:?}")))?,
        ),
        None => terms
            .attribution_method
            .as_ref()
            .and_then(|v| AttributionConfig::read(v, "attribution_method").ok()),
    };
    let methodology = match config.as_ref().map(|c| &c.methodology) {
        Some(Methodology::Other(o)) => {
            return Err(ControlError::mtp(&AttributeError::Unsupported(o.clone())));
        }
        Some(m) => m.clone(),
        None if n <= SHAPLEY_EXACT_MAX_CONTRIBUTORS => Methodology::ExactShapley,
        None => Methodology::ApproximateShapley,
    };
    let mut record = match methodology {
        Methodology::ExactShapley => {
            let mut values = Vec::with_capacity(1 << n.min(SHAPLEY_EXACT_MAX_CONTRIBUTORS));
            if n > SHAPLEY_EXACT_MAX_CONTRIBUTORS {
                return Err(ControlError::mtp(&AttributionError::PlayerCount(n)));
            }
            for mask in 0..(1usize << n) {
                values.push(*table.get(&mask).ok_or_else(|| {
                    ControlError::BadArgs(format!(
                        "exact Shapley needs every coalition: {{{}}} missing",
                        coalition_key(mask)
                    ))
                })?);
            }
            AttributionRecord::exact(mandate_id, contributors, &values)
                .map_err(|e| ControlError::mtp(&e))?
        }
        _ => {
            let epsilon = config
                .as_ref()
                .and_then(|c| c.error_bound)
                .unwrap_or(DEFAULT_ERROR_BOUND);
            let confidence = config
                .as_ref()
                .and_then(|c| {
                    c.unknown
                        .iter()
                        .find(|(k, _)| k.as_text() == Some("confidence"))
                        .and_then(|(_, v)| v.as_f64())
                })
                .filter(|c| *c > 0.0 && *c < 1.0)
                .unwrap_or(DEFAULT_CONFIDENCE);
            let permutations = config.as_ref().and_then(|c| c.permutations);
            let seed = agent.random::<32>();
            approximate_record(
                mandate_id,
                contributors,
                &table,
                epsilon,
                confidence,
                permutations,
                seed,
            )
            .map_err(|e| ControlError::mtp(&e))?
        }
    };
    if agent.fault("attribution-absolute-shares")
        && let Some(grand) = full_mask(n)
            .ok()
            .and_then(|m| table.get(&m))
            .map(|v| v.as_f64())
    {
        for c in record.contributors.iter_mut() {
            c.share *= grand;
        }
    }
    record
        .sign(&agent.keys.signing, plumbing::key_id(agent))
        .map_err(|e| ControlError::mtp(&e))?;
    let bytes = record
        .try_to_cbor()
        .map_err(|e| ControlError::Internal(e.to_string()))?;
    agent.attribution.put(deal.id, record.clone());
    // SPEC-III-G-2-04: every participating Agent can verify it.
    let frame = wire::Frame::new("attribution_record", record.to_value())
        .map_err(|e| ControlError::mtp(&e))?;
    plumbing::broadcast(agent, deal.id, &deal.counterparties, Rpc::Verify, &frame).await;
    let mut out = vec![
        ("record", Value::Bytes(bytes)),
        ("methodology", Value::text(record.methodology.as_str())),
        (
            "shares",
            Value::Array(
                record
                    .contributors
                    .iter()
                    .map(|c| Value::Float(c.share))
                    .collect(),
            ),
        ),
    ];
    if let Some(e) = record.error_bound {
        out.push(("error_bound", Value::Float(e)));
    }
    if let Some(s) = &record.sampling {
        out.push(("permutations", Value::from(s.permutations)));
    }
    if !deal.receipts.is_empty() {
        // Receipts are never modified (SPEC-II-D-08): a record computed after the Receipt
        // travels on its own (PROFILE G-23 tolerates an extra record).
        out.push(("standalone", Value::Bool(true)));
    }
    Ok(Value::map(out))
}

/// A record received from a party (alone or in a Receipt): signed by a party of the
/// transaction (1100), recomputed (7100), then kept for this transaction.
pub fn accept_record(
    agent: &Agent,
    deal: &Deal,
    record: &AttributionRecord,
    sender: &str,
) -> Result<Vec<f64>, AttributeError> {
    let mut candidates: Vec<String> = Vec::new();
    if let Some(k) = record.signature.as_ref().and_then(|s| s.key_id.as_deref()) {
        candidates.push(k.split('#').next().unwrap_or(k).to_owned());
    }
    if !sender.is_empty() {
        candidates.push(sender.to_owned());
    }
    if let Some(t) = deal_terms(deal) {
        candidates.extend(
            t.participants
                .iter()
                .map(|p| p.agent_id.as_str().to_owned()),
        );
    }
    let parties: BTreeSet<String> = deal
        .counterparties
        .iter()
        .cloned()
        .chain(std::iter::once(agent.did()))
        .collect();
    let signer = candidates
        .into_iter()
        .filter(|c| parties.contains(c))
        .find(|c| plumbing::verify_signed(agent, record, c).is_ok());
    let object = sha256(&record.to_cbor());
    plumbing::audit_signature(
        agent,
        deal.id,
        object,
        signer.is_some(),
        signer.as_deref().unwrap_or(sender),
    );
    if signer.is_none() {
        return Err(AttributeError::Signature(sender.to_owned()));
    }
    let shares = if agent.fault("attribution-trusts-shares") {
        record.contributors.iter().map(|c| c.share).collect()
    } else {
        verify_record(record)?
    };
    if agent.attribution.get(&deal.id).is_none() {
        agent.attribution.put(deal.id, record.clone());
    }
    Ok(shares)
}

/// A notification received over `Agent/Notify` or NATS (SPEC VI): Attribution errors
/// (7xxx) are recorded and end the transaction (SPEC-VI-01).
pub async fn on_notification(agent: &Agent, notification: &Notification) -> Result<(), Status> {
    plumbing::on_error_notification(agent, notification, |layer, _| layer == Layer::Attribution)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn squares(w: &[f64]) -> BTreeMap<usize, Number> {
        (0..1usize << w.len())
            .map(|m| {
                let s: f64 = w
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| m & (1 << i) != 0)
                    .map(|(_, x)| x)
                    .sum();
                (m, Number::Float(s * s))
            })
            .collect()
    }

    fn did(i: u8) -> Did {
        Did::from_digest([i; 32])
    }

    #[test]
    fn prng_and_shuffle_follow_g23() {
        let mut s = SampleStream::new([1; 32]);
        let mut input = [1u8; 32].to_vec();
        input.extend_from_slice(&0u64.to_be_bytes());
        let d = sha256(&input);
        let first = u64::from_be_bytes(d[..8].try_into().unwrap());
        assert_eq!(s.next_word(), first);
        for _ in 0..3 {
            s.next_word();
        }
        let mut input = [1u8; 32].to_vec();
        input.extend_from_slice(&1u64.to_be_bytes());
        let d = sha256(&input);
        assert_eq!(
            s.next_word(),
            u64::from_be_bytes(d[..8].try_into().unwrap())
        );
    }

    #[test]
    fn sampling_approaches_exact_and_replays_bit_for_bit() {
        // v(S) = (Σw)²: φᵢ = wᵢ·Σw, share = wᵢ / Σw.
        let w: Vec<f64> = (1..=12).map(f64::from).collect();
        let total: f64 = w.iter().sum();
        let table = squares(&w);
        let contributors: Vec<Did> = (1..=12).map(did).collect();
        let mid = mtp_protocol::uuid::MtpUuid::new(
            mtp_protocol::uuid::ObjectType::Mandate,
            1,
            [0; 6],
            [3; 17],
        );
        let mut r =
            approximate_record(mid, contributors, &table, 0.02, 0.95, None, [5; 32]).unwrap();
        let m = r.sampling.as_ref().unwrap().permutations;
        assert!(m > 1 && m < MAX_PERMUTATIONS, "{m}");
        for (i, c) in r.contributors.iter().enumerate() {
            assert!((c.share - w[i] / total).abs() <= 0.02, "{i}: {}", c.share);
        }
        let sum: f64 = r.contributors.iter().map(|c| c.share).sum();
        assert!((sum - 1.0).abs() < 1e-9);
        r.signature = Some(mtp_protocol::primitives::common::Signature {
            algorithm: "ML-DSA-65".into(),
            key_id: None,
            value: vec![1],
            unknown: Map::new(),
        });
        let back = AttributionRecord::from_cbor(&r.to_cbor()).unwrap();
        verify_record(&back).unwrap();
        let mut bad = back.clone();
        bad.contributors[0].share += 0.1;
        bad.contributors[1].share -= 0.1;
        assert_eq!(
            verify_record(&bad).unwrap_err().code(),
            ErrorCode::ShapleyComputationDivergence
        );
        let mut missing = back;
        missing.coalition_values.retain(|(k, _)| k.contains(','));
        assert_eq!(
            verify_record(&missing).unwrap_err().code(),
            ErrorCode::ShapleyComputationDivergence
        );
    }

    #[test]
    fn hoeffding_bound() {
        assert_eq!(hoeffding_permutations(12, 0.0, 1.0, 0.01, 0.95), Some(1));
        let m = hoeffding_permutations(3, 1.0, 1.0, 0.1, 0.95).unwrap();
        // ln(6/0.05)/(2·0.01) = 239.4 → 240
        assert_eq!(m, 240);
        assert!(achieved_confidence(3, 1.0, 1.0, 0.1, m) >= 0.95);
        assert_eq!(hoeffding_permutations(3, 1.0, 1.0, 1e-6, 0.95), None);
    }
}
