//! The controller's metadata and the one function that changes it.
//!
//! Every change is a [`MetaCommand`]: a serialisable value handed to [`MetaHandle::apply`].
//! One writer task ([`MetaWriter`]) owns a working copy of the state. It takes the commands
//! waiting in its queue as a group, checks and applies each to the working copy, writes what
//! they touched in one atomic sled batch, flushes once (group commit), and only then applies
//! the same commands to the published state that readers see, and answers. A replicated log
//! can later feed the same commands to every controller replica: `apply` is deterministic.
//!
//! sled layout: one tree, `meta`, keys by prefix (all written by the group's batch, flushed
//! before any answer):
//! - `u/<user>` → [`User`];  `n/<alias>` → site;  `c/<db path>` → [`DatabaseMeta`]
//! - `t/<tid>` → [`OpenTx`] (begun, not decided);  `d/<tid>` → [`Decision`]
//! - `m/applied`, `m/token_key`, `m/next_tid`, `m/next_table_id`
//! - replication (master): `m/repl` → [`ReplState`];  `q/<taskId>` → [`TaskInfo`] (the send
//!   queue);  `s/<slave>` → [`SlaveInfo`]
//! - replication (slave): `m/slave` → [`SlaveRepl`] (status, pull position);  `r/<taskId>` →
//!   [`SlaveTask`] (the execution queue; a task's FINISHED is written with the commit of the
//!   transaction that replayed it)

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use xrepl_core::auth::TokenKey;
use xrepl_core::catalog::{Catalog, CatalogChange, DatabaseMeta, Grants, Right};
use xrepl_proto::task::{Grouper, OperationType, ReplayOf, TaskInfo, TaskMeta};

use crate::error::ControllerError;
use crate::slave::queue::{ExecQueue, QueueTouch, SlaveRepl, SlaveTask};

/// Commands waiting for the metadata writer.
const APPLY_QUEUE: usize = 4096;
/// Most commands one flush covers.
const GROUP_MAX: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// argon2 PHC string; never the password.
    pub password_hash: String,
    pub is_admin: bool,
    #[serde(default)]
    pub grants: Grants,
}

/// A transaction that has a tid but no decision yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenTx {
    pub coordinator: String,
    pub user: String,
    /// Wall-clock start, ms since the epoch (the abort timeout counts from it).
    pub started_ms: i64,
}

/// The outcome of a transaction, durable once recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub committed: bool,
    /// Why it aborted.
    pub reason: String,
}

/// The master side of replication: its state and counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplState {
    /// `stopClusterReplication()` was called: commits make no tasks.
    pub disabled: bool,
    /// The last task id given (0: none yet).
    pub last_task_id: u64,
    /// Every task up to this one is finished by every registered slave; its data is deleted.
    pub truncated_upto: u64,
    pub grouper: Grouper,
}

/// A slave cluster registered with this master.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaveInfo {
    pub registered_ms: i64,
    /// Every task up to this one is finished on the slave.
    pub finished_upto: u64,
    /// Finished tasks after `finished_upto` (a group's tasks finish in any order).
    pub finished_above: BTreeSet<u64>,
    /// When it last reported progress (ms since the epoch).
    pub last_report_ms: i64,
}

impl SlaveInfo {
    /// The last task it finished (the highest id), 0 for none.
    pub fn last_finished(&self) -> u64 {
        self.finished_above
            .last()
            .copied()
            .unwrap_or(0)
            .max(self.finished_upto)
    }
}

/// Tids handed out per durable lease: `BeginTx` flushes only when it crosses a lease.
pub const TID_LEASE: u64 = 10_000;

/// Finished tasks whose metadata the controller keeps for listing.
pub const KEEP_FINISHED_TASKS: usize = 10_000;

