//! The knowledge base the agent answers from, and who may read what (protocol
//! section 7).
//!
//! [`KnowledgeIndex::search`] takes the asker's access context as a required argument:
//! there is no way to search without one, and the visibility filter runs before
//! ranking, so a document the asker may not read never influences an answer.

use std::collections::HashMap;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use crate::auth::AccessContext;

/// Who may read a document, within its org.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acl {
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub users: Vec<String>,
}

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
    /// Section 7: same org, and public, or naming the user or one of their groups, or
    /// org-wide (no users, no groups, not public) for any authenticated member.
    /// Anonymous connections see public documents only.
    pub fn visible_to(&self, access: &AccessContext) -> bool {
        if self.org_id != access.org_id {
            return false;
        }
        if self.acl.public {
            return true;
        }
        if access.anonymous {
            return false;
        }
        let names_user = access
            .user_id
            .as_ref()
            .is_some_and(|u| self.acl.users.contains(u));
        let names_group = access.groups.iter().any(|g| self.acl.groups.contains(g));
        let org_wide = self.acl.users.is_empty() && self.acl.groups.is_empty();
        names_user || names_group || org_wide
    }
}

/// A search result: a visible document and its score.
#[derive(Debug, Clone)]
pub struct Hit {
    pub document: Document,
    pub score: f64,
}

/// Ranked search over documents, filtered by who asks.
pub trait KnowledgeIndex: Send + Sync {
    /// The best `limit` documents for `query` that `access` may read, best first.
    fn search(&self, query: &str, access: &AccessContext, limit: usize) -> Vec<Hit>;
    /// Add or replace a document (by `doc_id` within its org).
    fn upsert(&self, document: Document);
    /// Remove a document; returns whether it existed.
    fn remove(&self, org_id: &str, doc_id: &str) -> bool;
}

/// A small in-memory index: term overlap scoring, good enough for demos and tests.
/// A later change replaces it with a real search library behind the same trait.
#[derive(Default)]
pub struct MemoryIndex {
    documents: RwLock<HashMap<(String, String), Document>>,
}

impl MemoryIndex {
    pub fn new() -> MemoryIndex {
        MemoryIndex::default()
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

impl KnowledgeIndex for MemoryIndex {
    fn search(&self, query: &str, access: &AccessContext, limit: usize) -> Vec<Hit> {
        let query_terms = terms(query);
        if query_terms.is_empty() {
            return Vec::new();
        }
        let documents = self.documents.read().unwrap_or_else(|e| e.into_inner());
        let mut hits: Vec<Hit> = documents
            .values()
            .filter(|d| d.visible_to(access))
            .filter_map(|d| {
                let title = terms(&d.title);
                let body = terms(&d.text);
                let mut score = 0.0;
                for q in &query_terms {
                    let in_title = title.iter().filter(|t| *t == q).count() as f64;
                    let in_body = body.iter().filter(|t| *t == q).count() as f64;
                    if in_title + in_body > 0.0 {
                        // Matching a term at all matters more than matching it often.
                        score += 1.0 + 2.0 * in_title + (1.0 + in_body).ln();
                    }
                }
                (score > 0.0).then(|| Hit {
                    document: d.clone(),
                    score,
                })
            })
            .collect();
        hits.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.document.doc_id.cmp(&b.document.doc_id))
        });
        hits.truncate(limit);
        hits
    }

    fn upsert(&self, document: Document) {
        let mut documents = self.documents.write().unwrap_or_else(|e| e.into_inner());
        documents.insert((document.org_id.clone(), document.doc_id.clone()), document);
    }

    fn remove(&self, org_id: &str, doc_id: &str) -> bool {
        let mut documents = self.documents.write().unwrap_or_else(|e| e.into_inner());
        documents
            .remove(&(org_id.to_string(), doc_id.to_string()))
            .is_some()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn access(org: &str, user: Option<&str>, groups: &[&str]) -> AccessContext {
        AccessContext {
            user_id: user.map(str::to_string),
            org_id: org.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            roles: vec![],
            anonymous: user.is_none(),
        }
    }

    fn doc(id: &str, org: &str, acl: Acl, text: &str) -> Document {
        Document {
            doc_id: id.into(),
            org_id: org.into(),
            title: id.into(),
            text: text.into(),
            uri: None,
            acl,
        }
    }

    #[test]
    fn visibility_follows_section_seven() {
        let public = doc(
            "p",
            "acme",
            Acl {
                public: true,
                ..Acl::default()
            },
            "",
        );
        let org_wide = doc("o", "acme", Acl::default(), "");
        let group = doc(
            "g",
            "acme",
            Acl {
                groups: vec!["support".into()],
                ..Acl::default()
            },
            "",
        );
        let user = doc(
            "u",
            "acme",
            Acl {
                users: vec!["u1".into()],
                ..Acl::default()
            },
            "",
        );
        let member = access("acme", Some("u1"), &[]);
        let supporter = access("acme", Some("u2"), &["support"]);
        let anonymous = access("acme", None, &[]);
        let stranger = access("other", Some("u1"), &["support"]);
        assert!(public.visible_to(&anonymous) && public.visible_to(&member));
        assert!(!public.visible_to(&stranger), "public is still per org");
        assert!(org_wide.visible_to(&member) && !org_wide.visible_to(&anonymous));
        assert!(group.visible_to(&supporter) && !group.visible_to(&member));
        assert!(user.visible_to(&member) && !user.visible_to(&supporter));
    }

    #[test]
    fn search_never_returns_a_document_the_asker_may_not_read() {
        let index = MemoryIndex::new();
        index.upsert(doc(
            "secret",
            "acme",
            Acl {
                groups: vec!["finance".into()],
                ..Acl::default()
            },
            "payroll salaries payroll",
        ));
        index.upsert(doc(
            "open",
            "acme",
            Acl {
                public: true,
                ..Acl::default()
            },
            "payroll questions go to HR",
        ));
        let hits = index.search("payroll", &access("acme", Some("u1"), &["support"]), 5);
        let ids: Vec<_> = hits.iter().map(|h| h.document.doc_id.as_str()).collect();
        assert_eq!(ids, ["open"]);
        let hits = index.search("payroll", &access("acme", Some("u1"), &["finance"]), 5);
        assert_eq!(
            hits[0].document.doc_id, "secret",
            "the better match ranks first"
        );
    }
}
