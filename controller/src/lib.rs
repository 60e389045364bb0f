//! The controller: metadata owner, user authority, and registry of the cluster's data nodes.
//!
//! Layers: [`meta`] (the state and the one function that changes it), [`nodes`] (liveness),
//! [`functions`] (controller functions called by name), and the RPC [`Service`] below that
//! routes each [`ControllerRequest`] to them.

pub mod error;
pub mod functions;
pub mod master;
pub mod meta;
pub mod nodes;
pub mod slave;

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::net::TcpListener;
use tokio::sync::watch;
use xrepl_core::auth::{hash_password, verify_password, TokenKey};
use xrepl_core::catalog::{place_chunk, CatalogChange, Right};
use xrepl_core::config::{ControllerConfig, NodeRole, ReplicationMode};
use xrepl_proto::rpc::{
    serve, ControllerRequest, ErrorCode, Hello, PeerKind, RemoteError, Reply, Request, Response,
    ServerInfo, Service,
};
use xrepl_proto::task::{ReplayOf, TaskMeta};
use xrepl_proto::txn::TxState;

pub use error::ControllerError;
use functions::Caller;
use meta::{Decision, MetaCommand, MetaHandle, MetaOutcome};
use nodes::NodeRegistry;

/// The default administrator created on first start, as in DolphinDB.
pub const DEFAULT_ADMIN: (&str, &str) = ("admin", "123456");

/// Everything a request handler needs; shared by every connection.
pub struct Controller {
    pub cfg: ControllerConfig,
    pub meta: MetaHandle,
    pub nodes: NodeRegistry,
    token_key: TokenKey,
    /// Woken whenever a task is queued, for slaves waiting in a pull.
    pub(crate) task_added: tokio::sync::Notify,
    /// When each slave last pulled (ns since the epoch); memory only.
    pub(crate) last_pull: dashmap::DashMap<String, i64>,
    /// Slave: what runs where, and the puller's shared state.
    pub(crate) slave_rt: slave::SlaveRuntime,
}

impl Controller {
    /// Opens the metadata under `cfg.home` and creates the administrator and the token secret
    /// on first start.
    pub async fn open(cfg: ControllerConfig) -> Result<Controller, ControllerError> {
        std::fs::create_dir_all(&cfg.home).map_err(|source| ControllerError::CreateHome {
            path: cfg.home.clone(),
            source,
        })?;
        let meta = MetaHandle::open(&cfg.home.join("meta"))?;
        if meta.read(|s| s.token_key.is_none()) {
            meta.apply(MetaCommand::InitTokenKey {
                key: TokenKey::generate().as_bytes().to_vec(),
            })
            .await?;
        }
        if meta.read(|s| s.users.is_empty()) {
            let (name, password) = DEFAULT_ADMIN;
            meta.apply(MetaCommand::CreateUser {
                name: name.into(),
                password_hash: hash_password(password).map_err(ControllerError::Hash)?,
                is_admin: true,
            })
            .await?;
            tracing::info!("first start: created user '{name}' (administrator)");
        }
        let token_key = meta
            .read(|s| s.token_key())
            .ok_or_else(|| ControllerError::Corrupt {
                key: "token_key".into(),
                reason: "missing or not 32 bytes".into(),
            })?;
        let nodes = NodeRegistry::new(cfg.nodes.clone(), cfg.heartbeat_timeout);
        Ok(Controller {
            cfg,
            meta,
            nodes,
            token_key,
            task_added: tokio::sync::Notify::new(),
            last_pull: dashmap::DashMap::new(),
            slave_rt: slave::SlaveRuntime::default(),
        })
    }

    fn refuse(&self, code: ErrorCode, message: impl Into<String>) -> RemoteError {
        RemoteError {
            node: self.cfg.alias.clone(),
            code,
            message: message.into(),
        }
    }

    /// Whether this controller's cluster is a replication master.
    pub fn is_master(&self) -> bool {
        self.cfg
            .replication
            .as_ref()
            .is_some_and(|r| r.mode == ReplicationMode::Master)
    }

