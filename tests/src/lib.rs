//! Harness for multi-process tests: real `controller` and `datanode` binaries on 127.0.0.1,
//! configured from generated files in a temporary directory, driven through the real `xrepl`
//! console (or the RPC client), and killed when the test ends. The in-process tier (a whole
//! cluster as tasks of the test's own runtime) is `tests/support/inproc.rs`, a module of the
//! tests that use it, so that only they link the controller and the data node.
//!
//! The binaries must be built first (`cargo build --bins`, which `scripts/test.sh` does); they
//! are looked up in `$XREPL_BIN_DIR`, else beside the test executable's `target/<profile>/`.

pub mod certs;
pub mod chaos;
pub mod proxy;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use xrepl_core::cluster_key::ClusterKey;

/// Console arguments that log in as the default administrator.
pub const ADMIN: &[&str] = &["--user", "admin", "--password", "123456"];
/// [`ADMIN`] with JSON output.
pub const ADMIN_JSON: &[&str] = &[
    "--user",
    "admin",
    "--password",
    "123456",
    "--format",
    "json",
];

/// How a test cluster is configured.
#[derive(Debug, Clone)]
pub struct Spec {
    pub datanodes: usize,
    pub heartbeat_interval_ms: u64,
    pub heartbeat_timeout_ms: u64,
    /// `clusterReplicationMode`, if any.
    pub replication_mode: Option<&'static str>,
    /// Extra lines for cluster.cfg and controller.cfg.
    pub cluster_cfg: String,
    pub controller_cfg: String,
    pub order: StartOrder,
    /// Files written into the config folder before any process starts (certificates, keys,
    /// password files), mode 0600; a name may hold folders, made 0700.
    pub files: Vec<(String, String)>,
    /// A CA file of the config folder the console and [`Cluster::member`] trust: they
    /// connect over TLS.
    pub client_ca: Option<String>,
    /// The administrator's password the harness logs in with (`adminPasswordFile`).
    pub admin_password: String,
}

impl Spec {
    /// This spec with TLS on every listener and link of the cluster, with certificates of
    /// `ca` (see [`certs::TestCa::files`]).
    pub fn with_tls(self, ca: &certs::TestCa) -> Spec {
        Spec {
            cluster_cfg: format!("{}{}", certs::TLS_CFG, self.cluster_cfg),
            controller_cfg: format!("{}{}", certs::TLS_CFG, self.controller_cfg),
            files: ca.files(),
            client_ca: Some("ca.pem".into()),
            ..self
        }
    }
}

/// Which processes [`Cluster::start`] launches first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOrder {
    ControllerFirst,
    /// The data nodes, then (after a pause) the controller: registration must be retried.
    DataNodesFirst,
}

impl Default for Spec {
    fn default() -> Spec {
        Spec {
            datanodes: 2,
            heartbeat_interval_ms: 100,
            heartbeat_timeout_ms: 1_000,
            replication_mode: None,
            cluster_cfg: String::new(),
            controller_cfg: String::new(),
            order: StartOrder::ControllerFirst,
            files: Vec::new(),
            client_ca: None,
            admin_password: "123456".into(),
        }
    }
}

/// One process of a test cluster.
pub struct Node {
    pub alias: String,
    pub port: u16,
    child: Option<Child>,
}

impl Node {
    pub fn site(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// A running cluster; every process is killed when it drops.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub controller: Node,
    pub datanodes: Vec<Node>,
    /// The CA file the console is given (`--tls-ca`), on a TLS cluster.
    pub client_ca: Option<PathBuf>,
    /// The administrator's password [`Cluster::ok`] and the other helpers log in with.
    pub admin_password: String,
}

/// Writes `contents` as the whole of the file at `path`, mode 0600 (also when the file was
/// there with another mode): how the harness writes keys, certificates and logs, which a node
/// refuses to start with when others can read them.
pub fn write_private(path: &Path, contents: impl AsRef<[u8]>) {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .unwrap_or_else(|e| panic!("cannot chmod 600 {}: {e}", path.display()));
    f.write_all(contents.as_ref())
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// The permission bits of `path` (`0o7777` of its mode).
pub fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("cannot stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Sets the permission bits of `path` to `mode`.
pub fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("cannot chmod {mode:o} {}: {e}", path.display()));
}

/// Where the binaries are.
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XREPL_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .expect("target dir")
}

pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: build the binaries first with `cargo build --bins` (scripts/test.sh does it)",
        p.display()
    );
    p
}

/// Ports tests take from: below Linux's ephemeral range (32768 and up), so that no
/// connection's local port collides with a test node's.
const PORT_RANGE: std::ops::Range<u16> = 20_000..32_000;
/// How long a claimed port stays reserved for the test that claimed it.
const PORT_CLAIM: Duration = Duration::from_secs(600);

/// `n` free TCP ports on 127.0.0.1, all distinct, and reserved across test processes:
/// a test that kills a node and starts it again finds its port still its own, never taken
/// meanwhile by another test running in parallel. A claim is a file in
/// `$TMPDIR/xrepl-test-ports/`, created exclusively and ignored after [`PORT_CLAIM`].
pub fn free_ports(n: usize) -> Vec<u16> {
    let dir = std::env::temp_dir().join("xrepl-test-ports");
    std::fs::create_dir_all(&dir).expect("port claim folder");
    let span = u32::from(PORT_RANGE.end - PORT_RANGE.start);
    let seed = std::process::id().wrapping_mul(2_654_435_761).wrapping_add(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0),
    );
    let mut out = Vec::new();
    for i in 0..span {
        if out.len() == n {
            break;
        }
        let port = PORT_RANGE.start + ((seed.wrapping_add(i * 7)) % span) as u16;
        let claim = dir.join(port.to_string());
        let stale = std::fs::metadata(&claim)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().unwrap_or_default() > PORT_CLAIM);
        if stale {
            let _ = std::fs::remove_file(&claim);
        }
        if std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&claim)
            .is_err()
        {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            out.push(port);
        }
    }
    assert_eq!(out.len(), n, "not enough free ports in {PORT_RANGE:?}");
    out
}

/// The interpreter of `target/pyenv`, which `scripts/python-env.sh` makes (the target folder
/// of this test binary, `<target>/<profile>/deps/<test>`, so `$CARGO_TARGET_DIR` is
/// respected). Panics when it is missing: the tests must not pass without running.
pub fn pyenv_python() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's executable");
    // <target>/<profile>/deps/<exe>, or <target>/<triple>/<profile>/deps/<exe>.
    let candidates: Vec<PathBuf> = exe
        .ancestors()
        .skip(3)
        .take(2)
        .map(|t| t.join("pyenv").join("bin").join("python"))
        .collect();
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "{} is missing: run scripts/python-env.sh (scripts/test.sh does), which installs \
                 the Python packages of the tests",
                candidates[0].display()
            )
        })
}

/// Polls `f` every 50 ms until it returns `Some`, or panics after `limit` naming `what`.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a console run printed.
#[derive(Debug)]
pub struct ConsoleOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl ConsoleOutput {
    pub fn from(o: Output) -> ConsoleOutput {
        ConsoleOutput {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).to_string(),
            stderr: String::from_utf8_lossy(&o.stderr).to_string(),
        }
    }

    /// Each stdout line parsed as JSON (for `--format json`).
    pub fn json(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
            .collect()
    }
}

