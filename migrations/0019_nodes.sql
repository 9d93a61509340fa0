-- Several nodes on one PostgreSQL database (issue 20). Same SQL subset as the other
-- migrations.

-- Signals between the nodes (signaling/src/signals.rs): an outbox row in
-- the transaction of the change it reports (access that ended), whose id rides PostgreSQL's
-- NOTIFY. A hint for the other nodes' re-checks, never the truth itself; kept an hour. SQLite
-- (one node) never writes it.
CREATE TABLE node_signals (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    subject     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX node_signals_created ON node_signals(created_at);

-- Which node runs a live inspection (signaling/src/nodes.rs): the owner, its URL for the
-- other nodes, the expiry on the database's clock (µs; 0 = released) and a fencing token
-- that grows with every claim and is checked by every commit of the inspection's events.
-- A release keeps the row, so the token never goes back. SQLite (one node) never writes it.
CREATE TABLE inspection_leases (
    inspection_id   TEXT PRIMARY KEY,
    node_id         TEXT NOT NULL,
    node_url        TEXT NOT NULL,
    token           BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL
);
CREATE INDEX inspection_leases_node ON inspection_leases(node_id);

-- A recording finished by one node of several (signaling/src/nodes/recordings.rs): written
-- after its file, chapters and manifest are in the object store, so this row, not a local
-- file, says it is finished; another node fetches the bytes from the store on first read.
-- `manifest` is the manifest's JSON as published. SQLite (one node) never writes it.
CREATE TABLE finished_recordings (
    inspection_id   TEXT PRIMARY KEY,
    manifest        TEXT NOT NULL,
    node_origin     TEXT NOT NULL,
    finished_at     BIGINT NOT NULL
);
