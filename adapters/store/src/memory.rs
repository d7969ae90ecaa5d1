//! [`MemoryStore`]: the conversation store in plain Rust data structures, for tests and
//! throwaway runs. Nothing survives a restart.
//!
//! Every call does its work synchronously under one `std::sync::Mutex` (never held
//! across an await), with no thread, timer or I/O: a task awaiting the store never
//! leaves the runtime idle, so tests on Tokio's paused clock see no time pass.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use crate::assistants::memory::Assistants;
use crate::convert::{from_db, to_db};
use crate::webhooks::memory::Webhooks;
use crate::{
    AssistantRow, ConversationStore, Erased, HandoffRow, HandoffSettingsRow, HandoffState,
    MAX_PAGE, MAX_TRANSCRIPT_PAGE, NewSession, SessionChange, SessionPage, SessionQuery,
    SessionRow, SessionState, StoreError, TranscriptEntry, TranscriptWrite, WebhookDelivery,
    WebhookRow, batch, list,
};

/// A day in milliseconds, as retention counts.
const DAY_MS: i128 = 86_400_000;

/// The conversation store in memory: sessions, their transcripts and org retention in
/// maps, gone when the store drops. Behaves as the SQL stores do, including their
/// limits: values above `i64::MAX` are refused the same way, so code tested against it
/// meets no surprise on SQLite or PostgreSQL.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// By `session_id`: ordered, as the SQL stores return an owner's ids.
    sessions: BTreeMap<String, Session>,
    /// Days, per org that set its own.
    retention: HashMap<String, u32>,
    /// Per org that set its own.
    handoff_settings: HashMap<String, HandoffSettingsRow>,
    webhooks: Webhooks,
    assistants: Assistants,
}

#[derive(Debug)]
struct Session {
    row: SessionRow,
    /// By `seq`.
    transcript: BTreeMap<u64, TranscriptEntry>,
    /// `None`: the assistant's since creation, version 0.
    handoff: Option<HandoffRow>,
}

/// One entry of a write batch as planned for the SQL stores, and as this store keeps
/// it: converted before the state changes.
struct Planned<'p, 'a> {
    source: &'p batch::Entry<'a>,
    entry: TranscriptEntry,
}

/// What stored entries change on one session (see [`batch::SessionUpdate`]), in the
/// store's own values.
struct Update<'a> {
    session_id: &'a str,
    last_activity_at: u64,
    last_seq: u64,
    preview: Option<(u64, &'a str)>,
    title_hint: Option<&'a str>,
}

impl MemoryStore {
    /// A fresh, empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// The state, locked. Every call checks and converts its input before it changes
    /// anything and cannot fail (nor panic) halfway, so a lock poisoned by a panic
    /// elsewhere (a caller's, while the guard was alive) guards consistent data: take it.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// The entries of `planned` that are new: of a session that exists, with a `seq`
    /// it has not stored. `planned` holds each `(session_id, seq)` once.
    fn new_entries<'q, 'p, 'a>(&self, planned: &'q [Planned<'p, 'a>]) -> Vec<&'q Planned<'p, 'a>> {
        planned
            .iter()
            .filter(|p| {
                self.sessions
                    .get(p.source.session_id)
                    .is_some_and(|s| !s.transcript.contains_key(&p.entry.seq))
            })
            .collect()
    }

    fn apply(&mut self, update: &Update<'_>) {
        let Some(session) = self.sessions.get_mut(update.session_id) else {
            return;
        };
        let row = &mut session.row;
        row.last_activity_at = row.last_activity_at.max(update.last_activity_at);
        if let Some((seq, preview)) = update.preview
            && seq > row.last_seq
        {
            row.preview = Some(preview.to_string());
            row.state = SessionState::Active;
        }
        row.last_seq = row.last_seq.max(update.last_seq);
        if row.title.is_none() {
            row.title = update.title_hint.map(str::to_string);
        }
    }
}

/// Whether `row` matches `query`'s filters and comes after its cursor. Stored values
/// are at most `i64::MAX` (larger ones are refused), so plain u64 comparisons give what
/// the SQL stores give for bounds past it: lower bounds match nothing, upper bounds
/// (and a cursor) everything.
fn listed(row: &SessionRow, query: &SessionQuery) -> bool {
    row.org_id == query.org_id
        && query
            .owner
            .as_deref()
            .is_none_or(|owner| row.owner.as_deref() == Some(owner))
        && query.state.is_none_or(|state| row.state == state)
        && query
            .active_since
            .is_none_or(|since| row.last_activity_at >= since)
        && query
            .active_before
            .is_none_or(|before| row.last_activity_at < before)
        && query.cursor.as_ref().is_none_or(|cursor| {
            (row.last_activity_at, row.session_id.as_str())
                < (cursor.last_activity_at, cursor.session_id.as_str())
        })
}

