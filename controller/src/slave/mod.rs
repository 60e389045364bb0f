//! The slave side of replication on the controller: the puller that brings the master's tasks
//! into the execution queue, the hand-out of tasks to the data nodes' replay workers, the
//! retry/FAILED/STOPPED rule, and the slave's functions.
//!
//! Durable state is in the metadata ([`queue::ExecQueue`] in [`crate::meta::MetaState`]); what
//! runs where is in memory ([`scheduler::Scheduler`]). A task becomes FINISHED only in the
//! commit of the slave transaction that replays it ([`crate::meta::MetaCommand::Decide`] with
//! `replay`), which is what makes a replay happen exactly once whatever process dies when.

pub mod queue;
pub mod scheduler;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};
use xrepl_core::value::{Scalar, Table, Value, Vector, NULL_LONG};
use xrepl_proto::master_client::MasterClient;
use xrepl_proto::rpc::{ErrorCode, RemoteError, Reply, Response};
use xrepl_proto::task::ReplayAssignment;

use crate::functions::Caller;
use crate::meta::{MetaCommand, MetaOutcome};
use crate::Controller;
use queue::{SlaveStatus, TaskState, KEEP_FINISHED};
use scheduler::{AfterFailure, Scheduler};

/// The puller stops asking for more while this many tasks are unfinished (the queue is bounded;
/// the master keeps the rest).
pub const MAX_UNFINISHED: usize = 100_000;
/// Longest a replay worker's request for a task waits.
const TAKE_WAIT_MAX_MS: u32 = 10_000;
/// How often a waiting worker looks again without being woken (retry timers fall due).
const TAKE_RECHECK: Duration = Duration::from_millis(50);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A task handed out this long ago that its data node does not report running was lost.
const HANDOUT_GRACE: Duration = Duration::from_secs(5);
/// Most finished ids reported with one pull.
const REPORT_MAX: usize = 10_000;

