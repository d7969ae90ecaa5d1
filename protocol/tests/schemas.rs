//! The JSON Schemas in `docs/schemas/` are the ones this crate generates, and they
//! describe what it really puts on the wire: every frame it serializes validates, and
//! frames it would refuse do not.
//!
//! When the first test fails, regenerate the files with
//! `UPDATE_SCHEMAS=1 cargo test -p switchboard-protocol --test schemas`.
#![cfg(feature = "schema")]

mod samples;
use samples::{every_client_frame, every_event_body, every_server_frame};
use std::collections::BTreeSet;
use std::path::PathBuf;

use jsonschema::Validator;
use serde_json::{Value, json};
use switchboard_protocol::client::CLIENT_FRAME_TYPES;
use switchboard_protocol::{
    ClientFrame, ErrorCode, Event, EventFrame, ParsedFrame, ServerReply, StreamName, schema,
};

fn schema_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/schemas"))
}

/// A schema file's text: pretty-printed, with a trailing newline.
fn render(schema: &Value) -> String {
    // A `Value` always serializes; an empty text would only fail the comparison.
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}

fn update_requested() -> bool {
    std::env::var("UPDATE_SCHEMAS").is_ok_and(|v| !v.is_empty() && v != "0")
}

#[test]
fn checked_in_schemas_match_the_protocol_crate() {
    let dir = schema_dir();
    let update = update_requested();
    let generated = schema::all();
    let mut drifted = Vec::new();
    for (name, schema) in &generated {
        let path = dir.join(name);
        let want = render(schema);
        let have = std::fs::read_to_string(&path).ok();
        if have.as_deref() == Some(want.as_str()) {
            continue;
        }
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, want).unwrap();
            eprintln!("wrote {}", path.display());
        } else if have.is_none() {
            drifted.push(format!("{name} is missing"));
        } else {
            drifted.push(format!("{name} differs"));
        }
    }
    // A schema the crate no longer generates must not linger in the docs.
    let names: BTreeSet<&str> = generated.iter().map(|(name, _)| *name).collect();
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if file.ends_with(".json") && !names.contains(file.as_str()) {
            if update {
                std::fs::remove_file(entry.path()).unwrap();
                eprintln!("removed {}", entry.path().display());
            } else {
                drifted.push(format!("{file} is no longer generated"));
            }
        }
    }
    assert!(
        drifted.is_empty(),
        "docs/schemas/ is out of date with the switchboard-protocol types: {}.\n\
         Regenerate it with\n    \
         UPDATE_SCHEMAS=1 cargo test -p switchboard-protocol --test schemas\n\
         and check in the result.",
        drifted.join(", ")
    );
}

#[test]
fn every_schema_is_a_valid_draft_2020_12_document() {
    for (name, schema) in schema::all() {
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{name}"
        );
        assert!(schema["title"].is_string(), "{name} has no title");
        assert!(
            schema["description"].is_string(),
            "{name} has no description"
        );
        if let Err(e) = jsonschema::meta::validate(&schema) {
            panic!("{name} is not a valid JSON Schema: {e}");
        }
    }
}

fn validator(name: &str) -> Validator {
    let (_, schema) = schema::all()
        .into_iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no schema {name}"));
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[track_caller]
fn assert_valid(validator: &Validator, name: &str, instance: &Value) {
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{instance} does not validate against {name}: {errors:?}"
    );
}

#[track_caller]
fn assert_invalid(validator: &Validator, name: &str, instance: &Value) {
    assert!(
        !validator.is_valid(instance),
        "{instance} validates against {name}, but should not"
    );
}

/// The `type` constants a schema's top-level `oneOf` allows.
fn schema_types(name: &str) -> BTreeSet<String> {
    let (_, schema) = schema::all()
        .into_iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no schema {name}"));
    let Some(branches) = schema["oneOf"].as_array() else {
        panic!("{name} has no top-level oneOf");
    };
    branches
        .iter()
        .map(|branch| match &branch["properties"]["type"]["const"] {
            Value::String(t) => t.clone(),
            other => panic!("{name}: a oneOf branch has no `type` constant: {other}"),
        })
        .collect()
}

