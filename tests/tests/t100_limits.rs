//! The limits of a node's server, against the real binaries: what a peer may send before it
//! has authenticated (a long frame length, a large chunked message, empty or too many partial
//! chunks), how long it may stay without logging in, and how many connections a node takes.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use xrepl_proto::rpc::frame::{self, FrameKind, FLAG_MORE, HEADER_LEN};
use xrepl_proto::rpc::server::{PRE_AUTH_MAX_MESSAGE, PRE_AUTH_MAX_PARTIAL};
use xrepl_proto::rpc::{
    encode, ClientTls, ErrorCode, Hello, PeerKind, ReplicationReply, ReplicationRequest, RpcClient,
    RpcError, SessionReply, SessionRequest,
};
use xrepl_proto::ticket::FetchTicket;
use xrepl_tests::{
    admin_session, closed_by_peer, read_hello_reply, wait_for, Cluster, Spec, ADMIN_JSON,
};

/// A short login deadline, for both files.
const QUICK_LOGIN: &str = "loginTimeoutMs=1000\n";

async fn connect(site: &str, peer: PeerKind) -> Result<RpcClient, RpcError> {
    RpcClient::connect(
        site,
        peer,
        &ClientTls::plain(),
        64 << 20,
        Duration::from_secs(5),
    )
    .await
}

/// A logged-in administrator's session.
async fn session(site: &str) -> RpcClient {
    admin_session(site, 1 << 20).await
}

/// Runs `script` on a session; what it printed, or why it got no answer.
async fn run(c: &RpcClient, script: &str) -> Result<SessionReply, RpcError> {
    let req = SessionRequest::Run {
        script: script.into(),
    };
    c.call(req)
        .await
        .map(|r| r.expect("an answer, not an error"))
}

/// Asserts that a session still answers `1 + 1`.
async fn still_serves(c: &RpcClient, after: &str) {
    match run(c, "1 + 1").await {
        Ok(SessionReply::Ran { error: None, .. }) => {}
        other => panic!("after {after}, the session does not answer: {other:?}"),
    }
}

/// One frame as it goes on the wire: length, kind, flags, id, payload.
fn raw_frame(kind: FrameKind, more: bool, id: u64, payload: &[u8]) -> Vec<u8> {
    let mut f = frame::split(kind, id, payload, payload.len() + HEADER_LEN)[0].to_vec();
    if more {
        f[1] = FLAG_MORE;
    }
    let mut out = (f.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&f);
    out
}

/// A raw connection that has greeted as `peer` and been accepted.
fn greeted(site: &str, peer: PeerKind) -> TcpStream {
    let mut s = TcpStream::connect(site).expect("connect");
    let hello = encode(&Hello::new(peer, 1 << 20)).expect("encode");
    s.write_all(&raw_frame(FrameKind::Hello, false, 0, &hello))
        .expect("greet");
    let reply = read_hello_reply(&mut s);
    assert!(reply.outcome.is_ok(), "greeting refused: {reply:?}");
    s
}

