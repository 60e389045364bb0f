//! Configuration in the DolphinDB layout: `controller.cfg`, `cluster.nodes`, `cluster.cfg`.
//!
//! Files are `key=value` lines with `#` comment lines. `cluster.cfg` is read by every data node
//! (and checked by the controller); `alias.key=value` there overrides a key for one node.
//! Each process gets one typed struct, [`ControllerConfig`] or [`DataNodeConfig`]; every default
//! lives in [`defaults`]; every mistake is a [`ConfigError`] naming the file, the line and the key.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod nodes;
mod private;
mod tls;
use nodes::parse_site;
pub use nodes::{load_cluster_nodes, parse_host_port};
pub use private::{NodeSecrets, PasswordFile};
pub use tls::TlsSettings;

/// Every default value, in one place. `docs/configuration.md` lists the same.
pub mod defaults {
    /// Largest RPC frame, in bytes (64 MiB). Larger payloads travel in several frames.
    pub const MAX_FRAME_SIZE: u64 = 64 * 1024 * 1024;
    /// Connections a node serves at once (clients, the other nodes, slaves); one more is
    /// refused in its greeting.
    pub const MAX_CONNECTIONS: u64 = 1024;
    /// How long a connection may stay unauthenticated (no login, no proof of the cluster key)
    /// after its greeting before it is closed.
    pub const LOGIN_TIMEOUT_MS: u64 = 30_000;
    /// How often a data node sends its heartbeat to the controller.
    pub const HEARTBEAT_INTERVAL_MS: u64 = 1_000;
    /// How long the controller waits for a heartbeat before showing a node as down.
    pub const HEARTBEAT_TIMEOUT_MS: u64 = 5_000;
    pub const LOG_LEVEL: &str = "info";
    /// How long a session token lives without use (a session in use is renewed): 24 hours.
    pub const TOKEN_EXPIRY_SECS: u64 = 86_400;
    /// A transaction with no decision this long after it began is aborted by the controller.
    pub const TRANSACTION_TIMEOUT_MS: u64 = 60_000;
    /// How long a writer waits for a partition another transaction holds.
    pub const PARTITION_LOCK_TIMEOUT_MS: u64 = 10_000;
    pub const CLUSTER_REPLICATION_SLAVE_NUM: u64 = 2;
    /// Most task data (bytes, encoded) a master keeps for one slave that has not finished it:
    /// 64 GiB. A slave further behind is dropped and must be re-seeded.
    pub const CLUSTER_REPLICATION_MAX_RETAINED_BYTES: u64 = 64 << 30;
    /// Execution queues per data node (the queue count defaults to this times the data nodes).
    pub const CLUSTER_REPLICATION_QUEUES_PER_NODE: u64 = 4;
    pub const CLUSTER_REPLICATION_MASTER_USERNAME: &str = "admin";
    pub const CLUSTER_REPLICATION_MASTER_PASSWORD: &str = "123456";
    pub const CLUSTER_REPLICATION_SYNC_PERSISTENCE: bool = false;
    pub const CLUSTER_REPLICATION_EXECUTION_USERNAME: &str = "admin";
    pub const CLUSTER_REPLICATION_EXECUTION_PASSWORD: &str = "123456";
    pub const CLUSTER_REPLICATION_WORKER_NUM: u64 = 4;
    /// Most tasks a slave asks for in one pull.
    pub const CLUSTER_REPLICATION_PULL_BATCH: u64 = 1_000;
    /// How long the master may hold a slave's pull when it has no task (long poll).
    pub const CLUSTER_REPLICATION_PULL_WAIT_MS: u64 = 1_000;
    /// Wait between two attempts of a failed task on a slave.
    pub const CLUSTER_REPLICATION_RETRY_INTERVAL_MS: u64 = 1_000;
    /// Failed attempts after which a task is FAILED and the slave STOPPED.
    pub const CLUSTER_REPLICATION_RETRY_LIMIT: u64 = 30;
    /// Name of the task-data folder under a data node's home.
    pub const CLUSTER_REPLICATION_WORK_DIR_NAME: &str = "clusterReplication";
    /// Name of the folder beside the config files that holds each node's home by default.
    pub const DATA_DIR_NAME: &str = "data";
}

pub const CONTROLLER_CFG: &str = "controller.cfg";
pub const CLUSTER_NODES: &str = "cluster.nodes";
pub const CLUSTER_CFG: &str = "cluster.cfg";
/// The cluster key file's name in the config folder, unless `clusterKeyFile` names another.
pub const CLUSTER_KEY: &str = "cluster.key";

/// A configuration mistake: which file, which line (none for a missing key), which key, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(
                f,
                "{}:{}: {}: {}",
                self.file.display(),
                line,
                self.key,
                self.message
            ),
            None => write!(f, "{}: {}: {}", self.file.display(), self.key, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Whether a cluster is the source or a destination of replication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ReplicationMode {
    Master,
    Slave,
}

impl fmt::Display for ReplicationMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReplicationMode::Master => "master",
            ReplicationMode::Slave => "slave",
        })
    }
}

/// What a node is in `cluster.nodes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum NodeRole {
    Controller,
    DataNode,
}

impl fmt::Display for NodeRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeRole::Controller => "controller",
            NodeRole::DataNode => "datanode",
        })
    }
}

/// One line of `cluster.nodes`: `host:port:alias,mode`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeEntry {
    pub host: String,
    pub port: u16,
    pub alias: String,
    pub role: NodeRole,
}

impl NodeEntry {
    /// `host:port`
    pub fn site(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// `cluster.nodes`: exactly one controller and at least one data node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNodes {
    pub controller: NodeEntry,
    pub datanodes: Vec<NodeEntry>,
}

impl ClusterNodes {
    pub fn datanode(&self, alias: &str) -> Option<&NodeEntry> {
        self.datanodes.iter().find(|n| n.alias == alias)
    }

