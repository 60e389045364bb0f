//! The evaluator: walks the syntax tree of a statement in a [`Session`]: literals, variables,
//! `if`, calls with positional and named arguments (by name through [`registry`]), method
//! calls, functions as values, vectorised arithmetic and comparisons, ranges and pairs. SQL
//! statements and `select` go to the session's SQL methods (the `sql` rooms).

use xrepl_core::value::{DataType, FunctionRef, Scalar, Table, Value, Vector, NULL_INT};
use xrepl_proto::rpc::ErrorCode;
use xrepl_query::lang::ast::{Arg, BinOp, Expr, ExprKind, Literal, Stmt, UnaryOp};

use super::args::{Args, EvalError};
use super::registry;
use super::state::Session;

/// Most nested blocks and calls a script may make, so that no input exhausts the stack.
const MAX_DEPTH: usize = 200;
/// Longest vector a range may build.
pub const MAX_RANGE: i64 = 100_000_000;

impl Session {
    pub(crate) fn exec(&mut self, stmt: &Stmt, out: &mut Vec<Value>) -> Result<(), EvalError> {
        self.exec_depth(stmt, out, 0)
    }

    fn exec_depth(
        &mut self,
        stmt: &Stmt,
        out: &mut Vec<Value>,
        depth: usize,
    ) -> Result<(), EvalError> {
        if depth > MAX_DEPTH {
            return Err(EvalError::runtime(format!(
                "blocks are nested deeper than {MAX_DEPTH}"
            )));
        }
        match stmt {
            Stmt::Expr(e) => {
                let v = self.eval(e)?;
                if v != Value::Void {
                    out.push(v);
                }
            }
            Stmt::Assign { name, value, span } => {
                not_a_function(name).map_err(|e| e.at(*span))?;
                let v = self.eval(value)?;
                if v == Value::Void {
                    return Err(EvalError::runtime(format!(
                        "the right side of '{name} = ...' returns nothing"
                    ))
                    .at(*span));
                }
                self.vars.insert(name.clone(), v);
            }
            Stmt::If {
                cond,
                then,
                otherwise,
                span,
            } => {
                let c = self.eval(cond)?;
                let branch = if truthy(&c).map_err(|e| e.at(*span))? {
                    Some(then)
                } else {
                    otherwise.as_ref()
                };
                for s in branch.into_iter().flatten() {
                    self.exec_depth(s, out, depth + 1)?;
                }
            }
            Stmt::Update {
                table,
                set,
                filter,
                span,
            } => {
                self.sql_update(table, set, filter.as_ref())
                    .map_err(|e| e.at(*span))?;
            }
            Stmt::Delete {
                table,
                filter,
                span,
            } => {
                self.sql_delete(table, filter.as_ref())
                    .map_err(|e| e.at(*span))?;
            }
            Stmt::Insert {
                table,
                columns,
                values,
                span,
            } => {
                self.sql_insert(table, columns.as_deref(), values)
                    .map_err(|e| e.at(*span))?;
            }
        }
        Ok(())
    }

    pub(crate) fn eval(&mut self, e: &Expr) -> Result<Value, EvalError> {
        self.eval_inner(e).map_err(|err| err.at(e.span))
    }

