//! The changes a transaction makes to the catalog, and how each is applied.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    check_db_path, check_name, Catalog, ColumnDef, DatabaseMeta, PartitionScheme, Right, TableKind,
    TableMeta,
};
use crate::value::{DataType, Vector};

/// A change to the catalog. Each is checked against the catalog when its transaction commits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CatalogChange {
    CreateDatabase {
        path: String,
        scheme: PartitionScheme,
    },
    DropDatabase {
        path: String,
    },
    /// VALUE: new values; RANGE: new upper boundaries.
    AddPartitions {
        path: String,
        values: Vector,
    },
    CreateTable {
        db: String,
        name: String,
        kind: TableKind,
        columns: Vec<(String, DataType)>,
    },
    DropTable {
        db: String,
        name: String,
    },
    RenameTable {
        db: String,
        from: String,
        to: String,
    },
    AddColumn {
        db: String,
        table: String,
        name: String,
        ty: DataType,
    },
    DropColumns {
        db: String,
        table: String,
        names: Vec<String>,
    },
    RenameColumn {
        db: String,
        table: String,
        from: String,
        to: String,
    },
    ReplaceColumnType {
        db: String,
        table: String,
        name: String,
        ty: DataType,
    },
    SetColumnComment {
        db: String,
        table: String,
        column: String,
        comment: String,
    },
    /// Places chunks that do not exist yet; existing placements are kept.
    AssignChunks {
        db: String,
        table: String,
        chunks: Vec<(u32, String)>,
    },
    /// Forgets chunks (their data is deleted by the same transaction).
    DropChunks {
        db: String,
        table: String,
        partitions: Vec<u32>,
    },
    /// `setDatabaseForClusterReplication(db, enabled)`.
    SetReplication {
        path: String,
        enabled: bool,
    },
    /// `setDatabaseClusterReplicationExecutionSet(db, set)`: 0 or 1.
    SetExecutionSet {
        path: String,
        set: u8,
    },
    /// A re-sync on a slave begins: a new, empty table that will replace `table` is made
    /// under [`shadow_name`]`(table)`, where readers of `table` do not see it. The re-sync's
    /// rows and the changes after it are written there.
    CreateShadow {
        db: String,
        table: String,
        kind: TableKind,
        columns: Vec<(String, DataType)>,
    },
    /// A re-sync on a slave ends: the shadow of `table` becomes `table` in one step. The old
    /// table, if any, is kept out of sight under [`retired_name`]`(table)` for the readers that
    /// were reading it, and dropped a little later.
    SwapShadow {
        db: String,
        table: String,
    },
}

/// The name of the table a re-sync of `table` fills on a slave before it replaces `table`.
/// No table can be created by this name (`~` is not allowed in names), so it never meets a
/// user's table.
pub fn shadow_name(table: &str) -> String {
    format!("{table}~resync")
}

/// The table whose re-sync `name` is the shadow of (`None`: `name` is no shadow).
pub fn shadow_of(name: &str) -> Option<&str> {
    name.strip_suffix("~resync")
}

/// The name the old copy of `table` takes when a re-sync's copy replaces it.
pub fn retired_name(table: &str) -> String {
    format!("{table}~retired")
}

/// Whether `name` is the retired copy of a table.
pub fn is_retired(name: &str) -> bool {
    name.ends_with("~retired")
}

/// Whether `name` is a table of a re-sync's (a shadow or a retired copy), hidden from
/// listings and comparisons.
pub fn is_hidden(name: &str) -> bool {
    name.contains('~')
}

