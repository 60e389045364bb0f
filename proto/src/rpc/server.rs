//! The server loop shared by the controller and the data node.
//!
//! One task per connection reads frames; each complete request runs in its own task (at most
//! [`MAX_IN_FLIGHT`] per connection, so a flood waits instead of piling up), and one writer task
//! sends the answers. A malformed, oversized or unexpected frame closes that connection with a
//! logged reason; every other connection goes on.
//!
//! Limits, so that no peer makes a node hold much before it is known ([`ServerLimits`]): at
//! most `maxConnections` connections at once (one more gets its greeting answered with a
//! refusal it can read); until the peer has authenticated ([`Service::authenticated`]), frames
//! and partial messages of at most [`PRE_AUTH_MAX_MESSAGE`] bytes and [`PRE_AUTH_MAX_PARTIAL`]
//! messages being reassembled, and a deadline for the login; after it, the configured
//! `maxFrameSize`, [`MAX_MESSAGE_SIZE`] and [`MAX_PARTIAL_MESSAGES`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_util::codec::Framed;

use super::error::{ErrorCode, RemoteError};
use super::frame::{
    self, Assembler, FrameCodec, FrameKind, MAX_MESSAGE_SIZE, MAX_PARTIAL_MESSAGES,
};
use super::message::{
    decode, encode, Hello, HelloReply, MemberProof, PeerKind, Request, Response, ServerInfo, MAGIC,
    PROTOCOL_VERSION,
};
use super::tls::{BoxedIo, ServerTls, TLS_HANDSHAKE};
use crate::web::{WebRequest, WebResponse};
use xrepl_core::cluster_key::{ClusterKey, Side, CHALLENGE_BYTES};

/// Requests of one connection that may run at the same time.
pub const MAX_IN_FLIGHT: usize = 256;
/// Frames waiting for the writer of one connection.
const WRITE_QUEUE: usize = 256;
/// How long a new connection may take to greet.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest frame, and most bytes of partial messages held, on a connection whose peer has not
/// authenticated (64 KiB). Enough for a greeting, a proof, a login, and the largest request a
/// slave's data node sends with a fetch ticket, never logging in (`FetchTasksData` of
/// `FETCH_TASKS_MAX` tasks: under 32 KiB with a ticket naming a hundred data nodes and their
/// public addresses, as a test in `replication.rs` checks). Without it, anyone who can open a connection
/// could make a node buffer up to `maxFrameSize` per frame and [`MAX_MESSAGE_SIZE`] (1 GiB) of
/// partial messages before saying who it is.
pub const PRE_AUTH_MAX_MESSAGE: usize = 64 << 10;
/// Most messages being reassembled at once on a connection whose peer has not authenticated.
/// Such a peer sends one request at a time, each well under a frame.
pub const PRE_AUTH_MAX_PARTIAL: usize = 64;
/// Connections refused for the connection cap that may wait for their greeting at once; beyond
/// them a connection is closed without a word, so that a flood piles up no tasks.
const REFUSALS_AT_ONCE: usize = 32;
/// How long a connection refused for the cap has to greet (TLS included) before it is closed
/// without its refusal.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(2);
/// At most one warning about refused connections in this time (with how many there were).
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(1);

/// How much a server takes: from `maxFrameSize`, `maxConnections` and `loginTimeoutMs` of
/// controller.cfg or cluster.cfg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Largest frame an authenticated peer may send (`maxFrameSize`); also the largest this
    /// server sends.
    pub max_frame: usize,
    /// Connections open at once (`maxConnections`); one more is refused in its greeting.
    pub max_connections: usize,
    /// How long after its greeting a connection may stay unauthenticated (`loginTimeoutMs`).
    pub login_timeout: Duration,
}

