//! Comparisons (`== != < <= > >=`, NULL the smallest value of its type) and the logic
//! operators `and`/`or`, the paths `binary` takes for them; and [`not`].

use std::cmp::Ordering;

use xrepl_core::operator::BinOp;
use xrepl_core::value::{DataType, Scalar, Value, Vector, NULL_BOOL};

use super::kernel::{
    class, cmp_f64, domain, factor, map1, scaled, type_error, with_int, with_num, zip_map, Class,
    Col, Dom, Elem, Int, IntCol, Num, NumCol, Operand,
};

/// A comparison kernel: `c` orders two elements, `op` picks the outcome.
#[inline]
fn cmp_kernel<A, B>(
    op: BinOp,
    a: &Col<'_, A>,
    b: &Col<'_, B>,
    c: impl Fn(&A, &B) -> Ordering,
) -> Option<Value> {
    use Ordering::{Equal, Greater, Less};
    let out = match op {
        BinOp::Eq => zip_map(a, b, |x, y| i8::from(c(x, y) == Equal)),
        BinOp::Ne => zip_map(a, b, |x, y| i8::from(c(x, y) != Equal)),
        BinOp::Lt => zip_map(a, b, |x, y| i8::from(c(x, y) == Less)),
        BinOp::Le => zip_map(a, b, |x, y| i8::from(c(x, y) != Greater)),
        BinOp::Gt => zip_map(a, b, |x, y| i8::from(c(x, y) == Greater)),
        BinOp::Ge => zip_map(a, b, |x, y| i8::from(c(x, y) != Less)),
        _ => return None,
    };
    Some(out.into_value(Scalar::Bool, Vector::Bool))
}

pub(super) fn compare(op: BinOp, x: &Operand, y: &Operand) -> Result<Value, String> {
    let err = || type_error(op, x.ty.name(), y.ty.name());
    let dom = domain(&[x.ty, y.ty]).ok_or_else(err)?;
    let out = match dom {
        Dom::Ints | Dom::Time(_) => {
            let (Some(p), Some(q)) = (x.ints(), y.ints()) else {
                return Err(err());
            };
            let (fa, fb) = (factor(x.ty, dom), factor(y.ty, dom));
            if fa == 1 && fb == 1 {
                with_int!(p, |s| with_int!(q, |t| cmp_kernel(op, s, t, |m, n| m
                    .wide()
                    .cmp(&n.wide()))))
            } else {
                with_int!(p, |s| with_int!(q, |t| cmp_kernel(op, s, t, |m, n| {
                    scaled(m.wide(), fa).cmp(&scaled(n.wide(), fb))
                })))
            }
        }
        Dom::F64 => {
            let (Some(p), Some(q)) = (x.nums(), y.nums()) else {
                return Err(err());
            };
            with_num!(p, |s| with_num!(q, |t| cmp_kernel(op, s, t, |m, n| {
                cmp_f64(m.float(), n.float())
            })))
        }
        Dom::Str => {
            let (Some(p), Some(q)) = (x.strs(), y.strs()) else {
                return Err(err());
            };
            cmp_kernel(op, p, q, |m: &String, n: &String| {
                m.as_str().cmp(n.as_str())
            })
        }
    };
    out.ok_or_else(err)
}

pub(super) fn logic(op: BinOp, x: &Operand, y: &Operand) -> Result<Value, String> {
    let err = || type_error(op, x.ty.name(), y.ty.name());
    let numeric = |t: DataType| matches!(class(t), Class::Int | Class::Float);
    if !numeric(x.ty) || !numeric(y.ty) {
        return Err(err());
    }
    let (Some(p), Some(q)) = (x.nums(), y.nums()) else {
        return Err(err());
    };
    let out = match op {
        BinOp::And => with_num!(p, |s| with_num!(q, |t| zip_map(s, t, |m, n| i8::from(
            m.truth() && n.truth()
        )))),
        BinOp::Or => with_num!(p, |s| with_num!(q, |t| zip_map(s, t, |m, n| i8::from(
            m.truth() || n.truth()
        )))),
        _ => return Err(err()),
    };
    Ok(out.into_value(Scalar::Bool, Vector::Bool))
}