/// The planned entries as this store keeps them.
fn convert<'p, 'a>(entries: &'p [batch::Entry<'a>]) -> Result<Vec<Planned<'p, 'a>>, StoreError> {
    entries
        .iter()
        .map(|source| {
            Ok(Planned {
                source,
                entry: TranscriptEntry {
                    seq: from_db(source.seq, "seq")?,
                    ts: from_db(source.ts, "ts")?,
                    kind: source.kind.to_string(),
                    event: source.event.to_string(),
                },
            })
        })
        .collect()
}

fn update<'a>(planned: &batch::SessionUpdate<'a>) -> Result<Update<'a>, StoreError> {
    Ok(Update {
        session_id: planned.session_id,
        last_activity_at: from_db(planned.last_activity_at, "ts")?,
        last_seq: from_db(planned.last_seq, "seq")?,
        preview: planned
            .preview
            .map(|(seq, text)| from_db(seq, "seq").map(|seq| (seq, text)))
            .transpose()?,
        title_hint: planned.title_hint,
    })
}

#[async_trait]
impl ConversationStore for MemoryStore {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn create_session(&self, session: &NewSession) -> Result<bool, StoreError> {
        to_db(session.created_at, "created_at")?;
        let mut state = self.state();
        if state.sessions.contains_key(&session.session_id) {
            return Ok(false);
        }
        let row = SessionRow {
            session_id: session.session_id.clone(),
            org_id: session.org_id.clone(),
            owner: session.owner.clone(),
            key_sha256: session.key_sha256.clone(),
            title: None,
            state: SessionState::Active,
            created_at: session.created_at,
            last_activity_at: session.created_at,
            last_seq: 0,
            preview: None,
            metadata: session.metadata.clone(),
            assistant: session.assistant.clone(),
        };
        state.sessions.insert(
            session.session_id.clone(),
            Session {
                row,
                transcript: BTreeMap::new(),
                handoff: None,
            },
        );
        Ok(true)
    }

    async fn session(&self, session_id: &str) -> Result<Option<SessionRow>, StoreError> {
        Ok(self.state().sessions.get(session_id).map(|s| s.row.clone()))
    }

    async fn update_session(
        &self,
        session_id: &str,
        change: &SessionChange,
    ) -> Result<Option<SessionRow>, StoreError> {
        let mut state = self.state();
        let Some(session) = state.sessions.get_mut(session_id) else {
            return Ok(None);
        };
        if let Some(title) = &change.title {
            session.row.title = Some(title.clone());
        }
        if let Some(new_state) = change.state {
            session.row.state = new_state;
        }
        Ok(Some(session.row.clone()))
    }

    async fn delete_session(&self, session_id: &str) -> Result<bool, StoreError> {
        Ok(self.state().sessions.remove(session_id).is_some())
    }

    async fn list_sessions(&self, query: &SessionQuery) -> Result<SessionPage, StoreError> {
        let rows: Vec<SessionRow> = {
            let state = self.state();
            let mut matching: Vec<&SessionRow> = state
                .sessions
                .values()
                .map(|s| &s.row)
                .filter(|row| listed(row, query))
                .collect();
            // Newest activity first, ties by the greater id (bytewise, as `str` orders).
            matching.sort_unstable_by(|a, b| {
                (b.last_activity_at, &b.session_id).cmp(&(a.last_activity_at, &a.session_id))
            });
            matching
                .into_iter()
                .take(list::page_size(query) + 1)
                .cloned()
                .collect()
        };
        Ok(list::page(query, rows))
    }

    async fn write(&self, batch: &[TranscriptWrite]) -> Result<(), StoreError> {
        // Checked (a value past `i64::MAX` fails the whole batch), each
        // `(session_id, seq)` once, as the SQL stores plan it; everything that can fail
        // happens before the state changes.
        let entries = batch::entries(batch)?;
        if entries.is_empty() {
            return Ok(());
        }
        let planned = convert(&entries)?;
        let mut state = self.state();
        let fresh = state.new_entries(&planned);
        let updates = batch::session_updates(fresh.iter().map(|p| p.source))
            .iter()
            .map(update)
            .collect::<Result<Vec<_>, _>>()?;
        for planned in fresh {
            if let Some(session) = state.sessions.get_mut(planned.source.session_id) {
                session
                    .transcript
                    .insert(planned.entry.seq, planned.entry.clone());
            }
        }
        for update in &updates {
            state.apply(update);
        }
        Ok(())
    }

