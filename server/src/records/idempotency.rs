//! Idempotency keys: a retried request (a `client_message_id`, a publish's
//! `idempotency_key`) gets the first attempt's answer and appends nothing.
//!
//! A key is reserved atomically in the shared records before the append (so two
//! replicas racing on one key cannot both append), then settled with the appended
//! `seq`, or released if the append failed so a retry can succeed.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use switchboard_backplane::{Backplane, RecordKey, Seq, StreamName};
use switchboard_protocol::ErrorCode;

use crate::error::ClientError;
use crate::records::namespace::{MESSAGE_IDS, PUBLISH_KEYS};

/// How long a key is remembered.
pub const TTL: Duration = Duration::from_secs(24 * 3600);
/// How long a retry waits for a concurrent first attempt to settle.
const SETTLE_PATIENCE: Duration = Duration::from_secs(1);

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
}

/// Reserve `key` for `id`. `None`: this call holds the reservation (go ahead and
/// append, then [`settle`]). `Some`: an earlier attempt's settled reservation.
pub async fn reserve(
    backplane: &dyn Backplane,
    key: &RecordKey,
    id: &str,
) -> Result<Option<Reservation>, ClientError> {
    let fresh = Reservation {
        id: id.to_string(),
        seq: None,
    };
    let value = Bytes::from(serde_json::to_vec(&fresh).unwrap_or_default());
    if backplane.record_create(key, value, Some(TTL)).await? {
        return Ok(None);
    }
    // Someone else reserved it; its seq appears once its append completes.
    let deadline = tokio::time::Instant::now() + SETTLE_PATIENCE;
    while tokio::time::Instant::now() < deadline {
        if let Some(bytes) = backplane.record_get(key).await?
            && let Ok(earlier) = serde_json::from_slice::<Reservation>(&bytes)
            && earlier.seq.is_some()
        {
            return Ok(Some(earlier));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(ClientError::new(
        ErrorCode::Conflict,
        "a request with this idempotency key is still being processed; retry shortly",
    ))
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
            };
            let value = Bytes::from(serde_json::to_vec(&settled).unwrap_or_default());
            backplane.record_put(key, value, Some(TTL)).await?;
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
        assert_eq!(reserve(&backplane, &key, "m_1").await.unwrap(), None);
        settle(&backplane, &key, "m_1", Some(7)).await.unwrap();
        let earlier = reserve(&backplane, &key, "m_2").await.unwrap();
        assert_eq!(
            earlier,
            Some(Reservation {
                id: "m_1".into(),
                seq: Some(7)
            })
        );
    }

    #[tokio::test]
    async fn a_failed_attempt_releases_the_key() {
        let backplane = MemoryBackplane::new(Retention::default());
        let key = RecordKey::new("test-idempotency", "k2");
        assert_eq!(reserve(&backplane, &key, "m_1").await.unwrap(), None);
        settle(&backplane, &key, "m_1", None).await.unwrap();
        assert_eq!(reserve(&backplane, &key, "m_2").await.unwrap(), None);
    }
}
