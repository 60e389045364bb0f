//! A master data node's share of a bootstrap: it asks its controller for a chunk it holds
//! that a bootstrap has still to send, and sends it as one transaction whose task
//! (SNAPSHOT_CHUNK) carries every row of the chunk. The transaction holds the chunk's lock
//! (`ChunkAction::Hold`) while it reads the rows and keeps them as task data, so the rows are
//! the chunk as of the task's place in the send queue. Writers of that chunk wait for one
//! read of it, as they would for one append of it. See `controller/src/master/bootstrap.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use xrepl_core::catalog::{ColumnDef, Right};
use xrepl_core::value::{Table, Vector};
use xrepl_proto::rpc::{CatalogCheck, ErrorCode, RemoteError, SnapshotWork};
use xrepl_proto::task::{SnapshotRef, TableDef, TaskData, TaskMeta};
use xrepl_proto::txn::{ChunkAction, ChunkId, ChunkOp};

use super::serve::MasterNode;
use crate::plan::chunk_label;
use crate::storage::{project, Storage};
use crate::txn::coordinator::{Tx, TxTask};

/// How long a node waits before asking again when there was nothing to snapshot.
const IDLE: Duration = Duration::from_millis(500);

impl MasterNode {
    /// Sends the bootstrap chunks this node holds, one at a time, until `shutdown`.
    pub async fn run_snapshots(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut release = None;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let wait = match self.link().take_snapshot_work(release.take()).await {
                Ok(Some(w)) => {
                    let (job, index) = (w.job, w.index);
                    match self.snapshot(w).await {
                        Ok(task) => {
                            tracing::debug!(job, index, task, "chunk snapshot sent");
                            Duration::ZERO
                        }
                        Err(e) => {
                            release = Some((job, index, e.message.clone()));
                            // A busy lock or a changed catalog passes; wait a little.
                            Duration::from_millis(200)
                        }
                    }
                }
                Ok(None) => IDLE,
                Err(e) => {
                    tracing::debug!("cannot ask the controller for bootstrap work: {e}");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Sends one chunk, or begins or ends a re-sync: the transaction's tid.
    async fn snapshot(&self, w: SnapshotWork) -> Result<u64, RemoteError> {
        // The controller checks at the commit that the user may read the database (a
        // re-sync runs as the slave's user, who may read replicated databases so).
        let d = self
            .link()
            .database(&w.token, &w.db, None)
            .await?
            .ok_or_else(|| self.not_found(format!("database '{}' does not exist", w.db)))?;
        let check = CatalogCheck {
            db: d.path.clone(),
            version: d.version,
            need: Right::Read,
        };
        let (host, port) = self.source();
        if w.begins() || w.ends() {
            let data = if w.ends() {
                TaskData::ResyncEnd {
                    db: w.db.clone(),
                    table: (!w.table.is_empty()).then(|| w.table.clone()),
                }
            } else if w.table.is_empty() {
                TaskData::ResyncDatabase {
                    db: w.db.clone(),
                    scheme: d.scheme.clone(),
                    tables: d.tables.values().map(TableDef::of).collect(),
                }
            } else {
                let t = d
                    .tables
                    .get(&w.table)
                    .ok_or_else(|| self.not_found(format!("table '{}' was dropped", w.table)))?;
                TaskData::ResyncTable {
                    db: w.db.clone(),
                    table: TableDef::of(t),
                }
            };
            let tx = Tx {
                task: Some(TxTask {
                    meta: task_meta(&data, &w, (host, port)),
                    data: Some(data),
                }),
                check: Some(check),
                ..Tx::new(vec![], BTreeMap::new())
            };
            let (tid, _) = self.coordinator().run_tx(&w.token, tx).await?;
            return Ok(tid);
        }
        let t = d
            .tables
            .values()
            .find(|t| t.id == w.table_id)
            .ok_or_else(|| self.not_found(format!("table '{}' was dropped", w.table)))?;
        if t.chunks.get(&w.partition) != Some(&self.alias().to_string()) {
            return Err(self.not_found(format!(
                "chunk {} of '{}' is not on this node",
                w.partition, t.name
            )));
        }
        let chunk = ChunkId {
            table: t.id,
            partition: w.partition,
        };
        let data = TaskData::SnapshotChunk {
            db: w.db.clone(),
            table: t.name.clone(),
            partition: w.partition,
            data: Table {
                names: vec![],
                columns: vec![],
            },
        };
        let meta = task_meta(&data, &w, (host, port));
        let op = ChunkOp {
            chunk,
            label: chunk_label(&d, t, w.partition),
            columns: t.columns.clone(),
            action: ChunkAction::Hold,
        };
        let storage = self.coordinator().participant.storage.clone();
        let (columns, db, table, partition) =
            (t.columns.clone(), w.db, t.name.clone(), w.partition);
        let tx = Tx {
            task: Some(TxTask { meta, data: None }),
            check: Some(check),
            read_task: Some(Box::new(move || {
                Ok(TaskData::SnapshotChunk {
                    data: read_chunk(&storage, chunk, &columns).map_err(|e| {
                        format!("cannot read chunk {partition} of '{table}' for the bootstrap: {e}")
                    })?,
                    db,
                    table,
                    partition,
                })
            })),
            ..Tx::new(
                vec![],
                BTreeMap::from([(self.alias().to_string(), vec![op])]),
            )
        };
        let (tid, _) = self.coordinator().run_tx(&w.token, tx).await?;
        Ok(tid)
    }

    fn not_found(&self, m: String) -> RemoteError {
        self.error(ErrorCode::NotFound, m)
    }
}

/// The task a snapshot transaction proposes: its place in its job, its slave; its data at
/// `source`.
fn task_meta(data: &TaskData, w: &SnapshotWork, source: (&str, u16)) -> TaskMeta {
    let mut meta = data.meta(&[], source.0, source.1);
    meta.snapshot = Some(SnapshotRef {
        job: w.job,
        index: w.index,
        rows: 0,
    });
    meta.for_slave = w.for_slave.clone();
    meta
}

/// Every row of a chunk as its committed blocks hold them, in the columns `defs`.
fn read_chunk(storage: &Storage, chunk: ChunkId, defs: &[ColumnDef]) -> Result<Table, String> {
    let mut columns: Vec<Vector> = defs.iter().map(|d| Vector::empty(d.ty)).collect();
    for block in storage.chunk_blocks(chunk).map_err(|e| e.to_string())? {
        for (all, part) in columns.iter_mut().zip(project(&block, defs)?) {
            all.extend_with(part).map_err(|v| {
                format!(
                    "a block holds {} where {} was expected",
                    v.data_type(),
                    all.data_type()
                )
            })?;
        }
    }
    Table::new(defs.iter().map(|d| d.name.clone()).collect(), columns)
}
