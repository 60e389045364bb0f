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

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::queue::{ExecQueue, SlaveStatus, SlaveTask, TaskState};

/// An attempt being replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub node: String,
    pub set: u8,
    pub queue: u32,
    pub group: u64,
    pub started_ns: i64,
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
        if q.repl.status == SlaveStatus::Stopped || !live.iter().any(|n| n == node) {
            return None;
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
                self.busy.insert((set, t.queue));
                self.begun[usize::from(set)] = Some(group);
                self.running.insert(
                    id,
                    Running {
                        node: node.to_string(),
                        set,
                        queue: t.queue,
                        group,
                        started_ns: now_ns,
                    },
                );
                return Some(t.clone());
            }
        }
        None
    }

    fn release(&mut self, task_id: u64) -> Option<Running> {
        let r = self.running.remove(&task_id)?;
        self.busy.remove(&(r.set, r.queue));
        Some(r)
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
    use xrepl_proto::task::{OperationType, ReplayOf, TaskInfo};

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
        );
        let q2 = ExecQueue::load(q2.repl.clone(), q2.tasks.clone());
        assert!(q2.held_by_other_set(&task_of("dfs://m", 2, 2, 1)));
    }

    #[test]
    fn a_queue_runs_one_task_at_a_time_on_the_node_that_serves_it() {
        let mut q = ExecQueue::default();
        // With one queue, every task is in queue 0, served by n1 of [n1, n2].
        q.store(&[task(1, 1, 0), task(2, 1, 0)], 1, 0);
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
        q.store(&[task(1, 1, 0)], 1, 0);
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
        q.store(&[task(1, 1, 0), task(2, 1, 0), task(3, 2, 0)], 1, 0);
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
}
