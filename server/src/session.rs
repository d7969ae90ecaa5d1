//! Session records (kept in the backplane's shared records so every replica sees
//! them), who may join a session, and `client_message_id` idempotency.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use switchboard_backplane::{Backplane, RecordKey, Seq};

use crate::auth::{AccessContext, ROLE_ADMIN, ROLE_OPERATOR, has_role};
use crate::error::ClientError;
use crate::idempotency;

/// Records namespace of sessions.
const SESSIONS: &str = "sessions";
/// Records namespace of `client_message_id` reservations.
const MESSAGE_IDS: &str = "message-ids";

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
    /// Protocol section 3: the owner; a same-org `operator` or `admin`; for anonymous
    /// sessions, whoever presents the key (of the same org). The key is compared in
    /// constant time.
    pub fn may_join(&self, access: &AccessContext, session_key: Option<&str>) -> bool {
        if self.org_id != access.org_id {
            return false;
        }
        match (&self.key_sha256, &self.owner) {
            (Some(expected), _) => session_key.is_some_and(|key| {
                let presented = hash_key(key);
                bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
            }),
            (None, owner) => {
                (owner.is_some() && *owner == access.user_id)
                    || has_role(access, ROLE_OPERATOR)
                    || has_role(access, ROLE_ADMIN)
            }
        }
    }
}

/// Sessions and idempotency keys, stored in the backplane.
pub struct SessionStore {
    backplane: Arc<dyn Backplane>,
    /// Sessions live as long as their history may (`--history-max-age`).
    ttl: Duration,
}

/// A new session id: `s_` and a random UUID.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
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
        access: &AccessContext,
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

    /// Reserve `client_message_id` in `session_id` for a new `message_id` (see
    /// [`crate::idempotency`]): `None` means go ahead and append.
    pub async fn reserve_message(
        &self,
        session_id: &str,
        client_message_id: &str,
        message_id: &str,
    ) -> Result<Option<idempotency::Reservation>, ClientError> {
        let key = message_key(session_id, client_message_id);
        idempotency::reserve(self.backplane.as_ref(), &key, message_id).await
    }

    /// Record the seq of a reserved message, or release the reservation if the append
    /// failed (`seq` = `None`) so a retry can succeed.
    pub async fn settle_message(
        &self,
        session_id: &str,
        client_message_id: &str,
        message_id: &str,
        seq: Option<Seq>,
    ) -> Result<(), ClientError> {
        let key = message_key(session_id, client_message_id);
        idempotency::settle(self.backplane.as_ref(), &key, message_id, seq).await
    }
}

fn message_key(session_id: &str, client_message_id: &str) -> RecordKey {
    RecordKey::new(MESSAGE_IDS, format!("{session_id}/{client_message_id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(org: &str, user: Option<&str>, roles: &[&str]) -> AccessContext {
        AccessContext {
            user_id: user.map(str::to_string),
            org_id: org.into(),
            groups: vec![],
            roles: roles.iter().map(|r| r.to_string()).collect(),
            anonymous: user.is_none(),
        }
    }

    fn record(org: &str, owner: Option<&str>, key: Option<&str>) -> SessionRecord {
        SessionRecord {
            session_id: "s_1".into(),
            org_id: org.into(),
            owner: owner.map(str::to_string),
            key_sha256: key.map(hash_key),
            created_at: 0,
            metadata: None,
        }
    }

    #[test]
    fn anonymous_sessions_need_their_key() {
        let s = record("acme", None, Some("k_right"));
        let visitor = access("acme", None, &[]);
        assert!(s.may_join(&visitor, Some("k_right")));
        assert!(!s.may_join(&visitor, Some("k_wrong")));
        assert!(!s.may_join(&visitor, None));
        assert!(!s.may_join(&access("other", None, &[]), Some("k_right")));
    }

    #[test]
    fn owned_sessions_admit_the_owner_and_same_org_operators_only() {
        let s = record("acme", Some("u1"), None);
        assert!(s.may_join(&access("acme", Some("u1"), &[]), None));
        assert!(!s.may_join(&access("acme", Some("u2"), &[]), None));
        assert!(s.may_join(&access("acme", Some("u2"), &["operator"]), None));
        assert!(s.may_join(&access("acme", Some("u3"), &["admin"]), None));
        assert!(!s.may_join(&access("other", Some("u1"), &["admin"]), None));
    }
}
