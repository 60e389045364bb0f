//! The coordinator side of two-phase commit, and distributed reads.
//!
//! A transaction: a tid from the controller (`BeginTx`); `Prepare` on every participant (in
//! parallel; this node calls itself directly); the decision with the transaction's catalog
//! changes recorded durably by the controller (`Decide`); then `Commit` (or `Abort`) on every
//! participant. The client hears of the commit only after the decision is flushed and every
//! reachable participant has made the data visible; a participant that missed the message
//! learns the outcome from the controller when it resolves its prepared transactions.

use std::collections::BTreeMap;
use std::time::Duration;

use xrepl_core::catalog::CatalogChange;
use xrepl_proto::rpc::{
    ControllerReply, ControllerRequest, ErrorCode, ParticipantReply, ParticipantRequest, PeerKind,
    RemoteError, RpcClient,
};
use xrepl_proto::task::{ReplayOf, TaskData, TaskMeta};
use xrepl_proto::txn::{ChunkOp, Scan, ScanResult, TxState};

use crate::participant::ParticipantError;
use crate::storage::StorageError;
use crate::DataNode;

const PEER_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Time limit of one participant call (a large prepare writes a lot).
const PEER_CALL_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a prepared transaction waits for its coordinator before asking the controller.
pub const RESOLVE_AFTER_MS: i64 = 2_000;

/// For crash tests: when `XREPL_TEST_CRASH_AT` names this point, the process dies here at
/// once, without flushing or running destructors, as if it had been SIGKILLed. Points:
/// `coordinator_after_prepare`, `coordinator_after_decide`, `participant_after_prepare`,
/// `participant_before_commit`.
pub fn crash_point(name: &str) {
    if std::env::var("XREPL_TEST_CRASH_AT").is_ok_and(|v| v == name) {
        eprintln!("XREPL_TEST_CRASH_AT: dying at {name}");
        std::process::exit(86);
    }
}

