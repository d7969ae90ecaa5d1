//! What the conformance suite cannot see: the documented key layout and TTLs, the one
//! Redis subscription per stream per replica, direct publishers, and the seq counter's
//! behaviour when Redis forgets it.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis::AsyncCommands;
use switchboard_backplane::{Backplane, EventBody, RecordKey, Retention, StreamName};
use switchboard_redis::{RedisBackplane, StreamKeys, append_script_sha1, append_script_source};
use switchboard_testkit::{RedisServer, eventually};

use crate::support::unique_prefix;

const WAIT: Duration = Duration::from_secs(10);

fn delta(i: usize) -> EventBody {
    EventBody::TurnDelta {
        turn_id: "t_redis".into(),
        text: i.to_string(),
    }
}

async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn connect(server: &RedisServer, prefix: &str, retention: Retention) -> Arc<RedisBackplane> {
    Arc::new(
        RedisBackplane::connect(&server.url(), prefix, retention)
            .await
            .unwrap(),
    )
}

/// How many subscribers Redis counts on `channel`.
async fn numsub(con: &mut redis::aio::MultiplexedConnection, channel: &str) -> u64 {
    let (_, count): (String, u64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(con)
        .await
        .unwrap();
    count
}

/// The keys are where docs/backplanes.md ("Redis") says, with the documented types, fields and TTLs:
/// the log lives `max_age` + 60 s past the last append, the meta hash 7 days.
#[tokio::test]
async fn keys_follow_the_documented_layout_and_ttls() {
    let server = RedisServer::start();
    let retention = Retention {
        max_events: 3,
        max_age: Duration::from_secs(3600),
    };
    let bp = connect(&server, "sb:", retention).await;
    let s = StreamName::session("s_42").unwrap();
    let mut appended = Vec::new();
    for i in 0..5 {
        appended.push(bp.append(&s, delta(i)).await.unwrap());
    }
    let keys = bp.stream_keys(&s);
    assert_eq!(
        keys,
        StreamKeys {
            meta: "sb:stream:{session:s_42}:meta".into(),
            log: "sb:stream:{session:s_42}:log".into(),
            live: "sb:stream:{session:s_42}:live".into(),
        }
    );

    let mut con = raw(&server).await;
    let meta: Vec<(String, String)> = con.hgetall(&keys.meta).await.unwrap();
    let meta: std::collections::HashMap<_, _> = meta.into_iter().collect();
    assert_eq!(meta["seq"], appended[4].seq.to_string());
    assert_eq!(meta["ts"], appended[4].ts.to_string());
    assert_eq!(
        meta["trimmed"],
        appended[1].seq.to_string(),
        "count retention is exact"
    );

    let entries: redis::streams::StreamRangeReply = con.xrange_all(&keys.log).await.unwrap();
    let ids: Vec<String> = entries.ids.iter().map(|e| e.id.clone()).collect();
    let expected: Vec<String> = appended[2..]
        .iter()
        .map(|e| format!("{}-0", e.seq))
        .collect();
    assert_eq!(ids, expected, "entry IDs are <seq>-0");
    let first = &entries.ids[0];
    let e: String = first.get("e").unwrap();
    let t: String = first.get("t").unwrap();
    assert_eq!(
        serde_json::from_str::<switchboard_backplane::Event>(&e).unwrap(),
        *appended[2]
    );
    assert_eq!(t, appended[2].ts.to_string());
    assert!(
        e.starts_with(&format!(
            r#"{{"seq":{},"ts":{},"type":"turn.delta""#,
            appended[2].seq, appended[2].ts
        )),
        "{e}"
    );

    let log_ttl: i64 = con.pttl(&keys.log).await.unwrap();
    let meta_ttl: i64 = con.pttl(&keys.meta).await.unwrap();
    let hour_and_a_minute = 3_660_000;
    assert!(
        (hour_and_a_minute - 5_000..=hour_and_a_minute).contains(&log_ttl),
        "log ttl {log_ttl}"
    );
    let week = 7 * 24 * 3_600_000;
    assert!(
        (week - 5_000..=week).contains(&meta_ttl),
        "meta ttl {meta_ttl}"
    );

    let key = RecordKey::new("sessions", "s_42");
    bp.record_put(
        &key,
        Bytes::from_static(b"v"),
        Some(Duration::from_secs(60)),
    )
    .await
    .unwrap();
    let value: Vec<u8> = con.get("sb:rec:{sessions}:s_42").await.unwrap();
    assert_eq!(value, b"v");
    let score: f64 = con.zscore("sb:recidx:{sessions}", "s_42").await.unwrap();
    assert!(score > 1.7e12, "the index scores by expiry in ms: {score}");
    let ttl: i64 = con.pttl("sb:rec:{sessions}:s_42").await.unwrap();
    assert!((55_000..=60_000).contains(&ttl), "record ttl {ttl}");
}

/// Many local subscriptions of one stream share ONE Redis subscription, and dropping
/// the last one unsubscribes at Redis.
#[tokio::test]
async fn one_redis_subscription_per_stream_per_replica() {
    let server = RedisServer::start();
    let bp = connect(&server, &unique_prefix("refcount"), Retention::default()).await;
    let mut con = raw(&server).await;
    let s = StreamName::session("shared").unwrap();
    let channel = bp.stream_keys(&s).live;

    let mut subs = Vec::new();
    for _ in 0..5 {
        subs.push(bp.subscribe(&s).await.unwrap());
    }
    assert_eq!(numsub(&mut con, &channel).await, 1);
    assert_eq!(bp.subscribed_streams(), 1);

    let event = bp.append(&s, delta(0)).await.unwrap();
    for sub in &mut subs {
        let live = tokio::time::timeout(WAIT, sub.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(live, event, "every local subscription gets the event");
    }

    subs.truncate(1);
    assert_eq!(numsub(&mut con, &channel).await, 1, "one is still there");
    subs.clear();
    eventually(WAIT, "unsubscribe after the last drop", || {
        let (mut con, channel) = (con.clone(), channel.clone());
        async move { numsub(&mut con, &channel).await == 0 }
    })
    .await;
    assert_eq!(bp.subscribed_streams(), 0);

    // And subscribing again works (a fresh SUBSCRIBE).
    let mut again = bp.subscribe(&s).await.unwrap();
    assert_eq!(numsub(&mut con, &channel).await, 1);
    let event = bp.append(&s, delta(1)).await.unwrap();
    assert_eq!(
        tokio::time::timeout(WAIT, again.next())
            .await
            .unwrap()
            .unwrap(),
        event
    );
}

/// Rapid subscribe/drop churn on one stream never leaves a subscription deaf: an
/// UNSUBSCRIBE never overtakes a newer SUBSCRIBE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_drop_churn_never_leaves_a_deaf_subscription() {
    let server = RedisServer::start();
    let bp = connect(&server, &unique_prefix("churn"), Retention::default()).await;
    let s = StreamName::session("churn").unwrap();
    for round in 0..200 {
        drop(bp.subscribe(&s).await.unwrap());
        // Let the unsubscriber run at varying points of the next subscribe.
        if round % 3 == 0 {
            tokio::task::yield_now().await;
        }
        let mut sub = bp.subscribe(&s).await.unwrap();
        let event = bp.append(&s, delta(round)).await.unwrap();
        let live = tokio::time::timeout(WAIT, sub.next())
            .await
            .unwrap_or_else(|_| panic!("round {round}: deaf subscription"))
            .unwrap();
        assert_eq!(live, event, "round {round}");
    }
}

/// A direct publisher that runs the documented `EVALSHA`/`EVAL` gets the same atomic
/// seq assignment: its events interleave with the gateway's in one seq order, reach
/// live subscribers and history, and a body that is not a JSON object is refused.
#[tokio::test]
async fn a_direct_publisher_shares_the_seq_order() {
    let server = RedisServer::start();
    let retention = Retention::default();
    let bp = connect(&server, "sb:", retention).await;
    let s = StreamName::session("direct").unwrap();
    let keys = bp.stream_keys(&s);
    let mut sub = bp.subscribe(&s).await.unwrap();
    let mut con = raw(&server).await;

    let first = bp.append(&s, delta(0)).await.unwrap();
    let body = r#"{"type":"event","name":"order.updated","data":{"order":42,"big":18446744073709551615},"publisher":"billing"}"#;
    // Exactly the invocation docs/publishing.md shows (EVALSHA; the gateway loaded it).
    let (seq, ts): (String, String) = redis::cmd("EVALSHA")
        .arg(append_script_sha1())
        .arg(2)
        .arg(&keys.meta)
        .arg(&keys.log)
        .arg(&keys.live)
        .arg(body)
        .arg(1000)
        .arg(86_400_000)
        .arg(86_460_000)
        .arg(604_800_000)
        .query_async(&mut con)
        .await
        .unwrap();
    let third = bp.append(&s, delta(2)).await.unwrap();
    let seq: u64 = seq.parse().unwrap();
    assert!(first.seq < seq && seq < third.seq);

    let live: Vec<_> = [
        tokio::time::timeout(WAIT, sub.next())
            .await
            .unwrap()
            .unwrap(),
        tokio::time::timeout(WAIT, sub.next())
            .await
            .unwrap()
            .unwrap(),
        tokio::time::timeout(WAIT, sub.next())
            .await
            .unwrap()
            .unwrap(),
    ]
    .into();
    assert_eq!(live[0], first);
    assert_eq!(live[1].seq, seq);
    assert_eq!(live[1].ts.to_string(), ts);
    assert_eq!(
        live[1].body,
        EventBody::Custom {
            name: "order.updated".into(),
            data: serde_json::json!({"order": 42, "big": u64::MAX}),
            publisher: Some("billing".into()),
            durable: false,
        }
    );
    assert_eq!(live[2], third);
    let replay = bp.read(&s, None, 100).await.unwrap();
    assert_eq!(replay.events, live);

    for bad in ["[1,2]", "\"text\"", "{\"unclosed\":1", ""] {
        let error = redis::cmd("EVAL")
            .arg(append_script_source())
            .arg(2)
            .arg(&keys.meta)
            .arg(&keys.log)
            .arg(&keys.live)
            .arg(bad)
            .arg(1000)
            .arg(86_400_000)
            .arg(86_460_000)
            .arg(604_800_000)
            .query_async::<redis::Value>(&mut con)
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("must be a JSON object"),
            "{bad}: {error}"
        );
    }
    assert_eq!(
        bp.read(&s, None, 100).await.unwrap().events.len(),
        3,
        "nothing stored"
    );
}

