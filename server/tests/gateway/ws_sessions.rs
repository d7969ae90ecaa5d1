//! Sessions, messages and turns over the WebSocket (docs/protocol.md §2–§4).

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::support;
use crate::support::knowledge::{self, REFUND_DOC_ID, REFUND_QUESTION, REFUND_TITLE, REFUND_URI};
use crate::support::{
    Client, Gateway, assert_strictly_increasing, events_of, is_assistant_message, is_event, seq, ty,
};

/// A gateway with the standard knowledge file and a fast offline agent.
fn fast_gateway(extra: &[&str]) -> Gateway {
    let kb = knowledge::standard_file();
    let mut args = vec![
        "--knowledge-file",
        kb.as_str(),
        "--offline-agent-delay",
        "5ms",
    ];
    args.extend_from_slice(extra);
    Gateway::start(&args)
}

/// A gateway whose turns on [`REFUND_QUESTION`] last a few seconds.
fn slow_gateway(delay: &str) -> Gateway {
    let kb = knowledge::standard_file();
    Gateway::start(&[
        "--knowledge-file",
        kb.as_str(),
        "--offline-agent-delay",
        delay,
    ])
}

/// The text of all `turn.delta`s of `turn_id`, in order.
fn deltas_text(frames: &[Value], turn_id: &Value) -> String {
    frames
        .iter()
        .filter(|f| ty(f) == "turn.delta" && &f["turn_id"] == turn_id)
        .map(|f| f["text"].as_str().unwrap_or_default())
        .collect()
}

fn position(frames: &[Value], pred: impl Fn(&Value) -> bool) -> usize {
    frames
        .iter()
        .position(pred)
        .unwrap_or_else(|| panic!("frame not found in {}", support::summary(frames)))
}

/// `welcome` is the first frame: protocol 1, a `c_` connection id, the configured
/// server id, an anonymous principal of the default org, heartbeat_ms and all limits.
#[tokio::test]
async fn welcome_describes_protocol_connection_principal_and_limits() {
    let gw = Gateway::start(&["--server-id", "replica-t"]);
    let client = Client::connect(&gw.ws_url()).await;
    let w = &client.welcome;
    assert_eq!(w["protocol"], 1, "{w}");
    let cid = w["connection_id"].as_str().expect("connection_id");
    assert!(
        cid.starts_with("c_") && cid.len() > 2,
        "connection_id {cid}"
    );
    assert_eq!(w["server_id"], "replica-t", "{w}");
    assert_eq!(
        w["principal"],
        json!({"user_id": null, "org_id": "default", "groups": [], "roles": [], "anonymous": true}),
        "{w}"
    );
    assert_eq!(w["heartbeat_ms"], 25000, "{w}");
    assert_eq!(
        w["limits"],
        json!({"max_frame_bytes": 65536, "max_text_chars": 8000,
               "max_frames_per_second": 20, "max_sessions_per_connection": 16}),
        "{w}"
    );
    // Two connections get different ids.
    let other = Client::connect(&gw.ws_url()).await;
    assert_ne!(other.welcome["connection_id"], w["connection_id"]);
}

/// Flags reach the welcome frame: `--default-org`, `--heartbeat` and the limits.
#[tokio::test]
async fn welcome_reflects_configured_org_heartbeat_and_limits() {
    let gw = Gateway::start(&[
        "--default-org",
        "acme",
        "--heartbeat",
        "3s",
        "--max-frame-bytes",
        "4096",
        "--max-text-chars",
        "100",
        "--max-frames-per-second",
        "7",
        "--max-sessions-per-connection",
        "3",
    ]);
    let client = Client::connect(&gw.ws_url()).await;
    let w = &client.welcome;
    assert_eq!(w["principal"]["org_id"], "acme", "{w}");
    assert_eq!(w["heartbeat_ms"], 3000, "{w}");
    assert_eq!(
        w["limits"],
        json!({"max_frame_bytes": 4096, "max_text_chars": 100,
               "max_frames_per_second": 7, "max_sessions_per_connection": 3}),
        "{w}"
    );
}