// The frames below mirror tests/round_trip.rs: one or more of every variant.

const ALL_ERROR_CODES: [ErrorCode; 11] = [
    ErrorCode::BadRequest,
    ErrorCode::Unauthorized,
    ErrorCode::TokenExpired,
    ErrorCode::Forbidden,
    ErrorCode::NotFound,
    ErrorCode::Conflict,
    ErrorCode::TooLarge,
    ErrorCode::RateLimited,
    ErrorCode::Unsupported,
    ErrorCode::Unavailable,
    ErrorCode::Internal,
];

#[test]
fn every_client_frame_validates_and_bad_ones_do_not() {
    let name = "client-frame.json";
    let v = validator(name);
    let mut seen = BTreeSet::new();
    for frame in every_client_frame() {
        seen.insert(frame.type_name().to_string());
        for id in [None, Some("req-7".to_string()), Some("x".repeat(64))] {
            let text = ParsedFrame {
                id,
                frame: frame.clone(),
            }
            .to_json();
            assert_valid(&v, name, &serde_json::from_str(&text).unwrap());
        }
    }
    let all: BTreeSet<String> = CLIENT_FRAME_TYPES.iter().map(|t| t.to_string()).collect();
    assert_eq!(seen, all, "a client frame type has no sample here");
    assert_eq!(
        schema_types(name),
        all,
        "the schema's types are not the crate's"
    );

    // What the parser accepts beyond what the crate itself writes.
    for ok in [
        json!({"type": "ping", "id": null}),
        json!({"type": "session.join", "id": "j1", "session_id": "s_9", "after_seq": 12, "extra": "ignored"}),
        json!({"type": "session.create", "metadata": {"a": [1, {"b": null}]}}),
    ] {
        assert_valid(&v, name, &ok);
        assert!(ClientFrame::parse(&ok.to_string()).is_ok(), "{ok}");
    }

    // The schema refuses what ClientFrame::parse refuses.
    for bad in [
        json!({"id": "a", "session_id": "s_1"}),
        json!({"type": "session.jion", "id": "a"}),
        json!({"type": 7}),
        json!({"type": "session.join", "id": "a"}),
        json!({"type": "session.join", "session_id": "s_1", "after_seq": "5"}),
        json!({"type": "session.join", "session_id": "s_1", "after_seq": -1}),
        json!({"type": "session.join", "session_id": 5}),
        json!({"type": "message.send", "session_id": "s_1"}),
        json!({"type": "tool.decide", "session_id": "s_1", "call_id": "c", "approved": "yes"}),
        json!({"type": "session.create", "metadata": ["not", "an", "object"]}),
        json!({"type": "auth.refresh"}),
        json!({"type": "ping", "id": 5}),
        json!({"type": "ping", "id": "x".repeat(65)}),
        json!(["ping"]),
        json!("ping"),
    ] {
        assert_invalid(&v, name, &bad);
        assert!(ClientFrame::parse(&bad.to_string()).is_err(), "{bad}");
    }
}

