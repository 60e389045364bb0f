//! Database functions and SQL: every DDL and DML becomes one transaction
//! ([`crate::DataNode::run_tx`]); reads scan the chunks where they live.

use std::collections::BTreeMap;

use xrepl_core::catalog::{
    CatalogChange, ColumnDef, DatabaseMeta, PartitionScheme, Right, TableKind, TableMeta,
};
use xrepl_core::config::ReplicationMode;
use xrepl_core::value::{DataType, Scalar, Table, Value, Vector};
use xrepl_proto::rpc::{ControllerReply, ControllerRequest, ErrorCode};
use xrepl_proto::txn::{
    AggFn, ChunkAction, ChunkId, ChunkOp, ColExpr, Partial, Scan, ScanResult, ScanShape,
};
use xrepl_query::lang::ast::{BinOp, Expr, ExprKind, Literal, Select, SelectItem, UnaryOp};
use xrepl_query::ops;

use xrepl_proto::task::TaskData;

use crate::compute::{Aggregate, EvalColumns};
use crate::eval::{Args, EvalError};
use crate::session::Session;
use crate::txn::TxTask;

/// Functions of this module, for name lookup.
pub const DB_FUNCTIONS: &[&str] = &[
    "database",
    "existsDatabase",
    "dropDatabase",
    "addValuePartitions",
    "addRangePartitions",
    "schema",
    "createPartitionedTable",
    "createDimensionTable",
    "loadTable",
    "existsTable",
    "dropTable",
    "renameTable",
    "truncate",
    "dropPartition",
    "addColumn",
    "dropColumns!",
    "rename!",
    "replaceColumn!",
    "setColumnComment",
    "append!",
    "tableInsert",
    "upsert!",
    "createUser",
    "grant",
];

fn bad(msg: impl Into<String>) -> EvalError {
    EvalError::new(ErrorCode::BadRequest, msg)
}

fn not_found(msg: impl Into<String>) -> EvalError {
    EvalError::new(ErrorCode::NotFound, msg)
}

impl Args {
    /// Positional argument `i`, or the named one called `name`.
    pub fn get(&self, i: usize, name: &str) -> Option<&Value> {
        self.named
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .or_else(|| self.positional.get(i))
    }

    /// Fails on named arguments outside `allowed` and on more than `max` positional ones.
    fn check(&self, f: &str, allowed: &[&str], max: usize) -> Result<(), EvalError> {
        if let Some((n, _)) = self
            .named
            .iter()
            .find(|(n, _)| !allowed.contains(&n.as_str()))
        {
            return Err(bad(format!("{f} has no argument named '{n}'")));
        }
        if self.positional.len() > max {
            return Err(bad(format!(
                "{f} takes at most {max} arguments, got {}",
                self.positional.len()
            )));
        }
        Ok(())
    }

    fn need(&self, f: &str, i: usize, name: &str) -> Result<&Value, EvalError> {
        self.get(i, name)
            .ok_or_else(|| bad(format!("{f}: the argument '{name}' is missing")))
    }

    fn text(&self, f: &str, i: usize, name: &str) -> Result<String, EvalError> {
        match self.need(f, i, name)? {
            Value::Scalar(Scalar::String(s) | Scalar::Symbol(s)) => Ok(s.clone()),
            other => Err(bad(format!(
                "{f}: '{name}' must be a string, got {}",
                other.kind_name()
            ))),
        }
    }

    /// A string or a vector of strings.
    fn names(&self, f: &str, i: usize, name: &str) -> Result<Vec<String>, EvalError> {
        match self.need(f, i, name)? {
            Value::Scalar(Scalar::String(s) | Scalar::Symbol(s)) => Ok(vec![s.clone()]),
            Value::Vector(Vector::String(v) | Vector::Symbol(v)) => Ok(v.clone()),
            other => Err(bad(format!(
                "{f}: '{name}' must be a string or strings, got {}",
                other.kind_name()
            ))),
        }
    }

    /// A database path: a handle or a `dfs://` string.
    fn db(&self, f: &str, i: usize, name: &str) -> Result<String, EvalError> {
        match self.need(f, i, name)? {
            Value::Database(p) => Ok(p.clone()),
            Value::Scalar(Scalar::String(s)) => Ok(s.clone()),
            other => Err(bad(format!(
                "{f}: '{name}' must be a database, got {}",
                other.kind_name()
            ))),
        }
    }

    fn table_ref(&self, f: &str, i: usize, name: &str) -> Result<(String, String), EvalError> {
        match self.need(f, i, name)? {
            Value::TableRef { db, table } => Ok((db.clone(), table.clone())),
            other => Err(bad(format!(
                "{f}: '{name}' must be a DFS table (loadTable), got {}",
                other.kind_name()
            ))),
        }
    }
}

/// One type per element of a vector of types, e.g. `[INT, DOUBLE]`.
fn types(f: &str, v: &Value) -> Result<Vec<DataType>, EvalError> {
    match v {
        Value::Type(t) => Ok(vec![*t]),
        Value::Tuple(items) => items
            .iter()
            .map(|i| match i {
                Value::Type(t) => Ok(*t),
                other => Err(bad(format!(
                    "{f}: expected a type, got {}",
                    other.kind_name()
                ))),
            })
            .collect(),
        other => Err(bad(format!(
            "{f}: expected types, got {}",
            other.kind_name()
        ))),
    }
}

/// A table's columns as [`ColumnDef`]s of an in-memory table (ids by position).
fn defs_of(t: &Table) -> Vec<ColumnDef> {
    t.names
        .iter()
        .zip(&t.columns)
        .enumerate()
        .map(|(i, (n, c))| ColumnDef {
            id: i as u32,
            name: n.clone(),
            ty: c.data_type(),
            comment: String::new(),
        })
        .collect()
}

/// Column name for a select item without an alias.
fn item_name(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Ident(n) => n.clone(),
        ExprKind::Call { func, args } => {
            let f = match &func.kind {
                ExprKind::Ident(n) => n.clone(),
                _ => "col".into(),
            };
            match args.first().map(|a| &a.value.kind) {
                Some(ExprKind::Ident(c)) => format!("{f}_{c}"),
                _ => f,
            }
        }
        _ => "col".into(),
    }
}

/// What a select computes per item.
enum Item {
    Column(String),
    Agg(AggFn, Option<String>),
}

impl Session {
    fn token(&self) -> Result<String, EvalError> {
        self.user.as_ref().map(|u| u.token.clone()).ok_or_else(|| {
            EvalError::new(
                ErrorCode::NotLoggedIn,
                "Not logged in: call login(user, password) first.",
            )
        })
    }

    /// A database's metadata, checking `need` on it (`None` when it does not exist).
    fn fetch_db(&self, path: &str, need: Option<Right>) -> Result<Option<DatabaseMeta>, EvalError> {
        match self
            .node
            .block_on_controller(ControllerRequest::GetDatabase {
                token: self.token()?,
                db: path.to_string(),
                need,
            })? {
            ControllerReply::Database(d) => Ok(d),
            other => Err(EvalError::new(
                ErrorCode::Internal,
                format!("unexpected answer {other:?}"),
            )),
        }
    }

    fn db_meta(&self, path: &str, need: Option<Right>) -> Result<DatabaseMeta, EvalError> {
        self.fetch_db(path, need)?
            .ok_or_else(|| not_found(format!("database '{path}' does not exist")))
    }

    fn table_meta(
        &self,
        db: &str,
        table: &str,
        need: Option<Right>,
    ) -> Result<(DatabaseMeta, TableMeta), EvalError> {
        let d = self.db_meta(db, need)?;
        let t = d.tables.get(table).cloned().ok_or_else(|| {
            not_found(format!("table '{table}' does not exist in database '{db}'"))
        })?;
        Ok((d, t))
    }

    /// Whether a transaction on `d` makes a replication task here (this is a master data node
    /// and the database's replication flag is on).
    fn replicates(&self, d: Option<&DatabaseMeta>) -> bool {
        self.node.is_master() && d.is_some_and(|d| d.replication_enabled)
    }

