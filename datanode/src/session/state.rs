//! A client session's state: the logged-in user and the variables, living as long as the
//! connection; and what every function needs of it: the user's token, the controller, the
//! catalog as the user may see it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use xrepl_core::catalog::{DatabaseMeta, Right, TableMeta};
use xrepl_core::value::Value;
use xrepl_proto::rpc::{ErrorCode, RemoteError};

use super::args::{not_found, Args, EvalError};
use crate::node::DataNode;

/// A function of the language: it runs on the session with its name (one handler may serve
/// several names) and its evaluated arguments.
pub type Handler = fn(&mut Session, &str, Args) -> Result<Value, EvalError>;

/// Who is logged in on a session, and the controller's token for them.
#[derive(Debug, Clone)]
pub struct LoggedIn {
    pub user: String,
    pub is_admin: bool,
    pub token: String,
}

pub struct Session {
    pub node: Arc<DataNode>,
    /// The client's address, as this node sees it (failed logins are throttled by it).
    pub peer: String,
    pub user: Option<LoggedIn>,
    pub vars: HashMap<String, Value>,
    /// The strongest right the controller found the user to hold, per database: a write
    /// that needs no more plans from the node's catalog cache (the controller checks the
    /// right again with the commit).
    pub verified: HashMap<String, Right>,
    /// What `print` printed during the current request, in order.
    pub printed: Vec<String>,
    /// Whether a user is logged in, as the connection sees it ([`Session::logged_in`]): set
    /// after every request, before its answer goes out.
    logged_in: Arc<AtomicBool>,
}

