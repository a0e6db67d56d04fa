//! Test fixtures for mcplane.
//!
//! - [`conformance`]: an MCP server with the tools, resources and prompts the official MCP
//!   conformance suite's server scenarios call, to run the suite against any transport.
//! - [`http`]: serves a fixture service over mcplane's HTTP transports on a real socket.

pub mod conformance;
pub mod http;
pub mod mock_llm;
