-- Hardening (issue 10): guest sessions, atomic login throttle counters, known login devices.

-- A business's browser session, opened by accepting an invitation. The cookie holds a fresh
-- random token (stored here only as its SHA-256), never the invitation token; the session
-- ends when its invitation does (expires_at = the invitation's expires_at).
CREATE TABLE guest_sessions (
    token_hash     TEXT PRIMARY KEY,
    invitation_id  TEXT NOT NULL REFERENCES invitations(id),
    csrf_token     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL
);
CREATE INDEX guest_sessions_invitation ON guest_sessions(invitation_id);

-- Failed-login counters, one row per throttle key (user and address, address, user from new
-- devices), in fixed windows. An attempt is reserved by one atomic upsert before the
-- password is hashed, so concurrent attempts cannot all pass the check.
CREATE TABLE login_throttle (
    key           TEXT PRIMARY KEY,
    window_start  BIGINT NOT NULL,
    failures      BIGINT NOT NULL
);
CREATE INDEX login_throttle_window ON login_throttle(window_start);

-- Browsers that logged in successfully as a user (the device cookie's token, hashed). Their
-- attempts are not counted against the user's limit for new devices.
CREATE TABLE login_devices (
    token_hash    TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id),
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT NOT NULL
);
CREATE INDEX login_devices_user ON login_devices(user_id);

-- Replaced by login_throttle (its rows were read before and written after the hash: racy).
DROP TABLE login_attempts;
