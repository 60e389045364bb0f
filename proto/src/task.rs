//! Replication tasks: what a committed transaction on a replicated database becomes.
//!
//! A task has two halves. Its **metadata** ([`TaskMeta`] from the coordinator, numbered into a
//! [`TaskInfo`] by the master controller in the commit's own durable step) is small and lives in
//! the controller's send queue. Its **data** ([`TaskData`]: the operation and everything needed
//! to replay it, by names, never by the master's ids) stays on the data node that coordinated
//! the transaction, under `clusterReplicationWorkDir`, until every slave has finished it.
//!
//! A task's [`Scope`] (what it writes) is what the master controller's send queue groups tasks
//! by (`controller/src/master/send_queue.rs`).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::txn::ColExpr;
use xrepl_core::catalog::{CatalogChange, PartitionScheme, TableKind};
use xrepl_core::value::{DataType, Table, Vector};

/// The 19 operation types of the spec, by their user-facing names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum OperationType {
    CreateDomain,
    CreateTable,
    CreatePartitionedTable,
    Append,
    Upsert,
    SqlUpdate,
    SqlDelete,
    DropTable,
    DropPartition,
    DropDb,
    AddRangePartition,
    AddValuePartition,
    AddColumn,
    DropColumn,
    RenameTable,
    TruncateTable,
    ReplaceColumn,
    SetColumnComment,
    RenameColumn,
    /// One chunk of a table as the master had it at this task: the slave replaces its copy.
    SnapshotChunk,
    /// A re-sync of one table for one slave: the slave's table becomes this one, empty; its
    /// chunks follow as SNAPSHOT_CHUNK tasks.
    ResyncTable,
    /// A re-sync of a whole database for one slave, likewise.
    ResyncDatabase,
    /// The end of a re-sync: every chunk was sent; on the slave, the re-synced copy (filled
    /// out of readers' sight) replaces the old one in one step.
    ResyncEnd,
}

impl OperationType {
    pub const ALL: [OperationType; 23] = [
        OperationType::CreateDomain,
        OperationType::CreateTable,
        OperationType::CreatePartitionedTable,
        OperationType::Append,
        OperationType::Upsert,
        OperationType::SqlUpdate,
        OperationType::SqlDelete,
        OperationType::DropTable,
        OperationType::DropPartition,
        OperationType::DropDb,
        OperationType::AddRangePartition,
        OperationType::AddValuePartition,
        OperationType::AddColumn,
        OperationType::DropColumn,
        OperationType::RenameTable,
        OperationType::TruncateTable,
        OperationType::ReplaceColumn,
        OperationType::SetColumnComment,
        OperationType::RenameColumn,
        OperationType::SnapshotChunk,
        OperationType::ResyncTable,
        OperationType::ResyncDatabase,
        OperationType::ResyncEnd,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OperationType::CreateDomain => "CREATE_DOMAIN",
            OperationType::CreateTable => "CREATE_TABLE",
            OperationType::CreatePartitionedTable => "CREATE_PARTITIONED_TABLE",
            OperationType::Append => "APPEND",
            OperationType::Upsert => "UPSERT",
            OperationType::SqlUpdate => "SQL_UPDATE",
            OperationType::SqlDelete => "SQL_DELETE",
            OperationType::DropTable => "DROP_TABLE",
            OperationType::DropPartition => "DROP_PARTITION",
            OperationType::DropDb => "DROP_DB",
            OperationType::AddRangePartition => "ADD_RANGE_PARTITION",
            OperationType::AddValuePartition => "ADD_VALUE_PARTITION",
            OperationType::AddColumn => "ADD_COLUMN",
            OperationType::DropColumn => "DROP_COLUMN",
            OperationType::RenameTable => "RENAME_TABLE",
            OperationType::TruncateTable => "TRUNCATE_TABLE",
            OperationType::ReplaceColumn => "REPLACE_COLUMN",
            OperationType::SetColumnComment => "SET_COLUMN_COMMENT",
            OperationType::RenameColumn => "RENAME_COLUMN",
            OperationType::SnapshotChunk => "SNAPSHOT_CHUNK",
            OperationType::ResyncTable => "RESYNC_TABLE",
            OperationType::ResyncDatabase => "RESYNC_DATABASE",
            OperationType::ResyncEnd => "RESYNC_END",
        }
    }
}

