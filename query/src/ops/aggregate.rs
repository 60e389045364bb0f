//! Aggregates over a vector's non-NULL values: [`sum`], [`avg`], [`min`], [`max`], [`count`].

use xrepl_core::value::{Scalar, Vector, NULL_LONG};

use super::kernel::{Elem, Int};

/// The sum of the non-NULL integers as an exact 128-bit value, and whether there was one.
fn sum_ints<T: Int>(xs: &[T]) -> (i128, usize) {
    let mut acc: i128 = 0;
    let mut n = 0usize;
    for x in xs {
        let w = x.wide();
        if w != NULL_LONG {
            acc += i128::from(w);
            n += 1;
        }
    }
    (acc, n)
}

fn sum_floats(xs: &[f64]) -> (f64, usize) {
    let mut acc = 0.0;
    let mut n = 0usize;
    for &x in xs {
        if !x.is_nan() {
            acc += x;
            n += 1;
        }
    }
    (acc, n)
}

/// The sum of the non-NULL values: LONG for BOOL, INT and LONG (NULL if it overflows),
/// DOUBLE for DOUBLE; NULL of that type when there is no non-NULL value.
pub fn sum(v: &Vector) -> Result<Scalar, String> {
    let long = |(acc, n): (i128, usize)| {
        Scalar::Long(if n == 0 {
            NULL_LONG
        } else {
            i64::try_from(acc).unwrap_or(NULL_LONG)
        })
    };
    Ok(match v {
        Vector::Bool(xs) => long(sum_ints(xs)),
        Vector::Int(xs) => long(sum_ints(xs)),
        Vector::Long(xs) => long(sum_ints(xs)),
        Vector::Double(xs) => {
            let (acc, n) = sum_floats(xs);
            Scalar::Double(if n == 0 { f64::NAN } else { acc })
        }
        _ => return Err(format!("cannot sum {} values", v.data_type())),
    })
}

/// The mean of the non-NULL numbers as a DOUBLE; NULL when there is none.
pub fn avg(v: &Vector) -> Result<Scalar, String> {
    let (acc, n) = match v {
        Vector::Bool(xs) => {
            let (acc, n) = sum_ints(xs);
            (acc as f64, n)
        }
        Vector::Int(xs) => {
            let (acc, n) = sum_ints(xs);
            (acc as f64, n)
        }
        Vector::Long(xs) => {
            let (acc, n) = sum_ints(xs);
            (acc as f64, n)
        }
        Vector::Double(xs) => sum_floats(xs),
        _ => return Err(format!("cannot average {} values", v.data_type())),
    };
    Ok(Scalar::Double(if n == 0 {
        f64::NAN
    } else {
        acc / n as f64
    }))
}

/// Which end of the values [`extreme`] picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Min,
    Max,
}

fn pick<T: Elem + Copy + Ord>(xs: &[T], end: End) -> T {
    let it = xs.iter().copied().filter(|x| !x.is_nil());
    match end {
        End::Max => it.max(),
        End::Min => it.min(),
    }
    .unwrap_or_else(T::null)
}

fn pick_f64(xs: &[f64], end: End) -> f64 {
    // `f64::max`/`min` ignore a NaN operand, so NaN survives only if every value is NaN.
    match end {
        End::Max => xs.iter().fold(f64::NAN, |a, &x| a.max(x)),
        End::Min => xs.iter().fold(f64::NAN, |a, &x| a.min(x)),
    }
}

fn pick_str(xs: &[String], end: End) -> String {
    let it = xs.iter().filter(|x| !x.is_empty());
    match end {
        End::Max => it.max(),
        End::Min => it.min(),
    }
    .cloned()
    .unwrap_or_default()
}

fn extreme(v: &Vector, max: End) -> Scalar {
    match v {
        Vector::Bool(xs) => Scalar::Bool(pick(xs, max)),
        Vector::Int(xs) => Scalar::Int(pick(xs, max)),
        Vector::Long(xs) => Scalar::Long(pick(xs, max)),
        Vector::Double(xs) => Scalar::Double(pick_f64(xs, max)),
        Vector::String(xs) => Scalar::String(pick_str(xs, max)),
        Vector::Symbol(xs) => Scalar::Symbol(pick_str(xs, max)),
        Vector::Date(xs) => Scalar::Date(pick(xs, max)),
        Vector::DateTime(xs) => Scalar::DateTime(pick(xs, max)),
        Vector::Timestamp(xs) => Scalar::Timestamp(pick(xs, max)),
        Vector::NanoTimestamp(xs) => Scalar::NanoTimestamp(pick(xs, max)),
    }
}

/// The smallest non-NULL value, of the vector's type (every type); NULL when there is none.
pub fn min(v: &Vector) -> Result<Scalar, String> {
    Ok(extreme(v, End::Min))
}

