//! Functions that run on the controller, called by name from a data node
//! (`rpc(getControllerAlias(), fn, args...)`, or a data node function that needs the controller).

use xrepl_core::catalog::Right;
use xrepl_core::config::NodeRole;
use xrepl_core::placement;
use xrepl_core::value::{Scalar, Table, Value, Vector, NULL_LONG};
use xrepl_proto::rpc::{ErrorCode, RemoteError};

use crate::auth::Caller;
use crate::switch::Switch;
use crate::{Controller, Role};

impl Controller {
    fn error(&self, code: ErrorCode, message: impl Into<String>) -> RemoteError {
        self.refuse(code, message)
    }

    fn admin_only(&self, caller: &Caller, name: &str) -> Result<(), RemoteError> {
        self.auth.admin_only(caller, name)
    }

    /// Refuses arguments to a function that takes none.
    fn no_args(&self, name: &str, args: &[Value]) -> Result<(), RemoteError> {
        if args.is_empty() {
            Ok(())
        } else {
            Err(self.error(
                ErrorCode::BadRequest,
                format!("{name} takes no arguments, got {}", args.len()),
            ))
        }
    }

    fn string_arg(
        &self,
        name: &str,
        args: &[Value],
        i: usize,
        what: &str,
    ) -> Result<String, RemoteError> {
        match args.get(i) {
            Some(Value::Scalar(Scalar::String(s) | Scalar::Symbol(s))) => Ok(s.clone()),
            other => Err(self.error(
                ErrorCode::BadRequest,
                format!(
                    "{name}: {what} must be a string, got {}",
                    other.map_or("nothing".into(), Value::kind_name)
                ),
            )),
        }
    }

    /// `createUser(name, password[, isAdmin])`
    async fn create_user(&self, caller: &Caller, args: Vec<Value>) -> Result<Value, RemoteError> {
        const NAME: &str = "createUser";
        self.admin_only(caller, NAME)?;
        if !(2..=3).contains(&args.len()) {
            return Err(self.error(
                ErrorCode::BadRequest,
                format!("{NAME} takes a user name, a password and optionally isAdmin"),
            ));
        }
        let user = self.string_arg(NAME, &args, 0, "the user name")?;
        let password = self.string_arg(NAME, &args, 1, "the password")?;
        let is_admin = match args.get(2) {
            None => false,
            Some(Value::Scalar(Scalar::Bool(b))) => *b == 1,
            Some(other) => {
                return Err(self.error(
                    ErrorCode::BadRequest,
                    format!(
                        "{NAME}: isAdmin must be true or false, got {}",
                        other.kind_name()
                    ),
                ))
            }
        };
        xrepl_core::auth::check_user_name(&user)
            .map_err(|m| self.error(ErrorCode::BadRequest, m))?;
        if password.len() < 6 {
            return Err(self.error(
                ErrorCode::BadRequest,
                "a password needs at least 6 characters",
            ));
        }
        let password_hash =
            tokio::task::spawn_blocking(move || xrepl_core::auth::hash_password(&password))
                .await
                .map_err(|e| self.error(ErrorCode::Internal, e.to_string()))?
                .map_err(|e| self.error(ErrorCode::Internal, e))?;
        self.meta
            .apply(crate::meta::MetaCommand::CreateUser {
                name: user,
                password_hash,
                is_admin,
            })
            .await
            .map_err(|e| e.to_remote(&self.cfg.alias))?;
        Ok(Value::Void)
    }

    /// `grant(user, DB_READ|DB_WRITE|DB_OWNER[, db])`, `grant(user, CLUSTER_REPLICATION)`
    async fn grant(&self, caller: &Caller, args: Vec<Value>) -> Result<Value, RemoteError> {
        const NAME: &str = "grant";
        self.admin_only(caller, NAME)?;
        let user = self.string_arg(NAME, &args, 0, "the user name")?;
        let right = match args.get(1) {
            Some(Value::Keyword(k)) | Some(Value::Scalar(Scalar::String(k))) => Right::from_name(k),
            _ => None,
        }
        .ok_or_else(|| {
            self.error(
                ErrorCode::BadRequest,
                format!(
                    "{NAME}: the right must be DB_READ, DB_WRITE, DB_OWNER or CLUSTER_REPLICATION"
                ),
            )
        })?;
        let db = match args.get(2) {
            None => None,
            Some(Value::Database(p)) => Some(p.clone()),
            Some(_) => Some(self.string_arg(NAME, &args, 2, "the database")?),
        };
        if args.len() > 3 {
            return Err(self.error(
                ErrorCode::BadRequest,
                format!("{NAME} takes at most 3 arguments"),
            ));
        }
        self.meta
            .apply(crate::meta::MetaCommand::Grant { user, right, db })
            .await
            .map_err(|e| e.to_remote(&self.cfg.alias))?;
        Ok(Value::Void)
    }

