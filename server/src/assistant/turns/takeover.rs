//! Taking over the turn queues of replicas that stopped. Every `beat`, each live
//! replica lists the turn leases and the live replicas; a lease whose owner is not
//! alive (or that a draining owner handed over) is taken by compare-and-set, so of
//! several replicas trying exactly one wins and drains the session from there.
//!
//! A lease of this very replica that no worker of it drains (its worker gave up
//! through a long backplane outage) is orphaned too, once two looks in a row found it
//! so: a claim is followed by its worker at once, never a beat later.

use std::collections::HashSet;
use std::sync::Arc;

use switchboard_backplane::{Backoff, RecordError};

use super::Turns;
use super::lease::Lease;
use crate::records::namespace::TURN_LEASES;

impl Turns {
    /// Look for orphaned leases every beat until the drain starts.
    pub(super) async fn watch_for_orphans(self: Arc<Self>) {
        let beat = self.replica.timing().beat;
        // Spread the replicas' looks over the beat.
        let mut pace = Backoff::new(beat.mul_f64(0.8), beat.mul_f64(0.8)).with_jitter(0.5);
        loop {
            tokio::select! {
                () = self.draining.cancelled() => return,
                () = pace.wait() => {}
            }
            if let Err(e) = self.adopt_orphans().await {
                tracing::debug!(error = %e, "could not look for orphaned turn queues");
            }
        }
    }

    /// One look: take over every lease whose owner stopped or handed it over.
    /// Returns how many this replica took.
    pub(super) async fn adopt_orphans(self: &Arc<Self>) -> Result<usize, RecordError> {
        // A queue taken over just before this replica's own identity lapses would see
        // its turn interrupted again at once: a second `replica_lost` for one message.
        // Take over only with a beat to spare, looking again before each take-over:
        // the reads below may take long (a frozen backplane), and this replica may
        // have lapsed, or started over under a new id not renewed yet, meanwhile.
        let beat = self.replica.timing().beat;
        let fit = || self.replica.is_alive_for(beat) && !self.draining.is_cancelled();
        if !fit() {
            return Ok(0);
        }
        let leases = self.backplane.record_list(TURN_LEASES).await?;
        if leases.is_empty() {
            return Ok(0);
        }
        let alive = self.replica.alive().await?;
        let me = self.replica.id();
        let mut unattended = HashSet::new();
        let mut taken = 0;
        for (session_id, raw) in leases {
            let orphaned = match Lease::decode(&raw) {
                Some(lease) if lease.replica == me => {
                    if self.drains(&session_id, &lease.token) {
                        false
                    } else {
                        let key = (session_id.clone(), lease.token.clone());
                        let seen_before = self.unattended_lock().contains(&key);
                        unattended.insert(key);
                        seen_before
                    }
                }
                Some(lease) => lease.released || !alive.contains(&lease.replica),
                None => true,
            };
            if !orphaned {
                continue;
            }
            if !fit() {
                break;
            }
            if let Some(owned) = self.take_over(&session_id, &raw).await? {
                tracing::info!(%session_id, "took over the turn queue of a replica that stopped");
                self.metrics.turn_takeovers.inc();
                self.start(owned);
                taken += 1;
            }
        }
        *self.unattended_lock() = unattended;
        Ok(taken)
    }
}
