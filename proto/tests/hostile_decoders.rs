//! Hostile input for every decoder of bytes or text that can come from outside a process:
//! the frame reader (length prefix, header, reassembly), every RPC message and the wire and
//! on-disk types decoded with rmp-serde, the config files and the script parser.
//!
//! The property everywhere is: no panic, no stack overflow, no allocation sized by a declared
//! length, and every refusal is an error with text. Inputs are arbitrary bytes or text, and
//! real encodings or real scripts with bytes flipped, set, inserted, removed or cut off.

use std::fmt::Display;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_util::codec::Decoder;

use xrepl_core::catalog::{
    Catalog, CatalogChange, ColumnDef, DatabaseMeta, PartitionScheme, Right, TableKind, TableMeta,
};
use xrepl_core::config::{self, NodeRole, ReplicationMode};
use xrepl_core::value::{DataType, FunctionRef, Scalar, Table, Value, Vector};
use xrepl_proto::master_client::decode_task_data;
use xrepl_proto::rpc::frame::{self, Assembler, FrameKind, HEADER_LEN};
use xrepl_proto::rpc::{
    decode, encode, CatalogCheck, ControllerReply, ControllerRequest, ErrorCode, Hello, HelloReply,
    MemberProof, ParticipantReply, ParticipantRequest, PeerKind, RemoteError, ReplicationReply,
    ReplicationRequest, Request, ServerInfo, SessionReply, SessionRequest, PROTOCOL_VERSION,
};
use xrepl_proto::task::{
    InlineData, OperationType, ReplayAssignment, ReplayFailure, ReplayOf, Scope, TaskData,
    TaskInfo, TaskMeta,
};
use xrepl_proto::txn::{
    AggFn, ChunkAction, ChunkId, ChunkOp, ColExpr, Partial, Scan, ScanResult, ScanShape,
};
use xrepl_query::lang;
use xrepl_query::lang::ast::BinOp;

/// Cases per property: enough to find the shallow bugs, few enough that the whole file runs in
/// seconds in a debug build.
const CASES: u32 = 256;

fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        // Every bug found gets a plain regression test below instead of a seed file.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn assert_has_text(what: &str, e: impl Display) {
    let text = e.to_string();
    assert!(!text.trim().is_empty(), "{what}: an error without text");
}

// ----- mutations ------------------------------------------------------------------------------

/// Bytes that mean something to msgpack or to the frame header: length markers of every width,
/// the never-used marker, the frame kinds and flags.
const INTERESTING: &[u8] = &[
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2,
    0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xcb, 0xcc, 0xcf, 0xd3, 0xd4, 0xd8, 0xd9, 0xda,
    0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff,
];

/// Headers that declare 4 GiB (or 64 K) of what follows.
const HUGE_HEADERS: &[&[u8]] = &[
    &[0xdb, 0xff, 0xff, 0xff, 0xff],
    &[0xc6, 0xff, 0xff, 0xff, 0xff],
    &[0xdd, 0xff, 0xff, 0xff, 0xff],
    &[0xdf, 0xff, 0xff, 0xff, 0xff],
    &[0xc9, 0xff, 0xff, 0xff, 0xff, 0x01],
    &[0xdc, 0xff, 0xff],
    &[0xff, 0xff, 0xff, 0xff],
];

#[derive(Debug, Clone)]
enum Mutation {
    Flip {
        at: usize,
        bit: u8,
    },
    Set {
        at: usize,
        byte: u8,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    Remove {
        at: usize,
        len: usize,
    },
    Truncate {
        at: usize,
    },
    /// Copies a run of the input elsewhere (repeats a structure, or a length).
    Duplicate {
        from: usize,
        len: usize,
        at: usize,
    },
}

fn any_byte() -> impl Strategy<Value = u8> {
    prop_oneof![any::<u8>(), prop::sample::select(INTERESTING)]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        (any::<usize>(), any_byte()).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        (
            any::<usize>(),
            prop_oneof![
                prop::collection::vec(any_byte(), 1..8),
                prop::sample::select(HUGE_HEADERS).prop_map(<[u8]>::to_vec),
            ]
        )
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<usize>(), 1usize..16).prop_map(|(at, len)| Mutation::Remove { at, len }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (any::<usize>(), 1usize..32, any::<usize>())
            .prop_map(|(from, len, at)| Mutation::Duplicate { from, len, at }),
    ]
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..6)
}

fn mutate(mut b: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        let n = b.len();
        let pos = |at: usize| if n == 0 { 0 } else { at % n };
        match m {
            Mutation::Flip { at, bit } => {
                if n > 0 {
                    b[pos(*at)] ^= 1 << bit;
                }
            }
            Mutation::Set { at, byte } => {
                if n > 0 {
                    b[pos(*at)] = *byte;
                }
            }
            Mutation::Insert { at, bytes } => {
                let at = at % (n + 1);
                b.splice(at..at, bytes.iter().copied());
            }
            Mutation::Remove { at, len } => {
                let at = pos(*at);
                let end = (at + len).min(n);
                b.drain(at..end);
            }
            Mutation::Truncate { at } => b.truncate(at % (n + 1)),
            Mutation::Duplicate { from, len, at } => {
                let from = pos(*from);
                let run: Vec<u8> = b[from..(from + len).min(n)].to_vec();
                let at = at % (n + 1);
                b.splice(at..at, run);
            }
        }
    }
    b
}

// ----- frames ---------------------------------------------------------------------------------

/// What the server and client loops do with the bytes of a connection: the length-delimited
/// codec, the header, the assembler; and at the end of the stream, nothing may be left over.
fn read_frames(
    chunks: &[&[u8]],
    max_frame: usize,
    limit: usize,
) -> Result<Vec<(FrameKind, u64, Bytes)>, String> {
    let mut codec = frame::codec(max_frame);
    let mut asm = Assembler::new(limit);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut take = |raw: BytesMut, out: &mut Vec<_>| -> Result<(), String> {
        let f = frame::parse(raw.freeze()).map_err(|e| e.to_string())?;
        if let Some(m) = asm.push(f).map_err(|e| e.to_string())? {
            assert!(m.2.len() <= limit, "assembled past the limit");
            out.push(m);
        }
        Ok(())
    };
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(raw) = codec.decode(&mut buf).map_err(|e| e.to_string())? {
            assert!(raw.len() <= max_frame, "a frame past the limit");
            take(raw, &mut out)?;
        }
    }
    while let Some(raw) = codec.decode_eof(&mut buf).map_err(|e| e.to_string())? {
        take(raw, &mut out)?;
    }
    Ok(out)
}

