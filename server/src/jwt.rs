//! JWT verification: which keys a deployment trusts, and the principal a verified
//! token names.
//!
//! Exactly one key source is configured: an HS256 shared secret, a PEM public key
//! (RS256, ES256 or EdDSA), a JWKS document read at boot, or a JWKS URL fetched at boot
//! and fetched again — at most once per `jwks_min_refresh_interval`, one fetch at a time —
//! when a token names a key id the gateway does not know yet (key rotation).
//!
//! The algorithm is pinned to the key: the secret only verifies HS256, a PEM key only
//! the algorithm configured with it, a JWKS key only its own `alg` (or the one its key
//! type implies). A token whose header names any other algorithm, `none` included, is
//! refused, so an HS256 token "signed" with a public key's text fails.
//!
//! Signatures and the registered claims are checked by `jsonwebtoken`: `exp` is
//! required, `nbf` honoured, `iss` and `aud` required and checked when configured
//! (`aud` is ignored when no audience is configured), all with `leeway`. This module
//! picks the key, builds those rules and derives the principal: `sub` is the user id,
//! the org comes from `org_claim` (else `default_org`), groups and roles from their
//! claims (a list of strings, or one string).
//!
//! Nothing here logs or returns the token, the secret or key material.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, Header, Validation};
use rsa::pkcs1::DecodeRsaPublicKey as _;
use rsa::traits::PublicKeyParts as _;
use serde_json::{Map, Value};
use switchboard_protocol::Principal;

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
/// The setting that holds the trusted issuer.
pub const SETTING_ISSUER: &str = "--jwt-issuer (SWITCHBOARD_JWT_ISSUER)";
/// The setting that holds the required audience.
pub const SETTING_AUDIENCE: &str = "--jwt-audience (SWITCHBOARD_JWT_AUDIENCE)";

/// The algorithms a PEM public key may be configured with.
pub const PUBLIC_KEY_ALGORITHMS: &str = "RS256, ES256 or EdDSA";

/// A token longer than this is refused before it is parsed.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// A JWKS document larger than this is refused.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// How long one JWKS fetch may take.
const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest clock skew allowance used, whatever is configured.
const MAX_LEEWAY_SECS: u64 = 3600;
/// RSA keys shorter than this are refused.
const MIN_RSA_BITS: usize = 2048;

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
    /// The shortest time between two JWKS fetches caused by unknown key ids.
    pub jwks_min_refresh_interval: Duration,
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
    fn new(setting: &str, problem: impl fmt::Display) -> JwtConfigError {
        JwtConfigError {
            message: format!("{setting}: {problem}"),
        }
    }
}

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

/// A token that verified, and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The principal the token names (`anonymous` is false).
    pub principal: Principal,
    /// The token's `exp`, in seconds since the epoch.
    pub expires_at: u64,
}

