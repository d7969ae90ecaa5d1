//! A JWKS URL: boot fetch, key rotation, bounded refreshes, outages.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;

use super::*;

/// A JWKS server whose document the test can swap and whose fetches it counts.
#[derive(Clone)]
struct JwksState {
    response: Arc<Mutex<(u16, String)>>,
    fetches: Arc<AtomicUsize>,
}

struct JwksServer {
    url: String,
    state: JwksState,
}

impl JwksServer {
    async fn start(document: String) -> JwksServer {
        async fn serve(State(state): State<JwksState>) -> (StatusCode, String) {
            state.fetches.fetch_add(1, Ordering::SeqCst);
            // Slow enough that concurrent verifications overlap with the fetch.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let (status, body) = state.response.lock().unwrap().clone();
            (StatusCode::from_u16(status).unwrap(), body)
        }
        let state = JwksState {
            response: Arc::new(Mutex::new((200, document))),
            fetches: Arc::new(AtomicUsize::new(0)),
        };
        let app = axum::Router::new()
            .route("/.well-known/jwks.json", axum::routing::get(serve))
            .route(
                "/moved",
                axum::routing::get(|| async {
                    axum::response::Redirect::temporary("/.well-known/jwks.json")
                }),
            )
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        JwksServer {
            url: format!("http://{addr}/.well-known/jwks.json"),
            state,
        }
    }

    fn set(&self, status: u16, document: String) {
        *self.state.response.lock().unwrap() = (status, document);
    }

    fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }

    fn settings(&self, interval: Duration) -> JwtSettings {
        JwtSettings {
            jwks_url: Some(self.url.clone()),
            jwks_min_refresh_interval: interval,
            jwks_insecure_http_for_tests: true,
            ..JwtSettings::default()
        }
    }
}

#[tokio::test]
async fn jwks_url_happy_path_and_key_rotation() {
    let server =
        JwksServer::start(jwks(vec![rsa_jwk(RSA_PUBLIC, Some("k1"), Some("RS256"))])).await;
    let v = verifier(JwtSettings {
        groups_claim: "teams".into(),
        ..server.settings(Duration::from_secs(1))
    })
    .await;
    assert_eq!(server.fetches(), 1, "fetched once at boot");
    assert!(v.describe().starts_with("JWKS URL http://127.0.0.1:"));

    let c = claims(json!({"org_id": "acme", "teams": ["t1"]}));
    let k1 = sign(Algorithm::RS256, Some("k1"), &rsa_key(), &c);
    let p = v.verify(&k1).await.unwrap().principal;
    assert_eq!(
        (p.org_id.as_str(), p.groups.clone()),
        ("acme", vec!["t1".to_string()])
    );
    assert_eq!(server.fetches(), 1, "a known kid needs no fetch");

    // The issuer rotates to k2 and drops k1.
    server.set(
        200,
        jwks(vec![rsa_jwk(RSA2_PUBLIC, Some("k2"), Some("RS256"))]),
    );
    let k2 = sign(Algorithm::RS256, Some("k2"), &rsa2_key(), &c);
    assert_eq!(v.verify(&k2).await.unwrap().principal.org_id, "acme");
    assert_eq!(server.fetches(), 2, "the unknown kid caused one refetch");
    // k1 is gone, and within the interval there is no refetch for it.
    assert!(refused(v.verify(&k1).await).contains("`k1` is not one of the keys"));
    assert!(v.verify(&k2).await.is_ok());
    assert_eq!(server.fetches(), 2);

    // After the interval an unknown kid refetches again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    server.set(
        200,
        jwks(vec![
            rsa_jwk(RSA_PUBLIC, Some("k1"), Some("RS256")),
            rsa_jwk(RSA2_PUBLIC, Some("k2"), Some("RS256")),
        ]),
    );
    assert!(v.verify(&k1).await.is_ok());
    assert!(v.verify(&k2).await.is_ok());
    assert_eq!(server.fetches(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jwks_url_refresh_rate_is_bounded() {
    let server = JwksServer::start(jwks(vec![rsa_jwk(RSA_PUBLIC, Some("k1"), None)])).await;
    let v = Arc::new(verifier(server.settings(Duration::from_secs(30))).await);
    assert_eq!(server.fetches(), 1);

    let c = claims(json!({}));
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let v = v.clone();
            let token = sign(
                Algorithm::RS256,
                Some(&format!("unknown-{i}")),
                &rsa2_key(),
                &c,
            );
            tokio::spawn(async move { v.verify(&token).await })
        })
        .collect();
    for task in tasks {
        assert!(refused(task.await.unwrap()).contains("is not one of the keys"));
    }
    assert_eq!(server.fetches(), 2, "40 unknown kids at once: one refetch");

    // Even a kid that the JWKS now has waits for the interval.
    server.set(200, jwks(vec![rsa_jwk(RSA2_PUBLIC, Some("k2"), None)]));
    let token = sign(Algorithm::RS256, Some("k2"), &rsa2_key(), &c);
    assert!(refused(v.verify(&token).await).contains("`k2` is not one of the keys"));
    assert_eq!(server.fetches(), 2);
    // Known keys keep working throughout.
    let token = sign(Algorithm::RS256, Some("k1"), &rsa_key(), &c);
    assert!(v.verify(&token).await.is_ok());
}