/// Length-prefixed frames of `messages`, as they travel.
fn wire(messages: &[(FrameKind, u64, Vec<u8>)], max_frame: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for (kind, id, body) in messages {
        for f in frame::split(*kind, *id, body, max_frame) {
            out.extend_from_slice(&(f.len() as u32).to_be_bytes());
            out.extend_from_slice(&f);
        }
    }
    out
}

/// Cuts `bytes` at the given points (taken modulo its length), as reads from a socket would.
fn chunked<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    at.push(0);
    at.push(bytes.len());
    at.sort_unstable();
    at.dedup();
    at.windows(2).map(|w| &bytes[w[0]..w[1]]).collect()
}

fn frame_kind() -> impl Strategy<Value = FrameKind> {
    prop::sample::select(vec![
        FrameKind::Hello,
        FrameKind::HelloReply,
        FrameKind::Request,
        FrameKind::Response,
    ])
}

fn messages() -> impl Strategy<Value = Vec<(FrameKind, u64, Vec<u8>)>> {
    prop::collection::vec(
        (
            frame_kind(),
            0u64..4,
            prop::collection::vec(any::<u8>(), 0..300),
        ),
        0..6,
    )
}

proptest! {
    #![proptest_config(cases(CASES))]

    #[test]
    fn any_bytes_read_from_a_connection_give_frames_or_a_clear_error(
        bytes in prop::collection::vec(any_byte(), 0..512),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
        max_frame in (HEADER_LEN + 1)..4096usize,
    ) {
        if let Err(e) = read_frames(&chunked(&bytes, &cuts), max_frame, 8192) {
            assert_has_text("frame reader", e);
        }
    }

    #[test]
    fn well_formed_frames_reassemble_every_message_however_the_reads_cut_them(
        msgs in messages(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
        max_frame in (HEADER_LEN + 1)..200usize,
    ) {
        // Unique (kind, id) pairs: a message's chunks must not interleave with its own kind and id.
        let mut seen = std::collections::HashSet::new();
        let msgs: Vec<_> = msgs.into_iter().filter(|(k, id, _)| seen.insert((*k, *id))).collect();
        let bytes = wire(&msgs, max_frame);
        let got = read_frames(&chunked(&bytes, &cuts), max_frame, 1 << 20)
            .map_err(|e| TestCaseError::fail(format!("refused a well-formed stream: {e}")))?;
        let got: Vec<_> = got.into_iter().map(|(k, id, b)| (k, id, b.to_vec())).collect();
        prop_assert_eq!(got, msgs);
    }

    #[test]
    fn mutated_frame_streams_are_reassembled_or_refused_with_a_clear_error(
        msgs in messages(),
        muts in mutations(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
        max_frame in (HEADER_LEN + 1)..200usize,
    ) {
        let bytes = mutate(wire(&msgs, max_frame), &muts);
        if let Err(e) = read_frames(&chunked(&bytes, &cuts), max_frame, 4096) {
            assert_has_text("frame reader", e);
        }
    }

    #[test]
    fn a_length_over_the_limit_is_refused_before_anything_is_allocated_for_it(
        max_frame in (HEADER_LEN + 1)..(64usize << 20),
        over in any::<u32>(),
        tail in prop::collection::vec(any::<u8>(), 0..16),
    ) {
        let max = u32::try_from(max_frame).expect("fits");
        let declared = max + 1 + over % (u32::MAX - max);
        let mut buf = BytesMut::with_capacity(64);
        buf.extend_from_slice(&declared.to_be_bytes());
        buf.extend_from_slice(&tail);
        let before = buf.capacity();
        let e = frame::codec(max_frame)
            .decode(&mut buf)
            .expect_err("a length over the limit is refused");
        assert_has_text("oversized length", &e);
        prop_assert_eq!(buf.capacity(), before, "the buffer grew for a refused length");
    }

    #[test]
    fn the_assembler_never_completes_a_message_larger_than_its_limit(
        frames in prop::collection::vec(
            (frame_kind(), any::<bool>(), 0u64..3, 0usize..200),
            0..64,
        ),
        limit in 0usize..600,
    ) {
        let mut asm = Assembler::new(limit);
        for (kind, more, id, len) in frames {
            let mut raw = frame::split(kind, id, &vec![7u8; len], len + HEADER_LEN)[0].to_vec();
            raw[1] = u8::from(more);
            let f = match frame::parse(Bytes::from(raw)) {
                Ok(f) => f,
                // An empty chunk with more to follow is refused by its header already.
                Err(e) => {
                    prop_assert!(more && len == 0, "{}", e);
                    assert_has_text("empty continuation", e);
                    continue;
                }
            };
            match asm.push(f) {
                Ok(Some((_, _, body))) => prop_assert!(body.len() <= limit),
                Ok(None) => {}
                Err(e) => {
                    assert_has_text("assembler", e);
                    break;
                }
            }
        }
    }

    #[test]
    fn split_and_reassembly_give_back_any_payload_for_any_frame_limit(
        payload in prop::collection::vec(any::<u8>(), 0..600),
        max_frame in 0usize..64,
    ) {
        let mut asm = Assembler::new(1 << 20);
        let mut done = None;
        for f in frame::split(FrameKind::Request, 9, &payload, max_frame) {
            prop_assert!(done.is_none(), "frames after the last one");
            done = asm.push(frame::parse(f).expect("own frame")).expect("within the limit");
        }
        let (_, id, body) = done.expect("the last frame completes the message");
        prop_assert_eq!(id, 9);
        prop_assert_eq!(&body[..], &payload[..]);
    }
}

#[test]
fn a_4_gib_frame_length_is_refused_with_a_clear_error() {
    for max_frame in [4096, 64 << 20, 1 << 30] {
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 0, 1, 2][..]);
        let e = frame::codec(max_frame)
            .decode(&mut buf)
            .expect_err("4 GiB is over every limit");
        assert!(e.to_string().contains("frame size too big"), "{e}");
        assert!(buf.capacity() < 1024);
    }
    // Exactly the limit is fine, and waits for the rest.
    let mut buf = BytesMut::from(&4096u32.to_be_bytes()[..]);
    assert!(matches!(frame::codec(4096).decode(&mut buf), Ok(None)));
    // An end of stream inside a frame is an error, between frames it is not.
    let mut cut = BytesMut::from(&[0, 0, 0, 20, 3, 0][..]);
    let e = frame::codec(4096)
        .decode_eof(&mut cut)
        .expect_err("cut frame");
    assert_has_text("cut frame", e);
    assert!(matches!(
        frame::codec(4096).decode_eof(&mut BytesMut::new()),
        Ok(None)
    ));
}

