//! Process setup shared by the server binaries: logging, the runtime, the shutdown signal and
//! the exit code.

use std::fmt::Display;
use std::future::Future;
use std::io::IsTerminal;
use std::process::ExitCode;

use tokio::sync::watch;

/// Makes every file and folder this process creates from now on private to its user: sets
/// the umask to `077` (files `0600`, folders `0700`), whatever the shell that started it had.
/// The server binaries call it first thing, before any thread exists, so that their data,
/// write-ahead logs, sled trees and task files are never readable by others
/// (see the `secrets` module).
pub fn private_umask() {
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Logs to standard error at `level` (overridable with `RUST_LOG`).
pub fn init(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// A receiver that turns true on SIGINT or SIGTERM: the one shutdown signal every task watches.
pub fn shutdown_on_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(t) => t,
                    Err(_) => {
                        let _ = ctrl_c.await;
                        let _ = tx.send(true);
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down");
        let _ = tx.send(true);
    });
    rx
}

/// Runs a server process: logging at `log_level`, a multi-threaded runtime whose threads have
/// `stack_size` bytes of stack, and `run(shutdown)` until it ends. A failure is logged and
/// printed as one `error: ...` line, and the process exits with 1.
pub fn run_server<F, E>(
    log_level: &str,
    stack_size: usize,
    run: impl FnOnce(watch::Receiver<bool>) -> F,
) -> ExitCode
where
    F: Future<Output = Result<(), E>>,
    E: Display,
{
    init(log_level);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(stack_size)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(async { run(shutdown_on_signal()).await }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Before a node reads any secret or opens any data: what it keeps must not be open to others
/// (exit code 1 otherwise, with the path and the `chmod` that fixes it), and then its password
/// files are read (exit code 2 when one is bad, as for a bad config line).
pub fn check_secrets(cfg: &mut impl crate::config::NodeSecrets) -> Result<(), ExitCode> {
    if let Err(e) = cfg.check_private() {
        eprintln!("error: {e}");
        return Err(ExitCode::from(1));
    }
    cfg.read_password_files().map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}
