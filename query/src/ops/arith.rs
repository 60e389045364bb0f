//! Arithmetic: `+ - * / %` over numbers, temporals and strings (the arithmetic path of
//! `binary`), with checked integer and plain DOUBLE kernels, and unary minus ([`neg`]).

use xrepl_core::operator::BinOp;
use xrepl_core::value::{DataType, Scalar, Value, Vector, NULL_BOOL, NULL_INT, NULL_LONG};

use super::kernel::{
    class, map1, narrow, type_error, with_int, with_num, zip_map, Class, Col, Cols, Int, IntCol,
    Num, NumCol, Operand, Out, Unit,
};

pub(super) fn arith(op: BinOp, x: &Operand, y: &Operand) -> Result<Value, String> {
    let err = || type_error(op, x.ty.name(), y.ty.name());
    let out = match (class(x.ty), class(y.ty)) {
        (Class::Int, Class::Int) => {
            if x.ty == DataType::Long || y.ty == DataType::Long {
                DataType::Long
            } else {
                DataType::Int
            }
        }
        (Class::Int | Class::Float, Class::Int | Class::Float) => {
            let (Some(p), Some(q)) = (x.nums(), y.nums()) else {
                return Err(err());
            };
            return float_arith(op, p, q).ok_or_else(err);
        }
        (Class::Str, Class::Str) if op == BinOp::Add => {
            let (Some(p), Some(q)) = (x.strs(), y.strs()) else {
                return Err(err());
            };
            return Ok(zip_map(p, q, |m: &String, n: &String| {
                let mut s = String::with_capacity(m.len() + n.len());
                s.push_str(m);
                s.push_str(n);
                s
            })
            .into_value(Scalar::String, Vector::String));
        }
        (Class::Time(_), Class::Int) if matches!(op, BinOp::Add | BinOp::Sub) => x.ty,
        (Class::Int, Class::Time(_)) if op == BinOp::Add => y.ty,
        (Class::Time(u), Class::Time(_)) if op == BinOp::Sub && x.ty == y.ty => {
            if u <= Unit::Sec {
                DataType::Int
            } else {
                DataType::Long
            }
        }
        _ => return Err(err()),
    };
    let (Some(p), Some(q)) = (x.ints(), y.ints()) else {
        return Err(err());
    };
    int_arith(op, p, q, out).ok_or_else(err)
}

#[inline]
fn add_i64(x: i64, y: i64) -> i64 {
    if x == NULL_LONG || y == NULL_LONG {
        NULL_LONG
    } else {
        x.checked_add(y).unwrap_or(NULL_LONG)
    }
}

#[inline]
fn sub_i64(x: i64, y: i64) -> i64 {
    if x == NULL_LONG || y == NULL_LONG {
        NULL_LONG
    } else {
        x.checked_sub(y).unwrap_or(NULL_LONG)
    }
}

#[inline]
fn mul_i64(x: i64, y: i64) -> i64 {
    if x == NULL_LONG || y == NULL_LONG {
        NULL_LONG
    } else {
        x.checked_mul(y).unwrap_or(NULL_LONG)
    }
}

/// Floor division; NULL for NULL operands and a zero divisor.
#[inline]
fn div_i64(x: i64, y: i64) -> i64 {
    if x == NULL_LONG || y == NULL_LONG || y == 0 {
        return NULL_LONG;
    }
    // x is not i64::MIN (that is NULL), so neither `/` nor `%` can overflow.
    let q = x / y;
    if x % y != 0 && ((x < 0) != (y < 0)) {
        q - 1
    } else {
        q
    }
}

/// The remainder of floor division (it has the sign of the divisor); NULL for a zero divisor.
#[inline]
fn mod_i64(x: i64, y: i64) -> i64 {
    if x == NULL_LONG || y == NULL_LONG || y == 0 {
        return NULL_LONG;
    }
    let r = x % y;
    if r != 0 && ((r < 0) != (y < 0)) {
        r + y
    } else {
        r
    }
}

