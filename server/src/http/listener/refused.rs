//! A refused connection is answered like any request — hyper reads the request's
//! headers and writes the refusal with `Connection: close` — but it gets at most
//! [`REFUSAL_PATIENCE`] for all of it, silent or not.

use std::convert::Infallible;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};

use super::super::lingering_close::LingeringStream;
use super::super::visitors::Refusal;

/// How long a refused connection is given to send its request and read the answer.
const REFUSAL_PATIENCE: Duration = Duration::from_secs(2);

/// Read one request from `stream` and answer it with `refusal`, then close; within
/// `header_timeout` if that is shorter than [`REFUSAL_PATIENCE`].
pub async fn answer(stream: LingeringStream, refusal: Refusal, header_timeout: Duration) {
    let patience = REFUSAL_PATIENCE.min(header_timeout);
    let service = hyper::service::service_fn(move |_request: hyper::Request<Incoming>| {
        let response = refusal.response();
        async move { Ok::<_, Infallible>(response) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(patience)
        .keep_alive(false);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let _ = tokio::time::timeout(patience, connection).await;
}
