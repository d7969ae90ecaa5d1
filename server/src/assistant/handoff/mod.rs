//! Human handoff: who holds a conversation — the assistant, nobody yet (a person was
//! asked for), or an operator. The store keeps the state and changes it by
//! compare-and-set on its version, so two operators cannot both hold a conversation;
//! every change is a `handoff` event in the session (members see "someone will be with
//! you shortly", "Dana joined") and an `inbox.changed` on the org's staff stream (the
//! operator inbox, live). While a conversation is `waiting` or `human` no AI turn runs
//! for it: the turn worker asks [`Handoffs::assistant_answers`] before each message.
//! Who may change it is `access::policy` (docs/protocol.md §3.14). The turn path
//! reads the state and the org's settings through [`cache`], not from the store.

pub mod cache;

use std::sync::Arc;
use std::time::Duration;

use switchboard_protocol::handoff::{
    Handoff, HandoffBy, HandoffSettings, HandoffState, Inbox, InboxEntry, MAX_REASON_CHARS, Staffer,
};
use switchboard_protocol::{ErrorCode, EventBody, StreamName};
use switchboard_store::{
    ConversationStore, HandoffRow, HandoffSettingsRow, HandoffState as StoredState,
};

use self::cache::{HandoffCache, Mirrored};
use crate::access::AccessContext;
use crate::access::policy;
use crate::conversations::lifecycle::summary;
use crate::error::ClientError;
use crate::fanout::Events;
use crate::ids::session_stream;
use crate::records::sessions::SessionRecord;

/// What a customer reads while waiting, unless the org set its own.
pub const DEFAULT_WAITING_MESSAGE: &str = "Someone from the team will be with you shortly.";
/// Most conversations one inbox answer holds (also the default).
pub const INBOX_LIMIT: usize = 100;
/// How often a transition re-reads and retries when another change came first.
const CAS_ATTEMPTS: usize = 8;
/// How long the turn path waits for the store when its caches have nothing.
const STORE_PATIENCE: Duration = Duration::from_secs(2);

/// Cancels a conversation's running turn, wherever it runs, when a person takes the
/// conversation. Implemented by the turns (which read the handoff state), handed to
/// [`Handoffs::claim`].
#[async_trait::async_trait]
pub trait RunningTurns: Send + Sync {
    async fn cancel_running(&self, session_id: &str) -> Result<(), ClientError>;
}

/// Handoff transitions and the inbox.
pub struct Handoffs {
    store: Arc<dyn ConversationStore>,
    events: Events,
    cache: HandoffCache,
}

/// A transition: the state to reach from the current one, or `None` to leave it as it
/// is (answering the current state), or a refusal.
type Step = Result<Option<HandoffRow>, ClientError>;

impl Handoffs {
    pub fn new(store: Arc<dyn ConversationStore>, events: Events, cache: HandoffCache) -> Handoffs {
        Handoffs {
            store,
            events,
            cache,
        }
    }

    /// The org's settings for a turn: kept for a few seconds per replica; the
    /// defaults when the store does not answer in time.
    pub async fn turn_settings(&self, org_id: &str) -> HandoffSettings {
        if let Some(settings) = self.cache.settings(org_id) {
            return settings;
        }
        match tokio::time::timeout(STORE_PATIENCE, self.settings(org_id)).await {
            Ok(Ok(settings)) => {
                self.cache.keep_settings(org_id, &settings);
                settings
            }
            Ok(Err(e)) => {
                tracing::warn!(org_id, error = %e.message, "handoff settings unreadable; using the defaults for this turn");
                defaults()
            }
            Err(_) => {
                tracing::warn!(
                    org_id,
                    "the store did not answer; using the default handoff settings for this turn"
                );
                defaults()
            }
        }
    }

    /// The org's settings, with the defaults where it set none (handoff on, the
    /// default waiting message, no handoff when the knowledge base has nothing).
    pub async fn settings(&self, org_id: &str) -> Result<HandoffSettings, ClientError> {
        let stored = self.store.handoff_settings(org_id).await?;
        Ok(match stored {
            Some(row) => HandoffSettings {
                enabled: row.enabled,
                waiting_message: row
                    .waiting_message
                    .unwrap_or_else(|| DEFAULT_WAITING_MESSAGE.to_string()),
                when_unanswered: row.when_unanswered,
            },
            None => defaults(),
        })
    }

    /// Set (`Some`) or clear (`None`: the defaults) the org's settings.
    pub async fn set_settings(
        &self,
        org_id: &str,
        settings: Option<&HandoffSettings>,
    ) -> Result<(), ClientError> {
        let row = settings.map(|s| HandoffSettingsRow {
            enabled: s.enabled,
            waiting_message: (s.waiting_message != DEFAULT_WAITING_MESSAGE)
                .then(|| s.waiting_message.clone()),
            when_unanswered: s.when_unanswered,
        });
        self.store
            .set_handoff_settings(org_id, row.as_ref())
            .await?;
        self.cache.forget_settings(org_id);
        Ok(())
    }