    /// Runs controller function `name`.
    pub async fn call_function(
        &self,
        caller: &Caller,
        name: &str,
        args: Vec<Value>,
    ) -> Result<Value, RemoteError> {
        let no_args = |args: &[Value]| self.no_args(name, args);
        match name {
            "getClusterPerf" => {
                no_args(&args)?;
                Ok(Value::Table(self.cluster_perf()))
            }
            "createUser" => self.create_user(caller, args).await,
            "grant" => self.grant(caller, args).await,
            "getControllerAlias" | "getNodeAlias" => {
                no_args(&args)?;
                Ok(Value::Scalar(Scalar::string(self.cfg.alias.clone())))
            }
            _ => match placement::placement(name) {
                Some(want) => {
                    if !caller.is_admin {
                        return Err(self.error(
                            ErrorCode::AccessDenied,
                            format!("{name} needs administrator rights; user '{}' is not an administrator", caller.user),
                        ));
                    }
                    let mode = self.cfg.replication.as_ref().map(|r| r.mode);
                    placement::check_placement(name, want, NodeRole::Controller, mode)
                        .map_err(|m| self.error(ErrorCode::BadRequest, m))?;
                    self.replication_function(caller, name, args).await
                }
                None => Err(self.error(
                    ErrorCode::NotFound,
                    format!("'{name}' is not a function that runs on the controller"),
                )),
            },
        }
    }

    /// A replication function that passed its placement check, on this controller's role.
    async fn replication_function(
        &self,
        caller: &Caller,
        name: &str,
        args: Vec<Value>,
    ) -> Result<Value, RemoteError> {
        let no_args = |args: &[Value]| self.no_args(name, args);
        let switch = if name == "startClusterReplication" {
            Switch::Start
        } else {
            Switch::Stop
        };
        match (&self.role, name) {
            (Role::Master(m), "getMasterReplicationStatus") => {
                let limit = self.limit_arg(name, &args)?;
                Ok(Value::Table(m.status(limit)))
            }
            (Role::Master(m), "getRecentSlaveReplicationInfo") => {
                no_args(&args)?;
                Ok(Value::Table(m.recent_slaves()))
            }
            (Role::Master(m), "dropClusterReplicationSlave") => {
                if args.len() != 1 {
                    return Err(self.error(
                        ErrorCode::BadRequest,
                        format!(
                            "{name} takes one argument, the slave cluster's name (connectedController of getRecentSlaveReplicationInfo), got {}",
                            args.len()
                        ),
                    ));
                }
                let slave = self.string_arg(name, &args, 0, "the slave cluster's name")?;
                m.drop_slave(&slave, &caller.user).await
            }
            (Role::Master(m), "startClusterReplication" | "stopClusterReplication") => {
                no_args(&args)?;
                m.switch(switch).await
            }
            (Role::Slave(s), "startClusterReplication" | "stopClusterReplication") => {
                no_args(&args)?;
                s.switch(switch).await
            }
            (Role::Slave(s), "skipClusterReplicationTask") => s.skip_tasks(caller, &args).await,
            (Role::Slave(s), "getSlaveReplicationStatus") => {
                let limit = self.limit_arg(name, &args)?;
                Ok(Value::Table(s.slave_status(limit).await))
            }
            (Role::Slave(s), "getSlaveReplicationQueueStatus") => {
                no_args(&args)?;
                Ok(Value::Table(s.queue_status().await))
            }
            (Role::Slave(s), "getClusterReplicationMetrics") => s.metrics(&args).map(Value::Table),
            _ => Err(self.error(
                ErrorCode::Internal,
                format!("{name} passed its placement check but has no handler on the controller"),
            )),
        }
    }

    /// The optional `limit` argument: a positive integer, or -1 / nothing for no limit.
    fn limit_arg(&self, name: &str, args: &[Value]) -> Result<Option<usize>, RemoteError> {
        let bad = || {
            self.error(
                ErrorCode::BadRequest,
                format!("{name}: limit must be a positive integer or -1"),
            )
        };
        match args {
            [] => Ok(None),
            [Value::Scalar(s)] => {
                let n = match s {
                    Scalar::Int(n) => i64::from(*n),
                    Scalar::Long(n) => *n,
                    _ => return Err(bad()),
                };
                match n {
                    -1 => Ok(None),
                    n if n > 0 => Ok(Some(usize::try_from(n).map_err(|_| bad())?)),
                    _ => Err(bad()),
                }
            }
            _ => Err(self.error(
                ErrorCode::BadRequest,
                format!(
                    "{name} takes at most one argument (limit), got {}",
                    args.len()
                ),
            )),
        }
    }

    /// `getClusterPerf()`: `name, site, mode, state, lastHeartbeat`.
    fn cluster_perf(&self) -> Table {
        let rows = self.nodes.view();
        let cols = vec![
            Vector::String(rows.iter().map(|r| r.name.clone()).collect()),
            Vector::String(rows.iter().map(|r| r.site.clone()).collect()),
            Vector::String(rows.iter().map(|r| r.role.to_string()).collect()),
            Vector::String(
                rows.iter()
                    .map(|r| if r.up { "up" } else { "down" }.to_string())
                    .collect(),
            ),
            Vector::Timestamp(
                rows.iter()
                    .map(|r| r.last_heartbeat_ms.unwrap_or(NULL_LONG))
                    .collect(),
            ),
        ];
        let names = ["name", "site", "mode", "state", "lastHeartbeat"];
        Table::new(names.iter().map(|s| s.to_string()).collect(), cols).unwrap_or_else(|_| Table {
            names: vec![],
            columns: vec![],
        })
    }
}
