//! Errors as the other side sees them: what kind, and one line naming the node that raised it.

use serde::{Deserialize, Serialize};

/// What kind of failure, so that a client can react without parsing the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    NotLoggedIn,
    AccessDenied,
    BadRequest,
    Syntax,
    NotFound,
    Runtime,
    Unavailable,
    Internal,
    /// A slave's replay of a task that is finished already: it was rolled back.
    AlreadyApplied,
    /// A transaction planned against a database's metadata that has changed since: it was
    /// rolled back; plan it again against the current metadata.
    StaleCatalog,
}

/// An error as the user sees it: one line, starting with the node that raised it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{node}: {message}")]
pub struct RemoteError {
    pub node: String,
    pub code: ErrorCode,
    pub message: String,
}
