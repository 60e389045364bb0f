//! The master side of replication on the controller: serving slave clusters (login,
//! registration, pulls with long polling), deciding which task data the data nodes may delete,
//! and the master's status functions.
//!
//! The send queue itself is part of the metadata ([`crate::meta::MetaState::tasks`]): a task is
//! numbered in the same command that records its transaction's commit.

use std::time::Duration;

use xrepl_core::value::{Scalar, Table, Value, Vector};
use xrepl_proto::rpc::{ErrorCode, RemoteError, ReplicationRequest, Reply, Response};
use xrepl_proto::task::TaskInfo;

use crate::functions::Caller;
use crate::meta::{MetaCommand, KEEP_FINISHED_TASKS};
use crate::Controller;

/// Most tasks one pull answers, whatever the slave asks.
pub const PULL_MAX: u32 = 10_000;
/// Longest a pull waits for a task, whatever the slave asks.
pub const PULL_WAIT_MAX_MS: u32 = 10_000;

fn table(names: &[&str], columns: Vec<Vector>) -> Table {
    Table::new(names.iter().map(|s| s.to_string()).collect(), columns).unwrap_or_else(|_| Table {
        names: vec![],
        columns: vec![],
    })
}

impl Controller {
    fn now_ns() -> i64 {
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
    }

    /// The administrator behind a slave's token; anything else is refused and logged.
    fn slave_caller(&self, token: &str, what: &str) -> Result<Caller, RemoteError> {
        let refused = |message: String| {
            tracing::warn!("replication request refused ({what}): {message}");
            self.refuse(ErrorCode::AccessDenied, message)
        };
        let caller = self.caller(token).map_err(|e| refused(e.message))?;
        if !caller.is_admin {
            return Err(refused(format!(
                "user '{}' is not an administrator of the master; a slave logs in with clusterReplicationMasterUsername/Password",
                caller.user
            )));
        }
        Ok(caller)
    }

    /// Answers a request from a slave cluster.
    pub async fn handle_replication(&self, req: ReplicationRequest) -> Response {
        match req {
            ReplicationRequest::Login { user, password } => {
                let r = self.login(&user, &password).await;
                if let Err(e) = &r {
                    tracing::warn!(%user, "slave login refused: {}", e.message);
                }
                if let Ok(Reply::LoggedIn {
                    is_admin: false, ..
                }) = &r
                {
                    tracing::warn!(%user, "slave login refused: not an administrator");
                    return Err(self.refuse(
                        ErrorCode::AccessDenied,
                        format!("user '{user}' is not an administrator of the master cluster"),
                    ));
                }
                r
            }
            ReplicationRequest::Register { token, slave } => {
                self.slave_caller(&token, "register")?;
                let max = self.cfg.replication.as_ref().map_or(0, |r| r.slave_num);
                self.meta
                    .apply(MetaCommand::RegisterSlave {
                        slave: slave.clone(),
                        max,
                        now_ms: Self::now_ns() / 1_000_000,
                    })
                    .await
                    .map_err(|e| {
                        tracing::warn!(%slave, "slave registration refused: {e}");
                        e.to_remote(&self.cfg.alias)
                    })?;
                tracing::info!(%slave, "slave cluster registered");
                Ok(Reply::Done)
            }
            ReplicationRequest::Pull {
                token,
                slave,
                after,
                finished,
                max,
                wait_ms,
            } => {
                self.slave_caller(&token, "pull")?;
                self.pull(&slave, after, finished, max, wait_ms).await
            }
            ReplicationRequest::FetchTaskData { .. } => Err(self.refuse(
                ErrorCode::BadRequest,
                "task data is served by the data node named in the task (srcIP:srcPort), not by the controller",
            )),
            ReplicationRequest::DataNodes { token } => {
                self.slave_caller(&token, "data nodes")?;
                Ok(Reply::Sites(
                    self.nodes
                        .live_data_nodes()
                        .into_iter()
                        .map(|n| n.site)
                        .collect(),
                ))
            }
            ReplicationRequest::Checksums { .. } => Err(self.refuse(
                ErrorCode::BadRequest,
                "checksums are computed by a master data node, not by the controller",
            )),
        }
    }