/// A change to the metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MetaCommand {
    /// Creates the token secret; only once, on first start.
    InitTokenKey { key: Vec<u8> },
    CreateUser {
        name: String,
        password_hash: String,
        is_admin: bool,
    },
    /// `db: None` with `Right::Owner`: the user may create databases.
    Grant {
        user: String,
        right: Right,
        db: Option<String>,
    },
    /// Records the site a data node registered from.
    RegisterNode { alias: String, site: String },
    /// Gives a new transaction its tid.
    BeginTx {
        coordinator: String,
        user: String,
        started_ms: i64,
    },
    /// Records a transaction's outcome with its catalog changes, atomically. The first decision
    /// for a tid wins; a commit whose changes the catalog refuses is recorded as an abort.
    Decide {
        tid: u64,
        commit: bool,
        reason: String,
        changes: Vec<CatalogChange>,
        /// The task the commit makes if its database is replicated.
        task: Option<TaskMeta>,
        /// This controller is a replication master (from its configuration).
        master: bool,
        /// The commit time, for the task's `submitTime` (ns since the epoch).
        now_ns: i64,
        /// On a slave: the task this transaction replays, recorded FINISHED by its commit.
        /// A replay of a task that may not finish (finished already) is aborted instead.
        replay: Option<ReplayOf>,
    },
    /// Slave: tasks received from the master, stored WAITING with the new pull position.
    StoreTasks {
        tasks: Vec<TaskInfo>,
        queues: u32,
        now_ns: i64,
    },
    /// Slave: a task failed its last attempt: FAILED, and the slave STOPPED.
    FailTask {
        task_id: u64,
        details: String,
        node: String,
    },
    /// Slave: `startClusterReplication()` (FAILED tasks wait again) or `stopClusterReplication()`.
    SetSlaveEnabled { enabled: bool },
    /// Slave: `skipClusterReplicationTask(ids)`.
    SkipTasks {
        ids: Vec<u64>,
        details: String,
        now_ns: i64,
    },
    /// `startClusterReplication()` / `stopClusterReplication()` on a master.
    SetReplicationEnabled { enabled: bool },
    /// Registers a slave cluster (a registered one is confirmed); refused beyond `max`.
    RegisterSlave {
        slave: String,
        max: u32,
        now_ms: i64,
    },
    /// A slave reports finished tasks; truncation follows when every slave has finished.
    SlaveProgress {
        slave: String,
        finished: Vec<u64>,
        now_ms: i64,
    },
    /// Places chunks that have no node yet (outside any transaction: an empty chunk is harmless).
    AssignChunks {
        db: String,
        table: String,
        chunks: Vec<(u32, String)>,
    },
}

/// What applying a command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaOutcome {
    Done,
    Tid(u64),
    Decided(Decision, Option<u64>),
    /// A replay refused because its task may not finish (it is applied already): recorded as
    /// an abort with this decision.
    ReplayRefused(Decision),
    /// The tasks a skip marked FINISHED.
    Skipped(Vec<u64>),
}

/// What a command wrote, to persist from the working state.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Touch {
    User(String),
    Node(String),
    Db(String),
    Open(u64),
    Decision(u64),
    Counters,
    TokenKey,
    Repl,
    Task(u64),
    Slave(String),
    SlaveRepl,
    SlaveTask(u64),
    /// A new tid lease: the group must be flushed.
    Lease,
}

/// The metadata as the rest of the controller reads it.
#[derive(Debug, Clone, Default)]
pub struct MetaState {
    pub applied: u64,
    pub users: BTreeMap<String, User>,
    pub nodes: BTreeMap<String, String>,
    pub token_key: Option<Vec<u8>>,
    pub catalog: Catalog,
    pub next_tid: u64,
    /// Every tid up to this one may have been handed out (durable before any of them was);
    /// after a crash, numbering resumes above it, so no tid is ever given twice.
    pub tid_lease: u64,
    pub open: BTreeMap<u64, OpenTx>,
    pub decisions: BTreeMap<u64, Decision>,
    pub repl: ReplState,
    /// The send queue: unfinished tasks and the latest finished ones, by task id.
    pub tasks: BTreeMap<u64, TaskInfo>,
    /// Task id by master tid, for the tasks in `tasks`.
    pub task_of_tid: HashMap<u64, u64>,
    pub slaves: BTreeMap<String, SlaveInfo>,
    /// Slave: the execution queue.
    pub slave: ExecQueue,
}

