//! The knowledge base the agent answers from, searched only within what the asker may
//! read (docs/protocol.md §7; the rule itself is `access::policy::read_document`).
//!
//! # Where documents live
//!
//! Documents are shared records of the backplane, so every replica sees the same set:
//! namespace `documents`, key `<org_id>/<doc_id>`, value the [`Document`] as JSON with
//! the change id of its write (neither id can contain `/`, so the key is
//! unambiguous). Beside them, namespace `documents-version`, key `<org_id>`, holds a
//! random change id that every ingest or delete in the org replaces *after* writing
//! the document record, and namespace `documents-manifest`, key `<org_id>`, lists
//! the org's documents with their sizes and change ids (`manifest`): each org keeps
//! at most `--max-documents-per-org` documents of at most
//! `--max-document-bytes-per-org` bytes in all.
//!
//! # Searching, and how a replica stays fresh
//!
//! Each replica keeps its own in-memory tantivy index per org (see `index`). Before a
//! search it reads the org's change id (one `record_get`); when that differs from the
//! id its index was built at, it reads the org's manifest and only the records of the
//! org's documents whose change id differs from the one indexed, brings the index up
//! to date, then labels it with the id it read *before* the manifest. A change whose
//! id was written before that read was also written before the manifest was read, so
//! it is in the index; a change written later leaves a different id behind, so the
//! next search reloads. Ingest and delete on this replica run the same refresh at
//! once, so their effect is visible to the very next search.
//!
//! A document's text is held once per replica besides the index's postings: by the
//! records (in this process only with the memory backplane). The index keeps change
//! ids, not documents; a search reads its few hits from the records.
//!
//! [`KnowledgeBase::search`] takes the asker's access context as a required argument:
//! there is no way to search without one. Visibility is part of the tantivy query (org
//! and ACL terms), the ranking statistics are computed over the asker's visible
//! documents only, and every hit is checked again with [`Document::visible_to`]. A
//! document the asker may not read is never returned and does not change any score.

pub mod file;
mod index;
mod manifest;
mod records;
mod validate;

#[cfg(test)]
mod quota_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use switchboard_backplane::{Backplane, RecordError};

use crate::access::AccessContext;
use crate::access::policy;
pub use crate::access::policy::Acl;
use crate::config::DocumentQuota;
use crate::metrics::Metrics;
pub use manifest::Exceeded;
use manifest::{Entry, Manifest, Quota};

/// Bytes of document records a refresh reads before indexing them: a refresh holds
/// at most about this much besides the index.
const REFRESH_BATCH_BYTES: u64 = 8 * 1024 * 1024;

pub use validate::{
    MAX_ACL_ENTRIES, MAX_ACL_NAME_CHARS, MAX_DOC_ID_CHARS, MAX_TEXT_BYTES, MAX_TITLE_CHARS,
};

/// A document of the knowledge base.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    pub doc_id: String,
    pub org_id: String,
    pub title: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(default)]
    pub acl: Acl,
}

impl Document {
    /// Whether `access` may read this document (`access::policy::read_document`).
    pub fn visible_to(&self, access: &AccessContext) -> bool {
        policy::read_document(access, &self.org_id, &self.acl).is_ok()
    }
}

/// A search result: a visible document and its score.
#[derive(Debug, Clone)]
pub struct Hit {
    pub document: Document,
    pub score: f64,
}

/// Why a knowledge-base operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    /// The request is not valid. The message is meant for the caller (an admin).
    #[error("{0}")]
    Invalid(String),
    /// The backplane failed; retrying later may work.
    #[error("the knowledge base is unavailable: {0}")]
    Backplane(#[from] RecordError),
    /// The local search index failed.
    #[error("the knowledge index failed: {0}")]
    Index(String),
    /// The write would take the org past its document quota. The message names the
    /// limit and the org's use.
    #[error("{message}")]
    Quota { exceeded: Exceeded, message: String },
    /// Too many concurrent writers in one org; retrying later works.
    #[error("{0}")]
    Contended(String),
}

impl From<tantivy::TantivyError> for KnowledgeError {
    fn from(e: tantivy::TantivyError) -> Self {
        KnowledgeError::Index(e.to_string())
    }
}

