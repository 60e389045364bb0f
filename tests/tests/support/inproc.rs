//! The in-process tier: a controller and its data nodes as tasks of one runtime inside the
//! test's own process, each on a listener bound to `127.0.0.1:0`, from config files generated
//! in a temporary folder and read by the real loaders. No binary is started, no port is
//! reserved in advance: a test of this tier runs in a few seconds.

use std::path::Path;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use xrepl_core::cluster_key::ClusterKey;
use xrepl_core::config::{load_controller, load_datanode};
use xrepl_core::value::{Value, Vector};
use xrepl_proto::client::{Client, ClientError};

/// Stack of the runtime's threads: sessions evaluate scripts on its blocking pool, as in the
/// data node binary.
const STACK: usize = 16 * 1024 * 1024;

/// A runtime for in-process clusters: several workers (a session blocks its thread on the
/// controller) and room on every thread for the evaluator.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .thread_stack_size(STACK)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A cluster running inside this process; [`InProcess::stop`] shuts it down.
pub struct InProcess {
    /// The config files and every node's home; removed when the cluster is dropped.
    _dir: tempfile::TempDir,
    /// `127.0.0.1:<port>` of the controller.
    pub controller: String,
    /// Alias and `127.0.0.1:<port>` of each data node.
    pub datanodes: Vec<(String, String)>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<Result<(), String>>>,
}

impl InProcess {
    /// Starts a controller and `datanodes` data nodes; `cluster_cfg` and `controller_cfg` are
    /// extra lines for those files (replication settings, say). Returns when every data node
    /// has registered.
    pub async fn start(datanodes: usize, cluster_cfg: &str, controller_cfg: &str) -> InProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        let bind = || async {
            TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind 127.0.0.1:0")
        };
        let ctl_listener = bind().await;
        let mut dn_listeners = Vec::new();
        for _ in 0..datanodes {
            dn_listeners.push(bind().await);
        }
        let port = |l: &TcpListener| l.local_addr().expect("local address").port();
        let controller = format!("127.0.0.1:{}", port(&ctl_listener));
        let aliases: Vec<(String, String)> = dn_listeners
            .iter()
            .enumerate()
            .map(|(i, l)| (format!("dnode{}", i + 1), format!("127.0.0.1:{}", port(l))))
            .collect();
        write_configs(
            dir.path(),
            &controller,
            &aliases,
            cluster_cfg,
            controller_cfg,
        );
        let (stop, shutdown) = watch::channel(false);
        let mut tasks = Vec::new();
        let cfg = load_controller(dir.path()).expect("controller config");
        let key = ClusterKey::load(&cfg.cluster_key_file).expect("cluster key");
        tasks.push(tokio::spawn({
            let shutdown = shutdown.clone();
            let key = key.clone();
            async move {
                xrepl_controller::run(
                    cfg,
                    key,
                    xrepl_proto::rpc::NodeTls::plain(),
                    ctl_listener,
                    shutdown,
                )
                .await
                .map_err(|e| e.to_string())
            }
        }));
        for ((alias, _), listener) in aliases.iter().zip(dn_listeners) {
            let cfg = load_datanode(dir.path(), alias).expect("data node config");
            let shutdown = shutdown.clone();
            let key = key.clone();
            tasks.push(tokio::spawn(async move {
                xrepl_datanode::run(
                    cfg,
                    key,
                    xrepl_proto::rpc::NodeTls::plain(),
                    listener,
                    shutdown,
                )
                .await
                .map_err(|e| e.to_string())
            }));
        }
        let c = InProcess {
            _dir: dir,
            controller,
            datanodes: aliases,
            stop,
            tasks,
        };
        c.wait_registered().await;
        c
    }

    /// A logged-in administrator's session on data node `i` (from 0).
    pub async fn client(&self, i: usize) -> Client {
        Client::connect(&self.datanodes[i].1, "admin", "123456")
            .await
            .expect("connect and log in")
    }

    /// Waits until `getClusterPerf()` shows every data node up.
    async fn wait_registered(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(c) = Client::connect(&self.datanodes[0].1, "admin", "123456").await {
                if let Ok(Some(Value::Table(t))) =
                    c.run("getClusterPerf()").await.map(|mut o| o.pop())
                {
                    if let Some(Vector::String(states)) = t.column("state") {
                        if states.len() == self.datanodes.len() + 1
                            && states.iter().all(|s| s == "up")
                        {
                            return;
                        }
                    }
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the in-process cluster did not come up within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `script` on data node `i` as the administrator; its outputs.
    pub async fn run(&self, i: usize, script: &str) -> Result<Vec<Value>, ClientError> {
        self.client(i).await.run(script).await
    }

    /// Shuts every node down and waits for it; a node that failed is reported.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            match t.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("a node of the in-process cluster failed: {e}"),
                Err(e) => panic!("a node of the in-process cluster panicked: {e}"),
            }
        }
    }
}

fn write_configs(
    dir: &Path,
    controller: &str,
    datanodes: &[(String, String)],
    cluster_cfg: &str,
    controller_cfg: &str,
) {
    let mut nodes = format!("localSite,mode\n{controller}:controller1,controller\n");
    for (alias, site) in datanodes {
        nodes.push_str(&format!("{site}:{alias},datanode\n"));
    }
    std::fs::write(dir.join("cluster.nodes"), nodes).expect("write cluster.nodes");
    std::fs::write(
        dir.join("controller.cfg"),
        format!("localSite={controller}:controller1\nheartbeatTimeoutMs=2000\n{controller_cfg}"),
    )
    .expect("write controller.cfg");
    std::fs::write(
        dir.join("cluster.cfg"),
        format!("heartbeatIntervalMs=100\n{cluster_cfg}"),
    )
    .expect("write cluster.cfg");
    xrepl_tests::write_private(&dir.join("cluster.key"), ClusterKey::generate_bytes());
}
