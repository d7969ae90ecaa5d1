//! One admitted connection, served by hyper until it closes, within its deadlines:
//!
//! - its first request's headers within `--http-header-timeout` of the accept, or it
//!   is closed unanswered (a silent socket, or one trickling a request line);
//! - each later request's headers within `--http-idle-timeout` of the previous
//!   response (hyper's header-read timer, which runs while a kept-alive connection
//!   waits), or it is closed.
//!
//! A WebSocket upgrade hands the socket to the upgrade, and this task ends.

use std::convert::Infallible;
use std::pin::pin;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio_util::sync::CancellationToken;
use tower::{Service, ServiceExt};

use super::super::lingering_close::LingeringStream;
use crate::config::HttpTimeouts;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// Serve `stream` with `service` until it closes, a deadline passes or the replica
/// closes (then the request being served finishes first).
pub async fn serve<S>(
    stream: LingeringStream,
    service: S,
    timeouts: HttpTimeouts,
    metrics: std::sync::Arc<Metrics>,
    shutdown: Shutdown,
) where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    let first_request = CancellationToken::new();
    let seen = first_request.clone();
    let service = service.map_request(move |request: hyper::Request<Incoming>| {
        seen.cancel();
        request.map(Body::new)
    });
    // HTTP/1.1 only: browsers speak HTTP/2 over TLS, which a proxy in front ends;
    // cleartext HTTP/2 would be one more protocol whose idle connections need bounds.
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.http_idle_timeout);
    let mut connection = pin!(
        builder
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
            .with_upgrades()
    );
    let mut header_deadline = pin!(tokio::time::sleep(timeouts.http_header_timeout));
    let mut closing = pin!(shutdown.closed());
    let (mut waiting_first, mut shutting_down) = (true, false);
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    if e.is_timeout() {
                        metrics.http_timeouts.with_label_values(&["idle"]).inc();
                    }
                    tracing::trace!(error = %e, "connection ended with an error");
                }
                break;
            }
            () = first_request.cancelled(), if waiting_first => waiting_first = false,
            () = &mut header_deadline, if waiting_first => {
                metrics.http_timeouts.with_label_values(&["header"]).inc();
                // Dropping the connection closes the socket (after the linger).
                break;
            }
            () = &mut closing, if !shutting_down => {
                shutting_down = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}
