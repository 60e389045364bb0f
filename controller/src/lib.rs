//! The controller: metadata owner, user authority, registry of the cluster's data nodes, and,
//! on a replication cluster, the master's send queue or the slave's execution queue.
//!
//! Rooms: [`meta`] (the state and the one function that changes it), [`auth`] (tokens,
//! logins), [`nodes`] (liveness), [`txn`] (transaction decisions, chunk placement),
//! [`functions`] (controller functions called by name), [`master`] and [`slave`] (each role's
//! replication), and the RPC service below, which routes each request to them.
//!
//! What a controller owns depends on its role ([`Role`]): a master holds a [`master::Master`],
//! a slave a [`slave::Slave`]; a standalone cluster neither.

pub mod auth;
pub mod error;
pub mod functions;
pub mod inline;
pub mod master;
pub mod meta;
pub mod nodes;
pub mod slave;
pub mod switch;
pub mod txn;
pub mod web;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::net::TcpListener;
use tokio::sync::watch;
use xrepl_core::auth::{hash_password, TokenKey};
use xrepl_core::catalog::{CatalogChange, Right};
use xrepl_core::cluster_key::ClusterKey;
use xrepl_core::config::{ControllerConfig, NodeRole, ReplicationMode};
use xrepl_proto::rpc::{
    serve, CatalogCheck, ControllerReply, ControllerRequest, ErrorCode, Hello, NodeTls, PeerKind,
    RemoteError, ReplicationRequest, Request, Response, ServerInfo, ServerLimits, Service,
};
use xrepl_proto::task::{AttemptProof, TaskMeta, INLINE_DATA_MAX};
use xrepl_proto::txn::Verdict;

use auth::Auth;
pub use error::ControllerError;
use meta::{MetaCommand, MetaHandle};
use nodes::NodeRegistry;

/// Most tids one lease holds, whatever a data node asks.
pub const MAX_TID_LEASE: u32 = 100_000;
/// Most tids one `Settled` report may name.
pub const MAX_SETTLED: usize = 100_000;

/// The default administrator created on first start, as in DolphinDB.
pub const DEFAULT_ADMIN: (&str, &str) = ("admin", "123456");

/// What the controller does in replication, with what only that role owns.
pub enum Role {
    /// `clusterReplicationMode` is not set.
    Standalone,
    Master(Box<master::Master>),
    Slave(Arc<slave::Slave>),
}

/// Everything a request handler needs; shared by every connection.
pub struct Controller {
    pub cfg: ControllerConfig,
    pub meta: MetaHandle,
    pub nodes: Arc<NodeRegistry>,
    pub auth: Auth,
    pub role: Role,
    /// Leased transactions asked about before any decision.
    undecided: txn::Undecided,
    /// The cluster's key: a data node proves it on every connection.
    key: ClusterKey,
    /// How this controller listens, and how a slave reaches its master.
    tls: NodeTls,
}

