//! `xrepl`: the console. Connects to a data node, logs in, runs scripts, prints results.
//!
//! Exit codes: 0 all statements ran; 1 a statement failed; 2 the console could not start
//! (bad arguments, no password for `--user` without a terminal, unreachable node, refused
//! login, unreadable file).
//!
//! A statement that starts a bootstrap or a re-sync is followed by a progress bar on standard
//! error (on a terminal, or with `XREPL_PROGRESS=1`; see [`progress`]).
//!
//! Secrets: `--user` without `--password` asks for the password on the terminal, without
//! echo. The interactive history (`~/.xrepl_history`, mode 0600) never keeps a statement that
//! calls `login`, `createUser`, `changePwd` or `resetPwd` ([`keep_in_history`]).

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use xrepl_core::config::defaults;
use xrepl_core::value::Value;
use xrepl_proto::rpc::{ClientTls, PeerKind, RemoteError, RpcClient, SessionReply, SessionRequest};
use xrepl_query::format;

mod progress;

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
    /// Log in as this user before running anything. Without --password, the console asks
    /// for the password on the terminal (without echo).
    #[arg(long)]
    user: Option<String>,
    /// Password of --user. Other users of the machine can see a command line: leave it out
    /// to be asked for the password instead.
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
                    None => {
                        if let Some(f) = progress::follows(script, &outputs) {
                            if progress::wanted() {
                                progress::follow(f, || self.bootstrap_status()).await;
                            }
                        }
                        true
                    }
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

    /// `getClusterReplicationBootstrapStatus()` of this node's controller (`None`: it cannot
    /// be read, e.g. the user is not an administrator).
    async fn bootstrap_status(&self) -> Option<xrepl_core::value::Table> {
        let req = SessionRequest::Run {
            script: "rpc(getControllerAlias(), getClusterReplicationBootstrapStatus)".into(),
        };
        match self.client.call(req).await {
            Ok(Ok(SessionReply::Ran {
                outputs,
                error: None,
            })) => outputs.into_iter().rev().find_map(|v| match v {
                Value::Table(t) => Some(t),
                _ => None,
            }),
            _ => None,
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

/// The functions whose arguments are passwords: a statement that names one stays out of the
/// history file.
const SECRET_FUNCTIONS: &[&str] = &["login", "createUser", "changePwd", "resetPwd"];

/// Whether the interactive console may keep `script` in its history file: not when it names
/// one of [`SECRET_FUNCTIONS`] as a whole word (in any case), wherever it is. The test is on
/// words, not on the syntax: a string or a comment that holds the word (`print("login")`)
/// keeps the statement out too, and so does a variable named `login`; a longer name that
/// contains it (`loginTime`, `getUserList`) does not. Being conservative is the point: a
/// statement missing from the history costs a retype, a password in the file is a leak.
fn keep_in_history(script: &str) -> bool {
    let words = script.split(|c: char| !(c.is_alphanumeric() || c == '_'));
    !words
        .filter(|w| !w.is_empty())
        .any(|w| SECRET_FUNCTIONS.iter().any(|f| f.eq_ignore_ascii_case(w)))
}

/// Loads the history file, less the statements [`keep_in_history`] refuses: an older console
/// may have kept them, and the file is rewritten at once without them.
fn load_history(editor: &mut rustyline::DefaultEditor, path: &std::path::Path) {
    use rustyline::history::History;
    if editor.load_history(path).is_err() {
        return;
    }
    let entries: Vec<String> = editor.history().iter().cloned().collect();
    if entries.iter().all(|e| keep_in_history(e)) {
        return;
    }
    let _ = editor.clear_history();
    for e in entries.iter().filter(|e| keep_in_history(e)) {
        let _ = editor.add_history_entry(e.as_str());
    }
    if editor.history().is_empty() {
        let _ = std::fs::remove_file(path);
    } else {
        save_history(editor, path);
    }
}

/// Saves the history file, mode 0600 (rustyline creates it so; this holds whatever made it).
fn save_history(editor: &mut rustyline::DefaultEditor, path: &std::path::Path) {
    let _ = editor.save_history(path);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
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
        load_history(&mut editor, h);
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
                if keep_in_history(&script) {
                    let _ = editor.add_history_entry(script.as_str());
                }
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
        save_history(&mut editor, h);
    }
}

/// What one byte typed at the password prompt does to the password typed so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PromptStep {
    /// Keep reading.
    More,
    /// Enter: the password is complete.
    Done,
    /// Ctrl-C: give up.
    Interrupted,
    /// Ctrl-D on an empty line, or the end of input: no password.
    Ended,
}

/// Applies one byte typed at the password prompt (the terminal in raw mode, so the console
/// does the line editing: backspace removes a character, Ctrl-U the line).
fn prompt_key(typed: &mut Vec<u8>, byte: u8) -> PromptStep {
    match byte {
        b'\r' | b'\n' => PromptStep::Done,
        0x03 => PromptStep::Interrupted,
        0x04 if typed.is_empty() => PromptStep::Ended,
        0x04 => PromptStep::More,
        0x7f | 0x08 => {
            // A whole UTF-8 character: its continuation bytes, then its first byte.
            while typed.last().is_some_and(|b| b & 0xc0 == 0x80) {
                typed.pop();
            }
            typed.pop();
            PromptStep::More
        }
        0x15 => {
            typed.clear();
            PromptStep::More
        }
        b => {
            typed.push(b);
            PromptStep::More
        }
    }
}

