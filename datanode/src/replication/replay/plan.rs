//! What replaying a task's data changes on this cluster: its catalog changes (the same mapping
//! a master commits, `TaskData::catalog_changes`) and its chunk operations, planned against
//! this cluster's own catalog (its table ids and chunk placement) with the pure planning of
//! `crate::plan`.

use std::collections::{BTreeMap, HashMap};

use xrepl_core::catalog::{
    is_hidden, is_retired, retired_name, shadow_name, shadow_of, CatalogChange, DatabaseMeta,
    Right, TableMeta,
};
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
            return Ok(match existing {
                Some(d) if d.scheme == *scheme => resync_database(&d, tables),
                other => bootstrap_domain(db, scheme, tables, other.as_ref()),
            });
        }
        if let TaskData::ResyncTable { table: def, .. } = &*data {
            let d = self
                .link
                .database(token, db, Some(Right::Owner))
                .await?
                .ok_or_else(missing_db)?;
            return Ok(resync_table(&d, def));
        }
        if let TaskData::ResyncEnd { table, .. } = &*data {
            // A database dropped since holds no re-synced copy to put in place.
            let d = self.link.database(token, db, Some(Right::Owner)).await?;
            return Ok(d.map_or_else(
                || (vec![], OpsByNode::new()),
                |d| swap_shadows(&d, table.as_deref()),
            ));
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
        // While a re-sync of a table runs here, what the tasks after its start write goes to
        // the re-synced copy (its shadow), out of readers' sight until the re-sync ends.
        let target = |name: &str| -> String {
            let s = shadow_name(name);
            if d.tables.contains_key(&s) {
                s
            } else {
                name.to_string()
            }
        };
        let table = |name: &str| -> Result<TableMeta, RemoteError> {
            d.tables.get(&target(name)).cloned().ok_or_else(|| {
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
                let name = target(&name);
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
            | TaskData::ResyncDatabase { .. }
            | TaskData::ResyncEnd { .. } => OpsByNode::new(),
        };
        let mut changes = data.catalog_changes();
        let name = data.table();
        if name.is_empty() || !d.tables.contains_key(&shadow_name(name)) {
            return Ok((changes, ops));
        }
        if let TaskData::DropPartition { .. } = &*data {
            // Rows of the re-synced copy.
            for c in &mut changes {
                if let CatalogChange::DropChunks { table, .. } = c {
                    *table = shadow_name(table);
                }
            }
            return Ok((changes, ops));
        }
        if changes.is_empty() {
            return Ok((changes, ops));
        }
        // A change of the table's definition during its re-sync ends the re-sync here first:
        // the re-synced copy replaces the old table, then the change applies to it.
        let (mut swap, old) = swap_shadows(&d, Some(name));
        swap.extend(changes);
        Ok((swap, then(old, ops)))
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
        changes.extend(create_table(db, t, false));
    }
    (changes, ops)
}

/// Creates table `t` in `db`, with its column comments; as the shadow of `t` (see
/// [`resync_table`]) when `shadow`.
fn create_table(db: &str, t: &TableDef, shadow: bool) -> Vec<CatalogChange> {
    let (db, kind, columns) = (db.to_string(), t.kind.clone(), t.columns.clone());
    let (mut changes, name) = if shadow {
        (
            vec![CatalogChange::CreateShadow {
                db: db.clone(),
                table: t.name.clone(),
                kind,
                columns,
            }],
            shadow_name(&t.name),
        )
    } else {
        (
            vec![CatalogChange::CreateTable {
                db: db.clone(),
                name: t.name.clone(),
                kind,
                columns,
            }],
            t.name.clone(),
        )
    };
    for (column, comment) in &t.comments {
        changes.push(CatalogChange::SetColumnComment {
            db: db.clone(),
            table: name.clone(),
            column: column.clone(),
            comment: comment.clone(),
        });
    }
    changes
}

/// How long the old copy a re-sync replaced stays, for the readers that planned with it.
pub(super) const RETIRED_FOR: std::time::Duration = std::time::Duration::from_secs(10);

/// Drops the retired copies of `db`'s tables (see [`swap_shadows`]), as `token`'s user.
pub(super) async fn drop_retired(
    coordinator: &crate::txn::coordinator::Coordinator,
    token: &str,
    db: &str,
) -> Result<(), RemoteError> {
    let Some(d) = coordinator
        .link()
        .database(token, db, Some(Right::Owner))
        .await?
    else {
        return Ok(());
    };
    let mut changes = vec![];
    let mut ops = OpsByNode::new();
    for t in d.tables.values().filter(|t| is_retired(&t.name)) {
        drop_table(&d, t, &mut changes, &mut ops);
    }
    if changes.is_empty() {
        return Ok(());
    }
    let tx = crate::txn::coordinator::Tx::new(changes, ops);
    coordinator.run_tx(token, tx).await.map(|_| ())
}

/// Adds dropping table `t` of `d`, and its data, to `changes` and `ops`.
fn drop_table(
    d: &DatabaseMeta,
    t: &TableMeta,
    changes: &mut Vec<CatalogChange>,
    ops: &mut OpsByNode,
) {
    changes.push(CatalogChange::DropTable {
        db: d.path.clone(),
        name: t.name.clone(),
    });
    *ops = then(
        std::mem::take(ops),
        plan::all_chunks(d, t, &ChunkAction::Drop),
    );
}

/// A RESYNC_TABLE: the slave's table keeps serving readers as it is, while the re-sync fills
/// an empty table of the master's definition out of their sight (the table's shadow); the
/// RESYNC_END puts it in place in one step. A shadow left by an earlier re-sync that did not
/// end is dropped; a table the slave does not have is made directly.
fn resync_table(d: &DatabaseMeta, def: &TableDef) -> (Vec<CatalogChange>, OpsByNode) {
    let mut changes = vec![];
    let mut ops = OpsByNode::new();
    if let Some(s) = d.tables.get(&shadow_name(&def.name)) {
        drop_table(d, s, &mut changes, &mut ops);
    }
    changes.extend(create_table(&d.path, def, d.tables.contains_key(&def.name)));
    (changes, ops)
}

/// A RESYNC_DATABASE into a database of the same scheme: a table re-sync of each of the
/// master's tables; the tables the master does not have (and the shadows and retired copies
/// of earlier re-syncs) are dropped.
fn resync_database(d: &DatabaseMeta, defs: &[TableDef]) -> (Vec<CatalogChange>, OpsByNode) {
    let mut changes = vec![];
    let mut ops = OpsByNode::new();
    if !d.replication_enabled {
        changes.push(CatalogChange::SetReplication {
            path: d.path.clone(),
            enabled: true,
        });
    }
    for t in d.tables.values() {
        let kept = !is_hidden(&t.name) && defs.iter().any(|x| x.name == t.name);
        if !kept {
            drop_table(d, t, &mut changes, &mut ops);
        }
    }
    for def in defs {
        changes.extend(create_table(&d.path, def, d.tables.contains_key(&def.name)));
    }
    (changes, ops)
}

/// A RESYNC_END: the shadow of `table` (of every table: `None`) replaces it in one
/// transaction. The old table is retired, not dropped: a reader that planned with it a moment
/// ago still finds its chunks; the replayer drops it a little later (`Replayer::drop_retired`).
/// A retired copy left from before is dropped now.
pub(super) fn swap_shadows(
    d: &DatabaseMeta,
    table: Option<&str>,
) -> (Vec<CatalogChange>, OpsByNode) {
    let mut changes = vec![];
    let mut ops = OpsByNode::new();
    for name in d.tables.keys().filter_map(|n| shadow_of(n)) {
        if table.is_some_and(|t| t != name) {
            continue;
        }
        if let Some(old) = d.tables.get(&retired_name(name)) {
            drop_table(d, old, &mut changes, &mut ops);
        }
        changes.push(CatalogChange::SwapShadow {
            db: d.path.clone(),
            table: name.to_string(),
        });
    }
    (changes, ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use xrepl_core::catalog::{PartitionScheme, TableKind};
    use xrepl_core::value::{DataType, Vector};

    fn table(id: u64, name: &str, node: &str) -> TableMeta {
        TableMeta {
            id,
            name: name.into(),
            kind: TableKind::Dimension,
            columns: vec![],
            next_column_id: 0,
            chunks: BTreeMap::from([(0, node.to_string())]),
        }
    }

    fn db(tables: &[TableMeta]) -> DatabaseMeta {
        DatabaseMeta {
            path: "dfs://x".into(),
            scheme: PartitionScheme::Value(Vector::Int(vec![1])),
            tables: tables.iter().map(|t| (t.name.clone(), t.clone())).collect(),
            replication_enabled: true,
            execution_set: 0,
            version: 1,
        }
    }

    fn def(name: &str) -> TableDef {
        TableDef {
            name: name.into(),
            kind: TableKind::Dimension,
            columns: vec![("k".into(), DataType::Int)],
            comments: vec![("k".into(), "key".into())],
        }
    }

    fn dropped(ops: &OpsByNode) -> Vec<(String, u64)> {
        ops.iter()
            .flat_map(|(n, ops)| ops.iter().map(move |o| (n.clone(), o.chunk.table)))
            .collect()
    }

    #[test]
    fn a_table_resync_fills_a_shadow_and_its_end_swaps_it_in() {
        // The slave holds t (id 1) and a shadow left by a re-sync that did not end (id 2).
        let d = db(&[table(1, "t", "n1"), table(2, &shadow_name("t"), "n2")]);
        let (changes, ops) = resync_table(&d, &def("t"));
        assert!(matches!(&changes[0], CatalogChange::DropTable { name, .. } if name == "t~resync"));
        assert!(matches!(&changes[1], CatalogChange::CreateShadow { table, .. } if table == "t"));
        assert!(matches!(&changes[2],
            CatalogChange::SetColumnComment { table, .. } if table == "t~resync"));
        assert_eq!(
            dropped(&ops),
            [("n2".to_string(), 2)],
            "only the stale shadow's data"
        );
        // A table the slave does not have is made directly.
        let (changes, _) = resync_table(&d, &def("u"));
        assert!(matches!(&changes[0], CatalogChange::CreateTable { name, .. } if name == "u"));

        let (changes, ops) = swap_shadows(&d, Some("t"));
        assert_eq!(
            changes,
            [CatalogChange::SwapShadow {
                db: "dfs://x".into(),
                table: "t".into()
            }]
        );
        assert!(
            ops.is_empty(),
            "the old copy is retired, its data kept a while"
        );
        assert!(swap_shadows(&d, Some("u")).0.is_empty());
        // A retired copy left from an earlier swap is dropped by the next one.
        let d = db(&[
            table(1, "t", "n1"),
            table(2, &shadow_name("t"), "n2"),
            table(3, &retired_name("t"), "n1"),
        ]);
        let (changes, ops) = swap_shadows(&d, None);
        assert!(
            matches!(&changes[0], CatalogChange::DropTable { name, .. } if name == "t~retired")
        );
        assert!(matches!(&changes[1], CatalogChange::SwapShadow { .. }));
        assert_eq!(dropped(&ops), [("n1".to_string(), 3)]);
    }

    #[test]
    fn a_database_resync_keeps_the_masters_tables_in_sight_and_drops_the_rest() {
        let d = db(&[table(1, "t", "n1"), table(3, "gone", "n1")]);
        let (changes, ops) = resync_database(&d, &[def("t"), def("new")]);
        assert!(matches!(&changes[0], CatalogChange::DropTable { name, .. } if name == "gone"));
        assert!(matches!(&changes[1], CatalogChange::CreateShadow { table, .. } if table == "t"));
        assert!(changes
            .iter()
            .any(|c| matches!(c, CatalogChange::CreateTable { name, .. } if name == "new")));
        assert_eq!(dropped(&ops), [("n1".to_string(), 3)]);
    }
}