/// Verifies tokens against the configured key source. Cheap to share behind an `Arc`.
pub struct JwtVerifier {
    keys: Keys,
    /// The rules for every token; `algorithms` is replaced by the chosen key's.
    validation: Validation,
    issuer: Option<String>,
    audience: Option<String>,
    org_claim: String,
    groups_claim: String,
    roles_claim: String,
    default_org: String,
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

/// One key the gateway trusts, pinned to one algorithm.
struct TrustedKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// The keys of a JWKS document that this gateway can use.
struct KeySet {
    keys: Vec<Arc<TrustedKey>>,
}

enum Keys {
    /// The HS256 secret or the PEM public key.
    Single(Arc<TrustedKey>),
    /// A JWKS read at boot.
    JwksFile(KeySet),
    /// A JWKS URL, cached.
    JwksUrl(RemoteJwks),
}

struct RemoteJwks {
    url: reqwest::Url,
    client: reqwest::Client,
    min_refresh_interval: Duration,
    current: RwLock<Arc<KeySet>>,
    /// Held for the whole of a refresh, so concurrent verifications wait for one fetch
    /// instead of each starting their own. Holds the last refresh after boot.
    refresh: tokio::sync::Mutex<Option<LastRefresh>>,
}

#[derive(Clone, Copy)]
struct LastRefresh {
    at: Instant,
    ok: bool,
}

enum Pick {
    Found(Arc<TrustedKey>),
    UnknownKid,
    NoKid,
}

impl JwtVerifier {
    /// Build a verifier from the settings. `Ok(None)` when no key source is configured.
    ///
    /// Fails, naming the setting, when more than one key source is set, a PEM does not
    /// parse or is not a public key of the configured algorithm, the algorithm is
    /// missing or unknown, a JWKS does not parse or has no usable key, or the JWKS URL
    /// cannot be fetched.
    pub async fn new(settings: JwtSettings) -> Result<Option<JwtVerifier>, JwtConfigError> {
        let mut sources = Vec::new();
        if settings.hs256_secret.is_some() {
            sources.push(SETTING_HS256_SECRET);
        }
        if settings.public_key_pem.is_some() {
            sources.push(SETTING_PUBLIC_KEY_FILE);
        }
        if settings.jwks_json.is_some() {
            sources.push(SETTING_JWKS_FILE);
        }
        if settings.jwks_url.is_some() {
            sources.push(SETTING_JWKS_URL);
        }
        if settings.public_key_algorithm.is_some() && settings.public_key_pem.is_none() {
            return Err(JwtConfigError::new(
                SETTING_ALGORITHM,
                format!(
                    "is set, but it only applies to a public key: set {SETTING_PUBLIC_KEY_FILE} too, or remove it"
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

        let issuer = non_empty(settings.issuer, SETTING_ISSUER)?;
        let audience = non_empty(settings.audience, SETTING_AUDIENCE)?;
        for (name, value) in [
            ("org claim", &settings.org_claim),
            ("groups claim", &settings.groups_claim),
            ("roles claim", &settings.roles_claim),
        ] {
            if value.is_empty() {
                return Err(JwtConfigError {
                    message: format!("the JWT {name} name is empty"),
                });
            }
        }

        let keys = if let Some(secret) = settings.hs256_secret {
            if secret.is_empty() {
                return Err(JwtConfigError::new(
                    SETTING_HS256_SECRET,
                    "is empty: set a long random secret (32 bytes or more)",
                ));
            }
            if secret.len() < 32 {
                tracing::warn!(
                    "the JWT HS256 secret is shorter than 32 bytes; a long random secret is much harder to guess"
                );
            }
            Keys::Single(Arc::new(TrustedKey {
                kid: None,
                alg: Algorithm::HS256,
                key: DecodingKey::from_secret(secret.as_bytes()),
            }))
        } else if let Some(pem) = settings.public_key_pem {
            let Some(alg) = settings.public_key_algorithm else {
                return Err(JwtConfigError::new(
                    SETTING_ALGORITHM,
                    format!(
                        "is required with {SETTING_PUBLIC_KEY_FILE}: set it to {PUBLIC_KEY_ALGORITHMS}"
                    ),
                ));
            };
            let alg = parse_public_key_algorithm(&alg)?;
            let key = parse_public_key_pem(&pem, alg)
                .map_err(|problem| JwtConfigError::new(SETTING_PUBLIC_KEY_FILE, problem))?;
            Keys::Single(Arc::new(TrustedKey {
                kid: None,
                alg,
                key,
            }))
        } else if let Some(json) = settings.jwks_json {
            let set = KeySet::parse(&json)
                .map_err(|problem| JwtConfigError::new(SETTING_JWKS_FILE, problem))?;
            Keys::JwksFile(set)
        } else if let Some(url) = settings.jwks_url {
            Keys::JwksUrl(RemoteJwks::boot(&url, settings.jwks_min_refresh_interval).await?)
        } else {
            return Ok(None);
        };

        let mut validation = Validation::new(Algorithm::HS256);
        let mut leeway = settings.leeway.as_secs();
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
        if let Some(iss) = &issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        if let Some(aud) = &audience {
            validation.set_audience(&[aud]);
            validation.validate_aud = true;
            required.push("aud");
        } else {
            validation.validate_aud = false;
        }
        validation.set_required_spec_claims(&required);

        Ok(Some(JwtVerifier {
            keys,
            validation,
            issuer,
            audience,
            org_claim: settings.org_claim,
            groups_claim: settings.groups_claim,
            roles_claim: settings.roles_claim,
            default_org: settings.default_org,
        }))
    }

    /// What this verifier trusts, for a boot log line: e.g. `RS256 public key`, or
    /// `JWKS URL https://idp.example/jwks.json (2 keys)`. Holds no key material.
    pub fn describe(&self) -> String {
        match &self.keys {
            Keys::Single(key) if key.alg == Algorithm::HS256 => "HS256 shared secret".to_string(),
            Keys::Single(key) => format!("{} public key", alg_name(key.alg)),
            Keys::JwksFile(set) => format!("JWKS file ({} keys)", set.keys.len()),
            Keys::JwksUrl(remote) => format!(
                "JWKS URL {} ({} keys)",
                redact_url(&remote.url),
                remote.current().keys.len()
            ),
        }
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
        let key = self.key_for(&header).await?;
        let mut validation = self.validation.clone();
        validation.algorithms = vec![key.alg];
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)
            .map_err(|e| self.explain(e.kind(), &header, &key))?;
        self.principal(&data.claims)
    }

    async fn key_for(&self, header: &Header) -> Result<Arc<TrustedKey>, TokenError> {
        let kid = header.kid.as_deref();
        match &self.keys {
            Keys::Single(key) => Ok(key.clone()),
            Keys::JwksFile(set) => pick_or_refuse(set.pick(kid, header.alg), kid),
            Keys::JwksUrl(remote) => remote.key_for(kid, header.alg).await,
        }
    }

    /// The algorithms this gateway accepts, for messages.
    fn accepted(&self) -> String {
        let names = |set: &KeySet| {
            set.keys
                .iter()
                .map(|k| alg_name(k.alg))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(", ")
        };
        match &self.keys {
            Keys::Single(key) => alg_name(key.alg).to_string(),
            Keys::JwksFile(set) => names(set),
            Keys::JwksUrl(remote) => names(&remote.current()),
        }
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
                self.accepted()
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

    fn principal(&self, claims: &Map<String, Value>) -> Result<VerifiedToken, TokenError> {
        let user_id = match claims.get("sub") {
            Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
            _ => {
                return Err(invalid(
                    "the token's `sub` claim (the user id) is missing, empty or not a string",
                ));
            }
        };
        let org_id = match claims.get(&self.org_claim) {
            None | Some(Value::Null) => self.default_org.clone(),
            Some(Value::String(org)) if !org.is_empty() => org.clone(),
            Some(_) => {
                return Err(invalid(format!(
                    "the token's `{}` claim (the org) is not a non-empty string",
                    self.org_claim
                )));
            }
        };
        let groups = string_list(claims, &self.groups_claim)?;
        let roles = string_list(claims, &self.roles_claim)?;
        let expires_at = match claims.get("exp") {
            Some(Value::Number(n)) => n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && *f >= 0.0)
                    .map(|f| f.round() as u64)
            }),
            _ => None,
        }
        .ok_or_else(|| {
            invalid("the token's `exp` claim is not a time in seconds since the epoch")
        })?;
        Ok(VerifiedToken {
            principal: Principal {
                user_id: Some(user_id),
                org_id,
                groups,
                roles,
                anonymous: false,
            },
            expires_at,
        })
    }
}

impl KeySet {
    /// Read a JWKS document, keeping the keys this gateway can verify with. Fails when
    /// the document does not parse or no key is usable.
    fn parse(json: &str) -> Result<KeySet, String> {
        #[derive(serde::Deserialize)]
        struct RawSet {
            keys: Vec<Value>,
        }
        let raw: RawSet = serde_json::from_str(json).map_err(|e| {
            format!(
                "is not a JWKS document (a JSON object with a `keys` array): JSON error at line {}, column {}",
                e.line(),
                e.column()
            )
        })?;
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        for (index, value) in raw.keys.into_iter().enumerate() {
            let kid = value.get("kid").and_then(Value::as_str).map(show_text);
            let label = match &kid {
                Some(kid) => format!("key {kid}"),
                None => format!("key #{}", index + 1),
            };
            match serde_json::from_value::<Jwk>(value)
                .map_err(|_| "is not a JWK this gateway can read".to_string())
                .and_then(|jwk| trusted_key_from_jwk(&jwk))
            {
                Ok(key) => keys.push(Arc::new(key)),
                Err(reason) => {
                    tracing::warn!(key = %label, reason = %reason, "JWKS key skipped");
                    skipped.push(format!("{label} {reason}"));
                }
            }
        }
        if keys.is_empty() {
            return Err(if skipped.is_empty() {
                "has no keys".to_string()
            } else {
                format!("has no usable signing key: {}", skipped.join("; "))
            });
        }
        Ok(KeySet { keys })
    }