impl fmt::Display for OperationType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything a slave needs to replay one task, by names (the slave has its own table ids,
/// column ids and chunk placement). Constant parts of conditions were evaluated on the master,
/// so `now()` in a `where` means the master's moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TaskData {
    /// The flag turned on. `tables`: every table as the commit saw it (`None` in tasks of
    /// versions before bootstrap): the slave makes its copy of the database exactly these
    /// tables, empty, and the chunks' rows follow as [`TaskData::SnapshotChunk`] tasks.
    CreateDomain {
        db: String,
        scheme: PartitionScheme,
        #[serde(default)]
        tables: Option<Vec<TableDef>>,
    },
    /// CREATE_TABLE (dimension) or CREATE_PARTITIONED_TABLE.
    CreateTable {
        db: String,
        table: String,
        kind: TableKind,
        columns: Vec<(String, DataType)>,
    },
    /// The rows, converted to the table's types, columns in the table's order.
    Append {
        db: String,
        table: String,
        data: Table,
    },
    Upsert {
        db: String,
        table: String,
        data: Table,
        keys: Vec<String>,
    },
    SqlUpdate {
        db: String,
        table: String,
        set: Vec<(String, ColExpr)>,
        filter: Option<ColExpr>,
    },
    SqlDelete {
        db: String,
        table: String,
        filter: Option<ColExpr>,
    },
    DropTable {
        db: String,
        table: String,
    },
    /// The partitions by number (the slave's scheme is the master's, so numbers agree) and by
    /// the values the user gave.
    DropPartition {
        db: String,
        table: String,
        partitions: Vec<u32>,
        values: Vector,
    },
    DropDb {
        db: String,
    },
    /// ADD_RANGE_PARTITION (`range`) or ADD_VALUE_PARTITION.
    AddPartitions {
        db: String,
        values: Vector,
        range: bool,
    },
    AddColumn {
        db: String,
        table: String,
        columns: Vec<(String, DataType)>,
    },
    DropColumn {
        db: String,
        table: String,
        names: Vec<String>,
    },
    RenameTable {
        db: String,
        from: String,
        to: String,
    },
    TruncateTable {
        db: String,
        table: String,
    },
    ReplaceColumn {
        db: String,
        table: String,
        column: String,
        ty: DataType,
    },
    SetColumnComment {
        db: String,
        table: String,
        comments: Vec<(String, String)>,
    },
    /// Old and new names.
    RenameColumn {
        db: String,
        table: String,
        names: Vec<(String, String)>,
    },
    /// Every row of one chunk (`partition` of `table`) as the master held it when this task
    /// was numbered, columns in the table's order: the slave's chunk becomes exactly these.
    SnapshotChunk {
        db: String,
        table: String,
        partition: u32,
        data: Table,
    },
    /// `resyncClusterReplicationTable` for one slave: its table becomes this one, empty.
    ResyncTable {
        db: String,
        table: TableDef,
    },
    /// `resyncClusterReplicationDatabase` for one slave: its database becomes this one.
    ResyncDatabase {
        db: String,
        scheme: PartitionScheme,
        tables: Vec<TableDef>,
    },
    /// Every chunk of a re-sync was sent: the slave's re-synced copy of `table` (every table
    /// of the database: `None`) replaces the old one.
    ResyncEnd {
        db: String,
        table: Option<String>,
    },
}

/// A table's definition in a bootstrap, by names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDef {
    pub name: String,
    pub kind: TableKind,
    pub columns: Vec<(String, DataType)>,
    /// Column comments that are not empty.
    pub comments: Vec<(String, String)>,
}

impl TableDef {
    pub fn of(t: &xrepl_core::catalog::TableMeta) -> TableDef {
        TableDef {
            name: t.name.clone(),
            kind: t.kind.clone(),
            columns: t.columns.iter().map(|c| (c.name.clone(), c.ty)).collect(),
            comments: t
                .columns
                .iter()
                .filter(|c| !c.comment.is_empty())
                .map(|c| (c.name.clone(), c.comment.clone()))
                .collect(),
        }
    }
}

