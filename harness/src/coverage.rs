//! `mtp-cert coverage`: per requirement of the catalogue (`docs/requirements.yaml`), the
//! scenarios that cite it and their last verdict; totals of testable requirements covered per
//! level, document and testability kind; the uncovered testable MUST requirements; the
//! requirements software cannot test, each with its reason.
//!
//! A requirement is *covered* when a scenario of the selection cites it, or — for a `vector`
//! requirement — when the vector manifest (`vectors/manifest.json`, format `mtp-vectors/1`)
//! lists it. An umbrella requirement (catalogue field `parts`: "MUST implement all seven layers")
//! is covered only when every testable MUST requirement it is made of is covered, and its
//! verdict is the worst of theirs. `process` requirements are never counted as testable.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use mtp_reports::model::{Level, ScenarioResult, Verdict, VerdictCounts};
use serde::{Deserialize, Serialize};

use crate::scenario::catalogue::{self, Catalogue, Requirement, Testability};
use crate::scenario::{self, Scenario};

/// Schema identifier of the JSON output.
pub const SCHEMA: &str = "mtp-cert-coverage/1";
/// The vector manifest format this module reads.
pub const MANIFEST_FORMAT: &str = "mtp-vectors/1";
/// File name of the manifest inside a vector folder.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Why coverage inputs could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CoverageError {
    #[error("{path}: {message}")]
    Read { path: String, message: String },
    #[error("{path}: not a vector manifest: {message}")]
    Manifest { path: String, message: String },
    #[error("{path}: unsupported vector manifest format `{found}` (expected `{MANIFEST_FORMAT}`)")]
    ManifestFormat { path: String, found: String },
    #[error("{path}: {message}")]
    Results { path: String, message: String },
}

/// `vectors/manifest.json`: which requirements each vector checks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VectorManifest {
    pub format: String,
    pub vectors: Vec<VectorEntry>,
}

/// One vector of the manifest (other members are ignored).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VectorEntry {
    pub id: String,
    #[serde(default)]
    pub requirements: Vec<String>,
}

/// Parses a manifest text; `path` only names it in errors.
pub fn parse_manifest(text: &str, path: &str) -> Result<VectorManifest, CoverageError> {
    let m: VectorManifest = serde_json::from_str(text).map_err(|e| CoverageError::Manifest {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    if m.format != MANIFEST_FORMAT {
        return Err(CoverageError::ManifestFormat {
            path: path.to_owned(),
            found: m.format,
        });
    }
    Ok(m)
}

/// The manifest file for `path`: a folder means its `manifest.json`.
pub fn manifest_path(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(MANIFEST_FILE)
    } else {
        path.to_owned()
    }
}

/// Reads the manifest at `path` (a file, or a folder holding `manifest.json`); `Ok(None)` when
/// no path is given or the file does not exist.
pub fn read_manifest(path: Option<&Path>) -> Result<Option<VectorManifest>, CoverageError> {
    let Some(path) = path else {
        return Ok(None);
    };
    let file = manifest_path(path);
    if !file.exists() {
        return Ok(None);
    }
    let name = file.display().to_string();
    let text = std::fs::read_to_string(&file).map_err(|e| CoverageError::Read {
        path: name.clone(),
        message: e.to_string(),
    })?;
    parse_manifest(&text, &name).map(Some)
}

/// Reads the scenario results of a run (`results.jsonl`, or a `RunResults` JSON document).
pub fn read_results(path: &Path) -> Result<Vec<ScenarioResult>, CoverageError> {
    crate::runner::results::read_baseline(path).map_err(|message| CoverageError::Results {
        path: path.display().to_string(),
        message,
    })
}

/// A percentage of covered over total; `percent` is `None` when there is nothing to cover.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Tally {
    pub covered: u32,
    pub total: u32,
    /// Rounded to two decimals.
    pub percent: Option<f64>,
}

impl Tally {
    fn add(&mut self, covered: bool) {
        self.total += 1;
        if covered {
            self.covered += 1;
        }
        self.percent =
            Some((f64::from(self.covered) * 10_000.0 / f64::from(self.total)).round() / 100.0);
    }

    /// `covered / total < percent / 100`, exactly (an empty tally is never below).
    pub fn below(&self, percent: f64) -> bool {
        self.total > 0 && f64::from(self.covered) * 100.0 < percent * f64::from(self.total)
    }

    fn text(&self) -> String {
        match self.percent {
            Some(p) => format!("{}/{} {:.1}%", self.covered, self.total, p),
            None => "-".to_owned(),
        }
    }
}

/// Tallies of testable requirements per level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct LevelTallies {
    pub must: Tally,
    pub should: Tally,
    pub may: Tally,
}

