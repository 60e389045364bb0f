//! A master data node serving slave clusters: pieces of the task data it holds, and the
//! master's side of a consistency check. Every request carries a fetch ticket that the master
//! controller signed with the cluster key; this node checks it without asking anyone.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use xrepl_core::cluster_key::ClusterKey;
use xrepl_proto::rpc::{
    ErrorCode, RemoteError, ReplicationReply, ReplicationRequest, TaskPiece, TaskRef,
    FETCH_TASKS_MAX, FETCH_TASKS_REPLY_BYTES,
};
use xrepl_proto::ticket::FetchTicket;

use super::consistency::{table_sums, Reader};
use super::taskstore::TaskStore;
use crate::error::refusal;
use crate::link::ControllerLink;
use crate::txn::coordinator::Coordinator;

/// A master data node's replication: the task data it holds and whom it serves.
pub struct MasterNode {
    alias: String,
    /// `host:port` of this node, for messages.
    site: (String, u16),
    link: Arc<ControllerLink>,
    pub(super) tasks: Arc<TaskStore>,
    coordinator: Arc<Coordinator>,
    /// The cluster key, which signs the fetch tickets.
    key: ClusterKey,
    /// Where the next task data sweep starts (it walks the held tids in pages and wraps).
    pub(super) sweep_from: AtomicU64,
    /// The `host:port` tasks name as where their data is (`clusterReplicationPublicAddress`,
    /// else the node's own).
    source: (String, u16),
}

impl MasterNode {
    pub fn new(
        alias: &str,
        site: (String, u16),
        link: Arc<ControllerLink>,
        tasks: Arc<TaskStore>,
        coordinator: Arc<Coordinator>,
        key: ClusterKey,
        source: (String, u16),
    ) -> MasterNode {
        MasterNode {
            alias: alias.to_string(),
            source,
            site,
            link,
            tasks,
            coordinator,
            key,
            sweep_from: AtomicU64::new(0),
        }
    }

    pub(super) fn error(&self, code: ErrorCode, message: impl Into<String>) -> RemoteError {
        refusal(&self.alias, code, message)
    }

    pub(super) fn alias(&self) -> &str {
        &self.alias
    }

    pub(super) fn source(&self) -> (&str, u16) {
        (&self.source.0, self.source.1)
    }

    pub(super) fn coordinator(&self) -> &Coordinator {
        &self.coordinator
    }

    pub(super) fn link(&self) -> &ControllerLink {
        &self.link
    }

    /// Checks a slave's fetch ticket, and that it covers `tasks` (when given); a refusal is
    /// logged.
    fn check_ticket(&self, ticket: &FetchTicket, tasks: &[u64]) -> Result<(), RemoteError> {
        let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
        let checked = match tasks.iter().max() {
            Some(&last) => ticket.check_task(&self.key, now_ms, last),
            None => ticket.check(&self.key, now_ms),
        };
        checked.map_err(|m| {
            tracing::warn!(slave = %ticket.slave, "task data request refused: {m}");
            self.error(ErrorCode::AccessDenied, m)
        })
    }

    /// Whether `req` carries a fetch ticket this master signed that has not expired (whether
    /// it covers what is asked is checked when the request is served). Such a request vouches
    /// for its connection, which never logs in.
    pub fn vouches(&self, req: &ReplicationRequest) -> bool {
        let ticket = match req {
            ReplicationRequest::FetchTaskData { ticket, .. }
            | ReplicationRequest::FetchTasksData { ticket, .. }
            | ReplicationRequest::Checksums { ticket, .. } => ticket,
            // Not served here (see `serve`).
            ReplicationRequest::Login { .. }
            | ReplicationRequest::Register { .. }
            | ReplicationRequest::Pull { .. }
            | ReplicationRequest::Ticket { .. }
            | ReplicationRequest::Resync { .. }
            | ReplicationRequest::Position { .. }
            | ReplicationRequest::DataNodes { .. } => return false,
        };
        let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
        ticket.check(&self.key, now_ms).is_ok()
    }