    /// Every node, the controller first.
    pub fn all(&self) -> impl Iterator<Item = &NodeEntry> {
        std::iter::once(&self.controller).chain(self.datanodes.iter())
    }
}

/// The controller's settings: `controller.cfg`, plus what it needs of `cluster.nodes` and
/// `cluster.cfg`.
#[derive(Debug, Clone, PartialEq)]
pub struct ControllerConfig {
    pub alias: String,
    pub host: String,
    pub port: u16,
    pub home: PathBuf,
    pub nodes: ClusterNodes,
    pub max_frame_size: usize,
    /// `maxConnections`: connections served at once.
    pub max_connections: usize,
    /// `loginTimeoutMs`: how long a connection may stay unauthenticated after its greeting.
    pub login_timeout: Duration,
    pub heartbeat_timeout: Duration,
    pub transaction_timeout: Duration,
    pub log_level: String,
    /// `tokenExpirySecs`: how long a session token lives unused.
    pub token_expiry: Duration,
    /// `adminPasswordFile`: the initial password of `admin`, read on the first start only.
    pub admin_password_file: Option<PathBuf>,
    /// `clusterKeyFile`: the file holding the cluster key (see `crate::cluster_key`).
    pub cluster_key_file: PathBuf,
    pub tls: TlsSettings,
    /// Where a task's data may live: every data node's `host:port` and its
    /// `clusterReplicationPublicAddress`.
    pub task_sources: std::collections::BTreeSet<(String, u16)>,
    /// The data nodes' `clusterReplicationExecutionUsername`s: the users whose sessions may
    /// take and report replays.
    pub execution_users: std::collections::BTreeSet<String>,
    /// `None` when `clusterReplicationMode` is absent from cluster.cfg.
    pub replication: Option<ControllerReplication>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ControllerReplication {
    pub mode: ReplicationMode,
    pub slave_num: u32,
    /// Master role: `clusterReplicationMaxRetainedBytes`.
    pub max_retained_bytes: u64,
    /// `host:port` of the master controller; `Some` exactly when `mode` is slave.
    pub master_ctl: Option<String>,
    pub queue: u32,
    pub master_username: String,
    /// `clusterReplicationMasterPassword`, or the content of `master_password_file` once
    /// [`ControllerConfig::read_password_files`] has read it (empty until then).
    pub master_password: String,
    /// `clusterReplicationMasterPasswordFile`, when the password is in a file.
    pub master_password_file: Option<PasswordFile>,
    /// Slave role: most tasks per pull (`clusterReplicationPullBatch`).
    pub pull_batch: u32,
    /// Slave role: longest wait of one pull on the master (`clusterReplicationPullWaitMs`).
    pub pull_wait: Duration,
    /// Slave role: wait between attempts of a failed task (`clusterReplicationRetryIntervalMs`).
    pub retry_interval: Duration,
    /// Slave role: failed attempts before FAILED and STOPPED (`clusterReplicationRetryLimit`).
    pub retry_limit: u32,
    /// Slave role: the databases this slave replays (`slaveReplicationDBScope`); `None`: all.
    pub db_scope: Option<Vec<String>>,
}

/// A data node's settings: `cluster.cfg` with its own overrides, plus `cluster.nodes`.
#[derive(Debug, Clone, PartialEq)]
pub struct DataNodeConfig {
    pub alias: String,
    pub host: String,
    pub port: u16,
    pub home: PathBuf,
    pub controller: NodeEntry,
    /// Every node of the cluster (to reach the other data nodes).
    pub nodes: ClusterNodes,
    pub max_frame_size: usize,
    /// `maxConnections`: connections served at once.
    pub max_connections: usize,
    /// `loginTimeoutMs`: how long a connection may stay unauthenticated after its greeting.
    pub login_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub partition_lock_timeout: Duration,
    pub log_level: String,
    /// `clusterKeyFile`: the file holding the cluster key (see `crate::cluster_key`).
    pub cluster_key_file: PathBuf,
    pub tls: TlsSettings,
    pub replication: Option<DataNodeReplication>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DataNodeReplication {
    pub mode: ReplicationMode,
    pub work_dir: PathBuf,
    pub sync_persistence: bool,
    pub execution_username: String,
    /// `clusterReplicationExecutionPassword`, or the content of `execution_password_file`
    /// once [`DataNodeConfig::read_password_files`] has read it (empty until then).
    pub execution_password: String,
    /// `clusterReplicationExecutionPasswordFile`, when the password is in a file.
    pub execution_password_file: Option<PasswordFile>,
    pub worker_num: u32,
    /// `clusterReplicationPublicAddress`: where slave data nodes fetch this master data
    /// node's task data, when not at its own address (NAT, a proxy).
    pub public_address: Option<(String, u16)>,
}

/// One `key=value` line as read.
#[derive(Debug, Clone)]
struct Entry {
    line: usize,
    value: String,
}

/// The lines of one `key=value` file, taken key by key by the typed loaders; whatever is left
/// at the end is an unknown key.
struct KeyValues {
    file: PathBuf,
    entries: BTreeMap<String, Entry>,
}

impl KeyValues {
    fn read(file: &Path) -> Result<KeyValues, ConfigError> {
        let text = read_text(file)?;
        KeyValues::parse(file, &text)
    }

    fn parse(file: &Path, text: &str) -> Result<KeyValues, ConfigError> {
        let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let err = |key: &str, message: String| ConfigError {
                file: file.to_path_buf(),
                line: Some(line),
                key: key.to_string(),
                message,
            };
            let Some((key, value)) = trimmed.split_once('=') else {
                return Err(err(trimmed, "expected key=value".into()));
            };
            let (key, value) = (key.trim(), value.trim());
            if key.is_empty() {
                return Err(err(
                    "(empty)",
                    "a line starts with '=': the key is missing".into(),
                ));
            }
            if value.is_empty() {
                return Err(err(key, "the value is empty".into()));
            }
            if let Some(first) = entries.get(key) {
                return Err(err(
                    key,
                    format!("set twice (first at line {})", first.line),
                ));
            }
            entries.insert(
                key.to_string(),
                Entry {
                    line,
                    value: value.to_string(),
                },
            );
        }
        Ok(KeyValues {
            file: file.to_path_buf(),
            entries,
        })
    }

    fn error(&self, key: &str, line: Option<usize>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line,
            key: key.to_string(),
            message: message.into(),
        }
    }

    /// Removes and returns a key's raw value and line.
    fn take(&mut self, key: &str) -> Option<Entry> {
        self.entries.remove(key)
    }

    fn string(&mut self, key: &str, default: &str) -> String {
        self.take(key)
            .map_or_else(|| default.to_string(), |e| e.value)
    }

