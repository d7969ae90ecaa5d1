//! What turns may cost (`--max-concurrent-turns*`, `--org-daily-token-budget`):
//!
//! - [`slots`]: how many turns run at once, on this replica, per org, per principal;
//! - [`budget`]: each org's daily token budget, counted across replicas.

pub mod budget;
pub mod slots;

pub use budget::Budget;
pub use slots::{Full, SlotCaps, SlotKey, SlotPermit, Slots, principal_key};

use std::sync::Arc;

use switchboard_backplane::Backplane;

use crate::config::CostLimits;
use crate::metrics::Metrics;

/// Everything that bounds what turns cost, as the turns use it.
pub struct CostControl {
    pub slots: Arc<Slots>,
    pub budget: Budget,
}

impl CostControl {
    pub fn new(
        limits: &CostLimits,
        backplane: Arc<dyn Backplane>,
        metrics: Arc<Metrics>,
    ) -> Arc<CostControl> {
        let caps = SlotCaps {
            process: usize::try_from(limits.max_concurrent_turns).unwrap_or(usize::MAX),
            per_org: usize::try_from(limits.max_concurrent_turns_per_org).unwrap_or(usize::MAX),
            per_principal: usize::try_from(limits.max_concurrent_turns_per_principal)
                .unwrap_or(usize::MAX),
            wait: limits.turn_slot_wait,
        };
        Arc::new(CostControl {
            slots: Slots::new(caps, metrics.clone()),
            budget: Budget::new(
                backplane,
                limits.org_daily_token_budget,
                usize::try_from(limits.token_metrics_orgs).unwrap_or(usize::MAX),
                metrics,
            ),
        })
    }
}
