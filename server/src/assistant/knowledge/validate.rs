//! What a document must look like before it is stored. Error messages are written
//! for the admin who sent the document.

use switchboard_protocol::StreamName;
use switchboard_protocol::stream::MAX_STREAM_ID_CHARS;

use super::{Document, KnowledgeError};

/// Longest `doc_id`, in characters.
pub const MAX_DOC_ID_CHARS: usize = 128;
/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 500;
/// Largest text, in bytes of UTF-8 (1 MiB).
pub const MAX_TEXT_BYTES: usize = 1024 * 1024;
/// Most groups, and most users, one ACL may name.
pub const MAX_ACL_ENTRIES: usize = 1000;
/// Longest group or user name in an ACL, in characters.
pub const MAX_ACL_NAME_CHARS: usize = 256;

fn invalid(message: String) -> KnowledgeError {
    KnowledgeError::Invalid(message)
}

/// `[A-Za-z0-9_.:-]{1,128}`.
pub fn doc_id(doc_id: &str) -> Result<(), KnowledgeError> {
    let ok = !doc_id.is_empty()
        && doc_id.len() <= MAX_DOC_ID_CHARS
        && doc_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "doc_id must be 1 to {MAX_DOC_ID_CHARS} characters of A-Z, a-z, 0-9, '_', '.', ':', '-'"
        )))
    }
}

/// A valid stream id, like every other org id of the protocol.
pub fn org_id(org_id: &str) -> Result<(), KnowledgeError> {
    if StreamName::valid_id(org_id) {
        Ok(())
    } else {
        Err(invalid(format!(
            "org_id must be a valid id: 1 to {MAX_STREAM_ID_CHARS} characters of A-Z, a-z, 0-9, '_', '-', '@'"
        )))
    }
}

/// Everything [`super::KnowledgeBase::ingest`] checks.
pub fn document(document: &Document) -> Result<(), KnowledgeError> {
    let named = |e: KnowledgeError| match e {
        KnowledgeError::Invalid(message) if !document.doc_id.is_empty() => invalid(format!(
            "document '{}': {message}",
            document
                .doc_id
                .chars()
                .take(MAX_DOC_ID_CHARS)
                .collect::<String>()
        )),
        other => other,
    };
    doc_id(&document.doc_id).map_err(named)?;
    org_id(&document.org_id).map_err(named)?;
    let title_chars = document.title.chars().count();
    if document.title.trim().is_empty() || title_chars > MAX_TITLE_CHARS {
        return Err(named(invalid(format!(
            "title must be 1 to {MAX_TITLE_CHARS} characters and not blank"
        ))));
    }
    if document.text.len() > MAX_TEXT_BYTES {
        return Err(named(invalid(format!(
            "text must be at most {MAX_TEXT_BYTES} bytes (1 MiB)"
        ))));
    }
    for (what, names) in [
        ("groups", &document.acl.groups),
        ("users", &document.acl.users),
    ] {
        if names.len() > MAX_ACL_ENTRIES {
            return Err(named(invalid(format!(
                "acl.{what} may name at most {MAX_ACL_ENTRIES} entries"
            ))));
        }
        if names
            .iter()
            .any(|n| n.is_empty() || n.chars().count() > MAX_ACL_NAME_CHARS)
        {
            return Err(named(invalid(format!(
                "acl.{what} entries must be 1 to {MAX_ACL_NAME_CHARS} characters"
            ))));
        }
    }
    Ok(())
}