    fn uint(&mut self, key: &str, default: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
        let Some(e) = self.take(key) else {
            return Ok(default);
        };
        let v: u64 = e.value.parse().map_err(|_| {
            self.error(
                key,
                Some(e.line),
                format!("expected a whole number, got '{}'", e.value),
            )
        })?;
        if v < min || v > max {
            return Err(self.error(
                key,
                Some(e.line),
                format!("{v} is out of range ({min} to {max})"),
            ));
        }
        Ok(v)
    }

    fn boolean(&mut self, key: &str, default: bool) -> Result<bool, ConfigError> {
        let Some(e) = self.take(key) else {
            return Ok(default);
        };
        match e.value.to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(self.error(
                key,
                Some(e.line),
                format!("expected true or false, got '{}'", e.value),
            )),
        }
    }

    fn path(&mut self, key: &str, base: &Path) -> Option<PathBuf> {
        self.take(key).map(|e| base.join(e.value))
    }

    /// A password given in clear by `key` (default `default`) or in the file `key`File
    /// names (a path relative to `base`); setting both is an error naming both. With a file,
    /// the password is empty until the file is read.
    fn password(
        &mut self,
        key: &'static str,
        file_key: &'static str,
        default: &str,
        base: &Path,
    ) -> Result<(String, Option<PasswordFile>), ConfigError> {
        let clear = self.take(key);
        let Some(file) = self.take(file_key) else {
            return Ok((clear.map_or_else(|| default.to_string(), |e| e.value), None));
        };
        if let Some(clear) = clear {
            return Err(self.error(
                file_key,
                Some(file.line),
                format!(
                    "set together with {key} (line {}): give the password one way, {key} or {file_key}",
                    clear.line
                ),
            ));
        }
        let source = PasswordFile {
            path: base.join(&file.value),
            origin: (self.file.clone(), file.line, file_key),
        };
        Ok((String::new(), Some(source)))
    }

    fn log_level(&mut self) -> Result<String, ConfigError> {
        let Some(e) = self.take("logLevel") else {
            return Ok(defaults::LOG_LEVEL.to_string());
        };
        match e.value.as_str() {
            "error" | "warn" | "info" | "debug" | "trace" => Ok(e.value),
            other => Err(self.error(
                "logLevel",
                Some(e.line),
                format!("expected error, warn, info, debug or trace, got '{other}'"),
            )),
        }
    }

    fn replication_mode(&mut self) -> Result<Option<ReplicationMode>, ConfigError> {
        let Some(e) = self.take("clusterReplicationMode") else {
            return Ok(None);
        };
        match e.value.as_str() {
            "master" => Ok(Some(ReplicationMode::Master)),
            "slave" => Ok(Some(ReplicationMode::Slave)),
            other => Err(self.error(
                "clusterReplicationMode",
                Some(e.line),
                format!("expected master or slave, got '{other}'"),
            )),
        }
    }

    /// Fails on the first key nobody took.
    fn finish(self) -> Result<(), ConfigError> {
        match self.entries.into_iter().min_by_key(|(_, e)| e.line) {
            None => Ok(()),
            Some((key, e)) => Err(ConfigError {
                file: self.file,
                line: Some(e.line),
                key,
                message: "unknown key".into(),
            }),
        }
    }
}

fn read_text(file: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(file).map_err(|e| ConfigError {
        file: file.to_path_buf(),
        line: None,
        key: "(file)".into(),
        message: format!("cannot read: {e}"),
    })
}

/// `cluster.cfg` split into shared keys and per-alias overrides.
struct ClusterCfg {
    shared: KeyValues,
    overrides: BTreeMap<String, KeyValues>,
}

fn read_cluster_cfg(file: &Path, nodes: &ClusterNodes) -> Result<ClusterCfg, ConfigError> {
    let all = KeyValues::read(file)?;
    let mut shared = KeyValues {
        file: file.to_path_buf(),
        entries: BTreeMap::new(),
    };
    let mut overrides: BTreeMap<String, KeyValues> = BTreeMap::new();
    for (key, entry) in all.entries {
        match key.split_once('.') {
            None => {
                shared.entries.insert(key, entry);
            }
            Some((alias, sub)) => {
                let (alias, sub) = (alias.to_string(), sub.to_string());
                if nodes.datanode(&alias).is_none() {
                    return Err(ConfigError {
                        file: file.to_path_buf(),
                        line: Some(entry.line),
                        key,
                        message: format!("'{alias}' is not a data node in cluster.nodes"),
                    });
                }
                if sub == "clusterReplicationMode" {
                    return Err(ConfigError {
                        file: file.to_path_buf(),
                        line: Some(entry.line),
                        key,
                        message: "clusterReplicationMode is the same for every node; set it without an alias".into(),
                    });
                }
                overrides
                    .entry(alias)
                    .or_insert_with(|| KeyValues {
                        file: file.to_path_buf(),
                        entries: BTreeMap::new(),
                    })
                    .entries
                    .insert(sub, entry);
            }
        }
    }
    Ok(ClusterCfg { shared, overrides })
}

impl ClusterCfg {
    /// The key-values one node sees: shared keys with its overrides on top.
    fn for_node(&self, alias: &str) -> KeyValues {
        let mut entries = self.shared.entries.clone();
        if let Some(o) = self.overrides.get(alias) {
            entries.extend(o.entries.clone());
        }
        KeyValues {
            file: self.shared.file.clone(),
            entries,
        }
    }
}

fn default_home(cfg_dir: &Path, alias: &str) -> PathBuf {
    cfg_dir.join(defaults::DATA_DIR_NAME).join(alias)
}

fn frame_size(kv: &mut KeyValues) -> Result<usize, ConfigError> {
    let v = kv.uint(
        "maxFrameSize",
        defaults::MAX_FRAME_SIZE,
        64 * 1024,
        1024 * 1024 * 1024,
    )?;
    Ok(usize::try_from(v).unwrap_or(usize::MAX))
}

/// `maxConnections` and `loginTimeoutMs`: what a node's server takes at once and how long it
/// waits for a login.
fn connection_limits(kv: &mut KeyValues) -> Result<(usize, Duration), ConfigError> {
    let max = kv.uint("maxConnections", defaults::MAX_CONNECTIONS, 1, 65_536)?;
    let login = kv.uint(
        "loginTimeoutMs",
        defaults::LOGIN_TIMEOUT_MS,
        1_000,
        3_600_000,
    )?;
    Ok((
        usize::try_from(max).unwrap_or(usize::MAX),
        Duration::from_millis(login),
    ))
}

