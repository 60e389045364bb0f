//! The database on a 1-controller 2-datanode cluster: every operation with its data checked,
//! placement, rights, restarts.

use serde_json::json;
use xrepl_tests::{Cluster, Spec};

/// A VALUE database over ten days with table `t(d DATE, id INT, v DOUBLE, s SYMBOL)`
/// partitioned by `d`, and 100 rows: ids 0..99, day = id % 10, v = id * 1.5.
const SETUP: &str = r#"
db = database("dfs://db", VALUE, 2023.01.01..2023.01.10)
schemaT = table(1:0, `d`id`v`s, [DATE, INT, DOUBLE, SYMBOL])
db.createPartitionedTable(table=schemaT, tableName="t", partitionColumns=`d)
id = 0..99
d = 2023.01.01 + id % 10
v = id * 1.5
s = string(id % 3)
loadTable("dfs://db", "t").append!(table(d, id, v, s))
"#;

const T: &str = r#"loadTable("dfs://db", "t")"#;

fn setup() -> Cluster {
    let c = Cluster::start(&Spec::default());
    c.ok(SETUP);
    c
}

fn count(c: &Cluster, cond: &str) -> i64 {
    let w = if cond.is_empty() {
        String::new()
    } else {
        format!(" where {cond}")
    };
    c.number(&format!("select count(*) from {T}{w}"))
}

#[test]
fn t10_append_routes_rows_and_reads_aggregate_them() {
    let c = setup();
    assert_eq!(count(&c, ""), 100);
    assert_eq!(count(&c, "d == 2023.01.03"), 10);
    assert_eq!(count(&c, "id between 10:19 and v > 20"), 6);
    let r = c.ok(&format!(
        "select sum(id), avg(v), min(id), max(s), count(*) from {T}"
    ));
    assert_eq!(
        r[0],
        json!([{"sum_id": 4950, "avg_v": 74.25, "min_id": 0, "max_s": "2", "count": 100}])
    );
    let r = c.ok(&format!("select count(*), sum(id) from {T} group by s"));
    assert_eq!(
        r[0],
        json!([{"s": "0", "count": 34, "sum_id": 1683}, {"s": "1", "count": 33, "sum_id": 1617}, {"s": "2", "count": 33, "sum_id": 1650}])
    );
    let r = c.ok(&format!(
        "select id, v from {T} where id in [5, 50, 95] order by id desc"
    ));
    assert_eq!(
        r[0],
        json!([{"id": 95, "v": 142.5}, {"id": 50, "v": 75.0}, {"id": 5, "v": 7.5}])
    );
    let r = c.ok(&format!(
        "select id from {T} where d == 2023.01.02 order by id limit 3"
    ));
    assert_eq!(r[0], json!([{"id": 1}, {"id": 11}, {"id": 21}]));
    // A value outside every partition is refused with its name, and nothing is written.
    let out = c.admin_json(&format!(
        "{T}.append!(table(d=[2024.05.01], id=[1], v=[1.0], s=[\"x\"]))"
    ));
    assert_eq!(out.code, 1);
    let out = c.admin_json(&format!(
        "d = [2023.01.01, 2024.05.01]\nid = [1000, 1001]\nv = [1.0, 2.0]\ns = `x`y\n{T}.append!(table(d, id, v, s))"
    ));
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("2024.05.01 is outside every partition of the VALUE scheme"),
        "{}",
        out.stderr
    );
    assert_eq!(count(&c, "id >= 1000"), 0, "the whole append was refused");
}

#[test]
fn t20_partitions_spread_over_both_data_nodes() {
    let c = setup();
    let r = c.ok(&format!("schema({T}).chunks"));
    let rows = r[0].as_array().expect("table");
    assert_eq!(rows.len(), 10);
    let nodes: std::collections::BTreeSet<&str> =
        rows.iter().filter_map(|r| r["node"].as_str()).collect();
    assert_eq!(nodes.into_iter().collect::<Vec<_>>(), ["dnode1", "dnode2"]);
    assert_eq!(rows[0]["partition"], "2023.01.01");
}

#[test]
fn t30_update_delete_upsert_truncate_and_drop_partition() {
    let c = setup();
    c.ok(&format!(
        "update {T} set v = v * 2, s = \"big\" where id >= 90"
    ));
    assert_eq!(
        c.number(&format!("select sum(v) from {T} where id >= 90")),
        3 * (90..100).sum::<i64>()
    );
    assert_eq!(count(&c, "s == \"big\""), 10);
    c.ok(&format!("delete from {T} where id < 10 or s == \"big\""));
    assert_eq!(count(&c, ""), 80);
    // upsert!: id 10 is replaced, id 500 is new.
    c.ok(&format!(
        "d = [2023.01.01, 2023.01.01]\nid = [10, 500]\nv = [-1.0, -2.0]\ns = `u`u\nupsert!({T}, table(d, id, v, s), keyColNames=`id)"
    ));
    assert_eq!(count(&c, ""), 81);
    assert_eq!(
        c.ok(&format!("select v from {T} where id == 10"))[0],
        json!([{"v": -1.0}])
    );
    // insert into
    c.ok(&format!(
        "insert into {T} values (2023.01.05, 700, 7.0, \"i\")"
    ));
    assert_eq!(count(&c, "id == 700"), 1);
    // dropPartition removes exactly one day's rows.
    let before = count(&c, "d == 2023.01.04");
    assert!(before > 0);
    c.ok("dropPartition(database(\"dfs://db\"), 2023.01.04, \"t\")");
    assert_eq!(count(&c, "d == 2023.01.04"), 0);
    assert_eq!(count(&c, ""), 82 - before);
    c.ok("truncate(\"dfs://db\", \"t\")");
    assert_eq!(count(&c, ""), 0);
    assert_eq!(c.ok("existsTable(\"dfs://db\", \"t\")"), vec![json!(true)]);
}

