//! Which task a slave data node's worker replays next, and what a failed attempt leads to.
//! Pure logic over the execution queue, no IO and no clock of its own (the caller passes the
//! time), held in memory only: after a controller restart every unfinished task is waiting
//! again, and a replay still running somewhere either commits first or is refused as a
//! duplicate by the commit rule.
//!
//! The rules (spec, "A task's life" 4 and 5):
//! - per execution set, only the lowest unfinished group runs; the next group starts when it
//!   has fully finished;
//! - a task runs in its queue (`queue_of`), one task at a time per queue and set; queue `q` is
//!   served by live data node `q mod n` of the `n` live ones (sorted by name), so the mapping
//!   follows the live nodes;
//! - ENABLED starts groups; DISABLED lets a started group finish and starts no other; STOPPED
//!   starts nothing;
//! - a failed attempt waits `retry_interval`; the `retry_limit`-th failure makes it FAILED;
//! - a task waits while an earlier task of its database is unfinished in the other set (a
//!   database moved between sets keeps its order).
//!
//! Batches: when nothing of a set runs, the worker of the data node serving the set's first
//! runnable task (the lead) is handed a batch: the runnable tasks after the lead, in
//! (group, task id) order, replayed in that order as one transaction. Order within the batch
//! is the commit order, so the batch may run on past the end of a group only when it holds
//! every unfinished task of that group. Only row operations (APPEND, UPSERT, SQL_UPDATE,
//! SQL_DELETE, TRUNCATE_TABLE: no catalog change, so each task plans against the same catalog)
//! join a batch; another operation, or a task that failed an attempt before, runs alone.
//! While a set runs something, its other tasks of the same group are handed out one at a time
//! per queue, as before.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use xrepl_proto::task::OperationType;

use super::queue::{ExecQueue, SlaveStatus, SlaveTask, TaskState};

/// An attempt being replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub node: String,
    pub set: u8,
    pub queue: u32,
    pub group: u64,
    pub started_ns: i64,
    /// The first task of its batch (itself when it runs alone).
    pub lead: u64,
}

/// Whether a task of this operation may join a batch: it changes rows and no catalog.
pub fn batchable(op: OperationType) -> bool {
    matches!(
        op,
        OperationType::Append
            | OperationType::Upsert
            | OperationType::SqlUpdate
            | OperationType::SqlDelete
            | OperationType::TruncateTable
    )
}

/// Whether a failed attempt counts towards `clusterReplicationRetryLimit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counting {
    /// A lasting failure (a missing right, bad data, a full disk): it counts.
    Counts,
    /// A node of either cluster could not be reached, or a lock was busy: it only waits.
    Transient,
}

/// What a failed attempt leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again at this time.
    Retry(Instant),
    /// The last attempt: record the task FAILED with these details.
    Fail(String),
}

#[derive(Debug, Default)]
pub struct Scheduler {
    pub running: HashMap<u64, Running>,
    busy: HashSet<(u8, u32)>,
    /// Failed attempts so far, per task.
    attempts: HashMap<u64, u32>,
    retry_at: HashMap<u64, Instant>,
    /// The group each set has begun (DISABLED lets it finish).
    begun: [Option<u64>; 2],
}

/// The data node serving `queue` among the live ones (sorted).
pub fn node_of(queue: u32, live: &[String]) -> Option<&str> {
    if live.is_empty() {
        return None;
    }
    live.get(queue as usize % live.len()).map(String::as_str)
}

impl Scheduler {
    /// The next task for a worker of `node`, marked running; `None` when nothing may start.
    pub fn pick(
        &mut self,
        q: &ExecQueue,
        node: &str,
        live: &[String],
        now: Instant,
        now_ns: i64,
    ) -> Option<SlaveTask> {
        self.pick_batch(q, node, live, now, now_ns, 1)
            .into_iter()
            .next()
    }

