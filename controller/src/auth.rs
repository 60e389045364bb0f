//! Who is calling: session tokens (HMAC-SHA256 with keys kept in the metadata, so they survive
//! restarts), password logins (throttled, [`throttle`]), and the administrator check. Rights
//! on databases are checked where the catalog is (the transaction decisions,
//! `MetaState::allows`).

pub mod throttle;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use xrepl_core::auth::{hash_password, verify_password, TokenClaims, TokenKey};
use xrepl_proto::rpc::{ErrorCode, RemoteError};

use crate::error::refusal;
use crate::meta::{MetaCommand, MetaHandle};
use crate::nodes::now_ns;
use throttle::{Subject, Throttle};

/// Password hashes computed at once, by all connections together: argon2 takes about 19 MiB
/// and a few tens of milliseconds each.
pub const HASHING_AT_ONCE: usize = 2;

/// The logged-in user a call runs for.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: String,
    pub is_admin: bool,
    /// The token's claims (its nonce and expiry, for a logout or a renewal).
    pub claims: TokenClaims,
}

/// A successful login: the user and the token for later calls.
#[derive(Debug, Clone)]
pub struct Login {
    pub user: String,
    pub is_admin: bool,
    pub token: String,
    /// When the token expires, milliseconds since the epoch.
    pub expires_ms: i64,
}

/// Issues and checks tokens; shared (cloned) by the roles that need to know who calls.
#[derive(Clone)]
pub struct Auth {
    alias: String,
    meta: MetaHandle,
    /// How long a token lives (`tokenExpirySecs`).
    ttl: Duration,
    throttle: Arc<Throttle>,
    hashing: Arc<Semaphore>,
    /// A hash no password matches, checked for unknown users so that they cost what a wrong
    /// password costs.
    decoy: Arc<String>,
}

fn now_ms() -> i64 {
    now_ns() / 1_000_000
}

impl Auth {
    pub fn new(alias: &str, meta: MetaHandle, ttl: Duration) -> Auth {
        let decoy = xrepl_core::auth::decoy_hash();
        Auth {
            alias: alias.to_string(),
            meta,
            ttl,
            throttle: Arc::new(Throttle::default()),
            hashing: Arc::new(Semaphore::new(HASHING_AT_ONCE)),
            decoy: Arc::new(decoy),
        }
    }

    fn refuse(&self, code: ErrorCode, message: impl Into<String>) -> RemoteError {
        refusal(&self.alias, code, message)
    }

    fn not_logged_in(&self, message: impl Into<String>) -> RemoteError {
        self.refuse(ErrorCode::NotLoggedIn, message)
    }

    /// The user behind a session token: genuine, signed with a key still valid, not expired,
    /// not logged out of, and issued for the user's current password.
    pub fn caller(&self, token: &str) -> Result<Caller, RemoteError> {
        let now = now_ms();
        let bad = || self.not_logged_in("not logged in: call login(user, password) first");
        let (claims, body, tag) = TokenClaims::parse(token).ok_or_else(bad)?;
        let key = self
            .meta
            .read(|s| s.token_key_numbered(claims.key_id, now))
            .ok_or_else(bad)?;
        if !key.signed(body, &tag) {
            return Err(bad());
        }
        let user = claims.user.clone();
        if claims.expires_ms <= now {
            return Err(self.not_logged_in(format!(
                "the session of user '{user}' expired: log in again"
            )));
        }
        let found = self.meta.read(|s| {
            (
                s.users.get(&user).map(|u| (u.is_admin, u.generation)),
                s.revoked_tokens.contains_key(&claims.nonce),
            )
        });
        match found {
            (None, _) => Err(self.not_logged_in(format!("user '{user}' no longer exists"))),
            (Some(_), true) => Err(self.not_logged_in(format!(
                "user '{user}' logged out of this session: log in again"
            ))),
            (Some((_, generation)), false) if generation != claims.generation => {
                Err(self.not_logged_in(format!(
                    "the password of user '{user}' changed since this session logged in: log in again"
                )))
            }
            (Some((is_admin, _)), false) => Ok(Caller {
                user,
                is_admin,
                claims,
            }),
        }
    }

    /// A new token for `user` as the metadata stands.
    pub(crate) fn issue(&self, user: &str) -> Result<(String, i64), RemoteError> {
        let expires_ms = now_ms().saturating_add(self.ttl.as_millis() as i64);
        self.meta
            .read(|s| {
                let generation = s.users.get(user)?.generation;
                Some(
                    s.token_key()?
                        .issue(user, generation, expires_ms, s.token_key_id),
                )
            })
            .map(|t| (t, expires_ms))
            .ok_or_else(|| self.not_logged_in(format!("user '{user}' no longer exists")))
    }

    /// A fresh token for a caller whose token is past half its life (a session in use does
    /// not expire); `None` while it is younger.
    pub fn renew(&self, caller: &Caller) -> Option<(String, i64)> {
        let left = caller.claims.expires_ms - now_ms();
        if left > (self.ttl.as_millis() / 2) as i64 {
            return None;
        }
        self.issue(&caller.user).ok()
    }

