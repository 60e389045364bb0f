//! Computing what transactions and scans carry, over a chunk's columns: the conditions and new
//! values of a [`ColExpr`], and the partial aggregates ([`Partial`]) a scan answers and the
//! coordinator merges. The types are the wire's (`xrepl_proto::txn`); the arithmetic is the
//! language's vector operations (`xrepl_query::ops`).

use xrepl_core::operator::BinOp;
use xrepl_core::value::{DataType, Scalar, Value, Vector, NULL_LONG};
use xrepl_proto::txn::{AggFn, ColExpr, Partial};
use xrepl_query::ops;

/// Evaluating a [`ColExpr`] over columns.
pub trait EvalColumns {
    /// Evaluates over columns found by `column` (all of one length).
    fn eval<'a>(&self, column: &dyn Fn(&str) -> Option<&'a Vector>) -> Result<Value, String>;

    /// Evaluates a condition to a row mask.
    fn mask<'a>(
        &self,
        column: &dyn Fn(&str) -> Option<&'a Vector>,
        rows: usize,
    ) -> Result<Vec<bool>, String>;
}

impl EvalColumns for ColExpr {
    fn eval<'a>(&self, column: &dyn Fn(&str) -> Option<&'a Vector>) -> Result<Value, String> {
        Ok(match self {
            ColExpr::Column(c) => Value::Vector(
                column(c)
                    .cloned()
                    .ok_or_else(|| format!("column '{c}' does not exist"))?,
            ),
            ColExpr::Const(s) => Value::Scalar(s.clone()),
            ColExpr::ConstVector(v) => Value::Vector(v.clone()),
            ColExpr::Binary(op, a, b) => ops::binary(*op, &a.eval(column)?, &b.eval(column)?)?,
            ColExpr::Not(a) => ops::not(&a.eval(column)?)?,
            ColExpr::Neg(a) => ops::neg(&a.eval(column)?)?,
            ColExpr::In(a, set) => ops::is_in(&a.eval(column)?, &Value::Vector(set.clone()))?,
            ColExpr::Between(a, lo, hi) => ops::between(&a.eval(column)?, lo, hi)?,
        })
    }

    fn mask<'a>(
        &self,
        column: &dyn Fn(&str) -> Option<&'a Vector>,
        rows: usize,
    ) -> Result<Vec<bool>, String> {
        ops::mask_of(&self.eval(column)?, rows)
    }
}

/// Building, merging and finishing [`Partial`] aggregates.
pub trait Aggregate: Sized {
    /// The partial aggregate of the non-NULL values of `v`.
    fn of(v: &Vector) -> Result<Self, String>;
    /// Folds another partial of the same column into this one.
    fn merge(&mut self, o: &Self) -> Result<(), String>;
    /// The final value of `f` over a column of type `t`.
    fn finish(&self, f: AggFn, t: DataType) -> Scalar;
}

impl Aggregate for Partial {
    fn of(v: &Vector) -> Result<Partial, String> {
        let count = ops::count(v);
        let (sum_f, sum_i) = match v.data_type() {
            DataType::Int | DataType::Long | DataType::Bool | DataType::Double => {
                match ops::sum(v)? {
                    Scalar::Long(x) if x != NULL_LONG => (x as f64, x),
                    Scalar::Double(x) if !x.is_nan() => (x, 0),
                    _ => (0.0, 0),
                }
            }
            _ => (0.0, 0),
        };
        let some = |s: Scalar| (!s.is_null()).then_some(s);
        Ok(Partial {
            count,
            sum_f,
            sum_i,
            min: if count > 0 { some(ops::min(v)?) } else { None },
            max: if count > 0 { some(ops::max(v)?) } else { None },
        })
    }

    fn merge(&mut self, o: &Partial) -> Result<(), String> {
        self.count += o.count;
        self.sum_f += o.sum_f;
        self.sum_i = self.sum_i.wrapping_add(o.sum_i);
        let pick =
            |mine: &mut Option<Scalar>, theirs: &Option<Scalar>, op: BinOp| -> Result<(), String> {
                if let Some(t) = theirs {
                    let better = match mine {
                        None => true,
                        Some(m) => matches!(
                            ops::binary(op, &Value::Scalar(t.clone()), &Value::Scalar(m.clone()))?,
                            Value::Scalar(Scalar::Bool(1))
                        ),
                    };
                    if better {
                        *mine = Some(t.clone());
                    }
                }
                Ok(())
            };
        pick(&mut self.min, &o.min, BinOp::Lt)?;
        pick(&mut self.max, &o.max, BinOp::Gt)?;
        Ok(())
    }

    fn finish(&self, f: AggFn, t: DataType) -> Scalar {
        match f {
            AggFn::Count => Scalar::Long(self.count),
            AggFn::Sum if self.count == 0 => match t {
                DataType::Double => Scalar::Double(f64::NAN),
                _ => Scalar::Long(NULL_LONG),
            },
            AggFn::Sum => match t {
                DataType::Double => Scalar::Double(self.sum_f),
                _ => Scalar::Long(self.sum_i),
            },
            AggFn::Avg if self.count == 0 => Scalar::Double(f64::NAN),
            AggFn::Avg => Scalar::Double(self.sum_f / self.count as f64),
            AggFn::Min => self.min.clone().unwrap_or_else(|| ops::null_of(t)),
            AggFn::Max => self.max.clone().unwrap_or_else(|| ops::null_of(t)),
        }
    }
}
