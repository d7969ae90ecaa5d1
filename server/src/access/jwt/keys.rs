//! The keys a verifier trusts, each pinned to one algorithm, and the checks every key
//! passes when it is loaded.
//!
//! The algorithm is pinned to the key: the secret only verifies HS256, a PEM key only
//! the algorithm configured with it, a JWKS key only its own `alg` (or the one its key
//! type implies). A token whose header names any other algorithm, `none` included, is
//! refused, so an HS256 token "signed" with a public key's text fails.
//!
//! A key that cannot verify its algorithm (a PEM of the wrong type, a short RSA key, a
//! malformed point) is refused at boot, not at the first token.

use std::collections::BTreeSet;
use std::sync::Arc;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, Header};
use rsa::pkcs1::DecodeRsaPublicKey as _;
use rsa::traits::PublicKeyParts as _;

use super::jwks::RemoteJwks;
use super::key_set::{KeySet, pick_or_refuse};
use super::settings::{
    JwtConfigError, KeySource, SETTING_ALGORITHM, SETTING_HS256_SECRET, SETTING_JWKS_FILE,
    SETTING_PUBLIC_KEY_FILE,
};
use super::verify::TokenError;

/// RSA keys shorter than this are refused.
const MIN_RSA_BITS: usize = 2048;

/// One key the gateway trusts, pinned to one algorithm.
pub(super) struct TrustedKey {
    pub(super) kid: Option<String>,
    pub(super) alg: Algorithm,
    pub(super) key: DecodingKey,
}

/// Every key a verifier trusts, from its one key source.
pub(super) enum Keys {
    /// The HS256 secret or the PEM public key.
    Single(Arc<TrustedKey>),
    /// A JWKS read at boot.
    JwksFile(KeySet),
    /// A JWKS URL, cached.
    JwksUrl(Box<RemoteJwks>),
}

impl Keys {
    /// Parse (or fetch) the keys of a checked source. Fails, naming the setting, when a
    /// PEM does not parse or is not a public key of the configured algorithm, a JWKS
    /// does not parse or has no usable key, or the JWKS URL cannot be fetched.
    pub(super) async fn load(source: KeySource) -> Result<Keys, JwtConfigError> {
        Ok(match source {
            KeySource::Hs256Secret(secret) => Keys::Single(Arc::new(TrustedKey {
                kid: None,
                alg: Algorithm::HS256,
                key: DecodingKey::from_secret(secret.as_bytes()),
            })),
            KeySource::PublicKey { pem, alg } => {
                let key = parse_public_key_pem(&pem, alg)
                    .map_err(|problem| JwtConfigError::new(SETTING_PUBLIC_KEY_FILE, problem))?;
                Keys::Single(Arc::new(TrustedKey {
                    kid: None,
                    alg,
                    key,
                }))
            }
            KeySource::JwksJson(json) => Keys::JwksFile(
                KeySet::parse(&json)
                    .map_err(|problem| JwtConfigError::new(SETTING_JWKS_FILE, problem))?,
            ),
            KeySource::JwksUrl {
                url,
                min_refresh_interval,
                insecure_http_for_tests,
            } => Keys::JwksUrl(Box::new(
                RemoteJwks::boot(&url, min_refresh_interval, insecure_http_for_tests).await?,
            )),
        })
    }

    /// The key a token's header asks for, fetching the JWKS URL again if it names an
    /// unknown key id.
    pub(super) async fn key_for(&self, header: &Header) -> Result<Arc<TrustedKey>, TokenError> {
        let kid = header.kid.as_deref();
        match self {
            Keys::Single(key) => Ok(key.clone()),
            Keys::JwksFile(set) => pick_or_refuse(set.pick(kid, header.alg), kid),
            Keys::JwksUrl(remote) => remote.key_for(kid, header.alg).await,
        }
    }

    /// What is trusted, for a boot log line. Holds no key material.
    pub(super) fn describe(&self) -> String {
        match self {
            Keys::Single(key) if key.alg == Algorithm::HS256 => "HS256 shared secret".to_string(),
            Keys::Single(key) => format!("{} public key", alg_name(key.alg)),
            Keys::JwksFile(set) => format!("JWKS file ({} keys)", set.keys.len()),
            Keys::JwksUrl(remote) => remote.describe(),
        }
    }

    /// The JWKS URL's check for `/health/deep`; `None` for keys read at boot.
    pub(super) async fn probe(&self) -> Option<crate::health::Probe> {
        match self {
            Keys::JwksUrl(remote) => Some(remote.probe().await),
            _ => None,
        }
    }

    /// The algorithms this gateway accepts, for messages.
    pub(super) fn accepted(&self) -> String {
        let names = |set: &KeySet| {
            set.keys
                .iter()
                .map(|k| alg_name(k.alg))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Keys::Single(key) => alg_name(key.alg).to_string(),
            Keys::JwksFile(set) => names(set),
            Keys::JwksUrl(remote) => names(&remote.current()),
        }
    }
}

