//! Unit tests of [`read_object`](super::read_object): every type and form, nulls, refusals.

use std::io::{BufReader, Cursor, Read};

use xrepl_core::value::{Scalar, Table, Value, Vector, NULL_BOOL, NULL_INT, NULL_LONG};

use super::super::{hex, MAX_STRING};
use super::{read_object, DecodeError};

/// Decodes `bytes`, which must hold exactly one object.
fn decode(bytes: &[u8]) -> Result<Value, DecodeError> {
    let mut r = Cursor::new(bytes);
    let v = read_object(&mut r)?;
    assert_eq!(r.position() as usize, bytes.len(), "bytes left over");
    Ok(v)
}

fn ok(hex_text: &str) -> Value {
    decode(&hex(hex_text)).unwrap_or_else(|e| panic!("{hex_text}: {e}"))
}

/// The refusal's message, which must contain `says` and be one line.
fn refused(bytes: &[u8], says: &str) {
    match decode(bytes) {
        Err(DecodeError::Malformed(m)) => {
            assert!(m.contains(says), "{m:?} does not say {says:?}");
            assert!(!m.contains('\n'), "{m:?}");
        }
        other => panic!("{says}: expected a refusal, got {other:?}"),
    }
}

fn scalar(s: Scalar) -> Value {
    Value::Scalar(s)
}

#[test]
fn scalars_of_every_type_with_their_nulls() {
    let cases = [
        ("04 00 02000000", Scalar::Int(2)),
        ("04 00 00000080", Scalar::Int(NULL_INT)),
        ("12 00 68656c6c6f 00", Scalar::string("hello")),
        ("12 00 00", Scalar::string("")),
        ("11 00 61 00", Scalar::Symbol("a".into())),
        ("00 00 01", Scalar::Int(NULL_INT)),
        ("00 00 00", Scalar::Int(NULL_INT)),
        ("01 00 01", Scalar::Bool(1)),
        ("01 00 00", Scalar::Bool(0)),
        ("01 00 80", Scalar::Bool(NULL_BOOL)),
        ("02 00 03", Scalar::Int(3)),
        ("02 00 fe", Scalar::Int(-2)),
        ("02 00 80", Scalar::Int(NULL_INT)),
        ("03 00 feff", Scalar::Int(-2)),
        ("03 00 0080", Scalar::Int(NULL_INT)),
        ("05 00 0100000000000000", Scalar::Long(1)),
        ("05 00 0000000000000080", Scalar::Long(NULL_LONG)),
        ("06 00 0b4d0000", Scalar::Date(19723)),
        ("0b 00 81009265", Scalar::DateTime(1_704_067_201)),
        (
            "0c 00 01f451c28c010000",
            Scalar::Timestamp(1_704_067_200_001),
        ),
        (
            "0e 00 010065011710a617",
            Scalar::NanoTimestamp(1_704_067_200_000_000_001),
        ),
        ("0e 00 0000000000000080", Scalar::NanoTimestamp(NULL_LONG)),
        ("0f 00 0000c03f", Scalar::Double(1.5)),
        ("10 00 0000000000000440", Scalar::Double(2.5)),
    ];
    for (bytes, want) in cases {
        assert_eq!(ok(bytes), scalar(want), "{bytes}");
    }
    for null in ["0f 00 ffff7fff", "10 00 ffffffffffffefff"] {
        assert!(matches!(ok(null), Value::Scalar(Scalar::Double(v)) if v.is_nan()));
    }
}

