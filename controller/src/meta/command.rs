//! What goes into the metadata and what comes out: the commands ([`MetaCommand`]) and what
//! applying one produced ([`MetaOutcome`]).

use serde::{Deserialize, Serialize};
use xrepl_core::catalog::{Access, CatalogChange, Right};
use xrepl_proto::task::{ReplayOf, TaskInfo, TaskMeta};
use xrepl_proto::txn::Verdict;

use crate::slave::queue::FinishRefused;
pub use crate::switch::Switch;

/// The outcome of a transaction, durable once recorded (`d/<tid>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub committed: bool,
    /// Why it aborted.
    pub reason: String,
    /// The data nodes that have not yet said they applied it; once none is left the decision
    /// is forgotten. `None`: not known (a decision made by the controller for a transaction
    /// whose coordinator went silent, or recorded by an earlier version): kept for good.
    #[serde(default)]
    pub waiting: Option<Vec<String>>,
    /// The replication task the commit made, if any (so that a coordinator asking again is
    /// told the same number).
    #[serde(default)]
    pub task: Option<u64>,
}

impl Decision {
    pub fn new(committed: bool, reason: String, waiting: Option<Vec<String>>) -> Decision {
        Decision {
            committed,
            reason,
            waiting,
            task: None,
        }
    }
}

/// A change to the metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MetaCommand {
    /// Creates the token secret; only once, on first start.
    InitTokenKey { key: Vec<u8> },
    CreateUser {
        name: String,
        password_hash: String,
        is_admin: bool,
    },
    /// `grant`, `deny` or `revoke`: sets `right` (on `db`, or for the whole cluster) to
    /// `to`. `db: None` with `Right::Owner`: creating databases.
    Grant {
        user: String,
        right: Right,
        db: Option<String>,
        #[serde(default = "allow")]
        to: Access,
    },
    /// `changePwd` or `resetPwd`: a new password; the user's generation moves on, so every
    /// token issued before is refused.
    SetPassword { user: String, password_hash: String },
    /// `deleteUser`.
    DeleteUser { name: String },
    /// Makes `key` the signing key of new tokens; the one before stays valid for tokens until
    /// `previous_until_ms`.
    RotateTokenKey {
        key: Vec<u8>,
        previous_until_ms: i64,
    },
    /// `logout`: the token with this nonce is refused until it would have expired.
    RevokeToken {
        nonce: String,
        expires_ms: i64,
        now_ms: i64,
    },
    /// Records the site a data node registered from.
    RegisterNode { alias: String, site: String },
    /// Leases the next `count` tids to a data node (durable before it is answered).
    LeaseTids { count: u64 },
    /// Records a transaction's outcome with its catalog changes, atomically. The first decision
    /// for a tid wins; a commit whose changes the catalog refuses is recorded as an abort.
    Decide {
        tid: u64,
        /// The user the transaction runs for (a non-administrator creating a database owns it).
        user: String,
        verdict: Verdict,
        reason: String,
        changes: Vec<CatalogChange>,
        /// The task the commit makes if its database is replicated.
        task: Option<Box<TaskMeta>>,
        /// This controller is a replication master (from its configuration).
        master: bool,
        /// The commit time, for the task's `submitTime` (ns since the epoch).
        now_ns: i64,
        /// On a slave: the tasks this transaction replays (a batch, in order), each recorded
        /// FINISHED by its commit. A replay of which any task may not finish (finished
        /// already) is aborted instead.
        replay: Vec<ReplayOf>,
        /// The data nodes asked to prepare (`None`: not known).
        participants: Option<Vec<String>>,
    },
    /// Data node `node` applied the decisions of `tids`; a decision no node waits on any
    /// more is forgotten, its tid kept in `MetaState::settled`.
    Settle { node: String, tids: Vec<u64> },
    /// Slave: tasks received from the master, stored WAITING with the new pull position.
    StoreTasks {
        tasks: Vec<TaskInfo>,
        queues: u32,
        now_ns: i64,
        /// `slaveReplicationDBScope`: the databases replayed (`None`: every one); the tasks
        /// of others are stored FINISHED (answered as [`MetaOutcome::Skipped`]).
        #[serde(default)]
        scope: Option<Vec<String>>,
        /// This slave's name on the master: a re-sync's task for another one is stored
        /// FINISHED.
        #[serde(default)]
        me: String,
    },
    /// Slave: a task failed its last attempt: FAILED, and the slave STOPPED.
    FailTask {
        task_id: u64,
        details: String,
        node: String,
    },
    /// Slave: `startClusterReplication()` (FAILED tasks wait again) or `stopClusterReplication()`.
    SwitchSlave { switch: Switch },
    /// Slave: `skipClusterReplicationTask(ids)`.
    SkipTasks {
        ids: Vec<u64>,
        details: String,
        now_ns: i64,
    },
    /// `startClusterReplication()` / `stopClusterReplication()` on a master.
    SwitchMaster { switch: Switch },
    /// Registers a slave cluster (a registered one is confirmed); refused beyond `max`.
    RegisterSlave {
        slave: String,
        /// The master user it registers as (empty in commands logged before it was recorded).
        #[serde(default)]
        user: String,
        max: u32,
        now_ms: i64,
    },
    /// `dropClusterReplicationSlave(name)`: forgets a slave cluster; truncation follows what
    /// the others have finished.
    DropSlave { slave: String },
    /// Drops a slave that fell more than `clusterReplicationMaxRetainedBytes` behind; it is
    /// refused with `why` until `DropSlave` removes it.
    EvictSlave { slave: String, why: String },
    /// A slave reports finished tasks; truncation follows when every slave has finished.
    SlaveProgress {
        slave: String,
        finished: Vec<u64>,
        now_ms: i64,
    },
    /// Master: `resyncClusterReplicationTable` / `...Database` from slave cluster `slave`:
    /// a re-sync job of `table` (`None`: the database), run as `user`.
    StartResync {
        db: String,
        table: Option<String>,
        slave: String,
        user: String,
        now_ms: i64,
    },
    /// Master: slave `slave` asks for tasks the master truncated (it is new, or lost its
    /// state): a re-sync of every replicated database for it, run as `user` (nothing while
    /// one for it runs).
    SeedSlave {
        slave: String,
        user: String,
        now_ms: i64,
    },
    /// Master: bootstrap `job` cannot go on (`why`: its user cannot act any more): it ends.
    EndSnapshotJob { job: u64, why: String, now_ms: i64 },
    /// Master: chunk `index` of bootstrap `job` is gone (its table or partition was
    /// dropped): there is nothing to send.
    SkipSnapshotChunk { job: u64, index: u32, now_ms: i64 },
    /// Places chunks that have no node yet (outside any transaction: an empty chunk is harmless).
    AssignChunks {
        db: String,
        table: String,
        chunks: Vec<(u32, String)>,
    },
}

