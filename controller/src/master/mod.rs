//! The master side of replication on the controller.
//!
//! Rooms:
//! - [`send_queue`]: the send queue (durable, in the metadata; pure): numbering, grouping,
//!   the registered slaves, truncation, what a pull answers, which task data may go;
//! - [`serve`]: the requests of slave clusters (login, registration, pulls with long polling,
//!   which carry small tasks' data from [`crate::inline`]);
//! - [`task_check`]: what a commit's proposed task must be (pure);
//! - [`bootstrap`]: the bootstraps of databases whose replication was turned on (durable,
//!   pure), and [`snapshots`]: handing their chunks out to the data nodes that hold them;
//! - [`status`]: `start`/`stopClusterReplication()` and the status tables
//!   (`getMasterReplicationStatus`, `getRecentSlaveReplicationInfo`,
//!   `getDatabaseClusterReplicationStatus`).
//!
//! A task is numbered into the send queue by the same metadata command that records its
//! transaction's commit (`crate::txn`).

pub mod bootstrap;
pub mod info;
pub mod send_queue;
pub mod serve;
pub mod snapshots;
pub mod status;
pub mod task_check;
pub mod task_list;

use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::Notify;

use crate::auth::Auth;
use crate::inline::InlineCache;
use crate::meta::MetaHandle;
use crate::nodes::NodeRegistry;
use xrepl_core::cluster_key::ClusterKey;
use xrepl_core::config::{ControllerConfig, ControllerReplication};

/// A master controller's replication: who may register, the metadata, the live nodes, and
/// what only lives in memory.
pub struct Master {
    /// This controller's alias, for errors.
    alias: String,
    /// `clusterReplicationSlaveNum`: most slave clusters.
    slave_num: u32,
    /// `clusterReplicationMaxRetainedBytes`: most task data kept for one slave.
    max_retained_bytes: u64,
    meta: MetaHandle,
    nodes: Arc<NodeRegistry>,
    auth: Auth,
    /// The cluster key, which signs the slaves' fetch tickets.
    key: ClusterKey,
    /// Where task data may be (`host:port`), named in the tickets.
    task_sources: Vec<String>,
    /// Woken whenever a task is queued, for slaves waiting in a pull.
    task_added: Notify,
    /// When each slave last pulled (ns since the epoch); memory only.
    last_pull: DashMap<String, i64>,
    /// Small tasks' data, sent with the tasks in pull answers; memory only.
    inline: std::sync::Mutex<InlineCache>,
    /// The bootstrap chunks handed out to data nodes; memory only.
    snapshot_leases: std::sync::Mutex<snapshots::Leases>,
    /// Small tasks' data by tid while their commit is being recorded (see
    /// [`Master::hold_data`]).
    held_data: DashMap<u64, serde_bytes::ByteBuf>,
}

/// Most small tasks' data the master controller keeps in memory for the pulls.
pub const INLINE_KEEP_BYTES: usize = 64 << 20;

impl Master {
    /// The master role of the controller configured by `cfg`, whose replication settings are
    /// `r`.
    pub fn new(
        cfg: &ControllerConfig,
        r: &ControllerReplication,
        meta: MetaHandle,
        nodes: Arc<NodeRegistry>,
        auth: Auth,
        key: ClusterKey,
    ) -> Master {
        Master {
            alias: cfg.alias.clone(),
            slave_num: r.slave_num,
            max_retained_bytes: r.max_retained_bytes,
            meta,
            nodes,
            auth,
            key,
            task_sources: cfg
                .task_sources
                .iter()
                .map(|(h, p)| format!("{h}:{p}"))
                .collect(),
            task_added: Notify::new(),
            last_pull: DashMap::new(),
            inline: std::sync::Mutex::new(InlineCache::new(INLINE_KEEP_BYTES)),
            snapshot_leases: std::sync::Mutex::new(snapshots::Leases::default()),
            held_data: DashMap::new(),
        }
    }

    /// Drops every slave for which more than `clusterReplicationMaxRetainedBytes` of task data
    /// is kept (run by the controller's sweeper).
    pub async fn enforce_retention(&self) {
        let max = self.max_retained_bytes;
        for (slave, bytes) in self.meta.read(|s| s.send.over_retention(max)) {
            let why = format!(
                "it had not finished {bytes} bytes of task data, more than clusterReplicationMaxRetainedBytes={max}"
            );
            match self
                .meta
                .apply(crate::meta::MetaCommand::EvictSlave {
                    slave: slave.clone(),
                    why: why.clone(),
                })
                .await
            {
                Ok(_) => tracing::error!(
                    %slave,
                    "slave cluster dropped: {why}; the master no longer keeps task data for it. Re-seed it from the master, then run dropClusterReplicationSlave(\"{slave}\") on the master to let it register again"
                ),
                Err(e) => {
                    tracing::warn!(%slave, "cannot drop the slave cluster that fell behind: {e}")
                }
            }
        }
    }

    /// A task was queued: slaves waiting in a pull look again.
    pub fn task_added(&self) {
        self.task_added.notify_waiters();
    }

    /// Keeps a small task's data for the pulls (before [`Master::task_added`]).
    pub fn keep_data(&self, task_id: u64, bytes: serde_bytes::ByteBuf) {
        self.inline_cache().keep(task_id, bytes);
    }

    /// Holds a small task's data by its transaction's tid while the commit is recorded: a
    /// pull may see the task before [`Master::keep_data`] has kept the data by task id.
    pub fn hold_data(&self, tid: u64, bytes: serde_bytes::ByteBuf) {
        self.held_data.insert(tid, bytes);
    }

    /// The commit of `tid` is recorded: its held data, to keep by task id if it made a task.
    pub fn release_data(&self, tid: u64) -> Option<serde_bytes::ByteBuf> {
        self.held_data.remove(&tid).map(|(_, bytes)| bytes)
    }

    /// Keeps, by task id, the held data of the listed tasks that the cache does not have yet.
    fn take_held(&self, tasks: &[xrepl_proto::task::TaskInfo]) {
        if self.held_data.is_empty() {
            return;
        }
        let mut cache = self.inline_cache();
        for t in tasks {
            if let Some(bytes) = self.held_data.get(&t.tid) {
                cache.keep(t.task_id, bytes.clone());
            }
        }
    }

    fn inline_cache(&self) -> std::sync::MutexGuard<'_, InlineCache> {
        self.inline.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn refuse(
        &self,
        code: xrepl_proto::rpc::ErrorCode,
        message: impl Into<String>,
    ) -> xrepl_proto::rpc::RemoteError {
        crate::error::refusal(&self.alias, code, message)
    }
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}
