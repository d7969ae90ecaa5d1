//! Shared records: small values every replica reads and writes through the backplane
//! (`Backplane::record_*`), in namespaces with an optional time to live.
//!
//! - [`sessions`]: session records (who owns a session, its key's hash).
//! - [`idempotency`]: retried requests get the first attempt's answer.
//! - [`session_quota`], [`live_window`]: how many sessions a principal and this
//!   replica may create.
//! - [`namespace`]: every namespace the gateway writes, listed once.

pub mod idempotency;
pub mod live_window;
pub mod session_quota;
pub mod sessions;

/// Every records namespace of the gateway, in one list: two features can never share
/// keys by accident, and an operator can see everything a deployment stores. The Redis
/// and NATS layouts of records are in docs/backplanes.md.
pub mod namespace {
    /// `<session_id>` → a session record ([`super::sessions`]), cached from the
    /// conversation store; lives `--history-max-age` (`--unused-session-ttl` while
    /// the session has no message).
    pub const SESSIONS: &str = "sessions";
    /// `<principal hash>` → when the principal created each of its live sessions
    /// ([`super::session_quota`]); lives `--unused-session-ttl` after its last write.
    pub const SESSION_QUOTAS: &str = "session-quotas";
    /// `<session_id>/<client_message_id>` → the message a retried send answers with
    /// ([`super::idempotency`]); lives 24 h.
    pub const MESSAGE_IDS: &str = "message-ids";
    /// `<stream>/<idempotency_key>` → the `seq` a retried publish answers with; 24 h.
    pub const PUBLISH_KEYS: &str = "publish-keys";
    /// `<replica_id>` → a live replica's heartbeat; lives `--turn-lease-lapse` unless
    /// renewed, so a replica that stops renewing is gone from here within the lapse.
    pub const REPLICAS: &str = "replicas";
    /// `<session_id>` → the session's turn queue: waiting messages, the running turn
    /// and the replica draining it; present exactly while there is any.
    pub const TURN_LEASES: &str = "turn-leases";
    /// `<message_id>` → the question and the asker's access context its turn runs
    /// with; lives `--history-max-age`.
    pub const TURN_JOBS: &str = "turn-jobs";
    /// `<turn_id>` → a `turn.cancel` made on another replica than the turn's.
    pub const TURN_CANCELS: &str = "turn-cancels";
    /// `<call_id>` → a tool call waiting for a decision.
    pub const TOOL_CALLS: &str = "tool-calls";
    /// `<call_id>` → the decision on a tool call (created once: the first one wins).
    pub const TOOL_DECISIONS: &str = "tool-decisions";
    /// `<org_id>` → an org's model settings (no expiry).
    pub const MODEL_SETTINGS: &str = "model-settings";
    /// `<org_id>/<doc_id>` → a knowledge-base document (no expiry).
    pub const DOCUMENTS: &str = "documents";
    /// `<org_id>` → the id of the org's latest document change (no expiry).
    pub const DOCUMENT_VERSIONS: &str = "documents-version";
    /// `<org_id>` → the org's document manifest: each `doc_id` with its stored size
    /// and change id (no expiry). Quotas count it; index refreshes read it.
    pub const DOCUMENT_MANIFESTS: &str = "documents-manifest";
    /// `<session_id>` → each replica's members of the session (presence), by the
    /// replica's presence id; lives an hour after its last write, rewritten by every
    /// replica with members long before.
    pub const PRESENCE: &str = "presence";
    /// `<presence id>` → a live replica's presence heartbeat; lives
    /// `--turn-lease-lapse` unless renewed. A replica missing here is dead to the
    /// others: its entries in `presence` no longer count.
    pub const PRESENCE_REPLICAS: &str = "presence-replicas";

    /// `<session_id>` → who holds the conversation, as last stored (for
    /// `--history-max-age`): the turn worker's check, without a store read.
    pub const HANDOFFS: &str = "handoffs";

    /// `<org_id>/<YYYY-MM-DD>` → the tokens the org's turns used that UTC day
    /// (`assistant::cost::budget`); lives two days.
    pub const TOKEN_USAGE: &str = "token-usage";

    /// All of them.
    pub const ALL: &[&str] = &[
        SESSIONS,
        SESSION_QUOTAS,
        MESSAGE_IDS,
        PUBLISH_KEYS,
        REPLICAS,
        TURN_LEASES,
        TURN_JOBS,
        TURN_CANCELS,
        TOOL_CALLS,
        TOOL_DECISIONS,
        MODEL_SETTINGS,
        DOCUMENTS,
        DOCUMENT_VERSIONS,
        DOCUMENT_MANIFESTS,
        HANDOFFS,
        TOKEN_USAGE,
        PRESENCE,
        PRESENCE_REPLICAS,
    ];
}

#[cfg(test)]
mod tests {
    use super::namespace::ALL;

    #[test]
    fn namespaces_are_distinct() {
        let mut names = ALL.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len(), "{ALL:?}");
    }
}
