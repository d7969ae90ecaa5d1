//! An endpoint's worker: one attempt at a time, each recorded in the delivery log. A
//! delivery that failed retryably waits for its retry beside the queue, so it does not
//! hold back the endpoint's next deliveries; a due retry goes before new deliveries.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use switchboard_backplane::now_ms;
use switchboard_store::{DeliveryOutcome, WebhookDelivery};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::delivery::{Delivery, Target, WorkerContext};
use super::schedule::{Attempt, Verdict};
use super::signature::{ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
use super::transport::Request;

/// What ties a worker to its queue.
pub(crate) struct Handle {
    pub pending: Arc<AtomicUsize>,
    pub stop: CancellationToken,
    /// Asked when the worker was idle for a while: whether it may end (its queue is
    /// gone then, and a new delivery starts a new worker).
    pub retire: Box<dyn Fn() -> bool + Send + Sync>,
}

/// A delivery between attempts.
struct InFlight {
    delivery: Delivery,
    attempts: u32,
    /// When the first attempt was made (ms since the epoch).
    first_at: u64,
}

/// Retries waiting, by when they are due (ties: in the order they failed).
type Waiting = BTreeMap<(Instant, u64), InFlight>;

pub(crate) async fn run(
    target: Target,
    mut receiver: mpsc::UnboundedReceiver<Delivery>,
    handle: Handle,
    context: Arc<WorkerContext>,
) {
    let mut waiting = Waiting::new();
    let mut order = 0u64;
    loop {
        let due = waiting.keys().next().map(|(at, _)| *at);
        let next = tokio::select! {
            biased;
            () = handle.stop.cancelled() => break,
            () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                waiting.pop_first().map(|(_, flight)| flight)
            }
            received = receiver.recv() => match received {
                Some(delivery) => Some(InFlight { delivery, attempts: 0, first_at: now_ms() }),
                None => break,
            },
            () = tokio::time::sleep(context.limits.worker_idle), if waiting.is_empty() => {
                if (handle.retire)() {
                    return;
                }
                None
            }
        };
        let Some(flight) = next else { continue };
        if let Some((delay, flight)) = attempt(&target, &context, &handle, flight).await {
            order += 1;
            waiting.insert((Instant::now() + delay, order), flight);
        }
    }
    // Stopped: the endpoint was deleted. What it still had is dropped.
    receiver.close();
    let mut left = waiting.len();
    while receiver.try_recv().is_ok() {
        left += 1;
    }
    context.drops.dropped_n("endpoint_deleted", left);
    context.finished(&handle.pending, left);
}

/// One attempt at `flight`, recorded; the delay and the delivery when it is to be
/// retried, `None` when it is finished (delivered or failed for good).
async fn attempt(
    target: &Target,
    context: &WorkerContext,
    handle: &Handle,
    mut flight: InFlight,
) -> Option<(Duration, InFlight)> {
    flight.attempts = flight.attempts.saturating_add(1);
    let delivery = &flight.delivery;
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let request = Request {
        url: target.url.clone(),
        headers: vec![
            (ID_HEADER, delivery.id.to_string()),
            (TIMESTAMP_HEADER, timestamp.to_string()),
            (
                SIGNATURE_HEADER,
                sign(&target.secret, &delivery.id, timestamp, &delivery.body),
            ),
        ],
        body: delivery.body.to_string(),
    };
    let result = context.transport.send(request).await;
    let verdict = result.verdict();
    let retry_in = match verdict {
        Verdict::Retry => context.limits.retry.delay_after(flight.attempts),
        Verdict::Delivered | Verdict::Refused => None,
    };
    let outcome = match (verdict, retry_in) {
        (Verdict::Delivered, _) => DeliveryOutcome::Delivered,
        (Verdict::Retry, Some(_)) => DeliveryOutcome::Pending,
        _ => DeliveryOutcome::Failed,
    };
    context
        .metrics
        .webhook_attempts
        .with_label_values(&[attempt_label(verdict)])
        .inc();
    record(target, context, &flight, &result, outcome, retry_in).await;
    if let Some(delay) = retry_in {
        return Some((delay, flight));
    }
    context
        .metrics
        .webhook_deliveries
        .with_label_values(&[outcome.as_str()])
        .inc();
    if outcome == DeliveryOutcome::Failed {
        tracing::warn!(
            webhook_id = %target.webhook_id,
            delivery_id = %flight.delivery.id,
            attempts = flight.attempts,
            error = result.error().unwrap_or_default(),
            "webhook delivery failed"
        );
    }
    context.finished(&handle.pending, 1);
    None
}

fn attempt_label(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Delivered => "delivered",
        Verdict::Retry => "retryable",
        Verdict::Refused => "refused",
    }
}

/// Write the delivery as it stands to the log. A store that fails is logged: the
/// delivery goes on regardless.
async fn record(
    target: &Target,
    context: &WorkerContext,
    flight: &InFlight,
    result: &Attempt,
    outcome: DeliveryOutcome,
    retry_in: Option<Duration>,
) {
    let now = now_ms();
    let entry = WebhookDelivery {
        webhook_id: target.webhook_id.clone(),
        delivery_id: flight.delivery.id.to_string(),
        event_type: flight.delivery.kind.as_str().to_string(),
        attempts: flight.attempts,
        outcome,
        last_status: result.status(),
        last_error: result.error(),
        created_at: flight.first_at,
        updated_at: now,
        next_attempt_at: retry_in
            .map(|delay| now.saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX))),
    };
    if let Err(e) = context
        .store
        .record_delivery(&entry, context.limits.log_keep)
        .await
    {
        context
            .metrics
            .store_errors
            .with_label_values(&["webhook_log"])
            .inc();
        tracing::warn!(webhook_id = %target.webhook_id, error = %e, "webhook delivery log not written");
    }
}
