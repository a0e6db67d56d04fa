//! The stdio transport, driven through the supervisor against a Python fixture server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod upstream_support;

use mcplane_config::Transport;
use mcplane_mcp::upstream::{UpstreamError, UpstreamState};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use upstream_support::{Running, eventually, proc_state, stdio};

#[tokio::test]
async fn call_round_trip() {
    let run = Running::start(stdio("files", &[]));
    run.ready().await;
    let init = run.up.init_result().unwrap();
    assert_eq!(init["serverInfo"]["name"], "stdio-fixture");
    let tools = run
        .up
        .request("tools/list", None, None)
        .await
        .unwrap()
        .into_outcome()
        .unwrap();
    assert!(tools["tools"].as_array().unwrap().len() > 3);
    assert_eq!(
        run.text("echo", json!({"text": "héllo\nworld"})).await,
        "héllo\nworld"
    );
    // Unknown tools come back as JSON-RPC errors, not transport failures.
    let err = run.call("nope", json!({})).await.unwrap().into_outcome();
    assert!(err.is_err());
    run.stop().await;
}

#[tokio::test]
async fn crash_mid_call_fails_the_call_then_restarts() {
    let run = Running::start(stdio("crashy", &[]));
    run.ready().await;
    let err = run.call("exit", json!({})).await.unwrap_err();
    assert!(
        matches!(&err, UpstreamError::Unavailable { server, .. } if server == "crashy"),
        "{err:?}"
    );
    assert!(err.to_string().contains("crashy"), "{err}");
    // Restarted with back-off; calls work again.
    run.generation(2).await;
    assert_eq!(run.text("echo", json!({"text": "back"})).await, "back");
    run.stop().await;
}

#[tokio::test]
async fn never_answering_initialize_times_out_naming_initialize() {
    let mut config = stdio("mute", &["--silent"]);
    config.timeouts.initialize = Duration::from_millis(400);
    let run = Running::start(config);
    let started = Instant::now();
    let err = run.call("echo", json!({})).await.unwrap_err();
    assert!(
        matches!(&err, UpstreamError::Timeout { server, what, .. } if server == "mute" && what == "initialize"),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(run.up.state(), UpstreamState::Down { reason } if reason.contains("initialize"))
    );
    run.stop().await;
}