    fn eval_inner(&mut self, e: &Expr) -> Result<Value, EvalError> {
        match &e.kind {
            ExprKind::Literal(l) => literal(l),
            ExprKind::Ident(name) => self.ident(name),
            ExprKind::Vector(items) => {
                let vals = items
                    .iter()
                    .map(|i| self.eval(i))
                    .collect::<Result<Vec<_>, _>>()?;
                vector_of(vals)
            }
            ExprKind::Call { func, args } => {
                let (name, fixed) = self.callee(func)?;
                if name == "table" && fixed.is_empty() {
                    return self.table_fn(args);
                }
                let mut call_args = self.eval_args(None, args)?;
                if !fixed.is_empty() {
                    call_args.positional.splice(0..0, fixed);
                }
                let result = self.call(&name, call_args)?;
                self.write_back(&name, args.first().map(|a| &a.value), &result);
                Ok(result)
            }
            ExprKind::Partial { func, args } => {
                let (func, mut fixed) = self.callee(func)?;
                for a in args {
                    fixed.push(self.eval(a)?);
                }
                Ok(Value::Partial { func, args: fixed })
            }
            ExprKind::Method { target, name, args } => {
                let t = self.eval(target)?;
                let call_args = self.eval_args(Some(t), args)?;
                let result = self.call(name, call_args)?;
                self.write_back(name, Some(target), &result);
                Ok(result)
            }
            ExprKind::Field { target, name } => match self.eval(target)? {
                Value::Dict(entries) => entries
                    .into_iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v)
                    .ok_or_else(|| {
                        EvalError::new(
                            ErrorCode::NotFound,
                            format!("the dictionary has no key '{name}'"),
                        )
                    }),
                Value::Table(t) => t.column(name).cloned().map(Value::Vector).ok_or_else(|| {
                    EvalError::new(
                        ErrorCode::NotFound,
                        format!("the table has no column '{name}'"),
                    )
                }),
                other => Err(EvalError::runtime(format!(
                    "{} has no field '{name}'",
                    other.kind_name()
                ))),
            },
            ExprKind::Index { target, index } => {
                let t = self.eval(target)?;
                let i = self.eval(index)?;
                index_value(t, i)
            }
            ExprKind::Unary { op, expr } => {
                let v = self.eval(expr)?;
                unary(*op, v)
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let a = self.eval(lhs)?;
                let b = self.eval(rhs)?;
                binary(*op, a, b)
            }
            ExprKind::Select(q) => self.sql_select(q),
            ExprKind::Star => Err(EvalError::runtime(
                "'*' is only valid in count(*) and select",
            )),
        }
    }

    /// What a call calls: a function's name (a name that is not a variable, or a variable
    /// holding a function) and the arguments a partial application fixed before the call's own.
    fn callee(&mut self, func: &Expr) -> Result<(String, Vec<Value>), EvalError> {
        if let ExprKind::Ident(n) = &func.kind {
            if !self.vars.contains_key(n) {
                return Ok((n.clone(), Vec::new()));
            }
        }
        match self.eval(func)? {
            Value::Function(FunctionRef(n)) => Ok((n, Vec::new())),
            Value::Partial { func, args } => Ok((func, args)),
            other => Err(EvalError::runtime(format!(
                "cannot call {}",
                other.kind_name()
            ))),
        }
    }

    /// Calls a function value (a name or a partial application, as [`Session::callee`] finds
    /// it in `func`, the text of an expression) with `args` after any fixed ones: the
    /// DolphinDB API's `function` request, whose name may be `tableInsert{loadTable(...)}`.
    pub(crate) fn call_text(&mut self, func: &str, args: Vec<Value>) -> Result<Value, EvalError> {
        let expr = match xrepl_query::lang::parse(func) {
            Ok(mut stmts) if stmts.len() == 1 => match stmts.pop() {
                Some(Stmt::Expr(e)) => e,
                _ => return Err(EvalError::runtime(format!("'{func}' is not a function"))),
            },
            Ok(_) => return Err(EvalError::runtime(format!("'{func}' is not a function"))),
            Err(e) => {
                return Err(EvalError::new(
                    ErrorCode::Syntax,
                    format!("the function '{func}': {e}"),
                ))
            }
        };
        let (name, mut all) = self.callee(&expr)?;
        all.extend(args);
        self.call(&name, Args::positional(all))
    }

    /// `f!(x, ...)` and `x.f!(...)` change `x`: when `x` is a variable holding an in-memory
    /// table, the new table is stored back in it.
    fn write_back(&mut self, name: &str, target: Option<&Expr>, result: &Value) {
        if !name.ends_with('!') {
            return;
        }
        if let (
            Some(Expr {
                kind: ExprKind::Ident(var),
                ..
            }),
            Value::Table(_),
        ) = (target, result)
        {
            if matches!(self.vars.get(var), Some(Value::Table(_))) {
                self.vars.insert(var.clone(), result.clone());
            }
        }
    }

    /// `table(1:0, names, types)` makes an empty table; `table(a, b, ...)` puts vectors (or
    /// tables) side by side, naming each vector after its variable.
    fn table_fn(&mut self, args: &[Arg]) -> Result<Value, EvalError> {
        let vals = args
            .iter()
            .map(|a| self.eval(&a.value))
            .collect::<Result<Vec<_>, _>>()?;
        if let [Value::Pair(_, _), names, types] = vals.as_slice() {
            let names: Vec<String> = match names {
                Value::Vector(Vector::String(v) | Vector::Symbol(v)) => v.clone(),
                Value::Scalar(Scalar::String(n) | Scalar::Symbol(n)) => vec![n.clone()],
                other => {
                    return Err(EvalError::runtime(format!(
                        "table: column names must be strings, got {}",
                        other.kind_name()
                    )))
                }
            };
            let types: Vec<DataType> = match types {
                Value::Tuple(items) => items
                    .iter()
                    .map(|t| match t {
                        Value::Type(t) => Ok(*t),
                        other => Err(EvalError::runtime(format!(
                            "table: expected a type, got {}",
                            other.kind_name()
                        ))),
                    })
                    .collect::<Result<_, _>>()?,
                Value::Type(t) => vec![*t],
                other => {
                    return Err(EvalError::runtime(format!(
                        "table: column types must be types, got {}",
                        other.kind_name()
                    )))
                }
            };
            if names.len() != types.len() {
                return Err(EvalError::runtime(format!(
                    "table: {} names but {} types",
                    names.len(),
                    types.len()
                )));
            }
            let cols = types.into_iter().map(Vector::empty).collect();
            return Table::new(names, cols)
                .map(Value::Table)
                .map_err(EvalError::runtime);
        }
        let mut names = Vec::new();
        let mut cols = Vec::new();
        for (i, (a, v)) in args.iter().zip(vals).enumerate() {
            match v {
                Value::Vector(v) => {
                    names.push(match (&a.name, &a.value.kind) {
                        (Some(n), _) => n.clone(),
                        (None, ExprKind::Ident(n)) => n.clone(),
                        _ => format!("col{i}"),
                    });
                    cols.push(v);
                }
                Value::Table(t) => {
                    names.extend(t.names);
                    cols.extend(t.columns);
                }
                other => {
                    return Err(EvalError::runtime(format!(
                        "table: expected vectors or tables, got {}",
                        other.kind_name()
                    )))
                }
            }
        }
        Table::new(names, cols)
            .map(Value::Table)
            .map_err(EvalError::runtime)
    }

    fn ident(&self, name: &str) -> Result<Value, EvalError> {
        if let Some(v) = self.vars.get(name) {
            return Ok(v.clone());
        }
        if let Some(t) = DataType::from_name(name) {
            return Ok(Value::Type(t));
        }
        if matches!(
            name,
            "VALUE"
                | "VAR"
                | "RANGE"
                | "HASH"
                | "LIST"
                | "DB_READ"
                | "DB_WRITE"
                | "DB_OWNER"
                | "CLUSTER_REPLICATION"
        ) {
            return Ok(Value::Keyword(name.to_string()));
        }
        if registry::is_function(name) {
            return Ok(Value::Function(FunctionRef(name.to_string())));
        }
        Err(EvalError::new(
            ErrorCode::NotFound,
            format!("variable '{name}' is not defined"),
        ))
    }

    fn eval_args(&mut self, first: Option<Value>, args: &[Arg]) -> Result<Args, EvalError> {
        let mut out = Args {
            positional: first.into_iter().collect(),
            named: Vec::new(),
        };
        for a in args {
            let v = self.eval(&a.value)?;
            match &a.name {
                None if !out.named.is_empty() => {
                    return Err(EvalError::runtime(
                        "a positional argument cannot follow a named one",
                    ))
                }
                None => out.positional.push(v),
                Some(n) => out.named.push((n.clone(), v)),
            }
        }
        Ok(out)
    }
}

