//! The slave data node's replay workers (`clusterReplicationWorkerNum` of them). Each asks the
//! slave controller for a task (a long poll), fetches the task's data from the master data
//! node named in it, plans the replay against this cluster's catalog (its own table ids and
//! chunk placement), and runs it as one transaction under the execution user whose commit
//! records the task FINISHED. A replay of a task finished already is rolled back by the
//! controller ([`ErrorCode::AlreadyApplied`]) and is not a failure.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use xrepl_core::catalog::{CatalogChange, DatabaseMeta, Right, TableMeta};
use xrepl_proto::client::ClientError;
use xrepl_proto::master_client::{decode_task_data, TaskDataFetcher};
use xrepl_proto::rpc::{ControllerReply, ControllerRequest, ErrorCode, RemoteError};
use xrepl_proto::task::{ReplayAssignment, ReplayOf, TaskData};
use xrepl_proto::txn::{ChunkAction, ChunkOp};

use crate::dbfns::{append_ops, route_rows};
use crate::session::Session;
use crate::DataNode;

/// How long a worker's request for a task waits on the controller.
const TAKE_WAIT_MS: u32 = 2_000;
/// How often the controller hears which tasks this node replays.
const REPORT_EVERY: Duration = Duration::from_secs(1);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// What one worker is doing, for `getSlaveReplicationExecutionStatus()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerState {
    pub execution_set: u8,
    pub task_id: u64,
    /// `TRANSMITTED` (fetching the task data) or `EXECUTING` (replaying it).
    pub state: &'static str,
}

/// The replay side of a slave data node.
#[derive(Default)]
pub struct Replayer {
    /// Busy workers by number.
    pub workers: dashmap::DashMap<u32, WorkerState>,
    fetcher: TaskDataFetcher,
    /// The execution user's session token on this cluster.
    token: tokio::sync::Mutex<Option<String>>,
}

type Ops = BTreeMap<String, Vec<ChunkOp>>;

/// Why an attempt did not commit.
struct Failure {
    reason: String,
    /// A node of either cluster could not be reached (or a lock was busy): retried without
    /// counting towards the retry limit.
    transient: bool,
}

impl Failure {
    fn lasting(reason: String) -> Failure {
        Failure {
            reason,
            transient: false,
        }
    }
}

impl DataNode {
    fn unexpected(&self, r: ControllerReply) -> RemoteError {
        self.error(ErrorCode::Internal, format!("unexpected answer {r:?}"))
    }

    /// The execution user's token, logging in when there is none.
    async fn exec_token(&self, rp: &Replayer) -> Result<String, RemoteError> {
        let mut t = rp.token.lock().await;
        if let Some(t) = t.as_ref() {
            return Ok(t.clone());
        }
        let r = self.cfg.replication.as_ref().ok_or_else(|| {
            self.error(ErrorCode::BadRequest, "replication is not configured here")
        })?;
        match self
            .link
            .call(ControllerRequest::Login {
                user: r.execution_username.clone(),
                password: r.execution_password.clone(),
            })
            .await?
        {
            ControllerReply::LoggedIn { token, .. } => {
                *t = Some(token.clone());
                Ok(token)
            }
            other => Err(self.unexpected(other)),
        }
    }

    /// Runs `n` replay workers until `stop`.
    pub async fn run_replay_workers(self: Arc<Self>, n: u32, stop: watch::Receiver<bool>) {
        let mut workers: Vec<_> = (0..n.max(1))
            .map(|w| tokio::spawn(self.clone().replay_worker(w, stop.clone())))
            .collect();
        workers.push(tokio::spawn(self.clone().report_running(stop.clone())));
        for w in workers {
            let _ = w.await;
        }
    }

