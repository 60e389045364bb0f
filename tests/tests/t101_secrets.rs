//! Secrets at rest (issue 17): a node refuses to start when its cluster key, TLS key, password
//! file or metadata folder is open to others, with exit code 1 and one line naming the path and
//! the `chmod` that fixes it; everything a running node creates is private (files 0600 or
//! stricter, folders 0700 or stricter); a slave reads its replication passwords from files.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use xrepl_tests::{bin, chmod, free_ports, mode_of, write_private, Cluster, Pair, Spec};

const EXIT: Duration = Duration::from_secs(30);

const SETUP: &str = r#"db = database("dfs://private", VALUE, 1..4)
setDatabaseForClusterReplication(db, true)
db.createPartitionedTable(table(1:0, `k`v`x, [INT, LONG, DOUBLE]), "t", `k)"#;

/// Appends 8,000 rows (2,000 a partition: column blocks larger than 4 KiB, in files, and task
/// data larger than 4 KiB, in a file) starting at `v = from`.
fn append(from: i64) -> String {
    format!(
        r#"k = take(1..4, 8000)
v = long({from}..{})
x = double(v) / 3
loadTable("dfs://private", "t").append!(table(k, v, x))"#,
        from + 7999
    )
}

const COUNT: &str = "select count(*) from loadTable(\"dfs://private\", \"t\")";

/// The last line a node's log holds (what it printed as it stopped).
fn last_line(c: &Cluster, alias: &str) -> String {
    c.read_log(alias)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string()
}

/// Starts `alias` of `c` (which must refuse to start) and answers its exit code and the
/// last line of its log.
fn refused_start(c: &mut Cluster, alias: &str) -> (i32, String) {
    if alias == "controller1" {
        c.spawn_controller();
    } else {
        c.spawn_datanode(alias);
    }
    let code = c.wait_exit(alias, EXIT);
    (code, last_line(c, alias))
}

#[test]
fn t10_a_key_file_others_can_read_stops_the_controller_and_a_data_node_with_exit_1() {
    let mut c = Cluster::start(&Spec::default());
    c.kill("controller1");
    c.kill("dnode1");
    let key = c.cfg_dir().join("cluster.key");
    chmod(&key, 0o644);
    let expected = format!(
        "error: the cluster key file {0} is readable by others (mode 0644): run chmod 600 {0}",
        key.display()
    );
    for alias in ["controller1", "dnode1"] {
        let (code, line) = refused_start(&mut c, alias);
        assert_eq!(code, 1, "{alias}: {line}");
        assert_eq!(line, expected, "{alias}");
    }
    // Group access alone is refused too.
    chmod(&key, 0o640);
    let (code, line) = refused_start(&mut c, "dnode1");
    assert_eq!(code, 1, "{line}");
    assert!(line.contains("(mode 0640): run chmod 600"), "{line}");
    // Fixed as the line says, both start and the cluster is whole again.
    chmod(&key, 0o600);
    c.spawn_controller();
    c.spawn_datanode("dnode1");
    c.wait_all_up();
    assert_eq!(c.number("1 + 1"), 2);
}

#[test]
fn t20_a_metadata_folder_or_home_others_can_open_is_refused() {
    let mut c = Cluster::start(&Spec {
        replication_mode: Some("master"),
        ..Spec::default()
    });
    c.ok(SETUP);
    c.ok(&append(0));
    c.kill("controller1");
    c.kill("dnode2");
    let data = c.cfg_dir().join("data");
    let meta = data.join("controller1").join("meta");
    chmod(&meta, 0o755);
    let (code, line) = refused_start(&mut c, "controller1");
    assert_eq!(code, 1, "{line}");
    assert_eq!(
        line,
        format!(
            "error: the metadata folder {0} is readable by others (mode 0755): run chmod 700 {0}",
            meta.display()
        )
    );
    chmod(&meta, 0o700);
    chmod(&data.join("controller1"), 0o750);
    let (code, line) = refused_start(&mut c, "controller1");
    assert_eq!(code, 1, "{line}");
    assert_eq!(
        line,
        format!(
            "error: the controller's home folder {0} is readable by others (mode 0750): run chmod 700 {0}",
            data.join("controller1").display()
        )
    );
    chmod(&data.join("controller1"), 0o700);
    let home = data.join("dnode2");
    chmod(&home, 0o755);
    let (code, line) = refused_start(&mut c, "dnode2");
    assert_eq!(code, 1, "{line}");
    assert_eq!(
        line,
        format!(
            "error: the data node's home folder {0} is readable by others (mode 0755): run chmod 700 {0}",
            home.display()
        )
    );
    chmod(&home, 0o700);
    c.spawn_controller();
    c.spawn_datanode("dnode2");
    c.wait_all_up();
    assert_eq!(c.number(COUNT), 8000);
}

/// A config folder for a controller and one data node, not started: `controller` and
/// `cluster` are extra lines of controller.cfg and cluster.cfg. Its cluster key is private.
fn config_folder(controller: &str, cluster: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    let p = free_ports(2);
    std::fs::write(
        d.path().join("cluster.nodes"),
        format!(
            "localSite,mode\n127.0.0.1:{}:controller1,controller\n127.0.0.1:{}:dnode1,datanode\n",
            p[0], p[1]
        ),
    )
    .expect("write");
    std::fs::write(
        d.path().join("controller.cfg"),
        format!("localSite=127.0.0.1:{}:controller1\n{controller}", p[0]),
    )
    .expect("write");
    std::fs::write(d.path().join("cluster.cfg"), cluster).expect("write");
    write_private(&d.path().join("cluster.key"), [7u8; 32]);
    d
}

/// Runs `binary` on the config folder `dir`; its exit code and standard error.
fn run(binary: &str, dir: &Path) -> (i32, String) {
    let mut cmd = Command::new(bin(binary));
    cmd.arg("--cfg-dir").arg(dir);
    if binary == "datanode" {
        cmd.args(["--alias", "dnode1"]);
    }
    let out = cmd.output().expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn t30_every_secret_is_checked_before_the_node_creates_anything() {
    let ssl = "enableClusterReplicationSSL=true\ntlsCertFile=node.pem\ntlsKeyFile=node.key\n";
    let controller = format!("{ssl}clusterReplicationMasterPasswordFile=master.pw\n");
    let cluster = format!(
        "clusterReplicationMode=master\n{ssl}clusterReplicationExecutionPasswordFile=exec.pw\n"
    );
    let d = config_folder(&controller, &cluster);
    let cases: [(&str, &str, &[&str]); 3] = [
        (
            "node.key",
            "the TLS private key file (tlsKeyFile)",
            &["controller", "datanode"],
        ),
        (
            "master.pw",
            "the password file (clusterReplicationMasterPasswordFile)",
            &["controller"],
        ),
        (
            "exec.pw",
            "the password file (clusterReplicationExecutionPasswordFile)",
            &["datanode"],
        ),
    ];
    for (name, what, binaries) in cases {
        let path = d.path().join(name);
        std::fs::write(&path, "anything\n").expect("write");
        chmod(&path, 0o644);
        for binary in binaries {
            let (code, stderr) = run(binary, d.path());
            assert_eq!(code, 1, "{binary} with {name} 0644: {stderr}");
            assert_eq!(
                stderr,
                format!(
                    "error: {what} {0} is readable by others (mode 0644): run chmod 600 {0}\n",
                    path.display()
                ),
                "{binary}"
            );
        }
        chmod(&path, 0o600);
    }
    // An empty password file, once private, is the config error it is (exit 2).
    write_private(&d.path().join("master.pw"), "\n");
    let (code, stderr) = run("controller", d.path());
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr
            .contains("controller.cfg:5: clusterReplicationMasterPasswordFile: the password file")
            && stderr.contains("master.pw is empty"),
        "{stderr}"
    );
    // The checks came before anything was opened or made.
    assert!(!d.path().join("data").exists());
}

/// Every file and folder under `root` (recursively, `root` included), with its mode.
fn walk(root: &Path) -> Vec<(PathBuf, u32, bool)> {
    let mut out = vec![(root.to_path_buf(), mode_of(root), true)];
    let mut i = 0;
    while i < out.len() {
        let (dir, _, is_dir) = out[i].clone();
        i += 1;
        if !is_dir {
            continue;
        }
        for e in std::fs::read_dir(&dir).expect("read_dir").flatten() {
            let p = e.path();
            let t = e.file_type().expect("file type");
            if t.is_symlink() {
                continue;
            }
            out.push((p.clone(), mode_of(&p), t.is_dir()));
        }
    }
    out
}

/// Asserts that no file or folder under the homes of `c` is open to the group or others;
/// answers how many files it saw.
fn assert_all_private(c: &Cluster) -> usize {
    let data = c.cfg_dir().join("data");
    let mut files = 0;
    let homes = std::iter::once(&c.controller).chain(c.datanodes.iter());
    for node in homes {
        let home = data.join(&node.alias);
        for (path, mode, is_dir) in walk(&home) {
            assert_eq!(
                mode & 0o077,
                0,
                "{} is {} {mode:04o}: open to others",
                path.display(),
                if is_dir { "a folder" } else { "a file" }
            );
            files += usize::from(!is_dir);
        }
    }
    files
}

#[test]
fn t40_every_file_and_folder_a_running_cluster_makes_is_private() {
    let c = Cluster::start(&Spec {
        replication_mode: Some("master"),
        ..Spec::default()
    });
    c.ok(SETUP);
    c.ok(&append(0));
    c.ok(&append(8000));
    assert_eq!(c.number(COUNT), 16000);
    let data = c.cfg_dir().join("data");
    // What there is to check: sled trees and write-ahead logs of the controller and the data
    // nodes, column block files, task data files.
    let all: Vec<PathBuf> = walk(&data).into_iter().map(|(p, _, _)| p).collect();
    let has = |what: &str, f: &dyn Fn(&Path) -> bool| {
        assert!(
            all.iter().any(|p| f(p)),
            "no {what} under {}",
            data.display()
        );
    };
    has("controller metadata", &|p| {
        p.starts_with(data.join("controller1").join("meta")) && p.is_file()
    });
    has("storage write-ahead log", &|p| {
        p.to_string_lossy().contains("storage.wal") && p.is_file()
    });
    has("column block file", &|p| {
        p.to_string_lossy().contains("storage.blocks") && p.is_file()
    });
    has("task data file", &|p| {
        p.extension().is_some_and(|e| e == "task")
    });
    let files = assert_all_private(&c);
    assert!(files > 10, "only {files} files");
    // The node logs the harness writes (as scripts/cluster.sh does) are private too.
    assert_eq!(mode_of(&c.cfg_dir().join("controller1.log")) & 0o077, 0);
}

#[test]
fn t50_a_slave_reads_its_replication_passwords_from_files_and_replicates() {
    let master = Cluster::start(&Spec {
        replication_mode: Some("master"),
        ..Spec::default()
    });
    // A puller of its own, whose password only the slave's file holds.
    master.ok(r#"createUser("puller", "from-a-file-1", false)
grant("puller", CLUSTER_REPLICATION)"#);
    let slave = Cluster::start(&Spec {
        replication_mode: Some("slave"),
        controller_cfg: format!(
            "clusterReplicationMasterCtl={}\nclusterReplicationMasterUsername=puller\nclusterReplicationMasterPasswordFile=secrets/master.pw\n",
            master.controller.site()
        ),
        cluster_cfg: "clusterReplicationExecutionPasswordFile=exec.pw\n".into(),
        files: vec![
            ("secrets/master.pw".into(), "from-a-file-1\n".into()),
            ("exec.pw".into(), "123456\n".into()),
        ],
        ..Spec::default()
    });
    let p = Pair { master, slave };
    p.master.ok(SETUP);
    p.master.ok(&append(0));
    p.wait_caught_up(Duration::from_secs(60));
    assert_eq!(p.slave.number(COUNT), 8000);
    // The slave's controller logged in to the master as the puller, with the file's password.
    let log = p.master.read_log("controller1");
    assert!(
        log.lines()
            .any(|l| l.contains("slave cluster registered") && l.contains("user=puller")),
        "{log}"
    );
    assert!(assert_all_private(&p.slave) > 0);
}
