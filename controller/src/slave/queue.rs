//! The slave's execution queue as the metadata holds it: the tasks pulled from the master, their
//! states, the pull position and the slave's replication status. Pure logic, no IO: every
//! change is a method the metadata's `apply` calls, answering what it touched
//! ([`QueueTouch`]), so it is written in the same sled batch as whatever else the command
//! changes (the tasks with the new pull position; a task's FINISHED with the commit of the
//! transaction that replayed it).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use xrepl_proto::task::{OperationType, ReplayOf, TaskInfo};

use crate::switch::Switch;

/// Finished tasks whose rows the slave keeps for listing (older ones are forgotten; their ids
/// stay below [`ExecQueue::last_pulled`], which is how a late replay of one is recognised).
pub const KEEP_FINISHED: usize = 10_000;

/// The execution queue of a task on a slave: a stable hash of its id (SipHash with fixed
/// keys, so every run and every node agrees).
pub fn queue_of(task_id: u64, queues: u32) -> u32 {
    (xrepl_core::catalog::stable_hash(&task_id.to_le_bytes()) % u64::from(queues.max(1))) as u32
}

/// Why a replay of a task may not commit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FinishRefused {
    /// Finished by a replay (`skipped: false`) or a skip: this replay is a duplicate.
    #[error("task {task_id} was applied already (finished {}); this replay is rolled back", if *skipped { "as skipped" } else { "by a replay" })]
    AppliedAlready { task_id: u64, skipped: bool },
    /// Finished so long ago that its row was forgotten (its id is at or below the pull
    /// position): a duplicate too.
    #[error("task {task_id} was applied already; this replay is rolled back")]
    Forgotten { task_id: u64 },
    #[error("task {task_id} is FAILED; startClusterReplication() runs it again")]
    Failed { task_id: u64 },
    #[error("task {task_id} is not in this slave's queue")]
    NotInQueue { task_id: u64 },
}

impl FinishRefused {
    /// The task is applied: the replay that was refused is a duplicate, and the task is done.
    pub fn is_applied(&self) -> bool {
        matches!(
            self,
            FinishRefused::AppliedAlready { .. } | FinishRefused::Forgotten { .. }
        )
    }
}

/// The slave's replication status (`getClusterReplicationMetrics().status`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SlaveStatus {
    /// Pulling and executing.
    #[default]
    Enabled,
    /// `stopClusterReplication()`: no new pulls, no new groups.
    Disabled,
    /// A task failed `clusterReplicationRetryLimit` times.
    Stopped,
}

impl SlaveStatus {
    pub fn name(self) -> &'static str {
        match self {
            SlaveStatus::Enabled => "ENABLED",
            SlaveStatus::Disabled => "DISABLED",
            SlaveStatus::Stopped => "STOPPED",
        }
    }
}

/// A task's durable state. `EXECUTING` is not stored: it is the scheduler's knowledge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskState {
    Waiting,
    Finished,
    Failed,
}

/// The details of a task not applied because its database is outside
/// `slaveReplicationDBScope`.
pub const OUTSIDE_SCOPE: &str = "skipped by scope: its database is not in slaveReplicationDBScope";

/// What a skipped task touched, and the re-sync that makes the slave's copy equal again.
pub fn resync_hint(t: &TaskInfo) -> String {
    if t.table.is_empty() {
        format!(
            "it touched database {db}: to make this slave's copy equal to the master's again, run resyncClusterReplicationDatabase(\"{db}\")",
            db = t.db
        )
    } else {
        format!(
            "it touched table {table} of {db}: to make this slave's copy equal to the master's again, run resyncClusterReplicationTable(\"{db}\", \"{table}\")",
            db = t.db,
            table = t.table
        )
    }
}

/// A task in the slave's execution queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaveTask {
    pub info: TaskInfo,
    /// Its execution queue (a stable hash of its id over `clusterReplicationQueue`).
    pub queue: u32,
    /// When the slave received it (ns since the epoch).
    pub create_ns: i64,
    pub state: TaskState,
    /// When the attempt that finished it began, and when it finished (ns; 0: not yet).
    pub start_ns: i64,
    pub finish_ns: i64,
    /// The data node that replayed it.
    pub node: String,
    /// Why it failed, or that it was skipped.
    pub details: String,
}

