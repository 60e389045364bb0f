//! RPC between xrepl processes: frames, messages, a multiplexing client and a server loop.
//!
//! Layers, bottom to top: [`frame`] (length-delimited units with a small header, chunking),
//! [`message`] (closed enums encoded with rmp-serde), [`client`] and [`server`] (connections,
//! the greeting with its protocol version check, request ids).

pub mod client;
pub mod frame;
pub mod message;
pub mod server;

pub use client::{RpcClient, RpcError};
pub use message::*;
pub use server::{serve, Service};
