//! What a delivery is, what every worker shares, and how drops are counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use switchboard_store::ConversationStore;

use super::WebhookLimits;
use super::event::WebhookEventType;
use super::transport::Transport;
use crate::metrics::Metrics;

/// One event on its way to one endpoint; the body and id are shared by every
/// endpoint the event goes to.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    /// The payload's `id`, sent as `Switchboard-Webhook-Id` on every attempt.
    pub id: Arc<str>,
    pub kind: WebhookEventType,
    pub body: Arc<str>,
}

/// An endpoint as its worker needs it (endpoints never change; a new URL is a new
/// registration).
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub webhook_id: String,
    pub url: String,
    pub secret: String,
}

/// What a worker shares with the rest.
pub(crate) struct WorkerContext {
    pub store: Arc<dyn ConversationStore>,
    pub metrics: Arc<Metrics>,
    pub transport: Arc<dyn Transport>,
    pub drops: Arc<DropLog>,
    pub limits: WebhookLimits,
    /// Deliveries pending in the whole process.
    pub total: AtomicUsize,
}

impl WorkerContext {
    /// `n` deliveries of one endpoint (whose count is `pending`) are finished: delivered,
    /// failed for good, or dropped.
    pub fn finished(&self, pending: &AtomicUsize, n: usize) {
        pending.fetch_sub(n, Ordering::SeqCst);
        let left = self.total.fetch_sub(n, Ordering::SeqCst).saturating_sub(n);
        self.metrics.webhook_queue.set(left as i64);
    }
}

/// Drops, counted in `switchboard_webhook_dropped_total{reason}` and logged at most
/// once per [`DropLog::EVERY_MS`], with how many were dropped since.
pub(crate) struct DropLog {
    metrics: Arc<Metrics>,
    last_logged_ms: AtomicU64,
    since: AtomicU64,
}

impl DropLog {
    const EVERY_MS: u64 = 10_000;

    pub fn new(metrics: Arc<Metrics>) -> DropLog {
        DropLog {
            metrics,
            last_logged_ms: AtomicU64::new(0),
            since: AtomicU64::new(0),
        }
    }

    pub fn dropped(&self, reason: &'static str) {
        self.dropped_n(reason, 1);
    }

    pub fn dropped_n(&self, reason: &'static str, n: usize) {
        if n == 0 {
            return;
        }
        self.metrics
            .webhook_dropped
            .with_label_values(&[reason])
            .inc_by(n as u64);
        let count = self.since.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
        let now = switchboard_backplane::now_ms();
        let last = self.last_logged_ms.load(Ordering::SeqCst);
        if now.saturating_sub(last) >= Self::EVERY_MS
            && self
                .last_logged_ms
                .compare_exchange(last, now, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            self.since.fetch_sub(count, Ordering::SeqCst);
            tracing::warn!(
                reason,
                dropped = count,
                "webhook deliveries dropped (see switchboard_webhook_dropped_total)"
            );
        }
    }
}
