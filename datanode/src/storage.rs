//! A data node's storage: immutable column blocks, a manifest per chunk naming its blocks, and
//! the records of prepared transactions. One sled tree, keys by prefix, so that each step of a
//! transaction is one atomic batch:
//!
//! - `b` table(8) partition(4) uid(8) → [`Block`] (immutable once written)
//! - `m` table(8) partition(4) → [`Manifest`]: the blocks that make up the chunk, in order
//! - `p` tid(8) → [`Prepared`]: what a prepared transaction will change
//!
//! **Prepare** writes the transaction's new blocks and its `p` record in one batch and flushes:
//! nothing is visible yet, because no manifest names the new blocks. **Commit** writes the new
//! manifests, deletes the replaced blocks and the `p` record in one batch, without a flush
//! (the decision is durable on the controller; a lost commit batch is redone from the `p`
//! record at start-up). **Abort** deletes the new blocks and the `p` record. Readers follow manifests only, so they
//! see committed data only; a block replaced under a reader makes it read the manifest again.
//!
//! **A full file system.** sled 0.34 does not survive running out of space: a large value
//! whose blob file cannot be written leaves its log buffer waiting for a writer forever, so
//! every later flush hangs (with the prepare's chunk locks held); a log write that fails fails
//! every later read and write until the process restarts. So a prepare that could fill the file
//! system is refused before sled sees it ([`Storage::stage`] asks the file system, with
//! `statvfs`, for twice its bytes plus [`SPACE_RESERVE`] free), with
//! [`StorageError::NoSpace`]; once space is freed the next prepare goes through. Prepares
//! running at the same moment each count on the same free space; the reserve is there for
//! that, and for commits and aborts, which are not checked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use xrepl_core::catalog::ColumnDef;
use xrepl_core::value::Vector;
use xrepl_proto::txn::ChunkId;

/// Rows per block. The spec measured 1.21 M rows as 10,000-row blocks at about 0.46 s in sled.
pub const BLOCK_ROWS: usize = 10_000;

