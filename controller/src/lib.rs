//! The controller: metadata owner, user authority, and registry of the cluster's data nodes.
//!
//! Layers: [`meta`] (the state and the one function that changes it), [`nodes`] (liveness),
//! [`functions`] (controller functions called by name), and the RPC [`Service`] below that
//! routes each [`ControllerRequest`] to them.

pub mod error;
pub mod functions;
pub mod meta;
pub mod nodes;

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::net::TcpListener;
use tokio::sync::watch;
use xrepl_common::auth::{hash_password, verify_password, TokenKey};
use xrepl_common::config::{ControllerConfig, NodeRole};
use xrepl_common::rpc::{
    serve, ControllerRequest, ErrorCode, Hello, PeerKind, RemoteError, Reply, Request, Response,
    ServerInfo, Service,
};

pub use error::ControllerError;
use functions::Caller;
use meta::{MetaCommand, MetaHandle};
use nodes::NodeRegistry;

/// The default administrator created on first start, as in DolphinDB.
pub const DEFAULT_ADMIN: (&str, &str) = ("admin", "123456");

/// Everything a request handler needs; shared by every connection.
pub struct Controller {
    pub cfg: ControllerConfig,
    pub meta: MetaHandle,
    pub nodes: NodeRegistry,
    token_key: TokenKey,
}

impl Controller {
    /// Opens the metadata under `cfg.home` and creates the administrator and the token secret
    /// on first start.
    pub async fn open(cfg: ControllerConfig) -> Result<Controller, ControllerError> {
        std::fs::create_dir_all(&cfg.home).map_err(|source| ControllerError::CreateHome {
            path: cfg.home.clone(),
            source,
        })?;
        let meta = MetaHandle::open(&cfg.home.join("meta"))?;
        if meta.read(|s| s.token_key.is_none()) {
            meta.apply(MetaCommand::InitTokenKey {
                key: TokenKey::generate().as_bytes().to_vec(),
            })
            .await?;
        }
        if meta.read(|s| s.users.is_empty()) {
            let (name, password) = DEFAULT_ADMIN;
            meta.apply(MetaCommand::CreateUser {
                name: name.into(),
                password_hash: hash_password(password).map_err(ControllerError::Hash)?,
                is_admin: true,
            })
            .await?;
            tracing::info!("first start: created user '{name}' (administrator)");
        }
        let token_key = meta
            .read(|s| s.token_key())
            .ok_or_else(|| ControllerError::Corrupt {
                key: "token_key".into(),
                reason: "missing or not 32 bytes".into(),
            })?;
        let nodes = NodeRegistry::new(cfg.nodes.clone(), cfg.heartbeat_timeout);
        Ok(Controller {
            cfg,
            meta,
            nodes,
            token_key,
        })
    }

    fn refuse(&self, code: ErrorCode, message: impl Into<String>) -> RemoteError {
        RemoteError {
            node: self.cfg.alias.clone(),
            code,
            message: message.into(),
        }
    }

    /// The user behind a session token, if the token is genuine and the user still exists.
    fn caller(&self, token: &str) -> Result<Caller, RemoteError> {
        let user = self.token_key.verify(token).ok_or_else(|| {
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

    async fn login(&self, user: &str, password: &str) -> Response {
        let hash = self.meta.read(|s| {
            s.users
                .get(user)
                .map(|u| (u.password_hash.clone(), u.is_admin))
        });
        // Verify off the async threads: argon2 is deliberately slow.
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
                Ok(Reply::LoggedIn {
                    user: user.to_string(),
                    is_admin,
                    token: self.token_key.issue(user),
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

    async fn handle_request(&self, req: ControllerRequest) -> Response {
        match req {
            ControllerRequest::Register { alias, site } => {
                self.nodes
                    .register(&alias, &site)
                    .map_err(|m| self.refuse(ErrorCode::BadRequest, m))?;
                let known = self.meta.read(|s| s.nodes.get(&alias).cloned());
                if known.as_deref() != Some(site.as_str()) {
                    self.meta
                        .apply(MetaCommand::RegisterNode {
                            alias: alias.clone(),
                            site: site.clone(),
                        })
                        .await
                        .map_err(|e| e.to_remote(&self.cfg.alias))?;
                }
                tracing::info!(node = %alias, %site, "data node registered");
                Ok(Reply::Registered {
                    controller: self.cfg.alias.clone(),
                })
            }
            ControllerRequest::Heartbeat { alias } => {
                if self.nodes.heartbeat(&alias) {
                    Ok(Reply::Done)
                } else {
                    Err(self.refuse(
                        ErrorCode::NotFound,
                        format!("'{alias}' is not registered; register first"),
                    ))
                }
            }
            ControllerRequest::Login { user, password } => self.login(&user, &password).await,
            ControllerRequest::Call {
                token,
                function,
                args,
            } => {
                let caller = self.caller(&token)?;
                self.call_function(&caller, &function, args)
                    .map(Reply::Value)
            }
        }
    }
}

/// The RPC face of the controller. Only data nodes connect; a console is told where to go.
struct ControllerService(Arc<Controller>);

#[async_trait]
impl Service for ControllerService {
    type Conn = PeerKind;

    fn accept(&self, hello: &Hello, _peer: SocketAddr) -> Result<(ServerInfo, PeerKind), String> {
        let c = &self.0.cfg;
        if hello.peer == PeerKind::Client {
            let first = c
                .nodes
                .datanodes
                .first()
                .map(|n| n.site())
                .unwrap_or_default();
            return Err(format!(
                "{} is the controller {}; connect the console to a data node (e.g. {first}) and reach the controller with rpc(getControllerAlias(), ...)",
                format_args!("{}:{}", c.host, c.port),
                c.alias
            ));
        }
        Ok((
            ServerInfo {
                max_frame: 0,
                alias: c.alias.clone(),
                role: NodeRole::Controller,
                replication: c.replication.as_ref().map(|r| r.mode),
            },
            hello.peer,
        ))
    }

    async fn handle(&self, _conn: Arc<PeerKind>, req: Request) -> Result<Response, String> {
        match req {
            Request::Controller(r) => Ok(self.0.handle_request(r).await),
            Request::Session(_) => Err("a session request sent to the controller".into()),
        }
    }
}

/// Runs the controller until `shutdown` turns true.
pub async fn run(
    cfg: ControllerConfig,
    shutdown: watch::Receiver<bool>,
) -> Result<(), ControllerError> {
    let addr = format!("{}:{}", cfg.host, cfg.port);
    let listener = TcpListener::bind(&addr)
        .await
        .map_err(|source| ControllerError::Bind {
            addr: addr.clone(),
            source,
        })?;
    let max_frame = cfg.max_frame_size;
    let controller = Arc::new(Controller::open(cfg).await?);
    tracing::info!(
        alias = %controller.cfg.alias,
        %addr,
        replication = ?controller.cfg.replication.as_ref().map(|r| r.mode),
        "controller ready"
    );
    let sweeper = {
        let c = controller.clone();
        let mut stop = shutdown.clone();
        let every = c.cfg.heartbeat_timeout / 4;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tick.tick() => c.nodes.sweep(),
                }
            }
        })
    };
    serve(
        listener,
        Arc::new(ControllerService(controller)),
        max_frame,
        shutdown,
    )
    .await;
    sweeper.abort();
    tracing::info!("controller stopped");
    Ok(())
}
