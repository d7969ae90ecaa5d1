//! Body limits per route, and oversize bodies answered with a 413 the client can read.

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::MethodRouter;
use futures_util::StreamExt;

use crate::state::AppState;

/// The most of an oversize body the gateway reads, and throws away, before it answers
/// 413. Answering first and closing would leave the rest of the body unread in the
/// socket, and the kernel then resets the connection: the client would see
/// "connection reset" instead of the 413 it needs to act on. A body declared larger
/// than this is refused without reading it (the client may then see the reset).
const OVERSIZE_BODY_DRAIN_BYTES: u64 = 1024 * 1024;

/// `route` accepting bodies of at most `limit` bytes.
pub fn body_limit(route: MethodRouter<AppState>, limit: usize) -> MethodRouter<AppState> {
    route
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            refuse_declared_oversize(limit, request, next)
        }))
}

/// A body whose `Content-Length` is over `limit` (and at most
/// [`OVERSIZE_BODY_DRAIN_BYTES`]) is read to its end before the route answers; the
/// route then sees its first `limit + 1` bytes, so credentials are still checked
/// before the size (401 whatever the body) and the size refusal is the usual 413.
/// A larger one is answered unread, with `Connection: close`.
async fn refuse_declared_oversize(limit: usize, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let Some(declared) = declared.filter(|&len| len > limit as u64) else {
        return next.run(request).await;
    };
    if declared > OVERSIZE_BODY_DRAIN_BYTES {
        // Not read: the connection cannot carry another request, and saying so keeps
        // the client from reusing it.
        let mut response = next.run(request).await;
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    let (parts, body) = request.into_parts();
    let mut body = body.into_data_stream();
    let mut kept = Vec::with_capacity(limit + 1);
    while let Some(Ok(chunk)) = body.next().await {
        let room = (limit + 1).saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(kept)))
        .await
}
