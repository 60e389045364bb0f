//! Task data on a master data node: what a slave needs to replay each task this node
//! coordinated, kept under `clusterReplicationWorkDir` until every slave has finished it.
//!
//! The rmp-encoded [`TaskData`] of a task is kept in its record when it is at most
//! [`INLINE_TASK`] bytes (a small transaction costs no file), else in a file of its own,
//! `<tid>.task` (as DolphinDB names them), which the record names with its length and
//! checksum. The records live in a sled tree (`tasks`, in the work folder) whose changes a
//! write-ahead log (`wal/`) makes durable ([`xrepl_store::LoggedTree`]):
//! - `t` tid(8) → [`Record`]
//!
//! With `clusterReplicationSyncPersistence=true` the coordinator stores the data durably
//! before it asks for the commit: the file and its folder entry are synced first, then the
//! record, with one log sync shared by every transaction waiting at that moment. Without it,
//! nothing waits for the disk: a crash of this node's machine (not of the process) can lose
//! or tear the data of the latest tasks, which a slave then reports as `Missing taskData` or
//! as damaged, never as other data. A file no record names (the process died between the two
//! steps) is removed at open.
//!
//! Stores written by earlier versions (`h`/`d` records: a header and 4 KiB pieces in sled)
//! are converted at open.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use xrepl_proto::task::TaskData;
use xrepl_store::{files, Change, FileError, FileRef, LoggedTree, StoreError};

use crate::failpoint::crash_point;

/// Most bytes per answer to a slave's fetch.
pub const PIECE: usize = 4 << 20;
/// The most bytes of encoded task data kept in its record; more goes to a file.
pub const INLINE_TASK: usize = 4 * 1024;
/// sled's page cache for the records.
const CACHE_BYTES: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum TaskStoreError {
    #[error("task data store: {0}")]
    Store(#[from] StoreError),
    #[error("task data store: {0}")]
    Sled(#[from] sled::Error),
    #[error("task data file {0}")]
    File(#[from] FileError),
    #[error("cannot encode task data: {0}")]
    Encode(String),
    #[error("damaged task data record for transaction {tid}: {reason}")]
    Corrupt { tid: u64, reason: String },
}

/// Where a task's data is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stored {
    /// The encoded data itself.
    Inline(serde_bytes::ByteBuf),
    /// In `<tid>.task`: its length and CRC-32.
    File { len: u64, crc: u32 },
}

/// The record of one task's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Bytes of the encoded data.
    pub total: u64,
    /// When it was written, ms since the epoch.
    pub written_ms: i64,
    pub stored: Stored,
}

/// A header of an earlier version's store: the data in pieces of `piece` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct OldHeader {
    total: u64,
    pieces: u32,
    written_ms: i64,
    #[serde(default = "old_piece")]
    piece: u64,
}

fn old_piece() -> u64 {
    PIECE as u64
}

fn key(prefix: u8, tid: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(13);
    k.push(prefix);
    k.extend_from_slice(&tid.to_be_bytes());
    k
}

fn tid_of(k: &[u8]) -> Option<u64> {
    k.get(1..9)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
}

/// The task data of the transactions this node coordinated.
pub struct TaskStore {
    path: PathBuf,
    tree: Arc<LoggedTree>,
}

/// Task data as it is stored and sent (MessagePack).
pub fn encode_data(data: &TaskData) -> Result<Vec<u8>, TaskStoreError> {
    rmp_serde::to_vec(data).map_err(|e| TaskStoreError::Encode(e.to_string()))
}

