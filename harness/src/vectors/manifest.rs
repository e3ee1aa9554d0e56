//! `vectors/manifest.json` (format `mtp-vectors/1`): every vector of the corpus with its
//! requirement ids, inputs, expected outputs (long values elided to a digest; the vector's
//! JSON file has them whole), codec checks and files (path, size, SHA-256), per-family
//! counts, and the coverage index requirement id → vectors.
//!
//! The manifest is derived from the generated files: a vector is a `<id>.json` document
//! with `id` and `requirements`; its other files share the path without extension.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value as Json, json};

use super::{Family, MASTER, REGENERATE, VectorError, VectorFile};

/// The manifest's pseudo-family name (written at the corpus root).
pub const FAMILY: &str = "manifest";
/// The manifest file name.
pub const FILE: &str = "manifest.json";
/// The manifest format identifier.
pub const FORMAT: &str = "mtp-vectors/1";
/// Strings longer than this are elided in the manifest's `inputs` / `expected`.
pub const MAX_STRING: usize = 256;
/// Arrays longer than this are elided in the manifest's `inputs` / `expected`.
pub const MAX_ARRAY: usize = 32;

fn elide(v: &Json) -> Json {
    match v {
        Json::String(s) if s.chars().count() > MAX_STRING => Json::String(format!(
            "<{} characters, sha256:{}>",
            s.chars().count(),
            hex::encode(mtp_protocol::crypto::sha256(s.as_bytes()))
        )),
        Json::Array(a) if a.len() > MAX_ARRAY => {
            let text = serde_json::to_string(a).unwrap_or_default();
            Json::String(format!(
                "<{} items, sha256:{}>",
                a.len(),
                hex::encode(mtp_protocol::crypto::sha256(text.as_bytes()))
            ))
        }
        Json::Array(a) => Json::Array(a.iter().map(elide).collect()),
        Json::Object(m) => Json::Object(m.iter().map(|(k, v)| (k.clone(), elide(v))).collect()),
        other => other.clone(),
    }
}

/// The path without the extension of its last component (`cbor/offer.cbor` → `cbor/offer`).
fn stem(path: &Path) -> String {
    let s = path_text(path);
    let name_start = s.rfind('/').map_or(0, |i| i + 1);
    match s[name_start..].rfind('.') {
        Some(dot) => s[..name_start + dot].to_owned(),
        None => s,
    }
}

fn path_text(path: &Path) -> String {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Builds `manifest.json` from the families' files.
pub fn build(families: &[Family]) -> Result<VectorFile, VectorError> {
    let mut vectors = Vec::new();
    let mut coverage: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut counts = Vec::new();
    for family in families {
        // Files grouped by stem, in generation order.
        let mut groups: Vec<(String, Vec<&VectorFile>)> = Vec::new();
        for f in &family.files {
            let s = stem(&f.path);
            match groups.iter_mut().find(|(k, _)| *k == s) {
                Some((_, g)) => g.push(f),
                None => groups.push((s, vec![f])),
            }
        }
        let mut n = 0usize;
        for (s, files) in &groups {
            let Some(doc_file) = files
                .iter()
                .find(|f| f.path.extension().is_some_and(|e| e == "json"))
            else {
                continue;
            };
            let doc: Json =
                serde_json::from_slice(&doc_file.bytes).map_err(|e| VectorError::Json {
                    path: doc_file.path.clone(),
                    message: e.to_string(),
                })?;
            let Some(id) = doc.get("id").and_then(Json::as_str) else {
                continue;
            };
            if id != s {
                return Err(VectorError::Corpus {
                    path: doc_file.path.clone(),
                    what: format!("vector id {id} is not the file path {s}"),
                });
            }
            let requirements: Vec<String> = doc
                .get("requirements")
                .and_then(Json::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Json::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            for r in &requirements {
                coverage.entry(r.clone()).or_default().push(id.to_owned());
            }
            let mut entry = Map::new();
            entry.insert("id".into(), Json::String(id.to_owned()));
            entry.insert("family".into(), Json::String(family.name.to_owned()));
            entry.insert("requirements".into(), json!(requirements));
            if let Some(d) = doc.get("description") {
                entry.insert("description".into(), d.clone());
            }
            if let Some(c) = doc.get("codec") {
                entry.insert("codec".into(), elide(c));
            }
            entry.insert(
                "inputs".into(),
                elide(doc.get("inputs").unwrap_or(&Json::Null)),
            );
            entry.insert(
                "expected".into(),
                elide(doc.get("expected").unwrap_or(&Json::Null)),
            );
            entry.insert(
                "files".into(),
                Json::Array(
                    files
                        .iter()
                        .map(|f| {
                            json!({
                                "path": path_text(&f.path),
                                "bytes": f.bytes.len(),
                                "sha256": hex::encode(mtp_protocol::crypto::sha256(&f.bytes)),
                            })
                        })
                        .collect(),
                ),
            );
            vectors.push(Json::Object(entry));
            n += 1;
        }
        counts.push(json!({
            "name": family.name,
            "vectors": n,
            "files": family.files.len(),
        }));
    }
    let total = vectors.len();
    let manifest = json!({
        "format": FORMAT,
        "profile": "mtp-conformance-profile/1",
        "protocol_version": "1.0.0",
        "generator": REGENERATE,
        "master_seed": hex::encode(MASTER),
        "elision": format!(
            "inputs/expected: strings over {MAX_STRING} characters and arrays over {MAX_ARRAY} \
             items are replaced by their length and SHA-256 (of the UTF-8 string, or of the \
             compact JSON array); the vector's JSON file holds them whole"
        ),
        "families": counts,
        "vector_count": total,
        "vectors": vectors,
        "coverage": coverage,
    });
    VectorFile::json(FILE, &manifest)
}
