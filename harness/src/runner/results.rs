//! `results.jsonl`: created with its header at the start of a run, one line appended (and
//! flushed to disk) per finished scenario, a summary line at the end. `--resume` reads it
//! back, keeps every complete scenario record, drops a truncated last line, and rewrites the
//! file atomically before appending.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use mtp_reports::model::{Record, RunHeader, RunSummary, ScenarioResult, jsonl};

use super::RunError;
use crate::iut::IutDescription;

/// An open results file.
pub struct ResultsFile {
    file: File,
    path: PathBuf,
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> RunError {
    RunError::Io {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

impl ResultsFile {
    fn append(&mut self, record: &Record) -> Result<(), RunError> {
        let line = jsonl::line(record);
        self.file
            .write_all(line.as_bytes())
            .and_then(|_| self.file.flush())
            .and_then(|_| self.file.sync_data())
            .map_err(|e| io_err(&self.path, e))
    }

    pub fn append_result(&mut self, r: &ScenarioResult) -> Result<(), RunError> {
        self.append(&Record::Scenario(r.clone()))
    }

    pub fn append_summary(&mut self, s: &RunSummary) -> Result<(), RunError> {
        self.append(&Record::Summary(s.clone()))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Writes `records` to `path` through a temporary file and a rename, then opens it for
/// appending.
fn write_fresh(path: &Path, records: &[Record]) -> Result<ResultsFile, RunError> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    }
    let tmp = path.with_extension("jsonl.tmp");
    {
        let mut f = File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
        for r in records {
            f.write_all(jsonl::line(r).as_bytes())
                .map_err(|e| io_err(&tmp, e))?;
        }
        f.sync_all().map_err(|e| io_err(&tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| io_err(path, e))?;
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| io_err(path, e))?;
    Ok(ResultsFile {
        file,
        path: path.to_owned(),
    })
}

/// Opens the results file for a run. Without `resume` (or when there is nothing to resume)
/// it starts a new file with `new_header(seed)`. With `resume`, the file's header must have
/// the same seed (when `seed` is given), the same IUT description and the same executor;
/// its complete scenario records are returned.
pub fn open(
    path: &Path,
    resume: bool,
    seed: Option<u64>,
    executor: &str,
    iut: &IutDescription,
    new_header: impl Fn(u64) -> RunHeader,
) -> Result<(ResultsFile, RunHeader, Vec<ScenarioResult>), RunError> {
    if resume && path.exists() {
        let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
        let text = String::from_utf8_lossy(&bytes);
        let contents = jsonl::parse(&text).map_err(|e| {
            RunError::Usage(format!(
                "--resume: {}:{e}; remove it or choose another --out",
                path.display()
            ))
        })?;
        if let Some(c) = contents {
            if let Some(s) = seed
                && s != c.header.seed
            {
                return Err(RunError::Usage(format!(
                    "--resume: --seed {s} differs from the seed {} of the run in {}; resume with the same seed (or omit --seed)",
                    c.header.seed,
                    path.display()
                )));
            }
            if c.header.iut.description_sha256 != iut.sha256 {
                return Err(RunError::Usage(format!(
                    "--resume: {} was produced with a different IUT description (sha256 {}); resume with the same --iut file",
                    path.display(),
                    c.header.iut.description_sha256
                )));
            }
            if c.header.executor != executor {
                return Err(RunError::Usage(format!(
                    "--resume: {} was produced by the `{}` executor, not `{executor}`",
                    path.display(),
                    c.header.executor
                )));
            }
            // Keep the last record per scenario, in file order.
            let mut results: Vec<ScenarioResult> = Vec::new();
            for r in c.results {
                results.retain(|x| x.scenario_id != r.scenario_id);
                results.push(r);
            }
            let mut records = vec![Record::Header(c.header.clone())];
            records.extend(results.iter().cloned().map(Record::Scenario));
            let file = write_fresh(path, &records)?;
            return Ok((file, c.header, results));
        }
    }
    let header = new_header(seed.unwrap_or(super::DEFAULT_SEED));
    let file = write_fresh(path, &[Record::Header(header.clone())])?;
    Ok((file, header, Vec::new()))
}

/// Reads the scenario results of a results file (`results.jsonl`, or a `RunResults` JSON
/// document) for `--baseline`.
pub fn read_baseline(path: &Path) -> Result<Vec<ScenarioResult>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if let Ok(doc) = serde_json::from_str::<mtp_reports::model::RunResults>(&text) {
        return Ok(doc.results);
    }
    match jsonl::parse(&text) {
        Ok(Some(c)) => Ok(c.results),
        Ok(None) => Err(format!("{}: empty results file", path.display())),
        Err(e) => Err(format!("{}:{e}", path.display())),
    }
}
