-- Counted statistics of ratings (issue 16): the numbers `GET /api/ratings/stats` folds, kept
-- by the projection of each `rating` event in the transaction that appends it (with
-- `ratings` and `rating_scores`), so that the statistics read a row per subject, month and
-- criterion instead of every score. They are a projection like the others: what
-- `ratings::rebuild_cells` derives from `rating_scores` (a test compares the two), and
-- rebuilt from them at start when empty while ratings exist (a database rated before 0013).
--
-- The subject is who is rated: the inspector's id (side `business`), the business's INN
-- (side `inspector`); `control_body_id` is '' for an inspector of no control body. `month`
-- is the month of the first rating, as in `ratings`.

-- Counts of the scores 1..=10 of one criterion.
CREATE TABLE rating_cells (
    side             TEXT NOT NULL,
    control_body_id  TEXT NOT NULL,
    subject          TEXT NOT NULL,
    month            TEXT NOT NULL,
    criterion        TEXT NOT NULL,
    n1  BIGINT NOT NULL DEFAULT 0,
    n2  BIGINT NOT NULL DEFAULT 0,
    n3  BIGINT NOT NULL DEFAULT 0,
    n4  BIGINT NOT NULL DEFAULT 0,
    n5  BIGINT NOT NULL DEFAULT 0,
    n6  BIGINT NOT NULL DEFAULT 0,
    n7  BIGINT NOT NULL DEFAULT 0,
    n8  BIGINT NOT NULL DEFAULT 0,
    n9  BIGINT NOT NULL DEFAULT 0,
    n10 BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (side, control_body_id, subject, month, criterion)
);

-- How often each follow-up reason was given with the scores below 5 of one criterion.
CREATE TABLE rating_cell_reasons (
    side             TEXT NOT NULL,
    control_body_id  TEXT NOT NULL,
    subject          TEXT NOT NULL,
    month            TEXT NOT NULL,
    criterion        TEXT NOT NULL,
    reason           TEXT NOT NULL,
    n                BIGINT NOT NULL,
    PRIMARY KEY (side, control_body_id, subject, month, criterion, reason)
);

-- How many ratings (inspections) a subject has in a month.
CREATE TABLE rating_subject_months (
    side             TEXT NOT NULL,
    control_body_id  TEXT NOT NULL,
    subject          TEXT NOT NULL,
    month            TEXT NOT NULL,
    ratings          BIGINT NOT NULL,
    PRIMARY KEY (side, control_body_id, subject, month)
);
