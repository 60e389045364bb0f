//! A client connection that carries many concurrent calls, matched to answers by request id.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::Framed;

use super::error::RemoteError;
use super::frame::{self, Assembler, FrameKind, MAX_MESSAGE_SIZE};
use super::message::{decode, encode, Family, Hello, HelloReply, MemberProof, Request, ServerInfo};
use super::tls::{BoxedIo, ClientTls};
use xrepl_core::cluster_key::{ClusterKey, Side};

/// Frames waiting to be written on one client connection.
const WRITE_QUEUE: usize = 256;

/// Why a call did not get an answer. (An answer that is an error is a [`RemoteError`].)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("{addr} refused the connection: {reason}")]
    Refused { addr: String, reason: String },
    #[error("the connection to {addr} is closed")]
    Closed { addr: String },
    #[error("no answer from {addr} within {secs} s")]
    Timeout { addr: String, secs: u64 },
    #[error("bad data from {addr}: {reason}")]
    Protocol { addr: String, reason: String },
    #[error("cannot encode the request: {0}")]
    Encode(String),
    /// The peer does not prove the cluster key we hold (or we cannot prove ours to it): the two
    /// hold different key files. Trying again does not help.
    #[error("{addr} is not a member of this cluster: {reason}")]
    NotAMember { addr: String, reason: String },
    /// TLS could not be set up: the server speaks plain text, or its certificate does not
    /// verify against our CA for the host we dialled.
    #[error("{addr}: {reason}")]
    Tls { addr: String, reason: String },
}

struct Inner {
    addr: String,
    /// Largest frame we send: the smaller of our limit and the server's.
    max_frame: usize,
    next_id: AtomicU64,
    /// Calls waiting for their answer's body, decoded by the caller into its family's reply.
    pending: DashMap<u64, oneshot::Sender<Bytes>>,
    out: mpsc::Sender<Bytes>,
    closed: AtomicBool,
}

/// A cheap-to-clone handle on one connection. The connection closes when the last handle is
/// dropped.
#[derive(Clone)]
pub struct RpcClient {
    inner: Arc<Inner>,
    server: ServerInfo,
    /// Dropped with the last handle: the reader then stops, and with it the writer and the
    /// connection. (The reader holds `inner`, so without it a dropped client's connection
    /// stayed open until the server closed it, and took one of the server's
    /// `maxConnections`.)
    _hangup: Arc<oneshot::Sender<()>>,
}

impl RpcClient {
    /// Connects (over TLS if `tls` says so), greets and checks the server's protocol version.
    pub async fn connect(
        addr: &str,
        peer: super::message::PeerKind,
        tls: &ClientTls,
        max_frame: usize,
        timeout: Duration,
    ) -> Result<RpcClient, RpcError> {
        RpcClient::open(addr, peer, None, tls, max_frame, timeout).await
    }

    /// Connects to a node of our own cluster as a data node: both ends prove that they hold
    /// the cluster key (challenge and answer, both ways) before any request.
    pub async fn connect_member(
        addr: &str,
        key: &ClusterKey,
        tls: &ClientTls,
        max_frame: usize,
        timeout: Duration,
    ) -> Result<RpcClient, RpcError> {
        RpcClient::open(
            addr,
            super::message::PeerKind::DataNode,
            Some(key),
            tls,
            max_frame,
            timeout,
        )
        .await
    }

