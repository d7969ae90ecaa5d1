//! The operator console's files (docs/console.md): `GET /console` is the page, under a
//! strict Content-Security-Policy, and it loads its script and style sheet from
//! `/console/…` with their content types; each revalidates to a `304`.

use reqwest::header;

use crate::support::Gateway;

/// `GET path` without following redirects.
async fn get_raw(gw: &Gateway, path: &str, if_none_match: Option<&str>) -> reqwest::Response {
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut request = client.get(format!("{}{path}", gw.http_url()));
    if let Some(etag) = if_none_match {
        request = request.header(header::IF_NONE_MATCH, etag);
    }
    request.send().await.unwrap()
}

fn header_of(resp: &reqwest::Response, name: header::HeaderName) -> String {
    resp.headers()
        .get(&name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_string()
}

#[tokio::test]
async fn the_console_page_loads_its_script_and_style_under_a_strict_policy() {
    let gw = Gateway::start(&[]);

    let page = get_raw(&gw, "/console", None).await;
    assert_eq!(page.status(), 200);
    assert_eq!(
        header_of(&page, header::CONTENT_TYPE),
        "text/html; charset=utf-8"
    );
    assert_eq!(header_of(&page, header::CACHE_CONTROL), "no-cache");
    assert_eq!(header_of(&page, header::REFERRER_POLICY), "no-referrer");
    assert_eq!(header_of(&page, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    let policy = header_of(&page, header::CONTENT_SECURITY_POLICY);
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
    ] {
        assert!(policy.contains(directive), "{directive} in {policy}");
    }
    assert!(!policy.contains("unsafe"), "{policy}");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"src="console/console.js""#), "{html}");
    assert!(html.contains(r#"href="console/console.css""#), "{html}");

    for (path, content_type, needle) in [
        (
            "/console/console.js",
            "text/javascript; charset=utf-8",
            "inbox.list",
        ),
        ("/console/console.css", "text/css; charset=utf-8", ".inbox"),
    ] {
        let resp = get_raw(&gw, path, None).await;
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(
            header_of(&resp, header::CONTENT_TYPE),
            content_type,
            "{path}"
        );
        assert_eq!(
            header_of(&resp, header::CACHE_CONTROL),
            "no-cache",
            "{path}"
        );
        let etag = header_of(&resp, header::ETAG);
        assert!(resp.text().await.unwrap().contains(needle), "{path}");

        let again = get_raw(&gw, path, Some(&etag)).await;
        assert_eq!(again.status(), 304, "{path} revalidated");
        assert_eq!(header_of(&again, header::ETAG), etag);
    }

    // With a trailing slash the page's relative links would miss: sent to /console.
    let slash = get_raw(&gw, "/console/", None).await;
    assert_eq!(slash.status(), 308);
    assert_eq!(header_of(&slash, header::LOCATION), "../console");
    assert_eq!(get_raw(&gw, "/console/other.js", None).await.status(), 404);
}