    /// The conversation's handoff now; `not_found` when it does not exist.
    pub async fn current(&self, session_id: &str) -> Result<Handoff, ClientError> {
        let row = self
            .store
            .handoff(session_id)
            .await?
            .ok_or_else(ClientError::session_not_found)?;
        Ok(wire(&row))
    }

    /// Whether the AI answers the session's customers now: no person was asked for
    /// and none holds it. Read from the mirror; from the store (then mirrored) when the
    /// mirror has nothing, failing when it does not answer in time. (A deleted
    /// session's turns are stopped by its deletion.)
    pub async fn assistant_answers(&self, session_id: &str) -> Result<bool, ClientError> {
        if let Some(mirrored) = self.cache.state(session_id).await {
            return Ok(mirrored.state == StoredState::Assistant);
        }
        let stored = tokio::time::timeout(STORE_PATIENCE, self.store.handoff(session_id))
            .await
            .map_err(|_| {
                ClientError::new(
                    ErrorCode::Unavailable,
                    "the conversation store did not answer",
                )
            })??;
        let Some(row) = stored else {
            return Ok(true);
        };
        self.cache
            .mirror(
                session_id,
                Mirrored {
                    state: row.state,
                    version: row.version,
                },
            )
            .await;
        Ok(row.state == StoredState::Assistant)
    }

    /// A person is asked for — by the customer, or by the model (`by`). Nothing
    /// changes when one was asked for already or an operator holds it.
    pub async fn request(
        &self,
        session: &SessionRecord,
        by: HandoffBy,
        reason: Option<&str>,
    ) -> Result<Handoff, ClientError> {
        let settings = self.settings(&session.org_id).await?;
        if !settings.enabled {
            return Err(ClientError::forbidden(
                "human handoff is turned off for this org; the assistant answers",
            ));
        }
        let reason = reason
            .map(|r| r.trim().chars().take(MAX_REASON_CHARS).collect::<String>())
            .filter(|r| !r.is_empty());
        let notice = settings.waiting_message;
        self.transition(session, by, None, Some(notice), |current, now| {
            if current.state != StoredState::Assistant {
                return Ok(None);
            }
            Ok(Some(HandoffRow {
                state: StoredState::Waiting,
                operator: None,
                operator_name: None,
                reason: reason.clone(),
                since: now,
                version: current.version,
            }))
        })
        .await
    }

    /// An operator takes the conversation, and the AI stops talking as they arrive: a
    /// turn of the session running on any replica is cancelled (`turns`). `conflict`
    /// when another operator holds it; the holder claiming again changes nothing.
    pub async fn claim(
        &self,
        who: &AccessContext,
        session: &SessionRecord,
        turns: &dyn RunningTurns,
    ) -> Result<Handoff, ClientError> {
        let handoff = self.take(who, session).await?;
        turns.cancel_running(&session.session_id).await?;
        Ok(handoff)
    }

    /// The claim itself: the state becomes `human`, held by `who`.
    async fn take(
        &self,
        who: &AccessContext,
        session: &SessionRecord,
    ) -> Result<Handoff, ClientError> {
        policy::claim_handoff(who, session)
            .map_err(|refused| refused.into_error(ClientError::session_not_found))?;
        let user_id = who.user_id.clone().unwrap_or_default();
        self.transition(
            session,
            HandoffBy::Operator,
            Some(staffer(who)),
            None,
            |current, now| {
                if current.state == StoredState::Human {
                    if current.operator.as_deref() == Some(user_id.as_str()) {
                        return Ok(None);
                    }
                    let holder = current
                        .operator_name
                        .clone()
                        .or_else(|| current.operator.clone())
                        .unwrap_or_default();
                    return Err(ClientError::new(
                        ErrorCode::Conflict,
                        format!("{holder} holds this conversation already"),
                    ));
                }
                Ok(Some(HandoffRow {
                    state: StoredState::Human,
                    operator: Some(user_id.clone()),
                    operator_name: who.name.clone(),
                    reason: current.reason.clone(),
                    since: now,
                    version: current.version,
                }))
            },
        )
        .await
    }

    /// The conversation goes back to the assistant: its holder or an admin gives it
    /// back (or staff, while it waits and nobody holds it). Nothing changes when the
    /// assistant has it.
    pub async fn release(
        &self,
        who: &AccessContext,
        session: &SessionRecord,
    ) -> Result<Handoff, ClientError> {
        self.transition(
            session,
            HandoffBy::Operator,
            Some(staffer(who)),
            None,
            |current, now| {
                if current.state == StoredState::Assistant {
                    return Ok(None);
                }
                policy::release_handoff(who, session, current.operator.as_deref())
                    .map_err(|refused| refused.into_error(ClientError::session_not_found))?;
                Ok(Some(HandoffRow::assistant(now)))
            },
        )
        .await
    }

