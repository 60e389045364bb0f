//! The master's send queue, as pure logic over the state the metadata holds: numbering a
//! committed transaction's task, grouping it by the conflict rule, the registered slaves and
//! their progress, truncation, what a pull answers and which task data may be deleted.
//!
//! No IO and no clock of its own: every change is a method the metadata's `apply` calls with
//! the command's values, and it answers what it touched ([`SendTouch`]) so the metadata writes
//! that in the same sled batch as the rest of the command (a task is numbered in the same
//! durable step as its transaction's commit).
//!
//! [`Grouper`] gives tasks their `groupId` by the conflict rule of the spec: consecutive tasks
//! that write disjoint things share a group; a conflicting one opens the next group; a DDL on
//! a database is a group of its own.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::{Deserialize, Serialize};
use xrepl_proto::task::{OperationType, Scope, TaskInfo, TaskMeta};

use super::task_list::TaskList;
use crate::switch::Switch;

/// Finished tasks whose metadata the controller keeps for listing.
pub const KEEP_FINISHED_TASKS: usize = 10_000;

/// The master side of replication: its state and counters (`m/repl`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplState {
    /// `stopClusterReplication()` was called: commits make no tasks.
    pub disabled: bool,
    /// The last task id given (0: none yet).
    pub last_task_id: u64,
    /// Every task up to this one is finished by every registered slave; its data is deleted.
    pub truncated_upto: u64,
    pub grouper: Grouper,
}

/// A slave cluster registered with this master (`s/<slave>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaveInfo {
    pub registered_ms: i64,
    /// Every task up to this one is finished on the slave.
    pub finished_upto: u64,
    /// Finished tasks after `finished_upto` (a group's tasks finish in any order).
    pub finished_above: BTreeSet<u64>,
    /// When it last reported progress (ms since the epoch).
    pub last_report_ms: i64,
    /// The master user it registered as: only that user's sessions act for it.
    #[serde(default)]
    pub user: String,
    /// Why it was dropped for falling too far behind (`clusterReplicationMaxRetainedBytes`):
    /// it holds nothing back and gets nothing until it is re-seeded and an administrator
    /// removes it with `dropClusterReplicationSlave`.
    #[serde(default)]
    pub evicted: Option<String>,
}

impl SlaveInfo {
    /// The last task it finished (the highest id), 0 for none.
    pub fn last_finished(&self) -> u64 {
        self.finished_above
            .last()
            .copied()
            .unwrap_or(0)
            .max(self.finished_upto)
    }
}

/// What a change touched, for the metadata writer to persist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendTouch {
    /// `m/repl`
    Repl,
    /// `q/<taskId>`
    Task(u64),
    /// `s/<slave>`
    Slave(String),
}

/// The send queue: unfinished tasks and the latest finished ones, and the slaves.
#[derive(Debug, Clone, Default)]
pub struct SendQueue {
    pub repl: ReplState,
    /// Unfinished tasks and the latest [`KEEP_FINISHED_TASKS`] finished ones.
    pub tasks: TaskList,
    pub slaves: BTreeMap<String, SlaveInfo>,
}

impl SendQueue {
    /// The queue from the state and the tasks loaded from disk.
    pub fn load(
        repl: ReplState,
        tasks: TaskList,
        slaves: BTreeMap<String, SlaveInfo>,
    ) -> SendQueue {
        SendQueue {
            repl,
            tasks,
            slaves,
        }
    }

    /// Whether a commit of `task` makes a task, judged on the catalog before its changes:
    /// `flag` is its database's replication flag (`None`: no such database). A CREATE_DOMAIN
    /// makes one when it turns the flag on; any other operation when the flag is on.
    pub fn makes_task(&self, task: &TaskMeta, flag: Option<bool>) -> bool {
        if self.repl.disabled {
            return false;
        }
        if task.op == OperationType::CreateDomain {
            flag == Some(false)
        } else {
            flag == Some(true)
        }
    }