fn wrap_i32(out: Out<i32>, t: DataType) -> Value {
    match t {
        DataType::Date => out.into_value(Scalar::Date, Vector::Date),
        DataType::DateTime => out.into_value(Scalar::DateTime, Vector::DateTime),
        _ => out.into_value(Scalar::Int, Vector::Int),
    }
}

fn wrap_i64(out: Out<i64>, t: DataType) -> Value {
    match t {
        DataType::Timestamp => out.into_value(Scalar::Timestamp, Vector::Timestamp),
        DataType::NanoTimestamp => out.into_value(Scalar::NanoTimestamp, Vector::NanoTimestamp),
        _ => out.into_value(Scalar::Long, Vector::Long),
    }
}

/// One integer kernel: computes in LONG, then stores as `out` (INT and the 32-bit
/// temporals narrowed, NULL when out of range).
#[inline]
fn int_kernel<A: Int, B: Int>(
    a: &Col<'_, A>,
    b: &Col<'_, B>,
    out: DataType,
    f: impl Fn(i64, i64) -> i64,
) -> Value {
    match out {
        DataType::Int | DataType::Date | DataType::DateTime => {
            wrap_i32(zip_map(a, b, |x, y| narrow(f(x.wide(), y.wide()))), out)
        }
        _ => wrap_i64(zip_map(a, b, |x, y| f(x.wide(), y.wide())), out),
    }
}

fn int_arith(op: BinOp, a: IntCol, b: IntCol, out: DataType) -> Option<Value> {
    macro_rules! run {
        ($f:expr) => {
            with_int!(a, |x| with_int!(b, |y| int_kernel(x, y, out, $f)))
        };
    }
    Some(match op {
        BinOp::Add => run!(add_i64),
        BinOp::Sub => run!(sub_i64),
        BinOp::Mul => run!(mul_i64),
        BinOp::Div => run!(div_i64),
        BinOp::Mod => run!(mod_i64),
        _ => return None,
    })
}

#[inline]
fn div_f64(x: f64, y: f64) -> f64 {
    if y == 0.0 {
        f64::NAN
    } else {
        x / y
    }
}

#[inline]
fn mod_f64(x: f64, y: f64) -> f64 {
    if y == 0.0 {
        return f64::NAN;
    }
    let r = x % y;
    if r != 0.0 && ((r < 0.0) != (y < 0.0)) {
        r + y
    } else {
        r
    }
}

#[inline]
fn float_kernel<A: Num, B: Num>(
    a: &Col<'_, A>,
    b: &Col<'_, B>,
    f: impl Fn(f64, f64) -> f64,
) -> Value {
    zip_map(a, b, |x, y| f(x.float(), y.float())).into_value(Scalar::Double, Vector::Double)
}

