//! [`PostgresStore`]: the conversation store in PostgreSQL, shared by many gateway
//! replicas.
//!
//! Writers lock the sessions they change (in `session_id` order, so two writers cannot
//! deadlock) before storing entries: a session deleted, erased or expired meanwhile
//! either waits for the write or is gone before it, never half-written.

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::error::DatabaseError;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, PgConnection, Postgres};

use crate::batch::{self, Entry};
use crate::convert::{column, from_db, limit, metadata_to_db, session_row, to_db, upper_bound};
use crate::db_error::store_error;
use crate::engine::Engine;
use crate::redact::redact;
use crate::{
    AssistantRow, ConversationStore, Erased, HandoffRow, HandoffSettingsRow, MAX_TRANSCRIPT_PAGE,
    NewSession, SessionChange, SessionPage, SessionQuery, SessionRow, StoreError, TranscriptEntry,
    TranscriptWrite, WebhookDelivery, WebhookRow, assistants, list, migrations, sql, webhooks,
};

/// How long [`PostgresStore::connect`] tries before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a call waits for a free (or new) connection. While the server is down
/// (connections refused), sqlx retries until then: a restart shorter than this is
/// ridden over, a longer outage fails each call after this long.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// `$1`: session ids, sorted. Locks the existing ones against delete, erase and expiry
/// (and other writers) until the transaction ends; their ids.
const LOCK_SESSIONS: &str = "SELECT session_id FROM sessions WHERE session_id = ANY($1) \
     ORDER BY session_id FOR NO KEY UPDATE";

/// `$1..$5`: arrays of session_id, seq, ts, kind, event (sessions that exist, each
/// `(session_id, seq)` once); the entries that were not stored yet.
const INSERT_ENTRIES: &str = "INSERT INTO transcript (session_id, seq, ts, kind, event) \
     SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[]) \
     ON CONFLICT (session_id, seq) DO NOTHING \
     RETURNING session_id, seq";

/// `$1..$6`: arrays of session_id, newest ts, greatest seq, seq of the newest preview
/// (NULL: none), that preview, title hint. See [`batch::SessionUpdate`].
const UPDATE_AFTER_WRITE: &str = "UPDATE sessions AS s SET \
     last_activity_at = GREATEST(s.last_activity_at, u.last_activity_at), \
     preview = CASE WHEN u.preview_seq > s.last_seq THEN u.preview ELSE s.preview END, \
     state = CASE WHEN u.preview_seq > s.last_seq THEN 'active' ELSE s.state END, \
     last_seq = GREATEST(s.last_seq, u.last_seq), \
     title = COALESCE(s.title, u.title_hint) \
     FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::text[]) \
       AS u(session_id, last_activity_at, last_seq, preview_seq, preview, title_hint) \
     WHERE s.session_id = u.session_id";

/// `$1`: session ids.
const DELETE_SESSIONS: &str = "DELETE FROM sessions WHERE session_id = ANY($1)";

/// The conversation store in a PostgreSQL database, for any number of replicas.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// The pool with this engine's reading of errors, for the methods both engines
    /// share.
    fn engine(&self) -> Engine<'_, Postgres> {
        Engine {
            pool: &self.pool,
            error: db,
        }
    }

    /// Connect to the database at `url` (`postgres://user:password@host:port/db`) with
    /// at most `max_connections` connections, and bring its schema up to date. Fails
    /// within about ten seconds when the database does not answer; errors never show
    /// the URL's password.
    pub async fn connect(url: &str, max_connections: u32) -> Result<PostgresStore, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            StoreError::Rejected(redact(&format!("invalid PostgreSQL URL: {e}"), url))
        })?;
        let place = format!(
            "{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or(options.get_username())
        );
        // One connection first, outside the pool: its error says what went wrong
        // (refused, unknown database, authentication) where the pool would only time out.
        match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options)).await {
            Ok(Ok(first)) => {
                let _ = first.close().await;
            }
            Ok(Err(e)) => {
                let error = match db(e) {
                    StoreError::Unavailable(e) => StoreError::Unavailable(format!(
                        "cannot connect to PostgreSQL at {place}: {e}"
                    )),
                    StoreError::Rejected(e) => StoreError::Rejected(format!(
                        "PostgreSQL at {place} refused the connection: {e}"
                    )),
                    other => other,
                };
                return Err(redacted(error, url));
            }
            Err(_) => {
                return Err(StoreError::Unavailable(format!(
                    "PostgreSQL at {place} did not answer within {CONNECT_TIMEOUT:?}"
                )));
            }
        }
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options);
        migrations::postgres().run(&pool).await.map_err(|e| {
            StoreError::Rejected(redact(
                &format!("migrating the PostgreSQL schema at {place}: {e}"),
                url,
            ))
        })?;
        tracing::info!(database = %place, max_connections, "conversation store: PostgreSQL");
        Ok(PostgresStore { pool })
    }

    /// Close every connection, waiting for calls in flight. Calls after it fail as
    /// `Unavailable`.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn redacted(error: StoreError, url: &str) -> StoreError {
    match error {
        StoreError::Unavailable(e) => StoreError::Unavailable(redact(&e, url)),
        StoreError::InvalidData(e) => StoreError::InvalidData(redact(&e, url)),
        StoreError::Rejected(e) => StoreError::Rejected(redact(&e, url)),
    }
}