    /// On a slave, a replicated database is written by replication only: anyone but the
    /// execution user is refused.
    fn check_writable(&self, d: &DatabaseMeta) -> Result<(), EvalError> {
        let Some(r) = self.node.cfg.replication.as_ref() else {
            return Ok(());
        };
        let user = self.user.as_ref().map_or("", |u| u.user.as_str());
        if r.mode != ReplicationMode::Slave
            || !d.replication_enabled
            || user == r.execution_username
        {
            return Ok(());
        }
        Err(EvalError::new(
            ErrorCode::AccessDenied,
            format!(
                "database '{}' is being replicated from the master cluster and is read-only on this slave; only the replication user '{}' writes it. To write it here, stop replication for it first: setDatabaseForClusterReplication(database(\"{}\"), false) on this slave",
                d.path, r.execution_username, d.path
            ),
        ))
    }

    /// The task of a transaction on a master: its metadata always (the controller decides),
    /// its data when `replicated`. `partitions`: those an append or upsert writes.
    fn task(&self, replicated: bool, data: TaskData, partitions: &[u32]) -> Option<TxTask> {
        if !self.node.is_master() {
            return None;
        }
        let meta = data.meta(partitions, &self.node.cfg.host, self.node.cfg.port);
        Some(TxTask {
            meta,
            data: replicated.then_some(data),
        })
    }

    /// One operation on database `d` as a transaction: its catalog changes come from its task
    /// data (the same mapping a slave replays), its task data is kept when `d` is replicated.
    fn transact_op(
        &self,
        d: Option<&DatabaseMeta>,
        data: TaskData,
        ops: BTreeMap<String, Vec<ChunkOp>>,
    ) -> Result<u64, EvalError> {
        if let Some(d) = d {
            self.check_writable(d)?;
        }
        let changes = data.catalog_changes();
        let task = self.task(self.replicates(d), data, &[]);
        self.transact(changes, ops, task)
    }

    /// A DDL that changes only the catalog (its database's replication flag is looked up).
    fn ddl(&self, data: TaskData) -> Result<u64, EvalError> {
        // A master needs the flag to make a task, a slave to refuse writes to a replicated db.
        let d = if self.node.cfg.replication.is_some() {
            self.fetch_db(data.db(), None)?
        } else {
            None
        };
        self.transact_op(d.as_ref(), data, BTreeMap::new())
    }

    /// Runs a transaction; returns the rows it touched.
    fn transact(
        &self,
        changes: Vec<CatalogChange>,
        ops: BTreeMap<String, Vec<ChunkOp>>,
        task: Option<TxTask>,
    ) -> Result<u64, EvalError> {
        let token = self.token()?;
        let node = self.node.clone();
        self.node
            .rt
            .block_on(async move { node.run_tx(&token, changes, ops, task).await })
            .map(|(_, rows)| rows)
            .map_err(EvalError::from)
    }

    /// One op per chunk of `t` (every partition it has data in), grouped by node.
    pub(crate) fn all_chunks(
        d: &DatabaseMeta,
        t: &TableMeta,
        action: &ChunkAction,
    ) -> BTreeMap<String, Vec<ChunkOp>> {
        let parts: Vec<u32> = t.chunks.keys().copied().collect();
        Self::some_chunks(d, t, &parts, action)
    }

    /// One op per chunk of every table of `d`, grouped by node.
    pub(crate) fn db_chunks(
        d: &DatabaseMeta,
        action: &ChunkAction,
    ) -> BTreeMap<String, Vec<ChunkOp>> {
        let mut ops: BTreeMap<String, Vec<ChunkOp>> = BTreeMap::new();
        for t in d.tables.values() {
            for (n, o) in Self::all_chunks(d, t, action) {
                ops.entry(n).or_default().extend(o);
            }
        }
        ops
    }

    /// One op per chunk of `t` among `parts` (those without data are left out), by node.
    pub(crate) fn some_chunks(
        d: &DatabaseMeta,
        t: &TableMeta,
        parts: &[u32],
        action: &ChunkAction,
    ) -> BTreeMap<String, Vec<ChunkOp>> {
        let mut out: BTreeMap<String, Vec<ChunkOp>> = BTreeMap::new();
        for (p, node) in parts.iter().filter_map(|p| t.chunks.get(p).map(|n| (p, n))) {
            out.entry(node.clone()).or_default().push(ChunkOp {
                chunk: ChunkId {
                    table: t.id,
                    partition: *p,
                },
                label: chunk_label(d, t, *p),
                columns: t.columns.clone(),
                action: action.clone(),
            });
        }
        out
    }

    /// Calls a database function; `None` when `name` is not one.
    pub(crate) fn call_db(&mut self, name: &str, args: &Args) -> Option<Result<Value, EvalError>> {
        if !DB_FUNCTIONS.contains(&name) {
            return None;
        }
        Some(self.db_function(name, args))
    }

