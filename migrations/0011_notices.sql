-- Notices and reminders (signaling/src/notify/). Same SQL subset as the other migrations.

-- The notice's iCalendar SEQUENCE: 0 when scheduled, +1 on every reschedule.
ALTER TABLE inspections ADD COLUMN notice_seq BIGINT NOT NULL DEFAULT 0;

-- A way to reach a participant: the business (by INN) or a staff user. Consent is recorded
-- with the contact: when and how it was given.
CREATE TABLE contacts (
    id              TEXT PRIMARY KEY,
    owner_kind      TEXT NOT NULL CHECK (owner_kind IN ('business', 'user')),
    owner_id        TEXT NOT NULL,
    channel         TEXT NOT NULL CHECK (channel IN ('email', 'push')),
    address         TEXT NOT NULL,
    consent_at      BIGINT NOT NULL,
    consent_source  TEXT NOT NULL,
    added_by        TEXT,
    created_at      BIGINT NOT NULL,
    removed_at      BIGINT,
    removed_reason  TEXT
);
CREATE INDEX contacts_owner ON contacts(owner_kind, owner_id);
CREATE UNIQUE INDEX contacts_active ON contacts(owner_kind, owner_id, channel, address)
    WHERE removed_at IS NULL;

-- The durable scheduler: one row per message to send (notice, cancellation or reminder) to
-- one contact, for one revision (`seq`) of the inspection's schedule. The unique key makes
-- planning idempotent across nodes; `state` moves pending → sending → sent | failed, or
-- pending → dropped; a row left in `sending` past its lease is `unknown`, never resent.
CREATE TABLE deliveries (
    id             TEXT PRIMARY KEY,
    inspection_id  TEXT NOT NULL REFERENCES inspections(id),
    purpose        TEXT NOT NULL CHECK (purpose IN ('notice', 'cancel', 'reminder')),
    offset_secs    BIGINT NOT NULL,
    contact_id     TEXT NOT NULL REFERENCES contacts(id),
    seq            BIGINT NOT NULL,
    due_at         BIGINT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'unknown', 'dropped')),
    attempts       INTEGER NOT NULL DEFAULT 0,
    last_error     TEXT,
    claimed_by     TEXT,
    claimed_until  BIGINT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    sent_at        BIGINT,
    UNIQUE (inspection_id, purpose, offset_secs, contact_id, seq)
);
CREATE INDEX deliveries_due ON deliveries(state, due_at);
CREATE INDEX deliveries_inspection ON deliveries(inspection_id);

-- Message texts an administrator changed (the built-in ones are in the code): every change
-- is a new version, the highest one is used, none is deleted (the audit trail).
CREATE TABLE message_templates (
    purpose     TEXT NOT NULL CHECK (purpose IN ('notice', 'cancel', 'reminder')),
    language    TEXT NOT NULL CHECK (language IN ('ru', 'en')),
    version     INTEGER NOT NULL,
    subject     TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_by  TEXT NOT NULL REFERENCES users(id),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (purpose, language, version)
);
