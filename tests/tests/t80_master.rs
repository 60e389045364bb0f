//! Replication, master side: committed transactions on replicated databases become numbered,
//! grouped tasks; slaves pull them, fetch their data, acknowledge them, and truncation follows.
//! Real controller and data node processes; the slave is played by `MasterClient`, the same
//! client a slave controller uses.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use xrepl_core::value::{Table, Vector};
use xrepl_proto::client::{Client, ClientError};
use xrepl_proto::master_client::MasterClient;
use xrepl_proto::rpc::ClientTls;
use xrepl_proto::task::{TaskData, TaskInfo};
use xrepl_tests::{column, ints, runtime, texts, Cluster, Spec};

/// 2023.01.01 as days since 1970.01.01.
const JAN1: i32 = 19_358;

fn master(cluster_cfg: &str, controller_cfg: &str) -> Cluster {
    Cluster::start(&Spec {
        replication_mode: Some("master"),
        cluster_cfg: cluster_cfg.into(),
        controller_cfg: controller_cfg.into(),
        ..Spec::default()
    })
}

/// `getMasterReplicationStatus()` rows.
fn tasks(c: &Cluster) -> Vec<Json> {
    let out = c.ok("rpc(getControllerAlias(), getMasterReplicationStatus)");
    out[0].as_array().expect("table").clone()
}

/// Ten rows of batch `b` over days `0..10` of January 2023 (both data nodes' chunks).
fn batch(b: i32) -> Table {
    Table::new(
        vec!["d".into(), "id".into(), "b".into()],
        vec![
            Vector::Date((0..10).map(|i| JAN1 + i).collect()),
            Vector::Int((0..10).map(|i| b * 10 + i).collect()),
            Vector::Int(vec![b; 10]),
        ],
    )
    .expect("table")
}

fn batch_script(b: i32) -> String {
    format!(
        "id = {lo}..{hi}\nd = 2023.01.01 + id % 10\nb = id * 0 + {b}\nloadTable(\"dfs://m\", \"t\").append!(table(d, id, b))",
        lo = b * 10,
        hi = b * 10 + 9
    )
}

