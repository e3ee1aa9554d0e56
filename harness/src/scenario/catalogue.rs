//! The requirement catalogue (`docs/requirements.yaml`), embedded at build time so that the
//! harness validates requirement ids and reports coverage without any file outside the binary.
//!
//! Parsed as YAML (serde_yaml). The file keeps the layout other tools line-scan: `- id: X` at the
//! start of a line, then two-space-indented fields.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use mtp_reports::model::Level;
use serde::{Deserialize, Serialize};

/// The catalogue as shipped.
pub const TEXT: &str = include_str!("../../../docs/requirements.yaml");

/// How a requirement can be tested (`meta.testability` of the catalogue).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Testability {
    /// Observable by a peer over the transports (messages, responses, error codes).
    Wire,
    /// Checkable with deterministic test vectors (encoding, ids, signatures, computations).
    Vector,
    /// Needs the implementation's exported audit trail or state.
    Inspection,
    /// Governance, legal or otherwise not testable by software.
    Process,
}

impl Testability {
    pub const ALL: [Testability; 4] = [
        Testability::Wire,
        Testability::Vector,
        Testability::Inspection,
        Testability::Process,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Testability::Wire => "wire",
            Testability::Vector => "vector",
            Testability::Inspection => "inspection",
            Testability::Process => "process",
        }
    }

    /// Everything but `process`.
    pub fn is_testable(self) -> bool {
        self != Testability::Process
    }
}

impl fmt::Display for Testability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The level (RFC 2119 force, SPEC I-A) of a keyword: MUST, MUST NOT, REQUIRED, SHALL, SHALL NOT
/// → MUST; SHOULD, SHOULD NOT, RECOMMENDED → SHOULD; MAY, OPTIONAL → MAY; `None` otherwise.
pub fn level_of_keyword(keyword: &str) -> Option<Level> {
    match keyword {
        "MUST" | "MUST NOT" | "REQUIRED" | "SHALL" | "SHALL NOT" => Some(Level::Must),
        "SHOULD" | "SHOULD NOT" | "RECOMMENDED" => Some(Level::Should),
        "MAY" | "OPTIONAL" => Some(Level::May),
        _ => None,
    }
}

/// One entry of `requirements` or `implicit_requirements`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    pub id: String,
    /// `SPEC-001` or `BIND-001`.
    pub doc: String,
    /// Section as numbered in the document (`II-A`, `III-C-1`, ...).
    pub section: String,
    /// RFC 2119 keyword as written; `IMPLICIT` for keyword-less statements.
    pub keyword: String,
    /// The force when the keyword is used with another one ("No layer MAY be bypassed").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_keyword: Option<String>,
    /// For `IMPLICIT` entries: the force the suite applies (PROFILE G-56).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub implied_keyword: Option<String>,
    /// The sentence, verbatim.
    pub text: String,
    /// The verbatim fragment carrying this keyword when the sentence has several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clause: Option<String>,
    pub subject: String,
    pub testability: Testability,
    /// Why software cannot test it; present exactly for `process` entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub untestable_reason: Option<String>,
    pub test_idea: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<String>,
    /// Decisions of `docs/profile.md` (`G-xx`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<String>,
    /// Line (from 1) in the plain-text edition of the document named in `meta.sources`.
    pub source_line: u32,
    /// For an umbrella statement ("MUST implement all seven layers"): the requirements it is
    /// made of — ids, or `§<section>` (this document) / `<doc> §<section>` selectors that take
    /// every entry of that section and its subsections. Coverage counts an umbrella covered only
    /// when every testable MUST part is ([`Catalogue::parts_of`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<String>,
}

impl Requirement {
    /// A keyword-less statement (`keyword: IMPLICIT`).
    pub fn is_implicit(&self) -> bool {
        self.keyword == "IMPLICIT"
    }

    /// The keyword the suite applies: `effective_keyword`, else `implied_keyword`, else
    /// `keyword`, without a parenthesised qualifier (`MUST NOT (modify)` → `MUST NOT`).
    pub fn applied_keyword(&self) -> &str {
        let k = self
            .effective_keyword
            .as_deref()
            .or(self.implied_keyword.as_deref())
            .unwrap_or(&self.keyword);
        k.split('(').next().unwrap_or(k).trim()
    }

    /// Level of [`Self::applied_keyword`] ([`level_of_keyword`]). The catalogue parse rejects
    /// entries without one; for a hand-built entry an unknown keyword counts as MUST.
    pub fn level(&self) -> Level {
        level_of_keyword(self.applied_keyword()).unwrap_or(Level::Must)
    }

    /// MUST, MUST NOT, REQUIRED, SHALL, SHALL NOT — as written, as used (`effective_keyword`)
    /// or as implied for an `IMPLICIT` entry.
    pub fn mandatory(&self) -> bool {
        self.level() == Level::Must
    }

