//! The operator console: `GET /console` (a page), `GET /console/console.js` and
//! `GET /console/console.css`, from `console/` at the repository root, compiled into
//! the binary like the widget. The page signs in with an operator's JWT and speaks the
//! WebSocket protocol like any client; the gateway only serves its files
//! (docs/console.md).
//!
//! The page runs under a strict Content-Security-Policy sent as a header: scripts,
//! styles and connections from this origin only, nothing inline, no framing, and
//! Trusted Types required, so no string ever becomes HTML. The files are revalidated
//! on each load (their URLs are not versioned; an `ETag` makes that a `304`).

use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::assets::Asset;

const PAGE_HTML: &[u8] = include_bytes!("../../../console/index.html");
const SCRIPT_JS: &[u8] = include_bytes!("../../../console/console.js");
const STYLE_CSS: &[u8] = include_bytes!("../../../console/console.css");

/// Revalidated on every load: an upgraded gateway's console reaches operators at once.
const CACHE_CONTROL: &str = "no-cache";

/// What the page may do: see the module docs.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'; require-trusted-types-for 'script'; \
     trusted-types 'none'";

static PAGE: LazyLock<Asset> =
    LazyLock::new(|| Asset::new(PAGE_HTML, "text/html; charset=utf-8", CACHE_CONTROL));
static SCRIPT: LazyLock<Asset> =
    LazyLock::new(|| Asset::new(SCRIPT_JS, "text/javascript; charset=utf-8", CACHE_CONTROL));
static STYLE: LazyLock<Asset> =
    LazyLock::new(|| Asset::new(STYLE_CSS, "text/css; charset=utf-8", CACHE_CONTROL));

/// `GET /console`, its script and style, and `/console/` sent to `/console`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/console", get(page))
        .route("/console/", get(to_page))
        .route("/console/console.js", get(script))
        .route("/console/console.css", get(style))
}

async fn page(headers: HeaderMap) -> Response {
    PAGE.respond(
        &headers,
        &[
            ("content-security-policy", CONTENT_SECURITY_POLICY),
            // The sign-in token may sit in the URL's fragment; never send the URL on.
            ("referrer-policy", "no-referrer"),
        ],
    )
}

/// The page's relative links name `console/…`, which resolve under `/console` only.
async fn to_page() -> Response {
    // Relative, so it holds behind a proxy that mounts the gateway under a prefix.
    (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, "../console")],
    )
        .into_response()
}

async fn script(headers: HeaderMap) -> Response {
    SCRIPT.respond(&headers, &[])
}

async fn style(headers: HeaderMap) -> Response {
    STYLE.respond(&headers, &[])
}
