//! The participant side of two-phase commit, and reads of local chunks.
//!
//! `prepare` takes the locks of every chunk a transaction touches (waiting at most
//! `partitionLockTimeoutMs`), computes the chunks' new blocks, and stores them with the
//! transaction's record durably (nothing visible yet). `commit` and `abort` finish it and
//! release the locks. After a restart, every prepared transaction takes its locks again and
//! asks the controller for its outcome (see `resolve.rs` beside this file).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use xrepl_core::catalog::ColumnDef;
use xrepl_core::value::{DataType, Scalar, ScalarKey, Value, Vector};
use xrepl_proto::rpc::{ErrorCode, ParticipantReply, ParticipantRequest, RemoteError};
use xrepl_proto::txn::{
    row_checksum, ChunkAction, ChunkId, ChunkOp, ChunkSum, ColExpr, Partial, Scan, ScanResult,
    ScanShape,
};
use xrepl_query::ops;

use crate::compute::{Aggregate, EvalColumns};
use crate::failpoint::crash_point;
use crate::storage::{project, Block, Manifest, Prepared, Storage, StorageError, BLOCK_ROWS};

/// Chunk locks held by transactions on this node.
#[derive(Default)]
pub struct ChunkLocks {
    /// The holder of each locked chunk, and whether it spans several nodes (it may be waiting
    /// on another node while it holds this lock).
    held: Mutex<HashMap<ChunkId, (u64, bool)>>,
    released: Notify,
}

impl ChunkLocks {
    /// Takes every lock of `chunks` for `tid` at once (all or none, so no deadlock on one
    /// node), waiting up to `timeout`; `Err` names a chunk still held, its transaction, and
    /// whether this one gave way to it.
    /// With `gives_way` (a transaction on several nodes) it fails at once when an older
    /// transaction on several nodes (a smaller tid) holds a chunk: waits between such
    /// transactions then only ever go from older to younger, and a transaction on one node
    /// waits for nothing while it holds locks, so no wait is ever part of a circle.
    pub async fn acquire(
        &self,
        tid: u64,
        chunks: &[ChunkId],
        timeout: Duration,
        gives_way: bool,
    ) -> Result<(), (ChunkId, u64, bool)> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.released.notified();
            {
                let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
                let holder = |c: &ChunkId| {
                    held.get(c)
                        .filter(|(t, _)| *t != tid)
                        .map(|(t, several)| (*c, *t, *several))
                };
                let older = || {
                    chunks
                        .iter()
                        .filter_map(holder)
                        .find(|(_, t, several)| *several && *t < tid)
                };
                match chunks.iter().find_map(holder) {
                    None => {
                        for c in chunks {
                            held.insert(*c, (tid, gives_way));
                        }
                        return Ok(());
                    }
                    Some(b) if gives_way => {
                        if let Some((c, t, _)) = older() {
                            return Err((c, t, true));
                        }
                        if Instant::now() >= deadline {
                            return Err((b.0, b.1, false));
                        }
                    }
                    Some(b) if Instant::now() >= deadline => return Err((b.0, b.1, false)),
                    Some(_) => {}
                }
            }
            let _ = tokio::time::timeout_at(deadline.into(), notified).await;
        }
    }

    pub fn release(&self, tid: u64) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.retain(|_, (t, _)| *t != tid);
        drop(held);
        self.released.notify_waiters();
    }
}

/// Why a prepare or a scan failed.
#[derive(Debug, thiserror::Error)]
pub enum ParticipantError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The request cannot succeed as it stands (bad data, bad expression).
    #[error("{0}")]
    Invalid(String),
    #[error("partition {label} is locked by transaction {holder}; gave up after {waited_ms} ms")]
    Locked {
        label: String,
        holder: u64,
        waited_ms: u128,
    },
    #[error("partition {label} is locked by the older transaction {holder}; this transaction spans several data nodes and gave way to it (run it again)")]
    GaveWay { label: String, holder: u64 },
}

impl ParticipantError {
    /// The error as the coordinator (and, through it, the user or a slave's task status)
    /// sees it, from data node `alias` whose storage is at `storage`.
    pub fn to_remote(&self, alias: &str) -> RemoteError {
        let code = match self {
            ParticipantError::Storage(_) => ErrorCode::Internal,
            ParticipantError::Invalid(_) => ErrorCode::Runtime,
            ParticipantError::Locked { .. } => ErrorCode::Unavailable,
            ParticipantError::GaveWay { .. } => ErrorCode::Conflict,
        };
        // The message travels on as the reason of an abort or a failed replay, without the
        // node: a full disk names it, and where.
        let message = match self {
            ParticipantError::Storage(StorageError::NoSpace { path, detail }) => format!(
                "no space left on the device of data node {alias} ({}): {detail}",
                path.display()
            ),
            _ => self.to_string(),
        };
        RemoteError {
            node: alias.to_string(),
            code,
            message,
        }
    }
}

