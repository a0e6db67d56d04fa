//! The stdio transport on the server side: newline-delimited JSON-RPC over any byte stream
//! (stdin/stdout for `mcplane stdio`), driving one [`Server`] session.
//!
//! One task reads lines and writes messages, so output lines never interleave: replies to every
//! request (with their interim notifications and server→client requests) and the session's
//! standalone messages are merged into the single writer, one JSON message per line. A malformed
//! line is answered with a JSON-RPC error (id null when unreadable); a line longer than the limit
//! is skipped without being buffered and answered the same way. End of input ends the session:
//! replies already in flight are written out (for at most the drain timeout), then the session
//! closes and [`serve`] returns. Batches, where the protocol version allows them, are answered
//! one response per line.
//!
//! A message whose `params._meta` names a protocol version (2026-07-28) is stateless: it goes to
//! [`Server::dispatch_modern`] whatever the session's state, its reply shares the output, and
//! `notifications/cancelled` naming it ends it (its response stream is dropped, which cancels the
//! work; for `subscriptions/listen`, the subscription).

use crate::jsonrpc::{self, Body, Kind, Message, RpcError};
use crate::protocol;
use crate::server::{Dispatch, ModernDispatch, Server, Session, StandaloneStream};
use futures::stream::{AbortHandle, Abortable, BoxStream, SelectAll};
use futures::{StreamExt, stream};
use serde_json::Value;
use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// Limits of the stdio transport.
#[derive(Debug, Clone)]
pub struct StdioOptions {
    /// Longest accepted line in bytes (the newline excluded). Default 4 MiB.
    pub max_line_bytes: usize,
    /// After end of input, how long replies still in flight may take to be written. Default 5 s.
    pub drain_timeout: Duration,
}

impl Default for StdioOptions {
    fn default() -> Self {
        StdioOptions {
            max_line_bytes: 4 * 1024 * 1024,
            drain_timeout: Duration::from_secs(5),
        }
    }
}

/// Serves one session over `reader`/`writer` with the default [`StdioOptions`] until end of input
/// (`Ok`) or an I/O error.
pub async fn serve<R, W>(server: Arc<Server>, reader: R, writer: W) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    serve_with(server, reader, writer, StdioOptions::default()).await
}

/// [`serve`] with explicit limits.
pub async fn serve_with<R, W>(
    server: Arc<Server>,
    reader: R,
    writer: W,
    options: StdioOptions,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let session = server.new_session(None);
    let mut conn = Connection {
        server: server.clone(),
        standalone: session.take_standalone(),
        session: session.clone(),
        lines: LineReader::new(reader, options.max_line_bytes),
        writer,
        replies: SelectAll::new(),
        stateless: HashMap::new(),
    };
    let outcome = conn.run(options.drain_timeout).await;
    server.close_session(session.id());
    outcome
}

/// A line read from the input.
#[derive(Debug, PartialEq)]
enum Line {
    /// A complete line without its terminator.
    Text(Vec<u8>),
    /// A line longer than the limit (its bytes were discarded).
    TooLong,
    /// End of input.
    Eof,
}

/// Reads newline-terminated lines, never holding more than `max` bytes of one. Cancel-safe:
/// partial lines live in the reader, not in the future.
struct LineReader<R> {
    inner: BufReader<R>,
    buf: Vec<u8>,
    max: usize,
    discarding: bool,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    fn new(reader: R, max: usize) -> Self {
        LineReader {
            inner: BufReader::new(reader),
            buf: Vec::new(),
            max,
            discarding: false,
        }
    }

    async fn next_line(&mut self) -> io::Result<Line> {
        loop {
            let chunk = self.inner.fill_buf().await?;
            if chunk.is_empty() {
                if std::mem::take(&mut self.discarding) {
                    return Ok(Line::TooLong);
                }
                if self.buf.is_empty() {
                    return Ok(Line::Eof);
                }
                return Ok(Line::Text(std::mem::take(&mut self.buf)));
            }
            let (end, used) = match chunk.iter().position(|b| *b == b'\n') {
                Some(pos) => (Some(pos), pos + 1),
                None => (None, chunk.len()),
            };
            let take = end.unwrap_or(chunk.len());
            if !self.discarding {
                if self.buf.len() + take > self.max {
                    self.discarding = true;
                    self.buf = Vec::new();
                } else {
                    self.buf.extend_from_slice(&chunk[..take]);
                }
            }
            self.inner.consume(used);
            if end.is_some() {
                if std::mem::take(&mut self.discarding) {
                    return Ok(Line::TooLong);
                }
                let mut line = std::mem::take(&mut self.buf);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Line::Text(line));
            }
        }
    }
}

