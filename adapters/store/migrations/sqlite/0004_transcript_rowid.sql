-- The transcript as an ordinary (rowid) table with a small index by session: new
-- entries are appended to the table's last pages instead of each landing in its own
-- session's part of a clustered table, so a batch of writes across many sessions
-- dirties a few data pages and the (small, cached) index pages of those sessions.

CREATE TABLE transcript_rows (
    session_id TEXT    NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    ts         INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    -- The whole event as JSON text, exactly as it is replayed.
    event      TEXT    NOT NULL
);

INSERT INTO transcript_rows (session_id, seq, ts, kind, event)
    SELECT session_id, seq, ts, kind, event FROM transcript ORDER BY ts, session_id, seq;

DROP TABLE transcript;

ALTER TABLE transcript_rows RENAME TO transcript;

CREATE UNIQUE INDEX transcript_by_session ON transcript (session_id, seq);
