//! `GET /openapi.json`: the OpenAPI description of the `/v1` API, generated from the
//! handlers and their types; `docs/openapi.json` is checked against it.

use axum::Json;
use utoipa::OpenApi;

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
use super::sessions::{
    __path_history, __path_operator_message, HistoryResponse, MessageResponse, OperatorMessage,
};
use crate::assistant::settings::OrgModelSettings;
use crate::assistant::tools::ToolSpec;
use crate::http::error::{ErrorBody, ErrorDetail};
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
    info(title = "Switchboard HTTP API", description = "Publish into sessions, users and orgs; hand off to operators; read history; list, rename, archive, delete and export conversations, erase a user, set retention; manage the knowledge base and per-org model settings. See docs/http-api.md."),
    paths(publish, operator_message, history, list_sessions, get_session, update_session,
        delete_session, export_session, erase_user, get_retention, put_retention,
        delete_retention, put_document, list_documents, delete_document,
        get_model_settings, put_model_settings, delete_model_settings, inbox, request, claim,
        release, get_settings, put_settings, delete_settings),
    components(schemas(ErrorBody, ErrorDetail, PublishTarget, PublishRequest, PublishResponse,
        OperatorMessage, MessageResponse, HistoryResponse, DocumentRequest, AclBody,
        DocumentRef, DocumentBody, DocumentList, ModelSettingsBody, OrgModelSettings, ToolSpec,
        SessionListing, SessionSummary, SessionState, ListScope, ExportFormat, SessionChangeBody,
        DeletedSession, ErasureReport, RetentionBody, Handoff, HandoffState, Staffer, Inbox,
        InboxEntry, HandoffSettings, HandoffRequestBody)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// `GET /openapi.json`.
pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/openapi.json is what the code serves; `UPDATE_SCHEMAS=1` rewrites it.
    #[test]
    fn the_checked_in_openapi_document_matches_the_code() {
        let generated = format!(
            "{}\n",
            serde_json::to_string_pretty(&ApiDoc::openapi()).unwrap()
        );
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
}
