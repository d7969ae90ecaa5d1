//! [`crate::PostgresStore`]'s `put_assistant`: changes to one org's assistants take an
//! advisory lock first, since counting rows cannot lock the rows a racing insert adds.

use sqlx::postgres::PgPool;

use super::{ASSISTANT_EXISTS, AssistantRow, COUNT_ASSISTANTS, PUT_ASSISTANT};
use crate::StoreError;
use crate::convert::to_db;
use crate::postgres::db;

/// `$1`: org_id. Holds the org's assistant changes to one at a time until the
/// transaction ends.
const LOCK_ORG_ASSISTANTS: &str =
    "SELECT pg_advisory_xact_lock(hashtextextended('switchboard.assistants:' || $1, 0))";

pub(crate) async fn put(
    pool: &PgPool,
    assistant: &AssistantRow,
    max_per_org: usize,
) -> Result<bool, StoreError> {
    let updated_at = to_db(assistant.updated_at, "updated_at")?;
    let mut tx = pool.begin().await.map_err(db)?;
    sqlx::query(LOCK_ORG_ASSISTANTS)
        .bind(&assistant.org_id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    let exists: i64 = sqlx::query_scalar(ASSISTANT_EXISTS)
        .bind(&assistant.org_id)
        .bind(&assistant.name)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
    if exists == 0 {
        let count: i64 = sqlx::query_scalar(COUNT_ASSISTANTS)
            .bind(&assistant.org_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        if usize::try_from(count).unwrap_or(usize::MAX) >= max_per_org {
            return Ok(false);
        }
    }
    sqlx::query(PUT_ASSISTANT)
        .bind(&assistant.org_id)
        .bind(&assistant.name)
        .bind(&assistant.spec)
        .bind(updated_at)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(true)
}
