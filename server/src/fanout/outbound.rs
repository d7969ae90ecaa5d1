//! The bounded outbound queue between everything that talks to a socket and its
//! writer task.
//!
//! [`Outbound::enqueue`] answers at once — queued, or the reason the connection is
//! closing — so fan-out never waits on a socket. The queue is bounded in bytes
//! (`--outbound-queue-bytes`) and in frames; overflowing either makes the client a
//! slow consumer, closed with 4008, and its memory is released instead of growing.
//!
//! This is the one place that decides a slow consumer ([`Outbound::overflowed`]:
//! the queue, a heartbeat ping, or a replay's live buffer that had no room) and which
//! closes are abortive ([`is_abortive`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use switchboard_protocol::CloseCode;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// What the writer task writes.
#[derive(Debug)]
pub enum Outgoing {
    /// A JSON text frame (shared bytes: one serialization serves every recipient).
    Text(Utf8Bytes),
    /// A WebSocket ping (heartbeat).
    Ping,
}

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotQueued {
    /// The queue overflowed: the connection is being closed with 4008.
    SlowConsumer,
    /// The connection is closing or closed.
    Closed,
}

/// Whether closing with `code` drops what is queued instead of sending it first: a
/// slow consumer or a silent peer is not reading, so waiting for it would only keep
/// its memory.
pub fn is_abortive(code: CloseCode) -> bool {
    matches!(code, CloseCode::SlowConsumer | CloseCode::HeartbeatTimeout)
}

/// Frames the queue holds at most whatever their size, so a flood of tiny frames is
/// bounded too.
const MIN_FRAME_CAPACITY: usize = 256;
/// Bytes per queued frame assumed when sizing the frame bound from the byte bound.
const TYPICAL_FRAME_BYTES: usize = 128;
/// Slots an empty queue keeps; after a burst the rest is given back. (Profile: a
/// tokio mpsc channel allocated a 32-slot block per connection up front, ~1 KiB of
/// every idle connection's memory; this queue allocates on first use and shrinks.)
const RETAINED_SLOTS: usize = 16;

/// The frames waiting for the writer. A plain deque under a mutex: the fan-out
/// pushes one frame, the writer takes a batch; neither holds the lock across I/O.
struct Queue {
    frames: VecDeque<Outgoing>,
    /// The writer stopped: nothing more is accepted.
    closed: bool,
}

/// The writer's end of the queue.
pub struct FrameReceiver {
    outbound: Arc<Outbound>,
}

/// Why [`FrameReceiver::try_recv`] returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    Empty,
    Closed,
}

impl FrameReceiver {
    /// The next frame, waiting for one; `None` once the receiver closed the queue.
    pub async fn recv(&mut self) -> Option<Outgoing> {
        loop {
            // Registered before looking, so a push in between still wakes us.
            let pushed = self.outbound.pushed.notified();
            match self.try_recv() {
                Ok(frame) => return Some(frame),
                Err(TryRecvError::Closed) => return None,
                Err(TryRecvError::Empty) => pushed.await,
            }
        }
    }

    /// The next frame if one is queued.
    pub fn try_recv(&self) -> Result<Outgoing, TryRecvError> {
        let mut queue = self.outbound.queue();
        match queue.frames.pop_front() {
            Some(frame) => {
                if queue.frames.is_empty() && queue.frames.capacity() > RETAINED_SLOTS {
                    queue.frames.shrink_to(RETAINED_SLOTS);
                }
                Ok(frame)
            }
            None if queue.closed => Err(TryRecvError::Closed),
            None => Err(TryRecvError::Empty),
        }
    }

    /// Accept nothing more; what is queued can still be taken (and dropped).
    pub fn close(&self) {
        self.outbound.queue().closed = true;
    }
}

/// The sending half: shared by the reader task, the registry's fan-out and the
/// heartbeat sweeper.
pub struct Outbound {
    queue: Mutex<Queue>,
    /// Signalled when a frame lands in the queue (a permit is kept if the writer is
    /// not waiting yet, so no wake-up is lost).
    pushed: Notify,
    /// Frames the queue holds at most.
    limit_frames: usize,
    queued_bytes: AtomicUsize,
    limit_bytes: usize,
    /// Orderly close: the writer sends what is queued, then the close frame.
    close: CancellationToken,
    /// Whether `close` was cancelled, read on every enqueue: the token's own check
    /// takes a lock (5 % of the gateway's CPU at 200k deliveries a second).
    closed: AtomicBool,
    /// Abortive close: the writer stops writing at once (the peer is not reading).
    abort: CancellationToken,
    /// The close code (0 until one is chosen; the first one chosen wins).
    close_code: AtomicU16,
    /// Signalled by the writer each time it takes frames off the queue.
    space: Notify,
    /// Milliseconds since the connection opened when a frame (or pong) last arrived.
    last_seen_ms: AtomicU64,
    opened: tokio::time::Instant,
}

