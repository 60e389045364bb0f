//! Crash safety of the write path's files and of one-node transactions: block files written but
//! never named by a prepare record, task data files written but never named by a task record,
//! and a transaction whose chunks all sit on its coordinator killed before and after its
//! flush. After restarts, every acknowledged write is there in full, nothing else is there in
//! part, and no file that no record names is left on disk. A task data file torn or lost
//! after its record was written (damage, not a crash: the file is made durable first) fails
//! its task on the slave with the reason, and never replays other data.

use std::path::{Path, PathBuf};
use std::time::Duration;

use xrepl_tests::{ints, texts, wait_for, Cluster, Pair, Spec};

/// Two days; every test writes one of them.
const SETUP: &str = r#"
db = database("dfs://f", VALUE, 2023.01.01..2023.01.02)
db.createPartitionedTable(table(1:0, `d`id`v, [DATE, INT, DOUBLE]), "t", `d)
"#;

const REPLICATED_SETUP: &str = r#"
db = database("dfs://f", VALUE, 2023.01.01..2023.01.02)
setDatabaseForClusterReplication(db, true)
db.createPartitionedTable(table(1:0, `d`id`v, [DATE, INT, DOUBLE]), "t", `d)
"#;

/// `n` rows on 2023.01.01 (2,000 rows make a block of about 32 KB: a file, not a record).
fn append(first: i32, n: i32) -> String {
    format!(
        "id = {first}..{last}\nd = 2023.01.01 + id * 0\nv = id * 1.5\nloadTable(\"dfs://f\", \"t\").append!(table(d, id, v))",
        last = first + n - 1
    )
}

fn rows(c: &Cluster) -> i64 {
    c.number("select count(*) from loadTable(\"dfs://f\", \"t\")")
}

/// The data node that holds the chunk of 2023.01.01 (placed by a one-row append).
fn holder(c: &Cluster) -> String {
    c.ok(&append(0, 1));
    let chunks = c.ok("schema(loadTable(\"dfs://f\", \"t\")).chunks");
    chunks[0].as_array().expect("table")[0]["node"]
        .as_str()
        .expect("node")
        .to_string()
}

fn home(c: &Cluster, alias: &str) -> PathBuf {
    c.cfg_dir().join("data").join(alias)
}

/// Every file under `dir` (recursively).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn restart_with_crash(c: &mut Cluster, alias: &str, point: &str) {
    c.kill(alias);
    c.spawn_datanode_env(alias, &[("XREPL_TEST_CRASH_AT", point)]);
    c.wait_all_up();
}

fn restart(c: &mut Cluster, alias: &str) {
    c.spawn_datanode(alias);
    c.wait_all_up();
}

/// Appends, retrying while a prepared transaction left by the crash settles.
fn append_retrying(c: &Cluster, first: i32, n: i32) {
    wait_for("the append to go through", Duration::from_secs(30), || {
        (c.admin_json(&append(first, n)).code == 0).then_some(())
    });
}

#[test]
fn t10_block_files_written_without_their_prepare_record_are_removed_and_nothing_is_visible() {
    let mut c = Cluster::start(&Spec::default());
    c.ok(SETUP);
    let node = holder(&c);
    let blocks = home(&c, &node).join("storage.blocks");
    assert!(
        files_under(&blocks).is_empty(),
        "one row is kept in its record"
    );
    restart_with_crash(&mut c, &node, "storage_after_block_files");
    let out = c.admin_json(&append(1, 2_000));
    assert_ne!(out.code, 0, "no acknowledgement: {out:?}");
    assert_eq!(c.wait_exit(&node, Duration::from_secs(10)), 86);
    assert!(
        !files_under(&blocks).is_empty(),
        "the crash came after the block files were written"
    );
    restart(&mut c, &node);
    assert_eq!(
        files_under(&blocks),
        Vec::<PathBuf>::new(),
        "no record names them: removed at start"
    );
    assert_eq!(rows(&c), 1, "nothing of the dead prepare is visible");
    append_retrying(&c, 1, 2_000);
    assert_eq!(rows(&c), 2_001);
    assert_eq!(
        files_under(&blocks).len(),
        1,
        "the block of 2,001 rows is one file"
    );
}

#[test]
fn t20_a_task_file_written_without_its_record_is_removed_and_makes_no_task() {
    let mut c = Cluster::start(&Spec {
        replication_mode: Some("master"),
        cluster_cfg: "clusterReplicationSyncPersistence=true\n".into(),
        controller_cfg: "transactionTimeoutMs=1500\n".into(),
        ..Spec::default()
    });
    c.ok(REPLICATED_SETUP);
    holder(&c);
    let tasks_before =
        c.number("select count(*) from rpc(getControllerAlias(), getMasterReplicationStatus)");
    // The session's node coordinates and keeps the task data.
    let coordinator = "dnode1";
    let work = home(&c, coordinator).join("clusterReplication");
    restart_with_crash(&mut c, coordinator, "taskstore_after_file");
    let out = c.admin_json(&append(1, 2_000));
    assert_ne!(out.code, 0, "no acknowledgement: {out:?}");
    assert_eq!(c.wait_exit(coordinator, Duration::from_secs(10)), 86);
    let task_files = |dir: &Path| -> Vec<PathBuf> {
        files_under(dir)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "task"))
            .collect()
    };
    assert_eq!(
        task_files(&work).len(),
        1,
        "the file was written before the crash"
    );
    restart(&mut c, coordinator);
    assert!(
        task_files(&work).is_empty(),
        "no record names it: removed at start"
    );
    // Nobody decided the transaction: it is aborted, and makes no task.
    append_retrying(&c, 1, 2_000);
    assert_eq!(rows(&c), 2_001);
    let tasks_after =
        c.number("select count(*) from rpc(getControllerAlias(), getMasterReplicationStatus)");
    assert_eq!(
        tasks_after,
        tasks_before + 1,
        "one task: the append that went through"
    );
    assert_eq!(
        task_files(&work).len(),
        1,
        "its data is a file, named by its record"
    );
}

