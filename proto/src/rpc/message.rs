//! The messages of the xrepl protocol. Closed enums: a request that nobody handles is a
//! compile error in the server's exhaustive `match`, not a surprise at run time.

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::task::{ReplayAssignment, ReplayOf, TaskInfo, TaskMeta};
use crate::txn::{ChunkOp, Scan, ScanResult, TableSums, TxState};
use xrepl_core::catalog::{CatalogChange, DatabaseMeta, Right};
use xrepl_core::config::{NodeRole, ReplicationMode};
use xrepl_core::value::Value;

/// Bumped whenever a message changes shape. Checked in the greeting.
pub const PROTOCOL_VERSION: u32 = 5;
/// First field of every greeting, so that a stray client is told apart from an old one.
pub const MAGIC: &str = "xrepl";

/// Who is connecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerKind {
    /// The `xrepl` console or another client running sessions.
    Client,
    /// A data node of the same cluster, talking to its controller.
    DataNode,
    /// A slave cluster's controller or data node, pulling tasks and task data from a master.
    /// It may send [`ReplicationRequest`]s only.
    Slave,
}

/// The client's greeting: the first frame on every connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub magic: String,
    pub version: u32,
    pub peer: PeerKind,
    /// The largest frame the client accepts; the server sends no larger ones.
    pub max_frame: u64,
}

impl Hello {
    pub fn new(peer: PeerKind, max_frame: usize) -> Hello {
        Hello {
            magic: MAGIC.to_string(),
            version: PROTOCOL_VERSION,
            peer,
            max_frame: max_frame as u64,
        }
    }
}

/// Smallest frame limit either side may announce; smaller announcements are raised to it.
pub const MIN_FRAME: usize = 4096;

/// The frame size to send with: the smaller of our limit and the peer's.
pub fn send_limit(own: usize, peer: u64) -> usize {
    let peer = usize::try_from(peer).unwrap_or(usize::MAX).max(MIN_FRAME);
    own.min(peer)
}

/// What the server tells about itself when it accepts a greeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    pub alias: String,
    /// The largest frame the server accepts; the client sends no larger ones.
    pub max_frame: u64,
    pub role: NodeRole,
    pub replication: Option<ReplicationMode>,
}

/// The server's answer to the greeting; a refusal is followed by closing the connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloReply {
    pub version: u32,
    pub outcome: Result<ServerInfo, String>,
}

/// Every request, by the family of server that answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    Controller(ControllerRequest),
    Session(SessionRequest),
    Participant(ParticipantRequest),
    Replication(ReplicationRequest),
}

/// Requests a controller answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ControllerRequest {
    /// A data node announces itself at start (and again after the controller restarts).
    Register { alias: String, site: String },
    /// A data node is alive.
    Heartbeat { alias: String },
    /// Checks a user's password; answers a [`Reply::LoggedIn`] with a token for later calls.
    Login { user: String, password: String },
    /// Runs a controller function for the user behind `token` (`rpc(getControllerAlias(), ...)`).
    Call {
        token: String,
        function: String,
        args: Vec<Value>,
    },
    /// Starts a transaction for the user behind `token`: answers [`Reply::Tid`].
    BeginTx { token: String, coordinator: String },
    /// Records a transaction's outcome with its catalog changes: answers [`Reply::Decided`].
    Decide {
        token: String,
        tid: u64,
        commit: bool,
        reason: String,
        changes: Vec<CatalogChange>,
        /// The task a commit makes when its database is replicated (`None`: not a database
        /// operation). Answered with the task's id, if one was made.
        task: Option<TaskMeta>,
        /// On a slave: the replicated task this transaction replays. The controller records
        /// the task FINISHED in the same durable step as the commit, and refuses (aborts) a
        /// replay of a task that is finished already, answering [`ErrorCode::AlreadyApplied`].
        replay: Option<ReplayOf>,
    },
    /// A participant asks what became of a transaction it prepared: answers [`Reply::Outcome`].
    /// A transaction undecided past the timeout is aborted by this question.
    TxOutcome { tid: u64 },
    /// A database's metadata, if the user holds `need` on it (`None`: any logged-in user).
    /// Answers [`Reply::Database`] (`None` when it does not exist).
    GetDatabase {
        token: String,
        db: String,
        need: Option<Right>,
    },
    /// Places the chunks of `partitions` that have no node yet on live data nodes; answers
    /// [`Reply::Placement`] for all of them. Needs DB_WRITE.
    PlaceChunks {
        token: String,
        db: String,
        table: String,
        partitions: Vec<u32>,
    },
    /// Every database's replication flag and execution set, for an administrator: answers
    /// [`Reply::Value`] with the table of `getDatabaseClusterReplicationStatus()`.
    ReplicationFlags { token: String },
    /// A master data node checks a slave's token: answers [`Reply::LoggedIn`].
    CheckToken { token: String },
    /// A master data node asks which of the transactions whose task data it holds need it no
    /// more (truncated tasks, transactions without a task): answers [`Reply::Tids`].
    SweepTaskData { tids: Vec<u64> },
    /// A slave data node's replay worker asks for a task to replay, waiting up to `wait_ms`:
    /// answers [`Reply::ReplayTask`].
    TakeReplayTask {
        token: String,
        node: String,
        wait_ms: u32,
    },
    /// A slave data node says which tasks its workers are replaying (every second); a task
    /// handed to it that it does not name is taken back (the hand-out was lost): answers
    /// [`Reply::Done`].
    ReplayRunning {
        token: String,
        node: String,
        tasks: Vec<u64>,
    },
    /// A slave data node's replay worker reports an attempt that did not commit (`failure`)
    /// or that ended (`None`: committed, or found applied already): answers [`Reply::Done`].
    ReplayDone {
        token: String,
        node: String,
        task_id: u64,
        failure: Option<String>,
        /// The failure is transient (a node of either cluster could not be reached): it is
        /// retried without counting towards `clusterReplicationRetryLimit`.
        transient: bool,
    },
    /// A slave data node asks, for an administrator's session (`token`), how to reach the
    /// master: answers [`Reply::MasterAccess`] (`Unavailable` while the slave is not logged in
    /// to the master).
    MasterAccess { token: String },
}