/// The algorithm a JWK verifies: its own `alg`, or the one its key type implies; the
/// two must agree with the key type.
pub(super) fn trusted_key_from_jwk(jwk: &Jwk) -> Result<TrustedKey, String> {
    if let Some(key_use) = &jwk.common.public_key_use
        && *key_use != PublicKeyUse::Signature
    {
        return Err("is not a signing key (`use` is not `sig`)".to_string());
    }
    if let AlgorithmParameters::OctetKey(_) = jwk.algorithm {
        return Err(format!(
            "is a symmetric key: shared secrets are not accepted from a JWKS (use {SETTING_HS256_SECRET})"
        ));
    }
    let implied = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Some(Algorithm::ES256),
            EllipticCurve::P384 => Some(Algorithm::ES384),
            _ => None,
        },
        AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
            EllipticCurve::Ed25519 => Some(Algorithm::EdDSA),
            _ => None,
        },
        AlgorithmParameters::OctetKey(_) => None,
    };
    let Some(implied) = implied else {
        return Err(
            "uses a curve this gateway does not support (P-256, P-384 or Ed25519)".to_string(),
        );
    };
    let alg = match jwk.common.key_algorithm {
        None => implied,
        Some(declared) => {
            let alg = match declared {
                KeyAlgorithm::RS256 => Algorithm::RS256,
                KeyAlgorithm::RS384 => Algorithm::RS384,
                KeyAlgorithm::RS512 => Algorithm::RS512,
                KeyAlgorithm::PS256 => Algorithm::PS256,
                KeyAlgorithm::PS384 => Algorithm::PS384,
                KeyAlgorithm::PS512 => Algorithm::PS512,
                KeyAlgorithm::ES256 => Algorithm::ES256,
                KeyAlgorithm::ES384 => Algorithm::ES384,
                KeyAlgorithm::EdDSA => Algorithm::EdDSA,
                other => {
                    return Err(format!(
                        "has `alg` {other:?}, which is not a signature algorithm this gateway supports"
                    ));
                }
            };
            let consistent = match alg.family() {
                AlgorithmFamily::Rsa => implied.family() == AlgorithmFamily::Rsa,
                _ => alg == implied,
            };
            if !consistent {
                return Err(format!(
                    "has `alg` {} but its key type implies {}",
                    alg_name(alg),
                    alg_name(implied)
                ));
            }
            alg
        }
    };
    let key = DecodingKey::from_jwk(jwk)
        .map_err(|_| "has key parameters that are not valid base64url".to_string())?;
    check_key(alg, &key)?;
    Ok(TrustedKey {
        kid: jwk.common.key_id.clone(),
        alg,
        key,
    })
}

/// A PEM public key for `alg`, checked so that a wrong key fails at boot, not at the
/// first token.
fn parse_public_key_pem(pem: &str, alg: Algorithm) -> Result<DecodingKey, String> {
    if pem.contains("PRIVATE KEY") {
        return Err(
            "holds a private key: give the public key instead (`openssl pkey -in private.pem -pubout`)"
                .to_string(),
        );
    }
    if pem.contains("CERTIFICATE") {
        return Err(
            "holds a certificate: give its public key instead (`openssl x509 -in cert.pem -pubkey -noout`)"
                .to_string(),
        );
    }
    let (parsed, what) = match alg {
        Algorithm::RS256 => (DecodingKey::from_rsa_pem(pem.as_bytes()), "an RSA"),
        Algorithm::ES256 => (DecodingKey::from_ec_pem(pem.as_bytes()), "an EC P-256"),
        _ => (DecodingKey::from_ed_pem(pem.as_bytes()), "an Ed25519"),
    };
    let wrong = || {
        format!(
            "is not {what} public key in PEM form (`-----BEGIN PUBLIC KEY-----`), as {SETTING_ALGORITHM} = {} requires",
            alg_name(alg)
        )
    };
    let key = parsed.map_err(|_| wrong())?;
    check_key(alg, &key).map_err(|problem| format!("{}: {problem}", wrong()))?;
    Ok(key)
}

/// Check that a public key can verify `alg`, so that a bad key is refused when loaded.
fn check_key(alg: Algorithm, key: &DecodingKey) -> Result<(), String> {
    // A verification with a dummy signature builds the verifier, which parses the key:
    // an error (not a `false`) means the key is unusable.
    let probe = || {
        jsonwebtoken::crypto::verify("AAAA", b"probe", key, alg)
            .map(|_| ())
            .map_err(|_| format!("is not a valid {} public key", alg_name(alg)))
    };
    match alg.family() {
        AlgorithmFamily::Rsa => {
            let public = match key.kind() {
                DecodingKeyKind::SecretOrDer(der) => rsa::RsaPublicKey::from_pkcs1_der(der).ok(),
                DecodingKeyKind::RsaModulusExponent { n, e } => rsa::RsaPublicKey::new(
                    rsa::BigUint::from_bytes_be(n),
                    rsa::BigUint::from_bytes_be(e),
                )
                .ok(),
            };
            let Some(public) = public else {
                return Err("is not a valid RSA public key".to_string());
            };
            let bits = public.n().bits();
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "is a {bits}-bit RSA key; at least {MIN_RSA_BITS} bits are required"
                ));
            }
            Ok(())
        }
        AlgorithmFamily::Ed => match key.kind() {
            // jsonwebtoken expects exactly the 32 key bytes.
            DecodingKeyKind::SecretOrDer(bytes) if bytes.len() == 32 => probe(),
            _ => Err("is not a valid Ed25519 public key".to_string()),
        },
        AlgorithmFamily::Ec => probe(),
        AlgorithmFamily::Hmac => Ok(()),
    }
}

/// The name of an algorithm as a JWT header writes it.
pub(super) fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
    }
}
