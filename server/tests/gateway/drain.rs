//! Draining on SIGTERM (docs/protocol.md §9).

use std::time::Duration;

use serde_json::{Value, json};

use crate::support;
use crate::support::knowledge::{self, REFUND_QUESTION};
use crate::support::{Client, Gateway, is_assistant_message, seq, ty};

fn assert_goaway_then_1012(frames: &[Value], code: u16, who: &str) {
    let last = frames
        .last()
        .unwrap_or_else(|| panic!("{who}: no frame before the close"));
    assert_eq!(
        last,
        &json!({"type": "goaway", "reason": "draining"}),
        "{who}: the frame before the close must be goaway: {}",
        support::summary(frames)
    );
    assert_eq!(code, 1012, "{who}: close code while draining");
}

async fn assert_ready_is_503_draining(gw: &Gateway) {
    let resp = gw.get("/ready").await;
    assert_eq!(resp.status(), 503, "/ready while draining");
    let body: Value = resp.json().await.expect("/ready body is JSON");
    assert_eq!(
        body,
        json!({"error": {"code": "unavailable", "message": "draining"}})
    );
    assert_eq!(
        gw.get("/health").await.status(),
        200,
        "/health while draining"
    );
}

/// SIGTERM during a turn: the member gets `goaway` and 1012, `/ready` turns 503, a new
/// connection can still join and read the whole turn (replay then live) to `turn.end`
/// completed and the assistant message, but may not create or send; then it gets
/// `goaway` and 1012 and the process exits 0.
#[tokio::test]
async fn sigterm_during_a_turn_finishes_it_for_late_joiners_then_exits_0() {
    let kb = knowledge::standard_file();
    let mut gw = Gateway::start(&[
        "--knowledge-file",
        kb.as_str(),
        "--offline-agent-delay",
        "100ms",
        "--drain-grace",
        "20s",
    ]);
    let mut a = Client::connect(&gw.ws_url()).await;
    let s = a.create_session().await;
    let accepted = a.send_message(&s.id, REFUND_QUESTION).await;
    let start = a.next_of_type("turn.start").await;
    gw.sigterm();

    let (frames, code, _) = a.frames_until_close().await;
    assert_goaway_then_1012(&frames, code, "A");
    assert!(
        frames.iter().all(|f| ty(f) != "turn.end"),
        "the turn ended before the drain started; make it longer"
    );
    assert_ready_is_503_draining(&gw).await;

    let mut b = Client::connect(&gw.ws_url()).await;
    let joined = b.join(&s.id, None, s.key.as_deref()).await;
    let create = b.request("session.create", json!({})).await;
    assert_eq!(
        create["code"], "unavailable",
        "session.create while draining: {create}"
    );
    let send = b
        .request(
            "message.send",
            json!({"session_id": s.id, "text": "another"}),
        )
        .await;
    assert_eq!(
        send["code"], "unavailable",
        "message.send while draining: {send}"
    );

    let events = b.collect_until(is_assistant_message).await;
    let user = &events[0];
    assert_eq!(
        user["message_id"], accepted["message_id"],
        "replay starts at the user message"
    );
    let end = events
        .iter()
        .find(|f| ty(f) == "turn.end")
        .expect("turn.end");
    assert_eq!(end["turn_id"], start["turn_id"]);
    assert_eq!(end["status"], "completed", "{end}");
    assert_eq!(events.last().unwrap()["text"], end["text"]);
    assert!(
        seq(end) > joined["last_seq"].as_u64().unwrap(),
        "the turn was still running when B joined"
    );

    let (rest, code, _) = b.frames_until_close().await;
    assert_goaway_then_1012(&rest, code, "B");
    let status = gw.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "exit status after a drain: {status}");
}

/// When `--drain-grace` runs out, the running turn ends `failed` saying the gateway
/// shut down, and the process still exits 0.
#[tokio::test]
async fn drain_grace_running_out_fails_the_turn_and_exits_0() {
    let kb = knowledge::standard_file();
    let mut gw = Gateway::start(&[
        "--knowledge-file",
        kb.as_str(),
        "--offline-agent-delay",
        "300ms",
        "--drain-grace",
        "1500ms",
    ]);
    let mut a = Client::connect(&gw.ws_url()).await;
    let s = a.create_session().await;
    a.send_message(&s.id, REFUND_QUESTION).await;
    a.next_of_type("turn.start").await;
    gw.sigterm();
    let (frames, code, _) = a.frames_until_close().await;
    assert_goaway_then_1012(&frames, code, "A");

    let mut b = Client::connect(&gw.ws_url()).await;
    b.join(&s.id, None, s.key.as_deref()).await;
    let (frames, code, _) = b.frames_until_close().await;
    let end = frames
        .iter()
        .find(|f| ty(f) == "turn.end")
        .unwrap_or_else(|| {
            panic!(
                "no turn.end before the close: {}",
                support::summary(&frames)
            )
        });
    assert_eq!(end["status"], "failed", "{end}");
    assert!(
        end["error"]
            .as_str()
            .is_some_and(|e| e.contains("shut down")),
        "turn.end.error should say the gateway shut down: {end}"
    );
    assert!(
        !frames.iter().any(is_assistant_message),
        "no assistant message for a failed turn"
    );
    assert_goaway_then_1012(&frames, code, "B");
    let status = gw.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "exit status after a drain: {status}");
}

/// SIGTERM the moment the gateway prints that it listens, before anyone could ask it
/// whether it is ready: it drains and exits 0 rather than dying of the signal.
#[tokio::test]
async fn sigterm_right_after_the_listening_line_drains() {
    for round in 0..5 {
        let mut gw = Gateway::start(&[]);
        gw.sigterm();
        let status = gw.wait_exit(Duration::from_secs(10)).await;
        assert!(
            status.success(),
            "round {round}: exit status {status}; log:\n{}",
            gw.log_tail(20)
        );
    }
}

/// An idle gateway exits 0 promptly on SIGTERM, after sending its idle connection
/// `goaway` and 1012.
#[tokio::test]
async fn idle_gateway_exits_0_quickly_on_sigterm() {
    let mut gw = Gateway::start(&[]);
    assert_eq!(gw.get("/ready").await.status(), 200);
    let mut client = Client::connect(&gw.ws_url()).await;
    let started = std::time::Instant::now();
    gw.sigterm();
    let (frames, code, _) = client.frames_until_close().await;
    assert_goaway_then_1012(&frames, code, "idle client");
    let status = gw.wait_exit(Duration::from_secs(5)).await;
    eprintln!("idle drain took {:?}", started.elapsed());
    assert!(status.success(), "exit status: {status}");
}
