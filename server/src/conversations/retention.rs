//! Retention: a conversation is kept `retention_days` after its last activity (per
//! org, `--retention-days` for orgs that set none), then removed everywhere by a
//! background sweep in bounded batches, so a sweep never holds the store for long.

use std::sync::Arc;
use std::time::Duration;

use super::lifecycle::Conversations;
use crate::access::Caller;
use crate::access::policy;
use crate::error::ClientError;

/// Conversations one sweep batch removes at most.
pub const SWEEP_BATCH: usize = 200;
/// Batches one sweep runs at most before waiting for the next interval.
pub const SWEEP_MAX_BATCHES: usize = 50;
/// Longest retention an org may set, in days (100 years).
pub const MAX_RETENTION_DAYS: u32 = 36_500;

/// An org's retention as the admin API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub days: u32,
    /// Whether it is the org's own (else the deployment's default).
    pub own: bool,
}

impl Conversations {
    /// Remove conversations idle past their retention at `now_ms`: at most
    /// [`SWEEP_BATCH`] × [`SWEEP_MAX_BATCHES`] per call. How many it removed. The
    /// store removes them first; their history and cached record (normally expired
    /// long before: `--history-max-age` is far shorter than any retention) follow,
    /// best effort.
    pub async fn sweep(&self, now_ms: u64) -> Result<usize, ClientError> {
        let mut total = 0;
        for _ in 0..SWEEP_MAX_BATCHES {
            let expired = self
                .store
                .expire(now_ms, self.default_retention_days, SWEEP_BATCH)
                .await?;
            for session_id in &expired {
                self.metrics
                    .conversations_removed
                    .with_label_values(&["expired"])
                    .inc();
                if let Some(stream) = Self::stream_of(session_id)
                    && let Err(e) = self.backplane.delete_stream(&stream).await
                {
                    tracing::warn!(session_id, error = %e, "an expired conversation's history is left to expire");
                }
                if let Err(e) = self.sessions.forget(session_id).await {
                    tracing::warn!(session_id, error = %e.message, "an expired conversation's cached record is left to expire");
                }
            }
            total += expired.len();
            if expired.len() < SWEEP_BATCH {
                break;
            }
        }
        Ok(total)
    }

    /// An org's retention. `org_id`: the org an admin key names.
    pub async fn retention(
        &self,
        caller: &Caller,
        org_id: Option<&str>,
    ) -> Result<Retention, ClientError> {
        let org = policy::administered_org(caller, org_id)?;
        Ok(match self.store.retention(&org).await? {
            Some(days) => Retention { days, own: true },
            None => Retention {
                days: self.default_retention_days,
                own: false,
            },
        })
    }

    /// Set (`Some`) or clear an org's retention.
    pub async fn set_retention(
        &self,
        caller: &Caller,
        org_id: Option<&str>,
        days: Option<u32>,
    ) -> Result<Retention, ClientError> {
        let org = policy::administered_org(caller, org_id)?;
        if let Some(days) = days
            && !(1..=MAX_RETENTION_DAYS).contains(&days)
        {
            return Err(ClientError::bad_request(format!(
                "retention_days must be 1 to {MAX_RETENTION_DAYS}"
            )));
        }
        self.store.set_retention(&org, days).await?;
        self.retention(caller, Some(&org)).await
    }
}

/// Sweep every `interval` (the first one an interval after boot, not during it)
/// until the process ends.
pub async fn run_sweeps(conversations: Arc<Conversations>, interval: Duration) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match conversations.sweep(switchboard_backplane::now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                removed = n,
                "removed conversations idle past their retention"
            ),
            Err(e) => {
                tracing::warn!(error = %e.message, "retention sweep failed; next one retries")
            }
        }
    }
}
