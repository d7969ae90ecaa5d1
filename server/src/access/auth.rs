//! Who a connection or a request is: credentials in, an access context or an HTTP
//! caller out. What they may then do is `access::policy`'s to decide.
//!
//! Everything fails closed: a token that does not verify is `unauthorized`, never a
//! silent downgrade to anonymous, and no token or key ever reaches a log line.

use std::sync::Arc;

use subtle::ConstantTimeEq;
use switchboard_protocol::{ErrorCode, Principal};

use super::AccessContext;
use crate::access::jwt::{JwtSettings, JwtVerifier, TokenError};
use crate::config::{ApiKey, ServeConfig};
use crate::error::ClientError;

/// A verified caller and when its credentials stop being valid.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub access: AccessContext,
    /// `exp` of the token, seconds since the epoch; `None` for anonymous callers.
    pub expires_at: Option<u64>,
}

/// What a `/v1` request authenticated as.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A publisher API key: trusted backend, deployment-wide.
    PublisherKey { name: String },
    /// An admin API key: deployment-wide administration.
    AdminKey { name: String },
    /// A JWT: its roles count within its own org only. Also an anonymous visitor's
    /// principal (`anonymous: true`, no roles), exactly as the WebSocket represents
    /// an anonymous connection: only the session routes accept one (see
    /// [`Authenticator::caller_or_anonymous`]).
    Token(AccessContext),
}

/// Turns credentials into callers.
pub struct Authenticator {
    verifier: Option<Arc<JwtVerifier>>,
    allow_anonymous: bool,
    default_org: String,
    publisher_keys: Vec<ApiKey>,
    admin_keys: Vec<ApiKey>,
}