struct Connection<R, W> {
    server: Arc<Server>,
    session: Arc<Session>,
    standalone: Option<StandaloneStream>,
    lines: LineReader<R>,
    writer: W,
    replies: SelectAll<BoxStream<'static, Value>>,
    /// Stateless (2026-07-28) requests in flight, by id: aborting one drops its response stream.
    stateless: HashMap<String, AbortHandle>,
}

/// Whether a message speaks the stateless protocol (its `_meta` names a version).
fn is_stateless(msg: &Message) -> bool {
    msg.params()
        .and_then(|p| p.get("_meta"))
        .is_some_and(|m| m.get(protocol::meta::PROTOCOL_VERSION).is_some())
}

enum Event {
    Line(io::Result<Line>),
    Out(Value),
    SessionClosed,
}

async fn standalone_next(standalone: &mut Option<StandaloneStream>) -> Option<Value> {
    match standalone {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

fn channel_stream(rx: mpsc::Receiver<Value>) -> BoxStream<'static, Value> {
    stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) }).boxed()
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Connection<R, W> {
    async fn run(&mut self, drain_timeout: Duration) -> io::Result<()> {
        loop {
            let event = tokio::select! {
                line = self.lines.next_line() => Event::Line(line),
                Some(v) = self.replies.next(), if !self.replies.is_empty() => Event::Out(v),
                m = standalone_next(&mut self.standalone) => m.map_or(Event::SessionClosed, Event::Out),
            };
            match event {
                Event::Out(v) => {
                    if v.get("method").is_none()
                        && let Some(id) = v.get("id")
                    {
                        self.stateless.remove(&id.to_string());
                    }
                    self.write(&v).await?
                }
                Event::SessionClosed => return Ok(()),
                Event::Line(line) => match line? {
                    Line::Eof => return self.drain(drain_timeout).await,
                    Line::TooLong => {
                        let error = RpcError::invalid_request(format!(
                            "message exceeds the {}-byte line limit",
                            self.lines.max
                        ));
                        self.write(&jsonrpc::error_value(Value::Null, &error))
                            .await?;
                    }
                    Line::Text(bytes) => self.handle(&bytes).await?,
                },
            }
        }
    }

    /// Writes out the replies still in flight, for at most `timeout`.
    async fn drain(&mut self, timeout: Duration) -> io::Result<()> {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                m = self.replies.next() => match m {
                    Some(v) => self.write(&v).await?,
                    None => return Ok(()),
                },
                _ = &mut deadline => {
                    tracing::debug!("stdio input ended; replies still in flight were dropped");
                    return Ok(());
                }
            }
        }
    }

    async fn handle(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let items = match jsonrpc::parse_body(bytes) {
            Ok(Body::Single(msg)) if is_stateless(&msg) => return self.stateless(msg).await,
            Ok(Body::Single(msg))
                if msg.method() == Some("notifications/cancelled")
                    && msg
                        .params()
                        .and_then(|p| p.get("requestId"))
                        .is_some_and(|id| self.stateless.contains_key(&id.to_string())) =>
            {
                let id = msg
                    .params()
                    .and_then(|p| p.get("requestId"))
                    .map(Value::to_string)
                    .unwrap_or_default();
                if let Some(handle) = self.stateless.remove(&id) {
                    handle.abort();
                }
                return Ok(());
            }
            Ok(Body::Single(msg)) => vec![Ok(msg)],
            Ok(Body::Batch(items)) => {
                let version = self.session.protocol_version();
                if !protocol::allows_batches(version) {
                    let error = RpcError::invalid_request(format!(
                        "JSON-RPC batches are not supported in protocol version {version}; \
                         send one message per line"
                    ));
                    return self.write(&jsonrpc::error_value(Value::Null, &error)).await;
                }
                items
            }
            Err((id, error)) => return self.write(&jsonrpc::error_value(id, &error)).await,
        };
        for item in items {
            match item {
                Ok(msg) => {
                    if let Dispatch::Reply(rx) = self.server.dispatch(&self.session, msg).await {
                        self.replies.push(channel_stream(rx));
                    }
                }
                Err((id, error)) => self.write(&jsonrpc::error_value(id, &error)).await?,
            }
        }
        Ok(())
    }

    /// A message of a stateless (2026-07-28) client.
    async fn stateless(&mut self, msg: Message) -> io::Result<()> {
        let id = msg.id().cloned();
        let request = msg.kind() == Kind::Request;
        match self.server.dispatch_modern(msg, None).await {
            ModernDispatch::Accepted => Ok(()),
            ModernDispatch::Rejected { id, error } => {
                self.write(&jsonrpc::error_value(id, &error)).await
            }
            ModernDispatch::Reply(rx) => {
                let (handle, registration) = AbortHandle::new_pair();
                if let (true, Some(id)) = (request, id) {
                    self.stateless.insert(id.to_string(), handle);
                }
                self.replies
                    .push(Abortable::new(channel_stream(rx), registration).boxed());
                Ok(())
            }
        }
    }

    async fn write(&mut self, message: &Value) -> io::Result<()> {
        let mut line = serde_json::to_vec(message).map_err(io::Error::other)?;
        line.push(b'\n');
        self.writer.write_all(&line).await?;
        self.writer.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::Message;
    use crate::server::{RequestContext, Service};
    use async_trait::async_trait;
    use serde_json::json;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

    struct Echo;

    #[async_trait]
    impl Service for Echo {
        async fn initialize(&self, _: &Arc<Session>) -> Result<Value, RpcError> {
            Ok(
                json!({"capabilities": {"tools": {}}, "serverInfo": {"name": "echo", "version": "0"}}),
            )
        }
        async fn request(
            &self,
            cx: &RequestContext,
            method: &str,
            params: Option<Value>,
        ) -> Result<Value, RpcError> {
            match method {
                "echo" => Ok(params.unwrap_or_default()),
                "progress" => {
                    cx.notify("notifications/progress", Some(json!({"progress": 1})))
                        .await;
                    cx.session
                        .notify("notifications/message", Some(json!({"level": "info"})));
                    Ok(json!({"done": true}))
                }
                "hang" => {
                    struct Flag;
                    impl Drop for Flag {
                        fn drop(&mut self) {
                            HANG_DROPPED.store(true, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                    let _flag = Flag;
                    std::future::pending::<()>().await;
                    Ok(Value::Null)
                }
                m => Err(RpcError::method_not_found(m)),
            }
        }
    }

    static HANG_DROPPED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

    #[tokio::test]
    async fn stateless_requests_share_the_pipe_and_cancel_by_notification() {
        let server = Server::new(Arc::new(Echo));
        let (client, server_end) = tokio::io::duplex(64 * 1024);
        let (sr, sw) = tokio::io::split(server_end);
        let serving = tokio::spawn(serve(server.clone(), sr, sw));
        let (cr, mut cw) = tokio::io::split(client);
        let mut out = tokio::io::BufReader::new(cr).lines();
        let meta = json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        });
        let line = |id: i64, method: &str| {
            format!(
                "{}\n",
                json!({"jsonrpc": "2.0", "id": id, "method": method, "params": {"_meta": meta}})
            )
        };
        cw.write_all(line(1, "server/discover").as_bytes())
            .await
            .unwrap();
        let v: Value = serde_json::from_str(&out.next_line().await.unwrap().unwrap()).unwrap();
        assert_eq!(v["result"]["supportedVersions"][0], "2026-07-28", "{v}");
        cw.write_all(line(2, "ping").as_bytes()).await.unwrap();
        let v: Value = serde_json::from_str(&out.next_line().await.unwrap().unwrap()).unwrap();
        assert_eq!(
            (v["id"].clone(), v["error"]["code"].clone()),
            (json!(2), json!(-32601))
        );
        cw.write_all(line(3, "hang").as_bytes()).await.unwrap();
        let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 3}});
        tokio::time::sleep(Duration::from_millis(50)).await;
        cw.write_all(format!("{cancel}\n").as_bytes())
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !HANG_DROPPED.load(std::sync::atomic::Ordering::SeqCst) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the work was not cancelled"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        cw.write_all(line(4, "echo").as_bytes()).await.unwrap();
        let v: Value = serde_json::from_str(&out.next_line().await.unwrap().unwrap()).unwrap();
        assert_eq!(v["id"], 4, "no answer for the cancelled request: {v}");
        assert_eq!(v["result"]["resultType"], "complete");
        cw.shutdown().await.unwrap();
        drop(cw);
        serving.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn line_reader_bounds_and_splits() {
        let input: &[u8] = b"abc\r\n0123456789xyz\nlast";
        let mut r = LineReader::new(input, 8);
        assert_eq!(r.next_line().await.unwrap(), Line::Text(b"abc".to_vec()));
        assert_eq!(r.next_line().await.unwrap(), Line::TooLong);
        assert_eq!(r.next_line().await.unwrap(), Line::Text(b"last".to_vec()));
        assert_eq!(r.next_line().await.unwrap(), Line::Eof);
        // A tiny buffer: the over-long line arrives in many chunks and is never held whole.
        let long = [vec![b'x'; 100_000], b"\n{}\n".to_vec()].concat();
        let mut r = LineReader::new(&long[..], 1000);
        assert_eq!(r.next_line().await.unwrap(), Line::TooLong);
        assert_eq!(r.next_line().await.unwrap(), Line::Text(b"{}".to_vec()));
    }

    #[tokio::test]
    async fn round_trip_over_a_pipe() {
        let server = Server::new(Arc::new(Echo));
        let (client, server_end) = tokio::io::duplex(64 * 1024);
        let (sr, sw) = tokio::io::split(server_end);
        let options = StdioOptions {
            max_line_bytes: 1024,
            ..Default::default()
        };
        let serving = tokio::spawn(serve_with(server.clone(), sr, sw, options));
        let (cr, mut cw) = tokio::io::split(client);
        let mut out = tokio::io::BufReader::new(cr).lines();
        let mut next = async || -> Value {
            let line = out.next_line().await.unwrap().unwrap();
            serde_json::from_str(&line).unwrap()
        };

        let init = Message::request(
            json!(1),
            "initialize",
            Some(json!({"protocolVersion": "2025-06-18", "capabilities": {}})),
        );
        cw.write_all(format!("{}\n", init.into_value()).as_bytes())
            .await
            .unwrap();
        let v = next().await;
        assert_eq!(v["id"], 1);
        assert_eq!(v["result"]["protocolVersion"], "2025-06-18");

        cw.write_all(b"{not json\n").await.unwrap();
        let v = next().await;
        assert_eq!(v["id"], Value::Null);
        assert_eq!(v["error"]["code"], jsonrpc::PARSE_ERROR);

        let long = format!("{{\"pad\":\"{}\"}}\n", "x".repeat(5000));
        cw.write_all(long.as_bytes()).await.unwrap();
        let v = next().await;
        assert_eq!(v["error"]["code"], jsonrpc::INVALID_REQUEST);
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("line limit")
        );

        cw.write_all(b"[{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"echo\"}]\n")
            .await
            .unwrap();
        let v = next().await;
        assert!(v["error"]["message"].as_str().unwrap().contains("batches"));

        cw.write_all(b"\n{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n")
            .await
            .unwrap();
        cw.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":\"p\",\"method\":\"progress\"}\n")
            .await
            .unwrap();
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(next().await);
        }
        let progress = seen
            .iter()
            .position(|v| v["method"] == "notifications/progress");
        let done = seen.iter().position(|v| v["id"] == "p");
        assert!(progress.unwrap() < done.unwrap(), "{seen:?}");
        assert!(seen.iter().any(|v| v["method"] == "notifications/message"));

        cw.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"echo\",\"params\":{\"k\":1}}\n")
            .await
            .unwrap();
        cw.shutdown().await.unwrap();
        drop(cw);
        let v = next().await;
        assert_eq!(v["id"], 7);
        assert_eq!(v["result"]["k"], 1);
        serving.await.unwrap().unwrap();
        assert_eq!(server.session_count(), 0);
    }
}
