//! Column plumbing: [`filter`] by a mask, [`take_indices`], [`concat`](fn@concat),
//! [`mask_of`] a condition, and the NULLs of every type ([`null_of`], [`nulls`]).

use std::borrow::Cow;

use xrepl_core::value::{DataType, Scalar, Value, Vector, NULL_BOOL, NULL_INT, NULL_LONG};

use super::cast::cast;
use super::kernel::{class, Class, Elem, Num};

/// Builds a vector of the same type as `$v` from `$body`, with `$xs` bound to its elements.
macro_rules! per_vector {
    ($v:expr, |$xs:ident| $body:expr) => {
        match $v {
            Vector::Bool($xs) => Vector::Bool($body),
            Vector::Int($xs) => Vector::Int($body),
            Vector::Long($xs) => Vector::Long($body),
            Vector::Double($xs) => Vector::Double($body),
            Vector::String($xs) => Vector::String($body),
            Vector::Symbol($xs) => Vector::Symbol($body),
            Vector::Date($xs) => Vector::Date($body),
            Vector::DateTime($xs) => Vector::DateTime($body),
            Vector::Timestamp($xs) => Vector::Timestamp($body),
            Vector::NanoTimestamp($xs) => Vector::NanoTimestamp($body),
        }
    };
}

fn keep<T: Clone>(xs: &[T], mask: &[bool]) -> Vec<T> {
    let n = mask.iter().take(xs.len()).filter(|m| **m).count();
    let mut out = Vec::with_capacity(n);
    out.extend(
        xs.iter()
            .zip(mask)
            .filter(|(_, m)| **m)
            .map(|(x, _)| x.clone()),
    );
    out
}

/// The elements of `v` where `mask` is true, in order. Rows past the end of a shorter mask
/// are dropped (and mask entries past the end of `v` ignored): the result only ever holds
/// rows that both cover and select.
pub fn filter(v: &Vector, mask: &[bool]) -> Vector {
    per_vector!(v, |xs| keep(xs, mask))
}

fn gather<T: Elem>(xs: &[T], idx: &[usize]) -> Vec<T> {
    // A run of consecutive indices (a partition of rows that came in its order) is one copy.
    if let (Some(&first), Some(&last)) = (idx.first(), idx.last()) {
        if last < xs.len()
            && last - first.min(last) + 1 == idx.len()
            && idx.iter().enumerate().all(|(k, &i)| i == first + k)
        {
            return xs[first..=last].to_vec();
        }
    }
    idx.iter()
        .map(|&i| xs.get(i).cloned().unwrap_or_else(T::null))
        .collect()
}

/// `v[idx[0]], v[idx[1]], ...`; an index past the end gives NULL.
pub fn take_indices(v: &Vector, idx: &[usize]) -> Vector {
    per_vector!(v, |xs| gather(xs, idx))
}

/// Moves each element of `v` into the vector of its slot (`slot[i]` for element `i`), in
/// order; `sizes[s]` is how many slot `s` gets. An element whose slot is past `sizes` is
/// dropped. Nothing is copied but the elements themselves (a STRING's text stays where it is),
/// which is how a bulk append's rows are cut into partitions.
pub fn scatter(v: Vector, slot: &[u32], sizes: &[usize]) -> Vec<Vector> {
    fn go<T>(xs: Vec<T>, slot: &[u32], sizes: &[usize], wrap: fn(Vec<T>) -> Vector) -> Vec<Vector> {
        let mut out: Vec<Vec<T>> = sizes.iter().map(|n| Vec::with_capacity(*n)).collect();
        for (x, s) in xs.into_iter().zip(slot) {
            if let Some(o) = out.get_mut(*s as usize) {
                o.push(x);
            }
        }
        out.into_iter().map(wrap).collect()
    }
    match v {
        Vector::Bool(xs) => go(xs, slot, sizes, Vector::Bool),
        Vector::Int(xs) => go(xs, slot, sizes, Vector::Int),
        Vector::Long(xs) => go(xs, slot, sizes, Vector::Long),
        Vector::Double(xs) => go(xs, slot, sizes, Vector::Double),
        Vector::String(xs) => go(xs, slot, sizes, Vector::String),
        Vector::Symbol(xs) => go(xs, slot, sizes, Vector::Symbol),
        Vector::Date(xs) => go(xs, slot, sizes, Vector::Date),
        Vector::DateTime(xs) => go(xs, slot, sizes, Vector::DateTime),
        Vector::Timestamp(xs) => go(xs, slot, sizes, Vector::Timestamp),
        Vector::NanoTimestamp(xs) => go(xs, slot, sizes, Vector::NanoTimestamp),
    }
}

/// Cuts `v` at `at`: `v` keeps the elements before, the answer holds the rest (moved).
pub fn split_off(v: &mut Vector, at: usize) -> Vector {
    per_vector!(v, |xs| xs.split_off(at.min(xs.len())))
}

