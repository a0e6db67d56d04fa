//! The upstream side: mcplane as an MCP client of the servers it aggregates.
//!
//! Three layers, each with one job:
//! - a [`Pipe`] moves JSON-RPC messages to and from one server over one transport (stdio
//!   subprocess, Streamable HTTP, legacy HTTP+SSE) and reports every message it receives as an
//!   [`Incoming`], tagged with the request it arrived for when the transport knows it;
//! - a [`Connection`] multiplexes requests over a pipe: it assigns upstream ids, matches responses,
//!   forwards messages related to a request to that request's sink, and everything else to the
//!   upstream's event channel; dropping a pending request sends `notifications/cancelled`;
//! - an [`Upstream`] supervises one configured server: connect, `initialize`, serve calls, and
//!   reconnect with exponential back-off when the connection ends.
//!
//! A Streamable HTTP server that speaks the stateless 2026-07-28 era is reached through a pipe
//! that translates it into the same shape (`modern`): `initialize` becomes a `server/discover`
//! probe (falling back to the session era under `protocol: auto`), `input_required` results
//! become server→client requests related to the call, and a `subscriptions/listen` stream
//! feeds the upstream's event channel.

mod connection;
mod http;
mod modern;
mod sse;
mod stdio;
mod supervisor;

pub use connection::Connection;
pub use supervisor::{Opener, Upstream, UpstreamState};

use mcplane_config::{ProtocolMode, Transport, UpstreamConfig};
use std::sync::Arc;

/// Opens the transport a config names, in the protocol era it asks for (Streamable HTTP:
/// stateless 2026-07-28 for `stateless`, probed first for `auto`; see [`modern`]).
pub async fn open(config: UpstreamConfig) -> Result<Opened, UpstreamError> {
    match &config.transport {
        Transport::Stdio { .. } => stdio::open(&config).await,
        Transport::StreamableHttp { .. } if config.protocol == ProtocolMode::Stateful => {
            http::open(&config).await
        }
        Transport::StreamableHttp { .. } => modern::open(&config).await,
        Transport::Sse { .. } => sse::open(&config).await,
    }
}

/// The production [`Opener`]: real transports.
pub fn opener() -> Opener {
    Arc::new(|config| Box::pin(open(config)))
}

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::mpsc;

/// Why an upstream operation failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum UpstreamError {
    /// The server cannot be reached or its process is not running.
    #[error("upstream {server} is unavailable: {reason}")]
    Unavailable {
        /// Server name.
        server: String,
        /// Short, non-sensitive reason.
        reason: String,
    },
    /// The server did not answer in time.
    #[error("upstream {server} did not answer {what} within {secs}s")]
    Timeout {
        /// Server name.
        server: String,
        /// What timed out (`initialize`, a method name).
        what: String,
        /// The limit.
        secs: f64,
    },
    /// The server broke the protocol.
    #[error("upstream {server} sent an invalid response: {reason}")]
    Protocol {
        /// Server name.
        server: String,
        /// What was wrong.
        reason: String,
    },
    /// The server's HTTP session expired (404); the caller should reconnect and retry.
    #[error("upstream {server} session expired")]
    SessionExpired {
        /// Server name.
        server: String,
    },
}

impl UpstreamError {
    /// The error's classification.
    pub fn kind(&self) -> mcplane_types::ErrorKind {
        use mcplane_types::ErrorKind;
        match self {
            UpstreamError::Unavailable { .. } | UpstreamError::SessionExpired { .. } => {
                ErrorKind::UpstreamUnavailable
            }
            UpstreamError::Timeout { .. } => ErrorKind::UpstreamTimeout,
            UpstreamError::Protocol { .. } => ErrorKind::UpstreamProtocol,
        }
    }
}

/// A message received from an upstream.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The JSON-RPC message, unparsed.
    pub message: Value,
    /// The upstream id of the request this message arrived for (HTTP response streams), if known.
    pub related_to: Option<u64>,
}

/// One transport to one upstream server.
#[async_trait]
pub trait Pipe: Send + Sync + 'static {
    /// Sends one message. `request_id` is the message's id when it is a request, so transports
    /// that answer per request (Streamable HTTP) can tag what comes back with it.
    async fn send(&self, message: Value, request_id: Option<u64>) -> Result<(), UpstreamError>;

    /// Called once `initialize` succeeded, with the negotiated protocol version (HTTP transports
    /// send it as `MCP-Protocol-Version` from then on).
    fn negotiated(&self, _protocol_version: &str) {}

    /// Closes the transport: for stdio, close stdin, wait, SIGTERM then SIGKILL the process group;
    /// for HTTP, DELETE the session. Idempotent.
    async fn close(&self);
}

/// What opening a pipe yields: the pipe and the stream of everything the server sends.
/// The receiver ends when the transport is gone (process exit, stream closed).
pub type Opened = (Box<dyn Pipe>, mpsc::Receiver<Incoming>);

/// A message from an upstream that is not a response to one of mcplane's requests:
/// a notification or a server→client request.
#[derive(Debug, Clone)]
pub struct UpstreamEvent {
    /// The configured server name.
    pub server: String,
    /// The message as received.
    pub message: Value,
}

/// Where a request's related messages (progress, logging, server→client requests) are sent.
pub type RelatedSink = mpsc::Sender<Value>;
