//! Slow consumers are cut off with 4008 instead of growing the gateway's memory.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use crate::support::client::{PRESENCE_FRAMES, Ws};
use crate::support::{Client, Gateway, RawClient, RawEvent, WAIT, is_event, metric_sum, ty};

/// Large messages, so 64 MiB take few turns (each message queues one turn).
const TEXT_CHARS: usize = 32000;
const PUSH_BYTES: usize = 64 << 20;
const MAX_GROWTH_KIB: u64 = 48 << 10;
/// Messages whose turn has not ended yet: 6 × 32 KB stays under the flooder's own
/// 256 KiB outbound queue even if it reads late.
const WINDOW: usize = 6;
/// Turns of one session run one at a time; several sessions let them run in parallel.
const SESSIONS: usize = 4;
/// Once this much was pushed, the stalled client's queue (256 KiB) and the socket
/// buffers (a few MiB) have surely overflowed.
const SURELY_OVERFLOWED_BYTES: usize = 16 << 20;

#[derive(Default)]
struct Flood {
    accepted: usize,
    /// The newest seq seen per session.
    last_seq: HashMap<String, u64>,
}

/// Send `count` `message.send` frames (round robin over `frames`) while reading the
/// flooder's own socket, with at most [`WINDOW`] messages whose turn has not ended.
/// The flooder is thus never a slow consumer itself, and the gateway's turn queues
/// (which hold each queued message's text) stay small: memory growth can only come
/// from the stalled client.
async fn flood(
    sink: &mut SplitSink<Ws, Message>,
    stream: &mut SplitStream<Ws>,
    frames: &[String],
    count: usize,
    progress: &AtomicUsize,
) -> Flood {
    let window = Semaphore::new(WINDOW);
    let send = async {
        for i in 0..count {
            window.acquire().await.expect("semaphore open").forget();
            sink.send(Message::text(frames[i % frames.len()].clone()))
                .await
                .unwrap_or_else(|e| panic!("flooder send {i} failed: {e}"));
        }
    };
    let recv = async {
        let mut flood = Flood::default();
        let mut turns_ended = 0;
        while flood.accepted < count || turns_ended < count {
            let msg = tokio::time::timeout(WAIT, stream.next())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "flooder: nothing for {WAIT:?} after {} accepted, {turns_ended} turns ended",
                        flood.accepted
                    )
                });
            match msg {
                Some(Ok(Message::Text(text))) => {
                    let v: Value = serde_json::from_str(text.as_str()).expect("JSON frame");
                    match ty(&v) {
                        "message.accepted" => {
                            flood.accepted += 1;
                            progress.fetch_add(1, Ordering::Relaxed);
                        }
                        // The assistant message is a turn's last event.
                        "message" if v["role"] == "assistant" => {
                            turns_ended += 1;
                            window.add_permits(1);
                        }
                        "error" => panic!("flooder got an error: {v}"),
                        _ => {}
                    }
                    if is_event(&v) {
                        let sid = v["session_id"].as_str().unwrap().to_string();
                        let last = flood.last_seq.entry(sid).or_default();
                        *last = (*last).max(v["seq"].as_u64().unwrap());
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
        "--max-text-chars",
        "32000",
    ]);
    let mut flooder = Client::connect(&gw.ws_url()).await;
    let mut sessions = Vec::new();
    for _ in 0..SESSIONS {
        sessions.push(flooder.create_session().await);
    }
    let text = "lorem ipsum dolor sit amet ".repeat(TEXT_CHARS / 27 + 1)[..TEXT_CHARS].to_string();
    let frames: Vec<String> = sessions
        .iter()
        .map(|s| json!({"type": "message.send", "session_id": s.id, "text": text}).to_string())
        .collect();
    let (mut sink, mut stream) = flooder.into_split();

    // Warm up: fill the histories to their bound and let the allocator settle.
    let warm = flood(&mut sink, &mut stream, &frames, 100, &AtomicUsize::new(0)).await;

    // The stalled client joins every session at its current end, then stops reading.
    // It is the hand-written client: it never writes (no pongs), so it can read what
    // the gateway sent before hanging up.
    let mut stalled = RawClient::connect(gw.addr(), "/ws").await;
    assert!(matches!(stalled.next().await, RawEvent::Text(w) if w["type"] == "welcome"));
    for (i, s) in sessions.iter().enumerate() {
        let after = warm.last_seq.get(&s.id).copied().unwrap_or(0);
        let id = format!("stall-{i}");
        let join = json!({"type": "session.join", "id": id, "session_id": s.id,
                          "after_seq": after, "session_key": s.key});
        stalled.send_text(&join.to_string()).await.unwrap();
        // Replayed events and presence frames of earlier joins may come first: skip to
        // the reply.
        loop {
            match stalled.next().await {
                RawEvent::Text(reply) if reply["re"] == id.as_str() => {
                    assert_eq!(reply["type"], "session.joined", "{reply}");
                    break;
                }
                RawEvent::Text(event) => assert!(
                    is_event(&event) || PRESENCE_FRAMES.contains(&ty(&event)),
                    "{event}"
                ),
                other => panic!("expected session.joined, got {other:?}"),
            }
        }
    }
    let baseline = gw.rss_kib();

    let peak = Arc::new(AtomicU64::new(baseline));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop, pid) = (peak.clone(), stop.clone(), gw.pid());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(
                    switchboard_testkit::gateway::rss_kib_of(pid),
                    Ordering::Relaxed,
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    let count = PUSH_BYTES / TEXT_CHARS + 1;
    let started = Instant::now();
    let progress = AtomicUsize::new(0);
    let flooding = async {
        let done = flood(&mut sink, &mut stream, &frames, count, &progress).await;
        (done, started.elapsed())
    };
    // The stalled client keeps not reading until the gateway reports that it cut it off
    // (a 4008 disconnect in /metrics) or until 16 MiB were pushed (its queue and the
    // socket buffers have then surely overflowed), then reads everything it was sent up
    // to the close frame while the flood goes on. (The gateway gives an unread close
    // frame only a few seconds before it drops the socket, so waiting for the whole
    // flood first could miss it.) If the gateway did not bound the queue, reading from
    // here on would find no close frame and the test fails.
    let stalled_reader = async {
        let why = loop {
            let metrics = gw.metrics().await;
            if metric_sum(
                &metrics,
                "switchboard_disconnects_total",
                Some("code=\"4008\""),
            )
            .is_some_and(|v| v >= 1.0)
            {
                break format!("4008 in /metrics after {:?}", started.elapsed());
            }
            let pushed = progress.load(Ordering::Relaxed) * TEXT_CHARS;
            if pushed >= SURELY_OVERFLOWED_BYTES {
                break format!("{} MiB pushed after {:?}", pushed >> 20, started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let (mut frames, mut bytes) = (0usize, 0usize);
        let end = loop {
            match stalled.next().await {
                RawEvent::Text(v) => {
                    frames += 1;
                    bytes += v.to_string().len();
                }
                RawEvent::Ping | RawEvent::Pong | RawEvent::Binary(_) => {}
                end => break end,
            }
        };
        (why, frames, bytes, end)
    };
    let ((done, flood_time), (reported, frames_read, bytes_read, end)) =
        tokio::join!(flooding, stalled_reader);
    peak.fetch_max(gw.rss_kib(), Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    let pushed = done.accepted * TEXT_CHARS;

    let peak = peak.load(Ordering::Relaxed);
    let growth = peak.saturating_sub(baseline);
    eprintln!(
        "slow consumer: pushed {} MiB in {} messages over {SESSIONS} sessions in {:.1}s; \
         stalled client started reading on {reported}; gateway RSS baseline {} MiB, peak {} MiB, \
         growth {} MiB; stalled client read {frames_read} frames ({} KiB) then {end:?}",
        pushed >> 20,
        done.accepted,
        flood_time.as_secs_f64(),
        baseline >> 10,
        peak >> 10,
        growth >> 10,
        bytes_read >> 10,
    );
    assert!(
        matches!(end, RawEvent::Close(Some(4008), _)),
        "the stalled client must get a close frame with 4008, got {end:?}"
    );
    assert!(pushed >= PUSH_BYTES, "pushed only {pushed} bytes");
    assert!(
        growth < MAX_GROWTH_KIB,
        "gateway RSS grew by {growth} KiB while {} MiB were pushed at a client that never read",
        pushed >> 20
    );
    assert!(
        bytes_read < pushed / 2,
        "the stalled client was sent most of the flood: {bytes_read} bytes"
    );
    let metrics = gw.metrics().await;
    assert!(
        metric_sum(
            &metrics,
            "switchboard_disconnects_total",
            Some("code=\"4008\"")
        )
        .is_some_and(|v| v >= 1.0),
        "switchboard_disconnects_total{{code=\"4008\"}} must count the slow consumer:\n{}",
        metrics
            .lines()
            .filter(|l| l.contains("disconnects"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
