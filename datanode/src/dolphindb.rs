//! DolphinDB's client API protocol on the data node's own port: a connection whose first
//! bytes are `API ` or `API2 ` (DolphinDB's Python, Java and C++ clients) becomes an ordinary
//! session, with the same login, rights, evaluator, functions and read-only rules as a console.
//!
//! One request at a time, in order: its first line and text body are read here; its argument
//! objects, whose length only decoding tells, are decoded on the blocking pool from the same
//! buffered stream (`SyncIoBridge`), so a large DataFrame is read once, as it arrives. Until
//! the session has logged in, a request may be at most [`PRE_AUTH_MAX_MESSAGE`] bytes and the
//! connection must log in within `loginTimeoutMs`. A malformed request is answered with the
//! reason when the client can still read it, and the connection closes; the reason is logged
//! by the server loop. Other sessions go on.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::io::SyncIoBridge;
use xrepl_core::value::Value;
use xrepl_proto::dolphindb::{
    connect_reply, encode_reply, parse_body, parse_header, read_object, Body, DecodeError, Header,
};
use xrepl_proto::rpc::{BoxedIo, ServerLimits, PRE_AUTH_MAX_MESSAGE};

use crate::node::DataNode;
use crate::session::actor::{ApiRequest, SessionHandle};

/// Longest first line of a request (`API2 <session> <length> / <options>`).
const MAX_HEADER_LINE: u64 = 1024;
/// Most bytes one request of a logged-in session may bring (its body and its objects).
const MAX_REQUEST: u64 = 4 << 30;
/// Bytes buffered from the socket at a time.
const READ_BUFFER: usize = 256 << 10;

/// Session ids handed out by this process: any number the client echoes back will do, and a
/// new one per connection makes a log line easy to follow.
static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

type Reader = BufReader<tokio::io::ReadHalf<BoxedIo>>;

/// Serves one DolphinDB API connection until the client closes it, a request is malformed,
/// the login deadline passes without a login, or `shutdown`.
pub async fn serve(
    node: Arc<DataNode>,
    io: BoxedIo,
    peer: SocketAddr,
    limits: ServerLimits,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    let (rd, mut wr) = tokio::io::split(io);
    let mut rd = BufReader::with_capacity(READ_BUFFER, rd);
    let session = SessionHandle::start(node.clone(), peer.ip().to_string());
    let id = format!(
        "{}{:04}",
        node.cfg.port,
        NEXT_SESSION.fetch_add(1, Ordering::Relaxed)
    );
    let login_deadline = Instant::now() + limits.login_timeout;
    tracing::debug!(%peer, session = %id, "new DolphinDB API session");
    loop {
        let authenticated = session.logged_in();
        let budget = if authenticated {
            MAX_REQUEST
        } else {
            PRE_AUTH_MAX_MESSAGE as u64
        };
        let read = tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            _ = tokio::time::sleep_until(login_deadline), if !authenticated => {
                return Err(format!(
                    "a DolphinDB API client did not log in within {} ms (loginTimeoutMs)",
                    limits.login_timeout.as_millis()
                ));
            }
            read = read_head(&mut rd, budget) => read,
        };
        let (header, body, budget) = match read {
            Ok(Some(head)) => head,
            Ok(None) => return Ok(()),
            Err(Refusal { reason, answer }) => {
                if answer {
                    let _ = wr.write_all(&encode_reply("0", &[], Err(&reason))).await;
                }
                return Err(format!("DolphinDB API: {reason}"));
            }
        };
        let count = body.object_count();
        let objects = if count == 0 {
            Ok(Vec::new())
        } else {
            let (back, objects) = read_objects(rd, count, budget).await?;
            rd = back;
            objects
        };
        let objects = match objects {
            Ok(o) => o,
            Err(reason) => {
                if !header.is_async() {
                    let _ = wr
                        .write_all(&encode_reply(&header.session, &[], Err(&reason)))
                        .await;
                }
                return Err(format!("DolphinDB API: {reason}"));
            }
        };
        // A client in asynchronous mode marks its connect asynchronous too, and waits for the
        // session id all the same.
        let replies = !header.is_async() || matches!(body, Body::Connect { .. });
        let reply = answer(&session, &id, &header, body, objects).await;
        if replies {
            wr.write_all(&reply)
                .await
                .map_err(|e| format!("DolphinDB API: cannot reply: {e}"))?;
        }
    }
}

/// Why a request was refused, and whether the client can still be told (its first line was
/// read whole).
struct Refusal {
    reason: String,
    answer: bool,
}

