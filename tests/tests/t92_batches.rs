//! Batched replay on the slave, on real processes: a slave data node killed while its batch is
//! prepared and waiting for its decision, the slave controller killed at that moment, and a
//! batch whose third task cannot be replayed. Every task is applied exactly once: the slave's
//! rows are the master's, no row twice; a failing task fails alone, the tasks before it commit
//! and the ones after it wait.
//!
//! A batch forms when tasks queue up behind a running one: the first append (`a0`) is held
//! before its decision (`XREPL_TEST_PAUSE_AT=replay_before_decide:MS` on the slave's data
//! nodes) while the master commits the rest, which then go as one batch.

use std::time::Duration;

use xrepl_tests::{ints, texts, wait_for, Cluster, Pair, Spec};

const CATCH_UP: Duration = Duration::from_secs(90);
const PAUSE_MS: u64 = 2_000;

const SETUP: &str = r#"db = database("dfs://b", VALUE, 1..20)
setDatabaseForClusterReplication(db, true)
db.createPartitionedTable(table(1:0, `k`v, [INT, INT]), "t", `k)
db.createPartitionedTable(table(1:0, `k`v, [INT, INT]), "u", `k)"#;

/// Two rows (k = 1 and 2) with value `v` into `table`: every append to a table conflicts with
/// the one before it, so each is a group of its own.
fn append(table: &str, v: i32) -> String {
    format!(
        "k = [1, 2]\nv = [{v}, {v}]\nloadTable(\"dfs://b\", \"{table}\").append!(table(k, v))\n"
    )
}

/// (rows, sum of v) of `table`.
fn content(c: &Cluster, table: &str) -> (i64, i64) {
    let from = format!("loadTable(\"dfs://b\", \"{table}\")");
    (
        c.number(&format!("select count(*) from {from}")),
        c.number(&format!("select sum(v) from {from}")),
    )
}

fn pair() -> Pair {
    Pair::start(
        Spec::default(),
        Spec {
            controller_cfg: "clusterReplicationRetryIntervalMs=10\ntransactionTimeoutMs=2000\n"
                .into(),
            ..Spec::default()
        },
    )
}

fn last_task(p: &Pair) -> i64 {
    ints(&p.master_tasks(), "taskId")
        .into_iter()
        .max()
        .unwrap_or(0)
}

/// How often `alias` has held a replay before its decision.
fn pauses(c: &Cluster, alias: &str) -> usize {
    c.read_log(alias)
        .matches(&format!("pausing {PAUSE_MS} ms at replay_before_decide"))
        .count()
}

/// Restarts the slave's data nodes so that every replay waits before its decision.
fn hold_replays(p: &mut Pair) {
    for alias in ["dnode1", "dnode2"] {
        p.slave.kill(alias);
        p.slave.spawn_datanode_env(
            alias,
            &[(
                "XREPL_TEST_PAUSE_AT",
                &format!("replay_before_decide:{PAUSE_MS}"),
            )],
        );
    }
    p.slave.wait_all_up();
}

