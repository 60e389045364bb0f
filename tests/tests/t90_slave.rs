//! The slave side of replication, end to end: a real master cluster and a real slave cluster
//! (controllers and data nodes as processes), the slave pulling, grouping, dispatching and
//! replaying; data compared between the clusters through the console.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as Json;
use xrepl_tests::{ints, texts, Cluster, Pair, Spec};

const TUTORIAL: &str = include_str!("../scripts/tutorial_master.dos");
const CATCH_UP: Duration = Duration::from_secs(90);

/// The tutorial's master statements with its replication call where the tutorial has it.
fn tutorial_with_replication() -> String {
    let create = "db = database(dbName, VALUE, 2023.01.01..2023.12.31)\n";
    assert!(TUTORIAL.contains(create));
    TUTORIAL.replacen(
        create,
        &format!("{create}setDatabaseForClusterReplication(db, true)\nschema(db).clusterReplicationEnabled\n"),
        1,
    )
}

/// Rows as a multiset of their JSON texts (order-independent comparison).
fn bag(rows: &[Json]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in rows {
        *out.entry(r.to_string()).or_insert(0) += 1;
    }
    out
}

/// Numbers equal to 1e-9 relative (sums of doubles may be added in another order).
fn close(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
            _ => x == y,
        },
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| close(v, w)))
        }
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| close(v, w))
        }
        _ => a == b,
    }
}

/// Every table of `db` holds the same rows on both clusters, with the same columns.
fn assert_same_db(p: &Pair, db: &str, tables: &[&str]) {
    for t in tables {
        let select = format!("select * from loadTable(\"{db}\", \"{t}\")");
        let (m, s) = (p.master.rows(&select), p.slave.rows(&select));
        assert_eq!(m.len(), s.len(), "{db}/{t}: row counts differ");
        assert_eq!(bag(&m), bag(&s), "{db}/{t}: rows differ");
        let cols = format!("schema(loadTable(\"{db}\", \"{t}\")).colDefs");
        assert_eq!(
            p.master.ok(&cols),
            p.slave.ok(&cols),
            "{db}/{t}: columns differ"
        );
    }
}

