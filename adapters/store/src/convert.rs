//! Between the store's values and the database's: u64 values in BIGINT (i64) columns,
//! metadata as JSON text, and a session row read back. Shared by both engines, whose
//! columns have the same names and types.

use serde_json::{Map, Value};
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::{SessionRow, SessionState, StoreError};

/// `value` as stored: an error (not a panic, not a wrapped number) when it does not fit
/// a BIGINT column.
pub(crate) fn to_db(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| {
        StoreError::Rejected(format!(
            "{what} {value} does not fit the store (at most {})",
            i64::MAX
        ))
    })
}

/// A stored BIGINT as the u64 it was written from.
pub(crate) fn from_db(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value)
        .map_err(|_| StoreError::InvalidData(format!("{what} is negative ({value})")))
}

/// An upper bound (`x < bound`) as stored: `None` (no bound) past `i64::MAX`, since
/// every stored value is below it then.
pub(crate) fn upper_bound(bound: u64) -> Option<i64> {
    i64::try_from(bound).ok()
}

/// A row count limit as bound (`LIMIT ?`).
pub(crate) fn limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Metadata as stored: JSON object text.
pub(crate) fn metadata_to_db(metadata: Option<&Map<String, Value>>) -> Option<String> {
    metadata.map(|map| Value::Object(map.clone()).to_string())
}

fn metadata_from_db(text: Option<String>) -> Result<Option<Map<String, Value>>, StoreError> {
    let Some(text) = text else {
        return Ok(None);
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(_) => Err(StoreError::InvalidData(
            "session metadata is not a JSON object".into(),
        )),
        Err(e) => Err(StoreError::InvalidData(format!(
            "session metadata is not JSON: {e}"
        ))),
    }
}

/// A column of `row`, or `InvalidData` naming it.
pub(crate) fn column<'r, R, T>(row: &'r R, name: &str) -> Result<T, StoreError>
where
    R: Row,
    for<'n> &'n str: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get(name)
        .map_err(|e| StoreError::InvalidData(format!("column {name}: {e}")))
}

/// A `sessions` row (selected as `sql::session_columns!()`).
pub(crate) fn session_row<R>(row: &R) -> Result<SessionRow, StoreError>
where
    R: Row,
    for<'n> &'n str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let state: String = column(row, "state")?;
    Ok(SessionRow {
        session_id: column(row, "session_id")?,
        org_id: column(row, "org_id")?,
        owner: column(row, "owner")?,
        key_sha256: column(row, "key_sha256")?,
        title: column(row, "title")?,
        state: SessionState::parse(&state)
            .ok_or_else(|| StoreError::InvalidData(format!("unknown session state {state:?}")))?,
        created_at: from_db(column(row, "created_at")?, "created_at")?,
        last_activity_at: from_db(column(row, "last_activity_at")?, "last_activity_at")?,
        last_seq: from_db(column(row, "last_seq")?, "last_seq")?,
        preview: column(row, "preview")?,
        metadata: metadata_from_db(column(row, "metadata")?)?,
        assistant: column(row, "assistant")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_past_i64_are_refused_not_wrapped() {
        assert_eq!(to_db(i64::MAX as u64, "seq").ok(), Some(i64::MAX));
        assert!(matches!(
            to_db(i64::MAX as u64 + 1, "seq"),
            Err(StoreError::Rejected(_))
        ));
        assert!(matches!(
            from_db(-1, "seq"),
            Err(StoreError::InvalidData(_))
        ));
        assert_eq!(upper_bound(u64::MAX), None);
        assert_eq!(limit(usize::MAX), i64::MAX);
    }

    #[test]
    fn metadata_must_be_an_object() {
        let mut map = Map::new();
        map.insert("k".into(), Value::from(1));
        let text = metadata_to_db(Some(&map));
        assert_eq!(metadata_from_db(text).ok(), Some(Some(map)));
        assert!(metadata_from_db(Some("[1]".into())).is_err());
        assert!(metadata_from_db(Some("{".into())).is_err());
    }
}
