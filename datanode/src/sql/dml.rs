//! `update`, `delete` and `insert into` on a DFS table: each is one transaction (through the
//! same path as the database functions, so a master's replicated table makes a task).

use xrepl_core::catalog::Right;
use xrepl_core::value::{Table, Value, Vector};
use xrepl_proto::rpc::ErrorCode;
use xrepl_proto::task::TaskData;
use xrepl_proto::txn::ChunkAction;
use xrepl_query::lang::ast::Expr;
use xrepl_query::ops;

use crate::db::write::STALE_RETRIES;
use crate::plan;
use crate::session::args::{as_vector, bad, not_found, EvalError};
use crate::session::state::Session;

impl Session {
    /// The DFS table an SQL statement names (`loadTable(...)`): its database and name.
    fn dfs_table(&mut self, table: &Expr, verb: &str) -> Result<(String, String), EvalError> {
        match self.eval(table)? {
            Value::TableRef { db, table } => Ok((db, table)),
            other => Err(bad(format!(
                "{verb} needs a DFS table (loadTable), got {}",
                other.kind_name()
            ))),
        }
    }

    /// `update t set ... where ...` on a DFS table, planned and run again (at most
    /// [`STALE_RETRIES`] times) when the database changed while it ran.
    pub(crate) fn sql_update(
        &mut self,
        table: &Expr,
        set: &[(String, Expr)],
        filter: Option<&Expr>,
    ) -> Result<Value, EvalError> {
        self.again_if_stale(|s| s.sql_update_once(table, set, filter))
    }

    /// `delete from t where ...` on a DFS table, planned and run again like an update.
    pub(crate) fn sql_delete(
        &mut self,
        table: &Expr,
        filter: Option<&Expr>,
    ) -> Result<Value, EvalError> {
        self.again_if_stale(|s| s.sql_delete_once(table, filter))
    }

    /// Runs `f` again while it fails because the database changed while it ran (nothing was
    /// written then): its definition, or its replication flag.
    fn again_if_stale(
        &mut self,
        mut f: impl FnMut(&mut Self) -> Result<Value, EvalError>,
    ) -> Result<Value, EvalError> {
        let mut attempt = 0;
        loop {
            match f(self) {
                Err(e) if e.code == ErrorCode::StaleCatalog && attempt < STALE_RETRIES => {
                    tracing::debug!(
                        "the database changed; planning the write again: {}",
                        e.message
                    );
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn sql_update_once(
        &mut self,
        table: &Expr,
        set: &[(String, Expr)],
        filter: Option<&Expr>,
    ) -> Result<Value, EvalError> {
        let (db, name) = self.dfs_table(table, "update")?;
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
        let ops = plan::all_chunks(
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

    fn sql_delete_once(&mut self, table: &Expr, filter: Option<&Expr>) -> Result<Value, EvalError> {
        let (db, name) = self.dfs_table(table, "delete")?;
        let (d, t) = self.table_meta(&db, &name, Some(Right::Write))?;
        let filter = filter.map(|f| self.col_expr(f, &t.columns)).transpose()?;
        let ops = plan::all_chunks(
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
            .map(|v| {
                as_vector(&v).unwrap_or_else(|| {
                    Err(bad(format!(
                        "insert takes scalars or vectors, got {}",
                        v.kind_name()
                    )))
                })
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
        self.append(&db, &table, data, None)?;
        Ok(Value::Void)
    }
}
