//! One turn per session across replicas: a lease in the shared records.

use std::time::Duration;

use bytes::Bytes;
use switchboard_backplane::{Backoff, RecordKey};

use super::Turns;
use crate::ids::new_id;
use crate::records::namespace::TURN_LEASES;

/// How much longer than the turn deadline a lease lives.
pub(super) const LEASE_MARGIN: Duration = Duration::from_secs(30);

impl Turns {
    /// Take the session's turn lease in the shared records, so that across replicas
    /// at most one turn of a session runs at a time. The lease outlives the turn
    /// deadline a little, so a replica that dies mid-turn frees it by expiry. Returns
    /// `None` only when the drain grace ran out while waiting.
    pub(super) async fn acquire_lease(&self, session_id: &str) -> Option<String> {
        let key = RecordKey::new(TURN_LEASES, session_id);
        let holder = new_id("lease");
        let ttl = self.limits.deadline + LEASE_MARGIN;
        let mut backoff = Backoff::new(Duration::from_millis(20), Duration::from_millis(500));
        loop {
            match self
                .backplane
                .record_create(&key, Bytes::from(holder.clone()), Some(ttl))
                .await
            {
                Ok(true) => return Some(holder),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(session_id, error = %e, "turn lease unavailable; retrying")
                }
            }
            tokio::select! {
                () = self.abort_all.cancelled() => return None,
                () = backoff.wait() => {}
            }
        }
    }

    /// Give the lease back, if it is still ours.
    pub(super) async fn release_lease(&self, session_id: &str, holder: &str) {
        let key = RecordKey::new(TURN_LEASES, session_id);
        match self.backplane.record_get(&key).await {
            Ok(Some(value)) if value.as_ref() == holder.as_bytes() => {
                if let Err(e) = self.backplane.record_delete(&key).await {
                    tracing::warn!(session_id, error = %e, "could not release a turn lease; it will expire");
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(session_id, error = %e, "could not release a turn lease; it will expire")
            }
        }
    }
}