/// The worked example of docs/publishing.md, run as written with `redis-cli --eval`.
#[tokio::test]
async fn the_documented_redis_cli_example_works() {
    let server = RedisServer::start();
    let bp = connect(&server, "sb:", Retention::default()).await;
    let s = StreamName::session("s_42").unwrap();
    let mut sub = bp.subscribe(&s).await.unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/src/lua/append.lua");
    let output = Command::new("redis-cli")
        .args(["-p", &server.port().to_string(), "--eval", script])
        .args(["sb:stream:{session:s_42}:meta", "sb:stream:{session:s_42}:log", ","])
        .args([
            "sb:stream:{session:s_42}:live",
            r#"{"type":"event","name":"order.updated","data":{"order_id":"o_17","status":"shipped"},"publisher":"billing"}"#,
            "1000",
            "86400000",
            "86460000",
            "604800000",
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!("redis-cli (installed with redis-server) must be on PATH: {e}")
        });
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let live = tokio::time::timeout(WAIT, sub.next())
        .await
        .unwrap()
        .unwrap();
    assert!(stdout.contains(&live.seq.to_string()), "{stdout}");
    assert!(matches!(&live.body, EventBody::Custom { name, .. } if name == "order.updated"));
}

/// When Redis forgets a stream's counter (the meta key expired, was evicted or
/// flushed), the next seq is seeded from the clock: it is still greater than every seq
/// handed out before, so no reader ever sees seq go backwards.
#[tokio::test]
async fn seq_never_goes_backwards_when_redis_forgets_the_counter() {
    let server = RedisServer::start();
    let bp = connect(&server, &unique_prefix("forget"), Retention::default()).await;
    let s = StreamName::session("forget").unwrap();
    let keys = bp.stream_keys(&s);
    let mut con = raw(&server).await;
    let mut last = 0;
    for round in 0..3 {
        for i in 0..3 {
            let event = bp.append(&s, delta(i)).await.unwrap();
            assert!(
                event.seq > last,
                "round {round}: {} after {last}",
                event.seq
            );
            last = event.seq;
        }
        // Forget the counter only (the log survives, as after an eviction) ...
        let _: () = con.del(&keys.meta).await.unwrap();
    }
    // ... or everything, as after FLUSHALL. The clock seed (ms x 1000) stays above the
    // old counter while the stream averaged under 1000 appends per ms since it was
    // seeded; this test appends 9 in a few microseconds, so let a few ms pass first.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let _: () = redis::cmd("FLUSHALL").query_async(&mut con).await.unwrap();
    let event = bp.append(&s, delta(9)).await.unwrap();
    assert!(event.seq > last);
    assert!(event.seq < (1 << 53), "seq stays exact in JavaScript");
}

