//! How a session's write becomes a transaction: the read-only rule of a slave, the task a
//! master's transaction makes, running it through the coordinator; and the append pipeline
//! behind `append!`, `tableInsert` and `upsert!` (convert, route, place, cut by chunk).

use std::collections::BTreeMap;
use std::sync::Arc;

use xrepl_core::catalog::{CatalogChange, DatabaseMeta, Right, TableMeta};
use xrepl_core::config::ReplicationMode;
use xrepl_core::value::{Scalar, Table, Value};
use xrepl_proto::rpc::{CatalogCheck, ErrorCode};
use xrepl_proto::task::TaskData;
use xrepl_query::ops;

use crate::plan::{self, OpsByNode};
use crate::session::args::{bad, not_found, Args, EvalError};
use crate::session::state::{Handler, Session};
use crate::txn::coordinator::{Tx, TxTask};

/// The functions of this module.
pub const FUNCTIONS: &[(&str, Handler)] = &[
    ("append!", append_fn),
    ("tableInsert", append_fn),
    ("upsert!", upsert),
];

/// Whether a transaction keeps its task data: on a master, for a database whose replication
/// flag is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replication {
    Replicated,
    NotReplicated,
}

impl Session {
    /// Whether a transaction on `d` makes a replication task here (this is a master data node
    /// and the database's replication flag is on).
    pub(crate) fn replicates(&self, d: Option<&DatabaseMeta>) -> Replication {
        if self.node.is_master() && d.is_some_and(|d| d.replication_enabled) {
            Replication::Replicated
        } else {
            Replication::NotReplicated
        }
    }