    /// The next tasks for a worker of `node` (at most `max`, in replay order), marked
    /// running; empty when nothing may start.
    pub fn pick_batch(
        &mut self,
        q: &ExecQueue,
        node: &str,
        live: &[String],
        now: Instant,
        now_ns: i64,
        max: usize,
    ) -> Vec<SlaveTask> {
        if q.repl.status == SlaveStatus::Stopped || !live.iter().any(|n| n == node) {
            return vec![];
        }
        for set in 0..2u8 {
            let pending = &q.pending[usize::from(set)];
            let Some(&(group, _)) = pending.first() else {
                continue;
            };
            if q.repl.status == SlaveStatus::Disabled && self.begun[usize::from(set)] != Some(group)
            {
                continue;
            }
            // An earlier group's task committed but not yet visible everywhere holds the next.
            if self
                .running
                .values()
                .any(|r| r.set == set && r.group < group)
            {
                continue;
            }
            if max > 1 && !self.running.values().any(|r| r.set == set) {
                match self.batch_of(q, set, group, node, live, now, max) {
                    Some(batch) if !batch.is_empty() => {
                        self.start(&batch, set, node, now_ns);
                        return batch;
                    }
                    // Nothing may start, or the set's lead is another node's: it waits for
                    // that node's worker.
                    _ => continue,
                }
            }
            for &(_, id) in pending.range((group, 0)..(group + 1, 0)) {
                let Some(t) = q.tasks.get(&id) else { continue };
                if t.state != TaskState::Waiting
                    || self.running.contains_key(&id)
                    || self.busy.contains(&(set, t.queue))
                    || self.retry_at.get(&id).is_some_and(|at| *at > now)
                    || node_of(t.queue, live) != Some(node)
                    || q.held_by_other_set(&t.info)
                {
                    continue;
                }
                let batch = vec![t.clone()];
                self.start(&batch, set, node, now_ns);
                return batch;
            }
        }
        vec![]
    }

    /// Whether `t` may start now, apart from queues and nodes.
    fn runnable(&self, q: &ExecQueue, t: &SlaveTask, now: Instant) -> bool {
        t.state == TaskState::Waiting
            && !self.running.contains_key(&t.info.task_id)
            && self
                .retry_at
                .get(&t.info.task_id)
                .is_none_or(|at| *at <= now)
            && !q.held_by_other_set(&t.info)
    }

    /// The batch a worker of `node` may take from `set`, whose lowest unfinished group is
    /// `group` and which runs nothing; `None` when the set's lead is another node's.
    #[allow(clippy::too_many_arguments)]
    fn batch_of(
        &self,
        q: &ExecQueue,
        set: u8,
        group: u64,
        node: &str,
        live: &[String],
        now: Instant,
        max: usize,
    ) -> Option<Vec<SlaveTask>> {
        let disabled = q.repl.status == SlaveStatus::Disabled;
        let mut batch: Vec<SlaveTask> = vec![];
        // Every unfinished task of the groups so far is in the batch.
        let mut whole = true;
        let mut current = group;
        for &(g, id) in q.pending[usize::from(set)].range((group, 0)..) {
            if g != current {
                if !whole || batch.is_empty() || disabled {
                    break;
                }
                current = g;
            }
            let Some(t) = q.tasks.get(&id) else { continue };
            if !self.runnable(q, t, now) {
                whole = false;
                continue;
            }
            let alone = !batchable(t.info.op) || self.attempts(id) > 0;
            if batch.is_empty() {
                if node_of(t.queue, live) != Some(node) {
                    return None;
                }
                batch.push(t.clone());
                if alone {
                    return Some(batch);
                }
                continue;
            }
            if alone {
                whole = false;
                continue;
            }
            batch.push(t.clone());
            if batch.len() >= max {
                break;
            }
        }
        Some(batch)
    }

    /// Marks `batch` running on `node`.
    fn start(&mut self, batch: &[SlaveTask], set: u8, node: &str, now_ns: i64) {
        let Some(lead) = batch.first().map(|t| t.info.task_id) else {
            return;
        };
        for t in batch {
            self.busy.insert((set, t.queue));
            let g = &mut self.begun[usize::from(set)];
            *g = Some(g.map_or(t.info.group_id, |b| b.max(t.info.group_id)));
            self.running.insert(
                t.info.task_id,
                Running {
                    node: node.to_string(),
                    set,
                    queue: t.queue,
                    group: t.info.group_id,
                    started_ns: now_ns,
                    lead,
                },
            );
        }
    }