/// The receiving half, owned by the writer task.
pub struct OutboundReceiver {
    pub(crate) rx: FrameReceiver,
    pub(crate) outbound: Arc<Outbound>,
}

impl Outbound {
    /// A queue holding at most `limit_bytes` of frames.
    pub fn new(limit_bytes: usize) -> (Arc<Outbound>, OutboundReceiver) {
        let capacity = (limit_bytes / TYPICAL_FRAME_BYTES).max(MIN_FRAME_CAPACITY);
        let outbound = Arc::new(Outbound {
            queue: Mutex::new(Queue {
                frames: VecDeque::new(),
                closed: false,
            }),
            pushed: Notify::new(),
            limit_frames: capacity,
            queued_bytes: AtomicUsize::new(0),
            limit_bytes,
            close: CancellationToken::new(),
            closed: AtomicBool::new(false),
            abort: CancellationToken::new(),
            close_code: AtomicU16::new(0),
            space: Notify::new(),
            last_seen_ms: AtomicU64::new(0),
            opened: tokio::time::Instant::now(),
        });
        (
            outbound.clone(),
            OutboundReceiver {
                rx: FrameReceiver {
                    outbound: outbound.clone(),
                },
                outbound: outbound.clone(),
            },
        )
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Append a frame unless the queue is closed or holds its maximum of frames.
    fn push(&self, frame: Outgoing) -> Result<(), NotQueued> {
        let mut queue = self.queue();
        if queue.closed {
            return Err(NotQueued::Closed);
        }
        if queue.frames.len() >= self.limit_frames {
            return Err(NotQueued::SlowConsumer);
        }
        let was_empty = queue.frames.is_empty();
        queue.frames.push_back(frame);
        drop(queue);
        // A non-empty queue already has a wake-up pending or a writer draining it.
        if was_empty {
            self.pushed.notify_one();
        }
        Ok(())
    }

    /// Queue a text frame without waiting. On overflow the connection is closed with
    /// 4008 and the frame dropped: the client resumes from history.
    pub fn enqueue(&self, frame: Utf8Bytes) -> Result<(), NotQueued> {
        if self.is_closing() {
            return Err(NotQueued::Closed);
        }
        let len = frame.len();
        let before = self.queued_bytes.fetch_add(len, Ordering::AcqRel);
        if before + len > self.limit_bytes {
            self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            self.overflowed();
            return Err(NotQueued::SlowConsumer);
        }
        match self.push(Outgoing::Text(frame)) {
            Ok(()) => Ok(()),
            Err(NotQueued::SlowConsumer) => {
                self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
                self.overflowed();
                Err(NotQueued::SlowConsumer)
            }
            Err(NotQueued::Closed) => {
                self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
                Err(NotQueued::Closed)
            }
        }
    }

    /// Queue a frame, waiting up to `patience` for room. Used for replays, which the
    /// client asked for and reads as fast as it can; live fan-out never waits.
    pub async fn enqueue_patiently(
        &self,
        frame: Utf8Bytes,
        patience: Duration,
    ) -> Result<(), NotQueued> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let room = self.space.notified();
            let fits = self.queued_bytes.load(Ordering::Acquire) + frame.len() <= self.limit_bytes
                && self.queue().frames.len() < self.limit_frames;
            if fits || self.is_closing() {
                return self.enqueue(frame);
            }
            if tokio::time::timeout_at(deadline, room).await.is_err() {
                return self.enqueue(frame);
            }
        }
    }

    /// Wait up to `patience` until at most half of the byte budget is queued (or the
    /// connection is closing); the bytes free then. A replay sizes its next page of
    /// history to this, so what it holds is counted against `--outbound-queue-bytes`.
    pub async fn room_for_replay(&self, patience: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let room = self.space.notified();
            let queued = self.queued_bytes.load(Ordering::Acquire);
            if queued <= self.limit_bytes / 2 || self.is_closing() {
                return self.limit_bytes.saturating_sub(queued);
            }
            if tokio::time::timeout_at(deadline, room).await.is_err() {
                return self
                    .limit_bytes
                    .saturating_sub(self.queued_bytes.load(Ordering::Acquire));
            }
        }
    }

    /// Queue a WebSocket ping (heartbeat). Overflow counts as a slow consumer.
    pub fn ping(&self) {
        if self.is_closing() {
            return;
        }
        if let Err(NotQueued::SlowConsumer) = self.push(Outgoing::Ping) {
            self.overflowed();
        }
    }

    /// The client does not read fast enough for what it is sent: close it with 4008
    /// (abortively: its queue is dropped at once). It resumes with `after_seq`.
    pub fn overflowed(&self) {
        self.close_with(CloseCode::SlowConsumer);
    }

    /// Close the connection with `code`. Slow consumers and dead peers are closed
    /// abortively (queued frames are dropped); every other code is orderly: what is
    /// queued (an `error`, a `goaway`) goes out first. The first code chosen wins.
    pub fn close_with(&self, code: CloseCode) {
        let _ =
            self.close_code
                .compare_exchange(0, code.code(), Ordering::AcqRel, Ordering::Acquire);
        if is_abortive(code) {
            self.abort.cancel();
        }
        self.closed.store(true, Ordering::Release);
        self.close.cancel();
    }

    /// The peer went away (closed, reset): stop without a close code of ours.
    pub fn peer_gone(&self) {
        self.abort.cancel();
        self.closed.store(true, Ordering::Release);
        self.close.cancel();
    }

    /// Whether the connection is closing (orderly or not).
    fn is_closing(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The close code chosen, if any.
    pub fn close_code(&self) -> Option<CloseCode> {
        CloseCode::from_code(self.close_code.load(Ordering::Acquire))
    }

    /// Resolves when an (orderly or abortive) close starts.
    pub async fn closing(&self) {
        self.close.cancelled().await
    }

    pub(crate) fn abort_token(&self) -> &CancellationToken {
        &self.abort
    }

    /// The writer took `bytes` off the queue.
    pub(crate) fn dequeued(&self, bytes: usize) {
        self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
        self.space.notify_one();
    }

    /// Bytes waiting to be written.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes.load(Ordering::Acquire)
    }

    /// Note that the peer sent something (a frame or a pong): it is alive.
    pub fn touch(&self) {
        let ms = self.opened.elapsed().as_millis() as u64;
        self.last_seen_ms.store(ms, Ordering::Release);
    }

    /// How long since the peer last sent anything.
    pub fn silent_for(&self) -> Duration {
        let now = self.opened.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_seen_ms.load(Ordering::Acquire)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflowing_the_byte_bound_closes_as_slow_consumer_and_frees_the_count() {
        let (out, _rx) = Outbound::new(1000);
        assert_eq!(out.enqueue(Utf8Bytes::from("x".repeat(600))), Ok(()));
        assert_eq!(
            out.enqueue(Utf8Bytes::from("y".repeat(600))),
            Err(NotQueued::SlowConsumer)
        );
        assert_eq!(out.close_code(), Some(CloseCode::SlowConsumer));
        assert_eq!(out.queued_bytes(), 600, "the refused frame is not counted");
        assert_eq!(out.enqueue(Utf8Bytes::from("z")), Err(NotQueued::Closed));
    }

    #[test]
    fn the_first_close_code_wins() {
        let (out, _rx) = Outbound::new(1000);
        out.close_with(CloseCode::Draining);
        out.close_with(CloseCode::SlowConsumer);
        assert_eq!(out.close_code(), Some(CloseCode::Draining));
    }

    #[tokio::test]
    async fn a_writer_waiting_on_an_empty_queue_wakes_for_the_next_frame() {
        let (out, mut rx) = Outbound::new(1000);
        let waiting = tokio::spawn(async move { rx.rx.recv().await.map(|f| format!("{f:?}")) });
        tokio::task::yield_now().await;
        out.enqueue(Utf8Bytes::from("hello")).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the writer woke up")
            .unwrap();
        assert!(got.is_some_and(|f| f.contains("hello")));
    }

    #[test]
    fn a_flood_of_tiny_frames_is_bounded_by_count_too() {
        let (out, rx) = Outbound::new(4096);
        let mut queued = 0;
        while out.enqueue(Utf8Bytes::from("x")).is_ok() {
            queued += 1;
        }
        assert_eq!(queued, MIN_FRAME_CAPACITY);
        assert_eq!(out.close_code(), Some(CloseCode::SlowConsumer));
        let mut drained = 0;
        while rx.rx.try_recv().is_ok() {
            drained += 1;
        }
        assert_eq!(drained, MIN_FRAME_CAPACITY);
        rx.rx.close();
        assert_eq!(rx.rx.try_recv().unwrap_err(), TryRecvError::Closed);
    }

    #[tokio::test]
    async fn a_patient_enqueue_waits_for_the_writer_to_make_room() {
        let (out, mut rx) = Outbound::new(1000);
        out.enqueue(Utf8Bytes::from("x".repeat(900))).unwrap();
        let waiting = {
            let out = out.clone();
            tokio::spawn(async move {
                out.enqueue_patiently(Utf8Bytes::from("y".repeat(900)), Duration::from_secs(5))
                    .await
            })
        };
        tokio::task::yield_now().await;
        let Some(Outgoing::Text(first)) = rx.rx.recv().await else {
            panic!("expected the first frame")
        };
        out.dequeued(first.len());
        assert_eq!(waiting.await.unwrap(), Ok(()));
    }
}
