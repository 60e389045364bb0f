//! The in-process tier: whole clusters as tasks of this test's runtime, on 127.0.0.1:0. The
//! same code paths as the binaries (`run` with a bound listener, configs through the real
//! loaders), without starting a process.

use std::time::Duration;

use xrepl_core::value::{Table, Value, Vector};
mod support;

use support::inproc::{runtime, InProcess};

fn table(out: Vec<Value>) -> Table {
    match out.into_iter().last() {
        Some(Value::Table(t)) => t,
        other => panic!("expected a table, got {other:?}"),
    }
}

fn longs(t: &Table, column: &str) -> Vec<i64> {
    match t.column(column) {
        Some(Vector::Long(v)) => v.clone(),
        Some(Vector::Int(v)) => v.iter().map(|x| i64::from(*x)).collect(),
        other => panic!("column {column}: {other:?}"),
    }
}

fn strings(t: &Table, column: &str) -> Vec<String> {
    match t.column(column) {
        Some(Vector::String(v) | Vector::Symbol(v)) => v.clone(),
        other => panic!("column {column}: {other:?}"),
    }
}

const SETUP: &str = r#"
db = database("dfs://inproc", VALUE, 1..4)
t = table(1:0, `k`v, [INT, LONG])
db.createPartitionedTable(t, "t", `k)
"#;

const GROUPS: &str =
    r#"select count(*) as n, sum(v) as s from loadTable("dfs://inproc", "t") group by k"#;

#[test]
fn t10_a_cluster_in_this_process_writes_reads_and_refuses() {
    runtime().block_on(async {
        let c = InProcess::start(2, "", "").await;
        let perf = table(c.run(0, "getClusterPerf()").await.expect("perf"));
        assert_eq!(strings(&perf, "state"), ["up", "up", "up"]);
        c.run(0, SETUP).await.expect("setup");
        // Rows through the Rust client API, and through a script on the other data node.
        let client = c.client(0).await;
        let rows = Table::new(
            vec!["k".into(), "v".into()],
            vec![
                Vector::Int(vec![1, 2, 3, 1]),
                Vector::Long(vec![10, 20, 30, 40]),
            ],
        )
        .expect("rows");
        assert_eq!(
            client
                .append("dfs://inproc", "t", rows)
                .await
                .expect("append"),
            4
        );
        c.run(
            1,
            "insert into loadTable(\"dfs://inproc\", \"t\") values (2, 5)",
        )
        .await
        .expect("insert");
        c.run(
            0,
            "update loadTable(\"dfs://inproc\", \"t\") set v = v * 2 where k == 3",
        )
        .await
        .expect("update");
        c.run(
            1,
            "delete from loadTable(\"dfs://inproc\", \"t\") where v == 40",
        )
        .await
        .expect("delete");
        let g = table(c.run(0, GROUPS).await.expect("select"));
        assert_eq!(longs(&g, "k"), [1, 2, 3]);
        assert_eq!(longs(&g, "n"), [1, 2, 1]);
        assert_eq!(longs(&g, "s"), [10, 25, 60]);
        // A value outside every partition writes nothing and says why.
        let e = c
            .run(
                0,
                "insert into loadTable(\"dfs://inproc\", \"t\") values (9, 1)",
            )
            .await
            .expect_err("refused");
        assert!(e.to_string().contains("cannot append to 't'"), "{e}");
        let n = table(
            c.run(1, "select count(*) from loadTable(\"dfs://inproc\", \"t\")")
                .await
                .expect("count"),
        );
        assert_eq!(longs(&n, "count"), [4]);
        c.stop().await;
    });
}

#[test]
fn t20_a_master_and_a_slave_in_this_process_replicate_every_write_once() {
    runtime().block_on(async {
        let master = InProcess::start(2, "clusterReplicationMode=master\n", "").await;
        let slave = InProcess::start(
            2,
            "clusterReplicationMode=slave\nclusterReplicationExecutionUsername=repl\nclusterReplicationExecutionPassword=replpass\n",
            &format!(
                "clusterReplicationMasterCtl={}\nclusterReplicationPullWaitMs=200\n",
                master.controller
            ),
        )
        .await;
        slave
            .run(0, "createUser(\"repl\", \"replpass\", true)")
            .await
            .expect("the slave's replication user");
        master
            .run(
                0,
                r#"
db = database("dfs://inproc", VALUE, 1..4)
setDatabaseForClusterReplication(db, true)
db.createPartitionedTable(table(1:0, `k`v, [INT, LONG]), "u", `k)
"#,
            )
            .await
            .expect("setup");
        let writes = [
            "insert into loadTable(\"dfs://inproc\", \"u\") values (1, 10)",
            "insert into loadTable(\"dfs://inproc\", \"u\") values (2, 20)",
            "update loadTable(\"dfs://inproc\", \"u\") set v = v + 1 where k == 1",
            "insert into loadTable(\"dfs://inproc\", \"u\") values (3, 30)",
            "delete from loadTable(\"dfs://inproc\", \"u\") where k == 2",
        ];
        for (i, w) in writes.iter().enumerate() {
            master.run(i % 2, w).await.expect("write");
        }
        const ROWS: &str = "select k, v from loadTable(\"dfs://inproc\", \"u\") order by k";
        let want = table(master.run(0, ROWS).await.expect("master rows"));
        assert_eq!(longs(&want, "k"), [1, 3]);
        assert_eq!(longs(&want, "v"), [11, 30]);
        // Every task the master made is FINISHED on the slave, and the rows are there once.
        let sent = table(
            master
                .run(0, "rpc(getControllerAlias(), getMasterReplicationStatus)")
                .await
                .expect("master status"),
        );
        let ids = longs(&sent, "taskId");
        assert_eq!(ids, (1..=7).collect::<Vec<i64>>(), "CREATE_DOMAIN, CREATE_TABLE, 5 writes");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let done = table(
                slave
                    .run(0, "rpc(getControllerAlias(), getSlaveReplicationStatus)")
                    .await
                    .expect("slave status"),
            );
            if longs(&done, "taskId") == ids
                && strings(&done, "state").iter().all(|s| s == "FINISHED")
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the slave did not finish every task within 30 s: {done:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(table(slave.run(1, ROWS).await.expect("slave rows")), want);
        // On the slave, the replicated database is read-only for anyone but the replication
        // user, the administrator included.
        let e = slave
            .run(0, "insert into loadTable(\"dfs://inproc\", \"u\") values (1, 1)")
            .await
            .expect_err("read-only on the slave");
        assert!(e.to_string().contains("read-only on this slave"), "{e}");
        slave.stop().await;
        master.stop().await;
    });
}