    /// Tells the controller every second which tasks this node's workers replay.
    async fn report_running(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let Some(rp) = self.replayer.clone() else {
            return;
        };
        let mut tick = tokio::time::interval(REPORT_EVERY);
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tick.tick() => {}
            }
            let Ok(token) = self.exec_token(&rp).await else {
                continue;
            };
            let tasks: Vec<u64> = rp.workers.iter().map(|w| w.task_id).collect();
            let _ = self
                .link
                .call(ControllerRequest::ReplayRunning {
                    token,
                    node: self.cfg.alias.clone(),
                    tasks,
                })
                .await;
        }
    }

    async fn replay_worker(self: Arc<Self>, worker: u32, mut stop: watch::Receiver<bool>) {
        let Some(rp) = self.replayer.clone() else {
            return;
        };
        let mut backoff = BACKOFF_MIN;
        let mut failures: u64 = 0;
        loop {
            if *stop.borrow() {
                return;
            }
            let asked = async {
                let token = self.exec_token(&rp).await?;
                let r = self
                    .link
                    .call(ControllerRequest::TakeReplayTask {
                        token: token.clone(),
                        node: self.cfg.alias.clone(),
                        wait_ms: TAKE_WAIT_MS,
                    })
                    .await?;
                Ok::<_, RemoteError>((token, r))
            };
            let asked = tokio::select! {
                _ = stop.changed() => return,
                a = asked => a,
            };
            match asked {
                Ok((token, ControllerReply::ReplayTask(Some(a)))) => {
                    backoff = BACKOFF_MIN;
                    failures = 0;
                    let task_id = a.task.task_id;
                    let (failure, transient) = match self.replay_one(&rp, worker, &token, a).await {
                        Some(f) => (Some(f.reason), f.transient),
                        None => (None, false),
                    };
                    if let Err(e) = self
                        .link
                        .call(ControllerRequest::ReplayDone {
                            token,
                            node: self.cfg.alias.clone(),
                            task_id,
                            failure,
                            transient,
                        })
                        .await
                    {
                        tracing::warn!(task_id, "cannot report the end of a replay: {e}");
                    }
                    rp.workers.remove(&worker);
                }
                Ok((_, ControllerReply::ReplayTask(None))) => {}
                Ok((_, other)) => {
                    tracing::error!("unexpected answer to a task request: {other:?}");
                    tokio::time::sleep(BACKOFF_MAX).await;
                }
                Err(e) => {
                    if e.code == ErrorCode::NotLoggedIn || e.code == ErrorCode::AccessDenied {
                        *rp.token.lock().await = None;
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
    async fn replay_one(
        &self,
        rp: &Replayer,
        worker: u32,
        token: &str,
        a: ReplayAssignment,
    ) -> Option<Failure> {
        let t = &a.task;
        rp.workers.insert(
            worker,
            WorkerState {
                execution_set: t.execution_set,
                task_id: t.task_id,
                state: "TRANSMITTED",
            },
        );
        let bytes = match rp.fetcher.fetch(&a.master_token, t).await {
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
                    transient,
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
        if let Some(mut w) = rp.workers.get_mut(&worker) {
            w.state = "EXECUTING";
        }
        let replay = ReplayOf {
            task_id: t.task_id,
            node: self.cfg.alias.clone(),
            started_ns: a.started_ns,
        };
        let planned = self.plan_replay(token, &data).await;
        let result = match planned {
            Ok((changes, ops)) => self.run_replay_tx(token, changes, ops, replay).await,
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
            Err(e) => Some(Failure {
                transient: e.code == ErrorCode::Unavailable,
                reason: e.message,
            }),
        }
    }

    async fn database(
        &self,
        token: &str,
        db: &str,
        need: Right,
    ) -> Result<Option<DatabaseMeta>, RemoteError> {
        match self
            .link
            .call(ControllerRequest::GetDatabase {
                token: token.to_string(),
                db: db.to_string(),
                need: Some(need),
            })
            .await?
        {
            ControllerReply::Database(d) => Ok(d),
            other => Err(self.unexpected(other)),
        }
    }

    /// What replaying `data` changes here: the catalog changes and the chunk ops, against this
    /// cluster's own catalog.
    async fn plan_replay(
        &self,
        token: &str,
        data: &TaskData,
    ) -> Result<(Vec<CatalogChange>, Ops), RemoteError> {
        let db = data.db();
        let missing_db = || {
            self.error(
                ErrorCode::NotFound,
                format!("database '{db}' does not exist on the slave"),
            )
        };
        let need = match data {
            TaskData::Append { .. }
            | TaskData::Upsert { .. }
            | TaskData::SqlUpdate { .. }
            | TaskData::SqlDelete { .. }
            | TaskData::TruncateTable { .. }
            | TaskData::DropPartition { .. } => Right::Write,
            _ => Right::Owner,
        };
        if let TaskData::CreateDomain { scheme, .. } = data {
            let path = db.to_string();
            let on = CatalogChange::SetReplication {
                path: path.clone(),
                enabled: true,
            };
            return match self.database(token, db, Right::Owner).await? {
                None => Ok((
                    vec![
                        CatalogChange::CreateDatabase {
                            path,
                            scheme: scheme.clone(),
                        },
                        on,
                    ],
                    Ops::new(),
                )),
                Some(d) if d.scheme == *scheme => Ok((
                    if d.replication_enabled {
                        vec![]
                    } else {
                        vec![on]
                    },
                    Ops::new(),
                )),
                Some(_) => Err(self.error(
                    ErrorCode::Runtime,
                    format!("database '{db}' exists on the slave with another partition scheme"),
                )),
            };
        }
        let d = self
            .database(token, db, need)
            .await?
            .ok_or_else(missing_db)?;
        let table = |name: &str| -> Result<TableMeta, RemoteError> {
            d.tables.get(name).cloned().ok_or_else(|| {
                self.error(
                    ErrorCode::NotFound,
                    format!("table '{name}' does not exist in database '{db}' on the slave"),
                )
            })
        };
        let whole = |name: &str, action: ChunkAction| -> Result<Ops, RemoteError> {
            Ok(Session::all_chunks(&d, &table(name)?, &action))
        };
        let ops = match data {
            TaskData::Append {
                table: name,
                data: rows,
                ..
            }
            | TaskData::Upsert {
                table: name,
                data: rows,
                ..
            } => {
                let t = table(name)?;
                let keys = match data {
                    TaskData::Upsert { keys, .. } => Some(keys.as_slice()),
                    _ => None,
                };
                let routed =
                    route_rows(&d, &t, rows).map_err(|e| self.error(ErrorCode::Runtime, e))?;
                // Partitions placed already need no round trip to the controller.
                let known: BTreeMap<u32, String> = routed
                    .by_part
                    .keys()
                    .filter_map(|p| t.chunks.get(p).map(|n| (*p, n.clone())))
                    .collect();
                if routed.rows == 0 {
                    Ops::new()
                } else if known.len() == routed.by_part.len() {
                    append_ops(&d, &t, &routed, &known, keys)
                        .map_err(|e| self.error(ErrorCode::Runtime, e))?
                } else {
                    let placement = match self
                        .link
                        .call(ControllerRequest::PlaceChunks {
                            token: token.to_string(),
                            db: db.to_string(),
                            table: name.clone(),
                            partitions: routed.by_part.keys().copied().collect(),
                        })
                        .await?
                    {
                        ControllerReply::Placement(p) => p,
                        other => return Err(self.unexpected(other)),
                    };
                    append_ops(&d, &t, &routed, &placement, keys)
                        .map_err(|e| self.error(ErrorCode::Runtime, e))?
                }
            }
            TaskData::SqlUpdate {
                table: name,
                set,
                filter,
                ..
            } => whole(
                name,
                ChunkAction::Update {
                    set: set.clone(),
                    filter: filter.clone(),
                },
            )?,
            TaskData::SqlDelete {
                table: name,
                filter,
                ..
            } => whole(
                name,
                ChunkAction::Delete {
                    filter: filter.clone(),
                },
            )?,
            TaskData::TruncateTable { table: name, .. } => whole(name, ChunkAction::Truncate)?,
            TaskData::DropTable { table: name, .. } => whole(name, ChunkAction::Drop)?,
            TaskData::DropDb { .. } => Session::db_chunks(&d, &ChunkAction::Drop),
            TaskData::DropPartition {
                table: name,
                partitions,
                ..
            } => Session::some_chunks(&d, &table(name)?, partitions, &ChunkAction::Drop),
            TaskData::ReplaceColumn {
                table: name,
                column,
                ty,
                ..
            } => {
                let t = table(name)?;
                let col = t.column(column).ok_or_else(|| {
                    self.error(
                        ErrorCode::NotFound,
                        format!("table '{name}' has no column '{column}' on the slave"),
                    )
                })?;
                Session::all_chunks(
                    &d,
                    &t,
                    &ChunkAction::Convert {
                        column: col.id,
                        to: *ty,
                    },
                )
            }
            TaskData::CreateDomain { .. }
            | TaskData::CreateTable { .. }
            | TaskData::AddPartitions { .. }
            | TaskData::AddColumn { .. }
            | TaskData::DropColumn { .. }
            | TaskData::RenameTable { .. }
            | TaskData::SetColumnComment { .. }
            | TaskData::RenameColumn { .. } => Ops::new(),
        };
        Ok((data.catalog_changes(), ops))
    }
}
