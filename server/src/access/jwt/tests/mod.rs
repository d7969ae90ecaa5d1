//! Tests of JWT verification, grouped by the part they exercise. Tokens are signed
//! with the fixture keys in `server/tests/fixtures/jwt`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use rsa::pkcs8::DecodePublicKey as _;
use rsa::traits::PublicKeyParts as _;
use serde_json::{Value, json};

use super::{JwtSettings, JwtVerifier, TokenError, VerifiedToken};

mod claims;
mod jwks;
mod key_set;
mod keys;
mod settings;
mod verify;

/// A key file of `server/tests/fixtures/jwt`, found from the crate root so the tests
/// do not depend on where this module sits.
macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/jwt/",
            $name
        ))
    };
}

const RSA_PRIVATE: &str = fixture!("rsa_private.pem");
const RSA_PUBLIC: &str = fixture!("rsa_public.pem");
const RSA2_PRIVATE: &str = fixture!("rsa2_private.pem");
const RSA2_PUBLIC: &str = fixture!("rsa2_public.pem");
const EC_PRIVATE: &str = fixture!("ec_private.pem");
const EC_PUBLIC: &str = fixture!("ec_public.pem");
const ED_PRIVATE: &str = fixture!("ed25519_private.pem");
const ED_PUBLIC: &str = fixture!("ed25519_public.pem");

const SECRET: &str = "test-secret-that-must-never-leak-0123456789abcdef";

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// `sub` u1 and `exp` in ten minutes, plus `extra` (a `null` removes a claim).
fn claims(extra: Value) -> Value {
    let mut base = json!({"sub": "u1", "exp": now() + 600});
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn rsa_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap()
}
fn rsa2_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(RSA2_PRIVATE.as_bytes()).unwrap()
}
fn ec_key() -> EncodingKey {
    EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap()
}
fn ed_key() -> EncodingKey {
    EncodingKey::from_ed_pem(ED_PRIVATE.as_bytes()).unwrap()
}
fn hs_key() -> EncodingKey {
    EncodingKey::from_secret(SECRET.as_bytes())
}

fn hs_settings() -> JwtSettings {
    JwtSettings {
        hs256_secret: Some(SECRET.to_string()),
        ..JwtSettings::default()
    }
}
fn pem_settings(pem: &str, alg: &str) -> JwtSettings {
    JwtSettings {
        public_key_pem: Some(pem.to_string()),
        public_key_algorithm: Some(alg.to_string()),
        ..JwtSettings::default()
    }
}

async fn verifier(settings: JwtSettings) -> JwtVerifier {
    JwtVerifier::new(settings).await.unwrap().unwrap()
}

async fn config_error(settings: JwtSettings) -> String {
    match JwtVerifier::new(settings).await {
        Err(e) => e.to_string(),
        Ok(v) => panic!("expected a configuration error, got {v:?}"),
    }
}

fn refused(result: Result<VerifiedToken, TokenError>) -> String {
    match result {
        Err(TokenError::Invalid(message)) => message,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn rsa_jwk(public_pem: &str, kid: Option<&str>, alg: Option<&str>) -> Value {
    let key = rsa::RsaPublicKey::from_public_key_pem(public_pem).unwrap();
    let mut jwk = json!({
        "kty": "RSA",
        "use": "sig",
        "n": b64(&key.n().to_bytes_be()),
        "e": b64(&key.e().to_bytes_be()),
    });
    if let Some(kid) = kid {
        jwk["kid"] = json!(kid);
    }
    if let Some(alg) = alg {
        jwk["alg"] = json!(alg);
    }
    jwk
}

fn ec_jwk(kid: &str) -> Value {
    let key = DecodingKey::from_ec_pem(EC_PUBLIC.as_bytes()).unwrap();
    let point = key.as_bytes();
    assert_eq!(point.len(), 65, "an uncompressed P-256 point");
    json!({"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256",
           "x": b64(&point[1..33]), "y": b64(&point[33..])})
}

fn ed_jwk(kid: &str) -> Value {
    let key = DecodingKey::from_ed_pem(ED_PUBLIC.as_bytes()).unwrap();
    json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA",
           "x": b64(key.as_bytes())})
}

fn jwks(keys: Vec<Value>) -> String {
    json!({ "keys": keys }).to_string()
}

fn unsigned_token(alg: &str, claims: &Value) -> String {
    let header = json!({"alg": alg, "typ": "JWT"});
    format!(
        "{}.{}.",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}
