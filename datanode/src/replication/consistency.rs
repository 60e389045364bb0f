//! `checkClusterReplicationConsistency(dbName[, tableName])`: per partition, the row count and
//! an order-independent checksum on the master and on the slave, side by side.
//!
//! Each cluster computes its side the same way ([`table_sums`]): every chunk's
//! holder scans it and sums a stable hash of each row ([`xrepl_proto::txn::row_checksum`]).
//! The slave data node asks its controller where the master is and for the token it holds
//! there, asks the master controller for its live data nodes, and has one of them compute the
//! master's side ([`ReplicationRequest::Checksums`]). The two sides are read one after the
//! other, not at one instant: compare them once writes have stopped and the slave caught up.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use xrepl_core::catalog::{Right, TableKind};
use xrepl_core::config::defaults;
use xrepl_core::value::{Table, Vector};
use xrepl_proto::rpc::{
    ErrorCode, PeerKind, RemoteError, ReplicationReply, ReplicationRequest, RpcClient,
};
use xrepl_proto::txn::{schema_checksum, ChunkSum, ScanResult, ScanShape, TableSums};

use crate::error::refusal;
use crate::plan::scans_by_node;
use crate::txn::coordinator::Coordinator;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time limit of one side's scan.
const SCAN_TIMEOUT: Duration = Duration::from_secs(300);

/// Whose reading [`table_sums`] is.
#[derive(Debug, Clone, Copy)]
pub enum Reader<'a> {
    /// A session's user (its token), who needs `DB_READ`.
    User(&'a str),
    /// A slave holding a fetch ticket, on a master: only replicated databases.
    Replica,
}

/// This cluster's side: per table of `db` (or `table` only; none when it does not exist),
/// its schema hash and every placed chunk's rows and checksum, read by `reader`.
pub async fn table_sums(
    coord: &Coordinator,
    reader: Reader<'_>,
    db: &str,
    table: Option<&str>,
) -> Result<Vec<TableSums>, RemoteError> {
    let error = |code, m: String| refusal(coord.alias(), code, m);
    let d = match reader {
        Reader::User(token) => coord.link().database(token, db, Some(Right::Read)).await?,
        Reader::Replica => coord.link().replicated_database(db).await?,
    }
    .ok_or_else(|| {
        error(
            ErrorCode::NotFound,
            format!("database '{db}' does not exist"),
        )
    })?;
    let mut out = Vec::new();
    for t in d
        .tables
        .values()
        .filter(|t| table.is_none_or(|n| n == t.name))
        // A re-sync's copy under way is not the slave's table yet.
        .filter(|t| !xrepl_core::catalog::is_hidden(&t.name))
    {
        let scans = scans_by_node(t, &t.columns, None, &ScanShape::Checksum);
        let mut chunks = Vec::new();
        for r in coord.scan_all(scans).await? {
            let ScanResult::Checksums(sums) = r else {
                return Err(error(
                    ErrorCode::Internal,
                    "a checksum scan answered rows".into(),
                ));
            };
            for s in sums {
                let name = match t.kind {
                    TableKind::Dimension => String::new(),
                    TableKind::Partitioned { .. } => d.scheme.partition_name(s.partition),
                };
                chunks.push((name, s));
            }
        }
        chunks.sort_by_key(|(_, s)| s.partition);
        out.push(TableSums {
            table: t.name.clone(),
            schema: schema_checksum(&t.columns),
            chunks,
        });
    }
    Ok(out)
}

