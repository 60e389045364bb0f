//! The participant family: what a data node coordinating a transaction or a read asks of the
//! data nodes holding the chunks (itself included), and their answers.

use serde::{Deserialize, Serialize};

use crate::txn::{ChunkOp, Scan, ScanResult};

/// Requests a data node answers for another data node coordinating a transaction or a read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ParticipantRequest {
    /// Locks the chunks, computes and stores the new blocks durably, answers
    /// [`ParticipantReply::Prepared`]; nothing is visible until `Commit`.
    Prepare {
        tid: u64,
        ops: Vec<ChunkOp>,
        /// The transaction prepares on several data nodes, holding locks on one while it may
        /// wait on another: it waits only for younger transactions (a larger tid) and gives
        /// way at once to an older one ([`ErrorCode::Conflict`](super::ErrorCode::Conflict)),
        /// so that no two such transactions ever wait for each other (wait-die). A
        /// transaction on one node holds nothing while it waits, and always waits.
        gives_way: bool,
    },
    Commit {
        tid: u64,
    },
    Abort {
        tid: u64,
    },
    /// Reads committed data; answers [`ParticipantReply::Scanned`].
    Scan(Scan),
}

/// A participant's successful answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ParticipantReply {
    Done,
    /// Rows a prepared transaction touches on this participant.
    Prepared {
        rows: u64,
    },
    Scanned(ScanResult),
}
