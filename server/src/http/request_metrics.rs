//! HTTP request counts and latency by route: the label is the route template axum
//! matched (`/v1/sessions/{session_id}`), never the raw path, so the label set is
//! bounded by the routes; a request that matched none is `unmatched`.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

/// Count and time one request, to its response head.
pub async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = match response.status().as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    state
        .metrics
        .http_requests
        .with_label_values(&[method, &route, status])
        .inc();
    state
        .metrics
        .http_request_seconds
        .with_label_values(&[method, &route])
        .observe(started.elapsed().as_secs_f64());
    response
}

/// The method, from a fixed set (a client may send any token as a method).
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