impl LevelTallies {
    fn add(&mut self, level: Level, covered: bool) {
        match level {
            Level::Must => self.must.add(covered),
            Level::Should => self.should.add(covered),
            Level::May => self.may.add(covered),
        }
    }

    pub fn get(&self, level: Level) -> &Tally {
        match level {
            Level::Must => &self.must,
            Level::Should => &self.should,
            Level::May => &self.may,
        }
    }
}

/// The totals of a coverage report.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Totals {
    /// Catalogue entries.
    pub requirements: u32,
    /// Entries that are not `process`.
    pub testable: u32,
    /// `process` entries.
    pub untestable: u32,
    /// Testable requirements covered, per level.
    pub all: LevelTallies,
    /// Per document (`SPEC-001`, `BIND-001`).
    pub by_doc: BTreeMap<String, LevelTallies>,
    /// Per testability kind (`wire`, `vector`, `inspection`).
    pub by_testability: BTreeMap<Testability, LevelTallies>,
}

/// A scenario citing a requirement, with its last verdict (`None`: no result for it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Citation {
    pub scenario: String,
    pub level: Level,
    pub verdict: Option<Verdict>,
}

/// One requirement of the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RequirementCoverage {
    pub id: String,
    pub doc: String,
    pub section: String,
    /// As written (`IMPLICIT` for keyword-less statements).
    pub keyword: String,
    /// As the suite applies it ([`Requirement::applied_keyword`]).
    pub applied_keyword: String,
    pub level: Level,
    pub testability: Testability,
    /// Scenarios of the selection that cite it, by id.
    pub scenarios: Vec<Citation>,
    /// Vectors of the manifest that list it (they cover only `vector` requirements).
    pub vectors: Vec<String>,
    /// For an umbrella requirement: its testable MUST parts (it is covered when they all are).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<String>,
    pub covered: bool,
    /// The worst last verdict of its scenarios (fail, error, inconclusive, pass,
    /// not_applicable); `None` when none of them has a result.
    pub verdict: Option<Verdict>,
}

/// A testable MUST requirement no scenario (or vector) covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Uncovered {
    pub id: String,
    pub applied_keyword: String,
    pub testability: Testability,
    pub text: String,
    /// The fragment carrying this keyword when the sentence has several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clause: Option<String>,
    /// For an umbrella requirement: its testable MUST parts not covered yet.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parts_missing: Vec<String>,
}

impl Uncovered {
    /// The clause when there is one, else the sentence.
    pub fn statement(&self) -> &str {
        self.clause.as_deref().unwrap_or(&self.text)
    }
}

/// A requirement software cannot test.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Untestable {
    pub id: String,
    pub applied_keyword: String,
    pub reason: String,
}

/// What the last run says about the covered testable MUST requirements.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LastRun {
    /// Aggregate verdict per covered testable MUST requirement.
    pub must_verdicts: VerdictCounts,
    /// Covered testable MUST requirements whose scenarios have no result.
    pub must_not_run: u32,
    /// Covered testable MUST requirements covered only by vectors (checked by the vector
    /// tests, not by a run).
    pub must_vectors_only: u32,
    /// Scenarios with a result in the selection.
    pub scenarios_with_result: u32,
    /// Results whose scenario is not in the selection (ignored).
    pub ignored_results: Vec<String>,
}

/// Where the inputs came from (filled in by the caller; shown in the reports).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Inputs {
    pub scenarios: Vec<String>,
    pub results: Option<String>,
    pub vectors: Option<String>,
}

/// The whole report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Coverage {
    /// Always [`SCHEMA`].
    pub schema: &'static str,
    pub inputs: Inputs,
    /// Scenarios in the selection.
    pub scenarios: u32,
    /// Vectors in the manifest (`None`: no manifest read).
    pub vectors: Option<u32>,
    pub totals: Totals,
    /// `None` without results.
    pub last_run: Option<LastRun>,
    /// Every requirement, in document order.
    pub requirements: Vec<RequirementCoverage>,
    pub uncovered_must: Vec<Uncovered>,
    pub untestable: Vec<Untestable>,
    /// Ids cited by a scenario or listed by a vector that the catalogue does not hold, as
    /// `<scenario or vector:id>: <requirement id>`.
    pub unknown_ids: Vec<String>,
    /// Every code of the error registry (BIND XI and the profile's codes) with the scenarios
    /// that expect it — as a refusal, a control error or an audited code.
    pub error_codes: Vec<CodeCoverage>,
    /// Every allowed transition of PROFILE G-18 with the scenarios whose expected history
    /// runs through it, and the triggering events scenarios expect in the audit trail.
    pub transitions: Vec<TransitionCoverage>,
}

