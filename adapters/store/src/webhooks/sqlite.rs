//! The webhook methods of [`crate::SqliteStore`]. Registrations take the write lock
//! first (`BEGIN IMMEDIATE`), so counting an org's endpoints and adding one cannot race.

use sqlx::sqlite::SqlitePool;

use super::sql::{self, DeliveryValues, events_to_db};
use crate::convert::{limit, to_db};
use crate::sqlite::{BEGIN_WRITE, db};
use crate::{StoreError, WebhookDelivery, WebhookRow};

pub(crate) async fn create(
    pool: &SqlitePool,
    webhook: &WebhookRow,
    max_per_org: usize,
) -> Result<bool, StoreError> {
    let created_at = to_db(webhook.created_at, "created_at")?;
    let mut tx = pool.begin_with(BEGIN_WRITE).await.map_err(db)?;
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
    pool: &SqlitePool,
    delivery: &WebhookDelivery,
    keep: usize,
) -> Result<bool, StoreError> {
    let values = DeliveryValues::of(delivery)?;
    let mut tx = pool.begin_with(BEGIN_WRITE).await.map_err(db)?;
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
