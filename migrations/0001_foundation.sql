-- Foundation schema. Written in the SQL subset that SQLite and PostgreSQL share:
-- ids are UUID strings, times are BIGINT microseconds since the Unix epoch (UTC),
-- booleans are SMALLINT 0/1, JSON is TEXT. The same file migrates both backends.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('inspector', 'reviewer', 'admin')),
    password_hash TEXT NOT NULL,
    disabled      SMALLINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL
);

CREATE TABLE sessions (
    token_hash   TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id),
    csrf_token   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE login_attempts (
    key          TEXT NOT NULL,
    at           BIGINT NOT NULL
);
CREATE INDEX login_attempts_key ON login_attempts(key, at);

CREATE TABLE templates (
    id           TEXT PRIMARY KEY,
    code         TEXT NOT NULL,
    version      INTEGER NOT NULL,
    title        TEXT NOT NULL,
    description  TEXT NOT NULL,
    legal_basis  TEXT NOT NULL,
    body         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    UNIQUE (code, version)
);

CREATE TABLE template_items (
    template_id  TEXT NOT NULL REFERENCES templates(id),
    item_id      TEXT NOT NULL,
    position     INTEGER NOT NULL,
    number       TEXT NOT NULL,
    question     TEXT NOT NULL,
    requirement  TEXT NOT NULL,
    answer_kind  TEXT NOT NULL,
    PRIMARY KEY (template_id, item_id)
);

CREATE TABLE inspections (
    id                TEXT PRIMARY KEY,
    kind              TEXT NOT NULL CHECK (kind IN ('control', 'preventive')),
    mode              TEXT NOT NULL CHECK (mode IN ('remote', 'on_site')),
    template_id       TEXT REFERENCES templates(id),
    title             TEXT NOT NULL,
    scheduled_at      BIGINT NOT NULL,
    inspector_id      TEXT NOT NULL REFERENCES users(id),
    business_name     TEXT NOT NULL,
    business_inn      TEXT NOT NULL,
    business_address  TEXT NOT NULL,
    site_lat          DOUBLE PRECISION,
    site_lon          DOUBLE PRECISION,
    status            TEXT NOT NULL CHECK (status IN ('scheduled', 'live', 'finished', 'signed', 'cancelled')),
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    started_at        BIGINT,
    finished_at       BIGINT,
    -- Lower-cased title, business name and INN: SQLite's LOWER() folds only ASCII, so the
    -- server folds Cyrillic itself when it writes the row.
    search_text       TEXT NOT NULL
);
CREATE INDEX inspections_inspector ON inspections(inspector_id);
CREATE INDEX inspections_status ON inspections(status);

CREATE TABLE invitations (
    id             TEXT PRIMARY KEY,
    inspection_id  TEXT NOT NULL REFERENCES inspections(id),
    token_hash     TEXT NOT NULL UNIQUE,
    label          TEXT NOT NULL,
    created_by     TEXT NOT NULL REFERENCES users(id),
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    revoked_at     BIGINT
);
CREATE INDEX invitations_inspection ON invitations(inspection_id);

CREATE TABLE participants (
    id             TEXT PRIMARY KEY,
    inspection_id  TEXT NOT NULL REFERENCES inspections(id),
    role           TEXT NOT NULL CHECK (role IN ('inspector', 'business', 'reviewer', 'admin')),
    user_id        TEXT REFERENCES users(id),
    invitation_id  TEXT REFERENCES invitations(id),
    display_name   TEXT NOT NULL,
    device         TEXT NOT NULL,
    joined_at      BIGINT NOT NULL,
    last_seen_at   BIGINT NOT NULL
);
CREATE INDEX participants_inspection ON participants(inspection_id);
