//! The replication functions a session runs on a data node, after the placement check of the
//! registry: `setDatabaseForClusterReplication`, `setDatabaseClusterReplicationExecutionSet`,
//! `getDatabaseClusterReplicationStatus` (the controller's table), `checkClusterReplication
//! Consistency` and `getSlaveReplicationExecutionStatus`.

use std::collections::BTreeMap;

use xrepl_core::catalog::{CatalogChange, Right};
use xrepl_core::value::{Scalar, Table, Value, Vector};
use xrepl_proto::rpc::CatalogCheck;
use xrepl_proto::task::{TableDef, TaskData};

use super::consistency::check_consistency as check_consistency_of;
use crate::db::write::Replication;
use crate::node::Role;
use crate::session::args::{bad, Args, EvalError};
use crate::session::state::{Handler, Session};
use crate::txn::coordinator::Tx;

/// The functions of this module; each runs only where its placement allows.
pub const FUNCTIONS: &[(&str, Handler)] = &[
    ("setDatabaseForClusterReplication", set_db_replication),
    (
        "setDatabaseClusterReplicationExecutionSet",
        set_execution_set,
    ),
    ("checkClusterReplicationConsistency", check_consistency),
    ("getSlaveReplicationExecutionStatus", execution_status),
    ("getDatabaseClusterReplicationStatus", replication_flags),
];

/// `getDatabaseClusterReplicationStatus()`: the controller's table of every database's flag.
fn replication_flags(s: &mut Session, f: &str, a: Args) -> Result<Value, EvalError> {
    a.check(f, &[], 0)?;
    let token = s.token()?;
    let link = s.node.link.clone();
    Ok(s.block_on(async move { link.replication_flags(&token).await })?)
}

/// `getSlaveReplicationExecutionStatus()`: `executionSet, worker, taskId, state` per busy
/// replay worker of this data node.
fn execution_status(s: &mut Session, f: &str, a: Args) -> Result<Value, EvalError> {
    a.check(f, &[], 0)?;
    let rows = match &s.node.role {
        Role::Slave(r) => r.status(),
        Role::Standalone | Role::Master(_) => vec![],
    };
    let table = Table::new(
        ["executionSet", "worker", "taskId", "state"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        vec![
            Vector::Int(rows.iter().map(|r| i32::from(r.1.execution_set)).collect()),
            Vector::Int(rows.iter().map(|r| r.0 as i32).collect()),
            Vector::Long(rows.iter().map(|r| r.1.task_id as i64).collect()),
            Vector::String(rows.iter().map(|r| r.1.stage.name().to_string()).collect()),
        ],
    )
    .unwrap_or_else(|_| Table {
        names: vec![],
        columns: vec![],
    });
    Ok(Value::Table(table))
}

/// `checkClusterReplicationConsistency(dbName[, tableName])`.
fn check_consistency(s: &mut Session, f: &str, a: Args) -> Result<Value, EvalError> {
    a.check(f, &["dbName", "tableName"], 2)?;
    let db = a.db(f, 0, "dbName")?;
    let table = match a.get(1, "tableName") {
        None => None,
        Some(_) => Some(a.text(f, 1, "tableName")?),
    };
    let token = s.token()?;
    let txn = s.node.txn.clone();
    let t = s
        .block_on(async move { check_consistency_of(&txn, &token, &db, table.as_deref()).await })
        .map_err(EvalError::from)?;
    Ok(Value::Table(t))
}

/// `setDatabaseForClusterReplication(db, flag)`: turning it on queues a CREATE_DOMAIN task.
fn set_db_replication(s: &mut Session, f: &str, a: Args) -> Result<Value, EvalError> {
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
    let d = s.db_meta(&path, Some(Right::Owner))?;
    if d.replication_enabled == enabled {
        return Ok(Value::Void);
    }
    let task = if enabled {
        s.task(
            Replication::Replicated,
            TaskData::CreateDomain {
                db: path.clone(),
                scheme: d.scheme.clone(),
                tables: Some(d.tables.values().map(TableDef::of).collect()),
            },
            &[],
        )
    } else {
        None
    };
    // Turning it on: the tables the task names are those of `d`, so the controller refuses
    // the commit if the database changed since (a table created meanwhile would be missing on
    // the slaves). Turning it off makes no task and checks nothing.
    s.run_tx(Tx {
        task,
        check: enabled.then(|| CatalogCheck {
            db: path.clone(),
            version: d.version,
            need: Right::Owner,
        }),
        ..Tx::new(
            vec![CatalogChange::SetReplication { path, enabled }],
            BTreeMap::new(),
        )
    })?;
    Ok(Value::Void)
}

/// `setDatabaseClusterReplicationExecutionSet(db, set)`: 0 or 1.
fn set_execution_set(s: &mut Session, f: &str, a: Args) -> Result<Value, EvalError> {
    a.check(f, &["dbHandle", "executionSet"], 2)?;
    let path = a.db(f, 0, "dbHandle")?;
    let set = match a.need(f, 1, "executionSet")? {
        Value::Scalar(Scalar::Int(n)) if (0..=1).contains(n) => *n as u8,
        Value::Scalar(Scalar::Long(n)) if (0..=1).contains(n) => *n as u8,
        other => {
            return Err(bad(format!(
                "{f}: the execution set must be 0 or 1, got {}",
                xrepl_query::format::render(other).unwrap_or_else(|| other.kind_name().to_string())
            )))
        }
    };
    s.db_meta(&path, Some(Right::Owner))?;
    s.transact(
        vec![CatalogChange::SetExecutionSet { path, set }],
        BTreeMap::new(),
        None,
    )?;
    Ok(Value::Void)
}
