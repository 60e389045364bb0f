//! The data node: serves client sessions and, in later issues, stores partitions.
//!
//! Layers: [`link`] (registration and heartbeats with the controller), [`session`] (one actor
//! per client connection), [`eval`] and [`builtins`] (the language).

pub mod builtins;
pub mod error;
pub mod eval;
pub mod link;
pub mod session;

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
    rt: tokio::runtime::Handle,
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

#[async_trait]
impl Service for DataNodeService {
    type Conn = SessionHandle;

    fn accept(
        &self,
        hello: &Hello,
        peer: SocketAddr,
    ) -> Result<(ServerInfo, SessionHandle), String> {
        let cfg = &self.0.cfg;
        if hello.peer != PeerKind::Client {
            return Err(format!(
                "{} is a data node; it takes client sessions only",
                cfg.alias
            ));
        }
        tracing::debug!(%peer, "new session");
        Ok((
            ServerInfo {
                max_frame: 0,
                alias: cfg.alias.clone(),
                role: NodeRole::DataNode,
                replication: cfg.replication.as_ref().map(|r| r.mode),
            },
            SessionHandle::start(self.0.clone()),
        ))
    }

    async fn handle(&self, conn: Arc<SessionHandle>, req: Request) -> Result<Response, String> {
        match req {
            Request::Session(r) => Ok(conn.request(r).await.map_err(|mut e| {
                if e.node.is_empty() {
                    e.node = self.0.cfg.alias.clone();
                }
                e
            })),
            Request::Controller(_) => Err("a controller request sent to a data node".into()),
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
    let node = Arc::new(DataNode {
        cfg,
        link: link.clone(),
        rt: tokio::runtime::Handle::current(),
    });
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
    tracing::info!("data node stopped");
    Ok(())
}
