//! `clusterReplicationMaxRetainedBytes`: a master keeps at most that much task data for a
//! slave that stopped reporting. Past it the slave is dropped: the data is truncated, the
//! master logs why, the slave is refused with the reason until it is re-seeded and an
//! administrator removes it, and the other slaves are not affected.

use std::time::Duration;

use xrepl_tests::{column, wait_for, Pair, Spec};

const SETUP: &str = r#"
db = database("dfs://r", VALUE, 2023.01.01..2023.01.02)
setDatabaseForClusterReplication(db, true)
db.createPartitionedTable(table(1:0, `d`id`v, [DATE, INT, DOUBLE]), "t", `d)
"#;

/// One task of `n` rows (about 16 bytes a row of task data).
fn append(first: i32, n: i32) -> String {
    format!(
        "id = {first}..{last}\nd = 2023.01.01 + id * 0\nv = id * 1.5\nloadTable(\"dfs://r\", \"t\").append!(table(d, id, v))",
        last = first + n - 1
    )
}

#[test]
fn t10_a_slave_that_stops_reporting_is_dropped_past_the_bound_and_refused_until_removed() {
    let mut p = Pair::start(
        Spec {
            controller_cfg: "clusterReplicationMaxRetainedBytes=1048576\n".into(),
            ..Spec::default()
        },
        Spec::default(),
    );
    p.master.ok(SETUP);
    p.master.ok(&append(1, 1000));
    let caught = p.wait_caught_up(Duration::from_secs(60));
    let slave = p.slave.controller.site();
    // The slave stops: nothing reports for it any more.
    p.slave.kill("controller1");

    // Under the bound nothing happens: about 0.5 MB.
    let mut next = 1001;
    for _ in 0..5 {
        p.master.ok(&append(next, 6_000));
        next += 6_000;
    }
    std::thread::sleep(Duration::from_millis(1500));
    let log = p.master.read_log("controller1");
    assert!(!log.contains("slave cluster dropped"), "{log}");
    let truncated = |p: &Pair| {
        column(&p.master_tasks(), "isTruncated")
            .iter()
            .filter(|v| v.as_bool() == Some(true))
            .count()
    };
    // Only what the slave reported finished is truncated (the report of its last task may
    // not have left before it was killed).
    assert!(truncated(&p) as i64 <= caught, "truncated past the slave");

    // Past it (about 1.5 MB), the slave is dropped and what it held is truncated.
    for _ in 0..6 {
        p.master.ok(&append(next, 6_000));
        next += 6_000;
    }
    let log = wait_for("the slave dropped", Duration::from_secs(20), || {
        let log = p.master.read_log("controller1");
        log.contains("slave cluster dropped").then_some(log)
    });
    assert!(
        log.contains("more than clusterReplicationMaxRetainedBytes=1048576")
            && log.contains(&format!("dropClusterReplicationSlave(\"{slave}\")")),
        "{log}"
    );
    let tasks = p.master_tasks().len();
    wait_for("every task truncated", Duration::from_secs(20), || {
        (truncated(&p) == tasks).then_some(())
    });
    let recent = p
        .master
        .ok("rpc(getControllerAlias(), getRecentSlaveReplicationInfo)");
    let listed = recent.last().and_then(|v| v.as_array()).map_or(0, Vec::len);
    assert_eq!(listed, 0, "a dropped slave is not listed: {recent:?}");

    // The slave comes back: it is refused with the reason, and gets nothing.
    p.slave.spawn_controller();
    let slave_log = wait_for("the slave's refusal", Duration::from_secs(20), || {
        let log = p.slave.read_log("controller1");
        log.contains("was dropped").then_some(log)
    });
    assert!(slave_log.contains("re-seed it"), "{slave_log}");
    let out = p
        .slave
        .admin_json("select count(*) from loadTable(\"dfs://r\", \"t\")");
    assert!(
        out.stdout.contains("1000"),
        "nothing more arrived: {}{}",
        out.stdout,
        out.stderr
    );

    // Once an administrator removes it, it may register again.
    p.master.ok(&format!(
        "rpc(getControllerAlias(), dropClusterReplicationSlave, \"{slave}\")"
    ));
    wait_for(
        "the slave registered again",
        Duration::from_secs(30),
        || {
            let recent = p
                .master
                .ok("rpc(getControllerAlias(), getRecentSlaveReplicationInfo)");
            (recent.last().and_then(|v| v.as_array()).map_or(0, Vec::len) == 1).then_some(())
        },
    );
}