/// A client offering the `switchboard.v1` subprotocol gets it selected.
#[tokio::test]
async fn offered_subprotocol_is_selected() {
    let gw = Gateway::start(&[]);
    let mut request = gw.ws_url().into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("switchboard.v1"),
    );
    let (mut client, response) = Client::connect_request(request).await.expect("connect");
    assert_eq!(
        response
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().unwrap()),
        Some("switchboard.v1")
    );
    assert_eq!(ty(&client.next_frame().await), "welcome");
}

/// `ping` is answered with `pong` carrying `re` equal to the ping's id.
#[tokio::test]
async fn ping_is_answered_with_pong_echoing_the_id() {
    let gw = Gateway::start(&[]);
    let mut client = Client::connect(&gw.ws_url()).await;
    client.send_json(json!({"type": "ping", "id": "p-1"})).await;
    let pong = client.next_frame().await;
    assert_eq!(pong, json!({"type": "pong", "re": "p-1"}));
    // Without an id there is no re.
    client.send_json(json!({"type": "ping"})).await;
    let pong = client.next_frame().await;
    assert_eq!(ty(&pong), "pong");
    assert!(pong.get("re").is_none() || pong["re"].is_null(), "{pong}");
}

/// `session.create` answers `session.created` with `re`, an `s_` session id, a
/// session key (anonymous creator) and `seq` 0, and joins the creator.
#[tokio::test]
async fn session_create_returns_id_key_and_seq_and_joins_the_creator() {
    let gw = fast_gateway(&[]);
    let mut client = Client::connect(&gw.ws_url()).await;
    client
        .send_json(json!({"type": "session.create", "id": "c-1", "metadata": {"page": "/pricing"}}))
        .await;
    let created = client.next_frame().await;
    assert_eq!(ty(&created), "session.created", "{created}");
    assert_eq!(created["re"], "c-1");
    let sid = created["session_id"].as_str().expect("session_id");
    assert!(sid.starts_with("s_") && sid.len() > 2, "session_id {sid}");
    let key = created["session_key"]
        .as_str()
        .expect("anonymous creator gets a session_key");
    assert!(!key.is_empty());
    assert_eq!(created["seq"], 0, "a new session has no events: {created}");
    // Joined: sending works without session.join, and the creator receives the events.
    let accepted = client.send_message(sid, "hello there").await;
    assert_eq!(accepted["session_id"], sid);
    let message = client.next_of_type("message").await;
    assert_eq!(message["session_id"], sid);
    assert_eq!(message["role"], "user");
    // Two sessions get different ids.
    let other = client.create_session().await;
    assert_ne!(other.id, sid);
}

/// Two sockets in one session receive identical event sequences for a whole turn,
/// with strictly increasing `seq`, and the creator's own events are not missing any.
#[tokio::test]
async fn two_members_see_identical_event_sequences_for_a_whole_turn() {
    let gw = fast_gateway(&[]);
    let mut a = Client::connect(&gw.ws_url()).await;
    let mut b = Client::connect(&gw.ws_url()).await;
    let s = a.create_session().await;
    let joined = b.join(&s.id, None, s.key.as_deref()).await;
    assert_eq!(joined["last_seq"], 0);

    let accepted = a.send_message(&s.id, REFUND_QUESTION).await;
    let a_frames = a.collect_turns(1).await;
    let b_frames = b.collect_turns(1).await;
    let a_events: Vec<Value> = events_of(&a_frames, &s.id).into_iter().cloned().collect();
    let b_events: Vec<Value> = events_of(&b_frames, &s.id).into_iter().cloned().collect();
    assert_eq!(
        a_events,
        b_events,
        "members must see the same events\nA: {}\nB: {}",
        support::summary(&a_events),
        support::summary(&b_events)
    );
    assert_strictly_increasing(&a_events);
    // The sequence is the whole turn: user message, start, ≥1 delta, end, assistant.
    assert_eq!(ty(&a_events[0]), "message");
    assert_eq!(a_events[0]["message_id"], accepted["message_id"]);
    assert_eq!(ty(&a_events[1]), "turn.start");
    assert!(a_events.iter().filter(|e| ty(e) == "turn.delta").count() >= 2);
    assert_eq!(ty(&a_events[a_events.len() - 2]), "turn.end");
    assert!(is_assistant_message(&a_events[a_events.len() - 1]));
    // Every frame B got during the turn was a session event of this session.
    assert!(
        b_frames.iter().all(is_event),
        "{}",
        support::summary(&b_frames)
    );
    for e in &a_events {
        assert!(
            e["ts"].as_u64().unwrap() > 1_600_000_000_000,
            "ts in ms: {e}"
        );
    }
}

