//! Legacy HTTP+SSE transport (MCP 2024-11-05).
//!
//! A GET to the configured URL opens an event stream whose first meaningful event, `endpoint`,
//! names the URL to POST messages to (same origin only). Every later `message` event carries a
//! message from the server; POSTs are only acknowledged. When the event stream ends, the pipe's
//! incoming receiver ends and the supervisor reconnects.

use super::http::{
    BodyKind, INCOMING_CAPACITY, SseReader, body_kind, build_client, describe, header_map,
    parse_messages, post_message, status_error,
};
use super::{Incoming, Opened, Pipe, UpstreamError};
use async_trait::async_trait;
use mcplane_config::{Timeouts, Transport, UpstreamConfig};
use reqwest::Client;
use reqwest::header::{ACCEPT, HeaderMap};
use serde_json::Value;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use url::Url;

/// Most of a POST acknowledgement body read (and thrown away) so the connection can be reused.
const MAX_ACK_BODY: usize = 64 * 1024;
/// How long `close` waits for background tasks.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Opens the transport: connects the event stream and waits for the `endpoint` event.
pub async fn open(config: &UpstreamConfig) -> Result<Opened, UpstreamError> {
    let server = config.name.clone();
    let Transport::Sse { url, headers } = &config.transport else {
        return Err(UpstreamError::Unavailable {
            server,
            reason: "not an sse transport".into(),
        });
    };
    let client = build_client(config)?;
    let headers = header_map(&server, headers)?;
    let connect = connect(&server, &client, url, &headers);
    let (reader, endpoint) = tokio::time::timeout(config.timeouts.connect, connect)
        .await
        .map_err(|_| UpstreamError::Timeout {
            server: server.clone(),
            what: "the SSE endpoint event".into(),
            secs: config.timeouts.connect.as_secs_f64(),
        })??;
    tracing::debug!(server = %server, "upstream SSE stream connected");
    let (tx, rx) = mpsc::channel(INCOMING_CAPACITY);
    let cancel = CancellationToken::new();
    let tasks = TaskTracker::new();
    tasks.spawn(read_events(server.clone(), reader, tx, cancel.clone()));
    let pipe = SsePipe {
        server,
        client,
        endpoint,
        headers,
        timeouts: config.timeouts,
        cancel,
        tasks,
    };
    Ok((Box::new(pipe), rx))
}

async fn connect(
    server: &str,
    client: &Client,
    url: &Url,
    headers: &HeaderMap,
) -> Result<(SseReader, Url), UpstreamError> {
    let unavailable = |reason: String| UpstreamError::Unavailable {
        server: server.to_string(),
        reason,
    };
    let resp = client
        .get(url.clone())
        .headers(headers.clone())
        .header(ACCEPT, "text/event-stream")
        .send()
        .await
        .map_err(|e| unavailable(describe(&e)))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(status_error(server, status));
    }
    let ct = match body_kind(&resp) {
        BodyKind::EventStream => None,
        BodyKind::Json => Some("application/json".to_string()),
        BodyKind::Other(ct) => Some(ct),
    };
    if let Some(ct) = ct {
        return Err(UpstreamError::Protocol {
            server: server.to_string(),
            reason: format!("the SSE URL answered with content type {ct:?}, not text/event-stream"),
        });
    }
    let mut reader = SseReader::new(resp);
    let data = loop {
        match reader.next().await {
            Ok(Some(event)) if event.event == "endpoint" => break event.data,
            Ok(Some(_)) => continue,
            Ok(None) => {
                return Err(unavailable(
                    "the SSE stream ended before the endpoint event".into(),
                ));
            }
            Err(e) => return Err(unavailable(format!("SSE stream failed: {e}"))),
        }
    };
    let endpoint = resolve_endpoint(url, &data).map_err(|reason| UpstreamError::Protocol {
        server: server.to_string(),
        reason,
    })?;
    Ok((reader, endpoint))
}

/// The POST URL an `endpoint` event names, resolved against the SSE URL; same origin only.
fn resolve_endpoint(base: &Url, data: &str) -> Result<Url, String> {
    let endpoint = base
        .join(data.trim())
        .map_err(|e| format!("the endpoint event is not a URL ({e})"))?;
    if endpoint.origin() != base.origin() {
        return Err("the endpoint event names another origin than the SSE URL; refused".into());
    }
    Ok(endpoint)
}

/// Forwards `message` events until the stream ends or the pipe closes; dropping `tx` then ends
/// the pipe's receiver.
async fn read_events(
    server: String,
    mut reader: SseReader,
    tx: mpsc::Sender<Incoming>,
    cancel: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            e = reader.next() => e,
            _ = cancel.cancelled() => return,
            _ = tx.closed() => return,
        };
        let event = match event {
            Ok(Some(event)) => event,
            Ok(None) => {
                tracing::info!(server = %server, "upstream SSE stream ended");
                return;
            }
            Err(e) => {
                tracing::warn!(server = %server, error = %e, "upstream SSE stream failed");
                return;
            }
        };
        if !(event.event.is_empty() || event.event == "message") || event.data.is_empty() {
            if event.event == "endpoint" {
                tracing::debug!(server = %server, "repeated endpoint event ignored");
            }
            continue;
        }
        match parse_messages(event.data.as_bytes()) {
            Ok(messages) => {
                for message in messages {
                    let incoming = Incoming {
                        message,
                        related_to: None,
                    };
                    if tx.send(incoming).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(server = %server, error = %e, "upstream sent an SSE event that is not a JSON-RPC message; skipped");
            }
        }
    }
}

struct SsePipe {
    server: String,
    client: Client,
    endpoint: Url,
    headers: HeaderMap,
    timeouts: Timeouts,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

#[async_trait]
impl Pipe for SsePipe {
    async fn send(&self, message: Value, _request_id: Option<u64>) -> Result<(), UpstreamError> {
        let unavailable = |reason: String| UpstreamError::Unavailable {
            server: self.server.clone(),
            reason,
        };
        if self.cancel.is_cancelled() {
            return Err(unavailable("connection closed".into()));
        }
        let post = self
            .client
            .post(self.endpoint.clone())
            .headers(self.headers.clone());
        let resp = post_message(&self.server, post, &message, &self.timeouts, &self.cancel).await?;
        let status = resp.status();
        if !status.is_success() {
            return Err(status_error(&self.server, status));
        }
        // The answer comes on the event stream; read the acknowledgement so the connection
        // returns to the pool.
        let cancel = self.cancel.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = super::http::read_bounded(resp, MAX_ACK_BODY) => {}
                _ = cancel.cancelled() => {}
            }
        });
        Ok(())
    }

    async fn close(&self) {
        self.cancel.cancel();
        self.tasks.close();
        let _ = tokio::time::timeout(CLOSE_WAIT, self.tasks.wait()).await;
    }
}

impl Drop for SsePipe {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_resolves_relative_to_the_sse_url_on_the_same_origin() {
        let base = Url::parse("http://127.0.0.1:8000/sse").unwrap();
        assert_eq!(
            resolve_endpoint(&base, "/messages?session_id=abc\n")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8000/messages?session_id=abc"
        );
        assert_eq!(
            resolve_endpoint(&base, "messages").unwrap().as_str(),
            "http://127.0.0.1:8000/messages"
        );
        assert!(resolve_endpoint(&base, "http://127.0.0.1:8001/messages").is_err());
        assert!(resolve_endpoint(&base, "https://127.0.0.1:8000/messages").is_err());
        assert!(resolve_endpoint(&base, "http://evil.example/messages").is_err());
    }
}