/// The slave's durable counters (`m/slave`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaveRepl {
    pub status: SlaveStatus,
    /// The highest task id received from the master (the next pull asks after it).
    pub last_pulled: u64,
    /// Tasks finished (replayed or skipped) since replication began.
    pub finished_total: u64,
    /// When the first task arrived (ns since the epoch; 0: none yet).
    pub began_ns: i64,
    /// Tasks that became FAILED (each time one did).
    #[serde(default)]
    pub failed_total: u64,
}

/// What a change touched, for the metadata writer to persist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueTouch {
    Repl,
    Task(u64),
}

/// The execution queue: tasks by id, and the unfinished ones by execution set and group.
#[derive(Debug, Clone, Default)]
pub struct ExecQueue {
    pub repl: SlaveRepl,
    pub tasks: BTreeMap<u64, SlaveTask>,
    /// Unfinished (WAITING or FAILED) tasks of execution set 0 and 1, as (groupId, taskId).
    pub pending: [BTreeSet<(u64, u64)>; 2],
    /// The same tasks by execution set and database (for [`ExecQueue::held_by_other_set`]).
    pending_by_db: [HashMap<String, BTreeSet<u64>>; 2],
    finished: BTreeSet<u64>,
}

fn set_index(set: u8) -> usize {
    usize::from(set.min(1))
}

impl ExecQueue {
    /// Rebuilds the indexes after loading `repl` and `tasks` from disk.
    pub fn load(repl: SlaveRepl, tasks: BTreeMap<u64, SlaveTask>) -> ExecQueue {
        let mut q = ExecQueue {
            repl,
            tasks,
            ..ExecQueue::default()
        };
        for (id, t) in &q.tasks {
            if t.state == TaskState::Finished {
                q.finished.insert(*id);
            } else {
                let set = set_index(t.info.execution_set);
                q.pending[set].insert((t.info.group_id, *id));
                q.pending_by_db[set]
                    .entry(t.info.db.clone())
                    .or_default()
                    .insert(*id);
            }
        }
        q
    }

    /// Whether an earlier task of the same database is unfinished in the other execution set.
    /// A database's tasks change sets when `setDatabaseClusterReplicationExecutionSet` moves
    /// it (its `CREATE_DOMAIN` is in set 0, say, and its tables are created in set 1); the
    /// sets run independently, so without this a task could run before the task that created
    /// its database. The lowest unfinished task is never held, so this cannot deadlock.
    pub fn held_by_other_set(&self, t: &TaskInfo) -> bool {
        let other = 1 - set_index(t.execution_set);
        self.pending_by_db[other]
            .get(&t.db)
            .and_then(|ids| ids.first())
            .is_some_and(|first| *first < t.task_id)
    }

    pub fn unfinished(&self) -> usize {
        self.pending[0].len() + self.pending[1].len()
    }

    /// The highest finished task of execution set `set` still kept (0: none).
    pub fn last_finished_in(&self, set: u8) -> u64 {
        self.finished
            .iter()
            .rev()
            .find(|id| {
                self.tasks
                    .get(id)
                    .is_some_and(|t| set_index(t.info.execution_set) == usize::from(set))
            })
            .copied()
            .unwrap_or(0)
    }

