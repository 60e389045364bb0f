//! Planning what a transaction or a read does to which chunks, as pure functions of the
//! catalog: routing an append's rows to partitions, cutting them into per-chunk operations by
//! data node, the operations on every chunk of a table, of some partitions or of a database,
//! and one scan per data node. The SQL and database functions of a session plan with these, and
//! so does a slave's replay of a task, against its own cluster's catalog.

use std::collections::BTreeMap;

use xrepl_core::catalog::{ColumnDef, DatabaseMeta, TableKind, TableMeta};
use xrepl_core::value::{Table, Vector};
use xrepl_proto::rpc::ErrorCode;
use xrepl_proto::txn::{ChunkAction, ChunkId, ChunkOp, ColExpr, Scan, ScanShape};
use xrepl_query::ops;

/// Chunk operations by the data node that holds the chunks.
pub type OpsByNode = BTreeMap<String, Vec<ChunkOp>>;

/// Why rows cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the table '{table}' has {want} columns but the new data has {got}")]
    ColumnCount {
        table: String,
        want: usize,
        got: usize,
    },
    #[error("column '{column}': {reason}")]
    Convert { column: String, reason: String },
    #[error("cannot append to '{table}': {reason}")]
    Route { table: String, reason: String },
    #[error("table '{table}' has no column '{column}'")]
    NoColumn { table: String, column: String },
    #[error("partition {partition} has no data node")]
    NoDataNode { partition: u32 },
}

impl PlanError {
    /// What kind of failure it is for the user: the data's fault, a missing column, or no
    /// data node to write to.
    pub fn code(&self) -> ErrorCode {
        match self {
            PlanError::ColumnCount { .. } | PlanError::Convert { .. } | PlanError::Route { .. } => {
                ErrorCode::BadRequest
            }
            PlanError::NoColumn { .. } => ErrorCode::NotFound,
            PlanError::NoDataNode { .. } => ErrorCode::Unavailable,
        }
    }
}

/// Columns by column id.
type Columns = Vec<(u32, Vector)>;

/// An append's (or upsert's) rows, converted to the table's types, split by partition.
#[derive(Debug, Clone, PartialEq)]
pub struct Routed {
    pub cols: Vec<Vector>,
    /// Row indexes by partition.
    pub by_part: BTreeMap<u32, Vec<usize>>,
    pub rows: usize,
}

