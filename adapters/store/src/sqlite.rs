//! [`SqliteStore`]: the conversation store in one SQLite file (or in memory), for a
//! single gateway replica.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::error::DatabaseError;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite};

use crate::convert::{column, from_db, limit, metadata_to_db, session_row, to_db, upper_bound};
use crate::db_error::store_error;
use crate::engine::Engine;
use crate::{
    AssistantRow, ConversationStore, Erased, HandoffRow, HandoffSettingsRow, MAX_TRANSCRIPT_PAGE,
    NewSession, SessionChange, SessionPage, SessionQuery, SessionRow, StoreError, TranscriptEntry,
    TranscriptWrite, WebhookDelivery, WebhookRow, assistants, batch, list, migrations, sql,
    webhooks,
};

/// How long a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a call waits for a free connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections of a file store: readers run beside the one writer (WAL), writers
/// take turns anyway.
const FILE_CONNECTIONS: u32 = 4;

/// Write transactions take the write lock when they begin: a transaction that read
/// first and then wrote could fail (not wait) when another wrote in between.
pub(crate) const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// Rows one multi-row statement carries: 5 parameters each, well under SQLite's
/// limit of 32,766 parameters per statement.
const ROWS_PER_STATEMENT: usize = 256;

/// Followed by `VALUES (session_id, seq, ts, kind, event), …`: the entries of sessions
/// that exist and that are not stored yet are stored, and returned.
const INSERT_ENTRIES: &str = "INSERT INTO transcript (session_id, seq, ts, kind, event) \
     SELECT column1, column2, column3, column4, column5 FROM (";
const INSERT_ENTRIES_END: &str = ") AS v \
     WHERE EXISTS (SELECT 1 FROM sessions WHERE sessions.session_id = v.column1) \
     ON CONFLICT (session_id, seq) DO NOTHING \
     RETURNING session_id, seq";

/// Followed by `VALUES (session_id, newest ts, greatest seq, seq of the newest preview
/// (NULL: none), that preview, title hint), …`. See [`batch::SessionUpdate`].
const UPDATE_AFTER_WRITE: &str = "UPDATE sessions SET \
     last_activity_at = MAX(last_activity_at, u.column2), \
     preview = CASE WHEN u.column4 > last_seq THEN u.column5 ELSE preview END, \
     state = CASE WHEN u.column4 > last_seq THEN 'active' ELSE state END, \
     last_seq = MAX(last_seq, u.column3), \
     title = COALESCE(title, u.column6) \
     FROM (";
const UPDATE_AFTER_WRITE_END: &str = ") AS u WHERE sessions.session_id = u.column1";

/// The conversation store in an SQLite database: a file (WAL journal) that keeps
/// everything across restarts, or memory (tests, benchmarks).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// For transcript batches, the busiest writer: one connection of its own, always
    /// open, so that its page cache stays warm (SQLite drops a connection's cache
    /// when another connection wrote) and no batch waits behind a reader.
    transcript: SqlitePool,
}

impl SqliteStore {
    /// The pool with this engine's reading of errors, for the methods both engines
    /// share.
    fn engine(&self) -> Engine<'_, Sqlite> {
        Engine {
            pool: &self.pool,
            error: db,
        }
    }

    /// Open the database file at `path`, creating it (and its directory) when missing,
    /// and bring its schema up to date.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await.map_err(|e| {
                StoreError::Unavailable(format!("create the directory {}: {e}", dir.display()))
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal);
        let pool = pool_options(FILE_CONNECTIONS)
            .connect_with(common(options.clone()))
            .await
            .map_err(|e| open_error(path, e))?;
        migrate(&pool).await?;
        let transcript = pool_options(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(common(options))
            .await
            .map_err(|e| open_error(path, e))?;
        Ok(SqliteStore { pool, transcript })
    }

    /// A fresh database in memory, gone when the store (its last clone) drops.
    pub async fn in_memory() -> Result<SqliteStore, StoreError> {
        // A named in-memory database with a shared cache; one connection, kept for the
        // pool's whole life: the database exists only while a connection to it is open.
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(|e| store_error(e, is_transient))?;
        let pool = pool_options(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(common(options))
            .await
            .map_err(|e| store_error(e, is_transient))?;
        migrate(&pool).await?;
        Ok(SqliteStore {
            transcript: pool.clone(),
            pool,
        })
    }

    /// Close every connection, waiting for calls in flight (the last close folds the
    /// WAL back into the database file). Calls after it fail as `Unavailable`.
    pub async fn close(&self) {
        self.transcript.close().await;
        self.pool.close().await;
    }
}

