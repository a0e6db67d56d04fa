//! stdio transport: the server is a child process speaking newline-delimited JSON-RPC on its
//! stdin and stdout.
//!
//! - The child runs without a shell, in its own process group, with an environment cleared down
//!   to an allowlist plus the configured `env`.
//! - stdout is read line by line with a bounded line length; lines that are not JSON are skipped
//!   (with a rate-limited warning), never fatal.
//! - stderr is logged line by line at a bounded rate and never buffered without bound.
//! - When the child exits, the incoming receiver ends, which tells the supervisor to restart it.
//! - `close` closes stdin, waits, then SIGTERM and SIGKILL the whole process group; dropping the
//!   pipe without `close` SIGKILLs the group.

use super::{Incoming, Opened, Pipe, UpstreamError};
use async_trait::async_trait;
use mcplane_config::{Transport, UpstreamConfig};
use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::Value;
use std::io;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, Command};
use tokio::sync::{Mutex, mpsc, watch};

/// Longest stdout line (one JSON-RPC message); longer lines are discarded.
const MAX_LINE: usize = 16 * 1024 * 1024;
/// Longest stderr line kept for logging; the rest of the line is discarded.
const MAX_STDERR_LINE: usize = 8 * 1024;
/// How much of a stderr line is logged.
const LOGGED_STDERR_CHARS: usize = 2000;
/// stderr lines logged per second before the rest are only counted.
const STDERR_LINES_PER_SEC: u32 = 20;
/// Warnings about bad stdout lines per 10 seconds.
const BAD_LINE_WARNINGS_PER_10S: u32 = 3;
/// How long each step of `close` waits.
const GRACE: Duration = Duration::from_secs(2);
/// After the child exits, how long stdout is still drained (a grandchild may hold it open).
const EXIT_DRAIN: Duration = Duration::from_millis(250);
/// Incoming messages buffered before the reader waits for the connection.
const INCOMING_CAPACITY: usize = 256;
/// Variables of mcplane's own environment that every child gets (when set).
const ENV_ALLOWLIST: [&str; 6] = ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"];