    /// Numbers a committed transaction's task and queues it in its group.
    pub fn add(
        &mut self,
        tid: u64,
        t: &TaskMeta,
        now_ns: i64,
        execution_set: u8,
        touched: &mut Vec<SendTouch>,
    ) -> u64 {
        self.repl.last_task_id += 1;
        let id = self.repl.last_task_id;
        let group_id = self.repl.grouper.place(&t.scope);
        let info = TaskInfo {
            task_id: id,
            tid,
            group_id,
            op: t.op,
            submit_ns: now_ns,
            db: t.db.clone(),
            table: t.table.clone(),
            src_host: t.src_host.clone(),
            src_port: t.src_port,
            execution_set,
            data_bytes: t.data_bytes,
            for_slave: t.for_slave.clone(),
        };
        if let Err(e) = self.tasks.push(&info) {
            // Ids are given here, one after the other, and forgotten from the front only.
            tracing::error!("the send queue lost its order: {e}");
        }
        touched.push(SendTouch::Task(id));
        touched.push(SendTouch::Repl);
        id
    }

    /// `startClusterReplication()` / `stopClusterReplication()`.
    pub fn switch(&mut self, switch: Switch) -> Vec<SendTouch> {
        self.repl.disabled = switch == Switch::Stop;
        vec![SendTouch::Repl]
    }

    /// Registers a slave cluster (a registered one is confirmed); refused beyond `max`.
    pub fn register(
        &mut self,
        slave: &str,
        user: &str,
        max: u32,
        now_ms: i64,
    ) -> Result<Vec<SendTouch>, String> {
        if let Some(info) = self.slaves.get_mut(slave) {
            if let Some(why) = &info.evicted {
                return Err(format!(
                    "slave cluster {slave} was dropped: {why}; re-seed it from the master, then run dropClusterReplicationSlave(\"{slave}\") on the master to let it register again"
                ));
            }
            if info.user.is_empty() {
                // Registered before slaves were bound to their user: bind it now.
                info.user = user.to_string();
            } else if info.user != user {
                return Err(format!(
                    "slave cluster {slave} is registered by user '{}', not '{user}': only that user acts for it (drop it first with dropClusterReplicationSlave(\"{slave}\") to register it anew)",
                    info.user
                ));
            }
        } else {
            if self.slaves.values().filter(|s| s.evicted.is_none()).count() >= max as usize {
                let names: Vec<&str> = self.slaves.keys().map(String::as_str).collect();
                return Err(format!(
                    "slave cluster {slave} is refused: this master accepts at most {max} slave clusters (clusterReplicationSlaveNum={max}); registered: {}",
                    if names.is_empty() { "none".to_string() } else { names.join(", ") }
                ));
            }
            // A new slave starts after what is truncated: that data is gone.
            self.slaves.insert(
                slave.to_string(),
                SlaveInfo {
                    registered_ms: now_ms,
                    finished_upto: self.repl.truncated_upto,
                    finished_above: BTreeSet::new(),
                    last_report_ms: now_ms,
                    user: user.to_string(),
                    evicted: None,
                },
            );
        }
        Ok(vec![SendTouch::Slave(slave.to_string())])
    }

    /// Removes a slave cluster: what it had not finished no longer holds truncation back, and
    /// it must register again (and is then sent only what is left).
    pub fn drop_slave(&mut self, slave: &str) -> Result<Vec<SendTouch>, String> {
        if self.slaves.remove(slave).is_none() {
            let names: Vec<&str> = self.slaves.keys().map(String::as_str).collect();
            return Err(format!(
                "slave cluster {slave} is not registered with this master; registered: {}",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ));
        }
        let mut touched = vec![SendTouch::Slave(slave.to_string())];
        self.truncate(&mut touched);
        Ok(touched)
    }

    /// The slaves (not dropped already) for which the master keeps more than `max` bytes of
    /// task data, with those bytes.
    pub fn over_retention(&self, max: u64) -> Vec<(String, u64)> {
        self.slaves
            .iter()
            .filter(|(_, s)| s.evicted.is_none())
            .map(|(name, s)| (name.clone(), self.tasks.bytes_after(s.finished_upto)))
            .filter(|(_, bytes)| *bytes > max)
            .collect()
    }

    /// Drops a slave that fell too far behind: it holds truncation back no more, and is
    /// refused (with `why`) until an administrator removes it.
    pub fn evict(&mut self, slave: &str, why: &str) -> Result<Vec<SendTouch>, String> {
        let s = self
            .slaves
            .get_mut(slave)
            .ok_or_else(|| format!("slave cluster {slave} is not registered"))?;
        s.evicted = Some(why.to_string());
        s.finished_above.clear();
        let mut touched = vec![SendTouch::Slave(slave.to_string())];
        self.truncate(&mut touched);
        Ok(touched)
    }