#[test]
fn vectors_of_every_type_with_their_nulls() {
    let cases = [
        (
            "04 01 03000000 01000000 01000000 00000080 03000000",
            Vector::Int(vec![1, NULL_INT, 3]),
        ),
        (
            "00 01 02000000 01000000 00 01",
            Vector::Int(vec![NULL_INT, NULL_INT]),
        ),
        (
            "01 01 03000000 01000000 01 80 00",
            Vector::Bool(vec![1, NULL_BOOL, 0]),
        ),
        (
            "02 01 03000000 01000000 01 fe 80",
            Vector::Int(vec![1, -2, NULL_INT]),
        ),
        (
            "03 01 03000000 01000000 0100 feff 0080",
            Vector::Int(vec![1, -2, NULL_INT]),
        ),
        (
            "05 01 02000000 01000000 0100000000000000 0000000000000080",
            Vector::Long(vec![1, NULL_LONG]),
        ),
        (
            "06 01 02000000 01000000 0b4d0000 00000080",
            Vector::Date(vec![19723, NULL_INT]),
        ),
        (
            "0b 01 01000000 01000000 81009265",
            Vector::DateTime(vec![1_704_067_201]),
        ),
        (
            "0c 01 02000000 01000000 01f451c28c010000 0000000000000080",
            Vector::Timestamp(vec![1_704_067_200_001, NULL_LONG]),
        ),
        (
            "0e 01 01000000 01000000 010065011710a617",
            Vector::NanoTimestamp(vec![1_704_067_200_000_000_001]),
        ),
        (
            "12 01 03000000 01000000 61 00 00 636363 00",
            Vector::String(vec!["a".into(), String::new(), "ccc".into()]),
        ),
        (
            "11 01 02000000 01000000 61 00 00",
            Vector::Symbol(vec!["a".into(), String::new()]),
        ),
        (
            "91 01 03000000 01000000 00000000 03000000 00 61 00 62 00 \
             01000000 02000000 01000000",
            Vector::Symbol(vec!["a".into(), "b".into(), "a".into()]),
        ),
        ("04 01 00000000 01000000", Vector::Int(vec![])),
    ];
    for (bytes, want) in cases {
        assert_eq!(ok(bytes), Value::Vector(want), "{bytes}");
    }
    for (bytes, nulls) in [
        ("0f 01 02000000 01000000 0000c03f ffff7fff", [false, true]),
        (
            "10 01 02000000 01000000 ffffffffffffefff 000000000000f03f",
            [true, false],
        ),
    ] {
        let Value::Vector(Vector::Double(v)) = ok(bytes) else {
            panic!("{bytes}: not a DOUBLE vector");
        };
        assert_eq!(v.iter().map(|x| x.is_nan()).collect::<Vec<_>>(), nulls);
    }
}

#[test]
fn a_long_vector_arrives_whole_across_chunks() {
    let rows = 100_000i64;
    let mut bytes = hex("05 01");
    bytes.extend_from_slice(&(rows as i32).to_le_bytes());
    bytes.extend_from_slice(&1i32.to_le_bytes());
    for i in 0..rows {
        bytes.extend_from_slice(&i.to_le_bytes());
    }
    // A small buffer, so that the reads are short as on a socket.
    let mut r = BufReader::with_capacity(1000, Cursor::new(bytes));
    let want: Vec<i64> = (0..rows).collect();
    assert_eq!(
        read_object(&mut r).expect("vector"),
        Value::Vector(Vector::Long(want))
    );
}

#[test]
fn pairs_sets_tuples_and_dictionaries() {
    assert_eq!(
        ok("04 02 02000000 01000000 01000000 05000000"),
        Value::Pair(Box::new(Scalar::Int(1)), Box::new(Scalar::Int(5)))
    );
    // Python's {3, 2, 1} and ["a", 1, 2.5]; a nested tuple.
    assert_eq!(
        ok("05 04 05 01 02000000 01000000 0300000000000000 0200000000000000"),
        Value::Vector(Vector::Long(vec![3, 2]))
    );
    assert_eq!(
        ok("19 01 02000000 01000000 1200 6100 19 01 01000000 01000000 0400 07000000"),
        Value::Tuple(vec![
            scalar(Scalar::string("a")),
            Value::Tuple(vec![scalar(Scalar::Int(7))]),
        ])
    );
    // Python's {"a": 1, "b": 2} and {"a": 1, "b": "x"}: keys come in the dict's hash order.
    assert_eq!(
        ok("05 05 12 01 02000000 01000000 6200 6100 \
            05 01 02000000 01000000 0200000000000000 0100000000000000"),
        Value::Dict(vec![
            ("b".into(), scalar(Scalar::Long(2))),
            ("a".into(), scalar(Scalar::Long(1))),
        ])
    );
    assert_eq!(
        ok("19 05 12 01 02000000 01000000 6200 6100 \
            19 01 02000000 01000000 1200 7800 0500 0100000000000000"),
        Value::Dict(vec![
            ("b".into(), scalar(Scalar::string("x"))),
            ("a".into(), scalar(Scalar::Long(1))),
        ])
    );
}

#[test]
fn tables_with_symbol_bases_reused_within_the_table() {
    // Two SYMBOL columns: the second reuses base 0 (size 0), as DolphinDB sends them.
    let v = ok("00 06 02000000 03000000 7400 6100 6200 6300 \
                91 01 02000000 01000000 00000000 02000000 00 7800 01000000 00000000 \
                91 01 02000000 01000000 00000000 00000000 00000000 01000000 \
                04 01 02000000 01000000 07000000 00000080");
    let want = Table::new(
        vec!["a".into(), "b".into(), "c".into()],
        vec![
            Vector::Symbol(vec!["x".into(), String::new()]),
            Vector::Symbol(vec![String::new(), "x".into()]),
            Vector::Int(vec![7, NULL_INT]),
        ],
    )
    .expect("table");
    assert_eq!(v, Value::Table(want));
    // compress=True with no compressed column: kind 8, plain columns.
    let v = ok("08 06 01000000 01000000 00 6100 05 01 01000000 01000000 0100000000000000");
    assert!(matches!(v, Value::Table(t) if t.rows() == 1));
}

