//! Writing transcripts off the hot path. Every durable event a replica appends is
//! queued here after its append and written to the store by one task, in batches (one
//! transaction each, gathering for [`BATCH_WINDOW`] after the first entry). A `turn.delta` never reaches this queue, so no delta waits for
//! the store; a durable event waits only when the queue is full (the store is down or
//! slow), which holds back messages and turn ends rather than growing memory.
//!
//! A failed batch is retried with backoff while the failure is transient, so a store
//! outage loses nothing that reached the queue. What a replica killed with `SIGKILL`
//! still held in its queue is not written; the backplane's history still holds it
//! for its retention.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use switchboard_backplane::Backoff;
use switchboard_protocol::{Event, StreamName};
use switchboard_store::{ConversationStore, TranscriptWrite};
use tokio::sync::{Notify, mpsc};

use super::transcript::write_for;
use crate::metrics::Metrics;

/// Entries the queue holds before durable appends wait for room.
pub const QUEUE_CAPACITY: usize = 16_384;
/// Most entries one store transaction writes.
pub const MAX_BATCH: usize = 512;
/// How long the writer gathers entries after the first one of a batch: at a few
/// thousand durable events per second, one transaction every few milliseconds
/// instead of one per event.
pub const BATCH_WINDOW: Duration = Duration::from_millis(5);

/// The sending half; cheap to clone.
#[derive(Clone)]
pub struct TranscriptWriter {
    queue: mpsc::Sender<TranscriptWrite>,
    progress: Arc<Progress>,
}

/// How far the writer got, so `flush` can wait for it.
struct Progress {
    queued: AtomicU64,
    done: AtomicU64,
    changed: Notify,
}

impl TranscriptWriter {
    /// Start the writing task on the current runtime.
    pub fn start(store: Arc<dyn ConversationStore>, metrics: Arc<Metrics>) -> TranscriptWriter {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let progress = Arc::new(Progress {
            queued: AtomicU64::new(0),
            done: AtomicU64::new(0),
            changed: Notify::new(),
        });
        tokio::spawn(run(store, metrics, receiver, progress.clone()));
        TranscriptWriter { queue, progress }
    }

    /// Queue `event` of `stream` if the transcript keeps it. Returns at once for
    /// events it does not keep.
    pub async fn keep(&self, stream: &StreamName, event: &Arc<Event>) {
        let Some(write) = write_for(stream, event) else {
            return;
        };
        self.progress.queued.fetch_add(1, Ordering::SeqCst);
        if self.queue.send(write).await.is_err() {
            // The task only ends when the runtime does.
            self.progress.done.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Wait until everything queued so far is written (or `patience` ran out): for
    /// drain, before the process exits.
    pub async fn flush(&self, patience: Duration) -> bool {
        let target = self.progress.queued.load(Ordering::SeqCst);
        let waited = tokio::time::timeout(patience, async {
            loop {
                let changed = self.progress.changed.notified();
                if self.progress.done.load(Ordering::SeqCst) >= target {
                    return;
                }
                changed.await;
            }
        })
        .await;
        waited.is_ok()
    }
}

async fn run(
    store: Arc<dyn ConversationStore>,
    metrics: Arc<Metrics>,
    mut receiver: mpsc::Receiver<TranscriptWrite>,
    progress: Arc<Progress>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        if batch.len() < MAX_BATCH {
            tokio::time::sleep(BATCH_WINDOW).await;
            while batch.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(write) => batch.push(write),
                    Err(_) => break,
                }
            }
        }
        metrics.transcript_queue.set(receiver.len() as i64);
        let written = write_patiently(store.as_ref(), &metrics, &batch).await;
        let outcome = if written { "written" } else { "dropped" };
        metrics
            .transcript_entries
            .with_label_values(&[outcome])
            .inc_by(batch.len() as u64);
        progress
            .done
            .fetch_add(batch.len() as u64, Ordering::SeqCst);
        progress.changed.notify_waiters();
        batch.clear();
    }
}

/// Write `batch`, retrying transient failures until they pass. False when the store
/// refused it for good (logged: the backplane's history still has those events).
async fn write_patiently(
    store: &dyn ConversationStore,
    metrics: &Metrics,
    batch: &[TranscriptWrite],
) -> bool {
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
    loop {
        let started = Instant::now();
        let result = store.write(batch).await;
        metrics
            .store_write_seconds
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(()) => return true,
            Err(e) => {
                metrics.store_errors.with_label_values(&["write"]).inc();
                if !e.is_transient() {
                    tracing::error!(entries = batch.len(), error = %e, "transcript entries the store refused are not kept");
                    return false;
                }
                let delay = backoff.next_delay();
                tracing::warn!(entries = batch.len(), error = %e, retry_in = ?delay, "transcript write failed; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}
