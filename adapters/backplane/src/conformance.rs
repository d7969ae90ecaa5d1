//! The conformance suite: one function per property of the [`Backplane`] contract, run
//! by every implementation (memory, Redis, NATS) against itself.
//!
//! # Usage
//!
//! This module exists with the crate's `conformance` feature, which an adapter crate
//! turns on for its tests only:
//!
//! ```toml
//! [dev-dependencies]
//! switchboard-backplane = { workspace = true, features = ["conformance"] }
//! ```
//!
//! It implements [`BackplaneFactory`] and expands [`conformance_tests!`](crate::conformance_tests)
//! (exported at the crate root) in a module of its tests, e.g. `tests/<crate>/conformance.rs`:
//!
//! ```ignore
//! use std::sync::Arc;
//! use async_trait::async_trait;
//! use switchboard_backplane::conformance::BackplaneFactory;
//! use switchboard_backplane::{Backplane, Retention};
//!
//! struct Factory;
//!
//! #[async_trait]
//! impl BackplaneFactory for Factory {
//!     async fn make(&self, retention: Retention) -> Arc<dyn Backplane> {
//!         // A fresh backplane, isolated from every other one (e.g. a new key prefix).
//!         Arc::new(MyBackplane::connect(/* … */, retention).await.unwrap())
//!     }
//! }
//!
//! switchboard_backplane::conformance_tests!(Factory);
//! ```
//!
//! The macro expands to one `#[tokio::test]` per property (multi-threaded runtime, two
//! workers), each under a [`TEST_TIMEOUT`] so a hang fails instead of blocking CI. The
//! calling crate needs `tokio` (with `macros` and `rt-multi-thread`) as a
//! dev-dependency. To run one property by hand, call its function with a factory.
//!
//! # What a factory must provide
//!
//! - Every [`BackplaneFactory::make`] call returns an **isolated** backplane: streams and
//!   record namespaces of one call never show up in another. Tests also use unique
//!   stream names and namespaces, so a shared server is fine as long as the factory
//!   gives each call a fresh key prefix.
//! - Subscriptions with a capacity well below [`SLOW_SUBSCRIBER_APPENDS`] (the default
//!   4096 is fine), so [`slow_subscriber_ends_as_lagged`] can overflow one.
//! - For adapters that span processes, [`BackplaneFactory::make_replicas`] returns
//!   separate clients onto one shared backplane, as separate gateway replicas would
//!   hold; [`replicas_share_streams_and_records`] then checks what crosses replicas.
//! - [`BackplaneFactory::raises_seq`] returns false for a backplane whose
//!   `ensure_seq_above` cannot raise a stream's `seq` (NATS).
//!
//! Retention is exact in this suite: with `max_events = 5` exactly the newest five
//! events are returned (an approximate trim such as Redis `MAXLEN ~` fails), and an
//! event older than `max_age` is never returned by `read`, even before the next append.
//!
//! This is test-support code compiled into the library so other crates can call it;
//! it panics on any violation, hence the `unwrap`s.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::json;
use switchboard_protocol::{Role, Source, TurnStatus, Usage};
use switchboard_testkit::eventually;

use crate::{
    Backplane, Event, EventBody, RecordKey, Retention, Seq, StreamName, Subscription,
    SubscriptionEnded,
};

mod stream_lifecycle;
pub use stream_lifecycle::{
    delete_stream_forgets_the_stream, ensure_seq_above_never_lowers,
    ensure_seq_above_raises_the_seq,
};

/// How long one conformance test may run before it fails as hung.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(20);

/// How many events [`slow_subscriber_ends_as_lagged`] appends to a subscriber that never
/// reads. A factory's subscription capacity must be well below this.
pub const SLOW_SUBSCRIBER_APPENDS: usize = 20_000;

/// How long a test waits for one live event before failing.
const LIVE_WAIT: Duration = Duration::from_secs(10);

/// A `limit` large enough to read a whole test stream.
const READ_ALL: usize = 100_000;

/// Slack for clocks when checking that something did not expire too early.
const CLOCK_SLACK: Duration = Duration::from_millis(50);

/// Makes backplanes for the conformance suite.
#[async_trait]
pub trait BackplaneFactory: Send + Sync {
    /// A fresh backplane keeping `retention`, isolated from every other one this
    /// factory made. Panics if it cannot (this is test support).
    async fn make(&self, retention: Retention) -> Arc<dyn Backplane>;

    /// `replicas` handles onto **one** shared backplane, as that many gateway replicas
    /// would hold: an append through one is seen by subscribers of all. The default
    /// hands out the same handle `replicas` times, which is right for a backplane whose
    /// scope is one replica (memory). Adapters that span processes override it with
    /// separate clients (connections) on one fresh key prefix.
    async fn make_replicas(
        &self,
        retention: Retention,
        replicas: usize,
    ) -> Vec<Arc<dyn Backplane>> {
        let backplane = self.make(retention).await;
        vec![backplane; replicas]
    }

    /// Whether `ensure_seq_above` can raise a stream's `seq` on this backplane (memory
    /// and Redis can; NATS cannot: its `seq` is one sequence shared by every stream).
    /// [`ensure_seq_above_raises_the_seq`] checks the raise where this is true, and the
    /// refusal of a `seq` out of reach where it is false.
    fn raises_seq(&self) -> bool {
        true
    }
}

/// Runs one conformance test under [`TEST_TIMEOUT`], failing with the test's name if it
/// hangs. The [`conformance_tests!`](crate::conformance_tests) macro wraps every test in it.
pub async fn run<F: Future<Output = ()>>(name: &str, test: F) {
    if tokio::time::timeout(TEST_TIMEOUT, test).await.is_err() {
        panic!("conformance test `{name}` did not finish within {TEST_TIMEOUT:?}");
    }
}

