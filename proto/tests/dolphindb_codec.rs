//! DolphinDB's client protocol against the real thing, and against hostile input.
//!
//! The requests below were captured on the wire from DolphinDB's official Python client
//! 3.0.6.1 (numpy 1.26, pandas 2.2) talking to a fake server, and must decode into exactly the
//! values they mean. The other way, the replies the encoder produces (the byte examples of
//! `src/dolphindb/encode_tests.rs`: a table of every type with nulls and two symbol bases, an
//! empty table, dictionaries, tuples, pairs, symbol and STRING vectors, scalars, printed
//! output, errors) were served to the same client, which decoded them into the DataFrames,
//! numpy values and exceptions expected, with and without `enablePickle`.
//!
//! The properties: no input makes the header, body or object decoders panic, and every
//! refusal has text; every value xrepl can send comes back the same.

use std::io::Cursor;

use proptest::prelude::*;

use xrepl_core::value::{DataType, Scalar, Table, Value, Vector, NULL_BOOL, NULL_INT, NULL_LONG};
use xrepl_proto::dolphindb::{
    encode_reply, parse_body, parse_header, read_object, write_object, Body, DecodeError, Header,
};

// ----- captured requests ----------------------------------------------------------------------

/// `connect(host, port, "admin", "123456")`: the login.
const CONNECT_LOGIN: &str = "\
    4150492030203332202f2033325f315f345f320a636f6e6e6563740a6c6f67696e0a61646d696e0a3132333435360a66\
    616c7365";

/// The second request of `connect`.
const GET_REQUIRED_API_VERSION: &str = "\
    415049322037374142203334202f2033325f315f345f36345f5f300a66756e6374696f6e0a6765745265717569726564\
    41504956657273696f6e0a300a31";

/// The third request of `connect`.
const IS_NODE_INITIALIZED: &str = "\
    415049322037374142203330202f2033325f315f345f36345f5f300a66756e6374696f6e0a69734e6f6465496e697469\
    616c697a65640a300a31";

/// `s.run("1+1")`.
const RUN_SCRIPT: &str = "\
    415049322037374142203130202f2033325f315f345f36345f5f300a7363726970740a312b31";

/// `s.run("print(1)\n2")`.
const RUN_PRINT: &str = "\
    415049322037374142203137202f2033325f315f345f36345f5f300a7363726970740a7072696e742831290a32";

/// `s.run("myfunc", 1, "abc", 2.5, np.array([1,2,3]), None, True, np.int32(5), np.datetime64("2024-01-01"))`.
const MYFUNC: &str = "\
    415049322037374142203139202f2033325f315f345f36345f5f300a66756e6374696f6e0a6d7966756e630a380a3105\
    000100000000000000120061626300100000000000000004400501030000000100000001000000000000000200000000\
    000000030000000000000000000001000104000500000006000b4d0000";

/// `s.upload({"t": df})` of the six-column DataFrame ([`df_table`]).
const UPLOAD_DF: &str = "\
    415049322037374142203134202f2033325f315f345f36345f5f300a7661726961626c650a740a310a31000603000000\
    060000000069640073796d00707800747300666c61670069333200050103000000010000000100000000000000020000\
    00000000000300000000000000120103000000010000006100006363630010010300000001000000000000000000f83f\
    ffffffffffffefff0000000000000a400e01030000000100000000f03ed0312fa617150d4681697fa617000000000000\
    0080010103000000010000000100010401030000000100000007000000ffffffff09000000";

/// `s.upload({"t2": df2})`: the same DataFrame with a column of all `None`.
const UPLOAD_DF_NONE: &str = "\
    415049322037374142203135202f2033325f315f345f36345f5f300a7661726961626c650a74320a310a310006030000\
    00070000000069640073796d00707800747300666c616700693332006e6f6e6500050103000000010000000100000000\
    000000020000000000000003000000000000001201030000000100000061000063636300100103000000010000000000\
    00000000f83fffffffffffffefff0000000000000a400e01030000000100000000f03ed0312fa617150d4681697fa617\
    0000000000000080010103000000010000000100010401030000000100000007000000ffffffff090000001201030000\
    0001000000000000";

