-- Who holds each conversation (human handoff), and each org's handoff settings.
-- A session without a row is held by the assistant.

CREATE TABLE session_handoff (
    session_id    TEXT    NOT NULL PRIMARY KEY REFERENCES sessions (session_id) ON DELETE CASCADE,
    org_id        TEXT    NOT NULL,
    -- 'assistant', 'waiting' or 'human'.
    state         TEXT    NOT NULL,
    operator      TEXT,
    operator_name TEXT,
    reason        TEXT,
    since         INTEGER NOT NULL,
    -- Raised by one on every change: the compare-and-set of transitions.
    version       INTEGER NOT NULL
);

-- The inbox: an org's conversations waiting for or held by a person, oldest first.
CREATE INDEX session_handoff_inbox ON session_handoff (org_id, since, session_id)
    WHERE state <> 'assistant';

CREATE TABLE org_handoff (
    org_id          TEXT    NOT NULL PRIMARY KEY,
    enabled         INTEGER NOT NULL,
    waiting_message TEXT,
    when_unanswered INTEGER NOT NULL
);