#[tokio::test]
async fn shutdown_during_initialize_kills_the_process() {
    let dir = std::env::temp_dir().join(format!("mcplane-stdio-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pid_file = dir.join("mute.pid");
    let _ = std::fs::remove_file(&pid_file);
    let run = Running::start(stdio(
        "mute2",
        &["--silent", "--pid-file", pid_file.to_str().unwrap()],
    ));
    eventually("the fixture wrote its pid", Duration::from_secs(10), || {
        pid_file.exists()
    })
    .await;
    let pid: i64 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    assert!(proc_state(pid).is_some());
    run.stop().await;
    // The supervisor closed the transport it was initializing: the child is dead and reaped.
    eventually("the child is reaped", Duration::from_secs(5), || {
        proc_state(pid).is_none()
    })
    .await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn non_json_stdout_is_skipped() {
    let run = Running::start(stdio("noisy", &[]));
    run.ready().await;
    // The tool writes garbage, a bare number, a blank line and a 17 MiB line before answering.
    assert_eq!(run.text("noise", json!({})).await, "after noise");
    assert_eq!(
        run.text("echo", json!({"text": "still fine"})).await,
        "still fine"
    );
    assert_eq!(run.up.generation(), 1);
    run.stop().await;
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test]
async fn stderr_flood_is_bounded() {
    let run = Running::start(stdio("loud", &[]));
    run.ready().await;
    let before = rss_kib();
    // One 96 MiB line and 200k short lines on stderr, then the answer on stdout.
    let started = Instant::now();
    assert_eq!(
        run.text("flood", json!({"mib": 96, "lines": 200})).await,
        "after flood"
    );
    let grown_mib = rss_kib().saturating_sub(before) / 1024;
    assert!(
        grown_mib < 48,
        "RSS grew by {grown_mib} MiB while stderr flooded"
    );
    assert!(started.elapsed() < Duration::from_secs(8));
    assert_eq!(run.text("echo", json!({"text": "ok"})).await, "ok");
    run.stop().await;
}

#[tokio::test]
async fn shutdown_kills_the_process_group() {
    let run = Running::start(stdio("forky", &[]));
    run.ready().await;
    let pids: Value = serde_json::from_str(&run.text("pids", json!({})).await).unwrap();
    let pid = pids["pid"].as_i64().unwrap();
    let grandchild = pids["grandchild"].as_i64().unwrap();
    assert!(proc_state(grandchild).is_some_and(|s| s != 'Z'));
    run.stop().await;
    // The direct child is reaped (no zombie); the grandchild is dead (it may linger as a zombie
    // of an init that does not reap, which is not ours to reap).
    eventually(
        "child and grandchild are gone",
        Duration::from_secs(5),
        || proc_state(pid).is_none() && proc_state(grandchild).is_none_or(|s| s == 'Z'),
    )
    .await;
}

#[tokio::test]
async fn dropping_the_pipe_kills_the_process_group() {
    let config = stdio("dropped", &[]);
    let (pipe, mut incoming) = mcplane_mcp::upstream::open(config).await.unwrap();
    pipe.send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "pids"}}),
        Some(1),
    )
    .await
    .unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(10), incoming.recv())
        .await
        .unwrap()
        .unwrap();
    let pids: Value = serde_json::from_str(
        reply.message["result"]["content"][0]["text"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let (pid, grandchild) = (
        pids["pid"].as_i64().unwrap(),
        pids["grandchild"].as_i64().unwrap(),
    );
    drop(pipe);
    // The receiver ends once the process is gone.
    let end = tokio::time::timeout(Duration::from_secs(5), incoming.recv())
        .await
        .unwrap();
    assert!(end.is_none());
    eventually(
        "child and grandchild are gone",
        Duration::from_secs(5),
        || proc_state(pid).is_none() && proc_state(grandchild).is_none_or(|s| s == 'Z'),
    )
    .await;
}

#[tokio::test]
async fn close_is_idempotent_and_ends_the_receiver() {
    let (pipe, mut incoming) = mcplane_mcp::upstream::open(stdio("closing", &[]))
        .await
        .unwrap();
    pipe.close().await;
    pipe.close().await;
    let end = tokio::time::timeout(Duration::from_secs(5), incoming.recv())
        .await
        .unwrap();
    assert!(end.is_none());
    let err = pipe
        .send(json!({"jsonrpc": "2.0", "method": "x"}), None)
        .await;
    assert!(
        matches!(err, Err(UpstreamError::Unavailable { .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn environment_is_cleared_to_the_allowlist() {
    let mut config = stdio("envy", &[]);
    if let Transport::Stdio {
        env,
        env_passthrough,
        ..
    } = &mut config.transport
    {
        // Cargo sets CARGO_PKG_NAME and CARGO_MANIFEST_DIR for the test process.
        env_passthrough.push("CARGO_PKG_NAME".into());
        *env = BTreeMap::from([("FIXTURE_SET".to_string(), "1".to_string())]);
    }
    let run = Running::start(config);
    run.ready().await;
    let env: BTreeMap<String, String> =
        serde_json::from_str(&run.text("env", json!({})).await).unwrap();
    let allowed: BTreeSet<&str> = [
        "PATH",
        "HOME",
        "LANG",
        "LC_ALL",
        "TZ",
        "TMPDIR",
        "CARGO_PKG_NAME",
        "FIXTURE_SET",
        // Set by Python itself when it coerces the C locale.
        "LC_CTYPE",
    ]
    .into();
    let extra: Vec<&String> = env
        .keys()
        .filter(|k| !allowed.contains(k.as_str()))
        .collect();
    assert!(extra.is_empty(), "unexpected variables: {extra:?}");
    assert_eq!(env.get("FIXTURE_SET").map(String::as_str), Some("1"));
    assert_eq!(
        env.get("CARGO_PKG_NAME").map(String::as_str),
        Some("mcplane-mcp")
    );
    assert_eq!(env.get("PATH"), std::env::var("PATH").ok().as_ref());
    assert!(!env.contains_key("CARGO_MANIFEST_DIR"));
    run.stop().await;
}

#[tokio::test]
async fn missing_command_is_unavailable_naming_the_command() {
    let mut config = stdio("ghost", &[]);
    if let Transport::Stdio { command, .. } = &mut config.transport {
        *command = "mcplane-no-such-command-xyz".into();
    }
    let run = Running::start(config);
    let err = run.call("echo", json!({})).await.unwrap_err();
    match &err {
        UpstreamError::Unavailable { server, reason } => {
            assert_eq!(server, "ghost");
            assert!(reason.contains("mcplane-no-such-command-xyz"), "{reason}");
            assert!(reason.contains("not found"), "{reason}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    run.stop().await;
}