/// `s.run("tableInsert{loadTable('dfs://db','t')}", df)`.
const TABLE_INSERT: &str = "\
    415049322037374142203531202f2033325f315f345f36345f5f300a66756e6374696f6e0a7461626c65496e73657274\
    7b6c6f61645461626c6528276466733a2f2f6462272c277427297d0a310a31000603000000060000000069640073796d\
    00707800747300666c616700693332000501030000000100000001000000000000000200000000000000030000000000\
    0000120103000000010000006100006363630010010300000001000000000000000000f83fffffffffffffefff000000\
    0000000a400e01030000000100000000f03ed0312fa617150d4681697fa6170000000000000080010103000000010000\
    000100010401030000000100000007000000ffffffff09000000";

/// `s.upload({"x": 5, "y": "hi"})`.
const UPLOAD_TWO: &str = "\
    415049322037374142203136202f2033325f315f345f36345f5f300a7661726961626c650a782c790a320a3105000500\
    0000000000001200686900";

/// `s.run("f", {"a": 1, "b": 2})`.
const DICT_ARG: &str = "\
    415049322037374142203134202f2033325f315f345f36345f5f300a66756e6374696f6e0a660a310a31050512010200\
    000001000000620061000501020000000100000002000000000000000100000000000000";

/// `s.run("f", {"a": 1, "b": "x"})`.
const DICT_MIXED: &str = "\
    415049322037374142203134202f2033325f315f345f36345f5f300a66756e6374696f6e0a660a310a31190512010200\
    00000100000062006100190102000000010000001200780005000100000000000000";

/// `s.run("f", {1, 2, 3})`.
const SET_ARG: &str = "\
    415049322037374142203134202f2033325f315f345f36345f5f300a66756e6374696f6e0a660a310a31050405010300\
    000001000000030000000000000002000000000000000100000000000000";

/// `s.run("f", {"a", "b"})`.
const SET_STR: &str = "\
    415049322037374142203134202f2033325f315f345f36345f5f300a66756e6374696f6e0a660a310a31120412010200\
    00000100000062006100";

/// `s.run("f", [1, "a", 2.5])`.
const LIST_ARG: &str = "\
    415049322037374142203134202f2033325f315f345f36345f5f300a66756e6374696f6e0a660a310a31190103000000\
    01000000050001000000000000001200610010000000000000000440";

/// `s.run("f", [[1, 2], ["a"]])`.
const NESTED_LIST: &str = "\
    415049322037374142203134202f2033325f315f345f36345f5f300a66756e6374696f6e0a660a310a31190102000000\
    010000000501020000000100000001000000000000000200000000000000120101000000010000006100";

/// `s.run("f", ["a", "b", "a"])`.
const STR_LIST: &str = "\
    415049322037374142203134202f2033325f315f345f36345f5f300a66756e6374696f6e0a660a310a31120103000000\
    01000000610062006100";

/// `s.run("f", np.array(["a", "b"]))`.
const NP_STR: &str = "\
    415049322037374142203134202f2033325f315f345f36345f5f300a66756e6374696f6e0a660a310a31120102000000\
    0100000061006200";

/// `s.run("f", np.nan, pd.NaT, np.array([1.0, np.nan]), np.array(["a", ""], dtype=object))`.
const NULLS: &str = "\
    415049322037374142203134202f2033325f315f345f36345f5f300a66756e6374696f6e0a660a340a311000ffffffff\
    ffffefff0e00000000000000008010010200000001000000000000000000f03fffffffffffffefff1201020000000100\
    0000610000";

/// `s.run("f", pd.DataFrame({"b": [True, None, False]}))`.
const BOOL_NONE: &str = "\
    415049322037374142203134202f2033325f315f345f36345f5f300a66756e6374696f6e0a660a310a31000603000000\
    0100000000620001010300000001000000018000";

