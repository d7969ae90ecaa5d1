//! Properties of the stream lifecycle operations: `delete_stream` and
//! `ensure_seq_above`.

use std::time::Duration;

use super::{
    BackplaneFactory, READ_ALL, append_all, delta, next_live, roomy, seqs, stream, tagged,
    take_live,
};
use crate::{Backplane, Replay, Seq, StreamName};

/// How long a subscription of a deleted stream may take to either end or yield the
/// first event appended after the delete.
const AFTER_DELETE_WAIT: Duration = Duration::from_secs(3);

/// A `seq` far above anything a test stream reaches, but within 2^53 (Redis' limit).
const FAR_SEQ: Seq = 1 << 52;

#[track_caller]
fn assert_never_used(replay: &Replay, what: &str) {
    assert!(
        replay.events.is_empty(),
        "{what}: events {:?}",
        seqs(&replay.events)
    );
    assert_eq!(replay.last_seq, 0, "{what}: last_seq");
    assert!(!replay.trimmed, "{what}: trimmed");
}

/// `delete_stream` removes a stream's whole history and its `seq` counter: afterwards
/// `read` answers as for a stream never used, whatever `after` and `limit`; it reports
/// whether anything was there (not for a stream never used, nor twice); other streams
/// keep their history; a later append starts a new history holding only itself; and a
/// live subscription never yields an event of the deleted history it had not been
/// handed: it ends, or yields the first event appended after the delete.
pub async fn delete_stream_forgets_the_stream(factory: &dyn BackplaneFactory) {
    let bp = factory.make(roomy()).await;
    let never = stream("delete-never");
    assert!(
        !bp.delete_stream(&never).await.unwrap(),
        "a stream never used held nothing"
    );
    assert_never_used(
        &bp.read(&never, None, READ_ALL).await.unwrap(),
        "never used",
    );

    let (s, other) = (stream("delete"), stream("delete-other"));
    let mut sub = bp.subscribe(&s).await.unwrap();
    let appended = append_all(&*bp, &s, (0..5).map(delta)).await;
    let kept = append_all(&*bp, &other, (0..3).map(|i| tagged("other", i))).await;
    assert_eq!(take_live(&mut sub, 5, "before delete").await, appended);

    assert!(
        bp.delete_stream(&s).await.unwrap(),
        "the stream held events"
    );
    let last = appended[4].seq;
    for after in [None, Some(0), Some(appended[1].seq), Some(last)] {
        for limit in [0, 2, READ_ALL] {
            let replay = bp.read(&s, after, limit).await.unwrap();
            assert_never_used(
                &replay,
                &format!("after delete, after {after:?} limit {limit}"),
            );
        }
    }
    assert!(
        !bp.delete_stream(&s).await.unwrap(),
        "a second delete finds nothing"
    );
    let replay = bp.read(&other, None, READ_ALL).await.unwrap();
    assert_eq!(replay.events, kept, "another stream keeps its history");
    assert!(!replay.trimmed);

    let fresh = bp.append(&s, delta(100)).await.unwrap();
    assert!(fresh.seq > 0);
    let replay = bp.read(&s, None, READ_ALL).await.unwrap();
    assert_eq!(replay.events, vec![fresh.clone()], "only the new history");
    assert_eq!(replay.last_seq, fresh.seq);
    assert!(!replay.trimmed, "nothing of the new history was removed");

    match tokio::time::timeout(AFTER_DELETE_WAIT, sub.next()).await {
        Ok(Ok(event)) => assert_eq!(event, fresh, "a subscription of a deleted stream"),
        Ok(Err(_ended)) => {}
        Err(_) => panic!(
            "a subscription of a deleted stream neither ended nor yielded the next append \
             within {AFTER_DELETE_WAIT:?}"
        ),
    }
    let mut resubscribed = bp.subscribe(&s).await.unwrap();
    let next = bp.append(&s, delta(101)).await.unwrap();
    assert!(next.seq > fresh.seq);
    assert_eq!(next_live(&mut resubscribed, "after delete").await, next);
}

/// `ensure_seq_above` with a `seq` the stream already reached changes nothing, on every
/// backplane: history, `last_seq` and `trimmed` read the same, live delivery goes on,
/// and the next append continues the stream's `seq`s.
pub async fn ensure_seq_above_never_lowers(factory: &dyn BackplaneFactory) {
    let bp = factory.make(roomy()).await;
    let s = stream("ensure-low");
    let mut sub = bp.subscribe(&s).await.unwrap();
    let appended = append_all(&*bp, &s, (0..5).map(delta)).await;
    let last = appended[4].seq;
    for seq in [0, appended[0].seq, appended[2].seq, last] {
        bp.ensure_seq_above(&s, seq).await.unwrap();
        let replay = bp.read(&s, None, READ_ALL).await.unwrap();
        assert_eq!(replay.events, appended, "ensure_seq_above({seq}): history");
        assert_eq!(replay.last_seq, last, "ensure_seq_above({seq}): last_seq");
        assert!(!replay.trimmed, "ensure_seq_above({seq}): trimmed");
        let replay = bp.read(&s, Some(appended[1].seq), 0).await.unwrap();
        assert_eq!(replay.last_seq, last);
        assert!(!replay.trimmed, "ensure_seq_above({seq}): head read");
    }
    assert_eq!(take_live(&mut sub, 5, "live").await, appended);
    let next = bp.append(&s, delta(5)).await.unwrap();
    assert!(next.seq > last);
    assert_eq!(next_live(&mut sub, "live after ensure").await, next);
    let replay = bp.read(&s, Some(appended[2].seq), READ_ALL).await.unwrap();
    assert_eq!(
        replay.events,
        [&appended[3..], &[next][..]].concat(),
        "history after ensure_seq_above and one more append"
    );
    assert!(!replay.trimmed);
}

