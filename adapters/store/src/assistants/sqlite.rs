//! [`crate::SqliteStore`]'s `put_assistant`: it takes the write lock first (`BEGIN
//! IMMEDIATE`), so counting an org's assistants and adding one cannot race.

use sqlx::sqlite::SqlitePool;

use super::{ASSISTANT_EXISTS, AssistantRow, COUNT_ASSISTANTS, PUT_ASSISTANT};
use crate::StoreError;
use crate::convert::to_db;
use crate::sqlite::{BEGIN_WRITE, db};

pub(crate) async fn put(
    pool: &SqlitePool,
    assistant: &AssistantRow,
    max_per_org: usize,
) -> Result<bool, StoreError> {
    let updated_at = to_db(assistant.updated_at, "updated_at")?;
    let mut tx = pool.begin_with(BEGIN_WRITE).await.map_err(db)?;
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
