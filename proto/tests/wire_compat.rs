//! The wire did not change when each request family got its own reply type (protocol version
//! 5): every reply encodes to the same bytes as the one shared `Reply` enum of before, and
//! decodes from them. (Version 6 then replaced `Tid` by `TidRange`; every other reply is as
//! it was; version 8 made a replay assignment a batch of tasks, in both, and version 11 added
//! small tasks' data to pulled tasks and replay assignments; version 14 gave `LoggedIn` the
//! token's expiry, so it is no longer compared; version 16 added the master's bootstraps to
//! pull answers, version 17 the master's position.)

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use xrepl_core::catalog::DatabaseMeta;
use xrepl_core::value::{Scalar, Table, Value, Vector};
use xrepl_proto::rpc::{
    decode, encode, ControllerReply, ErrorCode, ParticipantReply, RemoteError, ReplicationReply,
    Response, SessionReply,
};
use xrepl_proto::task::{BootstrapProgress, InlineData, OperationType, ReplayAssignment, TaskInfo};
use xrepl_proto::ticket::FetchTicket;
use xrepl_proto::txn::{ChunkSum, ScanResult, TableSums, TxState};

/// The one reply enum of protocol version 5 before the families had their own (commit bf4122b).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum LegacyReply {
    Done,
    /// The controller's answer to a registration: how often to send heartbeats is the node's
    /// own setting; the controller only tells who it is.
    Registered {
        controller: String,
    },
    LoggedIn {
        user: String,
        is_admin: bool,
        token: String,
    },
    Value(Value),
    Tid(u64),
    Decided {
        committed: bool,
        reason: String,
        task_id: Option<u64>,
    },
    /// A task for a slave data node to replay (`None`: none within the wait).
    ReplayTask(Option<ReplayAssignment>),
    Outcome(TxState),
    Database(Option<DatabaseMeta>),
    Placement(BTreeMap<u32, String>),
    /// Rows a prepared transaction touches on this participant.
    Prepared {
        rows: u64,
    },
    Scanned(ScanResult),
    /// Tasks for a slave, in task id order.
    Tasks {
        tasks: Vec<TaskInfo>,
        data: Vec<InlineData>,
        ticket: FetchTicket,
        bootstraps: Vec<BootstrapProgress>,
        position: xrepl_proto::rpc::MasterPosition,
    },
    /// A piece of a task's data: `bytes` from `offset` of `total` (rmp-encoded `TaskData`).
    TaskData {
        total: u64,
        offset: u64,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    Tids(Vec<u64>),
    /// Where a slave reaches its master: the master controller's `host:port` and a master
    /// administrator's token.
    MasterAccess {
        master: String,
        ticket: FetchTicket,
    },
    Sites(Vec<String>),
    Ticket(FetchTicket),
    /// Per table of a database: its schema's hash and its chunks' row counts and checksums.
    Checksums(Vec<TableSums>),
    /// What a script printed: one value per statement that shows one (not assignments), and
    /// the error that stopped it, if any. Statements before the error did run.
    Ran {
        outputs: Vec<Value>,
        error: Option<RemoteError>,
    },
}
fn task() -> TaskInfo {
    TaskInfo {
        task_id: 7,
        tid: 9,
        group_id: 3,
        op: OperationType::Append,
        submit_ns: 1_700_000_000_000_000_000,
        db: "dfs://db".into(),
        table: "t".into(),
        src_host: "127.0.0.1".into(),
        src_port: 8849,
        execution_set: 1,
        data_bytes: 250,
        for_slave: None,
    }
}

fn error() -> RemoteError {
    RemoteError {
        node: "dnode1".into(),
        code: ErrorCode::AlreadyApplied,
        message: "task 7 was applied already".into(),
    }
}

/// Both encodings of one answer, and the new one decodes from the old bytes.
fn same<R>(new: Result<R, RemoteError>, old: Result<LegacyReply, RemoteError>)
where
    R: Serialize + for<'a> Deserialize<'a> + PartialEq + std::fmt::Debug,
{
    let new_bytes = encode(&new).expect("encode");
    let old_bytes = encode(&old).expect("encode");
    assert_eq!(
        new_bytes, old_bytes,
        "{new:?} encodes differently from {old:?}"
    );
    let back: Result<R, RemoteError> = decode(&old_bytes).expect("decode");
    assert_eq!(back, new);
}

