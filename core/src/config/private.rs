//! Which of a node's files and folders must be private (see `crate::secrets`), and the
//! `...PasswordFile` keys, whose files are read at start after those checks.

use std::path::{Path, PathBuf};

use super::{ConfigError, ControllerConfig, DataNodeConfig, ReplicationMode};
use crate::secrets::{check_all, PrivatePath};

/// A `...PasswordFile` key: the file holding a password (read at start, after the file
/// modes are checked, by `read_password_files`), and where the key was set, for errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordFile {
    /// The password file, resolved against the config folder.
    pub path: PathBuf,
    /// The config file and line that set the key, and the key.
    pub(super) origin: (PathBuf, usize, &'static str),
}

impl PasswordFile {
    /// Reads the password (see [`crate::secrets::read_password_file`]); the error names the
    /// config file, line and key that point at the file.
    fn read(&self) -> Result<String, ConfigError> {
        let (file, line, key) = &self.origin;
        crate::secrets::read_password_file(&self.path).map_err(|message| ConfigError {
            file: file.clone(),
            line: Some(*line),
            key: (*key).to_string(),
            message,
        })
    }
}

/// A node's configuration as its start-time checks see it: what must be private, and the
/// password files to read once it is.
pub trait NodeSecrets {
    /// The files and folders that must not be open to the group or others, in the order they
    /// are checked.
    fn private_paths(&self) -> Vec<PrivatePath>;

    /// Reads the `...PasswordFile` keys' files into the passwords; the error names the key.
    fn read_password_files(&mut self) -> Result<(), ConfigError>;

    /// Checks everything [`Self::private_paths`] names; the first failure.
    fn check_private(&self) -> Result<(), String> {
        check_all(&self.private_paths())
    }
}