/// Loads a data node's settings from `cfg_dir` (`cluster.cfg` and `cluster.nodes`).
pub fn load_datanode(cfg_dir: &Path, alias: &str) -> Result<DataNodeConfig, ConfigError> {
    let nodes = load_cluster_nodes(&cfg_dir.join(CLUSTER_NODES))?;
    let cluster = read_cluster_cfg(&cfg_dir.join(CLUSTER_CFG), &nodes)?;
    datanode_from(cfg_dir, &nodes, &cluster, alias)
}

fn datanode_from(
    cfg_dir: &Path,
    nodes: &ClusterNodes,
    cluster: &ClusterCfg,
    alias: &str,
) -> Result<DataNodeConfig, ConfigError> {
    let Some(me) = nodes.datanode(alias) else {
        return Err(ConfigError {
            file: cfg_dir.join(CLUSTER_NODES),
            line: None,
            key: alias.to_string(),
            message: "no data node with this alias".into(),
        });
    };
    let mut kv = cluster.for_node(alias);
    let home = kv
        .path("home", cfg_dir)
        .unwrap_or_else(|| default_home(cfg_dir, alias));
    let max_frame_size = frame_size(&mut kv)?;
    let (max_connections, login_timeout) = connection_limits(&mut kv)?;
    let heartbeat_interval = Duration::from_millis(kv.uint(
        "heartbeatIntervalMs",
        defaults::HEARTBEAT_INTERVAL_MS,
        10,
        60_000,
    )?);
    let partition_lock_timeout = Duration::from_millis(kv.uint(
        "partitionLockTimeoutMs",
        defaults::PARTITION_LOCK_TIMEOUT_MS,
        0,
        3_600_000,
    )?);
    let log_level = kv.log_level()?;
    let cluster_key_file = kv
        .path("clusterKeyFile", cfg_dir)
        .unwrap_or_else(|| cfg_dir.join(CLUSTER_KEY));
    let mode = kv.replication_mode()?;
    let tls = TlsSettings::take(&mut kv, cfg_dir, mode)?;
    // Read every replication key even without a mode, so that a typo is still reported.
    let work_dir = kv.path("clusterReplicationWorkDir", cfg_dir);
    let sync_persistence = kv.boolean(
        "clusterReplicationSyncPersistence",
        defaults::CLUSTER_REPLICATION_SYNC_PERSISTENCE,
    )?;
    let execution_username = kv.string(
        "clusterReplicationExecutionUsername",
        defaults::CLUSTER_REPLICATION_EXECUTION_USERNAME,
    );
    let (execution_password, execution_password_file) = kv.password(
        "clusterReplicationExecutionPassword",
        "clusterReplicationExecutionPasswordFile",
        defaults::CLUSTER_REPLICATION_EXECUTION_PASSWORD,
        cfg_dir,
    )?;
    let worker_num = kv.uint(
        "clusterReplicationWorkerNum",
        defaults::CLUSTER_REPLICATION_WORKER_NUM,
        1,
        256,
    )?;
    let public_address = match kv.take("clusterReplicationPublicAddress") {
        None => None,
        Some(e) => Some(
            parse_host_port(&e.value)
                .map_err(|m| kv.error("clusterReplicationPublicAddress", Some(e.line), m))?,
        ),
    };
    kv.finish()?;
    let replication = mode.map(|mode| DataNodeReplication {
        mode,
        work_dir: work_dir
            .unwrap_or_else(|| home.join(defaults::CLUSTER_REPLICATION_WORK_DIR_NAME)),
        sync_persistence,
        execution_username,
        execution_password,
        execution_password_file,
        worker_num: u32::try_from(worker_num).unwrap_or(u32::MAX),
        public_address,
    });
    Ok(DataNodeConfig {
        alias: alias.to_string(),
        host: me.host.clone(),
        port: me.port,
        home,
        controller: nodes.controller.clone(),
        nodes: nodes.clone(),
        max_frame_size,
        max_connections,
        login_timeout,
        heartbeat_interval,
        partition_lock_timeout,
        log_level,
        cluster_key_file,
        tls,
        replication,
    })
}

