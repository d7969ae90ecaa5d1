//! How many synchronous chats may wait for their reply at once: per replica
//! (`--max-sync-chats`) and per principal (`--max-sync-chats-per-principal`). A
//! waiting request holds a subscription and a socket, so both are bounded; one more
//! is refused at once (HTTP 503 with `Retry-After`), never queued.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus::{IntCounterVec, IntGauge};

/// Which limit refused a wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitLimit {
    Process,
    Principal,
}

impl WaitLimit {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            WaitLimit::Process => "process",
            WaitLimit::Principal => "principal",
        }
    }
}

#[derive(Default)]
struct Counts {
    process: usize,
    principals: HashMap<String, usize>,
}

/// The counts of waiting synchronous chats.
pub struct SyncWaits {
    counts: Arc<Mutex<Counts>>,
    max_process: usize,
    max_per_principal: usize,
    waiting: IntGauge,
    refused: IntCounterVec,
}

/// One waiting chat's place; given back when dropped.
pub struct WaitPermit {
    counts: Arc<Mutex<Counts>>,
    principal: String,
    waiting: IntGauge,
}

fn lock(counts: &Mutex<Counts>) -> std::sync::MutexGuard<'_, Counts> {
    counts.lock().unwrap_or_else(|e| e.into_inner())
}

impl SyncWaits {
    pub fn new(
        max_process: usize,
        max_per_principal: usize,
        waiting: IntGauge,
        refused: IntCounterVec,
    ) -> SyncWaits {
        SyncWaits {
            counts: Arc::new(Mutex::new(Counts::default())),
            max_process,
            max_per_principal,
            waiting,
            refused,
        }
    }

    /// A place for `principal` (see `cost::principal_key`), or the limit that is full.
    pub fn admit(&self, principal: &str) -> Result<WaitPermit, WaitLimit> {
        let mut counts = lock(&self.counts);
        let refused = if counts.process >= self.max_process {
            Some(WaitLimit::Process)
        } else if counts.principals.get(principal).copied().unwrap_or(0) >= self.max_per_principal {
            Some(WaitLimit::Principal)
        } else {
            None
        };
        if let Some(limit) = refused {
            self.refused.with_label_values(&[limit.as_str()]).inc();
            return Err(limit);
        }
        counts.process += 1;
        *counts.principals.entry(principal.to_string()).or_insert(0) += 1;
        self.waiting.inc();
        Ok(WaitPermit {
            counts: self.counts.clone(),
            principal: principal.to_string(),
            waiting: self.waiting.clone(),
        })
    }

    /// The most chats that may wait at once on this replica.
    pub fn max_process(&self) -> usize {
        self.max_process
    }

    /// The most chats one principal may have waiting at once.
    pub fn max_per_principal(&self) -> usize {
        self.max_per_principal
    }
}

impl Drop for WaitPermit {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        counts.process = counts.process.saturating_sub(1);
        if let Some(n) = counts.principals.get_mut(&self.principal) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.principals.remove(&self.principal);
            }
        }
        self.waiting.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::Opts;

    fn waits(process: usize, principal: usize) -> SyncWaits {
        SyncWaits::new(
            process,
            principal,
            IntGauge::new("w", "w").unwrap(),
            IntCounterVec::new(Opts::new("r", "r"), &["limit"]).unwrap(),
        )
    }

    #[test]
    fn places_are_bounded_per_principal_and_per_process_and_given_back() {
        let waits = waits(3, 2);
        let a1 = waits.admit("a").unwrap();
        let _a2 = waits.admit("a").unwrap();
        assert_eq!(waits.admit("a").err(), Some(WaitLimit::Principal));
        let _b1 = waits.admit("b").unwrap();
        assert_eq!(waits.admit("c").err(), Some(WaitLimit::Process));
        assert_eq!(waits.waiting.get(), 3);
        drop(a1);
        assert!(waits.admit("a").is_ok(), "a place came back");
        assert_eq!(waits.refused.with_label_values(&["process"]).get(), 1);
        assert_eq!(waits.refused.with_label_values(&["principal"]).get(), 1);
    }
}
