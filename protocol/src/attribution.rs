//! Attribution Layer (SPEC III-G; PROFILE G-23): the Attribution Record and configuration,
//! and the exact Shapley computation with its verification (7100 Shapley Computation
//! Divergence). The approximate (sampling) algorithm is not implemented here.
//!
//! Coalition values are published in the record, keyed by the comma-joined ascending
//! contributor indices (`""` = empty coalition, `"0,2"` = contributors 0 and 2), so every
//! participant can recompute the shares (SPEC-III-G-2-04). Shares are fractions of the
//! grand coalition's value and sum to 1 (± [`SHAPLEY_EXACT_TOLERANCE`]).

use crate::cbor::Value;
use crate::errors::{Coded, ErrorCode};
use crate::identity::Did;
use crate::primitives::common::{
    CborObject, Errors, Map, MapBuilder, MapReader, Number, ObjectError, Signature,
    ValidationError, check_encodable, index_path, join_path, read_array, read_bytes, read_did,
    read_number, read_signature_field, read_text, read_uint, read_uuid, uuid_value,
};
use crate::primitives::json::{Hint, Kind};
use crate::profile::{
    ATTRIBUTION_MIN_CONTRIBUTORS, SHAPLEY_EXACT_MAX_CONTRIBUTORS, SHAPLEY_EXACT_TOLERANCE,
};
use crate::uuid::{MtpUuid, ObjectType};

/// Attribution Record contents (SPEC-III-G-2-02).
pub const RECORD_REQ: &str = "SPEC-III-G-2-02";
/// Verifiable by every participating Agent (SPEC-III-G-2-04).
pub const VERIFIABLE_REQ: &str = "SPEC-III-G-2-04";
/// Exact computation up to ten contributors (SPEC-III-G-1-02).
pub const EXACT_REQ: &str = "SPEC-III-G-1-02";
/// Attribution for three or more contributing Agents (SPEC-III-G-01).
pub const MULTI_PARTY_REQ: &str = "SPEC-III-G-01";

// ---------------------------------------------------------------------------------------
// Exact Shapley values
// ---------------------------------------------------------------------------------------

/// Why an exact Shapley computation cannot run or does not reproduce a record.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AttributionError {
    #[error("{0} players: exact computation covers 1..={SHAPLEY_EXACT_MAX_CONTRIBUTORS}")]
    PlayerCount(usize),
    #[error("{0} coalition values: expected 2^n")]
    NotPowerOfTwo(usize),
    #[error("coalition value {0} is not finite")]
    NotFinite(f64),
    #[error("methodology {0:?} is not exact_shapley")]
    NotExact(String),
    #[error("coalition value for {{{0}}} missing: the shares cannot be recomputed")]
    MissingCoalition(String),
    #[error("the grand coalition's value is 0: shares are undefined")]
    ZeroGrandCoalition,
    #[error("share of contributor {index} ({agent}) is {recorded}, recomputed {computed}")]
    Divergence {
        index: usize,
        agent: String,
        recorded: f64,
        computed: f64,
    },
}

impl Coded for AttributionError {
    fn code(&self) -> ErrorCode {
        match self {
            AttributionError::PlayerCount(_) | AttributionError::NotExact(_) => {
                ErrorCode::SchemaViolation
            }
            _ => ErrorCode::ShapleyComputationDivergence,
        }
    }

    fn requirement(&self) -> Option<&'static str> {
        Some(match self {
            AttributionError::PlayerCount(_) => EXACT_REQ,
            AttributionError::NotExact(_) => RECORD_REQ,
            _ => VERIFIABLE_REQ,
        })
    }
}

