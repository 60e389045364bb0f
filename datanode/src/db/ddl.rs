//! Data definition: creating and dropping databases, partitions and tables, and changing
//! columns. Each is one transaction whose catalog changes come from its task data (the same
//! mapping a slave replays); on a master, a replicated database's DDL also makes a task.

use std::collections::BTreeMap;

use xrepl_core::catalog::{check_db_path, CatalogChange, PartitionScheme, Right, TableKind};
use xrepl_core::value::{DataType, Scalar, Value, Vector};
use xrepl_proto::task::TaskData;
use xrepl_proto::txn::ChunkAction;

use crate::plan;
use crate::session::args::{as_vector, bad, not_found, types, Args, EvalError};
use crate::session::state::{Handler, Session};

/// The functions of this module.
pub const FUNCTIONS: &[(&str, Handler)] = &[
    ("database", database),
    ("dropDatabase", drop_database),
    ("addValuePartitions", add_partitions),
    ("addRangePartitions", add_partitions),
    ("createPartitionedTable", create_table),
    ("createDimensionTable", create_table),
    ("dropTable", drop_table),
    ("renameTable", rename_table),
    ("truncate", truncate),
    ("dropPartition", drop_partition),
    ("addColumn", add_column),
    ("dropColumns!", drop_columns),
    ("rename!", rename_columns),
    ("replaceColumn!", replace_column),
    ("setColumnComment", set_column_comment),
];

/// `database(directory[, partitionType, partitionScheme])`: a handle on a database, created when a scheme is given.
fn database(s: &mut Session, f: &str, a: Args) -> Result<Value, EvalError> {
    a.check(f, &["directory", "partitionType", "partitionScheme"], 3)?;
    let path = a.text(f, 0, "directory")?;
    check_db_path(&path).map_err(bad)?;
    let Some(kind) = a.get(1, "partitionType") else {
        // database(path): a handle on an existing database.
        s.db_meta(&path, Some(Right::Read))?;
        return Ok(Value::Database(path));
    };
    let scheme = scheme_of(kind, a.need(f, 2, "partitionScheme")?)?;
    scheme.validate().map_err(bad)?;
    if let Some(existing) = s.fetch_db(&path, None)? {
        return if existing.scheme == scheme {
            Ok(Value::Database(path))
        } else {
            Err(bad(format!(
                "database '{path}' exists already with another partition scheme"
            )))
        };
    }
    // A new database is not replicated until setDatabaseForClusterReplication.
    s.transact(
        vec![CatalogChange::CreateDatabase {
            path: path.clone(),
            scheme,
        }],
        BTreeMap::new(),
        None,
    )?;
    Ok(Value::Database(path))
}

/// `dropDatabase(dbUrl)`
fn drop_database(s: &mut Session, f: &str, a: Args) -> Result<Value, EvalError> {
    a.check(f, &[], 1)?;
    let path = a.db(f, 0, "dbUrl")?;
    let d = s.db_meta(&path, Some(Right::Owner))?;
    let ops = plan::db_chunks(&d, &ChunkAction::Drop);
    s.transact_op(Some(&d), TaskData::DropDb { db: path }, ops)?;
    Ok(Value::Void)
}

