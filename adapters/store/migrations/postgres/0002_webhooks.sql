-- Outgoing webhooks: each org's endpoints, and a bounded log of deliveries per
-- endpoint (no payloads). Times are milliseconds since the Unix epoch. Ids compare
-- bytewise (COLLATE "C"), as in SQLite.

CREATE TABLE webhooks (
    webhook_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    org_id     TEXT COLLATE "C" NOT NULL,
    url        TEXT   NOT NULL,
    -- The event types it receives: a JSON array of strings, as text.
    events     TEXT   NOT NULL,
    -- The HMAC signing secret (the gateway needs it in clear to sign).
    secret     TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);

-- An org's endpoints, oldest first.
CREATE INDEX webhooks_by_org ON webhooks (org_id, created_at, webhook_id);

CREATE TABLE webhook_deliveries (
    webhook_id      TEXT COLLATE "C" NOT NULL REFERENCES webhooks (webhook_id) ON DELETE CASCADE,
    delivery_id     TEXT COLLATE "C" NOT NULL,
    event_type      TEXT   NOT NULL,
    -- BIGINT: any u32 fits, as in SQLite.
    attempts        BIGINT NOT NULL,
    -- pending, delivered or failed.
    outcome         TEXT   NOT NULL,
    last_status     BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    next_attempt_at BIGINT,
    PRIMARY KEY (webhook_id, delivery_id)
);

-- An endpoint's log, newest first (and what falls off its end).
CREATE INDEX webhook_deliveries_newest
    ON webhook_deliveries (webhook_id, created_at DESC, delivery_id DESC);
