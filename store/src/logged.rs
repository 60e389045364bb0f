//! A sled tree whose changes a write-ahead log makes durable.
//!
//! sled's own flush is the costly part of a small transaction: each one wakes every thread of
//! sled's I/O pool, and concurrent flushes hardly share their work (measured: about 30 context
//! switches per transaction on each node). Here a change is a list of puts and removes that is
//! appended to the log ([`crate::wal`]) and applied to the tree, in the same order, under the
//! log's lock; [`LoggedTree::sync`] makes it durable with one `fdatasync` shared by everyone
//! waiting. The tree is flushed in the background every [`CHECKPOINT_EVERY`], after which the
//! log's older segments are deleted.
//!
//! Every change also writes the record's sequence number under [`SEQ_KEY`], after its
//! entries, so the tree always says which records it holds: sled recovers a prefix of its
//! writes, so after a crash the tree holds every record up to the one it names, at most part
//! of the next (applied again, whole, at open: puts and removes are idempotent), and nothing
//! later. It may hold more than the log made durable (after a crash of the process, what the
//! operating system had received survives), never less than its last flush. At open, the
//! records the tree lacks are applied again in order, so the tree holds every durable record.
//!
//! **Invariant:** a change is durable once `sync` returned for its sequence number; the tree is
//! never behind the durable records after `open`, and applies each record in full exactly once
//! (a part applied before a crash is applied again, to the same effect).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::wal::{Wal, WalError};

/// Where a batch records the sequence number of its log record.
pub const SEQ_KEY: &[u8] = b"\x00wal_seq";
/// How often the tree is flushed and the log cut behind it.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(1_000);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}: {source}")]
    Open { path: PathBuf, source: sled::Error },
    #[error("store {path}: {source}")]
    Sled { path: PathBuf, source: sled::Error },
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error("store {path}: a damaged log record {seq}: {reason}")]
    Corrupt {
        path: PathBuf,
        seq: u64,
        reason: String,
    },
}

impl StoreError {
    /// The I/O error behind it, if any (a full disk is told apart by its kind).
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            StoreError::Open {
                source: sled::Error::Io(e),
                ..
            }
            | StoreError::Sled {
                source: sled::Error::Io(e),
                ..
            } => Some(e.kind()),
            StoreError::Wal(WalError::Io { source, .. }) => Some(source.kind()),
            _ => None,
        }
    }
}

/// One change to the tree: puts (`Some`) and removes (`None`), applied atomically.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    entries: Vec<(serde_bytes::ByteBuf, Option<serde_bytes::ByteBuf>)>,
}

impl Change {
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.entries.push((
            serde_bytes::ByteBuf::from(key.into()),
            Some(serde_bytes::ByteBuf::from(value.into())),
        ));
    }

    pub fn remove(&mut self, key: impl Into<Vec<u8>>) {
        self.entries
            .push((serde_bytes::ByteBuf::from(key.into()), None));
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of keys and values.
    pub fn bytes(&self) -> u64 {
        self.entries
            .iter()
            .map(|(k, v)| (k.len() + v.as_ref().map_or(0, |v| v.len())) as u64)
            .sum()
    }

    /// Applies the entries in order, then records `seq`. Not as one sled batch: sled 0.34
    /// writes out its log buffer twice for every batch (waking every thread of its I/O pool
    /// each time), which cost more than the rest of a small transaction. Atomicity comes from
    /// the log instead: sled recovers a prefix of its writes, so after a crash the tree holds
    /// every record up to the one `SEQ_KEY` names and at most part of the next, which is
    /// applied again, whole, at open (a put or a remove of a given value is idempotent).
    /// While running, a reader may see part of a change; the data node's storage never
    /// relies on seeing a change whole.
    fn apply(&self, tree: &sled::Tree, seq: u64) -> Result<(), sled::Error> {
        for (k, v) in &self.entries {
            match v {
                Some(v) => tree.insert(k.as_slice(), v.as_slice())?,
                None => tree.remove(k.as_slice())?,
            };
        }
        tree.insert(SEQ_KEY, &seq.to_be_bytes())?;
        Ok(())
    }
}

/// A sled tree and its log.
pub struct LoggedTree {
    path: PathBuf,
    db: sled::Db,
    tree: sled::Tree,
    wal: Wal,
}

