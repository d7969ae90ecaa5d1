//! Flags: What each org may keep in the knowledge base.

use clap::Args;

/// What each org may keep in the knowledge base.
#[derive(Debug, Clone, Default, Args)]
pub struct DocumentQuota {}