/// Opens the transport: spawns the configured command.
pub async fn open(config: &UpstreamConfig) -> Result<Opened, UpstreamError> {
    let server = config.name.clone();
    let unavailable = |reason: String| UpstreamError::Unavailable {
        server: server.clone(),
        reason,
    };
    let Transport::Stdio {
        command,
        args,
        env,
        env_passthrough,
        cwd,
        ..
    } = &config.transport
    else {
        return Err(unavailable("not a stdio transport".into()));
    };
    if let Some(dir) = cwd
        && !dir.is_dir()
    {
        return Err(unavailable(format!(
            "working directory {} for command {command:?} does not exist",
            dir.display()
        )));
    }
    let mut cmd = Command::new(command);
    cmd.args(args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for name in ENV_ALLOWLIST
        .iter()
        .copied()
        .chain(env_passthrough.iter().map(String::as_str))
    {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    cmd.envs(env);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn().map_err(|e| {
        let why = match e.kind() {
            io::ErrorKind::NotFound => "command not found (no shell; looked up on PATH)".into(),
            io::ErrorKind::PermissionDenied => "permission denied".into(),
            _ => e.to_string(),
        };
        unavailable(format!("cannot start command {command:?}: {why}"))
    })?;
    let (Some(pid), Some(stdin), Some(stdout), Some(stderr)) = (
        child.id(),
        child.stdin.take(),
        child.stdout.take(),
        child.stderr.take(),
    ) else {
        // kill_on_drop reaps what was started.
        return Err(unavailable(format!(
            "command {command:?} started without its standard streams"
        )));
    };
    let pgid = Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
    tracing::info!(server = %server, pid, command = %command, "upstream process started");

    let (exit_tx, exit_rx) = watch::channel(false);
    let name = server.clone();
    tokio::spawn(async move {
        match child.wait().await {
            Ok(status) => tracing::info!(server = %name, %status, "upstream process exited"),
            Err(e) => {
                tracing::warn!(server = %name, error = %e, "cannot wait for the upstream process")
            }
        }
        let _ = exit_tx.send(true);
    });

    let (tx, rx) = mpsc::channel(INCOMING_CAPACITY);
    tokio::spawn(read_stdout(server.clone(), stdout, tx, exit_rx.clone()));
    tokio::spawn(read_stderr(server.clone(), stderr));

    let pipe = StdioPipe {
        server,
        pgid,
        stdin: Mutex::new(Some(stdin)),
        exited: exit_rx,
        write_timeout: config.timeouts.call,
        close_lock: Mutex::new(()),
        closed: AtomicBool::new(false),
    };
    Ok((Box::new(pipe), rx))
}

struct StdioPipe {
    server: String,
    /// The child's process group (== its pid).
    pgid: Pid,
    /// `None` once closed (or broken by a failed write).
    stdin: Mutex<Option<ChildStdin>>,
    /// Becomes true when the direct child has exited and been reaped.
    exited: watch::Receiver<bool>,
    write_timeout: Duration,
    close_lock: Mutex<()>,
    /// The process group has been terminated by `close`.
    closed: AtomicBool,
}

impl StdioPipe {
    fn unavailable(&self, reason: impl Into<String>) -> UpstreamError {
        UpstreamError::Unavailable {
            server: self.server.clone(),
            reason: reason.into(),
        }
    }

    fn signal(&self, signal: Signal) {
        match killpg(self.pgid, signal) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(e) => {
                tracing::warn!(server = %self.server, signal = %signal, error = %e, "cannot signal the upstream process group");
            }
        }
    }

    /// Waits until the direct child has exited, at most `limit`. True if it has.
    async fn wait_exit(&self, limit: Duration) -> bool {
        let mut exited = self.exited.clone();
        matches!(
            tokio::time::timeout(limit, exited.wait_for(|e| *e)).await,
            Ok(Ok(_)) | Ok(Err(_))
        )
    }

    /// Waits until no live process is left in the group, at most `limit`. True if none is.
    async fn wait_group_gone(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if !group_alive(self.pgid) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[async_trait]
impl Pipe for StdioPipe {
    async fn send(&self, message: Value, _request_id: Option<u64>) -> Result<(), UpstreamError> {
        let mut line = serde_json::to_vec(&message).map_err(|e| UpstreamError::Protocol {
            server: self.server.clone(),
            reason: format!("cannot serialize a message: {e}"),
        })?;
        line.push(b'\n');
        let mut stdin = self.stdin.lock().await;
        if *self.exited.borrow() {
            return Err(self.unavailable("the process has exited"));
        }
        let Some(writer) = stdin.as_mut() else {
            return Err(self.unavailable("the process's stdin is closed"));
        };
        let write = async {
            writer.write_all(&line).await?;
            writer.flush().await
        };
        match tokio::time::timeout(self.write_timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                *stdin = None;
                Err(self.unavailable(format!("cannot write to the process: {e}")))
            }
            Err(_) => {
                // A partial line may have been written: the stream is unusable. Kill the process
                // so the supervisor restarts it.
                *stdin = None;
                tracing::warn!(server = %self.server, "upstream process does not read its stdin; killing it");
                self.signal(Signal::SIGKILL);
                Err(UpstreamError::Timeout {
                    server: self.server.clone(),
                    what: "writing to stdin".into(),
                    secs: self.write_timeout.as_secs_f64(),
                })
            }
        }
    }

    async fn close(&self) {
        let _serial = self.close_lock.lock().await;
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        // A send stuck on a full pipe holds the lock; the signals below unblock it.
        if let Ok(mut stdin) = self.stdin.try_lock() {
            stdin.take();
        }
        if !self.wait_exit(GRACE).await {
            self.signal(Signal::SIGTERM);
            if !self.wait_exit(GRACE).await {
                tracing::warn!(server = %self.server, "upstream process ignored SIGTERM; killing it");
                self.signal(Signal::SIGKILL);
                if !self.wait_exit(GRACE).await {
                    tracing::warn!(server = %self.server, "upstream process did not exit after SIGKILL");
                }
            }
        }
        // Whatever the child left behind in its group (grandchildren) goes too.
        if group_alive(self.pgid) {
            self.signal(Signal::SIGTERM);
            if !self.wait_group_gone(GRACE).await {
                self.signal(Signal::SIGKILL);
            }
        }
        self.closed.store(true, Ordering::Release);
    }
}

impl Drop for StdioPipe {
    fn drop(&mut self) {
        if !self.closed.load(Ordering::Acquire) {
            // Synchronous last resort; the reaper task reaps the child.
            let _ = killpg(self.pgid, Signal::SIGKILL);
        }
    }
}

/// Whether any live (not zombie) process is left in the process group.
fn group_alive(pgid: Pid) -> bool {
    match killpg(pgid, None) {
        Err(Errno::ESRCH) => false,
        // Zombies (grandchildren nobody reaps) still count for kill(2): look closer.
        _ => proc_group_alive(pgid.as_raw()).unwrap_or(true),
    }
}

/// Scans `/proc` for a non-zombie member of the group; `None` if `/proc` is unreadable.
fn proc_group_alive(pgid: i32) -> Option<bool> {
    let entries = std::fs::read_dir("/proc").ok()?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp ..."; comm may contain anything, so split after the last ')'.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let pgrp = fields.nth(1).and_then(|p| p.parse::<i32>().ok());
        if pgrp == Some(pgid) && !matches!(state, Some("Z" | "X" | "x")) {
            return Some(true);
        }
    }
    Some(false)
}

/// Reads stdout until EOF, the child's exit (plus a short drain), or the receiver going away.
async fn read_stdout(
    server: String,
    stdout: impl AsyncRead + Unpin,
    tx: mpsc::Sender<Incoming>,
    mut exited: watch::Receiver<bool>,
) {
    let mut lines = LineReader::new(stdout, MAX_LINE);
    let mut warnings = LogBudget::new(BAD_LINE_WARNINGS_PER_10S, Duration::from_secs(10));
    let mut drain_until: Option<tokio::time::Instant> = None;
    loop {
        let at = drain_until;
        let drain = async move {
            match at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let read = tokio::select! {
            r = lines.next_line() => r,
            _ = exited.wait_for(|e| *e), if drain_until.is_none() => {
                drain_until = Some(tokio::time::Instant::now() + EXIT_DRAIN);
                continue;
            }
            _ = drain => break,
            _ = tx.closed() => break,
        };
        let line = match read {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(server = %server, error = %e, "cannot read the upstream process's stdout");
                break;
            }
        };
        let (allowed, suppressed) = if line.total > line.bytes.len() {
            warnings.take()
        } else {
            match parse_line(&line.bytes) {
                Parsed::Messages(messages) => {
                    for message in messages {
                        let incoming = Incoming {
                            message,
                            related_to: None,
                        };
                        if tx.send(incoming).await.is_err() {
                            return;
                        }
                    }
                    continue;
                }
                Parsed::Blank => continue,
                Parsed::NotJson => warnings.take(),
            }
        };
        if suppressed > 0 {
            tracing::warn!(server = %server, suppressed, "more invalid stdout lines from the upstream process were skipped");
        }
        if !allowed {
            continue;
        }
        if line.total > line.bytes.len() {
            tracing::warn!(server = %server, bytes = line.total, limit = MAX_LINE, "upstream process wrote an over-long stdout line; discarded");
        } else {
            tracing::warn!(
                server = %server,
                line = %preview(&line.bytes, 120),
                "upstream process wrote a non-JSON line on stdout (stdout is for MCP messages only; log to stderr); skipped"
            );
        }
    }
    let suppressed = warnings.finish();
    if suppressed > 0 {
        tracing::warn!(server = %server, suppressed, "more invalid stdout lines from the upstream process were skipped");
    }
}

enum Parsed {
    Messages(Vec<Value>),
    Blank,
    NotJson,
}

fn parse_line(bytes: &[u8]) -> Parsed {
    let trimmed = bytes.trim_ascii();
    if trimmed.is_empty() {
        return Parsed::Blank;
    }
    match serde_json::from_slice::<Value>(trimmed) {
        Ok(v @ Value::Object(_)) => Parsed::Messages(vec![v]),
        Ok(Value::Array(items)) if !items.is_empty() => Parsed::Messages(items),
        _ => Parsed::NotJson,
    }
}

/// Logs stderr lines at a bounded rate until EOF.
async fn read_stderr(server: String, stderr: impl AsyncRead + Unpin) {
    let mut lines = LineReader::new(stderr, MAX_STDERR_LINE);
    let mut budget = LogBudget::new(STDERR_LINES_PER_SEC, Duration::from_secs(1));
    loop {
        let line = match lines.next_line().await {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(server = %server, error = %e, "cannot read the upstream process's stderr");
                break;
            }
        };
        let (allowed, suppressed) = budget.take();
        if suppressed > 0 {
            tracing::warn!(server = %server, suppressed, "upstream stderr is flooding; lines suppressed");
        }
        if allowed {
            let text = preview(&line.bytes, LOGGED_STDERR_CHARS);
            let truncated = line.total > line.bytes.len() || line.bytes.len() > LOGGED_STDERR_CHARS;
            tracing::info!(server = %server, truncated, "stderr: {text}");
        }
    }
    let suppressed = budget.finish();
    if suppressed > 0 {
        tracing::warn!(server = %server, suppressed, "upstream stderr is flooding; lines suppressed");
    }
}

