//! The controller's metadata and the one function that changes it.
//!
//! Every change is a [`MetaCommand`]: a serialisable value handed to [`MetaHandle::apply`].
//! One writer thread ([`MetaWriter`]) owns a working copy of the state. It takes the commands
//! waiting in its queue as a group, checks and applies each to the working copy
//! ([`state::MetaState::apply`]), writes what they touched as one change to the write-ahead
//! logged tree ([`store`]), makes it durable with one `fdatasync` (group commit: every client
//! waiting at that moment shares it; a group of only tasks a slave received is written without
//! one, see [`MetaCommand::must_sync`]), and only then applies the same commands to the
//! published state that readers see, and answers. A replicated log can later feed the same
//! commands to every controller replica: `apply` is deterministic.
//!
//! The state composes the pure parts each role owns: the catalog, users and transactions here,
//! the master's send queue (`crate::master::send_queue`) and the slave's execution queue
//! (`crate::slave::queue`).

pub mod command;
pub mod state;
mod store;
pub mod tidset;

use std::path::Path;
use std::sync::{Arc, RwLock};

use tokio::sync::{mpsc, oneshot};

pub use command::{Decision, MetaCommand, MetaOutcome};
pub use state::{MetaState, User};

use crate::error::ControllerError;
use store::Store;
use xrepl_store::Change;

/// Commands waiting for the metadata writer.
const APPLY_QUEUE: usize = 4096;
/// Most commands one flush covers.
const GROUP_MAX: usize = 512;

type Answer = oneshot::Sender<Result<MetaOutcome, ControllerError>>;
type ApplyRequest = (MetaCommand, Answer);

/// The clonable way to read and change the metadata.
#[derive(Clone)]
pub struct MetaHandle {
    state: Arc<RwLock<MetaState>>,
    tx: mpsc::Sender<ApplyRequest>,
}

impl MetaHandle {
    /// Opens the store under `path`, loads the state and starts the writer task.
    pub fn open(path: &Path) -> Result<MetaHandle, ControllerError> {
        let store = Store::open(path)?;
        let loaded = store.load()?;
        let state = Arc::new(RwLock::new(loaded.clone()));
        let (tx, rx) = mpsc::channel(APPLY_QUEUE);
        let writer = MetaWriter {
            store,
            working: loaded,
            published: state.clone(),
        };
        std::thread::Builder::new()
            .name("meta-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| {
                ControllerError::Refused(format!("cannot start the metadata writer: {e}"))
            })?;
        Ok(MetaHandle { state, tx })
    }

    /// Applies one command: checked, written, flushed (unless it need not be, see
    /// [`MetaCommand::must_sync`]), published, in that order.
    pub async fn apply(&self, cmd: MetaCommand) -> Result<MetaOutcome, ControllerError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send((cmd, tx))
            .await
            .map_err(|_| ControllerError::WriterGone)?;
        rx.await.map_err(|_| ControllerError::WriterGone)?
    }

    /// Leases the next `count` tids: `first..=last`, durable before this returns.
    pub async fn lease_tids(&self, count: u64) -> Result<(u64, u64), ControllerError> {
        match self.apply(MetaCommand::LeaseTids { count }).await? {
            MetaOutcome::Tids { first, last } => Ok((first, last)),
            other => Err(ControllerError::Outcome(format!("{other:?}"))),
        }
    }

    /// Reads the state. Keep `f` short: it runs under a read lock, and take no other lock in
    /// it.
    pub fn read<R>(&self, f: impl FnOnce(&MetaState) -> R) -> R {
        match self.state.read() {
            Ok(s) => f(&s),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }
}

/// The single owner of the store and of the working state.
struct MetaWriter {
    store: Store,
    working: MetaState,
    published: Arc<RwLock<MetaState>>,
}

impl MetaWriter {
    /// The writer's loop, on a thread of its own (it waits for the disk): takes the commands
    /// waiting as a group, applies them, makes them durable with one log sync, publishes,
    /// answers.
    fn run(mut self, mut rx: mpsc::Receiver<ApplyRequest>) {
        while let Some(first) = rx.blocking_recv() {
            let mut group = vec![first];
            while group.len() < GROUP_MAX {
                match rx.try_recv() {
                    Ok(r) => group.push(r),
                    Err(_) => break,
                }
            }
            self.apply_group(group);
        }
        if let Err(e) = self.store.tree.checkpoint() {
            tracing::warn!("cannot flush the metadata at shutdown: {e}");
        }
    }