/// Loads the controller's settings from `cfg_dir`. It also checks `cluster.cfg` for every data
/// node, so that a bad cluster file is reported when the controller starts.
pub fn load_controller(cfg_dir: &Path) -> Result<ControllerConfig, ConfigError> {
    let nodes = load_cluster_nodes(&cfg_dir.join(CLUSTER_NODES))?;
    let cluster = read_cluster_cfg(&cfg_dir.join(CLUSTER_CFG), &nodes)?;
    let mut slowest_heartbeat = Duration::ZERO;
    let mut task_sources = std::collections::BTreeSet::new();
    let mut execution_users = std::collections::BTreeSet::new();
    let mut datanode_tls = Vec::new();
    for n in &nodes.datanodes {
        let dn = datanode_from(cfg_dir, &nodes, &cluster, &n.alias)?;
        datanode_tls.push((n.alias.clone(), dn.tls.enabled));
        slowest_heartbeat = slowest_heartbeat.max(dn.heartbeat_interval);
        task_sources.insert((dn.host.clone(), dn.port));
        if let Some(r) = dn.replication {
            execution_users.insert(r.execution_username);
            if let Some(public) = r.public_address {
                task_sources.insert(public);
            }
        }
    }
    let mut shared = cluster.for_node("");
    let mode = shared.replication_mode()?;

    let file = cfg_dir.join(CONTROLLER_CFG);
    let mut kv = KeyValues::read(&file)?;
    if let Some(e) = kv.take("mode") {
        if e.value != "controller" {
            return Err(kv.error(
                "mode",
                Some(e.line),
                format!(
                    "this file is for the controller: mode must be controller, got '{}'",
                    e.value
                ),
            ));
        }
    }
    let Some(site) = kv.take("localSite") else {
        return Err(kv.error(
            "localSite",
            None,
            "missing (host:port:alias of the controller)",
        ));
    };
    let (host, port, alias) =
        parse_site(&site.value).map_err(|m| kv.error("localSite", Some(site.line), m))?;
    let c = &nodes.controller;
    if (c.host.as_str(), c.port, c.alias.as_str()) != (host.as_str(), port, alias.as_str()) {
        return Err(kv.error(
            "localSite",
            Some(site.line),
            format!(
                "'{}' does not match the controller line of cluster.nodes ({}:{})",
                site.value,
                c.site(),
                c.alias
            ),
        ));
    }
    let home = kv
        .path("home", cfg_dir)
        .unwrap_or_else(|| default_home(cfg_dir, &alias));
    let max_frame_size = frame_size(&mut kv)?;
    let (max_connections, login_timeout) = connection_limits(&mut kv)?;
    let timeout_line = kv.entries.get("heartbeatTimeoutMs").map(|e| e.line);
    let heartbeat_timeout = Duration::from_millis(kv.uint(
        "heartbeatTimeoutMs",
        defaults::HEARTBEAT_TIMEOUT_MS,
        50,
        600_000,
    )?);
    if heartbeat_timeout <= slowest_heartbeat {
        return Err(kv.error(
            "heartbeatTimeoutMs",
            timeout_line,
            format!(
                "{} ms must be longer than the data nodes' heartbeatIntervalMs ({} ms)",
                heartbeat_timeout.as_millis(),
                slowest_heartbeat.as_millis()
            ),
        ));
    }
    let transaction_timeout = Duration::from_millis(kv.uint(
        "transactionTimeoutMs",
        defaults::TRANSACTION_TIMEOUT_MS,
        100,
        86_400_000,
    )?);
    let log_level = kv.log_level()?;
    let token_expiry = Duration::from_secs(kv.uint(
        "tokenExpirySecs",
        defaults::TOKEN_EXPIRY_SECS,
        60,
        30 * 86_400,
    )?);
    let admin_password_file = kv.path("adminPasswordFile", cfg_dir);
    let cluster_key_file = kv
        .path("clusterKeyFile", cfg_dir)
        .unwrap_or_else(|| cfg_dir.join(CLUSTER_KEY));
    let tls_line = kv.entries.get("enableTLS").map(|e| e.line);
    let tls = TlsSettings::take(&mut kv, cfg_dir, mode)?;
    if let Some((alias, theirs)) = datanode_tls.iter().find(|(_, t)| *t != tls.enabled) {
        return Err(kv.error(
            "enableTLS",
            tls_line,
            format!(
                "{} here but {theirs} for data node {alias} in cluster.cfg: every node of a cluster must agree",
                tls.enabled
            ),
        ));
    }
    let slave_num = kv.uint(
        "clusterReplicationSlaveNum",
        defaults::CLUSTER_REPLICATION_SLAVE_NUM,
        0,
        64,
    )?;
    let max_retained_bytes = kv.uint(
        "clusterReplicationMaxRetainedBytes",
        defaults::CLUSTER_REPLICATION_MAX_RETAINED_BYTES,
        1 << 20,
        1 << 60,
    )?;
    let master_ctl_entry = kv.take("clusterReplicationMasterCtl");
    let default_queue =
        defaults::CLUSTER_REPLICATION_QUEUES_PER_NODE * nodes.datanodes.len() as u64;
    let queue = kv.uint("clusterReplicationQueue", default_queue, 1, 4096)?;
    let pull_batch = kv.uint(
        "clusterReplicationPullBatch",
        defaults::CLUSTER_REPLICATION_PULL_BATCH,
        1,
        10_000,
    )?;
    let pull_wait = kv.uint(
        "clusterReplicationPullWaitMs",
        defaults::CLUSTER_REPLICATION_PULL_WAIT_MS,
        0,
        10_000,
    )?;
    let retry_interval = kv.uint(
        "clusterReplicationRetryIntervalMs",
        defaults::CLUSTER_REPLICATION_RETRY_INTERVAL_MS,
        10,
        600_000,
    )?;
    let retry_limit = kv.uint(
        "clusterReplicationRetryLimit",
        defaults::CLUSTER_REPLICATION_RETRY_LIMIT,
        1,
        100_000,
    )?;
    let master_username = kv.string(
        "clusterReplicationMasterUsername",
        defaults::CLUSTER_REPLICATION_MASTER_USERNAME,
    );
    let (master_password, master_password_file) = kv.password(
        "clusterReplicationMasterPassword",
        "clusterReplicationMasterPasswordFile",
        defaults::CLUSTER_REPLICATION_MASTER_PASSWORD,
        cfg_dir,
    )?;
    let db_scope = match kv.take("slaveReplicationDBScope") {
        None => None,
        Some(e) => {
            let dbs: Vec<String> = e
                .value
                .split(',')
                .map(|d| d.trim().to_string())
                .filter(|d| !d.is_empty())
                .collect();
            if dbs.is_empty() {
                return Err(kv.error(
                    "slaveReplicationDBScope",
                    Some(e.line),
                    "names no database; list the databases this slave replays, comma-separated (e.g. dfs://db1,dfs://db2), or leave the key out to replay every one",
                ));
            }
            if let Some(bad) = dbs
                .iter()
                .find(|d| !d.starts_with("dfs://") || d.len() <= 6)
            {
                return Err(kv.error(
                    "slaveReplicationDBScope",
                    Some(e.line),
                    format!("'{bad}' is not a database path (dfs://name)"),
                ));
            }
            Some(dbs)
        }
    };
    let master_ctl = match &master_ctl_entry {
        None => None,
        Some(e) => {
            let (h, p) = parse_host_port(&e.value)
                .map_err(|m| kv.error("clusterReplicationMasterCtl", Some(e.line), m))?;
            if (h.as_str(), p) == (host.as_str(), port) {
                return Err(kv.error(
                    "clusterReplicationMasterCtl",
                    Some(e.line),
                    "names this controller itself; it must be the master cluster's controller",
                ));
            }
            Some(format!("{h}:{p}"))
        }
    };
    if mode == Some(ReplicationMode::Slave) && master_ctl.is_none() {
        return Err(kv.error(
            "clusterReplicationMasterCtl",
            None,
            "required because cluster.cfg sets clusterReplicationMode=slave",
        ));
    }
    kv.finish()?;
    let replication = mode.map(|mode| ControllerReplication {
        mode,
        slave_num: u32::try_from(slave_num).unwrap_or(u32::MAX),
        max_retained_bytes,
        master_ctl: if mode == ReplicationMode::Slave {
            master_ctl
        } else {
            None
        },
        queue: u32::try_from(queue).unwrap_or(u32::MAX),
        master_username,
        master_password,
        master_password_file,
        pull_batch: u32::try_from(pull_batch).unwrap_or(u32::MAX),
        pull_wait: Duration::from_millis(pull_wait),
        retry_interval: Duration::from_millis(retry_interval),
        retry_limit: u32::try_from(retry_limit).unwrap_or(u32::MAX),
        db_scope,
    });
    Ok(ControllerConfig {
        alias,
        host,
        port,
        home,
        nodes,
        max_frame_size,
        max_connections,
        login_timeout,
        heartbeat_timeout,
        transaction_timeout,
        log_level,
        token_expiry,
        admin_password_file,
        cluster_key_file,
        tls,
        task_sources,
        execution_users,
        replication,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: &str = "localSite,mode\n127.0.0.1:8848:controller1,controller\n127.0.0.1:8849:dnode1,datanode\n127.0.0.1:8850:dnode2,datanode\n";

    fn dir_with(controller: &str, cluster: &str, nodes: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::write(d.path().join(CONTROLLER_CFG), controller).expect("write");
        std::fs::write(d.path().join(CLUSTER_CFG), cluster).expect("write");
        std::fs::write(d.path().join(CLUSTER_NODES), nodes).expect("write");
        d
    }

    fn shipped(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("cfg")
            .join(name)
    }

    #[test]
    fn shipped_master_set_parses() {
        let dir = shipped("master");
        let c = load_controller(&dir).expect("master controller.cfg");
        assert_eq!((c.alias.as_str(), c.port), ("controller1", 8848));
        let r = c.replication.expect("replication configured");
        assert_eq!(r.mode, ReplicationMode::Master);
        assert_eq!(c.nodes.datanodes.len(), 2);
        for (alias, port) in [("dnode1", 8849), ("dnode2", 8850)] {
            let d = load_datanode(&dir, alias).expect("master data node");
            assert_eq!(d.port, port);
            assert_eq!(d.controller.port, 8848);
            assert_eq!(d.replication.map(|r| r.mode), Some(ReplicationMode::Master));
            assert!(d.home.ends_with(Path::new("data").join(alias)));
        }
    }

    #[test]
    fn shipped_slave_set_parses() {
        let dir = shipped("slave");
        let c = load_controller(&dir).expect("slave controller.cfg");
        assert_eq!(c.port, 9848);
        let r = c.replication.expect("replication configured");
        assert_eq!(r.mode, ReplicationMode::Slave);
        assert_eq!(r.master_ctl.as_deref(), Some("127.0.0.1:8848"));
        let ports: Vec<u16> = c.nodes.datanodes.iter().map(|n| n.port).collect();
        assert_eq!(ports, [9849, 9850]);
        for n in &c.nodes.datanodes {
            let d = load_datanode(&dir, &n.alias).expect("slave data node");
            assert_eq!(d.replication.map(|r| r.mode), Some(ReplicationMode::Slave));
        }
    }

    #[test]
    fn defaults_apply_when_keys_are_absent() {
        let d = dir_with("localSite=127.0.0.1:8848:controller1\n", "", NODES);
        let c = load_controller(d.path()).expect("minimal config");
        assert_eq!(c.replication, None);
        assert_eq!(c.max_frame_size as u64, defaults::MAX_FRAME_SIZE);
        assert_eq!(c.max_connections as u64, defaults::MAX_CONNECTIONS);
        assert_eq!(
            c.login_timeout,
            Duration::from_millis(defaults::LOGIN_TIMEOUT_MS)
        );
        assert_eq!(c.home, d.path().join("data").join("controller1"));
        let dn = load_datanode(d.path(), "dnode2").expect("minimal data node");
        assert_eq!(
            dn.heartbeat_interval,
            Duration::from_millis(defaults::HEARTBEAT_INTERVAL_MS)
        );
        assert_eq!(dn.max_connections as u64, defaults::MAX_CONNECTIONS);
        assert_eq!(
            dn.login_timeout,
            Duration::from_millis(defaults::LOGIN_TIMEOUT_MS)
        );
    }

    #[test]
    fn connection_limits_are_read_from_both_files_and_per_node() {
        let d = dir_with(
            &format!("{SITE}maxConnections=10\nloginTimeoutMs=2000\n"),
            "maxConnections=3\ndnode2.maxConnections=65536\nloginTimeoutMs=1000\n",
            NODES,
        );
        let c = load_controller(d.path()).expect("controller");
        assert_eq!(
            (c.max_connections, c.login_timeout),
            (10, Duration::from_secs(2))
        );
        let one = load_datanode(d.path(), "dnode1").expect("dnode1");
        let two = load_datanode(d.path(), "dnode2").expect("dnode2");
        assert_eq!(
            (one.max_connections, one.login_timeout),
            (3, Duration::from_secs(1))
        );
        assert_eq!(two.max_connections, 65_536);
    }

    #[test]
    fn per_node_override_wins_for_that_node_only() {
        let d = dir_with(
            "localSite=127.0.0.1:8848:controller1\n",
            "clusterReplicationMode=master\nclusterReplicationWorkerNum=4\ndnode2.clusterReplicationWorkerNum=8\n",
            NODES,
        );
        let one = load_datanode(d.path(), "dnode1").expect("dnode1");
        let two = load_datanode(d.path(), "dnode2").expect("dnode2");
        assert_eq!(one.replication.map(|r| r.worker_num), Some(4));
        assert_eq!(two.replication.map(|r| r.worker_num), Some(8));
    }

    #[test]
    fn a_public_address_is_per_node_and_defaults_to_none() {
        let d = dir_with(
            "localSite=127.0.0.1:8848:controller1\n",
            "clusterReplicationMode=master\ndnode2.clusterReplicationPublicAddress=10.0.0.7:28850\n",
            NODES,
        );
        let one = load_datanode(d.path(), "dnode1").expect("dnode1");
        let two = load_datanode(d.path(), "dnode2").expect("dnode2");
        assert_eq!(one.replication.and_then(|r| r.public_address), None);
        assert_eq!(
            two.replication.and_then(|r| r.public_address),
            Some(("10.0.0.7".to_string(), 28850))
        );
    }

    fn controller_error(controller: &str, cluster: &str, nodes: &str) -> String {
        let d = dir_with(controller, cluster, nodes);
        let e = load_controller(d.path()).expect_err("must fail");
        // Keep the file name only, so the expectations do not depend on the temp dir.
        let name = e
            .file
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        ConfigError {
            file: PathBuf::from(name),
            ..e
        }
        .to_string()
    }

    const SITE: &str = "localSite=127.0.0.1:8848:controller1\n";

    #[test]
    fn each_mistake_names_file_line_and_key() {
        let cases: Vec<(String, &str, &str, &str)> = vec![
            (format!("{SITE}bogusKey=1\n"), "", NODES, "controller.cfg:2: bogusKey: unknown key"),
            (format!("{SITE}clusterReplicationSlaveNum=two\n"), "", NODES,
             "controller.cfg:2: clusterReplicationSlaveNum: expected a whole number, got 'two'"),
            (format!("{SITE}clusterReplicationSlaveNum=1000\n"), "", NODES,
             "controller.cfg:2: clusterReplicationSlaveNum: 1000 is out of range (0 to 64)"),
            (format!("{SITE}clusterReplicationRetryLimit=0\n"), "", NODES,
             "controller.cfg:2: clusterReplicationRetryLimit: 0 is out of range (1 to 100000)"),
            (format!("{SITE}maxConnections=0\n"), "", NODES,
             "controller.cfg:2: maxConnections: 0 is out of range (1 to 65536)"),
            (SITE.into(), "maxConnections=many\n", NODES,
             "cluster.cfg:1: maxConnections: expected a whole number, got 'many'"),
            (SITE.into(), "dnode2.maxConnections=70000\n", NODES,
             "cluster.cfg:1: maxConnections: 70000 is out of range (1 to 65536)"),
            (format!("{SITE}loginTimeoutMs=10\n"), "", NODES,
             "controller.cfg:2: loginTimeoutMs: 10 is out of range (1000 to 3600000)"),
            (format!("{SITE}clusterReplicationPullWaitMs=soon\n"), "", NODES,
             "controller.cfg:2: clusterReplicationPullWaitMs: expected a whole number, got 'soon'"),
            (format!("{SITE}slaveReplicationDBScope=db1\n"), "clusterReplicationMode=slave\n", NODES,
             "controller.cfg:2: slaveReplicationDBScope: 'db1' is not a database path (dfs://name)"),
            (format!("{SITE}slaveReplicationDBScope= , \n"), "clusterReplicationMode=slave\n", NODES,
             "controller.cfg:2: slaveReplicationDBScope: names no database; list the databases this slave replays, comma-separated (e.g. dfs://db1,dfs://db2), or leave the key out to replay every one"),
            (format!("{SITE}justtext\n"), "", NODES, "controller.cfg:2: justtext: expected key=value"),
            (format!("{SITE}home=\n"), "", NODES, "controller.cfg:2: home: the value is empty"),
            (format!("{SITE}\nhome=a\nhome=b\n"), "", NODES, "controller.cfg:4: home: set twice (first at line 3)"),
            ("# no site\n".into(), "", NODES, "controller.cfg: localSite: missing (host:port:alias of the controller)"),
            ("localSite=127.0.0.1:9999:controller1\n".into(), "", NODES,
             "controller.cfg:1: localSite: '127.0.0.1:9999:controller1' does not match the controller line of cluster.nodes (127.0.0.1:8848:controller1)"),
            ("localSite=127.0.0.1:99999:controller1\n".into(), "", NODES,
             "controller.cfg:1: localSite: '99999' is not a port (1 to 65535)"),
            (SITE.into(), "clusterReplicationMode=slave\n", NODES,
             "controller.cfg: clusterReplicationMasterCtl: required because cluster.cfg sets clusterReplicationMode=slave"),
            (format!("{SITE}clusterReplicationMasterCtl=nowhere\n"), "clusterReplicationMode=slave\n", NODES,
             "controller.cfg:2: clusterReplicationMasterCtl: expected host:port, got 'nowhere'"),
            (SITE.into(), "clusterReplicationMode=mastr\n", NODES,
             "cluster.cfg:1: clusterReplicationMode: expected master or slave, got 'mastr'"),
            (SITE.into(), "clusterReplicationSyncPersistence=yes\n", NODES,
             "cluster.cfg:1: clusterReplicationSyncPersistence: expected true or false, got 'yes'"),
            (SITE.into(), "clusterReplicationMode=master\ndnode1.clusterReplicationPublicAddress=nowhere\n", NODES,
             "cluster.cfg:2: clusterReplicationPublicAddress: expected host:port, got 'nowhere'"),
            (SITE.into(), "dnode9.home=/x\n", NODES,
             "cluster.cfg:1: dnode9.home: 'dnode9' is not a data node in cluster.nodes"),
            (SITE.into(), "dnode1.clusterReplicationMode=slave\n", NODES,
             "cluster.cfg:1: dnode1.clusterReplicationMode: clusterReplicationMode is the same for every node; set it without an alias"),
            (SITE.into(), "\n\nclusterReplicationWrokerNum=3\n", NODES,
             "cluster.cfg:3: clusterReplicationWrokerNum: unknown key"),
            (format!("{SITE}heartbeatTimeoutMs=500\n"), "heartbeatIntervalMs=1000\n", NODES,
             "controller.cfg:2: heartbeatTimeoutMs: 500 ms must be longer than the data nodes' heartbeatIntervalMs (1000 ms)"),
            (SITE.into(), "", "127.0.0.1:8848:controller1,controller\n",
             "cluster.nodes:1: localSite: the first line must be the header 'localSite,mode', got '127.0.0.1:8848:controller1,controller'"),
            (SITE.into(), "", "localSite,mode\n127.0.0.1:8848:controller1,controller\n127.0.0.1:8849:dnode1,agent\n",
             "cluster.nodes:3: mode: expected controller or datanode, got 'agent'"),
            (SITE.into(), "", "localSite,mode\n127.0.0.1:8848:controller1,controller\n127.0.0.1:8849:controller1,datanode\n",
             "cluster.nodes:3: controller1: alias used twice (first at line 2)"),
            (SITE.into(), "", "localSite,mode\n127.0.0.1:8848:controller1,controller\n127.0.0.1:8848:dnode1,datanode\n",
             "cluster.nodes:3: dnode1: site 127.0.0.1:8848 used twice (first by controller1 at line 2)"),
            (SITE.into(), "", "localSite,mode\n127.0.0.1:8848:controller1,controller\n",
             "cluster.nodes: datanode: no data node line"),
            (SITE.into(), "", "localSite,mode\n127.0.0.1:8848:1bad,controller\n",
             "cluster.nodes:2: localSite: alias '1bad' must start with a letter and hold only letters, digits and '_'"),
            (format!("{SITE}clusterReplicationMasterPassword=x\nclusterReplicationMasterPasswordFile=pw\n"), "", NODES,
             "controller.cfg:3: clusterReplicationMasterPasswordFile: set together with clusterReplicationMasterPassword (line 2): give the password one way, clusterReplicationMasterPassword or clusterReplicationMasterPasswordFile"),
            (SITE.into(), "clusterReplicationExecutionPassword=x\ndnode2.clusterReplicationExecutionPasswordFile=pw\n", NODES,
             "cluster.cfg:2: clusterReplicationExecutionPasswordFile: set together with clusterReplicationExecutionPassword (line 1): give the password one way, clusterReplicationExecutionPassword or clusterReplicationExecutionPasswordFile"),
        ];
        for (controller, cluster, nodes, expected) in cases {
            assert_eq!(controller_error(&controller, cluster, nodes), expected);
        }
    }

    /// Writes `text` to `dir/name`, mode `mode`.
    fn write_mode(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, text).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }

    const SLAVE: &str = "clusterReplicationMode=slave\n";
    const MASTER_CTL: &str = "clusterReplicationMasterCtl=127.0.0.1:7848\n";

    #[test]
    fn replication_passwords_come_from_files_relative_to_the_config_folder() {
        let d = dir_with(
            &format!("{SITE}{MASTER_CTL}clusterReplicationMasterPasswordFile=secrets/master.pw\n"),
            &format!("{SLAVE}clusterReplicationExecutionPasswordFile=exec.pw\ndnode2.clusterReplicationExecutionPasswordFile=secrets/dnode2.pw\n"),
            NODES,
        );
        write_mode(d.path(), "secrets/master.pw", "from-a-file\n", 0o600);
        write_mode(d.path(), "exec.pw", "exec one\n", 0o600);
        write_mode(d.path(), "secrets/dnode2.pw", "exec-two", 0o400);

        let mut c = load_controller(d.path()).expect("controller");
        let r = c.replication.as_ref().expect("replication");
        let file = r.master_password_file.as_ref().expect("a password file");
        assert_eq!(file.path, d.path().join("secrets/master.pw"));
        assert_eq!(r.master_password, "", "not read before the start check");
        c.read_password_files().expect("read");
        let r = c.replication.expect("replication");
        assert_eq!(r.master_password, "from-a-file", "one newline removed");

        for (alias, want) in [("dnode1", "exec one"), ("dnode2", "exec-two")] {
            let mut dn = load_datanode(d.path(), alias).expect("data node");
            dn.read_password_files().expect("read");
            assert_eq!(
                dn.replication.expect("replication").execution_password,
                want
            );
        }
        // Without the file keys, the clear keys and their defaults are as before.
        let plain = dir_with(
            &format!("{SITE}{MASTER_CTL}clusterReplicationMasterPassword=clear\n"),
            SLAVE,
            NODES,
        );
        let mut c = load_controller(plain.path()).expect("controller");
        c.read_password_files().expect("nothing to read");
        let r = c.replication.expect("replication");
        assert_eq!(
            (r.master_password.as_str(), r.master_password_file),
            ("clear", None)
        );
        let dn = load_datanode(plain.path(), "dnode1").expect("data node");
        assert_eq!(
            dn.replication.expect("replication").execution_password,
            defaults::CLUSTER_REPLICATION_EXECUTION_PASSWORD
        );
    }

    #[test]
    fn an_empty_open_or_missing_password_file_is_an_error_naming_the_key() {
        let d = dir_with(
            &format!("{SITE}{MASTER_CTL}clusterReplicationMasterPasswordFile=master.pw\n"),
            SLAVE,
            NODES,
        );
        let read = || {
            let mut c = load_controller(d.path()).expect("controller");
            c.read_password_files().expect_err("must fail").to_string()
        };
        let file = d.path().join("master.pw");
        let prefix = format!(
            "{}:3: clusterReplicationMasterPasswordFile: ",
            d.path().join(CONTROLLER_CFG).display()
        );
        let e = read();
        assert!(e.starts_with(&prefix), "{e}");
        assert!(e.contains("master.pw does not exist"), "{e}");
        write_mode(d.path(), "master.pw", "\n", 0o600);
        let e = read();
        assert_eq!(
            e,
            format!(
                "{prefix}the password file {} is empty: write the password in it (one line)",
                file.display()
            )
        );
        write_mode(d.path(), "master.pw", "s3cret\n", 0o644);
        let e = read();
        assert_eq!(
            e,
            format!(
                "{prefix}the password file {0} is readable by others (mode 0644): run chmod 600 {0}",
                file.display()
            )
        );
        // The data node's key, in cluster.cfg.
        let d = dir_with(
            &format!("{SITE}{MASTER_CTL}"),
            "clusterReplicationMode=slave\ndnode1.clusterReplicationExecutionPasswordFile=none.pw\n",
            NODES,
        );
        let mut dn = load_datanode(d.path(), "dnode1").expect("data node");
        let e = dn.read_password_files().expect_err("missing");
        assert_eq!(
            (e.line, e.key.as_str()),
            (Some(2), "clusterReplicationExecutionPasswordFile")
        );
        assert!(e.file.ends_with(CLUSTER_CFG), "{e}");
        // The controller checks cluster.cfg but never reads a data node's password file.
        let mut c = load_controller(d.path()).expect("controller");
        c.read_password_files()
            .expect("the controller has no file of its own");
    }

    #[test]
    fn a_missing_file_is_named() {
        let d = tempfile::tempdir().expect("tempdir");
        let e = load_controller(d.path()).expect_err("no files");
        assert_eq!(e.line, None);
        assert!(e.file.ends_with(CLUSTER_NODES), "{e}");
        assert!(e.message.starts_with("cannot read"), "{e}");
    }

    #[test]
    fn unknown_data_node_alias_is_refused() {
        let d = dir_with(SITE, "", NODES);
        let e = load_datanode(d.path(), "dnode7").expect_err("unknown alias");
        assert_eq!(e.key, "dnode7");
    }
}
