//! Bootstraps on the master, as pure logic over the state the metadata holds.
//!
//! When `setDatabaseForClusterReplication(db, true)` commits, the CREATE_DOMAIN task carries
//! every table's definition, and the same metadata command records a [`SnapshotJob`]: the list
//! of the database's chunks as that commit saw them. Each chunk is then sent by a task of its
//! own (`SNAPSHOT_CHUNK`), made by a transaction on the chunk's data node that holds the
//! chunk's lock while it reads the rows, so the rows are the chunk as of that task's place in
//! the send queue: every commit to the chunk before it is in the rows, every one after it is a
//! later task. A slave applies the tasks in order and ends equal to the master.
//!
//! A chunk is sent once: the commit of its snapshot is refused unless the job still lists the
//! chunk as unsent, and marks it sent in the same command. Who takes which chunk (the hand-out)
//! lives in memory (`super::Master`); a lost hand-out is handed out again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use xrepl_core::catalog::DatabaseMeta;
use xrepl_proto::task::{BootstrapProgress, SnapshotRef, BEGIN, END};

/// Finished jobs kept for the status.
pub const KEEP_FINISHED_JOBS: usize = 16;

/// One chunk a job sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobChunk {
    pub table: String,
    pub table_id: u64,
    pub partition: u32,
}

/// A bootstrap of one database (`j/<id>`; its chunk list, written once, is `J/<id>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotJob {
    pub id: u64,
    pub db: String,
    /// The user who turned replication on: the snapshots run with that user's rights.
    pub user: String,
    /// The task the chunks follow: the CREATE_DOMAIN, or a re-sync's RESYNC_TABLE or
    /// RESYNC_DATABASE (0 until that task is made).
    pub begin_task: u64,
    /// A re-sync's table (`None`: the whole database).
    #[serde(default)]
    pub table: Option<String>,
    /// The slave a re-sync is for (`None`: a bootstrap for every slave).
    #[serde(default)]
    pub target: Option<String>,
    pub started_ms: i64,
    /// Per chunk of `chunks`: sent (or skipped: its chunk is gone).
    pub sent: Vec<bool>,
    pub chunks_sent: u32,
    pub chunks_skipped: u32,
    pub rows_sent: u64,
    pub bytes_sent: u64,
    /// The last snapshot task made so far.
    pub last_task: u64,
    /// A re-sync's RESYNC_END task, made once every chunk was sent (0: not yet).
    #[serde(default)]
    pub end_task: u64,
    /// When every chunk was sent, or why the job ended early.
    pub finished_ms: Option<i64>,
    pub ended: Option<String>,
    #[serde(skip)]
    pub chunks: Vec<JobChunk>,
}

impl SnapshotJob {
    /// Lists the chunks to send after task `task`: every chunk of `d`, or of its table.
    fn begin(&mut self, task: u64, d: &DatabaseMeta, now_ms: i64) {
        self.chunks = d
            .tables
            .values()
            .filter(|t| self.table.as_ref().is_none_or(|name| &t.name == name))
            .flat_map(|t| {
                t.chunks.keys().map(|p| JobChunk {
                    table: t.name.clone(),
                    table_id: t.id,
                    partition: *p,
                })
            })
            .collect();
        self.sent = vec![false; self.chunks.len()];
        self.begin_task = task;
        self.last_task = task;
        Bootstraps::finish_if_done(self, now_ms);
    }

    pub fn total(&self) -> u32 {
        self.chunks.len() as u32
    }

    pub fn is_running(&self) -> bool {
        self.finished_ms.is_none()
    }

    /// A re-sync whose first task is not made yet.
    pub fn needs_begin(&self) -> bool {
        self.is_running() && self.begin_task == 0
    }

    /// A re-sync that sent (or skipped) every chunk and has still to make its RESYNC_END.
    pub fn needs_end(&self) -> bool {
        self.is_running()
            && self.target.is_some()
            && self.begin_task != 0
            && self.done() >= self.total()
    }

    fn done(&self) -> u32 {
        self.chunks_sent + self.chunks_skipped
    }

