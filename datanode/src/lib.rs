//! The data node: serves client sessions and, in later issues, stores partitions.
//!
//! Layers: [`link`] (registration and heartbeats with the controller), [`session`] (one actor
//! per client connection), [`eval`] and [`builtins`] (the language).

pub mod builtins;
pub mod datafns;
pub mod dbfns;
pub mod error;
pub mod eval;
pub mod link;
pub mod participant;
pub mod session;
pub mod storage;
pub mod txn;

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::net::TcpListener;
use tokio::sync::watch;
use xrepl_common::config::{DataNodeConfig, NodeRole};
use xrepl_common::rpc::{
    serve, ControllerRequest, ErrorCode, Hello, PeerKind, RemoteError, Reply, Request, Response,
    ServerInfo, Service,
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
    pub peers: dashmap::DashMap<String, xrepl_common::rpc::RpcClient>,
    pub(crate) rt: tokio::runtime::Handle,
}

impl DataNode {
    pub fn error(&self, code: ErrorCode, message: impl Into<String>) -> RemoteError {
        RemoteError {
            node: self.cfg.alias.clone(),
            code,
            message: message.into(),
        }
    }

    /// Calls the controller from a session thread (the blocking pool, never a runtime worker).
    pub fn block_on_controller(&self, req: ControllerRequest) -> Result<Reply, EvalError> {
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
            (Conn::Session(s), Request::Session(r)) => Ok(s.request(r).await.map_err(|mut e| {
                if e.node.is_empty() {
                    e.node = self.0.cfg.alias.clone();
                }
                e
            })),
            (Conn::Peer, Request::Participant(r)) => Ok(self.0.participate(r).await),
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
    let node = Arc::new(DataNode {
        cfg,
        link: link.clone(),
        participant,
        peers: dashmap::DashMap::new(),
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
    tracing::info!(alias = %node.cfg.alias, %addr, controller = %node.cfg.controller.site(), "data node ready");
    let heartbeats = tokio::spawn(link.run(shutdown.clone()));
    serve(
        listener,
        Arc::new(DataNodeService(node)),
        max_frame,
        shutdown,
    )
    .await;
    heartbeats.abort();
    resolver.abort();
    tracing::info!("data node stopped");
    Ok(())
}
