//! Credentials built to break the handshake rather than to pass it: a validly signed
//! token whose `exp` the clock cannot represent (at connect and on `auth.refresh`),
//! and `Authorization` headers whose scheme is not exactly `Bearer ` — each must end
//! in a working connection or a 4401, never a dead task or a silent downgrade to
//! anonymous.

use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::support::jwt::{Claims, HS_ARGS, assert_principal, connect};
use crate::support::{Client, Gateway, WAIT, metric_sum, ty};

/// `switchboard_connections` once it reads `want` (polled: a close is counted after
/// the socket is gone).
async fn connections_settle_at(gw: &Gateway, want: f64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let seen = metric_sum(&gw.metrics().await, "switchboard_connections", None);
        if seen == Some(want) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "switchboard_connections stayed at {seen:?}, expected {want}"
        );
        tokio::time::sleep(switchboard_testkit::POLL).await;
    }
}

/// A token with `exp` = `u64::MAX` (validly signed) is a working connection: it
/// answers, holds a session, and once closed the gateway counts no connection and no
/// subscription left behind.
#[tokio::test]
async fn a_token_expiring_at_u64_max_connects_and_cleans_up() {
    let gw = Gateway::start(&HS_ARGS);
    let claims = Claims::user("u-far", "acme").set("exp", json!(u64::MAX));
    let mut client = connect(&gw, &claims.hs256()).await;
    assert_principal(&client.welcome, "u-far", "acme", &[], &[]);
    client.ping_pong().await;
    let session = client.create_session().await;
    let joined = client
        .join_reply(&session.id, None, session.key.as_deref())
        .await;
    assert_eq!(ty(&joined), "session.joined", "{joined}");
    client.ping_pong().await;
    connections_settle_at(&gw, 1.0).await;
    drop(client);
    connections_settle_at(&gw, 0.0).await;
    let metrics = gw.metrics().await;
    assert_eq!(
        metric_sum(&metrics, "switchboard_streams_subscribed", None),
        Some(0.0),
        "no stream stays subscribed for a closed connection"
    );
}

/// `auth.refresh` to a token with `exp` = `u64::MAX` is answered `auth.refreshed`
/// and the connection keeps serving.
#[tokio::test]
async fn refreshing_to_a_token_expiring_at_u64_max_keeps_the_connection() {
    let gw = Gateway::start(&HS_ARGS);
    let mut client = connect(&gw, &Claims::user("u-far", "acme").hs256()).await;
    let far = Claims::user("u-far", "acme").set("exp", json!(u64::MAX));
    let reply = client
        .request("auth.refresh", json!({"token": far.hs256()}))
        .await;
    assert_eq!(ty(&reply), "auth.refreshed", "{reply}");
    assert_eq!(reply["expires_at"], json!(u64::MAX), "{reply}");
    client.ping_pong().await;
    client.ping_pong().await;
    drop(client);
    connections_settle_at(&gw, 0.0).await;
}

/// Open `/ws` with `Authorization: <value>` and return the first frame and, if the
/// server closed, the close code.
async fn connect_with_authorization(gw: &Gateway, value: &[u8]) -> (serde_json::Value, Client) {
    let mut request = gw.ws_url().into_client_request().expect("ws url");
    request.headers_mut().insert(
        "Authorization",
        HeaderValue::from_bytes(value).expect("header value"),
    );
    let (mut client, _) = Client::connect_request(request)
        .await
        .expect("the upgrade itself succeeds; the refusal is a frame and a close");
    let first = client.next_frame().await;
    (first, client)
}

/// The scheme of `Authorization` is case-insensitive and may be followed by several
/// spaces (RFC 9110 §11.4): `bearer`, `BEARER` and `bEaReR` carry the token like
/// `Bearer `.
#[tokio::test]
async fn the_bearer_scheme_is_read_case_insensitively() {
    let gw = Gateway::start(&HS_ARGS);
    let token = Claims::user("u-scheme", "acme").hs256();
    for scheme in ["bearer ", "BEARER ", "bEaReR   "] {
        let (first, _client) =
            connect_with_authorization(&gw, format!("{scheme}{token}").as_bytes()).await;
        assert_eq!(ty(&first), "welcome", "scheme {scheme:?}: {first}");
        assert_principal(&first, "u-scheme", "acme", &[], &[]);
    }
}

/// An `Authorization` header the gateway cannot use — another scheme, a tab where the
/// space goes, no credential, a forged token behind a lower-case scheme, bytes that
/// are not text — is refused
/// with `unauthorized` and 4401 on a gateway that allows anonymous visitors: never
/// a silent downgrade to anonymous.
#[tokio::test]
async fn an_unusable_authorization_header_is_refused_4401_not_anonymous() {
    let gw = Gateway::start(&HS_ARGS);
    let forged =
        Claims::user("u-forged", "acme").hs256_with(b"not-the-gateway-secret-0123456789abcdef");
    let cases: Vec<(String, Vec<u8>)> = vec![
        ("Basic".into(), b"Basic dXNlcjpwYXNz".to_vec()),
        (
            "forged, lower-case scheme".into(),
            format!("bearer {forged}").into_bytes(),
        ),
        (
            "tab after the scheme".into(),
            format!("Bearer\t{}", Claims::user("u-tab", "acme").hs256()).into_bytes(),
        ),
        ("scheme only".into(), b"Bearer".to_vec()),
        ("empty credential".into(), b"Bearer    ".to_vec()),
        ("no scheme".into(), b"just-a-token".to_vec()),
        ("not text".into(), b"Bearer \xff\xfe".to_vec()),
    ];
    for (why, value) in cases {
        let (first, mut client) = connect_with_authorization(&gw, &value).await;
        assert_eq!(ty(&first), "error", "{why}: {first}");
        assert_eq!(first["code"], "unauthorized", "{why}: {first}");
        let (frames, code, _) = client.frames_until_close().await;
        assert!(
            frames.iter().all(|f| ty(f) != "welcome"),
            "{why}: welcomed after refusing: {frames:?}"
        );
        assert_eq!(code, 4401, "{why}");
    }
    // Control: no Authorization header at all is still anonymous.
    let anonymous = Client::connect(&gw.ws_url()).await;
    assert_eq!(anonymous.welcome["principal"]["anonymous"], true);
}
