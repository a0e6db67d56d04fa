//! Connection multiplexing and supervision over an in-memory pipe: routing, cancellation,
//! timeouts, session expiry, back-off.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use async_trait::async_trait;
use mcplane_config::{RestartPolicy, Timeouts, Transport, UpstreamConfig};
use mcplane_mcp::upstream::{
    Connection, Incoming, Opener, Pipe, Upstream, UpstreamError, UpstreamEvent, UpstreamState,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What the fake server does with one message: `(message, request id, incoming, pipe index)`.
type Handler = Arc<
    dyn Fn(&Value, Option<u64>, &mpsc::Sender<Incoming>, usize) -> Result<(), UpstreamError>
        + Send
        + Sync,
>;

/// Every message sent, with the index of the pipe it went to.
type Log = Arc<Mutex<Vec<(usize, Value)>>>;

struct MockPipe {
    index: usize,
    handler: Handler,
    tx: Mutex<Option<mpsc::Sender<Incoming>>>,
    log: Log,
}

#[async_trait]
impl Pipe for MockPipe {
    async fn send(&self, message: Value, request_id: Option<u64>) -> Result<(), UpstreamError> {
        self.log.lock().unwrap().push((self.index, message.clone()));
        if message["params"]["name"] == "answer_and_die"
            && let (Some(id), Some(tx)) = (request_id, self.tx.lock().unwrap().take())
        {
            // The last words of a server that exits right after answering.
            reply(&tx, text(id, "last words"), None);
            return Ok(());
        }
        if message["params"]["name"] == "die" {
            // The transport goes away: the receiver ends.
            self.tx.lock().unwrap().take();
            return Ok(());
        }
        let tx = self.tx.lock().unwrap().clone();
        match tx {
            Some(tx) => (self.handler)(&message, request_id, &tx, self.index),
            None => Err(UpstreamError::Unavailable {
                server: "mock".into(),
                reason: "closed".into(),
            }),
        }
    }

    async fn close(&self) {
        self.tx.lock().unwrap().take();
    }
}

fn reply(tx: &mpsc::Sender<Incoming>, message: Value, related_to: Option<u64>) {
    tx.try_send(Incoming {
        message,
        related_to,
    })
    .unwrap();
}

fn text(id: u64, s: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": {"content": [{"type": "text", "text": s}]}})
}

/// A well-behaved server: initialize, and tools echo / hang / progress / unrelated / die.
fn server() -> Handler {
    Arc::new(|msg, id, tx, _| {
        let method = msg["method"].as_str().unwrap_or("");
        let Some(id) = id else { return Ok(()) };
        match method {
            "initialize" => reply(
                tx,
                json!({"jsonrpc": "2.0", "id": id, "result": {
                    "protocolVersion": "2025-06-18", "capabilities": {}, "serverInfo": {"name": "mock"}
                }}),
                Some(id),
            ),
            "tools/call" => match msg["params"]["name"].as_str().unwrap_or("") {
                "hang" => {}
                "progress" => {
                    reply(
                        tx,
                        json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progress": 1}}),
                        Some(id),
                    );
                    reply(tx, text(id, "done"), Some(id));
                }
                "unrelated" => {
                    reply(
                        tx,
                        json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}),
                        None,
                    );
                    reply(tx, text(id, "done"), None);
                }
                _ => reply(tx, text(id, "echo"), None),
            },
            _ => reply(
                tx,
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "no"}}),
                None,
            ),
        }
        Ok(())
    })
}

struct Mock {
    log: Log,
    opened: Arc<AtomicUsize>,
}

