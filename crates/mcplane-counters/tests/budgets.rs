//! Budgets counted in memory and in Redis shared by two replicas: exactly as many fixed-cost
//! calls as the budget allows succeed under concurrency, every level of the tenant tree is
//! charged and the tightest decides, settling corrects every level to the micro-dollar, an
//! unsettled reservation is given back, a new month starts from zero, and `degrade` names its
//! fallback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcplane_config::BudgetSpec;
use mcplane_core::budgets::{BudgetError, Budgets};
use mcplane_core::limits::Counters;
use mcplane_counters::{MemoryCounters, RedisCounters};
use mcplane_testkit::redis::RedisServer;
use mcplane_types::{MicroUsd, Principal, Tenancy};
use std::sync::Arc;
use std::time::Duration;

/// 2026-11-23 12:00 UTC.
const NOW: Duration = Duration::from_secs(1_795_435_200);

fn budgets(yaml: &str, counters: Arc<dyn Counters>) -> Budgets {
    let specs: Vec<BudgetSpec> = serde_yaml_ng::from_str(yaml).unwrap();
    Budgets::new(&specs, counters)
}

fn ada() -> Principal {
    let mut p = Principal::anonymous();
    p.id = "ada".into();
    p.tenancy = Tenancy {
        org: Some("acme".into()),
        team: Some("payments".into()),
        project: Some("bot".into()),
    };
    p
}

const FIXED: MicroUsd = MicroUsd::from_micros(20_000); // $0.02 a call

async fn exactly_fifty(replicas: Vec<Arc<Budgets>>) {
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let b = replicas[i % replicas.len()].clone();
            tokio::spawn(async move {
                match b.reserve(&ada(), FIXED, NOW).await {
                    Ok(r) => {
                        r.settle(FIXED).await;
                        true
                    }
                    Err(BudgetError::Exceeded { .. }) => false,
                    Err(e) => panic!("{e}"),
                }
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        ok += usize::from(t.await.unwrap());
    }
    assert_eq!(ok, 50, "a $1 monthly budget at $0.02 a call");
}

const ONE_DOLLAR: &str = "- { scope: 'team:payments', monthly_usd: 1.0 }";

#[tokio::test]
async fn exactly_the_budget_under_concurrency_in_memory() {
    let counters: Arc<dyn Counters> = Arc::new(MemoryCounters::default());
    exactly_fifty(vec![Arc::new(budgets(ONE_DOLLAR, counters))]).await;
}

#[tokio::test]
async fn exactly_the_budget_across_two_replicas_on_redis() {
    let Some(redis) = RedisServer::start().unwrap() else {
        return;
    };
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let c: Arc<dyn Counters> =
            Arc::new(RedisCounters::connect(&redis.url(), "b:").await.unwrap());
        replicas.push(Arc::new(budgets(ONE_DOLLAR, c)));
    }
    exactly_fifty(replicas).await;
}

#[tokio::test]
async fn every_level_is_charged_the_tightest_decides_and_settling_is_exact() {
    let b = budgets(
        "- { scope: 'org:acme', monthly_usd: 100, daily_usd: 10 }\n\
         - { scope: 'team:payments', monthly_usd: 5 }\n\
         - { scope: 'project:bot', monthly_usd: 50 }\n\
         - { scope: 'user:ada', daily_usd: 1, on_limit: degrade, degrade_to: cheap }\n",
        Arc::new(MemoryCounters::default()),
    );
    // Reserve 0.6, settle to 0.123456: every level now holds exactly 0.123456.
    let r = b
        .reserve(&ada(), MicroUsd::from_micros(600_000), NOW)
        .await
        .unwrap();
    r.settle(MicroUsd::from_micros(123_456)).await;
    // The user's $1/day is the tightest: 0.123456 + 0.9 > 1.
    match b.reserve(&ada(), MicroUsd::from_micros(900_000), NOW).await {
        Err(BudgetError::Exceeded {
            scope,
            window,
            spent,
            limit,
            degrade_to,
            ..
        }) => {
            assert_eq!(scope, "user:ada");
            assert_eq!(window, "day 2026-11-23");
            assert_eq!(spent, MicroUsd::from_micros(123_456));
            assert_eq!(limit, MicroUsd::from_micros(1_000_000));
            assert_eq!(degrade_to.as_deref(), Some("cheap"));
        }
        other => panic!("{other:?}"),
    }
    // Refused means nothing was charged anywhere: 0.876544 still fits exactly.
    let r = b
        .reserve(&ada(), MicroUsd::from_micros(876_544), NOW)
        .await
        .unwrap();
    // Dropped without settling (the call never happened): given back.
    drop(r);
    tokio::task::yield_now().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match b.reserve(&ada(), MicroUsd::from_micros(876_544), NOW).await {
            Ok(r) => {
                r.settle(MicroUsd::from_micros(876_544)).await;
                break;
            }
            Err(_) if tokio::time::Instant::now() < deadline => tokio::task::yield_now().await,
            Err(e) => panic!("{e}"),
        }
    }
    // The day is full to the micro-dollar; tomorrow starts again.
    assert!(
        b.reserve(&ada(), MicroUsd::from_micros(1), NOW)
            .await
            .is_err()
    );
    let tomorrow = NOW + Duration::from_secs(86_400);
    b.reserve(&ada(), MicroUsd::from_micros(1), tomorrow)
        .await
        .unwrap()
        .settle(MicroUsd::from_micros(1))
        .await;
    // Someone outside every budget is not charged.
    let mut other = Principal::anonymous();
    other.id = "zed".into();
    b.reserve(&other, MicroUsd::from_micros(10_000_000_000), NOW)
        .await
        .unwrap()
        .settle(MicroUsd::ZERO)
        .await;
}
