//! `GET /v1/sessions/{id}/stream` (docs/protocol.md §6.16): a session's events as
//! Server-Sent Events — the same frames, the same `seq`, the same access checks as a
//! WebSocket member; resumable with `Last-Event-ID` with each event delivered once;
//! bounded like a WebSocket; ended cleanly on drain and token expiry.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use switchboard_testkit::eventually;

use crate::support::http::{self, Api, PUBLISHER_SECRET, Reply};
use crate::support::jwt::{self, Claims};
use crate::support::knowledge::{self, REFUND_QUESTION, UNMATCHED_QUESTION};
use crate::support::sse::{SseEvent, SseStream};
use crate::support::{
    Client, Gateway, MISSING_SESSION, WAIT, assert_strictly_increasing, events_of, metric_sum, seq,
    summary, ty,
};

fn gateway(delay: &str, extra: &[&str]) -> Gateway {
    let kb = knowledge::standard_file();
    let mut args = vec![
        jwt::HS_ARGS[0],
        jwt::HS_ARGS[1],
        "--publisher-keys",
        http::PUBLISHER_KEYS,
        "--knowledge-file",
        kb.as_str(),
        "--offline-agent-delay",
        delay,
    ];
    args.extend_from_slice(extra);
    Gateway::start(&args)
}

fn stream_path(session_id: &str) -> String {
    format!("/v1/sessions/{session_id}/stream")
}

/// `GET /v1/sessions/{id}/stream` with `Authorization: Bearer <token>`.
fn stream_request(api: &Api, session_id: &str, token: &str) -> reqwest::RequestBuilder {
    api.builder(Method::GET, &stream_path(session_id))
        .bearer_auth(token)
}

fn owned(frames: &[Value], session_id: &str) -> Vec<Value> {
    events_of(frames, session_id).into_iter().cloned().collect()
}

/// The session events among SSE events, after checking each one's SSE fields: the
/// event name is the frame's `type`, the id its `seq`.
fn sse_events(events: &[SseEvent]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e.data.get("seq").is_some())
        .map(|e| {
            assert_eq!(e.event, ty(&e.data), "event name of {}", e.data);
            assert_eq!(e.last_id, seq(&e.data).to_string(), "id of {}", e.data);
            e.data.clone()
        })
        .collect()
}

fn assert_refused(refused: Result<SseStream, Reply>, status: u16, code: &str, what: &str) {
    match refused {
        Ok(_) => panic!("{what}: the stream opened"),
        Err(reply) => reply.assert_error(status, code, what),
    }
}

