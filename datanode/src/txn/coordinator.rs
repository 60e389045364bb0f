//! The coordinator side of two-phase commit, and distributed reads.
//!
//! A transaction: a tid from this node's lease (`LeaseTids`, 1,000 at a time); `Prepare` on every participant (in
//! parallel; this node calls itself directly); the decision with the transaction's catalog
//! changes recorded durably by the controller (`Decide`); then `Commit` (or `Abort`) on every
//! participant. The client hears of the commit only after the decision is flushed and every
//! reachable participant has made the data visible; a participant that missed the message
//! learns the outcome from the controller when it resolves its prepared transactions.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use xrepl_core::catalog::CatalogChange;
use xrepl_core::cluster_key::ClusterKey;
use xrepl_core::config::DataNodeConfig;
use xrepl_proto::rpc::{
    CatalogCheck, ErrorCode, ParticipantReply, ParticipantRequest, RemoteError, RpcClient,
};
use xrepl_proto::task::{ReplayOf, TaskData, TaskMeta, INLINE_DATA_MAX, TURNED_ON_WHILE_RUNNING};
use xrepl_proto::txn::{Scan, ScanResult, Verdict};

use super::participant::Participant;
use crate::error::refusal;
use crate::failpoint::{crash_point, pause_point};
use crate::link::{ControllerLink, Decide};
use crate::plan::OpsByNode;
use crate::replication::taskstore::{encode_data, TaskStore, TaskStoreError};

const PEER_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Time limit of one participant call (a large prepare writes a lot).
const PEER_CALL_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a coordinator keeps asking an unreachable controller to record its decision.
const DECIDE_RETRY_FOR: Duration = Duration::from_secs(30);

/// The replication task a transaction makes if its database is replicated.
pub struct TxTask {
    pub meta: TaskMeta,
    /// The task data, when the coordinator saw the database replicated on a master.
    pub data: Option<TaskData>,
}

/// Tids leased per round trip to the controller.
const TID_BATCH: u32 = 1_000;

/// What a transaction is, for the coordinator: its changes, its operations, and what the
/// controller records with its decision.
pub struct Tx {
    pub changes: Vec<CatalogChange>,
    pub ops: OpsByNode,
    /// The replication task it makes if its database is replicated (a master).
    pub task: Option<TxTask>,
    /// The tasks it replays, in order (a slave).
    pub replay: Vec<ReplayOf>,
    /// The cached catalog its operations were planned with, checked by the controller.
    pub check: Option<CatalogCheck>,
    /// Reads the task's data once every participant has prepared (holds its locks), on the
    /// blocking pool: a bootstrap's chunk snapshot reads the chunk as of the commit.
    pub read_task: Option<ReadTask>,
}

/// See [`Tx::read_task`].
pub type ReadTask = Box<dyn FnOnce() -> Result<TaskData, String> + Send>;

impl Tx {
    /// A transaction of changes and operations only.
    pub fn new(changes: Vec<CatalogChange>, ops: OpsByNode) -> Tx {
        Tx {
            changes,
            ops,
            task: None,
            replay: vec![],
            check: None,
            read_task: None,
        }
    }
}

/// The tids this node leased and has not used yet: `next..=last`.
#[derive(Default)]
struct TidPool {
    next: u64,
    last: u64,
}

/// Runs transactions and reads that this data node coordinates.
pub struct Coordinator {
    cfg: DataNodeConfig,
    link: Arc<ControllerLink>,
    pub participant: Arc<Participant>,
    /// Connections to the other data nodes, made when first needed.
    peers: DashMap<String, RpcClient>,
    /// Task data of the transactions this node coordinates, on a replication master.
    tasks: Option<Arc<TaskStore>>,
    /// The cluster key, proved on every connection to another data node.
    key: ClusterKey,
    tids: std::sync::Mutex<TidPool>,
    /// Held while a new lease is fetched, so that one round trip serves every waiter.
    leasing: tokio::sync::Mutex<()>,
}

impl Coordinator {
    pub fn new(
        cfg: DataNodeConfig,
        link: Arc<ControllerLink>,
        participant: Arc<Participant>,
        tasks: Option<Arc<TaskStore>>,
        key: ClusterKey,
    ) -> Coordinator {
        Coordinator {
            cfg,
            key,
            link,
            participant,
            peers: DashMap::new(),
            tasks,
            tids: std::sync::Mutex::new(TidPool::default()),
            leasing: tokio::sync::Mutex::new(()),
        }
    }

    fn take_tid(&self) -> Option<u64> {
        let mut p = self.tids.lock().unwrap_or_else(|e| e.into_inner());
        (p.next != 0 && p.next <= p.last).then(|| {
            p.next += 1;
            p.next - 1
        })
    }