    /// The key for a token: by `kid`; without one, the only key of a one-key set. A
    /// one-key set whose key has no `kid` serves any token.
    fn pick(&self, kid: Option<&str>, alg: Algorithm) -> Pick {
        if let [only] = self.keys.as_slice()
            && (kid.is_none() || only.kid.is_none())
        {
            return Pick::Found(only.clone());
        }
        let Some(kid) = kid else {
            return Pick::NoKid;
        };
        let mut matching = self
            .keys
            .iter()
            .filter(|k| k.kid.as_deref() == Some(kid))
            .peekable();
        let Some(first) = matching.peek().cloned() else {
            return Pick::UnknownKid;
        };
        // Two keys may share a kid with different algorithms: prefer the token's.
        let chosen = matching.find(|k| k.alg == alg).unwrap_or(first);
        Pick::Found(chosen.clone())
    }
}

fn pick_or_refuse(pick: Pick, kid: Option<&str>) -> Result<Arc<TrustedKey>, TokenError> {
    match pick {
        Pick::Found(key) => Ok(key),
        Pick::UnknownKid => Err(invalid(format!(
            "the token's key id {} is not one of the keys this gateway trusts",
            kid.map(show_text).unwrap_or_default()
        ))),
        Pick::NoKid => Err(invalid(
            "the token has no `kid` (key id) header, and this gateway trusts more than one key: the token must name its key",
        )),
    }
}

impl RemoteJwks {
    async fn boot(url: &str, min_refresh_interval: Duration) -> Result<RemoteJwks, JwtConfigError> {
        let parsed = reqwest::Url::parse(url).map_err(|_| {
            JwtConfigError::new(
                SETTING_JWKS_URL,
                "is not a URL (e.g. https://idp.example/.well-known/jwks.json)",
            )
        })?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err(JwtConfigError::new(
                SETTING_JWKS_URL,
                "must be an https:// (or http://) URL",
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(JWKS_FETCH_TIMEOUT)
            .build()
            .map_err(|_| {
                JwtConfigError::new(SETTING_JWKS_URL, "the HTTP client could not be set up")
            })?;
        let set = fetch_jwks(&client, &parsed).await.map_err(|problem| {
            JwtConfigError::new(
                SETTING_JWKS_URL,
                format!(
                    "the JWKS at {} could not be loaded: {problem}",
                    redact_url(&parsed)
                ),
            )
        })?;
        tracing::info!(url = %redact_url(&parsed), keys = set.keys.len(), "JWKS loaded");
        Ok(RemoteJwks {
            url: parsed,
            client,
            min_refresh_interval,
            current: RwLock::new(Arc::new(set)),
            refresh: tokio::sync::Mutex::new(None),
        })
    }

    fn current(&self) -> Arc<KeySet> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The key for a token; on an unknown `kid`, fetch the JWKS again unless a fetch
    /// happened within `min_refresh_interval`. One fetch at a time: verifications that
    /// arrive meanwhile wait for it and use its result.
    async fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<TrustedKey>, TokenError> {
        match self.current().pick(kid, alg) {
            Pick::UnknownKid => {}
            pick => return pick_or_refuse(pick, kid),
        }
        let mut last = self.refresh.lock().await;
        // Another verification may have refreshed while this one waited.
        match self.current().pick(kid, alg) {
            Pick::UnknownKid => {}
            pick => return pick_or_refuse(pick, kid),
        }
        if let Some(previous) = *last
            && previous.at.elapsed() < self.min_refresh_interval
        {
            return if previous.ok {
                pick_or_refuse(Pick::UnknownKid, kid)
            } else {
                Err(TokenError::Unavailable)
            };
        }
        let fetched = fetch_jwks(&self.client, &self.url).await;
        *last = Some(LastRefresh {
            at: Instant::now(),
            ok: fetched.is_ok(),
        });
        match fetched {
            Ok(set) => {
                tracing::info!(url = %redact_url(&self.url), keys = set.keys.len(), "JWKS refreshed");
                let set = Arc::new(set);
                *self
                    .current
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = set.clone();
                pick_or_refuse(set.pick(kid, alg), kid)
            }
            Err(problem) => {
                tracing::warn!(
                    url = %redact_url(&self.url),
                    problem = %problem,
                    "JWKS refresh failed; keeping the keys already loaded"
                );
                Err(TokenError::Unavailable)
            }
        }
    }
}

async fn fetch_jwks(client: &reqwest::Client, url: &reqwest::Url) -> Result<KeySet, String> {
    let describe = |e: reqwest::Error| {
        if e.is_timeout() {
            "the request timed out".to_string()
        } else if e.is_connect() {
            "could not connect".to_string()
        } else {
            e.without_url().to_string()
        }
    };
    let mut response = client
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(describe)?;
    if !response.status().is_success() {
        return Err(format!("the server answered HTTP {}", response.status()));
    }
    if response
        .content_length()
        .is_some_and(|len| len > MAX_JWKS_BYTES as u64)
    {
        return Err(format!(
            "the document is larger than {MAX_JWKS_BYTES} bytes"
        ));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(describe)? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_JWKS_BYTES {
            return Err(format!(
                "the document is larger than {MAX_JWKS_BYTES} bytes"
            ));
        }
    }
    let text =
        std::str::from_utf8(&body).map_err(|_| "the document is not UTF-8 text".to_string())?;
    KeySet::parse(text).map_err(|problem| format!("the document {problem}"))
}

/// The algorithm a JWK verifies: its own `alg`, or the one its key type implies; the
/// two must agree with the key type.
fn trusted_key_from_jwk(jwk: &Jwk) -> Result<TrustedKey, String> {
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

fn string_list(claims: &Map<String, Value>, claim: &str) -> Result<Vec<String>, TokenError> {
    let not_strings = || {
        invalid(format!(
            "the token's `{claim}` claim is not a list of strings"
        ))
    };
    match claims.get(claim) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(one)) => Ok(vec![one.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_string).ok_or_else(not_strings))
            .collect(),
        Some(_) => Err(not_strings()),
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

fn invalid(message: impl Into<String>) -> TokenError {
    TokenError::Invalid(message.into())
}

fn malformed() -> TokenError {
    invalid("the token is not a well-formed JWT (three base64url parts separated by dots)")
}

fn alg_name(alg: Algorithm) -> &'static str {
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

/// Text from a token or a setting, quoted for a message when short and plain; other
/// text is not repeated.
fn show_text(text: &str) -> String {
    let plain = text.len() <= 128
        && text
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '`' && c != '"' && c != '\\');
    if plain {
        format!("`{text}`")
    } else {
        "(not shown)".to_string()
    }
}

/// A URL without user info, query or fragment, which may hold credentials.
fn redact_url(url: &reqwest::Url) -> String {
    format!("{}{}", url.origin().ascii_serialization(), url.path())
}

fn redact_url_text(url: &str) -> String {
    reqwest::Url::parse(url)
        .map(|u| redact_url(&u))
        .unwrap_or_else(|_| "<not a URL>".to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::extract::State;
    use axum::http::StatusCode;
    use jsonwebtoken::EncodingKey;
    use rsa::pkcs8::DecodePublicKey as _;
    use serde_json::json;

    use super::*;

    const RSA_PRIVATE: &str = include_str!("../tests/fixtures/jwt/rsa_private.pem");
    const RSA_PUBLIC: &str = include_str!("../tests/fixtures/jwt/rsa_public.pem");
    const RSA2_PRIVATE: &str = include_str!("../tests/fixtures/jwt/rsa2_private.pem");
    const RSA2_PUBLIC: &str = include_str!("../tests/fixtures/jwt/rsa2_public.pem");
    const EC_PRIVATE: &str = include_str!("../tests/fixtures/jwt/ec_private.pem");
    const EC_PUBLIC: &str = include_str!("../tests/fixtures/jwt/ec_public.pem");
    const ED_PRIVATE: &str = include_str!("../tests/fixtures/jwt/ed25519_private.pem");
    const ED_PUBLIC: &str = include_str!("../tests/fixtures/jwt/ed25519_public.pem");

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

    // ---- a JWKS server whose document the test can swap and whose fetches it counts

    #[derive(Clone)]
    struct JwksState {
        response: Arc<Mutex<(u16, String)>>,
        fetches: Arc<AtomicUsize>,
    }

    struct JwksServer {
        url: String,
        state: JwksState,
    }

    impl JwksServer {
        async fn start(document: String) -> JwksServer {
            async fn serve(State(state): State<JwksState>) -> (StatusCode, String) {
                state.fetches.fetch_add(1, Ordering::SeqCst);
                // Slow enough that concurrent verifications overlap with the fetch.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let (status, body) = state.response.lock().unwrap().clone();
                (StatusCode::from_u16(status).unwrap(), body)
            }
            let state = JwksState {
                response: Arc::new(Mutex::new((200, document))),
                fetches: Arc::new(AtomicUsize::new(0)),
            };
            let app = axum::Router::new()
                .route("/.well-known/jwks.json", axum::routing::get(serve))
                .with_state(state.clone());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            JwksServer {
                url: format!("http://{addr}/.well-known/jwks.json"),
                state,
            }
        }

        fn set(&self, status: u16, document: String) {
            *self.state.response.lock().unwrap() = (status, document);
        }

        fn fetches(&self) -> usize {
            self.state.fetches.load(Ordering::SeqCst)
        }

        fn settings(&self, interval: Duration) -> JwtSettings {
            JwtSettings {
                jwks_url: Some(self.url.clone()),
                jwks_min_refresh_interval: interval,
                ..JwtSettings::default()
            }
        }
    }

    // ---- happy paths

    #[test]
    fn verifier_can_be_shared_across_tasks() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<JwtVerifier>();
        shareable::<TokenError>();
        shareable::<JwtConfigError>();
    }

    #[tokio::test]
    async fn huge_leeway_is_capped_at_an_hour() {
        let v = verifier(JwtSettings {
            leeway: Duration::from_secs(u64::MAX / 2),
            ..hs_settings()
        })
        .await;
        let c = claims(json!({"exp": now() - 7200}));
        let token = sign(Algorithm::HS256, None, &hs_key(), &c);
        assert_eq!(v.verify(&token).await, Err(TokenError::Expired));
    }

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
        ] {
            let token = sign(Algorithm::HS256, None, &hs_key(), &claims(extra.clone()));
            let message = refused(v.verify(&token).await);
            assert!(message.contains(needle), "{extra}: {message}");
        }
    }

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