    /// The user behind a session token, if the token is genuine and the user still exists.
    pub(crate) fn caller(&self, token: &str) -> Result<Caller, RemoteError> {
        let user = self.token_key.verify(token).ok_or_else(|| {
            self.refuse(
                ErrorCode::NotLoggedIn,
                "not logged in: call login(user, password) first",
            )
        })?;
        let is_admin = self
            .meta
            .read(|s| s.users.get(&user).map(|u| u.is_admin))
            .ok_or_else(|| {
                self.refuse(
                    ErrorCode::NotLoggedIn,
                    format!("user '{user}' no longer exists"),
                )
            })?;
        Ok(Caller { user, is_admin })
    }

    pub(crate) async fn login(&self, user: &str, password: &str) -> Response {
        let hash = self.meta.read(|s| {
            s.users
                .get(user)
                .map(|u| (u.password_hash.clone(), u.is_admin))
        });
        // Verify off the async threads: argon2 is deliberately slow.
        let checked = match hash {
            Some((h, is_admin)) => {
                let password = password.to_string();
                tokio::task::spawn_blocking(move || verify_password(&password, &h))
                    .await
                    .unwrap_or(false)
                    .then_some(is_admin)
            }
            None => None,
        };
        match checked {
            Some(is_admin) => {
                tracing::info!(%user, "login");
                Ok(Reply::LoggedIn {
                    user: user.to_string(),
                    is_admin,
                    token: self.token_key.issue(user),
                })
            }
            None => {
                tracing::warn!(%user, "login refused: wrong user name or password");
                Err(self.refuse(
                    ErrorCode::AccessDenied,
                    "The user name or password is incorrect.",
                ))
            }
        }
    }

    fn now_ms() -> i64 {
        chrono::Utc::now().timestamp_millis()
    }

    fn denied(&self, caller: &Caller, right: Right, db: &str) -> RemoteError {
        self.refuse(
            ErrorCode::AccessDenied,
            format!("user '{}' lacks {right} on {db}", caller.user),
        )
    }

    /// Checks that the caller may make every change.
    fn check_rights(&self, caller: &Caller, changes: &[CatalogChange]) -> Result<(), RemoteError> {
        let created = |db: &str| {
            changes
                .iter()
                .any(|c| matches!(c, CatalogChange::CreateDatabase { path, .. } if path == db))
        };
        for c in changes {
            let ok = self.meta.read(|s| match c {
                CatalogChange::CreateDatabase { .. } => {
                    caller.is_admin
                        || s.users
                            .get(&caller.user)
                            .is_some_and(|u| u.grants.create_databases)
                }
                // The creator of a database in this same transaction will own it.
                _ if created(c.db()) => true,
                _ => s.allows(&caller.user, c.needs(), c.db()),
            });
            if !ok {
                return Err(match c {
                    CatalogChange::CreateDatabase { path, .. } => self.refuse(
                        ErrorCode::AccessDenied,
                        format!("user '{}' may not create databases ({path}): an administrator must grant DB_OWNER", caller.user),
                    ),
                    _ => self.denied(caller, c.needs(), c.db()),
                });
            }
        }
        Ok(())
    }

    async fn decide(
        &self,
        tid: u64,
        commit: bool,
        reason: String,
        changes: Vec<CatalogChange>,
        task: Option<TaskMeta>,
        replay: Option<ReplayOf>,
    ) -> Response {
        let replayed = replay.as_ref().map(|r| r.task_id);
        let now_ns = chrono::Utc::now()
            .timestamp_nanos_opt()
            .unwrap_or(Self::now_ms().saturating_mul(1_000_000));
        match self
            .meta
            .apply(MetaCommand::Decide {
                tid,
                commit,
                reason,
                changes,
                task,
                master: self.is_master(),
                now_ns,
                replay,
            })
            .await
        {
            Ok(MetaOutcome::ReplayRefused(Decision { reason, .. })) => {
                if let Some(id) = replayed {
                    tracing::warn!(task_id = id, tid, "duplicate replay rolled back: {reason}");
                    if reason.contains("applied already") {
                        self.replay_finished(id);
                    }
                }
                Err(self.refuse(ErrorCode::AlreadyApplied, reason))
            }
            Ok(MetaOutcome::Decided(Decision { committed, reason }, task_id)) => {
                if task_id.is_some() {
                    self.task_added.notify_waiters();
                }
                if let Some(id) = replayed.filter(|_| committed) {
                    self.replay_committed(id);
                }
                Ok(Reply::Decided {
                    committed,
                    reason,
                    task_id,
                })
            }
            Ok(other) => {
                Err(self.refuse(ErrorCode::Internal, format!("unexpected outcome {other:?}")))
            }
            Err(e) => Err(e.to_remote(&self.cfg.alias)),
        }
    }

