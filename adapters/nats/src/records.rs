//! Shared records in a JetStream KV bucket (`<prefix>_records`, stream
//! `KV_<prefix>_records`, history 1), written in the NATS KV layout so `nats kv` can
//! inspect it.
//!
//! nats-server 2.9 has no per-key TTL, so a record with a time to live carries its
//! expiry in a header ([`EXPIRES_HEADER`], ms since the Unix epoch) and every operation
//! treats an expired record as absent. The value itself stays the caller's bytes.
//!
//! | Operation | How | Round trips |
//! |-----------|-----|-------------|
//! | `put` | publish to the key's subject | 1 |
//! | `create` | publish with `Nats-Expected-Last-Subject-Sequence: 0`; if the key holds a delete marker or an expired record, read it and publish again expecting its revision (compare-and-set) | 1 (3 over a dead key) |
//! | `get` | last message of the key's subject (from the stream leader) | 1 |
//! | `replace` | read; if the live value is the expected one, publish the new value (or a `KV-Operation: DEL` marker) expecting the read revision; when another write landed first, read again (false once the value differs) | 2 |
//! | `delete` | read, then a `KV-Operation: DEL` marker expecting the read revision | 2 |
//! | `list` | the namespace's subjects (stream info), then each one's last message, 32 at a time | 1 + 1 per key |
//!
//! Every compare-and-set is decided by JetStream on the stream leader, so across
//! replicas exactly one of two concurrent creates wins, exactly one of two replaces
//! expecting the same value wins, and exactly one of two deletes finds the value.
//! Expired records and delete markers are swept out by [`sweep`] (each replica, every
//! [`NatsOptions::record_sweep_interval`](crate::NatsOptions)), purging each only up
//! to its own revision so a concurrent write survives.

use std::sync::Weak;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{self, pull};
use async_nats::jetstream::message::StreamMessage;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use switchboard_backplane::{Backoff, ErrorKind, RecordError, RecordKey, now_ms};

use crate::error::{classify, is_wrong_last_sequence};
use crate::layout::{EXPIRES_HEADER, KV_OPERATION_HEADER};
use crate::shared::{OpResult, Shared};

/// How many times a compare-and-set is retried when it keeps losing to other writers.
const CAS_ATTEMPTS: usize = 16;

/// The most entries one fetch asks for when listing.
const MAX_FETCH: usize = 1024;

/// How many keys a listing reads at once.
const LIST_PARALLEL: usize = 32;

/// How long an abandoned list consumer lives on the server.
const LIST_CONSUMER_IDLE: Duration = Duration::from_secs(30);

fn record_error((kind, detail): (ErrorKind, String)) -> RecordError {
    RecordError::new(kind, detail)
}

/// What one stored KV message says.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// A value no one may see any more: a delete/purge marker, or expired.
    Dead,
    Live(Bytes),
}

fn state_of(headers: Option<&HeaderMap>, payload: &Bytes, now: u64) -> State {
    let header = |name: &str| headers.and_then(|h| h.get(name)).map(|v| v.as_str().trim());
    if matches!(header(KV_OPERATION_HEADER), Some("DEL" | "PURGE")) {
        return State::Dead;
    }
    match header(EXPIRES_HEADER).and_then(|at| at.parse::<u64>().ok()) {
        Some(expires_at) if now >= expires_at => State::Dead,
        _ => State::Live(payload.clone()),
    }
}

fn headers_for(ttl: Option<Duration>, expected_revision: Option<u64>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(ttl) = ttl {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        headers.insert(
            EXPIRES_HEADER,
            now_ms().saturating_add(ttl_ms).to_string().as_str(),
        );
    }
    if let Some(revision) = expected_revision {
        headers.insert(
            async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
            revision.to_string().as_str(),
        );
    }
    headers
}

/// The newest message of a key, if any.
async fn entry(shared: &Shared, subject: &str) -> OpResult<Option<StreamMessage>> {
    crate::history::head(&shared.records, subject).await
}

enum Published {
    Stored,
    /// The expected revision was not the key's last: someone wrote first.
    Lost,
}

async fn publish(
    shared: &Shared,
    subject: &str,
    headers: HeaderMap,
    value: Bytes,
) -> OpResult<Published> {
    let sent = async {
        shared
            .js
            .publish_with_headers(subject.to_string(), headers, value)
            .await?
            .await
    };
    match sent.await {
        Ok(_) => Ok(Published::Stored),
        Err(err) if is_wrong_last_sequence(&err) => Ok(Published::Lost),
        Err(err) => Err((classify(&err), err.to_string())),
    }
}

pub(crate) async fn put(
    shared: &Shared,
    key: &RecordKey,
    value: Bytes,
    ttl: Option<Duration>,
) -> Result<(), RecordError> {
    let subject = shared.layout.record_subject(&key.namespace, &key.key);
    shared
        .run_inner(publish(shared, &subject, headers_for(ttl, None), value))
        .await
        .map(|_| ())
        .map_err(record_error)
}

