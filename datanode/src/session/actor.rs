//! A session as an actor: requests arrive on a channel, in order, and each runs on the
//! blocking pool (a script may compute for a while) with the session moved in and back out, so
//! no thread is pinned while the session is idle.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use xrepl_core::value::{Scalar, Value};
use xrepl_proto::rpc::{ErrorCode, RemoteError, SessionReply, SessionRequest};
use xrepl_query::lang::ast::{ExprKind, Stmt};

use super::args::{Args, EvalError};
use super::state::Session;
use crate::node::DataNode;

/// Requests of one session waiting to run.
const SESSION_QUEUE: usize = 16;

/// A session's answer: its reply, or the error as the client sees it.
pub type Answer = Result<SessionReply, RemoteError>;

/// A request of a DolphinDB API client, as its connection decoded it.
#[derive(Debug)]
pub enum ApiRequest {
    /// `connect` with a login, or the client's `login(user, password)`.
    Login { user: String, password: String },
    /// `script`: its last statement's value is the answer.
    Script(String),
    /// `function`: `function` is a name or a partial application (`tableInsert{t}`).
    Call { function: String, args: Vec<Value> },
    /// `variable`: assigns session variables (the client's `upload`).
    Upload {
        names: Vec<String>,
        values: Vec<Value>,
    },
}

/// The answer to an [`ApiRequest`]: what `print` printed, then the value (`Void` for none) or
/// the error.
#[derive(Debug)]
pub struct ApiAnswer {
    pub printed: Vec<String>,
    pub result: Result<Value, RemoteError>,
}

/// A request waiting in a session's queue.
enum Request {
    Wire(SessionRequest),
    Api(ApiRequest),
}

/// Where a request's answer goes.
enum Reply {
    Wire(oneshot::Sender<Answer>),
    Api(oneshot::Sender<ApiAnswer>),
}

/// A request's answer, to be sent once the session is back from the blocking pool.
enum Done {
    Wire(Answer),
    Api(ApiAnswer),
}

impl Reply {
    fn send(self, done: Done) {
        match (self, done) {
            (Reply::Wire(tx), Done::Wire(a)) => {
                let _ = tx.send(a);
            }
            (Reply::Api(tx), Done::Api(a)) => {
                let _ = tx.send(a);
            }
            // A request is answered in its own kind; nothing else is built.
            (Reply::Wire(_), Done::Api(_)) | (Reply::Api(_), Done::Wire(_)) => {}
        }
    }

    fn fail(self, e: RemoteError) {
        match self {
            Reply::Wire(tx) => {
                let _ = tx.send(Err(e));
            }
            Reply::Api(tx) => {
                let _ = tx.send(ApiAnswer {
                    printed: Vec::new(),
                    result: Err(e),
                });
            }
        }
    }
}

type Job = (Request, Reply);

/// The connection's side of a session.
pub struct SessionHandle {
    tx: mpsc::Sender<Job>,
    /// Whether a user is logged in on the session: set by its task after every request,
    /// before the answer is sent.
    logged_in: Arc<AtomicBool>,
}

fn gone() -> RemoteError {
    RemoteError {
        node: String::new(),
        code: ErrorCode::Internal,
        message: "the session has ended".into(),
    }
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
        self.tx
            .send((Request::Wire(req), Reply::Wire(tx)))
            .await
            .map_err(|_| gone())?;
        rx.await.unwrap_or_else(|_| Err(gone()))
    }

    /// Runs a DolphinDB API client's request.
    pub async fn api(&self, req: ApiRequest) -> ApiAnswer {
        let failed = |e| ApiAnswer {
            printed: Vec::new(),
            result: Err(e),
        };
        let (tx, rx) = oneshot::channel();
        if self
            .tx
            .send((Request::Api(req), Reply::Api(tx)))
            .await
            .is_err()
        {
            return failed(gone());
        }
        rx.await.unwrap_or_else(|_| failed(gone()))
    }
}

