//! The workers' loop: ask the controller for a task, fetch its data from the master, plan and
//! run the replay transaction, report the end of the attempt; and, every second, tell the
//! controller which tasks this node's workers replay.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use xrepl_proto::client::ClientError;
use xrepl_proto::master_client::decode_task_data;
use xrepl_proto::rpc::{ErrorCode, RemoteError};
use xrepl_proto::task::{ReplayAssignment, ReplayOf};

use super::{Replayer, Stage, WorkerState};
use crate::error::refusal;
use crate::link::{AttemptEnd, FailureKind};
use crate::txn::coordinator::Tx;

/// How long a worker's request for a task waits on the controller.
const TAKE_WAIT_MS: u32 = 2_000;
/// How often the controller hears which tasks this node replays.
const REPORT_EVERY: Duration = Duration::from_secs(1);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Why an attempt did not commit.
struct Failure {
    reason: String,
    kind: FailureKind,
}

impl Failure {
    fn lasting(reason: String) -> Failure {
        Failure {
            reason,
            kind: FailureKind::Lasting,
        }
    }

    /// An error from a node of this cluster: transient when the node could not be reached
    /// (or a lock was busy).
    fn of(e: RemoteError) -> Failure {
        Failure {
            kind: if e.code == ErrorCode::Unavailable {
                FailureKind::Transient
            } else {
                FailureKind::Lasting
            },
            reason: e.message,
        }
    }
}

impl Replayer {
    /// The execution user's token, logging in when there is none.
    async fn exec_token(&self) -> Result<String, RemoteError> {
        let mut t = self.token.lock().await;
        if let Some(t) = t.as_ref() {
            return Ok(t.clone());
        }
        let login = self
            .link
            .login(&self.cfg.execution_username, &self.cfg.execution_password)
            .await?;
        *t = Some(login.token.clone());
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
            let tasks: Vec<u64> = self.workers.iter().map(|w| w.task_id).collect();
            let _ = self.link.replay_running(&token, tasks).await;
        }
    }

    async fn worker(self: Arc<Self>, worker: u32, mut stop: watch::Receiver<bool>) {
        let mut backoff = BACKOFF_MIN;
        let mut failures: u64 = 0;
        loop {
            if *stop.borrow() {
                return;
            }
            let asked = async {
                let token = self.exec_token().await?;
                let a = self.link.take_replay_task(&token, TAKE_WAIT_MS).await?;
                Ok::<_, RemoteError>((token, a))
            };
            let asked = tokio::select! {
                _ = stop.changed() => return,
                a = asked => a,
            };
            match asked {
                Ok((token, Some(a))) => {
                    backoff = BACKOFF_MIN;
                    failures = 0;
                    let task_id = a.task.task_id;
                    let end = match self.replay_one(worker, &token, a).await {
                        Some(f) => AttemptEnd::Failed {
                            reason: f.reason,
                            kind: f.kind,
                        },
                        None => AttemptEnd::Applied,
                    };
                    if let Err(e) = self.link.replay_done(&token, task_id, end).await {
                        tracing::warn!(task_id, "cannot report the end of a replay: {e}");
                    }
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
                        _ = stop.changed() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// One attempt at a task; `Some` when it did not commit.
    async fn replay_one(&self, worker: u32, token: &str, a: ReplayAssignment) -> Option<Failure> {
        let t = &a.task;
        self.workers.insert(
            worker,
            WorkerState {
                execution_set: t.execution_set,
                task_id: t.task_id,
                stage: Stage::Transmitted,
            },
        );
        let bytes = match self.fetcher.fetch(&a.master_token, t).await {
            Ok(b) => b,
            Err(e) => {
                let transient = match &e {
                    ClientError::Rpc(_) => true,
                    ClientError::Remote(r) => r.code == ErrorCode::Unavailable,
                    ClientError::Unexpected(_) => false,
                };
                return Some(Failure {
                    reason: format!(
                        "cannot fetch the task data from master data node {}:{}: {e}",
                        t.src_host, t.src_port
                    ),
                    kind: if transient {
                        FailureKind::Transient
                    } else {
                        FailureKind::Lasting
                    },
                });
            }
        };
        let task = t.clone();
        let data = match tokio::task::spawn_blocking(move || decode_task_data(&task, &bytes)).await
        {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => return Some(Failure::lasting(e.to_string())),
            Err(e) => return Some(Failure::lasting(e.to_string())),
        };
        if data.op() != t.op || data.db() != t.db {
            return Some(Failure::lasting(format!(
                "the task data of task {} is a {} on {}, but the task says {} on {}",
                t.task_id,
                data.op(),
                data.db(),
                t.op,
                t.db
            )));
        }
        if let Some(mut w) = self.workers.get_mut(&worker) {
            w.stage = Stage::Executing;
        }
        let replay = ReplayOf {
            task_id: t.task_id,
            node: self.alias.clone(),
            started_ns: a.started_ns,
        };
        let result = match self.plan(token, &data).await {
            Ok((changes, ops)) => {
                let tx = Tx {
                    replay: Some(replay),
                    ..Tx::new(changes, ops)
                };
                self.coordinator.run_tx(token, tx).await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok((tid, rows)) => {
                tracing::debug!(task_id = t.task_id, tid, rows, op = %t.op, "task replayed");
                None
            }
            Err(e) if e.code == ErrorCode::AlreadyApplied => {
                tracing::info!(
                    task_id = t.task_id,
                    "a replay of a task applied already was rolled back: {}",
                    e.message
                );
                None
            }
            Err(e) => Some(Failure::of(e)),
        }
    }

    pub(super) fn error(&self, code: ErrorCode, message: impl Into<String>) -> RemoteError {
        refusal(&self.alias, code, message)
    }
}
