//! Presence and typing (docs/protocol.md §3.15): who is in a session, on any replica,
//! and who is typing. Neither is a session event: no `seq`, never in history, never
//! replayed.
//!
//! How it holds across replicas:
//!
//! - each session has a shared record, `presence/<session_id>` ([`record`]), with each
//!   replica's members under the replica's **presence id** (`p_…`, fixed for the
//!   process's life). A replica changes only its own entry, by compare-and-set, and
//!   only when its members change (one connection more of a user already there
//!   changes nothing);
//! - each replica renews a heartbeat, `presence-replicas/<id>`, every beat; it lapses
//!   `lapse` after the last renewal. Every replica lists the heartbeats each beat
//!   ([`liveness`]): entries of a replica that is no longer listed stop counting, so a
//!   killed replica's members leave everyone's view within the lapse plus a beat;
//! - after writing, a replica hints every other replica with members of the session
//!   on its presence control stream (`control:<presence id>`, [`hints`]); the
//!   receiver reads the record again and shows its members what changed. Typing
//!   travels the same way, as the hint itself. Hints lost while a listener
//!   resubscribes are made up for by reading every record again after each
//!   (re)subscription, and a slow re-read of each record ([`REREAD_EVERY`]);
//! - members see a merged [`view`]: owner and operators by name (each user once),
//!   everyone else counted.
//!
//! Parts: [`record`] (the shared record), [`view`] (merging and changes), [`local`]
//! (this replica's side of a session), [`liveness`] (which replicas count),
//! [`typing`] (the per-connection typing rate limit), [`hints`] (between replicas),
//! [`writer`] (writing and re-reading records), [`beat`] (heartbeat, listing, the
//! control stream), [`erase`] (a removed conversation's presence goes everywhere).

mod beat;
mod erase;
mod hints;
mod liveness;
mod local;
mod record;
mod typing;
mod view;
mod writer;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchboard_backplane::{Backplane, RecordKey};
use switchboard_protocol::{PresenceMember, ServerFrame};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::fanout::{ConnectionId, Outbound};
use crate::ids::new_id;
use crate::metrics::Metrics;
use crate::records::namespace::PRESENCE_REPLICAS;
use hints::Hint;
use liveness::Liveness;
use local::{LocalMember, LocalSession, frame_text, public};

/// How often a replica re-reads the presence record of each session it has members
/// in, without a hint: the safety net for a lost hint.
pub const REREAD_EVERY: Duration = Duration::from_secs(60);

/// Hints wait in this many queues, each sent in order by one task: a session's hints
/// (a typing start, then its stop) always go through the same one, so they arrive in
/// the order they were made.
const HINT_QUEUES: usize = 4;
/// Hints one queue holds; beyond, a hint is dropped (and counted).
const HINT_QUEUE_CAPACITY: usize = 1024;

/// Connections of one session one replica tracks in presence at most.
pub const MAX_PRESENCE_PER_SESSION: usize = 1_000;
/// Session memberships (a connection in a session) one replica tracks at most.
pub const MAX_PRESENCE_PER_PROCESS: usize = 200_000;

/// The heartbeat's pace: `--turn-lease-beat` and `--turn-lease-lapse`.
#[derive(Debug, Clone, Copy)]
pub struct PresenceTiming {
    pub beat: Duration,
    pub lapse: Duration,
}

/// How many memberships presence tracks. A connection beyond a limit is a member of
/// the session all the same, but not in its presence: it is not counted, gets no
/// presence or typing frames, and its typing is dropped.
#[derive(Debug, Clone, Copy)]
pub struct PresenceLimits {
    pub per_session: usize,
    pub per_process: usize,
}

impl Default for PresenceLimits {
    fn default() -> Self {
        PresenceLimits {
            per_session: MAX_PRESENCE_PER_SESSION,
            per_process: MAX_PRESENCE_PER_PROCESS,
        }
    }
}

pub(super) struct State {
    sessions: HashMap<String, LocalSession>,
    /// Memberships tracked, over every session.
    tracked: usize,
    liveness: Liveness,
    /// When the last heartbeat renewal the backplane took was sent.
    renewed_at: Option<Instant>,
}

/// A hint waiting to be sent, and the replicas it goes to.
type QueuedHint = (Vec<String>, Hint);

