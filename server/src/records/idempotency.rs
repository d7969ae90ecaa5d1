//! Idempotency keys: a retried request (a `client_message_id`, a publish's
//! `idempotency_key`) gets the first attempt's answer and appends nothing.
//!
//! A key is reserved atomically in the shared records before the append (so two
//! replicas racing on one key cannot both append), then settled with the appended
//! `seq`. When the append failed, its outcome is not always known (a timed-out append
//! may still be stored), so a key whose request can be recognised in history is marked
//! [`failed`](Reservation::failed) rather than released: the next retry checks
//! history at once and answers with the stored event or appends its own. Other keys
//! are released. A reservation left unsettled (its replica died, or the cleanup failed
//! in the same outage) is resolved by a later retry: see [`Reserved::Abandoned`]; a
//! key that cannot be recognised in history is reserved for [`PENDING_TTL`] only, so
//! it is not blocked for a day.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use switchboard_backplane::{Backplane, RecordKey, Seq, StreamName, now_ms};
use switchboard_protocol::ErrorCode;

use crate::error::ClientError;
use crate::records::namespace::{MESSAGE_IDS, PUBLISH_KEYS};

/// How long a key is remembered.
pub const TTL: Duration = Duration::from_secs(24 * 3600);
/// How long an unsettled reservation of a key that cannot be checked against history
/// lives: past it, a retry appends (at least once rather than never).
pub const PENDING_TTL: Duration = Duration::from_secs(60);
/// How long a retry waits for a concurrent first attempt to settle.
const SETTLE_PATIENCE: Duration = Duration::from_secs(1);
/// How long a reservation may stay unsettled before its attempt counts as stopped (its
/// replica died between the reservation and the settle). Far longer than the one
/// append in between may take (the backplanes time out an operation after 5 s).
pub const ABANDONED_AFTER: Duration = Duration::from_secs(15);

/// The key of a `message.send`'s `client_message_id`, within its session.
pub fn message_key(session_id: &str, client_message_id: &str) -> RecordKey {
    RecordKey::new(MESSAGE_IDS, format!("{session_id}/{client_message_id}"))
}

/// The key of a publish's `idempotency_key`, within its target stream.
pub fn publish_key(stream: &StreamName, idempotency_key: &str) -> RecordKey {
    RecordKey::new(PUBLISH_KEYS, format!("{stream}/{idempotency_key}"))
}

/// What a key is bound to: the id the first attempt made, and its `seq` once known.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Reservation {
    pub id: String,
    pub seq: Option<Seq>,
    /// When it was reserved (ms since the Unix epoch); absent once settled, and in
    /// older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<u64>,
    /// The attempt's append failed, perhaps after storing its event: the next retry
    /// checks history at once instead of waiting for [`ABANDONED_AFTER`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failed: bool,
}

/// What [`reserve`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserved {
    /// This call holds the reservation: go ahead and append, then [`settle`].
    Held,
    /// An earlier attempt's settled reservation.
    Earlier(Reservation),
    /// An earlier attempt's reservation, unsettled for [`ABANDONED_AFTER`]: that attempt
    /// stopped, after its append or before it. `raw` is the stored value, for
    /// [`take_over`].
    Abandoned { earlier: Reservation, raw: Bytes },
}

fn encode(reservation: &Reservation) -> Bytes {
    Bytes::from(serde_json::to_vec(reservation).unwrap_or_default())
}

fn pending(id: &str) -> Reservation {
    Reservation {
        id: id.to_string(),
        seq: None,
        at_ms: Some(now_ms()),
        failed: false,
    }
}