    /// A new transaction's tid: the next of this node's lease, leasing more from the
    /// controller (as the user behind `token`) when it is used up.
    pub async fn next_tid(&self, token: &str) -> Result<u64, RemoteError> {
        if let Some(t) = self.take_tid() {
            return Ok(t);
        }
        let _leasing = self.leasing.lock().await;
        if let Some(t) = self.take_tid() {
            return Ok(t);
        }
        let (first, last) = self.link.lease_tids(token, TID_BATCH).await?;
        let mut p = self.tids.lock().unwrap_or_else(|e| e.into_inner());
        p.next = first + 1;
        p.last = last;
        Ok(first)
    }

    fn error(&self, code: ErrorCode, message: impl Into<String>) -> RemoteError {
        refusal(&self.cfg.alias, code, message)
    }

    /// Answers a participant request, whoever sent it.
    pub async fn participate(
        &self,
        req: ParticipantRequest,
    ) -> Result<ParticipantReply, RemoteError> {
        self.participant
            .answer(req)
            .await
            .map_err(|e| e.to_remote(&self.cfg.alias))
    }

    async fn peer(&self, alias: &str) -> Result<RpcClient, RemoteError> {
        if let Some(c) = self
            .peers
            .get(alias)
            .map(|c| c.clone())
            .filter(RpcClient::is_open)
        {
            return Ok(c);
        }
        let node = self.cfg.nodes.datanode(alias).ok_or_else(|| {
            self.error(
                ErrorCode::NotFound,
                format!("'{alias}' is not a data node of this cluster"),
            )
        })?;
        let c = RpcClient::connect_member(
            &node.site(),
            &self.key,
            &self.link.tls().cluster,
            self.cfg.max_frame_size,
            PEER_CONNECT_TIMEOUT,
        )
        .await
        .map_err(|e| {
            self.error(
                ErrorCode::Unavailable,
                format!("data node {alias} is unreachable: {e}"),
            )
        })?;
        self.peers.insert(alias.to_string(), c.clone());
        Ok(c)
    }

    /// Sends a participant request to data node `alias` (this node answers itself directly).
    pub async fn call_participant(
        &self,
        alias: &str,
        req: ParticipantRequest,
    ) -> Result<ParticipantReply, RemoteError> {
        if alias == self.cfg.alias {
            return self.participate(req).await;
        }
        let peer = self.peer(alias).await?;
        peer.call_timeout(req, PEER_CALL_TIMEOUT)
            .await
            .map_err(|e| self.error(ErrorCode::Unavailable, format!("data node {alias}: {e}")))?
    }

    /// Writes a transaction's task data while its participants prepare; with sync
    /// persistence, waits for the flush too. `Ok(false)`: nothing to write here.
    /// Stores a replicated transaction's task data; answers whether it did, and the encoded
    /// data when it is small enough to travel with the task ([`INLINE_DATA_MAX`]).
    async fn write_task_data(
        &self,
        tid: u64,
        data: Option<TaskData>,
    ) -> Result<(bool, u64, Option<Vec<u8>>), RemoteError> {
        let (Some(store), Some(data)) = (self.tasks.clone(), data) else {
            return Ok((false, 0, None));
        };
        let sync = self
            .cfg
            .replication
            .as_ref()
            .is_some_and(|r| r.sync_persistence);
        let failed = |e: String| {
            self.error(
                ErrorCode::Internal,
                format!(
                    "cannot keep the replication task data under {}: {e}",
                    store.path().display()
                ),
            )
        };
        let s = store.clone();
        let bytes = tokio::task::spawn_blocking(move || {
            let bytes = encode_data(&data)?;
            s.put_encoded(tid, &bytes, sync)?;
            Ok::<_, TaskStoreError>(bytes)
        })
        .await
        .map_err(|e| failed(e.to_string()))?
        .map_err(|e| failed(e.to_string()))?;
        let size = bytes.len() as u64;
        Ok((
            true,
            size,
            (bytes.len() <= INLINE_DATA_MAX).then_some(bytes),
        ))
    }

    /// Deletes task data that no task needs (the transaction aborted, or made no task).
    fn drop_task_data(&self, tid: u64) {
        if let Some(store) = self.tasks.clone() {
            tokio::task::spawn_blocking(move || {
                if let Err(e) = store.delete(tid) {
                    tracing::warn!(tid, "cannot delete unneeded task data: {e}");
                }
            });
        }
    }