pub(crate) async fn create(
    shared: &Shared,
    key: &RecordKey,
    value: Bytes,
    ttl: Option<Duration>,
) -> Result<bool, RecordError> {
    let subject = shared.layout.record_subject(&key.namespace, &key.key);
    shared
        .run_inner(async {
            // A fresh key (the common case: idempotency keys) takes one round trip.
            let mut expected = 0;
            for _ in 0..CAS_ATTEMPTS {
                let headers = headers_for(ttl, Some(expected));
                match publish(shared, &subject, headers, value.clone()).await? {
                    Published::Stored => return Ok(true),
                    Published::Lost => {}
                }
                match entry(shared, &subject).await? {
                    None => expected = 0,
                    Some(message) => {
                        match state_of(Some(&message.headers), &message.payload, now_ms()) {
                            State::Live(_) => return Ok(false),
                            State::Dead => expected = message.sequence,
                        }
                    }
                }
            }
            Err((
                ErrorKind::Unavailable,
                format!("create lost {CAS_ATTEMPTS} compare-and-set rounds in a row"),
            ))
        })
        .await
        .map_err(record_error)
}

/// `record_replace`: see [`swap`], for a live value that is exactly `expected`.
pub(crate) async fn replace(
    shared: &Shared,
    key: &RecordKey,
    expected: &[u8],
    new: Option<Bytes>,
    ttl: Option<Duration>,
) -> Result<bool, RecordError> {
    swap(
        shared,
        key,
        |value| value.as_ref() == expected,
        new,
        ttl,
        "replace",
    )
    .await
}

/// Read the key's newest message and, while it is live and its value passes `wanted`,
/// publish `new` (or a delete marker) expecting that message's revision. Losing to
/// another writer means reading again: the value may still (or again) pass.
async fn swap(
    shared: &Shared,
    key: &RecordKey,
    wanted: impl Fn(&Bytes) -> bool,
    new: Option<Bytes>,
    ttl: Option<Duration>,
    op: &str,
) -> Result<bool, RecordError> {
    let subject = shared.layout.record_subject(&key.namespace, &key.key);
    shared
        .run_inner(async {
            for _ in 0..CAS_ATTEMPTS {
                let Some(message) = entry(shared, &subject).await? else {
                    return Ok(false);
                };
                match state_of(Some(&message.headers), &message.payload, now_ms()) {
                    State::Live(value) if wanted(&value) => {}
                    State::Live(_) | State::Dead => return Ok(false),
                }
                let (headers, value) = match &new {
                    Some(value) => (headers_for(ttl, Some(message.sequence)), value.clone()),
                    None => {
                        let mut headers = headers_for(None, Some(message.sequence));
                        headers.insert(KV_OPERATION_HEADER, "DEL");
                        (headers, Bytes::new())
                    }
                };
                match publish(shared, &subject, headers, value).await? {
                    Published::Stored => return Ok(true),
                    Published::Lost => {}
                }
            }
            Err((
                ErrorKind::Unavailable,
                format!("{op} lost {CAS_ATTEMPTS} compare-and-set rounds in a row"),
            ))
        })
        .await
        .map_err(record_error)
}

pub(crate) async fn get(shared: &Shared, key: &RecordKey) -> Result<Option<Bytes>, RecordError> {
    let subject = shared.layout.record_subject(&key.namespace, &key.key);
    shared
        .run_inner(async {
            Ok(match entry(shared, &subject).await? {
                Some(message) => match state_of(Some(&message.headers), &message.payload, now_ms())
                {
                    State::Live(value) => Some(value),
                    State::Dead => None,
                },
                None => None,
            })
        })
        .await
        .map_err(record_error)
}

/// `record_delete`: see [`swap`], for any live value.
pub(crate) async fn delete(shared: &Shared, key: &RecordKey) -> Result<bool, RecordError> {
    swap(shared, key, |_| true, None, None, "delete").await
}

pub(crate) async fn list(
    shared: &Shared,
    namespace: &str,
) -> Result<Vec<(String, Bytes)>, RecordError> {
    let filter = shared.layout.namespace_filter(namespace);
    shared
        .run_inner(async {
            // The keys first, then each key's newest message. (An ephemeral consumer
            // delivering the last message per subject misses a key written again while
            // it runs: the bucket keeps one message per key, so the one the consumer
            // was to deliver is gone, and the new one comes after the others.)
            let subjects = subjects(shared, &filter).await?;
            let heads: Vec<_> =
                futures_util::stream::iter(subjects)
                    .map(|subject| async move {
                        entry(shared, &subject).await.map(|head| (subject, head))
                    })
                    .buffer_unordered(LIST_PARALLEL)
                    .collect()
                    .await;
            let mut out = Vec::new();
            for head in heads {
                if let (subject, Some(message)) = head?
                    && let State::Live(value) =
                        state_of(Some(&message.headers), &message.payload, now_ms())
                    && let Some(key) = shared.layout.key_of_subject(namespace, &subject)
                {
                    out.push((key, value));
                }
            }
            Ok(out)
        })
        .await
        .map_err(record_error)
}