/// `message.accepted` carries `re`, the session id, an `m_` message id and the `seq`
/// of the appended user `message` event, whose text is what was sent.
#[tokio::test]
async fn message_accepted_names_the_appended_user_message() {
    let gw = fast_gateway(&[]);
    let mut client = Client::connect(&gw.ws_url()).await;
    let s = client.create_session().await;
    client
        .send_json(
            json!({"type": "message.send", "id": "m-1", "session_id": s.id, "text": "hi there"}),
        )
        .await;
    let frames = client.collect_until(|f| ty(f) == "message.accepted").await;
    let accepted = frames.last().unwrap();
    assert_eq!(accepted["re"], "m-1");
    assert_eq!(accepted["session_id"], s.id.as_str());
    let mid = accepted["message_id"].as_str().expect("message_id");
    assert!(mid.starts_with("m_") && mid.len() > 2, "{mid}");
    let accepted_seq = seq(accepted);
    let message = match frames.iter().find(|f| ty(f) == "message") {
        Some(m) => m.clone(),
        None => client.next_of_type("message").await,
    };
    assert_eq!(message["message_id"], mid);
    assert_eq!(seq(&message), accepted_seq);
    assert_eq!(message["role"], "user");
    assert_eq!(message["text"], "hi there");
    assert_eq!(message["session_id"], s.id.as_str());
}

/// A turn streams `turn.start` (replying to the message), several `turn.delta`s, and
/// `turn.end` completed whose text is the deltas joined and whose sources cite the
/// matching document; then an assistant `message` with the same text.
#[tokio::test]
async fn turn_streams_deltas_and_ends_citing_the_matching_document() {
    let gw = fast_gateway(&[]);
    let mut client = Client::connect(&gw.ws_url()).await;
    let s = client.create_session().await;
    let accepted = client.send_message(&s.id, REFUND_QUESTION).await;
    let frames = client.collect_turns(1).await;
    let events: Vec<Value> = events_of(&frames, &s.id).into_iter().cloned().collect();

    let start = events
        .iter()
        .find(|e| ty(e) == "turn.start")
        .expect("turn.start");
    let turn_id = start["turn_id"].clone();
    assert!(turn_id.as_str().unwrap().starts_with("t_"), "{start}");
    assert_eq!(start["reply_to"], accepted["message_id"]);
    let deltas = events.iter().filter(|e| ty(e) == "turn.delta").count();
    assert!(
        deltas >= 3,
        "a long answer comes in several deltas, got {deltas}"
    );
    let end = events
        .iter()
        .find(|e| ty(e) == "turn.end")
        .expect("turn.end");
    assert_eq!(end["turn_id"], turn_id);
    assert_eq!(end["status"], "completed", "{end}");
    let text = end["text"].as_str().unwrap();
    assert_eq!(
        text,
        deltas_text(&events, &turn_id),
        "turn.end.text == the deltas joined"
    );
    assert!(
        text.to_lowercase().contains("refund"),
        "answer drew on the doc: {text}"
    );
    let sources = end["sources"].as_array().expect("sources");
    assert!(
        sources
            .contains(&json!({"doc_id": REFUND_DOC_ID, "title": REFUND_TITLE, "uri": REFUND_URI})),
        "sources must cite the refund doc: {sources:?}"
    );
    assert!(sources.len() <= 3, "{sources:?}");
    for src in sources {
        assert_ne!(
            src["doc_id"],
            knowledge::SHIPPING_DOC_ID,
            "unrelated doc cited: {sources:?}"
        );
    }
    assert!(end["usage"].is_object(), "usage: {end}");

    let assistant = events.last().unwrap();
    assert!(is_assistant_message(assistant));
    assert_eq!(assistant["text"], end["text"]);
    assert_eq!(assistant["author"], "assistant");
    assert_ne!(assistant["message_id"], accepted["message_id"]);
    assert!(assistant["message_id"].as_str().unwrap().starts_with("m_"));
    // Order: start < deltas < end < assistant.
    let i_start = position(&events, |e| ty(e) == "turn.start");
    let i_end = position(&events, |e| ty(e) == "turn.end");
    assert!(
        events[i_start + 1..i_end]
            .iter()
            .all(|e| ty(e) == "turn.delta")
    );
}

