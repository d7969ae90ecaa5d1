//! Trying to get past the WebSocket handshake with tokens that must not verify, and
//! the lifetime of a verified token on a connection (docs/http-api.md, "JWT").

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::support;
use crate::support::jwt::{
    self, Claims, HS_ARGS, JwksServer, RSA_PUBLIC, RSA_PUBLIC_PATH, RSA2_PUBLIC, assert_principal,
    assert_token_refused, connect, connect_bearer, connect_eventually,
};
use crate::support::{Client, Gateway, ty};

const ISSUER: &str = "https://idp.test";
const AUDIENCE: &str = "switchboard-tests";

/// An HS256 gateway that also pins the issuer and the audience.
fn hs_gateway_with_iss_aud() -> Gateway {
    Gateway::start(&[
        HS_ARGS[0],
        HS_ARGS[1],
        "--jwt-issuer",
        ISSUER,
        "--jwt-audience",
        AUDIENCE,
    ])
}

/// Claims that pass [`hs_gateway_with_iss_aud`].
fn good(sub: &str, org: &str) -> Claims {
    Claims::user(sub, org)
        .set("iss", json!(ISSUER))
        .set("aud", json!(AUDIENCE))
}

fn rs_gateway() -> Gateway {
    Gateway::start(&[
        "--jwt-public-key-file",
        RSA_PUBLIC_PATH,
        "--jwt-algorithm",
        "RS256",
    ])
}

/// Seconds since the epoch, with a fraction.
fn now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

// ---- the handshake: a valid token

/// A valid HS256 token (query or bearer) is welcomed with its principal: user_id,
/// org_id, groups, roles and anonymous false.
#[tokio::test]
async fn valid_hs256_token_is_welcomed_with_its_principal() {
    let gw = hs_gateway_with_iss_aud();
    let claims = good("u-alice", "acme")
        .groups(&["support", "emea"])
        .roles(&["operator"]);
    let token = claims.hs256();
    let client = connect(&gw, &token).await;
    assert_principal(
        &client.welcome,
        "u-alice",
        "acme",
        &["support", "emea"],
        &["operator"],
    );
    let bearer = connect_bearer(&gw, &token).await;
    assert_principal(
        &bearer.welcome,
        "u-alice",
        "acme",
        &["support", "emea"],
        &["operator"],
    );
}

/// A valid RS256 token is welcomed by a gateway configured with the RSA public key; a
/// token without an org claim belongs to `--default-org`.
#[tokio::test]
async fn valid_rs256_token_is_welcomed_and_missing_org_means_default_org() {
    let gw = rs_gateway();
    let client = connect(
        &gw,
        &Claims::user("u-bob", "globex").groups(&["x"]).rs256(None),
    )
    .await;
    assert_principal(&client.welcome, "u-bob", "globex", &["x"], &[]);
    let no_org = Claims::user("u-carol", "ignored").without("org_id");
    let client = connect_bearer(&gw, &no_org.rs256(None)).await;
    assert_principal(&client.welcome, "u-carol", "default", &[], &[]);
}

/// `--jwt-org-claim`, `--jwt-groups-claim` and `--jwt-roles-claim` rename the claims
/// read; the default names are then ignored.
#[tokio::test]
async fn custom_claim_names_are_read_and_default_names_ignored() {
    let gw = Gateway::start(&[
        HS_ARGS[0],
        HS_ARGS[1],
        "--jwt-org-claim",
        "tenant",
        "--jwt-groups-claim",
        "teams",
        "--jwt-roles-claim",
        "perms",
    ]);
    let claims = Claims::user("u1", "not-this-org")
        .groups(&["not-this-group"])
        .roles(&["admin"])
        .set("tenant", json!("initech"))
        .set("teams", json!(["billing"]))
        .set("perms", json!(["publisher"]));
    let client = connect(&gw, &claims.hs256()).await;
    assert_principal(
        &client.welcome,
        "u1",
        "initech",
        &["billing"],
        &["publisher"],
    );
}

// ---- the handshake: tokens that must not verify

