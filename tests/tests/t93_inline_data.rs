//! Small tasks' data travels with the tasks: from the master coordinator to the master
//! controller with the decision, to the slave controller in the pull answer, to the replay
//! worker in the hand-out. Proved on real processes by making the master data nodes
//! unreachable for the slave (`clusterReplicationPublicAddress` names a port where nothing
//! listens): small tasks still replay, and a large one waits for a fetch that cannot happen,
//! without counting an attempt.

use std::time::{Duration, Instant};

use xrepl_tests::{free_ports, ints, texts, wait_for, Pair, Spec};

const SETUP: &str = r#"db = database("dfs://i", VALUE, 1..20)
setDatabaseForClusterReplication(db, true)
db.createPartitionedTable(table(1:0, `k`v, [INT, INT]), "t", `k)"#;

/// `n` rows (k cycling over 1..19) into `t`; 10 rows encode to a few hundred bytes, 40,000
/// to about 320 KB, far above the 64 KiB that may travel with a task.
fn append(n: usize, v: i32) -> String {
    format!("k = (0..({n} - 1)) % 19 + 1\nv = take({v}, {n})\nloadTable(\"dfs://i\", \"t\").append!(table(k, v))\n")
}

#[test]
fn t10_small_tasks_replay_with_the_data_that_came_with_them_large_ones_are_fetched() {
    let dead = free_ports(1)[0];
    let p = Pair::start(
        Spec {
            cluster_cfg: format!(
                "dnode1.clusterReplicationPublicAddress=127.0.0.1:{dead}\ndnode2.clusterReplicationPublicAddress=127.0.0.1:{dead}\n"
            ),
            ..Spec::default()
        },
        Spec::default(),
    );
    p.master.ok(SETUP);
    for v in 1..=5 {
        p.master.ok(&append(10, v));
    }
    // Every task names the unreachable address as its source, and yet the slave applies them.
    let masters = p.master_tasks();
    assert!(
        ints(&masters, "srcPort")
            .iter()
            .all(|&port| port == dead as i64),
        "{masters:?}"
    );
    let last = p.wait_caught_up(Duration::from_secs(60));
    assert_eq!(last, 7, "the database, the table, 5 appends");
    let rows = |c: &xrepl_tests::Cluster| {
        (
            c.number("select count(*) from loadTable(\"dfs://i\", \"t\")"),
            c.number("select sum(v) from loadTable(\"dfs://i\", \"t\")"),
        )
    };
    assert_eq!(rows(&p.slave), (50, 10 * 15));
    assert_eq!(rows(&p.slave), rows(&p.master));

    // A large task's data stays on the master data node: the slave must fetch it, cannot, and
    // keeps trying without counting attempts (the task is neither FAILED nor FINISHED).
    p.master.ok(&append(40_000, 1));
    let big = ints(&p.master_tasks(), "taskId")
        .into_iter()
        .max()
        .unwrap_or(0);
    assert_eq!(big, 8);
    let start = Instant::now();
    let ctl = p.slave.controller.alias.clone();
    let line = wait_for("the slave to try to fetch", Duration::from_secs(30), || {
        p.slave.read_log(&ctl).lines().find_map(|l| {
            (l.contains("task_id=8")
                && l.contains(&format!(
                    "cannot fetch the task data from master data node 127.0.0.1:{dead}"
                )))
            .then(|| l.to_string())
        })
    });
    assert!(line.contains("transient reason"), "{line}");
    std::thread::sleep(Duration::from_secs(2).saturating_sub(start.elapsed()));
    let slave = p.slave_tasks();
    let states: Vec<(i64, String)> = ints(&slave, "taskId")
        .into_iter()
        .zip(texts(&slave, "state"))
        .collect();
    let big_state = states
        .iter()
        .find(|(id, _)| *id == 8)
        .map(|(_, s)| s.as_str());
    assert!(
        matches!(big_state, Some("WAITING" | "EXECUTING")),
        "{states:?}"
    );
    assert_eq!(
        rows(&p.slave),
        (50, 150),
        "nothing of the large append applied"
    );
}
