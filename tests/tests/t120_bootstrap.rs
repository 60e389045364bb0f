//! Bootstrap: a database that already holds tables and rows when its replication flag turns
//! on reaches the slave whole (the tables, then every chunk as a SNAPSHOT_CHUNK task), while
//! writers go on; the slave ends equal to the master in every partition.

use std::time::Duration;

use serde_json::Value as Json;
use xrepl_tests::{ints, texts, Pair, Spec};

const CATCH_UP: Duration = Duration::from_secs(60);

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

const BOOT_STATUS: &str = "rpc(getControllerAlias(), getClusterReplicationBootstrapStatus)";

/// Waits until every bootstrap is DONE on the slave (sent by the master, applied here), then
/// until the slave has finished every task; returns the slave's bootstrap rows.
fn wait_bootstrapped(p: &Pair) -> Vec<Json> {
    let start = std::time::Instant::now();
    let rows = loop {
        let out = p.slave.admin_json(BOOT_STATUS);
        let rows = out
            .json()
            .last()
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default();
        if !rows.is_empty() && texts(&rows, "state").iter().all(|s| s == "DONE") {
            break rows;
        }
        if start.elapsed() > CATCH_UP {
            let logs: Vec<String> = ["dnode1", "dnode2", "controller1"]
                .iter()
                .map(|a| {
                    let log = p.master.read_log(a);
                    let lines: Vec<&str> =
                        log.lines().filter(|l| !l.contains("login user=")).collect();
                    format!(
                        "master {a}:\n{}",
                        lines[lines.len().saturating_sub(25)..].join("\n")
                    )
                })
                .collect();
            panic!(
                "the bootstrap was not applied: slave {rows:?}\nslave tasks {:?}\nmaster {:?}\n{}",
                p.slave.admin_json(BOOT_STATUS).stdout + &p.slave.admin_json(BOOT_STATUS).stderr,
                p.master.rows(BOOT_STATUS),
                logs.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    p.wait_caught_up(CATCH_UP);
    rows
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
    let boot = wait_bootstrapped(&p);
    assert_eq!(ints(&boot, "chunks"), [11]);
    assert_eq!(ints(&boot, "chunksSent"), [11]);
    assert_eq!(ints(&boot, "chunksApplied"), [11]);
    assert_eq!(ints(&boot, "bytesApplied"), ints(&boot, "bytesSent"));
    // The master's view: every row it held when the flag turned on was sent.
    let m = p.master.rows(BOOT_STATUS);
    assert_eq!(texts(&m, "state"), ["DONE"]);
    assert!(ints(&m, "rowsSent")[0] >= 200_003, "{m:?}");

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

fn restart(c: &mut xrepl_tests::Cluster, alias: &str, env: &[(&str, &str)]) {
    c.kill(alias);
    std::thread::sleep(Duration::from_millis(300));
    if alias.starts_with("controller") {
        c.spawn_controller();
    } else {
        c.spawn_datanode_env(alias, env);
    }
}

#[test]
fn t20_a_bootstrap_survives_sigkill_of_every_process_and_sends_each_chunk_once() {
    // A snapshot whose data node died holds its chunk's lock until the controller aborts it.
    let mut p = Pair::start(
        Spec {
            controller_cfg: "transactionTimeoutMs=3000\n".into(),
            ..Spec::default()
        },
        Spec::default(),
    );
    p.master.ok(&setup(100_000));
    // Each chunk snapshot holds its chunk 400 ms after reading it: the bootstrap of 11 chunks
    // on two data nodes takes seconds, and the kills land in it.
    let slow = [("XREPL_TEST_PAUSE_AT", "snapshot_after_read:400")];
    for n in ["dnode1", "dnode2"] {
        restart(&mut p.master, n, &slow);
    }
    p.master.wait_all_up();
    p.master
        .ok("setDatabaseForClusterReplication(database(\"dfs://boot\"), true)");
    // The slave's metrics say it is bootstrapping, with its progress.
    const METRICS: &str = "rpc(getControllerAlias(), getClusterReplicationMetrics)";
    let m = xrepl_tests::wait_for("the slave to say BOOTSTRAPPING", CATCH_UP, || {
        let m = p.slave.rows(METRICS);
        (texts(&m, "bootstrap") == ["BOOTSTRAPPING"]).then_some(m)
    });
    assert_eq!(ints(&m, "bootstrapChunks"), [11], "{m:?}");
    assert!(ints(&m, "bootstrapChunksApplied")[0] < 11, "{m:?}");
    restart(&mut p.master, "dnode1", &slow);
    restart(&mut p.slave, "controller1", &[]);
    std::thread::sleep(Duration::from_millis(500));
    restart(&mut p.master, "controller1", &[]);
    p.master.wait_all_up();
    restart(&mut p.slave, "dnode2", &[]);
    restart(&mut p.master, "dnode2", &slow);
    // Writes go on (a partition whose snapshot was cut by a kill stays locked until the
    // controller aborts that transaction: a write meeting it is run again).
    let mut tries = 0;
    loop {
        let out = p
            .master
            .console_at(&p.master.host(), xrepl_tests::ADMIN_JSON, &writes(10));
        if out.code == 0 {
            break;
        }
        tries += 1;
        // A write that met a partition locked by a cut snapshot, or whose own transaction the
        // kills cut (the controller aborts it), is run again: only the two clusters are
        // compared.
        let cut = ["locked", "no decision", "not known yet", "unreachable"]
            .iter()
            .any(|m| out.stderr.contains(m));
        assert!(tries < 5 && cut, "writes failed: {}", out.stderr);
    }
    p.slave.wait_all_up();
    wait_bootstrapped(&p);
    let m = p.slave.rows(METRICS);
    assert_eq!(texts(&m, "bootstrap"), [""], "{m:?}");

    assert_equal(&p, "dfs://boot");
    let tasks = p.master_tasks();
    let chunks: Vec<i64> = tasks
        .iter()
        .filter(|t| t["operationType"] == "SNAPSHOT_CHUNK")
        .filter_map(|t| t["taskId"].as_i64())
        .collect();
    assert_eq!(chunks.len(), 11, "each chunk is sent once: {tasks:?}");
    // On the slave every task was finished once, by a replay.
    let slave = p.slave_tasks();
    let ids = ints(&slave, "taskId");
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(ids, unique);
    assert!(texts(&slave, "state").iter().all(|s| s == "FINISHED"));
}

#[test]
fn t30_a_slave_replays_only_the_databases_of_its_scope() {
    let p = Pair::start(
        Spec::default(),
        Spec {
            controller_cfg: "slaveReplicationDBScope=dfs://boot, dfs://absent\n".into(),
            ..Spec::default()
        },
    );
    p.master.ok(&setup(1_000));
    p.master.ok(r#"
setDatabaseForClusterReplication(database("dfs://boot"), true)
other = database("dfs://other", VALUE, 1..3)
other.createPartitionedTable(table(1:0, `id`v, [INT, INT]), "t", `id)
setDatabaseForClusterReplication(other, true)
id = [1, 2, 3]
v = [4, 5, 6]
loadTable("dfs://other", "t").append!(table(id, v))
"#);
    wait_bootstrapped(&p);
    assert_equal(&p, "dfs://boot");
    let slave = p.slave_tasks();
    let outside: Vec<&Json> = slave
        .iter()
        .filter(|t| t["dbName"] == "dfs://other")
        .collect();
    // Its CREATE_DOMAIN (with the empty table) and the append.
    assert_eq!(outside.len(), 2, "{slave:?}");
    assert!(outside.iter().all(|t| t["state"] == "FINISHED"
        && t["details"]
            .as_str()
            .is_some_and(|d| d.contains("slaveReplicationDBScope"))));
    let out = p.slave.admin_json("existsDatabase(\"dfs://other\")");
    assert!(
        out.stdout.contains("false"),
        "a database outside the scope is never created: {}{}",
        out.stdout,
        out.stderr
    );
    // The master truncates them: the slave reported them finished.
    xrepl_tests::wait_for("the master to truncate every task", CATCH_UP, || {
        let rows = p.master_tasks();
        rows.iter()
            .all(|r| r["isTruncated"] == Json::Bool(true))
            .then_some(())
    });
}

/// Waits until the slave shows re-sync `job` DONE; its row.
fn wait_job_done(p: &Pair, job: i64) -> Json {
    xrepl_tests::wait_for("the re-sync to be applied", CATCH_UP, || {
        let out = p.slave.admin_json(BOOT_STATUS);
        let rows = out.json().last().and_then(|v| v.as_array()).cloned()?;
        rows.into_iter()
            .find(|r| r["jobId"].as_i64() == Some(job) && r["state"] == "DONE")
    })
}

fn job_of(message: &str) -> i64 {
    message
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no job id in {message:?}"))
}

#[test]
fn t40_a_skip_leaves_drift_that_a_table_resync_repairs_and_a_database_resync_too() {
    // A replay cut by the restarts below would hold its partitions until this timeout.
    let mut p = Pair::start(
        Spec::default(),
        Spec {
            controller_cfg: "transactionTimeoutMs=3000\n".into(),
            ..Spec::default()
        },
    );
    p.master.ok(&setup(20_000));
    p.master
        .ok("setDatabaseForClusterReplication(database(\"dfs://boot\"), true)");
    wait_bootstrapped(&p);
    assert_equal(&p, "dfs://boot");

    // A task the slave skips: its rows never arrive, and the slave differs from the master.
    // The slave's replays wait 4 s before their commit, so the task is received and not yet
    // applied when it is skipped (a stopped slave does not pull).
    let hold = [("XREPL_TEST_PAUSE_AT", "replay_before_decide:4000")];
    for n in ["dnode1", "dnode2"] {
        restart(&mut p.slave, n, &hold);
    }
    p.slave.wait_all_up();
    p.master.ok(&writes(1));
    let last = xrepl_tests::wait_for("the slave to receive the append", CATCH_UP, || {
        let rows = p.slave_tasks();
        let ids = ints(&rows, "taskId");
        let last = *ids.iter().max()?;
        (last >= ints(&p.master_tasks(), "taskId").into_iter().max()?).then_some(last)
    });
    p.slave.ok(&format!(
        "rpc(getControllerAlias(), stopClusterReplication)\nrpc(getControllerAlias(), skipClusterReplicationTask, {last})"
    ));
    // The held replay of the skipped task reaches its commit, is refused and rolls back.
    std::thread::sleep(Duration::from_millis(4_500));
    for n in ["dnode1", "dnode2"] {
        restart(&mut p.slave, n, &[]);
    }
    p.slave.wait_all_up();
    p.slave
        .ok("rpc(getControllerAlias(), startClusterReplication)");
    let skipped = p.slave_tasks();
    let details = skipped
        .iter()
        .find(|t| t["taskId"].as_i64() == Some(last))
        .and_then(|t| t["details"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(
        details.contains("resyncClusterReplicationTable(\"dfs://boot\", \"pt\")"),
        "the skip names the table and the repair: {details}"
    );
    p.wait_caught_up(CATCH_UP);
    let differ = consistency(&p, "dfs://boot");
    assert!(
        differ.iter().any(|r| r["equal"] == Json::Bool(false)),
        "the skip left drift: {differ:?}"
    );

    // Re-sync the table while writers go on; the slave ends equal. The console follows it
    // with a progress bar until it is done.
    p.master.ok(&writes(3));
    let out = xrepl_tests::ConsoleOutput::from(
        p.slave
            .console()
            .env("XREPL_PROGRESS", "1")
            .arg("--host")
            .arg(p.slave.host())
            .args(xrepl_tests::ADMIN_JSON)
            .arg("-c")
            .arg("rpc(getControllerAlias(), resyncClusterReplicationTable, \"dfs://boot\", \"pt\")")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run xrepl"),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let message = out
        .json()
        .last()
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    assert!(message.starts_with("re-sync "), "{message}");
    assert!(
        out.stderr.contains("dfs://boot/pt [")
            && out.stderr.contains("10/10 chunks")
            && out.stderr.trim_end().ends_with("done"),
        "the progress bar: {}",
        out.stderr
    );
    let row = wait_job_done(&p, job_of(&message));
    assert_eq!(row["tableName"], "pt");
    assert_eq!(row["chunksApplied"].as_i64(), Some(10), "{row:?}");
    p.wait_caught_up(CATCH_UP);
    assert_equal(&p, "dfs://boot");

    // A re-sync of a database nobody replicates, or of a missing table, is refused clearly.
    let bad = p.slave.admin_json(
        "rpc(getControllerAlias(), resyncClusterReplicationTable, \"dfs://boot\", \"nope\")",
    );
    assert!(
        bad.stderr.contains("table 'nope' does not exist"),
        "{}",
        bad.stderr
    );
    let bad = p
        .slave
        .admin_json("rpc(getControllerAlias(), resyncClusterReplicationDatabase, \"dfs://nope\")");
    assert!(bad.stderr.contains("does not exist"), "{}", bad.stderr);

    // Drift made on the slave by hand (the execution user may write) is repaired by a
    // re-sync of the whole database.
    p.slave.ok(
        "delete from loadTable(\"dfs://boot\", \"dt\") where k = 2\n\
         update loadTable(\"dfs://boot\", \"pt\") set price = 0.0 where id = 4",
    );
    assert!(consistency(&p, "dfs://boot")
        .iter()
        .any(|r| r["equal"] == Json::Bool(false)));
    let out = p
        .slave
        .ok("rpc(getControllerAlias(), resyncClusterReplicationDatabase, \"dfs://boot\")");
    let message = out
        .last()
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    wait_job_done(&p, job_of(&message));
    p.wait_caught_up(CATCH_UP);
    assert_equal(&p, "dfs://boot");
    let ops = texts(&p.master_tasks(), "operationType");
    assert!(ops.iter().any(|o| o == "RESYNC_TABLE"), "{ops:?}");
    assert!(ops.iter().any(|o| o == "RESYNC_DATABASE"), "{ops:?}");
}

#[test]
fn t45_readers_of_the_slave_see_the_old_copy_until_the_resync_replaces_it_whole() {
    let mut p = Pair::start(Spec::default(), Spec::default());
    p.master.ok(&setup(20_000));
    p.master
        .ok("setDatabaseForClusterReplication(database(\"dfs://boot\"), true)");
    wait_bootstrapped(&p);
    // Drift made by hand on the slave: 2,000 rows fewer than the master.
    p.slave
        .ok("delete from loadTable(\"dfs://boot\", \"pt\") where id = 4");
    const COUNT: &str = "select count(*) from loadTable(\"dfs://boot\", \"pt\")";
    let old = p.slave.number(COUNT);
    assert_eq!(old, 18_000);
    // Each chunk snapshot holds its chunk 600 ms after reading it: the re-sync of 10 chunks
    // takes seconds, while readers of the slave look and writers go on.
    let slow = [("XREPL_TEST_PAUSE_AT", "snapshot_after_read:600")];
    for n in ["dnode1", "dnode2"] {
        restart(&mut p.master, n, &slow);
    }
    p.master.wait_all_up();
    let out = p
        .slave
        .ok("rpc(getControllerAlias(), resyncClusterReplicationTable, \"dfs://boot\", \"pt\")");
    let job = job_of(out.last().and_then(|v| v.as_str()).unwrap_or_default());
    // Writes before the re-sync's first task still land in the old copy; from its replay on,
    // the copy readers see must not change until it is replaced whole.
    xrepl_tests::wait_for("the re-sync's first task to be applied", CATCH_UP, || {
        p.slave_tasks()
            .iter()
            .any(|t| t["operationType"] == "RESYNC_TABLE" && t["state"] == "FINISHED")
            .then_some(())
    });
    let old = p.slave.number(COUNT);
    let mut seen = vec![];
    let mut swapped = false;
    let mut rounds = 0;
    loop {
        let done = p
            .slave
            .rows(BOOT_STATUS)
            .iter()
            .any(|r| r["jobId"].as_i64() == Some(job) && r["state"] == "DONE");
        if done {
            break;
        }
        // The chunks and the writes after the re-sync began go to a copy out of sight: the
        // table reads as it was, whole, until the copy replaces it whole (the master held
        // 20,000 rows when the re-sync began; a part of the copy would hold fewer).
        let n = p.slave.number(COUNT);
        seen.push(n);
        let new = n >= 20_000;
        assert!(
            n == old && !swapped || new,
            "a reader saw the table partly re-synced: {seen:?}"
        );
        swapped |= new;
        let tables = p.slave.ok("schema(database(\"dfs://boot\")).tables");
        assert_eq!(
            tables.last(),
            Some(&serde_json::json!(["dt", "pt"])),
            "no shadow is listed"
        );
        if rounds % 3 == 0 {
            p.master.ok(&writes(1));
        }
        rounds += 1;
        assert!(rounds < 600, "the re-sync did not end");
    }
    assert!(
        seen.iter().filter(|n| **n == old).count() >= 3,
        "the re-sync was watched while it ran: {seen:?}"
    );
    // The old copy stays a while for the readers that planned with it, out of sight, and is
    // dropped 10 s after the swap.
    const RETIRED: &str = "select count(*) from loadTable(\"dfs://boot\", \"pt~retired\")";
    assert_eq!(p.slave.number(RETIRED), old, "the old copy is kept a while");
    xrepl_tests::wait_for("the old copy to be dropped", CATCH_UP, || {
        let out = p.slave.admin_json(RETIRED);
        (out.code != 0 && out.stderr.contains("does not exist")).then_some(())
    });
    // Then, in one step, the master's copy with the writes after it.
    p.wait_caught_up(CATCH_UP);
    assert_eq!(p.slave.number(COUNT), p.master.number(COUNT));
    assert_equal(&p, "dfs://boot");
    let ops = texts(&p.master_tasks(), "operationType");
    assert_eq!(
        ops.iter().filter(|o| *o == "RESYNC_END").count(),
        1,
        "{ops:?}"
    );
    // A second re-sync of the table, while the first's copy is in place, also ends equal.
    let out = p
        .slave
        .ok("rpc(getControllerAlias(), resyncClusterReplicationDatabase, \"dfs://boot\")");
    wait_job_done(
        &p,
        job_of(out.last().and_then(|v| v.as_str()).unwrap_or_default()),
    );
    p.wait_caught_up(CATCH_UP);
    assert_equal(&p, "dfs://boot");
}

#[test]
fn t50_a_slave_that_registers_after_truncation_is_seeded_and_ends_equal() {
    let p = Pair::start(Spec::default(), Spec::default());
    p.master.ok(&setup(20_000));
    p.master
        .ok("setDatabaseForClusterReplication(database(\"dfs://boot\"), true)");
    p.master.ok(&writes(5));
    wait_bootstrapped(&p);
    xrepl_tests::wait_for("the master to truncate every task", CATCH_UP, || {
        p.master_tasks()
            .iter()
            .all(|r| r["isTruncated"] == Json::Bool(true))
            .then_some(())
    });

    // A second slave cluster, new: the tasks before now are gone from the master.
    let late = xrepl_tests::Cluster::start(&Spec {
        replication_mode: Some("slave"),
        controller_cfg: format!(
            "clusterReplicationMasterCtl={}\n",
            p.master.controller.site()
        ),
        ..Spec::default()
    });
    p.master.ok(&writes(3));
    let boot = xrepl_tests::wait_for("the late slave to be seeded", CATCH_UP, || {
        let out = late.admin_json(BOOT_STATUS);
        let rows = out.json().last().and_then(|v| v.as_array()).cloned()?;
        let mine: Vec<Json> = rows
            .into_iter()
            .filter(|r| r["forSlave"].as_str().is_some_and(|s| !s.is_empty()))
            .collect();
        (!mine.is_empty() && texts(&mine, "state").iter().all(|s| s == "DONE")).then_some(mine)
    });
    assert_eq!(texts(&boot, "dbName"), ["dfs://boot"]);
    let last = ints(&p.master_tasks(), "taskId")
        .into_iter()
        .max()
        .unwrap_or(0);
    xrepl_tests::wait_for("the late slave to finish every task", CATCH_UP, || {
        let rows = late.rows("rpc(getControllerAlias(), getSlaveReplicationStatus)");
        (ints(&rows, "taskId").into_iter().max()? >= last
            && texts(&rows, "state").iter().all(|s| s == "FINISHED"))
        .then_some(())
    });
    let rows = late.rows("checkClusterReplicationConsistency(\"dfs://boot\")");
    assert!(!rows.is_empty());
    assert!(
        rows.iter().all(|r| r["equal"] == Json::Bool(true)),
        "the late slave differs: {rows:?}"
    );
    // The first slave was not sent the late one's re-sync: it stored those tasks finished.
    let first = p.slave_tasks();
    assert!(first
        .iter()
        .filter(|t| t["operationType"] == "RESYNC_DATABASE")
        .all(|t| t["details"]
            .as_str()
            .is_some_and(|d| d.contains("for slave cluster"))));
    assert_equal(&p, "dfs://boot");
}