impl TaskData {
    pub fn op(&self) -> OperationType {
        match self {
            TaskData::CreateDomain { .. } => OperationType::CreateDomain,
            TaskData::CreateTable {
                kind: TableKind::Dimension,
                ..
            } => OperationType::CreateTable,
            TaskData::CreateTable { .. } => OperationType::CreatePartitionedTable,
            TaskData::Append { .. } => OperationType::Append,
            TaskData::Upsert { .. } => OperationType::Upsert,
            TaskData::SqlUpdate { .. } => OperationType::SqlUpdate,
            TaskData::SqlDelete { .. } => OperationType::SqlDelete,
            TaskData::DropTable { .. } => OperationType::DropTable,
            TaskData::DropPartition { .. } => OperationType::DropPartition,
            TaskData::DropDb { .. } => OperationType::DropDb,
            TaskData::AddPartitions { range: true, .. } => OperationType::AddRangePartition,
            TaskData::AddPartitions { .. } => OperationType::AddValuePartition,
            TaskData::AddColumn { .. } => OperationType::AddColumn,
            TaskData::DropColumn { .. } => OperationType::DropColumn,
            TaskData::RenameTable { .. } => OperationType::RenameTable,
            TaskData::TruncateTable { .. } => OperationType::TruncateTable,
            TaskData::ReplaceColumn { .. } => OperationType::ReplaceColumn,
            TaskData::SetColumnComment { .. } => OperationType::SetColumnComment,
            TaskData::RenameColumn { .. } => OperationType::RenameColumn,
            TaskData::SnapshotChunk { .. } => OperationType::SnapshotChunk,
            TaskData::ResyncTable { .. } => OperationType::ResyncTable,
            TaskData::ResyncDatabase { .. } => OperationType::ResyncDatabase,
            TaskData::ResyncEnd { .. } => OperationType::ResyncEnd,
        }
    }

    pub fn db(&self) -> &str {
        match self {
            TaskData::CreateDomain { db, .. }
            | TaskData::CreateTable { db, .. }
            | TaskData::Append { db, .. }
            | TaskData::Upsert { db, .. }
            | TaskData::SqlUpdate { db, .. }
            | TaskData::SqlDelete { db, .. }
            | TaskData::DropTable { db, .. }
            | TaskData::DropPartition { db, .. }
            | TaskData::DropDb { db }
            | TaskData::AddPartitions { db, .. }
            | TaskData::AddColumn { db, .. }
            | TaskData::DropColumn { db, .. }
            | TaskData::RenameTable { db, .. }
            | TaskData::TruncateTable { db, .. }
            | TaskData::ReplaceColumn { db, .. }
            | TaskData::SetColumnComment { db, .. }
            | TaskData::RenameColumn { db, .. }
            | TaskData::SnapshotChunk { db, .. }
            | TaskData::ResyncTable { db, .. }
            | TaskData::ResyncDatabase { db, .. }
            | TaskData::ResyncEnd { db, .. } => db,
        }
    }

    /// The table it acts on (`""` for a database operation; the old name for a rename).
    pub fn table(&self) -> &str {
        match self {
            TaskData::CreateDomain { .. }
            | TaskData::DropDb { .. }
            | TaskData::AddPartitions { .. }
            | TaskData::ResyncDatabase { .. }
            | TaskData::ResyncEnd { table: None, .. } => "",
            TaskData::ResyncEnd {
                table: Some(table), ..
            } => table,
            TaskData::RenameTable { from, .. } => from,
            TaskData::ResyncTable { table, .. } => &table.name,
            TaskData::CreateTable { table, .. }
            | TaskData::Append { table, .. }
            | TaskData::Upsert { table, .. }
            | TaskData::SqlUpdate { table, .. }
            | TaskData::SqlDelete { table, .. }
            | TaskData::DropTable { table, .. }
            | TaskData::DropPartition { table, .. }
            | TaskData::AddColumn { table, .. }
            | TaskData::DropColumn { table, .. }
            | TaskData::TruncateTable { table, .. }
            | TaskData::ReplaceColumn { table, .. }
            | TaskData::SetColumnComment { table, .. }
            | TaskData::RenameColumn { table, .. }
            | TaskData::SnapshotChunk { table, .. } => table,
        }
    }

