//! `GET /openapi.json`: the OpenAPI description of the `/v1` API, generated from the
//! handlers and their types; `docs/openapi.json` is checked against it.

use axum::Json;
use serde_json::{Value, json};
use utoipa::OpenApi;

use super::assistants::{
    __path_delete_assistant, __path_get_assistant, __path_list_assistants, __path_put_assistant,
    AssistantList,
};
use super::chat::{__path_chat, ChatReply, ChatRequest};
use super::conversations::{
    __path_delete_retention, __path_delete_session, __path_erase_user, __path_export_session,
    __path_get_retention, __path_get_session, __path_list_sessions, __path_put_retention,
    __path_update_session, DeletedSession, RetentionBody, SessionChangeBody,
};
use super::documents::{
    __path_delete_document, __path_list_documents, __path_put_document, AclBody, DocumentBody,
    DocumentList, DocumentRef, DocumentRequest,
};
use super::handoff::{
    __path_claim, __path_delete_settings, __path_get_settings, __path_inbox, __path_put_settings,
    __path_release, __path_request, HandoffRequestBody,
};
use super::model_settings::{
    __path_delete_model_settings, __path_get_model_settings, __path_put_model_settings,
    ModelSettingsBody,
};
use super::publish::{__path_publish, PublishRequest, PublishResponse, PublishTarget};
use super::reload::__path_reload_configuration;
use super::sessions::{
    __path_create_session, __path_history, __path_post_message, CreateSession, HistoryResponse,
    MessageResponse, PostMessage, SessionCreated,
};
use super::stream::__path_stream;
use super::turns::{
    __path_cancel_turn, __path_decide_tool_call, __path_get_reply, __path_get_turn, CancelAccepted,
    Decision, ReplyState, ToolDecided, ToolDecisionBody, TurnEndFields, TurnState,
};
use super::webhooks::{
    __path_create_webhook, __path_delete_webhook, __path_list_webhooks, __path_webhook_deliveries,
    DeliveryBody, DeliveryLog, WebhookBody, WebhookCreated, WebhookList, WebhookRequest,
};
use crate::assistant::named::{AssistantSpec, NamedAssistant};
use crate::assistant::settings::OrgModelSettings;
use crate::assistant::tools::ToolSpec;
use crate::http::error::{ErrorBody, ErrorDetail};
use crate::reload::Reloaded;
use switchboard_protocol::conversation::{
    ErasureReport, ExportFormat, ListScope, SessionListing, SessionState, SessionSummary,
};
use switchboard_protocol::handoff::{
    Handoff, HandoffSettings, HandoffState, Inbox, InboxEntry, Staffer,
};

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A publisher or admin API key, or a JWT (roles publisher, operator, admin within its org)",
                    ))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI description of the `/v1` API, served at `/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(title = "Switchboard HTTP API", description = "Open sessions, send messages, chat synchronously, cancel turns and decide tool calls; publish into sessions, users and orgs; hand off to operators; read history; list, rename, archive, delete and export conversations, erase a user, set retention; manage the knowledge base, per-org model settings, named assistants and webhooks. See docs/http-api.md."),
    paths(publish, create_session, post_message, chat, get_reply, get_turn, cancel_turn,
        decide_tool_call, history, list_sessions, get_session, update_session,
        delete_session, export_session, erase_user, get_retention, put_retention,
        delete_retention, put_document, list_documents, delete_document,
        get_model_settings, put_model_settings, delete_model_settings, inbox, request, claim,
        release, get_settings, put_settings, delete_settings, create_webhook, list_webhooks,
        delete_webhook, webhook_deliveries, stream, reload_configuration, list_assistants,
        get_assistant, put_assistant, delete_assistant),
    components(schemas(ErrorBody, ErrorDetail, PublishTarget, PublishRequest, PublishResponse,
        PostMessage, MessageResponse, HistoryResponse, CreateSession, SessionCreated,
        ChatRequest, ChatReply, ReplyState, TurnEndFields, TurnState, CancelAccepted, Decision,
        ToolDecisionBody, ToolDecided, DocumentRequest, AclBody,
        DocumentRef, DocumentBody, DocumentList, ModelSettingsBody, OrgModelSettings, ToolSpec,
        SessionListing, SessionSummary, SessionState, ListScope, ExportFormat, SessionChangeBody,
        DeletedSession, ErasureReport, RetentionBody, Handoff, HandoffState, Staffer, Inbox,
        InboxEntry, HandoffSettings, HandoffRequestBody, WebhookRequest, WebhookCreated,
        WebhookBody, WebhookList, DeliveryBody, DeliveryLog, Reloaded, AssistantSpec,
        NamedAssistant, AssistantList)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// `GET /openapi.json`.
pub async fn serve() -> Json<Value> {
    Json(document())
}

/// The document: what the handlers' annotations say, plus what they cannot say —
/// the errors every route shares, and constraints on list items and enum variants.
/// It says exactly what the server accepts: a request valid by it is not refused
/// as malformed (schemathesis checks this, `scripts/schemathesis`).
pub fn document() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    list_shared_errors(&mut doc);
    tighten_schemas(&mut doc);
    doc
}

/// Every operation may answer `400` (a path, query or body that does not parse or
/// break a rule) and `401` (credentials); one with a body also `413` (over the
/// route's limit) and `415` (not `Content-Type: application/json`).
fn list_shared_errors(doc: &mut Value) {
    let answer = |description: &str| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        })
    };
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for operation in paths.values_mut().filter_map(Value::as_object_mut) {
        for operation in operation.values_mut().filter_map(Value::as_object_mut) {
            let has_body = operation.contains_key("requestBody");
            let Some(responses) = operation
                .get_mut("responses")
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            let mut shared = vec![
                (
                    "400",
                    "bad_request: a path, query or body that breaks the rules",
                ),
                ("401", "unauthorized: missing or refused credentials"),
            ];
            if has_body {
                shared.push(("413", "too_large: the body is over this route's limit"));
                shared.push((
                    "415",
                    "unsupported: the body is not sent as application/json",
                ));
            }
            for (status, description) in shared {
                responses
                    .entry(status)
                    .or_insert_with(|| answer(description));
            }
        }
    }
}

/// Constraints `utoipa` cannot state from the types: a document id's characters, an
/// ACL's names are 1 to 256 characters, a publish target names exactly one stream, …
fn tighten_schemas(doc: &mut Value) {
    if let Some(parameters) =
        doc["paths"]["/v1/admin/documents/{doc_id}"]["delete"]["parameters"].as_array_mut()
    {
        for parameter in parameters.iter_mut().filter(|p| p["name"] == "doc_id") {
            parameter["schema"]["pattern"] = json!(DOC_ID_PATTERN);
        }
    }
    let schemas = &mut doc["components"]["schemas"];
    for list in ["groups", "users"] {
        let items = &mut schemas["AclBody"]["properties"][list]["items"];
        items["minLength"] = json!(1);
        items["maxLength"] = json!(256);
    }
    if let Some(variants) = schemas["PublishTarget"]["oneOf"].as_array_mut() {
        for variant in variants {
            variant["additionalProperties"] = json!(false);
            if let Some(properties) = variant["properties"].as_object_mut() {
                for (name, id) in properties.iter_mut() {
                    id["pattern"] = json!(match name.as_str() {
                        "org" => ORG_ID_PATTERN,
                        _ => ".",
                    });
                }
            }
        }
    }
    // `metadata` and `assistant` belong to a new session: not with `session_id`.
    schemas["ChatRequest"]["not"] = json!({"anyOf": [
        {"required": ["session_id", "metadata"]},
        {"required": ["session_id", "assistant"]},
    ]});
    // A change must change something.
    schemas["SessionChangeBody"]["minProperties"] = json!(1);
    let waiting = &mut schemas["HandoffSettings"]["properties"]["waiting_message"];
    waiting["minLength"] = json!(1);
    waiting["maxLength"] = json!(500);
    let webhook = &mut schemas["WebhookRequest"]["properties"];
    webhook["url"]["minLength"] = json!(1);
    webhook["url"]["maxLength"] = json!(2048); // webhooks::registration::MAX_URL_BYTES
    webhook["events"]["minItems"] = json!(1);
    webhook["events"]["items"]["enum"] = json!(
        crate::webhooks::WebhookEventType::ALL
            .iter()
            .map(|kind| kind.as_str())
            .collect::<Vec<_>>()
    );
    let model = &mut schemas["OrgModelSettings"]["properties"];
    model["temperature"]["minimum"] = json!(0);
    model["temperature"]["maximum"] = json!(2);
    model["max_tokens"]["minimum"] = json!(1);
    model["model"]["minLength"] = json!(1);
    model["model"]["maxLength"] = json!(200);
    tighten_assistants(doc);
    headers_are_never_null(doc);
}

/// A named assistant's name, its `documents` prefixes and display name as
/// `assistant::named` checks them; and `NamedAssistant` as one object: the spec's
/// fields (flattened) and its identity, since the spec alone admits no other property.
fn tighten_assistants(doc: &mut Value) {
    for method in ["get", "put", "delete"] {
        if let Some(parameters) =
            doc["paths"]["/v1/admin/assistants/{name}"][method]["parameters"].as_array_mut()
        {
            for parameter in parameters.iter_mut().filter(|p| p["name"] == "name") {
                parameter["schema"]["pattern"] = json!(ASSISTANT_NAME_PATTERN);
            }
        }
    }
    let schemas = &mut doc["components"]["schemas"];
    let spec = &mut schemas["AssistantSpec"]["properties"];
    spec["documents"]["items"]["pattern"] = json!(DOC_ID_PATTERN);
    spec["display_name"]["pattern"] = json!(r"\S");
    let mut named = schemas["AssistantSpec"].clone();
    named["description"] = json!("An org's assistant, as stored and listed.");
    named["properties"]["name"] = json!({"type": "string", "pattern": ASSISTANT_NAME_PATTERN});
    named["properties"]["org_id"] = json!({"type": "string"});
    named["properties"]["updated_at"] = json!({
        "type": "integer", "format": "int64", "minimum": 0,
        "description": "When it was last written, milliseconds since the epoch."
    });
    named["required"] = json!(["name", "org_id", "settings", "updated_at"]);
    schemas["NamedAssistant"] = named;
}

/// A header is text or absent, never JSON `null`: an optional header's schema does not
/// admit `null` (which a client would send as the text "null").
fn headers_are_never_null(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for operation in paths.values_mut().filter_map(Value::as_object_mut) {
        for operation in operation.values_mut().filter_map(Value::as_object_mut) {
            let Some(parameters) = operation
                .get_mut("parameters")
                .and_then(Value::as_array_mut)
            else {
                continue;
            };
            for parameter in parameters.iter_mut().filter(|p| p["in"] == "header") {
                if let Some(types) = parameter["schema"]["type"].as_array() {
                    let kept: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
                    if let [only] = kept.as_slice() {
                        parameter["schema"]["type"] = only.clone();
                    }
                }
            }
        }
    }
}

/// A document id (`assistant::knowledge::validate::doc_id`).
const DOC_ID_PATTERN: &str = "^[A-Za-z0-9_.:-]{1,128}$";
/// A named assistant's name (`assistant::named::valid_name`).
const ASSISTANT_NAME_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";
/// An org id, as the document states it.
const ORG_ID_PATTERN: &str = "^[A-Za-z0-9_-]{1,256}$";

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/openapi.json is what the code serves; `UPDATE_SCHEMAS=1` rewrites it.
    #[test]
    fn the_checked_in_openapi_document_matches_the_code() {
        let generated = format!("{}\n", serde_json::to_string_pretty(&document()).unwrap());
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
        if std::env::var_os("UPDATE_SCHEMAS").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "docs/openapi.json is out of date: run `UPDATE_SCHEMAS=1 cargo test -p switchboard --lib openapi` and commit it"
        );
    }

    /// Query parameters are documented in the query (an `IntoParams` struct without
    /// `parameter_in` would put them in the path), the session key in its header, and every operation lists the
    /// statuses every route may answer.
    #[test]
    fn parameters_sit_where_the_server_reads_them_and_shared_errors_are_listed() {
        let doc = document();
        for (path, operations) in doc["paths"].as_object().unwrap() {
            for (method, operation) in operations.as_object().unwrap() {
                for parameter in operation["parameters"].as_array().into_iter().flatten() {
                    let name = parameter["name"].as_str().unwrap();
                    let placed = parameter["in"].as_str().unwrap();
                    let in_path = path.contains(&format!("{{{name}}}"));
                    let expected = match (in_path, name) {
                        (true, _) => "path",
                        (false, "Switchboard-Session-Key" | "Last-Event-ID") => "header",
                        (false, _) => "query",
                    };
                    assert_eq!(placed, expected, "{method} {path}: {name}");
                }
                for status in ["400", "401"] {
                    assert!(
                        operation["responses"].get(status).is_some(),
                        "{method} {path} lists {status}"
                    );
                }
            }
        }
    }
}
