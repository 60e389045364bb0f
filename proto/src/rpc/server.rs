//! The server loop shared by the controller and the data node.
//!
//! One task per connection reads frames; each complete request runs in its own task (at most
//! [`MAX_IN_FLIGHT`] per connection, so a flood waits instead of piling up), and one writer task
//! sends the answers. A malformed, oversized or unexpected frame closes that connection with a
//! logged reason; every other connection goes on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_util::codec::Framed;

use super::error::{ErrorCode, RemoteError};
use super::frame::{self, Assembler, FrameKind, MAX_MESSAGE_SIZE};
use super::message::{
    decode, encode, Hello, HelloReply, MemberProof, PeerKind, Request, Response, ServerInfo, MAGIC,
    PROTOCOL_VERSION,
};
use super::tls::{BoxedIo, ServerTls, TLS_HANDSHAKE};
use xrepl_core::cluster_key::{ClusterKey, Side, CHALLENGE_BYTES};

/// Requests of one connection that may run at the same time.
pub const MAX_IN_FLIGHT: usize = 256;
/// Frames waiting for the writer of one connection.
const WRITE_QUEUE: usize = 256;
/// How long a new connection may take to greet.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// What a server does with its connections. `Conn` is the state of one connection (a session).
#[async_trait]
pub trait Service: Send + Sync + 'static {
    type Conn: Send + Sync + 'static;

    /// Accepts or refuses a greeting; a refusal is sent back and the connection closed.
    fn accept(&self, hello: &Hello, peer: SocketAddr) -> Result<(ServerInfo, Self::Conn), String>;

    /// Answers one request. `Err(reason)` means the request must not arrive on this connection
    /// at all: the connection is closed with that reason.
    async fn handle(&self, conn: Arc<Self::Conn>, req: Request) -> Result<Response, String>;

    /// Called once when the connection ends, whatever the reason.
    fn closed(&self, _conn: &Self::Conn) {}

    /// The cluster's key: a peer that greets as a data node of this cluster must prove it
    /// holds it before any of its requests is read.
    fn cluster_key(&self) -> &ClusterKey;
}

type Transport = Framed<BoxedIo, tokio_util::codec::LengthDelimitedCodec>;

/// The next complete message, within [`HELLO_TIMEOUT`] (`what` names it in errors).
async fn greeting_message(
    framed: &mut Transport,
    asm: &mut Assembler,
    what: &str,
) -> Result<(FrameKind, Bytes), String> {
    tokio::time::timeout(HELLO_TIMEOUT, async {
        loop {
            match framed.next().await {
                None => return Err(format!("closed before {what}")),
                Some(Err(e)) => return Err(format!("bad frame before {what}: {e}")),
                Some(Ok(raw)) => {
                    let f = frame::parse(raw.freeze()).map_err(|e| e.to_string())?;
                    if let Some((kind, _, body)) = asm.push(f).map_err(|e| e.to_string())? {
                        return Ok((kind, body));
                    }
                }
            }
        }
    })
    .await
    .map_err(|_| format!("no {what} within {} s", HELLO_TIMEOUT.as_secs()))?
}