    /// A slave reports finished tasks; truncation follows when every slave has finished.
    pub fn progress(
        &mut self,
        slave: &str,
        finished: &[u64],
        now_ms: i64,
    ) -> Result<Vec<SendTouch>, String> {
        let last = self.repl.last_task_id;
        let s = self
            .slaves
            .get_mut(slave)
            .ok_or_else(|| format!("slave cluster {slave} is not registered"))?;
        if let Some(why) = &s.evicted {
            return Err(format!("slave cluster {slave} was dropped: {why}"));
        }
        for id in finished {
            if *id > s.finished_upto && *id <= last {
                s.finished_above.insert(*id);
            }
        }
        while s.finished_above.remove(&(s.finished_upto + 1)) {
            s.finished_upto += 1;
        }
        s.last_report_ms = now_ms;
        let mut touched = vec![SendTouch::Slave(slave.to_string())];
        self.truncate(&mut touched);
        Ok(touched)
    }

    /// Truncates what every registered slave has finished, and forgets the metadata of all
    /// but the latest [`KEEP_FINISHED_TASKS`] finished tasks.
    fn truncate(&mut self, touched: &mut Vec<SendTouch>) {
        // With no slave at all, everything is kept for the first one; with only dropped ones,
        // nothing is kept for them.
        let upto = match self
            .slaves
            .values()
            .filter(|s| s.evicted.is_none())
            .map(|s| s.finished_upto)
            .min()
        {
            Some(upto) => upto,
            None if self.slaves.is_empty() => return,
            None => self.repl.last_task_id,
        };
        if upto <= self.repl.truncated_upto {
            return;
        }
        self.repl.truncated_upto = upto;
        touched.push(SendTouch::Repl);
        let finished = self.tasks.count_upto(upto);
        for _ in 0..finished.saturating_sub(KEEP_FINISHED_TASKS) {
            if let Some((id, _)) = self.tasks.pop_first() {
                touched.push(SendTouch::Task(id));
            }
        }
    }

    /// What a pull after task `after` answers: up to `max` tasks that are not truncated.
    pub fn after(&self, after: u64, max: usize) -> Vec<TaskInfo> {
        let from = after.max(self.repl.truncated_upto) + 1;
        self.tasks.range(from, u64::MAX).take(max).collect()
    }

    /// Of the transactions whose task data a data node holds, those that need it no more: a
    /// truncated task, a transaction that made no task (aborted, or on a database that is not
    /// replicated), one this controller never heard of. Undecided ones (`open`) are kept.
    ///
    /// One pass over the untruncated tasks (no index by tid, which would cost its memory for
    /// every queued task): a data node asks every few seconds, about the few it holds.
    pub fn sweepable(&self, tids: &[u64], mut open: impl FnMut(u64) -> bool) -> Vec<u64> {
        if tids.is_empty() {
            return vec![];
        }
        let mut asked: HashSet<u64> = tids.iter().copied().collect();
        for tid in self.tasks.tids_from(self.repl.truncated_upto + 1) {
            asked.remove(&tid);
            if asked.is_empty() {
                break;
            }
        }
        tids.iter()
            .copied()
            .filter(|tid| asked.contains(tid) && !open(*tid))
            .collect()
    }

    /// `getMasterReplicationStatus([limit])`'s rows: the latest finished tasks (at most
    /// [`KEEP_FINISHED_TASKS`], and at most `limit`), then the unfinished ones from the oldest,
    /// `limit` rows in all; each with whether it is truncated.
    pub fn listing(&self, limit: Option<usize>) -> Vec<(TaskInfo, bool)> {
        let upto = self.repl.truncated_upto;
        let cap = limit.unwrap_or(usize::MAX);
        let finished = self.tasks.count_upto(upto);
        let keep = finished.min(KEEP_FINISHED_TASKS).min(cap);
        let first = self.tasks.first_id().unwrap_or(0);
        let from = first + (finished - keep) as u64;
        let mut rows: Vec<(TaskInfo, bool)> =
            self.tasks.range(from, upto).map(|t| (t, true)).collect();
        rows.extend(
            self.tasks
                .range(upto + 1, u64::MAX)
                .take(cap - keep)
                .map(|t| (t, false)),
        );
        rows
    }
}

