//! One connection driven over in-memory streams on a paused Tokio clock: every close
//! the server decides, with its exact code, each counted exactly once — and no real
//! sleep anywhere (the clock jumps whenever every task waits).

use std::time::Duration;

use axum::extract::ws::Message;
use serde_json::Value;
use switchboard_backplane::StreamName;
use switchboard_protocol::{CloseCode, EventBody};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::PollSender;

use super::{Handshake, heartbeat, serve};
use crate::access::{AccessContext, Authenticated};
use crate::config::{BackplaneChoice, parse_serve};
use crate::state::AppState;

/// Longest any step may take, on the paused clock.
const PATIENCE: Duration = Duration::from_secs(300);

/// A connection as its peer sees it.
struct Peer {
    state: AppState,
    /// What the peer sends.
    send: mpsc::UnboundedSender<Result<Message, axum::Error>>,
    /// What the server wrote to the socket, one frame at a time (a tiny buffer: a
    /// peer that stops reading blocks the writer, as a full socket would).
    received: mpsc::Receiver<Message>,
    task: JoinHandle<()>,
}

async fn gateway(flags: &[&str]) -> AppState {
    let mut all = vec!["--store", "memory"];
    all.extend_from_slice(flags);
    let config = parse_serve(&all).expect("flags parse");
    AppState::build(config, BackplaneChoice::Memory)
        .await
        .expect("state builds")
}

fn anonymous() -> Authenticated {
    Authenticated {
        access: AccessContext {
            user_id: None,
            org_id: "default".into(),
            groups: vec![],
            roles: vec![],
            anonymous: true,
            name: None,
        },
        expires_at: None,
    }
}

fn connect(state: &AppState, who: Authenticated) -> Peer {
    let (send, mut incoming) = mpsc::unbounded_channel();
    let (socket, received) = mpsc::channel(1);
    let stream = futures_util::stream::poll_fn(move |cx| incoming.poll_recv(cx));
    let permit = state
        .connection_limit
        .clone()
        .try_acquire_owned()
        .expect("a connection permit");
    let handshake = Handshake {
        access: Ok(who),
        peer: None,
        client: None,
    };
    let task = tokio::spawn(serve(
        PollSender::new(socket),
        stream,
        state.clone(),
        handshake,
        permit,
    ));
    Peer {
        state: state.clone(),
        send,
        received,
        task,
    }
}

impl Peer {
    fn send_text(&self, text: &str) {
        let _ = self.send.send(Ok(Message::Text(text.into())));
    }

    async fn next(&mut self) -> Message {
        tokio::time::timeout(PATIENCE, self.received.recv())
            .await
            .expect("the server wrote something")
            .expect("the socket is still open")
    }