#[test]
fn t10_the_tutorial_replicates_end_to_end_and_every_status_function_answers() {
    let p = Pair::start(Spec::default(), Spec::default());
    let out = p.master.console_file_at(
        &p.master.host(),
        &["--format", "json"],
        &tutorial_with_replication(),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.json().last(),
        Some(&serde_json::json!([{"count": 1_210_000}]))
    );
    assert_eq!(p.wait_caught_up(CATCH_UP), 3);

    // The slave's count, as the tutorial asks it, and a checksum of every column.
    assert_eq!(
        p.slave
            .number("select count(*) from loadTable(\"dfs://testDB\", \"testTB\")"),
        1_210_000
    );
    let checksum = "select count(*), sum(PreClosePx), sum(OpenPx), sum(HighPx), sum(LowPx), sum(LastPx), sum(Volume), sum(Amount), min(SecurityID), max(SecurityID) from loadTable(\"dfs://testDB\", \"testTB\") group by DateTime";
    let (m, s) = (p.master.rows(checksum), p.slave.rows(checksum));
    assert_eq!(m.len(), 242);
    assert!(
        close(&Json::Array(m.clone()), &Json::Array(s.clone())),
        "checksums differ:\n{m:?}\n{s:?}"
    );

    // The master: three tasks, truncated once the slave has reported them.
    let tasks = p.master_tasks();
    assert_eq!(
        texts(&tasks, "operationType"),
        ["CREATE_DOMAIN", "CREATE_PARTITIONED_TABLE", "APPEND"]
    );
    xrepl_tests::wait_for("truncation", Duration::from_secs(10), || {
        p.master_tasks()
            .iter()
            .all(|r| r["isTruncated"] == Json::Bool(true))
            .then_some(())
    });
    let info = p
        .master
        .rows("rpc(getControllerAlias(), getRecentSlaveReplicationInfo)");
    assert_eq!(ints(&info, "lastFinishedTaskId"), [3]);
    assert_eq!(
        texts(&info, "connectedController"),
        [p.slave.controller.site()]
    );

    // The slave's status functions, with the spec's columns.
    let s = &p.slave;
    assert_eq!(
        s.header("rpc(getControllerAlias(), getSlaveReplicationStatus)"),
        [
            "taskId",
            "masterTid",
            "groupId",
            "executionSet",
            "queueId",
            "operationType",
            "createTime",
            "dbName",
            "tableName",
            "srcIP",
            "srcPort",
            "finishTime",
            "executionNode",
            "state",
            "details"
        ]
    );
    let rows = p.slave_tasks();
    assert_eq!(ints(&rows, "taskId"), [1, 2, 3]);
    assert_eq!(ints(&rows, "masterTid"), ints(&tasks, "tid"));
    assert_eq!(ints(&rows, "groupId"), ints(&tasks, "groupId"));
    assert_eq!(texts(&rows, "state"), ["FINISHED"; 3]);
    assert_eq!(
        texts(&rows, "operationType"),
        texts(&tasks, "operationType")
    );
    let slave_nodes: Vec<String> = s.datanodes.iter().map(|n| n.alias.clone()).collect();
    assert!(texts(&rows, "executionNode")
        .iter()
        .all(|n| slave_nodes.contains(n)));
    assert_eq!(
        ints(&rows, "srcPort"),
        [i64::from(p.master.datanodes[0].port); 3]
    );
    assert_eq!(
        s.header("rpc(getControllerAlias(), getSlaveReplicationQueueStatus)"),
        [
            "executionSet",
            "queueId",
            "unfinishedTasks",
            "executionGroupId",
            "executionNode",
            "executionTime",
            "status"
        ]
    );
    let queues = s.rows("rpc(getControllerAlias(), getSlaveReplicationQueueStatus)");
    // clusterReplicationQueue defaults to 4 per data node; two execution sets.
    assert_eq!(queues.len(), 2 * 4 * 2);
    assert!(texts(&queues, "status").iter().all(|t| t == "IDLE"));
    assert!(ints(&queues, "executionGroupId").iter().all(|g| *g == -1));
    assert_eq!(
        s.header("rpc(getControllerAlias(), getClusterReplicationMetrics)"),
        [
            "status",
            "finishedTasks",
            "unfinishedTasks",
            "finishedTasksPerSec",
            "maxCostPerTask",
            "avgCostPerTask",
            "averageGroupSize",
            "bootstrap",
            "bootstrapChunksApplied",
            "bootstrapChunks",
            "bootstrapBytesApplied",
            "bootstrapBytesSent"
        ]
    );
    let metrics = s.rows("rpc(getControllerAlias(), getClusterReplicationMetrics, -1)");
    assert_eq!(texts(&metrics, "status"), ["ENABLED"]);
    assert_eq!(ints(&metrics, "finishedTasks"), [3]);
    assert_eq!(ints(&metrics, "unfinishedTasks"), [0]);
    assert_eq!(
        s.header("getSlaveReplicationExecutionStatus()"),
        ["executionSet", "worker", "taskId", "state"]
    );
    // Each function on the wrong side says where it runs.
    let wrong = p
        .master
        .admin_json("rpc(getControllerAlias(), getSlaveReplicationStatus)");
    assert!(
        wrong.stderr.contains(
            "getSlaveReplicationStatus must be executed on the controller of the slave cluster."
        ),
        "{}",
        wrong.stderr
    );

    // The slave is read-only for anyone but the replication user; reads work.
    s.ok(r#"createUser("bob", "123456", false)
grant("bob", DB_WRITE, "dfs://testDB")
grant("bob", DB_READ, "dfs://testDB")"#);
    let bob = ["--user", "bob", "--password", "123456", "--format", "json"];
    let write = s.console_at(
        &s.host(),
        &bob,
        "delete from loadTable(\"dfs://testDB\", \"testTB\") where Volume > 150",
    );
    assert_ne!(write.code, 0);
    assert!(
        write
            .stderr
            .contains("is being replicated from the master cluster and is read-only on this slave"),
        "{}",
        write.stderr
    );
    let read = s.console_at(
        &s.host(),
        &bob,
        "select count(*) from loadTable(\"dfs://testDB\", \"testTB\")",
    );
    assert_eq!(read.code, 0, "{}", read.stderr);
    assert_eq!(read.json(), vec![serde_json::json!([{"count": 1_210_000}])]);
}

#[test]
fn t20_every_operation_type_and_a_mixed_workload_over_both_sets_converge() {
    let p = Pair::start(Spec::default(), Spec::default());
    let m = &p.master;
    let script = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/all_operations.dos"
    ))
    .expect("script");
    let out = m.console_file_at(&m.host(), xrepl_tests::ADMIN_JSON, &script);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Two more databases, in execution sets 0 and 1, several tables each; every kind of write.
    for i in 0..2 {
        m.ok(&format!(
            r#"db = database("dfs://mix{i}", VALUE, 1..8)
setDatabaseClusterReplicationExecutionSet(db, {i})
setDatabaseForClusterReplication(db, true)
db.createPartitionedTable(table(1:0, `k`v`s, [INT, DOUBLE, STRING]), "a", `k)
db.createPartitionedTable(table(1:0, `k`n, [INT, LONG]), "b", `k)
db.createDimensionTable(table(1:0, `id`label, [INT, SYMBOL]), "d")
"#
        ));
    }
    for round in 0..6 {
        for i in 0..2 {
            m.ok(&format!(
                r#"
name = "dfs://mix{i}"
k = 1..8
v = k * 1.5 + {round}
s = string(k + {round})
loadTable(name, "a").append!(table(k, v, s))
n = long(k * {round})
loadTable(name, "b").append!(table(k, n))
id = [{round}]
label = take(`r{round}, 1)
loadTable(name, "d").append!(table(id, label))
update loadTable(name, "a") set v = v * 2 where k = {k}
delete from loadTable(name, "b") where n = {del}
k = [1, 2]
n = long([100 + {round}, 200 + {round}])
upsert!(loadTable(name, "b"), table(k, n), keyColNames=`k)
"#,
                k = round % 8 + 1,
                del = round * 3,
            ));
        }
    }
    m.ok(r#"
addColumn(loadTable("dfs://mix1", "a"), `extra, INT)
update loadTable("dfs://mix1", "a") set extra = k + 1
k = [3]
v = [0.5]
s = ["x"]
extra = [7]
loadTable("dfs://mix1", "a").append!(table(k, v, s, extra))
truncate("dfs://mix0", "d")
"#);
    let last = p.wait_caught_up(CATCH_UP);
    let rows = p.slave_tasks();
    assert_eq!(ints(&rows, "taskId"), (1..=last).collect::<Vec<_>>());
    // Execution sets come from the master's databases.
    let sets: Vec<(String, i64)> = texts(&rows, "dbName")
        .into_iter()
        .zip(ints(&rows, "executionSet"))
        .collect();
    assert!(
        sets.iter()
            .all(|(db, set)| (db == "dfs://mix1") == (*set == 1)),
        "{sets:?}"
    );
    assert_same_db(&p, "dfs://r1", &["pt"]);
    assert_same_db(&p, "dfs://mix0", &["a", "b", "d"]);
    assert_same_db(&p, "dfs://mix1", &["a", "b", "d"]);
    // The dropped ones are gone on the slave too.
    assert_eq!(
        p.slave.ok(r#"existsDatabase("dfs://r2")
existsTable("dfs://r1", "dim")
existsTable("dfs://r1", "dim2")"#),
        vec![Json::Bool(false), Json::Bool(false), Json::Bool(false)]
    );
    assert_eq!(
        p.slave
            .ok("schema(database(\"dfs://r1\")).clusterReplicationEnabled"),
        vec![Json::Bool(true)]
    );
}

/// One batch of the crash workload: ten rows over the ten days of `dfs://once`, then an
/// update that is not idempotent (a second application would show).
fn crash_batch(b: i32) -> String {
    format!(
        r#"b = take({b}, 10)
day = 2023.01.01 + take(0..9, 10)
v = take(0, 10)
loadTable("dfs://once", "t").append!(table(b, day, v))
update loadTable("dfs://once", "t") set v = v + 1 where b = {b}
"#
    )
}

fn restart(c: &mut Cluster, alias: &str, pause: Duration) {
    c.kill(alias);
    std::thread::sleep(pause);
    if alias == "controller1" {
        c.spawn_controller();
    } else {
        c.spawn_datanode(alias);
    }
}

#[test]
fn t30_every_task_applies_exactly_once_through_sigkills_of_every_process() {
    let mut p = Pair::start(
        Spec {
            cluster_cfg: "clusterReplicationSyncPersistence=true\n".into(),
            ..Spec::default()
        },
        Spec {
            controller_cfg: "clusterReplicationRetryIntervalMs=100\n".into(),
            ..Spec::default()
        },
    );
    p.master.ok(r#"
db = database("dfs://once", VALUE, 2023.01.01..2023.01.10)
setDatabaseForClusterReplication(db, true)
db.createPartitionedTable(table(1:0, `b`day`v, [INT, DATE, INT]), "t", `day)
"#);
    let host = p.master.host();
    let master_ctl = p.master.controller.site();
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicI32::new(0));
    let writer = {
        let (stop, next) = (stop.clone(), next.clone());
        let bin = xrepl_tests::bin("xrepl");
        std::thread::spawn(move || {
            let _ = master_ctl;
            while !stop.load(Ordering::Relaxed) {
                let b = next.fetch_add(1, Ordering::Relaxed);
                // A failed run (a node is down) is fine: whatever committed is compared.
                let _ = std::process::Command::new(&bin)
                    .args(["--host", &host])
                    .args(xrepl_tests::ADMIN)
                    .arg("-c")
                    .arg(crash_batch(b))
                    .output();
            }
        })
    };
    let pause = Duration::from_millis(400);
    let between = || std::thread::sleep(Duration::from_millis(1200));
    between();
    restart(&mut p.slave, "controller1", pause);
    between();
    restart(&mut p.slave, "dnode1", pause);
    between();
    restart(&mut p.slave, "dnode2", Duration::from_millis(50));
    between();
    // The master data node that coordinates every write and serves every task's data.
    restart(&mut p.master, "dnode1", pause);
    between();
    restart(&mut p.master, "controller1", pause);
    between();
    restart(&mut p.slave, "controller1", Duration::from_millis(50));
    restart(&mut p.slave, "dnode1", Duration::from_millis(50));
    between();
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    p.master.wait_all_up();
    p.slave.wait_all_up();
    let last = p.wait_caught_up(CATCH_UP);
    assert!(
        last >= 10,
        "the workload made only {last} tasks (batches tried: {})",
        next.load(Ordering::Relaxed)
    );

    // The slave finished exactly the master's tasks, each once.
    let master_ids = ints(&p.master_tasks(), "taskId");
    let slave_ids = ints(&p.slave_tasks(), "taskId");
    assert_eq!(master_ids, slave_ids);
    // Each batch is there once, updated once: ten rows, v = 1 each.
    let per_batch =
        "select count(*), sum(v), min(v), max(v) from loadTable(\"dfs://once\", \"t\") group by b";
    let (m, s) = (p.master.rows(per_batch), p.slave.rows(per_batch));
    assert!(!m.is_empty());
    assert_eq!(bag(&m), bag(&s));
    // (A batch whose update the master lost with its killed console run shows v = 0 on both.)
    for r in &s {
        assert_eq!(r["count"], 10, "a batch appended twice: {r}");
        assert!(r["max_v"].as_i64() <= Some(1), "a batch updated twice: {r}");
    }
    assert_same_db(&p, "dfs://once", &["t"]);
}

#[test]
fn t35_a_duplicate_replay_after_a_controller_restart_is_rolled_back() {
    let mut p = Pair::start(Spec::default(), Spec::default());
    // Every replay holds its prepared chunks 1.5 s before asking to commit.
    for n in ["dnode1", "dnode2"] {
        p.slave.kill(n);
        p.slave
            .spawn_datanode_env(n, &[("XREPL_TEST_PAUSE_AT", "replay_before_decide:1500")]);
    }
    p.slave.wait_all_up();
    p.master.ok(r#"
db = database("dfs://dup", VALUE, 1..4)
setDatabaseForClusterReplication(db, true)
db.createPartitionedTable(table(1:0, `k`v, [INT, INT]), "t", `k)
"#);
    p.wait_caught_up(CATCH_UP);
    p.master.ok(r#"k = 1..4
v = k * 10
loadTable("dfs://dup", "t").append!(table(k, v))"#);
    xrepl_tests::wait_for("the append executing", Duration::from_secs(20), || {
        let rows = p.slave_tasks();
        (texts(&rows, "state").last().map(String::as_str) == Some("EXECUTING")).then_some(())
    });
    // Make sure the replay's transaction is on the controller's disk, then kill the
    // controller: the new one sees the task WAITING and hands it out again while the first
    // replay still holds its chunks. The first commits; the second must not: it is rolled back
    // when it is older than the first (it waited for its locks), and gives way at once when
    // it is younger (both span the two data nodes), and then finds the task finished.
    p.slave.ok(r#"createUser("flush", "123456", false)"#);
    restart(&mut p.slave, "controller1", Duration::from_millis(0));
    p.slave.wait_all_up();
    p.wait_caught_up(CATCH_UP);
    let count = || {
        p.slave
            .number("select count(*) from loadTable(\"dfs://dup\", \"t\")")
    };
    let gave_way = || {
        ["dnode1", "dnode2"].iter().any(|n| {
            p.slave
                .read_log(n)
                .contains("a replay gave way to an older transaction")
        })
    };
    xrepl_tests::wait_for("the second replay to end", Duration::from_secs(20), || {
        let logs = p.slave.read_log("controller1");
        (logs.contains("duplicate replay rolled back") || gave_way() || count() > 4).then_some(())
    });
    assert_eq!(count(), 4, "the append was applied twice");
    assert_same_db(&p, "dfs://dup", &["t"]);
    let applied_already = ["dnode1", "dnode2"].iter().any(|n| {
        p.slave
            .read_log(n)
            .contains("a replay of a task applied already was rolled back")
    });
    assert!(applied_already || gave_way());
}

#[test]
fn t40_a_task_that_cannot_succeed_fails_30_times_stops_and_resumes_after_grant_or_skip() {
    let p = Pair::start(
        Spec::default(),
        Spec {
            cluster_cfg: "clusterReplicationExecutionUsername=repl\nclusterReplicationExecutionPassword=replpass\n".into(),
            controller_cfg: "clusterReplicationRetryIntervalMs=10\n".into(),
            ..Spec::default()
        },
    );
    let (m, s) = (&p.master, &p.slave);
    // The execution user exists on the slave but may not create databases.
    s.ok(r#"createUser("repl", "replpass", false)"#);
    let rows = |k: &str| {
        format!(
            r#"k = [{k}]
v = [{k}]
loadTable("dfs://a", "t").append!(table(k, v))"#
        )
    };
    m.ok(&format!(
        r#"db = database("dfs://a", VALUE, 1..9)
setDatabaseForClusterReplication(db, true)
db.createPartitionedTable(table(1:0, `k`v, [INT, INT]), "t", `k)
{}"#,
        rows("1, 2, 3")
    ));
    let stopped = |task: i64| {
        xrepl_tests::wait_for("STOPPED", Duration::from_secs(60), || {
            let metrics = s.rows("rpc(getControllerAlias(), getClusterReplicationMetrics)");
            (texts(&metrics, "status") == ["STOPPED"]).then_some(())
        });
        let rows = p.slave_tasks();
        let row = rows
            .iter()
            .find(|r| r["taskId"] == task)
            .unwrap_or_else(|| panic!("task {task} listed: {rows:?}"))
            .clone();
        assert_eq!(row["state"], "FAILED", "{row}");
        // Nothing after the failed task ran.
        for r in rows.iter().filter(|r| r["taskId"].as_i64() > Some(task)) {
            assert_eq!(r["state"], "WAITING", "{r}");
        }
        row["details"].as_str().unwrap_or_default().to_string()
    };
    let details = stopped(1);
    assert!(details.contains("failed 30 times"), "{details}");
    assert!(details.contains("may not create databases"), "{details}");
    let log = s.read_log("controller1");
    assert!(log.contains("task FAILED, replication STOPPED"), "{log}");

    // Grant the right and start again: the failed task runs first, then the rest.
    s.ok(r#"grant("repl", DB_OWNER)
rpc(getControllerAlias(), startClusterReplication)"#);
    p.wait_caught_up(CATCH_UP);
    assert_same_db(&p, "dfs://a", &["t"]);
    // Here admin is not the replication user: a DDL of its own is refused too.
    let ddl = s.admin_json(r#"addColumn(loadTable("dfs://a", "t"), `x, INT)"#);
    assert!(
        ddl.stderr.contains("read-only on this slave"),
        "{}",
        ddl.stderr
    );

    // Skip: a database the slave holds already, owned by someone else, cannot be taken over.
    s.ok(r#"database("dfs://b", VALUE, 1..9)"#);
    m.ok(r#"db = database("dfs://b", VALUE, 1..9)
setDatabaseForClusterReplication(db, true)"#);
    let failed = ints(&p.master_tasks(), "taskId")
        .into_iter()
        .max()
        .unwrap_or(0);
    let details = stopped(failed);
    assert!(details.contains("lacks DB_OWNER on dfs://b"), "{details}");
    // Writes on the master go on meanwhile, and wait.
    m.ok(&rows("4, 5"));
    let refused = s.admin_json(&format!(
        "rpc(getControllerAlias(), skipClusterReplicationTask, {})",
        failed + 100
    ));
    assert!(
        refused.stderr.contains("has not been received"),
        "{}",
        refused.stderr
    );
    s.ok(&format!(
        "rpc(getControllerAlias(), skipClusterReplicationTask, {failed}..{failed})
rpc(getControllerAlias(), startClusterReplication)"
    ));
    p.wait_caught_up(CATCH_UP);
    assert_same_db(&p, "dfs://a", &["t"]);
    let rows = p.slave_tasks();
    let skipped = rows.iter().find(|r| r["taskId"] == failed).expect("listed");
    assert_eq!(skipped["state"], "FINISHED");
    assert!(
        skipped["details"]
            .as_str()
            .is_some_and(|d| d.contains("skipped by admin")),
        "{skipped}"
    );
    let metrics = s.rows("rpc(getControllerAlias(), getClusterReplicationMetrics, -1)");
    assert_eq!(texts(&metrics, "status"), ["ENABLED"]);
}
