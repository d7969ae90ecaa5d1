//! `--knowledge-file`: documents loaded into the knowledge base at boot.

use anyhow::Context;

use super::{Acl, Document};

/// A document as written in a `--knowledge-file`: the org defaults to the default org.
#[derive(serde::Deserialize)]
struct FileDocument {
    doc_id: String,
    org_id: Option<String>,
    title: String,
    text: String,
    uri: Option<String>,
    #[serde(default)]
    acl: Acl,
}

pub fn load(path: &std::path::Path, default_org: &str) -> anyhow::Result<Vec<Document>> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "--knowledge-file (SWITCHBOARD_KNOWLEDGE_FILE): cannot read {}",
            path.display()
        )
    })?;
    let documents: Vec<FileDocument> = serde_json::from_str(&text).with_context(|| {
        format!(
            "--knowledge-file (SWITCHBOARD_KNOWLEDGE_FILE): {} is not a JSON array of documents",
            path.display()
        )
    })?;
    Ok(documents
        .into_iter()
        .map(|d| Document {
            doc_id: d.doc_id,
            org_id: d.org_id.unwrap_or_else(|| default_org.to_string()),
            title: d.title,
            text: d.text,
            uri: d.uri,
            acl: d.acl,
        })
        .collect())
}