    /// The org's waiting and held conversations, the longest in that state first,
    /// at most `limit` ([`INBOX_LIMIT`] when `None`, and at most that).
    pub async fn inbox(&self, org_id: &str, limit: Option<usize>) -> Result<Inbox, ClientError> {
        let limit = limit.unwrap_or(INBOX_LIMIT).clamp(1, INBOX_LIMIT);
        let rows = self.store.inbox(org_id, limit).await?;
        let sessions = rows
            .into_iter()
            .map(|(session, handoff)| InboxEntry {
                session: summary(session),
                handoff: wire(&handoff),
            })
            .collect();
        Ok(Inbox { sessions })
    }

    /// Read the state, ask `step` for the next one, and store it if nobody changed it
    /// meanwhile (else read again); then tell the session and the staff.
    async fn transition(
        &self,
        session: &SessionRecord,
        by: HandoffBy,
        operator: Option<Staffer>,
        notice: Option<String>,
        step: impl Fn(&HandoffRow, u64) -> Step,
    ) -> Result<Handoff, ClientError> {
        for _ in 0..CAS_ATTEMPTS {
            let current = self
                .store
                .handoff(&session.session_id)
                .await?
                .ok_or_else(ClientError::session_not_found)?;
            let now = switchboard_backplane::now_ms();
            let Some(next) = step(&current, now)? else {
                return Ok(wire(&current));
            };
            if !self
                .store
                .set_handoff(&session.session_id, current.version, &next)
                .await?
            {
                continue;
            }
            self.cache
                .mirror(
                    &session.session_id,
                    Mirrored {
                        state: next.state,
                        version: current.version.saturating_add(1),
                    },
                )
                .await;
            let handoff = wire(&next);
            self.announce(session, by, operator, notice, &handoff).await;
            return Ok(handoff);
        }
        Err(ClientError::new(
            ErrorCode::Conflict,
            "the conversation's handoff kept changing; try again",
        ))
    }

    /// The `handoff` event in the session and `inbox.changed` for the staff. The state
    /// is stored already: an event that cannot be written is logged, and members see
    /// the state on their next `inbox.list` or handoff frame.
    async fn announce(
        &self,
        session: &SessionRecord,
        by: HandoffBy,
        operator: Option<Staffer>,
        notice: Option<String>,
        handoff: &Handoff,
    ) {
        let event = EventBody::Handoff {
            state: handoff.state,
            by,
            operator,
            reason: handoff.reason.clone(),
            notice: (handoff.state == HandoffState::Waiting)
                .then_some(notice)
                .flatten(),
        };
        if let Ok(stream) = session_stream(&session.session_id)
            && let Err(e) = self.events.append(&stream, event).await
        {
            tracing::warn!(session_id = %session.session_id, error = %e, "could not record a handoff event");
        }
        let row = match self.store.session(&session.session_id).await {
            Ok(Some(row)) => row,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(session_id = %session.session_id, error = %e, "could not tell the staff about a handoff");
                return;
            }
        };
        let changed = EventBody::InboxChanged {
            session: Box::new(summary(row)),
            handoff: Box::new(handoff.clone()),
        };
        if let Ok(stream) = StreamName::staff(&session.org_id)
            && let Err(e) = self.events.append(&stream, changed).await
        {
            tracing::warn!(org_id = %session.org_id, error = %e, "could not tell the staff about a handoff");
        }
    }
}

/// `who`, staff, as members see them.
fn staffer(who: &AccessContext) -> Staffer {
    Staffer {
        user_id: who.user_id.clone().unwrap_or_default(),
        name: who.name.clone(),
    }
}

/// The settings of an org that set none.
fn defaults() -> HandoffSettings {
    HandoffSettings {
        enabled: true,
        waiting_message: DEFAULT_WAITING_MESSAGE.to_string(),
        when_unanswered: false,
    }
}

/// A stored handoff as members see it.
fn wire(row: &HandoffRow) -> Handoff {
    let state = match row.state {
        StoredState::Assistant => HandoffState::Assistant,
        StoredState::Waiting => HandoffState::Waiting,
        StoredState::Human => HandoffState::Human,
    };
    Handoff {
        state,
        operator: row.operator.clone().map(|user_id| Staffer {
            user_id,
            name: row.operator_name.clone(),
        }),
        reason: (state != HandoffState::Assistant)
            .then(|| row.reason.clone())
            .flatten(),
        since: row.since,
    }
}
