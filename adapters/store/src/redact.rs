//! Keeping a connection URL's password out of error messages and logs.

/// `message` with every occurrence of `url`'s password (in its userinfo or a
/// `password=` parameter, raw or percent-encoded as written) replaced by `***`.
pub(crate) fn redact(message: &str, url: &str) -> String {
    let mut redacted = message.to_string();
    for secret in passwords(url) {
        if !secret.is_empty() {
            redacted = redacted.replace(secret, "***");
        }
    }
    redacted
}

/// The password as it appears in `url`: in `scheme://user:password@host`, and in a
/// `password=` query parameter.
fn passwords(url: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if let Some((userinfo, _host)) = rest[..authority_end].rsplit_once('@')
        && let Some((_user, password)) = userinfo.split_once(':')
    {
        found.push(password);
    }
    if let Some((_, query)) = url.split_once('?') {
        for pair in query.split(['&', '#']) {
            if let Some(password) = pair.strip_prefix("password=") {
                found.push(password);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_userinfo_password_is_hidden() {
        let url = "postgres://app:s3cr%40t@db.internal:5432/chat";
        let message = format!("could not connect to {url}: s3cr%40t rejected");
        let redacted = redact(&message, url);
        assert!(!redacted.contains("s3cr"), "{redacted}");
        assert!(redacted.contains("postgres://app:***@db.internal:5432/chat"));
    }

    #[test]
    fn a_password_parameter_is_hidden() {
        let url = "postgres://app@db/chat?sslmode=disable&password=hunter2";
        assert_eq!(redact("x hunter2 y", url), "x *** y");
    }

    #[test]
    fn a_url_without_password_changes_nothing() {
        let url = "postgres://postgres@127.0.0.1:5432/postgres";
        assert_eq!(redact("refused: postgres", url), "refused: postgres");
    }
}