    /// Runs one transaction; returns its tid and the rows it touched. Its task has its data
    /// only when the coordinator saw the database replicated; a replay's commit records its
    /// task FINISHED (a task finished already makes it roll back with
    /// [`ErrorCode::AlreadyApplied`]).
    pub async fn run_tx(&self, token: &str, tx: Tx) -> Result<(u64, u64), RemoteError> {
        let Tx {
            changes,
            ops,
            task,
            replay,
            check,
            read_task,
        } = tx;
        let tid = self.next_tid(token).await?;
        let timer = std::time::Instant::now();
        let (mut meta, data) = match task {
            Some(t) => (Some(t.meta), t.data),
            None => (None, None),
        };
        let nodes: Vec<String> = ops.keys().cloned().collect();
        // The nodes the controller keeps the decision for until each reports it applied. A
        // transaction with no chunk operations (DDL) names this node, which reports it once
        // the outcome is known, so that its decision is not kept for ever.
        let ddl_only = nodes.is_empty();
        let participants = if ddl_only {
            vec![self.cfg.alias.clone()]
        } else {
            nodes.clone()
        };
        // Wait-die across nodes (see `ParticipantRequest::Prepare`).
        let gives_way = nodes.len() > 1;
        let prepares = ops.into_iter().map(|(node, ops)| async move {
            let r = self
                .call_participant(
                    &node,
                    ParticipantRequest::Prepare {
                        tid,
                        ops,
                        gives_way,
                    },
                )
                .await;
            (node, r)
        });
        let (prepared, written) = match read_task {
            None => {
                tokio::join!(
                    futures::future::join_all(prepares),
                    self.write_task_data(tid, data)
                )
            }
            Some(read) => {
                let prepared = futures::future::join_all(prepares).await;
                let held = prepared
                    .iter()
                    .all(|(_, r)| matches!(r, Ok(ParticipantReply::Prepared { .. })));
                let written = if held {
                    match tokio::task::spawn_blocking(read).await {
                        Ok(Ok(d)) => {
                            if let (Some(m), TaskData::SnapshotChunk { data, .. }) =
                                (meta.as_mut(), &d)
                            {
                                if let Some(r) = m.snapshot.as_mut() {
                                    r.rows = data.rows() as u64;
                                }
                            }
                            pause_point("snapshot_after_read").await;
                            self.write_task_data(tid, Some(d)).await
                        }
                        Ok(Err(m)) => Err(self.error(ErrorCode::Internal, m)),
                        Err(e) => Err(self.error(
                            ErrorCode::Internal,
                            format!("the read of the task data stopped: {e}"),
                        )),
                    }
                } else {
                    Ok((false, 0, None))
                };
                (prepared, written)
            }
        };
        let prepared_at = timer.elapsed();
        let mut rows = 0u64;
        let mut failure: Option<RemoteError> = None;
        for (_, r) in prepared {
            match r {
                Ok(ParticipantReply::Prepared { rows: n }) => rows += n,
                Ok(other) => {
                    failure = Some(
                        self.error(ErrorCode::Internal, format!("unexpected answer {other:?}")),
                    )
                }
                Err(e) => failure = failure.or(Some(e)),
            }
        }
        let (written, data_bytes, task_data) = match written {
            Ok(w) => w,
            Err(e) => {
                failure = failure.or(Some(e));
                (false, 0, None)
            }
        };
        if let Some(m) = meta.as_mut() {
            m.data_written = written;
            m.data_bytes = data_bytes;
        }
        let (decided, retried) = match &failure {
            Some(e) => {
                self.finish(tid, &nodes, Verdict::Abort).await;
                let _ = self
                    .link
                    .decide(
                        token,
                        Decide {
                            tid,
                            verdict: Verdict::Abort,
                            reason: e.to_string(),
                            changes: vec![],
                            task: None,
                            task_data: None,
                            replay: vec![],
                            check: None,
                            participants: participants.clone(),
                        },
                    )
                    .await;
                if ddl_only {
                    self.participant.mark_settled(tid);
                }
                if written {
                    self.drop_task_data(tid);
                }
                return Err(e.clone());
            }
            None => {
                crash_point("coordinator_after_prepare");
                if !replay.is_empty() {
                    pause_point("replay_before_decide").await;
                }
                let decide = Decide {
                    tid,
                    verdict: Verdict::Commit,
                    reason: String::new(),
                    changes,
                    task: meta,
                    task_data,
                    replay,
                    check,
                    participants,
                };
                self.decide_retrying(token, decide).await
            }
        };
        // The outcome is known unless the controller could not be reached.
        let known = match &decided {
            Ok(_) => true,
            Err(e) => !retried && e.code != ErrorCode::Unavailable,
        };
        if ddl_only && known {
            self.participant.mark_settled(tid);
        }
        let decided_at = timer.elapsed();
        match decided {
            Ok(d) if d.committed => {
                crash_point("coordinator_after_decide");
                if written && d.task_id.is_none() {
                    self.drop_task_data(tid);
                }
                self.finish(tid, &nodes, Verdict::Commit).await;
                tracing::trace!(
                    tid,
                    prepare_ms = prepared_at.as_secs_f64() * 1e3,
                    decide_ms = (decided_at - prepared_at).as_secs_f64() * 1e3,
                    commit_ms = (timer.elapsed() - decided_at).as_secs_f64() * 1e3,
                    "committed"
                );
                Ok((tid, rows))
            }
            Ok(d) => {
                self.finish(tid, &nodes, Verdict::Abort).await;
                if written {
                    self.drop_task_data(tid);
                }
                let code = if d.reason.ends_with(TURNED_ON_WHILE_RUNNING) {
                    ErrorCode::StaleCatalog
                } else {
                    ErrorCode::Runtime
                };
                Err(self.error(code, d.reason))
            }
            // The controller answered a first request with a refusal (e.g. a missing right):
            // it recorded the abort before answering, so the outcome is known. A refusal of a
            // repeated request may instead mean that the first one was recorded and settled
            // (and a commit's task data is still needed): that falls to the last arm.
            Err(e) if e.code != ErrorCode::Unavailable && !retried => {
                self.finish(tid, &nodes, Verdict::Abort).await;
                if written {
                    self.drop_task_data(tid);
                }
                Err(e)
            }
            Err(e) => {
                // The controller could not be reached: the decision may or may not be
                // recorded. The participants keep the prepared data and ask the controller,
                // which answers (or aborts after the timeout). The task data stays until the
                // controller says nobody needs it (see the task data sweep).
                Err(self.error(
                    e.code,
                    format!(
                        "transaction {tid}: the outcome is not known yet ({}); it will be settled within the transaction timeout",
                        e.message
                    ),
                ))
            }
        }
    }

