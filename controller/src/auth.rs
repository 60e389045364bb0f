//! Who is calling: session tokens (HMAC-SHA256 with a key kept in the metadata, so they survive
//! restarts), password logins, and the administrator check. Rights on databases are checked
//! where the catalog is (the transaction decisions, `MetaState::allows`).

use xrepl_core::auth::{verify_password, TokenKey};
use xrepl_proto::rpc::{ErrorCode, RemoteError};

use crate::error::refusal;
use crate::meta::MetaHandle;

/// The logged-in user a call runs for.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: String,
    pub is_admin: bool,
}

/// A successful login: the user and the token for later calls.
#[derive(Debug, Clone)]
pub struct Login {
    pub user: String,
    pub is_admin: bool,
    pub token: String,
}

/// Issues and checks tokens; shared (cloned) by the roles that need to know who calls.
#[derive(Clone)]
pub struct Auth {
    alias: String,
    key: TokenKey,
    meta: MetaHandle,
}

impl Auth {
    pub fn new(alias: &str, key: TokenKey, meta: MetaHandle) -> Auth {
        Auth {
            alias: alias.to_string(),
            key,
            meta,
        }
    }

    fn refuse(&self, code: ErrorCode, message: impl Into<String>) -> RemoteError {
        refusal(&self.alias, code, message)
    }

    /// The user behind a session token, if the token is genuine and the user still exists.
    pub fn caller(&self, token: &str) -> Result<Caller, RemoteError> {
        let user = self.key.verify(token).ok_or_else(|| {
            self.refuse(
                ErrorCode::NotLoggedIn,
                "not logged in: call login(user, password) first",
            )
        })?;
        let is_admin = self
            .meta
            .read(|s| s.users.get(&user).map(|u| u.is_admin))
            .ok_or_else(|| {
                self.refuse(
                    ErrorCode::NotLoggedIn,
                    format!("user '{user}' no longer exists"),
                )
            })?;
        Ok(Caller { user, is_admin })
    }

    /// Checks a password (argon2, off the async threads) and issues a token.
    pub async fn login(&self, user: &str, password: &str) -> Result<Login, RemoteError> {
        let hash = self.meta.read(|s| {
            s.users
                .get(user)
                .map(|u| (u.password_hash.clone(), u.is_admin))
        });
        let checked = match hash {
            Some((h, is_admin)) => {
                let password = password.to_string();
                tokio::task::spawn_blocking(move || verify_password(&password, &h))
                    .await
                    .unwrap_or(false)
                    .then_some(is_admin)
            }
            None => None,
        };
        match checked {
            Some(is_admin) => {
                tracing::info!(%user, "login");
                Ok(Login {
                    user: user.to_string(),
                    is_admin,
                    token: self.key.issue(user),
                })
            }
            None => {
                tracing::warn!(%user, "login refused: wrong user name or password");
                Err(self.refuse(
                    ErrorCode::AccessDenied,
                    "The user name or password is incorrect.",
                ))
            }
        }
    }

    /// Refuses `name` for a caller who is not an administrator.
    /// The nonce of the replay attempt handed to `node` at `started_ns` (see
    /// `TokenKey::attempt_nonce`).
    pub fn attempt_nonce(&self, node: &str, started_ns: i64) -> Vec<u8> {
        self.key.attempt_nonce(node, started_ns)
    }

    /// Whether a report or a decision brings the nonce of a hand-out of this controller.
    pub fn check_attempt(&self, node: &str, started_ns: i64, nonce: &[u8]) -> bool {
        self.key.check_attempt_nonce(node, started_ns, nonce)
    }

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
