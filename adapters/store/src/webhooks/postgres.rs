//! The webhook methods of [`crate::PostgresStore`]. Registrations of one org take an
//! advisory lock first: counting rows cannot lock the rows a racing insert adds.

use sqlx::postgres::PgPool;

use super::sql::{self, DeliveryValues, events_to_db};
use crate::convert::{limit, to_db};
use crate::postgres::db;
use crate::{StoreError, WebhookDelivery, WebhookRow};

/// `$1`: org_id. Holds the org's webhook registrations to one at a time until the
/// transaction ends.
const LOCK_ORG_WEBHOOKS: &str =
    "SELECT pg_advisory_xact_lock(hashtextextended('switchboard.webhooks:' || $1, 0))";

pub(crate) async fn create(
    pool: &PgPool,
    webhook: &WebhookRow,
    max_per_org: usize,
) -> Result<bool, StoreError> {
    let created_at = to_db(webhook.created_at, "created_at")?;
    let mut tx = pool.begin().await.map_err(db)?;
    sqlx::query(LOCK_ORG_WEBHOOKS)
        .bind(&webhook.org_id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    let count: i64 = sqlx::query_scalar(sql::COUNT_WEBHOOKS)
        .bind(&webhook.org_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
    if usize::try_from(count).unwrap_or(usize::MAX) >= max_per_org {
        return Ok(false);
    }
    sqlx::query(sql::CREATE_WEBHOOK)
        .bind(&webhook.webhook_id)
        .bind(&webhook.org_id)
        .bind(&webhook.url)
        .bind(events_to_db(&webhook.events))
        .bind(&webhook.secret)
        .bind(created_at)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(true)
}

pub(crate) async fn record(
    pool: &PgPool,
    delivery: &WebhookDelivery,
    keep: usize,
) -> Result<bool, StoreError> {
    let values = DeliveryValues::of(delivery)?;
    let mut tx = pool.begin().await.map_err(db)?;
    let done = sqlx::query(sql::RECORD_DELIVERY)
        .bind(&delivery.webhook_id)
        .bind(&delivery.delivery_id)
        .bind(&delivery.event_type)
        .bind(values.attempts)
        .bind(delivery.outcome.as_str())
        .bind(values.last_status)
        .bind(&delivery.last_error)
        .bind(values.created_at)
        .bind(values.updated_at)
        .bind(values.next_attempt_at)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query(sql::PRUNE_DELIVERIES)
        .bind(&delivery.webhook_id)
        .bind(limit(keep))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(true)
}