    /// Not `process`.
    pub fn testable(&self) -> bool {
        self.testability.is_testable()
    }
}

/// A document the catalogue was read from (`meta.sources`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub doc: String,
    /// The plain-text edition `source_line` refers to.
    pub file: String,
    pub title: String,
}

/// The parsed catalogue.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalogue {
    pub title: String,
    pub sources: Vec<Source>,
    /// Every entry, in document order: by `meta.sources` order, then source line, then file
    /// order (keyword entries before implicit ones on the same line).
    entries: Vec<Requirement>,
    index: BTreeMap<String, usize>,
}

impl Catalogue {
    /// Every entry, in document order.
    pub fn entries(&self) -> &[Requirement] {
        &self.entries
    }

    pub fn get(&self, id: &str) -> Option<&Requirement> {
        self.index.get(id).and_then(|i| self.entries.get(*i))
    }

    pub fn contains(&self, id: &str) -> bool {
        self.index.contains_key(id)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries with a keyword (the `requirements` section).
    /// The requirements `r.parts` names (document order, without `r` itself and without other
    /// umbrellas); empty when `r` has no parts.
    pub fn parts_of(&self, r: &Requirement) -> Vec<&Requirement> {
        let mut out: Vec<&Requirement> = Vec::new();
        for sel in &r.parts {
            for e in self.select(&r.doc, sel) {
                if e.id != r.id && e.parts.is_empty() && !out.iter().any(|o| o.id == e.id) {
                    out.push(e);
                }
            }
        }
        out.sort_by_key(|e| self.index.get(&e.id).copied());
        out
    }

    /// The entries one `parts` selector names (see [`Requirement::parts`]).
    fn select<'a>(&'a self, doc: &str, selector: &str) -> Vec<&'a Requirement> {
        let (doc, section) = match selector.split_once('§') {
            Some((d, sec)) if d.trim().is_empty() => (doc, sec.trim()),
            Some((d, sec)) => (d.trim(), sec.trim()),
            None => return self.get(selector).into_iter().collect(),
        };
        self.entries
            .iter()
            .filter(|e| {
                e.doc == doc
                    && (e.section == section
                        || e.section
                            .strip_prefix(section)
                            .is_some_and(|rest| rest.starts_with('-')))
            })
            .collect()
    }

    pub fn keyword_entries(&self) -> impl Iterator<Item = &Requirement> {
        self.entries.iter().filter(|r| !r.is_implicit())
    }

    /// `IMPLICIT` entries (the `implicit_requirements` section).
    pub fn implicit_entries(&self) -> impl Iterator<Item = &Requirement> {
        self.entries.iter().filter(|r| r.is_implicit())
    }
}

/// Why a catalogue text is not a valid catalogue.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CatalogueError {
    #[error("requirements catalogue: {0}")]
    Yaml(String),
    #[error("requirements catalogue: duplicate id `{0}`")]
    Duplicate(String),
    #[error("requirements catalogue: `{id}`: `{keyword}` is not an RFC 2119 keyword")]
    Keyword { id: String, keyword: String },
    #[error("requirements catalogue: `{0}`: IMPLICIT entry without implied_keyword")]
    NoImpliedKeyword(String),
    #[error("requirements catalogue: `{0}` is in the wrong section for its keyword")]
    Section(String),
    #[error("requirements catalogue: `{0}`: doc not in meta.sources")]
    Doc(String),
    #[error("requirements catalogue: `{0}`: testability process without untestable_reason")]
    NoReason(String),
    #[error("requirements catalogue: `{0}`: untestable_reason on a testable entry")]
    StrayReason(String),
    #[error("requirements catalogue: `{id}`: part `{part}` names no requirement")]
    Part { id: String, part: String },
}

#[derive(Deserialize)]
struct RawFile {
    meta: RawMeta,
    requirements: Vec<Requirement>,
    implicit_requirements: Vec<Requirement>,
}

#[derive(Deserialize)]
struct RawMeta {
    title: String,
    sources: Vec<Source>,
}

/// Parses and checks a catalogue text.
pub fn parse(text: &str) -> Result<Catalogue, CatalogueError> {
    let raw: RawFile =
        serde_yaml::from_str(text).map_err(|e| CatalogueError::Yaml(e.to_string()))?;
    let mut all: Vec<(usize, Requirement)> = Vec::new();
    for (implicit, list) in [(false, raw.requirements), (true, raw.implicit_requirements)] {
        for r in list {
            check(&r, implicit, &raw.meta.sources)?;
            all.push((all.len(), r));
        }
    }
    let doc_rank = |doc: &str| raw.meta.sources.iter().position(|s| s.doc == doc);
    all.sort_by_key(|(i, r)| (doc_rank(&r.doc), r.source_line, *i));
    let entries: Vec<Requirement> = all.into_iter().map(|(_, r)| r).collect();
    let mut index = BTreeMap::new();
    for (i, r) in entries.iter().enumerate() {
        if index.insert(r.id.clone(), i).is_some() {
            return Err(CatalogueError::Duplicate(r.id.clone()));
        }
    }
    let cat = Catalogue {
        title: raw.meta.title,
        sources: raw.meta.sources,
        entries,
        index,
    };
    for r in &cat.entries {
        for part in &r.parts {
            if cat.select(&r.doc, part).iter().all(|e| e.id == r.id) {
                return Err(CatalogueError::Part {
                    id: r.id.clone(),
                    part: part.clone(),
                });
            }
        }
    }
    Ok(cat)
}

