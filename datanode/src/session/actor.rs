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
    /// Starts the session's actor for a client connected from `peer`.
    pub fn start(node: Arc<DataNode>, peer: String) -> SessionHandle {
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        let session = Session::new(node, peer);
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
                self.logout().map_err(|e| self.remote(e))?;
                Ok(SessionReply::Done)
            }
            SessionRequest::Run { script } => {
                if let Err(e) = self.check_session() {
                    return Ok(SessionReply::Ran {
                        outputs: Vec::new(),
                        error: Some(self.remote(e)),
                    });
                }
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
                self.check_session().map_err(|e| self.remote(e))?;
                self.call(&function, Args::positional(args))
                    .map(SessionReply::Value)
                    .map_err(|e| self.remote(e))
            }
        }
    }

    /// Runs a script statement by statement; stops at the first error. Before a login, only
    /// a short script that begins with `login` is even parsed.
    pub fn run(&mut self, script: &str) -> (Vec<Value>, Option<RemoteError>) {
        if self.user.is_none() && !may_parse_before_login(script) {
            return (Vec::new(), Some(self.remote(EvalError::not_logged_in())));
        }
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

/// Most bytes of a script parsed before its session logged in (the connection's own limit
/// before a login is as small).
const PRE_LOGIN_SCRIPT: usize = 64 * 1024;

/// Whether a session that has not logged in may have `script` parsed: it is short and its
/// first statement, after blanks and comments, calls `login`.
fn may_parse_before_login(script: &str) -> bool {
    if script.len() > PRE_LOGIN_SCRIPT {
        return false;
    }
    let mut rest = script;
    loop {
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix("//") {
            rest = r.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map_or("", |(_, after)| after);
        } else {
            break;
        }
    }
    rest.strip_prefix("login")
        .is_some_and(|r| r.trim_start().starts_with('('))
}

fn is_login_call(stmt: &Stmt) -> bool {
    let Stmt::Expr(e) = stmt else {
        return false;
    };
    matches!(&e.kind, ExprKind::Call { func, .. } if matches!(&func.kind, ExprKind::Ident(n) if n == "login"))
}

#[cfg(test)]
mod tests {
    use super::may_parse_before_login;

    #[test]
    fn only_a_script_that_begins_with_login_is_parsed_before_a_login() {
        for ok in [
            "login(\"admin\", \"123456\")",
            "  // a comment\n/* another */ login (`a, `b); select * from t",
        ] {
            assert!(may_parse_before_login(ok), "{ok}");
        }
        for refused in [
            "select * from t",
            "loginx = 1",
            "x = login(\"a\", \"b\")",
            "// login(\"a\", \"b\")",
            "/* unclosed login(",
            "",
        ] {
            assert!(!may_parse_before_login(refused), "{refused}");
        }
        let long = format!("login(\"a\", \"b\")\n{}", "x = 1\n".repeat(20_000));
        assert!(!may_parse_before_login(&long));
    }
}
