//! Flags: What turns may cost: concurrent turns (global, per org, per principal) and each org's daily token budget.

use std::time::Duration;

use clap::Args;

use super::values::parse_duration;

/// What turns may cost: concurrent turns (global, per org, per principal) and each org's daily token budget.
#[derive(Debug, Clone, Args)]
pub struct CostLimits {
    /// Turns that run at once on this replica, model requests included (default 128).
    /// A turn past any of the `--max-concurrent-turns*` caps waits up to
    /// `--turn-slot-wait` for room; then it ends `failed` with `code: "rate_limited"`
    /// (its message stays stored, unanswered).
    #[arg(long, env = "SWITCHBOARD_MAX_CONCURRENT_TURNS", default_value_t = 128,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_concurrent_turns: u64,

    /// Turns of one org that run at once on this replica (default 64). Past it: as
    /// `--max-concurrent-turns`.
    #[arg(long, env = "SWITCHBOARD_MAX_CONCURRENT_TURNS_PER_ORG", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_concurrent_turns_per_org: u64,

    /// Turns of one principal that run at once on this replica (default 4): a user of
    /// a token, or an anonymous visitor's address (an IPv6 visitor's /64). Past it: as
    /// `--max-concurrent-turns`.
    #[arg(long, env = "SWITCHBOARD_MAX_CONCURRENT_TURNS_PER_PRINCIPAL", default_value_t = 4,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_concurrent_turns_per_principal: u64,

    /// How long a turn waits for room under the caps on concurrent turns (default
    /// 30s); then it ends `failed` with `code: "rate_limited"` and is not retried.
    #[arg(long, env = "SWITCHBOARD_TURN_SLOT_WAIT", default_value = "30s", value_parser = parse_duration)]
    pub turn_slot_wait: Duration,

    /// Tokens (`turn.end.usage.total_tokens`) each org's turns may use per UTC day,
    /// counted across replicas in the backplane (default 0: no budget). Once spent,
    /// `message.send` gets the error `budget_exhausted` (nothing stored) and turns
    /// already queued end `failed` with `code: "budget_exhausted"`, until 00:00 UTC.
    #[arg(long, env = "SWITCHBOARD_ORG_DAILY_TOKEN_BUDGET", default_value_t = 0)]
    pub org_daily_token_budget: u64,

    /// Orgs that get their own `org_id` label on `switchboard_tokens_total` (default
    /// 100, the first seen by each replica); the tokens of any further org are counted
    /// under `org_id="_other"`, so the metric's series stay bounded.
    #[arg(long, env = "SWITCHBOARD_TOKEN_METRICS_ORGS", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub token_metrics_orgs: u64,
}

impl Default for CostLimits {
    fn default() -> Self {
        CostLimits {
            max_concurrent_turns: 128,
            max_concurrent_turns_per_org: 64,
            max_concurrent_turns_per_principal: 4,
            turn_slot_wait: Duration::from_secs(30),
            org_daily_token_budget: 0,
            token_metrics_orgs: 100,
        }
    }
}
