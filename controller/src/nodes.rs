//! Which data nodes are alive: registrations and heartbeats, kept in memory.
//!
//! A node is *up* when its last heartbeat is younger than `heartbeatTimeoutMs`. The state is
//! computed when asked, so it is exact at any moment; [`NodeRegistry::sweep`] only logs
//! transitions for the operator.

use std::time::{Duration, Instant};

use dashmap::DashMap;
use xrepl_core::config::{ClusterNodes, NodeRole};

#[derive(Debug, Clone)]
struct Beat {
    at: Instant,
    /// Wall-clock time of the heartbeat, nanoseconds since the epoch, for display.
    wall_ns: i64,
}

/// One row of `getClusterPerf()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub name: String,
    pub site: String,
    pub role: NodeRole,
    pub up: bool,
    /// Milliseconds since the epoch; `None` when never heard from.
    pub last_heartbeat_ms: Option<i64>,
}

pub struct NodeRegistry {
    nodes: ClusterNodes,
    timeout: Duration,
    beats: DashMap<String, Beat>,
    /// The incarnation of each node's last registration.
    incarnations: DashMap<String, u64>,
    /// What the last sweep saw, to log only changes.
    seen_up: DashMap<String, bool>,
}

pub fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

impl NodeRegistry {
    pub fn new(nodes: ClusterNodes, timeout: Duration) -> NodeRegistry {
        NodeRegistry {
            nodes,
            timeout,
            beats: DashMap::new(),
            incarnations: DashMap::new(),
            seen_up: DashMap::new(),
        }
    }

    /// Checks a registration against cluster.nodes; `Err` is the reason for the refusal.
    /// Answers whether it comes from another process than the node's last registration (or
    /// the first this controller hears of it).
    pub fn register(&self, alias: &str, site: &str, incarnation: u64) -> Result<bool, String> {
        let Some(n) = self.nodes.datanode(alias) else {
            return Err(format!(
                "'{alias}' is not a data node in this cluster's cluster.nodes"
            ));
        };
        if n.site() != site {
            return Err(format!(
                "'{alias}' registers from {site} but cluster.nodes places it at {}",
                n.site()
            ));
        }
        self.beat(alias);
        let before = self.incarnations.insert(alias.to_string(), incarnation);
        Ok(before != Some(incarnation))
    }

    /// Records a heartbeat; `false` when the node is not registered (it must register again,
    /// e.g. after this controller restarted).
    pub fn heartbeat(&self, alias: &str) -> bool {
        if !self.beats.contains_key(alias) {
            return false;
        }
        self.beat(alias);
        true
    }

    fn beat(&self, alias: &str) {
        self.beats.insert(
            alias.to_string(),
            Beat {
                at: Instant::now(),
                wall_ns: now_ns(),
            },
        );
    }

    /// The controller and every data node of cluster.nodes, in that order.
    pub fn view(&self) -> Vec<NodeView> {
        let mut rows = vec![NodeView {
            name: self.nodes.controller.alias.clone(),
            site: self.nodes.controller.site(),
            role: NodeRole::Controller,
            up: true,
            last_heartbeat_ms: Some(now_ns() / 1_000_000),
        }];
        for n in &self.nodes.datanodes {
            let beat = self.beats.get(&n.alias).map(|b| b.clone());
            rows.push(NodeView {
                name: n.alias.clone(),
                site: n.site(),
                role: NodeRole::DataNode,
                up: beat.as_ref().is_some_and(|b| b.at.elapsed() < self.timeout),
                last_heartbeat_ms: beat.map(|b| b.wall_ns / 1_000_000),
            });
        }
        rows
    }

    /// The data nodes that are up, sorted by alias.
    pub fn live_data_nodes(&self) -> Vec<NodeView> {
        let mut live: Vec<NodeView> = self
            .view()
            .into_iter()
            .filter(|n| n.up && n.role == NodeRole::DataNode)
            .collect();
        live.sort_by(|a, b| a.name.cmp(&b.name));
        live
    }

    /// The names of the data nodes that are up, sorted.
    pub fn live_data_node_names(&self) -> Vec<String> {
        self.live_data_nodes().into_iter().map(|n| n.name).collect()
    }

    /// Logs every data node that went down or came back since the last sweep.
    pub fn sweep(&self) {
        for row in self.view().into_iter().skip(1) {
            let before = self.seen_up.insert(row.name.clone(), row.up);
            match (before, row.up) {
                (Some(false) | None, true) => {
                    tracing::info!(node = %row.name, site = %row.site, "data node is up")
                }
                (Some(true), false) => tracing::warn!(
                    node = %row.name,
                    "data node is down: no heartbeat for {} ms",
                    self.timeout.as_millis()
                ),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use xrepl_core::config::NodeEntry;

    use super::*;

    fn registry() -> NodeRegistry {
        let node = |alias: &str, port, role| NodeEntry {
            host: "127.0.0.1".into(),
            port,
            alias: alias.into(),
            role,
        };
        NodeRegistry::new(
            ClusterNodes {
                controller: node("controller1", 1, NodeRole::Controller),
                datanodes: vec![node("dnode1", 2, NodeRole::DataNode)],
            },
            Duration::from_secs(5),
        )
    }

    #[test]
    fn a_registration_says_whether_another_process_made_it() {
        let r = registry();
        assert_eq!(r.register("dnode1", "127.0.0.1:2", 7), Ok(true), "first");
        // The same process again (a heartbeat of its failed): it still runs what it ran.
        assert_eq!(r.register("dnode1", "127.0.0.1:2", 7), Ok(false));
        assert_eq!(
            r.register("dnode1", "127.0.0.1:2", 8),
            Ok(true),
            "restarted"
        );
        // A refused registration changes nothing.
        assert!(r.register("dnode1", "127.0.0.1:3", 9).is_err());
        assert!(r.register("dnode9", "127.0.0.1:2", 9).is_err());
        assert_eq!(r.register("dnode1", "127.0.0.1:2", 8), Ok(false));
    }
}
