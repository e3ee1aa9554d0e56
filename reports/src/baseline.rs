//! Baseline gating (`mtp-cert run --baseline FILE`): a run fails only on NEW blocking
//! results; expected failures that now pass are flagged so the baseline can be tightened.
//!
//! A baseline is a JSON report (`mtp-cert-report/1`, [`crate::json`]), a whole-run results
//! document (`mtp-cert-results/1`, [`RunResults`]) or a `results.jsonl`.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::json::{JsonReport, REPORT_SCHEMA};
use crate::model::{Comparison, RunResults, RunSummary, SCHEMA, ScenarioResult, Verdict, jsonl};

/// Why a baseline file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("empty results file")]
    Empty,
    #[error("unsupported baseline schema `{found}` (expected `{REPORT_SCHEMA}` or `{SCHEMA}`)")]
    Schema { found: String },
    #[error("not a `{schema}` document: {message}")]
    Json {
        schema: &'static str,
        message: String,
    },
    #[error("results.jsonl:{0}")]
    Jsonl(#[from] jsonl::JsonlError),
}

/// Which of the accepted formats a baseline was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaselineFormat {
    /// `report.json` (`mtp-cert-report/1`).
    Report,
    /// A [`RunResults`] document (`mtp-cert-results/1`).
    Results,
    /// `results.jsonl` (`mtp-cert-results/1` records).
    Jsonl,
}

/// The scenario results of a baseline run.
#[derive(Clone, Debug, PartialEq)]
pub struct Baseline {
    pub format: BaselineFormat,
    pub results: Vec<ScenarioResult>,
}

/// Parses a baseline in any accepted format (detected from its content).
pub fn parse(text: &str) -> Result<Baseline, BaselineError> {
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(BaselineError::Empty);
    }
    // One JSON document (not a JSONL record, which carries `record`)?
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text)
        && !map.contains_key("record")
    {
        let schema = map
            .get("schema")
            .and_then(|s| s.as_str())
            .unwrap_or_default()
            .to_owned();
        let value = serde_json::Value::Object(map);
        return match schema.as_str() {
            REPORT_SCHEMA => serde_json::from_value::<JsonReport>(value)
                .map(|r| Baseline {
                    format: BaselineFormat::Report,
                    results: r.results,
                })
                .map_err(|e| BaselineError::Json {
                    schema: REPORT_SCHEMA,
                    message: e.to_string(),
                }),
            SCHEMA => serde_json::from_value::<RunResults>(value)
                .map(|r| Baseline {
                    format: BaselineFormat::Results,
                    results: r.results,
                })
                .map_err(|e| BaselineError::Json {
                    schema: SCHEMA,
                    message: e.to_string(),
                }),
            _ => Err(BaselineError::Schema { found: schema }),
        };
    }
    match jsonl::parse(text)? {
        Some(c) => Ok(Baseline {
            format: BaselineFormat::Jsonl,
            results: c.results,
        }),
        None => Err(BaselineError::Empty),
    }
}

/// Reads and parses a baseline file.
pub fn read(path: &Path) -> Result<Baseline, BaselineError> {
    let text = std::fs::read_to_string(path).map_err(|source| BaselineError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text)
}

/// A scenario that passed in the baseline and does not now, or whose non-passing verdict
/// got worse (inconclusive → error → fail).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Regression {
    pub scenario_id: String,
    pub baseline: Verdict,
    pub now: Verdict,
}

/// The baseline decision for a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gate {
    /// Worse than in the baseline (blocking or not).
    pub regressions: Vec<Regression>,
    /// Did not pass in the baseline, pass now: tighten the baseline.
    pub fixed: Vec<String>,
    /// Same (or a less severe) non-passing verdict as in the baseline.
    pub known: Vec<String>,
    /// Not in the baseline.
    pub new: Vec<String>,
    /// In the baseline but not run now.
    pub missing: Vec<String>,
    /// Blocking results (applicable MUST not passed, or `error`) not known from the
    /// baseline: these, and only these, fail the run.
    pub new_failures: Vec<String>,
    /// `mtp-cert run` exit code under the baseline: 0 without new failures, else the
    /// outcome of the new failures alone (1, or 3 when they are all `error`).
    pub exit_code: u8,
}

impl Gate {
    /// Compares `run` with the baseline's results.
    pub fn evaluate(baseline: &[ScenarioResult], run: &RunResults) -> Gate {
        let cmp = Comparison::new(baseline, &run.results);
        let summary = RunSummary::from_results(&run.results);
        let known: BTreeSet<&str> = cmp.known.iter().map(String::as_str).collect();
        let blocking: BTreeSet<&str> = summary
            .mandatory_not_passed
            .iter()
            .chain(&summary.errors)
            .map(String::as_str)
            .collect();
        let new_failures: Vec<String> = blocking
            .into_iter()
            .filter(|id| !known.contains(id))
            .map(str::to_owned)
            .collect();
        let exit_code = if new_failures.is_empty() {
            0
        } else {
            RunSummary::from_results(
                run.results
                    .iter()
                    .filter(|r| new_failures.contains(&r.scenario_id)),
            )
            .outcome
            .exit_code()
        };
        let current: BTreeSet<&str> = run.results.iter().map(|r| r.scenario_id.as_str()).collect();
        let missing: BTreeSet<String> = baseline
            .iter()
            .map(|r| r.scenario_id.as_str())
            .filter(|id| !current.contains(id))
            .map(str::to_owned)
            .collect();
        Gate {
            regressions: cmp
                .regressions
                .into_iter()
                .map(|(scenario_id, baseline, now)| Regression {
                    scenario_id,
                    baseline,
                    now,
                })
                .collect(),
            fixed: cmp.fixed,
            known: cmp.known,
            new: cmp.new,
            missing: missing.into_iter().collect(),
            new_failures,
            exit_code,
        }
    }

    /// No new failures: the run passes the gate.
    pub fn passes(&self) -> bool {
        self.new_failures.is_empty()
    }

    /// Terminal lines for `mtp-cert run` (one finding per line).
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.regressions {
            out.push(format!(
                "REGRESSION {}: {} -> {}",
                r.scenario_id, r.baseline, r.now
            ));
        }
        if !self.new_failures.is_empty() {
            out.push(format!(
                "new failures (not in the baseline): {}",
                self.new_failures.join(", ")
            ));
        }
        if !self.fixed.is_empty() {
            out.push(format!(
                "expected failures that now pass (tighten the baseline): {}",
                self.fixed.join(", ")
            ));
        }
        if !self.missing.is_empty() {
            out.push(format!(
                "in the baseline but not run: {}",
                self.missing.join(", ")
            ));
        }
        out.push(if self.passes() {
            format!(
                "baseline: no new failures ({} known) -> exit 0",
                self.known.len()
            )
        } else {
            format!(
                "baseline: {} new failure(s) -> exit {}",
                self.new_failures.len(),
                self.exit_code
            )
        });
        out
    }
}