/// A variable may not take a function's name (the name would call the function, not read it).
pub(crate) fn not_a_function(name: &str) -> Result<(), EvalError> {
    if registry::is_function(name) {
        return Err(EvalError::runtime(format!(
            "'{name}' is a function; choose another variable name"
        )));
    }
    Ok(())
}

fn literal(l: &Literal) -> Result<Value, EvalError> {
    let s = match l {
        Literal::Int(i) => match i32::try_from(*i) {
            Ok(v) if v != NULL_INT => Scalar::Int(v),
            _ => Scalar::Long(*i),
        },
        Literal::Float(f) => Scalar::Double(*f),
        Literal::String(s) | Literal::Symbol(s) => Scalar::String(s.clone()),
        Literal::Bool(b) => Scalar::bool(*b),
        Literal::Null => Scalar::Int(NULL_INT),
        Literal::SymbolVector(v) => return Ok(Value::Vector(Vector::String(v.clone()))),
        Literal::Date(d) => Scalar::Date(*d),
        Literal::DateTime(s) => Scalar::DateTime(
            i32::try_from(*s).map_err(|_| EvalError::runtime("DATETIME out of range"))?,
        ),
        Literal::Timestamp(t) => Scalar::Timestamp(*t),
        Literal::NanoTimestamp(t) => Scalar::NanoTimestamp(*t),
    };
    Ok(Value::Scalar(s))
}