    #[tokio::test]
    async fn jwks_url_happy_path_and_key_rotation() {
        let server =
            JwksServer::start(jwks(vec![rsa_jwk(RSA_PUBLIC, Some("k1"), Some("RS256"))])).await;
        let v = verifier(JwtSettings {
            groups_claim: "teams".into(),
            ..server.settings(Duration::from_secs(1))
        })
        .await;
        assert_eq!(server.fetches(), 1, "fetched once at boot");
        assert!(v.describe().starts_with("JWKS URL http://127.0.0.1:"));

        let c = claims(json!({"org_id": "acme", "teams": ["t1"]}));
        let k1 = sign(Algorithm::RS256, Some("k1"), &rsa_key(), &c);
        let p = v.verify(&k1).await.unwrap().principal;
        assert_eq!(
            (p.org_id.as_str(), p.groups.clone()),
            ("acme", vec!["t1".to_string()])
        );
        assert_eq!(server.fetches(), 1, "a known kid needs no fetch");

        // The issuer rotates to k2 and drops k1.
        server.set(
            200,
            jwks(vec![rsa_jwk(RSA2_PUBLIC, Some("k2"), Some("RS256"))]),
        );
        let k2 = sign(Algorithm::RS256, Some("k2"), &rsa2_key(), &c);
        assert_eq!(v.verify(&k2).await.unwrap().principal.org_id, "acme");
        assert_eq!(server.fetches(), 2, "the unknown kid caused one refetch");
        // k1 is gone, and within the interval there is no refetch for it.
        assert!(refused(v.verify(&k1).await).contains("`k1` is not one of the keys"));
        assert!(v.verify(&k2).await.is_ok());
        assert_eq!(server.fetches(), 2);

        // After the interval an unknown kid refetches again.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        server.set(
            200,
            jwks(vec![
                rsa_jwk(RSA_PUBLIC, Some("k1"), Some("RS256")),
                rsa_jwk(RSA2_PUBLIC, Some("k2"), Some("RS256")),
            ]),
        );
        assert!(v.verify(&k1).await.is_ok());
        assert!(v.verify(&k2).await.is_ok());
        assert_eq!(server.fetches(), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn jwks_url_refresh_rate_is_bounded() {
        let server = JwksServer::start(jwks(vec![rsa_jwk(RSA_PUBLIC, Some("k1"), None)])).await;
        let v = Arc::new(verifier(server.settings(Duration::from_secs(30))).await);
        assert_eq!(server.fetches(), 1);

        let c = claims(json!({}));
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let v = v.clone();
                let token = sign(
                    Algorithm::RS256,
                    Some(&format!("unknown-{i}")),
                    &rsa2_key(),
                    &c,
                );
                tokio::spawn(async move { v.verify(&token).await })
            })
            .collect();
        for task in tasks {
            assert!(refused(task.await.unwrap()).contains("is not one of the keys"));
        }
        assert_eq!(server.fetches(), 2, "40 unknown kids at once: one refetch");

