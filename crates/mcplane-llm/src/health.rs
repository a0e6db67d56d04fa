//! Live health of every provider endpoint: latency and error-rate EWMAs (the router's
//! *availability* and observed latency) and a per-endpoint circuit breaker.
//!
//! ## Circuit breaker
//!
//! ```text
//!   closed ──(N consecutive failures, or failure rate ≥ R over the last minute with ≥ 10 calls)──▶ open
//!   open ──(cooldown elapsed; the next call is the one trial)──▶ half-open
//!   half-open ──trial succeeds──▶ closed (counters reset)      half-open ──trial fails──▶ open
//! ```
//!
//! A call takes a [`Permit`] ([`Health::acquire`]) and reports how it went
//! ([`Permit::success`], [`Permit::failure`]). A permit dropped without a report (the client went
//! away, or the failure was the client's own fault) counts for nothing, and if it was the
//! half-open trial, the next call may try again.
//!
//! What counts as a failure is the dispatcher's decision (upstream errors, timeouts, 429s;
//! not a 400 the request caused). The last minute is approximated with two one-minute buckets,
//! the previous one weighted by how much of it still overlaps the last 60 s.

use mcplane_config::CircuitBreakerConfig;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Calls in the last minute before the failure-rate rule applies.
pub const MIN_CALLS_FOR_RATE: f64 = 10.0;
/// Smoothing of the latency EWMA (weight of the newest sample).
const LATENCY_ALPHA: f64 = 0.3;
/// Smoothing of the error-rate EWMA.
const ERROR_ALPHA: f64 = 0.2;
const WINDOW: Duration = Duration::from_secs(60);

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls flow.
    Closed,
    /// Calls are refused until the cooldown ends.
    Open,
    /// The cooldown ended: one trial call may go.
    HalfOpen,
}

impl CircuitState {
    /// Lower-case name for logs and status.
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }
}

/// What the router sees of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EndpointView {
    /// Observed latency EWMA in milliseconds (first token for streams), once there is a sample.
    pub latency_ms: Option<f64>,
    /// Error-rate EWMA, 0 to 1.
    pub error_rate: f64,
    /// Circuit state now (an open circuit whose cooldown ended reads as half-open).
    pub state: CircuitState,
    /// 1 − error rate, or 0 while the circuit refuses calls.
    pub availability: f64,
}

#[derive(Debug)]
struct Slot {
    latency_ms: Option<f64>,
    error_rate: f64,
    consecutive: u32,
    bucket_start: Option<Instant>,
    calls: u32,
    failures: u32,
    prev_calls: u32,
    prev_failures: u32,
    circuit: Circuit,
    ok_total: u64,
    failed_total: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Circuit {
    Closed,
    Open { until: Instant },
    HalfOpen { trial_in_flight: bool },
}

impl Slot {
    fn new() -> Slot {
        Slot {
            latency_ms: None,
            error_rate: 0.0,
            consecutive: 0,
            bucket_start: None,
            calls: 0,
            failures: 0,
            prev_calls: 0,
            prev_failures: 0,
            circuit: Circuit::Closed,
            ok_total: 0,
            failed_total: 0,
        }
    }

    /// Rolls the minute buckets forward to `now`.
    fn roll(&mut self, now: Instant) {
        let start = *self.bucket_start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= WINDOW * 2 {
            self.prev_calls = 0;
            self.prev_failures = 0;
            self.calls = 0;
            self.failures = 0;
            self.bucket_start = Some(now);
        } else if elapsed >= WINDOW {
            self.prev_calls = self.calls;
            self.prev_failures = self.failures;
            self.calls = 0;
            self.failures = 0;
            self.bucket_start = Some(start + WINDOW);
        }
    }

    /// Calls and failures in the last minute (the previous bucket weighted by its overlap).
    fn last_minute(&self, now: Instant) -> (f64, f64) {
        let into = self
            .bucket_start
            .map_or(Duration::ZERO, |s| now.saturating_duration_since(s));
        let weight = 1.0 - (into.as_secs_f64() / WINDOW.as_secs_f64()).min(1.0);
        (
            f64::from(self.calls) + f64::from(self.prev_calls) * weight,
            f64::from(self.failures) + f64::from(self.prev_failures) * weight,
        )
    }

    fn state(&self, now: Instant) -> CircuitState {
        match self.circuit {
            Circuit::Closed => CircuitState::Closed,
            Circuit::Open { until } if now < until => CircuitState::Open,
            Circuit::Open { .. } => CircuitState::HalfOpen,
            Circuit::HalfOpen { trial_in_flight } => {
                if trial_in_flight {
                    CircuitState::Open
                } else {
                    CircuitState::HalfOpen
                }
            }
        }
    }