/// Expands to one `#[tokio::test]` per conformance property, each calling the function
/// of [`conformance`](crate::conformance) with the same name on a value of
/// `$factory` (an expression evaluated once per test, whose type implements
/// [`BackplaneFactory`](crate::conformance::BackplaneFactory)), under
/// [`TEST_TIMEOUT`](crate::conformance::TEST_TIMEOUT).
#[macro_export]
macro_rules! conformance_tests {
    (@each ($factory:expr) $($name:ident)*) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let factory = $factory;
                $crate::conformance::run(
                    ::std::stringify!($name),
                    $crate::conformance::$name(&factory),
                )
                .await;
            }
        )*
    };
    ($factory:expr $(,)?) => {
        $crate::conformance_tests!(@each ($factory)
            ping_answers
            seq_strictly_increasing
            order_is_kept_under_concurrency
            streams_are_independent
            empty_stream_reads_empty
            read_with_zero_limit_reports_the_head
            history_retention_by_count
            history_retention_by_age
            read_paging_and_after
            subscribe_then_read_has_no_gap_and_no_duplicate
            subscription_only_sees_events_after_subscribe
            dropped_subscription_is_forgotten
            slow_subscriber_ends_as_lagged
            event_bodies_survive_the_round_trip
            trace_context_travels_with_the_event
            replicas_share_streams_and_records
            records_put_get_delete_list
            record_create_is_exclusive
            record_replace_is_compare_and_set
            record_ttl_expires
            record_namespaces_are_separate
            record_list_sees_records_rewritten_meanwhile
            delete_stream_forgets_the_stream
            ensure_seq_above_never_lowers
            ensure_seq_above_raises_the_seq
        );
    };
}

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

/// A name no other test (in this process or, by time and pid, another) uses.
fn unique(label: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() % 1_000_000_000_000)
        .unwrap_or(0);
    format!("{label}-{}-{nanos}-{n}", std::process::id())
}

/// A fresh session stream.
fn stream(label: &str) -> StreamName {
    StreamName::session(&unique(label)).unwrap()
}

/// Retention that removes nothing within a test.
fn roomy() -> Retention {
    Retention {
        max_events: 10_000,
        max_age: Duration::from_secs(3600),
    }
}

/// A small body carrying `i`.
fn delta(i: usize) -> EventBody {
    EventBody::TurnDelta {
        turn_id: "t_conformance".into(),
        text: i.to_string(),
    }
}

/// A small body carrying a tag (which writer, which stream) and `i`.
fn tagged(tag: &str, i: usize) -> EventBody {
    EventBody::Custom {
        name: tag.into(),
        data: json!(i),
        publisher: None,
        durable: false,
    }
}

fn seqs(events: &[Arc<Event>]) -> Vec<Seq> {
    events.iter().map(|e| e.seq).collect()
}

#[track_caller]
fn assert_strictly_increasing(seqs: &[Seq], what: &str) {
    for pair in seqs.windows(2) {
        assert!(
            pair[0] < pair[1],
            "{what}: seq {} followed by {} (must strictly increase): {seqs:?}",
            pair[0],
            pair[1]
        );
    }
}

/// The next live event, failing the test if none comes within [`LIVE_WAIT`] or the
/// subscription ends.
async fn next_live(sub: &mut Subscription, what: &str) -> Arc<Event> {
    match tokio::time::timeout(LIVE_WAIT, sub.next()).await {
        Ok(Ok(event)) => event,
        Ok(Err(reason)) => panic!("{what}: subscription ended early: {reason:?}"),
        Err(_) => panic!("{what}: no live event within {LIVE_WAIT:?}"),
    }
}

/// The next `n` live events.
async fn take_live(sub: &mut Subscription, n: usize, what: &str) -> Vec<Arc<Event>> {
    let mut events = Vec::with_capacity(n);
    for _ in 0..n {
        events.push(next_live(sub, what).await);
    }
    events
}

/// Live events up to and including the first one that matches `last`.
async fn live_until(
    sub: &mut Subscription,
    what: &str,
    last: impl Fn(&Event) -> bool,
) -> Vec<Arc<Event>> {
    let mut events = Vec::new();
    loop {
        let event = next_live(sub, what).await;
        let done = last(&event);
        events.push(event);
        if done {
            return events;
        }
    }
}

async fn append_all(
    bp: &dyn Backplane,
    stream: &StreamName,
    bodies: impl IntoIterator<Item = EventBody>,
) -> Vec<Arc<Event>> {
    let mut events = Vec::new();
    for body in bodies {
        events.push(bp.append(stream, body).await.unwrap());
    }
    events
}

fn sorted(mut list: Vec<(String, Bytes)>) -> Vec<(String, Bytes)> {
    list.sort();
    list
}

fn bytes(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

// ---------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------

/// The backplane answers `ping` while it is up, and has a name for logs and metrics.
pub async fn ping_answers(factory: &dyn BackplaneFactory) {
    let bp = factory.make(roomy()).await;
    bp.ping().await.unwrap();
    assert!(!bp.name().is_empty());
}

/// `seq` strictly increases across appends to one stream, and `read` returns exactly
/// the events `append` returned: same `seq`, same `ts`, same body.
pub async fn seq_strictly_increasing(factory: &dyn BackplaneFactory) {
    let bp = factory.make(roomy()).await;
    let s = stream("seq");
    let appended = append_all(&*bp, &s, (0..100).map(delta)).await;
    assert_strictly_increasing(&seqs(&appended), "append");
    assert!(appended[0].seq > 0, "seq 0 means 'before the first event'");
    for (i, event) in appended.iter().enumerate() {
        assert_eq!(event.body, delta(i), "append returns the body it stored");
        assert!(event.ts > 0, "the backplane assigns ts");
    }

    let replay = bp.read(&s, None, READ_ALL).await.unwrap();
    assert_eq!(replay.events, appended);
    assert_eq!(replay.last_seq, appended[99].seq);
    assert!(!replay.trimmed);
}

/// Concurrent appends to one stream are totally ordered: each writer's own appends get
/// increasing `seq`, no two appends share a `seq`, a subscriber receives every event in
/// `seq` order, and history holds the same events in the same order.
pub async fn order_is_kept_under_concurrency(factory: &dyn BackplaneFactory) {
    const WRITERS: usize = 4;
    const PER_WRITER: usize = 50;
    let bp = factory.make(roomy()).await;
    let s = stream("order");
    let mut sub = bp.subscribe(&s).await.unwrap();

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (bp, s) = (bp.clone(), s.clone());
            tokio::spawn(async move {
                let mut out = Vec::with_capacity(PER_WRITER);
                for i in 0..PER_WRITER {
                    out.push(bp.append(&s, tagged(&format!("w{w}"), i)).await.unwrap());
                    tokio::task::yield_now().await;
                }
                out
            })
        })
        .collect();
    let mut appended = Vec::new();
    for writer in writers {
        let out = writer.await.unwrap();
        assert_strictly_increasing(&seqs(&out), "one writer's appends");
        appended.extend(out);
    }
    appended.sort_by_key(|e| e.seq);
    assert_strictly_increasing(&seqs(&appended), "all appends (a seq given twice?)");

    let live = take_live(&mut sub, WRITERS * PER_WRITER, "live under concurrency").await;
    assert_eq!(
        seqs(&live),
        seqs(&appended),
        "live delivery is in seq order, complete"
    );
    assert_eq!(live, appended, "live events are the appended events");

    let replay = bp.read(&s, None, READ_ALL).await.unwrap();
    assert_eq!(replay.events, live, "history has the live order");
}

