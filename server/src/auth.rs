//! Who a connection is. The access context is fixed at the handshake and passed to
//! everything that decides what the connection may see.
//!
//! This build accepts anonymous connections only; JWT verification is the seam
//! [`authenticate`] where a later change plugs in key configuration.

use switchboard_protocol::Principal;

use crate::error::ClientError;

/// The access context of a connection: its principal, fixed at the handshake.
pub type AccessContext = Principal;

/// Role that may join any session of its org (human handoff).
pub const ROLE_OPERATOR: &str = "operator";
/// Role that administers its org.
pub const ROLE_ADMIN: &str = "admin";

/// Whether `access` holds `role`.
pub fn has_role(access: &AccessContext, role: &str) -> bool {
    access.roles.iter().any(|r| r == role)
}

/// What the handshake offered as credentials. The token itself never reaches a log.
pub struct Credentials {
    pub token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Turn handshake credentials into an access context, failing closed: a token that
/// does not verify is `unauthorized`, never a silent downgrade to anonymous.
pub fn authenticate(
    credentials: &Credentials,
    allow_anonymous: bool,
    default_org: &str,
) -> Result<AccessContext, ClientError> {
    match &credentials.token {
        Some(_) => Err(ClientError::new(
            switchboard_protocol::ErrorCode::Unauthorized,
            "the token could not be verified: this gateway has no JWT key configured",
        )),
        None if allow_anonymous => Ok(Principal {
            user_id: None,
            org_id: default_org.to_string(),
            groups: Vec::new(),
            roles: Vec::new(),
            anonymous: true,
        }),
        None => Err(ClientError::new(
            switchboard_protocol::ErrorCode::Unauthorized,
            "this gateway does not accept anonymous connections: connect with ?token= or an Authorization: Bearer header",
        )),
    }
}
