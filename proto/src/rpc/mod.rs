//! RPC between xrepl processes: frames, messages, a multiplexing client and a server loop.
//!
//! Layers, bottom to top: [`frame`] (length-delimited units with a small header, chunking),
//! [`message`] (the greeting, the [`Request`] and [`Response`] envelopes, encoding), the four
//! request families, each with its own reply type ([`controller`], [`session`],
//! [`participant`], [`replication`]), [`error`] (what the other side sees of a failure), and
//! [`client`] and [`server`] (connections, the greeting with its protocol version check,
//! request ids), and [`tls`] (the optional TLS layer under the frames).

pub mod client;
pub mod controller;
pub mod error;
pub mod frame;
pub mod message;
pub mod participant;
pub mod replication;
pub mod server;
pub mod session;
pub mod tls;

pub use client::{RpcClient, RpcError};
pub use controller::{CatalogCheck, ControllerReply, ControllerRequest, SnapshotWork};
pub use error::{ErrorCode, RemoteError};
pub use message::*;
pub use participant::{ParticipantReply, ParticipantRequest};
pub use replication::{
    MasterPosition, ReplicationReply, ReplicationRequest, TaskPiece, TaskRef, FETCH_TASKS_MAX,
    FETCH_TASKS_REPLY_BYTES,
};
pub use server::{serve, ServerLimits, Service, PRE_AUTH_MAX_MESSAGE};
pub use session::{SessionReply, SessionRequest};
pub use tls::{BoxedIo, ClientTls, NodeTls, ServerTls};
