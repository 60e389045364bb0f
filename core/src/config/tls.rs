//! The TLS keys, read the same way from `controller.cfg` and `cluster.cfg`.

use std::path::{Path, PathBuf};

use super::{ConfigError, KeyValues, ReplicationMode};

/// `enableTLS`, `enableClusterReplicationSSL`, `tlsCertFile`, `tlsKeyFile` and `tlsCAFile`
/// (paths relative to the config folder).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TlsSettings {
    /// `enableTLS`: every listener of the cluster speaks TLS only, and every connection
    /// within the cluster verifies its peer against `tlsCAFile`.
    pub enabled: bool,
    /// `enableClusterReplicationSSL`: on a slave, its links to the master are TLS, verified
    /// against `tlsCAFile`; on a master, slaves must come over TLS.
    pub replication_ssl: bool,
    /// `tlsCertFile`: this node's certificate chain (PEM).
    pub cert_file: Option<PathBuf>,
    /// `tlsKeyFile`: the private key of that certificate (PEM).
    pub key_file: Option<PathBuf>,
    /// `tlsCAFile`: the CA certificates peers are verified against (PEM).
    pub ca_file: Option<PathBuf>,
}

impl TlsSettings {
    /// Takes the TLS keys of `kv`; `mode` is the cluster's replication role, which says which
    /// files `enableClusterReplicationSSL` needs.
    pub(super) fn take(
        kv: &mut KeyValues,
        cfg_dir: &Path,
        mode: Option<ReplicationMode>,
    ) -> Result<TlsSettings, ConfigError> {
        let enabled_line = kv.entries.get("enableTLS").map(|e| e.line);
        let ssl_line = kv
            .entries
            .get("enableClusterReplicationSSL")
            .map(|e| e.line);
        let s = TlsSettings {
            enabled: kv.boolean("enableTLS", false)?,
            replication_ssl: kv.boolean("enableClusterReplicationSSL", false)?,
            cert_file: kv.path("tlsCertFile", cfg_dir),
            key_file: kv.path("tlsKeyFile", cfg_dir),
            ca_file: kv.path("tlsCAFile", cfg_dir),
        };
        let missing =
            |key: &str, why: &str, line| kv.error(key, line, format!("required because {why}"));
        if s.enabled {
            let why = "enableTLS=true";
            if s.cert_file.is_none() {
                return Err(missing("tlsCertFile", why, enabled_line));
            }
            if s.key_file.is_none() {
                return Err(missing("tlsKeyFile", why, enabled_line));
            }
            if s.ca_file.is_none() {
                return Err(missing("tlsCAFile", why, enabled_line));
            }
        }
        if s.replication_ssl {
            match mode {
                None => {
                    return Err(kv.error(
                        "enableClusterReplicationSSL",
                        ssl_line,
                        "needs clusterReplicationMode (master or slave) in cluster.cfg",
                    ))
                }
                Some(ReplicationMode::Master) => {
                    let why = "enableClusterReplicationSSL=true on a master cluster";
                    if s.cert_file.is_none() {
                        return Err(missing("tlsCertFile", why, ssl_line));
                    }
                    if s.key_file.is_none() {
                        return Err(missing("tlsKeyFile", why, ssl_line));
                    }
                }
                Some(ReplicationMode::Slave) => {
                    if s.ca_file.is_none() {
                        return Err(missing(
                            "tlsCAFile",
                            "enableClusterReplicationSSL=true on a slave cluster",
                            ssl_line,
                        ));
                    }
                }
            }
        }
        Ok(s)
    }
}
