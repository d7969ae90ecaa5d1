//! Forgetting a removed conversation's presence (`session.delete`, a user's erasure,
//! retention): its record names its members' user ids, so it goes, on every replica.
//! The replica that removes the conversation drops its own members from the session's
//! presence, deletes the record and hints every replica the record named; they drop
//! theirs and delete the record again, in case a write of theirs landed in between.
//! The members' connections stay what they were otherwise (their next send is
//! `not_found`), but are no longer shown or told anything about the session.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use switchboard_backplane::RecordKey;

use super::hints::Hint;
use super::record;
use super::{Presence, State};
use crate::conversations::PresenceEraser;
use crate::error::ClientError;
use crate::records::namespace::PRESENCE;

#[async_trait]
impl PresenceEraser for Presence {
    async fn erase_presence(&self, session_id: &str) -> Result<(), ClientError> {
        let named = record::read(self.backplane.as_ref(), &self.metrics, session_id).await?;
        self.drop_session(&mut self.lock(), session_id);
        self.delete_record(session_id).await?;
        let targets: Vec<String> = named
            .replicas
            .into_keys()
            .filter(|replica| *replica != self.id)
            .collect();
        self.hint(
            targets,
            Hint::Forget {
                session_id: session_id.to_string(),
                from: self.id.clone(),
            },
        );
        Ok(())
    }
}

impl Presence {
    /// Stop tracking `session_id` here: its members are no longer counted or told.
    pub(super) fn drop_session(&self, state: &mut State, session_id: &str) {
        if let Some(session) = state.sessions.remove(session_id) {
            state.tracked = state.tracked.saturating_sub(session.members.len());
            self.count(state);
        }
    }

    /// Delete `session_id`'s presence record.
    pub(super) async fn delete_record(&self, session_id: &str) -> Result<(), ClientError> {
        let started = Instant::now();
        let deleted = self
            .backplane
            .record_delete(&RecordKey::new(PRESENCE, session_id))
            .await;
        self.metrics
            .observe_backplane("presence_write", started, &deleted);
        deleted?;
        Ok(())
    }

    /// Another replica removed `session_id`: forget it here too.
    pub(super) fn forget_elsewhere(self: &Arc<Self>, state: &mut State, session_id: &str) {
        if !state.sessions.contains_key(session_id) {
            return;
        }
        self.drop_session(state, session_id);
        let presence = self.clone();
        let session_id = session_id.to_string();
        self.tasks.spawn(async move {
            if let Err(e) = presence.delete_record(&session_id).await {
                tracing::warn!(session_id, error = %e, "presence record of a removed session not deleted; it lapses within the hour");
            }
        });
    }
}
