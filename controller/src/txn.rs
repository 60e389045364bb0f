//! Transactions on the controller: tids, the rights a transaction's catalog changes need, the
//! durable decision (with, on a master, the task its commit makes, and on a slave, the task its
//! commit finishes), what became of a transaction, aborting the stale ones, and placing new
//! chunks.

use xrepl_core::catalog::{place_chunk, CatalogChange, Right};
use xrepl_proto::rpc::{CatalogCheck, ErrorCode, RemoteError};
use xrepl_proto::task::{ReplayOf, TaskMeta};
use xrepl_proto::txn::{TxState, Verdict};

use crate::auth::Caller;
use crate::error::ControllerError;
use crate::meta::{Decision, MetaCommand, MetaOutcome};
use crate::{Controller, Role};

/// What a coordinator (or the controller, for a timeout) asks to record for a transaction.
#[derive(Debug, Clone)]
pub(crate) struct Proposal {
    pub tid: u64,
    /// The user it runs for.
    pub user: String,
    pub verdict: Verdict,
    /// Why it aborts.
    pub reason: String,
    pub changes: Vec<CatalogChange>,
    pub task: Option<TaskMeta>,
    /// The task's data when small: kept in memory for the slaves' pulls.
    pub task_data: Option<serde_bytes::ByteBuf>,
    pub replay: Vec<ReplayOf>,
    /// The data nodes asked to prepare (`None`: not known).
    pub participants: Option<Vec<String>>,
}

impl Proposal {
    /// An abort with `reason`, changing nothing.
    pub(crate) fn abort(tid: u64, user: &str, reason: String) -> Proposal {
        Proposal {
            tid,
            user: user.to_string(),
            verdict: Verdict::Abort,
            reason,
            changes: vec![],
            task: None,
            task_data: None,
            replay: vec![],
            participants: None,
        }
    }
}

/// Transactions someone asked about (a participant, or the task data sweep) before any
/// decision was recorded, and when the first question came: an undecided transaction is
/// aborted once the transaction timeout has passed since then. Memory only: after a restart
/// the wait starts again, which only makes it longer.
#[derive(Default)]
pub struct Undecided {
    asked: std::sync::Mutex<std::collections::HashMap<u64, i64>>,
}

impl Undecided {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, i64>> {
        self.asked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// When `tid`'s wait began: the first question about it, or `since` if that is earlier
    /// (a participant that has held it prepared since then; after a controller restart the
    /// first question is a new one, but the prepare is not).
    fn first_asked(&self, tid: u64, since: i64) -> i64 {
        let mut asked = self.lock();
        let at = asked.entry(tid).or_insert(since);
        *at = (*at).min(since);
        *at
    }

    fn forget(&self, tid: u64) {
        self.lock().remove(&tid);
    }

    /// The tids first asked about at or before `before`.
    fn older_than(&self, before: i64) -> Vec<u64> {
        self.lock()
            .iter()
            .filter(|(_, at)| **at <= before)
            .map(|(t, _)| *t)
            .collect()
    }
}

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

