//! The replica's presence beat and control stream: renew the heartbeat, list the
//! others', show members what a death changed, rewrite and re-read records when due;
//! and act on the hints other replicas send.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use switchboard_backplane::{Backoff, RecordKey, StreamName, Subscription};
use tokio::time::Instant;

use super::hints::Hint;
use super::record::REWRITE_EVERY;
use super::{Presence, REREAD_EVERY};
use crate::records::namespace::PRESENCE_REPLICAS;

/// Waits between subscriptions of the control stream.
const RESUBSCRIBE_FIRST: Duration = Duration::from_millis(50);
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(2);

impl Presence {
    pub(super) async fn keep_beating(self: Arc<Self>) {
        loop {
            tokio::select! {
                () = self.stop.cancelled() => return,
                () = tokio::time::sleep(self.timing.beat) => {}
            }
            self.beat().await;
        }
    }

    /// One beat: renew, list, and the rewrites and re-reads that are due.
    pub(super) async fn beat(self: &Arc<Self>) {
        self.renew().await;
        self.list().await;
        self.maintain();
    }

    /// Renew the heartbeat. A renewal sent a lapse or more after the previous one the
    /// backplane took means the others may have counted this replica dead and dropped
    /// its entries meanwhile: every entry is written again.
    pub(super) async fn renew(self: &Arc<Self>) {
        let key = RecordKey::new(PRESENCE_REPLICAS, &self.id);
        let sent_at = Instant::now();
        let started = std::time::Instant::now();
        let renewed = self
            .backplane
            .record_put(&key, Bytes::from_static(b"1"), Some(self.timing.lapse))
            .await;
        self.metrics
            .observe_backplane("presence_heartbeat", started, &renewed);
        if let Err(e) = renewed {
            tracing::debug!(error = %e, "presence heartbeat not renewed");
            return;
        }
        let mut guard = self.lock();
        let state = &mut *guard;
        let lapsed = state
            .renewed_at
            .is_some_and(|last| sent_at.saturating_duration_since(last) >= self.timing.lapse);
        state.renewed_at = Some(sent_at);
        if lapsed {
            tracing::warn!("presence heartbeat lapsed; writing this replica's members again");
            let ids: Vec<String> = state.sessions.keys().cloned().collect();
            for id in ids {
                if let Some(session) = state.sessions.get_mut(&id) {
                    session.written = None;
                }
                self.mark_dirty(state, &id);
            }
        }
    }

    /// List the live replicas; when that changes what counts, show every session's
    /// members the change (a dead replica's members leave).
    pub(super) async fn list(&self) {
        let started = Instant::now();
        let timer = std::time::Instant::now();
        let listed = self.backplane.record_list(PRESENCE_REPLICAS).await;
        self.metrics
            .observe_backplane("presence_list", timer, &listed);
        let alive: HashSet<String> = match listed {
            Ok(list) => list.into_iter().map(|(id, _)| id).collect(),
            Err(e) => {
                tracing::debug!(error = %e, "presence heartbeats not listed");
                return;
            }
        };
        let mut guard = self.lock();
        let state = &mut *guard;
        let sessions = &state.sessions;
        let changed = state.liveness.listed(alive, started, |replica| {
            sessions.values().any(|s| s.remote.contains_key(replica))
        });
        if changed {
            for (id, session) in &mut state.sessions {
                session.refresh(id, &state.liveness, None);
            }
        }
    }

    /// Rewrite the records of sessions not written for [`REWRITE_EVERY`] (so they do
    /// not lapse), re-read those not read for [`REREAD_EVERY`] or whose last read
    /// failed.
    fn maintain(self: &Arc<Self>) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let now = Instant::now();
        let mut rewrite = Vec::new();
        let mut reread = Vec::new();
        for (id, session) in &state.sessions {
            if session.written.is_some()
                && now.saturating_duration_since(session.written_at) >= REWRITE_EVERY
            {
                rewrite.push(id.clone());
            }
            if session.stale || now.saturating_duration_since(session.read_at) >= REREAD_EVERY {
                reread.push(id.clone());
            }
        }
        for id in rewrite {
            if let Some(session) = state.sessions.get_mut(&id) {
                session.written = None;
            }
            self.mark_dirty(state, &id);
        }
        for id in reread {
            self.reread(state, &id);
        }
    }

    /// Listen on `control:<presence id>` until stopped, subscribing again whenever the
    /// subscription ends. Hints sent meanwhile are lost, so every record is read again
    /// after each subscription.
    pub(super) async fn listen(self: Arc<Self>) {
        let Ok(stream) = StreamName::control(&self.id) else {
            tracing::error!(id = %self.id, "no control stream for this presence id");
            return;
        };
        let mut backoff = Backoff::new(RESUBSCRIBE_FIRST, RESUBSCRIBE_MAX).with_jitter(0.25);
        loop {
            let subscribed = tokio::select! {
                () = self.stop.cancelled() => return,
                subscribed = self.backplane.subscribe(&stream) => subscribed,
            };
            match subscribed {
                Ok(mut subscription) => {
                    let since = Instant::now();
                    self.reread_all();
                    tokio::select! {
                        () = self.stop.cancelled() => return,
                        () = self.take_hints(&mut subscription) => {}
                    }
                    if since.elapsed() > RESUBSCRIBE_MAX {
                        backoff.reset();
                    }
                }
                Err(e) => {
                    tracing::warn!(%stream, error = %e, "cannot subscribe to the presence control stream; retrying");
                }
            }
            tokio::select! {
                () = self.stop.cancelled() => return,
                () = backoff.wait() => {}
            }
        }
    }

    fn reread_all(self: &Arc<Self>) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let ids: Vec<String> = state.sessions.keys().cloned().collect();
        for id in ids {
            self.reread(state, &id);
        }
    }

    async fn take_hints(self: &Arc<Self>, subscription: &mut Subscription) {
        loop {
            match subscription.next().await {
                Ok(event) => self.on_hint(&event.body),
                Err(ended) => {
                    tracing::info!(?ended, "presence control stream ended; subscribing again");
                    return;
                }
            }
        }
    }

    pub(super) fn on_hint(self: &Arc<Self>, body: &switchboard_protocol::EventBody) {
        let Some(hint) = Hint::parse(body) else {
            tracing::debug!("not a presence hint; ignored");
            return;
        };
        let mut guard = self.lock();
        let state = &mut *guard;
        match hint {
            Hint::Changed { session_id, from } => {
                state.liveness.heard_from(&from, Instant::now());
                self.reread(state, &session_id);
            }
            Hint::Forget { session_id, from } => {
                state.liveness.heard_from(&from, Instant::now());
                self.forget_elsewhere(state, &session_id);
            }
            Hint::Typing {
                session_id,
                from,
                member,
                typing,
            } => {
                state.liveness.heard_from(&from, Instant::now());
                if let Some(session) = state.sessions.get(&session_id) {
                    session.typing(&session_id, member, typing, None);
                }
            }
        }
    }
}
