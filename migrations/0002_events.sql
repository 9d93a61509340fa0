-- Checklist sync: the append-only, hash-chained event log of every inspection.
-- One row per sequenced event; hash = SHA-256 over the canonical serialization documented in
-- docs/protocol.md, prev_hash links each event to the one before (64 zeros for seq 1).
-- No foreign key to inspections: the log is evidence and must outlive edits elsewhere.

CREATE TABLE events (
    inspection_id  TEXT NOT NULL,
    seq            BIGINT NOT NULL,
    server_ts      BIGINT NOT NULL,
    participant_id TEXT NOT NULL,
    client_op_id   TEXT,
    kind           TEXT NOT NULL,
    payload        TEXT NOT NULL,
    prev_hash      TEXT NOT NULL,
    hash           TEXT NOT NULL,
    PRIMARY KEY (inspection_id, seq),
    UNIQUE (inspection_id, participant_id, client_op_id)
);
