//! The lifecycle of a conversation as its people see it: list, look up, rename,
//! archive, delete, export. Over the WebSocket and `/v1` alike; every action asks
//! `access::policy` first, and a conversation the caller may not see is `not_found`.

use std::sync::Arc;

use base64::Engine;
use switchboard_backplane::Backplane;
use switchboard_protocol::conversation::{
    DEFAULT_LIST_LIMIT, ExportFormat, ListScope as WantedScope, MAX_LIST_LIMIT, MAX_TITLE_CHARS,
    SessionList, SessionListing, SessionState, SessionSummary, SessionUpdate,
};
use switchboard_protocol::{Event, StreamName};
use switchboard_store::{
    ConversationStore, Cursor, SessionChange, SessionQuery, SessionRow, SessionState as Stored,
};

use super::export;
use super::transcript::event_of;
use super::writer::TranscriptWriter;
use crate::access::Caller;
use crate::access::policy::{self, ConversationAction, ListScope, Refusal};
use crate::error::ClientError;
use crate::metrics::Metrics;
use crate::records::sessions::{SessionRecord, SessionStore};

/// Most events an export holds; a longer conversation's export ends with its newest
/// ones cut (said in the export).
pub const MAX_EXPORT_EVENTS: usize = 50_000;

/// How long a change waits for this replica's transcript queue to be written.
const FLUSH_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// How long a removal waits for the conversation's turns to end.
pub const STOP_TURNS_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// Ends a conversation's turns for good before it is removed, so no turn writes into
/// it afterwards. Implemented by the turns (a layer above), handed in at wiring.
#[async_trait::async_trait]
pub trait TurnStopper: Send + Sync {
    /// Cancel the session's running turn and every queued one, on whichever replica
    /// runs them, and wait (up to `patience`) until none is left.
    async fn stop_turns(
        &self,
        session_id: &str,
        patience: std::time::Duration,
    ) -> Result<(), ClientError>;
}

/// Forgets who is in a conversation when it is removed, so nothing names its members
/// afterwards (presence records hold user ids). Implemented by presence (a layer
/// above), handed in at wiring.
#[async_trait::async_trait]
pub trait PresenceEraser: Send + Sync {
    /// Drop the session's presence on every replica and remove its record.
    async fn erase_presence(&self, session_id: &str) -> Result<(), ClientError>;
}

/// The conversations of every org, as records.
pub struct Conversations {
    pub(super) store: Arc<dyn ConversationStore>,
    /// This replica's transcript queue: a change waits for what was appended before it.
    pub(super) writer: TranscriptWriter,
    pub(super) turns: Arc<dyn TurnStopper>,
    pub(super) presence: Arc<dyn PresenceEraser>,
    pub(super) backplane: Arc<dyn Backplane>,
    pub(super) sessions: Arc<SessionStore>,
    pub(super) metrics: Arc<Metrics>,
    /// `--retention-days`: for orgs that set none.
    pub(super) default_retention_days: u32,
}

/// A refusal as the error a client gets (hidden: the session's `not_found`).
pub(super) fn refused(refusal: Refusal) -> ClientError {
    refusal.into_error(ClientError::session_not_found)
}

