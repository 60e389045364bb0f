//! DolphinDB's client API protocol on a data node's port, from the outside: DolphinDB's
//! official Python client (`tests/python/*.py`, run with the interpreter of the environment
//! `scripts/python-env.sh` makes in `target/pyenv`) against real clusters, a master and
//! slave pair included; and hostile bytes starting with `API ` that must close only their
//! own connection, with the reason logged.
//!
//! The `t4x`/`t5x` regressions each began as a bug found with the client (their doc comments
//! say which).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use xrepl_tests::{closed_by_peer, Cluster, Pair, Spec};

/// The most a Python test file may take before it is killed and the test fails.
const PYTHON_LIMIT: Duration = Duration::from_secs(180);

/// `tests/python`, where the Python tests and their requirements are.
fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python")
}

/// The interpreter of `target/pyenv` (see [`xrepl_tests::pyenv_python`]).
fn python() -> PathBuf {
    xrepl_tests::pyenv_python()
}

/// Runs `tests/python/<file>` (with unittest's `args`, e.g. test class names) with `env`,
/// within [`PYTHON_LIMIT`]; panics with its output and the tail of `logs` when it fails or
/// runs no test.
fn run_python(file: &str, args: &[&str], env: &[(&str, String)], logs: &[(&Cluster, &str)]) {
    let out_dir = tempfile::tempdir().expect("a folder for the output");
    let (out_path, err_path) = (out_dir.path().join("stdout"), out_dir.path().join("stderr"));
    let file_of = |p: &Path| std::fs::File::create(p).expect("an output file");
    let start = Instant::now();
    let mut child = Command::new(python())
        .arg(python_dir().join(file))
        .args(args)
        .current_dir(python_dir())
        .env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(file_of(&out_path))
        .stderr(file_of(&err_path))
        .spawn()
        .expect("start python");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for python") {
            break Some(status);
        }
        if start.elapsed() > PYTHON_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    // unittest prints "Ran N tests" and "OK" (or "OK (skipped=...)") on stderr.
    let ran_some = stderr
        .lines()
        .any(|l| l.starts_with("Ran ") && !l.starts_with("Ran 0 "));
    let ok = stderr.lines().any(|l| l == "OK" || l.starts_with("OK ("));
    if status.is_some_and(|s| s.success()) && ran_some && ok {
        eprintln!(
            "{file} {args:?}: passed in {:.1} s",
            start.elapsed().as_secs_f64()
        );
        return;
    }
    let logs: String = logs
        .iter()
        .map(|(c, alias)| {
            let log = c.read_log(alias);
            let tail: Vec<&str> = log.lines().rev().take(25).collect();
            format!("--- {alias} log (newest first)\n{}\n", tail.join("\n"))
        })
        .collect();
    panic!(
        "tests/python/{file} {args:?} failed ({}) after {:.1} s\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n{logs}",
        match status {
            Some(s) => format!("{s}"),
            None => format!("killed after {PYTHON_LIMIT:?}"),
        },
        start.elapsed().as_secs_f64()
    );
}

/// The environment that points the Python tests at a cluster's two data nodes.
fn hosts(c: &Cluster) -> Vec<(&'static str, String)> {
    vec![
        ("XREPL_HOST", c.datanodes[0].site()),
        ("XREPL_HOST2", c.datanodes[1].site()),
    ]
}

#[test]
fn t10_the_python_client_runs_scripts_calls_functions_appends_and_reads() {
    let c = Cluster::start(&Spec::default());
    run_python(
        "test_api.py",
        &[],
        &hosts(&c),
        &[(&c, "dnode1"), (&c, "dnode2")],
    );
}

#[test]
fn t20_every_type_and_null_round_trips_through_the_python_client() {
    let c = Cluster::start(&Spec::default());
    run_python(
        "test_types.py",
        &[],
        &hosts(&c),
        &[(&c, "dnode1"), (&c, "dnode2")],
    );
}