// ----- messages -------------------------------------------------------------------------------

fn table() -> Table {
    Table::new(
        vec!["d".into(), "k".into(), "v".into(), "s".into()],
        vec![
            Vector::Date(vec![19358, 19359]),
            Vector::Int(vec![1, i32::MIN]),
            Vector::Double(vec![1.5, -0.0]),
            Vector::String(vec!["a".into(), String::new()]),
        ],
    )
    .expect("a valid table")
}

fn value() -> Value {
    Value::Tuple(vec![
        Value::Scalar(Scalar::Long(i64::MAX)),
        Value::Vector(Vector::Symbol(vec!["x".into(), "y".into()])),
        Value::Pair(Box::new(Scalar::Int(1)), Box::new(Scalar::Int(0))),
        Value::Table(table()),
        Value::Function(FunctionRef("getClusterPerf".into())),
        Value::Type(DataType::NanoTimestamp),
        Value::Keyword("VALUE".into()),
        Value::Database("dfs://db".into()),
        Value::TableRef {
            db: "dfs://db".into(),
            table: "t".into(),
        },
        Value::Dict(vec![("n".into(), Value::Void)]),
    ])
}

fn filter() -> ColExpr {
    ColExpr::Binary(
        BinOp::And,
        Box::new(ColExpr::Between(
            Box::new(ColExpr::Column("k".into())),
            Scalar::Int(1),
            Scalar::Int(5),
        )),
        Box::new(ColExpr::Not(Box::new(ColExpr::In(
            Box::new(ColExpr::Neg(Box::new(ColExpr::Column("v".into())))),
            Vector::Double(vec![1.0, 2.0]),
        )))),
    )
}

fn columns() -> Vec<ColumnDef> {
    vec![
        ColumnDef {
            id: 0,
            name: "d".into(),
            ty: DataType::Date,
            comment: String::new(),
        },
        ColumnDef {
            id: 3,
            name: "v".into(),
            ty: DataType::Double,
            comment: "the value".into(),
        },
    ]
}

fn task_info() -> TaskInfo {
    TaskInfo {
        task_id: 7,
        tid: 42,
        group_id: 3,
        op: OperationType::SqlUpdate,
        submit_ns: 1_700_000_000_000_000_000,
        db: "dfs://db".into(),
        table: "pt".into(),
        src_host: "127.0.0.1".into(),
        src_port: 8849,
        execution_set: 1,
        data_bytes: 250,
        for_slave: None,
    }
}

fn task_meta() -> TaskMeta {
    TaskMeta {
        op: OperationType::Append,
        db: "dfs://db".into(),
        table: "pt".into(),
        scope: Scope::Chunks {
            db: "dfs://db".into(),
            table: "pt".into(),
            partitions: vec![0, 4],
        },
        src_host: "127.0.0.1".into(),
        src_port: 8849,
        data_written: true,
        data_bytes: 250,
        snapshot: None,
        for_slave: None,
    }
}

fn database() -> DatabaseMeta {
    DatabaseMeta {
        path: "dfs://db".into(),
        scheme: PartitionScheme::List(vec![
            Vector::Symbol(vec!["a".into()]),
            Vector::Symbol(vec!["b".into(), "c".into()]),
        ]),
        tables: [(
            "pt".to_string(),
            TableMeta {
                id: 5,
                name: "pt".into(),
                kind: TableKind::Partitioned { column: "d".into() },
                columns: columns(),
                next_column_id: 4,
                chunks: [(0, "dnode1".to_string()), (1, "dnode2".to_string())].into(),
            },
        )]
        .into(),
        replication_enabled: true,
        execution_set: 0,
        version: 42,
    }
}

fn chunk_ops() -> Vec<ChunkOp> {
    let chunk = ChunkId {
        table: 5,
        partition: 1,
    };
    let op = |action| ChunkOp {
        chunk,
        label: "dfs://db/pt/1".into(),
        columns: columns(),
        action,
    };
    vec![
        op(ChunkAction::Append {
            columns: vec![(0, Vector::Date(vec![1])), (3, Vector::Double(vec![2.0]))],
        }),
        op(ChunkAction::Update {
            set: vec![("v".into(), ColExpr::Const(Scalar::Double(0.5)))],
            filter: Some(filter()),
        }),
        op(ChunkAction::Convert {
            column: 3,
            to: DataType::Long,
        }),
    ]
}

fn task_data() -> Vec<TaskData> {
    vec![
        TaskData::CreateDomain {
            db: "dfs://db".into(),
            scheme: PartitionScheme::Hash {
                ty: DataType::Symbol,
                buckets: 10,
            },
            tables: Some(vec![]),
        },
        TaskData::Append {
            db: "dfs://db".into(),
            table: "pt".into(),
            data: table(),
        },
        TaskData::SqlUpdate {
            db: "dfs://db".into(),
            table: "pt".into(),
            set: vec![("v".into(), filter())],
            filter: Some(filter()),
        },
        TaskData::DropPartition {
            db: "dfs://db".into(),
            table: "pt".into(),
            partitions: vec![0, 1],
            values: Vector::Date(vec![19358]),
        },
    ]
}

fn remote_error() -> RemoteError {
    RemoteError {
        node: "controller1".into(),
        code: ErrorCode::AccessDenied,
        message: "The user name or password is incorrect.".into(),
    }
}