async fn session_loop(mut session: Session, mut rx: mpsc::Receiver<Job>) {
    let logged_in = session.logged_in();
    while let Some((req, reply)) = rx.recv().await {
        let node = session.node.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let done = match req {
                Request::Wire(r) => Done::Wire(session.handle(r)),
                Request::Api(r) => Done::Api(session.handle_api(r)),
            };
            (session, done)
        })
        .await;
        match joined {
            Ok((s, done)) => {
                session = s;
                session.publish_login();
                reply.send(done);
            }
            Err(e) => {
                // The session is gone, and its user with it.
                logged_in.store(false, Ordering::Release);
                tracing::error!("a session failed and was closed: {e}");
                reply.fail(node.error(
                    ErrorCode::Internal,
                    "internal error; the session was closed (see the data node's log)",
                ));
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
    /// a short script that begins with `login` is even parsed. What `print` printed is among
    /// the values, as STRINGs, where it was printed.
    pub fn run(&mut self, script: &str) -> (Vec<Value>, Option<RemoteError>) {
        let ran = self.run_script(script, true);
        (ran.outputs, ran.error)
    }

    /// [`Session::run`], keeping what `print` printed apart (in `self.printed`) when
    /// `merge_printed` is false.
    fn run_script(&mut self, script: &str, merge_printed: bool) -> Ran {
        let mut ran = Ran {
            outputs: Vec::new(),
            error: None,
            last_gave_value: false,
        };
        if self.user.is_none() && !may_parse_before_login(script) {
            ran.error = Some(self.remote(EvalError::not_logged_in()));
            return ran;
        }
        let stmts = match xrepl_query::lang::parse(script) {
            Ok(s) => s,
            Err(e) => {
                ran.error = Some(self.node.error(ErrorCode::Syntax, e.to_string()));
                return ran;
            }
        };
        let multi_line = script.trim().contains('\n');
        for stmt in &stmts {
            let before = ran.outputs.len();
            let result = self.exec_top(stmt, &mut ran.outputs);
            ran.last_gave_value = ran.outputs.len() > before && matches!(stmt, Stmt::Expr(_));
            if merge_printed && !self.printed.is_empty() {
                let printed = std::mem::take(&mut self.printed)
                    .into_iter()
                    .map(|p| Value::Scalar(Scalar::String(p)));
                ran.outputs.splice(before..before, printed);
            }
            if let Err(e) = result {
                let message = match (multi_line, e.span) {
                    (true, Some(span)) => format!("line {}: {}", span.line, e.message),
                    _ => e.message,
                };
                ran.error = Some(self.remote(EvalError { message, ..e }));
                return ran;
            }
        }
        ran
    }

    /// Answers a DolphinDB API client's request: a script's last value, a call's result,
    /// an upload's nothing; a DFS table handle is sent as its rows.
    fn handle_api(&mut self, req: ApiRequest) -> ApiAnswer {
        self.printed.clear();
        let result = self.api_result(req).and_then(|v| match v {
            Value::TableRef { db, table } => self.select_all(&db, &table),
            v => Ok(v),
        });
        ApiAnswer {
            printed: std::mem::take(&mut self.printed),
            result: result.map_err(|e| self.remote(e)),
        }
    }

    fn api_result(&mut self, req: ApiRequest) -> Result<Value, EvalError> {
        if let ApiRequest::Login { user, password } = &req {
            self.login(user, password)?;
            return Ok(Value::Void);
        }
        if let ApiRequest::Call { function, args } = &req {
            // The client's `login(user, password, false)`.
            if function == "login" {
                let args = Args::positional(args.clone());
                return self.call("login", args);
            }
        }
        if let ApiRequest::Script(script) = &req {
            if self.user.is_none() {
                // Only `login(...)` runs before a login; `run_script` says so.
                return self.api_script(script);
            }
        }
        if self.user.is_none() {
            return Err(EvalError::not_logged_in());
        }
        self.check_session()?;
        match req {
            ApiRequest::Login { .. } => Ok(Value::Void),
            ApiRequest::Script(script) => self.api_script(&script),
            ApiRequest::Call { function, args } => self.call_text(&function, args),
            ApiRequest::Upload { names, values } => {
                self.upload(names, values)?;
                Ok(Value::Void)
            }
        }
    }

    /// A script's last statement's value, if it is an expression (an assignment gives none).
    fn api_script(&mut self, script: &str) -> Result<Value, EvalError> {
        let mut ran = self.run_script(script, false);
        if let Some(e) = ran.error {
            return Err(EvalError {
                node: Some(e.node),
                ..EvalError::new(e.code, e.message)
            });
        }
        Ok(match ran.outputs.pop() {
            Some(v) if ran.last_gave_value => v,
            _ => Value::Void,
        })
    }

    /// Assigns uploaded values to session variables, all or none.
    fn upload(&mut self, names: Vec<String>, values: Vec<Value>) -> Result<(), EvalError> {
        if names.len() != values.len() {
            return Err(EvalError::runtime(format!(
                "{} names for {} uploaded values",
                names.len(),
                values.len()
            )));
        }
        for n in &names {
            let ok = n
                .chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
                && n.chars().all(|c| c.is_alphanumeric() || c == '_');
            if !ok {
                return Err(EvalError::runtime(format!(
                    "'{n}' cannot name a variable: use letters, digits and '_'"
                )));
            }
            super::eval::not_a_function(n)?;
        }
        self.vars.extend(names.into_iter().zip(values));
        Ok(())
    }

    /// Every row of a DFS table, for a client that asked for the table itself.
    fn select_all(&mut self, db: &str, table: &str) -> Result<Value, EvalError> {
        self.api_script(&format!("select * from loadTable({db:?}, {table:?})"))
    }

    /// A statement at the top of a script: only `login(...)` runs before a login.
    fn exec_top(&mut self, stmt: &Stmt, out: &mut Vec<Value>) -> Result<(), EvalError> {
        if self.user.is_none() && !is_login_call(stmt) {
            return Err(EvalError::not_logged_in());
        }
        self.exec(stmt, out)
    }
}

/// What a script gave: the values shown, the error that stopped it, and whether the last
/// value is its last statement's.
struct Ran {
    outputs: Vec<Value>,
    error: Option<RemoteError>,
    last_gave_value: bool,
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