    /// What became of `tid`; an undecided transaction past the timeout is aborted now.
    async fn outcome(&self, tid: u64) -> Response {
        let (decision, started) = self.meta.read(|s| {
            (
                s.decisions.get(&tid).cloned(),
                s.open.get(&tid).map(|o| o.started_ms),
            )
        });
        let state = match (decision, started) {
            (Some(d), _) if d.committed => TxState::Committed,
            (Some(d), _) => TxState::Aborted(d.reason),
            (None, Some(started)) => {
                let age = Self::now_ms().saturating_sub(started);
                if age < self.cfg.transaction_timeout.as_millis() as i64 {
                    TxState::Pending
                } else {
                    match self
                        .decide(
                            tid,
                            false,
                            format!(
                                "no decision within {} ms",
                                self.cfg.transaction_timeout.as_millis()
                            ),
                            vec![],
                            None,
                            None,
                        )
                        .await?
                    {
                        Reply::Decided {
                            committed: true, ..
                        } => TxState::Committed,
                        Reply::Decided { reason, .. } => TxState::Aborted(reason),
                        _ => TxState::Pending,
                    }
                }
            }
            (None, None) => {
                TxState::Aborted(format!("transaction {tid} is unknown to the controller"))
            }
        };
        Ok(Reply::Outcome(state))
    }

    /// Aborts every transaction undecided past the timeout (their coordinators are gone).
    pub async fn abort_stale(&self) {
        let limit = self.cfg.transaction_timeout.as_millis() as i64;
        let now = Self::now_ms();
        let stale: Vec<u64> = self.meta.read(|s| {
            s.open
                .iter()
                .filter(|(_, o)| now.saturating_sub(o.started_ms) >= limit)
                .map(|(t, _)| *t)
                .collect()
        });
        for tid in stale {
            tracing::warn!(tid, "aborting a transaction undecided for {limit} ms");
            let _ = self.outcome(tid).await;
        }
    }

