-- Organisations and prescriptions (issue 14).
--
-- Control bodies that staff belong to; businesses (controlled persons) by INN, whose
-- representatives sign in by a one-time link or code and then hold a session like staff do;
-- prescriptions issued from a finished inspection, each with its own hash-chained log (the
-- same chain as the inspection's events). A prescription's items, proofs, decisions and
-- state are facts of its log: the prescriptions row is only its identity and index.

CREATE TABLE control_bodies (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    region        TEXT NOT NULL,
    control_kind  TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
ALTER TABLE users ADD COLUMN control_body_id TEXT REFERENCES control_bodies(id);

-- A business, by its INN (the same INN its inspections carry: which inspections are its own
-- is read from inspections.business_inn, not copied here).
CREATE TABLE organisations (
    id          TEXT PRIMARY KEY,
    inn         TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- One-time sign-in links and codes for a business's representative (both stored hashed);
-- used once, expiring, revocable. Revoking one ends the sessions it opened.
CREATE TABLE business_links (
    id               TEXT PRIMARY KEY,
    organisation_id  TEXT NOT NULL REFERENCES organisations(id),
    inspection_id    TEXT REFERENCES inspections(id),
    token_hash       TEXT NOT NULL UNIQUE,
    code_hash        TEXT NOT NULL UNIQUE,
    label            TEXT NOT NULL,
    created_by       TEXT NOT NULL REFERENCES users(id),
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    used_at          BIGINT,
    revoked_at       BIGINT
);
CREATE INDEX business_links_organisation ON business_links(organisation_id);

-- A representative's session (the cookie's token, hashed), like a staff session.
CREATE TABLE business_sessions (
    token_hash       TEXT PRIMARY KEY,
    organisation_id  TEXT NOT NULL REFERENCES organisations(id),
    link_id          TEXT NOT NULL REFERENCES business_links(id),
    csrf_token       TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL
);
CREATE INDEX business_sessions_link ON business_sessions(link_id);

-- A prescription: which inspection it follows up, whose it is (the INN), who issued it.
CREATE TABLE prescriptions (
    id               TEXT PRIMARY KEY,
    inspection_id    TEXT NOT NULL UNIQUE REFERENCES inspections(id),
    business_inn     TEXT NOT NULL,
    issued_by        TEXT NOT NULL REFERENCES users(id),
    created_at       BIGINT NOT NULL
);
CREATE INDEX prescriptions_inn ON prescriptions(business_inn);
CREATE INDEX prescriptions_issued_by ON prescriptions(issued_by);

-- The prescription's log, hashed exactly like `events` (checklist_sync::chain::event_hash
-- with the prescription's id in place of the inspection's, the actor in place of the
-- participant).
CREATE TABLE prescription_events (
    prescription_id  TEXT NOT NULL REFERENCES prescriptions(id),
    seq              BIGINT NOT NULL,
    server_ts        BIGINT NOT NULL,
    actor_id         TEXT NOT NULL,
    client_op_id     TEXT,
    kind             TEXT NOT NULL,
    payload          TEXT NOT NULL,
    prev_hash        TEXT NOT NULL,
    hash             TEXT NOT NULL,
    PRIMARY KEY (prescription_id, seq)
);