    async fn pull(
        &self,
        slave: &str,
        after: u64,
        finished: Vec<u64>,
        max: u32,
        wait_ms: u32,
    ) -> Response {
        if !self.meta.read(|s| s.slaves.contains_key(slave)) {
            return Err(self.refuse(
                ErrorCode::NotFound,
                format!("slave cluster {slave} is not registered with this master; register first"),
            ));
        }
        if !finished.is_empty() {
            self.meta
                .apply(MetaCommand::SlaveProgress {
                    slave: slave.to_string(),
                    finished,
                    now_ms: Self::now_ns() / 1_000_000,
                })
                .await
                .map_err(|e| e.to_remote(&self.cfg.alias))?;
        }
        self.last_pull.insert(slave.to_string(), Self::now_ns());
        let max = max.clamp(1, PULL_MAX) as usize;
        let deadline = tokio::time::Instant::now()
            + Duration::from_millis(wait_ms.min(PULL_WAIT_MAX_MS).into());
        loop {
            // Ask to be woken before looking, so a task queued in between is not missed.
            let woken = self.task_added.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let tasks: Vec<TaskInfo> = self.meta.read(|s| {
                let from = after.max(s.repl.truncated_upto) + 1;
                s.tasks
                    .range(from..)
                    .take(max)
                    .map(|(_, t)| t.clone())
                    .collect()
            });
            if !tasks.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(Reply::Tasks(tasks));
            }
            if tokio::time::timeout_at(deadline, woken).await.is_err() {
                return Ok(Reply::Tasks(vec![]));
            }
        }
    }

    /// Of the transactions whose task data a data node holds, those that need it no more: a
    /// truncated task, a transaction that made no task (aborted, or on a database that is not
    /// replicated), one this controller never heard of. Undecided ones are kept.
    pub fn sweepable(&self, tids: &[u64]) -> Vec<u64> {
        self.meta.read(|s| {
            tids.iter()
                .copied()
                .filter(|tid| match s.task_of_tid.get(tid) {
                    Some(task) => *task <= s.repl.truncated_upto,
                    None => !s.open.contains_key(tid),
                })
                .collect()
        })
    }

    /// `startClusterReplication()` / `stopClusterReplication()` on a master.
    pub(crate) async fn set_master_enabled(&self, enabled: bool) -> Result<Value, RemoteError> {
        self.meta
            .apply(MetaCommand::SetReplicationEnabled { enabled })
            .await
            .map_err(|e| e.to_remote(&self.cfg.alias))?;
        tracing::info!(
            "replication {} on the master",
            if enabled { "ENABLED" } else { "DISABLED" }
        );
        Ok(Value::Void)
    }

    /// `getMasterReplicationStatus([limit])`: the latest finished tasks (at most 10,000, and at
    /// most `limit`), then the unfinished ones from the oldest, `limit` rows in all.
    pub(crate) fn master_status(&self, limit: Option<usize>) -> Table {
        let rows: Vec<(TaskInfo, bool)> = self.meta.read(|s| {
            let upto = s.repl.truncated_upto;
            let cap = limit.unwrap_or(usize::MAX);
            let finished: Vec<&TaskInfo> = s.tasks.range(..=upto).map(|(_, t)| t).collect();
            let keep = finished.len().min(KEEP_FINISHED_TASKS).min(cap);
            let mut rows: Vec<(TaskInfo, bool)> = finished[finished.len() - keep..]
                .iter()
                .map(|t| ((*t).clone(), true))
                .collect();
            rows.extend(
                s.tasks
                    .range(upto + 1..)
                    .take(cap - keep)
                    .map(|(_, t)| (t.clone(), false)),
            );
            rows
        });
        let text = |f: &dyn Fn(&TaskInfo) -> String| {
            Vector::String(rows.iter().map(|(t, _)| f(t)).collect())
        };
        let long =
            |f: &dyn Fn(&TaskInfo) -> i64| Vector::Long(rows.iter().map(|(t, _)| f(t)).collect());
        table(
            &[
                "taskId",
                "tid",
                "groupId",
                "operationType",
                "submitTime",
                "dbName",
                "tableName",
                "srcIP",
                "srcPort",
                "isTruncated",
            ],
            vec![
                long(&|t| t.task_id as i64),
                long(&|t| t.tid as i64),
                long(&|t| t.group_id as i64),
                text(&|t| t.op.name().to_string()),
                Vector::NanoTimestamp(rows.iter().map(|(t, _)| t.submit_ns).collect()),
                text(&|t| t.db.clone()),
                text(&|t| t.table.clone()),
                text(&|t| t.src_host.clone()),
                Vector::Int(rows.iter().map(|(t, _)| i32::from(t.src_port)).collect()),
                Vector::Bool(rows.iter().map(|(_, tr)| i8::from(*tr)).collect()),
            ],
        )
    }

    /// `getRecentSlaveReplicationInfo()`: one row per registered slave cluster.
    pub(crate) fn recent_slaves(&self) -> Table {
        let rows: Vec<(String, u64, i64)> = self.meta.read(|s| {
            s.slaves
                .iter()
                .map(|(name, info)| {
                    let pulled = self
                        .last_pull
                        .get(name)
                        .map(|t| *t)
                        .unwrap_or(info.last_report_ms.saturating_mul(1_000_000));
                    (name.clone(), info.last_finished(), pulled)
                })
                .collect()
        });
        table(
            &[
                "connectedController",
                "allControllersInRaft",
                "lastFinishedTaskId",
                "lastPullTime",
            ],
            vec![
                Vector::String(rows.iter().map(|r| r.0.clone()).collect()),
                Vector::String(rows.iter().map(|r| r.0.clone()).collect()),
                Vector::Long(rows.iter().map(|r| r.1 as i64).collect()),
                Vector::NanoTimestamp(rows.iter().map(|r| r.2).collect()),
            ],
        )
    }

    /// `getDatabaseClusterReplicationStatus()`: `dbName, enabled, executionSet` per database.
    pub(crate) fn replication_flags(&self) -> Table {
        let rows: Vec<(String, bool, u8)> = self.meta.read(|s| {
            s.catalog
                .dbs
                .values()
                .map(|d| (d.path.clone(), d.replication_enabled, d.execution_set))
                .collect()
        });
        table(
            &["dbName", "enabled", "executionSet"],
            vec![
                Vector::String(rows.iter().map(|r| r.0.clone()).collect()),
                Vector::Bool(rows.iter().map(|r| i8::from(r.1)).collect()),
                Vector::Int(rows.iter().map(|r| i32::from(r.2)).collect()),
            ],
        )
    }

    /// The optional `limit` argument: a positive integer, or -1 / nothing for no limit.
    pub(crate) fn limit_arg(
        &self,
        name: &str,
        args: &[Value],
    ) -> Result<Option<usize>, RemoteError> {
        let bad = || {
            self.refuse(
                ErrorCode::BadRequest,
                format!("{name}: limit must be a positive integer or -1"),
            )
        };
        match args {
            [] => Ok(None),
            [Value::Scalar(s)] => {
                let n = match s {
                    Scalar::Int(n) => i64::from(*n),
                    Scalar::Long(n) => *n,
                    _ => return Err(bad()),
                };
                match n {
                    -1 => Ok(None),
                    n if n > 0 => Ok(Some(usize::try_from(n).map_err(|_| bad())?)),
                    _ => Err(bad()),
                }
            }
            _ => Err(self.refuse(
                ErrorCode::BadRequest,
                format!(
                    "{name} takes at most one argument (limit), got {}",
                    args.len()
                ),
            )),
        }
    }
}