#[test]
fn t30_the_tutorial_from_python_replicates_to_the_slave() {
    let p = Pair::start(Spec::default(), Spec::default());
    run_python(
        "test_tutorial.py",
        &[],
        &[
            ("XREPL_MASTER", p.master.host()),
            ("XREPL_SLAVE", p.slave.host()),
        ],
        &[
            (&p.master, "dnode1"),
            (&p.slave, "controller1"),
            (&p.slave, "dnode1"),
            (&p.slave, "dnode2"),
        ],
    );
    // The same, seen through the console rather than the client.
    assert_eq!(p.wait_caught_up(Duration::from_secs(30)), 4);
    let count = "select count(*) from loadTable(\"dfs://testDB\", \"testTB\")";
    assert_eq!(p.master.number(count), 200 * 242 * 2);
    assert_eq!(p.slave.number(count), 200 * 242 * 2);
}

/// A DolphinDB API connection spoken by hand: the requests the official clients send.
struct Api {
    rd: BufReader<TcpStream>,
    session: String,
}

impl Api {
    /// Connects to `site` and logs in as admin, as the Python client's `connect` does.
    fn login(site: &str) -> Api {
        let s = TcpStream::connect(site).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut api = Api {
            rd: BufReader::new(s),
            session: "0".into(),
        };
        api.send(&request(
            "API",
            "0",
            "connect\nlogin\nadmin\n123456\nfalse",
            &[],
        ));
        let head = api.line();
        let mut words = head.split(' ');
        let session = words.next().unwrap_or_default().to_string();
        assert_eq!(
            words.collect::<Vec<_>>(),
            ["1", "1"],
            "connect reply: {head}"
        );
        assert_eq!(api.line(), "OK");
        assert_eq!(api.bytes(3), [1, 0, 1], "a BOOL true");
        api.session = session;
        api
    }

    fn send(&mut self, bytes: &[u8]) {
        self.rd.get_mut().write_all(bytes).expect("send");
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.rd.read_line(&mut line).expect("a reply line");
        assert!(line.ends_with('\n'), "a whole line: {line:?}");
        line.trim_end_matches('\n').to_string()
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut b = vec![0; n];
        self.rd.read_exact(&mut b).expect("reply bytes");
        b
    }

    /// Runs `script`, whose value is an INT scalar, and answers it.
    fn int(&mut self, script: &str) -> i32 {
        let body = format!("script\n{script}");
        let req = request("API2", &self.session.clone(), &body, &[]);
        self.send(&req);
        let head = self.line();
        assert_eq!(head, format!("{} 1 1", self.session), "reply to {script}");
        let status = self.line();
        assert_eq!(status, "OK", "reply to {script}");
        let object = self.bytes(6);
        assert_eq!(object[..2], [4, 0], "an INT scalar");
        i32::from_le_bytes(object[2..].try_into().expect("4 bytes"))
    }
}

/// A request as the clients send it: `<api> <session> <bodyLength> / 0_1_4_2\n<body>`, then
/// the argument objects.
fn request(api: &str, session: &str, body: &str, objects: &[u8]) -> Vec<u8> {
    let mut r = format!("{api} {session} {} / 0_1_4_2\n{body}", body.len()).into_bytes();
    r.extend_from_slice(objects);
    r
}

