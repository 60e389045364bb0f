//! The controller's errors: what failed, with context, and how each maps to the client's view.

use std::path::PathBuf;

use xrepl_proto::rpc::{ErrorCode, RemoteError};

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("cannot create the home directory {path}: {source}")]
    CreateHome {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the metadata store at {path}: {source}")]
    OpenStore { path: PathBuf, source: sled::Error },
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
    /// A command that the current state refuses (e.g. a user that exists already).
    #[error("{0}")]
    Refused(String),
    #[error("cannot hash a password: {0}")]
    Hash(String),
}

impl ControllerError {
    /// The error as the client sees it, naming this controller.
    pub fn to_remote(&self, node: &str) -> RemoteError {
        let code = match self {
            ControllerError::Refused(_) => ErrorCode::BadRequest,
            ControllerError::WriterGone => ErrorCode::Unavailable,
            _ => ErrorCode::Internal,
        };
        RemoteError {
            node: node.to_string(),
            code,
            message: self.to_string(),
        }
    }
}
