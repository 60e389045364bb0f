//! Functions that run on the controller, called by name from a data node
//! (`rpc(getControllerAlias(), fn, args...)`, or a data node function that needs the controller).

use xrepl_core::catalog::{Access, Right};
use xrepl_core::config::NodeRole;
use xrepl_core::placement;
use xrepl_core::value::{Scalar, Table, Value, Vector, NULL_LONG};
use xrepl_proto::rpc::{ErrorCode, RemoteError};

use crate::auth::Caller;
use crate::meta::MetaCommand;
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
        let password_hash = self.auth.hash_new_password(password).await?;
        self.apply(MetaCommand::CreateUser {
            name: user.clone(),
            password_hash,
            is_admin,
        })
        .await?;
        tracing::info!(%user, is_admin, by = %caller.user, "user created");
        Ok(Value::Void)
    }

    async fn apply(&self, cmd: MetaCommand) -> Result<(), RemoteError> {
        self.meta
            .apply(cmd)
            .await
            .map(|_| ())
            .map_err(|e| e.to_remote(&self.cfg.alias))
    }

    /// Refuses a call with a number of arguments outside `range`.
    fn arity(
        &self,
        name: &str,
        args: &[Value],
        range: std::ops::RangeInclusive<usize>,
        what: &str,
    ) -> Result<(), RemoteError> {
        if range.contains(&args.len()) {
            Ok(())
        } else {
            Err(self.error(
                ErrorCode::BadRequest,
                format!("{name} takes {what}, got {} arguments", args.len()),
            ))
        }
    }

    /// `resetPwd(userId, newPwd)`: an administrator sets another user's password.
    async fn reset_password(
        &self,
        caller: &Caller,
        args: Vec<Value>,
    ) -> Result<Value, RemoteError> {
        const NAME: &str = "resetPwd";
        self.admin_only(caller, NAME)?;
        self.arity(NAME, &args, 2..=2, "a user name and a new password")?;
        let user = self.string_arg(NAME, &args, 0, "the user name")?;
        let password = self.string_arg(NAME, &args, 1, "the new password")?;
        self.auth.set_password(&user, password).await?;
        tracing::info!(%user, by = %caller.user, "password reset");
        Ok(Value::Void)
    }

    /// `deleteUser(userId)`
    async fn delete_user(&self, caller: &Caller, args: Vec<Value>) -> Result<Value, RemoteError> {
        const NAME: &str = "deleteUser";
        self.admin_only(caller, NAME)?;
        self.arity(NAME, &args, 1..=1, "a user name")?;
        let user = self.string_arg(NAME, &args, 0, "the user name")?;
        self.apply(MetaCommand::DeleteUser { name: user.clone() })
            .await?;
        tracing::info!(%user, by = %caller.user, "user deleted");
        Ok(Value::Void)
    }

    /// `grant`, `deny` or `revoke` `(userId, accessType[, objs])`: `objs` is a database (a
    /// path or a handle) or a vector of them; without it the right is for the whole cluster
    /// (DB_OWNER: creating databases; CLUSTER_REPLICATION).
    async fn set_access(
        &self,
        caller: &Caller,
        name: &str,
        args: Vec<Value>,
    ) -> Result<Value, RemoteError> {
        self.admin_only(caller, name)?;
        self.arity(
            name,
            &args,
            2..=3,
            "a user name, a right (DB_READ, DB_WRITE, DB_OWNER or CLUSTER_REPLICATION) and optionally databases",
        )?;
        let to = match name {
            "grant" => Access::Allow,
            "deny" => Access::Deny,
            _ => Access::None,
        };
        let user = self.string_arg(name, &args, 0, "the user name")?;
        let right = match args.get(1) {
            Some(Value::Keyword(k)) | Some(Value::Scalar(Scalar::String(k))) => Right::from_name(k),
            _ => None,
        }
        .ok_or_else(|| {
            self.error(
                ErrorCode::BadRequest,
                format!(
                    "{name}: the right must be DB_READ, DB_WRITE, DB_OWNER or CLUSTER_REPLICATION"
                ),
            )
        })?;
        let dbs: Vec<Option<String>> = match args.get(2) {
            None => vec![None],
            Some(Value::Database(p)) => vec![Some(p.clone())],
            Some(Value::Scalar(Scalar::String(p) | Scalar::Symbol(p))) => vec![Some(p.clone())],
            Some(Value::Vector(Vector::String(ps) | Vector::Symbol(ps))) if !ps.is_empty() => {
                ps.iter().map(|p| Some(p.clone())).collect()
            }
            Some(other) => {
                return Err(self.error(
                    ErrorCode::BadRequest,
                    format!(
                        "{name}: the databases must be a path or a vector of paths, got {}",
                        other.kind_name()
                    ),
                ))
            }
        };
        for db in &dbs {
            right
                .check_scope(db.as_deref())
                .map_err(|m| self.error(ErrorCode::BadRequest, format!("{name}: {m}")))?;
        }
        for db in dbs {
            self.apply(MetaCommand::Grant {
                user: user.clone(),
                right,
                db: db.clone(),
                to,
            })
            .await?;
            tracing::info!(%user, %right, db = db.as_deref().unwrap_or("*"), by = %caller.user, "{name}");
        }
        Ok(Value::Void)
    }

    /// `getUserList()`: the users who are not administrators, sorted.
    fn user_list(&self, caller: &Caller, args: &[Value]) -> Result<Value, RemoteError> {
        const NAME: &str = "getUserList";
        self.admin_only(caller, NAME)?;
        self.no_args(NAME, args)?;
        let names = self.meta.read(|s| {
            s.users
                .iter()
                .filter(|(_, u)| !u.is_admin)
                .map(|(n, _)| n.clone())
                .collect()
        });
        Ok(Value::Vector(Vector::String(names)))
    }

    /// `getUserAccess([userIds])`: the rights of the caller, or (administrators only) of the
    /// users named. Per right: its state for the whole cluster (`allow`, `deny` or `none`),
    /// and the databases it is allowed and denied on.
    fn user_access(&self, caller: &Caller, args: &[Value]) -> Result<Value, RemoteError> {
        const NAME: &str = "getUserAccess";
        self.arity(NAME, args, 0..=1, "optionally user names")?;
        let users: Vec<String> = match args.first() {
            None => vec![caller.user.clone()],
            Some(Value::Scalar(Scalar::String(u) | Scalar::Symbol(u))) => vec![u.clone()],
            Some(Value::Vector(Vector::String(us) | Vector::Symbol(us))) => us.clone(),
            Some(other) => {
                return Err(self.error(
                    ErrorCode::BadRequest,
                    format!(
                        "{NAME}: the users must be a name or a vector of names, got {}",
                        other.kind_name()
                    ),
                ))
            }
        };
        if users.iter().any(|u| *u != caller.user) {
            self.admin_only(caller, "getUserAccess of other users")?;
        }
        let found: Vec<(String, crate::meta::User)> = self.meta.read(|s| {
            users
                .iter()
                .filter_map(|u| s.users.get(u).map(|x| (u.clone(), x.clone())))
                .collect()
        });
        if let Some(missing) = users.iter().find(|u| !found.iter().any(|(n, _)| n == *u)) {
            return Err(self.error(
                ErrorCode::NotFound,
                format!("{NAME}: user '{missing}' does not exist"),
            ));
        }
        Ok(Value::Table(access_table(&found)))
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
            "grant" | "deny" | "revoke" => self.set_access(caller, name, args).await,
            "resetPwd" => self.reset_password(caller, args).await,
            "deleteUser" => self.delete_user(caller, args).await,
            "getUserList" => self.user_list(caller, &args),
            "getUserAccess" => self.user_access(caller, &args),
            "setLogLevel" => {
                self.admin_only(caller, name)?;
                if args.len() != 1 {
                    return Err(self.error(
                        ErrorCode::BadRequest,
                        format!("{name} takes one argument, the level, got {}", args.len()),
                    ));
                }
                let level = self.string_arg(name, &args, 0, "the level")?;
                xrepl_core::process::set_log_level(&level)
                    .map_err(|m| self.error(ErrorCode::BadRequest, format!("{name}: {m}")))?;
                Ok(Value::Void)
            }
            "rotateTokenKey" => {
                self.admin_only(caller, name)?;
                no_args(&args)?;
                let id = self.auth.rotate_key().await?;
                Ok(Value::Scalar(Scalar::Int(id as i32)))
            }
            "changePwd" => Err(self.error(
                ErrorCode::BadRequest,
                "changePwd changes the password of the session's own user: call changePwd(oldPwd, newPwd) in the session, not through rpc",
            )),
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
            (Role::Master(m), "getClusterReplicationBootstrapStatus") => {
                no_args(&args)?;
                Ok(Value::Table(crate::master::status::bootstrap_table(
                    &m.bootstraps(),
                    None,
                )))
            }
            (Role::Slave(s), "getClusterReplicationBootstrapStatus") => {
                no_args(&args)?;
                Ok(Value::Table(s.bootstrap_status()))
            }
            (Role::Master(m), "getMasterReplicationInfo") => {
                no_args(&args)?;
                Ok(Value::Table(crate::master::info::info_table(&m.info())))
            }
            (Role::Master(m), "getMasterReplicationSlaveLag") => {
                no_args(&args)?;
                let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
                Ok(Value::Table(crate::master::info::slave_lag_table(
                    &m.slave_lags(),
                    now,
                )))
            }
            (Role::Slave(s), "getClusterReplicationLag") => {
                no_args(&args)?;
                Ok(Value::Table(crate::slave::lag::lag_table(&s.lag())))
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
            (Role::Slave(s), "resyncClusterReplicationTable") => {
                if args.len() != 2 {
                    return Err(self.error(
                        ErrorCode::BadRequest,
                        format!(
                            "{name} takes two arguments (dbName, tableName), got {}",
                            args.len()
                        ),
                    ));
                }
                let db = self.string_arg(name, &args, 0, "dbName")?;
                let table = self.string_arg(name, &args, 1, "tableName")?;
                s.resync(caller, &db, Some(&table)).await
            }
            (Role::Slave(s), "resyncClusterReplicationDatabase") => {
                if args.len() != 1 {
                    return Err(self.error(
                        ErrorCode::BadRequest,
                        format!("{name} takes one argument (dbName), got {}", args.len()),
                    ));
                }
                let db = self.string_arg(name, &args, 0, "dbName")?;
                s.resync(caller, &db, None).await
            }
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

/// The rows of `getUserAccess`: `userId, isAdmin`, then per right `R`: `R` (its state for the
/// whole cluster: `allow`, `deny` or `none`), `R_allowed` and `R_denied` (the databases,
/// comma-separated).
fn access_table(users: &[(String, crate::meta::User)]) -> Table {
    let mut names = vec!["userId".to_string(), "isAdmin".to_string()];
    let mut cols = vec![
        Vector::String(users.iter().map(|(n, _)| n.clone()).collect()),
        Vector::Bool(users.iter().map(|(_, u)| i8::from(u.is_admin)).collect()),
    ];
    let state = |u: &crate::meta::User, r: Right| -> String {
        let g = &u.grants;
        let allowed = u.is_admin
            || match r {
                Right::Owner => g.create_databases,
                Right::ClusterReplication => g.cluster_replication,
                _ => false,
            };
        if g.denied_global.contains(&r) {
            "deny"
        } else if allowed {
            "allow"
        } else {
            "none"
        }
        .to_string()
    };
    let dbs = |m: &std::collections::BTreeMap<String, std::collections::BTreeSet<Right>>,
               r: Right|
     -> String {
        m.iter()
            .filter(|(_, rs)| rs.contains(&r))
            .map(|(d, _)| d.as_str())
            .collect::<Vec<_>>()
            .join(",")
    };
    for r in [Right::Owner, Right::Read, Right::Write] {
        names.push(r.name().to_string());
        cols.push(Vector::String(
            users.iter().map(|(_, u)| state(u, r)).collect(),
        ));
        names.push(format!("{}_allowed", r.name()));
        cols.push(Vector::String(
            users.iter().map(|(_, u)| dbs(&u.grants.dbs, r)).collect(),
        ));
        names.push(format!("{}_denied", r.name()));
        cols.push(Vector::String(
            users
                .iter()
                .map(|(_, u)| dbs(&u.grants.denied, r))
                .collect(),
        ));
    }
    names.push(Right::ClusterReplication.name().to_string());
    cols.push(Vector::String(
        users
            .iter()
            .map(|(_, u)| state(u, Right::ClusterReplication))
            .collect(),
    ));
    Table::new(names, cols).unwrap_or_else(|_| Table {
        names: vec![],
        columns: vec![],
    })
}
