//! The workers' loop: ask the controller for tasks (one, or a batch), fetch their data from the
//! master (unless it came with them), plan and run the replay transaction, report how the attempts ended; and, every
//! second, tell the controller which tasks this node's workers replay.
//!
//! A batch is replayed as one transaction whose commit records every task of it FINISHED. If
//! it does not commit, its tasks run again one at a time, in order, each as its own
//! transaction: the tasks before a failing one commit, the failing one fails alone with its own
//! reason (and attempt count), and the ones after it are handed back untried.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;
use xrepl_core::catalog::{CatalogChange, Right};
use xrepl_proto::client::ClientError;
use xrepl_proto::master_client::decode_task_data;
use xrepl_proto::rpc::{CatalogCheck, ErrorCode, RemoteError};
use xrepl_proto::task::{
    AttemptProof, ReplayAssignment, ReplayFailure, ReplayOf, TaskData, TaskInfo,
};
use xrepl_proto::ticket::FetchTicket;

use super::plan::Catalogs;
use super::{Replayer, Stage, WorkerState};
use crate::error::refusal;
use crate::link::AttemptsEnd;
use crate::plan::OpsByNode;
use crate::txn::coordinator::Tx;

/// How long a worker's request for a task waits on the controller.
const TAKE_WAIT_MS: u32 = 2_000;
/// Most tasks a worker asks for at once (one replay transaction).
const BATCH_TASKS: u32 = 500;
/// Most task data (encoded) a batch holds; the tasks after the one that reaches it are handed
/// back untried, for the next batch.
const BATCH_BYTES: usize = 64 << 20;
/// Tasks whose data one request per master data node fetches (`FetchTasksData`).
const FETCH_CHUNK: usize = 64;
/// Chunks fetched at once, ahead of the one being taken.
const FETCH_AHEAD: usize = 4;
/// Task data at most this large is decoded on the worker itself, larger on a blocking thread.
const DECODE_INLINE_BYTES: usize = 64 << 10;
/// How often the controller hears which tasks this node replays.
const REPORT_EVERY: Duration = Duration::from_secs(1);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Where a batch's data comes from: the hand-out carried the small tasks' data; the rest is
/// fetched from the master data nodes with the slave's fetch ticket.
struct Source {
    ticket: FetchTicket,
    /// The hand-out's time and nonce, which the reports and the decision bring back.
    proof: AttemptProof,
    inline: std::collections::HashMap<u64, Vec<u8>>,
}

/// Whether a failed attempt counts towards `clusterReplicationRetryLimit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailureKind {
    /// It would fail the same way again (a missing right, bad data, a full disk).
    Lasting,
    /// A node of either cluster could not be reached, or a lock was busy: it only waits.
    Transient,
}

/// Why an attempt did not commit.
struct Failure {
    reason: String,
    kind: FailureKind,
}

impl Failure {
    fn of_task(self, task_id: u64) -> ReplayFailure {
        ReplayFailure {
            task_id,
            reason: self.reason,
            transient: self.kind == FailureKind::Transient,
        }
    }

    fn lasting(reason: String) -> Failure {
        Failure {
            reason,
            kind: FailureKind::Lasting,
        }
    }

    /// An error from a node of this cluster: transient when the node could not be reached
    /// (or a lock was busy, or the replay gave way to an older transaction).
    fn of(e: RemoteError) -> Failure {
        Failure {
            kind: if matches!(e.code, ErrorCode::Unavailable | ErrorCode::Conflict) {
                FailureKind::Transient
            } else {
                FailureKind::Lasting
            },
            reason: e.message,
        }
    }
}

impl Replayer {
    /// The execution user's token, logging in when there is none or it is past half its
    /// life (so that no replay runs into its expiry).
    async fn exec_token(&self) -> Result<String, RemoteError> {
        let mut t = self.token.lock().await;
        let now = chrono::Utc::now().timestamp_millis();
        if let Some((token, issued, expires)) = t.as_ref() {
            if now < issued + (expires - issued) / 2 {
                return Ok(token.clone());
            }
        }
        let login = self
            .link
            .login(
                &self.cfg.execution_username,
                &self.cfg.execution_password,
                "",
            )
            .await?;
        *t = Some((login.token.clone(), now, login.expires_ms));
        Ok(login.token)
    }