/// Bring the schema up to date.
async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    migrations::sqlite()
        .run(pool)
        .await
        .map_err(|e| StoreError::Rejected(format!("migrating the SQLite schema: {e}")))
}

/// A pool of up to `connections`. No test query before a connection is handed out:
/// an SQLite connection is a file handle in this process, not a link that can go
/// stale, and the test would be one more round trip to the connection's thread.
fn pool_options(connections: u32) -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
}

/// What every connection of either kind sets. Temporary storage stays in memory: a
/// multi-row statement's rollback journal would otherwise spill to a temporary file
/// past 64 KiB, which a transcript batch does, and each spill opens, writes and
/// deletes a file (the statement journal is bounded by [`ROWS_PER_STATEMENT`] rows).
fn common(options: SqliteConnectOptions) -> SqliteConnectOptions {
    options
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true)
        .pragma("temp_store", "memory")
}

fn open_error(path: &Path, error: sqlx::Error) -> StoreError {
    match store_error(error, is_transient) {
        StoreError::Unavailable(e) => {
            StoreError::Unavailable(format!("open {}: {e}", path.display()))
        }
        other => other,
    }
}

/// SQLite's transient result codes (the primary code is the extended code's low byte):
/// busy or locked past the busy timeout, out of memory, I/O error, disk full, cannot
/// open.
fn is_transient(error: &dyn DatabaseError) -> bool {
    let code = error
        .code()
        .and_then(|code| code.parse::<i32>().ok())
        .unwrap_or(0);
    matches!(code & 0xff, 5 | 6 | 7 | 10 | 13 | 14)
}

pub(crate) fn db(error: sqlx::Error) -> StoreError {
    store_error(error, is_transient)
}

fn entry(row: &SqliteRow) -> Result<TranscriptEntry, StoreError> {
    Ok(TranscriptEntry {
        seq: from_db(column(row, "seq")?, "seq")?,
        ts: from_db(column(row, "ts")?, "ts")?,
        kind: column(row, "kind")?,
        event: column(row, "event")?,
    })
}