/// The knowledge base of one replica: documents in the backplane's shared records,
/// a local search index per org kept in step with them.
pub struct KnowledgeBase {
    backplane: Arc<dyn Backplane>,
    indexes: index::Indexes,
    quota: Quota,
    metrics: Option<Arc<Metrics>>,
}

impl KnowledgeBase {
    /// A knowledge base with the default quota and no metrics (tests).
    pub fn new(backplane: Arc<dyn Backplane>) -> KnowledgeBase {
        KnowledgeBase::configured(backplane, &DocumentQuota::default(), None)
    }

    /// A knowledge base with the flags' quota, counting in `metrics`.
    pub fn configured(
        backplane: Arc<dyn Backplane>,
        quota: &DocumentQuota,
        metrics: Option<Arc<Metrics>>,
    ) -> KnowledgeBase {
        KnowledgeBase {
            backplane,
            indexes: index::Indexes::new(),
            quota: Quota {
                max_documents: quota.max_documents_per_org as usize,
                max_bytes: quota.max_document_bytes_per_org,
            },
            metrics,
        }
    }

    /// Add a document, or replace the one with the same `doc_id` in its org. Searchable
    /// on every replica as soon as this returns.
    pub async fn ingest(&self, document: Document) -> Result<(), KnowledgeError> {
        self.ingest_all(vec![document]).await
    }

    /// Ingest many documents (boot seeding, a knowledge file): all are validated before
    /// any is stored, and each org's change id is bumped once.
    pub async fn ingest_all(&self, documents: Vec<Document>) -> Result<(), KnowledgeError> {
        for document in &documents {
            validate::document(document)?;
        }
        let mut by_org: BTreeMap<String, Vec<Document>> = BTreeMap::new();
        for document in documents {
            by_org
                .entry(document.org_id.clone())
                .or_default()
                .push(document);
        }
        for (org_id, documents) in by_org {
            let mut writes = Vec::with_capacity(documents.len());
            for document in documents {
                let change = records::new_change();
                let value = records::encode(&document, &change)?;
                writes.push((document, change, value));
            }
            // Counted before anything is stored, so concurrent writers on any replica
            // cannot pass the quota together.
            manifest::update(&*self.backplane, &org_id, self.quota, |m| {
                for (document, change, value) in &writes {
                    let entry = Entry {
                        bytes: value.len() as u64,
                        change: change.clone(),
                    };
                    m.documents.insert(document.doc_id.clone(), entry);
                }
            })
            .await
            .inspect_err(|e| self.count_refusal(e))?;
            let mut stored = Ok(());
            for (document, _, value) in writes {
                stored = records::put_document(&*self.backplane, &document, value).await;
                if stored.is_err() {
                    break;
                }
            }
            // Announce even a partial batch, or other replicas would miss what was stored.
            records::bump_version(&*self.backplane, &org_id).await?;
            self.refresh_after_write(&org_id).await;
            stored?;
        }
        Ok(())
    }

    /// Remove a document; returns whether it existed. Gone from every replica's answers
    /// as soon as this returns.
    pub async fn delete(&self, org_id: &str, doc_id: &str) -> Result<bool, KnowledgeError> {
        validate::org_id(org_id)?;
        validate::doc_id(doc_id)?;
        let existed = records::delete_document(&*self.backplane, org_id, doc_id).await?;
        let listed = std::sync::atomic::AtomicBool::new(false);
        if existed
            || records::read_version(&*self.backplane, org_id)
                .await?
                .is_some()
        {
            // Also when the record was missing: a write that stopped before its record
            // left an entry that counts against the quota until deleted.
            manifest::update(&*self.backplane, org_id, self.quota, |m| {
                let was = m.documents.remove(doc_id).is_some();
                listed.store(was, std::sync::atomic::Ordering::Relaxed);
            })
            .await?;
        }
        let existed = existed || listed.into_inner();
        if existed {
            records::bump_version(&*self.backplane, org_id).await?;
            self.refresh_after_write(org_id).await;
        }
        Ok(existed)
    }

    /// One document, read from the shared records.
    pub async fn get(
        &self,
        org_id: &str,
        doc_id: &str,
    ) -> Result<Option<Document>, KnowledgeError> {
        validate::org_id(org_id)?;
        validate::doc_id(doc_id)?;
        Ok(records::get_document(&*self.backplane, org_id, doc_id)
            .await?
            .map(|(document, _)| document))
    }

