//! The query of [`ConversationStore::list_sessions`](crate::ConversationStore::list_sessions),
//! the same SQL on both engines (sqlx numbers the placeholders per engine): keyset
//! pagination on `(last_activity_at DESC, session_id DESC)`, which the
//! `sessions_by_org` and `sessions_by_owner` indexes serve.

use sqlx::{Database, Encode, QueryBuilder, Type};

use crate::convert::{to_db, upper_bound};
use crate::sql::session_columns;
use crate::{Cursor, MAX_PAGE, SessionQuery, SessionRow, StoreError};

/// How many sessions a page of `query` holds: its limit, clamped to `1..=MAX_PAGE`.
pub(crate) fn page_size(query: &SessionQuery) -> usize {
    query.limit.clamp(1, MAX_PAGE)
}

/// The select of `query`'s page plus one more row (whether more follow), or `None`
/// when no stored session can match (a lower bound past every stored value).
pub(crate) fn select<DB>(query: &SessionQuery) -> Result<Option<QueryBuilder<DB>>, StoreError>
where
    DB: Database,
    DB::Arguments: Default,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
{
    let mut sql = QueryBuilder::<DB>::new(concat!(
        "SELECT ",
        session_columns!(),
        " FROM sessions WHERE org_id = "
    ));
    sql.push_bind(query.org_id.clone());
    if let Some(owner) = &query.owner {
        sql.push(" AND owner = ").push_bind(owner.clone());
    }
    if let Some(state) = query.state {
        sql.push(" AND state = ")
            .push_bind(state.as_str().to_string());
    }
    if let Some(since) = query.active_since {
        let Ok(since) = to_db(since, "active_since") else {
            return Ok(None);
        };
        sql.push(" AND last_activity_at >= ").push_bind(since);
    }
    if let Some(before) = query.active_before.and_then(upper_bound) {
        sql.push(" AND last_activity_at < ").push_bind(before);
    }
    if let Some(Cursor {
        last_activity_at,
        session_id,
    }) = &query.cursor
        && let Some(at) = upper_bound(*last_activity_at)
    {
        // Rows after the cursor in the listing's order: older, or as old with a smaller id.
        sql.push(" AND (last_activity_at < ")
            .push_bind(at)
            .push(" OR (last_activity_at = ")
            .push_bind(at)
            .push(" AND session_id < ")
            .push_bind(session_id.clone())
            .push("))");
    }
    let fetch = to_db(page_size(query) as u64 + 1, "limit")?;
    sql.push(" ORDER BY last_activity_at DESC, session_id DESC LIMIT ")
        .push_bind(fetch);
    Ok(Some(sql))
}

/// The page of `rows` (as [`select`] fetched them, one more than fits when more follow).
pub(crate) fn page(query: &SessionQuery, mut rows: Vec<SessionRow>) -> crate::SessionPage {
    let size = page_size(query);
    let more = rows.len() > size;
    rows.truncate(size);
    let next = if more {
        rows.last().map(|last| Cursor {
            last_activity_at: last.last_activity_at,
            session_id: last.session_id.clone(),
        })
    } else {
        None
    };
    crate::SessionPage {
        sessions: rows,
        next,
    }
}
