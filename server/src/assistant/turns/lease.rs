//! Which replica drains a session's turn queue: its lease in `turn-leases`.
//!
//! The lease exists exactly while the session has turns waiting or running. It names
//! the replica that owns it (alive while that replica's heartbeat is, see
//! [`super::replica`]) and is only ever changed by compare-and-set
//! (`Backplane::record_replace`), so every change is made knowing the value it
//! replaces:
//!
//! - a replica that accepted a message **claims** the lease (creates it) or, when
//!   another replica holds it, **pokes** it (counts one more waiting message);
//! - the owner **releases** it (removes it) only when it found nothing left to answer
//!   and nobody poked since: a poke makes the release fail, and the owner looks again.
//!   So a message accepted while the owner was finishing is never left behind;
//! - while draining, the owner **hands it over** (marks it released) for another
//!   replica to take at once;
//! - another replica **takes it over** when its owner is no longer alive.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use switchboard_backplane::{Backoff, RecordError, RecordKey};
use tokio_util::sync::CancellationToken;

use super::Turns;
use crate::ids::new_id;
use crate::records::namespace::TURN_LEASES;

/// A session's turn lease as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Lease {
    /// The replica draining the queue.
    pub(super) replica: String,
    /// Unique per claim or takeover: tells an owner its lease from a successor's.
    pub(super) token: String,
    /// Messages waiting behind the running turn, as last counted (approximate).
    pub(super) queued: usize,
    /// Handed over by a draining owner: any replica may take it at once.
    #[serde(default)]
    pub(super) released: bool,
}

impl Lease {
    fn encode(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    pub(super) fn decode(raw: &[u8]) -> Option<Lease> {
        serde_json::from_slice(raw).ok()
    }
}

/// What happened to a lease an owner tried to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Held {
    /// Changed as asked.
    Kept,
    /// Someone poked it meanwhile: the owner must look for new messages.
    Poked,
    /// It is someone else's now, or gone: the owner must stop.
    Lost,
}

/// An owned lease: the value this replica last wrote, and its identity's fence.
pub struct OwnedLease {
    pub(super) session_id: String,
    key: RecordKey,
    raw: Bytes,
    lease: Lease,
    /// Cancelled when this replica gives up the identity the lease was taken under.
    pub(super) fence: CancellationToken,
}

/// Backplane trouble while changing a lease: retried this often before giving up.
const PATIENCE: Duration = Duration::from_secs(30);

impl OwnedLease {
    fn new(session_id: &str, lease: Lease, fence: CancellationToken) -> OwnedLease {
        OwnedLease {
            session_id: session_id.to_string(),
            key: RecordKey::new(TURN_LEASES, session_id),
            raw: lease.encode(),
            lease,
            fence,
        }
    }

    /// Replace the lease with `change` applied (`None`: remove it), retrying through
    /// pokes and short backplane outages.
    async fn change(
        &mut self,
        turns: &Turns,
        change: Option<&(dyn Fn(&mut Lease) + Sync)>,
    ) -> Held {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut backoff = Backoff::new(Duration::from_millis(20), Duration::from_millis(500));
        let mut poked = false;
        loop {
            if self.fence.is_cancelled() {
                return Held::Lost;
            }
            let next = change.map(|change| {
                let mut next = self.lease.clone();
                change(&mut next);
                next
            });
            let attempt = async {
                let replaced = turns
                    .backplane
                    .record_replace(&self.key, &self.raw, next.as_ref().map(Lease::encode), None)
                    .await?;
                if replaced {
                    return Ok::<_, RecordError>(None);
                }
                Ok(Some(turns.backplane.record_get(&self.key).await?))
            };
            match attempt.await {
                Ok(None) => {
                    if let Some(next) = next {
                        self.raw = next.encode();
                        self.lease = next;
                    }
                    return if poked { Held::Poked } else { Held::Kept };
                }
                Ok(Some(current)) => match current.as_deref().and_then(Lease::decode) {
                    Some(lease) if lease.token == self.lease.token => {
                        // Poked: adopt the new value. A removal stops here (there is
                        // a new message); a change is tried again on the new value.
                        poked = true;
                        self.raw = current.unwrap_or_default();
                        self.lease = lease;
                        if change.is_none() {
                            return Held::Poked;
                        }
                        continue;
                    }
                    _ => return Held::Lost,
                },
                Err(e) => {
                    if tokio::time::Instant::now() >= deadline {
                        tracing::warn!(session_id = %self.session_id, error = %e, "turn lease unreachable; leaving it to lapse");
                        return Held::Lost;
                    }
                    tracing::debug!(session_id = %self.session_id, error = %e, "turn lease unreachable; retrying");
                }
            }
            tokio::select! {
                () = self.fence.cancelled() => return Held::Lost,
                () = backoff.wait() => {}
            }
        }
    }

