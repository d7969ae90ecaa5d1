//! The one path every event takes into a stream: a user's message, a turn's deltas
//! and a backend's `event` all go through [`Events::append`], timed and counted. The
//! backplane assigns the event's `seq` and `ts` in `Backplane::append` (memory:
//! `MemoryBackplane`; Redis: `lua/append.lua`; NATS: the JetStream sequence).

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_backplane::{
    AppendError, Backoff, Backplane, Event, EventBody, RecordKey, Seq, StreamName,
};

use crate::error::ClientError;
use crate::metrics::Metrics;
use crate::records::idempotency;

/// What [`Events::append_once`] did.
#[derive(Debug)]
pub enum Once {
    /// This request appended the event.
    Appended(Arc<Event>),
    /// An earlier request with the same idempotency key did: its id and `seq`.
    Earlier { id: String, seq: Seq },
}

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

    /// Append `body` unless an earlier request with the same idempotency `key` did
    /// (`None`: no key, always append). `id` names this request's event (a
    /// `message_id`, a publish id); a retry learns the first attempt's. The key is
    /// reserved before the append, so two replicas racing on one key cannot both
    /// append, and released if the append fails, so a retry can succeed.
    pub async fn append_once(
        &self,
        stream: &StreamName,
        body: EventBody,
        key: Option<&RecordKey>,
        id: &str,
    ) -> Result<Once, ClientError> {
        let Some(key) = key else {
            return Ok(Once::Appended(self.append(stream, body).await?));
        };
        let backplane = self.backplane.as_ref();
        if let Some(earlier) = idempotency::reserve(backplane, key, id).await? {
            return Ok(Once::Earlier {
                id: earlier.id,
                seq: earlier.seq.unwrap_or(0),
            });
        }
        let appended = self.append(stream, body).await;
        let seq = appended.as_ref().ok().map(|e| e.seq);
        idempotency::settle(backplane, key, id, seq).await?;
        Ok(Once::Appended(appended?))
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
