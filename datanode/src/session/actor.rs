//! A session as an actor: requests arrive on a channel, in order, and each runs on the
//! blocking pool (a script may compute for a while) with the session moved in and back out, so
//! no thread is pinned while the session is idle.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use xrepl_core::value::Value;
use xrepl_proto::rpc::{ErrorCode, RemoteError, SessionReply, SessionRequest};
use xrepl_query::lang::ast::{ExprKind, Stmt};

use super::args::{Args, EvalError};
use super::state::Session;
use crate::node::DataNode;

/// Requests of one session waiting to run.
const SESSION_QUEUE: usize = 16;

/// A session's answer: its reply, or the error as the client sees it.
pub type Answer = Result<SessionReply, RemoteError>;

type Job = (SessionRequest, oneshot::Sender<Answer>);

/// The connection's side of a session.
pub struct SessionHandle {
    tx: mpsc::Sender<Job>,
    /// Whether a user is logged in on the session: set by its task after every request,
    /// before the answer is sent.
    logged_in: Arc<AtomicBool>,
}

impl SessionHandle {
    /// Starts the session's actor.
    pub fn start(node: Arc<DataNode>) -> SessionHandle {
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        let session = Session::new(node);
        let logged_in = session.logged_in();
        tokio::spawn(session_loop(session, rx));
        SessionHandle { tx, logged_in }
    }

    /// Whether a user is logged in on the session (as of its last answered request).
    pub fn logged_in(&self) -> bool {
        self.logged_in.load(Ordering::Acquire)
    }

    pub async fn request(&self, req: SessionRequest) -> Answer {
        let (tx, rx) = oneshot::channel();
        let gone = || RemoteError {
            node: String::new(),
            code: ErrorCode::Internal,
            message: "the session has ended".into(),
        };
        self.tx.send((req, tx)).await.map_err(|_| gone())?;
        rx.await.unwrap_or_else(|_| Err(gone()))
    }
}

async fn session_loop(mut session: Session, mut rx: mpsc::Receiver<Job>) {
    let logged_in = session.logged_in();
    while let Some((req, reply)) = rx.recv().await {
        let node = session.node.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let resp = session.handle(req);
            (session, resp)
        })
        .await;
        match joined {
            Ok((s, resp)) => {
                session = s;
                session.publish_login();
                let _ = reply.send(resp);
            }
            Err(e) => {
                // The session is gone, and its user with it.
                logged_in.store(false, Ordering::Release);
                tracing::error!("a session failed and was closed: {e}");
                let _ = reply.send(Err(node.error(
                    ErrorCode::Internal,
                    "internal error; the session was closed (see the data node's log)",
                )));
                return;
            }
        }
    }
}

impl Session {
    fn handle(&mut self, req: SessionRequest) -> Answer {
        match req {
            SessionRequest::Login { user, password } => {
                self.login(&user, &password).map_err(|e| self.remote(e))?;
                let u = self
                    .user
                    .as_ref()
                    .map(|u| (u.user.clone(), u.is_admin, u.token.clone()));
                let (user, is_admin, token) = u.unwrap_or_default();
                Ok(SessionReply::LoggedIn {
                    user,
                    is_admin,
                    token,
                })
            }
            SessionRequest::Logout => {
                self.logout();
                Ok(SessionReply::Done)
            }
            SessionRequest::Run { script } => {
                let (outputs, error) = self.run(&script);
                Ok(SessionReply::Ran { outputs, error })
            }
            SessionRequest::Call { function, args } => {
                if self.user.is_none() {
                    return Err(self.node.error(
                        ErrorCode::NotLoggedIn,
                        "Not logged in: call login(user, password) first.",
                    ));
                }
                self.call(&function, Args::positional(args))
                    .map(SessionReply::Value)
                    .map_err(|e| self.remote(e))
            }
        }
    }

    /// Runs a script statement by statement; stops at the first error.
    pub fn run(&mut self, script: &str) -> (Vec<Value>, Option<RemoteError>) {
        let stmts = match xrepl_query::lang::parse(script) {
            Ok(s) => s,
            Err(e) => {
                return (
                    Vec::new(),
                    Some(self.node.error(ErrorCode::Syntax, e.to_string())),
                )
            }
        };
        let multi_line = script.trim().contains('\n');
        let mut outputs = Vec::new();
        for stmt in &stmts {
            if let Err(e) = self.exec_top(stmt, &mut outputs) {
                let message = match (multi_line, e.span) {
                    (true, Some(span)) => format!("line {}: {}", span.line, e.message),
                    _ => e.message,
                };
                return (outputs, Some(self.remote(EvalError { message, ..e })));
            }
        }
        (outputs, None)
    }

    /// A statement at the top of a script: only `login(...)` runs before a login.
    fn exec_top(&mut self, stmt: &Stmt, out: &mut Vec<Value>) -> Result<(), EvalError> {
        if self.user.is_none() && !is_login_call(stmt) {
            return Err(EvalError::not_logged_in());
        }
        self.exec(stmt, out)
    }
}

fn is_login_call(stmt: &Stmt) -> bool {
    let Stmt::Expr(e) = stmt else {
        return false;
    };
    matches!(&e.kind, ExprKind::Call { func, .. } if matches!(&func.kind, ExprKind::Ident(n) if n == "login"))
}
