//! The handoff frames (docs/protocol.md §3.14): `handoff.request` from a member,
//! `handoff.claim` and `handoff.release` from staff, `inbox.list` for staff. Each acts
//! on a session this connection joined; who may do what is `access::policy`.

use switchboard_protocol::ServerFrame;
use switchboard_protocol::handoff::{Handoff, HandoffBy, HandoffRequest, HandoffTarget, InboxList};

use super::reader::Connection;
use crate::access::policy;
use crate::error::ClientError;
use crate::records::sessions::SessionRecord;

impl Connection {
    /// The record of a session this connection joined (and that still exists).
    async fn joined_session(&mut self, session_id: &str) -> Result<SessionRecord, ClientError> {
        self.member_of(session_id)?;
        self.still_exists(session_id).await
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
        let handoff = self
            .state
            .handoff
            .claim(&self.access, &session, self.state.turns.as_ref())
            .await?;
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
        let inbox = self
            .state
            .handoff
            .inbox(&self.access.org_id, list.limit)
            .await?;
        self.reply(id, ServerFrame::InboxListed(inbox));
        Ok(())
    }
}
