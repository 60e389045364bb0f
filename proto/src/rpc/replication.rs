//! The replication family: what a slave cluster asks of a master cluster (its controller, and
//! the data node holding a task's data), and the answers.

use serde::{Deserialize, Serialize};

use crate::task::{InlineData, TaskInfo};
use crate::ticket::FetchTicket;
use crate::txn::TableSums;

/// Most tasks one `FetchTasksData` may ask for.
pub const FETCH_TASKS_MAX: usize = 1024;
/// A `TasksData` answer stops adding tasks once it holds this many bytes.
pub const FETCH_TASKS_REPLY_BYTES: usize = 4 << 20;

/// A task whose data is asked for: its id and the master transaction its data is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRef {
    pub task_id: u64,
    pub tid: u64,
}

/// The start of one task's data: `bytes` from offset 0 of `total` (fetch the rest with
/// `FetchTaskData`), or why it cannot be had.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskPiece {
    pub task_id: u64,
    pub total: u64,
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
    pub error: Option<crate::rpc::RemoteError>,
}

/// Requests a slave cluster sends to the master cluster. Those to the master controller carry
/// a token from `Login` there (a master administrator's, or a user's holding
/// `CLUSTER_REPLICATION`); those to master data nodes carry a [`FetchTicket`] instead.
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
        /// How many bytes of small tasks' data the slave can take inside the answer (it keeps
        /// them in memory until the tasks finish).
        inline_room: u64,
    },
    /// A piece of a task's data from `offset`: answers [`ReplicationReply::TaskData`] (the master data
    /// node named in the task).
    FetchTaskData {
        ticket: FetchTicket,
        task_id: u64,
        tid: u64,
        offset: u64,
    },
    /// The data of several tasks held by one master data node, in order, each from its start:
    /// answers [`ReplicationReply::TasksData`] (that data node). At most
    /// [`FETCH_TASKS_MAX`] tasks a request.
    FetchTasksData {
        ticket: FetchTicket,
        tasks: Vec<TaskRef>,
    },
    /// A fresh fetch ticket for `slave`, when it is not pulling (its queue is full or
    /// replication is stopped): answers [`ReplicationReply::Ticket`] (master controller).
    Ticket { token: String, slave: String },
    /// `resyncClusterReplicationTable` / `resyncClusterReplicationDatabase` on slave `slave`:
    /// the master sends it `table` of `db` (`None`: all of `db`) afresh, by tasks for it alone:
    /// answers [`ReplicationReply::Resync`] (master controller).
    Resync {
        token: String,
        slave: String,
        db: String,
        table: Option<String>,
    },
    /// Where the master's send queue is, for a slave that does not pull (it is stopped):
    /// answers [`ReplicationReply::Position`] (master controller).
    Position {
        token: String,
        slave: String,
        after: u64,
    },
    /// The sites of the master's live data nodes: answers [`ReplicationReply::Sites`] (master
    /// controller).
    DataNodes { ticket: FetchTicket },
    /// Row counts and checksums of every chunk of database `db` (of its table `table` only,
    /// if given) across the master cluster: answers [`ReplicationReply::Checksums`] (any master data
    /// node).
    Checksums {
        ticket: FetchTicket,
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
        /// When the token expires, milliseconds since the epoch.
        expires_ms: i64,
    },
    /// Tasks for a slave, in task id order, and the data of those small enough to come along
    /// (at most the `inline_room` the slave asked for; the others are fetched with `ticket`,
    /// which covers every task answered so far).
    Tasks {
        tasks: Vec<TaskInfo>,
        data: Vec<InlineData>,
        ticket: FetchTicket,
        /// The master's bootstraps, running and recently finished.
        #[serde(default)]
        bootstraps: Vec<crate::task::BootstrapProgress>,
        /// Where the master's send queue is after these tasks.
        #[serde(default)]
        position: MasterPosition,
    },
    /// Where the master's send queue is after the task asked about.
    Position(MasterPosition),
    /// A piece of a task's data: `bytes` from `offset` of `total` (rmp-encoded `TaskData`).
    TaskData {
        total: u64,
        offset: u64,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// The first pieces of the tasks asked for with `FetchTasksData`, in order: as many as fit
    /// in about [`FETCH_TASKS_REPLY_BYTES`] (at least one); ask again for the rest.
    TasksData(Vec<TaskPiece>),
    Sites(Vec<String>),
    Ticket(FetchTicket),
    /// The re-sync job started for a [`ReplicationRequest::Resync`].
    Resync {
        job: u64,
    },
    /// Per table of a database: its schema's hash and its chunks' row counts and checksums.
    Checksums(Vec<TableSums>),
}

/// How far the master's send queue is, as a slave needs it for its lag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterPosition {
    /// The master's newest task.
    pub last_task: u64,
    /// When the master committed the first task after those asked about or sent (ns since the
    /// epoch; 0: there is none).
    pub next_submit_ns: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::server::PRE_AUTH_MAX_MESSAGE;
    use crate::rpc::{encode, Request};

    /// A slave's data node never logs in on a master data node: its largest request must fit,
    /// with room to spare, in what an unauthenticated peer may send.
    #[test]
    fn the_largest_ticketed_request_fits_well_within_the_pre_auth_limit() {
        let ticket = FetchTicket {
            slave: format!("{}:65535", "slave-controller.example.com"),
            upto: u64::MAX,
            expires_ms: u64::MAX,
            // A hundred data nodes, each with a public address besides.
            sources: (0..200)
                .map(|i| format!("datanode-{i:03}.master.example.com:65535"))
                .collect(),
            mac: vec![0xff; 64],
        };
        let req: Request = ReplicationRequest::FetchTasksData {
            ticket,
            tasks: vec![
                TaskRef {
                    task_id: u64::MAX,
                    tid: u64::MAX,
                };
                FETCH_TASKS_MAX
            ],
        }
        .into();
        let len = encode(&req).expect("encode").len();
        assert!(
            len * 2 < PRE_AUTH_MAX_MESSAGE,
            "FetchTasksData takes {len} bytes; the pre-auth limit is {PRE_AUTH_MAX_MESSAGE}"
        );
    }
}
