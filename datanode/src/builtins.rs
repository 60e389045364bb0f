//! Built-in functions of the data node, dispatched by name.

use xrepl_core::config::NodeRole;
use xrepl_core::placement;
use xrepl_core::value::{DataType, FunctionRef, Scalar, Value};
use xrepl_proto::rpc::{ControllerReply, ControllerRequest, ErrorCode};

use crate::eval::{Args, EvalError};
use crate::session::Session;

/// Functions this data node knows, besides the replication functions.
const BUILTINS: &[&str] = &[
    "login",
    "logout",
    "getControllerAlias",
    "getNodeAlias",
    "getClusterPerf",
    "rpc",
    "now",
    "table",
    "size",
    "count",
    "string",
    "symbol",
    "int",
    "long",
    "double",
    "bool",
    "date",
    "datetime",
    "timestamp",
    "nanotimestamp",
];

pub fn is_builtin(name: &str) -> bool {
    BUILTINS.contains(&name)
        || crate::dbfns::DB_FUNCTIONS.contains(&name)
        || crate::datafns::DATA_FUNCTIONS.contains(&name)
        || placement::placement(name).is_some()
}

impl Args {
    /// Fails unless there are exactly `n` positional arguments and no named ones.
    fn exactly(&self, name: &str, n: usize) -> Result<(), EvalError> {
        if let Some((k, _)) = self.named.first() {
            return Err(EvalError::new(
                ErrorCode::BadRequest,
                format!("{name} has no argument named '{k}'"),
            ));
        }
        if self.positional.len() != n {
            return Err(EvalError::new(
                ErrorCode::BadRequest,
                format!(
                    "{name} takes {n} argument{}, got {}",
                    if n == 1 { "" } else { "s" },
                    self.positional.len()
                ),
            ));
        }
        Ok(())
    }

    fn string(&self, name: &str, i: usize, what: &str) -> Result<String, EvalError> {
        match self.positional.get(i) {
            Some(Value::Scalar(Scalar::String(s) | Scalar::Symbol(s))) => Ok(s.clone()),
            Some(other) => Err(EvalError::new(
                ErrorCode::BadRequest,
                format!("{name}: {what} must be a string, got {}", other.kind_name()),
            )),
            None => Err(EvalError::new(
                ErrorCode::BadRequest,
                format!("{name}: {what} is missing"),
            )),
        }
    }
}

impl Session {
    /// Calls function `name`.
    pub(crate) fn call(&mut self, name: &str, args: Args) -> Result<Value, EvalError> {
        if let Some(result) = self.call_db(name, &args) {
            return result;
        }
        if let Some(result) = crate::datafns::call(name, &args) {
            return result;
        }
        match name {
            "login" => {
                args.exactly(name, 2)?;
                let user = args.string(name, 0, "the user name")?;
                let password = args.string(name, 1, "the password")?;
                self.login(&user, &password)?;
                Ok(Value::Void)
            }
            "logout" => {
                args.exactly(name, 0)?;
                self.logout();
                Ok(Value::Void)
            }
            "getControllerAlias" => {
                args.exactly(name, 0)?;
                Ok(Value::Scalar(Scalar::string(
                    self.node.cfg.controller.alias.clone(),
                )))
            }
            "getNodeAlias" => {
                args.exactly(name, 0)?;
                Ok(Value::Scalar(Scalar::string(self.node.cfg.alias.clone())))
            }
            "now" => {
                args.exactly(name, 0)?;
                Ok(Value::Scalar(Scalar::Timestamp(
                    chrono::Utc::now().timestamp_millis(),
                )))
            }
            "getClusterPerf" => {
                args.exactly(name, 0)?;
                self.controller_call(name, Vec::new())
            }
            "rpc" => self.rpc(args),
            "string" | "symbol" | "int" | "long" | "double" | "bool" | "date" | "datetime"
            | "timestamp" | "nanotimestamp" => {
                args.exactly(name, 1)?;
                let to =
                    DataType::from_name(&name.to_ascii_uppercase()).unwrap_or(DataType::String);
                match &args.positional[0] {
                    Value::Scalar(s) => xrepl_query::ops::cast_scalar(s, to).map(Value::Scalar),
                    Value::Vector(v) => xrepl_query::ops::cast(v, to).map(Value::Vector),
                    other => Err(format!(
                        "{name} needs a scalar or a vector, got {}",
                        other.kind_name()
                    )),
                }
                .map_err(EvalError::runtime)
            }
            "size" | "count" => {
                args.exactly(name, 1)?;
                let n = match &args.positional[0] {
                    Value::Vector(v) if name == "count" => xrepl_query::ops::count(v) as usize,
                    Value::Vector(v) => v.len(),
                    Value::Table(t) => t.rows(),
                    Value::Tuple(t) => t.len(),
                    Value::Scalar(_) => 1,
                    other => {
                        return Err(EvalError::new(
                            ErrorCode::BadRequest,
                            format!(
                                "{name} needs a vector or a table, got {}",
                                other.kind_name()
                            ),
                        ))
                    }
                };
                Ok(Value::Scalar(Scalar::Int(n as i32)))
            }
            _ => match placement::placement(name) {
                Some(want) => {
                    self.require_admin(name)?;
                    let mode = self.node.cfg.replication.as_ref().map(|r| r.mode);
                    placement::check_placement(name, want, NodeRole::DataNode, mode)
                        .map_err(|m| EvalError::new(ErrorCode::BadRequest, m))?;
                    match self.replication_db_function(name, &args) {
                        Some(r) => r,
                        None => Err(EvalError::new(
                            ErrorCode::Internal,
                            format!("{name} passed its placement check but has no handler on a data node"),
                        )),
                    }
                }
                None => Err(EvalError::new(
                    ErrorCode::NotFound,
                    format!("unknown function '{name}'"),
                )),
            },
        }
    }