/// One registry code and the scenarios that provoke it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CodeCoverage {
    /// Four digits (`0104`).
    pub code: String,
    pub description: &'static str,
    /// Published in BIND XI (else a code of this profile, PROFILE G-14).
    pub published: bool,
    pub scenarios: Vec<String>,
}

/// One allowed `(from, to)` pair of the state machine and the scenarios that observe it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TransitionCoverage {
    pub from: &'static str,
    pub to: &'static str,
    /// Scenarios whose `expect_state.history` contains the pair.
    pub scenarios: Vec<String>,
    /// Triggering events of the pair (PROFILE G-18) with the scenarios that expect them in
    /// the audit trail (`expect_audit.events`).
    pub events: Vec<(String, Vec<String>)>,
}

/// Codes a `match` template requires: the integer (or four-digit text) value of a `code` or
/// `failure_classification` key anywhere in it (an error object, a termination's `error`, a
/// failed Receipt's classification).
fn codes_in_match(t: &crate::scenario::template::Template, out: &mut BTreeSet<u16>) {
    use crate::scenario::template::{Template, TextPart};
    match t {
        Template::Map(entries) => {
            for (k, v) in entries {
                let is_code_key = matches!(k, Template::Text(tt)
                    if matches!(tt.0.as_slice(), [TextPart::Lit(k)] if k == "code" || k == "failure_classification"));
                if is_code_key {
                    match v {
                        Template::Int(n) => out.extend(u16::try_from(*n).ok()),
                        Template::Text(tt) => {
                            if let [TextPart::Lit(s)] = tt.0.as_slice() {
                                out.extend(s.parse::<u16>().ok());
                            }
                        }
                        _ => {}
                    }
                }
                codes_in_match(v, out);
            }
        }
        Template::Array(items) => items.iter().for_each(|i| codes_in_match(i, out)),
        _ => {}
    }
}

/// The error codes each scenario expects (refusals, control errors, audited codes, codes in
/// the messages it matches).
fn codes_expected(s: &Scenario) -> BTreeSet<u16> {
    use crate::scenario::{Expectation, StepKind};
    let mut out = BTreeSet::new();
    for step in s.all_steps() {
        match &step.kind {
            StepKind::Expect(e) => match &e.what {
                Expectation::Error { codes, .. } => out.extend(codes.iter().copied()),
                Expectation::Message {
                    matches: Some(m), ..
                }
                | Expectation::Response {
                    matches: Some(m), ..
                } => codes_in_match(m, &mut out),
                _ => {}
            },
            StepKind::Control(c) => out.extend(c.expect_error.iter().flatten().copied()),
            StepKind::ExpectAudit(a) => out.extend(a.codes.iter().copied()),
            _ => {}
        }
    }
    out
}

fn code_coverage(scenarios: &[Scenario]) -> Vec<CodeCoverage> {
    use mtp_protocol::errors::ErrorCode;
    let per: Vec<(&str, BTreeSet<u16>)> = scenarios
        .iter()
        .map(|s| (s.id.as_str(), codes_expected(s)))
        .collect();
    ErrorCode::ALL
        .iter()
        .map(|c| {
            let n = c.as_u16();
            CodeCoverage {
                code: format!("{n:04}"),
                description: c.description(),
                published: c.is_published(),
                scenarios: per
                    .iter()
                    .filter(|(_, codes)| codes.contains(&n))
                    .map(|(id, _)| (*id).to_owned())
                    .collect(),
            }
        })
        .collect()
}

fn transition_coverage(scenarios: &[Scenario]) -> Vec<TransitionCoverage> {
    use crate::live::transitions::{ALLOWED, EVENTS};
    use crate::scenario::StepKind;
    let mut pairs: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
    let mut events: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for s in scenarios {
        for step in s.all_steps() {
            match &step.kind {
                StepKind::ExpectState(e) => {
                    for w in e.history.as_deref().unwrap_or_default().windows(2) {
                        pairs
                            .entry((w[0].as_str(), w[1].as_str()))
                            .or_default()
                            .insert(s.id.as_str());
                    }
                }
                StepKind::ExpectAudit(a) => {
                    for ev in &a.events {
                        events.entry(ev.as_str()).or_default().insert(s.id.as_str());
                    }
                }
                _ => {}
            }
        }
    }
    let ids = |set: Option<&BTreeSet<&str>>| -> Vec<String> {
        set.into_iter().flatten().map(|s| (*s).to_owned()).collect()
    };
    ALLOWED
        .iter()
        .map(|&(from, to)| TransitionCoverage {
            from,
            to,
            scenarios: ids(pairs.get(&(from, to))),
            events: EVENTS
                .iter()
                .filter(|(f, _, t)| *f == from && *t == to)
                .map(|(_, ev, _)| ((*ev).to_owned(), ids(events.get(ev))))
                .chain((to == "failed").then(|| {
                    let fatal: BTreeSet<&str> = events
                        .iter()
                        .filter(|(ev, _)| ev.starts_with("fatal_error."))
                        .flat_map(|(_, ids)| ids.iter().copied())
                        .collect();
                    ("fatal_error.<code>".to_owned(), ids(Some(&fatal)))
                }))
                .collect(),
        })
        .collect()
}

