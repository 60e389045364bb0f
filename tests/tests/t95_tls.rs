//! TLS: a cluster with `enableTLS=true` speaks TLS only, on every listener and every link
//! between its nodes; a slave with `enableClusterReplicationSSL=true` reaches its master over
//! TLS, verified against its CA. The certificates come from a CA the test makes. A client in
//! plain text, a client trusting another CA, and a slave in plain text are refused with a
//! clear error, and change nothing.

use std::time::{Duration, Instant};

use xrepl_proto::rpc::{ClientTls, PeerKind, RpcClient, RpcError};
use xrepl_tests::certs::TestCa;
use xrepl_tests::{runtime, wait_for, Cluster, Pair, Spec, ADMIN_JSON};

const SETUP: &str = r#"db = database("dfs://s", VALUE, 1..4)
t = db.createPartitionedTable(table(1:0, `k`v, [INT, INT]), "t", `k)
k = 1..4
v = k * 10
loadTable("dfs://s", "t").append!(table(k, v))"#;

/// [`SETUP`] on a master: the database is replicated from its creation on.
fn replicated_setup() -> String {
    SETUP.replacen(
        "\nt = ",
        "\nsetDatabaseForClusterReplication(db, true)\nt = ",
        1,
    )
}

const SUM: &str = "select sum(v) as s from loadTable(\"dfs://s\", \"t\")";

/// The sum a console run of [`SUM`] printed (JSON), or `None`.
fn printed_sum(stdout: &str) -> Option<i64> {
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last()?).ok()?;
    v.get(0)?.get("s")?.as_i64()
}

#[test]
fn t10_a_tls_cluster_works_end_to_end_and_refuses_plain_text_with_a_clear_error() {
    let ca = TestCa::new("t10 CA");
    let c = Cluster::start(&Spec::default().with_tls(&ca));
    // Writes span both data nodes: the coordinator's links to the other data node are TLS.
    c.ok(SETUP);
    assert_eq!(c.number(SUM), 100);
    for n in &c.datanodes {
        let out = c.console_at(&n.site(), ADMIN_JSON, SUM);
        assert_eq!(
            printed_sum(&out.stdout),
            Some(100),
            "{}: {}",
            n.alias,
            out.stderr
        );
    }

    // A console in plain text: refused at once, saying why, and nothing ran.
    let started = Instant::now();
    let out = std::process::Command::new(xrepl_tests::bin("xrepl"))
        .args(["--host", &c.host()])
        .args(ADMIN_JSON)
        .args([
            "-c",
            "loadTable(\"dfs://s\", \"t\").append!(table(1 as k, 1 as v))",
        ])
        .env_remove("XREPL_TLS_CA")
        .output()
        .expect("run xrepl");
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("TLS connections only") && stderr.contains("--tls-ca"),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "it must not hang"
    );
    // The CA may come from the environment too.
    let out = std::process::Command::new(xrepl_tests::bin("xrepl"))
        .args(["--host", &c.host()])
        .args(ADMIN_JSON)
        .args(["-c", SUM])
        .env("XREPL_TLS_CA", c.cfg_dir().join("ca.pem"))
        .output()
        .expect("run xrepl");
    assert_eq!(
        printed_sum(&String::from_utf8_lossy(&out.stdout)),
        Some(100)
    );

    // The controller listens in TLS only as well.
    let rt = runtime();
    let e = rt
        .block_on(RpcClient::connect(
            &c.controller.site(),
            PeerKind::Client,
            &ClientTls::plain(),
            1 << 20,
            Duration::from_secs(5),
        ))
        .err()
        .expect("a plain-text client of the controller is refused");
    assert!(matches!(e, RpcError::Refused { .. }), "{e}");
    assert!(e.to_string().contains("enableTLS=true"), "{e}");
    assert_eq!(c.number(SUM), 100);
}

#[test]
fn t20_a_server_whose_certificate_another_ca_signed_is_not_trusted() {
    let ca = TestCa::new("t20 CA");
    let c = Cluster::start(&Spec::default().with_tls(&ca));
    let other = TestCa::new("someone else's CA");
    let other_ca = c.cfg_dir().join("other-ca.pem");
    std::fs::write(&other_ca, other.pem()).expect("write");
    let out = std::process::Command::new(xrepl_tests::bin("xrepl"))
        .args([
            "--host",
            &c.host(),
            "--tls-ca",
            other_ca.to_str().expect("path"),
        ])
        .args(["-c", SUM])
        .output()
        .expect("run xrepl");
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("TLS handshake failed") && stderr.contains("certificate"),
        "{stderr}"
    );
    // A certificate for another host, from the right CA, is not trusted for 127.0.0.1.
    let (cert, key) = ca.issue(&["db.example.com"]);
    let rt = runtime();
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert_file, key_file) = (dir.path().join("c.pem"), dir.path().join("c.key"));
        std::fs::write(&cert_file, cert).expect("write");
        xrepl_tests::write_private(&key_file, key);
        let acceptor =
            xrepl_proto::rpc::ServerTls::acceptor(&cert_file, &key_file).expect("acceptor");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            if let Ok((s, _)) = listener.accept().await {
                let _ = acceptor.accept(s).await;
            }
        });
        let tls = ClientTls::with_ca(&c.cfg_dir().join("ca.pem")).expect("ca");
        let e = RpcClient::connect(
            &addr,
            PeerKind::Client,
            &tls,
            1 << 20,
            Duration::from_secs(5),
        )
        .await
        .err()
        .expect("refused");
        assert!(matches!(e, RpcError::Tls { .. }), "{e}");
        assert!(e.to_string().contains("certificate"), "{e}");
    });

    // A TLS client of a plain-text cluster is told what is wrong.
    let plain = Cluster::start(&Spec::default());
    let out = plain.console_at(
        &plain.host(),
        &[
            "--tls-ca",
            c.cfg_dir().join("ca.pem").to_str().expect("path"),
        ],
        "1 + 1",
    );
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("TLS handshake failed"),
        "{}",
        out.stderr
    );
    assert!(plain
        .read_log("dnode1")
        .contains("speaks plain text (enableTLS=false)"));
}

/// Starts a second dnode1 from the cluster's config folder, which must stop at once with exit
/// code 2; what it printed.
fn start_fails(c: &Cluster) -> String {
    let out = std::process::Command::new(xrepl_tests::bin("datanode"))
        .args([
            "--cfg-dir",
            c.cfg_dir().to_str().expect("path"),
            "--alias",
            "dnode1",
        ])
        .output()
        .expect("run datanode");
    assert_eq!(out.status.code(), Some(2));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn t30_bad_tls_settings_stop_the_node_with_a_clear_error() {
    let ca = TestCa::new("t30 CA");
    let spec = Spec::default().with_tls(&ca);
    let c = Cluster::start(&spec);
    // A missing key: the config loader names it.
    let cfg = std::fs::read_to_string(c.cfg_dir().join("cluster.cfg")).expect("read");
    std::fs::write(
        c.cfg_dir().join("cluster.cfg"),
        cfg.replace("tlsKeyFile=node.key\n", ""),
    )
    .expect("write");
    let stderr = start_fails(&c);
    assert!(
        stderr.contains("tlsKeyFile") && stderr.contains("required because enableTLS=true"),
        "{stderr}"
    );
    // A key file that is not a key.
    std::fs::write(c.cfg_dir().join("cluster.cfg"), &cfg).expect("write");
    std::fs::write(c.cfg_dir().join("node.key"), "not a key\n").expect("write");
    let stderr = start_fails(&c);
    assert!(
        stderr.contains("error: TLS:") && stderr.contains("node.key"),
        "{stderr}"
    );
}

#[test]
fn t40_a_slave_replicates_over_tls_and_a_plain_text_slave_is_refused() {
    let ca = TestCa::new("t40 CA");
    let ssl = "enableClusterReplicationSSL=true\n".to_string();
    let mut slave = Spec::default().with_tls(&ca);
    slave.cluster_cfg.push_str(&ssl);
    slave.controller_cfg.push_str(&ssl);
    let p = Pair::start(Spec::default().with_tls(&ca), slave);
    p.master.ok(&replicated_setup());
    p.wait_caught_up(Duration::from_secs(60));
    assert_eq!(p.slave.number(SUM), 100);

    // A master that is not TLS-only but sets enableClusterReplicationSSL takes its own
    // clients in plain text and slaves over TLS only.
    let ca = TestCa::new("t40 CA 2");
    let master = Spec {
        cluster_cfg: format!("{ssl}tlsCertFile=node.pem\ntlsKeyFile=node.key\n"),
        controller_cfg: format!("{ssl}tlsCertFile=node.pem\ntlsKeyFile=node.key\n"),
        files: ca.files(),
        ..Spec::default()
    };
    let p = Pair::start(master, Spec::default());
    p.master.ok(&replicated_setup());
    let log = wait_for("the slave's refusal", Duration::from_secs(20), || {
        let log = p.slave.read_log("controller1");
        log.contains("takes slaves over TLS only").then_some(log)
    });
    assert!(log.contains("enableClusterReplicationSSL=true"), "{log}");
    // Nothing reached the slave.
    let out = p.slave.admin_json("existsDatabase(\"dfs://s\")");
    assert_eq!(out.stdout.trim(), "false", "{}", out.stderr);
}
