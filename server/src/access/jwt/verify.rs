//! [`JwtVerifier`]: checks a token against the trusted keys and says why one is
//! refused.
//!
//! Signatures and the registered claims are checked by `jsonwebtoken`: `exp` is
//! required, `nbf` honoured, `iss` and `aud` required and checked when configured
//! (`aud` is ignored when no audience is configured), all with `leeway`. This module
//! picks the key, builds those rules and turns `jsonwebtoken`'s errors into messages
//! that are safe to send to the client: they never repeat the token.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Header, Validation};
use serde_json::{Map, Value};

use super::claims::{PrincipalClaims, VerifiedToken};
use super::keys::{Keys, TrustedKey, alg_name};
use super::settings::{Checked, JwtConfigError, JwtSettings};
use super::text::show_text;

/// A token longer than this is refused before it is parsed.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// The largest clock skew allowance used, whatever is configured.
const MAX_LEEWAY_SECS: u64 = 3600;

/// Why a token was refused. Messages are safe to send to the client and to log: they
/// never hold the token, the secret or key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// `exp` is past (beyond the leeway).
    #[error("the token expired")]
    Expired,
    /// Anything else that makes the token unacceptable.
    #[error("{0}")]
    Invalid(String),
    /// The token names a key this gateway does not know, and the JWKS URL could not be
    /// fetched to learn it: a temporary failure on the gateway's side.
    #[error(
        "the gateway cannot fetch its signing keys right now and does not know the token's key; retry in a moment"
    )]
    Unavailable,
}

/// Verifies tokens against the configured key source. Cheap to share behind an `Arc`.
pub struct JwtVerifier {
    keys: Keys,
    /// The rules for every token; `algorithms` is replaced by the chosen key's.
    validation: Validation,
    issuer: Option<String>,
    audience: Option<String>,
    claims: PrincipalClaims,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("keys", &self.describe())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// Build a verifier from the settings. `Ok(None)` when no key source is configured.
    ///
    /// Fails, naming the setting, when more than one key source is set, a PEM does not
    /// parse or is not a public key of the configured algorithm, the algorithm is
    /// missing or unknown, a JWKS does not parse or has no usable key, or the JWKS URL
    /// cannot be fetched.
    pub async fn new(settings: JwtSettings) -> Result<Option<JwtVerifier>, JwtConfigError> {
        let Some(Checked {
            source,
            issuer,
            audience,
            claims,
            leeway,
        }) = settings.check()?
        else {
            return Ok(None);
        };
        let keys = Keys::load(source).await?;
        let validation = rules(leeway, issuer.as_deref(), audience.as_deref());
        Ok(Some(JwtVerifier {
            keys,
            validation,
            issuer,
            audience,
            claims,
        }))
    }

    /// What this verifier trusts, for a boot log line: e.g. `RS256 public key`, or
    /// `JWKS URL https://idp.example/jwks.json (2 keys)`. Holds no key material.
    pub fn describe(&self) -> String {
        self.keys.describe()
    }

    /// The JWKS URL's check for `/health/deep`; `None` without a JWKS URL.
    pub async fn jwks_probe(&self) -> Option<crate::health::Probe> {
        self.keys.probe().await
    }

    /// Verify a token and derive the principal it names.
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        if token.is_empty() {
            return Err(invalid("the token is empty"));
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(invalid(format!(
                "the token is longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        if token.split('.').count() != 3 {
            return Err(malformed());
        }
        let header = match jsonwebtoken::decode_header(token) {
            Ok(header) => header,
            Err(_) => return Err(self.explain_bad_header(token)),
        };
        if header.crit.as_ref().is_some_and(|crit| !crit.is_empty()) {
            return Err(invalid(
                "the token's header lists critical extensions (`crit`) that this gateway does not understand",
            ));
        }
        let key = self.keys.key_for(&header).await?;
        let mut validation = self.validation.clone();
        validation.algorithms = vec![key.alg];
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)
            .map_err(|e| self.explain(e.kind(), &header, &key))?;
        self.claims.principal(&data.claims)
    }

    /// A header `jsonwebtoken` could not read: say why, naming an algorithm it does not
    /// know (such as `none`) when that is the reason.
    fn explain_bad_header(&self, token: &str) -> TokenError {
        let encoded = token.split('.').next().unwrap_or_default();
        let header = URL_SAFE_NO_PAD
            .decode(encoded.trim_end_matches('='))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Map<String, Value>>(&bytes).ok());
        let Some(header) = header else {
            return malformed();
        };
        match header.get("alg") {
            Some(Value::String(alg)) if Algorithm::from_str(alg).is_err() => invalid(format!(
                "the token uses algorithm {} but this gateway only accepts {}",
                show_text(alg),
                self.keys.accepted()
            )),
            Some(Value::String(_)) => invalid(
                "the token's header is not valid: every field but `alg` must be a string or a JWT header field",
            ),
            _ => invalid("the token's header has no `alg` (algorithm)"),
        }
    }

