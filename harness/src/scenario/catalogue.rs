//! The requirement catalogue (`docs/requirements.yaml`), embedded at build time so that the
//! harness validates requirement ids without any file outside the binary.

use std::collections::BTreeMap;
use std::sync::OnceLock;

const TEXT: &str = include_str!("../../../docs/requirements.yaml");

/// One catalogue entry, as far as the scenario loader needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    pub id: String,
    /// `MUST`, `SHOULD NOT`, `IMPLICIT`, ...
    pub keyword: String,
    /// `wire`, `vector`, `inspection`, `process`.
    pub testability: String,
}

/// Every id of the `requirements` and `implicit_requirements` sections.
pub fn requirements() -> &'static BTreeMap<String, Requirement> {
    static CAT: OnceLock<BTreeMap<String, Requirement>> = OnceLock::new();
    CAT.get_or_init(|| parse(TEXT))
}

pub fn contains(id: &str) -> bool {
    requirements().contains_key(id)
}

/// Line scan of the catalogue: entries are `- id: X` items under the two top-level sections
/// (the file is generated with this layout; the excluded keyword occurrences carry no id).
fn parse(text: &str) -> BTreeMap<String, Requirement> {
    let mut out = BTreeMap::new();
    let mut section = "";
    let mut current: Option<Requirement> = None;
    let flush = |r: Option<Requirement>, out: &mut BTreeMap<String, Requirement>| {
        if let Some(r) = r {
            out.insert(r.id.clone(), r);
        }
    };
    for line in text.lines() {
        if !line.starts_with([' ', '-', '#']) && line.ends_with(':') {
            flush(current.take(), &mut out);
            section = line.trim_end_matches(':');
            continue;
        }
        if !matches!(section, "requirements" | "implicit_requirements") {
            continue;
        }
        if let Some(id) = line.strip_prefix("- id: ") {
            flush(current.take(), &mut out);
            current = Some(Requirement {
                id: id.trim().to_owned(),
                keyword: String::new(),
                testability: String::new(),
            });
        } else if let Some(r) = current.as_mut() {
            if let Some(k) = line.strip_prefix("  keyword: ") {
                r.keyword = k.trim().trim_matches('\'').to_owned();
            } else if let Some(t) = line.strip_prefix("  testability: ") {
                r.testability = t.trim().to_owned();
            }
        }
    }
    flush(current.take(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn catalogue_has_every_entry() {
        // The line scan finds exactly the entries meta.counts announces.
        let count = |key: &str| -> usize {
            super::TEXT
                .lines()
                .find_map(|l| l.trim().strip_prefix(key))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        let expected = count("requirements:") + count("implicit_requirements:");
        let cat = super::requirements();
        assert!(expected >= 396, "{expected}");
        assert_eq!(cat.len(), expected);
        let r = &cat["SPEC-II-A-06"];
        assert_eq!(r.keyword, "MUST");
        assert_eq!(r.testability, "wire");
        assert!(cat.contains_key("SPEC-I-B-I01"));
    }
}
