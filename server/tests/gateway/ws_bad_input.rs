//! Bad input, limits and credentials (docs/protocol.md §5).

use std::time::Duration;

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::support;
use crate::support::{Client, Gateway, RawClient, RawEvent, ty};

/// Send `text`, expect an `error` with `code` (and `re` when given), then prove the
/// connection survived with a ping round trip.
async fn assert_rejected_and_alive(
    client: &mut Client,
    text: &str,
    code: &str,
    re: Option<&str>,
) -> Value {
    client.send_text(text).await;
    let error = client.next_frame().await;
    assert_eq!(ty(&error), "error", "reply to {text}: {error}");
    assert_eq!(error["code"], code, "reply to {text}: {error}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "an error explains itself: {error}"
    );
    match re {
        Some(id) => assert_eq!(error["re"], id, "re must echo the id: {error}"),
        None => assert!(
            error.get("re").is_none_or(Value::is_null),
            "no readable id, no re: {error}"
        ),
    }
    client.ping_pong().await;
    error
}

async fn connected(args: &[&str]) -> (Gateway, Client) {
    let gw = Gateway::start(args);
    let client = Client::connect(&gw.ws_url()).await;
    (gw, client)
}

/// A frame that is not JSON is `bad_request` (no `re`) and the connection stays open.
#[tokio::test]
async fn not_json_is_bad_request_and_the_connection_stays_open() {
    let (_gw, mut client) = connected(&[]).await;
    assert_rejected_and_alive(&mut client, "this is {not json", "bad_request", None).await;
    assert_rejected_and_alive(&mut client, "", "bad_request", None).await;
}

/// A JSON value that is not an object (array, string, number) is `bad_request`.
#[tokio::test]
async fn json_that_is_not_an_object_is_bad_request() {
    let (_gw, mut client) = connected(&[]).await;
    for text in [r#"[{"type":"ping","id":"a"}]"#, r#""ping""#, "42", "null"] {
        assert_rejected_and_alive(&mut client, text, "bad_request", None).await;
    }
}

/// An unknown `type` is `bad_request` with `re` echoing the frame's id; so is a frame
/// with no `type`.
#[tokio::test]
async fn unknown_or_missing_type_is_bad_request_echoing_the_id() {
    let (_gw, mut client) = connected(&[]).await;
    assert_rejected_and_alive(
        &mut client,
        r#"{"type":"session.explode","id":"u-1"}"#,
        "bad_request",
        Some("u-1"),
    )
    .await;
    assert_rejected_and_alive(
        &mut client,
        r#"{"id":"u-2","session_id":"s_x"}"#,
        "bad_request",
        Some("u-2"),
    )
    .await;
}

/// A missing required field (`session.join` without `session_id`) is `bad_request`
/// with `re`.
#[tokio::test]
async fn missing_field_is_bad_request_echoing_the_id() {
    let (_gw, mut client) = connected(&[]).await;
    assert_rejected_and_alive(
        &mut client,
        r#"{"type":"session.join","id":"j-1"}"#,
        "bad_request",
        Some("j-1"),
    )
    .await;
    assert_rejected_and_alive(
        &mut client,
        r#"{"type":"message.send","id":"j-2","session_id":"s_abc"}"#,
        "bad_request",
        Some("j-2"),
    )
    .await;
}

/// A mistyped field (`after_seq` as a string) is `bad_request` with `re`.
#[tokio::test]
async fn mistyped_field_is_bad_request_echoing_the_id() {
    let (_gw, mut client) = connected(&[]).await;
    let s = client.create_session().await;
    let frame = json!({"type": "session.join", "id": "k-1", "session_id": s.id, "after_seq": "5", "session_key": s.key});
    assert_rejected_and_alive(&mut client, &frame.to_string(), "bad_request", Some("k-1")).await;
    let frame = json!({"type": "message.send", "id": "k-2", "session_id": s.id, "text": 17});
    assert_rejected_and_alive(&mut client, &frame.to_string(), "bad_request", Some("k-2")).await;
}