impl Session {
    pub fn new(node: Arc<DataNode>, peer: String) -> Session {
        Session {
            node,
            peer,
            user: None,
            vars: HashMap::new(),
            verified: HashMap::new(),
            printed: Vec::new(),
            logged_in: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The flag that tells, without asking the session's task, whether a user is logged in:
    /// the server loop reads it to decide how much the connection may send.
    pub fn logged_in(&self) -> Arc<AtomicBool> {
        self.logged_in.clone()
    }

    /// Publishes whether a user is logged in now (after a request: a login, a script that
    /// called `login(...)`, a logout).
    pub fn publish_login(&self) {
        self.logged_in.store(self.user.is_some(), Ordering::Release);
    }

    /// Runs `f` to its end from the session's thread (the blocking pool, never a runtime
    /// worker).
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.node.block_on(f)
    }

    /// Logs in through the controller, replacing any earlier user.
    pub fn login(&mut self, user: &str, password: &str) -> Result<(), EvalError> {
        let link = self.node.link.clone();
        let peer = self.peer.clone();
        let l = self.block_on(async move { link.login(user, password, &peer).await })?;
        if self.user.as_ref().is_some_and(|u| u.user != l.user) {
            self.vars.clear();
            self.verified.clear();
        }
        self.user = Some(LoggedIn {
            user: l.user,
            is_admin: l.is_admin,
            token: l.token,
        });
        Ok(())
    }

    /// Logs out: the controller refuses the session's token from now on, and the session
    /// forgets the user and the variables (they may hold data read with the user's rights).
    pub fn logout(&mut self) -> Result<(), EvalError> {
        let Some(u) = self.user.take() else {
            return Ok(());
        };
        self.forget_user();
        let link = self.node.link.clone();
        match self.block_on(async move { link.logout(&u.token).await }) {
            Ok(()) => Ok(()),
            // Logged out already, or the user is gone: nothing is left to end.
            Err(e) if e.code == ErrorCode::NotLoggedIn => Ok(()),
            Err(e) => {
                tracing::warn!(user = %u.user, "logout: the controller was not told, the token stays valid until it expires: {e}");
                Err(e.into())
            }
        }
    }

    fn forget_user(&mut self) {
        self.user = None;
        self.vars.clear();
        self.verified.clear();
    }

    /// Before each request of a logged-in session: asks the controller whether the session
    /// still holds (the user exists, its password did not change, no logout elsewhere), so a
    /// change takes effect at the next call on every node. A session that no longer holds
    /// forgets its user; a token past half its life is replaced by a fresh one.
    pub fn check_session(&mut self) -> Result<(), EvalError> {
        let Some(u) = &self.user else {
            return Ok(());
        };
        let token = u.token.clone();
        let link = self.node.link.clone();
        match self.block_on(async move { link.check_session(&token).await }) {
            Ok(c) => {
                if let Some(u) = self.user.as_mut() {
                    u.is_admin = c.is_admin;
                    if let Some(t) = c.renewed {
                        u.token = t;
                    }
                }
                Ok(())
            }
            Err(e) if e.code == ErrorCode::NotLoggedIn => {
                self.forget_user();
                Err(e.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `changePwd(old, new)`: the logged-in user's own password; the session goes on with
    /// the new token (every other session of the user ends).
    pub fn change_password(&mut self, old: &str, new: &str) -> Result<(), EvalError> {
        let token = self.token()?;
        let link = self.node.link.clone();
        let peer = self.peer.clone();
        let l =
            self.block_on(async move { link.change_password(&token, old, new, &peer).await })?;
        if let Some(u) = self.user.as_mut() {
            u.token = l.token;
        }
        Ok(())
    }

    /// The logged-in user's token.
    pub fn token(&self) -> Result<String, EvalError> {
        self.user
            .as_ref()
            .map(|u| u.token.clone())
            .ok_or_else(EvalError::not_logged_in)
    }

    /// Refuses `name` unless an administrator is logged in.
    pub fn require_admin(&self, name: &str) -> Result<(), EvalError> {
        match &self.user {
            Some(u) if u.is_admin => Ok(()),
            Some(u) => Err(EvalError::new(
                ErrorCode::AccessDenied,
                format!(
                    "{name} needs administrator rights; user '{}' is not an administrator",
                    u.user
                ),
            )),
            None => Err(EvalError::not_logged_in()),
        }
    }

    /// Runs a function on the controller as the session's user.
    pub fn controller_call(&self, function: &str, args: Vec<Value>) -> Result<Value, EvalError> {
        let token = self.token()?;
        let link = self.node.link.clone();
        Ok(self.block_on(async move { link.call_function(&token, function, args).await })?)
    }

    /// A database's metadata, checking `need` on it (`None` when it does not exist); the
    /// node's catalog cache keeps what it read.
    pub fn fetch_db(
        &self,
        path: &str,
        need: Option<Right>,
    ) -> Result<Option<DatabaseMeta>, EvalError> {
        let token = self.token()?;
        let link = self.node.link.clone();
        let d = self.block_on(async move { link.database(&token, path, need).await })?;
        match &d {
            Some(d) => {
                self.node.catalog.put(d.clone());
            }
            None => self.node.catalog.forget(path),
        }
        Ok(d)
    }

    /// A database's metadata, which must exist.
    pub fn db_meta(&self, path: &str, need: Option<Right>) -> Result<DatabaseMeta, EvalError> {
        self.fetch_db(path, need)?
            .ok_or_else(|| not_found(format!("database '{path}' does not exist")))
    }

    /// A table's metadata and its database's, which must exist.
    pub fn table_meta(
        &self,
        db: &str,
        table: &str,
        need: Option<Right>,
    ) -> Result<(DatabaseMeta, TableMeta), EvalError> {
        let d = self.db_meta(db, need)?;
        let t = d.tables.get(table).cloned().ok_or_else(|| {
            not_found(format!("table '{table}' does not exist in database '{db}'"))
        })?;
        Ok((d, t))
    }

    /// An error as the client sees it, naming the node that raised it.
    pub fn remote(&self, e: EvalError) -> RemoteError {
        let mut r = self.node.error(e.code, e.message);
        if let Some(n) = e.node {
            r.node = n;
        }
        r
    }
}
