//! Each scriptable fault of the mock providers does what it says, set from Rust or over the
//! control API; the request log and the binary work as documented.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use futures::StreamExt;
use mcplane_testkit::mock_llm::sse::{self, SseParser};
use mcplane_testkit::mock_llm::{
    Delivery, Endpoint, Fault, MockConfig, MockHandle, MockProvider, Provider,
};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const KEY: &str = "sk-mock-key";

async fn mock() -> MockHandle {
    MockProvider::start(MockConfig::default().with_api_key(KEY))
        .await
        .unwrap()
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn chat_body(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "one two three"}]})
}

async fn chat(m: &MockHandle, body: &Value) -> reqwest::Result<reqwest::Response> {
    client()
        .post(format!("{}/chat/completions", m.openai_base_url()))
        .bearer_auth(KEY)
        .json(body)
        .send()
        .await
}

async fn messages(m: &MockHandle, stream: bool) -> reqwest::Response {
    client()
        .post(format!("{}/v1/messages", m.base_url()))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "c", "max_tokens": 50, "stream": stream,
                      "messages": [{"role": "user", "content": "one two three"}]}))
        .send()
        .await
        .unwrap()
}

/// Reads a streamed body to its end: the events, and whether it ended in an error.
async fn read_stream(r: reqwest::Response) -> (Vec<sse::SseEvent>, bool) {
    let mut parser = SseParser::default();
    let mut events = Vec::new();
    let mut body = r.bytes_stream();
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(bytes) => events.extend(parser.push(&bytes)),
            Err(_) => return (events, true),
        }
    }
    (events, false)
}

