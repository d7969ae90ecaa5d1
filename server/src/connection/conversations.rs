//! The conversation lifecycle frames (docs/protocol.md §3.13): `session.list`,
//! `session.update`, `session.delete`, `session.export`, `user.erase`. The connection's
//! principal is the caller; having joined an anonymous session (with its key) is
//! what makes its visitor the owner.

use switchboard_protocol::ServerFrame;
use switchboard_protocol::conversation::{
    SessionDelete, SessionExport, SessionList, SessionUpdate, UserErase,
};

use super::reader::Connection;
use crate::access::Caller;
use crate::error::ClientError;

impl Connection {
    fn caller(&self) -> Caller {
        Caller::Token(self.access.clone())
    }

    pub(super) async fn list_sessions(
        &self,
        id: Option<String>,
        list: SessionList,
    ) -> Result<(), ClientError> {
        let listing = self
            .state
            .conversations
            .list(&self.caller(), &list, None)
            .await?;
        self.reply(id, ServerFrame::SessionListed(listing));
        Ok(())
    }

    pub(super) async fn update_session(
        &self,
        id: Option<String>,
        update: SessionUpdate,
    ) -> Result<(), ClientError> {
        let joined = self.sessions.contains(&update.session_id);
        let session = self
            .state
            .conversations
            .update(&self.caller(), &update, joined)
            .await?;
        self.reply(id, ServerFrame::SessionUpdated { session });
        Ok(())
    }

    pub(super) async fn delete_session(
        &mut self,
        id: Option<String>,
        delete: SessionDelete,
    ) -> Result<(), ClientError> {
        let joined = self.sessions.contains(&delete.session_id);
        self.state
            .conversations
            .delete(&self.caller(), &delete.session_id, joined)
            .await?;
        if self.sessions.remove(&delete.session_id) {
            self.leave_stream(&delete.session_id);
        }
        self.reply(
            id,
            ServerFrame::SessionDeleted {
                session_id: delete.session_id,
            },
        );
        Ok(())
    }

    pub(super) async fn export_session(
        &self,
        id: Option<String>,
        export: SessionExport,
    ) -> Result<(), ClientError> {
        let joined = self.sessions.contains(&export.session_id);
        let content = self
            .state
            .conversations
            .export(&self.caller(), &export.session_id, export.format, joined)
            .await?;
        self.reply(
            id,
            ServerFrame::SessionExported {
                session_id: export.session_id,
                format: export.format,
                content,
            },
        );
        Ok(())
    }

    pub(super) async fn erase_user(
        &self,
        id: Option<String>,
        erase: UserErase,
    ) -> Result<(), ClientError> {
        let report = self
            .state
            .conversations
            .erase_user(&self.caller(), &erase.user_id, None)
            .await?;
        self.reply(id, ServerFrame::UserErased(report));
        Ok(())
    }
}
