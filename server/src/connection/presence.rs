//! Presence and typing on a connection (docs/protocol.md §3.15): joining or leaving a
//! session joins or leaves its presence; `typing` from a member goes to the others.

use switchboard_protocol::PresenceMember;
use switchboard_protocol::presence::Typing;

use super::reader::Connection;
use crate::error::ClientError;
use crate::ids::session_stream;

impl Connection {
    /// `typing`: only a connection that joined the session may send it; no reply, and
    /// frames over the typing rate are dropped silently (`presence::typing`).
    pub(super) fn typing(&self, typing: Typing) -> Result<(), ClientError> {
        self.member_of(&typing.session_id)?;
        self.state
            .presence
            .typing(&typing.session_id, self.id, typing.typing);
        Ok(())
    }

    /// After a join (or create) went through: enter the session's presence as `who`,
    /// which sends this connection the `presence` snapshot.
    pub(super) async fn enter_presence(&self, session_id: &str, who: PresenceMember) {
        self.state
            .presence
            .join(session_id, self.id, &self.outbound, who)
            .await;
    }

    /// Stop being a member of `session_id`'s stream and presence (the caller already
    /// removed it from `sessions`).
    pub(super) fn leave_stream(&self, session_id: &str) {
        if let Ok(stream) = session_stream(session_id) {
            self.state.registry.leave(&stream, self.id);
        }
        self.state.presence.leave(session_id, self.id);
    }
}
