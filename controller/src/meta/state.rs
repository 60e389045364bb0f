//! The metadata as one value, and [`MetaState::apply`]: the deterministic change each
//! [`MetaCommand`] makes, or its refusal (which leaves the state as it was). No IO: the writer
//! (`super::MetaHandle`) persists what a command touched ([`Touch`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use xrepl_core::auth::TokenKey;
use xrepl_core::catalog::{Access, Catalog, CatalogChange, DatabaseMeta, Grants, Right};

use super::command::{Decision, MetaCommand, MetaOutcome};
use super::tidset::TidSet;
use crate::master::bootstrap::{Bootstraps, JobTouch};
use crate::master::send_queue::{SendQueue, SendTouch};
use crate::slave::queue::{ExecQueue, QueueTouch};
use xrepl_proto::task::OperationType;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// argon2 PHC string; never the password.
    pub password_hash: String,
    pub is_admin: bool,
    #[serde(default)]
    pub grants: Grants,
    /// Moves on with every new password: tokens carry the generation they were issued at,
    /// and only the current one is accepted.
    #[serde(default)]
    pub generation: u64,
}

/// The signing key of the tokens before the last rotation, and until when its tokens hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousKey {
    pub id: u32,
    pub key: Vec<u8>,
    pub until_ms: i64,
}

/// What a command wrote, to persist from the working state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Touch {
    User(String),
    Node(String),
    Db(String),
    Decision(u64),
    Counters,
    TokenKey,
    /// `m/revoked`: the tokens logged out of.
    Revoked,
    Repl,
    Task(u64),
    Slave(String),
    SlaveRepl,
    SlaveTask(u64),
    /// A bootstrap job (`j/<id>`), and its chunk list (`J/<id>`) when `chunks`.
    Job {
        id: u64,
        chunks: bool,
    },
    /// Tids were leased: `m/tid_lease` (the group is flushed, as every group is).
    Lease,
    /// Decisions were forgotten: `m/settled`.
    Settled,
}

/// The metadata as the rest of the controller reads it.
#[derive(Debug, Clone, Default)]
pub struct MetaState {
    pub applied: u64,
    pub users: BTreeMap<String, User>,
    pub nodes: BTreeMap<String, String>,
    pub token_key: Option<Vec<u8>>,
    /// The number of the current token key (0 until the first rotation).
    pub token_key_id: u32,
    pub previous_key: Option<PreviousKey>,
    /// Tokens logged out of, by nonce, with their expiry (dropped once expired).
    pub revoked_tokens: BTreeMap<String, i64>,
    pub catalog: Catalog,
    /// The last tid leased to a data node (0: none yet). Every tid up to it may be in use by
    /// a transaction the controller has not heard of yet.
    pub next_tid: u64,
    /// Every tid up to this one has been leased (durable before any of them was); after a
    /// crash, leasing resumes above it, so no tid is ever given twice.
    pub tid_lease: u64,
    /// Decisions by tid, while a participant may still ask for them. The first decision
    /// recorded for a tid is final.
    pub decisions: BTreeMap<u64, Decision>,
    /// The tids whose decisions every participant applied, and which were forgotten: no
    /// participant holds them prepared, and none will decide them again.
    pub settled: TidSet,
    /// Master: the send queue and the registered slaves.
    pub send: SendQueue,
    /// Master: the bootstraps of databases whose replication was turned on.
    pub bootstrap: Bootstraps,
    /// Slave: the execution queue.
    pub slave: ExecQueue,
}