fn joined<T: Clone>(x: &[T], y: &[T]) -> Vec<T> {
    let mut v = Vec::with_capacity(x.len() + y.len());
    v.extend_from_slice(x);
    v.extend_from_slice(y);
    v
}

fn numeric_rank(t: DataType) -> u8 {
    match t {
        DataType::Bool => 0,
        DataType::Int => 1,
        DataType::Long => 2,
        _ => 3,
    }
}

/// `a` followed by `b`. Same types join as they are; STRING and SYMBOL give STRING; numbers
/// of different types give the wider one (BOOL < INT < LONG < DOUBLE, so INT and LONG give
/// LONG). Anything else is an error.
pub fn concat(a: &Vector, b: &Vector) -> Result<Vector, String> {
    let (ta, tb) = (a.data_type(), b.data_type());
    let target = if ta == tb {
        ta
    } else {
        match (class(ta), class(tb)) {
            (Class::Str, Class::Str) => DataType::String,
            (Class::Int | Class::Float, Class::Int | Class::Float) => {
                if numeric_rank(ta) >= numeric_rank(tb) {
                    ta
                } else {
                    tb
                }
            }
            _ => return Err(format!("cannot concatenate {ta} and {tb} vectors")),
        }
    };
    let a = if ta == target {
        Cow::Borrowed(a)
    } else {
        Cow::Owned(cast(a, target)?)
    };
    let b = if tb == target {
        Cow::Borrowed(b)
    } else {
        Cow::Owned(cast(b, target)?)
    };
    Ok(match (a.as_ref(), b.as_ref()) {
        (Vector::Bool(x), Vector::Bool(y)) => Vector::Bool(joined(x, y)),
        (Vector::Int(x), Vector::Int(y)) => Vector::Int(joined(x, y)),
        (Vector::Long(x), Vector::Long(y)) => Vector::Long(joined(x, y)),
        (Vector::Double(x), Vector::Double(y)) => Vector::Double(joined(x, y)),
        (Vector::String(x), Vector::String(y)) => Vector::String(joined(x, y)),
        (Vector::Symbol(x), Vector::Symbol(y)) => Vector::Symbol(joined(x, y)),
        (Vector::Date(x), Vector::Date(y)) => Vector::Date(joined(x, y)),
        (Vector::DateTime(x), Vector::DateTime(y)) => Vector::DateTime(joined(x, y)),
        (Vector::Timestamp(x), Vector::Timestamp(y)) => Vector::Timestamp(joined(x, y)),
        (Vector::NanoTimestamp(x), Vector::NanoTimestamp(y)) => Vector::NanoTimestamp(joined(x, y)),
        _ => return Err(format!("cannot concatenate {ta} and {tb} vectors")),
    })
}

/// A row mask from a condition: a BOOL vector of exactly `rows` values (NULL is false) or a
/// BOOL scalar repeated `rows` times.
pub fn mask_of(v: &Value, rows: usize) -> Result<Vec<bool>, String> {
    match v {
        Value::Vector(Vector::Bool(xs)) => {
            if xs.len() == rows {
                Ok(xs.iter().map(|&x| x.truth()).collect())
            } else {
                Err(format!(
                    "the condition has {} values but there are {rows} rows",
                    xs.len()
                ))
            }
        }
        Value::Scalar(Scalar::Bool(x)) => Ok(vec![x.truth(); rows]),
        _ => Err(format!("a condition must be BOOL, got {}", v.kind_name())),
    }
}

/// The NULL of type `t`.
pub fn null_of(t: DataType) -> Scalar {
    match t {
        DataType::Bool => Scalar::Bool(NULL_BOOL),
        DataType::Int => Scalar::Int(NULL_INT),
        DataType::Long => Scalar::Long(NULL_LONG),
        DataType::Double => Scalar::Double(f64::NAN),
        DataType::String => Scalar::String(String::new()),
        DataType::Symbol => Scalar::Symbol(String::new()),
        DataType::Date => Scalar::Date(NULL_INT),
        DataType::DateTime => Scalar::DateTime(NULL_INT),
        DataType::Timestamp => Scalar::Timestamp(NULL_LONG),
        DataType::NanoTimestamp => Scalar::NanoTimestamp(NULL_LONG),
    }
}

