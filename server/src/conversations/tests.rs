//! The conversation lifecycle against a real (in-memory SQLite) store and the memory
//! backplane, on a simulated calendar: retention slides with activity.

use std::sync::Arc;
use std::time::Duration;

use switchboard_backplane::{Backplane, MemoryBackplane, Retention};
use switchboard_protocol::{Event, EventBody, Role, StreamName};
use switchboard_store::{ConversationStore, SqliteStore};

use super::Conversations;
use super::transcript::write_for;
use crate::access::{AccessContext, Caller};
use crate::metrics::Metrics;
use crate::records::sessions::SessionStore;

const DAY_MS: u64 = 86_400_000;

struct World {
    store: Arc<dyn ConversationStore>,
    backplane: Arc<dyn Backplane>,
    sessions: Arc<SessionStore>,
    conversations: Conversations,
}

/// No turns run in these tests.
struct NoTurns;

#[async_trait::async_trait]
impl super::TurnStopper for NoTurns {
    async fn stop_turns(
        &self,
        _session_id: &str,
        _patience: Duration,
    ) -> Result<(), crate::error::ClientError> {
        Ok(())
    }
}

/// Nobody is in presence in these tests.
struct NoPresence;

#[async_trait::async_trait]
impl super::PresenceEraser for NoPresence {
    async fn erase_presence(&self, _session_id: &str) -> Result<(), crate::error::ClientError> {
        Ok(())
    }
}

async fn world(default_days: u32) -> World {
    let store: Arc<dyn ConversationStore> = Arc::new(SqliteStore::in_memory().await.unwrap());
    let backplane: Arc<dyn Backplane> = Arc::new(MemoryBackplane::new(Retention::default()));
    let metrics = Arc::new(Metrics::new().unwrap());
    let sessions = Arc::new(SessionStore::new(
        backplane.clone(),
        store.clone(),
        Duration::from_secs(86_400),
        crate::webhooks::testing::inert(store.clone(), metrics.clone()),
        Arc::new(crate::records::session_quota::SessionQuota::new(
            backplane.clone(),
            crate::config::SessionQuotas::default(),
            metrics.clone(),
        )),
    ));
    let conversations = Conversations::new(
        store.clone(),
        super::TranscriptWriter::start(store.clone(), metrics.clone()),
        Arc::new(NoTurns),
        backplane.clone(),
        sessions.clone(),
        metrics,
        default_days,
        Arc::new(NoPresence),
    );
    World {
        store,
        backplane,
        sessions,
        conversations,
    }
}

fn user(id: &str, org: &str, roles: &[&str]) -> AccessContext {
    AccessContext {
        user_id: Some(id.into()),
        org_id: org.into(),
        groups: vec![],
        roles: roles.iter().map(|r| r.to_string()).collect(),
        anonymous: false,
        name: None,
    }
}

impl World {
    /// A user message in `session_id` at `ts`, stored as the writer would.
    async fn say(&self, session_id: &str, seq: u64, ts: u64) {
        let stream = StreamName::session(session_id).unwrap();
        let event = Arc::new(Event {
            seq,
            ts,
            traceparent: None,
            body: EventBody::Message {
                message_id: format!("m_{seq}"),
                role: Role::User,
                text: format!("message {seq}"),
                author: None,
            },
        });
        let write = write_for(&stream, &event).unwrap();
        self.store.write(&[write]).await.unwrap();
    }
}

/// Retention 3 days. One conversation is active every day for a week, the other goes
/// quiet after its first day: the daily sweep keeps the active one all week and
/// removes the quiet one once it has been idle more than three days, with its
/// history and cached record.
#[tokio::test]
async fn a_conversation_active_every_day_stays_and_an_idle_one_goes_after_its_retention() {
    let w = world(90).await;
    let admin = Caller::Token(user("boss", "acme", &["admin"]));
    w.conversations
        .set_retention(&admin, None, Some(3))
        .await
        .unwrap();
    let owner = user("u1", "acme", &[]);
    let (active, _) = w.sessions.create(&owner, None, None, None).await.unwrap();
    let (quiet, _) = w.sessions.create(&owner, None, None, None).await.unwrap();
    let start = active.created_at;
    w.say(&quiet.session_id, 1, start + 1000).await;
    let quiet_stream = StreamName::session(&quiet.session_id).unwrap();
    w.backplane
        .append(
            &quiet_stream,
            EventBody::TurnDelta {
                turn_id: "t".into(),
                text: "x".into(),
            },
        )
        .await
        .unwrap();

    let mut quiet_gone_on = None;
    for day in 1..=7u64 {
        let now = start + day * DAY_MS;
        w.say(&active.session_id, day, now).await;
        w.conversations.sweep(now + 1).await.unwrap();
        assert!(
            w.store.session(&active.session_id).await.unwrap().is_some(),
            "day {day}: the active conversation is kept"
        );
        let quiet_there = w.store.session(&quiet.session_id).await.unwrap().is_some();
        if !quiet_there && quiet_gone_on.is_none() {
            quiet_gone_on = Some(day);
        }
    }
    assert_eq!(
        quiet_gone_on,
        Some(4),
        "idle from day 0, kept 3 days, gone on day 4"
    );
    assert!(w.sessions.get(&quiet.session_id).await.unwrap().is_none());
    let history = w.backplane.read(&quiet_stream, None, 10).await.unwrap();
    assert!(history.events.is_empty(), "its history went with it");
    assert!(w.sessions.get(&active.session_id).await.unwrap().is_some());
}

/// Without an org setting, `--retention-days` applies; the org's own wins once set,
/// and clearing it restores the default. Only admins of the org may change it.
#[tokio::test]
async fn retention_is_per_org_with_the_deployment_default_and_admins_only() {
    let w = world(90).await;
    let admin = Caller::Token(user("boss", "acme", &["admin"]));
    let shown = w.conversations.retention(&admin, None).await.unwrap();
    assert_eq!((shown.days, shown.own), (90, false));
    let set = w
        .conversations
        .set_retention(&admin, None, Some(30))
        .await
        .unwrap();
    assert_eq!((set.days, set.own), (30, true));
    let other_admin = Caller::Token(user("boss", "globex", &["admin"]));
    let theirs = w.conversations.retention(&other_admin, None).await.unwrap();
    assert_eq!((theirs.days, theirs.own), (90, false), "per org");
    let cleared = w
        .conversations
        .set_retention(&admin, None, None)
        .await
        .unwrap();
    assert_eq!((cleared.days, cleared.own), (90, false));
    let member = Caller::Token(user("u1", "acme", &[]));
    let refused = w
        .conversations
        .set_retention(&member, None, Some(1))
        .await
        .unwrap_err();
    assert_eq!(refused.code, switchboard_protocol::ErrorCode::Forbidden);
    let zero = w
        .conversations
        .set_retention(&admin, None, Some(0))
        .await
        .unwrap_err();
    assert_eq!(zero.code, switchboard_protocol::ErrorCode::BadRequest);
}