    /// Places the chunks of `partitions` that have none yet on live data nodes.
    async fn place_chunks(&self, db: &str, table: &str, partitions: &[u32]) -> Response {
        let live: Vec<String> = self
            .nodes
            .live_data_nodes()
            .into_iter()
            .map(|n| n.name)
            .collect();
        let (table_id, missing) = self
            .meta
            .read(|s| {
                s.catalog.table(db, table).map(|t| {
                    let missing: Vec<u32> = partitions
                        .iter()
                        .filter(|p| !t.chunks.contains_key(p))
                        .copied()
                        .collect();
                    (t.id, missing)
                })
            })
            .map_err(|m| self.refuse(ErrorCode::NotFound, m))?;
        if !missing.is_empty() {
            let chunks = missing
                .iter()
                .map(|p| {
                    place_chunk(db, table_id, *p, &live)
                        .map(|n| (*p, n))
                        .ok_or_else(|| {
                            self.refuse(
                                ErrorCode::Unavailable,
                                "no data node is up to hold new partitions",
                            )
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            self.meta
                .apply(MetaCommand::AssignChunks {
                    db: db.to_string(),
                    table: table.to_string(),
                    chunks,
                })
                .await
                .map_err(|e| e.to_remote(&self.cfg.alias))?;
        }
        let placement = self.meta.read(|s| {
            s.catalog
                .table(db, table)
                .map(|t| {
                    partitions
                        .iter()
                        .filter_map(|p| t.chunks.get(p).map(|n| (*p, n.clone())))
                        .collect()
                })
                .unwrap_or_default()
        });
        Ok(Reply::Placement(placement))
    }

    async fn handle_request(&self, req: ControllerRequest) -> Response {
        match req {
            ControllerRequest::Register { alias, site } => {
                self.nodes
                    .register(&alias, &site)
                    .map_err(|m| self.refuse(ErrorCode::BadRequest, m))?;
                let known = self.meta.read(|s| s.nodes.get(&alias).cloned());
                if known.as_deref() != Some(site.as_str()) {
                    self.meta
                        .apply(MetaCommand::RegisterNode {
                            alias: alias.clone(),
                            site: site.clone(),
                        })
                        .await
                        .map_err(|e| e.to_remote(&self.cfg.alias))?;
                }
                tracing::info!(node = %alias, %site, "data node registered");
                self.reclaim_lost(Some(&alias)).await;
                Ok(Reply::Registered {
                    controller: self.cfg.alias.clone(),
                })
            }
            ControllerRequest::Heartbeat { alias } => {
                if self.nodes.heartbeat(&alias) {
                    Ok(Reply::Done)
                } else {
                    Err(self.refuse(
                        ErrorCode::NotFound,
                        format!("'{alias}' is not registered; register first"),
                    ))
                }
            }
            ControllerRequest::Login { user, password } => self.login(&user, &password).await,
            ControllerRequest::Call {
                token,
                function,
                args,
            } => {
                let caller = self.caller(&token)?;
                self.call_function(&caller, &function, args)
                    .await
                    .map(Reply::Value)
            }
            ControllerRequest::BeginTx { token, coordinator } => {
                let caller = self.caller(&token)?;
                match self
                    .meta
                    .apply(MetaCommand::BeginTx {
                        coordinator,
                        user: caller.user,
                        started_ms: Self::now_ms(),
                    })
                    .await
                {
                    Ok(MetaOutcome::Tid(tid)) => Ok(Reply::Tid(tid)),
                    Ok(other) => {
                        Err(self
                            .refuse(ErrorCode::Internal, format!("unexpected outcome {other:?}")))
                    }
                    Err(e) => Err(e.to_remote(&self.cfg.alias)),
                }
            }
            ControllerRequest::Decide {
                token,
                tid,
                commit,
                reason,
                changes,
                task,
                replay,
            } => {
                let caller = self.caller(&token)?;
                let owner = self.meta.read(|s| s.open.get(&tid).map(|o| o.user.clone()));
                if owner.as_deref().is_some_and(|o| o != caller.user) {
                    return Err(self.refuse(
                        ErrorCode::AccessDenied,
                        format!("transaction {tid} belongs to another user"),
                    ));
                }
                if commit {
                    if let Err(e) = self.check_rights(&caller, &changes) {
                        self.decide(tid, false, e.message.clone(), vec![], None, None)
                            .await?;
                        return Err(e);
                    }
                }
                self.decide(tid, commit, reason, changes, task, replay)
                    .await
            }
            ControllerRequest::TxOutcome { tid } => self.outcome(tid).await,
            ControllerRequest::GetDatabase { token, db, need } => {
                let caller = self.caller(&token)?;
                if let Some(right) = need {
                    let exists = self.meta.read(|s| s.catalog.dbs.contains_key(&db));
                    if exists && !self.meta.read(|s| s.allows(&caller.user, right, &db)) {
                        return Err(self.denied(&caller, right, &db));
                    }
                }
                Ok(Reply::Database(
                    self.meta.read(|s| s.catalog.dbs.get(&db).cloned()),
                ))
            }
            ControllerRequest::PlaceChunks {
                token,
                db,
                table,
                partitions,
            } => {
                let caller = self.caller(&token)?;
                if !self
                    .meta
                    .read(|s| s.allows(&caller.user, Right::Write, &db))
                {
                    return Err(self.denied(&caller, Right::Write, &db));
                }
                self.place_chunks(&db, &table, &partitions).await
            }
            ControllerRequest::CheckToken { token } => {
                let caller = self.caller(&token)?;
                Ok(Reply::LoggedIn {
                    user: caller.user,
                    is_admin: caller.is_admin,
                    token,
                })
            }
            ControllerRequest::ReplicationFlags { token } => {
                let caller = self.caller(&token)?;
                if !caller.is_admin {
                    return Err(self.refuse(
                        ErrorCode::AccessDenied,
                        format!(
                            "getDatabaseClusterReplicationStatus needs administrator rights; user '{}' is not an administrator",
                            caller.user
                        ),
                    ));
                }
                Ok(Reply::Value(xrepl_core::value::Value::Table(
                    self.replication_flags(),
                )))
            }
            ControllerRequest::SweepTaskData { tids } => Ok(Reply::Tids(self.sweepable(&tids))),
            ControllerRequest::TakeReplayTask {
                token,
                node,
                wait_ms,
            } => {
                self.caller(&token)?;
                self.take_replay_task(&node, wait_ms).await
            }
            ControllerRequest::ReplayRunning { token, node, tasks } => {
                self.caller(&token)?;
                self.replay_running(&node, &tasks).await;
                Ok(Reply::Done)
            }
            ControllerRequest::ReplayDone {
                token,
                node,
                task_id,
                failure,
                transient,
            } => {
                self.caller(&token)?;
                self.replay_done(&node, task_id, failure, transient).await
            }
            ControllerRequest::MasterAccess { token } => {
                let caller = self.caller(&token)?;
                if !caller.is_admin {
                    return Err(self.refuse(
                        ErrorCode::AccessDenied,
                        format!(
                            "reaching the master needs administrator rights; user '{}' is not an administrator",
                            caller.user
                        ),
                    ));
                }
                self.master_access()
            }
        }
    }
}

/// The RPC face of the controller. Only data nodes connect; a console is told where to go.
struct ControllerService(Arc<Controller>);

#[async_trait]
impl Service for ControllerService {
    type Conn = PeerKind;

    fn accept(&self, hello: &Hello, _peer: SocketAddr) -> Result<(ServerInfo, PeerKind), String> {
        let c = &self.0.cfg;
        if hello.peer == PeerKind::Client {
            let first = c
                .nodes
                .datanodes
                .first()
                .map(|n| n.site())
                .unwrap_or_default();
            return Err(format!(
                "{} is the controller {}; connect the console to a data node (e.g. {first}) and reach the controller with rpc(getControllerAlias(), ...)",
                format_args!("{}:{}", c.host, c.port),
                c.alias
            ));
        }
        if hello.peer == PeerKind::Slave && !self.0.is_master() {
            return Err(format!(
                "{} is not the controller of a replication master cluster",
                c.alias
            ));
        }
        Ok((
            ServerInfo {
                max_frame: 0,
                alias: c.alias.clone(),
                role: NodeRole::Controller,
                replication: c.replication.as_ref().map(|r| r.mode),
            },
            hello.peer,
        ))
    }

    async fn handle(&self, conn: Arc<PeerKind>, req: Request) -> Result<Response, String> {
        match (conn.as_ref(), req) {
            (PeerKind::Slave, Request::Replication(r)) => Ok(self.0.handle_replication(r).await),
            (PeerKind::Slave, _) => {
                Err("a slave cluster may send replication requests only".into())
            }
            (_, Request::Replication(_)) => {
                Err("a replication request from a peer that did not greet as a slave".into())
            }
            (_, Request::Controller(r)) => Ok(self.0.handle_request(r).await),
            (_, Request::Session(_)) => Err("a session request sent to the controller".into()),
            (_, Request::Participant(_)) => {
                Err("a participant request sent to the controller".into())
            }
        }
    }
}

/// Runs the controller until `shutdown` turns true.
pub async fn run(
    cfg: ControllerConfig,
    shutdown: watch::Receiver<bool>,
) -> Result<(), ControllerError> {
    let addr = format!("{}:{}", cfg.host, cfg.port);
    let listener = TcpListener::bind(&addr)
        .await
        .map_err(|source| ControllerError::Bind {
            addr: addr.clone(),
            source,
        })?;
    let max_frame = cfg.max_frame_size;
    let controller = Arc::new(Controller::open(cfg).await?);
    tracing::info!(
        alias = %controller.cfg.alias,
        %addr,
        replication = ?controller.cfg.replication.as_ref().map(|r| r.mode),
        "controller ready"
    );
    let sweeper = {
        let c = controller.clone();
        let mut stop = shutdown.clone();
        let every = (c.cfg.heartbeat_timeout / 4).min(c.cfg.transaction_timeout / 4);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tick.tick() => {
                        c.nodes.sweep();
                        c.abort_stale().await;
                        c.reclaim_lost(None).await;
                    }
                }
            }
        })
    };
    let puller = controller
        .is_slave()
        .then(|| tokio::spawn(controller.clone().run_puller(shutdown.clone())));
    serve(
        listener,
        Arc::new(ControllerService(controller)),
        max_frame,
        shutdown,
    )
    .await;
    sweeper.abort();
    if let Some(p) = puller {
        p.abort();
    }
    tracing::info!("controller stopped");
    Ok(())
}
