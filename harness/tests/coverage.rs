//! The requirement catalogue and `mtp-cert coverage`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use mtp_harness::coverage::{
    self, CoverageArgs, CoverageError, Format, VectorManifest, coverage, coverage_with,
    parse_manifest, read_manifest, read_results, run_coverage,
};
use mtp_harness::scenario::catalogue::{self, Testability};
use mtp_harness::scenario::{Scenario, parse_str};
use mtp_reports::model::{
    Ics, IutSummary, Layer, Level, Record, RunHeader, SCHEMA, ScenarioResult, Verdict, jsonl,
};
use serde_json::Value;

fn scenario_yaml(id: &str, level: &str, requirements: &[&str]) -> String {
    format!(
        "id: {id}\ntitle: fixture {id}\nrequirements: [{}]\nlayer: cross_layer\nlevel: {level}\nsteps:\n  - sleep: 1ms\n",
        requirements.join(", ")
    )
}

/// Three scenarios: two MUST scenarios sharing SPEC-II-A-06, one SHOULD scenario that also
/// cites a MAY and a `process` requirement.
const FIXTURE: &[(&str, &str, &[&str])] = &[
    ("FIX-A-001", "MUST", &["SPEC-II-A-06", "SPEC-IX-03"]),
    ("FIX-B-001", "MUST", &["SPEC-II-A-06"]),
    (
        "FIX-C-001",
        "SHOULD",
        &["BIND-II-B-02", "SPEC-I-B-01", "SPEC-I-A-04"],
    ),
];

fn fixture() -> Vec<Scenario> {
    FIXTURE
        .iter()
        .flat_map(|(id, level, reqs)| {
            parse_str(&scenario_yaml(id, level, reqs), Path::new("fixture.yaml")).unwrap()
        })
        .collect()
}

fn write_fixture(dir: &Path) -> PathBuf {
    let sdir = dir.join("scenarios");
    std::fs::create_dir_all(&sdir).unwrap();
    for (id, level, reqs) in FIXTURE {
        std::fs::write(
            sdir.join(format!("{}.yaml", id.to_lowercase())),
            scenario_yaml(id, level, reqs),
        )
        .unwrap();
    }
    sdir
}

fn result(id: &str, verdict: Verdict) -> ScenarioResult {
    ScenarioResult {
        scenario_id: id.into(),
        title: id.into(),
        layer: Layer::CrossLayer,
        level: Level::Must,
        requirements: Vec::new(),
        verdict,
        reason: String::new(),
        started: "2026-01-01T00:00:00Z".into(),
        finished: "2026-01-01T00:00:00Z".into(),
        duration_ms: 1,
        seed: 1,
        replay: String::new(),
        steps: Vec::new(),
    }
}

fn header() -> RunHeader {
    RunHeader {
        schema: SCHEMA.into(),
        suite_version: "0.1.0".into(),
        seed: 1,
        iut: IutSummary {
            name: "fixture".into(),
            description_sha256: "00".repeat(32),
        },
        started: "2026-01-01T00:00:00Z".into(),
        ics: Ics::default(),
        executor: "dry-run".into(),
    }
}

/// A `results.jsonl`: FIX-A fails then passes (the later line wins), FIX-B fails, and a result
/// of a scenario outside the selection.
fn write_results(dir: &Path) -> PathBuf {
    let records = [
        Record::Header(header()),
        Record::Scenario(result("FIX-A-001", Verdict::Fail)),
        Record::Scenario(result("FIX-B-001", Verdict::Fail)),
        Record::Scenario(result("GONE-001", Verdict::Pass)),
        Record::Scenario(result("FIX-A-001", Verdict::Pass)),
    ];
    let text: String = records.iter().map(jsonl::line).collect();
    let p = dir.join("results.jsonl");
    std::fs::write(&p, text).unwrap();
    p
}

const MANIFEST: &str = r#"{"format":"mtp-vectors/1","vectors":[
  {"id":"crypto/mldsa65","requirements":["BIND-VI-A-02","BIND-VI-B-01"],"description":"x"},
  {"id":"crypto/unknown","requirements":["BIND-XX-99"]}
]}"#;