/// Gives consecutive tasks their group ids. Its state is part of the controller's metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grouper {
    /// The current group (0 before the first task).
    pub group_id: u64,
    /// The current group is a database DDL: nothing may join it.
    closed: bool,
    /// Tables written whole by the current group, as `db\ttable`.
    whole: BTreeSet<String>,
    /// Tables the current group touches in any way.
    touched: BTreeSet<String>,
    /// Chunks written by the current group, as (`db\ttable`, partition).
    chunks: BTreeSet<(String, u32)>,
}

fn table_key(db: &str, table: &str) -> String {
    format!("{db}\t{table}")
}

impl Grouper {
    /// The group of the next task, which writes `scope`.
    pub fn place(&mut self, scope: &Scope) -> u64 {
        let empty = self.group_id == 0 || (self.touched.is_empty() && !self.closed);
        let conflict = !empty
            && (self.closed
                || match scope {
                    Scope::Database(_) => true,
                    Scope::Tables { db, tables } => tables
                        .iter()
                        .any(|t| self.touched.contains(&table_key(db, t))),
                    Scope::Chunks {
                        db,
                        table,
                        partitions,
                    } => {
                        let k = table_key(db, table);
                        self.whole.contains(&k)
                            || partitions
                                .iter()
                                .any(|p| self.chunks.contains(&(k.clone(), *p)))
                    }
                });
        if self.group_id == 0 || conflict {
            self.group_id += 1;
            self.closed = false;
            self.whole.clear();
            self.touched.clear();
            self.chunks.clear();
        }
        match scope {
            Scope::Database(_) => self.closed = true,
            Scope::Tables { db, tables } => {
                for t in tables {
                    self.whole.insert(table_key(db, t));
                    self.touched.insert(table_key(db, t));
                }
            }
            Scope::Chunks {
                db,
                table,
                partitions,
            } => {
                let k = table_key(db, table);
                self.touched.insert(k.clone());
                for p in partitions {
                    self.chunks.insert((k.clone(), *p));
                }
            }
        }
        self.group_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(table: &str, parts: &[u32]) -> Scope {
        Scope::Chunks {
            db: "dfs://a".into(),
            table: table.into(),
            partitions: parts.to_vec(),
        }
    }

    fn tables(names: &[&str]) -> Scope {
        Scope::Tables {
            db: "dfs://a".into(),
            tables: names.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn the_conflict_rule_cuts_groups_where_writes_overlap() {
        let mut g = Grouper::default();
        let seq = [
            (Scope::Database("dfs://a".into()), 1), // CREATE_DOMAIN
            (tables(&["t"]), 2),                    // nothing joins a database DDL
            (chunks("t", &[1]), 3),                 // an append to t after a DDL on t
            (chunks("t", &[2]), 3),                 // another partition of t
            (chunks("u", &[1]), 3),                 // another table
            (chunks("t", &[2, 3]), 4),              // t/2 again
            (chunks("t", &[1]), 4),
            (tables(&["v"]), 4), // a DDL on a table this group has not touched
            (tables(&["u", "w"]), 4), // rename u -> w: neither touched in group 4
            (chunks("w", &[9]), 5), // w was renamed in group 4
            (Scope::Database("dfs://b".into()), 6),
            (chunks("x", &[1]), 7),
            (Scope::Database("dfs://a".into()), 8),
            (Scope::Database("dfs://a".into()), 9),
        ];
        let got: Vec<u64> = seq.iter().map(|(s, _)| g.place(s)).collect();
        let want: Vec<u64> = seq.iter().map(|(_, w)| *w).collect();
        assert_eq!(got, want);
    }

    fn append(db: &str) -> TaskMeta {
        TaskMeta {
            op: OperationType::Append,
            db: db.into(),
            table: "t".into(),
            scope: Scope::Chunks {
                db: db.into(),
                table: "t".into(),
                partitions: vec![0],
            },
            src_host: "127.0.0.1".into(),
            src_port: 1,
            data_written: true,
            data_bytes: 1000,
            snapshot: None,
            for_slave: None,
        }
    }

    #[test]
    fn a_task_is_made_only_on_a_replicated_database_and_while_started() {
        let mut q = SendQueue::default();
        let t = append("dfs://q");
        assert!(q.makes_task(&t, Some(true)));
        assert!(!q.makes_task(&t, Some(false)));
        assert!(!q.makes_task(&t, None));
        let create = TaskMeta {
            op: OperationType::CreateDomain,
            ..t.clone()
        };
        assert!(q.makes_task(&create, Some(false)), "the flag turning on");
        assert!(!q.makes_task(&create, Some(true)), "on already");
        q.switch(Switch::Stop);
        assert!(!q.makes_task(&t, Some(true)));
        q.switch(Switch::Start);
        assert!(q.makes_task(&t, Some(true)));
    }

    /// Tasks are numbered without gaps; a pull skips what is truncated; task data is sweepable
    /// once its task is truncated, or when its transaction made no task and is not open.
    #[test]
    fn numbering_pulls_and_sweeping() {
        let mut q = SendQueue::default();
        let mut touched = vec![];
        for tid in [10, 11, 12] {
            q.add(tid, &append("dfs://q"), tid as i64, 1, &mut touched);
        }
        assert_eq!(q.repl.last_task_id, 3);
        assert_eq!(q.tasks.get(2).map(|t| t.tid), Some(11));
        assert!(touched.contains(&SendTouch::Task(3)));
        assert_eq!(q.tasks.get(3).map(|t| t.execution_set), Some(1));
        q.register("s1", "admin", 1, 0).expect("register");
        assert_eq!(
            q.after(0, 2).iter().map(|t| t.task_id).collect::<Vec<_>>(),
            vec![1, 2]
        );
        q.progress("s1", &[1, 2], 5).expect("progress");
        assert_eq!(q.repl.truncated_upto, 2);
        assert_eq!(
            q.after(0, 10).iter().map(|t| t.task_id).collect::<Vec<_>>(),
            vec![3]
        );
        // 10 truncated; 12's task is not; 20 made no task and is decided; 21 is open.
        assert_eq!(
            q.sweepable(&[10, 12, 20, 21], |tid| tid == 21),
            vec![10, 20]
        );
        assert!(q.progress("nobody", &[1], 5).is_err());
        let listed: Vec<(u64, bool)> = q
            .listing(None)
            .iter()
            .map(|(t, tr)| (t.task_id, *tr))
            .collect();
        assert_eq!(listed, vec![(1, true), (2, true), (3, false)]);
        assert_eq!(q.listing(Some(1)).len(), 1);
    }

    /// Truncation follows the slowest slave; only the latest 10,000 finished tasks' metadata
    /// is kept; a new slave starts after what is truncated.
    #[test]
    fn tasks_truncate_after_every_slave_and_only_the_latest_finished_are_kept() {
        let mut q = SendQueue::default();
        let n = KEEP_FINISHED_TASKS as u64 + 5;
        let mut touched = vec![];
        for i in 0..n {
            assert_eq!(
                q.add(i + 1, &append("dfs://q"), i as i64, 0, &mut touched),
                i + 1
            );
        }
        for slave in ["a", "b"] {
            q.register(slave, "admin", 2, 0).expect("register");
        }
        assert!(q.register("c", "admin", 2, 0).is_err());
        assert!(
            q.register("a", "admin", 2, 0).is_ok(),
            "a registered slave is confirmed"
        );
        let all: Vec<u64> = (1..=n).collect();
        q.progress("a", &all, 1).expect("progress");
        assert_eq!(q.repl.truncated_upto, 0, "b has finished nothing");
        // b finishes out of order: only the gap-free prefix counts.
        q.progress("b", &[1, 2, 4], 1).expect("progress");
        assert_eq!(q.repl.truncated_upto, 2);
        assert_eq!(q.slaves["b"].last_finished(), 4);
        q.progress("b", &all, 2).expect("progress");
        assert_eq!(q.repl.truncated_upto, n);
        assert_eq!(q.tasks.len(), KEEP_FINISHED_TASKS);
        assert_eq!(q.tasks.first_id(), Some(6), "the oldest five are forgotten");
        let mut late = q.clone();
        late.slaves.clear();
        late.register("d", "admin", 1, 3).expect("register");
        assert_eq!(
            late.slaves["d"].finished_upto, n,
            "starts after the truncated tasks"
        );
    }

    /// Dropping a slave that never reports lets truncation follow the others; a name that is
    /// not registered is refused; the dropped slave may register again, after what is gone.
    #[test]
    fn dropping_a_slave_releases_what_it_held() {
        let mut q = SendQueue::default();
        let mut touched = vec![];
        for tid in 1..=5 {
            q.add(tid, &append("dfs://q"), tid as i64, 0, &mut touched);
        }
        for slave in ["fast", "stuck"] {
            q.register(slave, "admin", 2, 0).expect("register");
        }
        q.progress("fast", &[1, 2, 3, 4], 1).expect("progress");
        assert_eq!(q.repl.truncated_upto, 0, "stuck has finished nothing");
        let e = q.drop_slave("nobody").expect_err("not registered");
        assert!(e.contains("registered: fast, stuck"), "{e}");
        let touched = q.drop_slave("stuck").expect("drop");
        assert!(touched.contains(&SendTouch::Slave("stuck".into())));
        assert!(touched.contains(&SendTouch::Repl));
        assert_eq!(q.repl.truncated_upto, 4);
        assert!(
            q.progress("stuck", &[1], 2).is_err(),
            "it must register again"
        );
        q.register("stuck", "admin", 2, 3).expect("again");
        assert_eq!(q.slaves["stuck"].finished_upto, 4, "it gets what is left");
        // The last slave dropped: nothing more is truncated until one registers.
        q.drop_slave("fast").expect("drop");
        q.drop_slave("stuck").expect("drop");
        assert_eq!(q.repl.truncated_upto, 4);
    }

    #[test]
    fn a_registered_slave_belongs_to_the_user_that_registered_it() {
        let mut q = SendQueue::default();
        q.register("s1", "repl1", 2, 0).expect("register");
        let e = q.register("s1", "repl2", 2, 1).expect_err("another user");
        assert!(e.contains("registered by user 'repl1'"), "{e}");
        assert_eq!(q.slaves["s1"].user, "repl1");
        q.register("s1", "repl1", 2, 1)
            .expect("the same user confirms it");
        // A slave registered before slaves had users is bound by its next registration.
        q.slaves.get_mut("s1").expect("s1").user.clear();
        q.register("s1", "repl2", 2, 2).expect("bound now");
        assert_eq!(q.slaves["s1"].user, "repl2");
        q.drop_slave("s1").expect("drop");
        q.register("s1", "repl1", 2, 3).expect("anew after a drop");
    }

    #[test]
    fn a_slave_past_the_retention_bound_is_dropped_and_refused_until_removed() {
        let mut q = SendQueue::default();
        let mut touched = vec![];
        q.register("live", "admin", 2, 0).expect("register");
        q.register("stuck", "admin", 2, 0).expect("register");
        for i in 1..=5 {
            q.add(i, &append("dfs://r"), 0, 0, &mut touched);
        }
        q.progress("live", &[1, 2, 3, 4, 5], 1).expect("progress");
        assert_eq!(q.repl.truncated_upto, 0, "stuck holds it back");
        assert!(
            q.over_retention(5000).is_empty(),
            "5000 bytes kept, not more"
        );
        assert_eq!(q.over_retention(4999), [("stuck".to_string(), 5000)]);
        q.evict("stuck", "5000 bytes behind").expect("evict");
        assert_eq!(q.repl.truncated_upto, 5, "it holds nothing back now");
        assert!(
            q.over_retention(0).is_empty(),
            "a dropped slave is not counted again"
        );
        let e = q.register("stuck", "admin", 2, 2).expect_err("refused");
        assert!(
            e.contains("was dropped: 5000 bytes behind") && e.contains("re-seed"),
            "{e}"
        );
        assert!(q.progress("stuck", &[1], 2).is_err());
        q.add(6, &append("dfs://r"), 0, 0, &mut touched);
        q.drop_slave("live").expect("drop");
        assert_eq!(
            q.repl.truncated_upto, 6,
            "only a dropped slave is left: nothing is kept"
        );
        q.register("third", "admin", 2, 2)
            .expect("a dropped slave does not count");
        q.drop_slave("stuck").expect("an administrator removes it");
        q.drop_slave("third").expect("drop");
        q.register("stuck", "admin", 2, 3).expect("registers anew");
    }
}
