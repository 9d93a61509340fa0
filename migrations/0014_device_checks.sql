-- The device check before an inspection (issue 15, item 4): the latest result of each
-- participant of the business (one row per invitation or representative link), so the
-- inspector sees it before the start. A newer check replaces the row: only the latest counts.
CREATE TABLE device_checks (
    inspection_id  TEXT NOT NULL REFERENCES inspections(id),
    subject        TEXT NOT NULL,
    label          TEXT NOT NULL,
    result         TEXT NOT NULL,
    checked_at     BIGINT NOT NULL,
    PRIMARY KEY (inspection_id, subject)
);