#[test]
fn catalogue_counts() {
    let cat = catalogue::catalogue().unwrap();
    assert_eq!(cat.keyword_entries().count(), 303);
    assert_eq!(cat.implicit_entries().count(), 93);
    assert_eq!(cat.len(), 396);
    let docs = |d: &str| cat.keyword_entries().filter(|r| r.doc == d).count();
    assert_eq!(docs("SPEC-001"), 216);
    assert_eq!(docs("BIND-001"), 87);
    let kind = |t: Testability| cat.entries().iter().filter(|r| r.testability == t).count();
    assert_eq!(kind(Testability::Wire), 190);
    assert_eq!(kind(Testability::Vector), 117);
    assert_eq!(kind(Testability::Inspection), 47);
    assert_eq!(kind(Testability::Process), 42);
    let level = |l: Level| cat.entries().iter().filter(|r| r.level() == l).count();
    assert_eq!(level(Level::Must), 363);
    assert_eq!(level(Level::Should), 12);
    assert_eq!(level(Level::May), 21);
    // Every field the report needs is there, and ids are unique and in document order.
    let first = &cat.entries()[0];
    assert_eq!(first.id, "SPEC-I-A-01");
    assert_eq!(first.section, "I-A");
    assert!(first.text.contains("Curtis License"));
    assert!(
        cat.entries()
            .iter()
            .all(|r| !r.text.is_empty() && r.source_line > 0 && !r.section.is_empty())
    );
}

#[test]
fn mandatory_predicate() {
    let cat = catalogue::catalogue().unwrap();
    for r in cat.entries() {
        let k = r.applied_keyword();
        let expected = matches!(k, "MUST" | "MUST NOT" | "REQUIRED" | "SHALL" | "SHALL NOT");
        assert_eq!(r.mandatory(), expected, "{}", r.id);
        if r.is_implicit() {
            assert!(r.implied_keyword.is_some(), "{}", r.id);
        }
    }
    // MAY used as MUST NOT ("No layer MAY be bypassed").
    let bypass = cat
        .entries()
        .iter()
        .find(|r| r.text.starts_with("No layer MAY be bypassed"))
        .unwrap();
    assert_eq!(bypass.keyword, "MAY");
    assert!(bypass.mandatory());
    assert!(!cat.get("SPEC-I-B-01").unwrap().mandatory());
    assert!(!cat.get("BIND-II-B-02").unwrap().mandatory());
}

#[test]
fn every_process_entry_has_a_reason() {
    let cat = catalogue::catalogue().unwrap();
    let mut n = 0;
    for r in cat.entries() {
        let reason = r.untestable_reason.as_deref().unwrap_or("");
        if r.testability == Testability::Process {
            n += 1;
            assert!(!reason.trim().is_empty(), "{}", r.id);
            assert!(!reason.contains('\n'), "{}: one line", r.id);
        } else {
            assert!(reason.is_empty(), "{}: reason on a testable entry", r.id);
        }
    }
    assert_eq!(n, 42);
}

#[test]
fn catalogue_stands_on_its_own() {
    let text = catalogue::TEXT;
    for gone in ["gaps.md", "summary.md", "seed file", "../shared"] {
        assert!(!text.contains(gone), "{gone}");
    }
    // Every G-xx the catalogue cites is a decision of docs/profile.md.
    let profile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/profile.md"))
            .unwrap();
    let cat = catalogue::catalogue().unwrap();
    for r in cat.entries() {
        for g in &r.gaps {
            assert!(
                profile.contains(&format!("## {g} ")),
                "{}: {g} not in docs/profile.md",
                r.id
            );
        }
    }
}

#[test]
fn coverage_of_a_fixture() {
    let cat = catalogue::catalogue().unwrap();
    let cov = coverage(&fixture(), None);
    assert_eq!(cov.scenarios, 3);
    assert_eq!(cov.totals.requirements, 396);
    assert_eq!(cov.totals.untestable, 42);
    assert_eq!(cov.totals.testable, 354);
    let must_total = cat
        .entries()
        .iter()
        .filter(|r| r.testable() && r.mandatory())
        .count() as u32;
    let m = cov.totals.all.must;
    assert_eq!((m.covered, m.total), (2, must_total));
    assert_eq!(cov.totals.all.should.covered, 1);
    assert_eq!(cov.totals.all.may.covered, 1);
    assert!(cov.last_run.is_none());
    // Per document and per kind add up to the whole.
    let sum_doc: u32 = cov.totals.by_doc.values().map(|t| t.must.total).sum();
    let sum_kind: u32 = cov
        .totals
        .by_testability
        .values()
        .map(|t| t.must.total)
        .sum();
    assert_eq!(sum_doc, must_total);
    assert_eq!(sum_kind, must_total);
    assert!(
        !cov.totals
            .by_testability
            .contains_key(&Testability::Process)
    );
    assert_eq!(cov.totals.by_doc["BIND-001"].should.covered, 1);

    let row = |id: &str| cov.requirements.iter().find(|r| r.id == id).unwrap();
    let r = row("SPEC-II-A-06");
    assert!(r.covered);
    let cited: Vec<&str> = r.scenarios.iter().map(|c| c.scenario.as_str()).collect();
    assert_eq!(cited, ["FIX-A-001", "FIX-B-001"]);
    assert_eq!(r.verdict, None);
    // A process requirement cited by a scenario is listed but never counted as testable.
    assert!(row("SPEC-I-A-04").covered);
    assert!(cov.untestable.iter().any(|u| u.id == "SPEC-I-A-04"));
    assert!(cov.unknown_ids.is_empty());
    assert_eq!(cov.requirements.len(), 396);
}