impl Controller {
    /// Opens the metadata under `cfg.home` and creates the administrator and the token secret
    /// on first start.
    pub async fn open(
        cfg: ControllerConfig,
        key: ClusterKey,
        tls: NodeTls,
    ) -> Result<Controller, ControllerError> {
        xrepl_core::secrets::create_private_dir(&cfg.home).map_err(|source| {
            ControllerError::CreateHome {
                path: cfg.home.clone(),
                source,
            }
        })?;
        let meta = MetaHandle::open(&cfg.home.join("meta"))?;
        if meta.read(|s| s.token_key.is_none()) {
            meta.apply(MetaCommand::InitTokenKey {
                key: TokenKey::generate().as_bytes().to_vec(),
            })
            .await?;
        }
        if meta.read(|s| s.users.is_empty()) {
            let (name, default) = DEFAULT_ADMIN;
            let password = match &cfg.admin_password_file {
                Some(f) => read_admin_password(f)?,
                None => default.to_string(),
            };
            meta.apply(MetaCommand::CreateUser {
                name: name.into(),
                password_hash: hash_password(&password).map_err(ControllerError::Hash)?,
                is_admin: true,
            })
            .await?;
            tracing::info!(
                from = %cfg.admin_password_file.as_ref().map_or("the default".into(), |f| f.display().to_string()),
                "first start: created user '{name}' (administrator)"
            );
        } else if cfg.admin_password_file.is_some() {
            tracing::info!("adminPasswordFile is read on the first start only; the metadata holds users already");
        }
        warn_default_admin(&meta);
        if meta.read(|s| s.token_key()).is_none() {
            return Err(ControllerError::Corrupt {
                key: "m/token_key".into(),
                reason: "missing or not 32 bytes".into(),
            });
        }
        let nodes = Arc::new(NodeRegistry::new(cfg.nodes.clone(), cfg.heartbeat_timeout));
        let auth = Auth::new(&cfg.alias, meta.clone(), cfg.token_expiry);
        let role = match cfg.replication.as_ref() {
            None => Role::Standalone,
            Some(r) if r.mode == ReplicationMode::Master => {
                Role::Master(Box::new(master::Master::new(
                    &cfg,
                    r,
                    meta.clone(),
                    nodes.clone(),
                    auth.clone(),
                    key.clone(),
                )))
            }
            Some(r) => Role::Slave(Arc::new(slave::Slave::new(
                &cfg.alias,
                format!("{}:{}", cfg.host, cfg.port),
                r.clone(),
                tls.master.clone(),
                auth.clone(),
                meta.clone(),
                nodes.clone(),
            ))),
        };
        Ok(Controller {
            cfg,
            key,
            tls,
            meta,
            nodes,
            auth,
            role,
            undecided: txn::Undecided::default(),
        })
    }

    /// The hand-out time of the replay attempt a report or a decision is about, if it brings
    /// the nonce this controller made for that hand-out to `node`; refused and logged if not.
    fn attempt_of(&self, node: &str, attempt: Option<&AttemptProof>) -> Result<i64, RemoteError> {
        match attempt {
            Some(a) if self.auth.check_attempt(node, a.started_ns, &a.nonce) => Ok(a.started_ns),
            _ => {
                tracing::warn!(%node, "replay request refused: no nonce of a hand-out to this data node");
                Err(self.refuse(
                    ErrorCode::AccessDenied,
                    format!("a replay report or decision must bring the nonce of the hand-out it is about; this one has none made for data node {node}"),
                ))
            }
        }
    }

    /// The caller of a replay request: the replication execution user
    /// (`clusterReplicationExecutionUsername` of the slave's data nodes), for a data node of
    /// this cluster. Any other user of the slave would otherwise get the master token with a
    /// hand-out, or mark tasks replayed.
    fn replayer(&self, token: &str, node: &str) -> Result<auth::Caller, RemoteError> {
        let caller = self.auth.caller(token)?;
        if !node.is_empty() {
            self.check_data_nodes(&[node.to_string()])?;
        }
        if !self.cfg.execution_users.contains(&caller.user) {
            tracing::warn!(user = %caller.user, %node, "replay request refused: not the execution user");
            return Err(self.refuse(
                ErrorCode::AccessDenied,
                format!(
                    "only the replication execution user (clusterReplicationExecutionUsername: {}) replays tasks; user '{}' may not",
                    self.cfg
                        .execution_users
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "),
                    caller.user
                ),
            ));
        }
        Ok(caller)
    }

    /// On an enabled master: the task a commit proposes must be the one its writes make (see
    /// [`master::task_check`]).
    fn check_task(
        &self,
        task: Option<&TaskMeta>,
        changes: &[CatalogChange],
        check: Option<&CatalogCheck>,
    ) -> Result<(), RemoteError> {
        if !matches!(self.role, Role::Master(_)) || self.meta.read(|s| s.send.repl.disabled) {
            return Ok(());
        }
        let replicated = |db: &str| {
            self.meta
                .read(|s| s.catalog.dbs.get(db).is_some_and(|d| d.replication_enabled))
        };
        master::task_check::check_task(task, changes, check, replicated, &self.cfg.task_sources)
            .map_err(|m| {
                tracing::warn!("commit refused: {m}");
                self.refuse(ErrorCode::BadRequest, m)
            })
    }

