//! Appending and reading history: one JetStream stream per deployment, one subject per
//! Switchboard stream.
//!
//! # Retention, exactly
//!
//! JetStream keeps `max_events + 1` messages per subject and `max_age + grace` of age
//! (see [`NatsOptions::history_grace`](crate::NatsOptions::history_grace)); `read`
//! applies the exact [`Retention`] itself. Per subject the message JetStream keeps beyond
//! what `read` may return is the *witness* of trimming: `read` walks the messages after
//! `after` oldest first, and every one it must not return (too far behind the newest,
//! or older than `max_age`) proves that something after `after` was removed. So:
//!
//! - `trimmed` is exact: true iff an event with `seq > after` is gone (the retained
//!   witness lies after `after` exactly when the first removed event does);
//! - `last_seq` survives expiry: the newest message stays on the server for the grace
//!   after it became unreadable;
//! - no extra write per append, no record per stream.
//!
//! Past the grace, a stream whose every event expired is forgotten: `read` then answers
//! `last_seq = 0`, `trimmed = false`, as for a new stream. Its `seq`s still never go
//! back (they are JetStream's stream sequence, shared by all subjects).
//!
//! A message whose payload is not an event body (a direct publisher's mistake) is
//! skipped, with a warning, by `read` and by live delivery alike.

use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{self, pull};
use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::{LastRawMessageErrorKind, Stream};
use futures_util::StreamExt;
use serde_json::json;
use switchboard_backplane::{
    AppendError, ErrorKind, Event, EventBody, ReadError, Replay, Retention, Seq, StreamName,
};

use crate::layout::{TRACEPARENT_HEADER, TS_HEADER};
use crate::shared::{OpResult, Shared};

/// JetStream's error code for "no message found".
const NO_MESSAGE_FOUND: u64 = 10037;

/// The most messages one fetch asks for.
const MAX_FETCH: usize = 1024;

/// How long an abandoned read consumer lives on the server (reads delete theirs; this
/// only bounds one whose delete was lost).
const READ_CONSUMER_IDLE: Duration = Duration::from_secs(30);

/// What a consumer's delivery says about a message, from its ack subject:
/// `$JS.ACK.[<domain>.<account hash>.]<stream>.<consumer>.<delivered>.<stream seq>.
/// <consumer seq>.<timestamp ns>.<pending>[.<token>]` (ADR-15). Parsed here rather than
/// through the client's datetime type, whose backend a feature elsewhere may switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Delivery {
    pub(crate) seq: Seq,
    pub(crate) stored_ms: u64,
    /// Messages of the consumer's subject after this one.
    pub(crate) pending: u64,
}

pub(crate) fn delivery(reply: &str) -> Option<Delivery> {
    let tokens: Vec<&str> = reply.split('.').collect();
    if tokens.len() < 9 || tokens[0] != "$JS" || tokens[1] != "ACK" {
        return None;
    }
    let base = if tokens.len() == 9 { 2 } else { 4 };
    let number = |i: usize| tokens.get(base + i)?.parse::<u64>().ok();
    Some(Delivery {
        seq: number(3)?,
        stored_ms: number(5)? / 1_000_000,
        pending: number(6)?,
    })
}

/// `ts` of a stored message: the appender's header, else JetStream's time.
fn ts_of(headers: Option<&HeaderMap>, stored_ms: u64) -> u64 {
    headers
        .and_then(|headers| headers.get(TS_HEADER))
        .and_then(|value| value.as_str().trim().parse().ok())
        .unwrap_or(stored_ms)
}

/// The `traceparent` header of a message, if it has one.
pub(crate) fn traceparent_of(headers: Option<&HeaderMap>) -> Option<String> {
    headers
        .and_then(|headers| headers.get(TRACEPARENT_HEADER))
        .map(|value| value.as_str().to_string())
}

fn decode(
    subject: &str,
    seq: Seq,
    ts: u64,
    traceparent: Option<String>,
    payload: &[u8],
) -> Option<Arc<Event>> {
    match serde_json::from_slice::<EventBody>(payload) {
        Ok(body) => Some(Arc::new(Event {
            seq,
            ts,
            traceparent,
            body,
        })),
        Err(err) => {
            tracing::warn!(subject, seq, error = %err, "nats backplane: message that is not an event body skipped");
            None
        }
    }
}

