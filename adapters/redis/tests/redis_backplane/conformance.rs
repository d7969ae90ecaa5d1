//! The conformance suite, run against a real Redis started by the test itself.

use std::sync::Arc;

use async_trait::async_trait;
use switchboard_backplane::conformance::BackplaneFactory;
use switchboard_backplane::{Backplane, Retention};
use switchboard_redis::RedisBackplane;
use switchboard_testkit::RedisServer;

use crate::support::unique_prefix;

/// One `redis-server` per test (they start in milliseconds, and a per-test server is
/// killed when the test ends, pass or fail); every `make` gets a fresh key prefix, so
/// backplanes never see each other's streams or records. `make_replicas` returns
/// separate clients (separate connections, separate pub/sub dispatchers) on one prefix,
/// as separate gateway replicas would hold. The default subscription capacity (4096)
/// is well below `SLOW_SUBSCRIBER_APPENDS`.
struct Redis {
    server: RedisServer,
}

impl Redis {
    fn new() -> Redis {
        Redis {
            server: RedisServer::start(),
        }
    }

    async fn connect(&self, prefix: &str, retention: Retention) -> Arc<dyn Backplane> {
        let backplane = RedisBackplane::connect(&self.server.url(), prefix, retention)
            .await
            .unwrap_or_else(|e| panic!("connect to the test redis: {e}"));
        Arc::new(backplane)
    }
}

#[async_trait]
impl BackplaneFactory for Redis {
    async fn make(&self, retention: Retention) -> Arc<dyn Backplane> {
        self.connect(&unique_prefix("conf"), retention).await
    }

    async fn make_replicas(
        &self,
        retention: Retention,
        replicas: usize,
    ) -> Vec<Arc<dyn Backplane>> {
        let prefix = unique_prefix("replicas");
        let mut out = Vec::with_capacity(replicas);
        for _ in 0..replicas {
            out.push(self.connect(&prefix, retention).await);
        }
        out
    }
}

switchboard_backplane::conformance_tests!(Redis::new());
