//! What each client frame does (docs/protocol.md §3). Frames arrive parsed; accepting
//! a message is `assistant::intake`, and who may do what is `access::policy`: a
//! command gathers the facts, asks, and answers.

use axum::extract::ws::Utf8Bytes;
use switchboard_protocol::client::{SessionCreate, SessionJoin, SessionLeave, TurnCancel};
use switchboard_protocol::{ClientFrame, ErrorCode, PresenceMember, Seq, ServerFrame, ServerReply};

use super::reader::Connection;
use crate::access::policy;
use crate::error::ClientError;
use crate::fanout::JoinInfo;
use crate::ids::session_stream;
use crate::records::sessions::SessionRecord;

impl Connection {
    /// Carry out one frame. Its direct reply (if any) is queued here; an `Err` becomes
    /// the `error` reply.
    pub(super) async fn handle(
        &mut self,
        id: Option<String>,
        frame: ClientFrame,
    ) -> Result<(), ClientError> {
        match frame {
            ClientFrame::Ping {} => {
                self.reply(id, ServerFrame::Pong {});
                Ok(())
            }
            ClientFrame::SessionCreate(create) => self.create_session(id, create).await,
            ClientFrame::SessionJoin(join) => self.join_session(id, join).await,
            ClientFrame::SessionLeave(leave) => self.leave_session(id, leave),
            ClientFrame::MessageSend(send) => {
                let joined = if self.sessions.contains(&send.session_id) {
                    Some(self.still_exists(&send.session_id).await?)
                } else {
                    None
                };
                let outbound = &self.outbound;
                self.state
                    .intake
                    .accept(
                        &self.access,
                        self.client,
                        joined.as_ref(),
                        send,
                        |accepted| {
                            let reply = ServerFrame::MessageAccepted {
                                session_id: accepted.session_id.clone(),
                                message_id: accepted.message_id.clone(),
                                seq: accepted.seq,
                            };
                            let _ = outbound.enqueue(ServerReply::new(id, reply).to_json().into());
                        },
                    )
                    .await
            }
            ClientFrame::TurnCancel(cancel) => self.cancel_turn(cancel).await,
            ClientFrame::ToolDecide(decide) => {
                self.member_of(&decide.session_id)?;
                self.state
                    .approvals
                    .decide(
                        &self.access,
                        &decide.session_id,
                        &decide.call_id,
                        decide.approved,
                    )
                    .await?;
                self.reply(
                    id,
                    ServerFrame::ToolDecided {
                        session_id: decide.session_id,
                        call_id: decide.call_id,
                        approved: decide.approved,
                    },
                );
                Ok(())
            }
            ClientFrame::AuthRefresh(refresh) => self.refresh(id, &refresh.token).await,
            ClientFrame::SessionList(list) => self.list_sessions(id, list).await,
            ClientFrame::SessionUpdate(update) => self.update_session(id, update).await,
            ClientFrame::SessionDelete(delete) => self.delete_session(id, delete).await,
            ClientFrame::SessionExport(export) => self.export_session(id, export).await,
            ClientFrame::UserErase(erase) => self.erase_user(id, erase).await,
            ClientFrame::HandoffRequest(request) => self.request_handoff(id, request).await,
            ClientFrame::HandoffClaim(target) => self.claim_handoff(id, target).await,
            ClientFrame::HandoffRelease(target) => self.release_handoff(id, target).await,
            ClientFrame::InboxList(list) => self.list_inbox(id, list).await,
            ClientFrame::Typing(typing) => self.typing(typing),
        }
    }

    /// Sending, cancelling, deciding and typing need this connection to have joined.
    pub(super) fn member_of(&self, session_id: &str) -> Result<(), ClientError> {
        policy::act_in_session(self.sessions.contains(session_id))
            .map_err(|refused| refused.into_error(ClientError::session_not_found))
    }

    /// A joined session that was deleted meanwhile (by another member, an erase or
    /// retention, on any replica) is left and `not_found`: appending to it would bring
    /// its stream back.
    pub(super) async fn still_exists(
        &mut self,
        session_id: &str,
    ) -> Result<SessionRecord, ClientError> {
        if let Some(record) = self.state.sessions.get(session_id).await? {
            return Ok(record);
        }
        if self.sessions.remove(session_id) {
            self.leave_stream(session_id);
        }
        Err(ClientError::session_not_found())
    }

    /// Replace the token: same `sub` and org only; groups and roles may change.
    async fn refresh(&mut self, id: Option<String>, token: &str) -> Result<(), ClientError> {
        let renewed = self.state.auth.load_full().verify(token).await?;
        policy::refresh(&self.access, &renewed.access)
            .map_err(|refused| refused.into_error(ClientError::session_not_found))?;
        let expires_at = renewed.expires_at.unwrap_or(0);
        self.access = renewed.access;
        self.expires_at = renewed.expires_at;
        self.reply(id, ServerFrame::AuthRefreshed { expires_at });
        Ok(())
    }

