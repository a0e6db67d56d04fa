//! Request/response multiplexing over one [`Pipe`].

use super::{Incoming, Opened, Pipe, RelatedSink, UpstreamError, UpstreamEvent};
use crate::jsonrpc::{Kind, Message};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

enum Waited {
    Response(Message),
    Closed,
    TimedOut,
}

struct Pending {
    done: oneshot::Sender<Message>,
    related: Option<RelatedSink>,
    /// The `_meta.progressToken` the request carried: progress notifications with this token
    /// belong to it even when the transport cannot say so (stdio, legacy SSE, a GET stream).
    progress_token: Option<Value>,
}

/// A live, multiplexed MCP client connection to one upstream.
pub struct Connection {
    server: String,
    pipe: Box<dyn Pipe>,
    pending: Mutex<HashMap<u64, Pending>>,
    next_id: AtomicU64,
    closed: CancellationToken,
}

/// Cancels an upstream request if its caller goes away before the response arrives.
struct CancelOnDrop<'a> {
    conn: &'a Arc<Connection>,
    id: u64,
    armed: bool,
    reason: &'static str,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if let Ok(mut p) = self.conn.pending.lock() {
            p.remove(&self.id);
        }
        if self.armed && !self.conn.closed.is_cancelled() {
            let conn = self.conn.clone();
            let id = self.id;
            let reason = self.reason;
            tokio::spawn(async move {
                let params = json!({"requestId": id, "reason": reason});
                let _ = conn.notify("notifications/cancelled", Some(params)).await;
            });
        }
    }
}

impl Connection {
    /// Starts multiplexing over an opened pipe. Messages that are neither responses nor related
    /// to a pending request go to `events`.
    pub fn start(
        server: String,
        opened: Opened,
        events: mpsc::Sender<UpstreamEvent>,
    ) -> Arc<Connection> {
        let (pipe, incoming) = opened;
        let conn = Arc::new(Connection {
            server,
            pipe,
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            closed: CancellationToken::new(),
        });
        tokio::spawn(read_loop(conn.clone(), incoming, events));
        conn
    }

    /// The configured server name.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Cancelled when the transport is gone.
    pub fn closed(&self) -> &CancellationToken {
        &self.closed
    }

