//! What replaying a task's data changes on this cluster: its catalog changes (the same mapping
//! a master commits, `TaskData::catalog_changes`) and its chunk operations, planned against
//! this cluster's own catalog (its table ids and chunk placement) with the pure planning of
//! `crate::plan`.

use std::collections::{BTreeMap, HashMap};

use xrepl_core::catalog::{CatalogChange, DatabaseMeta, Right, TableMeta};
use xrepl_core::value::Table;
use xrepl_proto::rpc::{ErrorCode, RemoteError};
use xrepl_proto::task::{TableDef, TaskData};
use xrepl_proto::txn::ChunkAction;

use super::Replayer;
use crate::plan::{self, OpsByNode};

/// The right a replay of `data` needs on its database.
fn right_needed(data: &TaskData) -> Right {
    match data {
        TaskData::Append { .. }
        | TaskData::Upsert { .. }
        | TaskData::SqlUpdate { .. }
        | TaskData::SqlDelete { .. }
        | TaskData::TruncateTable { .. }
        | TaskData::DropPartition { .. }
        | TaskData::SnapshotChunk { .. } => Right::Write,
        _ => Right::Owner,
    }
}

/// The databases a batch's tasks were planned against, read once per batch with the right
/// each needs (checked by the controller when read). A batch holds row operations only, so no
/// task of it changes what the next one plans against; chunks it places are added here.
#[derive(Default)]
pub(super) struct Catalogs {
    dbs: HashMap<(String, Right), DatabaseMeta>,
    /// Whether a database this batch writes may come from the replayer's kept copies.
    pub(super) use_kept: bool,
    /// The one kept copy this batch was planned with, `(path, version)`: its decision carries
    /// the version, and the controller refuses the commit if the database changed since.
    pub(super) checked: Option<(String, u64)>,
}

impl Replayer {
    /// `db` as `token`'s user sees it with `right` (`None`: it does not exist).
    async fn database(
        &self,
        token: &str,
        db: &str,
        right: Right,
        cache: &mut Catalogs,
    ) -> Result<Option<DatabaseMeta>, RemoteError> {
        let key = (db.to_string(), right);
        if let Some(d) = cache.dbs.get(&key) {
            return Ok(Some(d.clone()));
        }
        if cache.use_kept && right == Right::Write && cache.checked.is_none() {
            if let Some(d) = self.kept.get(db) {
                cache.checked = Some((db.to_string(), d.version));
                cache.dbs.insert(key, (*d).clone());
                return Ok(Some((*d).clone()));
            }
        }
        let d = self.link.database(token, db, Some(right)).await?;
        if let Some(d) = &d {
            if right == Right::Write {
                self.kept.put(d.clone());
            }
            cache.dbs.insert(key, d.clone());
        }
        Ok(d)
    }

    /// A CREATE_DOMAIN of an earlier version (without its tables): creates the database, or
    /// keeps the one there if it has the same scheme; replication is on for it.
    fn create_domain(
        &self,
        db: &str,
        scheme: &xrepl_core::catalog::PartitionScheme,
        existing: Option<DatabaseMeta>,
    ) -> Result<(Vec<CatalogChange>, OpsByNode), RemoteError> {
        let path = db.to_string();
        let on = CatalogChange::SetReplication {
            path: path.clone(),
            enabled: true,
        };
        match existing {
            None => Ok((
                vec![
                    CatalogChange::CreateDatabase {
                        path,
                        scheme: scheme.clone(),
                    },
                    on,
                ],
                OpsByNode::new(),
            )),
            Some(d) if d.scheme == *scheme => Ok((
                if d.replication_enabled {
                    vec![]
                } else {
                    vec![on]
                },
                OpsByNode::new(),
            )),
            Some(_) => Err(self.error(
                ErrorCode::Runtime,
                format!("database '{db}' exists on the slave with another partition scheme"),
            )),
        }
    }

