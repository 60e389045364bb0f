//! Deleting the task data nobody needs any more: every second a master data node lists a page
//! of the transactions whose task data it holds and asks its controller which of them are
//! truncated (every slave finished their tasks) or made no task; it deletes those.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::serve::MasterNode;
use super::taskstore::TaskStoreError;

/// How often a master data node asks which task data it may delete.
pub const SWEEP_EVERY: Duration = Duration::from_millis(1000);
/// Transactions asked about at once.
const PAGE: usize = 1000;

impl MasterNode {
    /// Deletes the task data the controller says nobody needs any more (one page).
    pub async fn sweep_task_data(&self) {
        let store = self.tasks.clone();
        let s = store.clone();
        let from = self.sweep_from.load(Ordering::Relaxed);
        let tids = match tokio::task::spawn_blocking(move || s.tids_after(from, PAGE)).await {
            Ok(Ok(t)) if !t.is_empty() => t,
            Ok(Ok(_)) => {
                // The end: start from the oldest again next time.
                self.sweep_from.store(0, Ordering::Relaxed);
                return;
            }
            Ok(Err(e)) => {
                tracing::error!("cannot list task data: {e}");
                return;
            }
            Err(_) => return,
        };
        let last = tids.last().copied().unwrap_or(0);
        self.sweep_from
            .store(if tids.len() < PAGE { 0 } else { last }, Ordering::Relaxed);
        let done = match self.link().sweepable(tids).await {
            Ok(t) => t,
            Err(e) if e.code == xrepl_proto::rpc::ErrorCode::Internal => {
                tracing::warn!("task data sweep: {e}");
                return;
            }
            Err(e) => {
                tracing::debug!("task data sweep postponed: {e}");
                return;
            }
        };
        if done.is_empty() {
            return;
        }
        let n = done.len();
        let r = tokio::task::spawn_blocking(move || {
            for tid in done {
                store.delete(tid)?;
            }
            Ok::<(), TaskStoreError>(())
        })
        .await;
        match r {
            Ok(Ok(())) => tracing::debug!("deleted the task data of {n} transactions"),
            Ok(Err(e)) => tracing::error!("cannot delete task data: {e}"),
            Err(_) => {}
        }
    }
}
