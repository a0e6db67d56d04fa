//! Each upstream's lists, fetched once however many ask, and announced changes, coalesced.
//!
//! [`ListCache`] keeps one slot per (upstream, [`ListKind`]): the list last fetched (valid for
//! the upstream connection it came from) and the fetch in flight. Callers that miss share that
//! one fetch, so a `list_changed` followed by every client re-listing costs the upstream one
//! request, not one per client. A change announced while a fetch is in flight bumps the slot's
//! version: the callers already waiting get the result they asked for, but it is not cached, and
//! callers arriving after the change start a fresh fetch, so a stale list never outlives a change.
//!
//! [`Coalescer`] throttles the `list_changed` notifications mcplane passes on to its clients: the
//! first change of a kind goes out at once, further changes within [`COALESCE_WINDOW`] become a
//! single notification at the end of the window. An upstream that storms `list_changed` thus
//! costs each client a few notifications per second (and so a few re-lists), while the cache is
//! invalidated at every change so whatever a client lists is current.

use super::catalog::{Fetched, ListKind};
use crate::upstream::UpstreamError;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::OnceCell;
use tokio::time::Instant;

/// Changes of one kind announced within this window after a notification become one
/// notification at its end.
pub const COALESCE_WINDOW: Duration = Duration::from_millis(200);

type Outcome = Result<Arc<Fetched>, UpstreamError>;

/// A fetch in flight, shared by every caller that missed while it ran.
struct Flight {
    version: u64,
    generation: u64,
    result: Arc<OnceCell<Outcome>>,
}

struct Cached {
    /// The upstream connection generation it was fetched on.
    generation: u64,
    fetched_at: Instant,
    fetched: Arc<Fetched>,
}

#[derive(Default)]
struct Slot {
    /// Bumped by every announced change.
    version: u64,
    cached: Option<Cached>,
    flight: Option<Flight>,
}

/// Upstream lists by (upstream index, kind); see the module docs.
#[derive(Default)]
pub struct ListCache {
    slots: Mutex<HashMap<(usize, ListKind), Slot>>,
}

impl ListCache {
    fn slots(&self) -> MutexGuard<'_, HashMap<(usize, ListKind), Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The list of `kind` of upstream `i` on connection `generation`: cached (if younger than
    /// `ttl`, when given), or joined to the fetch in flight, or fetched with `fetch`.
    pub async fn get<F, Fut>(
        &self,
        (i, kind): (usize, ListKind),
        generation: u64,
        ttl: Option<Duration>,
        fetch: F,
    ) -> Result<Arc<Fetched>, UpstreamError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Fetched, UpstreamError>>,
    {
        let (version, cell) = {
            let mut slots = self.slots();
            let slot = slots.entry((i, kind)).or_default();
            if let Some(c) = &slot.cached
                && c.generation == generation
                && ttl.is_none_or(|ttl| c.fetched_at.elapsed() < ttl)
            {
                return Ok(c.fetched.clone());
            }
            match &slot.flight {
                Some(f) if f.version == slot.version && f.generation == generation => {
                    (f.version, f.result.clone())
                }
                _ => {
                    let cell = Arc::new(OnceCell::new());
                    slot.flight = Some(Flight {
                        version: slot.version,
                        generation,
                        result: cell.clone(),
                    });
                    (slot.version, cell)
                }
            }
        };
        // If the caller running `fetch` goes away, a waiting caller runs its own.
        let started = Instant::now();
        let outcome = cell
            .get_or_init(|| async { fetch().await.map(Arc::new) })
            .await
            .clone();
        let mut slots = self.slots();
        if let Some(slot) = slots.get_mut(&(i, kind)) {
            if slot
                .flight
                .as_ref()
                .is_some_and(|f| Arc::ptr_eq(&f.result, &cell))
            {
                slot.flight = None;
            }
            if let Ok(fetched) = &outcome
                && slot.version == version
            {
                slot.cached = Some(Cached {
                    generation,
                    fetched_at: started,
                    fetched: fetched.clone(),
                });
            }
        }
        outcome
    }

    /// Forgets upstream `i`'s list of `kind`: it changed.
    pub fn invalidate(&self, i: usize, kind: ListKind) {
        let mut slots = self.slots();
        let slot = slots.entry((i, kind)).or_default();
        slot.version += 1;
        slot.cached = None;
    }
}

#[derive(Clone, Copy)]
struct Window {
    opened: Instant,
    /// A notification is due at the end of the window.
    trailing: bool,
}

/// Coalesces announcements by key; see the module docs.
#[derive(Default)]
pub struct Coalescer {
    windows: Mutex<HashMap<&'static str, Window>>,
}

