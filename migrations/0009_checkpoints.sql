-- Signed checkpoints of an inspection's event-log head (signaling/src/anchor.rs). The same
-- signed record is also a line of <data>/anchor/<inspection>.jsonl: a copy on each side, so
-- that deleting one is detected against the other (docs/security.md).
CREATE TABLE checkpoints (
    inspection_id TEXT NOT NULL,
    seq           BIGINT NOT NULL,
    head_hash     TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    record        TEXT NOT NULL,
    signature     TEXT NOT NULL,
    PRIMARY KEY (inspection_id, seq)
);