impl Conversations {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn ConversationStore>,
        writer: TranscriptWriter,
        turns: Arc<dyn TurnStopper>,
        backplane: Arc<dyn Backplane>,
        sessions: Arc<SessionStore>,
        metrics: Arc<Metrics>,
        default_retention_days: u32,
        presence: Arc<dyn PresenceEraser>,
    ) -> Conversations {
        Conversations {
            store,
            writer,
            turns,
            presence,
            backplane,
            sessions,
            metrics,
            default_retention_days,
        }
    }

    /// The store (for `/ready` and the retention sweep).
    pub fn store(&self) -> &Arc<dyn ConversationStore> {
        &self.store
    }

    /// One page of the conversations `request` asks for. `org_id`: the org an admin
    /// key names (HTTP only).
    pub async fn list(
        &self,
        caller: &Caller,
        request: &SessionList,
        org_id: Option<&str>,
    ) -> Result<SessionListing, ClientError> {
        let scope: ListScope = match request.scope {
            WantedScope::Mine => policy::list_own(caller),
            WantedScope::Org => policy::list_org(caller, org_id, request.owner.as_deref()),
        }
        .map_err(refused)?;

        let limit = match request.limit {
            None => DEFAULT_LIST_LIMIT,
            Some(n) if (1..=MAX_LIST_LIMIT).contains(&n) => n,
            Some(_) => {
                return Err(ClientError::bad_request(format!(
                    "limit must be 1 to {MAX_LIST_LIMIT}"
                )));
            }
        };
        let cursor = request.cursor.as_deref().map(decode_cursor).transpose()?;
        // Filters narrow: my conversations owned by someone else are none.
        if request.owner.is_some() && request.owner != scope.owner {
            return Ok(SessionListing {
                sessions: Vec::new(),
                next_cursor: None,
            });
        }
        let page = self
            .store
            .list_sessions(&SessionQuery {
                org_id: scope.org_id,
                owner: scope.owner,
                state: request.state.map(stored_state),
                active_since: request.active_since,
                active_before: request.active_before,
                cursor,
                limit,
            })
            .await?;
        Ok(SessionListing {
            sessions: page.sessions.into_iter().map(summary).collect(),
            next_cursor: page.next.as_ref().map(encode_cursor),
        })
    }

    /// The stored row of `session_id`, when `caller` may do `action` to it.
    /// `joined_with_key`: see `policy::manage_conversation`.
    pub(super) async fn authorized(
        &self,
        caller: &Caller,
        session_id: &str,
        action: ConversationAction,
        joined_with_key: bool,
    ) -> Result<SessionRow, ClientError> {
        let row = match crate::ids::session_stream(session_id) {
            Ok(_) => self.store.session(session_id).await?,
            Err(_) => None,
        };
        let record = row.clone().map(SessionRecord::from);
        policy::manage_conversation(caller, record.as_ref(), action, joined_with_key)
            .map_err(refused)?;
        row.ok_or_else(ClientError::session_not_found)
    }

    /// One conversation's summary.
    pub async fn summary(
        &self,
        caller: &Caller,
        session_id: &str,
        joined_with_key: bool,
    ) -> Result<SessionSummary, ClientError> {
        let row = self
            .authorized(
                caller,
                session_id,
                ConversationAction::Read,
                joined_with_key,
            )
            .await?;
        Ok(summary(row))
    }

    /// Rename, archive or unarchive; the conversation after the change.
    pub async fn update(
        &self,
        caller: &Caller,
        update: &SessionUpdate,
        joined_with_key: bool,
    ) -> Result<SessionSummary, ClientError> {
        let title = match &update.title {
            Some(title) => {
                let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
                let n = title.chars().count();
                if n == 0 || n > MAX_TITLE_CHARS {
                    return Err(ClientError::bad_request(format!(
                        "title must be 1 to {MAX_TITLE_CHARS} characters (not only spaces)"
                    )));
                }
                Some(title)
            }
            None => None,
        };
        if title.is_none() && update.state.is_none() {
            return Err(ClientError::bad_request(
                "session.update changes nothing: give a title, a state, or both",
            ));
        }
        self.authorized(
            caller,
            &update.session_id,
            ConversationAction::Change,
            joined_with_key,
        )
        .await?;
        let change = SessionChange {
            title,
            state: update.state.map(stored_state),
        };
        // An answer that reached the sockets before this change is in the transcript
        // before it too: a late write of it must not undo an archive.
        if !self.writer.flush(FLUSH_PATIENCE).await {
            tracing::warn!(session_id = %update.session_id, "transcript queue not flushed before a change");
        }
        match self
            .store
            .update_session(&update.session_id, &change)
            .await?
        {
            Some(row) => Ok(summary(row)),
            None => Err(ClientError::session_not_found()),
        }
    }

    /// Delete a conversation for good: its record, transcript, history and records.
    pub async fn delete(
        &self,
        caller: &Caller,
        session_id: &str,
        joined_with_key: bool,
    ) -> Result<(), ClientError> {
        self.authorized(
            caller,
            session_id,
            ConversationAction::Delete,
            joined_with_key,
        )
        .await?;
        self.remove(&[session_id.to_string()], "deleted").await?;
        Ok(())
    }

    /// The conversation's transcript as `format`.
    pub async fn export(
        &self,
        caller: &Caller,
        session_id: &str,
        format: ExportFormat,
        joined_with_key: bool,
    ) -> Result<String, ClientError> {
        let row = self
            .authorized(
                caller,
                session_id,
                ConversationAction::Read,
                joined_with_key,
            )
            .await?;
        let events = self.stored_events(session_id, MAX_EXPORT_EVENTS).await?;
        Ok(export::render(&summary(row), &events, format))
    }

    /// Up to `max` stored events of a session, oldest first.
    pub(super) async fn stored_events(
        &self,
        session_id: &str,
        max: usize,
    ) -> Result<Vec<Arc<Event>>, ClientError> {
        let mut events = Vec::new();
        let mut after = 0;
        while events.len() < max {
            let page = self
                .store
                .transcript(
                    session_id,
                    after,
                    None,
                    switchboard_store::MAX_TRANSCRIPT_PAGE,
                )
                .await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            let full = page.len() >= switchboard_store::MAX_TRANSCRIPT_PAGE;
            events.extend(page.iter().filter_map(|e| event_of(session_id, e)));
            if !full {
                break;
            }
        }
        events.truncate(max);
        Ok(events)
    }

    /// The stream of a session id the store gave (always a valid name).
    pub(super) fn stream_of(session_id: &str) -> Option<StreamName> {
        crate::ids::session_stream(session_id).ok()
    }
}