fn requests() -> Vec<Request> {
    vec![
        Request::Controller(ControllerRequest::Login {
            user: "admin".into(),
            password: "123456".into(),
            peer: "10.0.0.9".into(),
        }),
        Request::Controller(ControllerRequest::Session {
            token: "admin.1.99.0.000000000000000000000000.00".into(),
        }),
        Request::Controller(ControllerRequest::ChangePassword {
            token: "admin.1.99.0.000000000000000000000000.00".into(),
            old: "123456".into(),
            new: "654321".into(),
            peer: "10.0.0.9".into(),
        }),
        Request::Controller(ControllerRequest::Call {
            token: "admin.00.00".into(),
            function: "getClusterPerf".into(),
            args: vec![value()],
        }),
        Request::Controller(ControllerRequest::Decide {
            token: "t".into(),
            tid: 9,
            commit: true,
            reason: String::new(),
            changes: vec![CatalogChange::CreateDatabase {
                path: "dfs://db".into(),
                scheme: PartitionScheme::Range(Vector::Int(vec![0, 10, 20])),
            }],
            task: Some(Box::new(task_meta())),
            task_data: Some(serde_bytes::ByteBuf::from(vec![0x92, 1, 2])),
            replay: vec![
                ReplayOf {
                    task_id: 7,
                    node: "dnode1".into(),
                    started_ns: 1,
                    nonce: Default::default(),
                },
                ReplayOf {
                    task_id: 8,
                    node: "dnode1".into(),
                    started_ns: 1,
                    nonce: Default::default(),
                },
            ],
            check: Some(CatalogCheck {
                db: "dfs://db".into(),
                version: 12,
                need: Right::Write,
            }),
            participants: vec!["dnode1".into(), "dnode2".into()],
        }),
        Request::Controller(ControllerRequest::Settled {
            alias: "dnode1".into(),
            tids: vec![1, 2, 3],
        }),
        Request::Controller(ControllerRequest::TakeReplayTask {
            token: "t".into(),
            node: "dnode1".into(),
            wait_ms: 2_000,
            max: 500,
            finished: vec![3, 4],
            failed: Some(ReplayFailure {
                task_id: 5,
                reason: "r".into(),
                transient: false,
            }),
            released: vec![6],
            attempt: Some(xrepl_proto::task::AttemptProof {
                started_ns: 9,
                nonce: serde_bytes::ByteBuf::from(vec![2u8; 16]),
            }),
        }),
        Request::Controller(ControllerRequest::ReplayDone {
            token: "t".into(),
            node: "dnode1".into(),
            finished: vec![1, 2],
            failed: Some(ReplayFailure {
                task_id: 3,
                reason: "no right".into(),
                transient: false,
            }),
            released: vec![4, 5],
            attempt: None,
        }),
        Request::Controller(ControllerRequest::GetDatabase {
            token: "t".into(),
            db: "dfs://db".into(),
            need: Some(Right::Write),
        }),
        Request::Session(SessionRequest::Run {
            script: "select * from loadTable(\"dfs://db\", `pt) where k > 1".into(),
        }),
        Request::Session(SessionRequest::Call {
            function: "tableInsert".into(),
            args: vec![Value::Table(table())],
        }),
        Request::Participant(ParticipantRequest::Prepare {
            tid: 9,
            ops: chunk_ops(),
            gives_way: true,
        }),
        Request::Participant(ParticipantRequest::Scan(Scan {
            chunks: vec![ChunkId {
                table: 5,
                partition: 0,
            }],
            columns: columns(),
            filter: Some(filter()),
            shape: ScanShape::Aggregate {
                group_by: Some("d".into()),
                aggs: vec![(AggFn::Count, None), (AggFn::Sum, Some("v".into()))],
            },
        })),
        Request::Replication(ReplicationRequest::Pull {
            token: "t".into(),
            slave: "127.0.0.1:9848".into(),
            after: 3,
            finished: vec![1, 2, 3],
            max: 1000,
            wait_ms: 1000,
            inline_room: 1 << 20,
        }),
        Request::Replication(ReplicationRequest::FetchTaskData {
            ticket: ticket(),
            task_id: 7,
            tid: 42,
            offset: 0,
        }),
    ]
}

/// What a client decodes an answer as: its request family's reply, or an error.
type ControllerAnswer = Result<ControllerReply, RemoteError>;
type SessionAnswer = Result<SessionReply, RemoteError>;
type ParticipantAnswer = Result<ParticipantReply, RemoteError>;
type ReplicationAnswer = Result<ReplicationReply, RemoteError>;

/// Every answer below, decoded as its own family's.
fn responses() -> Vec<Sample> {
    let mut out: Vec<Sample> = controller_answers().iter().map(sample).collect();
    out.extend(session_answers().iter().map(sample));
    out.extend(participant_answers().iter().map(sample));
    out.extend(replication_answers().iter().map(sample));
    out
}

fn replication_answers() -> Vec<ReplicationAnswer> {
    vec![
        Ok(ReplicationReply::LoggedIn {
            user: "admin".into(),
            is_admin: true,
            token: "admin.0011.deadbeef".into(),
            expires_ms: 1_800_000_000_000,
        }),
        Ok(ReplicationReply::Tasks {
            tasks: vec![task_info(), task_info()],
            data: vec![InlineData {
                task_id: 7,
                bytes: serde_bytes::ByteBuf::from(vec![0x92, 1, 2]),
            }],
            ticket: ticket(),
            bootstraps: vec![],
            position: xrepl_proto::rpc::MasterPosition {
                last_task: 9,
                next_submit_ns: 1,
            },
        }),
        Ok(ReplicationReply::Position(
            xrepl_proto::rpc::MasterPosition::default(),
        )),
        Ok(ReplicationReply::Ticket(ticket())),
        Ok(ReplicationReply::TaskData {
            total: 100,
            offset: 0,
            bytes: (0..100).collect(),
        }),
        Err(remote_error()),
    ]
}

fn session_answers() -> Vec<SessionAnswer> {
    vec![Ok(SessionReply::Ran {
        outputs: vec![value(), Value::Void],
        error: Some(remote_error()),
    })]
}

fn participant_answers() -> Vec<ParticipantAnswer> {
    vec![Ok(ParticipantReply::Scanned(ScanResult::Groups {
        keys: Some(Vector::Date(vec![1, 2])),
        partials: vec![vec![Partial {
            count: 2,
            sum_f: 1.5,
            sum_i: 1,
            min: Some(Scalar::Int(0)),
            max: None,
        }]],
    }))]
}

fn controller_answers() -> Vec<ControllerAnswer> {
    vec![
        Ok(ControllerReply::Session {
            user: "alice".into(),
            is_admin: false,
            renewed: Some("alice.2.99.1.000000000000000000000000.00".into()),
        }),
        Ok(ControllerReply::Database(Some(database()))),
        Ok(ControllerReply::Placement(
            [(0, "dnode1".to_string()), (7, "dnode2".to_string())].into(),
        )),
        Ok(ControllerReply::ReplayTask(Some(ReplayAssignment {
            tasks: vec![task_info(), task_info()],
            data: vec![],
            ticket: ticket(),
            started_ns: 5,
            nonce: serde_bytes::ByteBuf::from(vec![1u8; 16]),
        }))),
        Ok(ControllerReply::Decided {
            committed: false,
            reason: "aborted".into(),
            task_id: Some(7),
        }),
        Err(remote_error()),
    ]
}

