//! Switchboard: a WebSocket-first realtime chat gateway. The contract it keeps is
//! `docs/protocol.md`.
//!
//! # Follow one message
//!
//! A browser sends `{"type":"message.send",…}` on `/ws`:
//!
//! 1. [`http::ws`] upgraded the socket, having read the credentials into an access
//!    context ([`access::auth`]), and handed it to [`connection::serve`].
//! 2. [`connection::reader`] reads the frame: rate limit, size, JSON; too many bad
//!    frames close with 4029, an oversize one with 1009.
//! 3. [`connection::commands`] carries out the parsed frame; a message goes to
//!    [`assistant::intake`], the one place a message is accepted: membership and every
//!    other permission are asked of **[`access::policy`]**, the idempotency key is
//!    reserved ([`records::idempotency`]), and the `message` event is appended.
//! 4. [`fanout::events`] appends it to the session's stream: the backplane assigns its
//!    **`seq`** there (memory, Redis or NATS: `switchboard_backplane::Backplane`).
//! 5. On every replica with members of that session, [`fanout::hub`]'s one
//!    subscription receives the event, serializes it once and hands the bytes to each
//!    member's [`fanout::outbound`] queue without waiting; a queue that overflows is
//!    a **slow consumer, closed with 4008** (`Outbound::overflowed`, the one place).
//! 6. [`connection::writer`] writes the queue to the socket, in batches.
//! 7. Off that path, [`conversations::writer`] keeps the durable events (messages,
//!    turn ends, tool events) in the conversation store ([`store`]), where a join
//!    older than the backplane's history finds them ([`conversations::replay`]);
//!    and [`webhooks`] tells the org's endpoints subscribed to `message.created`,
//!    signed and retried, without the append waiting for them.
//!
//! Meanwhile the intake queued a turn: [`assistant::turns`] runs it (retrieval from
//! [`assistant::knowledge`] with the asker's access context, a reply from
//! [`assistant::model`], tools after [`assistant::approvals`]) and appends its events
//! by the same path.
//!
//! # Layout
//!
//! Lower layers never import higher ones, and no file outgrows 600 lines
//! (`server/tests/gateway/layers.rs` checks both):
//!
//! - [`error`], [`ids`], [`metrics`], [`shutdown`], [`config`], [`health`]: what
//!   everything shares — client errors with protocol codes, ids, Prometheus metrics,
//!   the replica's lifecycle, every flag with its limit, and dependency checks;
//! - [`backplane`], [`store`]: connect the configured backplane and open the
//!   conversation store; [`telemetry`]: OpenTelemetry spans and their export;
//! - [`webhooks`]: outgoing webhooks — registration, signed deliveries with retries,
//!   bounded queues, the delivery log;
//! - [`records`]: shared records — sessions, idempotency keys, and the list of every
//!   record namespace;
//! - [`access`]: who a caller is (tokens, API keys, JWT verification), and **every
//!   permission decision**;
//! - [`conversations`]: transcripts (kept off the hot path, replayed past the
//!   history) and their lifecycle — list, rename, archive, delete, export, erase,
//!   retention;
//! - [`fanout`]: the event path — append, one subscription per stream, the bounded
//!   queue per connection;
//! - [`presence`]: who is in a session and who is typing, across replicas, never in
//!   history;
//! - [`assistant`]: accepting messages, turns, the model providers and the prompt,
//!   knowledge, tools, approvals, the hints replicas send each other, per-org
//!   settings;
//! - [`state`]: everything above, wired together once;
//! - [`connection`]: one WebSocket — reader, commands, writer, heartbeats;
//! - [`reload`]: live configuration reload (SIGHUP, `POST /v1/admin/reload`);
//! - [`http`]: the router — `/ws`, the `/v1` API, operations, the widget;
//! - [`cli`]: the command line — `serve`, `publish`.

pub mod access;
pub mod assistant;
pub mod backplane;
pub mod cli;
pub mod config;
pub mod connection;
pub mod conversations;
pub mod error;
pub mod fanout;
pub mod health;
pub mod http;
pub mod ids;
pub mod metrics;
pub mod presence;
pub mod records;
pub mod reload;
pub mod shutdown;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod webhooks;

#[cfg(test)]
pub(crate) mod test_backplane;

pub use http::app;
pub use state::AppState;
