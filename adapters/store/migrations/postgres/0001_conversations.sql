-- Sessions and their transcripts. Integers are milliseconds since the Unix epoch
-- (times) or stream sequence numbers; both fit in 63 bits.
--
-- Ids compare bytewise (COLLATE "C"), as in SQLite, whatever the database's locale:
-- listings order ties by session_id and page with a cursor on it.

CREATE TABLE sessions (
    session_id       TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    org_id           TEXT COLLATE "C" NOT NULL,
    owner            TEXT COLLATE "C",
    key_sha256       TEXT,
    title            TEXT,
    state            TEXT   NOT NULL,
    created_at       BIGINT NOT NULL,
    last_activity_at BIGINT NOT NULL,
    last_seq         BIGINT NOT NULL,
    preview          TEXT,
    -- A JSON object, as text (kept exactly as written).
    metadata         TEXT
);

-- Listings: an org's sessions, and one owner's, newest activity first.
CREATE INDEX sessions_by_org ON sessions (org_id, last_activity_at DESC, session_id DESC);
CREATE INDEX sessions_by_owner ON sessions (org_id, owner, last_activity_at DESC, session_id DESC);
-- Expiry: the longest idle sessions first, across orgs.
CREATE INDEX sessions_by_activity ON sessions (last_activity_at, session_id);

CREATE TABLE transcript (
    session_id TEXT COLLATE "C" NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL,
    ts         BIGINT NOT NULL,
    kind       TEXT   NOT NULL,
    -- The whole event as JSON text, exactly as it is replayed.
    event      TEXT   NOT NULL,
    PRIMARY KEY (session_id, seq)
);

-- An org's own retention; orgs without a row get the deployment's default.
CREATE TABLE org_retention (
    org_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    -- BIGINT: any u32 fits, as in SQLite.
    days   BIGINT NOT NULL
);
