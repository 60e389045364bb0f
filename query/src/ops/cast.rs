//! Casts: [`cast`] and [`cast_scalar`] between every pair of types that converts, parsing
//! text and rendering values as text.

use xrepl_core::value::{DataType, Scalar, Vector, NULL_BOOL, NULL_INT, NULL_LONG};

use super::kernel::{class, narrow, ratio, Class, Int, Num, Unit};

/// Converts a vector to `to`. NULL stays NULL; values that do not fit give NULL.
///
/// * BOOL, INT, LONG, DOUBLE among each other; DOUBLE to an integer rounds half away from
///   zero (`int(3.5) == 4`, `int(-3.5) == -4`); to BOOL, non-zero is true.
/// * Anything to STRING or SYMBOL renders like [`Scalar::render`]; STRING and SYMBOL to BOOL,
///   INT, LONG, DOUBLE parse the trimmed text (`true`/`false`/`1`/`0` for BOOL; a decimal text
///   rounds for the integers); unparseable text gives NULL.
/// * Temporals among each other: to a coarser unit floors (`1969.12.31T23:59:59` is DATE
///   `1969.12.31`), to a finer one multiplies.
/// * A temporal to INT, LONG or DOUBLE gives its count (days, seconds, ...); INT or LONG to a
///   temporal reads the number as that count.
/// * Anything else (e.g. STRING to DATE, DOUBLE to DATE, DATE to BOOL) is an error.
pub fn cast(v: &Vector, to: DataType) -> Result<Vector, String> {
    let from = v.data_type();
    if from == to {
        return Ok(v.clone());
    }
    let out = match (v, class(to)) {
        (_, Class::Str) => Some(strings_of(render_all(v), to)),
        (Vector::String(xs) | Vector::Symbol(xs), _) => parse_all(xs, to),
        (Vector::Bool(xs), Class::Int | Class::Float) => numeric_to(xs, to),
        (Vector::Int(xs), Class::Int | Class::Float) => numeric_to(xs, to),
        (Vector::Long(xs), Class::Int | Class::Float) => numeric_to(xs, to),
        (Vector::Double(xs), Class::Int | Class::Float) => numeric_to(xs, to),
        (Vector::Int(xs), Class::Time(_)) => Some(ints_to(to, xs.iter().map(|x| x.wide()))),
        (Vector::Long(xs), Class::Time(_)) => Some(ints_to(to, xs.iter().copied())),
        (Vector::Date(xs) | Vector::DateTime(xs), Class::Int | Class::Float)
            if to != DataType::Bool =>
        {
            numeric_to(xs, to)
        }
        (Vector::Timestamp(xs) | Vector::NanoTimestamp(xs), Class::Int | Class::Float)
            if to != DataType::Bool =>
        {
            numeric_to(xs, to)
        }
        (Vector::Date(xs), Class::Time(u)) => Some(time_to(xs, Unit::Day, u, to)),
        (Vector::DateTime(xs), Class::Time(u)) => Some(time_to(xs, Unit::Sec, u, to)),
        (Vector::Timestamp(xs), Class::Time(u)) => Some(time_to(xs, Unit::Milli, u, to)),
        (Vector::NanoTimestamp(xs), Class::Time(u)) => Some(time_to(xs, Unit::Nano, u, to)),
        _ => None,
    };
    out.ok_or_else(|| format!("cannot convert {from} to {to}"))
}

/// [`cast`] for data being written: a value that does not convert (`"x"` to INT, a LONG beyond
/// INT's range) is refused with the first such value and its row (1-based), where [`cast`] would
/// make it NULL.
pub fn cast_exact(v: &Vector, to: DataType) -> Result<Vector, String> {
    let out = cast(v, to)?;
    if matches!(class(to), Class::Str) {
        return Ok(out);
    }
    match (0..v.len()).find(|&i| !v.is_null(i) && out.is_null(i)) {
        None => Ok(out),
        Some(i) => {
            let shown = v.get(i).map(|s| s.render()).unwrap_or_default();
            Err(format!(
                "cannot convert {} '{shown}' (row {}) to {to}",
                v.data_type(),
                i + 1
            ))
        }
    }
}