/// A `session_id` outside `[A-Za-z0-9_@-]{1,128}` is `bad_request`.
#[tokio::test]
async fn malformed_session_id_is_bad_request() {
    let (_gw, mut client) = connected(&[]).await;
    for sid in [
        "bad id!".to_string(),
        "s/../x".to_string(),
        "a".repeat(129),
        String::new(),
    ] {
        let frame = json!({"type": "session.join", "id": "sid", "session_id": sid});
        assert_rejected_and_alive(&mut client, &frame.to_string(), "bad_request", Some("sid"))
            .await;
    }
}

/// An `id` longer than 64 characters is `bad_request`.
#[tokio::test]
async fn id_longer_than_64_chars_is_bad_request() {
    let (_gw, mut client) = connected(&[]).await;
    let frame = json!({"type": "ping", "id": "i".repeat(65)});
    client.send_text(frame.to_string()).await;
    let error = client.next_frame().await;
    assert_eq!(error["code"], "bad_request", "{error}");
    client.ping_pong().await;
    // 64 is fine.
    let id = "i".repeat(64);
    client.send_json(json!({"type": "ping", "id": id})).await;
    assert_eq!(client.next_frame().await, json!({"type": "pong", "re": id}));
}

/// A binary frame is `unsupported` and the connection stays open.
#[tokio::test]
async fn binary_frame_is_unsupported_and_the_connection_stays_open() {
    let (_gw, mut client) = connected(&[]).await;
    client
        .send_raw(Message::binary(br#"{"type":"ping","id":"b-1"}"#.to_vec()))
        .await;
    let error = client.next_frame().await;
    assert_eq!(ty(&error), "error", "{error}");
    assert_eq!(error["code"], "unsupported", "{error}");
    client.ping_pong().await;
}

/// Session metadata over 4 KiB is `too_large` and the connection stays open.
#[tokio::test]
async fn session_metadata_over_4_kib_is_too_large() {
    let (_gw, mut client) = connected(&[]).await;
    let frame =
        json!({"type": "session.create", "id": "md", "metadata": {"blob": "x".repeat(5000)}});
    assert_rejected_and_alive(&mut client, &frame.to_string(), "too_large", Some("md")).await;
    let frame = json!({"type": "session.create", "id": "md2", "metadata": {"page": "/pricing"}});
    client.send_text(frame.to_string()).await;
    assert_eq!(ty(&client.next_frame().await), "session.created");
}

/// A text frame of exactly `--max-frame-bytes` is served; one byte more gets `error`
/// `too_large` and close 1009.
#[tokio::test]
async fn frame_over_max_frame_bytes_is_too_large_then_closed_1009() {
    let gw = Gateway::start(&["--max-frame-bytes", "1024"]);
    // Hand-written client: it reads what the server sent before hanging up, even if the
    // server does not wait for the closing handshake.
    let mut client = RawClient::connect(gw.addr(), "/ws").await;
    assert!(matches!(client.next().await, RawEvent::Text(w) if w["type"] == "welcome"));
    let padded = |len: usize, id: &str| {
        let base = json!({"type": "ping", "id": id, "pad": ""}).to_string();
        let frame =
            json!({"type": "ping", "id": id, "pad": "p".repeat(len - base.len())}).to_string();
        assert_eq!(frame.len(), len);
        frame
    };
    client.send_text(&padded(1024, "at")).await.unwrap();
    assert_eq!(
        client.next().await,
        RawEvent::Text(json!({"type": "pong", "re": "at"})),
        "a frame of exactly max_frame_bytes is served"
    );

    client.send_text(&padded(1025, "over")).await.unwrap();
    let (frames, _, end) = client.until_close().await;
    assert!(
        frames
            .iter()
            .any(|f| ty(f) == "error" && f["code"] == "too_large"),
        "expected error too_large before the close, got {frames:?} then {end:?}"
    );
    assert!(
        matches!(end, RawEvent::Close(Some(1009), _)),
        "expected close 1009 after an oversize frame, got {end:?} (frames {frames:?})"
    );
}

/// A client that reads slowly still gets every reply, `too_large` and close 1009
/// after an oversize frame. Its small receive window keeps the gateway's last frames
/// in the gateway's send queue when the gateway closes; closing a socket with input
/// unread (the rest of the oversize frame) makes the kernel reset the connection and
/// drop that queue, so the gateway reads and discards the rest first.
#[tokio::test]
async fn a_slow_reader_still_gets_too_large_and_1009_after_an_oversize_frame() {
    let gw = Gateway::start(&[
        "--max-frame-bytes",
        "1024",
        "--max-frames-per-second",
        "1000",
    ]);
    let mut client = RawClient::connect_with_receive_buffer(gw.addr(), "/ws", 2048).await;
    // About 6 KiB of pongs, more than the client's window: it reads none of them yet.
    let pings = 200;
    for i in 0..pings {
        let ping = json!({"type": "ping", "id": format!("p{i}")}).to_string();
        client.send_text(&ping).await.unwrap();
    }
    let oversize = json!({"type": "ping", "id": "over", "pad": "p".repeat(8 * 1024)});
    client.send_text(&oversize.to_string()).await.unwrap();
    // The gateway refuses the frame and closes while the client is not reading.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (frames, _, end) = client.until_close().await;
    let pongs = frames.iter().filter(|f| ty(f) == "pong").count();
    assert_eq!(pongs, pings, "every ping answered (then {end:?})");
    assert!(
        frames
            .iter()
            .any(|f| ty(f) == "error" && f["code"] == "too_large"),
        "expected error too_large before the close, got {end:?} after {} frames",
        frames.len()
    );
    assert!(
        matches!(end, RawEvent::Close(Some(1009), _)),
        "expected close 1009 after an oversize frame, got {end:?}"
    );
}

/// Frames over `--max-frames-per-second` each get `error` `rate_limited` (with `re`)
/// instead of being served, and the connection stays open.
#[tokio::test]
async fn frames_over_the_rate_are_refused_with_rate_limited() {
    let (_gw, mut client) =
        connected(&["--max-frames-per-second", "5", "--max-bad-frames", "1000"]).await;
    let n = 30;
    for i in 0..n {
        client
            .send_json(json!({"type": "ping", "id": format!("r{i}")}))
            .await;
    }
    // One reply per frame: a pong when served, an error rate_limited when refused.
    let mut replies = Vec::new();
    for _ in 0..n {
        replies.push(client.next_frame().await);
    }
    let pongs: Vec<&Value> = replies.iter().filter(|f| ty(f) == "pong").collect();
    let limited: Vec<&Value> = replies
        .iter()
        .filter(|f| ty(f) == "error" && f["code"] == "rate_limited")
        .collect();
    eprintln!(
        "burst of {n} pings at 5/s: {} served, {} rate limited",
        pongs.len(),
        limited.len()
    );
    assert_eq!(
        pongs.len() + limited.len(),
        n,
        "only pongs and rate_limited errors: {replies:?}"
    );
    assert!(!pongs.is_empty(), "the first frames are within the rate");
    assert!(
        pongs.len() <= 12,
        "at most about a second's worth are served, got {}",
        pongs.len()
    );
    // Each refused frame's error is its direct reply: it carries the frame's id.
    let mut ids: Vec<&str> = replies.iter().filter_map(|f| f["re"].as_str()).collect();
    ids.sort_unstable();
    let mut expected: Vec<String> = (0..n).map(|i| format!("r{i}")).collect();
    expected.sort_unstable();
    assert_eq!(
        ids,
        expected,
        "every reply (pong or rate_limited error) must carry re = its frame's id; \
         the first rate_limited error was {:?}",
        limited.first()
    );
    // Still open: once the rate allows it again, a ping is served. Asked every 250 ms,
    // below the 5/s rate, so the asking itself cannot keep the connection limited.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let reply = client.request("ping", Value::Null).await;
        if ty(&reply) == "pong" {
            break;
        }
        assert_eq!(reply["code"], "rate_limited", "{reply}");
        assert!(tokio::time::Instant::now() < deadline, "never served again");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// A flood over the rate with `--max-bad-frames 5` is closed with 4029 after
/// `rate_limited` errors.
#[tokio::test]
async fn sustained_rate_limiting_closes_with_4029() {
    let (_gw, mut client) =
        connected(&["--max-frames-per-second", "5", "--max-bad-frames", "5"]).await;
    for i in 0..60 {
        if client
            .try_send(Message::text(
                json!({"type": "ping", "id": format!("f{i}")}).to_string(),
            ))
            .await
            .is_err()
        {
            break;
        }
    }
    let (frames, code, _) = client.frames_until_close().await;
    let limited = frames
        .iter()
        .filter(|f| f["code"] == "rate_limited")
        .count();
    assert!(
        limited >= 1,
        "rate_limited errors before the close: {}",
        support::summary(&frames)
    );
    assert!(
        limited <= 5,
        "closed after 5 in a row: {}",
        support::summary(&frames)
    );
    assert_eq!(code, 4029);
}

/// `--max-bad-frames 3` bad frames in a row close the connection with 4029.
#[tokio::test]
async fn bad_frames_in_a_row_close_with_4029() {
    let (_gw, mut client) = connected(&["--max-bad-frames", "3"]).await;
    for _ in 0..3 {
        let _ = client.try_send(Message::text("garbage")).await;
    }
    let (frames, code, _) = client.frames_until_close().await;
    let errors = frames.iter().filter(|f| f["code"] == "bad_request").count();
    assert!((2..=3).contains(&errors), "{}", support::summary(&frames));
    assert_eq!(code, 4029);
}

/// A good frame resets the count of bad frames in a row: bad, bad, good, bad, bad stays
/// open with `--max-bad-frames 3`.
#[tokio::test]
async fn a_good_frame_resets_the_bad_frame_count() {
    let (_gw, mut client) = connected(&["--max-bad-frames", "3"]).await;
    for _ in 0..3 {
        for _ in 0..2 {
            client.send_text("garbage").await;
            assert_eq!(client.next_frame().await["code"], "bad_request");
        }
        client.ping_pong().await;
    }
}

/// A token in `?token=` cannot verify (no key configured): `error` `unauthorized`,
/// then close 4401; it is never downgraded to anonymous.
#[tokio::test]
async fn token_in_query_is_unauthorized_and_closed_4401() {
    let gw = Gateway::start(&[]);
    let mut client = Client::connect_raw(&format!("{}?token=abc", gw.ws_url())).await;
    let (frames, code, _) = client.frames_until_close().await;
    assert!(
        frames
            .iter()
            .any(|f| ty(f) == "error" && f["code"] == "unauthorized"),
        "expected error unauthorized: {frames:?}"
    );
    assert!(
        frames
            .iter()
            .all(|f| ty(f) != "welcome" || f["principal"]["anonymous"] != true),
        "a bad token was downgraded to anonymous: {frames:?}"
    );
    assert_eq!(code, 4401);
}

/// An `Authorization: Bearer` token that cannot verify: `unauthorized`, close 4401.
#[tokio::test]
async fn bearer_token_is_unauthorized_and_closed_4401() {
    let gw = Gateway::start(&[]);
    let mut request = gw.ws_url().into_client_request().unwrap();
    request.headers_mut().insert(
        "Authorization",
        HeaderValue::from_static("Bearer not.a.jwt"),
    );
    let (mut client, _) = Client::connect_request(request).await.expect("upgrade");
    let (frames, code, _) = client.frames_until_close().await;
    assert!(
        frames
            .iter()
            .any(|f| ty(f) == "error" && f["code"] == "unauthorized"),
        "expected error unauthorized: {frames:?}"
    );
    assert_eq!(code, 4401);
}

/// With `--allow-anonymous false`, a connection without a token gets `unauthorized`
/// and close 4401.
#[tokio::test]
async fn anonymous_connection_is_refused_when_anonymous_access_is_off() {
    let gw = Gateway::start(&["--allow-anonymous", "false"]);
    let mut client = Client::connect_raw(&gw.ws_url()).await;
    let (frames, code, _) = client.frames_until_close().await;
    assert!(
        frames
            .iter()
            .any(|f| ty(f) == "error" && f["code"] == "unauthorized"),
        "expected error unauthorized: {frames:?}"
    );
    assert!(
        frames.iter().all(|f| ty(f) != "welcome"),
        "welcomed anyway: {frames:?}"
    );
    assert_eq!(code, 4401);
}