impl MetaState {
    /// Applies a command, or refuses it leaving the state as it was.
    fn apply(&mut self, cmd: &MetaCommand) -> Result<(MetaOutcome, Vec<Touch>), String> {
        let outcome = match cmd {
            MetaCommand::InitTokenKey { key } => {
                if self.token_key.is_some() {
                    return Err("the token key exists already".into());
                }
                if key.len() != 32 {
                    return Err("a token key has 32 bytes".into());
                }
                self.token_key = Some(key.clone());
                (MetaOutcome::Done, vec![Touch::TokenKey])
            }
            MetaCommand::CreateUser {
                name,
                password_hash,
                is_admin,
            } => {
                xrepl_core::auth::check_user_name(name)?;
                if self.users.contains_key(name) {
                    return Err(format!("user '{name}' exists already"));
                }
                self.users.insert(
                    name.clone(),
                    User {
                        password_hash: password_hash.clone(),
                        is_admin: *is_admin,
                        grants: Grants::default(),
                    },
                );
                (MetaOutcome::Done, vec![Touch::User(name.clone())])
            }
            MetaCommand::Grant { user, right, db } => {
                let u = self
                    .users
                    .get_mut(user)
                    .ok_or_else(|| format!("user '{user}' does not exist"))?;
                match db {
                    None if *right == Right::Owner => u.grants.create_databases = true,
                    None => return Err(format!("{right} needs a database")),
                    Some(db) => {
                        self.catalog.db(db)?;
                        let u = self.users.get_mut(user).ok_or("user vanished")?;
                        u.grants.dbs.entry(db.clone()).or_default().insert(*right);
                    }
                }
                (MetaOutcome::Done, vec![Touch::User(user.clone())])
            }
            MetaCommand::RegisterNode { alias, site } => {
                self.nodes.insert(alias.clone(), site.clone());
                (MetaOutcome::Done, vec![Touch::Node(alias.clone())])
            }
            MetaCommand::BeginTx {
                coordinator,
                user,
                started_ms,
            } => {
                self.next_tid += 1;
                let tid = self.next_tid;
                self.open.insert(
                    tid,
                    OpenTx {
                        coordinator: coordinator.clone(),
                        user: user.clone(),
                        started_ms: *started_ms,
                    },
                );
                let mut touches = vec![Touch::Open(tid), Touch::Counters];
                if tid > self.tid_lease {
                    self.tid_lease = tid + TID_LEASE - 1;
                    touches.push(Touch::Lease);
                }
                (MetaOutcome::Tid(tid), touches)
            }
            MetaCommand::Decide {
                tid,
                commit,
                reason,
                changes,
                task,
                master,
                now_ns,
                replay,
            } => {
                if let Some(d) = self.decisions.get(tid) {
                    let task_id = self.task_of_tid.get(tid).copied();
                    return Ok((MetaOutcome::Decided(d.clone(), task_id), vec![]));
                }
                let Some(open) = self.open.remove(tid) else {
                    return Err(format!("transaction {tid} is unknown"));
                };
                let mut touches = vec![Touch::Open(*tid), Touch::Decision(*tid), Touch::Counters];
                // Whether the commit makes a task, judged on the catalog before its changes.
                let replicated = match task {
                    Some(t) if *commit && *master && !self.repl.disabled => {
                        let flag = self.catalog.dbs.get(&t.db).map(|d| d.replication_enabled);
                        if t.op == OperationType::CreateDomain {
                            flag == Some(false)
                        } else {
                            flag == Some(true)
                        }
                    }
                    _ => false,
                };
                let missing_data = replicated && task.as_ref().is_some_and(|t| !t.data_written);
                let refused = match replay {
                    Some(r) if *commit => self.slave.may_finish(r.task_id).err(),
                    _ => None,
                };
                let decision = if let Some(reason) = &refused {
                    Decision {
                        committed: false,
                        reason: reason.clone(),
                    }
                } else if missing_data {
                    Decision {
                        committed: false,
                        reason: format!(
                            "replication was turned on for '{}' while this transaction ran; run it again",
                            task.as_ref().map_or("", |t| t.db.as_str())
                        ),
                    }
                } else if *commit {
                    match self.catalog.apply_all(changes) {
                        Ok(()) => {
                            for c in changes {
                                touches.push(Touch::Db(c.db().to_string()));
                                self.grant_creator(c, &open.user, &mut touches);
                            }
                            Decision {
                                committed: true,
                                reason: String::new(),
                            }
                        }
                        Err(e) => Decision {
                            committed: false,
                            reason: e,
                        },
                    }
                } else {
                    Decision {
                        committed: false,
                        reason: reason.clone(),
                    }
                };
                let task_id = match task {
                    Some(t) if replicated && decision.committed => {
                        Some(self.add_task(*tid, t, *now_ns, &mut touches))
                    }
                    _ => None,
                };
                if let Some(r) = replay.as_ref().filter(|_| decision.committed) {
                    let t = self.slave.finish(r, *now_ns);
                    Self::touch_queue(&mut touches, t);
                }
                self.decisions.insert(*tid, decision.clone());
                if refused.is_some() {
                    (MetaOutcome::ReplayRefused(decision), touches)
                } else {
                    (MetaOutcome::Decided(decision, task_id), touches)
                }
            }
            MetaCommand::StoreTasks {
                tasks,
                queues,
                now_ns,
            } => {
                let mut touches = vec![];
                Self::touch_queue(&mut touches, self.slave.store(tasks, *queues, *now_ns));
                (MetaOutcome::Done, touches)
            }
            MetaCommand::FailTask {
                task_id,
                details,
                node,
            } => {
                let mut touches = vec![];
                Self::touch_queue(&mut touches, self.slave.fail(*task_id, details, node));
                (MetaOutcome::Done, touches)
            }
            MetaCommand::SetSlaveEnabled { enabled } => {
                let mut touches = vec![];
                Self::touch_queue(&mut touches, self.slave.set_enabled(*enabled));
                (MetaOutcome::Done, touches)
            }
            MetaCommand::SkipTasks {
                ids,
                details,
                now_ns,
            } => {
                let (skipped, t) = self.slave.skip(ids, details, *now_ns)?;
                let mut touches = vec![];
                Self::touch_queue(&mut touches, t);
                (MetaOutcome::Skipped(skipped), touches)
            }
            MetaCommand::SetReplicationEnabled { enabled } => {
                self.repl.disabled = !enabled;
                (MetaOutcome::Done, vec![Touch::Repl])
            }
            MetaCommand::RegisterSlave { slave, max, now_ms } => {
                if !self.slaves.contains_key(slave) {
                    if self.slaves.len() >= *max as usize {
                        let names: Vec<&str> = self.slaves.keys().map(String::as_str).collect();
                        return Err(format!(
                            "slave cluster {slave} is refused: this master accepts at most {max} slave clusters (clusterReplicationSlaveNum={max}); registered: {}",
                            if names.is_empty() { "none".to_string() } else { names.join(", ") }
                        ));
                    }
                    // A new slave starts after what is truncated: that data is gone.
                    self.slaves.insert(
                        slave.clone(),
                        SlaveInfo {
                            registered_ms: *now_ms,
                            finished_upto: self.repl.truncated_upto,
                            finished_above: BTreeSet::new(),
                            last_report_ms: *now_ms,
                        },
                    );
                }
                (MetaOutcome::Done, vec![Touch::Slave(slave.clone())])
            }
            MetaCommand::SlaveProgress {
                slave,
                finished,
                now_ms,
            } => {
                let last = self.repl.last_task_id;
                let s = self
                    .slaves
                    .get_mut(slave)
                    .ok_or_else(|| format!("slave cluster {slave} is not registered"))?;
                for id in finished {
                    if *id > s.finished_upto && *id <= last {
                        s.finished_above.insert(*id);
                    }
                }
                while s.finished_above.remove(&(s.finished_upto + 1)) {
                    s.finished_upto += 1;
                }
                s.last_report_ms = *now_ms;
                let mut touches = vec![Touch::Slave(slave.clone())];
                self.truncate(&mut touches);
                (MetaOutcome::Done, touches)
            }
            MetaCommand::AssignChunks { db, table, chunks } => {
                self.catalog.apply(&CatalogChange::AssignChunks {
                    db: db.clone(),
                    table: table.clone(),
                    chunks: chunks.clone(),
                })?;
                (MetaOutcome::Done, vec![Touch::Db(db.clone())])
            }
        };
        self.applied += 1;
        let (o, mut t) = outcome;
        t.push(Touch::Counters);
        Ok((o, t))
    }