/// Coverage of the embedded catalogue by `scenarios` (the selection), with the last verdicts
/// from `last` when given; no vector manifest.
pub fn coverage(scenarios: &[Scenario], last: Option<&[ScenarioResult]>) -> Coverage {
    coverage_with(scenarios, last, None)
}

/// [`coverage`], with the vector manifest covering `vector` requirements.
pub fn coverage_with(
    scenarios: &[Scenario],
    last: Option<&[ScenarioResult]>,
    vectors: Option<&VectorManifest>,
) -> Coverage {
    static EMPTY: std::sync::OnceLock<Catalogue> = std::sync::OnceLock::new();
    let cat = catalogue::catalogue().unwrap_or_else(|_| EMPTY.get_or_init(Catalogue::default));
    coverage_of(cat, scenarios, last, vectors)
}

fn severity(v: Verdict) -> u8 {
    match v {
        Verdict::Fail => 4,
        Verdict::Error => 3,
        Verdict::Inconclusive => 2,
        Verdict::Pass => 1,
        Verdict::NotApplicable => 0,
    }
}

/// Coverage of a given catalogue (tests, other catalogues).
pub fn coverage_of(
    cat: &Catalogue,
    scenarios: &[Scenario],
    last: Option<&[ScenarioResult]>,
    vectors: Option<&VectorManifest>,
) -> Coverage {
    let mut unknown = BTreeSet::new();
    // requirement id -> citing scenarios (deduplicated, by scenario id).
    let mut cited: BTreeMap<&str, BTreeMap<&str, Level>> = BTreeMap::new();
    let selected: BTreeSet<&str> = scenarios.iter().map(|s| s.id.as_str()).collect();
    for s in scenarios {
        for id in &s.requirements {
            if !cat.contains(id) {
                unknown.insert(format!("{}: {id}", s.id));
            }
            cited
                .entry(id.as_str())
                .or_default()
                .insert(s.id.as_str(), s.level);
        }
    }
    let mut listed: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    if let Some(m) = vectors {
        for v in &m.vectors {
            for id in &v.requirements {
                if !cat.contains(id) {
                    unknown.insert(format!("vector:{}: {id}", v.id));
                }
                listed.entry(id.as_str()).or_default().insert(v.id.as_str());
            }
        }
    }
    // Last verdict per selected scenario; a later result replaces an earlier one.
    let mut verdicts: BTreeMap<&str, Verdict> = BTreeMap::new();
    let mut ignored = BTreeSet::new();
    for r in last.unwrap_or_default() {
        if selected.contains(r.scenario_id.as_str()) {
            verdicts.insert(r.scenario_id.as_str(), r.verdict);
        } else {
            ignored.insert(r.scenario_id.clone());
        }
    }

    let mut totals = Totals::default();
    let mut run = last.map(|_| LastRun {
        scenarios_with_result: u32::try_from(verdicts.len()).unwrap_or(u32::MAX),
        ignored_results: ignored.into_iter().collect(),
        ..LastRun::default()
    });
    // Direct coverage: citations, and vectors for `vector` requirements.
    let mut direct: BTreeMap<&str, (bool, Option<Verdict>)> = BTreeMap::new();
    for r in cat.entries() {
        let cites = cited.get(r.id.as_str());
        let covered = cites.is_some_and(|m| !m.is_empty())
            || (r.testability == Testability::Vector && listed.contains_key(r.id.as_str()));
        let verdict = cites
            .into_iter()
            .flat_map(|m| m.keys())
            .filter_map(|id| verdicts.get(id).copied())
            .max_by_key(|v| severity(*v));
        direct.insert(r.id.as_str(), (covered, verdict));
    }

    let mut rows = Vec::with_capacity(cat.len());
    let mut uncovered_must = Vec::new();
    let mut untestable = Vec::new();
    for r in cat.entries() {
        let citations: Vec<Citation> = cited
            .get(r.id.as_str())
            .map(|m| {
                m.iter()
                    .map(|(id, level)| Citation {
                        scenario: (*id).to_owned(),
                        level: *level,
                        verdict: verdicts.get(id).copied(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let vecs: Vec<String> = listed
            .get(r.id.as_str())
            .map(|s| s.iter().map(|v| (*v).to_owned()).collect())
            .unwrap_or_default();
        let (mut covered, mut verdict) = direct.get(r.id.as_str()).copied().unwrap_or_default();
        // An umbrella is covered only through its parts: every testable MUST part covered;
        // its verdict is the worst of theirs and its own citations'.
        let parts: Vec<&Requirement> = cat
            .parts_of(r)
            .into_iter()
            .filter(|p| p.testable() && p.level() == Level::Must)
            .collect();
        let mut parts_missing = Vec::new();
        if !r.parts.is_empty() {
            for p in &parts {
                let (c, v) = direct.get(p.id.as_str()).copied().unwrap_or_default();
                if !c {
                    parts_missing.push(p.id.clone());
                }
                verdict = [verdict, v]
                    .into_iter()
                    .flatten()
                    .max_by_key(|v| severity(*v));
            }
            covered = !parts.is_empty() && parts_missing.is_empty();
        }
        let level = r.level();
        totals.requirements += 1;
        if r.testable() {
            totals.testable += 1;
            totals.all.add(level, covered);
            totals
                .by_doc
                .entry(r.doc.clone())
                .or_default()
                .add(level, covered);
            totals
                .by_testability
                .entry(r.testability)
                .or_default()
                .add(level, covered);
            if level == Level::Must {
                if !covered {
                    let mut u = uncovered(r);
                    u.parts_missing = parts_missing.clone();
                    uncovered_must.push(u);
                } else if let Some(run) = run.as_mut() {
                    match verdict {
                        Some(v) => run.must_verdicts.add(v),
                        None if citations.is_empty() && r.parts.is_empty() => {
                            run.must_vectors_only += 1
                        }
                        None => run.must_not_run += 1,
                    }
                }
            }
        } else {
            totals.untestable += 1;
            untestable.push(Untestable {
                id: r.id.clone(),
                applied_keyword: r.applied_keyword().to_owned(),
                reason: r.untestable_reason.clone().unwrap_or_default(),
            });
        }
        rows.push(RequirementCoverage {
            id: r.id.clone(),
            doc: r.doc.clone(),
            section: r.section.clone(),
            keyword: r.keyword.clone(),
            applied_keyword: r.applied_keyword().to_owned(),
            level,
            testability: r.testability,
            scenarios: citations,
            vectors: vecs,
            parts: parts.iter().map(|p| p.id.clone()).collect(),
            covered,
            verdict,
        });
    }
    Coverage {
        schema: SCHEMA,
        inputs: Inputs::default(),
        scenarios: u32::try_from(scenarios.len()).unwrap_or(u32::MAX),
        vectors: vectors.map(|m| u32::try_from(m.vectors.len()).unwrap_or(u32::MAX)),
        totals,
        last_run: run,
        requirements: rows,
        uncovered_must,
        untestable,
        unknown_ids: unknown.into_iter().collect(),
        error_codes: code_coverage(scenarios),
        transitions: transition_coverage(scenarios),
    }
}

fn uncovered(r: &Requirement) -> Uncovered {
    Uncovered {
        id: r.id.clone(),
        applied_keyword: r.applied_keyword().to_owned(),
        testability: r.testability,
        text: r.text.clone(),
        clause: r.clause.clone(),
        parts_missing: Vec::new(),
    }
}

fn verdict_label(v: Option<Verdict>) -> &'static str {
    v.map_or("-", Verdict::label)
}

impl RequirementCoverage {
    /// `MUST`, or `IMPLICIT:MUST`, `MAY:MUST NOT` when the applied keyword differs.
    pub fn keyword_label(&self) -> String {
        if self.keyword == self.applied_keyword {
            self.keyword.clone()
        } else {
            format!("{}:{}", self.keyword, self.applied_keyword)
        }
    }

    /// `SCEN-A (PASS), SCEN-B, vector:family/name`; `-` when nothing cites it.
    pub fn cited_by(&self) -> String {
        let mut parts: Vec<String> = self
            .scenarios
            .iter()
            .map(|c| match c.verdict {
                Some(v) => format!("{} ({})", c.scenario, v.label()),
                None => c.scenario.clone(),
            })
            .collect();
        parts.extend(self.vectors.iter().map(|v| format!("vector:{v}")));
        if !self.parts.is_empty() {
            parts.push(format!("through {} parts", self.parts.len()));
        }
        if parts.is_empty() {
            "-".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

/// `N (A, B, C…)` or `-`.
fn count_or_dash(ids: &[String]) -> String {
    match ids.len() {
        0 => "-".to_owned(),
        n if n <= 3 => format!("{n} ({})", ids.join(", ")),
        n => format!("{n} ({}, …)", ids[..3].join(", ")),
    }
}

fn short(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

impl Coverage {
    /// The testable MUST tally (what `--fail-under` compares).
    pub fn must(&self) -> &Tally {
        &self.totals.all.must
    }

    /// Pretty JSON (schema [`SCHEMA`]), with a trailing newline.
    pub fn to_json(&self) -> String {
        // Plain data with string map keys and finite floats: serialisation cannot fail.
        let mut s = serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| format!("{{\"error\":{:?}}}", e.to_string()));
        s.push('\n');
        s
    }

    fn totals_rows(&self) -> Vec<(String, &LevelTallies)> {
        let mut rows = vec![("all".to_owned(), &self.totals.all)];
        // Documents in catalogue order (SPEC-001 first).
        let mut docs: Vec<&str> = Vec::new();
        for r in &self.requirements {
            if !docs.contains(&r.doc.as_str()) {
                docs.push(&r.doc);
            }
        }
        rows.extend(
            docs.into_iter()
                .filter_map(|d| self.totals.by_doc.get(d).map(|t| (d.to_owned(), t))),
        );
        rows.extend(
            self.totals
                .by_testability
                .iter()
                .map(|(k, t)| (k.name().to_owned(), t)),
        );
        rows
    }

    fn inputs_lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "scenarios: {} ({})",
            self.scenarios,
            if self.inputs.scenarios.is_empty() {
                "-".to_owned()
            } else {
                self.inputs.scenarios.join(", ")
            }
        )];
        out.push(match (&self.inputs.results, &self.last_run) {
            (Some(p), Some(r)) => format!(
                "results: {p} ({} of the scenarios have a verdict)",
                r.scenarios_with_result
            ),
            (None, Some(r)) => format!(
                "results: {} of the scenarios have a verdict",
                r.scenarios_with_result
            ),
            _ => "results: none (no verdicts shown)".to_owned(),
        });
        out.push(match (&self.inputs.vectors, self.vectors) {
            (Some(p), Some(n)) => format!("vectors: {n} in {p}"),
            (None, Some(n)) => format!("vectors: {n}"),
            _ => {
                "vectors: no manifest (vector requirements count only through scenarios)".to_owned()
            }
        });
        out
    }

    fn run_line(&self) -> Option<String> {
        let r = self.last_run.as_ref()?;
        let c = &r.must_verdicts;
        Some(format!(
            "last verdicts of the covered testable MUST requirements: {} pass, {} fail, {} inconclusive, {} error, {} not applicable, {} not run, {} covered by vectors only",
            c.pass,
            c.fail,
            c.inconclusive,
            c.error,
            c.not_applicable,
            r.must_not_run,
            r.must_vectors_only
        ))
    }

    /// Plain text for the terminal.
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        let t = &self.totals;
        let _ = writeln!(
            o,
            "Requirement coverage: {} requirements, {} testable, {} not testable by software",
            t.requirements, t.testable, t.untestable
        );
        for l in self.inputs_lines() {
            let _ = writeln!(o, "{l}");
        }
        let _ = writeln!(o);
        let wid = self
            .requirements
            .iter()
            .map(|r| r.id.len())
            .max()
            .unwrap_or(2)
            .max(2);
        let wkw = self
            .requirements
            .iter()
            .map(|r| r.keyword_label().len())
            .max()
            .unwrap_or(7)
            .max(7);
        let _ = writeln!(
            o,
            "{:<wid$}  {:<wkw$}  {:<11}  {:<12}  scenarios (last verdict)",
            "id", "keyword", "testability", "verdict"
        );
        for r in &self.requirements {
            let _ = writeln!(
                o,
                "{:<wid$}  {:<wkw$}  {:<11}  {:<12}  {}",
                r.id,
                r.keyword_label(),
                r.testability.name(),
                verdict_label(r.verdict),
                r.cited_by()
            );
        }
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "Totals: testable requirements covered by a scenario (or, for vector ones, a vector)"
        );
        let _ = writeln!(
            o,
            "{:<12}  {:<20}  {:<20}  {:<20}",
            "", "MUST", "SHOULD", "MAY"
        );
        for (name, lt) in self.totals_rows() {
            let _ = writeln!(
                o,
                "{:<12}  {:<20}  {:<20}  {:<20}",
                name,
                lt.must.text(),
                lt.should.text(),
                lt.may.text()
            );
        }
        if let Some(l) = self.run_line() {
            let _ = writeln!(o, "{l}");
        }
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "Uncovered testable MUST requirements ({}):",
            self.uncovered_must.len()
        );
        for u in &self.uncovered_must {
            let _ = writeln!(
                o,
                "  {:<wid$}  {:<10}  {}",
                u.id,
                u.testability.name(),
                short(u.statement(), 100)
            );
            if !u.parts_missing.is_empty() {
                let _ = writeln!(
                    o,
                    "  {:<wid$}  {:<10}  parts not covered: {}",
                    "",
                    "",
                    u.parts_missing.join(", ")
                );
            }
        }
        let _ = writeln!(o);
        let _ = writeln!(o, "Not testable by software ({}):", self.untestable.len());
        for u in &self.untestable {
            let _ = writeln!(
                o,
                "  {:<wid$}  {:<9}  {}",
                u.id, u.applied_keyword, u.reason
            );
        }
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "Error registry codes expected by scenarios (a refusal, a control error, an audited code or a code in a matched message):"
        );
        for c in &self.error_codes {
            let _ = writeln!(
                o,
                "  {} {:<40} {:<9} {}",
                c.code,
                c.description,
                if c.published { "BIND XI" } else { "profile" },
                count_or_dash(&c.scenarios)
            );
        }
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "State-machine transitions (PROFILE G-18): scenarios whose expected history runs through each, and the triggering events expected in audit trails:"
        );
        for t in &self.transitions {
            let evs: Vec<String> = t
                .events
                .iter()
                .map(|(e, ids)| format!("{e} {}", ids.len()))
                .collect();
            let _ = writeln!(
                o,
                "  {:<12} → {:<12} {:<4} {}",
                t.from,
                t.to,
                t.scenarios.len(),
                evs.join(", ")
            );
        }
        if !self.unknown_ids.is_empty() {
            let _ = writeln!(o);
            let _ = writeln!(
                o,
                "Ids not in the catalogue ({}): {}",
                self.unknown_ids.len(),
                self.unknown_ids.join("; ")
            );
        }
        let _ = writeln!(o);
        let _ = writeln!(o, "testable MUST coverage: {}", self.must().text());
        o
    }

    /// Markdown (GitHub tables).
    pub fn to_markdown(&self) -> String {
        let mut o = String::new();
        let t = &self.totals;
        let _ = writeln!(o, "# Requirement coverage\n");
        let _ = writeln!(
            o,
            "{} requirements: {} testable, {} not testable by software. Testable MUST coverage: **{}**.\n",
            t.requirements,
            t.testable,
            t.untestable,
            self.must().text()
        );
        for l in self.inputs_lines() {
            let _ = writeln!(o, "- {}", md(&l));
        }
        if let Some(l) = self.run_line() {
            let _ = writeln!(o, "- {}", md(&l));
        }
        let _ = writeln!(o, "\n## Totals\n");
        let _ = writeln!(o, "| | MUST | SHOULD | MAY |\n|---|---|---|---|");
        for (name, lt) in self.totals_rows() {
            let _ = writeln!(
                o,
                "| {name} | {} | {} | {} |",
                lt.must.text(),
                lt.should.text(),
                lt.may.text()
            );
        }
        let _ = writeln!(
            o,
            "\n## Uncovered testable MUST requirements ({})\n",
            self.uncovered_must.len()
        );
        if !self.uncovered_must.is_empty() {
            let _ = writeln!(o, "| id | testability | statement |\n|---|---|---|");
            for u in &self.uncovered_must {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} |",
                    u.id,
                    u.testability.name(),
                    md(u.statement())
                );
            }
        }
        let _ = writeln!(
            o,
            "\n## Not testable by software ({})\n",
            self.untestable.len()
        );
        if !self.untestable.is_empty() {
            let _ = writeln!(o, "| id | keyword | reason |\n|---|---|---|");
            for u in &self.untestable {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} |",
                    u.id,
                    u.applied_keyword,
                    md(&u.reason)
                );
            }
        }
        let _ = writeln!(
            o,
            "\n## Error registry codes expected by scenarios\n\n| code | description | registry | scenarios |\n|---|---|---|---|"
        );
        for c in &self.error_codes {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} |",
                c.code,
                md(c.description),
                if c.published { "BIND XI" } else { "profile" },
                md(&count_or_dash(&c.scenarios))
            );
        }
        let _ = writeln!(
            o,
            "\n## State-machine transitions (PROFILE G-18)\n\n| from | to | scenarios (history) | triggering events (scenarios auditing them) |\n|---|---|---|---|"
        );
        for t in &self.transitions {
            let evs: Vec<String> = t
                .events
                .iter()
                .map(|(e, ids)| format!("`{e}` {}", ids.len()))
                .collect();
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} |",
                t.from,
                t.to,
                md(&count_or_dash(&t.scenarios)),
                evs.join(", ")
            );
        }
        if !self.unknown_ids.is_empty() {
            let _ = writeln!(o, "\n## Ids not in the catalogue\n");
            for u in &self.unknown_ids {
                let _ = writeln!(o, "- {}", md(u));
            }
        }
        let _ = writeln!(o, "\n## Requirements\n");
        let _ = writeln!(
            o,
            "| id | keyword | testability | verdict | scenarios (last verdict) |\n|---|---|---|---|---|"
        );
        for r in &self.requirements {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} |",
                r.id,
                r.keyword_label(),
                r.testability.name(),
                verdict_label(r.verdict),
                md(&r.cited_by())
            );
        }
        o
    }
}

