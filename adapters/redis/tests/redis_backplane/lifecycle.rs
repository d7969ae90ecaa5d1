//! `delete_stream` and `ensure_seq_above` on the keys themselves: what the conformance
//! suite cannot see (which keys remain, their TTLs, a counter Redis forgot).

use std::sync::Arc;

use redis::AsyncCommands;
use switchboard_backplane::{Backplane, ErrorKind, EventBody, Retention, StreamName};
use switchboard_redis::RedisBackplane;
use switchboard_testkit::RedisServer;

use crate::support::unique_prefix;

const WEEK_MS: i64 = 7 * 24 * 3_600_000;

fn delta(i: usize) -> EventBody {
    EventBody::TurnDelta {
        turn_id: "t_lifecycle".into(),
        text: i.to_string(),
    }
}

async fn setup(
    label: &str,
) -> (
    RedisServer,
    Arc<RedisBackplane>,
    redis::aio::MultiplexedConnection,
) {
    let server = RedisServer::start();
    let bp = RedisBackplane::connect(&server.url(), &unique_prefix(label), Retention::default())
        .await
        .unwrap();
    let con = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    (server, Arc::new(bp), con)
}

async fn meta_field(
    con: &mut redis::aio::MultiplexedConnection,
    meta: &str,
    field: &str,
) -> Option<String> {
    con.hget(meta, field).await.unwrap()
}

/// `delete_stream` leaves neither key behind.
#[tokio::test]
async fn delete_removes_the_meta_and_the_log() {
    let (_server, bp, mut con) = setup("delete").await;
    let s = StreamName::session("erase-me").unwrap();
    let keys = bp.stream_keys(&s);
    for i in 0..3 {
        bp.append(&s, delta(i)).await.unwrap();
    }
    let before: u64 = con.exists(&[&keys.meta, &keys.log]).await.unwrap();
    assert_eq!(before, 2);
    assert!(bp.delete_stream(&s).await.unwrap());
    let after: u64 = con.exists(&[&keys.meta, &keys.log]).await.unwrap();
    assert_eq!(after, 0, "no key of the stream remains");
}

/// Raising writes the floor as `seq` and `trimmed`, drops the log entries at or below
/// it, and gives the meta key the same TTL as an append does, whether the stream
/// existed or not (a raised counter never lives forever).
#[tokio::test]
async fn raising_sets_seq_trimmed_and_the_meta_ttl() {
    let (_server, bp, mut con) = setup("raise").await;
    let fresh = StreamName::session("fresh").unwrap();
    let keys = bp.stream_keys(&fresh);
    bp.ensure_seq_above(&fresh, 500).await.unwrap();
    assert_eq!(
        meta_field(&mut con, &keys.meta, "seq").await.as_deref(),
        Some("500")
    );
    assert_eq!(
        meta_field(&mut con, &keys.meta, "trimmed").await.as_deref(),
        Some("500")
    );
    let ttl: i64 = con.pttl(&keys.meta).await.unwrap();
    assert!((WEEK_MS - 5_000..=WEEK_MS).contains(&ttl), "meta ttl {ttl}");
    let log: u64 = con.exists(&keys.log).await.unwrap();
    assert_eq!(log, 0, "raising writes no log");
    assert_eq!(bp.append(&fresh, delta(0)).await.unwrap().seq, 501);

    let s = StreamName::session("used").unwrap();
    let keys = bp.stream_keys(&s);
    let mut last = 0;
    for i in 0..3 {
        last = bp.append(&s, delta(i)).await.unwrap().seq;
    }
    let _: () = con.pexpire(&keys.meta, 60_000).await.unwrap();
    let floor = last + 10;
    bp.ensure_seq_above(&s, floor).await.unwrap();
    let ttl: i64 = con.pttl(&keys.meta).await.unwrap();
    assert!((WEEK_MS - 5_000..=WEEK_MS).contains(&ttl), "meta ttl {ttl}");
    let entries: u64 = con.xlen(&keys.log).await.unwrap();
    assert_eq!(entries, 0, "entries at or below the floor are gone");
    assert_eq!(
        meta_field(&mut con, &keys.meta, "seq").await,
        Some(floor.to_string())
    );

    // Already at the floor: nothing is written, not even the TTL.
    let _: () = con.pexpire(&keys.meta, 60_000).await.unwrap();
    bp.ensure_seq_above(&s, floor).await.unwrap();
    bp.ensure_seq_above(&s, 1).await.unwrap();
    let ttl: i64 = con.pttl(&keys.meta).await.unwrap();
    assert!(ttl <= 60_000, "meta ttl {ttl}");
    assert_eq!(
        meta_field(&mut con, &keys.meta, "seq").await,
        Some(floor.to_string())
    );
}

/// With the counter forgotten but the log surviving (an evicted meta key), a floor
/// below the log's newest entry raises the counter to that entry, not the floor: the
/// next append must not collide with an entry ID.
#[tokio::test]
async fn a_floor_below_a_surviving_log_stays_above_the_log() {
    let (_server, bp, mut con) = setup("evicted").await;
    let s = StreamName::session("evicted").unwrap();
    let keys = bp.stream_keys(&s);
    let mut appended = Vec::new();
    for i in 0..3 {
        appended.push(bp.append(&s, delta(i)).await.unwrap());
    }
    let _: () = con.del(&keys.meta).await.unwrap();
    let floor = appended[1].seq;
    bp.ensure_seq_above(&s, floor).await.unwrap();
    let next = bp.append(&s, delta(3)).await.unwrap();
    assert!(next.seq > appended[2].seq);
    let replay = bp.read(&s, None, 100).await.unwrap();
    assert_eq!(
        replay.events,
        vec![appended[2].clone(), next],
        "above the floor, kept"
    );
    assert!(replay.trimmed);
}

/// Lua computes in doubles: a floor above 2^53 is refused before reaching Redis.
#[tokio::test]
async fn a_floor_beyond_2_pow_53_is_rejected() {
    let (_server, bp, mut con) = setup("huge").await;
    let s = StreamName::session("huge").unwrap();
    let error = bp.ensure_seq_above(&s, (1 << 53) + 1).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Rejected, "{error}");
    let meta: u64 = con.exists(&bp.stream_keys(&s).meta).await.unwrap();
    assert_eq!(meta, 0);
    bp.ensure_seq_above(&s, 1 << 53).await.unwrap();
}