/// Exact Shapley values (SPEC-III-G-1-01, -02) from the characteristic function `v`, a
/// vector indexed by coalition bitmask (bit `i` = player `i`; `v[0]` = empty coalition):
/// `φ_i = Σ_{S ⊆ N∖{i}} |S|!(n−|S|−1)!/n! · (v(S∪{i}) − v(S))`, for 1 ≤ n ≤ 10.
pub fn shapley_exact(v: &[f64]) -> Result<Vec<f64>, AttributionError> {
    let len = v.len();
    if len < 2 || !len.is_power_of_two() {
        return Err(AttributionError::NotPowerOfTwo(len));
    }
    let n = len.trailing_zeros() as usize;
    if n > SHAPLEY_EXACT_MAX_CONTRIBUTORS {
        return Err(AttributionError::PlayerCount(n));
    }
    if let Some(bad) = v.iter().find(|x| !x.is_finite()) {
        return Err(AttributionError::NotFinite(*bad));
    }
    let fact = |k: usize| (1..=k).fold(1.0f64, |a, x| a * x as f64);
    // weight[s] = s!(n-s-1)!/n!; factorials ≤ 10! are exact in f64.
    let weight: Vec<f64> = (0..n)
        .map(|s| fact(s) * fact(n - s - 1) / fact(n))
        .collect();
    let mut phi = vec![0.0f64; n];
    for (i, p) in phi.iter_mut().enumerate() {
        let bit = 1usize << i;
        let mut acc = 0.0f64;
        for mask in (0..len).filter(|m| m & bit == 0) {
            let (with, without) = (v.get(mask | bit), v.get(mask));
            let w = weight.get(mask.count_ones() as usize);
            if let (Some(with), Some(without), Some(w)) = (with, without, w) {
                acc += w * (with - without);
            }
        }
        *p = acc;
    }
    Ok(phi)
}

/// The coalition key of `mask`: ascending indices joined by commas (`""` = empty set).
pub fn coalition_key(mask: usize) -> String {
    (0..usize::BITS as usize)
        .filter(|i| mask & (1 << i) != 0)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The bitmask of a canonical coalition key over `n` contributors (indices < n, strictly
/// ascending, decimal without leading zeros); `None` otherwise.
pub fn parse_coalition_key(key: &str, n: usize) -> Option<usize> {
    if key.is_empty() {
        return Some(0);
    }
    let mut mask = 0usize;
    let mut last: Option<usize> = None;
    for part in key.split(',') {
        let canonical = !part.is_empty()
            && part.len() <= 2
            && part.bytes().all(|b| b.is_ascii_digit())
            && (part == "0" || !part.starts_with('0'));
        if !canonical {
            return None;
        }
        let i: usize = part.parse().ok()?;
        if i >= n || i >= usize::BITS as usize || last.is_some_and(|l| i <= l) {
            return None;
        }
        mask |= 1 << i;
        last = Some(i);
    }
    Some(mask)
}

// ---------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------

/// `methodology` (SPEC-III-G-2-02; PROFILE G-23).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Methodology {
    ExactShapley,
    ApproximateShapley,
    /// An approved alternative's identifier.
    Other(String),
}

impl Methodology {
    pub fn as_str(&self) -> &str {
        match self {
            Methodology::ExactShapley => "exact_shapley",
            Methodology::ApproximateShapley => "approximate_shapley",
            Methodology::Other(s) => s,
        }
    }

    pub fn parse(s: &str) -> Methodology {
        match s {
            "exact_shapley" => Methodology::ExactShapley,
            "approximate_shapley" => Methodology::ApproximateShapley,
            other => Methodology::Other(other.to_owned()),
        }
    }
}

/// A CDDL `float`: a finite CBOR float (integers are not floats).
fn read_float(v: &Value, path: &str, req: &'static str) -> Result<f64, ValidationError> {
    match v {
        Value::Float(f) if f.is_finite() => Ok(*f),
        Value::Float(_) => Err(ValidationError::out_of_range(
            path,
            req,
            "NaN and infinities are refused (PROFILE G-13)",
        )),
        _ => Err(ValidationError::wrong_type(path, req, "float", v)),
    }
}

fn read_error_bound(v: &Value, path: &str, req: &'static str) -> Result<f64, ValidationError> {
    let f = read_float(v, path, req)?;
    if f > 0.0 {
        Ok(f)
    } else {
        Err(ValidationError::out_of_range(
            path,
            req,
            format!("error bound {f} must be > 0"),
        ))
    }
}

/// `{ agent_id: did-string, share: float }`.
#[derive(Clone, Debug, PartialEq)]
pub struct Contributor {
    pub agent_id: Did,
    pub share: f64,
    pub unknown: Map,
}

impl Contributor {
    pub fn new(agent_id: Did, share: f64) -> Contributor {
        Contributor {
            agent_id,
            share,
            unknown: Map::new(),
        }
    }

    fn from_value(v: &Value, path: &str) -> Result<Contributor, Vec<ValidationError>> {
        let req = RECORD_REQ;
        let mut r = MapReader::new(v, path).map_err(|e| vec![e])?;
        let mut errs = Errors::new();
        let agent_id = errs.take(
            r.required("agent_id", req)
                .and_then(|v| read_did(v, &join_path(path, "agent_id"), req)),
        );
        let share = errs.take(
            r.required("share", req)
                .and_then(|v| read_float(v, &join_path(path, "share"), req)),
        );
        let unknown = r.unknown();
        match (agent_id, share) {
            (Some(agent_id), Some(share)) if errs.is_empty() => Ok(Contributor {
                agent_id,
                share,
                unknown,
            }),
            _ => Err(errs.into_vec()),
        }
    }

    fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("agent_id", Value::text(self.agent_id.as_str()))
            .put("share", Value::Float(self.share))
            .extend_unknown(&self.unknown)
            .build()
    }
}