#[tokio::test]
async fn status_for_the_next_n_requests_with_retry_after() {
    let m = mock().await;
    m.set_faults(vec![Fault::status(429).retry_after(2).times(2)]);
    let body = chat_body("gpt-4o", false);
    for _ in 0..2 {
        let r = chat(&m, &body).await.unwrap();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "2");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    }
    assert_eq!(chat(&m, &body).await.unwrap().status(), 200);
    let f = &m.faults()[0];
    assert_eq!((f.seen, f.applied, f.remaining), (2, 2, Some(0)));
    let statuses: Vec<_> = m.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(429), Some(429), Some(200)]);
    assert_eq!(m.requests()[0].fault, Some(0));
    assert_eq!(m.request_count(), 3);

    // each format renders the status in its own error shape
    m.set_faults(vec![
        Fault::status(529).times(1),
        Fault::status(503).times(1),
    ]);
    let r = messages(&m, false).await;
    assert_eq!(r.status(), 529);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "overloaded_error");
    let r = client()
        .post(format!(
            "{}/v1beta/models/g:generateContent?key={KEY}",
            m.base_url()
        ))
        .json(&json!({"contents": [{"parts": [{"text": "x"}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["status"], "UNAVAILABLE");
}

#[tokio::test]
async fn percentage_and_selectors() {
    let m = mock().await;
    m.set_faults(vec![Fault::status(500).percent(50.0).for_model("flaky")]);
    let mut failed = 0;
    for _ in 0..40 {
        if chat(&m, &chat_body("flaky", false)).await.unwrap().status() == 500 {
            failed += 1;
        }
    }
    assert!((10..=30).contains(&failed), "{failed} of 40");
    for _ in 0..5 {
        assert_eq!(
            chat(&m, &chat_body("steady", false))
                .await
                .unwrap()
                .status(),
            200
        );
    }
    // provider, stream and endpoint selectors
    m.set_faults(vec![
        Fault::status(500).for_provider(Provider::Anthropic),
        Fault::status(502).for_stream(true),
        Fault::status(503).on(Endpoint::Embeddings),
    ]);
    assert_eq!(
        chat(&m, &chat_body("m", false)).await.unwrap().status(),
        200
    );
    assert_eq!(chat(&m, &chat_body("m", true)).await.unwrap().status(), 502);
    assert_eq!(messages(&m, false).await.status(), 500);
    let r = client()
        .post(format!("{}/embeddings", m.openai_base_url()))
        .bearer_auth(KEY)
        .json(&json!({"model": "e", "input": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let r = client()
        .get(format!("{}/models", m.openai_base_url()))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "faults match chat by default, not listings"
    );
}

#[tokio::test]
async fn latency_and_first_token_delay() {
    let m = mock().await;
    m.set_faults(vec![Fault::latency(Duration::from_millis(300)).times(1)]);
    let t = Instant::now();
    assert_eq!(
        chat(&m, &chat_body("m", false)).await.unwrap().status(),
        200
    );
    assert!(t.elapsed() >= Duration::from_millis(300));

    m.set_faults(vec![
        Fault::first_token_delay(Duration::from_millis(400)).times(1),
    ]);
    let t = Instant::now();
    let r = chat(&m, &chat_body("m", true)).await.unwrap();
    let headers_after = t.elapsed();
    assert_eq!(r.status(), 200);
    assert!(
        headers_after < Duration::from_millis(250),
        "headers come first: {headers_after:?}"
    );
    let mut body = r.bytes_stream();
    body.next().await.unwrap().unwrap();
    assert!(t.elapsed() >= Duration::from_millis(400));

    // paced events
    m.set_faults(vec![
        Fault::default().with_event_delay(Duration::from_millis(50)),
    ]);
    let t = Instant::now();
    let (events, errored) = read_stream(chat(&m, &chat_body("m", true)).await.unwrap()).await;
    assert!(!errored);
    assert_eq!(events.len(), 7);
    assert!(t.elapsed() >= Duration::from_millis(50 * 6));
}

#[tokio::test]
async fn mid_stream_drop_resets_the_connection() {
    let m = mock().await;
    m.set_faults(vec![Fault::drop_after(3)]);
    let (events, errored) = read_stream(chat(&m, &chat_body("m", true)).await.unwrap()).await;
    assert!(errored, "the body ends in an error, not a clean end");
    assert_eq!(events.len(), 3);
    let (events, errored) = read_stream(messages(&m, true).await).await;
    assert!(errored);
    assert_eq!(events.len(), 3);
    assert_eq!(events[2].event.as_deref(), Some("ping"));
    // non-streaming: half a body, then a reset
    let r = chat(&m, &chat_body("m", false)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.is_err());
}

#[tokio::test]
async fn malformed_truncated_and_error_events() {
    let m = mock().await;
    m.set_faults(vec![Fault::malformed_event(2).times(1)]);
    let (events, errored) = read_stream(chat(&m, &chat_body("m", true)).await.unwrap()).await;
    assert!(!errored);
    assert_eq!(events.len(), 7, "role, four words, finish, [DONE]");
    for (i, e) in events[..6].iter().enumerate() {
        assert_eq!(e.json().is_some(), i != 2, "event {i}: {}", e.data);
    }

    m.set_faults(vec![Fault::truncate().times(1)]);
    let (events, errored) = read_stream(chat(&m, &chat_body("m", true)).await.unwrap()).await;
    assert!(!errored, "a clean end");
    assert!(events.iter().all(|e| e.data != "[DONE]"));
    assert!(
        events
            .iter()
            .all(|e| e.json().unwrap()["choices"][0]["finish_reason"].is_null())
    );
    assert_eq!(events.len(), 5, "role chunk and the four content deltas");

    m.set_faults(vec![Fault::truncate().times(1)]);
    let (events, _) = read_stream(messages(&m, true).await).await;
    let last = events.last().unwrap().event.as_deref();
    assert_eq!(
        last,
        Some("content_block_stop"),
        "no message_delta / message_stop"
    );

    m.set_faults(vec![Fault::truncate_after(1).times(1)]);
    let (events, errored) = read_stream(chat(&m, &chat_body("m", true)).await.unwrap()).await;
    assert!(!errored);
    assert_eq!(events.len(), 1);

    m.set_faults(vec![Fault::error_event_after(2).times(2)]);
    let (events, _) = read_stream(chat(&m, &chat_body("m", true)).await.unwrap()).await;
    assert_eq!(events.len(), 3);
    assert_eq!(events[2].json().unwrap()["error"]["type"], "server_error");
    let (events, _) = read_stream(messages(&m, true).await).await;
    assert_eq!(events.len(), 3);
    assert_eq!(events[2].event.as_deref(), Some("error"));
    assert_eq!(
        events[2].json().unwrap()["error"]["type"],
        "overloaded_error"
    );

    m.set_faults(vec![Fault::invalid_json().times(1)]);
    let r = chat(&m, &chat_body("m", false)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert!(serde_json::from_slice::<Value>(&r.bytes().await.unwrap()).is_err());
}

#[tokio::test]
async fn the_log_shows_how_far_each_response_got() {
    let m = mock().await;
    read_stream(chat(&m, &chat_body("m", true)).await.unwrap()).await;
    let r = &m.requests()[0];
    assert_eq!((r.delivery(), r.events_sent()), (Delivery::Complete, 7));

    m.set_faults(vec![Fault::drop_after(2).times(1)]);
    read_stream(chat(&m, &chat_body("m", true)).await.unwrap()).await;
    let r = &m.requests()[1];
    assert_eq!((r.delivery(), r.events_sent()), (Delivery::Reset, 2));

    // a client that goes away mid-stream: the mock sees the stream aborted
    m.set_faults(vec![
        Fault::default()
            .with_event_delay(Duration::from_millis(100))
            .times(1),
    ]);
    let r = chat(&m, &chat_body("m", true)).await.unwrap();
    let mut body = r.bytes_stream();
    body.next().await.unwrap().unwrap();
    assert_eq!(m.requests()[2].delivery(), Delivery::Pending);
    drop(body);
    let t = Instant::now();
    while m.requests()[2].delivery() == Delivery::Pending && t.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = &m.requests()[2];
    assert_eq!(r.delivery(), Delivery::Aborted);
    assert!(r.events_sent() < 7, "{}", r.events_sent());
    let log: Value = client()
        .get(format!("{}/__mock/requests", m.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log["requests"][2]["delivery"], "aborted");
    assert_eq!(log["requests"][0]["events_sent"], 7);
}

#[tokio::test]
async fn hang_never_sends_headers_until_shutdown() {
    let m = mock().await;
    m.set_faults(vec![Fault::hang()]);
    let short = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = short
        .post(format!("{}/chat/completions", m.openai_base_url()))
        .bearer_auth(KEY)
        .json(&chat_body("m", false))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    let rec = m.requests();
    assert_eq!(rec.len(), 1, "the request reached the mock");
    assert_eq!(rec[0].status, None);

    // a hung request does not hold up shutdown
    let url = format!("{}/chat/completions", m.openai_base_url());
    let pending = tokio::spawn(async move {
        client()
            .post(url)
            .bearer_auth(KEY)
            .json(&chat_body("m", false))
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    m.shutdown().await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(2));
    let _ = pending.await.unwrap();
}

#[tokio::test]
async fn control_api_sets_faults_and_shows_requests() {
    let m = mock().await;
    let ctl = |method: reqwest::Method, path: &str| {
        client().request(method, format!("{}{path}", m.base_url()))
    };
    // one object, an array, or {"faults": [...]}
    for body in [
        json!({"status": 500, "count": 1}),
        json!([{"status": 500, "count": 1}]),
        json!({"faults": [{"status": 500, "count": 1}]}),
    ] {
        let r = ctl(reqwest::Method::POST, "/__mock/faults")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{body}");
        assert_eq!(
            chat(&m, &chat_body("m", false)).await.unwrap().status(),
            500
        );
        assert_eq!(
            chat(&m, &chat_body("m", false)).await.unwrap().status(),
            200
        );
    }
    let r = ctl(reqwest::Method::POST, "/__mock/faults")
        .json(&json!({"stauts": 500}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().contains("stauts"), "{v}");

    ctl(reqwest::Method::POST, "/__mock/faults/append")
        .json(&json!({"latency_ms": 1, "model": "x"}))
        .send()
        .await
        .unwrap();
    let faults: Value = ctl(reqwest::Method::GET, "/__mock/faults")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(faults[0]["applied"], 1);
    assert_eq!(faults[0]["remaining"], 0);
    assert_eq!(faults[1]["latency_ms"], 1);
    assert_eq!(faults[1]["endpoint"], "chat");

    let log: Value = ctl(reqwest::Method::GET, "/__mock/requests?since=5")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log["count"], 6);
    let reqs = log["requests"].as_array().unwrap();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r["seq"], 6);
    assert_eq!(r["method"], "POST");
    assert_eq!(r["path"], "/v1/chat/completions");
    assert_eq!(r["headers"]["authorization"], format!("Bearer {KEY}"));
    assert_eq!(r["body"]["messages"][0]["content"], "one two three");
    assert_eq!(r["provider"], "openai");
    assert_eq!(r["endpoint"], "chat");
    assert_eq!(r["model"], "m");
    assert_eq!(r["status"], 200);

    let r = ctl(reqwest::Method::POST, "/__mock/reset")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(m.request_count(), 0);
    assert!(m.faults().is_empty());

    // unknown routes are recorded too
    let r = client()
        .post(format!("{}/v2/chat", m.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(m.requests()[0].path(), "/v2/chat");
    assert_eq!(m.requests()[0].provider, None);
}

#[tokio::test]
async fn binary_serves_all_formats_and_reports_its_address() {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mcplane-mock-llm"))
        .args(["--listen", "127.0.0.1:0", "--api-key", KEY])
        .args([
            "--faults",
            r#"{"status": 418, "count": 1, "provider": "gemini"}"#,
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("addr=")
        .nth(1)
        .expect("listening addr=…")
        .trim()
        .to_owned();
    let base = format!("http://{addr}");
    let r = client()
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&chat_body("m", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client()
        .post(format!("{base}/v1beta/models/g:generateContent"))
        .header("x-goog-api-key", KEY)
        .json(&json!({"contents": [{"parts": [{"text": "x"}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 418);
    let health = client()
        .get(format!("{base}/__mock/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.text().await.unwrap(), "ok");
    child.kill().unwrap();
    child.wait().unwrap();
}
