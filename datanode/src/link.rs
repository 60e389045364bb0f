//! The data node's connection to its controller: registration, heartbeats, and calls, one
//! typed method per request, so the rest of the data node never matches a controller reply.
//!
//! Registration is retried with backoff until the controller answers, so data nodes may start
//! before their controller. A failed heartbeat, or a controller that no longer knows the node
//! (it restarted), sends the node back to registering.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::collections::BTreeMap;

use tokio::sync::watch;
use xrepl_core::catalog::{CatalogChange, DatabaseMeta, Right};
use xrepl_core::cluster_key::ClusterKey;
use xrepl_core::config::DataNodeConfig;
use xrepl_core::value::Value;
use xrepl_proto::rpc::{
    CatalogCheck, ControllerReply, ControllerRequest, ErrorCode, NodeTls, RemoteError, RpcClient,
    RpcError, SnapshotWork,
};
use xrepl_proto::task::{AttemptProof, ReplayAssignment, ReplayFailure, ReplayOf, TaskMeta};
use xrepl_proto::ticket::FetchTicket;
use xrepl_proto::txn::{TxState, Verdict};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Time limit of one call to the controller.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// A login may wait out the controller's throttling (at most 30 s) besides.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(75);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// A logged-in user, as the controller vouches for a password or a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedIn {
    pub user: String,
    pub is_admin: bool,
    pub token: String,
    /// When the token expires unless renewed, milliseconds since the epoch.
    pub expires_ms: i64,
}

/// A session that still holds: who it is, and a fresh token when its own is past half its
/// life.
#[derive(Debug, Clone)]
pub struct SessionCheck {
    pub user: String,
    pub is_admin: bool,
    pub renewed: Option<String>,
}

/// A transaction's decision as the coordinator asks the controller to record it.
#[derive(Debug, Clone)]
pub struct Decide {
    pub tid: u64,
    pub verdict: Verdict,
    pub reason: String,
    pub changes: Vec<CatalogChange>,
    /// The task a commit makes when its database is replicated (a master).
    pub task: Option<TaskMeta>,
    /// That task's encoded data, when small enough to travel with it.
    pub task_data: Option<Vec<u8>>,
    /// The tasks a commit finishes (a slave's replay of one task or a batch, in order).
    pub replay: Vec<ReplayOf>,
    /// The catalog the commit's chunk operations were planned with.
    pub check: Option<CatalogCheck>,
    /// The data nodes asked to prepare.
    pub participants: Vec<String>,
}

/// What the controller recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub committed: bool,
    pub reason: String,
    pub task_id: Option<u64>,
}

/// How the attempts at the tasks a worker was handed ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptsEnd {
    /// Committed, or found applied already.
    pub finished: Vec<u64>,
    /// The one that did not commit.
    pub failed: Option<ReplayFailure>,
    /// Not tried (one before them failed, or the batch was cut).
    pub released: Vec<u64>,
    /// The hand-out they came in.
    pub attempt: Option<AttemptProof>,
}

impl AttemptsEnd {
    /// Nothing to report.
    pub fn is_empty(&self) -> bool {
        self.finished.is_empty() && self.failed.is_none() && self.released.is_empty()
    }
}

pub struct ControllerLink {
    alias: String,
    site: String,
    controller_addr: String,
    max_frame: usize,
    heartbeat_interval: Duration,
    /// This process's start (ns since the epoch): which process a registration comes from.
    incarnation: u64,
    client: Mutex<Option<RpcClient>>,
    /// The cluster key, proved on the connection to the controller.
    key: ClusterKey,
    /// How this node listens and connects (`enableTLS`, `enableClusterReplicationSSL`).
    tls: NodeTls,
    /// Set when the controller and this node hold different cluster keys: the node stops.
    not_member: std::sync::OnceLock<String>,
}

impl ControllerLink {
    pub fn new(cfg: &DataNodeConfig, key: ClusterKey, tls: NodeTls) -> ControllerLink {
        ControllerLink {
            key,
            tls,
            not_member: std::sync::OnceLock::new(),
            alias: cfg.alias.clone(),
            site: format!("{}:{}", cfg.host, cfg.port),
            controller_addr: cfg.controller.site(),
            max_frame: cfg.max_frame_size,
            heartbeat_interval: cfg.heartbeat_interval,
            incarnation: chrono::Utc::now()
                .timestamp_nanos_opt()
                .map_or(0, |n| n as u64),
            client: Mutex::new(None),
        }
    }

    /// How this node listens and connects: within its cluster, and to a master cluster.
    pub fn tls(&self) -> &NodeTls {
        &self.tls
    }

