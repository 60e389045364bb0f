//! The controller's metadata and the one function that changes it.
//!
//! Every change is a [`MetaCommand`]: a serialisable value handed to [`MetaHandle::apply`].
//! One writer task ([`MetaWriter`]) checks it against the state, writes its effect and the
//! command's index in one sled transaction, flushes, and only then publishes the new state and
//! answers. A replicated log can later feed the same commands to every controller replica.
//!
//! sled trees (all flushed before `apply` returns):
//! - `users`: user name → [`User`]
//! - `nodes`: data node alias → site it registered from
//! - `meta`: `applied` → index of the last applied command; `token_key` → session-token secret

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;
use tokio::sync::{mpsc, oneshot};
use xrepl_common::auth::TokenKey;

use crate::error::ControllerError;

/// Commands waiting for the metadata writer.
const APPLY_QUEUE: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// argon2 PHC string; never the password.
    pub password_hash: String,
    pub is_admin: bool,
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
    /// Records the site a data node registered from (a change of site is logged).
    RegisterNode { alias: String, site: String },
}

/// The metadata as the rest of the controller reads it.
#[derive(Debug, Clone, Default)]
pub struct MetaState {
    pub applied: u64,
    pub users: BTreeMap<String, User>,
    pub nodes: BTreeMap<String, String>,
    pub token_key: Option<Vec<u8>>,
}

impl MetaState {
    /// Checks a command against the state; `Err` is the reason it is refused.
    fn check(&self, cmd: &MetaCommand) -> Result<(), String> {
        match cmd {
            MetaCommand::InitTokenKey { key } => {
                if self.token_key.is_some() {
                    return Err("the token key exists already".into());
                }
                if key.len() != 32 {
                    return Err("a token key has 32 bytes".into());
                }
            }
            MetaCommand::CreateUser { name, .. } => {
                xrepl_common::auth::check_user_name(name)?;
                if self.users.contains_key(name) {
                    return Err(format!("user '{name}' exists already"));
                }
            }
            MetaCommand::RegisterNode { .. } => {}
        }
        Ok(())
    }

    fn apply(&mut self, cmd: MetaCommand) {
        self.applied += 1;
        match cmd {
            MetaCommand::InitTokenKey { key } => self.token_key = Some(key),
            MetaCommand::CreateUser {
                name,
                password_hash,
                is_admin,
            } => {
                self.users.insert(
                    name,
                    User {
                        password_hash,
                        is_admin,
                    },
                );
            }
            MetaCommand::RegisterNode { alias, site } => {
                self.nodes.insert(alias, site);
            }
        }
    }

    pub fn token_key(&self) -> Option<TokenKey> {
        self.token_key.as_deref().and_then(TokenKey::from_bytes)
    }
}

struct Trees {
    db: sled::Db,
    meta: sled::Tree,
    users: sled::Tree,
    nodes: sled::Tree,
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

impl Trees {
    fn open(path: &Path) -> Result<Trees, ControllerError> {
        let open = |e| ControllerError::OpenStore {
            path: path.to_path_buf(),
            source: e,
        };
        let db = sled::open(path).map_err(open)?;
        Ok(Trees {
            meta: db.open_tree("meta").map_err(open)?,
            users: db.open_tree("users").map_err(open)?,
            nodes: db.open_tree("nodes").map_err(open)?,
            db,
        })
    }

    fn load(&self) -> Result<MetaState, ControllerError> {
        let mut s = MetaState::default();
        if let Some(v) = self.meta.get("applied")? {
            s.applied = decode(b"applied", &v)?;
        }
        s.token_key = self.meta.get("token_key")?.map(|v| v.to_vec());
        for item in self.users.iter() {
            let (k, v) = item?;
            s.users
                .insert(String::from_utf8_lossy(&k).to_string(), decode(&k, &v)?);
        }
        for item in self.nodes.iter() {
            let (k, v) = item?;
            s.nodes.insert(
                String::from_utf8_lossy(&k).to_string(),
                String::from_utf8_lossy(&v).to_string(),
            );
        }
        Ok(s)
    }

