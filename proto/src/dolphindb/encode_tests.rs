//! Unit tests of [`write_object`](super::write_object): bytes of every type and form, nulls,
//! refusals, and round trips through the decoder.

use std::io::Cursor;

use xrepl_core::value::{
    DataType, FunctionRef, Scalar, Table, Value, Vector, NULL_BOOL, NULL_INT, NULL_LONG,
};

use super::super::{hex, read_object};
use super::write_object;

fn encoded(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_object(v, &mut out).unwrap_or_else(|e| panic!("{v:?}: {e}"));
    out
}

/// Equality with NaN equal to NaN (DOUBLE's NULL), through the debug text.
fn assert_same(a: &Value, b: &Value) {
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}

fn round_trip(v: &Value) -> Value {
    let bytes = encoded(v);
    let mut r = Cursor::new(&bytes[..]);
    let back = read_object(&mut r).unwrap_or_else(|e| panic!("{v:?}: {e}"));
    assert_eq!(r.position() as usize, bytes.len(), "bytes left over");
    back
}

#[test]
fn scalars_of_every_type_with_their_nulls() {
    let cases = [
        (Value::Void, "00 00 01"),
        (Value::Scalar(Scalar::Int(2)), "04 00 02000000"),
        (Value::Scalar(Scalar::Int(NULL_INT)), "04 00 00000080"),
        (
            Value::Scalar(Scalar::string("hello")),
            "12 00 68656c6c6f 00",
        ),
        (Value::Scalar(Scalar::string("")), "12 00 00"),
        (Value::Scalar(Scalar::Symbol("a".into())), "11 00 61 00"),
        (Value::Scalar(Scalar::bool(true)), "01 00 01"),
        (Value::Scalar(Scalar::bool(false)), "01 00 00"),
        (Value::Scalar(Scalar::Bool(NULL_BOOL)), "01 00 80"),
        (Value::Scalar(Scalar::Long(1)), "05 00 0100000000000000"),
        (
            Value::Scalar(Scalar::Long(NULL_LONG)),
            "05 00 0000000000000080",
        ),
        (Value::Scalar(Scalar::Double(2.5)), "10 00 0000000000000440"),
        (
            Value::Scalar(Scalar::Double(f64::NAN)),
            "10 00 ffffffffffffefff",
        ),
        (Value::Scalar(Scalar::Date(19723)), "06 00 0b4d0000"),
        (
            Value::Scalar(Scalar::DateTime(1_704_067_201)),
            "0b 00 81009265",
        ),
        (
            Value::Scalar(Scalar::Timestamp(1_704_067_200_001)),
            "0c 00 01f451c28c010000",
        ),
        (
            Value::Scalar(Scalar::NanoTimestamp(NULL_LONG)),
            "0e 00 0000000000000080",
        ),
    ];
    for (v, bytes) in cases {
        assert_eq!(encoded(&v), hex(bytes), "{v:?}");
    }
}

#[test]
fn vectors_of_every_type_with_their_nulls() {
    let cases = [
        (
            Vector::Int(vec![1, NULL_INT, 3]),
            "04 01 03000000 01000000 01000000 00000080 03000000",
        ),
        (
            Vector::Bool(vec![1, NULL_BOOL, 0]),
            "01 01 03000000 01000000 01 80 00",
        ),
        (
            Vector::Double(vec![f64::NAN, 1.0]),
            "10 01 02000000 01000000 ffffffffffffefff 000000000000f03f",
        ),
        (
            Vector::String(vec!["a".into(), String::new()]),
            "12 01 02000000 01000000 6100 00",
        ),
        // Outside a table a SYMBOL vector is sent plain; the clients read it like STRING.
        (
            Vector::Symbol(vec!["a".into(), String::new()]),
            "11 01 02000000 01000000 6100 00",
        ),
        (
            Vector::Date(vec![19723, NULL_INT]),
            "06 01 02000000 01000000 0b4d0000 00000080",
        ),
        (
            Vector::NanoTimestamp(vec![NULL_LONG]),
            "0e 01 01000000 01000000 0000000000000080",
        ),
        (Vector::Long(vec![]), "05 01 00000000 01000000"),
    ];
    for (v, bytes) in cases {
        assert_eq!(encoded(&Value::Vector(v.clone())), hex(bytes), "{v:?}");
    }
}

#[test]
fn pairs_tuples_dictionaries_and_handles() {
    let pair = Value::Pair(Box::new(Scalar::Int(1)), Box::new(Scalar::Int(5)));
    assert_eq!(
        encoded(&pair),
        hex("04 02 02000000 01000000 01000000 05000000")
    );
    let mixed = Value::Pair(Box::new(Scalar::Int(1)), Box::new(Scalar::string("a")));
    assert_eq!(
        encoded(&mixed),
        hex("19 01 02000000 01000000 0400 01000000 1200 6100")
    );
    let tuple = Value::Tuple(vec![Value::Void, Value::Vector(Vector::Int(vec![7]))]);
    assert_eq!(
        encoded(&tuple),
        hex("19 01 02000000 01000000 000001 04 01 01000000 01000000 07000000")
    );
    let dict = Value::Dict(vec![
        ("a".into(), Value::Scalar(Scalar::Long(1))),
        ("b".into(), Value::Type(DataType::Double)),
    ]);
    assert_eq!(
        encoded(&dict),
        hex("19 05 12 01 02000000 01000000 6100 6200 \
             19 01 02000000 01000000 0500 0100000000000000 0400 10000000")
    );
    for v in [
        Value::Function(FunctionRef("sum".into())),
        Value::Keyword("sum".into()),
        Value::Database("sum".into()),
    ] {
        assert_eq!(encoded(&v), hex("12 00 73756d 00"), "{v:?}");
    }
    assert_eq!(
        encoded(&Value::Type(DataType::NanoTimestamp)),
        hex("04 00 0e000000")
    );
}

