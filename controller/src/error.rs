//! The controller's errors: what failed, with context, and how each maps to the client's view.

use std::path::PathBuf;

use xrepl_proto::rpc::{ErrorCode, RemoteError};

use crate::slave::queue::FinishRefused;

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("cannot create the home directory {path}: {source}")]
    CreateHome {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("metadata store: {0}")]
    Log(#[from] xrepl_store::StoreError),
    #[error("metadata store: {0}")]
    Store(#[from] sled::Error),
    #[error("damaged metadata record '{key}': {reason}")]
    Corrupt { key: String, reason: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("the metadata writer has stopped")]
    WriterGone,
    /// Writing a group of commands failed: each may or may not be on disk, so its outcome is
    /// not known (a transaction's participants keep their prepared data and ask later).
    #[error("the metadata store failed, so the outcome is not known: {0}")]
    WriteFailed(String),
    /// A command that the current state refuses (e.g. a user that exists already).
    #[error("{0}")]
    Refused(String),
    #[error("cannot hash a password: {0}")]
    Hash(String),
    /// The metadata answered a command with an outcome that command does not produce.
    #[error("the metadata answered {0}, which this command does not produce")]
    Outcome(String),
    /// A slave's replay of a task that may not finish: rolled back.
    #[error("{0}")]
    ReplayRefused(FinishRefused),
}

impl ControllerError {
    /// The error as the client sees it, naming this controller.
    pub fn to_remote(&self, node: &str) -> RemoteError {
        let code = match self {
            ControllerError::Refused(_) => ErrorCode::BadRequest,
            ControllerError::WriterGone | ControllerError::WriteFailed(_) => ErrorCode::Unavailable,
            // Every refused replay is rolled back; the data node tells a duplicate (the task
            // is applied) from the rest by asking nothing more: the controller settled it.
            ControllerError::ReplayRefused(_) => ErrorCode::AlreadyApplied,
            ControllerError::CreateHome { .. }
            | ControllerError::Log(_)
            | ControllerError::Store(_)
            | ControllerError::Corrupt { .. }
            | ControllerError::Bind { .. }
            | ControllerError::Hash(_)
            | ControllerError::Outcome(_) => ErrorCode::Internal,
        };
        refusal(node, code, self.to_string())
    }
}

/// A refusal as the client sees it, naming the node that refused.
pub fn refusal(node: &str, code: ErrorCode, message: impl Into<String>) -> RemoteError {
    RemoteError {
        node: node.to_string(),
        code,
        message: message.into(),
    }
}
