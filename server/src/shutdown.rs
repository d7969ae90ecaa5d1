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

/// SIGTERM and Ctrl-C (SIGINT), listened for from the moment [`listen`](Self::listen)
/// returns. Made before the gateway says it listens: a signal that arrives after that,
/// while `main` is still starting its tasks, drains like any other instead of killing
/// the process with the default action.
pub struct TerminationSignal {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl TerminationSignal {
    /// Start listening (inside the runtime).
    pub fn listen() -> std::io::Result<TerminationSignal> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(TerminationSignal {
                terminate: signal(SignalKind::terminate())?,
                interrupt: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(TerminationSignal {})
    }

    /// Resolves on the first SIGTERM or Ctrl-C since [`listen`](Self::listen).
    pub async fn received(self) {
        #[cfg(unix)]
        {
            let TerminationSignal {
                mut terminate,
                mut interrupt,
            } = self;
            tokio::select! {
                _ = interrupt.recv() => tracing::info!("Ctrl-C received: draining"),
                _ = terminate.recv() => tracing::info!("SIGTERM received: draining"),
            }
        }
        #[cfg(not(unix))]
        match tokio::signal::ctrl_c().await {
            Ok(()) => tracing::info!("Ctrl-C received: draining"),
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
        }
    }
}
