//! Writing this replica's entry of a session's record, and reading the record again.
//! Each runs as at most one task per session: a change while it runs is picked up by
//! one more round, so writes never overtake each other and reads coalesce.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use switchboard_backplane::Backoff;
use tokio::time::Instant;

use super::hints::Hint;
use super::record::{self, Entry};
use super::{Presence, State};

/// Retry pace of a write the backplane refused.
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(5);

impl Presence {
    /// This replica's entry of `session_id` may have changed: write it (a task, unless
    /// one runs; that one then goes round once more).
    pub(super) fn mark_dirty(self: &Arc<Self>, state: &mut State, session_id: &str) {
        let Some(session) = state.sessions.get_mut(session_id) else {
            return;
        };
        session.dirty = true;
        if !session.writing {
            session.writing = true;
            self.tasks
                .spawn(self.clone().write_rounds(session_id.to_string()));
        }
    }

    /// Read `session_id`'s record again and show its members what changed.
    pub(super) fn reread(self: &Arc<Self>, state: &mut State, session_id: &str) {
        let Some(session) = state.sessions.get_mut(session_id) else {
            return;
        };
        if session.reading {
            session.read_again = true;
            return;
        }
        session.reading = true;
        self.tasks
            .spawn(self.clone().read_rounds(session_id.to_string()));
    }

    async fn write_rounds(self: Arc<Self>, session_id: String) {
        let mut backoff = Backoff::new(RETRY_FIRST, RETRY_MAX);
        loop {
            let due = {
                let mut guard = self.lock();
                let state = &mut *guard;
                let Some(session) = state.sessions.get_mut(&session_id) else {
                    return;
                };
                session.dirty = false;
                let entry = session.own_entry();
                let want = (!entry.is_empty()).then_some(entry);
                (want != session.written).then(|| {
                    let dead: HashSet<String> = session
                        .remote
                        .keys()
                        .filter(|r| state.liveness.is_dead(r))
                        .cloned()
                        .collect();
                    (want, dead)
                })
            };
            if let Some((want, dead)) = due {
                if self.write(&session_id, want, dead).await {
                    backoff.reset();
                } else {
                    tokio::select! {
                        () = self.stop.cancelled() => return,
                        () = backoff.wait() => {}
                    }
                    if let Some(session) = self.lock().sessions.get_mut(&session_id) {
                        session.dirty = true;
                    }
                }
            }
            let mut guard = self.lock();
            let state = &mut *guard;
            let Some(session) = state.sessions.get_mut(&session_id) else {
                return;
            };
            if session.dirty {
                continue;
            }
            session.writing = false;
            self.forget_if_idle(state, &session_id);
            return;
        }
    }

    /// Put `want` as this replica's entry (remove it for `None`), dropping the entries
    /// of `dead` replicas; then show the record to the members and hint the replicas
    /// it names. Whether it was written.
    async fn write(
        self: &Arc<Self>,
        session_id: &str,
        want: Option<Entry>,
        dead: HashSet<String>,
    ) -> bool {
        let own = self.id.clone();
        let written = record::update(
            self.backplane.as_ref(),
            &self.metrics,
            session_id,
            |record| {
                record.replicas.retain(|replica, _| !dead.contains(replica));
                match &want {
                    Some(entry) => {
                        record.replicas.insert(own.clone(), entry.clone());
                    }
                    None => {
                        record.replicas.remove(&own);
                    }
                }
            },
        )
        .await;
        let record = match written {
            Ok(record) => record,
            Err(e) => {
                tracing::warn!(session_id, error = %e, "presence not written; retrying");
                return false;
            }
        };
        let targets = {
            let mut guard = self.lock();
            let state = &mut *guard;
            state.sessions.get_mut(session_id).map(|session| {
                let now = Instant::now();
                session.written = want;
                session.written_at = now;
                session.take_remote(record, &self.id, &mut state.liveness, now);
                session.refresh(session_id, &state.liveness, None);
                session.live_remotes(&state.liveness)
            })
        };
        let Some(targets) = targets else {
            // The session was removed while this write ran: its record goes.
            if let Err(e) = self.delete_record(session_id).await {
                tracing::warn!(session_id, error = %e, "presence record of a removed session not deleted; it lapses within the hour");
            }
            return true;
        };
        self.hint(
            targets,
            Hint::Changed {
                session_id: session_id.to_string(),
                from: self.id.clone(),
            },
        );
        true
    }

    async fn read_rounds(self: Arc<Self>, session_id: String) {
        loop {
            let read = record::read(self.backplane.as_ref(), &self.metrics, &session_id).await;
            let mut guard = self.lock();
            let state = &mut *guard;
            let Some(session) = state.sessions.get_mut(&session_id) else {
                return;
            };
            match read {
                Ok(record) => {
                    session.take_remote(record, &self.id, &mut state.liveness, Instant::now());
                    session.refresh(&session_id, &state.liveness, None);
                }
                Err(e) => {
                    session.stale = true;
                    tracing::debug!(session_id, error = %e, "presence record not read; the next beat tries again");
                }
            }
            if std::mem::take(&mut session.read_again) {
                continue;
            }
            session.reading = false;
            self.forget_if_idle(state, &session_id);
            return;
        }
    }

    /// Drop a session this replica has nothing more to do with: no member, nothing in
    /// the record, no task on it.
    fn forget_if_idle(&self, state: &mut State, session_id: &str) {
        let idle = state.sessions.get(session_id).is_some_and(|s| {
            s.members.is_empty() && s.written.is_none() && !s.writing && !s.reading
        });
        if idle {
            state.sessions.remove(session_id);
            self.count(state);
        }
    }
}