/// `s.run("f", pd.DataFrame({"i": [1, None, 3]}))`.
const INT_NONE: &str = "\
    415049322037374142203134202f2033325f315f345f36345f5f300a66756e6374696f6e0a660a310a31000603000000\
    0100000000690010010300000001000000000000000000f03fffffffffffffefff0000000000000840";

/// `s.run("f", pd.DataFrame({"a": np.array([], dtype=np.int64)}))`.
const EMPTY_DF: &str = "\
    415049322037374142203134202f2033325f315f345f36345f5f300a66756e6374696f6e0a660a310a31000600000000\
    0100000000610005010000000001000000";

/// `s.upload({"t": df})` of float32, int16, int8, datetime64[D], [ms] and [s] columns.
const UPLOAD_TYPES: &str = "\
    415049322037374142203134202f2033325f315f345f36345f5f300a7661726961626c650a740a310a31000603000000\
    0600000000663332006931360069380064006d7300736563000f0103000000010000000000c03fffff7fff000000c003\
    0103000000010000000100feff03000201030000000100000001fe030b010300000001000000800092650000008080ae\
    feff0c01030000000100000001f451c28c010000000000000000008000f451c28c0100000b0103000000010000008100\
    92650000008080009265";

/// `s.run("f", np.float32(1.5), np.int16(-2), np.int8(3), np.datetime64("2024-01-01T00:00:01"), np.datetime64("2024-01-01T00:00:00.001"), np.datetime64("2024-01-01T00:00:00.000000001"), "", np.datetime64("2024-01"), np.datetime64("NaT"))`.
const SCALARS: &str = "\
    415049322037374142203134202f2033325f315f345f36345f5f300a66756e6374696f6e0a660a390a310f000000c03f\
    0300feff0200030b00810092650c0001f451c28c0100000e00010065011710a6171200000700e05e00000e0000000000\
    00000080";

/// With `Session(compress=True)`: `s.run("f", pd.DataFrame({"a": np.array([1, 2], dtype=np.int64)}))`.
const COMPRESSED: &str = "\
    415049322037374142203134202f2039365f315f345f36345f5f300a66756e6374696f6e0a660a310a31080602000000\
    010000000061000501020000000100000001000000000000000200000000000000";

/// `s.loadTable("t", "dfs://db")`, first request.
const LOAD_TABLE_1: &str = "\
    415049322037374142203631202f2033325f315f345f36345f5f300a7363726970740a745f544d505f54424c5f316433\
    3734376430203d206c6f61645461626c6528226466733a2f2f6462222c202274222c2c66616c736529";

/// `s.loadTable("t", "dfs://db")`, second request.
const LOAD_TABLE_2: &str = "\
    415049322037374142203333202f2033325f315f345f36345f5f300a7363726970740a736368656d6128745f544d505f\
    54424c5f316433373437643029";

/// `s.loadTable("t", "dfs://db")`, third request (the handle's garbage collection).
const LOAD_TABLE_3: &str = "\
    415049322037374142203334202f2033325f315f345f36345f5f300a7363726970740a756e6465662827745f544d505f\
    54424c5f31643337343764302729";

// ----- reading a request as a server does ----------------------------------------------------

fn hex(s: &str) -> Vec<u8> {
    let digits = s.as_bytes();
    digits
        .chunks(2)
        .map(|pair| {
            let text = std::str::from_utf8(pair).expect("ascii");
            u8::from_str_radix(text, 16).expect("hex digits")
        })
        .collect()
}

/// The first line of a request may be no longer than this.
const MAX_HEADER_LINE: usize = 1024;

