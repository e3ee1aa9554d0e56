//! The one entry point for the report files: [`write_all`] renders every writer from the
//! same [`RunResults`] and writes `report.xml`, `report.json`, `report.html` and
//! `summary.md` into an output directory (each file atomically: a temporary file, then a
//! rename).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::baseline::Gate;
use crate::junit::JunitError;
use crate::model::RunResults;
use crate::{html, json, junit, markdown};

/// Why the reports could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Junit(#[from] JunitError),
    #[error("JSON report: {0}")]
    Json(#[from] serde_json::Error),
}

/// Options shared by the writers.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    /// The `--baseline` decision, shown in the JSON, HTML and Markdown reports.
    pub baseline: Option<Gate>,
    /// Requirement id → its text (`docs/requirements.yaml`), shown in the HTML matrix.
    pub requirement_texts: BTreeMap<String, String>,
}

/// The kind of a written report file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportKind {
    Junit,
    Json,
    Html,
    Markdown,
}

impl ReportKind {
    pub const ALL: [ReportKind; 4] = [
        ReportKind::Junit,
        ReportKind::Json,
        ReportKind::Html,
        ReportKind::Markdown,
    ];

    /// File name inside the output directory.
    pub fn file_name(self) -> &'static str {
        match self {
            ReportKind::Junit => "report.xml",
            ReportKind::Json => "report.json",
            ReportKind::Html => "report.html",
            ReportKind::Markdown => "summary.md",
        }
    }
}

/// One written file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub kind: ReportKind,
    pub path: PathBuf,
    pub bytes: u64,
}

/// Renders one report (sans-IO).
pub fn render(
    kind: ReportKind,
    results: &RunResults,
    opts: &WriteOptions,
) -> Result<String, ReportError> {
    Ok(match kind {
        ReportKind::Junit => junit::render(results)?,
        ReportKind::Json => json::render(results, opts.baseline.as_ref())?,
        ReportKind::Html => html::render(results, opts.baseline.as_ref(), &opts.requirement_texts),
        ReportKind::Markdown => markdown::render(results, opts.baseline.as_ref()),
    })
}

/// Writes every report into `out_dir` (created if missing), in [`ReportKind::ALL`] order.
/// Every report is rendered before any file is written.
pub fn write_all(
    results: &RunResults,
    out_dir: &Path,
    opts: &WriteOptions,
) -> Result<Vec<Written>, ReportError> {
    let rendered = ReportKind::ALL
        .into_iter()
        .map(|k| render(k, results, opts).map(|text| (k, text)))
        .collect::<Result<Vec<_>, _>>()?;
    std::fs::create_dir_all(out_dir).map_err(|source| ReportError::Io {
        path: out_dir.to_owned(),
        source,
    })?;
    let mut written = Vec::with_capacity(rendered.len());
    for (kind, text) in rendered {
        let path = out_dir.join(kind.file_name());
        write_atomic(&path, text.as_bytes())?;
        written.push(Written {
            kind,
            path,
            bytes: text.len() as u64,
        });
    }
    Ok(written)
}

/// Writes `bytes` to a sibling temporary file, then renames it over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let io = |p: &Path| {
        let p = p.to_owned();
        move |source| ReportError::Io { path: p, source }
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}