    /// The catalog changes and the chunk ops of replaying `data` here, as `token`'s user,
    /// against the databases in `cache` (read into it when missing).
    ///
    /// The rows of an append or an upsert are **taken** out of `data` (it is left with an
    /// empty table): they move into the chunk ops instead of being copied. The caller must
    /// fetch the data again before planning it again.
    pub(super) async fn plan(
        &self,
        token: &str,
        data: &mut TaskData,
        cache: &mut Catalogs,
    ) -> Result<(Vec<CatalogChange>, OpsByNode), RemoteError> {
        let db = data.db().to_string();
        let db = db.as_str();
        let missing_db = || {
            self.error(
                ErrorCode::NotFound,
                format!("database '{db}' does not exist on the slave"),
            )
        };
        if let TaskData::CreateDomain { scheme, tables, .. } = &*data {
            let existing = self.link.database(token, db, Some(Right::Owner)).await?;
            return match tables {
                Some(tables) => Ok(bootstrap_domain(db, scheme, tables, existing.as_ref())),
                None => self.create_domain(db, scheme, existing),
            };
        }
        if let TaskData::ResyncDatabase { scheme, tables, .. } = &*data {
            let existing = self.link.database(token, db, Some(Right::Owner)).await?;
            return Ok(bootstrap_domain(db, scheme, tables, existing.as_ref()));
        }
        if let TaskData::ResyncTable { table: def, .. } = &*data {
            let d = self
                .link
                .database(token, db, Some(Right::Owner))
                .await?
                .ok_or_else(missing_db)?;
            let mut changes = vec![];
            let mut ops = OpsByNode::new();
            if let Some(t) = d.tables.get(&def.name) {
                changes.push(CatalogChange::DropTable {
                    db: db.to_string(),
                    name: def.name.clone(),
                });
                ops = plan::all_chunks(&d, t, &ChunkAction::Drop);
            }
            changes.extend(create_table(db, def));
            return Ok((changes, ops));
        }
        let right = right_needed(data);
        let taken = match data {
            TaskData::Append {
                table, data: rows, ..
            } => Some((table.clone(), take_rows(rows), None)),
            TaskData::Upsert {
                table,
                data: rows,
                keys,
                ..
            } => Some((table.clone(), take_rows(rows), Some(keys.clone()))),
            TaskData::SnapshotChunk {
                table, data: rows, ..
            } => Some((table.clone(), take_rows(rows), None)),
            _ => None,
        };
        let d = self
            .database(token, db, right, cache)
            .await?
            .ok_or_else(missing_db)?;
        let table = |name: &str| -> Result<TableMeta, RemoteError> {
            d.tables.get(name).cloned().ok_or_else(|| {
                self.error(
                    ErrorCode::NotFound,
                    format!("table '{name}' does not exist in database '{db}' on the slave"),
                )
            })
        };
        let whole = |name: &str, action: ChunkAction| -> Result<OpsByNode, RemoteError> {
            Ok(plan::all_chunks(&d, &table(name)?, &action))
        };
        // A replay's planning failure would fail the same way again: a runtime error.
        let runtime = |e: plan::PlanError| self.error(ErrorCode::Runtime, e.to_string());
        let ops = match &*data {
            TaskData::Append { .. } | TaskData::Upsert { .. } | TaskData::SnapshotChunk { .. } => {
                let Some((name, rows, keys)) = taken else {
                    return Err(self.error(ErrorCode::Internal, "the rows were not taken"));
                };
                let name = name.as_str();
                let keys = keys.as_deref();
                let t = table(name)?;
                // A chunk snapshot replaces the chunk: its rows go into an emptied chunk.
                let emptied = match &*data {
                    TaskData::SnapshotChunk { partition, .. } => {
                        plan::some_chunks(&d, &t, &[*partition], &ChunkAction::Truncate)
                    }
                    _ => OpsByNode::new(),
                };
                let routed = plan::route_rows(&d, &t, rows).map_err(runtime)?;
                // Partitions placed already need no round trip to the controller.
                let known: BTreeMap<u32, String> = routed
                    .by_part
                    .keys()
                    .filter_map(|p| t.chunks.get(p).map(|n| (*p, n.clone())))
                    .collect();
                let appended = if routed.rows == 0 {
                    OpsByNode::new()
                } else if known.len() == routed.by_part.len() {
                    plan::append_ops(&d, &t, routed, &known, keys).map_err(runtime)?
                } else {
                    let placement = self
                        .link
                        .place_chunks(token, db, name, routed.by_part.keys().copied().collect())
                        .await?;
                    // The batch's later tasks, and later batches, find these chunks placed.
                    self.kept.learn_placement(db, t.id, &placement);
                    if let Some(t) = cache
                        .dbs
                        .get_mut(&(db.to_string(), right))
                        .and_then(|d| d.tables.get_mut(name))
                    {
                        t.chunks
                            .extend(placement.iter().map(|(p, n)| (*p, n.clone())));
                    }
                    plan::append_ops(&d, &t, routed, &placement, keys).map_err(runtime)?
                };
                then(emptied, appended)
            }
            TaskData::SqlUpdate {
                table: name,
                set,
                filter,
                ..
            } => whole(
                name,
                ChunkAction::Update {
                    set: set.clone(),
                    filter: filter.clone(),
                },
            )?,
            TaskData::SqlDelete {
                table: name,
                filter,
                ..
            } => whole(
                name,
                ChunkAction::Delete {
                    filter: filter.clone(),
                },
            )?,
            TaskData::TruncateTable { table: name, .. } => whole(name, ChunkAction::Truncate)?,
            TaskData::DropTable { table: name, .. } => whole(name, ChunkAction::Drop)?,
            TaskData::DropDb { .. } => plan::db_chunks(&d, &ChunkAction::Drop),
            TaskData::DropPartition {
                table: name,
                partitions,
                ..
            } => plan::some_chunks(&d, &table(name)?, partitions, &ChunkAction::Drop),
            TaskData::ReplaceColumn {
                table: name,
                column,
                ty,
                ..
            } => {
                let t = table(name)?;
                let col = t.column(column).ok_or_else(|| {
                    self.error(
                        ErrorCode::NotFound,
                        format!("table '{name}' has no column '{column}' on the slave"),
                    )
                })?;
                plan::all_chunks(
                    &d,
                    &t,
                    &ChunkAction::Convert {
                        column: col.id,
                        to: *ty,
                    },
                )
            }
            TaskData::CreateDomain { .. }
            | TaskData::CreateTable { .. }
            | TaskData::AddPartitions { .. }
            | TaskData::AddColumn { .. }
            | TaskData::DropColumn { .. }
            | TaskData::RenameTable { .. }
            | TaskData::SetColumnComment { .. }
            | TaskData::RenameColumn { .. }
            | TaskData::ResyncTable { .. }
            | TaskData::ResyncDatabase { .. } => OpsByNode::new(),
        };
        Ok((data.catalog_changes(), ops))
    }
}