/// This replica's presence: its member connections per session, and the records and
/// hints that tell the other replicas.
pub struct Presence {
    id: String,
    backplane: Arc<dyn Backplane>,
    metrics: Arc<Metrics>,
    timing: PresenceTiming,
    limits: PresenceLimits,
    state: Mutex<State>,
    /// The hint queues' senders, and their receivers until [`Presence::start`].
    hint_queues: Vec<mpsc::Sender<QueuedHint>>,
    hint_receivers: Mutex<Vec<mpsc::Receiver<QueuedHint>>>,
    tasks: TaskTracker,
    stop: CancellationToken,
}

impl Presence {
    pub fn new(
        backplane: Arc<dyn Backplane>,
        metrics: Arc<Metrics>,
        timing: PresenceTiming,
        limits: PresenceLimits,
    ) -> Arc<Presence> {
        let id = new_id("p");
        let (hint_queues, hint_receivers) = (0..HINT_QUEUES)
            .map(|_| mpsc::channel(HINT_QUEUE_CAPACITY))
            .unzip();
        Arc::new(Presence {
            hint_queues,
            hint_receivers: Mutex::new(hint_receivers),
            state: Mutex::new(State {
                sessions: HashMap::new(),
                tracked: 0,
                liveness: Liveness::new(&id),
                renewed_at: None,
            }),
            id,
            backplane,
            metrics,
            timing,
            limits,
            tasks: TaskTracker::new(),
            stop: CancellationToken::new(),
        })
    }

    /// This replica's presence id.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Renew the heartbeat once (before serving, so this replica's entries count as
    /// soon as it writes any), then keep it and the control stream going.
    pub async fn start(self: &Arc<Self>) {
        self.renew().await;
        self.list().await;
        self.tasks.spawn(self.clone().keep_beating());
        self.tasks.spawn(self.clone().listen());
        let receivers = std::mem::take(
            &mut *self
                .hint_receivers
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for mut receiver in receivers {
            let presence = self.clone();
            self.tasks.spawn(async move {
                loop {
                    let next = tokio::select! {
                        () = presence.stop.cancelled() => return,
                        next = receiver.recv() => next,
                    };
                    let Some((targets, hint)) = next else { return };
                    hints::send(
                        presence.backplane.as_ref(),
                        &presence.metrics,
                        &targets,
                        &hint,
                    )
                    .await;
                }
            });
        }
    }

    /// Stop the heartbeat and the control stream, and remove the heartbeat: the other
    /// replicas stop counting this one's members at their next beat.
    pub async fn stop(&self) {
        self.stop.cancel();
        self.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(2), self.tasks.wait()).await;
        let key = RecordKey::new(PRESENCE_REPLICAS, &self.id);
        if let Err(e) = self.backplane.record_delete(&key).await {
            tracing::debug!(error = %e, "presence heartbeat left to lapse");
        }
    }

    /// `connection` joined `session_id` as `who`: send it the `presence` snapshot and
    /// tell the other members (here at once, on other replicas through the record).
    pub async fn join(
        self: &Arc<Self>,
        session_id: &str,
        connection: ConnectionId,
        outbound: &Arc<Outbound>,
        who: PresenceMember,
    ) {
        let known = self.lock().sessions.contains_key(session_id);
        let mut fresh = None;
        if !known {
            match record::read(self.backplane.as_ref(), &self.metrics, session_id).await {
                Ok(record) => {
                    let undecided = {
                        let mut state = self.lock();
                        let now = Instant::now();
                        for replica in record.replicas.keys() {
                            state.liveness.saw(replica, now);
                        }
                        state
                            .liveness
                            .any_undecided(record.replicas.keys().map(String::as_str))
                    };
                    if undecided {
                        // Replicas this one has not listed yet: list now, so a dead
                        // replica's members never reach a first snapshot.
                        self.list().await;
                    }
                    fresh = Some(record);
                }
                Err(e) => {
                    tracing::warn!(session_id, error = %e, "presence record not read; other replicas' members show after the next read");
                }
            }
        }
        let read_failed = !known && fresh.is_none();
        let mut guard = self.lock();
        let state = &mut *guard;
        let now = Instant::now();
        let present = state
            .sessions
            .get(session_id)
            .is_some_and(|s| s.members.contains_key(&connection));
        if !present {
            let limit = if state.tracked >= self.limits.per_process {
                Some("process")
            } else if state
                .sessions
                .get(session_id)
                .is_some_and(|s| s.members.len() >= self.limits.per_session)
            {
                Some("session")
            } else {
                None
            };
            if let Some(limit) = limit {
                self.metrics
                    .presence_refused
                    .with_label_values(&[limit])
                    .inc();
                tracing::warn!(
                    session_id,
                    limit,
                    "presence full: this member is not tracked"
                );
                return;
            }
            state.tracked += 1;
        }
        let created = !state.sessions.contains_key(session_id);
        let session = state
            .sessions
            .entry(session_id.to_string())
            .or_insert_with(|| LocalSession::new(now));
        if created && let Some(record) = fresh {
            session.take_remote(record, &self.id, &mut state.liveness, now);
        }
        let typing = session
            .members
            .remove(&connection)
            .map(|m| m.typing)
            .unwrap_or_default();
        session.members.insert(
            connection,
            LocalMember {
                outbound: outbound.clone(),
                who,
                typing,
            },
        );
        let view = session.view(&state.liveness);
        let _ = outbound.enqueue(frame_text(ServerFrame::Presence(view.snapshot(session_id))));
        session.refresh(session_id, &state.liveness, Some(connection));
        self.count(state);
        self.mark_dirty(state, session_id);
        if created
            && read_failed
            && let Some(session) = state.sessions.get_mut(session_id)
        {
            session.stale = true;
        }
    }

