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

type FilterHandle =
    tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>;

/// The running process's log filter, changed by [`set_log_level`].
static LOG_FILTER: std::sync::OnceLock<FilterHandle> = std::sync::OnceLock::new();

/// Logs to standard error at `level` (overridable with `RUST_LOG`); [`set_log_level`] changes
/// it while the process runs.
pub fn init(level: &str) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init()
        .is_ok()
    {
        let _ = LOG_FILTER.set(handle);
    }
}

/// The tracing level of a DolphinDB log level name (`DEBUG`, `INFO`, `WARNING`, `ERROR`; also
/// `TRACE` and `WARN`), in any case.
pub fn log_level(name: &str) -> Result<&'static str, String> {
    match name.to_ascii_uppercase().as_str() {
        "TRACE" => Ok("trace"),
        "DEBUG" => Ok("debug"),
        "INFO" => Ok("info"),
        "WARNING" | "WARN" => Ok("warn"),
        "ERROR" => Ok("error"),
        _ => Err(format!(
            "unknown log level '{name}': DEBUG, INFO, WARNING or ERROR"
        )),
    }
}

/// `setLogLevel(level)`: this process logs at `level` from now on (until it restarts, when
/// `logLevel` of its configuration applies again).
pub fn set_log_level(name: &str) -> Result<(), String> {
    let level = log_level(name)?;
    let handle = LOG_FILTER
        .get()
        .ok_or("this process does not log through a filter that can change")?;
    handle
        .reload(tracing_subscriber::EnvFilter::new(level))
        .map_err(|e| format!("cannot change the log level: {e}"))?;
    tracing::warn!(level = name, "log level changed by setLogLevel");
    Ok(())
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