/// Decodes `bytes` as `T`: an error must have text, and what decodes must encode again.
fn check<T: DeserializeOwned + Serialize>(bytes: &[u8]) {
    match decode::<T>(bytes) {
        Ok(v) => {
            encode(&v).expect("a decoded message encodes again");
        }
        Err(e) => assert_has_text(std::any::type_name::<T>(), e),
    }
}

/// A real encoding and the decoder it is meant for.
struct Sample {
    bytes: Vec<u8>,
    check: fn(&[u8]),
}

fn sample<T: Serialize + DeserializeOwned>(v: &T) -> Sample {
    Sample {
        bytes: encode(v).expect("encode"),
        check: check::<T>,
    }
}

fn samples() -> Vec<Sample> {
    let mut out = vec![
        sample(&Hello::new(PeerKind::Slave, 1 << 20)),
        sample(&Hello::member(1 << 20, vec![9; 32])),
        sample(&MemberProof {
            proof: serde_bytes::ByteBuf::from(vec![3; 32]),
        }),
        sample(&HelloReply {
            version: PROTOCOL_VERSION,
            outcome: Ok(ServerInfo {
                alias: "dnode1".into(),
                max_frame: 64 << 20,
                role: NodeRole::DataNode,
                replication: Some(ReplicationMode::Master),
                challenge: Some(serde_bytes::ByteBuf::from(vec![1; 32])),
                proof: Some(serde_bytes::ByteBuf::from(vec![2; 32])),
            }),
        }),
        sample(&HelloReply {
            version: PROTOCOL_VERSION,
            outcome: Err("not an xrepl client".into()),
        }),
        sample(&task_info()),
        sample(&task_meta()),
        sample(&database()),
        sample(&Catalog {
            dbs: [("dfs://db".to_string(), database())].into(),
            next_table_id: 6,
        }),
        sample(&value()),
    ];
    out.extend(requests().iter().map(sample));
    out.extend(responses());
    out.extend(task_data().iter().map(sample));
    out.extend(chunk_ops().iter().map(sample));
    out
}

/// Every decoder a process runs on bytes from another process, or from its own disk.
const DECODERS: &[fn(&[u8])] = &[
    check::<Hello>,
    check::<HelloReply>,
    check::<Request>,
    check::<ControllerAnswer>,
    check::<SessionAnswer>,
    check::<ParticipantAnswer>,
    check::<ReplicationAnswer>,
    check::<ControllerReply>,
    check::<SessionReply>,
    check::<ParticipantReply>,
    check::<ReplicationReply>,
    check::<TaskData>,
    check::<TaskInfo>,
    check::<TaskMeta>,
    check::<DatabaseMeta>,
    check::<Catalog>,
    check::<ChunkOp>,
    check::<Value>,
    check::<ReplayAssignment>,
    check_task_data,
];

/// The slave's decoder of fetched task data: its error names the task.
fn check_task_data(bytes: &[u8]) {
    if let Err(e) = decode_task_data(&task_info(), bytes) {
        let text = e.to_string();
        assert!(text.contains("task 7 (transaction 42)"), "{text}");
    }
}

#[test]
fn every_real_message_decodes_to_itself() {
    fn round<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(v: T) {
        let back: T = decode(&encode(&v).expect("encode")).expect("decode");
        assert_eq!(back, v);
    }
    requests().into_iter().for_each(round);
    controller_answers().into_iter().for_each(round);
    session_answers().into_iter().for_each(round);
    participant_answers().into_iter().for_each(round);
    replication_answers().into_iter().for_each(round);
    task_data().into_iter().for_each(round);
    chunk_ops().into_iter().for_each(round);
    round(value());
    round(database());
}

proptest! {
    #![proptest_config(cases(CASES))]

    #[test]
    fn any_bytes_are_decoded_or_refused_with_text_by_every_message_decoder(
        bytes in prop::collection::vec(any_byte(), 0..512),
    ) {
        for check in DECODERS {
            check(&bytes);
        }
    }

    #[test]
    fn mutated_real_messages_are_decoded_or_refused_with_text(
        which in any::<prop::sample::Index>(),
        muts in mutations(),
    ) {
        let all = samples();
        let s = which.get(&all);
        let bytes = mutate(s.bytes.clone(), &muts);
        (s.check)(&bytes);
        // The server decodes whatever arrives as a request, the client as its family's answer.
        check::<Request>(&bytes);
        check::<ControllerAnswer>(&bytes);
        check::<ReplicationAnswer>(&bytes);
        check_task_data(&bytes);
    }
}

/// Runs the test `name` of this file alone in a child process with `XREPL_HOSTILE_CHILD` set,
/// so that what it measures of the process is its own; true when it passed.
fn in_child_process(name: &str) -> bool {
    let status = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", name, "--test-threads=1", "--nocapture"])
        .env("XREPL_HOSTILE_CHILD", "1")
        .status()
        .expect("run the child");
    status.success()
}

/// Peak virtual memory of this process, in KiB (Linux).
fn vm_peak_kib() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmPeak:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The encoding of `v` with the first occurrence of `needle` replaced by `with`.
fn patched<T: Serialize>(v: &T, needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut b = encode(v).expect("encode");
    let at = b
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle in the encoding");
    b.splice(at..at + needle.len(), with.iter().copied());
    b
}

/// A decoder that must refuse its input: the error's text, `None` when it decoded.
type Refusal = fn(&[u8]) -> Option<String>;

