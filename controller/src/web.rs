//! The controller's HTTP (see `xrepl_proto::web`): `GET /metrics` for Prometheus (any user of
//! the cluster), `GET /` the status page and `GET /status.json` what it draws (administrators).
//! Every request logs in with HTTP Basic credentials, checked and throttled like a console's.

use serde_json::json;
use xrepl_proto::web::{
    credentials, Exposition, Labels, WebRequest, WebResponse, HTML, JSON, OPENMETRICS_TEXT,
};

use crate::{Controller, Role};

/// The status page: one file, no external assets; it reads `/status.json` every 5 s.
const STATUS_PAGE: &str = include_str!("status_page.html");

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

impl Controller {
    /// Answers one HTTP request.
    pub async fn http(&self, req: WebRequest) -> WebResponse {
        let (user, password) = match credentials(&req) {
            Ok(c) => c,
            Err(refused) => return refused,
        };
        let peer = req.peer.ip().to_string();
        let is_admin = match self.auth.check_password(user, password, &peer).await {
            Ok(a) => a,
            Err(e) => return WebResponse::unauthorized(e.message),
        };
        match req.path.as_str() {
            "/metrics" => WebResponse::ok(OPENMETRICS_TEXT, self.metrics_text()),
            "/" | "/status.json" if !is_admin => WebResponse::text(
                403,
                format!("the status page needs administrator rights; user '{user}' is not an administrator"),
            ),
            "/" => WebResponse::ok(HTML, STATUS_PAGE),
            "/status.json" => WebResponse::ok(JSON, self.status_json().to_string()),
            p => WebResponse::not_found(p),
        }
    }

    /// The Prometheus metrics of this controller, as they are now.
    pub fn metrics_text(&self) -> String {
        let mut e = Exposition::default();
        let mode = self.cfg.replication.as_ref().map(|r| r.mode);
        e.build_info(&self.cfg.alias, "controller", mode);
        let state = |role: &str, states: &[&str], now: &str| -> Vec<(Labels, f64)> {
            states
                .iter()
                .map(|s| {
                    (
                        labels(&[("role", role), ("state", s)]),
                        if *s == now { 1.0 } else { 0.0 },
                    )
                })
                .collect()
        };
        match &self.role {
            Role::Master(m) => {
                let i = m.info();
                e.gauges(
                    "xrepl_replication_state",
                    "1 for the replication state this cluster is in.",
                    state("master", &["ENABLED", "DISABLED"], i.state),
                );
                e.gauge(
                    "xrepl_replication_last_task_id",
                    "The master's newest task.",
                    i.last_task as f64,
                );
                e.gauge(
                    "xrepl_replication_untruncated_tasks",
                    "Tasks not yet finished by every registered slave.",
                    i.untruncated as f64,
                );
                e.gauge(
                    "xrepl_replication_retained_bytes",
                    "Bytes of task data the master keeps for its slaves.",
                    i.retained_bytes as f64,
                );
                e.gauge(
                    "xrepl_replication_registered_slaves",
                    "Slave clusters registered with this master.",
                    i.slaves as f64,
                );
                let lags = m.slave_lags();
                let now = now_ns();
                e.gauges(
                    "xrepl_replication_slave_lag_tasks",
                    "Tasks the master has that a slave has not finished.",
                    lags.iter()
                        .map(|l| (labels(&[("slave", &l.slave)]), l.lag_tasks as f64))
                        .collect(),
                );
                e.gauges(
                    "xrepl_replication_slave_last_pull_age_seconds",
                    "Seconds since a slave last pulled.",
                    lags.iter()
                        .map(|l| {
                            (
                                labels(&[("slave", &l.slave)]),
                                (now - l.last_pull_ns).max(0) as f64 / 1e9,
                            )
                        })
                        .collect(),
                );
            }
            Role::Slave(s) => {
                let rows = s.lag();
                let c = s.counters();
                let (_, attempts_failed) = s.failures();
                e.gauges(
                    "xrepl_replication_state",
                    "1 for the replication state this cluster is in.",
                    state("slave", &["ENABLED", "DISABLED", "STOPPED"], c.status),
                );
                e.gauges(
                    "xrepl_replication_lag_seconds",
                    "Now minus the master's commit time of the oldest task this slave has not finished, per execution set.",
                    rows.iter()
                        .map(|r| {
                            (
                                labels(&[("execution_set", &r.execution_set.to_string())]),
                                r.lag_ms as f64 / 1e3,
                            )
                        })
                        .collect(),
                );
                e.gauges(
                    "xrepl_replication_lag_tasks",
                    "Tasks this slave has not finished (unfinished here, or not pulled yet), per execution set.",
                    rows.iter()
                        .map(|r| {
                            (
                                labels(&[("execution_set", &r.execution_set.to_string())]),
                                r.lag_tasks as f64,
                            )
                        })
                        .collect(),
                );
                e.gauge(
                    "xrepl_replication_last_master_task_id",
                    "The master's newest task, as of its last answer.",
                    rows.first().map_or(0.0, |r| r.last_master_task as f64),
                );
                e.gauge(
                    "xrepl_replication_master_reachable",
                    "1 while the master answers.",
                    if rows
                        .iter()
                        .any(|r| r.state.starts_with("MASTER_UNREACHABLE"))
                    {
                        0.0
                    } else {
                        1.0
                    },
                );
                e.counter(
                    "xrepl_replication_tasks_finished",
                    "Tasks finished (replayed or skipped) since replication began.",
                    c.finished_total,
                );
                e.counter(
                    "xrepl_replication_tasks_failed",
                    "Times a task became FAILED (its retries used up).",
                    c.failed_total,
                );
                e.counter(
                    "xrepl_replication_attempts_failed",
                    "Failed replay attempts since this controller started.",
                    attempts_failed,
                );
                e.gauges(
                    "xrepl_replication_queue_depth",
                    "Unfinished tasks per execution queue.",
                    c.depth
                        .iter()
                        .map(|(set, q, n)| {
                            (
                                labels(&[
                                    ("execution_set", &set.to_string()),
                                    ("queue", &q.to_string()),
                                ]),
                                *n as f64,
                            )
                        })
                        .collect(),
                );
            }
            Role::Standalone => {}
        }
        e.process();
        e.encode()
    }

    /// What the status page shows.
    pub fn status_json(&self) -> serde_json::Value {
        let mut out = json!({
            "alias": self.cfg.alias,
            "now_ms": now_ns() / 1_000_000,
            "master": null,
            "slave": null,
        });
        match &self.role {
            Role::Master(m) => {
                out["master"] = json!({
                    "info": m.info(),
                    "slaves": m.slave_lags(),
                    "bootstraps": m.bootstraps(),
                });
            }
            Role::Slave(s) => {
                let (failures, attempts_failed) = s.failures();
                out["slave"] = json!({
                    "lag": s.lag(),
                    "counters": s.counters(),
                    "failures": failures,
                    "attemptsFailed": attempts_failed,
                    "history": s.lag_history(),
                });
            }
            Role::Standalone => {}
        }
        out
    }
}
