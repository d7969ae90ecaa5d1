//! `connect` fails loud and fast at boot on every misconfiguration, and never prints
//! the password.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use switchboard_backplane::{Backplane, ErrorKind, Retention};
use switchboard_redis::{ConnectError, RedisBackplane};
use switchboard_testkit::RedisServer;

use crate::support::unique_prefix;

const SECRET: &str = "hunter2-very-secret";

/// Connects and expects a failure within `within`; returns it.
async fn must_fail(url: &str, prefix: &str, within: Duration) -> ConnectError {
    let started = Instant::now();
    let outcome = tokio::time::timeout(
        Duration::from_secs(10),
        RedisBackplane::connect(url, prefix, Retention::default()),
    )
    .await
    .expect("connect must give up by itself");
    let elapsed = started.elapsed();
    let error = match outcome {
        Ok(_) => panic!("connect to {url} must fail"),
        Err(error) => error,
    };
    assert!(
        elapsed < within,
        "connect failed after {elapsed:?}, not within {within:?}: {error}"
    );
    let text = format!("{error} {error:?}");
    assert!(
        !text.contains(SECRET),
        "the error leaks the password: {text}"
    );
    error
}

/// A port where nobody listens: refused at once, reported as unreachable.
#[tokio::test]
async fn an_unreachable_server_fails_at_once_without_the_password() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://app:{SECRET}@127.0.0.1:{port}/0");
    let error = must_fail(&url, "sb:", Duration::from_secs(2)).await;
    assert!(
        matches!(error, ConnectError::Unreachable { .. }),
        "{error:?}"
    );
    assert_eq!(error.kind(), ErrorKind::Unavailable);
    assert!(
        error.to_string().contains(&format!("127.0.0.1:{port}")),
        "{error}"
    );
}

/// A server that accepts the TCP connection but never answers: `connect` gives up
/// after its bounded timeout (5 s by default), under 6 s.
#[tokio::test]
async fn a_server_that_never_answers_times_out_within_six_seconds() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = format!("redis://:{SECRET}@127.0.0.1:{port}");
    let error = must_fail(&url, "sb:", Duration::from_secs(6)).await;
    assert!(matches!(error, ConnectError::Timeout { .. }), "{error:?}");
    assert_eq!(error.kind(), ErrorKind::Timeout);
    drop(listener);
}

/// URLs that are not Redis URLs are refused before any connection attempt.
#[tokio::test]
async fn a_malformed_url_is_refused_without_the_password() {
    for url in [
        format!("http://user:{SECRET}@localhost:6379"),
        format!("redis://user:{SECRET}@"),
        "not a url".to_string(),
        String::new(),
    ] {
        let error = must_fail(&url, "sb:", Duration::from_secs(1)).await;
        assert!(
            matches!(error, ConnectError::InvalidUrl(_)),
            "{url:?}: {error:?}"
        );
    }
}

/// A wrong password is a refusal (not "unreachable"), and the message quotes neither
/// the wrong password nor the right one.
#[tokio::test]
async fn a_wrong_password_is_rejected_and_a_right_one_works() {
    let server = RedisServer::start_with_args(&["--requirepass", SECRET]);
    let port = server.port();
    let wrong = format!("redis://:wrong-{SECRET}@127.0.0.1:{port}/0");
    let error = must_fail(&wrong, "sb:", Duration::from_secs(2)).await;
    assert!(matches!(error, ConnectError::Rejected { .. }), "{error:?}");

    let missing = format!("redis://127.0.0.1:{port}/0");
    let error = must_fail(&missing, "sb:", Duration::from_secs(2)).await;
    assert!(matches!(error, ConnectError::Rejected { .. }), "{error:?}");

    let right = format!("redis://:{SECRET}@127.0.0.1:{port}/0");
    let bp = RedisBackplane::connect(&right, &unique_prefix("auth"), Retention::default())
        .await
        .unwrap();
    bp.ping().await.unwrap();
    assert!(!format!("{bp:?}").contains(SECRET), "{bp:?}");
    assert_eq!(bp.target(), format!("redis://127.0.0.1:{port}/0"));
}

/// A prefix that would break the key layout is refused.
#[tokio::test]
async fn a_prefix_with_braces_is_refused() {
    let error = must_fail("redis://127.0.0.1:1", "sb{x}:", Duration::from_secs(1)).await;
    assert!(matches!(error, ConnectError::InvalidPrefix(_)), "{error:?}");
}
