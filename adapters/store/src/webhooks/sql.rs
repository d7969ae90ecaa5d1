//! The webhook statements both engines run as they are, their rows read back, and the
//! methods both engines share. Only writing — the per-org cap's locking and the write
//! transaction — differs per engine (in the engine's module).

use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::convert::{column, from_db, limit, to_db};
use crate::engine::shared_methods;
use crate::{DeliveryOutcome, MAX_DELIVERY_PAGE, StoreError, WebhookDelivery, WebhookRow};

/// `$1`: org_id.
pub(crate) const COUNT_WEBHOOKS: &str = "SELECT COUNT(*) FROM webhooks WHERE org_id = $1";

/// `$1..$6`: webhook_id, org_id, url, events (JSON text), secret, created_at.
pub(crate) const CREATE_WEBHOOK: &str = "INSERT INTO webhooks \
     (webhook_id, org_id, url, events, secret, created_at) VALUES ($1, $2, $3, $4, $5, $6)";

/// `$1`: org_id; oldest first.
const WEBHOOKS: &str = "SELECT webhook_id, org_id, url, events, secret, created_at \
     FROM webhooks WHERE org_id = $1 ORDER BY created_at, webhook_id";

/// `$1, $2`: org_id, webhook_id.
const WEBHOOK_EXISTS: &str =
    "SELECT webhook_id FROM webhooks WHERE org_id = $1 AND webhook_id = $2";

/// `$1, $2`: org_id, webhook_id. Its deliveries go with it (`ON DELETE CASCADE`);
/// returns a row when it existed.
const DELETE_WEBHOOK: &str =
    "DELETE FROM webhooks WHERE org_id = $1 AND webhook_id = $2 RETURNING webhook_id";

/// `$1..$10`: webhook_id, delivery_id, event_type, attempts, outcome, last_status,
/// last_error, created_at, updated_at, next_attempt_at. Stored only while the endpoint
/// exists; a stored delivery keeps its `created_at`.
pub(crate) const RECORD_DELIVERY: &str = "INSERT INTO webhook_deliveries \
     (webhook_id, delivery_id, event_type, attempts, outcome, last_status, last_error, \
      created_at, updated_at, next_attempt_at) \
     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 \
     WHERE EXISTS (SELECT 1 FROM webhooks WHERE webhook_id = $1) \
     ON CONFLICT (webhook_id, delivery_id) DO UPDATE SET \
       event_type = excluded.event_type, attempts = excluded.attempts, \
       outcome = excluded.outcome, last_status = excluded.last_status, \
       last_error = excluded.last_error, updated_at = excluded.updated_at, \
       next_attempt_at = excluded.next_attempt_at";

/// `$1, $2`: webhook_id, how many to keep: drops all but the newest.
pub(crate) const PRUNE_DELIVERIES: &str = "DELETE FROM webhook_deliveries \
     WHERE webhook_id = $1 AND delivery_id NOT IN (\
       SELECT delivery_id FROM webhook_deliveries WHERE webhook_id = $1 \
       ORDER BY created_at DESC, delivery_id DESC LIMIT $2)";

/// `$1, $2`: webhook_id, limit; newest first.
const DELIVERIES: &str = "SELECT webhook_id, delivery_id, event_type, attempts, \
     outcome, last_status, last_error, created_at, updated_at, next_attempt_at \
     FROM webhook_deliveries WHERE webhook_id = $1 \
     ORDER BY created_at DESC, delivery_id DESC LIMIT $2";

/// The event types as stored: a JSON array of strings.
pub(crate) fn events_to_db(events: &[String]) -> String {
    serde_json::Value::from(events.to_vec()).to_string()
}

fn events_from_db(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::InvalidData(format!("webhook events are not a JSON array: {e}")))
}

/// A delivery's values as bound to [`RECORD_DELIVERY`], checked before anything runs.
pub(crate) struct DeliveryValues {
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub next_attempt_at: Option<i64>,
}

impl DeliveryValues {
    pub(crate) fn of(delivery: &WebhookDelivery) -> Result<DeliveryValues, StoreError> {
        Ok(DeliveryValues {
            attempts: i64::from(delivery.attempts),
            last_status: delivery.last_status.map(i64::from),
            created_at: to_db(delivery.created_at, "created_at")?,
            updated_at: to_db(delivery.updated_at, "updated_at")?,
            next_attempt_at: delivery
                .next_attempt_at
                .map(|at| to_db(at, "next_attempt_at"))
                .transpose()?,
        })
    }
}