    fn touch_queue(touches: &mut Vec<Touch>, changed: Vec<QueueTouch>) {
        touches.extend(changed.into_iter().map(|t| match t {
            QueueTouch::Repl => Touch::SlaveRepl,
            QueueTouch::Task(id) => Touch::SlaveTask(id),
        }));
    }

    /// Numbers a committed transaction's task and queues it.
    fn add_task(&mut self, tid: u64, t: &TaskMeta, now_ns: i64, touches: &mut Vec<Touch>) -> u64 {
        self.repl.last_task_id += 1;
        let id = self.repl.last_task_id;
        let group_id = self.repl.grouper.place(&t.scope);
        let execution_set = self.catalog.dbs.get(&t.db).map_or(0, |d| d.execution_set);
        self.tasks.insert(
            id,
            TaskInfo {
                task_id: id,
                tid,
                group_id,
                op: t.op,
                submit_ns: now_ns,
                db: t.db.clone(),
                table: t.table.clone(),
                src_host: t.src_host.clone(),
                src_port: t.src_port,
                execution_set,
            },
        );
        self.task_of_tid.insert(tid, id);
        touches.push(Touch::Task(id));
        touches.push(Touch::Repl);
        id
    }

    /// Truncates what every registered slave has finished, and forgets the metadata of all
    /// but the latest [`KEEP_FINISHED_TASKS`] finished tasks.
    fn truncate(&mut self, touches: &mut Vec<Touch>) {
        let Some(upto) = self.slaves.values().map(|s| s.finished_upto).min() else {
            return;
        };
        if upto <= self.repl.truncated_upto {
            return;
        }
        self.repl.truncated_upto = upto;
        touches.push(Touch::Repl);
        let finished = self.tasks.range(..=upto).count();
        let forget: Vec<u64> = self
            .tasks
            .range(..=upto)
            .take(finished.saturating_sub(KEEP_FINISHED_TASKS))
            .map(|(id, _)| *id)
            .collect();
        for id in forget {
            if let Some(t) = self.tasks.remove(&id) {
                self.task_of_tid.remove(&t.tid);
            }
            touches.push(Touch::Task(id));
        }
    }

