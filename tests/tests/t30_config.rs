//! A bad configuration stops a process at start with exit code 2 and one line naming the file,
//! the line and the key.

use std::process::Command;

use xrepl_tests::{bin, free_ports};

fn write_set(dir: &std::path::Path, controller: &str, cluster: &str) -> (u16, u16) {
    let p = free_ports(2);
    std::fs::write(
        dir.join("cluster.nodes"),
        format!(
            "localSite,mode\n127.0.0.1:{}:controller1,controller\n127.0.0.1:{}:dnode1,datanode\n",
            p[0], p[1]
        ),
    )
    .expect("write");
    std::fs::write(
        dir.join("controller.cfg"),
        format!("localSite=127.0.0.1:{}:controller1\n{controller}", p[0]),
    )
    .expect("write");
    std::fs::write(dir.join("cluster.cfg"), cluster).expect("write");
    (p[0], p[1])
}

fn run(binary: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(bin(binary)).args(args).output().expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn t10_bad_files_stop_each_process_with_exit_code_2_and_one_line() {
    let d = tempfile::tempdir().expect("tempdir");
    let dir = d.path().to_str().expect("utf-8");
    let cases = [
        ("clusterReplicationSlaveNum=many\n", "", "controller", "controller.cfg:2: clusterReplicationSlaveNum: expected a whole number, got 'many'"),
        ("", "clusterReplicationMode=primary\n", "controller", "cluster.cfg:1: clusterReplicationMode: expected master or slave, got 'primary'"),
        ("", "clusterReplicationMode=slave\n", "controller", "controller.cfg: clusterReplicationMasterCtl: required because cluster.cfg sets clusterReplicationMode=slave"),
        ("", "# ok\nheartbeatIntervalMs=fast\n", "datanode", "cluster.cfg:2: heartbeatIntervalMs: expected a whole number, got 'fast'"),
        ("", "typoKey=1\n", "datanode", "cluster.cfg:1: typoKey: unknown key"),
    ];
    for (controller, cluster, binary, expected) in cases {
        write_set(d.path(), controller, cluster);
        let args: Vec<&str> = match binary {
            "controller" => vec!["--cfg-dir", dir],
            _ => vec!["--cfg-dir", dir, "--alias", "dnode1"],
        };
        let (code, stderr) = run(binary, &args);
        assert_eq!(code, 2, "{binary} with {expected}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line: {stderr}");
        assert!(
            lines[0].starts_with("error: ") && lines[0].ends_with(expected),
            "{stderr}"
        );
        assert!(
            lines[0].contains(dir),
            "the line names the file's path: {stderr}"
        );
    }
    // Nothing was created by the refused starts.
    assert!(!d.path().join("data").exists());
}

#[test]
fn t20_unknown_alias_is_refused() {
    let d = tempfile::tempdir().expect("tempdir");
    write_set(d.path(), "", "");
    let (code, stderr) = run(
        "datanode",
        &[
            "--cfg-dir",
            d.path().to_str().expect("utf-8"),
            "--alias",
            "dnode9",
        ],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("cluster.nodes: dnode9: no data node with this alias"),
        "{stderr}"
    );
}
