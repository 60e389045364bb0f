//! A data node's HTTP (see `xrepl_proto::web`): `GET /metrics` for Prometheus, for any user of
//! the cluster (HTTP Basic credentials, checked by the controller; a good login is trusted for
//! [`LOGIN_KEPT`], so that scrapes do not make a login each).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use xrepl_proto::web::{Exposition, WebRequest, WebResponse, OPENMETRICS_TEXT};

use crate::node::{DataNode, Role};

/// How long a checked login is trusted.
const LOGIN_KEPT: Duration = Duration::from_secs(60);

/// Logins checked lately: a hash of user and password, and when.
#[derive(Default)]
pub struct WebLogins(Mutex<Vec<([u8; 32], Instant)>>);

impl WebLogins {
    fn key(user: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(user.as_bytes());
        h.update([0]);
        h.update(password.as_bytes());
        h.finalize().into()
    }

    fn knows(&self, key: &[u8; 32]) -> bool {
        let mut l = self.0.lock().unwrap_or_else(|p| p.into_inner());
        l.retain(|(_, at)| at.elapsed() < LOGIN_KEPT);
        l.iter().any(|(k, _)| k == key)
    }

    fn remember(&self, key: [u8; 32]) {
        let mut l = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if l.len() < 64 {
            l.push((key, Instant::now()));
        }
    }
}

impl DataNode {
    /// Answers one HTTP request.
    pub async fn http(&self, req: WebRequest) -> WebResponse {
        if req.method != "GET" && req.method != "HEAD" {
            return WebResponse::text(405, format!("{} is not served here; use GET", req.method));
        }
        let Some((user, password)) = &req.credentials else {
            return WebResponse::unauthorized(
                "log in with a user of this cluster (HTTP Basic authentication)",
            );
        };
        let key = WebLogins::key(user, password);
        if !self.web_logins.knows(&key) {
            let peer = req.peer.ip().to_string();
            if let Err(e) = self.link.login(user, password, &peer).await {
                return WebResponse::unauthorized(e.message);
            }
            self.web_logins.remember(key);
        }
        match req.path.as_str() {
            "/metrics" => WebResponse::ok(OPENMETRICS_TEXT, self.metrics_text()),
            p => WebResponse::not_found(p),
        }
    }

    /// The Prometheus metrics of this data node, as they are now.
    pub fn metrics_text(&self) -> String {
        let mut e = Exposition::default();
        let role = match &self.role {
            Role::Master(_) => "master",
            Role::Slave(_) => "slave",
            Role::Standalone => "standalone",
        };
        let l = |k: &str, v: &str| (k.to_string(), v.to_string());
        e.gauges(
            "xrepl_build_info",
            "The node: its alias, kind, replication role and version.",
            vec![(
                vec![
                    l("alias", &self.cfg.alias),
                    l("kind", "datanode"),
                    l("role", role),
                    l("version", env!("CARGO_PKG_VERSION")),
                ],
                1.0,
            )],
        );
        if let Role::Slave(r) = &self.role {
            e.gauge(
                "xrepl_replication_replay_workers_busy",
                "Replay workers of this data node replaying a task now.",
                r.workers.len() as f64,
            );
        }
        e.process();
        e.encode()
    }
}