/// A whole request: its first line, its body, then as many objects as the body announces,
/// and nothing left over.
fn read_request(bytes: &[u8]) -> Result<(Header, Body, Vec<Value>), String> {
    let line_end = bytes
        .iter()
        .take(MAX_HEADER_LINE)
        .position(|b| *b == b'\n')
        .ok_or("no header line")?;
    let line = std::str::from_utf8(&bytes[..line_end]).map_err(|e| e.to_string())?;
    let header = parse_header(line)?;
    let rest = &bytes[line_end + 1..];
    let body = rest.get(..header.body_len).ok_or("the body is cut short")?;
    let body = parse_body(std::str::from_utf8(body).map_err(|e| e.to_string())?)?;
    let mut r = Cursor::new(&rest[header.body_len..]);
    let mut args = Vec::new();
    for _ in 0..body.object_count() {
        args.push(read_object(&mut r).map_err(|e| e.to_string())?);
    }
    if r.position() as usize != rest.len() - header.body_len {
        return Err("bytes left over after the objects".into());
    }
    Ok((header, body, args))
}

fn request(hex_text: &str) -> (Header, Body, Vec<Value>) {
    read_request(&hex(hex_text)).unwrap_or_else(|e| panic!("{e}"))
}

fn function(name: &str, argc: usize) -> Body {
    Body::Function {
        name: name.into(),
        argc,
    }
}

/// Equality with NaN equal to NaN (DOUBLE's NULL), through the debug text.
fn assert_same(got: &[Value], want: &[Value]) {
    assert_eq!(format!("{got:?}"), format!("{want:?}"));
}

fn table(columns: Vec<(&str, Vector)>) -> Value {
    let (names, columns) = columns.into_iter().map(|(n, c)| (n.to_string(), c)).unzip();
    Value::Table(Table::new(names, columns).expect("table"))
}

