//! The metadata on disk: one sled tree, `meta`, whose changes a write-ahead log makes durable
//! ([`xrepl_store::LoggedTree`]); keys by prefix, all written by a group's change, which is
//! durable before any answer:
//! - `u/<user>` → `User`;  `n/<alias>` → site;  `c/<db path>` → `DatabaseMeta`
//! - `d/<tid>` → `Decision` (`t/<tid>` records of earlier versions, which began each
//!   transaction with its own tid, are skipped)
//! - `m/applied`, `m/token_key` (with `m/token_key_id`, `m/token_key_prev`: the key before
//!   the last rotation), `m/revoked` (tokens logged out of), `m/next_tid`, `m/next_table_id`, `m/tid_lease`,
//!   `m/settled` (the tids whose decisions were forgotten, as ranges)
//! - replication (master): `m/repl` → `ReplState`;  `q/<taskId>` → `TaskInfo` (the send
//!   queue);  `s/<slave>` → `SlaveInfo`
//! - bootstraps (master): `j/<id>` → `SnapshotJob` (its progress), `J/<id>` → its chunk list
//!   (written once)
//! - replication (slave): `m/slave` → `SlaveRepl` (status, pull position);  `r/<taskId>` →
//!   `SlaveTask` (the execution queue; a task's FINISHED is written with the commit of the
//!   transaction that replayed it)

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use xrepl_proto::task::TaskInfo;
use xrepl_store::logged::SEQ_KEY;
use xrepl_store::{Change, LoggedTree};

use super::state::{MetaState, Touch};
use crate::error::ControllerError;
use crate::master::bootstrap::JobChunk;
use crate::master::send_queue::{ReplState, SendQueue, SlaveInfo};
use crate::master::task_list::TaskList;
use crate::slave::queue::{ExecQueue, SlaveRepl, SlaveTask};

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Encoding our own plain structs into a Vec cannot fail.
    rmp_serde::to_vec(v).unwrap_or_default()
}

fn decode<T: for<'a> Deserialize<'a>>(key: &[u8], bytes: &[u8]) -> Result<T, ControllerError> {
    rmp_serde::from_slice(bytes).map_err(|e| ControllerError::Corrupt {
        key: String::from_utf8_lossy(key).to_string(),
        reason: e.to_string(),
    })
}

fn tid_key(prefix: &str, tid: u64) -> Vec<u8> {
    let mut k = prefix.as_bytes().to_vec();
    k.extend_from_slice(&tid.to_be_bytes());
    k
}

/// sled's page cache for the metadata (sled's default is 1 GB): the controller reads the
/// tree only at start; it serves from memory.
const CACHE_BYTES: u64 = 2 << 20;

pub(super) struct Store {
    pub(super) tree: Arc<LoggedTree>,
}

impl Store {
    pub(super) fn open(path: &Path) -> Result<Store, ControllerError> {
        Ok(Store {
            tree: LoggedTree::open(path, "meta", CACHE_BYTES)?,
        })
    }

