//! Configuration errors: every message names the setting and holds no secret.

use std::time::Duration;

use super::*;

#[tokio::test]
async fn no_key_source_means_no_verifier() {
    assert!(
        JwtVerifier::new(JwtSettings::default())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn config_errors_name_the_setting() {
    let message = config_error(JwtSettings {
        hs256_secret: Some(SECRET.into()),
        public_key_pem: Some(RSA_PUBLIC.into()),
        public_key_algorithm: Some("RS256".into()),
        ..JwtSettings::default()
    })
    .await;
    assert!(
        message.contains("--jwt-hs256-secret") && message.contains("--jwt-public-key-file"),
        "{message}"
    );
    assert!(message.contains("only one JWT key source"), "{message}");
    assert!(
        !message.contains(SECRET) && !message.contains("BEGIN"),
        "{message}"
    );

    let message = config_error(JwtSettings {
        jwks_json: Some(jwks(vec![ec_jwk("a")])),
        jwks_url: Some("https://idp.example/jwks.json".into()),
        ..JwtSettings::default()
    })
    .await;
    assert!(
        message.contains("--jwks-file") && message.contains("--jwks-url"),
        "{message}"
    );

    let message = config_error(pem_settings(
        "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n",
        "RS256",
    ))
    .await;
    assert!(message.contains("--jwt-public-key-file"), "{message}");
    // A valid PEM of the wrong type for the algorithm.
    let message = config_error(pem_settings(EC_PUBLIC, "RS256")).await;
    assert!(
        message.contains("--jwt-public-key-file") && message.contains("RSA"),
        "{message}"
    );
    let message = config_error(pem_settings(RSA_PUBLIC, "EdDSA")).await;
    assert!(message.contains("Ed25519"), "{message}");
    let message = config_error(pem_settings(RSA_PRIVATE, "RS256")).await;
    assert!(message.contains("private key"), "{message}");
    assert!(!message.contains("BEGIN"), "{message}");

    let message = config_error(JwtSettings {
        public_key_pem: Some(RSA_PUBLIC.into()),
        ..JwtSettings::default()
    })
    .await;
    assert!(
        message.contains("--jwt-algorithm") && message.contains("required"),
        "{message}"
    );
    let message = config_error(pem_settings(RSA_PUBLIC, "RS999")).await;
    assert!(
        message.contains("--jwt-algorithm") && message.contains("RS999"),
        "{message}"
    );
    let message = config_error(pem_settings(RSA_PUBLIC, "HS256")).await;
    assert!(message.contains("--jwt-algorithm"), "{message}");
    let message = config_error(JwtSettings {
        public_key_algorithm: Some("RS256".into()),
        ..JwtSettings::default()
    })
    .await;
    assert!(message.contains("--jwt-algorithm"), "{message}");

    for document in [
        "{",
        "[]",
        r#"{"keys": []}"#,
        r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#,
    ] {
        let message = config_error(JwtSettings {
            jwks_json: Some(document.into()),
            ..JwtSettings::default()
        })
        .await;
        assert!(message.contains("--jwks-file"), "{document}: {message}");
    }
    let message = config_error(JwtSettings {
        hs256_secret: Some(String::new()),
        ..JwtSettings::default()
    })
    .await;
    assert!(
        message.contains("--jwt-hs256-secret") && message.contains("SWITCHBOARD_JWT_HS256_SECRET"),
        "{message}"
    );
    let message = config_error(JwtSettings {
        jwks_url: Some("ftp://idp.example/jwks".into()),
        ..JwtSettings::default()
    })
    .await;
    assert!(message.contains("--jwks-url"), "{message}");
}

/// An HS256 secret under 32 bytes is refused at boot (it can be guessed offline from
/// any token it signed); 32 bytes are enough. The message never holds the secret.
#[tokio::test]
async fn a_short_hs256_secret_is_refused_at_boot() {
    let short = "a-secret-of-31-bytes-0123456789";
    assert_eq!(short.len(), 31);
    let message = config_error(JwtSettings {
        hs256_secret: Some(short.into()),
        ..JwtSettings::default()
    })
    .await;
    assert!(
        message.contains("--jwt-hs256-secret") && message.contains("at least 32"),
        "{message}"
    );
    assert!(!message.contains(short), "{message}");
    let enough = format!("{short}x");
    assert!(
        JwtVerifier::new(JwtSettings {
            hs256_secret: Some(enough),
            ..JwtSettings::default()
        })
        .await
        .unwrap()
        .is_some()
    );
}

/// `--jwks-min-refresh` under 1 s (0 included) is refused at boot: refetches caused
/// by made-up key ids would otherwise be unbounded.
#[tokio::test]
async fn a_jwks_min_refresh_under_one_second_is_refused() {
    for interval in [Duration::ZERO, Duration::from_millis(999)] {
        let message = config_error(JwtSettings {
            jwks_url: Some("https://idp.example/jwks.json".into()),
            jwks_min_refresh_interval: interval,
            ..JwtSettings::default()
        })
        .await;
        assert!(
            message.contains("--jwks-min-refresh") && message.contains("at least 1s"),
            "{interval:?}: {message}"
        );
    }
}