/// What the data node answered on a refused connection before closing it: everything it sent
/// until it closed (within 5 s), and whether it closed.
fn answer_and_close(s: &mut TcpStream) -> (String, bool) {
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

/// Waits until a line of dnode1's log has every one of `parts` (a connection's refusal is
/// logged as it closes, so a moment after the client sees it closed).
fn logged(c: &Cluster, parts: &[&str]) {
    let start = Instant::now();
    let has = || {
        c.read_log("dnode1")
            .lines()
            .any(|l| parts.iter().all(|p| l.contains(p)))
    };
    while !has() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no log line with {parts:?} within 5 s:\n{}",
            c.read_log("dnode1")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A small deterministic generator of garbage (xorshift64*).
struct Garbage(u64);

impl Garbage {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// Text of the characters a request's first line is made of, so that some of it parses
    /// as a header and the server gets further into it than the first line.
    fn header_like(&mut self, n: usize) -> Vec<u8> {
        const ALPHABET: &[u8] = b"0123456789012345     //__\n\nAPI2x";
        (0..n)
            .map(|_| ALPHABET[(self.next() % ALPHABET.len() as u64) as usize])
            .collect()
    }
}

/// An ANY vector (a tuple) of one element, nested `depth` times around an INT scalar.
fn nested_tuple(depth: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for _ in 0..depth {
        v.extend_from_slice(&[25, 1]);
        v.extend_from_slice(&1i32.to_le_bytes());
        v.extend_from_slice(&1i32.to_le_bytes());
    }
    v.extend_from_slice(&[4, 0, 1, 0, 0, 0]);
    v
}

#[test]
fn t40_hostile_bytes_on_the_api_port_close_only_their_own_connection() {
    let c = Cluster::start(&Spec {
        cluster_cfg: "loginTimeoutMs=1000\n".into(),
        ..Spec::default()
    });
    let site = c.host();
    // A DolphinDB API session that must survive everything below, with a variable.
    let mut good = Api::login(&site);
    assert_eq!(good.int("x = 41\nx"), 41);
    let mut survived = |what: &str| {
        assert_eq!(good.int("x + 1"), 42, "{what}: the API session is broken");
        assert_eq!(c.number("1 + 2"), 3, "{what}: a console session fails");
    };

    // Refused from the first line, which was read whole: answered with one line, then closed.
    let answered: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "a body length that is not a number",
            b"API2 0 lots / 0_1_4_2\n".to_vec(),
            "bad body length 'lots' in request header",
        ),
        (
            "a first line without a body length",
            b"API 0\n".to_vec(),
            "a request header needs 'API <session> <bodyLength>'",
        ),
        (
            "bad flags",
            b"API2 0 7 / x_1_4_2\n".to_vec(),
            "bad flags 'x_1_4_2' in request header",
        ),
        (
            "a body over the limit of any request",
            b"API 0 99999999999 / 0_1_4_2\n".to_vec(),
            "a request body of 99999999999 bytes is over the limit of 268435456",
        ),
        (
            "a huge body declared before a login",
            b"API 0 100000000 / 0_1_4_2\n".to_vec(),
            "a request of 100000000 bytes is more than this connection may send now",
        ),
        (
            "a body just over 64 KiB before a login",
            b"API 0 65537 / 0_1_4_2\n".to_vec(),
            "a request of 65537 bytes is more than this connection may send now",
        ),
        (
            "an unknown request",
            request("API", "0", "drop\ntables", &[]),
            "unknown request 'drop': expected connect, script, function or variable",
        ),
        (
            "a body that is not UTF-8",
            b"API 0 4 / 0_1_4_2\n\xff\xfe\xfd\xfc".to_vec(),
            "a request's body is not UTF-8",
        ),
        (
            "a connect with an empty user",
            request("API", "0", "connect\nlogin\n\n123456\nfalse", &[]),
            "a connect request logs in with an empty user name",
        ),
    ];
    for (what, bytes, reason) in &answered {
        let mut s = TcpStream::connect(&site).expect("connect");
        s.write_all(bytes).expect("write");
        let (reply, closed) = answer_and_close(&mut s);
        assert!(closed, "{what}: the connection was left open");
        let lines: Vec<&str> = reply.split_terminator('\n').collect();
        assert_eq!(lines.len(), 2, "{what}: one header and one line: {reply:?}");
        assert_eq!(lines[0], "0 0 1", "{what}: {reply:?}");
        assert!(lines[1].contains(reason), "{what}: {reply:?}");
        survived(what);
    }

    // Refused in the middle: closed, maybe before the server read everything, so the answer
    // may be lost to a reset.
    let body = format!("script\n{}", "1".repeat(70_000));
    let mut big_object = vec![18, 0];
    big_object.extend(std::iter::repeat_n(b'a', 100_000));
    big_object.push(0);
    let closed_only: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "a body over 64 KiB sent whole before a login",
            request("API", "0", &body, &[]),
            "a request of 70007 bytes is more than this connection may send now",
        ),
        (
            "an argument over 64 KiB before a login",
            request("API", "0", "function\nsize\n1\n1", &big_object),
            "argument 1 is larger than this connection may send now",
        ),
        (
            "a first line longer than 1024 bytes",
            [b"API2 ".as_slice(), &[b'9'; 2000]].concat(),
            "a request's first line is longer than 1024 bytes",
        ),
    ];
    for (what, bytes, reason) in &closed_only {
        let mut s = TcpStream::connect(&site).expect("connect");
        let _ = s.write_all(bytes); // the server may close before it has read it all
        assert!(
            closed_by_peer(&mut s, Duration::from_secs(5)),
            "{what}: the connection was left open"
        );
        logged(&c, &["closed connection: DolphinDB API: ", reason]);
        survived(what);
    }

    // Malformed argument objects of a logged-in session: answered under its session id.
    let malformed: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "a matrix",
            vec![4, 3, 0, 4, 3, 1, 0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0],
            "argument 1: matrices are not supported by xrepl",
        ),
        (
            "an unknown type",
            vec![200, 0, 1, 2, 3, 4],
            // (t41: the message says "type type 200")
            "200 is not supported by xrepl",
        ),
        (
            "a vector with two columns",
            [
                vec![4, 1],
                2i32.to_le_bytes().to_vec(),
                2i32.to_le_bytes().to_vec(),
            ]
            .concat(),
            "with 2 columns",
        ),
        (
            "a string that is not UTF-8",
            vec![18, 0, 0xff, 0xfe, 0],
            "a string is not valid UTF-8",
        ),
        (
            "tuples nested 100 deep",
            nested_tuple(100),
            "objects nest deeper than 64 levels",
        ),
        (
            "a pair of three",
            [
                vec![4, 2],
                3i32.to_le_bytes().to_vec(),
                1i32.to_le_bytes().to_vec(),
                vec![0; 12],
            ]
            .concat(),
            "a pair needs 2 elements, not 3",
        ),
    ];
    for (what, object, reason) in &malformed {
        let mut api = Api::login(&site);
        let session = api.session.clone();
        api.send(&request("API2", &session, "function\nsize\n1\n1", object));
        let mut s = api.rd.into_inner();
        let (reply, closed) = answer_and_close(&mut s);
        assert!(closed, "{what}: the connection was left open");
        let lines: Vec<&str> = reply.split_terminator('\n').collect();
        assert_eq!(lines.len(), 2, "{what}: one header and one line: {reply:?}");
        assert_eq!(lines[0], format!("{session} 0 1"), "{what}: {reply:?}");
        assert!(lines[1].contains(reason), "{what}: {reply:?}");
        survived(what);
    }

    // An object cut short: the stream ends inside it.
    let mut api = Api::login(&site);
    let session = api.session.clone();
    let mut cut = vec![4, 1];
    cut.extend_from_slice(&1000i32.to_le_bytes());
    cut.extend_from_slice(&1i32.to_le_bytes());
    cut.extend_from_slice(&[0; 40]);
    api.send(&request("API2", &session, "function\nsize\n1\n1", &cut));
    let mut s = api.rd.into_inner();
    s.shutdown(Shutdown::Write).expect("half close");
    assert!(
        closed_by_peer(&mut s, Duration::from_secs(5)),
        "a cut object"
    );
    logged(
        &c,
        &["closed connection: DolphinDB API: the connection ended in argument 1"],
    );
    survived("a cut object");

    // A client that starts a request and never finishes it, before a login: closed at
    // loginTimeoutMs.
    let mut s = TcpStream::connect(&site).expect("connect");
    s.write_all(b"API 0 ").expect("write");
    let started = Instant::now();
    assert!(
        closed_by_peer(&mut s, Duration::from_secs(5)),
        "a stalled login"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    survived("a stalled login");

    // Random garbage after `API2 `, bytes and header-like text: closed; anything answered is
    // one error line.
    let mut garbage = Garbage(0x9e37_79b9_7f4a_7c15);
    for round in 0..40 {
        let n = 1 + (garbage.next() % 3000) as usize;
        let tail = if round % 2 == 0 {
            garbage.bytes(n)
        } else {
            garbage.header_like(n / 10)
        };
        let bytes = [b"API2 ".as_slice(), &tail].concat();
        let mut s = TcpStream::connect(&site).expect("connect");
        let _ = s.write_all(&bytes);
        let _ = s.shutdown(Shutdown::Write);
        let (reply, closed) = answer_and_close(&mut s);
        assert!(closed, "garbage {round}: the connection was left open");
        if !reply.is_empty() {
            let lines: Vec<&str> = reply.split_terminator('\n').collect();
            assert!(
                lines.len() == 2 && lines[0].ends_with(" 0 1") && lines[1] != "OK",
                "garbage {round}: {reply:?}"
            );
        }
        if round % 10 == 9 {
            survived("garbage");
        }
    }

    // Random argument objects of a logged-in session's call, starting with a type the
    // decoder knows and any form: whatever they decode to, the connection ends when the
    // client stops sending, and nothing else is disturbed.
    const TYPES: &[u8] = &[0, 1, 2, 3, 4, 5, 6, 11, 12, 14, 15, 16, 17, 18, 25, 26, 145];
    for round in 0..20 {
        let mut api = Api::login(&site);
        let session = api.session.clone();
        let argc = 1 + garbage.next() % 3;
        let mut objects = Vec::new();
        for _ in 0..argc {
            objects.push(TYPES[(garbage.next() % TYPES.len() as u64) as usize]);
            objects.push((garbage.next() % 8) as u8);
            let n = (garbage.next() % 200) as usize;
            objects.extend(garbage.bytes(n));
        }
        let body = format!("function\nsize\n{argc}\n1");
        api.send(&request("API2", &session, &body, &objects));
        let mut s = api.rd.into_inner();
        let _ = s.shutdown(Shutdown::Write);
        assert!(
            closed_by_peer(&mut s, Duration::from_secs(5)),
            "objects {round}: the connection was left open"
        );
        if round % 10 == 9 {
            survived("random objects");
        }
    }

    // Every refusal is logged with its reason, as the server loop logs a closed connection.
    for (_, _, reason) in answered.iter().chain(&malformed) {
        logged(&c, &["closed connection: DolphinDB API: ", reason]);
    }
    logged(
        &c,
        &["closed connection: a DolphinDB API client did not log in within 1000 ms (loginTimeoutMs)"],
    );

    // And a new API connection works as the first one does.
    let mut second = Api::login(&site);
    assert_eq!(second.int("1 + 1"), 2);
    assert_eq!(good.int("x"), 41);
}