#[test]
fn t40_columns_and_tables_change_without_losing_data() {
    let c = setup();
    c.ok(&format!("addColumn({T}, `w, [LONG])"));
    assert_eq!(
        count(&c, "w == NULL"),
        100,
        "a new column is NULL in old rows"
    );
    c.ok(&format!(
        "rename!({T}, `v, `price)\nsetColumnComment({T}, \"price\", \"in CNY\")"
    ));
    assert_eq!(
        c.number(&format!("select sum(price) from {T} where id == 4")),
        6
    );
    let defs = c.ok(&format!("schema({T}).colDefs"));
    assert_eq!(
        defs[0][2],
        json!({"name": "price", "typeString": "DOUBLE", "typeInt": 16, "extra": null, "comment": "in CNY"})
    );
    c.ok(&format!("replaceColumn!({T}, `id, LONG)"));
    assert_eq!(
        c.ok(&format!("schema({T}).colDefs"))[0][1]["typeString"],
        "LONG"
    );
    assert_eq!(c.number(&format!("select sum(id) from {T}")), 4950);
    c.ok(&format!("dropColumns!({T}, `s)"));
    assert_eq!(
        c.ok(&format!("select * from {T} where id == 7"))[0],
        json!([{"d": "2023.01.08", "id": 7, "price": 10.5, "w": null}])
    );
    let out = c.admin_json(&format!("dropColumns!({T}, `d)"));
    assert!(
        out.stderr
            .contains("'d' is the partition column and cannot be dropped"),
        "{}",
        out.stderr
    );
    c.ok("renameTable(database(\"dfs://db\"), \"t\", \"t2\")");
    assert_eq!(
        c.ok("existsTable(\"dfs://db\", \"t\")\nexistsTable(\"dfs://db\", \"t2\")"),
        vec![json!(false), json!(true)]
    );
    assert_eq!(
        c.number("select count(*) from loadTable(\"dfs://db\", \"t2\")"),
        100
    );
    c.ok("dropTable(database(\"dfs://db\"), \"t2\")");
    assert_eq!(
        c.ok("existsTable(\"dfs://db\", \"t2\")"),
        vec![json!(false)]
    );
    let out = c.admin_json("loadTable(\"dfs://db\", \"t2\")");
    assert!(
        out.stderr
            .contains("table 't2' does not exist in database 'dfs://db'"),
        "{}",
        out.stderr
    );
    c.ok("dropDatabase(\"dfs://db\")");
    assert_eq!(c.ok("existsDatabase(\"dfs://db\")"), vec![json!(false)]);
}