    /// The starts of `tasks`' data, in order, until the answer holds
    /// [`FETCH_TASKS_REPLY_BYTES`] (at least one task). A task whose data is not here gets its
    /// `Missing taskData` error in its place.
    async fn tasks_data(&self, tasks: Vec<TaskRef>) -> Result<Vec<TaskPiece>, RemoteError> {
        if tasks.is_empty() || tasks.len() > FETCH_TASKS_MAX {
            return Err(self.error(
                ErrorCode::BadRequest,
                format!(
                    "FetchTasksData asks for {} tasks; 1 to {FETCH_TASKS_MAX} a request",
                    tasks.len()
                ),
            ));
        }
        let store = self.tasks.clone();
        let (alias, site) = (self.alias.clone(), self.site.clone());
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::with_capacity(tasks.len());
            let mut bytes = 0usize;
            for t in tasks {
                let piece = match store.read(t.tid, 0) {
                    Ok(Some((total, _, data))) => TaskPiece {
                        task_id: t.task_id,
                        total,
                        bytes: data,
                        error: None,
                    },
                    Ok(None) => TaskPiece {
                        task_id: t.task_id,
                        total: 0,
                        bytes: Vec::new(),
                        error: Some(refusal(
                            &alias,
                            ErrorCode::NotFound,
                            format!(
                                "Missing taskData: the data of task {} (transaction {}) is not on data node {alias} ({}:{})",
                                t.task_id, t.tid, site.0, site.1
                            ),
                        )),
                    },
                    Err(e) => TaskPiece {
                        task_id: t.task_id,
                        total: 0,
                        bytes: Vec::new(),
                        error: Some(refusal(
                            &alias,
                            ErrorCode::Internal,
                            format!(
                                "the data of task {} (transaction {}) on data node {alias} cannot be read: {e}",
                                t.task_id, t.tid
                            ),
                        )),
                    },
                };
                bytes += piece.bytes.len();
                out.push(piece);
                if bytes >= FETCH_TASKS_REPLY_BYTES {
                    break;
                }
            }
            out
        })
        .await
        .map_err(|e| self.error(ErrorCode::Internal, e.to_string()))
    }

    /// Answers a slave cluster's request: a piece of a task's data, or checksums.
    pub async fn serve(&self, req: ReplicationRequest) -> Result<ReplicationReply, RemoteError> {
        let (task_id, tid, offset) = match req {
            ReplicationRequest::FetchTaskData {
                ticket,
                task_id,
                tid,
                offset,
            } => {
                self.check_ticket(&ticket, &[task_id])?;
                (task_id, tid, offset)
            }
            ReplicationRequest::FetchTasksData { ticket, tasks } => {
                let ids: Vec<u64> = tasks.iter().map(|t| t.task_id).collect();
                self.check_ticket(&ticket, &ids)?;
                return self.tasks_data(tasks).await.map(ReplicationReply::TasksData);
            }
            ReplicationRequest::Checksums { ticket, db, table } => {
                self.check_ticket(&ticket, &[])?;
                return Ok(ReplicationReply::Checksums(
                    table_sums(&self.coordinator, Reader::Replica, &db, table.as_deref()).await?,
                ));
            }
            ReplicationRequest::Login { .. }
            | ReplicationRequest::Register { .. }
            | ReplicationRequest::Pull { .. }
            | ReplicationRequest::Ticket { .. }
            | ReplicationRequest::Resync { .. }
            | ReplicationRequest::Position { .. }
            | ReplicationRequest::DataNodes { .. } => {
                return Err(self.error(
                    ErrorCode::BadRequest,
                    "a data node serves task data and checksums only; send the other replication requests to the master controller",
                ))
            }
        };
        let missing = || {
            self.error(
                ErrorCode::NotFound,
                format!(
                    "Missing taskData: the data of task {task_id} (transaction {tid}) is not on data node {} ({}:{})",
                    self.alias, self.site.0, self.site.1
                ),
            )
        };
        let store = self.tasks.clone();
        match tokio::task::spawn_blocking(move || store.read(tid, offset)).await {
            Ok(Ok(Some((total, offset, bytes)))) => Ok(ReplicationReply::TaskData {
                total,
                offset,
                bytes,
            }),
            Ok(Ok(None)) => Err(missing()),
            Ok(Err(e)) => Err(self.error(
                ErrorCode::Internal,
                format!(
                    "the data of task {task_id} (transaction {tid}) on data node {} cannot be read: {e}",
                    self.alias
                ),
            )),
            Err(e) => Err(self.error(ErrorCode::Internal, e.to_string())),
        }
    }
}