    /// Asks the controller to record `d`, again and again while it cannot be reached (it may
    /// be restarting), for up to [`DECIDE_RETRY_FOR`]. A decision is recorded once: a repeated
    /// request gets the recorded one. Without this the participants would hold the prepared
    /// data and its partition locks until the controller's transaction timeout.
    async fn decide_retrying(
        &self,
        token: &str,
        d: Decide,
    ) -> (Result<crate::link::Decided, RemoteError>, bool) {
        let deadline = tokio::time::Instant::now() + DECIDE_RETRY_FOR;
        let mut backoff = Duration::from_millis(50);
        let mut retried = false;
        loop {
            match self.link.decide(token, d.clone()).await {
                Err(e)
                    if e.code == ErrorCode::Unavailable
                        && tokio::time::Instant::now() + backoff < deadline =>
                {
                    tracing::debug!(
                        tid = d.tid,
                        "the controller cannot record the decision yet: {e}"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    retried = true;
                }
                other => return (other, retried),
            }
        }
    }

    /// Sends commit or abort to every participant; a failure is left for them to resolve.
    async fn finish(&self, tid: u64, nodes: &[String], verdict: Verdict) {
        let calls = nodes.iter().map(|n| async move {
            let req = match verdict {
                Verdict::Commit => ParticipantRequest::Commit { tid },
                Verdict::Abort => ParticipantRequest::Abort { tid },
            };
            if let Err(e) = self.call_participant(n, req).await {
                tracing::warn!(tid, node = %n, "could not finish the transaction there; it will ask the controller: {e}");
            }
        });
        futures::future::join_all(calls).await;
    }

    /// Reads from several data nodes at once.
    pub async fn scan_all(
        &self,
        scans: std::collections::BTreeMap<String, Scan>,
    ) -> Result<Vec<ScanResult>, RemoteError> {
        let calls = scans.into_iter().map(|(n, s)| async move {
            self.call_participant(&n, ParticipantRequest::Scan(s)).await
        });
        futures::future::join_all(calls)
            .await
            .into_iter()
            .map(|r| match r? {
                ParticipantReply::Scanned(s) => Ok(s),
                other => {
                    Err(self.error(ErrorCode::Internal, format!("unexpected answer {other:?}")))
                }
            })
            .collect()
    }

    /// The controller link this coordinator decides through.
    pub fn link(&self) -> &ControllerLink {
        &self.link
    }

    /// This data node's alias.
    pub fn alias(&self) -> &str {
        &self.cfg.alias
    }
}