#[tokio::test]
async fn jwks_url_down_after_boot_is_unavailable_for_unknown_keys_only() {
    let server = JwksServer::start(jwks(vec![ec_jwk("k1")])).await;
    let v = verifier(server.settings(Duration::from_secs(30))).await;
    server.set(503, "down".into());
    let c = claims(json!({}));
    let unknown = sign(Algorithm::ES256, Some("k9"), &ec_key(), &c);
    assert_eq!(v.verify(&unknown).await, Err(TokenError::Unavailable));
    assert_eq!(server.fetches(), 2);
    // Within the interval: still unavailable, without another fetch.
    assert_eq!(v.verify(&unknown).await, Err(TokenError::Unavailable));
    assert_eq!(server.fetches(), 2);
    // The cached key still verifies.
    let known = sign(Algorithm::ES256, Some("k1"), &ec_key(), &c);
    assert!(v.verify(&known).await.is_ok());
}

#[tokio::test]
async fn jwks_url_that_cannot_be_fetched_at_boot_is_a_config_error() {
    // A port nobody listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let message = config_error(JwtSettings {
        jwks_url: Some(format!(
            "http://user:pw@127.0.0.1:{port}/jwks.json?token=abc"
        )),
        jwks_insecure_http_for_tests: true,
        ..JwtSettings::default()
    })
    .await;
    assert!(message.contains("--jwks-url"), "{message}");
    assert!(
        !message.contains("pw") && !message.contains("token=abc"),
        "{message}"
    );

    let server = JwksServer::start("not json".into()).await;
    let message = config_error(server.settings(Duration::from_secs(30))).await;
    assert!(
        message.contains("--jwks-url") && message.contains("not a JWKS"),
        "{message}"
    );
    server.set(500, jwks(vec![ec_jwk("k1")]));
    let message = config_error(server.settings(Duration::from_secs(30))).await;
    assert!(message.contains("HTTP 500"), "{message}");
}

/// The JWKS decides which tokens are genuine: a plain `http://` URL is refused at
/// boot unless the test flag says otherwise, and a redirect is not followed.
#[tokio::test]
async fn jwks_url_must_be_https_and_is_not_redirected() {
    let server = JwksServer::start(jwks(vec![ec_jwk("k1")])).await;
    let message = config_error(JwtSettings {
        jwks_insecure_http_for_tests: false,
        ..server.settings(Duration::from_secs(30))
    })
    .await;
    assert!(
        message.contains("--jwks-url")
            && message.contains("https://")
            && message.contains("--insecure-jwks-http-for-tests"),
        "{message}"
    );
    assert_eq!(server.fetches(), 0, "refused before any fetch");

    let moved = server.url.replace("/.well-known/jwks.json", "/moved");
    let message = config_error(JwtSettings {
        jwks_url: Some(moved),
        ..server.settings(Duration::from_secs(30))
    })
    .await;
    assert!(
        message.contains("HTTP 307") && message.contains("redirects are not followed"),
        "{message}"
    );
    assert_eq!(server.fetches(), 0, "the redirect was not followed");
}
