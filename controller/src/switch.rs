//! `startClusterReplication()` and `stopClusterReplication()` as a value, for the master's send
//! queue and the slave's execution queue alike.

use serde::{Deserialize, Serialize};

/// Which of the two functions was called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Switch {
    Start,
    Stop,
}

impl Switch {
    /// `ENABLED` or `DISABLED`, for the log.
    pub fn state_name(self) -> &'static str {
        match self {
            Switch::Start => "ENABLED",
            Switch::Stop => "DISABLED",
        }
    }
}
