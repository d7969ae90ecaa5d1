//! Who asked: the access context a message's turn runs with, kept in `turn-askers`
//! from before the message is appended until the history forgets it. Any replica may
//! answer the message, so retrieval and tools must not depend on the replica that
//! accepted it.

use bytes::Bytes;
use switchboard_backplane::{RecordError, RecordKey};

use super::Turns;
use crate::access::AccessContext;
use crate::records::namespace::TURN_ASKERS;

impl Turns {
    /// Keep `access` for the turn that answers `message_id`.
    pub async fn remember_asker(
        &self,
        message_id: &str,
        access: &AccessContext,
    ) -> Result<(), RecordError> {
        let value = serde_json::to_vec(access).unwrap_or_default();
        self.backplane
            .record_put(
                &RecordKey::new(TURN_ASKERS, message_id),
                Bytes::from(value),
                Some(self.askers_ttl),
            )
            .await
    }

    /// The access context of `message_id`'s sender; `None` when it is no longer known.
    pub(super) async fn recall_asker(
        &self,
        message_id: &str,
    ) -> Result<Option<AccessContext>, RecordError> {
        Ok(self
            .backplane
            .record_get(&RecordKey::new(TURN_ASKERS, message_id))
            .await?
            .and_then(|raw| serde_json::from_slice(&raw).ok()))
    }
}
