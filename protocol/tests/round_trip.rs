//! Every frame and event survives serialization and parsing unchanged, and looks on
//! the wire the way PROTOCOL.md shows it.

use serde_json::{Value, json};
use switchboard_protocol::client::{
    AuthRefresh, MessageSend, SessionCreate, SessionJoin, SessionLeave, ToolDecide, TurnCancel,
};
use switchboard_protocol::{
    ClientFrame, ErrorCode, Event, EventBody, EventFrame, Limits, ParsedFrame, Principal, Role,
    ServerFrame, ServerReply, Source, StreamName, TurnStatus, Usage,
};

fn every_client_frame() -> Vec<ClientFrame> {
    let mut metadata = serde_json::Map::new();
    metadata.insert("page".into(), json!("/pricing"));
    vec![
        ClientFrame::Ping {},
        ClientFrame::SessionCreate(SessionCreate { metadata: None }),
        ClientFrame::SessionCreate(SessionCreate {
            metadata: Some(metadata),
        }),
        ClientFrame::SessionJoin(SessionJoin {
            session_id: "s_1".into(),
            after_seq: Some(41),
            session_key: Some("k_x".into()),
        }),
        ClientFrame::SessionJoin(SessionJoin {
            session_id: "s_1".into(),
            after_seq: None,
            session_key: None,
        }),
        ClientFrame::SessionLeave(SessionLeave {
            session_id: "s_1".into(),
        }),
        ClientFrame::MessageSend(MessageSend {
            session_id: "s_1".into(),
            text: "héllo \"world\" <b>".into(),
            client_message_id: Some("cm-1".into()),
        }),
        ClientFrame::TurnCancel(TurnCancel {
            session_id: "s_1".into(),
            turn_id: "t_1".into(),
        }),
        ClientFrame::ToolDecide(ToolDecide {
            session_id: "s_1".into(),
            call_id: "call_1".into(),
            approved: true,
        }),
        ClientFrame::AuthRefresh(AuthRefresh {
            token: "eyJ...".into(),
        }),
    ]
}

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

fn every_server_frame() -> Vec<ServerFrame> {
    vec![
        ServerFrame::Welcome {
            protocol: 1,
            connection_id: "c_1".into(),
            server_id: "replica-a".into(),
            principal: Principal {
                user_id: Some("u1".into()),
                org_id: "acme".into(),
                groups: vec!["support".into()],
                roles: vec!["operator".into()],
                anonymous: false,
            },
            heartbeat_ms: 25000,
            limits: Limits {
                max_frame_bytes: 65536,
                max_text_chars: 8000,
                max_frames_per_second: 20,
                max_sessions_per_connection: 16,
            },
        },
        ServerFrame::Pong {},
        ServerFrame::SessionCreated {
            session_id: "s_1".into(),
            session_key: Some("k_1".into()),
            seq: 0,
        },
        ServerFrame::SessionCreated {
            session_id: "s_1".into(),
            session_key: None,
            seq: 3,
        },
        ServerFrame::SessionJoined {
            session_id: "s_1".into(),
            last_seq: 9,
            recovered: false,
        },
        ServerFrame::SessionLeft {
            session_id: "s_1".into(),
        },
        ServerFrame::MessageAccepted {
            session_id: "s_1".into(),
            message_id: "m_1".into(),
            seq: 4,
        },
        ServerFrame::ToolDecided {
            session_id: "s_1".into(),
            call_id: "call_1".into(),
            approved: false,
        },
        ServerFrame::AuthRefreshed {
            expires_at: 1_900_000_000,
        },
        ServerFrame::Error {
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
        },
        ServerFrame::Goaway {
            reason: "draining".into(),
        },
    ]
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

fn every_event_body() -> Vec<EventBody> {
    vec![
        EventBody::Message {
            message_id: "m_1".into(),
            role: Role::User,
            text: "Où est ma commande? 📦".into(),
            author: Some("u1".into()),
        },
        EventBody::Message {
            message_id: "m_2".into(),
            role: Role::Operator,
            text: "<img src=x onerror=alert(1)>".into(),
            author: None,
        },
        EventBody::TurnStart {
            turn_id: "t_1".into(),
            reply_to: "m_1".into(),
        },
        EventBody::TurnDelta {
            turn_id: "t_1".into(),
            text: "Hello, ".into(),
        },
        EventBody::ToolRequest {
            turn_id: "t_1".into(),
            call_id: "call_1".into(),
            tool: "lookup_order".into(),
            arguments: json!({"order_id": 42, "nested": {"a": [1, 2]}}),
        },
        EventBody::ToolResult {
            turn_id: "t_1".into(),
            call_id: "call_1".into(),
            ok: true,
            output: Some(json!({"status": "shipped"})),
        },
        EventBody::TurnEnd {
            turn_id: "t_1".into(),
            status: TurnStatus::Completed,
            text: "Hello, world".into(),
            usage: Some(Usage {
                prompt_tokens: 10,
                completion_tokens: 2,
                total_tokens: 12,
            }),
            sources: Some(vec![Source {
                doc_id: "d1".into(),
                title: "Shipping".into(),
                uri: Some("https://example.com/shipping".into()),
            }]),
            error: None,
        },
        EventBody::TurnEnd {
            turn_id: "t_2".into(),
            status: TurnStatus::Failed,
            text: "Hel".into(),
            usage: None,
            sources: None,
            error: Some("upstream closed early".into()),
        },
        EventBody::Custom {
            name: "order.shipped".into(),
            data: json!({"order": 42, "items": ["a", "b"], "ok": true, "none": null}),
            publisher: Some("orders".into()),
        },
    ]
}

#[test]
fn every_event_round_trips_as_stored_and_as_sent() {
    let session = StreamName::session("s_1").unwrap();
    let user = StreamName::user("u1").unwrap();
    for (i, body) in every_event_body().into_iter().enumerate() {
        let event = Event {
            seq: i as u64 + 1,
            ts: 1_700_000_000_000,
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