/// A question that matches no document gets a short completed answer with no sources.
#[tokio::test]
async fn unmatched_question_completes_with_empty_sources() {
    let gw = fast_gateway(&[]);
    let mut client = Client::connect(&gw.ws_url()).await;
    let s = client.create_session().await;
    client
        .send_message(&s.id, knowledge::UNMATCHED_QUESTION)
        .await;
    let frames = client.collect_turns(1).await;
    let end = frames
        .iter()
        .find(|f| ty(f) == "turn.end")
        .expect("turn.end");
    assert_eq!(end["status"], "completed", "{end}");
    assert_eq!(end["sources"], json!([]), "{end}");
    assert!(!end["text"].as_str().unwrap().is_empty());
}

/// Anonymous connections never get private or org-wide documents: not in `sources`,
/// not in the answer text.
#[tokio::test]
async fn anonymous_connections_never_see_non_public_documents() {
    let gw = fast_gateway(&[]);
    let mut client = Client::connect(&gw.ws_url()).await;
    let s = client.create_session().await;
    for (word, doc_id, secret) in [
        (knowledge::PRIVATE_WORD, knowledge::PRIVATE_DOC_ID, "987654"),
        (knowledge::ORGWIDE_WORD, knowledge::ORGWIDE_DOC_ID, "13579"),
    ] {
        client
            .send_message(&s.id, &format!("tell me about {word} please"))
            .await;
        let frames = client.collect_turns(1).await;
        let end = frames
            .iter()
            .find(|f| ty(f) == "turn.end")
            .expect("turn.end");
        assert_eq!(end["status"], "completed", "{end}");
        let sources = end["sources"].as_array().expect("sources");
        assert!(
            sources.iter().all(|src| src["doc_id"] != doc_id),
            "{doc_id} cited to an anonymous asker: {sources:?}"
        );
        let text = end["text"].as_str().unwrap();
        assert!(
            !text.contains(secret),
            "{doc_id} leaked into the answer: {text}"
        );
    }
}

