//! Switchboard protocol v1: the wire types of `docs/protocol.md`.
//!
//! # Layout
//!
//! - [`client`]: frames a client sends (`session.join`, `message.send`, …) and the one
//!   parser that turns a text frame into a typed frame or a precise `bad_request`.
//! - [`server`]: direct replies and control frames the server sends (`welcome`,
//!   `session.joined`, `error`, `goaway`, …).
//! - [`event`]: session events (`message`, `turn.delta`, …), the stored [`Event`]
//!   envelope a backplane keeps, and [`EventFrame`], how an event looks on a socket.
//! - [`conversation`]: conversations as records (summaries, listings, exports,
//!   erasure reports) for the lifecycle frames and `/v1` routes.
//! - [`handoff`]: human handoff (who holds a conversation), the operator inbox and an
//!   org's handoff settings.
//! - [`presence`]: who is in a session and who is typing (ephemeral frames, no `seq`).
//! - [`stream`]: stream names (`session:<id>`, `user:<id>`, `org:<id>`).
//! - [`close`]: every error code and close code (docs/protocol.md §5.2, §5.4).
//! - `schema` (feature `schema`): a JSON Schema of every frame family, as checked into
//!   `docs/schemas/`.
//!
//! serde only, no I/O: the widget, SDKs and backends can depend on this crate alone.

pub mod client;
pub mod close;
pub mod conversation;
pub mod event;
pub mod handoff;
pub mod object_only;
pub mod presence;
#[cfg(feature = "schema")]
pub mod schema;
pub mod server;
pub mod stream;
pub mod whole_number;

pub use client::{ClientFrame, FrameError, ParsedFrame};
pub use close::{CloseCode, ErrorCode};
pub use event::{
    Event, EventBody, EventFrame, Role, Source, StoredBody, TurnEndCode, TurnStatus, Usage,
};
pub use presence::{PresenceMember, PresenceRole};
pub use server::{Limits, Principal, ServerFrame, ServerReply};
pub use stream::{StreamKind, StreamName, StreamNameError};

/// A stream position, assigned by the backplane on append. Strictly increasing within
/// a stream; not promised to be contiguous. `0` means "before the first event"
/// (docs/protocol.md §1.2).
pub type Seq = u64;

/// The protocol version this crate speaks, as sent in `welcome.protocol`.
pub const PROTOCOL_VERSION: u32 = 1;

/// The WebSocket subprotocol a client may offer; the server selects it when offered.
pub const SUBPROTOCOL: &str = "switchboard.v1";

/// The longest `id` a client frame may carry (docs/protocol.md §3.1).
pub const MAX_FRAME_ID_CHARS: usize = 64;
