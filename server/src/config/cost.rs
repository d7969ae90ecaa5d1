//! Flags: What turns may cost: concurrent turns (global, per org, per principal) and each org's daily token budget.

use clap::Args;

/// What turns may cost: concurrent turns (global, per org, per principal) and each org's daily token budget.
#[derive(Debug, Clone, Default, Args)]
pub struct CostLimits {}