/// The owner's SSE stream and a WebSocket member see the same events with the same
/// `seq`, byte for byte the same JSON; the stream opens with `session.joined` (no id,
/// the `retry:` hint) and answers `text/event-stream`.
#[tokio::test]
async fn the_stream_carries_what_a_websocket_member_receives() {
    let gw = gateway("5ms", &[]);
    let api = Api::new(&gw);
    let token = jwt::token("u1", "acme", &[]);
    let mut ws = jwt::connect(&gw, &token).await;
    let s = ws.create_session().await;

    let mut sse = SseStream::open_ok(stream_request(&api, &s.id, &token)).await;
    let content_type = sse.headers["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    assert_eq!(sse.headers["cache-control"], "no-cache");
    let joined = sse.next_event().await;
    assert_eq!(joined.event, "session.joined", "{:?}", joined);
    assert_eq!(joined.data["session_id"], s.id.as_str());
    assert_eq!(joined.data["recovered"], true);
    assert_eq!(joined.last_id, "", "replies carry no id");
    assert_eq!(joined.retry, Some(Duration::from_secs(2)));

    ws.send_message(&s.id, UNMATCHED_QUESTION).await;
    ws.send_message(&s.id, REFUND_QUESTION).await;
    let seen_by_ws = owned(&ws.collect_turns(2).await, &s.id);
    let streamed = sse_events(
        &sse.until(|e| {
            e.data["role"] == "assistant" && e.data["seq"] == seen_by_ws.last().unwrap()["seq"]
        })
        .await,
    );
    assert_eq!(
        streamed,
        seen_by_ws,
        "sse: {}\nws:  {}",
        summary(&streamed),
        summary(&seen_by_ws)
    );
    assert!(streamed.iter().any(|e| ty(e) == "turn.delta"));
    assert!(streamed.iter().any(|e| ty(e) == "turn.end"));
    let metrics = gw.metrics().await;
    assert_eq!(
        metric_sum(&metrics, "switchboard_sse_streams", None),
        Some(1.0)
    );
}

/// A stream dropped mid-turn and reopened with `Last-Event-ID` (and one reopened with
/// `?after_seq=`) delivers exactly the events it missed, then the rest live: what the
/// client saw before plus after is, seq for seq, what a WebSocket member saw.
#[tokio::test]
async fn resuming_with_last_event_id_mid_turn_delivers_each_event_once() {
    let gw = gateway("40ms", &[]);
    let api = Api::new(&gw);
    let token = jwt::token("u1", "acme", &[]);
    let mut ws = jwt::connect(&gw, &token).await;
    let s = ws.create_session().await;

    let mut newest = 0;
    for resume_by_query in [false, true] {
        let request =
            stream_request(&api, &s.id, &token).header("Last-Event-ID", newest.to_string());
        let mut sse = SseStream::open_ok(request).await;
        let mut seen = sse_events(&sse.until(|e| e.event == "session.joined").await);
        ws.send_message(&s.id, REFUND_QUESTION).await;
        let mut deltas = 0;
        seen.extend(sse_events(
            &sse.until(|e| {
                deltas += usize::from(e.event == "turn.delta");
                deltas == 3
            })
            .await,
        ));
        let last_seen = seq(seen.last().unwrap());
        drop(sse);

        let request = if resume_by_query {
            api.builder(
                Method::GET,
                &format!("{}?after_seq={last_seen}&token={token}", stream_path(&s.id)),
            )
        } else {
            stream_request(&api, &s.id, &token).header("Last-Event-ID", last_seen.to_string())
        };
        let mut back = SseStream::open_ok(request).await;
        let joined = back.next_event().await;
        assert_eq!(joined.data["recovered"], true, "{:?}", joined.data);
        let after = sse_events(&back.until(|e| e.data["role"] == "assistant").await);
        let observed = owned(&ws.collect_turns(1).await, &s.id);

        let mut resumed: Vec<Value> = seen
            .into_iter()
            .filter(|e| ty(e) != "session.joined")
            .collect();
        resumed.extend(after);
        let observed: Vec<Value> = observed
            .into_iter()
            .filter(|e| seq(e) >= seq(&resumed[0]))
            .collect();
        assert_eq!(
            resumed,
            observed,
            "resumed: {}\nobserved: {}",
            summary(&resumed),
            summary(&observed)
        );
        assert_strictly_increasing(&resumed);
        newest = seq(resumed.last().unwrap());
    }
}

/// With `--history-max-events 5`, a stream resumed after a `seq` the history no longer
/// holds gets the transcript up to where the history starts, then the history, then
/// live — each event once, exactly as a WebSocket join replays it.
#[tokio::test]
async fn resuming_across_the_trimmed_history_reads_the_transcript_once() {
    let gw = gateway("5ms", &["--history-max-events", "5"]);
    let api = Api::new(&gw);
    let token = jwt::token("u1", "acme", &[]);
    let mut ws = jwt::connect(&gw, &token).await;
    let s = ws.create_session().await;
    ws.send_message(&s.id, UNMATCHED_QUESTION).await;
    let mut all = owned(&ws.collect_turns(1).await, &s.id);
    let first_turn_end = seq(all.last().unwrap());
    ws.send_message(&s.id, REFUND_QUESTION).await;
    all.extend(owned(&ws.collect_turns(1).await, &s.id));
    assert!(all.len() >= 10, "{}", summary(&all));
    let retained = &all[all.len() - 5..];
    let after = seq(&all[0]);
    assert!(after < seq(&retained[0]) && first_turn_end < seq(&retained[0]));

    let request = stream_request(&api, &s.id, &token).header("Last-Event-ID", after.to_string());
    let mut sse = SseStream::open_ok(request).await;
    let joined = sse.next_event().await;
    assert_eq!(joined.data["recovered"], true, "{:?}", joined.data);
    let newest = seq(all.last().unwrap());
    let replay = sse_events(&sse.until(|e| e.data["seq"] == newest).await);
    let mut expected: Vec<Value> = all
        .iter()
        .filter(|f| seq(f) > after && seq(f) < seq(&retained[0]))
        .filter(|f| !matches!(ty(f), "turn.start" | "turn.delta"))
        .cloned()
        .collect();
    expected.extend_from_slice(retained);
    assert_eq!(
        replay,
        expected,
        "transcript then history: {}",
        summary(&replay)
    );

    // Then live, with no duplicate at the seam.
    let accepted = ws.send_message(&s.id, UNMATCHED_QUESTION).await;
    let live = sse_events(&sse.until(|e| e.data["role"] == "assistant").await);
    assert_eq!(
        live[0]["message_id"],
        accepted["message_id"],
        "{}",
        summary(&live)
    );
    assert!(seq(&live[0]) > newest);
    assert_strictly_increasing(&live);
}

/// Who may read a stream is who may join the session: another user's or another
/// org's session, a missing one and a wrong anonymous key all answer the same
/// `404 not_found`; no credentials (anonymous visitors not allowed) and a bad token
/// are `401`; staff of the org and a publisher key may read it; `?token=` works like
/// `Authorization`.
#[tokio::test]
async fn access_is_the_joins() {
    let gw = gateway("1ms", &["--allow-anonymous", "false"]);
    let api = Api::new(&gw);
    let owner = jwt::token("u1", "acme", &[]);
    let mut ws = jwt::connect(&gw, &owner).await;
    let s = ws.create_session().await;

    let missing = SseStream::open(stream_request(&api, MISSING_SESSION, &owner)).await;
    let missing = match missing {
        Ok(_) => panic!("a missing session streamed"),
        Err(reply) => reply,
    };
    missing.assert_error(404, "not_found", "a missing session");
    for (token, who) in [
        (jwt::token("u2", "acme", &[]), "another user"),
        (
            jwt::token("u1", "globex", &["operator", "admin"]),
            "the same sub in another org",
        ),
        (
            jwt::token("svc", "acme", &["publisher"]),
            "a publisher token",
        ),
    ] {
        match SseStream::open(stream_request(&api, &s.id, &token)).await {
            Ok(_) => panic!("{who} streamed another's session"),
            Err(reply) => {
                reply.assert_error(404, "not_found", who);
                assert_eq!(
                    reply.json, missing.json,
                    "{who}: not like a missing session"
                );
            }
        }
    }
    assert_refused(
        SseStream::open(api.builder(Method::GET, &stream_path(&s.id))).await,
        401,
        "unauthorized",
        "no credentials",
    );
    let forged = jwt::with_swapped_payload(&owner, &Claims::user("u2", "acme").0);
    assert_refused(
        SseStream::open(stream_request(&api, &s.id, &forged)).await,
        401,
        "unauthorized",
        "a forged token",
    );
    let expired = Claims::user("u1", "acme").exp_in(-3600).hs256();
    assert_refused(
        SseStream::open(stream_request(&api, &s.id, &expired)).await,
        401,
        "unauthorized",
        "an expired token",
    );
    assert_refused(
        SseStream::open(stream_request(&api, &s.id, &owner).header("Last-Event-ID", "not-a-seq"))
            .await,
        400,
        "bad_request",
        "a Last-Event-ID that is not a seq",
    );

    let operator = jwt::token("op", "acme", &["operator"]);
    for request in [
        stream_request(&api, &s.id, &operator),
        api.builder(Method::GET, &stream_path(&s.id))
            .bearer_auth(PUBLISHER_SECRET),
        api.builder(
            Method::GET,
            &format!("{}?token={owner}", stream_path(&s.id)),
        ),
    ] {
        let mut sse = SseStream::open_ok(request).await;
        assert_eq!(sse.next_event().await.event, "session.joined");
    }
}

/// An anonymous session's stream needs its key, as a header or `?session_key=`; a
/// wrong key is `404`, exactly like a missing session; no key and no credentials is
/// `401`, as on the other session routes.
#[tokio::test]
async fn an_anonymous_session_needs_its_key() {
    let gw = gateway("1ms", &[]);
    let api = Api::new(&gw);
    let mut visitor = Client::connect(&gw.ws_url()).await;
    let s = visitor.create_session().await;
    let key = s.key.clone().expect("an anonymous session has a key");
    let path = stream_path(&s.id);

    for request in [
        api.builder(Method::GET, &path)
            .header("Switchboard-Session-Key", &key),
        api.builder(Method::GET, &format!("{path}?session_key={key}")),
    ] {
        let mut sse = SseStream::open_ok(request).await;
        assert_eq!(sse.next_event().await.event, "session.joined");
    }
    let missing = api
        .builder(Method::GET, &stream_path(MISSING_SESSION))
        .header("Switchboard-Session-Key", &key);
    let missing = match SseStream::open(missing).await {
        Ok(_) => panic!("a missing session streamed"),
        Err(reply) => reply,
    };
    for (request, what) in [
        (
            api.builder(Method::GET, &path)
                .header("Switchboard-Session-Key", "k_wrong"),
            "a wrong key",
        ),
        (
            api.builder(Method::GET, &format!("{path}?session_key=k_wrong")),
            "a wrong key in the query",
        ),
    ] {
        match SseStream::open(request).await {
            Ok(_) => panic!("{what}: the stream opened"),
            Err(reply) => {
                reply.assert_error(404, "not_found", what);
                assert_eq!(reply.json, missing.json, "{what}");
            }
        }
    }
    // Without credentials or a key there is nobody to admit, as on the other routes.
    assert_refused(
        SseStream::open(api.builder(Method::GET, &path)).await,
        401,
        "unauthorized",
        "neither credentials nor a key",
    );
}

/// On drain the stream gets `goaway`, then `close` 1012, then ends; a stream whose
/// token expires gets `error` `token_expired`, then `close` 4401.
#[tokio::test]
async fn the_stream_ends_cleanly_on_drain_and_on_token_expiry() {
    let gw = gateway("1ms", &[]);
    let api = Api::new(&gw);
    let owner = jwt::token("u1", "acme", &[]);
    let mut ws = jwt::connect(&gw, &owner).await;
    let s = ws.create_session().await;

    let short = Claims::user("u1", "acme").exp_in(2).hs256();
    let mut expiring = SseStream::open_ok(stream_request(&api, &s.id, &short)).await;
    let ending = expiring.until_end().await;
    let tail: Vec<(&str, Value)> = ending
        .iter()
        .skip(1)
        .map(|e| (e.event.as_str(), e.data.clone()))
        .collect();
    assert_eq!(tail.len(), 2, "{tail:?}");
    assert_eq!(tail[0].0, "error");
    assert_eq!(tail[0].1["code"], "token_expired");
    assert_eq!(tail[1].0, "close");
    assert_eq!(tail[1].1["code"], 4401);

    let mut sse = SseStream::open_ok(stream_request(&api, &s.id, &owner)).await;
    assert_eq!(sse.next_event().await.event, "session.joined");
    gw.sigterm();
    let ending = sse.until_end().await;
    let names: Vec<&str> = ending.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names, ["goaway", "close"], "{ending:?}");
    assert_eq!(ending[1].data["code"], 1012);
    assert_eq!(ending[1].data["reason"], "draining");
}

