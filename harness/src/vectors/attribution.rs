//! Shapley attribution vectors (SPEC III-G; PROFILE G-23), folder `attribution/`: exact
//! records for 3 to 10 contributors over games with known Shapley values (glove game,
//! dummy player, symmetric majority, pairwise synergy, additivity), approximate
//! permutation-sampling records for 11 to 20 contributors (the PROFILE G-23 SHA-256
//! counter-mode shuffle, replayable bit for bit from the recorded seed) within their error
//! bound of the exact values, and a record with tampered shares (7100).
//!
//! Every record is signed by the world's provider (`#key-1`, ML-DSA-65). Contributor `i`
//! has the DID `did:mtp:` ‖ base58btc(SHA-256("attribution/contributor/<i>")) (no keys:
//! contributors only need identifiers). Seeds: `attribution/<name>/seed`.

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};

use mtp_protocol::attribution::{AttributionRecord, coalition_key, shapley_exact, verify_exact};
use mtp_protocol::cbor::{self, Value};
use mtp_protocol::crypto::{seed, sha256};
use mtp_protocol::errors::Coded;
use mtp_protocol::identity::Did;
use mtp_protocol::primitives::common::{CborObject, Number};
use mtp_reference_agent::layers::attribution::{approximate_record, sample_shapley, verify_record};

use super::catalogue::{catalogue, sign_single};
use super::doc::{VectorDoc, files_of};
use super::world::{set_path, world};
use super::{At, MASTER, VectorError, VectorFile, ensure, input_error};

/// The family name (folder under `vectors/`).
pub const FAMILY: &str = "attribution";

/// Share error bound of the approximate records.
pub const ERROR_BOUND: f64 = 0.02;

fn contributor(i: usize) -> Did {
    Did::from_digest(sha256(format!("attribution/contributor/{i}").as_bytes()))
}

/// A cooperative game: its name, formula, and v(S) by bitmask.
struct Game {
    description: String,
    v: Box<dyn Fn(usize) -> i128>,
    /// The exact Shapley values when known in closed form (large n).
    closed_form: Option<Vec<f64>>,
}

fn synergy(n: usize) -> Game {
    let w = |i: usize| 10 * (i as i128 + 1);
    let c = 3i128;
    Game {
        description: format!(
            "pairwise synergy over {n} contributors: v(S) = sum of w_i over S + 3 * |S|(|S|-1)/2 \
             with w_i = 10(i+1); Shapley value phi_i = w_i + 3(n-1)/2"
        ),
        v: Box::new(move |mask| {
            let k = mask.count_ones() as i128;
            let sum: i128 = (0..n).filter(|i| mask & (1 << i) != 0).map(w).sum();
            sum + c * k * (k - 1) / 2
        }),
        closed_form: Some(
            (0..n)
                .map(|i| w(i) as f64 + 3.0 * (n as f64 - 1.0) / 2.0)
                .collect(),
        ),
    }
}

fn values(n: usize, g: &Game) -> Vec<Number> {
    (0..1usize << n).map(|m| Number::Int((g.v)(m))).collect()
}

fn signed(vector: &str, record: &AttributionRecord) -> Result<Value, VectorError> {
    let w = world()?;
    sign_single(vector, &record.to_value(), &w.provider, 1)
}

fn codec(ok: bool, code: Option<u16>) -> Result<Json, VectorError> {
    let w = world()?;
    let pk = w.provider.key("attribution", 1)?.public_key();
    let mut verify = json!({
        "ok": true,
        "public_key": {"alg": pk.algorithm().label(), "key": hex::encode(pk.as_bytes())},
    });
    let mut c = json!({"type": "attribution_record", "valid": ok});
    if ok {
        c["operations"] = json!(["encode", "parse", "verify"]);
    } else {
        // The signature is valid; the shares are not (7100 when recomputed).
        c["operations"] = json!(["verify"]);
        verify["ok"] = json!(true);
        if let Some(code) = code {
            c["recompute_code"] = json!(code);
        }
    }
    c["verify"] = verify;
    Ok(c)
}