fn check(r: &Requirement, implicit: bool, sources: &[Source]) -> Result<(), CatalogueError> {
    if r.is_implicit() != implicit {
        return Err(CatalogueError::Section(r.id.clone()));
    }
    if implicit && r.implied_keyword.is_none() {
        return Err(CatalogueError::NoImpliedKeyword(r.id.clone()));
    }
    if !implicit && level_of_keyword(&r.keyword).is_none() {
        return Err(CatalogueError::Keyword {
            id: r.id.clone(),
            keyword: r.keyword.clone(),
        });
    }
    if level_of_keyword(r.applied_keyword()).is_none() {
        return Err(CatalogueError::Keyword {
            id: r.id.clone(),
            keyword: r.applied_keyword().to_owned(),
        });
    }
    if !sources.iter().any(|s| s.doc == r.doc) {
        return Err(CatalogueError::Doc(r.id.clone()));
    }
    let has_reason = r
        .untestable_reason
        .as_deref()
        .is_some_and(|s| !s.trim().is_empty());
    match (r.testable(), has_reason) {
        (false, false) => Err(CatalogueError::NoReason(r.id.clone())),
        (true, true) => Err(CatalogueError::StrayReason(r.id.clone())),
        _ => Ok(()),
    }
}

/// The embedded catalogue, parsed once.
pub fn catalogue() -> Result<&'static Catalogue, &'static CatalogueError> {
    static CAT: OnceLock<Result<Catalogue, CatalogueError>> = OnceLock::new();
    CAT.get_or_init(|| parse(TEXT)).as_ref()
}

/// Every id of the embedded catalogue (empty if it does not parse; the crate's tests make
/// sure it does).
pub fn requirements() -> &'static BTreeMap<String, Requirement> {
    static MAP: OnceLock<BTreeMap<String, Requirement>> = OnceLock::new();
    MAP.get_or_init(|| {
        catalogue()
            .map(|c| {
                c.entries()
                    .iter()
                    .map(|r| (r.id.clone(), r.clone()))
                    .collect()
            })
            .unwrap_or_default()
    })
}

pub fn contains(id: &str) -> bool {
    catalogue().is_ok_and(|c| c.contains(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_has_every_entry() {
        // The parse finds exactly the entries meta.counts announces.
        let count = |key: &str| -> usize {
            TEXT.lines()
                .find_map(|l| l.trim().strip_prefix(key))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        let cat = catalogue().unwrap();
        assert_eq!(cat.keyword_entries().count(), count("requirements:"));
        assert_eq!(
            cat.implicit_entries().count(),
            count("implicit_requirements:")
        );
        // The line layout other tools scan (`- id: X`) still finds every entry.
        let scanned = TEXT.lines().filter(|l| l.starts_with("- id: ")).count();
        assert_eq!(scanned, cat.len());
        let r = cat.get("SPEC-II-A-06").unwrap();
        assert_eq!(r.keyword, "MUST");
        assert_eq!(r.testability, Testability::Wire);
        assert!(contains("SPEC-I-B-I01"));
        assert_eq!(requirements().len(), cat.len());
    }

    #[test]
    fn applied_keywords() {
        let cat = catalogue().unwrap();
        // MAY used as MUST NOT.
        let r = cat.get("SPEC-I-B-05").unwrap();
        assert_eq!(r.applied_keyword(), "MUST NOT");
        assert!(r.mandatory());
        // IMPLICIT with a qualifier.
        let r = cat.get("SPEC-I-B-I01").unwrap();
        assert_eq!(r.applied_keyword(), "MUST NOT");
        assert!(r.mandatory());
        let r = cat.get("SPEC-I-A-04").unwrap();
        assert_eq!(r.level(), Level::May);
        assert!(!r.mandatory());
    }

    #[test]
    fn parse_rejects_a_process_entry_without_reason() {
        let mut dropped = false;
        let text: String = TEXT
            .lines()
            .filter(|l| {
                let drop = !dropped && l.starts_with("  untestable_reason: ");
                dropped |= drop;
                !drop
            })
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(dropped);
        assert!(matches!(parse(&text), Err(CatalogueError::NoReason(_))));
    }
}