/// Requests a slave cluster sends to the master cluster. Each carries a token from `Login` on
/// the master controller; only a master administrator's token is accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ReplicationRequest {
    /// Answers [`Reply::LoggedIn`] (master controller).
    Login { user: String, password: String },
    /// Registers slave cluster `slave` (its controller's `host:port`), or confirms it is
    /// registered; refused beyond `clusterReplicationSlaveNum` (master controller).
    Register { token: String, slave: String },
    /// Reports the tasks `slave` has finished and asks for up to `max` tasks after `after`,
    /// waiting up to `wait_ms` when there are none: answers [`Reply::Tasks`] (master
    /// controller).
    Pull {
        token: String,
        slave: String,
        after: u64,
        finished: Vec<u64>,
        max: u32,
        wait_ms: u32,
    },
    /// A piece of a task's data from `offset`: answers [`Reply::TaskData`] (the master data
    /// node named in the task).
    FetchTaskData {
        token: String,
        task_id: u64,
        tid: u64,
        offset: u64,
    },
    /// The sites of the master's live data nodes: answers [`Reply::Sites`] (master controller).
    DataNodes { token: String },
    /// Row counts and checksums of every chunk of database `db` (of its table `table` only,
    /// if given) across the master cluster: answers [`Reply::Checksums`] (any master data
    /// node).
    Checksums {
        token: String,
        db: String,
        table: Option<String>,
    },
}

/// Requests a data node answers for another data node coordinating a transaction or a read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ParticipantRequest {
    /// Locks the chunks, computes and stores the new blocks durably, answers
    /// [`Reply::Prepared`]; nothing is visible until `Commit`.
    Prepare {
        tid: u64,
        ops: Vec<ChunkOp>,
    },
    Commit {
        tid: u64,
    },
    Abort {
        tid: u64,
    },
    /// Reads committed data; answers [`Reply::Scanned`].
    Scan(Scan),
}

/// Requests a data node answers for a client session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SessionRequest {
    Login {
        user: String,
        password: String,
    },
    Logout,
    /// Runs a script: one or more statements.
    Run {
        script: String,
    },
    /// Calls one function with values, without script text (the Rust client API).
    Call {
        function: String,
        args: Vec<Value>,
    },
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reply {
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
    Tasks(Vec<TaskInfo>),
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
        token: String,
    },
    Sites(Vec<String>),
    /// Per table of a database: its schema's hash and its chunks' row counts and checksums.
    Checksums(Vec<TableSums>),
    /// What a script printed: one value per statement that shows one (not assignments), and
    /// the error that stopped it, if any. Statements before the error did run.
    Ran {
        outputs: Vec<Value>,
        error: Option<RemoteError>,
    },
}

/// What kind of failure, so that a client can react without parsing the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    NotLoggedIn,
    AccessDenied,
    BadRequest,
    Syntax,
    NotFound,
    Runtime,
    Unavailable,
    Internal,
    /// A slave's replay of a task that is finished already: it was rolled back.
    AlreadyApplied,
}

/// An error as the user sees it: one line, starting with the node that raised it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{node}: {message}")]
pub struct RemoteError {
    pub node: String,
    pub code: ErrorCode,
    pub message: String,
}