/// `sampling: { permutations: uint, seed: bstr .size 32 }` (approximate only; PROFILE G-23).
#[derive(Clone, Debug, PartialEq)]
pub struct Sampling {
    pub permutations: u64,
    pub seed: [u8; 32],
    pub unknown: Map,
}

impl Sampling {
    fn from_value(v: &Value, path: &str) -> Result<Sampling, Vec<ValidationError>> {
        let req = VERIFIABLE_REQ;
        let mut r = MapReader::new(v, path).map_err(|e| vec![e])?;
        let mut errs = Errors::new();
        let permutations = errs.take(
            r.required("permutations", req)
                .and_then(|v| read_uint(v, &join_path(path, "permutations"), req)),
        );
        let seed = errs.take(r.required("seed", req).and_then(|v| {
            let p = join_path(path, "seed");
            let b = read_bytes(v, &p, req)?;
            <[u8; 32]>::try_from(b).map_err(|_| {
                ValidationError::invalid(p, req, format!("seed of {} bytes, 32 required", b.len()))
            })
        }));
        let unknown = r.unknown();
        match (permutations, seed) {
            (Some(permutations), Some(seed)) if errs.is_empty() => Ok(Sampling {
                permutations,
                seed,
                unknown,
            }),
            _ => Err(errs.into_vec()),
        }
    }

    fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("permutations", Value::Integer(self.permutations.into()))
            .put("seed", Value::Bytes(self.seed.to_vec()))
            .extend_unknown(&self.unknown)
            .build()
    }
}

/// Attribution Record (SPEC III-G-2; PROFILE G-23), an appendix of the Receipt
/// (`attribution`, BIND-VII-D-04), signed by the computing Agent.
///
/// Structural rules (`from_value`): at least [`ATTRIBUTION_MIN_CONTRIBUTORS`] distinct
/// contributors; shares sum to 1 within [`SHAPLEY_EXACT_TOLERANCE`]; `error_bound` present
/// iff the methodology is `approximate_shapley`, which also needs `sampling` (and only it
/// may carry one); coalition keys are canonical index sets over the contributors.
#[derive(Clone, Debug, PartialEq)]
pub struct AttributionRecord {
    pub mandate_id: MtpUuid,
    pub contributors: Vec<Contributor>,
    pub methodology: Methodology,
    pub error_bound: Option<f64>,
    /// `{ * tstr => number }` in decoded order: coalition key → v(S).
    pub coalition_values: Vec<(String, Number)>,
    pub sampling: Option<Sampling>,
    pub signature: Option<Signature>,
    pub unknown: Map,
}