impl TaskStore {
    /// Opens (or creates) the store in `dir`, converts an earlier version's records, and
    /// removes task files no record names.
    pub fn open(dir: &Path) -> Result<Arc<TaskStore>, TaskStoreError> {
        files::ensure_dir(dir)?;
        let tree = LoggedTree::open_with_log(dir, &dir.join("wal"), "tasks", CACHE_BYTES)?;
        let store = TaskStore {
            path: dir.to_path_buf(),
            tree,
        };
        store.convert_old()?;
        let removed = store.remove_unnamed_files()?;
        if removed > 0 {
            tracing::info!(path = %dir.display(), "removed {removed} task data files no record names");
        }
        Ok(Arc::new(store))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn file(&self, tid: u64) -> PathBuf {
        self.path.join(format!("{tid}.task"))
    }

    fn record(&self, tid: u64) -> Result<Option<Record>, TaskStoreError> {
        match self.tree.tree().get(key(b't', tid))? {
            None => Ok(None),
            Some(v) => rmp_serde::from_slice(&v)
                .map(Some)
                .map_err(|e| TaskStoreError::Corrupt {
                    tid,
                    reason: e.to_string(),
                }),
        }
    }

    /// Stores a transaction's task data; returns its encoded size. With `durable`, returns
    /// once it is on disk (see the module comment). Blocking.
    pub fn put(&self, tid: u64, data: &TaskData, durable: bool) -> Result<u64, TaskStoreError> {
        let bytes = encode_data(data)?;
        self.put_encoded(tid, &bytes, durable)
    }

    /// [`TaskStore::put`] of data encoded already (with [`encode_data`]).
    pub fn put_encoded(
        &self,
        tid: u64,
        bytes: &[u8],
        durable: bool,
    ) -> Result<u64, TaskStoreError> {
        let total = bytes.len() as u64;
        let stored = if bytes.len() <= INLINE_TASK {
            Stored::Inline(serde_bytes::ByteBuf::from(bytes.to_vec()))
        } else {
            let path = self.file(tid);
            let r = if durable {
                let r = files::write(&path, bytes)?;
                files::sync_dir(&self.path)?;
                r
            } else {
                std::fs::write(&path, bytes).map_err(|source| FileError::Io {
                    path: path.clone(),
                    source,
                })?;
                FileRef::of(bytes)
            };
            crash_point("taskstore_after_file");
            Stored::File {
                len: r.len,
                crc: r.crc,
            }
        };
        let record = Record {
            total,
            written_ms: chrono::Utc::now().timestamp_millis(),
            stored,
        };
        let mut change = Change::default();
        change.put(
            key(b't', tid),
            rmp_serde::to_vec(&record).map_err(|e| TaskStoreError::Encode(e.to_string()))?,
        );
        if durable {
            self.tree.write_durable(&change)?;
        } else {
            self.tree.write(&change)?;
        }
        Ok(total)
    }

    /// Up to [`PIECE`] bytes of a task's data from byte `offset`, and the total size; `None`
    /// when the data is not here. Reading from the start checks the whole file against its
    /// record first, so a torn or damaged file is an error, never data.
    pub fn read(
        &self,
        tid: u64,
        offset: u64,
    ) -> Result<Option<(u64, u64, Vec<u8>)>, TaskStoreError> {
        let Some(r) = self.record(tid)? else {
            return Ok(None);
        };
        if offset >= r.total {
            return Ok(Some((r.total, r.total, Vec::new())));
        }
        let out = match &r.stored {
            Stored::Inline(b) => {
                let from = usize::try_from(offset).unwrap_or(usize::MAX).min(b.len());
                b[from..b.len().min(from + PIECE)].to_vec()
            }
            Stored::File { len, crc } => {
                let path = self.file(tid);
                let want = FileRef {
                    len: *len,
                    crc: *crc,
                };
                if offset == 0 {
                    check_file(&path, want)?;
                }
                let io = |source| FileError::Io {
                    path: path.clone(),
                    source,
                };
                let mut f = match std::fs::File::open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(FileError::Damaged {
                            path,
                            reason: "the file its record names is missing".into(),
                        }
                        .into())
                    }
                    Err(e) => return Err(io(e).into()),
                };
                f.seek(SeekFrom::Start(offset)).map_err(io)?;
                let n = (r.total - offset).min(PIECE as u64) as usize;
                let mut out = vec![0u8; n];
                f.read_exact(&mut out).map_err(|e| FileError::Damaged {
                    path: path.clone(),
                    reason: format!("shorter than its record says: {e}"),
                })?;
                out
            }
        };
        Ok(Some((r.total, offset, out)))
    }

    /// The whole task data of `tid`, decoded (for tests and tools).
    pub fn load(&self, tid: u64) -> Result<Option<TaskData>, TaskStoreError> {
        let Some(r) = self.record(tid)? else {
            return Ok(None);
        };
        let bytes = match r.stored {
            Stored::Inline(b) => b.into_vec(),
            Stored::File { len, crc } => files::read(&self.file(tid), FileRef { len, crc })?
                .ok_or_else(|| TaskStoreError::Corrupt {
                    tid,
                    reason: "its file is missing".into(),
                })?,
        };
        rmp_serde::from_slice(&bytes)
            .map(Some)
            .map_err(|e| TaskStoreError::Corrupt {
                tid,
                reason: e.to_string(),
            })
    }

    /// Deletes a transaction's task data (not waited for: deleting again after a crash is
    /// harmless).
    pub fn delete(&self, tid: u64) -> Result<(), TaskStoreError> {
        let Some(r) = self.record(tid)? else {
            return Ok(());
        };
        let mut change = Change::default();
        change.remove(key(b't', tid));
        self.tree.write(&change)?;
        if matches!(r.stored, Stored::File { .. }) {
            files::remove(&self.file(tid))?;
        }
        Ok(())
    }

    /// The oldest `limit` transactions whose task data is here.
    pub fn tids(&self, limit: usize) -> Result<Vec<u64>, TaskStoreError> {
        self.tids_after(0, limit)
    }

    /// Up to `limit` transactions after `after` whose task data is here, oldest first.
    pub fn tids_after(&self, after: u64, limit: usize) -> Result<Vec<u64>, TaskStoreError> {
        let mut out = Vec::new();
        let from = key(b't', after.saturating_add(1));
        for item in self
            .tree
            .tree()
            .range(from..key(b'u', 0))
            .keys()
            .take(limit)
        {
            if let Some(tid) = tid_of(&item?) {
                out.push(tid);
            }
        }
        Ok(out)
    }

    /// Bytes on disk (records, log and files), for status output.
    pub fn size_on_disk(&self) -> u64 {
        self.tree.size_on_disk()
            + std::fs::read_dir(&self.path)
                .map(|rd| {
                    rd.flatten()
                        .filter(|e| e.file_name().to_string_lossy().ends_with(".task"))
                        .filter_map(|e| e.metadata().ok())
                        .map(|m| m.len())
                        .sum::<u64>()
                })
                .unwrap_or(0)
    }

    /// Removes `<tid>.task` files whose record is missing or keeps the data inline.
    fn remove_unnamed_files(&self) -> Result<usize, TaskStoreError> {
        let mut removed = 0;
        let entries = std::fs::read_dir(&self.path).map_err(|source| FileError::Io {
            path: self.path.clone(),
            source,
        })?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Some(tid) = name
                .strip_suffix(".task")
                .and_then(|t| t.parse::<u64>().ok())
            else {
                continue;
            };
            let named = matches!(
                self.record(tid),
                Ok(Some(Record {
                    stored: Stored::File { .. },
                    ..
                }))
            );
            if !named {
                files::remove(&e.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Converts the records of an earlier version (`h` header, `d` pieces) to this one's.
    fn convert_old(&self) -> Result<(), TaskStoreError> {
        let tree = self.tree.tree();
        let old: Vec<(u64, OldHeader)> = tree
            .scan_prefix([b'h'])
            .map(|item| {
                let (k, v) = item?;
                let tid = tid_of(&k).unwrap_or(0);
                let h = rmp_serde::from_slice(&v).map_err(|e| TaskStoreError::Corrupt {
                    tid,
                    reason: e.to_string(),
                })?;
                Ok((tid, h))
            })
            .collect::<Result<_, TaskStoreError>>()?;
        for (tid, h) in old {
            let mut bytes = Vec::with_capacity(usize::try_from(h.total).unwrap_or(0));
            let mut change = Change::default();
            for p in 0..h.pieces {
                let mut k = key(b'd', tid);
                k.extend_from_slice(&p.to_be_bytes());
                if let Some(v) = tree.get(&k)? {
                    bytes.extend_from_slice(&v);
                }
                change.remove(k);
            }
            change.remove(key(b'h', tid));
            if bytes.len() as u64 == h.total {
                let data: TaskData =
                    rmp_serde::from_slice(&bytes).map_err(|e| TaskStoreError::Corrupt {
                        tid,
                        reason: e.to_string(),
                    })?;
                self.put(tid, &data, true)?;
            } else {
                tracing::warn!(
                    tid,
                    "dropping the incomplete task data of an earlier version"
                );
            }
            self.tree.write_durable(&change)?;
        }
        Ok(())
    }
}

/// Reads the whole file in pieces and checks it against its record.
fn check_file(path: &Path, want: FileRef) -> Result<(), TaskStoreError> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(FileError::Damaged {
                path: path.to_path_buf(),
                reason: "the file its record names is missing".into(),
            }
            .into())
        }
        Err(source) => {
            return Err(FileError::Io {
                path: path.to_path_buf(),
                source,
            }
            .into())
        }
    };
    let mut hasher = crc32fast::Hasher::new();
    let mut len = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|source| FileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    let got = FileRef {
        len,
        crc: hasher.finalize(),
    };
    if got != want {
        return Err(FileError::Damaged {
            path: path.to_path_buf(),
            reason: format!(
                "{} bytes with checksum {:08x}, its record says {} bytes with checksum {:08x}",
                got.len, got.crc, want.len, want.crc
            ),
        }
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use xrepl_core::value::{Table, Vector};

    fn data(n: i64) -> TaskData {
        TaskData::Append {
            db: "dfs://a".into(),
            table: "t".into(),
            data: Table::new(
                vec!["x".into(), "y".into()],
                vec![
                    Vector::Long((0..n).collect()),
                    Vector::Double((0..n).map(|i| i as f64).collect()),
                ],
            )
            .expect("table"),
        }
    }

    fn reopen(dir: &Path) -> Arc<TaskStore> {
        for _ in 0..200 {
            if let Ok(s) = TaskStore::open(dir) {
                return s;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("cannot reopen {}", dir.display());
    }

    #[test]
    fn large_task_data_is_a_file_read_in_pieces_and_deleted_with_its_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = TaskStore::open(dir.path()).expect("open");
        let data = data(1_000_000);
        let size = store.put(7, &data, true).expect("put");
        assert!(size > PIECE as u64, "spans several pieces");
        assert!(dir.path().join("7.task").exists());
        let mut got = Vec::new();
        let mut offset = 0;
        while offset < size {
            let (total, at, bytes) = store.read(7, offset).expect("read").expect("present");
            assert_eq!((total, at), (size, offset));
            assert!(!bytes.is_empty() && bytes.len() <= PIECE);
            offset += bytes.len() as u64;
            got.extend(bytes);
        }
        let back: TaskData = rmp_serde::from_slice(&got).expect("decode");
        assert_eq!(back, data);
        assert_eq!(store.load(7).expect("load"), Some(data));
        assert_eq!(store.tids(10).expect("tids"), vec![7]);
        let (_, at, bytes) = store.read(7, 1_000).expect("read").expect("present");
        assert_eq!((at, bytes.len()), (1_000, PIECE));
        assert_eq!(bytes[..], got[1_000..1_000 + PIECE]);
        store.delete(7).expect("delete");
        assert!(store.read(7, 0).expect("read").is_none());
        assert!(store.tids(10).expect("tids").is_empty());
        assert!(
            !dir.path().join("7.task").exists(),
            "the file goes with its record"
        );
    }

    #[test]
    fn small_task_data_stays_in_its_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = TaskStore::open(dir.path()).expect("open");
        let small = data(10);
        store.put(3, &small, false).expect("put");
        assert!(!dir.path().join("3.task").exists(), "no file for 10 rows");
        assert_eq!(store.load(3).expect("load"), Some(small));
    }

    /// A crash between the file and its record leaves a file nobody names: gone at open. A
    /// record whose file was torn or lost (the machine crashed before an unsynced file
    /// reached the disk) is reported as damaged, never read as data.
    #[test]
    fn unnamed_files_go_at_open_and_a_torn_or_missing_file_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = TaskStore::open(dir.path()).expect("open");
            store.put(1, &data(10_000), false).expect("put");
            store.put(2, &data(10_000), false).expect("put");
            store.tree.sync_all().expect("sync");
        }
        std::fs::write(dir.path().join("9.task"), b"orphan").expect("write");
        let store = reopen(dir.path());
        assert!(!dir.path().join("9.task").exists());
        assert!(dir.path().join("1.task").exists());
        // Torn.
        let f = dir.path().join("1.task");
        let len = std::fs::metadata(&f).expect("meta").len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&f)
            .and_then(|h| h.set_len(len / 2))
            .expect("tear");
        let e = store.read(1, 0).expect_err("torn");
        assert!(e.to_string().contains("is damaged"), "{e}");
        // Missing.
        std::fs::remove_file(dir.path().join("2.task")).expect("rm");
        let e = store.read(2, 0).expect_err("missing");
        assert!(e.to_string().contains("missing"), "{e}");
    }

    /// Stores of an earlier version kept task data as 4 KiB pieces in sled; they are
    /// converted at open.
    #[test]
    fn an_earlier_versions_pieces_are_converted_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let big = data(5_000);
        {
            let db = sled::open(dir.path()).expect("sled");
            let tree = db.open_tree("tasks").expect("tree");
            let bytes = rmp_serde::to_vec(&big).expect("encode");
            let pieces: Vec<&[u8]> = bytes.chunks(4096).collect();
            for (i, p) in pieces.iter().enumerate() {
                let mut k = key(b'd', 5);
                k.extend_from_slice(&(i as u32).to_be_bytes());
                tree.insert(k, *p).expect("insert");
            }
            let h = OldHeader {
                total: bytes.len() as u64,
                pieces: pieces.len() as u32,
                written_ms: 1,
                piece: 4096,
            };
            tree.insert(key(b'h', 5), rmp_serde::to_vec(&h).expect("encode"))
                .expect("insert");
            db.flush().expect("flush");
        }
        let store = reopen(dir.path());
        assert_eq!(store.load(5).expect("load"), Some(big));
        assert!(store.tree.tree().scan_prefix([b'd']).next().is_none());
        assert_eq!(store.tids(10).expect("tids"), vec![5]);
    }
}