fn s(x: Scalar) -> Value {
    Value::Scalar(x)
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// The DataFrame of the uploads and the `tableInsert` call: pandas int64, object strings
/// (`None` arrives as the empty string: STRING's NULL), float64 with NaN, datetime64[ns] with
/// NaT, bool, int32.
fn df_table(extra: Option<(&str, Vector)>) -> Value {
    let mut columns = vec![
        ("id", Vector::Long(vec![1, 2, 3])),
        ("sym", Vector::String(strings(&["a", "", "ccc"]))),
        ("px", Vector::Double(vec![1.5, f64::NAN, 3.25])),
        (
            "ts",
            Vector::NanoTimestamp(vec![
                1_704_101_400_000_000_000,
                1_704_189_600_123_456_789,
                NULL_LONG,
            ]),
        ),
        ("flag", Vector::Bool(vec![1, 0, 1])),
        ("i32", Vector::Int(vec![7, -1, 9])),
    ];
    columns.extend(extra);
    table(columns)
}

// ----- the captures, decoded -------------------------------------------------------------------

#[test]
fn connect_logs_in_then_asks_two_functions() {
    let (h, body, args) = request(CONNECT_LOGIN);
    assert_eq!((h.api2, h.session.as_str(), h.flags), (false, "0", 32));
    assert_eq!(
        body,
        Body::Connect {
            login: Some(("admin".into(), "123456".into()))
        }
    );
    assert!(args.is_empty());
    for (capture, name) in [
        (GET_REQUIRED_API_VERSION, "getRequiredAPIVersion"),
        (IS_NODE_INITIALIZED, "isNodeInitialized"),
    ] {
        let (h, body, args) = request(capture);
        assert!(h.api2 && h.session == "77AB" && h.fetch_size == 0 && !h.is_async());
        assert_eq!((body, args.len()), (function(name, 0), 0));
    }
}

#[test]
fn scripts_arrive_as_text() {
    for (capture, text) in [
        (RUN_SCRIPT, "1+1"),
        (RUN_PRINT, "print(1)\n2"),
        (
            LOAD_TABLE_1,
            "t_TMP_TBL_1d3747d0 = loadTable(\"dfs://db\", \"t\",,false)",
        ),
        (LOAD_TABLE_2, "schema(t_TMP_TBL_1d3747d0)"),
        (LOAD_TABLE_3, "undef('t_TMP_TBL_1d3747d0')"),
    ] {
        let (_, body, args) = request(capture);
        assert_eq!(body, Body::Script(text.into()));
        assert!(args.is_empty());
    }
}

#[test]
fn a_function_call_with_eight_python_arguments() {
    let (_, body, args) = request(MYFUNC);
    assert_eq!(body, function("myfunc", 8));
    assert_eq!(
        args,
        vec![
            s(Scalar::Long(1)),
            s(Scalar::string("abc")),
            s(Scalar::Double(2.5)),
            Value::Vector(Vector::Long(vec![1, 2, 3])),
            s(Scalar::Int(NULL_INT)),
            s(Scalar::Bool(1)),
            s(Scalar::Int(5)),
            s(Scalar::Date(19723)),
        ]
    );
}

#[test]
fn dataframes_uploaded_and_inserted() {
    let (_, body, args) = request(UPLOAD_DF);
    assert_eq!(
        body,
        Body::Variable {
            names: strings(&["t"]),
            count: 1
        }
    );
    assert_same(&args, &[df_table(None)]);
    let (_, body, args) = request(TABLE_INSERT);
    assert_eq!(body, function("tableInsert{loadTable('dfs://db','t')}", 1));
    assert_same(&args, &[df_table(None)]);
    // A column of all None is a STRING column of NULLs.
    let (_, _, args) = request(UPLOAD_DF_NONE);
    let none = Vector::String(strings(&["", "", ""]));
    assert_same(&args, &[df_table(Some(("none", none)))]);
}

#[test]
fn dataframe_columns_of_other_types() {
    // float32 → FLOAT, int16 → SHORT, int8 → CHAR; pandas keeps datetime64[D] as [s], so it
    // arrives as DATETIME like [s]; [ms] as TIMESTAMP.
    let (_, _, args) = request(UPLOAD_TYPES);
    let want = table(vec![
        ("f32", Vector::Double(vec![1.5, f64::NAN, -2.0])),
        ("i16", Vector::Int(vec![1, -2, 3])),
        ("i8", Vector::Int(vec![1, -2, 3])),
        (
            "d",
            Vector::DateTime(vec![1_704_067_200, NULL_INT, -86_400]),
        ),
        (
            "ms",
            Vector::Timestamp(vec![1_704_067_200_001, NULL_LONG, 1_704_067_200_000]),
        ),
        (
            "sec",
            Vector::DateTime(vec![1_704_067_201, NULL_INT, 1_704_067_200]),
        ),
    ]);
    assert_same(&args, &[want]);
    // An object column of bools with None is BOOL with NULL; ints with None became float64.
    let (_, _, args) = request(BOOL_NONE);
    assert_same(
        &args,
        &[table(vec![("b", Vector::Bool(vec![1, NULL_BOOL, 0]))])],
    );
    let (_, _, args) = request(INT_NONE);
    let want = table(vec![("i", Vector::Double(vec![1.0, f64::NAN, 3.0]))]);
    assert_same(&args, &[want]);
    let (_, _, args) = request(EMPTY_DF);
    assert_same(&args, &[table(vec![("a", Vector::Long(vec![]))])]);
    // compress=True: flag 64, table kind 8, the columns themselves plain.
    let (h, _, args) = request(COMPRESSED);
    assert_eq!(h.flags, 96);
    assert_same(&args, &[table(vec![("a", Vector::Long(vec![1, 2]))])]);
}

#[test]
fn python_containers_and_nulls() {
    let long = |v: i64| s(Scalar::Long(v));
    let cases: Vec<(&str, Vec<Value>)> = vec![
        (
            DICT_ARG,
            vec![Value::Dict(vec![
                ("b".into(), long(2)),
                ("a".into(), long(1)),
            ])],
        ),
        (
            DICT_MIXED,
            vec![Value::Dict(vec![
                ("b".into(), s(Scalar::string("x"))),
                ("a".into(), long(1)),
            ])],
        ),
        (SET_ARG, vec![Value::Vector(Vector::Long(vec![3, 2, 1]))]),
        (
            SET_STR,
            vec![Value::Vector(Vector::String(strings(&["b", "a"])))],
        ),
        (
            LIST_ARG,
            vec![Value::Tuple(vec![
                long(1),
                s(Scalar::string("a")),
                s(Scalar::Double(2.5)),
            ])],
        ),
        (
            NESTED_LIST,
            vec![Value::Tuple(vec![
                Value::Vector(Vector::Long(vec![1, 2])),
                Value::Vector(Vector::String(strings(&["a"]))),
            ])],
        ),
        // A list of Python strings is STRING, not SYMBOL.
        (
            STR_LIST,
            vec![Value::Vector(Vector::String(strings(&["a", "b", "a"])))],
        ),
        (
            NP_STR,
            vec![Value::Vector(Vector::String(strings(&["a", "b"])))],
        ),
        (
            NULLS,
            vec![
                s(Scalar::Double(f64::NAN)),
                s(Scalar::NanoTimestamp(NULL_LONG)),
                Value::Vector(Vector::Double(vec![1.0, f64::NAN])),
                Value::Vector(Vector::String(strings(&["a", ""]))),
            ],
        ),
        (UPLOAD_TWO, vec![long(5), s(Scalar::string("hi"))]),
    ];
    for (capture, want) in cases {
        let (_, _, args) = request(capture);
        assert_same(&args, &want);
    }
}

#[test]
fn numpy_scalars_and_a_month_which_is_refused() {
    let bytes = hex(SCALARS);
    let at = bytes.iter().position(|b| *b == b'\n').expect("line") + 1;
    let line = std::str::from_utf8(&bytes[..at - 1]).expect("text");
    let h = parse_header(line).expect("header");
    assert_eq!(
        parse_body(std::str::from_utf8(&bytes[at..at + h.body_len]).expect("text")),
        Ok(function("f", 9))
    );
    let mut r = Cursor::new(&bytes[at + h.body_len..]);
    let mut got = Vec::new();
    for _ in 0..7 {
        got.push(read_object(&mut r).expect("argument"));
    }
    assert_same(
        &got,
        &[
            s(Scalar::Double(1.5)),
            s(Scalar::Int(-2)),
            s(Scalar::Int(3)),
            s(Scalar::DateTime(1_704_067_201)),
            s(Scalar::Timestamp(1_704_067_200_001)),
            s(Scalar::NanoTimestamp(1_704_067_200_000_000_001)),
            s(Scalar::string("")),
        ],
    );
    match read_object(&mut r) {
        Err(DecodeError::Malformed(m)) => {
            assert_eq!(m, "type MONTH (7) is not supported by xrepl")
        }
        other => panic!("np.datetime64('2024-01') is a MONTH: {other:?}"),
    }
    let refused = read_request(&bytes).expect_err("a MONTH argument");
    assert!(refused.contains("MONTH"), "{refused}");
}

#[test]
fn a_reply_can_hold_what_a_request_brought() {
    // What the client uploaded, sent back: the same value again.
    let (_, _, args) = request(UPLOAD_DF);
    let reply = encode_reply("77AB", &[], Ok(&args[0]));
    let object = reply
        .strip_prefix(b"77AB 1 1\nOK\n".as_slice())
        .expect("reply header");
    let back = read_object(&mut Cursor::new(object)).expect("object");
    assert_same(&[back], &args);
}

// ----- hostile input ---------------------------------------------------------------------------

/// Cases per property, as in `hostile_decoders.rs`.
const CASES: u32 = 256;

fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Bytes that mean something here: type codes (VOID, BOOL, INT, STRING, ANY, COMPRESS,
/// SYMBOL with base), forms, lengths' high bytes, NUL, newline, a digit.
const INTERESTING: &[u8] = &[
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x08, 0x0a, 0x11, 0x12, 0x19, 0x1a, 0x31, 0x7f, 0x80,
    0x91, 0xfe, 0xff,
];

/// Lengths that declare far more than follows: 2^31 - 1, -1, 2^24.
const HUGE: &[[u8; 4]] = &[
    [0xff, 0xff, 0xff, 0x7f],
    [0xff, 0xff, 0xff, 0xff],
    [0x00, 0x00, 0x00, 0x01],
];

#[derive(Debug, Clone)]
enum Mutation {
    Set { at: usize, byte: u8 },
    Insert { at: usize, bytes: Vec<u8> },
    Remove { at: usize, len: usize },
    Truncate { at: usize },
    Duplicate { from: usize, len: usize, at: usize },
}

fn any_byte() -> impl Strategy<Value = u8> {
    prop_oneof![any::<u8>(), prop::sample::select(INTERESTING)]
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    let one = prop_oneof![
        (any::<usize>(), any_byte()).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        (
            any::<usize>(),
            prop_oneof![
                prop::collection::vec(any_byte(), 1..6),
                prop::sample::select(HUGE).prop_map(|h| h.to_vec()),
            ]
        )
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<usize>(), 1usize..8).prop_map(|(at, len)| Mutation::Remove { at, len }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (any::<usize>(), 1usize..24, any::<usize>())
            .prop_map(|(from, len, at)| Mutation::Duplicate { from, len, at }),
    ];
    prop::collection::vec(one, 1..5)
}

fn mutate(mut b: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        let n = b.len();
        let pos = |at: usize| if n == 0 { 0 } else { at % n };
        match m {
            Mutation::Set { at, byte } if n > 0 => b[pos(*at)] = *byte,
            Mutation::Set { .. } => {}
            Mutation::Insert { at, bytes } => {
                let at = at % (n + 1);
                b.splice(at..at, bytes.iter().copied());
            }
            Mutation::Remove { at, len } => {
                let at = pos(*at);
                b.drain(at..(at + len).min(n));
            }
            Mutation::Truncate { at } => b.truncate(at % (n + 1)),
            Mutation::Duplicate { from, len, at } => {
                let from = pos(*from);
                let run = b[from..(from + len).min(n)].to_vec();
                let at = at % (n + 1);
                b.splice(at..at, run);
            }
        }
    }
    b
}

const CAPTURES: &[&str] = &[
    CONNECT_LOGIN,
    RUN_SCRIPT,
    MYFUNC,
    UPLOAD_DF,
    UPLOAD_DF_NONE,
    TABLE_INSERT,
    UPLOAD_TWO,
    DICT_ARG,
    DICT_MIXED,
    SET_ARG,
    LIST_ARG,
    NESTED_LIST,
    NULLS,
    UPLOAD_TYPES,
    SCALARS,
    COMPRESSED,
];

/// Every object the decoder is given: decoded, or refused with text.
fn decode_all(bytes: &[u8]) {
    let mut r = Cursor::new(bytes);
    while (r.position() as usize) < bytes.len() {
        match read_object(&mut r) {
            Ok(_) => {}
            Err(e) => {
                assert!(!e.to_string().trim().is_empty(), "an error without text");
                break;
            }
        }
    }
}

// ----- generated values ------------------------------------------------------------------------

fn data_type() -> impl Strategy<Value = DataType> {
    prop::sample::select(DataType::ALL.to_vec())
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z]{1,3}", "\\PC{0,6}"]
}