        // Even a kid that the JWKS now has waits for the interval.
        server.set(200, jwks(vec![rsa_jwk(RSA2_PUBLIC, Some("k2"), None)]));
        let token = sign(Algorithm::RS256, Some("k2"), &rsa2_key(), &c);
        assert!(refused(v.verify(&token).await).contains("`k2` is not one of the keys"));
        assert_eq!(server.fetches(), 2);
        // Known keys keep working throughout.
        let token = sign(Algorithm::RS256, Some("k1"), &rsa_key(), &c);
        assert!(v.verify(&token).await.is_ok());
    }

    #[tokio::test]
    async fn jwks_url_down_after_boot_is_unavailable_for_unknown_keys_only() {
        let server = JwksServer::start(jwks(vec![ec_jwk("k1")])).await;
        let v = verifier(server.settings(Duration::from_secs(30))).await;
        server.set(503, "down".into());
        let c = claims(json!({}));
        let unknown = sign(Algorithm::ES256, Some("k9"), &ec_key(), &c);
        assert_eq!(v.verify(&unknown).await, Err(TokenError::Unavailable));
        assert_eq!(server.fetches(), 2);
        // Within the interval: still unavailable, without another fetch.
        assert_eq!(v.verify(&unknown).await, Err(TokenError::Unavailable));
        assert_eq!(server.fetches(), 2);
        // The cached key still verifies.
        let known = sign(Algorithm::ES256, Some("k1"), &ec_key(), &c);
        assert!(v.verify(&known).await.is_ok());
    }