impl CatalogChange {
    /// The database it touches.
    pub fn db(&self) -> &str {
        match self {
            CatalogChange::CreateDatabase { path, .. }
            | CatalogChange::DropDatabase { path }
            | CatalogChange::AddPartitions { path, .. }
            | CatalogChange::SetReplication { path, .. }
            | CatalogChange::SetExecutionSet { path, .. } => path,
            CatalogChange::CreateTable { db, .. }
            | CatalogChange::CreateShadow { db, .. }
            | CatalogChange::SwapShadow { db, .. }
            | CatalogChange::DropTable { db, .. }
            | CatalogChange::RenameTable { db, .. }
            | CatalogChange::AddColumn { db, .. }
            | CatalogChange::DropColumns { db, .. }
            | CatalogChange::RenameColumn { db, .. }
            | CatalogChange::ReplaceColumnType { db, .. }
            | CatalogChange::SetColumnComment { db, .. }
            | CatalogChange::AssignChunks { db, .. }
            | CatalogChange::DropChunks { db, .. } => db,
        }
    }

    /// The right it needs on its database (creating one needs `Grants::create_databases`).
    pub fn needs(&self) -> Right {
        match self {
            CatalogChange::AssignChunks { .. } | CatalogChange::DropChunks { .. } => Right::Write,
            _ => Right::Owner,
        }
    }
}

impl Catalog {
    /// Applies one change, or says why it cannot be applied (then nothing changed... for
    /// callers that need all-or-nothing across several changes, see [`Self::apply_all`]).
    pub fn apply(&mut self, change: &CatalogChange) -> Result<(), String> {
        match change {
            CatalogChange::CreateDatabase { path, scheme } => {
                check_db_path(path)?;
                scheme.validate()?;
                if self.dbs.contains_key(path) {
                    return Err(format!("database '{path}' exists already"));
                }
                self.dbs.insert(
                    path.clone(),
                    DatabaseMeta {
                        path: path.clone(),
                        scheme: scheme.clone(),
                        tables: BTreeMap::new(),
                        replication_enabled: false,
                        execution_set: 0,
                        version: 0,
                    },
                );
            }
            CatalogChange::DropDatabase { path } => {
                self.db(path)?;
                self.dbs.remove(path);
            }
            CatalogChange::AddPartitions { path, values } => {
                let db = self.db_mut(path)?;
                db.scheme.extend(values)?;
            }
            CatalogChange::SetReplication { path, enabled } => {
                self.db_mut(path)?.replication_enabled = *enabled;
            }
            CatalogChange::SetExecutionSet { path, set } => {
                if *set > 1 {
                    return Err(format!("the execution set is 0 or 1, got {set}"));
                }
                self.db_mut(path)?.execution_set = *set;
            }
            CatalogChange::CreateTable {
                db,
                name,
                kind,
                columns,
            } => {
                check_name("table", name)?;
                self.create_table(db, name, kind, columns)?;
            }
            CatalogChange::CreateShadow {
                db,
                table,
                kind,
                columns,
            } => {
                check_name("table", table)?;
                self.create_table(db, &shadow_name(table), kind, columns)?;
            }
            CatalogChange::SwapShadow { db, table } => {
                let d = self.db_mut(db)?;
                let mut t = d.tables.remove(&shadow_name(table)).ok_or_else(|| {
                    format!("table '{table}' of database '{db}' has no re-sync under way")
                })?;
                if let Some(mut old) = d.tables.remove(table) {
                    let retired = retired_name(table);
                    if d.tables.contains_key(&retired) {
                        return Err(format!(
                            "table '{table}' of database '{db}' still has a retired copy"
                        ));
                    }
                    old.name = retired.clone();
                    d.tables.insert(retired, old);
                }
                t.name = table.clone();
                d.tables.insert(table.clone(), t);
            }
            CatalogChange::DropTable { db, name } => {
                self.table(db, name)?;
                self.db_mut(db)?.tables.remove(name);
            }
            CatalogChange::RenameTable { db, from, to } => {
                check_name("table", to)?;
                let d = self.db_mut(db)?;
                if d.tables.contains_key(to) {
                    return Err(format!("table '{to}' exists already in database '{db}'"));
                }
                let mut t = d
                    .tables
                    .remove(from)
                    .ok_or_else(|| format!("table '{from}' does not exist in database '{db}'"))?;
                t.name = to.clone();
                d.tables.insert(to.clone(), t);
            }
            CatalogChange::AddColumn {
                db,
                table,
                name,
                ty,
            } => {
                check_name("column", name)?;
                let t = self.table_mut(db, table)?;
                if t.column(name).is_some() {
                    return Err(format!("table '{table}' has a column '{name}' already"));
                }
                t.columns.push(ColumnDef {
                    id: t.next_column_id,
                    name: name.clone(),
                    ty: *ty,
                    comment: String::new(),
                });
                t.next_column_id += 1;
            }
            CatalogChange::DropColumns { db, table, names } => {
                let t = self.table_mut(db, table)?;
                for n in names {
                    t.column_mut(n)?;
                    if t.partition_column().is_some_and(|c| &c.name == n) {
                        return Err(format!(
                            "'{n}' is the partition column and cannot be dropped"
                        ));
                    }
                }
                t.columns.retain(|c| !names.contains(&c.name));
                if t.columns.is_empty() {
                    return Err("a table must keep at least one column".into());
                }
            }
            CatalogChange::RenameColumn {
                db,
                table,
                from,
                to,
            } => {
                check_name("column", to)?;
                let t = self.table_mut(db, table)?;
                if t.column(to).is_some() {
                    return Err(format!("table '{table}' has a column '{to}' already"));
                }
                if let TableKind::Partitioned { column } = &mut t.kind {
                    if column == from {
                        *column = to.clone();
                    }
                }
                t.column_mut(from)?.name = to.clone();
            }
            CatalogChange::ReplaceColumnType {
                db,
                table,
                name,
                ty,
            } => {
                let t = self.table_mut(db, table)?;
                if t.partition_column().is_some_and(|c| &c.name == name) {
                    return Err(format!(
                        "'{name}' is the partition column; its type cannot change"
                    ));
                }
                t.column_mut(name)?.ty = *ty;
            }
            CatalogChange::SetColumnComment {
                db,
                table,
                column,
                comment,
            } => {
                self.table_mut(db, table)?.column_mut(column)?.comment = comment.clone();
            }
            CatalogChange::AssignChunks { db, table, chunks } => {
                let t = self.table_mut(db, table)?;
                for (p, node) in chunks {
                    t.chunks.entry(*p).or_insert_with(|| node.clone());
                }
            }
            CatalogChange::DropChunks {
                db,
                table,
                partitions,
            } => {
                let t = self.table_mut(db, table)?;
                for p in partitions {
                    t.chunks.remove(p);
                }
            }
        }
        Ok(())
    }

