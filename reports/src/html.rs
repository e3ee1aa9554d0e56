//! `report.html`: one self-contained page (inline CSS and JS, no external asset, a
//! Content-Security-Policy that forbids fetching any), readable without JS. Summary per
//! layer and per level, the requirement traceability matrix, every scenario with filters by
//! layer and verdict, and the evidence of each scenario that did not pass (deciding step,
//! expected vs observed, replay command, transcript in CBOR diagnostic notation). Every
//! string from the results is HTML-escaped ([`crate::text::html`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::baseline::Gate;
use crate::matrix::requirement_matrix;
use crate::model::{Layer, Level, RunOutcome, RunResults, ScenarioResult, Verdict, VerdictCounts};
use crate::text::html as esc;
use crate::view::{
    Shown, deciding_step, direction_name, headline, headline_reason, is_dry_run, phase_name,
    seconds,
};

const STYLE: &str = r#"
:root{--pass:#1a7f37;--fail:#cf222e;--warning:#9a6700;--error:#8250df;--inconclusive:#bc4c00;--na:#6e7781;--bg:#f6f8fa;--fg:#1f2328;--muted:#59636e;--line:#d1d9e0}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif;color:var(--fg);background:#fff}
main{max-width:1240px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0 12px}
h2{font-size:18px;margin:28px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-size:15px;margin:0 0 8px}
a{color:#0969da;text-decoration:none}
a:hover{text-decoration:underline}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:12.5px}
pre{background:var(--bg);border:1px solid var(--line);border-radius:6px;padding:8px 10px;margin:4px 0 10px;white-space:pre-wrap;overflow-wrap:anywhere}
td:first-child code{white-space:nowrap}
table{border-collapse:collapse;width:100%;margin:6px 0 14px}
th,td{border-bottom:1px solid var(--line);padding:5px 8px;text-align:left;vertical-align:top}
th{background:var(--bg);font-weight:600}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.banner{display:flex;align-items:center;gap:16px;border-radius:8px;padding:12px 16px;color:#fff;margin-bottom:14px}
.banner strong{font-size:20px;letter-spacing:.5px}
.banner.certified{background:var(--pass)}
.banner.failed{background:var(--fail)}
.banner.infrastructure_error{background:var(--error)}
.banner.dry{background-image:repeating-linear-gradient(135deg,rgba(255,255,255,.18) 0 12px,transparent 12px 24px)}
.meta{display:grid;grid-template-columns:repeat(4,minmax(0,1fr));gap:6px 18px;margin:0 0 8px}
.meta div{min-width:0}
.meta dt{color:var(--muted);font-size:12px}
.meta dd{margin:0;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.cards{display:flex;gap:10px;flex-wrap:wrap;margin:10px 0 6px}
.card{flex:1 1 120px;border:1px solid var(--line);border-top:4px solid var(--na);border-radius:6px;padding:8px 12px}
.card b{display:block;font-size:24px}
.card span{color:var(--muted)}
.card.pass{border-top-color:var(--pass)}.card.fail{border-top-color:var(--fail)}.card.warning{border-top-color:var(--warning)}
.card.error{border-top-color:var(--error)}.card.inconclusive{border-top-color:var(--inconclusive)}
.cols{display:grid;grid-template-columns:3fr 2fr;gap:24px}
.bar{display:flex;height:12px;min-width:120px;border-radius:3px;overflow:hidden;background:var(--bg)}
.bar i{display:block;height:100%}
.bar .pass,.badge.pass{background:var(--pass)}.bar .fail,.badge.fail{background:var(--fail)}
.bar .warning,.badge.warning{background:var(--warning)}.bar .error,.badge.error{background:var(--error)}
.bar .inconclusive,.badge.inconclusive{background:var(--inconclusive)}.bar .not_applicable,.badge.not_applicable{background:var(--na)}
.badge{display:inline-block;color:#fff;border-radius:10px;padding:0 8px;font-size:12px;font-weight:600;white-space:nowrap}
.chip{display:inline-block;border:1px solid var(--line);border-radius:10px;padding:0 6px;margin:1px 2px;font-size:12px;white-space:nowrap}
.chip::before{content:"";display:inline-block;width:8px;height:8px;border-radius:50%;margin-right:4px;background:var(--na)}
.chip.pass::before{background:var(--pass)}.chip.fail::before{background:var(--fail)}.chip.warning::before{background:var(--warning)}
.chip.error::before{background:var(--error)}.chip.inconclusive::before{background:var(--inconclusive)}
.filters{display:flex;gap:14px;align-items:center;flex-wrap:wrap;background:var(--bg);border:1px solid var(--line);border-radius:6px;padding:8px 12px}
.filters label{font-weight:600}
.filters select{margin-left:6px}
.muted{color:var(--muted)}
ul.ids{margin:4px 0 10px;padding-left:20px}
article{border:1px solid var(--line);border-left:4px solid var(--na);border-radius:6px;padding:10px 14px;margin:12px 0}
article.fail{border-left-color:var(--fail)}article.warning{border-left-color:var(--warning)}
article.error{border-left-color:var(--error)}article.inconclusive{border-left-color:var(--inconclusive)}
article dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:0 0 8px}
article dt{color:var(--muted)}article dd{margin:0}
.entry{margin-top:6px}
[hidden]{display:none!important}
@media print{.filters{display:none}}
"#;

const SCRIPT: &str = r#"
(function () {
  'use strict';
  var layer = document.getElementById('f-layer');
  var verdict = document.getElementById('f-verdict');
  var count = document.getElementById('f-count');
  var rows = document.querySelectorAll('tr[data-shown]');
  var items = document.querySelectorAll('[data-shown]');
  function apply() {
    var l = layer.value, v = verdict.value, shown = 0;
    for (var i = 0; i < items.length; i++) {
      var el = items[i];
      var ok = (l === '' || el.getAttribute('data-layer') === l) &&
               (v === '' || el.getAttribute('data-shown') === v);
      el.hidden = !ok;
      if (ok && el.tagName === 'TR') { shown++; }
    }
    count.textContent = shown + ' of ' + rows.length + ' scenarios shown';
  }
  layer.addEventListener('change', apply);
  verdict.addEventListener('change', apply);
  var nodes = document.querySelectorAll('[data-filter-verdict]');
  for (var j = 0; j < nodes.length; j++) {
    nodes[j].addEventListener('click', function (ev) {
      verdict.value = ev.currentTarget.getAttribute('data-filter-verdict');
      layer.value = '';
      apply();
    });
  }
  document.getElementById('filters').hidden = false;
  apply();
  document.body.setAttribute('data-ready', '1');
})();
"#;

/// Shown tokens in display order, with their labels.
const SHOWN: [(Shown, &str); 6] = [
    (Shown::Pass, "pass"),
    (Shown::Fail, "fail"),
    (Shown::Warning, "warning"),
    (Shown::Inconclusive, "inconclusive"),
    (Shown::Error, "error"),
    (Shown::NotApplicable, "n/a"),
];

/// The HTML report. `requirement_texts` maps requirement ids to their text (optional).
pub fn render(
    results: &RunResults,
    baseline: Option<&Gate>,
    requirement_texts: &BTreeMap<String, String>,
) -> String {
    let h = &results.header;
    let s = &results.summary;
    let mut t = String::with_capacity(64 * 1024);
    let _ = write!(
        t,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n\
         <title>MTP conformance report: {} ({})</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n",
        esc(&h.iut.name),
        esc(&headline(results))
    );

    // Header: outcome and what was tested.
    let outcome = match s.outcome {
        RunOutcome::Certified => "certified",
        RunOutcome::Failed => "failed",
        RunOutcome::InfrastructureError => "infrastructure_error",
    };
    let dry = if is_dry_run(results) { " dry" } else { "" };
    let _ = write!(
        t,
        "<h1>MTP conformance report</h1>\n\
         <div class=\"banner {outcome}{dry}\" id=\"outcome\"><strong>{}</strong><span>{}</span></div>\n<dl class=\"meta\">",
        esc(&headline(results)),
        esc(&headline_reason(results))
    );
    let seed = h.seed.to_string();
    let wall = format!("{} s", seconds(s.wall_ms));
    for (k, v, mono) in [
        ("IUT", h.iut.name.as_str(), false),
        (
            "IUT description SHA-256",
            h.iut.description_sha256.as_str(),
            true,
        ),
        ("Executor", h.executor.as_str(), false),
        ("Suite version", h.suite_version.as_str(), false),
        ("Run seed", seed.as_str(), true),
        ("Started", h.started.as_str(), false),
        ("Wall time", wall.as_str(), false),
        ("Results schema", results.schema.as_str(), true),
    ] {
        let _ = write!(
            t,
            "<div><dt>{k}</dt><dd{} title=\"{v}\">{v}</dd></div>",
            if mono { " class=\"mono\"" } else { "" },
            v = esc(v)
        );
    }
    t.push_str("</dl>\n");

    // Summary.
    let warnings = results
        .results
        .iter()
        .filter(|r| Shown::of(r) == Shown::Warning)
        .count();
    t.push_str("<section id=\"summary\">\n<h2>Summary</h2>\n<div class=\"cards\">");
    let _ = write!(
        t,
        "<div class=\"card\"><b>{}</b><span>scenarios</span></div>",
        s.total
    );
    for (shown, label) in SHOWN {
        let n = shown_count(results, shown);
        let _ = write!(
            t,
            "<div class=\"card {tok}\" data-filter-verdict=\"{tok}\" title=\"show only {label}\"><b>{n}</b><span>{label}</span></div>",
            tok = shown.token()
        );
    }
    t.push_str("</div>\n");
    if warnings > 0 {
        let _ = writeln!(
            t,
            "<p class=\"muted\">A failed SHOULD or MAY scenario is a warning: it is counted as \
             <code>fail</code> in the tables and never blocks certification.</p>"
        );
    }
    t.push_str("<div class=\"cols\"><div>\n<h3>Per layer</h3>\n");
    counts_table(
        &mut t,
        "layer",
        Layer::ALL
            .iter()
            .filter_map(|l| s.by_layer.get(l).map(|c| (l.name().to_owned(), c))),
        &s.counts,
    );
    t.push_str("</div><div>\n<h3>Per level</h3>\n");
    counts_table(
        &mut t,
        "level",
        Level::ALL
            .iter()
            .filter_map(|l| s.by_level.get(l).map(|c| (l.keyword().to_owned(), c))),
        &s.counts,
    );
    id_list(
        &mut t,
        "Applicable MUST scenarios not passed",
        &s.mandatory_not_passed,
    );
    id_list(&mut t, "Infrastructure errors", &s.errors);
    let warning_ids: Vec<String> = results
        .results
        .iter()
        .filter(|r| Shown::of(r) == Shown::Warning)
        .map(|r| r.scenario_id.clone())
        .collect();
    id_list(&mut t, "Warnings (SHOULD / MAY failed)", &warning_ids);
    t.push_str("</div></div>\n</section>\n");

    if let Some(g) = baseline {
        baseline_section(&mut t, g);
    }

    // Requirement traceability matrix.
    let matrix = requirement_matrix(&results.results);
    let _ = write!(
        t,
        "<section id=\"requirements\">\n<h2>Requirement traceability ({} requirements)</h2>\n\
         <table><thead><tr><th>Requirement</th><th>Status</th><th>Scenarios</th></tr></thead><tbody>\n",
        matrix.len()
    );
    for row in &matrix {
        let text = requirement_texts
            .get(&row.id)
            .map(|x| format!("<div class=\"muted\">{}</div>", esc(x)))
            .unwrap_or_default();
        let _ = write!(
            t,
            "<tr><td><code>{}</code>{text}</td><td>{}</td><td>",
            esc(&row.id),
            verdict_badge(row.status)
        );
        for sc in &row.scenarios {
            let tok = shown_token(sc.level, sc.verdict);
            let _ = write!(
                t,
                "<a class=\"chip {tok}\" href=\"#{anchor}\" title=\"{lvl} {verdict}\">{id}</a>",
                anchor = anchor(&sc.scenario_id),
                lvl = sc.level.keyword(),
                verdict = sc.verdict.name(),
                id = esc(&sc.scenario_id)
            );
        }
        t.push_str("</td></tr>\n");
    }
    t.push_str("</tbody></table>\n</section>\n");

    // Scenarios with filters.
    t.push_str("<section id=\"scenarios\">\n<h2>Scenarios</h2>\n");
    t.push_str(
        "<div class=\"filters\" id=\"filters\" hidden><label for=\"f-layer\">Layer<select id=\"f-layer\"><option value=\"\">all</option>",
    );
    for l in Layer::ALL {
        if s.by_layer.contains_key(&l) {
            let _ = write!(t, "<option value=\"{0}\">{0}</option>", l.name());
        }
    }
    t.push_str("</select></label><label for=\"f-verdict\">Verdict<select id=\"f-verdict\"><option value=\"\">all</option>");
    for (shown, label) in SHOWN {
        let _ = write!(t, "<option value=\"{}\">{label}</option>", shown.token());
    }
    t.push_str("</select></label><span class=\"muted\" id=\"f-count\"></span></div>\n");
    t.push_str(
        "<table><thead><tr><th>Scenario</th><th>Title</th><th>Layer</th><th>Level</th><th>Verdict</th><th>Reason</th><th class=\"n\">Time (s)</th></tr></thead><tbody>\n",
    );
    for r in &results.results {
        let shown = Shown::of(r);
        let id_cell = if has_evidence(shown) {
            format!(
                "<a href=\"#{}\"><code>{}</code></a>",
                anchor(&r.scenario_id),
                esc(&r.scenario_id)
            )
        } else {
            format!(
                "<code id=\"{}\">{}</code>",
                anchor(&r.scenario_id),
                esc(&r.scenario_id)
            )
        };
        let _ = writeln!(
            t,
            "<tr data-layer=\"{layer}\" data-shown=\"{tok}\"><td>{id_cell}</td><td>{title}</td><td>{layer}</td><td>{lvl}</td><td>{badge}</td><td>{reason}</td><td class=\"n\">{time}</td></tr>",
            layer = r.layer.name(),
            tok = shown.token(),
            title = esc(&r.title),
            lvl = r.level.keyword(),
            badge = shown_badge(shown),
            reason = esc(&r.reason),
            time = seconds(r.duration_ms)
        );
    }
    t.push_str("</tbody></table>\n</section>\n");

    // Evidence of every scenario that did not pass.
    t.push_str("<section id=\"evidence\">\n<h2>Evidence</h2>\n");
    let mut any = false;
    for r in &results.results {
        let shown = Shown::of(r);
        if has_evidence(shown) {
            any = true;
            evidence(&mut t, r, shown);
        }
    }
    if !any {
        t.push_str("<p class=\"muted\">Every scenario passed or was not applicable.</p>\n");
    }
    t.push_str("</section>\n");

    let _ = write!(
        t,
        "<footer class=\"muted\"><p>mtp-cert {} · report schema mtp-cert-report/1 · results schema {}</p></footer>\n\
         </main>\n<script>{SCRIPT}</script>\n</body>\n</html>\n",
        esc(&h.suite_version),
        esc(&results.schema)
    );
    t
}

fn has_evidence(shown: Shown) -> bool {
    matches!(
        shown,
        Shown::Fail | Shown::Warning | Shown::Error | Shown::Inconclusive
    )
}

fn shown_count(results: &RunResults, shown: Shown) -> usize {
    results
        .results
        .iter()
        .filter(|r| Shown::of(r) == shown)
        .count()
}

fn shown_token(level: Level, verdict: Verdict) -> &'static str {
    match (level, verdict) {
        (Level::Must, Verdict::Fail) => "fail",
        (_, Verdict::Fail) => "warning",
        (_, v) => match v {
            Verdict::Pass => "pass",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Error => "error",
            _ => "not_applicable",
        },
    }
}

/// Element id of a scenario (ids are validated upper-case tokens; escaped anyway).
fn anchor(id: &str) -> String {
    format!("s-{}", esc(id))
}

fn verdict_badge(v: Verdict) -> String {
    format!("<span class=\"badge {}\">{}</span>", v.name(), v.label())
}

fn shown_badge(s: Shown) -> String {
    let label = match s {
        Shown::Pass => "PASS",
        Shown::Fail => "FAIL",
        Shown::Warning => "FAIL (warning)",
        Shown::Error => "ERROR",
        Shown::Inconclusive => "INCONCLUSIVE",
        Shown::NotApplicable => "N/A",
    };
    format!("<span class=\"badge {}\">{label}</span>", s.token())
}

fn counts_table<'a>(
    t: &mut String,
    what: &str,
    rows: impl Iterator<Item = (String, &'a VerdictCounts)>,
    total: &VerdictCounts,
) {
    let _ = writeln!(
        t,
        "<table><thead><tr><th>{what}</th><th class=\"n\">pass</th><th class=\"n\">fail</th><th class=\"n\">incon.</th><th class=\"n\">error</th><th class=\"n\">n/a</th><th class=\"n\">total</th><th></th></tr></thead><tbody>"
    );
    for (name, c) in rows {
        counts_row(t, &esc(&name), c);
    }
    counts_row(t, "<b>all</b>", total);
    t.push_str("</tbody></table>\n");
}

fn counts_row(t: &mut String, label: &str, c: &VerdictCounts) {
    let _ = write!(t, "<tr><td>{label}</td>");
    for v in [
        Verdict::Pass,
        Verdict::Fail,
        Verdict::Inconclusive,
        Verdict::Error,
        Verdict::NotApplicable,
    ] {
        let _ = write!(t, "<td class=\"n\">{}</td>", c.get(v));
    }
    let _ = write!(
        t,
        "<td class=\"n\">{}</td><td><div class=\"bar\">",
        c.total()
    );
    let total = c.total().max(1);
    for v in Verdict::ALL {
        let n = c.get(v);
        if n > 0 {
            let pct = f64::from(n) * 100.0 / f64::from(total);
            let _ = write!(
                t,
                "<i class=\"{}\" style=\"width:{pct:.2}%\" title=\"{} {}\"></i>",
                v.name(),
                n,
                v.name()
            );
        }
    }
    t.push_str("</div></td></tr>\n");
}

fn id_list(t: &mut String, title: &str, ids: &[String]) {
    if ids.is_empty() {
        return;
    }
    let _ = write!(t, "<h3>{title} ({})</h3><ul class=\"ids\">", ids.len());
    for id in ids {
        let _ = write!(
            t,
            "<li><a href=\"#{}\"><code>{}</code></a></li>",
            anchor(id),
            esc(id)
        );
    }
    t.push_str("</ul>\n");
}

fn baseline_section(t: &mut String, g: &Gate) {
    let _ = write!(
        t,
        "<section id=\"baseline\">\n<h2>Baseline</h2>\n<p>{} — exit code under the baseline: <b>{}</b></p>\n",
        if g.passes() {
            "no new failures"
        } else {
            "NEW FAILURES"
        },
        g.exit_code
    );
    if !g.regressions.is_empty() {
        t.push_str("<table><thead><tr><th>Regression</th><th>Baseline</th><th>Now</th></tr></thead><tbody>\n");
        for r in &g.regressions {
            let _ = writeln!(
                t,
                "<tr><td><a href=\"#{}\"><code>{}</code></a></td><td>{}</td><td>{}</td></tr>",
                anchor(&r.scenario_id),
                esc(&r.scenario_id),
                verdict_badge(r.baseline),
                verdict_badge(r.now)
            );
        }
        t.push_str("</tbody></table>\n");
    }
    id_list(t, "New failures (fail the run)", &g.new_failures);
    id_list(
        t,
        "Expected failures that now pass (tighten the baseline)",
        &g.fixed,
    );
    id_list(t, "Known failures", &g.known);
    id_list(t, "In the baseline but not run", &g.missing);
    t.push_str("</section>\n");
}

fn evidence(t: &mut String, r: &ScenarioResult, shown: Shown) {
    let _ = write!(
        t,
        "<article id=\"{anchor}\" class=\"{tok}\" data-layer=\"{layer}\" data-shown=\"{tok}\">\n\
         <h3><code>{id}</code> {badge} {title}</h3>\n<dl>\
         <dt>Reason</dt><dd>{reason}</dd>\
         <dt>Requirements</dt><dd>{reqs}</dd>\
         <dt>Level / layer</dt><dd>{lvl} · {layer}</dd>\
         <dt>Scenario seed</dt><dd class=\"mono\">{seed}</dd>\
         <dt>Started</dt><dd>{started} ({time} s)</dd></dl>\n\
         <div>Replay:</div><pre class=\"replay\">{replay}</pre>\n",
        anchor = anchor(&r.scenario_id),
        tok = shown.token(),
        layer = r.layer.name(),
        id = esc(&r.scenario_id),
        badge = shown_badge(shown),
        title = esc(&r.title),
        reason = esc(&r.reason),
        reqs = r
            .requirements
            .iter()
            .map(|x| format!("<code>{}</code>", esc(x)))
            .collect::<Vec<_>>()
            .join(", "),
        lvl = r.level.keyword(),
        seed = r.seed,
        started = esc(&r.started),
        time = seconds(r.duration_ms),
        replay = esc(&r.replay)
    );
    if let Some(step) = deciding_step(r) {
        let _ = writeln!(
            t,
            "<table><thead><tr><th>Deciding step</th><th>Expected</th><th>Observed</th></tr></thead><tbody>\
             <tr><td>#{} {} <code>{}</code>: {} {}</td><td><pre>{}</pre></td><td><pre>{}</pre></td></tr></tbody></table>",
            step.index,
            phase_name(step.phase),
            esc(&step.kind),
            esc(&step.description),
            verdict_badge(step.verdict),
            esc(step.expected.as_deref().unwrap_or("(nothing judged)")),
            esc(step.observed.as_deref().unwrap_or("(nothing observed)"))
        );
    }
    if !r.steps.is_empty() {
        t.push_str("<details open><summary>Steps and transcript</summary>\n<table><thead><tr><th>#</th><th>Phase</th><th>Kind</th><th>Description</th><th>Verdict</th><th class=\"n\">ms</th></tr></thead><tbody>\n");
        for s in &r.steps {
            let _ = writeln!(
                t,
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td class=\"n\">{}</td></tr>",
                s.index,
                phase_name(s.phase),
                esc(&s.kind),
                esc(&s.description),
                verdict_badge(s.verdict),
                s.duration_ms
            );
        }
        t.push_str("</tbody></table>\n");
        for s in &r.steps {
            for e in &s.transcript {
                let _ = writeln!(
                    t,
                    "<div class=\"entry\">step {} · <b>{}</b> · <code>{}</code> · <code>{}</code> · <span class=\"mono muted\">sha256:{}</span></div><pre>{}</pre>",
                    s.index,
                    direction_name(e.direction),
                    esc(&e.channel),
                    esc(&e.frame_type),
                    esc(&e.hash),
                    esc(&e.diag)
                );
            }
        }
        t.push_str("</details>\n");
    }
    t.push_str("</article>\n");
}