/// A transaction whose chunks all sit on its coordinator: prepared and flushed on that one
/// node, decided by the controller, committed without a second flush. Killed after its flush
/// and before the decision, it is rolled back; killed after the decision, it is committed.
#[test]
fn t30_a_one_node_transaction_killed_before_and_after_its_decision() {
    let mut c = Cluster::start(&Spec {
        controller_cfg: "transactionTimeoutMs=1500\n".into(),
        ..Spec::default()
    });
    c.ok(SETUP);
    let node = holder(&c);
    // The session runs on the holder, so the transaction never leaves it.
    let on_holder = |c: &Cluster, script: &str| {
        let host = c
            .datanodes
            .iter()
            .find(|n| n.alias == node)
            .expect("holder")
            .site();
        c.console_at(&host, &["--user", "admin", "--password", "123456"], script)
    };

    restart_with_crash(&mut c, &node, "participant_after_prepare");
    let out = on_holder(&c, &append(1, 10));
    assert_ne!(out.code, 0, "no acknowledgement: {out:?}");
    assert_eq!(c.wait_exit(&node, Duration::from_secs(10)), 86);
    restart(&mut c, &node);
    // Its prepared record comes back; the controller aborts the undecided transaction.
    wait_for(
        "the prepare to be rolled back",
        Duration::from_secs(30),
        || (on_holder(&c, &append(100, 1)).code == 0).then_some(()),
    );
    assert_eq!(
        rows(&c),
        2,
        "the one-row write and the retry, not the dead prepare"
    );

    restart_with_crash(&mut c, &node, "coordinator_after_decide");
    let out = on_holder(&c, &append(200, 10));
    assert_ne!(out.code, 0, "the client heard nothing: {out:?}");
    assert_eq!(c.wait_exit(&node, Duration::from_secs(10)), 86);
    restart(&mut c, &node);
    // The decision was durable: the node commits its prepared record at start.
    wait_for(
        "the decided write to appear",
        Duration::from_secs(30),
        || (rows(&c) == 12).then_some(()),
    );
}

