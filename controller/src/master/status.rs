//! The master's functions on its controller: `startClusterReplication()`,
//! `stopClusterReplication()`, `getMasterReplicationStatus([limit])`,
//! `getRecentSlaveReplicationInfo()`, `dropClusterReplicationSlave(name)`, and the table behind
//! `getDatabaseClusterReplicationStatus()`.

use xrepl_core::value::{Table, Value, Vector};
use xrepl_proto::rpc::RemoteError;
use xrepl_proto::task::{BootstrapProgress, TaskInfo};

use super::Master;
use crate::meta::{MetaCommand, MetaState};
use crate::switch::Switch;

pub(super) fn table(names: &[&str], columns: Vec<Vector>) -> Table {
    Table::new(names.iter().map(|s| s.to_string()).collect(), columns).unwrap_or_else(|_| Table {
        names: vec![],
        columns: vec![],
    })
}

impl Master {
    /// `startClusterReplication()` / `stopClusterReplication()` on a master.
    pub async fn switch(&self, switch: Switch) -> Result<Value, RemoteError> {
        self.meta
            .apply(MetaCommand::SwitchMaster { switch })
            .await
            .map_err(|e| e.to_remote(&self.alias))?;
        tracing::info!("replication {} on the master", switch.state_name());
        Ok(Value::Void)
    }

    /// `dropClusterReplicationSlave(name)`: forgets slave cluster `name`; the tasks only it
    /// had not finished are truncated (if every other slave has).
    pub async fn drop_slave(&self, slave: &str, by: &str) -> Result<Value, RemoteError> {
        let before = self.meta.read(|s| s.send.repl.truncated_upto);
        self.meta
            .apply(MetaCommand::DropSlave {
                slave: slave.to_string(),
            })
            .await
            .map_err(|e| e.to_remote(&self.alias))?;
        self.last_pull.remove(slave);
        let after = self.meta.read(|s| s.send.repl.truncated_upto);
        self.inline_cache().forget_upto(after);
        tracing::warn!(
            %slave,
            user = %by,
            "slave cluster dropped; truncated up to task {after} (was {before}); it must register again and gets only what is left"
        );
        Ok(Value::Void)
    }

    /// `getMasterReplicationStatus([limit])`: the latest finished tasks (at most 10,000, and at
    /// most `limit`), then the unfinished ones from the oldest, `limit` rows in all.
    pub fn status(&self, limit: Option<usize>) -> Table {
        let rows: Vec<(TaskInfo, bool)> = self.meta.read(|s| s.send.listing(limit));
        let text = |f: &dyn Fn(&TaskInfo) -> String| {
            Vector::String(rows.iter().map(|(t, _)| f(t)).collect())
        };
        let long =
            |f: &dyn Fn(&TaskInfo) -> i64| Vector::Long(rows.iter().map(|(t, _)| f(t)).collect());
        table(
            &[
                "taskId",
                "tid",
                "groupId",
                "operationType",
                "submitTime",
                "dbName",
                "tableName",
                "srcIP",
                "srcPort",
                "isTruncated",
            ],
            vec![
                long(&|t| t.task_id as i64),
                long(&|t| t.tid as i64),
                long(&|t| t.group_id as i64),
                text(&|t| t.op.name().to_string()),
                Vector::NanoTimestamp(rows.iter().map(|(t, _)| t.submit_ns).collect()),
                text(&|t| t.db.clone()),
                text(&|t| t.table.clone()),
                text(&|t| t.src_host.clone()),
                Vector::Int(rows.iter().map(|(t, _)| i32::from(t.src_port)).collect()),
                Vector::Bool(rows.iter().map(|(_, tr)| i8::from(*tr)).collect()),
            ],
        )
    }

    /// Every bootstrap the master keeps (running, and the latest finished ones).
    pub fn bootstraps(&self) -> Vec<BootstrapProgress> {
        self.meta
            .read(|s| s.bootstrap.jobs.values().map(|j| j.progress()).collect())
    }

    /// `getRecentSlaveReplicationInfo()`: one row per registered slave cluster.
    pub fn recent_slaves(&self) -> Table {
        let rows: Vec<(String, u64, i64)> = self.meta.read(|s| {
            s.send
                .slaves
                .iter()
                .filter(|(_, info)| info.evicted.is_none())
                .map(|(name, info)| {
                    (
                        name.clone(),
                        info.last_finished(),
                        info.last_report_ms.saturating_mul(1_000_000),
                    )
                })
                .collect()
        });
        // The time of the last pull is in memory only; after a restart, the last report's.
        let rows: Vec<(String, u64, i64)> = rows
            .into_iter()
            .map(|(name, last, reported)| {
                let pulled = self.last_pull.get(&name).map(|t| *t).unwrap_or(reported);
                (name, last, pulled)
            })
            .collect();
        table(
            &[
                "connectedController",
                "allControllersInRaft",
                "lastFinishedTaskId",
                "lastPullTime",
            ],
            vec![
                Vector::String(rows.iter().map(|r| r.0.clone()).collect()),
                Vector::String(rows.iter().map(|r| r.0.clone()).collect()),
                Vector::Long(rows.iter().map(|r| r.1 as i64).collect()),
                Vector::NanoTimestamp(rows.iter().map(|r| r.2).collect()),
            ],
        )
    }
}