#[test]
fn uncovered_list() {
    let cov = coverage(&fixture(), None);
    let m = cov.totals.all.must;
    assert_eq!(cov.uncovered_must.len() as u32, m.total - m.covered);
    let ids: Vec<&str> = cov.uncovered_must.iter().map(|u| u.id.as_str()).collect();
    assert!(!ids.contains(&"SPEC-II-A-06"));
    assert!(!ids.contains(&"SPEC-IX-03"));
    assert!(ids.contains(&"BIND-VI-A-02"));
    // Only testable MUST requirements, each with its text.
    let cat = catalogue::catalogue().unwrap();
    for u in &cov.uncovered_must {
        let r = cat.get(&u.id).unwrap();
        assert!(r.mandatory() && r.testable(), "{}", u.id);
        assert_eq!(u.text, r.text);
    }
    // Nothing selected: every testable MUST is uncovered.
    let none = coverage(&[], None);
    assert_eq!(none.uncovered_must.len() as u32, m.total);
    assert_eq!(none.totals.all.must.percent, Some(0.0));
}

#[test]
fn last_verdicts_from_results_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let results = read_results(&write_results(dir.path())).unwrap();
    let cov = coverage(&fixture(), Some(&results));
    let row = |id: &str| cov.requirements.iter().find(|r| r.id == id).unwrap();
    // FIX-A's last result is a pass, FIX-B failed: the requirement shows the worst.
    let r = row("SPEC-II-A-06");
    assert_eq!(r.scenarios[0].verdict, Some(Verdict::Pass));
    assert_eq!(r.scenarios[1].verdict, Some(Verdict::Fail));
    assert_eq!(r.verdict, Some(Verdict::Fail));
    assert_eq!(row("SPEC-IX-03").verdict, Some(Verdict::Pass));
    assert_eq!(row("BIND-II-B-02").verdict, None);
    let run = cov.last_run.as_ref().unwrap();
    assert_eq!(run.scenarios_with_result, 2);
    assert_eq!(run.ignored_results, ["GONE-001"]);
    assert_eq!((run.must_verdicts.pass, run.must_verdicts.fail), (1, 1));
    assert_eq!(run.must_not_run, 0);
    assert!(cov.to_text().contains("FIX-B-001 (FAIL)"));

    // Not a results file.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"record\":\"scenario\"}\n{}\n").unwrap();
    assert!(matches!(
        read_results(&bad),
        Err(CoverageError::Results { .. })
    ));
}

