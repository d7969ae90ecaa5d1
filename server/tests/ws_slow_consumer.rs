//! Slow consumers are cut off with 4008 instead of growing the gateway's memory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::client::Ws;
use support::{Client, Gateway, Incoming, WAIT, is_event, ty};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

const TEXT_CHARS: usize = 7000;
const PUSH_BYTES: usize = 64 << 20;
const MAX_GROWTH_KIB: u64 = 48 << 10;
const WINDOW: usize = 64;

struct Flood {
    accepted: usize,
    last_seq: u64,
}

/// Send `count` `message.send` frames while reading the flooder's own socket, with at
/// most [`WINDOW`] sends awaiting their `message.accepted`, so the flooder itself is
/// never a slow consumer and never outruns the gateway.
async fn flood(
    sink: &mut SplitSink<Ws, Message>,
    stream: &mut SplitStream<Ws>,
    frame: &str,
    count: usize,
) -> Flood {
    let window = Semaphore::new(WINDOW);
    let send = async {
        for i in 0..count {
            window.acquire().await.expect("semaphore open").forget();
            sink.send(Message::text(frame.to_string()))
                .await
                .unwrap_or_else(|e| panic!("flooder send {i} failed: {e}"));
        }
    };
    let recv = async {
        let mut flood = Flood {
            accepted: 0,
            last_seq: 0,
        };
        while flood.accepted < count {
            let msg = tokio::time::timeout(WAIT, stream.next())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "flooder: nothing for {WAIT:?} after {} accepted",
                        flood.accepted
                    )
                });
            match msg {
                Some(Ok(Message::Text(text))) => {
                    let v: Value = serde_json::from_str(text.as_str()).expect("JSON frame");
                    match ty(&v) {
                        "message.accepted" => {
                            flood.accepted += 1;
                            window.add_permits(1);
                        }
                        "error" => panic!("flooder got an error: {v}"),
                        _ => {}
                    }
                    if is_event(&v) {
                        flood.last_seq = flood.last_seq.max(v["seq"].as_u64().unwrap());
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    panic!("the flooder itself was closed: {frame:?}")
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => panic!("flooder read failed: {e}"),
                None => panic!("flooder connection ended"),
            }
        }
        flood
    };
    let ((), flood) = tokio::join!(send, recv);
    flood
}

/// A client that never reads is cut off with close 4008 while the gateway's RSS stays
/// far below the bytes pushed at it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_is_closed_4008_while_gateway_memory_stays_bounded() {
    tokio::time::timeout(Duration::from_secs(60), slow_consumer())
        .await
        .expect("the slow-consumer test must finish within 60s");
}

async fn slow_consumer() {
    let gw = Gateway::start(&[
        "--max-frames-per-second",
        "100000",
        "--max-bad-frames",
        "1000000",
        "--max-queued-turns",
        "100000",
        "--offline-agent-delay",
        "0ms",
        "--history-max-events",
        "200",
        "--outbound-queue-bytes",
        "262144",
    ]);
    let mut flooder = Client::connect(&gw.ws_url()).await;
    let session = flooder.create_session().await;
    let text = "lorem ipsum dolor sit amet ".repeat(TEXT_CHARS / 27 + 1)[..TEXT_CHARS].to_string();
    let frame = json!({"type": "message.send", "session_id": session.id, "text": text}).to_string();
    let (mut sink, mut stream) = flooder.into_split();

    // Warm up: fill the history to its bound and let the allocator settle.
    let warm = flood(&mut sink, &mut stream, &frame, 300).await;
    let baseline = gw.rss_kib();

    // The stalled client joins at the current end of the session and stops reading.
    let mut stalled = Client::connect(&gw.ws_url()).await;
    stalled
        .join(&session.id, Some(warm.last_seq), session.key.as_deref())
        .await;

    let peak = Arc::new(AtomicU64::new(baseline));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop, pid) = (peak.clone(), stop.clone(), gw.pid());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(support::gateway::rss_kib_of(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    let count = PUSH_BYTES / TEXT_CHARS + 1;
    let started = Instant::now();
    let done = flood(&mut sink, &mut stream, &frame, count).await;
    let flood_time = started.elapsed();
    peak.fetch_max(gw.rss_kib(), Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    let pushed = done.accepted * TEXT_CHARS;

    // Now read everything the stalled client was sent, up to its close frame.
    let (mut frames, mut bytes) = (0usize, 0usize);
    let close = loop {
        match stalled.recv(WAIT).await {
            Some(Incoming::Frame(v)) => {
                frames += 1;
                bytes += v.to_string().len();
            }
            Some(Incoming::Close(close)) => break close,
            None => panic!("the stalled client got no close frame ({frames} frames read)"),
        }
    };
    let peak = peak.load(Ordering::Relaxed);
    let growth = peak.saturating_sub(baseline);
    eprintln!(
        "slow consumer: pushed {} MiB in {} messages in {:.1}s; gateway RSS baseline {} MiB, \
         peak {} MiB, growth {} MiB; stalled client read {frames} frames ({} MiB) then close {close:?}",
        pushed >> 20,
        done.accepted,
        flood_time.as_secs_f64(),
        baseline >> 10,
        peak >> 10,
        growth >> 10,
        bytes >> 20,
    );
    assert_eq!(
        close.map(|c| c.0),
        Some(4008),
        "the stalled client must be closed with 4008"
    );
    assert!(pushed >= PUSH_BYTES, "pushed only {pushed} bytes");
    assert!(
        growth < MAX_GROWTH_KIB,
        "gateway RSS grew by {growth} KiB while {} MiB were pushed at a client that never read",
        pushed >> 20
    );
    assert!(
        bytes < pushed / 2,
        "the stalled client was sent most of the flood: {bytes} bytes"
    );
}
