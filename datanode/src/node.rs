//! What every session and request of a data node shares: its configuration, its link to the
//! controller, its transactions (coordinator and participant), and what its replication role
//! owns ([`Role`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use xrepl_core::cluster_key::ClusterKey;
use xrepl_core::config::{DataNodeConfig, ReplicationMode};
use xrepl_proto::rpc::NodeTls;
use xrepl_proto::rpc::{ErrorCode, RemoteError};

use crate::catalog_cache::CatalogCache;
use crate::error::{refusal, DataNodeError};
use crate::link::ControllerLink;
use crate::replication::replay::Replayer;
use crate::replication::serve::MasterNode;
use crate::replication::taskstore::TaskStore;
use crate::storage::Storage;
use crate::txn::coordinator::Coordinator;
use crate::txn::participant::Participant;

/// What the data node does in replication, with what only that role owns.
pub enum Role {
    /// `clusterReplicationMode` is not set.
    Standalone,
    /// Keeps the task data of the transactions it coordinates and serves it to slaves.
    Master(Arc<MasterNode>),
    /// Replays the master's tasks.
    Slave(Arc<Replayer>),
}

pub struct DataNode {
    pub cfg: DataNodeConfig,
    /// The cluster's key, which every connection between its nodes proves.
    pub key: ClusterKey,
    pub link: Arc<ControllerLink>,
    /// Database definitions kept between writes (checked by the controller at commit).
    pub catalog: CatalogCache,
    pub txn: Arc<Coordinator>,
    pub role: Role,
    rt: tokio::runtime::Handle,
    /// Logins of HTTP requests checked lately, trusted for 60 s (the HTTP of this node).
    pub web_logins: xrepl_proto::web::LoginCache,
}

impl DataNode {
    /// Opens the storage (and, on a master, the task data) under the node's home, on the
    /// current runtime.
    pub async fn open(
        cfg: DataNodeConfig,
        key: ClusterKey,
        tls: NodeTls,
    ) -> Result<DataNode, DataNodeError> {
        xrepl_core::secrets::create_private_dir(&cfg.home).map_err(|source| {
            DataNodeError::Home {
                path: cfg.home.clone(),
                source,
            }
        })?;
        let link = Arc::new(ControllerLink::new(&cfg, key.clone(), tls));
        let storage_path = cfg.home.join("storage");
        let storage = tokio::task::spawn_blocking(move || Storage::open(&storage_path))
            .await
            .map_err(|e| DataNodeError::Storage(e.to_string()))?
            .map_err(|e| DataNodeError::Storage(e.to_string()))?;
        let participant = Arc::new(Participant::new(
            Arc::new(storage),
            cfg.partition_lock_timeout,
        ));
        let tasks = match cfg.replication.as_ref() {
            Some(r) if r.mode == ReplicationMode::Master => Some(
                TaskStore::open(&r.work_dir).map_err(|e| DataNodeError::Storage(e.to_string()))?,
            ),
            _ => None,
        };
        let txn = Arc::new(Coordinator::new(
            cfg.clone(),
            link.clone(),
            participant,
            tasks.clone(),
            key.clone(),
        ));
        let role = match (cfg.replication.as_ref(), tasks) {
            (Some(_), Some(tasks)) => Role::Master(Arc::new(MasterNode::new(
                &cfg.alias,
                (cfg.host.clone(), cfg.port),
                link.clone(),
                tasks,
                txn.clone(),
                key.clone(),
                cfg.replication
                    .as_ref()
                    .and_then(|r| r.public_address.clone())
                    .unwrap_or_else(|| (cfg.host.clone(), cfg.port)),
            ))),
            (Some(r), None) if r.mode == ReplicationMode::Slave => Role::Slave(Arc::new(
                Replayer::new(&cfg.alias, r.clone(), link.clone(), txn.clone()),
            )),
            _ => Role::Standalone,
        };
        Ok(DataNode {
            cfg,
            key,
            link,
            catalog: CatalogCache::default(),
            txn,
            role,
            rt: tokio::runtime::Handle::current(),
            web_logins: xrepl_proto::web::LoginCache::new(Duration::from_secs(60)),
        })
    }

    pub fn error(&self, code: ErrorCode, message: impl Into<String>) -> RemoteError {
        refusal(&self.cfg.alias, code, message)
    }

    /// Whether this node belongs to a replication master cluster.
    pub fn is_master(&self) -> bool {
        matches!(self.role, Role::Master(_))
    }

    /// Runs `f` to its end from a session thread (the blocking pool, never a runtime worker).
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// How often prepared transactions are settled (see `crate::txn::resolve`).
    pub const RESOLVE_EVERY: Duration = Duration::from_millis(500);
}
