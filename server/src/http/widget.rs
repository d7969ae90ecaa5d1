//! The embeddable widget: `GET /widget.js` (the one-file bundle) and `GET /` (a demo
//! page that embeds it). Both are built by `widget/build.mjs`, committed under
//! `widget/dist/`, and compiled into the binary, so the gateway serves them with no
//! files on disk and no JavaScript toolchain at build time.
//!
//! `/widget.js` is meant to be loaded cross-origin with Subresource Integrity
//! (`<script src integrity crossorigin>`): the browser checks the hash only if the
//! response allows CORS, hence `Access-Control-Allow-Origin: *` (it is public code
//! and carries no credentials). The integrity value is computed once, from the very
//! bytes served, and sent in an `X-Switchboard-Integrity` header too; docs/widget.md
//! shows how to compute it independently.

use std::sync::LazyLock;

use axum::Router;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha384};

use super::assets::Asset;

/// The built bundle (`widget/dist/widget.js`).
const WIDGET_JS: &[u8] = include_bytes!("../../../widget/dist/widget.js");
/// The built demo page (`widget/dist/index.html`), which loads `/widget.js` with its
/// integrity hash.
const DEMO_PAGE: &[u8] = include_bytes!("../../../widget/dist/index.html");

/// How long browsers and CDNs may reuse `/widget.js` without asking again. Short,
/// because the URL is not versioned: a gateway upgrade must reach pages within minutes.
/// After that a conditional request costs a 304.
const WIDGET_CACHE_CONTROL: &str = "public, max-age=300, stale-while-revalidate=86400";
/// The demo page is revalidated on every load (it names the bundle's current hash).
const PAGE_CACHE_CONTROL: &str = "no-cache";

static WIDGET: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        WIDGET_JS,
        "text/javascript; charset=utf-8",
        WIDGET_CACHE_CONTROL,
    )
});
static PAGE: LazyLock<Asset> =
    LazyLock::new(|| Asset::new(DEMO_PAGE, "text/html; charset=utf-8", PAGE_CACHE_CONTROL));
static INTEGRITY: LazyLock<String> = LazyLock::new(|| integrity(WIDGET_JS));

/// The Subresource Integrity value of `bytes`: `sha384-` and the base64 digest.
pub fn integrity(bytes: &[u8]) -> String {
    format!("sha384-{}", STANDARD.encode(Sha384::digest(bytes)))
}

/// The integrity value of the `/widget.js` this binary serves.
pub fn widget_integrity() -> &'static str {
    &INTEGRITY
}

/// `GET /widget.js` and `GET /`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/widget.js", get(widget_js))
        .route("/", get(demo_page))
}

async fn widget_js(headers: HeaderMap) -> Response {
    WIDGET.respond(
        &headers,
        &[
            // Public code without credentials: any page may load it, and SRI needs CORS.
            ("access-control-allow-origin", "*"),
            ("cross-origin-resource-policy", "cross-origin"),
            ("x-switchboard-integrity", widget_integrity()),
        ],
    )
}

async fn demo_page(headers: HeaderMap) -> Response {
    PAGE.respond(
        &headers,
        &[
            ("referrer-policy", "no-referrer"),
            // The page's CSP is in its <meta>; framing can only be refused by header.
            ("content-security-policy", "frame-ancestors 'none'"),
        ],
    )
}

#[cfg(test)]
mod tests {
    use axum::http::{StatusCode, header};

    use super::*;

    #[test]
    fn integrity_is_the_base64_sha384_of_the_bytes() {
        // echo -n abc | openssl dgst -sha384 -binary | openssl base64 -A
        assert_eq!(
            integrity(b"abc"),
            "sha384-ywB1P0WjXou1oD1pmsZQBycsMqsO3tFjGotgWkP/W+2AhgcroefMI1i67KE0yCWn"
        );
    }

    #[test]
    fn the_demo_page_loads_the_bundle_it_is_served_with() {
        let page = std::str::from_utf8(DEMO_PAGE).unwrap();
        assert!(
            page.contains(&format!("integrity=\"{}\"", widget_integrity())),
            "widget/dist/index.html names another bundle than widget/dist/widget.js: run `npm run build` in widget/"
        );
    }

    #[tokio::test]
    async fn widget_js_is_cacheable_public_code_and_revalidates_with_304() {
        let first = widget_js(HeaderMap::new()).await;
        assert_eq!(first.status(), StatusCode::OK);
        let headers = first.headers();
        assert_eq!(
            headers[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(headers[header::CACHE_CONTROL], WIDGET_CACHE_CONTROL);
        assert_eq!(headers["access-control-allow-origin"], "*");
        assert_eq!(headers["x-switchboard-integrity"], widget_integrity());
        let etag = headers[header::ETAG].clone();

        let mut conditional = HeaderMap::new();
        conditional.insert(header::IF_NONE_MATCH, etag.clone());
        let second = widget_js(conditional).await;
        assert_eq!(second.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(second.headers()[header::ETAG], etag);
        let body = axum::body::to_bytes(second.into_body(), 1024)
            .await
            .unwrap();
        assert!(body.is_empty());
    }
}
