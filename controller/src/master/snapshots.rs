//! Handing out the chunks of running bootstraps (see [`super::bootstrap`]) to the master data
//! nodes that hold them, one at a time per node. Who has which chunk lives in memory only: a
//! hand-out lost with a controller restart, held by a node that is down or asks again, or
//! held longer than [`LEASE`], is handed out again; the commit rule (a chunk is sent once)
//! makes a second snapshot of a sent chunk abort.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use xrepl_proto::rpc::{RemoteError, SnapshotWork};
use xrepl_proto::task::{BEGIN, END};

use super::bootstrap::{JobChunk, SnapshotJob};

use super::Master;
use crate::meta::MetaCommand;

/// How long a data node may hold a handed-out chunk before it is handed out again.
pub const LEASE: Duration = Duration::from_secs(300);

/// The chunks handed out and not yet sent, by `(job, index)`: the data node and when.
#[derive(Default)]
pub struct Leases(HashMap<(u64, u32), (String, Instant)>);

impl Master {
    /// The next chunk data node `node` holds that a running bootstrap has still to send, or
    /// `None`. `release`: the chunk it was handed before and could not send, with why.
    pub async fn take_snapshot_work(
        &self,
        node: &str,
        release: Option<(u64, u32, String)>,
    ) -> Result<Option<SnapshotWork>, RemoteError> {
        if let Some((job, index, why)) = release {
            tracing::warn!(job, index, %node, "chunk snapshot failed; it is handed out again: {why}");
        }
        // A data node sends one chunk at a time: when it asks, it holds none (also after a
        // restart that the heartbeats did not notice).
        self.leases().0.retain(|_, (n, _)| n != node);
        let now = Instant::now();
        let live: Vec<String> = self.nodes.live_data_node_names();
        {
            let mut l = self.leases();
            l.0.retain(|_, (n, at)| now.duration_since(*at) < LEASE && live.contains(n));
        }
        // A re-sync to begin (any node makes its first task), else one to end, else the first
        // unsent chunk this node holds; and what is gone (a re-sync's table or database, a
        // chunk).
        let (found, gone) = {
            let leases = self.leases();
            self.meta.read(|s| {
                let mut gone = vec![];
                let mut found = None;
                // The begin or the end of a re-sync: not a chunk; any node makes it.
                let job_step = |j: &SnapshotJob, index: u32| {
                    let table = j.table.clone().unwrap_or_default();
                    let c = JobChunk {
                        table: table.clone(),
                        table_id: 0,
                        partition: 0,
                    };
                    (
                        j.id,
                        index,
                        j.db.clone(),
                        table,
                        c,
                        j.user.clone(),
                        j.target.clone(),
                    )
                };
                for j in s.bootstrap.jobs.values().filter(|j| j.needs_begin()) {
                    if leases.0.contains_key(&(j.id, BEGIN)) {
                        continue;
                    }
                    let d = s.catalog.dbs.get(&j.db).filter(|d| d.replication_enabled);
                    let table = j.table.clone().unwrap_or_default();
                    match d {
                        Some(d) if table.is_empty() || d.tables.contains_key(&table) => {
                            found = Some(job_step(j, BEGIN));
                            break;
                        }
                        _ => gone.push((j.id, BEGIN)),
                    }
                }
                // A re-sync whose chunks are all sent ends (any node makes its last task).
                for j in s.bootstrap.jobs.values().filter(|j| j.needs_end()) {
                    if found.is_some() {
                        break;
                    }
                    if leases.0.contains_key(&(j.id, END)) {
                        continue;
                    }
                    if !s
                        .catalog
                        .dbs
                        .get(&j.db)
                        .is_some_and(|d| d.replication_enabled)
                    {
                        gone.push((j.id, END));
                        continue;
                    }
                    found = Some(job_step(j, END));
                }
                for (j, index, c) in s.bootstrap.unsent() {
                    if found.is_some() {
                        break;
                    }
                    if leases.0.contains_key(&(j.id, index)) {
                        continue;
                    }
                    let table = s
                        .catalog
                        .dbs
                        .get(&j.db)
                        .and_then(|d| d.tables.values().find(|t| t.id == c.table_id));
                    match table.and_then(|t| t.chunks.get(&c.partition).map(|n| (t, n))) {
                        None => gone.push((j.id, index)),
                        Some((t, holder)) if holder == node => {
                            found = Some((
                                j.id,
                                index,
                                j.db.clone(),
                                t.name.clone(),
                                c.clone(),
                                j.user.clone(),
                                j.target.clone(),
                            ));
                            break;
                        }
                        Some(_) => {}
                    }
                }
                (found, gone)
            })
        };
        for (job, index) in gone {
            let now_ms = chrono::Utc::now().timestamp_millis();
            if let Err(e) = self
                .meta
                .apply(MetaCommand::SkipSnapshotChunk { job, index, now_ms })
                .await
            {
                tracing::warn!(
                    job,
                    index,
                    "cannot mark a dropped chunk as nothing to send: {e}"
                );
            }
        }
        let Some((job, index, db, table, chunk, user, for_slave)) = found else {
            return Ok(None);
        };
        // A job whose user cannot act any more (deleted) ends, and the others go on.
        let token = match self.auth.issue(&user) {
            Ok((token, _)) => token,
            Err(e) => {
                let why = format!(
                    "it runs as user '{user}', who cannot act any more: {}",
                    e.message
                );
                tracing::error!(job, %db, "bootstrap ended: {why}");
                let now_ms = chrono::Utc::now().timestamp_millis();
                self.meta
                    .apply(MetaCommand::EndSnapshotJob { job, why, now_ms })
                    .await
                    .map_err(|e| e.to_remote(&self.alias))?;
                return Ok(None);
            }
        };
        self.leases()
            .0
            .insert((job, index), (node.to_string(), Instant::now()));
        Ok(Some(SnapshotWork {
            job,
            index,
            db,
            table,
            table_id: chunk.table_id,
            partition: chunk.partition,
            token,
            for_slave,
        }))
    }

    fn leases(&self) -> std::sync::MutexGuard<'_, Leases> {
        self.snapshot_leases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}
