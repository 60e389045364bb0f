//! A request's first line and its text body.
//!
//! ```text
//! API2 <sessionId> <bodyLength> / <flags>_1_<priority>_<parallelism>[__<fetchSize>]\n<body>
//! ```
//!
//! `bodyLength` counts the text body only; the argument objects of a `function` or `variable`
//! request follow it and are read with [`read_object`](super::read_object).

use std::fmt;

use super::{preview, MAX_ARGS, MAX_BODY};

/// Flag bit: the client asks that the request run before queued ones.
pub const FLAG_URGENT: u32 = 1;
/// Flag bit: the client expects no reply at all.
pub const FLAG_ASYNC: u32 = 4;
/// Flag bit: the client would like pickled replies (a server may answer plainly).
pub const FLAG_PICKLE: u32 = 8;
/// Flag bit: clear the session's variables after the request.
pub const FLAG_CLEAR_MEMORY: u32 = 16;
/// Flag bit: the request comes from an API client (always set by the official ones).
pub const FLAG_API_CLIENT: u32 = 32;
/// Flag bit: the client accepts compressed tables (a server may answer plainly).
pub const FLAG_COMPRESS: u32 = 64;

/// The longest session id accepted; it is echoed back in every reply header.
pub const MAX_SESSION_ID: usize = 128;

/// The first line of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// `API2` rather than `API` (both mean the same to a server).
    pub api2: bool,
    /// The session id as the client sent it (`0` on connect), echoed back in the reply.
    pub session: String,
    /// The length of the text body after the first line's `\n`.
    pub body_len: usize,
    /// The flag bits ([`FLAG_ASYNC`], ...); 0 when the options part is absent.
    pub flags: u32,
    /// The client's fetch size (`__<n>`): rows per block for a chunked reply; 0 = whole.
    pub fetch_size: u32,
}

impl Header {
    /// The client wants no reply: the server runs the request and writes nothing back.
    pub fn is_async(&self) -> bool {
        self.flags & FLAG_ASYNC != 0
    }

    /// The client asks for the request to jump the queue.
    pub fn is_urgent(&self) -> bool {
        self.flags & FLAG_URGENT != 0
    }

    /// The client asks that the session's variables be cleared afterwards.
    pub fn clears_memory(&self) -> bool {
        self.flags & FLAG_CLEAR_MEMORY != 0
    }
}

/// Whether a connection's first four bytes are a DolphinDB API request (`API ` or `API2`).
/// xrepl's own frames start with a big-endian length, which for these bytes would be over
/// 1 GB, so the two protocols can share a port.
pub fn starts_api(first: &[u8]) -> bool {
    matches!(first.get(..4), Some(b"API ") | Some(b"API2"))
}

/// Parses a request's first line (without or with its `\n`). The ` / <options>` part may be
/// absent (flags 0). Refuses a body over [`MAX_BODY`] so that nobody buffers it.
pub fn parse_header(line: &str) -> Result<Header, String> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    let shown = || preview(line);
    let mut words = line.split(' ').filter(|w| !w.is_empty());
    let api2 = match words.next() {
        Some("API") => false,
        Some("API2") => true,
        _ => return Err(format!("not a DolphinDB API request: '{}'", shown())),
    };
    let (Some(session), Some(len)) = (words.next(), words.next()) else {
        return Err(format!(
            "a request header needs 'API <session> <bodyLength>': '{}'",
            shown()
        ));
    };
    if session.len() > MAX_SESSION_ID || session.chars().any(char::is_control) {
        return Err(format!("bad session id in request header '{}'", shown()));
    }
    let body_len: usize = len
        .parse()
        .map_err(|_| format!("bad body length '{}' in request header", preview(len)))?;
    if body_len > MAX_BODY {
        return Err(format!(
            "a request body of {body_len} bytes is over the limit of {MAX_BODY}"
        ));
    }
    let (flags, fetch_size) = match (words.next(), words.next(), words.next()) {
        (None, ..) => (0, 0),
        (Some("/"), Some(options), None) => parse_options(options)?,
        _ => {
            return Err(format!(
                "a request header ends with '/ <flags>_...': '{}'",
                shown()
            ))
        }
    };
    Ok(Header {
        api2,
        session: session.to_string(),
        body_len,
        flags,
        fetch_size,
    })
}

/// `<flags>_1_<priority>_<parallelism>[__<fetchSize>[__<more>]]`: only the flags and the
/// fetch size mean something to xrepl; the other fields are not checked. (The client's
/// `MultithreadedTableWriter` adds `__<client id>_<sequence number>` after the fetch size.)
fn parse_options(options: &str) -> Result<(u32, u32), String> {
    let mut parts = options.split("__");
    let head = parts.next().unwrap_or_default();
    let fetch = parts.next();
    let flags = head.split('_').next().unwrap_or_default();
    let flags = flags
        .parse()
        .map_err(|_| format!("bad flags '{}' in request header", preview(options)))?;
    let fetch_size = match fetch {
        Some(f) => f
            .parse()
            .map_err(|_| format!("bad fetch size '{}' in request header", preview(options)))?,
        None => 0,
    };
    Ok((flags, fetch_size))
}

