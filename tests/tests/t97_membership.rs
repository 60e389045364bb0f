//! Cluster membership is proven: a connection that greets as a data node must prove, in the
//! greeting, that it holds the cluster key (and the other end proves it back). Outsiders act
//! as an attacker would: raw frames on a socket, a client with another key, a data node
//! started with the wrong key or none. Each is refused, and nothing changes.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use xrepl_core::cluster_key::ClusterKey;
use xrepl_proto::rpc::frame::{self, FrameKind};
use xrepl_proto::rpc::{
    encode, Hello, MemberProof, ParticipantRequest, PeerKind, Request, RpcClient, RpcError,
};
use xrepl_proto::txn::{ChunkAction, ChunkId, ChunkOp};
use xrepl_tests::{controller_token, framed, runtime, wait_for, write_private, Cluster, Spec};

const SETUP: &str = r#"db = database("dfs://m", VALUE, 1..4)
t = db.createPartitionedTable(table(1:0, `k`v, [INT, INT]), "t", `k)
k = 1..4
v = k * 10
loadTable("dfs://m", "t").append!(table(k, v))"#;

const COUNT: &str = "select count(*) from loadTable(\"dfs://m\", \"t\")";

/// A prepare that deletes every row of the first tables' first partitions, then its commit:
/// what an outsider would send to wipe data.
fn wipe() -> Vec<u8> {
    let ops = (1..=4u64)
        .flat_map(|table| {
            (0..=4u32).map(move |partition| ChunkOp {
                chunk: ChunkId { table, partition },
                label: format!("{table}/{partition}"),
                columns: vec![],
                action: ChunkAction::Delete { filter: None },
            })
        })
        .collect();
    let mut out = framed(
        FrameKind::Request,
        &encode(&Request::Participant(ParticipantRequest::Prepare {
            tid: 900_001,
            ops,
            gives_way: false,
        }))
        .expect("encode"),
    );
    out.extend(framed(
        FrameKind::Request,
        &encode(&Request::Participant(ParticipantRequest::Commit {
            tid: 900_001,
        }))
        .expect("encode"),
    ));
    out
}

/// The kinds of the frames in `bytes` (4-byte lengths, then frames).
fn kinds(mut bytes: &[u8]) -> Vec<FrameKind> {
    let mut out = Vec::new();
    while bytes.len() >= 4 {
        let len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        let Some(f) = bytes.get(4..4 + len) else {
            break;
        };
        out.push(
            frame::parse(Bytes::copy_from_slice(f))
                .expect("a frame")
                .kind,
        );
        bytes = &bytes[4 + len..];
    }
    out
}

/// Sends `bytes` on a fresh socket to `site`; answers everything received until the peer
/// closed (it must close within 10 s).
fn send_raw(site: &str, bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut s = TcpStream::connect(site).expect("connect");
    let _ = s.write_all(bytes);
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("{site}: the connection was left open ({e})"),
        }
    }
}

#[test]
fn t10_outsiders_greeting_as_data_nodes_are_refused_and_change_nothing() {
    let c = Cluster::start(&Spec::default());
    c.ok(SETUP);
    assert_eq!(c.number(COUNT), 4);
    let targets = [
        c.controller.site(),
        c.host(),
        format!("127.0.0.1:{}", c.datanodes[1].port),
    ];
    let other_key = ClusterKey::from_bytes(&ClusterKey::generate_bytes()).expect("key");
    runtime().block_on(async {
        for site in &targets {
            // No challenge at all: refused in the greeting.
            let e = RpcClient::connect(site, PeerKind::DataNode, &xrepl_proto::rpc::ClientTls::plain(), 1 << 20, Duration::from_secs(5))
                .await
                .err()
                .expect("refused");
            assert!(
                matches!(&e, RpcError::Refused { reason, .. } if reason.contains("must prove that it holds the cluster key")),
                "{site}: {e}"
            );
            // Another key: the server's proof does not verify, so the client gives up.
            let e = RpcClient::connect_member(site, &other_key, &xrepl_proto::rpc::ClientTls::plain(), 1 << 20, Duration::from_secs(5))
                .await
                .err()
                .expect("not a member");
            assert!(
                matches!(&e, RpcError::NotAMember { reason, .. } if reason.contains("different key files")),
                "{site}: {e}"
            );
            // The genuine key works (the control).
            RpcClient::connect_member(site, &c.key(), &xrepl_proto::rpc::ClientTls::plain(), 1 << 20, Duration::from_secs(5))
                .await
                .unwrap_or_else(|e| panic!("{site}: {e}"));
        }
    });
    // Raw frames: a greeting with a challenge, a made-up proof and, without waiting, a
    // prepare that deletes whole chunks and its commit. Only the greeting is answered.
    for site in &targets {
        let mut attack = framed(
            FrameKind::Hello,
            &encode(&Hello::member(1 << 20, vec![5; 32])).expect("encode"),
        );
        attack.extend(framed(
            FrameKind::Proof,
            &encode(&MemberProof {
                proof: serde_bytes::ByteBuf::from(vec![0; 32]),
            })
            .expect("encode"),
        ));
        attack.extend(wipe());
        let got = send_raw(site, &attack);
        assert_eq!(kinds(&got), [FrameKind::HelloReply], "{site}");
        // A greeting without a challenge followed by the same requests: not even that.
        let mut bare = framed(
            FrameKind::Hello,
            &encode(&Hello::new(PeerKind::DataNode, 1 << 20)).expect("encode"),
        );
        bare.extend(wipe());
        let got = send_raw(site, &bare);
        assert_eq!(kinds(&got), [FrameKind::HelloReply], "{site}");
    }
    // Nothing changed, and each server said why it closed the connections.
    assert_eq!(c.number(COUNT), 4);
    assert_eq!(
        c.number("select sum(v) from loadTable(\"dfs://m\", \"t\")"),
        100
    );
    for alias in ["controller1", "dnode1", "dnode2"] {
        let log = c.read_log(alias);
        assert!(
            log.contains("did not prove the cluster key (clusterKeyFile): its proof of the cluster key is wrong"),
            "{alias}: {log}"
        );
        assert!(
            log.contains("this greeting brings no challenge"),
            "{alias}: {log}"
        );
    }
    // The cluster's nodes are as they were: no node joined, all are up.
    let states = c.node_states().expect("getClusterPerf");
    assert_eq!(states.len(), 3, "{states:?}");
    assert!(states.iter().all(|(_, s)| s == "up"), "{states:?}");
}

#[test]
fn t20_a_data_node_with_the_wrong_key_is_refused_says_so_and_exits_non_zero() {
    let mut c = Cluster::start(&Spec::default());
    c.ok(SETUP);
    c.kill("dnode2");
    write_private(&c.cfg_dir().join("wrong.key"), ClusterKey::generate_bytes());
    let cfg = c.cfg_dir().join("cluster.cfg");
    let mut text = std::fs::read_to_string(&cfg).expect("read");
    text.push_str("dnode2.clusterKeyFile=wrong.key\n");
    std::fs::write(&cfg, text).expect("write");
    c.spawn_datanode("dnode2");
    let code = c.wait_exit("dnode2", Duration::from_secs(30));
    assert_ne!(code, 0);
    let log = c.read_log("dnode2");
    assert!(
        log.contains("does not hold the cluster key of its controller"),
        "{log}"
    );
    let ctl = c.read_log("controller1");
    assert!(ctl.contains("did not prove the cluster key"), "{ctl}");
    // It is down; the cluster goes on with dnode1, and takes dnode2 back with the right key.
    wait_for("dnode2 to be down", Duration::from_secs(10), || {
        (c.state_of("dnode2").as_deref() == Some("down")).then_some(())
    });
    assert_eq!(c.number("1 + 1"), 2);
    let text = std::fs::read_to_string(&cfg).expect("read");
    std::fs::write(&cfg, text.replace("dnode2.clusterKeyFile=wrong.key\n", "")).expect("write");
    c.spawn_datanode("dnode2");
    c.wait_all_up();
    assert_eq!(c.number(COUNT), 4);
}

#[test]
fn t30_a_missing_or_short_key_file_stops_a_node_at_start_with_exit_code_2() {
    let mut c = Cluster::start(&Spec::default());
    let key_file = c.cfg_dir().join("cluster.key");
    let key = std::fs::read(&key_file).expect("key");
    c.kill("dnode1");
    std::fs::remove_file(&key_file).expect("remove");
    c.spawn_datanode("dnode1");
    assert_eq!(c.wait_exit("dnode1", Duration::from_secs(30)), 2);
    let log = c.read_log("dnode1");
    assert!(
        log.contains("error: clusterKeyFile: ") && log.contains("cluster.key does not exist"),
        "{log}"
    );
    write_private(&key_file, b"short");
    c.spawn_datanode("dnode1");
    assert_eq!(c.wait_exit("dnode1", Duration::from_secs(30)), 2);
    let log = c.read_log("dnode1");
    assert!(log.contains("holds 5 bytes"), "{log}");
    // With the cluster's key back it joins again.
    write_private(&key_file, key);
    c.spawn_datanode("dnode1");
    c.wait_all_up();
}

#[test]
fn t40_a_member_cannot_queue_a_task_that_points_slaves_elsewhere_or_skip_one() {
    use xrepl_core::catalog::Right;
    use xrepl_proto::rpc::{CatalogCheck, ControllerReply, ControllerRequest};
    use xrepl_proto::task::{OperationType, Scope, TaskMeta};
    let c = Cluster::start(&Spec {
        replication_mode: Some("master"),
        ..Spec::default()
    });
    c.ok(SETUP);
    c.ok("setDatabaseForClusterReplication(database(\"dfs://m\"), true)");
    // The bootstrap of the rows SETUP wrote queues a task per chunk: let it finish.
    xrepl_tests::wait_for("the bootstrap to be sent", Duration::from_secs(30), || {
        let b = c.rows("rpc(getControllerAlias(), getClusterReplicationBootstrapStatus)");
        xrepl_tests::texts(&b, "state")
            .iter()
            .all(|s| s == "DONE")
            .then_some(())
    });
    let tasks = || c.rows("rpc(getControllerAlias(), getMasterReplicationStatus)");
    let before = tasks();
    assert_eq!(
        before
            .iter()
            .filter(|t| t["operationType"] != "SNAPSHOT_CHUNK")
            .count(),
        1,
        "{before:?}"
    );
    runtime().block_on(async {
        // Even a member holding the key and an administrator's token.
        let ctl = c.member(&c.controller.site()).await;
        let token = controller_token(&ctl, "admin").await;
        let Ok(Ok(ControllerReply::Database(Some(db)))) = ctl
            .call(ControllerRequest::GetDatabase {
                token: token.clone(),
                db: "dfs://m".into(),
                need: None,
            })
            .await
        else {
            panic!("database");
        };
        let check = CatalogCheck {
            db: "dfs://m".into(),
            version: db.version,
            need: Right::Write,
        };
        let forged = |port: u16| TaskMeta {
            op: OperationType::Append,
            db: "dfs://m".into(),
            table: "t".into(),
            scope: Scope::Tables {
                db: "dfs://m".into(),
                tables: vec!["t".into()],
            },
            src_host: "127.0.0.1".into(),
            src_port: port,
            data_written: true,
            data_bytes: 250,
            snapshot: None,
            for_slave: None,
        };
        for (task, expect) in [
            (
                Some(forged(1)),
                "127.0.0.1:1, which is not a data node of this cluster",
            ),
            (
                None,
                "writes the replicated database 'dfs://m' but brings no replication task",
            ),
        ] {
            let Ok(Ok(ControllerReply::TidRange { first, .. })) = ctl
                .call(ControllerRequest::LeaseTids {
                    token: token.clone(),
                    coordinator: "dnode1".into(),
                    count: 1,
                })
                .await
            else {
                panic!("lease");
            };
            let e = ctl
                .call(ControllerRequest::Decide {
                    token: token.clone(),
                    tid: first,
                    commit: true,
                    reason: String::new(),
                    changes: vec![],
                    task: task.map(Box::new),
                    task_data: None,
                    replay: vec![],
                    check: Some(check.clone()),
                    participants: vec!["dnode1".into()],
                })
                .await
                .expect("answer")
                .expect_err("refused");
            assert!(e.message.contains(expect), "{e}");
        }
    });
    // No task was queued, and the master says why in its log.
    assert_eq!(tasks(), before);
    let log = c.read_log("controller1");
    assert!(
        log.contains("commit refused: the replication task's data is said to be on 127.0.0.1:1"),
        "{log}"
    );
}

#[test]
fn t50_only_the_execution_user_of_a_data_node_takes_or_reports_replays_of_its_own_hand_outs() {
    use xrepl_proto::rpc::{ControllerReply, ControllerRequest, ErrorCode};
    use xrepl_proto::task::{AttemptProof, ReplayOf};
    use xrepl_tests::Pair;
    let p = Pair::start(Spec::default(), Spec::default());
    p.master.ok(SETUP);
    p.master
        .ok("setDatabaseForClusterReplication(database(\"dfs://m\"), true)");
    p.wait_caught_up(Duration::from_secs(60));
    p.slave.ok(r#"createUser("bob", "123456", false)"#);
    p.slave.ok(r#"createUser("root2", "123456", true)"#);
    let before = p.slave_tasks();
    runtime().block_on(async {
        let ctl = p.slave.member(&p.slave.controller.site()).await;
        let take = |token: String, node: &str| ControllerRequest::TakeReplayTask {
            token,
            node: node.into(),
            wait_ms: 0,
            max: 10,
            finished: vec![],
            failed: None,
            released: vec![],
            attempt: None,
        };
        // A user of the slave, even an administrator, who is not the execution user gets no
        // hand-out (which would carry the master's token) and cannot report replays.
        for user in ["bob", "root2"] {
            let token = controller_token(&ctl, user).await;
            let e = ctl
                .call(take(token.clone(), "dnode1"))
                .await
                .expect("answer")
                .expect_err("refused");
            assert_eq!(e.code, ErrorCode::AccessDenied, "{e}");
            assert!(
                e.message.contains("only the replication execution user (clusterReplicationExecutionUsername: admin)"),
                "{e}"
            );
            let e = ctl
                .call(ControllerRequest::ReplayDone {
                    token,
                    node: "dnode1".into(),
                    finished: vec![1, 2, 3],
                    failed: None,
                    released: vec![],
                    attempt: None,
                })
                .await
                .expect("answer")
                .expect_err("refused");
            assert_eq!(e.code, ErrorCode::AccessDenied, "{e}");
        }
        // The execution user on a member's connection still needs the nonce of a hand-out
        // this controller made for that data node: without one, with a made-up one, or with
        // one made for another time, a report or a replay's decision is refused.
        let admin = controller_token(&ctl, "admin").await;
        let made_up = |started_ns: i64| AttemptProof {
            started_ns,
            nonce: serde_bytes::ByteBuf::from(vec![7u8; 16]),
        };
        for attempt in [None, Some(made_up(5))] {
            let e = ctl
                .call(ControllerRequest::ReplayDone {
                    token: admin.clone(),
                    node: "dnode1".into(),
                    finished: vec![1, 2, 3],
                    failed: None,
                    released: vec![],
                    attempt: attempt.clone(),
                })
                .await
                .expect("answer")
                .expect_err("refused");
            assert_eq!(e.code, ErrorCode::AccessDenied, "{e}");
            assert!(e.message.contains("must bring the nonce"), "{e}");
            let e = ctl
                .call(ControllerRequest::TakeReplayTask {
                    token: admin.clone(),
                    node: "dnode1".into(),
                    wait_ms: 0,
                    max: 10,
                    finished: vec![1],
                    failed: None,
                    released: vec![],
                    attempt,
                })
                .await
                .expect("answer")
                .expect_err("refused");
            assert!(e.message.contains("must bring the nonce"), "{e}");
        }
        let e = ctl
            .call(ControllerRequest::ReplayRunning {
                token: admin.clone(),
                node: "dnode1".into(),
                tasks: vec![1],
                attempts: vec![made_up(5)],
            })
            .await
            .expect("answer")
            .expect_err("refused");
        assert!(e.message.contains("must bring the nonce"), "{e}");
        let e = ctl
            .call(ControllerRequest::Decide {
                token: admin.clone(),
                tid: 1 << 40,
                commit: true,
                reason: String::new(),
                changes: vec![],
                task: None,
                task_data: None,
                replay: vec![ReplayOf {
                    task_id: 1,
                    node: "dnode1".into(),
                    started_ns: 5,
                    nonce: made_up(5).nonce,
                }],
                check: None,
                participants: vec!["dnode1".into()],
            })
            .await
            .expect("answer")
            .expect_err("refused");
        assert!(e.message.contains("must bring the nonce"), "{e}");
        // The execution user, for a node that is not one of the cluster's: refused too.
        let e = ctl
            .call(take(admin.clone(), "dnode9"))
            .await
            .expect("answer")
            .expect_err("refused");
        assert!(e.message.contains("'dnode9' is not a data node of this cluster"), "{e}");
        // The control: the execution user for a real node is answered (nothing is waiting).
        let Ok(Ok(ControllerReply::ReplayTask(None))) = ctl.call(take(admin, "dnode1")).await
        else {
            panic!("the execution user's request");
        };
    });
    assert_eq!(p.slave_tasks(), before, "nothing changed");
    let log = p.slave.read_log("controller1");
    assert!(
        log.contains("replay request refused: not the execution user"),
        "{log}"
    );
    assert!(
        log.contains("replay request refused: no nonce of a hand-out to this data node"),
        "{log}"
    );
}
