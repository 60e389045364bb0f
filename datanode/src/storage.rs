//! A data node's storage: immutable column blocks, a manifest per chunk naming its blocks, and
//! the records of prepared transactions.
//!
//! Metadata lives in one sled tree whose changes a write-ahead log makes durable
//! ([`xrepl_store::LoggedTree`]: one `fdatasync` shared by every prepare waiting at that
//! moment), keys by prefix, so that each step of a transaction is one atomic change:
//!
//! - `b` table(8) partition(4) uid(8) → a block: its rmp encoding when that is at most
//!   [`INLINE_BLOCK`] bytes, else a [`FileRef`] to the block's file
//! - `m` table(8) partition(4) → [`Manifest`]: the blocks that make up the chunk, in order
//! - `p` tid(8) → [`Prepared`]: what a prepared transaction will change
//!
//! A larger block is a file of its own, `<storage>.blocks/<table>_<partition>/<uid>` (hex),
//! written and made durable before the record that names it: sled is poor at large values
//! (0.34 keeps each in a blob file it never deletes), a file system is good at them. Files
//! that no record names (the process died between the two steps) are removed at open.
//! Blocks written by older versions as 4 KiB pieces (`b` … uid(8) piece(4)) are still read.
//!
//! **Prepare** writes the transaction's block files, then its block records and its `p` record
//! in one change, made durable: nothing is visible yet, because no manifest names the new
//! blocks. **Commit** writes the new manifests and removes the replaced blocks' records and
//! the `p` record in one change, without waiting for it to be durable (the decision is durable
//! on the controller; a lost commit is redone from the `p` record at start-up), then deletes
//! the replaced blocks' files. **Abort** removes the new blocks and the `p` record. Readers
//! follow manifests only, so they see committed data only; a block replaced under a reader
//! makes it read the manifest again.
//!
//! **A full file system.** A prepare that could fill the file system is refused before
//! anything is written ([`Storage::stage`] asks the file system, with `statvfs`, for twice its
//! bytes plus [`SPACE_RESERVE`] free), with [`StorageError::NoSpace`]; once space is freed the
//! next prepare goes through. Prepares running at the same moment each count on the same free
//! space; the reserve is there for that, and for commits and aborts, which are not checked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use xrepl_core::catalog::ColumnDef;
use xrepl_core::value::Vector;
use xrepl_proto::txn::ChunkId;
use xrepl_store::{files, Change, FileError, FileRef, LoggedTree, StoreError};

use crate::failpoint::crash_point;

/// Rows per block. The spec measured 1.21 M rows as 10,000-row blocks at about 0.46 s in sled.
pub const BLOCK_ROWS: usize = 10_000;

/// Bytes a prepare leaves free on the storage's file system beyond twice what it stores: room
/// for what sled and the log write besides, and for commits and aborts, which are not checked.
pub const SPACE_RESERVE: u64 = 4 << 20;

/// The most bytes of an encoded block kept in its sled record; a larger one is a file.
pub const INLINE_BLOCK: usize = 4 * 1024;

