//! What a message's turn needs besides the message itself: the asker's access
//! context, kept in `turn-jobs` from before the message is appended until its turn
//! ended (at most `--history-max-age`). Any replica may answer the message, so
//! retrieval and tools must not depend on the replica that accepted it. The question
//! is read from the session's history, not copied here.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use switchboard_backplane::{RecordError, RecordKey};

use super::Turns;
use crate::access::AccessContext;
use crate::records::namespace::TURN_JOBS;

/// A message's turn, as any replica can run it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Job {
    pub(super) access: AccessContext,
    /// Who the turn counts against under the caps on concurrent turns
    /// (`cost::principal_key`); absent in jobs kept before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) principal: Option<String>,
}

impl Turns {
    /// Keep what the turn answering `message_id` needs: the asker's access, and the
    /// principal its turn counts against (`cost::principal_key`).
    pub async fn remember_job(
        &self,
        message_id: &str,
        access: &AccessContext,
        principal: String,
    ) -> Result<(), RecordError> {
        let job = Job {
            access: access.clone(),
            principal: Some(principal),
        };
        self.backplane
            .record_put(
                &RecordKey::new(TURN_JOBS, message_id),
                Bytes::from(serde_json::to_vec(&job).unwrap_or_default()),
                Some(self.jobs_ttl),
            )
            .await
    }

    /// Forget the job of `message_id`, answered now. Best effort: it expires anyway.
    pub(super) async fn forget_job(&self, message_id: &str) {
        if let Err(e) = self
            .backplane
            .record_delete(&RecordKey::new(TURN_JOBS, message_id))
            .await
        {
            tracing::debug!(message_id, error = %e, "a finished turn's job is left to expire");
        }
    }

    /// The job of `message_id`; `None` when it is no longer known.
    pub(super) async fn recall_job(&self, message_id: &str) -> Result<Option<Job>, RecordError> {
        Ok(self
            .backplane
            .record_get(&RecordKey::new(TURN_JOBS, message_id))
            .await?
            .and_then(|raw| serde_json::from_slice(&raw).ok()))
    }
}
