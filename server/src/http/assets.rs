//! Files compiled into the binary and served as they are (the widget, its demo page,
//! the operator console): each with a strong `ETag` computed from its bytes, so a
//! matching `If-None-Match` costs a `304`, and `X-Content-Type-Options: nosniff`.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// One embedded file with the headers computed from its bytes.
pub struct Asset {
    bytes: &'static [u8],
    content_type: &'static str,
    cache_control: &'static str,
    /// A strong validator: a hash of the bytes, quoted.
    etag: String,
}

impl Asset {
    pub fn new(
        bytes: &'static [u8],
        content_type: &'static str,
        cache_control: &'static str,
    ) -> Asset {
        let digest = Sha256::digest(bytes);
        let etag = format!("\"{}\"", hex(&digest[..16]));
        Asset {
            bytes,
            content_type,
            cache_control,
            etag,
        }
    }

    /// 200 with the bytes, or 304 when the client's `If-None-Match` holds our ETag;
    /// `extra` headers are added to either.
    pub fn respond(&self, request: &HeaderMap, extra: &[(&'static str, &str)]) -> Response {
        let not_modified = request
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| etag_matches(v, &self.etag));
        let mut response = if not_modified {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            (StatusCode::OK, self.bytes).into_response()
        };
        let headers = response.headers_mut();
        let mut set = |name: header::HeaderName, value: &str| {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(name, value);
            }
        };
        if !not_modified {
            set(header::CONTENT_TYPE, self.content_type);
        }
        set(header::CACHE_CONTROL, self.cache_control);
        set(header::ETAG, &self.etag);
        set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
        for (name, value) in extra {
            if let (Ok(name), Ok(value)) = (
                header::HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.insert(name, value);
            }
        }
        response
    }
}

/// Whether an `If-None-Match` value (`*`, or a comma-separated list of entity tags,
/// weak or strong) matches `etag`. RFC 9110 compares weakly for `If-None-Match`.
fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_accepts_lists_weak_tags_and_star() {
        let etag = "\"abc\"";
        assert!(etag_matches("\"abc\"", etag));
        assert!(etag_matches("\"x\", W/\"abc\"", etag));
        assert!(etag_matches("*", etag));
        assert!(!etag_matches("\"abcd\"", etag));
        assert!(!etag_matches("", etag));
    }
}