/// The record index of a namespace nobody lists stays as small as its live records:
/// every write prunes entries whose TTL passed.
#[tokio::test]
async fn the_record_index_stays_bounded_without_list() {
    let server = RedisServer::start();
    let bp = connect(&server, "sb:", Retention::default()).await;
    let mut con = raw(&server).await;
    for i in 0..200 {
        let key = RecordKey::new("idempotency", format!("k{i}"));
        bp.record_put(
            &key,
            Bytes::from_static(b"1"),
            Some(Duration::from_millis(30)),
        )
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(60)).await;
    let key = RecordKey::new("idempotency", "last");
    assert!(
        bp.record_create(&key, Bytes::from_static(b"1"), None)
            .await
            .unwrap()
    );
    let size: u64 = con.zcard("sb:recidx:{idempotency}").await.unwrap();
    assert_eq!(size, 1);
}

/// `record_replace` keeps the value's expiry and the namespace index in step: a
/// replacement with a TTL gets `PX` and a finite score, one without drops both, and a
/// removal takes the key out of the index.
#[tokio::test]
async fn record_replace_keeps_expiry_and_index_in_step() {
    let server = RedisServer::start();
    let bp = connect(&server, "sb:", Retention::default()).await;
    let mut con = raw(&server).await;
    let key = RecordKey::new("leases", "l_1");
    let (value_key, index) = ("sb:rec:{leases}:l_1", "sb:recidx:{leases}");
    bp.record_put(&key, Bytes::from_static(b"a"), None)
        .await
        .unwrap();

    let ttl = Duration::from_secs(60);
    assert!(
        bp.record_replace(&key, b"a", Some(Bytes::from_static(b"b")), Some(ttl))
            .await
            .unwrap()
    );
    let pttl: i64 = con.pttl(value_key).await.unwrap();
    assert!((55_000..=60_000).contains(&pttl), "replacement ttl {pttl}");
    let score: f64 = con.zscore(index, "l_1").await.unwrap();
    assert!(
        score.is_finite() && score > 1.7e12,
        "scored by expiry: {score}"
    );

    assert!(
        bp.record_replace(&key, b"b", Some(Bytes::from_static(b"c")), None)
            .await
            .unwrap()
    );
    let pttl: i64 = con.pttl(value_key).await.unwrap();
    assert_eq!(pttl, -1, "a replacement without a ttl never expires");
    let score: f64 = con.zscore(index, "l_1").await.unwrap();
    assert_eq!(score, f64::INFINITY);

    assert!(bp.record_replace(&key, b"c", None, None).await.unwrap());
    let exists: bool = con.exists(value_key).await.unwrap();
    assert!(!exists);
    let score: Option<f64> = con.zscore(index, "l_1").await.unwrap();
    assert_eq!(score, None, "a removal leaves the index");
}