// ---------------------------------------------------------------------------------------------
// not
// ---------------------------------------------------------------------------------------------

/// `not x`: BOOL or a number (non-zero is true) to BOOL; NULL stays NULL.
pub fn not(v: &Value) -> Result<Value, String> {
    let x = Operand::of_value(v).ok_or_else(|| format!("cannot apply not to {}", v.kind_name()))?;
    if !matches!(class(x.ty), Class::Int | Class::Float) {
        return Err(format!("cannot apply not to {}", x.ty));
    }
    let p = x
        .nums()
        .ok_or_else(|| format!("cannot apply not to {}", x.ty))?;
    let out = with_num!(p, |s| map1(s, |m| if m.is_nil() {
        NULL_BOOL
    } else {
        i8::from(!m.truth())
    }));
    Ok(out.into_value(Scalar::Bool, Vector::Bool))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::binary;
    use crate::ops::kernel::testing::*;
    use xrepl_core::value::NULL_INT;

    #[test]
    fn comparisons_broadcast_and_promote() {
        assert_eq!(
            bin(BinOp::Lt, &ints(&[1, 2, 3]), &int(2)),
            bools(&[1, 0, 0])
        );
        assert_eq!(
            bin(BinOp::Lt, &int(2), &ints(&[1, 2, 3])),
            bools(&[0, 0, 1])
        );
        assert_eq!(
            bin(BinOp::Le, &ints(&[1, 2, 3]), &int(2)),
            bools(&[1, 1, 0])
        );
        assert_eq!(
            bin(BinOp::Gt, &ints(&[1, 2, 3]), &int(2)),
            bools(&[0, 0, 1])
        );
        assert_eq!(
            bin(BinOp::Ge, &ints(&[1, 2, 3]), &int(2)),
            bools(&[0, 1, 1])
        );
        assert_eq!(
            bin(BinOp::Eq, &ints(&[1, 2, 3]), &int(2)),
            bools(&[0, 1, 0])
        );
        assert_eq!(
            bin(BinOp::Ne, &ints(&[1, 2, 3]), &int(2)),
            bools(&[1, 0, 1])
        );
        assert_eq!(
            bin(BinOp::Eq, &ints(&[1, 2]), &ints(&[1, 3])),
            bools(&[1, 0])
        );
        assert_eq!(bin(BinOp::Lt, &int(1), &int(2)), b(true));
        assert_eq!(bin(BinOp::Eq, &int(2), &sc(Scalar::Long(2))), b(true));
        assert_eq!(bin(BinOp::Lt, &int(2), &sc(Scalar::Double(2.5))), b(true));
        assert_eq!(bin(BinOp::Eq, &b(true), &int(1)), b(true));
        assert_eq!(
            bin(
                BinOp::Gt,
                &vc(Vector::Long(vec![3_000_000_000, -3_000_000_000])),
                &int(0)
            ),
            bools(&[1, 0])
        );
        let s = vc(strs(&["apple", "banana", ""]));
        assert_eq!(
            bin(BinOp::Lt, &s, &sc(Scalar::Symbol("b".into()))),
            bools(&[1, 0, 1])
        );
        assert_eq!(
            bin(BinOp::Eq, &sc(Scalar::string("banana")), &s),
            bools(&[0, 1, 0])
        );
    }

    #[test]
    fn null_is_the_smallest_value_in_comparisons() {
        let null = int(NULL_INT);
        assert_eq!(bin(BinOp::Lt, &null, &int(1)), b(true));
        assert_eq!(bin(BinOp::Lt, &null, &int(-2_000_000_000)), b(true));
        assert_eq!(bin(BinOp::Eq, &null, &null), b(true));
        assert_eq!(bin(BinOp::Eq, &null, &int(1)), b(false));
        assert_eq!(bin(BinOp::Ne, &null, &int(1)), b(true));
        assert_eq!(bin(BinOp::Gt, &int(1), &null), b(true));
        // INT NULL is still smallest against a LONG below the INT range
        assert_eq!(
            bin(BinOp::Lt, &null, &sc(Scalar::Long(-3_000_000_000))),
            b(true)
        );
        let nan = sc(Scalar::Double(f64::NAN));
        assert_eq!(bin(BinOp::Lt, &nan, &sc(Scalar::Double(-1e300))), b(true));
        assert_eq!(bin(BinOp::Eq, &nan, &nan), b(true));
        assert_eq!(bin(BinOp::Eq, &nan, &int(NULL_INT)), b(true));
        assert_eq!(bin(BinOp::Ge, &nan, &int(0)), b(false));
        assert_eq!(
            bin(
                BinOp::Lt,
                &vc(Vector::Double(vec![f64::NAN, 1.0, 2.0])),
                &sc(Scalar::Double(1.5))
            ),
            bools(&[1, 1, 0])
        );
        assert_eq!(
            bin(BinOp::Lt, &sc(Scalar::string("")), &sc(Scalar::string("a"))),
            b(true)
        );
        assert_eq!(
            bin(
                BinOp::Lt,
                &sc(Scalar::Date(NULL_INT)),
                &sc(Scalar::DateTime(0))
            ),
            b(true)
        );
        assert_eq!(
            bin(BinOp::Eq, &sc(Scalar::Bool(NULL_BOOL)), &b(false)),
            b(false)
        );
    }

    #[test]
    fn dates_compare_with_finer_temporals() {
        let d = sc(Scalar::Date(D0108));
        let dt = sc(Scalar::DateTime(DT0930));
        assert_eq!(bin(BinOp::Lt, &d, &dt), b(true));
        assert_eq!(bin(BinOp::Gt, &dt, &d), b(true));
        assert_eq!(
            bin(BinOp::Eq, &d, &sc(Scalar::DateTime(D0108 * 86_400))),
            b(true)
        );
        assert_eq!(
            bin(
                BinOp::Ge,
                &vc(Vector::DateTime(vec![DT0930, D0108 * 86_400 - 1])),
                &d
            ),
            bools(&[1, 0])
        );
        let ts = sc(Scalar::Timestamp(i64::from(D0108) * 86_400_000));
        assert_eq!(bin(BinOp::Eq, &d, &ts), b(true));
        let ns = sc(Scalar::NanoTimestamp(
            i64::from(D0108) * 86_400_000_000_000 + 1,
        ));
        assert_eq!(bin(BinOp::Lt, &d, &ns), b(true));
        assert_eq!(
            bin(
                BinOp::Eq,
                &sc(Scalar::DateTime(1)),
                &sc(Scalar::Timestamp(1_000))
            ),
            b(true)
        );
        assert_eq!(
            err(binary(BinOp::Lt, &d, &int(19_365))),
            "cannot compare DATE and INT"
        );
    }

    #[test]
    fn and_or_treat_null_as_false() {
        let x = bools(&[1, 1, 0, 0, NULL_BOOL]);
        let y = bools(&[1, 0, 1, 0, 1]);
        assert_eq!(bin(BinOp::And, &x, &y), bools(&[1, 0, 0, 0, 0]));
        assert_eq!(bin(BinOp::Or, &x, &y), bools(&[1, 1, 1, 0, 1]));
        assert_eq!(bin(BinOp::And, &x, &b(true)), bools(&[1, 1, 0, 0, 0]));
        assert_eq!(bin(BinOp::Or, &b(false), &x), bools(&[1, 1, 0, 0, 0]));
        assert_eq!(bin(BinOp::And, &b(true), &b(false)), b(false));
        assert_eq!(
            bin(BinOp::Or, &sc(Scalar::Bool(NULL_BOOL)), &b(false)),
            b(false)
        );
        assert_eq!(bin(BinOp::And, &int(2), &sc(Scalar::Double(0.5))), b(true));
    }
}
