//! Flags: What each org may keep in the knowledge base.

use clap::Args;

/// Default of `--max-documents-per-org`.
pub const DEFAULT_MAX_DOCUMENTS_PER_ORG: u32 = 1000;
/// Default of `--max-document-bytes-per-org` (32 MiB).
pub const DEFAULT_MAX_DOCUMENT_BYTES_PER_ORG: u64 = 32 * 1024 * 1024;

/// What each org may keep in the knowledge base.
#[derive(Debug, Clone, Args)]
pub struct DocumentQuota {
    /// Documents one org may keep in the knowledge base (default 1000). One more
    /// `POST /v1/admin/documents` is refused with `413 too_large` naming the limit;
    /// replacing an existing document stays allowed.
    #[arg(long, env = "SWITCHBOARD_MAX_DOCUMENTS_PER_ORG",
          default_value_t = DEFAULT_MAX_DOCUMENTS_PER_ORG,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_documents_per_org: u32,

    /// Bytes of documents one org may keep in the knowledge base, counted as each
    /// document's stored JSON (text, title, ACL, uri) (default 33554432 = 32 MiB). A
    /// `POST /v1/admin/documents` that would pass it is refused with `413 too_large`
    /// naming the limit and the org's current use.
    #[arg(long, env = "SWITCHBOARD_MAX_DOCUMENT_BYTES_PER_ORG",
          default_value_t = DEFAULT_MAX_DOCUMENT_BYTES_PER_ORG,
          value_parser = clap::value_parser!(u64).range(1024..=64 * 1024 * 1024 * 1024))]
    pub max_document_bytes_per_org: u64,
}

impl Default for DocumentQuota {
    fn default() -> DocumentQuota {
        DocumentQuota {
            max_documents_per_org: DEFAULT_MAX_DOCUMENTS_PER_ORG,
            max_document_bytes_per_org: DEFAULT_MAX_DOCUMENT_BYTES_PER_ORG,
        }
    }
}