/// The `<tid>.task` files under `dir`, by tid.
fn task_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<(u64, PathBuf)> = files_under(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "task"))
        .filter_map(|p| {
            let tid = p.file_stem()?.to_str()?.parse().ok()?;
            Some((tid, p))
        })
        .collect();
    files.sort();
    files.into_iter().map(|(_, p)| p).collect()
}

#[test]
fn t40_a_torn_or_missing_task_file_fails_its_task_with_the_reason_and_can_be_skipped() {
    let mut p = Pair::start(
        Spec {
            cluster_cfg: "clusterReplicationSyncPersistence=true\n".into(),
            ..Spec::default()
        },
        Spec {
            controller_cfg: "clusterReplicationRetryIntervalMs=10\n".into(),
            ..Spec::default()
        },
    );
    // The slave executes nothing until the damage is done.
    p.slave
        .ok("rpc(getControllerAlias(), stopClusterReplication)");
    p.master.ok(REPLICATED_SETUP);
    // 6,000 rows (96 KB) each: above the 64 KiB a task's data may travel with the task, so
    // the slave must fetch them from the damaged files (a smaller task's copy in the
    // master controller's memory would replicate despite the damage).
    p.master.ok(&append(1, 6_000));
    p.master.ok(&append(6_001, 6_000));
    let last = ints(&p.master_tasks(), "taskId")
        .into_iter()
        .max()
        .unwrap_or(0);
    // The session's node coordinated both and keeps their data, each in a file.
    let coordinator = "dnode1";
    let work = home(&p.master, coordinator).join("clusterReplication");
    let files = task_files(&work);
    assert_eq!(files.len(), 2, "{files:?}");
    // The first torn to half its length, the second lost; then the node crashes and starts
    // again, its records still naming both.
    let len = std::fs::metadata(&files[0]).expect("task file").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&files[0])
        .and_then(|f| f.set_len(len / 2))
        .expect("tear the file");
    std::fs::remove_file(&files[1]).expect("lose the file");
    p.master.kill(coordinator);
    restart(&mut p.master, coordinator);

    let s = &p.slave;
    let failed = |task: i64| -> String {
        s.ok("rpc(getControllerAlias(), startClusterReplication)");
        wait_for("the task to fail", Duration::from_secs(60), || {
            let metrics = s.rows("rpc(getControllerAlias(), getClusterReplicationMetrics)");
            (texts(&metrics, "status") == ["STOPPED"]).then_some(())
        });
        let rows = p.slave_tasks();
        let row = rows
            .iter()
            .find(|r| r["taskId"] == task)
            .unwrap_or_else(|| panic!("task {task} listed: {rows:?}"));
        assert_eq!(row["state"], "FAILED", "{row}");
        for r in rows.iter().filter(|r| r["taskId"].as_i64() < Some(task)) {
            assert_eq!(r["state"], "FINISHED", "{r}");
        }
        let details = row["details"].as_str().unwrap_or_default().to_string();
        s.ok(&format!(
            "rpc(getControllerAlias(), skipClusterReplicationTask, {task}..{task})"
        ));
        details
    };
    let torn = failed(last - 1);
    assert!(
        torn.contains(&format!("the data of task {}", last - 1)) && torn.contains("is damaged"),
        "{torn}"
    );
    let lost = failed(last);
    assert!(
        lost.contains(&format!("the data of task {last}")) && lost.contains("is missing"),
        "{lost}"
    );
    // The master kept serving; what comes after the skipped tasks replicates.
    s.ok("rpc(getControllerAlias(), startClusterReplication)");
    p.master.ok(&append(12_001, 10));
    p.wait_caught_up(Duration::from_secs(60));
    assert_eq!(rows(&p.master), 12_010);
    assert_eq!(
        rows(&p.slave),
        10,
        "the two skipped appends are not there, nothing of them in part"
    );
}
