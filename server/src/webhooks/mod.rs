//! Outgoing webhooks (docs/webhooks.md): an org's admins register endpoints for event
//! types; what happens in the org is POSTed to them, signed, retried with backoff,
//! bounded per endpoint and per process, and written to a delivery log.
//!
//! The path of one event:
//!
//! 1. Something calls [`Webhooks::notify`] (an org event: a session was created) or
//!    [`Webhooks::observe`] (every event this replica appends: `fanout::events`). Both
//!    return at once: a notice goes into the intake queue, or is dropped (counted,
//!    logged) when it is full.
//! 2. [`dispatch`]'s one task finds the session's org ([`SessionOrgs`], cached), the
//!    org's endpoints ([`endpoints`], cached for a few seconds) and those subscribed to
//!    the type, builds the payload once and queues a delivery per endpoint
//!    ([`queues`]), unless that endpoint or the process has too many pending.
//! 3. Each endpoint's [`worker`] makes one attempt at a time ([`transport`], signed as
//!    [`signature`] says), records it in the store's delivery log, and schedules a
//!    retry ([`schedule`]) without holding back the endpoint's next deliveries.
//!
//! Registration ([`registration`]) checks URLs against `--webhook-endpoint-origins`,
//! as tools set through the admin API are checked against `--tool-endpoint-origins`.

mod delivery;
mod dispatch;
mod endpoints;
pub mod event;
mod queues;
mod registration;
pub mod schedule;
pub mod signature;
pub mod transport;
mod worker;

#[cfg(test)]
mod tests;

/// For unit tests of other modules.
#[cfg(test)]
pub mod testing {
    use super::*;

    struct Nowhere;

    #[async_trait]
    impl Transport for Nowhere {
        async fn send(&self, _request: transport::Request) -> schedule::Attempt {
            schedule::Attempt::NoAnswer {
                error: "nowhere".into(),
            }
        }
    }

    /// Webhooks that deliver nothing: no dispatcher runs, notices are let go.
    pub fn inert(store: Arc<dyn ConversationStore>, metrics: Arc<Metrics>) -> Webhooks {
        let settings = WebhookSettings::default();
        Webhooks::new(store, metrics, settings, Arc::new(Nowhere)).0
    }
}

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use switchboard_protocol::{Event, StreamKind, StreamName};
use switchboard_store::ConversationStore;
use tokio::sync::mpsc;

pub use event::{WebhookEvent, WebhookEventType, kind_of};
pub use schedule::RetryPolicy;
pub use transport::{HttpTransport, Transport};

use crate::error::ClientError;
use crate::metrics::Metrics;
use delivery::DropLog;
use dispatch::Notice;
use endpoints::EndpointCache;
use queues::Queues;

/// How many endpoints an org may register.
pub const MAX_ENDPOINTS_PER_ORG: usize = 10;
/// Deliveries one endpoint may have pending (queued or waiting for a retry); more are
/// dropped.
pub const MAX_PENDING_PER_ENDPOINT: usize = 1_000;
/// Deliveries the whole process may have pending, across endpoints.
pub const MAX_PENDING_PER_PROCESS: usize = 10_000;
/// Notices waiting for the dispatcher; more are dropped.
pub const INTAKE_CAPACITY: usize = 10_000;
/// Deliveries the log keeps per endpoint (the newest).
pub const DELIVERY_LOG_KEEP: usize = 100;
/// How long a replica uses an org's endpoint list before reading it again: what
/// another replica registered or deleted applies here within this long.
pub const ENDPOINTS_TTL: Duration = Duration::from_secs(5);
/// How long an endpoint's worker waits for work before it stops.
const WORKER_IDLE: Duration = Duration::from_secs(60);

/// The org a session belongs to. `records::sessions` answers it from the session
/// record cache.
#[async_trait]
pub trait SessionOrgs: Send + Sync + 'static {
    /// `None` when there is no such session (any more).
    async fn org_of(&self, session_id: &str) -> Result<Option<String>, ClientError>;
}

/// The bounds and timings of delivery; the defaults are the documented limits.
#[derive(Debug, Clone)]
pub struct WebhookLimits {
    pub max_endpoints_per_org: usize,
    pub pending_per_endpoint: usize,
    pub pending_per_process: usize,
    pub intake: usize,
    pub log_keep: usize,
    pub retry: RetryPolicy,
    pub endpoints_ttl: Duration,
    pub worker_idle: Duration,
}