impl MetaCommand {
    /// Whether its caller waits until it is durable. Tasks a slave received need not be: the
    /// master keeps a task until every slave reports it finished, so a store lost in a crash
    /// of the machine only makes the puller ask for those tasks again; and the log is written
    /// in order, so the sync of any later command (a replay's decision) makes them durable
    /// first.
    pub fn must_sync(&self) -> bool {
        !matches!(self, MetaCommand::StoreTasks { .. })
    }
}

fn allow() -> Access {
    Access::Allow
}

/// What applying a command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaOutcome {
    Done,
    /// Leased tids, `first..=last`.
    Tids {
        first: u64,
        last: u64,
    },
    /// The decision recorded (or found recorded) for a transaction, and the task its commit
    /// made on a master.
    Decided(Decision, Option<u64>),
    /// A replay refused because its task may not finish: recorded as an abort with this
    /// decision, whose reason is the refusal's text.
    ReplayRefused(Decision, FinishRefused),
    /// The tasks a skip marked FINISHED.
    Skipped(Vec<u64>),
    /// A re-sync job's id.
    Job(u64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_tasks_a_slave_received_are_stored_without_waiting_for_a_sync() {
        let store = MetaCommand::StoreTasks {
            tasks: vec![],
            queues: 4,
            now_ns: 0,
            scope: None,
            me: String::new(),
        };
        assert!(!store.must_sync());
        for cmd in [
            MetaCommand::LeaseTids { count: 1 },
            MetaCommand::Settle {
                node: "dnode1".into(),
                tids: vec![1],
            },
        ] {
            assert!(cmd.must_sync(), "{cmd:?}");
        }
    }
}
