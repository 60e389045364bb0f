//! A cluster starts, answers the console, notices dead data nodes and welcomes them back.

use std::time::{Duration, Instant};

use xrepl_tests::{wait_for, Cluster, Spec, ADMIN, ADMIN_JSON};

#[test]
fn t10_console_logs_in_and_sees_every_node_up() {
    let c = Cluster::start(&Spec::default());
    let out = c.admin_json("getClusterPerf()");
    assert_eq!(out.code, 0, "{out:?}");
    let rows = out.json().remove(0);
    let rows = rows.as_array().expect("a table");
    assert_eq!(rows.len(), 3);
    let expect = [
        ("controller1", "controller", c.controller.site()),
        ("dnode1", "datanode", c.datanodes[0].site()),
        ("dnode2", "datanode", c.datanodes[1].site()),
    ];
    for (row, (name, mode, site)) in rows.iter().zip(expect) {
        assert_eq!(row["name"], name);
        assert_eq!(row["mode"], mode);
        assert_eq!(row["site"], site.as_str());
        assert_eq!(row["state"], "up");
        assert!(
            row["lastHeartbeat"]
                .as_str()
                .is_some_and(|t| t.starts_with("20")),
            "{row}"
        );
    }
    let keys: Vec<&String> = rows[0].as_object().expect("row").keys().collect();
    assert_eq!(keys.len(), 5);

    // The same through rpc, the controller's alias and the node's own alias.
    let out = c.admin_json(
        "rpc(getControllerAlias(), getClusterPerf)\ngetControllerAlias()\ngetNodeAlias()\nx = 40 + 2\nx",
    );
    assert_eq!(out.code, 0, "{out:?}");
    let values = out.json();
    assert_eq!(values.len(), 4);
    assert_eq!(values[0].as_array().map(Vec::len), Some(3));
    assert_eq!(values[1], "controller1");
    assert_eq!(values[2], "dnode1");
    assert_eq!(values[3], 42);

    // The table format has a header, a rule and one line per node.
    let out = c.console_at(&c.host(), ADMIN, "getClusterPerf()");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{}", out.stdout);
    assert!(lines[0].starts_with("name") && lines[0].ends_with("lastHeartbeat"));
    assert!(lines[1].starts_with("----"));
}

#[test]
fn t20_killed_datanode_is_down_within_the_timeout_and_up_after_restart() {
    let spec = Spec::default();
    let mut c = Cluster::start(&spec);
    c.kill("dnode2");
    let killed = Instant::now();
    wait_for("dnode2 down", Duration::from_secs(10), || {
        (c.state_of("dnode2")? == "down").then_some(())
    });
    let seen = killed.elapsed();
    let bound = Duration::from_millis(spec.heartbeat_timeout_ms + 1_500);
    assert!(
        seen <= bound,
        "dnode2 shown down after {seen:?}, more than {bound:?}"
    );
    assert_eq!(c.state_of("dnode1").as_deref(), Some("up"));

    c.spawn_datanode("dnode2");
    wait_for("dnode2 up again", Duration::from_secs(10), || {
        (c.state_of("dnode2")? == "up").then_some(())
    });
    // The restarted node serves sessions again.
    let out = c.console_at(&c.datanodes[1].site(), ADMIN_JSON, "getNodeAlias()");
    assert_eq!(out.json(), vec![serde_json::json!("dnode2")], "{out:?}");
}

#[test]
fn t30_controller_restart_keeps_users_and_nodes_register_again() {
    let mut c = Cluster::start(&Spec::default());
    c.kill("controller1");
    let out = c.admin_json("getClusterPerf()");
    assert_ne!(out.code, 0, "no controller, yet login worked: {out:?}");
    assert!(
        out.stderr.contains("controller is unreachable"),
        "{}",
        out.stderr
    );

    c.spawn_controller();
    c.wait_all_up();
    // The administrator was created once, on first start, and still logs in.
    let log = c.read_log("controller1");
    assert_eq!(
        log.matches("first start: created user 'admin'").count(),
        1,
        "{log}"
    );
    let out = c.admin_json("getControllerAlias()");
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn t40_sessions_must_log_in_and_wrong_passwords_are_refused() {
    let c = Cluster::start(&Spec::default());
    let host = c.host();

    let out = c.console_at(&host, &[], "getClusterPerf()");
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr.trim(),
        "dnode1: Not logged in: call login(user, password) first."
    );
    let out = c.console_at(&host, &[], "1 + 1");
    assert_eq!(out.code, 1, "even arithmetic needs a login: {out:?}");
    assert!(out.stdout.is_empty());

    let out = c.console_at(&host, &["--user", "admin", "--password", "wrong"], "1");
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("The user name or password is incorrect."),
        "{}",
        out.stderr
    );
    let out = c.console_at(&host, &["--user", "nobody", "--password", "123456"], "1");
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("The user name or password is incorrect."),
        "{}",
        out.stderr
    );

    // In a script: a failed login stops it; a good one lets the rest run.
    let out = c.console_at(
        &host,
        &["--format", "json"],
        "login(\"admin\", \"nope\")\ngetNodeAlias()",
    );
    assert_eq!(out.code, 1);
    assert!(out.stdout.is_empty());
    let out = c.console_at(
        &host,
        &["--format", "json"],
        "login(\"admin\", \"123456\")\ngetNodeAlias()",
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.json(), vec![serde_json::json!("dnode1")]);

    // logout ends the rights and forgets the variables.
    let out = c.console_at(&host, ADMIN, "x = 1\nlogout()\nx");
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("Not logged in"), "{}", out.stderr);
}

