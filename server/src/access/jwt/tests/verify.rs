//! The registered claims, malformed tokens, and what refusals say.

use std::time::Duration;

use super::super::JwtConfigError;
use super::*;

#[test]
fn verifier_can_be_shared_across_tasks() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<JwtVerifier>();
    shareable::<TokenError>();
    shareable::<JwtConfigError>();
}

#[tokio::test]
async fn huge_leeway_is_capped_at_an_hour() {
    let v = verifier(JwtSettings {
        leeway: Duration::from_secs(u64::MAX / 2),
        ..hs_settings()
    })
    .await;
    let c = claims(json!({"exp": now() - 7200}));
    let token = sign(Algorithm::HS256, None, &hs_key(), &c);
    assert_eq!(v.verify(&token).await, Err(TokenError::Expired));
}

#[tokio::test]
async fn expired_token_is_refused_beyond_the_leeway() {
    let v = verifier(hs_settings()).await;
    let token = sign(
        Algorithm::HS256,
        None,
        &hs_key(),
        &claims(json!({"exp": now() - 3600})),
    );
    let error = v.verify(&token).await.unwrap_err();
    assert_eq!(error, TokenError::Expired);
    assert_eq!(error.to_string(), "the token expired");
    // Within the 30 s leeway: accepted.
    let token = sign(
        Algorithm::HS256,
        None,
        &hs_key(),
        &claims(json!({"exp": now() - 5})),
    );
    assert!(v.verify(&token).await.is_ok());
}

#[tokio::test]
async fn token_not_yet_valid_is_refused() {
    let v = verifier(hs_settings()).await;
    let token = sign(
        Algorithm::HS256,
        None,
        &hs_key(),
        &claims(json!({"nbf": now() + 3600})),
    );
    assert!(refused(v.verify(&token).await).contains("not valid yet"));
    let token = sign(
        Algorithm::HS256,
        None,
        &hs_key(),
        &claims(json!({"nbf": now() + 5})),
    );
    assert!(v.verify(&token).await.is_ok(), "within the leeway");
}

#[tokio::test]
async fn wrong_or_missing_issuer_is_refused() {
    let v = verifier(JwtSettings {
        issuer: Some("https://idp.example".into()),
        ..hs_settings()
    })
    .await;
    let token = sign(
        Algorithm::HS256,
        None,
        &hs_key(),
        &claims(json!({"iss": "https://evil.example"})),
    );
    let message = refused(v.verify(&token).await);
    assert!(
        message.contains("issuer") && message.contains("not the one this gateway trusts"),
        "{message}"
    );
    let token = sign(Algorithm::HS256, None, &hs_key(), &claims(json!({})));
    assert!(refused(v.verify(&token).await).contains("no `iss` claim"));
    let token = sign(
        Algorithm::HS256,
        None,
        &hs_key(),
        &claims(json!({"iss": "https://idp.example"})),
    );
    assert!(v.verify(&token).await.is_ok());
}

#[tokio::test]
async fn wrong_or_missing_audience_is_refused() {
    let v = verifier(JwtSettings {
        audience: Some("switchboard".into()),
        ..hs_settings()
    })
    .await;
    let token = sign(
        Algorithm::HS256,
        None,
        &hs_key(),
        &claims(json!({"aud": "other"})),
    );
    let message = refused(v.verify(&token).await);
    assert!(
        message.contains("audience (`aud`) does not include `switchboard`"),
        "{message}"
    );
    let token = sign(Algorithm::HS256, None, &hs_key(), &claims(json!({})));
    assert!(refused(v.verify(&token).await).contains("no `aud` claim"));
    for aud in [json!("switchboard"), json!(["other", "switchboard"])] {
        let token = sign(
            Algorithm::HS256,
            None,
            &hs_key(),
            &claims(json!({"aud": aud})),
        );
        assert!(v.verify(&token).await.is_ok());
    }
    // Without a configured audience, `aud` is not checked.
    let v = verifier(hs_settings()).await;
    let token = sign(
        Algorithm::HS256,
        None,
        &hs_key(),
        &claims(json!({"aud": "anything"})),
    );
    assert!(v.verify(&token).await.is_ok());
}

