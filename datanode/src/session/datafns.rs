//! Data built-ins of the language: generation and reshaping of vectors and tables, all
//! vectorised (a loop in Rust per call, never an interpreter loop per element).

use std::cell::Cell;

use xrepl_core::value::{Scalar, Table, Value, Vector};
use xrepl_proto::rpc::ErrorCode;
use xrepl_query::ops;

use super::args::{Args, EvalError};
use super::state::{Handler, Session};

/// The functions of this module.
pub const FUNCTIONS: &[(&str, Handler)] = &[
    ("rand", data),
    ("round", data),
    ("take", data),
    ("lpad", data),
    ("cj", data),
    ("join", data),
    ("join!", data),
    ("sum", data),
    ("avg", data),
    ("min", data),
    ("max", data),
];

fn bad(msg: impl Into<String>) -> EvalError {
    EvalError::new(ErrorCode::BadRequest, msg)
}

thread_local! {
    static RNG: Cell<u64> = Cell::new(
        (chrono::Utc::now().timestamp_nanos_opt().unwrap_or(1) as u64) | 1
    );
}

/// xorshift64*: fast, good enough for simulated data; not for secrets.
fn next_u64() -> u64 {
    RNG.with(|r| {
        let mut x = r.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        r.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

fn count_arg(f: &str, v: &Value) -> Result<usize, EvalError> {
    match v {
        Value::Scalar(Scalar::Int(n)) if *n >= 0 => Ok(*n as usize),
        Value::Scalar(Scalar::Long(n)) if *n >= 0 && *n <= 1_000_000_000 => Ok(*n as usize),
        other => Err(bad(format!(
            "{f}: the count must be a non-negative integer, got {}",
            other.kind_name()
        ))),
    }
}

/// Repeats a vector's elements cyclically to length `n`.
fn cycle(v: &Vector, n: usize) -> Result<Vector, EvalError> {
    if v.is_empty() {
        return Err(bad("take: cannot take from an empty vector"));
    }
    let idx: Vec<usize> = (0..n).map(|i| i % v.len()).collect();
    Ok(ops::take_indices(v, &idx))
}

fn scalar_vector(s: &Scalar, n: usize) -> Vector {
    let one = {
        let mut v = Vector::empty(s.data_type());
        let _ = v.push(s.clone());
        v
    };
    ops::take_indices(&one, &vec![0; n])
}

/// Runs data function `name`.
fn data(_: &mut Session, name: &str, args: Args) -> Result<Value, EvalError> {
    call_data(name, &args)
}

fn call_data(f: &str, a: &Args) -> Result<Value, EvalError> {
    if let Some((n, _)) = a.named.first() {
        return Err(bad(format!("{f} has no argument named '{n}'")));
    }
    let p = &a.positional;
    let arity = |n: usize| -> Result<(), EvalError> {
        if p.len() == n {
            Ok(())
        } else {
            Err(bad(format!("{f} takes {n} arguments, got {}", p.len())))
        }
    };
    match f {
        "rand" => {
            arity(2)?;
            let n = count_arg(f, &p[1])?;
            Ok(Value::Vector(match &p[0] {
                Value::Scalar(Scalar::Int(x)) if *x > 0 => {
                    Vector::Int((0..n).map(|_| (next_u64() % *x as u64) as i32).collect())
                }
                Value::Scalar(Scalar::Long(x)) if *x > 0 => {
                    Vector::Long((0..n).map(|_| (next_u64() % *x as u64) as i64).collect())
                }
                Value::Scalar(Scalar::Double(x)) if *x > 0.0 => Vector::Double(
                    (0..n)
                        .map(|_| (next_u64() >> 11) as f64 / (1u64 << 53) as f64 * x)
                        .collect(),
                ),
                Value::Vector(v) if !v.is_empty() => {
                    let idx: Vec<usize> = (0..n)
                        .map(|_| (next_u64() % v.len() as u64) as usize)
                        .collect();
                    ops::take_indices(v, &idx)
                }
                other => {
                    return Err(bad(format!(
                        "rand needs a positive number or a non-empty vector, got {}",
                        other.kind_name()
                    )))
                }
            }))
        }
        "round" => {
            if !(1..=2).contains(&p.len()) {
                return Err(bad(
                    "round takes a number and optionally the digits to keep",
                ));
            }
            let digits = match p.get(1) {
                None => 0,
                Some(Value::Scalar(Scalar::Int(d))) if (0..=15).contains(d) => *d,
                Some(other) => {
                    return Err(bad(format!(
                        "round: digits must be 0 to 15, got {}",
                        other.kind_name()
                    )))
                }
            };
            let scale = 10f64.powi(digits);
            let r = |x: f64| (x * scale).round() / scale;
            match &p[0] {
                Value::Scalar(Scalar::Double(x)) => Ok(Value::Scalar(Scalar::Double(r(*x)))),
                Value::Vector(Vector::Double(v)) => Ok(Value::Vector(Vector::Double(
                    v.iter().map(|x| r(*x)).collect(),
                ))),
                v @ (Value::Scalar(Scalar::Int(_) | Scalar::Long(_))
                | Value::Vector(Vector::Int(_) | Vector::Long(_))) => Ok(v.clone()),
                other => Err(bad(format!(
                    "round needs numbers, got {}",
                    other.kind_name()
                ))),
            }
        }
        "take" => {
            arity(2)?;
            let n = count_arg(f, &p[1])?;
            match &p[0] {
                Value::Scalar(s) => Ok(Value::Vector(scalar_vector(s, n))),
                Value::Vector(v) => cycle(v, n).map(Value::Vector),
                other => Err(bad(format!(
                    "take needs a scalar or a vector, got {}",
                    other.kind_name()
                ))),
            }
        }
        "lpad" => {
            arity(3)?;
            let len = count_arg(f, &p[1])?;
            let pad: char = match &p[2] {
                Value::Scalar(Scalar::String(s) | Scalar::Symbol(s)) => {
                    s.chars().next().unwrap_or(' ')
                }
                other => {
                    return Err(bad(format!(
                        "lpad: the pad must be a string, got {}",
                        other.kind_name()
                    )))
                }
            };
            let one = |s: &str| -> String {
                let n = s.chars().count();
                if n >= len {
                    s.chars().take(len).collect()
                } else {
                    std::iter::repeat_n(pad, len - n).chain(s.chars()).collect()
                }
            };
            match &p[0] {
                Value::Scalar(Scalar::String(s)) => Ok(Value::Scalar(Scalar::String(one(s)))),
                Value::Scalar(Scalar::Symbol(s)) => Ok(Value::Scalar(Scalar::Symbol(one(s)))),
                Value::Vector(Vector::String(v)) => Ok(Value::Vector(Vector::String(
                    v.iter().map(|s| one(s)).collect(),
                ))),
                Value::Vector(Vector::Symbol(v)) => Ok(Value::Vector(Vector::Symbol(
                    v.iter().map(|s| one(s)).collect(),
                ))),
                other => Err(bad(format!(
                    "lpad needs strings, got {}",
                    other.kind_name()
                ))),
            }
        }
        "cj" => {
            arity(2)?;
            let (Value::Table(l), Value::Table(r)) = (&p[0], &p[1]) else {
                return Err(bad("cj needs two tables"));
            };
            let (ln, rn) = (l.rows(), r.rows());
            if ln.saturating_mul(rn) > 100_000_000 {
                return Err(bad("cj: the result would exceed 100,000,000 rows"));
            }
            // Every row of the left table with every row of the right one, left-major.
            let li: Vec<usize> = (0..ln).flat_map(|i| std::iter::repeat_n(i, rn)).collect();
            let ri: Vec<usize> = (0..ln).flat_map(|_| 0..rn).collect();
            let mut names = l.names.clone();
            names.extend(r.names.iter().cloned());
            let cols = l
                .columns
                .iter()
                .map(|c| ops::take_indices(c, &li))
                .chain(r.columns.iter().map(|c| ops::take_indices(c, &ri)))
                .collect();
            Table::new(names, cols).map(Value::Table).map_err(bad)
        }
        "join" | "join!" => {
            arity(2)?;
            match (&p[0], &p[1]) {
                (Value::Vector(a), Value::Vector(b)) => {
                    ops::concat(a, b).map(Value::Vector).map_err(bad)
                }
                (Value::Vector(a), Value::Scalar(s)) => ops::concat(a, &scalar_vector(s, 1))
                    .map(Value::Vector)
                    .map_err(bad),
                (Value::Table(a), Value::Table(b)) => {
                    let mut names = a.names.clone();
                    names.extend(b.names.iter().cloned());
                    let mut cols = a.columns.clone();
                    cols.extend(b.columns.iter().cloned());
                    Table::new(names, cols).map(Value::Table).map_err(bad)
                }
                (x, y) => Err(bad(format!(
                    "join needs two vectors or two tables, got {} and {}",
                    x.kind_name(),
                    y.kind_name()
                ))),
            }
        }
        "sum" | "avg" | "min" | "max" => {
            arity(1)?;
            let v = match &p[0] {
                Value::Vector(v) => v.clone(),
                Value::Scalar(s) => scalar_vector(s, 1),
                other => {
                    return Err(bad(format!(
                        "{f} needs a vector, got {}",
                        other.kind_name()
                    )))
                }
            };
            let r = match f {
                "sum" => ops::sum(&v),
                "avg" => ops::avg(&v),
                "min" => ops::min(&v),
                _ => ops::max(&v),
            };
            r.map(Value::Scalar).map_err(bad)
        }
        _ => Err(bad(format!("unknown function '{f}'"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: Vec<Value>) -> Args {
        Args {
            positional: v,
            named: vec![],
        }
    }

    fn int(i: i32) -> Value {
        Value::Scalar(Scalar::Int(i))
    }

    #[test]
    fn take_lpad_cj_join() {
        assert_eq!(
            call_data(
                "take",
                &args(vec![Value::Vector(Vector::Int(vec![0, 1, 2])), int(7)])
            ),
            Ok(Value::Vector(Vector::Int(vec![0, 1, 2, 0, 1, 2, 0])))
        );
        assert_eq!(
            call_data(
                "lpad",
                &args(vec![
                    Value::Vector(Vector::String(vec!["7".into(), "1234567".into()])),
                    int(6),
                    Value::Scalar(Scalar::String("0".into()))
                ])
            ),
            Ok(Value::Vector(Vector::String(vec![
                "000007".into(),
                "123456".into()
            ])))
        );
        let l = Table::new(vec!["a".into()], vec![Vector::Int(vec![1, 2])]).expect("t");
        let r = Table::new(vec!["b".into()], vec![Vector::Int(vec![10, 20, 30])]).expect("t");
        let Ok(Value::Table(t)) = call_data("cj", &args(vec![Value::Table(l), Value::Table(r)]))
        else {
            panic!("cj")
        };
        assert_eq!(
            t.columns,
            vec![
                Vector::Int(vec![1, 1, 1, 2, 2, 2]),
                Vector::Int(vec![10, 20, 30, 10, 20, 30])
            ]
        );
        assert_eq!(
            call_data(
                "join",
                &args(vec![
                    Value::Vector(Vector::Int(vec![1])),
                    Value::Vector(Vector::Int(vec![2]))
                ])
            ),
            Ok(Value::Vector(Vector::Int(vec![1, 2])))
        );
    }

    #[test]
    fn rand_stays_in_range_and_round_rounds() {
        let Ok(Value::Vector(Vector::Int(v))) = call_data("rand", &args(vec![int(100), int(1000)]))
        else {
            panic!("rand")
        };
        assert!(v.iter().all(|x| (0..100).contains(x)));
        let Ok(Value::Vector(Vector::Double(d))) = call_data(
            "rand",
            &args(vec![Value::Scalar(Scalar::Double(1.0)), int(1000)]),
        ) else {
            panic!("rand")
        };
        assert!(d.iter().all(|x| (0.0..1.0).contains(x)));
        assert_eq!(
            call_data(
                "round",
                &args(vec![Value::Scalar(Scalar::Double(1.23456)), int(2)])
            ),
            Ok(Value::Scalar(Scalar::Double(1.23)))
        );
    }
}