    async fn open(
        addr: &str,
        peer: super::message::PeerKind,
        key: Option<&ClusterKey>,
        tls: &ClientTls,
        max_frame: usize,
        timeout: Duration,
    ) -> Result<RpcClient, RpcError> {
        let connect_err = |reason: String| RpcError::Connect {
            addr: addr.to_string(),
            reason,
        };
        let socket = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| connect_err(format!("no answer within {} ms", timeout.as_millis())))?
            .map_err(|e| connect_err(e.to_string()))?;
        let _ = socket.set_nodelay(true);
        let stream = tokio::time::timeout(timeout, tls.wrap(addr, socket))
            .await
            .map_err(|_| RpcError::Tls {
                addr: addr.to_string(),
                reason: format!("no TLS handshake within {} ms", timeout.as_millis()),
            })?
            .map_err(|reason| RpcError::Tls {
                addr: addr.to_string(),
                reason,
            })?;
        let mut framed = Framed::new(stream, frame::codec(max_frame));
        let protocol = |reason: String| RpcError::Protocol {
            addr: addr.to_string(),
            reason,
        };
        let challenge = key.map(|_| ClusterKey::challenge());
        let hello = match &challenge {
            Some(c) => Hello::member(max_frame, c.clone()),
            None => Hello::new(peer, max_frame),
        };
        let body = encode(&hello).map_err(|e| RpcError::Encode(e.to_string()))?;
        for f in frame::split(FrameKind::Hello, 0, &body, max_frame) {
            framed
                .send(f)
                .await
                .map_err(|e| connect_err(e.to_string()))?;
        }
        let mut asm = Assembler::new(MAX_MESSAGE_SIZE);
        let reply = tokio::time::timeout(timeout, async {
            loop {
                let raw = match framed.next().await {
                    None => {
                        return Err(RpcError::Closed {
                            addr: addr.to_string(),
                        })
                    }
                    Some(Err(e)) => return Err(protocol(e.to_string())),
                    Some(Ok(raw)) => raw,
                };
                let f = frame::parse(raw.freeze()).map_err(|e| protocol(e.to_string()))?;
                if let Some((kind, _, body)) = asm.push(f).map_err(|e| protocol(e.to_string()))? {
                    if kind != FrameKind::HelloReply {
                        return Err(protocol(format!("expected a greeting reply, got {kind:?}")));
                    }
                    return decode::<HelloReply>(&body).map_err(|e| protocol(e.to_string()));
                }
            }
        })
        .await
        .map_err(|_| RpcError::Timeout {
            addr: addr.to_string(),
            secs: timeout.as_secs(),
        })??;
        let server = reply.outcome.map_err(|reason| RpcError::Refused {
            addr: addr.to_string(),
            reason,
        })?;
        if let (Some(key), Some(ours)) = (key, &challenge) {
            let not_member = |reason: &str| RpcError::NotAMember {
                addr: addr.to_string(),
                reason: reason.to_string(),
            };
            let theirs = server
                .challenge
                .as_ref()
                .ok_or_else(|| not_member("it sent no challenge"))?;
            let proof = server
                .proof
                .as_ref()
                .ok_or_else(|| not_member("it sent no proof of the cluster key"))?;
            if !key.verify(Side::Server, ours, theirs, proof) {
                return Err(not_member(
                    "its proof of the cluster key is wrong: the two nodes hold different key files (clusterKeyFile)",
                ));
            }
            let answer = MemberProof {
                proof: serde_bytes::ByteBuf::from(key.proof(Side::Client, ours, theirs)),
            };
            let body = encode(&answer).map_err(|e| RpcError::Encode(e.to_string()))?;
            for f in frame::split(FrameKind::Proof, 0, &body, max_frame) {
                framed
                    .send(f)
                    .await
                    .map_err(|e| connect_err(e.to_string()))?;
            }
        }