    async fn transcript(
        &self,
        session_id: &str,
        after: u64,
        before: Option<u64>,
        max: usize,
    ) -> Result<Vec<TranscriptEntry>, StoreError> {
        let state = self.state();
        let Some(session) = state.sessions.get(session_id) else {
            return Ok(Vec::new());
        };
        Ok(session
            .transcript
            .range((Bound::Excluded(after), Bound::Unbounded))
            .map(|(_, entry)| entry)
            .take_while(|entry| before.is_none_or(|before| entry.seq < before))
            .take(max.min(MAX_TRANSCRIPT_PAGE))
            .cloned()
            .collect())
    }

    async fn erase_user(&self, org_id: &str, user_id: &str) -> Result<Erased, StoreError> {
        let mut state = self.state();
        let owned: Vec<String> = state
            .sessions
            .values()
            .filter(|s| s.row.org_id == org_id && s.row.owner.as_deref() == Some(user_id))
            .map(|s| s.row.session_id.clone())
            .collect();
        let mut entries = 0u64;
        for session_id in &owned {
            if let Some(session) = state.sessions.remove(session_id) {
                entries += session.transcript.len() as u64;
            }
        }
        Ok(Erased {
            session_ids: owned,
            entries,
        })
    }

    async fn set_retention(&self, org_id: &str, days: Option<u32>) -> Result<(), StoreError> {
        let mut state = self.state();
        match days {
            Some(days) => state.retention.insert(org_id.to_string(), days),
            None => state.retention.remove(org_id),
        };
        Ok(())
    }

    async fn retention(&self, org_id: &str) -> Result<Option<u32>, StoreError> {
        Ok(self.state().retention.get(org_id).copied())
    }