#[test]
fn vector_manifest_covers_vector_requirements_only() {
    let m = parse_manifest(MANIFEST, "manifest.json").unwrap();
    let cov = coverage_with(&fixture(), None, Some(&m));
    let row = |id: &str| cov.requirements.iter().find(|r| r.id == id).unwrap();
    let v = row("BIND-VI-A-02");
    assert_eq!(v.testability, Testability::Vector);
    assert!(v.covered);
    assert_eq!(v.vectors, ["crypto/mldsa65"]);
    // A wire requirement listed by a vector is shown but not covered by it.
    let w = row("BIND-VI-B-01");
    assert_eq!(w.testability, Testability::Wire);
    assert!(!w.covered);
    assert_eq!(w.vectors, ["crypto/mldsa65"]);
    assert_eq!(cov.unknown_ids, ["vector:crypto/unknown: BIND-XX-99"]);
    assert_eq!(cov.vectors, Some(2));
    assert_eq!(cov.totals.all.must.covered, 3);

    // Reading: a folder or the file; absent is no manifest; a wrong format is an error.
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(read_manifest(None).unwrap(), None);
    assert_eq!(read_manifest(Some(dir.path())).unwrap(), None);
    std::fs::write(dir.path().join("manifest.json"), MANIFEST).unwrap();
    let read: Option<VectorManifest> = read_manifest(Some(dir.path())).unwrap();
    assert_eq!(read, Some(m));
    let other = dir.path().join("other.json");
    std::fs::write(&other, r#"{"format":"mtp-vectors/9","vectors":[]}"#).unwrap();
    assert!(matches!(
        read_manifest(Some(&other)),
        Err(CoverageError::ManifestFormat { .. })
    ));
    std::fs::write(&other, "[1,2]").unwrap();
    assert!(matches!(
        read_manifest(Some(&other)),
        Err(CoverageError::Manifest { .. })
    ));
}

#[test]
fn json_shape() {
    let dir = tempfile::tempdir().unwrap();
    let results = read_results(&write_results(dir.path())).unwrap();
    let m = parse_manifest(MANIFEST, "manifest.json").unwrap();
    let cov = coverage_with(&fixture(), Some(&results), Some(&m));
    let v: Value = serde_json::from_str(&cov.to_json()).unwrap();
    assert_eq!(v["schema"], coverage::SCHEMA);
    assert_eq!(v["scenarios"], 3);
    assert_eq!(v["vectors"], 2);
    let must = &v["totals"]["all"]["must"];
    assert_eq!(must["covered"], 3);
    assert!(must["total"].as_u64().unwrap() > 300);
    assert!(must["percent"].as_f64().unwrap() > 0.0);
    for k in ["should", "may"] {
        assert!(v["totals"]["all"][k]["total"].is_u64(), "{k}");
    }
    assert!(v["totals"]["by_doc"]["SPEC-001"]["must"]["total"].is_u64());
    for k in ["wire", "vector", "inspection"] {
        assert!(
            v["totals"]["by_testability"][k]["must"]["total"].is_u64(),
            "{k}"
        );
    }
    assert!(v["totals"]["by_testability"]["process"].is_null());
    assert_eq!(v["totals"]["untestable"], 42);
    let reqs = v["requirements"].as_array().unwrap();
    assert_eq!(reqs.len(), 396);
    let r = reqs.iter().find(|r| r["id"] == "SPEC-II-A-06").unwrap();
    assert_eq!(r["keyword"], "MUST");
    assert_eq!(r["level"], "must");
    assert_eq!(r["testability"], "wire");
    assert_eq!(r["covered"], true);
    assert_eq!(r["verdict"], "fail");
    assert_eq!(r["scenarios"][0]["scenario"], "FIX-A-001");
    assert_eq!(r["scenarios"][0]["level"], "must");
    assert_eq!(r["scenarios"][0]["verdict"], "pass");
    let u = &v["uncovered_must"][0];
    assert!(u["id"].is_string() && u["text"].is_string() && u["testability"].is_string());
    let p = v["untestable"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == "SPEC-I-A-01")
        .unwrap();
    assert_eq!(p["applied_keyword"], "SHALL");
    assert!(p["reason"].as_str().unwrap().contains("Licence"));
    assert_eq!(v["last_run"]["ignored_results"][0], "GONE-001");
    assert_eq!(v["last_run"]["must_verdicts"]["fail"], 1);
    // BIND-VI-A-02 is covered by the manifest alone.
    assert_eq!(v["last_run"]["must_vectors_only"], 1);
    assert_eq!(v["last_run"]["must_not_run"], 0);
    // Deterministic.
    assert_eq!(
        cov.to_json(),
        coverage_with(&fixture(), Some(&results), Some(&m)).to_json()
    );
}

#[test]
fn text_and_markdown() {
    let cov = coverage(&fixture(), None);
    let t = cov.to_text();
    assert!(t.contains("396 requirements, 354 testable, 42 not testable by software"));
    assert!(t.contains("SPEC-II-A-06"));
    assert!(t.contains("Uncovered testable MUST requirements ("));
    assert!(t.contains("Not testable by software (42):"));
    assert!(t.contains("IMPLICIT:MUST"));
    let md = cov.to_markdown();
    assert!(md.starts_with("# Requirement coverage\n"));
    assert!(md.contains("| id | keyword | testability | verdict | scenarios (last verdict) |"));
    assert!(md.contains("| SPEC-I-A-01 | SHALL | "));
    // A table row never has an unescaped pipe inside a cell.
    for line in md
        .lines()
        .filter(|l| l.starts_with("| SPEC-") || l.starts_with("| BIND-"))
    {
        let cells = line.replace("\\|", "").matches('|').count();
        // Uncovered and untestable rows: 3 cells; totals: 4; requirements: 5.
        assert!((4..=6).contains(&cells), "{line}");
    }
}

fn args(dir: &Path, format: Format, fail_under: Option<f64>) -> CoverageArgs {
    std::fs::write(dir.join("manifest.json"), MANIFEST).unwrap();
    CoverageArgs {
        scenarios: vec![write_fixture(dir)],
        results: Some(write_results(dir)),
        vectors: Some(dir.to_owned()),
        format,
        out: Some(dir.join(format!("coverage.{format:?}"))),
        fail_under,
    }
}

#[test]
fn cli_entry() {
    let dir = tempfile::tempdir().unwrap();
    let a = args(dir.path(), Format::Json, Some(0.5));
    assert_eq!(run_coverage(&a), ExitCode::SUCCESS);
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(a.out.as_ref().unwrap()).unwrap()).unwrap();
    assert_eq!(v["scenarios"], 3);
    assert_eq!(v["vectors"], 2);
    assert_eq!(v["last_run"]["scenarios_with_result"], 2);
    assert!(
        v["inputs"]["results"]
            .as_str()
            .unwrap()
            .ends_with("results.jsonl")
    );
    assert!(
        v["inputs"]["vectors"]
            .as_str()
            .unwrap()
            .ends_with("manifest.json")
    );

    let a = args(dir.path(), Format::Markdown, Some(50.0));
    assert_eq!(run_coverage(&a), ExitCode::from(1));
    assert!(
        std::fs::read_to_string(a.out.as_ref().unwrap())
            .unwrap()
            .starts_with("# Requirement coverage")
    );

    let mut a = args(dir.path(), Format::Text, None);
    a.results = Some(dir.path().join("missing.jsonl"));
    assert_eq!(run_coverage(&a), ExitCode::from(2));
    let mut a = args(dir.path(), Format::Text, None);
    a.scenarios = vec![dir.path().join("no-such-folder")];
    assert_eq!(run_coverage(&a), ExitCode::from(2));
}