    /// The catalog changes it makes, by names (what a master commits and a slave replays).
    /// Appends, upserts, updates, deletes and truncates change no catalog entry; the chunks a
    /// drop or conversion touches are the replaying cluster's own.
    pub fn catalog_changes(&self) -> Vec<CatalogChange> {
        let db = self.db().to_string();
        let on = |table: &str| (db.clone(), table.to_string());
        match self {
            TaskData::CreateDomain { scheme, .. } => vec![CatalogChange::CreateDatabase {
                path: db.clone(),
                scheme: scheme.clone(),
            }],
            TaskData::CreateTable {
                table,
                kind,
                columns,
                ..
            } => vec![CatalogChange::CreateTable {
                db: db.clone(),
                name: table.clone(),
                kind: kind.clone(),
                columns: columns.clone(),
            }],
            TaskData::DropTable { table, .. } => vec![CatalogChange::DropTable {
                db: db.clone(),
                name: table.clone(),
            }],
            TaskData::DropPartition {
                table, partitions, ..
            } => vec![CatalogChange::DropChunks {
                db: db.clone(),
                table: table.clone(),
                partitions: partitions.clone(),
            }],
            TaskData::DropDb { .. } => vec![CatalogChange::DropDatabase { path: db.clone() }],
            TaskData::AddPartitions { values, .. } => vec![CatalogChange::AddPartitions {
                path: db.clone(),
                values: values.clone(),
            }],
            TaskData::AddColumn { table, columns, .. } => columns
                .iter()
                .map(|(name, ty)| {
                    let (db, table) = on(table);
                    CatalogChange::AddColumn {
                        db,
                        table,
                        name: name.clone(),
                        ty: *ty,
                    }
                })
                .collect(),
            TaskData::DropColumn { table, names, .. } => vec![CatalogChange::DropColumns {
                db: db.clone(),
                table: table.clone(),
                names: names.clone(),
            }],
            TaskData::RenameTable { from, to, .. } => vec![CatalogChange::RenameTable {
                db: db.clone(),
                from: from.clone(),
                to: to.clone(),
            }],
            TaskData::ReplaceColumn {
                table, column, ty, ..
            } => vec![CatalogChange::ReplaceColumnType {
                db: db.clone(),
                table: table.clone(),
                name: column.clone(),
                ty: *ty,
            }],
            TaskData::SetColumnComment {
                table, comments, ..
            } => comments
                .iter()
                .map(|(column, comment)| {
                    let (db, table) = on(table);
                    CatalogChange::SetColumnComment {
                        db,
                        table,
                        column: column.clone(),
                        comment: comment.clone(),
                    }
                })
                .collect(),
            TaskData::RenameColumn { table, names, .. } => names
                .iter()
                .map(|(from, to)| {
                    let (db, table) = on(table);
                    CatalogChange::RenameColumn {
                        db,
                        table,
                        from: from.clone(),
                        to: to.clone(),
                    }
                })
                .collect(),
            TaskData::Append { .. }
            | TaskData::Upsert { .. }
            | TaskData::SqlUpdate { .. }
            | TaskData::SqlDelete { .. }
            | TaskData::TruncateTable { .. }
            | TaskData::SnapshotChunk { .. }
            | TaskData::ResyncTable { .. }
            | TaskData::ResyncDatabase { .. }
            | TaskData::ResyncEnd { .. } => vec![],
        }
    }