impl MetaState {
    /// Applies a command, or refuses it leaving the state as it was.
    pub(super) fn apply(&mut self, cmd: &MetaCommand) -> Result<(MetaOutcome, Vec<Touch>), String> {
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
                        generation: 0,
                    },
                );
                (MetaOutcome::Done, vec![Touch::User(name.clone())])
            }
            MetaCommand::Grant {
                user,
                right,
                db,
                to,
            } => {
                right.check_scope(db.as_deref())?;
                let u = self
                    .users
                    .get(user)
                    .ok_or_else(|| format!("user '{user}' does not exist"))?;
                if u.is_admin && *to == Access::Deny {
                    return Err(format!(
                        "user '{user}' is an administrator, who holds every right: a deny would not hold"
                    ));
                }
                if let (Some(db), Access::Allow | Access::Deny) = (db, to) {
                    self.catalog.db(db)?;
                }
                let u = self.users.get_mut(user).ok_or("user vanished")?;
                u.grants.set(*right, db.as_deref(), *to);
                (MetaOutcome::Done, vec![Touch::User(user.clone())])
            }
            MetaCommand::SetPassword {
                user,
                password_hash,
            } => {
                let u = self
                    .users
                    .get_mut(user)
                    .ok_or_else(|| format!("user '{user}' does not exist"))?;
                u.password_hash = password_hash.clone();
                u.generation += 1;
                (MetaOutcome::Done, vec![Touch::User(user.clone())])
            }
            MetaCommand::DeleteUser { name } => {
                let u = self
                    .users
                    .get(name)
                    .ok_or_else(|| format!("user '{name}' does not exist"))?;
                if u.is_admin && self.users.values().filter(|u| u.is_admin).count() == 1 {
                    return Err(format!(
                        "user '{name}' is the last administrator: create another administrator first"
                    ));
                }
                self.users.remove(name);
                (MetaOutcome::Done, vec![Touch::User(name.clone())])
            }
            MetaCommand::RotateTokenKey {
                key,
                previous_until_ms,
            } => {
                if key.len() != 32 {
                    return Err("a token key has 32 bytes".into());
                }
                let old = self
                    .token_key
                    .replace(key.clone())
                    .ok_or("no token key yet")?;
                self.previous_key = Some(PreviousKey {
                    id: self.token_key_id,
                    key: old,
                    until_ms: *previous_until_ms,
                });
                self.token_key_id += 1;
                (MetaOutcome::Done, vec![Touch::TokenKey])
            }
            MetaCommand::RevokeToken {
                nonce,
                expires_ms,
                now_ms,
            } => {
                self.revoked_tokens.retain(|_, exp| *exp > *now_ms);
                self.revoked_tokens.insert(nonce.clone(), *expires_ms);
                (MetaOutcome::Done, vec![Touch::Revoked])
            }
            MetaCommand::RegisterNode { alias, site } => {
                self.nodes.insert(alias.clone(), site.clone());
                (MetaOutcome::Done, vec![Touch::Node(alias.clone())])
            }
            MetaCommand::LeaseTids { count } => {
                if *count == 0 {
                    return Err("a lease holds at least one tid".into());
                }
                let first = self.next_tid + 1;
                self.next_tid += count;
                self.tid_lease = self.tid_lease.max(self.next_tid);
                (
                    MetaOutcome::Tids {
                        first,
                        last: self.next_tid,
                    },
                    vec![Touch::Counters, Touch::Lease],
                )
            }
            MetaCommand::Decide {
                tid,
                user,
                verdict,
                reason,
                changes,
                task,
                master,
                now_ns,
                replay,
                participants,
            } => {
                if let Some(d) = self.decisions.get(tid) {
                    return Ok((MetaOutcome::Decided(d.clone(), d.task), vec![]));
                }
                if self.settled.contains(*tid) {
                    return Err(format!(
                        "transaction {tid} was decided, and its participants applied the decision, already"
                    ));
                }
                if *tid == 0 || *tid > self.next_tid {
                    return Err(format!("transaction {tid} is unknown"));
                }
                let mut touches = vec![Touch::Decision(*tid), Touch::Counters];
                // Whether the commit makes a task, judged on the catalog before its changes.
                let commit = verdict.is_commit();
                let replicated = match task {
                    Some(t) if commit && *master => self.send.makes_task(
                        t,
                        self.catalog.dbs.get(&t.db).map(|d| d.replication_enabled),
                    ),
                    _ => false,
                };
                let missing_data = replicated && task.as_ref().is_some_and(|t| !t.data_written);
                // A chunk snapshot commits only while its chunk is still to be sent.
                let snapshot_refused = match task.as_deref() {
                    Some(t) if replicated => t.snapshot.and_then(|r| {
                        self.bootstrap
                            .may_send(r.job, r.index, t.for_slave.as_deref())
                    }),
                    _ => None,
                };
                let refused = if commit {
                    replay
                        .iter()
                        .find_map(|r| self.slave.may_finish(r.task_id).err())
                } else {
                    None
                };
                let waiting = participants.clone();
                let mut decision = if let Some(refusal) = &refused {
                    Decision::new(false, refusal.to_string(), waiting)
                } else if missing_data {
                    Decision::new(
                        false,
                        format!(
                            "replication was turned on for '{}' {}",
                            task.as_ref().map_or("", |t| t.db.as_str()),
                            xrepl_proto::task::TURNED_ON_WHILE_RUNNING
                        ),
                        waiting,
                    )
                } else if let Some(why) = snapshot_refused {
                    Decision::new(false, why, waiting)
                } else if commit {
                    match self.catalog.apply_all(changes) {
                        Ok(()) => {
                            // Every database this command changed gets its number as the new
                            // version (placing chunks changes no definition).
                            let version = self.applied + 1;
                            for c in changes {
                                touches.push(Touch::Db(c.db().to_string()));
                                if !matches!(c, CatalogChange::AssignChunks { .. }) {
                                    if let Some(d) = self.catalog.dbs.get_mut(c.db()) {
                                        d.version = version;
                                    }
                                }
                                self.grant_creator(c, user, &mut touches);
                            }
                            Decision::new(true, String::new(), waiting)
                        }
                        Err(e) => Decision::new(false, e, waiting),
                    }
                } else {
                    Decision::new(false, reason.clone(), waiting)
                };
                let task_id = match task {
                    Some(t) if replicated && decision.committed => {
                        let set = self.catalog.dbs.get(&t.db).map_or(0, |d| d.execution_set);
                        let mut sent = vec![];
                        let id = self.send.add(*tid, t, *now_ns, set, &mut sent);
                        Self::touch_send(&mut touches, sent);
                        Some(id)
                    }
                    _ => None,
                };
                decision.task = task_id;
                if let (Some(t), Some(id)) = (task.as_deref(), task_id) {
                    log_task(t, id);
                }
                if decision.committed {
                    let mut jobs = vec![];
                    self.bootstrap_after(
                        changes,
                        task.as_deref(),
                        task_id,
                        user,
                        *now_ns / 1_000_000,
                        &mut jobs,
                    );
                    Self::touch_jobs(&mut touches, jobs);
                }
                if decision.committed {
                    for r in replay {
                        let t = self.slave.finish(r, *now_ns);
                        Self::touch_queue(&mut touches, t);
                    }
                }
                self.decisions.insert(*tid, decision.clone());
                match refused {
                    Some(refusal) => (MetaOutcome::ReplayRefused(decision, refusal), touches),
                    None => (MetaOutcome::Decided(decision, task_id), touches),
                }
            }
            MetaCommand::Settle { node, tids } => {
                let mut touches = vec![];
                let mut forgot = false;
                for tid in tids {
                    let Some(d) = self.decisions.get_mut(tid) else {
                        continue;
                    };
                    let Some(waiting) = d.waiting.as_mut() else {
                        continue;
                    };
                    waiting.retain(|n| n != node);
                    if waiting.is_empty() {
                        self.decisions.remove(tid);
                        self.settled.insert(*tid);
                        forgot = true;
                    }
                    touches.push(Touch::Decision(*tid));
                }
                if forgot {
                    touches.push(Touch::Settled);
                }
                (MetaOutcome::Done, touches)
            }
            MetaCommand::StoreTasks {
                tasks,
                queues,
                now_ns,
                scope,
                me,
            } => {
                let mut touches = vec![];
                let (t, outside) = self
                    .slave
                    .store(tasks, *queues, *now_ns, scope.as_deref(), me);
                Self::touch_queue(&mut touches, t);
                (MetaOutcome::Skipped(outside), touches)
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
            MetaCommand::SwitchSlave { switch } => {
                let mut touches = vec![];
                Self::touch_queue(&mut touches, self.slave.switch(*switch));
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
            MetaCommand::SwitchMaster { switch } => {
                let mut touches = vec![];
                Self::touch_send(&mut touches, self.send.switch(*switch));
                (MetaOutcome::Done, touches)
            }
            MetaCommand::RegisterSlave {
                slave,
                user,
                max,
                now_ms,
            } => {
                let mut touches = vec![];
                Self::touch_send(
                    &mut touches,
                    self.send.register(slave, user, *max, *now_ms)?,
                );
                (MetaOutcome::Done, touches)
            }
            MetaCommand::DropSlave { slave } => {
                let mut touches = vec![];
                Self::touch_send(&mut touches, self.send.drop_slave(slave)?);
                (MetaOutcome::Done, touches)
            }
            MetaCommand::EvictSlave { slave, why } => {
                let mut touches = vec![];
                Self::touch_send(&mut touches, self.send.evict(slave, why)?);
                (MetaOutcome::Done, touches)
            }
            MetaCommand::SlaveProgress {
                slave,
                finished,
                now_ms,
            } => {
                let mut touches = vec![];
                Self::touch_send(&mut touches, self.send.progress(slave, finished, *now_ms)?);
                (MetaOutcome::Done, touches)
            }
            MetaCommand::StartResync {
                db,
                table,
                slave,
                user,
                now_ms,
            } => {
                let d = self.catalog.db(db)?;
                if !d.replication_enabled {
                    return Err(format!("database '{db}' is not replicated"));
                }
                if let Some(t) = table {
                    if !d.tables.contains_key(t) {
                        return Err(format!("table '{t}' does not exist in database '{db}'"));
                    }
                }
                let (id, t) =
                    self.bootstrap
                        .start_resync(db, table.as_deref(), slave, user, *now_ms)?;
                let mut touches = vec![];
                Self::touch_jobs(&mut touches, t);
                (MetaOutcome::Job(id), touches)
            }
            MetaCommand::SeedSlave {
                slave,
                user,
                now_ms,
            } => {
                let mut touches = vec![];
                if !self.bootstrap.runs_for(slave) {
                    let dbs: Vec<String> = self
                        .catalog
                        .dbs
                        .values()
                        .filter(|d| d.replication_enabled)
                        .map(|d| d.path.clone())
                        .collect();
                    for db in dbs {
                        let (_, t) = self
                            .bootstrap
                            .start_resync(&db, None, slave, user, *now_ms)?;
                        Self::touch_jobs(&mut touches, t);
                    }
                }
                (MetaOutcome::Done, touches)
            }
            MetaCommand::EndSnapshotJob { job, why, now_ms } => {
                let mut touches = vec![];
                Self::touch_jobs(&mut touches, self.bootstrap.end(*job, why, *now_ms));
                (MetaOutcome::Done, touches)
            }
            MetaCommand::SkipSnapshotChunk { job, index, now_ms } => {
                let mut touches = vec![];
                Self::touch_jobs(&mut touches, self.bootstrap.skip(*job, *index, *now_ms)?);
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

    fn touch_jobs(touches: &mut Vec<Touch>, changed: Vec<JobTouch>) {
        touches.extend(changed.into_iter().map(|t| match t {
            JobTouch::Job { id, chunks } => Touch::Job { id, chunks },
        }));
    }

    /// What a master's commit means for its bootstraps: a CREATE_DOMAIN task starts one for
    /// every chunk of the database as the commit leaves it; a chunk snapshot's task marks its
    /// chunk sent; turning replication off or dropping the database ends its bootstrap.
    fn bootstrap_after(
        &mut self,
        changes: &[CatalogChange],
        task: Option<&xrepl_proto::task::TaskMeta>,
        task_id: Option<u64>,
        user: &str,
        now_ms: i64,
        touched: &mut Vec<JobTouch>,
    ) {
        for c in changes {
            match c {
                CatalogChange::SetReplication {
                    path,
                    enabled: false,
                } => {
                    tracing::info!(db = %path, "replication turned off for the database");
                    self.bootstrap
                        .end_db(path, "replication was turned off", now_ms, touched)
                }
                CatalogChange::DropDatabase { path } => {
                    self.bootstrap
                        .end_db(path, "the database was dropped", now_ms, touched)
                }
                _ => {}
            }
        }
        let (Some(t), Some(id)) = (task, task_id) else {
            return;
        };
        match (t.op, t.snapshot) {
            (OperationType::CreateDomain, _) => {
                if let Some(d) = self.catalog.dbs.get(&t.db) {
                    self.bootstrap.start(d, user, id, now_ms, touched);
                }
            }
            (OperationType::ResyncTable | OperationType::ResyncDatabase, Some(r)) => {
                if let Some(d) = self.catalog.dbs.get(&t.db) {
                    self.bootstrap.begun(r.job, id, d, now_ms, touched);
                }
            }
            (OperationType::SnapshotChunk, Some(r)) => {
                self.bootstrap.sent(r, id, t.data_bytes, now_ms, touched)
            }
            (OperationType::ResyncEnd, Some(r)) => {
                self.bootstrap.ended_by(r.job, id, now_ms, touched)
            }
            _ => {}
        }
    }

    fn touch_send(touches: &mut Vec<Touch>, changed: Vec<SendTouch>) {
        touches.extend(changed.into_iter().map(|t| match t {
            SendTouch::Repl => Touch::Repl,
            SendTouch::Task(id) => Touch::Task(id),
            SendTouch::Slave(name) => Touch::Slave(name),
        }));
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

    /// The token key numbered `id`, if it signs tokens still at `now_ms`.
    pub fn token_key_numbered(&self, id: u32, now_ms: i64) -> Option<TokenKey> {
        if id == self.token_key_id {
            return self.token_key();
        }
        self.previous_key
            .as_ref()
            .filter(|p| p.id == id && now_ms < p.until_ms)
            .and_then(|p| TokenKey::from_bytes(&p.key))
    }

    pub fn database(&self, path: &str) -> Result<&DatabaseMeta, String> {
        self.catalog.db(path)
    }
}

/// One log line for a task that changes what is replicated (the other tasks are not logged
/// one by one).
fn log_task(t: &xrepl_proto::task::TaskMeta, task_id: u64) {
    let slave = t.for_slave.as_deref().unwrap_or("every slave");
    match t.op {
        OperationType::CreateDomain => {
            tracing::info!(task_id, db = %t.db, "replication turned on for the database")
        }
        OperationType::DropDb => {
            tracing::info!(task_id, db = %t.db, "a replicated database was dropped")
        }
        OperationType::DropTable => {
            tracing::info!(task_id, db = %t.db, table = %t.table, "a replicated table was dropped")
        }
        OperationType::ResyncTable | OperationType::ResyncDatabase => {
            tracing::info!(task_id, db = %t.db, table = %t.table, %slave, "re-sync began")
        }
        OperationType::ResyncEnd => tracing::info!(
            task_id,
            db = %t.db,
            table = %t.table,
            %slave,
            "re-sync sent: the slave puts its copy in place"
        ),
        _ => {}
    }
}