    /// Checks what a commit's chunk operations were planned with: the caller holds the right
    /// they need, and the database is still the version the coordinator read from its cache
    /// (else [`ErrorCode::StaleCatalog`]: nothing was written, plan again).
    pub(crate) fn check_catalog(
        &self,
        caller: &Caller,
        check: Option<&CatalogCheck>,
        snapshot: bool,
    ) -> Result<(), RemoteError> {
        let Some(c) = check else {
            return Ok(());
        };
        let (allowed, version) = self.meta.read(|s| {
            // A bootstrap's snapshot reads a replicated database and writes nothing: a user
            // who may replicate (a re-sync runs as the slave's user) may read it so.
            let replicator = snapshot
                && c.need == Right::Read
                && s.catalog
                    .dbs
                    .get(&c.db)
                    .is_some_and(|d| d.replication_enabled)
                && s.users
                    .get(&caller.user)
                    .is_some_and(|u| u.is_admin || u.grants.may_replicate());
            (
                replicator || s.allows(&caller.user, c.need, &c.db),
                s.catalog.dbs.get(&c.db).map(|d| d.version),
            )
        });
        match version {
            Some(_) if !allowed => Err(self.denied(caller, c.need, &c.db)),
            Some(v) if v == c.version => Ok(()),
            _ => Err(self.refuse(
                ErrorCode::StaleCatalog,
                format!(
                    "database '{}' changed while this transaction was planned; it was rolled back",
                    c.db
                ),
            )),
        }
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
                            .is_some_and(|u| u.grants.may_create_databases())
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
    pub(crate) async fn decide(&self, p: Proposal) -> Result<Decided, RemoteError> {
        let Proposal {
            tid,
            user,
            verdict,
            reason,
            changes,
            task,
            task_data,
            replay,
            participants,
        } = p;
        let replayed: Vec<u64> = replay.iter().map(|r| r.task_id).collect();
        // A small task's data is held by tid before its task can be seen: a pull that finds
        // the task between the commit and `keep_data` below takes the data from there.
        if let (Some(bytes), Role::Master(master)) = (task_data, &self.role) {
            master.hold_data(tid, bytes);
        }
        let now_ns = chrono::Utc::now()
            .timestamp_nanos_opt()
            .unwrap_or(now_ms().saturating_mul(1_000_000));
        let outcome = self
            .meta
            .apply(MetaCommand::Decide {
                tid,
                user,
                verdict,
                reason,
                changes,
                task: task.map(Box::new),
                master: matches!(self.role, Role::Master(_)),
                now_ns,
                replay,
                participants,
            })
            .await;
        let task_data = match &self.role {
            Role::Master(master) => master.release_data(tid),
            _ => None,
        };
        let outcome = outcome.map_err(|e| e.to_remote(&self.cfg.alias))?;
        match outcome {
            MetaOutcome::ReplayRefused(Decision { reason, .. }, refusal) => {
                tracing::warn!(tasks = ?replayed, tid, "duplicate replay rolled back: {reason}");
                // A single task found applied is over; a batch is tried again task by task by
                // its worker.
                if let ([id], true, Role::Slave(slave)) =
                    (replayed.as_slice(), refusal.is_applied(), &self.role)
                {
                    slave.replay_finished(*id).await;
                }
                Err(ControllerError::ReplayRefused(refusal).to_remote(&self.cfg.alias))
            }
            MetaOutcome::Decided(
                Decision {
                    committed, reason, ..
                },
                task_id,
            ) => {
                if let (Some(id), Role::Master(master)) = (task_id, &self.role) {
                    if let Some(bytes) = task_data {
                        master.keep_data(id, bytes);
                    }
                    master.task_added();
                }
                if let (true, Role::Slave(slave)) = (committed, &self.role) {
                    for id in replayed {
                        slave.replay_committed(id).await;
                    }
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

    /// What became of `tid`. A tid that was leased but has no decision may still be running:
    /// it is pending until the transaction timeout has passed since it was first asked about,
    /// and aborted (durably) by the question that finds it older.
    pub(crate) async fn outcome(&self, tid: u64, held_ms: u64) -> Result<TxState, RemoteError> {
        let (decision, leased, settled) = self.meta.read(|s| {
            (
                s.decisions.get(&tid).cloned(),
                tid > 0 && tid <= s.next_tid,
                s.settled.contains(tid),
            )
        });
        if settled {
            self.undecided.forget(tid);
            // Every participant the coordinator named applied the decision, so the question
            // comes from a prepare that reached its node after the coordinator gave up on it:
            // a commit needs every prepare answered first, so the transaction aborted.
            return Ok(TxState::Aborted(format!(
                "transaction {tid} was rolled back (this node's prepare came too late)"
            )));
        }
        if let Some(d) = decision {
            self.undecided.forget(tid);
            return Ok(if d.committed {
                TxState::Committed
            } else {
                TxState::Aborted(d.reason)
            });
        }
        if !leased {
            return Ok(TxState::Aborted(format!(
                "transaction {tid} is unknown to the controller"
            )));
        }
        let timeout = self.cfg.transaction_timeout.as_millis() as i64;
        let now = now_ms();
        let held = i64::try_from(held_ms).unwrap_or(i64::MAX).min(timeout);
        let since = now.saturating_sub(held);
        if now.saturating_sub(self.undecided.first_asked(tid, since)) < timeout {
            return Ok(TxState::Pending);
        }
        let reason = format!("no decision within {timeout} ms");
        let state = match self.decide(Proposal::abort(tid, "", reason)).await? {
            Decided {
                committed: true, ..
            } => TxState::Committed,
            Decided { reason, .. } => TxState::Aborted(reason),
        };
        self.undecided.forget(tid);
        Ok(state)
    }

    /// Aborts every transaction asked about and still undecided past the timeout (their
    /// coordinators are gone).
    pub async fn abort_stale(&self) {
        let limit = self.cfg.transaction_timeout.as_millis() as i64;
        for tid in self.undecided.older_than(now_ms().saturating_sub(limit)) {
            tracing::warn!(tid, "aborting a transaction undecided for {limit} ms");
            let _ = self.outcome(tid, 0).await;
        }
    }

    /// Of the transactions whose task data a data node holds, those whose data nobody needs
    /// any more (see `SendQueue::sweepable`). An undecided one counts as asked about, so that
    /// a transaction whose coordinator died before deciding is aborted after the timeout and
    /// its data swept then.
    pub(crate) fn sweepable(&self, tids: &[u64]) -> Vec<u64> {
        let mut undecided = Vec::new();
        let out = self.meta.read(|s| {
            s.send.sweepable(tids, |tid| {
                let open = !s.decisions.contains_key(&tid)
                    && !s.settled.contains(tid)
                    && tid > 0
                    && tid <= s.next_tid;
                if open {
                    undecided.push(tid);
                }
                open
            })
        });
        let now = now_ms();
        for tid in undecided {
            self.undecided.first_asked(tid, now);
        }
        out
    }

    /// Places the chunks of `partitions` that have none yet on live data nodes; answers where
    /// every one of them is.
    pub(crate) async fn place_chunks(
        &self,
        db: &str,
        table: &str,
        partitions: &[u32],
    ) -> Result<std::collections::BTreeMap<u32, String>, RemoteError> {
        let live: Vec<String> = self.nodes.live_data_node_names();
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

#[cfg(test)]
mod tests {
    use super::Undecided;

    #[test]
    fn the_wait_runs_from_the_earliest_of_the_first_question_and_the_prepare() {
        let u = Undecided::default();
        // First asked at 1,000 by a participant that prepared it just then.
        assert_eq!(u.first_asked(7, 1_000), 1_000);
        // Asked again later: the wait still began at 1,000.
        assert_eq!(u.first_asked(7, 5_000), 1_000);
        // After a controller restart (a new `Undecided`), the participant's prepare time
        // carries over instead of the wait starting again.
        let after_restart = Undecided::default();
        assert_eq!(after_restart.first_asked(7, 1_000), 1_000);
        // A participant that has held it longer moves the start back.
        assert_eq!(after_restart.first_asked(7, 400), 400);
        assert_eq!(after_restart.older_than(500), vec![7]);
        assert!(after_restart.older_than(399).is_empty());
    }
}
