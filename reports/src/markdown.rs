//! `summary.md`: a Markdown summary for a CI job log (GitHub step summary, GitLab job log):
//! the outcome, counts per verdict, layer and level, then every scenario that did not pass
//! with its requirement ids and replay command.

use std::fmt::Write as _;

use crate::baseline::Gate;
use crate::model::{Layer, Level, RunResults, ScenarioResult, Verdict, VerdictCounts};
use crate::text::{md, md_code};
use crate::view::{Shown, headline, headline_reason, seconds};

/// The Markdown summary of a run.
pub fn render(results: &RunResults, baseline: Option<&Gate>) -> String {
    let h = &results.header;
    let s = &results.summary;
    let mut t = String::new();
    let _ = writeln!(t, "# MTP conformance: {}\n", headline(results));
    let _ = writeln!(t, "{}\n", md(&headline_reason(results)));
    let _ = writeln!(
        t,
        "IUT **{}** · suite {} · executor {} · seed {} · started {} · {} scenarios in {} s\n",
        md(&h.iut.name),
        md(&h.suite_version),
        md(&h.executor),
        h.seed,
        md(&h.started),
        s.total,
        seconds(s.wall_ms)
    );

    t.push_str("| | pass | fail | inconclusive | error | n/a | total |\n");
    t.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
    count_row(&mut t, "**all**", &s.counts);
    for level in Level::ALL {
        if let Some(c) = s.by_level.get(&level) {
            count_row(&mut t, level.keyword(), c);
        }
    }
    for layer in Layer::ALL {
        if let Some(c) = s.by_layer.get(&layer) {
            count_row(&mut t, layer.name(), c);
        }
    }
    t.push('\n');

    let groups: [(&str, Shown); 4] = [
        ("Failed (MUST)", Shown::Fail),
        ("Errors", Shown::Error),
        ("Inconclusive", Shown::Inconclusive),
        (
            "Warnings (SHOULD / MAY failed, not blocking)",
            Shown::Warning,
        ),
    ];
    for (title, shown) in groups {
        let list: Vec<&ScenarioResult> = results
            .results
            .iter()
            .filter(|r| Shown::of(r) == shown)
            .collect();
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(t, "## {title} ({})\n", list.len());
        for r in list {
            scenario_item(&mut t, r);
        }
        t.push('\n');
    }

    if let Some(g) = baseline {
        t.push_str("## Baseline\n\n");
        for r in &g.regressions {
            let _ = writeln!(
                t,
                "- regression **{}**: {} → {}",
                md(&r.scenario_id),
                r.baseline,
                r.now
            );
        }
        list_line(&mut t, "new failures (fail the run)", &g.new_failures);
        list_line(
            &mut t,
            "expected failures that now pass (tighten the baseline)",
            &g.fixed,
        );
        list_line(&mut t, "known failures", &g.known);
        list_line(&mut t, "in the baseline but not run", &g.missing);
        let _ = writeln!(t, "- exit code under the baseline: {}\n", g.exit_code);
    }
    t
}

fn count_row(t: &mut String, label: &str, c: &VerdictCounts) {
    let _ = writeln!(
        t,
        "| {label} | {} | {} | {} | {} | {} | {} |",
        c.get(Verdict::Pass),
        c.get(Verdict::Fail),
        c.get(Verdict::Inconclusive),
        c.get(Verdict::Error),
        c.get(Verdict::NotApplicable),
        c.total()
    );
}

fn scenario_item(t: &mut String, r: &ScenarioResult) {
    let _ = writeln!(
        t,
        "- **{}** ({} {}, {}): {}",
        md(&r.scenario_id),
        r.level.keyword(),
        r.verdict.label(),
        r.layer.name(),
        md(&r.title)
    );
    let _ = writeln!(t, "  - reason: {}", md(&r.reason));
    let _ = writeln!(
        t,
        "  - requirements: {}",
        r.requirements
            .iter()
            .map(|id| md(id))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(t, "  - replay: {}", md_code(&r.replay));
}

fn list_line(t: &mut String, label: &str, ids: &[String]) {
    if ids.is_empty() {
        return;
    }
    let _ = writeln!(
        t,
        "- {label}: {}",
        ids.iter().map(|id| md(id)).collect::<Vec<_>>().join(", ")
    );
}
