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
}
