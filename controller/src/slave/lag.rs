//! How far behind its master this slave is: `getClusterReplicationLag()`, the lag gauges of
//! `/metrics` and the status page's chart, whose samples (one every [`SAMPLE_EVERY`], the last
//! hour) are kept in memory.
//!
//! Lag in tasks is what the slave has not finished: the unfinished tasks of the execution set
//! in its queue, plus the tasks the master has that it has not pulled yet (their execution set
//! is not known before they are pulled, so they count in both sets). Lag in milliseconds is
//! now minus the master's commit time of the oldest of those. Both come from what the slave
//! keeps durably (its queue) and what the master said last (its newest task, and the commit
//! time of the first task the slave has not pulled), so they stay true after a skip (a skipped
//! task is finished) and across a restart. While the master cannot be reached, the slave cannot
//! know what the master committed since it last heard from it, so the lag is at least the time
//! since then: it keeps growing, and the state says why.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;
use xrepl_core::value::{Table, Vector};

use super::queue::{ExecQueue, SlaveStatus, TaskState};

/// How often a sample of the lag is kept for the chart.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// Samples kept: an hour.
pub const SAMPLES: usize = 720;

/// What the slave knows of its master's send queue (memory; see the module comment).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MasterView {
    /// The master's newest task, as of the last answer.
    pub last_task: u64,
    /// When the master committed the first task this slave has not pulled (0: none).
    pub next_submit_ns: i64,
    /// When the master last answered (ns since the epoch; 0: not since this process started).
    pub contact_ns: i64,
    /// Why the last attempt to reach it failed (`None`: it answered), and when.
    pub error: Option<String>,
    pub error_ns: i64,
}

impl MasterView {
    /// The master answered with its position.
    pub fn answered(&mut self, last_task: u64, next_submit_ns: i64, now_ns: i64) {
        self.last_task = self.last_task.max(last_task);
        self.next_submit_ns = next_submit_ns;
        self.contact_ns = now_ns;
        self.error = None;
    }

    pub fn failed(&mut self, why: String, now_ns: i64) {
        self.error = Some(why);
        self.error_ns = now_ns;
    }
}

/// One row of `getClusterReplicationLag()`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LagRow {
    pub execution_set: u8,
    pub last_master_task: u64,
    pub last_finished_task: u64,
    pub lag_tasks: u64,
    pub lag_ms: i64,
    /// 0: none.
    pub oldest_unfinished_task: u64,
    /// ns since the epoch; 0: no answer from the master since this process started.
    pub last_pull_ns: i64,
    pub state: String,
}

/// The lag of execution sets 0 and 1 at `now_ns`.
pub fn lag_rows(q: &ExecQueue, view: &MasterView, now_ns: i64) -> Vec<LagRow> {
    let last_pulled = q.repl.last_pulled;
    let last_master = view.last_task.max(last_pulled);
    let unpulled = last_master - last_pulled;
    (0..2u8)
        .map(|set| {
            let unfinished: Vec<(u64, i64)> = q.pending[usize::from(set)]
                .iter()
                .filter_map(|(_, id)| q.tasks.get(id).map(|t| (*id, t.info.submit_ns)))
                .collect();
            let oldest = unfinished.iter().min_by_key(|(id, _)| *id).copied();
            let mut since = oldest.map(|(_, ns)| ns);
            if unpulled > 0 && view.next_submit_ns > 0 {
                since = Some(since.map_or(view.next_submit_ns, |s| s.min(view.next_submit_ns)));
            }
            let mut lag_ns = since.map_or(0, |s| (now_ns - s).max(0));
            let unreachable = view.error.is_some();
            if unreachable && view.contact_ns > 0 {
                // What the master committed since it last answered is not known.
                lag_ns = lag_ns.max(now_ns - view.contact_ns);
            }
            let lag_tasks = unfinished.len() as u64 + unpulled;
            let failed = unfinished
                .iter()
                .find(|(id, _)| q.tasks.get(id).is_some_and(|t| t.state == TaskState::Failed));
            let state = match (q.repl.status, failed, &view.error) {
                (SlaveStatus::Stopped, Some((id, _)), _) => {
                    format!("STOPPED: task {id} FAILED; skipClusterReplicationTask or fix, then startClusterReplication")
                }
                (SlaveStatus::Stopped, None, _) => "STOPPED".to_string(),
                (SlaveStatus::Disabled, ..) => {
                    "DISABLED: stopClusterReplication() was called; startClusterReplication() resumes"
                        .to_string()
                }
                (_, _, Some(why)) => format!("MASTER_UNREACHABLE: {why}"),
                _ if lag_tasks > 0 => "CATCHING_UP".to_string(),
                _ => "CAUGHT_UP".to_string(),
            };
            LagRow {
                execution_set: set,
                last_master_task: last_master,
                last_finished_task: q.last_finished_in(set),
                lag_tasks,
                lag_ms: lag_ns / 1_000_000,
                oldest_unfinished_task: oldest.map_or(0, |(id, _)| id),
                last_pull_ns: view.contact_ns,
                state,
            }
        })
        .collect()
}

