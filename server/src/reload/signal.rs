//! SIGHUP: reload the configuration, once per signal, for the process's life.

use crate::state::AppState;

use super::{Trigger, reload};

/// Listen for SIGHUP now (from here on it no longer ends the process) and reload on
/// every one until the process ends. Signals that arrive during a reload are folded
/// into one more reload after it. Call inside the runtime, before the gateway says
/// it is listening.
pub fn spawn_reload_on_sighup(state: AppState) -> tokio::task::JoinHandle<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let hangups = signal(SignalKind::hangup());
        tokio::spawn(async move {
            let mut hangups = match hangups {
                Ok(hangups) => hangups,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGHUP; reload with POST /v1/admin/reload");
                    return;
                }
            };
            while hangups.recv().await.is_some() {
                // The outcome is logged and counted by `reload`.
                let _ = reload(&state, Trigger::Signal).await;
            }
        })
    }
    #[cfg(not(unix))]
    {
        tokio::spawn(async move {
            let _ = state;
        })
    }
}