/// Commits `a0` and, while the slave holds its replay, `rest` (one script): the tasks of
/// `rest` then run as one batch. Answers the ids of `rest`'s tasks and the data node leading
/// that batch once it is held before its decision.
fn queue_a_batch(p: &Pair, rest: &[String]) -> (Vec<i64>, String) {
    let counts = || -> Vec<(&'static str, usize)> {
        ["dnode1", "dnode2"]
            .into_iter()
            .map(|a| (a, pauses(&p.slave, a)))
            .collect()
    };
    let total = |c: &[(&str, usize)]| c.iter().map(|(_, n)| n).sum::<usize>();
    let before = total(&counts());
    p.master.ok(&append("t", 100));
    let a0 = last_task(p);
    wait_for("a0 to be held", Duration::from_secs(30), || {
        (total(&counts()) > before).then_some(())
    });
    let held = counts();
    p.master.ok(&rest.concat());
    let last = last_task(p);
    let ids: Vec<i64> = (a0 + 1..=last).collect();
    assert_eq!(ids.len(), rest.len());
    let start = std::time::Instant::now();
    let lead = loop {
        if let Some((a, _)) = held.iter().find(|(a, n)| pauses(&p.slave, a) > *n) {
            break a.to_string();
        }
        if start.elapsed() > Duration::from_secs(30) {
            let tail = |a: &str| {
                let log = p.slave.read_log(a);
                let lines: Vec<&str> = log.lines().collect();
                lines[lines.len().saturating_sub(20)..].join("\n")
            };
            panic!(
                "no batch held within 30 s.\nslave tasks: {:?}\ndnode1:\n{}\ndnode2:\n{}\ncontroller:\n{}",
                p.slave_tasks()
                    .iter()
                    .map(|r| format!("{}:{}", r["taskId"], r["state"]))
                    .collect::<Vec<_>>(),
                tail("dnode1"),
                tail("dnode2"),
                tail("controller1")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (ids, lead)
}

fn assert_same(p: &Pair, table: &str) {
    let (m, s) = (content(&p.master, table), content(&p.slave, table));
    assert_eq!(m, s, "{table}: (rows, sum) on the master and on the slave");
}

#[test]
fn t10_a_slave_data_node_killed_while_its_batch_waits_for_the_decision() {
    let mut p = pair();
    p.master.ok(SETUP);
    p.wait_caught_up(CATCH_UP);
    hold_replays(&mut p);
    let rest: Vec<String> = (1..=20).map(|v| append("t", v)).collect();
    let (ids, lead) = queue_a_batch(&p, &rest);
    // The batch is prepared on the participants and waits: kill its coordinator.
    p.slave.kill(&lead);
    p.slave.spawn_datanode(&lead);
    p.slave.wait_all_up();
    assert_eq!(p.wait_caught_up(CATCH_UP), *ids.last().expect("ids"));
    assert_same(&p, "t");
    assert_eq!(content(&p.slave, "t").0, 2 * 21);
}

#[test]
fn t20_the_slave_controller_killed_while_a_batch_waits_for_the_decision() {
    let mut p = pair();
    p.master.ok(SETUP);
    p.wait_caught_up(CATCH_UP);
    hold_replays(&mut p);
    let rest: Vec<String> = (1..=20).map(|v| append("t", v)).collect();
    let (ids, _) = queue_a_batch(&p, &rest);
    p.slave.kill("controller1");
    p.slave.spawn_controller();
    p.slave.wait_all_up();
    assert_eq!(p.wait_caught_up(CATCH_UP), *ids.last().expect("ids"));
    assert_same(&p, "t");
    assert_eq!(content(&p.slave, "t").0, 2 * 21);
}

#[test]
fn t30_the_third_task_of_a_batch_fails_alone_the_two_before_commit_the_rest_wait() {
    let mut p = pair();
    p.master.ok(SETUP);
    p.wait_caught_up(CATCH_UP);
    // Table u disappears on the slave only (admin is the replication user here): appends to
    // it cannot be replayed.
    p.slave.ok(r#"dropTable(database("dfs://b"), "u")"#);
    hold_replays(&mut p);
    let rest = [
        append("t", 1),
        append("t", 2),
        append("u", 3),
        append("t", 4),
        append("t", 5),
    ];
    let (ids, lead) = queue_a_batch(&p, &rest);
    let s = &p.slave;
    wait_for("the slave to stop", Duration::from_secs(60), || {
        let metrics = s.rows("rpc(getControllerAlias(), getClusterReplicationMetrics)");
        (texts(&metrics, "status") == ["STOPPED"]).then_some(())
    });
    let log = s.read_log(&lead);
    assert!(
        log.contains("a batch of 5 tasks did not commit"),
        "{lead}'s log:\n{log}"
    );
    let rows = p.slave_tasks();
    let row = |id: i64| {
        rows.iter()
            .find(|r| r["taskId"] == id)
            .unwrap_or_else(|| panic!("task {id} listed: {rows:?}"))
            .clone()
    };
    for id in &ids[..2] {
        assert_eq!(row(*id)["state"], "FINISHED", "{}", row(*id));
        assert_eq!(row(*id)["executionNode"], lead.as_str(), "{}", row(*id));
    }
    let failed = row(ids[2]);
    assert_eq!(failed["state"], "FAILED", "{failed}");
    let details = failed["details"].as_str().unwrap_or_default();
    assert!(
        details.contains("failed 30 times") && details.contains("table 'u' does not exist"),
        "{details}"
    );
    for id in &ids[3..] {
        assert_eq!(row(*id)["state"], "WAITING", "{}", row(*id));
    }
    // a0 and the two before the failing task, nothing after it.
    assert_eq!(content(s, "t"), (6, 2 * (100 + 1 + 2)));

    // Skipped, the rest replays.
    s.ok(&format!(
        "rpc(getControllerAlias(), skipClusterReplicationTask, {id}..{id})
rpc(getControllerAlias(), startClusterReplication)",
        id = ids[2]
    ));
    p.wait_caught_up(CATCH_UP);
    assert_same(&p, "t");
    assert_eq!(content(s, "t").0, 10);
}

#[test]
fn t40_a_batch_held_across_a_slave_controller_restart_commits_without_waiting_for_the_timeout() {
    // The slave controller keeps the default transaction timeout (60 s): a prepared batch whose
    // coordinator gave up when the controller died would hold its partitions that long.
    let mut p = Pair::start(
        Spec::default(),
        Spec {
            controller_cfg: "clusterReplicationRetryIntervalMs=10\n".into(),
            ..Spec::default()
        },
    );
    p.master.ok(SETUP);
    p.wait_caught_up(CATCH_UP);
    hold_replays(&mut p);
    let rest: Vec<String> = (1..=20).map(|v| append("t", v)).collect();
    let (ids, lead) = queue_a_batch(&p, &rest);
    p.slave.kill("controller1");
    std::thread::sleep(Duration::from_millis(PAUSE_MS));
    p.slave.spawn_controller();
    p.slave.wait_all_up();
    let restarted = std::time::Instant::now();
    assert_eq!(p.wait_caught_up(CATCH_UP), *ids.last().expect("ids"));
    let took = restarted.elapsed();
    assert_same(&p, "t");
    assert_eq!(content(&p.slave, "t").0, 2 * 21);
    let log = p.slave.read_log(&lead);
    assert!(
        !log.contains("the outcome is not known yet"),
        "{lead} gave up on its decision:\n{log}"
    );
    assert!(
        took < Duration::from_secs(30),
        "caught up {took:?} after the restart: the held batch waited for the transaction timeout"
    );
}
