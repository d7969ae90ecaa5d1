//! JSON Schemas of the wire (feature `schema`), one document per frame family.
//!
//! The documents are generated from the same types that serialize the frames, so they
//! cannot describe a wire the crate does not speak. `docs/schemas/` holds a copy of
//! each; the crate's `tests/schemas.rs` fails when that copy drifts and rewrites it
//! when run with `UPDATE_SCHEMAS=1`.

use schemars::JsonSchema;
use schemars::generate::{Contract, SchemaSettings};
use serde_json::{Map, Value};

use crate::{ErrorCode, Event, EventFrame, ParsedFrame, ServerReply};

/// Every schema document, as `(file name, schema)`, in a fixed order.
pub fn all() -> Vec<(&'static str, Value)> {
    vec![
        ("client-frame.json", client_frame()),
        ("server-frame.json", server_frame()),
        ("event-frame.json", event_frame()),
        ("event.json", event()),
        ("error-code.json", error_code()),
    ]
}

/// Any frame a client may send, with its optional `id`: what the gateway accepts.
pub fn client_frame() -> Value {
    document::<ParsedFrame>(
        Contract::Deserialize,
        "Switchboard client frame",
        "A text frame a client sends to the gateway (docs/protocol.md §3): one JSON \
         object with a `type` and, optionally, an `id` (at most 64 characters) that the \
         direct reply echoes as `re`. Unknown fields are ignored.",
    )
}

/// Any direct reply or control frame the server sends, with its optional `re`.
pub fn server_frame() -> Value {
    document::<ServerReply>(
        Contract::Serialize,
        "Switchboard server frame",
        "A frame the gateway sends that is not a session event (docs/protocol.md §2.4, \
         §3 and §5.1): `welcome`, the direct replies, the ephemeral `presence`, \
         `presence.changed` and `typing` (§3.15), `error` and `goaway`. A direct reply \
         carries `re`, the `id` of the client frame it answers.",
    )
}

/// A session, user or org event as it is sent on a socket.
pub fn event_frame() -> Value {
    document::<EventFrame<'static>>(
        Contract::Serialize,
        "Switchboard event frame",
        "An event as it reaches a member connection (docs/protocol.md §4): the event's \
         `type` and fields, its `seq` and `ts`, and `session_id` for session events or \
         `stream` (`user:<id>`, `org:<id>`) for user and org events.",
    )
}

/// An event as a backplane stores it: `{seq, ts, …body}`.
pub fn event() -> Value {
    document::<Event>(
        Contract::Deserialize,
        "Switchboard stored event",
        "An event as a backplane stores it (docs/protocol.md §8.1): the position the \
         backplane assigned (`seq`, `ts` in milliseconds since the Unix epoch) and the \
         event's `type` and fields inline. Its stream is the key it is stored under, not \
         a field.",
    )
}

/// The `code` of an `error` frame or of an HTTP error body.
pub fn error_code() -> Value {
    document::<ErrorCode>(
        Contract::Deserialize,
        "Switchboard error code",
        "The `code` of an `error` frame (docs/protocol.md §5.2) and of an HTTP error body \
         (§6.10).",
    )
}

fn document<T: JsonSchema>(contract: Contract, title: &str, description: &str) -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.contract = contract;
    let mut schema = settings.into_generator().into_root_schema_for::<T>();
    schema.insert("title".into(), title.into());
    schema.insert("description".into(), description.into());
    sorted(schema.to_value())
}

/// `value` with every object's keys in sorted order, so the output is the same whether
/// or not serde_json's `preserve_order` is on in this build.
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sorted(v)))
                    .collect::<Map<_, _>>(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}