/// [`cast`] for one value.
pub fn cast_scalar(s: &Scalar, to: DataType) -> Result<Scalar, String> {
    if s.data_type() == to {
        return Ok(s.clone());
    }
    let mut one = Vector::empty(s.data_type());
    one.push(s.clone())?;
    cast(&one, to)?
        .get(0)
        .ok_or_else(|| format!("cannot convert {} to {to}", s.data_type()))
}

fn strings_of(xs: Vec<String>, to: DataType) -> Vector {
    if to == DataType::Symbol {
        Vector::Symbol(xs)
    } else {
        Vector::String(xs)
    }
}

fn render_all(v: &Vector) -> Vec<String> {
    match v {
        Vector::Bool(xs) => xs
            .iter()
            .map(|&x| {
                if x == NULL_BOOL {
                    String::new()
                } else {
                    (x != 0).to_string()
                }
            })
            .collect(),
        Vector::Int(xs) => xs
            .iter()
            .map(|&x| {
                if x == NULL_INT {
                    String::new()
                } else {
                    x.to_string()
                }
            })
            .collect(),
        Vector::Long(xs) => xs
            .iter()
            .map(|&x| {
                if x == NULL_LONG {
                    String::new()
                } else {
                    x.to_string()
                }
            })
            .collect(),
        Vector::Double(xs) => xs.iter().map(|&x| Scalar::Double(x).render()).collect(),
        Vector::String(xs) | Vector::Symbol(xs) => xs.clone(),
        Vector::Date(xs) => xs.iter().map(|&x| Scalar::Date(x).render()).collect(),
        Vector::DateTime(xs) => xs.iter().map(|&x| Scalar::DateTime(x).render()).collect(),
        Vector::Timestamp(xs) => xs.iter().map(|&x| Scalar::Timestamp(x).render()).collect(),
        Vector::NanoTimestamp(xs) => xs
            .iter()
            .map(|&x| Scalar::NanoTimestamp(x).render())
            .collect(),
    }
}

fn numeric_to<T: Num>(xs: &[T], to: DataType) -> Option<Vector> {
    Some(match to {
        DataType::Bool => Vector::Bool(
            xs.iter()
                .map(|&x| {
                    if x.is_nil() {
                        NULL_BOOL
                    } else {
                        i8::from(x.truth())
                    }
                })
                .collect(),
        ),
        DataType::Int => Vector::Int(xs.iter().map(|&x| narrow(x.rounded())).collect()),
        DataType::Long => Vector::Long(xs.iter().map(|&x| x.rounded()).collect()),
        DataType::Double => Vector::Double(xs.iter().map(|&x| x.float()).collect()),
        _ => return None,
    })
}

/// LONG counts (NULL as the LONG NULL) stored as an integer or temporal vector of type `t`.
fn ints_to(t: DataType, it: impl Iterator<Item = i64>) -> Vector {
    match t {
        DataType::Int => Vector::Int(it.map(narrow).collect()),
        DataType::Date => Vector::Date(it.map(narrow).collect()),
        DataType::DateTime => Vector::DateTime(it.map(narrow).collect()),
        DataType::Timestamp => Vector::Timestamp(it.collect()),
        DataType::NanoTimestamp => Vector::NanoTimestamp(it.collect()),
        _ => Vector::Long(it.collect()),
    }
}

fn time_to<T: Int>(xs: &[T], from: Unit, unit: Unit, to: DataType) -> Vector {
    if from <= unit {
        let f = ratio(from, unit);
        ints_to(
            to,
            xs.iter().map(|x| {
                let w = x.wide();
                if w == NULL_LONG {
                    w
                } else {
                    w.checked_mul(f).unwrap_or(NULL_LONG)
                }
            }),
        )
    } else {
        let f = ratio(unit, from);
        ints_to(
            to,
            xs.iter().map(|x| {
                let w = x.wide();
                if w == NULL_LONG {
                    w
                } else {
                    w.div_euclid(f)
                }
            }),
        )
    }
}