    /// Runs the workers and the report of what runs, until `stop`.
    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        let mut workers: Vec<_> = (0..self.cfg.worker_num.max(1))
            .map(|w| tokio::spawn(self.clone().worker(w, stop.clone())))
            .collect();
        workers.push(tokio::spawn(self.clone().report_running(stop.clone())));
        for w in workers {
            let _ = w.await;
        }
    }

    /// Tells the controller every second which tasks this node's workers replay.
    async fn report_running(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(REPORT_EVERY);
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tick.tick() => {}
            }
            let Ok(token) = self.exec_token().await else {
                continue;
            };
            let tasks: Vec<u64> = self.workers.iter().flat_map(|w| w.tasks.clone()).collect();
            let attempts: Vec<AttemptProof> =
                self.workers.iter().map(|w| w.attempt.clone()).collect();
            let _ = self.link.replay_running(&token, tasks, attempts).await;
        }
    }

    async fn worker(self: Arc<Self>, worker: u32, mut stop: watch::Receiver<bool>) {
        let mut backoff = BACKOFF_MIN;
        let mut failures: u64 = 0;
        // How the last attempts ended, reported with the next request for tasks.
        let mut ended = AttemptsEnd::default();
        loop {
            if *stop.borrow() {
                self.report_end(ended).await;
                return;
            }
            let asked = async {
                let token = self.exec_token().await?;
                let a = self
                    .link
                    .take_replay_task(&token, TAKE_WAIT_MS, BATCH_TASKS, ended.clone())
                    .await?;
                Ok::<_, RemoteError>((token, a))
            };
            let asked = tokio::select! {
                _ = stop.changed() => {
                    self.report_end(ended).await;
                    return;
                }
                a = asked => a,
            };
            if asked.is_ok() {
                ended = AttemptsEnd::default();
            }
            match asked {
                Ok((token, Some(a))) => {
                    backoff = BACKOFF_MIN;
                    failures = 0;
                    ended = self.replay_batch(worker, &token, a).await;
                    self.workers.remove(&worker);
                }
                Ok((_, None)) => {}
                Err(e) if e.code == ErrorCode::Internal && e.node == self.alias => {
                    tracing::error!("{e}");
                    tokio::time::sleep(BACKOFF_MAX).await;
                }
                Err(e) => {
                    if e.code == ErrorCode::NotLoggedIn || e.code == ErrorCode::AccessDenied {
                        *self.token.lock().await = None;
                    }
                    failures += 1;
                    if worker == 0 && (failures == 1 || failures.is_multiple_of(50)) {
                        tracing::warn!("replay workers cannot get tasks yet: {e}");
                    }
                    tokio::select! {
                        _ = stop.changed() => {
                            self.report_end(ended).await;
                            return;
                        }
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// Reports how attempts ended when no request for tasks will carry it (the worker stops).
    /// If this is lost too, the controller finds out from this node's report of what runs.
    async fn report_end(&self, ended: AttemptsEnd) {
        if ended.is_empty() {
            return;
        }
        let Ok(token) = self.exec_token().await else {
            return;
        };
        if let Err(e) = self.link.replay_done(&token, ended).await {
            tracing::warn!("cannot report the end of a replay: {e}");
        }
    }

    fn set_stage(&self, worker: u32, stage: Stage) {
        if let Some(mut w) = self.workers.get_mut(&worker) {
            w.stage = stage;
        }
    }

    /// The data of `chunk`'s tasks, in order, decoded: the data that came with the hand-out,
    /// and the rest fetched with one request per master data node.
    async fn chunk_data(
        &self,
        src: &Source,
        chunk: Vec<TaskInfo>,
    ) -> Vec<(TaskInfo, Result<(TaskData, usize), Failure>)> {
        let ticket = &src.ticket;
        let mut by_site: std::collections::BTreeMap<(String, u16), Vec<usize>> =
            std::collections::BTreeMap::new();
        let mut inline: Vec<Option<Result<(TaskData, usize), Failure>>> =
            std::iter::repeat_with(|| None).take(chunk.len()).collect();
        for (i, t) in chunk.iter().enumerate() {
            if let Some(b) = src.inline.get(&t.task_id) {
                inline[i] = Some(check_data(t, decode_task_data(t, b)).map(|d| (d, b.len())));
                continue;
            }
            by_site
                .entry((t.src_host.clone(), t.src_port))
                .or_default()
                .push(i);
        }
        let calls = by_site.into_values().map(|idx| {
            let tasks: Vec<TaskInfo> = idx.iter().map(|&i| chunk[i].clone()).collect();
            async move {
                let got = self.fetcher.fetch_many(ticket, &tasks).await;
                (idx, tasks, got)
            }
        });
        let mut bytes: Vec<Option<Result<Vec<u8>, Failure>>> =
            std::iter::repeat_with(|| None).take(chunk.len()).collect();
        for (idx, tasks, got) in futures::future::join_all(calls).await {
            match got {
                Ok(list) => {
                    for ((i, t), r) in idx.iter().zip(&tasks).zip(list) {
                        bytes[*i] = Some(r.map_err(|e| fetch_failure(t, &e)));
                    }
                }
                Err(e) => {
                    for (i, t) in idx.iter().zip(&tasks) {
                        bytes[*i] = Some(Err(fetch_failure(t, &e)));
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(chunk.len());
        for ((t, b), kept) in chunk.into_iter().zip(bytes).zip(inline) {
            if let Some(r) = kept {
                out.push((t, r));
                continue;
            }
            let r = match b {
                Some(Ok(b)) => decode(&t, b).await,
                Some(Err(f)) => Err(f),
                None => Err(Failure::lasting(format!(
                    "task {}: no answer for its data",
                    t.task_id
                ))),
            };
            out.push((t, r));
        }
        out
    }

    /// The attempts at the tasks handed out in `a`: replayed as one transaction; if that does
    /// not commit, one at a time until one fails.
    async fn replay_batch(&self, worker: u32, token: &str, a: ReplayAssignment) -> AttemptsEnd {
        let ids: Vec<u64> = a.tasks.iter().map(|t| t.task_id).collect();
        let Some(first) = a.tasks.first() else {
            return AttemptsEnd::default();
        };
        self.workers.insert(
            worker,
            WorkerState {
                execution_set: first.execution_set,
                task_id: first.task_id,
                tasks: ids.clone(),
                stage: Stage::Transmitted,
                attempt: a.proof(),
            },
        );
        // The data, in order and fetched ahead, up to the first task whose data cannot be had
        // and at most BATCH_BYTES.
        let fetch_start = std::time::Instant::now();
        let mut bytes = 0usize;
        let mut fetched: Vec<(TaskInfo, TaskData)> = Vec::with_capacity(a.tasks.len());
        let mut fetch_failed: Option<(u64, Failure)> = None;
        let src = Source {
            proof: a.proof(),
            ticket: a.ticket,
            inline: a
                .data
                .into_iter()
                .map(|d| (d.task_id, d.bytes.into_vec()))
                .collect(),
        };
        {
            let chunks: Vec<Vec<TaskInfo>> = a
                .tasks
                .chunks(FETCH_CHUNK)
                .map(<[TaskInfo]>::to_vec)
                .collect();
            let src = &src;
            let mut data = futures::stream::iter(chunks)
                .map(|chunk| async move { self.chunk_data(src, chunk).await })
                .buffered(FETCH_AHEAD);
            'chunks: while let Some(results) = data.next().await {
                for (t, r) in results {
                    match r {
                        Ok((d, len)) => {
                            fetched.push((t, d));
                            bytes += len;
                            if bytes >= BATCH_BYTES {
                                break 'chunks;
                            }
                        }
                        Err(f) => {
                            fetch_failed = Some((t.task_id, f));
                            break 'chunks;
                        }
                    }
                }
            }
        }
        self.set_stage(worker, Stage::Executing);
        let fetch_time = fetch_start.elapsed();
        let mut end = AttemptsEnd {
            attempt: Some(src.proof.clone()),
            ..AttemptsEnd::default()
        };
        let tried = fetched.len();
        // Planning takes the rows out of the fetched data: one at a time after a batch
        // that did not commit needs them fetched again.
        let mut refetch_failed = None;
        let all_ok = if fetched.len() > 1 {
            match self.replay(token, &src, &mut fetched, a.started_ns).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::info!(
                        "a batch of {} tasks did not commit; replaying them one at a time: {}",
                        fetched.len(),
                        e.message
                    );
                    refetch_failed = self.refetch(&src, &mut fetched).await.err();
                    false
                }
            }
        } else {
            false
        };
        tracing::debug!(
            tasks = tried,
            bytes,
            fetch_ms = fetch_time.as_secs_f64() * 1e3,
            replay_ms = (fetch_start.elapsed() - fetch_time).as_secs_f64() * 1e3,
            "batch replayed"
        );
        if all_ok {
            end.finished = fetched.iter().map(|(t, _)| t.task_id).collect();
        } else if let Some(e) = refetch_failed {
            if let Some((first, _)) = fetched.first() {
                end.failed = Some(Failure::of(e).of_task(first.task_id));
            }
            end.released
                .extend(fetched.iter().skip(1).map(|(t, _)| t.task_id));
            fetch_failed = None;
        } else {
            for i in 0..fetched.len() {
                let task_id = fetched[i].0.task_id;
                match self
                    .replay(token, &src, &mut fetched[i..=i], a.started_ns)
                    .await
                {
                    Ok(()) => end.finished.push(task_id),
                    Err(e) => {
                        end.failed = Some(Failure::of(e).of_task(task_id));
                        end.released
                            .extend(fetched[i + 1..].iter().map(|(t, _)| t.task_id));
                        fetch_failed = None;
                        break;
                    }
                }
            }
        }
        let rest = match fetch_failed {
            Some((id, f)) => {
                end.failed = Some(f.of_task(id));
                ids.iter().skip(tried + 1).copied().collect::<Vec<_>>()
            }
            None if end.failed.is_none() => ids.iter().skip(tried).copied().collect(),
            None => ids.iter().skip(tried).copied().collect(),
        };
        end.released.extend(rest);
        end
    }

    /// Replays `tasks` (in order) as one transaction whose commit records each FINISHED.
    /// A replay of a task applied already, rolled back, counts as done for a single task.
    async fn replay(
        &self,
        token: &str,
        src: &Source,
        tasks: &mut [(TaskInfo, TaskData)],
        started_ns: i64,
    ) -> Result<(), RemoteError> {
        // First with the kept database definitions; if the controller finds one stale, once
        // more with definitions read now. Only appends and upserts use them: a kept copy may
        // not list chunks another node placed since (placements do not change the version),
        // and an append asks the controller for every partition its copy does not place,
        // while an update or a delete would miss those chunks.
        let mut use_kept = tasks
            .iter()
            .all(|(_, d)| matches!(d, TaskData::Append { .. } | TaskData::Upsert { .. }));
        loop {
            let plan_start = std::time::Instant::now();
            let mut catalogs = Catalogs::default();
            catalogs.use_kept = use_kept;
            let mut changes = Vec::new();
            let mut ops = OpsByNode::new();
            let mut planned = Ok(());
            for (_, data) in tasks.iter_mut() {
                match self.plan(token, data, &mut catalogs).await {
                    Ok((c, o)) => {
                        changes.extend(c);
                        for (node, list) in o {
                            ops.entry(node).or_default().extend(list);
                        }
                    }
                    Err(e) => {
                        planned = Err(e);
                        break;
                    }
                }
            }
            if let Err(e) = planned {
                // A kept copy may be older than the data (a column added since, by a replay
                // on another node): plan again from the controller's definitions.
                match catalogs.checked.take() {
                    Some((db, _)) if use_kept => {
                        self.kept.forget(&db);
                        use_kept = false;
                        self.refetch(src, tasks).await?;
                        continue;
                    }
                    _ => return Err(e),
                }
            }
            // A replay that changes a database's definition makes the kept copy old.
            let changes_catalog = !changes.is_empty();
            let swapped: Vec<String> = changes
                .iter()
                .filter(|c| matches!(c, CatalogChange::SwapShadow { .. }))
                .map(|c| c.db().to_string())
                .collect();
            let replay = tasks
                .iter()
                .map(|(t, _)| ReplayOf {
                    task_id: t.task_id,
                    node: self.alias.clone(),
                    started_ns,
                    nonce: src.proof.nonce.clone(),
                })
                .collect();
            let checked = catalogs.checked.clone();
            let tx = Tx {
                replay,
                check: checked.as_ref().map(|(db, version)| CatalogCheck {
                    db: db.clone(),
                    version: *version,
                    need: Right::Write,
                }),
                ..Tx::new(changes, ops)
            };
            let plan_ms = plan_start.elapsed().as_secs_f64() * 1e3;
            let result = self.coordinator.run_tx(token, tx).await;
            if changes_catalog {
                for (_, data) in tasks.iter() {
                    self.kept.forget(data.db());
                }
            }
            return match result {
                Ok((tid, rows)) => {
                    if !swapped.is_empty() {
                        self.drop_retired_later(token, swapped);
                    }
                    tracing::debug!(
                        tid,
                        rows,
                        tasks = tasks.len(),
                        plan_ms,
                        tx_ms = plan_start.elapsed().as_secs_f64() * 1e3 - plan_ms,
                        "tasks replayed"
                    );
                    Ok(())
                }
                Err(e) if e.code == ErrorCode::StaleCatalog && use_kept => {
                    if let Some((db, _)) = &checked {
                        self.kept.forget(db);
                    }
                    use_kept = false;
                    self.refetch(src, tasks).await?;
                    continue;
                }
                Err(e) if e.code == ErrorCode::AlreadyApplied && tasks.len() == 1 => {
                    tracing::info!(
                        task_id = tasks[0].0.task_id,
                        "a replay of a task applied already was rolled back: {}",
                        e.message
                    );
                    Ok(())
                }
                Err(e) if e.code == ErrorCode::Conflict => {
                    tracing::info!(
                        "a replay gave way to an older transaction on the same partitions and runs again later: {}",
                        e.message
                    );
                    Err(e)
                }
                Err(e) => Err(e),
            };
        }
    }

    /// Drops the old copies that re-syncs of `dbs` replaced, after [`plan::RETIRED_FOR`]
    /// (a reader that planned with one a moment before the swap still finds its chunks).
    /// Should that fail, the next re-sync of the table drops it.
    fn drop_retired_later(&self, token: &str, dbs: Vec<String>) {
        let (coordinator, token) = (self.coordinator.clone(), token.to_string());
        tokio::spawn(async move {
            tokio::time::sleep(super::plan::RETIRED_FOR).await;
            for db in dbs {
                match super::plan::drop_retired(&coordinator, &token, &db).await {
                    Ok(()) => tracing::info!(%db, "dropped the old copy a re-sync replaced"),
                    Err(e) => tracing::warn!(
                        %db,
                        "cannot drop the old copy a re-sync replaced (the next re-sync of the table drops it): {}",
                        e.message
                    ),
                }
            }
        });
    }

    /// Fetches (or decodes again) the data of `tasks` (planning took their rows). A task whose
    /// data cannot be had fails the whole: unavailable (retried, not counted) when the master
    /// could not be reached.
    async fn refetch(
        &self,
        src: &Source,
        tasks: &mut [(TaskInfo, TaskData)],
    ) -> Result<(), RemoteError> {
        for part in tasks.chunks_mut(FETCH_CHUNK) {
            let infos: Vec<TaskInfo> = part.iter().map(|(t, _)| t.clone()).collect();
            let got = self.chunk_data(src, infos).await;
            for (slot, (_, r)) in part.iter_mut().zip(got) {
                match r {
                    Ok((d, _)) => slot.1 = d,
                    Err(f) => {
                        let code = if f.kind == FailureKind::Transient {
                            ErrorCode::Unavailable
                        } else {
                            ErrorCode::Runtime
                        };
                        return Err(self.error(code, f.reason));
                    }
                }
            }
        }
        Ok(())
    }

    pub(super) fn error(&self, code: ErrorCode, message: impl Into<String>) -> RemoteError {
        refusal(&self.alias, code, message)
    }
}

/// Why the data of `t` could not be fetched; a lost connection or an unavailable node is
/// transient.
fn fetch_failure(t: &TaskInfo, e: &ClientError) -> Failure {
    let transient = match e {
        ClientError::Rpc(_) => true,
        ClientError::Remote(r) => r.code == ErrorCode::Unavailable,
        ClientError::Unexpected(_) => false,
    };
    Failure {
        reason: format!(
            "cannot fetch the task data from master data node {}:{}: {e}",
            t.src_host, t.src_port
        ),
        kind: if transient {
            FailureKind::Transient
        } else {
            FailureKind::Lasting
        },
    }
}

/// Decodes `t`'s fetched data (a large one on a blocking thread) and checks it is `t`'s.
async fn decode(t: &TaskInfo, bytes: Vec<u8>) -> Result<(TaskData, usize), Failure> {
    let len = bytes.len();
    let decoded = if len <= DECODE_INLINE_BYTES {
        decode_task_data(t, &bytes)
    } else {
        let task = t.clone();
        match tokio::task::spawn_blocking(move || decode_task_data(&task, &bytes)).await {
            Ok(r) => r,
            Err(e) => return Err(Failure::lasting(e.to_string())),
        }
    };
    Ok((check_data(t, decoded)?, len))
}

/// Decoded data, checked to be `t`'s.
fn check_data(t: &TaskInfo, decoded: Result<TaskData, ClientError>) -> Result<TaskData, Failure> {
    let data = decoded.map_err(|e| Failure::lasting(e.to_string()))?;
    if data.op() != t.op || data.db() != t.db {
        return Err(Failure::lasting(format!(
            "the task data of task {} is a {} on {}, but the task says {} on {}",
            t.task_id,
            data.op(),
            data.db(),
            t.op,
            t.db
        )));
    }
    Ok(data)
}