    fn apply_group(&mut self, group: Vec<ApplyRequest>) {
        let mut change = Change::default();
        let mut done: Vec<(MetaCommand, Answer, Result<MetaOutcome, ControllerError>)> =
            Vec::with_capacity(group.len());
        for (cmd, reply) in group {
            let result = match self.working.apply(&cmd) {
                Ok((outcome, touches)) => {
                    Store::stage(&mut change, &self.working, &touches);
                    Ok(outcome)
                }
                Err(e) => Err(ControllerError::Refused(e)),
            };
            done.push((cmd, reply, result));
        }
        let sync = done
            .iter()
            .any(|(cmd, _, result)| result.is_ok() && cmd.must_sync());
        let written = if change.is_empty() {
            Ok(())
        } else if sync {
            self.store.tree.write_durable(&change).map(|_| ())
        } else {
            self.store.tree.write(&change).map(|_| ())
        };
        if let Err(e) = written {
            // The working copy is ahead of the disk now; the store cannot be trusted to follow.
            // Answer everyone with the error and reload what the disk holds.
            tracing::error!("metadata write failed: {e}");
            for (_, reply, _) in done {
                let _ = reply.send(Err(ControllerError::WriteFailed(e.to_string())));
            }
            match self.store.load() {
                Ok(s) => self.working = s,
                Err(e) => tracing::error!("cannot reload the metadata: {e}"),
            }
            return;
        }
        {
            let mut published = self.published.write().unwrap_or_else(|p| p.into_inner());
            for (cmd, _, result) in &done {
                if result.is_ok() {
                    if let Err(e) = published.apply(cmd) {
                        tracing::error!("published metadata diverged on {cmd:?}: {e}");
                    }
                }
            }
        }
        for (_, reply, result) in done {
            let _ = reply.send(result);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xrepl_core::catalog::{CatalogChange, PartitionScheme, Right};
    use xrepl_core::value::Vector;
    use xrepl_proto::txn::Verdict;

    async fn reopen(dir: &Path) -> MetaHandle {
        // sled releases its lock when the writer task has dropped the store.
        for _ in 0..100 {
            if let Ok(m) = MetaHandle::open(dir) {
                return m;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("cannot reopen the store");
    }

    #[tokio::test]
    async fn commands_survive_a_reopen_and_refusals_change_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let m = MetaHandle::open(dir.path()).expect("open");
            let user = |name: &str| MetaCommand::CreateUser {
                name: name.into(),
                password_hash: "h".into(),
                is_admin: false,
            };
            m.apply(user("alice")).await.expect("create");
            assert!(matches!(
                m.apply(user("alice")).await,
                Err(ControllerError::Refused(_))
            ));
            let (tid, last) = m.lease_tids(2).await.expect("lease");
            assert_eq!((tid, last), (1, 2));
            let create = CatalogChange::CreateDatabase {
                path: "dfs://x".into(),
                scheme: PartitionScheme::Value(Vector::Int(vec![1, 2])),
            };
            let decided = m
                .apply(MetaCommand::Decide {
                    tid,
                    user: "alice".into(),
                    verdict: Verdict::Commit,
                    reason: String::new(),
                    changes: vec![create.clone()],
                    task: None,
                    master: false,
                    now_ns: 0,
                    replay: vec![],
                    participants: Some(vec!["dnode1".into()]),
                })
                .await;
            assert!(matches!(
                decided,
                Ok(MetaOutcome::Decided(
                    Decision {
                        committed: true,
                        ..
                    },
                    None
                ))
            ));
            // A second decision for the same tid returns the first.
            let again = m
                .apply(MetaCommand::Decide {
                    tid,
                    user: "alice".into(),
                    verdict: Verdict::Abort,
                    reason: "late".into(),
                    changes: vec![],
                    task: None,
                    master: false,
                    now_ns: 0,
                    replay: vec![],
                    participants: Some(vec!["dnode1".into()]),
                })
                .await;
            assert!(matches!(
                again,
                Ok(MetaOutcome::Decided(
                    Decision {
                        committed: true,
                        ..
                    },
                    None
                ))
            ));
            // A commit the catalog refuses is recorded as an abort, with the reason.
            let t2 = last;
            let refused = m
                .apply(MetaCommand::Decide {
                    tid: t2,
                    user: "alice".into(),
                    verdict: Verdict::Commit,
                    reason: String::new(),
                    changes: vec![create],
                    task: None,
                    master: false,
                    now_ns: 0,
                    replay: vec![],
                    participants: Some(vec!["dnode1".into()]),
                })
                .await;
            match refused {
                Ok(MetaOutcome::Decided(d, _)) => {
                    assert!(!d.committed);
                    assert_eq!(d.reason, "database 'dfs://x' exists already");
                }
                other => panic!("{other:?}"),
            }
            assert!(
                m.read(|s| s.allows("alice", Right::Owner, "dfs://x")),
                "creator owns it"
            );
        }
        let m = reopen(dir.path()).await;
        m.read(|s| {
            // Leasing resumes above the durable lease: no tid is given twice.
            assert_eq!(s.next_tid, 2);
            assert_eq!(s.decisions.len(), 2);
            assert!(s.decisions.get(&1).is_some_and(|d| d.committed));
            assert!(s.catalog.dbs.contains_key("dfs://x"));
            assert!(s.users.contains_key("alice"));
            assert!(s.allows("alice", Right::Write, "dfs://x"));
        });
    }

    fn decide(tid: u64, participants: &[&str]) -> MetaCommand {
        MetaCommand::Decide {
            tid,
            user: "admin".into(),
            verdict: Verdict::Commit,
            reason: String::new(),
            changes: vec![],
            task: None,
            master: false,
            now_ns: 0,
            replay: vec![],
            participants: Some(participants.iter().map(|p| p.to_string()).collect()),
        }
    }

    fn settle(node: &str, tids: &[u64]) -> MetaCommand {
        MetaCommand::Settle {
            node: node.into(),
            tids: tids.to_vec(),
        }
    }

    /// The controller's memory grew by about 2.9 KB per transaction: every decision was kept
    /// for good. A decision is now kept only until each participant has applied it.
    #[tokio::test]
    async fn a_decision_is_forgotten_once_every_participant_applied_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let m = MetaHandle::open(dir.path()).expect("open");
            m.lease_tids(1_000).await.expect("lease");
            for tid in 1..=1_000 {
                m.apply(decide(tid, &["dnode1", "dnode2"]))
                    .await
                    .expect("decide");
            }
            let all: Vec<u64> = (1..=1_000).collect();
            m.apply(settle("dnode1", &all)).await.expect("settle");
            assert_eq!(m.read(|s| s.decisions.len()), 1_000, "dnode2 may still ask");
            // dnode2 applied all but tid 500 (still prepared there).
            let most: Vec<u64> = all.iter().copied().filter(|t| *t != 500).collect();
            m.apply(settle("dnode2", &most)).await.expect("settle");
            m.read(|s| {
                assert_eq!(s.decisions.keys().copied().collect::<Vec<_>>(), vec![500]);
                assert_eq!(s.settled.ranges(), 2, "1..=499 and 501..=1000");
                assert!(s.settled.contains(1) && s.settled.contains(1_000));
            });
            // A decision for a forgotten tid is refused, not made again.
            assert!(matches!(
                m.apply(decide(7, &["dnode1"])).await,
                Err(ControllerError::Refused(r)) if r.contains("applied the decision")
            ));
            // A report naming unknown or forgotten tids changes nothing.
            m.apply(settle("dnode2", &[7, 5_000]))
                .await
                .expect("settle");
        }
        let m = reopen(dir.path()).await;
        m.read(|s| {
            assert_eq!(s.decisions.len(), 1);
            assert!(s.settled.contains(499) && !s.settled.contains(500));
        });
        m.apply(settle("dnode2", &[500])).await.expect("settle");
        m.read(|s| {
            assert!(s.decisions.is_empty());
            assert_eq!(s.settled.ranges(), 1);
        });
    }

    #[tokio::test]
    async fn many_concurrent_commands_share_flushes_and_all_land() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let m = MetaHandle::open(dir.path()).expect("open");
            let tasks: Vec<_> = (0..200)
                .map(|i| {
                    let m = m.clone();
                    tokio::spawn(async move { m.lease_tids(1 + i % 3).await })
                })
                .collect();
            let mut tids = Vec::new();
            for t in tasks {
                let (first, last) = t.await.expect("join").expect("lease");
                tids.extend(first..=last);
            }
            tids.sort_unstable();
            // 200 leases of 1, 2 or 3 tids: 399 tids, none twice, none skipped.
            assert_eq!(tids, (1..=399).collect::<Vec<u64>>(), "gap-free, unique");
        }
        let m = reopen(dir.path()).await;
        assert_eq!(m.read(|s| s.next_tid), 399);
        assert_eq!(m.lease_tids(10).await.expect("lease"), (400, 409));
    }
}