    fn release(&mut self, task_id: u64) -> Option<Running> {
        let r = self.running.remove(&task_id)?;
        if !self
            .running
            .values()
            .any(|o| o.set == r.set && o.queue == r.queue)
        {
            self.busy.remove(&(r.set, r.queue));
        }
        Some(r)
    }

    /// An attempt that was not tried (a task before it in its batch failed, or the batch
    /// was cut): it waits for a worker again, with no attempt counted and no retry wait.
    pub fn released(&mut self, task_id: u64) {
        self.release(task_id);
    }

    /// An attempt ended with the task finished (committed, or found applied already).
    pub fn finished(&mut self, task_id: u64) {
        self.release(task_id);
        self.attempts.remove(&task_id);
        self.retry_at.remove(&task_id);
    }

    /// An attempt failed with `reason`; it counts towards the limit or, transient, only
    /// waits.
    pub fn failed(
        &mut self,
        task_id: u64,
        reason: &str,
        now: Instant,
        interval: Duration,
        limit: u32,
        counting: Counting,
    ) -> AfterFailure {
        self.release(task_id);
        let n = self.attempts.entry(task_id).or_insert(0);
        if counting == Counting::Counts {
            *n += 1;
        }
        if *n >= limit.max(1) {
            let n = *n;
            self.attempts.remove(&task_id);
            self.retry_at.remove(&task_id);
            return AfterFailure::Fail(format!("failed {n} times; the last attempt: {reason}"));
        }
        let at = now + interval;
        self.retry_at.insert(task_id, at);
        AfterFailure::Retry(at)
    }

    /// Failed attempts so far of `task_id`.
    pub fn attempts(&self, task_id: u64) -> u32 {
        self.attempts.get(&task_id).copied().unwrap_or(0)
    }

    /// The running attempts on nodes that are no longer live (they count as failed).
    pub fn lost(&self, live: &[String]) -> Vec<(u64, String)> {
        self.running
            .iter()
            .filter(|(_, r)| !live.contains(&r.node))
            .map(|(id, r)| (*id, r.node.clone()))
            .collect()
    }

    /// Forgets the retry wait of every task (`startClusterReplication()` runs them at once).
    pub fn restart(&mut self) {
        self.attempts.clear();
        self.retry_at.clear();
    }

