//! The controller's family: what data nodes (and the controller's own tools) ask of it, and
//! its answers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use xrepl_core::catalog::{CatalogChange, DatabaseMeta, Right};
use xrepl_core::value::Value;

use crate::task::{AttemptProof, ReplayAssignment, ReplayFailure, ReplayOf, TaskMeta};
use crate::txn::TxState;

/// Requests a controller answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ControllerRequest {
    /// A data node announces itself at start (and again after the controller restarts, or
    /// after a heartbeat failed). `incarnation` is the same for every registration of one
    /// process and differs from any earlier process's (its start time in nanoseconds): a node
    /// that registers again without restarting still runs what it ran.
    Register {
        alias: String,
        site: String,
        incarnation: u64,
    },
    /// A data node is alive.
    Heartbeat { alias: String },
    /// Checks a user's password; answers a [`ControllerReply::LoggedIn`] with a token for later
    /// calls. `peer` is the address the client connected from, as the data node saw it (failed
    /// logins are throttled per user and per address).
    Login {
        user: String,
        password: String,
        peer: String,
    },
    /// Checks that the session of `token` still holds (the user exists, the password did not
    /// change, no logout): answers [`ControllerReply::Session`]. A data node asks before each
    /// request of a session.
    Session { token: String },
    /// Ends the session of `token`: it is refused from now on, on every node.
    Logout { token: String },
    /// `changePwd(old, new)`: the user of `token` changes their own password. Answers
    /// [`ControllerReply::LoggedIn`] with the session's new token (all earlier ones are
    /// refused from now on).
    ChangePassword {
        token: String,
        old: String,
        new: String,
        peer: String,
    },
    /// Runs a controller function for the user behind `token` (`rpc(getControllerAlias(), ...)`).
    Call {
        token: String,
        function: String,
        args: Vec<Value>,
    },
    /// Leases `count` transaction ids to data node `coordinator` for the transactions it will
    /// coordinate (for a logged-in user behind `token`): answers [`ControllerReply::TidRange`].
    /// The lease is durable before it is answered, so no tid is ever given twice.
    LeaseTids {
        token: String,
        coordinator: String,
        count: u32,
    },
    /// Records a transaction's outcome with its catalog changes: answers [`ControllerReply::Decided`].
    Decide {
        token: String,
        tid: u64,
        commit: bool,
        reason: String,
        changes: Vec<CatalogChange>,
        /// The task a commit makes when its database is replicated (`None`: not a database
        /// operation). Answered with the task's id, if one was made.
        task: Option<Box<TaskMeta>>,
        /// The task's encoded data when it is small (at most
        /// [`crate::task::INLINE_DATA_MAX`] bytes): the master controller keeps a copy in
        /// memory and sends it to slaves with the task, so that they need not fetch it.
        task_data: Option<serde_bytes::ByteBuf>,
        /// On a slave: the replicated tasks this transaction replays, in order (a batch). The
        /// controller records every one FINISHED in the same durable step as the commit, and
        /// refuses (aborts) the replay when any of them is finished already, answering
        /// [`super::error::ErrorCode::AlreadyApplied`].
        replay: Vec<ReplayOf>,
        /// What the coordinator planned a commit's chunk operations with: the database it
        /// read from its catalog cache and the right the operation needs. The controller checks
        /// the right, and that the database has not changed since (else the transaction is
        /// aborted with [`super::error::ErrorCode::StaleCatalog`] and can run again).
        check: Option<CatalogCheck>,
        /// The data nodes that were asked to prepare: the decision is kept until each has
        /// said (with [`ControllerRequest::Settled`]) that it applied it.
        participants: Vec<String>,
    },
    /// Data node `alias` has applied, durably, the decisions of these transactions (or had
    /// nothing prepared for them): answers [`ControllerReply::Done`]. A decision every
    /// participant has applied is forgotten.
    Settled { alias: String, tids: Vec<u64> },
    /// A participant asks what became of a transaction it prepared: answers [`ControllerReply::Outcome`].
    /// A transaction undecided past the timeout is aborted by this question. `held_ms`: how
    /// long the participant has held it prepared, so that the timeout runs from the prepare
    /// even when the controller restarted since (it counts its waits in memory).
    TxOutcome { tid: u64, held_ms: u64 },
    /// A database's metadata, if the user holds `need` on it (`None`: any logged-in user).
    /// Answers [`ControllerReply::Database`] (`None` when it does not exist).
    GetDatabase {
        token: String,
        db: String,
        need: Option<Right>,
    },
    /// Places the chunks of `partitions` that have no node yet on live data nodes; answers
    /// [`ControllerReply::Placement`] for all of them. Needs DB_WRITE.
    PlaceChunks {
        token: String,
        db: String,
        table: String,
        partitions: Vec<u32>,
    },
    /// Every database's replication flag and execution set, for an administrator: answers
    /// [`ControllerReply::Value`] with the table of `getDatabaseClusterReplicationStatus()`.
    ReplicationFlags { token: String },
    /// A master data node serving a slave's fetch ticket reads a replicated database's
    /// metadata: answers [`ControllerReply::Database`] (`None` when it does not exist);
    /// refused for a database that is not replicated.
    ReplicatedDatabase { db: String },
    /// A master data node asks which of the transactions whose task data it holds need it no
    /// more (truncated tasks, transactions without a task): answers [`ControllerReply::Tids`].
    SweepTaskData { tids: Vec<u64> },
    /// Master data node `node` asks for a chunk of a bootstrap to snapshot (one it holds),
    /// giving back the one it was handed before if it could not send it (`release`, with
    /// why): answers [`ControllerReply::SnapshotWork`].
    TakeSnapshotWork {
        node: String,
        release: Option<(u64, u32, String)>,
    },
    /// A slave data node's replay worker asks for tasks to replay (a batch of at most `max`,
    /// consecutive in the order the replication rules allow), waiting up to `wait_ms`:
    /// answers [`ControllerReply::ReplayTask`]. It first reports how its previous attempts
    /// ended, as [`ControllerRequest::ReplayDone`] does (empty when there is nothing to
    /// report), so that a worker that keeps busy needs one round trip per batch.
    TakeReplayTask {
        token: String,
        node: String,
        wait_ms: u32,
        max: u32,
        finished: Vec<u64>,
        failed: Option<ReplayFailure>,
        released: Vec<u64>,
        /// The hand-out that `finished`, `failed` and `released` are about (required when
        /// any is not empty).
        attempt: Option<AttemptProof>,
    },
    /// A slave data node says which tasks its workers are replaying (every second); a task
    /// handed to it that it does not name is taken back (the hand-out was lost): answers
    /// [`ControllerReply::Done`].
    ReplayRunning {
        token: String,
        node: String,
        tasks: Vec<u64>,
        /// The hand-outs those tasks came in: a task counts as running only in a hand-out
        /// whose nonce is here.
        attempts: Vec<AttemptProof>,
    },
    /// A slave data node's replay worker reports how the attempts at the tasks it was handed
    /// ended: `finished` committed (or were found applied already), `failed` did not commit,
    /// and `released` were not tried (a task before them failed, or the batch was cut): they
    /// wait for a worker again, with no attempt counted. Answers [`ControllerReply::Done`].
    ReplayDone {
        token: String,
        node: String,
        finished: Vec<u64>,
        failed: Option<ReplayFailure>,
        released: Vec<u64>,
        attempt: Option<AttemptProof>,
    },
    /// A slave data node asks, for an administrator's session (`token`), how to reach the
    /// master: answers [`ControllerReply::MasterAccess`] (`Unavailable` while the slave is not logged in
    /// to the master).
    MasterAccess { token: String },
}