/// The newest message of `subject`, from the stream leader (so a read sees every append
/// that returned before it).
pub(crate) async fn head(events: &Stream<()>, subject: &str) -> OpResult<Option<StreamMessage>> {
    match events.get_last_raw_message_by_subject(subject).await {
        Ok(message) => Ok(Some(message)),
        Err(err) if err.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(err) => Err((crate::error::classify(&err), err.to_string())),
    }
}

/// What `STREAM.MSG.GET` says about one message: its seq and when JetStream stored it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stored {
    seq: Seq,
    /// `None` if the server's time did not parse (then it is never taken as expired).
    stored_ms: Option<u64>,
}

/// One `STREAM.MSG.GET` on the events stream (`last_by_subj` or `next_by_subj` +
/// `seq`), from the stream leader. Raw JSON: only the seq and the time are needed, and
/// reading the time here keeps it independent of the client's datetime backend.
async fn message_get(shared: &Shared, request: serde_json::Value) -> OpResult<Option<Stored>> {
    let response: serde_json::Value = shared
        .js
        .request(
            format!("STREAM.MSG.GET.{}", shared.layout.stream_name()),
            &request,
        )
        .await
        .map_err(|err| (crate::error::classify(&err), err.to_string()))?;
    if let Some(error) = response.get("error") {
        if error.get("err_code").and_then(|code| code.as_u64()) == Some(NO_MESSAGE_FOUND) {
            return Ok(None);
        }
        return Err((ErrorKind::Rejected, format!("JetStream: {error}")));
    }
    let message = response.get("message");
    let seq = message
        .and_then(|m| m.get("seq"))
        .and_then(|seq| seq.as_u64())
        .ok_or_else(|| {
            (
                ErrorKind::InvalidData,
                format!("unexpected answer: {response}"),
            )
        })?;
    let stored_ms = message
        .and_then(|m| m.get("time"))
        .and_then(|time| time.as_str())
        .and_then(rfc3339_ms);
    Ok(Some(Stored { seq, stored_ms }))
}

/// How many messages JetStream holds for `subject` (`STREAM.INFO` with a subject filter).
async fn subject_count(shared: &Shared, subject: &str) -> OpResult<u64> {
    let response: serde_json::Value = shared
        .js
        .request(
            format!("STREAM.INFO.{}", shared.layout.stream_name()),
            &json!({ "subjects_filter": subject }),
        )
        .await
        .map_err(|err| (crate::error::classify(&err), err.to_string()))?;
    if let Some(error) = response.get("error") {
        return Err((ErrorKind::Rejected, format!("JetStream: {error}")));
    }
    Ok(response
        .get("state")
        .and_then(|state| state.get("subjects"))
        .and_then(|subjects| subjects.get(subject))
        .and_then(|count| count.as_u64())
        .unwrap_or(0))
}

/// `read` with `limit` 0 (the gateway's head read): no consumer, three concurrent
/// requests (the head, the oldest retained message, the subject's count), plus one
/// when `after` falls inside the retained history. `trimmed` comes from the same rule
/// as a full read: the first message after `after` is unreturnable (the count witness
/// when the subject holds `max_events + 1`, or older than `max_age`).
async fn read_head(shared: &Shared, subject: &str, after: Seq) -> OpResult<Replay> {
    let (head, oldest, count) = tokio::try_join!(
        message_get(shared, json!({ "last_by_subj": subject })),
        message_get(shared, json!({ "next_by_subj": subject, "seq": 0 })),
        subject_count(shared, subject),
    )?;
    let Some(head) = head else {
        return Ok(Replay::default());
    };
    let mut replay = Replay {
        events: Vec::new(),
        last_seq: head.seq,
        trimmed: false,
    };
    if head.seq <= after {
        return Ok(replay);
    }
    let Some(oldest) = oldest else {
        // Removed between the two requests: so was everything after `after`.
        replay.trimmed = true;
        return Ok(replay);
    };
    let max_events = u64::try_from(shared.retention.max_events).unwrap_or(u64::MAX);
    if oldest.seq > after && count > max_events {
        replay.trimmed = true;
        return Ok(replay);
    }
    let first_after = if oldest.seq > after {
        Some(oldest)
    } else {
        message_get(shared, json!({ "next_by_subj": subject, "seq": after + 1 })).await?
    };
    replay.trimmed = match first_after {
        Some(first) => first
            .stored_ms
            .is_some_and(|stored| stored < age_cutoff_ms(&shared.retention)),
        None => true,
    };
    Ok(replay)
}