    /// Writes a command's effect and its index atomically.
    fn write(&self, index: u64, cmd: &MetaCommand) -> Result<(), ControllerError> {
        let result: Result<(), TransactionError<()>> = (&self.meta, &self.users, &self.nodes)
            .transaction(|(meta, users, nodes)| {
                meta.insert("applied", encode(&index))?;
                match cmd {
                    MetaCommand::InitTokenKey { key } => {
                        meta.insert("token_key", key.as_slice())?;
                    }
                    MetaCommand::CreateUser {
                        name,
                        password_hash,
                        is_admin,
                    } => {
                        let u = User {
                            password_hash: password_hash.clone(),
                            is_admin: *is_admin,
                        };
                        users.insert(name.as_bytes(), encode(&u))?;
                    }
                    MetaCommand::RegisterNode { alias, site } => {
                        nodes.insert(alias.as_bytes(), site.as_bytes())?;
                    }
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            });
        match result {
            Ok(()) => Ok(()),
            Err(TransactionError::Storage(e)) => Err(ControllerError::Store(e)),
            Err(TransactionError::Abort(())) => Err(ControllerError::Refused(
                "the metadata transaction was aborted".into(),
            )),
        }
    }
}

type ApplyRequest = (MetaCommand, oneshot::Sender<Result<(), ControllerError>>);

/// The clonable way to read and change the metadata.
#[derive(Clone)]
pub struct MetaHandle {
    state: Arc<RwLock<MetaState>>,
    tx: mpsc::Sender<ApplyRequest>,
}

impl MetaHandle {
    /// Opens the store under `path`, loads the state and starts the writer task.
    pub fn open(path: &Path) -> Result<MetaHandle, ControllerError> {
        let trees = Trees::open(path)?;
        let state = Arc::new(RwLock::new(trees.load()?));
        let (tx, rx) = mpsc::channel(APPLY_QUEUE);
        let writer = MetaWriter {
            trees,
            state: state.clone(),
        };
        tokio::spawn(writer.run(rx));
        Ok(MetaHandle { state, tx })
    }

    /// Applies one command: checked, written, flushed, published, in that order.
    pub async fn apply(&self, cmd: MetaCommand) -> Result<(), ControllerError> {
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

/// The single owner of the sled trees.
struct MetaWriter {
    trees: Trees,
    state: Arc<RwLock<MetaState>>,
}

impl MetaWriter {
    async fn run(self, mut rx: mpsc::Receiver<ApplyRequest>) {
        while let Some((cmd, reply)) = rx.recv().await {
            let _ = reply.send(self.apply(cmd).await);
        }
        let _ = self.trees.db.flush_async().await;
    }

    async fn apply(&self, cmd: MetaCommand) -> Result<(), ControllerError> {
        let index = {
            let s = self.read();
            s.check(&cmd).map_err(ControllerError::Refused)?;
            s.applied + 1
        };
        self.trees.write(index, &cmd)?;
        self.trees.db.flush_async().await?;
        match self.state.write() {
            Ok(mut s) => s.apply(cmd),
            Err(poisoned) => poisoned.into_inner().apply(cmd),
        }
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, MetaState> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn commands_survive_a_reopen_and_refusals_change_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let m = MetaHandle::open(dir.path()).expect("open");
            m.apply(MetaCommand::CreateUser {
                name: "alice".into(),
                password_hash: "h".into(),
                is_admin: false,
            })
            .await
            .expect("create");
            let again = m
                .apply(MetaCommand::CreateUser {
                    name: "alice".into(),
                    password_hash: "other".into(),
                    is_admin: true,
                })
                .await;
            assert!(matches!(again, Err(ControllerError::Refused(_))));
            m.apply(MetaCommand::RegisterNode {
                alias: "dnode1".into(),
                site: "127.0.0.1:1".into(),
            })
            .await
            .expect("register");
            assert_eq!(m.read(|s| s.applied), 2);
        }
        // sled releases its lock when the last handle drops; give the writer task a moment.
        let mut reopened = None;
        for _ in 0..50 {
            match MetaHandle::open(dir.path()) {
                Ok(m) => {
                    reopened = Some(m);
                    break;
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
        let m = reopened.expect("reopen");
        m.read(|s| {
            assert_eq!(s.applied, 2);
            assert_eq!(
                s.users
                    .get("alice")
                    .map(|u| (u.password_hash.as_str(), u.is_admin)),
                Some(("h", false))
            );
            assert_eq!(
                s.nodes.get("dnode1").map(String::as_str),
                Some("127.0.0.1:1")
            );
        });
    }
}