    /// Stores tasks received from the master: new ones WAITING, with their queue; ones at or
    /// below the pull position are ignored (a repeated answer).
    /// Tasks of a database outside `scope` (`slaveReplicationDBScope`, `None`: every
    /// database) are stored FINISHED, never applied, and returned (to report to the master).
    ///
    /// A re-sync's task (`for_slave`) for another slave is stored FINISHED too. One for this
    /// slave (`me`) makes every earlier unfinished task of its table (of its database, for a
    /// whole database) FINISHED: the re-sync replaces what they would have written.
    pub fn store(
        &mut self,
        tasks: &[TaskInfo],
        queues: u32,
        now_ns: i64,
        scope: Option<&[String]>,
        me: &str,
    ) -> (Vec<QueueTouch>, Vec<u64>) {
        let mut touched = vec![QueueTouch::Repl];
        let mut outside = vec![];
        for t in tasks {
            if t.task_id <= self.repl.last_pulled {
                continue;
            }
            self.repl.last_pulled = t.task_id;
            if self.repl.began_ns == 0 {
                self.repl.began_ns = now_ns;
            }
            self.pending[set_index(t.execution_set)].insert((t.group_id, t.task_id));
            self.pending_by_db[set_index(t.execution_set)]
                .entry(t.db.clone())
                .or_default()
                .insert(t.task_id);
            self.tasks.insert(
                t.task_id,
                SlaveTask {
                    info: t.clone(),
                    queue: queue_of(t.task_id, queues),
                    create_ns: now_ns,
                    state: TaskState::Waiting,
                    start_ns: 0,
                    finish_ns: 0,
                    node: String::new(),
                    details: String::new(),
                },
            );
            touched.push(QueueTouch::Task(t.task_id));
            let other = t.for_slave.as_deref().filter(|s| *s != me);
            let not_applied = if scope.is_some_and(|s| !s.contains(&t.db)) {
                Some(OUTSIDE_SCOPE.to_string())
            } else {
                other.map(|s| format!("not applied here: a re-sync's task for slave cluster {s}"))
            };
            if let Some(why) = not_applied {
                self.finish_unapplied(t.task_id, &why, now_ns, &mut touched);
                outside.push(t.task_id);
            } else if t.for_slave.is_some()
                && matches!(
                    t.op,
                    OperationType::ResyncTable | OperationType::ResyncDatabase
                )
            {
                let whole = t.op == OperationType::ResyncDatabase;
                let earlier: Vec<u64> = self
                    .tasks
                    .range(..t.task_id)
                    .filter(|(_, e)| {
                        e.state != TaskState::Finished
                            && e.info.db == t.db
                            && (whole || e.info.table == t.table)
                    })
                    .map(|(id, _)| *id)
                    .collect();
                for id in earlier {
                    let why = format!("superseded by the re-sync at task {}", t.task_id);
                    self.finish_unapplied(id, &why, now_ns, &mut touched);
                    outside.push(id);
                }
            }
        }
        (touched, outside)
    }

    /// Marks a task FINISHED without a replay, with why.
    fn finish_unapplied(&mut self, id: u64, why: &str, now_ns: i64, touched: &mut Vec<QueueTouch>) {
        if let Some(st) = self.tasks.get_mut(&id) {
            st.state = TaskState::Finished;
            st.finish_ns = now_ns;
            st.details = why.to_string();
        }
        self.mark_finished(id, touched);
    }

    /// Whether a replay of `task_id` may commit: the task is waiting (not finished, not
    /// failed, not forgotten).
    pub fn may_finish(&self, task_id: u64) -> Result<(), FinishRefused> {
        match self.tasks.get(&task_id) {
            Some(t) if t.state == TaskState::Waiting => Ok(()),
            Some(t) if t.state == TaskState::Finished => Err(FinishRefused::AppliedAlready {
                task_id,
                skipped: !t.details.is_empty(),
            }),
            Some(_) => Err(FinishRefused::Failed { task_id }),
            None if task_id <= self.repl.last_pulled => Err(FinishRefused::Forgotten { task_id }),
            None => Err(FinishRefused::NotInQueue { task_id }),
        }
    }