/// Bytes a prepare leaves free on the storage's file system beyond twice what it stores: room
/// for what sled writes besides (512 KiB log segments, node rewrites, and commits and aborts,
/// which are not checked).
pub const SPACE_RESERVE: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot open the storage at {path}: {source}")]
    Open {
        path: std::path::PathBuf,
        source: sled::Error,
    },
    #[error("storage: {0}")]
    Sled(#[from] sled::Error),
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

/// The most bytes one sled value of a block holds. sled 0.34 keeps a value, or a tree node,
/// larger than its inline limit (a quarter of a 512 KiB segment) in a file of its own under
/// `blobs/` and does not delete the file when the value is removed (sled issue 786), so a
/// replaced block left its bytes on disk for good. A larger block is stored as pieces:
/// `block_key` + piece(4), big-endian, each at most this long. Small pieces keep the nodes
/// that hold them small too (measured: 64 KiB and 16 KiB pieces still made blob files, 4 KiB
/// none).
pub const BLOCK_PIECE: usize = 4 * 1024;

fn piece_key(c: ChunkId, uid: u64, piece: u32) -> Vec<u8> {
    let mut k = block_key(c, uid);
    k.extend_from_slice(&piece.to_be_bytes());
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
    db: sled::Db,
    tree: sled::Tree,
    /// Test hook: the free bytes to assume instead of asking the file system (`u64::MAX`:
    /// ask it).
    assume_free: AtomicU64,
}

fn is_no_space(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull
}

impl Storage {
    pub fn open(path: &Path) -> Result<Storage, StorageError> {
        let open = |source| StorageError::Open {
            path: path.to_path_buf(),
            source,
        };
        let db = sled::open(path).map_err(open)?;
        let tree = db.open_tree("data").map_err(open)?;
        Ok(Storage {
            path: path.to_path_buf(),
            db,
            tree,
            assume_free: AtomicU64::new(u64::MAX),
        })
    }

    /// A sled error, with a full file system told as such.
    fn failed(&self, e: sled::Error) -> StorageError {
        match e {
            sled::Error::Io(io) if is_no_space(&io) => StorageError::NoSpace {
                path: self.path.clone(),
                detail: io.to_string(),
            },
            e => StorageError::Sled(e),
        }
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
        match self.tree.get(&k).map_err(|e| self.failed(e))? {
            Some(v) => decode(&k, &v),
            None => Ok(Manifest::default()),
        }
    }

    /// A block: one value at `block_key` when it is small, else its pieces in order.
    pub fn block(&self, c: ChunkId, uid: u64) -> Result<Option<Block>, StorageError> {
        let k = block_key(c, uid);
        if let Some(v) = self.tree.get(&k).map_err(|e| self.failed(e))? {
            return decode(&k, &v).map(Some);
        }
        let mut bytes = Vec::new();
        for item in self.tree.scan_prefix(&k) {
            let (_, v) = item.map_err(|e| self.failed(e))?;
            bytes.extend_from_slice(&v);
        }
        if bytes.is_empty() {
            return Ok(None);
        }
        decode(&k, &bytes).map(Some)
    }

    /// Adds the removal of a block (its value or every piece) to `batch`.
    fn remove_block(
        &self,
        batch: &mut sled::Batch,
        c: ChunkId,
        uid: u64,
    ) -> Result<(), StorageError> {
        let k = block_key(c, uid);
        for key in self.tree.scan_prefix(&k).keys() {
            batch.remove(key.map_err(|e| self.failed(e))?);
        }
        Ok(())
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

    /// Stores a prepared transaction: its new blocks and its record, then flushes. Refused
    /// with [`StorageError::NoSpace`], before anything is written, when the file system is
    /// too full for it.
    pub fn stage(
        &self,
        p: &Prepared,
        blocks: &BTreeMap<(ChunkId, u64), Block>,
    ) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        let mut bytes = 0u64;
        let mut insert = |k: Vec<u8>, v: Vec<u8>| {
            bytes += (k.len() + v.len()) as u64;
            batch.insert(k, v);
        };
        for ((c, uid), b) in blocks {
            let bytes = encode(b);
            if bytes.len() <= BLOCK_PIECE {
                insert(block_key(*c, *uid), bytes);
                continue;
            }
            for (i, piece) in bytes.chunks(BLOCK_PIECE).enumerate() {
                insert(piece_key(*c, *uid, i as u32), piece.to_vec());
            }
        }
        insert(prepared_key(p.tid), encode(p));
        self.check_space(bytes)?;
        self.tree.apply_batch(batch).map_err(|e| self.failed(e))?;
        self.db.flush().map_err(|e| self.failed(e))?;
        Ok(())
    }

    fn take_prepared(&self, tid: u64) -> Result<Option<Prepared>, StorageError> {
        let k = prepared_key(tid);
        self.tree
            .get(&k)
            .map_err(|e| self.failed(e))?
            .map(|v| decode(&k, &v))
            .transpose()
    }

    /// Makes a prepared transaction visible. `false` when it was not prepared here (already
    /// committed or aborted: the call is idempotent).
    pub fn commit(&self, tid: u64) -> Result<Option<Prepared>, StorageError> {
        let Some(p) = self.take_prepared(tid)? else {
            return Ok(None);
        };
        let mut batch = sled::Batch::default();
        for (c, m) in &p.manifests {
            match m {
                Some(m) => batch.insert(manifest_key(*c), encode(m)),
                None => batch.remove(manifest_key(*c)),
            }
        }
        for (c, uid) in &p.old_blocks {
            self.remove_block(&mut batch, *c, *uid)?;
        }
        batch.remove(prepared_key(tid));
        self.tree.apply_batch(batch).map_err(|e| self.failed(e))?;
        // No flush: the decision is durable on the controller and the prepared record is
        // durable here. If this batch is lost in a crash, the record is found again at
        // start-up and committed again (idempotent) before the node serves anyone. sled keeps
        // writes in order, so a later flush (the next prepare) covers this batch too.
        Ok(Some(p))
    }

    /// Forgets a prepared transaction and its new blocks.
    pub fn abort(&self, tid: u64) -> Result<Option<Prepared>, StorageError> {
        let Some(p) = self.take_prepared(tid)? else {
            return Ok(None);
        };
        let mut batch = sled::Batch::default();
        for (c, uid) in &p.new_blocks {
            self.remove_block(&mut batch, *c, *uid)?;
        }
        batch.remove(prepared_key(tid));
        self.tree.apply_batch(batch).map_err(|e| self.failed(e))?;
        // No flush, for the reason given in `commit`.
        Ok(Some(p))
    }

    /// Every prepared transaction, to resolve after a restart.
    pub fn all_prepared(&self) -> Result<Vec<Prepared>, StorageError> {
        self.tree
            .scan_prefix([b'p'])
            .map(|item| {
                let (k, v) = item.map_err(|e| self.failed(e))?;
                decode(&k, &v)
            })
            .collect()
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
        let s = Storage::open(dir.path()).expect("open");
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
        let s = Storage::open(dir.path()).expect("open");
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
                dir.path().display()
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
        let sled_full = s.failed(sled::Error::Io(std::io::Error::from(
            std::io::ErrorKind::StorageFull,
        )));
        assert!(
            matches!(sled_full, StorageError::NoSpace { .. }),
            "{sled_full}"
        );
    }
}

#[cfg(test)]
mod blob_tests {
    use super::*;

    fn dir_size(p: &Path) -> u64 {
        std::fs::read_dir(p)
            .map(|rd| {
                rd.flatten()
                    .map(|e| match e.metadata() {
                        Ok(m) if m.is_dir() => dir_size(&e.path()),
                        Ok(m) => m.len(),
                        Err(_) => 0,
                    })
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Found by the 30-minute chaos soak: a master data node's storage grew to 4.6 GB for
    /// about 10 MB of live rows. sled 0.34 keeps a value over its inline limit in a file of
    /// its own under `blobs/` and does not delete the file when the value is removed, so
    /// every replaced 10,000-row block (an update rewrites it) left its old bytes on disk.
    #[test]
    fn regression_replaced_blocks_leaked_sled_blob_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Storage::open(dir.path()).expect("open");
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
        s.db.flush().expect("flush");
        assert_eq!(s.chunk_blocks(c).expect("read"), vec![big(60)]);
        let size = dir_size(dir.path());
        // 60 versions of 400 KB would be 24 MB; one live version and sled's segments are a
        // few MB.
        assert!(
            size < 12 << 20,
            "the storage holds {size} bytes for one 400 KB block"
        );
        let blobs = std::fs::read_dir(dir.path().join("blobs"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(
            blobs, 0,
            "no sled value or node is large enough to be a blob file"
        );
    }
}