/// The master's side, computed by one of its live data nodes with the slave's fetch ticket.
async fn master_sums(
    coord: &Coordinator,
    token: &str,
    db: &str,
    table: Option<&str>,
) -> Result<Vec<TableSums>, RemoteError> {
    let (master, ticket) = coord.link().master_access(token).await?;
    let unreachable = |what: String| refusal(coord.alias(), ErrorCode::Unavailable, what);
    let tls = &coord.link().tls().master;
    let ask = |site: String, req: ReplicationRequest| async move {
        let c = RpcClient::connect(
            &site,
            PeerKind::Slave,
            tls,
            defaults::MAX_FRAME_SIZE as usize,
            CONNECT_TIMEOUT,
        )
        .await
        .map_err(|e| unreachable(format!("the master node {site} cannot be reached: {e}")))?;
        c.call_timeout(req, SCAN_TIMEOUT)
            .await
            .map_err(|e| unreachable(format!("the master node {site} did not answer: {e}")))?
    };
    let unexpected = |other: ReplicationReply| {
        refusal(
            coord.alias(),
            ErrorCode::Internal,
            format!("unexpected answer {other:?}"),
        )
    };
    let sites = match ask(
        master.clone(),
        ReplicationRequest::DataNodes {
            ticket: ticket.clone(),
        },
    )
    .await?
    {
        ReplicationReply::Sites(s) => s,
        other => return Err(unexpected(other)),
    };
    let mut failures = Vec::new();
    for site in sites {
        let req = ReplicationRequest::Checksums {
            ticket: ticket.clone(),
            db: db.to_string(),
            table: table.map(str::to_string),
        };
        match ask(site, req).await {
            Ok(ReplicationReply::Checksums(t)) => return Ok(t),
            Ok(other) => failures.push(format!("unexpected answer {other:?}")),
            Err(e) if e.code == ErrorCode::Unavailable => failures.push(e.to_string()),
            Err(e) => return Err(e),
        }
    }
    Err(unreachable(format!(
        "no data node of the master at {master} could compute checksums{}{}",
        if failures.is_empty() {
            ": none is up"
        } else {
            ": "
        },
        failures.join("; ")
    )))
}

/// `checkClusterReplicationConsistency`, for the administrator behind `token`.
pub async fn check_consistency(
    coord: &Coordinator,
    token: &str,
    db: &str,
    table: Option<&str>,
) -> Result<Table, RemoteError> {
    let master = master_sums(coord, token, db, table)
        .await
        .map_err(|e| RemoteError {
            message: format!("on the master: {}", e.message),
            ..e
        })?;
    let slave = table_sums(coord, Reader::User(token), db, table)
        .await
        .map_err(|e| RemoteError {
            message: format!("on the slave: {}", e.message),
            ..e
        })?;
    if let Some(t) = table {
        if master.is_empty() && slave.is_empty() {
            return Err(refusal(
                coord.alias(),
                ErrorCode::NotFound,
                format!(
                    "table '{t}' does not exist in database '{db}' on the master nor on the slave"
                ),
            ));
        }
    }
    Ok(compare(db, &master, &slave))
}

/// One row of the result.
struct Row {
    table: String,
    partition: String,
    master: (u64, u64),
    slave: (u64, u64),
    equal: bool,
}

/// Rows and checksum of a whole table side.
fn total(t: &TableSums) -> (u64, u64) {
    t.chunks.iter().fold((0, 0), |(r, c), (_, s)| {
        (r + s.rows, c.wrapping_add(s.checksum))
    })
}