/// Regression: codes nobody uses were named twice in a refusal: "type type 200 is not
/// supported by xrepl", "form 220s are not supported by xrepl".
#[test]
fn t41_unknown_type_and_form_codes_are_named_once() {
    let c = Cluster::start(&Spec::default());
    for (object, want) in [
        (
            vec![200, 0, 1, 2, 3, 4],
            "argument 1: type 200 is not supported by xrepl",
        ),
        (
            vec![4, 220, 1, 2, 3, 4],
            "argument 1: form 220 is not supported by xrepl",
        ),
    ] {
        let mut api = Api::login(&c.host());
        let session = api.session.clone();
        api.send(&request("API2", &session, "function\nsize\n1\n1", &object));
        let mut s = api.rd.into_inner();
        let (reply, closed) = answer_and_close(&mut s);
        assert!(closed);
        assert_eq!(reply, format!("{session} 0 1\n{want}\n"));
    }
}

/// Regression: appends from several sessions at once to partitions spread over both data
/// nodes deadlocked across the nodes (each transaction held its locks on one node and waited
/// on the other) until `partitionLockTimeoutMs`; then several, often all, failed with
/// `partition ... is locked by transaction N; gave up after ... ms`. A transaction on several
/// nodes now gives way to an older one (wait-die) and its append runs again. The lock timeout
/// is lowered here so that a wait for it fails the test quickly.
#[test]
fn t50_concurrent_appends_from_several_sessions_all_commit() {
    let c = Cluster::start(&Spec {
        cluster_cfg: "partitionLockTimeoutMs=2000\n".into(),
        ..Spec::default()
    });
    run_python(
        "test_regressions.py",
        &["ConcurrentWrites"],
        &hosts(&c),
        &[(&c, "dnode1"), (&c, "dnode2")],
    );
}

/// Regression: `append!{loadTable('dfs://db', 't')}`, as DolphinDB's API examples append a
/// DataFrame, was a syntax error (no `{` after a name ending in `!`).
#[test]
fn t51_append_partial_application_appends() {
    let c = Cluster::start(&Spec::default());
    run_python(
        "test_regressions.py",
        &["AppendPartialApplication"],
        &hosts(&c),
        &[(&c, "dnode1"), (&c, "dnode2")],
    );
}
