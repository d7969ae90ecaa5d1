//! Each org's manifest: the documents it keeps, with each one's stored size and the
//! change id of its last write. One small record per org (namespace
//! `documents-manifest`, key `<org_id>`), changed only by compare-and-set, so the
//! org's quota holds across replicas, and an index refresh learns from it which of
//! the org's documents to read, and reads only those.
//!
//! A write updates the manifest first (refusing what would pass the quota), then the
//! document record, then the org's change id. A write that stops in between leaves a
//! manifest entry whose record is missing or older: it is counted until the document
//! is written or deleted again, and refreshes read it again (only when the org
//! changes) until its record catches up.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use switchboard_backplane::{Backplane, RecordKey};

use super::{KnowledgeError, records};
use crate::records::namespace::DOCUMENT_MANIFESTS;

/// Compare-and-set attempts before a write gives up as contended.
const UPDATE_ATTEMPTS: usize = 16;

/// What one org may keep (`--max-documents-per-org`, `--max-document-bytes-per-org`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub max_documents: usize,
    pub max_bytes: u64,
}

/// Why a write was refused by the quota, for the metric's `limit` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    Documents,
    Bytes,
}

impl Exceeded {
    pub fn label(self) -> &'static str {
        match self {
            Exceeded::Documents => "documents",
            Exceeded::Bytes => "bytes",
        }
    }
}

/// One document of the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Size of the stored record (the document's JSON).
    pub bytes: u64,
    /// The change id of the write that stored it.
    pub change: String,
}

/// An org's documents, by `doc_id`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub documents: BTreeMap<String, Entry>,
}

impl Manifest {
    /// Bytes of all the org's documents.
    pub fn bytes(&self) -> u64 {
        self.documents
            .values()
            .fold(0u64, |sum, e| sum.saturating_add(e.bytes))
    }

    /// Refuse `self` (the manifest after a write) against `quota` when it passes a
    /// limit it did not pass before the write (`before`): replacing a document with
    /// one no larger is always allowed, even in an org over a lowered quota.
    pub fn check(
        &self,
        before: &Manifest,
        org_id: &str,
        quota: Quota,
    ) -> Result<(), KnowledgeError> {
        let count = self.documents.len();
        if count > quota.max_documents && count > before.documents.len() {
            return Err(KnowledgeError::Quota {
                exceeded: Exceeded::Documents,
                message: format!(
                    "org {org_id} keeps {} documents and may keep at most {} (--max-documents-per-org); delete some or replace an existing doc_id",
                    before.documents.len(),
                    quota.max_documents
                ),
            });
        }
        let bytes = self.bytes();
        if bytes > quota.max_bytes && bytes > before.bytes() {
            return Err(KnowledgeError::Quota {
                exceeded: Exceeded::Bytes,
                message: format!(
                    "org {org_id} keeps {} bytes of documents; with this write it would keep {bytes}, over its limit of {} bytes (--max-document-bytes-per-org); delete or shorten documents first",
                    before.bytes(),
                    quota.max_bytes
                ),
            });
        }
        Ok(())
    }
}

fn key(org_id: &str) -> RecordKey {
    RecordKey::new(DOCUMENT_MANIFESTS, org_id)
}

fn encode(manifest: &Manifest) -> Result<Bytes, KnowledgeError> {
    serde_json::to_vec(manifest)
        .map(Bytes::from)
        .map_err(|e| KnowledgeError::Index(format!("cannot encode a manifest: {e}")))
}

/// The stored manifest and its raw value (for compare-and-set), or `None`.
async fn stored(
    backplane: &dyn Backplane,
    org_id: &str,
) -> Result<Option<(Manifest, Bytes)>, KnowledgeError> {
    let Some(raw) = backplane.record_get(&key(org_id)).await? else {
        return Ok(None);
    };
    match serde_json::from_slice::<Manifest>(&raw) {
        Ok(manifest) => Ok(Some((manifest, raw))),
        Err(e) => Err(KnowledgeError::Index(format!(
            "the document manifest of org {org_id} is unreadable: {e}"
        ))),
    }
}

/// The manifest of an org written before manifests existed, from its records (none
/// for an org that was never written).
async fn from_records(backplane: &dyn Backplane, org_id: &str) -> Result<Manifest, KnowledgeError> {
    if records::read_version(backplane, org_id).await?.is_none() {
        return Ok(Manifest::default());
    }
    let documents = records::scan_org(backplane, org_id)
        .await?
        .into_iter()
        .map(|(doc_id, bytes, change)| (doc_id, Entry { bytes, change }))
        .collect();
    Ok(Manifest { documents })
}

/// The org's manifest; an org written before manifests gets its manifest now (from
/// one listing of the records, stored so that it happens once).
pub async fn read(backplane: &dyn Backplane, org_id: &str) -> Result<Manifest, KnowledgeError> {
    if let Some((manifest, _)) = stored(backplane, org_id).await? {
        return Ok(manifest);
    }
    let built = from_records(backplane, org_id).await?;
    if !backplane
        .record_create(&key(org_id), encode(&built)?, None)
        .await?
        && let Some((manifest, _)) = stored(backplane, org_id).await?
    {
        // Another writer created it first: theirs is the truth.
        return Ok(manifest);
    }
    Ok(built)
}

/// Apply `change` to the org's manifest by compare-and-set, refusing what passes
/// `quota`; retried while other writers change it meanwhile.
pub async fn update(
    backplane: &dyn Backplane,
    org_id: &str,
    quota: Quota,
    change: impl Fn(&mut Manifest),
) -> Result<Manifest, KnowledgeError> {
    for _ in 0..UPDATE_ATTEMPTS {
        let (before, raw) = match stored(backplane, org_id).await? {
            Some((manifest, raw)) => (manifest, Some(raw)),
            None => (from_records(backplane, org_id).await?, None),
        };
        let mut after = before.clone();
        change(&mut after);
        after.check(&before, org_id, quota)?;
        let value = encode(&after)?;
        let written = match &raw {
            Some(raw) => {
                backplane
                    .record_replace(&key(org_id), raw, Some(value), None)
                    .await?
            }
            None => backplane.record_create(&key(org_id), value, None).await?,
        };
        if written {
            return Ok(after);
        }
    }
    Err(KnowledgeError::Contended(format!(
        "the documents of org {org_id} are being changed by many writers at once; retry"
    )))
}