/// PostgreSQL's transient SQLSTATEs: connection exceptions (08), insufficient
/// resources (53), operator intervention such as a shutdown (57P), system errors (58),
/// serialization failures and deadlocks (40001, 40P01), a lock not available (55P03).
fn is_transient(error: &dyn DatabaseError) -> bool {
    let Some(code) = error.code() else {
        return false;
    };
    ["08", "53", "57P", "58", "40001", "40P01", "55P03"]
        .iter()
        .any(|prefix| code.starts_with(prefix))
}

pub(crate) fn db(error: sqlx::Error) -> StoreError {
    store_error(error, is_transient)
}

fn entry(row: &PgRow) -> Result<TranscriptEntry, StoreError> {
    Ok(TranscriptEntry {
        seq: from_db(column(row, "seq")?, "seq")?,
        ts: from_db(column(row, "ts")?, "ts")?,
        kind: column(row, "kind")?,
        event: column(row, "event")?,
    })
}

/// Stores `entries` of the sessions that exist, locked in `tx`; those stored (not
/// there already).
async fn insert_entries<'a, 'e>(
    tx: &mut sqlx::PgConnection,
    entries: &'e [Entry<'a>],
) -> Result<Vec<&'e Entry<'a>>, StoreError> {
    let mut ids: Vec<&str> = entries.iter().map(|entry| entry.session_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let existing: Vec<String> = sqlx::query_scalar(LOCK_SESSIONS)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
    let existing: HashSet<&str> = existing.iter().map(String::as_str).collect();
    let candidates: Vec<&Entry<'a>> = entries
        .iter()
        .filter(|entry| existing.contains(entry.session_id))
        .collect();
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let inserted: Vec<(String, i64)> = sqlx::query_as(INSERT_ENTRIES)
        .bind(candidates.iter().map(|e| e.session_id).collect::<Vec<_>>())
        .bind(candidates.iter().map(|e| e.seq).collect::<Vec<_>>())
        .bind(candidates.iter().map(|e| e.ts).collect::<Vec<_>>())
        .bind(candidates.iter().map(|e| e.kind).collect::<Vec<_>>())
        .bind(candidates.iter().map(|e| e.event).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
    Ok(batch::stored(candidates, &inserted))
}

#[async_trait]
impl ConversationStore for PostgresStore {
    fn name(&self) -> &'static str {
        "postgres"
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
        let Some(mut select) = list::select::<Postgres>(query)? else {
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
        let mut tx = self.pool.begin().await.map_err(db)?;
        let stored = insert_entries(&mut tx, &entries).await?;
        let updates = batch::session_updates(stored);
        if !updates.is_empty() {
            sqlx::query(UPDATE_AFTER_WRITE)
                .bind(updates.iter().map(|u| u.session_id).collect::<Vec<_>>())
                .bind(
                    updates
                        .iter()
                        .map(|u| u.last_activity_at)
                        .collect::<Vec<_>>(),
                )
                .bind(updates.iter().map(|u| u.last_seq).collect::<Vec<_>>())
                .bind(
                    updates
                        .iter()
                        .map(|u| u.preview.map(|p| p.0))
                        .collect::<Vec<_>>(),
                )
                .bind(
                    updates
                        .iter()
                        .map(|u| u.preview.map(|p| p.1))
                        .collect::<Vec<_>>(),
                )
                .bind(updates.iter().map(|u| u.title_hint).collect::<Vec<_>>())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
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
        let mut tx = self.pool.begin().await.map_err(db)?;
        let session_ids: Vec<String> = sqlx::query_scalar(sql::OWNED_FOR_UPDATE)
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
        sqlx::query(DELETE_SESSIONS)
            .bind(&session_ids)
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
        let mut tx = self.pool.begin().await.map_err(db)?;
        let expired: Vec<String> = sqlx::query_scalar(sql::EXPIRED_FOR_UPDATE)
            .bind(now)
            .bind(i64::from(default_days))
            .bind(limit(max))
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        if !expired.is_empty() {
            sqlx::query(DELETE_SESSIONS)
                .bind(&expired)
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
        webhooks::postgres::create(&self.pool, webhook, max_per_org).await
    }

    async fn put_assistant(
        &self,
        assistant: &AssistantRow,
        max_per_org: usize,
    ) -> Result<bool, StoreError> {
        assistants::postgres::put(&self.pool, assistant, max_per_org).await
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
        webhooks::postgres::record(&self.pool, delivery, keep).await
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