    async fn cancel_turn(&self, cancel: TurnCancel) -> Result<(), ClientError> {
        let TurnCancel {
            session_id,
            turn_id,
        } = cancel;
        self.member_of(&session_id)?;
        if self
            .state
            .turns
            .cancel_anywhere(&session_id, &turn_id)
            .await?
        {
            // The answer is the turn's `turn.end` (status cancelled), a session event.
            Ok(())
        } else {
            Err(ClientError::new(
                ErrorCode::NotFound,
                format!("no turn {turn_id} is running in session {session_id}"),
            ))
        }
    }

    /// `--max-sessions-per-connection`: joining one more (not a re-join) is `conflict`.
    fn check_session_limit(&self, session_id: Option<&str>) -> Result<(), ClientError> {
        let max = self.state.config.max_sessions_per_connection as usize;
        let already = session_id.is_some_and(|s| self.sessions.contains(s));
        if !already && self.sessions.len() >= max {
            return Err(ClientError::new(
                ErrorCode::Conflict,
                format!(
                    "this connection already joined {max} sessions, the limit; leave one first"
                ),
            ));
        }
        Ok(())
    }

    async fn create_session(
        &mut self,
        id: Option<String>,
        create: SessionCreate,
    ) -> Result<(), ClientError> {
        self.check_session_limit(None)?;
        let assistant = self
            .state
            .assistants
            .for_new_session(&self.access.org_id, create.assistant.as_deref())
            .await?;
        let (record, key) = self
            .state
            .sessions
            .open(
                &self.state.shutdown,
                &self.access,
                self.client,
                create.metadata,
                assistant,
            )
            .await?;
        let assistant = record.assistant.clone();
        let who = policy::presence_member(&self.access, &record);
        let session_id = record.session_id;
        let reply_to = session_id.clone();
        self.join_stream(&session_id, None, who, move |info| {
            ServerReply::new(
                id,
                ServerFrame::SessionCreated {
                    session_id: reply_to,
                    session_key: key,
                    seq: info.last_seq,
                    assistant,
                },
            )
            .to_json()
            .into()
        })
        .await
    }

    async fn join_session(
        &mut self,
        id: Option<String>,
        join: SessionJoin,
    ) -> Result<(), ClientError> {
        session_stream(&join.session_id)?;
        self.check_session_limit(Some(&join.session_id))?;
        let Some(record) = self.state.sessions.get(&join.session_id).await? else {
            return Err(ClientError::session_not_found());
        };
        policy::join(&self.access, &record, join.session_key.as_deref())
            .map_err(|refused| refused.into_error(ClientError::session_not_found))?;
        let who = policy::presence_member(&self.access, &record);
        let reply_to = join.session_id.clone();
        let assistant = record.assistant;
        self.join_stream(&join.session_id, join.after_seq, who, move |info| {
            ServerReply::new(
                id,
                ServerFrame::SessionJoined {
                    session_id: reply_to,
                    last_seq: info.last_seq,
                    recovered: !info.trimmed,
                    assistant,
                },
            )
            .to_json()
            .into()
        })
        .await
    }

    /// Become a member of a session's stream: `joined` (built from the stream's head)
    /// first, then the history after `after`, then the `presence` snapshot (this
    /// connection as `who`), then live events.
    async fn join_stream(
        &mut self,
        session_id: &str,
        after: Option<Seq>,
        who: PresenceMember,
        joined: impl FnOnce(JoinInfo) -> Utf8Bytes,
    ) -> Result<(), ClientError> {
        let stream = session_stream(session_id)?;
        self.sessions.insert(session_id.to_string());
        let result = self
            .state
            .registry
            .join_with_replay(&stream, self.id, &self.outbound, after, joined)
            .await;
        match result {
            Ok(()) => {
                self.enter_presence(session_id, who).await;
                Ok(())
            }
            Err(e) => {
                self.sessions.remove(session_id);
                Err(e)
            }
        }
    }

    fn leave_session(
        &mut self,
        id: Option<String>,
        leave: SessionLeave,
    ) -> Result<(), ClientError> {
        if !self.sessions.remove(&leave.session_id) {
            return Err(ClientError::new(
                ErrorCode::NotFound,
                format!(
                    "this connection has not joined session {}",
                    leave.session_id
                ),
            ));
        }
        self.leave_stream(&leave.session_id);
        self.reply(
            id,
            ServerFrame::SessionLeft {
                session_id: leave.session_id,
            },
        );
        Ok(())
    }
}