/// What a request asks for, from its text body.
#[derive(Clone, PartialEq, Eq)]
pub enum Body {
    /// The first request of a connection, with a user and a clear-text password if the
    /// client logs in at once.
    Connect { login: Option<(String, String)> },
    /// Run a script and reply with the value of its last statement.
    Script(String),
    /// Call `name` (maybe a partial application such as `tableInsert{loadTable(...)}`) with
    /// `argc` argument objects, which follow the body.
    Function { name: String, argc: usize },
    /// Assign `count` objects, which follow the body, to the session variables `names`.
    Variable { names: Vec<String>, count: usize },
}

/// Shows everything but the password, so that a logged request does not leak it.
impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Connect { login } => f
                .debug_struct("Connect")
                .field("user", &login.as_ref().map(|(u, _)| u))
                .finish_non_exhaustive(),
            Body::Script(s) => f.debug_tuple("Script").field(s).finish(),
            Body::Function { name, argc } => f
                .debug_struct("Function")
                .field("name", name)
                .field("argc", argc)
                .finish(),
            Body::Variable { names, count } => f
                .debug_struct("Variable")
                .field("names", names)
                .field("count", count)
                .finish(),
        }
    }
}

impl Body {
    /// How many argument objects follow the body on the wire.
    pub fn object_count(&self) -> usize {
        match self {
            Body::Connect { .. } | Body::Script(_) => 0,
            Body::Function { argc, .. } => *argc,
            Body::Variable { count, .. } => *count,
        }
    }
}

/// Parses a request's text body (the `bodyLength` bytes after the first line).
pub fn parse_body(text: &str) -> Result<Body, String> {
    let (command, rest) = text.split_once('\n').unwrap_or((text, ""));
    match command {
        "connect" => parse_connect(rest),
        "script" => Ok(Body::Script(rest.to_string())),
        "function" => {
            let (name, argc) = parse_call(rest, "function")?;
            if name.is_empty() {
                return Err("a function request names no function".into());
            }
            Ok(Body::Function {
                name: name.to_string(),
                argc,
            })
        }
        "variable" => {
            let (names, count) = parse_call(rest, "variable")?;
            let names: Vec<String> = names.split(',').map(str::to_string).collect();
            if names.iter().any(String::is_empty) {
                return Err(format!(
                    "a variable request has an empty name in '{}'",
                    preview(&names.join(","))
                ));
            }
            if names.len() != count {
                return Err(format!(
                    "a variable request names {} variables but sends {count} objects",
                    names.len()
                ));
            }
            Ok(Body::Variable { names, count })
        }
        other => Err(format!(
            "unknown request '{}': expected connect, script, function or variable",
            preview(other)
        )),
    }
}

fn parse_connect(rest: &str) -> Result<Body, String> {
    if rest.is_empty() {
        return Ok(Body::Connect { login: None });
    }
    let lines: Vec<&str> = rest.split('\n').collect();
    match lines.as_slice() {
        ["login", user, password] | ["login", user, password, "false" | "true"] => {
            if user.is_empty() {
                return Err("a connect request logs in with an empty user name".into());
            }
            Ok(Body::Connect {
                login: Some((user.to_string(), password.to_string())),
            })
        }
        _ => {
            Err("a connect request is 'connect' or 'connect\\nlogin\\n<user>\\n<password>'".into())
        }
    }
}

