//! Seeing replication at a glance: `getClusterReplicationLag` on the slave,
//! `getMasterReplicationInfo` and `getMasterReplicationSlaveLag` on the master, Prometheus
//! metrics on every node's own port (parsed by the Prometheus client's parser), the status page
//! and `setLogLevel`, against real clusters.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value as Json;
use xrepl_tests::{ints, texts, Cluster, Pair, Spec};

const CATCH_UP: Duration = Duration::from_secs(60);
const LAG: &str = "rpc(getControllerAlias(), getClusterReplicationLag)";

const SETUP: &str = r#"
db = database("dfs://mon", VALUE, 1..4)
db.createPartitionedTable(table(1:0, `id`v, [INT, DOUBLE]), "t", `id)
setDatabaseForClusterReplication(db, true)
"#;

fn append(i: usize) -> String {
    format!(
        "loadTable(\"dfs://mon\", \"t\").append!(table([1, 2, 3, 4] as id, take({i}.5, 4) as v))"
    )
}

/// An HTTP/1.1 GET of `path` on `site` with Basic credentials: status, headers, body.
fn get(site: &str, path: &str, login: Option<(&str, &str)>) -> (u16, String, String) {
    let mut s = TcpStream::connect(site).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let auth = login.map_or(String::new(), |(u, p)| {
        format!("Authorization: Basic {}\r\n", base64(&format!("{u}:{p}")))
    });
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {site}\r\n{auth}Connection: close\r\n\r\n"
    )
    .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

fn base64(s: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn admin(c: &Cluster) -> Option<(&str, &str)> {
    Some(("admin", c.admin_password.as_str()))
}

/// The metrics of `site`, parsed by the Prometheus client's OpenMetrics parser: every sample
/// as `name{labels} value` lines, sorted.
fn scrape(c: &Cluster, site: &str) -> Vec<(String, f64)> {
    let (status, head, body) = get(site, "/metrics", admin(c));
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(head.contains("application/openmetrics-text"), "{head}");
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("metrics.txt");
    std::fs::write(&file, &body).expect("write");
    let script = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for fam in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in fam.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        print(f"{s.name}{{{labels}}} {s.value}")
"#;
    let out = std::process::Command::new(xrepl_tests::pyenv_python())
        .arg("-c")
        .arg(script)
        .arg(&file)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "the parser refused the metrics: {}\n{body}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn sample(m: &[(String, f64)], key: &str) -> f64 {
    m.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no sample {key} in {m:?}"))
}

fn lag_of_set0(p: &Pair) -> Json {
    p.slave
        .rows(LAG)
        .into_iter()
        .find(|r| r["executionSet"] == 0)
        .expect("set 0")
}

#[test]
fn t10_lag_rises_while_the_slave_is_stopped_and_falls_to_zero_after_it_catches_up() {
    let mut p = Pair::start(Spec::default(), Spec::default());
    p.master.ok(SETUP);
    p.master.ok(&append(0));
    p.wait_caught_up(CATCH_UP);
    let rows = xrepl_tests::wait_for("the lag to read caught up", CATCH_UP, || {
        let rows = p.slave.rows(LAG);
        (texts(&rows, "state") == ["CAUGHT_UP", "CAUGHT_UP"]).then_some(rows)
    });
    assert_eq!(
        p.slave.header(LAG),
        [
            "executionSet",
            "lastMasterTaskId",
            "lastFinishedTaskId",
            "lagTasks",
            "lagMs",
            "oldestUnfinishedTaskId",
            "lastPullTime",
            "state"
        ]
    );
    assert_eq!(ints(&rows, "lagTasks"), [0, 0]);
    assert_eq!(ints(&rows, "lagMs"), [0, 0]);
    let last = ints(&p.master_tasks(), "taskId")
        .into_iter()
        .max()
        .unwrap_or(0);
    assert_eq!(ints(&rows, "lastMasterTaskId"), [last, last]);
    assert_eq!(ints(&rows, "lastFinishedTaskId")[0], last);

    // The master's view.
    let info = p
        .master
        .rows("rpc(getControllerAlias(), getMasterReplicationInfo)");
    assert_eq!(texts(&info, "state"), ["ENABLED"]);
    assert_eq!(ints(&info, "lastTaskId"), [last]);
    assert_eq!(ints(&info, "registeredSlaves"), [1]);

    // Stopped, the slave pulls nothing more, and its lag grows with what the master commits.
    p.slave
        .ok("rpc(getControllerAlias(), stopClusterReplication)");
    for i in 1..=3 {
        p.master.ok(&append(i));
    }
    let first = xrepl_tests::wait_for("the lag to show the master's tasks", CATCH_UP, || {
        let r = lag_of_set0(&p);
        (r["lagTasks"].as_i64()? >= 3).then_some(r)
    });
    assert!(
        first["state"]
            .as_str()
            .unwrap_or_default()
            .starts_with("DISABLED"),
        "{first:?}"
    );
    std::thread::sleep(Duration::from_millis(1_200));
    let later = lag_of_set0(&p);
    assert!(
        later["lagMs"].as_i64() > first["lagMs"].as_i64() && later["lagMs"].as_i64() >= Some(1_000),
        "the lag in ms keeps growing: {first:?} then {later:?}"
    );
    let slaves = p
        .master
        .rows("rpc(getControllerAlias(), getMasterReplicationSlaveLag)");
    // The master counts from what the slave last reported (with its last pull).
    let behind = ints(&slaves, "lagTasks");
    assert!(behind == [3] || behind == [4], "{slaves:?}");
    assert_eq!(texts(&slaves, "state"), ["ACTIVE"]);

    // Metrics move with it, on both controllers and on a data node.
    let m = scrape(&p.slave, &p.slave.controller.site());
    assert_eq!(
        sample(&m, "xrepl_replication_lag_tasks{execution_set=0}"),
        3.0
    );
    assert!(sample(&m, "xrepl_replication_lag_seconds{execution_set=0}") >= 1.0);
    assert_eq!(
        sample(&m, "xrepl_replication_state{role=slave,state=DISABLED}"),
        1.0
    );
    let finished_before = sample(&m, "xrepl_replication_tasks_finished_total{}");
    let mm = scrape(&p.master, &p.master.controller.site());
    assert_eq!(
        sample(&mm, "xrepl_replication_last_task_id{}"),
        (last + 3) as f64
    );
    let key = format!(
        "xrepl_replication_slave_lag_tasks{{slave={}}}",
        p.slave.controller.site()
    );
    assert!((3.0..=4.0).contains(&sample(&mm, &key)));
    assert_eq!(
        sample(&mm, "xrepl_replication_state{role=master,state=ENABLED}"),
        1.0
    );
    let dm = scrape(&p.slave, &p.slave.datanodes[0].site());
    assert!(sample(&dm, "process_resident_memory_bytes{}") > 0.0);
    // Every metric the shipped Grafana dashboard draws is served by some node.
    let served: String = [
        (&p.slave, p.slave.controller.site()),
        (&p.master, p.master.controller.site()),
        (&p.slave, p.slave.datanodes[0].site()),
    ]
    .iter()
    .map(|(c, site)| get(site, "/metrics", admin(c)).2)
    .collect();
    let dashboard = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/grafana-dashboard.json"),
    )
    .expect("docs/grafana-dashboard.json");
    let drawn: std::collections::BTreeSet<&str> = dashboard
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("xrepl_") || w.starts_with("process_"))
        .collect();
    assert!(drawn.len() >= 10, "{drawn:?}");
    for name in drawn {
        let family = name.strip_suffix("_total").unwrap_or(name);
        assert!(
            served.contains(&format!("# TYPE {family} ")),
            "the dashboard draws {name}, which no node serves"
        );
    }
    assert!(sample(&dm, "process_cpu_seconds_total{}") > 0.0);

    // A restart of the slave controller keeps it: the unfinished tasks are durable, and the
    // master's position is asked for again within a second.
    p.slave.kill("controller1");
    p.slave.spawn_controller();
    p.slave.wait_all_up();
    let again = xrepl_tests::wait_for("the lag after a restart", CATCH_UP, || {
        let r = lag_of_set0(&p);
        (r["lagTasks"].as_i64()? >= 3).then_some(r)
    });
    assert!(
        again["lagMs"].as_i64() >= later["lagMs"].as_i64(),
        "{later:?} then, after a restart, {again:?}"
    );

    // Started again, it catches up and the lag falls to 0.
    p.slave
        .ok("rpc(getControllerAlias(), startClusterReplication)");
    p.wait_caught_up(CATCH_UP);
    let r = xrepl_tests::wait_for("the lag to fall to 0", CATCH_UP, || {
        let r = lag_of_set0(&p);
        (r["lagTasks"] == 0 && r["lagMs"] == 0).then_some(r)
    });
    assert_eq!(r["state"], "CAUGHT_UP");
    let m = scrape(&p.slave, &p.slave.controller.site());
    assert_eq!(
        sample(&m, "xrepl_replication_lag_tasks{execution_set=0}"),
        0.0
    );
    assert!(
        sample(&m, "xrepl_replication_tasks_finished_total{}") >= finished_before + 3.0,
        "the finished counter moved"
    );

    // The master cannot be reached: what it committed since is not known, so the lag grows
    // from its last answer, and the state says why.
    p.master.kill("controller1");
    let first = xrepl_tests::wait_for("the lag to say the master is unreachable", CATCH_UP, || {
        let r = lag_of_set0(&p);
        r["state"]
            .as_str()?
            .starts_with("MASTER_UNREACHABLE")
            .then_some(r)
    });
    std::thread::sleep(Duration::from_millis(1_200));
    let later = lag_of_set0(&p);
    assert!(
        later["lagMs"].as_i64() > first["lagMs"].as_i64(),
        "{first:?} then {later:?}"
    );
    let m = scrape(&p.slave, &p.slave.controller.site());
    assert_eq!(sample(&m, "xrepl_replication_master_reachable{}"), 0.0);
}

#[test]
fn t20_after_a_skip_the_lag_is_zero_once_the_rest_is_applied() {
    let mut p = Pair::start(Spec::default(), Spec::default());
    p.master.ok(SETUP);
    p.wait_caught_up(CATCH_UP);
    // The slave's replays wait 4 s before their commit: the next task is received and not yet
    // applied when it is skipped.
    let hold = [("XREPL_TEST_PAUSE_AT", "replay_before_decide:4000")];
    for n in ["dnode1", "dnode2"] {
        p.slave.kill(n);
        p.slave.spawn_datanode_env(n, &hold);
    }
    p.slave.wait_all_up();
    p.master.ok(&append(1));
    let last = ints(&p.master_tasks(), "taskId")
        .into_iter()
        .max()
        .unwrap_or(0);
    xrepl_tests::wait_for("the slave to receive the append", CATCH_UP, || {
        (lag_of_set0(&p)["oldestUnfinishedTaskId"].as_i64()? == last).then_some(())
    });
    p.slave.ok(&format!(
        "rpc(getControllerAlias(), stopClusterReplication)\nrpc(getControllerAlias(), skipClusterReplicationTask, {last})\nrpc(getControllerAlias(), startClusterReplication)"
    ));
    p.master.ok(&append(2));
    p.wait_caught_up(CATCH_UP);
    let r = xrepl_tests::wait_for("the lag to fall to 0 after the skip", CATCH_UP, || {
        let r = lag_of_set0(&p);
        (r["lagTasks"] == 0 && r["lagMs"] == 0).then_some(r)
    });
    assert_eq!(r["lastMasterTaskId"].as_i64(), Some(last + 1), "{r:?}");
}

#[test]
fn t30_the_status_page_needs_a_login_and_draws_the_lag() {
    let p = Pair::start(Spec::default(), Spec::default());
    p.master.ok(SETUP);
    p.master.ok("createUser(\"watcher\", \"watch123\")");
    p.master.ok(&append(1));
    p.wait_caught_up(CATCH_UP);
    let site = p.slave.controller.site();
    // No login, a wrong one: asked to log in. A user who is not an administrator may read the
    // metrics, not the page.
    let (status, head, _) = get(&site, "/", None);
    assert_eq!(status, 401);
    assert!(
        head.contains("WWW-Authenticate: Basic") || head.contains("www-authenticate: Basic"),
        "{head}"
    );
    assert_eq!(get(&site, "/", Some(("admin", "wrong"))).0, 401);
    let msite = p.master.controller.site();
    assert_eq!(
        get(&msite, "/metrics", Some(("watcher", "watch123"))).0,
        200
    );
    let (status, _, body) = get(&msite, "/", Some(("watcher", "watch123")));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("administrator"), "{body}");
    assert_eq!(get(&site, "/nowhere", admin(&p.slave)).0, 404);

    // The page: one document, no external assets, with the chart.
    let (status, head, page) = get(&site, "/", admin(&p.slave));
    assert_eq!(status, 200, "{head}");
    assert!(page.contains("<svg id=\"lag-chart\""), "{page}");
    assert!(!page.contains("src=\"http") && !page.contains("href=\"http"));
    // What it draws: the lag now and its samples.
    let (status, _, json) = get(&site, "/status.json", admin(&p.slave));
    assert_eq!(status, 200);
    let st: Json = serde_json::from_str(&json).expect("json");
    assert_eq!(st["slave"]["lag"].as_array().map(Vec::len), Some(2), "{st}");
    assert!(
        !st["slave"]["history"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .is_empty(),
        "a sample is kept at start: {st}"
    );
    let (_, _, mjson) = get(&msite, "/status.json", admin(&p.master));
    let mst: Json = serde_json::from_str(&mjson).expect("json");
    assert_eq!(mst["master"]["info"]["state"], "ENABLED", "{mst}");

    // In a real browser, where the machine has one: the page loads, runs and draws a
    // non-empty lag series.
    let chromium = std::path::Path::new("/usr/bin/chromium");
    if chromium.exists() {
        let profile = tempfile::tempdir().expect("profile");
        // `timeout`: a browser that hangs fails the test instead of holding it.
        let out = std::process::Command::new("timeout")
            .arg("90")
            .arg(chromium)
            .args([
                "--headless",
                "--disable-dev-shm-usage",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--virtual-time-budget=8000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("http://admin:{}@{site}/", p.slave.admin_password))
            .output()
            .expect("run chromium");
        let dom = String::from_utf8_lossy(&out.stdout);
        let points: Vec<i64> = dom
            .split("class=\"series lag-ms s0\" data-points=\"")
            .skip(1)
            .filter_map(|s| s.split('"').next()?.parse().ok())
            .collect();
        assert!(
            points.first().is_some_and(|n| *n > 0),
            "the chart's lag series in the browser: {dom}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn t40_set_log_level_changes_a_running_nodes_logging() {
    let p = Pair::start(Spec::default(), Spec::default());
    // The state changes are logged: turning replication on, with its task and database.
    p.master.ok(SETUP);
    let log = p.master.read_log("controller1");
    assert!(
        log.lines()
            .any(|l| l.contains("replication turned on for the database")
                && l.contains("dfs://mon")
                && l.contains("task_id")),
        "{log}"
    );
    p.master.ok("setLogLevel(\"DEBUG\")");
    p.master
        .ok("rpc(getControllerAlias(), setLogLevel, \"WARNING\")");
    let log = p.master.read_log("dnode1");
    assert!(log.contains("log level changed by setLogLevel"), "{log}");
    // The controller logs WARNING and above from now on: a login (INFO) is not logged.
    let before = p.master.read_log("controller1").len();
    p.master.ok("1 + 1");
    let log = p.master.read_log("controller1");
    let after = &log[before..];
    assert!(!after.contains(" INFO "), "{after}");
    let bad = p.master.admin_json("setLogLevel(\"LOUD\")");
    assert!(
        bad.stderr.contains("unknown log level 'LOUD'"),
        "{}",
        bad.stderr
    );
    p.master.ok("createUser(\"u1\", \"pass123\")");
    let out = p.master.console_at(
        &p.master.host(),
        &["--user", "u1", "--password", "pass123", "--format", "json"],
        "setLogLevel(\"DEBUG\")",
    );
    assert!(out.stderr.contains("administrator"), "{}", out.stderr);
}

#[test]
fn t50_on_a_tls_cluster_the_metrics_are_served_over_https_only() {
    let ca = xrepl_tests::certs::TestCa::new("t50 CA");
    let c = Cluster::start(&Spec::default().with_tls(&ca));
    let site = c.controller.site();
    let ca_file = c.client_ca.clone().expect("the CA file");
    let curl = |url: &str| {
        std::process::Command::new("curl")
            .args(["-sS", "--max-time", "20", "-u"])
            .arg(format!("admin:{}", c.admin_password))
            .arg("--cacert")
            .arg(&ca_file)
            .arg(url)
            .output()
            .expect("run curl")
    };
    let out = curl(&format!("https://{site}/metrics"));
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && body.contains("xrepl_build_info{") && body.contains("# EOF"),
        "{body}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Plain HTTP would carry the password in clear: refused.
    let plain = curl(&format!("http://{site}/metrics"));
    assert!(!plain.status.success(), "plain HTTP was served");
    let dn = c.datanodes[0].site();
    let out = curl(&format!("https://{dn}/metrics"));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("process_resident_memory_bytes"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