/// Two messages sent back to back queue two turns: the second `turn.start` comes only
/// after the first `turn.end`, and no delta of one turn interleaves with the other.
#[tokio::test]
async fn second_turn_starts_only_after_the_first_ends() {
    let gw = fast_gateway(&[]);
    let mut client = Client::connect(&gw.ws_url()).await;
    let s = client.create_session().await;
    let id1 = client.new_id();
    let id2 = client.new_id();
    client
        .send_json(
            json!({"type": "message.send", "id": id1, "session_id": s.id, "text": REFUND_QUESTION}),
        )
        .await;
    client
        .send_json(json!({"type": "message.send", "id": id2, "session_id": s.id, "text": "refunds for the annual plan?"}))
        .await;
    let m1 = client.reply_to(&id1).await;
    let m2 = client.reply_to(&id2).await;
    assert_eq!(ty(&m1), "message.accepted", "{m1}");
    assert_eq!(ty(&m2), "message.accepted", "{m2}");
    let frames = client.collect_turns(2).await;
    let events: Vec<Value> = events_of(&frames, &s.id).into_iter().cloned().collect();
    assert_strictly_increasing(&events);

    let starts: Vec<&Value> = events.iter().filter(|e| ty(e) == "turn.start").collect();
    assert_eq!(starts.len(), 2, "{}", support::summary(&events));
    assert_eq!(starts[0]["reply_to"], m1["message_id"]);
    assert_eq!(starts[1]["reply_to"], m2["message_id"]);
    let (t1, t2) = (starts[0]["turn_id"].clone(), starts[1]["turn_id"].clone());
    assert_ne!(t1, t2);
    let end1 = position(&events, |e| ty(e) == "turn.end" && e["turn_id"] == t1);
    let start2 = position(&events, |e| ty(e) == "turn.start" && e["turn_id"] == t2);
    assert!(
        start2 > end1,
        "turn 2 started before turn 1 ended: {}",
        support::summary(&events)
    );
    let first_turn_2_event = position(&events, |e| e["turn_id"] == t2);
    let last_turn_1_event = events.iter().rposition(|e| e["turn_id"] == t1).unwrap();
    assert!(last_turn_1_event < first_turn_2_event, "turns interleaved");
    let ends: Vec<&Value> = events.iter().filter(|e| ty(e) == "turn.end").collect();
    assert!(ends.iter().all(|e| e["status"] == "completed"));
}

/// `turn.cancel` of the running turn ends it with `status:"cancelled"` and the text so
/// far, and no assistant message is appended for it.
#[tokio::test]
async fn turn_cancel_ends_the_turn_cancelled_without_an_assistant_message() {
    let gw = slow_gateway("60ms");
    let mut client = Client::connect(&gw.ws_url()).await;
    let s = client.create_session().await;
    client.send_message(&s.id, REFUND_QUESTION).await;
    let start = client.next_of_type("turn.start").await;
    let turn_id = start["turn_id"].clone();
    let first_delta = client.next_of_type("turn.delta").await;
    client
        .send_json(
            json!({"type": "turn.cancel", "id": "x-1", "session_id": s.id, "turn_id": turn_id}),
        )
        .await;
    let mut frames = vec![start.clone(), first_delta];
    frames.extend(client.collect_until(|f| ty(f) == "turn.end").await);
    let end = frames.last().unwrap().clone();
    assert_eq!(end["turn_id"], turn_id);
    assert_eq!(end["status"], "cancelled", "{end}");
    assert_eq!(
        end["text"].as_str().unwrap(),
        deltas_text(&frames, &turn_id),
        "a cancelled turn.end carries the text so far"
    );
    assert!(
        frames.iter().all(|f| ty(f) != "error"),
        "turn.cancel of the running turn is no error: {}",
        support::summary(&frames)
    );

    // A later turn completes; between the two, no assistant message for the cancelled one.
    let accepted = client
        .send_message(&s.id, knowledge::UNMATCHED_QUESTION)
        .await;
    let after = client.collect_turns(1).await;
    let assistants: Vec<&Value> = after.iter().filter(|f| is_assistant_message(f)).collect();
    assert_eq!(assistants.len(), 1, "{}", support::summary(&after));
    let start2 = after.iter().find(|f| ty(f) == "turn.start").unwrap();
    assert_eq!(start2["reply_to"], accepted["message_id"]);
    assert!(
        after.iter().all(|f| f["turn_id"] != turn_id),
        "events of the cancelled turn after its end: {}",
        support::summary(&after)
    );

    // The transcript in history has no assistant message for the cancelled turn.
    let mut late = Client::connect(&gw.ws_url()).await;
    late.join(&s.id, None, s.key.as_deref()).await;
    let history = late.collect_turns(1).await;
    assert_eq!(
        history.iter().filter(|f| is_assistant_message(f)).count(),
        1
    );
}

