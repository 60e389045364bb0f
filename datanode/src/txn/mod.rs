//! Transactions on a data node: two-phase commit and distributed reads.
//!
//! - [`coordinator`]: runs a transaction (a tid from the controller, prepares on every
//!   participant, the durable decision, commit or abort everywhere) and reads from several data
//!   nodes at once; keeps the connections to the other data nodes.
//! - [`participant`]: this node's part: chunk locks, preparing new blocks durably, committing
//!   or aborting them, scanning committed data.
//! - [`resolve`]: settling prepared transactions whose coordinator went away, by asking the
//!   controller.

pub mod coordinator;
pub mod participant;
pub mod resolve;
