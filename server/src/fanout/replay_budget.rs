//! How much history the replays of this process may hold at once
//! (`--replay-memory-bytes`).
//!
//! A joiner's replay reads history a page at a time and holds the page until its
//! client has read it. Each replay sizes its pages to the room in its client's
//! outbound queue (see `registry`), and reserves the page's estimated size here
//! before reading it: when many joiners of large sessions do not read, the next
//! replay waits for room and, past its patience, is refused with `unavailable`
//! (retry later) instead of the process holding a page for each of them.

use std::sync::Arc;
use std::time::Duration;

use prometheus::IntGauge;
use switchboard_protocol::ErrorCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ClientError;

/// Default of `--replay-memory-bytes` (64 MiB).
pub const DEFAULT_REPLAY_MEMORY_BYTES: u64 = 64 * 1024 * 1024;

/// The process-wide replay budget, counted in KiB.
pub struct ReplayBudget {
    permits: Arc<Semaphore>,
    total_kib: usize,
    held_bytes: IntGauge,
}

/// A page's share of the budget, given back when dropped.
pub struct Held {
    _permit: OwnedSemaphorePermit,
    bytes: i64,
    held_bytes: IntGauge,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.held_bytes.sub(self.bytes);
    }
}

impl ReplayBudget {
    /// A budget of `bytes` (at least 1 KiB), reporting what is held in `held_bytes`.
    pub fn new(bytes: u64, held_bytes: IntGauge) -> ReplayBudget {
        let total_kib = usize::try_from(bytes / 1024)
            .unwrap_or(usize::MAX)
            .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        ReplayBudget {
            permits: Arc::new(Semaphore::new(total_kib)),
            total_kib,
            held_bytes,
        }
    }

    /// The most one page may reserve: the whole budget.
    pub fn total_bytes(&self) -> usize {
        self.total_kib.saturating_mul(1024)
    }

    /// Reserve `bytes` (at most the whole budget), waiting up to `patience` for other
    /// replays to give theirs back.
    pub async fn hold(&self, bytes: usize, patience: Duration) -> Result<Held, ClientError> {
        let kib = bytes.div_ceil(1024).clamp(1, self.total_kib);
        let wanted = u32::try_from(kib).unwrap_or(u32::MAX);
        match tokio::time::timeout(patience, self.permits.clone().acquire_many_owned(wanted)).await
        {
            Ok(Ok(permit)) => {
                let bytes = i64::try_from(kib.saturating_mul(1024)).unwrap_or(i64::MAX);
                self.held_bytes.add(bytes);
                Ok(Held {
                    _permit: permit,
                    bytes,
                    held_bytes: self.held_bytes.clone(),
                })
            }
            _ => Err(ClientError::new(
                ErrorCode::Unavailable,
                "this replica is replaying history to many clients at once (--replay-memory-bytes); join again in a moment",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_replay_waits_for_room_then_is_refused_and_gets_room_once_others_finish() {
        let gauge = IntGauge::new("test_replay_bytes", "test").unwrap();
        let budget = ReplayBudget::new(64 * 1024, gauge.clone());
        let first = budget
            .hold(40 * 1024, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(gauge.get(), 40 * 1024);
        let refused = budget
            .hold(40 * 1024, Duration::from_secs(1))
            .await
            .err()
            .unwrap();
        assert_eq!(refused.code, ErrorCode::Unavailable);
        drop(first);
        assert_eq!(gauge.get(), 0);
        let whole = budget
            .hold(usize::MAX, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(
            gauge.get(),
            64 * 1024,
            "a page reserves at most the whole budget"
        );
        drop(whole);
    }
}
