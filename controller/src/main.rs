//! `controller --cfg-dir DIR`: starts the controller of the cluster described in DIR.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use xrepl_proto::rpc::tls::node_secrets;

/// Stack of every runtime thread (the default of 2 MiB is plenty for the controller).
const STACK: usize = 2 * 1024 * 1024;

#[derive(Parser)]
#[command(
    version,
    about = "xrepl controller: metadata, users and data node registry of one cluster"
)]
struct Args {
    /// Folder holding controller.cfg, cluster.nodes and cluster.cfg.
    #[arg(long, value_name = "DIR")]
    cfg_dir: PathBuf,
}

fn main() -> ExitCode {
    // Before anything is created: every file and folder of this process is private.
    xrepl_core::process::private_umask();
    let args = Args::parse();
    let mut cfg = match xrepl_core::config::load_controller(&args.cfg_dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // Before any secret is read or any data is opened: none of them may be open to others.
    if let Err(code) = xrepl_core::process::check_secrets(&mut cfg) {
        return code;
    }
    let mode = cfg.replication.as_ref().map(|r| r.mode);
    let (key, tls) = match node_secrets(&cfg.cluster_key_file, &cfg.tls, mode) {
        Ok(secrets) => secrets,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    xrepl_core::process::run_server(&cfg.log_level.clone(), STACK, |shutdown| async move {
        let listener = xrepl_controller::bind(&cfg).await?;
        xrepl_controller::run(cfg, key, tls, listener, shutdown).await
    })
}
