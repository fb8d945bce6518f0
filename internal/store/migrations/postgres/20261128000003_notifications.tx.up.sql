-- Notifications: what others did that concerns a user. Rows are the source
-- of truth; live streams read them after a wake-up from the broker.
CREATE TABLE notifications (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type       TEXT NOT NULL,
    actor_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    post_id    TEXT REFERENCES posts (id) ON DELETE CASCADE,
    comment_id TEXT REFERENCES comments (id) ON DELETE CASCADE,
    group_id   TEXT,
    -- One notification per (recipient, key): liking a post again, or
    -- following again after an unfollow, does not notify twice. NULL for
    -- events that are always new (comments).
    dedupe_key TEXT,
    read_at    TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX notifications_user_id_idx ON notifications (user_id, id DESC);
CREATE UNIQUE INDEX notifications_dedupe_key ON notifications (user_id, dedupe_key);
CREATE INDEX notifications_unread_idx ON notifications (user_id) WHERE read_at IS NULL;
CREATE INDEX notifications_actor_id_idx ON notifications (actor_id);

-- The activity log: every action a user takes. Objects are referenced by
-- id without foreign keys, so "post deleted" keeps the id of the post.
CREATE TABLE activities (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type           TEXT NOT NULL,
    target_user_id TEXT,
    post_id        TEXT,
    comment_id     TEXT,
    group_id       TEXT,
    created_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX activities_user_id_idx ON activities (user_id, id DESC);