/// `getDatabaseClusterReplicationStatus()`: `dbName, enabled, executionSet` per database (on
/// either kind of cluster: it is the catalog's).
pub fn replication_flags(s: &MetaState) -> Table {
    let rows: Vec<(String, bool, u8)> = s
        .catalog
        .dbs
        .values()
        .map(|d| (d.path.clone(), d.replication_enabled, d.execution_set))
        .collect();
    table(
        &["dbName", "enabled", "executionSet"],
        vec![
            Vector::String(rows.iter().map(|r| r.0.clone()).collect()),
            Vector::Bool(rows.iter().map(|r| i8::from(r.1)).collect()),
            Vector::Int(rows.iter().map(|r| i32::from(r.2)).collect()),
        ],
    )
}

/// What a slave applied of one bootstrap.
#[derive(Debug, Clone, Copy, Default)]
pub struct Applied {
    /// The chunk snapshots, and their bytes.
    pub chunks: u32,
    pub bytes: u64,
    /// A re-sync's RESYNC_END is applied here (the re-synced copy replaced the old one);
    /// always true for a bootstrap, which has none.
    pub swapped: bool,
}

/// `getClusterReplicationBootstrapStatus()`: one row per bootstrap. On a master `applied` is
/// `None`; on a slave it is, per bootstrap, what it applied of it.
pub fn bootstrap_table(rows: &[BootstrapProgress], applied: Option<&[Applied]>) -> Table {
    let state = |b: &BootstrapProgress, i: usize| -> String {
        if b.ended.is_some() {
            return "ENDED".into();
        }
        if b.begin_task == 0 {
            return "STARTING".into();
        }
        let sent = b.finished_ms.is_some();
        match applied.and_then(|a| a.get(i)) {
            None if sent => "DONE".into(),
            None => "SENDING".into(),
            Some(a) if sent && a.chunks >= b.chunks_sent && a.swapped => "DONE".into(),
            Some(_) => "BOOTSTRAPPING".into(),
        }
    };
    let mut names = vec![
        "jobId",
        "dbName",
        "tableName",
        "forSlave",
        "state",
        "beginTaskId",
        "lastTaskId",
        "chunks",
        "chunksSent",
        "chunksSkipped",
        "rowsSent",
        "bytesSent",
    ];
    let mut columns = vec![
        Vector::Long(rows.iter().map(|b| b.job as i64).collect()),
        Vector::String(rows.iter().map(|b| b.db.clone()).collect()),
        Vector::String(
            rows.iter()
                .map(|b| b.table.clone().unwrap_or_default())
                .collect(),
        ),
        Vector::String(
            rows.iter()
                .map(|b| b.for_slave.clone().unwrap_or_default())
                .collect(),
        ),
        Vector::String(rows.iter().enumerate().map(|(i, b)| state(b, i)).collect()),
        Vector::Long(rows.iter().map(|b| b.begin_task as i64).collect()),
        Vector::Long(rows.iter().map(|b| b.last_task as i64).collect()),
        Vector::Int(rows.iter().map(|b| b.chunks as i32).collect()),
        Vector::Int(rows.iter().map(|b| b.chunks_sent as i32).collect()),
        Vector::Int(rows.iter().map(|b| b.chunks_skipped as i32).collect()),
        Vector::Long(rows.iter().map(|b| b.rows_sent as i64).collect()),
        Vector::Long(rows.iter().map(|b| b.bytes_sent as i64).collect()),
    ];
    if let Some(a) = applied {
        names.extend(["chunksApplied", "bytesApplied"]);
        columns.push(Vector::Int(a.iter().map(|x| x.chunks as i32).collect()));
        columns.push(Vector::Long(a.iter().map(|x| x.bytes as i64).collect()));
    }
    names.extend(["startTime", "endTime", "details"]);
    columns.push(Vector::Timestamp(
        rows.iter().map(|b| b.started_ms).collect(),
    ));
    columns.push(Vector::Timestamp(
        rows.iter()
            .map(|b| b.finished_ms.unwrap_or(i64::MIN))
            .collect(),
    ));
    columns.push(Vector::String(
        rows.iter()
            .map(|b| b.ended.clone().unwrap_or_default())
            .collect(),
    ));
    table(&names, columns)
}
