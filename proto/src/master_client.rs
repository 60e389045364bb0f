//! How a slave cluster talks to its master: log in to the master controller (as a master
//! administrator or a user holding `CLUSTER_REPLICATION`), register, pull tasks (long poll)
//! while reporting finished ones, and fetch a task's data from the master data node named in
//! it, piece by piece, with the fetch ticket of the latest pull.
//!
//! ```no_run
//! # async fn demo() -> Result<(), xrepl_proto::client::ClientError> {
//! use xrepl_proto::master_client::MasterClient;
//! use xrepl_proto::rpc::ClientTls;
//! let m = MasterClient::connect("127.0.0.1:8848", "admin", "123456", "127.0.0.1:9848", &ClientTls::plain()).await?;
//! m.register().await?;
//! let (tasks, _small_data) = m.pull(0, &[], 1000, 1000, 0).await?;
//! for t in &tasks {
//!     let data = m.fetch_task_data(t).await?;
//! }
//! # Ok(()) }
//! ```

use std::time::Duration;

use crate::client::ClientError;
use crate::rpc::{
    ClientTls, MasterPosition, PeerKind, ReplicationReply, ReplicationRequest, RpcClient, TaskRef,
    FETCH_TASKS_MAX,
};
use crate::task::{InlineData, TaskData, TaskInfo};
use crate::ticket::FetchTicket;
use xrepl_core::config::defaults;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A pull may wait this long on the master, plus this margin for the answer.
const PULL_MARGIN: Duration = Duration::from_secs(10);
/// Time limit of one piece of task data.
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// A logged-in connection from a slave cluster to a master controller.
pub struct MasterClient {
    rpc: RpcClient,
    token: String,
    /// Past this (ms since the epoch; half the token's life) the client counts as closed, so
    /// that its owner connects and logs in again before the token expires.
    renew_after_ms: i64,
    /// The fetch ticket of the latest pull answer.
    ticket: std::sync::Mutex<Option<FetchTicket>>,
    /// The master's bootstraps as of the latest pull answer.
    bootstraps: std::sync::Mutex<Vec<crate::task::BootstrapProgress>>,
    /// This slave cluster's name on the master: its controller's `host:port`.
    slave: String,
    /// Connections to master data nodes for task data.
    data_nodes: TaskDataFetcher,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn unexpected(r: ReplicationReply) -> ClientError {
    ClientError::Unexpected(format!("{r:?}"))
}

impl MasterClient {
    /// Connects to the master controller `master` (over TLS if `tls` says so) and logs in;
    /// the master's data nodes are reached the same way.
    pub async fn connect(
        master: &str,
        user: &str,
        password: &str,
        slave: &str,
        tls: &ClientTls,
    ) -> Result<MasterClient, ClientError> {
        let rpc = RpcClient::connect(
            master,
            PeerKind::Slave,
            tls,
            defaults::MAX_FRAME_SIZE as usize,
            CONNECT_TIMEOUT,
        )
        .await?;
        let reply = rpc
            .call(ReplicationRequest::Login {
                user: user.to_string(),
                password: password.to_string(),
            })
            .await??;
        let ReplicationReply::LoggedIn {
            token, expires_ms, ..
        } = reply
        else {
            return Err(unexpected(reply));
        };
        let now = now_ms();
        Ok(MasterClient {
            rpc,
            token,
            renew_after_ms: now + (expires_ms - now) / 2,
            ticket: std::sync::Mutex::new(None),
            bootstraps: std::sync::Mutex::new(Vec::new()),
            slave: slave.to_string(),
            data_nodes: TaskDataFetcher::new(tls.clone()),
        })
    }

    /// Whether the connection is open and its session far from expiring.
    pub fn is_open(&self) -> bool {
        self.rpc.is_open() && now_ms() < self.renew_after_ms
    }

