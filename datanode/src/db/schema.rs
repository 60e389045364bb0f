//! Reading definitions: `existsDatabase`, `existsTable`, `loadTable` (a handle on a DFS
//! table) and `schema` (a database's or a table's definition as a dictionary).

use xrepl_core::catalog::{ColumnDef, DatabaseMeta, PartitionScheme, Right, TableMeta};
use xrepl_core::value::{Scalar, Table, Value, Vector, NULL_INT};
use xrepl_proto::dolphindb::types::code_of as type_code;

use crate::session::args::{bad, Args, EvalError};
use crate::session::state::{Handler, Session};

/// The functions of this module.
pub const FUNCTIONS: &[(&str, Handler)] = &[
    ("existsDatabase", exists_database),
    ("schema", schema),
    ("loadTable", load_table),
    ("existsTable", exists_table),
];

/// `existsDatabase(dbUrl)`
fn exists_database(s: &mut Session, f: &str, a: Args) -> Result<Value, EvalError> {
    a.check(f, &[], 1)?;
    let path = a.text(f, 0, "dbUrl")?;
    Ok(Value::Scalar(Scalar::bool(
        s.fetch_db(&path, None)?.is_some(),
    )))
}

/// `schema(db or table)`: its definition as a dictionary.
fn schema(s: &mut Session, f: &str, a: Args) -> Result<Value, EvalError> {
    a.check(f, &[], 1)?;
    match a.need(f, 0, "table")? {
        Value::Database(p) => {
            let d = s.db_meta(p, Some(Right::Read))?;
            Ok(db_schema(&d))
        }
        Value::TableRef { db, table } => {
            let (d, t) = s.table_meta(db, table, Some(Right::Read))?;
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

/// `loadTable(database, tableName)`: a handle on a DFS table.
fn load_table(s: &mut Session, f: &str, a: Args) -> Result<Value, EvalError> {
    a.check(f, &["database", "tableName", "partitions", "memoryMode"], 4)?;
    // `loadTable(db, t,,false)`, as DolphinDB users write it: no partitions, not in memory.
    for (i, name) in [(2, "partitions"), (3, "memoryMode")] {
        match a.get(i, name) {
            None => {}
            Some(Value::Scalar(v)) if v.is_null() || *v == Scalar::Bool(0) => {}
            Some(_) => {
                return Err(bad(format!(
                    "{f}: {name} is not supported: leave it empty or false (loadTable(db, table,,false))"
                )))
            }
        }
    }
    let db = a.db(f, 0, "database")?;
    let table = a.text(f, 1, "tableName")?;
    s.table_meta(&db, &table, Some(Right::Read))?;
    Ok(Value::TableRef { db, table })
}

/// `existsTable(dbUrl, tableName)`
fn exists_table(s: &mut Session, f: &str, a: Args) -> Result<Value, EvalError> {
    a.check(f, &[], 2)?;
    let db = a.db(f, 0, "dbUrl")?;
    let table = a.text(f, 1, "tableName")?;
    let exists = s
        .fetch_db(&db, None)?
        .is_some_and(|d| d.tables.contains_key(&table));
    Ok(Value::Scalar(Scalar::bool(exists)))
}

/// A table's columns as [`ColumnDef`]s of an in-memory table (ids by position).
pub fn defs_of(t: &Table) -> Vec<ColumnDef> {
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

/// `colDefs` as DolphinDB has it (its clients read `typeInt`: DolphinDB's type code; `extra`
/// is a DECIMAL's scale, NULL for every type xrepl has).
fn col_defs(defs: &[ColumnDef]) -> Table {
    Table {
        names: ["name", "typeString", "typeInt", "extra", "comment"]
            .map(String::from)
            .to_vec(),
        columns: vec![
            Vector::String(defs.iter().map(|d| d.name.clone()).collect()),
            Vector::String(defs.iter().map(|d| d.ty.name().to_string()).collect()),
            Vector::Int(defs.iter().map(|d| i32::from(type_code(d.ty))).collect()),
            Vector::Int(vec![NULL_INT; defs.len()]),
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

/// `partitionType` as DolphinDB has it: its code (VALUE 1, RANGE 2, LIST 3, HASH 5), which
/// DolphinDB's clients read.
fn partition_type(s: &PartitionScheme) -> (String, Value) {
    let code = match s {
        PartitionScheme::Value(_) => 1,
        PartitionScheme::Range(_) => 2,
        PartitionScheme::List(_) => 3,
        PartitionScheme::Hash { .. } => 5,
    };
    ("partitionType".into(), Value::Scalar(Scalar::Int(code)))
}

/// `partitionTypeName`: `VALUE`, `RANGE`, `LIST` or `HASH`.
fn partition_type_name(s: &PartitionScheme) -> (String, Value) {
    (
        "partitionTypeName".into(),
        Value::Scalar(Scalar::string(s.kind_name())),
    )
}

fn db_schema(d: &DatabaseMeta) -> Value {
    Value::Dict(vec![
        (
            "databaseDir".into(),
            Value::Scalar(Scalar::string(d.path.clone())),
        ),
        partition_type(&d.scheme),
        partition_type_name(&d.scheme),
        ("partitionSchema".into(), scheme_value(&d.scheme)),
        (
            "partitions".into(),
            Value::Scalar(Scalar::Int(d.scheme.partitions() as i32)),
        ),
        (
            "tables".into(),
            Value::Vector(Vector::String(
                d.tables
                    .keys()
                    .filter(|n| !xrepl_core::catalog::is_hidden(n))
                    .cloned()
                    .collect(),
            )),
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
        partition_type(&d.scheme),
        partition_type_name(&d.scheme),
        ("partitionSchema".into(), scheme_value(&d.scheme)),
    ];
    // DolphinDB's clients (PartitionedTableAppender) route rows by these.
    if let Some(c) = t.partition_column() {
        let index = t.columns.iter().position(|d| d.id == c.id).unwrap_or(0);
        out.extend([
            (
                "partitionColumnName".into(),
                Value::Scalar(Scalar::string(c.name.clone())),
            ),
            (
                "partitionColumnIndex".into(),
                Value::Scalar(Scalar::Int(i32::try_from(index).unwrap_or(0))),
            ),
            (
                "partitionColumnType".into(),
                Value::Scalar(Scalar::Int(i32::from(type_code(c.ty)))),
            ),
        ]);
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