/// Accepts connections until `shutdown` turns true; `tls` says which need TLS.
pub async fn serve<S: Service>(
    listener: TcpListener,
    service: Arc<S>,
    tls: ServerTls,
    max_frame: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let service = service.clone();
                    let shutdown = shutdown.clone();
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        if let Err(reason) = connection(socket, peer, service, tls, max_frame, shutdown).await {
                            tracing::warn!(%peer, "closed connection: {reason}");
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait a little instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// The connection's byte stream after TLS, if the peer speaks it; whether it does.
async fn open_stream(
    socket: TcpStream,
    tls: &ServerTls,
    max_frame: usize,
) -> Result<(BoxedIo, bool), String> {
    let mut first = [0u8; 1];
    let n = tokio::time::timeout(HELLO_TIMEOUT, socket.peek(&mut first))
        .await
        .map_err(|_| format!("no greeting within {} s", HELLO_TIMEOUT.as_secs()))?
        .map_err(|e| format!("cannot read: {e}"))?;
    if n == 0 {
        return Err("closed before greeting".into());
    }
    let speaks_tls = first[0] == TLS_HANDSHAKE;
    let acceptor = match (tls, speaks_tls) {
        (ServerTls::Plain, false) => return Ok((Box::new(socket), false)),
        (ServerTls::Plain, true) => {
            return Err(
                "a TLS client connected, but this cluster speaks plain text (enableTLS=false)"
                    .into(),
            )
        }
        (ServerTls::Required(_), false) => return Err(refuse_plain(socket, max_frame).await),
        (ServerTls::SlavesOnly(_), false) => return Ok((Box::new(socket), false)),
        (ServerTls::Required(a) | ServerTls::SlavesOnly(a), true) => a,
    };
    let stream = tokio::time::timeout(HELLO_TIMEOUT, acceptor.accept(socket))
        .await
        .map_err(|_| format!("no TLS handshake within {} s", HELLO_TIMEOUT.as_secs()))?
        .map_err(|e| format!("TLS handshake failed: {e}"))?;
    Ok((Box::new(stream), true))
}

/// Answers a plain-text greeting on a TLS-only listener with a refusal the client can read,
/// and says why the connection ends.
async fn refuse_plain(socket: TcpStream, max_frame: usize) -> String {
    const WHY: &str = "this cluster accepts TLS connections only (enableTLS=true): connect with TLS, trusting the cluster's CA (the console's --tls-ca FILE or XREPL_TLS_CA)";
    let mut framed: Transport = Framed::new(Box::new(socket), frame::codec(max_frame));
    let mut asm = Assembler::new(MAX_MESSAGE_SIZE);
    if let Err(e) = greeting_message(&mut framed, &mut asm, "greeting").await {
        return format!("a plain-text client on a TLS-only listener: {e}");
    }
    let reply = HelloReply {
        version: PROTOCOL_VERSION,
        outcome: Err(WHY.to_string()),
    };
    if let Ok(body) = encode(&reply) {
        for f in frame::split(FrameKind::HelloReply, 0, &body, max_frame) {
            if framed.send(f).await.is_err() {
                break;
            }
        }
    }
    "refused a plain-text client: this listener speaks TLS only (enableTLS=true)".into()
}

async fn connection<S: Service>(
    socket: TcpStream,
    peer: SocketAddr,
    service: Arc<S>,
    tls: ServerTls,
    max_frame: usize,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    let _ = socket.set_nodelay(true);
    let (stream, over_tls) = open_stream(socket, &tls, max_frame).await?;
    let mut framed: Transport = Framed::new(stream, frame::codec(max_frame));
    let mut asm = Assembler::new(MAX_MESSAGE_SIZE);

    // The greeting: the first complete message must be a Hello.
    let (kind, body) = greeting_message(&mut framed, &mut asm, "greeting").await?;
    if kind != FrameKind::Hello {
        return Err(format!("expected a greeting, got a {kind:?} frame"));
    }
    let hello: Hello = decode(&body).map_err(|e| format!("malformed greeting: {e}"))?;
    let refusal = if hello.magic != MAGIC {
        Some(format!("not an xrepl client (magic '{}')", hello.magic))
    } else if hello.version != PROTOCOL_VERSION {
        Some(format!(
            "protocol version {} is not supported; this server speaks {PROTOCOL_VERSION}",
            hello.version
        ))
    } else if hello.peer == PeerKind::DataNode
        && hello
            .challenge
            .as_ref()
            .is_none_or(|c| c.len() != CHALLENGE_BYTES)
    {
        Some("a data node of this cluster must prove that it holds the cluster key (clusterKeyFile); this greeting brings no challenge".to_string())
    } else if hello.peer == PeerKind::Slave && matches!(tls, ServerTls::SlavesOnly(_)) && !over_tls
    {
        Some("this master cluster takes slaves over TLS only (enableClusterReplicationSSL=true): set enableClusterReplicationSSL=true and tlsCAFile on the slave".to_string())
    } else {
        None
    };
    let accepted = match refusal {
        Some(r) => Err(r),
        None => service.accept(&hello, peer),
    };
    // A member's greeting: our challenge, and our proof over both.
    let member = match (&hello.challenge, hello.peer) {
        (Some(theirs), PeerKind::DataNode) => Some((theirs.to_vec(), ClusterKey::challenge())),
        _ => None,
    };
    let (outcome, conn) = match accepted {
        Ok((info, conn)) => (
            Ok(ServerInfo {
                max_frame: max_frame as u64,
                challenge: member
                    .as_ref()
                    .map(|(_, ours)| serde_bytes::ByteBuf::from(ours.clone())),
                proof: member.as_ref().map(|(theirs, ours)| {
                    serde_bytes::ByteBuf::from(service.cluster_key().proof(
                        Side::Server,
                        theirs,
                        ours,
                    ))
                }),
                ..info
            }),
            Some(conn),
        ),
        Err(r) => (Err(r), None),
    };
    let reply = HelloReply {
        version: PROTOCOL_VERSION,
        outcome: outcome.clone(),
    };
    let body = encode(&reply).map_err(|e| format!("cannot encode greeting reply: {e}"))?;
    for f in frame::split(FrameKind::HelloReply, 0, &body, max_frame) {
        framed
            .send(f)
            .await
            .map_err(|e| format!("cannot answer greeting: {e}"))?;
    }
    let Some(conn) = conn else {
        return Err(format!(
            "refused greeting: {}",
            outcome.err().unwrap_or_default()
        ));
    };
    if let Some((theirs, ours)) = &member {
        let proven = async {
            let (kind, body) =
                greeting_message(&mut framed, &mut asm, "the proof of the cluster key").await?;
            if kind != FrameKind::Proof {
                return Err(format!(
                    "expected the proof of the cluster key, got a {kind:?} frame"
                ));
            }
            let p: MemberProof =
                decode(&body).map_err(|e| format!("malformed proof of the cluster key: {e}"))?;
            if service
                .cluster_key()
                .verify(Side::Client, theirs, ours, &p.proof)
            {
                Ok(())
            } else {
                Err("its proof of the cluster key is wrong: it holds another key file".to_string())
            }
        };
        proven.await.map_err(|reason| {
            format!("greeted as a data node of this cluster but did not prove the cluster key (clusterKeyFile): {reason}")
        })?;
    }
    let conn = Arc::new(conn);
    let send_max = super::message::send_limit(max_frame, hello.max_frame);
    let result = serve_requests(
        framed,
        asm,
        peer,
        &service,
        conn.clone(),
        send_max,
        &mut shutdown,
    )
    .await;
    service.closed(&conn);
    result
}

async fn serve_requests<S: Service>(
    framed: Transport,
    mut asm: Assembler,
    peer: SocketAddr,
    service: &Arc<S>,
    conn: Arc<S::Conn>,
    max_frame: usize,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let (mut sink, mut stream) = framed.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(WRITE_QUEUE);
    // A handler that finds its request must not be here reports it through this channel.
    let (bad_tx, mut bad_rx) = mpsc::channel::<String>(1);
    let writer = tokio::spawn(async move {
        while let Some(f) = out_rx.recv().await {
            if sink.send(f).await.is_err() {
                break;
            }
        }
    });
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let result = loop {
        let raw = tokio::select! {
            _ = shutdown.changed() => break Ok(()),
            Some(reason) = bad_rx.recv() => break Err(reason),
            next = stream.next() => next,
        };
        let raw = match raw {
            None => break Ok(()),
            Some(Err(e)) => break Err(format!("bad frame: {e}")),
            Some(Ok(raw)) => raw,
        };
        let f = match frame::parse(raw.freeze()) {
            Ok(f) => f,
            Err(e) => break Err(e.to_string()),
        };
        let (kind, id, body) = match asm.push(f) {
            Ok(Some(m)) => m,
            Ok(None) => continue,
            Err(e) => break Err(e.to_string()),
        };
        if kind != FrameKind::Request {
            break Err(format!("unexpected {kind:?} frame from a client"));
        }
        let req: Request = match decode(&body) {
            Ok(r) => r,
            Err(e) => break Err(format!("malformed request {id}: {e}")),
        };
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break Ok(());
        };
        let (service, conn, out_tx, bad_tx) = (
            service.clone(),
            conn.clone(),
            out_tx.clone(),
            bad_tx.clone(),
        );
        tokio::spawn(async move {
            let _permit = permit;
            let resp: Response = match service.handle(conn, req).await {
                Ok(r) => r,
                Err(reason) => {
                    let _ = bad_tx.try_send(reason);
                    return;
                }
            };
            let frames = frame::encode_frames(FrameKind::Response, id, &resp, max_frame)
                .unwrap_or_else(|e| {
                    let err: Result<(), RemoteError> = Err(RemoteError {
                        node: String::new(),
                        code: ErrorCode::Internal,
                        message: format!("cannot encode the answer: {e}"),
                    });
                    frame::split(
                        FrameKind::Response,
                        id,
                        &encode(&err).unwrap_or_default(),
                        max_frame,
                    )
                });
            drop(resp);
            for f in frames {
                if out_tx.send(f).await.is_err() {
                    return;
                }
            }
        });
    };
    drop(out_tx);
    // Let answers already queued go out, briefly, then stop.
    let _ = tokio::time::timeout(Duration::from_millis(200), writer).await;
    tracing::debug!(%peer, "connection ended");
    result
}
