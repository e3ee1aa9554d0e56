//! Client-side de-duplication of JetStream deliveries by message id (PROFILE G-06, G-29).
//!
//! JetStream delivers at least once: a message whose ack was lost, or that was processed
//! just before a crash, comes again. The receiver records each processed `Nats-Msg-Id`
//! before acknowledging it, so a redelivery is recognised and ignored with 0400 Duplicate
//! Delivery Ignored (Informational) instead of being processed twice. The file-backed
//! store keeps the ids across restarts.

use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Default number of ids remembered (oldest forgotten first).
pub const DEFAULT_CAPACITY: usize = 100_000;
/// Longest id accepted; MTP-UUID text is 67 characters.
pub const MAX_ID_LEN: usize = 256;

/// Why the store could not record an id.
#[derive(Debug, thiserror::Error)]
pub enum DedupError {
    #[error(
        "message id is not storable (empty, longer than {MAX_ID_LEN} bytes or with control characters)"
    )]
    InvalidId,
    #[error("de-duplication state {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `true` for ids a store accepts: 1..=256 bytes, no control characters.
pub fn is_storable_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && !id.chars().any(char::is_control)
}

/// A bounded set of processed message ids.
pub trait DedupStore: Send {
    /// `true` if `id` was recorded (and not yet evicted).
    fn contains(&self, id: &str) -> bool;
    /// Records `id`; `Ok(false)` if it was already present.
    fn record(&mut self, id: &str) -> Result<bool, DedupError>;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Insertion-ordered bounded set (FIFO eviction).
#[derive(Debug)]
struct Bounded {
    capacity: usize,
    order: VecDeque<String>,
    set: HashSet<String>,
}

impl Bounded {
    fn new(capacity: usize) -> Self {
        Bounded {
            capacity: capacity.max(1),
            order: VecDeque::new(),
            set: HashSet::new(),
        }
    }

    fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() >= self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        self.order.push_back(id.to_owned());
        self.set.insert(id.to_owned());
        true
    }
}

/// In-memory store: forgets everything on restart.
#[derive(Debug)]
pub struct MemoryDedup(Bounded);

impl MemoryDedup {
    pub fn new(capacity: usize) -> Self {
        MemoryDedup(Bounded::new(capacity))
    }
}

impl Default for MemoryDedup {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl DedupStore for MemoryDedup {
    fn contains(&self, id: &str) -> bool {
        self.0.set.contains(id)
    }
    fn record(&mut self, id: &str) -> Result<bool, DedupError> {
        if !is_storable_id(id) {
            return Err(DedupError::InvalidId);
        }
        Ok(self.0.insert(id))
    }
    fn len(&self) -> usize {
        self.0.order.len()
    }
}

/// File-backed store: an append-only file of ids (one per line), loaded on open and
/// compacted to the newest `capacity` ids when it grows past twice that.
#[derive(Debug)]
pub struct FileDedup {
    path: PathBuf,
    file: File,
    ids: Bounded,
    lines_in_file: usize,
    sync: bool,
}

impl FileDedup {
    /// The file name used by [`FileDedup::open_in`].
    pub const FILE_NAME: &'static str = "seen-msg-ids.log";

    /// Opens `<state_dir>/<name>.seen-msg-ids.log` (one file per durable consumer).
    pub fn open_in(state_dir: &Path, name: &str, capacity: usize) -> Result<Self, DedupError> {
        Self::open(
            &state_dir.join(format!("{name}.{}", Self::FILE_NAME)),
            capacity,
        )
    }

    /// Opens or creates the file and loads the ids it holds. A torn last line (a crash
    /// mid-append) is dropped.
    pub fn open(path: &Path, capacity: usize) -> Result<Self, DedupError> {
        let err = |source| DedupError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let text = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(err(e)),
        };
        let complete = text.ends_with(b"\n") || text.is_empty();
        let text = String::from_utf8_lossy(&text);
        let mut lines: Vec<&str> = text.lines().collect();
        if !complete {
            lines.pop();
        }
        let mut ids = Bounded::new(capacity);
        for l in &lines {
            if is_storable_id(l) {
                ids.insert(l);
            }
        }
        let file = File::options()
            .create(true)
            .append(true)
            .open(path)
            .map_err(err)?;
        let mut store = FileDedup {
            path: path.to_path_buf(),
            file,
            ids,
            lines_in_file: lines.len(),
            sync: false,
        };
        if !complete || store.lines_in_file > 2 * store.ids.capacity {
            store.compact()?;
        }
        Ok(store)
    }

