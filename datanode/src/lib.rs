//! The data node: serves client sessions, stores chunks, coordinates and takes part in
//! transactions, and on a replication master keeps task data and serves it to slaves.
//!
//! Layers: [`link`] (registration and heartbeats with the controller), [`session`] (one actor
//! per client connection), [`eval`], [`builtins`], [`datafns`] and [`dbfns`] (the language and
//! the database functions), [`txn`] and [`participant`] (two-phase commit), [`storage`]
//! (chunks in sled), [`taskdata`] (replication task data).

pub mod builtins;
pub mod compute;
pub mod consistency;
pub mod datafns;
pub mod dbfns;
pub mod error;
pub mod eval;
pub mod link;
pub mod participant;
pub mod replay;
pub mod session;
pub mod storage;
pub mod taskdata;
pub mod txn;

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::net::TcpListener;
use tokio::sync::watch;
use xrepl_core::config::{DataNodeConfig, NodeRole, ReplicationMode};
use xrepl_proto::rpc::{
    serve, ControllerReply, ControllerRequest, ErrorCode, Hello, PeerKind, RemoteError,
    ReplicationReply, ReplicationRequest, Request, Response, ServerInfo, Service,
};

pub use error::DataNodeError;
use eval::EvalError;
use link::ControllerLink;
use session::SessionHandle;

/// What every session of this data node shares.
pub struct DataNode {
    pub cfg: DataNodeConfig,
    pub link: Arc<ControllerLink>,
    pub participant: Arc<participant::Participant>,
    /// Connections to the other data nodes, made when first needed.
    pub peers: dashmap::DashMap<String, xrepl_proto::rpc::RpcClient>,
    /// Task data of the transactions this node coordinates, on a replication master.
    pub tasks: Option<Arc<taskdata::TaskStore>>,
    /// The replay workers' state, on a replication slave.
    pub replayer: Option<Arc<replay::Replayer>>,
    /// Slave tokens the controller confirmed as an administrator's, and when.
    slave_tokens: dashmap::DashMap<String, std::time::Instant>,
    /// Where the next task data sweep starts (it walks the held tids in pages and wraps).
    sweep_from: std::sync::atomic::AtomicU64,
    pub(crate) rt: tokio::runtime::Handle,
}

/// How long a confirmed slave token is trusted before the controller is asked again.
const SLAVE_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(30);
/// How often a master data node asks which task data it may delete.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_millis(1000);

impl DataNode {
    pub fn error(&self, code: ErrorCode, message: impl Into<String>) -> RemoteError {
        RemoteError {
            node: self.cfg.alias.clone(),
            code,
            message: message.into(),
        }
    }

    /// Whether this node belongs to a replication master cluster.
    pub fn is_master(&self) -> bool {
        self.cfg
            .replication
            .as_ref()
            .is_some_and(|r| r.mode == ReplicationMode::Master)
    }

    /// Checks that a slave's token is a master administrator's (asking the controller, then
    /// trusting the answer for [`SLAVE_TOKEN_TTL`]).
    async fn check_slave_token(&self, token: &str) -> Result<(), RemoteError> {
        if self
            .slave_tokens
            .get(token)
            .is_some_and(|t| t.elapsed() < SLAVE_TOKEN_TTL)
        {
            return Ok(());
        }
        let refused = |m: String| {
            tracing::warn!("task data request refused: {m}");
            self.error(ErrorCode::AccessDenied, m)
        };
        match self
            .link
            .call(ControllerRequest::CheckToken {
                token: token.to_string(),
            })
            .await
        {
            Ok(ControllerReply::LoggedIn { is_admin: true, .. }) => {
                if self.slave_tokens.len() > 1024 {
                    self.slave_tokens.clear();
                }
                self.slave_tokens
                    .insert(token.to_string(), std::time::Instant::now());
                Ok(())
            }
            Ok(ControllerReply::LoggedIn { user, .. }) => Err(refused(format!(
                "user '{user}' is not an administrator of the master cluster"
            ))),
            Ok(other) => Err(refused(format!("unexpected answer {other:?}"))),
            Err(e) if e.code == ErrorCode::Unavailable => Err(e),
            Err(e) => Err(refused(e.message)),
        }
    }