/// `ensure_seq_above` raises a stream's `seq`, where the backplane can
/// ([`BackplaneFactory::raises_seq`]): later appends are above it, everything up to it
/// reads as trimmed, `last_seq` is at least it; live delivery and other streams are
/// unaffected; a second call with the same `seq` changes nothing. Where the backplane
/// cannot raise, it must refuse a `seq` its later appends would not exceed, rather than
/// answer `Ok` and break the promise.
pub async fn ensure_seq_above_raises_the_seq(factory: &dyn BackplaneFactory) {
    let bp = factory.make(roomy()).await;
    if !factory.raises_seq() {
        let s = stream("ensure-refused");
        bp.append(&s, delta(0)).await.unwrap();
        assert!(
            bp.ensure_seq_above(&s, FAR_SEQ).await.is_err(),
            "a backplane that cannot raise seq answered Ok for a seq it is far below"
        );
        let next = bp.append(&s, delta(1)).await.unwrap();
        assert!(next.seq < FAR_SEQ, "the refusal was honest: seq is below");
        return;
    }

    // A stream the backplane never saw, whose transcript lives elsewhere.
    let fresh = stream("ensure-fresh");
    let floor = 1000;
    bp.ensure_seq_above(&fresh, floor).await.unwrap();
    check_raised(&*bp, &fresh, floor, &[], "fresh").await;
    let first = bp.append(&fresh, delta(0)).await.unwrap();
    assert!(
        first.seq > floor,
        "fresh: append after ensure_seq_above({floor})"
    );
    check_raised(&*bp, &fresh, floor, &[first.seq], "fresh, appended").await;

    // A stream with history below the new floor, subscribed meanwhile.
    let (s, other) = (stream("ensure-raise"), stream("ensure-other"));
    let mut sub = bp.subscribe(&s).await.unwrap();
    let old = append_all(&*bp, &s, (0..3).map(delta)).await;
    let untouched = append_all(&*bp, &other, (0..3).map(|i| tagged("other", i))).await;
    let floor = old[2].seq + 100;
    bp.ensure_seq_above(&s, floor).await.unwrap();
    check_raised(&*bp, &s, floor, &[], "raised").await;
    let replay = bp.read(&s, Some(old[0].seq), READ_ALL).await.unwrap();
    assert!(
        replay.events.is_empty() && replay.trimmed,
        "old history counts as trimmed"
    );

    let next = bp.append(&s, delta(3)).await.unwrap();
    assert!(
        next.seq > floor,
        "raised: append after ensure_seq_above({floor})"
    );
    assert_eq!(take_live(&mut sub, 3, "before the raise").await, old);
    assert_eq!(next_live(&mut sub, "after the raise").await, next);
    check_raised(&*bp, &s, floor, &[next.seq], "raised, appended").await;

    bp.ensure_seq_above(&s, floor).await.unwrap();
    check_raised(&*bp, &s, floor, &[next.seq], "raised twice").await;
    let replay = bp.read(&other, None, READ_ALL).await.unwrap();
    assert_eq!(replay.events, untouched, "another stream is not affected");
    assert!(!replay.trimmed);
}

/// After `ensure_seq_above(stream, floor)` and appends of `seqs` (all above it): reads
/// from below the floor report `trimmed` and return exactly those appends, reads from
/// the floor on are not trimmed, `last_seq` is at least the floor and the newest seq.
async fn check_raised(
    bp: &dyn Backplane,
    s: &StreamName,
    floor: Seq,
    appended: &[Seq],
    what: &str,
) {
    let newest = appended.last().copied().unwrap_or(floor);
    for after in [None, Some(floor / 2), Some(floor - 1)] {
        let replay = bp.read(s, after, READ_ALL).await.unwrap();
        assert_eq!(seqs(&replay.events), appended, "{what}: after {after:?}");
        assert!(
            replay.trimmed,
            "{what}: after {after:?} must report trimmed"
        );
        assert!(
            replay.last_seq >= floor,
            "{what}: last_seq {} below {floor}",
            replay.last_seq
        );
        if !appended.is_empty() {
            assert_eq!(replay.last_seq, newest, "{what}: last_seq");
        }
        let head = bp.read(s, after, 0).await.unwrap();
        assert!(
            head.trimmed,
            "{what}: head read after {after:?} must report trimmed"
        );
        assert_eq!(head.last_seq, replay.last_seq, "{what}: head read last_seq");
    }
    let replay = bp.read(s, Some(floor), READ_ALL).await.unwrap();
    assert_eq!(seqs(&replay.events), appended, "{what}: after the floor");
    assert!(
        !replay.trimmed,
        "{what}: nothing after the floor was removed"
    );
}
