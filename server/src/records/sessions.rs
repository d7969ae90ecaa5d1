//! Session records: kept for good in the conversation store, and cached in the
//! backplane's shared records (for `--history-max-age`, or `--unused-session-ttl`
//! while the session has no message) so every replica finds them with one read.
//! Creating one takes a place in the session quotas first (`session_quota`). A session the cache forgot (expired, or a restarted in-memory
//! backplane) is loaded from the store and cached again. Who may join a session is
//! decided in `access::policy`. A created session is announced to the org's webhooks
//! (`conversation.created`), and the records answer the webhooks' question of which
//! org a session is in.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use switchboard_backplane::{Backplane, RecordKey};
use switchboard_store::{ConversationStore, NewSession, SessionRow};

use switchboard_protocol::{ErrorCode, Principal};

use crate::error::ClientError;
use crate::ids::{new_id, session_stream};
use crate::records::namespace::SESSIONS;
use crate::records::session_quota::SessionQuota;
use crate::shutdown::Shutdown;
use crate::webhooks::{SessionOrgs, WebhookEvent, WebhookEventType, Webhooks};

/// Largest serialized session `metadata` (docs/protocol.md §3).
pub const MAX_METADATA_BYTES: usize = 4096;

/// A session as every replica sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRecord {
    pub session_id: String,
    pub org_id: String,
    /// The creator's `user_id`; `None` for anonymous sessions.
    pub owner: Option<String>,
    /// SHA-256 (hex) of the anonymous session's key; the key itself is never stored.
    pub key_sha256: Option<String>,
    pub created_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// The org's named assistant the session talks to; `None`: the default assistant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assistant: Option<String>,
}

impl SessionRecord {
    /// Whether `presented` is this anonymous session's key, compared in constant time
    /// on the hashes. False for sessions that have no key.
    pub fn key_matches(&self, presented: &str) -> bool {
        self.key_sha256.as_ref().is_some_and(|expected| {
            bool::from(hash_key(presented).as_bytes().ct_eq(expected.as_bytes()))
        })
    }
}

impl From<SessionRow> for SessionRecord {
    fn from(row: SessionRow) -> SessionRecord {
        SessionRecord {
            session_id: row.session_id,
            org_id: row.org_id,
            owner: row.owner,
            key_sha256: row.key_sha256,
            created_at: row.created_at,
            metadata: row.metadata,
            assistant: row.assistant,
        }
    }
}

/// Session records: the store, and their cache in the backplane.
pub struct SessionStore {
    backplane: Arc<dyn Backplane>,
    store: Arc<dyn ConversationStore>,
    /// How long the cached copy lives (`--history-max-age`).
    ttl: Duration,
    webhooks: Webhooks,
    quota: Arc<SessionQuota>,
}