/// Age retention on read needs no append: a read on an idle stream skips expired
/// entries and reports them trimmed; the entries stay until the next append (reads
/// never write) or until the log key's TTL.
#[tokio::test]
async fn reads_skip_expired_entries_without_writing() {
    let server = RedisServer::start();
    let retention = Retention {
        max_events: 100,
        max_age: Duration::from_millis(100),
    };
    let bp = connect(&server, &unique_prefix("age"), retention).await;
    let s = StreamName::session("age").unwrap();
    let keys = bp.stream_keys(&s);
    let mut con = raw(&server).await;
    let old = bp.append(&s, delta(0)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let replay = bp.read(&s, None, 10).await.unwrap();
    assert!(replay.events.is_empty());
    assert!(replay.trimmed);
    assert_eq!(replay.last_seq, old.seq);
    let len: u64 = con.xlen(&keys.log).await.unwrap();
    assert_eq!(len, 1, "read did not delete");
    let new = bp.append(&s, delta(1)).await.unwrap();
    let len: u64 = con.xlen(&keys.log).await.unwrap();
    assert_eq!(len, 1, "the append trimmed the expired entry");
    let trimmed: String = con.hget(&keys.meta, "trimmed").await.unwrap();
    assert_eq!(trimmed, old.seq.to_string());
    assert_eq!(bp.read(&s, None, 10).await.unwrap().events, vec![new]);
}

/// A subscription never starts with an event that was appended before `subscribe`
/// was called, even while the stream is busy and this replica already receives it
/// (another local subscriber): messages already on their way to the replica are held
/// back by the floor (the head read after the SUBSCRIBE).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_subscription_of_a_busy_stream_starts_after_subscribe() {
    let server = RedisServer::start();
    let bp = connect(&server, &unique_prefix("busy"), Retention::default()).await;
    let s = StreamName::session("busy").unwrap();
    let _first = bp.subscribe(&s).await.unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let newest = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let writer = {
        let (bp, s, done, newest) = (bp.clone(), s.clone(), done.clone(), newest.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let event = bp.append(&s, delta(i)).await.unwrap();
                newest.fetch_max(event.seq, std::sync::atomic::Ordering::SeqCst);
                i += 1;
            }
        })
    };
    for round in 0..200 {
        let appended_before = newest.load(std::sync::atomic::Ordering::SeqCst);
        let mut sub = bp.subscribe(&s).await.unwrap();
        let first = tokio::time::timeout(WAIT, sub.next())
            .await
            .unwrap()
            .unwrap();
        assert!(
            first.seq > appended_before,
            "round {round}: the first live event ({}) was appended before subscribe ({appended_before})",
            first.seq
        );
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
}
