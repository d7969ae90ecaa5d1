//! A session's turn queue and the replica that drains it: one record in
//! `turn-leases`, present exactly while the session has messages waiting or a turn
//! running. It holds the waiting messages in order, the running turn, and the replica
//! that owns the queue (alive while that replica's heartbeat is, see
//! [`super::replica`]). It is only ever changed by compare-and-set
//! (`Backplane::record_replace`), so every change is made knowing the value it
//! replaces:
//!
//! - a replica that accepted a message **claims** the queue (creates the record with
//!   the message) or, when another replica owns it, **pokes** it (adds the message);
//! - the owner moves the oldest waiting message to **running** before its
//!   `turn.start`, and clears it after its `turn.end`;
//! - the owner **releases** it (removes it) only when nothing is left and nobody poked
//!   since: a poke makes the release fail, and the owner looks again. So a message
//!   accepted while the owner was finishing is never left behind;
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

/// A message waiting for its turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Queued {
    pub(super) message_id: String,
    /// The message's `seq` (0: unknown), where its turn's events are looked for.
    #[serde(default)]
    pub(super) seq: u64,
    /// Turns for it that ended `replica_lost` so far.
    #[serde(default)]
    pub(super) losses: usize,
}

/// The turn being run (or that was, when its replica stopped), and the message it
/// answers as it waited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Running {
    pub(super) turn_id: String,
    #[serde(flatten)]
    pub(super) message: Queued,
}

/// A session's turn lease as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Lease {
    /// The replica draining the queue.
    pub(super) replica: String,
    /// Unique per claim or takeover: tells an owner its lease from a successor's.
    pub(super) token: String,
    /// Messages waiting, oldest first.
    #[serde(default)]
    pub(super) waiting: Vec<Queued>,
    #[serde(default)]
    pub(super) running: Option<Running>,
    /// Handed over by a draining owner: any replica may take it at once.
    #[serde(default)]
    pub(super) released: bool,
}

impl Lease {
    /// Whether `message_id` waits or runs here.
    pub(super) fn holds(&self, message_id: &str) -> bool {
        self.waiting.iter().any(|q| q.message_id == message_id)
            || self
                .running
                .as_ref()
                .is_some_and(|r| r.message.message_id == message_id)
    }
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

    /// The token of this ownership (the same through pokes).
    pub(super) fn token(&self) -> &str {
        &self.lease.token
    }

    /// The lease as this owner last saw it.
    pub(super) fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Apply `change` to the lease (again on the newer value after a poke).
    pub(super) async fn update(
        &mut self,
        turns: &Turns,
        change: &(dyn Fn(&mut Lease) + Sync),
    ) -> Held {
        self.change(turns, Some(change)).await
    }

    /// Remove the lease: the queue is empty. `Poked` means it is not any more (and the
    /// lease is still ours).
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
    Owned(Box<OwnedLease>),
    /// Another replica owns it and will find the message.
    Poked,
}

impl Turns {
    fn new_lease(&self, replica: String) -> Lease {
        Lease {
            replica,
            token: new_id("lease"),
            waiting: Vec::new(),
            running: None,
            released: false,
        }
    }

    /// Queue `message_id`, just appended to the session: claim the queue when nobody
    /// owns it, otherwise add the message to it (nothing when it is already there).
    pub(super) async fn claim_or_poke(
        &self,
        session_id: &str,
        message_id: &str,
        seq: u64,
    ) -> Result<Claim, RecordError> {
        let queued = Queued {
            message_id: message_id.to_string(),
            seq,
            losses: 0,
        };
        let key = RecordKey::new(TURN_LEASES, session_id);
        let mut backoff = Backoff::new(Duration::from_millis(5), Duration::from_millis(200));
        loop {
            match self.backplane.record_get(&key).await? {
                None => {
                    let (id, fence) = self.replica.identity();
                    let mut lease = self.new_lease(id);
                    lease.waiting.push(queued.clone());
                    if self
                        .backplane
                        .record_create(&key, lease.encode(), None)
                        .await?
                    {
                        return Ok(Claim::Owned(Box::new(OwnedLease::new(
                            session_id, lease, fence,
                        ))));
                    }
                }
                Some(raw) => {
                    let Some(mut lease) = Lease::decode(&raw) else {
                        return Err(RecordError::new(
                            switchboard_backplane::ErrorKind::InvalidData,
                            format!("the turn queue of session {session_id} is unreadable"),
                        ));
                    };
                    if lease.holds(message_id) {
                        return Ok(Claim::Poked);
                    }
                    lease.waiting.push(queued.clone());
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
            lease.waiting = old.waiting;
            lease.running = old.running;
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
