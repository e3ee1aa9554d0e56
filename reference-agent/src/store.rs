//! The persistent state directory: audit trails (one RFC 8742 CBOR sequence file per
//! transaction, appended entry by entry), receipts, and reserved MTP-UUIDs, so all of them
//! survive a restart (issue: "a persistent state directory").
//!
//! Layout:
//! ```text
//! <state_dir>/audit/<transaction id hex>.cbor   audit-entry CBOR sequence (PROFILE G-42)
//! <state_dir>/receipts/<receipt id hex>.cbor    det-CBOR receipt
//! <state_dir>/uuids.log                         one reserved MTP-UUID (hex) per line
//! <state_dir>/nats-dedup.log                    NATS message ids already processed
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use mtp_protocol::audit::{AuditEntry, AuditError, AuditTrail};

/// Why the state directory could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("audit trail {path} is corrupt: {source}")]
    CorruptAudit { path: PathBuf, source: AuditError },
    #[error("audit entry could not be encoded: {0}")]
    Encode(AuditError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A stored receipt: (receipt id, det-CBOR).
pub type StoredReceipt = ([u8; 32], Vec<u8>);
/// A reserved MTP-UUID and the SHA-256 of the content bound to it.
pub type Reservation = ([u8; 32], [u8; 32]);

/// Handle on the state directory.
#[derive(Clone, Debug)]
pub struct StateStore {
    root: PathBuf,
}

impl StateStore {
    /// Open (and create) the directory layout.
    pub fn open(root: &Path) -> Result<StateStore, StoreError> {
        for sub in ["audit", "receipts"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(io(&p))?;
        }
        Ok(StateStore {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn dedup_log(&self) -> PathBuf {
        self.root.join("nats-dedup.log")
    }

    fn audit_path(&self, transaction_id: &[u8; 32]) -> PathBuf {
        self.root
            .join("audit")
            .join(format!("{}.cbor", hex::encode(transaction_id)))
    }

    /// Append one entry (already chained in memory) to its transaction's file, synced.
    pub fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let path = self.audit_path(&entry.transaction_id);
        let bytes = entry
            .to_cbor()
            .map_err(|e| StoreError::Encode(AuditError::Encode(e)))?;
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        f.write_all(&bytes).map_err(io(&path))?;
        f.sync_data().map_err(io(&path))
    }

    /// Every stored trail, each verified (PROFILE G-42).
    pub fn load_audit_trails(&self) -> Result<Vec<AuditTrail>, StoreError> {
        let dir = self.root.join("audit");
        let mut out = Vec::new();
        let mut names: Vec<PathBuf> = fs::read_dir(&dir)
            .map_err(io(&dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "cbor"))
            .collect();
        names.sort();
        for path in names {
            let bytes = fs::read(&path).map_err(io(&path))?;
            let entries = AuditTrail::from_cbor_sequence(&bytes).map_err(|source| {
                StoreError::CorruptAudit {
                    path: path.clone(),
                    source,
                }
            })?;
            let Some(first) = entries.first() else {
                continue;
            };
            let trail =
                AuditTrail::from_entries(first.transaction_id, entries).map_err(|source| {
                    StoreError::CorruptAudit {
                        path: path.clone(),
                        source,
                    }
                })?;
            out.push(trail);
        }
        Ok(out)
    }

    /// Store a receipt (det-CBOR) under its id.
    pub fn put_receipt(&self, receipt_id: &[u8; 32], cbor: &[u8]) -> Result<(), StoreError> {
        let path = self
            .root
            .join("receipts")
            .join(format!("{}.cbor", hex::encode(receipt_id)));
        write_synced(&path, cbor)
    }

    /// Every stored receipt as (id, det-CBOR).
    pub fn receipts(&self) -> Result<Vec<StoredReceipt>, StoreError> {
        let dir = self.root.join("receipts");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(io(&dir))?.flatten() {
            let path = e.path();
            let Some(id) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| hex::decode(s).ok())
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
            else {
                continue;
            };
            out.push((id, fs::read(&path).map_err(io(&path))?));
        }
        out.sort();
        Ok(out)
    }

    /// Record a reserved MTP-UUID and the digest of the content bound to it (SPEC IX: never
    /// reused, even after a restart).
    pub fn reserve_uuid(&self, uuid: &[u8; 32], digest: &[u8; 32]) -> Result<(), StoreError> {
        let path = self.root.join("uuids.log");
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        writeln!(f, "{} {}", hex::encode(uuid), hex::encode(digest)).map_err(io(&path))?;
        f.sync_data().map_err(io(&path))
    }

    /// Every MTP-UUID reserved so far, with its content digest.
    pub fn reserved_uuids(&self) -> Result<Vec<Reservation>, StoreError> {
        let path = self.root.join("uuids.log");
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&path)(e)),
        };
        let parse = |h: &str| {
            hex::decode(h)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
        };
        Ok(text
            .lines()
            .filter_map(|l| {
                let (u, d) = l.trim().split_once(' ')?;
                Some((parse(u)?, parse(d)?))
            })
            .collect())
    }

    /// Remove protocol state (test-control `reset`); the seed file lives elsewhere.
    pub fn clear(&self) -> Result<(), StoreError> {
        for sub in ["audit", "receipts"] {
            let p = self.root.join(sub);
            if p.exists() {
                fs::remove_dir_all(&p).map_err(io(&p))?;
            }
            fs::create_dir_all(&p).map_err(io(&p))?;
        }
        Ok(())
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mtp_protocol::audit::AuditRecord;
    use mtp_protocol::time::Timestamp;

    #[test]
    fn audit_trails_survive_a_reopen_and_corruption_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let mut trail = AuditTrail::new([9; 32]);
        for i in 0..3 {
            let rec = AuditRecord {
                event: format!("test_{i}"),
                ..AuditRecord::default()
            };
            let e = trail
                .append(rec, Timestamp::from_unix_secs(1_800_000_000 + i).unwrap())
                .unwrap()
                .clone();
            store.append_audit(&e).unwrap();
        }
        let again = StateStore::open(dir.path()).unwrap();
        let trails = again.load_audit_trails().unwrap();
        assert_eq!(trails.len(), 1);
        assert_eq!(trails[0].entries(), trail.entries());

        let path = dir
            .path()
            .join("audit")
            .join(format!("{}.cbor", hex::encode([9u8; 32])));
        let mut bytes = fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 3] ^= 1;
        fs::write(&path, bytes).unwrap();
        assert!(matches!(
            again.load_audit_trails(),
            Err(StoreError::CorruptAudit { .. })
        ));
    }

    #[test]
    fn uuids_and_receipts_persist() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        store.reserve_uuid(&[1; 32], &[7; 32]).unwrap();
        store.reserve_uuid(&[2; 32], &[8; 32]).unwrap();
        store.put_receipt(&[3; 32], b"\xa0").unwrap();
        let again = StateStore::open(dir.path()).unwrap();
        assert_eq!(
            again.reserved_uuids().unwrap(),
            vec![([1; 32], [7; 32]), ([2; 32], [8; 32])]
        );
        assert_eq!(again.receipts().unwrap(), vec![([3; 32], b"\xa0".to_vec())]);
        again.clear().unwrap();
        assert!(again.receipts().unwrap().is_empty());
    }
}
