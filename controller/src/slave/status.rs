//! The slave's functions on its controller: `startClusterReplication()`,
//! `stopClusterReplication()`, `skipClusterReplicationTask`, and the status tables
//! (`getSlaveReplicationStatus`, `getSlaveReplicationQueueStatus`,
//! `getClusterReplicationMetrics`).

use std::collections::BTreeSet;

use xrepl_core::value::{Scalar, Table, Value, Vector, NULL_LONG};
use xrepl_proto::rpc::{ErrorCode, RemoteError};
use xrepl_proto::task::{BootstrapProgress, OperationType};

use super::queue::{SlaveStatus, SlaveTask, TaskState, KEEP_FINISHED};
use super::scheduler::node_of;
use super::{now_ns, Slave};
use crate::auth::Caller;
use crate::master::status::Applied;
use crate::meta::{MetaCommand, MetaOutcome};
use crate::switch::Switch;

fn table(names: &[&str], columns: Vec<Vector>) -> Table {
    Table::new(names.iter().map(|s| s.to_string()).collect(), columns).unwrap_or_else(|_| Table {
        names: vec![],
        columns: vec![],
    })
}

/// A duration as `00:00:00.537`.
fn duration_text(ns: i64) -> String {
    let ms = ns.max(0) / 1_000_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

impl Slave {
    /// `startClusterReplication()` / `stopClusterReplication()` on a slave.
    pub async fn switch(&self, switch: Switch) -> Result<Value, RemoteError> {
        self.meta
            .apply(MetaCommand::SwitchSlave { switch })
            .await
            .map_err(|e| e.to_remote(&self.alias))?;
        if switch == Switch::Start {
            self.rt.restart().await;
        }
        self.rt.notify();
        tracing::info!("replication {} on the slave", switch.state_name());
        Ok(Value::Void)
    }

    /// `skipClusterReplicationTask(taskIds)`: a number, a vector or a range.
    pub async fn skip_tasks(&self, caller: &Caller, args: &[Value]) -> Result<Value, RemoteError> {
        const NAME: &str = "skipClusterReplicationTask";
        let bad = |m: String| self.refuse(ErrorCode::BadRequest, format!("{NAME}: {m}"));
        let ids: Vec<i64> = match args {
            [Value::Scalar(Scalar::Int(n))] => vec![i64::from(*n)],
            [Value::Scalar(Scalar::Long(n))] => vec![*n],
            [Value::Vector(Vector::Int(v))] => v.iter().map(|n| i64::from(*n)).collect(),
            [Value::Vector(Vector::Long(v))] => v.clone(),
            [other] => {
                return Err(bad(format!(
                    "taskIds must be a task id, a vector of them or a range such as 1..10, got {}",
                    other.kind_name()
                )))
            }
            _ => {
                return Err(bad(format!(
                    "takes one argument (taskIds), got {}",
                    args.len()
                )))
            }
        };
        let ids: Vec<u64> = ids
            .into_iter()
            .map(|n| u64::try_from(n).ok().filter(|n| *n > 0))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("task ids are positive integers".into()))?;
        if ids.is_empty() {
            return Err(bad("no task id given".into()));
        }
        let details = format!(
            "skipped by {} with skipClusterReplicationTask at {}",
            caller.user,
            chrono::Utc::now().format("%Y.%m.%dT%H:%M:%S%.3f")
        );
        match self
            .meta
            .apply(MetaCommand::SkipTasks {
                ids,
                details,
                now_ns: now_ns(),
            })
            .await
        {
            Ok(MetaOutcome::Skipped(skipped)) => {
                tracing::warn!(user = %caller.user, "skipped tasks {skipped:?}: they will never be applied");
                // One line per task, with its database and table.
                self.meta.read(|s| {
                    for id in &skipped {
                        if let Some(t) = s.slave.tasks.get(id) {
                            tracing::warn!(
                                task_id = id,
                                db = %t.info.db,
                                table = %t.info.table,
                                "task skipped"
                            );
                        }
                    }
                });
                self.rt.finished(skipped).await;
                Ok(Value::Void)
            }
            Ok(other) => {
                Err(self.refuse(ErrorCode::Internal, format!("unexpected outcome {other:?}")))
            }
            Err(e) => Err(e.to_remote(&self.alias)),
        }
    }

    /// `getSlaveReplicationStatus([limit])`: the latest finished tasks (at most 10,000 and at
    /// most `limit`), then the unfinished ones from the oldest.
    pub async fn slave_status(&self, limit: Option<usize>) -> Table {
        let cap = limit.unwrap_or(usize::MAX);
        let running = self.rt.running().await;
        let rows = self.meta.read(|s| {
            let q = &s.slave;
            let finished: Vec<&SlaveTask> =
                q.finished_ids().filter_map(|id| q.tasks.get(&id)).collect();
            let keep = finished.len().min(KEEP_FINISHED).min(cap);
            let mut rows: Vec<SlaveTask> = finished[finished.len() - keep..]
                .iter()
                .map(|t| (*t).clone())
                .collect();
            rows.extend(
                q.tasks
                    .values()
                    .filter(|t| t.state != TaskState::Finished)
                    .take(cap - keep)
                    .cloned(),
            );
            rows
        });
        let text = |f: &dyn Fn(&SlaveTask) -> String| Vector::String(rows.iter().map(f).collect());
        let long = |f: &dyn Fn(&SlaveTask) -> i64| Vector::Long(rows.iter().map(f).collect());
        table(
            &[
                "taskId",
                "masterTid",
                "groupId",
                "executionSet",
                "queueId",
                "operationType",
                "createTime",
                "dbName",
                "tableName",
                "srcIP",
                "srcPort",
                "finishTime",
                "executionNode",
                "state",
                "details",
            ],
            vec![
                long(&|t| t.info.task_id as i64),
                long(&|t| t.info.tid as i64),
                long(&|t| t.info.group_id as i64),
                Vector::Int(
                    rows.iter()
                        .map(|t| i32::from(t.info.execution_set))
                        .collect(),
                ),
                Vector::Int(rows.iter().map(|t| t.queue as i32).collect()),
                text(&|t| t.info.op.name().to_string()),
                Vector::NanoTimestamp(rows.iter().map(|t| t.create_ns).collect()),
                text(&|t| t.info.db.clone()),
                text(&|t| t.info.table.clone()),
                text(&|t| t.info.src_host.clone()),
                Vector::Int(rows.iter().map(|t| i32::from(t.info.src_port)).collect()),
                Vector::NanoTimestamp(
                    rows.iter()
                        .map(|t| {
                            if t.finish_ns > 0 {
                                t.finish_ns
                            } else {
                                NULL_LONG
                            }
                        })
                        .collect(),
                ),
                text(&|t| match running.get(&t.info.task_id) {
                    Some(r) if t.state != TaskState::Failed => r.node.clone(),
                    _ => t.node.clone(),
                }),
                text(&|t| {
                    match t.state {
                        TaskState::Finished if running.contains_key(&t.info.task_id) => "EXECUTING",
                        TaskState::Finished => "FINISHED",
                        TaskState::Failed => "FAILED",
                        TaskState::Waiting if running.contains_key(&t.info.task_id) => "EXECUTING",
                        TaskState::Waiting => "WAITING",
                    }
                    .to_string()
                }),
                text(&|t| t.details.clone()),
            ],
        )
    }

    /// `getSlaveReplicationQueueStatus()`: one row per execution set and queue.
    pub async fn queue_status(&self) -> Table {
        let queues = self.cfg.queue.max(1);
        let live = self.live_data_nodes();
        // (set, queue) -> unfinished
        let mut unfinished = vec![[0i64; 2]; queues as usize];
        let status = self.meta.read(|s| {
            for set in 0..2 {
                for (_, id) in &s.slave.pending[set] {
                    if let Some(t) = s.slave.tasks.get(id) {
                        if let Some(u) = unfinished.get_mut(t.queue as usize) {
                            u[set] += 1;
                        }
                    }
                }
            }
            s.slave.repl.status
        });
        let running = self.rt.running().await;
        let in_queue = |set: u8, q: u32| running.values().find(|r| r.set == set && r.queue == q);
        let mut rows: Vec<(i32, i32, i64, i64, String, i64, &str)> = vec![];
        for set in 0..2u8 {
            for q in 0..queues {
                let n = unfinished[q as usize][usize::from(set)];
                let row = match in_queue(set, q) {
                    Some(r) => (r.group as i64, r.node.clone(), r.started_ns, "EXECUTING"),
                    None => (
                        -1,
                        node_of(q, &live).unwrap_or("").to_string(),
                        NULL_LONG,
                        if n == 0 {
                            "IDLE"
                        } else if status == SlaveStatus::Enabled {
                            "WAITING"
                        } else {
                            status.name()
                        },
                    ),
                };
                rows.push((i32::from(set), q as i32, n, row.0, row.1, row.2, row.3));
            }
        }
        table(
            &[
                "executionSet",
                "queueId",
                "unfinishedTasks",
                "executionGroupId",
                "executionNode",
                "executionTime",
                "status",
            ],
            vec![
                Vector::Int(rows.iter().map(|r| r.0).collect()),
                Vector::Int(rows.iter().map(|r| r.1).collect()),
                Vector::Long(rows.iter().map(|r| r.2).collect()),
                Vector::Long(rows.iter().map(|r| r.3).collect()),
                Vector::String(rows.iter().map(|r| r.4.clone()).collect()),
                Vector::NanoTimestamp(rows.iter().map(|r| r.5).collect()),
                Vector::String(rows.iter().map(|r| r.6.to_string()).collect()),
            ],
        )
    }

    /// `getClusterReplicationMetrics([seconds])`: over the last `seconds` (default 30; -1:
    /// since replication began).
    pub fn metrics(&self, args: &[Value]) -> Result<Table, RemoteError> {
        const NAME: &str = "getClusterReplicationMetrics";
        let seconds: i64 = match args {
            [] => 30,
            [Value::Scalar(Scalar::Int(n))] => i64::from(*n),
            [Value::Scalar(Scalar::Long(n))] => *n,
            _ => {
                return Err(self.refuse(
                    ErrorCode::BadRequest,
                    format!("{NAME} takes one optional argument: seconds (a positive integer, or -1 for all)"),
                ))
            }
        };
        if seconds == 0 || seconds < -1 {
            return Err(self.refuse(
                ErrorCode::BadRequest,
                format!("{NAME}: seconds must be a positive integer, or -1 for all, got {seconds}"),
            ));
        }
        let now = now_ns();
        let row = self.meta.read(|s| {
            let q = &s.slave;
            let since = if seconds == -1 {
                i64::MIN
            } else {
                now.saturating_sub(seconds.saturating_mul(1_000_000_000))
            };
            let mut n = 0i64;
            let mut max_cost = 0i64;
            let mut sum_cost = 0i64;
            let mut groups = BTreeSet::new();
            for id in q.finished_ids() {
                let Some(t) = q.tasks.get(&id) else { continue };
                if t.finish_ns < since || t.start_ns == 0 {
                    continue;
                }
                let cost = t.finish_ns - t.start_ns;
                n += 1;
                max_cost = max_cost.max(cost);
                sum_cost += cost;
                groups.insert(t.info.group_id);
            }
            let finished = if seconds == -1 {
                q.repl.finished_total as i64
            } else {
                n
            };
            let span_s = if seconds == -1 {
                (now - q.repl.began_ns).max(1_000_000_000) as f64 / 1e9
            } else {
                seconds as f64
            };
            (
                q.repl.status,
                finished,
                q.unfinished() as i64,
                finished as f64 / span_s,
                max_cost,
                if n > 0 { sum_cost / n } else { 0 },
                if groups.is_empty() {
                    0.0
                } else {
                    n as f64 / groups.len() as f64
                },
            )
        });
        // A bootstrap, re-sync or seeding still running: its progress, summed.
        let boot = self.bootstrapping();
        let (chunks_done, chunks, bytes_done, bytes_sent) = boot.unwrap_or_default();
        Ok(table(
            &[
                "status",
                "finishedTasks",
                "unfinishedTasks",
                "finishedTasksPerSec",
                "maxCostPerTask",
                "avgCostPerTask",
                "averageGroupSize",
                "bootstrap",
                "bootstrapChunksApplied",
                "bootstrapChunks",
                "bootstrapBytesApplied",
                "bootstrapBytesSent",
            ],
            vec![
                Vector::String(vec![row.0.name().to_string()]),
                Vector::Long(vec![row.1]),
                Vector::Long(vec![row.2]),
                Vector::Double(vec![row.3]),
                Vector::String(vec![duration_text(row.4)]),
                Vector::String(vec![duration_text(row.5)]),
                Vector::Double(vec![row.6]),
                Vector::String(vec![if boot.is_some() {
                    "BOOTSTRAPPING".into()
                } else {
                    String::new()
                }]),
                Vector::Int(vec![chunks_done as i32]),
                Vector::Int(vec![chunks as i32]),
                Vector::Long(vec![bytes_done as i64]),
                Vector::Long(vec![bytes_sent as i64]),
            ],
        ))
    }
}

