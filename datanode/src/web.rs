//! A data node's HTTP (see `xrepl_proto::web`): `GET /metrics` for Prometheus, for any user of
//! the cluster (HTTP Basic credentials, checked by the controller; a good login is trusted for
//! 60 s, `DataNode::web_logins`, so that scrapes do not make a login each).

use xrepl_proto::web::{credentials, Exposition, WebRequest, WebResponse, OPENMETRICS_TEXT};

use crate::node::{DataNode, Role};

impl DataNode {
    /// Answers one HTTP request.
    pub async fn http(&self, req: WebRequest) -> WebResponse {
        let (user, password) = match credentials(&req) {
            Ok(c) => c,
            Err(refused) => return refused,
        };
        if !self.web_logins.knows(user, password) {
            let peer = req.peer.ip().to_string();
            if let Err(e) = self.link.login(user, password, &peer).await {
                return WebResponse::unauthorized(e.message);
            }
            self.web_logins.remember(user, password);
        }
        match req.path.as_str() {
            "/metrics" => WebResponse::ok(OPENMETRICS_TEXT, self.metrics_text()),
            p => WebResponse::not_found(p),
        }
    }

    /// The Prometheus metrics of this data node, as they are now.
    pub fn metrics_text(&self) -> String {
        let mut e = Exposition::default();
        let mode = self.cfg.replication.as_ref().map(|r| r.mode);
        e.build_info(&self.cfg.alias, "datanode", mode);
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