    fn db_function(&mut self, f: &str, a: &Args) -> Result<Value, EvalError> {
        match f {
            "database" => {
                a.check(f, &["directory", "partitionType", "partitionScheme"], 3)?;
                let path = a.text(f, 0, "directory")?;
                xrepl_core::catalog::check_db_path(&path).map_err(bad)?;
                let Some(kind) = a.get(1, "partitionType") else {
                    // database(path): a handle on an existing database.
                    self.db_meta(&path, Some(Right::Read))?;
                    return Ok(Value::Database(path));
                };
                let scheme = scheme_of(kind, a.need(f, 2, "partitionScheme")?)?;
                scheme.validate().map_err(bad)?;
                if let Some(existing) = self.fetch_db(&path, None)? {
                    return if existing.scheme == scheme {
                        Ok(Value::Database(path))
                    } else {
                        Err(bad(format!(
                            "database '{path}' exists already with another partition scheme"
                        )))
                    };
                }
                // A new database is not replicated until setDatabaseForClusterReplication.
                self.transact(
                    vec![CatalogChange::CreateDatabase {
                        path: path.clone(),
                        scheme,
                    }],
                    BTreeMap::new(),
                    None,
                )?;
                Ok(Value::Database(path))
            }
            "existsDatabase" => {
                a.check(f, &[], 1)?;
                let path = a.text(f, 0, "dbUrl")?;
                Ok(Value::Scalar(Scalar::bool(
                    self.fetch_db(&path, None)?.is_some(),
                )))
            }
            "dropDatabase" => {
                a.check(f, &[], 1)?;
                let path = a.db(f, 0, "dbUrl")?;
                let d = self.db_meta(&path, Some(Right::Owner))?;
                let ops = Self::db_chunks(&d, &ChunkAction::Drop);
                self.transact_op(Some(&d), TaskData::DropDb { db: path }, ops)?;
                Ok(Value::Void)
            }
            "addValuePartitions" | "addRangePartitions" => {
                a.check(f, &[], 2)?;
                let path = a.db(f, 0, "dbHandle")?;
                let values = match a.need(f, 1, "partitions")? {
                    Value::Vector(v) => v.clone(),
                    Value::Scalar(s) => {
                        let mut v = Vector::empty(s.data_type());
                        v.push(s.clone()).map_err(bad)?;
                        v
                    }
                    other => {
                        return Err(bad(format!(
                            "{f}: partitions must be values, got {}",
                            other.kind_name()
                        )))
                    }
                };
                let n = values.len();
                let d = self.db_meta(&path, Some(Right::Owner))?;
                let kind = d.scheme.kind_name();
                let want = if f == "addValuePartitions" {
                    "VALUE"
                } else {
                    "RANGE"
                };
                if kind != want {
                    return Err(bad(format!(
                        "{f} needs a {want} database; '{path}' is {kind}"
                    )));
                }
                self.transact_op(
                    Some(&d),
                    TaskData::AddPartitions {
                        db: path,
                        values,
                        range: f == "addRangePartitions",
                    },
                    BTreeMap::new(),
                )?;
                Ok(Value::Scalar(Scalar::Int(n as i32)))
            }
            "schema" => {
                a.check(f, &[], 1)?;
                match a.need(f, 0, "table")? {
                    Value::Database(p) => {
                        let d = self.db_meta(p, Some(Right::Read))?;
                        Ok(db_schema(&d))
                    }
                    Value::TableRef { db, table } => {
                        let (d, t) = self.table_meta(db, table, Some(Right::Read))?;
                        Ok(table_schema(&d, &t))
                    }
                    Value::Table(t) => Ok(Value::Dict(vec![(
                        "colDefs".into(),
                        Value::Table(col_defs(&defs_of(t))),
                    )])),
                    other => Err(bad(format!(
                        "schema needs a database or a table, got {}",
                        other.kind_name()
                    ))),
                }
            }
            "createPartitionedTable" | "createDimensionTable" => {
                let partitioned = f == "createPartitionedTable";
                let mut allowed = vec!["dbHandle", "table", "tableName"];
                if partitioned {
                    allowed.push("partitionColumns");
                }
                a.check(f, &allowed, allowed.len())?;
                let db = a.db(f, 0, "dbHandle")?;
                let schema = match a.need(f, 1, "table")? {
                    Value::Table(t) => t.clone(),
                    other => {
                        return Err(bad(format!(
                            "{f}: 'table' must be a table, got {}",
                            other.kind_name()
                        )))
                    }
                };
                let name = a.text(f, 2, "tableName")?;
                let kind = if partitioned {
                    let cols = a.names(f, 3, "partitionColumns")?;
                    let [column] = cols.as_slice() else {
                        return Err(bad(format!(
                            "{f}: exactly one partition column is supported, got {}",
                            cols.len()
                        )));
                    };
                    TableKind::Partitioned {
                        column: column.clone(),
                    }
                } else {
                    TableKind::Dimension
                };
                let columns: Vec<(String, DataType)> = schema
                    .names
                    .iter()
                    .cloned()
                    .zip(schema.columns.iter().map(Vector::data_type))
                    .collect();
                self.ddl(TaskData::CreateTable {
                    db: db.clone(),
                    table: name.clone(),
                    kind,
                    columns,
                })?;
                Ok(Value::TableRef { db, table: name })
            }
            "loadTable" => {
                a.check(f, &["database", "tableName"], 2)?;
                let db = a.db(f, 0, "database")?;
                let table = a.text(f, 1, "tableName")?;
                self.table_meta(&db, &table, Some(Right::Read))?;
                Ok(Value::TableRef { db, table })
            }
            "existsTable" => {
                a.check(f, &[], 2)?;
                let db = a.db(f, 0, "dbUrl")?;
                let table = a.text(f, 1, "tableName")?;
                let exists = self
                    .fetch_db(&db, None)?
                    .is_some_and(|d| d.tables.contains_key(&table));
                Ok(Value::Scalar(Scalar::bool(exists)))
            }
            "dropTable" => {
                a.check(f, &[], 2)?;
                let db = a.db(f, 0, "dbHandle")?;
                let name = a.text(f, 1, "tableName")?;
                let (d, t) = self.table_meta(&db, &name, Some(Right::Owner))?;
                self.transact_op(
                    Some(&d),
                    TaskData::DropTable { db, table: name },
                    Self::all_chunks(&d, &t, &ChunkAction::Drop),
                )?;
                Ok(Value::Void)
            }
            "renameTable" => {
                a.check(f, &[], 3)?;
                let db = a.db(f, 0, "dbHandle")?;
                let from = a.text(f, 1, "tableName")?;
                let to = a.text(f, 2, "newTableName")?;
                let (d, _) = self.table_meta(&db, &from, Some(Right::Owner))?;
                self.transact_op(
                    Some(&d),
                    TaskData::RenameTable { db, from, to },
                    BTreeMap::new(),
                )?;
                Ok(Value::Void)
            }
            "truncate" => {
                a.check(f, &[], 2)?;
                let db = a.db(f, 0, "dbUrl")?;
                let name = a.text(f, 1, "tableName")?;
                let (d, t) = self.table_meta(&db, &name, Some(Right::Write))?;
                self.transact_op(
                    Some(&d),
                    TaskData::TruncateTable { db, table: name },
                    Self::all_chunks(&d, &t, &ChunkAction::Truncate),
                )?;
                Ok(Value::Void)
            }
            "dropPartition" => {
                a.check(f, &["dbHandle", "partitionPaths", "tableName"], 3)?;
                let db = a.db(f, 0, "dbHandle")?;
                let name = a.text(f, 2, "tableName")?;
                let (d, t) = self.table_meta(&db, &name, Some(Right::Write))?;
                let values = match a.need(f, 1, "partitionPaths")? {
                    Value::Vector(v) => v.clone(),
                    Value::Scalar(s) => {
                        let mut v = Vector::empty(s.data_type());
                        v.push(s.clone()).map_err(bad)?;
                        v
                    }
                    other => {
                        return Err(bad(format!(
                            "{f}: partitionPaths must be partition values, got {}",
                            other.kind_name()
                        )))
                    }
                };
                let mut parts = d.scheme.route(&values).map_err(bad)?;
                parts.sort_unstable();
                parts.dedup();
                let ops = Self::some_chunks(&d, &t, &parts, &ChunkAction::Drop);
                self.transact_op(
                    Some(&d),
                    TaskData::DropPartition {
                        db,
                        table: name,
                        partitions: parts,
                        values,
                    },
                    ops,
                )?;
                Ok(Value::Void)
            }
            "addColumn" => {
                a.check(f, &[], 3)?;
                let (db, table) = a.table_ref(f, 0, "table")?;
                let names = a.names(f, 1, "colNames")?;
                let tys = types(f, a.need(f, 2, "colTypes")?)?;
                if names.len() != tys.len() {
                    return Err(bad(format!(
                        "{f}: {} names but {} types",
                        names.len(),
                        tys.len()
                    )));
                }
                let columns: Vec<(String, DataType)> = names.into_iter().zip(tys).collect();
                self.ddl(TaskData::AddColumn { db, table, columns })?;
                Ok(Value::Void)
            }
            "dropColumns!" => {
                a.check(f, &[], 2)?;
                let (db, table) = a.table_ref(f, 0, "table")?;
                let names = a.names(f, 1, "colNames")?;
                self.ddl(TaskData::DropColumn {
                    db: db.clone(),
                    table: table.clone(),
                    names,
                })?;
                Ok(Value::TableRef { db, table })
            }
            "rename!" => {
                a.check(f, &[], 3)?;
                let (db, table) = a.table_ref(f, 0, "table")?;
                let from = a.names(f, 1, "oldNames")?;
                let to = a.names(f, 2, "newNames")?;
                if from.len() != to.len() {
                    return Err(bad(format!(
                        "{f}: {} old names but {} new ones",
                        from.len(),
                        to.len()
                    )));
                }
                let pairs: Vec<(String, String)> = from.into_iter().zip(to).collect();
                self.ddl(TaskData::RenameColumn {
                    db: db.clone(),
                    table: table.clone(),
                    names: pairs,
                })?;
                Ok(Value::TableRef { db, table })
            }
            "replaceColumn!" => {
                a.check(f, &[], 3)?;
                let (db, table) = a.table_ref(f, 0, "table")?;
                let name = a.text(f, 1, "colName")?;
                let ty = match a.need(f, 2, "newCol")? {
                    Value::Type(t) => *t,
                    Value::Vector(v) => v.data_type(),
                    other => {
                        return Err(bad(format!(
                            "{f}: the new column must be a type or a vector of it, got {}",
                            other.kind_name()
                        )))
                    }
                };
                let (d, t) = self.table_meta(&db, &table, Some(Right::Owner))?;
                let col = t
                    .column(&name)
                    .ok_or_else(|| not_found(format!("table '{table}' has no column '{name}'")))?;
                let ops = Self::all_chunks(
                    &d,
                    &t,
                    &ChunkAction::Convert {
                        column: col.id,
                        to: ty,
                    },
                );
                self.transact_op(
                    Some(&d),
                    TaskData::ReplaceColumn {
                        db: db.clone(),
                        table: table.clone(),
                        column: name,
                        ty,
                    },
                    ops,
                )?;
                Ok(Value::TableRef { db, table })
            }
            "setColumnComment" => {
                let (db, table) = a.table_ref(f, 0, "table")?;
                let pairs: Vec<(String, String)> = match (a.positional.get(1), a.positional.get(2))
                {
                    (Some(Value::Dict(d)), None) => d
                        .iter()
                        .map(|(k, v)| match v {
                            Value::Scalar(Scalar::String(c)) => Ok((k.clone(), c.clone())),
                            other => Err(bad(format!(
                                "{f}: a comment must be a string, got {}",
                                other.kind_name()
                            ))),
                        })
                        .collect::<Result<_, _>>()?,
                    _ => vec![(a.text(f, 1, "colName")?, a.text(f, 2, "comment")?)],
                };
                self.ddl(TaskData::SetColumnComment {
                    db,
                    table,
                    comments: pairs,
                })?;
                Ok(Value::Void)
            }
            "append!" | "tableInsert" => {
                a.check(f, &[], 2)?;
                let data = match a.need(f, 1, "newData")? {
                    Value::Table(t) => t.clone(),
                    other => {
                        return Err(bad(format!(
                            "{f}: the new data must be a table, got {}",
                            other.kind_name()
                        )))
                    }
                };
                match a.need(f, 0, "table")? {
                    Value::TableRef { db, table } => {
                        let rows = self.append(db, table, &data, None)?;
                        if f == "tableInsert" {
                            Ok(Value::Scalar(Scalar::Int(rows as i32)))
                        } else {
                            Ok(Value::TableRef {
                                db: db.clone(),
                                table: table.clone(),
                            })
                        }
                    }
                    Value::Table(t) => {
                        let joined = append_local(t, &data)?;
                        Ok(Value::Table(joined))
                    }
                    other => Err(bad(format!(
                        "{f}: the target must be a table, got {}",
                        other.kind_name()
                    ))),
                }
            }
            "upsert!" => {
                a.check(f, &["obj", "newData", "ignoreNull", "keyColNames"], 4)?;
                let (db, table) = a.table_ref(f, 0, "obj")?;
                let data = match a.need(f, 1, "newData")? {
                    Value::Table(t) => t.clone(),
                    other => {
                        return Err(bad(format!(
                            "{f}: the new data must be a table, got {}",
                            other.kind_name()
                        )))
                    }
                };
                let keys = a.names(f, 3, "keyColNames")?;
                let rows = self.append(&db, &table, &data, Some(&keys))?;
                let _ = rows;
                Ok(Value::TableRef { db, table })
            }
            "createUser" | "grant" => {
                let mut args = a.positional.clone();
                if let Some(Value::Database(p)) = args.get(2) {
                    args[2] = Value::Scalar(Scalar::String(p.clone()));
                }
                self.controller_call(f, args)
            }
            _ => Err(not_found(format!("unknown function '{f}'"))),
        }
    }

