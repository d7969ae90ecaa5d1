//! JWTs for the access tests: claims built per test, signed with HS256 (a shared
//! secret), RS256 (the fixture keys in `tests/fixtures/jwt/`), or not at all
//! (`alg: none`), plus a JWKS server whose document a test can swap.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs8::DecodePublicKey as _;
use rsa::traits::PublicKeyParts as _;
use serde_json::{Value, json};

use super::{Client, Gateway, WAIT, ty};

/// The HS256 secret of the test gateways (`--jwt-hs256-secret`).
pub const SECRET: &str = "access-tests-hs256-secret-0123456789abcdefghijkl";

pub const RSA_PRIVATE: &str = include_str!("../../fixtures/jwt/rsa_private.pem");
pub const RSA_PUBLIC: &str = include_str!("../../fixtures/jwt/rsa_public.pem");
pub const RSA2_PRIVATE: &str = include_str!("../../fixtures/jwt/rsa2_private.pem");
pub const RSA2_PUBLIC: &str = include_str!("../../fixtures/jwt/rsa2_public.pem");

/// The path of the RSA public key fixture, for `--jwt-public-key-file`.
pub const RSA_PUBLIC_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/jwt/rsa_public.pem"
);

/// `["--jwt-hs256-secret", SECRET]`.
pub const HS_ARGS: [&str; 2] = ["--jwt-hs256-secret", SECRET];

/// Seconds since the epoch.
pub fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// The claims of a token, built step by step.
#[derive(Debug, Clone)]
pub struct Claims(pub Value);

impl Claims {
    /// `sub`, `org_id`, no groups, no roles, `exp` in ten minutes.
    pub fn user(sub: &str, org: &str) -> Claims {
        Claims(json!({
            "sub": sub,
            "org_id": org,
            "groups": [],
            "roles": [],
            "exp": now() + 600,
        }))
    }

    pub fn groups(mut self, groups: &[&str]) -> Claims {
        self.0["groups"] = json!(groups);
        self
    }

    pub fn roles(mut self, roles: &[&str]) -> Claims {
        self.0["roles"] = json!(roles);
        self
    }

    /// `exp` at `now + secs` (negative: in the past).
    pub fn exp_in(mut self, secs: i64) -> Claims {
        self.0["exp"] = json!(now() as i64 + secs);
        self
    }

    /// The `exp` claim.
    pub fn exp(&self) -> u64 {
        self.0["exp"].as_u64().expect("exp")
    }

    /// Set any claim.
    pub fn set(mut self, claim: &str, value: Value) -> Claims {
        self.0[claim] = value;
        self
    }

    /// Remove a claim.
    pub fn without(mut self, claim: &str) -> Claims {
        if let Some(map) = self.0.as_object_mut() {
            map.remove(claim);
        }
        self
    }

    /// Signed HS256 with [`SECRET`].
    pub fn hs256(&self) -> String {
        self.hs256_with(SECRET.as_bytes())
    }

    /// Signed HS256 with `secret`.
    pub fn hs256_with(&self, secret: &[u8]) -> String {
        sign(
            Header::new(Algorithm::HS256),
            &self.0,
            &EncodingKey::from_secret(secret),
        )
    }

    /// Signed RS256 with the first fixture key (`rsa_private.pem`).
    pub fn rs256(&self, kid: Option<&str>) -> String {
        self.rs256_with(RSA_PRIVATE, kid)
    }

    /// Signed RS256 with the second fixture key (`rsa2_private.pem`).
    pub fn rs256_key2(&self, kid: Option<&str>) -> String {
        self.rs256_with(RSA2_PRIVATE, kid)
    }

    fn rs256_with(&self, private_pem: &str, kid: Option<&str>) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = kid.map(str::to_string);
        let key = EncodingKey::from_rsa_pem(private_pem.as_bytes()).expect("fixture RSA key");
        sign(header, &self.0, &key)
    }

    /// `{"alg":"none"}`, an empty signature.
    pub fn unsigned(&self) -> String {
        let header = json!({"alg": "none", "typ": "JWT"});
        format!(
            "{}.{}.",
            b64(header.to_string().as_bytes()),
            b64(self.0.to_string().as_bytes())
        )
    }
}

fn sign(header: Header, claims: &Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(&header, claims, key).expect("sign a token")
}

/// An HS256 token for `sub` in `org` with `roles` (no groups), as most tests need.
pub fn token(sub: &str, org: &str, roles: &[&str]) -> String {
    Claims::user(sub, org).roles(roles).hs256()
}

/// Base64url without padding.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `token` with its payload replaced by `claims` and the original signature kept: a
/// forgery that must not verify.
pub fn with_swapped_payload(token: &str, claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWS compact token: {token}");
    format!(
        "{}.{}.{}",
        parts[0],
        b64(claims.to_string().as_bytes()),
        parts[2]
    )
}

/// `ws://…/ws?token=…`
pub fn ws_url_with_token(gw: &Gateway, token: &str) -> String {
    format!("{}?token={token}", gw.ws_url())
}

/// Connect with `?token=` and read the `welcome`.
pub async fn connect(gw: &Gateway, token: &str) -> Client {
    Client::connect(&ws_url_with_token(gw, token)).await
}