const SETUP: &str = r#"
db = database("dfs://m", VALUE, 2023.01.01..2023.01.10)
setDatabaseForClusterReplication(db, true)
db.createPartitionedTable(table(1:0, `d`id`b, [DATE, INT, INT]), "t", `d)
"#;

/// The batch ids in an APPEND task's data.
fn batches_of(data: &TaskData) -> BTreeSet<i32> {
    match data {
        TaskData::Append { data, .. } => {
            let i = data.names.iter().position(|n| n == "b").expect("column b");
            match &data.columns[i] {
                Vector::Int(v) => v.iter().copied().collect(),
                other => panic!("b is {other:?}"),
            }
        }
        other => panic!("not an append: {other:?}"),
    }
}

async fn slave(c: &Cluster, name: &str) -> MasterClient {
    let m = MasterClient::connect(&c.controller.site(), "admin", "123456", name, &plain())
        .await
        .expect("slave login");
    m.register().await.expect("register");
    m
}

/// Every task after `after`, pulled in batches without waiting.
async fn pull_all(m: &MasterClient, after: u64) -> Vec<TaskInfo> {
    let mut out: Vec<TaskInfo> = Vec::new();
    loop {
        let from = out.last().map_or(after, |t| t.task_id);
        let (got, _, _) = m.pull(from, &[], 1000, 0, 0).await.expect("pull");
        if got.is_empty() {
            return out;
        }
        out.extend(got);
    }
}

#[test]
fn t10_every_operation_type_makes_exactly_one_task() {
    let c = master("", "");
    // A database that is not replicated makes no tasks.
    c.ok(r#"
x = database("dfs://plain", VALUE, 1..3)
x.createPartitionedTable(table(1:0, `k`v, [INT, INT]), "t", `k)
k = [1, 2]
v = [3, 4]
loadTable("dfs://plain", "t").append!(table(k, v))
"#);
    assert!(tasks(&c).is_empty(), "{:?}", tasks(&c));
    let script = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/all_operations.dos"
    ))
    .expect("script");
    let out = c.console_file_at(&c.host(), xrepl_tests::ADMIN_JSON, &script);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rows = tasks(&c);
    let want = [
        ("CREATE_DOMAIN", "dfs://r1", ""),
        ("CREATE_PARTITIONED_TABLE", "dfs://r1", "pt"),
        ("CREATE_TABLE", "dfs://r1", "dim"),
        ("APPEND", "dfs://r1", "pt"),
        ("UPSERT", "dfs://r1", "pt"),
        ("SQL_UPDATE", "dfs://r1", "pt"),
        ("SQL_DELETE", "dfs://r1", "pt"),
        ("ADD_VALUE_PARTITION", "dfs://r1", ""),
        ("ADD_COLUMN", "dfs://r1", "pt"),
        ("SET_COLUMN_COMMENT", "dfs://r1", "pt"),
        ("RENAME_COLUMN", "dfs://r1", "pt"),
        ("REPLACE_COLUMN", "dfs://r1", "pt"),
        ("DROP_COLUMN", "dfs://r1", "pt"),
        ("DROP_PARTITION", "dfs://r1", "pt"),
        ("TRUNCATE_TABLE", "dfs://r1", "dim"),
        ("RENAME_TABLE", "dfs://r1", "dim"),
        ("DROP_TABLE", "dfs://r1", "dim2"),
        ("CREATE_DOMAIN", "dfs://r2", ""),
        ("ADD_RANGE_PARTITION", "dfs://r2", ""),
        ("DROP_DB", "dfs://r2", ""),
    ];
    let got: Vec<(String, String, String)> = texts(&rows, "operationType")
        .into_iter()
        .zip(texts(&rows, "dbName"))
        .zip(texts(&rows, "tableName"))
        .map(|((o, d), t)| (o, d, t))
        .collect();
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(o, d, t)| (o.to_string(), d.to_string(), t.to_string()))
        .collect();
    assert_eq!(got, want);
    let types: BTreeSet<String> = texts(&rows, "operationType").into_iter().collect();
    assert_eq!(types.len(), 19, "all 19 operation types");
    assert_eq!(ints(&rows, "taskId"), (1..=20).collect::<Vec<i64>>());
    assert!(texts(&rows, "srcIP").iter().all(|ip| ip == "127.0.0.1"));
    let port = i64::from(c.datanodes[0].port);
    assert!(ints(&rows, "srcPort").iter().all(|p| *p == port));
    assert!(column(&rows, "isTruncated")
        .iter()
        .all(|t| **t == Json::Bool(false)));
    // The columns, in the spec's order.
    assert_eq!(
        c.header("rpc(getControllerAlias(), getMasterReplicationStatus)"),
        [
            "taskId",
            "tid",
            "groupId",
            "operationType",
            "submitTime",
            "dbName",
            "tableName",
            "srcIP",
            "srcPort",
            "isTruncated"
        ]
    );
    // limit caps the rows; the flag and set are visible.
    let out = c.ok("rpc(getControllerAlias(), getMasterReplicationStatus, 3)");
    assert_eq!(out[0].as_array().expect("table").len(), 3);
    let flags = c.ok("getDatabaseClusterReplicationStatus()");
    let flags = flags[0].as_array().expect("table");
    let r1 = flags
        .iter()
        .find(|r| r["dbName"] == "dfs://r1")
        .expect("dfs://r1 listed");
    assert_eq!(r1["enabled"], Json::Bool(true));
    assert_eq!(r1["executionSet"], 0);
    let plain = flags
        .iter()
        .find(|r| r["dbName"] == "dfs://plain")
        .expect("dfs://plain listed");
    assert_eq!(plain["enabled"], Json::Bool(false));

    // The task data says what to replay: the append's rows and the update's condition.
    runtime().block_on(async {
        let m = slave(&c, "127.0.0.1:1").await;
        let all = pull_all(&m, 0).await;
        assert_eq!(all.len(), 20);
        match m.fetch_task_data(&all[0]).await.expect("data") {
            TaskData::CreateDomain { db, .. } => assert_eq!(db, "dfs://r1"),
            other => panic!("{other:?}"),
        }
        match m.fetch_task_data(&all[3]).await.expect("data") {
            TaskData::Append { db, table, data } => {
                assert_eq!((db.as_str(), table.as_str()), ("dfs://r1", "pt"));
                assert_eq!(data.names, ["d", "k", "v"]);
                assert_eq!(data.columns[1], Vector::Int(vec![1, 2, 3]));
            }
            other => panic!("{other:?}"),
        }
        match m.fetch_task_data(&all[4]).await.expect("data") {
            TaskData::Upsert { keys, data, .. } => {
                assert_eq!(keys, ["k"]);
                assert_eq!(data.columns[2], Vector::Double(vec![10.0]));
            }
            other => panic!("{other:?}"),
        }
        match m.fetch_task_data(&all[5]).await.expect("data") {
            TaskData::SqlUpdate { set, filter, .. } => {
                assert_eq!(set.len(), 1);
                assert_eq!(set[0].0, "v");
                assert!(filter.is_some());
            }
            other => panic!("{other:?}"),
        }
        match m.fetch_task_data(&all[13]).await.expect("data") {
            TaskData::DropPartition { partitions, .. } => assert_eq!(partitions, [2]),
            other => panic!("{other:?}"),
        }
    });

    // Wrong-node and non-admin calls get the spec's messages.
    let out = c.admin_json("rpc(getControllerAlias(), getSlaveReplicationStatus)");
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains(
            "getSlaveReplicationStatus must be executed on the controller of the slave cluster."
        ),
        "{}",
        out.stderr
    );
    let out = c.admin_json("getMasterReplicationStatus()");
    assert!(
        out.stderr.contains(
            "getMasterReplicationStatus must be executed on the controller of the master cluster."
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn t20_task_ids_are_gap_free_and_in_commit_order_under_concurrent_writers() {
    let c = master("", "");
    c.ok(SETUP);
    let hosts = [c.datanodes[0].site(), c.datanodes[1].site()];
    const WRITERS: i32 = 4;
    const EACH: i32 = 25;
    let rt = runtime();
    rt.block_on(async {
        let writers = (0..WRITERS).map(|w| {
            let host = hosts[(w % 2) as usize].clone();
            tokio::spawn(async move {
                let client = Client::connect(&host, "admin", "123456").await?;
                for i in 0..EACH {
                    client.append("dfs://m", "t", batch(w * 1000 + i)).await?;
                }
                Ok::<(), ClientError>(())
            })
        });
        for w in futures_join(writers).await {
            w.expect("writer");
        }
    });
    let rows = tasks(&c);
    let n = 2 + (WRITERS * EACH) as i64;
    assert_eq!(
        ints(&rows, "taskId"),
        (1..=n).collect::<Vec<i64>>(),
        "gap-free"
    );
    let tids: BTreeSet<i64> = ints(&rows, "tid").into_iter().collect();
    assert_eq!(tids.len() as i64, n, "one task per transaction");
    let times = texts(&rows, "submitTime");
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "submit times follow task ids: {times:?}"
    );
    let mut per_port: BTreeMap<i64, usize> = BTreeMap::new();
    for p in ints(&rows[2..], "srcPort") {
        *per_port.entry(p).or_default() += 1;
    }
    assert_eq!(
        per_port,
        BTreeMap::from([
            (i64::from(c.datanodes[0].port), 50),
            (i64::from(c.datanodes[1].port), 50)
        ])
    );
    // Each writer's appends (one after another) have increasing task ids: commit order.
    rt.block_on(async {
        let m = slave(&c, "127.0.0.1:1").await;
        let all = pull_all(&m, 0).await;
        let mut order: BTreeMap<i32, Vec<(u64, i32)>> = BTreeMap::new();
        for t in &all[2..] {
            let data = m.fetch_task_data(t).await.expect("task data");
            let b = batches_of(&data);
            assert_eq!(b.len(), 1, "one batch per task");
            let b = *b.iter().next().expect("batch");
            order
                .entry(b / 1000)
                .or_default()
                .push((t.task_id, b % 1000));
        }
        assert_eq!(order.len(), WRITERS as usize);
        for (w, tasks) in order {
            let seq: Vec<i32> = tasks.iter().map(|(_, i)| *i).collect();
            assert_eq!(seq, (0..EACH).collect::<Vec<i32>>(), "writer {w}");
        }
    });
}

async fn futures_join<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("join"));
    }
    out
}

#[test]
fn t30_grouping_follows_the_conflict_rule() {
    let c = master("", "");
    c.ok(r#"
db = database("dfs://g", VALUE, 1..5)
setDatabaseForClusterReplication(db, true)
db.createPartitionedTable(table(1:0, `k`v, [INT, INT]), "a", `k)
db.createPartitionedTable(table(1:0, `k`v, [INT, INT]), "b", `k)
k = [1, 2]
v = [0, 0]
loadTable("dfs://g", "a").append!(table(k, v))
k = [3]
v = [0]
loadTable("dfs://g", "a").append!(table(k, v))
k = [1]
loadTable("dfs://g", "b").append!(table(k, v))
k = [2]
loadTable("dfs://g", "a").append!(table(k, v))
addColumn(loadTable("dfs://g", "a"), `w, INT)
addValuePartitions(db, 6)
loadTable("dfs://g", "b").append!(table(k, v))
"#);
    let rows = tasks(&c);
    assert_eq!(
        texts(&rows, "operationType"),
        [
            "CREATE_DOMAIN",
            "CREATE_PARTITIONED_TABLE",
            "CREATE_PARTITIONED_TABLE",
            "APPEND",
            "APPEND",
            "APPEND",
            "APPEND",
            "ADD_COLUMN",
            "ADD_VALUE_PARTITION",
            "APPEND"
        ]
    );
    // A database DDL alone; two table DDLs together; appends to different chunks together (even
    // of another table); the same chunk again, a DDL on a written table, and anything after a
    // database DDL each open a group.
    assert_eq!(ints(&rows, "groupId"), [1, 2, 2, 3, 3, 3, 4, 5, 6, 7]);
}

/// Batches whose rows are all in the table; panics on a batch present in part.
fn committed_batches(c: &Cluster) -> BTreeSet<i32> {
    let r = c.ok("select count(*) from loadTable(\"dfs://m\", \"t\") group by b");
    r[0].as_array()
        .expect("table")
        .iter()
        .map(|row| {
            let b = row["b"].as_i64().expect("b") as i32;
            let n = row["count"].as_i64().expect("count");
            assert_eq!(n, 10, "batch {b} is in the table in part");
            b
        })
        .collect()
}

#[test]
fn t40_crashes_leave_committed_transactions_and_tasks_one_to_one() {
    let mut c = master(
        "clusterReplicationSyncPersistence=true\n",
        "transactionTimeoutMs=1500\n",
    );
    c.ok(SETUP);
    let dn1 = c.datanodes[0].site();
    let dn2 = c.datanodes[1].site();
    let mut acknowledged: BTreeSet<i32> = BTreeSet::new();
    let out = c.console_at(&dn1, xrepl_tests::ADMIN, &batch_script(0));
    assert_eq!(out.code, 0, "{}", out.stderr);
    acknowledged.insert(0);
    // The coordinator dies after the prepares (aborted later: no task) and after the decision
    // (committed: a task whose data survives because it was flushed before the decision).
    for (b, point) in [
        (1, "coordinator_after_prepare"),
        (2, "coordinator_after_decide"),
    ] {
        c.kill("dnode1");
        c.spawn_datanode_env("dnode1", &[("XREPL_TEST_CRASH_AT", point)]);
        c.wait_all_up();
        let out = c.console_at(&dn1, xrepl_tests::ADMIN, &batch_script(b));
        assert_ne!(out.code, 0, "the coordinator died at {point}");
        assert_eq!(
            c.wait_exit("dnode1", Duration::from_secs(10)),
            86,
            "{point}: {}",
            out.stderr
        );
        c.spawn_datanode("dnode1");
        c.wait_all_up();
        // The participants settle the transaction (after the 1.5 s timeout for the first).
        std::thread::sleep(Duration::from_millis(3_000));
    }
    // The controller is SIGKILLed twice during a stream of appends through dnode2.
    let stream = std::thread::spawn({
        let dn2 = dn2.clone();
        let bin = xrepl_tests::bin("xrepl");
        move || {
            let mut ok = Vec::new();
            for b in 3..40 {
                let out = std::process::Command::new(&bin)
                    .args(["--host", &dn2])
                    .args(xrepl_tests::ADMIN)
                    .arg("-c")
                    .arg(batch_script(b))
                    .output()
                    .expect("xrepl");
                if out.status.success() {
                    ok.push(b);
                }
                std::thread::sleep(Duration::from_millis(30));
            }
            ok
        }
    });
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(400));
        c.kill("controller1");
        std::thread::sleep(Duration::from_millis(200));
        c.spawn_controller();
    }
    acknowledged.extend(stream.join().expect("stream"));
    c.wait_all_up();
    // Let every undecided transaction time out and every participant settle.
    std::thread::sleep(Duration::from_millis(3_500));
    let committed = committed_batches(&c);
    assert!(
        acknowledged.is_subset(&committed),
        "acknowledged {acknowledged:?} committed {committed:?}"
    );
    assert!(!committed.contains(&1), "aborted at the crash");
    assert!(committed.contains(&2), "decided before the crash");
    let rows = tasks(&c);
    let n = rows.len() as i64;
    assert_eq!(ints(&rows, "taskId"), (1..=n).collect::<Vec<i64>>());
    runtime().block_on(async {
        let m = slave(&c, "127.0.0.1:1").await;
        let all = pull_all(&m, 0).await;
        let mut in_tasks: Vec<i32> = Vec::new();
        for t in &all[2..] {
            let data = m
                .fetch_task_data(t)
                .await
                .unwrap_or_else(|e| panic!("task {} has no data: {e}", t.task_id));
            in_tasks.extend(batches_of(&data));
        }
        let unique: BTreeSet<i32> = in_tasks.iter().copied().collect();
        assert_eq!(
            unique.len(),
            in_tasks.len(),
            "a batch in two tasks: {in_tasks:?}"
        );
        assert_eq!(unique, committed, "tasks and committed transactions differ");
    });
}