    async fn next_json(&mut self) -> Value {
        match self.next().await {
            Message::Text(text) => serde_json::from_str(text.as_str()).expect("JSON"),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// Every frame until the close frame: (text frames, pings, close code).
    async fn until_close(&mut self) -> (Vec<Value>, usize, u16) {
        let mut texts = Vec::new();
        let mut pings = 0;
        loop {
            match self.next().await {
                Message::Text(text) => {
                    texts.push(serde_json::from_str(text.as_str()).expect("JSON"));
                }
                Message::Ping(_) => pings += 1,
                Message::Close(Some(frame)) => return (texts, pings, frame.code),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    /// Wait for the connection's task to end, then the disconnects it counted, by code.
    async fn finished(self) -> Vec<(String, u64)> {
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("the connection ended")
            .expect("the connection task did not panic");
        let mut counted = Vec::new();
        for family in prometheus::core::Collector::collect(&self.state.metrics.disconnects) {
            for metric in family.get_metric() {
                let code = metric
                    .get_label()
                    .iter()
                    .find(|l| l.name() == "code")
                    .map(|l| l.value().to_string())
                    .unwrap_or_default();
                counted.push((code, metric.get_counter().get_value() as u64));
            }
        }
        counted
    }
}

fn assert_counted_once(counted: &[(String, u64)], code: CloseCode) {
    assert_eq!(
        counted,
        [(code.code().to_string(), 1)],
        "exactly one disconnect, with code {}",
        code.code()
    );
}

/// A peer that sends nothing, not even a pong, is pinged every `--heartbeat` and
/// closed with 4000 once silent for `--heartbeat-timeout`; the close counts once.
#[tokio::test(start_paused = true)]
async fn a_silent_peer_is_pinged_then_closed_4000_and_counted_once() {
    let state = gateway(&["--heartbeat", "1s", "--heartbeat-timeout", "3s"]).await;
    let sweeper = tokio::spawn(heartbeat::sweep(state.clone()));
    let opened = tokio::time::Instant::now();
    let mut peer = connect(&state, anonymous());
    assert_eq!(peer.next_json().await["type"], "welcome");
    let (texts, pings, code) = peer.until_close().await;
    let silent = opened.elapsed();
    assert!(texts.is_empty(), "{texts:?}");
    assert_eq!(code, 4000);
    assert_eq!(pings, 3, "pinged at 1, 2 and 3 s");
    assert_eq!(
        silent,
        Duration::from_secs(4),
        "closed at the first sweep past 3 s"
    );
    assert_counted_once(&peer.finished().await, CloseCode::HeartbeatTimeout);
    sweeper.abort();
}

/// A connection whose token expires gets `token_expired`, then close 4401 at `exp`.
#[tokio::test(start_paused = true)]
async fn an_expired_token_gets_token_expired_then_4401() {
    let state = gateway(&[]).await;
    let now = switchboard_backplane::now_ms() / 1000;
    let who = Authenticated {
        access: AccessContext {
            user_id: Some("u1".into()),
            org_id: "default".into(),
            groups: vec![],
            roles: vec![],
            anonymous: false,
            name: None,
        },
        expires_at: Some(now + 90),
    };
    let opened = tokio::time::Instant::now();
    let mut peer = connect(&state, who);
    assert_eq!(peer.next_json().await["type"], "welcome");
    let (texts, _, code) = peer.until_close().await;
    assert_eq!(code, 4401);
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert_eq!(texts[0]["code"], "token_expired", "{}", texts[0]);
    let lived = opened.elapsed();
    assert!(
        lived >= Duration::from_secs(89) && lived <= Duration::from_secs(90),
        "{lived:?}"
    );
    assert_counted_once(&peer.finished().await, CloseCode::Unauthorized);
}

/// `--max-bad-frames` bad frames in a row: each gets `bad_request`, the last one also
/// close 4029.
#[tokio::test(start_paused = true)]
async fn too_many_bad_frames_in_a_row_close_4029() {
    let state = gateway(&["--max-bad-frames", "5"]).await;
    let mut peer = connect(&state, anonymous());
    assert_eq!(peer.next_json().await["type"], "welcome");
    for _ in 0..5 {
        peer.send_text("this is not JSON");
    }
    let (texts, _, code) = peer.until_close().await;
    assert_eq!(code, 4029);
    assert_eq!(texts.len(), 5, "{texts:?}");
    assert!(
        texts.iter().all(|t| t["code"] == "bad_request"),
        "{texts:?}"
    );
    assert_counted_once(&peer.finished().await, CloseCode::TooManyBadFrames);
}

/// A frame over `--max-frame-bytes` gets `too_large`, then close 1009 — whether the
/// codec refused it (a capacity error) or it arrived whole.
#[tokio::test(start_paused = true)]
async fn an_oversize_frame_gets_too_large_then_1009() {
    let state = gateway(&["--max-frame-bytes", "1024"]).await;

    let mut whole = connect(&state, anonymous());
    assert_eq!(whole.next_json().await["type"], "welcome");
    whole.send_text(&format!(
        "{{\"type\":\"ping\",\"pad\":\"{}\"}}",
        "x".repeat(2000)
    ));
    let (texts, _, code) = whole.until_close().await;
    assert_eq!(code, 1009);
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert_eq!(texts[0]["code"], "too_large");
    assert_counted_once(&whole.finished().await, CloseCode::MessageTooBig);

    let state = gateway(&["--max-frame-bytes", "1024"]).await;
    let mut refused = connect(&state, anonymous());
    assert_eq!(refused.next_json().await["type"], "welcome");
    let capacity =
        tungstenite::Error::Capacity(tungstenite::error::CapacityError::MessageTooLong {
            size: 2000,
            max_size: 1024,
        });
    let _ = refused.send.send(Err(axum::Error::new(capacity)));
    let (texts, _, code) = refused.until_close().await;
    assert_eq!(code, 1009);
    assert_eq!(texts[0]["code"], "too_large");
    assert_counted_once(&refused.finished().await, CloseCode::MessageTooBig);
}

/// A peer that stops reading while events keep coming overflows its outbound queue:
/// close 4008, abortively (what was queued is dropped, not sent), counted once.
#[tokio::test(start_paused = true)]
async fn a_peer_that_stops_reading_is_closed_4008() {
    let state = gateway(&["--outbound-queue-bytes", "4096"]).await;
    let mut peer = connect(&state, anonymous());
    assert_eq!(peer.next_json().await["type"], "welcome");
    // The peer reads nothing more. Every anonymous connection is a live member of
    // its org's stream, so events there are delivered to it.
    let org = StreamName::org("default").expect("org stream");
    const SENT: usize = 200;
    for i in 0..SENT {
        let body = EventBody::Custom {
            name: "tick".into(),
            data: serde_json::json!({"i": i, "pad": "x".repeat(100)}),
            publisher: None,
            durable: false,
        };
        state.events.append(&org, body).await.expect("append");
        tokio::task::yield_now().await;
    }
    let (texts, _, code) = peer.until_close().await;
    assert_eq!(code, 4008);
    assert!(
        texts.len() < SENT / 4,
        "the queued events were dropped, not sent: {} of {SENT} arrived",
        texts.len()
    );
    assert_counted_once(&peer.finished().await, CloseCode::SlowConsumer);
}
