//! Removing conversations everywhere they live: the store (record and transcript),
//! the backplane (history and the cached record) and the shared records that name
//! them (idempotency keys, turn queues, turn jobs, cancels, tool calls and decisions).
//! One path for a deleted conversation, an erased user and an expired conversation.
//!
//! Order matters: the conversation's turns end first (so none writes into it after),
//! then the backplane and records go, and the store row last, so a removal that
//! failed half-way is found again and finished by a retry.

use std::collections::HashSet;

use bytes::Bytes;
use serde_json::Value;
use switchboard_backplane::RecordKey;
use switchboard_protocol::conversation::ErasureReport;
use switchboard_protocol::{EventBody, Role};

use super::lifecycle::Conversations;
use crate::access::Caller;
use crate::access::policy;
use crate::error::ClientError;
use crate::records::namespace::{
    HANDOFFS, MESSAGE_IDS, PUBLISH_KEYS, TOOL_CALLS, TOOL_DECISIONS, TURN_CANCELS, TURN_JOBS,
    TURN_LEASES,
};

/// Longest `user_id` an erase accepts, in characters.
const MAX_USER_ID_CHARS: usize = 256;

/// What a removal found and removed besides the store rows.
#[derive(Debug, Default)]
pub(super) struct Removed {
    pub entries: u64,
    pub records: u64,
}

impl Conversations {
    /// Erase everything the org holds about `user_id`: the conversations they own
    /// (store, history, records) and the turn jobs that carry their identity.
    /// `org_id`: the org an admin key names.
    pub async fn erase_user(
        &self,
        caller: &Caller,
        user_id: &str,
        org_id: Option<&str>,
    ) -> Result<ErasureReport, ClientError> {
        let org_id = policy::administered_org(caller, org_id)?;
        let n = user_id.chars().count();
        if n == 0 || n > MAX_USER_ID_CHARS {
            return Err(ClientError::bad_request(format!(
                "user_id must be 1 to {MAX_USER_ID_CHARS} characters"
            )));
        }
        let mut sessions = Vec::new();
        let mut removed = Removed::default();
        // Page through the user's conversations (newest first) until none is left.
        loop {
            let page = self
                .store
                .list_sessions(&switchboard_store::SessionQuery {
                    org_id: org_id.clone(),
                    owner: Some(user_id.to_string()),
                    state: None,
                    active_since: None,
                    active_before: None,
                    cursor: None,
                    limit: switchboard_store::MAX_PAGE,
                })
                .await?;
            if page.sessions.is_empty() {
                break;
            }
            let ids: Vec<String> = page.sessions.into_iter().map(|s| s.session_id).collect();
            let batch = self.remove(&ids, "erased").await?;
            removed.entries += batch.entries;
            removed.records += batch.records;
            sessions.extend(ids);
        }
        removed.records += self.remove_jobs_of(&org_id, user_id).await?;
        // Anything the store still holds for them (a conversation created meanwhile).
        let late = self.store.erase_user(&org_id, user_id).await?;
        removed.entries += late.entries;
        sessions.extend(late.session_ids);
        tracing::info!(
            org_id,
            sessions = sessions.len(),
            "erased a user's conversations"
        );
        Ok(ErasureReport {
            org_id,
            user_id: user_id.to_string(),
            sessions,
            transcript_entries: removed.entries,
            records: removed.records,
        })
    }

    /// Remove the conversations `session_ids` everywhere; `reason` labels the metric.
    pub(super) async fn remove(
        &self,
        session_ids: &[String],
        reason: &str,
    ) -> Result<Removed, ClientError> {
        let mut removed = Removed::default();
        let wanted: HashSet<&str> = session_ids.iter().map(String::as_str).collect();
        let mut message_ids = HashSet::new();
        for session_id in session_ids {
            // No turn may write into it once it is gone: its answer ends first.
            self.turns
                .stop_turns(session_id, super::lifecycle::STOP_TURNS_PATIENCE)
                .await?;
        }
        for session_id in session_ids {
            // Nobody is shown in it any more, and its record (user ids) goes.
            self.presence.erase_presence(session_id).await?;
            for event in self.stored_events(session_id, usize::MAX).await? {
                removed.entries += 1;
                if let EventBody::Message {
                    message_id,
                    role: Role::User,
                    ..
                } = &event.body
                {
                    message_ids.insert(message_id.clone());
                }
            }
            if let Some(stream) = Self::stream_of(session_id) {
                self.backplane.delete_stream(&stream).await?;
            }
            self.sessions.forget(session_id).await?;
        }
        removed.records += self.remove_records(&wanted, &message_ids).await?;
        for session_id in session_ids {
            if self.store.delete_session(session_id).await? {
                self.metrics
                    .conversations_removed
                    .with_label_values(&[reason])
                    .inc();
            }
        }
        Ok(removed)
    }

    /// Shared records that belong to the sessions `wanted` (or their user messages'
    /// `message_ids`): keyed by the session, or naming it in their value.
    async fn remove_records(
        &self,
        wanted: &HashSet<&str>,
        message_ids: &HashSet<String>,
    ) -> Result<u64, ClientError> {
        let mut count = 0;
        for namespace in [MESSAGE_IDS, PUBLISH_KEYS, TURN_LEASES] {
            for (key, _) in self.backplane.record_list(namespace).await? {
                let session = key
                    .strip_prefix("session:")
                    .unwrap_or(&key)
                    .split('/')
                    .next()
                    .unwrap_or_default();
                if wanted.contains(session) {
                    count += self.delete_record(namespace, &key).await?;
                }
            }
        }
        for message_id in message_ids {
            count += self.delete_record(TURN_JOBS, message_id).await?;
        }
        for session_id in wanted {
            count += self.delete_record(HANDOFFS, session_id).await?;
        }
        let mut calls = Vec::new();
        for namespace in [TURN_CANCELS, TOOL_CALLS, TOOL_DECISIONS] {
            for (key, value) in self.backplane.record_list(namespace).await? {
                if names_session(&value, wanted) {
                    if namespace == TOOL_CALLS {
                        calls.push(key.clone());
                    }
                    count += self.delete_record(namespace, &key).await?;
                }
            }
        }
        for call_id in calls {
            count += self.delete_record(TOOL_DECISIONS, &call_id).await?;
        }
        Ok(count)
    }

    /// Turn jobs that carry `user_id`'s identity in `org_id`.
    async fn remove_jobs_of(&self, org_id: &str, user_id: &str) -> Result<u64, ClientError> {
        let mut count = 0;
        for (key, value) in self.backplane.record_list(TURN_JOBS).await? {
            let Ok(job) = serde_json::from_slice::<Value>(&value) else {
                continue;
            };
            let access = &job["access"];
            if access["org_id"] == org_id && access["user_id"] == user_id {
                count += self.delete_record(TURN_JOBS, &key).await?;
            }
        }
        Ok(count)
    }

    async fn delete_record(&self, namespace: &str, key: &str) -> Result<u64, ClientError> {
        let deleted = self
            .backplane
            .record_delete(&RecordKey::new(namespace, key))
            .await?;
        Ok(u64::from(deleted))
    }
}

/// Whether a record's JSON value names one of `wanted` in its `session_id`.
fn names_session(value: &Bytes, wanted: &HashSet<&str>) -> bool {
    serde_json::from_slice::<Value>(value).is_ok_and(|v| {
        v.get("session_id")
            .and_then(Value::as_str)
            .is_some_and(|s| wanted.contains(s))
    })
}
