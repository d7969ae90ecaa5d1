//! What the modules of this test binary share beyond the kit: key prefixes.

use std::sync::atomic::{AtomicU64, Ordering};

/// A key prefix no other backplane in this test run uses.
pub fn unique_prefix(label: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "t{}-{}-{label}:",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
