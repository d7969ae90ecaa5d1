//! Each kind of trusted key, and its algorithm pinned to it.

use super::*;

#[tokio::test]
async fn rs256_happy_path() {
    let v = verifier(pem_settings(RSA_PUBLIC, "RS256")).await;
    let token = sign(
        Algorithm::RS256,
        None,
        &rsa_key(),
        &claims(json!({"org_id": "acme", "roles": ["admin"]})),
    );
    let p = v.verify(&token).await.unwrap().principal;
    assert_eq!(
        (p.user_id.as_deref(), p.org_id.as_str()),
        (Some("u1"), "acme")
    );
    assert_eq!(p.roles, vec!["admin"]);
    assert_eq!(v.describe(), "RS256 public key");
}

#[tokio::test]
async fn es256_happy_path() {
    let v = verifier(pem_settings(EC_PUBLIC, "ES256")).await;
    let token = sign(
        Algorithm::ES256,
        None,
        &ec_key(),
        &claims(json!({"org_id": "acme"})),
    );
    let p = v.verify(&token).await.unwrap().principal;
    assert_eq!(p.org_id, "acme");
}

#[tokio::test]
async fn eddsa_happy_path() {
    // The algorithm name is matched without regard to case.
    let v = verifier(pem_settings(ED_PUBLIC, "eddsa")).await;
    let token = sign(
        Algorithm::EdDSA,
        None,
        &ed_key(),
        &claims(json!({"groups": "g1"})),
    );
    let p = v.verify(&token).await.unwrap().principal;
    assert_eq!(p.groups, vec!["g1"]);
    assert_eq!(p.org_id, "default");
}

#[tokio::test]
async fn forged_signature_is_refused() {
    let c = claims(json!({}));
    let v = verifier(hs_settings()).await;
    let token = sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(b"another secret"),
        &c,
    );
    assert!(refused(v.verify(&token).await).contains("signature does not verify"));

    let v = verifier(pem_settings(RSA_PUBLIC, "RS256")).await;
    let token = sign(Algorithm::RS256, None, &rsa2_key(), &c);
    assert!(refused(v.verify(&token).await).contains("signature does not verify"));

    // A genuine token whose claims were changed afterwards.
    let token = sign(Algorithm::RS256, None, &rsa_key(), &c);
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    parts[1] = b64(claims(json!({"sub": "admin"})).to_string().as_bytes());
    assert!(refused(v.verify(&parts.join(".")).await).contains("signature does not verify"));

    for (settings, alg, key) in [
        (pem_settings(EC_PUBLIC, "ES256"), Algorithm::ES256, ec_key()),
        (pem_settings(ED_PUBLIC, "EdDSA"), Algorithm::EdDSA, ed_key()),
        (hs_settings(), Algorithm::HS256, hs_key()),
    ] {
        let v = verifier(settings).await;
        let token = sign(alg, None, &key, &c);
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        parts[1] = b64(claims(json!({"roles": ["admin"]})).to_string().as_bytes());
        let message = refused(v.verify(&parts.join(".")).await);
        assert!(message.contains("signature does not verify"), "{message}");
    }
}

#[tokio::test]
async fn alg_none_is_refused() {
    let c = claims(json!({}));
    for settings in [
        hs_settings(),
        pem_settings(RSA_PUBLIC, "RS256"),
        JwtSettings {
            jwks_json: Some(jwks(vec![ed_jwk("k1")])),
            ..JwtSettings::default()
        },
    ] {
        let v = verifier(settings).await;
        for alg in ["none", "None", "NONE"] {
            let token = unsigned_token(alg, &c);
            let message = refused(v.verify(&token).await);
            assert!(
                message.contains(&format!(
                    "uses algorithm `{alg}` but this gateway only accepts"
                )),
                "{message}"
            );
            // With a signature attached, still refused.
            let with_signature = format!("{token}c2ln");
            assert!(v.verify(&with_signature).await.is_err());
        }
    }
}

#[tokio::test]
async fn hs256_token_signed_with_the_rs256_public_key_is_refused() {
    let v = verifier(pem_settings(RSA_PUBLIC, "RS256")).await;
    let c = claims(json!({}));
    for secret in [RSA_PUBLIC, RSA_PUBLIC.trim()] {
        let token = sign(
            Algorithm::HS256,
            None,
            &EncodingKey::from_secret(secret.as_bytes()),
            &c,
        );
        let message = refused(v.verify(&token).await);
        assert_eq!(
            message,
            "the token uses algorithm HS256 but this gateway only accepts RS256"
        );
    }
    // And the other way round: an RS256 token to an HS256 gateway.
    let v = verifier(hs_settings()).await;
    let token = sign(Algorithm::RS256, None, &rsa_key(), &c);
    assert!(refused(v.verify(&token).await).contains("only accepts HS256"));
    // ES256 gateway, EdDSA token.
    let v = verifier(pem_settings(EC_PUBLIC, "ES256")).await;
    let token = sign(Algorithm::EdDSA, None, &ed_key(), &c);
    assert!(refused(v.verify(&token).await).contains("only accepts ES256"));
}
