//! Shared helpers for the upstream transport tests: configs for the Python fixtures, a running
//! supervised upstream, fixture HTTP servers, and polling with a deadline.

#![allow(dead_code)]

use mcplane_config::{RestartPolicy, Timeouts, Transport, UpstreamConfig};
use mcplane_mcp::jsonrpc::Message;
use mcplane_mcp::upstream::{Upstream, UpstreamError, UpstreamEvent, UpstreamState, opener};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Path of a fixture script.
pub fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The real Python interpreter (not a version-manager shim, which would add to the environment
/// the env-clearing test checks).
pub fn python() -> String {
    static PYTHON: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let out = std::process::Command::new("python3")
                .args(["-c", "import sys; print(sys.executable)"])
                .output()
                .expect("python3 runs");
            let path = String::from_utf8(out.stdout).expect("a UTF-8 path");
            let path = path.trim();
            if path.is_empty() {
                "python3".into()
            } else {
                path.to_string()
            }
        })
        .clone()
}

/// Generous limits: tests wait on events, never on these, unless a timeout is what they test.
pub fn timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(5),
        initialize: Duration::from_secs(5),
        call: Duration::from_secs(10),
    }
}

/// A stdio upstream running the Python fixture with `args`.
pub fn stdio(name: &str, args: &[&str]) -> UpstreamConfig {
    let mut all = vec![fixture("stdio_server.py")];
    all.extend(args.iter().map(|a| a.to_string()));
    UpstreamConfig {
        name: name.into(),
        transport: Transport::Stdio {
            command: python(),
            args: all,
            env: BTreeMap::new(),
            env_passthrough: Vec::new(),
            cwd: None,
            restart: RestartPolicy {
                initial_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(1),
            },
        },
        timeouts: timeouts(),
        protocol: mcplane_config::ProtocolMode::Stateful,
        list_ttl: None,
    }
}

/// A supervised upstream with its event receiver.
pub struct Running {
    pub up: Arc<Upstream>,
    pub events: mpsc::Receiver<UpstreamEvent>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Running {
    pub fn start(config: UpstreamConfig) -> Running {
        let (tx, events) = mpsc::channel(64);
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let up = Upstream::spawn(config, opener(), tx, shutdown.clone(), &tasks);
        Running {
            up,
            events,
            shutdown,
            tasks,
        }
    }

    /// Shuts the supervisor down and waits for it (and the transport's close) to finish.
    pub async fn stop(&self) {
        self.shutdown.cancel();
        self.tasks.close();
        tokio::time::timeout(Duration::from_secs(10), self.tasks.wait())
            .await
            .expect("the supervisor stops within 10s");
    }

    /// Waits until the first connection attempt settled and asserts it succeeded.
    pub async fn ready(&self) {
        tokio::time::timeout(Duration::from_secs(10), self.up.wait_settled())
            .await
            .expect("settles within 10s");
        assert_eq!(self.up.state(), UpstreamState::Ready);
    }

    /// Waits until a connection of generation `n` or later is ready.
    pub async fn generation(&self, n: u64) {
        let up = self.up.clone();
        eventually(
            &format!("generation {n} ready"),
            Duration::from_secs(10),
            || up.state() == UpstreamState::Ready && up.generation() >= n,
        )
        .await;
    }

    pub async fn call(&self, tool: &str, args: Value) -> Result<Message, UpstreamError> {
        self.up
            .request(
                "tools/call",
                Some(json!({"name": tool, "arguments": args})),
                None,
            )
            .await
    }

    /// Calls a tool that must succeed and returns its first text content.
    pub async fn text(&self, tool: &str, args: Value) -> String {
        let message = self
            .call(tool, args)
            .await
            .expect("the call reaches the server");
        let result = message.into_outcome().expect("the tool succeeds");
        result["content"][0]["text"]
            .as_str()
            .expect("a text result")
            .to_string()
    }
}

/// Polls `check` every 20 ms until it holds; panics naming `what` after `limit`.
pub async fn eventually(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The state letter of a process (`R`, `S`, `Z`, …), `None` when it no longer exists.
pub fn proc_state(pid: i64) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.trim_start().chars().next()
}

/// A Python fixture HTTP server on a free port, killed when dropped.
pub struct Server {
    _child: Child,
    pub port: u16,
}

impl Server {
    pub async fn start(script: &str, args: &[&str]) -> Server {
        let mut child = Command::new(python())
            .arg(fixture(script))
            .args(args)
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("the fixture prints its port within 10s")
            .expect("readable")
            .expect("a line");
        let port = line
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .expect("PORT <n>");
        Server {
            _child: child,
            port,
        }
    }

    pub fn url(&self, path: &str) -> url::Url {
        url::Url::parse(&format!("http://127.0.0.1:{}{path}", self.port)).expect("a URL")
    }
}

/// A fixture server's counters (`GET /stats` over bare HTTP/1.0: no client setup needed).
pub async fn stats(server: &Server) -> Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .expect("the fixture listens");
    conn.write_all(b"GET /stats HTTP/1.0\r\n\r\n")
        .await
        .expect("the request is sent");
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw)
        .await
        .expect("the answer is read");
    let raw = String::from_utf8(raw).expect("UTF-8");
    let body = raw.split_once("\r\n\r\n").expect("a body").1;
    serde_json::from_str(body).expect("JSON")
}
