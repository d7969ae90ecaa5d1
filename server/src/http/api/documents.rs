//! `/v1/admin/documents`: the knowledge base of an org.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use switchboard_protocol::ErrorCode;
use utoipa::ToSchema;

use super::{OrgQuery, administered_org};
use crate::assistant::knowledge::{Acl, Document};
use crate::error::ClientError;
use crate::http::credentials::Authed;
use crate::http::error::{ApiError, ApiJson, ErrorBody};
use crate::state::AppState;

/// A document to create or replace.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentRequest {
    #[schema(pattern = r"^[A-Za-z0-9_.:-]{1,128}$")]
    pub doc_id: String,
    /// With an admin key, any org; a JWT admin's own org only.
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,256}$")]
    pub org_id: String,
    /// 1 to 500 characters, not only spaces.
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    pub title: String,
    /// At most 1 MiB of UTF-8.
    pub text: String,
    #[serde(default)]
    pub uri: Option<String>,
    #[serde(
        default,
        deserialize_with = "switchboard_protocol::object_only::object"
    )]
    pub acl: AclBody,
}

/// Who may read a document (docs/protocol.md §7).
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AclBody {
    #[serde(default)]
    pub public: bool,
    /// At most 1000 names of 1 to 256 characters.
    #[serde(default)]
    #[schema(max_items = 1000)]
    pub groups: Vec<String>,
    /// At most 1000 names of 1 to 256 characters.
    #[serde(default)]
    #[schema(max_items = 1000)]
    pub users: Vec<String>,
}

/// The stored document's identity.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentRef {
    pub doc_id: String,
    pub org_id: String,
}

/// A document as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentBody {
    pub doc_id: String,
    pub org_id: String,
    pub title: String,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    pub acl: AclBody,
}

impl From<Document> for DocumentBody {
    fn from(d: Document) -> DocumentBody {
        DocumentBody {
            doc_id: d.doc_id,
            org_id: d.org_id,
            title: d.title,
            text: d.text,
            uri: d.uri,
            acl: AclBody {
                public: d.acl.public,
                groups: d.acl.groups,
                users: d.acl.users,
            },
        }
    }
}

/// An org's documents.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentList {
    pub org_id: String,
    pub documents: Vec<DocumentBody>,
}

/// Create or replace a document; searchable at once on every replica.
#[utoipa::path(post, path = "/v1/admin/documents", request_body = DocumentRequest,
    responses((status = 200, body = DocumentRef), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 413, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_document(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiJson(request): ApiJson<DocumentRequest>,
) -> Result<Json<DocumentRef>, ApiError> {
    let org_id = administered_org(&caller, Some(&request.org_id))?;
    let document = Document {
        doc_id: request.doc_id,
        org_id,
        title: request.title,
        text: request.text,
        uri: request.uri,
        acl: Acl {
            public: request.acl.public,
            groups: request.acl.groups,
            users: request.acl.users,
        },
    };
    let reference = DocumentRef {
        doc_id: document.doc_id.clone(),
        org_id: document.org_id.clone(),
    };
    state.knowledge.ingest(document).await?;
    Ok(Json(reference))
}

/// List an org's documents, sorted by `doc_id`.
#[utoipa::path(get, path = "/v1/admin/documents", params(OrgQuery),
    responses((status = 200, body = DocumentList), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_documents(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Query(query): Query<OrgQuery>,
) -> Result<Json<DocumentList>, ApiError> {
    let org_id = administered_org(&caller, query.org_id.as_deref())?;
    let documents = state.knowledge.list(&org_id).await?;
    Ok(Json(DocumentList {
        org_id,
        documents: documents.into_iter().map(DocumentBody::from).collect(),
    }))
}

/// Delete a document of an org.
#[utoipa::path(delete, path = "/v1/admin/documents/{doc_id}",
    params(("doc_id" = String, Path, description = "the document"), OrgQuery),
    responses((status = 204, description = "deleted"), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_document(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(doc_id): Path<String>,
    Query(query): Query<OrgQuery>,
) -> Result<StatusCode, ApiError> {
    let org_id = administered_org(&caller, query.org_id.as_deref())?;
    if state.knowledge.delete(&org_id, &doc_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError(ClientError::new(
            ErrorCode::NotFound,
            format!("org {org_id} has no document {doc_id}"),
        )))
    }
}
