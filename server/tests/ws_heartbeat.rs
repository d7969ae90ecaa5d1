//! Heartbeats: the server pings every `--heartbeat` and closes with 4000 a peer that
//! sends nothing, not even a pong, for `--heartbeat-timeout`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{Client, Gateway, metric_sum};
use tokio::time::Instant;

const ARGS: &[&str] = &["--heartbeat", "200ms", "--heartbeat-timeout", "1s"];

/// A client that never reads (so never answers a ping) is closed with 4000.
#[tokio::test]
async fn client_that_never_answers_pings_is_closed_4000() {
    let gw = Gateway::start(ARGS);
    let mut silent = Client::connect(&gw.ws_url()).await;
    let connected = Instant::now();
    // Reading would answer the pings, so wait for the gateway to report the close
    // instead (its metrics), then read. Bounded: the timeout is 1s, give it 6s.
    let deadline = connected + Duration::from_secs(6);
    while Instant::now() < deadline {
        let metrics = gw.metrics().await;
        if metric_sum(
            &metrics,
            "switchboard_disconnects_total",
            Some("code=\"4000\""),
        )
        .is_some_and(|v| v >= 1.0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = connected.elapsed();
    let (code, reason) = silent.expect_close().await;
    eprintln!("silent client closed {code} ({reason}) after ~{elapsed:?}");
    assert_eq!(
        code, 4000,
        "close code for a peer that stopped answering heartbeats"
    );
    assert!(
        elapsed >= Duration::from_millis(900),
        "closed before the heartbeat timeout: {elapsed:?}"
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