/// The rows of an append or upsert, moved out; an empty table is left in their place.
fn take_rows(rows: &mut Table) -> Table {
    std::mem::replace(
        rows,
        Table {
            names: Vec::new(),
            columns: Vec::new(),
        },
    )
}

/// `first`'s operations, then `second`'s, on each node (a participant applies them in order).
fn then(mut first: OpsByNode, second: OpsByNode) -> OpsByNode {
    for (node, ops) in second {
        first.entry(node).or_default().extend(ops);
    }
    first
}

/// A CREATE_DOMAIN with its tables (a bootstrap): the slave's copy of the database becomes
/// exactly these tables, empty, whatever it held before (its chunks are dropped); the rows
/// follow as chunk snapshots. Replication is on for it.
fn bootstrap_domain(
    db: &str,
    scheme: &xrepl_core::catalog::PartitionScheme,
    tables: &[TableDef],
    existing: Option<&DatabaseMeta>,
) -> (Vec<CatalogChange>, OpsByNode) {
    let path = db.to_string();
    let mut changes = vec![];
    let mut ops = OpsByNode::new();
    if let Some(d) = existing {
        changes.push(CatalogChange::DropDatabase { path: path.clone() });
        ops = plan::db_chunks(d, &ChunkAction::Drop);
    }
    changes.push(CatalogChange::CreateDatabase {
        path: path.clone(),
        scheme: scheme.clone(),
    });
    changes.push(CatalogChange::SetReplication {
        path: path.clone(),
        enabled: true,
    });
    for t in tables {
        changes.extend(create_table(db, t));
    }
    (changes, ops)
}

/// Creates table `t` in `db`, with its column comments.
fn create_table(db: &str, t: &TableDef) -> Vec<CatalogChange> {
    let mut changes = vec![CatalogChange::CreateTable {
        db: db.to_string(),
        name: t.name.clone(),
        kind: t.kind.clone(),
        columns: t.columns.clone(),
    }];
    for (column, comment) in &t.comments {
        changes.push(CatalogChange::SetColumnComment {
            db: db.to_string(),
            table: t.name.clone(),
            column: column.clone(),
            comment: comment.clone(),
        });
    }
    changes
}