    /// `fsync` after every record (survives power loss, not only a process crash).
    pub fn with_sync(mut self, sync: bool) -> Self {
        self.sync = sync;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io_err(&self, source: std::io::Error) -> DedupError {
        DedupError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Rewrites the file with the remembered ids (temp file + rename).
    fn compact(&mut self) -> Result<(), DedupError> {
        let tmp = self.path.with_extension("compact.tmp");
        let mut body = String::new();
        for id in &self.ids.order {
            body.push_str(id);
            body.push('\n');
        }
        std::fs::write(&tmp, body.as_bytes()).map_err(|e| self.io_err(e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| self.io_err(e))?;
        self.file = File::options()
            .append(true)
            .open(&self.path)
            .map_err(|e| self.io_err(e))?;
        self.lines_in_file = self.ids.order.len();
        Ok(())
    }
}

impl DedupStore for FileDedup {
    fn contains(&self, id: &str) -> bool {
        self.ids.set.contains(id)
    }

    fn record(&mut self, id: &str) -> Result<bool, DedupError> {
        if !is_storable_id(id) {
            return Err(DedupError::InvalidId);
        }
        if self.ids.set.contains(id) {
            return Ok(false);
        }
        let mut line = String::with_capacity(id.len() + 1);
        line.push_str(id);
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .map_err(|e| self.io_err(e))?;
        if self.sync {
            self.file.sync_data().map_err(|e| self.io_err(e))?;
        }
        self.ids.insert(id);
        self.lines_in_file += 1;
        if self.lines_in_file > 2 * self.ids.capacity {
            self.compact()?;
        }
        Ok(true)
    }

    fn len(&self) -> usize {
        self.ids.order.len()
    }
}

/// A store shared between a consumer and the deliveries it hands out.
#[derive(Clone)]
pub struct SharedDedup(Arc<Mutex<Box<dyn DedupStore>>>);

impl std::fmt::Debug for SharedDedup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedDedup({} ids)", self.lock().len())
    }
}

impl SharedDedup {
    pub fn new(store: impl DedupStore + 'static) -> Self {
        SharedDedup(Arc::new(Mutex::new(Box::new(store))))
    }

    /// An in-memory store of [`DEFAULT_CAPACITY`] ids.
    pub fn memory() -> Self {
        Self::new(MemoryDedup::default())
    }

    fn lock(&self) -> MutexGuard<'_, Box<dyn DedupStore>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn contains(&self, id: &str) -> bool {
        self.lock().contains(id)
    }

    pub fn record(&self, id: &str) -> Result<bool, DedupError> {
        self.lock().record(id)
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_bounded_fifo() {
        let mut m = MemoryDedup::new(2);
        assert!(m.record("a").unwrap());
        assert!(!m.record("a").unwrap());
        assert!(m.record("b").unwrap());
        assert!(m.record("c").unwrap());
        assert!(!m.contains("a"));
        assert!(m.contains("b") && m.contains("c"));
        assert_eq!(m.len(), 2);
        assert!(matches!(m.record(""), Err(DedupError::InvalidId)));
        assert!(matches!(m.record("a\nb"), Err(DedupError::InvalidId)));
    }

    #[test]
    fn file_survives_reopen_compacts_and_drops_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ids.log");
        {
            let mut f = FileDedup::open(&path, 3).unwrap();
            for id in ["a", "b", "c", "d"] {
                assert!(f.record(id).unwrap());
            }
            assert!(!f.record("d").unwrap());
        }
        let f = FileDedup::open(&path, 3).unwrap();
        assert!(!f.contains("a"));
        assert!(f.contains("b") && f.contains("d"));
        // Grow past 2 × capacity: compaction keeps the newest 3.
        let mut f = f;
        for i in 0..10 {
            f.record(&format!("x{i}")).unwrap();
        }
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines <= 6, "{lines} lines");
        drop(f);
        // A crash mid-append leaves a torn line: ignored, file repaired.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"tor")
            .unwrap();
        let mut f = FileDedup::open(&path, 3).unwrap();
        assert!(!f.contains("tor"));
        assert!(f.contains("x9"));
        f.record("y").unwrap();
        drop(f);
        let f = FileDedup::open(&path, 3).unwrap();
        assert!(f.contains("y") && !f.contains("tory"));
    }
}
