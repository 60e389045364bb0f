//! Bootstrap: a database that already holds tables and rows when its replication flag turns
//! on reaches the slave whole (the tables, then every chunk as a SNAPSHOT_CHUNK task), while
//! writers go on; the slave ends equal to the master in every partition.

use std::time::Duration;

use serde_json::Value as Json;
use xrepl_tests::{ints, texts, Pair, Spec};

const CATCH_UP: Duration = Duration::from_secs(120);

/// A database with a partitioned table (10 partitions, `rows` rows) and a dimension table,
/// replication off.
fn setup(rows: usize) -> String {
    format!(
        r#"
db = database("dfs://boot", VALUE, 1..10)
db.createPartitionedTable(table(1:0, `id`sym`price`qty, [INT, SYMBOL, DOUBLE, LONG]), "pt", `id)
db.createDimensionTable(table(1:0, `k`v, [INT, STRING]), "dt")
setColumnComment(loadTable("dfs://boot", "pt"), `price, "last price")
n = {rows}
id = (0..(n - 1)) % 10 + 1
sym = take(`a`b`c, n)
price = double(0..(n - 1)) / 4.0
qty = long(0..(n - 1))
loadTable("dfs://boot", "pt").append!(table(id, sym, price, qty))
k = [1, 2, 3]
v = ["x", "y", "z"]
loadTable("dfs://boot", "dt").append!(table(k, v))
"#
    )
}

/// `n` rounds of writes to every partition of `pt`: an append of 10 rows, and now and then
/// an update or a delete.
fn writes(n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        s += &format!(
            "id = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\nsym = take(`w, 10)\nprice = take({i}.5, 10)\nqty = take(long({}), 10)\nloadTable(\"dfs://boot\", \"pt\").append!(table(id, sym, price, qty))\n",
            1_000_000 + i
        );
        if i % 20 == 5 {
            s += "update loadTable(\"dfs://boot\", \"pt\") set price = price + 1.0 where id = 3, qty < 100\n";
        }
        if i % 20 == 15 {
            s += &format!(
                "delete from loadTable(\"dfs://boot\", \"pt\") where id = 7, qty < {}\n",
                50 + i
            );
        }
    }
    s
}

fn consistency(p: &Pair, db: &str) -> Vec<Json> {
    p.slave
        .rows(&format!("checkClusterReplicationConsistency(\"{db}\")"))
}

/// Every partition of `db` equal on both sides, and the rows of each.
fn assert_equal(p: &Pair, db: &str) -> Vec<i64> {
    let rows = consistency(p, db);
    assert!(!rows.is_empty(), "no partition compared");
    assert!(
        rows.iter().all(|r| r["equal"] == Json::Bool(true)),
        "the slave differs from the master: {rows:?}"
    );
    ints(&rows, "masterRows")
}

#[test]
fn t10_existing_data_reaches_the_slave_while_writers_go_on() {
    let p = Pair::start(Spec::default(), Spec::default());
    p.master.ok(&setup(200_000));

    // Writers append to every partition, update and delete while the flag turns on.
    let writer = {
        let script = writes(60);
        let host = p.master.host();
        let master = &p.master;
        std::thread::scope(|s| {
            let w = s.spawn(|| master.console_at(&host, xrepl_tests::ADMIN_JSON, &script));
            std::thread::sleep(Duration::from_millis(300));
            p.master
                .ok("setDatabaseForClusterReplication(database(\"dfs://boot\"), true)");
            w.join().expect("writer thread")
        })
    };
    assert_eq!(writer.code, 0, "writer failed: {}", writer.stderr);
    p.wait_caught_up(CATCH_UP);

    let rows = assert_equal(&p, "dfs://boot");
    let total: i64 = rows.iter().sum();
    let master_rows = p
        .master
        .number("select count(*) from loadTable(\"dfs://boot\", \"pt\")")
        + p.master
            .number("select count(*) from loadTable(\"dfs://boot\", \"dt\")");
    assert_eq!(total, master_rows);
    assert!(total > 200_000, "the writers' rows are there: {total}");
    // The tables were created with their comments, and the slave's copy is read-only.
    let comments = p
        .slave
        .rows("select name, comment from schema(loadTable(\"dfs://boot\", \"pt\")).colDefs");
    assert!(
        comments
            .iter()
            .any(|r| r["name"] == "price" && r["comment"] == "last price"),
        "{comments:?}"
    );
    // The queue holds the CREATE_DOMAIN, then one SNAPSHOT_CHUNK per chunk (10 + 1), among
    // the writers' tasks.
    let ops = texts(&p.master_tasks(), "operationType");
    assert_eq!(ops.iter().filter(|o| *o == "CREATE_DOMAIN").count(), 1);
    assert_eq!(
        ops.iter().filter(|o| *o == "SNAPSHOT_CHUNK").count(),
        11,
        "{ops:?}"
    );
}
