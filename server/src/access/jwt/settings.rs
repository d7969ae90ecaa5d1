//! The JWT settings and the checks that refuse, at boot, a configuration that cannot
//! work.
//!
//! Exactly one key source is configured: an HS256 shared secret, a PEM public key
//! (RS256, ES256 or EdDSA), a JWKS document read at boot, or a JWKS URL fetched at boot
//! and again when a token names a key id the gateway does not know yet (key rotation).
//! Two sources would make the trusted keys ambiguous, so they are refused rather than
//! combined. Every message names the setting and says what to do; none holds the
//! secret or key material.

use std::fmt;
use std::time::Duration;

use jsonwebtoken::Algorithm;

use super::claims::PrincipalClaims;
use super::text::{redact_url_text, show_text};

/// The setting that holds the HS256 shared secret, as named in error messages.
pub const SETTING_HS256_SECRET: &str = "--jwt-hs256-secret (SWITCHBOARD_JWT_HS256_SECRET)";
/// The setting that names the PEM public key file.
pub const SETTING_PUBLIC_KEY_FILE: &str = "--jwt-public-key-file (SWITCHBOARD_JWT_PUBLIC_KEY_FILE)";
/// The setting that names the PEM key's algorithm.
pub const SETTING_ALGORITHM: &str = "--jwt-algorithm (SWITCHBOARD_JWT_ALGORITHM)";
/// The setting that names the JWKS file.
pub const SETTING_JWKS_FILE: &str = "--jwks-file (SWITCHBOARD_JWKS_FILE)";
/// The setting that holds the JWKS URL.
pub const SETTING_JWKS_URL: &str = "--jwks-url (SWITCHBOARD_JWKS_URL)";
/// The setting that bounds JWKS refetches.
pub const SETTING_JWKS_MIN_REFRESH: &str = "--jwks-min-refresh (SWITCHBOARD_JWKS_MIN_REFRESH)";
/// The setting that lets a JWKS URL be plain `http://` (tests only).
pub const SETTING_JWKS_INSECURE_HTTP: &str =
    "--insecure-jwks-http-for-tests (SWITCHBOARD_INSECURE_JWKS_HTTP_FOR_TESTS)";
/// The setting that holds the trusted issuer.
pub const SETTING_ISSUER: &str = "--jwt-issuer (SWITCHBOARD_JWT_ISSUER)";
/// The setting that holds the required audience.
pub const SETTING_AUDIENCE: &str = "--jwt-audience (SWITCHBOARD_JWT_AUDIENCE)";

/// The shortest HS256 secret accepted: a shorter one is guessable offline from any
/// token it signed.
pub const MIN_HS256_SECRET_BYTES: usize = 32;
/// The shortest interval between JWKS refetches: a shorter one lets tokens with
/// made-up key ids make the gateway hammer the identity provider.
pub const MIN_JWKS_REFRESH: Duration = Duration::from_secs(1);

/// The algorithms a PEM public key may be configured with.
pub const PUBLIC_KEY_ALGORITHMS: &str = "RS256, ES256 or EdDSA";

/// Where the gateway's trusted keys come from, and which claims make the principal.
///
/// `Default` gives no key source, the claim names `org_id`, `groups` and `roles`, a
/// leeway of 30 s, the default org `default`, and a JWKS refresh interval of 30 s.
#[derive(Clone)]
pub struct JwtSettings {
    /// HS256 shared secret (its UTF-8 bytes are the HMAC key).
    pub hs256_secret: Option<String>,
    /// PEM text of an RSA, EC P-256 or Ed25519 public key (`BEGIN PUBLIC KEY`, or
    /// `BEGIN RSA PUBLIC KEY`).
    pub public_key_pem: Option<String>,
    /// `RS256`, `ES256` or `EdDSA`: required with `public_key_pem`, refused without it.
    pub public_key_algorithm: Option<String>,
    /// A JWKS document (read from a file at boot by the caller).
    pub jwks_json: Option<String>,
    /// A JWKS URL, fetched at boot and when a token names an unknown key id.
    pub jwks_url: Option<String>,
    /// If set, `iss` is required and must equal it.
    pub issuer: Option<String>,
    /// If set, `aud` is required and must contain it. If unset, `aud` is not checked.
    pub audience: Option<String>,
    /// The claim that names the org (a string); missing means `default_org`.
    pub org_claim: String,
    /// The claim that lists the groups (a list of strings, or one string).
    pub groups_claim: String,
    /// The claim that lists the roles (a list of strings, or one string).
    pub roles_claim: String,
    /// Clock skew allowed on `exp` and `nbf` (whole seconds count).
    pub leeway: Duration,
    /// The org of a token that has no org claim.
    pub default_org: String,
    /// The shortest time between two JWKS fetches caused by unknown key ids (at least
    /// [`MIN_JWKS_REFRESH`]).
    pub jwks_min_refresh_interval: Duration,
    /// Accept a plain `http://` JWKS URL. For tests against a local server only: a
    /// JWKS fetched over plain HTTP can be swapped by anyone on the path.
    pub jwks_insecure_http_for_tests: bool,
}