#[test]
fn a_small_input_declaring_4_gib_is_refused_without_allocating_it() {
    if std::env::var_os("XREPL_HOSTILE_CHILD").is_none() {
        assert!(
            in_child_process("a_small_input_declaring_4_gib_is_refused_without_allocating_it"),
            "the child run failed (see its output above)"
        );
        return;
    }
    let script = Request::Session(SessionRequest::Run {
        script: "abc".into(),
    });
    let data: ReplicationAnswer = Ok(ReplicationReply::TaskData {
        total: 3,
        offset: 0,
        bytes: vec![1, 2, 3],
    });
    let tids: ControllerAnswer = Ok(ControllerReply::Tids(vec![1, 2, 3]));
    let rows = Value::Vector(Vector::Long(vec![1, 2, 3]));
    let names = Value::Vector(Vector::String(vec!["a".into(), "b".into(), "c".into()]));
    // A LONG column is one run of little-endian bytes (bin8 of 24).
    let longs: Vec<u8> = [1i64, 2, 3].iter().flat_map(|v| v.to_le_bytes()).collect();
    let placement: ControllerAnswer = Ok(ControllerReply::Placement([(1, "a".to_string())].into()));
    let four_gib = [0xff, 0xff, 0xff, 0xff];
    let cases: Vec<(&str, Vec<u8>, Refusal)> = vec![
        (
            "str32 script",
            patched(
                &script,
                b"\xa3abc",
                &[&[0xdb][..], &four_gib, b"abc"].concat(),
            ),
            |b| decode::<Request>(b).err().map(|e| e.to_string()),
        ),
        (
            "bin32 task data",
            patched(
                &data,
                &[0xc4, 3, 1, 2, 3],
                &[&[0xc6][..], &four_gib, &[1, 2, 3]].concat(),
            ),
            |b| decode::<ReplicationAnswer>(b).err().map(|e| e.to_string()),
        ),
        (
            "array32 of tids",
            patched(
                &tids,
                &[0x93, 1, 2, 3],
                &[&[0xdd][..], &four_gib, &[1, 2, 3]].concat(),
            ),
            |b| decode::<ControllerAnswer>(b).err().map(|e| e.to_string()),
        ),
        (
            "bin32 of a LONG vector",
            patched(
                &rows,
                &[&[0xc4, 24][..], &longs].concat(),
                &[&[0xc6][..], &four_gib, &longs].concat(),
            ),
            |b| decode::<Value>(b).err().map(|e| e.to_string()),
        ),
        (
            "array32 of a STRING vector",
            patched(
                &names,
                b"\x93\xa1a\xa1b\xa1c",
                &[&[0xdd][..], &four_gib, b"\xa1a\xa1b\xa1c"].concat(),
            ),
            |b| decode::<Value>(b).err().map(|e| e.to_string()),
        ),
        (
            "map32 placement",
            patched(
                &placement,
                &[0x81, 1],
                &[&[0xdf][..], &four_gib, &[1]].concat(),
            ),
            |b| decode::<ControllerAnswer>(b).err().map(|e| e.to_string()),
        ),
    ];
    // Warm up the allocator, so that what follows measures the decoder only.
    for (_, bytes, dec) in &cases {
        let _ = dec(bytes);
    }
    let before = vm_peak_kib();
    for (name, bytes, dec) in &cases {
        assert!(bytes.len() < 64, "{name}: not a small input");
        let e = dec(bytes).unwrap_or_else(|| panic!("{name}: decoded"));
        assert_has_text(name, &e);
    }
    if let (Some(before), Some(after)) = (before, vm_peak_kib()) {
        // serde reserves at most 1 MiB for a sequence whose length it has not seen yet.
        assert!(
            after - before < 16 * 1024,
            "decoding grew the peak memory by {} KiB",
            after - before
        );
    }
}

/// `depth` levels of `Value::Tuple`, encoded by hand (encoding a real one would recurse too).
fn nested_tuples(depth: usize) -> Vec<u8> {
    let mut b = Vec::new();
    for _ in 0..depth {
        b.extend_from_slice(b"\x81\xa5Tuple\x91");
    }
    b.extend_from_slice(b"\xa4Void");
    b
}

/// `depth` levels of `ColExpr::Binary`, encoded by hand.
fn nested_binary(depth: usize) -> Vec<u8> {
    let leaf = encode(&ColExpr::Column("a".into())).expect("encode");
    let op = encode(&BinOp::Add).expect("encode");
    let mut b = Vec::new();
    for _ in 0..depth {
        b.extend_from_slice(b"\x81\xa6Binary\x93");
        b.extend_from_slice(&op);
    }
    for _ in 0..depth {
        // The right operand of each level, after its left one: leaves close the levels.
        b.extend_from_slice(&leaf);
    }
    b.extend_from_slice(&leaf);
    b
}

/// Runs `f` on a thread with the 2 MiB stack of a controller's runtime thread.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("no panic")
}

/// `depth` levels of `ColExpr::Not`, encoded by hand: a newtype variant, which rmp-serde's
/// own depth limit does not count.
fn nested_not(depth: usize) -> Vec<u8> {
    let mut b = b"\x81\xa3Not".repeat(depth);
    b.extend_from_slice(&encode(&ColExpr::Column("a".into())).expect("encode"));
    b
}

/// A `Call` to the controller whose one argument is `arg` (encoded).
fn call_with(arg: &[u8]) -> Vec<u8> {
    let mut call = encode(&Request::Controller(ControllerRequest::Call {
        token: String::new(),
        function: "f".into(),
        args: vec![],
    }))
    .expect("encode");
    // The empty args array becomes an array of one.
    let at = call.len() - 1;
    assert_eq!(call[at], 0x90);
    call.splice(at.., [&[0x91][..], arg].concat());
    call
}

/// A participant's `Delete` whose filter is `filter` (encoded).
fn delete_where(filter: &[u8]) -> Vec<u8> {
    let mut op = chunk_ops().remove(0);
    op.action = ChunkAction::Delete { filter: None };
    let mut b = encode(&Request::Participant(ParticipantRequest::Prepare {
        tid: 1,
        ops: vec![op],
        gives_way: false,
    }))
    .expect("encode");
    // The filter comes last but for `gives_way` (false, 0xc2).
    let at = b.len() - 2;
    assert_eq!(b[at..], [0xc0, 0xc2]);
    b.splice(at..=at, filter.iter().copied());
    b
}

/// Task data from a master: a delete whose filter is `filter` (encoded).
fn task_delete_where(filter: &[u8]) -> Vec<u8> {
    let mut b = encode(&TaskData::SqlDelete {
        db: "dfs://db".into(),
        table: "pt".into(),
        filter: None,
    })
    .expect("encode");
    let at = b.len() - 1;
    assert_eq!(b[at], 0xc0);
    b.splice(at.., filter.iter().copied());
    b
}

