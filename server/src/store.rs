//! Opening the configured conversation store: the one place that knows every store.

use std::sync::Arc;

pub use switchboard_store::{ConversationStore, StoreError};
use switchboard_store::{MemoryStore, PostgresStore, SqliteStore};

use crate::config::{StoreChoice, redact_url};

/// The SQLite file's name inside `--data-dir`.
pub const SQLITE_FILE: &str = "switchboard.db";

/// Open the store `choice` names, applying its migrations. A wrong URL, an unreachable
/// server or an unwritable data directory fails here, at boot, with a message naming
/// the setting (and no password).
pub async fn open(
    choice: &StoreChoice,
    data_dir: &std::path::Path,
    max_connections: u32,
) -> anyhow::Result<Arc<dyn ConversationStore>> {
    match choice {
        StoreChoice::Sqlite => {
            let path = data_dir.join(SQLITE_FILE);
            let store = SqliteStore::open(&path).await.map_err(|e| {
                anyhow::anyhow!(
                    "--store sqlite in --data-dir (SWITCHBOARD_DATA_DIR) {}: {e}",
                    data_dir.display()
                )
            })?;
            tracing::info!(path = %path.display(), "conversations are kept in SQLite");
            Ok(Arc::new(store))
        }
        StoreChoice::Memory => {
            tracing::warn!("conversations are kept in memory: a restart forgets them");
            Ok(Arc::new(MemoryStore::new()))
        }
        StoreChoice::Postgres(url) => {
            let store = PostgresStore::connect(url, max_connections)
                .await
                .map_err(|e| anyhow::anyhow!("--store (SWITCHBOARD_STORE): {e}"))?;
            tracing::info!(target = %redact_url(url), "conversations are kept in PostgreSQL");
            Ok(Arc::new(store))
        }
    }
}
