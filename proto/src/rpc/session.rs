//! The session family: what a client (the console, a program) asks of the data node it is
//! connected to, and the answers.

use serde::{Deserialize, Serialize};
use xrepl_core::value::Value;

use super::error::RemoteError;

/// Requests a data node answers for a client session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SessionRequest {
    Login {
        user: String,
        password: String,
    },
    Logout,
    /// Runs a script: one or more statements.
    Run {
        script: String,
    },
    /// Calls one function with values, without script text (the Rust client API).
    Call {
        function: String,
        args: Vec<Value>,
    },
}

/// A session's successful answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SessionReply {
    Done,
    LoggedIn {
        user: String,
        is_admin: bool,
        token: String,
    },
    Value(Value),
    /// What a script printed: one value per statement that shows one (not assignments), and
    /// the error that stopped it, if any. Statements before the error did run.
    Ran {
        outputs: Vec<Value>,
        error: Option<RemoteError>,
    },
}
