//! The conversation store: what outlives the backplane's short history. Sessions (who
//! owns them, their title, state and last activity) and their transcripts (every
//! durable event, with its `seq`), kept until the org's retention lapses, the session
//! is deleted or its owner erased.
//!
//! One trait, [`ConversationStore`], three implementations — [`SqliteStore`] (embedded,
//! the default, one replica) and [`PostgresStore`] (shared by many replicas) on sqlx,
//! and [`MemoryStore`] (plain data structures, no thread, no I/O: for tests and
//! throwaway runs; nothing survives a restart) — and one conformance suite all three
//! pass (`conformance`, behind the feature of that name). The SQL schema is in
//! `migrations/<engine>/`, applied on open.
//!
//! Times are milliseconds since the Unix epoch, as the protocol's `ts`.

mod assistants;
mod batch;
#[cfg(feature = "conformance")]
pub mod conformance;
mod convert;
mod db_error;
mod engine;
mod error;
mod handoff;
mod list;
mod memory;
mod migrations;
mod model;
mod postgres;
mod redact;
mod sql;
mod sqlite;
mod webhooks;

use async_trait::async_trait;

pub use assistants::AssistantRow;
pub use error::StoreError;
pub use memory::MemoryStore;
pub use model::{
    Cursor, Erased, HandoffRow, HandoffSettingsRow, HandoffState, NewSession, SessionChange,
    SessionPage, SessionQuery, SessionRow, SessionState, TranscriptEntry, TranscriptWrite,
};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
pub use webhooks::{DeliveryOutcome, MAX_DELIVERY_PAGE, WebhookDelivery, WebhookRow};

/// Most sessions one [`ConversationStore::list_sessions`] page holds.
pub const MAX_PAGE: usize = 100;
/// Most entries one [`ConversationStore::transcript`] call returns.
pub const MAX_TRANSCRIPT_PAGE: usize = 1000;