    /// Refuses names that are not data nodes of this cluster (a transaction's participants,
    /// a report's sender).
    fn check_data_nodes(&self, aliases: &[String]) -> Result<(), RemoteError> {
        match aliases
            .iter()
            .find(|a| self.cfg.nodes.datanode(a).is_none())
        {
            Some(a) => Err(self.refuse(
                ErrorCode::BadRequest,
                format!("'{a}' is not a data node of this cluster"),
            )),
            None => Ok(()),
        }
    }

    fn refuse(&self, code: ErrorCode, message: impl Into<String>) -> RemoteError {
        error::refusal(&self.cfg.alias, code, message)
    }

    /// Whether this controller's cluster is a replication master.
    pub fn is_master(&self) -> bool {
        matches!(self.role, Role::Master(_))
    }

    fn not_a_slave(&self) -> RemoteError {
        self.refuse(
            ErrorCode::BadRequest,
            "this controller's cluster is not a replication slave",
        )
    }

    async fn handle_request(&self, req: ControllerRequest) -> Result<ControllerReply, RemoteError> {
        match req {
            ControllerRequest::Register {
                alias,
                site,
                incarnation,
            } => {
                let restarted = self
                    .nodes
                    .register(&alias, &site, incarnation)
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
                tracing::info!(node = %alias, %site, restarted, "data node registered");
                // A node that registers again without restarting (a heartbeat of its failed
                // under load) still runs its replays: they are not lost.
                if let Role::Slave(s) = &self.role {
                    s.reclaim_lost(restarted.then_some(alias.as_str())).await;
                }
                Ok(ControllerReply::Registered {
                    controller: self.cfg.alias.clone(),
                })
            }
            ControllerRequest::Heartbeat { alias } => {
                if self.nodes.heartbeat(&alias) {
                    Ok(ControllerReply::Done)
                } else {
                    Err(self.refuse(
                        ErrorCode::NotFound,
                        format!("'{alias}' is not registered; register first"),
                    ))
                }
            }
            ControllerRequest::Login {
                user,
                password,
                peer,
            } => {
                let l = self.auth.login(&user, &password, &peer).await?;
                Ok(ControllerReply::LoggedIn {
                    user: l.user,
                    is_admin: l.is_admin,
                    token: l.token,
                    expires_ms: l.expires_ms,
                })
            }
            ControllerRequest::Session { token } => {
                let caller = self.auth.caller(&token)?;
                let renewed = self.auth.renew(&caller).map(|(t, _)| t);
                Ok(ControllerReply::Session {
                    user: caller.user,
                    is_admin: caller.is_admin,
                    renewed,
                })
            }
            ControllerRequest::Logout { token } => {
                let caller = self.auth.caller(&token)?;
                self.auth.logout(&caller).await?;
                Ok(ControllerReply::Done)
            }
            ControllerRequest::ChangePassword {
                token,
                old,
                new,
                peer,
            } => {
                let caller = self.auth.caller(&token)?;
                self.auth
                    .check_password(&caller.user, &old, &peer)
                    .await
                    .map_err(|_| {
                        self.refuse(
                            ErrorCode::AccessDenied,
                            "changePwd: the old password is incorrect",
                        )
                    })?;
                let (token, expires_ms) = self.auth.set_password(&caller.user, new).await?;
                tracing::info!(user = %caller.user, "password changed");
                Ok(ControllerReply::LoggedIn {
                    user: caller.user,
                    is_admin: caller.is_admin,
                    token,
                    expires_ms,
                })
            }
            ControllerRequest::Call {
                token,
                function,
                args,
            } => {
                let caller = self.auth.caller(&token)?;
                self.call_function(&caller, &function, args)
                    .await
                    .map(ControllerReply::Value)
            }
            ControllerRequest::LeaseTids {
                token,
                coordinator,
                count,
            } => {
                self.auth.caller(&token)?;
                if self.cfg.nodes.datanode(&coordinator).is_none() {
                    return Err(self.refuse(
                        ErrorCode::BadRequest,
                        format!("'{coordinator}' is not a data node of this cluster"),
                    ));
                }
                let count = u64::from(count.clamp(1, MAX_TID_LEASE));
                let (first, last) = self
                    .meta
                    .lease_tids(count)
                    .await
                    .map_err(|e| e.to_remote(&self.cfg.alias))?;
                Ok(ControllerReply::TidRange { first, last })
            }
            ControllerRequest::Decide {
                token,
                tid,
                commit,
                reason,
                changes,
                task,
                task_data,
                replay,
                check,
                participants,
            } => {
                let caller = self.auth.caller(&token)?;
                self.check_data_nodes(&participants)?;
                if !replay.is_empty() {
                    self.replayer(&token, &caller_node(&replay))?;
                    for r in &replay {
                        self.attempt_of(
                            &r.node,
                            Some(&AttemptProof {
                                started_ns: r.started_ns,
                                nonce: r.nonce.clone(),
                            }),
                        )?;
                    }
                }
                let verdict = Verdict::of_commit(commit);
                if verdict == Verdict::Commit {
                    let refused = self
                        .check_rights(&caller, &changes)
                        .and_then(|()| {
                            let snapshot = changes.is_empty()
                                && task.as_ref().is_some_and(|t| t.snapshot.is_some());
                            self.check_catalog(&caller, check.as_ref(), snapshot)
                        })
                        .and_then(|()| self.check_task(task.as_deref(), &changes, check.as_ref()));
                    if let Err(e) = refused {
                        let mut abort = txn::Proposal::abort(tid, &caller.user, e.message.clone());
                        abort.participants = Some(participants);
                        self.decide(abort).await?;
                        return Err(e);
                    }
                }
                let d = self
                    .decide(txn::Proposal {
                        tid,
                        user: caller.user,
                        verdict,
                        reason,
                        changes,
                        task: task.map(|t| *t),
                        task_data: task_data.filter(|d| d.len() <= INLINE_DATA_MAX),
                        replay,
                        participants: Some(participants),
                    })
                    .await?;
                Ok(ControllerReply::Decided {
                    committed: d.committed,
                    reason: d.reason,
                    task_id: d.task_id,
                })
            }
            ControllerRequest::Settled { alias, tids } => {
                self.check_data_nodes(std::slice::from_ref(&alias))?;
                if tids.len() > MAX_SETTLED {
                    return Err(self.refuse(
                        ErrorCode::BadRequest,
                        format!("at most {MAX_SETTLED} tids per report, not {}", tids.len()),
                    ));
                }
                self.meta
                    .apply(MetaCommand::Settle { node: alias, tids })
                    .await
                    .map_err(|e| e.to_remote(&self.cfg.alias))?;
                Ok(ControllerReply::Done)
            }
            ControllerRequest::TxOutcome { tid, held_ms } => self
                .outcome(tid, held_ms)
                .await
                .map(ControllerReply::Outcome),
            ControllerRequest::GetDatabase { token, db, need } => {
                let caller = self.auth.caller(&token)?;
                if let Some(right) = need {
                    let exists = self.meta.read(|s| s.catalog.dbs.contains_key(&db));
                    if exists && !self.meta.read(|s| s.allows(&caller.user, right, &db)) {
                        return Err(self.denied(&caller, right, &db));
                    }
                }
                Ok(ControllerReply::Database(
                    self.meta.read(|s| s.catalog.dbs.get(&db).cloned()),
                ))
            }
            ControllerRequest::PlaceChunks {
                token,
                db,
                table,
                partitions,
            } => {
                let caller = self.auth.caller(&token)?;
                if !self
                    .meta
                    .read(|s| s.allows(&caller.user, Right::Write, &db))
                {
                    return Err(self.denied(&caller, Right::Write, &db));
                }
                self.place_chunks(&db, &table, &partitions)
                    .await
                    .map(ControllerReply::Placement)
            }
            ControllerRequest::ReplicatedDatabase { db } => {
                let d = self.meta.read(|s| s.catalog.dbs.get(&db).cloned());
                match d {
                    Some(d) if !d.replication_enabled => Err(self.refuse(
                        ErrorCode::AccessDenied,
                        format!("database '{db}' is not replicated: a slave may not read it"),
                    )),
                    d => Ok(ControllerReply::Database(d)),
                }
            }
            ControllerRequest::ReplicationFlags { token } => {
                let caller = self.auth.caller(&token)?;
                self.auth
                    .admin_only(&caller, "getDatabaseClusterReplicationStatus")?;
                Ok(ControllerReply::Value(xrepl_core::value::Value::Table(
                    self.meta.read(master::status::replication_flags),
                )))
            }
            ControllerRequest::TakeSnapshotWork { node, release } => {
                self.check_data_nodes(std::slice::from_ref(&node))?;
                let Role::Master(m) = &self.role else {
                    return Ok(ControllerReply::SnapshotWork(None));
                };
                m.take_snapshot_work(&node, release)
                    .await
                    .map(ControllerReply::SnapshotWork)
            }
            ControllerRequest::SweepTaskData { tids } => {
                Ok(ControllerReply::Tids(self.sweepable(&tids)))
            }
            ControllerRequest::TakeReplayTask {
                token,
                node,
                wait_ms,
                max,
                finished,
                failed,
                released,
                attempt,
            } => {
                self.replayer(&token, &node)?;
                let Role::Slave(s) = &self.role else {
                    return Err(self.not_a_slave());
                };
                if !finished.is_empty() || failed.is_some() || !released.is_empty() {
                    let started_ns = self.attempt_of(&node, attempt.as_ref())?;
                    s.replay_done(&node, started_ns, finished, failed, released)
                        .await;
                }
                s.take_replay_task(&node, wait_ms, max)
                    .await
                    .map(ControllerReply::ReplayTask)
            }
            ControllerRequest::ReplayRunning {
                token,
                node,
                tasks,
                attempts,
            } => {
                self.replayer(&token, &node)?;
                let started = attempts
                    .iter()
                    .map(|a| self.attempt_of(&node, Some(a)))
                    .collect::<Result<Vec<i64>, RemoteError>>()?;
                if let Role::Slave(s) = &self.role {
                    s.replay_running(&node, tasks, started).await;
                }
                Ok(ControllerReply::Done)
            }
            ControllerRequest::ReplayDone {
                token,
                node,
                finished,
                failed,
                released,
                attempt,
            } => {
                self.replayer(&token, &node)?;
                if let Role::Slave(s) = &self.role {
                    let started_ns = self.attempt_of(&node, attempt.as_ref())?;
                    s.replay_done(&node, started_ns, finished, failed, released)
                        .await;
                }
                Ok(ControllerReply::Done)
            }
            ControllerRequest::MasterAccess { token } => {
                let caller = self.auth.caller(&token)?;
                self.auth.admin_only(&caller, "reaching the master")?;
                let Role::Slave(s) = &self.role else {
                    return Err(self.not_a_slave());
                };
                let (master, ticket) = s.master_access().await?;
                Ok(ControllerReply::MasterAccess { master, ticket })
            }
        }
    }
}

