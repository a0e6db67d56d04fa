//! The store on SQLite (a file) and on a real PostgreSQL cluster: migrations, records written
//! by the writer off the request path (every one exactly once under concurrency, in both
//! dialects), read back newest first and by model; a full buffer drops and counts instead of
//! blocking; bad URLs and unreachable databases are clear errors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcplane_core::calls::{Outcome, RequestRecord, RequestSink};
use mcplane_store::{CallWriter, Store, StoreError};
use mcplane_testkit::postgres::PostgresServer;

fn record(i: usize, model: &str) -> RequestRecord {
    RequestRecord {
        request_id: format!("req-{i}"),
        principal: Some("ada".into()),
        tenancy: mcplane_types::Tenancy {
            org: Some("acme".into()),
            team: Some("payments".into()),
            project: None,
        },
        front_door: "openai.chat",
        requested: "smart".into(),
        model: Some(model.into()),
        endpoint: Some("us-east-1".into()),
        stream: i.is_multiple_of(2),
        status: 200,
        outcome: Outcome::Ok,
        error: None,
        latency_ms: 120 + i as u64,
        ttft_ms: i.is_multiple_of(2).then_some(40),
        prompt_tokens: 10,
        completion_tokens: 5,
        usage_source: "reported",
        cost_micros: 25,
        route_reason: "score 0.91 (perf 0.8, cost 0.95, avail 1)".into(),
        attempts: 1,
    }
}

async fn exercise(store: Store) {
    let writer = CallWriter::start(store.clone(), 10_000);
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let writer = writer.clone();
            tokio::spawn(async move {
                for i in 0..100usize {
                    let model = if i.is_multiple_of(4) {
                        "claude"
                    } else {
                        "gpt-4o"
                    };
                    writer.record(&record(t * 100 + i, model));
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    writer.close().await;
    let s = writer.stats();
    assert_eq!((s.written, s.dropped, s.failed), (800, 0, 0));
    let recent = store.recent_calls(1000, None).await.unwrap();
    assert_eq!(recent.len(), 800);
    let mut ids: Vec<_> = recent.iter().map(|c| c.request_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 800, "every record exactly once");
    let claude = store.recent_calls(1000, Some("claude")).await.unwrap();
    assert_eq!(claude.len(), 200);
    let c = &claude[0];
    assert_eq!(c.principal.as_deref(), Some("ada"));
    assert_eq!(
        (c.prompt_tokens, c.completion_tokens, c.cost_micros),
        (10, 5, 25)
    );
    assert_eq!(c.outcome, "ok");
    assert!(c.stream == c.ttft_ms.is_some());
    assert!(c.route_reason.starts_with("score"));
    assert_eq!(store.recent_calls(3, None).await.unwrap().len(), 3);
    // A record after close is counted, not lost silently.
    writer.record(&record(9999, "gpt-4o"));
    assert_eq!(writer.stats().dropped, 1);
    store.close().await;
}

#[tokio::test]
async fn sqlite_file_store_round_trips_records() {
    let dir = std::env::temp_dir().join(format!("mcplane-store-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("calls.db").display());
    exercise(Store::open(&url).await.unwrap()).await;
    // Reopening migrates nothing twice and keeps the data.
    let again = Store::open(&url).await.unwrap();
    assert_eq!(again.recent_calls(5, None).await.unwrap().len(), 5);
    again.close().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn postgres_store_round_trips_records() {
    let Some(pg) = PostgresServer::start().unwrap() else {
        return;
    };
    exercise(Store::open(&pg.url()).await.unwrap()).await;
}

#[tokio::test]
async fn a_full_buffer_drops_and_counts_instead_of_blocking() {
    let store = Store::open("sqlite::memory:").await.unwrap();
    let writer = CallWriter::start(store.clone(), 4);
    let started = std::time::Instant::now();
    for i in 0..10_000 {
        writer.record(&record(i, "gpt-4o"));
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "recording never waits for SQL"
    );
    writer.close().await;
    let s = writer.stats();
    assert_eq!(s.written + s.dropped, 10_000);
    assert!(s.dropped > 0, "{s:?}");
    assert_eq!(
        store.recent_calls(20_000, None).await.unwrap().len() as u64,
        s.written
    );
}

#[tokio::test]
async fn bad_urls_and_unreachable_databases_are_clear_errors() {
    match Store::open("mysql://u:hunter2@h/db").await {
        Err(StoreError::Scheme(what)) => assert!(!what.contains("hunter2"), "{what}"),
        other => panic!("{other:?}"),
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = Store::open(&format!("postgres://app:hunter2@127.0.0.1:{port}/db"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot open the store (postgres://127.0.0.1"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    let err = Store::open("sqlite:///nonexistent-dir/deeper/x.db")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
}

async fn keys_round_trip(store: Store) {
    use mcplane_store::KeyRow;
    let new = mcplane_core::keys::generate();
    let row = |id: &str, expires_at_ms: Option<i64>| KeyRow {
        id: id.into(),
        name: "billing".into(),
        principal: "svc-billing".into(),
        kind: "service".into(),
        org: Some("acme".into()),
        team: None,
        project: None,
        roles: vec!["ops".into()],
        models: Some(vec!["gpt-4o".into()]),
        tools: None,
        created_at_ms: 1,
        expires_at_ms,
        revoked_at_ms: None,
    };
    store
        .insert_key(&row(&new.id, None), &new.hash_hex)
        .await
        .unwrap();
    let other = mcplane_core::keys::generate();
    store
        .insert_key(&row(&other.id, Some(1_000)), &other.hash_hex)
        .await
        .unwrap();
    // The same id twice is refused (primary key), not overwritten.
    assert!(
        store
            .insert_key(&row(&new.id, None), &other.hash_hex)
            .await
            .is_err()
    );
    let listed = store.list_keys().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].roles, ["ops"]);
    let active = store.active_keys(2_000).await.unwrap();
    assert_eq!(active.len(), 1, "the expired one is left out");
    let set = mcplane_core::keys::KeySet::new(active);
    let (p, scope) = set.verify(&new.token, 2_000).unwrap();
    assert_eq!(p.id, "svc-billing");
    assert_eq!(p.tenancy.org.as_deref(), Some("acme"));
    assert!(scope.allows_model("gpt-4o") && !scope.allows_model("other"));
    assert!(store.revoke_key(&new.id, 3_000).await.unwrap());
    assert!(
        !store.revoke_key(&new.id, 3_000).await.unwrap(),
        "revoking twice"
    );
    assert!(!store.revoke_key("' OR 1=1 --", 3_000).await.unwrap());
    assert!(store.active_keys(2_000).await.unwrap().is_empty());
    store.close().await;
}

#[tokio::test]
async fn api_keys_on_sqlite_and_postgres() {
    keys_round_trip(Store::open("sqlite::memory:").await.unwrap()).await;
    if let Some(pg) = PostgresServer::start().unwrap() {
        keys_round_trip(Store::open(&pg.url()).await.unwrap()).await;
    }
}