    /// Every document of an org, read from the shared records, sorted by `doc_id`.
    pub async fn list(&self, org_id: &str) -> Result<Vec<Document>, KnowledgeError> {
        validate::org_id(org_id)?;
        let manifest = self.manifest(org_id).await?;
        let mut documents = Vec::with_capacity(manifest.documents.len());
        for doc_id in manifest.documents.keys() {
            if let Some((document, _)) =
                records::get_document(&*self.backplane, org_id, doc_id).await?
            {
                documents.push(document);
            }
        }
        Ok(documents)
    }

    /// The org's manifest; empty for an org that was never written.
    async fn manifest(&self, org_id: &str) -> Result<Manifest, KnowledgeError> {
        if records::read_version(&*self.backplane, org_id)
            .await?
            .is_none()
        {
            return Ok(Manifest::default());
        }
        manifest::read(&*self.backplane, org_id).await
    }

    fn count_refusal(&self, e: &KnowledgeError) {
        if let (KnowledgeError::Quota { exceeded, .. }, Some(metrics)) = (e, &self.metrics) {
            metrics
                .documents_refused
                .with_label_values(&[exceeded.label()])
                .inc();
        }
    }

    /// The best `limit` documents for `query` that `access` may read, best first.
    ///
    /// `query` is free text: it is cut into words (no query syntax is interpreted), so
    /// no input can fail the search or widen what it may see. A query with no
    /// searchable word finds nothing.
    pub async fn search(
        &self,
        query: &str,
        access: &AccessContext,
        limit: usize,
    ) -> Result<Vec<Hit>, KnowledgeError> {
        self.search_within(query, access, None, limit).await
    }

    /// [`search`](Self::search), among the documents whose `doc_id` starts with one of
    /// `scope` (a named assistant's documents) when it is given; `Some(&[])` finds
    /// nothing. The scope only narrows what `access` may read.
    pub async fn search_within(
        &self,
        query: &str,
        access: &AccessContext,
        scope: Option<&[String]>,
        limit: usize,
    ) -> Result<Vec<Hit>, KnowledgeError> {
        let limit = limit.min(index::MAX_HITS);
        if scope.is_some_and(<[String]>::is_empty) {
            return Ok(Vec::new());
        }
        let scope = scope.map(<[String]>::to_vec);
        if limit == 0 || validate::org_id(&access.org_id).is_err() {
            return Ok(Vec::new());
        }
        let terms = index::query_terms(query);
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let snapshot = self.fresh_snapshot(&access.org_id).await?;
        let owned_access = access.clone();
        let found = tokio::task::spawn_blocking(move || {
            snapshot.search(&terms, &owned_access, scope.as_deref(), limit)
        })
        .await
        .map_err(|e| KnowledgeError::Index(format!("search task failed: {e}")))??;
        let mut hits = Vec::with_capacity(found.len());
        for (doc_id, score) in found {
            // Read now: a document changed or deleted since the index was built is
            // answered as it is stored, or not at all.
            let Some((document, _)) =
                records::get_document(&*self.backplane, &access.org_id, &doc_id).await?
            else {
                continue;
            };
            // Defence in depth: the query already filtered on the ACL (and the record
            // may have changed since).
            if document.visible_to(access) {
                hits.push(Hit { document, score });
            } else {
                tracing::debug!(%doc_id, "a hit the asker may not read (now); dropped");
            }
        }
        Ok(hits)
    }

    /// The org's index, brought up to date with the shared records when another
    /// replica (or this one) changed them since it was built.
    async fn fresh_snapshot(&self, org_id: &str) -> Result<index::Snapshot, KnowledgeError> {
        let version = records::read_version(&*self.backplane, org_id).await?;
        let slot = self.indexes.org(org_id);
        let mut org = slot.lock().await;
        if !org.is_at(&version) {
            // Read after `version`: see the module docs for why that order.
            let manifest = match version {
                Some(_) => manifest::read(&*self.backplane, org_id).await?,
                None => Manifest::default(),
            };
            if let Err(e) = self.sync(&mut org, org_id, &manifest).await {
                org.reset();
                return Err(e);
            }
            org.mark(version);
        }
        Ok(org.snapshot())
    }