    pub fn progress(&self) -> BootstrapProgress {
        BootstrapProgress {
            job: self.id,
            db: self.db.clone(),
            table: self.table.clone(),
            for_slave: self.target.clone(),
            begin_task: self.begin_task,
            last_task: self.last_task,
            end_task: self.end_task,
            chunks: self.total(),
            chunks_sent: self.chunks_sent,
            chunks_skipped: self.chunks_skipped,
            rows_sent: self.rows_sent,
            bytes_sent: self.bytes_sent,
            started_ms: self.started_ms,
            finished_ms: self.finished_ms,
            ended: self.ended.clone(),
        }
    }
}

/// What a change touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobTouch {
    /// `j/<id>` (and `J/<id>` when `chunks`).
    Job { id: u64, chunks: bool },
}

/// Every job, running and the latest finished ones.
#[derive(Debug, Clone, Default)]
pub struct Bootstraps {
    pub jobs: BTreeMap<u64, SnapshotJob>,
}

impl Bootstraps {
    /// Starts a job for every chunk of `d` as it is now, after CREATE_DOMAIN task `task`.
    pub fn start(
        &mut self,
        d: &DatabaseMeta,
        user: &str,
        task: u64,
        now_ms: i64,
        touched: &mut Vec<JobTouch>,
    ) {
        // A database turned on again ends what its earlier bootstrap had not sent: the new
        // one sends everything.
        self.end_db(&d.path, "replication was turned on again", now_ms, touched);
        let id = self.next_id();
        let mut job = SnapshotJob {
            id,
            db: d.path.clone(),
            user: user.to_string(),
            started_ms: now_ms,
            ..SnapshotJob::default()
        };
        job.begin(task, d, now_ms);
        tracing::info!(
            job = id,
            db = %d.path,
            task_id = task,
            chunks = job.total(),
            "bootstrap started"
        );
        self.jobs.insert(id, job);
        touched.push(JobTouch::Job { id, chunks: true });
        self.forget_finished(touched);
    }

    /// Whether a re-sync for `slave` runs.
    pub fn runs_for(&self, slave: &str) -> bool {
        self.jobs
            .values()
            .any(|j| j.is_running() && j.target.as_deref() == Some(slave))
    }

    /// Whether a re-sync for `slave` has not made its first task yet.
    pub fn starting_for(&self, slave: &str) -> bool {
        self.jobs
            .values()
            .any(|j| j.needs_begin() && j.target.as_deref() == Some(slave))
    }

    fn next_id(&self) -> u64 {
        self.jobs.keys().last().map_or(1, |k| k + 1)
    }

    /// Starts a re-sync of `table` of `db` (`None`: the whole database) for slave `target`,
    /// run as `user`: its first task lists the chunks. Answers the job's id.
    pub fn start_resync(
        &mut self,
        db: &str,
        table: Option<&str>,
        target: &str,
        user: &str,
        now_ms: i64,
    ) -> Result<(u64, Vec<JobTouch>), String> {
        if let Some(j) = self.jobs.values().find(|j| {
            j.is_running()
                && j.db == db
                && j.target.as_deref() == Some(target)
                && j.table.as_deref() == table
        }) {
            return Err(format!(
                "a re-sync of {} for slave cluster {target} is running already (job {}); watch getClusterReplicationBootstrapStatus()",
                table.map_or_else(|| format!("'{db}'"), |t| format!("'{db}'.'{t}'")),
                j.id
            ));
        }
        let id = self.next_id();
        self.jobs.insert(
            id,
            SnapshotJob {
                id,
                db: db.to_string(),
                table: table.map(str::to_string),
                target: Some(target.to_string()),
                user: user.to_string(),
                started_ms: now_ms,
                ..SnapshotJob::default()
            },
        );
        let mut touched = vec![JobTouch::Job { id, chunks: true }];
        self.forget_finished(&mut touched);
        Ok((id, touched))
    }

    /// A re-sync's first task `task` was made: its chunks are those of `d` (of its table)
    /// now.
    pub fn begun(
        &mut self,
        job: u64,
        task: u64,
        d: &DatabaseMeta,
        now_ms: i64,
        touched: &mut Vec<JobTouch>,
    ) {
        if let Some(j) = self.jobs.get_mut(&job) {
            if j.needs_begin() {
                j.begin(task, d, now_ms);
                touched.push(JobTouch::Job {
                    id: job,
                    chunks: true,
                });
            }
        }
    }