impl AttributionRecord {
    /// An unsigned exact-Shapley record for `contributors` from `values` (indexed by
    /// coalition bitmask, see [`shapley_exact`]); shares = φ_i / v(N).
    pub fn exact(
        mandate_id: MtpUuid,
        contributors: Vec<Did>,
        values: &[Number],
    ) -> Result<AttributionRecord, AttributionError> {
        let n = contributors.len();
        if !(ATTRIBUTION_MIN_CONTRIBUTORS..=SHAPLEY_EXACT_MAX_CONTRIBUTORS).contains(&n) {
            return Err(AttributionError::PlayerCount(n));
        }
        if values.len() != 1 << n {
            return Err(AttributionError::NotPowerOfTwo(values.len()));
        }
        let v: Vec<f64> = values.iter().map(|x| x.as_f64()).collect();
        let shares = shares_from(&v)?;
        // Canonical (encoded-key bytewise) order, as a decoder yields them.
        let mut coalition_values: Vec<(String, Number)> = values
            .iter()
            .enumerate()
            .map(|(m, x)| (coalition_key(m), *x))
            .collect();
        coalition_values.sort_by_cached_key(|(k, _)| {
            crate::cbor::to_vec(&Value::text(k.as_str())).unwrap_or_default()
        });
        Ok(AttributionRecord {
            mandate_id,
            contributors: contributors
                .into_iter()
                .zip(shares)
                .map(|(d, s)| Contributor::new(d, s))
                .collect(),
            methodology: Methodology::ExactShapley,
            error_bound: None,
            coalition_values,
            sampling: None,
            signature: None,
            unknown: Map::new(),
        })
    }

    /// The characteristic function as a bitmask-indexed vector; a missing coalition is an
    /// error (7100: the shares cannot be recomputed).
    pub fn characteristic_function(&self) -> Result<Vec<f64>, AttributionError> {
        let n = self.contributors.len();
        if n == 0 || n > SHAPLEY_EXACT_MAX_CONTRIBUTORS {
            return Err(AttributionError::PlayerCount(n));
        }
        let mut v: Vec<Option<f64>> = vec![None; 1 << n];
        for (key, value) in &self.coalition_values {
            if let Some(slot) = parse_coalition_key(key, n).and_then(|m| v.get_mut(m)) {
                *slot = Some(value.as_f64());
            }
        }
        v.iter()
            .enumerate()
            .map(|(m, x)| x.ok_or_else(|| AttributionError::MissingCoalition(coalition_key(m))))
            .collect()
    }

    fn check(&self, errs: &mut Errors) {
        let n = self.contributors.len();
        if n < ATTRIBUTION_MIN_CONTRIBUTORS {
            errs.push(ValidationError::out_of_range(
                "contributors",
                MULTI_PARTY_REQ,
                format!("{n} contributors, an Attribution Record has at least {ATTRIBUTION_MIN_CONTRIBUTORS}"),
            ));
        }
        for (i, c) in self.contributors.iter().enumerate() {
            if self
                .contributors
                .iter()
                .take(i)
                .any(|d| d.agent_id == c.agent_id)
            {
                errs.push(ValidationError::invalid(
                    join_path(&index_path("contributors", i), "agent_id"),
                    RECORD_REQ,
                    format!("contributor {} listed twice", c.agent_id.as_str()),
                ));
            }
        }
        let sum: f64 = self.contributors.iter().map(|c| c.share).sum();
        if n > 0 && (sum - 1.0).abs() > SHAPLEY_EXACT_TOLERANCE {
            errs.push(ValidationError::invalid(
                "contributors",
                RECORD_REQ,
                format!("shares sum to {sum}, not 1 ± {SHAPLEY_EXACT_TOLERANCE} (PROFILE G-23)"),
            ));
        }
        let approximate = self.methodology == Methodology::ApproximateShapley;
        match (approximate, self.error_bound.is_some()) {
            (true, false) => errs.push(ValidationError::missing("error_bound", RECORD_REQ)),
            (false, true) => errs.push(ValidationError::invalid(
                "error_bound",
                RECORD_REQ,
                "error_bound is only for approximate_shapley (PROFILE G-23)",
            )),
            _ => {}
        }
        match (approximate, self.sampling.is_some()) {
            (true, false) => errs.push(ValidationError::missing("sampling", VERIFIABLE_REQ)),
            (false, true) => errs.push(ValidationError::invalid(
                "sampling",
                RECORD_REQ,
                "sampling is only for approximate_shapley (PROFILE G-23)",
            )),
            _ => {}
        }
        if n < usize::BITS as usize {
            for (key, _) in &self.coalition_values {
                if parse_coalition_key(key, n).is_none() {
                    errs.push(ValidationError::invalid(
                        join_path("coalition_values", key),
                        VERIFIABLE_REQ,
                        format!("{key:?} is not an ascending comma-joined set of contributor indices < {n}"),
                    ));
                }
            }
        }
    }
}

