//! How a receiver knows a delivery is the gateway's: every request carries its id, the
//! time it was sent and an HMAC-SHA256 over both and the body, keyed with the
//! endpoint's secret (docs/webhooks.md shows how to check it).

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The delivery's id: the payload's `id`, the same on every attempt.
pub const ID_HEADER: &str = "switchboard-webhook-id";
/// When this attempt was sent, in seconds since the Unix epoch.
pub const TIMESTAMP_HEADER: &str = "switchboard-webhook-timestamp";
/// `v1=<hex HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>`.
pub const SIGNATURE_HEADER: &str = "switchboard-webhook-signature";

/// What every secret starts with, so one found in a log or a repository is
/// recognisable.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new signing secret: [`SECRET_PREFIX`] and 32 random bytes, base64url.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The value of [`SIGNATURE_HEADER`]: the secret's UTF-8 bytes (the whole string as
/// shown, prefix included) key an HMAC-SHA256 of `"{id}.{timestamp}.{body}"`.
pub fn sign(secret: &str, id: &str, timestamp: u64, body: &str) -> String {
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("v1={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signed text is `id.timestamp.body`, and the primitive is HMAC-SHA256 (the
    /// RFC 4231 test case 2 vector).
    #[test]
    fn the_signature_is_hmac_sha256_of_id_timestamp_and_body() {
        let signature = sign("Jefe", "evt_1", 1_700_000_000, "{\"a\":1}");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"evt_1.1700000000.{\"a\":1}");
        let expected: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(signature, format!("v1={expected}"));
        let mut rfc = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        rfc.update(b"what do ya want for nothing?");
        let rfc: String = rfc
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            rfc,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn secrets_are_prefixed_random_and_long() {
        let (a, b) = (new_secret(), new_secret());
        assert!(a.starts_with(SECRET_PREFIX));
        assert_eq!(a.len(), SECRET_PREFIX.len() + 43);
        assert_ne!(a, b);
    }
}
