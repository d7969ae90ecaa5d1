//! Outgoing webhooks as the store keeps them: an org's endpoints, and the delivery log
//! of each (the newest deliveries only: the log is bounded per endpoint). The log
//! holds no payload, only what happened to each delivery.
//!
//! - [`sql`]: the statements both engines run, their rows read back, and the methods
//!   both engines share;
//! - [`sqlite`], [`postgres`], [`memory`]: each store's methods.

pub(crate) mod memory;
pub(crate) mod postgres;
pub(crate) mod sql;
pub(crate) mod sqlite;

/// Most deliveries one [`crate::ConversationStore::webhook_deliveries`] call returns.
pub const MAX_DELIVERY_PAGE: usize = 100;

/// A registered endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRow {
    pub webhook_id: String,
    pub org_id: String,
    pub url: String,
    /// The event types it receives (their wire names), as registered.
    pub events: Vec<String>,
    /// The signing secret, as shown once at registration.
    pub secret: String,
    pub created_at: u64,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Not delivered yet; another attempt is scheduled (`next_attempt_at`).
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Given up: a final answer (a 4xx other than 429), or every attempt failed.
    Failed,
}

impl DeliveryOutcome {
    /// The name stored in the database and used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryOutcome::Pending => "pending",
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::Failed => "failed",
        }
    }

    /// The outcome named `name`, if any.
    pub fn parse(name: &str) -> Option<DeliveryOutcome> {
        match name {
            "pending" => Some(DeliveryOutcome::Pending),
            "delivered" => Some(DeliveryOutcome::Delivered),
            "failed" => Some(DeliveryOutcome::Failed),
            _ => None,
        }
    }
}

/// One delivery of one event to one endpoint, after its latest attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    pub webhook_id: String,
    /// The delivery's id: the payload's `id`, the same on every attempt.
    pub delivery_id: String,
    /// The event type's wire name.
    pub event_type: String,
    /// Attempts made so far (at least 1).
    pub attempts: u32,
    pub outcome: DeliveryOutcome,
    /// The HTTP status of the latest attempt, when the endpoint answered.
    pub last_status: Option<u16>,
    /// Why the latest attempt failed (a timeout, a refused connection, a status).
    pub last_error: Option<String>,
    /// When the first attempt was made.
    pub created_at: u64,
    /// When the latest attempt ended.
    pub updated_at: u64,
    /// When the next attempt is due (pending deliveries only).
    pub next_attempt_at: Option<u64>,
}