fn hash_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn new_session_key() -> String {
    let bytes: [u8; 24] = rand::random();
    format!(
        "k_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

impl SessionStore {
    pub fn new(
        backplane: Arc<dyn Backplane>,
        store: Arc<dyn ConversationStore>,
        ttl: Duration,
        webhooks: Webhooks,
        quota: Arc<SessionQuota>,
    ) -> SessionStore {
        SessionStore {
            backplane,
            store,
            ttl,
            webhooks,
            quota,
        }
    }

    /// The session quotas creations are checked against.
    pub fn quota(&self) -> &Arc<SessionQuota> {
        &self.quota
    }

    /// How long a cached record lives: shorter while nothing was said in the session,
    /// so sessions created and abandoned do not hold memory for a day.
    fn ttl_of(&self, last_seq: u64) -> Duration {
        if last_seq == 0 {
            self.quota.unused_session_ttl().min(self.ttl)
        } else {
            self.ttl
        }
    }

    /// `session.create` and `POST /v1/sessions`: refuse during a drain
    /// (`unavailable`) and metadata over [`MAX_METADATA_BYTES`] serialized
    /// (`too_large`), then [`SessionStore::create`].
    pub async fn open(
        &self,
        shutdown: &Shutdown,
        access: &Principal,
        client: Option<IpAddr>,
        metadata: Option<serde_json::Map<String, serde_json::Value>>,
        assistant: Option<String>,
    ) -> Result<(SessionRecord, Option<String>), ClientError> {
        if shutdown.is_draining() {
            return Err(ClientError::draining());
        }
        if let Some(metadata) = &metadata {
            let size = serde_json::to_vec(metadata)
                .map(|v| v.len())
                .unwrap_or(usize::MAX);
            if size > MAX_METADATA_BYTES {
                return Err(ClientError::new(
                    ErrorCode::TooLarge,
                    format!(
                        "metadata is {size} bytes serialized; the limit is {MAX_METADATA_BYTES}"
                    ),
                ));
            }
        }
        self.create(access, client, metadata, assistant).await
    }

    /// Create a session owned by `access`, connected from `client`, within the session
    /// quotas, talking to the named `assistant` (checked by the caller) or the default
    /// one. Returns the record and, for anonymous creators, the session key (shown
    /// once, never stored in clear).
    pub async fn create(
        &self,
        access: &Principal,
        client: Option<IpAddr>,
        metadata: Option<serde_json::Map<String, serde_json::Value>>,
        assistant: Option<String>,
    ) -> Result<(SessionRecord, Option<String>), ClientError> {
        let admission = self.quota.admit(access, client).await?;
        let created = self.create_admitted(access, metadata, assistant).await;
        if created.is_err() {
            self.quota.cancel(admission);
        }
        created
    }

    async fn create_admitted(
        &self,
        access: &Principal,
        metadata: Option<serde_json::Map<String, serde_json::Value>>,
        assistant: Option<String>,
    ) -> Result<(SessionRecord, Option<String>), ClientError> {
        let key = access.anonymous.then(new_session_key);
        let record = SessionRecord {
            session_id: new_id("s"),
            org_id: access.org_id.clone(),
            owner: if access.anonymous {
                None
            } else {
                access.user_id.clone()
            },
            key_sha256: key.as_deref().map(hash_key),
            created_at: switchboard_backplane::now_ms(),
            metadata,
            assistant,
        };
        let created = self
            .store
            .create_session(&NewSession {
                session_id: record.session_id.clone(),
                org_id: record.org_id.clone(),
                owner: record.owner.clone(),
                key_sha256: record.key_sha256.clone(),
                created_at: record.created_at,
                metadata: record.metadata.clone(),
                assistant: record.assistant.clone(),
            })
            .await?;
        if created {
            self.cache(&record, self.ttl_of(0)).await?;
            self.webhooks
                .notify(&record.org_id, conversation_created(&record));
        } else {
            // A random 128-bit id collided: practically impossible, but never overwrite.
            return Err(ClientError::new(
                switchboard_protocol::ErrorCode::Conflict,
                "session id collision; retry session.create",
            ));
        }
        Ok((record, key))
    }

    /// Put `record` in the backplane's cache for `ttl`.
    async fn cache(&self, record: &SessionRecord, ttl: Duration) -> Result<(), ClientError> {
        let value = serde_json::to_vec(record).map_err(|e| {
            ClientError::new(switchboard_protocol::ErrorCode::Internal, e.to_string())
        })?;
        self.backplane
            .record_put(
                &RecordKey::new(SESSIONS, &record.session_id),
                Bytes::from(value),
                Some(ttl),
            )
            .await?;
        Ok(())
    }

    /// The session, if it exists: from the cache, else from the store (then cached
    /// again, with the stream told where its `seq` stands, so a backplane that forgot
    /// the stream never hands out a `seq` the transcript already has).
    pub async fn get(&self, session_id: &str) -> Result<Option<SessionRecord>, ClientError> {
        if let Some(record) = self.cached(session_id).await? {
            return Ok(Some(record));
        }
        let Some(row) = self.store.session(session_id).await? else {
            return Ok(None);
        };
        if let Ok(stream) = session_stream(session_id)
            && let Err(e) = self.backplane.ensure_seq_above(&stream, row.last_seq).await
        {
            // NATS cannot raise a stream's seq (it shares one sequence): a backplane
            // whose sequence restarted below the transcript's is logged, and the
            // conversation stays reachable.
            tracing::warn!(session_id, last_seq = row.last_seq, error = %e, "the backplane's seq is below the transcript's");
        }
        let ttl = self.ttl_of(row.last_seq);
        let record = SessionRecord::from(row);
        self.cache(&record, ttl).await?;
        Ok(Some(record))
    }

    /// Drop the cached record (the session was deleted from the store).
    pub async fn forget(&self, session_id: &str) -> Result<(), ClientError> {
        self.backplane
            .record_delete(&RecordKey::new(SESSIONS, session_id))
            .await?;
        Ok(())
    }

    /// The cached record, if the cache holds it.
    async fn cached(&self, session_id: &str) -> Result<Option<SessionRecord>, ClientError> {
        let Some(bytes) = self
            .backplane
            .record_get(&RecordKey::new(SESSIONS, session_id))
            .await?
        else {
            return Ok(None);
        };
        match serde_json::from_slice(&bytes) {
            Ok(record) => Ok(Some(record)),
            Err(e) => {
                tracing::error!(session_id, error = %e, "unreadable session record");
                Err(ClientError::new(
                    switchboard_protocol::ErrorCode::Internal,
                    "the session record is unreadable",
                ))
            }
        }
    }
}

/// `conversation.created`: the session as its creator made it (the key never).
fn conversation_created(record: &SessionRecord) -> WebhookEvent {
    WebhookEvent::new(
        WebhookEventType::ConversationCreated,
        serde_json::json!({
            "session_id": record.session_id,
            "owner": record.owner,
            "anonymous": record.key_sha256.is_some(),
            "created_at": record.created_at,
            "metadata": record.metadata,
        }),
    )
}

#[async_trait::async_trait]
impl SessionOrgs for SessionStore {
    async fn org_of(&self, session_id: &str) -> Result<Option<String>, ClientError> {
        Ok(self.get(session_id).await?.map(|record| record.org_id))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use switchboard_backplane::RecordError;
    use switchboard_protocol::ErrorCode;
    use switchboard_store::{MemoryStore, TranscriptEntry, TranscriptWrite};

    use super::*;
    use crate::config::SessionQuotas;
    use crate::metrics::Metrics;
    use crate::test_backplane::{Hooks, Watched};

    /// Remembers the time to live of each session record put.
    #[derive(Default)]
    struct TtlWitness {
        session_ttls: Mutex<Vec<Option<Duration>>>,
    }

    impl TtlWitness {
        fn last_session_ttl(&self) -> Option<Duration> {
            self.session_ttls.lock().unwrap().last().copied().flatten()
        }
    }

    #[async_trait::async_trait]
    impl Hooks for TtlWitness {
        async fn record_put(
            &self,
            inner: &dyn Backplane,
            k: &RecordKey,
            v: Bytes,
            t: Option<Duration>,
        ) -> Result<(), RecordError> {
            if k.namespace == SESSIONS {
                self.session_ttls.lock().unwrap().push(t);
            }
            inner.record_put(k, v, t).await
        }
    }

    const HISTORY: Duration = Duration::from_secs(86_400);
    const UNUSED: Duration = Duration::from_secs(3_600);

    fn sessions_with(
        backplane: Arc<Watched<TtlWitness>>,
        store: Arc<dyn ConversationStore>,
        quotas: SessionQuotas,
    ) -> SessionStore {
        let metrics = Arc::new(Metrics::new().unwrap());
        let quota = SessionQuota::new(backplane.clone(), quotas, metrics.clone());
        SessionStore::new(
            backplane,
            store.clone(),
            HISTORY,
            crate::webhooks::testing::inert(store, metrics),
            Arc::new(quota),
        )
    }

    fn visitor() -> Principal {
        Principal {
            user_id: None,
            org_id: "default".into(),
            groups: vec![],
            roles: vec![],
            anonymous: true,
            name: None,
        }
    }

    #[tokio::test]
    async fn a_session_without_a_message_is_cached_for_the_unused_ttl_and_a_used_one_for_the_history_age()
     {
        let backplane = Arc::new(Watched::new(TtlWitness::default()));
        let store: Arc<dyn ConversationStore> = Arc::new(MemoryStore::new());
        let sessions = sessions_with(backplane.clone(), store.clone(), SessionQuotas::default());
        let (record, _) = sessions.create(&visitor(), None, None, None).await.unwrap();
        assert_eq!(backplane.last_session_ttl(), Some(UNUSED), "created");

        // Read again from the store while still unused: the short life again.
        sessions.forget(&record.session_id).await.unwrap();
        sessions.get(&record.session_id).await.unwrap().unwrap();
        assert_eq!(
            backplane.last_session_ttl(),
            Some(UNUSED),
            "reloaded unused"
        );

        // Once something was said, the record lives as long as the history.
        store
            .write(&[TranscriptWrite {
                session_id: record.session_id.clone(),
                entry: TranscriptEntry {
                    seq: 1,
                    ts: 1,
                    kind: "message".into(),
                    event: "{}".into(),
                },
                preview: None,
                title_hint: None,
            }])
            .await
            .unwrap();
        sessions.forget(&record.session_id).await.unwrap();
        sessions.get(&record.session_id).await.unwrap().unwrap();
        assert_eq!(backplane.last_session_ttl(), Some(HISTORY), "reloaded used");
    }

    #[tokio::test]
    async fn a_creation_past_a_quota_stores_nothing() {
        let backplane = Arc::new(Watched::new(TtlWitness::default()));
        let store: Arc<dyn ConversationStore> = Arc::new(MemoryStore::new());
        let quotas = SessionQuotas {
            sessions_per_minute: 2,
            ..SessionQuotas::default()
        };
        let sessions = sessions_with(backplane.clone(), store.clone(), quotas);
        for _ in 0..2 {
            sessions.create(&visitor(), None, None, None).await.unwrap();
        }
        let refused = sessions
            .create(&visitor(), None, None, None)
            .await
            .unwrap_err();
        assert_eq!(refused.code, ErrorCode::RateLimited);
        assert_eq!(
            backplane.session_ttls.lock().unwrap().len(),
            2,
            "no third record"
        );
    }

    #[test]
    fn only_the_session_key_itself_matches_and_keyless_sessions_match_nothing() {
        let with_key = SessionRecord {
            session_id: "s_1".into(),
            org_id: "acme".into(),
            owner: None,
            key_sha256: Some(hash_key("k_right")),
            created_at: 0,
            metadata: None,
            assistant: None,
        };
        assert!(with_key.key_matches("k_right"));
        assert!(!with_key.key_matches("k_wrong"));
        assert!(!with_key.key_matches(""));
        let owned = SessionRecord {
            owner: Some("u1".into()),
            key_sha256: None,
            ..with_key
        };
        assert!(!owned.key_matches("k_right"));
    }
}