    /// On a slave, a replicated database is written by replication only: anyone but the
    /// execution user is refused.
    pub(crate) fn check_writable(&self, d: &DatabaseMeta) -> Result<(), EvalError> {
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
    /// its data when it is replicated. `partitions`: those an append or upsert writes.
    pub(crate) fn task(
        &self,
        replication: Replication,
        data: TaskData,
        partitions: &[u32],
    ) -> Option<TxTask> {
        if !self.node.is_master() {
            return None;
        }
        let cfg = &self.node.cfg;
        let (host, port) = cfg
            .replication
            .as_ref()
            .and_then(|r| r.public_address.as_ref())
            .map_or((cfg.host.as_str(), cfg.port), |(h, p)| (h.as_str(), *p));
        let meta = data.meta(partitions, host, port);
        Some(TxTask {
            meta,
            data: (replication == Replication::Replicated).then_some(data),
        })
    }

    /// One operation on database `d` as a transaction: its catalog changes come from its task
    /// data (the same mapping a slave replays), its task data is kept when `d` is replicated.
    pub(crate) fn transact_op(
        &self,
        d: Option<&DatabaseMeta>,
        data: TaskData,
        ops: OpsByNode,
    ) -> Result<u64, EvalError> {
        if let Some(d) = d {
            self.check_writable(d)?;
        }
        let changes = data.catalog_changes();
        let task = self.task(self.replicates(d), data, &[]);
        // A write of rows (an update, a delete, a truncate) names the database it was planned
        // with: the controller checks the right and the definition at the decision, and that
        // its task names that database. A DDL names it in its catalog changes.
        let check = match d {
            Some(d) if changes.is_empty() => Some(CatalogCheck {
                db: d.path.clone(),
                version: d.version,
                need: Right::Write,
            }),
            _ => None,
        };
        self.run_tx(Tx {
            task,
            check,
            ..Tx::new(changes, ops)
        })
    }

    /// A DDL that changes only the catalog (its database's replication flag is looked up).
    pub(crate) fn ddl(&self, data: TaskData) -> Result<u64, EvalError> {
        // A master needs the flag to make a task, a slave to refuse writes to a replicated db.
        let d = if self.node.cfg.replication.is_some() {
            self.fetch_db(data.db(), None)?
        } else {
            None
        };
        self.transact_op(d.as_ref(), data, BTreeMap::new())
    }

    /// Runs a transaction; returns the rows it touched.
    pub(crate) fn transact(
        &self,
        changes: Vec<CatalogChange>,
        ops: OpsByNode,
        task: Option<TxTask>,
    ) -> Result<u64, EvalError> {
        self.run_tx(Tx {
            task,
            ..Tx::new(changes, ops)
        })
    }

    /// Runs a transaction as the session's user; returns the rows it touched.
    pub(crate) fn run_tx(&self, tx: Tx) -> Result<u64, EvalError> {
        let token = self.token()?;
        let txn = self.node.txn.clone();
        self.block_on(async move { txn.run_tx(&token, tx).await })
            .map(|(_, rows)| rows)
            .map_err(EvalError::from)
    }

    /// The database and table a write goes to: from the node's catalog cache once the
    /// controller has found this session's user to hold `need` on the database (it checks the
    /// right and the cached version again with the commit), else read from the controller.
    pub(crate) fn table_for(
        &mut self,
        db: &str,
        table: &str,
        need: Right,
    ) -> Result<(Arc<DatabaseMeta>, TableMeta), EvalError> {
        if self.verified.get(db).is_some_and(|r| *r >= need) {
            if let Some(d) = self.node.catalog.get(db) {
                if let Some(t) = d.tables.get(table) {
                    let t = t.clone();
                    return Ok((d, t));
                }
            }
        }
        let d = self
            .fetch_db(db, Some(need))?
            .ok_or_else(|| not_found(format!("database '{db}' does not exist")))?;
        self.verified.insert(db.to_string(), need);
        let t = d.tables.get(table).cloned().ok_or_else(|| {
            not_found(format!("table '{table}' does not exist in database '{db}'"))
        })?;
        Ok((Arc::new(d), t))
    }

    /// Appends (or upserts by `keys`) `data` into a DFS table as one transaction, planned
    /// with the node's catalog cache; when the controller finds the cache stale, the cached
    /// copy is forgotten and the append planned and run again (at most [`STALE_RETRIES`]
    /// times).
    ///
    /// A large append (at least [`LARGE_APPEND`] rows) is planned with the database read
    /// afresh from the controller instead, and consumes `data` as it is cut into partitions,
    /// so that the rows are held about once, not three times (a copy kept for a retry, the
    /// converted columns, the partitions); should the database change while it runs, it
    /// fails with a clear error, and nothing is written.
    pub(crate) fn append(
        &mut self,
        db: &str,
        table: &str,
        data: Table,
        keys: Option<&[String]>,
    ) -> Result<u64, EvalError> {
        if data.rows() >= LARGE_APPEND {
            self.node.catalog.forget(db);
            self.verified.remove(db);
            return self.append_once(db, table, data, keys);
        }
        let mut attempt = 0;
        let mut gave_way = 0u32;
        let give_up_at = std::time::Instant::now() + self.node.cfg.partition_lock_timeout;
        loop {
            match self.append_once(db, table, data.clone(), keys) {
                // It spans several nodes and gave way to an older transaction (wait-die): run
                // it again, a little later each time, until the lock timeout has passed.
                Err(e)
                    if e.code == ErrorCode::Conflict && std::time::Instant::now() < give_up_at =>
                {
                    gave_way += 1;
                    tracing::debug!(
                        db,
                        gave_way,
                        "append gave way to an older transaction: {}",
                        e.message
                    );
                    std::thread::sleep(backoff(gave_way));
                }
                Err(e) if e.code == ErrorCode::StaleCatalog && attempt < STALE_RETRIES => {
                    tracing::debug!(
                        db,
                        "catalog cache stale; planning the append again: {}",
                        e.message
                    );
                    self.node.catalog.forget(db);
                    self.verified.remove(db);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn append_once(
        &mut self,
        db: &str,
        table: &str,
        data: Table,
        keys: Option<&[String]>,
    ) -> Result<u64, EvalError> {
        let plan_error = |e: plan::PlanError| EvalError::new(e.code(), e.to_string());
        let (d, t) = self.table_for(db, table, Right::Write)?;
        self.check_writable(&d)?;
        let routed = plan::route_rows(&d, &t, data).map_err(plan_error)?;
        if routed.rows == 0 {
            return Ok(0);
        }
        let partitions: Vec<u32> = routed.by_part.keys().copied().collect();
        let unplaced: Vec<u32> = partitions
            .iter()
            .filter(|p| !t.chunks.contains_key(p))
            .copied()
            .collect();
        let mut placement = t.chunks.clone();
        if !unplaced.is_empty() {
            let token = self.token()?;
            let link = self.node.link.clone();
            let placed =
                self.block_on(async move { link.place_chunks(&token, db, table, unplaced).await })?;
            self.node.catalog.learn_placement(db, t.id, &placed);
            placement.extend(placed);
        }
        let replication = self.replicates(Some(&d));
        // The task data holds the rows only when the database is replicated.
        let rows_kept = if replication == Replication::Replicated {
            Table::new(
                t.columns.iter().map(|c| c.name.clone()).collect(),
                routed.cols.clone(),
            )
            .map_err(bad)?
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
        let ops = plan::append_ops(&d, &t, routed, &placement, keys).map_err(plan_error)?;
        self.run_tx(Tx {
            task: self.task(replication, data, &partitions),
            check: Some(CatalogCheck {
                db: db.to_string(),
                version: d.version,
                need: Right::Write,
            }),
            ..Tx::new(vec![], ops)
        })
    }
}

/// How long an append waits before it runs again after giving way: 1, 2, 4 ... up to 64 ms,
/// with a spread so that appends that gave way together do not meet again.
fn backoff(attempt: u32) -> std::time::Duration {
    let base = 1u64 << attempt.clamp(1, 7).saturating_sub(1);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    std::time::Duration::from_micros(base * 1000 + nanos % (base * 1000))
}

/// How often a write is planned again after the controller found the catalog cache stale.
pub(crate) const STALE_RETRIES: u32 = 3;

/// Rows from which an append is planned with a fresh catalog and consumes its data.
pub const LARGE_APPEND: usize = 65_536;

/// `append!(table, newData)` / `tableInsert(table, newData)`: into a DFS table as one
/// transaction (`tableInsert` answers the rows written), or onto an in-memory table.
fn append_fn(s: &mut Session, f: &str, mut a: Args) -> Result<Value, EvalError> {
    a.check(f, &[], 2)?;
    let data = new_data(f, &mut a)?;
    match a.need(f, 0, "table")? {
        Value::TableRef { db, table } => {
            let rows = s.append(db, table, data, None)?;
            if f == "tableInsert" {
                Ok(Value::Scalar(Scalar::Int(rows as i32)))
            } else {
                Ok(Value::TableRef {
                    db: db.clone(),
                    table: table.clone(),
                })
            }
        }
        Value::Table(t) => Ok(Value::Table(append_local(t, &data)?)),
        other => Err(bad(format!(
            "{f}: the target must be a table, got {}",
            other.kind_name()
        ))),
    }
}

/// `upsert!(obj, newData, ignoreNull, keyColNames)`
fn upsert(s: &mut Session, f: &str, mut a: Args) -> Result<Value, EvalError> {
    a.check(f, &["obj", "newData", "ignoreNull", "keyColNames"], 4)?;
    let (db, table) = a.table_ref(f, 0, "obj")?;
    let data = new_data(f, &mut a)?;
    let keys = a.names(f, 3, "keyColNames")?;
    s.append(&db, &table, data, Some(&keys))?;
    Ok(Value::TableRef { db, table })
}

/// The `newData` argument: a table, taken out of the arguments (not copied: it may be large).
fn new_data(f: &str, a: &mut Args) -> Result<Table, EvalError> {
    match a.take(1, "newData") {
        Some(Value::Table(t)) => Ok(t),
        Some(other) => Err(bad(format!(
            "{f}: the new data must be a table, got {}",
            other.kind_name()
        ))),
        None => Err(bad(format!("{f}: the argument 'newData' is missing"))),
    }
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
