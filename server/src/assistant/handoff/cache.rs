//! What the turn path reads about handoff without waiting for the store: each
//! session's state, mirrored in the backplane's shared records after every stored
//! change (by version, so a late writer never puts an older state back), and each
//! org's settings, kept a few seconds per replica. A frozen store then holds back no
//! answer of a conversation the assistant holds (docs/protocol.md §3.14).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use switchboard_backplane::{Backplane, RecordKey};
use switchboard_protocol::handoff::HandoffSettings;
use switchboard_store::HandoffState;
use tokio::time::Instant;

use crate::records::namespace::HANDOFFS;

/// How long a replica uses an org's settings before reading them again.
pub const SETTINGS_TTL: Duration = Duration::from_secs(10);
/// Orgs whose settings a replica keeps at most (the map is emptied past it).
const MAX_ORGS: usize = 10_000;
/// Attempts to put a newer state over a concurrent writer's.
const MIRROR_ATTEMPTS: usize = 4;

/// A session's state as mirrored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mirrored {
    pub state: HandoffState,
    pub version: u64,
}

pub struct HandoffCache {
    backplane: Arc<dyn Backplane>,
    /// How long a mirrored state lives (`--history-max-age`).
    ttl: Duration,
    settings: Mutex<HashMap<String, (Instant, HandoffSettings)>>,
}

impl HandoffCache {
    pub fn new(backplane: Arc<dyn Backplane>, ttl: Duration) -> HandoffCache {
        HandoffCache {
            backplane,
            ttl,
            settings: Mutex::new(HashMap::new()),
        }
    }

    fn key(session_id: &str) -> RecordKey {
        RecordKey::new(HANDOFFS, session_id)
    }

    /// The mirrored state, if the records hold one (an unreadable one counts as none).
    pub async fn state(&self, session_id: &str) -> Option<Mirrored> {
        match self.backplane.record_get(&Self::key(session_id)).await {
            Ok(Some(bytes)) => serde_json::from_slice(&bytes).ok(),
            Ok(None) => None,
            Err(e) => {
                tracing::debug!(session_id, error = %e, "handoff mirror unreadable");
                None
            }
        }
    }

    /// Mirror `state` unless a newer one is there. Best effort: the store is the truth,
    /// and a missing mirror is read from it again.
    pub async fn mirror(&self, session_id: &str, state: Mirrored) {
        let key = Self::key(session_id);
        let value = Bytes::from(serde_json::to_vec(&state).unwrap_or_default());
        for _ in 0..MIRROR_ATTEMPTS {
            let done = match self.backplane.record_get(&key).await {
                Ok(None) => {
                    self.backplane
                        .record_create(&key, value.clone(), Some(self.ttl))
                        .await
                }
                Ok(Some(current)) => {
                    let newer = serde_json::from_slice::<Mirrored>(&current)
                        .is_ok_and(|m| m.version >= state.version);
                    if newer {
                        return;
                    }
                    self.backplane
                        .record_replace(&key, &current, Some(value.clone()), Some(self.ttl))
                        .await
                }
                Err(e) => Err(e),
            };
            match done {
                Ok(true) => return,
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(session_id, error = %e, "could not mirror a handoff state; the turn path reads the store");
                    let _ = self.backplane.record_delete(&key).await;
                    return;
                }
            }
        }
    }

    fn settings_map(&self) -> MutexGuard<'_, HashMap<String, (Instant, HandoffSettings)>> {
        self.settings.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The org's settings if read within [`SETTINGS_TTL`].
    pub fn settings(&self, org_id: &str) -> Option<HandoffSettings> {
        let map = self.settings_map();
        map.get(org_id)
            .filter(|(read, _)| read.elapsed() < SETTINGS_TTL)
            .map(|(_, settings)| settings.clone())
    }

    pub fn keep_settings(&self, org_id: &str, settings: &HandoffSettings) {
        let mut map = self.settings_map();
        if map.len() >= MAX_ORGS && !map.contains_key(org_id) {
            map.clear();
        }
        map.insert(org_id.to_string(), (Instant::now(), settings.clone()));
    }

    pub fn forget_settings(&self, org_id: &str) {
        self.settings_map().remove(org_id);
    }
}