/// `addValuePartitions(db, values)` / `addRangePartitions(db, boundaries)`
fn add_partitions(s: &mut Session, f: &str, a: Args) -> Result<Value, EvalError> {
    a.check(f, &[], 2)?;
    let path = a.db(f, 0, "dbHandle")?;
    let given = a.need(f, 1, "partitions")?;
    let values = as_vector(given).unwrap_or_else(|| {
        Err(bad(format!(
            "{f}: partitions must be values, got {}",
            given.kind_name()
        )))
    })?;
    let n = values.len();
    let d = s.db_meta(&path, Some(Right::Owner))?;
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
    s.transact_op(
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

/// `createPartitionedTable(db, table, name, partitionColumns)` / `createDimensionTable(db, table, name)`
fn create_table(s: &mut Session, f: &str, a: Args) -> Result<Value, EvalError> {
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
    s.ddl(TaskData::CreateTable {
        db: db.clone(),
        table: name.clone(),
        kind,
        columns,
    })?;
    Ok(Value::TableRef { db, table: name })
}

/// `dropTable(db, tableName)`
fn drop_table(s: &mut Session, f: &str, a: Args) -> Result<Value, EvalError> {
    whole_table(
        s,
        f,
        a,
        "dbHandle",
        Right::Owner,
        ChunkAction::Drop,
        |db, table| TaskData::DropTable { db, table },
    )
}

/// An operation on every chunk of a table, `f(db, tableName)`, needing `right`.
fn whole_table(
    s: &mut Session,
    f: &str,
    a: Args,
    db_arg: &str,
    right: Right,
    action: ChunkAction,
    data: fn(String, String) -> TaskData,
) -> Result<Value, EvalError> {
    a.check(f, &[], 2)?;
    let db = a.db(f, 0, db_arg)?;
    let name = a.text(f, 1, "tableName")?;
    let (d, t) = s.table_meta(&db, &name, Some(right))?;
    s.transact_op(Some(&d), data(db, name), plan::all_chunks(&d, &t, &action))?;
    Ok(Value::Void)
}

/// `renameTable(db, tableName, newTableName)`
fn rename_table(s: &mut Session, f: &str, a: Args) -> Result<Value, EvalError> {
    a.check(f, &[], 3)?;
    let db = a.db(f, 0, "dbHandle")?;
    let from = a.text(f, 1, "tableName")?;
    let to = a.text(f, 2, "newTableName")?;
    let (d, _) = s.table_meta(&db, &from, Some(Right::Owner))?;
    s.transact_op(
        Some(&d),
        TaskData::RenameTable { db, from, to },
        BTreeMap::new(),
    )?;
    Ok(Value::Void)
}

/// `truncate(dbUrl, tableName)`
fn truncate(s: &mut Session, f: &str, a: Args) -> Result<Value, EvalError> {
    whole_table(
        s,
        f,
        a,
        "dbUrl",
        Right::Write,
        ChunkAction::Truncate,
        |db, table| TaskData::TruncateTable { db, table },
    )
}

/// `dropPartition(db, partitionPaths, tableName)`
fn drop_partition(s: &mut Session, f: &str, a: Args) -> Result<Value, EvalError> {
    a.check(f, &["dbHandle", "partitionPaths", "tableName"], 3)?;
    let db = a.db(f, 0, "dbHandle")?;
    let name = a.text(f, 2, "tableName")?;
    let (d, t) = s.table_meta(&db, &name, Some(Right::Write))?;
    let given = a.need(f, 1, "partitionPaths")?;
    let values = as_vector(given).unwrap_or_else(|| {
        Err(bad(format!(
            "{f}: partitionPaths must be partition values, got {}",
            given.kind_name()
        )))
    })?;
    let mut parts = d.scheme.route(&values).map_err(bad)?;
    parts.sort_unstable();
    parts.dedup();
    let ops = plan::some_chunks(&d, &t, &parts, &ChunkAction::Drop);
    s.transact_op(
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

/// `addColumn(table, colNames, colTypes)`
fn add_column(s: &mut Session, f: &str, a: Args) -> Result<Value, EvalError> {
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
    s.ddl(TaskData::AddColumn { db, table, columns })?;
    Ok(Value::Void)
}

/// `dropColumns!(table, colNames)`
fn drop_columns(s: &mut Session, f: &str, a: Args) -> Result<Value, EvalError> {
    a.check(f, &[], 2)?;
    let (db, table) = a.table_ref(f, 0, "table")?;
    let names = a.names(f, 1, "colNames")?;
    s.ddl(TaskData::DropColumn {
        db: db.clone(),
        table: table.clone(),
        names,
    })?;
    Ok(Value::TableRef { db, table })
}

/// `rename!(table, oldNames, newNames)`
fn rename_columns(s: &mut Session, f: &str, a: Args) -> Result<Value, EvalError> {
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
    s.ddl(TaskData::RenameColumn {
        db: db.clone(),
        table: table.clone(),
        names: pairs,
    })?;
    Ok(Value::TableRef { db, table })
}

/// `replaceColumn!(table, colName, newCol)`: the column in a new type.
fn replace_column(s: &mut Session, f: &str, a: Args) -> Result<Value, EvalError> {
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
    let (d, t) = s.table_meta(&db, &table, Some(Right::Owner))?;
    let col = t
        .column(&name)
        .ok_or_else(|| not_found(format!("table '{table}' has no column '{name}'")))?;
    let ops = plan::all_chunks(
        &d,
        &t,
        &ChunkAction::Convert {
            column: col.id,
            to: ty,
        },
    );
    s.transact_op(
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

/// `setColumnComment(table, colName, comment)` or `(table, {colName: comment})`
fn set_column_comment(s: &mut Session, f: &str, a: Args) -> Result<Value, EvalError> {
    let (db, table) = a.table_ref(f, 0, "table")?;
    let pairs: Vec<(String, String)> = match (a.positional.get(1), a.positional.get(2)) {
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
    s.ddl(TaskData::SetColumnComment {
        db,
        table,
        comments: pairs,
    })?;
    Ok(Value::Void)
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
            .map(|i| {
                as_vector(i).unwrap_or_else(|| {
                    Err(bad(format!(
                        "a LIST scheme holds lists of values, not {}",
                        i.kind_name()
                    )))
                })
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