/// `[a, b, c]`: scalars of one type become a vector of that type (INT and LONG mix as LONG,
/// numbers with DOUBLE as DOUBLE).
fn vector_of(vals: Vec<Value>) -> Result<Value, EvalError> {
    if vals.iter().any(|v| !matches!(v, Value::Scalar(_))) {
        return Ok(Value::Tuple(vals));
    }
    let scalars: Vec<Scalar> = vals
        .into_iter()
        .filter_map(|v| match v {
            Value::Scalar(s) => Some(s),
            _ => None,
        })
        .collect();
    let Some(first) = scalars.first() else {
        return Ok(Value::Vector(Vector::Double(Vec::new())));
    };
    let mut t = first.data_type();
    for s in &scalars {
        t = match (t, s.data_type()) {
            (a, b) if a == b => a,
            (DataType::Int | DataType::Long, DataType::Int | DataType::Long) => DataType::Long,
            (
                DataType::Int | DataType::Long | DataType::Double,
                DataType::Int | DataType::Long | DataType::Double,
            ) => DataType::Double,
            (a, b) => {
                return Err(EvalError::runtime(format!(
                    "a vector cannot mix {a} and {b}"
                )))
            }
        };
    }
    let mut out = Vector::empty(t);
    for s in scalars {
        out.push(cast_number(s, t)?).map_err(EvalError::runtime)?;
    }
    Ok(Value::Vector(out))
}

fn as_f64(s: &Scalar) -> Option<f64> {
    if s.is_null() {
        return Some(f64::NAN);
    }
    match s {
        Scalar::Int(v) => Some(f64::from(*v)),
        Scalar::Long(v) => Some(*v as f64),
        Scalar::Double(v) => Some(*v),
        _ => None,
    }
}

fn as_i64(s: &Scalar) -> Option<i64> {
    match s {
        Scalar::Int(v) if *v != NULL_INT => Some(i64::from(*v)),
        Scalar::Long(v) if !s.is_null() => Some(*v),
        _ => None,
    }
}

fn cast_number(s: Scalar, t: DataType) -> Result<Scalar, EvalError> {
    if s.data_type() == t {
        return Ok(s);
    }
    match t {
        DataType::Long => as_i64(&s).map(Scalar::Long),
        DataType::Double => as_f64(&s).map(Scalar::Double),
        _ => None,
    }
    .ok_or_else(|| EvalError::runtime(format!("cannot convert {} to {t}", s.data_type())))
}

/// The truth of an `if` condition.
fn truthy(v: &Value) -> Result<bool, EvalError> {
    match v {
        Value::Scalar(Scalar::Bool(b)) => Ok(*b != 0 && *b != i8::MIN),
        Value::Scalar(s) => as_f64(s).map(|f| f != 0.0 && !f.is_nan()).ok_or_else(|| {
            EvalError::runtime(format!(
                "an if condition must be true or false, not {}",
                v.kind_name()
            ))
        }),
        other => Err(EvalError::runtime(format!(
            "an if condition must be true or false, not {}",
            other.kind_name()
        ))),
    }
}

fn index_value(t: Value, i: Value) -> Result<Value, EvalError> {
    let (Value::Vector(v), Value::Scalar(s)) = (&t, &i) else {
        return Err(EvalError::runtime(format!(
            "cannot index {} with {}",
            t.kind_name(),
            i.kind_name()
        )));
    };
    let idx = as_i64(s).ok_or_else(|| EvalError::runtime("an index must be an integer"))?;
    usize::try_from(idx)
        .ok()
        .and_then(|k| v.get(k))
        .map(Value::Scalar)
        .ok_or_else(|| EvalError::runtime(format!("index {idx} is out of range 0..{}", v.len())))
}

fn unary(op: UnaryOp, v: Value) -> Result<Value, EvalError> {
    match op {
        UnaryOp::Neg => xrepl_query::ops::neg(&v),
        UnaryOp::Not => xrepl_query::ops::not(&v),
    }
    .map_err(EvalError::runtime)
}

