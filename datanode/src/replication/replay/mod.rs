//! The slave data node's replay workers (`clusterReplicationWorkerNum` of them). Each asks the
//! slave controller for a task (a long poll), fetches the task's data from the master data
//! node named in it, plans the replay against this cluster's catalog (its own table ids and
//! chunk placement), and runs it as one transaction under the execution user whose commit
//! records the task FINISHED. A replay of a task finished already is rolled back by the
//! controller (`ErrorCode::AlreadyApplied`) and is not a failure.
//!
//! - [`worker`]: the workers' loop, one attempt, and the report of what runs;
//! - [`plan`]: what replaying a task's data changes here.

pub mod plan;
pub mod worker;

use std::sync::Arc;

use dashmap::DashMap;
use xrepl_core::config::DataNodeReplication;
use xrepl_proto::master_client::TaskDataFetcher;

use crate::catalog_cache::CatalogCache;
use crate::link::ControllerLink;
use crate::txn::coordinator::Coordinator;

/// What a worker is doing, for `getSlaveReplicationExecutionStatus()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Fetching the task data.
    Transmitted,
    /// Replaying it.
    Executing,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Transmitted => "TRANSMITTED",
            Stage::Executing => "EXECUTING",
        }
    }
}

/// What one worker is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerState {
    pub execution_set: u8,
    /// The first task of its batch.
    pub task_id: u64,
    /// Every task of its batch, in replay order.
    pub tasks: Vec<u64>,
    pub stage: Stage,
    /// The hand-out they came in.
    pub attempt: xrepl_proto::task::AttemptProof,
}

/// The replay side of a slave data node.
pub struct Replayer {
    alias: String,
    cfg: DataNodeReplication,
    link: Arc<ControllerLink>,
    coordinator: Arc<Coordinator>,
    /// Busy workers by number.
    pub workers: DashMap<u32, WorkerState>,
    fetcher: TaskDataFetcher,
    /// Database definitions kept between batches (checked at the decision, see
    /// `plan::Catalogs::checked`).
    kept: CatalogCache,
    /// The execution user's session token on this cluster, with when it was issued and when
    /// it expires (ms since the epoch): it is replaced past half its life.
    token: tokio::sync::Mutex<Option<(String, i64, i64)>>,
}

impl Replayer {
    pub fn new(
        alias: &str,
        cfg: DataNodeReplication,
        link: Arc<ControllerLink>,
        coordinator: Arc<Coordinator>,
    ) -> Replayer {
        Replayer {
            alias: alias.to_string(),
            cfg,
            fetcher: TaskDataFetcher::new(link.tls().master.clone()),
            link,
            coordinator,
            workers: DashMap::new(),
            kept: CatalogCache::default(),
            token: tokio::sync::Mutex::new(None),
        }
    }

    /// Every busy worker, by number.
    pub fn status(&self) -> Vec<(u32, WorkerState)> {
        let mut rows: Vec<(u32, WorkerState)> = self
            .workers
            .iter()
            .map(|e| (*e.key(), e.value().clone()))
            .collect();
        rows.sort_by_key(|r| r.0);
        rows
    }
}