/// The largest non-NULL value, of the vector's type (every type); NULL when there is none.
pub fn max(v: &Vector) -> Result<Scalar, String> {
    Ok(extreme(v, End::Max))
}

fn count_of<T: Elem>(xs: &[T]) -> usize {
    xs.iter().filter(|x| !x.is_nil()).count()
}

/// The number of non-NULL values.
pub fn count(v: &Vector) -> i64 {
    let n = match v {
        Vector::Bool(xs) => count_of(xs),
        Vector::Int(xs) | Vector::Date(xs) | Vector::DateTime(xs) => count_of(xs),
        Vector::Long(xs) | Vector::Timestamp(xs) | Vector::NanoTimestamp(xs) => count_of(xs),
        Vector::Double(xs) => count_of(xs),
        Vector::String(xs) | Vector::Symbol(xs) => count_of(xs),
    };
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::kernel::testing::*;
    use xrepl_core::value::{DataType, NULL_BOOL, NULL_INT};

    #[test]
    fn aggregates_skip_nulls() {
        let v = Vector::Int(vec![1, NULL_INT, 3]);
        assert_eq!(ok(sum(&v)), Scalar::Long(4));
        assert_eq!(ok(avg(&v)), Scalar::Double(2.0));
        assert_eq!(ok(min(&v)), Scalar::Int(1));
        assert_eq!(ok(max(&v)), Scalar::Int(3));
        assert_eq!(count(&v), 2);
        assert_eq!(
            ok(sum(&Vector::Bool(vec![1, 1, 0, NULL_BOOL]))),
            Scalar::Long(2)
        );
        assert_eq!(
            ok(sum(&Vector::Long(vec![i64::MAX, 1]))),
            Scalar::Long(NULL_LONG)
        );
        assert_eq!(
            ok(sum(&Vector::Long(vec![i64::MAX, 1, -2]))),
            Scalar::Long(i64::MAX - 1)
        );
        assert_eq!(
            ok(sum(&Vector::Double(vec![1.5, f64::NAN, 2.0]))),
            Scalar::Double(3.5)
        );
        assert_eq!(ok(min(&Vector::Int(vec![NULL_INT, -5]))), Scalar::Int(-5));
        assert_eq!(
            ok(max(&Vector::Double(vec![f64::NAN, -1.0, -3.0]))),
            Scalar::Double(-1.0)
        );
        assert_eq!(
            ok(min(&Vector::Double(vec![f64::NAN, -1.0, -3.0]))),
            Scalar::Double(-3.0)
        );
        assert_eq!(
            ok(min(&strs(&["pear", "", "apple"]))),
            Scalar::string("apple")
        );
        assert_eq!(
            ok(max(&strs(&["pear", "", "apple"]))),
            Scalar::string("pear")
        );
        assert_eq!(
            ok(max(&Vector::Symbol(vec!["a".into(), "b".into()]))),
            Scalar::Symbol("b".into())
        );
        assert_eq!(
            ok(max(&Vector::Date(vec![1, NULL_INT, 3]))),
            Scalar::Date(3)
        );
        assert_eq!(
            ok(min(&Vector::Timestamp(vec![NULL_LONG, 7, 5]))),
            Scalar::Timestamp(5)
        );
        assert_eq!(count(&strs(&["a", "", "b"])), 2);
        assert_eq!(count(&Vector::Double(vec![f64::NAN, 1.0])), 1);
        assert_eq!(ok(avg(&Vector::Long(vec![1, 2]))), Scalar::Double(1.5));
    }

    #[test]
    fn aggregates_of_nothing_are_null() {
        for v in [Vector::Int(vec![]), Vector::Int(vec![NULL_INT, NULL_INT])] {
            assert_eq!(ok(sum(&v)), Scalar::Long(NULL_LONG));
            assert!(ok(avg(&v)).is_null());
            assert_eq!(ok(min(&v)), Scalar::Int(NULL_INT));
            assert_eq!(ok(max(&v)), Scalar::Int(NULL_INT));
            assert_eq!(count(&v), 0);
        }
        assert!(ok(sum(&Vector::Double(vec![]))).is_null());
        assert_eq!(
            ok(sum(&Vector::Double(vec![]))).data_type(),
            DataType::Double
        );
        assert!(ok(max(&Vector::Double(vec![f64::NAN]))).is_null());
        assert_eq!(ok(min(&strs(&[]))), Scalar::string(""));
        assert_eq!(
            ok(min(&Vector::NanoTimestamp(vec![]))),
            Scalar::NanoTimestamp(NULL_LONG)
        );
    }

    #[test]
    fn aggregates_refuse_strings_and_times() {
        assert_eq!(err(sum(&strs(&["a"]))), "cannot sum STRING values");
        assert_eq!(
            err(avg(&Vector::Date(vec![1]))),
            "cannot average DATE values"
        );
    }
}
