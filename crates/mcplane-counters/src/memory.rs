//! Counters in this process's memory: exact and atomic (one lock for a whole admission), for a
//! single replica. Windows are fixed and aligned to the clock (minute `n` is
//! `[n·60 s, (n+1)·60 s)` since the Unix epoch), as Redis-backed counters count them.

use async_trait::async_trait;
use mcplane_core::limits::{Admission, Charge, Counters, CountersError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Time since the Unix epoch (injectable for tests).
pub type Clock = Arc<dyn Fn() -> Duration + Send + Sync>;

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The window the count belongs to (`None` for a gauge).
    window: Option<u64>,
    count: u64,
}

/// See the module docs.
pub struct MemoryCounters {
    entries: Mutex<HashMap<String, Entry>>,
    clock: Clock,
}

impl Default for MemoryCounters {
    fn default() -> Self {
        MemoryCounters::with_clock(Arc::new(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
        }))
    }
}

/// Sweep stale windows once the map holds this many entries.
const SWEEP_AT: usize = 10_000;

impl MemoryCounters {
    /// Counters reading time from `clock`.
    pub fn with_clock(clock: Clock) -> MemoryCounters {
        MemoryCounters {
            entries: Mutex::new(HashMap::new()),
            clock,
        }
    }

    fn window_of(&self, window: Duration) -> (u64, Duration) {
        let now = (self.clock)();
        let len = window.as_millis().max(1) as u64;
        let ms = now.as_millis() as u64;
        let index = ms / len;
        (index, Duration::from_millis((index + 1) * len - ms))
    }
}

#[async_trait]
impl Counters for MemoryCounters {
    async fn admit(&self, charges: &[Charge]) -> Result<Admission, CountersError> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let mut after = Vec::with_capacity(charges.len());
        for (index, c) in charges.iter().enumerate() {
            let (window, reset_in) = match c.window {
                Some(w) => {
                    let (i, reset) = self.window_of(w);
                    (Some(i), Some(reset))
                }
                None => (None, None),
            };
            let count = entries
                .get(&c.key)
                .filter(|e| e.window == window)
                .map_or(0, |e| e.count);
            if count.saturating_add(c.amount) > c.limit {
                return Ok(Admission::Refused {
                    index,
                    count,
                    reset_in,
                });
            }
            after.push((window, count + c.amount));
        }
        for (c, (window, count)) in charges.iter().zip(&after) {
            entries.insert(
                c.key.clone(),
                Entry {
                    window: *window,
                    count: *count,
                },
            );
        }
        if entries.len() > SWEEP_AT {
            let minute = self.window_of(Duration::from_secs(60)).0;
            entries.retain(|_, e| e.window.is_none_or(|w| w + 1 >= minute) || e.count > 0);
        }
        Ok(Admission::Admitted(
            after.into_iter().map(|(_, c)| c).collect(),
        ))
    }

    async fn adjust(
        &self,
        key: &str,
        window: Option<Duration>,
        delta: i64,
    ) -> Result<(), CountersError> {
        let index = window.map(|w| self.window_of(w).0);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let e = entries.entry(key.to_string()).or_insert(Entry {
            window: index,
            count: 0,
        });
        if e.window != index {
            // The window the charge was made in is over: nothing left to correct.
            return Ok(());
        }
        e.count = e.count.saturating_add_signed(delta);
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), CountersError> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = entries.get_mut(key) {
            e.count = e.count.saturating_sub(1);
        }
        Ok(())
    }
}
