-- Signed webhooks from a durable outbox (signaling/src/webhooks/). Same SQL subset as the
-- other migrations.

-- An endpoint an administrator registered. The secret is kept sealed (AES-256-GCM under the
-- key file `[webhooks] secret_key_file`, not in the database), because the server must sign
-- with it and so cannot keep only a hash. A deleted endpoint keeps its row (its deliveries
-- name it) and is never shown or sent to again.
CREATE TABLE webhook_endpoints (
    id              TEXT PRIMARY KEY,
    url             TEXT NOT NULL,
    description     TEXT NOT NULL,
    events          TEXT NOT NULL,
    sealed_secret   TEXT NOT NULL,
    enabled         SMALLINT NOT NULL,
    created_by      TEXT NOT NULL REFERENCES users(id),
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    deleted_at      BIGINT
);

-- The outbox: one row per fact worth telling, inserted in the transaction that commits the
-- fact (the sync writer's group commit, the prescription log's append, the inspection's
-- insert or reschedule), so a committed change always has its row and a rolled-back one
-- never does. `dispatched` turns 1 once a delivery row exists for every endpoint that was
-- subscribed when the worker fanned it out.
CREATE TABLE webhook_events (
    id              TEXT PRIMARY KEY,
    type            TEXT NOT NULL,
    inspection_id   TEXT NOT NULL,
    occurred_at     BIGINT NOT NULL,
    data            TEXT NOT NULL,
    dispatched      SMALLINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL
);
CREATE INDEX webhook_events_pending ON webhook_events(dispatched, created_at);

-- One event to one endpoint. `state` moves pending → sending → delivered | pending (retry)
-- | failed; a row left `sending` past its lease (its node died mid-request) is sent again
-- (at least once: receivers dedupe by the event id). A replay puts it back to pending.
CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints(id),
    event_id        TEXT NOT NULL REFERENCES webhook_events(id),
    state           TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_at         BIGINT NOT NULL,
    claimed_by      TEXT,
    claimed_until   BIGINT,
    last_status     INTEGER,
    last_error      TEXT,
    last_response   TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    delivered_at    BIGINT,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(state, next_at);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries(endpoint_id, created_at);
