//! The one path every event takes into a stream: a user's message, a turn's deltas
//! and a backend's `event` all go through [`Events::append`], timed and counted, and
//! handed to the transcript writer (which keeps the durable ones) and to the webhooks
//! (which tell the org's endpoints about the ones they map; each event once, by the
//! replica that appended it). The
//! backplane assigns the event's `seq` and `ts` in `Backplane::append` (memory:
//! `MemoryBackplane`; Redis: `lua/append.lua`; NATS: the JetStream sequence).

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_backplane::{
    AppendError, Backoff, Backplane, Event, EventBody, RecordKey, Seq, StreamName,
};

use crate::conversations::TranscriptWriter;
use crate::error::ClientError;
use crate::metrics::Metrics;
use crate::records::idempotency::{self, Reserved};
use crate::telemetry;
use crate::webhooks::Webhooks;

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
    transcripts: TranscriptWriter,
    webhooks: Webhooks,
    metrics: Arc<Metrics>,
}

impl Events {
    pub fn new(
        backplane: Arc<dyn Backplane>,
        transcripts: TranscriptWriter,
        webhooks: Webhooks,
        metrics: Arc<Metrics>,
    ) -> Events {
        Events {
            backplane,
            transcripts,
            webhooks,
            metrics,
        }
    }

    /// Append `body` to `stream`; the backplane assigns `seq` and `ts`.
    pub async fn append(
        &self,
        stream: &StreamName,
        body: EventBody,
    ) -> Result<Arc<Event>, AppendError> {
        self.append_traced(stream, body, None).await
    }

    /// [`Events::append`] with the W3C `traceparent` of the span appending it, which
    /// the event carries to every replica (`telemetry::spans::deliver`).
    pub async fn append_traced(
        &self,
        stream: &StreamName,
        body: EventBody,
        traceparent: Option<String>,
    ) -> Result<Arc<Event>, AppendError> {
        let type_name = body.type_name();
        let started = Instant::now();
        let result = match traceparent {
            None => self.backplane.append(stream, body).await,
            Some(traceparent) => {
                self.backplane
                    .append_traced(stream, body, Some(traceparent))
                    .await
            }
        };
        self.metrics.observe_backplane("append", started, &result);
        if let Ok(event) = &result {
            self.metrics
                .events_appended
                .with_label_values(&[type_name])
                .inc();
            self.webhooks.observe(stream, event);
            self.transcripts.keep(stream, event).await;
        }
        result
    }

    /// Append `body` unless an earlier request with the same idempotency `key` did
    /// (`None`: no key, always append). `id` names this request's event (a
    /// `message_id`, a publish id); a retry learns the first attempt's. The key is
    /// reserved before the append, so two replicas racing on one key cannot both
    /// append, and released if the append fails, so a retry can succeed.
    ///
    /// `carries` tells whether an event carries a given request id (a message its
    /// `message_id`). With it, a reservation its attempt never settled (its replica
    /// died between the append and the settle) is resolved by the retry: the earlier
    /// event found in history is that attempt's answer, and with none the retry appends
    /// its own. Without it such a key answers `conflict` until it expires.
    ///
    /// The event carries the trace context of the current span (the request's), when
    /// traces are exported and it is sampled.
    pub async fn append_once(
        &self,
        stream: &StreamName,
        body: EventBody,
        key: Option<&RecordKey>,
        id: &str,
        carries: Option<fn(&EventBody, &str) -> bool>,
    ) -> Result<Once, ClientError> {
        let traceparent = telemetry::context::traceparent(&tracing::Span::current());
        let Some(key) = key else {
            return Ok(Once::Appended(
                self.append_traced(stream, body, traceparent).await?,
            ));
        };
        let backplane = self.backplane.as_ref();
        let ttl = if carries.is_some() {
            idempotency::TTL
        } else {
            idempotency::PENDING_TTL
        };
        match idempotency::reserve(backplane, key, id, ttl).await? {
            Reserved::Held => {}
            Reserved::Earlier(earlier) => {
                return Ok(Once::Earlier {
                    id: earlier.id,
                    seq: earlier.seq.unwrap_or(0),
                });
            }
            Reserved::Abandoned { earlier, raw } => {
                let Some(carries) = carries else {
                    return Err(idempotency::in_progress());
                };
                if let Some(seq) = self.find(stream, |body| carries(body, &earlier.id)).await? {
                    tracing::info!(%stream, id = %earlier.id, "settled a key whose attempt stopped after its append");
                    idempotency::settle(backplane, key, &earlier.id, Some(seq)).await?;
                    return Ok(Once::Earlier {
                        id: earlier.id,
                        seq,
                    });
                }
                if !idempotency::take_over(backplane, key, &raw, id).await? {
                    return Err(idempotency::in_progress());
                }
                tracing::info!(%stream, id = %earlier.id, "took over a key whose attempt stopped before its append");
            }
        }
        let appended = self.append_traced(stream, body, traceparent).await;
        match (&appended, carries) {
            (Ok(event), _) => idempotency::settle(backplane, key, id, Some(event.seq)).await?,
            // Maybe stored anyway (a timed-out append): the retry checks history.
            (Err(_), Some(_)) => idempotency::mark_failed(backplane, key, id).await?,
            (Err(_), None) => idempotency::settle(backplane, key, id, None).await?,
        }
        Ok(Once::Appended(appended?))
    }