/// `getClusterReplicationLag()` as a table.
pub fn lag_table(rows: &[LagRow]) -> Table {
    Table::new(
        [
            "executionSet",
            "lastMasterTaskId",
            "lastFinishedTaskId",
            "lagTasks",
            "lagMs",
            "oldestUnfinishedTaskId",
            "lastPullTime",
            "state",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        vec![
            Vector::Int(rows.iter().map(|r| i32::from(r.execution_set)).collect()),
            Vector::Long(rows.iter().map(|r| r.last_master_task as i64).collect()),
            Vector::Long(rows.iter().map(|r| r.last_finished_task as i64).collect()),
            Vector::Long(rows.iter().map(|r| r.lag_tasks as i64).collect()),
            Vector::Long(rows.iter().map(|r| r.lag_ms).collect()),
            Vector::Long(
                rows.iter()
                    .map(|r| r.oldest_unfinished_task as i64)
                    .collect(),
            ),
            Vector::NanoTimestamp(
                rows.iter()
                    .map(|r| {
                        if r.last_pull_ns == 0 {
                            i64::MIN
                        } else {
                            r.last_pull_ns
                        }
                    })
                    .collect(),
            ),
            Vector::String(rows.iter().map(|r| r.state.clone()).collect()),
        ],
    )
    .unwrap_or_else(|_| Table {
        names: vec![],
        columns: vec![],
    })
}

/// A failed replay attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttemptFailure {
    pub at_ns: i64,
    pub task_id: u64,
    pub node: String,
    pub reason: String,
}

/// Failures kept for the status page.
pub const FAILURES: usize = 20;

/// The latest [`FAILURES`] failed attempts, and their count since the process started.
#[derive(Debug, Clone, Default)]
pub struct Failures {
    latest: VecDeque<AttemptFailure>,
    pub total: u64,
}

impl Failures {
    pub fn push(&mut self, task_id: u64, node: &str, reason: &str, now_ns: i64) {
        self.total += 1;
        self.latest.push_back(AttemptFailure {
            at_ns: now_ns,
            task_id,
            node: node.to_string(),
            reason: reason.to_string(),
        });
        while self.latest.len() > FAILURES {
            self.latest.pop_front();
        }
    }

    pub fn latest(&self) -> Vec<AttemptFailure> {
        self.latest.iter().cloned().collect()
    }
}

/// The slave's counters and queue depths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub status: &'static str,
    pub finished_total: u64,
    pub failed_total: u64,
    /// Unfinished tasks per (execution set, queue).
    pub depth: Vec<(u8, u32, u64)>,
    /// The FAILED tasks: id and details.
    pub failed: Vec<(u64, String)>,
}

pub fn counters(q: &ExecQueue) -> Counters {
    let mut depth = std::collections::BTreeMap::<(u8, u32), u64>::new();
    let mut failed = vec![];
    for (set, pending) in q.pending.iter().enumerate() {
        for (_, id) in pending {
            if let Some(t) = q.tasks.get(id) {
                *depth.entry((set as u8, t.queue)).or_default() += 1;
                if t.state == TaskState::Failed {
                    failed.push((*id, t.details.clone()));
                }
            }
        }
    }
    Counters {
        status: q.repl.status.name(),
        finished_total: q.repl.finished_total,
        failed_total: q.repl.failed_total,
        depth: depth.into_iter().map(|((s, q), n)| (s, q, n)).collect(),
        failed,
    }
}

