//! The whole backplane conformance suite against a real `nats-server` with JetStream.
//!
//! Each test gets its own server (started by the factory expression, killed when the
//! test ends), and each `make` a fresh deployment prefix on it, so backplanes never
//! share a stream, a subject or a bucket. `make_replicas` returns separate clients
//! (separate connections) on one prefix, as separate gateway replicas hold.

use std::sync::Arc;

use async_trait::async_trait;
use switchboard_backplane::conformance::BackplaneFactory;
use switchboard_backplane::{Backplane, Retention};
use switchboard_nats::{NatsBackplane, NatsOptions};
use switchboard_testkit::NatsServer;

use crate::support::unique_prefix;

struct Nats {
    server: NatsServer,
}

impl Nats {
    fn new() -> Nats {
        Nats {
            server: NatsServer::start(),
        }
    }

    async fn connect(&self, prefix: &str, retention: Retention) -> Arc<dyn Backplane> {
        // Defaults throughout (file storage, subscription capacity 4096, which is well
        // below SLOW_SUBSCRIBER_APPENDS).
        let options = NatsOptions::new(self.server.url(), prefix, retention);
        match NatsBackplane::connect_with(options).await {
            Ok(backplane) => Arc::new(backplane),
            Err(err) => panic!("connecting to the test server: {err}"),
        }
    }
}

#[async_trait]
impl BackplaneFactory for Nats {
    async fn make(&self, retention: Retention) -> Arc<dyn Backplane> {
        self.connect(&unique_prefix("c"), retention).await
    }

    async fn make_replicas(
        &self,
        retention: Retention,
        replicas: usize,
    ) -> Vec<Arc<dyn Backplane>> {
        let prefix = unique_prefix("r");
        let mut out = Vec::with_capacity(replicas);
        for _ in 0..replicas {
            out.push(self.connect(&prefix, retention).await);
        }
        out
    }

    /// The seq is JetStream's stream sequence, shared by every subject.
    fn raises_seq(&self) -> bool {
        false
    }
}

switchboard_backplane::conformance_tests!(Nats::new());