/// Shares φ_i / v(N) (7100 when v(N) = 0).
fn shares_from(v: &[f64]) -> Result<Vec<f64>, AttributionError> {
    let phi = shapley_exact(v)?;
    let grand = v.last().copied().unwrap_or(0.0);
    if grand == 0.0 {
        return Err(AttributionError::ZeroGrandCoalition);
    }
    Ok(phi.into_iter().map(|p| p / grand).collect())
}

/// Recomputes an exact-Shapley record's shares from its coalition values (SPEC-III-G-2-04)
/// and returns them; a share off by more than [`SHAPLEY_EXACT_TOLERANCE`] is 7100 Shapley
/// Computation Divergence (PROFILE G-23).
pub fn verify_exact(record: &AttributionRecord) -> Result<Vec<f64>, AttributionError> {
    if record.methodology != Methodology::ExactShapley {
        return Err(AttributionError::NotExact(
            record.methodology.as_str().to_owned(),
        ));
    }
    let v = record.characteristic_function()?;
    let shares = shares_from(&v)?;
    for (index, (c, computed)) in record.contributors.iter().zip(&shares).enumerate() {
        let diff = (c.share - computed).abs();
        if diff.is_nan() || diff > SHAPLEY_EXACT_TOLERANCE {
            return Err(AttributionError::Divergence {
                index,
                agent: c.agent_id.as_str().to_owned(),
                recorded: c.share,
                computed: *computed,
            });
        }
    }
    Ok(shares)
}

impl CborObject for AttributionRecord {
    const NAME: &'static str = "attribution-record";

    fn json_hints() -> &'static [Hint] {
        &[
            Hint {
                path: "mandate_id",
                kind: Kind::Uuid,
            },
            Hint {
                path: "contributors[].share",
                kind: Kind::Float,
            },
            Hint {
                path: "error_bound",
                kind: Kind::Float,
            },
            Hint {
                path: "coalition_values.*",
                kind: Kind::Number,
            },
            Hint {
                path: "sampling.seed",
                kind: Kind::Bytes,
            },
            Hint {
                path: "signature.value",
                kind: Kind::Bytes,
            },
        ]
    }

    fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("mandate_id", uuid_value(&self.mandate_id))
            .put(
                "contributors",
                Value::Array(
                    self.contributors
                        .iter()
                        .map(Contributor::to_value)
                        .collect(),
                ),
            )
            .put("methodology", Value::text(self.methodology.as_str()))
            .put_opt("error_bound", self.error_bound.map(Value::Float))
            .put(
                "coalition_values",
                Value::Map(
                    self.coalition_values
                        .iter()
                        .map(|(k, v)| (Value::text(k.as_str()), v.to_value()))
                        .collect(),
                ),
            )
            .put_opt("sampling", self.sampling.as_ref().map(Sampling::to_value))
            .put_opt(
                "signature",
                self.signature.as_ref().map(Signature::to_value),
            )
            .extend_unknown(&self.unknown)
            .build()
    }

    fn from_value(v: &Value) -> Result<Self, ObjectError> {
        let req = RECORD_REQ;
        let mut r = MapReader::new(v, "")?;
        let mut errs = Errors::new();
        let mandate_id = errs
            .take(r.required("mandate_id", req))
            .and_then(|v| errs.take(read_uuid(v, "mandate_id", ObjectType::Mandate, req)));
        let contributors = errs.take(r.required("contributors", req)).and_then(|v| {
            let items = errs.take(read_array(v, "contributors", req))?;
            Some(
                items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, c)| {
                        errs.take_all(Contributor::from_value(c, &index_path("contributors", i)))
                    })
                    .collect::<Vec<_>>(),
            )
        });
        let methodology = errs
            .take(r.required("methodology", req))
            .and_then(|v| errs.take(read_text(v, "methodology", req)))
            .map(Methodology::parse);
        let error_bound = r
            .optional("error_bound")
            .and_then(|v| errs.take(read_error_bound(v, "error_bound", req)));
        let coalition_values = errs
            .take(r.required("coalition_values", VERIFIABLE_REQ))
            .and_then(|v| {
                let mut m = errs.take(MapReader::new(v, "coalition_values"))?;
                let keys: Vec<String> = v
                    .as_map()
                    .unwrap_or(&[])
                    .iter()
                    .filter_map(|(k, _)| k.as_text().map(str::to_owned))
                    .collect();
                let mut out = Vec::with_capacity(keys.len());
                for k in keys {
                    let p = join_path("coalition_values", &k);
                    if let Some(n) = m
                        .optional(&k)
                        .and_then(|x| errs.take(read_number(x, &p, VERIFIABLE_REQ)))
                    {
                        out.push((k, n));
                    }
                }
                Some(out)
            });
        let sampling = r
            .optional("sampling")
            .and_then(|v| errs.take_all(Sampling::from_value(v, "sampling")));
        let signature = read_signature_field(&mut r, req, &mut errs);
        let unknown = r.unknown();
        let record = match (
            mandate_id,
            contributors,
            methodology,
            coalition_values,
            signature,
        ) {
            (
                Some(mandate_id),
                Some(contributors),
                Some(methodology),
                Some(coalition_values),
                Some(sig),
            ) => Some(AttributionRecord {
                mandate_id,
                contributors,
                methodology,
                error_bound,
                coalition_values,
                sampling,
                signature: Some(sig),
                unknown,
            }),
            _ => None,
        };
        if let Some(rec) = &record {
            rec.check(&mut errs);
        }
        match record {
            Some(rec) if errs.is_empty() => {
                check_encodable(v)?;
                Ok(rec)
            }
            _ => Err(errs.into_object_error()),
        }
    }
}

