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

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use xrepl_common::auth::TokenKey;
use xrepl_common::catalog::{Catalog, CatalogChange, DatabaseMeta, Grants, Right};

use crate::error::ControllerError;

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
    Decided(Decision),
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
    pub open: BTreeMap<u64, OpenTx>,
    pub decisions: BTreeMap<u64, Decision>,
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
                xrepl_common::auth::check_user_name(name)?;
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
                (
                    MetaOutcome::Tid(tid),
                    vec![Touch::Open(tid), Touch::Counters],
                )
            }
            MetaCommand::Decide {
                tid,
                commit,
                reason,
                changes,
            } => {
                if let Some(d) = self.decisions.get(tid) {
                    return Ok((MetaOutcome::Decided(d.clone()), vec![]));
                }
                let Some(open) = self.open.remove(tid) else {
                    return Err(format!("transaction {tid} is unknown"));
                };
                let mut touches = vec![Touch::Open(*tid), Touch::Decision(*tid), Touch::Counters];
                let decision = if *commit {
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
                self.decisions.insert(*tid, decision.clone());
                (MetaOutcome::Decided(decision), touches)
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
                _ => match text.as_str() {
                    "m/applied" => s.applied = decode(&k, &v)?,
                    "m/next_tid" => s.next_tid = decode(&k, &v)?,
                    "m/next_table_id" => s.catalog.next_table_id = decode(&k, &v)?,
                    "m/token_key" => s.token_key = Some(v.to_vec()),
                    _ => {
                        return Err(ControllerError::Corrupt {
                            key: text,
                            reason: "unknown key: the metadata was written by another version of xrepl, or is damaged; move the controller's home folder away to start afresh".into(),
                        })
                    }
                },
            }
        }
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
        for (cmd, reply) in group {
            let result = match self.working.apply(&cmd) {
                Ok((outcome, touches)) => {
                    Store::stage(&mut batch, &self.working, &touches);
                    Ok(outcome)
                }
                Err(e) => Err(ControllerError::Refused(e)),
            };
            done.push((cmd, reply, result));
        }
        let written = match self.store.tree.apply_batch(batch) {
            Ok(()) => self.store.db.flush_async().await.map(|_| ()),
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
    use xrepl_common::catalog::PartitionScheme;
    use xrepl_common::value::Vector;

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
                })
                .await;
            assert!(matches!(
                decided,
                Ok(MetaOutcome::Decided(Decision {
                    committed: true,
                    ..
                }))
            ));
            // A second decision for the same tid returns the first.
            let again = m
                .apply(MetaCommand::Decide {
                    tid,
                    commit: false,
                    reason: "late".into(),
                    changes: vec![],
                })
                .await;
            assert!(matches!(
                again,
                Ok(MetaOutcome::Decided(Decision {
                    committed: true,
                    ..
                }))
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
                })
                .await;
            match refused {
                Ok(MetaOutcome::Decided(d)) => {
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
            assert_eq!(s.next_tid, 2);
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
        assert_eq!(m.read(|s| (s.next_tid, s.open.len())), (200, 200));
    }
}
