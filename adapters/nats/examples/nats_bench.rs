//! Rough numbers for the NATS section of docs/backplanes.md, against a running server:
//!
//! ```text
//! nats-server -js -a 127.0.0.1 -p 14222 -sd /tmp/nats-bench &
//! cargo run --release -p switchboard-nats --example nats_bench -- nats://127.0.0.1:14222
//! ```
//!
//! Measures append/read/subscribe round trips through [`NatsBackplane`], and what live
//! delivery costs a replica with one subscription per stream versus one wildcard
//! subscription for the whole deployment.

// A measuring tool: a failure should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use switchboard_backplane::{Backplane, EventBody, Retention, StreamName};
use switchboard_nats::{NatsBackplane, NatsOptions};

fn delta(i: usize) -> EventBody {
    EventBody::TurnDelta {
        turn_id: "t_bench".into(),
        text: format!("token {i} "),
    }
}

fn percentiles(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize];
    format!(
        "p50 {:>7.1?}  p99 {:>7.1?}  (n={})",
        at(0.5),
        at(0.99),
        samples.len()
    )
}

#[tokio::main]
async fn main() {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "nats://127.0.0.1:4222".into());
    let prefix = format!("bench{}", std::process::id());
    let retention = Retention {
        max_events: 1000,
        max_age: Duration::from_secs(3600),
    };
    let bp = Arc::new(
        NatsBackplane::connect_with(NatsOptions::new(&url, &prefix, retention))
            .await
            .unwrap(),
    );

    // Appends, one writer.
    let s = StreamName::session("bench").unwrap();
    let mut samples = Vec::new();
    for i in 0..5000 {
        let t = Instant::now();
        bp.append(&s, delta(i)).await.unwrap();
        samples.push(t.elapsed());
    }
    println!("append (1 writer)          {}", percentiles(samples));

    // Appends, 16 writers on 16 streams.
    let t = Instant::now();
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let bp = bp.clone();
            tokio::spawn(async move {
                let s = StreamName::session(&format!("w{w}")).unwrap();
                for i in 0..1000 {
                    bp.append(&s, delta(i)).await.unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    println!(
        "append (16 writers)        {:.0} appends/s",
        16_000.0 / t.elapsed().as_secs_f64()
    );

    // Reads.
    let head = bp.read(&s, None, 0).await.unwrap().last_seq;
    for (label, after, limit) in [
        ("read head (limit 0)", None, 0),
        ("read caught up (after=head)", Some(head), 100),
        ("read 100 of 1000", None, 100),
        ("read 1000 (whole history)", None, 1000),
    ] {
        let mut samples = Vec::new();
        for _ in 0..200 {
            let t = Instant::now();
            bp.read(&s, after, limit).await.unwrap();
            samples.push(t.elapsed());
        }
        println!("{label:<27}{}", percentiles(samples));
    }

    // Subscribe (SUB + head read), then live latency.
    let mut samples = Vec::new();
    let mut subs = Vec::new();
    for i in 0..500 {
        let t = Instant::now();
        subs.push(
            bp.subscribe(&StreamName::session(&format!("sub{i}")).unwrap())
                .await
                .unwrap(),
        );
        samples.push(t.elapsed());
    }
    println!("subscribe (new stream)     {}", percentiles(samples));
    drop(subs);
    let mut sub = bp.subscribe(&s).await.unwrap();
    let mut samples = Vec::new();
    for i in 0..2000 {
        let t = Instant::now();
        bp.append(&s, delta(i)).await.unwrap();
        sub.next().await.unwrap();
        samples.push(t.elapsed());
    }
    println!("append -> live event       {}", percentiles(samples));

    // Per-stream subscriptions versus one wildcard: 100 streams get 200 events each; a
    // replica whose members watch one stream.
    let client = async_nats::connect(&url).await.unwrap();
    let mut one = client
        .subscribe(format!("{prefix}.live.session.hot0"))
        .await
        .unwrap();
    let mut all = client.subscribe(format!("{prefix}.live.>")).await.unwrap();
    client.flush().await.unwrap();
    let t = Instant::now();
    let writers: Vec<_> = (0..100)
        .map(|k| {
            let bp = bp.clone();
            tokio::spawn(async move {
                let s = StreamName::session(&format!("hot{k}")).unwrap();
                for i in 0..200 {
                    bp.append(&s, delta(i)).await.unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let produced = t.elapsed();
    let t = Instant::now();
    let mut wanted = 0;
    for _ in 0..20_000 {
        let message = all.next().await.unwrap();
        // What a wildcard dispatcher must do for every message: find the stream.
        if message.subject.ends_with(".hot0") {
            wanted += 1;
        }
    }
    let wildcard_drain = t.elapsed();
    let mut per_stream = 0;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(200), one.next()).await {
        per_stream += 1;
    }
    println!(
        "fan-out: 20000 events on 100 streams in {produced:.1?}; a replica watching 1 stream receives \
         {per_stream} with a per-stream subscription, 20000 with a wildcard ({wanted} wanted, \
         {wildcard_drain:.1?} of client time just to receive them after the fact)"
    );
}