/// Waits until the node's log holds `text`.
fn logged(c: &Cluster, alias: &str, text: &str) {
    wait_for(
        &format!("'{text}' in the log of {alias}"),
        Duration::from_secs(5),
        || c.read_log(alias).contains(text).then_some(()),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t10_a_long_frame_length_before_the_greeting_is_refused_at_once() {
    let c = Cluster::start(&Spec::default());
    let good = session(&c.host()).await;
    // 1 MiB announced, a few bytes of it sent: the node must not wait for (and buffer) the
    // rest, as it would for a length it accepts, until the greeting deadline (10 s).
    let mut s = TcpStream::connect(c.host()).expect("connect");
    let started = Instant::now();
    s.write_all(&(1u32 << 20).to_be_bytes()).expect("write");
    s.write_all(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0]).expect("write");
    assert!(closed_by_peer(&mut s, Duration::from_secs(5)), "left open");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "closed only after {:?}",
        started.elapsed()
    );
    logged(&c, "dnode1", "frame size too big");
    still_serves(&good, "a long frame length").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t20_a_large_message_is_refused_before_the_login_and_runs_after_it() {
    let c = Cluster::start(&Spec::default());
    let good = session(&c.host()).await;
    // Greeted but not logged in: chunks of 16 KiB adding up to more than the pre-auth limit.
    let mut s = greeted(&c.host(), PeerKind::Client);
    let chunk = vec![0x90u8; 16 << 10];
    let mut refused = false;
    for _ in 0..(PRE_AUTH_MAX_MESSAGE / chunk.len() + 1) {
        if s.write_all(&raw_frame(FrameKind::Request, true, 1, &chunk))
            .is_err()
        {
            refused = true;
            break;
        }
    }
    assert!(
        refused || closed_by_peer(&mut s, Duration::from_secs(5)),
        "left open"
    );
    logged(
        &c,
        "dnode1",
        &format!("grew past the {PRE_AUTH_MAX_MESSAGE}-byte limit"),
    );
    still_serves(&good, "a large message before the login").await;

    // The same size as one script: refused from a console that has not logged in (the
    // script's own login(...) comes too late), run by one that has.
    let big = format!(
        "login(\"admin\", \"123456\")\nx = \"{}\"\n1 + 1\n",
        "a".repeat(PRE_AUTH_MAX_MESSAGE * 3)
    );
    let anonymous = c.console_file_at(&c.host(), &["--format", "json"], &big);
    assert_ne!(anonymous.code, 0, "{}", anonymous.stdout);
    assert!(anonymous.stderr.contains("closed"), "{}", anonymous.stderr);
    let logged_in = c.console_file_at(&c.host(), ADMIN_JSON, &big);
    assert_eq!(logged_in.code, 0, "{}", logged_in.stderr);
    assert_eq!(logged_in.json(), vec![serde_json::json!(2)]);
    // And in chunks (a client whose frames are 64 KiB), 1 MiB after the login.
    let chunked = admin_session(&c.host(), 64 << 10).await;
    let script = format!("y = \"{}\"\n3 + 4", "b".repeat(1 << 20));
    match run(&chunked, &script).await {
        Ok(SessionReply::Ran {
            outputs,
            error: None,
        }) => assert_eq!(outputs.len(), 1),
        other => panic!("a 1 MiB script in chunks after the login: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t30_an_empty_chunk_with_more_to_follow_closes_the_connection() {
    let c = Cluster::start(&Spec::default());
    let good = session(&c.host()).await;
    let mut s = greeted(&c.host(), PeerKind::Client);
    s.write_all(&raw_frame(FrameKind::Request, true, 7, &[]))
        .expect("write");
    assert!(closed_by_peer(&mut s, Duration::from_secs(5)), "left open");
    logged(&c, "dnode1", "(FLAG_MORE) carries no bytes");
    still_serves(&good, "an empty chunk").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t40_one_partial_message_too_many_closes_the_connection() {
    let c = Cluster::start(&Spec::default());
    let good = session(&c.host()).await;
    let mut s = greeted(&c.host(), PeerKind::Client);
    let mut partial = Vec::new();
    for id in 1..=PRE_AUTH_MAX_PARTIAL as u64 {
        partial.extend(raw_frame(FrameKind::Request, true, id, b"\x92"));
    }
    s.write_all(&partial).expect("write");
    // As many as may be: still open.
    assert!(
        !closed_by_peer(&mut s, Duration::from_millis(500)),
        "closed with {PRE_AUTH_MAX_PARTIAL} partial messages"
    );
    let one_more = PRE_AUTH_MAX_PARTIAL as u64 + 1;
    s.write_all(&raw_frame(FrameKind::Request, true, one_more, b"\x92"))
        .expect("write");
    assert!(closed_by_peer(&mut s, Duration::from_secs(5)), "left open");
    logged(
        &c,
        "dnode1",
        &format!("at most {PRE_AUTH_MAX_PARTIAL} may be"),
    );
    still_serves(&good, "too many partial messages").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t50_max_connections_refuses_one_more_with_a_reason_until_one_closes() {
    let c = Cluster::start(&Spec {
        cluster_cfg: "maxConnections=3\n".into(),
        ..Spec::default()
    });
    let site = c.host();
    // Three sessions (the consoles that waited for the cluster may still be closing).
    let mut open = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        loop {
            match connect(&site, PeerKind::Client).await {
                Ok(s) => {
                    open.push(s);
                    break;
                }
                Err(e) => assert!(start.elapsed() < Duration::from_secs(5), "{e}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    const WHY: &str = "too many connections: this node takes at most 3 (maxConnections)";
    match connect(&site, PeerKind::Client).await {
        Err(RpcError::Refused { reason, .. }) => assert_eq!(reason, WHY),
        Err(e) => panic!("refused without the reason: {e}"),
        Ok(_) => panic!("a fourth connection was taken"),
    }
    // The console shows it.
    let out = c.console_at(&site, ADMIN_JSON, "1");
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains(WHY), "{}", out.stderr);
    // A burst of refusals gives a warning, not one per connection.
    for _ in 0..20 {
        assert!(connect(&site, PeerKind::Client).await.is_err());
    }
    logged(&c, "dnode1", "too many connections");
    let warnings = c
        .read_log("dnode1")
        .matches("too many connections: this node")
        .count();
    assert!(
        (1..=5).contains(&warnings),
        "{warnings} warnings for 22 refusals"
    );
    // One closes: another is taken.
    drop(open.pop());
    let start = Instant::now();
    let again = loop {
        match connect(&site, PeerKind::Client).await {
            Ok(s) => break s,
            Err(e) => assert!(
                start.elapsed() < Duration::from_secs(5),
                "still refused after one closed: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let login = SessionRequest::Login {
        user: "admin".into(),
        password: "123456".into(),
    };
    assert!(matches!(
        again.call(login).await,
        Ok(Ok(SessionReply::LoggedIn { .. }))
    ));
    // The other data node has a cap of its own, and room.
    assert!(connect(&c.datanodes[1].site(), PeerKind::Client)
        .await
        .is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t60_a_connection_that_does_not_log_in_in_time_is_closed() {
    let c = Cluster::start(&Spec {
        cluster_cfg: QUICK_LOGIN.into(),
        controller_cfg: QUICK_LOGIN.into(),
        ..Spec::default()
    });
    let good = session(&c.host()).await;
    let mut idle = greeted(&c.host(), PeerKind::Client);
    let started = Instant::now();
    assert!(
        closed_by_peer(&mut idle, Duration::from_secs(5)),
        "left open"
    );
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(800) && after < Duration::from_secs(3),
        "closed after {after:?}"
    );
    logged(&c, "dnode1", "no login within 1 s");
    // The session that logged in, and the cluster's own links, outlive the deadline.
    still_serves(&good, "the login deadline").await;
    let perf = c.admin_json("getClusterPerf()");
    assert_eq!(perf.code, 0, "{}", perf.stderr);
    assert!(!c.read_log("controller1").contains("no login within"));
}

/// A fetch ticket the master signed, or one with a forged signature.
fn ticket(c: &Cluster, genuine: bool) -> FetchTicket {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut t = FetchTicket::issue(&c.key(), "127.0.0.1:1", 0, Vec::new(), now_ms);
    if !genuine {
        t.mac = vec![0; t.mac.len()];
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t70_a_master_lets_slaves_in_as_far_as_they_have_shown_who_they_are() {
    let c = Cluster::start(&Spec {
        replication_mode: Some("master"),
        cluster_cfg: QUICK_LOGIN.into(),
        controller_cfg: QUICK_LOGIN.into(),
        ..Spec::default()
    });
    let ctl = c.controller.site();
    // A pull reporting 10 000 finished tasks: larger than an unauthenticated peer may send.
    let big_pull = |token: &str| ReplicationRequest::Pull {
        token: token.into(),
        slave: "127.0.0.1:1".into(),
        after: 0,
        finished: vec![u64::MAX; 10_000],
        max: 1,
        wait_ms: 0,
        inline_room: 0,
    };
    let anonymous = connect(&ctl, PeerKind::Slave).await.expect("connect");
    assert!(
        matches!(
            anonymous.call(big_pull("")).await,
            Err(RpcError::Closed { .. })
        ),
        "a large request before the login"
    );
    // After a replication login, the same request is answered (the slave is not registered),
    // and the connection outlives the login deadline.
    let slave = connect(&ctl, PeerKind::Slave).await.expect("connect");
    let login = ReplicationRequest::Login {
        user: "admin".into(),
        password: "123456".into(),
    };
    let Ok(Ok(ReplicationReply::LoggedIn { token, .. })) = slave.call(login).await else {
        panic!("the slave's login failed");
    };
    let e = slave
        .call(big_pull(&token))
        .await
        .expect("an answer")
        .expect_err("not registered");
    assert_eq!(e.code, ErrorCode::NotFound, "{e}");

    // On a master data node, a slave's data node never logs in: a good ticket vouches for its
    // connection, a forged one does not.
    let dn = c.host();
    let checksums = |genuine: bool| ReplicationRequest::Checksums {
        ticket: ticket(&c, genuine),
        db: "dfs://nothing".into(),
        table: None,
    };
    let fetcher = connect(&dn, PeerKind::Slave).await.expect("connect");
    let _ = fetcher.call(checksums(true)).await.expect("an answer");
    let forger = connect(&dn, PeerKind::Slave).await.expect("connect");
    let e = forger
        .call(checksums(false))
        .await
        .expect("an answer")
        .expect_err("a forged ticket");
    assert_eq!(e.code, ErrorCode::AccessDenied, "{e}");

    tokio::time::sleep(Duration::from_millis(1_800)).await;
    assert!(
        slave.call(big_pull(&token)).await.is_ok(),
        "the logged-in slave was closed"
    );
    assert!(
        fetcher.call(checksums(true)).await.is_ok(),
        "the slave data node with a good ticket was closed"
    );
    assert!(
        matches!(
            forger.call(checksums(false)).await,
            Err(RpcError::Closed { .. })
        ),
        "the peer with a forged ticket outlived the login deadline"
    );
    logged(&c, "dnode1", "no login within 1 s");
}