/// A token signed with another secret, and a genuine token whose payload was swapped
/// (another org, admin role), are refused with `unauthorized` + 4401, by query and by
/// bearer header alike.
#[tokio::test]
async fn forged_signature_is_refused_4401() {
    let gw = Gateway::start(&HS_ARGS);
    let claims = Claims::user("u1", "acme");
    assert_token_refused(
        &gw,
        &claims.hs256_with(b"some-other-secret-some-other-secret!!"),
        "HS256 with another secret",
    )
    .await;
    let genuine = claims.hs256();
    let escalated = Claims::user("u1", "globex").roles(&["admin"]);
    assert_token_refused(
        &gw,
        &jwt::with_swapped_payload(&genuine, &escalated.0),
        "genuine signature over a swapped payload",
    )
    .await;
    // The same forgery in a bearer header.
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::HeaderValue;
    let mut request = gw.ws_url().into_client_request().unwrap();
    let forged = jwt::with_swapped_payload(&genuine, &escalated.0);
    request.headers_mut().insert(
        "Authorization",
        HeaderValue::from_str(&format!("Bearer {forged}")).unwrap(),
    );
    let (mut client, _) = Client::connect_request(request).await.expect("upgrade");
    let (frames, code, _) = client.frames_until_close().await;
    assert!(frames.iter().all(|f| ty(f) != "welcome"), "{frames:?}");
    assert!(
        frames
            .iter()
            .any(|f| ty(f) == "error" && f["code"] == "unauthorized"),
        "{frames:?}"
    );
    assert_eq!(code, 4401);
    // The genuine token still works: the refusals above were about the forgery.
    connect(&gw, &genuine).await.ping_pong().await;
}

/// A token whose `exp` passed (well beyond the default 30 s leeway) is refused.
#[tokio::test]
async fn expired_token_is_refused_4401() {
    let gw = Gateway::start(&HS_ARGS);
    let token = Claims::user("u1", "acme").exp_in(-600).hs256();
    assert_token_refused(&gw, &token, "exp ten minutes ago").await;
}

/// A token whose `nbf` is in the future (beyond the leeway) is refused.
#[tokio::test]
async fn not_yet_valid_token_is_refused_4401() {
    let gw = Gateway::start(&HS_ARGS);
    let claims = Claims::user("u1", "acme").set("nbf", json!(jwt::now() + 600));
    assert_token_refused(&gw, &claims.hs256(), "nbf in ten minutes").await;
}

/// With `--jwt-issuer`, a token from another issuer, or with no `iss`, is refused.
#[tokio::test]
async fn wrong_or_missing_issuer_is_refused_4401() {
    let gw = hs_gateway_with_iss_aud();
    let wrong = good("u1", "acme").set("iss", json!("https://evil.test"));
    assert_token_refused(&gw, &wrong.hs256(), "iss of another issuer").await;
    let missing = good("u1", "acme").without("iss");
    assert_token_refused(&gw, &missing.hs256(), "no iss").await;
    // Control: the right issuer is welcomed.
    connect(&gw, &good("u1", "acme").hs256()).await;
}

/// With `--jwt-audience`, a token for another audience, or with no `aud`, is refused.
#[tokio::test]
async fn wrong_or_missing_audience_is_refused_4401() {
    let gw = hs_gateway_with_iss_aud();
    let wrong = good("u1", "acme").set("aud", json!("some-other-api"));
    assert_token_refused(&gw, &wrong.hs256(), "aud of another API").await;
    let wrong_list = good("u1", "acme").set("aud", json!(["x", "y"]));
    assert_token_refused(&gw, &wrong_list.hs256(), "aud list without ours").await;
    let missing = good("u1", "acme").without("aud");
    assert_token_refused(&gw, &missing.hs256(), "no aud").await;
}

/// An unsigned token (`alg: none`, and its case variants) is refused, by HS256 and
/// RS256 gateways alike.
#[tokio::test]
async fn alg_none_is_refused_4401() {
    let hs = Gateway::start(&HS_ARGS);
    let rs = rs_gateway();
    let claims = Claims::user("u1", "acme").roles(&["admin"]);
    for gw in [&hs, &rs] {
        assert_token_refused(gw, &claims.unsigned(), "alg none").await;
        for alg in ["None", "NONE", "nOnE"] {
            let header = json!({"alg": alg, "typ": "JWT"});
            let token = format!(
                "{}.{}.",
                jwt::b64(header.to_string().as_bytes()),
                jwt::b64(claims.0.to_string().as_bytes())
            );
            assert_token_refused(gw, &token, &format!("alg {alg}")).await;
        }
    }
}