/// Reserve `key` for `id` for `ttl` unless settled ([`TTL`], or [`PENDING_TTL`] for a
/// key that cannot be checked against history), or say who holds it.
pub async fn reserve(
    backplane: &dyn Backplane,
    key: &RecordKey,
    id: &str,
    ttl: Duration,
) -> Result<Reserved, ClientError> {
    if backplane
        .record_create(key, encode(&pending(id)), Some(ttl))
        .await?
    {
        return Ok(Reserved::Held);
    }
    // Someone else reserved it; its seq appears once its append completes.
    let abandoned_after_ms = ABANDONED_AFTER.as_millis() as u64;
    let deadline = tokio::time::Instant::now() + SETTLE_PATIENCE;
    while tokio::time::Instant::now() < deadline {
        if let Some(bytes) = backplane.record_get(key).await?
            && let Ok(earlier) = serde_json::from_slice::<Reservation>(&bytes)
        {
            if earlier.seq.is_some() {
                return Ok(Reserved::Earlier(earlier));
            }
            if earlier.failed
                || earlier
                    .at_ms
                    .is_some_and(|at| now_ms() >= at.saturating_add(abandoned_after_ms))
            {
                return Ok(Reserved::Abandoned {
                    earlier,
                    raw: bytes,
                });
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(in_progress())
}

/// The answer to a retry while the first attempt is still in progress.
pub fn in_progress() -> ClientError {
    ClientError::new(
        ErrorCode::Conflict,
        "a request with this idempotency key is still being processed; retry shortly",
    )
}

/// Take the [`Reserved::Abandoned`] reservation stored as `raw` over for `id`, once
/// its attempt's event is known not to have been appended. False when another request
/// changed it first.
pub async fn take_over(
    backplane: &dyn Backplane,
    key: &RecordKey,
    raw: &[u8],
    id: &str,
) -> Result<bool, ClientError> {
    Ok(backplane
        .record_replace(key, raw, Some(encode(&pending(id))), Some(TTL))
        .await?)
}

/// Mark the reservation of `id` failed: its append failed, perhaps after storing the
/// event, and the next retry checks history at once.
pub async fn mark_failed(
    backplane: &dyn Backplane,
    key: &RecordKey,
    id: &str,
) -> Result<(), ClientError> {
    let failed = Reservation {
        failed: true,
        ..pending(id)
    };
    backplane
        .record_put(key, encode(&failed), Some(TTL))
        .await?;
    Ok(())
}

/// Record the `seq` the reserved request appended, or release the key when the
/// append failed (`seq` = `None`).
pub async fn settle(
    backplane: &dyn Backplane,
    key: &RecordKey,
    id: &str,
    seq: Option<Seq>,
) -> Result<(), ClientError> {
    match seq {
        Some(seq) => {
            let settled = Reservation {
                id: id.to_string(),
                seq: Some(seq),
                at_ms: None,
                failed: false,
            };
            backplane
                .record_put(key, encode(&settled), Some(TTL))
                .await?;
        }
        None => {
            backplane.record_delete(key).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_backplane::{MemoryBackplane, Retention};

    #[tokio::test]
    async fn the_first_attempt_reserves_and_a_retry_gets_its_answer() {
        let backplane = MemoryBackplane::new(Retention::default());
        let key = RecordKey::new("test-idempotency", "k1");
        assert_eq!(
            reserve(&backplane, &key, "m_1", TTL).await.unwrap(),
            Reserved::Held
        );
        settle(&backplane, &key, "m_1", Some(7)).await.unwrap();
        let earlier = reserve(&backplane, &key, "m_2", TTL).await.unwrap();
        assert_eq!(
            earlier,
            Reserved::Earlier(Reservation {
                id: "m_1".into(),
                seq: Some(7),
                at_ms: None,
                failed: false,
            })
        );
    }

    #[tokio::test]
    async fn a_failed_attempt_releases_the_key() {
        let backplane = MemoryBackplane::new(Retention::default());
        let key = RecordKey::new("test-idempotency", "k2");
        assert_eq!(
            reserve(&backplane, &key, "m_1", TTL).await.unwrap(),
            Reserved::Held
        );
        settle(&backplane, &key, "m_1", None).await.unwrap();
        assert_eq!(
            reserve(&backplane, &key, "m_2", TTL).await.unwrap(),
            Reserved::Held
        );
    }

    #[tokio::test]
    async fn a_retry_during_the_first_attempt_is_told_to_retry() {
        let backplane = MemoryBackplane::new(Retention::default());
        let key = RecordKey::new("test-idempotency", "k3");
        reserve(&backplane, &key, "m_1", TTL).await.unwrap();
        let refused = reserve(&backplane, &key, "m_2", TTL).await.unwrap_err();
        assert_eq!(refused.code, ErrorCode::Conflict);
    }

    #[tokio::test]
    async fn a_reservation_left_unsettled_is_abandoned_and_can_be_taken_over_once() {
        let backplane = MemoryBackplane::new(Retention::default());
        let key = RecordKey::new("test-idempotency", "k4");
        // Reserved long ago by an attempt whose replica died before settling.
        let stale = Reservation {
            id: "m_1".into(),
            seq: None,
            at_ms: Some(now_ms() - ABANDONED_AFTER.as_millis() as u64 - 1),
            failed: false,
        };
        backplane
            .record_put(&key, encode(&stale), Some(TTL))
            .await
            .unwrap();
        let Reserved::Abandoned { earlier, raw } =
            reserve(&backplane, &key, "m_2", TTL).await.unwrap()
        else {
            panic!("not abandoned");
        };
        assert_eq!(earlier, stale);
        assert!(take_over(&backplane, &key, &raw, "m_2").await.unwrap());
        assert!(
            !take_over(&backplane, &key, &raw, "m_3").await.unwrap(),
            "taken over once"
        );
        settle(&backplane, &key, "m_2", Some(9)).await.unwrap();
        let Reserved::Earlier(settled) = reserve(&backplane, &key, "m_4", TTL).await.unwrap()
        else {
            panic!("not settled");
        };
        assert_eq!((settled.id.as_str(), settled.seq), ("m_2", Some(9)));
    }
}