    /// A user who creates a database (without being an administrator) owns it.
    fn grant_creator(&mut self, c: &CatalogChange, user: &str, touches: &mut Vec<Touch>) {
        if let CatalogChange::CreateDatabase { path, .. } = c {
            if let Some(u) = self.users.get_mut(user) {
                if !u.is_admin {
                    u.grants
                        .dbs
                        .entry(path.clone())
                        .or_default()
                        .insert(Right::Owner);
                    touches.push(Touch::User(user.to_string()));
                }
            }
        }
    }

    pub fn token_key(&self) -> Option<TokenKey> {
        self.token_key.as_deref().and_then(TokenKey::from_bytes)
    }

    /// Whether `user` holds `right` on `db` (administrators hold every right).
    pub fn allows(&self, user: &str, right: Right, db: &str) -> bool {
        self.users
            .get(user)
            .is_some_and(|u| u.is_admin || u.grants.allows(right, db))
    }

    pub fn database(&self, path: &str) -> Result<&DatabaseMeta, String> {
        self.catalog.db(path)
    }
}

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

struct Store {
    db: sled::Db,
    tree: sled::Tree,
}

impl Store {
    fn open(path: &Path) -> Result<Store, ControllerError> {
        let open = |e| ControllerError::OpenStore {
            path: path.to_path_buf(),
            source: e,
        };
        let db = sled::open(path).map_err(open)?;
        let tree = db.open_tree("meta").map_err(open)?;
        Ok(Store { db, tree })
    }

