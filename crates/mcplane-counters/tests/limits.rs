//! Rate limits counted in memory: per-minute requests and tokens, requests in flight, atomic
//! across tenant levels, exact under concurrency, windows resetting with the clock.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcplane_config::TenantsSpec;
use mcplane_core::limits::{LimitError, Limits};
use mcplane_counters::MemoryCounters;
use mcplane_types::{Principal, Tenancy};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

fn tenants(yaml: &str) -> TenantsSpec {
    serde_yaml_ng::from_str(yaml).unwrap()
}

fn member(org: &str, team: &str, project: Option<&str>) -> Principal {
    let mut p = Principal::anonymous();
    p.id = "ada".into();
    p.tenancy = Tenancy {
        org: Some(org.into()),
        team: Some(team.into()),
        project: project.map(str::to_string),
    };
    p
}

/// Limits over memory counters with a clock the test moves (seconds since the epoch).
fn limits(yaml: &str) -> (Limits, Arc<AtomicU64>) {
    let now = Arc::new(AtomicU64::new(1_000_040)); // 20 s into a minute
    let clock = now.clone();
    let counters = MemoryCounters::with_clock(Arc::new(move || {
        Duration::from_secs(clock.load(Ordering::SeqCst))
    }));
    (
        Limits::new(Some(&tenants(yaml)), Arc::new(counters), false),
        now,
    )
}

fn limited(r: Result<mcplane_core::limits::Admitted, LimitError>) -> mcplane_core::limits::Limited {
    match r {
        Err(LimitError::Limited(l)) => l,
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("admitted"),
    }
}

#[tokio::test]
async fn requests_per_minute_reset_with_the_window() {
    let (l, now) = limits(
        "orgs: [{ id: acme, teams: [{ id: payments, limits: { requests_per_minute: 3 } }] }]",
    );
    let p = member("acme", "payments", None);
    for _ in 0..3 {
        drop(l.admit(&p, 0).await.unwrap());
    }
    let refusal = limited(l.admit(&p, 0).await);
    assert_eq!(refusal.what, "requests per minute of team payments (3)");
    assert_eq!(refusal.retry_after, Duration::from_secs(40));
    assert_eq!(refusal.dimension, "requests");
    now.fetch_add(40, Ordering::SeqCst);
    drop(l.admit(&p, 0).await.unwrap());
    // Someone outside any limited level is never limited.
    for _ in 0..10 {
        drop(l.admit(&member("other", "x", None), 0).await.unwrap());
    }
}

#[tokio::test]
async fn admission_is_all_or_nothing_across_levels() {
    let (l, _) = limits(
        "orgs: [{ id: acme, limits: { requests_per_minute: 4 }, teams: [{ id: a, limits: { requests_per_minute: 2 } }, { id: b }] }]",
    );
    let (a, b) = (member("acme", "a", None), member("acme", "b", None));
    drop(l.admit(&a, 0).await.unwrap());
    drop(l.admit(&a, 0).await.unwrap());
    // Team a is out; its refused attempts do not use up the org's minute.
    for _ in 0..5 {
        assert!(limited(l.admit(&a, 0).await).what.contains("team a"));
    }
    drop(l.admit(&b, 0).await.unwrap());
    drop(l.admit(&b, 0).await.unwrap());
    assert!(limited(l.admit(&b, 0).await).what.contains("org acme"));
}

#[tokio::test]
async fn requests_in_flight_are_released_when_they_end() {
    let (l, _) = limits(
        "orgs: [{ id: acme, teams: [{ id: t, projects: [{ id: bot, limits: { concurrent: 2 } }] }] }]",
    );
    let p = member("acme", "t", Some("bot"));
    let first = l.admit(&p, 0).await.unwrap();
    let _second = l.admit(&p, 0).await.unwrap();
    let refusal = limited(l.admit(&p, 0).await);
    assert_eq!(refusal.dimension, "concurrent");
    assert!(refusal.what.contains("project bot"), "{}", refusal.what);
    drop(first);
    // The release runs on the runtime: poll for it with a deadline.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match l.admit(&p, 0).await {
            Ok(_) => break,
            Err(_) if tokio::time::Instant::now() < deadline => tokio::task::yield_now().await,
            Err(e) => panic!("{e}"),
        }
    }
}

#[tokio::test]
async fn tokens_are_admitted_on_estimates_and_settled_to_actuals() {
    let (l, _) =
        limits("orgs: [{ id: acme, limits: { tokens_per_minute: 1000 }, teams: [{ id: t }] }]");
    let p = member("acme", "t", None);
    let mut first = l.admit(&p, 600).await.unwrap();
    let refusal = limited(l.admit(&p, 600).await);
    assert_eq!(refusal.dimension, "tokens");
    first.settle_tokens(100).await;
    drop(l.admit(&p, 600).await.unwrap());
    let too_big = limited(l.admit(&p, 5000).await);
    assert!(
        too_big.what.contains("this request alone needs 5000"),
        "{}",
        too_big.what
    );
    // Calls that are not model calls do not count tokens.
    drop(l.admit(&p, 0).await.unwrap());
}

#[tokio::test]
async fn concurrent_requests_are_counted_exactly() {
    let (l, _) =
        limits("orgs: [{ id: acme, limits: { requests_per_minute: 50 }, teams: [{ id: t }] }]");
    let l = Arc::new(l);
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let l = l.clone();
            tokio::spawn(async move { l.admit(&member("acme", "t", None), 0).await.is_ok() })
        })
        .collect();
    let mut admitted = 0;
    for t in tasks {
        admitted += usize::from(t.await.unwrap());
    }
    assert_eq!(admitted, 50);
}
