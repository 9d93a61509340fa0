-- API tokens for other systems of a control body (issue 22, item 2) and the inspection's
-- external ids (item 4). See docs/ARCHITECTURE.md, "API tokens".
--
-- A token acts as its own system account (`user_id`, a disabled `users` row that can never
-- sign in), so that everything it makes has an author; what it may reach is its `scopes`
-- (space-separated) within its `control_body_id` (NULL: the staff of no control body). Only
-- the SHA-256 of the secret is stored; the secret is shown once, at creation.
CREATE TABLE api_tokens (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    token_hash       TEXT NOT NULL UNIQUE,
    scopes           TEXT NOT NULL,
    control_body_id  TEXT REFERENCES control_bodies(id),
    user_id          TEXT NOT NULL REFERENCES users(id),
    created_by       TEXT NOT NULL REFERENCES users(id),
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    revoked_at       BIGINT,
    last_used_at     BIGINT
);

-- Every call made with a token: bounded by age and by a per-token count (`tokens.rs`).
CREATE TABLE api_token_calls (
    id        TEXT PRIMARY KEY,
    token_id  TEXT NOT NULL REFERENCES api_tokens(id),
    at        BIGINT NOT NULL,
    method    TEXT NOT NULL,
    path      TEXT NOT NULL,
    status    INTEGER NOT NULL
);
CREATE INDEX api_token_calls_token ON api_token_calls(token_id, at);
CREATE INDEX api_token_calls_at ON api_token_calls(at);

-- The number of the event in the unified register of control events (ЕРКНМ), unique: the
-- register numbers every event once, nationwide. The external system's id is not unique: two
-- systems (of two control bodies) may use the same ids.
ALTER TABLE inspections ADD COLUMN erknm_number TEXT;
ALTER TABLE inspections ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX inspections_erknm ON inspections(erknm_number) WHERE erknm_number IS NOT NULL;
CREATE INDEX inspections_external_id ON inspections(external_id) WHERE external_id IS NOT NULL;
