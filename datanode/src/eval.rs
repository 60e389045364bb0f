//! The evaluator: walks the syntax tree of a statement in a [`Session`].
//!
//! This is the first slice of the language (issue 2): literals, variables, `if`, calls with
//! positional and named arguments, method calls, functions as values, scalar arithmetic and
//! comparisons, ranges and pairs. Vectorised arithmetic, SQL and the database functions come
//! with the next issues; they plug in at [`Session::eval`] and [`crate::builtins`].

use xrepl_common::lang::ast::{Arg, BinOp, Expr, ExprKind, Literal, Span, Stmt, UnaryOp};
use xrepl_common::rpc::ErrorCode;
use xrepl_common::value::{DataType, FunctionRef, Scalar, Value, Vector, NULL_INT};

use crate::session::Session;

/// Most nested blocks and calls a script may make, so that no input exhausts the stack.
const MAX_DEPTH: usize = 200;
/// Longest vector a range may build.
pub const MAX_RANGE: i64 = 100_000_000;

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

    fn at(mut self, span: Span) -> EvalError {
        self.span.get_or_insert(span);
        self
    }
}

impl From<xrepl_common::rpc::RemoteError> for EvalError {
    fn from(e: xrepl_common::rpc::RemoteError) -> EvalError {
        EvalError {
            node: (!e.node.is_empty()).then_some(e.node),
            ..EvalError::new(e.code, e.message)
        }
    }
}

/// Evaluated call arguments.
pub struct Args {
    pub positional: Vec<Value>,
    pub named: Vec<(String, Value)>,
}

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
                if crate::builtins::is_builtin(name) {
                    return Err(EvalError::runtime(format!(
                        "'{name}' is a function; choose another variable name"
                    ))
                    .at(*span));
                }
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
            Stmt::Update { span, .. } | Stmt::Delete { span, .. } | Stmt::Insert { span, .. } => {
                return Err(EvalError::runtime("SQL statements are not supported yet").at(*span))
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
                let name = match &func.kind {
                    ExprKind::Ident(n) if !self.vars.contains_key(n) => n.clone(),
                    _ => match self.eval(func)? {
                        Value::Function(FunctionRef(n)) => n,
                        other => {
                            return Err(EvalError::runtime(format!(
                                "cannot call {}",
                                other.kind_name()
                            )))
                        }
                    },
                };
                let args = self.eval_args(None, args)?;
                self.call(&name, args)
            }
            ExprKind::Method { target, name, args } => {
                let t = self.eval(target)?;
                let args = self.eval_args(Some(t), args)?;
                self.call(name, args)
            }
            ExprKind::Field { target, name } => match self.eval(target)? {
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
            ExprKind::Select(_) => Err(EvalError::runtime("select is not supported yet")),
            ExprKind::Star => Err(EvalError::runtime(
                "'*' is only valid in count(*) and select",
            )),
        }
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
            "VALUE" | "RANGE" | "HASH" | "LIST" | "DB_READ" | "DB_WRITE" | "DB_OWNER"
        ) {
            return Ok(Value::Keyword(name.to_string()));
        }
        if crate::builtins::is_builtin(name) {
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
    let mut scalars = Vec::with_capacity(vals.len());
    for v in vals {
        match v {
            Value::Scalar(s) => scalars.push(s),
            other => {
                return Err(EvalError::runtime(format!(
                    "a vector holds scalars, not {}",
                    other.kind_name()
                )))
            }
        }
    }
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
    let Value::Scalar(s) = &v else {
        return Err(EvalError::runtime(format!(
            "operators on {} come with the next release",
            v.kind_name()
        )));
    };
    match (op, s) {
        (UnaryOp::Neg, Scalar::Int(x)) if *x != NULL_INT => Ok(Value::Scalar(Scalar::Int(-x))),
        (UnaryOp::Neg, Scalar::Long(x)) if !s.is_null() => Ok(Value::Scalar(Scalar::Long(-x))),
        (UnaryOp::Neg, Scalar::Double(x)) => Ok(Value::Scalar(Scalar::Double(-x))),
        (UnaryOp::Not, _) => Ok(Value::Scalar(Scalar::bool(!truthy(&v)?))),
        _ => Err(EvalError::runtime(format!(
            "cannot negate {}",
            v.kind_name()
        ))),
    }
}

