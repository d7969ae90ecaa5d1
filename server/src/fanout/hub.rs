//! One stream's fan-out on this replica: a task holds the stream's backplane
//! subscription, serializes each event **once** and hands the shared bytes to every
//! local member's outbound queue without waiting. When the subscription ends (the hub
//! fell behind, the backplane reconnected) the task subscribes again and fills the gap
//! from history, so members never miss an event and never see one twice.
//!
//! A stream whose members fall behind is delivered in rounds: when at least a quarter
//! of the members still had frames queued as the last round reached them, the next
//! event waits until a `--fanout-window` after that round, and the round hands each
//! member every event gathered so far. A member's writer then wakes once and writes
//! them in one syscall, where one round per event would wake a thousand writers and
//! make a thousand writes for each. While the writers keep up (a quiet stream, a
//! token stream at tens of deltas a second, a busy one on a machine with room), every
//! event goes out at once: the window costs latency only where it saves work.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use switchboard_backplane::{Backoff, Backplane, Event, Seq, StreamName, Subscription};
use switchboard_protocol::EventFrame;
use tokio::sync::watch;
use tokio_util::task::AbortOnDropHandle;

use super::outbound::Outbound;
use crate::metrics::Metrics;
use crate::telemetry::spans;

/// A connection's identity inside this replica.
pub type ConnectionId = u64;

