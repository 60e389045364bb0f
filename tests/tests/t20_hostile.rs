//! Hostile and unusual input at the RPC layer: garbage, oversized lengths, malformed bodies, a
//! wrong protocol version, and payloads larger than one frame.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use xrepl_proto::rpc::frame::FrameKind;
use xrepl_proto::rpc::{
    encode, ControllerReply, Hello, PeerKind, RpcClient, SessionReply, SessionRequest,
};
use xrepl_tests::{admin_session, closed_by_peer, framed, read_hello_reply, Cluster, Spec};

async fn session(site: &str) -> RpcClient {
    admin_session(site, 1 << 20).await
}

async fn run(c: &RpcClient, script: &str) -> SessionReply {
    let req = SessionRequest::Run {
        script: script.into(),
    };
    c.call(req).await.expect("answer").expect("ok")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t10_bad_frames_close_only_their_own_connection() {
    let c = Cluster::start(&Spec::default());
    let site = c.host();
    // A session that must survive everything below.
    let good = session(&site).await;
    let _ = run(&good, "x = 7").await;

    let attacks: Vec<(&str, Vec<u8>)> = vec![
        // Not a frame (its length would be over 1 GB), not DolphinDB's API, not HTTP.
        ("garbage bytes", b"QUIT / now\r\nHost: x\r\n\r\n".to_vec()),
        // HTTP is served (metrics), but a request line that is not HTTP is refused.
        (
            "garbage after GET",
            b"GET \x00\x01\x02 nonsense\r\n\r\n".to_vec(),
        ),
        (
            "oversized length prefix",
            0xFFFF_FFF0u32.to_be_bytes().to_vec(),
        ),
        ("frame shorter than its header", {
            let mut v = 3u32.to_be_bytes().to_vec();
            v.extend_from_slice(b"abc");
            v
        }),
        (
            "malformed greeting body",
            framed(FrameKind::Hello, b"\xc1\xc1\xc1"),
        ),
        (
            "request before greeting",
            framed(FrameKind::Request, b"\x90"),
        ),
        ("malformed request after greeting", {
            let mut v = framed(
                FrameKind::Hello,
                &encode(&Hello::new(PeerKind::Client, 1 << 20)).expect("encode"),
            );
            v.extend(framed(FrameKind::Request, b"\xff\xfe\xfd"));
            v
        }),
    ];
    for (name, bytes) in attacks {
        let mut s = TcpStream::connect(&site).expect("connect");
        s.write_all(&bytes).expect("write");
        assert!(
            closed_by_peer(&mut s, Duration::from_secs(5)),
            "{name}: connection left open"
        );
        // The long-lived session still works, with its variables.
        match run(&good, "x + 1").await {
            SessionReply::Ran {
                outputs,
                error: None,
            } => assert_eq!(
                outputs,
                vec![xrepl_core::value::Value::Scalar(
                    xrepl_core::value::Scalar::Int(8)
                )],
                "{name}"
            ),
            other => panic!("{name}: session broken: {other:?}"),
        }
    }
    let log = c.read_log("dnode1");
    assert!(
        log.contains("closed connection"),
        "reasons are logged: {log}"
    );
    assert!(
        log.contains("frame size too big") || log.contains("max"),
        "{log}"
    );
}

#[test]
fn t20_wrong_protocol_version_is_refused_in_the_greeting() {
    let c = Cluster::start(&Spec::default());
    let mut hello = Hello::new(PeerKind::Client, 1 << 20);
    hello.version = 999;
    let mut s = TcpStream::connect(c.host()).expect("connect");
    s.write_all(&framed(FrameKind::Hello, &encode(&hello).expect("encode")))
        .expect("write");
    let reply = read_hello_reply(&mut s);
    let reason = reply.outcome.expect_err("refused");
    assert!(
        reason.contains("protocol version 999 is not supported"),
        "{reason}"
    );
    assert!(closed_by_peer(&mut s, Duration::from_secs(5)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t30_payloads_larger_than_a_frame_travel_in_chunks() {
    // The smallest frame limit the config allows, so a 1 MB script and answer must be chunked.
    let c = Cluster::start(&Spec {
        cluster_cfg: "maxFrameSize=65536\n".into(),
        controller_cfg: "maxFrameSize=65536\n".into(),
        ..Spec::default()
    });
    let good = session(&c.host()).await;
    let big = "a".repeat(1 << 20);
    match run(&good, &format!("s = \"{big}\"\ns")).await {
        SessionReply::Ran {
            outputs,
            error: None,
        } => {
            assert_eq!(
                outputs,
                vec![xrepl_core::value::Value::Scalar(
                    xrepl_core::value::Scalar::String(big)
                )]
            );
        }
        other => panic!("big script failed: {other:?}"),
    }
}

#[test]
fn t40_console_refuses_to_run_sessions_on_the_controller() {
    let c = Cluster::start(&Spec::default());
    let out = c.console_at(&c.controller.site(), &[], "1");
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("is the controller controller1; connect the console to a data node"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t50_controller_calls_need_a_genuine_token() {
    use xrepl_proto::rpc::{ControllerRequest, ErrorCode};
    let c = Cluster::start(&Spec::default());
    // Even a member of the cluster (it proves the cluster key) needs a genuine token.
    let ctl = c.member(&c.controller.site()).await;
    let call = |token: &str| ControllerRequest::Call {
        token: token.into(),
        function: "getClusterPerf".into(),
        args: vec![],
    };
    for forged in ["", "admin", "admin.00.00", "admin.0011.deadbeef"] {
        let e = ctl
            .call(call(forged))
            .await
            .expect("answer")
            .expect_err("refused");
        assert_eq!(e.code, ErrorCode::NotLoggedIn, "{forged}: {e}");
    }
    // A genuine token, from a real login, works; the same user name with a changed tag does not.
    let login = ControllerRequest::Login {
        user: "admin".into(),
        password: "123456".into(),
        peer: "127.0.0.1".into(),
    };
    let Ok(Ok(ControllerReply::LoggedIn { token, .. })) = ctl.call(login).await else {
        panic!("login failed");
    };
    assert!(matches!(
        ctl.call(call(&token)).await,
        Ok(Ok(ControllerReply::Value(_)))
    ));
    let mut tampered = token.clone();
    let last = tampered.pop().expect("non-empty");
    tampered.push(if last == '0' { '1' } else { '0' });
    let e = ctl
        .call(call(&tampered))
        .await
        .expect("answer")
        .expect_err("refused");
    assert_eq!(e.code, ErrorCode::NotLoggedIn);
    assert_eq!(e.node, "controller1");
}