    fn current(&self) -> Option<RpcClient> {
        let guard = self.client.lock().unwrap_or_else(|p| p.into_inner());
        guard.as_ref().filter(|c| c.is_open()).cloned()
    }

    /// An open connection to the controller, made now if needed.
    async fn client(&self) -> Result<RpcClient, RpcError> {
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let c = RpcClient::connect_member(
            &self.controller_addr,
            &self.key,
            &self.tls.cluster,
            self.max_frame,
            CONNECT_TIMEOUT,
        )
        .await
        .inspect_err(|e| {
            if matches!(e, RpcError::NotAMember { .. }) {
                let _ = self.not_member.set(e.to_string());
            }
        })?;
        *self.client.lock().unwrap_or_else(|p| p.into_inner()) = Some(c.clone());
        Ok(c)
    }

    /// Calls the controller; a connection failure is reported as `Unavailable`.
    async fn call(&self, req: ControllerRequest) -> Result<ControllerReply, RemoteError> {
        self.call_with(req, CALL_TIMEOUT).await
    }

    /// [`Self::call`] with its own timeout.
    async fn call_with(
        &self,
        req: ControllerRequest,
        timeout: Duration,
    ) -> Result<ControllerReply, RemoteError> {
        let unavailable = |e: RpcError| RemoteError {
            node: self.alias.clone(),
            code: ErrorCode::Unavailable,
            message: format!("the controller is unreachable: {e}"),
        };
        let client = self.client().await.map_err(unavailable)?;
        client
            .call_timeout(req, timeout)
            .await
            .map_err(unavailable)?
    }

    /// An answer of the controller's family that this request does not get.
    fn unexpected(&self, what: &str, reply: ControllerReply) -> RemoteError {
        RemoteError {
            node: self.alias.clone(),
            code: ErrorCode::Internal,
            message: format!("unexpected answer from the controller to {what}: {reply:?}"),
        }
    }

    /// Checks a user's password; a token for later calls. `peer` is the client's address
    /// (failed logins are throttled per user and per address, so the answer may take up to
    /// 30 s).
    pub async fn login(
        &self,
        user: &str,
        password: &str,
        peer: &str,
    ) -> Result<LoggedIn, RemoteError> {
        let reply = self
            .call_with(
                ControllerRequest::Login {
                    user: user.to_string(),
                    password: password.to_string(),
                    peer: peer.to_string(),
                },
                LOGIN_TIMEOUT,
            )
            .await?;
        self.logged_in(reply, "a login")
    }

    fn logged_in(&self, reply: ControllerReply, what: &str) -> Result<LoggedIn, RemoteError> {
        match reply {
            ControllerReply::LoggedIn {
                user,
                is_admin,
                token,
                expires_ms,
            } => Ok(LoggedIn {
                user,
                is_admin,
                token,
                expires_ms,
            }),
            other => Err(self.unexpected(what, other)),
        }
    }

    /// `changePwd(old, new)` for the user of `token`: the session's new token.
    pub async fn change_password(
        &self,
        token: &str,
        old: &str,
        new: &str,
        peer: &str,
    ) -> Result<LoggedIn, RemoteError> {
        let reply = self
            .call_with(
                ControllerRequest::ChangePassword {
                    token: token.to_string(),
                    old: old.to_string(),
                    new: new.to_string(),
                    peer: peer.to_string(),
                },
                LOGIN_TIMEOUT,
            )
            .await?;
        self.logged_in(reply, "a change of password")
    }

    /// Whether the session of `token` still holds (see [`ControllerRequest::Session`]).
    pub async fn check_session(&self, token: &str) -> Result<SessionCheck, RemoteError> {
        match self
            .call(ControllerRequest::Session {
                token: token.to_string(),
            })
            .await?
        {
            ControllerReply::Session {
                user,
                is_admin,
                renewed,
            } => Ok(SessionCheck {
                user,
                is_admin,
                renewed,
            }),
            other => Err(self.unexpected("a session check", other)),
        }
    }

    /// Ends the session of `token` on every node.
    pub async fn logout(&self, token: &str) -> Result<(), RemoteError> {
        match self
            .call(ControllerRequest::Logout {
                token: token.to_string(),
            })
            .await?
        {
            ControllerReply::Done => Ok(()),
            other => Err(self.unexpected("a logout", other)),
        }
    }

    /// A replicated database's metadata, for a slave that holds a fetch ticket (`None`: it
    /// does not exist; refused when it is not replicated).
    pub async fn replicated_database(&self, db: &str) -> Result<Option<DatabaseMeta>, RemoteError> {
        match self
            .call(ControllerRequest::ReplicatedDatabase { db: db.to_string() })
            .await?
        {
            ControllerReply::Database(d) => Ok(d),
            other => Err(self.unexpected("a catalog read", other)),
        }
    }

