//! What transactions carry between nodes: the work each participant does on its chunks, the
//! reads it answers, and the outcome of a transaction.

use serde::{Deserialize, Serialize};

use xrepl_core::catalog::ColumnDef;
use xrepl_core::operator::BinOp;
use xrepl_core::value::{DataType, Scalar, Vector};

/// A chunk: one partition of one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ChunkId {
    pub table: u64,
    pub partition: u32,
}

/// A vectorised expression over a chunk's columns: conditions (`where`) and new values
/// (`update ... set`). Constants are evaluated on the coordinator; columns by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ColExpr {
    Column(String),
    Const(Scalar),
    /// A constant vector, e.g. the set of `x in [1, 2, 3]`.
    ConstVector(Vector),
    Binary(BinOp, Box<ColExpr>, Box<ColExpr>),
    Not(Box<ColExpr>),
    Neg(Box<ColExpr>),
    In(Box<ColExpr>, Vector),
    Between(Box<ColExpr>, Scalar, Scalar),
}

impl ColExpr {
    /// Column names it reads.
    pub fn columns(&self, out: &mut Vec<String>) {
        match self {
            ColExpr::Column(c) => {
                if !out.contains(c) {
                    out.push(c.clone());
                }
            }
            ColExpr::Const(_) | ColExpr::ConstVector(_) => {}
            ColExpr::Binary(_, a, b) => {
                a.columns(out);
                b.columns(out);
            }
            ColExpr::Not(a) | ColExpr::Neg(a) | ColExpr::In(a, _) | ColExpr::Between(a, _, _) => {
                a.columns(out)
            }
        }
    }
}

/// What a participant does to one chunk inside a transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ChunkAction {
    /// Adds rows; columns given by column id, in the table's current order.
    Append { columns: Vec<(u32, Vector)> },
    /// Replaces rows whose key columns match, appends the others.
    Upsert {
        columns: Vec<(u32, Vector)>,
        keys: Vec<u32>,
    },
    /// Sets columns on the rows matching `filter` (all rows without one).
    Update {
        set: Vec<(String, ColExpr)>,
        filter: Option<ColExpr>,
    },
    /// Removes the rows matching `filter` (all rows without one).
    Delete { filter: Option<ColExpr> },
    /// Removes every row.
    Truncate,
    /// Removes the chunk altogether (dropTable, dropPartition, dropDatabase).
    Drop,
    /// Rewrites a column in a new type (replaceColumn!).
    Convert { column: u32, to: DataType },
    /// Changes nothing: holds the chunk's lock until the transaction ends, so that its rows
    /// can be read as of the commit (a bootstrap's chunk snapshot).
    Hold,
}

/// One unit of a participant's work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkOp {
    pub chunk: ChunkId,
    /// The chunk as users name it, for messages: `dfs://db/table/partition`.
    pub label: String,
    /// The table's columns as the coordinator saw them, for reading and writing blocks.
    pub columns: Vec<ColumnDef>,
    pub action: ChunkAction,
}

/// Aggregate functions a scan computes close to the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AggFn {
    Count,
    Sum,
    Avg,
    Min,
    Max,
}

impl AggFn {
    pub fn from_name(n: &str) -> Option<AggFn> {
        Some(match n {
            "count" => AggFn::Count,
            "sum" => AggFn::Sum,
            "avg" => AggFn::Avg,
            "min" => AggFn::Min,
            "max" => AggFn::Max,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            AggFn::Count => "count",
            AggFn::Sum => "sum",
            AggFn::Avg => "avg",
            AggFn::Min => "min",
            AggFn::Max => "max",
        }
    }
}

/// A read of some chunks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scan {
    pub chunks: Vec<ChunkId>,
    pub columns: Vec<ColumnDef>,
    pub filter: Option<ColExpr>,
    pub shape: ScanShape,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ScanShape {
    /// The named columns of every matching row.
    Rows { project: Vec<String> },
    /// Partial aggregates, grouped by `group_by` (none: one group). `None` column = `count(*)`.
    Aggregate {
        group_by: Option<String>,
        aggs: Vec<(AggFn, Option<String>)>,
    },
    /// Per chunk: its row count and [`row_checksum`]s summed (the filter is ignored), for
    /// `checkClusterReplicationConsistency`.
    Checksum,
}

/// A participant's answer to a [`Scan`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ScanResult {
    Rows(Vec<Vector>),
    /// Group keys (empty without grouping), and per aggregate one [`Partial`] per group.
    Groups {
        keys: Option<Vector>,
        partials: Vec<Vec<Partial>>,
    },
    /// One per scanned chunk, for [`ScanShape::Checksum`].
    Checksums(Vec<ChunkSum>),
}

/// A chunk's rows and the wrapping sum of their [`row_checksum`]s: independent of the order
/// of rows and blocks, and changed by any row added, removed or altered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkSum {
    pub partition: u32,
    pub rows: u64,
    pub checksum: u64,
}

/// One table's side of a consistency check: a hash of its schema (column names and types, in
/// order) and, per placed chunk, its partition's name and [`ChunkSum`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSums {
    pub table: String,
    pub schema: u64,
    pub chunks: Vec<(String, ChunkSum)>,
}