/// The catalog a transaction was planned with, checked with its decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogCheck {
    pub db: String,
    /// `DatabaseMeta::version` as the coordinator saw it.
    pub version: u64,
    /// The right the caller needs on `db`.
    pub need: Right,
}

/// The controller's successful answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ControllerReply {
    Done,
    /// The controller's answer to a registration: how often to send heartbeats is the node's
    /// own setting; the controller only tells who it is.
    Registered {
        controller: String,
    },
    LoggedIn {
        user: String,
        is_admin: bool,
        token: String,
        /// When the token expires unless renewed, milliseconds since the epoch.
        expires_ms: i64,
    },
    /// The session holds: who it is, and a fresh token when the one it has is past half its
    /// life.
    Session {
        user: String,
        is_admin: bool,
        renewed: Option<String>,
    },
    Value(Value),
    /// Transaction ids `first..=last`, leased to the data node that asked.
    TidRange {
        first: u64,
        last: u64,
    },
    Decided {
        committed: bool,
        reason: String,
        task_id: Option<u64>,
    },
    /// A task for a slave data node to replay (`None`: none within the wait).
    ReplayTask(Option<ReplayAssignment>),
    Outcome(TxState),
    Database(Option<DatabaseMeta>),
    Placement(BTreeMap<u32, String>),
    Tids(Vec<u64>),
    /// A chunk to snapshot for a bootstrap (`None`: nothing for this node now).
    SnapshotWork(Option<SnapshotWork>),
    /// Where a slave reaches its master: the master controller's `host:port` and the slave's
    /// fetch ticket there (the slave's session token stays in the slave controller).
    MasterAccess {
        master: String,
        ticket: crate::ticket::FetchTicket,
    },
}

/// A chunk a master data node sends for a bootstrap: it reads the chunk under its lock in a
/// transaction whose task (SNAPSHOT_CHUNK) carries the rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotWork {
    pub job: u64,
    pub index: u32,
    pub db: String,
    /// The table's name now (it may have been renamed since the bootstrap began).
    pub table: String,
    pub table_id: u64,
    pub partition: u32,
    /// A session token of the user who turned replication on (or, for a re-sync, of the
    /// slave's user on the master): the transaction runs as them.
    pub token: String,
    /// The slave a re-sync's tasks are for (`None`: every slave).
    #[serde(default)]
    pub for_slave: Option<String>,
}

impl SnapshotWork {
    /// The task that begins a re-sync (its definitions), not a chunk: `index` is
    /// [`crate::task::BEGIN`] and `table` is empty for a whole database.
    pub fn begins(&self) -> bool {
        self.index == crate::task::BEGIN
    }

    /// The task that ends a re-sync, not a chunk: `index` is [`crate::task::END`].
    pub fn ends(&self) -> bool {
        self.index == crate::task::END
    }
}
