//! Accepting a user's message: the one place where a `message.send` becomes a
//! `message` event and a queued turn.
//!
//! A member who is staff in the session (an operator or admin of its org who is not
//! its owner, see `policy::voice`) posts an `operator` message: stored the same way,
//! and no turn is queued for it.
//!
//! In order: refuse during a drain; only from a connection that joined the session;
//! check the text; refuse when the org's daily token budget is spent
//! (`budget_exhausted`); make sure the session has room for one more turn (before
//! anything is appended); remember who asks (any replica may answer); append the `message` once
//! per `client_message_id` (`fanout::Events::append_once`, which `POST /v1/publish`
//! uses too: a retry gets the first attempt's answer and appends nothing); wake the
//! session's turn queue, which is its history (a retry wakes it too, so a message
//! whose first attempt died before this step is still answered); let the sender know;
//! start draining the queue when this replica claimed it.

use std::net::IpAddr;
use std::sync::Arc;

use switchboard_protocol::client::MessageSend;
use switchboard_protocol::{ErrorCode, EventBody, MAX_FRAME_ID_CHARS, Role, Seq};

use super::turns::{Claim, Turns};
use crate::access::AccessContext;
use crate::access::policy;
use crate::assistant::cost::principal_key;
use crate::error::ClientError;
use crate::fanout::Events;
use crate::fanout::events::Once;
use crate::ids::{new_id, session_stream};
use crate::records::idempotency;
use crate::records::sessions::SessionRecord;
use crate::shutdown::Shutdown;

/// A message that was accepted (or had been, for a retried `client_message_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub session_id: String,
    pub message_id: String,
    pub seq: Seq,
}

/// Accepts messages into sessions.
pub struct Intake {
    events: Events,
    turns: Arc<Turns>,
    shutdown: Shutdown,
    /// Longest text, in characters (`--max-text-chars`; a reload may change it).
    max_text_chars: std::sync::atomic::AtomicUsize,
}

impl Intake {
    pub fn new(
        events: Events,
        turns: Arc<Turns>,
        shutdown: Shutdown,
        max_text_chars: usize,
    ) -> Intake {
        Intake {
            events,
            turns,
            shutdown,
            max_text_chars: std::sync::atomic::AtomicUsize::new(max_text_chars),
        }
    }