/// Streams are independent: events appended to one stream never appear in another's
/// history or subscription, including streams of other kinds with the same id
/// (`session:x`, `user:x`, `org:x`).
pub async fn streams_are_independent(factory: &dyn BackplaneFactory) {
    let bp = factory.make(roomy()).await;
    let id = unique("indep");
    let streams = [
        StreamName::session(&id).unwrap(),
        StreamName::user(&id).unwrap(),
        StreamName::org(&id).unwrap(),
        stream("indep"),
    ];
    let mut subs = Vec::new();
    for s in &streams {
        subs.push(bp.subscribe(s).await.unwrap());
    }
    // Stream k gets 3 * k events, interleaved with the others' (the last gets none).
    let counts = [9, 6, 3, 0];
    for i in 0..9 {
        for (k, s) in streams.iter().enumerate() {
            if i < counts[k] {
                bp.append(s, tagged(&format!("s{k}"), i)).await.unwrap();
            }
        }
    }
    // A marker closes each stream, so "nothing foreign arrived" is checked without
    // waiting for an absence.
    for s in &streams {
        bp.append(s, tagged("end", 0)).await.unwrap();
    }

    for (k, (s, sub)) in streams.iter().zip(&mut subs).enumerate() {
        let expected: Vec<EventBody> = (0..counts[k])
            .map(|i| tagged(&format!("s{k}"), i))
            .chain([tagged("end", 0)])
            .collect();
        let live = live_until(sub, s.as_str(), |e| e.body == tagged("end", 0)).await;
        let live: Vec<EventBody> = live.iter().map(|e| e.body.clone()).collect();
        assert_eq!(live, expected, "live events of {s}");
        let replay = bp.read(s, None, READ_ALL).await.unwrap();
        let history: Vec<EventBody> = replay.events.iter().map(|e| e.body.clone()).collect();
        assert_eq!(history, expected, "history of {s}");
    }
}

/// A stream never appended to reads as empty, with `last_seq` 0 and nothing trimmed,
/// whatever `after` is.
pub async fn empty_stream_reads_empty(factory: &dyn BackplaneFactory) {
    let bp = factory.make(roomy()).await;
    let s = stream("empty");
    for after in [None, Some(0), Some(5)] {
        let replay = bp.read(&s, after, READ_ALL).await.unwrap();
        assert!(replay.events.is_empty(), "after {after:?}");
        assert_eq!(replay.last_seq, 0, "after {after:?}");
        assert!(!replay.trimmed, "after {after:?}");
    }
    // Subscribing alone does not make history either.
    let _sub = bp.subscribe(&s).await.unwrap();
    let replay = bp.read(&s, None, READ_ALL).await.unwrap();
    assert!(replay.events.is_empty());
    assert_eq!(replay.last_seq, 0);
    assert!(!replay.trimmed);
}

/// `read` with `limit` 0 returns no events but still the stream's newest `seq`: the
/// gateway reads the head this way when it first subscribes to a stream, so a later
/// resubscribe knows where to fill the gap from.
pub async fn read_with_zero_limit_reports_the_head(factory: &dyn BackplaneFactory) {
    let bp = factory.make(roomy()).await;
    let s = stream("head");
    let mut last = 0;
    for i in 0..3 {
        last = bp.append(&s, delta(i)).await.unwrap().seq;
    }
    let head = bp.read(&s, None, 0).await.unwrap();
    assert!(head.events.is_empty());
    assert_eq!(head.last_seq, last);
    assert!(!head.trimmed);
}

/// Count retention keeps exactly the newest `max_events`; `trimmed` is true exactly
/// when an event after `after` was removed; `last_seq` is the newest `seq` either way.
pub async fn history_retention_by_count(factory: &dyn BackplaneFactory) {
    let bp = factory
        .make(Retention {
            max_events: 5,
            max_age: Duration::from_secs(3600),
        })
        .await;
    let s = stream("count");
    let appended = append_all(&*bp, &s, (0..12).map(delta)).await;
    let seq_of = |nth: usize| appended[nth - 1].seq; // the nth append, 1-based
    let newest_five = appended[7..].to_vec(); // appends 8..=12

    let replay = bp.read(&s, None, READ_ALL).await.unwrap();
    assert_eq!(replay.events, newest_five, "the newest max_events are kept");
    assert_eq!(replay.last_seq, seq_of(12));
    assert!(
        replay.trimmed,
        "read(None) asked for events 1..=7, which are gone"
    );

    let replay = bp.read(&s, Some(seq_of(1)), READ_ALL).await.unwrap();
    assert_eq!(replay.events, newest_five);
    assert!(replay.trimmed, "events 2..=7 after `after` are gone");

    let replay = bp.read(&s, Some(seq_of(6)), READ_ALL).await.unwrap();
    assert_eq!(replay.events, newest_five);
    assert!(replay.trimmed, "event 7 after `after` is gone");

    let replay = bp.read(&s, Some(seq_of(7)), READ_ALL).await.unwrap();
    assert_eq!(replay.events, newest_five);
    assert!(!replay.trimmed, "everything after the 7th is retained");
    assert_eq!(replay.last_seq, seq_of(12));

    let replay = bp.read(&s, Some(seq_of(10)), READ_ALL).await.unwrap();
    assert_eq!(replay.events, appended[10..].to_vec());
    assert!(!replay.trimmed);

    let replay = bp.read(&s, None, 2).await.unwrap();
    assert_eq!(
        replay.events,
        appended[7..9].to_vec(),
        "limit applies oldest first"
    );
    assert!(replay.trimmed);
}