    /// Why a snapshot of chunk `index` of job `job` may not commit (`None`: it may).
    pub fn may_send(&self, job: u64, index: u32, for_slave: Option<&str>) -> Option<String> {
        let Some(j) = self.jobs.get(&job) else {
            return Some(format!("bootstrap {job} is over"));
        };
        if j.target.as_deref() != for_slave {
            return Some(format!(
                "bootstrap {job} is for {}, not for {}",
                j.target.as_deref().unwrap_or("every slave"),
                for_slave.unwrap_or("every slave")
            ));
        }
        if let Some(why) = &j.ended {
            return Some(format!("bootstrap {job} of '{}' ended: {why}", j.db));
        }
        if index == BEGIN {
            return (!j.needs_begin())
                .then(|| format!("re-sync {job} of '{}' began already", j.db));
        }
        if index == END {
            return (!j.needs_end()).then(|| {
                format!(
                    "re-sync {job} of '{}' has chunks to send, or ended already",
                    j.db
                )
            });
        }
        if j.needs_begin() {
            return Some(format!("re-sync {job} of '{}' has not begun", j.db));
        }
        match j.sent.get(index as usize) {
            None => Some(format!("bootstrap {job} has no chunk {index}")),
            Some(true) => Some(format!(
                "chunk {index} of bootstrap {job} of '{}' was sent already",
                j.db
            )),
            Some(false) => None,
        }
    }

    /// The chunk of `r` was sent by task `task`, `bytes` of task data.
    pub fn sent(
        &mut self,
        r: SnapshotRef,
        task: u64,
        bytes: u64,
        now_ms: i64,
        touched: &mut Vec<JobTouch>,
    ) {
        let (job, index) = (r.job, r.index);
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        if let Some(s) = j.sent.get_mut(index as usize) {
            if !*s {
                *s = true;
                j.chunks_sent += 1;
                j.rows_sent += r.rows;
                j.bytes_sent += bytes;
                j.last_task = j.last_task.max(task);
            }
        }
        Self::finish_if_done(j, now_ms);
        touched.push(JobTouch::Job {
            id: job,
            chunks: false,
        });
    }

    /// Re-sync `job`'s RESYNC_END was made, task `task`: the job is done.
    pub fn ended_by(&mut self, job: u64, task: u64, now_ms: i64, touched: &mut Vec<JobTouch>) {
        if let Some(j) = self.jobs.get_mut(&job) {
            if j.needs_end() {
                j.end_task = task;
                j.last_task = j.last_task.max(task);
                j.finished_ms = Some(now_ms);
                touched.push(JobTouch::Job {
                    id: job,
                    chunks: false,
                });
            }
        }
    }

    /// Chunk `index` of `job` is gone (its table or partition was dropped): nothing to send.
    /// [`BEGIN`]: the re-sync's table or database is gone; the job ends.
    pub fn skip(&mut self, job: u64, index: u32, now_ms: i64) -> Result<Vec<JobTouch>, String> {
        let j = self
            .jobs
            .get_mut(&job)
            .ok_or_else(|| format!("bootstrap {job} is over"))?;
        if index == BEGIN || index == END {
            j.finished_ms = Some(now_ms);
            j.ended = Some(if index == BEGIN {
                "its database or table was dropped before it began".into()
            } else {
                "its database was dropped before it ended".into()
            });
            return Ok(vec![JobTouch::Job {
                id: job,
                chunks: false,
            }]);
        }
        match j.sent.get_mut(index as usize) {
            None => return Err(format!("bootstrap {job} has no chunk {index}")),
            Some(true) => return Ok(vec![]),
            Some(s) => *s = true,
        }
        j.chunks_skipped += 1;
        Self::finish_if_done(j, now_ms);
        Ok(vec![JobTouch::Job {
            id: job,
            chunks: false,
        }])
    }

    /// A bootstrap is done when its last chunk is sent; a re-sync when its RESYNC_END is made
    /// after that ([`Bootstraps::ended_by`]).
    fn finish_if_done(j: &mut SnapshotJob, now_ms: i64) {
        if j.done() >= j.total() && j.finished_ms.is_none() && j.target.is_none() {
            tracing::info!(
                job = j.id,
                db = %j.db,
                chunks = j.chunks_sent,
                skipped = j.chunks_skipped,
                "bootstrap sent: every chunk"
            );
            j.finished_ms = Some(now_ms);
        }
    }