/// What a server does with its connections. `Conn` is the state of one connection (a session).
#[async_trait]
pub trait Service: Send + Sync + 'static {
    type Conn: Send + Sync + 'static;

    /// Accepts or refuses a greeting; a refusal is sent back and the connection closed.
    fn accept(&self, hello: &Hello, peer: SocketAddr) -> Result<(ServerInfo, Self::Conn), String>;

    /// Answers one request. `Err(reason)` means the request must not arrive on this connection
    /// at all: the connection is closed with that reason.
    async fn handle(&self, conn: Arc<Self::Conn>, req: Request) -> Result<Response, String>;

    /// Whether the peer of `conn` has authenticated (a proven member, or a successful login):
    /// until then it may send only small frames and messages ([`PRE_AUTH_MAX_MESSAGE`]), and
    /// it is closed when it has not authenticated within the login deadline. Asked for every
    /// frame and after every request, so it must be cheap (an atomic load); when a request
    /// authenticates the connection, it must answer true by the time [`Service::handle`]
    /// returns, so that the limits are raised before the answer goes out.
    fn authenticated(&self, conn: &Self::Conn) -> bool;

    /// Whether a peer that does not log in has shown credentials that each of its requests
    /// carries (a slave's data node shows a fetch ticket with every request): it is then not
    /// closed at the login deadline, but keeps the limits of an unauthenticated peer.
    fn vouched(&self, _conn: &Self::Conn) -> bool {
        false
    }

    /// Called once when the connection ends, whatever the reason.
    fn closed(&self, _conn: &Self::Conn) {}

    /// The cluster's key: a peer that greets as a data node of this cluster must prove it
    /// holds it before any of its requests is read.
    fn cluster_key(&self) -> &ClusterKey;

    /// Serves a connection that speaks DolphinDB's client API protocol (its first byte is the
    /// `A` of `API `), in plain text; by default such a client is refused. The connection
    /// counts against `maxConnections` like any other.
    async fn serve_dolphindb(
        &self,
        io: BoxedIo,
        _peer: SocketAddr,
        _limits: ServerLimits,
        _shutdown: watch::Receiver<bool>,
    ) -> Result<(), String> {
        drop(io);
        Err("a DolphinDB API client connected, but this node does not serve that protocol".into())
    }

    /// Answers one HTTP request (see [`crate::web`]); by default, nothing is there.
    async fn http(&self, req: WebRequest) -> WebResponse {
        WebResponse::not_found(&req.path)
    }
}

type Transport = Framed<BoxedIo, FrameCodec>;

/// What the peer of a connection may send at a time: little until it has authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Allowance {
    /// Largest frame the codec reads.
    frame: usize,
    /// Most bytes of partial messages the assembler holds.
    message: usize,
    /// Most messages the assembler reassembles at once.
    partial: usize,
}

impl Allowance {
    /// Before the peer has authenticated.
    fn pre_auth(max_frame: usize) -> Allowance {
        Allowance {
            frame: PRE_AUTH_MAX_MESSAGE.min(max_frame),
            message: PRE_AUTH_MAX_MESSAGE,
            partial: PRE_AUTH_MAX_PARTIAL,
        }
    }

    /// After it has.
    fn authenticated(max_frame: usize) -> Allowance {
        Allowance {
            frame: max_frame,
            message: MAX_MESSAGE_SIZE,
            partial: MAX_PARTIAL_MESSAGES,
        }
    }

    /// What the peer of `conn` may send now.
    fn of<S: Service>(service: &S, conn: &S::Conn, max_frame: usize) -> Allowance {
        if service.authenticated(conn) {
            Allowance::authenticated(max_frame)
        } else {
            Allowance::pre_auth(max_frame)
        }
    }

    /// An assembler within this allowance.
    fn assembler(self) -> Assembler {
        Assembler::with_limits(self.message, self.partial)
    }
}

/// A connection's frames over `io`: received ones within `limit` (read at each frame, raised
/// when the peer authenticates), sent ones within `max_frame`.
fn transport(io: BoxedIo, limit: &Arc<AtomicUsize>, max_frame: usize) -> Transport {
    Framed::new(io, FrameCodec::new(limit.clone(), max_frame))
}

/// A duration as people write it in a reason: whole seconds, or milliseconds.
fn spoken(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// Refusals for the connection cap, counted so that a flood gives one warning a
/// [`REFUSAL_LOG_EVERY`], not one per connection.
#[derive(Debug, Default)]
struct RefusalLog {
    /// When the last warning was given.
    last: Option<Instant>,
    /// Refusals since then, this one included.
    unlogged: u64,
}

impl RefusalLog {
    /// Counts a refusal at `now`; answers how many refusals to warn about when a warning is
    /// due.
    fn refused(&mut self, now: Instant) -> Option<u64> {
        self.unlogged += 1;
        if self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) < REFUSAL_LOG_EVERY)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }
}

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
    .map_err(|_| format!("no {what} within {}", spoken(HELLO_TIMEOUT)))?
}