/// At most `chars` characters of a line, lossily decoded, without the line ending.
fn preview(bytes: &[u8], chars: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_end_matches(['\r', '\n']);
    match text.char_indices().nth(chars) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// One line as read: at most `max` bytes of it, and its full length.
struct Line {
    bytes: Vec<u8>,
    total: usize,
}

/// Reads `\n`-terminated lines keeping at most `max` bytes of each: the rest of an over-long line
/// is consumed and dropped, so memory stays bounded whatever the peer writes. Cancel safe.
struct LineReader<R> {
    inner: BufReader<R>,
    buf: Vec<u8>,
    total: usize,
    max: usize,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    fn new(inner: R, max: usize) -> Self {
        LineReader {
            inner: BufReader::with_capacity(64 * 1024, inner),
            buf: Vec::new(),
            total: 0,
            max,
        }
    }

    /// The next line without its `\n` (a final unterminated line counts), or `None` at EOF.
    async fn next_line(&mut self) -> io::Result<Option<Line>> {
        loop {
            let chunk = self.inner.fill_buf().await?;
            if chunk.is_empty() {
                return Ok((self.total > 0).then(|| self.take()));
            }
            let (part, used, complete) = match chunk.iter().position(|b| *b == b'\n') {
                Some(i) => (&chunk[..i], i + 1, true),
                None => (chunk, chunk.len(), false),
            };
            let room = self.max.saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&part[..part.len().min(room)]);
            self.total += part.len();
            self.inner.consume(used);
            if complete {
                return Ok(Some(self.take()));
            }
        }
    }

    fn take(&mut self) -> Line {
        let line = Line {
            bytes: std::mem::take(&mut self.buf),
            total: self.total,
        };
        self.total = 0;
        line
    }
}