    /// Runs a controller function as the user behind `token`.
    pub async fn call_function(
        &self,
        token: &str,
        function: &str,
        args: Vec<Value>,
    ) -> Result<Value, RemoteError> {
        match self
            .call(ControllerRequest::Call {
                token: token.to_string(),
                function: function.to_string(),
                args,
            })
            .await?
        {
            ControllerReply::Value(v) => Ok(v),
            other => Err(self.unexpected(function, other)),
        }
    }

    /// `getDatabaseClusterReplicationStatus()`'s table, for an administrator.
    pub async fn replication_flags(&self, token: &str) -> Result<Value, RemoteError> {
        match self
            .call(ControllerRequest::ReplicationFlags {
                token: token.to_string(),
            })
            .await?
        {
            ControllerReply::Value(v) => Ok(v),
            other => Err(self.unexpected("getDatabaseClusterReplicationStatus", other)),
        }
    }

    /// A database's metadata, if the user holds `need` on it (`None`: it does not exist).
    pub async fn database(
        &self,
        token: &str,
        db: &str,
        need: Option<Right>,
    ) -> Result<Option<DatabaseMeta>, RemoteError> {
        match self
            .call(ControllerRequest::GetDatabase {
                token: token.to_string(),
                db: db.to_string(),
                need,
            })
            .await?
        {
            ControllerReply::Database(d) => Ok(d),
            other => Err(self.unexpected("a catalog read", other)),
        }
    }

    /// Places the chunks of `partitions` that have no data node yet; where each one is.
    pub async fn place_chunks(
        &self,
        token: &str,
        db: &str,
        table: &str,
        partitions: Vec<u32>,
    ) -> Result<BTreeMap<u32, String>, RemoteError> {
        match self
            .call(ControllerRequest::PlaceChunks {
                token: token.to_string(),
                db: db.to_string(),
                table: table.to_string(),
                partitions,
            })
            .await?
        {
            ControllerReply::Placement(p) => Ok(p),
            other => Err(self.unexpected("a chunk placement", other)),
        }
    }

    /// `count` tids leased to this node for the transactions it will coordinate:
    /// `first..=last`.
    pub async fn lease_tids(&self, token: &str, count: u32) -> Result<(u64, u64), RemoteError> {
        match self
            .call(ControllerRequest::LeaseTids {
                token: token.to_string(),
                coordinator: self.alias.clone(),
                count,
            })
            .await?
        {
            ControllerReply::TidRange { first, last } => Ok((first, last)),
            other => Err(self.unexpected("a lease of transaction ids", other)),
        }
    }

    /// Records a transaction's decision durably.
    pub async fn decide(&self, token: &str, d: Decide) -> Result<Decided, RemoteError> {
        match self
            .call(ControllerRequest::Decide {
                token: token.to_string(),
                tid: d.tid,
                commit: d.verdict.is_commit(),
                reason: d.reason,
                changes: d.changes,
                task: d.task.map(Box::new),
                task_data: d.task_data.map(serde_bytes::ByteBuf::from),
                replay: d.replay,
                check: d.check,
                participants: d.participants,
            })
            .await?
        {
            ControllerReply::Decided {
                committed,
                reason,
                task_id,
            } => Ok(Decided {
                committed,
                reason,
                task_id,
            }),
            other => Err(self.unexpected("a decision", other)),
        }
    }

    /// Reports transactions whose decisions this node has applied durably.
    pub async fn settled(&self, tids: Vec<u64>) -> Result<(), RemoteError> {
        match self
            .call(ControllerRequest::Settled {
                alias: self.alias.clone(),
                tids,
            })
            .await?
        {
            ControllerReply::Done => Ok(()),
            other => Err(self.unexpected("a settled report", other)),
        }
    }

    /// What became of a transaction prepared here `held_ms` ago.
    pub async fn tx_outcome(&self, tid: u64, held_ms: u64) -> Result<TxState, RemoteError> {
        match self
            .call(ControllerRequest::TxOutcome { tid, held_ms })
            .await?
        {
            ControllerReply::Outcome(s) => Ok(s),
            other => Err(self.unexpected("an outcome question", other)),
        }
    }

    /// Of the transactions whose task data this node holds, those nobody needs any more.
    pub async fn sweepable(&self, tids: Vec<u64>) -> Result<Vec<u64>, RemoteError> {
        match self.call(ControllerRequest::SweepTaskData { tids }).await? {
            ControllerReply::Tids(t) => Ok(t),
            other => Err(self.unexpected("a task data sweep", other)),
        }
    }

