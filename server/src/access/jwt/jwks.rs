//! A JWKS URL: fetched at boot, cached, and fetched again when a token names a key id
//! the gateway does not know yet (key rotation).
//!
//! Refreshes are bounded — at most once per `jwks_min_refresh_interval`, one fetch at a
//! time — so a flood of tokens with made-up key ids cannot make the gateway hammer the
//! identity provider. When a refresh fails, the keys already loaded keep working and
//! only tokens naming an unknown key are refused, as a temporary failure.
//!
//! The JWKS decides which tokens are genuine, so it is fetched over `https` only
//! (plain `http` only with `--insecure-jwks-http-for-tests`), and a redirect is not
//! followed: it would let whoever answers the first URL name the keys.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;

use super::key_set::{KeySet, Pick, pick_or_refuse};
use super::keys::TrustedKey;
use super::settings::{JwtConfigError, SETTING_JWKS_INSECURE_HTTP, SETTING_JWKS_URL};
use super::text::redact_url;
use super::verify::TokenError;
use crate::health::{Probe, ProbeCache, ProbeStatus};

/// A JWKS document larger than this is refused.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// How long `/health/deep`'s check of the URL may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a check's result is reused.
const PROBE_TTL: Duration = Duration::from_secs(10);
/// How long one JWKS fetch may take.
const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The keys behind a JWKS URL, cached.
pub(super) struct RemoteJwks {
    url: reqwest::Url,
    client: reqwest::Client,
    min_refresh_interval: Duration,
    current: RwLock<Arc<KeySet>>,
    /// Held for the whole of a refresh, so concurrent verifications wait for one fetch
    /// instead of each starting their own. Holds the last refresh after boot.
    refresh: tokio::sync::Mutex<Option<LastRefresh>>,
    /// `/health/deep`'s checks of the URL, at most one per [`PROBE_TTL`].
    probes: ProbeCache,
}

#[derive(Clone, Copy)]
struct LastRefresh {
    at: Instant,
    ok: bool,
}

impl RemoteJwks {
    /// Fetch the JWKS at `url` once; a URL that cannot be fetched at boot is a
    /// configuration error, and so is a plain `http://` one unless
    /// `insecure_http_for_tests`.
    pub(super) async fn boot(
        url: &str,
        min_refresh_interval: Duration,
        insecure_http_for_tests: bool,
    ) -> Result<RemoteJwks, JwtConfigError> {
        let parsed = reqwest::Url::parse(url).map_err(|_| {
            JwtConfigError::new(
                SETTING_JWKS_URL,
                "is not a URL (e.g. https://idp.example/.well-known/jwks.json)",
            )
        })?;
        match parsed.scheme() {
            "https" => {}
            "http" if insecure_http_for_tests => {
                tracing::warn!(
                    "the JWKS is fetched over plain http ({SETTING_JWKS_INSECURE_HTTP}): anyone on the path can swap the keys; never do this in production"
                );
            }
            "http" => {
                return Err(JwtConfigError::new(
                    SETTING_JWKS_URL,
                    format!(
                        "must be an https:// URL: keys fetched over plain http can be swapped by anyone on the path ({SETTING_JWKS_INSECURE_HTTP} allows http for tests)"
                    ),
                ));
            }
            _ => {
                return Err(JwtConfigError::new(
                    SETTING_JWKS_URL,
                    "must be an https:// URL",
                ));
            }
        }
        let client = reqwest::Client::builder()
            .timeout(JWKS_FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
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
            probes: ProbeCache::new(PROBE_TTL),
        })
    }

    /// Whether the URL still serves a usable JWKS (for `/health/deep`; the keys in
    /// use are not replaced by it). Cached for [`PROBE_TTL`].
    pub(super) async fn probe(&self) -> Probe {
        self.probes
            .get_or_check(|| {
                Probe::timed(PROBE_TIMEOUT, async {
                    let loaded = self.current().keys.len();
                    match fetch_jwks(&self.client, &self.url).await {
                        Ok(set) => (
                            ProbeStatus::Ok,
                            format!(
                                "the JWKS URL serves {} keys; {loaded} in use",
                                set.keys.len()
                            ),
                        ),
                        // Tokens with known keys still verify; a rotation would not.
                        Err(problem) => (
                            ProbeStatus::Degraded,
                            format!(
                                "the JWKS URL could not be fetched ({problem}); the {loaded} keys loaded earlier still verify tokens"
                            ),
                        ),
                    }
                })
            })
            .await
    }

    /// The URL (without credentials) and how many keys it gave, for a boot log line.
    pub(super) fn describe(&self) -> String {
        format!(
            "JWKS URL {} ({} keys)",
            redact_url(&self.url),
            self.current().keys.len()
        )
    }

    /// The keys of the last successful fetch.
    pub(super) fn current(&self) -> Arc<KeySet> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The key for a token; on an unknown `kid`, fetch the JWKS again unless a fetch
    /// happened within `min_refresh_interval`. One fetch at a time: verifications that
    /// arrive meanwhile wait for it and use its result.
    pub(super) async fn key_for(
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

/// One GET of the JWKS, bounded in time and size. The error says what went wrong
/// without the URL, which may hold credentials.
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
    if response.status().is_redirection() {
        return Err(format!(
            "the server answered HTTP {}, a redirect, and redirects are not followed: configure the URL the keys are served at",
            response.status()
        ));
    }
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
