//! Functions that run on the controller, called by name from a data node
//! (`rpc(getControllerAlias(), fn, args...)`, or a data node function that needs the controller).

use xrepl_common::config::NodeRole;
use xrepl_common::replication;
use xrepl_common::rpc::{ErrorCode, RemoteError};
use xrepl_common::value::{Scalar, Table, Value, Vector, NULL_LONG};

use crate::Controller;

/// The logged-in user a call runs for.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: String,
    pub is_admin: bool,
}

impl Controller {
    fn error(&self, code: ErrorCode, message: impl Into<String>) -> RemoteError {
        RemoteError {
            node: self.cfg.alias.clone(),
            code,
            message: message.into(),
        }
    }

    /// Runs controller function `name`.
    pub fn call_function(
        &self,
        caller: &Caller,
        name: &str,
        args: Vec<Value>,
    ) -> Result<Value, RemoteError> {
        let no_args = |args: &[Value]| -> Result<(), RemoteError> {
            if args.is_empty() {
                Ok(())
            } else {
                Err(self.error(
                    ErrorCode::BadRequest,
                    format!("{name} takes no arguments, got {}", args.len()),
                ))
            }
        };
        match name {
            "getClusterPerf" => {
                no_args(&args)?;
                Ok(Value::Table(self.cluster_perf()))
            }
            "getControllerAlias" | "getNodeAlias" => {
                no_args(&args)?;
                Ok(Value::Scalar(Scalar::string(self.cfg.alias.clone())))
            }
            _ => match replication::placement(name) {
                Some(want) => {
                    if !caller.is_admin {
                        return Err(self.error(
                            ErrorCode::AccessDenied,
                            format!("{name} needs administrator rights; user '{}' is not an administrator", caller.user),
                        ));
                    }
                    let mode = self.cfg.replication.as_ref().map(|r| r.mode);
                    replication::check_placement(name, want, NodeRole::Controller, mode)
                        .map_err(|m| self.error(ErrorCode::BadRequest, m))?;
                    Err(self.error(
                        ErrorCode::Runtime,
                        format!("{name} is not implemented yet in this version of xrepl"),
                    ))
                }
                None => Err(self.error(
                    ErrorCode::NotFound,
                    format!("'{name}' is not a function that runs on the controller"),
                )),
            },
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
