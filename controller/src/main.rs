//! `controller --cfg-dir DIR`: starts the controller of the cluster described in DIR.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

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
    let args = Args::parse();
    let cfg = match xrepl_common::config::load_controller(&args.cfg_dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    xrepl_common::logging::init(&cfg.log_level);
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        let shutdown = xrepl_common::logging::shutdown_on_signal();
        xrepl_controller::run(cfg, shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