/// A `webhooks` row (selected as [`WEBHOOKS`] does).
pub(crate) fn webhook_row<R>(row: &R) -> Result<WebhookRow, StoreError>
where
    R: Row,
    for<'n> &'n str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let events: String = column(row, "events")?;
    Ok(WebhookRow {
        webhook_id: column(row, "webhook_id")?,
        org_id: column(row, "org_id")?,
        url: column(row, "url")?,
        events: events_from_db(&events)?,
        secret: column(row, "secret")?,
        created_at: from_db(column(row, "created_at")?, "created_at")?,
    })
}

/// A `webhook_deliveries` row (selected as [`DELIVERIES`] does).
pub(crate) fn delivery_row<R>(row: &R) -> Result<WebhookDelivery, StoreError>
where
    R: Row,
    for<'n> &'n str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let outcome: String = column(row, "outcome")?;
    let attempts: i64 = column(row, "attempts")?;
    let last_status: Option<i64> = column(row, "last_status")?;
    let next_attempt_at: Option<i64> = column(row, "next_attempt_at")?;
    Ok(WebhookDelivery {
        webhook_id: column(row, "webhook_id")?,
        delivery_id: column(row, "delivery_id")?,
        event_type: column(row, "event_type")?,
        attempts: u32::try_from(attempts)
            .map_err(|_| StoreError::InvalidData(format!("{attempts} delivery attempts")))?,
        outcome: DeliveryOutcome::parse(&outcome).ok_or_else(|| {
            StoreError::InvalidData(format!("unknown delivery outcome {outcome:?}"))
        })?,
        last_status: last_status
            .map(|status| {
                u16::try_from(status)
                    .map_err(|_| StoreError::InvalidData(format!("HTTP status {status}")))
            })
            .transpose()?,
        last_error: column(row, "last_error")?,
        created_at: from_db(column(row, "created_at")?, "created_at")?,
        updated_at: from_db(column(row, "updated_at")?, "updated_at")?,
        next_attempt_at: next_attempt_at
            .map(|at| from_db(at, "next_attempt_at"))
            .transpose()?,
    })
}

shared_methods! {
    /// [`ConversationStore::webhooks`](crate::ConversationStore::webhooks).
    pub(crate) async fn webhooks(&self, org_id: &str) -> Result<Vec<WebhookRow>, StoreError> {
        let rows = ::sqlx::query::<DB>(WEBHOOKS)
            .bind(org_id)
            .fetch_all(self.pool)
            .await
            .map_err(self.error)?;
        rows.iter().map(webhook_row).collect()
    }

    /// [`ConversationStore::delete_webhook`](crate::ConversationStore::delete_webhook).
    pub(crate) async fn delete_webhook(
        &self,
        org_id: &str,
        webhook_id: &str,
    ) -> Result<bool, StoreError> {
        let deleted = ::sqlx::query::<DB>(DELETE_WEBHOOK)
            .bind(org_id)
            .bind(webhook_id)
            .fetch_optional(self.pool)
            .await
            .map_err(self.error)?;
        Ok(deleted.is_some())
    }

    /// [`ConversationStore::webhook_deliveries`](crate::ConversationStore::webhook_deliveries).
    pub(crate) async fn webhook_deliveries(
        &self,
        org_id: &str,
        webhook_id: &str,
        max: usize,
    ) -> Result<Option<Vec<WebhookDelivery>>, StoreError> {
        let found = ::sqlx::query::<DB>(WEBHOOK_EXISTS)
            .bind(org_id)
            .bind(webhook_id)
            .fetch_optional(self.pool)
            .await
            .map_err(self.error)?;
        if found.is_none() {
            return Ok(None);
        }
        let rows = ::sqlx::query::<DB>(DELIVERIES)
            .bind(webhook_id)
            .bind(limit(max.min(MAX_DELIVERY_PAGE)))
            .fetch_all(self.pool)
            .await
            .map_err(self.error)?;
        rows.iter()
            .map(delivery_row)
            .collect::<Result<_, _>>()
            .map(Some)
    }
}
