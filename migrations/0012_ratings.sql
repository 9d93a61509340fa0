-- Mutual ratings after the event (issue 16).
--
-- A rating is an event of the inspection's hash chain (`rating`); the tables below are its
-- read model for the statistics, written by the sync writer in the transaction that appends
-- the event (like inspections.status), so they never say what the log does not.

-- The criteria and follow-up questions of each side, versioned like checklist templates: a
-- new version is a new row, a rating names the version it answers.
CREATE TABLE rating_criteria (
    side        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    body        TEXT NOT NULL,
    created_by  TEXT REFERENCES users(id),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (side, version)
);

-- The current rating of each side of an inspection, with what the statistics group by: the
-- control body and inspector of the inspection, the business's INN, the month it was first
-- given (UTC, `YYYY-MM`).
CREATE TABLE ratings (
    inspection_id     TEXT NOT NULL REFERENCES inspections(id),
    side              TEXT NOT NULL,
    control_body_id   TEXT REFERENCES control_bodies(id),
    inspector_id      TEXT NOT NULL REFERENCES users(id),
    business_inn      TEXT NOT NULL,
    criteria_version  INTEGER NOT NULL,
    month             TEXT NOT NULL,
    first_seq         BIGINT NOT NULL,
    first_at          BIGINT NOT NULL,
    seq               BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    PRIMARY KEY (inspection_id, side)
);
CREATE INDEX ratings_control_body ON ratings(side, control_body_id, month);

-- One row per criterion of a current rating.
CREATE TABLE rating_scores (
    inspection_id  TEXT NOT NULL,
    side           TEXT NOT NULL,
    criterion      TEXT NOT NULL,
    score          SMALLINT NOT NULL,
    reasons        TEXT NOT NULL,
    note           TEXT,
    PRIMARY KEY (inspection_id, side, criterion),
    FOREIGN KEY (inspection_id, side) REFERENCES ratings(inspection_id, side)
);

-- The head of a control body sees its inspectors' names in the statistics (everyone else
-- sees them anonymised); admins see every name.
ALTER TABLE users ADD COLUMN heads_control_body SMALLINT NOT NULL DEFAULT 0;