/// A stored row as listings show it.
pub fn summary(row: SessionRow) -> SessionSummary {
    SessionSummary {
        session_id: row.session_id,
        org_id: row.org_id,
        owner: row.owner,
        title: row.title,
        state: match row.state {
            Stored::Active => SessionState::Active,
            Stored::Archived => SessionState::Archived,
        },
        created_at: row.created_at,
        last_activity_at: row.last_activity_at,
        last_seq: row.last_seq,
        preview: row.preview,
        metadata: row.metadata,
        assistant: row.assistant,
    }
}

fn stored_state(state: SessionState) -> Stored {
    match state {
        SessionState::Active => Stored::Active,
        SessionState::Archived => Stored::Archived,
    }
}

/// A cursor as clients see it: opaque text.
fn encode_cursor(cursor: &Cursor) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("{}:{}", cursor.last_activity_at, cursor.session_id))
}

fn decode_cursor(text: &str) -> Result<Cursor, ClientError> {
    let bad = || {
        ClientError::bad_request("cursor is not one this server gave: pass next_cursor as it came")
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (at, session_id) = raw.split_once(':').ok_or_else(bad)?;
    let last_activity_at = at.parse().map_err(|_| bad())?;
    if crate::ids::session_stream(session_id).is_err() {
        return Err(bad());
    }
    Ok(Cursor {
        last_activity_at,
        session_id: session_id.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_anything_else_is_a_clear_bad_request() {
        let cursor = Cursor {
            last_activity_at: 1_795_000_000_000,
            session_id: "s_abc".into(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&cursor)).unwrap(), cursor);
        for bad in ["", "%%%", "bm9jb2xvbg", "MTIzOg", "eDpzX2E"] {
            let e = decode_cursor(bad).unwrap_err();
            assert!(e.message.contains("cursor"), "{bad}: {e:?}");
        }
    }
}