    fn reset_window(&mut self, now: Instant) {
        self.calls = 0;
        self.failures = 0;
        self.prev_calls = 0;
        self.prev_failures = 0;
        self.bucket_start = Some(now);
    }
}

#[derive(Debug)]
struct Inner {
    slots: Vec<Mutex<Slot>>,
    config: CircuitBreakerConfig,
}

/// The health table: one entry per endpoint slot ([`crate::registry::Endpoint::slot`]).
#[derive(Debug, Clone)]
pub struct Health(Arc<Inner>);

/// Why a call may not go to an endpoint now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// How long until a trial call may go (zero when a trial is already in flight).
    pub retry_in: Duration,
}

/// Leave to make one call; report its outcome.
#[derive(Debug)]
pub struct Permit {
    health: Health,
    slot: usize,
    trial: bool,
    reported: bool,
}

impl Health {
    /// A table of `slots` endpoints.
    pub fn new(slots: usize, config: CircuitBreakerConfig) -> Health {
        Health(Arc::new(Inner {
            slots: (0..slots).map(|_| Mutex::new(Slot::new())).collect(),
            config,
        }))
    }

    fn slot(&self, slot: usize) -> Option<MutexGuard<'_, Slot>> {
        self.0
            .slots
            .get(slot)
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// What the router sees of `slot` now.
    pub fn view(&self, slot: usize, now: Instant) -> EndpointView {
        let Some(s) = self.slot(slot) else {
            return EndpointView {
                latency_ms: None,
                error_rate: 0.0,
                state: CircuitState::Closed,
                availability: 1.0,
            };
        };
        let state = s.state(now);
        EndpointView {
            latency_ms: s.latency_ms,
            error_rate: s.error_rate,
            state,
            availability: if state == CircuitState::Open {
                0.0
            } else {
                1.0 - s.error_rate
            },
        }
    }

    /// Asks to call `slot`. Refused while its circuit is open (or half-open with the trial call
    /// already in flight).
    pub fn acquire(&self, slot: usize, now: Instant) -> Result<Permit, Refused> {
        let mut trial = false;
        if let Some(mut s) = self.slot(slot) {
            match s.circuit {
                Circuit::Closed => {}
                Circuit::Open { until } if now < until => {
                    return Err(Refused {
                        retry_in: until - now,
                    });
                }
                Circuit::Open { .. }
                | Circuit::HalfOpen {
                    trial_in_flight: false,
                } => {
                    s.circuit = Circuit::HalfOpen {
                        trial_in_flight: true,
                    };
                    trial = true;
                }
                Circuit::HalfOpen {
                    trial_in_flight: true,
                } => {
                    return Err(Refused {
                        retry_in: Duration::ZERO,
                    });
                }
            }
        }
        Ok(Permit {
            health: self.clone(),
            slot,
            trial,
            reported: false,
        })
    }

    /// Totals for status pages: (calls that succeeded, calls that failed, circuit state).
    pub fn totals(&self, slot: usize, now: Instant) -> (u64, u64, CircuitState) {
        match self.slot(slot) {
            Some(s) => (s.ok_total, s.failed_total, s.state(now)),
            None => (0, 0, CircuitState::Closed),
        }
    }

