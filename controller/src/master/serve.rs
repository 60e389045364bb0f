//! Serving slave clusters: login (master administrators and users holding
//! `CLUSTER_REPLICATION`), registration (at most `clusterReplicationSlaveNum`; a slave belongs
//! to the user that registered it), pulls with long polling that also report the slave's
//! progress and bring a fresh fetch ticket, and the sites of the live data nodes.

use std::time::Duration;

use xrepl_proto::rpc::{
    ErrorCode, MasterPosition, RemoteError, ReplicationReply, ReplicationRequest,
};
use xrepl_proto::task::TaskInfo;
use xrepl_proto::ticket::FetchTicket;

use super::{now_ns, Master};
use crate::auth::Caller;
use crate::meta::{MetaCommand, MetaOutcome};

/// Most tasks one pull answers, whatever the slave asks.
pub const PULL_MAX: u32 = 10_000;
/// Longest a pull waits for a task, whatever the slave asks.
pub const PULL_WAIT_MAX_MS: u32 = 10_000;
/// Most task data one pull answer carries, whatever room the slave has.
pub const PULL_INLINE_MAX: usize = 8 << 20;

impl Master {
    /// Whether `user` may act for a slave: an administrator, or a holder of
    /// `CLUSTER_REPLICATION`.
    fn may_replicate(&self, user: &str) -> bool {
        self.meta.read(|s| {
            s.users
                .get(user)
                .is_some_and(|u| u.is_admin || u.grants.may_replicate())
        })
    }

    /// The user behind a slave's token, who must hold the replication right; anything else is
    /// refused and logged.
    fn slave_caller(&self, token: &str, what: &str) -> Result<Caller, RemoteError> {
        let refused = |message: String| {
            tracing::warn!("replication request refused ({what}): {message}");
            self.refuse(ErrorCode::AccessDenied, message)
        };
        let caller = self.auth.caller(token).map_err(|e| refused(e.message))?;
        if !self.may_replicate(&caller.user) {
            return Err(refused(format!(
                "user '{}' may not replicate from this master: it needs grant(\"{0}\", CLUSTER_REPLICATION) (or to be an administrator); a slave logs in with clusterReplicationMasterUsername/Password",
                caller.user
            )));
        }
        Ok(caller)
    }

    /// Refuses a request for `slave` from a user other than the one it registered as.
    fn check_owner(&self, slave: &str, caller: &Caller) -> Result<(), RemoteError> {
        let owner = self
            .meta
            .read(|s| s.send.slaves.get(slave).map(|i| i.user.clone()));
        match owner {
            Some(u) if !u.is_empty() && u != caller.user => {
                tracing::warn!(%slave, user = %caller.user, "replication request refused: slave {slave} belongs to user '{u}'");
                Err(self.refuse(
                    ErrorCode::AccessDenied,
                    format!("slave cluster {slave} is registered by user '{u}'; user '{}' may not act for it", caller.user),
                ))
            }
            _ => Ok(()),
        }
    }

    /// A fetch ticket for `slave`, covering every task queued so far.
    fn ticket(&self, slave: &str) -> FetchTicket {
        let upto = self.meta.read(|s| s.send.repl.last_task_id);
        FetchTicket::issue(
            &self.key,
            slave,
            upto,
            self.task_sources.clone(),
            now_ns() as u64 / 1_000_000,
        )
    }