impl Slave {
    /// `getClusterReplicationBootstrapStatus()` on a slave: the master's bootstraps as of the
    /// latest pull, with the chunk snapshots of each this slave applied (and their bytes).
    pub fn bootstrap_status(&self) -> Table {
        let (rows, applied): (Vec<_>, Vec<_>) = self.bootstraps_applied().into_iter().unzip();
        crate::master::status::bootstrap_table(&rows, Some(&applied))
    }

    /// The bootstraps this slave follows (every slave's, and its own re-syncs) as of the latest
    /// pull, each with the chunk snapshots of it this slave applied and their bytes.
    fn bootstraps_applied(&self) -> Vec<(BootstrapProgress, Applied)> {
        // Every slave's bootstraps, and this slave's re-syncs.
        let rows: Vec<_> = self
            .bootstraps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|b| b.for_slave.as_ref().is_none_or(|s| *s == self.me))
            .cloned()
            .collect();
        let applied: Vec<Applied> = self.meta.read(|s| {
            rows.iter()
                .map(|b| {
                    // A re-sync's copy replaced the old one once its RESYNC_END is applied.
                    let swapped = b.for_slave.is_none()
                        || (b.end_task != 0
                            && s.slave
                                .tasks
                                .get(&b.end_task)
                                .is_none_or(|t| t.state == TaskState::Finished)
                            && b.end_task <= s.slave.repl.last_pulled);
                    if b.last_task <= b.begin_task {
                        return Applied {
                            swapped,
                            ..Applied::default()
                        };
                    }
                    let (chunks, bytes) = s
                        .slave
                        .tasks
                        .range(b.begin_task + 1..=b.last_task)
                        .filter(|(_, t)| {
                            t.info.op == OperationType::SnapshotChunk
                                && t.info.db == b.db
                                && t.info.for_slave == b.for_slave
                                && t.state == TaskState::Finished
                        })
                        .fold((0, 0), |(n, bytes), (_, t)| {
                            (n + 1, bytes + t.info.data_bytes)
                        });
                    Applied {
                        chunks,
                        bytes,
                        swapped,
                    }
                })
                .collect()
        });
        rows.into_iter().zip(applied).collect()
    }

    /// The bootstraps still running for this slave, summed: chunks applied and to apply,
    /// bytes applied and sent so far (`None`: none runs).
    fn bootstrapping(&self) -> Option<(u32, u32, u64, u64)> {
        let running: Vec<_> = self
            .bootstraps_applied()
            .into_iter()
            .filter(|(b, a)| {
                b.ended.is_none()
                    && (b.finished_ms.is_none() || a.chunks < b.chunks_sent || !a.swapped)
            })
            .collect();
        (!running.is_empty()).then(|| {
            running.iter().fold((0, 0, 0, 0), |acc, (b, a)| {
                (
                    acc.0 + a.chunks,
                    acc.1 + b.chunks.saturating_sub(b.chunks_skipped),
                    acc.2 + a.bytes,
                    acc.3 + b.bytes_sent,
                )
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::duration_text;

    #[test]
    fn durations_read_like_dolphindb() {
        assert_eq!(duration_text(537_000_000), "00:00:00.537");
        assert_eq!(duration_text(3_723_004_000_000), "01:02:03.004");
    }
}
