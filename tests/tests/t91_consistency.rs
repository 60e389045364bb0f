//! `checkClusterReplicationConsistency`: per partition, rows and checksums of the master and
//! the slave side by side; equal after replication, and every kind of divergence shows.

use std::time::Duration;

use serde_json::Value as Json;
use xrepl_tests::{ints, texts, Pair, Spec};

const CATCH_UP: Duration = Duration::from_secs(90);

const SETUP: &str = r#"
db = database("dfs://cons", VALUE, 1..3)
setDatabaseForClusterReplication(db, true)
db.createPartitionedTable(table(1:0, `id`name`price, [INT, STRING, DOUBLE]), "pt", `id)
db.createDimensionTable(table(1:0, `k`v, [INT, STRING]), "dt")
id = [1, 2, 3, 3]
name = ["a", "b", "c", "d"]
price = [1.5, -0.0, 2.25, 3.0]
loadTable("dfs://cons", "pt").append!(table(id, name, price))
k = [1, 2, 3]
v = ["x", "y", "z"]
loadTable("dfs://cons", "dt").append!(table(k, v))
update loadTable("dfs://cons", "pt") set price = price * 2 where id = 2
delete from loadTable("dfs://cons", "pt") where name = "d"
"#;

const CHECK: &str = "checkClusterReplicationConsistency(\"dfs://cons\")";

fn rows_of(p: &Pair, script: &str) -> Vec<Json> {
    p.slave.rows(script)
}

#[test]
fn t10_replicated_data_is_equal_in_every_partition_and_divergence_is_named() {
    let p = Pair::start(Spec::default(), Spec::default());
    p.master.ok(SETUP);
    p.wait_caught_up(CATCH_UP);

    // The header is the documented one.
    assert_eq!(
        p.slave.header(CHECK),
        [
            "dbName",
            "tableName",
            "partition",
            "masterRows",
            "slaveRows",
            "masterChecksum",
            "slaveChecksum",
            "equal"
        ]
    );
    let rows = rows_of(&p, CHECK);
    assert_eq!(texts(&rows, "tableName"), ["dt", "pt", "pt", "pt"]);
    assert_eq!(texts(&rows, "partition"), ["", "1", "2", "3"]);
    assert_eq!(ints(&rows, "masterRows"), [3, 1, 1, 1]);
    assert_eq!(ints(&rows, "masterRows"), ints(&rows, "slaveRows"));
    assert_eq!(ints(&rows, "masterChecksum"), ints(&rows, "slaveChecksum"));
    assert!(
        rows.iter().all(|r| r["equal"] == Json::Bool(true)),
        "{rows:?}"
    );
    assert!(texts(&rows, "dbName").iter().all(|d| d == "dfs://cons"));
    // Checksums differ between partitions (they depend on the rows).
    let sums = ints(&rows, "masterChecksum");
    assert_ne!(sums[1], sums[2]);

    // One table only.
    let one = rows_of(
        &p,
        "checkClusterReplicationConsistency(\"dfs://cons\", \"dt\")",
    );
    assert_eq!(texts(&one, "tableName"), ["dt"]);

    // Divergence made on purpose on the slave (the execution user may write there): a changed
    // value keeps the row count and changes the checksum; a deleted row changes both; a new
    // partition shows as rows the master lacks.
    p.slave.ok(
        "update loadTable(\"dfs://cons\", \"pt\") set name = \"B\" where id = 2\n\
         delete from loadTable(\"dfs://cons\", \"dt\") where k = 3\n\
         addValuePartitions(database(\"dfs://cons\"), 4)\n\
         id = [4]\nname = [\"d\"]\nprice = [1.0]\n\
         loadTable(\"dfs://cons\", \"pt\").append!(table(id, name, price))",
    );
    let rows = rows_of(&p, CHECK);
    assert_eq!(texts(&rows, "partition"), ["", "1", "2", "3", "4"]);
    let equal: Vec<bool> = rows
        .iter()
        .map(|r| r["equal"] == Json::Bool(true))
        .collect();
    assert_eq!(equal, [false, true, false, true, false]);
    assert_eq!(ints(&rows, "masterRows"), [3, 1, 1, 1, 0]);
    assert_eq!(ints(&rows, "slaveRows"), [2, 1, 1, 1, 1]);
    let (m, s) = (ints(&rows, "masterChecksum"), ints(&rows, "slaveChecksum"));
    assert_ne!(m[2], s[2], "a changed value must change the checksum");
    // As operations.md shows it: only what differs.
    let differ = rows_of(
        &p,
        "select * from checkClusterReplicationConsistency(\"dfs://cons\") where equal = false",
    );
    assert_eq!(texts(&differ, "partition"), ["", "2", "4"]);

    // Clear errors, and nothing runs where it must not.
    let bad = |script: &str| {
        let out = p.slave.admin_json(script);
        assert_ne!(out.code, 0, "{script} should fail");
        out.stderr
    };
    assert!(bad("checkClusterReplicationConsistency(\"dfs://nope\")").contains("does not exist"));
    assert!(
        bad("checkClusterReplicationConsistency(\"dfs://cons\", \"nope\")")
            .contains("does not exist")
    );
    assert!(bad("checkClusterReplicationConsistency()").contains("missing"));
    let on_master = p.master.admin_json(CHECK);
    assert!(
        on_master
            .stderr
            .contains("must be executed on a data node of the slave cluster"),
        "{}",
        on_master.stderr
    );
    p.slave
        .ok("createUser(\"reader\", \"pw123456\")\ngrant(\"reader\", DB_READ, \"dfs://cons\")");
    let out = p.slave.console_at(
        &p.slave.host(),
        &["--user", "reader", "--password", "pw123456"],
        CHECK,
    );
    assert!(
        out.stderr.contains("administrator"),
        "a non-administrator must be refused: {}",
        out.stderr
    );
}
