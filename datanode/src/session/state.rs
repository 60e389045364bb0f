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
    pub user: Option<LoggedIn>,
    pub vars: HashMap<String, Value>,
    /// The strongest right the controller found the user to hold, per database: a write
    /// that needs no more plans from the node's catalog cache (the controller checks the
    /// right again with the commit).
    pub verified: HashMap<String, Right>,
    /// Whether a user is logged in, as the connection sees it ([`Session::logged_in`]): set
    /// after every request, before its answer goes out.
    logged_in: Arc<AtomicBool>,
}

impl Session {
    pub fn new(node: Arc<DataNode>) -> Session {
        Session {
            node,
            user: None,
            vars: HashMap::new(),
            verified: HashMap::new(),
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
        let l = self.block_on(async move { link.login(user, password).await })?;
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

    /// Forgets the user and the variables (they may hold data read with the user's rights).
    pub fn logout(&mut self) {
        self.user = None;
        self.vars.clear();
        self.verified.clear();
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
