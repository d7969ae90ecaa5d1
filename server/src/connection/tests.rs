//! One connection driven over in-memory streams on a paused Tokio clock: every close
//! the server decides, with its exact code, each counted exactly once — and no real
//! sleep anywhere (the clock jumps whenever every task waits).

use std::task::Poll;
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
    connect_poisoned(state, who, None)
}

/// [`connect`], over a socket whose read side panics when the peer sends the text
/// `poison`: a panic inside the connection's task, with no hook in the server.
fn connect_poisoned(state: &AppState, who: Authenticated, poison: Option<&'static str>) -> Peer {
    let (send, mut incoming) = mpsc::unbounded_channel();
    let (socket, received) = mpsc::channel(1);
    let stream = futures_util::stream::poll_fn(move |cx| match incoming.poll_recv(cx) {
        Poll::Ready(Some(Ok(Message::Text(text)))) if Some(text.as_str()) == poison => {
            panic!("the socket's read side panicked (injected by the test)")
        }
        other => other,
    });
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

fn user_until(expires_at: u64) -> Authenticated {
    Authenticated {
        access: AccessContext {
            user_id: Some("u1".into()),
            org_id: "default".into(),
            groups: vec![],
            roles: vec![],
            anonymous: false,
            name: None,
        },
        expires_at: Some(expires_at),
    }
}

/// A token whose `exp` the clock cannot represent (validly signed, `u64::MAX`) never
/// expires the connection: it keeps answering, a day later too, and ends like any other.
#[tokio::test(start_paused = true)]
async fn a_token_expiring_beyond_the_clock_keeps_the_connection_serving() {
    let state = gateway(&[]).await;
    let mut peer = connect(&state, user_until(u64::MAX));
    assert_eq!(peer.next_json().await["type"], "welcome");
    peer.send_text(r#"{"type":"ping","id":"p1"}"#);
    assert_eq!(peer.next_json().await["type"], "pong");
    tokio::time::sleep(Duration::from_secs(86_400)).await;
    peer.send_text(r#"{"type":"ping","id":"p2"}"#);
    assert_eq!(peer.next_json().await["re"], "p2");
    let _ = peer.send.send(Ok(Message::Close(None)));
    assert_eq!(
        peer.finished().await,
        [],
        "the peer closed; no close of ours"
    );
}

/// A connection task that panics still cleans up after itself: the peer gets close
/// 1011, counted once; the connection count, the permit and every subscription
/// (its session's and its org's) are given back.
#[tokio::test(start_paused = true)]
async fn a_panicking_connection_task_closes_1011_and_gives_everything_back() {
    let state = gateway(&[]).await;
    let permits = state.connection_limit.available_permits();
    let mut peer = connect_poisoned(&state, anonymous(), Some("poison"));
    assert_eq!(peer.next_json().await["type"], "welcome");
    peer.send_text(r#"{"type":"session.create","id":"c"}"#);
    let created = peer.next_json().await;
    assert_eq!(created["type"], "session.created", "{created}");
    // The creator is a member of its session.
    assert_eq!(
        state.registry.stream_count(),
        2,
        "the org's and the session's"
    );
    assert_eq!(state.metrics.connections.get(), 1);

    peer.send_text("poison");
    let (_, _, code) = peer.until_close().await;
    assert_eq!(code, 1011);
    let state = peer.state.clone();
    assert_counted_once(&peer.finished().await, CloseCode::InternalError);
    assert_eq!(
        state.registry.stream_count(),
        0,
        "no subscription left behind"
    );
    assert!(
        state.connections.is_empty(),
        "no connection left registered"
    );
    assert_eq!(state.metrics.connections.get(), 0);
    assert_eq!(state.connection_limit.available_permits(), permits);
}