/// Where conversations are kept. Every method is atomic: a failed call changed nothing.
#[async_trait]
pub trait ConversationStore: Send + Sync + 'static {
    /// `sqlite`, `postgres` or `memory`, for logs, metrics and `/ready`.
    fn name(&self) -> &'static str;

    /// Store a new session. Returns `false` (and changes nothing) when a session with
    /// that id exists.
    async fn create_session(&self, session: &NewSession) -> Result<bool, StoreError>;

    /// The session, if it exists.
    async fn session(&self, session_id: &str) -> Result<Option<SessionRow>, StoreError>;

    /// Rename or archive/unarchive; the session as it is after the change, `None`
    /// when there is no such session. Does not count as activity.
    async fn update_session(
        &self,
        session_id: &str,
        change: &SessionChange,
    ) -> Result<Option<SessionRow>, StoreError>;

    /// Remove the session and its whole transcript. Returns whether it existed.
    async fn delete_session(&self, session_id: &str) -> Result<bool, StoreError>;

    /// Sessions of `query.org_id` (of one owner, in one state, active in a time window,
    /// as the query says), newest activity first (ties: greater `session_id` first,
    /// comparing bytes), at most `query.limit` clamped to `1..=MAX_PAGE`, after
    /// `query.cursor`; `next` is set when more follow.
    async fn list_sessions(&self, query: &SessionQuery) -> Result<SessionPage, StoreError>;

    /// Add transcript entries, in one transaction. Idempotent: an entry whose
    /// `(session_id, seq)` is stored already is skipped. Entries of sessions that do
    /// not exist (deleted, erased, or created on a replica with another store) are
    /// skipped. Each stored entry moves its session's `last_activity_at` and `last_seq`
    /// forward (never back); an entry with a `preview` (a message) newer than the
    /// session's `last_seq` sets the preview and makes an archived session active; one
    /// with a `title_hint` sets the title when the session has none. A value that does
    /// not fit the store (above `i64::MAX`) fails the whole batch.
    async fn write(&self, batch: &[TranscriptWrite]) -> Result<(), StoreError>;

    /// Entries of a session with `after < seq` (and `seq < before` when given), oldest
    /// first, at most `min(limit, MAX_TRANSCRIPT_PAGE)`.
    async fn transcript(
        &self,
        session_id: &str,
        after: u64,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<TranscriptEntry>, StoreError>;

    /// Remove every session `user_id` owns in `org_id`, with their transcripts; what
    /// was removed.
    async fn erase_user(&self, org_id: &str, user_id: &str) -> Result<Erased, StoreError>;

    /// Set (`Some`) or clear (`None`: the deployment's default applies) an org's
    /// retention in days.
    async fn set_retention(&self, org_id: &str, days: Option<u32>) -> Result<(), StoreError>;

    /// The org's own retention in days, if it set one.
    async fn retention(&self, org_id: &str) -> Result<Option<u32>, StoreError>;

    /// Remove at most `limit` sessions idle past their org's retention (`default_days`
    /// for orgs without one) at `now_ms`, with their transcripts; their ids. Bounded,
    /// so a sweep never holds the store for long: call again while it returns `limit`.
    async fn expire(
        &self,
        now_ms: u64,
        default_days: u32,
        limit: usize,
    ) -> Result<Vec<String>, StoreError>;

    /// The session's handoff; `None` when there is no such session (a session that
    /// never had one is the assistant's since its creation, version 0).
    async fn handoff(&self, session_id: &str) -> Result<Option<HandoffRow>, StoreError>;

    /// Change the session's handoff to `new` (its `version` is ignored) only if its
    /// version is `expected` now: the new version is `expected + 1`. Returns whether it
    /// did; `false` when another change came first or there is no such session.
    /// Atomic across replicas sharing the store.
    async fn set_handoff(
        &self,
        session_id: &str,
        expected: u64,
        new: &HandoffRow,
    ) -> Result<bool, StoreError>;

    /// The org's sessions whose handoff is `waiting` or `human`, the longest in that
    /// state first (ties: smaller `session_id`), at most `limit` clamped to
    /// `1..=MAX_PAGE`.
    async fn inbox(
        &self,
        org_id: &str,
        limit: usize,
    ) -> Result<Vec<(SessionRow, HandoffRow)>, StoreError>;

    /// Set (`Some`) or clear (`None`: the deployment's defaults) an org's handoff
    /// settings.
    async fn set_handoff_settings(
        &self,
        org_id: &str,
        settings: Option<&HandoffSettingsRow>,
    ) -> Result<(), StoreError>;

    /// The org's own handoff settings, if it set them.
    async fn handoff_settings(
        &self,
        org_id: &str,
    ) -> Result<Option<HandoffSettingsRow>, StoreError>;
    /// Register a webhook endpoint, unless its org has `max_per_org` endpoints already:
    /// `false` then, and nothing changed. Two calls racing for an org's last place
    /// cannot both take it. An id that exists is refused (`Rejected`).
    async fn create_webhook(
        &self,
        webhook: &WebhookRow,
        max_per_org: usize,
    ) -> Result<bool, StoreError>;

    /// The webhook endpoints of `org_id`, oldest first (ties: the smaller id first).
    async fn webhooks(&self, org_id: &str) -> Result<Vec<WebhookRow>, StoreError>;

    /// Remove `org_id`'s endpoint `webhook_id` with its delivery log. Whether it
    /// existed in that org (another org's endpoint is left alone).
    async fn delete_webhook(&self, org_id: &str, webhook_id: &str) -> Result<bool, StoreError>;

    /// Store a delivery as it stands after an attempt, replacing what was stored for
    /// its `(webhook_id, delivery_id)` but its `created_at`; then drop the endpoint's
    /// deliveries past its newest `keep` (newest: greater `created_at`, ties the
    /// greater `delivery_id`). Skipped (`false`) when the endpoint does not exist.
    async fn record_delivery(
        &self,
        delivery: &WebhookDelivery,
        keep: usize,
    ) -> Result<bool, StoreError>;

    /// The delivery log of `org_id`'s endpoint `webhook_id`, newest first, at most
    /// `min(limit, MAX_DELIVERY_PAGE)`; `None` when that org has no such endpoint.
    async fn webhook_deliveries(
        &self,
        org_id: &str,
        webhook_id: &str,
        limit: usize,
    ) -> Result<Option<Vec<WebhookDelivery>>, StoreError>;

    /// Store `assistant`, replacing the org's assistant of that name, unless it is new
    /// and its org has `max_per_org` assistants already: `false` then, and nothing
    /// changed. Two calls racing for an org's last place cannot both take it.
    async fn put_assistant(
        &self,
        assistant: &AssistantRow,
        max_per_org: usize,
    ) -> Result<bool, StoreError>;

    /// The assistants of `org_id`, by name.
    async fn assistants(&self, org_id: &str) -> Result<Vec<AssistantRow>, StoreError>;

    /// `org_id`'s assistant `name`, if it has one.
    async fn assistant(&self, org_id: &str, name: &str)
    -> Result<Option<AssistantRow>, StoreError>;

    /// Remove `org_id`'s assistant `name`. Whether it existed. Sessions created with it
    /// keep its name.
    async fn delete_assistant(&self, org_id: &str, name: &str) -> Result<bool, StoreError>;

    /// Whether the store answers now (for `/ready`).
    async fn ping(&self) -> Result<(), StoreError>;
}
