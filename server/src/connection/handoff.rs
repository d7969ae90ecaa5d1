//! The handoff frames (docs/protocol.md §3.14): `handoff.request` from a member,
//! `handoff.claim` and `handoff.release` from staff, `inbox.list` for staff. Each acts
//! on a session this connection joined; who may do what is `access::policy`.

use switchboard_protocol::ServerFrame;
use switchboard_protocol::handoff::{
    Handoff, HandoffBy, HandoffRequest, HandoffTarget, Inbox, InboxEntry, InboxList,
};

use super::reader::Connection;
use crate::access::policy;
use crate::conversations::lifecycle::summary;
use crate::error::ClientError;
use crate::records::sessions::SessionRecord;

/// Inbox entries when `inbox.list` names no limit (also the most it returns).
const INBOX_LIMIT: usize = 100;

impl Connection {
    /// The record of a session this connection joined.
    async fn joined_session(&mut self, session_id: &str) -> Result<SessionRecord, ClientError> {
        policy::act_in_session(self.sessions.contains(session_id))
            .map_err(|refused| refused.into_error(ClientError::session_not_found))?;
        let Some(record) = self.state.sessions.get(session_id).await? else {
            return Err(ClientError::session_not_found());
        };
        Ok(record)
    }

    fn handoff_updated(&self, id: Option<String>, session_id: String, handoff: Handoff) {
        self.reply(
            id,
            ServerFrame::HandoffUpdated {
                session_id,
                handoff,
            },
        );
    }

    pub(super) async fn request_handoff(
        &mut self,
        id: Option<String>,
        request: HandoffRequest,
    ) -> Result<(), ClientError> {
        let session = self.joined_session(&request.session_id).await?;
        let handoff = self
            .state
            .handoff
            .request(&session, HandoffBy::Customer, request.reason.as_deref())
            .await?;
        self.handoff_updated(id, request.session_id, handoff);
        Ok(())
    }

    pub(super) async fn claim_handoff(
        &mut self,
        id: Option<String>,
        target: HandoffTarget,
    ) -> Result<(), ClientError> {
        let session = self.joined_session(&target.session_id).await?;
        let handoff = self.state.handoff.claim(&self.access, &session).await?;
        // The AI stops talking as the person arrives.
        self.state.turns.cancel_running(&target.session_id).await?;
        self.handoff_updated(id, target.session_id, handoff);
        Ok(())
    }

    pub(super) async fn release_handoff(
        &mut self,
        id: Option<String>,
        target: HandoffTarget,
    ) -> Result<(), ClientError> {
        let session = self.joined_session(&target.session_id).await?;
        let handoff = self.state.handoff.release(&self.access, &session).await?;
        self.handoff_updated(id, target.session_id, handoff);
        Ok(())
    }

    pub(super) async fn list_inbox(
        &self,
        id: Option<String>,
        list: InboxList,
    ) -> Result<(), ClientError> {
        policy::read_inbox(&self.access)
            .map_err(|refused| refused.into_error(ClientError::session_not_found))?;
        let limit = list.limit.unwrap_or(INBOX_LIMIT).clamp(1, INBOX_LIMIT);
        let sessions = self
            .state
            .handoff
            .inbox(&self.access.org_id, limit)
            .await?
            .into_iter()
            .map(|(row, handoff)| InboxEntry {
                session: summary(row),
                handoff,
            })
            .collect();
        self.reply(id, ServerFrame::InboxListed(Inbox { sessions }));
        Ok(())
    }
}