impl Refusal {
    fn told(reason: impl Into<String>) -> Refusal {
        Refusal {
            reason: reason.into(),
            answer: true,
        }
    }
}

/// Reads a request's first line and text body within `budget` bytes; `None` when the client
/// closed the connection between requests. Answers what is left of the budget for the
/// request's objects.
async fn read_head(rd: &mut Reader, budget: u64) -> Result<Option<(Header, Body, u64)>, Refusal> {
    let mut line = Vec::new();
    let n = (&mut *rd)
        .take(MAX_HEADER_LINE)
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| Refusal {
            reason: format!("cannot read: {e}"),
            answer: false,
        })?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        let reason = if line.len() as u64 >= MAX_HEADER_LINE {
            format!("a request's first line is longer than {MAX_HEADER_LINE} bytes")
        } else {
            "the connection closed in the middle of a request".to_string()
        };
        return Err(Refusal {
            reason,
            answer: false,
        });
    }
    let line = std::str::from_utf8(&line)
        .map_err(|_| Refusal::told("a request's first line is not UTF-8"))?;
    let header = parse_header(line).map_err(Refusal::told)?;
    let left = budget.saturating_sub(n as u64);
    if header.body_len as u64 > left {
        return Err(Refusal::told(format!(
            "a request of {} bytes is more than this connection may send now ({left} bytes; before a login, {PRE_AUTH_MAX_MESSAGE})",
            header.body_len
        )));
    }
    let mut body = vec![0; header.body_len];
    rd.read_exact(&mut body).await.map_err(|e| Refusal {
        reason: format!("the request's body ended early: {e}"),
        answer: false,
    })?;
    let text =
        String::from_utf8(body).map_err(|_| Refusal::told("a request's body is not UTF-8"))?;
    let body = parse_body(&text).map_err(Refusal::told)?;
    let left = left - header.body_len as u64;
    Ok(Some((header, body, left)))
}

/// Decodes `count` objects from the stream on the blocking pool, within `budget` bytes; gives
/// the stream back. The outer error means the stream is lost (nothing can be answered).
async fn read_objects(
    rd: Reader,
    count: usize,
    budget: u64,
) -> Result<(Reader, Result<Vec<Value>, String>), String> {
    let bridge = SyncIoBridge::new(rd);
    let (bridge, objects) = tokio::task::spawn_blocking(move || {
        let mut bridge = bridge;
        let mut limited = (&mut bridge).take(budget);
        let mut objects = Vec::with_capacity(count.min(64));
        let mut outcome = Ok(());
        for i in 0..count {
            match read_object(&mut limited) {
                Ok(v) => objects.push(v),
                Err(DecodeError::Io(e)) if limited.limit() == 0 => {
                    outcome = Err(format!(
                        "argument {} is larger than this connection may send now ({budget} bytes left): {e}",
                        i + 1
                    ));
                    break;
                }
                Err(DecodeError::Io(e)) => {
                    outcome = Err(format!("the connection ended in argument {}: {e}", i + 1));
                    break;
                }
                Err(DecodeError::Malformed(m)) => {
                    outcome = Err(format!("argument {}: {m}", i + 1));
                    break;
                }
            }
        }
        (bridge, outcome.map(|()| objects))
    })
    .await
    .map_err(|e| format!("DolphinDB API: the decoder failed: {e}"))?;
    Ok((bridge.into_inner(), objects))
}

/// Runs one decoded request in the session and encodes its reply.
async fn answer(
    session: &SessionHandle,
    id: &str,
    header: &Header,
    body: Body,
    objects: Vec<Value>,
) -> Vec<u8> {
    if header.fetch_size > 0 {
        return encode_reply(
            &header.session,
            &[],
            Err("xrepl sends a result whole: run it without fetchSize"),
        );
    }
    let req = match body {
        Body::Connect { login: None } => return connect_reply(id),
        Body::Connect {
            login: Some((user, password)),
        } => {
            let a = session.api(ApiRequest::Login { user, password }).await;
            return match a.result {
                Ok(_) => connect_reply(id),
                Err(e) => encode_reply(id, &[], Err(&e.to_string())),
            };
        }
        Body::Script(s) => ApiRequest::Script(s),
        Body::Function { name, .. } => ApiRequest::Call {
            function: name,
            args: objects,
        },
        Body::Variable { names, .. } => ApiRequest::Upload {
            names,
            values: objects,
        },
    };
    let a = session.api(req).await;
    match &a.result {
        Ok(v) => encode_reply(&header.session, &a.printed, Ok(v)),
        Err(e) => encode_reply(&header.session, &a.printed, Err(&e.to_string())),
    }
}