    fn load(&self) -> Result<MetaState, ControllerError> {
        let mut s = MetaState::default();
        let mut slave_repl = SlaveRepl::default();
        let mut slave_tasks: BTreeMap<u64, SlaveTask> = BTreeMap::new();
        for item in self.tree.iter() {
            let (k, v) = item?;
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
                Some(b"t/") => {
                    s.open.insert(id()?, decode(&k, &v)?);
                }
                Some(b"d/") => {
                    s.decisions.insert(id()?, decode(&k, &v)?);
                }
                Some(b"q/") => {
                    let t: TaskInfo = decode(&k, &v)?;
                    s.task_of_tid.insert(t.tid, t.task_id);
                    s.tasks.insert(id()?, t);
                }
                Some(b"s/") => {
                    s.slaves.insert(text[2..].to_string(), decode(&k, &v)?);
                }
                Some(b"r/") => {
                    slave_tasks.insert(id()?, decode(&k, &v)?);
                }
                _ => match text.as_str() {
                    "m/applied" => s.applied = decode(&k, &v)?,
                    "m/next_tid" => s.next_tid = decode(&k, &v)?,
                    "m/next_table_id" => s.catalog.next_table_id = decode(&k, &v)?,
                    "m/token_key" => s.token_key = Some(v.to_vec()),
                    "m/repl" => s.repl = decode(&k, &v)?,
                    "m/tid_lease" => s.tid_lease = decode(&k, &v)?,
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
        // Tids up to the lease may have been given out by `BeginTx` groups that were never
        // flushed: resume above it.
        s.next_tid = s.next_tid.max(s.tid_lease);
        s.slave = ExecQueue::load(slave_repl, slave_tasks);
        Ok(s)
    }

    /// Adds what `touches` name, as they are in `s`, to the batch (absent ones are removed).
    fn stage(batch: &mut sled::Batch, s: &MetaState, touches: &[Touch]) {
        for t in touches {
            match t {
                Touch::User(n) => {
                    let k = format!("u/{n}");
                    match s.users.get(n) {
                        Some(u) => batch.insert(k.as_bytes(), encode(u)),
                        None => batch.remove(k.as_bytes()),
                    }
                }
                Touch::Node(a) => {
                    if let Some(site) = s.nodes.get(a) {
                        batch.insert(format!("n/{a}").as_bytes(), site.as_bytes());
                    }
                }
                Touch::Db(p) => {
                    let k = format!("c/{p}");
                    match s.catalog.dbs.get(p) {
                        Some(d) => batch.insert(k.as_bytes(), encode(d)),
                        None => batch.remove(k.as_bytes()),
                    }
                }
                Touch::Open(tid) => match s.open.get(tid) {
                    Some(o) => batch.insert(tid_key("t/", *tid), encode(o)),
                    None => batch.remove(tid_key("t/", *tid)),
                },
                Touch::Decision(tid) => {
                    if let Some(d) = s.decisions.get(tid) {
                        batch.insert(tid_key("d/", *tid), encode(d));
                    }
                }
                Touch::Counters => {
                    batch.insert("m/applied", encode(&s.applied));
                    batch.insert("m/next_tid", encode(&s.next_tid));
                    batch.insert("m/next_table_id", encode(&s.catalog.next_table_id));
                }
                Touch::Repl => batch.insert("m/repl", encode(&s.repl)),
                Touch::Lease => batch.insert("m/tid_lease", encode(&s.tid_lease)),
                Touch::Task(id) => match s.tasks.get(id) {
                    Some(t) => batch.insert(tid_key("q/", *id), encode(t)),
                    None => batch.remove(tid_key("q/", *id)),
                },
                Touch::Slave(name) => {
                    let k = format!("s/{name}");
                    match s.slaves.get(name) {
                        Some(v) => batch.insert(k.as_bytes(), encode(v)),
                        None => batch.remove(k.as_bytes()),
                    }
                }
                Touch::SlaveRepl => batch.insert("m/slave", encode(&s.slave.repl)),
                Touch::SlaveTask(id) => match s.slave.tasks.get(id) {
                    Some(t) => batch.insert(tid_key("r/", *id), encode(t)),
                    None => batch.remove(tid_key("r/", *id)),
                },
                Touch::TokenKey => {
                    if let Some(k) = &s.token_key {
                        batch.insert("m/token_key", k.as_slice());
                    }
                }
            }
        }
    }
}

type Reply = oneshot::Sender<Result<MetaOutcome, ControllerError>>;
type ApplyRequest = (MetaCommand, Reply);

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
        tokio::spawn(writer.run(rx));
        Ok(MetaHandle { state, tx })
    }