    /// Answers a slave cluster's request: a piece of a task's data.
    async fn serve_slave(&self, req: ReplicationRequest) -> Result<ReplicationReply, RemoteError> {
        let (token, task_id, tid, offset) = match req {
            ReplicationRequest::FetchTaskData {
                token,
                task_id,
                tid,
                offset,
            } => (token, task_id, tid, offset),
            ReplicationRequest::Checksums { token, db, table } => {
                self.check_slave_token(&token).await?;
                return Ok(ReplicationReply::Checksums(
                    self.table_sums(&token, &db, table.as_deref()).await?,
                ));
            }
            _ => {
                return Err(self.error(
                    ErrorCode::BadRequest,
                    "a data node serves task data and checksums only; send the other replication requests to the master controller",
                ))
            }
        };
        self.check_slave_token(&token).await?;
        let missing = || {
            self.error(
                ErrorCode::NotFound,
                format!(
                    "Missing taskData: the data of task {task_id} (transaction {tid}) is not on data node {} ({}:{})",
                    self.cfg.alias, self.cfg.host, self.cfg.port
                ),
            )
        };
        let Some(store) = self.tasks.clone() else {
            return Err(missing());
        };
        match tokio::task::spawn_blocking(move || store.read(tid, offset)).await {
            Ok(Ok(Some((total, offset, bytes)))) => Ok(ReplicationReply::TaskData {
                total,
                offset,
                bytes,
            }),
            Ok(Ok(None)) => Err(missing()),
            Ok(Err(e)) => Err(self.error(ErrorCode::Internal, e.to_string())),
            Err(e) => Err(self.error(ErrorCode::Internal, e.to_string())),
        }
    }

    /// Deletes the task data the controller says nobody needs any more.
    pub async fn sweep_task_data(&self) {
        let Some(store) = self.tasks.clone() else {
            return;
        };
        use std::sync::atomic::Ordering;
        let s = store.clone();
        let from = self.sweep_from.load(Ordering::Relaxed);
        let tids = match tokio::task::spawn_blocking(move || s.tids_after(from, 1000)).await {
            Ok(Ok(t)) if !t.is_empty() => t,
            Ok(Ok(_)) => {
                // The end: start from the oldest again next time.
                self.sweep_from.store(0, Ordering::Relaxed);
                return;
            }
            Ok(Err(e)) => {
                tracing::error!("cannot list task data: {e}");
                return;
            }
            Err(_) => return,
        };
        let last = tids.last().copied().unwrap_or(0);
        self.sweep_from
            .store(if tids.len() < 1000 { 0 } else { last }, Ordering::Relaxed);
        let done = match self
            .link
            .call(ControllerRequest::SweepTaskData { tids })
            .await
        {
            Ok(ControllerReply::Tids(t)) => t,
            Ok(other) => {
                tracing::warn!("unexpected answer to a task data sweep: {other:?}");
                return;
            }
            Err(e) => {
                tracing::debug!("task data sweep postponed: {e}");
                return;
            }
        };
        if done.is_empty() {
            return;
        }
        let n = done.len();
        let r = tokio::task::spawn_blocking(move || {
            for tid in done {
                store.delete(tid)?;
            }
            Ok::<(), taskdata::TaskStoreError>(())
        })
        .await;
        match r {
            Ok(Ok(())) => tracing::debug!("deleted the task data of {n} transactions"),
            Ok(Err(e)) => tracing::error!("cannot delete task data: {e}"),
            Err(_) => {}
        }
    }

    /// Calls the controller from a session thread (the blocking pool, never a runtime worker).
    pub fn block_on_controller(
        &self,
        req: ControllerRequest,
    ) -> Result<ControllerReply, EvalError> {
        let link = self.link.clone();
        self.rt
            .block_on(async move { link.call(req).await })
            .map_err(EvalError::from)
    }
}

struct DataNodeService(Arc<DataNode>);

/// What a connection to a data node is.
pub enum Conn {
    /// A client's session.
    Session(SessionHandle),
    /// Another data node coordinating a transaction or a read.
    Peer,
    /// A slave cluster fetching task data (on a master only).
    Slave,
}

#[async_trait]
impl Service for DataNodeService {
    type Conn = Conn;

    fn accept(&self, hello: &Hello, peer: SocketAddr) -> Result<(ServerInfo, Conn), String> {
        let cfg = &self.0.cfg;
        let conn = match hello.peer {
            PeerKind::Client => {
                tracing::debug!(%peer, "new session");
                Conn::Session(SessionHandle::start(self.0.clone()))
            }
            PeerKind::DataNode => Conn::Peer,
            PeerKind::Slave if self.0.is_master() => Conn::Slave,
            PeerKind::Slave => {
                return Err(format!(
                    "{} is not a data node of a replication master cluster",
                    cfg.alias
                ))
            }
        };
        Ok((
            ServerInfo {
                max_frame: 0,
                alias: cfg.alias.clone(),
                role: NodeRole::DataNode,
                replication: cfg.replication.as_ref().map(|r| r.mode),
            },
            conn,
        ))
    }

