-- Sessions and their transcripts. Integers are milliseconds since the Unix epoch
-- (times) or stream sequence numbers; both fit in 63 bits.

CREATE TABLE sessions (
    session_id       TEXT    NOT NULL PRIMARY KEY,
    org_id           TEXT    NOT NULL,
    owner            TEXT,
    key_sha256       TEXT,
    title            TEXT,
    state            TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    last_activity_at INTEGER NOT NULL,
    last_seq         INTEGER NOT NULL,
    preview          TEXT,
    -- A JSON object, as text.
    metadata         TEXT
);

-- Listings: an org's sessions, and one owner's, newest activity first.
CREATE INDEX sessions_by_org ON sessions (org_id, last_activity_at DESC, session_id DESC);
CREATE INDEX sessions_by_owner ON sessions (org_id, owner, last_activity_at DESC, session_id DESC);
-- Expiry: the longest idle sessions first, across orgs.
CREATE INDEX sessions_by_activity ON sessions (last_activity_at, session_id);

CREATE TABLE transcript (
    session_id TEXT    NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    ts         INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    -- The whole event as JSON text, exactly as it is replayed.
    event      TEXT    NOT NULL,
    PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;

-- An org's own retention; orgs without a row get the deployment's default.
CREATE TABLE org_retention (
    org_id TEXT    NOT NULL PRIMARY KEY,
    days   INTEGER NOT NULL
);
