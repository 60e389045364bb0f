//! The data node's errors.

#[derive(Debug, thiserror::Error)]
pub enum DataNodeError {
    #[error("cannot create the home directory {path}: {source}")]
    Home {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the storage: {0}")]
    Storage(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    /// The controller holds another cluster key.
    #[error("{0}")]
    NotAMember(String),
}

/// A refusal as the other side sees it, naming the node that raised it.
pub fn refusal(
    node: &str,
    code: xrepl_proto::rpc::ErrorCode,
    message: impl Into<String>,
) -> xrepl_proto::rpc::RemoteError {
    xrepl_proto::rpc::RemoteError {
        node: node.to_string(),
        code,
        message: message.into(),
    }
}
