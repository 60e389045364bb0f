//! Task data on a master data node: what a slave needs to replay each task this node
//! coordinated, kept under `clusterReplicationWorkDir` until every slave has finished it.
//!
//! A separate sled database (not the table storage), keys by prefix:
//! - `h` tid(8) → [`Header`] (rmp-encoded): the encoded [`TaskData`]'s size and piece count
//! - `d` tid(8) piece(4) → raw bytes: up to [`STORED_PIECE`] bytes of the rmp-encoded
//!   `TaskData` (small enough that sled keeps values and nodes inline: sled 0.34 does not
//!   delete the file of a larger one, so deleted task data stayed on disk; see
//!   `storage::BLOCK_PIECE`)
//!
//! A task's pieces and header are one batch, so a reader sees all of them or none. With
//! `clusterReplicationSyncPersistence=true` the coordinator waits for [`TaskStore::durable`]
//! before it asks for the commit: one flush serves every transaction waiting at that moment
//! (group commit). Without it, sled flushes in the background (within its 500 ms flush
//! interval) and a crash of this node can lose the data of the latest tasks, which a slave then
//! reports as `Missing taskData`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use xrepl_proto::task::TaskData;

/// Most bytes per answer to a slave's fetch.
pub const PIECE: usize = 4 << 20;
/// Bytes per stored piece.
pub const STORED_PIECE: usize = 4 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TaskStoreError {
    #[error("cannot open the task data store at {path}: {source}")]
    Open { path: PathBuf, source: sled::Error },
    #[error("task data store: {0}")]
    Sled(#[from] sled::Error),
    #[error("cannot encode task data: {0}")]
    Encode(String),
    #[error("damaged task data record for transaction {tid}: {reason}")]
    Corrupt { tid: u64, reason: String },
    #[error("the task data flusher has stopped")]
    FlusherGone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub total: u64,
    pub pieces: u32,
    /// When it was written, ms since the epoch.
    pub written_ms: i64,
    /// Bytes per piece (data written before this field existed has 4 MiB pieces).
    #[serde(default = "old_piece")]
    pub piece: u64,
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

fn piece_key(tid: u64, piece: u32) -> Vec<u8> {
    let mut k = key(b'd', tid);
    k.extend_from_slice(&piece.to_be_bytes());
    k
}

type FlushWaiter = oneshot::Sender<Result<(), String>>;

/// The task data of the transactions this node coordinated.
pub struct TaskStore {
    db: sled::Db,
    tree: sled::Tree,
    path: PathBuf,
    flush: mpsc::Sender<FlushWaiter>,
}

impl TaskStore {
    /// Opens (or creates) the store in `dir`; starts its flusher on the current runtime.
    pub fn open(dir: &Path) -> Result<Arc<TaskStore>, TaskStoreError> {
        let open = |source| TaskStoreError::Open {
            path: dir.to_path_buf(),
            source,
        };
        let db = sled::open(dir).map_err(open)?;
        let tree = db.open_tree("tasks").map_err(open)?;
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(Self::flusher(db.clone(), rx));
        Ok(Arc::new(TaskStore {
            db,
            tree,
            path: dir.to_path_buf(),
            flush: tx,
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Group commit: each flush answers every waiter that was queued when it started.
    async fn flusher(db: sled::Db, mut rx: mpsc::Receiver<FlushWaiter>) {
        while let Some(first) = rx.recv().await {
            let mut waiters = vec![first];
            while let Ok(w) = rx.try_recv() {
                waiters.push(w);
            }
            let r = db
                .flush_async()
                .await
                .map(|_| ())
                .map_err(|e| e.to_string());
            for w in waiters {
                let _ = w.send(r.clone());
            }
        }
    }

    /// Stores a transaction's task data (not yet flushed); returns its encoded size. Blocking.
    pub fn put(&self, tid: u64, data: &TaskData) -> Result<u64, TaskStoreError> {
        let bytes = rmp_serde::to_vec(data).map_err(|e| TaskStoreError::Encode(e.to_string()))?;
        let mut batch = sled::Batch::default();
        let mut pieces = 0u32;
        for (i, chunk) in bytes.chunks(STORED_PIECE).enumerate() {
            batch.insert(piece_key(tid, i as u32), chunk);
            pieces = i as u32 + 1;
        }
        let header = Header {
            total: bytes.len() as u64,
            pieces,
            written_ms: chrono::Utc::now().timestamp_millis(),
            piece: STORED_PIECE as u64,
        };
        let encoded =
            rmp_serde::to_vec(&header).map_err(|e| TaskStoreError::Encode(e.to_string()))?;
        batch.insert(key(b'h', tid), encoded);
        self.tree.apply_batch(batch)?;
        Ok(header.total)
    }

    /// Waits until everything written so far is on disk.
    pub async fn durable(&self) -> Result<(), TaskStoreError> {
        let (tx, rx) = oneshot::channel();
        self.flush
            .send(tx)
            .await
            .map_err(|_| TaskStoreError::FlusherGone)?;
        rx.await
            .map_err(|_| TaskStoreError::FlusherGone)?
            .map_err(|e| TaskStoreError::Sled(sled::Error::Unsupported(e)))
    }

    fn header(&self, tid: u64) -> Result<Option<Header>, TaskStoreError> {
        match self.tree.get(key(b'h', tid))? {
            None => Ok(None),
            Some(v) => rmp_serde::from_slice(&v)
                .map(Some)
                .map_err(|e| TaskStoreError::Corrupt {
                    tid,
                    reason: e.to_string(),
                }),
        }
    }

    /// Up to [`PIECE`] bytes of a task's data from byte `offset`, and the total size; `None`
    /// when the data is not here.
    pub fn read(
        &self,
        tid: u64,
        offset: u64,
    ) -> Result<Option<(u64, u64, Vec<u8>)>, TaskStoreError> {
        let Some(h) = self.header(tid)? else {
            return Ok(None);
        };
        if offset >= h.total {
            return Ok(Some((h.total, h.total, Vec::new())));
        }
        let size = h.piece.max(1);
        let first = (offset / size) as u32;
        let mut skip = (offset - u64::from(first) * size) as usize;
        let mut out = Vec::new();
        for piece in first..h.pieces {
            if out.len() >= PIECE {
                break;
            }
            let Some(v) = self.tree.get(piece_key(tid, piece))? else {
                return Err(TaskStoreError::Corrupt {
                    tid,
                    reason: format!("piece {piece} of {} is missing", h.pieces),
                });
            };
            let part = v.get(skip..).unwrap_or_default();
            out.extend_from_slice(&part[..part.len().min(PIECE - out.len())]);
            skip = 0;
        }
        Ok(Some((h.total, offset, out)))
    }

    /// The whole task data of `tid`, decoded (for tests and tools).
    pub fn load(&self, tid: u64) -> Result<Option<TaskData>, TaskStoreError> {
        let Some(h) = self.header(tid)? else {
            return Ok(None);
        };
        let mut bytes = Vec::with_capacity(h.total as usize);
        for p in 0..h.pieces {
            match self.tree.get(piece_key(tid, p))? {
                Some(v) => bytes.extend_from_slice(&v),
                None => {
                    return Err(TaskStoreError::Corrupt {
                        tid,
                        reason: format!("piece {p} is missing"),
                    })
                }
            }
        }
        rmp_serde::from_slice(&bytes)
            .map(Some)
            .map_err(|e| TaskStoreError::Corrupt {
                tid,
                reason: e.to_string(),
            })
    }

    /// Deletes a transaction's task data (not flushed: deleting again after a crash is harmless).
    pub fn delete(&self, tid: u64) -> Result<(), TaskStoreError> {
        let Some(h) = self.header(tid)? else {
            return Ok(());
        };
        let mut batch = sled::Batch::default();
        batch.remove(key(b'h', tid));
        for p in 0..h.pieces {
            batch.remove(piece_key(tid, p));
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// The oldest `limit` transactions whose task data is here.
    pub fn tids(&self, limit: usize) -> Result<Vec<u64>, TaskStoreError> {
        self.tids_after(0, limit)
    }

    /// Up to `limit` transactions after `after` whose task data is here, oldest first.
    pub fn tids_after(&self, after: u64, limit: usize) -> Result<Vec<u64>, TaskStoreError> {
        let mut out = Vec::new();
        let from = key(b'h', after.saturating_add(1));
        for item in self.tree.range(from..key(b'i', 0)).keys().take(limit) {
            let k = item?;
            if let Some(b) = k.get(1..9).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
                out.push(u64::from_be_bytes(b));
            }
        }
        Ok(out)
    }

    /// Bytes on disk, for status output.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xrepl_core::value::{Table, Vector};

    #[tokio::test]
    async fn large_task_data_round_trips_in_pieces_and_deletes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = TaskStore::open(dir.path()).expect("open");
        let n = 1_000_000;
        let data = TaskData::Append {
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
        };
        let size = store.put(7, &data).expect("put");
        store.durable().await.expect("flush");
        assert!(size > PIECE as u64, "spans several pieces");
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
        // From an offset inside a stored piece, an answer is still at most PIECE bytes.
        let (_, at, bytes) = store.read(7, 1_000).expect("read").expect("present");
        assert_eq!((at, bytes.len()), (1_000, PIECE));
        assert_eq!(bytes[..], got[1_000..1_000 + PIECE]);
        store.delete(7).expect("delete");
        assert!(store.read(7, 0).expect("read").is_none());
        assert!(store.tids(10).expect("tids").is_empty());
    }

    /// Found with the chaos soak's disk figures: sled 0.34 never deletes the file of a value
    /// over its inline limit, and task data was stored in 4 MiB pieces, so the data of every
    /// large task stayed on the master's disk after it was deleted.
    #[tokio::test]
    async fn regression_deleted_task_data_left_sled_blob_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = TaskStore::open(dir.path()).expect("open");
        let data = TaskData::Append {
            db: "dfs://a".into(),
            table: "t".into(),
            data: Table::new(
                vec!["x".into()],
                vec![Vector::Long((0..100_000).map(|i| i * 7_919).collect())],
            )
            .expect("table"),
        };
        for tid in 1..=40 {
            store.put(tid, &data).expect("put");
            store.durable().await.expect("flush");
            store.delete(tid).expect("delete");
        }
        store.durable().await.expect("flush");
        let blobs = std::fs::read_dir(dir.path().join("blobs"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(blobs, 0, "no value is large enough to be a blob file");
    }

    /// A header written before pieces were 64 KiB reads as 4 MiB pieces.
    #[test]
    fn headers_without_a_piece_size_are_old_4_mib_pieces() {
        #[derive(Serialize)]
        struct OldHeader {
            total: u64,
            pieces: u32,
            written_ms: i64,
        }
        let old = rmp_serde::to_vec(&OldHeader {
            total: 5,
            pieces: 1,
            written_ms: 1,
        })
        .expect("encode");
        let h: Header = rmp_serde::from_slice(&old).expect("decode");
        assert_eq!(h.piece, PIECE as u64);
    }
}