impl Coalescer {
    /// Runs `announce` now if nothing was announced under `key` in the last [`COALESCE_WINDOW`];
    /// otherwise once at the end of that window, however many calls arrive meanwhile.
    pub fn announce(self: &Arc<Self>, key: &'static str, announce: impl FnOnce() + Send + 'static) {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        match windows.get_mut(key) {
            Some(w) if now < w.opened + COALESCE_WINDOW => {
                if w.trailing {
                    return;
                }
                w.trailing = true;
                let at = w.opened + COALESCE_WINDOW;
                drop(windows);
                let this = self.clone();
                tokio::spawn(async move {
                    tokio::time::sleep_until(at).await;
                    if let Ok(mut windows) = this.windows.lock() {
                        windows.insert(
                            key,
                            Window {
                                opened: Instant::now(),
                                trailing: false,
                            },
                        );
                    }
                    announce();
                });
            }
            _ => {
                windows.insert(
                    key,
                    Window {
                        opened: now,
                        trailing: false,
                    },
                );
                drop(windows);
                announce();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn list(name: &str) -> Fetched {
        Fetched {
            pages: vec![vec![json!({ "name": name })]],
        }
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_fetch() {
        let cache = Arc::new(ListCache::default());
        let fetches = Arc::new(AtomicUsize::new(0));
        let (go, gate) = tokio::sync::watch::channel(false);
        let mut callers = Vec::new();
        for _ in 0..50 {
            let (cache, fetches, mut gate) = (cache.clone(), fetches.clone(), gate.clone());
            callers.push(tokio::spawn(async move {
                cache
                    .get((0, ListKind::Tools), 1, None, || async move {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        let _ = gate.wait_for(|open| *open).await;
                        Ok(list("a"))
                    })
                    .await
            }));
        }
        tokio::task::yield_now().await;
        go.send(true).unwrap();
        for c in callers {
            assert_eq!(c.await.unwrap().unwrap().pages[0][0]["name"], "a");
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        // Cached now: no fetch at all.
        let again = cache
            .get((0, ListKind::Tools), 1, None, || async { panic!("cached") })
            .await
            .unwrap();
        assert_eq!(again.pages[0][0]["name"], "a");
    }

    #[tokio::test]
    async fn a_change_during_a_fetch_is_never_hidden_by_its_result() {
        let cache = Arc::new(ListCache::default());
        let (go, gate) = tokio::sync::watch::channel(false);
        let early = {
            let (cache, mut gate) = (cache.clone(), gate.clone());
            tokio::spawn(async move {
                cache
                    .get((0, ListKind::Tools), 1, None, || async move {
                        let _ = gate.wait_for(|open| *open).await;
                        Ok(list("old"))
                    })
                    .await
            })
        };
        tokio::task::yield_now().await;
        cache.invalidate(0, ListKind::Tools);
        go.send(true).unwrap();
        assert_eq!(early.await.unwrap().unwrap().pages[0][0]["name"], "old");
        let late = cache
            .get((0, ListKind::Tools), 1, None, || async { Ok(list("new")) })
            .await
            .unwrap();
        assert_eq!(
            late.pages[0][0]["name"], "new",
            "the stale list was not cached"
        );
    }

    #[tokio::test]
    async fn errors_are_shared_but_not_cached_and_reconnects_refetch() {
        let cache = ListCache::default();
        let err = UpstreamError::Unavailable {
            server: "a".into(),
            reason: "down".into(),
        };
        let failed = cache
            .get((0, ListKind::Tools), 1, None, || async { Err(err.clone()) })
            .await;
        assert_eq!(failed.unwrap_err(), err);
        cache
            .get((0, ListKind::Tools), 1, None, || async { Ok(list("a")) })
            .await
            .unwrap();
        let reconnected = cache
            .get((0, ListKind::Tools), 2, None, || async { Ok(list("b")) })
            .await
            .unwrap();
        assert_eq!(reconnected.pages[0][0]["name"], "b");
    }

    #[tokio::test(start_paused = true)]
    async fn a_ttl_bounds_how_long_a_list_is_served() {
        let cache = ListCache::default();
        let ttl = Some(Duration::from_secs(5));
        let get = |name: &'static str| {
            cache.get((0, ListKind::Tools), 1, ttl, move || async move {
                Ok(list(name))
            })
        };
        get("a").await.unwrap();
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(get("b").await.unwrap().pages[0][0]["name"], "a");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(get("c").await.unwrap().pages[0][0]["name"], "c");
        let never = cache.get((0, ListKind::Tools), 1, Some(Duration::ZERO), || async {
            Ok(list("d"))
        });
        assert_eq!(never.await.unwrap().pages[0][0]["name"], "d");
    }

    #[tokio::test(start_paused = true)]
    async fn a_storm_becomes_one_leading_and_one_trailing_announcement() {
        let coalescer = Arc::new(Coalescer::default());
        let count = Arc::new(AtomicUsize::new(0));
        let bump = |count: &Arc<AtomicUsize>| {
            let count = count.clone();
            move || {
                count.fetch_add(1, Ordering::SeqCst);
            }
        };
        for _ in 0..1000 {
            coalescer.announce("tools", bump(&count));
        }
        assert_eq!(
            count.load(Ordering::SeqCst),
            1,
            "the first goes out at once"
        );
        coalescer.announce("prompts", bump(&count));
        assert_eq!(count.load(Ordering::SeqCst), 2, "kinds are independent");
        tokio::time::sleep(COALESCE_WINDOW * 2).await;
        assert_eq!(
            count.load(Ordering::SeqCst),
            3,
            "one trailing for the storm"
        );
        tokio::time::sleep(COALESCE_WINDOW * 2).await;
        coalescer.announce("tools", bump(&count));
        assert_eq!(
            count.load(Ordering::SeqCst),
            4,
            "a quiet kind announces at once"
        );
    }
}
