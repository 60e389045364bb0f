//! The data node's server: who may connect (clients, the other data nodes, and on a master,
//! slave clusters), which requests each connection may send, and the tasks that run beside it
//! (registration and heartbeats, settling prepared transactions, the task data sweep, the
//! replay workers).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::net::TcpListener;
use tokio::sync::watch;
use xrepl_core::cluster_key::ClusterKey;
use xrepl_core::config::{DataNodeConfig, NodeRole};
use xrepl_proto::rpc::{
    serve, BoxedIo, Hello, NodeTls, PeerKind, Request, Response, ServerInfo, ServerLimits, Service,
};

use crate::error::DataNodeError;
use crate::node::{DataNode, Role};
use crate::replication::sweep::SWEEP_EVERY;
use crate::session::actor::SessionHandle;
use crate::txn::resolve::RESOLVE_AFTER_MS;

/// What a connection to a data node is.
pub enum Conn {
    /// A client's session: authenticated while a user is logged in on it.
    Session(SessionHandle),
    /// Another data node coordinating a transaction or a read: authenticated, it proved the
    /// cluster key before its first request.
    Peer,
    /// A slave cluster fetching task data (on a master only). It never logs in: each request
    /// carries a fetch ticket, so it keeps the limits of an unauthenticated peer (its largest
    /// request, `FetchTasksData`, fits them), and `vouched` tells that one of its tickets was
    /// good, which exempts it from the login deadline.
    Slave { vouched: AtomicBool },
}

struct DataNodeService(Arc<DataNode>);

#[async_trait]
impl Service for DataNodeService {
    type Conn = Conn;

    fn cluster_key(&self) -> &ClusterKey {
        &self.0.key
    }

    fn accept(&self, hello: &Hello, peer: SocketAddr) -> Result<(ServerInfo, Conn), String> {
        let cfg = &self.0.cfg;
        let conn = match hello.peer {
            PeerKind::Client => {
                tracing::debug!(%peer, "new session");
                Conn::Session(SessionHandle::start(self.0.clone(), peer.ip().to_string()))
            }
            PeerKind::DataNode => Conn::Peer,
            PeerKind::Slave if self.0.is_master() => Conn::Slave {
                vouched: AtomicBool::new(false),
            },
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
                challenge: None,
                proof: None,
            },
            conn,
        ))
    }

    async fn http(&self, req: xrepl_proto::web::WebRequest) -> xrepl_proto::web::WebResponse {
        self.0.http(req).await
    }

    async fn serve_dolphindb(
        &self,
        io: BoxedIo,
        peer: SocketAddr,
        limits: ServerLimits,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(), String> {
        crate::dolphindb::serve(self.0.clone(), io, peer, limits, shutdown).await
    }

    fn authenticated(&self, conn: &Conn) -> bool {
        match conn {
            Conn::Session(s) => s.logged_in(),
            Conn::Peer => true,
            Conn::Slave { .. } => false,
        }
    }

    fn vouched(&self, conn: &Conn) -> bool {
        match conn {
            Conn::Slave { vouched } => vouched.load(Ordering::Acquire),
            Conn::Session(_) | Conn::Peer => false,
        }
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
            (Conn::Peer, Request::Participant(r)) => Ok(self.0.txn.participate(r).await.into()),
            (Conn::Slave { vouched }, Request::Replication(r)) => match &self.0.role {
                Role::Master(m) => {
                    // Before serving: a checksum scan may outlast the login deadline.
                    if m.vouches(&r) {
                        vouched.store(true, Ordering::Release);
                    }
                    Ok(m.serve(r).await.into())
                }
                // `accept` lets a slave in only on a master.
                Role::Standalone | Role::Slave(_) => {
                    Err("a replication request on a data node that is not a master's".into())
                }
            },
            (Conn::Slave { .. }, _) => {
                Err("a slave cluster may send replication requests only".into())
            }
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

/// Binds the data node's address (its line in `cluster.nodes`).
pub async fn bind(cfg: &DataNodeConfig) -> Result<TcpListener, DataNodeError> {
    let addr = format!("{}:{}", cfg.host, cfg.port);
    TcpListener::bind(&addr)
        .await
        .map_err(|source| DataNodeError::Bind { addr, source })
}

/// Runs the data node on `listener` until `shutdown` turns true. The listener is bound by the
/// caller ([`bind`], or a test on `127.0.0.1:0`).
pub async fn run(
    cfg: DataNodeConfig,
    key: ClusterKey,
    tls: NodeTls,
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
) -> Result<(), DataNodeError> {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let limits = ServerLimits {
        max_frame: cfg.max_frame_size,
        max_connections: cfg.max_connections,
        login_timeout: cfg.login_timeout,
    };
    let node = Arc::new(DataNode::open(cfg, key, tls).await?);
    // Prepared transactions left by a crash: take their locks now, settle them in the loop.
    node.txn.resolve_prepared(0).await;
    let resolver = {
        let txn = node.txn.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(DataNode::RESOLVE_EVERY);
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tick.tick() => {
                        txn.resolve_prepared(RESOLVE_AFTER_MS).await;
                        txn.report_settled().await;
                    }
                }
            }
        })
    };
    let sweeper = match &node.role {
        Role::Master(m) => {
            let m = m.clone();
            let mut stop = shutdown.clone();
            tokio::spawn(m.clone().run_snapshots(shutdown.clone()));
            Some(tokio::spawn(async move {
                let mut tick = tokio::time::interval(SWEEP_EVERY);
                loop {
                    tokio::select! {
                        _ = stop.changed() => return,
                        _ = tick.tick() => m.sweep_task_data().await,
                    }
                }
            }))
        }
        Role::Standalone | Role::Slave(_) => None,
    };
    tracing::info!(alias = %node.cfg.alias, %addr, controller = %node.cfg.controller.site(), "data node ready");
    let mut heartbeats = tokio::spawn(node.link.clone().run(shutdown.clone()));
    let workers = match &node.role {
        Role::Slave(r) => Some(tokio::spawn(r.clone().run(shutdown.clone()))),
        Role::Standalone | Role::Master(_) => None,
    };
    // The link ends early only when the controller holds another cluster key: then stop.
    let server_tls = node.link.tls().server.clone();
    let not_member = tokio::select! {
        _ = serve(listener, Arc::new(DataNodeService(node)), server_tls, limits, shutdown) => None,
        ended = &mut heartbeats => match ended {
            Ok(Err(reason)) => Some(reason),
            _ => None,
        },
    };
    heartbeats.abort();
    resolver.abort();
    if let Some(s) = sweeper {
        s.abort();
    }
    if let Some(w) = workers {
        w.abort();
    }
    if let Some(reason) = not_member {
        return Err(DataNodeError::NotAMember(reason));
    }
    tracing::info!("data node stopped");
    Ok(())
}