/// `turn.cancel` of a turn that is not running is `not_found`.
#[tokio::test]
async fn turn_cancel_of_an_unknown_turn_is_not_found() {
    let gw = fast_gateway(&[]);
    let mut client = Client::connect(&gw.ws_url()).await;
    let s = client.create_session().await;
    let reply = client
        .request(
            "turn.cancel",
            json!({"session_id": s.id, "turn_id": "t_doesnotexist"}),
        )
        .await;
    assert_eq!(ty(&reply), "error", "{reply}");
    assert_eq!(reply["code"], "not_found", "{reply}");
    client.ping_pong().await;
}

/// A turn belongs to the session: when its sender disconnects mid-turn, it runs on and
/// another member sees it end completed, followed by the assistant message.
#[tokio::test]
async fn turn_keeps_running_when_its_sender_disconnects() {
    let gw = slow_gateway("30ms");
    let mut sender = Client::connect(&gw.ws_url()).await;
    let mut observer = Client::connect(&gw.ws_url()).await;
    let s = sender.create_session().await;
    observer.join(&s.id, None, s.key.as_deref()).await;
    sender.send_message(&s.id, REFUND_QUESTION).await;
    sender.next_of_type("turn.start").await;
    sender.next_of_type("turn.delta").await;
    drop(sender); // abrupt: no close handshake

    let frames = observer.collect_turns(1).await;
    let end = frames
        .iter()
        .find(|f| ty(f) == "turn.end")
        .expect("turn.end");
    assert_eq!(end["status"], "completed", "{end}");
    assert_eq!(frames.last().unwrap()["text"], end["text"]);
}

/// `session.leave` answers `session.left` and the socket receives no more events of
/// that session; leaving again is `not_found`.
#[tokio::test]
async fn session_leave_stops_the_session_events_on_that_socket() {
    let gw = fast_gateway(&[]);
    let mut a = Client::connect(&gw.ws_url()).await;
    let mut b = Client::connect(&gw.ws_url()).await;
    let s = a.create_session().await;
    b.join(&s.id, None, s.key.as_deref()).await;
    let left = b
        .request("session.leave", json!({"session_id": s.id}))
        .await;
    assert_eq!(ty(&left), "session.left", "{left}");
    assert_eq!(left["session_id"], s.id.as_str());

    a.send_message(&s.id, REFUND_QUESTION).await;
    a.collect_turns(1).await;
    // Everything of the turn was fanned out before A saw its end; two round trips on
    // B then prove nothing of the session was queued for B.
    b.ping_pong().await;
    b.ping_pong().await;
    assert_eq!(b.backlog_len(), 0, "B received frames after leaving");
    if let Some(frame) = b
        .next_frame_within(std::time::Duration::from_millis(300))
        .await
    {
        panic!("B received a frame after leaving: {frame}");
    }
    let again = b
        .request("session.leave", json!({"session_id": s.id}))
        .await;
    assert_eq!(again["code"], "not_found", "{again}");
    // No longer a member: sending to it is refused.
    let send = b
        .request("message.send", json!({"session_id": s.id, "text": "hello"}))
        .await;
    assert_eq!(send["code"], "forbidden", "{send}");
}