    /// Runs a password hash or check, at most [`HASHING_AT_ONCE`] at a time, off the async
    /// threads.
    async fn hashing<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, RemoteError> {
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|_| self.refuse(ErrorCode::Internal, "shutting down"))?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| self.refuse(ErrorCode::Internal, format!("password check failed: {e}")))
    }

    /// A salted hash of a new password, after checking the password's length.
    pub async fn hash_new_password(&self, password: String) -> Result<String, RemoteError> {
        if password.chars().count() < 6 {
            return Err(self.refuse(
                ErrorCode::BadRequest,
                "a password needs at least 6 characters",
            ));
        }
        if password.len() > 1024 {
            return Err(self.refuse(ErrorCode::BadRequest, "a password has at most 1024 bytes"));
        }
        self.hashing(move || hash_password(&password))
            .await?
            .map_err(|e| self.refuse(ErrorCode::Internal, e))
    }

    /// Checks `user`'s password, throttled per user and per peer address; whether the user is
    /// an administrator. Every refusal reads the same, whether the user exists or not.
    pub async fn check_password(
        &self,
        user: &str,
        password: &str,
        peer: &str,
    ) -> Result<bool, RemoteError> {
        // An empty `peer`: not known (throttled per user only).
        let mut subjects = vec![Subject::User(user.to_string())];
        if !peer.is_empty() {
            subjects.push(Subject::Peer(peer.to_string()));
        }
        self.throttle.admit(&subjects).await;
        let found = self.meta.read(|s| {
            s.users
                .get(user)
                .map(|u| (u.password_hash.clone(), u.is_admin))
        });
        let (hash, is_admin) = match found {
            Some((h, a)) => (h, Some(a)),
            None => (self.decoy.as_ref().clone(), None),
        };
        let password = password.to_string();
        let matches = self
            .hashing(move || verify_password(&password, &hash))
            .await?;
        match (matches, is_admin) {
            (true, Some(is_admin)) => {
                self.throttle.succeeded(&subjects);
                Ok(is_admin)
            }
            _ => {
                self.throttle.failed(&subjects);
                let failures = self.throttle.failures(&subjects[0]);
                tracing::warn!(%user, %peer, failures, "login refused: wrong user name or password");
                Err(self.refuse(
                    ErrorCode::AccessDenied,
                    "The user name or password is incorrect.",
                ))
            }
        }
    }

    /// Checks a password (throttled, see [`Self::check_password`]) and issues a token.
    pub async fn login(
        &self,
        user: &str,
        password: &str,
        peer: &str,
    ) -> Result<Login, RemoteError> {
        let is_admin = self.check_password(user, password, peer).await?;
        let (token, expires_ms) = self.issue(user)?;
        tracing::info!(%user, %peer, "login");
        Ok(Login {
            user: user.to_string(),
            is_admin,
            token,
            expires_ms,
        })
    }

    /// Ends the session of `caller`'s token: it is refused from now on, everywhere.
    pub async fn logout(&self, caller: &Caller) -> Result<(), RemoteError> {
        self.meta
            .apply(MetaCommand::RevokeToken {
                nonce: caller.claims.nonce.clone(),
                expires_ms: caller.claims.expires_ms,
                now_ms: now_ms(),
            })
            .await
            .map_err(|e| e.to_remote(&self.alias))?;
        tracing::info!(user = %caller.user, "logout");
        Ok(())
    }

    /// Sets a user's new password; every token issued before is refused from now on. Answers
    /// a token for the caller's own session when it is the user's.
    pub async fn set_password(
        &self,
        user: &str,
        password: String,
    ) -> Result<(String, i64), RemoteError> {
        let password_hash = self.hash_new_password(password).await?;
        self.meta
            .apply(MetaCommand::SetPassword {
                user: user.to_string(),
                password_hash,
            })
            .await
            .map_err(|e| e.to_remote(&self.alias))?;
        self.issue(user)
    }

    /// Makes a new key sign the tokens from now on; tokens of the key before stay valid for
    /// one token lifetime.
    pub async fn rotate_key(&self) -> Result<u32, RemoteError> {
        self.meta
            .apply(MetaCommand::RotateTokenKey {
                key: TokenKey::generate().as_bytes().to_vec(),
                previous_until_ms: now_ms().saturating_add(self.ttl.as_millis() as i64),
            })
            .await
            .map_err(|e| e.to_remote(&self.alias))?;
        let id = self.meta.read(|s| s.token_key_id);
        tracing::info!(key = id, "token key rotated");
        Ok(id)
    }

    /// The nonce of the replay attempt handed to `node` at `started_ns` (see
    /// `TokenKey::attempt_nonce`).
    pub fn attempt_nonce(&self, node: &str, started_ns: i64) -> Vec<u8> {
        self.meta
            .read(|s| s.token_key())
            .map(|k| k.attempt_nonce(node, started_ns))
            .unwrap_or_default()
    }

    /// Whether a report or a decision brings the nonce of a hand-out of this controller
    /// (made with the current token key, or the one before a rotation).
    pub fn check_attempt(&self, node: &str, started_ns: i64, nonce: &[u8]) -> bool {
        let now = now_ms();
        self.meta.read(|s| {
            let previous = s
                .previous_key
                .as_ref()
                .and_then(|p| s.token_key_numbered(p.id, now));
            s.token_key()
                .into_iter()
                .chain(previous)
                .any(|k| k.check_attempt_nonce(node, started_ns, nonce))
        })
    }

    /// Refuses `name` for a caller who is not an administrator.
    pub fn admin_only(&self, caller: &Caller, name: &str) -> Result<(), RemoteError> {
        if caller.is_admin {
            Ok(())
        } else {
            Err(self.refuse(
                ErrorCode::AccessDenied,
                format!(
                    "{name} needs administrator rights; user '{}' is not an administrator",
                    caller.user
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    async fn auth(ttl: Duration) -> (tempfile::TempDir, Auth) {
        let dir = tempfile::tempdir().expect("tempdir");
        let meta = MetaHandle::open(&dir.path().join("meta")).expect("meta");
        meta.apply(MetaCommand::InitTokenKey {
            key: TokenKey::generate().as_bytes().to_vec(),
        })
        .await
        .expect("key");
        for (name, is_admin) in [("admin", true), ("alice", false)] {
            meta.apply(MetaCommand::CreateUser {
                name: name.into(),
                password_hash: hash_password("123456").expect("hash"),
                is_admin,
            })
            .await
            .expect("user");
        }
        (dir, Auth::new("controller1", meta, ttl))
    }

    #[tokio::test]
    async fn tokens_expire_and_are_renewed_past_half_their_life() {
        let (_dir, a) = auth(Duration::from_millis(400)).await;
        let l = a.login("alice", "123456", "10.0.0.1").await.expect("login");
        let caller = a.caller(&l.token).expect("fresh");
        assert!(a.renew(&caller).is_none(), "young tokens are not renewed");
        tokio::time::sleep(Duration::from_millis(250)).await;
        let caller = a.caller(&l.token).expect("not expired yet");
        let (renewed, _) = a.renew(&caller).expect("past half its life");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let e = a.caller(&l.token).expect_err("expired");
        assert_eq!(e.code, ErrorCode::NotLoggedIn);
        assert!(e.message.contains("expired"), "{e}");
        assert_eq!(a.caller(&renewed).expect("renewed").user, "alice");
    }

    #[tokio::test]
    async fn a_rotated_key_keeps_old_tokens_for_one_lifetime_and_no_longer() {
        let (_dir, a) = auth(Duration::from_millis(300)).await;
        let old = a.login("alice", "123456", "").await.expect("login").token;
        let nonce = a.attempt_nonce("dnode1", 7);
        assert_eq!(a.rotate_key().await.expect("rotate"), 1);
        a.caller(&old).expect("the key before still holds");
        assert!(
            a.check_attempt("dnode1", 7, &nonce),
            "hand-outs before the rotation"
        );
        let new = a.login("alice", "123456", "").await.expect("login").token;
        assert_ne!(TokenClaims::parse(&new).map(|c| c.0.key_id), Some(0));
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(
            a.caller(&old).expect_err("past its window").code,
            ErrorCode::NotLoggedIn
        );
        assert!(!a.check_attempt("dnode1", 7, &nonce));
        // A second rotation retires key 0 for good, and key 1 keeps its window.
        let (_dir, a) = auth(Duration::from_secs(60)).await;
        let t0 = a.login("alice", "123456", "").await.expect("login").token;
        a.rotate_key().await.expect("rotate");
        let t1 = a.login("alice", "123456", "").await.expect("login").token;
        a.rotate_key().await.expect("rotate again");
        assert!(a.caller(&t0).is_err(), "two keys back");
        a.caller(&t1).expect("one key back");
    }

    #[tokio::test]
    async fn an_unknown_user_costs_what_a_wrong_password_costs_and_reads_the_same() {
        let (_dir, a) = auth(Duration::from_secs(60)).await;
        let mut wrong = Duration::ZERO;
        let mut unknown = Duration::ZERO;
        // Each attempt from its own address, for users of their own, so none is throttled.
        for i in 0..3 {
            let start = Instant::now();
            let w = a
                .check_password("alice", "nope", &format!("10.0.1.{i}"))
                .await;
            wrong += start.elapsed();
            let start = Instant::now();
            let u = a
                .check_password(&format!("ghost{i}"), "nope", &format!("10.0.2.{i}"))
                .await;
            unknown += start.elapsed();
            let (w, u) = (w.expect_err("wrong"), u.expect_err("unknown"));
            assert_eq!((w.code, &w.message), (u.code, &u.message));
        }
        assert!(
            unknown * 2 > wrong,
            "an unknown user took {unknown:?}, a wrong password {wrong:?}"
        );
    }
}
