//! The JSON report, schema `mtp-cert-report/1` (documented in `docs/report-schema.md`): the
//! run header, the summary (per layer and per level counts), the requirement traceability
//! matrix, the baseline decision when there is one, and every scenario result.

use serde::{Deserialize, Serialize};

use crate::baseline::Gate;
use crate::matrix::{RequirementRow, requirement_matrix};
use crate::model::{RunHeader, RunResults, RunSummary, ScenarioResult};

/// Schema identifier of the JSON report; changes only when a field changes meaning.
pub const REPORT_SCHEMA: &str = "mtp-cert-report/1";

/// `report.json`. Fields serialise in declaration order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JsonReport {
    /// Always [`REPORT_SCHEMA`].
    pub schema: String,
    /// Schema of `header` and `results` (`mtp-cert-results/1`).
    pub results_schema: String,
    pub header: RunHeader,
    pub summary: RunSummary,
    pub requirements: Vec<RequirementRow>,
    /// `null` without `--baseline`.
    pub baseline: Option<Gate>,
    /// Sorted by scenario id.
    pub results: Vec<ScenarioResult>,
}

impl JsonReport {
    pub fn new(results: &RunResults, baseline: Option<&Gate>) -> JsonReport {
        JsonReport {
            schema: REPORT_SCHEMA.to_owned(),
            results_schema: results.schema.clone(),
            header: results.header.clone(),
            summary: results.summary.clone(),
            requirements: requirement_matrix(&results.results),
            baseline: baseline.cloned(),
            results: results.results.clone(),
        }
    }
}

/// `report.json` text: pretty-printed, two-space indent, trailing newline.
pub fn render(results: &RunResults, baseline: Option<&Gate>) -> Result<String, serde_json::Error> {
    let mut s = serde_json::to_string_pretty(&JsonReport::new(results, baseline))?;
    s.push('\n');
    Ok(s)
}