/// A stable hash of a table's column names and types, in order.
pub fn schema_checksum(columns: &[ColumnDef]) -> u64 {
    use std::hash::Hasher;
    let mut h = siphasher::sip::SipHasher13::new_with_keys(0x7872_6570_6c5f_7363, 0x6865_6d61);
    for c in columns {
        h.write_u64(c.name.len() as u64);
        h.write(c.name.as_bytes());
        h.write(c.ty.name().as_bytes());
        h.write_u8(0);
    }
    h.finish()
}

/// A stable hash of row `i` of `cols` (the columns in table order): the same on every node and
/// in every build. Each value is hashed with its type, so `1` (INT) and `1` (LONG) differ;
/// `-0.0` and `0.0` are one value, as are all NaNs.
pub fn row_checksum(cols: &[Vector], i: usize) -> u64 {
    use std::hash::Hasher;
    let mut h = siphasher::sip::SipHasher13::new_with_keys(0x7872_6570_6c5f_7273, 0x756d_5f72_6f77);
    for c in cols {
        match c {
            Vector::Bool(v) => {
                h.write_u8(1);
                h.write_i8(v.get(i).copied().unwrap_or_default());
            }
            Vector::Int(v) => {
                h.write_u8(2);
                h.write_i32(v.get(i).copied().unwrap_or_default());
            }
            Vector::Long(v) => {
                h.write_u8(3);
                h.write_i64(v.get(i).copied().unwrap_or_default());
            }
            Vector::Double(v) => {
                h.write_u8(4);
                let x = v.get(i).copied().unwrap_or_default();
                let bits = if x == 0.0 {
                    0
                } else if x.is_nan() {
                    f64::NAN.to_bits()
                } else {
                    x.to_bits()
                };
                h.write_u64(bits);
            }
            Vector::String(v) | Vector::Symbol(v) => {
                h.write_u8(if matches!(c, Vector::String(_)) { 5 } else { 6 });
                let s = v.get(i).map(String::as_bytes).unwrap_or_default();
                h.write_u64(s.len() as u64);
                h.write(s);
            }
            Vector::Date(v) | Vector::DateTime(v) => {
                h.write_u8(if matches!(c, Vector::Date(_)) { 7 } else { 8 });
                h.write_i32(v.get(i).copied().unwrap_or_default());
            }
            Vector::Timestamp(v) | Vector::NanoTimestamp(v) => {
                h.write_u8(if matches!(c, Vector::Timestamp(_)) {
                    9
                } else {
                    10
                });
                h.write_i64(v.get(i).copied().unwrap_or_default());
            }
        }
    }
    h.finish()
}

/// A mergeable aggregate state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Partial {
    /// Non-NULL values seen (rows, for `count(*)`).
    pub count: i64,
    /// Sum as DOUBLE (exact for integers below 2^53) and as LONG for integer columns.
    pub sum_f: f64,
    pub sum_i: i64,
    pub min: Option<Scalar>,
    pub max: Option<Scalar>,
}

impl Partial {
    /// No values seen yet.
    pub fn empty() -> Partial {
        Partial {
            count: 0,
            sum_f: 0.0,
            sum_i: 0,
            min: None,
            max: None,
        }
    }
}

/// What is decided for a transaction: every participant commits it, or every one aborts it.
/// (The coordinator's `Decide` carries it as `commit: bool`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    Commit,
    Abort,
}

impl Verdict {
    /// The verdict of the wire's `commit` flag.
    pub fn of_commit(commit: bool) -> Verdict {
        if commit {
            Verdict::Commit
        } else {
            Verdict::Abort
        }
    }

    pub fn is_commit(self) -> bool {
        self == Verdict::Commit
    }
}

/// A transaction's outcome as a participant learns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxState {
    Committed,
    Aborted(String),
    /// No decision yet (the coordinator is still working).
    Pending,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_checksums_are_stable_and_tell_types_and_values_apart() {
        let cols = vec![
            Vector::Int(vec![1, 2]),
            Vector::String(vec!["a".into(), "b".into()]),
            Vector::Double(vec![0.0, -0.0]),
        ];
        // Pinned: a change here changes every checksum every cluster computes.
        let pinned = row_checksum(&cols, 0);
        assert_eq!(pinned, 0x9f07_1ff5_3282_8ee3_u64, "{pinned:#x}");
        // -0.0 and 0.0 are one value.
        let neg = vec![Vector::Double(vec![-0.0])];
        let pos = vec![Vector::Double(vec![0.0])];
        assert_eq!(row_checksum(&neg, 0), row_checksum(&pos, 0));
        // 1 as INT and as LONG differ; "ab","c" and "a","bc" differ.
        assert_ne!(
            row_checksum(&[Vector::Int(vec![1])], 0),
            row_checksum(&[Vector::Long(vec![1])], 0)
        );
        let split = |a: &str, b: &str| {
            row_checksum(
                &[
                    Vector::String(vec![a.into()]),
                    Vector::String(vec![b.into()]),
                ],
                0,
            )
        };
        assert_ne!(split("ab", "c"), split("a", "bc"));
    }
}
