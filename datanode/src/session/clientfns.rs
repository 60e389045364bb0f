//! The functions DolphinDB's client libraries call by themselves, and the session functions
//! their users expect: `print`, `undef`, `version`, `isNodeInitialized`,
//! `getRequiredAPIVersion`.

use xrepl_core::value::{Scalar, Value};
use xrepl_query::format;

use super::args::{bad, Args, EvalError};
use super::registry;
use super::state::{Handler, Session};

/// The functions of this module.
pub const FUNCTIONS: &[(&str, Handler)] = &[
    ("print", print),
    ("undef", undef),
    ("version", version),
    ("isNodeInitialized", node_initialized),
    ("getRequiredAPIVersion", required_api_version),
];

/// The DolphinDB server version xrepl answers `version()` with: the release whose client
/// protocol it speaks, then its own name and version.
pub const DOLPHINDB_VERSION: &str = "3.00.0";

/// `print(x, ...)`: each argument as the console shows it, one line each. The console shows
/// the lines in order with the script's values; a DolphinDB API client gets them as printed
/// messages before the reply.
fn print(s: &mut Session, _: &str, args: Args) -> Result<Value, EvalError> {
    if let Some((k, _)) = args.named.first() {
        return Err(bad(format!("print has no argument named '{k}'")));
    }
    for v in &args.positional {
        s.printed.push(format::render(v).unwrap_or_default());
    }
    Ok(Value::Void)
}

/// `undef(name)` or `undef(names)`: forgets session variables (DolphinDB's client sends
/// `undef('TMP_TBL_x')` for an upload it no longer holds). A name that is not a variable is
/// no error; `undef(all)` is not supported. An optional second argument `VAR` is accepted.
fn undef(s: &mut Session, f: &str, args: Args) -> Result<Value, EvalError> {
    args.check(f, &[], 2)?;
    if let Some(kind) = args.get(1, "objType") {
        if !matches!(kind, Value::Keyword(k) if k == "VAR")
            && !matches!(kind, Value::Scalar(Scalar::String(k)) if k == "VAR")
        {
            return Err(bad(format!(
                "{f}: only variables can be undefined (VAR), got {}",
                kind.kind_name()
            )));
        }
    }
    for name in args.names(f, 0, "obj")? {
        if registry::is_function(&name) {
            return Err(bad(format!("{f}: '{name}' is a function, not a variable")));
        }
        s.vars.remove(&name);
    }
    Ok(Value::Void)
}

/// `version()`: `3.00.0 xrepl <version>`, DolphinDB's form (the version first).
fn version(_: &mut Session, f: &str, args: Args) -> Result<Value, EvalError> {
    args.exactly(f, 0)?;
    Ok(Value::Scalar(Scalar::string(format!(
        "{DOLPHINDB_VERSION} xrepl {}",
        env!("CARGO_PKG_VERSION")
    ))))
}

/// `isNodeInitialized()`: true once the node serves sessions, which it does when it answers.
fn node_initialized(_: &mut Session, f: &str, args: Args) -> Result<Value, EvalError> {
    args.exactly(f, 0)?;
    Ok(Value::Scalar(Scalar::bool(true)))
}

/// `getRequiredAPIVersion()`: the oldest client API version this node asks for, and a note.
/// xrepl asks for none (0): every client that speaks the plain protocol is served.
fn required_api_version(_: &mut Session, f: &str, args: Args) -> Result<Value, EvalError> {
    args.exactly(f, 0)?;
    Ok(Value::Tuple(vec![
        Value::Scalar(Scalar::Int(0)),
        Value::Scalar(Scalar::string("")),
    ]))
}