    fn require_admin(&self, name: &str) -> Result<(), EvalError> {
        match &self.user {
            Some(u) if u.is_admin => Ok(()),
            Some(u) => Err(EvalError::new(
                ErrorCode::AccessDenied,
                format!(
                    "{name} needs administrator rights; user '{}' is not an administrator",
                    u.user
                ),
            )),
            None => Err(EvalError::new(
                ErrorCode::NotLoggedIn,
                "Not logged in: call login(user, password) first.",
            )),
        }
    }

    /// Runs a function on the controller as the session's user.
    pub(crate) fn controller_call(
        &self,
        function: &str,
        args: Vec<Value>,
    ) -> Result<Value, EvalError> {
        let token = self.user.as_ref().map(|u| u.token.clone()).ok_or_else(|| {
            EvalError::new(
                ErrorCode::NotLoggedIn,
                "Not logged in: call login(user, password) first.",
            )
        })?;
        match self.node.block_on_controller(ControllerRequest::Call {
            token,
            function: function.to_string(),
            args,
        })? {
            ControllerReply::Value(v) => Ok(v),
            other => Err(EvalError::new(
                ErrorCode::Internal,
                format!("unexpected answer from the controller: {other:?}"),
            )),
        }
    }

    /// `rpc(alias, fn, args...)`: runs `fn` on the node named `alias`.
    fn rpc(&mut self, args: Args) -> Result<Value, EvalError> {
        if !args.named.is_empty() {
            return Err(EvalError::new(
                ErrorCode::BadRequest,
                "rpc takes positional arguments only",
            ));
        }
        let mut it = args.positional.into_iter();
        let (Some(target), Some(func)) = (it.next(), it.next()) else {
            return Err(EvalError::new(
                ErrorCode::BadRequest,
                "rpc takes a node alias, a function and the function's arguments",
            ));
        };
        let Value::Scalar(Scalar::String(alias)) = target else {
            return Err(EvalError::new(
                ErrorCode::BadRequest,
                format!(
                    "rpc: the node alias must be a string, got {}",
                    target.kind_name()
                ),
            ));
        };
        let name = match func {
            Value::Function(FunctionRef(n)) => n,
            Value::Scalar(Scalar::String(n)) => n,
            other => {
                return Err(EvalError::new(
                    ErrorCode::BadRequest,
                    format!(
                        "rpc: the second argument must be a function, got {}",
                        other.kind_name()
                    ),
                ))
            }
        };
        let rest: Vec<Value> = it.collect();
        if alias == self.node.cfg.alias {
            return self.call(
                &name,
                Args {
                    positional: rest,
                    named: Vec::new(),
                },
            );
        }
        if alias == self.node.cfg.controller.alias {
            return self.controller_call(&name, rest);
        }
        Err(EvalError::new(
            ErrorCode::NotFound,
            format!(
                "rpc: '{alias}' is not this data node nor the controller ({}); calls to other data nodes are not supported yet",
                self.node.cfg.controller.alias
            ),
        ))
    }
}