/// Events stored before this (ms since the Unix epoch) are older than `max_age`.
fn age_cutoff_ms(retention: &Retention) -> u64 {
    let max_age_ms = u64::try_from(retention.max_age.as_millis()).unwrap_or(u64::MAX);
    switchboard_backplane::now_ms().saturating_sub(max_age_ms)
}

/// Milliseconds since the Unix epoch of an RFC 3339 UTC time as JetStream writes it
/// (`2024-05-01T12:34:56.123456789Z`).
fn rfc3339_ms(text: &str) -> Option<u64> {
    let text = text
        .strip_suffix('Z')
        .or_else(|| text.strip_suffix("+00:00"))?;
    let (date, time) = text.split_once('T')?;
    let mut date = date.splitn(3, '-').map(|part| part.parse::<i64>().ok());
    let (year, month, day) = (date.next()??, date.next()??, date.next()??);
    let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut clock = clock.splitn(3, ':').map(|part| part.parse::<i64>().ok());
    let (hour, minute, second) = (clock.next()??, clock.next()??, clock.next()??);
    let millis = format!("{fraction:0<3}").get(..3)?.parse::<i64>().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
    u64::try_from(seconds * 1000 + millis).ok()
}

pub(crate) async fn append(
    shared: &Shared,
    stream: &StreamName,
    body: EventBody,
    traceparent: Option<String>,
) -> Result<Arc<Event>, AppendError> {
    let payload = serde_json::to_vec(&body)
        .map_err(|err| AppendError::new(ErrorKind::InvalidData, err.to_string()))?;
    let ts = switchboard_backplane::now_ms();
    let mut headers = HeaderMap::new();
    headers.insert(TS_HEADER, ts.to_string().as_str());
    if let Some(traceparent) = &traceparent {
        headers.insert(TRACEPARENT_HEADER, traceparent.as_str());
    }
    let subject = shared.layout.event_subject(stream);
    // One publish, one ack: the ack carries the stream sequence, which is the seq.
    let ack = shared
        .run(async {
            shared
                .js
                .publish_with_headers(subject, headers, payload.into())
                .await?
                .await
        })
        .await
        .map_err(|(kind, detail)| AppendError::new(kind, detail))?;
    Ok(Arc::new(Event {
        seq: ack.sequence,
        ts,
        traceparent,
        body,
    }))
}

pub(crate) async fn read(
    shared: &Shared,
    stream: &StreamName,
    after: Option<Seq>,
    limit: usize,
) -> Result<Replay, ReadError> {
    shared
        .run_inner(read_inner(shared, stream, after.unwrap_or(0), limit))
        .await
        .map_err(|(kind, detail)| ReadError::new(kind, detail))
}

async fn read_inner(
    shared: &Shared,
    stream: &StreamName,
    after: Seq,
    limit: usize,
) -> Result<Replay, (ErrorKind, String)> {
    let subject = shared.layout.event_subject(stream);
    if limit == 0 {
        return read_head(shared, &subject, after).await;
    }
    // Round trip 1: the head. Nothing after `after` (a caught-up resume, the end of
    // paging, a stream never written) needs nothing more.
    let Some(head) = message_get(shared, json!({ "last_by_subj": subject })).await? else {
        return Ok(Replay::default());
    };
    if head.seq <= after {
        return Ok(Replay {
            events: Vec::new(),
            last_seq: head.seq,
            trimmed: false,
        });
    }

    // Round trip 2: an ephemeral consumer on this subject from `after + 1`; its create
    // answer says how many messages it will see.
    let consumer = shared
        .events
        .create_consumer(pull::Config {
            filter_subject: subject.clone(),
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: after + 1,
            },
            ack_policy: consumer::AckPolicy::None,
            inactive_threshold: READ_CONSUMER_IDLE,
            memory_storage: true,
            num_replicas: 1,
            ..Default::default()
        })
        .await
        .map_err(|err| (crate::error::classify(&err), err.to_string()))?;
    let info = consumer.cached_info();
    let total = usize::try_from(info.num_pending).unwrap_or(usize::MAX);
    let name = info.name.clone();

    let scanned = scan(&consumer, &shared.retention, total, limit, &subject).await;

    // Not waited for: the consumer is gone within a round trip, or after
    // READ_CONSUMER_IDLE if this delete is lost.
    let events_stream = shared.events.clone();
    let timeout = shared.op_timeout;
    tokio::spawn(async move {
        let _ = tokio::time::timeout(timeout, events_stream.delete_consumer(&name)).await;
    });

    let (events, trimmed, newest) = scanned?;
    Ok(Replay {
        events,
        last_seq: head.seq.max(newest),
        // Nothing left after `after` although the head was after it: removed meanwhile.
        trimmed: trimmed || total == 0,
    })
}

