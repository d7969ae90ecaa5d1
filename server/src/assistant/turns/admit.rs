//! Whether a turn may start now: its org has tokens left today, and a slot is free
//! under the caps on concurrent turns (waiting a bounded time for one). A turn that
//! may not start ends `failed` with a `code` that says why; its message stays stored.

use switchboard_protocol::{ErrorCode, TurnEndCode};

use super::Turns;
use super::jobs::Job;
use crate::assistant::cost::{Full, SlotKey, SlotPermit, principal_key};

/// The answer for one turn.
pub(super) enum Admission {
    /// Run it, holding this slot until it ends.
    Run(SlotPermit),
    /// End it at once: `code` and the reason a person reads.
    Refuse(TurnEndCode, String),
    /// The budget could not be read: look again later.
    Later,
}

impl Turns {
    pub(super) async fn admit(&self, job: &Job) -> Admission {
        let cost = &self.services.cost;
        let org_id = &job.access.org_id;
        match cost.budget.check(org_id).await {
            Ok(()) => {}
            Err(e) if e.code == ErrorCode::BudgetExhausted => {
                return Admission::Refuse(
                    TurnEndCode::BudgetExhausted,
                    format!("{}; this message was not answered", e.message),
                );
            }
            Err(e) => {
                tracing::warn!(org_id, error = %e.message, "cannot read the org's token budget yet; retrying");
                return Admission::Later;
            }
        }
        let key = SlotKey {
            org_id: org_id.clone(),
            principal: job
                .principal
                .clone()
                .unwrap_or_else(|| principal_key(&job.access, None)),
        };
        match cost.slots.acquire(key).await {
            Ok(permit) => Admission::Run(permit),
            Err(full) => {
                self.metrics
                    .turns_refused
                    .with_label_values(&[full.as_str()])
                    .inc();
                let caps = cost.slots.caps();
                let (count, whose) = match full {
                    Full::Principal => (caps.per_principal, "for one person"),
                    Full::Org => (caps.per_org, "for this organization"),
                    Full::Process => (caps.process, "on this server"),
                };
                Admission::Refuse(
                    TurnEndCode::RateLimited,
                    format!(
                        "{count} replies are already being written {whose}, the most at once; this message waited {} and was not answered: send it again when a reply has finished",
                        humantime::format_duration(caps.wait)
                    ),
                )
            }
        }
    }
}