impl Default for JwtSettings {
    fn default() -> JwtSettings {
        JwtSettings {
            hs256_secret: None,
            public_key_pem: None,
            public_key_algorithm: None,
            jwks_json: None,
            jwks_url: None,
            issuer: None,
            audience: None,
            org_claim: "org_id".to_string(),
            groups_claim: "groups".to_string(),
            roles_claim: "roles".to_string(),
            leeway: Duration::from_secs(30),
            default_org: "default".to_string(),
            jwks_min_refresh_interval: Duration::from_secs(30),
            jwks_insecure_http_for_tests: false,
        }
    }
}

impl fmt::Debug for JwtSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = |s: &Option<String>| s.as_ref().map(|s| format!("<{} bytes>", s.len()));
        f.debug_struct("JwtSettings")
            .field(
                "hs256_secret",
                &self.hs256_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("public_key_pem", &bytes(&self.public_key_pem))
            .field("public_key_algorithm", &self.public_key_algorithm)
            .field("jwks_json", &bytes(&self.jwks_json))
            .field("jwks_url", &self.jwks_url.as_deref().map(redact_url_text))
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("org_claim", &self.org_claim)
            .field("groups_claim", &self.groups_claim)
            .field("roles_claim", &self.roles_claim)
            .field("leeway", &self.leeway)
            .field("default_org", &self.default_org)
            .field("jwks_min_refresh_interval", &self.jwks_min_refresh_interval)
            .field(
                "jwks_insecure_http_for_tests",
                &self.jwks_insecure_http_for_tests,
            )
            .finish()
    }
}

/// A JWT setting that cannot work. The message names the setting and says what to do;
/// it never holds the secret or key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct JwtConfigError {
    pub message: String,
}

impl JwtConfigError {
    pub(super) fn new(setting: &str, problem: impl fmt::Display) -> JwtConfigError {
        JwtConfigError {
            message: format!("{setting}: {problem}"),
        }
    }
}

/// The one configured key source, not parsed yet.
pub(super) enum KeySource {
    Hs256Secret(String),
    PublicKey {
        pem: String,
        alg: Algorithm,
    },
    JwksJson(String),
    JwksUrl {
        url: String,
        min_refresh_interval: Duration,
        insecure_http_for_tests: bool,
    },
}

/// Settings that passed every check that needs no key parsing or fetching.
pub(super) struct Checked {
    pub(super) source: KeySource,
    pub(super) issuer: Option<String>,
    pub(super) audience: Option<String>,
    pub(super) claims: PrincipalClaims,
    pub(super) leeway: Duration,
}