pub type Response = Result<Reply, RemoteError>;

/// Encodes a message body.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    rmp_serde::to_vec(msg)
}

/// The deepest nesting of arrays and maps [`decode`] accepts. A nested tuple or operator takes
/// two levels (an enum variant is a map), so what a script can build (the parser nests at most
/// 256) fits; and decoding the deepest message takes well under the 2 MiB stack of a
/// controller's runtime thread, even in a debug build.
pub const MAX_DECODE_DEPTH: usize = 600;

/// Decodes a message body; any malformed input is an error, never a panic.
///
/// The body's shape is checked first (`check_shape`): the decoder recurses once per level
/// and reserves room for a sequence by its declared length, so neither is left to the sender.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, rmp_serde::decode::Error> {
    check_shape(bytes)?;
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    de.set_max_depth(MAX_DECODE_DEPTH);
    T::deserialize(&mut de)
}

/// Walks the first MessagePack value of `bytes` without recursion, and refuses it when it nests
/// deeper than [`MAX_DECODE_DEPTH`] or declares more elements or bytes than follow.
///
/// rmp-serde counts arrays and plain maps against its depth limit but not the map of an enum
/// variant, so a chain of `ColExpr::Not` recursed without bound and overflowed the stack of
/// whoever decoded it (any peer could send one before logging in). And a declared length is
/// only believed here once the elements are there, so what serde reserves for a sequence is
/// bounded by the size of the message, not by a length a peer wrote.
fn check_shape(bytes: &[u8]) -> Result<(), rmp_serde::decode::Error> {
    use rmp_serde::decode::Error;
    let mut pos = 0usize;
    // Elements still to come in each open array or map (a map entry counts twice), innermost
    // last, and their sum: each of them takes at least one of the bytes left.
    let mut open: Vec<u64> = Vec::new();
    let mut pending: u64 = 0;
    loop {
        let at = pos;
        let left = |pos: usize| (bytes.len() - pos) as u64;
        let short = || {
            Error::Syntax(format!(
                "the message ends inside the value at byte {at} of {}",
                bytes.len()
            ))
        };
        let mut int = |n: usize| -> Result<u64, Error> {
            let b = bytes.get(pos..pos + n).ok_or_else(short)?;
            pos += n;
            Ok(b.iter().fold(0u64, |v, &x| v << 8 | u64::from(x)))
        };
        let marker = int(1)?;
        // (bytes of data after the header, elements after the header)
        let (data, elements) = match marker {
            0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => (0, 0),
            0x80..=0x8f => (0, 2 * (marker & 0x0f)),
            0x90..=0x9f => (0, marker & 0x0f),
            0xa0..=0xbf => (marker & 0x1f, 0),
            0xc4 | 0xd9 => (int(1)?, 0),
            0xc5 | 0xda => (int(2)?, 0),
            0xc6 | 0xdb => (int(4)?, 0),
            // ext 8/16/32: the length, then a type byte and the data
            0xc7 => (int(1)? + 1, 0),
            0xc8 => (int(2)? + 1, 0),
            0xc9 => (int(4)? + 1, 0),
            0xca | 0xce | 0xd2 => (4, 0),
            0xcb | 0xcf | 0xd3 => (8, 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            // fixext 1/2/4/8/16: a type byte and the data
            0xd4 => (2, 0),
            0xd5 => (3, 0),
            0xd6 => (5, 0),
            0xd7 => (9, 0),
            0xd8 => (17, 0),
            0xdc => (0, int(2)?),
            0xdd => (0, int(4)?),
            0xde => (0, 2 * int(2)?),
            0xdf => (0, 2 * int(4)?),
            _ => {
                return Err(Error::Syntax(format!(
                    "byte {at} is {marker:#04x}, which starts no MessagePack value"
                )))
            }
        };
        if data > left(pos) {
            return Err(Error::Syntax(format!(
                "the value at byte {at} declares {data} bytes, but only {} follow",
                left(pos)
            )));
        }
        pos += data as usize;
        if let Some(top) = open.last_mut() {
            *top -= 1;
            pending -= 1;
        }
        if elements > 0 {
            if open.len() >= MAX_DECODE_DEPTH {
                return Err(Error::DepthLimitExceeded);
            }
            pending += elements;
            if pending > left(pos) {
                return Err(Error::Syntax(format!(
                    "the value at byte {at} declares {elements} elements, but only {} bytes follow",
                    left(pos)
                )));
            }
            open.push(elements);
        }
        while open.last() == Some(&0) {
            open.pop();
        }
        if open.is_empty() {
            return Ok(());
        }
    }
}
