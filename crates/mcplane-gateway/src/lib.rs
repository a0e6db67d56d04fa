//! mcplane data plane: HTTP listeners and routes.
//!
//! - [`http`]: the assembled app (`/mcp`, `/sse`, `/messages`, extra routes), graceful serving
//!   and the idle-session reaper.
//! - [`mcp_http`]: MCP Streamable HTTP in front of the downstream server core.
//! - [`mcp_sse`]: the legacy HTTP+SSE transport (2024-11-05).
//! - [`edge`]: Origin/Host (DNS-rebinding) and header-size checks for every request.
//! - [`authn`]: credentials read at the edge (both faces) and refusals rendered.
//! - [`llm_http`]: the model face's front doors (`/v1/chat/completions`, `/v1/messages`,
//!   `/v1/embeddings`, `/v1/models`) over `mcplane_llm::dispatch`.
//! - [`virtual_servers`]: `/mcp/{name}` (and its legacy SSE pair) for each virtual server,
//!   reloadable in place.

pub mod authn;
pub mod edge;
pub mod http;
pub mod llm_http;
pub mod mcp_http;
pub mod mcp_sse;
mod reply;
mod request;
pub mod virtual_servers;
