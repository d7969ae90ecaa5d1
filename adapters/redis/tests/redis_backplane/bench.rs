//! Measurements behind the numbers in docs/backplanes.md. Ignored by default (they measure,
//! they do not check); run them with
//!
//! ```text
//! cargo test -p switchboard-redis --release --test redis_backplane -- bench:: --ignored --nocapture --test-threads=1
//! ```
//!
//! `subscribe_per_channel_versus_psubscribe`: `REPLICAS` replicas share `STREAMS`
//! streams, each serving a tenth. A publisher spreads `MESSAGES` events evenly over all
//! streams. Per mode it reports the cost of setting up one replica's subscriptions, how long the publisher took (Redis' per-PUBLISH cost),
//! how many messages the replicas had to receive in total and how long until the last
//! one was drained, and the Redis CPU spent.
//!
//! `append_read_and_live_latency`: sequential appends (one round trip each), appends
//! from 8 concurrent writers to one stream, the delay from `append` to a subscriber on
//! another replica, and reads of 100 events.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use switchboard_testkit::RedisServer;

const STREAMS: usize = 1000;
const REPLICAS: usize = 10;
const MESSAGES: usize = 50_000;
const PIPELINE: usize = 500;

fn channel(i: usize) -> String {
    format!("bench:stream:{{session:s_{i}}}:live")
}

async fn redis_cpu(con: &mut redis::aio::MultiplexedConnection) -> f64 {
    let info: String = redis::cmd("INFO")
        .arg("cpu")
        .query_async(con)
        .await
        .unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            matches!(name, "used_cpu_sys" | "used_cpu_user")
                .then(|| value.trim().parse::<f64>().ok())?
        })
        .sum()
}

struct Outcome {
    setup: Duration,
    publish: Duration,
    received: usize,
    drain: Duration,
    redis_cpu: f64,
}

