//! Transactions on the controller: tids, the rights a transaction's catalog changes need, the
//! durable decision (with, on a master, the task its commit makes, and on a slave, the task its
//! commit finishes), what became of a transaction, aborting the stale ones, and placing new
//! chunks.

use xrepl_core::catalog::{place_chunk, CatalogChange, Right};
use xrepl_proto::rpc::{ErrorCode, RemoteError};
use xrepl_proto::task::{ReplayOf, TaskMeta};
use xrepl_proto::txn::{TxState, Verdict};

use crate::auth::Caller;
use crate::error::ControllerError;
use crate::meta::{Decision, MetaCommand, MetaOutcome};
use crate::{Controller, Role};

/// A recorded decision, as the coordinator hears it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub committed: bool,
    pub reason: String,
    /// The task a commit made on a master.
    pub task_id: Option<u64>,
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Controller {
    pub(crate) fn denied(&self, caller: &Caller, right: Right, db: &str) -> RemoteError {
        self.refuse(
            ErrorCode::AccessDenied,
            format!("user '{}' lacks {right} on {db}", caller.user),
        )
    }

    /// Checks that the caller may make every change.
    pub(crate) fn check_rights(
        &self,
        caller: &Caller,
        changes: &[CatalogChange],
    ) -> Result<(), RemoteError> {
        let created = |db: &str| {
            changes
                .iter()
                .any(|c| matches!(c, CatalogChange::CreateDatabase { path, .. } if path == db))
        };
        for c in changes {
            let ok = self.meta.read(|s| match c {
                CatalogChange::CreateDatabase { .. } => {
                    caller.is_admin
                        || s.users
                            .get(&caller.user)
                            .is_some_and(|u| u.grants.create_databases)
                }
                // The creator of a database in this same transaction will own it.
                _ if created(c.db()) => true,
                _ => s.allows(&caller.user, c.needs(), c.db()),
            });
            if !ok {
                return Err(match c {
                    CatalogChange::CreateDatabase { path, .. } => self.refuse(
                        ErrorCode::AccessDenied,
                        format!("user '{}' may not create databases ({path}): an administrator must grant DB_OWNER", caller.user),
                    ),
                    _ => self.denied(caller, c.needs(), c.db()),
                });
            }
        }
        Ok(())
    }

    /// Records a transaction's decision durably, with the task its commit makes (a master)
    /// or finishes (a slave's replay).
    pub(crate) async fn decide(
        &self,
        tid: u64,
        verdict: Verdict,
        reason: String,
        changes: Vec<CatalogChange>,
        task: Option<TaskMeta>,
        replay: Option<ReplayOf>,
    ) -> Result<Decided, RemoteError> {
        let replayed = replay.as_ref().map(|r| r.task_id);
        let now_ns = chrono::Utc::now()
            .timestamp_nanos_opt()
            .unwrap_or(now_ms().saturating_mul(1_000_000));
        let outcome = self
            .meta
            .apply(MetaCommand::Decide {
                tid,
                verdict,
                reason,
                changes,
                task,
                master: matches!(self.role, Role::Master(_)),
                now_ns,
                replay,
            })
            .await
            .map_err(|e| e.to_remote(&self.cfg.alias))?;
        match outcome {
            MetaOutcome::ReplayRefused(Decision { reason, .. }, refusal) => {
                if let Some(id) = replayed {
                    tracing::warn!(task_id = id, tid, "duplicate replay rolled back: {reason}");
                    if let (true, Role::Slave(slave)) = (refusal.is_applied(), &self.role) {
                        slave.replay_finished(id).await;
                    }
                }
                Err(ControllerError::ReplayRefused(refusal).to_remote(&self.cfg.alias))
            }
            MetaOutcome::Decided(Decision { committed, reason }, task_id) => {
                if let (Some(_), Role::Master(master)) = (task_id, &self.role) {
                    master.task_added();
                }
                if let (Some(id), true, Role::Slave(slave)) = (replayed, committed, &self.role) {
                    slave.replay_committed(id).await;
                }
                Ok(Decided {
                    committed,
                    reason,
                    task_id,
                })
            }
            other => Err(ControllerError::Outcome(format!("{other:?}")).to_remote(&self.cfg.alias)),
        }
    }

    /// What became of `tid`; an undecided transaction past the timeout is aborted now.
    pub(crate) async fn outcome(&self, tid: u64) -> Result<TxState, RemoteError> {
        let (decision, started) = self.meta.read(|s| {
            (
                s.decisions.get(&tid).cloned(),
                s.open.get(&tid).map(|o| o.started_ms),
            )
        });
        Ok(match (decision, started) {
            (Some(d), _) if d.committed => TxState::Committed,
            (Some(d), _) => TxState::Aborted(d.reason),
            (None, Some(started)) => {
                let age = now_ms().saturating_sub(started);
                if age < self.cfg.transaction_timeout.as_millis() as i64 {
                    TxState::Pending
                } else {
                    let reason = format!(
                        "no decision within {} ms",
                        self.cfg.transaction_timeout.as_millis()
                    );
                    match self
                        .decide(tid, Verdict::Abort, reason, vec![], None, None)
                        .await?
                    {
                        Decided {
                            committed: true, ..
                        } => TxState::Committed,
                        Decided { reason, .. } => TxState::Aborted(reason),
                    }
                }
            }
            (None, None) => {
                TxState::Aborted(format!("transaction {tid} is unknown to the controller"))
            }
        })
    }

    /// Aborts every transaction undecided past the timeout (their coordinators are gone).
    pub async fn abort_stale(&self) {
        let limit = self.cfg.transaction_timeout.as_millis() as i64;
        let now = now_ms();
        let stale: Vec<u64> = self.meta.read(|s| {
            s.open
                .iter()
                .filter(|(_, o)| now.saturating_sub(o.started_ms) >= limit)
                .map(|(t, _)| *t)
                .collect()
        });
        for tid in stale {
            tracing::warn!(tid, "aborting a transaction undecided for {limit} ms");
            let _ = self.outcome(tid).await;
        }
    }

    /// Places the chunks of `partitions` that have none yet on live data nodes; answers where
    /// every one of them is.
    pub(crate) async fn place_chunks(
        &self,
        db: &str,
        table: &str,
        partitions: &[u32],
    ) -> Result<std::collections::BTreeMap<u32, String>, RemoteError> {
        let live: Vec<String> = self
            .nodes
            .live_data_nodes()
            .into_iter()
            .map(|n| n.name)
            .collect();
        let (table_id, missing) = self
            .meta
            .read(|s| {
                s.catalog.table(db, table).map(|t| {
                    let missing: Vec<u32> = partitions
                        .iter()
                        .filter(|p| !t.chunks.contains_key(p))
                        .copied()
                        .collect();
                    (t.id, missing)
                })
            })
            .map_err(|m| self.refuse(ErrorCode::NotFound, m))?;
        if !missing.is_empty() {
            let chunks = missing
                .iter()
                .map(|p| {
                    place_chunk(db, table_id, *p, &live)
                        .map(|n| (*p, n))
                        .ok_or_else(|| {
                            self.refuse(
                                ErrorCode::Unavailable,
                                "no data node is up to hold new partitions",
                            )
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            self.meta
                .apply(MetaCommand::AssignChunks {
                    db: db.to_string(),
                    table: table.to_string(),
                    chunks,
                })
                .await
                .map_err(|e| e.to_remote(&self.cfg.alias))?;
        }
        Ok(self.meta.read(|s| {
            s.catalog
                .table(db, table)
                .map(|t| {
                    partitions
                        .iter()
                        .filter_map(|p| t.chunks.get(p).map(|n| (*p, n.clone())))
                        .collect()
                })
                .unwrap_or_default()
        }))
    }
}
