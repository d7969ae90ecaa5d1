//! The keys of a JWKS document that this gateway can use, and the one a token names.
//!
//! A key the gateway cannot use (a symmetric key, an encryption key, an unknown curve)
//! is skipped with a warning rather than failing the whole document, so an issuer that
//! publishes more than signing keys still works.

use std::sync::Arc;

use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::Jwk;
use serde_json::Value;

use super::keys::{TrustedKey, trusted_key_from_jwk};
use super::text::show_text;
use super::verify::{TokenError, invalid};

/// The usable keys of a JWKS document.
pub(super) struct KeySet {
    pub(super) keys: Vec<Arc<TrustedKey>>,
}

/// The outcome of looking a token's key up in a [`KeySet`].
pub(super) enum Pick {
    Found(Arc<TrustedKey>),
    UnknownKid,
    NoKid,
}

impl KeySet {
    /// Read a JWKS document, keeping the keys this gateway can verify with. Fails when
    /// the document does not parse or no key is usable.
    pub(super) fn parse(json: &str) -> Result<KeySet, String> {
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
    pub(super) fn pick(&self, kid: Option<&str>, alg: Algorithm) -> Pick {
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

/// The picked key, or why the token is refused.
pub(super) fn pick_or_refuse(pick: Pick, kid: Option<&str>) -> Result<Arc<TrustedKey>, TokenError> {
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