    /// Ends job `job` with `why` (if it runs).
    pub fn end(&mut self, job: u64, why: &str, now_ms: i64) -> Vec<JobTouch> {
        match self.jobs.get_mut(&job) {
            Some(j) if j.is_running() => {
                j.finished_ms = Some(now_ms);
                j.ended = Some(why.to_string());
                vec![JobTouch::Job {
                    id: job,
                    chunks: false,
                }]
            }
            _ => vec![],
        }
    }

    /// Ends the running jobs of `db` (its replication turned off, it was dropped).
    pub fn end_db(&mut self, db: &str, why: &str, now_ms: i64, touched: &mut Vec<JobTouch>) {
        for j in self.jobs.values_mut() {
            if j.db == db && j.is_running() {
                j.finished_ms = Some(now_ms);
                j.ended = Some(why.to_string());
                touched.push(JobTouch::Job {
                    id: j.id,
                    chunks: false,
                });
            }
        }
    }

    /// Forgets all but the latest [`KEEP_FINISHED_JOBS`] finished jobs.
    fn forget_finished(&mut self, touched: &mut Vec<JobTouch>) {
        let finished: Vec<u64> = self
            .jobs
            .values()
            .filter(|j| !j.is_running())
            .map(|j| j.id)
            .collect();
        for id in finished
            .iter()
            .take(finished.len().saturating_sub(KEEP_FINISHED_JOBS))
        {
            self.jobs.remove(id);
            touched.push(JobTouch::Job {
                id: *id,
                chunks: true,
            });
        }
    }