#[test]
fn t50_value_partitions_can_be_added_and_dimension_tables_hold_rows() {
    let c = setup();
    c.ok("addValuePartitions(database(\"dfs://db\"), 2023.02.01..2023.02.02)");
    c.ok(&format!(
        "{T}.append!(table(d=[2023.02.02], id=[1000], v=[1.0], s=[\"x\"]))"
    ));
    assert_eq!(count(&c, "d == 2023.02.02"), 1);
    let r = c.ok("schema(database(\"dfs://db\")).partitions");
    assert_eq!(r, vec![json!(12)]);
    c.ok("createDimensionTable(database(\"dfs://db\"), table(1:0, `k`name, [INT, STRING]), \"dim\")\nk = 1..5\nname = string(k)\nloadTable(\"dfs://db\", \"dim\").append!(table(k, name))");
    assert_eq!(
        c.number("select count(*) from loadTable(\"dfs://db\", \"dim\")"),
        5
    );
    assert_eq!(
        c.number(
            "select sum(k) from loadTable(\"dfs://db\", \"dim\") where name in [\"2\", \"3\"]"
        ),
        5
    );
}

#[test]
fn t60_hash_range_and_list_databases() {
    let c = Cluster::start(&Spec::default());
    c.ok(r#"
h = database("dfs://h", HASH, [INT, 4])
h.createPartitionedTable(table(1:0, `id`x, [INT, DOUBLE]), "t", `id)
id = 0..11
x = id * 1.0
loadTable("dfs://h", "t").append!(table(id, x))
r = database("dfs://r", RANGE, [0, 10, 20, 30])
r.createPartitionedTable(table(1:0, `id`x, [INT, DOUBLE]), "t", `id)
id = 0..29
x = id * 1.0
loadTable("dfs://r", "t").append!(table(id, x))
l = database("dfs://l", LIST, [`A`B, `C])
l.createPartitionedTable(table(1:0, `s`x, [SYMBOL, INT]), "t", `s)
loadTable("dfs://l", "t").append!(table(s=`A`B`C`C, x=1..4))
"#);
    assert_eq!(
        c.number("select count(*) from loadTable(\"dfs://h\", \"t\")"),
        12
    );
    // The HASH mapping is fixed: ids 0..11 in 4 buckets (same as common::catalog's test).
    let chunks = c.ok("schema(loadTable(\"dfs://h\", \"t\")).chunks");
    let parts: Vec<&str> = chunks[0]
        .as_array()
        .expect("t")
        .iter()
        .filter_map(|r| r["partition"].as_str())
        .collect();
    assert_eq!(parts, ["Key0", "Key1", "Key2", "Key3"]);
    assert_eq!(
        c.number("select count(*) from loadTable(\"dfs://r\", \"t\") where id between 10:19"),
        10
    );
    let out = c.admin_json("loadTable(\"dfs://r\", \"t\").append!(table(id=[30], x=[1.0]))");
    assert!(
        out.stderr
            .contains("30 is outside every partition of the RANGE scheme"),
        "{}",
        out.stderr
    );
    c.ok("addRangePartitions(database(\"dfs://r\"), [40])\nloadTable(\"dfs://r\", \"t\").append!(table(id=[30], x=[1.0]))");
    assert_eq!(
        c.number("select count(*) from loadTable(\"dfs://r\", \"t\")"),
        31
    );
    assert_eq!(
        c.number("select sum(x) from loadTable(\"dfs://l\", \"t\") where s == \"C\""),
        7
    );
}

#[test]
fn t70_rights_are_checked_and_refusals_change_nothing() {
    let c = setup();
    c.ok("createUser(\"bob\", \"bobpass1\")");
    let bob = |script: &str| {
        c.console_at(
            &c.host(),
            &[
                "--user",
                "bob",
                "--password",
                "bobpass1",
                "--format",
                "json",
            ],
            script,
        )
    };
    let out = bob(&format!("select count(*) from {T}"));
    assert_eq!(
        out.stderr.trim(),
        "controller1: user 'bob' lacks DB_READ on dfs://db"
    );
    c.ok("grant(\"bob\", DB_READ, \"dfs://db\")");
    assert_eq!(
        bob(&format!("select count(*) from {T}")).json(),
        vec![json!([{"count": 100}])]
    );
    for (script, right) in [
        (
            format!("{T}.append!(table(d=[2023.01.01], id=[1], v=[1.0], s=[\"x\"]))"),
            "DB_WRITE",
        ),
        ("truncate(\"dfs://db\", \"t\")".to_string(), "DB_WRITE"),
        (format!("delete from {T}"), "DB_WRITE"),
        (
            "dropTable(database(\"dfs://db\"), \"t\")".to_string(),
            "DB_OWNER",
        ),
        ("dropDatabase(\"dfs://db\")".to_string(), "DB_OWNER"),
        (
            "database(\"dfs://bobs\", VALUE, 1..3)".to_string(),
            "may not create databases",
        ),
        (
            "createUser(\"eve\", \"evepass1\")".to_string(),
            "not an administrator",
        ),
    ] {
        let out = bob(&script);
        assert_eq!(out.code, 1, "{script}");
        assert!(out.stderr.contains(right), "{script}: {}", out.stderr);
        assert!(
            !out.stderr.contains("not known"),
            "a refusal is a known outcome: {}",
            out.stderr
        );
    }
    assert_eq!(count(&c, ""), 100, "nothing changed");
    c.ok("grant(\"bob\", DB_WRITE, \"dfs://db\")");
    assert_eq!(
        bob(&format!(
            "{T}.append!(table(d=[2023.01.01], id=[1], v=[1.0], s=[\"x\"]))"
        ))
        .code,
        0
    );
    assert_eq!(count(&c, ""), 101);
    // Not logged in: nothing can be read.
    let out = c.console_at(&c.host(), &[], &format!("select count(*) from {T}"));
    assert!(out.stderr.contains("Not logged in"), "{}", out.stderr);
}

#[test]
fn t80_a_restarted_cluster_keeps_every_database_table_and_row() {
    let mut c = setup();
    c.ok("dim = database(\"dfs://other\", RANGE, [0, 100])\ndim.createPartitionedTable(table(1:0, `k, [INT]), \"k\", `k)\nloadTable(\"dfs://other\", \"k\").append!(table(k=0..49))");
    for a in ["dnode1", "dnode2", "controller1"] {
        c.kill(a);
    }
    c.spawn_controller();
    c.spawn_datanode("dnode1");
    c.spawn_datanode("dnode2");
    c.wait_all_up();
    assert_eq!(count(&c, ""), 100);
    assert_eq!(c.number(&format!("select sum(v) from {T}")), 7425);
    assert_eq!(
        c.number("select sum(k) from loadTable(\"dfs://other\", \"k\")"),
        1225
    );
    assert_eq!(
        c.ok("existsDatabase(\"dfs://db\")\nexistsDatabase(\"dfs://other\")"),
        vec![json!(true), json!(true)]
    );
}