fn binary(op: BinOp, a: Value, b: Value) -> Result<Value, EvalError> {
    let (Value::Scalar(x), Value::Scalar(y)) = (&a, &b) else {
        return Err(EvalError::runtime(format!(
            "operators on {} and {} come with the next release",
            a.kind_name(),
            b.kind_name()
        )));
    };
    match op {
        BinOp::Pair => return Ok(Value::Pair(Box::new(x.clone()), Box::new(y.clone()))),
        BinOp::Range => {
            let (Some(lo), Some(hi)) = (as_i64(x), as_i64(y)) else {
                return Err(EvalError::runtime("a range needs two integers"));
            };
            if hi.saturating_sub(lo) >= MAX_RANGE {
                return Err(EvalError::runtime(format!(
                    "a range may hold at most {MAX_RANGE} values"
                )));
            }
            let both_int = matches!((x, y), (Scalar::Int(_), Scalar::Int(_)));
            return Ok(Value::Vector(if both_int {
                Vector::Int((lo..=hi).filter_map(|v| i32::try_from(v).ok()).collect())
            } else {
                Vector::Long((lo..=hi).collect())
            }));
        }
        BinOp::And | BinOp::Or => {
            let (p, q) = (truthy(&a)?, truthy(&b)?);
            let r = if op == BinOp::And { p && q } else { p || q };
            return Ok(Value::Scalar(Scalar::bool(r)));
        }
        _ => {}
    }
    if let (Scalar::String(p), Scalar::String(q)) = (x, y) {
        let r = match op {
            BinOp::Add => return Ok(Value::Scalar(Scalar::String(format!("{p}{q}")))),
            BinOp::Eq => p == q,
            BinOp::Ne => p != q,
            BinOp::Lt => p < q,
            BinOp::Le => p <= q,
            BinOp::Gt => p > q,
            BinOp::Ge => p >= q,
            _ => return Err(EvalError::runtime(format!("strings do not support {op:?}"))),
        };
        return Ok(Value::Scalar(Scalar::bool(r)));
    }
    // Integers stay integers (INT op INT is INT, with LONG it is LONG); DOUBLE otherwise.
    if let (Some(p), Some(q)) = (as_i64(x), as_i64(y)) {
        let long = matches!(x, Scalar::Long(_)) || matches!(y, Scalar::Long(_));
        let num = |r: Option<i64>| -> Result<Value, EvalError> {
            let r = r.ok_or_else(|| EvalError::runtime("integer overflow"))?;
            Ok(Value::Scalar(match (long, i32::try_from(r)) {
                (false, Ok(v)) => Scalar::Int(v),
                _ => Scalar::Long(r),
            }))
        };
        return match op {
            BinOp::Add => num(p.checked_add(q)),
            BinOp::Sub => num(p.checked_sub(q)),
            BinOp::Mul => num(p.checked_mul(q)),
            // DolphinDB divides integers as integers.
            BinOp::Div if q == 0 => Ok(Value::Scalar(Scalar::Int(NULL_INT))),
            BinOp::Div => num(p.checked_div(q)),
            BinOp::Mod if q == 0 => Ok(Value::Scalar(Scalar::Int(NULL_INT))),
            BinOp::Mod => num(p.checked_rem(q)),
            _ => compare(op, p.cmp(&q)),
        };
    }
    let (Some(p), Some(q)) = (as_f64(x), as_f64(y)) else {
        return Err(EvalError::runtime(format!(
            "cannot apply {op:?} to {} and {}",
            x.data_type(),
            y.data_type()
        )));
    };
    match op {
        BinOp::Add => Ok(Value::Scalar(Scalar::Double(p + q))),
        BinOp::Sub => Ok(Value::Scalar(Scalar::Double(p - q))),
        BinOp::Mul => Ok(Value::Scalar(Scalar::Double(p * q))),
        BinOp::Div => Ok(Value::Scalar(Scalar::Double(p / q))),
        BinOp::Mod => Ok(Value::Scalar(Scalar::Double(p % q))),
        _ => match p.partial_cmp(&q) {
            Some(o) => compare(op, o),
            None => Ok(Value::Scalar(Scalar::Bool(i8::MIN))),
        },
    }
}

fn compare(op: BinOp, o: std::cmp::Ordering) -> Result<Value, EvalError> {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let r = match op {
        BinOp::Eq => o == Equal,
        BinOp::Ne => o != Equal,
        BinOp::Lt => o == Less,
        BinOp::Le => o != Greater,
        BinOp::Gt => o == Greater,
        BinOp::Ge => o != Less,
        _ => return Err(EvalError::runtime(format!("{op:?} is not a comparison"))),
    };
    Ok(Value::Scalar(Scalar::bool(r)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(v: i32) -> Value {
        Value::Scalar(Scalar::Int(v))
    }

    #[test]
    fn integer_arithmetic_stays_integer_and_promotes_on_overflow() {
        assert_eq!(binary(BinOp::Add, int(2), int(3)), Ok(int(5)));
        assert_eq!(binary(BinOp::Div, int(7), int(2)), Ok(int(3)));
        assert_eq!(
            binary(BinOp::Mul, int(i32::MAX), int(2)),
            Ok(Value::Scalar(Scalar::Long(i64::from(i32::MAX) * 2)))
        );
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
    }
}