    #[tokio::test]
    async fn jwks_url_that_cannot_be_fetched_at_boot_is_a_config_error() {
        // A port nobody listens on.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let message = config_error(JwtSettings {
            jwks_url: Some(format!(
                "http://user:pw@127.0.0.1:{port}/jwks.json?token=abc"
            )),
            ..JwtSettings::default()
        })
        .await;
        assert!(message.contains("--jwks-url"), "{message}");
        assert!(
            !message.contains("pw") && !message.contains("token=abc"),
            "{message}"
        );

        let server = JwksServer::start("not json".into()).await;
        let message = config_error(server.settings(Duration::from_secs(30))).await;
        assert!(
            message.contains("--jwks-url") && message.contains("not a JWKS"),
            "{message}"
        );
        server.set(500, jwks(vec![ec_jwk("k1")]));
        let message = config_error(server.settings(Duration::from_secs(30))).await;
        assert!(message.contains("HTTP 500"), "{message}");
    }

    // ---- refusals

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
    async fn expired_token_is_refused_beyond_the_leeway() {
        let v = verifier(hs_settings()).await;
        let token = sign(
            Algorithm::HS256,
            None,
            &hs_key(),
            &claims(json!({"exp": now() - 3600})),
        );
        let error = v.verify(&token).await.unwrap_err();
        assert_eq!(error, TokenError::Expired);
        assert_eq!(error.to_string(), "the token expired");
        // Within the 30 s leeway: accepted.
        let token = sign(
            Algorithm::HS256,
            None,
            &hs_key(),
            &claims(json!({"exp": now() - 5})),
        );
        assert!(v.verify(&token).await.is_ok());
    }

    #[tokio::test]
    async fn token_not_yet_valid_is_refused() {
        let v = verifier(hs_settings()).await;
        let token = sign(
            Algorithm::HS256,
            None,
            &hs_key(),
            &claims(json!({"nbf": now() + 3600})),
        );
        assert!(refused(v.verify(&token).await).contains("not valid yet"));
        let token = sign(
            Algorithm::HS256,
            None,
            &hs_key(),
            &claims(json!({"nbf": now() + 5})),
        );
        assert!(v.verify(&token).await.is_ok(), "within the leeway");
    }

    #[tokio::test]
    async fn wrong_or_missing_issuer_is_refused() {
        let v = verifier(JwtSettings {
            issuer: Some("https://idp.example".into()),
            ..hs_settings()
        })
        .await;
        let token = sign(
            Algorithm::HS256,
            None,
            &hs_key(),
            &claims(json!({"iss": "https://evil.example"})),
        );
        let message = refused(v.verify(&token).await);
        assert!(
            message.contains("issuer") && message.contains("not the one this gateway trusts"),
            "{message}"
        );
        let token = sign(Algorithm::HS256, None, &hs_key(), &claims(json!({})));
        assert!(refused(v.verify(&token).await).contains("no `iss` claim"));
        let token = sign(
            Algorithm::HS256,
            None,
            &hs_key(),
            &claims(json!({"iss": "https://idp.example"})),
        );
        assert!(v.verify(&token).await.is_ok());
    }

    #[tokio::test]
    async fn wrong_or_missing_audience_is_refused() {
        let v = verifier(JwtSettings {
            audience: Some("switchboard".into()),
            ..hs_settings()
        })
        .await;
        let token = sign(
            Algorithm::HS256,
            None,
            &hs_key(),
            &claims(json!({"aud": "other"})),
        );
        let message = refused(v.verify(&token).await);
        assert!(
            message.contains("audience (`aud`) does not include `switchboard`"),
            "{message}"
        );
        let token = sign(Algorithm::HS256, None, &hs_key(), &claims(json!({})));
        assert!(refused(v.verify(&token).await).contains("no `aud` claim"));
        for aud in [json!("switchboard"), json!(["other", "switchboard"])] {
            let token = sign(
                Algorithm::HS256,
                None,
                &hs_key(),
                &claims(json!({"aud": aud})),
            );
            assert!(v.verify(&token).await.is_ok());
        }
        // Without a configured audience, `aud` is not checked.
        let v = verifier(hs_settings()).await;
        let token = sign(
            Algorithm::HS256,
            None,
            &hs_key(),
            &claims(json!({"aud": "anything"})),
        );
        assert!(v.verify(&token).await.is_ok());
    }

    #[tokio::test]
    async fn missing_exp_is_refused() {
        let v = verifier(hs_settings()).await;
        let token = sign(
            Algorithm::HS256,
            None,
            &hs_key(),
            &claims(json!({"exp": null})),
        );
        assert!(refused(v.verify(&token).await).contains("no `exp` claim"));
        let token = sign(
            Algorithm::HS256,
            None,
            &hs_key(),
            &claims(json!({"exp": "tomorrow"})),
        );
        assert!(refused(v.verify(&token).await).contains("`exp`"));
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

    #[tokio::test]
    async fn malformed_tokens_are_refused() {
        let v = verifier(hs_settings()).await;
        for token in ["", "abc", "a.b", "a.b.c.d", "!!.!!.!!", &"x".repeat(20_000)] {
            assert!(v.verify(token).await.is_err(), "{token}");
        }
        let header = b64(br#"{"alg":"HS256","crit":["exp"]}"#);
        let token = format!(
            "{header}.{}.sig",
            b64(claims(json!({})).to_string().as_bytes())
        );
        assert!(v.verify(&token).await.is_err());
    }

    // ---- configuration

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
            message.contains("--jwt-hs256-secret")
                && message.contains("SWITCHBOARD_JWT_HS256_SECRET"),
            "{message}"
        );
        let message = config_error(JwtSettings {
            jwks_url: Some("ftp://idp.example/jwks".into()),
            ..JwtSettings::default()
        })
        .await;
        assert!(message.contains("--jwks-url"), "{message}");
    }

    #[tokio::test]
    async fn no_message_contains_the_token_or_the_secret() {
        let v = verifier(JwtSettings {
            issuer: Some("iss-1".into()),
            audience: Some("aud-1".into()),
            ..hs_settings()
        })
        .await;
        let good = json!({"iss": "iss-1", "aud": "aud-1"});
        let mut tokens = vec![
            sign(
                Algorithm::HS256,
                None,
                &hs_key(),
                &claims(json!({"iss": "iss-1", "aud": "aud-1", "exp": now() - 999})),
            ),
            sign(
                Algorithm::HS256,
                None,
                &hs_key(),
                &claims(json!({"iss": "iss-2", "aud": "aud-1"})),
            ),
            sign(
                Algorithm::HS256,
                None,
                &hs_key(),
                &claims(json!({"iss": "iss-1", "aud": "aud-2"})),
            ),
            sign(
                Algorithm::HS256,
                None,
                &hs_key(),
                &claims(json!({"iss": "iss-1", "aud": "aud-1", "exp": null})),
            ),
            sign(
                Algorithm::HS256,
                None,
                &hs_key(),
                &claims(json!({"iss": "iss-1", "aud": "aud-1", "nbf": now() + 999})),
            ),
            sign(
                Algorithm::HS256,
                None,
                &EncodingKey::from_secret(b"wrong"),
                &claims(good.clone()),
            ),
            sign(
                Algorithm::RS256,
                Some("kid-1"),
                &rsa_key(),
                &claims(good.clone()),
            ),
            unsigned_token("none", &claims(good.clone())),
            format!(
                "{}.{}.{}",
                b64(SECRET.as_bytes()),
                b64(SECRET.as_bytes()),
                b64(SECRET.as_bytes())
            ),
        ];
        tokens.push(format!("{}x", tokens[0]));
        for token in &tokens {
            let error = v.verify(token).await.unwrap_err();
            for text in [error.to_string(), format!("{error:?}")] {
                assert!(!text.contains(SECRET), "{text}");
                for part in token.split('.').filter(|p| p.len() >= 8) {
                    assert!(!text.contains(part), "{text} holds part of the token");
                }
            }
        }
        let debug = format!("{:?}", hs_settings());
        assert!(
            !debug.contains(SECRET) && debug.contains("<redacted>"),
            "{debug}"
        );
        let debug = format!("{v:?}");
        assert!(!debug.contains(SECRET), "{debug}");
        let debug = format!("{:?}", pem_settings(RSA_PUBLIC, "RS256"));
        assert!(!debug.contains("BEGIN"), "{debug}");
    }
}