/// `n` NULLs of type `t`.
pub fn nulls(t: DataType, n: usize) -> Vector {
    match t {
        DataType::Bool => Vector::Bool(vec![NULL_BOOL; n]),
        DataType::Int => Vector::Int(vec![NULL_INT; n]),
        DataType::Long => Vector::Long(vec![NULL_LONG; n]),
        DataType::Double => Vector::Double(vec![f64::NAN; n]),
        DataType::String => Vector::String(vec![String::new(); n]),
        DataType::Symbol => Vector::Symbol(vec![String::new(); n]),
        DataType::Date => Vector::Date(vec![NULL_INT; n]),
        DataType::DateTime => Vector::DateTime(vec![NULL_INT; n]),
        DataType::Timestamp => Vector::Timestamp(vec![NULL_LONG; n]),
        DataType::NanoTimestamp => Vector::NanoTimestamp(vec![NULL_LONG; n]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::count;
    use crate::ops::kernel::testing::*;

    #[test]
    fn filter_gather_concat() {
        let v = Vector::Int(vec![10, 20, 30, 40]);
        assert_eq!(
            filter(&v, &[true, false, true, false]),
            Vector::Int(vec![10, 30])
        );
        // a short mask keeps only what it covers; a long one is cut
        assert_eq!(filter(&v, &[false, true]), Vector::Int(vec![20]));
        assert_eq!(filter(&v, &[true; 9]), v);
        assert_eq!(filter(&v, &[]), Vector::Int(vec![]));
        assert_eq!(filter(&strs(&["a", "b"]), &[false, true]), strs(&["b"]));
        assert_eq!(
            take_indices(&v, &[3, 0, 9, 0]),
            Vector::Int(vec![40, 10, NULL_INT, 10])
        );
        assert_eq!(take_indices(&strs(&["a"]), &[1, 0]), strs(&["", "a"]));
        let Vector::Double(ds) = take_indices(&Vector::Double(vec![1.0]), &[5]) else {
            panic!("expected DOUBLEs")
        };
        assert!(ds.len() == 1 && ds[0].is_nan());
        // Scattered by slot (a slot past the sizes drops its element), and split.
        let parts = scatter(strs(&["a", "b", "c", "d"]), &[1, 0, 1, 9], &[1, 2]);
        assert_eq!(parts, vec![strs(&["b"]), strs(&["a", "c"])]);
        let mut w = Vector::Int(vec![1, 2, 3]);
        assert_eq!(split_off(&mut w, 1), Vector::Int(vec![2, 3]));
        assert_eq!(w, Vector::Int(vec![1]));
        assert_eq!(split_off(&mut w, 5), Vector::Int(vec![]));
        // A run of consecutive indices, inside and past the end.
        assert_eq!(take_indices(&v, &[1, 2, 3]), Vector::Int(vec![20, 30, 40]));
        assert_eq!(take_indices(&v, &[2]), Vector::Int(vec![30]));
        assert_eq!(take_indices(&v, &[3, 4]), Vector::Int(vec![40, NULL_INT]));
        assert_eq!(take_indices(&v, &[2, 1]), Vector::Int(vec![30, 20]));
        assert_eq!(take_indices(&v, &[]), Vector::Int(vec![]));
        assert_eq!(
            ok(concat(&Vector::Int(vec![1]), &Vector::Int(vec![2, 3]))),
            Vector::Int(vec![1, 2, 3])
        );
        assert_eq!(
            ok(concat(
                &Vector::Int(vec![1, NULL_INT]),
                &Vector::Long(vec![2])
            )),
            Vector::Long(vec![1, NULL_LONG, 2])
        );
        assert_eq!(
            ok(concat(&Vector::Long(vec![2]), &Vector::Int(vec![1]))),
            Vector::Long(vec![2, 1])
        );
        assert_eq!(
            ok(concat(&Vector::Symbol(vec!["a".into()]), &strs(&["b"]))),
            strs(&["a", "b"])
        );
        assert_eq!(
            ok(concat(&Vector::Int(vec![1]), &Vector::Double(vec![0.5]))),
            Vector::Double(vec![1.0, 0.5])
        );
        assert_eq!(
            err(concat(&Vector::Date(vec![1]), &Vector::Int(vec![1]))),
            "cannot concatenate DATE and INT vectors"
        );
    }

    #[test]
    fn masks() {
        assert_eq!(
            ok(mask_of(&bools(&[1, 0, NULL_BOOL]), 3)),
            vec![true, false, false]
        );
        assert_eq!(ok(mask_of(&b(true), 2)), vec![true, true]);
        assert_eq!(
            ok(mask_of(&sc(Scalar::Bool(NULL_BOOL)), 2)),
            vec![false, false]
        );
        assert_eq!(ok(mask_of(&b(false), 0)), Vec::<bool>::new());
        assert_eq!(
            err(mask_of(&bools(&[1]), 2)),
            "the condition has 1 values but there are 2 rows"
        );
        assert_eq!(
            err(mask_of(&ints(&[1]), 1)),
            "a condition must be BOOL, got an INT vector"
        );
    }

    #[test]
    fn null_constructors() {
        for t in DataType::ALL {
            let n = null_of(t);
            assert_eq!(n.data_type(), t);
            assert!(n.is_null(), "{t}");
            let v = nulls(t, 3);
            assert_eq!(v.data_type(), t);
            assert_eq!(v.len(), 3);
            assert_eq!(count(&v), 0);
        }
    }
}