/// Every decoder a deeply nested message can reach, on the 2 MiB stack of a controller's
/// runtime thread; the error of each (`None`: it decoded).
fn decode_nested(depth: usize) -> Vec<(String, Option<String>)> {
    on_small_stack(move || {
        let err = |r: Result<(), String>| r.err();
        let (tuples, binary, not) = (
            nested_tuples(depth),
            nested_binary(depth),
            nested_not(depth),
        );
        let mut out = vec![
            (
                "tuples",
                err(decode::<Value>(&tuples)
                    .map(drop)
                    .map_err(|e| e.to_string())),
            ),
            (
                "tuples in a call",
                err(decode::<Request>(&call_with(&tuples))
                    .map(drop)
                    .map_err(|e| e.to_string())),
            ),
            (
                "binary",
                err(decode::<ColExpr>(&binary)
                    .map(drop)
                    .map_err(|e| e.to_string())),
            ),
            (
                "not",
                err(decode::<ColExpr>(&not).map(drop).map_err(|e| e.to_string())),
            ),
        ];
        for (name, filter) in [("binary", &binary), ("not", &not)] {
            out.push((
                name,
                err(decode::<Request>(&delete_where(filter))
                    .map(drop)
                    .map_err(|e| e.to_string())),
            ));
            out.push((
                name,
                err(decode_task_data(&task_info(), &task_delete_where(filter))
                    .map(drop)
                    .map_err(|e| e.to_string())),
            ));
        }
        out.into_iter()
            .map(|(n, e)| (format!("{n} x {depth}"), e))
            .collect()
    })
}

#[test]
fn regression_deeply_nested_messages_overflowed_the_stack() {
    // rmp-serde's depth limit (1024) let ~500 nested tuples through, and does not count an
    // enum's newtype variant at all: 5,000 nested `not`s (30 KB) overflowed a 2 MiB stack. Any
    // peer that greets the controller or a data node could crash it before logging in.
    for depth in [700, 1_000, 5_000, 100_000] {
        for (what, e) in decode_nested(depth) {
            let e = e.unwrap_or_else(|| panic!("{what}: decoded"));
            assert!(e.contains("depth limit exceeded"), "{what}: {e}");
        }
    }
    // What scripts can build (the parser nests at most 256 levels) still decodes.
    for (what, e) in decode_nested(256) {
        assert_eq!(e, None, "{what}");
    }
}

// ----- config files ---------------------------------------------------------------------------

const MASTER_NODES: &str = include_str!("../../cfg/master/cluster.nodes");
const MASTER_CLUSTER: &str = include_str!("../../cfg/master/cluster.cfg");
const MASTER_CONTROLLER: &str = include_str!("../../cfg/master/controller.cfg");
const SLAVE_CLUSTER: &str = include_str!("../../cfg/slave/cluster.cfg");
const SLAVE_CONTROLLER: &str = include_str!("../../cfg/slave/controller.cfg");

/// Loads every config of a folder holding these three files the way the binaries do.
fn load_all(nodes: &[u8], cluster: &[u8], controller: &[u8]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(d.join(config::CLUSTER_NODES), nodes).expect("write");
    std::fs::write(d.join(config::CLUSTER_CFG), cluster).expect("write");
    std::fs::write(d.join(config::CONTROLLER_CFG), controller).expect("write");
    let ok_or_text = |what: &str, r: Result<(), config::ConfigError>| {
        if let Err(e) = r {
            assert!(!e.message.trim().is_empty(), "{what}: {e:?}");
            assert_has_text(what, e);
        }
    };
    ok_or_text(
        "cluster.nodes",
        config::load_cluster_nodes(&d.join(config::CLUSTER_NODES)).map(drop),
    );
    ok_or_text("controller", config::load_controller(d).map(drop));
    for alias in ["dnode1", "dnode2", "", "controller1"] {
        ok_or_text("data node", config::load_datanode(d, alias).map(drop));
    }
}

/// Config lines made of real keys and values, near-misses and nonsense.
fn config_text() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "localSite",
        "mode",
        "home",
        "maxFrameSize",
        "heartbeatIntervalMs",
        "heartbeatTimeoutMs",
        "transactionTimeoutMs",
        "partitionLockTimeoutMs",
        "logLevel",
        "clusterReplicationMode",
        "clusterReplicationMasterCtl",
        "clusterReplicationSlaveNum",
        "clusterReplicationQueue",
        "clusterReplicationWorkerNum",
        "clusterReplicationSyncPersistence",
        "clusterReplicationPullWaitMs",
        "clusterReplicationRetryLimit",
        "clusterReplicationMasterPassword",
        "dnode1.clusterReplicationWorkerNum",
        "dnode9.home",
        "dnode1.",
        ".x",
        "",
        "# comment",
        "localSite,mode",
    ]);
    let value = prop::sample::select(vec![
        "127.0.0.1:8848:controller1",
        "127.0.0.1:8849:dnode1,datanode",
        "127.0.0.1:8850:dnode2,datanode",
        "127.0.0.1:8848:controller1,controller",
        "127.0.0.1:0:x",
        ":::",
        "host:99999:a",
        "master",
        "slave",
        "true",
        "yes",
        "0",
        "-1",
        "18446744073709551616",
        "18446744073709551615",
        "65536",
        "1073741824",
        "1073741825",
        "é",
        "",
        "=",
        "\u{0}",
        "/tmp/x",
    ]);
    let line = prop_oneof![
        4 => (key, prop::sample::select(vec!["=", " = ", "==", ""]), value.clone())
            .prop_map(|(k, eq, v)| format!("{k}{eq}{v}")),
        1 => value.prop_map(str::to_string),
        1 => any::<String>(),
    ];
    prop::collection::vec(line, 0..12).prop_map(|lines| lines.join("\n"))
}

fn text_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        config_text().prop_map(String::into_bytes),
        any::<String>().prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..256),
    ]
}

proptest! {
    #![proptest_config(cases(CASES))]

    #[test]
    fn any_cluster_nodes_text_is_loaded_or_a_config_error(nodes in text_bytes()) {
        load_all(&nodes, MASTER_CLUSTER.as_bytes(), MASTER_CONTROLLER.as_bytes());
    }

    #[test]
    fn any_cluster_cfg_and_controller_cfg_text_is_loaded_or_a_config_error(
        cluster in text_bytes(),
        controller in text_bytes(),
    ) {
        load_all(MASTER_NODES.as_bytes(), &cluster, &controller);
    }

    #[test]
    fn mutated_shipped_config_files_are_loaded_or_a_config_error(
        which in 0usize..3,
        slave in any::<bool>(),
        muts in mutations(),
    ) {
        let (cluster, controller) = if slave {
            (SLAVE_CLUSTER, SLAVE_CONTROLLER)
        } else {
            (MASTER_CLUSTER, MASTER_CONTROLLER)
        };
        let mut files = [
            MASTER_NODES.as_bytes().to_vec(),
            cluster.as_bytes().to_vec(),
            controller.as_bytes().to_vec(),
        ];
        files[which] = mutate(files[which].clone(), &muts);
        load_all(&files[0], &files[1], &files[2]);
    }
}