impl Default for WebhookLimits {
    fn default() -> WebhookLimits {
        WebhookLimits {
            max_endpoints_per_org: MAX_ENDPOINTS_PER_ORG,
            pending_per_endpoint: MAX_PENDING_PER_ENDPOINT,
            pending_per_process: MAX_PENDING_PER_PROCESS,
            intake: INTAKE_CAPACITY,
            log_keep: DELIVERY_LOG_KEEP,
            retry: RetryPolicy::default(),
            endpoints_ttl: ENDPOINTS_TTL,
            worker_idle: WORKER_IDLE,
        }
    }
}

/// What the operator configured.
#[derive(Debug, Clone, Default)]
pub struct WebhookSettings {
    /// Origins (`scheme://host[:port]`, as a URL's origin serializes) endpoints may be
    /// on: `--webhook-endpoint-origins`. Empty: every registration is refused.
    pub allowed_origins: Vec<String>,
    pub limits: WebhookLimits,
}

impl WebhookSettings {
    /// Settings allowing `origins` (as given on the command line), with the default
    /// limits.
    pub fn new(origins: &[String]) -> WebhookSettings {
        WebhookSettings {
            allowed_origins: origins.iter().map(|o| normalize_origin(o)).collect(),
            limits: WebhookLimits::default(),
        }
    }
}

/// `origin` as `Url::origin` writes it (`https://h.example`, `http://127.0.0.1:8080`:
/// lowercase, the default port left out), so either spelling matches.
fn normalize_origin(origin: &str) -> String {
    let trimmed = origin.trim().trim_end_matches('/');
    match reqwest::Url::parse(trimmed) {
        Ok(url) => url.origin().ascii_serialization(),
        Err(_) => trimmed.to_string(),
    }
}

/// What every part shares.
struct Shared {
    store: Arc<dyn ConversationStore>,
    settings: WebhookSettings,
    endpoints: EndpointCache,
    queues: Arc<Queues>,
    drops: Arc<DropLog>,
}

/// The gateway's webhooks: cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    intake: mpsc::Sender<Notice>,
    shared: Arc<Shared>,
}

/// The dispatching task, started once the session records exist
/// ([`Dispatcher::start`]). Until then (or if it is never started, as in unit tests
/// of other modules) notices wait in the intake queue, and overflow is dropped.
pub struct Dispatcher {
    receiver: mpsc::Receiver<Notice>,
    shared: Arc<Shared>,
}

impl Webhooks {
    pub fn new(
        store: Arc<dyn ConversationStore>,
        metrics: Arc<Metrics>,
        settings: WebhookSettings,
        transport: Arc<dyn Transport>,
    ) -> (Webhooks, Dispatcher) {
        let limits = settings.limits.clone();
        let (intake, receiver) = mpsc::channel(limits.intake.max(1));
        let drops = Arc::new(DropLog::new(metrics.clone()));
        let queues = Queues::new(
            store.clone(),
            metrics,
            transport,
            drops.clone(),
            limits.clone(),
        );
        let shared = Arc::new(Shared {
            endpoints: EndpointCache::new(store.clone(), limits.endpoints_ttl),
            store,
            settings,
            queues,
            drops,
        });
        let dispatcher = Dispatcher {
            receiver,
            shared: shared.clone(),
        };
        (Webhooks { intake, shared }, dispatcher)
    }

    /// Tell `org_id`'s endpoints subscribed to `event.kind`. Never waits: when the
    /// intake queue is full the event is dropped (counted and logged).
    pub fn notify(&self, org_id: &str, event: WebhookEvent) {
        self.submit(Notice::Org {
            org_id: org_id.to_string(),
            event,
        });
    }

    /// An event this replica appended to `stream`: session events that [`kind_of`]
    /// maps reach the session's org's endpoints. Never waits.
    pub fn observe(&self, stream: &StreamName, event: &Arc<Event>) {
        if stream.kind() != StreamKind::Session {
            return;
        }
        let Some(kind) = kind_of(&event.body) else {
            return;
        };
        self.submit(Notice::Session {
            session_id: stream.id().to_string(),
            kind,
            event: event.clone(),
        });
    }

    fn submit(&self, notice: Notice) {
        match self.intake.try_send(notice) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self.shared.drops.dropped("intake_full"),
            // No dispatcher (never started, or the runtime is ending): nothing delivers.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

impl Dispatcher {
    /// Start dispatching on the current runtime; `orgs` finds a session's org.
    pub fn start(self, orgs: Arc<dyn SessionOrgs>) {
        tokio::spawn(dispatch::run(self.receiver, self.shared, orgs));
    }
}
