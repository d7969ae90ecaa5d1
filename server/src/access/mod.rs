//! Who a caller is, and what it may do.
//!
//! - [`auth`]: credentials → a caller: the access context fixed at the WebSocket
//!   handshake (replaced only by a verified `auth.refresh`), or the API key or token of
//!   an HTTP request.
//! - [`policy`]: **every permission decision** of the gateway — join, send, cancel,
//!   decide a tool call, refresh, publish, post an operator message, read history,
//!   act in a session over HTTP (`policy::http_member`), administer an org — in one
//!   module, as one table.
//! - [`jwt`]: verifying tokens (HS256, RS256, ES256, EdDSA, JWKS).

pub mod auth;
pub mod jwt;
pub mod policy;

pub use auth::{Authenticated, Authenticator, Caller};

/// The access context of a connection or a request: its principal, fixed at the
/// handshake. Everything that decides what a caller may see takes it.
pub type AccessContext = switchboard_protocol::Principal;