/// `<what>\n<count>\n<endianness>` from the end, so that `<what>` may hold anything.
fn parse_call<'a>(rest: &'a str, command: &str) -> Result<(&'a str, usize), String> {
    let mut parts = rest.rsplitn(3, '\n');
    let (Some(endian), Some(count), Some(what)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!(
            "a {command} request is '{command}\\n<name>\\n<count>\\n1'"
        ));
    };
    match endian {
        "1" => {}
        "0" => return Err("big-endian clients are not supported by xrepl".into()),
        other => {
            return Err(format!(
                "a {command} request ends with its byte order (1 = little-endian), not '{}'",
                preview(other)
            ))
        }
    }
    let count: usize = count
        .parse()
        .map_err(|_| format!("bad count '{}' in a {command} request", preview(count)))?;
    if count > MAX_ARGS {
        return Err(format!(
            "a {command} request with {count} objects is over the limit of {MAX_ARGS}"
        ));
    }
    Ok((what, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_of_the_python_client() {
        let h = parse_header("API 0 32 / 32_1_4_2").expect("connect header");
        assert_eq!(
            h,
            Header {
                api2: false,
                session: "0".into(),
                body_len: 32,
                flags: 32,
                fetch_size: 0,
            }
        );
        let h = parse_header("API2 77AB 34 / 32_1_4_64__0\n").expect("function header");
        assert!(h.api2 && h.session == "77AB" && h.body_len == 34 && h.flags == 32);
        assert!(!h.is_async() && !h.is_urgent() && !h.clears_memory());
        let h = parse_header("API2 s 1 / 100_1_8_8__7").expect("async header");
        assert!(h.is_async() && h.flags & FLAG_COMPRESS != 0 && h.fetch_size == 7);
        // What the client's MultithreadedTableWriter sends: more after the fetch size.
        let h = parse_header("API2 s 9 / 32_1_4_64__0__6c1f2e0a-4b3d_1").expect("writer header");
        assert_eq!((h.flags, h.fetch_size), (32, 0));
        let h = parse_header("API2 s 5\r\n").expect("without options");
        assert_eq!((h.flags, h.body_len), (0, 5));
    }

    #[test]
    fn bad_headers_are_refused_with_a_reason() {
        for (line, says) in [
            ("GET / HTTP/1.1", "not a DolphinDB API request"),
            ("API 0", "needs"),
            ("API 0 -1 / 32_1_4_2", "bad body length"),
            ("API 0 x / 32_1_4_2", "bad body length"),
            ("API 0 268435457 / 32", "over the limit"),
            ("API 0 3 32_1_4_2", "ends with"),
            ("API 0 3 / 32 extra", "ends with"),
            ("API 0 3 / x_1_4_2", "bad flags"),
            ("API 0 3 / 32_1__x", "bad fetch size"),
        ] {
            let e = parse_header(line).expect_err(line);
            assert!(e.contains(says), "{line}: {e}");
        }
        assert!(parse_header(&format!("API {} 1", "s".repeat(200))).is_err());
    }

    #[test]
    fn the_first_four_bytes_tell_the_protocol() {
        assert!(starts_api(b"API 0 32"));
        assert!(starts_api(b"API2 x"));
        assert!(!starts_api(b"API"));
        assert!(!starts_api(&[0, 0, 0, 12]));
        assert!(!starts_api(b"GET /"));
    }

    #[test]
    fn bodies_of_every_kind() {
        let login = Some(("admin".to_string(), "123456".to_string()));
        assert_eq!(
            parse_body("connect\nlogin\nadmin\n123456\nfalse"),
            Ok(Body::Connect {
                login: login.clone()
            })
        );
        assert_eq!(
            parse_body("connect\nlogin\nadmin\n123456"),
            Ok(Body::Connect { login })
        );
        assert_eq!(parse_body("connect\n"), Ok(Body::Connect { login: None }));
        assert_eq!(parse_body("script\n1+1"), Ok(Body::Script("1+1".into())));
        assert_eq!(
            parse_body("script\nprint(1)\n2"),
            Ok(Body::Script("print(1)\n2".into()))
        );
        assert_eq!(
            parse_body("function\ntableInsert{loadTable('dfs://db','t')}\n1\n1"),
            Ok(Body::Function {
                name: "tableInsert{loadTable('dfs://db','t')}".into(),
                argc: 1
            })
        );
        let vars = parse_body("variable\nx,y\n2\n1").expect("variable");
        assert_eq!(vars.object_count(), 2);
        assert_eq!(
            vars,
            Body::Variable {
                names: vec!["x".into(), "y".into()],
                count: 2
            }
        );
    }

    #[test]
    fn bad_bodies_are_refused_with_a_reason() {
        for (body, says) in [
            ("function\nf\n1\n0", "big-endian"),
            ("function\nf\n1\n2", "byte order"),
            ("function\nf\n1025\n1", "over the limit"),
            ("function\nf\n-1\n1", "bad count"),
            ("function\n\n0\n1", "names no function"),
            ("function\nf", "is 'function"),
            ("variable\nx,y\n1\n1", "names 2 variables"),
            ("variable\nx,\n2\n1", "empty name"),
            ("connect\nlogin\nadmin", "connect request"),
            ("connect\nlogin\n\npw", "empty user"),
            ("connect\nlogin\nu\np\nmaybe", "connect request"),
            ("run\n1", "unknown request 'run'"),
            ("", "unknown request"),
        ] {
            let e = parse_body(body).expect_err(body);
            assert!(e.contains(says), "{body:?}: {e}");
            assert!(!e.contains('\n'), "{body:?}: {e}");
        }
    }

    #[test]
    fn debug_output_hides_the_password() {
        let b = parse_body("connect\nlogin\nadmin\nsecret").expect("connect");
        let shown = format!("{b:?}");
        assert!(
            shown.contains("admin") && !shown.contains("secret"),
            "{shown}"
        );
    }
}
