//! Settling prepared transactions whose coordinator has not finished them: at start-up (each
//! takes its chunk locks again before the node serves anyone) and every half second after, a
//! participant asks the controller what became of each one older than [`RESOLVE_AFTER_MS`] and
//! applies the answer. The controller aborts a transaction undecided past its timeout.
//!
//! Every half second the node also reports the transactions it has settled, once that is durable,
//! so that the controller can forget decisions no participant will ask for again.

use std::time::Duration;

use xrepl_proto::txn::TxState;

use super::coordinator::Coordinator;
use crate::storage::Prepared;

/// Most tids in one report of settled transactions (the controller takes up to 100,000).
const MAX_SETTLED_REPORT: usize = 50_000;

/// How long a prepared transaction waits for its coordinator before asking the controller.
pub const RESOLVE_AFTER_MS: i64 = 2_000;

impl Coordinator {
    /// Tells the controller which transactions this node has settled since the last report,
    /// once that is durable here (a settled transaction must never come back prepared after
    /// a crash, since the controller forgets its decision). A failed report is tried again
    /// with the next.
    pub async fn report_settled(&self) {
        let tids = self.participant.take_settled();
        if tids.is_empty() {
            return;
        }
        let storage = self.participant.storage.clone();
        let durable = tokio::task::spawn_blocking(move || storage.sync_all()).await;
        if !matches!(durable, Ok(Ok(()))) {
            tracing::warn!("cannot make settled transactions durable; reporting them later");
            self.participant.return_settled(tids);
            return;
        }
        for (i, part) in tids.chunks(MAX_SETTLED_REPORT).enumerate() {
            if let Err(e) = self.link().settled(part.to_vec()).await {
                tracing::debug!("cannot report settled transactions yet: {e}");
                let rest = tids[i * MAX_SETTLED_REPORT..].to_vec();
                self.participant.return_settled(rest);
                return;
            }
        }
    }

    /// Settles prepared transactions whose coordinator has not finished them: asks the
    /// controller for each one older than `min_age_ms` and applies its answer. At start-up
    /// every one is asked about at once (0); afterwards those older than [`RESOLVE_AFTER_MS`].
    pub async fn resolve_prepared(&self, min_age_ms: i64) {
        let storage = self.participant.storage.clone();
        let prepared = match tokio::task::spawn_blocking(move || storage.all_prepared()).await {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                tracing::error!("cannot list prepared transactions: {e}");
                return;
            }
            Err(_) => return,
        };
        self.resolve_listed(prepared, min_age_ms).await;
    }

    /// [`Self::resolve_prepared`] on a list taken earlier (it may be stale: a coordinator may
    /// have settled some of them since).
    pub async fn resolve_listed(&self, prepared: Vec<Prepared>, min_age_ms: i64) {
        let now = chrono::Utc::now().timestamp_millis();
        let start_up = min_age_ms == 0;
        for p in prepared {
            // At start-up (before serving anyone), hold its locks again so nobody writes under
            // it. Later passes must not: the list may be stale, and re-locking a transaction
            // that its coordinator committed meanwhile would hold the lock forever (seen under
            // a stream of small transactions).
            if start_up
                && self
                    .participant
                    .locks
                    .acquire(p.tid, &p.chunks, Duration::ZERO, false)
                    .await
                    .is_err()
            {
                continue;
            }
            if now.saturating_sub(p.prepared_ms) < min_age_ms {
                continue;
            }
            let held_ms = u64::try_from(now.saturating_sub(p.prepared_ms)).unwrap_or(0);
            match self.link().tx_outcome(p.tid, held_ms).await {
                Ok(TxState::Committed) => {
                    tracing::info!(
                        tid = p.tid,
                        "committing a prepared transaction (decided by the controller)"
                    );
                    if let Err(e) = self.participant.commit(p.tid).await {
                        tracing::error!(tid = p.tid, "commit failed: {e}");
                    }
                }
                Ok(TxState::Aborted(reason)) => {
                    tracing::info!(tid = p.tid, "aborting a prepared transaction: {reason}");
                    if let Err(e) = self.participant.abort(p.tid).await {
                        tracing::error!(tid = p.tid, "abort failed: {e}");
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(tid = p.tid, "outcome not known yet: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use xrepl_core::catalog::ColumnDef;
    use xrepl_core::value::{DataType, Vector};
    use xrepl_proto::txn::{ChunkAction, ChunkId, ChunkOp};

    use super::*;
    use crate::link::ControllerLink;
    use crate::storage::Storage;
    use crate::txn::participant::Participant;

    /// A coordinator with real storage and no controller (nothing here calls it).
    fn node(dir: &std::path::Path) -> Coordinator {
        std::fs::write(
            dir.join("cluster.nodes"),
            "localSite,mode\n127.0.0.1:1:controller1,controller\n127.0.0.1:2:dnode1,datanode\n",
        )
        .expect("write");
        std::fs::write(dir.join("cluster.cfg"), "").expect("write");
        std::fs::write(
            dir.join("controller.cfg"),
            "localSite=127.0.0.1:1:controller1\n",
        )
        .expect("write");
        let cfg = xrepl_core::config::load_datanode(dir, "dnode1").expect("config");
        let storage = Storage::open(&dir.join("storage")).expect("storage");
        let participant = Arc::new(Participant::new(
            Arc::new(storage),
            Duration::from_millis(100),
        ));
        let key = xrepl_core::cluster_key::ClusterKey::from_bytes(&[7; 32]).expect("key");
        Coordinator::new(
            cfg.clone(),
            Arc::new(ControllerLink::new(
                &cfg,
                key.clone(),
                xrepl_proto::rpc::NodeTls::plain(),
            )),
            participant,
            None,
            key,
        )
    }

    /// Regression: a resolver pass working from a list taken before a coordinator committed
    /// re-locked the committed transaction's chunks, and nothing ever released them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stale_resolver_list_does_not_relock_a_committed_transaction() {
        let dir = tempfile::tempdir().expect("tempdir");
        let n = node(dir.path());
        let chunk = ChunkId {
            table: 1,
            partition: 0,
        };
        let columns: Vec<ColumnDef> = vec![ColumnDef {
            id: 0,
            name: "x".into(),
            ty: DataType::Int,
            comment: String::new(),
        }];
        let op = ChunkOp {
            chunk,
            label: "t/0".into(),
            columns,
            action: ChunkAction::Append {
                columns: vec![(0, Vector::Int(vec![1, 2, 3]))],
            },
        };
        n.participant
            .prepare(7, vec![op], false)
            .await
            .expect("prepare");
        let listed = n.participant.storage.all_prepared().expect("list");
        assert_eq!(listed.len(), 1);
        n.participant.commit(7).await.expect("commit");
        n.resolve_listed(listed, RESOLVE_AFTER_MS).await;
        n.participant
            .locks
            .acquire(8, &[chunk], Duration::ZERO, false)
            .await
            .expect("the chunk is free after its transaction committed");
    }
}
