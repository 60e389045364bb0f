//! The data node's connection to its controller: registration, heartbeats, and calls.
//!
//! Registration is retried with backoff until the controller answers, so data nodes may start
//! before their controller. A failed heartbeat, or a controller that no longer knows the node
//! (it restarted), sends the node back to registering.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use xrepl_core::config::DataNodeConfig;
use xrepl_proto::rpc::{
    ControllerReply, ControllerRequest, ErrorCode, PeerKind, RemoteError, RpcClient, RpcError,
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Time limit of one call to the controller.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

pub struct ControllerLink {
    alias: String,
    site: String,
    controller_addr: String,
    max_frame: usize,
    heartbeat_interval: Duration,
    client: Mutex<Option<RpcClient>>,
}

impl ControllerLink {
    pub fn new(cfg: &DataNodeConfig) -> ControllerLink {
        ControllerLink {
            alias: cfg.alias.clone(),
            site: format!("{}:{}", cfg.host, cfg.port),
            controller_addr: cfg.controller.site(),
            max_frame: cfg.max_frame_size,
            heartbeat_interval: cfg.heartbeat_interval,
            client: Mutex::new(None),
        }
    }

    fn current(&self) -> Option<RpcClient> {
        let guard = self.client.lock().unwrap_or_else(|p| p.into_inner());
        guard.as_ref().filter(|c| c.is_open()).cloned()
    }

    /// An open connection to the controller, made now if needed.
    async fn client(&self) -> Result<RpcClient, RpcError> {
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let c = RpcClient::connect(
            &self.controller_addr,
            PeerKind::DataNode,
            self.max_frame,
            CONNECT_TIMEOUT,
        )
        .await?;
        *self.client.lock().unwrap_or_else(|p| p.into_inner()) = Some(c.clone());
        Ok(c)
    }

    /// Calls the controller; a connection failure is reported as `Unavailable`.
    pub async fn call(&self, req: ControllerRequest) -> Result<ControllerReply, RemoteError> {
        let unavailable = |e: RpcError| RemoteError {
            node: self.alias.clone(),
            code: ErrorCode::Unavailable,
            message: format!("the controller is unreachable: {e}"),
        };
        let client = self.client().await.map_err(unavailable)?;
        client
            .call_timeout(req, CALL_TIMEOUT)
            .await
            .map_err(unavailable)?
    }

    /// Registers, then sends heartbeats, forever (until `shutdown`).
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = BACKOFF_MIN;
        let mut registered = false;
        let mut failures: u64 = 0;
        loop {
            let wait = if registered {
                self.heartbeat_interval
            } else {
                backoff
            };
            let outcome = if registered {
                self.call(ControllerRequest::Heartbeat {
                    alias: self.alias.clone(),
                })
                .await
            } else {
                self.call(ControllerRequest::Register {
                    alias: self.alias.clone(),
                    site: self.site.clone(),
                })
                .await
            };
            match (registered, outcome) {
                (_, Ok(_)) => {
                    if !registered {
                        tracing::info!(controller = %self.controller_addr, "registered with the controller");
                    }
                    registered = true;
                    failures = 0;
                    backoff = BACKOFF_MIN;
                }
                (true, Err(e)) => {
                    tracing::warn!("heartbeat failed, registering again: {e}");
                    registered = false;
                }
                (false, Err(e)) => {
                    failures += 1;
                    // Say it once loudly, then quietly while the controller stays away.
                    if failures == 1 || failures.is_multiple_of(50) {
                        tracing::warn!(
                            "cannot register with the controller yet (attempt {failures}): {e}"
                        );
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}