/// One sample of the lag chart: when, and per execution set the lag in ms and in tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LagSample {
    pub at_ms: i64,
    pub ms: [i64; 2],
    pub tasks: [u64; 2],
}

/// The last hour of samples.
#[derive(Debug, Clone, Default)]
pub struct LagHistory(VecDeque<LagSample>);

impl LagHistory {
    pub fn push(&mut self, rows: &[LagRow], now_ms: i64) {
        let mut s = LagSample {
            at_ms: now_ms,
            ms: [0; 2],
            tasks: [0; 2],
        };
        for r in rows {
            let i = usize::from(r.execution_set.min(1));
            s.ms[i] = r.lag_ms;
            s.tasks[i] = r.lag_tasks;
        }
        self.0.push_back(s);
        while self.0.len() > SAMPLES {
            self.0.pop_front();
        }
    }

    pub fn samples(&self) -> Vec<LagSample> {
        self.0.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xrepl_proto::task::{OperationType, TaskInfo};

    fn task(id: u64, set: u8, submit_ns: i64) -> TaskInfo {
        TaskInfo {
            task_id: id,
            tid: id,
            group_id: id,
            op: OperationType::Append,
            submit_ns,
            db: "dfs://a".into(),
            table: "t".into(),
            src_host: "h".into(),
            src_port: 1,
            execution_set: set,
            data_bytes: 1,
            for_slave: None,
        }
    }

    const S: i64 = 1_000_000_000;

    #[test]
    fn lag_counts_unfinished_and_unpulled_tasks_from_the_oldest_commit() {
        let mut q = ExecQueue::default();
        q.store(
            &[task(1, 0, 10 * S), task(2, 0, 12 * S), task(3, 1, 13 * S)],
            4,
            20 * S,
            None,
            "me",
        );
        let mut view = MasterView::default();
        // The master has 5 tasks; the first one not pulled (4) committed at 14 s.
        view.answered(5, 14 * S, 20 * S);
        let rows = lag_rows(&q, &view, 30 * S);
        assert_eq!(rows[0].lag_tasks, 2 + 2);
        assert_eq!(rows[0].lag_ms, 20_000, "from task 1, committed at 10 s");
        assert_eq!(rows[0].oldest_unfinished_task, 1);
        assert_eq!(rows[1].lag_tasks, 1 + 2);
        assert_eq!(rows[1].lag_ms, 17_000, "from task 3, at 13 s");
        assert_eq!(rows[0].state, "CATCHING_UP");
        assert_eq!(rows[0].last_master_task, 5);

        // Task 1 is skipped (finished): the lag moves on to task 2.
        q.switch(crate::switch::Switch::Stop);
        q.skip(&[1], "skipped", 31 * S).expect("skip");
        let rows = lag_rows(&q, &view, 31 * S);
        assert_eq!((rows[0].lag_tasks, rows[0].lag_ms), (1 + 2, 19_000));
        assert_eq!(rows[0].last_finished_task, 1);

        // Everything pulled and finished: no lag.
        q.store(
            &[task(4, 0, 14 * S), task(5, 0, 15 * S)],
            4,
            32 * S,
            None,
            "me",
        );
        q.skip(&[2, 3, 4, 5], "skipped", 32 * S).expect("skip");
        q.switch(crate::switch::Switch::Start);
        view.answered(5, 0, 32 * S);
        let rows = lag_rows(&q, &view, 40 * S);
        assert_eq!((rows[0].lag_tasks, rows[0].lag_ms), (0, 0));
        assert_eq!(rows[1].state, "CAUGHT_UP");

        // The master cannot be reached: the lag grows from when it last answered.
        view.failed("connection refused".into(), 41 * S);
        let rows = lag_rows(&q, &view, 50 * S);
        assert_eq!(rows[0].lag_ms, 18_000);
        assert!(rows[0]
            .state
            .starts_with("MASTER_UNREACHABLE: connection refused"));
    }

    #[test]
    fn the_history_keeps_an_hour() {
        let mut h = LagHistory::default();
        for i in 0..(SAMPLES as i64 + 5) {
            h.push(&[], i);
        }
        let s = h.samples();
        assert_eq!(s.len(), SAMPLES);
        assert_eq!(s[0].at_ms, 5);
    }
}
