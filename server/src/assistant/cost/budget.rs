//! Each org's daily token budget: the `usage` of every `turn.end`, added up per org
//! and UTC day in a shared record (`token-usage/<org_id>/<YYYY-MM-DD>`), so every
//! replica counts the same total. New turns are refused once it is spent.
//!
//! The total is checked before a turn starts, so the turns already running when it is
//! reached still finish: an org may pass its budget by what those turns use.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use switchboard_backplane::{Backplane, RecordError, RecordKey};
use switchboard_protocol::{ErrorCode, Usage};

use crate::error::ClientError;
use crate::metrics::Metrics;
use crate::records::namespace::TOKEN_USAGE;

/// How long a day's total is kept: past its day, plus a day for late reads.
const DAY_RECORD_TTL: Duration = Duration::from_secs(2 * 24 * 60 * 60);
/// Compare-and-set rounds before a usage is given up on (each round lost means
/// another replica added its own).
const ADD_ATTEMPTS: usize = 32;
/// The `org_id` label of orgs past `--token-metrics-orgs`.
pub const OTHER_ORGS: &str = "_other";

pub struct Budget {
    backplane: Arc<dyn Backplane>,
    /// Tokens an org may use per UTC day; 0: no budget.
    daily_tokens: u64,
    metrics: Arc<Metrics>,
    /// Orgs with their own `org_id` label on the token metric, at most `label_orgs`.
    labelled: Mutex<HashSet<String>>,
    label_orgs: usize,
}

/// Today's date in UTC, `YYYY-MM-DD`.
fn today() -> String {
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    stamp.get(..10).unwrap_or("1970-01-01").to_string()
}

fn day_key(org_id: &str, day: &str) -> RecordKey {
    RecordKey::new(TOKEN_USAGE, format!("{org_id}/{day}"))
}