    /// What it writes, for grouping. `partitions`: the partitions an append or upsert writes.
    pub fn scope(&self, partitions: &[u32]) -> Scope {
        let db = self.db().to_string();
        match self {
            TaskData::CreateDomain { .. }
            | TaskData::DropDb { .. }
            | TaskData::AddPartitions { .. }
            | TaskData::ResyncDatabase { .. }
            | TaskData::ResyncEnd { table: None, .. } => Scope::Database(db),
            TaskData::Append { table, .. } | TaskData::Upsert { table, .. } => Scope::Chunks {
                db,
                table: table.clone(),
                partitions: partitions.to_vec(),
            },
            TaskData::DropPartition {
                table, partitions, ..
            } => Scope::Chunks {
                db,
                table: table.clone(),
                partitions: partitions.clone(),
            },
            TaskData::SnapshotChunk {
                table, partition, ..
            } => Scope::Chunks {
                db,
                table: table.clone(),
                partitions: vec![*partition],
            },
            TaskData::RenameTable { from, to, .. } => Scope::Tables {
                db,
                tables: vec![from.clone(), to.clone()],
            },
            _ => Scope::Tables {
                db,
                tables: vec![self.table().to_string()],
            },
        }
    }

    /// The metadata the coordinator sends with its decision.
    pub fn meta(&self, partitions: &[u32], src_host: &str, src_port: u16) -> TaskMeta {
        TaskMeta {
            op: self.op(),
            db: self.db().to_string(),
            table: self.table().to_string(),
            scope: self.scope(partitions),
            src_host: src_host.to_string(),
            src_port,
            data_written: false,
            data_bytes: 0,
            snapshot: None,
            for_slave: None,
        }
    }
}

/// What a task writes, for the conflict rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scope {
    /// A DDL on a database: a group of its own.
    Database(String),
    /// A DDL or DML on whole tables (an update, a delete, a truncate, a rename names both).
    Tables { db: String, tables: Vec<String> },
    /// An append, upsert or partition drop: these chunks of one table.
    Chunks {
        db: String,
        table: String,
        partitions: Vec<u32>,
    },
}

/// What a coordinator tells the controller about the task its transaction would make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskMeta {
    pub op: OperationType,
    pub db: String,
    pub table: String,
    pub scope: Scope,
    /// The data node holding the task data.
    pub src_host: String,
    pub src_port: u16,
    /// Whether the coordinator wrote the task data (it does when it saw the database
    /// replicated). The controller refuses to commit a transaction on a replicated database
    /// without its data, so that no task lacks its data.
    pub data_written: bool,
    /// Bytes of the encoded task data (what the master keeps until every slave has it).
    #[serde(default)]
    pub data_bytes: u64,
    /// A [`TaskData::SnapshotChunk`]'s place in its bootstrap: the commit is refused unless
    /// that chunk is still to be sent, and marks it sent.
    #[serde(default)]
    pub snapshot: Option<SnapshotRef>,
    /// A re-sync's task is for this slave cluster only; the others store it finished.
    #[serde(default)]
    pub for_slave: Option<String>,
}

/// [`SnapshotRef::index`] of the task that begins a re-sync.
pub const BEGIN: u32 = u32::MAX;

/// [`SnapshotRef::index`] of the task that ends a re-sync (RESYNC_END).
pub const END: u32 = u32::MAX - 1;

/// Which chunk of which bootstrap a snapshot task sends, and its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRef {
    pub job: u64,
    /// The chunk's index in the bootstrap's list; [`BEGIN`] for the task that begins a
    /// re-sync (its RESYNC_TABLE or RESYNC_DATABASE), [`END`] for the one that ends it.
    pub index: u32,
    pub rows: u64,
}

/// How far a bootstrap (turning replication on for a database that holds rows) has come on
/// the master: what the master shows and sends to its slaves with each pull answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapProgress {
    pub job: u64,
    pub db: String,
    /// A re-sync's table (`None`: the database) and slave (`None`: a bootstrap for every one).
    #[serde(default)]
    pub table: Option<String>,
    #[serde(default)]
    pub for_slave: Option<String>,
    /// The CREATE_DOMAIN task, and the last chunk snapshot task made so far.
    pub begin_task: u64,
    pub last_task: u64,
    /// A re-sync's RESYNC_END task (0: not made yet; a bootstrap has none).
    #[serde(default)]
    pub end_task: u64,
    pub chunks: u32,
    pub chunks_sent: u32,
    /// Chunks dropped before they were sent (nothing to send).
    pub chunks_skipped: u32,
    pub rows_sent: u64,
    pub bytes_sent: u64,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    /// Why it ended before every chunk was sent.
    pub ended: Option<String>,
}

