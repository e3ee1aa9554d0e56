//! The requirement traceability matrix: requirement id → the scenarios that check it →
//! their verdicts, with the requirement's overall status.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{Level, ScenarioResult, Verdict};

/// One scenario that checks a requirement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequirementScenario {
    pub scenario_id: String,
    pub level: Level,
    pub verdict: Verdict,
}

/// One requirement and how the run checked it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequirementRow {
    /// Id of `docs/requirements.yaml`.
    pub id: String,
    /// The worst verdict of its scenarios: `fail` > `error` > `inconclusive` > `pass` >
    /// `not_applicable`.
    pub status: Verdict,
    /// Scenarios sorted by id.
    pub scenarios: Vec<RequirementScenario>,
}

/// Severity for [`RequirementRow::status`].
fn severity(v: Verdict) -> u8 {
    match v {
        Verdict::NotApplicable => 0,
        Verdict::Pass => 1,
        Verdict::Inconclusive => 2,
        Verdict::Error => 3,
        Verdict::Fail => 4,
    }
}

/// Rows sorted by requirement id; a scenario listing an id twice counts once.
pub fn requirement_matrix(results: &[ScenarioResult]) -> Vec<RequirementRow> {
    let mut rows: BTreeMap<&str, Vec<RequirementScenario>> = BTreeMap::new();
    for r in results {
        for id in &r.requirements {
            let list = rows.entry(id.as_str()).or_default();
            if list.iter().any(|s| s.scenario_id == r.scenario_id) {
                continue;
            }
            list.push(RequirementScenario {
                scenario_id: r.scenario_id.clone(),
                level: r.level,
                verdict: r.verdict,
            });
        }
    }
    rows.into_iter()
        .map(|(id, mut scenarios)| {
            scenarios.sort_by(|a, b| a.scenario_id.cmp(&b.scenario_id));
            let status = scenarios
                .iter()
                .map(|s| s.verdict)
                .max_by_key(|v| severity(*v))
                .unwrap_or(Verdict::NotApplicable);
            RequirementRow {
                id: id.to_owned(),
                status,
                scenarios,
            }
        })
        .collect()
}