        let (sink, stream) = framed.split();
        let (out, out_rx) = mpsc::channel(WRITE_QUEUE);
        let inner = Arc::new(Inner {
            addr: addr.to_string(),
            max_frame: super::message::send_limit(max_frame, server.max_frame),
            next_id: AtomicU64::new(1),
            pending: DashMap::new(),
            out,
            closed: AtomicBool::new(false),
        });
        let (hangup, hung_up) = oneshot::channel();
        tokio::spawn(write_loop(sink, out_rx));
        tokio::spawn(read_loop(stream, asm, inner.clone(), hung_up));
        Ok(RpcClient {
            inner,
            server,
            _hangup: Arc::new(hangup),
        })
    }

    /// Who answered the greeting.
    pub fn server(&self) -> &ServerInfo {
        &self.server
    }

    pub fn addr(&self) -> &str {
        &self.inner.addr
    }

    /// False once the connection has failed; make a new client then.
    pub fn is_open(&self) -> bool {
        !self.inner.closed.load(Ordering::Acquire)
    }

    /// Sends a request and waits for its answer (no time limit: see [`Self::call_timeout`]).
    /// The answer has the request family's reply type.
    pub async fn call<F: Family>(&self, req: F) -> Result<Result<F::Reply, RemoteError>, RpcError> {
        let (id, body) = self.send(req.into()).await?;
        decode::<Result<F::Reply, RemoteError>>(&body).map_err(|e| RpcError::Protocol {
            addr: self.inner.addr.clone(),
            reason: format!("malformed answer {id}: {e}"),
        })
    }

    /// [`Self::call`] with a time limit; a late answer is dropped.
    pub async fn call_timeout<F: Family>(
        &self,
        req: F,
        limit: Duration,
    ) -> Result<Result<F::Reply, RemoteError>, RpcError> {
        tokio::time::timeout(limit, self.call(req))
            .await
            .unwrap_or_else(|_| {
                Err(RpcError::Timeout {
                    addr: self.inner.addr.clone(),
                    secs: limit.as_secs(),
                })
            })
    }

    /// Sends any request and returns the answer's body undecoded (for tests that send a
    /// request on a connection where it does not belong).
    pub async fn call_raw(&self, req: &Request) -> Result<Bytes, RpcError> {
        self.send(req.clone()).await.map(|(_, body)| body)
    }

    /// Sends a request; answers its id and the answer's body. The request is dropped once
    /// encoded and the encoding once sent, so that a large one (a bulk prepare) is not held
    /// in memory three times while its answer is awaited.
    async fn send(&self, req: Request) -> Result<(u64, Bytes), RpcError> {
        let closed = || RpcError::Closed {
            addr: self.inner.addr.clone(),
        };
        if !self.is_open() {
            return Err(closed());
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let frames = frame::encode_frames(FrameKind::Request, id, &req, self.inner.max_frame)
            .map_err(|e| RpcError::Encode(e.to_string()))?;
        drop(req);
        let (tx, rx) = oneshot::channel();
        self.inner.pending.insert(id, tx);
        // If the reader died between the check above and the insert, nobody will answer.
        if !self.is_open() {
            self.inner.pending.remove(&id);
            return Err(closed());
        }
        for f in frames {
            if self.inner.out.send(f).await.is_err() {
                self.inner.pending.remove(&id);
                return Err(closed());
            }
        }
        rx.await.map(|body| (id, body)).map_err(|_| closed())
    }
}

async fn write_loop(
    mut sink: futures::stream::SplitSink<
        Framed<BoxedIo, tokio_util::codec::LengthDelimitedCodec>,
        Bytes,
    >,
    mut rx: mpsc::Receiver<Bytes>,
) {
    while let Some(f) = rx.recv().await {
        if sink.send(f).await.is_err() {
            break;
        }
    }
}

async fn read_loop(
    mut stream: futures::stream::SplitStream<
        Framed<BoxedIo, tokio_util::codec::LengthDelimitedCodec>,
    >,
    mut asm: Assembler,
    inner: Arc<Inner>,
    mut hung_up: oneshot::Receiver<()>,
) {
    let reason = loop {
        let next = tokio::select! {
            // Every handle is gone: nobody waits for an answer any more.
            _ = &mut hung_up => break None,
            next = stream.next() => next,
        };
        let raw = match next {
            None => break None,
            Some(Err(e)) => break Some(e.to_string()),
            Some(Ok(raw)) => raw,
        };
        let (kind, id, body) = match frame::parse(raw.freeze()).and_then(|f| asm.push(f)) {
            Ok(Some(m)) => m,
            Ok(None) => continue,
            Err(e) => break Some(e.to_string()),
        };
        if kind != FrameKind::Response {
            break Some(format!("unexpected {kind:?} frame from the server"));
        }
        if let Some((_, tx)) = inner.pending.remove(&id) {
            let _ = tx.send(body);
        }
    };
    if let Some(reason) = reason {
        tracing::warn!(addr = %inner.addr, "closing connection: {reason}");
    }
    inner.closed.store(true, Ordering::Release);
    // Fail every call still waiting; their senders drop here.
    inner.pending.clear();
}