/// The slave's in-memory replication state, shared by the puller and the request handlers.
#[derive(Default)]
pub struct SlaveRuntime {
    pub sched: Mutex<Scheduler>,
    /// Woken when a task may have become runnable.
    pub wake: Notify,
    /// A master administrator's token while connected (handed to the replay workers).
    master_token: RwLock<Option<String>>,
    /// Finished task ids not yet reported to the master.
    to_report: Mutex<BTreeSet<u64>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

fn table(names: &[&str], columns: Vec<Vector>) -> Table {
    Table::new(names.iter().map(|s| s.to_string()).collect(), columns).unwrap_or_else(|_| Table {
        names: vec![],
        columns: vec![],
    })
}

/// A duration as `00:00:00.537`.
fn duration_text(ns: i64) -> String {
    let ms = ns.max(0) / 1_000_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

impl Controller {
    /// Whether this controller's cluster is a replication slave.
    pub fn is_slave(&self) -> bool {
        self.cfg
            .replication
            .as_ref()
            .is_some_and(|r| r.mode == xrepl_core::config::ReplicationMode::Slave)
    }

    /// The live data nodes, sorted by name (queue `q` is served by the `q mod n`-th).
    fn live_data_nodes(&self) -> Vec<String> {
        self.nodes
            .live_data_nodes()
            .into_iter()
            .map(|n| n.name)
            .collect()
    }

    /// The puller: registers with the master, pulls after the last stored task (reporting
    /// finished ones), stores what comes in one durable step with the new position, and
    /// reconnects with backoff while the master is away. Runs until `stop`.
    pub async fn run_puller(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let Some(r) = self.cfg.replication.clone() else {
            return;
        };
        let Some(master) = r.master_ctl.clone() else {
            return;
        };
        let me = format!("{}:{}", self.cfg.host, self.cfg.port);
        let rt = &self.slave_rt;
        // The master forgets nothing it was told, and ignores repeats: report all we know.
        lock(&rt.to_report).extend(
            self.meta
                .read(|s| s.slave.finished_ids().collect::<Vec<_>>()),
        );
        let mut client: Option<MasterClient> = None;
        let mut backoff = BACKOFF_MIN;
        let mut failures: u64 = 0;
        let wait_ms = u32::try_from(r.pull_wait.as_millis()).unwrap_or(u32::MAX);
        loop {
            if *stop.borrow() {
                return;
            }
            let (status, unfinished, after) = self.meta.read(|s| {
                (
                    s.slave.repl.status,
                    s.slave.unfinished(),
                    s.slave.repl.last_pulled,
                )
            });
            let pause = if status != SlaveStatus::Enabled || unfinished >= MAX_UNFINISHED {
                Some(BACKOFF_MIN)
            } else if client.as_ref().is_some_and(MasterClient::is_open) {
                None
            } else {
                let connected = async {
                    let c =
                        MasterClient::connect(&master, &r.master_username, &r.master_password, &me)
                            .await?;
                    c.register().await?;
                    Ok::<MasterClient, xrepl_proto::client::ClientError>(c)
                }
                .await;
                match connected {
                    Ok(c) => {
                        tracing::info!(%master, "connected to the master controller; pulling after task {after}");
                        *rt.master_token.write().unwrap_or_else(|p| p.into_inner()) =
                            Some(c.token().to_string());
                        rt.wake.notify_waiters();
                        client = Some(c);
                        failures = 0;
                        backoff = BACKOFF_MIN;
                        None
                    }
                    Err(e) => {
                        failures += 1;
                        if failures == 1 || failures.is_multiple_of(20) {
                            tracing::warn!(%master, "cannot reach the master controller (attempt {failures}); retrying: {e}");
                        }
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        Some(backoff)
                    }
                }
            };
            if let Some(p) = pause {
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tokio::time::sleep(p) => continue,
                }
            }
            let Some(c) = client.as_ref() else { continue };
            let finished: Vec<u64> = lock(&rt.to_report)
                .iter()
                .take(REPORT_MAX)
                .copied()
                .collect();
            let pulled = tokio::select! {
                _ = stop.changed() => return,
                p = c.pull(after, &finished, r.pull_batch, wait_ms) => p,
            };
            match pulled {
                Ok(tasks) => {
                    {
                        let mut pending = lock(&rt.to_report);
                        for id in &finished {
                            pending.remove(id);
                        }
                    }
                    if tasks.is_empty() {
                        continue;
                    }
                    let n = tasks.len();
                    match self
                        .meta
                        .apply(MetaCommand::StoreTasks {
                            tasks,
                            queues: r.queue,
                            now_ns: now_ns(),
                        })
                        .await
                    {
                        Ok(_) => {
                            tracing::debug!("received {n} tasks after task {after}");
                            rt.wake.notify_waiters();
                        }
                        Err(e) => {
                            tracing::error!("cannot store the tasks received from the master: {e}");
                            tokio::time::sleep(BACKOFF_MAX).await;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(%master, "pull failed; reconnecting: {e}");
                    client = None;
                }
            }
        }
    }

    /// Where the master is and the token this slave holds there (for a consistency check).
    pub(crate) fn master_access(&self) -> Response {
        let master = self
            .cfg
            .replication
            .as_ref()
            .filter(|_| self.is_slave())
            .and_then(|r| r.master_ctl.clone())
            .ok_or_else(|| {
                self.refuse(
                    ErrorCode::BadRequest,
                    "this controller's cluster is not a replication slave",
                )
            })?;
        let token = self
            .slave_rt
            .master_token
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| {
                self.refuse(
                    ErrorCode::Unavailable,
                    format!("the slave is not logged in to the master at {master} yet (see the controller's log)"),
                )
            })?;
        Ok(Reply::MasterAccess { master, token })
    }

    /// A replay worker of data node `node` asks for a task.
    pub(crate) async fn take_replay_task(&self, node: &str, wait_ms: u32) -> Response {
        if !self.is_slave() {
            return Err(self.refuse(
                ErrorCode::BadRequest,
                "this controller's cluster is not a replication slave",
            ));
        }
        let deadline = tokio::time::Instant::now()
            + Duration::from_millis(wait_ms.min(TAKE_WAIT_MAX_MS).into());
        loop {
            let woken = self.slave_rt.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if let Some(a) = self.try_pick(node) {
                return Ok(Reply::ReplayTask(Some(a)));
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Reply::ReplayTask(None));
            }
            let _ = tokio::time::timeout((deadline - now).min(TAKE_RECHECK), woken).await;
        }
    }

    fn try_pick(&self, node: &str) -> Option<ReplayAssignment> {
        let token = self
            .slave_rt
            .master_token
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        let live = self.live_data_nodes();
        let started_ns = now_ns();
        let now = Instant::now();
        let task = self
            .meta
            .read(|s| lock(&self.slave_rt.sched).pick(&s.slave, node, &live, now, started_ns))?;
        Some(ReplayAssignment {
            task: task.info,
            queue: task.queue,
            master_token: token,
            started_ns,
        })
    }

    /// A replay's commit was recorded (or found recorded): the queue is free, the master is told.
    /// A replay's commit was recorded: the task is FINISHED and the master may hear so. Its
    /// attempt stays running (EXECUTING, its queue busy, its group unfinished) until the worker
    /// reports that the participants made the data visible, so "FINISHED" means readable.
    pub(crate) fn replay_committed(&self, task_id: u64) {
        lock(&self.slave_rt.to_report).insert(task_id);
    }

    pub(crate) fn replay_finished(&self, task_id: u64) {
        lock(&self.slave_rt.sched).finished(task_id);
        lock(&self.slave_rt.to_report).insert(task_id);
        self.slave_rt.wake.notify_waiters();
    }

    /// A replay worker reports the end of an attempt.
    pub(crate) async fn replay_done(
        &self,
        node: &str,
        task_id: u64,
        failure: Option<String>,
        transient: bool,
    ) -> Response {
        let ours = lock(&self.slave_rt.sched)
            .running
            .get(&task_id)
            .is_some_and(|r| r.node == node);
        if !ours {
            // An attempt this controller did not hand out (it restarted since) or that was
            // given up (its node was lost): the commit rule settled it either way.
            return Ok(Reply::Done);
        }
        match failure {
            None => self.replay_finished(task_id),
            Some(reason) => {
                self.attempt_failed(task_id, node, &reason, !transient)
                    .await
            }
        }
        Ok(Reply::Done)
    }

    /// An attempt failed; `counts`: it counts towards the retry limit (a transient failure,
    /// such as an unreachable master, is retried for as long as it lasts).
    async fn attempt_failed(&self, task_id: u64, node: &str, reason: &str, counts: bool) {
        let Some(r) = self.cfg.replication.as_ref() else {
            return;
        };
        // A lost attempt whose commit was recorded: nothing to retry.
        let finished = self.meta.read(|s| {
            s.slave
                .tasks
                .get(&task_id)
                .is_none_or(|t| t.state == TaskState::Finished)
        });
        if finished {
            self.replay_finished(task_id);
            return;
        }
        let after = lock(&self.slave_rt.sched).failed(
            task_id,
            reason,
            Instant::now(),
            r.retry_interval,
            r.retry_limit,
            counts,
        );
        match after {
            AfterFailure::Retry(_) if !counts => {
                tracing::warn!(
                    task_id,
                    %node,
                    "replay attempt failed for a transient reason; retrying in {} ms: {reason}",
                    r.retry_interval.as_millis()
                );
            }
            AfterFailure::Retry(_) => {
                let n = lock(&self.slave_rt.sched).attempts(task_id);
                tracing::warn!(
                    task_id,
                    %node,
                    "replay attempt {n} of {} failed; retrying in {} ms: {reason}",
                    r.retry_limit,
                    r.retry_interval.as_millis()
                );
            }
            AfterFailure::Fail(details) => {
                tracing::error!(task_id, %node, "task FAILED, replication STOPPED: {details}");
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
        self.slave_rt.wake.notify_waiters();
    }

    /// Attempts running on data nodes that are down, or that registered again (restarted),
    /// count as failed; their queues are free again.
    pub(crate) async fn reclaim_lost(&self, restarted: Option<&str>) {
        if !self.is_slave() {
            return;
        }
        let live = self.live_data_nodes();
        let lost: Vec<(u64, String)> = {
            let s = lock(&self.slave_rt.sched);
            let mut lost = s.lost(&live);
            if let Some(n) = restarted {
                lost.extend(
                    s.running
                        .iter()
                        .filter(|(_, r)| r.node == n)
                        .map(|(id, r)| (*id, r.node.clone())),
                );
            }
            lost
        };
        for (id, node) in lost {
            let why = if restarted == Some(node.as_str()) {
                "restarted"
            } else {
                "went down"
            };
            self.attempt_failed(
                id,
                &node,
                &format!("data node {node} {why} while replaying it"),
                true,
            )
            .await;
        }
    }

    /// Data node `node` replays `tasks` now: a task handed to it more than [`HANDOUT_GRACE`]
    /// ago that it does not name was lost on the way (its worker's connection died with the
    /// answer in flight); it counts as a failed attempt and its queue is free again.
    pub(crate) async fn replay_running(&self, node: &str, tasks: &[u64]) {
        let now = now_ns();
        let grace = HANDOUT_GRACE.as_nanos() as i64;
        let lost: Vec<u64> = lock(&self.slave_rt.sched)
            .running
            .iter()
            .filter(|(id, r)| {
                r.node == node && !tasks.contains(id) && now.saturating_sub(r.started_ns) > grace
            })
            .map(|(id, _)| *id)
            .collect();
        for id in lost {
            self.attempt_failed(
                id,
                node,
                &format!("data node {node} is not replaying it: the hand-out was lost"),
                false,
            )
            .await;
        }
    }

    /// `startClusterReplication()` / `stopClusterReplication()` on a slave.
    pub(crate) async fn set_slave_enabled(&self, enabled: bool) -> Result<Value, RemoteError> {
        self.meta
            .apply(MetaCommand::SetSlaveEnabled { enabled })
            .await
            .map_err(|e| e.to_remote(&self.cfg.alias))?;
        if enabled {
            lock(&self.slave_rt.sched).restart();
        }
        self.slave_rt.wake.notify_waiters();
        tracing::info!(
            "replication {} on the slave",
            if enabled { "ENABLED" } else { "DISABLED" }
        );
        Ok(Value::Void)
    }

    /// `skipClusterReplicationTask(taskIds)`: a number, a vector or a range.
    pub(crate) async fn skip_tasks(
        &self,
        caller: &Caller,
        args: &[Value],
    ) -> Result<Value, RemoteError> {
        const NAME: &str = "skipClusterReplicationTask";
        let bad = |m: String| self.refuse(ErrorCode::BadRequest, format!("{NAME}: {m}"));
        let ids: Vec<i64> = match args {
            [Value::Scalar(Scalar::Int(n))] => vec![i64::from(*n)],
            [Value::Scalar(Scalar::Long(n))] => vec![*n],
            [Value::Vector(Vector::Int(v))] => v.iter().map(|n| i64::from(*n)).collect(),
            [Value::Vector(Vector::Long(v))] => v.clone(),
            [other] => {
                return Err(bad(format!(
                    "taskIds must be a task id, a vector of them or a range such as 1..10, got {}",
                    other.kind_name()
                )))
            }
            _ => {
                return Err(bad(format!(
                    "takes one argument (taskIds), got {}",
                    args.len()
                )))
            }
        };
        let ids: Vec<u64> = ids
            .into_iter()
            .map(|n| u64::try_from(n).ok().filter(|n| *n > 0))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("task ids are positive integers".into()))?;
        if ids.is_empty() {
            return Err(bad("no task id given".into()));
        }
        let details = format!(
            "skipped by {} with skipClusterReplicationTask at {}",
            caller.user,
            chrono::Utc::now().format("%Y.%m.%dT%H:%M:%S%.3f")
        );
        match self
            .meta
            .apply(MetaCommand::SkipTasks {
                ids,
                details,
                now_ns: now_ns(),
            })
            .await
        {
            Ok(MetaOutcome::Skipped(skipped)) => {
                tracing::warn!(user = %caller.user, "skipped tasks {skipped:?}: they will never be applied");
                let mut s = lock(&self.slave_rt.sched);
                let mut r = lock(&self.slave_rt.to_report);
                for id in skipped {
                    s.finished(id);
                    r.insert(id);
                }
                Ok(Value::Void)
            }
            Ok(other) => {
                Err(self.refuse(ErrorCode::Internal, format!("unexpected outcome {other:?}")))
            }
            Err(e) => Err(e.to_remote(&self.cfg.alias)),
        }
    }

    /// `getSlaveReplicationStatus([limit])`: the latest finished tasks (at most 10,000 and at
    /// most `limit`), then the unfinished ones from the oldest.
    pub(crate) fn slave_status(&self, limit: Option<usize>) -> Table {
        let cap = limit.unwrap_or(usize::MAX);
        let (rows, running) = self.meta.read(|s| {
            let q = &s.slave;
            let finished: Vec<&queue::SlaveTask> =
                q.finished_ids().filter_map(|id| q.tasks.get(&id)).collect();
            let keep = finished.len().min(KEEP_FINISHED).min(cap);
            let mut rows: Vec<queue::SlaveTask> = finished[finished.len() - keep..]
                .iter()
                .map(|t| (*t).clone())
                .collect();
            rows.extend(
                q.tasks
                    .values()
                    .filter(|t| t.state != TaskState::Finished)
                    .take(cap - keep)
                    .cloned(),
            );
            let running = lock(&self.slave_rt.sched).running.clone();
            (rows, running)
        });
        let text =
            |f: &dyn Fn(&queue::SlaveTask) -> String| Vector::String(rows.iter().map(f).collect());
        let long =
            |f: &dyn Fn(&queue::SlaveTask) -> i64| Vector::Long(rows.iter().map(f).collect());
        table(
            &[
                "taskId",
                "masterTid",
                "groupId",
                "executionSet",
                "queueId",
                "operationType",
                "createTime",
                "dbName",
                "tableName",
                "srcIP",
                "srcPort",
                "finishTime",
                "executionNode",
                "state",
                "details",
            ],
            vec![
                long(&|t| t.info.task_id as i64),
                long(&|t| t.info.tid as i64),
                long(&|t| t.info.group_id as i64),
                Vector::Int(
                    rows.iter()
                        .map(|t| i32::from(t.info.execution_set))
                        .collect(),
                ),
                Vector::Int(rows.iter().map(|t| t.queue as i32).collect()),
                text(&|t| t.info.op.name().to_string()),
                Vector::NanoTimestamp(rows.iter().map(|t| t.create_ns).collect()),
                text(&|t| t.info.db.clone()),
                text(&|t| t.info.table.clone()),
                text(&|t| t.info.src_host.clone()),
                Vector::Int(rows.iter().map(|t| i32::from(t.info.src_port)).collect()),
                Vector::NanoTimestamp(
                    rows.iter()
                        .map(|t| {
                            if t.finish_ns > 0 {
                                t.finish_ns
                            } else {
                                NULL_LONG
                            }
                        })
                        .collect(),
                ),
                text(&|t| match running.get(&t.info.task_id) {
                    Some(r) if t.state != TaskState::Failed => r.node.clone(),
                    _ => t.node.clone(),
                }),
                text(&|t| {
                    match t.state {
                        TaskState::Finished if running.contains_key(&t.info.task_id) => "EXECUTING",
                        TaskState::Finished => "FINISHED",
                        TaskState::Failed => "FAILED",
                        TaskState::Waiting if running.contains_key(&t.info.task_id) => "EXECUTING",
                        TaskState::Waiting => "WAITING",
                    }
                    .to_string()
                }),
                text(&|t| t.details.clone()),
            ],
        )
    }

    /// `getSlaveReplicationQueueStatus()`: one row per execution set and queue.
    pub(crate) fn queue_status(&self) -> Table {
        let queues = self.cfg.replication.as_ref().map_or(1, |r| r.queue.max(1));
        let live = self.live_data_nodes();
        // (set, queue) -> unfinished
        let mut unfinished = vec![[0i64; 2]; queues as usize];
        let status = self.meta.read(|s| {
            for set in 0..2 {
                for (_, id) in &s.slave.pending[set] {
                    if let Some(t) = s.slave.tasks.get(id) {
                        if let Some(u) = unfinished.get_mut(t.queue as usize) {
                            u[set] += 1;
                        }
                    }
                }
            }
            s.slave.repl.status
        });
        let sched = lock(&self.slave_rt.sched);
        let mut rows: Vec<(i32, i32, i64, i64, String, i64, &str)> = vec![];
        for set in 0..2u8 {
            for q in 0..queues {
                let n = unfinished[q as usize][usize::from(set)];
                let row = match sched.in_queue(set, q) {
                    Some((_, r)) => (r.group as i64, r.node.clone(), r.started_ns, "EXECUTING"),
                    None => (
                        -1,
                        scheduler::node_of(q, &live).unwrap_or("").to_string(),
                        NULL_LONG,
                        if n == 0 {
                            "IDLE"
                        } else if status == SlaveStatus::Enabled {
                            "WAITING"
                        } else {
                            status.name()
                        },
                    ),
                };
                rows.push((i32::from(set), q as i32, n, row.0, row.1, row.2, row.3));
            }
        }
        table(
            &[
                "executionSet",
                "queueId",
                "unfinishedTasks",
                "executionGroupId",
                "executionNode",
                "executionTime",
                "status",
            ],
            vec![
                Vector::Int(rows.iter().map(|r| r.0).collect()),
                Vector::Int(rows.iter().map(|r| r.1).collect()),
                Vector::Long(rows.iter().map(|r| r.2).collect()),
                Vector::Long(rows.iter().map(|r| r.3).collect()),
                Vector::String(rows.iter().map(|r| r.4.clone()).collect()),
                Vector::NanoTimestamp(rows.iter().map(|r| r.5).collect()),
                Vector::String(rows.iter().map(|r| r.6.to_string()).collect()),
            ],
        )
    }

    /// `getClusterReplicationMetrics([seconds])`: over the last `seconds` (default 30; -1:
    /// since replication began).
    pub(crate) fn metrics(&self, args: &[Value]) -> Result<Table, RemoteError> {
        const NAME: &str = "getClusterReplicationMetrics";
        let seconds: i64 = match args {
            [] => 30,
            [Value::Scalar(Scalar::Int(n))] => i64::from(*n),
            [Value::Scalar(Scalar::Long(n))] => *n,
            _ => {
                return Err(self.refuse(
                    ErrorCode::BadRequest,
                    format!("{NAME} takes one optional argument: seconds (a positive integer, or -1 for all)"),
                ))
            }
        };
        if seconds == 0 || seconds < -1 {
            return Err(self.refuse(
                ErrorCode::BadRequest,
                format!("{NAME}: seconds must be a positive integer, or -1 for all, got {seconds}"),
            ));
        }
        let now = now_ns();
        let row = self.meta.read(|s| {
            let q = &s.slave;
            let since = if seconds == -1 {
                i64::MIN
            } else {
                now.saturating_sub(seconds.saturating_mul(1_000_000_000))
            };
            let mut n = 0i64;
            let mut max_cost = 0i64;
            let mut sum_cost = 0i64;
            let mut groups = BTreeSet::new();
            for id in q.finished_ids() {
                let Some(t) = q.tasks.get(&id) else { continue };
                if t.finish_ns < since || t.start_ns == 0 {
                    continue;
                }
                let cost = t.finish_ns - t.start_ns;
                n += 1;
                max_cost = max_cost.max(cost);
                sum_cost += cost;
                groups.insert(t.info.group_id);
            }
            let finished = if seconds == -1 {
                q.repl.finished_total as i64
            } else {
                n
            };
            let span_s = if seconds == -1 {
                (now - q.repl.began_ns).max(1_000_000_000) as f64 / 1e9
            } else {
                seconds as f64
            };
            (
                q.repl.status,
                finished,
                q.unfinished() as i64,
                finished as f64 / span_s,
                max_cost,
                if n > 0 { sum_cost / n } else { 0 },
                if groups.is_empty() {
                    0.0
                } else {
                    n as f64 / groups.len() as f64
                },
            )
        });
        Ok(table(
            &[
                "status",
                "finishedTasks",
                "unfinishedTasks",
                "finishedTasksPerSec",
                "maxCostPerTask",
                "avgCostPerTask",
                "averageGroupSize",
            ],
            vec![
                Vector::String(vec![row.0.name().to_string()]),
                Vector::Long(vec![row.1]),
                Vector::Long(vec![row.2]),
                Vector::Double(vec![row.3]),
                Vector::String(vec![duration_text(row.4)]),
                Vector::String(vec![duration_text(row.5)]),
                Vector::Double(vec![row.6]),
            ],
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::duration_text;

    #[test]
    fn durations_read_like_dolphindb() {
        assert_eq!(duration_text(537_000_000), "00:00:00.537");
        assert_eq!(duration_text(3_723_004_000_000), "01:02:03.004");
    }
}