    /// Sends a request and waits for its response (a result or an error [`Message`]). Messages the
    /// server relates to this request go to `related`. On timeout, or if the returned future is
    /// dropped, the upstream gets `notifications/cancelled`.
    pub async fn request(
        self: &Arc<Self>,
        method: &str,
        params: Option<Value>,
        related: Option<RelatedSink>,
        timeout: Duration,
    ) -> Result<Message, UpstreamError> {
        if self.closed.is_cancelled() {
            return Err(self.gone());
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (done, wait) = oneshot::channel();
        if let Ok(mut pending) = self.pending.lock() {
            let progress_token = params
                .as_ref()
                .and_then(|p| p.get("_meta")?.get("progressToken"))
                .cloned();
            pending.insert(
                id,
                Pending {
                    done,
                    related,
                    progress_token,
                },
            );
        }
        let mut guard = CancelOnDrop {
            conn: self,
            id,
            armed: method != "initialize",
            reason: "the client cancelled the request",
        };
        let msg = Message::request(json!(id), method, params).into_value();
        if let Err(e) = self.pipe.send(msg, Some(id)).await {
            if let UpstreamError::Timeout { .. } = e {
                // The server may be working on it: cancel.
                guard.reason = "mcplane timed out waiting for the response";
            } else {
                // The server never got the request (or its session is gone): nothing to cancel.
                guard.armed = false;
            }
            return Err(e);
        }
        let waited = tokio::select! {
            // A response routed just before the transport ended must win over the close.
            biased;
            r = tokio::time::timeout(timeout, wait) => match r {
                Ok(Ok(m)) => Waited::Response(m),
                Ok(Err(_)) => Waited::Closed,
                Err(_) => Waited::TimedOut,
            },
            _ = self.closed.cancelled() => Waited::Closed,
        };
        match waited {
            Waited::Response(response) => {
                guard.armed = false;
                Ok(response)
            }
            Waited::Closed => {
                guard.armed = false;
                Err(self.gone())
            }
            Waited::TimedOut => {
                guard.reason = "mcplane timed out waiting for the response";
                Err(UpstreamError::Timeout {
                    server: self.server.clone(),
                    what: method.to_string(),
                    secs: timeout.as_secs_f64(),
                })
            }
        }
    }

    /// Sends a notification.
    pub async fn notify(&self, method: &str, params: Option<Value>) -> Result<(), UpstreamError> {
        self.send(Message::notification(method, params).into_value())
            .await
    }

    /// Sends a raw message (e.g. the reply to a server→client request).
    pub async fn send(&self, message: Value) -> Result<(), UpstreamError> {
        if self.closed.is_cancelled() {
            return Err(self.gone());
        }
        self.pipe.send(message, None).await
    }

    /// Tells the pipe which protocol version was negotiated.
    pub fn negotiated(&self, version: &str) {
        self.pipe.negotiated(version);
    }

    /// Closes the transport and fails whatever is pending.
    pub async fn close(&self) {
        self.closed.cancel();
        self.pipe.close().await;
    }

    fn gone(&self) -> UpstreamError {
        UpstreamError::Unavailable {
            server: self.server.clone(),
            reason: "connection closed".into(),
        }
    }

    fn route(&self, incoming: Incoming, events: &mpsc::Sender<UpstreamEvent>) {
        let msg = match Message::from_value(incoming.message) {
            Ok(m) => m,
            Err((_, e)) => {
                tracing::warn!(server = %self.server, error = %e.message, "upstream sent an invalid JSON-RPC message; ignored");
                return;
            }
        };
        match msg.kind() {
            Kind::Response | Kind::Error => {
                let id = msg.id().and_then(Value::as_u64);
                let waiter = id.and_then(|id| self.pending.lock().ok()?.remove(&id));
                match waiter {
                    Some(p) => {
                        let _ = p.done.send(msg);
                    }
                    None => {
                        tracing::debug!(server = %self.server, "response to an unknown or finished request ignored")
                    }
                }
            }
            Kind::Request | Kind::Notification => {
                // Routed here, in arrival order, so a request's progress always reaches its sink
                // before its response completes it.
                let sink = self.pending.lock().ok().and_then(|pending| {
                    let owner = match incoming.related_to {
                        Some(id) => pending.get(&id),
                        None if msg.method() == Some("notifications/progress") => {
                            let token = msg.params().and_then(|p| p.get("progressToken"));
                            pending
                                .values()
                                .find(|p| token.is_some() && p.progress_token.as_ref() == token)
                        }
                        // A log line the transport cannot attribute (stdio, legacy SSE) goes to
                        // the newest request that relays, here and in arrival order, so it
                        // reaches that request's client before the response that follows it.
                        None if msg.method() == Some("notifications/message") => pending
                            .iter()
                            .filter(|(_, p)| p.related.is_some())
                            .max_by_key(|(id, _)| **id)
                            .map(|(_, p)| p),
                        None => None,
                    };
                    owner.and_then(|p| p.related.clone())
                });
                let value = msg.into_value();
                let unrouted = match sink {
                    Some(sink) => sink.try_send(value).err().map(|e| e.into_inner()),
                    None => Some(value),
                };
                if let Some(value) = unrouted {
                    let event = UpstreamEvent {
                        server: self.server.clone(),
                        message: value,
                    };
                    if events.try_send(event).is_err() {
                        tracing::warn!(server = %self.server, "upstream event queue full; message dropped");
                    }
                }
            }
        }
    }
}

async fn read_loop(
    conn: Arc<Connection>,
    mut incoming: mpsc::Receiver<Incoming>,
    events: mpsc::Sender<UpstreamEvent>,
) {
    loop {
        tokio::select! {
            m = incoming.recv() => match m {
                Some(m) => conn.route(m, &events),
                None => break,
            },
            _ = conn.closed.cancelled() => break,
        }
    }
    conn.closed.cancel();
    // Dropping the pending senders wakes every waiter with "connection closed".
    if let Ok(mut p) = conn.pending.lock() {
        p.clear();
    }
}