    /// Record how many messages wait behind the turn about to run.
    pub(super) async fn set_queued(&mut self, turns: &Turns, queued: usize) -> Held {
        self.change(turns, Some(&move |lease: &mut Lease| lease.queued = queued))
            .await
    }

    /// Remove the lease: the queue is empty. `Poked` means it is not (and the lease is
    /// still ours).
    pub(super) async fn release(&mut self, turns: &Turns) -> Held {
        self.change(turns, None).await
    }

    /// Mark the lease released, for another replica to take at once (draining).
    pub(super) async fn hand_over(&mut self, turns: &Turns) -> Held {
        self.change(turns, Some(&|lease: &mut Lease| lease.released = true))
            .await
    }
}

/// What [`Turns::claim_or_poke`] did.
pub enum Claim {
    /// This replica owns the session's queue now: start draining it.
    Owned(OwnedLease),
    /// Another replica owns it and will find the message.
    Poked,
}

impl Turns {
    fn new_lease(&self, replica: String) -> Lease {
        Lease {
            replica,
            token: new_id("lease"),
            queued: 0,
            released: false,
        }
    }

    /// After a message was appended to the session: make sure a replica drains its
    /// queue. Claim the lease when nobody holds it, otherwise poke it.
    pub(super) async fn claim_or_poke(&self, session_id: &str) -> Result<Claim, RecordError> {
        let key = RecordKey::new(TURN_LEASES, session_id);
        let mut backoff = Backoff::new(Duration::from_millis(5), Duration::from_millis(200));
        loop {
            match self.backplane.record_get(&key).await? {
                None => {
                    let (id, fence) = self.replica.identity();
                    let lease = self.new_lease(id);
                    if self
                        .backplane
                        .record_create(&key, lease.encode(), None)
                        .await?
                    {
                        return Ok(Claim::Owned(OwnedLease::new(session_id, lease, fence)));
                    }
                }
                Some(raw) => {
                    let mut lease = Lease::decode(&raw).unwrap_or_else(|| Lease {
                        // Unreadable: poke it anyway; takeover will replace it.
                        replica: String::new(),
                        token: String::new(),
                        queued: 0,
                        released: true,
                    });
                    lease.queued = lease.queued.saturating_add(1);
                    if self
                        .backplane
                        .record_replace(&key, &raw, Some(lease.encode()), None)
                        .await?
                    {
                        return Ok(Claim::Poked);
                    }
                }
            }
            // Lost a race with another claim, poke or release: look again.
            backoff.wait().await;
        }
    }

    /// Take over the lease `observed` from an owner that stopped or handed it over.
    /// `None` when another replica was quicker or the lease changed.
    pub(super) async fn take_over(
        &self,
        session_id: &str,
        observed: &Bytes,
    ) -> Result<Option<OwnedLease>, RecordError> {
        let (id, fence) = self.replica.identity();
        let mut lease = self.new_lease(id);
        if let Some(old) = Lease::decode(observed) {
            lease.queued = old.queued;
        }
        let replaced = self
            .backplane
            .record_replace(
                &RecordKey::new(TURN_LEASES, session_id),
                observed,
                Some(lease.encode()),
                None,
            )
            .await?;
        Ok(replaced.then(|| OwnedLease::new(session_id, lease, fence)))
    }

    /// The session's lease as stored, if any.
    pub(super) async fn lease_of(&self, session_id: &str) -> Result<Option<Lease>, RecordError> {
        Ok(self
            .backplane
            .record_get(&RecordKey::new(TURN_LEASES, session_id))
            .await?
            .as_deref()
            .and_then(Lease::decode))
    }
}
