//! MCP wire for mcplane.
//!
//! - [`jsonrpc`]: JSON-RPC 2.0 messages kept whole (unknown fields survive a relay).
//! - [`protocol`]: the protocol versions spoken and their negotiation; [`param_headers`]: the
//!   2026-07-28 `Mcp-Param-*` headers tools declare with `x-mcp-header`.
//! - [`server`]: the downstream server core (sessions, dispatch, cancellation, server→client
//!   requests) that every downstream transport drives; [`stdio_server`] is its stdio transport.
//! - [`upstream`]: mcplane as a client of upstream servers (stdio, Streamable HTTP, legacy SSE).
//! - [`gateway`]: the aggregating service (catalogue, [`naming`], routing, relay).
//! - [`demo`]: the built-in demo server.

pub mod demo;
pub mod gateway;
pub mod jsonrpc;
pub mod naming;
pub mod param_headers;
pub mod protocol;
pub mod server;
pub mod stdio_server;
pub mod upstream;
