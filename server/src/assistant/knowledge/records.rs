//! Documents and change ids in the backplane's shared records.
//!
//! - namespace [`DOCUMENTS`], key `<org_id>/<doc_id>`: the document as JSON;
//! - namespace [`VERSIONS`], key `<org_id>`: a random change id, replaced after every
//!   write to the org's documents.
//!
//! One namespace for all orgs (rather than one per org) keeps the set of namespaces
//! fixed, which suits adapters that map a namespace to a bucket or a key prefix. The
//! price is that loading one org lists every org's documents; that happens only when
//! the org's change id moved.

use bytes::Bytes;
use switchboard_backplane::{Backplane, RecordKey};

use super::{Document, KnowledgeError};

use crate::records::namespace::{DOCUMENT_VERSIONS as VERSIONS, DOCUMENTS};

/// The record key of a document. Neither id may contain `/` (see `validate`).
pub fn document_key(org_id: &str, doc_id: &str) -> RecordKey {
    RecordKey::new(DOCUMENTS, format!("{org_id}/{doc_id}"))
}

fn version_key(org_id: &str) -> RecordKey {
    RecordKey::new(VERSIONS, org_id)
}

pub async fn put_document(
    backplane: &dyn Backplane,
    document: &Document,
) -> Result<(), KnowledgeError> {
    let value = serde_json::to_vec(document)
        .map_err(|e| KnowledgeError::Index(format!("cannot encode a document: {e}")))?;
    backplane
        .record_put(
            &document_key(&document.org_id, &document.doc_id),
            Bytes::from(value),
            None,
        )
        .await?;
    Ok(())
}

pub async fn delete_document(
    backplane: &dyn Backplane,
    org_id: &str,
    doc_id: &str,
) -> Result<bool, KnowledgeError> {
    Ok(backplane
        .record_delete(&document_key(org_id, doc_id))
        .await?)
}

pub async fn get_document(
    backplane: &dyn Backplane,
    org_id: &str,
    doc_id: &str,
) -> Result<Option<Document>, KnowledgeError> {
    let key = document_key(org_id, doc_id);
    let Some(value) = backplane.record_get(&key).await? else {
        return Ok(None);
    };
    Ok(decode(&key.key, &value, org_id))
}

/// Record a change to the org's documents: every replica's next search reloads it.
pub async fn bump_version(backplane: &dyn Backplane, org_id: &str) -> Result<(), KnowledgeError> {
    let change_id = uuid::Uuid::new_v4().simple().to_string();
    backplane
        .record_put(&version_key(org_id), Bytes::from(change_id), None)
        .await?;
    Ok(())
}

/// The org's current change id (`None` before its first write).
pub async fn read_version(
    backplane: &dyn Backplane,
    org_id: &str,
) -> Result<Option<Bytes>, KnowledgeError> {
    Ok(backplane.record_get(&version_key(org_id)).await?)
}

/// Every stored document of the org, in no particular order. Records that cannot be
/// read are skipped with a warning rather than hiding the whole org.
pub async fn load_org(
    backplane: &dyn Backplane,
    org_id: &str,
) -> Result<Vec<Document>, KnowledgeError> {
    let prefix = format!("{org_id}/");
    Ok(backplane
        .record_list(DOCUMENTS)
        .await?
        .into_iter()
        .filter(|(key, _)| key.starts_with(&prefix))
        .filter_map(|(key, value)| decode(&key, &value, org_id))
        .collect())
}

/// A document record, if it parses and its ids match its key.
fn decode(key: &str, value: &[u8], org_id: &str) -> Option<Document> {
    match serde_json::from_slice::<Document>(value) {
        Ok(document)
            if document.org_id == org_id && key == document_key(org_id, &document.doc_id).key =>
        {
            Some(document)
        }
        Ok(_) => {
            tracing::warn!(key, "a document record does not match its key; skipped");
            None
        }
        Err(e) => {
            tracing::warn!(key, error = %e, "a document record is not a document; skipped");
            None
        }
    }
}
