//! JWT verification: which keys a deployment trusts, and the principal a verified
//! token names.
//!
//! - `settings`: [`JwtSettings`], the `SETTING_*` names used in messages, and the
//!   checks that refuse a configuration that cannot work (exactly one key source).
//! - `keys`: the trusted keys, each pinned to one algorithm; PEM parsing and the
//!   checks every key passes when loaded (e.g. RSA size).
//! - `key_set`: the usable keys of a JWKS document, and picking one by `kid`.
//! - `jwks`: a JWKS URL, fetched at boot and again on an unknown `kid`, at most once
//!   per interval.
//! - `verify`: [`JwtVerifier`], which checks a token and says why one is refused.
//! - `claims`: the principal derived from a verified token's claims.
//! - `text`: text from tokens and settings made safe for messages and logs.
//!
//! Nothing here logs or returns the token, the secret or key material.

mod claims;
mod jwks;
mod key_set;
mod keys;
mod settings;
mod text;
mod verify;

pub use claims::VerifiedToken;
pub use settings::{
    JwtConfigError, JwtSettings, PUBLIC_KEY_ALGORITHMS, SETTING_ALGORITHM, SETTING_AUDIENCE,
    SETTING_HS256_SECRET, SETTING_ISSUER, SETTING_JWKS_FILE, SETTING_JWKS_URL,
    SETTING_PUBLIC_KEY_FILE,
};
pub use verify::{JwtVerifier, TokenError};

#[cfg(test)]
mod tests;