/// Accepts connections until `shutdown` turns true; `tls` says which need TLS.
pub async fn serve<S: Service>(
    listener: TcpListener,
    service: Arc<S>,
    tls: ServerTls,
    limits: ServerLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let refusing = Arc::new(Semaphore::new(REFUSALS_AT_ONCE));
    let mut refusals = RefusalLog::default();
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let tls = tls.clone();
                    let Ok(permit) = open.clone().try_acquire_owned() else {
                        if let Some(n) = refusals.refused(Instant::now()) {
                            tracing::warn!(
                                %peer,
                                "too many connections: this node takes at most {} (maxConnections); refused {n} connection(s) since the last such warning",
                                limits.max_connections
                            );
                        }
                        // Answered only while few refusals wait for their greeting; beyond, the
                        // socket just closes.
                        if let Ok(busy) = refusing.clone().try_acquire_owned() {
                            tokio::spawn(async move {
                                let _busy = busy;
                                let why = format!(
                                    "too many connections: this node takes at most {} (maxConnections)",
                                    limits.max_connections
                                );
                                let _ = tokio::time::timeout(
                                    REFUSAL_TIMEOUT,
                                    refuse_full(socket, &tls, limits.max_frame, &why),
                                )
                                .await;
                            });
                        }
                        continue;
                    };
                    let service = service.clone();
                    let shutdown = shutdown.clone();
                    tokio::spawn(async move {
                        let _permit = permit;
                        if let Err(reason) = connection(socket, peer, service, tls, limits, shutdown).await {
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

/// What a connection's first byte says it speaks.
enum Opened {
    /// xrepl's frames: the byte stream after TLS, if the peer speaks it, and whether it does.
    Xrepl(BoxedIo, bool),
    /// DolphinDB's client API protocol, in plain text (`API ` or `API2 `: no frame of ours
    /// starts with the byte `A`, as its length would be over 1 GB).
    DolphinDb(BoxedIo),
    /// HTTP (`GET `, `HEAD `), in plain text or, on a TLS listener, inside TLS.
    Http(BoxedIo),
}

/// The first byte of a DolphinDB API request.
const DOLPHINDB_API: u8 = b'A';

/// Tells the connection's protocol from its first byte and, for xrepl's own, sets up TLS if
/// the peer speaks it.
async fn open(socket: TcpStream, tls: &ServerTls, max_frame: usize) -> Result<Opened, String> {
    let mut first = [0u8; 1];
    let n = tokio::time::timeout(HELLO_TIMEOUT, socket.peek(&mut first))
        .await
        .map_err(|_| format!("no greeting within {}", spoken(HELLO_TIMEOUT)))?
        .map_err(|e| format!("cannot read: {e}"))?;
    if n == 0 {
        return Err("closed before greeting".into());
    }
    if first[0] == DOLPHINDB_API {
        return match tls {
            ServerTls::Required(_) => Err("a DolphinDB API client connected in plain text, but this cluster takes TLS connections only (enableTLS=true); xrepl serves DolphinDB's API in plain text only".into()),
            ServerTls::Plain | ServerTls::SlavesOnly(_) => Ok(Opened::DolphinDb(Box::new(socket))),
        };
    }
    if crate::web::is_http_start(first[0]) {
        return match tls {
            ServerTls::Required(_) => Err("an HTTP client connected in plain text, but this cluster takes TLS connections only (enableTLS=true): use https://".into()),
            ServerTls::Plain | ServerTls::SlavesOnly(_) => Ok(Opened::Http(Box::new(socket))),
        };
    }
    let speaks_tls = first[0] == TLS_HANDSHAKE;
    let acceptor = match (tls, speaks_tls) {
        (ServerTls::Plain, false) => return Ok(Opened::Xrepl(Box::new(socket), false)),
        (ServerTls::Plain, true) => {
            return Err(
                "a TLS client connected, but this cluster speaks plain text (enableTLS=false)"
                    .into(),
            )
        }
        (ServerTls::Required(_), false) => return Err(refuse_plain(socket, max_frame).await),
        (ServerTls::SlavesOnly(_), false) => return Ok(Opened::Xrepl(Box::new(socket), false)),
        (ServerTls::Required(a) | ServerTls::SlavesOnly(a), true) => a,
    };
    let stream = tokio::time::timeout(HELLO_TIMEOUT, acceptor.accept(socket))
        .await
        .map_err(|_| format!("no TLS handshake within {}", spoken(HELLO_TIMEOUT)))?
        .map_err(|e| format!("TLS handshake failed: {e}"))?;
    // Inside TLS, HTTPS or xrepl's frames: the first byte tells, and is read again.
    let mut stream = stream;
    let mut first = [0u8; 1];
    tokio::time::timeout(HELLO_TIMEOUT, stream.read_exact(&mut first))
        .await
        .map_err(|_| format!("no greeting within {}", spoken(HELLO_TIMEOUT)))?
        .map_err(|e| format!("cannot read: {e}"))?;
    let io = Box::new(Prefixed {
        first: Some(first[0]),
        inner: stream,
    });
    if crate::web::is_http_start(first[0]) {
        return Ok(Opened::Http(io));
    }
    Ok(Opened::Xrepl(io, true))
}

/// A stream whose first byte was read already, and is read again first.
struct Prefixed<T> {
    first: Option<u8>,
    inner: T,
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if let Some(b) = self.first {
            if buf.remaining() > 0 {
                buf.put_slice(&[b]);
                self.first = None;
                return std::task::Poll::Ready(Ok(()));
            }
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Waits for the greeting on `io` and answers it with the refusal `why`, which the client
/// shows; the greeting is read within the limits of an unauthenticated peer.
async fn refuse(io: BoxedIo, max_frame: usize, why: &str) -> Result<(), String> {
    let pre_auth = Allowance::pre_auth(max_frame);
    let limit = Arc::new(AtomicUsize::new(pre_auth.frame));
    let mut framed = transport(io, &limit, max_frame);
    let mut asm = pre_auth.assembler();
    greeting_message(&mut framed, &mut asm, "greeting").await?;
    let reply = HelloReply {
        version: PROTOCOL_VERSION,
        outcome: Err(why.to_string()),
    };
    if let Ok(body) = encode(&reply) {
        for f in frame::split(FrameKind::HelloReply, 0, &body, max_frame) {
            if framed.send(f).await.is_err() {
                break;
            }
        }
    }
    Ok(())
}

/// Answers a plain-text greeting on a TLS-only listener with a refusal the client can read,
/// and says why the connection ends.
async fn refuse_plain(socket: TcpStream, max_frame: usize) -> String {
    const WHY: &str = "this cluster accepts TLS connections only (enableTLS=true): connect with TLS, trusting the cluster's CA (the console's --tls-ca FILE or XREPL_TLS_CA)";
    if let Err(e) = refuse(Box::new(socket), max_frame, WHY).await {
        return format!("a plain-text client on a TLS-only listener: {e}");
    }
    "refused a plain-text client: this listener speaks TLS only (enableTLS=true)".into()
}

/// Answers the greeting of a connection beyond the connection cap with the refusal `why`
/// (after TLS, if the peer speaks it).
async fn refuse_full(socket: TcpStream, tls: &ServerTls, max_frame: usize, why: &str) {
    if let Ok(Opened::Xrepl(io, _)) = open(socket, tls, max_frame).await {
        let _ = refuse(io, max_frame, why).await;
    }
}

/// Serves one connection: its greeting (and a member's proof), then its requests.
async fn connection<S: Service>(
    socket: TcpStream,
    peer: SocketAddr,
    service: Arc<S>,
    tls: ServerTls,
    limits: ServerLimits,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    let max_frame = limits.max_frame;
    let _ = socket.set_nodelay(true);
    let (stream, over_tls) = match open(socket, &tls, max_frame).await? {
        Opened::Xrepl(io, over_tls) => (io, over_tls),
        Opened::DolphinDb(io) => {
            return service.serve_dolphindb(io, peer, limits, shutdown).await;
        }
        Opened::Http(io) => {
            let answer = move |r: WebRequest| {
                let service = service.clone();
                async move { service.http(r).await }
            };
            return crate::web::serve(io, peer, answer, shutdown).await;
        }
    };
    // Until the peer has authenticated, it may send only small frames and messages.
    let pre_auth = Allowance::pre_auth(max_frame);
    let frame_limit = Arc::new(AtomicUsize::new(pre_auth.frame));
    let mut framed = transport(stream, &frame_limit, max_frame);
    let mut asm = pre_auth.assembler();

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
    let link = Link {
        peer,
        conn: conn.clone(),
        send_max: super::message::send_limit(max_frame, hello.max_frame),
        max_frame,
        frame_limit,
        login_deadline: tokio::time::Instant::now() + limits.login_timeout,
        login_timeout: limits.login_timeout,
    };
    let result = serve_requests(framed, asm, link, &service, &mut shutdown).await;
    service.closed(&conn);
    result
}

/// A greeted connection, as its request loop sees it.
struct Link<C> {
    peer: SocketAddr,
    conn: Arc<C>,
    /// Largest frame sent to the peer.
    send_max: usize,
    /// Largest frame the peer may send once authenticated (`maxFrameSize`).
    max_frame: usize,
    /// The codec's limit on received frames, read at each frame: set from
    /// [`Service::authenticated`] by the loop and after every request.
    frame_limit: Arc<AtomicUsize>,
    /// When the connection is closed unless it has authenticated (or is vouched for).
    login_deadline: tokio::time::Instant,
    login_timeout: Duration,
}

/// Reads requests until the peer closes, a frame or request is refused, the login deadline
/// passes unauthenticated, or `shutdown`; runs each request in its own task.
async fn serve_requests<S: Service>(
    framed: Transport,
    mut asm: Assembler,
    link: Link<S::Conn>,
    service: &Arc<S>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let Link {
        peer,
        conn,
        send_max,
        max_frame,
        frame_limit,
        login_deadline,
        login_timeout,
    } = link;
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
    // What the loop last applied; changed only when the peer's standing changes, so that it
    // never undoes a raise a request's task has just made (see below). A member has proven
    // the cluster key already: its first frame may be a large one.
    let mut allowed = Allowance::of(service.as_ref(), &conn, max_frame);
    frame_limit.store(allowed.frame, Ordering::Release);
    asm.set_limits(allowed.message, allowed.partial);
    let mut awaiting_login = true;
    let login_timer = tokio::time::sleep_until(login_deadline);
    tokio::pin!(login_timer);
    let result = loop {
        if awaiting_login && (service.authenticated(&conn) || service.vouched(&conn)) {
            awaiting_login = false;
        }
        let raw = tokio::select! {
            _ = shutdown.changed() => break Ok(()),
            Some(reason) = bad_rx.recv() => break Err(reason),
            _ = &mut login_timer, if awaiting_login => {
                if service.authenticated(&conn) || service.vouched(&conn) {
                    continue;
                }
                break Err(format!(
                    "no login within {} of the greeting (loginTimeoutMs)",
                    spoken(login_timeout)
                ));
            }
            next = stream.next() => next,
        };
        let raw = match raw {
            None => break Ok(()),
            Some(Err(e)) => break Err(format!("bad frame: {e}")),
            Some(Ok(raw)) => raw,
        };
        // The peer may have logged in (or out) while this frame was on its way.
        let now = Allowance::of(service.as_ref(), &conn, max_frame);
        if now != allowed {
            allowed = now;
            frame_limit.store(now.frame, Ordering::Release);
            asm.set_limits(now.message, now.partial);
        }
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
        let (service, conn, out_tx, bad_tx, frame_limit) = (
            service.clone(),
            conn.clone(),
            out_tx.clone(),
            bad_tx.clone(),
            frame_limit.clone(),
        );
        tokio::spawn(async move {
            let _permit = permit;
            let resp: Response = match service.handle(conn.clone(), req).await {
                Ok(r) => r,
                Err(reason) => {
                    let _ = bad_tx.try_send(reason);
                    return;
                }
            };
            // A login raises the frame limit before its answer goes out: the peer's next
            // frame (a large request, say) is read with the limit it may now use.
            frame_limit.store(
                Allowance::of(service.as_ref(), &conn, max_frame).frame,
                Ordering::Release,
            );
            let frames = frame::encode_frames(FrameKind::Response, id, &resp, send_max)
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
                        send_max,
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use xrepl_core::config::NodeRole;
    use xrepl_core::value::{Scalar, Value};

    use super::*;
    use crate::rpc::{ClientTls, RpcClient, RpcError, SessionReply, SessionRequest};

    #[test]
    fn refusals_are_warned_about_once_a_second_with_how_many() {
        let mut log = RefusalLog::default();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert_eq!(log.refused(at(0)), Some(1), "the first one at once");
        for ms in [1, 200, 999] {
            assert_eq!(log.refused(at(ms)), None, "{ms} ms: within the second");
        }
        assert_eq!(log.refused(at(1_000)), Some(4), "then the count since");
        assert_eq!(log.refused(at(1_500)), None);
        assert_eq!(log.refused(at(5_000)), Some(2));
        assert_eq!(log.refused(at(7_000)), Some(1));
    }

    /// A service whose `Login` authenticates the session and whose `Run` answers the length of
    /// the script.
    struct Fake(ClusterKey);

    struct FakeConn {
        authenticated: AtomicBool,
    }

    #[async_trait]
    impl Service for Fake {
        type Conn = FakeConn;

        fn accept(&self, hello: &Hello, _: SocketAddr) -> Result<(ServerInfo, FakeConn), String> {
            let info = ServerInfo {
                alias: "fake".into(),
                max_frame: 0,
                role: NodeRole::DataNode,
                replication: None,
                challenge: None,
                proof: None,
            };
            // A member has proven the key before its first request.
            let conn = FakeConn {
                authenticated: AtomicBool::new(hello.peer == PeerKind::DataNode),
            };
            Ok((info, conn))
        }

        fn authenticated(&self, conn: &FakeConn) -> bool {
            conn.authenticated.load(Ordering::Acquire)
        }

        async fn handle(&self, conn: Arc<FakeConn>, req: Request) -> Result<Response, String> {
            match req {
                Request::Session(SessionRequest::Login { .. }) => {
                    conn.authenticated.store(true, Ordering::Release);
                    Ok(Response::Session(Ok(SessionReply::Done)))
                }
                Request::Session(SessionRequest::Run { script }) => Ok(Response::Session(Ok(
                    SessionReply::Value(Value::Scalar(Scalar::Long(script.len() as i64))),
                ))),
                _ => Err("not for the fake".into()),
            }
        }

        fn cluster_key(&self) -> &ClusterKey {
            &self.0
        }
    }

    fn key() -> ClusterKey {
        ClusterKey::from_bytes(&[7u8; 32]).expect("key")
    }

    /// A fake server with `limits` on 127.0.0.1; its address, and what stops it.
    async fn start(limits: ServerLimits) -> (String, watch::Sender<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address").to_string();
        let key = key();
        let (stop, shutdown) = watch::channel(false);
        tokio::spawn(serve(
            listener,
            Arc::new(Fake(key)),
            ServerTls::Plain,
            limits,
            shutdown,
        ));
        (addr, stop)
    }

    const LIMITS: ServerLimits = ServerLimits {
        max_frame: 8 << 20,
        max_connections: 64,
        login_timeout: Duration::from_secs(30),
    };

    /// A client that sends frames of at most `max_frame` bytes.
    async fn client(addr: &str, max_frame: usize) -> RpcClient {
        RpcClient::connect(
            addr,
            PeerKind::Client,
            &ClientTls::plain(),
            max_frame,
            Duration::from_secs(5),
        )
        .await
        .expect("connect")
    }

    async fn login(c: &RpcClient) {
        let req = SessionRequest::Login {
            user: "u".into(),
            password: "p".into(),
        };
        assert_eq!(c.call(req).await, Ok(Ok(SessionReply::Done)));
    }

    /// Runs a script of `len` bytes; its length as the fake answers it.
    async fn run(c: &RpcClient, len: usize) -> Result<i64, RpcError> {
        let req = SessionRequest::Run {
            script: "a".repeat(len),
        };
        match c.call(req).await? {
            Ok(SessionReply::Value(Value::Scalar(Scalar::Long(n)))) => Ok(n),
            other => panic!("unexpected answer {other:?}"),
        }
    }

    #[tokio::test]
    async fn before_its_login_a_peer_may_send_only_small_frames_and_messages() {
        let (addr, _stop) = start(LIMITS).await;
        // Small requests are fine before the login.
        let c = client(&addr, 8 << 20).await;
        assert_eq!(run(&c, 1_000).await, Ok(1_000));
        // A frame over the limit closes the connection.
        let too_long = run(&c, PRE_AUTH_MAX_MESSAGE + 1).await;
        assert!(
            matches!(too_long, Err(RpcError::Closed { .. })),
            "{too_long:?}"
        );
        // So do chunks (of 16 KiB) adding up to more than the limit.
        let c = client(&addr, 16 << 10).await;
        let chunked = run(&c, PRE_AUTH_MAX_MESSAGE + 1).await;
        assert!(
            matches!(chunked, Err(RpcError::Closed { .. })),
            "{chunked:?}"
        );
        // After the login, both go through: a large frame, and a message in many chunks.
        let c = client(&addr, 8 << 20).await;
        login(&c).await;
        assert_eq!(run(&c, 3 << 20).await, Ok(3 << 20));
        let c = client(&addr, 16 << 10).await;
        login(&c).await;
        assert_eq!(run(&c, 3 << 20).await, Ok(3 << 20));
        // A member has proven the cluster key in its greeting: its very first frame may be a
        // large one.
        let m = RpcClient::connect_member(
            &addr,
            &key(),
            &ClientTls::plain(),
            8 << 20,
            Duration::from_secs(5),
        )
        .await
        .expect("a member");
        assert_eq!(run(&m, 3 << 20).await, Ok(3 << 20));
    }

    /// A raw connection that has greeted; the server's reply.
    async fn greet(addr: &str) -> (TcpStream, HelloReply) {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let body = encode(&Hello::new(PeerKind::Client, 1 << 20)).expect("encode");
        for f in frame::split(FrameKind::Hello, 0, &body, 1 << 20) {
            s.write_all(&(f.len() as u32).to_be_bytes())
                .await
                .expect("write");
            s.write_all(&f).await.expect("write");
        }
        let len = s.read_u32().await.expect("reply length");
        let mut raw = vec![0u8; len as usize];
        s.read_exact(&mut raw).await.expect("reply");
        let f = frame::parse(raw.into()).expect("frame");
        (s, decode(&f.payload).expect("a greeting reply"))
    }

    /// Whether the server closes `s` within `limit`.
    async fn closed(s: &mut TcpStream, limit: Duration) -> bool {
        let mut buf = [0u8; 256];
        tokio::time::timeout(limit, async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok()
    }

    #[tokio::test]
    async fn a_peer_that_does_not_log_in_in_time_is_closed() {
        let (addr, _stop) = start(ServerLimits {
            login_timeout: Duration::from_millis(300),
            ..LIMITS
        })
        .await;
        let (mut idle, reply) = greet(&addr).await;
        assert!(reply.outcome.is_ok());
        let busy = client(&addr, 1 << 20).await;
        let member = client(&addr, 1 << 20).await;
        login(&member).await;
        // A peer busy with requests but never logging in is closed all the same.
        let start = tokio::time::Instant::now();
        let mut last = Ok(0);
        while start.elapsed() < Duration::from_secs(3) && last.is_ok() {
            last = run(&busy, 10).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(matches!(last, Err(RpcError::Closed { .. })), "{last:?}");
        assert!(closed(&mut idle, Duration::from_secs(1)).await);
        // The one that logged in stays.
        assert_eq!(run(&member, 10).await, Ok(10));
    }

    #[tokio::test]
    async fn a_connection_beyond_the_cap_is_refused_with_a_reason() {
        let (addr, _stop) = start(ServerLimits {
            max_connections: 2,
            ..LIMITS
        })
        .await;
        let (first, _) = greet(&addr).await;
        let (_second, _) = greet(&addr).await;
        let (mut third, reply) = greet(&addr).await;
        assert_eq!(
            reply.outcome,
            Err("too many connections: this node takes at most 2 (maxConnections)".into())
        );
        assert!(closed(&mut third, Duration::from_secs(1)).await);
        let refused = RpcClient::connect(
            &addr,
            PeerKind::Client,
            &ClientTls::plain(),
            1 << 20,
            Duration::from_secs(5),
        )
        .await
        .err();
        assert!(
            matches!(&refused, Some(RpcError::Refused { reason, .. }) if reason.contains("maxConnections")),
            "{refused:?}"
        );
        // One closes: a new one is taken (once the server has seen the close).
        drop(first);
        let start = tokio::time::Instant::now();
        loop {
            let (_s, reply) = greet(&addr).await;
            if reply.outcome.is_ok() {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(3), "{reply:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn dropping_the_last_handle_of_a_client_closes_its_connection() {
        let (addr, _stop) = start(ServerLimits {
            max_connections: 1,
            ..LIMITS
        })
        .await;
        let c = client(&addr, 1 << 20).await;
        let copy = c.clone();
        drop(c);
        assert_eq!(run(&copy, 3).await, Ok(3), "a copy keeps it open");
        drop(copy);
        let start = tokio::time::Instant::now();
        loop {
            let (_s, reply) = greet(&addr).await;
            if reply.outcome.is_ok() {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(3),
                "the dropped client still holds its connection: {reply:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