#[async_trait]
impl ConversationStore for SqliteStore {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    async fn create_session(&self, session: &NewSession) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::CREATE_SESSION)
            .bind(&session.session_id)
            .bind(&session.org_id)
            .bind(&session.owner)
            .bind(&session.key_sha256)
            .bind(to_db(session.created_at, "created_at")?)
            .bind(metadata_to_db(session.metadata.as_ref()))
            .bind(&session.assistant)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn session(&self, session_id: &str) -> Result<Option<SessionRow>, StoreError> {
        let row = sqlx::query(sql::SESSION)
            .bind(session_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(session_row).transpose()
    }

    async fn update_session(
        &self,
        session_id: &str,
        change: &SessionChange,
    ) -> Result<Option<SessionRow>, StoreError> {
        let row = sqlx::query(sql::UPDATE_SESSION)
            .bind(&change.title)
            .bind(change.state.map(|state| state.as_str()))
            .bind(session_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(session_row).transpose()
    }

    async fn delete_session(&self, session_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::DELETE_SESSION)
            .bind(session_id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_sessions(&self, query: &SessionQuery) -> Result<SessionPage, StoreError> {
        let Some(mut select) = list::select::<Sqlite>(query)? else {
            return Ok(list::page(query, Vec::new()));
        };
        let rows = select.build().fetch_all(&self.pool).await.map_err(db)?;
        let sessions = rows.iter().map(session_row).collect::<Result<_, _>>()?;
        Ok(list::page(query, sessions))
    }

    async fn write(&self, batch: &[TranscriptWrite]) -> Result<(), StoreError> {
        let entries = batch::entries(batch)?;
        if entries.is_empty() {
            return Ok(());
        }
        // One statement per chunk rather than per entry: each statement is a round trip
        // to the connection's thread, and the writer runs beside the turns it records.
        let mut tx = self.transcript.begin_with(BEGIN_WRITE).await.map_err(db)?;
        let mut inserted: Vec<(String, i64)> = Vec::with_capacity(entries.len());
        for chunk in entries.chunks(ROWS_PER_STATEMENT) {
            let mut insert = QueryBuilder::<Sqlite>::new(INSERT_ENTRIES);
            insert.push_values(chunk, |mut row, entry| {
                row.push_bind(entry.session_id)
                    .push_bind(entry.seq)
                    .push_bind(entry.ts)
                    .push_bind(entry.kind)
                    .push_bind(entry.event);
            });
            insert.push(INSERT_ENTRIES_END);
            let rows: Vec<(String, i64)> = insert
                .build_query_as()
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
            inserted.extend(rows);
        }
        let updates = batch::session_updates(batch::stored(&entries, &inserted));
        for chunk in updates.chunks(ROWS_PER_STATEMENT) {
            let mut update = QueryBuilder::<Sqlite>::new(UPDATE_AFTER_WRITE);
            update.push_values(chunk, |mut row, update| {
                let (preview_seq, preview) = update.preview.unzip();
                row.push_bind(update.session_id)
                    .push_bind(update.last_activity_at)
                    .push_bind(update.last_seq)
                    .push_bind(preview_seq)
                    .push_bind(preview)
                    .push_bind(update.title_hint);
            });
            update.push(UPDATE_AFTER_WRITE_END);
            update.build().execute(&mut *tx).await.map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    async fn transcript(
        &self,
        session_id: &str,
        after: u64,
        before: Option<u64>,
        max: usize,
    ) -> Result<Vec<TranscriptEntry>, StoreError> {
        // Nothing is stored past i64::MAX: a bound beyond it is no bound, or nothing.
        let Ok(after) = i64::try_from(after) else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(sql::TRANSCRIPT)
            .bind(session_id)
            .bind(after)
            .bind(before.and_then(upper_bound))
            .bind(limit(max.min(MAX_TRANSCRIPT_PAGE)))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(entry).collect()
    }

    async fn erase_user(&self, org_id: &str, user_id: &str) -> Result<Erased, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(db)?;
        let session_ids = sqlx::query_scalar::<_, String>(sql::OWNED)
            .bind(org_id)
            .bind(user_id)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        let entries: i64 = sqlx::query_scalar(sql::OWNED_ENTRIES)
            .bind(org_id)
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query(sql::DELETE_OWNED)
            .bind(org_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(Erased {
            session_ids,
            entries: from_db(entries, "entry count")?,
        })
    }

    async fn set_retention(&self, org_id: &str, days: Option<u32>) -> Result<(), StoreError> {
        let statement = match days {
            Some(days) => sqlx::query(sql::SET_RETENTION)
                .bind(org_id)
                .bind(i64::from(days)),
            None => sqlx::query(sql::CLEAR_RETENTION).bind(org_id),
        };
        statement.execute(&self.pool).await.map_err(db)?;
        Ok(())
    }

    async fn retention(&self, org_id: &str) -> Result<Option<u32>, StoreError> {
        let days: Option<i64> = sqlx::query_scalar(sql::RETENTION)
            .bind(org_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        days.map(|days| {
            u32::try_from(days)
                .map_err(|_| StoreError::InvalidData(format!("retention of {days} days")))
        })
        .transpose()
    }

    async fn expire(
        &self,
        now_ms: u64,
        default_days: u32,
        max: usize,
    ) -> Result<Vec<String>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let now = to_db(now_ms, "now")?;
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(db)?;
        let expired = sqlx::query_scalar::<_, String>(sql::EXPIRED)
            .bind(now)
            .bind(i64::from(default_days))
            .bind(limit(max))
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        for session_id in &expired {
            sqlx::query(sql::DELETE_SESSION)
                .bind(session_id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(expired)
    }

    async fn handoff(&self, session_id: &str) -> Result<Option<HandoffRow>, StoreError> {
        self.engine().handoff(session_id).await
    }

    async fn set_handoff(
        &self,
        session_id: &str,
        expected: u64,
        new: &HandoffRow,
    ) -> Result<bool, StoreError> {
        self.engine().set_handoff(session_id, expected, new).await
    }

    async fn inbox(
        &self,
        org_id: &str,
        limit: usize,
    ) -> Result<Vec<(SessionRow, HandoffRow)>, StoreError> {
        self.engine().inbox(org_id, limit).await
    }

    async fn set_handoff_settings(
        &self,
        org_id: &str,
        settings: Option<&HandoffSettingsRow>,
    ) -> Result<(), StoreError> {
        self.engine().set_handoff_settings(org_id, settings).await
    }

    async fn handoff_settings(
        &self,
        org_id: &str,
    ) -> Result<Option<HandoffSettingsRow>, StoreError> {
        self.engine().handoff_settings(org_id).await
    }

    async fn create_webhook(
        &self,
        webhook: &WebhookRow,
        max_per_org: usize,
    ) -> Result<bool, StoreError> {
        webhooks::sqlite::create(&self.pool, webhook, max_per_org).await
    }

    async fn put_assistant(
        &self,
        assistant: &AssistantRow,
        max_per_org: usize,
    ) -> Result<bool, StoreError> {
        assistants::sqlite::put(&self.pool, assistant, max_per_org).await
    }

    async fn assistants(&self, org_id: &str) -> Result<Vec<AssistantRow>, StoreError> {
        self.engine().assistants(org_id).await
    }

    async fn assistant(
        &self,
        org_id: &str,
        name: &str,
    ) -> Result<Option<AssistantRow>, StoreError> {
        self.engine().assistant(org_id, name).await
    }

    async fn delete_assistant(&self, org_id: &str, name: &str) -> Result<bool, StoreError> {
        self.engine().delete_assistant(org_id, name).await
    }

    async fn webhooks(&self, org_id: &str) -> Result<Vec<WebhookRow>, StoreError> {
        self.engine().webhooks(org_id).await
    }

    async fn delete_webhook(&self, org_id: &str, webhook_id: &str) -> Result<bool, StoreError> {
        self.engine().delete_webhook(org_id, webhook_id).await
    }

    async fn record_delivery(
        &self,
        delivery: &WebhookDelivery,
        keep: usize,
    ) -> Result<bool, StoreError> {
        webhooks::sqlite::record(&self.pool, delivery, keep).await
    }

    async fn webhook_deliveries(
        &self,
        org_id: &str,
        webhook_id: &str,
        max: usize,
    ) -> Result<Option<Vec<WebhookDelivery>>, StoreError> {
        self.engine()
            .webhook_deliveries(org_id, webhook_id, max)
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both pools of a file store keep temporary storage in memory (`temp_store` 2),
    /// so a transcript batch's statement journal never goes to a temporary file.
    #[tokio::test]
    async fn every_connection_keeps_temporary_storage_in_memory() {
        let dir = switchboard_testkit::temp_path("store-temp", "d");
        let store = SqliteStore::open(&dir.join("conversations.sqlite"))
            .await
            .unwrap();
        for pool in [&store.pool, &store.transcript] {
            let (mode,): (i64,) = sqlx::query_as("PRAGMA temp_store")
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!(mode, 2, "2 is MEMORY");
        }
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
