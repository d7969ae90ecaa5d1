//! A queue per endpoint, each drained by its own worker, with the bounds that keep a
//! slow or dead endpoint from growing memory: at most `pending_per_endpoint`
//! deliveries per endpoint and `pending_per_process` in all (queued or waiting for a
//! retry). What does not fit is dropped, counted by reason and logged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use switchboard_store::ConversationStore;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::WebhookLimits;
use super::delivery::{Delivery, DropLog, Target, WorkerContext};
use super::transport::Transport;
use super::worker;
use crate::metrics::Metrics;

/// An endpoint's queue, as the dispatcher sees it.
struct Queue {
    sender: mpsc::UnboundedSender<Delivery>,
    /// Deliveries of this endpoint not finished yet.
    pending: Arc<AtomicUsize>,
    stop: CancellationToken,
}

/// Every endpoint's queue in this process.
pub(crate) struct Queues {
    context: Arc<WorkerContext>,
    queues: Mutex<HashMap<String, Queue>>,
}

impl Queues {
    pub fn new(
        store: Arc<dyn ConversationStore>,
        metrics: Arc<Metrics>,
        transport: Arc<dyn Transport>,
        drops: Arc<DropLog>,
        limits: WebhookLimits,
    ) -> Arc<Queues> {
        Arc::new(Queues {
            context: Arc::new(WorkerContext {
                store,
                metrics,
                transport,
                drops,
                limits,
                total: AtomicUsize::new(0),
            }),
            queues: Mutex::new(HashMap::new()),
        })
    }

    /// The map, locked. Nothing panics while holding it; a poisoned lock guards
    /// consistent data.
    fn locked(&self) -> MutexGuard<'_, HashMap<String, Queue>> {
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queue `delivery` for `target`, starting its worker if it has none. Never waits;
    /// drops (counted, logged) what the bounds do not allow.
    pub fn enqueue(self: &Arc<Self>, target: &Target, delivery: Delivery) {
        let limits = &self.context.limits;
        if self.context.total.load(Ordering::SeqCst) >= limits.pending_per_process {
            self.context.drops.dropped("process_queue_full");
            return;
        }
        let mut queues = self.locked();
        let full = queues
            .get(&target.webhook_id)
            .is_some_and(|q| q.pending.load(Ordering::SeqCst) >= limits.pending_per_endpoint);
        if full {
            drop(queues);
            self.context.drops.dropped("endpoint_queue_full");
            return;
        }
        let queue = queues
            .entry(target.webhook_id.clone())
            .or_insert_with(|| self.start_worker(target));
        // Counted before it is sent, under the lock a retiring worker takes: a worker
        // sees no pending delivery only when none is on its way.
        queue.pending.fetch_add(1, Ordering::SeqCst);
        let total = self.context.total.fetch_add(1, Ordering::SeqCst) + 1;
        self.context.metrics.webhook_queue.set(total as i64);
        if let Err(mpsc::error::SendError(delivery)) = queue.sender.send(delivery) {
            // The worker ended without retiring (its task was aborted): start another.
            let fresh = self.start_worker(target);
            fresh.pending.fetch_add(1, Ordering::SeqCst);
            if fresh.sender.send(delivery).is_err() {
                self.context.finished(&fresh.pending, 1);
            }
            queues.insert(target.webhook_id.clone(), fresh);
        }
    }

    fn start_worker(self: &Arc<Self>, target: &Target) -> Queue {
        let (sender, receiver) = mpsc::unbounded_channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let queues = Arc::downgrade(self);
        let (webhook_id, counted) = (target.webhook_id.clone(), pending.clone());
        let retire = move || {
            queues
                .upgrade()
                .is_none_or(|queues| queues.retire(&webhook_id, &counted))
        };
        tokio::spawn(worker::run(
            target.clone(),
            receiver,
            worker::Handle {
                pending: pending.clone(),
                stop: stop.clone(),
                retire: Box::new(retire),
            },
            self.context.clone(),
        ));
        Queue {
            sender,
            pending,
            stop,
        }
    }

    /// Stop `webhook_id`'s worker (the endpoint was deleted): what it still had is
    /// dropped.
    pub fn stop(&self, webhook_id: &str) {
        if let Some(queue) = self.locked().remove(webhook_id) {
            queue.stop.cancel();
        }
    }

    /// Called by an idle worker: removes its queue unless a delivery is on its way.
    /// Whether the worker may end.
    fn retire(&self, webhook_id: &str, pending: &Arc<AtomicUsize>) -> bool {
        let mut queues = self.locked();
        if pending.load(Ordering::SeqCst) > 0 {
            return false;
        }
        if queues
            .get(webhook_id)
            .is_some_and(|q| Arc::ptr_eq(&q.pending, pending))
        {
            queues.remove(webhook_id);
        }
        true
    }
}