#[test]
fn every_server_frame_validates_and_bad_ones_do_not() {
    let name = "server-frame.json";
    let v = validator(name);
    let mut seen = BTreeSet::new();
    for frame in every_server_frame() {
        for re in [None, Some("req-1".to_string())] {
            let text = ServerReply::new(re, frame.clone()).to_json();
            let value: Value = serde_json::from_str(&text).unwrap();
            seen.insert(value["type"].as_str().unwrap().to_string());
            assert_valid(&v, name, &value);
        }
    }
    for code in ALL_ERROR_CODES {
        let text = ServerReply::error(Some("x".into()), code, "nope").to_json();
        assert_valid(&v, name, &serde_json::from_str(&text).unwrap());
    }
    assert_eq!(
        seen,
        schema_types(name),
        "a server frame type has no sample here"
    );

    for bad in [
        json!({"re": "x", "code": "not_found", "message": "nope"}),
        json!({"type": "hello"}),
        json!({"type": "error", "code": "no_such_code", "message": "nope"}),
        json!({"type": "error", "code": "not_found"}),
        json!({"type": "session.joined", "session_id": "s_1", "last_seq": "9", "recovered": true}),
        json!({"type": "welcome", "protocol": 1}),
        json!({"type": "pong", "re": 5}),
    ] {
        assert_invalid(&v, name, &bad);
        assert!(
            serde_json::from_value::<ServerReply>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn every_event_validates_as_stored_and_as_sent() {
    let (frame_name, stored_name) = ("event-frame.json", "event.json");
    let (frames, stored) = (validator(frame_name), validator(stored_name));
    let session = StreamName::session("s_1").unwrap();
    let streams = [
        session.clone(),
        StreamName::user("u1").unwrap(),
        StreamName::org("acme").unwrap(),
    ];
    let mut seen = BTreeSet::new();
    for (i, body) in every_event_body().into_iter().enumerate() {
        seen.insert(body.type_name().to_string());
        let event = Event {
            seq: i as u64 + 1,
            ts: 1_700_000_000_000,
            traceparent: None,
            body,
        };
        let as_stored = serde_json::to_value(&event).unwrap();
        assert_valid(&stored, stored_name, &as_stored);
        for stream in &streams {
            let text = EventFrame::new(stream, &event).to_json();
            assert_valid(&frames, frame_name, &serde_json::from_str(&text).unwrap());
        }
    }
    assert_eq!(
        seen,
        schema_types(frame_name),
        "an event type has no sample here"
    );
    assert_eq!(
        seen,
        schema_types(stored_name),
        "an event type has no sample here"
    );

    let message = |extra: Value| {
        let mut frame = json!({"type": "message", "message_id": "m_1", "role": "user", "text": "hi", "seq": 1, "ts": 2});
        frame
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        frame
    };
    assert_valid(&frames, frame_name, &message(json!({"session_id": "s_1"})));
    assert_valid(&stored, stored_name, &message(json!({})));
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let traced = message(json!({ "traceparent": traceparent }));
    assert_valid(&stored, stored_name, &traced);
    let event: Event = serde_json::from_value(traced).unwrap();
    assert_eq!(event.traceparent.as_deref(), Some(traceparent));
    let frame = EventFrame::new(&session, &event).to_json();
    assert!(
        !frame.contains("traceparent"),
        "a frame carries no trace context: {frame}"
    );
    let exported = serde_json::to_string(&event).unwrap();
    assert!(!exported.contains("traceparent"), "{exported}");
    assert_invalid(
        &stored,
        stored_name,
        &message(json!({ "traceparent": "not a trace context" })),
    );
    for bad in [
        // Neither `session_id` nor `stream`, or both.
        message(json!({})),
        message(json!({"session_id": "s_1", "stream": "user:u1"})),
        message(json!({"session_id": "s_1", "role": "robot"})),
        message(json!({"session_id": "s_1", "type": "telegram"})),
        message(json!({"session_id": "s_1", "seq": "1"})),
        json!({"session_id": "s_1", "seq": 1, "ts": 2, "message_id": "m_1", "role": "user", "text": "hi"}),
        json!({"session_id": "s_1", "type": "turn.delta", "turn_id": "t_1", "seq": 1, "ts": 2}),
    ] {
        assert_invalid(&frames, frame_name, &bad);
    }
    for bad in [
        json!({"type": "message", "message_id": "m_1", "role": "user", "text": "hi", "seq": 1}),
        json!({"type": "turn.end", "turn_id": "t_1", "status": "done", "text": "", "seq": 1, "ts": 2}),
        json!({"type": "tool.request", "turn_id": "t_1", "call_id": "c", "tool": "x", "seq": 1, "ts": 2}),
        json!({"seq": 1, "ts": 2}),
    ] {
        assert_invalid(&stored, stored_name, &bad);
        assert!(
            serde_json::from_value::<Event>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn every_error_code_validates_and_nothing_else_does() {
    let name = "error-code.json";
    let v = validator(name);
    for code in ALL_ERROR_CODES {
        assert_valid(&v, name, &serde_json::to_value(code).unwrap());
    }
    for bad in [json!("BadRequest"), json!(""), json!("teapot"), json!(400)] {
        assert_invalid(&v, name, &bad);
        assert!(
            serde_json::from_value::<ErrorCode>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}
