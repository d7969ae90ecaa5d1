//! Switchboard: a WebSocket-first realtime chat gateway.
//!
//! # Layout
//!
//! - [`config`]: `switchboard serve` flags and `SWITCHBOARD_*` variables; every limit
//!   with its default and what a client sees when it is exceeded.
//! - [`lingering_close`]: accepted connections read their peer's unread input before
//!   closing, so a refusal is not lost to a TCP reset.
//! - [`routes`]: the HTTP router (`/ws`, `/health`, `/ready`, `/metrics`); reads all a
//!   handshake can tell before the upgrade.
//! - [`connection`]: one socket — a reader task and a writer task joined by a bounded
//!   outbound queue; the client frames of protocol section 3.
//! - [`registry`]: which local connections are in which stream; one backplane
//!   subscription per stream, each event serialized once for all its recipients.
//! - [`events`]: the single path by which every event is appended to a stream.
//! - [`session`]: session records, who may join.
//! - [`idempotency`]: `client_message_id` and `idempotency_key`: retries append nothing.
//! - [`api`]: the `/v1` HTTP API (publish, operator messages, history, documents).
//! - [`jwt`]: JWT verification (HS256, RS256, ES256, EdDSA, JWKS).
//! - [`turn`]: agent turns, one at a time per session, owned by the session.
//! - [`agent`]: the `ModelProvider` trait, the offline agent, the OpenAI-compatible
//!   client, and the prompt (documents the asker may read, recent transcript).
//! - [`tools`]: tools the model may call, and the client that runs them.
//! - [`approvals`]: tool calls waiting for a member's decision, across replicas.
//! - [`model_settings`]: per-org model, system prompt and tools.
//! - [`knowledge`]: documents, who may read them (section 7), and search.
//! - [`backplanes`]: connects the configured backplane (memory, Redis, NATS).
//! - [`publish`]: `switchboard publish`, straight onto the backplane.
//! - [`auth`]: the access context fixed at the handshake.
//! - [`metrics`]: Prometheus metrics.
//! - [`shutdown`]: the replica's lifecycle (running, draining, closing).
//! - [`state`]: the shared state, and the heartbeat sweeper.
//! - [`error`]: errors that reach a client, always with a protocol code.
//! - [`widget`]: `/widget.js` and the demo page `/`, embedded from `widget/dist/`.

pub mod agent;
pub mod api;
pub mod approvals;
pub mod auth;
pub mod backplanes;
pub mod config;
pub mod connection;
pub mod error;
pub mod events;
pub mod idempotency;
pub mod jwt;
pub mod knowledge;
pub mod lingering_close;
pub mod metrics;
pub mod model_settings;
pub mod publish;
pub mod registry;
pub mod routes;
pub mod session;
pub mod shutdown;
pub mod state;
pub mod tools;
pub mod turn;
pub mod widget;

pub use routes::app;
pub use state::AppState;