/// Connect with `Authorization: Bearer` and read the `welcome`.
pub async fn connect_bearer(gw: &Gateway, token: &str) -> Client {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::HeaderValue;
    let mut request = gw.ws_url().into_client_request().expect("ws url");
    request.headers_mut().insert(
        "Authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header value"),
    );
    let (mut client, _) = Client::connect_request(request)
        .await
        .expect("WebSocket upgrade with a bearer token");
    let welcome = client.next_frame().await;
    assert_eq!(ty(&welcome), "welcome", "first frame: {welcome}");
    client.welcome = welcome;
    client
}

/// Panics unless the welcome's principal is the authenticated `user`/`org` with
/// exactly these groups and roles.
pub fn assert_principal(welcome: &Value, user: &str, org: &str, groups: &[&str], roles: &[&str]) {
    let p = &welcome["principal"];
    assert_eq!(p["anonymous"], false, "welcome: {welcome}");
    assert_eq!(p["user_id"], user, "welcome: {welcome}");
    assert_eq!(p["org_id"], org, "welcome: {welcome}");
    assert_eq!(p["groups"], json!(groups), "welcome: {welcome}");
    assert_eq!(p["roles"], json!(roles), "welcome: {welcome}");
}

/// Connect to `url` (carrying a token that must not verify) and panic unless the
/// server answers `error` `unauthorized` and closes with 4401, never welcoming the
/// connection. `why` names the case in failure messages.
pub async fn assert_refused(url: &str, why: &str) {
    let mut client = Client::connect_raw(url).await;
    let (frames, code, reason) = client.frames_until_close().await;
    assert!(
        frames.iter().all(|f| ty(f) != "welcome"),
        "{why}: a token that does not verify was welcomed: {frames:?}"
    );
    assert!(
        frames
            .iter()
            .any(|f| ty(f) == "error" && f["code"] == "unauthorized"),
        "{why}: expected error unauthorized before the close, got {frames:?}"
    );
    assert_eq!(code, 4401, "{why}: close code (reason {reason:?})");
}

/// [`assert_refused`] for `?token=`.
pub async fn assert_token_refused(gw: &Gateway, token: &str, why: &str) {
    assert_refused(&ws_url_with_token(gw, token), why).await;
}

/// An RSA JWK (`kty`, `use`, `alg` RS256, `kid`, `n`, `e`) for a public key PEM.
pub fn rsa_jwk(public_pem: &str, kid: &str) -> Value {
    let key = rsa::RsaPublicKey::from_public_key_pem(public_pem).expect("fixture RSA public key");
    json!({
        "kty": "RSA",
        "use": "sig",
        "alg": "RS256",
        "kid": kid,
        "n": b64(&key.n().to_bytes_be()),
        "e": b64(&key.e().to_bytes_be()),
    })
}

/// `{"keys": keys}` as text.
pub fn jwks(keys: Vec<Value>) -> String {
    json!({ "keys": keys }).to_string()
}

/// A JWKS document served over HTTP on `127.0.0.1:0`, from its own thread and
/// runtime (so it answers while a test thread blocks, e.g. in `Gateway::start`).
pub struct JwksServer {
    /// `http://127.0.0.1:PORT/jwks.json`
    pub url: String,
    document: Arc<Mutex<String>>,
    fetches: Arc<AtomicUsize>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl JwksServer {
    pub fn start(document: String) -> JwksServer {
        let document = Arc::new(Mutex::new(document));
        let fetches = Arc::new(AtomicUsize::new(0));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the JWKS server");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("JWKS server address");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (doc, count) = (document.clone(), fetches.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("JWKS server runtime");
            runtime.block_on(async move {
                let app = axum::Router::new().route(
                    "/jwks.json",
                    axum::routing::get(move || {
                        let (doc, count) = (doc.clone(), count.clone());
                        async move {
                            count.fetch_add(1, Ordering::SeqCst);
                            let body = doc.lock().expect("JWKS document lock").clone();
                            ([("content-type", "application/json")], body)
                        }
                    }),
                );
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("tokio JWKS listener");
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = rx.await;
                    })
                    .await;
            });
        });
        JwksServer {
            url: format!("http://{addr}/jwks.json"),
            document,
            fetches,
            shutdown: Some(tx),
        }
    }

    /// Serve `document` from now on.
    pub fn set(&self, document: String) {
        *self.document.lock().expect("JWKS document lock") = document;
    }

    /// How many times the document was fetched.
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Connect with `token` until the gateway welcomes it, for at most [`WAIT`]; each
/// refused attempt must be a clean `unauthorized` + 4401. Returns the welcomed client
/// and the number of refused attempts. For key rotation, where the gateway may
/// still refuse the new key until its refetch interval has passed.
pub async fn connect_eventually(gw: &Gateway, token: &str) -> (Client, usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut refused = 0;
    loop {
        let mut client = Client::connect_raw(&ws_url_with_token(gw, token)).await;
        let first = client.next_frame().await;
        if ty(&first) == "welcome" {
            client.welcome = first;
            return (client, refused);
        }
        assert!(
            ty(&first) == "error" && first["code"] == "unauthorized",
            "expected welcome or error unauthorized, got {first}"
        );
        assert_eq!(client.expect_close().await.0, 4401, "refusal close code");
        refused += 1;
        assert!(
            tokio::time::Instant::now() < deadline,
            "the token was still refused after {refused} attempts within {WAIT:?}"
        );
        tokio::time::sleep(switchboard_testkit::POLL).await;
    }
}