/// Converts `data` (columns by position) to table `t`'s types and routes its rows to
/// partitions. Consumes `data`: a column of the right type is moved, not copied.
pub fn route_rows(d: &DatabaseMeta, t: &TableMeta, data: Table) -> Result<Routed, PlanError> {
    if data.columns.len() != t.columns.len() {
        return Err(PlanError::ColumnCount {
            table: t.name.clone(),
            want: t.columns.len(),
            got: data.columns.len(),
        });
    }
    let cols: Vec<Vector> = t
        .columns
        .iter()
        .zip(data.columns)
        .map(|(def, v)| {
            if v.data_type() == def.ty {
                return Ok(v);
            }
            ops::cast_exact(&v, def.ty).map_err(|reason| PlanError::Convert {
                column: def.name.clone(),
                reason,
            })
        })
        .collect::<Result<_, _>>()?;
    let rows = cols.first().map_or(0, Vector::len);
    let parts: Vec<u32> = match t.partition_column() {
        None => vec![0; rows],
        Some(pc) => {
            let i = t.columns.iter().position(|c| c.id == pc.id).unwrap_or(0);
            d.scheme
                .route(&cols[i])
                .map_err(|reason| PlanError::Route {
                    table: t.name.clone(),
                    reason,
                })?
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
pub fn append_ops(
    d: &DatabaseMeta,
    t: &TableMeta,
    routed: Routed,
    placement: &BTreeMap<u32, String>,
    keys: Option<&[String]>,
) -> Result<OpsByNode, PlanError> {
    let key_ids: Option<Vec<u32>> = match keys {
        None => None,
        Some(k) => Some(
            k.iter()
                .map(|n| {
                    t.column(n)
                        .map(|c| c.id)
                        .ok_or_else(|| PlanError::NoColumn {
                            table: t.name.clone(),
                            column: n.clone(),
                        })
                })
                .collect::<Result<_, _>>()?,
        ),
    };
    let Routed {
        cols,
        by_part,
        rows,
    } = routed;
    // Column by column, each dropped once cut into its partitions: at most one copy of the
    // rows (and one column) is held at a time.
    let mut parts: Vec<(u32, Vec<usize>, Columns)> = by_part
        .into_iter()
        .map(|(p, idx)| (p, idx, Vec::with_capacity(cols.len())))
        .collect();
    let single = parts.len() == 1;
    // Each row's part, so that a column's values are moved into their parts in one pass.
    let sizes: Vec<usize> = parts.iter().map(|(_, idx, _)| idx.len()).collect();
    let mut slot = vec![u32::MAX; if single { 0 } else { rows }];
    for (s, (_, idx, _)) in parts.iter().enumerate() {
        for &r in idx {
            if let Some(x) = slot.get_mut(r) {
                *x = s as u32;
            }
        }
    }
    for (def, v) in t.columns.iter().zip(cols) {
        if single {
            parts[0].2.push((def.id, v));
            continue;
        }
        for ((_, _, columns), part) in parts.iter_mut().zip(ops::scatter(v, &slot, &sizes)) {
            columns.push((def.id, part));
        }
    }
    let mut ops: OpsByNode = BTreeMap::new();
    for (p, _, columns) in parts {
        let node = placement
            .get(&p)
            .ok_or(PlanError::NoDataNode { partition: p })?;
        let action = match &key_ids {
            None => ChunkAction::Append { columns },
            Some(k) => ChunkAction::Upsert {
                columns,
                keys: k.clone(),
            },
        };
        ops.entry(node.clone())
            .or_default()
            .push(chunk_op(d, t, p, action));
    }
    Ok(ops)
}

/// One op per chunk of `t` (every partition it has data in), grouped by node.
pub fn all_chunks(d: &DatabaseMeta, t: &TableMeta, action: &ChunkAction) -> OpsByNode {
    let parts: Vec<u32> = t.chunks.keys().copied().collect();
    some_chunks(d, t, &parts, action)
}

/// One op per chunk of every table of `d`, grouped by node.
pub fn db_chunks(d: &DatabaseMeta, action: &ChunkAction) -> OpsByNode {
    let mut ops: OpsByNode = BTreeMap::new();
    for t in d.tables.values() {
        for (n, o) in all_chunks(d, t, action) {
            ops.entry(n).or_default().extend(o);
        }
    }
    ops
}

/// One op per chunk of `t` among `parts` (those without data are left out), by node.
pub fn some_chunks(
    d: &DatabaseMeta,
    t: &TableMeta,
    parts: &[u32],
    action: &ChunkAction,
) -> OpsByNode {
    let mut out: OpsByNode = BTreeMap::new();
    for (p, node) in parts.iter().filter_map(|p| t.chunks.get(p).map(|n| (p, n))) {
        out.entry(node.clone())
            .or_default()
            .push(chunk_op(d, t, *p, action.clone()));
    }
    out
}

/// `action` on chunk `p` of table `t`.
fn chunk_op(d: &DatabaseMeta, t: &TableMeta, p: u32, action: ChunkAction) -> ChunkOp {
    ChunkOp {
        chunk: ChunkId {
            table: t.id,
            partition: p,
        },
        label: chunk_label(d, t, p),
        columns: t.columns.clone(),
        action,
    }
}

/// `dfs://db/table/partition`, for messages.
pub fn chunk_label(d: &DatabaseMeta, t: &TableMeta, p: u32) -> String {
    let part = match t.kind {
        TableKind::Dimension => String::new(),
        TableKind::Partitioned { .. } => d.scheme.partition_name(p),
    };
    format!("{}/{}/{part}", d.path, t.name)
}

/// One scan per data node holding chunks of `t`, over all of them.
pub fn scans_by_node(
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

#[cfg(test)]
mod tests {
    use super::*;
    use xrepl_core::catalog::{PartitionScheme, TableKind};
    use xrepl_core::value::DataType;

    /// `dfs://p`, VALUE on 1..3; table `t(k INT, v DOUBLE)` partitioned by `k`, with chunks of
    /// partitions 0 and 1 on dnode1 and dnode2, and partition 2 not placed yet.
    fn db() -> (DatabaseMeta, TableMeta) {
        let col = |id, name: &str, ty| ColumnDef {
            id,
            name: name.into(),
            ty,
            comment: String::new(),
        };
        let t = TableMeta {
            id: 7,
            name: "t".into(),
            kind: TableKind::Partitioned { column: "k".into() },
            columns: vec![col(0, "k", DataType::Int), col(1, "v", DataType::Double)],
            next_column_id: 2,
            chunks: [(0, "dnode1".to_string()), (1, "dnode2".to_string())].into(),
        };
        let d = DatabaseMeta {
            path: "dfs://p".into(),
            scheme: PartitionScheme::Value(Vector::Int(vec![1, 2, 3])),
            tables: [("t".to_string(), t.clone())].into(),
            replication_enabled: false,
            execution_set: 0,
            version: 3,
        };
        (d, t)
    }

    fn rows(k: Vec<i32>, v: Vec<f64>) -> Table {
        Table::new(
            vec!["k".into(), "v".into()],
            vec![Vector::Int(k), Vector::Double(v)],
        )
        .expect("table")
    }

    #[test]
    fn rows_are_converted_to_the_table_types_and_routed_by_value() {
        let (d, t) = db();
        // LONG keys and INT values are converted to INT and DOUBLE.
        let data = Table::new(
            vec!["a".into(), "b".into()],
            vec![Vector::Long(vec![2, 1, 2]), Vector::Int(vec![10, 20, 30])],
        )
        .expect("table");
        let r = route_rows(&d, &t, data).expect("routed");
        assert_eq!(r.rows, 3);
        assert_eq!(r.cols[0], Vector::Int(vec![2, 1, 2]));
        assert_eq!(r.cols[1], Vector::Double(vec![10.0, 20.0, 30.0]));
        assert_eq!(r.by_part, [(0, vec![1]), (1, vec![0, 2])].into());
    }

    #[test]
    fn bad_rows_are_refused_with_what_is_wrong() {
        let (d, t) = db();
        let one = Table::new(vec!["k".into()], vec![Vector::Int(vec![1])]).expect("table");
        let e = route_rows(&d, &t, one).expect_err("refused");
        assert_eq!(
            e.to_string(),
            "the table 't' has 2 columns but the new data has 1"
        );
        assert_eq!(e.code(), ErrorCode::BadRequest);
        let outside = rows(vec![9], vec![1.0]);
        let e = route_rows(&d, &t, outside).expect_err("refused");
        assert!(
            matches!(&e, PlanError::Route { table, .. } if table == "t"),
            "{e:?}"
        );
        // A DOUBLE cannot become a DATE.
        let mut dated = t.clone();
        dated.columns[1].ty = DataType::Date;
        let e = route_rows(&d, &dated, rows(vec![1], vec![1.5])).expect_err("refused");
        assert!(
            matches!(&e, PlanError::Convert { column, .. } if column == "v"),
            "{e:?}"
        );
        assert_eq!(e.code(), ErrorCode::BadRequest);
    }

    #[test]
    fn an_append_becomes_one_op_per_partition_on_the_node_holding_it() {
        let (d, t) = db();
        let r = route_rows(&d, &t, rows(vec![1, 2, 1], vec![0.5, 1.5, 2.5])).expect("routed");
        let ops = append_ops(&d, &t, r.clone(), &t.chunks, None).expect("planned");
        assert_eq!(ops.keys().collect::<Vec<_>>(), ["dnode1", "dnode2"]);
        let op = &ops["dnode1"][0];
        assert_eq!(
            op.chunk,
            ChunkId {
                table: 7,
                partition: 0
            }
        );
        assert_eq!(op.label, "dfs://p/t/1");
        assert_eq!(
            op.action,
            ChunkAction::Append {
                columns: vec![
                    (0, Vector::Int(vec![1, 1])),
                    (1, Vector::Double(vec![0.5, 2.5]))
                ]
            }
        );
        // An upsert names its keys by column id; an unknown key column is refused.
        let keys = ["k".to_string()];
        let up = append_ops(&d, &t, r.clone(), &t.chunks, Some(&keys)).expect("planned");
        assert!(
            matches!(&up["dnode2"][0].action, ChunkAction::Upsert { keys, .. } if keys == &[0])
        );
        let bad = ["nope".to_string()];
        let e = append_ops(&d, &t, r.clone(), &t.chunks, Some(&bad)).expect_err("refused");
        assert_eq!(e.code(), ErrorCode::NotFound);
        // A partition with no data node placed cannot be written.
        let r3 = route_rows(&d, &t, rows(vec![3], vec![1.0])).expect("routed");
        let e = append_ops(&d, &t, r3, &t.chunks, None).expect_err("refused");
        assert_eq!(e, PlanError::NoDataNode { partition: 2 });
        assert_eq!(e.code(), ErrorCode::Unavailable);
    }

    #[test]
    fn whole_table_database_and_partition_ops_cover_only_placed_chunks() {
        let (d, t) = db();
        let all = all_chunks(&d, &t, &ChunkAction::Truncate);
        assert_eq!(all.values().map(Vec::len).sum::<usize>(), 2);
        let some = some_chunks(&d, &t, &[1, 2], &ChunkAction::Drop);
        assert_eq!(
            some.keys().collect::<Vec<_>>(),
            ["dnode2"],
            "partition 2 holds no data"
        );
        assert_eq!(
            db_chunks(&d, &ChunkAction::Drop),
            all_chunks(&d, &t, &ChunkAction::Drop)
        );
        let scans = scans_by_node(&t, &t.columns, None, &ScanShape::Checksum);
        assert_eq!(
            scans["dnode1"].chunks,
            vec![ChunkId {
                table: 7,
                partition: 0
            }]
        );
        assert_eq!(scans.len(), 2);
        let dim = TableMeta {
            kind: TableKind::Dimension,
            ..t.clone()
        };
        assert_eq!(chunk_label(&d, &dim, 0), "dfs://p/t/");
    }
}
