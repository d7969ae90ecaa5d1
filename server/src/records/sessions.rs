//! Session records, kept in the backplane's shared records so every replica sees
//! them. Who may join a session is decided in `access::policy`.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use switchboard_backplane::{Backplane, RecordKey};

use switchboard_protocol::Principal;

use crate::error::ClientError;
use crate::ids::new_id;
use crate::records::namespace::SESSIONS;

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

/// Session records, stored in the backplane.
pub struct SessionStore {
    backplane: Arc<dyn Backplane>,
    /// Sessions live as long as their history may (`--history-max-age`).
    ttl: Duration,
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
    pub fn new(backplane: Arc<dyn Backplane>, ttl: Duration) -> SessionStore {
        SessionStore { backplane, ttl }
    }

    /// Create a session owned by `access`. Returns the record and, for anonymous
    /// creators, the session key (shown once, never stored in clear).
    pub async fn create(
        &self,
        access: &Principal,
        metadata: Option<serde_json::Map<String, serde_json::Value>>,
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
        };
        let value = serde_json::to_vec(&record).map_err(|e| {
            ClientError::new(switchboard_protocol::ErrorCode::Internal, e.to_string())
        })?;
        let created = self
            .backplane
            .record_create(
                &RecordKey::new(SESSIONS, &record.session_id),
                Bytes::from(value),
                Some(self.ttl),
            )
            .await?;
        if !created {
            // A random 128-bit id collided: practically impossible, but never overwrite.
            return Err(ClientError::new(
                switchboard_protocol::ErrorCode::Conflict,
                "session id collision; retry session.create",
            ));
        }
        Ok((record, key))
    }

    /// The session, if it exists.
    pub async fn get(&self, session_id: &str) -> Result<Option<SessionRecord>, ClientError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_session_key_itself_matches_and_keyless_sessions_match_nothing() {
        let with_key = SessionRecord {
            session_id: "s_1".into(),
            org_id: "acme".into(),
            owner: None,
            key_sha256: Some(hash_key("k_right")),
            created_at: 0,
            metadata: None,
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
