//! Budgets: spending limits per org, team, project or user, per UTC day, UTC month or fixed
//! window, in integer micro-dollars.
//!
//! A model call reserves its estimated cost at every budget and window that applies to its
//! principal, all or nothing, through the same [`Counters`] port as the rate limits — so
//! concurrent calls can never overspend, on one replica (in memory) or several (Redis). When the
//! call ends its [`Reservation`] is settled to the actual cost (a call that fails or is dropped
//! before settling gives its reservation back). Each alert threshold fires once per window.
//!
//! Each window's spend is a counter named after its period (`budget:team:payments:m:2026-11`),
//! so a new day or month starts at zero by itself.

use crate::limits::{Admission, Charge, Counters, CountersError};
use chrono::{Datelike, TimeZone, Utc};
use mcplane_config::{BudgetSpec, OnLimit};
use mcplane_types::{MicroUsd, Principal};
use std::sync::Arc;
use std::time::Duration;

/// One limit of one budget.
#[derive(Debug, Clone)]
struct Window {
    /// `d` (UTC day), `m` (UTC month) or the length of a fixed window.
    kind: WindowKind,
    limit: MicroUsd,
}

#[derive(Debug, Clone, Copy)]
enum WindowKind {
    Day,
    Month,
    Every(Duration),
}

/// A budget as configured.
#[derive(Debug, Clone)]
struct Budget {
    scope: String,
    windows: Vec<Window>,
    alerts: Vec<f64>,
    on_limit: OnLimit,
    degrade_to: Option<String>,
}

/// Why a call cannot be paid for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    /// A budget would be exceeded.
    #[error(
        "budget {scope} ({window}) would be exceeded: {spent} of {limit} USD spent or reserved, this call needs up to {needed} USD"
    )]
    Exceeded {
        /// `team:payments`.
        scope: String,
        /// `day 2026-11-23`, `month 2026-11`, `7d window`.
        window: String,
        /// Spent and reserved so far.
        spent: MicroUsd,
        /// The limit.
        limit: MicroUsd,
        /// This call's estimate.
        needed: MicroUsd,
        /// The budget's `degrade_to`, when it says `on_limit: degrade`.
        degrade_to: Option<String>,
    },
    /// The counters are out of reach (budgets fail closed).
    #[error("{0}")]
    Unavailable(CountersError),
}

/// The configured budgets; see the module docs.
pub struct Budgets {
    budgets: Vec<Budget>,
    counters: Arc<dyn Counters>,
}

impl std::fmt::Debug for Budgets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budgets")
            .field(
                "scopes",
                &self.budgets.iter().map(|b| &b.scope).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A call's reserved spend: [`Reservation::settle`] it with the actual cost; dropped unsettled,
/// it gives the reservation back.
#[must_use = "settle the reservation with the call's actual cost"]
pub struct Reservation {
    counters: Arc<dyn Counters>,
    keys: Vec<String>,
    reserved: MicroUsd,
    settled: bool,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("keys", &self.keys)
            .field("reserved", &self.reserved)
            .finish()
    }
}

impl Reservation {
    fn none(counters: Arc<dyn Counters>) -> Reservation {
        Reservation {
            counters,
            keys: Vec::new(),
            reserved: MicroUsd::ZERO,
            settled: true,
        }
    }

    /// What was reserved.
    pub fn reserved(&self) -> MicroUsd {
        self.reserved
    }

    /// Corrects every reserved counter to the call's `actual` cost.
    pub async fn settle(mut self, actual: MicroUsd) {
        self.settled = true;
        adjust_all(
            &self.counters,
            &self.keys,
            actual.micros() - self.reserved.micros(),
        )
        .await;
    }
}

async fn adjust_all(counters: &Arc<dyn Counters>, keys: &[String], delta: i64) {
    if delta == 0 {
        return;
    }
    for key in keys {
        if let Err(e) = counters.adjust(key, None, delta).await {
            tracing::warn!(key, error = %e, "could not settle a budget reservation");
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.settled || self.keys.is_empty() {
            return;
        }
        let counters = self.counters.clone();
        let keys = std::mem::take(&mut self.keys);
        let back = -self.reserved.micros();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move { adjust_all(&counters, &keys, back).await });
        }
    }
}