/// For tests: when `XREPL_TEST_PAUSE_AT` is `name:ms`, waits `ms` milliseconds here (e.g.
/// `replay_before_decide`: a slave's replay holds its prepared chunks that long before asking
/// the controller to commit).
pub async fn pause_point(name: &str) {
    let Ok(v) = std::env::var("XREPL_TEST_PAUSE_AT") else {
        return;
    };
    if let Some(ms) = v
        .strip_prefix(name)
        .and_then(|r| r.strip_prefix(':'))
        .and_then(|ms| ms.parse::<u64>().ok())
    {
        tracing::info!("XREPL_TEST_PAUSE_AT: pausing {ms} ms at {name}");
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// The replication task a transaction makes if its database is replicated.
pub struct TxTask {
    pub meta: TaskMeta,
    /// The task data, when the coordinator saw the database replicated on a master.
    pub data: Option<TaskData>,
}

impl DataNode {
    fn participant_error(&self, e: ParticipantError) -> RemoteError {
        let code = match &e {
            ParticipantError::Storage(_) => ErrorCode::Internal,
            ParticipantError::Invalid(_) => ErrorCode::Runtime,
            ParticipantError::Locked { .. } => ErrorCode::Unavailable,
        };
        // The message travels on as the reason of an abort or a failed replay, without the
        // node: a full disk names it, and where.
        let message = match &e {
            ParticipantError::Storage(StorageError::NoSpace { path, detail }) => format!(
                "no space left on the device of data node {} ({}): {detail}",
                self.cfg.alias,
                path.display()
            ),
            _ => e.to_string(),
        };
        self.error(code, message)
    }

    /// Answers a participant request, whoever sent it.
    pub async fn participate(
        &self,
        req: ParticipantRequest,
    ) -> Result<ParticipantReply, RemoteError> {
        let p = &self.participant;
        match req {
            ParticipantRequest::Prepare { tid, ops } => p
                .prepare(tid, ops)
                .await
                .map(|rows| ParticipantReply::Prepared { rows })
                .map_err(|e| self.participant_error(e)),
            ParticipantRequest::Commit { tid } => {
                crash_point("participant_before_commit");
                p.commit(tid)
                    .await
                    .map(|()| ParticipantReply::Done)
                    .map_err(|e| self.participant_error(e))
            }
            ParticipantRequest::Abort { tid } => p
                .abort(tid)
                .await
                .map(|()| ParticipantReply::Done)
                .map_err(|e| self.participant_error(e)),
            ParticipantRequest::Scan(scan) => p
                .scan(scan)
                .await
                .map(ParticipantReply::Scanned)
                .map_err(|e| self.participant_error(e)),
        }
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
        let c = RpcClient::connect(
            &node.site(),
            PeerKind::DataNode,
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
    async fn write_task_data(&self, tid: u64, data: Option<TaskData>) -> Result<bool, RemoteError> {
        let (Some(store), Some(data)) = (self.tasks.clone(), data) else {
            return Ok(false);
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
        tokio::task::spawn_blocking(move || s.put(tid, &data))
            .await
            .map_err(|e| failed(e.to_string()))?
            .map_err(|e| failed(e.to_string()))?;
        if sync {
            store.durable().await.map_err(|e| failed(e.to_string()))?;
        }
        Ok(true)
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

    /// Runs one transaction; returns its tid and the rows it touched. `task`: the replication
    /// task it makes if its database is replicated (its data only when the coordinator saw the
    /// database replicated).
    pub async fn run_tx(
        &self,
        token: &str,
        changes: Vec<CatalogChange>,
        ops: BTreeMap<String, Vec<ChunkOp>>,
        task: Option<TxTask>,
    ) -> Result<(u64, u64), RemoteError> {
        self.run_tx_with(token, changes, ops, task, None).await
    }

    /// Runs a slave transaction that replays a task: its commit records the task FINISHED; a
    /// task finished already makes it roll back with [`ErrorCode::AlreadyApplied`].
    pub async fn run_replay_tx(
        &self,
        token: &str,
        changes: Vec<CatalogChange>,
        ops: BTreeMap<String, Vec<ChunkOp>>,
        replay: ReplayOf,
    ) -> Result<(u64, u64), RemoteError> {
        self.run_tx_with(token, changes, ops, None, Some(replay))
            .await
    }

    async fn run_tx_with(
        &self,
        token: &str,
        changes: Vec<CatalogChange>,
        ops: BTreeMap<String, Vec<ChunkOp>>,
        task: Option<TxTask>,
        replay: Option<ReplayOf>,
    ) -> Result<(u64, u64), RemoteError> {
        let tid = match self
            .link
            .call(ControllerRequest::BeginTx {
                token: token.to_string(),
                coordinator: self.cfg.alias.clone(),
            })
            .await?
        {
            ControllerReply::Tid(t) => t,
            other => {
                return Err(self.error(ErrorCode::Internal, format!("unexpected answer {other:?}")))
            }
        };
        let (mut meta, data) = match task {
            Some(t) => (Some(t.meta), t.data),
            None => (None, None),
        };
        let nodes: Vec<String> = ops.keys().cloned().collect();
        let prepares = ops.into_iter().map(|(node, ops)| async move {
            let r = self
                .call_participant(&node, ParticipantRequest::Prepare { tid, ops })
                .await;
            (node, r)
        });
        let (prepared, written) = tokio::join!(
            futures::future::join_all(prepares),
            self.write_task_data(tid, data)
        );
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
        let written = match written {
            Ok(w) => w,
            Err(e) => {
                failure = failure.or(Some(e));
                false
            }
        };
        if let Some(m) = meta.as_mut() {
            m.data_written = written;
        }
        let decided = match &failure {
            Some(e) => {
                self.finish(tid, &nodes, false).await;
                let _ = self
                    .link
                    .call(ControllerRequest::Decide {
                        token: token.to_string(),
                        tid,
                        commit: false,
                        reason: e.to_string(),
                        changes: vec![],
                        task: None,
                        replay: None,
                    })
                    .await;
                if written {
                    self.drop_task_data(tid);
                }
                return Err(e.clone());
            }
            None => {
                crash_point("coordinator_after_prepare");
                if replay.is_some() {
                    pause_point("replay_before_decide").await;
                }
                self.link
                    .call(ControllerRequest::Decide {
                        token: token.to_string(),
                        tid,
                        commit: true,
                        reason: String::new(),
                        changes,
                        task: meta,
                        replay,
                    })
                    .await
            }
        };
        match decided {
            Ok(ControllerReply::Decided {
                committed: true,
                task_id,
                ..
            }) => {
                crash_point("coordinator_after_decide");
                if written && task_id.is_none() {
                    self.drop_task_data(tid);
                }
                self.finish(tid, &nodes, true).await;
                Ok((tid, rows))
            }
            Ok(ControllerReply::Decided { reason, .. }) => {
                self.finish(tid, &nodes, false).await;
                if written {
                    self.drop_task_data(tid);
                }
                Err(self.error(ErrorCode::Runtime, reason))
            }
            Ok(other) => {
                Err(self.error(ErrorCode::Internal, format!("unexpected answer {other:?}")))
            }
            // The controller answered with a refusal (e.g. a missing right): it recorded the
            // abort before answering, so the outcome is known.
            Err(e) if e.code != ErrorCode::Unavailable => {
                self.finish(tid, &nodes, false).await;
                if written {
                    self.drop_task_data(tid);
                }
                Err(e)
            }
            Err(e) => {
                // The controller could not be reached: the decision may or may not be
                // recorded. The participants keep the prepared data and ask the controller,
                // which answers (or aborts after the timeout). The task data stays until the
                // controller says nobody needs it (see `sweep_task_data`).
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

    /// Sends commit or abort to every participant; a failure is left for them to resolve.
    async fn finish(&self, tid: u64, nodes: &[String], commit: bool) {
        let calls = nodes.iter().map(|n| async move {
            let req = if commit {
                ParticipantRequest::Commit { tid }
            } else {
                ParticipantRequest::Abort { tid }
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
        scans: BTreeMap<String, Scan>,
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

    /// Settles prepared transactions whose coordinator has not finished them: asks the
    /// controller for each one older than `min_age_ms` and applies its answer. At start-up
    /// every one is asked about at once (0); afterwards those older than [`RESOLVE_AFTER_MS`].
    pub async fn resolve_prepared(&self, min_age_ms: i64) {
        let storage = self.participant.storage.clone();
        let prepared = match tokio::task::spawn_blocking(move || storage.all_prepared()).await {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                tracing::error!("cannot list prepared transactions: {e}");
                return;
            }
            Err(_) => return,
        };
        self.resolve_listed(prepared, min_age_ms).await;
    }

    /// [`Self::resolve_prepared`] on a list taken earlier (it may be stale: a coordinator may
    /// have settled some of them since).
    pub(crate) async fn resolve_listed(
        &self,
        prepared: Vec<crate::storage::Prepared>,
        min_age_ms: i64,
    ) {
        let now = chrono::Utc::now().timestamp_millis();
        let start_up = min_age_ms == 0;
        for p in prepared {
            // At start-up (before serving anyone), hold its locks again so nobody writes under
            // it. Later passes must not: the list may be stale, and re-locking a transaction
            // that its coordinator committed meanwhile would hold the lock forever (seen under
            // a stream of small transactions).
            if start_up
                && self
                    .participant
                    .locks
                    .acquire(p.tid, &p.chunks, Duration::ZERO)
                    .await
                    .is_err()
            {
                continue;
            }
            if now.saturating_sub(p.prepared_ms) < min_age_ms {
                continue;
            }
            match self
                .link
                .call(ControllerRequest::TxOutcome { tid: p.tid })
                .await
            {
                Ok(ControllerReply::Outcome(TxState::Committed)) => {
                    tracing::info!(
                        tid = p.tid,
                        "committing a prepared transaction (decided by the controller)"
                    );
                    if let Err(e) = self.participant.commit(p.tid).await {
                        tracing::error!(tid = p.tid, "commit failed: {e}");
                    }
                }
                Ok(ControllerReply::Outcome(TxState::Aborted(reason))) => {
                    tracing::info!(tid = p.tid, "aborting a prepared transaction: {reason}");
                    if let Err(e) = self.participant.abort(p.tid).await {
                        tracing::error!(tid = p.tid, "abort failed: {e}");
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(tid = p.tid, "outcome not known yet: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use xrepl_core::catalog::ColumnDef;
    use xrepl_core::value::{DataType, Vector};
    use xrepl_proto::txn::{ChunkAction, ChunkId};

    /// A data node with real storage and no controller (nothing here calls it).
    fn node(dir: &std::path::Path) -> DataNode {
        std::fs::write(
            dir.join("cluster.nodes"),
            "localSite,mode\n127.0.0.1:1:controller1,controller\n127.0.0.1:2:dnode1,datanode\n",
        )
        .expect("write");
        std::fs::write(dir.join("cluster.cfg"), "").expect("write");
        std::fs::write(
            dir.join("controller.cfg"),
            "localSite=127.0.0.1:1:controller1\n",
        )
        .expect("write");
        let cfg = xrepl_core::config::load_datanode(dir, "dnode1").expect("config");
        let storage = crate::storage::Storage::open(&dir.join("storage")).expect("storage");
        DataNode {
            link: Arc::new(crate::link::ControllerLink::new(&cfg)),
            cfg,
            participant: Arc::new(crate::participant::Participant {
                storage: Arc::new(storage),
                locks: crate::participant::ChunkLocks::default(),
                lock_timeout: Duration::from_millis(100),
            }),
            peers: dashmap::DashMap::new(),
            tasks: None,
            replayer: None,
            slave_tokens: dashmap::DashMap::new(),
            sweep_from: std::sync::atomic::AtomicU64::new(0),
            rt: tokio::runtime::Handle::current(),
        }
    }

    /// Regression: a full disk on a participant reached the slave's task status as `storage:
    /// IO error: No space left on device (os error 28)`, naming neither the data node nor the
    /// storage.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_disk_error_reached_the_status_without_the_node_or_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let n = node(dir.path());
        let e = n.participant_error(ParticipantError::Storage(StorageError::NoSpace {
            path: "/data/dnode1/storage".into(),
            detail: "No space left on device (os error 28)".into(),
        }));
        assert_eq!(
            e.message,
            "no space left on the device of data node dnode1 (/data/dnode1/storage): No space left on device (os error 28)"
        );
        // Lasting: it counts towards the retry limit, so the task ends FAILED with this reason.
        assert_eq!(e.code, ErrorCode::Internal);
    }

    /// Regression: a resolver pass working from a list taken before a coordinator committed
    /// re-locked the committed transaction's chunks, and nothing ever released them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stale_resolver_list_does_not_relock_a_committed_transaction() {
        let dir = tempfile::tempdir().expect("tempdir");
        let n = node(dir.path());
        let chunk = ChunkId {
            table: 1,
            partition: 0,
        };
        let columns: Vec<ColumnDef> = vec![ColumnDef {
            id: 0,
            name: "x".into(),
            ty: DataType::Int,
            comment: String::new(),
        }];
        let op = ChunkOp {
            chunk,
            label: "t/0".into(),
            columns,
            action: ChunkAction::Append {
                columns: vec![(0, Vector::Int(vec![1, 2, 3]))],
            },
        };
        n.participant.prepare(7, vec![op]).await.expect("prepare");
        let listed = n.participant.storage.all_prepared().expect("list");
        assert_eq!(listed.len(), 1);
        n.participant.commit(7).await.expect("commit");
        n.resolve_listed(listed, RESOLVE_AFTER_MS).await;
        n.participant
            .locks
            .acquire(8, &[chunk], Duration::ZERO)
            .await
            .expect("the chunk is free after its transaction committed");
    }
}