/// A fixed-window log budget: `per_window` entries, then entries are only counted.
struct LogBudget {
    per_window: u32,
    window: Duration,
    started: Instant,
    used: u32,
    suppressed: u64,
}

impl LogBudget {
    fn new(per_window: u32, window: Duration) -> Self {
        LogBudget {
            per_window,
            window,
            started: Instant::now(),
            used: 0,
            suppressed: 0,
        }
    }

    /// Whether this entry may be logged, and how many were suppressed in the window that just
    /// ended (report them when non-zero).
    fn take(&mut self) -> (bool, u64) {
        let mut ended = 0;
        if self.started.elapsed() >= self.window {
            ended = std::mem::take(&mut self.suppressed);
            self.started = Instant::now();
            self.used = 0;
        }
        if self.used < self.per_window {
            self.used += 1;
            (true, ended)
        } else {
            self.suppressed += 1;
            (false, ended)
        }
    }

    /// Entries suppressed and not yet reported.
    fn finish(&mut self) -> u64 {
        std::mem::take(&mut self.suppressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<(String, usize)> {
        let mut reader = LineReader::new(input, max);
        let mut out = Vec::new();
        while let Some(line) = reader.next_line().await.unwrap() {
            out.push((String::from_utf8(line.bytes).unwrap(), line.total));
        }
        out
    }

    #[tokio::test]
    async fn line_reader_bounds_long_lines() {
        let got = lines(b"short\n0123456789abcdef\n\nlast", 8).await;
        assert_eq!(
            got,
            vec![
                ("short".into(), 5),
                ("01234567".into(), 16),
                (String::new(), 0),
                ("last".into(), 4)
            ]
        );
    }

    #[tokio::test]
    async fn line_reader_handles_lines_longer_than_its_buffer() {
        let mut input = vec![b'x'; 200 * 1024];
        input.extend_from_slice(b"\n{}\n");
        let got = lines(&input, 1024).await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0.len(), 1024);
        assert_eq!(got[0].1, 200 * 1024);
        assert_eq!(got[1], ("{}".into(), 2));
    }

    #[test]
    fn parse_line_classifies() {
        assert!(matches!(parse_line(b"  \r"), Parsed::Blank));
        assert!(matches!(parse_line(b"hello"), Parsed::NotJson));
        assert!(matches!(parse_line(b"42"), Parsed::NotJson));
        assert!(matches!(parse_line(b"[]"), Parsed::NotJson));
        assert!(matches!(parse_line(b"{\"a\":1}\r"), Parsed::Messages(m) if m.len() == 1));
        assert!(matches!(parse_line(b"[{},{}]"), Parsed::Messages(m) if m.len() == 2));
    }

    #[test]
    fn log_budget_counts_what_it_suppresses() {
        let mut b = LogBudget::new(2, Duration::from_secs(3600));
        assert_eq!(b.take(), (true, 0));
        assert_eq!(b.take(), (true, 0));
        assert_eq!(b.take(), (false, 0));
        assert_eq!(b.take(), (false, 0));
        assert_eq!(b.finish(), 2);
        let mut b = LogBudget::new(1, Duration::ZERO);
        assert_eq!(b.take(), (true, 0));
        assert_eq!(b.take(), (true, 0));
    }

    #[test]
    fn preview_truncates_on_char_boundaries() {
        assert_eq!(preview("héllo\r\n".as_bytes(), 10), "héllo");
        assert_eq!(preview("héllo".as_bytes(), 2), "hé…");
    }
}