/// Asks for `user`'s password on the terminal of standard input, without echo (prompt on
/// standard error). The terminal's settings are restored before it returns, Ctrl-C included.
/// The error is the sentence to print.
fn ask_password(user: &str) -> Result<String, String> {
    use rustix::termios::{self, LocalModes, OptionalActions, SpecialCodeIndex};
    use std::io::Write;
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(format!(
            "--user {user}: no password: pass --password, or run the console in a terminal to be asked for it"
        ));
    }
    let saved = termios::tcgetattr(&stdin)
        .map_err(|e| format!("cannot set up the terminal for the password: {e}"))?;
    let mut raw = saved.clone();
    raw.local_modes
        .remove(LocalModes::ECHO | LocalModes::ICANON | LocalModes::ISIG | LocalModes::IEXTEN);
    raw.special_codes[SpecialCodeIndex::VMIN] = 1;
    raw.special_codes[SpecialCodeIndex::VTIME] = 0;
    eprint!("Password for {user}: ");
    let _ = std::io::stderr().flush();
    termios::tcsetattr(&stdin, OptionalActions::Flush, &raw)
        .map_err(|e| format!("cannot set up the terminal for the password: {e}"))?;
    let mut typed = Vec::new();
    let step = loop {
        let mut byte = [0u8; 1];
        match rustix::io::read(&stdin, &mut byte) {
            Ok(0) => break PromptStep::Ended,
            Ok(_) => match prompt_key(&mut typed, byte[0]) {
                PromptStep::More => {}
                end => break end,
            },
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => break PromptStep::Ended,
        }
    };
    let _ = termios::tcsetattr(&stdin, OptionalActions::Now, &saved);
    eprintln!();
    match step {
        PromptStep::Done => {
            String::from_utf8(typed).map_err(|_| "the password typed is not UTF-8 text".to_string())
        }
        PromptStep::Interrupted => Err("interrupted: no password given".into()),
        PromptStep::Ended | PromptStep::More => Err(format!("--user {user}: no password given")),
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
    let mut args = Args::parse();
    if let (Some(user), None) = (&args.user, &args.password) {
        match ask_password(user) {
            Ok(p) => args.password = Some(p),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        }
    }
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
    use super::{keep_in_history, needs_more, prompt_key, PromptStep};

    #[test]
    fn statements_that_carry_a_password_stay_out_of_the_history() {
        for secret in [
            r#"login("a","b")"#,
            r#" createUser ( "u", "p" )"#,
            r#"x = 1; changePwd("a","b")"#,
            r#"resetPwd("bob", "n3w-pass")"#,
            "rpc(getControllerAlias(), createUser, \"u\", \"p\")",
            "x = 1\nlogin(\"admin\", \"123456\")\ny = 2",
            r#"LOGIN("a", "b")"#,
            // Conservative: the word anywhere, in a string or a comment too.
            r#"print("login")"#,
            "1 + 1 // then createUser",
        ] {
            assert!(!keep_in_history(secret), "kept: {secret}");
        }
        for plain in [
            "getUserList()",
            "loginTime = now()",
            "select * from loadTable(\"dfs://db\", \"t\")",
            "logout()",
            r#"grant("bob", DB_READ, "dfs://db")"#,
            "",
        ] {
            assert!(keep_in_history(plain), "left out: {plain}");
        }
    }

    #[test]
    fn the_password_prompt_edits_the_line_and_stops_on_enter_ctrl_c_or_ctrl_d() {
        let run = |keys: &[u8]| {
            let mut typed = Vec::new();
            for &k in keys {
                match prompt_key(&mut typed, k) {
                    PromptStep::More => {}
                    end => return (end, String::from_utf8(typed).expect("utf-8")),
                }
            }
            (PromptStep::More, String::from_utf8(typed).expect("utf-8"))
        };
        assert_eq!(run(b"s3cret\r"), (PromptStep::Done, "s3cret".into()));
        assert_eq!(run(b"s3cret\n"), (PromptStep::Done, "s3cret".into()));
        assert_eq!(run(b"ab\x7fc\r"), (PromptStep::Done, "ac".into()));
        assert_eq!(run(b"\x7f\x08x\r"), (PromptStep::Done, "x".into()));
        assert_eq!(run("pä\x7f\r".as_bytes()), (PromptStep::Done, "p".into()));
        assert_eq!(run(b"wrong\x15right\r"), (PromptStep::Done, "right".into()));
        assert_eq!(run(b"ab\x03"), (PromptStep::Interrupted, "ab".into()));
        assert_eq!(run(b"\x04"), (PromptStep::Ended, String::new()));
        assert_eq!(run(b"a\x04b\r"), (PromptStep::Done, "ab".into()));
    }

    #[test]
    fn continues_while_brackets_are_open() {
        assert!(needs_more("if (x) {"));
        assert!(!needs_more("if (x) { y }"));
        assert!(!needs_more("s = \"{\""));
        assert!(!needs_more("x = 1 // {"));
        assert!(needs_more("f(1,\n"));
    }
}
