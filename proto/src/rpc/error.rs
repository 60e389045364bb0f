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
    /// A transaction on several data nodes met a chunk locked by an older one and gave way
    /// (wait-die, so that such transactions never wait for each other in a circle): it was
    /// rolled back; run it again.
    Conflict,
}

/// An error as the user sees it: one line, starting with the node that raised it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{node}: {message}")]
pub struct RemoteError {
    pub node: String,
    pub code: ErrorCode,
    pub message: String,
}
