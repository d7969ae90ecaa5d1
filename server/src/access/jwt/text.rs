//! Text from tokens, settings and URLs, made safe to put in a message or a log line:
//! a client may send anything as a token, and a JWKS URL may carry credentials.

/// Text from a token or a setting, quoted for a message when short and plain; other
/// text is not repeated.
pub(super) fn show_text(text: &str) -> String {
    let plain = text.len() <= 128
        && text
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '`' && c != '"' && c != '\\');
    if plain {
        format!("`{text}`")
    } else {
        "(not shown)".to_string()
    }
}

/// A URL without user info, query or fragment, which may hold credentials.
pub(super) fn redact_url(url: &reqwest::Url) -> String {
    format!("{}{}", url.origin().ascii_serialization(), url.path())
}

/// [`redact_url`] of a URL not parsed yet.
pub(super) fn redact_url_text(url: &str) -> String {
    reqwest::Url::parse(url)
        .map(|u| redact_url(&u))
        .unwrap_or_else(|_| "<not a URL>".to_string())
}