/// The RPC face of the controller. Only data nodes connect; a console is told where to go.
struct ControllerService(Arc<Controller>);

/// One connection to the controller: who greeted, and whether it has authenticated.
struct PeerConn {
    kind: PeerKind,
    /// A data node has proven the cluster key before its first request (the server loop checks
    /// the proof), so it starts authenticated; a slave cluster's controller is authenticated
    /// once a replication `Login` on this connection succeeded.
    authenticated: AtomicBool,
    /// The peer's IP address: failed logins are throttled by it.
    peer: String,
}

#[async_trait]
impl Service for ControllerService {
    type Conn = PeerConn;

    fn cluster_key(&self) -> &ClusterKey {
        &self.0.key
    }

    fn accept(&self, hello: &Hello, peer: SocketAddr) -> Result<(ServerInfo, PeerConn), String> {
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
                challenge: None,
                proof: None,
            },
            PeerConn {
                kind: hello.peer,
                authenticated: AtomicBool::new(hello.peer == PeerKind::DataNode),
                peer: peer.ip().to_string(),
            },
        ))
    }

    fn authenticated(&self, conn: &PeerConn) -> bool {
        conn.authenticated.load(Ordering::Acquire)
    }

    async fn http(&self, req: xrepl_proto::web::WebRequest) -> xrepl_proto::web::WebResponse {
        self.0.http(req).await
    }

    async fn handle(&self, conn: Arc<PeerConn>, req: Request) -> Result<Response, String> {
        match (conn.kind, req) {
            (PeerKind::Slave, Request::Replication(r)) => match &self.0.role {
                Role::Master(m) => {
                    let login = matches!(r, ReplicationRequest::Login { .. });
                    let reply = m.handle(r, &conn.peer).await;
                    if login && reply.is_ok() {
                        conn.authenticated.store(true, Ordering::Release);
                    }
                    Ok(reply.into())
                }
                // `accept` lets a slave in only on a master.
                _ => Err("a replication request on a controller that is not a master".into()),
            },
            (PeerKind::Slave, _) => {
                Err("a slave cluster may send replication requests only".into())
            }
            (_, Request::Replication(_)) => {
                Err("a replication request from a peer that did not greet as a slave".into())
            }
            (_, Request::Controller(r)) => Ok(self.0.handle_request(r).await.into()),
            (_, Request::Session(_)) => Err("a session request sent to the controller".into()),
            (_, Request::Participant(_)) => {
                Err("a participant request sent to the controller".into())
            }
        }
    }
}