    /// The attempt running in (`set`, `queue`), if any.
    pub fn in_queue(&self, set: u8, queue: u32) -> Option<(u64, &Running)> {
        self.running
            .iter()
            .find(|(_, r)| r.set == set && r.queue == queue)
            .map(|(id, r)| (*id, r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slave::queue::queue_of;
    use xrepl_proto::task::{ReplayOf, TaskInfo};

    fn task(id: u64, group: u64, set: u8) -> TaskInfo {
        task_of("dfs://a", id, group, set)
    }

    fn task_of(db: &str, id: u64, group: u64, set: u8) -> TaskInfo {
        TaskInfo {
            task_id: id,
            tid: id,
            group_id: group,
            op: OperationType::Append,
            submit_ns: 1,
            db: db.into(),
            table: "t".into(),
            src_host: "h".into(),
            src_port: 1,
            execution_set: set,
            data_bytes: 0,
            for_slave: None,
        }
    }

    fn live() -> Vec<String> {
        vec!["n1".into(), "n2".into()]
    }

    /// Every task `node` may start now, started.
    fn drain(s: &mut Scheduler, q: &ExecQueue, node: &str, now: Instant) -> Vec<u64> {
        let mut out = vec![];
        while let Some(t) = s.pick(q, node, &live(), now, 0) {
            out.push(t.info.task_id);
        }
        out
    }

    fn finish(q: &mut ExecQueue, s: &mut Scheduler, id: u64) {
        q.finish(
            &ReplayOf {
                task_id: id,
                node: "n1".into(),
                started_ns: 0,
                nonce: Default::default(),
            },
            1,
        );
        s.finished(id);
    }

    #[test]
    fn groups_run_in_order_per_set_and_sets_run_independently() {
        let mut q = ExecQueue::default();
        // Set 0: group 1 (tasks 1, 2), group 3 (task 4). Set 1: group 2 (task 3, another
        // database).
        q.store(
            &[
                task(1, 1, 0),
                task(2, 1, 0),
                task_of("dfs://b", 3, 2, 1),
                task(4, 3, 0),
            ],
            64,
            0,
            None,
            "me",
        );
        let mut s = Scheduler::default();
        let now = Instant::now();
        let mut started: Vec<u64> = drain(&mut s, &q, "n1", now);
        started.extend(drain(&mut s, &q, "n2", now));
        started.sort();
        assert_eq!(started, vec![1, 2, 3], "group 3 waits for group 1");
        finish(&mut q, &mut s, 1);
        assert!(drain(&mut s, &q, "n1", now).is_empty() && drain(&mut s, &q, "n2", now).is_empty());
        // Committed but not yet reported visible: the next group still waits.
        q.finish(
            &ReplayOf {
                task_id: 2,
                node: "n1".into(),
                started_ns: 0,
                nonce: Default::default(),
            },
            1,
        );
        assert!(drain(&mut s, &q, "n1", now).is_empty() && drain(&mut s, &q, "n2", now).is_empty());
        s.finished(2);
        let mut next = drain(&mut s, &q, "n1", now);
        next.extend(drain(&mut s, &q, "n2", now));
        assert_eq!(next, vec![4]);
    }

    /// Found by the chaos soak (seed 1): a database created in set 0 and moved to set 1 had
    /// its table created in set 1 before the database existed, 30 times, and the slave STOPPED.
    #[test]
    fn regression_a_database_moved_to_the_other_set_waits_for_its_earlier_tasks() {
        let mut q = ExecQueue::default();
        // Task 1 creates dfs://m in set 0; task 2 (its table) is in set 1; task 3 is another
        // database's in set 1.
        q.store(
            &[
                task_of("dfs://m", 1, 1, 0),
                task_of("dfs://m", 2, 2, 1),
                task_of("dfs://o", 3, 2, 1),
            ],
            64,
            0,
            None,
            "me",
        );
        let mut s = Scheduler::default();
        let now = Instant::now();
        let mut started = drain(&mut s, &q, "n1", now);
        started.extend(drain(&mut s, &q, "n2", now));
        started.sort();
        assert_eq!(
            started,
            vec![1, 3],
            "task 2 waits for task 1 of the other set"
        );
        finish(&mut q, &mut s, 1);
        let mut next = drain(&mut s, &q, "n1", now);
        next.extend(drain(&mut s, &q, "n2", now));
        assert_eq!(next, vec![2]);
        // Reloaded from disk, the index is the same.
        let reloaded = ExecQueue::load(q.repl.clone(), q.tasks.clone());
        assert!(!reloaded.held_by_other_set(&task_of("dfs://m", 2, 2, 1)));
        let mut q2 = ExecQueue::default();
        q2.store(
            &[task_of("dfs://m", 1, 1, 0), task_of("dfs://m", 2, 2, 1)],
            64,
            0,
            None,
            "me",
        );
        let q2 = ExecQueue::load(q2.repl.clone(), q2.tasks.clone());
        assert!(q2.held_by_other_set(&task_of("dfs://m", 2, 2, 1)));
    }

    #[test]
    fn a_queue_runs_one_task_at_a_time_on_the_node_that_serves_it() {
        let mut q = ExecQueue::default();
        // With one queue, every task is in queue 0, served by n1 of [n1, n2].
        q.store(&[task(1, 1, 0), task(2, 1, 0)], 1, 0, None, "me");
        let mut s = Scheduler::default();
        let now = Instant::now();
        assert!(s.pick(&q, "n2", &live(), now, 0).is_none());
        assert_eq!(drain(&mut s, &q, "n1", now), vec![1]);
        finish(&mut q, &mut s, 1);
        // n1 went down: its queue moves to n2.
        let only_n2 = vec!["n2".to_string()];
        assert_eq!(
            s.pick(&q, "n2", &only_n2, now, 0).map(|t| t.info.task_id),
            Some(2)
        );
        assert_eq!(queue_of(2, 1), 0);
    }

    #[test]
    fn failures_wait_then_fail_at_the_limit_and_stopped_starts_nothing() {
        let mut q = ExecQueue::default();
        q.store(&[task(1, 1, 0)], 1, 0, None, "me");
        let mut s = Scheduler::default();
        let now = Instant::now();
        let gap = Duration::from_millis(10);
        for i in 1..3 {
            assert!(s.pick(&q, "n1", &live(), now + gap * i, 0).is_some());
            let after = s.failed(1, "no right", now + gap * i, gap, 3, Counting::Counts);
            assert_eq!(after, AfterFailure::Retry(now + gap * (i + 1)));
            assert!(
                s.pick(&q, "n1", &live(), now + gap * i, 0).is_none(),
                "waits"
            );
        }
        // A transient failure (the master away) waits but does not count.
        assert!(s.pick(&q, "n1", &live(), now + gap * 3, 0).is_some());
        assert!(matches!(
            s.failed(1, "master away", now + gap * 3, gap, 3, Counting::Transient),
            AfterFailure::Retry(_)
        ));
        assert_eq!(s.attempts(1), 2);
        assert!(s.pick(&q, "n1", &live(), now + gap * 4, 0).is_some());
        match s.failed(1, "no right", now, gap, 3, Counting::Counts) {
            AfterFailure::Fail(d) => {
                assert!(d.contains("failed 3 times") && d.contains("no right"))
            }
            other => panic!("{other:?}"),
        }
        q.fail(1, "x", "n1");
        assert!(s.pick(&q, "n1", &live(), now + gap * 9, 0).is_none());
        q.switch(crate::switch::Switch::Start);
        assert!(s.pick(&q, "n1", &live(), now + gap * 9, 0).is_some());
    }

    #[test]
    fn disabled_lets_a_begun_group_finish_and_starts_no_other() {
        let mut q = ExecQueue::default();
        q.store(
            &[task(1, 1, 0), task(2, 1, 0), task(3, 2, 0)],
            1,
            0,
            None,
            "me",
        );
        let mut s = Scheduler::default();
        let now = Instant::now();
        assert_eq!(drain(&mut s, &q, "n1", now), vec![1]);
        q.switch(crate::switch::Switch::Stop);
        finish(&mut q, &mut s, 1);
        assert_eq!(drain(&mut s, &q, "n1", now), vec![2], "group 1 finishes");
        finish(&mut q, &mut s, 2);
        assert!(
            drain(&mut s, &q, "n1", now).is_empty(),
            "group 2 does not start"
        );
        assert_eq!(s.lost(&["n2".to_string()]), vec![]);
    }

    fn op_task(id: u64, group: u64, op: OperationType) -> TaskInfo {
        TaskInfo {
            op,
            ..task(id, group, 0)
        }
    }

    /// The batch a worker of `node` gets (task ids), and the node that leads the set.
    fn batch(s: &mut Scheduler, q: &ExecQueue, now: Instant, max: usize) -> (Vec<u64>, String) {
        for node in live() {
            let got = s.pick_batch(q, &node, &live(), now, 0, max);
            if !got.is_empty() {
                return (got.iter().map(|t| t.info.task_id).collect(), node);
            }
        }
        (vec![], String::new())
    }

    #[test]
    fn an_idle_set_is_handed_out_as_one_batch_across_groups_to_its_leads_node() {
        let mut q = ExecQueue::default();
        q.store(
            &[
                task(1, 1, 0),
                task(2, 1, 0),
                task(3, 2, 0),
                task(4, 3, 0),
                task(5, 3, 0),
            ],
            64,
            0,
            None,
            "me",
        );
        let mut s = Scheduler::default();
        let now = Instant::now();
        let lead = node_of(queue_of(1, 64), &live())
            .expect("a node")
            .to_string();
        let other = live().into_iter().find(|n| *n != lead).expect("two nodes");
        assert!(
            s.pick_batch(&q, &other, &live(), now, 0, 100).is_empty(),
            "the set's lead is another node's"
        );
        let got: Vec<u64> = s
            .pick_batch(&q, &lead, &live(), now, 0, 100)
            .iter()
            .map(|t| t.info.task_id)
            .collect();
        assert_eq!(
            got,
            vec![1, 2, 3, 4, 5],
            "in (group, id) order, across groups"
        );
        assert!(s.running.values().all(|r| r.lead == 1 && r.node == lead));
        assert!(
            batch(&mut s, &q, now, 100).0.is_empty(),
            "the set runs: nothing else"
        );
        // At most `max`.
        let mut s = Scheduler::default();
        assert_eq!(batch(&mut s, &q, now, 3).0, vec![1, 2, 3]);
    }

    #[test]
    fn a_batch_stops_before_a_catalog_change_and_runs_it_alone() {
        let mut q = ExecQueue::default();
        q.store(
            &[
                task(1, 1, 0),
                op_task(2, 2, OperationType::AddColumn),
                task(3, 3, 0),
                task(4, 3, 0),
            ],
            64,
            0,
            None,
            "me",
        );
        let mut s = Scheduler::default();
        let now = Instant::now();
        assert_eq!(batch(&mut s, &q, now, 100).0, vec![1]);
        finish(&mut q, &mut s, 1);
        assert_eq!(batch(&mut s, &q, now, 100).0, vec![2], "alone");
        finish(&mut q, &mut s, 2);
        assert_eq!(batch(&mut s, &q, now, 100).0, vec![3, 4]);
    }

    #[test]
    fn a_task_that_failed_runs_alone_and_released_tasks_run_again_at_once() {
        let mut q = ExecQueue::default();
        q.store(
            &[task(1, 1, 0), task(2, 2, 0), task(3, 3, 0)],
            64,
            0,
            None,
            "me",
        );
        let mut s = Scheduler::default();
        let now = Instant::now();
        assert_eq!(batch(&mut s, &q, now, 100).0, vec![1, 2, 3]);
        // Task 1 committed alone, task 2 failed, task 3 was not tried.
        finish(&mut q, &mut s, 1);
        s.failed(2, "no", now, Duration::from_secs(1), 30, Counting::Counts);
        s.released(3);
        assert!(
            batch(&mut s, &q, now, 100).0.is_empty(),
            "task 2 waits its retry interval, and task 3 after it"
        );
        let later = now + Duration::from_secs(2);
        assert_eq!(
            batch(&mut s, &q, later, 100).0,
            vec![2],
            "a failed task runs alone"
        );
        finish(&mut q, &mut s, 2);
        assert_eq!(batch(&mut s, &q, later, 100).0, vec![3]);
        assert_eq!(s.attempts(3), 0, "a released task counts no attempt");
    }

    #[test]
    fn a_disabled_slave_batches_only_within_the_group_it_began() {
        let mut q = ExecQueue::default();
        q.store(
            &[task(1, 1, 0), task(2, 1, 0), task(3, 2, 0)],
            64,
            0,
            None,
            "me",
        );
        let mut s = Scheduler::default();
        let now = Instant::now();
        // Group 1 is begun with task 1 alone (max 1), then the slave is disabled.
        assert_eq!(batch(&mut s, &q, now, 1).0, vec![1]);
        q.switch(crate::switch::Switch::Stop);
        finish(&mut q, &mut s, 1);
        assert_eq!(
            batch(&mut s, &q, now, 100).0,
            vec![2],
            "the begun group finishes"
        );
        finish(&mut q, &mut s, 2);
        assert!(
            batch(&mut s, &q, now, 100).0.is_empty(),
            "no other group starts"
        );
    }
}