static NEXT_CONNECTION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A new member id: sockets, and HTTP requests that watch a stream (a synchronous
/// chat waiting for its reply) share one sequence, so they never collide in a hub.
pub fn new_connection_id() -> ConnectionId {
    NEXT_CONNECTION.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Events read from history per backplane round trip (gap fills and replays).
pub(super) const PAGE: usize = 256;
/// Live events buffered for a member while its replay runs; more and it is treated
/// as a slow consumer (it resumes with `after_seq`).
const MAX_PENDING_EVENTS: usize = 8192;
/// `--fanout-window`'s default.
pub(super) const DEFAULT_FANOUT_WINDOW: Duration = Duration::from_millis(10);
/// Events one delivery round takes at most (more wait for the next round, at once).
const MAX_ROUND_EVENTS: usize = 256;
/// A round found the stream's members behind when at least one in this many still
/// had frames queued: the next round waits for the window.
const BEHIND_ONE_IN: usize = 4;
/// Resubscribe backoff bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

pub(super) enum MemberState {
    /// Replay in progress: live events wait here.
    Pending(Vec<(Seq, Utf8Bytes)>),
    /// Live: events with `seq > after` go straight to the outbound queue.
    Live { after: Seq },
}

pub(super) struct Member {
    pub(super) outbound: Arc<Outbound>,
    pub(super) state: MemberState,
}

pub(super) struct HubState {
    pub(super) members: HashMap<ConnectionId, Member>,
    /// The newest seq delivered to members; later duplicates (from a gap fill) are
    /// dropped.
    pub(super) last_delivered: Option<Seq>,
    /// Every event up to here has reached the members: the stream's head when the
    /// hub first subscribed, then each delivered seq.
    pub(super) covered: Seq,
}

pub(super) struct HubShared {
    pub(super) stream: StreamName,
    /// While members fall behind, at most one delivery round per window
    /// (`--fanout-window`; zero: never wait).
    window: Duration,
    state: Mutex<HubState>,
    /// True once the first subscription is established.
    pub(super) subscribed: watch::Sender<bool>,
    metrics: Arc<Metrics>,
}

/// One stream's local fan-out.
pub(super) struct Hub {
    pub(super) shared: Arc<HubShared>,
    _task: AbortOnDropHandle<()>,
}

impl Hub {
    /// The hub of `stream`, with its task subscribing.
    pub(super) fn start(
        stream: &StreamName,
        backplane: Arc<dyn Backplane>,
        metrics: Arc<Metrics>,
        window: Duration,
    ) -> Hub {
        let (subscribed, _) = watch::channel(false);
        let shared = Arc::new(HubShared {
            stream: stream.clone(),
            window,
            state: Mutex::new(HubState {
                members: HashMap::new(),
                last_delivered: None,
                covered: 0,
            }),
            subscribed,
            metrics,
        });
        let task = tokio::spawn(run_hub(shared.clone(), backplane));
        Hub {
            shared,
            _task: AbortOnDropHandle::new(task),
        }
    }
}

impl HubShared {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hand one event to every member: serialized once, shared by all.
    fn deliver(&self, event: &Event) {
        self.deliver_round(std::slice::from_ref(event));
    }

    /// Hand `events` (in seq order) to every member, each serialized once; a member
    /// gets all of them before the next member gets any, so its writer wakes once.
    /// Whether the members were behind: at least one in [`BEHIND_ONE_IN`] live members
    /// still had frames queued when this round reached it.
    fn deliver_round<E: std::borrow::Borrow<Event>>(&self, events: &[E]) -> bool {
        let frames: Vec<(Seq, Utf8Bytes)> = events
            .iter()
            .map(|event| {
                let event = event.borrow();
                let json = EventFrame::new(&self.stream, event).to_json();
                (event.seq, Utf8Bytes::from(json))
            })
            .collect();
        let mut state = self.lock();
        // Later duplicates (a gap fill overlapping live events) are dropped.
        let fresh = match state.last_delivered {
            Some(last) => frames.partition_point(|(seq, _)| *seq <= last),
            None => 0,
        };
        let frames = &frames[fresh..];
        let Some((newest, _)) = frames.last() else {
            return false;
        };
        // A `deliver` span for each event that carries a trace context (none when
        // traces are off), as long as handing it to the members takes.
        let traced: Vec<tracing::Span> = events[fresh..]
            .iter()
            .filter_map(|event| {
                let event = event.borrow();
                spans::deliver(
                    event.traceparent.as_deref(),
                    self.stream.kind().prefix(),
                    event.body.type_name(),
                    event.seq,
                )
            })
            .collect();
        state.last_delivered = Some(*newest);
        state.covered = state.covered.max(*newest);
        let mut delivered = 0;
        let (mut live, mut backlogged) = (0usize, 0usize);
        for member in state.members.values_mut() {
            if matches!(member.state, MemberState::Live { .. }) {
                live += 1;
                if member.outbound.queued_bytes() > 0 {
                    backlogged += 1;
                }
            }
            for (seq, frame) in frames {
                match &mut member.state {
                    MemberState::Pending(buffer) => {
                        if buffer.len() < MAX_PENDING_EVENTS {
                            buffer.push((*seq, frame.clone()));
                        } else {
                            member.outbound.overflowed();
                        }
                    }
                    MemberState::Live { after } => {
                        if *seq > *after && member.outbound.enqueue(frame.clone()).is_ok() {
                            delivered += 1;
                        }
                    }
                }
            }
        }
        self.metrics.events_delivered.inc_by(delivered);
        for span in &traced {
            spans::delivered(span, state.members.len() as u64);
        }
        backlogged > 0 && backlogged.saturating_mul(BEHIND_ONE_IN) >= live
    }
}

/// The events of the next delivery round: `first`, then — when the last round found
/// the members behind and was less than a window ago — whatever arrives until the
/// window's end, then whatever is already queued, up to [`MAX_ROUND_EVENTS`].
async fn gather_round(
    first: Arc<Event>,
    subscription: &mut Subscription,
    behind_since: Option<tokio::time::Instant>,
    window: Duration,
) -> Vec<Arc<Event>> {
    if let Some(due) = behind_since.map(|last| last + window)
        && tokio::time::Instant::now() < due
    {
        tokio::time::sleep_until(due).await;
    }
    let mut round = vec![first];
    while round.len() < MAX_ROUND_EVENTS {
        match subscription.try_next() {
            Some(event) => round.push(event),
            None => break,
        }
    }
    round
}

/// The hub task: subscribe, fill gaps, deliver; resubscribe with backoff whenever the
/// subscription ends.
async fn run_hub(shared: Arc<HubShared>, backplane: Arc<dyn Backplane>) {
    let mut backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
    // The stream's head when the first subscription was made: the gap fill after a
    // resubscribe starts here if nothing was delivered yet.
    let mut floor: Option<Seq> = None;
    loop {
        let started = Instant::now();
        let subscribed = backplane.subscribe(&shared.stream).await;
        shared
            .metrics
            .observe_backplane("subscribe", started, &subscribed);
        let mut subscription = match subscribed {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(stream = %shared.stream, error = %e, "subscribe failed; retrying");
                backoff.wait().await;
                continue;
            }
        };
        let resume_from = shared.lock().last_delivered.or(floor);
        match resume_from {
            Some(after) => {
                if let Err(e) = fill_gap(&shared, backplane.as_ref(), after).await {
                    tracing::warn!(stream = %shared.stream, error = %e, "gap fill failed; resubscribing");
                    backoff.wait().await;
                    continue;
                }
            }
            None => match backplane.read(&shared.stream, None, 0).await {
                Ok(head) => {
                    floor = Some(head.last_seq);
                    let mut state = shared.lock();
                    state.covered = state.covered.max(head.last_seq);
                }
                Err(e) => {
                    tracing::warn!(stream = %shared.stream, error = %e, "reading the stream head failed; resubscribing");
                    backoff.wait().await;
                    continue;
                }
            },
        }
        backoff.reset();
        shared.subscribed.send_replace(true);
        // When the last round was, if it found the members behind.
        let mut behind_since: Option<tokio::time::Instant> = None;
        loop {
            match subscription.next().await {
                Ok(event) => {
                    let round =
                        gather_round(event, &mut subscription, behind_since, shared.window).await;
                    let behind = shared.deliver_round(&round);
                    behind_since = behind.then(tokio::time::Instant::now);
                }
                Err(reason) => {
                    tracing::warn!(stream = %shared.stream, ?reason, "subscription ended; resubscribing");
                    break;
                }
            }
        }
    }
}

/// Deliver every retained event after `after` (a resubscribe may have missed them).
async fn fill_gap(
    shared: &HubShared,
    backplane: &dyn Backplane,
    mut after: Seq,
) -> Result<(), switchboard_backplane::ReadError> {
    loop {
        let page = backplane.read(&shared.stream, Some(after), PAGE).await?;
        for event in &page.events {
            shared.deliver(event);
            after = event.seq;
        }
        if page.events.len() < PAGE {
            return Ok(());
        }
    }
}