fn parse_total(raw: &[u8]) -> u64 {
    std::str::from_utf8(raw)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

impl Budget {
    pub fn new(
        backplane: Arc<dyn Backplane>,
        daily_tokens: u64,
        label_orgs: usize,
        metrics: Arc<Metrics>,
    ) -> Budget {
        Budget {
            backplane,
            daily_tokens,
            metrics,
            labelled: Mutex::new(HashSet::new()),
            label_orgs,
        }
    }

    /// Tokens `org_id` used today, as every replica counted them.
    pub async fn spent_today(&self, org_id: &str) -> Result<u64, RecordError> {
        Ok(self
            .backplane
            .record_get(&day_key(org_id, &today()))
            .await?
            .map(|raw| parse_total(&raw))
            .unwrap_or(0))
    }

    /// `Ok` while `org_id` may start a turn; `budget_exhausted` once today's budget is
    /// spent. Without a budget, always `Ok` (and nothing is read).
    pub async fn check(&self, org_id: &str) -> Result<(), ClientError> {
        if self.daily_tokens == 0 {
            return Ok(());
        }
        let spent = self.spent_today(org_id).await?;
        if spent >= self.daily_tokens {
            self.metrics
                .turns_refused
                .with_label_values(&["budget_exhausted"])
                .inc();
            return Err(ClientError::new(
                ErrorCode::BudgetExhausted,
                format!(
                    "this organization used {spent} of its {} tokens for today; the assistant answers again after 00:00 UTC",
                    self.daily_tokens
                ),
            ));
        }
        Ok(())
    }

    /// Count a turn's `usage` for `org_id`: in the metrics always, in today's shared
    /// total when there is a budget. A total that cannot be written is logged: the
    /// turn has ended either way.
    pub async fn add(&self, org_id: &str, usage: &Usage) {
        let label = self.label(org_id);
        self.metrics
            .tokens
            .with_label_values(&[&label, "prompt"])
            .inc_by(usage.prompt_tokens);
        self.metrics
            .tokens
            .with_label_values(&[&label, "completion"])
            .inc_by(usage.completion_tokens);
        if self.daily_tokens == 0 || usage.total_tokens == 0 {
            return;
        }
        if let Err(e) = self.add_to_today(org_id, usage.total_tokens).await {
            tracing::error!(org_id, tokens = usage.total_tokens, error = %e, "could not count a turn's tokens against its org's budget");
        }
    }

    async fn add_to_today(&self, org_id: &str, tokens: u64) -> Result<(), RecordError> {
        let key = day_key(org_id, &today());
        for _ in 0..ADD_ATTEMPTS {
            let stored = match self.backplane.record_get(&key).await? {
                None => {
                    let value = Bytes::from(tokens.to_string());
                    if self
                        .backplane
                        .record_create(&key, value, Some(DAY_RECORD_TTL))
                        .await?
                    {
                        return Ok(());
                    }
                    continue;
                }
                Some(raw) => raw,
            };
            let total = parse_total(&stored).saturating_add(tokens);
            if self
                .backplane
                .record_replace(
                    &key,
                    &stored,
                    Some(Bytes::from(total.to_string())),
                    Some(DAY_RECORD_TTL),
                )
                .await?
            {
                return Ok(());
            }
        }
        tracing::error!(
            org_id,
            tokens,
            "the org's token total kept changing; these tokens are not counted"
        );
        Ok(())
    }

    /// The `org_id` label for `org_id`: its own for the first `label_orgs` orgs this
    /// replica saw, [`OTHER_ORGS`] for the rest, so the metric's series stay bounded.
    fn label(&self, org_id: &str) -> String {
        let mut labelled = self.labelled.lock().unwrap_or_else(|e| e.into_inner());
        if labelled.contains(org_id) {
            return org_id.to_string();
        }
        if labelled.len() < self.label_orgs {
            labelled.insert(org_id.to_string());
            return org_id.to_string();
        }
        OTHER_ORGS.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_backplane::Retention;
    use switchboard_backplane::memory::MemoryBackplane;

    fn usage(total: u64) -> Usage {
        Usage {
            prompt_tokens: total - 1,
            completion_tokens: 1,
            total_tokens: total,
        }
    }

    #[tokio::test]
    async fn replicas_sharing_a_backplane_share_the_budget() {
        let backplane: Arc<dyn Backplane> = Arc::new(MemoryBackplane::new(Retention::default()));
        let metrics = Arc::new(Metrics::new().unwrap());
        let a = Arc::new(Budget::new(backplane.clone(), 100, 10, metrics.clone()));
        let b = Arc::new(Budget::new(backplane.clone(), 100, 10, metrics.clone()));
        let mut adds = Vec::new();
        for i in 0..20 {
            let replica = if i % 2 == 0 { a.clone() } else { b.clone() };
            adds.push(tokio::spawn(
                async move { replica.add("acme", &usage(5)).await },
            ));
        }
        for add in adds {
            add.await.unwrap();
        }
        assert_eq!(a.spent_today("acme").await.unwrap(), 100, "no add was lost");
        let refused = b.check("acme").await.unwrap_err();
        assert_eq!(refused.code, ErrorCode::BudgetExhausted);
        assert!(refused.message.contains("00:00 UTC"), "{}", refused.message);
        assert!(a.check("other-org").await.is_ok(), "budgets are per org");
    }

    #[tokio::test]
    async fn token_metric_labels_are_bounded() {
        let backplane: Arc<dyn Backplane> = Arc::new(MemoryBackplane::new(Retention::default()));
        let metrics = Arc::new(Metrics::new().unwrap());
        let budget = Budget::new(backplane, 0, 2, metrics.clone());
        for org in ["o1", "o2", "o3", "o4", "o1"] {
            budget.add(org, &usage(10)).await;
        }
        let text = metrics.render().unwrap();
        let series = text
            .lines()
            .filter(|l| l.starts_with("switchboard_tokens_total{"))
            .count();
        assert_eq!(series, 6, "o1, o2 and _other, two kinds each: {text}");
        assert!(
            text.contains("switchboard_tokens_total{kind=\"prompt\",org_id=\"_other\"} 18"),
            "{text}"
        );
        assert!(
            text.contains("switchboard_tokens_total{kind=\"prompt\",org_id=\"o1\"} 18"),
            "{text}"
        );
        assert!(budget.check("o1").await.is_ok(), "no budget, no refusal");
    }
}
