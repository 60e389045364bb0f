//! Serving slave clusters: login (master administrators only), registration (at most
//! `clusterReplicationSlaveNum`), pulls with long polling that also report the slave's
//! progress, and the sites of the live data nodes.

use std::time::Duration;

use xrepl_proto::rpc::{ErrorCode, RemoteError, ReplicationReply, ReplicationRequest};
use xrepl_proto::task::TaskInfo;

use super::{now_ns, Master};
use crate::auth::Caller;
use crate::meta::MetaCommand;

/// Most tasks one pull answers, whatever the slave asks.
pub const PULL_MAX: u32 = 10_000;
/// Longest a pull waits for a task, whatever the slave asks.
pub const PULL_WAIT_MAX_MS: u32 = 10_000;
/// Most task data one pull answer carries, whatever room the slave has.
pub const PULL_INLINE_MAX: usize = 8 << 20;

impl Master {
    /// The administrator behind a slave's token; anything else is refused and logged.
    fn slave_caller(&self, token: &str, what: &str) -> Result<Caller, RemoteError> {
        let refused = |message: String| {
            tracing::warn!("replication request refused ({what}): {message}");
            self.refuse(ErrorCode::AccessDenied, message)
        };
        let caller = self.auth.caller(token).map_err(|e| refused(e.message))?;
        if !caller.is_admin {
            return Err(refused(format!(
                "user '{}' is not an administrator of the master; a slave logs in with clusterReplicationMasterUsername/Password",
                caller.user
            )));
        }
        Ok(caller)
    }

    /// Answers a request from a slave cluster.
    pub async fn handle(&self, req: ReplicationRequest) -> Result<ReplicationReply, RemoteError> {
        match req {
            ReplicationRequest::Login { user, password } => {
                let login = self.auth.login(&user, &password).await.inspect_err(|e| {
                    tracing::warn!(%user, "slave login refused: {}", e.message);
                })?;
                if !login.is_admin {
                    tracing::warn!(%user, "slave login refused: not an administrator");
                    return Err(self.refuse(
                        ErrorCode::AccessDenied,
                        format!("user '{user}' is not an administrator of the master cluster"),
                    ));
                }
                Ok(ReplicationReply::LoggedIn {
                    user: login.user,
                    is_admin: login.is_admin,
                    token: login.token,
                })
            }
            ReplicationRequest::Register { token, slave } => {
                self.slave_caller(&token, "register")?;
                self.meta
                    .apply(MetaCommand::RegisterSlave {
                        slave: slave.clone(),
                        max: self.slave_num,
                        now_ms: now_ns() / 1_000_000,
                    })
                    .await
                    .map_err(|e| {
                        tracing::warn!(%slave, "slave registration refused: {e}");
                        e.to_remote(&self.alias)
                    })?;
                tracing::info!(%slave, "slave cluster registered");
                Ok(ReplicationReply::Done)
            }
            ReplicationRequest::Pull {
                token,
                slave,
                after,
                finished,
                max,
                wait_ms,
                inline_room,
            } => {
                self.slave_caller(&token, "pull")?;
                let tasks = self.pull(&slave, after, finished, max, wait_ms).await?;
                let room = usize::try_from(inline_room)
                    .unwrap_or(usize::MAX)
                    .min(PULL_INLINE_MAX);
                let data = self
                    .inline_cache()
                    .copies(tasks.iter().map(|t| t.task_id), room);
                Ok(ReplicationReply::Tasks { tasks, data })
            }
            ReplicationRequest::FetchTaskData { .. }
            | ReplicationRequest::FetchTasksData { .. } => Err(self.refuse(
                ErrorCode::BadRequest,
                "task data is served by the data node named in the task (srcIP:srcPort), not by the controller",
            )),
            ReplicationRequest::DataNodes { token } => {
                self.slave_caller(&token, "data nodes")?;
                Ok(ReplicationReply::Sites(
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

    /// Records what `slave` finished, then answers the tasks after `after`, waiting up to
    /// `wait_ms` for one.
    async fn pull(
        &self,
        slave: &str,
        after: u64,
        finished: Vec<u64>,
        max: u32,
        wait_ms: u32,
    ) -> Result<Vec<TaskInfo>, RemoteError> {
        if !self.meta.read(|s| s.send.slaves.contains_key(slave)) {
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
                    now_ms: now_ns() / 1_000_000,
                })
                .await
                .map_err(|e| e.to_remote(&self.alias))?;
            // Data of tasks every slave has finished is needed no more.
            let upto = self.meta.read(|s| s.send.repl.truncated_upto);
            self.inline_cache().forget_upto(upto);
        }
        self.last_pull.insert(slave.to_string(), now_ns());
        let max = max.clamp(1, PULL_MAX) as usize;
        let deadline = tokio::time::Instant::now()
            + Duration::from_millis(wait_ms.min(PULL_WAIT_MAX_MS).into());
        loop {
            // Ask to be woken before looking, so a task queued in between is not missed.
            let woken = self.task_added.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let tasks = self.meta.read(|s| s.send.after(after, max));
            if !tasks.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(tasks);
            }
            if tokio::time::timeout_at(deadline, woken).await.is_err() {
                return Ok(vec![]);
            }
        }
    }
}