#[test]
fn t50_slaves_pull_acknowledge_and_truncation_waits_for_the_slowest() {
    let c = master("", "clusterReplicationSlaveNum=2\n");
    c.ok(SETUP);
    for b in 0..5 {
        c.ok(&batch_script(b));
    }
    c.ok(r#"createUser("bob", "123456", false)"#);
    runtime().block_on(async {
        let master = c.controller.site();
        // Wrong passwords and non-administrators are refused.
        let err = MasterClient::connect(&master, "admin", "wrong", "127.0.0.1:7", &plain())
            .await
            .err()
            .expect("refused");
        assert!(err.to_string().contains("incorrect"), "{err}");
        let err = MasterClient::connect(&master, "bob", "123456", "127.0.0.1:7", &plain())
            .await
            .err()
            .expect("refused");
        assert!(err.to_string().contains("CLUSTER_REPLICATION"), "{err}");

        let a = slave(&c, "127.0.0.1:1").await;
        let b = slave(&c, "127.0.0.1:2").await;
        let third = MasterClient::connect(&master, "admin", "123456", "127.0.0.1:3", &plain())
            .await
            .expect("login");
        let err = third
            .register()
            .await
            .expect_err("a third slave is refused");
        assert!(
            err.to_string().contains("at most 2 slave clusters"),
            "{err}"
        );
        // A peer without a ticket the master signed cannot fetch task data.
        let all = pull_all(&a, 0).await;
        assert_eq!(all.len(), 7);
        let mut forged = a.ticket().expect("a ticket came with the pull");
        forged.upto += 1;
        let err = xrepl_proto::master_client::fetch_task_bytes(&forged, &all[2], &plain())
            .await
            .expect_err("refused");
        assert!(
            err.to_string().contains("not signed by this master"),
            "{err}"
        );
        // The ticket names the master's data nodes, and a slave fetches from nowhere else.
        let sources = a.ticket().expect("ticket").sources;
        for n in &c.datanodes {
            assert!(sources.contains(&n.site()), "{sources:?}");
        }
        let mut elsewhere = all[2].clone();
        elsewhere.src_port = 1;
        let err = a
            .fetch_task_bytes(&elsewhere)
            .await
            .expect_err("not fetched");
        assert!(
            err.to_string()
                .contains("which the master does not list as one of its data nodes"),
            "{err}"
        );

        // Slave a finishes everything, b the first four: tasks 1..=4 are truncated.
        let ids: Vec<u64> = all.iter().map(|t| t.task_id).collect();
        a.pull(7, &ids, 10, 0, 0).await.expect("ack");
        b.pull(7, &ids[..4], 10, 0, 0).await.expect("ack");
        let rows = tasks(&c);
        let truncated: Vec<bool> = column(&rows, "isTruncated")
            .iter()
            .map(|v| v.as_bool().expect("bool"))
            .collect();
        assert_eq!(truncated, [true, true, true, true, false, false, false]);
        // The truncated task data is deleted (the data node sweeps every second).
        let gone = &all[3];
        let start = Instant::now();
        loop {
            match a.fetch_task_bytes(gone).await {
                Err(e) => {
                    assert!(e.to_string().contains("Missing taskData"), "{e}");
                    break;
                }
                Ok(_) => assert!(start.elapsed() < Duration::from_secs(10), "never deleted"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        a.fetch_task_data(&all[4]).await.expect("not truncated yet");
        // b sees the rest. (A pull from below the truncated tasks would seed b with a re-sync
        // of every replicated database: see t120_bootstrap.) Asked without room, no data comes
        // along.
        let (rest, none, _) = b.pull(4, &[], 100, 0, 0).await.expect("pull");
        assert_eq!(
            rest.iter().map(|t| t.task_id).collect::<Vec<_>>(),
            [5, 6, 7]
        );
        assert!(none.is_empty(), "{none:?}");
        // A slave that does not pull (it is stopped) asks where the master is.
        let at = b.position(4).await.expect("position");
        assert_eq!((at.last_task, at.next_submit_ns), (7, rest[0].submit_ns));
        // With room, small tasks come with their data: the same bytes the data node serves.
        let (again, data, _) = b.pull(4, &[], 100, 0, 1 << 20).await.expect("pull");
        assert_eq!(again, rest);
        assert_eq!(
            data.iter().map(|d| d.task_id).collect::<Vec<_>>(),
            [5, 6, 7]
        );
        for (t, d) in rest.iter().zip(&data) {
            let served = b.fetch_task_bytes(t).await.expect("fetch");
            assert_eq!(d.bytes.as_slice(), served.as_slice(), "task {}", t.task_id);
        }
        // Room for one task's data only: the first comes with it, the others are fetched.
        let (_, one, _) = b
            .pull(4, &[], 100, 0, data[0].bytes.len() as u64)
            .await
            .expect("pull");
        assert_eq!(one.iter().map(|d| d.task_id).collect::<Vec<_>>(), [5]);

        // A pull with nothing to give waits, and answers as soon as a task is queued.
        let started = Instant::now();
        let waiting = tokio::spawn(async move {
            let r = b.pull(7, &[5, 6, 7], 100, 8_000, 1 << 20).await;
            (r, b)
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let client = Client::connect(&c.host(), "admin", "123456")
            .await
            .expect("client");
        client
            .append("dfs://m", "t", batch(99))
            .await
            .expect("append");
        let (r, _b) = waiting.await.expect("join");
        let (got, data, position) = r.expect("pull");
        assert_eq!(got.iter().map(|t| t.task_id).collect::<Vec<_>>(), [8]);
        assert_eq!(
            (position.last_task, position.next_submit_ns),
            (8, 0),
            "the master's newest task, and none after those sent"
        );
        assert_eq!(
            data.iter().map(|d| d.task_id).collect::<Vec<_>>(),
            [8],
            "a task the long poll wakes for comes with its data"
        );
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "the long poll answered late: {:?}",
            started.elapsed()
        );
    });
    let info = c.ok("rpc(getControllerAlias(), getRecentSlaveReplicationInfo)");
    let info = info[0].as_array().expect("table");
    assert_eq!(info.len(), 2);
    assert_eq!(
        c.header("rpc(getControllerAlias(), getRecentSlaveReplicationInfo)"),
        [
            "connectedController",
            "allControllersInRaft",
            "lastFinishedTaskId",
            "lastPullTime"
        ]
    );
    assert_eq!(info[0]["connectedController"], "127.0.0.1:1");
    assert_eq!(info[0]["lastFinishedTaskId"], 7);
    assert_eq!(info[1]["lastFinishedTaskId"], 7);
    // Refusals are logged on the master.
    let log = c.read_log("controller1");
    assert!(log.contains("slave login refused"), "{log}");
    assert!(log.contains("slave registration refused"), "{log}");
}

#[test]
fn t60_commits_while_disabled_make_no_task_and_the_state_survives_a_restart() {
    let mut c = master("", "");
    c.ok(SETUP);
    c.ok(&batch_script(0));
    assert_eq!(tasks(&c).len(), 3);
    c.ok("rpc(getControllerAlias(), stopClusterReplication)");
    c.ok(&batch_script(1));
    assert_eq!(tasks(&c).len(), 3, "no task while DISABLED");
    c.kill("controller1");
    c.spawn_controller();
    c.wait_all_up();
    c.ok(&batch_script(2));
    assert_eq!(tasks(&c).len(), 3, "still DISABLED after a restart");
    c.ok("rpc(getControllerAlias(), startClusterReplication)");
    c.ok(&batch_script(3));
    let rows = tasks(&c);
    assert_eq!(
        ints(&rows, "taskId"),
        [1, 2, 3, 4],
        "numbering goes on without a gap"
    );
    assert_eq!(
        c.number("select count(*) from loadTable(\"dfs://m\", \"t\")"),
        40
    );
    // Turning the flag off stops tasks for that database.
    c.ok("setDatabaseForClusterReplication(database(\"dfs://m\"), false)");
    c.ok(&batch_script(4));
    assert_eq!(tasks(&c).len(), 4);
    let flag = c.ok("schema(database(\"dfs://m\")).clusterReplicationEnabled");
    assert_eq!(flag[0], Json::Bool(false));
}

#[test]
fn t70_a_slave_that_never_reports_is_dropped_and_truncation_moves_on() {
    let c = master("", "clusterReplicationSlaveNum=2\n");
    c.ok(SETUP);
    for b in 0..3 {
        c.ok(&batch_script(b));
    }
    c.ok(r#"createUser("bob", "123456", false)"#);
    let truncated = |c: &Cluster| -> Vec<bool> {
        column(&tasks(c), "isTruncated")
            .iter()
            .map(|v| v.as_bool().expect("bool"))
            .collect()
    };
    runtime().block_on(async {
        let a = slave(&c, "127.0.0.1:1").await;
        let stuck = slave(&c, "127.0.0.1:2").await;
        let all = pull_all(&a, 0).await;
        let ids: Vec<u64> = all.iter().map(|t| t.task_id).collect();
        let last = *ids.last().expect("tasks");
        a.pull(last, &ids, 10, 0, 0).await.expect("ack");
        stuck.pull(last, &ids[..1], 10, 0, 0).await.expect("ack");
        assert_eq!(
            truncated(&c).iter().filter(|t| **t).count(),
            1,
            "held back by the stuck slave"
        );

        let drop = r#"rpc(getControllerAlias(), dropClusterReplicationSlave, "127.0.0.1:2")"#;
        let out = c.console_at(&c.host(), &["--user", "bob", "--password", "123456"], drop);
        assert_ne!(out.code, 0);
        assert!(out.stderr.contains("needs administrator rights"), "{}", out.stderr);
        let out = c.admin_json(r#"rpc(getControllerAlias(), dropClusterReplicationSlave, 2)"#);
        assert!(out.stderr.contains("must be a string"), "{}", out.stderr);
        assert!(truncated(&c).iter().filter(|t| **t).count() == 1, "nothing changed");

        c.ok(drop);
        assert!(truncated(&c).iter().all(|t| *t), "{:?}", truncated(&c));
        let info = c.rows("rpc(getControllerAlias(), getRecentSlaveReplicationInfo)");
        assert_eq!(texts(&info, "connectedController"), ["127.0.0.1:1"]);
        let e = stuck
            .pull(last, &[], 10, 0, 0)
            .await
            .expect_err("not registered any more");
        assert!(e.to_string().contains("is not registered with this master"), "{e}");
        let out = c.admin_json(drop);
        assert!(
            out.stderr.contains("slave cluster 127.0.0.1:2 is not registered with this master; registered: 127.0.0.1:1"),
            "{}",
            out.stderr
        );
    });
    let log = c.read_log("controller1");
    assert!(log.contains("slave cluster dropped"), "{log}");
}

fn plain() -> ClientTls {
    ClientTls::plain()
}
