//! Limits per visitor address, and how a refusal is answered (docs/operations.md,
//! "Running on the public internet").
//!
//! - [`tcp_gate`]: at accept, by the TCP peer's address, and for the whole process;
//! - [`websocket_gate`]: at the `/ws` upgrade, by the client address
//!   (`http::client_ip`, through `--trusted-proxies`);
//! - [`address_limits`]: the per-address counts both use;
//! - [`refusal`]: the JSON error, 429 or 503, with `Retry-After`.

pub mod address_limits;
pub mod refusal;
pub mod tcp_gate;
pub mod websocket_gate;

pub use refusal::Refusal;
pub use tcp_gate::{ConnectionGate, ConnectionPermit};
pub use websocket_gate::WebSocketGate;