fn float_arith(op: BinOp, a: NumCol, b: NumCol) -> Option<Value> {
    macro_rules! run {
        ($f:expr) => {
            with_num!(a, |x| with_num!(b, |y| float_kernel(x, y, $f)))
        };
    }
    Some(match op {
        BinOp::Add => run!(|x, y| x + y),
        BinOp::Sub => run!(|x, y| x - y),
        BinOp::Mul => run!(|x, y| x * y),
        BinOp::Div => run!(div_f64),
        BinOp::Mod => run!(mod_f64),
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Unary minus
// ---------------------------------------------------------------------------------------------

/// `-x` for numbers (BOOL gives INT); NULL stays NULL.
pub fn neg(v: &Value) -> Result<Value, String> {
    let x = Operand::of_value(v).ok_or_else(|| format!("cannot negate {}", v.kind_name()))?;
    let err = || format!("cannot negate {}", x.ty);
    // `wrapping_neg` maps the NULL sentinel (the type's MIN) to itself and nothing else there.
    Ok(match (x.ty, &x.cols) {
        (DataType::Bool, Cols::Bool(c)) => map1(c, |m| {
            if *m == NULL_BOOL {
                NULL_INT
            } else {
                -i32::from(*m)
            }
        })
        .into_value(Scalar::Int, Vector::Int),
        (DataType::Int, Cols::I32(c)) => {
            map1(c, |m| m.wrapping_neg()).into_value(Scalar::Int, Vector::Int)
        }
        (DataType::Long, Cols::I64(c)) => {
            map1(c, |m| m.wrapping_neg()).into_value(Scalar::Long, Vector::Long)
        }
        (DataType::Double, Cols::F64(c)) => {
            map1(c, |m| -*m).into_value(Scalar::Double, Vector::Double)
        }
        _ => return Err(err()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::kernel::testing::*;
    use crate::ops::{binary, not};

    #[test]
    fn add_broadcasts_both_ways() {
        assert_eq!(
            bin(BinOp::Add, &int(1), &ints(&[1, 2, 3])),
            ints(&[2, 3, 4])
        );
        assert_eq!(
            bin(BinOp::Add, &ints(&[1, 2, 3]), &int(10)),
            ints(&[11, 12, 13])
        );
        assert_eq!(
            bin(BinOp::Add, &ints(&[1, 2, 3]), &ints(&[10, 20, 30])),
            ints(&[11, 22, 33])
        );
        assert_eq!(bin(BinOp::Add, &int(2), &int(3)), int(5));
        assert_eq!(bin(BinOp::Sub, &int(10), &ints(&[1, 2])), ints(&[9, 8]));
        assert_eq!(bin(BinOp::Sub, &ints(&[1, 2]), &int(10)), ints(&[-9, -8]));
        assert_eq!(bin(BinOp::Mul, &int(3), &ints(&[1, 2])), ints(&[3, 6]));
        assert_eq!(bin(BinOp::Mul, &ints(&[1, 2]), &int(3)), ints(&[3, 6]));
        assert_eq!(bin(BinOp::Div, &int(12), &ints(&[3, 5])), ints(&[4, 2]));
        assert_eq!(bin(BinOp::Div, &ints(&[12, 7]), &int(2)), ints(&[6, 3]));
        assert_eq!(bin(BinOp::Mod, &int(12), &ints(&[5, 7])), ints(&[2, 5]));
        assert_eq!(bin(BinOp::Mod, &ints(&[12, 7]), &int(5)), ints(&[2, 2]));
        assert_eq!(
            bin(BinOp::Add, &ints(&[]), &int(1)),
            vc(Vector::Int(Vec::new()))
        );
    }

    #[test]
    fn numeric_promotion() {
        let long = sc(Scalar::Long(5));
        let dbl = sc(Scalar::Double(0.5));
        assert_eq!(bin(BinOp::Add, &int(1), &long), sc(Scalar::Long(6)));
        assert_eq!(bin(BinOp::Add, &long, &int(1)), sc(Scalar::Long(6)));
        assert_eq!(
            bin(BinOp::Mul, &ints(&[1, 2]), &long),
            vc(Vector::Long(vec![5, 10]))
        );
        assert_eq!(doubles(&bin(BinOp::Add, &int(1), &dbl)), vec![Some(1.5)]);
        assert_eq!(doubles(&bin(BinOp::Add, &dbl, &long)), vec![Some(5.5)]);
        assert_eq!(
            doubles(&bin(BinOp::Mul, &ints(&[2, 4]), &dbl)),
            vec![Some(1.0), Some(2.0)]
        );
        // BOOL acts as INT
        assert_eq!(bin(BinOp::Add, &b(true), &b(true)), int(2));
        assert_eq!(bin(BinOp::Add, &bools(&[1, 0]), &int(5)), ints(&[6, 5]));
        assert_eq!(bin(BinOp::Add, &b(true), &long), sc(Scalar::Long(6)));
        assert_eq!(doubles(&bin(BinOp::Add, &b(true), &dbl)), vec![Some(1.5)]);
        // DOUBLE division is real division
        assert_eq!(
            doubles(&bin(BinOp::Div, &sc(Scalar::Double(7.0)), &int(2))),
            vec![Some(3.5)]
        );
    }

    #[test]
    fn integer_division_floors_and_zero_divisor_is_null() {
        assert_eq!(bin(BinOp::Div, &int(7), &int(2)), int(3));
        assert_eq!(bin(BinOp::Div, &int(-7), &int(2)), int(-4));
        assert_eq!(bin(BinOp::Div, &int(7), &int(-2)), int(-4));
        assert_eq!(bin(BinOp::Div, &int(-7), &int(-2)), int(3));
        assert_eq!(bin(BinOp::Div, &int(-6), &int(2)), int(-3));
        assert_eq!(bin(BinOp::Mod, &int(7), &int(3)), int(1));
        assert_eq!(bin(BinOp::Mod, &int(-7), &int(3)), int(2));
        assert_eq!(bin(BinOp::Mod, &int(7), &int(-3)), int(-2));
        assert_eq!(bin(BinOp::Mod, &int(-6), &int(3)), int(0));
        assert_eq!(bin(BinOp::Div, &int(7), &int(0)), int(NULL_INT));
        assert_eq!(bin(BinOp::Mod, &int(7), &int(0)), int(NULL_INT));
        assert_eq!(
            bin(BinOp::Div, &ints(&[1, 2]), &ints(&[0, 1])),
            ints(&[NULL_INT, 2])
        );
        assert_eq!(
            bin(BinOp::Div, &sc(Scalar::Long(9)), &sc(Scalar::Long(0))),
            sc(Scalar::Long(NULL_LONG))
        );
        let d = |x: f64| sc(Scalar::Double(x));
        assert_eq!(doubles(&bin(BinOp::Div, &d(1.0), &d(0.0))), vec![None]);
        assert_eq!(doubles(&bin(BinOp::Div, &d(1.0), &int(0))), vec![None]);
        assert_eq!(doubles(&bin(BinOp::Mod, &d(5.5), &d(2.0))), vec![Some(1.5)]);
        assert_eq!(
            doubles(&bin(BinOp::Mod, &d(-5.5), &d(2.0))),
            vec![Some(0.5)]
        );
        assert_eq!(doubles(&bin(BinOp::Mod, &d(5.5), &d(0.0))), vec![None]);
    }

    #[test]
    fn integer_overflow_gives_null() {
        assert_eq!(bin(BinOp::Add, &int(i32::MAX), &int(1)), int(NULL_INT));
        assert_eq!(bin(BinOp::Sub, &int(-i32::MAX), &int(2)), int(NULL_INT));
        assert_eq!(bin(BinOp::Mul, &int(65_536), &int(65_536)), int(NULL_INT));
        assert_eq!(
            bin(BinOp::Add, &sc(Scalar::Long(i64::MAX)), &int(1)),
            sc(Scalar::Long(NULL_LONG))
        );
        assert_eq!(
            bin(
                BinOp::Mul,
                &sc(Scalar::Long(i64::MAX)),
                &sc(Scalar::Long(2))
            ),
            sc(Scalar::Long(NULL_LONG))
        );
        // an INT overflow does not spill into a LONG: promotion is by type only
        assert_eq!(
            bin(BinOp::Add, &int(i32::MAX), &sc(Scalar::Long(1))),
            sc(Scalar::Long(i64::from(i32::MAX) + 1))
        );
    }

    #[test]
    fn nulls_propagate_through_arithmetic() {
        assert_eq!(bin(BinOp::Add, &int(NULL_INT), &int(1)), int(NULL_INT));
        assert_eq!(
            bin(BinOp::Mul, &ints(&[1, NULL_INT, 3]), &int(2)),
            ints(&[2, NULL_INT, 6])
        );
        assert_eq!(
            bin(BinOp::Add, &int(NULL_INT), &sc(Scalar::Long(1))),
            sc(Scalar::Long(NULL_LONG))
        );
        assert_eq!(
            doubles(&bin(BinOp::Add, &int(NULL_INT), &sc(Scalar::Double(1.0)))),
            vec![None]
        );
        assert_eq!(
            doubles(&bin(
                BinOp::Add,
                &vc(Vector::Double(vec![1.0, f64::NAN])),
                &int(1)
            )),
            vec![Some(2.0), None]
        );
        assert_eq!(
            bin(BinOp::Add, &sc(Scalar::Bool(NULL_BOOL)), &int(1)),
            int(NULL_INT)
        );
        assert_eq!(bin(BinOp::Div, &int(NULL_INT), &int(0)), int(NULL_INT));
        assert_eq!(
            bin(BinOp::Add, &sc(Scalar::Date(NULL_INT)), &int(1)),
            sc(Scalar::Date(NULL_INT))
        );
    }

    #[test]
    fn temporal_arithmetic() {
        let t = bin(BinOp::Add, &sc(Scalar::DateTime(DT0930)), &int(60));
        assert_eq!(t, sc(Scalar::DateTime(DT0930 + 60)));
        let Value::Scalar(s) = &t else {
            panic!("expected a scalar")
        };
        assert_eq!(s.render(), "2023.01.08T09:31:00");
        assert_eq!(
            bin(BinOp::Add, &int(60), &sc(Scalar::DateTime(DT0930))),
            sc(Scalar::DateTime(DT0930 + 60))
        );
        assert_eq!(
            bin(BinOp::Add, &sc(Scalar::Date(D0108)), &int(1)),
            sc(Scalar::Date(D0108 + 1))
        );
        assert_eq!(
            bin(BinOp::Sub, &sc(Scalar::Date(D0108)), &sc(Scalar::Long(7))),
            sc(Scalar::Date(19_358))
        );
        assert_eq!(
            bin(BinOp::Add, &sc(Scalar::Timestamp(1_000)), &int(500)),
            sc(Scalar::Timestamp(1_500))
        );
        assert_eq!(
            bin(BinOp::Add, &sc(Scalar::NanoTimestamp(1_000)), &b(true)),
            sc(Scalar::NanoTimestamp(1_001))
        );
        assert_eq!(
            bin(
                BinOp::Add,
                &vc(Vector::Date(vec![D0108, NULL_INT])),
                &ints(&[1, 2])
            ),
            vc(Vector::Date(vec![D0108 + 1, NULL_INT]))
        );
        assert_eq!(
            bin(
                BinOp::Add,
                &vc(Vector::DateTime(vec![DT0930, DT0930 + 1])),
                &int(60)
            ),
            vc(Vector::DateTime(vec![DT0930 + 60, DT0930 + 61]))
        );
        // differences
        assert_eq!(
            bin(
                BinOp::Sub,
                &sc(Scalar::Date(D0108)),
                &sc(Scalar::Date(19_358))
            ),
            int(7)
        );
        assert_eq!(
            bin(
                BinOp::Sub,
                &sc(Scalar::DateTime(DT0930)),
                &sc(Scalar::DateTime(DT0930 - 90))
            ),
            int(90)
        );
        assert_eq!(
            bin(
                BinOp::Sub,
                &sc(Scalar::Timestamp(5_000)),
                &sc(Scalar::Timestamp(2_000))
            ),
            sc(Scalar::Long(3_000))
        );
        assert_eq!(
            bin(
                BinOp::Sub,
                &sc(Scalar::NanoTimestamp(5)),
                &sc(Scalar::NanoTimestamp(7))
            ),
            sc(Scalar::Long(-2))
        );
        // out of range gives NULL
        assert_eq!(
            bin(BinOp::Add, &sc(Scalar::DateTime(i32::MAX - 1)), &int(60)),
            sc(Scalar::DateTime(NULL_INT))
        );
    }

    #[test]
    fn temporal_arithmetic_refuses_nonsense() {
        let d = sc(Scalar::Date(D0108));
        assert_eq!(
            err(binary(BinOp::Sub, &int(1), &d)),
            "cannot subtract DATE from INT"
        );
        assert_eq!(
            err(binary(BinOp::Mul, &d, &int(2))),
            "cannot multiply DATE and INT"
        );
        assert_eq!(err(binary(BinOp::Add, &d, &d)), "cannot add DATE and DATE");
        assert_eq!(
            err(binary(BinOp::Add, &d, &sc(Scalar::Double(1.5)))),
            "cannot add DATE and DOUBLE"
        );
        assert_eq!(
            err(binary(BinOp::Sub, &d, &sc(Scalar::DateTime(DT0930)))),
            "cannot subtract DATETIME from DATE"
        );
        assert_eq!(
            err(binary(BinOp::Div, &d, &int(2))),
            "cannot divide DATE by INT"
        );
    }

    #[test]
    fn strings_concatenate_and_refuse_numbers() {
        let a = sc(Scalar::string("ab"));
        assert_eq!(
            bin(BinOp::Add, &a, &sc(Scalar::Symbol("c".into()))),
            sc(Scalar::string("abc"))
        );
        assert_eq!(
            bin(
                BinOp::Add,
                &vc(Vector::Symbol(vec!["x".into(), "y".into()])),
                &a
            ),
            vc(strs(&["xab", "yab"]))
        );
        assert_eq!(
            err(binary(BinOp::Add, &a, &int(1))),
            "cannot add STRING and INT"
        );
        assert_eq!(
            err(binary(BinOp::Sub, &a, &a)),
            "cannot subtract STRING from STRING"
        );
        assert_eq!(
            err(binary(BinOp::Lt, &a, &int(1))),
            "cannot compare STRING and INT"
        );
        assert_eq!(
            err(binary(BinOp::And, &a, &b(true))),
            "cannot apply and to STRING and BOOL"
        );
    }

    #[test]
    fn not_and_neg() {
        assert_eq!(
            ok(not(&bools(&[1, 0, NULL_BOOL]))),
            bools(&[0, 1, NULL_BOOL])
        );
        assert_eq!(ok(not(&int(0))), b(true));
        assert_eq!(ok(not(&sc(Scalar::Double(2.0)))), b(false));
        assert_eq!(ok(not(&int(NULL_INT))), sc(Scalar::Bool(NULL_BOOL)));
        assert_eq!(
            err(not(&sc(Scalar::string("x")))),
            "cannot apply not to STRING"
        );
        assert_eq!(ok(neg(&ints(&[1, -2, NULL_INT]))), ints(&[-1, 2, NULL_INT]));
        assert_eq!(ok(neg(&sc(Scalar::Long(5)))), sc(Scalar::Long(-5)));
        assert_eq!(
            ok(neg(&sc(Scalar::Long(NULL_LONG)))),
            sc(Scalar::Long(NULL_LONG))
        );
        assert_eq!(
            doubles(&ok(neg(&sc(Scalar::Double(1.5))))),
            vec![Some(-1.5)]
        );
        assert_eq!(doubles(&ok(neg(&sc(Scalar::Double(f64::NAN))))), vec![None]);
        assert_eq!(
            ok(neg(&bools(&[1, 0, NULL_BOOL]))),
            ints(&[-1, 0, NULL_INT])
        );
        assert_eq!(err(neg(&sc(Scalar::Date(1)))), "cannot negate DATE");
        assert_eq!(
            err(neg(&Value::Void)),
            format!("cannot negate {}", Value::Void.kind_name())
        );
    }

    #[test]
    fn million_row_add_completes() {
        let n = 1_000_000;
        let a: Vec<i32> = (0..n).collect();
        let b: Vec<i32> = (0..n).map(|i| n - i).collect();
        let out = bin(BinOp::Add, &vc(Vector::Int(a)), &vc(Vector::Int(b)));
        let Value::Vector(Vector::Int(xs)) = out else {
            panic!("expected an INT vector")
        };
        assert_eq!(xs.len(), 1_000_000);
        assert!(xs.iter().all(|x| *x == n));
    }
}
