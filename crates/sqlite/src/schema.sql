-- Herald's local schema. Times are RFC 3339 UTC text with milliseconds (sortable as
-- text) except queue times, which are Unix milliseconds for cheap comparisons.
CREATE TABLE IF NOT EXISTS settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS api_keys (
    id         TEXT PRIMARY KEY,
    app_id     TEXT NOT NULL,
    name       TEXT NOT NULL,
    hash       TEXT NOT NULL UNIQUE,
    scopes     TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS notifications (
    id         TEXT PRIMARY KEY,
    app_id     TEXT NOT NULL,
    status     TEXT NOT NULL,
    priority   TEXT NOT NULL,
    category   TEXT,
    channels   TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS notifications_by_app ON notifications (app_id, id);
-- Notifications not yet dispatched, for the stranded sweep. Partial, so that a
-- notification leaves it once and later status changes do not write it.
DROP INDEX IF EXISTS notifications_by_status;
CREATE INDEX IF NOT EXISTS notifications_accepted ON notifications (id) WHERE status = 'accepted';
-- One index per documented list filter, each ending in id so a page reads in order.
CREATE INDEX IF NOT EXISTS notifications_by_app_status ON notifications (app_id, status, id);
CREATE INDEX IF NOT EXISTS notifications_by_app_priority ON notifications (app_id, priority, id);
CREATE INDEX IF NOT EXISTS notifications_by_app_category ON notifications (app_id, category, id);
-- A notification's channels, one row each, for `?channel=` (the JSON array cannot be
-- indexed). Written with the notification, in the same transaction.
CREATE TABLE IF NOT EXISTS notification_channels (
    app_id          TEXT NOT NULL,
    channel         TEXT NOT NULL,
    notification_id TEXT NOT NULL,
    PRIMARY KEY (app_id, channel, notification_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS idempotency_keys (
    app_id          TEXT NOT NULL,
    key             TEXT NOT NULL,
    body_hash       TEXT NOT NULL,
    notification_id TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (app_id, key)
);
CREATE INDEX IF NOT EXISTS idempotency_keys_by_age ON idempotency_keys (created_at);

CREATE TABLE IF NOT EXISTS deliveries (
    id                  TEXT PRIMARY KEY,
    notification_id     TEXT NOT NULL,
    recipient_index     INTEGER NOT NULL,
    channel             TEXT NOT NULL,
    address             TEXT NOT NULL,
    status              TEXT NOT NULL,
    attempts            INTEGER NOT NULL DEFAULT 0,
    provider            TEXT,
    provider_message_id TEXT,
    reason              TEXT,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    user                TEXT,
    deliver_after       TEXT
);
-- (notification_id, status) serves lookups by notification alone too.
DROP INDEX IF EXISTS deliveries_by_notification;
CREATE INDEX IF NOT EXISTS deliveries_by_notification_status ON deliveries (notification_id, status);

CREATE TABLE IF NOT EXISTS events (
    seq             INTEGER PRIMARY KEY,
    notification_id TEXT NOT NULL,
    delivery_id     TEXT,
    event           TEXT NOT NULL,
    detail          TEXT,
    at              TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_notification ON events (notification_id, seq);

CREATE TABLE IF NOT EXISTS jobs (
    id          INTEGER PRIMARY KEY,
    queue       TEXT NOT NULL,
    priority    INTEGER NOT NULL,
    dedup_key   TEXT,
    payload     TEXT NOT NULL,
    visible_at  INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    lease_token TEXT,
    last_error  TEXT,
    created_at  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (queue, priority, visible_at);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_dedup ON jobs (queue, dedup_key) WHERE dedup_key IS NOT NULL;

CREATE TABLE IF NOT EXISTS dead_letters (
    id          INTEGER PRIMARY KEY,
    queue       TEXT NOT NULL,
    priority    INTEGER NOT NULL,
    payload     TEXT NOT NULL,
    attempts    INTEGER NOT NULL,
    error       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    failed_at   INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS templates (
    app_id         TEXT NOT NULL,
    id             TEXT NOT NULL,
    name           TEXT NOT NULL,
    description    TEXT,
    latest_version INTEGER NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    PRIMARY KEY (app_id, id)
);

CREATE TABLE IF NOT EXISTS template_versions (
    app_id      TEXT NOT NULL,
    template_id TEXT NOT NULL,
    version     INTEGER NOT NULL,
    body        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (app_id, template_id, version)
);

CREATE TABLE IF NOT EXISTS users (
    app_id               TEXT NOT NULL,
    id                   TEXT NOT NULL,
    body                 TEXT NOT NULL,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL,
    preferences          TEXT,
    preferences_revision INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (app_id, id)
);

CREATE TABLE IF NOT EXISTS groups (
    app_id     TEXT NOT NULL,
    id         TEXT NOT NULL,
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (app_id, id)
);

CREATE TABLE IF NOT EXISTS group_members (
    app_id   TEXT NOT NULL,
    group_id TEXT NOT NULL,
    user_id  TEXT NOT NULL,
    PRIMARY KEY (app_id, group_id, user_id)
);
CREATE INDEX IF NOT EXISTS group_members_by_user ON group_members (app_id, user_id);

CREATE TABLE IF NOT EXISTS categories (
    app_id     TEXT NOT NULL,
    name       TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (app_id, name)
);

-- One row per delivery counted against a frequency cap window; `expires_at` (Unix
-- seconds) is the window's end, after which the rows are purged.
CREATE TABLE IF NOT EXISTS cap_slots (
    app_id      TEXT NOT NULL,
    counter     TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (app_id, counter, delivery_id)
);
CREATE INDEX IF NOT EXISTS cap_slots_by_expiry ON cap_slots (expires_at);

-- Each app's integrations as one JSON document (few per app, read together per send).
-- Secrets inside are sealed with AES-256-GCM (integrations::vault).
CREATE TABLE IF NOT EXISTS integration_sets (
    app_id   TEXT PRIMARY KEY,
    revision INTEGER NOT NULL,
    body     TEXT NOT NULL
);

-- A vendor's message id -> the delivery it was for (vendors whose receipts name only
-- their own id, such as WeChat), kept as the deliveries are.
CREATE TABLE IF NOT EXISTS receipts (
    provider TEXT NOT NULL,
    message_id TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (provider, message_id)
) WITHOUT ROWID;