    async fn expire(
        &self,
        now_ms: u64,
        default_days: u32,
        max: usize,
    ) -> Result<Vec<String>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        // The SQL stores compute in i64 and refuse a `now` that does not fit: so does this.
        let now = i128::from(to_db(now_ms, "now")?);
        let mut state = self.state();
        let mut expired: Vec<(u64, &str)> = state
            .sessions
            .values()
            .filter(|s| {
                let days = state
                    .retention
                    .get(&s.row.org_id)
                    .copied()
                    .unwrap_or(default_days);
                i128::from(s.row.last_activity_at) < now - i128::from(days) * DAY_MS
            })
            .map(|s| (s.row.last_activity_at, s.row.session_id.as_str()))
            .collect();
        // The longest idle first, ties by id.
        expired.sort_unstable();
        let expired: Vec<String> = expired
            .into_iter()
            .take(max)
            .map(|(_, id)| id.to_string())
            .collect();
        for session_id in &expired {
            state.sessions.remove(session_id);
        }
        Ok(expired)
    }

    async fn handoff(&self, session_id: &str) -> Result<Option<HandoffRow>, StoreError> {
        Ok(self.state().sessions.get(session_id).map(|s| {
            s.handoff
                .clone()
                .unwrap_or_else(|| HandoffRow::assistant(s.row.created_at))
        }))
    }

    async fn set_handoff(
        &self,
        session_id: &str,
        expected: u64,
        new: &HandoffRow,
    ) -> Result<bool, StoreError> {
        to_db(new.since, "since")?;
        to_db(expected, "version")?;
        let mut state = self.state();
        let Some(session) = state.sessions.get_mut(session_id) else {
            return Ok(false);
        };
        let current = session.handoff.as_ref().map_or(0, |h| h.version);
        if current != expected {
            return Ok(false);
        }
        session.handoff = Some(HandoffRow {
            version: expected.saturating_add(1),
            ..new.clone()
        });
        Ok(true)
    }

    async fn inbox(
        &self,
        org_id: &str,
        max: usize,
    ) -> Result<Vec<(SessionRow, HandoffRow)>, StoreError> {
        let state = self.state();
        let mut held: Vec<(SessionRow, HandoffRow)> = state
            .sessions
            .values()
            .filter(|s| s.row.org_id == org_id)
            .filter_map(|s| {
                let handoff = s.handoff.as_ref()?;
                (handoff.state != HandoffState::Assistant).then(|| (s.row.clone(), handoff.clone()))
            })
            .collect();
        held.sort_unstable_by(|a, b| {
            (a.1.since, &a.0.session_id).cmp(&(b.1.since, &b.0.session_id))
        });
        held.truncate(max.clamp(1, MAX_PAGE));
        Ok(held)
    }

    async fn set_handoff_settings(
        &self,
        org_id: &str,
        settings: Option<&HandoffSettingsRow>,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        match settings {
            Some(settings) => state
                .handoff_settings
                .insert(org_id.to_string(), settings.clone()),
            None => state.handoff_settings.remove(org_id),
        };
        Ok(())
    }

    async fn handoff_settings(
        &self,
        org_id: &str,
    ) -> Result<Option<HandoffSettingsRow>, StoreError> {
        Ok(self.state().handoff_settings.get(org_id).cloned())
    }

    async fn create_webhook(
        &self,
        webhook: &WebhookRow,
        max_per_org: usize,
    ) -> Result<bool, StoreError> {
        self.state().webhooks.create(webhook, max_per_org)
    }

    async fn put_assistant(
        &self,
        assistant: &AssistantRow,
        max_per_org: usize,
    ) -> Result<bool, StoreError> {
        self.state().assistants.put(assistant, max_per_org)
    }

    async fn assistants(&self, org_id: &str) -> Result<Vec<AssistantRow>, StoreError> {
        Ok(self.state().assistants.of_org(org_id))
    }

    async fn assistant(
        &self,
        org_id: &str,
        name: &str,
    ) -> Result<Option<AssistantRow>, StoreError> {
        Ok(self.state().assistants.get(org_id, name))
    }

    async fn delete_assistant(&self, org_id: &str, name: &str) -> Result<bool, StoreError> {
        Ok(self.state().assistants.delete(org_id, name))
    }

    async fn webhooks(&self, org_id: &str) -> Result<Vec<WebhookRow>, StoreError> {
        Ok(self.state().webhooks.of_org(org_id))
    }

    async fn delete_webhook(&self, org_id: &str, webhook_id: &str) -> Result<bool, StoreError> {
        Ok(self.state().webhooks.delete(org_id, webhook_id))
    }

    async fn record_delivery(
        &self,
        delivery: &WebhookDelivery,
        keep: usize,
    ) -> Result<bool, StoreError> {
        self.state().webhooks.record(delivery, keep)
    }

    async fn webhook_deliveries(
        &self,
        org_id: &str,
        webhook_id: &str,
        max: usize,
    ) -> Result<Option<Vec<WebhookDelivery>>, StoreError> {
        Ok(self.state().webhooks.log(org_id, webhook_id, max))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn new_session(id: &str) -> NewSession {
        NewSession {
            session_id: id.into(),
            org_id: "org".into(),
            owner: Some("alice".into()),
            key_sha256: None,
            created_at: 1_000,
            metadata: None,
            assistant: None,
        }
    }

    fn message(id: &str, seq: u64) -> TranscriptWrite {
        TranscriptWrite {
            session_id: id.into(),
            entry: TranscriptEntry {
                seq,
                ts: 1_000 + seq,
                kind: "message".into(),
                event: format!("{{\"seq\":{seq}}}"),
            },
            preview: Some(format!("message {seq}")),
            title_hint: None,
        }
    }

    /// On a paused clock a call that waited on another thread would let the runtime go
    /// idle and the clock jump past the timeout; every call here completes at once.
    #[tokio::test(start_paused = true)]
    async fn calls_complete_without_the_paused_clock_moving() {
        let store = MemoryStore::new();
        let started = tokio::time::Instant::now();
        let instant = Duration::from_millis(1);
        let session = new_session("s1");
        let batch = [message("s1", 1)];
        let query = SessionQuery {
            org_id: "org".into(),
            owner: None,
            state: None,
            active_since: None,
            active_before: None,
            cursor: None,
            limit: 10,
        };
        let created = tokio::time::timeout(instant, store.create_session(&session)).await;
        assert!(created.expect("create took no time").unwrap());
        let written = tokio::time::timeout(instant, store.write(&batch)).await;
        written.expect("write took no time").unwrap();
        let listed = tokio::time::timeout(instant, store.list_sessions(&query)).await;
        assert_eq!(
            listed.expect("list took no time").unwrap().sessions.len(),
            1
        );
        let read = tokio::time::timeout(instant, store.transcript("s1", 0, None, 10)).await;
        assert_eq!(read.expect("transcript took no time").unwrap().len(), 1);
        assert_eq!(tokio::time::Instant::now(), started);
    }

    /// A panic while the lock was held (a caller's, not the store's) does not make
    /// every later call panic or fail.
    #[tokio::test]
    async fn a_poisoned_lock_is_recovered() {
        let store = MemoryStore::new();
        assert!(store.create_session(&new_session("s1")).await.unwrap());
        let poisoned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _guard = store.state();
            panic!("poison the lock");
        }));
        assert!(poisoned.is_err());
        assert!(store.state.is_poisoned());
        store.write(&[message("s1", 1)]).await.unwrap();
        let row = store.session("s1").await.unwrap().unwrap();
        assert_eq!(row.preview.as_deref(), Some("message 1"));
    }
}
