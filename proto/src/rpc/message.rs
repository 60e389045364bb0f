//! The messages of the xrepl protocol. Closed enums: a request that nobody handles is a
//! compile error in the server's exhaustive `match`, not a surprise at run time.

use serde::{Deserialize, Serialize};

use serde::de::DeserializeOwned;
use xrepl_core::config::{NodeRole, ReplicationMode};

use super::controller::{ControllerReply, ControllerRequest};
use super::error::RemoteError;
use super::participant::{ParticipantReply, ParticipantRequest};
use super::replication::{ReplicationReply, ReplicationRequest};
use super::session::{SessionReply, SessionRequest};

/// Bumped whenever a message changes shape. Checked in the greeting.
pub const PROTOCOL_VERSION: u32 = 17;
/// First field of every greeting, so that a stray client is told apart from an old one.
pub const MAGIC: &str = "xrepl";

/// Who is connecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerKind {
    /// The `xrepl` console or another client running sessions.
    Client,
    /// A data node of the same cluster, talking to its controller or to another data node. It
    /// must prove that it holds the cluster key (see [`Hello::challenge`]).
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
    /// A member of the cluster (`PeerKind::DataNode`): a fresh random challenge. The server
    /// answers it with its proof of the cluster key ([`ServerInfo::proof`]) and its own
    /// challenge, which the client answers with a [`MemberProof`] before any request.
    pub challenge: Option<serde_bytes::ByteBuf>,
}

impl Hello {
    pub fn new(peer: PeerKind, max_frame: usize) -> Hello {
        Hello {
            magic: MAGIC.to_string(),
            version: PROTOCOL_VERSION,
            peer,
            max_frame: max_frame as u64,
            challenge: None,
        }
    }

    /// A member's greeting, with its challenge.
    pub fn member(max_frame: usize, challenge: Vec<u8>) -> Hello {
        Hello {
            challenge: Some(serde_bytes::ByteBuf::from(challenge)),
            ..Hello::new(PeerKind::DataNode, max_frame)
        }
    }
}

/// A member's answer to the server's challenge: the third message of its greeting (a
/// [`super::frame::FrameKind::Proof`] frame).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberProof {
    pub proof: serde_bytes::ByteBuf,
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
    /// To a member's greeting: the server's challenge, and its proof of the cluster key over
    /// both challenges.
    pub challenge: Option<serde_bytes::ByteBuf>,
    pub proof: Option<serde_bytes::ByteBuf>,
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

/// A request family: the requests one kind of server answers, and the one type their answers
/// have. A caller gets its family's reply type, so an answer of another family cannot be
/// matched on at all.
pub trait Family: Into<Request> {
    type Reply: DeserializeOwned + Serialize + Send + 'static;
}

macro_rules! family {
    ($req:ident, $reply:ident, $variant:ident) => {
        impl From<$req> for Request {
            fn from(r: $req) -> Request {
                Request::$variant(r)
            }
        }
        impl Family for $req {
            type Reply = $reply;
        }
        impl From<Result<$reply, RemoteError>> for Response {
            fn from(r: Result<$reply, RemoteError>) -> Response {
                Response::$variant(r)
            }
        }
    };
}

family!(ControllerRequest, ControllerReply, Controller);
family!(SessionRequest, SessionReply, Session);
family!(ParticipantRequest, ParticipantReply, Participant);
family!(ReplicationRequest, ReplicationReply, Replication);

/// An answer as a server sends it: its family's reply, or an error. On the wire it is the
/// `Result` alone (`{"Ok": reply}` or `{"Err": error}`); the caller knows the family.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Response {
    Controller(Result<ControllerReply, RemoteError>),
    Session(Result<SessionReply, RemoteError>),
    Participant(Result<ParticipantReply, RemoteError>),
    Replication(Result<ReplicationReply, RemoteError>),
}

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