#[test]
fn t50_errors_name_the_node_and_leave_the_session_usable() {
    let c = Cluster::start(&Spec::default());
    let out = c.console_at(&c.host(), ADMIN, "x = (1");
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr.trim(),
        "dnode1: Syntax error at line 1, column 7: expected ')' but found end of input"
    );
    let out = c.console_at(&c.host(), ADMIN, "noSuchFunction(1)");
    assert_eq!(
        out.stderr.trim(),
        "dnode1: unknown function 'noSuchFunction'"
    );
    let out = c.console_at(&c.host(), ADMIN, "getNodeAlias(1)");
    assert_eq!(
        out.stderr.trim(),
        "dnode1: getNodeAlias takes 0 arguments, got 1"
    );
    let out = c.console_at(&c.host(), ADMIN, "login(1, 2)");
    assert_eq!(
        out.stderr.trim(),
        "dnode1: login: the user name must be a string, got an INT scalar"
    );
    let out = c.console_at(&c.host(), ADMIN, "y = 1\nundefinedVar + 1");
    assert_eq!(
        out.stderr.trim(),
        "dnode1: line 2: variable 'undefinedVar' is not defined"
    );

    // Outputs before the error are printed; the exit code says a statement failed.
    let out = c.console_at(&c.host(), ADMIN_JSON, "1\n2\nbad(\n");
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.is_empty(),
        "a syntax error runs nothing: {out:?}"
    );
    let out = c.console_at(&c.host(), ADMIN_JSON, "1\n2\nbad()\n3");
    assert_eq!(out.code, 1);
    assert_eq!(out.json(), vec![serde_json::json!(1), serde_json::json!(2)]);
}

#[test]
fn t60_replication_functions_without_replication_mode_say_so() {
    let c = Cluster::start(&Spec::default());
    let msg = "Replication is not enabled. Specify the configuration parameters first.";
    for script in [
        "rpc(getControllerAlias(), getMasterReplicationStatus)",
        "rpc(getControllerAlias(), getSlaveReplicationStatus)",
        "rpc(getControllerAlias(), getClusterReplicationMetrics, 30)",
        "getDatabaseClusterReplicationStatus()",
        "rpc(getControllerAlias(), stopClusterReplication)",
    ] {
        let out = c.admin_json(script);
        assert_eq!(out.code, 1, "{script}");
        assert!(out.stderr.trim().ends_with(msg), "{script}: {}", out.stderr);
    }
}

#[test]
fn t70_replication_functions_on_a_master_check_where_they_run() {
    let c = Cluster::start(&Spec {
        replication_mode: Some("master"),
        ..Spec::default()
    });
    let cases = [
        (
            "getMasterReplicationStatus()",
            "dnode1: getMasterReplicationStatus must be executed on the controller of the master cluster.",
        ),
        (
            "rpc(getControllerAlias(), getSlaveReplicationStatus)",
            "controller1: getSlaveReplicationStatus must be executed on the controller of the slave cluster.",
        ),
        (
            "rpc(getControllerAlias(), getDatabaseClusterReplicationStatus)",
            "controller1: getDatabaseClusterReplicationStatus must be executed on a data node of the master cluster.",
        ),
        (
            "rpc(getControllerAlias(), getMasterReplicationStatus, 0)",
            "controller1: getMasterReplicationStatus: limit must be a positive integer or -1",
        ),
        (
            "rpc(getControllerAlias(), getRecentSlaveReplicationInfo, 1)",
            "controller1: getRecentSlaveReplicationInfo takes no arguments, got 1",
        ),
        (
            "setDatabaseForClusterReplication(\"dfs://nothere\", true)",
            "dnode1: database 'dfs://nothere' does not exist",
        ),
        (
            "setDatabaseClusterReplicationExecutionSet(\"dfs://nothere\", 2)",
            "dnode1: setDatabaseClusterReplicationExecutionSet: the execution set must be 0 or 1, got 2",
        ),
    ];
    for (script, expected) in cases {
        let out = c.admin_json(script);
        assert_eq!(out.code, 1, "{script}");
        assert_eq!(out.stderr.trim(), expected, "{script}");
    }
}

#[test]
fn t80_deeply_nested_scripts_run_or_fail_cleanly() {
    let c = Cluster::start(&Spec::default());
    // The deepest tree the parser accepts evaluates without exhausting a session's stack.
    let mut deep = String::from("1");
    // 62 rounds of `-(-(...))` is just inside the parser's 256-level limit.
    for _ in 0..62 {
        deep = format!("-(-({deep}))");
    }
    let out = c.admin_json(&deep);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json(), vec![serde_json::json!(1)]);
    let mut ifs = String::from("x = 1");
    for _ in 0..120 {
        ifs = format!("if (true) {{ {ifs} }}");
    }
    let out = c.admin_json(&format!("{ifs}\nx"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Deeper than the parser allows: one clear error, and the node keeps serving.
    let too_deep = format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000));
    let out = c.console_file_at(&c.host(), ADMIN, &too_deep);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("Syntax error"), "{}", out.stderr);
    assert_eq!(c.admin_json("getNodeAlias()").code, 0);
}

#[test]
fn t90_datanodes_started_before_their_controller_register_when_it_comes() {
    let c = Cluster::start(&Spec {
        order: xrepl_tests::StartOrder::DataNodesFirst,
        ..Spec::default()
    });
    // start() returned, so every node is up; the data nodes did retry.
    let log = c.read_log("dnode1");
    assert!(
        log.contains("cannot register with the controller yet"),
        "{log}"
    );
    assert!(log.contains("registered with the controller"), "{log}");
}