    /// Bring `org`'s index to `manifest`, reading only the records that changed, in
    /// batches of about [`REFRESH_BATCH_BYTES`].
    async fn sync(
        &self,
        org: &mut index::OrgIndex,
        org_id: &str,
        manifest: &Manifest,
    ) -> Result<(), KnowledgeError> {
        let plan = org.plan(manifest.documents.iter().map(|(id, e)| (id, &e.change)));
        let mut removed = plan.removed;
        let mut batch = Vec::new();
        let mut batch_bytes = 0u64;
        for doc_id in plan.stale {
            match records::get_document(&*self.backplane, org_id, &doc_id).await? {
                Some(found) => {
                    batch_bytes = batch_bytes
                        .saturating_add(manifest.documents.get(&doc_id).map_or(0, |e| e.bytes));
                    batch.push(found);
                }
                // Listed but not (yet) stored: a write in progress or one that stopped.
                None => removed.push(doc_id),
            }
            if let Some(metrics) = &self.metrics {
                metrics.documents_read.inc();
            }
            if batch_bytes >= REFRESH_BATCH_BYTES {
                org.apply(std::mem::take(&mut removed), std::mem::take(&mut batch))
                    .await?;
                batch_bytes = 0;
            }
        }
        org.apply(removed, batch).await
    }

    /// After a write the records are stored; bring this replica's index up to date now.
    /// A failure here is not the writer's failure: the index is marked stale and the
    /// next search retries.
    async fn refresh_after_write(&self, org_id: &str) {
        if let Err(e) = self.fresh_snapshot(org_id).await {
            tracing::warn!(org_id, error = %e, "could not refresh the knowledge index after a write; the next search retries");
            self.indexes.org(org_id).lock().await.reset();
        }
    }
}

/// Words too common to say anything about relevance.
const STOP_WORDS: &[&str] = &[
    "the", "and", "for", "are", "but", "not", "you", "your", "all", "any", "can", "had", "her",
    "was", "one", "our", "out", "has", "have", "how", "what", "when", "where", "which", "who",
    "why", "with", "this", "that", "from", "they", "will", "would", "there", "their", "about",
    "does", "into", "its", "than", "then", "them", "these", "those", "tell", "please", "some",
];

/// Lower-cased words of at least three letters, without stop words.
pub fn terms(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3)
        .map(str::to_lowercase)
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .collect()
}

/// Documents about Switchboard itself, for `--demo-seed`.
pub fn demo_documents(org_id: &str) -> Vec<Document> {
    let doc = |id: &str, title: &str, text: &str| Document {
        doc_id: id.into(),
        org_id: org_id.into(),
        title: title.into(),
        text: text.into(),
        uri: Some(format!("https://switchboard.example/docs/{id}")),
        acl: Acl {
            public: true,
            ..Acl::default()
        },
    };
    vec![
        doc(
            "what-is-switchboard",
            "What is Switchboard?",
            "Switchboard is a WebSocket-first realtime chat gateway written in Rust. Browsers connect to /ws, join chat sessions and receive every event of a session in order, with a sequence number. A message starts an agent turn whose tokens stream to every socket in the session, on any replica. A pluggable backplane (memory, Redis or NATS) carries events between replicas and keeps history, so a client that reconnects resumes with nothing lost.",
        ),
        doc(
            "resume",
            "Reconnecting and resuming",
            "When a connection drops, the client reconnects and sends session.join with after_seq set to the last seq it saw. The gateway replays every retained event after that seq, then switches to live delivery with no gap and no duplicate. If the history was trimmed by retention, session.joined says recovered false. Messages carry a client_message_id so a retry after a reconnect never starts a second turn.",
        ),
        doc(
            "limits",
            "Limits and slow consumers",
            "Every connection has a bounded outbound queue. A client that stops reading is closed with code 4008 instead of growing the server's memory; it reconnects and resumes. Frames larger than max_frame_bytes close the connection with 1009, and clients that send too fast get rate_limited errors and then close code 4029.",
        ),
        doc(
            "deploy",
            "Deploying on Kubernetes",
            "Run several replicas behind a load balancer with the Redis or NATS backplane. On SIGTERM a replica drains: it sends goaway and closes sockets with 1012, finishes turns in flight into history, and exits. Clients reconnect to another replica and resume. Health is at /health, readiness at /ready and Prometheus metrics at /metrics.",
        ),
    ]
}