    /// Creates table `name` (already checked) in `db` with a new id.
    fn create_table(
        &mut self,
        db: &str,
        name: &str,
        kind: &TableKind,
        columns: &[(String, DataType)],
    ) -> Result<(), String> {
        let id = self.next_table_id + 1;
        let d = self.db_mut(db)?;
        if d.tables.contains_key(name) {
            return Err(format!("table '{name}' exists already in database '{db}'"));
        }
        if columns.is_empty() {
            return Err("a table needs at least one column".into());
        }
        let mut defs: Vec<ColumnDef> = Vec::new();
        for (i, (c, t)) in columns.iter().enumerate() {
            check_name("column", c)?;
            if defs.iter().any(|d| &d.name == c) {
                return Err(format!("column '{c}' appears twice"));
            }
            defs.push(ColumnDef {
                id: u32::try_from(i).map_err(|e| e.to_string())?,
                name: c.clone(),
                ty: *t,
                comment: String::new(),
            });
        }
        if let TableKind::Partitioned { column } = kind {
            let c = defs.iter().find(|d| &d.name == column).ok_or_else(|| {
                format!("partition column '{column}' is not a column of the table")
            })?;
            d.scheme
                .accepts(c.ty)
                .map_err(|e| format!("partition column '{column}': {e}"))?;
        }
        let next_column_id = u32::try_from(defs.len()).map_err(|e| e.to_string())?;
        d.tables.insert(
            name.to_string(),
            TableMeta {
                id,
                name: name.to_string(),
                kind: kind.clone(),
                columns: defs,
                next_column_id,
                chunks: BTreeMap::new(),
            },
        );
        self.next_table_id = id;
        Ok(())
    }
}