/// sled's page cache for the metadata (sled's default is 1 GB).
const CACHE_BYTES: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("storage: {0}")]
    Sled(#[from] sled::Error),
    #[error("storage block file {0}")]
    File(#[from] FileError),
    /// The file system of the storage is full, or too full to store a prepare safely.
    #[error("no space left on the device of the storage at {path}: {detail}")]
    NoSpace { path: PathBuf, detail: String },
    #[error("cannot check the free space of the storage at {path}: {source}")]
    SpaceCheck {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("damaged storage record {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("a block of chunk {table}/{partition} kept disappearing while being read")]
    Unstable { table: u64, partition: u32 },
}

/// Rows of one chunk, by column id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Block {
    pub rows: u32,
    pub columns: Vec<(u32, Vector)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Block uid and row count, in order.
    pub blocks: Vec<(u64, u32)>,
}

impl Manifest {
    pub fn rows(&self) -> u64 {
        self.blocks.iter().map(|(_, r)| u64::from(*r)).sum()
    }
}

/// What a prepared transaction changes on this node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Prepared {
    pub tid: u64,
    /// The chunks it holds locks on.
    pub chunks: Vec<ChunkId>,
    /// New manifests; `None` removes the chunk.
    pub manifests: Vec<(ChunkId, Option<Manifest>)>,
    pub new_blocks: Vec<(ChunkId, u64)>,
    pub old_blocks: Vec<(ChunkId, u64)>,
    pub rows: u64,
    pub prepared_ms: i64,
}

fn chunk_prefix(tag: u8, c: ChunkId) -> Vec<u8> {
    let mut k = Vec::with_capacity(21);
    k.push(tag);
    k.extend_from_slice(&c.table.to_be_bytes());
    k.extend_from_slice(&c.partition.to_be_bytes());
    k
}

fn block_key(c: ChunkId, uid: u64) -> Vec<u8> {
    let mut k = chunk_prefix(b'b', c);
    k.extend_from_slice(&uid.to_be_bytes());
    k
}

fn manifest_key(c: ChunkId) -> Vec<u8> {
    chunk_prefix(b'm', c)
}

fn prepared_key(tid: u64) -> Vec<u8> {
    let mut k = vec![b'p'];
    k.extend_from_slice(&tid.to_be_bytes());
    k
}

fn chunk_dir_name(c: ChunkId) -> String {
    format!("{}_{}", c.table, c.partition)
}

fn parse_chunk_dir(name: &str) -> Option<ChunkId> {
    let (t, p) = name.split_once('_')?;
    Some(ChunkId {
        table: t.parse().ok()?,
        partition: p.parse().ok()?,
    })
}

pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Encoding our own plain structs into a Vec cannot fail.
    rmp_serde::to_vec(v).unwrap_or_default()
}

fn decode<T: for<'a> Deserialize<'a>>(key: &[u8], bytes: &[u8]) -> Result<T, StorageError> {
    rmp_serde::from_slice(bytes).map_err(|e| StorageError::Corrupt {
        key: format!("{key:02x?}"),
        reason: e.to_string(),
    })
}

pub struct Storage {
    path: PathBuf,
    /// `<path>.blocks`: a folder per chunk with its block files.
    blocks: PathBuf,
    tree: Arc<LoggedTree>,
    /// Test hook: the free bytes to assume instead of asking the file system (`u64::MAX`:
    /// ask it).
    assume_free: AtomicU64,
}

