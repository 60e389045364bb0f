//! Compiling a condition or a new value into a [`ColExpr`] that travels to the participants:
//! the parts that name no column of the table are evaluated here, in the session, as constants
//! (so `now()` in a `where` means this moment, on the master too).

use xrepl_core::catalog::ColumnDef;
use xrepl_core::value::Value;
use xrepl_proto::txn::ColExpr;
use xrepl_query::lang::ast::{BinOp, Expr, ExprKind, UnaryOp};

use crate::session::args::{as_vector, bad, EvalError};
use crate::session::state::Session;

impl Session {
    /// Compiles a condition or value over a table's columns; parts that name no column are
    /// evaluated here, as constants.
    pub(crate) fn col_expr(
        &mut self,
        e: &Expr,
        columns: &[ColumnDef],
    ) -> Result<ColExpr, EvalError> {
        let is_col = |n: &str| columns.iter().any(|c| c.name == n);
        if !mentions_column(e, &is_col) {
            return Ok(match self.eval(e)? {
                Value::Scalar(s) => ColExpr::Const(s),
                Value::Vector(v) => ColExpr::ConstVector(v),
                other => return Err(bad(format!("a condition cannot use {}", other.kind_name()))),
            });
        }
        Ok(match &e.kind {
            ExprKind::Ident(n) => ColExpr::Column(n.clone()),
            ExprKind::Unary { op: UnaryOp::Not, expr } => ColExpr::Not(Box::new(self.col_expr(expr, columns)?)),
            ExprKind::Unary { op: UnaryOp::Neg, expr } => ColExpr::Neg(Box::new(self.col_expr(expr, columns)?)),
            ExprKind::Binary { op: BinOp::In, lhs, rhs } => {
                let given = self.eval(rhs)?;
                let set = as_vector(&given).unwrap_or_else(|| {
                    Err(bad(format!("'in' needs values, got {}", given.kind_name())))
                })?;
                ColExpr::In(Box::new(self.col_expr(lhs, columns)?), set)
            }
            ExprKind::Binary { op: BinOp::Between, lhs, rhs } => match self.eval(rhs)? {
                Value::Pair(lo, hi) => ColExpr::Between(Box::new(self.col_expr(lhs, columns)?), *lo, *hi),
                other => return Err(bad(format!("between needs a pair such as 1:5, got {}", other.kind_name()))),
            },
            ExprKind::Binary { op, lhs, rhs } => ColExpr::Binary(
                *op,
                Box::new(self.col_expr(lhs, columns)?),
                Box::new(self.col_expr(rhs, columns)?),
            ),
            _ => return Err(bad("only columns, constants, operators, 'in' and 'between' may be combined in a condition".to_string())),
        })
    }
}

fn mentions_column(e: &Expr, is_col: &dyn Fn(&str) -> bool) -> bool {
    match &e.kind {
        ExprKind::Ident(n) => is_col(n),
        ExprKind::Unary { expr, .. } => mentions_column(expr, is_col),
        ExprKind::Binary { lhs, rhs, .. } => {
            mentions_column(lhs, is_col) || mentions_column(rhs, is_col)
        }
        ExprKind::Call { args, .. } | ExprKind::Method { args, .. } => {
            args.iter().any(|a| mentions_column(&a.value, is_col))
        }
        _ => false,
    }
}
