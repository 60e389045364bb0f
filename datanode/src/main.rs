//! `datanode --cfg-dir DIR --alias NAME`: starts data node NAME of the cluster described in DIR.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use xrepl_proto::rpc::tls::node_secrets;

/// Stack of every runtime thread, session threads included.
const SESSION_STACK: usize = 16 * 1024 * 1024;

#[derive(Parser)]
#[command(
    version,
    about = "xrepl data node: serves sessions and stores partitions"
)]
struct Args {
    /// Folder holding cluster.nodes and cluster.cfg.
    #[arg(long, value_name = "DIR")]
    cfg_dir: PathBuf,
    /// This node's alias in cluster.nodes.
    #[arg(long)]
    alias: String,
}

fn main() -> ExitCode {
    // Before anything is created: every file and folder of this process is private.
    xrepl_core::process::private_umask();
    let args = Args::parse();
    let mut cfg = match xrepl_core::config::load_datanode(&args.cfg_dir, &args.alias) {
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
    // Sessions evaluate scripts on the blocking pool; the evaluator recurses once per level of
    // the syntax tree (at most 256, the parser's limit), so give those threads room.
    xrepl_core::process::run_server(
        &cfg.log_level.clone(),
        SESSION_STACK,
        |shutdown| async move {
            let listener = xrepl_datanode::bind(&cfg).await?;
            xrepl_datanode::run(cfg, key, tls, listener, shutdown).await
        },
    )
}