/// Age retention: `read` never returns an event older than `max_age`, even when no
/// append happened since it expired, and reports the loss as `trimmed`; the stream's
/// `seq` keeps increasing after its whole history expired.
pub async fn history_retention_by_age(factory: &dyn BackplaneFactory) {
    let max_age = Duration::from_millis(300);
    let bp = factory
        .make(Retention {
            max_events: 1000,
            max_age,
        })
        .await;
    let s = stream("age");
    let started = Instant::now();
    let old = append_all(&*bp, &s, (0..3).map(delta)).await;
    let young = bp.read(&s, None, READ_ALL).await.unwrap();
    assert_eq!(
        young.events, old,
        "events younger than max_age are retained"
    );
    assert!(!young.trimmed);

    // Wait for the backplane to expire them by itself: poll, bounded, rather than
    // sleep a guessed time. Oldest expire first, so every poll sees a suffix.
    let expired = eventually(max_age + Duration::from_millis(1500), "age expiry", || {
        let (bp, s, old) = (&bp, &s, &old);
        async move {
            let replay = bp.read(s, None, READ_ALL).await.unwrap();
            assert!(
                old.ends_with(&replay.events),
                "expiry removes the oldest first: {:?}",
                seqs(&replay.events)
            );
            replay.events.is_empty().then_some(replay)
        }
    })
    .await;
    assert!(
        started.elapsed() + CLOCK_SLACK >= max_age,
        "events expired after {:?}, before max_age {max_age:?}",
        started.elapsed()
    );
    assert!(expired.trimmed, "the expired events were asked for");
    assert_eq!(expired.last_seq, old[2].seq, "last_seq survives expiry");

    let new = bp.append(&s, delta(3)).await.unwrap();
    assert!(new.seq > old[2].seq, "seq keeps increasing after expiry");
    let replay = bp.read(&s, None, READ_ALL).await.unwrap();
    assert_eq!(replay.events, vec![new.clone()]);
    assert!(replay.trimmed);
    assert_eq!(replay.last_seq, new.seq);

    let replay = bp.read(&s, Some(old[2].seq), READ_ALL).await.unwrap();
    assert_eq!(replay.events, vec![new]);
    assert!(!replay.trimmed, "nothing after the old events was removed");
}

/// `read(after, limit)` pages through history oldest first with no gap and no
/// duplicate; `after = last_seq` (or beyond) reads nothing and nothing trimmed;
/// `after = 0` is the same as no `after`.
pub async fn read_paging_and_after(factory: &dyn BackplaneFactory) {
    let bp = factory.make(roomy()).await;
    let s = stream("paging");
    let appended = append_all(&*bp, &s, (0..25).map(delta)).await;
    let last = appended[24].seq;

    let mut paged = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = bp.read(&s, after, 7).await.unwrap();
        assert!(page.events.len() <= 7, "limit is respected");
        assert_eq!(page.last_seq, last);
        assert!(!page.trimmed);
        let Some(tail) = page.events.last() else {
            break;
        };
        after = Some(tail.seq);
        paged.extend(page.events);
        pages += 1;
        assert!(pages <= 5, "paging does not terminate");
    }
    assert_eq!(
        paged, appended,
        "pages join up with no gap and no duplicate"
    );
    assert_eq!(pages, 4);

    let replay = bp.read(&s, Some(appended[9].seq), 1).await.unwrap();
    assert_eq!(replay.events, vec![appended[10].clone()]);

    assert_eq!(
        bp.read(&s, Some(0), READ_ALL).await.unwrap().events,
        appended,
        "after 0 is 'from the start'"
    );

    for beyond in [last, last + 1000] {
        let replay = bp.read(&s, Some(beyond), READ_ALL).await.unwrap();
        assert!(replay.events.is_empty(), "after {beyond}");
        assert!(!replay.trimmed, "after {beyond}: nothing was removed");
        assert_eq!(replay.last_seq, last);
    }
}

/// THE seam. A client resumes by subscribing, then reading history, then dropping live
/// events whose `seq` the replay already delivered. While a writer keeps appending,
/// that must yield every appended event exactly once, in order: nothing falls between
/// `subscribe` and `read`, nothing is delivered twice. Several rounds move the seam.
pub async fn subscribe_then_read_has_no_gap_and_no_duplicate(factory: &dyn BackplaneFactory) {
    const ROUNDS: usize = 5;
    const N: usize = 200;
    let bp = factory.make(roomy()).await;
    for round in 0..ROUNDS {
        let s = stream("seam");
        // Where the reader joins: from a quarter to three quarters of the way.
        let join_at = N / 4 + round * N / (2 * ROUNDS);
        let (joined_tx, joined_rx) = tokio::sync::oneshot::channel();
        let writer = {
            let (bp, s) = (bp.clone(), s.clone());
            tokio::spawn(async move {
                let mut joined_tx = Some(joined_tx);
                let mut appended = Vec::with_capacity(N);
                for i in 0..N {
                    appended.push(bp.append(&s, delta(i)).await.unwrap().seq);
                    if i == join_at
                        && let Some(tx) = joined_tx.take()
                    {
                        let _ = tx.send(());
                    }
                    tokio::task::yield_now().await;
                }
                appended
            })
        };
        let _ = joined_rx.await; // if the writer failed, `writer.await` says why

        let mut sub = bp.subscribe(&s).await.unwrap();
        let replay = bp.read(&s, None, READ_ALL).await.unwrap();
        let appended = writer.await.unwrap();
        assert!(!replay.trimmed);
        assert_strictly_increasing(&seqs(&replay.events), "replay");

        let last_replayed = replay.events.last().map_or(0, |e| e.seq);
        let final_seq = appended[N - 1];
        let mut resumed = seqs(&replay.events);
        if last_replayed < final_seq {
            let what = format!("round {round}: live after subscribe");
            let live = live_until(&mut sub, &what, |e| e.seq >= final_seq).await;
            assert_strictly_increasing(&seqs(&live), &what);
            resumed.extend(seqs(&live).into_iter().filter(|&seq| seq > last_replayed));
        }
        assert_eq!(
            resumed,
            appended,
            "round {round}: replay ({} events) then live must be every appended seq once, in order",
            replay.events.len()
        );
    }
}