crate::impl_single_signed!(AttributionRecord);

/// `attribution-config = { methodology: tstr, ? error_bound: float, ? permutations: uint }`
/// (Terms `attribution_method`; PROFILE G-23). `error_bound` is required for
/// `approximate_shapley`.
#[derive(Clone, Debug, PartialEq)]
pub struct AttributionConfig {
    pub methodology: Methodology,
    pub error_bound: Option<f64>,
    pub permutations: Option<u64>,
    pub unknown: Map,
}

impl AttributionConfig {
    /// Reads the config at `path` (e.g. `attribution_method` inside Terms).
    pub fn read(v: &Value, path: &str) -> Result<AttributionConfig, Vec<ValidationError>> {
        let req = RECORD_REQ;
        let mut r = MapReader::new(v, path).map_err(|e| vec![e])?;
        let mut errs = Errors::new();
        let methodology = errs
            .take(
                r.required("methodology", req)
                    .and_then(|v| read_text(v, &join_path(path, "methodology"), req)),
            )
            .map(Methodology::parse);
        let error_bound = r
            .optional("error_bound")
            .and_then(|v| errs.take(read_error_bound(v, &join_path(path, "error_bound"), req)));
        let permutations = r
            .optional("permutations")
            .and_then(|v| errs.take(read_uint(v, &join_path(path, "permutations"), req)));
        let unknown = r.unknown();
        if methodology == Some(Methodology::ApproximateShapley) && error_bound.is_none() {
            errs.push(ValidationError::missing(
                join_path(path, "error_bound"),
                req,
            ));
        }
        match methodology {
            Some(methodology) if errs.is_empty() => Ok(AttributionConfig {
                methodology,
                error_bound,
                permutations,
                unknown,
            }),
            _ => Err(errs.into_vec()),
        }
    }
}

impl CborObject for AttributionConfig {
    const NAME: &'static str = "attribution-config";

