//! The session's own functions: logging in and out, who is who (`getNodeAlias`,
//! `getControllerAlias`), the time, `rpc`, the controller's `getClusterPerf` and user functions
//! (`createUser`, `changePwd`, `grant`, ...), the type casts and `size`/`count`.

use xrepl_core::value::{DataType, FunctionRef, Scalar, Value};
use xrepl_proto::rpc::ErrorCode;

use super::args::{Args, EvalError};
use super::state::{Handler, Session};

/// The functions of this module.
pub const FUNCTIONS: &[(&str, Handler)] = &[
    ("login", login),
    ("logout", logout),
    ("getControllerAlias", controller_alias),
    ("getNodeAlias", node_alias),
    ("setLogLevel", set_log_level),
    ("getClusterPerf", cluster_perf),
    ("rpc", rpc),
    ("now", now),
    ("size", size),
    ("count", size),
    ("string", cast),
    ("symbol", cast),
    ("int", cast),
    ("long", cast),
    ("double", cast),
    ("bool", cast),
    ("date", cast),
    ("datetime", cast),
    ("timestamp", cast),
    ("nanotimestamp", cast),
    ("changePwd", change_password),
    ("createUser", on_controller),
    ("grant", on_controller),
    ("deny", on_controller),
    ("revoke", on_controller),
    ("resetPwd", on_controller),
    ("deleteUser", on_controller),
    ("getUserList", on_controller),
    ("getUserAccess", on_controller),
    ("rotateTokenKey", on_controller),
];

/// `login(user, password[, enableEncryption])`: DolphinDB's clients send `false` as a third
/// argument; an encrypted login (`true`) is not supported.
fn login(s: &mut Session, name: &str, args: Args) -> Result<Value, EvalError> {
    if args.positional.len() == 3 {
        match args.get(2, "enableEncryption") {
            Some(Value::Scalar(Scalar::Bool(0))) => {}
            _ => {
                return Err(EvalError::runtime(
                    "login: an encrypted login (enableEncryption=true) is not supported; log in with false (use TLS to protect the password)",
                ))
            }
        }
    } else {
        args.exactly(name, 2)?;
    }
    let user = args.string(name, 0, "the user name")?;
    let password = args.string(name, 1, "the password")?;
    s.login(&user, &password)?;
    Ok(Value::Void)
}

/// `logout()`
fn logout(s: &mut Session, name: &str, args: Args) -> Result<Value, EvalError> {
    args.exactly(name, 0)?;
    s.logout()?;
    Ok(Value::Void)
}

/// `changePwd(oldPwd, newPwd)`: the logged-in user's own password.
fn change_password(s: &mut Session, name: &str, args: Args) -> Result<Value, EvalError> {
    args.exactly(name, 2)?;
    let old = args.string(name, 0, "the old password")?;
    let new = args.string(name, 1, "the new password")?;
    s.change_password(&old, &new)?;
    Ok(Value::Void)
}

fn controller_alias(s: &mut Session, name: &str, args: Args) -> Result<Value, EvalError> {
    args.exactly(name, 0)?;
    Ok(Value::Scalar(Scalar::string(
        s.node.cfg.controller.alias.clone(),
    )))
}

fn node_alias(s: &mut Session, name: &str, args: Args) -> Result<Value, EvalError> {
    args.exactly(name, 0)?;
    Ok(Value::Scalar(Scalar::string(s.node.cfg.alias.clone())))
}

/// `setLogLevel(level)`: this data node logs at `level` (DEBUG, INFO, WARNING, ERROR) until
/// it restarts; administrators only. The controller's: `rpc(getControllerAlias(),
/// setLogLevel, level)`.
fn set_log_level(s: &mut Session, name: &str, args: Args) -> Result<Value, EvalError> {
    s.require_admin(name)?;
    args.exactly(name, 1)?;
    let level = args.string(name, 0, "the level")?;
    xrepl_core::process::set_log_level(&level)
        .map_err(|m| EvalError::new(ErrorCode::BadRequest, format!("{name}: {m}")))?;
    Ok(Value::Void)
}

fn now(_: &mut Session, name: &str, args: Args) -> Result<Value, EvalError> {
    args.exactly(name, 0)?;
    Ok(Value::Scalar(Scalar::Timestamp(
        chrono::Utc::now().timestamp_millis(),
    )))
}

fn cluster_perf(s: &mut Session, name: &str, args: Args) -> Result<Value, EvalError> {
    args.exactly(name, 0)?;
    s.controller_call(name, Vec::new())
}

/// The user functions (`createUser`, `grant`, `deny`, `revoke`, `resetPwd`, `deleteUser`,
/// `getUserList`, `getUserAccess`, `rotateTokenKey`) run on the controller; a database handle
/// travels as its path.
fn on_controller(s: &mut Session, name: &str, a: Args) -> Result<Value, EvalError> {
    let mut args = a.positional;
    if let Some(Value::Database(p)) = args.get(2) {
        args[2] = Value::Scalar(Scalar::String(p.clone()));
    }
    s.controller_call(name, args)
}

/// `string(x)`, `int(x)`, ...: a scalar or a vector in another type.
fn cast(_: &mut Session, name: &str, args: Args) -> Result<Value, EvalError> {
    args.exactly(name, 1)?;
    let to = DataType::from_name(&name.to_ascii_uppercase()).unwrap_or(DataType::String);
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

/// `size(x)`: its elements; `count(x)`: its non-NULL elements.
fn size(_: &mut Session, name: &str, args: Args) -> Result<Value, EvalError> {
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

/// `rpc(alias, fn, args...)`: runs `fn` on the node named `alias`.
fn rpc(s: &mut Session, _: &str, args: Args) -> Result<Value, EvalError> {
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
    if alias == s.node.cfg.alias {
        return s.call(&name, Args::positional(rest));
    }
    if alias == s.node.cfg.controller.alias {
        return s.controller_call(&name, rest);
    }
    Err(EvalError::new(
        ErrorCode::NotFound,
        format!(
            "rpc: '{alias}' is not this data node nor the controller ({}); calls to other data nodes are not supported yet",
            s.node.cfg.controller.alias
        ),
    ))
}