fn double() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(-0.0),
        any::<f64>().prop_filter("-f64::MAX is DOUBLE's NULL", |v| *v != -f64::MAX),
    ]
}

/// A scalar of type `t`, NULL one time in four.
fn scalar_of(t: DataType) -> BoxedStrategy<Scalar> {
    let int = prop_oneof![1 => Just(NULL_INT), 3 => any::<i32>()];
    let long = prop_oneof![1 => Just(NULL_LONG), 3 => any::<i64>()];
    match t {
        DataType::Bool => prop::sample::select(vec![0i8, 1, NULL_BOOL])
            .prop_map(Scalar::Bool)
            .boxed(),
        DataType::Int => int.prop_map(Scalar::Int).boxed(),
        DataType::Date => int.prop_map(Scalar::Date).boxed(),
        DataType::DateTime => int.prop_map(Scalar::DateTime).boxed(),
        DataType::Long => long.prop_map(Scalar::Long).boxed(),
        DataType::Timestamp => long.prop_map(Scalar::Timestamp).boxed(),
        DataType::NanoTimestamp => long.prop_map(Scalar::NanoTimestamp).boxed(),
        DataType::Double => double().prop_map(Scalar::Double).boxed(),
        DataType::String => text().prop_map(Scalar::String).boxed(),
        DataType::Symbol => text().prop_map(Scalar::Symbol).boxed(),
    }
}