    /// The `seq` of the first retained event of `stream` that `wanted` accepts.
    async fn find(
        &self,
        stream: &StreamName,
        wanted: impl Fn(&EventBody) -> bool,
    ) -> Result<Option<Seq>, ClientError> {
        const PAGE: usize = 1000;
        let mut after = None;
        loop {
            let page = self.backplane.read(stream, after, PAGE).await?;
            if let Some(event) = page.events.iter().find(|e| wanted(&e.body)) {
                return Ok(Some(event.seq));
            }
            match page.events.last() {
                Some(last) => after = Some(last.seq),
                None => return Ok(None),
            }
        }
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

#[cfg(test)]
mod tests {
    use switchboard_backplane::{MemoryBackplane, Retention, now_ms};
    use switchboard_protocol::Role;

    use super::*;
    use crate::records::idempotency::{ABANDONED_AFTER, Reservation, TTL};

    fn message(id: &str) -> EventBody {
        EventBody::Message {
            message_id: id.into(),
            role: Role::User,
            text: "hello".into(),
            author: None,
        }
    }

    fn carries(body: &EventBody, id: &str) -> bool {
        matches!(body, EventBody::Message { message_id, .. } if message_id == id)
    }

    /// An `Events` whose key `k` was reserved for `m_1` long ago and never settled (its
    /// replica died), the message appended or not.
    async fn abandoned(appended: bool) -> (Events, StreamName, RecordKey, Option<Seq>) {
        let backplane: Arc<dyn Backplane> = Arc::new(MemoryBackplane::new(Retention::default()));
        let metrics = Arc::new(Metrics::new().unwrap());
        let store = Arc::new(switchboard_store::MemoryStore::new());
        let transcripts = TranscriptWriter::start(store.clone(), metrics.clone());
        let webhooks = crate::webhooks::testing::inert(store, metrics.clone());
        let events = Events::new(backplane.clone(), transcripts, webhooks, metrics);
        let stream = StreamName::session("s_abandoned").unwrap();
        let key = RecordKey::new("test-idempotency", "k");
        let stale = Reservation {
            id: "m_1".into(),
            seq: None,
            at_ms: Some(now_ms() - ABANDONED_AFTER.as_millis() as u64 - 1),
            failed: false,
        };
        let raw = bytes::Bytes::from(serde_json::to_vec(&stale).unwrap());
        backplane.record_put(&key, raw, Some(TTL)).await.unwrap();
        let seq = if appended {
            Some(events.append(&stream, message("m_1")).await.unwrap().seq)
        } else {
            None
        };
        (events, stream, key, seq)
    }

    #[tokio::test]
    async fn a_retry_settles_a_key_whose_attempt_stopped_after_its_append() {
        let (events, stream, key, seq) = abandoned(true).await;
        let once = events
            .append_once(&stream, message("m_2"), Some(&key), "m_2", Some(carries))
            .await
            .unwrap();
        assert!(
            matches!(&once, Once::Earlier { id, seq: s } if id == "m_1" && Some(*s) == seq),
            "{once:?}"
        );
        let history = events.backplane.read(&stream, None, 100).await.unwrap();
        assert_eq!(history.events.len(), 1, "nothing appended twice");
        let again = events
            .append_once(&stream, message("m_3"), Some(&key), "m_3", Some(carries))
            .await
            .unwrap();
        assert!(matches!(again, Once::Earlier { id, .. } if id == "m_1"));
    }

    #[tokio::test]
    async fn a_retry_appends_when_the_stopped_attempt_appended_nothing() {
        let (events, stream, key, _) = abandoned(false).await;
        let once = events
            .append_once(&stream, message("m_2"), Some(&key), "m_2", Some(carries))
            .await
            .unwrap();
        let Once::Appended(event) = once else {
            panic!("{once:?}");
        };
        let again = events
            .append_once(&stream, message("m_3"), Some(&key), "m_3", Some(carries))
            .await
            .unwrap();
        assert!(
            matches!(again, Once::Earlier { id, seq } if id == "m_2" && seq == event.seq),
            "the retry's append is the key's answer now"
        );
    }

    #[tokio::test]
    async fn without_a_way_to_recognise_the_event_the_key_stays_in_conflict() {
        let (events, stream, key, _) = abandoned(true).await;
        let refused = events
            .append_once(&stream, message("m_2"), Some(&key), "m_2", None)
            .await
            .unwrap_err();
        assert_eq!(refused.code, switchboard_protocol::ErrorCode::Conflict);
    }
}

/// Fault injection (issue 20, L7): appends that fail after storing, and record
/// cleanups that fail in the same outage.
#[cfg(test)]
mod faults {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    use bytes::Bytes;
    use switchboard_backplane::{Event, RecordError};
    use switchboard_protocol::{ErrorCode, Role};

    use super::*;
    use crate::records::idempotency::{PENDING_TTL, TTL};
    use crate::test_backplane::{Hooks, Watched};

    #[derive(Default)]
    struct Faults {
        /// The next append stores its event, then answers a timeout (NATS).
        store_then_time_out: AtomicBool,
        /// The next append fails without storing.
        fail_append: AtomicBool,
        /// Record writes and deletes fail (the outage lasts past the append).
        records_down: AtomicBool,
        /// The time to live of each reservation created.
        created_ttls: Mutex<Vec<Option<Duration>>>,
    }

    struct Faulty {
        faults: Arc<Faults>,
    }

    fn down() -> RecordError {
        RecordError::unavailable("injected outage")
    }

    #[async_trait::async_trait]
    impl Hooks for Faulty {
        async fn append(
            &self,
            inner: &dyn Backplane,
            s: &StreamName,
            b: EventBody,
        ) -> Result<Arc<Event>, AppendError> {
            if self.faults.fail_append.swap(false, Ordering::SeqCst) {
                return Err(AppendError::unavailable("injected outage"));
            }
            let stored = inner.append(s, b).await?;
            if self
                .faults
                .store_then_time_out
                .swap(false, Ordering::SeqCst)
            {
                return Err(AppendError::new(
                    switchboard_backplane::ErrorKind::Timeout,
                    format!("injected timeout after storing seq {}", stored.seq),
                ));
            }
            Ok(stored)
        }
        async fn record_put(
            &self,
            inner: &dyn Backplane,
            k: &RecordKey,
            v: Bytes,
            t: Option<Duration>,
        ) -> Result<(), RecordError> {
            if self.faults.records_down.load(Ordering::SeqCst) {
                return Err(down());
            }
            inner.record_put(k, v, t).await
        }
        async fn record_create(
            &self,
            inner: &dyn Backplane,
            k: &RecordKey,
            v: Bytes,
            t: Option<Duration>,
        ) -> Result<bool, RecordError> {
            self.faults.created_ttls.lock().unwrap().push(t);
            inner.record_create(k, v, t).await
        }
        async fn record_replace(
            &self,
            inner: &dyn Backplane,
            k: &RecordKey,
            e: &[u8],
            n: Option<Bytes>,
            t: Option<Duration>,
        ) -> Result<bool, RecordError> {
            if self.faults.records_down.load(Ordering::SeqCst) {
                return Err(down());
            }
            inner.record_replace(k, e, n, t).await
        }
        async fn record_delete(
            &self,
            inner: &dyn Backplane,
            k: &RecordKey,
        ) -> Result<bool, RecordError> {
            if self.faults.records_down.load(Ordering::SeqCst) {
                return Err(down());
            }
            inner.record_delete(k).await
        }
    }

    fn events() -> (Events, Arc<Faults>) {
        let faults = Arc::new(Faults::default());
        let backplane: Arc<dyn Backplane> = Arc::new(Watched::new(Faulty {
            faults: faults.clone(),
        }));
        let metrics = Arc::new(Metrics::new().unwrap());
        let store = Arc::new(switchboard_store::MemoryStore::new());
        let transcripts = TranscriptWriter::start(store.clone(), metrics.clone());
        let webhooks = crate::webhooks::testing::inert(store, metrics.clone());
        (
            Events::new(backplane, transcripts, webhooks, metrics),
            faults,
        )
    }

    fn message(id: &str) -> EventBody {
        EventBody::Message {
            message_id: id.into(),
            role: Role::User,
            text: "hello".into(),
            author: None,
        }
    }

    fn carries(body: &EventBody, id: &str) -> bool {
        matches!(body, EventBody::Message { message_id, .. } if message_id == id)
    }

    /// A NATS append that timed out after storing its message: the retry with the same
    /// `client_message_id` answers with that message instead of storing a second one.
    #[tokio::test]
    async fn a_retry_after_an_append_that_timed_out_but_was_stored_appends_nothing() {
        let (events, faults) = events();
        let stream = StreamName::session("s_timed_out").unwrap();
        let key = RecordKey::new("test-idempotency", "k");
        faults.store_then_time_out.store(true, Ordering::SeqCst);
        let first = events
            .append_once(&stream, message("m_1"), Some(&key), "m_1", Some(carries))
            .await;
        assert!(first.is_err(), "the sender saw the timeout");
        let retry = events
            .append_once(&stream, message("m_2"), Some(&key), "m_2", Some(carries))
            .await
            .unwrap();
        assert!(
            matches!(&retry, Once::Earlier { id, .. } if id == "m_1"),
            "{retry:?}"
        );
        let history = events.backplane.read(&stream, None, 100).await.unwrap();
        assert_eq!(history.events.len(), 1, "the message is stored once");
    }

    /// An append that failed without storing: the retry is accepted at once (no
    /// `conflict`, which the widget treats as final).
    #[tokio::test]
    async fn a_retry_after_an_append_that_failed_is_accepted_at_once() {
        let (events, faults) = events();
        let stream = StreamName::session("s_failed").unwrap();
        let key = RecordKey::new("test-idempotency", "k");
        faults.fail_append.store(true, Ordering::SeqCst);
        assert!(
            events
                .append_once(&stream, message("m_1"), Some(&key), "m_1", Some(carries))
                .await
                .is_err()
        );
        let retry = events
            .append_once(&stream, message("m_2"), Some(&key), "m_2", Some(carries))
            .await
            .unwrap();
        assert!(matches!(retry, Once::Appended(_)), "{retry:?}");
    }

    /// A publish key whose append failed and whose cleanup failed in the same outage
    /// is held for [`PENDING_TTL`] (a minute), not the day a settled key lives: its
    /// retries are answered `conflict` for at most that long.
    #[tokio::test]
    async fn a_publish_key_whose_cleanup_failed_is_not_blocked_for_a_day() {
        let (events, faults) = events();
        let stream = StreamName::session("s_publish").unwrap();
        let key = RecordKey::new("test-idempotency", "p");
        faults.fail_append.store(true, Ordering::SeqCst);
        faults.records_down.store(true, Ordering::SeqCst);
        let body = || EventBody::Custom {
            name: "n".into(),
            data: serde_json::json!({}),
            publisher: None,
            durable: false,
        };
        assert!(
            events
                .append_once(&stream, body(), Some(&key), "p_1", None)
                .await
                .is_err()
        );
        faults.records_down.store(false, Ordering::SeqCst);
        let refused = events
            .append_once(&stream, body(), Some(&key), "p_2", None)
            .await
            .unwrap_err();
        assert_eq!(refused.code, ErrorCode::Conflict);
        let ttls = faults.created_ttls.lock().unwrap().clone();
        assert_eq!(ttls.first(), Some(&Some(PENDING_TTL)), "{ttls:?}");
        assert!(PENDING_TTL <= Duration::from_secs(60) && PENDING_TTL < TTL);
    }
}