    /// The replication functions of a master data node, after their placement was checked.
    pub(crate) fn replication_db_function(
        &mut self,
        f: &str,
        a: &Args,
    ) -> Option<Result<Value, EvalError>> {
        Some(match f {
            "setDatabaseForClusterReplication" => self.set_db_replication(f, a),
            "setDatabaseClusterReplicationExecutionSet" => self.set_execution_set(f, a),
            "checkClusterReplicationConsistency" => self.check_consistency(f, a),
            "getSlaveReplicationExecutionStatus" => a
                .check(f, &[], 0)
                .map(|()| Value::Table(self.execution_status())),
            "getDatabaseClusterReplicationStatus" => a.check(f, &[], 0).and_then(|()| {
                match self
                    .node
                    .block_on_controller(ControllerRequest::ReplicationFlags {
                        token: self.token()?,
                    })? {
                    ControllerReply::Value(v) => Ok(v),
                    other => Err(EvalError::new(
                        ErrorCode::Internal,
                        format!("unexpected answer {other:?}"),
                    )),
                }
            }),
            _ => return None,
        })
    }

    /// `checkClusterReplicationConsistency(dbName[, tableName])`.
    fn check_consistency(&mut self, f: &str, a: &Args) -> Result<Value, EvalError> {
        a.check(f, &["dbName", "tableName"], 2)?;
        let db = a.db(f, 0, "dbName")?;
        let table = match a.get(1, "tableName") {
            None => None,
            Some(_) => Some(a.text(f, 1, "tableName")?),
        };
        let token = self.token()?;
        let node = self.node.clone();
        let t = self
            .node
            .rt
            .block_on(async move { node.check_consistency(&token, &db, table.as_deref()).await })
            .map_err(EvalError::from)?;
        Ok(Value::Table(t))
    }

