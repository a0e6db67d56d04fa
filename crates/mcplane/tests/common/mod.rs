//! Starting the real `mcplane` binary for end-to-end tests, and a small MCP HTTP client.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An HTTP client (rustls with the ring provider, as the binary uses).
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// The binary under test.
pub fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_mcplane")
}

/// A running `mcplane serve`, killed on drop.
pub struct Gateway {
    pub child: Child,
    pub addr: SocketAddr,
    pub _dir: tempdir::Dir,
    pub logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

pub mod tempdir {
    /// A temporary directory removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> Dir {
            let p = std::env::temp_dir().join(format!(
                "mcplane-test-{}-{}",
                std::process::id(),
                rand_suffix()
            ));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }
    fn rand_suffix() -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(
            std::time::SystemTime::now()
                .elapsed()
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0),
        );
        h.finish()
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Gateway {
    /// Starts `mcplane serve` with this YAML (the `server.listen` is forced to 127.0.0.1:0) and
    /// waits until it logs its address.
    pub fn start(yaml: &str) -> Gateway {
        let dir = tempdir::Dir::new();
        let path = dir.0.join("mcplane.yaml");
        std::fs::write(&path, yaml).unwrap();
        let args = vec![
            "serve".to_string(),
            "--config".to_string(),
            path.display().to_string(),
            "--listen".to_string(),
            "127.0.0.1:0".to_string(),
        ];
        Self::spawn(&args, dir)
    }

    /// Starts `mcplane demo-server --listen 127.0.0.1:0`.
    pub fn demo_http() -> Gateway {
        let args = ["demo-server", "--listen", "127.0.0.1:0"].map(String::from);
        Self::spawn(&args, tempdir::Dir::new())
    }

    fn spawn(args: &[String], dir: tempdir::Dir) -> Gateway {
        let mut child = Command::new(exe())
            .args(args)
            .env("MCPLANE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("addr=").nth(1) {
                    let a = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    let _ = tx.send(a);
                }
                keep.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("mcplane did not report its listen address")
            .parse()
            .unwrap();
        Gateway {
            child,
            addr,
            _dir: dir,
            logs,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Polls `/readyz` until 200 or the deadline.
    pub async fn wait_ready(&self) -> Value {
        let client = http();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(self.url("/readyz")).send().await
                && r.status() == 200
            {
                return r.json().await.unwrap();
            }
            assert!(Instant::now() < deadline, "mcplane never became ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id() as i32;
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "mcplane did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal Streamable HTTP MCP client.
pub struct Client {
    pub http: reqwest::Client,
    pub url: String,
    pub session: Option<String>,
    next: u64,
}

/// Everything one POST returned: the messages (JSON or SSE) in order.
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub messages: Vec<Value>,
}

impl Reply {
    /// The final response (the last message with an id and result/error).
    pub fn response(&self) -> &Value {
        self.messages
            .iter()
            .rev()
            .find(|m| m.get("result").is_some() || m.get("error").is_some())
            .expect("no response in reply")
    }
}

impl Client {
    pub fn new(url: String) -> Client {
        Client {
            http: http(),
            url,
            session: None,
            next: 1,
        }
    }

    pub async fn post(&mut self, body: &Value) -> Reply {
        let mut req = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_string());
        if let Some(s) = &self.session {
            req = req
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", "2025-11-25");
        }
        let r = req.send().await.unwrap();
        if let Some(s) = r.headers().get("mcp-session-id") {
            self.session = Some(s.to_str().unwrap().to_string());
        }
        let status = r.status().as_u16();
        let content_type = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let text = r.text().await.unwrap();
        let messages = if content_type.starts_with("text/event-stream") {
            text.lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .filter_map(|d| serde_json::from_str(d.trim()).ok())
                .collect()
        } else if text.is_empty() {
            vec![]
        } else {
            vec![serde_json::from_str(&text).unwrap()]
        };
        Reply {
            status,
            content_type,
            messages,
        }
    }

    pub async fn request(&mut self, method: &str, params: Value) -> Reply {
        let id = self.next;
        self.next += 1;
        self.post(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await
    }

    /// `initialize` + `notifications/initialized`; returns the initialize result.
    pub async fn initialize(&mut self) -> Value {
        let r = self
            .request(
                "initialize",
                json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "0"}}),
            )
            .await;
        let result = r.response()["result"].clone();
        assert!(result.is_object(), "initialize failed: {:?}", r.messages);
        self.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        result
    }

    /// Calls a method and returns its `result`, failing the test on an error.
    pub async fn ok(&mut self, method: &str, params: Value) -> Value {
        let r = self.request(method, params).await;
        let resp = r.response().clone();
        assert!(resp.get("result").is_some(), "{method} failed: {resp}");
        resp["result"].clone()
    }
}