/// What every node keeps private first: the cluster key file, the TLS private key, and the
/// password file its config names, with the key that names it.
fn key_paths(
    cluster_key_file: &Path,
    tls_key_file: Option<&PathBuf>,
    password_file: Option<(&PasswordFile, &'static str)>,
) -> Vec<PrivatePath> {
    let mut out = vec![PrivatePath::new(cluster_key_file, "the cluster key file")];
    if let Some(k) = tls_key_file {
        out.push(PrivatePath::new(k, "the TLS private key file (tlsKeyFile)"));
    }
    if let Some((f, what)) = password_file {
        out.push(PrivatePath::new(&f.path, what));
    }
    out
}

impl NodeSecrets for ControllerConfig {
    /// The cluster key file, the TLS private key, the master password file, the administrator
    /// password file, the home folder and the metadata folder in it.
    fn private_paths(&self) -> Vec<PrivatePath> {
        let master = self
            .replication
            .as_ref()
            .and_then(|r| r.master_password_file.as_ref());
        let mut out = key_paths(
            &self.cluster_key_file,
            self.tls.key_file.as_ref(),
            master.map(|f| {
                (
                    f,
                    "the password file (clusterReplicationMasterPasswordFile)",
                )
            }),
        );
        if let Some(f) = &self.admin_password_file {
            out.push(PrivatePath::new(
                f,
                "the administrator password file (adminPasswordFile)",
            ));
        }
        out.push(PrivatePath::new(&self.home, "the controller's home folder"));
        out.push(PrivatePath::new(
            &self.home.join("meta"),
            "the metadata folder",
        ));
        out
    }

    /// `clusterReplicationMasterPasswordFile` into `master_password`.
    fn read_password_files(&mut self) -> Result<(), ConfigError> {
        if let Some(r) = self.replication.as_mut() {
            if let Some(f) = &r.master_password_file {
                r.master_password = f.read()?;
            }
        }
        Ok(())
    }
}

impl NodeSecrets for DataNodeConfig {
    /// The cluster key file, the TLS private key, the execution password file, the home folder
    /// and, on a master, the replication work folder.
    fn private_paths(&self) -> Vec<PrivatePath> {
        let execution = self
            .replication
            .as_ref()
            .and_then(|r| r.execution_password_file.as_ref());
        let mut out = key_paths(
            &self.cluster_key_file,
            self.tls.key_file.as_ref(),
            execution.map(|f| {
                (
                    f,
                    "the password file (clusterReplicationExecutionPasswordFile)",
                )
            }),
        );
        out.push(PrivatePath::new(&self.home, "the data node's home folder"));
        if let Some(r) = self
            .replication
            .as_ref()
            .filter(|r| r.mode == ReplicationMode::Master)
        {
            out.push(PrivatePath::new(
                &r.work_dir,
                "the replication work folder (clusterReplicationWorkDir)",
            ));
        }
        out
    }

    /// `clusterReplicationExecutionPasswordFile` into `execution_password`.
    fn read_password_files(&mut self) -> Result<(), ConfigError> {
        if let Some(r) = self.replication.as_mut() {
            if let Some(f) = &r.execution_password_file {
                r.execution_password = f.read()?;
            }
        }
        Ok(())
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::NodeSecrets;
    use std::os::unix::fs::PermissionsExt;

    fn chmod(p: &std::path::Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn each_node_checks_its_key_files_password_file_and_folders_in_order() {
        let d = tempfile::tempdir().expect("tmp");
        let p = d.path();
        std::fs::write(
            p.join(crate::config::CLUSTER_NODES),
            "localSite,mode\n127.0.0.1:8848:controller1,controller\n127.0.0.1:8849:dnode1,datanode\n",
        )
        .expect("write");
        std::fs::write(
            p.join(crate::config::CONTROLLER_CFG),
            "localSite=127.0.0.1:8848:controller1\nclusterReplicationMasterCtl=127.0.0.1:7848\nclusterReplicationMasterPasswordFile=m.pw\ntlsKeyFile=node.key\n",
        )
        .expect("write");
        std::fs::write(
            p.join(crate::config::CLUSTER_CFG),
            "clusterReplicationMode=slave\nclusterReplicationExecutionPasswordFile=e.pw\n",
        )
        .expect("write");
        let c = crate::config::load_controller(p).expect("controller");
        let whats: Vec<&str> = c.private_paths().iter().map(|x| x.what).collect();
        assert_eq!(
            whats,
            [
                "the cluster key file",
                "the TLS private key file (tlsKeyFile)",
                "the password file (clusterReplicationMasterPasswordFile)",
                "the controller's home folder",
                "the metadata folder",
            ]
        );
        let dn = crate::config::load_datanode(p, "dnode1").expect("data node");
        let paths = dn.private_paths();
        assert_eq!(
            paths.iter().map(|x| x.path.clone()).collect::<Vec<_>>(),
            [
                p.join("cluster.key"),
                p.join("e.pw"),
                p.join("data").join("dnode1"),
            ]
        );
        c.check_private().expect("nothing exists yet");
        for (name, what) in [
            ("cluster.key", "the cluster key file"),
            ("node.key", "the TLS private key file (tlsKeyFile)"),
            (
                "m.pw",
                "the password file (clusterReplicationMasterPasswordFile)",
            ),
        ] {
            std::fs::write(p.join(name), "x").expect("write");
            chmod(&p.join(name), 0o644);
            let e = c.check_private().expect_err("open");
            assert!(e.starts_with(what), "{e}");
            chmod(&p.join(name), 0o600);
        }
        let meta = p.join("data").join("controller1").join("meta");
        std::fs::create_dir_all(&meta).expect("mkdir");
        chmod(&p.join("data").join("controller1"), 0o700);
        chmod(&meta, 0o750);
        let e = c.check_private().expect_err("open meta");
        assert!(e.starts_with("the metadata folder"), "{e}");
        chmod(&meta, 0o700);
        c.check_private().expect("all private");
    }
}