fn micros(usd: f64) -> MicroUsd {
    MicroUsd::from_usd(usd).unwrap_or(MicroUsd::MAX)
}

impl Budgets {
    /// The budgets of `specs`, counted in `counters`.
    pub fn new(specs: &[BudgetSpec], counters: Arc<dyn Counters>) -> Budgets {
        let budgets = specs
            .iter()
            .map(|b| {
                let mut windows = Vec::new();
                if let Some(d) = b.daily_usd {
                    windows.push(Window {
                        kind: WindowKind::Day,
                        limit: micros(d),
                    });
                }
                if let Some(m) = b.monthly_usd {
                    windows.push(Window {
                        kind: WindowKind::Month,
                        limit: micros(m),
                    });
                }
                for w in b.windows.iter().flatten() {
                    windows.push(Window {
                        kind: WindowKind::Every(w.every.0),
                        limit: micros(w.usd),
                    });
                }
                Budget {
                    scope: b.scope.clone(),
                    windows,
                    alerts: b
                        .alert_at
                        .as_ref()
                        .map(|a| a.thresholds().to_vec())
                        .unwrap_or_default(),
                    on_limit: b.on_limit.unwrap_or_default(),
                    degrade_to: b.degrade_to.clone(),
                }
            })
            .collect();
        Budgets { budgets, counters }
    }

    /// Whether any budget is configured.
    pub fn is_empty(&self) -> bool {
        self.budgets.is_empty()
    }

    /// The budgets that charge `principal`: its user, project, team and org.
    fn applying(&self, principal: &Principal) -> Vec<&Budget> {
        let t = &principal.tenancy;
        let scopes = [
            Some(format!("user:{}", principal.id)),
            t.project.as_ref().map(|p| format!("project:{p}")),
            t.team.as_ref().map(|p| format!("team:{p}")),
            t.org.as_ref().map(|p| format!("org:{p}")),
        ];
        self.budgets
            .iter()
            .filter(|b| scopes.iter().flatten().any(|s| *s == b.scope))
            .collect()
    }

    /// Reserves `estimate` for `principal` at every budget and window that applies, or says
    /// which would be exceeded. `now` is the time since the Unix epoch.
    pub async fn reserve(
        &self,
        principal: &Principal,
        estimate: MicroUsd,
        now: Duration,
    ) -> Result<Reservation, BudgetError> {
        let applying = self.applying(principal);
        if applying.is_empty() {
            return Ok(Reservation::none(self.counters.clone()));
        }
        let amount = u64::try_from(estimate.micros()).unwrap_or(0);
        let mut charges = Vec::new();
        let mut meta = Vec::new();
        for b in applying {
            for w in &b.windows {
                let (period, title, ttl) = period(w.kind, now);
                charges.push(Charge {
                    key: format!("budget:{}:{period}", b.scope),
                    amount,
                    limit: u64::try_from(w.limit.micros()).unwrap_or(0),
                    window: None,
                    ttl: Some(ttl),
                });
                meta.push((b, w, title));
            }
        }
        match self.counters.admit(&charges).await {
            Ok(Admission::Admitted(counts)) => {
                for ((b, w, title), count) in meta.iter().zip(&counts) {
                    self.alert(b, w, title, *count, amount).await;
                }
                Ok(Reservation {
                    counters: self.counters.clone(),
                    keys: charges.into_iter().map(|c| c.key).collect(),
                    reserved: estimate,
                    settled: false,
                })
            }
            Ok(Admission::Refused { index, count, .. }) => {
                let (b, w, title) = &meta[index];
                Err(BudgetError::Exceeded {
                    scope: b.scope.clone(),
                    window: title.clone(),
                    spent: MicroUsd::from_micros(i64::try_from(count).unwrap_or(i64::MAX)),
                    limit: w.limit,
                    needed: estimate,
                    degrade_to: (b.on_limit == OnLimit::Degrade)
                        .then(|| b.degrade_to.clone())
                        .flatten(),
                })
            }
            Err(e) => Err(BudgetError::Unavailable(e)),
        }
    }

