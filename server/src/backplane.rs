//! Building the configured backplane: the one place that knows every adapter.

use std::sync::Arc;

use switchboard_backplane::{Backplane, MemoryBackplane, Retention};

use crate::config::{BackplaneChoice, redact_url};

/// Connect to the backplane `choice` names. A wrong URL or an unreachable server
/// fails here, at boot, with a message naming the setting (and no password).
pub async fn connect(
    choice: &BackplaneChoice,
    prefix: &str,
    retention: Retention,
) -> anyhow::Result<Arc<dyn Backplane>> {
    match choice {
        BackplaneChoice::Memory => Ok(Arc::new(MemoryBackplane::new(retention))),
        BackplaneChoice::Redis(url) => {
            let redis = switchboard_redis::RedisBackplane::connect(url, prefix, retention)
                .await
                .map_err(|e| anyhow::anyhow!("--backplane (SWITCHBOARD_BACKPLANE): {e}"))?;
            tracing::info!(target = %redact_url(url), prefix, "connected to the Redis backplane");
            Ok(Arc::new(redis))
        }
        BackplaneChoice::Nats(url) => {
            let nats = switchboard_nats::NatsBackplane::connect(url, prefix, retention)
                .await
                .map_err(|e| anyhow::anyhow!("--backplane (SWITCHBOARD_BACKPLANE): {e}"))?;
            tracing::info!(target = %redact_url(url), prefix, "connected to the NATS backplane");
            Ok(Arc::new(nats))
        }
    }
}