    fn explain(&self, kind: &ErrorKind, header: &Header, key: &TrustedKey) -> TokenError {
        let for_kid = match &key.kid {
            Some(kid) => format!(" for key {}", show_text(kid)),
            None => String::new(),
        };
        match kind {
            ErrorKind::ExpiredSignature => TokenError::Expired,
            ErrorKind::InvalidSignature => invalid(format!(
                "the token's signature does not verify with the key this gateway trusts{for_kid}"
            )),
            ErrorKind::InvalidAlgorithm => invalid(format!(
                "the token uses algorithm {} but this gateway only accepts {}{for_kid}",
                alg_name(header.alg),
                alg_name(key.alg)
            )),
            ErrorKind::ImmatureSignature => {
                invalid("the token is not valid yet: its `nbf` (not before) time is in the future")
            }
            ErrorKind::InvalidIssuer => invalid(format!(
                "the token's issuer (`iss`) is not the one this gateway trusts ({})",
                self.issuer.as_deref().map(show_text).unwrap_or_default()
            )),
            ErrorKind::InvalidAudience => invalid(format!(
                "the token's audience (`aud`) does not include {}",
                self.audience.as_deref().map(show_text).unwrap_or_default()
            )),
            ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
                "exp" => invalid(
                    "the token has no `exp` claim: this gateway only accepts tokens that expire",
                ),
                "sub" => invalid("the token has no `sub` claim (a string naming the user)"),
                "iss" => invalid(format!(
                    "the token has no `iss` claim; this gateway only trusts issuer {}",
                    self.issuer.as_deref().map(show_text).unwrap_or_default()
                )),
                "aud" => invalid(format!(
                    "the token has no `aud` claim; this gateway requires audience {}",
                    self.audience.as_deref().map(show_text).unwrap_or_default()
                )),
                other => invalid(format!("the token has no `{other}` claim")),
            },
            ErrorKind::InvalidClaimFormat(claim) => invalid(format!(
                "the token's `{claim}` claim is not a time in seconds since the epoch"
            )),
            ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => malformed(),
            ErrorKind::Json(_) => invalid("the token's claims are not a JSON object"),
            ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidEddsaKey
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidKeyFormat => {
                tracing::warn!(
                    algorithm = alg_name(key.alg),
                    "a trusted JWT key could not be used to check a signature"
                );
                invalid(format!(
                    "the token's signature could not be checked with the key this gateway trusts{for_kid}"
                ))
            }
            _ => invalid("the token could not be verified"),
        }
    }
}

/// The rules every token passes; the algorithm is set per token, to the chosen key's.
fn rules(leeway: Duration, issuer: Option<&str>, audience: Option<&str>) -> Validation {
    let mut validation = Validation::new(Algorithm::HS256);
    let mut leeway = leeway.as_secs();
    if leeway > MAX_LEEWAY_SECS {
        tracing::warn!(
            leeway_secs = leeway,
            "the JWT leeway is over an hour; using one hour"
        );
        leeway = MAX_LEEWAY_SECS;
    }
    validation.leeway = leeway;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    let mut required = vec!["exp", "sub"];
    if let Some(iss) = issuer {
        validation.set_issuer(&[iss]);
        required.push("iss");
    }
    if let Some(aud) = audience {
        validation.set_audience(&[aud]);
        validation.validate_aud = true;
        required.push("aud");
    } else {
        validation.validate_aud = false;
    }
    validation.set_required_spec_claims(&required);
    validation
}

/// A refusal with this message.
pub(super) fn invalid(message: impl Into<String>) -> TokenError {
    TokenError::Invalid(message.into())
}

fn malformed() -> TokenError {
    invalid("the token is not a well-formed JWT (three base64url parts separated by dots)")
}
