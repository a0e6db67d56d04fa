//! MCP wire for mcplane.
//!
//! - [`jsonrpc`]: JSON-RPC 2.0 messages kept whole (unknown fields survive a relay).
//! - [`protocol`]: the protocol versions spoken and their negotiation.
//! - [`server`]: the downstream server core (sessions, dispatch, cancellation, server→client
//!   requests) that every downstream transport drives.

pub mod demo;
pub mod jsonrpc;
pub mod protocol;
pub mod server;
pub mod stdio_server;
pub mod upstream;
