-- Trigram matching for fuzzy user search. Installed in public so that it is
-- one per database, whichever schema Flock's tables live in.
CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public;

CREATE TABLE follows (
    follower_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    followee_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (follower_id, followee_id),
    CHECK (follower_id <> followee_id)
);
-- followers of a user, newest first (ListFollowers), and following (ListFollowing).
CREATE INDEX follows_followee_created_idx ON follows (followee_id, created_at DESC, follower_id DESC);
CREATE INDEX follows_follower_created_idx ON follows (follower_id, created_at DESC, followee_id DESC);

CREATE TABLE blocks (
    blocker_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id),
    CHECK (blocker_id <> blocked_id)
);
CREATE INDEX blocks_blocked_idx ON blocks (blocked_id, blocker_id);
CREATE INDEX blocks_blocker_created_idx ON blocks (blocker_id, created_at DESC, blocked_id DESC);

CREATE TABLE posts (
    id             TEXT PRIMARY KEY,
    author_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    content        TEXT NOT NULL,
    visibility     TEXT NOT NULL,
    group_id       TEXT,
    video_id       TEXT,
    likes_count    INTEGER NOT NULL DEFAULT 0,
    comments_count INTEGER NOT NULL DEFAULT 0,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);
-- A user's posts newest first (ListUserPosts, and each followee's slice of the feed).
CREATE INDEX posts_author_id_idx ON posts (author_id, id DESC);

CREATE TABLE post_hashtags (
    tag      TEXT NOT NULL,
    post_id  TEXT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    position INTEGER NOT NULL, -- order of first appearance in the post
    PRIMARY KEY (tag, post_id)
);
CREATE INDEX post_hashtags_post_id_idx ON post_hashtags (post_id);

CREATE TABLE likes (
    post_id    TEXT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (post_id, user_id)
);
CREATE INDEX likes_user_id_idx ON likes (user_id, post_id);

CREATE TABLE comments (
    id         TEXT PRIMARY KEY,
    post_id    TEXT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    author_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    content    TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX comments_post_id_idx ON comments (post_id, id);
CREATE INDEX comments_author_id_idx ON comments (author_id);

-- Idempotency-Key: the first result of a create, returned again on a retry.
CREATE TABLE idempotency_keys (
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    scope        TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    resource_id  TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, scope, key)
);
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);

-- User search: prefix on the username, trigram similarity on username and full name.
CREATE INDEX users_username_pattern_idx ON users (lower(username) text_pattern_ops);
CREATE INDEX users_username_trgm_idx ON users USING gin (lower(username) public.gin_trgm_ops);
CREATE INDEX users_full_name_trgm_idx ON users USING gin (lower(full_name) public.gin_trgm_ops);