    /// Every budget window in force at `now`: (scope kind, scope id, window start in ms since
    /// the epoch, counter key) — what [`Budgets::seed`] rebuilds after a restart.
    pub fn current_windows(&self, now: Duration) -> Vec<(String, String, i64, String)> {
        let mut out = Vec::new();
        for b in &self.budgets {
            let Some((kind, id)) = b.scope.split_once(':') else {
                continue;
            };
            for w in &b.windows {
                let (period, _, _) = period(w.kind, now);
                out.push((
                    kind.to_string(),
                    id.to_string(),
                    window_start_ms(w.kind, now),
                    format!("budget:{}:{period}", b.scope),
                ));
            }
        }
        out
    }

    /// Adds `spent` micro-dollars to a window's counter (after a restart, from the store's
    /// records; only for counters that do not outlive the process).
    pub async fn seed(&self, key: &str, spent: i64) -> Result<(), CountersError> {
        if spent <= 0 {
            return Ok(());
        }
        self.counters.adjust(key, None, spent).await
    }

    /// Fires each threshold the count crossed with this reservation, once per window.
    async fn alert(&self, b: &Budget, w: &Window, title: &str, count: u64, amount: u64) {
        let limit = w.limit.micros().max(1) as f64;
        for t in &b.alerts {
            let mark = (limit * t).ceil() as u64;
            if count >= mark && count.saturating_sub(amount) < mark {
                // The counters make sure only one reservation across replicas reports it.
                let once = Charge {
                    key: format!("alert:{}:{title}:{t}", b.scope),
                    amount: 1,
                    limit: 1,
                    window: None,
                    ttl: Some(Duration::from_secs(40 * 86_400)),
                };
                if let Ok(Admission::Admitted(_)) = self.counters.admit(&[once]).await {
                    tracing::warn!(
                        target: "mcplane::budget",
                        budget = %b.scope,
                        window = title,
                        threshold = t,
                        spent_usd = count as f64 / 1e6,
                        limit_usd = limit / 1e6,
                        "budget alert: {:.0}% of {} ({title}) reserved or spent",
                        t * 100.0,
                        b.scope
                    );
                }
            }
        }
    }
}

/// The period a window is in at `now`: its counter name part, a title, and how long to keep it.
fn period(kind: WindowKind, now: Duration) -> (String, String, Duration) {
    let at = Utc
        .timestamp_opt(i64::try_from(now.as_secs()).unwrap_or(0), 0)
        .single()
        .unwrap_or_default();
    match kind {
        WindowKind::Day => {
            let d = at.format("%Y-%m-%d").to_string();
            (
                format!("d:{d}"),
                format!("day {d}"),
                Duration::from_secs(3 * 86_400),
            )
        }
        WindowKind::Month => {
            let m = format!("{:04}-{:02}", at.year(), at.month());
            (
                format!("m:{m}"),
                format!("month {m}"),
                Duration::from_secs(62 * 86_400),
            )
        }
        WindowKind::Every(len) => {
            let secs = len.as_secs().max(1);
            let n = now.as_secs() / secs;
            (
                format!("w{secs}:{n}"),
                format!("{secs}s window #{n}"),
                len.saturating_mul(2),
            )
        }
    }
}

/// When the window containing `now` began, in milliseconds since the epoch.
fn window_start_ms(kind: WindowKind, now: Duration) -> i64 {
    let secs = i64::try_from(now.as_secs()).unwrap_or(0);
    let start = match kind {
        WindowKind::Day => secs - secs.rem_euclid(86_400),
        WindowKind::Month => Utc
            .timestamp_opt(secs, 0)
            .single()
            .and_then(|at| {
                Utc.with_ymd_and_hms(at.year(), at.month(), 1, 0, 0, 0)
                    .single()
            })
            .map_or(0, |m| m.timestamp()),
        WindowKind::Every(len) => {
            let l = i64::try_from(len.as_secs().max(1)).unwrap_or(i64::MAX);
            secs - secs.rem_euclid(l)
        }
    };
    start.saturating_mul(1000)
}
