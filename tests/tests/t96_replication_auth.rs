//! Who may take a master's tasks: a slave with the wrong master password, raw peers with
//! made-up, tampered or non-administrator tokens, clients that greet as something else; and
//! hostile bytes on the master's ports while a session and a slave go on working.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value as Json;
use xrepl_core::value::{Scalar, Value};
use xrepl_proto::rpc::frame::FrameKind;
use xrepl_proto::rpc::{
    encode, ControllerReply, ControllerRequest, ErrorCode, Family, Hello, ParticipantRequest,
    PeerKind, RemoteError, ReplicationReply, ReplicationRequest, Request, RpcClient, RpcError,
    SessionReply, SessionRequest, TaskRef,
};
use xrepl_proto::task::TaskInfo;
use xrepl_proto::ticket::FetchTicket;
use xrepl_proto::txn::{ChunkAction, ChunkId, ChunkOp, ColExpr};
use xrepl_tests::{closed_by_peer, framed, ints, runtime, wait_for, Cluster, Pair, Spec};

const CATCH_UP: Duration = Duration::from_secs(60);

const SETUP: &str = r#"
db = database("dfs://auth", VALUE, 1..4)
setDatabaseForClusterReplication(db, true)
db.createPartitionedTable(table(1:0, `k`v, [INT, INT]), "t", `k)
"#;

fn append(b: i32) -> String {
    format!("k = 1..4\nv = k * 0 + {b}\nloadTable(\"dfs://auth\", \"t\").append!(table(k, v))")
}

const COUNT: &str = "select count(*) from loadTable(\"dfs://auth\", \"t\")";

async fn connect(site: &str, peer: PeerKind) -> Result<RpcClient, RpcError> {
    RpcClient::connect(
        site,
        peer,
        &xrepl_proto::rpc::ClientTls::plain(),
        1 << 20,
        Duration::from_secs(5),
    )
    .await
}

/// The answer of a call that must be refused: its error.
async fn refused<F>(c: &RpcClient, req: F) -> RemoteError
where
    F: Family + std::fmt::Debug + Clone,
    F::Reply: std::fmt::Debug,
{
    match c.call(req.clone()).await.expect("an answer") {
        Ok(reply) => panic!("{req:?} was answered: {reply:?}"),
        Err(e) => e,
    }
}

fn assert_denied(e: &RemoteError, node: &str, what: &str) {
    assert!(
        matches!(e.code, ErrorCode::AccessDenied | ErrorCode::NotLoggedIn),
        "{what}: {e:?}"
    );
    assert_eq!(e.node, node, "{what}: {e:?}");
    assert!(!e.message.is_empty(), "{what}");
}

/// A participant's `Prepare` of a delete whose condition is `depth` nested `not`s (600 KB for
/// 100,000): what any peer may send before logging in.
fn deep_prepare(depth: usize) -> Vec<u8> {
    let op = ChunkOp {
        chunk: ChunkId {
            table: 1,
            partition: 0,
        },
        label: "dfs://auth/t/0".into(),
        columns: vec![],
        action: ChunkAction::Delete { filter: None },
    };
    let mut body = encode(&Request::Participant(ParticipantRequest::Prepare {
        tid: 1,
        ops: vec![op],
        gives_way: false,
    }))
    .expect("encode");
    assert_eq!(body.pop(), Some(0xc2), "gives_way comes last");
    assert_eq!(body.pop(), Some(0xc0), "the filter comes before it");
    body.extend(b"\x81\xa3Not".repeat(depth));
    body.extend(encode(&ColExpr::Column("k".into())).expect("encode"));
    body.push(0xc2);
    body
}

fn count_of(log: &str, line: &str) -> usize {
    log.matches(line).count()
}

#[test]
fn t10_a_slave_with_a_wrong_master_password_gets_no_task_and_both_logs_say_why() {
    let p = Pair::start(
        Spec::default(),
        Spec {
            controller_cfg: "clusterReplicationMasterPassword=not-the-password\n".into(),
            ..Spec::default()
        },
    );
    let refusal = "slave login refused: The user name or password is incorrect.";
    // The slave's puller keeps trying; the master refuses and logs each attempt.
    wait_for("the master to refuse the slave", CATCH_UP, || {
        (count_of(&p.master.read_log("controller1"), refusal) > 0).then_some(())
    });
    p.master.ok(SETUP);
    p.master.ok(&append(1));
    let made = ints(&p.master_tasks(), "taskId");
    assert_eq!(made, [1, 2, 3], "the master made its tasks");
    // Two more refusals (the second began after the tasks existed): the slave went on trying,
    // and still got nothing.
    let before = count_of(&p.master.read_log("controller1"), refusal);
    wait_for("two more refused logins", CATCH_UP, || {
        (count_of(&p.master.read_log("controller1"), refusal) >= before + 2).then_some(())
    });
    assert_eq!(p.slave_tasks(), Vec::<Json>::new(), "the slave got tasks");
    assert_eq!(
        p.slave.ok("existsDatabase(\"dfs://auth\")"),
        [Json::Bool(false)]
    );
    // The master never registered it.
    let slaves = p
        .master
        .rows("rpc(getControllerAlias(), getRecentSlaveReplicationInfo)");
    assert_eq!(slaves, Vec::<Json>::new());
    let master_log = p.master.read_log("controller1");
    assert!(
        !master_log.contains("slave cluster registered"),
        "{master_log}"
    );
    // The slave's controller says why it cannot pull.
    let slave_log = p.slave.read_log("controller1");
    let why = slave_log
        .lines()
        .find(|l| l.contains("cannot reach the master controller"))
        .unwrap_or_else(|| panic!("no reason in the slave's log:\n{slave_log}"));
    assert!(
        why.contains("The user name or password is incorrect."),
        "{why}"
    );
    assert!(why.contains(&p.master.controller.site()), "{why}");
}

#[test]
fn t20_peers_without_the_replication_right_or_a_ticket_cannot_register_pull_or_fetch_task_data() {
    let c = Cluster::start(&Spec {
        replication_mode: Some("master"),
        ..Spec::default()
    });
    c.ok(SETUP);
    c.ok(&append(1));
    c.ok(r#"createUser("bob", "123456", false)"#);
    let ctl_site = c.controller.site();
    runtime().block_on(async {
        // Genuine tokens, of the administrator and of a user who is not one.
        let as_node = c.member(&ctl_site).await;
        let token_of = |user: &str| {
            ControllerRequest::Login {
                user: user.into(),
                password: "123456".into(),
                peer: "127.0.0.1".into(),
            }
        };
        let Ok(Ok(ControllerReply::LoggedIn { token: admin, .. })) = as_node.call(token_of("admin")).await
        else {
            panic!("admin login");
        };
        let Ok(Ok(ControllerReply::LoggedIn {
            token: bob,
            is_admin: false,
            ..
        })) = as_node.call(token_of("bob")).await
        else {
            panic!("bob login");
        };
        let mut tampered = admin.clone();
        let last = tampered.pop().expect("non-empty");
        tampered.push(if last == '0' { '1' } else { '0' });

        let slave = connect(&ctl_site, PeerKind::Slave).await.expect("connect");
        // The administrator's token works: the control for everything refused below.
        let register = |token: &str| {
            ReplicationRequest::Register {
                token: token.into(),
                slave: "127.0.0.1:1".into(),
            }
        };
        let pull = |token: &str| {
            ReplicationRequest::Pull {
                token: token.into(),
                slave: "127.0.0.1:1".into(),
                after: 0,
                finished: vec![],
                max: 100,
                wait_ms: 0,
                inline_room: 1 << 20,
            }
        };
        assert_eq!(slave.call(register(&admin)).await, Ok(Ok(ReplicationReply::Done)));
        let Ok(Ok(ReplicationReply::Tasks { tasks, ticket, .. })) = slave.call(pull(&admin)).await
        else {
            panic!("the administrator's pull");
        };
        assert_eq!((ticket.slave.as_str(), ticket.upto), ("127.0.0.1:1", 3));
        let ids: Vec<u64> = tasks.iter().map(|t| t.task_id).collect();
        assert_eq!(ids, [1, 2, 3]);
        let append_task: TaskInfo = tasks[2].clone();

        let forged = ["", "admin", "admin.00.00", "admin.0011.deadbeef", &tampered];
        for token in forged.iter().copied().chain([bob.as_str()]) {
            for req in [register(token), pull(token)] {
                let e = refused(&slave, req).await;
                assert_denied(&e, "controller1", token);
                if token == bob {
                    assert!(e.message.contains("CLUSTER_REPLICATION"), "{e}");
                }
            }
        }
        // Logging in as a user without the replication right gives no token at all.
        let e = refused(
            &slave,
            ReplicationRequest::Login {
                user: "bob".into(),
                password: "123456".into(),
            },
        )
        .await;
        assert_eq!(e.code, ErrorCode::AccessDenied);
        assert!(e.message.contains("grant(\"bob\", CLUSTER_REPLICATION)"), "{e}");
        assert!(slave.is_open(), "refusals keep the connection");

        // The master data node holding the task data takes a fetch ticket, not a token; it
        // checks the master's signature and what the ticket covers. Forged tickets: another
        // key's, an altered one, one stretched to later tasks or a longer life.
        let other_key = xrepl_core::cluster_key::ClusterKey::from_bytes(&[9; 32]).expect("key");
        let foreign = FetchTicket::issue(&other_key, "127.0.0.1:1", 100, vec![], u64::MAX / 2);
        let mut altered = ticket.clone();
        altered.mac[0] ^= 1;
        let stretched = FetchTicket {
            upto: 100,
            ..ticket.clone()
        };
        let longer = FetchTicket {
            expires_ms: ticket.expires_ms + 3_600_000,
            ..ticket.clone()
        };
        let forged_tickets = [foreign, altered, stretched, longer];
        let node_site = format!("{}:{}", append_task.src_host, append_task.src_port);
        let node = connect(&node_site, PeerKind::Slave).await.expect("connect");
        let fetch = |ticket: &FetchTicket| ReplicationRequest::FetchTaskData {
            ticket: ticket.clone(),
            task_id: append_task.task_id,
            tid: append_task.tid,
            offset: 0,
        };
        let alias = c
            .datanodes
            .iter()
            .find(|n| n.port == append_task.src_port)
            .map(|n| n.alias.clone())
            .expect("the task's data node");
        for t in &forged_tickets {
            let e = refused(&node, fetch(t)).await;
            assert_denied(&e, &alias, "a forged ticket");
            assert!(e.message.contains("not signed by this master cluster"), "{e}");
        }
        let one = match node.call(fetch(&ticket)).await {
            Ok(Ok(ReplicationReply::TaskData { total, bytes, .. })) => {
                assert!(total > 0 && !bytes.is_empty(), "empty task data");
                bytes
            }
            other => panic!("the ticket's fetch: {other:?}"),
        };
        // Several tasks at once: the same check, the same bytes, a missing task in its place,
        // and a bound on the request.
        let many = |ticket: &FetchTicket, tasks: Vec<TaskRef>| ReplicationRequest::FetchTasksData {
            ticket: ticket.clone(),
            tasks,
        };
        let this = TaskRef {
            task_id: append_task.task_id,
            tid: append_task.tid,
        };
        let gone = TaskRef {
            task_id: 999_999,
            tid: 999_999,
        };
        for t in &forged_tickets {
            let e = refused(&node, many(t, vec![this])).await;
            assert_denied(&e, &alias, "a forged ticket");
        }
        // A genuine ticket covers the tasks queued when it was issued, not later ones.
        let e = refused(&node, many(&ticket, vec![this, gone])).await;
        assert_denied(&e, &alias, "a task after the ticket");
        assert!(e.message.contains("covers tasks up to 3, not task 999999"), "{e}");
        let Ok(Ok(ReplicationReply::Ticket(later))) = slave
            .call(ReplicationRequest::Ticket {
                token: admin.clone(),
                slave: "127.0.0.1:1".into(),
            })
            .await
        else {
            panic!("a fresh ticket");
        };
        let gone = TaskRef {
            task_id: later.upto,
            tid: 999_999,
        };
        match node.call(many(&later, vec![this, gone])).await {
            Ok(Ok(ReplicationReply::TasksData(pieces))) => {
                assert_eq!(pieces.len(), 2, "{pieces:?}");
                assert_eq!(pieces[0].task_id, append_task.task_id);
                assert_eq!(pieces[0].bytes, one);
                assert!(pieces[0].error.is_none(), "{:?}", pieces[0].error);
                let e = pieces[1].error.as_ref().expect("the missing task's error");
                assert_eq!(e.code, ErrorCode::NotFound);
                assert!(e.message.contains("Missing taskData"), "{e}");
            }
            other => panic!("the ticket's fetch of two tasks: {other:?}"),
        }
        for tasks in [vec![], vec![this; 1025]] {
            let e = refused(&node, many(&ticket, tasks)).await;
            assert_eq!(e.code, ErrorCode::BadRequest, "{e}");
            assert!(e.message.contains("1 to 1024"), "{e}");
        }

        // A client that greets as a client cannot send a replication request at all: the
        // controller refuses the greeting, a data node closes the connection.
        let e = connect(&ctl_site, PeerKind::Client)
            .await
            .err()
            .expect("the controller refuses clients");
        assert!(
            matches!(&e, RpcError::Refused { reason, .. } if reason.contains("connect the console to a data node")),
            "{e}"
        );
        let client = connect(&node_site, PeerKind::Client).await.expect("connect");
        let answer: Result<Result<ReplicationReply, RemoteError>, RpcError> = client.call(fetch(&ticket)).await;
        assert!(
            matches!(answer, Err(RpcError::Closed { .. })),
            "{answer:?}"
        );
        assert!(!client.is_open());
        // Nor can a data node's connection to the controller, nor a slave send anything else.
        let answer = as_node.call(pull(&admin)).await;
        assert!(matches!(answer, Err(RpcError::Closed { .. })), "{answer:?}");
        let answer = slave.call(token_of("admin")).await;
        assert!(matches!(answer, Err(RpcError::Closed { .. })), "{answer:?}");
    });

    for line in [
        "replication request refused (register)",
        "replication request refused (pull)",
        "may not replicate from this master",
        "slave login refused: no CLUSTER_REPLICATION right",
        "a replication request from a peer that did not greet as a slave",
        "a slave cluster may send replication requests only",
    ] {
        wait_for(
            &format!("'{line}' in the controller's log"),
            Duration::from_secs(10),
            || c.read_log("controller1").contains(line).then_some(()),
        );
    }
    // A closed connection is logged by the server's connection task, which may end a moment
    // after the client saw the connection close.
    for line in [
        "task data request refused",
        "a replication request from a peer that did not greet as a slave",
    ] {
        wait_for(
            &format!("'{line}' in a data node's log"),
            Duration::from_secs(10),
            || {
                let logs: String = c.datanodes.iter().map(|n| c.read_log(&n.alias)).collect();
                logs.contains(line).then_some(())
            },
        );
    }
}

/// Runs `script` on a logged-in session; its outputs.
async fn run(c: &RpcClient, script: &str) -> Vec<Value> {
    let req = SessionRequest::Run {
        script: script.into(),
    };
    match c.call(req).await {
        Ok(Ok(SessionReply::Ran {
            outputs,
            error: None,
        })) => outputs,
        other => panic!("{script}: {other:?}"),
    }
}

#[test]
fn t30_garbage_and_4_gib_frames_close_only_their_own_connection_while_a_session_and_the_slave_go_on(
) {
    let p = Pair::start(Spec::default(), Spec::default());
    p.master.ok(SETUP);
    p.master.ok(&append(1));
    p.wait_caught_up(CATCH_UP);
    let hello = |peer| encode(&Hello::new(peer, 1 << 20)).expect("encode");
    let attacks: Vec<(&str, Vec<u8>)> = vec![
        (
            "garbage",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 garbage".to_vec(),
        ),
        ("a 4 GiB length", 0xFFFF_FFFFu32.to_be_bytes().to_vec()),
        (
            "a length one over 64 MiB",
            ((64u32 << 20) + 1).to_be_bytes().to_vec(),
        ),
        ("a greeting, then a 4 GiB length", {
            let mut v = framed(FrameKind::Hello, &hello(PeerKind::Slave));
            v.extend_from_slice(&0xFFFF_FFFFu32.to_be_bytes());
            v
        }),
        ("a slave's greeting, then garbage", {
            let mut v = framed(FrameKind::Hello, &hello(PeerKind::Slave));
            v.extend(framed(FrameKind::Request, b"\xc1\xc1\xc1\xc1"));
            v
        }),
        (
            "a data node's greeting without a challenge (no proof of the cluster key)",
            {
                let mut v = framed(FrameKind::Hello, &hello(PeerKind::DataNode));
                v.extend(framed(FrameKind::Request, &deep_prepare(10)));
                v
            },
        ),
        // 50 KB: within what a peer may send before it has logged in, so that the decoder's
        // depth limit is what refuses it (100,000 levels, 500 KB, are refused by the frame
        // length already).
        ("a request nested 10,000 levels deep", {
            let mut v = framed(FrameKind::Hello, &hello(PeerKind::Slave));
            v.extend(framed(FrameKind::Request, &deep_prepare(10_000)));
            v
        }),
    ];
    let host = p.master.host();
    let ctl = p.master.controller.site();
    runtime().block_on(async {
        let session = connect(&host, PeerKind::Client).await.expect("connect");
        let login = SessionRequest::Login {
            user: "admin".into(),
            password: "123456".into(),
        };
        assert!(matches!(
            session.call(login).await,
            Ok(Ok(SessionReply::LoggedIn { .. }))
        ));
        assert_eq!(
            run(&session, "x = 7\nx + 1").await,
            [Value::Scalar(Scalar::Int(8))]
        );
        for target in [&ctl, &host] {
            for (name, bytes) in &attacks {
                let mut s = TcpStream::connect(target.as_str()).expect("connect");
                // The peer may close before it has read everything.
                let _ = s.write_all(bytes);
                assert!(
                    closed_by_peer(&mut s, Duration::from_secs(10)),
                    "{target}: {name}: the connection was left open"
                );
                // The process is alive: it still greets a new peer.
                connect(target, PeerKind::Slave)
                    .await
                    .unwrap_or_else(|e| panic!("{target}: {name}: {e}"));
                assert_eq!(
                    run(&session, "x + 1").await,
                    [Value::Scalar(Scalar::Int(8))],
                    "{target}: {name}"
                );
            }
        }
        assert_eq!(
            run(&session, COUNT).await.len(),
            1,
            "the session still queries"
        );
    });
    // Every process is alive and the slave goes on replicating.
    p.master.wait_all_up();
    p.master.ok(&append(2));
    p.wait_caught_up(CATCH_UP);
    assert_eq!(p.master.number(COUNT), 8);
    assert_eq!(p.slave.number(COUNT), 8);
    for alias in ["controller1", "dnode1"] {
        let log = p.master.read_log(alias);
        assert!(log.contains("frame size too big"), "{alias}:\n{log}");
        assert!(log.contains("depth limit exceeded"), "{alias}:\n{log}");
        assert!(log.contains("closed connection"), "{alias}:\n{log}");
    }
}

/// The slave's `lastFinishedTaskId` on the master, by slave name.
fn finished_on_master(p: &Pair) -> Vec<(String, i64)> {
    let out = p
        .master
        .ok("rpc(getControllerAlias(), getRecentSlaveReplicationInfo)");
    let rows = out
        .last()
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default();
    rows.iter()
        .map(|r| {
            (
                r["connectedController"].as_str().unwrap_or("").to_string(),
                r["lastFinishedTaskId"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

#[test]
fn t40_a_slave_replicates_as_a_replication_user_which_can_do_nothing_else_nor_act_for_another_slave(
) {
    let p = Pair::start(
        Spec::default(),
        Spec {
            controller_cfg:
                "clusterReplicationMasterUsername=repl\nclusterReplicationMasterPassword=replpw\n"
                    .into(),
            ..Spec::default()
        },
    );
    p.master.ok(r#"createUser("repl", "replpw", false)
grant("repl", CLUSTER_REPLICATION)"#);
    p.master.ok(SETUP);
    p.master.ok(&append(1));
    let last = p.wait_caught_up(CATCH_UP);
    assert_eq!(p.slave.number(COUNT), 4);
    let slave_name = p.slave.controller.site();
    wait_for("the slave's progress on the master", CATCH_UP, || {
        finished_on_master(&p)
            .contains(&(slave_name.clone(), last))
            .then_some(())
    });
    let master_log = p.master.read_log("controller1");
    assert!(
        master_log.contains("slave cluster registered") && master_log.contains("user=repl"),
        "{master_log}"
    );

    // The right is for replication only: repl reads and writes nothing in a session.
    let out = p.master.console_at(
        &p.master.host(),
        &["--user", "repl", "--password", "replpw"],
        COUNT,
    );
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("DB_READ"), "{}", out.stderr);
    let out = p.master.console_at(
        &p.master.host(),
        &["--user", "repl", "--password", "replpw"],
        "database(\"dfs://other\", VALUE, 1..2)",
    );
    assert_ne!(out.code, 0, "{}", out.stdout);
    // Nor may it be given for one database only.
    let out = p
        .master
        .admin_json(r#"grant("repl", CLUSTER_REPLICATION, "dfs://auth")"#);
    assert!(
        out.stderr.contains("is for the whole cluster"),
        "{}",
        out.stderr
    );

    // Another slave, logged in as an administrator, cannot report progress for this slave,
    // pull its tasks or take its tickets: the slave belongs to repl.
    let before = finished_on_master(&p);
    let ctl_site = p.master.controller.site();
    runtime().block_on(async {
        let other = connect(&ctl_site, PeerKind::Slave).await.expect("connect");
        let Ok(Ok(ReplicationReply::LoggedIn { token, .. })) = other
            .call(ReplicationRequest::Login {
                user: "admin".into(),
                password: "123456".into(),
            })
            .await
        else {
            panic!("admin login");
        };
        for req in [
            ReplicationRequest::Register {
                token: token.clone(),
                slave: slave_name.clone(),
            },
            ReplicationRequest::Pull {
                token: token.clone(),
                slave: slave_name.clone(),
                after: 0,
                finished: (1..=(last as u64 + 100)).collect(),
                max: 100,
                wait_ms: 0,
                inline_room: 0,
            },
            ReplicationRequest::Ticket {
                token: token.clone(),
                slave: slave_name.clone(),
            },
        ] {
            let e = refused(&other, req).await;
            assert_eq!(e.code, ErrorCode::AccessDenied, "{e}");
            assert!(e.message.contains("registered by user 'repl'"), "{e}");
        }
    });
    assert_eq!(finished_on_master(&p), before, "nothing changed");
    // The slave goes on.
    p.master.ok(&append(2));
    p.wait_caught_up(CATCH_UP);
    assert_eq!(p.slave.number(COUNT), 8);
}