#[test]
fn every_family_reply_encodes_as_the_shared_reply_did() {
    let logged_in = |is_admin| LegacyReply::LoggedIn {
        user: "admin".into(),
        is_admin,
        token: "admin.n.mac".into(),
    };
    let value =
        Value::Table(Table::new(vec!["x".into()], vec![Vector::Int(vec![1, 2])]).expect("table"));
    // Controller
    same(Ok(ControllerReply::Done), Ok(LegacyReply::Done));
    same(
        Ok(ControllerReply::Registered {
            controller: "c".into(),
        }),
        Ok(LegacyReply::Registered {
            controller: "c".into(),
        }),
    );
    same(
        Ok(ControllerReply::Value(value.clone())),
        Ok(LegacyReply::Value(value.clone())),
    );
    same(
        Ok(ControllerReply::Decided {
            committed: false,
            reason: "r".into(),
            task_id: Some(3),
        }),
        Ok(LegacyReply::Decided {
            committed: false,
            reason: "r".into(),
            task_id: Some(3),
        }),
    );
    let assignment = ReplayAssignment {
        tasks: vec![task(), task()],
        data: vec![InlineData {
            task_id: 1,
            bytes: serde_bytes::ByteBuf::from(vec![1, 2]),
        }],
        ticket: ticket(),
        started_ns: 5,
        nonce: serde_bytes::ByteBuf::from(vec![1u8; 16]),
    };
    same(
        Ok(ControllerReply::ReplayTask(Some(assignment.clone()))),
        Ok(LegacyReply::ReplayTask(Some(assignment))),
    );
    same(
        Ok(ControllerReply::ReplayTask(None)),
        Ok(LegacyReply::ReplayTask(None)),
    );
    same(
        Ok(ControllerReply::Outcome(TxState::Aborted("no".into()))),
        Ok(LegacyReply::Outcome(TxState::Aborted("no".into()))),
    );
    same(
        Ok(ControllerReply::Database(None)),
        Ok(LegacyReply::Database(None)),
    );
    let placement: BTreeMap<u32, String> = [(1, "dnode1".to_string())].into();
    same(
        Ok(ControllerReply::Placement(placement.clone())),
        Ok(LegacyReply::Placement(placement)),
    );
    same(
        Ok(ControllerReply::Tids(vec![1, 2])),
        Ok(LegacyReply::Tids(vec![1, 2])),
    );
    same(
        Ok(ControllerReply::MasterAccess {
            master: "m".into(),
            ticket: ticket(),
        }),
        Ok(LegacyReply::MasterAccess {
            master: "m".into(),
            ticket: ticket(),
        }),
    );
    same::<ControllerReply>(Err(error()), Err(error()));
    // Session
    same(Ok(SessionReply::Done), Ok(LegacyReply::Done));
    same(
        Ok(SessionReply::LoggedIn {
            user: "admin".into(),
            is_admin: false,
            token: "admin.n.mac".into(),
        }),
        Ok(logged_in(false)),
    );
    same(
        Ok(SessionReply::Value(Value::Scalar(Scalar::Int(1)))),
        Ok(LegacyReply::Value(Value::Scalar(Scalar::Int(1)))),
    );
    same(
        Ok(SessionReply::Ran {
            outputs: vec![value.clone()],
            error: Some(error()),
        }),
        Ok(LegacyReply::Ran {
            outputs: vec![value],
            error: Some(error()),
        }),
    );
    // Participant
    same(Ok(ParticipantReply::Done), Ok(LegacyReply::Done));
    same(
        Ok(ParticipantReply::Prepared { rows: 10 }),
        Ok(LegacyReply::Prepared { rows: 10 }),
    );
    let sums = ScanResult::Checksums(vec![ChunkSum {
        partition: 1,
        rows: 2,
        checksum: 3,
    }]);
    same(
        Ok(ParticipantReply::Scanned(sums.clone())),
        Ok(LegacyReply::Scanned(sums)),
    );
    // Replication
    same(Ok(ReplicationReply::Done), Ok(LegacyReply::Done));
    same(
        Ok(ReplicationReply::Tasks {
            tasks: vec![task()],
            data: vec![],
            ticket: ticket(),
            bootstraps: vec![],
            position: Default::default(),
        }),
        Ok(LegacyReply::Tasks {
            tasks: vec![task()],
            data: vec![],
            ticket: ticket(),
            bootstraps: vec![],
            position: Default::default(),
        }),
    );
    same(
        Ok(ReplicationReply::TaskData {
            total: 9,
            offset: 0,
            bytes: vec![1, 2, 3],
        }),
        Ok(LegacyReply::TaskData {
            total: 9,
            offset: 0,
            bytes: vec![1, 2, 3],
        }),
    );
    same(
        Ok(ReplicationReply::Sites(vec!["127.0.0.1:8849".into()])),
        Ok(LegacyReply::Sites(vec!["127.0.0.1:8849".into()])),
    );
    let table_sums = vec![TableSums {
        table: "t".into(),
        schema: 1,
        chunks: vec![],
    }];
    same(
        Ok(ReplicationReply::Checksums(table_sums.clone())),
        Ok(LegacyReply::Checksums(table_sums)),
    );
}

/// A server's [`Response`] envelope is its family's `Result` alone on the wire.
#[test]
fn the_response_envelope_adds_nothing_on_the_wire() {
    let r: Result<ControllerReply, RemoteError> = Ok(ControllerReply::Tids(vec![3]));
    assert_eq!(
        encode(&Response::from(r.clone())).expect("encode"),
        encode(&r).expect("encode")
    );
    let e: Result<SessionReply, RemoteError> = Err(error());
    assert_eq!(
        encode(&Response::from(e.clone())).expect("encode"),
        encode(&e).expect("encode")
    );
}

fn ticket() -> FetchTicket {
    let key = xrepl_core::cluster_key::ClusterKey::from_bytes(&[3; 32]).expect("key");
    FetchTicket::issue(
        &key,
        "127.0.0.1:9848",
        7,
        vec!["127.0.0.1:8849".into()],
        1_000,
    )
}