fn is_no_space(kind: Option<std::io::ErrorKind>) -> bool {
    kind == Some(std::io::ErrorKind::StorageFull)
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

impl Storage {
    /// Opens the storage at `path` (its log at `<path>.wal`, its block files under
    /// `<path>.blocks`) and removes the block files no record names.
    pub fn open(path: &Path) -> Result<Storage, StorageError> {
        let tree = LoggedTree::open(path, "data", CACHE_BYTES)?;
        let s = Storage {
            path: path.to_path_buf(),
            blocks: sibling(path, ".blocks"),
            tree,
            assume_free: AtomicU64::new(u64::MAX),
        };
        files::ensure_dir(&s.blocks)?;
        let removed = s.remove_unnamed_files()?;
        if removed > 0 {
            tracing::info!(path = %s.blocks.display(), "removed {removed} block files no record names (a prepare that died half-way)");
        }
        Ok(s)
    }

    fn block_file(&self, c: ChunkId, uid: u64) -> PathBuf {
        self.blocks
            .join(chunk_dir_name(c))
            .join(format!("{uid:016x}"))
    }

    /// Removes every block file whose record is missing or does not name a file, and chunk
    /// folders left empty; answers how many files went.
    fn remove_unnamed_files(&self) -> Result<usize, StorageError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| FileError::Io { path, source }
        };
        let mut removed = 0;
        for dir in std::fs::read_dir(&self.blocks).map_err(io(&self.blocks))? {
            let dir = dir.map_err(io(&self.blocks))?.path();
            let chunk = dir
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(parse_chunk_dir);
            let mut left = 0;
            for f in std::fs::read_dir(&dir).map_err(io(&dir))? {
                let f = f.map_err(io(&dir))?.path();
                let uid = f
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| u64::from_str_radix(n, 16).ok());
                let named = match (chunk, uid) {
                    (Some(c), Some(uid)) => self
                        .tree
                        .tree()
                        .get(block_key(c, uid))?
                        .is_some_and(|v| FileRef::decode(&v).is_some()),
                    _ => false,
                };
                if named {
                    left += 1;
                } else {
                    files::remove(&f)?;
                    removed += 1;
                }
            }
            if left == 0 {
                std::fs::remove_dir(&dir).map_err(io(&dir))?;
            }
        }
        Ok(removed)
    }

    /// A storage error, with a full file system told as such.
    fn failed(&self, e: StorageError) -> StorageError {
        let kind = match &e {
            StorageError::Store(e) => e.io_kind(),
            StorageError::File(e) => e.io_kind(),
            StorageError::Sled(sled::Error::Io(e)) => Some(e.kind()),
            _ => None,
        };
        if is_no_space(kind) {
            return StorageError::NoSpace {
                path: self.path.clone(),
                detail: e.to_string(),
            };
        }
        e
    }

    /// Refuses to store `bytes` more unless the file system has twice that plus
    /// [`SPACE_RESERVE`] free (see the module comment).
    fn check_space(&self, bytes: u64) -> Result<(), StorageError> {
        let need = bytes.saturating_mul(2).saturating_add(SPACE_RESERVE);
        let free = match self.assume_free.load(Ordering::Relaxed) {
            u64::MAX => {
                fs2::available_space(&self.path).map_err(|source| StorageError::SpaceCheck {
                    path: self.path.clone(),
                    source,
                })?
            }
            assumed => assumed,
        };
        if free >= need {
            return Ok(());
        }
        Err(StorageError::NoSpace {
            path: self.path.clone(),
            detail: format!(
                "storing {bytes} bytes needs {need} bytes free (twice the data plus a reserve of {SPACE_RESERVE}), and {free} are"
            ),
        })
    }

    /// Test hook: assume `bytes` free on the storage's file system (`None`: ask it).
    pub fn assume_free_space(&self, bytes: Option<u64>) {
        self.assume_free
            .store(bytes.unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub fn manifest(&self, c: ChunkId) -> Result<Manifest, StorageError> {
        let k = manifest_key(c);
        match self.tree.tree().get(&k)? {
            Some(v) => decode(&k, &v),
            None => Ok(Manifest::default()),
        }
    }

    /// A block: inline in its record, in its file, or (written by an older version) in
    /// pieces after its key.
    pub fn block(&self, c: ChunkId, uid: u64) -> Result<Option<Block>, StorageError> {
        let k = block_key(c, uid);
        if let Some(v) = self.tree.tree().get(&k)? {
            if let Some(r) = FileRef::decode(&v) {
                return match files::read(&self.block_file(c, uid), r)? {
                    Some(bytes) => decode(&k, &bytes).map(Some),
                    // Deleted by a commit after we read the record.
                    None => Ok(None),
                };
            }
            return decode(&k, &v).map(Some);
        }
        let mut bytes = Vec::new();
        for item in self.tree.tree().scan_prefix(&k) {
            let (_, v) = item?;
            bytes.extend_from_slice(&v);
        }
        if bytes.is_empty() {
            return Ok(None);
        }
        decode(&k, &bytes).map(Some)
    }

    /// Adds the removal of a block's records (its value or every piece) to `change`.
    fn remove_block(&self, change: &mut Change, c: ChunkId, uid: u64) -> Result<(), StorageError> {
        for key in self.tree.tree().scan_prefix(block_key(c, uid)).keys() {
            change.remove(key?.to_vec());
        }
        Ok(())
    }

    /// Deletes the files of blocks whose records are gone (a missing file is fine).
    fn delete_files(&self, blocks: &[(ChunkId, u64)]) {
        for (c, uid) in blocks {
            if let Err(e) = files::remove(&self.block_file(*c, *uid)) {
                tracing::warn!("cannot delete a retired block file: {e}");
            }
        }
    }

    /// Every committed block of a chunk, in order, read against one manifest.
    pub fn chunk_blocks(&self, c: ChunkId) -> Result<Vec<Block>, StorageError> {
        'again: for _ in 0..5 {
            let m = self.manifest(c)?;
            let mut out = Vec::with_capacity(m.blocks.len());
            for (uid, _) in &m.blocks {
                match self.block(c, *uid)? {
                    Some(b) => out.push(b),
                    // Replaced by a commit after we read the manifest: start over.
                    None => continue 'again,
                }
            }
            return Ok(out);
        }
        Err(StorageError::Unstable {
            table: c.table,
            partition: c.partition,
        })
    }

    /// Stores a prepared transaction: its large blocks as files (durable first), then its
    /// block records and its `p` record as one durable change. Refused with
    /// [`StorageError::NoSpace`], before anything is written, when the file system is too
    /// full for it.
    pub fn stage(
        &self,
        p: &Prepared,
        blocks: &BTreeMap<(ChunkId, u64), Block>,
    ) -> Result<(), StorageError> {
        self.stage_inner(p, blocks).map_err(|e| self.failed(e))
    }

    fn stage_inner(
        &self,
        p: &Prepared,
        blocks: &BTreeMap<(ChunkId, u64), Block>,
    ) -> Result<(), StorageError> {
        let encoded: Vec<(ChunkId, u64, Vec<u8>)> = blocks
            .iter()
            .map(|((c, uid), b)| (*c, *uid, encode(b)))
            .collect();
        let record = encode(p);
        let bytes =
            encoded.iter().map(|(_, _, b)| b.len() as u64).sum::<u64>() + record.len() as u64;
        self.check_space(bytes)?;
        let mut change = Change::default();
        let mut dirs = BTreeSet::new();
        let mut new_dir = false;
        let mut big: Vec<(ChunkId, u64, PathBuf, Vec<u8>)> = Vec::new();
        for (c, uid, bytes) in encoded {
            if bytes.len() <= INLINE_BLOCK {
                change.put(block_key(c, uid), bytes);
                continue;
            }
            let dir = self.blocks.join(chunk_dir_name(c));
            new_dir |= files::ensure_dir(&dir)?;
            big.push((c, uid, dir.join(format!("{uid:016x}")), bytes));
            dirs.insert(dir);
        }
        let to_write: Vec<(PathBuf, &[u8])> = big
            .iter()
            .map(|(_, _, path, bytes)| (path.clone(), bytes.as_slice()))
            .collect();
        let refs = files::write_all(&to_write)?;
        for ((c, uid, _, _), r) in big.iter().zip(refs) {
            change.put(block_key(*c, *uid), r.encode());
        }
        files::sync_dirs(&dirs.iter().map(PathBuf::as_path).collect::<Vec<_>>())?;
        if new_dir {
            files::sync_dir(&self.blocks)?;
        }
        crash_point("storage_after_block_files");
        change.put(prepared_key(p.tid), record);
        self.tree.write_durable(&change)?;
        Ok(())
    }

    fn take_prepared(&self, tid: u64) -> Result<Option<Prepared>, StorageError> {
        let k = prepared_key(tid);
        self.tree
            .tree()
            .get(&k)?
            .map(|v| decode(&k, &v))
            .transpose()
    }

    /// Makes a prepared transaction visible. `None` when it was not prepared here (already
    /// committed or aborted: the call is idempotent).
    pub fn commit(&self, tid: u64) -> Result<Option<Prepared>, StorageError> {
        let Some(p) = self.take_prepared(tid)? else {
            return Ok(None);
        };
        let mut change = Change::default();
        for (c, m) in &p.manifests {
            match m {
                Some(m) => change.put(manifest_key(*c), encode(m)),
                None => change.remove(manifest_key(*c)),
            }
        }
        for (c, uid) in &p.old_blocks {
            self.remove_block(&mut change, *c, *uid)?;
        }
        change.remove(prepared_key(tid));
        // Not waited for: the decision is durable on the controller and the prepared record
        // is durable here. If this change is lost in a crash, the record is found again at
        // start-up and committed again (idempotent) before the node serves anyone; the log
        // keeps changes in order, so the next durable prepare covers this one too.
        self.tree
            .write(&change)
            .map_err(|e| self.failed(e.into()))?;
        self.delete_files(&p.old_blocks);
        Ok(Some(p))
    }

    /// Forgets a prepared transaction and its new blocks.
    pub fn abort(&self, tid: u64) -> Result<Option<Prepared>, StorageError> {
        let Some(p) = self.take_prepared(tid)? else {
            return Ok(None);
        };
        let mut change = Change::default();
        for (c, uid) in &p.new_blocks {
            self.remove_block(&mut change, *c, *uid)?;
        }
        change.remove(prepared_key(tid));
        // Not waited for, for the reason given in `commit`.
        self.tree
            .write(&change)
            .map_err(|e| self.failed(e.into()))?;
        self.delete_files(&p.new_blocks);
        Ok(Some(p))
    }

    /// Every prepared transaction, to resolve after a restart.
    pub fn all_prepared(&self) -> Result<Vec<Prepared>, StorageError> {
        self.tree
            .tree()
            .scan_prefix([b'p'])
            .map(|item| {
                let (k, v) = item?;
                decode(&k, &v)
            })
            .collect()
    }

    /// Bytes on disk: the metadata, its log and the block files.
    pub fn size_on_disk(&self) -> u64 {
        self.tree.size_on_disk() + files::dir_size(&self.blocks)
    }

    /// Returns once every change made so far (commits and aborts included) is durable.
    pub fn sync_all(&self) -> Result<(), StorageError> {
        Ok(self.tree.sync_all()?)
    }

    /// Flushes the metadata and cuts its log (also done in the background every second).
    pub fn checkpoint(&self) -> Result<(), StorageError> {
        Ok(self.tree.checkpoint()?)
    }
}