/// Round trips 3…: fetch oldest first, skip what retention no longer allows (each one
/// proves a trim), collect up to `limit`. Stops at the first returnable message when
/// `limit` is 0 (it settles `trimmed`: unreturnable messages only ever form a prefix).
async fn scan(
    consumer: &consumer::Consumer<pull::Config>,
    retention: &Retention,
    total: usize,
    limit: usize,
    subject: &str,
) -> Result<(Vec<Arc<Event>>, bool, Seq), (ErrorKind, String)> {
    let max_events = u64::try_from(retention.max_events).unwrap_or(u64::MAX);
    let cutoff_ms = age_cutoff_ms(retention);
    let mut events = Vec::new();
    let mut trimmed = false;
    let mut newest = 0;
    let mut fetched = 0;
    let mut settled = false;
    while fetched < total && !settled && (limit == 0 || events.len() < limit) {
        // One more than needed: the first batch usually starts with the count witness.
        let want = if limit == 0 {
            1
        } else {
            (limit - events.len()).saturating_add(1)
        };
        let batch = want.min(total - fetched).min(MAX_FETCH);
        let mut messages = consumer
            .fetch()
            .max_messages(batch)
            .messages()
            .await
            .map_err(|err| (crate::error::classify(&err), err.to_string()))?;
        let mut got = 0;
        while let Some(message) = messages.next().await {
            let message = message.map_err(|err| (ErrorKind::Unavailable, err.to_string()))?;
            got += 1;
            fetched += 1;
            let Some(Delivery {
                seq,
                stored_ms,
                pending,
            }) = message.reply.as_deref().and_then(delivery)
            else {
                return Err((
                    ErrorKind::InvalidData,
                    "a JetStream delivery without a readable ack subject".into(),
                ));
            };
            newest = newest.max(seq);
            // `pending` is how many messages of the subject follow this one: with
            // `max_events` or more after it, it is beyond the count retention.
            if pending >= max_events || stored_ms < cutoff_ms {
                trimmed = true;
                continue;
            }
            if limit == 0 {
                settled = true;
                break;
            }
            if events.len() < limit {
                let ts = ts_of(message.headers.as_ref(), stored_ms);
                let traceparent = traceparent_of(message.headers.as_ref());
                if let Some(event) = decode(subject, seq, ts, traceparent, &message.payload) {
                    events.push(event);
                }
            }
        }
        if got == 0 {
            break;
        }
    }
    Ok((events, trimmed, newest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_subjects_of_both_formats_parse() {
        let v1 = "$JS.ACK.SWITCHBOARD_sb.c1.1.42.7.1790230470084404000.3";
        assert_eq!(
            delivery(v1),
            Some(Delivery {
                seq: 42,
                stored_ms: 1_790_230_470_084,
                pending: 3
            })
        );
        let v2 = "$JS.ACK.hub.ACCHASH.SWITCHBOARD_sb.c1.1.42.7.1790230470084404000.3.tok";
        assert_eq!(delivery(v2), delivery(v1));
        assert_eq!(delivery("_INBOX.abc"), None);
        assert_eq!(delivery("$JS.ACK.s.c.1.x.7.1.3"), None);
    }

    #[test]
    fn jetstream_times_parse() {
        assert_eq!(rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            rfc3339_ms("2026-11-22T05:01:51.426429221Z"),
            Some(1_795_323_711_426)
        );
        assert_eq!(rfc3339_ms("2000-02-29T23:59:59.5Z"), Some(951_868_799_500));
        assert_eq!(
            rfc3339_ms("2024-01-01T00:00:00+00:00"),
            Some(1_704_067_200_000)
        );
        assert_eq!(rfc3339_ms("2024-01-01T00:00:00+02:00"), None);
        assert_eq!(rfc3339_ms("garbage"), None);
    }

    #[test]
    fn ts_prefers_the_appender_header() {
        let mut headers = HeaderMap::new();
        headers.insert(TS_HEADER, "1234");
        assert_eq!(ts_of(Some(&headers), 99), 1234);
        assert_eq!(ts_of(None, 99), 99);
        headers.insert(TS_HEADER, "garbage");
        assert_eq!(ts_of(Some(&headers), 99), 99);
    }
}
