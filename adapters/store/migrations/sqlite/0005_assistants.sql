-- Named assistants: each org's assistants (their settings as JSON, which the gateway
-- validates), and the one a session was created with (NULL: the org's default).

ALTER TABLE sessions ADD COLUMN assistant TEXT;

CREATE TABLE assistants (
    org_id     TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    spec       TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, name)
);
