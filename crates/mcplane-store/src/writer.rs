//! Writing model-call records without slowing the calls down: [`CallWriter`] is a
//! `RequestSink` that only puts the record in a bounded buffer; a background task takes what
//! has gathered (up to [`BATCH`] at a time) and inserts it in one transaction. When the buffer is
//! full (the database is slower than the traffic) a record is dropped — counted and logged,
//! never silently — rather than making a response wait. A failed batch is tried once more, then
//! counted as failed. [`CallWriter::close`] stops taking records and waits until the buffer has
//! been written.

use crate::Store;
use mcplane_core::calls::{RequestRecord, RequestSink};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Most records written in one transaction.
pub const BATCH: usize = 256;

/// Counts of what the writer did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WriterStats {
    /// Records written.
    pub written: u64,
    /// Records dropped because the buffer was full.
    pub dropped: u64,
    /// Records lost because the database refused them (twice).
    pub failed: u64,
}

#[derive(Debug, Default)]
struct Counts {
    written: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
}

/// See the module docs.
#[derive(Debug)]
pub struct CallWriter {
    tx: Mutex<Option<mpsc::Sender<(i64, RequestRecord)>>>,
    task: Mutex<Option<JoinHandle<()>>>,
    counts: Arc<Counts>,
}

impl CallWriter {
    /// Starts writing to `store`, buffering up to `capacity` records.
    pub fn start(store: Store, capacity: usize) -> Arc<CallWriter> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let counts = Arc::new(Counts::default());
        let task = tokio::spawn(write(store, rx, counts.clone()));
        Arc::new(CallWriter {
            tx: Mutex::new(Some(tx)),
            task: Mutex::new(Some(task)),
            counts,
        })
    }

    /// What it has done so far.
    pub fn stats(&self) -> WriterStats {
        WriterStats {
            written: self.counts.written.load(Ordering::Relaxed),
            dropped: self.counts.dropped.load(Ordering::Relaxed),
            failed: self.counts.failed.load(Ordering::Relaxed),
        }
    }

    /// Stops taking records and waits until everything buffered is written.
    pub async fn close(&self) {
        drop(
            self.tx
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task
            && let Err(e) = task.await
        {
            tracing::warn!(error = %e, "the request-record writer ended abnormally");
        }
        let s = self.stats();
        tracing::info!(
            written = s.written,
            dropped = s.dropped,
            failed = s.failed,
            "request records written"
        );
    }
}

impl RequestSink for CallWriter {
    fn record(&self, record: &RequestRecord) {
        let guard = self.tx.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(tx) = guard.as_ref() else {
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if tx
            .try_send((mcplane_types::clock::now_ms(), record.clone()))
            .is_err()
        {
            let dropped = self.counts.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // The first, then every thousandth: enough to see, not a log flood.
            if dropped == 1 || dropped.is_multiple_of(1000) {
                tracing::warn!(
                    dropped,
                    "request record dropped: the store is not keeping up (buffer full)"
                );
            }
        }
    }
}

async fn write(store: Store, mut rx: mpsc::Receiver<(i64, RequestRecord)>, counts: Arc<Counts>) {
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        let outcome = match store.insert_calls(&batch).await {
            Ok(()) => Ok(()),
            Err(first) => {
                tracing::warn!(error = %first, records = n, "writing request records failed; retrying once");
                tokio::time::sleep(Duration::from_millis(200)).await;
                store.insert_calls(&batch).await
            }
        };
        match outcome {
            Ok(()) => counts.written.fetch_add(n, Ordering::Relaxed),
            Err(e) => {
                tracing::error!(error = %e, records = n, "request records lost: the store refused them");
                counts.failed.fetch_add(n, Ordering::Relaxed)
            }
        };
        batch.clear();
    }
}