impl JwtSettings {
    /// Check the settings. `Ok(None)` when no key source is configured.
    ///
    /// Fails, naming the setting, when more than one key source is set, the algorithm
    /// is set without a public key, missing with one, or unknown, or a value is empty.
    pub(super) fn check(self) -> Result<Option<Checked>, JwtConfigError> {
        let mut sources = Vec::new();
        if self.hs256_secret.is_some() {
            sources.push(SETTING_HS256_SECRET);
        }
        if self.public_key_pem.is_some() {
            sources.push(SETTING_PUBLIC_KEY_FILE);
        }
        if self.jwks_json.is_some() {
            sources.push(SETTING_JWKS_FILE);
        }
        if self.jwks_url.is_some() {
            sources.push(SETTING_JWKS_URL);
        }
        if self.public_key_algorithm.is_some() && self.public_key_pem.is_none() {
            return Err(JwtConfigError::new(
                SETTING_ALGORITHM,
                format!(
                    "is set, but it only applies to a public key: set {SETTING_PUBLIC_KEY_FILE} too, or remove it"
                ),
            ));
        }
        if self.jwks_min_refresh_interval < MIN_JWKS_REFRESH {
            return Err(JwtConfigError::new(
                SETTING_JWKS_MIN_REFRESH,
                format!(
                    "is {:?}; it must be at least {MIN_JWKS_REFRESH:?}, or tokens with made-up key ids could make the gateway fetch the JWKS without pause",
                    self.jwks_min_refresh_interval
                ),
            ));
        }
        match sources.len() {
            0 => return Ok(None),
            1 => {}
            _ => {
                return Err(JwtConfigError {
                    message: format!(
                        "only one JWT key source may be set, but {} are: {}; keep exactly one",
                        sources.len(),
                        sources.join(", ")
                    ),
                });
            }
        }

        let issuer = non_empty(self.issuer, SETTING_ISSUER)?;
        let audience = non_empty(self.audience, SETTING_AUDIENCE)?;
        for (name, value) in [
            ("org claim", &self.org_claim),
            ("groups claim", &self.groups_claim),
            ("roles claim", &self.roles_claim),
        ] {
            if value.is_empty() {
                return Err(JwtConfigError {
                    message: format!("the JWT {name} name is empty"),
                });
            }
        }

        let source = if let Some(secret) = self.hs256_secret {
            if secret.is_empty() {
                return Err(JwtConfigError::new(
                    SETTING_HS256_SECRET,
                    "is empty: set a long random secret (32 bytes or more)",
                ));
            }
            if secret.len() < MIN_HS256_SECRET_BYTES {
                return Err(JwtConfigError::new(
                    SETTING_HS256_SECRET,
                    format!(
                        "is {} bytes; it must be at least {MIN_HS256_SECRET_BYTES} (a short secret can be guessed offline from any token): generate one, e.g. `openssl rand -hex 32`",
                        secret.len()
                    ),
                ));
            }
            KeySource::Hs256Secret(secret)
        } else if let Some(pem) = self.public_key_pem {
            let Some(alg) = self.public_key_algorithm else {
                return Err(JwtConfigError::new(
                    SETTING_ALGORITHM,
                    format!(
                        "is required with {SETTING_PUBLIC_KEY_FILE}: set it to {PUBLIC_KEY_ALGORITHMS}"
                    ),
                ));
            };
            KeySource::PublicKey {
                pem,
                alg: parse_public_key_algorithm(&alg)?,
            }
        } else if let Some(json) = self.jwks_json {
            KeySource::JwksJson(json)
        } else if let Some(url) = self.jwks_url {
            KeySource::JwksUrl {
                url,
                min_refresh_interval: self.jwks_min_refresh_interval,
                insecure_http_for_tests: self.jwks_insecure_http_for_tests,
            }
        } else {
            return Ok(None);
        };

        Ok(Some(Checked {
            source,
            issuer,
            audience,
            claims: PrincipalClaims {
                org: self.org_claim,
                groups: self.groups_claim,
                roles: self.roles_claim,
                default_org: self.default_org,
            },
            leeway: self.leeway,
        }))
    }
}

/// The algorithm of a PEM public key. HS256 is refused: a public key's text must never
/// become an HMAC secret.
fn parse_public_key_algorithm(text: &str) -> Result<Algorithm, JwtConfigError> {
    match text.trim().to_ascii_uppercase().as_str() {
        "RS256" => Ok(Algorithm::RS256),
        "ES256" => Ok(Algorithm::ES256),
        "EDDSA" => Ok(Algorithm::EdDSA),
        "HS256" => Err(JwtConfigError::new(
            SETTING_ALGORITHM,
            format!(
                "HS256 is for a shared secret ({SETTING_HS256_SECRET}); a public key takes {PUBLIC_KEY_ALGORITHMS}"
            ),
        )),
        _ => Err(JwtConfigError::new(
            SETTING_ALGORITHM,
            format!(
                "{} is not an algorithm this gateway supports: use {PUBLIC_KEY_ALGORITHMS}",
                show_text(text)
            ),
        )),
    }
}

fn non_empty(value: Option<String>, setting: &str) -> Result<Option<String>, JwtConfigError> {
    match value {
        Some(v) if v.is_empty() => Err(JwtConfigError::new(
            setting,
            "is set but empty: set a value or leave it unset",
        )),
        other => Ok(other),
    }
}
