//! The accept loop: every TCP connection is admitted or refused by the visitor limits
//! (`http::visitors`), then served by hyper over HTTP/1.1 with a timer, so its header,
//! idle and first-request deadlines hold (`--http-header-timeout`,
//! `--http-idle-timeout`), WebSocket upgrades included.
//!
//! - [`admitted`]: serving an admitted connection, within its deadlines, until it
//!   closes or the replica closes;
//! - [`refused`]: answering a refused one with its 429 or 503, within bounds.
//!
//! On closing (`Shutdown::closed`), the loop stops accepting, every connection
//! finishes the request it is serving and closes, and [`serve`] returns once they
//! have; upgraded WebSockets are the socket tasks' own (`AppState::tracker`).

pub mod admitted;
pub mod refused;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use tower::Service;

use super::lingering_close::LingeringListener;
use super::visitors::ConnectionGate;
use crate::state::AppState;

/// Refusals answered at once; one more refused connection is closed unanswered, so
/// refusing costs bounded descriptors and memory however fast connections come.
const REFUSALS_IN_FLIGHT: usize = 32;

/// Serve `router` on `listener` until the replica closes.
pub async fn serve(mut listener: LingeringListener, router: Router, state: AppState) {
    let metrics = state.metrics.clone();
    let gate = ConnectionGate::new(&state.config.visitors, metrics.tcp_connections.clone());
    tracing::info!(
        max_tcp_connections = gate.cap(),
        "accepting TCP connections"
    );
    let timeouts = state.config.http_timeouts.clone();
    let refusals = Arc::new(Semaphore::new(REFUSALS_IN_FLIGHT));
    let connections = TaskTracker::new();
    let mut make_service = router.into_make_service_with_connect_info::<SocketAddr>();
    loop {
        let (mut stream, peer) = tokio::select! {
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
            () = state.shutdown.closed() => break,
        };
        // Frames are written in batches and flushed on purpose: Nagle's algorithm
        // would hold a small event back until the previous one is acknowledged.
        if let Some(Err(e)) = stream.tcp().map(|tcp| tcp.set_nodelay(true)) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        match gate.admit(peer.ip()) {
            Ok(permit) => {
                stream.hold_until_closed(permit);
                let Ok(service) = make_service.call(peer).await;
                connections.spawn(admitted::serve(
                    stream,
                    service,
                    timeouts.clone(),
                    metrics.clone(),
                    state.shutdown.clone(),
                ));
            }
            Err(refusal) => {
                metrics
                    .connections_refused
                    .with_label_values(&[refusal.limit])
                    .inc();
                tracing::debug!(%peer, limit = refusal.limit, "connection refused");
                match refusals.clone().try_acquire_owned() {
                    Ok(slot) => {
                        stream.hold_until_closed(slot);
                        connections.spawn(refused::answer(
                            stream,
                            refusal,
                            timeouts.http_header_timeout,
                        ));
                    }
                    Err(_) => {
                        metrics.refusals_unanswered.inc();
                        stream.close_now();
                    }
                }
            }
        }
    }
    connections.close();
    connections.wait().await;
}