impl Authenticator {
    /// Build from configuration: reads key files and, for a JWKS URL, fetches it.
    /// Errors name the setting at fault.
    pub async fn from_config(config: &ServeConfig) -> anyhow::Result<Authenticator> {
        let read = |path: &std::path::Path, setting: &str| {
            std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("{setting}: cannot read {}: {e}", path.display()))
        };
        let settings = JwtSettings {
            hs256_secret: config
                .jwt_hs256_secret
                .as_ref()
                .map(|s| s.expose().to_string()),
            public_key_pem: config
                .jwt_public_key_file
                .as_deref()
                .map(|p| read(p, crate::access::jwt::SETTING_PUBLIC_KEY_FILE))
                .transpose()?,
            public_key_algorithm: config.jwt_algorithm.clone(),
            jwks_json: config
                .jwks_file
                .as_deref()
                .map(|p| read(p, crate::access::jwt::SETTING_JWKS_FILE))
                .transpose()?,
            jwks_url: config.jwks_url.clone(),
            issuer: config.jwt_issuer.clone(),
            audience: config.jwt_audience.clone(),
            org_claim: config.jwt_org_claim.clone(),
            groups_claim: config.jwt_groups_claim.clone(),
            roles_claim: config.jwt_roles_claim.clone(),
            leeway: config.jwt_leeway,
            default_org: config.default_org.clone(),
            jwks_min_refresh_interval: config.jwks_min_refresh,
            jwks_insecure_http_for_tests: config.insecure_jwks_http_for_tests,
        };
        let verifier = JwtVerifier::new(settings)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Some(v) = &verifier {
            tracing::info!(keys = %v.describe(), "JWT verification enabled");
        }
        Ok(Authenticator {
            verifier: verifier.map(Arc::new),
            allow_anonymous: config.allow_anonymous,
            default_org: config.default_org.clone(),
            publisher_keys: config.publisher_keys.clone(),
            admin_keys: config.admin_keys.clone(),
        })
    }

    /// The JWKS URL's check for `/health/deep`; `None` without a JWKS URL.
    pub async fn jwks_probe(&self) -> Option<crate::health::Probe> {
        match &self.verifier {
            Some(verifier) => verifier.jwks_probe().await,
            None => None,
        }
    }

    /// The handshake: a token if one was offered, else anonymous if allowed.
    pub async fn authenticate(&self, token: Option<&str>) -> Result<Authenticated, ClientError> {
        match token {
            Some(token) => self.verify(token).await,
            None if self.allow_anonymous => Ok(Authenticated {
                access: self.anonymous_principal(),
                expires_at: None,
            }),
            None => Err(ClientError::new(
                ErrorCode::Unauthorized,
                "this gateway does not accept anonymous connections: connect with ?token= or an Authorization: Bearer header",
            )),
        }
    }

    /// The principal of a visitor without credentials, in `--default-org`.
    fn anonymous_principal(&self) -> Principal {
        Principal {
            user_id: None,
            org_id: self.default_org.clone(),
            groups: Vec::new(),
            roles: Vec::new(),
            anonymous: true,
            name: None,
        }
    }

    /// Who a request to a session route is: [`Authenticator::caller`] when it carries
    /// credentials; without any, an anonymous visitor when `--allow-anonymous` is on
    /// and `anonymous_welcome` (the route opens a session, or the request presents a
    /// session key); otherwise `unauthorized`, as every other `/v1` route answers.
    pub async fn caller_or_anonymous(
        &self,
        bearer: Option<&str>,
        anonymous_welcome: bool,
    ) -> Result<Caller, ClientError> {
        if bearer.is_none() && self.allow_anonymous && anonymous_welcome {
            return Ok(Caller::Token(self.anonymous_principal()));
        }
        self.caller(bearer).await
    }

    /// Verify a JWT. An expired token is `unauthorized` here; a connection whose token
    /// expires later gets `token_expired` instead.
    pub async fn verify(&self, token: &str) -> Result<Authenticated, ClientError> {
        let Some(verifier) = &self.verifier else {
            return Err(ClientError::new(
                ErrorCode::Unauthorized,
                "the token could not be verified: this gateway has no JWT key configured",
            ));
        };
        match verifier.verify(token).await {
            Ok(verified) => {
                let org = &verified.principal.org_id;
                if org.contains('@') || !switchboard_protocol::StreamName::valid_id(org) {
                    return Err(ClientError::new(
                        ErrorCode::Unauthorized,
                        "the token's org claim is not a valid org id (A-Z, a-z, 0-9, '_', '-')",
                    ));
                }
                Ok(Authenticated {
                    access: verified.principal,
                    expires_at: Some(verified.expires_at),
                })
            }
            Err(TokenError::Unavailable) => Err(ClientError::new(
                ErrorCode::Unavailable,
                TokenError::Unavailable.to_string(),
            )),
            Err(e) => Err(ClientError::new(ErrorCode::Unauthorized, e.to_string())),
        }
    }

    /// Who an HTTP `Authorization: Bearer` credential is: an API key (compared in
    /// constant time against every configured key, so timing tells nothing) or a JWT.
    pub async fn caller(&self, bearer: Option<&str>) -> Result<Caller, ClientError> {
        let Some(credential) = bearer.filter(|c| !c.is_empty()) else {
            return Err(ClientError::new(
                ErrorCode::Unauthorized,
                "missing credentials: send Authorization: Bearer <API key or JWT>",
            ));
        };
        Ok(self.caller_until(credential).await?.0)
    }

    /// Who an event-stream request (`GET /v1/sessions/{id}/stream`) is, and until when
    /// (a JWT's `exp`: the stream ends then): an API key or a JWT like every `/v1`
    /// route, or — without credentials — an anonymous visitor exactly as
    /// [`Authenticator::caller_or_anonymous`] admits one (`anonymous_welcome`: the
    /// request presents a session key).
    pub async fn stream_caller(
        &self,
        credential: Option<&str>,
        anonymous_welcome: bool,
    ) -> Result<(Caller, Option<u64>), ClientError> {
        match credential {
            Some(credential) => self.caller_until(credential).await,
            None => Ok((
                self.caller_or_anonymous(None, anonymous_welcome).await?,
                None,
            )),
        }
    }

    /// An API key (no expiry) or a verified JWT and its `exp`.
    async fn caller_until(&self, credential: &str) -> Result<(Caller, Option<u64>), ClientError> {
        if let Some(name) = matching_key(&self.publisher_keys, credential) {
            return Ok((Caller::PublisherKey { name }, None));
        }
        if let Some(name) = matching_key(&self.admin_keys, credential) {
            return Ok((Caller::AdminKey { name }, None));
        }
        if self.verifier.is_none() || !looks_like_jwt(credential) {
            return Err(ClientError::new(
                ErrorCode::Unauthorized,
                "the credential is not a known API key or a valid token",
            ));
        }
        let verified = self.verify(credential).await?;
        Ok((Caller::Token(verified.access), verified.expires_at))
    }
}

/// The name of the key equal to `credential`. Every key is compared, whatever matched.
fn matching_key(keys: &[ApiKey], credential: &str) -> Option<String> {
    let mut found = None;
    for key in keys {
        let equal: bool = key
            .secret
            .expose()
            .as_bytes()
            .ct_eq(credential.as_bytes())
            .into();
        if equal && found.is_none() {
            found = Some(key.name.clone());
        }
    }
    found
}

/// Three base64url segments: worth handing to the JWT verifier.
fn looks_like_jwt(credential: &str) -> bool {
    credential.split('.').count() == 3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, secret: &str) -> ApiKey {
        format!("{name}:{secret}").parse().unwrap()
    }

    #[test]
    fn api_keys_match_exactly() {
        let keys = vec![
            key("orders", "pk_orders_0123456789"),
            key("crm", "pk_crm_0123456789ab"),
        ];
        assert_eq!(
            matching_key(&keys, "pk_crm_0123456789ab").as_deref(),
            Some("crm")
        );
        assert_eq!(matching_key(&keys, "pk_crm_0123456789a"), None);
        assert_eq!(matching_key(&keys, "pk_crm_0123456789abc"), None);
        assert_eq!(matching_key(&keys, ""), None);
    }
}
