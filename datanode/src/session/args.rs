//! What every function of the language takes and gives back: its evaluated arguments
//! ([`Args`], with the checks and conversions functions share) and its failure
//! ([`EvalError`]).

use xrepl_core::value::{DataType, Scalar, Value, Vector};
use xrepl_proto::rpc::{ErrorCode, RemoteError};
use xrepl_query::lang::ast::Span;

/// A failed statement: what kind, the message, and where (when known).
#[derive(Debug, Clone, PartialEq)]
pub struct EvalError {
    pub code: ErrorCode,
    pub message: String,
    pub span: Option<Span>,
    /// The node that raised it when that is not this data node (e.g. the controller).
    pub node: Option<String>,
}

impl EvalError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> EvalError {
        EvalError {
            code,
            message: message.into(),
            span: None,
            node: None,
        }
    }

    pub fn runtime(message: impl Into<String>) -> EvalError {
        EvalError::new(ErrorCode::Runtime, message)
    }

    /// Where it happened, unless a deeper part said so already.
    pub fn at(mut self, span: Span) -> EvalError {
        self.span.get_or_insert(span);
        self
    }

    /// The session is not logged in.
    pub fn not_logged_in() -> EvalError {
        EvalError::new(
            ErrorCode::NotLoggedIn,
            "Not logged in: call login(user, password) first.",
        )
    }
}

impl From<RemoteError> for EvalError {
    fn from(e: RemoteError) -> EvalError {
        EvalError {
            node: (!e.node.is_empty()).then_some(e.node),
            ..EvalError::new(e.code, e.message)
        }
    }
}

/// A bad argument.
pub fn bad(msg: impl Into<String>) -> EvalError {
    EvalError::new(ErrorCode::BadRequest, msg)
}

/// Something named that does not exist.
pub fn not_found(msg: impl Into<String>) -> EvalError {
    EvalError::new(ErrorCode::NotFound, msg)
}

/// Evaluated call arguments.
#[derive(Debug, Clone, Default)]
pub struct Args {
    pub positional: Vec<Value>,
    pub named: Vec<(String, Value)>,
}

impl Args {
    /// Positional arguments only (a call from the Rust client API or `rpc`).
    pub fn positional(values: Vec<Value>) -> Args {
        Args {
            positional: values,
            named: Vec::new(),
        }
    }

    /// Fails unless there are exactly `n` positional arguments and no named ones.
    pub fn exactly(&self, name: &str, n: usize) -> Result<(), EvalError> {
        if let Some((k, _)) = self.named.first() {
            return Err(bad(format!("{name} has no argument named '{k}'")));
        }
        if self.positional.len() != n {
            return Err(bad(format!(
                "{name} takes {n} argument{}, got {}",
                if n == 1 { "" } else { "s" },
                self.positional.len()
            )));
        }
        Ok(())
    }

    /// Positional argument `i`, a string.
    pub fn string(&self, name: &str, i: usize, what: &str) -> Result<String, EvalError> {
        match self.positional.get(i) {
            Some(Value::Scalar(Scalar::String(s) | Scalar::Symbol(s))) => Ok(s.clone()),
            Some(other) => Err(bad(format!(
                "{name}: {what} must be a string, got {}",
                other.kind_name()
            ))),
            None => Err(bad(format!("{name}: {what} is missing"))),
        }
    }

    /// Positional argument `i`, or the named one called `name`.
    pub fn get(&self, i: usize, name: &str) -> Option<&Value> {
        self.named
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .or_else(|| self.positional.get(i))
    }

    /// Takes argument `i` (or the named one called `name`) out, leaving nothing in its place.
    pub fn take(&mut self, i: usize, name: &str) -> Option<Value> {
        let slot = match self.named.iter().position(|(n, _)| n == name) {
            Some(at) => &mut self.named[at].1,
            None => self.positional.get_mut(i)?,
        };
        Some(std::mem::replace(slot, Value::Void))
    }

    /// Fails on named arguments outside `allowed` and on more than `max` positional ones.
    pub fn check(&self, f: &str, allowed: &[&str], max: usize) -> Result<(), EvalError> {
        if let Some((n, _)) = self
            .named
            .iter()
            .find(|(n, _)| !allowed.contains(&n.as_str()))
        {
            return Err(bad(format!("{f} has no argument named '{n}'")));
        }
        if self.positional.len() > max {
            return Err(bad(format!(
                "{f} takes at most {max} arguments, got {}",
                self.positional.len()
            )));
        }
        Ok(())
    }