fn vector_of(t: DataType, rows: std::ops::Range<usize>) -> BoxedStrategy<Vector> {
    prop::collection::vec(scalar_of(t), rows)
        .prop_map(move |items| {
            let mut v = Vector::empty(t);
            for item in items {
                v.push(item).expect("same type");
            }
            v
        })
        .boxed()
}

fn any_table() -> impl Strategy<Value = Value> {
    (0usize..6, prop::collection::vec(data_type(), 1..6)).prop_flat_map(|(rows, types)| {
        let columns: Vec<_> = types
            .into_iter()
            .map(|t| vector_of(t, rows..rows + 1))
            .collect();
        columns.prop_map(|columns| {
            let names = (0..columns.len()).map(|i| format!("c{i}")).collect();
            Value::Table(Table::new(names, columns).expect("table"))
        })
    })
}

/// Values xrepl can send, which come back equal: VOID and mixed pairs come back as something
/// else and are tested on their own.
fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        data_type().prop_flat_map(scalar_of).prop_map(Value::Scalar),
        data_type()
            .prop_flat_map(|t| vector_of(t, 0..8))
            .prop_map(Value::Vector),
        any_table(),
        data_type()
            .prop_flat_map(|t| (scalar_of(t), scalar_of(t)))
            .prop_map(|(a, b)| Value::Pair(Box::new(a), Box::new(b))),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Tuple),
            prop::collection::vec((text(), inner), 0..4).prop_map(Value::Dict),
        ]
    })
}