/// HS/RS confusion: against a gateway configured with an RS256 public key, an HS256
/// token whose HMAC secret is that public key's PEM bytes is refused; so is an RS256
/// token signed by another RSA key, and an HS256 token on the shared secret.
#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused_4401() {
    let gw = rs_gateway();
    let claims = Claims::user("u1", "acme").roles(&["admin"]);
    let pem_file = std::fs::read(RSA_PUBLIC_PATH).unwrap();
    assert_token_refused(
        &gw,
        &claims.hs256_with(&pem_file),
        "HS256 keyed with the RSA public key PEM",
    )
    .await;
    assert_token_refused(
        &gw,
        &claims.hs256_with(RSA_PUBLIC.trim().as_bytes()),
        "HS256 keyed with the trimmed PEM",
    )
    .await;
    assert_token_refused(&gw, &claims.rs256_key2(None), "RS256 by another key").await;
    assert_token_refused(&gw, &claims.hs256(), "HS256 on a RS256 gateway").await;
    // Control: the right key is welcomed.
    connect(&gw, &claims.rs256(None)).await;
}

/// The algorithm is pinned to the configured key: HS384/HS512 tokens made with the
/// right secret, and RS512/PS256 tokens made with the right RSA key, are refused.
#[tokio::test]
async fn other_algorithms_with_the_right_key_are_refused_4401() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let hs = Gateway::start(&HS_ARGS);
    let rs = rs_gateway();
    let claims = Claims::user("u1", "acme").roles(&["admin"]).0;
    let secret = EncodingKey::from_secret(jwt::SECRET.as_bytes());
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let token = jsonwebtoken::encode(&Header::new(alg), &claims, &secret).unwrap();
        assert_token_refused(&hs, &token, &format!("{alg:?} with the HS256 secret")).await;
    }
    let rsa = EncodingKey::from_rsa_pem(jwt::RSA_PRIVATE.as_bytes()).unwrap();
    for alg in [Algorithm::RS512, Algorithm::PS256] {
        let token = jsonwebtoken::encode(&Header::new(alg), &claims, &rsa).unwrap();
        assert_token_refused(&rs, &token, &format!("{alg:?} with the RS256 key")).await;
    }
}

/// An org claim that is not a valid org id (`@`, spaces, `:`, empty, not a string)
/// is refused rather than mapped to some org.
#[tokio::test]
async fn invalid_org_claim_is_refused_4401() {
    let gw = Gateway::start(&HS_ARGS);
    for org in [
        json!("acme@x"),
        json!("acme x"),
        json!("org:acme"),
        json!(""),
        json!(42),
        json!(["acme"]),
    ] {
        let token = Claims::user("u1", "acme")
            .set("org_id", org.clone())
            .hs256();
        assert_token_refused(&gw, &token, &format!("org claim {org}")).await;
    }
}

/// `exp` and `sub` are required: a token without either is refused.
#[tokio::test]
async fn token_without_sub_or_exp_is_refused_4401() {
    let gw = Gateway::start(&HS_ARGS);
    let no_sub = Claims::user("u1", "acme").without("sub");
    assert_token_refused(&gw, &no_sub.hs256(), "no sub").await;
    let no_exp = Claims::user("u1", "acme").without("exp");
    assert_token_refused(&gw, &no_exp.hs256(), "no exp").await;
}

/// Garbage in `?token=` and an empty bearer token are refused, never anonymous, on a
/// gateway that allows anonymous connections.
#[tokio::test]
async fn garbage_tokens_are_refused_not_downgraded() {
    let gw = Gateway::start(&HS_ARGS);
    for token in ["x", "a.b.c", "e30.e30.", "....", "eyJhbGciOiJIUzI1NiJ9"] {
        assert_token_refused(&gw, token, &format!("token {token:?}")).await;
    }
    // Control: no token at all is anonymous.
    let anon = Client::connect(&gw.ws_url()).await;
    assert_eq!(anon.welcome["principal"]["anonymous"], true);
}

