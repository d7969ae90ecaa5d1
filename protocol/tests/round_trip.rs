//! Every frame and event survives serialization and parsing unchanged, and looks on
//! the wire the way docs/protocol.md shows it.

mod samples;
use samples::{every_client_frame, every_event_body, every_server_frame};
use serde_json::{Value, json};
use switchboard_protocol::client::SessionJoin;
use switchboard_protocol::presence::Typing;
use switchboard_protocol::{
    ClientFrame, ErrorCode, Event, EventFrame, ParsedFrame, ServerReply, StreamName,
};

#[test]
fn every_client_frame_round_trips_with_and_without_an_id() {
    for frame in every_client_frame() {
        for id in [None, Some("req-7".to_string())] {
            let sent = ParsedFrame {
                id: id.clone(),
                frame: frame.clone(),
            };
            let text = sent.to_json();
            let value: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(value["type"], frame.type_name(), "{text}");
            let parsed = ClientFrame::parse(&text).unwrap_or_else(|e| panic!("{text}: {e:?}"));
            assert_eq!(parsed, sent, "{text}");
        }
    }
}

#[test]
fn client_frames_parse_from_the_protocol_examples() {
    let parsed = ClientFrame::parse(
        r#"{"type":"session.join","id":"j1","session_id":"s_9","after_seq":12,"extra":"ignored"}"#,
    )
    .unwrap();
    assert_eq!(parsed.id.as_deref(), Some("j1"));
    assert_eq!(
        parsed.frame,
        ClientFrame::SessionJoin(SessionJoin {
            session_id: "s_9".into(),
            after_seq: Some(12),
            session_key: None
        })
    );
}