fn exact(name: &str, n: usize, g: &Game, extra: &[&'static str]) -> Result<VectorDoc, VectorError> {
    let id = format!("{FAMILY}/{name}");
    let cat = catalogue()?;
    let vals = values(n, g);
    let contributors: Vec<Did> = (0..n).map(contributor).collect();
    let record = AttributionRecord::exact(cat.mandate_id, contributors.clone(), &vals).at(&id)?;
    let phi = shapley_exact(&vals.iter().map(|x| x.as_f64()).collect::<Vec<_>>()).at(&id)?;
    let grand = vals.last().map(|x| x.as_f64()).unwrap_or(0.0);
    // Efficiency; closed form where known.
    let sum: f64 = record.contributors.iter().map(|c| c.share).sum();
    ensure(&id, (sum - 1.0).abs() <= 1e-9, || {
        format!("shares sum to {sum}")
    })?;
    if let Some(cf) = &g.closed_form {
        for (i, (a, b)) in phi.iter().zip(cf).enumerate() {
            ensure(&id, (a - b).abs() <= 1e-9, || {
                format!("phi_{i} = {a}, closed form {b}")
            })?;
        }
    }
    let value = signed(&id, &record)?;
    let bytes = cbor::to_vec(&value).at(&id)?;
    let parsed = AttributionRecord::from_cbor(&bytes).at(&id)?;
    verify_exact(&parsed).at(&id)?;
    let table: Vec<Json> = (0..1usize << n)
        .map(|m| json!([coalition_key(m), (g.v)(m).to_string()]))
        .collect();
    Ok(VectorDoc::new(
        id,
        &[
            &[
                "SPEC-III-G-1-01",
                "SPEC-III-G-1-02",
                "SPEC-III-G-2-04",
                "SPEC-III-G-2-02",
            ][..],
            extra,
        ]
        .concat(),
        &format!(
            "Exact Shapley attribution (PROFILE G-23) for a {}. Shares = phi_i / v(N), summing \
             to 1 within 1e-9; every participant recomputes them from the published coalition \
             values (2^{n} coalitions). Signed by the provider.",
            g.description
        ),
    )
    .input(
        "contributors",
        json!(contributors.iter().map(Did::as_str).collect::<Vec<_>>()),
    )
    .input("coalition_values", Json::Array(table))
    .expected("shapley_values", json!(phi))
    .expected("grand_coalition_value", grand)
    .expected(
        "shares",
        json!(
            record
                .contributors
                .iter()
                .map(|c| c.share)
                .collect::<Vec<_>>()
        ),
    )
    .expected("tolerance", 1e-9)
    .codec(codec(true, None)?)
    .bytes(bytes))
}

fn approximate(n: usize, permutations: u64) -> Result<VectorDoc, VectorError> {
    let name = format!("approximate-n{n}");
    let id = format!("{FAMILY}/{name}");
    let cat = catalogue()?;
    let g = synergy(n);
    let seed_label = format!("{FAMILY}/{name}/seed");
    let s = seed::derive(&MASTER, &seed_label);
    let visit = sample_shapley(n, permutations, s, |m| Some((g.v)(m) as f64))
        .map_err(|e| input_error(&id, e.to_string()))?;
    let table: BTreeMap<usize, Number> = visit
        .visited
        .iter()
        .map(|m| (*m, Number::Int((g.v)(*m))))
        .collect();
    let contributors: Vec<Did> = (0..n).map(contributor).collect();
    let record = approximate_record(
        cat.mandate_id,
        contributors.clone(),
        &table,
        ERROR_BOUND,
        0.95,
        Some(permutations),
        s,
    )
    .map_err(|e| input_error(&id, e.to_string()))?;
    let full = (1usize << n) - 1;
    let grand = (g.v)(full) as f64;
    let exact_phi = g.closed_form.clone().unwrap_or_default();
    let mut max_err = 0.0f64;
    for (c, e) in record.contributors.iter().zip(&exact_phi) {
        max_err = max_err.max((c.share - e / grand).abs());
    }
    ensure(&id, max_err <= ERROR_BOUND, || {
        format!("approximation error {max_err} above the bound {ERROR_BOUND}")
    })?;
    let value = signed(&id, &record)?;
    let bytes = cbor::to_vec(&value).at(&id)?;
    let parsed = AttributionRecord::from_cbor(&bytes).at(&id)?;
    let replayed = verify_record(&parsed).map_err(|e| input_error(&id, e.to_string()))?;
    for (a, c) in replayed.iter().zip(&parsed.contributors) {
        ensure(&id, a.to_bits() == c.share.to_bits(), || {
            "the sampling does not replay bit for bit".into()
        })?;
    }
    Ok(VectorDoc::new(
        id,
        &[
            "SPEC-III-G-1-01",
            "SPEC-III-G-1-03",
            "SPEC-III-G-2-04",
            "SPEC-III-G-2-02",
        ],
        &format!(
            "Approximate Shapley attribution (PROFILE G-23) for the {}: {permutations} \
             permutations from the SHA-256 counter-mode PRNG (block j = SHA-256(seed || \
             uint64-be(j)), uint64-be words), Fisher-Yates from the end, phi_i = mean marginal \
             contribution; the record publishes every coalition visited. Replaying the \
             sampling from the seed reproduces the shares bit for bit; every share is within \
             error_bound {ERROR_BOUND} of the exact share (max error recorded).",
            g.description
        ),
    )
    .input(
        "contributors",
        json!(contributors.iter().map(Did::as_str).collect::<Vec<_>>()),
    )
    .input("game", g.description.clone())
    .input("permutations", permutations)
    .input("seed_label", seed_label)
    .input("seed", hex::encode(s))
    .input("error_bound", ERROR_BOUND)
    .expected(
        "shares",
        json!(
            record
                .contributors
                .iter()
                .map(|c| c.share)
                .collect::<Vec<_>>()
        ),
    )
    .expected(
        "exact_shares",
        json!(exact_phi.iter().map(|p| p / grand).collect::<Vec<_>>()),
    )
    .expected("max_abs_error", max_err)
    .expected("coalitions_published", record.coalition_values.len())
    .codec(codec(true, None)?)
    .bytes(bytes))
}

fn additivity() -> Result<VectorDoc, VectorError> {
    let name = "additivity-n4";
    let id = format!("{FAMILY}/{name}");
    let n = 4;
    let v1 = move |m: usize| -> i128 {
        (0..n)
            .filter(|i| m & (1 << i) != 0)
            .map(|i| 10 * (i as i128 + 1))
            .sum()
    };
    let v2 = move |m: usize| -> i128 { if m.count_ones() >= 2 { 12 } else { 0 } };
    let f = |g: &dyn Fn(usize) -> i128| -> Result<Vec<f64>, VectorError> {
        shapley_exact(&(0..1usize << n).map(|m| g(m) as f64).collect::<Vec<_>>()).at(&id)
    };
    let p1 = f(&v1)?;
    let p2 = f(&v2)?;
    let sum = Game {
        description: "sum of an additive game (w = 10, 20, 30, 40) and a symmetric game \
                      (v(S) = 12 when |S| >= 2)"
            .into(),
        v: Box::new(move |m| v1(m) + v2(m)),
        closed_form: None,
    };
    let p = f(&*sum.v)?;
    for i in 0..n {
        ensure(&id, (p[i] - p1[i] - p2[i]).abs() <= 1e-9, || {
            format!("phi_{i} is not additive")
        })?;
    }
    let doc = exact(name, n, &sum, &["SPEC-III-G-1-I01"])?;
    Ok(doc
        .expected("shapley_values_additive_part", json!(p1))
        .expected("shapley_values_symmetric_part", json!(p2)))
}

fn tampered() -> Result<VectorDoc, VectorError> {
    let id = format!("{FAMILY}/tampered-shares");
    let cat = catalogue()?;
    let n = 3;
    let g = glove();
    let vals = values(n, &g);
    let record = AttributionRecord::exact(cat.mandate_id, (0..n).map(contributor).collect(), &vals)
        .at(&id)?;
    let mut v = record.to_value();
    let shares: Vec<f64> = record.contributors.iter().map(|c| c.share).collect();
    // Swap the shares of contributors 0 and 1 (the sum stays 1).
    if let (Some(a), Some(b)) = (shares.first(), shares.get(1)) {
        let cs: Vec<Value> = v
            .get("contributors")
            .and_then(Value::as_array)
            .map(|a| a.to_vec())
            .unwrap_or_default();
        let mut cs2 = cs.clone();
        if let Some(c) = cs2.get_mut(0) {
            *c = set_path(c, "share", Value::Float(*b));
        }
        if let Some(c) = cs2.get_mut(1) {
            *c = set_path(c, "share", Value::Float(*a));
        }
        v = set_path(&v, "contributors", Value::Array(cs2));
    }
    let w = world()?;
    let value = sign_single(&id, &v, &w.provider, 1)?;
    let bytes = cbor::to_vec(&value).at(&id)?;
    let parsed = AttributionRecord::from_cbor(&bytes).at(&id)?;
    let err = match verify_exact(&parsed) {
        Ok(_) => {
            return Err(VectorError::SelfCheck {
                vector: id,
                what: "tampered shares verify".into(),
            });
        }
        Err(e) => e,
    };
    let code = err.code().as_u16();
    ensure(&id, code == 7100, || format!("code {code}"))?;
    Ok(VectorDoc::new(
        id,
        &["SPEC-III-G-2-04", "SPEC-III-G-1-02", "BIND-XI-I02"],
        "attribution/exact-n3-glove with the shares of contributors 0 and 1 swapped, then \
         signed: the signature verifies and the shares still sum to 1, but recomputing them \
         from the published coalition values diverges; refused with 7100 Shapley Computation \
         Divergence.",
    )
    .input("base", format!("{FAMILY}/exact-n3-glove"))
    .expected("valid", false)
    .expected("code", code)
    .expected("error", err.to_string())
    .codec(codec(false, Some(code))?)
    .bytes(bytes))
}

fn glove() -> Game {
    Game {
        description: "glove game: contributor 0 holds a left glove, 1 and 2 right gloves; \
                      v(S) = 1 when S holds a pair; Shapley values 2/3, 1/6, 1/6"
            .into(),
        v: Box::new(|m| i128::from(m & 1 != 0 && m & 6 != 0)),
        closed_form: Some(vec![2.0 / 3.0, 1.0 / 6.0, 1.0 / 6.0]),
    }
}

/// Generates the family's files.
pub fn generate() -> Result<Vec<VectorFile>, VectorError> {
    let mut docs = vec![
        exact("exact-n3-glove", 3, &glove(), &["SPEC-III-G-1-I01"])?,
        exact(
            "exact-n4-dummy",
            4,
            &Game {
                description: "additive game with a dummy: w = 40, 30, 20, 0, v(S) = sum of w \
                              over S; contributor 3 adds nothing and gets 0"
                    .into(),
                v: Box::new(|m| {
                    [40i128, 30, 20, 0]
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| m & (1 << i) != 0)
                        .map(|(_, w)| *w)
                        .sum()
                }),
                closed_form: Some(vec![40.0, 30.0, 20.0, 0.0]),
            },
            &["SPEC-III-G-1-I01"],
        )?,
        exact(
            "exact-n5-majority",
            5,
            &Game {
                description: "symmetric majority game: v(S) = 1 when |S| >= 3; every \
                              contributor gets 1/5"
                    .into(),
                v: Box::new(|m| i128::from(m.count_ones() >= 3)),
                closed_form: Some(vec![0.2; 5]),
            },
            &["SPEC-III-G-1-I01"],
        )?,
        additivity()?,
    ];
    for n in 6..=10 {
        docs.push(exact(&format!("exact-n{n}-synergy"), n, &synergy(n), &[])?);
    }
    for (n, m) in [(11, 1000), (12, 1000), (16, 300), (20, 200)] {
        docs.push(approximate(n, m)?);
    }
    docs.push(tampered()?);
    files_of(&docs)
}
