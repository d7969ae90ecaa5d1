//! The one path every event takes into a stream: a user's message, a turn's deltas
//! and a backend's `event` all go through [`Events::append`], timed and counted. The
//! backplane assigns the event's `seq` and `ts` in `Backplane::append` (memory:
//! `MemoryBackplane`; Redis: `lua/append.lua`; NATS: the JetStream sequence).

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_backplane::{AppendError, Backoff, Backplane, Event, EventBody, StreamName};

use crate::metrics::Metrics;

/// Appends events to the backplane and records what it costs.
#[derive(Clone)]
pub struct Events {
    backplane: Arc<dyn Backplane>,
    metrics: Arc<Metrics>,
}

impl Events {
    pub fn new(backplane: Arc<dyn Backplane>, metrics: Arc<Metrics>) -> Events {
        Events { backplane, metrics }
    }

    /// The backplane events go to (for the shared records that travel with them).
    pub fn backplane(&self) -> &dyn Backplane {
        self.backplane.as_ref()
    }

    /// Append `body` to `stream`; the backplane assigns `seq` and `ts`.
    pub async fn append(
        &self,
        stream: &StreamName,
        body: EventBody,
    ) -> Result<Arc<Event>, AppendError> {
        let type_name = body.type_name();
        let started = Instant::now();
        let result = self.backplane.append(stream, body).await;
        self.metrics.observe_backplane("append", started, &result);
        if result.is_ok() {
            self.metrics
                .events_appended
                .with_label_values(&[type_name])
                .inc();
        }
        result
    }

    /// Append, retrying transient failures with backoff for up to `patience`. For
    /// events that must not be lost to a short backplane outage, like a turn's end.
    pub async fn append_patiently(
        &self,
        stream: &StreamName,
        body: EventBody,
        patience: Duration,
    ) -> Result<Arc<Event>, AppendError> {
        let deadline = tokio::time::Instant::now() + patience;
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
        loop {
            match self.append(stream, body.clone()).await {
                Err(e) if e.kind.is_transient() => {
                    let delay = backoff.next_delay();
                    if tokio::time::Instant::now() + delay >= deadline {
                        return Err(e);
                    }
                    tracing::warn!(%stream, error = %e, "append failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }
}