/// A data node's part in transactions and reads: its chunk locks and its storage.
pub struct Participant {
    pub storage: Arc<Storage>,
    pub locks: ChunkLocks,
    pub lock_timeout: Duration,
    /// Transactions settled here (committed, aborted, or found with nothing prepared) and not
    /// yet reported to the controller, which forgets a decision once every participant has
    /// reported it (see `Coordinator::report_settled`).
    pub settled: std::sync::Mutex<Vec<u64>>,
}

/// Runs storage work that may block: inline when the caller is a session's thread (which
/// runs the coordinator there, so a local prepare or commit costs no hand-over between
/// threads), else with `block_in_place`, which hands this worker's other tasks to another
/// thread. A panic is caught and told as an error.
fn blocking<R>(
    what: &str,
    f: impl FnOnce() -> Result<R, ParticipantError>,
) -> Result<R, ParticipantError> {
    let run = || std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    let multi = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    let r = if multi {
        tokio::task::block_in_place(run)
    } else {
        run()
    };
    r.unwrap_or_else(|_| {
        Err(invalid(format!(
            "{what} failed: internal error (see the data node's log)"
        )))
    })
}

impl Participant {
    pub fn new(storage: Arc<Storage>, lock_timeout: Duration) -> Participant {
        Participant {
            storage,
            locks: ChunkLocks::default(),
            lock_timeout,
            settled: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Takes the settled transactions not yet reported.
    pub fn take_settled(&self) -> Vec<u64> {
        std::mem::take(&mut *self.settled.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Records `tid` settled here (it has nothing prepared here, and its outcome is known).
    pub fn mark_settled(&self, tid: u64) {
        self.settled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(tid);
    }

    /// Puts back settled transactions whose report failed.
    pub fn return_settled(&self, mut tids: Vec<u64>) {
        let mut s = self.settled.lock().unwrap_or_else(|p| p.into_inner());
        tids.append(&mut s);
        *s = tids;
    }
}

/// A transaction's changes under construction.
struct Work {
    tid: u64,
    next_uid: u64,
    manifests: BTreeMap<ChunkId, Option<Manifest>>,
    blocks: BTreeMap<(ChunkId, u64), Block>,
    old: Vec<(ChunkId, u64)>,
    rows: u64,
}

impl Work {
    fn uid(&mut self) -> Result<u64, String> {
        self.next_uid += 1;
        if self.next_uid >= 1 << 24 {
            return Err("a transaction may write at most 16 M blocks per node".into());
        }
        Ok((self.tid << 24) | self.next_uid)
    }
}

fn invalid(e: impl Into<String>) -> ParticipantError {
    ParticipantError::Invalid(e.into())
}

impl Participant {
    /// Answers a participant request, whoever sent it (this node's own coordinator included).
    pub async fn answer(
        self: &Arc<Self>,
        req: ParticipantRequest,
    ) -> Result<ParticipantReply, ParticipantError> {
        match req {
            ParticipantRequest::Prepare {
                tid,
                ops,
                gives_way,
            } => self
                .prepare(tid, ops, gives_way)
                .await
                .map(|rows| ParticipantReply::Prepared { rows }),
            ParticipantRequest::Commit { tid } => {
                crash_point("participant_before_commit");
                self.commit(tid).await.map(|()| ParticipantReply::Done)
            }
            ParticipantRequest::Abort { tid } => {
                self.abort(tid).await.map(|()| ParticipantReply::Done)
            }
            ParticipantRequest::Scan(scan) => self.scan(scan).await.map(ParticipantReply::Scanned),
        }
    }

    /// Prepares `ops` for `tid`; `gives_way` for a transaction on several nodes (see
    /// [`ChunkLocks::acquire`]).
    pub async fn prepare(
        self: &Arc<Self>,
        tid: u64,
        ops: Vec<ChunkOp>,
        gives_way: bool,
    ) -> Result<u64, ParticipantError> {
        let mut chunks: Vec<ChunkId> = ops.iter().map(|o| o.chunk).collect();
        chunks.sort();
        chunks.dedup();
        self.locks
            .acquire(tid, &chunks, self.lock_timeout, gives_way)
            .await
            .map_err(|(c, holder, gave_way)| {
                let label = ops.iter().find(|o| o.chunk == c).map_or_else(
                    || format!("{}/{}", c.table, c.partition),
                    |o| o.label.clone(),
                );
                if gave_way {
                    ParticipantError::GaveWay { label, holder }
                } else {
                    ParticipantError::Locked {
                        label,
                        holder,
                        waited_ms: self.lock_timeout.as_millis(),
                    }
                }
            })?;
        let result = blocking("prepare", || self.prepare_blocking(tid, chunks, ops));
        if result.is_err() {
            self.locks.release(tid);
        } else {
            crash_point("participant_after_prepare");
        }
        result
    }

    fn prepare_blocking(
        &self,
        tid: u64,
        chunks: Vec<ChunkId>,
        ops: Vec<ChunkOp>,
    ) -> Result<u64, ParticipantError> {
        let mut w = Work {
            tid,
            next_uid: 0,
            manifests: BTreeMap::new(),
            blocks: BTreeMap::new(),
            old: Vec::new(),
            rows: 0,
        };
        for op in ops {
            self.apply(&mut w, op)?;
        }
        let prepared = Prepared {
            tid,
            chunks,
            manifests: w.manifests.into_iter().collect(),
            new_blocks: w.blocks.keys().copied().collect(),
            old_blocks: w.old,
            rows: w.rows,
            prepared_ms: chrono::Utc::now().timestamp_millis(),
        };
        self.storage.stage(&prepared, &w.blocks)?;
        Ok(prepared.rows)
    }

    /// A chunk's manifest as this transaction sees it.
    fn manifest_of(&self, w: &Work, c: ChunkId) -> Result<Manifest, ParticipantError> {
        match w.manifests.get(&c) {
            Some(Some(m)) => Ok(m.clone()),
            Some(None) => Ok(Manifest::default()),
            None => Ok(self.storage.manifest(c)?),
        }
    }

    /// One block as this transaction sees it (its own new blocks first).
    fn load(&self, w: &Work, c: ChunkId, uid: u64) -> Result<Block, ParticipantError> {
        if let Some(b) = w.blocks.get(&(c, uid)) {
            return Ok(b.clone());
        }
        self.storage.block(c, uid)?.ok_or_else(|| {
            invalid(format!(
                "block {uid} of chunk {}/{} is missing",
                c.table, c.partition
            ))
        })
    }

    /// Gives a chunk the blocks `keep` (from `old`) followed by `new`; blocks of `old` not
    /// kept are retired at commit (or dropped now if this transaction wrote them).
    fn replace(
        &self,
        w: &mut Work,
        c: ChunkId,
        old: &Manifest,
        keep: Vec<(u64, u32)>,
        new: Vec<Block>,
    ) -> Result<(), String> {
        let kept: HashSet<u64> = keep.iter().map(|(u, _)| *u).collect();
        for (uid, _) in &old.blocks {
            if !kept.contains(uid) && w.blocks.remove(&(c, *uid)).is_none() {
                w.old.push((c, *uid));
            }
        }
        let mut m = Manifest { blocks: keep };
        for b in new.into_iter().filter(|b| b.rows > 0) {
            let uid = w.uid()?;
            m.blocks.push((uid, b.rows));
            w.blocks.insert((c, uid), b);
        }
        w.manifests.insert(c, Some(m));
        Ok(())
    }

    /// Rewrites every block of a chunk with `f`, which returns the new columns and the rows it
    /// touched (`None`: the block is unchanged and kept as it is).
    fn rewrite(
        &self,
        w: &mut Work,
        c: ChunkId,
        defs: &[ColumnDef],
        mut f: impl FnMut(&[Vector], usize) -> Result<Option<(Vec<Vector>, u64)>, ParticipantError>,
    ) -> Result<(), ParticipantError> {
        let old = self.manifest_of(w, c)?;
        let mut keep = Vec::new();
        let mut new = Vec::new();
        for (uid, rows) in &old.blocks {
            let b = self.load(w, c, *uid)?;
            let cols = project(&b, defs).map_err(invalid)?;
            match f(&cols, b.rows as usize)? {
                None => keep.push((*uid, *rows)),
                Some((cols, touched)) => {
                    new.push(to_block(defs, cols));
                    w.rows += touched;
                }
            }
        }
        self.replace(w, c, &old, keep, new).map_err(invalid)
    }

    fn apply(&self, w: &mut Work, op: ChunkOp) -> Result<(), ParticipantError> {
        let c = op.chunk;
        let defs = &op.columns;
        match op.action {
            ChunkAction::Append { columns } => {
                let rows = columns.first().map_or(0, |(_, v)| v.len());
                check_columns(defs, &columns)?;
                let old = self.manifest_of(w, c)?;
                let merge = tail_to_merge(&old.blocks, rows);
                let mut keep = old.blocks.clone();
                let tail = keep.split_off(keep.len() - merge);
                let mut data = columns;
                for (uid, _) in tail.iter().rev() {
                    let b = self.load(w, c, *uid)?;
                    data = concat_block(&b, defs, data).map_err(invalid)?;
                }
                self.replace(w, c, &old, keep, split_blocks(data))
                    .map_err(invalid)?;
                w.rows += rows as u64;
            }
            ChunkAction::Upsert { columns, keys } => {
                check_columns(defs, &columns)?;
                let old = self.manifest_of(w, c)?;
                let blocks = old
                    .blocks
                    .iter()
                    .map(|(uid, _)| self.load(w, c, *uid))
                    .collect::<Result<Vec<_>, _>>()?;
                let (merged, touched) = upsert(&blocks, defs, columns, &keys).map_err(invalid)?;
                self.replace(w, c, &old, Vec::new(), split_blocks(merged))
                    .map_err(invalid)?;
                w.rows += touched;
            }
            ChunkAction::Update { set, filter } => {
                self.rewrite(w, c, defs, |cols, rows| {
                    let mask = mask(filter.as_ref(), defs, cols, rows)?;
                    let hits = mask.iter().filter(|m| **m).count();
                    if hits == 0 {
                        return Ok(None);
                    }
                    let mut out = cols.to_vec();
                    for (name, e) in &set {
                        let i = defs
                            .iter()
                            .position(|d| &d.name == name)
                            .ok_or_else(|| invalid(format!("column '{name}' does not exist")))?;
                        let lookup = |n: &str| {
                            defs.iter()
                                .position(|d| d.name == n)
                                .and_then(|j| cols.get(j))
                        };
                        let v = match e.eval(&lookup).map_err(invalid)? {
                            Value::Scalar(s) => ops::cast_scalar(&s, defs[i].ty)
                                .map(|s| broadcast(&s, rows))
                                .map_err(invalid)?,
                            Value::Vector(v) => ops::cast(&v, defs[i].ty).map_err(invalid)?,
                            other => {
                                return Err(invalid(format!(
                                    "cannot set a column to {}",
                                    other.kind_name()
                                )))
                            }
                        };
                        out[i] = blend(&mask, &v, &out[i]).map_err(invalid)?;
                    }
                    Ok(Some((out, hits as u64)))
                })?;
            }
            ChunkAction::Delete { filter } => {
                self.rewrite(w, c, defs, |cols, rows| {
                    let mask = mask(filter.as_ref(), defs, cols, rows)?;
                    let hits = mask.iter().filter(|m| **m).count();
                    if hits == 0 {
                        return Ok(None);
                    }
                    let stay: Vec<bool> = mask.iter().map(|m| !m).collect();
                    Ok(Some((
                        cols.iter().map(|v| ops::filter(v, &stay)).collect(),
                        hits as u64,
                    )))
                })?;
            }
            ChunkAction::Truncate | ChunkAction::Drop => {
                let old = self.manifest_of(w, c)?;
                w.rows += old.rows();
                self.replace(w, c, &old, Vec::new(), Vec::new())
                    .map_err(invalid)?;
                if matches!(op.action, ChunkAction::Drop) {
                    w.manifests.insert(c, None);
                }
            }
            ChunkAction::Convert { column, to } => {
                let i = defs.iter().position(|d| d.id == column);
                self.rewrite(w, c, defs, |cols, rows| {
                    let mut out = cols.to_vec();
                    if let Some(i) = i {
                        out[i] = ops::cast(&out[i], to).map_err(invalid)?;
                    }
                    Ok(Some((out, rows as u64)))
                })?;
            }
            ChunkAction::Hold => {}
        }
        Ok(())
    }

    /// Makes a prepared transaction visible and releases its locks.
    pub async fn commit(self: &Arc<Self>, tid: u64) -> Result<(), ParticipantError> {
        self.settle(tid, Storage::commit).await
    }

    /// Forgets a prepared transaction and releases its locks.
    pub async fn abort(self: &Arc<Self>, tid: u64) -> Result<(), ParticipantError> {
        self.settle(tid, Storage::abort).await
    }

    async fn settle(
        self: &Arc<Self>,
        tid: u64,
        step: fn(&Storage, u64) -> Result<Option<Prepared>, StorageError>,
    ) -> Result<(), ParticipantError> {
        let r = blocking("settle", || {
            step(&self.storage, tid).map_err(ParticipantError::from)
        });
        self.locks.release(tid);
        if r.is_ok() {
            self.settled
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(tid);
        }
        r.map(|_| ())
    }

    pub async fn scan(self: &Arc<Self>, scan: Scan) -> Result<ScanResult, ParticipantError> {
        blocking("scan", || self.scan_blocking(&scan))
    }

    fn scan_blocking(&self, scan: &Scan) -> Result<ScanResult, ParticipantError> {
        let defs = &scan.columns;
        if scan.shape == ScanShape::Checksum {
            return self.checksum_blocking(&scan.chunks, defs);
        }
        let mut rows_out: Option<Vec<Vector>> = None;
        let mut groups: Vec<(Option<Scalar>, Vec<Partial>)> = Vec::new();
        let mut group_index: HashMap<Option<ScalarKey>, usize> = HashMap::new();
        for c in &scan.chunks {
            for b in self.storage.chunk_blocks(*c)? {
                let cols = project(&b, defs).map_err(invalid)?;
                let rows = b.rows as usize;
                let m = mask(scan.filter.as_ref(), defs, &cols, rows)?;
                let col = |n: &str| -> Result<Vector, ParticipantError> {
                    let i = defs
                        .iter()
                        .position(|d| d.name == n)
                        .ok_or_else(|| invalid(format!("column '{n}' does not exist")))?;
                    Ok(ops::filter(&cols[i], &m))
                };
                match &scan.shape {
                    ScanShape::Rows { project } => {
                        let picked = project
                            .iter()
                            .map(|n| col(n))
                            .collect::<Result<Vec<_>, _>>()?;
                        rows_out = Some(match rows_out.take() {
                            None => picked,
                            Some(acc) => acc
                                .iter()
                                .zip(&picked)
                                .map(|(a, b)| ops::concat(a, b))
                                .collect::<Result<_, _>>()
                                .map_err(invalid)?,
                        });
                    }
                    ScanShape::Checksum => {}
                    ScanShape::Aggregate { group_by, aggs } => {
                        let hits = m.iter().filter(|x| **x).count();
                        let values: Vec<Option<Vector>> = aggs
                            .iter()
                            .map(|(_, c)| c.as_deref().map(col).transpose())
                            .collect::<Result<_, _>>()?;
                        let partial =
                            |v: &Option<Vector>,
                             idx: Option<&[usize]>|
                             -> Result<Partial, ParticipantError> {
                                match (v, idx) {
                                    (None, None) => Ok(Partial {
                                        count: hits as i64,
                                        ..Partial::empty()
                                    }),
                                    (None, Some(i)) => Ok(Partial {
                                        count: i.len() as i64,
                                        ..Partial::empty()
                                    }),
                                    (Some(v), None) => Partial::of(v).map_err(invalid),
                                    (Some(v), Some(i)) => {
                                        Partial::of(&ops::take_indices(v, i)).map_err(invalid)
                                    }
                                }
                            };
                        match group_by {
                            None => {
                                let ps = values.iter().map(|v| partial(v, None)).collect::<Result<
                                    Vec<_>,
                                    _,
                                >>(
                                )?;
                                merge_group(&mut groups, &mut group_index, None, ps)?;
                            }
                            Some(g) => {
                                let keys = col(g)?;
                                let mut by_key: Vec<(Scalar, Vec<usize>)> = Vec::new();
                                let mut pos: HashMap<ScalarKey, usize> = HashMap::new();
                                for i in 0..keys.len() {
                                    let k = keys
                                        .get(i)
                                        .unwrap_or(Scalar::Int(xrepl_core::value::NULL_INT));
                                    let slot = *pos.entry(k.key()).or_insert_with(|| {
                                        by_key.push((k.clone(), Vec::new()));
                                        by_key.len() - 1
                                    });
                                    by_key[slot].1.push(i);
                                }
                                for (k, idx) in by_key {
                                    let ps = values
                                        .iter()
                                        .map(|v| partial(v, Some(&idx)))
                                        .collect::<Result<Vec<_>, _>>()?;
                                    merge_group(&mut groups, &mut group_index, Some(k), ps)?;
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(match &scan.shape {
            ScanShape::Rows { project } => ScanResult::Rows(rows_out.unwrap_or_else(|| {
                project
                    .iter()
                    .map(|n| {
                        Vector::empty(
                            defs.iter()
                                .find(|d| &d.name == n)
                                .map_or(DataType::Int, |d| d.ty),
                        )
                    })
                    .collect()
            })),
            ScanShape::Aggregate { group_by, aggs } => {
                if group_by.is_none() && groups.is_empty() {
                    groups.push((None, aggs.iter().map(|_| Partial::empty()).collect()));
                }
                let keys = match group_by {
                    None => None,
                    Some(g) => {
                        let t = defs
                            .iter()
                            .find(|d| &d.name == g)
                            .map_or(DataType::Int, |d| d.ty);
                        let mut v = Vector::empty(t);
                        for (k, _) in &groups {
                            if let Some(k) = k {
                                v.push(k.clone()).map_err(invalid)?;
                            }
                        }
                        Some(v)
                    }
                };
                let n = aggs.len();
                let mut partials = vec![Vec::new(); n];
                for (_, ps) in groups {
                    for (i, p) in ps.into_iter().enumerate().take(n) {
                        partials[i].push(p);
                    }
                }
                ScanResult::Groups { keys, partials }
            }
            ScanShape::Checksum => ScanResult::Checksums(Vec::new()),
        })
    }

    /// Each chunk's rows and checksum (every column of `defs`, in order; every row).
    fn checksum_blocking(
        &self,
        chunks: &[ChunkId],
        defs: &[ColumnDef],
    ) -> Result<ScanResult, ParticipantError> {
        let mut out = Vec::with_capacity(chunks.len());
        for c in chunks {
            let mut sum = ChunkSum {
                partition: c.partition,
                rows: 0,
                checksum: 0,
            };
            for b in self.storage.chunk_blocks(*c)? {
                let cols = project(&b, defs).map_err(invalid)?;
                for i in 0..b.rows as usize {
                    sum.checksum = sum.checksum.wrapping_add(row_checksum(&cols, i));
                }
                sum.rows += u64::from(b.rows);
            }
            out.push(sum);
        }
        Ok(ScanResult::Checksums(out))
    }
}

fn merge_group(
    groups: &mut Vec<(Option<Scalar>, Vec<Partial>)>,
    index: &mut HashMap<Option<ScalarKey>, usize>,
    key: Option<Scalar>,
    ps: Vec<Partial>,
) -> Result<(), ParticipantError> {
    let name = key.as_ref().map(Scalar::key);
    match index.get(&name) {
        Some(i) => {
            for (acc, p) in groups[*i].1.iter_mut().zip(&ps) {
                acc.merge(p).map_err(invalid)?;
            }
        }
        None => {
            index.insert(name, groups.len());
            groups.push((key, ps));
        }
    }
    Ok(())
}

fn mask(
    filter: Option<&ColExpr>,
    defs: &[ColumnDef],
    cols: &[Vector],
    rows: usize,
) -> Result<Vec<bool>, ParticipantError> {
    match filter {
        None => Ok(vec![true; rows]),
        Some(f) => {
            let lookup = |n: &str| {
                defs.iter()
                    .position(|d| d.name == n)
                    .and_then(|i| cols.get(i))
            };
            f.mask(&lookup, rows).map_err(invalid)
        }
    }
}

/// Checks that appended columns match the table's (ids and types, equal lengths).
fn check_columns(defs: &[ColumnDef], columns: &[(u32, Vector)]) -> Result<(), ParticipantError> {
    if columns.len() != defs.len() {
        return Err(invalid(format!(
            "expected {} columns, got {}",
            defs.len(),
            columns.len()
        )));
    }
    let rows = columns.first().map_or(0, |(_, v)| v.len());
    for (d, (id, v)) in defs.iter().zip(columns) {
        if d.id != *id || d.ty != v.data_type() || v.len() != rows {
            return Err(invalid(format!(
                "column '{}' expects {} ({} rows), got {} ({} rows)",
                d.name,
                d.ty,
                rows,
                v.data_type(),
                v.len()
            )));
        }
    }
    Ok(())
}

fn to_block(defs: &[ColumnDef], cols: Vec<Vector>) -> Block {
    let rows = cols.first().map_or(0, Vector::len) as u32;
    Block {
        rows,
        columns: defs.iter().map(|d| d.id).zip(cols).collect(),
    }
}

/// The rows of `tail` followed by `data`.
fn concat_block(
    tail: &Block,
    defs: &[ColumnDef],
    data: Vec<(u32, Vector)>,
) -> Result<Vec<(u32, Vector)>, String> {
    let old = project(tail, defs)?;
    old.iter()
        .zip(data)
        .map(|(a, (id, b))| Ok((id, ops::concat(a, &b)?)))
        .collect()
}

/// How many blocks at the end of a chunk an append of `rows` rows rewrites together with its
/// own rows.
///
/// A large append (a block or more) tops up the last block if it is short. A small one
/// merges with the trailing blocks only while each is at most twice what is merged so far
/// (and the result fits in a block), like the carries of a binary counter: rewriting the
/// short last block on every small append (as before) cost each 10-row transaction a rewrite
/// of up to 10,000 rows; now a row is rewritten about log2(BLOCK_ROWS / rows) times in all,
/// and a chunk's short blocks stay as few.
fn tail_to_merge(blocks: &[(u64, u32)], rows: usize) -> usize {
    if rows >= BLOCK_ROWS {
        return usize::from(
            blocks
                .last()
                .is_some_and(|(_, n)| (*n as usize) < BLOCK_ROWS),
        );
    }
    let mut merged = rows;
    let mut k = 0;
    for (_, n) in blocks.iter().rev() {
        let n = *n as usize;
        if n + merged > BLOCK_ROWS || n > 2 * merged {
            break;
        }
        merged += n;
        k += 1;
    }
    k
}

/// Cuts columns into blocks of at most [`BLOCK_ROWS`] rows.
fn split_blocks(mut data: Vec<(u32, Vector)>) -> Vec<Block> {
    let rows = data.first().map_or(0, |(_, v)| v.len());
    if rows <= BLOCK_ROWS {
        return vec![Block {
            rows: rows as u32,
            columns: data,
        }];
    }
    // From the last block back, each cut off the columns' ends: the values are moved once.
    let starts: Vec<usize> = (0..rows).step_by(BLOCK_ROWS).collect();
    let mut blocks: Vec<Block> = Vec::with_capacity(starts.len());
    let mut end = rows;
    for &start in starts.iter().rev() {
        blocks.push(Block {
            rows: (end - start) as u32,
            columns: data
                .iter_mut()
                .map(|(id, v)| (*id, ops::split_off(v, start)))
                .collect(),
        });
        end = start;
    }
    blocks.reverse();
    blocks
}

fn broadcast(s: &Scalar, n: usize) -> Vector {
    let mut v = Vector::empty(s.data_type());
    for _ in 0..n {
        let _ = v.push(s.clone());
    }
    v
}

/// `new` where `mask` is true, `old` elsewhere.
fn blend(mask: &[bool], new: &Vector, old: &Vector) -> Result<Vector, String> {
    let idx: Vec<usize> = (0..old.len()).collect();
    let mut out = Vector::empty(old.data_type());
    for i in idx {
        let s = if mask.get(i).copied().unwrap_or(false) {
            new.get(i)
        } else {
            old.get(i)
        };
        out.push(s.ok_or("row out of range")?)?;
    }
    Ok(out)
}

/// Merges `data` into a chunk by `keys`: matching rows are replaced, others appended.
/// Returns the chunk's new columns and how many rows were written.
fn upsert(
    old: &[Block],
    defs: &[ColumnDef],
    data: Vec<(u32, Vector)>,
    keys: &[u32],
) -> Result<(Vec<(u32, Vector)>, u64), String> {
    let mut cols: Vec<Vector> = defs.iter().map(|d| Vector::empty(d.ty)).collect();
    for b in old {
        for (acc, v) in cols.iter_mut().zip(project(b, defs)?) {
            *acc = ops::concat(acc, &v)?;
        }
    }
    let key_pos: Vec<usize> = keys
        .iter()
        .map(|k| {
            defs.iter()
                .position(|d| d.id == *k)
                .ok_or("unknown key column")
        })
        .collect::<Result<_, _>>()?;
    let key_of = |cols: &[Vector], r: usize| -> String {
        key_pos
            .iter()
            .map(|p| {
                cols.get(*p)
                    .and_then(|c| c.get(r))
                    .map(|s| s.render())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\u{1}")
    };
    let mut at: HashMap<String, usize> = (0..cols.first().map_or(0, Vector::len))
        .map(|r| (key_of(&cols, r), r))
        .collect();
    let new_cols: Vec<Vector> = data.into_iter().map(|(_, v)| v).collect();
    let n = new_cols.first().map_or(0, Vector::len);
    let mut replace: Vec<(usize, usize)> = Vec::new();
    let mut append: Vec<usize> = Vec::new();
    let mut total = cols.first().map_or(0, Vector::len);
    for r in 0..n {
        let k = key_of(&new_cols, r);
        match at.get(&k) {
            Some(existing)
                if *existing < total && !append.is_empty() && *existing >= total - append.len() =>
            {
                // A key repeated within the new rows: the later row wins.
                let j = append.len() - (total - existing);
                append[j] = r;
            }
            Some(existing) => replace.push((*existing, r)),
            None => {
                at.insert(k, total);
                append.push(r);
                total += 1;
            }
        }
    }
    // One pass per column: each existing row takes its replacement, if any.
    let mut from_new: Vec<Option<usize>> = vec![None; cols.first().map_or(0, Vector::len)];
    for (dst, r) in &replace {
        if let Some(slot) = from_new.get_mut(*dst) {
            *slot = Some(*r);
        }
    }
    for (i, c) in cols.iter_mut().enumerate() {
        let src = &new_cols[i];
        if !replace.is_empty() {
            let mut out = Vector::empty(c.data_type());
            for (j, repl) in from_new.iter().enumerate() {
                let s = match repl {
                    Some(r) => src.get(*r),
                    None => c.get(j),
                };
                out.push(s.ok_or("row out of range")?)?;
            }
            *c = out;
        }
        if !append.is_empty() {
            *c = ops::concat(c, &ops::take_indices(src, &append))?;
        }
    }
    Ok((defs.iter().map(|d| d.id).zip(cols).collect(), n as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found with DolphinDB's Python client: four sessions appending to partitions on both
    /// data nodes at once each locked one node and waited for the other until the lock
    /// timeout, then failed. A transaction on several nodes now waits only for younger ones.
    #[tokio::test]
    async fn a_transaction_on_several_nodes_gives_way_to_an_older_one_and_waits_for_a_younger() {
        let locks = Arc::new(ChunkLocks::default());
        let (a, b) = (
            ChunkId {
                table: 1,
                partition: 1,
            },
            ChunkId {
                table: 1,
                partition: 2,
            },
        );
        let long = Duration::from_secs(5);
        locks.acquire(10, &[a], long, true).await.expect("free");
        locks.acquire(30, &[b], long, true).await.expect("free");
        // Younger than the holder of `a`: gives way at once, even with `b` held by a younger.
        let started = Instant::now();
        assert_eq!(
            locks.acquire(20, &[b, a], long, true).await,
            Err((a, 10, true))
        );
        assert!(started.elapsed() < Duration::from_secs(1));
        // On one node it waits, whatever the age (it holds nothing while it waits).
        assert_eq!(
            locks
                .acquire(20, &[a], Duration::from_millis(50), false)
                .await,
            Err((a, 10, false))
        );
        // An older holder on one node waits for nothing: a transaction on several nodes
        // waits for it instead of giving way.
        let c = ChunkId {
            table: 1,
            partition: 3,
        };
        locks.acquire(1, &[c], long, false).await.expect("free");
        assert_eq!(
            locks
                .acquire(20, &[c], Duration::from_millis(50), true)
                .await,
            Err((c, 1, false))
        );
        // Older than the holder of `b`: waits until it is released.
        let waiter = {
            let locks = locks.clone();
            tokio::spawn(async move { locks.acquire(5, &[b], long, true).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiter.is_finished(),
            "an older transaction waits for a younger"
        );
        locks.release(30);
        assert_eq!(waiter.await.expect("joined"), Ok(()));
        let e = ParticipantError::GaveWay {
            label: "dfs://db/t/2023.01.01".into(),
            holder: 10,
        }
        .to_remote("dnode1");
        assert_eq!(e.code, ErrorCode::Conflict);
    }

    /// Regression: a full disk on a participant reached the slave's task status as `storage:
    /// IO error: No space left on device (os error 28)`, naming neither the data node nor the
    /// storage.
    #[test]
    fn a_full_disk_error_reached_the_status_without_the_node_or_the_path() {
        let e = ParticipantError::Storage(StorageError::NoSpace {
            path: "/data/dnode1/storage".into(),
            detail: "No space left on device (os error 28)".into(),
        })
        .to_remote("dnode1");
        assert_eq!(
            e.message,
            "no space left on the device of data node dnode1 (/data/dnode1/storage): No space left on device (os error 28)"
        );
        // Lasting: it counts towards the retry limit, so the task ends FAILED with this reason.
        assert_eq!(e.code, ErrorCode::Internal);
    }

    /// Small appends rewrote the chunk's whole short last block every time (up to 10,000
    /// rows for a 10-row transaction). Now they merge like a binary counter: few short
    /// blocks, and little rewritten per append.
    #[test]
    fn small_appends_merge_like_a_binary_counter() {
        let mut blocks: Vec<(u64, u32)> = Vec::new();
        let mut rewritten = 0usize;
        for i in 0..3_000u64 {
            let k = tail_to_merge(&blocks, 10);
            let tail = blocks.split_off(blocks.len() - k);
            let merged: u32 = 10 + tail.iter().map(|(_, n)| *n).sum::<u32>();
            rewritten += merged as usize - 10;
            blocks.push((i, merged));
            let short = blocks
                .iter()
                .filter(|(_, n)| (*n as usize) < BLOCK_ROWS)
                .count();
            assert!(
                short <= 12,
                "{short} short blocks after {i} appends: {blocks:?}"
            );
        }
        let rows: u32 = blocks.iter().map(|(_, n)| *n).sum();
        assert_eq!(rows, 30_000);
        // Topping up the last block rewrote about 5,000 rows per append here (15 M in all).
        assert!(rewritten < 30_000 * 12, "{rewritten} rows rewritten");
        // A large append tops up a short last block and leaves full ones alone.
        assert_eq!(tail_to_merge(&[(1, 10_000), (2, 300)], 10_000), 1);
        assert_eq!(tail_to_merge(&[(1, 10_000)], 10_000), 0);
        assert_eq!(tail_to_merge(&[], 20), 0);
    }
}
