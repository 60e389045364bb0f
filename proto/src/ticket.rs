//! Fetch tickets: what a slave's data nodes show a master's data nodes instead of a session
//! token.

use serde::{Deserialize, Serialize};
use xrepl_core::cluster_key::{ClusterKey, Purpose};

/// How long a fetch ticket is good for. A slave gets a new one with every pull (at least every
/// `clusterReplicationPullWaitMs` while it is connected).
pub const TICKET_LIFETIME_MS: u64 = 10 * 60 * 1000;

/// A slave's permission, issued by the master controller with every pull answer, to read on
/// the master's data nodes the data of tasks up to `upto` and the checksums of replicated
/// databases, until `expires_ms`. Signed with the master's cluster key, so that any master
/// node checks it without a round trip; it carries no password or session token, so a slave
/// data node that holds one can do nothing else with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchTicket {
    /// The slave it was issued to (for logs; its registered name on the master).
    pub slave: String,
    /// Tasks up to this id.
    pub upto: u64,
    /// Milliseconds since the Unix epoch (the master's clock) after which it is refused.
    pub expires_ms: u64,
    /// Where the master's task data may be (`host:port` of its data nodes, and their
    /// `clusterReplicationPublicAddress`): a slave fetches from nowhere else.
    #[serde(default)]
    pub sources: Vec<String>,
    #[serde(with = "serde_bytes")]
    pub mac: Vec<u8>,
}

impl FetchTicket {
    fn message(slave: &str, upto: u64, expires_ms: u64, sources: &[String]) -> Vec<u8> {
        let mut m = Vec::with_capacity(slave.len() + 32);
        m.extend_from_slice(&(slave.len() as u64).to_be_bytes());
        m.extend_from_slice(slave.as_bytes());
        m.extend_from_slice(&upto.to_be_bytes());
        m.extend_from_slice(&expires_ms.to_be_bytes());
        m.extend_from_slice(&(sources.len() as u64).to_be_bytes());
        for s in sources {
            m.extend_from_slice(&(s.len() as u64).to_be_bytes());
            m.extend_from_slice(s.as_bytes());
        }
        m
    }

    /// A ticket for `slave`, signed with the master's `key`, naming the master's data nodes.
    pub fn issue(
        key: &ClusterKey,
        slave: &str,
        upto: u64,
        sources: Vec<String>,
        now_ms: u64,
    ) -> FetchTicket {
        let expires_ms = now_ms.saturating_add(TICKET_LIFETIME_MS);
        FetchTicket {
            mac: key.sign(
                Purpose::FetchTicket,
                &FetchTicket::message(slave, upto, expires_ms, &sources),
            ),
            slave: slave.to_string(),
            upto,
            expires_ms,
            sources,
        }
    }

    /// Whether the master lists `site` (`host:port`) as one of its data nodes; a ticket that
    /// lists none (from an older master) lists every site.
    pub fn lists(&self, site: &str) -> bool {
        self.sources.is_empty() || self.sources.iter().any(|s| s == site)
    }

    /// Checks the signature and the expiry; the error says what is wrong.
    pub fn check(&self, key: &ClusterKey, now_ms: u64) -> Result<(), String> {
        let msg = FetchTicket::message(&self.slave, self.upto, self.expires_ms, &self.sources);
        if !key.verify_signed(Purpose::FetchTicket, &msg, &self.mac) {
            return Err(
                "the fetch ticket is not signed by this master cluster (a forged or altered ticket, or one from another master)"
                    .into(),
            );
        }
        if now_ms > self.expires_ms {
            return Err(format!(
                "the fetch ticket of slave {} expired {} s ago; the slave gets a new one with its next pull",
                self.slave,
                (now_ms - self.expires_ms) / 1000
            ));
        }
        Ok(())
    }

    /// Checks the ticket and that it covers task `task_id`.
    pub fn check_task(&self, key: &ClusterKey, now_ms: u64, task_id: u64) -> Result<(), String> {
        self.check(key, now_ms)?;
        if task_id > self.upto {
            return Err(format!(
                "the fetch ticket covers tasks up to {}, not task {task_id}",
                self.upto
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_checks_only_as_issued_and_names_the_masters_data_nodes() {
        let key = ClusterKey::from_bytes(&[5; 32]).expect("key");
        let sources = vec!["127.0.0.1:8849".to_string(), "10.0.0.7:28849".to_string()];
        let t = FetchTicket::issue(&key, "127.0.0.1:9848", 9, sources, 1_000);
        assert_eq!(t.check(&key, 1_000), Ok(()));
        assert_eq!(t.check_task(&key, 1_000, 9), Ok(()));
        assert!(t.check_task(&key, 1_000, 10).is_err());
        assert!(
            t.check(&key, 1_000 + TICKET_LIFETIME_MS + 1).is_err(),
            "expired"
        );
        assert!(t.lists("10.0.0.7:28849") && !t.lists("127.0.0.1:1"));
        let mut more = t.clone();
        more.sources.push("127.0.0.1:1".into());
        assert!(
            more.check(&key, 1_000).is_err(),
            "the sources are signed too"
        );
        let mut other = t.clone();
        other.slave = "127.0.0.1:9999".into();
        assert!(other.check(&key, 1_000).is_err());
        let old = FetchTicket {
            sources: vec![],
            ..t
        };
        assert!(old.lists("anywhere:1"));
    }
}