// ---- JWKS

/// JWKS rotation end to end: a token with kid k1 verifies; a token with a new kid k2
/// (another key) is refused while the JWKS lacks it, and welcomed once the JWKS is
/// swapped to the new key; the retired k1 is refused after that refetch; a k2 token
/// signed with the old key is refused.
#[tokio::test]
async fn jwks_rotation_accepts_the_new_kid_after_the_swap() {
    let server = JwksServer::start(jwt::jwks(vec![jwt::rsa_jwk(RSA_PUBLIC, "k1")]));
    let gw = Gateway::start(&[
        "--jwks-url",
        &server.url,
        "--insecure-jwks-http-for-tests",
        "--jwks-min-refresh",
        "1s",
    ]);
    let claims = Claims::user("u-rot", "acme").groups(&["g"]);

    let client = connect(&gw, &claims.rs256(Some("k1"))).await;
    assert_principal(&client.welcome, "u-rot", "acme", &["g"], &[]);

    let new_token = claims.rs256_key2(Some("k2"));
    assert_token_refused(&gw, &new_token, "k2 before the JWKS has it").await;

    server.set(jwt::jwks(vec![jwt::rsa_jwk(RSA2_PUBLIC, "k2")]));
    // Past the min refresh interval since the refusal above refetched.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (rotated, refused) = connect_eventually(&gw, &new_token).await;
    assert_principal(&rotated.welcome, "u-rot", "acme", &["g"], &[]);
    assert!(
        refused <= 5,
        "k2 took {refused} refused attempts after the swap and the min refresh (1s)"
    );
    assert!(server.fetches() >= 2, "the JWKS was refetched");

    // The set now in use is {k2}: a k2-labelled token signed with the old key is a
    // forgery, and k1 (retired) no longer verifies.
    assert_token_refused(
        &gw,
        &claims.rs256(Some("k2")),
        "kid k2, signed by the old key",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await; // past the min refresh interval
    assert_token_refused(&gw, &claims.rs256(Some("k1")), "retired kid k1").await;
}

// ---- token lifetime on a connection

/// A token that expires ~2 s after the handshake: the connection works, then gets
/// `error` `token_expired` and close 4401 once `exp` passes (leeway 0).
#[tokio::test]
async fn connection_is_closed_4401_when_its_token_expires() {
    let gw = Gateway::start(&[HS_ARGS[0], HS_ARGS[1], "--jwt-leeway", "0s"]);
    let claims = Claims::user("u1", "acme").exp_in(2);
    let exp = claims.exp() as f64;
    let mut client = connect(&gw, &claims.hs256()).await;
    client.ping_pong().await;
    let (frames, code, _) = client.frames_until_close().await;
    let closed_at = now_f64();
    assert!(
        frames
            .iter()
            .any(|f| ty(f) == "error" && f["code"] == "token_expired"),
        "expected error token_expired, got {frames:?}"
    );
    assert_eq!(code, 4401);
    assert!(
        closed_at >= exp - 0.5,
        "closed {:.2}s before exp",
        exp - closed_at
    );
    assert!(
        closed_at <= exp + 5.0,
        "closed {:.2}s after exp",
        closed_at - exp
    );
}

/// `auth.refresh` before `exp` with a token of the same sub and org and a later `exp`
/// is answered `auth.refreshed` with that `expires_at`, and the connection survives
/// past the first token's `exp`.
#[tokio::test]
async fn refresh_before_exp_keeps_the_connection_open() {
    let gw = Gateway::start(&[HS_ARGS[0], HS_ARGS[1], "--jwt-leeway", "0s"]);
    let first = Claims::user("u1", "acme").exp_in(2);
    let first_exp = first.exp();
    let mut client = connect(&gw, &first.hs256()).await;
    let second = Claims::user("u1", "acme").exp_in(600);
    let reply = client
        .request("auth.refresh", json!({"token": second.hs256()}))
        .await;
    assert_eq!(ty(&reply), "auth.refreshed", "{reply}");
    assert_eq!(reply["expires_at"], json!(second.exp()), "{reply}");
    // Wait until well past the first exp: nothing may arrive (no token_expired).
    let until = (first_exp as f64 + 1.5 - now_f64()).max(0.0);
    let frame = client
        .next_frame_within(Duration::from_secs_f64(until))
        .await;
    assert!(
        frame.is_none(),
        "nothing expected past the first exp, got {frame:?}"
    );
    client.ping_pong().await;
}

/// `auth.refresh` with a token of another `sub`, or of the same sub in another org, is
/// `forbidden`; one that does not verify is `unauthorized`; in every case the
/// connection stays open with its current identity.
#[tokio::test]
async fn refresh_with_another_identity_or_a_bad_token_is_refused_and_connection_stays() {
    let gw = Gateway::start(&HS_ARGS);
    let mut client = connect(&gw, &Claims::user("u1", "acme").hs256()).await;
    for (token, code, why) in [
        (
            Claims::user("u2", "acme").hs256(),
            "forbidden",
            "another sub",
        ),
        (
            Claims::user("u1", "globex").hs256(),
            "forbidden",
            "same sub, another org",
        ),
        (
            Claims::user("u1", "acme").hs256_with(b"not-the-secret-not-the-secret!!"),
            "unauthorized",
            "bad signature",
        ),
        (
            Claims::user("u1", "acme").exp_in(-600).hs256(),
            "unauthorized",
            "expired",
        ),
        (
            Claims::user("u1", "acme").unsigned(),
            "unauthorized",
            "alg none",
        ),
    ] {
        let reply = client
            .request("auth.refresh", json!({"token": token}))
            .await;
        assert_eq!(ty(&reply), "error", "{why}: {reply}");
        assert_eq!(reply["code"], code, "{why}: {reply}");
        client.ping_pong().await;
    }
    // Still u1 of acme: it can create a session and a fresh refresh of itself works.
    client.create_session().await;
    let reply = client
        .request(
            "auth.refresh",
            json!({"token": Claims::user("u1", "acme").exp_in(900).hs256()}),
        )
        .await;
    assert_eq!(ty(&reply), "auth.refreshed", "{reply}");
}

/// A refused refresh (another sub) does not extend the current token: the connection
/// still closes with `token_expired` when the original `exp` passes.
#[tokio::test]
async fn refused_refresh_does_not_extend_the_token() {
    let gw = Gateway::start(&[HS_ARGS[0], HS_ARGS[1], "--jwt-leeway", "0s"]);
    let mut client = connect(&gw, &Claims::user("u1", "acme").exp_in(2).hs256()).await;
    let other = Claims::user("u2", "acme").exp_in(600).hs256();
    let reply = client
        .request("auth.refresh", json!({"token": other}))
        .await;
    assert_eq!(reply["code"], "forbidden", "{reply}");
    let (frames, code, _) = client.frames_until_close().await;
    assert!(
        frames
            .iter()
            .any(|f| ty(f) == "error" && f["code"] == "token_expired"),
        "{frames:?}"
    );
    assert_eq!(code, 4401);
}

/// `auth.refresh` replaces access: a connection whose refreshed token drops the
/// `operator` role can no longer join another user's session (`not_found`), while it
/// could before.
#[tokio::test]
async fn refresh_that_drops_a_role_revokes_the_access_it_gave() {
    let gw = Gateway::start(&HS_ARGS);
    let mut owner = connect(&gw, &Claims::user("u-owner", "acme").hs256()).await;
    let s1 = owner.create_session().await;
    let s2 = owner.create_session().await;
    let mut op = connect(
        &gw,
        &Claims::user("u-op", "acme").roles(&["operator"]).hs256(),
    )
    .await;
    op.join(&s1.id, None, None).await;
    let reply = op
        .request(
            "auth.refresh",
            json!({"token": Claims::user("u-op", "acme").exp_in(900).hs256()}),
        )
        .await;
    assert_eq!(ty(&reply), "auth.refreshed", "{reply}");
    let refused = op.join_reply(&s2.id, None, None).await;
    assert_eq!(ty(&refused), "error", "{refused}");
    assert_eq!(refused["code"], "not_found", "{refused}");
}

/// An anonymous connection cannot become a user with `auth.refresh`: a valid token
/// (even with role admin) is `forbidden` and the connection stays anonymous (it still
/// cannot join a user's session).
#[tokio::test]
async fn anonymous_connection_cannot_refresh_into_a_user() {
    let gw = Gateway::start(&HS_ARGS);
    let mut owner = connect(&gw, &Claims::user("u-owner", "default").hs256()).await;
    let s = owner.create_session().await;
    let mut anon = Client::connect(&gw.ws_url()).await;
    let token = Claims::user("u-adm", "default")
        .roles(&["admin", "operator"])
        .hs256();
    let reply = anon.request("auth.refresh", json!({"token": token})).await;
    assert_eq!(ty(&reply), "error", "{reply}");
    assert_eq!(reply["code"], "forbidden", "{reply}");
    let join = anon.join_reply(&s.id, None, None).await;
    assert_eq!(join["code"], "not_found", "still anonymous: {join}");
}

/// Credentials never reach the gateway's log: not the HS256 secret, not the publisher
/// or admin keys, not a token (valid or forged) sent in `?token=`, a bearer header or
/// `auth.refresh`, not a wrong key tried on `/v1`.
#[tokio::test]
async fn secrets_and_tokens_never_appear_in_the_log() {
    use support::http::{ADMIN_KEYS, ADMIN_SECRET, Api, PUBLISHER_KEYS, PUBLISHER_SECRET};
    let gw = Gateway::start(&[
        HS_ARGS[0],
        HS_ARGS[1],
        "--publisher-keys",
        PUBLISHER_KEYS,
        "--admin-keys",
        ADMIN_KEYS,
    ]);
    let api = Api::new(&gw);
    let valid = Claims::user("u1", "acme").hs256();
    let forged = Claims::user("u1", "acme").hs256_with(b"forged-forged-forged-forged-forged!");
    let refreshed = Claims::user("u1", "acme").exp_in(900).hs256();
    let mut client = connect(&gw, &valid).await;
    let reply = client
        .request("auth.refresh", json!({"token": refreshed}))
        .await;
    assert_eq!(ty(&reply), "auth.refreshed", "{reply}");
    let reply = client
        .request("auth.refresh", json!({"token": forged}))
        .await;
    assert_eq!(reply["code"], "unauthorized", "{reply}");
    connect_bearer(&gw, &valid).await;
    assert_token_refused(&gw, &forged, "forged").await;
    let wrong_key = "wrong-key-0123456789-abcdefghij";
    for cred in [PUBLISHER_SECRET, ADMIN_SECRET, wrong_key, forged.as_str()] {
        api.publish(
            Some(cred),
            &json!({"target": {"org": "acme"}, "name": "n", "data": {}}),
        )
        .await;
    }
    let log = gw.log_tail(10_000);
    let signature = |t: &str| t.rsplit('.').next().unwrap().to_string();
    for (secret, what) in [
        (jwt::SECRET.to_string(), "the HS256 secret"),
        (PUBLISHER_SECRET.to_string(), "the publisher key"),
        (ADMIN_SECRET.to_string(), "the admin key"),
        (wrong_key.to_string(), "a wrong key"),
        (signature(&valid), "a valid token"),
        (signature(&forged), "a forged token"),
        (signature(&refreshed), "a refresh token"),
    ] {
        assert!(!log.contains(&secret), "{what} appears in the log:\n{log}");
    }
}

/// Even with `RUST_LOG=debug`, a token sent in `?token=` (the browser way) is not
/// written to the log: request logging must not record the query string verbatim.
#[tokio::test]
async fn query_tokens_never_appear_in_the_debug_log() {
    let gw = Gateway::start_with_env(&HS_ARGS, &[("RUST_LOG", "debug")]);
    let valid = Claims::user("u1", "acme").hs256();
    let forged = Claims::user("u1", "acme").hs256_with(b"forged-forged-forged-forged-forged!");
    connect(&gw, &valid).await.ping_pong().await;
    assert_token_refused(&gw, &forged, "forged").await;
    let log = gw.log_tail(10_000);
    for (token, what) in [(&valid, "a valid token"), (&forged, "a forged token")] {
        let signature = token.rsplit('.').next().unwrap();
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(signature)).collect();
        assert!(
            lines.is_empty(),
            "{what} appears in the debug log:\n{}",
            lines.join("\n")
        );
    }
}
