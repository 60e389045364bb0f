//! [`binary`]: the one entry point of the binary operators, which hands each operator to its
//! kind (arithmetic, comparison, logic, membership) and applies the untyped-NULL rule.

use xrepl_core::operator::BinOp;
use xrepl_core::value::Value;

use super::arith::arith;
use super::compare::{compare, logic};
use super::kernel::{check_rows, op_symbol, type_error, Operand};
use super::membership::{between, is_in, retyped_null};

/// `a op b` element-wise, a scalar operand broadcast to every row of a vector one; two
/// scalars give a scalar. See the module documentation for the typing and NULL rules.
pub fn binary(op: BinOp, a: &Value, b: &Value) -> Result<Value, String> {
    match op {
        BinOp::In => return is_in(a, b),
        BinOp::Between => {
            return match b {
                Value::Pair(lo, hi) => between(a, lo, hi),
                _ => Err(format!(
                    "between needs a pair lo:hi on its right, got {}",
                    b.kind_name()
                )),
            }
        }
        BinOp::Range | BinOp::Pair => {
            return Err(format!(
                "the operator {} is not an element-wise operator",
                op_symbol(op)
            ))
        }
        _ => {}
    }
    let first = binary_values(op, a, b);
    if first.is_err() {
        // An untyped NULL scalar takes the other side's type.
        if let Some(a2) = retyped_null(a, b) {
            if let Ok(v) = binary_values(op, &a2, b) {
                return Ok(v);
            }
        }
        if let Some(b2) = retyped_null(b, a) {
            if let Ok(v) = binary_values(op, a, &b2) {
                return Ok(v);
            }
        }
    }
    first
}

fn binary_values(op: BinOp, a: &Value, b: &Value) -> Result<Value, String> {
    let (Some(x), Some(y)) = (Operand::of_value(a), Operand::of_value(b)) else {
        return Err(type_error(op, &a.kind_name(), &b.kind_name()));
    };
    check_rows(&x, &y)?;
    match op {
        BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod => arith(op, &x, &y),
        BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            compare(op, &x, &y)
        }
        BinOp::And | BinOp::Or => logic(op, &x, &y),
        _ => Err(format!(
            "the operator {} is not an element-wise operator",
            op_symbol(op)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::kernel::testing::*;
    use xrepl_core::value::{Scalar, Vector, NULL_INT};

    #[test]
    fn errors_name_lengths_kinds_and_operators() {
        assert_eq!(
            err(binary(BinOp::Add, &ints(&[1, 2, 3]), &ints(&[1, 2, 3, 4]))),
            "vectors of different lengths: 3 and 4"
        );
        assert_eq!(
            err(binary(BinOp::Eq, &ints(&[1]), &ints(&[1, 2]))),
            "vectors of different lengths: 1 and 2"
        );
        let t = Value::Table(ok(xrepl_core::value::Table::new(vec![], vec![])));
        assert_eq!(
            err(binary(BinOp::Add, &t, &int(1))),
            "cannot add a table and an INT scalar"
        );
        assert!(err(binary(BinOp::Range, &int(1), &int(3))).contains(".."));
        assert!(err(binary(BinOp::Pair, &int(1), &int(3))).contains(':'));
        assert!(err(binary(BinOp::Between, &int(1), &int(3))).contains("pair"));
    }

    #[test]
    fn untyped_null_takes_the_other_type() {
        let null = int(NULL_INT);
        let s = vc(strs(&["a", ""]));
        assert_eq!(bin(BinOp::Eq, &s, &null), bools(&[0, 1]));
        assert_eq!(bin(BinOp::Ne, &null, &s), bools(&[1, 0]));
        assert_eq!(
            bin(BinOp::Eq, &vc(Vector::Date(vec![1, NULL_INT])), &null),
            bools(&[0, 1])
        );
        assert_eq!(bin(BinOp::Sub, &null, &sc(Scalar::Date(3))), int(NULL_INT));
        assert_eq!(ok(is_in(&s, &null)), bools(&[0, 1]));
        // a non-NULL INT is still refused
        assert_eq!(
            err(binary(BinOp::Eq, &s, &int(1))),
            "cannot compare STRING and INT"
        );
    }

    #[test]
    fn in_and_between_through_binary() {
        assert_eq!(
            bin(BinOp::In, &ints(&[1, 2, 3]), &ints(&[2, 3])),
            bools(&[0, 1, 1])
        );
        let pair = Value::Pair(Box::new(Scalar::Int(2)), Box::new(Scalar::Int(3)));
        assert_eq!(
            bin(BinOp::Between, &ints(&[1, 2, 3, 4]), &pair),
            bools(&[0, 1, 1, 0])
        );
    }
}
