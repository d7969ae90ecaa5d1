//! Named assistants: an org's assistants, each a name and its settings. The store keeps
//! the settings as JSON text it does not read; the gateway validates them.

pub(crate) mod memory;
pub(crate) mod postgres;
pub(crate) mod sqlite;

use crate::StoreError;
use crate::convert::{column, from_db};
use crate::engine::shared_methods;

/// An org's assistant as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssistantRow {
    pub org_id: String,
    pub name: String,
    /// Its settings, JSON text.
    pub spec: String,
    pub updated_at: u64,
}

/// `$1, $2`: org_id, name: whether the org has that assistant.
pub(crate) const ASSISTANT_EXISTS: &str =
    "SELECT COUNT(*) FROM assistants WHERE org_id = $1 AND name = $2";

/// `$1`: org_id.
pub(crate) const COUNT_ASSISTANTS: &str = "SELECT COUNT(*) FROM assistants WHERE org_id = $1";

/// `$1..$4`: org_id, name, spec, updated_at; replaces an assistant of that name.
pub(crate) const PUT_ASSISTANT: &str = "INSERT INTO assistants (org_id, name, spec, updated_at) \
     VALUES ($1, $2, $3, $4) \
     ON CONFLICT (org_id, name) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at";

/// `$1`: org_id; by name.
const ASSISTANTS: &str =
    "SELECT org_id, name, spec, updated_at FROM assistants WHERE org_id = $1 ORDER BY name";

/// `$1, $2`: org_id, name.
const ASSISTANT: &str =
    "SELECT org_id, name, spec, updated_at FROM assistants WHERE org_id = $1 AND name = $2";

/// `$1, $2`: org_id, name; returns a row when it existed.
const DELETE_ASSISTANT: &str =
    "DELETE FROM assistants WHERE org_id = $1 AND name = $2 RETURNING name";

fn assistant_row<R>(row: &R) -> Result<AssistantRow, StoreError>
where
    R: sqlx::Row,
    for<'n> &'n str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(AssistantRow {
        org_id: column(row, "org_id")?,
        name: column(row, "name")?,
        spec: column(row, "spec")?,
        updated_at: from_db(column(row, "updated_at")?, "updated_at")?,
    })
}

shared_methods! {
    /// [`ConversationStore::assistants`](crate::ConversationStore::assistants).
    pub(crate) async fn assistants(&self, org_id: &str) -> Result<Vec<AssistantRow>, StoreError> {
        let rows = ::sqlx::query::<DB>(ASSISTANTS)
            .bind(org_id)
            .fetch_all(self.pool)
            .await
            .map_err(self.error)?;
        rows.iter().map(assistant_row).collect()
    }

    /// [`ConversationStore::assistant`](crate::ConversationStore::assistant).
    pub(crate) async fn assistant(
        &self,
        org_id: &str,
        name: &str,
    ) -> Result<Option<AssistantRow>, StoreError> {
        let row = ::sqlx::query::<DB>(ASSISTANT)
            .bind(org_id)
            .bind(name)
            .fetch_optional(self.pool)
            .await
            .map_err(self.error)?;
        row.map(|row| assistant_row(&row)).transpose()
    }

    /// [`ConversationStore::delete_assistant`](crate::ConversationStore::delete_assistant).
    pub(crate) async fn delete_assistant(&self, org_id: &str, name: &str) -> Result<bool, StoreError> {
        let deleted = ::sqlx::query::<DB>(DELETE_ASSISTANT)
            .bind(org_id)
            .bind(name)
            .fetch_optional(self.pool)
            .await
            .map_err(self.error)?;
        Ok(deleted.is_some())
    }
}