    /// Argument `i` or `name`, which must be there.
    pub fn need(&self, f: &str, i: usize, name: &str) -> Result<&Value, EvalError> {
        self.get(i, name)
            .ok_or_else(|| bad(format!("{f}: the argument '{name}' is missing")))
    }

    /// Argument `i` or `name`, a string.
    pub fn text(&self, f: &str, i: usize, name: &str) -> Result<String, EvalError> {
        match self.need(f, i, name)? {
            Value::Scalar(Scalar::String(s) | Scalar::Symbol(s)) => Ok(s.clone()),
            other => Err(bad(format!(
                "{f}: '{name}' must be a string, got {}",
                other.kind_name()
            ))),
        }
    }

    /// A string or a vector of strings.
    pub fn names(&self, f: &str, i: usize, name: &str) -> Result<Vec<String>, EvalError> {
        match self.need(f, i, name)? {
            Value::Scalar(Scalar::String(s) | Scalar::Symbol(s)) => Ok(vec![s.clone()]),
            Value::Vector(Vector::String(v) | Vector::Symbol(v)) => Ok(v.clone()),
            other => Err(bad(format!(
                "{f}: '{name}' must be a string or strings, got {}",
                other.kind_name()
            ))),
        }
    }

    /// A database path: a handle or a `dfs://` string.
    pub fn db(&self, f: &str, i: usize, name: &str) -> Result<String, EvalError> {
        match self.need(f, i, name)? {
            Value::Database(p) => Ok(p.clone()),
            Value::Scalar(Scalar::String(s)) => Ok(s.clone()),
            other => Err(bad(format!(
                "{f}: '{name}' must be a database, got {}",
                other.kind_name()
            ))),
        }
    }

    /// A DFS table handle (`loadTable`).
    pub fn table_ref(&self, f: &str, i: usize, name: &str) -> Result<(String, String), EvalError> {
        match self.need(f, i, name)? {
            Value::TableRef { db, table } => Ok((db.clone(), table.clone())),
            other => Err(bad(format!(
                "{f}: '{name}' must be a DFS table (loadTable), got {}",
                other.kind_name()
            ))),
        }
    }
}

/// One type per element of a vector of types, e.g. `[INT, DOUBLE]`.
pub fn types(f: &str, v: &Value) -> Result<Vec<DataType>, EvalError> {
    match v {
        Value::Type(t) => Ok(vec![*t]),
        Value::Tuple(items) => items
            .iter()
            .map(|i| match i {
                Value::Type(t) => Ok(*t),
                other => Err(bad(format!(
                    "{f}: expected a type, got {}",
                    other.kind_name()
                ))),
            })
            .collect(),
        other => Err(bad(format!(
            "{f}: expected types, got {}",
            other.kind_name()
        ))),
    }
}

/// A scalar or a vector as a vector (one element for a scalar); `None` for anything else.
pub fn as_vector(v: &Value) -> Option<Result<Vector, EvalError>> {
    match v {
        Value::Vector(v) => Some(Ok(v.clone())),
        Value::Scalar(s) => {
            let mut v = Vector::empty(s.data_type());
            Some(v.push(s.clone()).map(|()| v).map_err(bad))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_arguments_take_the_place_of_positional_ones() {
        let a = Args {
            positional: vec![Value::Scalar(Scalar::string("dfs://a"))],
            named: vec![("tableName".into(), Value::Scalar(Scalar::string("t")))],
        };
        assert_eq!(a.db("f", 0, "dbPath"), Ok("dfs://a".into()));
        assert_eq!(a.text("f", 1, "tableName"), Ok("t".into()));
        assert!(a.check("f", &["tableName"], 2).is_ok());
        let e = a.check("f", &[], 2).expect_err("refused");
        assert_eq!(e.message, "f has no argument named 'tableName'");
        assert_eq!(
            a.need("f", 3, "x").expect_err("missing").message,
            "f: the argument 'x' is missing"
        );
        assert_eq!(
            Args::positional(vec![])
                .exactly("now", 1)
                .expect_err("arity")
                .message,
            "now takes 1 argument, got 0"
        );
    }
}
