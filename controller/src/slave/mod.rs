//! The slave side of replication on the controller: the puller that brings the master's tasks
//! into the execution queue, the hand-out of tasks to the data nodes' replay workers, the
//! retry/FAILED/STOPPED rule, and the slave's functions.
//!
//! Rooms:
//! - [`queue`]: the execution queue (durable, in the metadata; pure);
//! - [`scheduler`]: which task runs next where, and what a failed attempt leads to (memory;
//!   pure);
//! - [`puller`]: when to pull, connect or wait (pure), and the loop that does it;
//! - [`runtime`]: the one owner of the in-memory state (the scheduler, the report list, the
//!   master token);
//! - [`handout`]: the replay workers' requests (take a task, it is running, it ended);
//! - [`status`]: `start`/`stopClusterReplication`, `skipClusterReplicationTask` and the status
//!   functions.
//!
//! A task becomes FINISHED only in the commit of the slave transaction that replays it (the
//! metadata's `Decide` with `replay`), which is what makes a replay happen exactly once
//! whatever process dies when.

pub mod handout;
pub mod lag;
pub mod puller;
pub mod queue;
pub mod resync;
pub mod runtime;
pub mod scheduler;
pub mod status;

use std::sync::Arc;

use tokio::sync::watch;

use xrepl_core::config::ControllerReplication;

use crate::auth::Auth;
use crate::meta::MetaHandle;
use crate::nodes::NodeRegistry;
use runtime::Runtime;
use xrepl_proto::rpc::ClientTls;

/// A slave controller's replication: its settings, the metadata, the cluster's live nodes, and
/// the runtime state's handle.
pub struct Slave {
    /// This controller's alias, for errors.
    alias: String,
    /// This slave cluster's name on the master: its controller's `host:port`.
    me: String,
    cfg: ControllerReplication,
    /// How the links to the master are made (`enableClusterReplicationSSL`).
    master_tls: ClientTls,
    /// Makes the replay attempts' nonces.
    auth: Auth,
    meta: MetaHandle,
    nodes: Arc<NodeRegistry>,
    rt: Runtime,
    /// The master's bootstraps as of the latest pull answer; memory only.
    bootstraps: std::sync::Mutex<Vec<xrepl_proto::task::BootstrapProgress>>,
    /// What the master said of its send queue last, and whether it answers; memory only.
    master_view: std::sync::Mutex<lag::MasterView>,
    /// The lag over the last hour, for the status page; memory only.
    history: std::sync::Mutex<lag::LagHistory>,
    /// The latest failed replay attempts, for the status page and `/metrics`; memory only.
    failures: std::sync::Mutex<lag::Failures>,
}

impl Slave {
    /// Starts the runtime state's owner (on the current runtime).
    pub fn new(
        alias: &str,
        me: String,
        cfg: ControllerReplication,
        master_tls: ClientTls,
        auth: Auth,
        meta: MetaHandle,
        nodes: Arc<NodeRegistry>,
    ) -> Slave {
        Slave {
            alias: alias.to_string(),
            me,
            cfg,
            master_tls,
            auth,
            rt: Runtime::start(meta.clone()),
            meta,
            nodes,
            bootstraps: std::sync::Mutex::new(Vec::new()),
            master_view: std::sync::Mutex::new(lag::MasterView::default()),
            history: std::sync::Mutex::new(lag::LagHistory::default()),
            failures: std::sync::Mutex::new(lag::Failures::default()),
        }
    }

    fn record_failure(&self, task_id: u64, node: &str, reason: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(task_id, node, reason, now_ns());
    }

    /// The latest failed replay attempts (newest last), and how many there were since this
    /// process started.
    pub fn failures(&self) -> (Vec<lag::AttemptFailure>, u64) {
        let f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        (f.latest(), f.total)
    }

    /// The queue's counters, for `/metrics`.
    pub fn counters(&self) -> lag::Counters {
        self.meta.read(|s| lag::counters(&s.slave))
    }

    fn view(&self) -> std::sync::MutexGuard<'_, lag::MasterView> {
        self.master_view.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lag of each execution set now (`getClusterReplicationLag()`).
    pub fn lag(&self) -> Vec<lag::LagRow> {
        let view = self.view().clone();
        let now = now_ns();
        self.meta.read(|s| lag::lag_rows(&s.slave, &view, now))
    }

    /// The lag samples of the last hour.
    pub fn lag_history(&self) -> Vec<lag::LagSample> {
        self.history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .samples()
    }

    /// Keeps a lag sample every [`lag::SAMPLE_EVERY`] until `stop`.
    pub async fn run_lag_samples(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            let rows = self.lag();
            self.history
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(&rows, now_ns() / 1_000_000);
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(lag::SAMPLE_EVERY) => {}
            }
        }
    }

    /// The live data nodes, sorted by name (queue `q` is served by the `q mod n`-th).
    fn live_data_nodes(&self) -> Vec<String> {
        self.nodes.live_data_node_names()
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