/// The columns of `block` in the order of `defs`: a column the block lacks (added later) is
/// all NULL; one of another type (the type changed) is converted.
pub fn project(block: &Block, defs: &[ColumnDef]) -> Result<Vec<Vector>, String> {
    defs.iter()
        .map(|d| match block.columns.iter().find(|(id, _)| *id == d.id) {
            Some((_, v)) if v.data_type() == d.ty => Ok(v.clone()),
            Some((_, v)) => xrepl_query::ops::cast(v, d.ty),
            None => Ok(xrepl_query::ops::nulls(d.ty, block.rows as usize)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk() -> ChunkId {
        ChunkId {
            table: 7,
            partition: 3,
        }
    }

    fn block(v: Vec<i32>) -> Block {
        Block {
            rows: v.len() as u32,
            columns: vec![(0, Vector::Int(v))],
        }
    }

    #[test]
    fn prepared_data_is_invisible_until_commit_and_gone_after_abort() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Storage::open(&dir.path().join("s")).expect("open");
        let c = chunk();
        let mut blocks = BTreeMap::new();
        blocks.insert((c, 1), block(vec![1, 2, 3]));
        let p = Prepared {
            tid: 1,
            chunks: vec![c],
            manifests: vec![(
                c,
                Some(Manifest {
                    blocks: vec![(1, 3)],
                }),
            )],
            new_blocks: vec![(c, 1)],
            rows: 3,
            ..Prepared::default()
        };
        s.stage(&p, &blocks).expect("stage");
        assert!(
            s.chunk_blocks(c).expect("read").is_empty(),
            "invisible before commit"
        );
        assert_eq!(s.all_prepared().expect("list").len(), 1);
        assert!(s.commit(1).expect("commit").is_some());
        assert_eq!(s.chunk_blocks(c).expect("read"), vec![block(vec![1, 2, 3])]);
        assert!(s.commit(1).expect("again").is_none(), "idempotent");

        // A second transaction replaces the block, then aborts: the first stays.
        let mut blocks = BTreeMap::new();
        blocks.insert((c, 2), block(vec![9]));
        let p2 = Prepared {
            tid: 2,
            chunks: vec![c],
            manifests: vec![(
                c,
                Some(Manifest {
                    blocks: vec![(2, 1)],
                }),
            )],
            new_blocks: vec![(c, 2)],
            old_blocks: vec![(c, 1)],
            rows: 1,
            ..Prepared::default()
        };
        s.stage(&p2, &blocks).expect("stage");
        assert!(s.abort(2).expect("abort").is_some());
        assert_eq!(s.chunk_blocks(c).expect("read"), vec![block(vec![1, 2, 3])]);
        assert!(
            s.block(c, 2).expect("get").is_none(),
            "aborted blocks are deleted"
        );
        assert!(s.all_prepared().expect("list").is_empty());
    }

    /// Regression: on a full disk sled failed a blob write half-way and left its log buffer
    /// waiting for a writer forever, so every later prepare on the node hung in its flush
    /// (holding its chunk locks), also after space was freed; and sled's own error read
    /// `storage: IO error: ...`. The prepare is now refused before sled writes anything, and
    /// the next one, once there is room, goes through.
    #[test]
    fn a_full_disk_wedged_sled_so_every_later_prepare_hung() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Storage::open(&dir.path().join("s")).expect("open");
        let c = chunk();
        // About 200 KB, over sled's blob threshold (a 512 KiB segment / 4) as real blocks are.
        let big = block((0..40_000).map(|i: i32| i.wrapping_mul(100_003)).collect());
        let mut blocks = BTreeMap::new();
        blocks.insert((c, 1), big.clone());
        let p = Prepared {
            tid: 1,
            chunks: vec![c],
            manifests: vec![(
                c,
                Some(Manifest {
                    blocks: vec![(1, big.rows)],
                }),
            )],
            new_blocks: vec![(c, 1)],
            rows: u64::from(big.rows),
            ..Prepared::default()
        };
        // The file system has room for the data, but not for twice it plus the reserve.
        s.assume_free_space(Some(SPACE_RESERVE));
        let refused = s.stage(&p, &blocks).expect_err("no space");
        assert!(matches!(refused, StorageError::NoSpace { .. }), "{refused}");
        assert!(
            refused.to_string().starts_with(&format!(
                "no space left on the device of the storage at {}: storing ",
                dir.path().join("s").display()
            )),
            "{refused}"
        );
        assert!(s.all_prepared().expect("list").is_empty(), "nothing staged");
        assert!(s.block(c, 1).expect("get").is_none(), "nothing staged");

        // Room again: the same prepare goes through and commits.
        s.assume_free_space(None);
        s.stage(&p, &blocks).expect("stage once there is room");
        assert!(s.commit(1).expect("commit").is_some());
        assert_eq!(s.chunk_blocks(c).expect("read"), vec![big]);

        // sled's own error on a full disk reads as one too.
        let sled_full = s.failed(StorageError::Sled(sled::Error::Io(std::io::Error::from(
            std::io::ErrorKind::StorageFull,
        ))));
        assert!(
            matches!(sled_full, StorageError::NoSpace { .. }),
            "{sled_full}"
        );
    }
}

#[cfg(test)]
mod file_tests {
    use super::*;

    fn big(seed: i64) -> Block {
        Block {
            rows: 2_000,
            columns: vec![(
                0,
                Vector::Long((0..2_000).map(|i| i * 7_919 + seed).collect()),
            )],
        }
    }

    fn staged(s: &Storage, tid: u64, c: ChunkId) -> Prepared {
        let mut blocks = BTreeMap::new();
        blocks.insert((c, tid), big(tid as i64));
        let p = Prepared {
            tid,
            chunks: vec![c],
            manifests: vec![(
                c,
                Some(Manifest {
                    blocks: vec![(tid, 2_000)],
                }),
            )],
            new_blocks: vec![(c, tid)],
            rows: 2_000,
            ..Prepared::default()
        };
        s.stage(&p, &blocks).expect("stage");
        p
    }

    /// Opens again once the previous instance let go of sled's lock.
    fn reopen(path: &Path) -> Storage {
        for _ in 0..200 {
            if let Ok(s) = Storage::open(path) {
                return s;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("cannot reopen {}", path.display());
    }

    #[test]
    fn block_files_no_record_names_are_removed_at_open_and_named_ones_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s");
        let c = ChunkId {
            table: 4,
            partition: 2,
        };
        {
            let s = Storage::open(&path).expect("open");
            staged(&s, 1, c);
            s.commit(1).expect("commit");
            staged(&s, 2, c); // prepared, not decided
        }
        // What a prepare that died after its files and before its record leaves behind.
        let chunk_dir = path.with_extension("blocks").join("4_2");
        std::fs::write(chunk_dir.join(format!("{:016x}", 3u64 << 24)), b"orphan").expect("write");
        std::fs::create_dir_all(path.with_extension("blocks").join("9_9")).expect("mkdir");
        std::fs::write(path.with_extension("blocks").join("9_9").join("1"), b"x").expect("write");
        let s = reopen(&path);
        let mut left: Vec<String> = std::fs::read_dir(&chunk_dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
            .collect();
        left.sort();
        assert_eq!(left, vec![format!("{:016x}", 1), format!("{:016x}", 2)]);
        assert!(
            !path.with_extension("blocks").join("9_9").exists(),
            "an empty chunk folder goes"
        );
        assert_eq!(s.chunk_blocks(c).expect("read"), vec![big(1)]);
        assert_eq!(
            s.all_prepared().expect("list").len(),
            1,
            "the prepare survives"
        );
        assert!(s.commit(2).expect("commit").is_some());
    }

    #[test]
    fn a_damaged_block_file_is_an_error_not_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Storage::open(&dir.path().join("s")).expect("open");
        let c = ChunkId {
            table: 1,
            partition: 0,
        };
        staged(&s, 1, c);
        s.commit(1).expect("commit");
        let f = s.block_file(c, 1);
        let mut bytes = std::fs::read(&f).expect("read");
        bytes[100] ^= 0xff;
        std::fs::write(&f, bytes).expect("write");
        let e = s.chunk_blocks(c).expect_err("damaged");
        assert!(e.to_string().contains("is damaged"), "{e}");
    }
}

#[cfg(test)]
mod blob_tests {
    use super::*;

    /// Found by the 30-minute chaos soak: a master data node's storage grew to 4.6 GB for
    /// about 10 MB of live rows. sled 0.34 keeps a value over its inline limit in a file of
    /// its own under `blobs/` and does not delete the file when the value is removed, so
    /// every replaced 10,000-row block (an update rewrites it) left its old bytes on disk.
    #[test]
    fn regression_replaced_blocks_leaked_sled_blob_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Storage::open(&dir.path().join("s")).expect("open");
        let c = ChunkId {
            table: 1,
            partition: 0,
        };
        // About 400 KB encoded: the size of a real 10,000-row block.
        let big = |seed: i64| Block {
            rows: 10_000,
            columns: vec![
                (
                    0,
                    Vector::Long((0..10_000).map(|i| i * 7_919 + seed).collect()),
                ),
                (
                    1,
                    Vector::Long((0..10_000).map(|i| i * 104_729 - seed).collect()),
                ),
                (2, Vector::Long((0..10_000).map(|i| i ^ seed).collect())),
                (
                    3,
                    Vector::Long((0..10_000i64).map(|i| i.wrapping_mul(seed)).collect()),
                ),
            ],
        };
        for tid in 1..=60u64 {
            let mut blocks = BTreeMap::new();
            blocks.insert((c, tid), big(tid as i64));
            let p = Prepared {
                tid,
                chunks: vec![c],
                manifests: vec![(
                    c,
                    Some(Manifest {
                        blocks: vec![(tid, 10_000)],
                    }),
                )],
                new_blocks: vec![(c, tid)],
                old_blocks: if tid > 1 { vec![(c, tid - 1)] } else { vec![] },
                rows: 10_000,
                ..Prepared::default()
            };
            s.stage(&p, &blocks).expect("stage");
            s.commit(tid).expect("commit");
        }
        s.checkpoint().expect("checkpoint");
        assert_eq!(s.chunk_blocks(c).expect("read"), vec![big(60)]);
        let size = files::dir_size(dir.path());
        // 60 versions of 400 KB would be 24 MB; one live version and sled's segments are a
        // few MB.
        assert!(
            size < 12 << 20,
            "the storage holds {size} bytes for one 400 KB block"
        );
        let files = std::fs::read_dir(dir.path().join("s.blocks").join("1_0"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(
            files, 1,
            "one live block file; the replaced ones are deleted"
        );
        let blobs = std::fs::read_dir(dir.path().join("s").join("blobs"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(
            blobs, 0,
            "no sled value or node is large enough to be a blob file"
        );
    }
}