/// An umbrella ("MUST implement all four primitives") is covered only through its parts: every
/// testable MUST requirement of SPEC II-A..II-D, and its verdict is the worst of theirs.
#[test]
fn umbrella_requirements_are_covered_through_their_parts() {
    let cat = catalogue::catalogue().unwrap();
    let umbrella = cat.get("SPEC-II-01").unwrap();
    let parts: Vec<&str> = cat
        .parts_of(umbrella)
        .into_iter()
        .filter(|p| p.testable() && p.mandatory())
        .map(|p| p.id.as_str())
        .collect();
    assert!(parts.len() > 10, "{parts:?}");
    assert!(parts.iter().all(|p| p.starts_with("SPEC-II-")));
    assert!(!parts.contains(&"SPEC-II-01"));

    let yaml = |id: &str, reqs: &[&str]| {
        parse_str(&scenario_yaml(id, "MUST", reqs), Path::new("u.yaml")).unwrap()
    };
    // Citing the umbrella itself does not cover it.
    let cov = coverage(&yaml("FIX-U-001", &["SPEC-II-01"]), None);
    let row = cov
        .requirements
        .iter()
        .find(|r| r.id == "SPEC-II-01")
        .unwrap();
    assert!(!row.covered);
    let u = cov
        .uncovered_must
        .iter()
        .find(|u| u.id == "SPEC-II-01")
        .unwrap();
    assert_eq!(u.parts_missing.len(), parts.len());

    // Every part cited but one: still uncovered, naming the missing part.
    let all_but_one = yaml("FIX-U-002", &parts[1..]);
    let cov = coverage(&all_but_one, None);
    let u = cov
        .uncovered_must
        .iter()
        .find(|u| u.id == "SPEC-II-01")
        .unwrap();
    assert_eq!(u.parts_missing, [parts[0].to_owned()]);

    // Every part cited: covered, with the worst verdict of the parts.
    let mut both = yaml("FIX-U-003", &parts[1..]);
    both.extend(yaml("FIX-U-004", &parts[..1]));
    let results = [
        result("FIX-U-003", Verdict::Pass),
        result("FIX-U-004", Verdict::Fail),
    ];
    let cov = coverage(&both, Some(&results));
    let row = cov
        .requirements
        .iter()
        .find(|r| r.id == "SPEC-II-01")
        .unwrap();
    assert!(row.covered);
    assert_eq!(row.verdict, Some(Verdict::Fail));
    assert_eq!(row.parts.len(), parts.len());
    assert!(!cov.uncovered_must.iter().any(|u| u.id == "SPEC-II-01"));
}
