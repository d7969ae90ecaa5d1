//! Documents and change ids in the backplane's shared records.
//!
//! - namespace [`DOCUMENTS`], key `<org_id>/<doc_id>`: the document as JSON, with the
//!   `change` id of the write that stored it (absent in records written before
//!   manifests: those count as [`LEGACY_CHANGE`]);
//! - namespace [`VERSIONS`], key `<org_id>`: a random change id, replaced after every
//!   write to the org's documents;
//! - the org's manifest (`manifest`): which documents it keeps.
//!
//! One namespace for all orgs (rather than one per org) keeps the set of namespaces
//! fixed, which suits adapters that map a namespace to a bucket or a key prefix.
//! Reading one org goes through its manifest and reads that org's records only; the
//! whole namespace is listed once per org, when an org written before manifests
//! existed gets its manifest.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use switchboard_backplane::{Backplane, RecordKey};

use super::{Document, KnowledgeError};

use crate::records::namespace::{DOCUMENT_VERSIONS as VERSIONS, DOCUMENTS};

/// The change id of a document record written before change ids existed.
pub const LEGACY_CHANGE: &str = "legacy";

/// A document as stored: the document's fields and the change id of its write.
#[derive(Serialize, Deserialize)]
struct Stored {
    #[serde(flatten)]
    document: Document,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    change: Option<String>,
}

/// The record key of a document. Neither id may contain `/` (see `validate`).
pub fn document_key(org_id: &str, doc_id: &str) -> RecordKey {
    RecordKey::new(DOCUMENTS, format!("{org_id}/{doc_id}"))
}

fn version_key(org_id: &str) -> RecordKey {
    RecordKey::new(VERSIONS, org_id)
}

/// A new random change id.
pub fn new_change() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The stored form of `document` written by change `change`.
pub fn encode(document: &Document, change: &str) -> Result<Bytes, KnowledgeError> {
    let stored = Stored {
        document: document.clone(),
        change: Some(change.to_string()),
    };
    serde_json::to_vec(&stored)
        .map(Bytes::from)
        .map_err(|e| KnowledgeError::Index(format!("cannot encode a document: {e}")))
}

pub async fn put_document(
    backplane: &dyn Backplane,
    document: &Document,
    value: Bytes,
) -> Result<(), KnowledgeError> {
    backplane
        .record_put(
            &document_key(&document.org_id, &document.doc_id),
            value,
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

/// One document and the change id that stored it.
pub async fn get_document(
    backplane: &dyn Backplane,
    org_id: &str,
    doc_id: &str,
) -> Result<Option<(Document, String)>, KnowledgeError> {
    let key = document_key(org_id, doc_id);
    let Some(value) = backplane.record_get(&key).await? else {
        return Ok(None);
    };
    Ok(decode(&key.key, &value, org_id))
}

/// Record a change to the org's documents: every replica's next search reloads it.
pub async fn bump_version(backplane: &dyn Backplane, org_id: &str) -> Result<(), KnowledgeError> {
    backplane
        .record_put(&version_key(org_id), Bytes::from(new_change()), None)
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

/// Every readable document record of the org with its size in bytes and change id,
/// found by listing the whole namespace: only to give an org written before manifests
/// its manifest. Records that cannot be read are skipped with a warning.
pub async fn scan_org(
    backplane: &dyn Backplane,
    org_id: &str,
) -> Result<Vec<(String, u64, String)>, KnowledgeError> {
    let prefix = format!("{org_id}/");
    Ok(backplane
        .record_list(DOCUMENTS)
        .await?
        .into_iter()
        .filter(|(key, _)| key.starts_with(&prefix))
        .filter_map(|(key, value)| {
            decode(&key, &value, org_id)
                .map(|(document, change)| (document.doc_id, value.len() as u64, change))
        })
        .collect())
}

/// A document record and its change id, if it parses and its ids match its key.
fn decode(key: &str, value: &[u8], org_id: &str) -> Option<(Document, String)> {
    match serde_json::from_slice::<Stored>(value) {
        Ok(Stored { document, change })
            if document.org_id == org_id && key == document_key(org_id, &document.doc_id).key =>
        {
            Some((
                document,
                change.unwrap_or_else(|| LEGACY_CHANGE.to_string()),
            ))
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
