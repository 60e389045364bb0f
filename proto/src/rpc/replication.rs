//! The replication family: what a slave cluster asks of a master cluster (its controller, and
//! the data node holding a task's data), and the answers.

use serde::{Deserialize, Serialize};

use crate::task::TaskInfo;
use crate::txn::TableSums;

/// Requests a slave cluster sends to the master cluster. Each carries a token from `Login` on
/// the master controller; only a master administrator's token is accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ReplicationRequest {
    /// Answers [`ReplicationReply::LoggedIn`] (master controller).
    Login { user: String, password: String },
    /// Registers slave cluster `slave` (its controller's `host:port`), or confirms it is
    /// registered; refused beyond `clusterReplicationSlaveNum` (master controller).
    Register { token: String, slave: String },
    /// Reports the tasks `slave` has finished and asks for up to `max` tasks after `after`,
    /// waiting up to `wait_ms` when there are none: answers [`ReplicationReply::Tasks`] (master
    /// controller).
    Pull {
        token: String,
        slave: String,
        after: u64,
        finished: Vec<u64>,
        max: u32,
        wait_ms: u32,
    },
    /// A piece of a task's data from `offset`: answers [`ReplicationReply::TaskData`] (the master data
    /// node named in the task).
    FetchTaskData {
        token: String,
        task_id: u64,
        tid: u64,
        offset: u64,
    },
    /// The sites of the master's live data nodes: answers [`ReplicationReply::Sites`] (master controller).
    DataNodes { token: String },
    /// Row counts and checksums of every chunk of database `db` (of its table `table` only,
    /// if given) across the master cluster: answers [`ReplicationReply::Checksums`] (any master data
    /// node).
    Checksums {
        token: String,
        db: String,
        table: Option<String>,
    },
}

/// A master's successful answers to a slave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ReplicationReply {
    Done,
    LoggedIn {
        user: String,
        is_admin: bool,
        token: String,
    },
    /// Tasks for a slave, in task id order.
    Tasks(Vec<TaskInfo>),
    /// A piece of a task's data: `bytes` from `offset` of `total` (rmp-encoded `TaskData`).
    TaskData {
        total: u64,
        offset: u64,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    Sites(Vec<String>),
    /// Per table of a database: its schema's hash and its chunks' row counts and checksums.
    Checksums(Vec<TableSums>),
}