// ----- scripts --------------------------------------------------------------------------------

const SCRIPTS: &[&str] = &[
    include_str!("../../tests/scripts/all_operations.dos"),
    include_str!("../../tests/scripts/tutorial_master.dos"),
    include_str!("../../tests/scripts/golden/builtins.dos"),
    include_str!("../../tests/scripts/golden/errors.dos"),
    include_str!("../../tests/scripts/golden/sql.dos"),
];

/// The scripts above, and the code blocks of the seed documents beside the repository
/// (`../shared/seeds/*.md`) when they are there.
fn corpus() -> &'static [String] {
    static CORPUS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    CORPUS.get_or_init(|| {
        let mut out: Vec<String> = SCRIPTS.iter().map(|s| s.to_string()).collect();
        let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/seeds");
        for entry in std::fs::read_dir(seeds).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let mut block: Option<String> = None;
            for line in text.lines() {
                if line.trim_start().starts_with("```") {
                    match block.take() {
                        Some(b) => out.push(b),
                        None => block = Some(String::new()),
                    }
                } else if let Some(b) = block.as_mut() {
                    b.push_str(line);
                    b.push('\n');
                }
            }
        }
        out
    })
}

fn parse_or_text(src: &str) {
    if let Err(e) = lang::parse(src) {
        assert!(!e.message.trim().is_empty(), "{e:?}");
        assert_has_text("parse", e);
    }
    if let Err(e) = lang::lexer::tokenize(src) {
        assert_has_text("tokenize", e);
    }
}

/// Scripts made of the language's tokens in any order: deeper into the parser than random text.
fn token_soup() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        ",",
        ";",
        "\n",
        ".",
        "..",
        ":",
        "=",
        "==",
        "!=",
        "<>",
        "<",
        "<=",
        ">",
        ">=",
        "+",
        "-",
        "*",
        "/",
        "%",
        "&&",
        "||",
        "!",
        "and",
        "or",
        "not",
        "if",
        "else",
        "true",
        "false",
        "NULL",
        "select",
        "from",
        "where",
        "group",
        "by",
        "order",
        "asc",
        "desc",
        "limit",
        "as",
        "update",
        "set",
        "delete",
        "insert",
        "into",
        "values",
        "in",
        "between",
        "AND",
        "x",
        "t",
        "f",
        "append!",
        "1",
        "-1",
        "1.5",
        "0..9",
        "2023.01.01",
        "2023.01.01T09:30:00",
        "2023.01.01T09:30:00.000",
        "2023.13.45",
        "99999999999999999999",
        "1e308",
        "\"s\"",
        "\"",
        "'",
        "`a",
        "`a`b",
        "`",
        "//",
        "/*",
        "*/",
        " ",
        "count(*)",
        "loadTable(\"dfs://db\", \"t\")",
    ]);
    prop::collection::vec(token, 0..40).prop_map(|t| t.join(" "))
}

proptest! {
    #![proptest_config(cases(CASES))]

    #[test]
    fn any_text_is_parsed_or_refused_with_a_syntax_error(src in any::<String>()) {
        parse_or_text(&src);
    }

    #[test]
    fn any_sequence_of_tokens_is_parsed_or_refused_with_a_syntax_error(src in token_soup()) {
        parse_or_text(&src);
    }

    #[test]
    fn mutated_real_scripts_are_parsed_or_refused_with_a_syntax_error(
        which in any::<prop::sample::Index>(),
        muts in mutations(),
    ) {
        let src = which.get(corpus());
        let bytes = mutate(src.clone().into_bytes(), &muts);
        parse_or_text(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn every_script_of_the_corpus_but_the_one_of_errors_parses() {
    assert!(corpus().len() >= SCRIPTS.len());
    for s in SCRIPTS
        .iter()
        .filter(|s| !s.contains("Each error is one line"))
    {
        lang::parse(s).unwrap_or_else(|e| panic!("{e}\n{s}"));
    }
}

#[test]
fn deep_nesting_of_every_kind_is_a_syntax_error_not_a_stack_overflow() {
    let n = 100_000;
    let deep: Vec<(String, String)> = [
        ("(", ""),
        ("[", ""),
        ("(", ")"),
        ("[", "]"),
        ("f(", ")"),
        ("x[", "]"),
        ("-", ""),
        ("!", ""),
        ("not ", ""),
        ("if (1) ", ""),
        ("if (1) {", "}"),
        ("select * from (", ")"),
        ("select (", ") from t"),
        ("x in (", ")"),
        ("1 + ", ""),
        ("1 : ", ""),
        ("a.b(", ")"),
        ("[1, ", "]"),
    ]
    .iter()
    .map(|(open, close)| {
        (
            open.to_string(),
            format!("{}1{}", open.repeat(n), close.repeat(n)),
        )
    })
    .collect();
    // On the 2 MiB stack of a plain thread, less than a session thread has.
    let results = on_small_stack(move || {
        deep.into_iter()
            .map(|(open, src)| (open, lang::parse(&src).err()))
            .collect::<Vec<_>>()
    });
    for (open, e) in results {
        let e = e.unwrap_or_else(|| panic!("{n} x '{open}' parsed"));
        assert!(e.message.contains("nested too deeply"), "'{open}': {e}");
    }
    // Long but flat is fine.
    let flat = "x = 1\n".repeat(n);
    assert_eq!(lang::parse(&flat).map(|s| s.len()), Ok(n));
}

fn ticket() -> xrepl_proto::ticket::FetchTicket {
    let key = xrepl_core::cluster_key::ClusterKey::from_bytes(&[3; 32]).expect("key");
    xrepl_proto::ticket::FetchTicket::issue(
        &key,
        "127.0.0.1:9848",
        7,
        vec!["127.0.0.1:8849".into()],
        1_000,
    )
}