    pub(super) fn load(&self) -> Result<MetaState, ControllerError> {
        let mut s = MetaState::default();
        let mut slave_repl = SlaveRepl::default();
        let mut repl = ReplState::default();
        let mut tasks = TaskList::default();
        let mut slaves: BTreeMap<String, SlaveInfo> = BTreeMap::new();
        let mut slave_tasks: BTreeMap<u64, SlaveTask> = BTreeMap::new();
        let mut job_chunks: BTreeMap<u64, Vec<JobChunk>> = BTreeMap::new();
        for item in self.tree.tree().iter() {
            let (k, v) = item?;
            if k.as_ref() == SEQ_KEY {
                continue;
            }
            let text = String::from_utf8_lossy(&k).to_string();
            let id = || -> Result<u64, ControllerError> {
                let b: [u8; 8] = k
                    .get(2..10)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| ControllerError::Corrupt {
                        key: text.clone(),
                        reason: "bad tid key".into(),
                    })?;
                Ok(u64::from_be_bytes(b))
            };
            match k.get(..2) {
                Some(b"u/") => {
                    s.users.insert(text[2..].to_string(), decode(&k, &v)?);
                }
                Some(b"n/") => {
                    s.nodes.insert(
                        text[2..].to_string(),
                        String::from_utf8_lossy(&v).to_string(),
                    );
                }
                Some(b"c/") => {
                    s.catalog.dbs.insert(text[2..].to_string(), decode(&k, &v)?);
                }
                // An open transaction of an earlier version: its tid is at or below the lease,
                // and without a decision it is aborted when someone asks.
                Some(b"t/") => {}
                Some(b"d/") => {
                    s.decisions.insert(id()?, decode(&k, &v)?);
                }
                Some(b"q/") => {
                    // Keys sort by task id, which are consecutive: a gap means records were
                    // lost, and only the tasks after it can be listed in order.
                    let t: TaskInfo = decode(&k, &v)?;
                    if let Err(e) = tasks.push(&t) {
                        tracing::error!("the stored send queue has a gap ({e}); listing from task {}", t.task_id);
                        tasks = TaskList::default();
                        let _ = tasks.push(&t);
                    }
                }
                Some(b"s/") => {
                    slaves.insert(text[2..].to_string(), decode(&k, &v)?);
                }
                Some(b"r/") => {
                    slave_tasks.insert(id()?, decode(&k, &v)?);
                }
                Some(b"j/") => {
                    s.bootstrap.jobs.insert(id()?, decode(&k, &v)?);
                }
                Some(b"J/") => {
                    job_chunks.insert(id()?, decode(&k, &v)?);
                }
                _ => match text.as_str() {
                    "m/applied" => s.applied = decode(&k, &v)?,
                    "m/next_tid" => s.next_tid = decode(&k, &v)?,
                    "m/next_table_id" => s.catalog.next_table_id = decode(&k, &v)?,
                    "m/token_key" => s.token_key = Some(v.to_vec()),
                    "m/token_key_id" => s.token_key_id = decode(&k, &v)?,
                    "m/token_key_prev" => s.previous_key = decode(&k, &v)?,
                    "m/revoked" => s.revoked_tokens = decode(&k, &v)?,
                    "m/repl" => repl = decode(&k, &v)?,
                    "m/tid_lease" => s.tid_lease = decode(&k, &v)?,
                    "m/settled" => s.settled = decode(&k, &v)?,
                    "m/slave" => slave_repl = decode(&k, &v)?,
                    _ => {
                        return Err(ControllerError::Corrupt {
                            key: text,
                            reason: "unknown key: the metadata was written by another version of xrepl, or is damaged; move the controller's home folder away to start afresh".into(),
                        })
                    }
                },
            }
        }
        // Tids up to the durable lease may have been handed out (`LeaseTids`) before a crash:
        // resume above it, so that no tid is given twice.
        s.next_tid = s.next_tid.max(s.tid_lease);
        s.send = SendQueue::load(repl, tasks, slaves);
        for (id, j) in s.bootstrap.jobs.iter_mut() {
            j.chunks = job_chunks.remove(id).unwrap_or_default();
            if j.chunks.len() != j.sent.len() {
                return Err(ControllerError::Corrupt {
                    key: format!("J/{id}"),
                    reason: format!(
                        "bootstrap {id} lists {} chunks and {} sent marks",
                        j.chunks.len(),
                        j.sent.len()
                    ),
                });
            }
        }
        s.slave = ExecQueue::load(slave_repl, slave_tasks);
        Ok(s)
    }

    /// Adds what `touches` name, as they are in `s`, to the change (absent ones are removed).
    pub(super) fn stage(change: &mut Change, s: &MetaState, touches: &[Touch]) {
        for t in touches {
            match t {
                Touch::User(n) => {
                    let k = format!("u/{n}");
                    match s.users.get(n) {
                        Some(u) => change.put(k.as_bytes(), encode(u)),
                        None => change.remove(k.as_bytes()),
                    }
                }
                Touch::Node(a) => {
                    if let Some(site) = s.nodes.get(a) {
                        change.put(format!("n/{a}").as_bytes(), site.as_bytes());
                    }
                }
                Touch::Db(p) => {
                    let k = format!("c/{p}");
                    match s.catalog.dbs.get(p) {
                        Some(d) => change.put(k.as_bytes(), encode(d)),
                        None => change.remove(k.as_bytes()),
                    }
                }
                Touch::Decision(tid) => match s.decisions.get(tid) {
                    Some(d) => change.put(tid_key("d/", *tid), encode(d)),
                    None => change.remove(tid_key("d/", *tid)),
                },
                Touch::Settled => change.put("m/settled", encode(&s.settled)),
                Touch::Counters => {
                    change.put("m/applied", encode(&s.applied));
                    change.put("m/next_tid", encode(&s.next_tid));
                    change.put("m/next_table_id", encode(&s.catalog.next_table_id));
                }
                Touch::Repl => change.put("m/repl", encode(&s.send.repl)),
                Touch::Lease => change.put("m/tid_lease", encode(&s.tid_lease)),
                Touch::Task(id) => match s.send.tasks.get(*id) {
                    Some(t) => change.put(tid_key("q/", *id), encode(&t)),
                    None => change.remove(tid_key("q/", *id)),
                },
                Touch::Slave(name) => {
                    let k = format!("s/{name}");
                    match s.send.slaves.get(name) {
                        Some(v) => change.put(k.as_bytes(), encode(v)),
                        None => change.remove(k.as_bytes()),
                    }
                }
                Touch::SlaveRepl => change.put("m/slave", encode(&s.slave.repl)),
                Touch::SlaveTask(id) => match s.slave.tasks.get(id) {
                    Some(t) => change.put(tid_key("r/", *id), encode(t)),
                    None => change.remove(tid_key("r/", *id)),
                },
                Touch::Job { id, chunks } => match s.bootstrap.jobs.get(id) {
                    Some(j) => {
                        change.put(tid_key("j/", *id), encode(j));
                        if *chunks {
                            change.put(tid_key("J/", *id), encode(&j.chunks));
                        }
                    }
                    None => {
                        change.remove(tid_key("j/", *id));
                        change.remove(tid_key("J/", *id));
                    }
                },
                Touch::Revoked => change.put("m/revoked", encode(&s.revoked_tokens)),
                Touch::TokenKey => {
                    change.put("m/token_key_id", encode(&s.token_key_id));
                    change.put("m/token_key_prev", encode(&s.previous_key));
                    if let Some(k) = &s.token_key {
                        change.put("m/token_key", k.as_slice());
                    }
                }
            }
        }
    }
}