    /// `getSlaveReplicationExecutionStatus()`: `executionSet, worker, taskId, state` per busy
    /// replay worker of this data node.
    fn execution_status(&self) -> Table {
        let mut rows: Vec<(u32, crate::replay::WorkerState)> = self
            .node
            .replayer
            .as_ref()
            .map(|r| {
                r.workers
                    .iter()
                    .map(|e| (*e.key(), e.value().clone()))
                    .collect()
            })
            .unwrap_or_default();
        rows.sort_by_key(|r| r.0);
        Table::new(
            ["executionSet", "worker", "taskId", "state"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            vec![
                Vector::Int(rows.iter().map(|r| i32::from(r.1.execution_set)).collect()),
                Vector::Int(rows.iter().map(|r| r.0 as i32).collect()),
                Vector::Long(rows.iter().map(|r| r.1.task_id as i64).collect()),
                Vector::String(rows.iter().map(|r| r.1.state.to_string()).collect()),
            ],
        )
        .unwrap_or_else(|_| Table {
            names: vec![],
            columns: vec![],
        })
    }

    /// `setDatabaseForClusterReplication(db, flag)`: turning it on queues a CREATE_DOMAIN task.
    fn set_db_replication(&mut self, f: &str, a: &Args) -> Result<Value, EvalError> {
        a.check(f, &["dbHandle", "enabled"], 2)?;
        let path = a.db(f, 0, "dbHandle")?;
        let enabled = match a.need(f, 1, "enabled")? {
            Value::Scalar(Scalar::Bool(b)) if *b != i8::MIN => *b != 0,
            other => {
                return Err(bad(format!(
                    "{f}: the flag must be true or false, got {}",
                    other.kind_name()
                )))
            }
        };
        let d = self.db_meta(&path, Some(Right::Owner))?;
        if d.replication_enabled == enabled {
            return Ok(Value::Void);
        }
        let task = if enabled {
            self.task(
                true,
                TaskData::CreateDomain {
                    db: path.clone(),
                    scheme: d.scheme.clone(),
                },
                &[],
            )
        } else {
            None
        };
        self.transact(
            vec![CatalogChange::SetReplication { path, enabled }],
            BTreeMap::new(),
            task,
        )?;
        Ok(Value::Void)
    }

    /// `setDatabaseClusterReplicationExecutionSet(db, set)`: 0 or 1.
    fn set_execution_set(&mut self, f: &str, a: &Args) -> Result<Value, EvalError> {
        a.check(f, &["dbHandle", "executionSet"], 2)?;
        let path = a.db(f, 0, "dbHandle")?;
        let set = match a.need(f, 1, "executionSet")? {
            Value::Scalar(Scalar::Int(n)) if (0..=1).contains(n) => *n as u8,
            Value::Scalar(Scalar::Long(n)) if (0..=1).contains(n) => *n as u8,
            other => {
                return Err(bad(format!(
                    "{f}: the execution set must be 0 or 1, got {}",
                    xrepl_query::format::render(other)
                        .unwrap_or_else(|| other.kind_name().to_string())
                )))
            }
        };
        self.db_meta(&path, Some(Right::Owner))?;
        self.transact(
            vec![CatalogChange::SetExecutionSet { path, set }],
            BTreeMap::new(),
            None,
        )?;
        Ok(Value::Void)
    }

    /// Appends (or upserts by `keys`) `data` into a DFS table as one transaction.
    fn append(
        &self,
        db: &str,
        table: &str,
        data: &Table,
        keys: Option<&[String]>,
    ) -> Result<u64, EvalError> {
        let (d, t) = self.table_meta(db, table, Some(Right::Write))?;
        self.check_writable(&d)?;
        let routed = route_rows(&d, &t, data).map_err(bad)?;
        if routed.rows == 0 {
            return Ok(0);
        }
        let placement = match self
            .node
            .block_on_controller(ControllerRequest::PlaceChunks {
                token: self.token()?,
                db: db.to_string(),
                table: table.to_string(),
                partitions: routed.by_part.keys().copied().collect(),
            })? {
            ControllerReply::Placement(p) => p,
            other => {
                return Err(EvalError::new(
                    ErrorCode::Internal,
                    format!("unexpected answer {other:?}"),
                ))
            }
        };
        let ops = append_ops(&d, &t, &routed, &placement, keys).map_err(|e| {
            EvalError::new(
                if e.contains("no data node") {
                    ErrorCode::Unavailable
                } else {
                    ErrorCode::NotFound
                },
                e,
            )
        })?;
        let partitions: Vec<u32> = routed.by_part.keys().copied().collect();
        let cols = routed.cols;
        let replicated = self.replicates(Some(&d));
        // The task data holds the rows only when the database is replicated.
        let rows_kept = if replicated {
            Table::new(t.columns.iter().map(|c| c.name.clone()).collect(), cols).map_err(bad)?
        } else {
            Table {
                names: vec![],
                columns: vec![],
            }
        };
        let data = match keys {
            None => TaskData::Append {
                db: db.to_string(),
                table: table.to_string(),
                data: rows_kept,
            },
            Some(k) => TaskData::Upsert {
                db: db.to_string(),
                table: table.to_string(),
                data: rows_kept,
                keys: k.to_vec(),
            },
        };
        let task = self.task(replicated, data, &partitions);
        self.transact(vec![], ops, task)
    }

    /// Compiles a condition or value over a table's columns; parts that name no column are
    /// evaluated here, as constants.
    fn col_expr(&mut self, e: &Expr, columns: &[ColumnDef]) -> Result<ColExpr, EvalError> {
        let is_col = |n: &str| columns.iter().any(|c| c.name == n);
        if !mentions_column(e, &is_col) {
            return Ok(match self.eval(e)? {
                Value::Scalar(s) => ColExpr::Const(s),
                Value::Vector(v) => ColExpr::ConstVector(v),
                other => return Err(bad(format!("a condition cannot use {}", other.kind_name()))),
            });
        }
        Ok(match &e.kind {
            ExprKind::Ident(n) => ColExpr::Column(n.clone()),
            ExprKind::Unary { op: UnaryOp::Not, expr } => ColExpr::Not(Box::new(self.col_expr(expr, columns)?)),
            ExprKind::Unary { op: UnaryOp::Neg, expr } => ColExpr::Neg(Box::new(self.col_expr(expr, columns)?)),
            ExprKind::Binary { op: BinOp::In, lhs, rhs } => {
                let set = match self.eval(rhs)? {
                    Value::Vector(v) => v,
                    Value::Scalar(s) => {
                        let mut v = Vector::empty(s.data_type());
                        v.push(s).map_err(bad)?;
                        v
                    }
                    other => return Err(bad(format!("'in' needs values, got {}", other.kind_name()))),
                };
                ColExpr::In(Box::new(self.col_expr(lhs, columns)?), set)
            }
            ExprKind::Binary { op: BinOp::Between, lhs, rhs } => match self.eval(rhs)? {
                Value::Pair(lo, hi) => ColExpr::Between(Box::new(self.col_expr(lhs, columns)?), *lo, *hi),
                other => return Err(bad(format!("between needs a pair such as 1:5, got {}", other.kind_name()))),
            },
            ExprKind::Binary { op, lhs, rhs } => ColExpr::Binary(
                *op,
                Box::new(self.col_expr(lhs, columns)?),
                Box::new(self.col_expr(rhs, columns)?),
            ),
            _ => return Err(bad("only columns, constants, operators, 'in' and 'between' may be combined in a condition".to_string())),
        })
    }

    /// `update t set ... where ...` on a DFS table.
    pub(crate) fn sql_update(
        &mut self,
        table: &Expr,
        set: &[(String, Expr)],
        filter: Option<&Expr>,
    ) -> Result<Value, EvalError> {
        let (db, name) = match self.eval(table)? {
            Value::TableRef { db, table } => (db, table),
            other => {
                return Err(bad(format!(
                    "update needs a DFS table (loadTable), got {}",
                    other.kind_name()
                )))
            }
        };
        let (d, t) = self.table_meta(&db, &name, Some(Right::Write))?;
        let mut compiled = Vec::new();
        for (c, e) in set {
            if t.column(c).is_none() {
                return Err(not_found(format!("table '{name}' has no column '{c}'")));
            }
            if t.partition_column().is_some_and(|p| &p.name == c) {
                return Err(bad(format!(
                    "'{c}' is the partition column and cannot be updated"
                )));
            }
            compiled.push((c.clone(), self.col_expr(e, &t.columns)?));
        }
        let filter = filter.map(|f| self.col_expr(f, &t.columns)).transpose()?;
        let ops = Self::all_chunks(
            &d,
            &t,
            &ChunkAction::Update {
                set: compiled.clone(),
                filter: filter.clone(),
            },
        );
        let rows = self.transact_op(
            Some(&d),
            TaskData::SqlUpdate {
                db,
                table: name,
                set: compiled,
                filter,
            },
            ops,
        )?;
        let _ = rows;
        Ok(Value::Void)
    }

    /// `delete from t where ...` on a DFS table.
    pub(crate) fn sql_delete(
        &mut self,
        table: &Expr,
        filter: Option<&Expr>,
    ) -> Result<Value, EvalError> {
        let (db, name) = match self.eval(table)? {
            Value::TableRef { db, table } => (db, table),
            other => {
                return Err(bad(format!(
                    "delete needs a DFS table (loadTable), got {}",
                    other.kind_name()
                )))
            }
        };
        let (d, t) = self.table_meta(&db, &name, Some(Right::Write))?;
        let filter = filter.map(|f| self.col_expr(f, &t.columns)).transpose()?;
        let ops = Self::all_chunks(
            &d,
            &t,
            &ChunkAction::Delete {
                filter: filter.clone(),
            },
        );
        self.transact_op(
            Some(&d),
            TaskData::SqlDelete {
                db,
                table: name,
                filter,
            },
            ops,
        )?;
        Ok(Value::Void)
    }

    /// `insert into t values (...)`.
    pub(crate) fn sql_insert(
        &mut self,
        table: &Expr,
        columns: Option<&[String]>,
        values: &[Expr],
    ) -> Result<Value, EvalError> {
        let target = self.eval(table)?;
        let vals = values
            .iter()
            .map(|v| self.eval(v))
            .collect::<Result<Vec<_>, _>>()?;
        let cols: Vec<Vector> = vals
            .into_iter()
            .map(|v| match v {
                Value::Vector(v) => Ok(v),
                Value::Scalar(s) => {
                    let mut v = Vector::empty(s.data_type());
                    v.push(s).map_err(bad)?;
                    Ok(v)
                }
                other => Err(bad(format!(
                    "insert takes scalars or vectors, got {}",
                    other.kind_name()
                ))),
            })
            .collect::<Result<_, _>>()?;
        let Value::TableRef { db, table } = target else {
            return Err(bad("insert into needs a DFS table (loadTable)"));
        };
        let (_, t) = self.table_meta(&db, &table, Some(Right::Write))?;
        let names: Vec<String> = match columns {
            Some(c) => c.to_vec(),
            None => t.columns.iter().map(|c| c.name.clone()).collect(),
        };
        if names.len() != cols.len() {
            return Err(bad(format!(
                "insert names {} columns but gives {} values",
                names.len(),
                cols.len()
            )));
        }
        let rows = cols.first().map_or(0, Vector::len);
        // Columns left out are NULL.
        let full: Vec<Vector> = t
            .columns
            .iter()
            .map(|c| match names.iter().position(|n| n == &c.name) {
                Some(i) => cols[i].clone(),
                None => ops::nulls(c.ty, rows),
            })
            .collect();
        let data =
            Table::new(t.columns.iter().map(|c| c.name.clone()).collect(), full).map_err(bad)?;
        self.append(&db, &table, &data, None)?;
        Ok(Value::Void)
    }

    /// `select ...` over a DFS table or a table in a variable.
    pub(crate) fn sql_select(&mut self, q: &Select) -> Result<Value, EvalError> {
        let source = self.eval(&q.from)?;
        let (defs, dfs) = match &source {
            Value::TableRef { db, table } => {
                let (_, t) = self.table_meta(db, table, Some(Right::Read))?;
                (t.columns.clone(), Some(t))
            }
            Value::Table(t) => (defs_of(t), None),
            other => {
                return Err(bad(format!(
                    "select needs a table, got {}",
                    other.kind_name()
                )))
            }
        };
        // What to compute.
        let mut items: Vec<(String, Item)> = Vec::new();
        for it in &q.items {
            match it {
                SelectItem::All => {
                    for d in &defs {
                        items.push((d.name.clone(), Item::Column(d.name.clone())));
                    }
                }
                SelectItem::Expr { expr, alias } => {
                    let name = alias.clone().unwrap_or_else(|| item_name(expr));
                    let item = match &expr.kind {
                        ExprKind::Ident(c) if defs.iter().any(|d| &d.name == c) => {
                            Item::Column(c.clone())
                        }
                        ExprKind::Call { func, args } => {
                            let f = match &func.kind {
                                ExprKind::Ident(n) => n.to_ascii_lowercase(),
                                _ => String::new(),
                            };
                            let agg = AggFn::from_name(&f).ok_or_else(|| bad(format!("'{f}' is not an aggregate select supports (count, sum, avg, min, max)")))?;
                            match args.first().map(|a| &a.value.kind) {
                                Some(ExprKind::Star) if agg == AggFn::Count => Item::Agg(agg, None),
                                Some(ExprKind::Ident(c)) if defs.iter().any(|d| &d.name == c) => {
                                    Item::Agg(agg, Some(c.clone()))
                                }
                                _ => return Err(bad(format!("{f} takes one column of the table"))),
                            }
                        }
                        ExprKind::Ident(c) => {
                            return Err(not_found(format!("the table has no column '{c}'")))
                        }
                        _ => {
                            return Err(bad(
                                "select items must be columns or aggregates of columns",
                            ))
                        }
                    };
                    items.push((name, item));
                }
            }
        }
        if q.group_by.len() > 1 {
            return Err(bad("group by one column is supported"));
        }
        let group_by = q.group_by.first().cloned();
        if let Some(g) = &group_by {
            if !defs.iter().any(|d| &d.name == g) {
                return Err(not_found(format!("the table has no column '{g}'")));
            }
        }
        let aggregate = group_by.is_some() || items.iter().any(|(_, i)| matches!(i, Item::Agg(..)));
        // The group column leads the result, as in DolphinDB, unless it was selected.
        if let Some(g) = &group_by {
            if !items
                .iter()
                .any(|(_, i)| matches!(i, Item::Column(c) if c == g))
            {
                items.insert(0, (g.clone(), Item::Column(g.clone())));
            }
        }
        if aggregate {
            for (n, i) in &items {
                if let Item::Column(c) = i {
                    if group_by.as_ref() != Some(c) {
                        return Err(bad(format!(
                            "'{n}' must be the group by column or an aggregate"
                        )));
                    }
                }
            }
        }
        let filter = q
            .filter
            .as_ref()
            .map(|f| self.col_expr(f, &defs))
            .transpose()?;
        let shape = if aggregate {
            ScanShape::Aggregate {
                group_by: group_by.clone(),
                aggs: items
                    .iter()
                    .filter_map(|(_, i)| match i {
                        Item::Agg(f, c) => Some((*f, c.clone())),
                        Item::Column(_) => None,
                    })
                    .collect(),
            }
        } else {
            ScanShape::Rows {
                project: items
                    .iter()
                    .filter_map(|(_, i)| match i {
                        Item::Column(c) => Some(c.clone()),
                        Item::Agg(..) => None,
                    })
                    .collect(),
            }
        };
        let results: Vec<ScanResult> = match (&dfs, &source) {
            (Some(t), _) => {
                let scans = scans_by_node(t, &defs, filter.as_ref(), &shape);
                let node = self.node.clone();
                self.node
                    .rt
                    .block_on(async move { node.scan_all(scans).await })
                    .map_err(EvalError::from)?
            }
            (None, Value::Table(local)) => vec![scan_local(local, &defs, filter.as_ref(), &shape)?],
            _ => Vec::new(),
        };
        let mut out = combine(&items, &defs, &shape, results)?;
        order_and_limit(self, &mut out, q)?;
        Ok(Value::Table(out))
    }
}

/// One scan per data node holding chunks of `t`, over all of them.
pub(crate) fn scans_by_node(
    t: &TableMeta,
    columns: &[ColumnDef],
    filter: Option<&ColExpr>,
    shape: &ScanShape,
) -> BTreeMap<String, Scan> {
    let mut by_node: BTreeMap<String, Vec<ChunkId>> = BTreeMap::new();
    for (p, n) in &t.chunks {
        by_node.entry(n.clone()).or_default().push(ChunkId {
            table: t.id,
            partition: *p,
        });
    }
    by_node
        .into_iter()
        .map(|(n, chunks)| {
            let scan = Scan {
                chunks,
                columns: columns.to_vec(),
                filter: filter.cloned(),
                shape: shape.clone(),
            };
            (n, scan)
        })
        .collect()
}

/// An append's (or upsert's) rows, converted to the table's types, split by partition.
pub(crate) struct Routed {
    pub cols: Vec<Vector>,
    pub by_part: BTreeMap<u32, Vec<usize>>,
    pub rows: usize,
}

/// Converts `data` (columns by position) to table `t`'s types and routes its rows to partitions.
pub(crate) fn route_rows(d: &DatabaseMeta, t: &TableMeta, data: &Table) -> Result<Routed, String> {
    if data.columns.len() != t.columns.len() {
        return Err(format!(
            "the table '{}' has {} columns but the new data has {}",
            t.name,
            t.columns.len(),
            data.columns.len()
        ));
    }
    let cols: Vec<Vector> = t
        .columns
        .iter()
        .zip(&data.columns)
        .map(|(def, v)| ops::cast(v, def.ty).map_err(|e| format!("column '{}': {e}", def.name)))
        .collect::<Result<_, _>>()?;
    let rows = cols.first().map_or(0, Vector::len);
    let parts: Vec<u32> = match t.partition_column() {
        None => vec![0; rows],
        Some(pc) => {
            let i = t.columns.iter().position(|c| c.id == pc.id).unwrap_or(0);
            d.scheme
                .route(&cols[i])
                .map_err(|e| format!("cannot append to '{}': {e}", t.name))?
        }
    };
    let mut by_part: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (r, p) in parts.iter().enumerate() {
        by_part.entry(*p).or_default().push(r);
    }
    Ok(Routed {
        cols,
        by_part,
        rows,
    })
}

/// The chunk ops of an append (or an upsert by `keys`) of routed rows, by data node.
pub(crate) fn append_ops(
    d: &DatabaseMeta,
    t: &TableMeta,
    routed: &Routed,
    placement: &BTreeMap<u32, String>,
    keys: Option<&[String]>,
) -> Result<BTreeMap<String, Vec<ChunkOp>>, String> {
    let key_ids: Option<Vec<u32>> = match keys {
        None => None,
        Some(k) => Some(
            k.iter()
                .map(|n| {
                    t.column(n)
                        .map(|c| c.id)
                        .ok_or_else(|| format!("table '{}' has no column '{n}'", t.name))
                })
                .collect::<Result<_, _>>()?,
        ),
    };
    let mut ops: BTreeMap<String, Vec<ChunkOp>> = BTreeMap::new();
    let single = routed.by_part.len() == 1;
    for (p, idx) in &routed.by_part {
        let node = placement
            .get(p)
            .ok_or_else(|| format!("partition {p} has no data node"))?;
        let columns: Vec<(u32, Vector)> = t
            .columns
            .iter()
            .zip(&routed.cols)
            .map(|(def, v)| {
                (
                    def.id,
                    if single {
                        v.clone()
                    } else {
                        ops::take_indices(v, idx)
                    },
                )
            })
            .collect();
        let action = match &key_ids {
            None => ChunkAction::Append { columns },
            Some(k) => ChunkAction::Upsert {
                columns,
                keys: k.clone(),
            },
        };
        ops.entry(node.clone()).or_default().push(ChunkOp {
            chunk: ChunkId {
                table: t.id,
                partition: *p,
            },
            label: chunk_label(d, t, *p),
            columns: t.columns.clone(),
            action,
        });
    }
    Ok(ops)
}

/// `dfs://db/table/partition`, for messages.
fn chunk_label(d: &DatabaseMeta, t: &TableMeta, p: u32) -> String {
    let part = match t.kind {
        TableKind::Dimension => String::new(),
        TableKind::Partitioned { .. } => d.scheme.partition_name(p),
    };
    format!("{}/{}/{part}", d.path, t.name)
}

fn mentions_column(e: &Expr, is_col: &dyn Fn(&str) -> bool) -> bool {
    match &e.kind {
        ExprKind::Ident(n) => is_col(n),
        ExprKind::Unary { expr, .. } => mentions_column(expr, is_col),
        ExprKind::Binary { lhs, rhs, .. } => {
            mentions_column(lhs, is_col) || mentions_column(rhs, is_col)
        }
        ExprKind::Call { args, .. } | ExprKind::Method { args, .. } => {
            args.iter().any(|a| mentions_column(&a.value, is_col))
        }
        _ => false,
    }
}

/// Reads an in-memory table as one chunk.
fn scan_local(
    t: &Table,
    defs: &[ColumnDef],
    filter: Option<&ColExpr>,
    shape: &ScanShape,
) -> Result<ScanResult, EvalError> {
    let rows = t.rows();
    let lookup = |n: &str| t.column(n);
    let mask = match filter {
        None => vec![true; rows],
        Some(f) => f.mask(&lookup, rows).map_err(EvalError::runtime)?,
    };
    let col = |n: &str| -> Result<Vector, EvalError> {
        t.column(n)
            .map(|v| ops::filter(v, &mask))
            .ok_or_else(|| not_found(format!("the table has no column '{n}'")))
    };
    let _ = defs;
    match shape {
        ScanShape::Checksum => Err(bad("a checksum scan of an in-memory table")),
        ScanShape::Rows { project } => Ok(ScanResult::Rows(
            project.iter().map(|n| col(n)).collect::<Result<_, _>>()?,
        )),
        ScanShape::Aggregate { group_by, aggs } => {
            let hits = mask.iter().filter(|m| **m).count();
            let part = |c: &Option<String>, idx: Option<&[usize]>| -> Result<Partial, EvalError> {
                match c {
                    None => Ok(Partial {
                        count: idx.map_or(hits, <[usize]>::len) as i64,
                        ..Partial::empty()
                    }),
                    Some(c) => {
                        let v = col(c)?;
                        let v = match idx {
                            Some(i) => ops::take_indices(&v, i),
                            None => v,
                        };
                        Partial::of(&v).map_err(EvalError::runtime)
                    }
                }
            };
            match group_by {
                None => Ok(ScanResult::Groups {
                    keys: None,
                    partials: aggs
                        .iter()
                        .map(|(_, c)| part(c, None).map(|p| vec![p]))
                        .collect::<Result<_, _>>()?,
                }),
                Some(g) => {
                    let keys = col(g)?;
                    let mut order: Vec<Scalar> = Vec::new();
                    let mut idx: BTreeMap<String, Vec<usize>> = BTreeMap::new();
                    for i in 0..keys.len() {
                        let k = keys
                            .get(i)
                            .unwrap_or(Scalar::Int(xrepl_core::value::NULL_INT));
                        let e = idx.entry(k.render()).or_insert_with(|| {
                            order.push(k.clone());
                            Vec::new()
                        });
                        e.push(i);
                    }
                    let mut kv = Vector::empty(keys.data_type());
                    let mut partials = vec![Vec::new(); aggs.len()];
                    for k in order {
                        let rows = idx.get(&k.render()).cloned().unwrap_or_default();
                        for (j, (_, c)) in aggs.iter().enumerate() {
                            partials[j].push(part(c, Some(&rows))?);
                        }
                        kv.push(k).map_err(EvalError::runtime)?;
                    }
                    Ok(ScanResult::Groups {
                        keys: Some(kv),
                        partials,
                    })
                }
            }
        }
    }
}

/// Merges the participants' answers into the result table.
fn combine(
    items: &[(String, Item)],
    defs: &[ColumnDef],
    shape: &ScanShape,
    results: Vec<ScanResult>,
) -> Result<Table, EvalError> {
    let type_of = |c: &str| {
        defs.iter()
            .find(|d| d.name == c)
            .map_or(DataType::Int, |d| d.ty)
    };
    match shape {
        ScanShape::Checksum => Err(bad("select does not compute checksums")),
        ScanShape::Rows { project } => {
            let mut acc: Vec<Vector> = project.iter().map(|c| Vector::empty(type_of(c))).collect();
            for r in results {
                if let ScanResult::Rows(cols) = r {
                    for (a, c) in acc.iter_mut().zip(cols) {
                        *a = ops::concat(a, &c).map_err(EvalError::runtime)?;
                    }
                }
            }
            Table::new(items.iter().map(|(n, _)| n.clone()).collect(), acc)
                .map_err(EvalError::runtime)
        }
        ScanShape::Aggregate { group_by, aggs } => {
            // Group key (rendered) -> (key, partial per aggregate)
            let mut groups: Vec<(Option<Scalar>, Vec<Partial>)> = Vec::new();
            let mut at: BTreeMap<String, usize> = BTreeMap::new();
            for r in results {
                let ScanResult::Groups { keys, partials } = r else {
                    continue;
                };
                let n = partials.first().map_or(0, Vec::len);
                for g in 0..n {
                    let key = keys.as_ref().and_then(|k| k.get(g));
                    let name = key.as_ref().map(Scalar::render).unwrap_or_default();
                    let ps: Vec<Partial> = partials
                        .iter()
                        .map(|p| p.get(g).cloned().unwrap_or_else(Partial::empty))
                        .collect();
                    match at.get(&name) {
                        Some(i) => {
                            for (acc, p) in groups[*i].1.iter_mut().zip(&ps) {
                                acc.merge(p).map_err(EvalError::runtime)?;
                            }
                        }
                        None => {
                            at.insert(name, groups.len());
                            groups.push((key, ps));
                        }
                    }
                }
            }
            if group_by.is_none() && groups.is_empty() {
                groups.push((None, aggs.iter().map(|_| Partial::empty()).collect()));
            }
            // Groups come out in key order.
            groups.sort_by(|(a, _), (b, _)| match (a, b) {
                (Some(a), Some(b)) => compare(a, b),
                _ => std::cmp::Ordering::Equal,
            });
            let mut names = Vec::new();
            let mut cols = Vec::new();
            let mut agg_i = 0;
            for (n, item) in items {
                names.push(n.clone());
                match item {
                    Item::Column(c) => {
                        let mut v = Vector::empty(type_of(c));
                        for (k, _) in &groups {
                            v.push(k.clone().unwrap_or_else(|| ops::null_of(type_of(c))))
                                .map_err(EvalError::runtime)?;
                        }
                        cols.push(v);
                    }
                    Item::Agg(f, c) => {
                        let t = c.as_deref().map_or(DataType::Long, type_of);
                        let values: Vec<Scalar> = groups
                            .iter()
                            .map(|(_, ps)| ps[agg_i].finish(*f, t))
                            .collect();
                        let mut v =
                            Vector::empty(values.first().map_or(DataType::Long, Scalar::data_type));
                        for s in values {
                            v.push(s).map_err(EvalError::runtime)?;
                        }
                        cols.push(v);
                        agg_i += 1;
                    }
                }
            }
            Table::new(names, cols).map_err(EvalError::runtime)
        }
    }
}

fn order_and_limit(s: &mut Session, t: &mut Table, q: &Select) -> Result<(), EvalError> {
    if !q.order_by.is_empty() {
        let mut idx: Vec<usize> = (0..t.rows()).collect();
        let keys: Vec<(&Vector, bool)> = q
            .order_by
            .iter()
            .map(|(c, desc)| {
                t.column(c).map(|v| (v, *desc)).ok_or_else(|| {
                    not_found(format!("cannot order by '{c}': not a column of the result"))
                })
            })
            .collect::<Result<_, _>>()?;
        idx.sort_by(|a, b| {
            for (v, desc) in &keys {
                let (x, y) = (v.get(*a), v.get(*b));
                let o = match (x, y) {
                    (Some(x), Some(y)) => compare(&x, &y),
                    _ => std::cmp::Ordering::Equal,
                };
                if o != std::cmp::Ordering::Equal {
                    return if *desc { o.reverse() } else { o };
                }
            }
            std::cmp::Ordering::Equal
        });
        t.columns = t
            .columns
            .iter()
            .map(|c| ops::take_indices(c, &idx))
            .collect();
    }
    if let Some(l) = &q.limit {
        let n = match s.eval(l)? {
            Value::Scalar(Scalar::Int(n)) if n >= 0 => n as usize,
            Value::Scalar(Scalar::Long(n)) if n >= 0 => n as usize,
            other => {
                return Err(bad(format!(
                    "limit needs a count, got {}",
                    other.kind_name()
                )))
            }
        };
        let idx: Vec<usize> = (0..t.rows().min(n)).collect();
        t.columns = t
            .columns
            .iter()
            .map(|c| ops::take_indices(c, &idx))
            .collect();
    }
    Ok(())
}

fn compare(a: &Scalar, b: &Scalar) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let lt = |x: &Scalar, y: &Scalar| {
        matches!(
            ops::binary(
                BinOp::Lt,
                &Value::Scalar(x.clone()),
                &Value::Scalar(y.clone())
            ),
            Ok(Value::Scalar(Scalar::Bool(1)))
        )
    };
    if lt(a, b) {
        Ordering::Less
    } else if lt(b, a) {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

/// The partition scheme of `database(path, kind, scheme)`.
fn scheme_of(kind: &Value, scheme: &Value) -> Result<PartitionScheme, EvalError> {
    let Value::Keyword(k) = kind else {
        return Err(bad(format!(
            "the partition type must be VALUE, RANGE, HASH or LIST, got {}",
            kind.kind_name()
        )));
    };
    match (k.as_str(), scheme) {
        ("VALUE", Value::Vector(v)) => Ok(PartitionScheme::Value(v.clone())),
        ("RANGE", Value::Vector(v)) => Ok(PartitionScheme::Range(v.clone())),
        ("HASH", Value::Tuple(items)) => match items.as_slice() {
            [Value::Type(ty), Value::Scalar(n)] => {
                let buckets = match n {
                    Scalar::Int(b) if *b > 0 => *b as u32,
                    Scalar::Long(b) if *b > 0 && *b <= 65_536 => *b as u32,
                    _ => return Err(bad("HASH needs [type, number of buckets]")),
                };
                Ok(PartitionScheme::Hash { ty: *ty, buckets })
            }
            _ => Err(bad("HASH needs [type, number of buckets], e.g. [INT, 10]")),
        },
        ("LIST", Value::Tuple(items)) => items
            .iter()
            .map(|i| match i {
                Value::Vector(v) => Ok(v.clone()),
                Value::Scalar(s) => {
                    let mut v = Vector::empty(s.data_type());
                    v.push(s.clone()).map_err(bad)?;
                    Ok(v)
                }
                other => Err(bad(format!(
                    "a LIST scheme holds lists of values, not {}",
                    other.kind_name()
                ))),
            })
            .collect::<Result<_, _>>()
            .map(PartitionScheme::List),
        ("LIST", Value::Vector(v)) => Ok(PartitionScheme::List(
            (0..v.len())
                .filter_map(|i| v.get(i))
                .map(|s| {
                    let mut one = Vector::empty(s.data_type());
                    let _ = one.push(s);
                    one
                })
                .collect(),
        )),
        (k, other) => Err(bad(format!(
            "a {k} scheme cannot be made from {}",
            other.kind_name()
        ))),
    }
}

fn col_defs(defs: &[ColumnDef]) -> Table {
    Table {
        names: vec!["name".into(), "typeString".into(), "comment".into()],
        columns: vec![
            Vector::String(defs.iter().map(|d| d.name.clone()).collect()),
            Vector::String(defs.iter().map(|d| d.ty.name().to_string()).collect()),
            Vector::String(defs.iter().map(|d| d.comment.clone()).collect()),
        ],
    }
}

fn scheme_value(s: &PartitionScheme) -> Value {
    match s {
        PartitionScheme::Value(v) | PartitionScheme::Range(v) => Value::Vector(v.clone()),
        PartitionScheme::Hash { ty, buckets } => Value::Tuple(vec![
            Value::Type(*ty),
            Value::Scalar(Scalar::Int(*buckets as i32)),
        ]),
        PartitionScheme::List(l) => Value::Tuple(l.iter().cloned().map(Value::Vector).collect()),
    }
}

fn db_schema(d: &DatabaseMeta) -> Value {
    Value::Dict(vec![
        (
            "databaseDir".into(),
            Value::Scalar(Scalar::string(d.path.clone())),
        ),
        (
            "partitionType".into(),
            Value::Keyword(d.scheme.kind_name().into()),
        ),
        ("partitionSchema".into(), scheme_value(&d.scheme)),
        (
            "partitions".into(),
            Value::Scalar(Scalar::Int(d.scheme.partitions() as i32)),
        ),
        (
            "tables".into(),
            Value::Vector(Vector::String(d.tables.keys().cloned().collect())),
        ),
        (
            "clusterReplicationEnabled".into(),
            Value::Scalar(Scalar::bool(d.replication_enabled)),
        ),
        (
            "clusterReplicationExecutionSet".into(),
            Value::Scalar(Scalar::Int(i32::from(d.execution_set))),
        ),
    ])
}

fn table_schema(d: &DatabaseMeta, t: &TableMeta) -> Value {
    let mut out = vec![
        (
            "tableName".into(),
            Value::Scalar(Scalar::string(t.name.clone())),
        ),
        ("colDefs".into(), Value::Table(col_defs(&t.columns))),
        (
            "partitionType".into(),
            Value::Keyword(d.scheme.kind_name().into()),
        ),
    ];
    if let Some(c) = t.partition_column() {
        out.push((
            "partitionColumnName".into(),
            Value::Scalar(Scalar::string(c.name.clone())),
        ));
    }
    out.push((
        "chunks".into(),
        Value::Table(Table {
            names: vec!["partition".into(), "node".into()],
            columns: vec![
                Vector::String(
                    t.chunks
                        .keys()
                        .map(|p| d.scheme.partition_name(*p))
                        .collect(),
                ),
                Vector::String(t.chunks.values().cloned().collect()),
            ],
        }),
    ));
    out.push((
        "clusterReplicationEnabled".into(),
        Value::Scalar(Scalar::bool(d.replication_enabled)),
    ));
    Value::Dict(out)
}

/// `t.append!(u)` on in-memory tables: columns by position, converted to `t`'s types.
fn append_local(t: &Table, u: &Table) -> Result<Table, EvalError> {
    if t.columns.len() != u.columns.len() {
        return Err(bad(format!(
            "the table has {} columns but the new data has {}",
            t.columns.len(),
            u.columns.len()
        )));
    }
    let cols = t
        .columns
        .iter()
        .zip(&u.columns)
        .map(|(a, b)| ops::cast(b, a.data_type()).and_then(|b| ops::concat(a, &b)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(EvalError::runtime)?;
    Table::new(t.names.clone(), cols).map_err(EvalError::runtime)
}

#[allow(dead_code)]
fn literal_is_star(e: &Expr) -> bool {
    matches!(e.kind, ExprKind::Star) || matches!(e.kind, ExprKind::Literal(Literal::Null))
}
