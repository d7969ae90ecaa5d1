//! The principal derived from the claims.

use switchboard_protocol::Principal;

use super::*;

#[tokio::test]
async fn hs256_happy_path_with_default_claim_names() {
    let v = verifier(hs_settings()).await;
    let exp = now() + 600;
    let token = sign(
        Algorithm::HS256,
        None,
        &hs_key(),
        &json!({"sub": "u1", "exp": exp, "org_id": "acme",
                "groups": ["support", "sales"], "roles": ["operator"]}),
    );
    let verified = v.verify(&token).await.unwrap();
    assert_eq!(
        verified,
        VerifiedToken {
            principal: Principal {
                user_id: Some("u1".into()),
                org_id: "acme".into(),
                groups: vec!["support".into(), "sales".into()],
                roles: vec!["operator".into()],
                anonymous: false,
                name: None,
            },
            expires_at: exp,
        }
    );
    assert_eq!(v.describe(), "HS256 shared secret");
}

#[tokio::test]
async fn custom_claim_names_single_strings_and_default_org() {
    let v = verifier(JwtSettings {
        org_claim: "tenant".into(),
        groups_claim: "teams".into(),
        roles_claim: "permissions".into(),
        default_org: "fallback-org".into(),
        ..hs_settings()
    })
    .await;
    let token = sign(
        Algorithm::HS256,
        None,
        &hs_key(),
        &claims(
            json!({"tenant": "acme", "teams": ["a", "b"], "permissions": "admin",
                       "org_id": "ignored", "groups": ["ignored"]}),
        ),
    );
    let p = v.verify(&token).await.unwrap().principal;
    assert_eq!(p.org_id, "acme");
    assert_eq!(p.groups, vec!["a", "b"]);
    assert_eq!(p.roles, vec!["admin"]);
    assert!(!p.anonymous);

    // No org, groups or roles claim: the default org, no groups, no roles.
    let token = sign(Algorithm::HS256, None, &hs_key(), &claims(json!({})));
    let p = v.verify(&token).await.unwrap().principal;
    assert_eq!(p.org_id, "fallback-org");
    assert!(p.groups.is_empty() && p.roles.is_empty());
    assert_eq!(p.user_id.as_deref(), Some("u1"));
}

#[tokio::test]
async fn claims_of_the_wrong_shape_are_refused() {
    let v = verifier(hs_settings()).await;
    for (extra, needle) in [
        (json!({"org_id": 42}), "`org_id`"),
        (json!({"org_id": ""}), "`org_id`"),
        (json!({"groups": [1, 2]}), "`groups`"),
        (json!({"roles": {"a": 1}}), "`roles`"),
        (json!({"sub": 7}), "`sub`"),
        (json!({"sub": ""}), "`sub`"),
        (json!({"sub": null}), "`sub`"),
        (json!({"name": ["Dana"]}), "`name`"),
    ] {
        let token = sign(Algorithm::HS256, None, &hs_key(), &claims(extra.clone()));
        let message = refused(v.verify(&token).await);
        assert!(message.contains(needle), "{extra}: {message}");
    }
}

#[tokio::test]
async fn the_name_claim_is_the_display_name_trimmed_and_cut() {
    let v = verifier(hs_settings()).await;
    let named = |name: serde_json::Value| {
        sign(
            Algorithm::HS256,
            None,
            &hs_key(),
            &claims(json!({"name": name})),
        )
    };
    let p = v
        .verify(&named(json!("  Dana Scully ")))
        .await
        .unwrap()
        .principal;
    assert_eq!(p.name.as_deref(), Some("Dana Scully"));
    let p = v
        .verify(&named(json!("x".repeat(200))))
        .await
        .unwrap()
        .principal;
    assert_eq!(p.name.map(|n| n.chars().count()), Some(80));
    let p = v.verify(&named(json!("   "))).await.unwrap().principal;
    assert_eq!(p.name, None);
}

/// Found by the `jwt` fuzz target (docs/testing.md): a long name cut at 80 characters
/// just after a space kept that space.
#[tokio::test]
async fn a_name_cut_at_a_space_is_trimmed_again() {
    let v = verifier(hs_settings()).await;
    let name = format!("{} tail", "x".repeat(79));
    let token = sign(
        Algorithm::HS256,
        None,
        &hs_key(),
        &claims(json!({"name": name})),
    );
    let p = v.verify(&token).await.unwrap().principal;
    assert_eq!(p.name, Some("x".repeat(79)));
}