impl Cluster {
    /// Writes the config files and starts every process; returns when all are up.
    pub fn start(spec: &Spec) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let ports = free_ports(spec.datanodes + 1);
        let controller = Node {
            alias: "controller1".into(),
            port: ports[0],
            child: None,
        };
        let datanodes: Vec<Node> = (1..=spec.datanodes)
            .map(|i| Node {
                alias: format!("dnode{i}"),
                port: ports[i],
                child: None,
            })
            .collect();
        let mut nodes = format!(
            "localSite,mode\n127.0.0.1:{}:controller1,controller\n",
            ports[0]
        );
        for n in &datanodes {
            nodes.push_str(&format!("127.0.0.1:{}:{},datanode\n", n.port, n.alias));
        }
        std::fs::write(dir.path().join("cluster.nodes"), nodes).expect("write");
        for (name, text) in &spec.files {
            let path = dir.path().join(name);
            if let Some(parent) = path.parent() {
                xrepl_core::secrets::create_private_dir(parent).expect("a folder of the spec");
            }
            write_private(&path, text);
        }
        let client_ca = spec.client_ca.as_ref().map(|f| dir.path().join(f));
        std::fs::write(
            dir.path().join("controller.cfg"),
            format!(
                "localSite=127.0.0.1:{}:controller1\nheartbeatTimeoutMs={}\n{}",
                ports[0], spec.heartbeat_timeout_ms, spec.controller_cfg
            ),
        )
        .expect("write");
        let mode = spec
            .replication_mode
            .map(|m| format!("clusterReplicationMode={m}\n"))
            .unwrap_or_default();
        std::fs::write(
            dir.path().join("cluster.cfg"),
            format!(
                "heartbeatIntervalMs={}\n{mode}{}",
                spec.heartbeat_interval_ms, spec.cluster_cfg
            ),
        )
        .expect("write");
        // Each cluster its own key, as `scripts/cluster.sh start` makes one (mode 0600).
        write_private(
            &dir.path().join(xrepl_core::config::CLUSTER_KEY),
            ClusterKey::generate_bytes(),
        );
        let mut c = Cluster {
            dir,
            controller,
            datanodes,
            client_ca,
            admin_password: spec.admin_password.clone(),
        };
        let aliases: Vec<String> = c.datanodes.iter().map(|n| n.alias.clone()).collect();
        match spec.order {
            StartOrder::ControllerFirst => {
                c.spawn_controller();
                aliases.iter().for_each(|a| c.spawn_datanode(a));
            }
            StartOrder::DataNodesFirst => {
                aliases.iter().for_each(|a| c.spawn_datanode(a));
                // Long enough for each data node to fail a few registrations.
                std::thread::sleep(Duration::from_millis(700));
                c.spawn_controller();
            }
        }
        c.wait_all_up();
        c
    }

    pub fn cfg_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The cluster's key (what its data nodes prove to each other and to the controller).
    pub fn key(&self) -> ClusterKey {
        ClusterKey::load(&self.dir.path().join(xrepl_core::config::CLUSTER_KEY))
            .expect("cluster key")
    }

    /// How a client connects to this cluster: over TLS trusting its CA, or in plain text.
    pub fn client_tls(&self) -> xrepl_proto::rpc::ClientTls {
        match &self.client_ca {
            Some(ca) => xrepl_proto::rpc::ClientTls::with_ca(ca).expect("the test CA"),
            None => xrepl_proto::rpc::ClientTls::plain(),
        }
    }

    /// A connection to `site` (one of this cluster's nodes) as a member: it proves the key.
    pub async fn member(&self, site: &str) -> xrepl_proto::rpc::RpcClient {
        xrepl_proto::rpc::RpcClient::connect_member(
            site,
            &self.key(),
            &self.client_tls(),
            1 << 20,
            Duration::from_secs(5),
        )
        .await
        .unwrap_or_else(|e| panic!("a member's connection to {site}: {e}"))
    }

    /// A node's log file (mode 0600, as `scripts/cluster.sh` makes them), opened to append.
    fn log(&self, alias: &str) -> std::fs::File {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(self.dir.path().join(format!("{alias}.log")))
            .expect("log file")
    }

    /// A node's log so far (for assertions and failure messages).
    pub fn read_log(&self, alias: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{alias}.log"))).unwrap_or_default()
    }

    pub fn spawn_controller(&mut self) {
        let log = self.log("controller1");
        let child = Command::new(bin("controller"))
            .arg("--cfg-dir")
            .arg(self.dir.path())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn controller");
        self.controller.child = Some(child);
    }

    pub fn spawn_datanode(&mut self, alias: &str) {
        self.spawn_datanode_env(alias, &[]);
    }

    /// Starts a data node with extra environment variables (e.g. `XREPL_TEST_CRASH_AT`).
    pub fn spawn_datanode_env(&mut self, alias: &str, env: &[(&str, &str)]) {
        let log = self.log(alias);
        let child = Command::new(bin("datanode"))
            .envs(env.iter().copied())
            .arg("--cfg-dir")
            .arg(self.dir.path())
            .arg("--alias")
            .arg(alias)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn datanode");
        self.node_mut(alias).child = Some(child);
    }

    fn node_mut(&mut self, alias: &str) -> &mut Node {
        if alias == self.controller.alias {
            return &mut self.controller;
        }
        self.datanodes
            .iter_mut()
            .find(|n| n.alias == alias)
            .unwrap_or_else(|| panic!("no node {alias}"))
    }

    /// Waits until a node's process has exited by itself (e.g. at a crash point).
    pub fn wait_exit(&mut self, alias: &str, limit: Duration) -> i32 {
        let node = self.node_mut(alias);
        let child = node.child.as_mut().expect("running");
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                node.child = None;
                return status.code().unwrap_or(-1);
            }
            assert!(
                start.elapsed() < limit,
                "{alias} did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILLs a node and reaps it.
    pub fn kill(&mut self, alias: &str) {
        if let Some(mut c) = self.node_mut(alias).child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Site of the first data node, where the console connects by default.
    pub fn host(&self) -> String {
        self.datanodes[0].site()
    }

    /// The console command, with `--tls-ca` on a TLS cluster.
    pub fn console(&self) -> Command {
        let mut c = Command::new(bin("xrepl"));
        c.env_remove("XREPL_TLS_CA");
        if let Some(ca) = &self.client_ca {
            c.arg("--tls-ca").arg(ca);
        }
        c
    }

    /// Runs the console against `host` with `args` and the script `-c script`.
    pub fn console_at(&self, host: &str, args: &[&str], script: &str) -> ConsoleOutput {
        let out = self
            .console()
            .arg("--host")
            .arg(host)
            .args(args)
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .output()
            .expect("run xrepl");
        ConsoleOutput::from(out)
    }

    /// Runs the console with the script in a file (`xrepl ... FILE`), for scripts too long
    /// for a command-line argument.
    pub fn console_file_at(&self, host: &str, args: &[&str], script: &str) -> ConsoleOutput {
        let path = self.dir.path().join("script.dos");
        std::fs::write(&path, script).expect("write script");
        let out = self
            .console()
            .arg("--host")
            .arg(host)
            .args(args)
            .arg(&path)
            .stdin(Stdio::null())
            .output()
            .expect("run xrepl");
        ConsoleOutput::from(out)
    }

    /// Runs a script as admin on the first data node and returns its JSON outputs; panics
    /// (with the console's stderr) when a statement fails.
    pub fn ok(&self, script: &str) -> Vec<serde_json::Value> {
        let out = self.admin_json(script);
        assert_eq!(
            out.code, 0,
            "script failed:\n{script}\nstderr: {}",
            out.stderr
        );
        out.json()
    }

    /// The single number a script prints last (e.g. `select count(*) ...`).
    pub fn number(&self, script: &str) -> i64 {
        let values = self.ok(script);
        let last = values.last().expect("an output");
        let v = match last {
            serde_json::Value::Array(rows) => rows
                .first()
                .and_then(|r| r.as_object())
                .and_then(|o| o.values().next().cloned())
                .unwrap_or(serde_json::Value::Null),
            other => other.clone(),
        };
        v.as_i64()
            .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .unwrap_or_else(|| panic!("not a whole number: {last}"))
    }

    /// Runs a script as admin on the first data node, printing JSON.
    pub fn admin_json(&self, script: &str) -> ConsoleOutput {
        let password = self.admin_password.clone();
        let args = [
            "--user",
            "admin",
            "--password",
            &password,
            "--format",
            "json",
        ];
        self.console_at(&self.host(), &args, script)
    }

    /// `getClusterPerf()` as (name, state) pairs, or `None` when the console failed.
    pub fn node_states(&self) -> Option<Vec<(String, String)>> {
        let out = self.admin_json("getClusterPerf()");
        if out.code != 0 {
            return None;
        }
        let rows = out.json().into_iter().next()?;
        Some(
            rows.as_array()?
                .iter()
                .map(|r| {
                    (
                        r["name"].as_str().unwrap_or_default().to_string(),
                        r["state"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect(),
        )
    }

    pub fn state_of(&self, alias: &str) -> Option<String> {
        self.node_states()?
            .into_iter()
            .find(|(n, _)| n == alias)
            .map(|(_, s)| s)
    }

    /// Waits until `getClusterPerf()` shows every node up.
    pub fn wait_all_up(&self) {
        let total = self.datanodes.len() + 1;
        let start = Instant::now();
        loop {
            let out = self.admin_json("getClusterPerf()");
            let states = (out.code == 0).then(|| self.node_states()).flatten();
            if states.is_some_and(|s| s.len() == total && s.iter().all(|(_, s)| s == "up")) {
                return;
            }
            if start.elapsed() > Duration::from_secs(20) {
                let tail = |alias: &str| {
                    let log = self.read_log(alias);
                    let lines: Vec<&str> = log.lines().rev().take(8).collect();
                    format!("--- {alias} (newest first)\n{}", lines.join("\n"))
                };
                panic!(
                    "timed out after 20s waiting for every node up; the console said: {}{}\n{}\n{}",
                    out.stdout,
                    out.stderr,
                    tail("controller1"),
                    tail("dnode1")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let aliases: Vec<String> = std::iter::once(&self.controller)
            .chain(self.datanodes.iter())
            .map(|n| n.alias.clone())
            .collect();
        for a in aliases {
            self.kill(&a);
        }
    }
}

/// Reads until the peer closes; true when it closed within `limit`.
pub fn closed_by_peer(s: &mut std::net::TcpStream, limit: Duration) -> bool {
    use std::io::Read;
    s.set_read_timeout(Some(limit)).expect("timeout");
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// One length-prefixed frame carrying `body`, as it goes on the wire.
pub fn framed(kind: xrepl_proto::rpc::frame::FrameKind, body: &[u8]) -> Vec<u8> {
    let f = &xrepl_proto::rpc::frame::split(kind, 0, body, 1 << 20)[0];
    let mut out = (f.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(f);
    out
}

/// A tokio runtime for tests that call async clients from plain test functions.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The values of column `name` of JSON rows.
pub fn column<'a>(rows: &'a [serde_json::Value], name: &str) -> Vec<&'a serde_json::Value> {
    rows.iter().map(|r| &r[name]).collect()
}

/// Column `name` of JSON rows as integers (panics on anything else).
pub fn ints(rows: &[serde_json::Value], name: &str) -> Vec<i64> {
    column(rows, name)
        .iter()
        .map(|v| v.as_i64().unwrap_or_else(|| panic!("{name}: {v}")))
        .collect()
}

/// Column `name` of JSON rows as text (`""` for anything else).
pub fn texts(rows: &[serde_json::Value], name: &str) -> Vec<String> {
    column(rows, name)
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect()
}

impl Cluster {
    /// The rows of the table the last statement of `script` prints (as admin, JSON).
    pub fn rows(&self, script: &str) -> Vec<serde_json::Value> {
        let out = self.ok(script);
        out.last()
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_else(|| panic!("not a table: {out:?}"))
    }

    /// The column names of the table a script prints, in order (from the text output).
    pub fn header(&self, script: &str) -> Vec<String> {
        let out = self.console_at(&self.host(), ADMIN, script);
        assert_eq!(out.code, 0, "{}", out.stderr);
        out.stdout
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }
}

/// A master cluster and a slave cluster that pulls from it; both are killed when it drops.
pub struct Pair {
    pub master: Cluster,
    pub slave: Cluster,
}

impl Pair {
    /// Starts the master from `master` and the slave from `slave` (their replication modes and
    /// the slave's `clusterReplicationMasterCtl` are set here).
    pub fn start(master: Spec, slave: Spec) -> Pair {
        let m = Cluster::start(&Spec {
            replication_mode: Some("master"),
            ..master
        });
        let s = Cluster::start(&Spec {
            replication_mode: Some("slave"),
            controller_cfg: format!(
                "clusterReplicationMasterCtl={}\n{}",
                m.controller.site(),
                slave.controller_cfg
            ),
            ..slave
        });
        Pair {
            master: m,
            slave: s,
        }
    }

    /// `getMasterReplicationStatus()` rows.
    pub fn master_tasks(&self) -> Vec<serde_json::Value> {
        self.master
            .rows("rpc(getControllerAlias(), getMasterReplicationStatus)")
    }

    /// `getSlaveReplicationStatus()` rows.
    pub fn slave_tasks(&self) -> Vec<serde_json::Value> {
        self.slave
            .rows("rpc(getControllerAlias(), getSlaveReplicationStatus)")
    }

    /// Waits until the slave has finished every task the master has made; returns the last
    /// task id.
    pub fn wait_caught_up(&self, limit: Duration) -> i64 {
        let last = ints(&self.master_tasks(), "taskId")
            .into_iter()
            .max()
            .unwrap_or(0);
        let start = Instant::now();
        let mut seen;
        loop {
            let out = self
                .slave
                .admin_json("rpc(getControllerAlias(), getSlaveReplicationStatus)");
            if out.code == 0 {
                if let Some(rows) = out.json().last().and_then(|v| v.as_array()).cloned() {
                    let done = ints(&rows, "taskId").into_iter().max().unwrap_or(0) >= last
                        && texts(&rows, "state").iter().all(|s| s == "FINISHED");
                    if done {
                        return last;
                    }
                }
            }
            seen = out.stdout + &out.stderr;
            if start.elapsed() > limit {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // The last lines of every slave process's log, newest first, without the logins of
        // the status polls above.
        let tail = |alias: &str| {
            let log = self.slave.read_log(alias);
            let lines: Vec<&str> = log
                .lines()
                .rev()
                .filter(|l| !l.contains("login user="))
                .take(40)
                .collect();
            format!("slave {alias} log (newest first):\n{}\n", lines.join("\n"))
        };
        let logs: String = std::iter::once(self.slave.controller.alias.as_str())
            .chain(self.slave.datanodes.iter().map(|n| n.alias.as_str()))
            .map(tail)
            .collect();
        panic!(
            "the slave did not catch up with task {last} within {limit:?}.\nslave status: {seen}\n{logs}"
        );
    }
}

/// A session token of `user` (password `123456`) from the controller behind `ctl`.
pub async fn controller_token(ctl: &xrepl_proto::rpc::RpcClient, user: &str) -> String {
    use xrepl_proto::rpc::{ControllerReply, ControllerRequest};
    match ctl
        .call(ControllerRequest::Login {
            user: user.into(),
            password: "123456".into(),
            peer: "127.0.0.1".into(),
        })
        .await
    {
        Ok(Ok(ControllerReply::LoggedIn { token, .. })) => token,
        other => panic!("login of {user}: {other:?}"),
    }
}

/// A client connection to the data node at `site`, sending frames of at most `max_frame`
/// bytes, logged in as `admin`.
pub async fn admin_session(site: &str, max_frame: usize) -> xrepl_proto::rpc::RpcClient {
    use xrepl_proto::rpc::{PeerKind, RpcClient, SessionReply, SessionRequest};
    let c = RpcClient::connect(
        site,
        PeerKind::Client,
        &xrepl_proto::rpc::ClientTls::plain(),
        max_frame,
        Duration::from_secs(5),
    )
    .await
    .expect("connect");
    let login = SessionRequest::Login {
        user: "admin".into(),
        password: "123456".into(),
    };
    assert!(matches!(
        c.call(login).await,
        Ok(Ok(SessionReply::LoggedIn { .. }))
    ));
    c
}

/// The greeting reply a node sends on the raw connection `s` (5 s at most).
pub fn read_hello_reply(s: &mut std::net::TcpStream) -> xrepl_proto::rpc::HelloReply {
    use std::io::Read;
    use xrepl_proto::rpc::frame::{self, FrameKind};
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("reply length");
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).expect("reply");
    let f = frame::parse(body.into()).expect("frame");
    assert_eq!(f.kind, FrameKind::HelloReply);
    xrepl_proto::rpc::decode(&f.payload).expect("a greeting reply")
}
