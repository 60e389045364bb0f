//! The Rust client API: what the console does, for programs (benchmarks, replication tools).
//!
//! ```no_run
//! # async fn demo() -> Result<(), xrepl_proto::client::ClientError> {
//! use xrepl_proto::client::Client;
//! let c = Client::connect("127.0.0.1:8849", "admin", "123456").await?;
//! let rows = c.query("select count(*) from loadTable(\"dfs://db\", \"t\")").await?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use crate::rpc::{
    ClientTls, PeerKind, RemoteError, RpcClient, RpcError, SessionReply, SessionRequest,
};
use xrepl_core::config::defaults;
use xrepl_core::value::{Scalar, Table, Value};

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The node refused or a statement failed.
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error("unexpected answer: {0}")]
    Unexpected(String),
}

/// A logged-in session on a data node.
pub struct Client {
    rpc: RpcClient,
}

impl Client {
    /// Connects to a data node in plain text and logs in.
    pub async fn connect(host: &str, user: &str, password: &str) -> Result<Client, ClientError> {
        Client::connect_with(host, user, password, &ClientTls::plain()).await
    }

    /// Connects to a data node (over TLS if `tls` says so) and logs in.
    pub async fn connect_with(
        host: &str,
        user: &str,
        password: &str,
        tls: &ClientTls,
    ) -> Result<Client, ClientError> {
        let rpc = RpcClient::connect(
            host,
            PeerKind::Client,
            tls,
            defaults::MAX_FRAME_SIZE as usize,
            Duration::from_secs(5),
        )
        .await?;
        let c = Client { rpc };
        c.request(SessionRequest::Login {
            user: user.to_string(),
            password: password.to_string(),
        })
        .await?;
        Ok(c)
    }

    async fn request(&self, r: SessionRequest) -> Result<SessionReply, ClientError> {
        Ok(self.rpc.call(r).await??)
    }

    /// Runs a script; returns what its statements printed, or the first error.
    pub async fn run(&self, script: &str) -> Result<Vec<Value>, ClientError> {
        match self
            .request(SessionRequest::Run {
                script: script.to_string(),
            })
            .await?
        {
            SessionReply::Ran {
                outputs,
                error: None,
            } => Ok(outputs),
            SessionReply::Ran { error: Some(e), .. } => Err(e.into()),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Calls one function with values, e.g. `call("tableInsert", [table_ref, data])`.
    pub async fn call(&self, function: &str, args: Vec<Value>) -> Result<Value, ClientError> {
        match self
            .request(SessionRequest::Call {
                function: function.to_string(),
                args,
            })
            .await?
        {
            SessionReply::Value(v) => Ok(v),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Appends `data` to a DFS table in one transaction; returns the rows written.
    pub async fn append(&self, db: &str, table: &str, data: Table) -> Result<i64, ClientError> {
        let target = Value::TableRef {
            db: db.to_string(),
            table: table.to_string(),
        };
        match self
            .call("tableInsert", vec![target, Value::Table(data)])
            .await?
        {
            Value::Scalar(Scalar::Int(n)) => Ok(i64::from(n)),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Runs a `select` and returns its table.
    pub async fn query(&self, sql: &str) -> Result<Table, ClientError> {
        match self.run(sql).await?.pop() {
            Some(Value::Table(t)) => Ok(t),
            other => Err(ClientError::Unexpected(format!(
                "a select should return a table, got {other:?}"
            ))),
        }
    }
}
