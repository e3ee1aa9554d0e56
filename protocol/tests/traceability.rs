//! Every requirement id cited in the protocol crate exists in the catalogue
//! (`docs/requirements.yaml`), so grepping an id always leads somewhere real.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn catalogue_ids() -> BTreeSet<String> {
    let text = include_str!("../../docs/requirements.yaml");
    text.lines()
        .filter_map(|l| l.trim_start().strip_prefix("- id: "))
        .map(|s| s.trim().to_owned())
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Ids look like `SPEC-IX-03`, `BIND-VII-A-01`, `SPEC-IV-B-I03`, `SPEC-III-C-1-02`.
fn cited_ids(text: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i + 5 < b.len() {
        let rest = &text[i..];
        if (rest.starts_with("SPEC-") || rest.starts_with("BIND-"))
            && (i == 0 || !b[i - 1].is_ascii_alphanumeric())
        {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .unwrap_or(rest.len());
            let id = rest[..end].trim_end_matches('-');
            // Only full ids (ending in a numbered clause) count; section mentions like
            // `SPEC-VII-A` are prose.
            let last = id.rsplit('-').next().unwrap_or("");
            // `SPEC-001` / `BIND-001` name the documents, not requirements.
            let numbered = last.len() >= 2
                && last
                    .trim_start_matches('I')
                    .chars()
                    .all(|c| c.is_ascii_digit());
            if numbered && id.matches('-').count() >= 2 {
                ids.push(id.to_owned());
            }
            i += end.max(1);
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    ids
}

#[test]
fn cited_requirement_ids_exist_in_the_catalogue() {
    let known = catalogue_ids();
    assert!(known.len() >= 396, "catalogue has {} ids", known.len());
    let mut files = Vec::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in ["src", "../harness/src", "../reference-agent/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    let mut cited = BTreeSet::new();
    let mut unknown = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("readable source");
        for id in cited_ids(&text) {
            if known.contains(&id) {
                cited.insert(id);
            } else {
                unknown.push(format!("{}: {id}", f.display()));
            }
        }
    }
    println!(
        "REQUIREMENTS cited by the protocol crate and the harness: {} distinct ids",
        cited.len()
    );
    assert!(
        unknown.is_empty(),
        "ids not in docs/requirements.yaml:\n{}",
        unknown.join("\n")
    );
}

#[test]
fn id_scanner_recognises_the_id_shapes() {
    let ids = cited_ids(
        "MTP-SPEC-001 says: see SPEC-IX-03, BIND-VII-A-01; SPEC-IV-B-I03 and (SPEC-III-C-1-02). Not SPEC-VII-A.",
    );
    assert_eq!(
        ids,
        [
            "SPEC-IX-03",
            "BIND-VII-A-01",
            "SPEC-IV-B-I03",
            "SPEC-III-C-1-02"
        ]
    );
}