fn binary(op: BinOp, a: Value, b: Value) -> Result<Value, EvalError> {
    match op {
        BinOp::Pair => match (a, b) {
            (Value::Scalar(x), Value::Scalar(y)) => Ok(Value::Pair(Box::new(x), Box::new(y))),
            (a, b) => Err(EvalError::runtime(format!(
                "a pair holds two scalars, not {} and {}",
                a.kind_name(),
                b.kind_name()
            ))),
        },
        BinOp::Range => range(&a, &b),
        BinOp::In => xrepl_query::ops::is_in(&a, &b).map_err(EvalError::runtime),
        BinOp::Between => match b {
            Value::Pair(lo, hi) => {
                xrepl_query::ops::between(&a, &lo, &hi).map_err(EvalError::runtime)
            }
            other => Err(EvalError::runtime(format!(
                "between needs a pair such as 1:5, got {}",
                other.kind_name()
            ))),
        },
        _ => xrepl_query::ops::binary(op, &a, &b).map_err(EvalError::runtime),
    }
}

/// `a..b`: integers or dates, both ends included.
fn range(a: &Value, b: &Value) -> Result<Value, EvalError> {
    let (Value::Scalar(x), Value::Scalar(y)) = (a, b) else {
        return Err(EvalError::runtime("a range needs two scalars"));
    };
    let too_long = |lo: i64, hi: i64| hi.saturating_sub(lo) >= MAX_RANGE;
    match (x, y) {
        (Scalar::Date(lo), Scalar::Date(hi)) => {
            if too_long(i64::from(*lo), i64::from(*hi)) {
                return Err(EvalError::runtime(format!(
                    "a range may hold at most {MAX_RANGE} values"
                )));
            }
            Ok(Value::Vector(Vector::Date((*lo..=*hi).collect())))
        }
        _ => {
            let (Some(lo), Some(hi)) = (as_i64(x), as_i64(y)) else {
                return Err(EvalError::runtime(
                    "a range needs two integers or two dates",
                ));
            };
            if too_long(lo, hi) {
                return Err(EvalError::runtime(format!(
                    "a range may hold at most {MAX_RANGE} values"
                )));
            }
            let both_int = matches!((x, y), (Scalar::Int(_), Scalar::Int(_)));
            Ok(Value::Vector(if both_int {
                Vector::Int((lo..=hi).filter_map(|v| i32::try_from(v).ok()).collect())
            } else {
                Vector::Long((lo..=hi).collect())
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(v: i32) -> Value {
        Value::Scalar(Scalar::Int(v))
    }

    #[test]
    fn integer_arithmetic_stays_integer_and_overflow_is_null() {
        assert_eq!(binary(BinOp::Add, int(2), int(3)), Ok(int(5)));
        assert_eq!(binary(BinOp::Div, int(7), int(2)), Ok(int(3)));
        // As in DolphinDB, INT overflow gives NULL rather than a wider type.
        assert_eq!(binary(BinOp::Mul, int(i32::MAX), int(2)), Ok(int(NULL_INT)));
        assert_eq!(
            binary(BinOp::Add, int(1), Value::Scalar(Scalar::Double(0.5))),
            Ok(Value::Scalar(Scalar::Double(1.5)))
        );
        assert_eq!(
            binary(BinOp::Lt, int(1), int(2)),
            Ok(Value::Scalar(Scalar::bool(true)))
        );
    }

    #[test]
    fn ranges_pairs_and_vectors() {
        assert_eq!(
            binary(BinOp::Range, int(0), int(3)),
            Ok(Value::Vector(Vector::Int(vec![0, 1, 2, 3])))
        );
        assert!(binary(
            BinOp::Range,
            int(0),
            Value::Scalar(Scalar::Long(MAX_RANGE * 2))
        )
        .is_err());
        assert_eq!(
            vector_of(vec![int(1), Value::Scalar(Scalar::Long(2))]),
            Ok(Value::Vector(Vector::Long(vec![1, 2])))
        );
        assert!(vector_of(vec![int(1), Value::Scalar(Scalar::string("a"))]).is_err());
        assert!(matches!(
            vector_of(vec![Value::Type(DataType::Int), int(3)]),
            Ok(Value::Tuple(_))
        ));
        assert_eq!(
            range(
                &Value::Scalar(Scalar::Date(10)),
                &Value::Scalar(Scalar::Date(12))
            ),
            Ok(Value::Vector(Vector::Date(vec![10, 11, 12])))
        );
    }
}
