//! Heartbeats: the server pings every `--heartbeat` and closes with 4000 a peer that
//! sends nothing, not even a pong, for `--heartbeat-timeout`.

use std::time::Duration;

use tokio::time::Instant;

use crate::support::{Client, Gateway, RawClient, RawEvent};

const ARGS: &[&str] = &["--heartbeat", "200ms", "--heartbeat-timeout", "1s"];

/// A client that never answers pings is closed with 4000 after the heartbeat timeout,
/// having been pinged about every `--heartbeat` before. (The hand-written client reads
/// but, unlike tungstenite, never answers a ping.)
#[tokio::test]
async fn client_that_never_answers_pings_is_closed_4000() {
    let gw = Gateway::start(ARGS);
    let mut silent = RawClient::connect(gw.addr(), "/ws").await;
    let connected = Instant::now();
    match silent.next().await {
        RawEvent::Text(w) => assert_eq!(w["type"], "welcome", "{w}"),
        other => panic!("expected welcome, got {other:?}"),
    }
    let (frames, pings, end) = silent.until_close().await;
    let elapsed = connected.elapsed();
    eprintln!("silent client: {pings} pings, then {end:?} after {elapsed:?}");
    assert!(frames.is_empty(), "unexpected frames: {frames:?}");
    match end {
        RawEvent::Close(code, _) => assert_eq!(
            code,
            Some(4000),
            "close code for a peer that stopped answering heartbeats"
        ),
        other => panic!("expected a close frame with 4000, got {other:?}"),
    }
    assert!(pings >= 2, "the server pings every 200ms; saw {pings}");
    assert!(
        elapsed >= Duration::from_millis(900),
        "closed before the heartbeat timeout: {elapsed:?}"
    );
    assert!(
        elapsed <= Duration::from_secs(4),
        "closed long after the 1s heartbeat timeout: {elapsed:?}"
    );
}

/// A client that keeps reading (tungstenite answers each ping) stays connected well
/// past the heartbeat timeout, and receives the server's pings.
#[tokio::test]
async fn client_that_answers_pings_stays_connected() {
    let gw = Gateway::start(ARGS);
    let mut client = Client::connect(&gw.ws_url()).await;
    let until = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < until {
        // Panics if a close frame arrives; pings are answered while reading.
        if let Some(frame) = client
            .next_frame_within(until.saturating_duration_since(Instant::now()))
            .await
        {
            panic!("unexpected frame on an idle connection: {frame}");
        }
    }
    client.ping_pong().await;
    assert!(
        client.pings_seen >= 5,
        "expected a ping about every 200ms over 2.5s, saw {}",
        client.pings_seen
    );
}