/// A subscription delivers only events appended after `subscribe` returned: history is
/// for `read`, not replayed live.
pub async fn subscription_only_sees_events_after_subscribe(factory: &dyn BackplaneFactory) {
    let bp = factory.make(roomy()).await;
    let s = stream("after");
    append_all(&*bp, &s, (0..3).map(|i| tagged("before", i))).await;
    let mut sub = bp.subscribe(&s).await.unwrap();
    let after = append_all(&*bp, &s, (0..3).map(|i| tagged("after", i))).await;
    let live = take_live(&mut sub, 3, "live after subscribe").await;
    assert_eq!(
        live, after,
        "the first live event is the first one after subscribe"
    );
}

/// Dropping a [`Subscription`] unsubscribes without harm: later appends succeed, other
/// subscriptions of the stream keep receiving, and a new subscription works.
pub async fn dropped_subscription_is_forgotten(factory: &dyn BackplaneFactory) {
    let bp = factory.make(roomy()).await;
    let s = stream("dropped");
    drop(bp.subscribe(&s).await.unwrap());
    append_all(&*bp, &s, (0..5).map(delta)).await;
    for _ in 0..20 {
        drop(bp.subscribe(&s).await.unwrap());
    }

    let mut kept = bp.subscribe(&s).await.unwrap();
    let mut short_lived = bp.subscribe(&s).await.unwrap();
    let first = bp.append(&s, delta(5)).await.unwrap();
    assert_eq!(next_live(&mut short_lived, "short-lived").await, first);
    drop(short_lived);
    let second = bp.append(&s, delta(6)).await.unwrap();
    assert_eq!(
        take_live(&mut kept, 2, "kept").await,
        vec![first, second],
        "a dropped subscription does not disturb another"
    );

    let mut fresh = bp.subscribe(&s).await.unwrap();
    let third = bp.append(&s, delta(7)).await.unwrap();
    assert_eq!(next_live(&mut fresh, "fresh").await, third);
    assert_eq!(next_live(&mut kept, "kept").await, third);
}

/// A subscriber that does not read never blocks appends. Once its queue overflows it
/// receives what was queued (a gap-free prefix of the appended events), then
/// `Err(Lagged)` and stays ended; it is never handed a stream with a silent hole. A new
/// subscription works afterwards.
pub async fn slow_subscriber_ends_as_lagged(factory: &dyn BackplaneFactory) {
    let bp = factory
        .make(Retention {
            max_events: 100,
            max_age: Duration::from_secs(3600),
        })
        .await;
    let s = stream("slow");
    let mut sub = bp.subscribe(&s).await.unwrap();
    // Appends complete although nobody reads `sub` (the test timeout catches a block).
    let mut appended = Vec::with_capacity(SLOW_SUBSCRIBER_APPENDS);
    for i in 0..SLOW_SUBSCRIBER_APPENDS {
        appended.push(bp.append(&s, delta(i)).await.unwrap().seq);
    }

    let mut received = Vec::new();
    let reason = loop {
        match tokio::time::timeout(LIVE_WAIT, sub.next()).await {
            Ok(Ok(event)) => received.push(event.seq),
            Ok(Err(reason)) => break reason,
            Err(_) => panic!(
                "a subscriber {SLOW_SUBSCRIBER_APPENDS} events behind neither got events nor \
                 ended within {LIVE_WAIT:?} (received {} so far)",
                received.len()
            ),
        }
    };
    assert_eq!(reason, SubscriptionEnded::Lagged);
    assert!(
        !received.is_empty(),
        "the events queued before the overflow are delivered"
    );
    assert!(
        received.len() < SLOW_SUBSCRIBER_APPENDS,
        "the subscription must end before it got everything (capacity too large?)"
    );
    assert_eq!(
        received,
        appended[..received.len()],
        "what a lagged subscriber got is a gap-free prefix"
    );
    let again = tokio::time::timeout(LIVE_WAIT, sub.next()).await.unwrap();
    assert_eq!(again.unwrap_err(), SubscriptionEnded::Lagged, "stays ended");

    // The documented recovery: subscribe again, fill the gap from history.
    let mut resubscribed = bp.subscribe(&s).await.unwrap();
    let next = bp.append(&s, delta(SLOW_SUBSCRIBER_APPENDS)).await.unwrap();
    assert_eq!(next_live(&mut resubscribed, "resubscribed").await, next);
    let gap = bp
        .read(&s, received.last().copied(), READ_ALL)
        .await
        .unwrap();
    assert_eq!(gap.last_seq, next.seq);
    assert!(gap.trimmed, "retention (100) could not keep the whole gap");
    assert_eq!(gap.events.len(), 100);
}

