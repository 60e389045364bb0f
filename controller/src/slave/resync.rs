//! `resyncClusterReplicationTable(dbName, tableName)` and
//! `resyncClusterReplicationDatabase(dbName)` on a slave controller: the master sends the table
//! (the database) afresh, as tasks for this slave alone (a RESYNC_TABLE or RESYNC_DATABASE,
//! then a SNAPSHOT_CHUNK per chunk); applied in order, they replace the slave's copy with the
//! master's as of those tasks, and the later tasks follow. How an operator repairs drift after
//! a skip or a lost task. See `controller/src/master/bootstrap.rs`.

use xrepl_core::value::{Scalar, Value};
use xrepl_proto::master_client::MasterClient;
use xrepl_proto::rpc::{ErrorCode, RemoteError};

use super::Slave;
use crate::auth::Caller;

impl Slave {
    /// Starts a re-sync of `table` of `db` (`None`: the whole database) on the master; answers
    /// a line that names the job.
    pub async fn resync(
        &self,
        caller: &Caller,
        db: &str,
        table: Option<&str>,
    ) -> Result<Value, RemoteError> {
        let Some(master) = self.cfg.master_ctl.clone() else {
            return Err(self.refuse(
                ErrorCode::BadRequest,
                "this slave names no master controller",
            ));
        };
        let unreachable = |e: xrepl_proto::client::ClientError| match e {
            xrepl_proto::client::ClientError::Remote(r) => r,
            other => self.refuse(
                ErrorCode::Unavailable,
                format!("cannot reach the master controller {master}: {other}"),
            ),
        };
        let c = MasterClient::connect(
            &master,
            &self.cfg.master_username,
            &self.cfg.master_password,
            &self.me,
            &self.master_tls,
        )
        .await
        .map_err(unreachable)?;
        let job = c.resync(db, table).await.map_err(unreachable)?;
        let what = table.map_or_else(
            || format!("database '{db}'"),
            |t| format!("table '{t}' of '{db}'"),
        );
        tracing::warn!(user = %caller.user, job, "re-sync of {what} asked of the master");
        Ok(Value::Scalar(Scalar::string(format!(
            "re-sync {job} of {what} started: the master sends it afresh to this slave; watch rpc(getControllerAlias(), getClusterReplicationBootstrapStatus)"
        ))))
    }
}