/// Escapes what would break a Markdown table cell.
fn md(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('\n', " ")
}

/// Output format of `mtp-cert coverage`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
    Markdown,
}

/// Arguments of `mtp-cert coverage`.
#[derive(Args, Debug, Clone)]
pub struct CoverageArgs {
    /// Scenario files or folders (default: `scenarios/`).
    #[arg(long, num_args = 1..)]
    pub scenarios: Vec<PathBuf>,
    /// A run's `results.jsonl` for the last verdicts (default: `reports/out/results.jsonl`
    /// when it exists).
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// The vector folder holding `manifest.json`, or the manifest itself (default: `vectors/`).
    #[arg(long)]
    pub vectors: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Write the report to this file instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Exit 1 when testable MUST coverage is below this percentage.
    #[arg(long, value_parser = parse_percent)]
    pub fail_under: Option<f64>,
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let p: f64 = s
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if (0.0..=100.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!("`{s}` is not between 0 and 100"))
    }
}

/// Default results file: `reports/out/results.jsonl` of the working directory, when present.
pub fn default_results() -> Option<PathBuf> {
    let p = PathBuf::from("reports/out/results.jsonl");
    p.is_file().then_some(p)
}

/// Default vector folder: `vectors/` of the working directory, else the repository's.
pub fn default_vectors() -> PathBuf {
    let local = PathBuf::from("vectors");
    if local.is_dir() {
        return local;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vectors");
    if repo.is_dir() { repo } else { local }
}

/// `mtp-cert coverage`. Exit codes: 0 report written (and coverage not below `--fail-under`);
/// 1 testable MUST coverage below `--fail-under`; 2 bad scenarios, results or manifest;
/// 3 the report could not be written.
pub fn run_coverage(args: &CoverageArgs) -> ExitCode {
    if let Err(e) = catalogue::catalogue() {
        eprintln!("mtp-cert coverage: {e}");
        return ExitCode::from(3);
    }
    let paths = if args.scenarios.is_empty() {
        vec![crate::cli::default_scenarios()]
    } else {
        args.scenarios.clone()
    };
    let scenarios = match scenario::load_paths(&paths) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            eprintln!(
                "mtp-cert coverage: {} problem(s) in the scenario files",
                e.diagnostics.len()
            );
            return ExitCode::from(2);
        }
    };
    let (results_path, results) = match &args.results {
        Some(p) => match read_results(p) {
            Ok(r) => (Some(p.clone()), Some(r)),
            Err(e) => {
                eprintln!("mtp-cert coverage: --results: {e}");
                return ExitCode::from(2);
            }
        },
        None => match default_results() {
            Some(p) => match read_results(&p) {
                Ok(r) => (Some(p), Some(r)),
                Err(e) => {
                    eprintln!("mtp-cert coverage: ignoring the default results file: {e}");
                    (None, None)
                }
            },
            None => (None, None),
        },
    };
    let vectors_dir = args.vectors.clone().unwrap_or_else(default_vectors);
    let manifest = match read_manifest(Some(&vectors_dir)) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("mtp-cert coverage: --vectors: {e}");
            return ExitCode::from(2);
        }
    };
    if manifest.is_none() && args.vectors.is_some() {
        eprintln!(
            "mtp-cert coverage: no vector manifest at {}",
            manifest_path(&vectors_dir).display()
        );
    }
    let mut cov = coverage_with(&scenarios, results.as_deref(), manifest.as_ref());
    cov.inputs = Inputs {
        scenarios: paths.iter().map(|p| p.display().to_string()).collect(),
        results: results_path.map(|p| p.display().to_string()),
        vectors: manifest
            .as_ref()
            .map(|_| manifest_path(&vectors_dir).display().to_string()),
    };
    let report = match args.format {
        Format::Text => cov.to_text(),
        Format::Json => cov.to_json(),
        Format::Markdown => cov.to_markdown(),
    };
    match &args.out {
        Some(p) => {
            if let Err(e) = std::fs::write(p, report.as_bytes()) {
                eprintln!("mtp-cert coverage: cannot write {}: {e}", p.display());
                return ExitCode::from(3);
            }
            crate::outln!(
                "coverage report: {} (testable MUST coverage {})",
                p.display(),
                cov.must().text()
            );
        }
        None => crate::out!("{report}"),
    }
    match args.fail_under {
        Some(f) if cov.must().below(f) => {
            eprintln!(
                "mtp-cert coverage: testable MUST coverage {} is below {f}%",
                cov.must().text()
            );
            ExitCode::from(1)
        }
        _ => ExitCode::SUCCESS,
    }
}