/// Joining an anonymous session without its key, with a wrong key, or joining a session
/// that does not exist are all `not_found`, with one and the same message.
#[tokio::test]
async fn join_without_key_wrong_key_or_unknown_session_is_not_found() {
    let gw = fast_gateway(&[]);
    let mut owner = Client::connect(&gw.ws_url()).await;
    let s = owner.create_session().await;
    let mut other = Client::connect(&gw.ws_url()).await;
    let no_key = other.join_reply(&s.id, None, None).await;
    let wrong_key = other.join_reply(&s.id, None, Some("not-the-key")).await;
    let unknown = other
        .join_reply("s_00000000000000000000000000000000", None, Some("whatever"))
        .await;
    for reply in [&no_key, &wrong_key, &unknown] {
        assert_eq!(ty(reply), "error", "{reply}");
        assert_eq!(reply["code"], "not_found", "{reply}");
    }
    assert_eq!(
        no_key["message"], wrong_key["message"],
        "messages must not leak existence"
    );
    assert_eq!(
        no_key["message"], unknown["message"],
        "messages must not leak existence"
    );
    // Not joined: sending is refused.
    let send = other
        .request("message.send", json!({"session_id": s.id, "text": "hello"}))
        .await;
    assert_eq!(send["code"], "forbidden", "{send}");
    // The right key works.
    other.join(&s.id, None, s.key.as_deref()).await;
}

/// Sending the same `client_message_id` twice returns the original `message_id` and
/// `seq`, and only one user message and one turn are in the history.
#[tokio::test]
async fn repeated_client_message_id_returns_the_original_and_starts_one_turn() {
    let gw = fast_gateway(&[]);
    let mut client = Client::connect(&gw.ws_url()).await;
    let s = client.create_session().await;
    let send = json!({"session_id": s.id, "text": REFUND_QUESTION, "client_message_id": "cm-42"});
    let first = client
        .request_ok("message.send", send.clone(), "message.accepted")
        .await;
    let second = client
        .request_ok("message.send", send.clone(), "message.accepted")
        .await;
    assert_eq!(first["message_id"], second["message_id"]);
    assert_eq!(first["seq"], second["seq"]);
    client.collect_turns(1).await;
    // A retry after the turn finished is still a duplicate.
    let third = client
        .request_ok("message.send", send, "message.accepted")
        .await;
    assert_eq!(first["message_id"], third["message_id"]);
    // Then a different message, so the history surely holds any extra turn first.
    client.send_message(&s.id, "another refund question").await;
    client.collect_turns(1).await;

    let mut reader = Client::connect(&gw.ws_url()).await;
    reader.join(&s.id, None, s.key.as_deref()).await;
    let history = reader.collect_turns(2).await;
    let user_messages = history
        .iter()
        .filter(|f| ty(f) == "message" && f["role"] == "user")
        .count();
    let starts = history.iter().filter(|f| ty(f) == "turn.start").count();
    assert_eq!(user_messages, 2, "{}", support::summary(&history));
    assert_eq!(starts, 2, "{}", support::summary(&history));
    assert_eq!(
        history
            .iter()
            .filter(|f| f["message_id"] == first["message_id"])
            .count(),
        1
    );
}

/// `message.send` to a session this connection has not joined is `forbidden`.
#[tokio::test]
async fn message_send_to_a_session_not_joined_is_forbidden() {
    let gw = fast_gateway(&[]);
    let mut owner = Client::connect(&gw.ws_url()).await;
    let s = owner.create_session().await;
    let mut stranger = Client::connect(&gw.ws_url()).await;
    let reply = stranger
        .request(
            "message.send",
            json!({"session_id": s.id, "text": "let me in"}),
        )
        .await;
    assert_eq!(ty(&reply), "error");
    assert_eq!(reply["code"], "forbidden", "{reply}");
    stranger.ping_pong().await;
    // Nothing was appended: the owner sees no message.
    owner.ping_pong().await;
    assert_eq!(owner.backlog_len(), 0, "the refused send appended an event");
}

