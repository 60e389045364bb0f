//! The master's state at a glance: `getMasterReplicationInfo()` (one row) and
//! `getMasterReplicationSlaveLag()` (a row per registered slave), also behind `/metrics` and
//! the status page.

use serde::Serialize;
use xrepl_core::value::{Table, Vector};

use super::status::table;
use super::Master;

/// `getMasterReplicationInfo()`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MasterInfo {
    /// ENABLED, or DISABLED after `stopClusterReplication()` (commits make no tasks).
    pub state: &'static str,
    pub last_task: u64,
    /// Tasks not yet finished by every registered slave (their data is kept).
    pub untruncated: u64,
    /// Bytes of task data kept for them.
    pub retained_bytes: u64,
    pub slaves: u64,
}

/// A row of `getMasterReplicationSlaveLag()`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlaveLag {
    pub slave: String,
    pub last_finished: u64,
    /// Tasks the master has that the slave has not finished.
    pub lag_tasks: u64,
    /// Task data kept for it.
    pub retained_bytes: u64,
    /// ns since the epoch: its last pull (since this process started), else its last report.
    pub last_pull_ns: i64,
    /// ACTIVE, or EVICTED with why.
    pub state: String,
}

impl Master {
    pub fn info(&self) -> MasterInfo {
        self.meta.read(|s| {
            let r = &s.send.repl;
            MasterInfo {
                state: if r.disabled { "DISABLED" } else { "ENABLED" },
                last_task: r.last_task_id,
                untruncated: r.last_task_id.saturating_sub(r.truncated_upto),
                retained_bytes: s.send.tasks.bytes_after(r.truncated_upto),
                slaves: s.send.slaves.len() as u64,
            }
        })
    }

    pub fn slave_lags(&self) -> Vec<SlaveLag> {
        let rows: Vec<SlaveLag> = self.meta.read(|s| {
            let last = s.send.repl.last_task_id;
            s.send
                .slaves
                .iter()
                .map(|(name, i)| SlaveLag {
                    slave: name.clone(),
                    last_finished: i.last_finished(),
                    lag_tasks: last
                        .saturating_sub(i.finished_upto)
                        .saturating_sub(i.finished_above.len() as u64),
                    retained_bytes: s.send.tasks.bytes_after(i.finished_upto),
                    last_pull_ns: i.last_report_ms.saturating_mul(1_000_000),
                    state: match &i.evicted {
                        None => "ACTIVE".into(),
                        Some(why) => format!("EVICTED: {why}"),
                    },
                })
                .collect()
        });
        rows.into_iter()
            .map(|mut r| {
                if let Some(t) = self.last_pull.get(&r.slave) {
                    r.last_pull_ns = *t;
                }
                r
            })
            .collect()
    }
}

/// `getMasterReplicationInfo()` as a table.
pub fn info_table(i: &MasterInfo) -> Table {
    table(
        &[
            "state",
            "lastTaskId",
            "untruncatedTasks",
            "retainedBytes",
            "registeredSlaves",
        ],
        vec![
            Vector::String(vec![i.state.to_string()]),
            Vector::Long(vec![i.last_task as i64]),
            Vector::Long(vec![i.untruncated as i64]),
            Vector::Long(vec![i.retained_bytes as i64]),
            Vector::Int(vec![i.slaves as i32]),
        ],
    )
}

/// `getMasterReplicationSlaveLag()` as a table, `now_ns` for the time since each last pull.
pub fn slave_lag_table(rows: &[SlaveLag], now_ns: i64) -> Table {
    table(
        &[
            "slaveCluster",
            "lastFinishedTaskId",
            "lagTasks",
            "retainedBytes",
            "lastPullTime",
            "msSinceLastPull",
            "state",
        ],
        vec![
            Vector::String(rows.iter().map(|r| r.slave.clone()).collect()),
            Vector::Long(rows.iter().map(|r| r.last_finished as i64).collect()),
            Vector::Long(rows.iter().map(|r| r.lag_tasks as i64).collect()),
            Vector::Long(rows.iter().map(|r| r.retained_bytes as i64).collect()),
            Vector::NanoTimestamp(rows.iter().map(|r| r.last_pull_ns).collect()),
            Vector::Long(
                rows.iter()
                    .map(|r| (now_ns - r.last_pull_ns).max(0) / 1_000_000)
                    .collect(),
            ),
            Vector::String(rows.iter().map(|r| r.state.clone()).collect()),
        ],
    )
}