fn seq_of(tree: &sled::Tree, path: &Path) -> Result<u64, StoreError> {
    let v = tree.get(SEQ_KEY).map_err(|source| StoreError::Sled {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(v.and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map_or(0, u64::from_be_bytes))
}

impl LoggedTree {
    /// Opens the sled database at `path` (its tree `name`) and its log in `path`'s sibling
    /// folder `<path>.wal`, applies what the tree lacks, and starts the background checkpoint.
    /// `cache_bytes`: sled's page cache.
    pub fn open(path: &Path, name: &str, cache_bytes: u64) -> Result<Arc<LoggedTree>, StoreError> {
        let mut wal_dir = path.as_os_str().to_owned();
        wal_dir.push(".wal");
        Self::open_with_log(path, Path::new(&wal_dir), name, cache_bytes)
    }

    /// [`Self::open`] with the log in `wal_dir`.
    pub fn open_with_log(
        path: &Path,
        wal_dir: &Path,
        name: &str,
        cache_bytes: u64,
    ) -> Result<Arc<LoggedTree>, StoreError> {
        let open = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .open()
            .map_err(open)?;
        let tree = db.open_tree(name).map_err(open)?;
        let have = seq_of(&tree, path)?;
        let (wal, records) = Wal::open(wal_dir, have)?;
        let replayed = records.len();
        for r in records {
            let change: Change =
                rmp_serde::from_slice(&r.payload).map_err(|e| StoreError::Corrupt {
                    path: path.to_path_buf(),
                    seq: r.seq,
                    reason: e.to_string(),
                })?;
            change
                .apply(&tree, r.seq)
                .map_err(|source| StoreError::Sled {
                    path: path.to_path_buf(),
                    source,
                })?;
        }
        if replayed > 0 {
            tracing::info!(path = %path.display(), "applied {replayed} records of the write-ahead log");
        }
        let t = Arc::new(LoggedTree {
            path: path.to_path_buf(),
            db,
            tree,
            wal,
        });
        if replayed > 0 {
            t.checkpoint()?;
        }
        let weak = Arc::downgrade(&t);
        std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || checkpoints(weak))
            .map_err(|e| {
                StoreError::Wal(WalError::Io {
                    path: path.to_path_buf(),
                    source: e,
                })
            })?;
        Ok(t)
    }

    /// The tree, for reads.
    pub fn tree(&self) -> &sled::Tree {
        &self.tree
    }

    /// Writes `change` to the log and applies it to the tree (not yet durable: see
    /// [`Self::sync`]); answers its sequence number.
    pub fn write(&self, change: &Change) -> Result<u64, StoreError> {
        let payload = rmp_serde::to_vec(change).map_err(|e| StoreError::Corrupt {
            path: self.path.clone(),
            seq: 0,
            reason: e.to_string(),
        })?;
        let (seq, applied) = self
            .wal
            .append(&payload, |seq| change.apply(&self.tree, seq))?;
        applied.map_err(|source| StoreError::Sled {
            path: self.path.clone(),
            source,
        })?;
        Ok(seq)
    }

    /// Returns once every change up to `seq` is durable.
    pub fn sync(&self, seq: u64) -> Result<(), StoreError> {
        Ok(self.wal.sync(seq)?)
    }

    /// Returns once every change written so far is durable.
    pub fn sync_all(&self) -> Result<(), StoreError> {
        Ok(self.wal.sync(self.wal.last_seq())?)
    }

    /// [`Self::write`] and [`Self::sync`].
    pub fn write_durable(&self, change: &Change) -> Result<u64, StoreError> {
        let seq = self.write(change)?;
        self.sync(seq)?;
        Ok(seq)
    }

    /// Flushes the tree and deletes the log segments it no longer needs.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        let seq = self.wal.last_seq();
        self.db.flush().map_err(|source| StoreError::Sled {
            path: self.path.clone(),
            source,
        })?;
        self.wal.checkpoint(seq)?;
        Ok(())
    }

    /// Bytes the tree's files and the log take on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0) + self.wal.size_on_disk()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Test hook: writes `change` to the log only, as if the process had died before the tree
    /// wrote it.
    #[cfg(test)]
    fn log_only(&self, change: &Change) -> u64 {
        let payload = rmp_serde::to_vec(change).expect("encode");
        let (seq, ()) = self.wal.append(&payload, |_| ()).expect("append");
        self.wal.sync(seq).expect("sync");
        seq
    }
}

/// The background checkpoint: while the tree is in use, flush it now and then and cut the log.
fn checkpoints(tree: Weak<LoggedTree>) {
    loop {
        std::thread::sleep(CHECKPOINT_EVERY);
        let Some(t) = tree.upgrade() else {
            return;
        };
        if let Err(e) = t.checkpoint() {
            tracing::warn!(path = %t.path.display(), "checkpoint failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(k: &str, v: &str) -> Change {
        let mut c = Change::default();
        c.put(k.as_bytes().to_vec(), v.as_bytes().to_vec());
        c
    }

    /// Opens again once the previous instance (and its checkpoint thread) let go of sled's lock.
    fn reopen(path: &Path) -> Arc<LoggedTree> {
        for _ in 0..200 {
            if let Ok(t) = LoggedTree::open(path, "t", 1 << 20) {
                return t;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("cannot reopen {}", path.display());
    }

    fn get(t: &LoggedTree, k: &str) -> Option<String> {
        t.tree()
            .get(k)
            .expect("get")
            .map(|v| String::from_utf8_lossy(&v).to_string())
    }

    #[test]
    fn a_durable_change_the_tree_lost_is_applied_at_open_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        {
            let t = LoggedTree::open(&path, "t", 1 << 20).expect("open");
            t.write_durable(&change("a", "1")).expect("write");
            t.checkpoint().expect("checkpoint");
            // Durable in the log, never applied to the tree: a crash in between.
            t.log_only(&change("a", "2"));
            let mut rm = Change::default();
            rm.remove(b"a".to_vec());
            rm.put(b"b".to_vec(), b"3".to_vec());
            t.log_only(&rm);
            assert_eq!(get(&t, "a").as_deref(), Some("1"));
        }
        let t = reopen(&path);
        assert_eq!(get(&t, "a"), None);
        assert_eq!(get(&t, "b").as_deref(), Some("3"));
        assert_eq!(seq_of(t.tree(), &path).expect("seq"), 3);
        // Numbering goes on after the replayed records.
        assert_eq!(t.write(&change("c", "4")).expect("write"), 4);
    }

    #[test]
    fn records_the_tree_has_already_are_not_applied_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        {
            let t = LoggedTree::open(&path, "t", 1 << 20).expect("open");
            t.write_durable(&change("a", "1")).expect("write");
            t.write_durable(&change("a", "2")).expect("write");
            // The tree is flushed with both, the log keeps both (no checkpoint).
            t.db.flush().expect("flush");
        }
        let t = reopen(&path);
        assert_eq!(get(&t, "a").as_deref(), Some("2"));
    }
}
