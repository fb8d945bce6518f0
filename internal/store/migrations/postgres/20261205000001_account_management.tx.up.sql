-- Managing an account (issue 14): where sessions come from and when they
-- were last used, password resets, email changes, and the cool-off of a
-- deleted account's username.

-- user_agent and ip are those of the Login that started the session;
-- last_used_at is advanced at most every few minutes (see
-- account.Service.Authenticate), never once per request.
ALTER TABLE sessions ADD COLUMN user_agent TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN ip TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN last_used_at TIMESTAMPTZ;

-- An email-change token: the verification of a new address. NULL for the
-- verification of the address an account registered with.
ALTER TABLE email_verifications ADD COLUMN new_email TEXT;

-- Password-reset tokens, stored as hashes; single use, expiring, and voided
-- (used_at set) by a newer request.
CREATE TABLE password_resets (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ
);
CREATE INDEX password_resets_user_id_idx ON password_resets (user_id);

-- The usernames of deleted accounts, held back until available_at so that
-- nobody can take over a deleted account's name at once.
CREATE TABLE held_usernames (
    username_lower  TEXT PRIMARY KEY,
    available_at    TIMESTAMPTZ NOT NULL
);