    /// The longest text a message may have now, in characters.
    pub fn max_text_chars(&self) -> usize {
        self.max_text_chars
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Change the longest text (a configuration reload).
    pub fn set_max_text_chars(&self, max: usize) {
        self.max_text_chars
            .store(max, std::sync::atomic::Ordering::Relaxed);
    }

    /// Accept `send` from `sender` (connected from `client`, when known); `joined` is the session's record when the
    /// sender's connection joined it (and it still exists), `None` otherwise. The
    /// answer goes to `acknowledge` before the turn is queued, so the sender hears
    /// `message.accepted` before the turn can start.
    pub async fn accept(
        &self,
        sender: &AccessContext,
        client: Option<IpAddr>,
        joined: Option<&SessionRecord>,
        send: MessageSend,
        acknowledge: impl FnOnce(&Accepted),
    ) -> Result<(), ClientError> {
        if self.shutdown.is_draining() {
            return Err(ClientError::draining());
        }
        policy::act_in_session(joined.is_some())
            .map_err(|refused| refused.into_error(ClientError::session_not_found))?;
        let Some(session) = joined else {
            return Err(ClientError::session_not_found());
        };
        self.check(&send)?;
        let Some(asker) = policy::turn_audience(sender, session) else {
            return self.accept_from_staff(sender, send, acknowledge).await;
        };
        self.turns.check_budget(&asker.org_id).await?;
        self.turns.has_room(&send.session_id).await?;
        let message_id = new_id("m");
        self.turns
            .remember_job(&message_id, asker, principal_key(sender, client))
            .await?;
        let author = sender.user_id.clone();
        let (accepted, fresh) = self
            .append_message(&send, message_id, Role::User, author)
            .await?;
        let queued = if fresh {
            self.turns
                .enqueue(&accepted.session_id, &accepted.message_id, accepted.seq)
                .await
        } else {
            // A retry: the first attempt's answer, and no second message.
            let stream = session_stream(&accepted.session_id)?;
            self.turns
                .enqueue_again(
                    &accepted.session_id,
                    &stream,
                    &accepted.message_id,
                    accepted.seq,
                )
                .await
        };
        let claim = queued.map_err(|e| {
            ClientError::new(
                ErrorCode::Unavailable,
                format!(
                    "the message was stored (seq {}) but its reply could not be queued ({}); send it again with the same client_message_id to queue it without storing it twice",
                    accepted.seq, e.message
                ),
            )
        })?;
        acknowledge(&accepted);
        if let Claim::Owned(lease) = claim {
            self.turns.start(*lease);
        }
        Ok(())
    }

    /// A staff member's message: an `operator` message under their display name,
    /// appended once per `client_message_id`; no turn answers it.
    async fn accept_from_staff(
        &self,
        sender: &AccessContext,
        send: MessageSend,
        acknowledge: impl FnOnce(&Accepted),
    ) -> Result<(), ClientError> {
        let author = sender.name.clone().or_else(|| sender.user_id.clone());
        let accepted = self.post_operator_message(send, author).await?;
        acknowledge(&accepted);
        Ok(())
    }

    /// An `operator` message by `author` into a session the caller may post into
    /// (`policy::http_speaker` or a staff member's `message.send`): the text checked
    /// as any message's, appended once per `client_message_id`; no turn answers it.
    pub async fn post_operator_message(
        &self,
        send: MessageSend,
        author: Option<String>,
    ) -> Result<Accepted, ClientError> {
        self.check(&send)?;
        let (accepted, _) = self
            .append_message(&send, new_id("m"), Role::Operator, author)
            .await?;
        Ok(accepted)
    }

    /// Append `send` as the `message` `message_id` of `role` by `author`, once per
    /// `client_message_id` (`fanout::Events::append_once`): what was accepted, and
    /// whether this request appended it (`false`: an earlier attempt did, and its
    /// `message_id` and `seq` are the answer).
    async fn append_message(
        &self,
        send: &MessageSend,
        message_id: String,
        role: Role,
        author: Option<String>,
    ) -> Result<(Accepted, bool), ClientError> {
        let stream = session_stream(&send.session_id)?;
        let key = send
            .client_message_id
            .as_deref()
            .map(|cmid| idempotency::message_key(&send.session_id, cmid));
        let body = EventBody::Message {
            message_id: message_id.clone(),
            role,
            text: send.text.clone(),
            author,
        };
        let appended = self
            .events
            .append_once(&stream, body, key.as_ref(), &message_id, Some(is_message))
            .await?;
        let session_id = send.session_id.clone();
        Ok(match appended {
            Once::Appended(event) => (
                Accepted {
                    session_id,
                    message_id,
                    seq: event.seq,
                },
                true,
            ),
            Once::Earlier { id, seq } => (
                Accepted {
                    session_id,
                    message_id: id,
                    seq,
                },
                false,
            ),
        })
    }

    fn check(&self, send: &MessageSend) -> Result<(), ClientError> {
        if send.text.trim().is_empty() {
            return Err(ClientError::bad_request("message.send: \"text\" is empty"));
        }
        let max = self.max_text_chars();
        let chars = send.text.chars().count();
        if chars > max {
            return Err(ClientError::new(
                ErrorCode::TooLarge,
                format!("text is {chars} characters; the limit is {max}"),
            ));
        }
        if let Some(cmid) = &send.client_message_id
            && (cmid.is_empty() || cmid.chars().count() > MAX_FRAME_ID_CHARS)
        {
            return Err(ClientError::bad_request(format!(
                "message.send: \"client_message_id\" must be 1 to {MAX_FRAME_ID_CHARS} characters"
            )));
        }
        Ok(())
    }
}

/// Whether `body` is the message `message_id`: how a retry finds the message of an
/// attempt that stopped before settling its `client_message_id`.
fn is_message(body: &EventBody, message_id: &str) -> bool {
    matches!(body, EventBody::Message { message_id: id, .. } if id == message_id)
}