#[tokio::test]
async fn missing_exp_is_refused() {
    let v = verifier(hs_settings()).await;
    let token = sign(
        Algorithm::HS256,
        None,
        &hs_key(),
        &claims(json!({"exp": null})),
    );
    assert!(refused(v.verify(&token).await).contains("no `exp` claim"));
    let token = sign(
        Algorithm::HS256,
        None,
        &hs_key(),
        &claims(json!({"exp": "tomorrow"})),
    );
    assert!(refused(v.verify(&token).await).contains("`exp`"));
}

#[tokio::test]
async fn malformed_tokens_are_refused() {
    let v = verifier(hs_settings()).await;
    for token in ["", "abc", "a.b", "a.b.c.d", "!!.!!.!!", &"x".repeat(20_000)] {
        assert!(v.verify(token).await.is_err(), "{token}");
    }
    let header = b64(br#"{"alg":"HS256","crit":["exp"]}"#);
    let token = format!(
        "{header}.{}.sig",
        b64(claims(json!({})).to_string().as_bytes())
    );
    assert!(v.verify(&token).await.is_err());
}

#[tokio::test]
async fn no_message_contains_the_token_or_the_secret() {
    let v = verifier(JwtSettings {
        issuer: Some("iss-1".into()),
        audience: Some("aud-1".into()),
        ..hs_settings()
    })
    .await;
    let good = json!({"iss": "iss-1", "aud": "aud-1"});
    let mut tokens = vec![
        sign(
            Algorithm::HS256,
            None,
            &hs_key(),
            &claims(json!({"iss": "iss-1", "aud": "aud-1", "exp": now() - 999})),
        ),
        sign(
            Algorithm::HS256,
            None,
            &hs_key(),
            &claims(json!({"iss": "iss-2", "aud": "aud-1"})),
        ),
        sign(
            Algorithm::HS256,
            None,
            &hs_key(),
            &claims(json!({"iss": "iss-1", "aud": "aud-2"})),
        ),
        sign(
            Algorithm::HS256,
            None,
            &hs_key(),
            &claims(json!({"iss": "iss-1", "aud": "aud-1", "exp": null})),
        ),
        sign(
            Algorithm::HS256,
            None,
            &hs_key(),
            &claims(json!({"iss": "iss-1", "aud": "aud-1", "nbf": now() + 999})),
        ),
        sign(
            Algorithm::HS256,
            None,
            &EncodingKey::from_secret(b"wrong"),
            &claims(good.clone()),
        ),
        sign(
            Algorithm::RS256,
            Some("kid-1"),
            &rsa_key(),
            &claims(good.clone()),
        ),
        unsigned_token("none", &claims(good.clone())),
        format!(
            "{}.{}.{}",
            b64(SECRET.as_bytes()),
            b64(SECRET.as_bytes()),
            b64(SECRET.as_bytes())
        ),
    ];
    tokens.push(format!("{}x", tokens[0]));
    for token in &tokens {
        let error = v.verify(token).await.unwrap_err();
        for text in [error.to_string(), format!("{error:?}")] {
            assert!(!text.contains(SECRET), "{text}");
            for part in token.split('.').filter(|p| p.len() >= 8) {
                assert!(!text.contains(part), "{text} holds part of the token");
            }
        }
    }
    let debug = format!("{:?}", hs_settings());
    assert!(
        !debug.contains(SECRET) && debug.contains("<redacted>"),
        "{debug}"
    );
    let debug = format!("{v:?}");
    assert!(!debug.contains(SECRET), "{debug}");
    let debug = format!("{:?}", pem_settings(RSA_PUBLIC, "RS256"));
    assert!(!debug.contains("BEGIN"), "{debug}");
}
