//! Handing tasks to the slave data nodes' replay workers and hearing back: a worker asks for a
//! task (a long poll), its data node says every second what it replays, and a worker reports
//! the end of an attempt. A failed attempt is retried after `clusterReplicationRetryInterval`;
//! the `clusterReplicationRetryLimit`-th makes the task FAILED and the slave STOPPED.

use std::time::{Duration, Instant};

use xrepl_proto::rpc::ErrorCode;
use xrepl_proto::rpc::RemoteError;
use xrepl_proto::task::{ReplayAssignment, ReplayFailure};
use xrepl_proto::ticket::FetchTicket;

use super::queue::TaskState;
use super::scheduler::{AfterFailure, Counting};
use super::{now_ns, Slave};
use crate::meta::MetaCommand;

/// Longest a replay worker's request for a task waits.
const TAKE_WAIT_MAX_MS: u32 = 10_000;
/// How often a waiting worker looks again without being woken (retry timers fall due).
const TAKE_RECHECK: Duration = Duration::from_millis(50);
/// A task handed out this long ago that its data node does not report running was lost.
const HANDOUT_GRACE: Duration = Duration::from_secs(5);

/// Most tasks in one batch.
const MAX_BATCH: u32 = 1_000;

impl Slave {
    /// A replay worker of data node `node` asks for tasks (at most `max`), waiting up to
    /// `wait_ms`.
    pub async fn take_replay_task(
        &self,
        node: &str,
        wait_ms: u32,
        max: u32,
    ) -> Result<Option<ReplayAssignment>, RemoteError> {
        let max = max.clamp(1, MAX_BATCH) as usize;
        let deadline = tokio::time::Instant::now()
            + Duration::from_millis(wait_ms.min(TAKE_WAIT_MAX_MS).into());
        loop {
            let woken = self.rt.wake().notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let started_ns = now_ns();
            let picked = self
                .rt
                .pick(
                    node,
                    self.live_data_nodes(),
                    Instant::now(),
                    started_ns,
                    max,
                )
                .await;
            if let Some((tasks, ticket, data)) = picked {
                return Ok(Some(ReplayAssignment {
                    tasks: tasks.into_iter().map(|t| t.info).collect(),
                    data,
                    ticket,
                    started_ns,
                    nonce: serde_bytes::ByteBuf::from(self.auth.attempt_nonce(node, started_ns)),
                }));
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let _ = tokio::time::timeout((deadline - now).min(TAKE_RECHECK), woken).await;
        }
    }

    /// A replay's commit was recorded: the task is FINISHED and the master may hear so. Its
    /// attempt stays running (EXECUTING, its queue busy, its group unfinished) until the worker
    /// reports that the participants made the data visible, so "FINISHED" means readable.
    pub async fn replay_committed(&self, task_id: u64) {
        self.rt.committed(task_id).await;
    }

    /// The attempt at `task_id` is over and the task is finished: its queue is free, the
    /// master is told.
    pub async fn replay_finished(&self, task_id: u64) {
        self.rt.finished(vec![task_id]).await;
    }

    /// A replay worker reports how its attempts of the hand-out at `started_ns` ended (the
    /// caller checked the hand-out's nonce). A task that is not running in that hand-out on
    /// `node` (this controller restarted since, gave the attempt up when its node was lost,
    /// or handed the task out again) is ignored: the commit rule settled it either way.
    pub async fn replay_done(
        &self,
        node: &str,
        started_ns: i64,
        finished: Vec<u64>,
        failed: Option<ReplayFailure>,
        released: Vec<u64>,
    ) {
        let finished = self.rt.runs(finished, node, started_ns).await;
        if !finished.is_empty() {
            self.rt.finished(finished).await;
        }
        let released = self.rt.runs(released, node, started_ns).await;
        if !released.is_empty() {
            self.rt.released(released).await;
        }
        if let Some(f) = failed {
            if !self
                .rt
                .runs(vec![f.task_id], node, started_ns)
                .await
                .is_empty()
            {
                let counting = if f.transient {
                    Counting::Transient
                } else {
                    Counting::Counts
                };
                self.attempt_failed(f.task_id, node, &f.reason, counting)
                    .await;
            }
        }
    }

    /// An attempt failed. A transient failure, such as an unreachable master, is retried for
    /// as long as it lasts; the others count towards the retry limit.
    async fn attempt_failed(&self, task_id: u64, node: &str, reason: &str, counting: Counting) {
        // A lost attempt whose commit was recorded: nothing to retry.
        let finished = self.meta.read(|s| {
            s.slave
                .tasks
                .get(&task_id)
                .is_none_or(|t| t.state == TaskState::Finished)
        });
        if finished {
            self.replay_finished(task_id).await;
            return;
        }
        self.record_failure(task_id, node, reason);
        let r = &self.cfg;
        let (after, n) = self
            .rt
            .failed(
                task_id,
                reason.to_string(),
                r.retry_interval,
                r.retry_limit,
                counting,
            )
            .await;
        match after {
            AfterFailure::Retry(_) if counting == Counting::Transient => {
                tracing::warn!(
                    task_id,
                    %node,
                    "replay attempt failed for a transient reason; retrying in {} ms: {reason}",
                    r.retry_interval.as_millis()
                );
            }
            AfterFailure::Retry(_) => {
                tracing::warn!(
                    task_id,
                    %node,
                    "replay attempt {n} of {} failed; retrying in {} ms: {reason}",
                    r.retry_limit,
                    r.retry_interval.as_millis()
                );
            }
            AfterFailure::Fail(details) => {
                let db = self.meta.read(|s| {
                    s.slave
                        .tasks
                        .get(&task_id)
                        .map(|t| t.info.db.clone())
                        .unwrap_or_default()
                });
                tracing::error!(task_id, %db, %node, "task FAILED, replication STOPPED: {details}");
                if let Err(e) = self
                    .meta
                    .apply(MetaCommand::FailTask {
                        task_id,
                        details,
                        node: node.to_string(),
                    })
                    .await
                {
                    tracing::error!(task_id, "cannot record the task FAILED: {e}");
                }
            }
        }
        self.rt.notify();
    }

    /// Attempts running on data nodes that are down, or that registered again (`restarted`),
    /// count as failed; their queues are free again.
    pub async fn reclaim_lost(&self, restarted: Option<&str>) {
        let lost = self
            .rt
            .lost(self.live_data_nodes(), restarted.map(str::to_string))
            .await;
        let (lost, untried): (Vec<_>, Vec<_>) = lost.into_iter().partition(|(_, _, lead)| *lead);
        // The other tasks of a lost batch count no attempt: the lead's counts for the batch.
        let untried: Vec<u64> = untried.into_iter().map(|(id, _, _)| id).collect();
        if !untried.is_empty() {
            self.rt.released(untried).await;
        }
        for (id, node, _) in lost {
            let why = if restarted == Some(node.as_str()) {
                "restarted"
            } else {
                "went down"
            };
            self.attempt_failed(
                id,
                &node,
                &format!("data node {node} {why} while replaying it"),
                Counting::Counts,
            )
            .await;
        }
    }

    /// Data node `node` replays `tasks` now, in the hand-outs of `started` (whose nonces the
    /// caller checked): a task handed to it more than [`HANDOUT_GRACE`]
    /// ago that it does not name was lost on the way (its worker's connection died with the
    /// answer in flight); it is retried without counting, and its queue is free again.
    pub async fn replay_running(&self, node: &str, tasks: Vec<u64>, started: Vec<i64>) {
        let lost = self
            .rt
            .not_running(node, tasks, started, now_ns(), HANDOUT_GRACE)
            .await;
        for id in lost {
            self.attempt_failed(
                id,
                node,
                &format!("data node {node} is not replaying it: the hand-out was lost"),
                Counting::Transient,
            )
            .await;
        }
    }

    /// Where the master is and the fetch ticket this slave holds there (for a consistency
    /// check).
    pub async fn master_access(&self) -> Result<(String, FetchTicket), RemoteError> {
        let master = self.cfg.master_ctl.clone().ok_or_else(|| {
            self.refuse(
                ErrorCode::BadRequest,
                "this controller's cluster is not a replication slave",
            )
        })?;
        let ticket = self.rt.ticket().await.ok_or_else(|| {
            self.refuse(
                ErrorCode::Unavailable,
                format!("the slave has not pulled from the master at {master} yet (see the controller's log)"),
            )
        })?;
        Ok((master, ticket))
    }
}