/// A numbered task, as the master's send queue holds it and a slave receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskInfo {
    pub task_id: u64,
    /// The master transaction it came from; its data is keyed by it on the source data node.
    pub tid: u64,
    pub group_id: u64,
    pub op: OperationType,
    /// Nanoseconds since the epoch, when the commit was recorded.
    pub submit_ns: i64,
    pub db: String,
    pub table: String,
    pub src_host: String,
    pub src_port: u16,
    /// The database's execution set (0 or 1) when the task was made.
    pub execution_set: u8,
    /// Bytes of its encoded data on the master data node (0 when not known).
    #[serde(default)]
    pub data_bytes: u64,
    /// A re-sync's task is for this slave cluster only; the others store it finished.
    #[serde(default)]
    pub for_slave: Option<String>,
}

/// A slave transaction that replays a task: the controller records the task FINISHED in the
/// commit of that transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayOf {
    pub task_id: u64,
    /// The slave data node that replayed it.
    pub node: String,
    /// When this attempt was handed out (ns since the epoch), for the task's cost.
    pub started_ns: i64,
    /// The attempt's nonce from the hand-out ([`ReplayAssignment::nonce`]): the controller
    /// records the task only for an attempt it handed out.
    #[serde(default)]
    pub nonce: serde_bytes::ByteBuf,
}

/// Which hand-out a worker's report is about: its time and the nonce that came with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptProof {
    pub started_ns: i64,
    pub nonce: serde_bytes::ByteBuf,
}

/// How the abort of a transaction that straddled `setDatabaseForClusterReplication(db, true)`
/// ends (it was planned without its task data): the coordinator reports it as a stale catalog,
/// so that the write is planned and run again.
pub const TURNED_ON_WHILE_RUNNING: &str = "while this transaction ran; run it again";

/// Most encoded task data that travels inside the pull answer and the hand-out instead of
/// being fetched from the master data node (a 10-row append is about 250 bytes).
pub const INLINE_DATA_MAX: usize = 64 << 10;

/// A small task's encoded data (rmp-encoded [`TaskData`], at most [`INLINE_DATA_MAX`] bytes),
/// carried with the task so that nobody has to fetch it: from the coordinator to the master
/// controller with the decision, to the slave controller in the pull answer, to the replay
/// worker in the hand-out. It is a copy kept in memory; the master data node's copy is the one
/// that lasts, and a task without it here is fetched from there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InlineData {
    pub task_id: u64,
    pub bytes: serde_bytes::ByteBuf,
}

/// Tasks handed to a slave data node's worker: one, or a batch to replay in this order as
/// one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayAssignment {
    pub tasks: Vec<TaskInfo>,
    /// The data of those of them that came with their data, in any order.
    pub data: Vec<InlineData>,
    /// The slave's fetch ticket from the master, for fetching the task data from each task's
    /// `src_host` (the slave's session token on the master stays in the slave controller).
    pub ticket: crate::ticket::FetchTicket,
    /// When they were handed out (ns since the epoch).
    pub started_ns: i64,
    /// This attempt's nonce, made by the controller for this data node and `started_ns`:
    /// every report of the attempt and its decision bring it back.
    pub nonce: serde_bytes::ByteBuf,
}

impl ReplayAssignment {
    /// What the worker's reports of this attempt carry.
    pub fn proof(&self) -> AttemptProof {
        AttemptProof {
            started_ns: self.started_ns,
            nonce: self.nonce.clone(),
        }
    }
}

/// A task whose replay attempt did not commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayFailure {
    pub task_id: u64,
    pub reason: String,
    /// A node of either cluster could not be reached (or a lock was busy): it is retried
    /// without counting towards `clusterReplicationRetryLimit`.
    pub transient: bool,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_operation_has_its_name_once() {
        let names: BTreeSet<&str> = OperationType::ALL.iter().map(|o| o.name()).collect();
        assert_eq!(names.len(), 23);
        assert!(names.contains("SET_COLUMN_COMMENT"));
    }
}
