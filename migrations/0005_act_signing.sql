-- The act and its signatures (issue 12). The act's PDF and CMS signatures are files in the
-- data directory, named by their SHA-256; their hashes, the signers and refusals are events
-- of the inspection's hash chain. Here only what is not evidence: the language an act is
-- written in, certificates the server's CA issued, registration challenges, and the
-- business's durable access to its results.

ALTER TABLE inspections ADD COLUMN language TEXT NOT NULL DEFAULT 'ru';

-- One-time challenges for proof of possession of a browser key (signed by that key).
CREATE TABLE signing_challenges (
    challenge    TEXT PRIMARY KEY,
    subject      TEXT NOT NULL,          -- 'user:<id>' or 'invitation:<id>'
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX signing_challenges_subject ON signing_challenges(subject);

-- Certificates the CA issued for browser keys (public data: no secrets here).
CREATE TABLE signing_certificates (
    id             TEXT PRIMARY KEY,
    subject        TEXT NOT NULL,        -- 'user:<id>' or 'invitation:<id>'
    user_id        TEXT REFERENCES users(id),
    invitation_id  TEXT REFERENCES invitations(id),
    inspection_id  TEXT REFERENCES inspections(id),
    common_name    TEXT NOT NULL,
    public_key     TEXT NOT NULL,        -- SubjectPublicKeyInfo DER, base64
    fingerprint    TEXT NOT NULL UNIQUE, -- SHA-256 of the certificate DER, hex
    cert_pem       TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    not_after      BIGINT NOT NULL
);
CREATE INDEX signing_certificates_subject ON signing_certificates(subject);

-- The business's long-lived, revocable access to its results (act, recording, signing),
-- given when it signs in by its invitation. Tokens are stored as SHA-256 only.
CREATE TABLE results_access (
    id             TEXT PRIMARY KEY,
    inspection_id  TEXT NOT NULL REFERENCES inspections(id),
    invitation_id  TEXT NOT NULL REFERENCES invitations(id),
    token_hash     TEXT NOT NULL UNIQUE,
    created_at     BIGINT NOT NULL,
    revoked_at     BIGINT
);
CREATE INDEX results_access_inspection ON results_access(inspection_id);
CREATE INDEX results_access_invitation ON results_access(invitation_id);
