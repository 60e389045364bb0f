//! `xrepl`: the console. Connects to a data node, logs in, runs scripts, prints results.
//!
//! Exit codes: 0 all statements ran; 1 a statement failed; 2 the console could not start
//! (bad arguments, unreachable node, refused login, unreadable file).

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use xrepl_core::config::defaults;
use xrepl_core::value::Value;
use xrepl_proto::rpc::{ClientTls, PeerKind, RemoteError, RpcClient, SessionReply, SessionRequest};
use xrepl_query::format;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Aligned columns for people.
    Table,
    /// One JSON value per result (a table is an array of row objects).
    Json,
}

#[derive(Parser)]
#[command(
    version,
    about = "xrepl console: run statements on a data node",
    after_help = "Without -c or FILE, reads statements interactively (or from standard input when it is not a terminal)."
)]
struct Args {
    /// Data node to connect to, host:port.
    #[arg(long, default_value = "127.0.0.1:8849")]
    host: String,
    /// Log in as this user before running anything.
    #[arg(long, requires = "password")]
    user: Option<String>,
    /// Password of --user.
    #[arg(long, requires = "user")]
    password: Option<String>,
    /// Run this script and exit.
    #[arg(
        short = 'c',
        value_name = "SCRIPT",
        conflicts_with = "file",
        allow_hyphen_values = true
    )]
    command: Option<String>,
    /// Run the statements in this file and exit.
    file: Option<PathBuf>,
    /// How to print results.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Connect over TLS, trusting the CA certificates in this PEM file (for a cluster with
    /// enableTLS=true).
    #[arg(long, value_name = "FILE", env = "XREPL_TLS_CA")]
    tls_ca: Option<PathBuf>,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

struct Console {
    client: RpcClient,
    format: Format,
}

impl Console {
    /// Runs one script; prints its results and its error. `false` when a statement failed.
    async fn run(&self, script: &str) -> bool {
        let req = SessionRequest::Run {
            script: script.to_string(),
        };
        match self.client.call(req).await {
            Ok(Ok(SessionReply::Ran { outputs, error })) => {
                for v in &outputs {
                    self.print(v);
                }
                match error {
                    Some(e) => {
                        eprintln!("{e}");
                        false
                    }
                    None => true,
                }
            }
            Ok(Ok(other)) => {
                eprintln!("unexpected answer: {other:?}");
                false
            }
            Ok(Err(e)) => {
                eprintln!("{e}");
                false
            }
            Err(e) => {
                eprintln!("{e}");
                false
            }
        }
    }

    #[allow(clippy::print_stdout)]
    fn print(&self, v: &Value) {
        match self.format {
            Format::Table => {
                if let Some(s) = format::render(v) {
                    println!("{s}");
                }
            }
            Format::Json => println!("{}", format::to_json(v)),
        }
    }
}

/// Whether the brackets of `text` are still open (outside strings and comments), so that the
/// interactive console asks for another line.
fn needs_more(text: &str) -> bool {
    let mut depth: i64 = 0;
    let mut chars = text.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(_), '\\') => {
                chars.next();
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '/') if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            (None, '(' | '[' | '{') => depth += 1,
            (None, ')' | ']' | '}') => depth -= 1,
            _ => {}
        }
    }
    depth > 0
}

fn history_path() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".xrepl_history"))
}

async fn interactive(console: &Console) {
    let mut editor = match rustyline::DefaultEditor::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("cannot start the line editor: {e}");
            return;
        }
    };
    let history = history_path();
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    let alias = console.client.server().alias.clone();
    let mut pending = String::new();
    loop {
        let prompt = if pending.is_empty() {
            format!("{alias}> ")
        } else {
            format!("{:width$}. ", "", width = alias.len())
        };
        match editor.readline(&prompt) {
            Ok(line) => {
                if !pending.is_empty() {
                    pending.push('\n');
                }
                pending.push_str(&line);
                if needs_more(&pending) {
                    continue;
                }
                let script = std::mem::take(&mut pending);
                if script.trim().is_empty() {
                    continue;
                }
                let _ = editor.add_history_entry(script.as_str());
                if matches!(script.trim(), "quit" | "exit") {
                    break;
                }
                console.run(&script).await;
                if !console.client.is_open() {
                    eprintln!("the connection to {} was lost", console.client.addr());
                    break;
                }
            }
            Err(rustyline::error::ReadlineError::Interrupted) => pending.clear(),
            Err(rustyline::error::ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("{e}");
                break;
            }
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
}

async fn start(args: Args) -> ExitCode {
    let tls = match &args.tls_ca {
        None => ClientTls::plain(),
        Some(ca) => match ClientTls::with_ca(ca) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("--tls-ca: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let client = match RpcClient::connect(
        &args.host,
        PeerKind::Client,
        &tls,
        defaults::MAX_FRAME_SIZE as usize,
        CONNECT_TIMEOUT,
    )
    .await
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if let (Some(user), Some(password)) = (args.user.clone(), args.password.clone()) {
        let req = SessionRequest::Login { user, password };
        let refused: Option<String> = match client.call(req).await {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(RemoteError::to_string(&e)),
            Err(e) => Some(e.to_string()),
        };
        if let Some(r) = refused {
            eprintln!("{r}");
            return ExitCode::from(2);
        }
    }
    let console = Console {
        client,
        format: args.format,
    };
    let script = if let Some(c) = args.command {
        Some(c)
    } else if let Some(f) = &args.file {
        match std::fs::read_to_string(f) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("cannot read {}: {e}", f.display());
                return ExitCode::from(2);
            }
        }
    } else if !std::io::stdin().is_terminal() {
        let mut s = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut s) {
            eprintln!("cannot read standard input: {e}");
            return ExitCode::from(2);
        }
        Some(s)
    } else {
        None
    };
    match script {
        Some(s) => {
            if console.run(&s).await {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        None => {
            interactive(&console).await;
            ExitCode::SUCCESS
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        xrepl_core::process::init("warn");
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    rt.block_on(start(args))
}

#[cfg(test)]
mod tests {
    use super::needs_more;

    #[test]
    fn continues_while_brackets_are_open() {
        assert!(needs_more("if (x) {"));
        assert!(!needs_more("if (x) { y }"));
        assert!(!needs_more("s = \"{\""));
        assert!(!needs_more("x = 1 // {"));
        assert!(needs_more("f(1,\n"));
    }
}