    /// `connection` left `session_id` (`session.leave`, a delete, or its close).
    pub fn leave(self: &Arc<Self>, session_id: &str, connection: ConnectionId) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let Some(session) = state.sessions.get_mut(session_id) else {
            return;
        };
        let Some(member) = session.members.remove(&connection) else {
            return;
        };
        state.tracked = state.tracked.saturating_sub(1);
        let mut stopped = None;
        if member.typing.shown(Instant::now()) {
            // Leaving while shown as typing: clear it now rather than after it lapses.
            let who = public(&member.who);
            session.typing(session_id, who.clone(), false, None);
            stopped = Some((who, session.live_remotes(&state.liveness)));
        }
        session.refresh(session_id, &state.liveness, None);
        self.count(state);
        self.mark_dirty(state, session_id);
        drop(guard);
        if let Some((member, targets)) = stopped {
            self.hint(
                targets,
                Hint::Typing {
                    session_id: session_id.to_string(),
                    from: self.id.clone(),
                    member,
                    typing: false,
                },
            );
        }
    }

    /// `connection`, a member of `session_id`, is typing (or stopped): tell the other
    /// members, at most once per interval ([`typing`]). Silent when dropped.
    pub fn typing(self: &Arc<Self>, session_id: &str, connection: ConnectionId, typing: bool) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let Some(session) = state.sessions.get_mut(session_id) else {
            return;
        };
        let Some(member) = session.members.get_mut(&connection) else {
            return;
        };
        if !member.typing.pass(typing, Instant::now()) {
            self.metrics
                .typing_frames
                .with_label_values(&["dropped"])
                .inc();
            return;
        }
        self.metrics
            .typing_frames
            .with_label_values(&["forwarded"])
            .inc();
        let who = public(&member.who);
        session.typing(session_id, who.clone(), typing, Some(connection));
        let targets = session.live_remotes(&state.liveness);
        drop(guard);
        self.hint(
            targets,
            Hint::Typing {
                session_id: session_id.to_string(),
                from: self.id.clone(),
                member: who,
                typing,
            },
        );
    }

    /// Send `hint` to `targets` in the background, after the earlier hints of its
    /// session.
    fn hint(&self, targets: Vec<String>, hint: Hint) {
        if targets.is_empty() {
            return;
        }
        let session_id = match &hint {
            Hint::Changed { session_id, .. }
            | Hint::Forget { session_id, .. }
            | Hint::Typing { session_id, .. } => session_id,
        };
        let queue = session_id.bytes().fold(0usize, |h, b| {
            h.wrapping_mul(31).wrapping_add(usize::from(b))
        }) % HINT_QUEUES;
        let Some(sender) = self.hint_queues.get(queue) else {
            return;
        };
        if sender.try_send((targets, hint)).is_err() {
            self.metrics.presence_hints_dropped.inc();
            tracing::debug!("presence hint queue full; hint dropped");
        }
    }

    fn count(&self, state: &State) {
        self.metrics.presence_members.set(state.tracked as i64);
        self.metrics
            .presence_sessions
            .set(state.sessions.len() as i64);
    }
}
