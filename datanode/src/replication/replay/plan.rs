//! What replaying a task's data changes on this cluster: its catalog changes (the same mapping
//! a master commits, `TaskData::catalog_changes`) and its chunk operations, planned against
//! this cluster's own catalog (its table ids and chunk placement) with the pure planning of
//! `crate::plan`.

use std::collections::{BTreeMap, HashMap};

use xrepl_core::catalog::{CatalogChange, DatabaseMeta, Right, TableMeta};
use xrepl_proto::rpc::{ErrorCode, RemoteError};
use xrepl_proto::task::TaskData;
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
        | TaskData::DropPartition { .. } => Right::Write,
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

    /// The catalog changes and the chunk ops of replaying `data` here, as `token`'s user,
    /// against the databases in `cache` (read into it when missing).
    pub(super) async fn plan(
        &self,
        token: &str,
        data: &TaskData,
        cache: &mut Catalogs,
    ) -> Result<(Vec<CatalogChange>, OpsByNode), RemoteError> {
        let db = data.db();
        let missing_db = || {
            self.error(
                ErrorCode::NotFound,
                format!("database '{db}' does not exist on the slave"),
            )
        };
        if let TaskData::CreateDomain { scheme, .. } = data {
            let path = db.to_string();
            let on = CatalogChange::SetReplication {
                path: path.clone(),
                enabled: true,
            };
            return match self.link.database(token, db, Some(Right::Owner)).await? {
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
            };
        }
        let right = right_needed(data);
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
        let ops = match data {
            TaskData::Append {
                table: name,
                data: rows,
                ..
            }
            | TaskData::Upsert {
                table: name,
                data: rows,
                ..
            } => {
                let t = table(name)?;
                let keys = match data {
                    TaskData::Upsert { keys, .. } => Some(keys.as_slice()),
                    _ => None,
                };
                let routed = plan::route_rows(&d, &t, rows.clone()).map_err(runtime)?;
                // Partitions placed already need no round trip to the controller.
                let known: BTreeMap<u32, String> = routed
                    .by_part
                    .keys()
                    .filter_map(|p| t.chunks.get(p).map(|n| (*p, n.clone())))
                    .collect();
                if routed.rows == 0 {
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
                }
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
            | TaskData::RenameColumn { .. } => OpsByNode::new(),
        };
        Ok((data.catalog_changes(), ops))
    }
}