    fn mark_finished(&mut self, id: u64, touched: &mut Vec<QueueTouch>) {
        if let Some(t) = self.tasks.get(&id) {
            let set = set_index(t.info.execution_set);
            self.pending[set].remove(&(t.info.group_id, id));
            if let Some(ids) = self.pending_by_db[set].get_mut(&t.info.db) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.pending_by_db[set].remove(&t.info.db);
                }
            }
        }
        self.finished.insert(id);
        self.repl.finished_total += 1;
        touched.push(QueueTouch::Task(id));
        touched.push(QueueTouch::Repl);
        while self.finished.len() > KEEP_FINISHED {
            let Some(old) = self.finished.pop_first() else {
                break;
            };
            self.tasks.remove(&old);
            touched.push(QueueTouch::Task(old));
        }
    }

    /// Records a replay's commit. Call [`ExecQueue::may_finish`] first.
    pub fn finish(&mut self, r: &ReplayOf, now_ns: i64) -> Vec<QueueTouch> {
        let mut touched = vec![];
        if let Some(t) = self.tasks.get_mut(&r.task_id) {
            t.state = TaskState::Finished;
            t.start_ns = r.started_ns;
            t.finish_ns = now_ns;
            t.node = r.node.clone();
            t.details.clear();
            self.mark_finished(r.task_id, &mut touched);
        }
        touched
    }

    /// A task failed for the last time: FAILED with the reason, and the slave STOPPED.
    pub fn fail(&mut self, task_id: u64, details: &str, node: &str) -> Vec<QueueTouch> {
        let mut touched = vec![QueueTouch::Repl];
        self.repl.status = SlaveStatus::Stopped;
        if let Some(t) = self.tasks.get_mut(&task_id) {
            if t.state == TaskState::Waiting {
                self.repl.failed_total += 1;
                t.state = TaskState::Failed;
                t.details = details.to_string();
                t.node = node.to_string();
                touched.push(QueueTouch::Task(task_id));
            }
        }
        touched
    }

    /// `startClusterReplication()`: ENABLED, and the FAILED tasks wait to run again.
    /// `stopClusterReplication()`: DISABLED.
    pub fn switch(&mut self, switch: Switch) -> Vec<QueueTouch> {
        let mut touched = vec![QueueTouch::Repl];
        if switch == Switch::Stop {
            self.repl.status = SlaveStatus::Disabled;
            return touched;
        }
        self.repl.status = SlaveStatus::Enabled;
        for set in &self.pending {
            for (_, id) in set {
                if let Some(t) = self.tasks.get_mut(id) {
                    if t.state == TaskState::Failed {
                        t.state = TaskState::Waiting;
                        touched.push(QueueTouch::Task(*id));
                    }
                }
            }
        }
        touched
    }

    /// `skipClusterReplicationTask(ids)`: marks the unfinished ones FINISHED with `details`,
    /// never to be applied. Refused while ENABLED, or when an id was never received (nothing
    /// changes then). Answers the ids it skipped.
    pub fn skip(
        &mut self,
        ids: &[u64],
        details: &str,
        now_ns: i64,
    ) -> Result<(Vec<u64>, Vec<QueueTouch>), String> {
        if self.repl.status == SlaveStatus::Enabled {
            return Err("skipClusterReplicationTask: replication on this slave is ENABLED; call stopClusterReplication() first (tasks can be skipped while the slave is STOPPED or DISABLED)".into());
        }
        let unknown: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|id| *id == 0 || *id > self.repl.last_pulled)
            .collect();
        if !unknown.is_empty() {
            return Err(format!(
                "skipClusterReplicationTask: task {} {} not been received by this slave (the last received is {}); nothing was skipped",
                unknown.iter().map(u64::to_string).collect::<Vec<_>>().join(", "),
                if unknown.len() == 1 { "has" } else { "have" },
                self.repl.last_pulled
            ));
        }
        let mut skipped = vec![];
        let mut touched = vec![];
        for id in ids {
            let Some(t) = self.tasks.get_mut(id) else {
                continue;
            };
            if t.state == TaskState::Finished {
                continue;
            }
            t.state = TaskState::Finished;
            t.finish_ns = now_ns;
            t.details = format!("{details}; {}", resync_hint(&t.info));
            skipped.push(*id);
            self.mark_finished(*id, &mut touched);
        }
        Ok((skipped, touched))
    }

    /// The finished task ids (for reporting to the master after a restart).
    pub fn finished_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.finished.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: u64, group: u64, set: u8) -> TaskInfo {
        TaskInfo {
            task_id: id,
            tid: id + 100,
            group_id: group,
            op: OperationType::Append,
            submit_ns: 1,
            db: "dfs://a".into(),
            table: "t".into(),
            src_host: "127.0.0.1".into(),
            src_port: 1,
            execution_set: set,
            data_bytes: 0,
            for_slave: None,
        }
    }

    fn replay(id: u64) -> ReplayOf {
        ReplayOf {
            task_id: id,
            node: "n1".into(),
            started_ns: 5,
            nonce: Default::default(),
        }
    }

    #[test]
    fn a_task_finishes_once_and_a_repeated_pull_answer_is_ignored() {
        let mut q = ExecQueue::default();
        q.store(&[task(1, 1, 0), task(2, 1, 1)], 4, 10, None, "me");
        q.store(&[task(2, 1, 1), task(3, 2, 0)], 4, 11, None, "me");
        assert_eq!(q.repl.last_pulled, 3);
        assert_eq!(
            q.tasks[&2].create_ns, 10,
            "the repeated task is not stored again"
        );
        assert_eq!(q.unfinished(), 3);
        assert!(q.may_finish(1).is_ok());
        q.finish(&replay(1), 20);
        assert_eq!(
            q.may_finish(1),
            Err(FinishRefused::AppliedAlready {
                task_id: 1,
                skipped: false
            })
        );
        assert_eq!(
            q.may_finish(1).expect_err("refused").to_string(),
            "task 1 was applied already (finished by a replay); this replay is rolled back"
        );
        assert_eq!(
            q.may_finish(9),
            Err(FinishRefused::NotInQueue { task_id: 9 })
        );
        assert!(!FinishRefused::NotInQueue { task_id: 9 }.is_applied());
        assert_eq!(q.repl.finished_total, 1);
        let reloaded = ExecQueue::load(q.repl.clone(), q.tasks.clone());
        assert_eq!(reloaded.pending, q.pending);
        assert_eq!(reloaded.finished_ids().collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn tasks_outside_the_scope_are_stored_finished_and_never_pending() {
        let mut q = ExecQueue::default();
        let mut other = task(2, 1, 0);
        other.db = "dfs://b".into();
        let scope = vec!["dfs://a".to_string()];
        let (_, outside) = q.store(&[task(1, 1, 0), other], 4, 10, Some(&scope), "me");
        assert_eq!(outside, vec![2]);
        assert_eq!(q.unfinished(), 1);
        assert_eq!(q.tasks[&2].state, TaskState::Finished);
        assert_eq!(q.tasks[&2].details, OUTSIDE_SCOPE);
        assert!(q.may_finish(2).is_err(), "a replay of it could not commit");
        assert_eq!(q.finished_ids().collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn failure_stops_start_reruns_and_skip_needs_a_stopped_slave() {
        let mut q = ExecQueue::default();
        q.store(&[task(1, 1, 0), task(2, 2, 0)], 4, 10, None, "me");
        assert!(
            q.skip(&[1], "skipped", 12).is_err(),
            "refused while ENABLED"
        );
        q.fail(1, "user 'x' lacks WRITE on dfs://a", "n1");
        assert_eq!(q.repl.status, SlaveStatus::Stopped);
        assert_eq!(q.tasks[&1].state, TaskState::Failed);
        assert_eq!(q.may_finish(1), Err(FinishRefused::Failed { task_id: 1 }));
        let e = q.skip(&[1, 7], "skipped", 12).expect_err("refused");
        assert!(e.contains("task 7 has not been received"), "{e}");
        assert_eq!(q.tasks[&1].state, TaskState::Failed, "nothing changed");
        q.switch(Switch::Start);
        assert_eq!(q.tasks[&1].state, TaskState::Waiting);
        q.switch(Switch::Stop);
        let (skipped, _) = q.skip(&[1, 2], "skipped by admin", 13).expect("skipped");
        assert_eq!(skipped, vec![1, 2]);
        assert_eq!(q.unfinished(), 0);
        let skipped = q.may_finish(2).expect_err("refused");
        assert!(skipped.is_applied());
        assert!(skipped.to_string().contains("as skipped"), "{skipped}");
    }

    #[test]
    fn only_the_latest_finished_are_kept_and_forgotten_ones_are_still_refused() {
        let mut q = ExecQueue::default();
        let n = KEEP_FINISHED as u64 + 5;
        let tasks: Vec<TaskInfo> = (1..=n).map(|i| task(i, i, 0)).collect();
        q.store(&tasks, 4, 1, None, "me");
        for i in 1..=n {
            q.finish(&replay(i), 2);
        }
        assert_eq!(q.tasks.len(), KEEP_FINISHED);
        assert!(!q.tasks.contains_key(&1));
        assert_eq!(
            q.may_finish(1),
            Err(FinishRefused::Forgotten { task_id: 1 })
        );
        assert!(q.may_finish(1).expect_err("refused").is_applied());
    }
}
