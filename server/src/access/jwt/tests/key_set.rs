//! JWKS documents: usable keys, picking by `kid`, algorithms pinned per key.

use super::*;

#[tokio::test]
async fn jwks_file_happy_path_picks_keys_by_kid() {
    let document = jwks(vec![
        rsa_jwk(RSA_PUBLIC, Some("rsa-1"), Some("RS256")),
        ec_jwk("ec-1"),
        ed_jwk("ed-1"),
        // A key without `alg`: RS256, implied by its type.
        rsa_jwk(RSA2_PUBLIC, Some("rsa-2"), None),
        // Keys this gateway cannot use are skipped, not fatal.
        json!({"kty": "oct", "kid": "sym", "k": "c2VjcmV0"}),
        json!({"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"}),
    ]);
    let v = verifier(JwtSettings {
        jwks_json: Some(document),
        org_claim: "tenant".into(),
        ..JwtSettings::default()
    })
    .await;
    assert_eq!(v.describe(), "JWKS file (4 keys)");
    let c = claims(json!({"tenant": "acme"}));
    for (alg, kid, key) in [
        (Algorithm::RS256, "rsa-1", rsa_key()),
        (Algorithm::ES256, "ec-1", ec_key()),
        (Algorithm::EdDSA, "ed-1", ed_key()),
        (Algorithm::RS256, "rsa-2", rsa2_key()),
    ] {
        let token = sign(alg, Some(kid), &key, &c);
        let verified = v.verify(&token).await.unwrap();
        assert_eq!(verified.principal.org_id, "acme", "{kid}");
    }

    // The right kid, the wrong key: the signature does not verify.
    let token = sign(Algorithm::RS256, Some("rsa-1"), &rsa2_key(), &c);
    assert!(refused(v.verify(&token).await).contains("signature does not verify"));
    // An unknown kid, and no kid with several keys: refused.
    let token = sign(Algorithm::RS256, Some("nope"), &rsa_key(), &c);
    assert!(refused(v.verify(&token).await).contains("`nope` is not one of the keys"));
    let token = sign(Algorithm::RS256, None, &rsa_key(), &c);
    assert!(refused(v.verify(&token).await).contains("no `kid`"));
}

#[tokio::test]
async fn jwks_file_with_one_key_serves_tokens_without_kid() {
    let v = verifier(JwtSettings {
        jwks_json: Some(jwks(vec![ec_jwk("only")])),
        ..JwtSettings::default()
    })
    .await;
    let token = sign(Algorithm::ES256, None, &ec_key(), &claims(json!({})));
    assert!(v.verify(&token).await.is_ok());
}

#[tokio::test]
async fn jwks_key_algorithm_is_pinned() {
    let v = verifier(JwtSettings {
        jwks_json: Some(jwks(vec![
            rsa_jwk(RSA_PUBLIC, Some("declared"), Some("RS256")),
            rsa_jwk(RSA2_PUBLIC, Some("implied"), None),
        ])),
        ..JwtSettings::default()
    })
    .await;
    let c = claims(json!({}));
    // Same RSA key, another RSA algorithm: refused.
    let token = sign(Algorithm::RS384, Some("declared"), &rsa_key(), &c);
    let message = refused(v.verify(&token).await);
    assert!(
        message.contains("uses algorithm RS384 but this gateway only accepts RS256"),
        "{message}"
    );
    let token = sign(Algorithm::PS256, Some("implied"), &rsa2_key(), &c);
    let message = refused(v.verify(&token).await);
    assert!(
        message.contains("PS256") && message.contains("RS256"),
        "{message}"
    );
    // An HS256 token that names a JWKS key: refused.
    let token = sign(
        Algorithm::HS256,
        Some("declared"),
        &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()),
        &c,
    );
    assert!(refused(v.verify(&token).await).contains("HS256"));
}
