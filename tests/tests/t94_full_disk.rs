//! A full disk on the slave (issue 7): the slave data nodes keep their storage on a small
//! tmpfs this test mounts; the master writes until a replay no longer fits. The task fails with
//! a reason that says the disk is full, replication stops, no process dies; once the tmpfs is
//! made bigger, `startClusterReplication()` replays the rest and the slave equals the master.
//!
//! Mounting needs root (or CAP_SYS_ADMIN); where mounting is refused the test says so on
//! stderr and passes without running.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use xrepl_tests::{ints, texts, Pair, Spec};

/// The slave's tmpfs, shared by both slave data nodes. 16 MiB: an empty sled storage takes a
/// few KiB, so the slave starts and replays the first appends; sled takes about 2.4 times the
/// bytes it is given, and a data node refuses a prepare unless twice its bytes plus a 4 MiB
/// reserve are free (`datanode/src/storage.rs`), so after three appends of [`ROWS`] rows
/// (about 12 MiB used by both nodes) the fourth no longer fits.
const SMALL_MB: u64 = 16;
/// After the space is freed: room for the rest with a wide margin (tmpfs takes memory only
/// for what is written).
const BIG_MB: u64 = 256;
/// Rows per append on the master: 80,000 rows of (INT, LONG, DOUBLE), about 1.6 MB of values
/// spread over the eight partitions, about 0.75 MB per slave data node.
const ROWS: i64 = 80_000;
/// Most appends the test makes before the disk must have filled.
const MAX_ROUNDS: i64 = 12;
const RETRY_LIMIT: i64 = 3;
const WAIT: Duration = Duration::from_secs(30);

/// A size-limited tmpfs mounted on a fresh temporary folder; unmounted when dropped (also when
/// the test panics), lazily if something still holds it.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(mb: u64) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("no temporary folder: {e}"))?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}M"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Changes the size limit; data on it stays.
    fn resize(&self, mb: u64) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={mb}M")])
            .arg(self.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "remount: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `df` of the tmpfs, for failure messages.
    fn usage(&self) -> String {
        Command::new("df")
            .arg("-k")
            .arg(self.path())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(self.path())
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            let _ = Command::new("umount").arg("-l").arg(self.path()).status();
        }
    }
}

/// One round on the master: [`ROWS`] rows into `a` (ids `round * ROWS + 1 ..`), one row into
/// `b`. Two tasks.
fn round(r: i64) -> String {
    format!(
        r#"n = {ROWS}
id = long(1..n) + {start}
k = take(1..8, n)
v = id * 1.5
loadTable("dfs://full", "a").append!(table(k, id, v))
k = [{kb}]
m = [long({r})]
loadTable("dfs://full", "b").append!(table(k, m))"#,
        start = r * ROWS,
        kb = r % 8 + 1,
    )
}

const CHECKSUMS: [&str; 2] = [
    "select count(*), sum(id), min(id), max(id), sum(v), min(v), max(v) from loadTable(\"dfs://full\", \"a\") group by k",
    "select count(*), sum(m), min(m), max(m) from loadTable(\"dfs://full\", \"b\") group by k",
];

/// Waits until the slave has finished every task up to `last`, or failed one; returns the
/// failed task's row.
fn finished_or_failed(p: &Pair, last: i64) -> Option<Json> {
    xrepl_tests::wait_for("the slave to finish or fail", WAIT, || {
        let rows = p.slave_tasks();
        if let Some(failed) = rows.iter().find(|r| r["state"] == "FAILED") {
            return Some(Some(failed.clone()));
        }
        let done = ints(&rows, "taskId").into_iter().max() >= Some(last)
            && texts(&rows, "state").iter().all(|s| s == "FINISHED");
        done.then_some(None)
    })
}

/// Every process of the slave is up and no log of either cluster tells of a panic.
fn assert_nothing_crashed(p: &Pair) {
    p.slave.wait_all_up();
    let states = p.slave.node_states().expect("getClusterPerf on the slave");
    assert!(states.iter().all(|(_, s)| s == "up"), "{states:?}");
    for (name, c) in [("master", &p.master), ("slave", &p.slave)] {
        for alias in std::iter::once(&c.controller)
            .chain(&c.datanodes)
            .map(|n| &n.alias)
        {
            let log = c.read_log(alias);
            assert!(!log.contains("panicked"), "{name} {alias} panicked:\n{log}");
        }
    }
}

