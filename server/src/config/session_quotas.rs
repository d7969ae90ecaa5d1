//! Flags: How many sessions a principal or visitor may create, and how long unused ones live.

use clap::Args;

/// How many sessions a principal or visitor may create, and how long unused ones live.
#[derive(Debug, Clone, Default, Args)]
pub struct SessionQuotas {}