fn encoded(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_object(v, &mut out).unwrap_or_else(|e| panic!("{v:?}: {e}"));
    out
}

proptest! {
    #![proptest_config(cases(CASES))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any_byte(), 0..200)) {
        let text = String::from_utf8_lossy(&bytes);
        if let Err(e) = parse_header(&text) {
            prop_assert!(!e.trim().is_empty());
        }
        if let Err(e) = parse_body(&text) {
            prop_assert!(!e.trim().is_empty());
        }
        decode_all(&bytes);
        if let Err(e) = read_request(&bytes) {
            prop_assert!(!e.trim().is_empty());
        }
    }

    #[test]
    fn mutated_captures_never_panic(
        which in 0..CAPTURES.len(),
        muts in mutations(),
    ) {
        let bytes = mutate(hex(CAPTURES[which]), &muts);
        if let Err(e) = read_request(&bytes) {
            prop_assert!(!e.trim().is_empty());
        }
        // The objects alone, past the text.
        let at = bytes.iter().position(|b| *b == b'\n').map_or(0, |i| i + 1);
        decode_all(&bytes[at..]);
    }

    #[test]
    fn mutated_encodings_never_panic(v in any_value(), muts in mutations()) {
        decode_all(&mutate(encoded(&v), &muts));
    }

    #[test]
    fn values_round_trip(v in any_value()) {
        let bytes = encoded(&v);
        let mut r = Cursor::new(&bytes[..]);
        let back = read_object(&mut r).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(r.position() as usize, bytes.len());
        prop_assert_eq!(format!("{back:?}"), format!("{v:?}"));
    }

    #[test]
    fn pairs_of_two_types_come_back_as_tuples(
        a in data_type().prop_flat_map(scalar_of),
        b in data_type().prop_flat_map(scalar_of),
    ) {
        let back = read_object(&mut Cursor::new(encoded(&Value::Pair(
            Box::new(a.clone()),
            Box::new(b.clone()),
        ))))
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let want = if a.data_type() == b.data_type() {
            Value::Pair(Box::new(a), Box::new(b))
        } else {
            Value::Tuple(vec![Value::Scalar(a), Value::Scalar(b)])
        };
        prop_assert_eq!(format!("{back:?}"), format!("{want:?}"));
    }
}
