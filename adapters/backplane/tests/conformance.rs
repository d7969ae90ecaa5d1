//! The conformance suite, run against the in-memory backplane.

use std::sync::Arc;

use async_trait::async_trait;
use switchboard_backplane::conformance::BackplaneFactory;
use switchboard_backplane::{Backplane, MemoryBackplane, Retention};

/// A fresh [`MemoryBackplane`] per call: nothing is shared between calls, so every
/// backplane is isolated. The default subscription capacity (4096) is well below
/// `SLOW_SUBSCRIBER_APPENDS`. `make_replicas` keeps its default (one handle, shared):
/// memory's scope is one replica.
struct Memory;

#[async_trait]
impl BackplaneFactory for Memory {
    async fn make(&self, retention: Retention) -> Arc<dyn Backplane> {
        Arc::new(MemoryBackplane::new(retention))
    }
}

switchboard_backplane::conformance_tests!(Memory);