fn every_body() -> Vec<EventBody> {
    vec![
        EventBody::Message {
            message_id: "m_1".into(),
            role: Role::User,
            text: "hello".into(),
            author: None,
        },
        EventBody::Message {
            message_id: "m_2".into(),
            role: Role::Assistant,
            text: "multi\nline \"quoted\" \\ back\tslash".into(),
            author: Some("bot".into()),
        },
        EventBody::Message {
            message_id: "m_3".into(),
            role: Role::Operator,
            text: "héllo wörld — 你好 🚀 \u{0} \u{202e}".into(),
            author: Some("Zoë".into()),
        },
        EventBody::Message {
            message_id: "m_4".into(),
            role: Role::System,
            text: String::new(),
            author: None,
        },
        EventBody::TurnStart {
            turn_id: "t_1".into(),
            reply_to: "m_1".into(),
            assistant: None,
        },
        EventBody::TurnDelta {
            turn_id: "t_1".into(),
            text: "Hel".into(),
        },
        EventBody::ToolRequest {
            turn_id: "t_1".into(),
            call_id: "call_1".into(),
            tool: "search".into(),
            arguments: json!({"query": "refund policy", "limit": 5, "filters": {"tags": ["a", "b"], "since": null}}),
            requires_approval: false,
        },
        EventBody::ToolResult {
            turn_id: "t_1".into(),
            call_id: "call_1".into(),
            ok: true,
            output: Some(json!([{"doc_id": "d1", "score": 0.5}])),
            decided_by: Some("ann".into()),
        },
        EventBody::ToolResult {
            turn_id: "t_1".into(),
            call_id: "call_2".into(),
            ok: false,
            output: None,
            decided_by: None,
        },
        EventBody::TurnEnd {
            turn_id: "t_1".into(),
            status: TurnStatus::Completed,
            text: "Hello!".into(),
            usage: Some(Usage {
                prompt_tokens: 12,
                completion_tokens: 3,
                total_tokens: 15,
            }),
            sources: Some(vec![
                Source {
                    doc_id: "d1".into(),
                    title: "Refunds".into(),
                    uri: Some("https://example.com/refunds?a=1&b=2".into()),
                },
                Source {
                    doc_id: "d2".into(),
                    title: "Politique de remboursement".into(),
                    uri: None,
                },
            ]),
            error: None,
            code: None,
            retrying: None,
            assistant: None,
        },
        EventBody::TurnEnd {
            turn_id: "t_2".into(),
            status: TurnStatus::Cancelled,
            text: "Hel".into(),
            usage: None,
            sources: None,
            error: None,
            code: None,
            retrying: None,
            assistant: None,
        },
        EventBody::TurnEnd {
            turn_id: "t_3".into(),
            status: TurnStatus::Failed,
            text: String::new(),
            usage: None,
            sources: Some(vec![]),
            error: Some("model timed out".into()),
            code: None,
            retrying: None,
            assistant: None,
        },
        EventBody::Custom {
            name: "order.updated".into(),
            data: json!({
                "nested": {"deep": [1, -2, 3.5, true, null, "ünï\u{0}cødé 🎉", {"k": []}]},
                "big": u64::MAX,
                "small": i64::MIN,
                "empty_object": {},
                "empty_array": [],
                "quote\"key": "line\nbreak",
            }),
            publisher: Some("billing".into()),
            durable: true,
        },
        EventBody::Custom {
            name: "nothing".into(),
            data: json!(null),
            publisher: None,
            durable: false,
        },
        EventBody::Custom {
            name: "scalar".into(),
            data: json!("just a string"),
            publisher: None,
            durable: false,
        },
    ]
}

/// Every kind of event body, including nested JSON, empty strings and non-ASCII text,
/// comes back equal from `append`, `read` and a subscription.
pub async fn event_bodies_survive_the_round_trip(factory: &dyn BackplaneFactory) {
    let bp = factory.make(roomy()).await;
    let s = stream("bodies");
    let mut sub = bp.subscribe(&s).await.unwrap();
    let bodies = every_body();
    let appended = append_all(&*bp, &s, bodies.clone()).await;
    let returned: Vec<EventBody> = appended.iter().map(|e| e.body.clone()).collect();
    assert_eq!(returned, bodies, "append returns the stored bodies");

    let live = take_live(&mut sub, bodies.len(), "round trip").await;
    assert_eq!(live, appended, "subscribers get the same events");
    let replay = bp.read(&s, None, READ_ALL).await.unwrap();
    assert_eq!(replay.events, appended, "history holds the same events");
}

/// The trace context given to `append_traced` comes back with the event from `append`,
/// from another replica's subscription and from its `read`; an event appended without
/// one has none.
pub async fn trace_context_travels_with_the_event(factory: &dyn BackplaneFactory) {
    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let replicas = factory.make_replicas(roomy(), 2).await;
    let (a, b) = (&replicas[0], &replicas[1]);
    let s = stream("traced");
    let mut sub = b.subscribe(&s).await.unwrap();
    let traced = a
        .append_traced(&s, tagged("traced", 0), Some(TRACEPARENT.into()))
        .await
        .unwrap();
    let plain = a.append(&s, tagged("plain", 1)).await.unwrap();
    assert_eq!(traced.traceparent.as_deref(), Some(TRACEPARENT));
    assert_eq!(traced.body, tagged("traced", 0));
    assert_eq!(plain.traceparent, None);
    let appended = vec![traced, plain];

    let live = take_live(&mut sub, 2, "traced").await;
    assert_eq!(
        live, appended,
        "the other replica's subscriber gets the context"
    );
    let replay = b.read(&s, None, READ_ALL).await.unwrap();
    assert_eq!(replay.events, appended, "history keeps the context");
}

/// Replicas of one backplane share it: appends through any replica are ordered into
/// one `seq` sequence that every replica's subscribers and `read` see identically, and
/// records written through one replica are read, raced and deleted through another.
pub async fn replicas_share_streams_and_records(factory: &dyn BackplaneFactory) {
    const PER_REPLICA: usize = 30;
    let replicas = factory.make_replicas(roomy(), 2).await;
    assert_eq!(replicas.len(), 2, "make_replicas returns as many as asked");
    let s = stream("replicas");
    let mut subs = Vec::new();
    for bp in &replicas {
        subs.push(bp.subscribe(&s).await.unwrap());
    }

    let writers: Vec<_> = replicas
        .iter()
        .enumerate()
        .map(|(r, bp)| {
            let (bp, s) = (bp.clone(), s.clone());
            tokio::spawn(async move {
                let mut out = Vec::with_capacity(PER_REPLICA);
                for i in 0..PER_REPLICA {
                    out.push(bp.append(&s, tagged(&format!("r{r}"), i)).await.unwrap());
                    tokio::task::yield_now().await;
                }
                out
            })
        })
        .collect();
    let mut appended = Vec::new();
    for writer in writers {
        appended.extend(writer.await.unwrap());
    }
    appended.sort_by_key(|e| e.seq);
    assert_strictly_increasing(&seqs(&appended), "appends through both replicas");

    for (r, sub) in subs.iter_mut().enumerate() {
        let live = take_live(sub, 2 * PER_REPLICA, &format!("replica {r}")).await;
        assert_eq!(live, appended, "replica {r} sees every append in seq order");
    }
    for (r, bp) in replicas.iter().enumerate() {
        let replay = bp.read(&s, None, READ_ALL).await.unwrap();
        assert_eq!(replay.events, appended, "history through replica {r}");
    }

    let (a, b) = (&replicas[0], &replicas[1]);
    let key = RecordKey::new(unique("replicas"), "k");
    assert!(a.record_create(&key, bytes("from a"), None).await.unwrap());
    assert!(!b.record_create(&key, bytes("from b"), None).await.unwrap());
    assert_eq!(b.record_get(&key).await.unwrap(), Some(bytes("from a")));
    b.record_put(&key, bytes("put by b"), None).await.unwrap();
    assert_eq!(a.record_get(&key).await.unwrap(), Some(bytes("put by b")));
    assert_eq!(
        a.record_list(&key.namespace).await.unwrap(),
        vec![("k".to_string(), bytes("put by b"))]
    );
    assert!(b.record_delete(&key).await.unwrap());
    assert_eq!(a.record_get(&key).await.unwrap(), None);
}

