//! This replica's identity and heartbeat. A live replica keeps a record in `replicas`
//! that expires `lapse` after its last renewal; renewing every `beat` keeps it there.
//! A replica missing from `replicas` is dead to everyone else: its sessions' turn
//! queues are taken over (see [`super::takeover`]).
//!
//! A replica that cannot renew for `lapse - beat`, or whose renewal is answered a lapse
//! or more after the previous one was sent (its record may have expired in between),
//! assumes the others already count it dead. It gives up everything it runs under that identity (the [`Replica::fence`]
//! token is cancelled: its turns stop without writing another event) and starts over
//! under a new id, so it never competes with whoever took its sessions over.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use switchboard_backplane::{Backplane, RecordError, RecordKey};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::ids::new_id;
use crate::metrics::Metrics;
use crate::records::namespace::REPLICAS;

/// Give up `current`: cancel its fence and start over under a new id, not renewed yet.
fn give_up(current: &mut Incarnation) {
    tracing::warn!(replica = %current.id, "heartbeat lapsed: giving up this replica's turns and starting over under a new id");
    current.fence.cancel();
    *current = Incarnation {
        id: new_id("r"),
        fence: CancellationToken::new(),
        renewed_at: None,
    };
}

/// How often the heartbeat is renewed, and how long it lives without renewal.
#[derive(Debug, Clone, Copy)]
pub struct LeaseTiming {
    /// `--turn-lease-beat`.
    pub beat: Duration,
    /// `--turn-lease-lapse`.
    pub lapse: Duration,
}

struct Incarnation {
    id: String,
    /// Cancelled when this identity is given up.
    fence: CancellationToken,
    /// When the last renewal that the backplane took was sent.
    renewed_at: Option<Instant>,
}

pub struct Replica {
    backplane: Arc<dyn Backplane>,
    metrics: Arc<Metrics>,
    timing: LeaseTiming,
    current: Mutex<Incarnation>,
}

impl Replica {
    pub fn new(
        backplane: Arc<dyn Backplane>,
        metrics: Arc<Metrics>,
        timing: LeaseTiming,
    ) -> Replica {
        Replica {
            backplane,
            metrics,
            timing,
            current: Mutex::new(Incarnation {
                id: new_id("r"),
                fence: CancellationToken::new(),
                renewed_at: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Incarnation> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn timing(&self) -> LeaseTiming {
        self.timing
    }

    /// The current identity and its fence, read together.
    pub fn identity(&self) -> (String, CancellationToken) {
        let current = self.lock();
        (current.id.clone(), current.fence.clone())
    }

    pub fn id(&self) -> String {
        self.lock().id.clone()
    }

    /// Whether everyone else still counts this replica alive: its last renewal was
    /// taken less than `lapse - beat` ago. Only then may it claim sessions.
    pub fn is_alive(&self) -> bool {
        self.fresh(&self.lock())
    }

    /// Renew the heartbeat once. An identity whose last renewal may have lapsed for
    /// the others (a frozen process, a long outage) is given up first, even when the
    /// backplane answers again: someone may have taken its sessions over.
    pub async fn renew(&self) -> Result<(), RecordError> {
        let id = {
            let mut current = self.lock();
            if !self.fresh(&current) && current.renewed_at.is_some() {
                give_up(&mut current);
            }
            current.id.clone()
        };
        let sent_at = Instant::now();
        let result = self
            .backplane
            .record_put(
                &RecordKey::new(REPLICAS, &id),
                Bytes::from_static(b"1"),
                Some(self.timing.lapse),
            )
            .await;
        match &result {
            Ok(()) => {
                let resurrected = {
                    let mut current = self.lock();
                    if current.id != id {
                        false
                    } else if current
                        .renewed_at
                        .is_some_and(|last| last.elapsed() >= self.timing.lapse)
                    {
                        // Answered a lapse or more after the previous renewal was sent
                        // (a frozen backplane): the record may have expired before this
                        // one wrote it again, and the others may have taken this
                        // replica's sessions over meanwhile. Counting from `sent_at`
                        // would call the identity alive through that gap.
                        give_up(&mut current);
                        true
                    } else {
                        current.renewed_at = Some(sent_at);
                        false
                    }
                };
                if resurrected {
                    // Let the others see the given-up identity gone now, not after
                    // the record this renewal wrote expires.
                    let _ = self
                        .backplane
                        .record_delete(&RecordKey::new(REPLICAS, &id))
                        .await;
                }
            }
            Err(_) => self.metrics.replica_heartbeat_failures.inc(),
        }
        result
    }

    /// Whether everyone else counts this replica alive for at least `margin` more
    /// (without another renewal).
    pub fn is_alive_for(&self, margin: Duration) -> bool {
        let current = self.lock();
        current.renewed_at.is_some_and(|at| {
            at.elapsed() + margin < self.timing.lapse.saturating_sub(self.timing.beat)
        })
    }

    /// Whether the identity may have lapsed for the others, as [`Replica::is_alive`]
    /// tells. If so it is given up now rather than at the next renewal: its fence is
    /// cancelled, so a worker that sees this stops too and leaves its session to
    /// whoever takes it over (who ends the turn). Merely not acting on a lapsed
    /// identity would let its worker go on changing the session's queue.
    pub fn give_up_if_lapsed(&self) -> bool {
        let mut current = self.lock();
        if self.fresh(&current) {
            return false;
        }
        give_up(&mut current);
        true
    }

    fn fresh(&self, current: &Incarnation) -> bool {
        current
            .renewed_at
            .is_some_and(|at| at.elapsed() < self.timing.lapse.saturating_sub(self.timing.beat))
    }

    /// Renew every `beat` until `stop`; then remove the record, so the others need not
    /// wait for it to lapse.
    pub async fn keep_alive(&self, stop: CancellationToken) {
        loop {
            if let Err(e) = self.renew().await {
                tracing::debug!(error = %e, "heartbeat not renewed");
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(self.timing.beat) => {}
            }
        }
        let id = self.id();
        if let Err(e) = self
            .backplane
            .record_delete(&RecordKey::new(REPLICAS, &id))
            .await
        {
            tracing::debug!(error = %e, "heartbeat record left to lapse");
        }
    }

    /// Make the last renewal look older than the lapse, as after a freeze: the next
    /// renewal gives this identity up and starts over under a new id.
    #[cfg(test)]
    pub(crate) fn backdate_renewal(&self) {
        let mut current = self.lock();
        current.renewed_at = Instant::now().checked_sub(self.timing.lapse);
    }

    /// The ids of every replica alive now.
    pub async fn alive(&self) -> Result<HashSet<String>, RecordError> {
        Ok(self
            .backplane
            .record_list(REPLICAS)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }
}
