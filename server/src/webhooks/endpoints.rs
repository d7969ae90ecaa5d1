//! Each org's endpoints as the dispatcher uses them: read from the store at most once
//! per TTL per org, forgotten at once when this replica registers or deletes one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use switchboard_store::{ConversationStore, StoreError, WebhookRow};
use tokio::time::Instant;

/// Orgs whose lists are kept; past it the cache starts over (each is read again).
const MAX_ORGS: usize = 10_000;

struct Cached {
    read_at: Instant,
    rows: Arc<Vec<WebhookRow>>,
}

/// An org's endpoints, as fresh as the TTL.
pub(crate) struct EndpointCache {
    store: Arc<dyn ConversationStore>,
    ttl: Duration,
    orgs: Mutex<HashMap<String, Cached>>,
}

/// What [`EndpointCache::current`] found.
pub(crate) struct Current {
    pub rows: Arc<Vec<WebhookRow>>,
    /// Endpoints the previous read had and this one does not (deleted elsewhere).
    pub vanished: Vec<String>,
}

impl EndpointCache {
    pub fn new(store: Arc<dyn ConversationStore>, ttl: Duration) -> EndpointCache {
        EndpointCache {
            store,
            ttl,
            orgs: Mutex::new(HashMap::new()),
        }
    }

    fn locked(&self) -> MutexGuard<'_, HashMap<String, Cached>> {
        self.orgs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `org_id`'s endpoints: cached, or read again when older than the TTL. A store
    /// that fails leaves the last list in use (an error only when there is none).
    pub async fn current(&self, org_id: &str) -> Result<Current, StoreError> {
        let stale = {
            let orgs = self.locked();
            match orgs.get(org_id) {
                Some(cached) if cached.read_at.elapsed() < self.ttl => {
                    return Ok(Current {
                        rows: cached.rows.clone(),
                        vanished: Vec::new(),
                    });
                }
                Some(cached) => Some(cached.rows.clone()),
                None => None,
            }
        };
        let rows = match self.store.webhooks(org_id).await {
            Ok(rows) => Arc::new(rows),
            Err(e) => {
                let Some(stale) = stale else { return Err(e) };
                tracing::warn!(org_id, error = %e, "webhook endpoints unreadable; using the last list");
                return Ok(Current {
                    rows: stale,
                    vanished: Vec::new(),
                });
            }
        };
        let vanished = stale
            .map(|old| {
                old.iter()
                    .filter(|o| !rows.iter().any(|n| n.webhook_id == o.webhook_id))
                    .map(|o| o.webhook_id.clone())
                    .collect()
            })
            .unwrap_or_default();
        let mut orgs = self.locked();
        if orgs.len() >= MAX_ORGS && !orgs.contains_key(org_id) {
            orgs.clear();
        }
        orgs.insert(
            org_id.to_string(),
            Cached {
                read_at: Instant::now(),
                rows: rows.clone(),
            },
        );
        Ok(Current { rows, vanished })
    }

    /// Read `org_id`'s list again next time (this replica changed it).
    pub fn forget(&self, org_id: &str) {
        self.locked().remove(org_id);
    }
}