fn parse_bool(s: &str) -> i8 {
    let s = s.trim();
    if s == "1" || s.eq_ignore_ascii_case("true") {
        1
    } else if s == "0" || s.eq_ignore_ascii_case("false") {
        0
    } else {
        NULL_BOOL
    }
}

fn parse_long(s: &str) -> i64 {
    let s = s.trim();
    match s.parse::<i64>() {
        Ok(v) => v,
        Err(_) => s.parse::<f64>().map_or(NULL_LONG, Num::rounded),
    }
}

fn parse_all(xs: &[String], to: DataType) -> Option<Vector> {
    Some(match to {
        DataType::Bool => Vector::Bool(xs.iter().map(|s| parse_bool(s)).collect()),
        DataType::Int => Vector::Int(xs.iter().map(|s| narrow(parse_long(s))).collect()),
        DataType::Long => Vector::Long(xs.iter().map(|s| parse_long(s)).collect()),
        DataType::Double => Vector::Double(
            xs.iter()
                .map(|s| s.trim().parse::<f64>().unwrap_or(f64::NAN))
                .collect(),
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::kernel::testing::*;
    use crate::ops::{binary, concat};
    use xrepl_core::operator::BinOp;

    #[test]
    fn a_write_refuses_what_does_not_convert_where_a_cast_gives_null() {
        let s = Vector::String(vec!["12".into(), String::new(), "x".into()]);
        assert_eq!(
            cast(&s, DataType::Int),
            Ok(Vector::Int(vec![12, NULL_INT, NULL_INT]))
        );
        assert_eq!(
            cast_exact(&s, DataType::Int),
            Err("cannot convert STRING 'x' (row 3) to INT".into())
        );
        let l = Vector::Long(vec![1, NULL_LONG, i64::from(i32::MAX) + 1]);
        assert!(
            cast_exact(&l, DataType::Int).is_err_and(|e| e.contains("row 3") && e.contains("LONG"))
        );
        // NULLs stay NULL, and text targets take anything.
        assert_eq!(
            cast_exact(&Vector::Long(vec![NULL_LONG, 5]), DataType::Int),
            Ok(Vector::Int(vec![NULL_INT, 5]))
        );
        assert!(cast_exact(&s, DataType::Symbol).is_ok());
    }

    #[test]
    fn casts_between_numbers() {
        let d = Vector::Double(vec![3.5, -3.5, 2.4, -2.6, f64::NAN, 1e300, 0.0]);
        assert_eq!(
            ok(cast(&d, DataType::Int)),
            Vector::Int(vec![4, -4, 2, -3, NULL_INT, NULL_INT, 0])
        );
        assert_eq!(
            ok(cast(&d, DataType::Long)),
            Vector::Long(vec![4, -4, 2, -3, NULL_LONG, NULL_LONG, 0])
        );
        assert_eq!(
            ok(cast(&d, DataType::Bool)),
            Vector::Bool(vec![1, 1, 1, 1, NULL_BOOL, 1, 0])
        );
        let i = Vector::Int(vec![1, NULL_INT, -7]);
        assert_eq!(
            ok(cast(&i, DataType::Long)),
            Vector::Long(vec![1, NULL_LONG, -7])
        );
        let Vector::Double(ds) = ok(cast(&i, DataType::Double)) else {
            panic!("expected DOUBLEs")
        };
        assert_eq!(ds.len(), 3);
        assert!(ds[0] == 1.0 && ds[1].is_nan() && ds[2] == -7.0);
        assert_eq!(
            ok(cast(&Vector::Long(vec![5_000_000_000, 5]), DataType::Int)),
            Vector::Int(vec![NULL_INT, 5])
        );
        assert_eq!(
            ok(cast(&Vector::Bool(vec![1, 0, NULL_BOOL]), DataType::Int)),
            Vector::Int(vec![1, 0, NULL_INT])
        );
        assert_eq!(ok(cast(&i, DataType::Int)), i);
        assert_eq!(
            ok(cast_scalar(&Scalar::Double(3.7), DataType::Int)),
            Scalar::Int(4)
        );
        assert_eq!(
            ok(cast_scalar(&Scalar::Int(NULL_INT), DataType::Long)),
            Scalar::Long(NULL_LONG)
        );
    }

    #[test]
    fn casts_to_and_from_strings() {
        let v = Vector::Int(vec![1, NULL_INT, -3]);
        assert_eq!(ok(cast(&v, DataType::String)), strs(&["1", "", "-3"]));
        assert_eq!(
            ok(cast(&v, DataType::Symbol)),
            Vector::Symbol(vec!["1".into(), "".into(), "-3".into()])
        );
        assert_eq!(
            ok(cast(
                &Vector::Double(vec![1.5, 2.0, f64::NAN]),
                DataType::String
            )),
            strs(&["1.5", "2", ""])
        );
        assert_eq!(
            ok(cast(&Vector::Bool(vec![1, 0, NULL_BOOL]), DataType::String)),
            strs(&["true", "false", ""])
        );
        assert_eq!(
            ok(cast_scalar(&Scalar::DateTime(DT0930), DataType::String)),
            Scalar::string("2023.01.08T09:30:00")
        );
        assert_eq!(
            ok(cast_scalar(&Scalar::Date(19_358), DataType::String)),
            Scalar::string("2023.01.01")
        );
        assert_eq!(
            ok(cast_scalar(
                &Scalar::Timestamp(1_673_170_200_123),
                DataType::Symbol
            )),
            Scalar::Symbol("2023.01.08T09:30:00.123".into())
        );
        assert_eq!(
            ok(cast(&strs(&["a", ""]), DataType::Symbol)),
            Vector::Symbol(vec!["a".into(), "".into()])
        );
        assert_eq!(
            ok(cast(&Vector::Symbol(vec!["a".into()]), DataType::String)),
            strs(&["a"])
        );
        let texts = strs(&["12", " 7 ", "x", "", "2.5", "99999999999"]);
        assert_eq!(
            ok(cast(&texts, DataType::Int)),
            Vector::Int(vec![12, 7, NULL_INT, NULL_INT, 3, NULL_INT])
        );
        assert_eq!(
            ok(cast(&texts, DataType::Long)),
            Vector::Long(vec![12, 7, NULL_LONG, NULL_LONG, 3, 99_999_999_999])
        );
        let Vector::Double(ds) = ok(cast(&strs(&["1.25", "nope", ""]), DataType::Double)) else {
            panic!("expected DOUBLEs")
        };
        assert!(ds.len() == 3 && ds[0] == 1.25 && ds[1].is_nan() && ds[2].is_nan());
        assert_eq!(
            ok(cast(
                &strs(&["true", "FALSE", "1", "0", "yes"]),
                DataType::Bool
            )),
            Vector::Bool(vec![1, 0, 1, 0, NULL_BOOL])
        );
        assert_eq!(
            err(cast(&strs(&["2023.01.01"]), DataType::Date)),
            "cannot convert STRING to DATE"
        );
    }

    #[test]
    fn casts_between_temporals() {
        // negative times floor to the previous day
        assert_eq!(
            ok(cast(
                &Vector::DateTime(vec![-1, 0, 86_399, 86_400, -86_400, -86_401, NULL_INT]),
                DataType::Date
            )),
            Vector::Date(vec![-1, 0, 0, 1, -1, -2, NULL_INT])
        );
        assert_eq!(
            ok(cast_scalar(&Scalar::DateTime(-1), DataType::Date)),
            Scalar::Date(-1)
        );
        assert_eq!(
            ok(cast_scalar(&Scalar::Date(-1), DataType::String)),
            Scalar::string("1969.12.31")
        );
        assert_eq!(
            ok(cast(
                &Vector::Timestamp(vec![-1, 86_400_000, NULL_LONG]),
                DataType::Date
            )),
            Vector::Date(vec![-1, 1, NULL_INT])
        );
        assert_eq!(
            ok(cast(
                &Vector::NanoTimestamp(vec![-1, 1_678_940_754_175_813_489]),
                DataType::Date
            )),
            Vector::Date(vec![-1, 19_432])
        );
        assert_eq!(
            ok(cast(
                &Vector::Date(vec![D0108, -1, NULL_INT]),
                DataType::DateTime
            )),
            Vector::DateTime(vec![D0108 * 86_400, -86_400, NULL_INT])
        );
        assert_eq!(
            ok(cast(&Vector::Date(vec![1]), DataType::Timestamp)),
            Vector::Timestamp(vec![86_400_000])
        );
        assert_eq!(
            ok(cast(&Vector::Date(vec![1]), DataType::NanoTimestamp)),
            Vector::NanoTimestamp(vec![86_400_000_000_000])
        );
        // a date past 2038 does not fit a DATETIME
        assert_eq!(
            ok(cast(&Vector::Date(vec![30_000]), DataType::DateTime)),
            Vector::DateTime(vec![NULL_INT])
        );
        assert_eq!(
            ok(cast(
                &Vector::DateTime(vec![DT0930, -1]),
                DataType::Timestamp
            )),
            Vector::Timestamp(vec![i64::from(DT0930) * 1_000, -1_000])
        );
        assert_eq!(
            ok(cast(
                &Vector::Timestamp(vec![1_999, -1]),
                DataType::DateTime
            )),
            Vector::DateTime(vec![1, -1])
        );
        assert_eq!(
            ok(cast(
                &Vector::NanoTimestamp(vec![1_999_999, -1]),
                DataType::Timestamp
            )),
            Vector::Timestamp(vec![1, -1])
        );
        assert_eq!(
            ok(cast(
                &Vector::Timestamp(vec![i64::MAX / 10]),
                DataType::NanoTimestamp
            )),
            Vector::NanoTimestamp(vec![NULL_LONG])
        );
        // counts
        assert_eq!(
            ok(cast_scalar(&Scalar::Date(19_358), DataType::Int)),
            Scalar::Int(19_358)
        );
        assert_eq!(
            ok(cast_scalar(&Scalar::Timestamp(5), DataType::Long)),
            Scalar::Long(5)
        );
        assert_eq!(
            ok(cast_scalar(&Scalar::Int(19_358), DataType::Date)),
            Scalar::Date(19_358)
        );
        assert_eq!(
            ok(cast_scalar(&Scalar::Long(NULL_LONG), DataType::DateTime)),
            Scalar::DateTime(NULL_INT)
        );
        assert_eq!(
            err(cast_scalar(&Scalar::Date(1), DataType::Bool)),
            "cannot convert DATE to BOOL"
        );
        assert_eq!(
            err(cast(&Vector::Double(vec![1.0]), DataType::Date)),
            "cannot convert DOUBLE to DATE"
        );
    }

    #[test]
    fn cast_round_trips_for_every_type_pair_never_panic() {
        let samples: Vec<Vector> = vec![
            Vector::Bool(vec![1, 0, NULL_BOOL]),
            Vector::Int(vec![i32::MAX, -1, NULL_INT]),
            Vector::Long(vec![i64::MAX, -1, NULL_LONG]),
            Vector::Double(vec![f64::INFINITY, -0.5, f64::NAN]),
            strs(&["1", "x", ""]),
            Vector::Symbol(vec!["true".into(), "-2".into(), "".into()]),
            Vector::Date(vec![i32::MAX, -1, NULL_INT]),
            Vector::DateTime(vec![i32::MAX, -1, NULL_INT]),
            Vector::Timestamp(vec![i64::MAX, -1, NULL_LONG]),
            Vector::NanoTimestamp(vec![i64::MAX, -1, NULL_LONG]),
        ];
        for v in &samples {
            for t in DataType::ALL {
                if let Ok(out) = cast(v, t) {
                    assert_eq!(out.data_type(), t);
                    assert_eq!(out.len(), v.len());
                    // NULL stays NULL
                    assert!(out.get(2).is_some_and(|s| s.is_null()), "{v:?} to {t}");
                }
            }
            for w in &samples {
                for op in [
                    BinOp::Add,
                    BinOp::Sub,
                    BinOp::Mul,
                    BinOp::Div,
                    BinOp::Mod,
                    BinOp::Eq,
                    BinOp::Lt,
                    BinOp::And,
                    BinOp::In,
                ] {
                    let _ = binary(op, &vc(v.clone()), &vc(w.clone()));
                }
                let _ = concat(v, w);
            }
        }
    }
}