    /// The chunks still to send, `(job, index, chunk)`, oldest job first.
    pub fn unsent(&self) -> impl Iterator<Item = (&SnapshotJob, u32, &JobChunk)> {
        self.jobs.values().filter(|j| j.is_running()).flat_map(|j| {
            j.chunks
                .iter()
                .enumerate()
                .filter(|(i, _)| !j.sent.get(*i).copied().unwrap_or(true))
                .map(move |(i, c)| (j, i as u32, c))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xrepl_core::catalog::{PartitionScheme, TableKind, TableMeta};

    fn sref(index: u32, rows: u64) -> SnapshotRef {
        SnapshotRef {
            job: 1,
            index,
            rows,
        }
    }

    pub(super) fn db() -> DatabaseMeta {
        let mut tables = BTreeMap::new();
        for (id, name, parts) in [(7u64, "a", vec![0u32, 3]), (9, "b", vec![1])] {
            tables.insert(
                name.to_string(),
                TableMeta {
                    id,
                    name: name.to_string(),
                    kind: TableKind::Dimension,
                    columns: vec![],
                    next_column_id: 0,
                    chunks: parts
                        .into_iter()
                        .map(|p| (p, "dnode1".to_string()))
                        .collect(),
                },
            );
        }
        DatabaseMeta {
            path: "dfs://x".into(),
            scheme: PartitionScheme::Value(xrepl_core::value::Vector::Int(vec![1])),
            tables,
            replication_enabled: true,
            execution_set: 0,
            version: 1,
        }
    }

    #[test]
    fn a_chunk_is_sent_once_and_the_job_ends_when_all_are_sent_or_gone() {
        let mut b = Bootstraps::default();
        let mut t = vec![];
        b.start(&db(), "admin", 5, 100, &mut t);
        assert_eq!(
            t,
            vec![JobTouch::Job {
                id: 1,
                chunks: true
            }]
        );
        assert_eq!(b.unsent().count(), 3);
        assert_eq!(b.may_send(1, 0, None), None);
        b.sent(sref(0, 10), 6, 100, 101, &mut t);
        assert!(b
            .may_send(1, 0, None)
            .unwrap_or_default()
            .contains("sent already"));
        assert!(b
            .may_send(1, 9, None)
            .unwrap_or_default()
            .contains("no chunk 9"));
        assert!(b
            .may_send(2, 0, None)
            .unwrap_or_default()
            .contains("is over"));
        b.skip(1, 1, 102).expect("skip");
        assert!(b.jobs[&1].is_running());
        b.sent(sref(2, 5), 8, 50, 103, &mut t);
        let j = &b.jobs[&1];
        assert_eq!(
            (
                j.chunks_sent,
                j.chunks_skipped,
                j.rows_sent,
                j.bytes_sent,
                j.last_task
            ),
            (2, 1, 15, 150, 8)
        );
        assert_eq!(j.finished_ms, Some(103));
        assert_eq!(b.unsent().count(), 0);
    }

    #[test]
    fn turning_replication_on_again_ends_the_earlier_job() {
        let mut b = Bootstraps::default();
        let mut t = vec![];
        b.start(&db(), "admin", 5, 100, &mut t);
        b.start(&db(), "admin", 9, 200, &mut t);
        assert_eq!(
            b.jobs[&1].ended.as_deref(),
            Some("replication was turned on again")
        );
        assert!(b.may_send(1, 0, None).unwrap_or_default().contains("ended"));
        assert_eq!(b.unsent().filter(|(j, ..)| j.id == 2).count(), 3);
        b.end_db("dfs://x", "replication was turned off", 300, &mut t);
        assert_eq!(b.unsent().count(), 0);
    }
}

#[cfg(test)]
mod resync_tests {
    use super::*;

    #[test]
    fn a_resync_begins_once_for_its_slave_then_sends_its_tables_chunks() {
        let mut b = Bootstraps::default();
        let (id, _) = b
            .start_resync("dfs://x", Some("a"), "s1", "repl", 100)
            .expect("start");
        assert!(b
            .start_resync("dfs://x", Some("a"), "s1", "repl", 101)
            .is_err_and(|e| e.contains("running already")));
        assert_eq!(b.unsent().count(), 0, "nothing to send before it begins");
        assert!(b
            .may_send(id, BEGIN, None)
            .is_some_and(|e| e.contains("for s1")));
        assert_eq!(b.may_send(id, BEGIN, Some("s1")), None);
        assert!(b
            .may_send(id, 0, Some("s1"))
            .is_some_and(|e| e.contains("not begun")));
        let mut t = vec![];
        let d = super::tests::db();
        b.begun(id, 7, &d, 102, &mut t);
        assert!(b
            .may_send(id, BEGIN, Some("s1"))
            .is_some_and(|e| e.contains("began already")));
        // Only table a's two chunks.
        assert_eq!(b.unsent().count(), 2);
        assert_eq!(b.jobs[&id].begin_task, 7);
        // Its RESYNC_END may be made only once every chunk is sent, and once.
        assert!(b
            .may_send(id, END, Some("s1"))
            .is_some_and(|e| e.contains("chunks to send")));
        let r = |index| SnapshotRef {
            job: id,
            index,
            rows: 1,
        };
        b.sent(r(0), 8, 10, 103, &mut t);
        b.skip(id, 1, 103).expect("skip");
        assert!(
            b.jobs[&id].is_running(),
            "a re-sync is not done before its end"
        );
        assert!(b.jobs[&id].needs_end());
        assert_eq!(b.may_send(id, END, Some("s1")), None);
        b.ended_by(id, 9, 104, &mut t);
        let j = &b.jobs[&id];
        assert_eq!((j.end_task, j.last_task, j.finished_ms), (9, 9, Some(104)));
        assert!(b
            .may_send(id, END, Some("s1"))
            .is_some_and(|e| e.contains("ended already")));
    }

    #[test]
    fn a_resync_that_ends_early_makes_no_end() {
        let mut b = Bootstraps::default();
        let (id, _) = b
            .start_resync("dfs://x", Some("a"), "s1", "repl", 100)
            .expect("start");
        let mut t = vec![];
        b.begun(id, 7, &super::tests::db(), 102, &mut t);
        // A job whose user is gone ends, and sends nothing more.
        assert_eq!(b.end(id, "its user was deleted", 103).len(), 1);
        assert_eq!(b.unsent().count(), 0);
        assert!(b
            .may_send(id, 0, Some("s1"))
            .is_some_and(|e| e.contains("its user was deleted")));
        assert!(b.end(id, "again", 104).is_empty(), "ended once");
    }
}