/// `REPLICAS` replicas, replica `r` serving the streams `i` with `i % REPLICAS == r`.
async fn run(server: &RedisServer, pattern: bool) -> Outcome {
    let client = redis::Client::open(server.url()).unwrap();
    let mut publisher = client.get_multiplexed_async_connection().await.unwrap();
    let mut setup = Duration::ZERO;
    let mut drains = Vec::new();
    let expected_per_replica = if pattern {
        MESSAGES
    } else {
        MESSAGES / REPLICAS
    };
    for replica in 0..REPLICAS {
        let (mut sink, mut stream) = client.get_async_pubsub().await.unwrap().split();
        let started = Instant::now();
        if pattern {
            sink.psubscribe("bench:stream:*").await.unwrap();
        } else {
            // One SUBSCRIBE per stream, each confirmed before the next, as the
            // backplane does when a stream gets its first local member.
            for i in (replica..STREAMS).step_by(REPLICAS) {
                sink.subscribe(channel(i)).await.unwrap();
            }
        }
        setup += started.elapsed();
        drains.push(tokio::spawn(async move {
            let _sink = sink;
            let mut received = 0;
            while received < expected_per_replica {
                match tokio::time::timeout(Duration::from_secs(60), stream.next()).await {
                    Ok(Some(_)) => received += 1,
                    _ => break,
                }
            }
            (received, Instant::now())
        }));
    }

    let payload = format!(
        r#"{{"seq":1,"ts":1,"type":"turn.delta","turn_id":"t_1","text":"{}"}}"#,
        "x".repeat(150)
    );
    let cpu_before = redis_cpu(&mut publisher).await;
    let started = Instant::now();
    for batch in 0..MESSAGES / PIPELINE {
        let mut pipe = redis::pipe();
        for j in 0..PIPELINE {
            let n = batch * PIPELINE + j;
            pipe.cmd("PUBLISH")
                .arg(channel(n % STREAMS))
                .arg(&payload)
                .ignore();
        }
        let _: () = pipe.query_async(&mut publisher).await.unwrap();
    }
    let publish = started.elapsed();
    let mut received = 0;
    let mut last = started;
    for drain in drains {
        let (count, done) = drain.await.unwrap();
        received += count;
        last = last.max(done);
    }
    let cpu_after = redis_cpu(&mut publisher).await;
    Outcome {
        setup: setup / REPLICAS as u32,
        publish,
        received,
        drain: last.duration_since(started),
        redis_cpu: cpu_after - cpu_before,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check: run by hand (see the file docs)"]
async fn subscribe_per_channel_versus_psubscribe() {
    let server = RedisServer::start();
    println!(
        "{STREAMS} streams over {REPLICAS} replicas; {MESSAGES} events of ~210 bytes published"
    );
    println!(
        "{:<22} {:>14} {:>11} {:>10} {:>11} {:>10}",
        "mode", "setup/replica", "publish", "received", "drained in", "redis cpu"
    );
    for (name, pattern) in [
        ("SUBSCRIBE per stream", false),
        ("PSUBSCRIBE pattern", true),
        ("SUBSCRIBE per stream", false),
        ("PSUBSCRIBE pattern", true),
    ] {
        let outcome = run(&server, pattern).await;
        println!(
            "{:<22} {:>14.2?} {:>11.2?} {:>10} {:>11.2?} {:>9.2}s",
            name,
            outcome.setup,
            outcome.publish,
            outcome.received,
            outcome.drain,
            outcome.redis_cpu
        );
    }
}

/// Sequential appends, append-to-live delay across two replicas, and reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check: run by hand (see the file docs)"]
async fn append_read_and_live_latency() {
    use std::sync::Arc;

    use switchboard_backplane::{Backplane, EventBody, Retention, StreamName};
    use switchboard_redis::RedisBackplane;

    const APPENDS: usize = 10_000;
    let server = RedisServer::start();
    let prefix = crate::support::unique_prefix("bench");
    let writer = Arc::new(
        RedisBackplane::connect(&server.url(), &prefix, Retention::default())
            .await
            .unwrap(),
    );
    let reader = RedisBackplane::connect(&server.url(), &prefix, Retention::default())
        .await
        .unwrap();
    let s = StreamName::session("bench").unwrap();
    let body = |i: usize| EventBody::TurnDelta {
        turn_id: "t_bench".into(),
        text: format!("{i:>40}"),
    };

    let started = Instant::now();
    for i in 0..APPENDS {
        writer.append(&s, body(i)).await.unwrap();
    }
    let per_append = started.elapsed() / APPENDS as u32;

    let mut sub = reader.subscribe(&s).await.unwrap();
    let mut delays = Vec::with_capacity(1000);
    for i in 0..1000 {
        let sent = Instant::now();
        writer.append(&s, body(i)).await.unwrap();
        sub.next().await.unwrap();
        delays.push(sent.elapsed());
    }
    delays.sort();

    let started = Instant::now();
    for _ in 0..1000 {
        let replay = reader.read(&s, Some(0), 100).await.unwrap();
        assert_eq!(replay.events.len(), 100);
    }
    let per_read = started.elapsed() / 1000;

    let started = Instant::now();
    let concurrent: Vec<_> = (0..8)
        .map(|_| {
            let (writer, s) = (writer.clone(), s.clone());
            tokio::spawn(async move {
                for i in 0..APPENDS / 8 {
                    writer.append(&s, body(i)).await.unwrap();
                }
            })
        })
        .collect();
    for task in concurrent {
        task.await.unwrap();
    }
    let throughput = APPENDS as f64 / started.elapsed().as_secs_f64();

    println!("sequential append (1 EVALSHA):     {per_append:.2?} each");
    println!("8 concurrent writers, one stream:  {throughput:.0} appends/s");
    println!(
        "append -> live on another replica: p50 {:.2?}, p99 {:.2?} (append + publish + dispatch)",
        delays[delays.len() / 2],
        delays[delays.len() * 99 / 100]
    );
    println!("read of 100 events (1 EVALSHA):    {per_read:.2?} each");
}