    fn json_hints() -> &'static [Hint] {
        &[Hint {
            path: "error_bound",
            kind: Kind::Float,
        }]
    }

    fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("methodology", Value::text(self.methodology.as_str()))
            .put_opt("error_bound", self.error_bound.map(Value::Float))
            .put_opt(
                "permutations",
                self.permutations.map(|n| Value::Integer(n.into())),
            )
            .extend_unknown(&self.unknown)
            .build()
    }

    fn from_value(v: &Value) -> Result<Self, ObjectError> {
        let c = AttributionConfig::read(v, "")?;
        check_encodable(v)?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn did(b: u8) -> Did {
        Did::from_digest([b; 32])
    }

    fn mid() -> MtpUuid {
        MtpUuid::new(ObjectType::Mandate, 1, [0; 6], [3; 17])
    }

    /// v(S) = (Σ_{i∈S} w_i)² — a superadditive game.
    fn game(w: &[f64]) -> Vec<f64> {
        (0..1usize << w.len())
            .map(|m| {
                let s: f64 = w
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| m & (1 << i) != 0)
                    .map(|(_, x)| x)
                    .sum();
                s * s
            })
            .collect()
    }

    #[test]
    fn known_three_player_example() {
        // Glove game: player 0 holds a left glove, players 1 and 2 right gloves.
        let mut v = vec![0.0; 8];
        for (m, x) in v.iter_mut().enumerate() {
            if m & 1 != 0 && m & 6 != 0 {
                *x = 1.0;
            }
        }
        let phi = shapley_exact(&v).unwrap();
        assert!(
            (phi[0] - 2.0 / 3.0).abs() < 1e-12
                && (phi[1] - 1.0 / 6.0).abs() < 1e-12
                && (phi[2] - 1.0 / 6.0).abs() < 1e-12
        );
        // Additive game: φ_i = the player's own value.
        let add: Vec<f64> = (0..8usize)
            .map(|m| {
                [10.0, 20.0, 30.0]
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| m & (1 << i) != 0)
                    .map(|(_, x)| x)
                    .sum()
            })
            .collect();
        assert_eq!(shapley_exact(&add).unwrap(), vec![10.0, 20.0, 30.0]);
    }

    #[test]
    fn axioms_for_two_to_ten_players() {
        for n in 2..=10usize {
            // players 0 and 1 symmetric; the last player is a dummy (weight 0).
            let mut w: Vec<f64> = (0..n).map(|i| 1.0 + i as f64 * 0.5).collect();
            w[1] = w[0];
            if n > 2 {
                w[n - 1] = 0.0;
            }
            let v = game(&w);
            let phi = shapley_exact(&v).unwrap();
            let total: f64 = phi.iter().sum();
            let grand = v[(1 << n) - 1];
            assert!(
                (total - grand).abs() <= 1e-9 * grand.abs().max(1.0),
                "efficiency n={n}"
            );
            assert!((phi[0] - phi[1]).abs() <= 1e-9, "symmetry n={n}");
            if n > 2 {
                // a dummy in a squared game is not null; use an additive dummy instead
                let mut v2 = v.clone();
                for (m, x) in v2.iter_mut().enumerate() {
                    *x = v[m & !(1 << (n - 1))];
                }
                let p2 = shapley_exact(&v2).unwrap();
                assert!(p2[n - 1].abs() <= 1e-12, "dummy n={n}");
            }
        }
        assert!(matches!(
            shapley_exact(&[0.0; 3]),
            Err(AttributionError::NotPowerOfTwo(3))
        ));
        assert!(matches!(
            shapley_exact(&vec![0.0; 1 << 11]),
            Err(AttributionError::PlayerCount(11))
        ));
        assert!(matches!(
            shapley_exact(&[0.0, f64::NAN]),
            Err(AttributionError::NotFinite(_))
        ));
    }

    #[test]
    fn coalition_keys() {
        assert_eq!(coalition_key(0), "");
        assert_eq!(coalition_key(0b101), "0,2");
        for n in 1..=10 {
            for m in 0..(1usize << n) {
                assert_eq!(parse_coalition_key(&coalition_key(m), n), Some(m));
            }
        }
        for bad in ["2,0", "0,0", "00", "1,", ",1", " 1", "3", "a", "01"] {
            assert_eq!(parse_coalition_key(bad, 3), None, "{bad:?}");
        }
    }

    fn record() -> AttributionRecord {
        let v: Vec<Number> = game(&[1.0, 2.0, 3.0])
            .into_iter()
            .map(|x| Number::from_f64(x).unwrap())
            .collect();
        let mut r = AttributionRecord::exact(mid(), vec![did(1), did(2), did(3)], &v).unwrap();
        r.signature = Some(Signature {
            algorithm: "ML-DSA-65".into(),
            key_id: None,
            value: vec![1],
            unknown: Map::new(),
        });
        r
    }

    #[test]
    fn record_round_trip_and_verification() {
        let r = record();
        let back = AttributionRecord::from_cbor(&r.to_cbor()).unwrap();
        assert_eq!(back, r);
        let shares = verify_exact(&back).unwrap();
        assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // (1+2+3)² = 36; φ = w_i·Σw = 6, 12, 18 → 1/6, 1/3, 1/2
        assert!((shares[2] - 0.5).abs() < 1e-12);
        let mut bad = r.clone();
        bad.contributors[0].share += 1e-6;
        bad.contributors[1].share -= 1e-6;
        let e = verify_exact(&bad).unwrap_err();
        assert_eq!(e.code(), ErrorCode::ShapleyComputationDivergence);
        assert!(matches!(e, AttributionError::Divergence { index: 0, .. }));
        let mut missing = r.clone();
        missing.coalition_values.retain(|(k, _)| k != "0,2");
        assert_eq!(
            verify_exact(&missing).unwrap_err(),
            AttributionError::MissingCoalition("0,2".into())
        );
    }

    #[test]
    fn record_structure_rules() {
        let r = record();
        let mut two = r.clone();
        two.contributors.truncate(2);
        assert!(
            AttributionRecord::from_value(&two.to_value())
                .unwrap_err()
                .has("contributors", MULTI_PARTY_REQ)
        );
        let mut sum = r.clone();
        sum.contributors[0].share = 0.9;
        assert!(
            AttributionRecord::from_value(&sum.to_value())
                .unwrap_err()
                .has("contributors", RECORD_REQ)
        );
        let mut approx = r.clone();
        approx.methodology = Methodology::ApproximateShapley;
        let e = AttributionRecord::from_value(&approx.to_value()).unwrap_err();
        assert!(
            e.has("error_bound", RECORD_REQ) && e.has("sampling", VERIFIABLE_REQ),
            "{e}"
        );
        approx.error_bound = Some(0.01);
        approx.sampling = Some(Sampling {
            permutations: 1000,
            seed: [9; 32],
            unknown: Map::new(),
        });
        assert_eq!(
            AttributionRecord::from_cbor(&approx.to_cbor()).unwrap(),
            approx
        );
        assert!(matches!(
            verify_exact(&approx),
            Err(AttributionError::NotExact(_))
        ));
        let mut eb = r.clone();
        eb.error_bound = Some(0.1);
        assert!(
            AttributionRecord::from_value(&eb.to_value())
                .unwrap_err()
                .has("error_bound", RECORD_REQ)
        );
        let mut key = r.clone();
        key.coalition_values.push(("0,7".into(), Number::Int(1)));
        assert!(
            AttributionRecord::from_value(&key.to_value())
                .unwrap_err()
                .has("coalition_values.0,7", VERIFIABLE_REQ)
        );
        let mut dup = r;
        dup.contributors[1].agent_id = did(1);
        assert!(AttributionRecord::from_value(&dup.to_value()).is_err());
    }

    #[test]
    fn config() {
        let c = AttributionConfig {
            methodology: Methodology::ApproximateShapley,
            error_bound: Some(0.5),
            permutations: Some(10),
            unknown: Map::new(),
        };
        assert_eq!(AttributionConfig::from_cbor(&c.to_cbor()).unwrap(), c);
        let bad = Value::map([("methodology", Value::text("approximate_shapley"))]);
        assert!(
            AttributionConfig::read(&bad, "attribution_method").unwrap_err()[0].path
                == "attribution_method.error_bound"
        );
        let other = Value::map([("methodology", Value::text("lemay.alt.v1"))]);
        assert_eq!(
            AttributionConfig::read(&other, "").unwrap().methodology,
            Methodology::Other("lemay.alt.v1".into())
        );
    }
}
