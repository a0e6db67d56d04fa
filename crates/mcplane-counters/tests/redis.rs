//! Rate limits counted in a real Redis shared by two replicas: exact across replicas under
//! concurrency, all-or-nothing across levels, tokens settled, in-flight counts released, and
//! Redis going away (fail closed by default, fail open when configured).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcplane_config::TenantsSpec;
use mcplane_core::limits::{LimitError, Limits};
use mcplane_counters::RedisCounters;
use mcplane_testkit::redis::RedisServer;
use mcplane_types::{Principal, Tenancy};
use std::sync::Arc;
use std::time::Duration;

fn member(team: &str) -> Principal {
    let mut p = Principal::anonymous();
    p.tenancy = Tenancy {
        org: Some("acme".into()),
        team: Some(team.into()),
        project: None,
    };
    p
}

async fn replica(redis: &RedisServer, yaml: &str, fail_open: bool) -> Limits {
    let tenants: TenantsSpec = serde_yaml_ng::from_str(yaml).unwrap();
    let counters = RedisCounters::connect(&redis.url(), "test:").await.unwrap();
    Limits::new(Some(&tenants), Arc::new(counters), fail_open)
}

const TENANTS: &str = "orgs: [{ id: acme, limits: { requests_per_minute: 50, tokens_per_minute: 1000 }, teams: [{ id: a, limits: { requests_per_minute: 100, concurrent: 2 } }, { id: b }] }]";

#[tokio::test]
async fn two_replicas_admit_exactly_the_limit_between_them() {
    let Some(redis) = RedisServer::start().unwrap() else {
        return;
    };
    let a = Arc::new(replica(&redis, TENANTS, false).await);
    let b = Arc::new(replica(&redis, TENANTS, false).await);
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let l = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { l.admit(&member("b")).await.is_ok() })
        })
        .collect();
    let mut admitted = 0;
    for t in tasks {
        admitted += usize::from(t.await.unwrap());
    }
    assert_eq!(admitted, 50);
    match b.admit(&member("b")).await {
        Err(LimitError::Limited(l)) => {
            assert_eq!(l.what, "requests per minute of org acme (50)");
            assert!(l.retry_after <= Duration::from_secs(60) && l.retry_after > Duration::ZERO);
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn in_flight_tokens_and_levels_across_replicas() {
    let Some(redis) = RedisServer::start().unwrap() else {
        return;
    };
    let a = replica(&redis, TENANTS, false).await;
    let b = replica(&redis, TENANTS, false).await;
    let first = a.admit(&member("a")).await.unwrap();
    let _second = b.admit(&member("a")).await.unwrap();
    assert!(
        matches!(a.admit(&member("a")).await, Err(LimitError::Limited(l)) if l.dimension == "concurrent")
    );
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while b.admit(&member("a")).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the in-flight count was never released"
        );
        tokio::task::yield_now().await;
    }
    // Tokens: admitted on the estimate, corrected to the actual count.
    let mut big = a.admit_tokens(&member("b"), 900).await.unwrap();
    assert!(
        matches!(b.admit_tokens(&member("b"), 200).await, Err(LimitError::Limited(l)) if l.dimension == "tokens")
    );
    big.settle_tokens(100).await;
    drop(b.admit_tokens(&member("b"), 200).await.unwrap());
}

#[tokio::test]
async fn redis_going_away_fails_closed_unless_configured_open() {
    let Some(mut redis) = RedisServer::start().unwrap() else {
        return;
    };
    let closed = replica(&redis, TENANTS, false).await;
    let open = replica(&redis, TENANTS, true).await;
    drop(closed.admit(&member("b")).await.unwrap());
    redis.stop();
    match closed.admit(&member("b")).await {
        Err(LimitError::Unavailable(e)) => assert!(e.to_string().contains("redis"), "{e}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
    drop(open.admit(&member("b")).await.unwrap());
    // Nobody in a limited level: no counting, no Redis needed.
    let mut outsider = Principal::anonymous();
    outsider.tenancy.org = Some("other".into());
    drop(closed.admit(&outsider).await.unwrap());
}
