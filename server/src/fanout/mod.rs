//! The event path: how an event gets into a stream and out to every local socket that
//! is a member of it.
//!
//! - [`events`]: [`events::Events::append`], the one way into a stream; the backplane
//!   assigns `seq` there.
//! - [`registry`]: which local connections are in which stream; joining live or with
//!   a replay of history, with no gap and no duplicate at the seam.
//! - [`hub`]: one backplane subscription per stream per replica; each event serialized
//!   once and handed to every member without waiting.
//! - [`outbound`]: each connection's bounded queue; where a slow consumer is decided
//!   (close 4008).
//! - [`replay_budget`]: how much history the replays of the process hold at once.

pub mod events;
pub mod hub;
pub mod outbound;
pub mod registry;
pub mod replay_budget;

pub use events::Events;
pub use hub::{ConnectionId, new_connection_id};
pub use outbound::Outbound;
pub use registry::{JoinInfo, Registry};
