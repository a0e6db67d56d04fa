//! Test fixtures for mcplane.
//!
//! - [`conformance`]: an MCP server with the tools, resources and prompts the official MCP
//!   conformance suite's server scenarios call, to run the suite against any transport.
//! - [`http`]: serves a fixture service over mcplane's HTTP transports on a real socket.
//! - [`jwt`]: a test identity provider: signing keys, their JWKS, and tokens with any claims.

pub mod conformance;
pub mod http;
pub mod jwt;
pub mod mock_llm;