/// Text over `max_text_chars` characters is `too_large` and the connection stays open;
/// exactly `max_text_chars` characters (multi-byte) are accepted; empty text is
/// `bad_request`.
#[tokio::test]
async fn text_over_max_text_chars_is_too_large_and_the_connection_stays_open() {
    let gw = fast_gateway(&["--max-text-chars", "100"]);
    let mut client = Client::connect(&gw.ws_url()).await;
    let s = client.create_session().await;
    let too_long = "a".repeat(101);
    let reply = client
        .request(
            "message.send",
            json!({"session_id": s.id, "text": too_long}),
        )
        .await;
    assert_eq!(ty(&reply), "error");
    assert_eq!(reply["code"], "too_large", "{reply}");
    client.ping_pong().await;
    // 100 characters of 2 bytes each: counted in characters, so accepted.
    let at_limit = "é".repeat(100);
    client
        .request_ok(
            "message.send",
            json!({"session_id": s.id, "text": at_limit}),
            "message.accepted",
        )
        .await;
    for blank in ["", "   \n\t "] {
        let reply = client
            .request("message.send", json!({"session_id": s.id, "text": blank}))
            .await;
        assert_eq!(reply["code"], "bad_request", "text {blank:?}: {reply}");
    }
    client.ping_pong().await;
}

/// With `--max-queued-turns 2`, while one turn runs two more may wait; the next
/// `message.send` is refused with `rate_limited` and appends nothing.
#[tokio::test]
async fn message_beyond_max_queued_turns_is_rate_limited() {
    let kb = knowledge::standard_file();
    let gw = Gateway::start(&[
        "--knowledge-file",
        kb.as_str(),
        "--offline-agent-delay",
        "80ms",
        "--max-queued-turns",
        "2",
    ]);
    let mut client = Client::connect(&gw.ws_url()).await;
    let s = client.create_session().await;
    client.send_message(&s.id, REFUND_QUESTION).await;
    let running = client.next_of_type("turn.start").await["turn_id"].clone();
    client.send_message(&s.id, "xylophonic one").await;
    client.send_message(&s.id, "xylophonic two").await;
    let refused = client
        .request(
            "message.send",
            json!({"session_id": s.id, "text": "xylophonic three"}),
        )
        .await;
    assert_eq!(ty(&refused), "error", "{refused}");
    assert_eq!(refused["code"], "rate_limited", "{refused}");
    // Shorten the test: cancel the long running turn; the two queued ones then run.
    client
        .send_json(json!({"type": "turn.cancel", "session_id": s.id, "turn_id": running}))
        .await;
    let frames = client.collect_turns(2).await;
    assert!(
        frames
            .iter()
            .all(|f| !(ty(f) == "message" && f["text"] == "xylophonic three")),
        "the refused message was appended"
    );
}

/// A connection may join at most `--max-sessions-per-connection` sessions; one more
/// is `conflict`.
#[tokio::test]
async fn joining_beyond_max_sessions_per_connection_is_conflict() {
    let gw = fast_gateway(&["--max-sessions-per-connection", "2"]);
    let mut a = Client::connect(&gw.ws_url()).await;
    a.create_session().await;
    a.create_session().await;
    let mut b = Client::connect(&gw.ws_url()).await;
    let s3 = b.create_session().await;
    let reply = a.join_reply(&s3.id, None, s3.key.as_deref()).await;
    assert_eq!(ty(&reply), "error", "{reply}");
    assert_eq!(reply["code"], "conflict", "{reply}");
    a.ping_pong().await;
}

/// Beyond `--max-connections` open sockets the upgrade is refused with HTTP 503.
#[tokio::test]
async fn connections_beyond_max_connections_are_refused_with_503() {
    let gw = Gateway::start(&["--max-connections", "2"]);
    let _a = Client::connect(&gw.ws_url()).await;
    let _b = Client::connect(&gw.ws_url()).await;
    let request = gw.ws_url().into_client_request().unwrap();
    match Client::connect_request(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
        }
        Err(e) => panic!("expected an HTTP 503 refusal, got {e}"),
        Ok(_) => panic!("a third connection was accepted with --max-connections 2"),
    }
}