    /// Applies one command: checked, written, flushed, published, in that order.
    pub async fn apply(&self, cmd: MetaCommand) -> Result<MetaOutcome, ControllerError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send((cmd, tx))
            .await
            .map_err(|_| ControllerError::WriterGone)?;
        rx.await.map_err(|_| ControllerError::WriterGone)?
    }

    /// Reads the state. Keep `f` short: it runs under a read lock.
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
    async fn run(mut self, mut rx: mpsc::Receiver<ApplyRequest>) {
        while let Some(first) = rx.recv().await {
            let mut group = vec![first];
            while group.len() < GROUP_MAX {
                match rx.try_recv() {
                    Ok(r) => group.push(r),
                    Err(_) => break,
                }
            }
            self.apply_group(group).await;
        }
        let _ = self.store.db.flush_async().await;
    }

    async fn apply_group(&mut self, group: Vec<ApplyRequest>) {
        let mut batch = sled::Batch::default();
        let mut done: Vec<(MetaCommand, Reply, Result<MetaOutcome, ControllerError>)> =
            Vec::with_capacity(group.len());
        // A group of `BeginTx` within the tid lease need not be flushed: losing its open
        // records in a crash only makes those transactions unknown, which is an abort (their
        // participants ask and hear so; their `Decide` is refused). Everything else is flushed.
        let mut flush = false;
        for (cmd, reply) in group {
            let result = match self.working.apply(&cmd) {
                Ok((outcome, touches)) => {
                    Store::stage(&mut batch, &self.working, &touches);
                    flush |= !matches!(cmd, MetaCommand::BeginTx { .. })
                        || touches.contains(&Touch::Lease);
                    Ok(outcome)
                }
                Err(e) => Err(ControllerError::Refused(e)),
            };
            done.push((cmd, reply, result));
        }
        let written = match self.store.tree.apply_batch(batch) {
            Ok(()) if flush => self.store.db.flush_async().await.map(|_| ()),
            Ok(()) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            // The working copy is ahead of the disk now; the store cannot be trusted to follow.
            // Answer everyone with the error and reload what the disk holds.
            tracing::error!("metadata write failed: {e}");
            for (_, reply, _) in done {
                let _ = reply.send(Err(ControllerError::Refused(format!(
                    "the metadata store failed: {e}"
                ))));
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
    use xrepl_core::catalog::PartitionScheme;
    use xrepl_core::value::Vector;

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
            let tid = match m
                .apply(MetaCommand::BeginTx {
                    coordinator: "dnode1".into(),
                    user: "alice".into(),
                    started_ms: 1,
                })
                .await
            {
                Ok(MetaOutcome::Tid(t)) => t,
                other => panic!("{other:?}"),
            };
            assert_eq!(tid, 1);
            let create = CatalogChange::CreateDatabase {
                path: "dfs://x".into(),
                scheme: PartitionScheme::Value(Vector::Int(vec![1, 2])),
            };
            let decided = m
                .apply(MetaCommand::Decide {
                    tid,
                    commit: true,
                    reason: String::new(),
                    changes: vec![create.clone()],
                    task: None,
                    master: false,
                    now_ns: 0,
                    replay: None,
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
                    commit: false,
                    reason: "late".into(),
                    changes: vec![],
                    task: None,
                    master: false,
                    now_ns: 0,
                    replay: None,
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
            let Ok(MetaOutcome::Tid(t2)) = m
                .apply(MetaCommand::BeginTx {
                    coordinator: "dnode1".into(),
                    user: "alice".into(),
                    started_ms: 2,
                })
                .await
            else {
                panic!("begin");
            };
            let refused = m
                .apply(MetaCommand::Decide {
                    tid: t2,
                    commit: true,
                    reason: String::new(),
                    changes: vec![create],
                    task: None,
                    master: false,
                    now_ns: 0,
                    replay: None,
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
            // Numbering resumes above the durable tid lease: no tid is given twice.
            assert_eq!(s.next_tid, TID_LEASE);
            assert!(s.open.is_empty());
            assert_eq!(s.decisions.len(), 2);
            assert!(s.decisions.get(&1).is_some_and(|d| d.committed));
            assert!(s.catalog.dbs.contains_key("dfs://x"));
            assert!(s.users.contains_key("alice"));
            assert!(s.allows("alice", Right::Write, "dfs://x"));
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
                    tokio::spawn(async move {
                        m.apply(MetaCommand::BeginTx {
                            coordinator: format!("n{i}"),
                            user: "admin".into(),
                            started_ms: i,
                        })
                        .await
                    })
                })
                .collect();
            let mut tids = Vec::new();
            for t in tasks {
                match t.await.expect("join") {
                    Ok(MetaOutcome::Tid(tid)) => tids.push(tid),
                    other => panic!("{other:?}"),
                }
            }
            tids.sort_unstable();
            assert_eq!(tids, (1..=200).collect::<Vec<u64>>(), "gap-free, unique");
        }
        let m = reopen(dir.path()).await;
        assert_eq!(m.read(|s| (s.next_tid, s.open.len())), (TID_LEASE, 200));
        let Ok(MetaOutcome::Tid(next)) = m
            .apply(MetaCommand::BeginTx {
                coordinator: "n".into(),
                user: "admin".into(),
                started_ms: 0,
            })
            .await
        else {
            panic!("begin");
        };
        assert_eq!(next, TID_LEASE + 1);
    }

    /// Tasks are numbered in the commit; truncation follows the slowest slave; only the latest
    /// 10,000 finished tasks' metadata is kept.
    #[test]
    fn tasks_truncate_after_every_slave_and_only_the_latest_finished_are_kept() {
        use xrepl_proto::task::{Scope, TaskMeta};
        let mut s = MetaState::default();
        let db = "dfs://q".to_string();
        s.catalog
            .apply(&CatalogChange::CreateDatabase {
                path: db.clone(),
                scheme: PartitionScheme::Value(Vector::Int(vec![1])),
            })
            .expect("create");
        s.catalog
            .apply(&CatalogChange::SetReplication {
                path: db.clone(),
                enabled: true,
            })
            .expect("flag");
        let meta = TaskMeta {
            op: OperationType::Append,
            db: db.clone(),
            table: "t".into(),
            scope: Scope::Chunks {
                db: db.clone(),
                table: "t".into(),
                partitions: vec![0],
            },
            src_host: "127.0.0.1".into(),
            src_port: 1,
            data_written: true,
        };
        let n = KEEP_FINISHED_TASKS as u64 + 5;
        for i in 0..n {
            let Ok((MetaOutcome::Tid(tid), _)) = s.apply(&MetaCommand::BeginTx {
                coordinator: "dnode1".into(),
                user: "admin".into(),
                started_ms: 0,
            }) else {
                panic!("begin");
            };
            let decided = s.apply(&MetaCommand::Decide {
                tid,
                commit: true,
                reason: String::new(),
                changes: vec![],
                task: Some(meta.clone()),
                master: true,
                now_ns: i as i64,
                replay: None,
            });
            assert!(matches!(decided, Ok((MetaOutcome::Decided(_, Some(id)), _)) if id == i + 1));
        }
        for slave in ["a", "b"] {
            s.apply(&MetaCommand::RegisterSlave {
                slave: slave.into(),
                max: 2,
                now_ms: 0,
            })
            .expect("register");
        }
        assert!(s
            .apply(&MetaCommand::RegisterSlave {
                slave: "c".into(),
                max: 2,
                now_ms: 0,
            })
            .is_err());
        let all: Vec<u64> = (1..=n).collect();
        s.apply(&MetaCommand::SlaveProgress {
            slave: "a".into(),
            finished: all.clone(),
            now_ms: 1,
        })
        .expect("progress");
        assert_eq!(s.repl.truncated_upto, 0, "b has finished nothing");
        // b finishes out of order: only the gap-free prefix counts.
        s.apply(&MetaCommand::SlaveProgress {
            slave: "b".into(),
            finished: vec![1, 2, 4],
            now_ms: 1,
        })
        .expect("progress");
        assert_eq!(s.repl.truncated_upto, 2);
        assert_eq!(s.slaves["b"].last_finished(), 4);
        s.apply(&MetaCommand::SlaveProgress {
            slave: "b".into(),
            finished: all,
            now_ms: 2,
        })
        .expect("progress");
        assert_eq!(s.repl.truncated_upto, n);
        assert_eq!(s.tasks.len(), KEEP_FINISHED_TASKS);
        assert_eq!(
            s.tasks.keys().next().copied(),
            Some(6),
            "the oldest five are forgotten"
        );
        assert_eq!(s.task_of_tid.len(), KEEP_FINISHED_TASKS);
    }
}
