//! The handoff methods of both SQL engines: the statements, their binds and the rows
//! they read back are the same on SQLite and PostgreSQL.

use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::convert::{column, from_db, limit, session_row, to_db};
use crate::engine::shared_methods;
use crate::{HandoffRow, HandoffSettingsRow, HandoffState, MAX_PAGE, SessionRow, StoreError};

/// `$1`: session_id. A session without a handoff row reads as the assistant's since
/// its creation, version 0; no row at all: no such session.
const HANDOFF: &str = "SELECT COALESCE(h.state, 'assistant') AS state, \
     h.operator, h.operator_name, h.reason, \
     COALESCE(h.since, s.created_at) AS since, COALESCE(h.version, 0) AS version \
     FROM sessions s LEFT JOIN session_handoff h ON h.session_id = s.session_id \
     WHERE s.session_id = $1";

/// `$1..$6`: session_id, state, operator, operator_name, reason, since: the first
/// handoff of a session (version 1), only if the session exists and has none yet;
/// returns a row when it did.
const INSERT_HANDOFF: &str = "INSERT INTO session_handoff \
     (session_id, org_id, state, operator, operator_name, reason, since, version) \
     SELECT s.session_id, s.org_id, $2, $3, $4, $5, $6, 1 FROM sessions s \
     WHERE s.session_id = $1 \
     ON CONFLICT (session_id) DO NOTHING RETURNING version";

/// `$1..$7`: session_id, state, operator, operator_name, reason, since, expected
/// version; returns a row when it changed one.
const UPDATE_HANDOFF: &str = "UPDATE session_handoff SET \
     state = $2, operator = $3, operator_name = $4, reason = $5, since = $6, \
     version = version + 1 \
     WHERE session_id = $1 AND version = $7 RETURNING version";

/// `$1, $2`: org_id, limit.
const INBOX: &str = "SELECT s.session_id, s.org_id, s.owner, s.key_sha256, \
     s.title, s.state, s.created_at, s.last_activity_at, s.last_seq, s.preview, \
     s.metadata, s.assistant, h.state AS handoff_state, h.operator, h.operator_name, h.reason, \
     h.since, h.version \
     FROM session_handoff h JOIN sessions s ON s.session_id = h.session_id \
     WHERE h.org_id = $1 AND h.state <> 'assistant' \
     ORDER BY h.since, h.session_id LIMIT $2";

/// `$1..$4`: org_id, enabled, waiting_message, when_unanswered.
const SET_SETTINGS: &str = "INSERT INTO org_handoff \
     (org_id, enabled, waiting_message, when_unanswered) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (org_id) DO UPDATE SET enabled = excluded.enabled, \
     waiting_message = excluded.waiting_message, when_unanswered = excluded.when_unanswered";

/// `$1`: org_id.
const CLEAR_SETTINGS: &str = "DELETE FROM org_handoff WHERE org_id = $1";

/// `$1`: org_id.
const SETTINGS: &str =
    "SELECT enabled, waiting_message, when_unanswered FROM org_handoff WHERE org_id = $1";

/// A handoff read with its state in column `state_column`.
fn handoff_row<R>(row: &R, state_column: &str) -> Result<HandoffRow, StoreError>
where
    R: Row,
    for<'n> &'n str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let state: String = column(row, state_column)?;
    Ok(HandoffRow {
        state: HandoffState::parse(&state)
            .ok_or_else(|| StoreError::InvalidData(format!("unknown handoff state {state:?}")))?,
        operator: column(row, "operator")?,
        operator_name: column(row, "operator_name")?,
        reason: column(row, "reason")?,
        since: from_db(column(row, "since")?, "since")?,
        version: from_db(column(row, "version")?, "version")?,
    })
}

/// A row of [`INBOX`].
fn inbox_row<R>(row: &R) -> Result<(SessionRow, HandoffRow), StoreError>
where
    R: Row,
    for<'n> &'n str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok((session_row(row)?, handoff_row(row, "handoff_state")?))
}

/// A row of [`SETTINGS`].
fn settings_row<R>(row: &R) -> Result<HandoffSettingsRow, StoreError>
where
    R: Row,
    for<'n> &'n str: ColumnIndex<R>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(HandoffSettingsRow {
        enabled: column(row, "enabled")?,
        waiting_message: column(row, "waiting_message")?,
        when_unanswered: column(row, "when_unanswered")?,
    })
}

shared_methods! {
    /// [`ConversationStore::handoff`](crate::ConversationStore::handoff).
    pub(crate) async fn handoff(&self, session_id: &str) -> Result<Option<HandoffRow>, StoreError> {
        let row = ::sqlx::query::<DB>(HANDOFF)
            .bind(session_id)
            .fetch_optional(self.pool)
            .await
            .map_err(self.error)?;
        row.map(|row| handoff_row(&row, "state")).transpose()
    }

    /// [`ConversationStore::set_handoff`](crate::ConversationStore::set_handoff): the
    /// first change inserts the row (version 1), later ones update it from `expected`.
    pub(crate) async fn set_handoff(
        &self,
        session_id: &str,
        expected: u64,
        new: &HandoffRow,
    ) -> Result<bool, StoreError> {
        let since = to_db(new.since, "since")?;
        let statement = if expected == 0 {
            INSERT_HANDOFF
        } else {
            UPDATE_HANDOFF
        };
        let mut query = ::sqlx::query::<DB>(statement)
            .bind(session_id)
            .bind(new.state.as_str())
            .bind(new.operator.as_deref())
            .bind(new.operator_name.as_deref())
            .bind(new.reason.as_deref())
            .bind(since);
        if expected != 0 {
            query = query.bind(to_db(expected, "version")?);
        }
        let changed = query.fetch_optional(self.pool).await.map_err(self.error)?;
        Ok(changed.is_some())
    }

    /// [`ConversationStore::inbox`](crate::ConversationStore::inbox).
    pub(crate) async fn inbox(
        &self,
        org_id: &str,
        max: usize,
    ) -> Result<Vec<(SessionRow, HandoffRow)>, StoreError> {
        let rows = ::sqlx::query::<DB>(INBOX)
            .bind(org_id)
            .bind(limit(max.clamp(1, MAX_PAGE)))
            .fetch_all(self.pool)
            .await
            .map_err(self.error)?;
        rows.iter().map(inbox_row).collect()
    }

    /// [`ConversationStore::set_handoff_settings`](crate::ConversationStore::set_handoff_settings).
    pub(crate) async fn set_handoff_settings(
        &self,
        org_id: &str,
        settings: Option<&HandoffSettingsRow>,
    ) -> Result<(), StoreError> {
        let query = match settings {
            Some(settings) => ::sqlx::query::<DB>(SET_SETTINGS)
                .bind(org_id)
                .bind(settings.enabled)
                .bind(settings.waiting_message.as_deref())
                .bind(settings.when_unanswered),
            None => ::sqlx::query::<DB>(CLEAR_SETTINGS).bind(org_id),
        };
        query.execute(self.pool).await.map_err(self.error)?;
        Ok(())
    }

    /// [`ConversationStore::handoff_settings`](crate::ConversationStore::handoff_settings).
    pub(crate) async fn handoff_settings(
        &self,
        org_id: &str,
    ) -> Result<Option<HandoffSettingsRow>, StoreError> {
        let row = ::sqlx::query::<DB>(SETTINGS)
            .bind(org_id)
            .fetch_optional(self.pool)
            .await
            .map_err(self.error)?;
        row.map(|row| settings_row(&row)).transpose()
    }
}