impl Mock {
    fn new() -> Mock {
        Mock {
            log: Arc::new(Mutex::new(Vec::new())),
            opened: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// An opener whose n-th pipe (from 0) is made by `open(n)`: `Some(handler)` or an error.
    fn opener(
        &self,
        open: impl Fn(usize) -> Result<Handler, UpstreamError> + Send + Sync + 'static,
    ) -> Opener {
        let log = self.log.clone();
        let opened = self.opened.clone();
        let open = Arc::new(open);
        Arc::new(move |_config| {
            let log = log.clone();
            let index = opened.fetch_add(1, Ordering::SeqCst);
            let handler = open(index);
            Box::pin(async move {
                let handler = handler?;
                let (tx, rx) = mpsc::channel(64);
                let pipe = MockPipe {
                    index,
                    handler,
                    tx: Mutex::new(Some(tx)),
                    log,
                };
                Ok((Box::new(pipe) as Box<dyn Pipe>, rx))
            })
        })
    }

    fn sent(&self) -> Vec<(usize, Value)> {
        self.log.lock().unwrap().clone()
    }

    fn cancels(&self) -> Vec<Value> {
        self.sent()
            .into_iter()
            .filter(|(_, m)| m["method"] == "notifications/cancelled")
            .map(|(_, m)| m["params"].clone())
            .collect()
    }
}

fn config(call: Duration) -> UpstreamConfig {
    UpstreamConfig {
        name: "mock".into(),
        transport: Transport::Stdio {
            command: "unused".into(),
            args: Vec::new(),
            env: BTreeMap::new(),
            env_passthrough: Vec::new(),
            cwd: None,
            restart: RestartPolicy {
                initial_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_millis(800),
            },
        },
        timeouts: Timeouts {
            connect: Duration::from_secs(2),
            initialize: Duration::from_secs(2),
            call,
        },
        protocol: mcplane_config::ProtocolMode::Stateful,
        list_ttl: None,
    }
}

struct Running {
    up: Arc<Upstream>,
    events: mpsc::Receiver<UpstreamEvent>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

fn start(opener: Opener, call: Duration) -> Running {
    let (tx, events) = mpsc::channel(16);
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let up = Upstream::spawn(config(call), opener, tx, shutdown.clone(), &tasks);
    Running {
        up,
        events,
        shutdown,
        tasks,
    }
}

impl Running {
    async fn stop(&self) {
        self.shutdown.cancel();
        self.tasks.close();
        tokio::time::timeout(Duration::from_secs(5), self.tasks.wait())
            .await
            .unwrap();
    }

    async fn call(&self, tool: &str) -> Result<Value, UpstreamError> {
        self.up
            .request("tools/call", Some(json!({"name": tool})), None)
            .await
            .map(|m| m.into_outcome().unwrap())
    }
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn initializes_then_routes_related_and_unrelated_messages() {
    let mock = Mock::new();
    let mut run = start(mock.opener(|_| Ok(server())), Duration::from_secs(5));
    run.up.wait_settled().await;
    assert_eq!(run.up.state(), UpstreamState::Ready);
    let sent = mock.sent();
    assert_eq!(sent[0].1["method"], "initialize");
    assert_eq!(sent[1].1["method"], "notifications/initialized");

    let (sink, mut related) = mpsc::channel(4);
    let done = run
        .up
        .request("tools/call", Some(json!({"name": "progress"})), Some(sink))
        .await
        .unwrap();
    assert_eq!(done.into_outcome().unwrap()["content"][0]["text"], "done");
    assert_eq!(
        related.try_recv().unwrap()["method"],
        "notifications/progress"
    );

    run.call("unrelated").await.unwrap();
    let event = run.events.try_recv().unwrap();
    assert_eq!(event.server, "mock");
    assert_eq!(event.message["method"], "notifications/tools/list_changed");
    run.stop().await;
}

#[tokio::test]
async fn a_dropped_request_is_cancelled_upstream() {
    let mock = Mock::new();
    let run = start(mock.opener(|_| Ok(server())), Duration::from_secs(5));
    run.up.wait_settled().await;
    let dropped = tokio::time::timeout(Duration::from_millis(50), run.call("hang")).await;
    assert!(dropped.is_err());
    eventually("a cancellation", || !mock.cancels().is_empty()).await;
    let hang_id = mock
        .sent()
        .iter()
        .find(|(_, m)| m["params"]["name"] == "hang")
        .map(|(_, m)| m["id"].clone())
        .unwrap();
    assert_eq!(mock.cancels()[0]["requestId"], hang_id);
    run.stop().await;
}

#[tokio::test]
async fn a_timed_out_request_names_its_method_and_is_cancelled() {
    let mock = Mock::new();
    let run = start(mock.opener(|_| Ok(server())), Duration::from_millis(100));
    run.up.wait_settled().await;
    let err = run.call("hang").await.unwrap_err();
    assert!(
        matches!(&err, UpstreamError::Timeout { server, what, .. } if server == "mock" && what == "tools/call"),
        "{err:?}"
    );
    eventually("a cancellation", || !mock.cancels().is_empty()).await;
    assert!(
        mock.cancels()[0]["reason"]
            .as_str()
            .unwrap()
            .contains("timed out")
    );
    run.stop().await;
}

#[tokio::test]
async fn a_request_that_could_not_be_sent_is_not_cancelled() {
    let mock = Mock::new();
    let base = server();
    let failing: Handler = Arc::new(move |msg, id, tx, i| {
        if msg["params"]["name"] == "unsendable" {
            return Err(UpstreamError::Unavailable {
                server: "mock".into(),
                reason: "write failed".into(),
            });
        }
        base(msg, id, tx, i)
    });
    let run = start(
        mock.opener(move |_| Ok(failing.clone())),
        Duration::from_secs(5),
    );
    run.up.wait_settled().await;
    let err = run.call("unsendable").await.unwrap_err();
    assert!(matches!(err, UpstreamError::Unavailable { .. }));
    // Give a stray cancellation every chance to show up, then check there is none.
    run.call("echo").await.unwrap();
    tokio::task::yield_now().await;
    run.call("echo").await.unwrap();
    assert!(mock.cancels().is_empty(), "{:?}", mock.cancels());
    run.stop().await;
}

#[tokio::test]
async fn pending_requests_fail_when_the_transport_ends_then_it_reconnects() {
    let mock = Mock::new();
    let run = start(mock.opener(|_| Ok(server())), Duration::from_secs(5));
    run.up.wait_settled().await;
    // "die" ends the pipe's incoming stream without an answer, like a process exiting mid-call.
    let err = run.call("die").await.unwrap_err();
    assert_eq!(
        err,
        UpstreamError::Unavailable {
            server: "mock".into(),
            reason: "connection closed".into()
        }
    );
    let up = run.up.clone();
    eventually("a new connection", || {
        up.state() == UpstreamState::Ready && up.generation() == 2
    })
    .await;
    assert_eq!(
        run.call("echo").await.unwrap()["content"][0]["text"],
        "echo"
    );
    run.stop().await;
}

#[tokio::test]
async fn connection_fails_pending_requests_when_the_receiver_ends() {
    let (tx, rx) = mpsc::channel(4);
    let pipe = MockPipe {
        index: 0,
        handler: Arc::new(|_, _, _, _| Ok(())),
        tx: Mutex::new(Some(tx)),
        log: Arc::new(Mutex::new(Vec::new())),
    };
    let (events, _events_rx) = mpsc::channel(4);
    let conn = Connection::start("direct".into(), (Box::new(pipe), rx), events);
    let hang = {
        let conn = conn.clone();
        tokio::spawn(async move {
            conn.request(
                "tools/call",
                Some(json!({"name": "hang"})),
                None,
                Duration::from_secs(5),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    conn.request(
        "tools/call",
        Some(json!({"name": "die"})),
        None,
        Duration::from_secs(5),
    )
    .await
    .unwrap_err();
    let result = tokio::time::timeout(Duration::from_secs(2), hang)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        result.unwrap_err(),
        UpstreamError::Unavailable {
            server: "direct".into(),
            reason: "connection closed".into()
        }
    );
    assert!(conn.closed().is_cancelled());
    // Nothing more is sent on a closed connection.
    assert!(conn.notify("x", None).await.is_err());
}

#[tokio::test]
async fn a_response_sent_just_before_the_transport_ends_is_delivered() {
    for _ in 0..32 {
        let (tx, rx) = mpsc::channel(4);
        let pipe = MockPipe {
            index: 0,
            handler: Arc::new(|_, _, _, _| Ok(())),
            tx: Mutex::new(Some(tx)),
            log: Arc::new(Mutex::new(Vec::new())),
        };
        let (events, _events_rx) = mpsc::channel(4);
        let conn = Connection::start("direct".into(), (Box::new(pipe), rx), events);
        let response = conn
            .request(
                "tools/call",
                Some(json!({"name": "answer_and_die"})),
                None,
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(
            response.into_outcome().unwrap()["content"][0]["text"],
            "last words"
        );
    }
}

#[tokio::test]
async fn expired_session_reconnects_and_retries_once() {
    let mock = Mock::new();
    let base = server();
    let expiring: Handler = Arc::new(move |msg, id, tx, i| {
        if i == 0 && msg["method"] == "tools/call" {
            return Err(UpstreamError::SessionExpired {
                server: "mock".into(),
            });
        }
        base(msg, id, tx, i)
    });
    let run = start(
        mock.opener(move |_| Ok(expiring.clone())),
        Duration::from_secs(5),
    );
    run.up.wait_settled().await;
    let result = run.call("echo").await.unwrap();
    assert_eq!(result["content"][0]["text"], "echo");
    assert_eq!(run.up.generation(), 2);
    // The request the expired session refused was never delivered: nothing to cancel.
    assert!(mock.cancels().is_empty(), "{:?}", mock.cancels());
    run.stop().await;
}

#[tokio::test]
async fn expired_session_with_failed_reconnect_fails_promptly() {
    let mock = Mock::new();
    let base = server();
    let expiring: Handler = Arc::new(move |msg, id, tx, i| {
        if msg["method"] == "tools/call" {
            return Err(UpstreamError::SessionExpired {
                server: "mock".into(),
            });
        }
        base(msg, id, tx, i)
    });
    let run = start(
        mock.opener(move |i| {
            if i == 0 {
                Ok(expiring.clone())
            } else {
                Err(UpstreamError::Unavailable {
                    server: "mock".into(),
                    reason: "refused".into(),
                })
            }
        }),
        Duration::from_secs(5),
    );
    run.up.wait_settled().await;
    let started = Instant::now();
    let err = run.call("echo").await.unwrap_err();
    assert!(
        matches!(&err, UpstreamError::Unavailable { reason, .. } if reason == "refused"),
        "{err:?}"
    );
    // Well before the connect + initialize limit (4 s).
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    run.stop().await;
}

#[tokio::test]
async fn unsupported_protocol_version_is_a_protocol_error() {
    let mock = Mock::new();
    let old: Handler = Arc::new(|msg, id, tx, _| {
        if let (Some(id), "initialize") = (id, msg["method"].as_str().unwrap_or("")) {
            reply(
                tx,
                json!({"jsonrpc": "2.0", "id": id, "result": {"protocolVersion": "1999-01-01"}}),
                None,
            );
        }
        Ok(())
    });
    let run = start(
        mock.opener(move |_| Ok(old.clone())),
        Duration::from_secs(5),
    );
    let err = run.call("echo").await.unwrap_err();
    assert!(
        matches!(&err, UpstreamError::Protocol { reason, .. } if reason.contains("1999-01-01")),
        "{err:?}"
    );
    run.stop().await;
}

#[tokio::test(start_paused = true)]
async fn failed_connects_back_off_exponentially() {
    let mock = Mock::new();
    let run = start(
        mock.opener(|_| {
            Err(UpstreamError::Unavailable {
                server: "mock".into(),
                reason: "refused".into(),
            })
        }),
        Duration::from_secs(5),
    );
    // Attempts at 0, 0.1, 0.3, 0.7, 1.5, 2.3, 3.1 s (back-off 100 ms doubling, capped at 800 ms).
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(mock.opened.load(Ordering::SeqCst), 4);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(mock.opened.load(Ordering::SeqCst), 7);
    run.stop().await;
}
