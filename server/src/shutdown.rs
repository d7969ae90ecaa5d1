//! The replica's lifecycle signal: running, then draining, then closing.
//!
//! Every long-lived task (each socket, each turn worker, the heartbeat sweeper) selects
//! on one of these phases. `main` flips them in order and waits for tracked tasks:
//!
//! - **draining** (SIGTERM): `/ready` answers 503; connections open before the drain
//!   get `goaway` and close 1012; new work (`session.create`, `message.send`) is refused
//!   with `unavailable`, while turns in flight run to their end.
//! - **closing** (turns done or grace over): every remaining connection gets `goaway`
//!   and 1012, the listener stops, and the process exits.

use tokio_util::sync::CancellationToken;

/// A cheap-to-clone handle on the replica's lifecycle.
#[derive(Clone, Default)]
pub struct Shutdown {
    draining: CancellationToken,
    closing: CancellationToken,
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Enter the draining phase (idempotent).
    pub fn start_drain(&self) {
        self.draining.cancel();
    }

    /// Enter the closing phase (implies draining; idempotent).
    pub fn close(&self) {
        self.draining.cancel();
        self.closing.cancel();
    }

    /// Whether SIGTERM has been seen.
    pub fn is_draining(&self) -> bool {
        self.draining.is_cancelled()
    }

    /// Resolves when closing starts.
    pub async fn closed(&self) {
        self.closing.cancelled().await
    }

    /// What a connection opened now must wait for before it says `goaway`: connections
    /// that predate the drain leave at once; those that arrive during it stay until
    /// closing, so they can still read the end of turns in flight.
    pub fn goaway_signal(&self) -> CancellationToken {
        if self.is_draining() {
            self.closing.clone()
        } else {
            self.draining.clone()
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
pub async fn termination_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received: draining"),
        () = terminate => tracing::info!("SIGTERM received: draining"),
    }
}