// ---------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------

/// Records: `put` stores and replaces, `get` reads the live value, `delete` reports
/// whether a value was there, `list` returns every live entry of the namespace. Values
/// are bytes, not text.
pub async fn records_put_get_delete_list(factory: &dyn BackplaneFactory) {
    let bp = factory.make(roomy()).await;
    let ns = unique("records");
    let key = |k: &str| RecordKey::new(ns.clone(), k);
    let binary = Bytes::from_static(b"\x00\xff\xfe binary \x01");

    assert_eq!(bp.record_get(&key("a")).await.unwrap(), None);
    assert!(!bp.record_delete(&key("a")).await.unwrap());
    assert!(bp.record_list(&ns).await.unwrap().is_empty());

    bp.record_put(&key("a"), bytes("1"), None).await.unwrap();
    bp.record_put(&key("b"), binary.clone(), None)
        .await
        .unwrap();
    bp.record_put(&key("c"), bytes("3"), None).await.unwrap();
    assert_eq!(bp.record_get(&key("a")).await.unwrap(), Some(bytes("1")));
    assert_eq!(
        bp.record_get(&key("b")).await.unwrap(),
        Some(binary.clone())
    );

    bp.record_put(&key("a"), bytes("10"), None).await.unwrap();
    assert_eq!(
        bp.record_get(&key("a")).await.unwrap(),
        Some(bytes("10")),
        "put replaces"
    );
    assert_eq!(
        sorted(bp.record_list(&ns).await.unwrap()),
        vec![
            ("a".to_string(), bytes("10")),
            ("b".to_string(), binary),
            ("c".to_string(), bytes("3")),
        ]
    );

    assert!(bp.record_delete(&key("b")).await.unwrap());
    assert!(
        !bp.record_delete(&key("b")).await.unwrap(),
        "already deleted"
    );
    assert_eq!(bp.record_get(&key("b")).await.unwrap(), None);
    assert_eq!(
        sorted(bp.record_list(&ns).await.unwrap()),
        vec![
            ("a".to_string(), bytes("10")),
            ("c".to_string(), bytes("3"))
        ]
    );
}