/// Events the slow-reader test publishes.
const BULK: i64 = 400;

/// A reader that stops reading is closed like a slow WebSocket consumer: the server
/// keeps at most its outbound queue, drops the stream (`close` 4008 where it can still
/// say so), counts it, and the client resumes with `Last-Event-ID` losing nothing.
#[tokio::test]
async fn a_slow_reader_is_closed_and_resumes_without_loss() {
    let gw = gateway("1ms", &["--outbound-queue-bytes", "262144"]);
    let api = Api::new(&gw);
    let owner = jwt::token("u1", "acme", &[]);
    let mut ws = jwt::connect(&gw, &owner).await;
    let s = ws.create_session().await;

    let mut stalled = SseStream::open_ok(stream_request(&api, &s.id, &owner)).await;
    assert_eq!(stalled.next_event().await.event, "session.joined");
    // ~19 MiB of events, each well within the queue: more than the queue and every
    // socket buffer in between.
    let blob = "x".repeat(48_000);
    let mut last = 0;
    for i in 0..BULK {
        let body =
            json!({"target": {"session": s.id}, "name": "bulk", "data": {"i": i, "blob": blob}});
        let published = api.publish_ok(&body).await;
        last = published["seq"].as_u64().unwrap_or(last);
    }
    eventually(
        WAIT,
        "the stalled stream is closed as a slow consumer",
        || async {
            let metrics = gw.metrics().await;
            metric_sum(
                &metrics,
                "switchboard_sse_closes_total",
                Some("reason=\"slow_consumer\""),
            ) == Some(1.0)
        },
    )
    .await;
    let read = stalled.until_end().await;
    let seen: Vec<Value> = sse_events(&read);
    assert!(
        seen.len() < 120,
        "the stalled reader got everything: {}",
        seen.len()
    );
    let resume_after = seen.last().map_or(0, seq);

    let request =
        stream_request(&api, &s.id, &owner).header("Last-Event-ID", resume_after.to_string());
    let mut back = SseStream::open_ok(request).await;
    back.next_event().await;
    let rest = sse_events(&back.until(|e| e.data["seq"] == last).await);
    let mut all = seen;
    all.extend(rest);
    let bulk: Vec<i64> = all
        .iter()
        .filter(|e| e["name"] == "bulk")
        .map(|e| e["data"]["i"].as_i64().unwrap())
        .collect();
    assert_eq!(
        bulk,
        (0..BULK).collect::<Vec<i64>>(),
        "each event once, in order"
    );
    assert_strictly_increasing(&all);
}

/// SSE streams hold places in `--max-connections` like WebSockets: past it both are
/// refused with `503`, and a closed stream gives its place back.
#[tokio::test]
async fn streams_count_against_the_connection_limit() {
    let gw = gateway("1ms", &["--max-connections", "2"]);
    let api = Api::new(&gw);
    let owner = jwt::token("u1", "acme", &[]);
    let mut ws = jwt::connect(&gw, &owner).await;
    let s = ws.create_session().await;

    let mut first = SseStream::open_ok(stream_request(&api, &s.id, &owner)).await;
    assert_eq!(first.next_event().await.event, "session.joined");
    assert_refused(
        SseStream::open(stream_request(&api, &s.id, &owner)).await,
        503,
        "unavailable",
        "a stream past --max-connections",
    );
    match tokio_tungstenite::connect_async(gw.ws_url()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503, "a WebSocket past --max-connections");
        }
        other => panic!(
            "a WebSocket past --max-connections: {:?}",
            other.map(|_| ())
        ),
    }
    drop(first);
    eventually(WAIT, "the closed stream gives its place back", || async {
        SseStream::open(stream_request(&api, &s.id, &owner))
            .await
            .is_ok()
    })
    .await;
}
