-- Outgoing webhooks: each org's endpoints, and a bounded log of deliveries per
-- endpoint (no payloads). Times are milliseconds since the Unix epoch.

CREATE TABLE webhooks (
    webhook_id TEXT    NOT NULL PRIMARY KEY,
    org_id     TEXT    NOT NULL,
    url        TEXT    NOT NULL,
    -- The event types it receives: a JSON array of strings, as text.
    events     TEXT    NOT NULL,
    -- The HMAC signing secret (the gateway needs it in clear to sign).
    secret     TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);

-- An org's endpoints, oldest first.
CREATE INDEX webhooks_by_org ON webhooks (org_id, created_at, webhook_id);

CREATE TABLE webhook_deliveries (
    webhook_id      TEXT    NOT NULL REFERENCES webhooks (webhook_id) ON DELETE CASCADE,
    delivery_id     TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    -- pending, delivered or failed.
    outcome         TEXT    NOT NULL,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    next_attempt_at INTEGER,
    PRIMARY KEY (webhook_id, delivery_id)
) WITHOUT ROWID;

-- An endpoint's log, newest first (and what falls off its end).
CREATE INDEX webhook_deliveries_newest
    ON webhook_deliveries (webhook_id, created_at DESC, delivery_id DESC);