    fn record(&self, slot: usize, trial: bool, outcome: Outcome, now: Instant) {
        let config = self.0.config;
        let Some(mut s) = self.slot(slot) else {
            return;
        };
        s.roll(now);
        match outcome {
            Outcome::Neutral => {
                if trial {
                    s.circuit = Circuit::HalfOpen {
                        trial_in_flight: false,
                    };
                }
            }
            Outcome::Success(latency) => {
                let ms = latency.as_secs_f64() * 1000.0;
                s.latency_ms = Some(match s.latency_ms {
                    Some(prev) => prev + LATENCY_ALPHA * (ms - prev),
                    None => ms,
                });
                s.error_rate *= 1.0 - ERROR_ALPHA;
                s.consecutive = 0;
                s.calls += 1;
                s.ok_total += 1;
                if trial || !matches!(s.circuit, Circuit::Closed) {
                    s.circuit = Circuit::Closed;
                    s.reset_window(now);
                }
            }
            Outcome::Failure => {
                s.error_rate += ERROR_ALPHA * (1.0 - s.error_rate);
                s.consecutive += 1;
                s.calls += 1;
                s.failures += 1;
                s.failed_total += 1;
                let (calls, failures) = s.last_minute(now);
                let open = trial
                    || s.consecutive >= config.consecutive_failures
                    || (calls >= MIN_CALLS_FOR_RATE && failures / calls >= config.error_rate);
                if open && !matches!(s.circuit, Circuit::Open { until } if until > now) {
                    s.circuit = Circuit::Open {
                        until: now + config.cooldown,
                    };
                    tracing::warn!(
                        slot,
                        consecutive_failures = s.consecutive,
                        cooldown_ms = config.cooldown.as_millis() as u64,
                        "circuit opened for a model endpoint"
                    );
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Success(Duration),
    Failure,
    Neutral,
}

impl Permit {
    /// Whether this call is the half-open trial.
    pub fn is_trial(&self) -> bool {
        self.trial
    }

    /// The call succeeded; `latency` is to the whole answer (to the first event for streams).
    pub fn success(self, latency: Duration) {
        self.success_at(latency, Instant::now());
    }

    /// [`Permit::success`] at a given time (tests).
    pub fn success_at(mut self, latency: Duration, now: Instant) {
        self.reported = true;
        self.health
            .record(self.slot, self.trial, Outcome::Success(latency), now);
    }

    /// The call failed on the provider's side.
    pub fn failure(self) {
        self.failure_at(Instant::now());
    }

    /// [`Permit::failure`] at a given time (tests).
    pub fn failure_at(mut self, now: Instant) {
        self.reported = true;
        self.health
            .record(self.slot, self.trial, Outcome::Failure, now);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.reported {
            self.health
                .record(self.slot, self.trial, Outcome::Neutral, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(consecutive: u32, rate: f64) -> Health {
        Health::new(
            2,
            CircuitBreakerConfig {
                consecutive_failures: consecutive,
                error_rate: rate,
                cooldown: Duration::from_secs(10),
            },
        )
    }

    #[test]
    fn consecutive_failures_open_then_a_trial_closes() {
        let h = health(3, 1.0);
        let t0 = Instant::now();
        for _ in 0..2 {
            h.acquire(0, t0).unwrap().failure_at(t0);
        }
        assert_eq!(h.view(0, t0).state, CircuitState::Closed);
        h.acquire(0, t0).unwrap().failure_at(t0);
        assert_eq!(h.view(0, t0).state, CircuitState::Open);
        assert_eq!(h.view(0, t0).availability, 0.0);
        let refused = h.acquire(0, t0 + Duration::from_secs(1)).unwrap_err();
        assert_eq!(refused.retry_in, Duration::from_secs(9));
        // The other slot is unaffected.
        assert!(h.acquire(1, t0).is_ok());
        // After the cooldown one trial goes; a second caller is refused meanwhile.
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(h.view(0, t1).state, CircuitState::HalfOpen);
        let trial = h.acquire(0, t1).unwrap();
        assert!(trial.is_trial());
        assert!(h.acquire(0, t1).is_err());
        trial.success_at(Duration::from_millis(100), t1);
        assert_eq!(h.view(0, t1).state, CircuitState::Closed);
        assert_eq!(h.view(0, t1).latency_ms, Some(100.0));
        assert_eq!(h.totals(0, t1), (1, 3, CircuitState::Closed));
    }

    #[test]
    fn a_failed_trial_reopens_and_an_abandoned_one_frees_the_slot() {
        let h = health(1, 1.0);
        let t0 = Instant::now();
        h.acquire(0, t0).unwrap().failure_at(t0);
        let t1 = t0 + Duration::from_secs(10);
        drop(h.acquire(0, t1).unwrap());
        let trial = h.acquire(0, t1).unwrap();
        assert!(trial.is_trial());
        trial.failure_at(t1);
        assert_eq!(h.view(0, t1).state, CircuitState::Open);
        assert!(h.acquire(0, t1 + Duration::from_secs(9)).is_err());
        assert!(h.acquire(0, t1 + Duration::from_secs(10)).is_ok());
    }

    #[test]
    fn failure_rate_opens_once_there_are_enough_calls() {
        let h = health(100, 0.5);
        let t0 = Instant::now();
        for i in 0..9 {
            let p = h.acquire(0, t0).unwrap();
            if i % 2 == 0 {
                p.failure_at(t0);
            } else {
                p.success_at(Duration::from_millis(10), t0);
            }
        }
        // 5 of 9 failed, but fewer than 10 calls.
        assert_eq!(h.view(0, t0).state, CircuitState::Closed);
        h.acquire(0, t0).unwrap().failure_at(t0);
        assert_eq!(h.view(0, t0).state, CircuitState::Open);
    }

    #[test]
    fn old_failures_age_out_of_the_window() {
        let h = health(100, 0.5);
        let t0 = Instant::now();
        for _ in 0..9 {
            h.acquire(0, t0).unwrap().failure_at(t0);
        }
        let later = t0 + Duration::from_secs(125);
        h.acquire(0, later).unwrap().failure_at(later);
        assert_eq!(h.view(0, later).state, CircuitState::Closed);
    }

    #[test]
    fn ewmas_move_toward_samples() {
        let h = health(100, 1.0);
        let t0 = Instant::now();
        h.acquire(0, t0)
            .unwrap()
            .success_at(Duration::from_millis(100), t0);
        h.acquire(0, t0)
            .unwrap()
            .success_at(Duration::from_millis(200), t0);
        let v = h.view(0, t0);
        assert!((v.latency_ms.unwrap() - 130.0).abs() < 1e-9);
        h.acquire(0, t0).unwrap().failure_at(t0);
        let v = h.view(0, t0);
        assert!((v.error_rate - 0.2).abs() < 1e-9);
        assert!((v.availability - 0.8).abs() < 1e-9);
    }
}