    /// A bootstrap chunk for this node to snapshot (`None`: none now); `release` gives back
    /// the one handed out before that could not be sent, with why.
    pub async fn take_snapshot_work(
        &self,
        release: Option<(u64, u32, String)>,
    ) -> Result<Option<SnapshotWork>, RemoteError> {
        match self
            .call(ControllerRequest::TakeSnapshotWork {
                node: self.alias.clone(),
                release,
            })
            .await?
        {
            ControllerReply::SnapshotWork(w) => Ok(w),
            other => Err(self.unexpected("a request for bootstrap work", other)),
        }
    }

    /// Where a slave reaches its master, and the slave's fetch ticket there.
    pub async fn master_access(&self, token: &str) -> Result<(String, FetchTicket), RemoteError> {
        match self
            .call(ControllerRequest::MasterAccess {
                token: token.to_string(),
            })
            .await?
        {
            ControllerReply::MasterAccess { master, ticket } => Ok((master, ticket)),
            other => Err(self.unexpected("a question for the master's address", other)),
        }
    }

    /// Tasks for a replay worker of this node (at most `max`), waiting up to `wait_ms`
    /// (`None`: none came).
    pub async fn take_replay_task(
        &self,
        token: &str,
        wait_ms: u32,
        max: u32,
        ended: AttemptsEnd,
    ) -> Result<Option<ReplayAssignment>, RemoteError> {
        match self
            .call(ControllerRequest::TakeReplayTask {
                token: token.to_string(),
                node: self.alias.clone(),
                wait_ms,
                max,
                finished: ended.finished,
                failed: ended.failed,
                released: ended.released,
                attempt: ended.attempt,
            })
            .await?
        {
            ControllerReply::ReplayTask(a) => Ok(a),
            other => Err(self.unexpected("a request for a task", other)),
        }
    }

    /// The tasks this node's workers replay now.
    pub async fn replay_running(
        &self,
        token: &str,
        tasks: Vec<u64>,
        attempts: Vec<AttemptProof>,
    ) -> Result<(), RemoteError> {
        match self
            .call(ControllerRequest::ReplayRunning {
                token: token.to_string(),
                node: self.alias.clone(),
                tasks,
                attempts,
            })
            .await?
        {
            ControllerReply::Done => Ok(()),
            other => Err(self.unexpected("a list of running replays", other)),
        }
    }

    /// How the attempts at the tasks a worker was handed ended.
    pub async fn replay_done(&self, token: &str, end: AttemptsEnd) -> Result<(), RemoteError> {
        match self
            .call(ControllerRequest::ReplayDone {
                token: token.to_string(),
                node: self.alias.clone(),
                finished: end.finished,
                failed: end.failed,
                released: end.released,
                attempt: end.attempt,
            })
            .await?
        {
            ControllerReply::Done => Ok(()),
            other => Err(self.unexpected("the end of a replay", other)),
        }
    }

    /// Registers, then sends heartbeats, until `shutdown`; or until the controller turns out
    /// to hold another cluster key, which ends it with that reason: the node must stop.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) -> Result<(), String> {
        let mut backoff = BACKOFF_MIN;
        let mut registered = false;
        let mut failures: u64 = 0;
        loop {
            let wait = if registered {
                self.heartbeat_interval
            } else {
                backoff
            };
            let outcome = if registered {
                self.call(ControllerRequest::Heartbeat {
                    alias: self.alias.clone(),
                })
                .await
            } else {
                self.call(ControllerRequest::Register {
                    alias: self.alias.clone(),
                    site: self.site.clone(),
                    incarnation: self.incarnation,
                })
                .await
            };
            match (registered, outcome) {
                (_, Ok(_)) => {
                    if !registered {
                        tracing::info!(controller = %self.controller_addr, "registered with the controller");
                    }
                    registered = true;
                    failures = 0;
                    backoff = BACKOFF_MIN;
                }
                (true, Err(e)) => {
                    tracing::warn!("heartbeat failed, registering again: {e}");
                    registered = false;
                }
                (_, Err(e)) if self.not_member.get().is_some() => {
                    return Err(format!(
                        "this data node does not hold the cluster key of its controller {}: {e}; every node of a cluster needs the same key file (clusterKeyFile)",
                        self.controller_addr
                    ));
                }
                (false, Err(e)) => {
                    failures += 1;
                    // Say it once loudly, then quietly while the controller stays away.
                    if failures == 1 || failures.is_multiple_of(50) {
                        tracing::warn!(
                            "cannot register with the controller yet (attempt {failures}): {e}"
                        );
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
            tokio::select! {
                _ = shutdown.changed() => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}
