//! Users an operator manages (issue 17): DolphinDB's user functions, each taking effect at the
//! next call of every open session on every data node; tokens that a logout, a new password
//! or a deleted user make worthless; throttled logins; the first administrator password.

use std::time::{Duration, Instant};

use serde_json::json;
use xrepl_core::value::{Scalar, Value};
use xrepl_proto::client::{Client, ClientError};
use xrepl_proto::rpc::{ControllerReply, ControllerRequest, ErrorCode};
use xrepl_tests::{runtime, Cluster, Spec};

/// A VALUE database with table `t(d DATE, id INT)` and 10 rows.
const SETUP: &str = r#"
db = database("dfs://u", VALUE, 2023.01.01..2023.01.10)
db.createPartitionedTable(table=table(1:0, `d`id, [DATE, INT]), tableName="t", partitionColumns=`d)
id = 0..9
loadTable("dfs://u", "t").append!(table(2023.01.01 + id, id))
createUser("alice", "alicepw1")
grant("alice", DB_READ, "dfs://u")
"#;

const COUNT: &str = r#"select count(*) from loadTable("dfs://u", "t")"#;
const APPEND: &str = r#"loadTable("dfs://u", "t").append!(table(d=[2023.01.02], id=[100]))"#;

fn code(e: &ClientError) -> Option<ErrorCode> {
    match e {
        ClientError::Remote(r) => Some(r.code),
        _ => None,
    }
}

/// The count `COUNT` prints in a session.
async fn count(s: &Client) -> Result<i64, ClientError> {
    let out = s.run(COUNT).await?;
    let n = match out.last() {
        Some(Value::Table(t)) => t.columns.first().and_then(|c| c.get(0)),
        _ => None,
    };
    match n {
        Some(Scalar::Long(n)) => Ok(n),
        Some(Scalar::Int(n)) => Ok(i64::from(n)),
        other => panic!("not a count: {other:?} in {out:?}"),
    }
}

/// Runs `script` and expects it refused with `want`, the message containing `says`.
async fn refused(s: &Client, script: &str, want: ErrorCode, says: &str) {
    let e = s.run(script).await.expect_err(script);
    assert_eq!(code(&e), Some(want), "{script}: {e}");
    assert!(e.to_string().contains(says), "{script}: {e}");
}

#[test]
fn t10_revoke_deny_password_changes_and_deletion_stop_open_sessions_on_every_node_at_once() {
    let c = Cluster::start(&Spec::default());
    c.ok(SETUP);
    let (h1, h2) = (c.datanodes[0].site(), c.datanodes[1].site());
    runtime().block_on(async {
        let admin = Client::connect(&h1, "admin", "123456")
            .await
            .expect("admin");
        let a1 = Client::connect(&h1, "alice", "alicepw1")
            .await
            .expect("alice 1");
        let a2 = Client::connect(&h2, "alice", "alicepw1")
            .await
            .expect("alice 2");
        assert_eq!(count(&a1).await.expect("read"), 10);
        assert_eq!(count(&a2).await.expect("read"), 10);
        refused(&a1, APPEND, ErrorCode::AccessDenied, "lacks DB_WRITE").await;

        // A revoked right stops both sessions' next read.
        admin
            .run(r#"revoke("alice", DB_READ, "dfs://u")"#)
            .await
            .expect("revoke");
        refused(&a1, COUNT, ErrorCode::AccessDenied, "lacks DB_READ").await;
        refused(&a2, COUNT, ErrorCode::AccessDenied, "lacks DB_READ").await;

        // A deny wins over a grant, even over DB_OWNER, which implies the right denied.
        admin
            .run(
                r#"grant("alice", DB_OWNER, "dfs://u")
deny("alice", DB_READ, "dfs://u")"#,
            )
            .await
            .expect("grant and deny");
        refused(&a1, COUNT, ErrorCode::AccessDenied, "lacks DB_READ").await;
        admin
            .run(r#"revoke("alice", DB_READ, "dfs://u")"#)
            .await
            .expect("revoke the deny");
        assert_eq!(count(&a1).await.expect("owner reads again"), 10);
        a2.run(APPEND).await.expect("DB_OWNER writes");

        // What getUserAccess and getUserList say.
        let access = c.ok(r#"getUserAccess("alice")"#);
        let row = &access[0][0];
        assert_eq!(row["userId"], json!("alice"));
        assert_eq!(row["isAdmin"], json!(false));
        assert_eq!(row["DB_OWNER_allowed"], json!("dfs://u"));
        assert_eq!(row["DB_READ_allowed"], json!(null), "none: an empty string");
        assert_eq!(row["DB_READ_denied"], json!(null));
        assert_eq!(row["DB_OWNER"], json!("none"));
        assert_eq!(row["CLUSTER_REPLICATION"], json!("none"));
        admin
            .run(r#"deny("alice", DB_WRITE, "dfs://u"); deny("alice", CLUSTER_REPLICATION)"#)
            .await
            .expect("deny");
        let row = &c.ok(r#"getUserAccess("alice")"#)[0][0];
        assert_eq!(row["DB_WRITE_denied"], json!("dfs://u"));
        assert_eq!(row["CLUSTER_REPLICATION"], json!("deny"));
        refused(&a1, APPEND, ErrorCode::AccessDenied, "lacks DB_WRITE").await;
        // Her own access, she may see; the list of users, she may not.
        let own = a1.run("getUserAccess()").await.expect("own access");
        assert!(format!("{own:?}").contains("alice"));
        refused(
            &a1,
            "getUserList()",
            ErrorCode::AccessDenied,
            "administrator",
        )
        .await;
        refused(
            &a1,
            r#"getUserAccess("admin")"#,
            ErrorCode::AccessDenied,
            "administrator",
        )
        .await;
        c.ok(r#"createUser("bob", "bobpass1"); createUser("root2", "rootpw12", true)"#);
        let list = c.ok("getUserList()");
        assert_eq!(
            list.last(),
            Some(&json!(["alice", "bob"])),
            "administrators are not listed"
        );

        // changePwd: the session that changed it goes on; every other one ends at its next
        // call, whatever the call; the old password no longer logs in.
        a1.run(r#"changePwd("alicepw1", "alicepw2")"#)
            .await
            .expect("changePwd");
        assert_eq!(count(&a1).await.expect("the changing session goes on"), 11);
        refused(
            &a2,
            "1 + 1",
            ErrorCode::NotLoggedIn,
            "password of user 'alice' changed",
        )
        .await;
        refused(&a2, "1 + 1", ErrorCode::NotLoggedIn, "Not logged in").await;
        let old = Client::connect(&h2, "alice", "alicepw1")
            .await
            .err()
            .expect("old password");
        assert_eq!(code(&old), Some(ErrorCode::AccessDenied), "{old}");
        let a2 = Client::connect(&h2, "alice", "alicepw2")
            .await
            .expect("new password");
        assert_eq!(count(&a2).await.expect("read"), 11);
        refused(
            &a1,
            r#"changePwd("wrong123", "alicepw3")"#,
            ErrorCode::AccessDenied,
            "old password is incorrect",
        )
        .await;
        refused(
            &a1,
            r#"changePwd("alicepw2", "short")"#,
            ErrorCode::BadRequest,
            "at least 6",
        )
        .await;

        // resetPwd by an administrator ends all her sessions.
        refused(
            &a1,
            r#"resetPwd("bob", "hacked12")"#,
            ErrorCode::AccessDenied,
            "administrator",
        )
        .await;
        admin
            .run(r#"resetPwd("alice", "alicepw9")"#)
            .await
            .expect("resetPwd");
        refused(&a1, COUNT, ErrorCode::NotLoggedIn, "changed").await;
        refused(&a2, COUNT, ErrorCode::NotLoggedIn, "changed").await;
        let a1 = Client::connect(&h1, "alice", "alicepw9")
            .await
            .expect("reset password");
        assert_eq!(count(&a1).await.expect("read"), 11);

        // deleteUser: her session ends at once; she is gone from every list; the last
        // administrator cannot be deleted.
        admin
            .run(r#"deleteUser("alice")"#)
            .await
            .expect("deleteUser");
        refused(
            &a1,
            "1 + 1",
            ErrorCode::NotLoggedIn,
            "user 'alice' no longer exists",
        )
        .await;
        let gone = Client::connect(&h2, "alice", "alicepw9")
            .await
            .err()
            .expect("deleted");
        assert_eq!(code(&gone), Some(ErrorCode::AccessDenied), "{gone}");
        assert_eq!(c.ok("getUserList()").last(), Some(&json!(["bob"])));
        admin
            .run(r#"deleteUser("root2")"#)
            .await
            .expect("a second administrator goes");
        refused(
            &admin,
            r#"deleteUser("admin")"#,
            ErrorCode::BadRequest,
            "last administrator",
        )
        .await;
        refused(
            &admin,
            r#"deleteUser("nobody")"#,
            ErrorCode::BadRequest,
            "does not exist",
        )
        .await;
        refused(
            &admin,
            r#"revoke("bob", DB_READ)"#,
            ErrorCode::BadRequest,
            "needs a database",
        )
        .await;
        refused(
            &admin,
            r#"deny("admin", DB_READ, "dfs://u")"#,
            ErrorCode::BadRequest,
            "administrator",
        )
        .await;
    });
}

#[test]
fn t20_a_logout_ends_the_token_everywhere_and_a_rotated_key_keeps_old_tokens() {
    let c = Cluster::start(&Spec::default());
    runtime().block_on(async {
        let ctl = c.member(&c.controller.site()).await;
        let login = || ControllerRequest::Login {
            user: "admin".into(),
            password: "123456".into(),
            peer: "127.0.0.1".into(),
        };
        let call = |token: &str| ControllerRequest::Call {
            token: token.to_string(),
            function: "getControllerAlias".into(),
            args: vec![],
        };
        let Ok(Ok(ControllerReply::LoggedIn { token, expires_ms, .. })) = ctl.call(login()).await
        else {
            panic!("login");
        };
        let day_ms = 86_400_000;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as i64;
        assert!((expires_ms - now_ms - day_ms).abs() < 60_000, "expires in a day: {expires_ms}");
        // The session check answers who it is; a logout makes the token worthless.
        let check = ctl
            .call(ControllerRequest::Session { token: token.clone() })
            .await
            .expect("answer")
            .expect("holds");
        assert!(
            matches!(&check, ControllerReply::Session { user, is_admin: true, renewed: None } if user == "admin"),
            "{check:?}"
        );
        let Ok(Ok(ControllerReply::LoggedIn { token: other, .. })) = ctl.call(login()).await
        else {
            panic!("login");
        };
        ctl.call(ControllerRequest::Logout { token: token.clone() })
            .await
            .expect("answer")
            .expect("logout");
        let e = ctl.call(call(&token)).await.expect("answer").expect_err("logged out");
        assert_eq!(e.code, ErrorCode::NotLoggedIn);
        assert!(e.message.contains("logged out"), "{e}");
        // The user's other session is untouched.
        assert!(matches!(ctl.call(call(&other)).await, Ok(Ok(ControllerReply::Value(_)))));
        // A console logout ends its own session: its next statement needs a login.
        let out = c.console_at(&c.host(), &["--user", "admin", "--password", "123456"], "logout()\n1 + 1");
        assert_eq!(out.code, 1, "{}", out.stderr);
        assert!(out.stderr.contains("Not logged in"), "{}", out.stderr);

        // A rotated key signs new tokens; tokens of the key before still hold.
        let rotated = c.ok("rotateTokenKey()");
        assert_eq!(rotated.last(), Some(&json!(1)));
        assert!(matches!(ctl.call(call(&other)).await, Ok(Ok(ControllerReply::Value(_)))));
        let Ok(Ok(ControllerReply::LoggedIn { token: fresh, .. })) = ctl.call(login()).await
        else {
            panic!("login");
        };
        assert!(fresh.split('.').nth(3) == Some("1"), "signed with key 1: {fresh}");
        assert!(matches!(ctl.call(call(&fresh)).await, Ok(Ok(ControllerReply::Value(_)))));
        // Tokens survive a controller restart, with both keys.
        let mut c = c;
        c.kill(&c.controller.alias.clone());
        c.spawn_controller();
        c.wait_all_up();
        let ctl = c.member(&c.controller.site()).await;
        for t in [&other, &fresh] {
            assert!(matches!(ctl.call(call(t)).await, Ok(Ok(ControllerReply::Value(_)))), "{t}");
        }
        let e = ctl.call(call(&token)).await.expect("answer").expect_err("still logged out");
        assert_eq!(e.code, ErrorCode::NotLoggedIn);
    });
}

#[test]
fn t30_a_burst_of_bad_logins_is_slowed_after_three_and_a_success_resets_it() {
    let c = Cluster::start(&Spec::default());
    c.ok(r#"createUser("carol", "carolpw1")"#);
    let host = c.host();
    runtime().block_on(async {
        let mut took = Vec::new();
        for _ in 0..5 {
            let start = Instant::now();
            let e = Client::connect(&host, "carol", "wrong123")
                .await
                .err()
                .expect("refused");
            assert_eq!(code(&e), Some(ErrorCode::AccessDenied), "{e}");
            assert!(
                e.to_string()
                    .contains("The user name or password is incorrect"),
                "{e}"
            );
            took.push(start.elapsed());
        }
        for (i, t) in took.iter().enumerate().take(3) {
            assert!(
                *t < Duration::from_millis(900),
                "attempt {i} was slowed: {took:?}"
            );
        }
        assert!(
            took[3] >= Duration::from_millis(950),
            "4th: 1 s after the 3rd failure: {took:?}"
        );
        assert!(
            took[4] >= Duration::from_millis(1_950),
            "5th: 2 s after the 4th: {took:?}"
        );
        // An unknown user from the same address waits as well, and reads the same.
        let start = Instant::now();
        let e = Client::connect(&host, "nobody", "wrong123")
            .await
            .err()
            .expect("refused");
        assert!(
            e.to_string()
                .contains("The user name or password is incorrect"),
            "{e}"
        );
        assert!(
            start.elapsed() >= Duration::from_millis(3_900),
            "{:?}",
            start.elapsed()
        );
        // The right password, once its turn comes, logs in and starts afresh.
        Client::connect(&host, "carol", "carolpw1")
            .await
            .expect("the right password");
        let start = Instant::now();
        let e = Client::connect(&host, "carol", "wrong123")
            .await
            .err()
            .expect("refused");
        assert_eq!(code(&e), Some(ErrorCode::AccessDenied), "{e}");
        assert!(
            start.elapsed() < Duration::from_millis(900),
            "reset: {:?}",
            start.elapsed()
        );
    });
    let log = c.read_log(&c.controller.alias);
    assert!(
        log.contains("login refused"),
        "the controller logs refusals"
    );
    assert!(!log.contains("wrong123"), "no password in the log");
}

#[test]
fn t40_the_default_admin_password_is_warned_about_and_admin_password_file_replaces_it() {
    let c = Cluster::start(&Spec::default());
    let warnings = |c: &Cluster| {
        c.read_log(&c.controller.alias)
            .matches("still has the default password")
            .count()
    };
    assert_eq!(warnings(&c), 1, "{}", c.read_log(&c.controller.alias));
    c.ok(r#"changePwd("123456", "s3cret-admin")"#);
    // After a restart with another password, no warning.
    let mut c = c;
    c.admin_password = "s3cret-admin".into();
    c.kill(&c.controller.alias.clone());
    c.spawn_controller();
    c.wait_all_up();
    let out = c.console_at(
        &c.host(),
        &[
            "--user",
            "admin",
            "--password",
            "s3cret-admin",
            "--format",
            "json",
        ],
        "getUserList()",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(warnings(&c), 1, "no second warning after the restart");

    // A first start with adminPasswordFile: that password, not the default, and no warning.
    let spec = Spec {
        controller_cfg: "adminPasswordFile=admin.pw\n".into(),
        files: vec![("admin.pw".into(), "from-a-file-1\n".into())],
        admin_password: "from-a-file-1".into(),
        ..Spec::default()
    };
    let c = Cluster::start(&spec);
    let wrong = c.console_at(&c.host(), &["--user", "admin", "--password", "123456"], "1");
    assert_eq!(
        wrong.code, 2,
        "the default password does not log in: {}",
        wrong.stderr
    );
    let right = c.console_at(
        &c.host(),
        &[
            "--user",
            "admin",
            "--password",
            "from-a-file-1",
            "--format",
            "json",
        ],
        "getUserList()",
    );
    assert_eq!(right.code, 0, "{}", right.stderr);
    let log = c.read_log(&c.controller.alias);
    assert!(!log.contains("still has the default password"), "{log}");
    assert!(
        log.contains("admin.pw"),
        "the log says where the password came from: {log}"
    );
}
