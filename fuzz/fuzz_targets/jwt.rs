//! A bearer token, through the server's JWT verification (`JwtVerifier::verify`,
//! server/src/access/jwt): header, key choice, signature, registered claims and the
//! principal the claims name.
//!
//! Input: one mode byte, then either a raw token (mode bit 0 clear), or a header and
//! claims JSON separated by a NUL byte, which the target encodes and signs with the
//! verifier's HS256 secret (bit 0 set) so that the claims are reached past the
//! signature check. Bit 1 picks a verifier that also requires an issuer and an
//! audience.
//!
//! Properties: verification never panics; a refusal's message never repeats a
//! token-shaped input; a raw token verifies only if its signature is the secret's
//! HMAC of its first two parts; a verified token names a non-empty user and org, and
//! a trimmed display name within the limit.

#![no_main]

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use switchboard::access::jwt::{JwtSettings, JwtVerifier, TokenError, VerifiedToken};

const SECRET: &str = "fuzzing-secret-0123456789abcdef-0123456789";

struct Fixture {
    runtime: tokio::runtime::Runtime,
    plain: JwtVerifier,
    strict: JwtVerifier,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let verifier = |issuer: Option<&str>, audience: Option<&str>| {
            let settings = JwtSettings {
                hs256_secret: Some(SECRET.into()),
                issuer: issuer.map(str::to_string),
                audience: audience.map(str::to_string),
                ..JwtSettings::default()
            };
            runtime
                .block_on(JwtVerifier::new(settings))
                .expect("the settings are valid")
                .expect("a key source is configured")
        };
        let plain = verifier(None, None);
        let strict = verifier(Some("https://idp.example"), Some("switchboard"));
        Fixture {
            runtime,
            plain,
            strict,
        }
    })
}

fn hmac(signing_input: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(signing_input.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn check_verified(token: &VerifiedToken) {
    let principal = &token.principal;
    assert!(!principal.anonymous, "a token made an anonymous principal");
    assert!(
        principal.user_id.as_deref().is_some_and(|u| !u.is_empty()),
        "a verified token without a user: {principal:?}"
    );
    assert!(
        !principal.org_id.is_empty(),
        "a verified token without an org"
    );
    if let Some(name) = &principal.name {
        assert!(
            !name.is_empty() && name.trim() == name,
            "untrimmed name {name:?}"
        );
        assert!(name.chars().count() <= 80, "name over the limit");
    }
}

fn check_refused(error: &TokenError, token: &str) {
    let message = error.to_string();
    assert!(!message.is_empty(), "a refusal without a message");
    // Only a token shaped like one (three parts, long enough) counts: a shorter text
    // may be a piece of the message's own wording.
    let shaped = token.len() >= 16 && token.split('.').count() == 3;
    assert!(
        !shaped || !message.contains(token),
        "a refusal repeats the token: {message}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let signed = mode & 1 == 1;
    let token = if signed {
        let split = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        let (header, claims) = rest.split_at(split);
        let claims = claims.get(1..).unwrap_or_default();
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let signature = URL_SAFE_NO_PAD.encode(hmac(&signing_input));
        format!("{signing_input}.{signature}")
    } else {
        // A token arrives as header or query text.
        let Ok(text) = std::str::from_utf8(rest) else {
            return;
        };
        text.to_string()
    };
    let fixture = fixture();
    let verifier = if mode & 2 == 2 {
        &fixture.strict
    } else {
        &fixture.plain
    };
    match fixture.runtime.block_on(verifier.verify(&token)) {
        Ok(verified) => {
            check_verified(&verified);
            if !signed {
                let mut parts = token.rsplitn(2, '.');
                let signature = parts.next().unwrap_or_default();
                let signing_input = parts.next().unwrap_or_default();
                assert_eq!(
                    URL_SAFE_NO_PAD.decode(signature).ok(),
                    Some(hmac(signing_input)),
                    "a token verified without the secret's signature"
                );
            }
        }
        Err(error) => check_refused(&error, &token),
    }
});