#[test]
fn tables_send_symbol_columns_with_their_bases() {
    let t = Table::new(
        vec!["s".into(), "t".into(), "e".into(), "i".into()],
        vec![
            Vector::Symbol(vec!["a".into(), "b".into(), "a".into()]),
            Vector::Symbol(vec![String::new(), "b".into(), String::new()]),
            Vector::String(vec!["x".into(), "y".into(), String::new()]),
            Vector::Int(vec![1, 2, NULL_INT]),
        ],
    )
    .expect("table");
    let want = hex("00 06 03000000 04000000 00 7300 7400 6500 6900 \
         91 01 03000000 01000000 00000000 03000000 00 6100 6200 \
            01000000 02000000 01000000 \
         91 01 03000000 01000000 01000000 02000000 00 6200 \
            00000000 01000000 00000000 \
         12 01 03000000 01000000 7800 7900 00 \
         04 01 03000000 01000000 01000000 02000000 00000080");
    assert_eq!(encoded(&Value::Table(t)), want);
    // An empty SYMBOL column is sent plain, as DolphinDB does.
    let empty = Table::new(vec!["s".into()], vec![Vector::Symbol(vec![])]).expect("table");
    assert_eq!(
        encoded(&Value::Table(empty)),
        hex("00 06 00000000 01000000 00 7300 11 01 00000000 01000000")
    );
}

#[test]
fn what_cannot_be_sent_is_refused_and_nothing_written() {
    let deep = (0..70).fold(Value::Void, |v, _| Value::Tuple(vec![v]));
    let no_columns = Table::new(vec![], vec![]).expect("table");
    for (v, says) in [
        (
            Value::TableRef {
                db: "dfs://db".into(),
                table: "t".into(),
            },
            "a DFS table handle cannot be sent to a DolphinDB client",
        ),
        (Value::Scalar(Scalar::string("a\0b")), "holds a NUL byte"),
        (
            Value::Tuple(vec![Value::Vector(Vector::Symbol(vec!["\0".into()]))]),
            "holds a NUL byte",
        ),
        (Value::Table(no_columns), "a table without columns"),
        (deep, "nested deeper than 64"),
    ] {
        let mut out = b"kept".to_vec();
        let e = write_object(&v, &mut out).expect_err(says);
        assert!(e.contains(says), "{e}");
        assert_eq!(out, b"kept");
    }
}

#[test]
fn every_type_round_trips_with_nulls() {
    let t = Table::new(
        [
            "b", "i", "l", "d", "s", "y", "date", "dt", "ts", "nts", "y2",
        ]
        .map(String::from)
        .to_vec(),
        vec![
            Vector::Bool(vec![1, 0, NULL_BOOL]),
            Vector::Int(vec![i32::MAX, -1, NULL_INT]),
            Vector::Long(vec![i64::MAX, -1, NULL_LONG]),
            Vector::Double(vec![0.1, -0.0, f64::NAN]),
            Vector::String(vec!["é".into(), "x y".into(), String::new()]),
            Vector::Symbol(vec!["a".into(), String::new(), "a".into()]),
            Vector::Date(vec![19723, -1, NULL_INT]),
            Vector::DateTime(vec![1_704_067_201, 0, NULL_INT]),
            Vector::Timestamp(vec![1_704_067_200_001, -1, NULL_LONG]),
            Vector::NanoTimestamp(vec![1, 2, NULL_LONG]),
            Vector::Symbol(vec!["c".into(), "a".into(), String::new()]),
        ],
    )
    .expect("table");
    let values = [
        Value::Table(t),
        Value::Scalar(Scalar::Double(f64::NAN)),
        Value::Pair(
            Box::new(Scalar::Symbol("a".into())),
            Box::new(Scalar::Symbol("b".into())),
        ),
        Value::Tuple(vec![
            Value::Vector(Vector::Symbol(vec!["s".into()])),
            Value::Dict(vec![("k".into(), Value::Tuple(vec![]))]),
        ]),
    ];
    for v in &values {
        assert_same(&round_trip(v), v);
    }
    // What comes back as something else: VOID as an INT NULL, handles as names.
    assert_eq!(
        round_trip(&Value::Void),
        Value::Scalar(Scalar::Int(NULL_INT))
    );
    assert_eq!(
        round_trip(&Value::Keyword("VALUE".into())),
        Value::Scalar(Scalar::string("VALUE"))
    );
}