/// Binds the controller's address (`localSite` of controller.cfg).
pub async fn bind(cfg: &ControllerConfig) -> Result<TcpListener, ControllerError> {
    let addr = format!("{}:{}", cfg.host, cfg.port);
    TcpListener::bind(&addr)
        .await
        .map_err(|source| ControllerError::Bind { addr, source })
}

/// Runs the controller on `listener` until `shutdown` turns true. The listener is bound by
/// the caller ([`bind`], or a test on `127.0.0.1:0`).
pub async fn run(
    cfg: ControllerConfig,
    key: ClusterKey,
    tls: NodeTls,
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
) -> Result<(), ControllerError> {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let limits = ServerLimits {
        max_frame: cfg.max_frame_size,
        max_connections: cfg.max_connections,
        login_timeout: cfg.login_timeout,
    };
    let controller = Arc::new(Controller::open(cfg, key, tls).await?);
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
                        match &c.role {
                            Role::Slave(s) => s.reclaim_lost(None).await,
                            Role::Master(m) => m.enforce_retention().await,
                            Role::Standalone => {}
                        }
                    }
                }
            }
        })
    };
    let puller = match &controller.role {
        Role::Slave(s) => {
            tokio::spawn(s.clone().run_lag_samples(shutdown.clone()));
            Some(tokio::spawn(s.clone().run_puller(shutdown.clone())))
        }
        _ => None,
    };
    let server_tls = controller.tls.server.clone();
    serve(
        listener,
        Arc::new(ControllerService(controller)),
        server_tls,
        limits,
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

/// The initial administrator password from `adminPasswordFile`: a file only its owner may
/// read, holding the password (one trailing newline is not part of it).
fn read_admin_password(path: &std::path::Path) -> Result<String, ControllerError> {
    let password = xrepl_core::secrets::read_password_file(path)
        .map_err(|m| ControllerError::Refused(format!("adminPasswordFile: {m}")))?;
    if password.chars().count() < 6 {
        return Err(ControllerError::Refused(format!(
            "adminPasswordFile {}: the password needs at least 6 characters",
            path.display()
        )));
    }
    Ok(password)
}

/// Logs a warning at every start while `admin` still has the default password.
fn warn_default_admin(meta: &MetaHandle) {
    let (name, default) = DEFAULT_ADMIN;
    let hash = meta.read(|s| s.users.get(name).map(|u| u.password_hash.clone()));
    if hash.is_some_and(|h| xrepl_core::auth::verify_password(default, &h)) {
        tracing::warn!(
            "user '{name}' still has the default password: anyone who can reach a data node can administer this cluster; log in as {name} and run changePwd(\"{default}\", \"<new password>\")"
        );
    }
}

/// The data node a replay's decision names (its tasks all name the same one).
fn caller_node(replay: &[xrepl_proto::task::ReplayOf]) -> String {
    replay.first().map(|r| r.node.clone()).unwrap_or_default()
}