#[test]
fn t10_a_full_disk_fails_the_task_stops_the_slave_and_replication_resumes_once_space_is_freed() {
    let started = Instant::now();
    let fs = match Tmpfs::mount(SMALL_MB) {
        Ok(fs) => fs,
        Err(reason) => {
            eprintln!("skipped: cannot mount tmpfs: {reason}");
            return;
        }
    };
    let homes: Vec<PathBuf> = ["dnode1", "dnode2"]
        .iter()
        .map(|n| fs.path().join(n))
        .collect();
    let p = Pair::start(
        Spec::default(),
        Spec {
            cluster_cfg: format!(
                "dnode1.home={}\ndnode2.home={}\n",
                homes[0].display(),
                homes[1].display()
            ),
            controller_cfg: format!(
                "clusterReplicationRetryLimit={RETRY_LIMIT}\nclusterReplicationRetryIntervalMs=200\n"
            ),
            ..Spec::default()
        },
    );
    let (m, s) = (&p.master, &p.slave);
    for h in &homes {
        assert!(
            h.join("storage").is_dir(),
            "no storage under {}",
            h.display()
        );
    }
    m.ok(r#"db = database("dfs://full", VALUE, 1..8)
setDatabaseForClusterReplication(db, true)
db.createPartitionedTable(table(1:0, `k`id`v, [INT, LONG, DOUBLE]), "a", `k)
db.createPartitionedTable(table(1:0, `k`m, [INT, LONG]), "b", `k)"#);

    // Write until a replay no longer fits on the slave's disk; the master takes every write.
    let mut rounds = 0;
    let failed = loop {
        assert!(
            rounds < MAX_ROUNDS,
            "the slave's disk never filled:\n{}",
            fs.usage()
        );
        m.ok(&round(rounds));
        rounds += 1;
        let last = ints(&p.master_tasks(), "taskId")
            .into_iter()
            .max()
            .unwrap_or(0);
        if let Some(row) = finished_or_failed(&p, last) {
            break row;
        }
    };
    let filled_at = rounds;
    assert!(
        filled_at >= 3,
        "the disk filled at append {filled_at} already: too small to show replays worked before"
    );
    // One more write on the master meanwhile: it succeeds and waits for the slave.
    m.ok(&round(rounds));
    rounds += 1;

    // The task FAILED after the retry limit with a reason that says the disk is full, and where.
    let details = failed["details"].as_str().unwrap_or_default().to_string();
    assert!(
        details.starts_with(&format!("failed {RETRY_LIMIT} times; the last attempt: ")),
        "{details}"
    );
    let on_tmpfs = homes.iter().any(|h| {
        details.contains(&format!(
            "no space left on the device of data node {} ({}",
            h.file_name().and_then(|n| n.to_str()).unwrap_or_default(),
            h.join("storage").display()
        ))
    });
    assert!(on_tmpfs, "{details}");
    assert_eq!(failed["operationType"], "APPEND");
    let failed_id = failed["taskId"].as_i64().expect("taskId");
    let log = s.read_log("controller1");
    assert!(
        log.contains(&format!("task FAILED, replication STOPPED: failed {RETRY_LIMIT} times; the last attempt: no space left on the device of data node")),
        "{log}"
    );

    // The slave STOPPED: its metrics, its queues, and no group after the failed task's ran
    // (the append to `b` in the same group may have).
    xrepl_tests::wait_for("STOPPED", WAIT, || {
        let metrics = s.rows("rpc(getControllerAlias(), getClusterReplicationMetrics)");
        (texts(&metrics, "status") == ["STOPPED"]).then_some(())
    });
    let tasks = p.slave_tasks();
    let failed_group = failed["groupId"].as_i64().expect("groupId");
    for r in &tasks {
        let group = r["groupId"].as_i64().expect("groupId");
        let want = match group.cmp(&failed_group) {
            std::cmp::Ordering::Less => "FINISHED",
            std::cmp::Ordering::Equal if r["taskId"] == failed_id => "FAILED",
            std::cmp::Ordering::Equal => continue,
            std::cmp::Ordering::Greater => "WAITING",
        };
        assert_eq!(r["state"], want, "{r}");
    }
    let queues = s.rows("rpc(getControllerAlias(), getSlaveReplicationQueueStatus)");
    let unfinished = tasks.iter().filter(|r| r["state"] != "FINISHED").count() as i64;
    assert_eq!(
        ints(&queues, "unfinishedTasks").iter().sum::<i64>(),
        unfinished
    );
    for q in &queues {
        let want = if q["unfinishedTasks"] == 0 {
            "IDLE"
        } else {
            "STOPPED"
        };
        assert_eq!(q["status"], want, "{q}");
    }

    // Nothing crashed, and the slave still reads: exactly the appends it finished.
    assert_nothing_crashed(&p);
    let finished_appends = tasks
        .iter()
        .filter(|r| {
            r["state"] == "FINISHED" && r["operationType"] == "APPEND" && r["tableName"] == "a"
        })
        .count() as i64;
    assert_eq!(
        s.number("select count(*) from loadTable(\"dfs://full\", \"a\")"),
        finished_appends * ROWS
    );
    // The master lost nothing.
    assert_eq!(
        m.number("select count(*) from loadTable(\"dfs://full\", \"a\")"),
        rounds * ROWS
    );

    // Free space and start again: the failed task runs first, then the rest.
    fs.resize(BIG_MB);
    s.ok("rpc(getControllerAlias(), startClusterReplication)");
    let last = p.wait_caught_up(WAIT);
    let master_ids = ints(&p.master_tasks(), "taskId");
    let tasks = p.slave_tasks();
    assert_eq!(ints(&tasks, "taskId"), master_ids);
    assert_eq!(master_ids.last(), Some(&last));
    assert!(texts(&tasks, "state").iter().all(|t| t == "FINISHED"));
    let metrics = s.rows("rpc(getControllerAlias(), getClusterReplicationMetrics, -1)");
    assert_eq!(texts(&metrics, "status"), ["ENABLED"]);
    assert_eq!(ints(&metrics, "unfinishedTasks"), [0]);
    for (table, rows) in [("a", rounds * ROWS), ("b", rounds)] {
        let count = format!("select count(*) from loadTable(\"dfs://full\", \"{table}\")");
        assert_eq!(m.number(&count), rows, "master {table}");
        assert_eq!(s.number(&count), rows, "slave {table}");
    }
    for checksum in CHECKSUMS {
        let (mr, sr) = (m.rows(checksum), s.rows(checksum));
        assert!(!mr.is_empty(), "{checksum}");
        assert_eq!(mr, sr, "{checksum}");
    }
    assert_nothing_crashed(&p);
    eprintln!(
        "the slave's disk filled at append {filled_at} of {ROWS} rows; {:?} in all",
        started.elapsed()
    );
}