/// `record_create` is exclusive: of many concurrent creates of one key exactly one
/// returns `true` and its value is the one stored; a create over a live value is
/// refused and leaves it alone; after a delete, create succeeds again.
pub async fn record_create_is_exclusive(factory: &dyn BackplaneFactory) {
    const RACERS: usize = 16;
    let bp = factory.make(roomy()).await;
    let key = RecordKey::new(unique("create"), "k");
    let racers: Vec<_> = (0..RACERS)
        .map(|i| {
            let (bp, key) = (bp.clone(), key.clone());
            tokio::spawn(async move {
                let created = bp
                    .record_create(&key, Bytes::from(format!("v{i}")), None)
                    .await
                    .unwrap();
                (i, created)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for racer in racers {
        let (i, created) = racer.await.unwrap();
        if created {
            winners.push(i);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one create wins: {winners:?}");
    let winner = Bytes::from(format!("v{}", winners[0]));
    assert_eq!(bp.record_get(&key).await.unwrap(), Some(winner.clone()));

    assert!(!bp.record_create(&key, bytes("late"), None).await.unwrap());
    assert_eq!(
        bp.record_get(&key).await.unwrap(),
        Some(winner),
        "a refused create changes nothing"
    );
    assert!(bp.record_delete(&key).await.unwrap());
    assert!(bp.record_create(&key, bytes("again"), None).await.unwrap());
    assert_eq!(bp.record_get(&key).await.unwrap(), Some(bytes("again")));
}

/// `record_replace` changes or removes a value only while it is exactly the expected
/// one: never an absent, different or expired value; of racers expecting the same
/// value exactly one wins; a replacement takes its own time to live.
pub async fn record_replace_is_compare_and_set(factory: &dyn BackplaneFactory) {
    const RACERS: usize = 16;
    let bp = factory.make(roomy()).await;
    let key = RecordKey::new(unique("replace"), "k");
    assert!(
        !bp.record_replace(&key, b"v0", Some(bytes("v1")), None)
            .await
            .unwrap(),
        "nothing to replace"
    );
    assert_eq!(bp.record_get(&key).await.unwrap(), None);
    bp.record_put(&key, bytes("v0"), None).await.unwrap();
    assert!(
        !bp.record_replace(&key, b"other", Some(bytes("v1")), None)
            .await
            .unwrap(),
        "a different value is not replaced"
    );
    assert_eq!(bp.record_get(&key).await.unwrap(), Some(bytes("v0")));

    let racers: Vec<_> = (0..RACERS)
        .map(|i| {
            let (bp, key) = (bp.clone(), key.clone());
            tokio::spawn(async move {
                let replaced = bp
                    .record_replace(&key, b"v0", Some(Bytes::from(format!("r{i}"))), None)
                    .await
                    .unwrap();
                (i, replaced)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for racer in racers {
        let (i, replaced) = racer.await.unwrap();
        if replaced {
            winners.push(i);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one replace wins: {winners:?}");
    let winner = Bytes::from(format!("r{}", winners[0]));
    assert_eq!(bp.record_get(&key).await.unwrap(), Some(winner.clone()));
    let listed = bp.record_list(&key.namespace).await.unwrap();
    assert_eq!(listed, vec![("k".to_string(), winner.clone())]);

    // A replacement with a time to live expires; the expired value matches nothing.
    let ttl = Duration::from_millis(300);
    assert!(
        bp.record_replace(&key, &winner, Some(bytes("short")), Some(ttl))
            .await
            .unwrap()
    );
    assert_eq!(bp.record_get(&key).await.unwrap(), Some(bytes("short")));
    tokio::time::sleep(ttl + Duration::from_millis(300)).await;
    assert_eq!(bp.record_get(&key).await.unwrap(), None);
    assert!(
        !bp.record_replace(&key, b"short", Some(bytes("late")), None)
            .await
            .unwrap(),
        "an expired value matches nothing"
    );
    assert!(bp.record_create(&key, bytes("fresh"), None).await.unwrap());

    // Replacing with nothing removes the value, from `get` and from `list`.
    assert!(bp.record_replace(&key, b"fresh", None, None).await.unwrap());
    assert_eq!(bp.record_get(&key).await.unwrap(), None);
    assert!(bp.record_list(&key.namespace).await.unwrap().is_empty());
    assert!(!bp.record_replace(&key, b"fresh", None, None).await.unwrap());
    assert!(bp.record_create(&key, bytes("again"), None).await.unwrap());
}

/// A record's time to live: it is readable until `ttl` passes, then gone from `get`,
/// `list` and `delete`, and `create` may take its key again; a `put` without `ttl`
/// replaces a value that had one and does not expire.
pub async fn record_ttl_expires(factory: &dyn BackplaneFactory) {
    let ttl = Duration::from_millis(200);
    let bp = factory.make(roomy()).await;
    let ns = unique("ttl");
    let key = |k: &str| RecordKey::new(ns.clone(), k);

    let started = Instant::now();
    bp.record_put(&key("deleted-late"), bytes("d"), Some(ttl))
        .await
        .unwrap();
    bp.record_put(&key("short"), bytes("s"), Some(ttl))
        .await
        .unwrap();
    bp.record_put(&key("renewed"), bytes("r1"), Some(ttl))
        .await
        .unwrap();
    bp.record_put(&key("renewed"), bytes("r2"), None)
        .await
        .unwrap();
    bp.record_put(&key("long"), bytes("l"), None).await.unwrap();
    assert!(
        bp.record_create(&key("created"), bytes("c"), Some(ttl))
            .await
            .unwrap()
    );
    assert_eq!(
        bp.record_get(&key("short")).await.unwrap(),
        Some(bytes("s"))
    );

    eventually(
        ttl + Duration::from_millis(1500),
        "record ttl expiry",
        || {
            let (bp, short, created) = (&bp, key("short"), key("created"));
            async move {
                let short = bp.record_get(&short).await.unwrap();
                let created = bp.record_get(&created).await.unwrap();
                (short.is_none() && created.is_none()).then_some(())
            }
        },
    )
    .await;
    assert!(
        started.elapsed() + CLOCK_SLACK >= ttl,
        "expired after {:?}, before the ttl {ttl:?}",
        started.elapsed()
    );

    assert!(
        !bp.record_delete(&key("deleted-late")).await.unwrap(),
        "deleting an expired record finds nothing"
    );
    assert_eq!(
        sorted(bp.record_list(&ns).await.unwrap()),
        vec![
            ("long".to_string(), bytes("l")),
            ("renewed".to_string(), bytes("r2")),
        ],
        "list has only live records; a put without ttl cleared the earlier ttl"
    );
    assert!(
        bp.record_create(&key("created"), bytes("c2"), None)
            .await
            .unwrap(),
        "an expired key can be created again"
    );
    assert_eq!(
        bp.record_get(&key("created")).await.unwrap(),
        Some(bytes("c2"))
    );
}

/// Namespaces are separate: the same key in two namespaces holds two values, and
/// `list`, `delete` and `create` in one never touch the other.
pub async fn record_namespaces_are_separate(factory: &dyn BackplaneFactory) {
    let bp = factory.make(roomy()).await;
    let (ns1, ns2) = (unique("ns1"), unique("ns2"));
    let (k1, k2) = (
        RecordKey::new(ns1.clone(), "k"),
        RecordKey::new(ns2.clone(), "k"),
    );
    bp.record_put(&k1, bytes("one"), None).await.unwrap();
    bp.record_put(&k2, bytes("two"), None).await.unwrap();
    bp.record_put(&RecordKey::new(ns1.clone(), "only1"), bytes("x"), None)
        .await
        .unwrap();
    assert_eq!(bp.record_get(&k1).await.unwrap(), Some(bytes("one")));
    assert_eq!(bp.record_get(&k2).await.unwrap(), Some(bytes("two")));
    assert_eq!(
        sorted(bp.record_list(&ns2).await.unwrap()),
        vec![("k".to_string(), bytes("two"))]
    );
    assert_eq!(bp.record_list(&ns1).await.unwrap().len(), 2);

    assert!(bp.record_delete(&k1).await.unwrap());
    assert_eq!(bp.record_get(&k2).await.unwrap(), Some(bytes("two")));
    assert!(
        bp.record_create(&k1, bytes("one again"), None)
            .await
            .unwrap()
    );
    assert!(!bp.record_create(&k2, bytes("no"), None).await.unwrap());
    assert_eq!(bp.record_get(&k2).await.unwrap(), Some(bytes("two")));
    assert!(
        bp.record_list(&unique("ns3")).await.unwrap().is_empty(),
        "an unused namespace is empty"
    );
}

/// `list` returns every live record exactly once even while the records are being
/// written again (as replicas renew their heartbeats every beat): a record that was
/// live before the listing began and stays live throughout is never missed.
pub async fn record_list_sees_records_rewritten_meanwhile(factory: &dyn BackplaneFactory) {
    const KEYS: usize = 6;
    let bp = factory.make(roomy()).await;
    let ns = unique("rewritten");
    let keys: Vec<RecordKey> = (0..KEYS)
        .map(|i| RecordKey::new(ns.clone(), format!("k{i}")))
        .collect();
    let ttl = Some(Duration::from_secs(60));
    for key in &keys {
        bp.record_put(key, bytes("0"), ttl).await.unwrap();
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = keys
        .iter()
        .cloned()
        .map(|key| {
            let (bp, stop) = (bp.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    bp.record_put(&key, Bytes::from(n.to_string()), ttl)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    let started = Instant::now();
    let mut lists = 0;
    while started.elapsed() < Duration::from_secs(3) {
        let mut listed: Vec<String> = bp
            .record_list(&ns)
            .await
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        listed.sort();
        let want: Vec<String> = (0..KEYS).map(|i| format!("k{i}")).collect();
        assert_eq!(
            listed, want,
            "list #{lists} while every key is being rewritten"
        );
        lists += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    assert!(lists > 0);
}
