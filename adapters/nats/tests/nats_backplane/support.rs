//! What the modules of this test binary share beyond the kit: deployment prefixes.

use std::sync::atomic::{AtomicU64, Ordering};

/// A prefix no other backplane of this test process uses (a subject token: letters and
/// digits only).
pub fn unique_prefix(label: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{label}{}x{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