/// Found by the `client_frame` fuzz target (docs/testing.md): a number with more digits
/// than an f64 holds parsed to a neighbour of the nearest f64, so a frame's metadata was
/// a different number once encoded and parsed again (stored, replayed, forwarded).
/// Here `jsonschema`, a dev-dependency, turns serde_json's `float_roundtrip` on for
/// every test build; the gateway's own build gets it only from this crate's manifest,
/// and the fuzz target (seed `long-number-float-roundtrip`) fails without it.
#[test]
fn a_long_number_parses_to_the_nearest_f64_and_survives_a_round_trip() {
    let digits = "1.8888888888888800000000000000000000000000000000000003106482942968448794";
    let text = format!(r#"{{"type":"session.create","metadata":{{"n":{digits}}}}}"#);
    let parsed = ClientFrame::parse(&text).unwrap();
    let ClientFrame::SessionCreate(create) = &parsed.frame else {
        panic!("{parsed:?}");
    };
    let n = create.metadata.as_ref().and_then(|m| m["n"].as_f64());
    assert_eq!(n, Some(digits.parse::<f64>().unwrap()), "the nearest f64");
    let again = ClientFrame::parse(&parsed.to_json()).unwrap();
    assert_eq!(again, parsed, "{}", parsed.to_json());
}

#[test]
fn malformed_client_frames_get_a_message_naming_the_problem() {
    let cases: &[(&str, Option<&str>, &str)] = &[
        ("not json", None, "not valid JSON"),
        ("[1,2]", None, "JSON object"),
        (r#"{"id":"a"}"#, Some("a"), "no \"type\""),
        (
            r#"{"type":7,"id":"a"}"#,
            Some("a"),
            "\"type\" must be a string",
        ),
        (
            r#"{"type":"session.jion","id":"a"}"#,
            Some("a"),
            "unknown frame type \"session.jion\"",
        ),
        (
            r#"{"type":"session.join","id":"a"}"#,
            Some("a"),
            "missing field `session_id`",
        ),
        (
            r#"{"type":"session.join","id":"a","session_id":"s","after_seq":"5"}"#,
            Some("a"),
            "invalid type",
        ),
        (r#"{"type":"ping","id":5}"#, None, "\"id\" must be a string"),
    ];
    for (text, id, needle) in cases {
        let e = ClientFrame::parse(text).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest, "{text}");
        assert_eq!(e.id.as_deref(), *id, "{text}");
        assert!(e.message.contains(needle), "{text}: {}", e.message);
    }
    let long_id = format!(r#"{{"type":"ping","id":"{}"}}"#, "x".repeat(65));
    assert!(
        ClientFrame::parse(&long_id)
            .unwrap_err()
            .message
            .contains("64")
    );
}

#[test]
fn every_server_frame_round_trips_with_and_without_re() {
    for frame in every_server_frame() {
        for re in [None, Some("req-1".to_string())] {
            let reply = ServerReply::new(re.clone(), frame.clone());
            let text = reply.to_json();
            let value: Value = serde_json::from_str(&text).unwrap();
            assert!(value["type"].is_string(), "{text}");
            assert_eq!(value.get("re").and_then(Value::as_str), re.as_deref());
            let back: ServerReply = serde_json::from_str(&text).unwrap();
            assert_eq!(back, reply, "{text}");
        }
    }
}

#[test]
fn the_welcome_frame_matches_the_protocol_example() {
    let text = ServerReply::new(None, every_server_frame().remove(0)).to_json();
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["type"], "welcome");
    assert_eq!(value["protocol"], 1);
    assert_eq!(value["principal"]["org_id"], "acme");
    assert_eq!(value["principal"]["anonymous"], false);
    assert_eq!(value["limits"]["max_frame_bytes"], 65536);
    let error = ServerReply::error(Some("x".into()), ErrorCode::NotFound, "nope").to_json();
    assert_eq!(
        serde_json::from_str::<Value>(&error).unwrap(),
        json!({"type":"error","re":"x","code":"not_found","message":"nope"})
    );
}

#[test]
fn presence_and_typing_frames_match_the_protocol_examples() {
    let typing =
        ClientFrame::parse(r#"{"type":"typing","session_id":"s_1","typing":true}"#).unwrap();
    assert_eq!(
        typing.frame,
        ClientFrame::Typing(Typing {
            session_id: "s_1".into(),
            typing: true
        })
    );
    let refused = ClientFrame::parse(r#"{"type":"typing","session_id":"s_1"}"#).unwrap_err();
    assert!(refused.message.contains("typing"), "{refused:?}");

    let wire: Vec<Value> = every_server_frame()
        .into_iter()
        .map(|frame| serde_json::from_str(&ServerReply::new(None, frame).to_json()).unwrap())
        .collect();
    let first = |ty: &str| wire.iter().find(|f| f["type"] == ty).cloned().unwrap();
    assert_eq!(
        first("presence"),
        json!({"type":"presence","session_id":"s_1","members":[
            {"user_id":"u1","role":"owner"},
            {"user_id":"op-dana","name":"Dana","role":"operator"}],"others":2})
    );
    assert_eq!(
        first("presence.changed"),
        json!({"type":"presence.changed","session_id":"s_1",
            "joined":[{"user_id":"op-dana","name":"Dana","role":"operator"}],"left":[],"others":0})
    );
    let unnamed = wire
        .iter()
        .find(|f| f["type"] == "typing" && f["typing"] == false)
        .unwrap();
    assert_eq!(
        unnamed,
        &json!({"type":"typing","session_id":"s_1","member":{"role":"other"},"typing":false})
    );
}

#[test]
fn every_event_round_trips_as_stored_and_as_sent() {
    let session = StreamName::session("s_1").unwrap();
    let user = StreamName::user("u1").unwrap();
    for (i, body) in every_event_body().into_iter().enumerate() {
        let event = Event {
            seq: i as u64 + 1,
            ts: 1_700_000_000_000,
            traceparent: None,
            body: body.clone(),
        };
        // As a backplane stores it.
        let stored = serde_json::to_string(&event).unwrap();
        assert_eq!(
            serde_json::from_str::<Event>(&stored).unwrap(),
            event,
            "{stored}"
        );

        // As a session member receives it.
        let text = EventFrame::new(&session, &event).to_json();
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["type"], body.type_name());
        assert_eq!(value["session_id"], "s_1");
        assert_eq!(value["seq"], i as u64 + 1);
        assert_eq!(value["ts"], 1_700_000_000_000u64);
        assert!(value.get("stream").is_none());
        let back: EventFrame = serde_json::from_str(&text).unwrap();
        assert_eq!(back.body.as_ref(), &body);

        // As a user-stream member receives it: `stream` instead of `session_id`.
        let text = EventFrame::new(&user, &event).to_json();
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["stream"], "user:u1");
        assert!(value.get("session_id").is_none());
    }
}