    /// The fetch ticket of the latest pull (`None` before the first): what this slave's data
    /// nodes show the master's data nodes to read task data and checksums.
    pub fn ticket(&self) -> Option<FetchTicket> {
        self.ticket
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn current_ticket(&self) -> Result<FetchTicket, ClientError> {
        self.ticket().ok_or_else(|| {
            ClientError::Unexpected("no fetch ticket yet: the slave has not pulled".into())
        })
    }

    /// Registers this slave cluster (again, harmlessly, if it is registered).
    /// Asks the master to send `table` of `db` (`None`: all of `db`) afresh to this slave:
    /// the re-sync job's id.
    pub async fn resync(&self, db: &str, table: Option<&str>) -> Result<u64, ClientError> {
        match self
            .rpc
            .call(ReplicationRequest::Resync {
                token: self.token.clone(),
                slave: self.slave.clone(),
                db: db.to_string(),
                table: table.map(str::to_string),
            })
            .await??
        {
            ReplicationReply::Resync { job } => Ok(job),
            other => Err(unexpected(other)),
        }
    }

    pub async fn register(&self) -> Result<(), ClientError> {
        match self
            .rpc
            .call(ReplicationRequest::Register {
                token: self.token.clone(),
                slave: self.slave.clone(),
            })
            .await??
        {
            ReplicationReply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Reports `finished` and returns up to `max` tasks after `after`, waiting up to
    /// `wait_ms` on the master when there are none, with the data of small ones (at most
    /// `inline_room` bytes of it).
    pub async fn pull(
        &self,
        after: u64,
        finished: &[u64],
        max: u32,
        wait_ms: u32,
        inline_room: u64,
    ) -> Result<(Vec<TaskInfo>, Vec<InlineData>, MasterPosition), ClientError> {
        let req = ReplicationRequest::Pull {
            token: self.token.clone(),
            slave: self.slave.clone(),
            after,
            finished: finished.to_vec(),
            max,
            wait_ms,
            inline_room,
        };
        let limit = Duration::from_millis(wait_ms.into()) + PULL_MARGIN;
        match self.rpc.call_timeout(req, limit).await?? {
            ReplicationReply::Tasks {
                tasks,
                data,
                ticket,
                bootstraps,
                position,
            } => {
                *self.ticket.lock().unwrap_or_else(|p| p.into_inner()) = Some(ticket);
                *self.bootstraps.lock().unwrap_or_else(|p| p.into_inner()) = bootstraps;
                Ok((tasks, data, position))
            }
            other => Err(unexpected(other)),
        }
    }

    /// Where the master's send queue is after task `after`, without pulling.
    pub async fn position(&self, after: u64) -> Result<MasterPosition, ClientError> {
        let req = ReplicationRequest::Position {
            token: self.token.clone(),
            slave: self.slave.clone(),
            after,
        };
        match self.rpc.call(req).await?? {
            ReplicationReply::Position(p) => Ok(p),
            other => Err(unexpected(other)),
        }
    }

    /// The master's bootstraps as of the latest pull answer.
    pub fn bootstraps(&self) -> Vec<crate::task::BootstrapProgress> {
        self.bootstraps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Asks the master for a fresh fetch ticket (when not pulling), and keeps it.
    pub async fn refresh_ticket(&self) -> Result<FetchTicket, ClientError> {
        match self
            .rpc
            .call(ReplicationRequest::Ticket {
                token: self.token.clone(),
                slave: self.slave.clone(),
            })
            .await??
        {
            ReplicationReply::Ticket(t) => {
                *self.ticket.lock().unwrap_or_else(|p| p.into_inner()) = Some(t.clone());
                Ok(t)
            }
            other => Err(unexpected(other)),
        }
    }

    /// The encoded task data of `task`, fetched from its source data node piece by piece
    /// (over one kept connection per data node).
    pub async fn fetch_task_bytes(&self, task: &TaskInfo) -> Result<Vec<u8>, ClientError> {
        self.data_nodes.fetch(&self.current_ticket()?, task).await
    }

    /// The task data of `task`, decoded.
    pub async fn fetch_task_data(&self, task: &TaskInfo) -> Result<TaskData, ClientError> {
        let bytes = self.fetch_task_bytes(task).await?;
        decode_task_data(task, &bytes)
    }
}

/// Decodes fetched task data; a clear error names the task when it cannot be decoded.
pub fn decode_task_data(task: &TaskInfo, bytes: &[u8]) -> Result<TaskData, ClientError> {
    crate::rpc::decode(bytes).map_err(|e| {
        ClientError::Unexpected(format!(
            "the task data of task {} (transaction {}) from {}:{} cannot be decoded: {e}",
            task.task_id, task.tid, task.src_host, task.src_port
        ))
    })
}

/// Fetches task data from master data nodes over kept connections (one per data node, made
/// when first needed, made again when closed).
pub struct TaskDataFetcher {
    conns: std::sync::Mutex<std::collections::HashMap<String, RpcClient>>,
    tls: ClientTls,
}

impl TaskDataFetcher {
    /// Connections made in plain text or over TLS, as `tls` says.
    pub fn new(tls: ClientTls) -> TaskDataFetcher {
        TaskDataFetcher {
            conns: Default::default(),
            tls,
        }
    }

    /// The kept connection to `site`, made (again) when there is none or it closed.
    async fn connection(&self, site: String) -> Result<RpcClient, ClientError> {
        let kept = self
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&site)
            .filter(|c| c.is_open())
            .cloned();
        match kept {
            Some(c) => Ok(c),
            None => {
                let c = connect_data_node(&site, &self.tls).await?;
                self.conns
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(site, c.clone());
                Ok(c)
            }
        }
    }

    /// The encoded task data of `task`, with a fetch ticket that covers it.
    pub async fn fetch(
        &self,
        ticket: &FetchTicket,
        task: &TaskInfo,
    ) -> Result<Vec<u8>, ClientError> {
        let site = format!("{}:{}", task.src_host, task.src_port);
        check_source(ticket, task, &site)?;
        let rpc = self.connection(site).await?;
        fetch_over(&rpc, ticket, task).await
    }

    /// The encoded data of `tasks`, which must all name the same source data node, in order:
    /// one `FetchTasksData` request for as many as fit in an answer, `FetchTaskData` for the
    /// rest of a large one. The outer error is the connection's; an inner one is that task's.
    pub async fn fetch_many(
        &self,
        ticket: &FetchTicket,
        tasks: &[TaskInfo],
    ) -> Result<Vec<Result<Vec<u8>, ClientError>>, ClientError> {
        let Some(first) = tasks.first() else {
            return Ok(Vec::new());
        };
        let site = format!("{}:{}", first.src_host, first.src_port);
        check_source(ticket, first, &site)?;
        if let Some(other) = tasks.iter().find(|t| {
            (t.src_host.as_str(), t.src_port) != (first.src_host.as_str(), first.src_port)
        }) {
            return Err(ClientError::Unexpected(format!(
                "tasks {} and {} come from different data nodes",
                first.task_id, other.task_id
            )));
        }
        let rpc = self.connection(site).await?;
        let mut out = Vec::with_capacity(tasks.len());
        while out.len() < tasks.len() {
            let ask: Vec<TaskRef> = tasks[out.len()..]
                .iter()
                .take(FETCH_TASKS_MAX)
                .map(|t| TaskRef {
                    task_id: t.task_id,
                    tid: t.tid,
                })
                .collect();
            let req = ReplicationRequest::FetchTasksData {
                ticket: ticket.clone(),
                tasks: ask,
            };
            let pieces = match rpc.call_timeout(req, FETCH_TIMEOUT).await?? {
                ReplicationReply::TasksData(p) if !p.is_empty() => p,
                other => return Err(unexpected(other)),
            };
            for piece in pieces {
                let Some(task) = tasks.get(out.len()) else {
                    return Err(ClientError::Unexpected(format!(
                        "task data of more tasks than asked for from {}",
                        rpc.addr()
                    )));
                };
                if piece.task_id != task.task_id {
                    return Err(ClientError::Unexpected(format!(
                        "task data of task {} came where task {} was expected, from {}",
                        piece.task_id,
                        task.task_id,
                        rpc.addr()
                    )));
                }
                out.push(match piece.error {
                    Some(e) => Err(ClientError::Remote(e)),
                    None if (piece.bytes.len() as u64) < piece.total => {
                        fetch_rest(&rpc, ticket, task, piece.bytes, piece.total).await
                    }
                    None => Ok(piece.bytes),
                });
            }
        }
        Ok(out)
    }
}

/// Refuses to fetch `task`'s data from `site` unless the master lists it as one of its data
/// nodes in the ticket.
fn check_source(ticket: &FetchTicket, task: &TaskInfo, site: &str) -> Result<(), ClientError> {
    if ticket.lists(site) {
        return Ok(());
    }
    Err(ClientError::Unexpected(format!(
        "task {} says its data is on {site}, which the master does not list as one of its data nodes ({}); it is not fetched from there",
        task.task_id,
        ticket.sources.join(", ")
    )))
}

async fn connect_data_node(site: &str, tls: &ClientTls) -> Result<RpcClient, ClientError> {
    Ok(RpcClient::connect(
        site,
        PeerKind::Slave,
        tls,
        defaults::MAX_FRAME_SIZE as usize,
        CONNECT_TIMEOUT,
    )
    .await?)
}

/// Fetches a task's encoded data from its source data node with a fetch ticket, over a new
/// connection.
pub async fn fetch_task_bytes(
    ticket: &FetchTicket,
    task: &TaskInfo,
    tls: &ClientTls,
) -> Result<Vec<u8>, ClientError> {
    let site = format!("{}:{}", task.src_host, task.src_port);
    check_source(ticket, task, &site)?;
    let rpc = connect_data_node(&site, tls).await?;
    fetch_over(&rpc, ticket, task).await
}

async fn fetch_over(
    rpc: &RpcClient,
    ticket: &FetchTicket,
    task: &TaskInfo,
) -> Result<Vec<u8>, ClientError> {
    fetch_rest(rpc, ticket, task, Vec::new(), 0).await
}

/// The piece size a master data node answers with (its `PIECE`): the offsets asked for ahead.
/// A node answering with other sizes is still read whole, one piece at a time.
const PIECE_BYTES: u64 = 4 << 20;
/// Pieces of one task asked for at once, so that the master reads and sends the next while
/// this side takes in the last.
const PIECES_AHEAD: usize = 4;

/// Fetches `task`'s data from `out.len()` on (`total` bytes in all, if known) into `out`: the
/// rest of the pieces [`PIECES_AHEAD`] at a time, in order.
async fn fetch_rest(
    rpc: &RpcClient,
    ticket: &FetchTicket,
    task: &TaskInfo,
    mut out: Vec<u8>,
    mut total: u64,
) -> Result<Vec<u8>, ClientError> {
    use futures::StreamExt;
    let site = rpc.addr().to_string();
    let piece = |offset: u64| {
        let req = ReplicationRequest::FetchTaskData {
            ticket: ticket.clone(),
            task_id: task.task_id,
            tid: task.tid,
            offset,
        };
        async move {
            match rpc.call_timeout(req, FETCH_TIMEOUT).await?? {
                ReplicationReply::TaskData {
                    total,
                    offset,
                    bytes,
                } => Ok((total, offset, bytes)),
                other => Err(unexpected(other)),
            }
        }
    };
    // Appends a piece that must start at `out.len()`; answers whether it had the size asked.
    let take = |out: &mut Vec<u8>, total: u64, offset: u64, bytes: Vec<u8>| {
        if offset != out.len() as u64 || (bytes.is_empty() && offset < total) {
            return Err(ClientError::Unexpected(format!(
                "task {}: a piece of task data from {site} came at offset {offset}, expected {}",
                task.task_id,
                out.len()
            )));
        }
        let whole = bytes.len() as u64 == PIECE_BYTES.min(total - offset.min(total));
        out.extend_from_slice(&bytes);
        Ok(whole)
    };
    if total == 0 {
        // The first piece says how much there is.
        let (t, offset, bytes) = piece(out.len() as u64).await?;
        total = t;
        out.reserve(usize::try_from(total).unwrap_or(0).min(1 << 30));
        take(&mut out, total, offset, bytes)?;
    } else {
        out.reserve(
            usize::try_from(total)
                .unwrap_or(0)
                .min(1 << 30)
                .saturating_sub(out.len()),
        );
    }
    while (out.len() as u64) < total {
        let from = out.len() as u64;
        let offsets: Vec<u64> = (from..total).step_by(PIECE_BYTES as usize).collect();
        let mut pieces = futures::stream::iter(offsets)
            .map(piece)
            .buffered(PIECES_AHEAD);
        while let Some(p) = pieces.next().await {
            let (t, offset, bytes) = p?;
            if t != total {
                return Err(ClientError::Unexpected(format!(
                    "task {}: its task data from {site} changed size from {total} to {t} bytes",
                    task.task_id
                )));
            }
            // A piece of another size: the offsets asked for ahead are wrong; ask again from
            // where this one ends.
            if !take(&mut out, total, offset, bytes)? {
                break;
            }
        }
    }
    Ok(out)
}