/// Lines up the two sides: per table, a row per partition either side holds (a partition one
/// side does not hold counts as empty there), a row for a table only one side has, and a row
/// for a schema that differs.
fn compare(db: &str, master: &[TableSums], slave: &[TableSums]) -> Table {
    let by_name = |v: &[TableSums]| -> BTreeMap<String, TableSums> {
        v.iter().map(|t| (t.table.clone(), t.clone())).collect()
    };
    let (m, s) = (by_name(master), by_name(slave));
    let names: BTreeSet<&String> = m.keys().chain(s.keys()).collect();
    let mut rows = Vec::new();
    for name in names {
        let row = |partition: &str, master: (u64, u64), slave: (u64, u64), equal: bool| Row {
            table: name.clone(),
            partition: partition.to_string(),
            master,
            slave,
            equal,
        };
        let (mt, st) = match (m.get(name), s.get(name)) {
            (Some(mt), Some(st)) => (mt, st),
            (Some(mt), None) => {
                rows.push(row("(no table on the slave)", total(mt), (0, 0), false));
                continue;
            }
            (None, Some(st)) => {
                rows.push(row("(no table on the master)", (0, 0), total(st), false));
                continue;
            }
            (None, None) => continue,
        };
        if mt.schema != st.schema {
            rows.push(row(
                "(schema differs)",
                (0, mt.schema),
                (0, st.schema),
                false,
            ));
        }
        let sums = |t: &TableSums| -> BTreeMap<u32, (String, ChunkSum)> {
            t.chunks
                .iter()
                .map(|(n, c)| (c.partition, (n.clone(), *c)))
                .collect()
        };
        let (mp, sp) = (sums(mt), sums(st));
        let parts: BTreeSet<u32> = mp.keys().chain(sp.keys()).copied().collect();
        if parts.is_empty() {
            rows.push(row("", (0, 0), (0, 0), true));
        }
        for p in parts {
            let side = |v: &BTreeMap<u32, (String, ChunkSum)>| {
                v.get(&p).map_or((0, 0), |(_, c)| (c.rows, c.checksum))
            };
            let label = mp
                .get(&p)
                .or_else(|| sp.get(&p))
                .map_or("", |(n, _)| n.as_str());
            let (a, b) = (side(&mp), side(&sp));
            rows.push(row(label, a, b, a == b));
        }
    }
    let text = |f: &dyn Fn(&Row) -> String| Vector::String(rows.iter().map(f).collect());
    let long = |f: &dyn Fn(&Row) -> u64| Vector::Long(rows.iter().map(|r| f(r) as i64).collect());
    Table::new(
        [
            "dbName",
            "tableName",
            "partition",
            "masterRows",
            "slaveRows",
            "masterChecksum",
            "slaveChecksum",
            "equal",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        vec![
            text(&|_| db.to_string()),
            text(&|r| r.table.clone()),
            text(&|r| r.partition.clone()),
            long(&|r| r.master.0),
            long(&|r| r.slave.0),
            long(&|r| r.master.1),
            long(&|r| r.slave.1),
            Vector::Bool(rows.iter().map(|r| i8::from(r.equal)).collect()),
        ],
    )
    .unwrap_or_else(|_| Table {
        names: vec![],
        columns: vec![],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sums(table: &str, schema: u64, chunks: &[(u32, u64, u64)]) -> TableSums {
        TableSums {
            table: table.into(),
            schema,
            chunks: chunks
                .iter()
                .map(|&(partition, rows, checksum)| {
                    (
                        format!("p{partition}"),
                        ChunkSum {
                            partition,
                            rows,
                            checksum,
                        },
                    )
                })
                .collect(),
        }
    }

    fn column<'a>(t: &'a Table, name: &str) -> &'a Vector {
        t.column(name).expect("column")
    }

    #[test]
    fn sides_line_up_by_partition_and_every_difference_shows() {
        let master = [
            sums("a", 1, &[(0, 2, 10), (1, 3, 20)]),
            sums("b", 1, &[]),
            sums("c", 1, &[(0, 1, 5)]),
            sums("d", 1, &[(0, 1, 5)]),
        ];
        let slave = [
            sums("a", 1, &[(0, 2, 10), (2, 1, 7)]),
            sums("b", 1, &[]),
            sums("d", 2, &[(0, 1, 5)]),
            sums("e", 1, &[(3, 4, 9)]),
        ];
        let t = compare("dfs://x", &master, &slave);
        assert_eq!(
            column(&t, "tableName"),
            &Vector::String(
                ["a", "a", "a", "b", "c", "d", "d", "e"]
                    .map(String::from)
                    .to_vec()
            )
        );
        assert_eq!(
            column(&t, "partition"),
            &Vector::String(
                [
                    "p0",
                    "p1",
                    "p2",
                    "",
                    "(no table on the slave)",
                    "(schema differs)",
                    "p0",
                    "(no table on the master)"
                ]
                .map(String::from)
                .to_vec()
            )
        );
        assert_eq!(
            column(&t, "masterRows"),
            &Vector::Long(vec![2, 3, 0, 0, 1, 0, 1, 0])
        );
        assert_eq!(
            column(&t, "slaveRows"),
            &Vector::Long(vec![2, 0, 1, 0, 0, 0, 1, 4])
        );
        assert_eq!(
            column(&t, "equal"),
            &Vector::Bool(vec![1, 0, 0, 1, 0, 0, 1, 0])
        );
    }
}