    async fn handle(&self, conn: Arc<Conn>, req: Request) -> Result<Response, String> {
        match (conn.as_ref(), req) {
            (Conn::Session(s), Request::Session(r)) => Ok(s
                .request(r)
                .await
                .map_err(|mut e| {
                    if e.node.is_empty() {
                        e.node = self.0.cfg.alias.clone();
                    }
                    e
                })
                .into()),
            (Conn::Peer, Request::Participant(r)) => Ok(self.0.participate(r).await.into()),
            (Conn::Slave, Request::Replication(r)) => Ok(self.0.serve_slave(r).await.into()),
            (Conn::Slave, _) => Err("a slave cluster may send replication requests only".into()),
            (_, Request::Replication(_)) => {
                Err("a replication request from a peer that did not greet as a slave".into())
            }
            (_, Request::Controller(_)) => Err("a controller request sent to a data node".into()),
            (Conn::Session(_), Request::Participant(_)) => {
                Err("a participant request on a client session".into())
            }
            (Conn::Peer, Request::Session(_)) => Err("a session request from a data node".into()),
        }
    }
}

/// Runs the data node until `shutdown` turns true.
pub async fn run(
    cfg: DataNodeConfig,
    shutdown: watch::Receiver<bool>,
) -> Result<(), DataNodeError> {
    std::fs::create_dir_all(&cfg.home).map_err(|source| DataNodeError::Home {
        path: cfg.home.clone(),
        source,
    })?;
    let addr = format!("{}:{}", cfg.host, cfg.port);
    let listener = TcpListener::bind(&addr)
        .await
        .map_err(|source| DataNodeError::Bind {
            addr: addr.clone(),
            source,
        })?;
    let link = Arc::new(ControllerLink::new(&cfg));
    let max_frame = cfg.max_frame_size;
    let storage_path = cfg.home.join("storage");
    let storage = tokio::task::spawn_blocking(move || storage::Storage::open(&storage_path))
        .await
        .map_err(|e| DataNodeError::Storage(e.to_string()))?
        .map_err(|e| DataNodeError::Storage(e.to_string()))?;
    let participant = Arc::new(participant::Participant {
        storage: Arc::new(storage),
        locks: participant::ChunkLocks::default(),
        lock_timeout: cfg.partition_lock_timeout,
    });
    let tasks = match cfg.replication.as_ref() {
        Some(r) if r.mode == ReplicationMode::Master => {
            let dir = r.work_dir.clone();
            Some(
                taskdata::TaskStore::open(&dir)
                    .map_err(|e| DataNodeError::Storage(e.to_string()))?,
            )
        }
        _ => None,
    };
    let replayer = cfg
        .replication
        .as_ref()
        .filter(|r| r.mode == ReplicationMode::Slave)
        .map(|_| Arc::new(replay::Replayer::default()));
    let node = Arc::new(DataNode {
        cfg,
        link: link.clone(),
        participant,
        peers: dashmap::DashMap::new(),
        tasks,
        replayer,
        slave_tokens: dashmap::DashMap::new(),
        sweep_from: std::sync::atomic::AtomicU64::new(0),
        rt: tokio::runtime::Handle::current(),
    });
    // Prepared transactions left by a crash: take their locks now, settle them in the loop.
    node.resolve_prepared(0).await;
    let resolver = {
        let node = node.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tick.tick() => node.resolve_prepared(txn::RESOLVE_AFTER_MS).await,
                }
            }
        })
    };
    let sweeper = {
        let node = node.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tick.tick() => node.sweep_task_data().await,
                }
            }
        })
    };
    tracing::info!(alias = %node.cfg.alias, %addr, controller = %node.cfg.controller.site(), "data node ready");
    let heartbeats = tokio::spawn(link.run(shutdown.clone()));
    let workers = match node.cfg.replication.as_ref() {
        Some(r) if node.replayer.is_some() => Some(tokio::spawn(
            node.clone()
                .run_replay_workers(r.worker_num, shutdown.clone()),
        )),
        _ => None,
    };
    serve(
        listener,
        Arc::new(DataNodeService(node)),
        max_frame,
        shutdown,
    )
    .await;
    heartbeats.abort();
    resolver.abort();
    sweeper.abort();
    if let Some(w) = workers {
        w.abort();
    }
    tracing::info!("data node stopped");
    Ok(())
}