/// The subjects of the records stream that hold a message and match `filter`.
async fn subjects(shared: &Shared, filter: &str) -> OpResult<Vec<String>> {
    let mut info = shared
        .records
        .info_with_subjects(filter)
        .await
        .map_err(|err| (classify(&err), err.to_string()))?;
    let mut subjects = Vec::new();
    while let Some((subject, _)) = info
        .try_next()
        .await
        .map_err(|err| (classify(&err), err.to_string()))?
    {
        subjects.push(subject);
    }
    Ok(subjects)
}

/// The newest message of every subject matching `filter`, through an ephemeral consumer.
async fn last_per_subject(
    shared: &Shared,
    filter: &str,
) -> OpResult<Vec<(String, async_nats::Message)>> {
    let consumer = shared
        .records
        .create_consumer(pull::Config {
            filter_subject: filter.to_string(),
            deliver_policy: consumer::DeliverPolicy::LastPerSubject,
            ack_policy: consumer::AckPolicy::None,
            inactive_threshold: LIST_CONSUMER_IDLE,
            memory_storage: true,
            num_replicas: 1,
            ..Default::default()
        })
        .await
        .map_err(|err| (classify(&err), err.to_string()))?;
    let info = consumer.cached_info();
    let total = usize::try_from(info.num_pending).unwrap_or(usize::MAX);
    let name = info.name.clone();
    let fetched = async {
        let mut out = Vec::with_capacity(total.min(MAX_FETCH));
        while out.len() < total {
            let mut messages = consumer
                .fetch()
                .max_messages((total - out.len()).min(MAX_FETCH))
                .messages()
                .await
                .map_err(|err| (classify(&err), err.to_string()))?;
            let before = out.len();
            while let Some(message) = messages.next().await {
                let message = message.map_err(|err| (ErrorKind::Unavailable, err.to_string()))?;
                out.push((message.subject.to_string(), message.message));
            }
            if out.len() == before {
                break;
            }
        }
        Ok(out)
    }
    .await;
    let records = shared.records.clone();
    let timeout = shared.op_timeout;
    tokio::spawn(async move {
        let _ = tokio::time::timeout(timeout, records.delete_consumer(&name)).await;
    });
    fetched
}

/// Purge expired records and delete markers from the bucket, each only up to its own
/// revision (a write that lands meanwhile is kept). Returns how many keys it purged.
pub(crate) async fn sweep(shared: &Shared) -> OpResult<usize> {
    let now = now_ms();
    let mut purged = 0;
    for (subject, message) in last_per_subject(shared, &shared.layout.bucket_filter()).await? {
        if state_of(message.headers.as_ref(), &message.payload, now) != State::Dead {
            continue;
        }
        let Some(revision) = message
            .reply
            .as_deref()
            .and_then(crate::history::delivery)
            .map(|delivery| delivery.seq)
        else {
            continue;
        };
        shared
            .records
            .purge()
            .filter(subject)
            .sequence(revision + 1)
            .await
            .map_err(|err| (classify(&err), err.to_string()))?;
        purged += 1;
    }
    Ok(purged)
}

/// Sweep the records bucket every `interval` (±10%) while the backplane lives. The
/// pace is a [`Backoff`] that never grows: 90% of the interval, lengthened by up to
/// 2/9 of that, so the replicas' sweeps spread over 0.9–1.1 × the interval.
pub(crate) fn spawn_sweeper(shared: Weak<Shared>, interval: Duration) {
    let pause = interval.mul_f64(0.9);
    let mut pace = Backoff::new(pause, pause).with_jitter(2.0 / 9.0);
    tokio::spawn(async move {
        loop {
            pace.wait().await;
            let Some(shared) = shared.upgrade() else {
                return;
            };
            match shared.run_inner(sweep(&shared)).await {
                Ok(0) => {}
                Ok(purged) => tracing::debug!(purged, "nats backplane: swept records"),
                Err((kind, detail)) => {
                    tracing::debug!(%kind, detail, "nats backplane: record sweep failed, retrying later");
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_and_expired_records_are_dead() {
        let value = Bytes::from_static(b"v");
        assert_eq!(state_of(None, &value, 10), State::Live(value.clone()));
        let mut headers = HeaderMap::new();
        headers.insert(KV_OPERATION_HEADER, "DEL");
        assert_eq!(state_of(Some(&headers), &value, 10), State::Dead);
        let mut headers = HeaderMap::new();
        headers.insert(EXPIRES_HEADER, "100");
        assert_eq!(
            state_of(Some(&headers), &value, 99),
            State::Live(value.clone())
        );
        assert_eq!(state_of(Some(&headers), &value, 100), State::Dead);
    }
}