#[test]
fn unsupported_types_and_forms_are_refused_by_name() {
    for (bytes, says) in [
        ("08 00 00000000", "type TIME (8) is not supported by xrepl"),
        ("07 00 e05e0000", "type MONTH (7) is not supported"),
        ("09 01 00000000 01000000", "MINUTE (9)"),
        ("0a 00 00000000", "SECOND (10)"),
        ("0d 00 0000000000000000", "NANOTIME (13)"),
        ("25 00 02000000", "DECIMAL32 (37)"),
        ("13 00 00", "UUID (19)"),
        ("20 00 00", "BLOB (32)"),
        ("44 01 00000000 01000000", "INT[] (68)"),
        ("04 03 00", "matrices are not supported by xrepl"),
        ("04 07 00", "charts are not supported"),
        ("1a 01 00000000 01000000", "connect with compress=False"),
        (
            "00 06 01000000 01000000 00 6100 1a 01 00",
            "connect with compress=False",
        ),
        ("03 06 00000000 00000000 00", "table kind 3"),
        (
            "04 05 04 01 00000000 01000000 04 01 00000000 01000000",
            "dictionary keys must be STRING or SYMBOL for xrepl, not INT (4)",
        ),
        (
            "19 02 02000000 01000000 0400 01000000 0400 01000000",
            "pair of ANY",
        ),
        (
            "04 02 01000000 01000000 01000000",
            "a pair needs 2 elements, not 1",
        ),
        ("04 01 02000000 02000000", "with 2 columns"),
        ("04 01 ffffffff 01000000", "negative"),
        ("00 06 00000000 fdffffff 00", "negative"),
        (
            "00 06 01000000 01000000 00 6100 19 01 01000000 01000000 0400 01000000",
            "ANY vector",
        ),
        (
            "00 06 02000000 01000000 00 6100 04 01 01000000 01000000 01000000",
            "has 1 rows",
        ),
        (
            "00 06 00000000 02000000 00 6100 6100 04 01 00000000 01000000 04 01 00000000 01000000",
            "duplicate column name",
        ),
        ("12 00 ff fe 00", "not valid UTF-8"),
        (
            "91 01 01000000 01000000 00000000 01000000 00 05000000",
            "index 5 is out of range",
        ),
        (
            "91 01 01000000 01000000 07000000 00000000 00000000",
            "base 7 (0 entries)",
        ),
    ] {
        refused(&hex(bytes), says);
    }
}

#[test]
fn nesting_is_bounded() {
    let level = hex("19 01 01000000 01000000");
    let mut bytes = level.repeat(100);
    bytes.extend_from_slice(&hex("04 00 01000000"));
    refused(&bytes, "nest deeper than 64");
    let mut ok_bytes = level.repeat(63);
    ok_bytes.extend_from_slice(&hex("04 00 01000000"));
    assert!(decode(&ok_bytes).is_ok());
}

#[test]
fn the_end_of_input_is_an_io_error() {
    for bytes in [
        "",
        "04",
        "04 00 0200",
        "12 00 6162",
        "04 01 03000000 01000000 01000000",
        // Declares 2^31 - 1 rows and sends none: refused without allocating for them.
        "05 01 ffffff7f 01000000",
        "19 01 ffffff7f 01000000",
        "00 06 ffffff7f ffffff7f 00",
    ] {
        let e = decode(&hex(bytes)).expect_err(bytes);
        assert!(matches!(&e, DecodeError::Io(_)), "{bytes}: {e:?}");
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn strings_are_bounded() {
    let mut r = BufReader::new(
        Cursor::new(hex("12 00")).chain(std::io::repeat(b'a').take(MAX_STRING as u64 + 10)),
    );
    match read_object(&mut r) {
        Err(DecodeError::Malformed(m)) => assert!(m.contains("longer than"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn symbol_bases_cannot_expand_without_bound() {
    // One 64 KiB symbol referenced by 5000 rows: 320 MiB if copied.
    let mut bytes = hex("91 01 88130000 01000000 00000000 02000000 00");
    bytes.extend(std::iter::repeat_n(b'x', 64 << 10));
    bytes.push(0);
    for _ in 0..5000 {
        bytes.extend_from_slice(&1i32.to_le_bytes());
    }
    refused(&bytes, "expand to more than");
}