    /// Answers a request from a slave cluster connected from `peer` (its IP address).
    pub async fn handle(
        &self,
        req: ReplicationRequest,
        peer: &str,
    ) -> Result<ReplicationReply, RemoteError> {
        match req {
            ReplicationRequest::Login { user, password } => {
                let login = self.auth.login(&user, &password, peer).await.inspect_err(|e| {
                    tracing::warn!(%user, "slave login refused: {}", e.message);
                })?;
                if !self.may_replicate(&login.user) {
                    tracing::warn!(%user, "slave login refused: no CLUSTER_REPLICATION right");
                    return Err(self.refuse(
                        ErrorCode::AccessDenied,
                        format!("user '{user}' may not replicate from this master: an administrator must grant(\"{user}\", CLUSTER_REPLICATION)"),
                    ));
                }
                Ok(ReplicationReply::LoggedIn {
                    user: login.user,
                    is_admin: login.is_admin,
                    token: login.token,
                    expires_ms: login.expires_ms,
                })
            }
            ReplicationRequest::Register { token, slave } => {
                let caller = self.slave_caller(&token, "register")?;
                self.check_owner(&slave, &caller)?;
                self.meta
                    .apply(MetaCommand::RegisterSlave {
                        slave: slave.clone(),
                        user: caller.user.clone(),
                        max: self.slave_num,
                        now_ms: now_ns() / 1_000_000,
                    })
                    .await
                    .map_err(|e| {
                        tracing::warn!(%slave, "slave registration refused: {e}");
                        e.to_remote(&self.alias)
                    })?;
                tracing::info!(%slave, user = %caller.user, "slave cluster registered");
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
                let caller = self.slave_caller(&token, "pull")?;
                self.check_owner(&slave, &caller)?;
                let tasks = self.pull(&slave, after, finished, max, wait_ms).await?;
                let room = usize::try_from(inline_room)
                    .unwrap_or(usize::MAX)
                    .min(PULL_INLINE_MAX);
                self.take_held(&tasks);
                let data = self
                    .inline_cache()
                    .copies(tasks.iter().map(|t| t.task_id), room);
                let upto = tasks.last().map_or(after, |t| t.task_id);
                Ok(ReplicationReply::Tasks {
                    tasks,
                    data,
                    ticket: self.ticket(&slave),
                    bootstraps: self.bootstraps(),
                    position: self.position(upto),
                })
            }
            ReplicationRequest::Position {
                token,
                slave,
                after,
            } => {
                let caller = self.slave_caller(&token, "position")?;
                self.check_owner(&slave, &caller)?;
                Ok(ReplicationReply::Position(self.position(after)))
            }
            ReplicationRequest::FetchTaskData { .. }
            | ReplicationRequest::FetchTasksData { .. } => Err(self.refuse(
                ErrorCode::BadRequest,
                "task data is served by the data node named in the task (srcIP:srcPort), not by the controller",
            )),
            ReplicationRequest::Ticket { token, slave } => {
                let caller = self.slave_caller(&token, "ticket")?;
                self.check_owner(&slave, &caller)?;
                if !self.meta.read(|s| s.send.slaves.contains_key(&slave)) {
                    return Err(self.refuse(
                        ErrorCode::NotFound,
                        format!("slave cluster {slave} is not registered with this master; register first"),
                    ));
                }
                Ok(ReplicationReply::Ticket(self.ticket(&slave)))
            }
            ReplicationRequest::Resync {
                token,
                slave,
                db,
                table,
            } => {
                let caller = self.slave_caller(&token, "resync")?;
                self.check_owner(&slave, &caller)?;
                if !self.meta.read(|s| s.send.slaves.contains_key(&slave)) {
                    return Err(self.refuse(
                        ErrorCode::NotFound,
                        format!("slave cluster {slave} is not registered with this master; register first"),
                    ));
                }
                let outcome = self
                    .meta
                    .apply(MetaCommand::StartResync {
                        db: db.clone(),
                        table: table.clone(),
                        slave: slave.clone(),
                        user: caller.user.clone(),
                        now_ms: chrono::Utc::now().timestamp_millis(),
                    })
                    .await
                    .map_err(|e| e.to_remote(&self.alias))?;
                let MetaOutcome::Job(job) = outcome else {
                    return Err(self.refuse(ErrorCode::Internal, format!("unexpected outcome {outcome:?}")));
                };
                tracing::info!(%slave, %db, table = table.as_deref().unwrap_or(""), job, "re-sync started");
                Ok(ReplicationReply::Resync { job })
            }
            ReplicationRequest::DataNodes { ticket } => {
                ticket
                    .check(&self.key, now_ns() as u64 / 1_000_000)
                    .map_err(|e| {
                        tracing::warn!("replication request refused (data nodes): {e}");
                        self.refuse(ErrorCode::AccessDenied, e)
                    })?;
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
    /// The master's newest task, and when the first task after `after` was committed.
    fn position(&self, after: u64) -> MasterPosition {
        self.meta.read(|s| MasterPosition {
            last_task: s.send.repl.last_task_id,
            next_submit_ns: s
                .send
                .tasks
                .range(after + 1, after + 1)
                .next()
                .map_or(0, |t| t.submit_ns),
        })
    }

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
        // A slave that asks for tasks the master no longer keeps (a new slave after
        // truncation, or one that lost its state) is seeded: every replicated database is
        // sent to it afresh. Its pulls wait until those re-syncs have made their first tasks,
        // so that it gets them with the tasks around them.
        let (truncated, seeding) = self
            .meta
            .read(|s| (s.send.repl.truncated_upto, s.bootstrap.runs_for(slave)));
        if after < truncated && !seeding {
            let user = self.meta.read(|s| {
                s.send
                    .slaves
                    .get(slave)
                    .map(|i| i.user.clone())
                    .unwrap_or_default()
            });
            tracing::warn!(
                %slave,
                after,
                truncated,
                "slave cluster asks for tasks that were truncated: it is seeded with a re-sync of every replicated database"
            );
            self.meta
                .apply(MetaCommand::SeedSlave {
                    slave: slave.to_string(),
                    user,
                    now_ms: now_ns() / 1_000_000,
                })
                .await
                .map_err(|e| e.to_remote(&self.alias))?;
        }
        while self.meta.read(|s| s.bootstrap.starting_for(slave)) {
            if tokio::time::Instant::now() >= deadline {
                return Ok(vec![]);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
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
