CREATE TABLE groups (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    privacy       TEXT NOT NULL,
    owner_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    members_count INTEGER NOT NULL DEFAULT 0,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

-- A user's standing with a group: an active member (with a role), an
-- invitation, or a request to join.
CREATE TABLE group_members (
    group_id   TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT NOT NULL,
    state      TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
-- A group's members newest first (ListGroupMembers), a user's groups (ListGroups, feeds, visibility).
CREATE INDEX group_members_group_idx ON group_members (group_id, state, created_at DESC, user_id DESC);
CREATE INDEX group_members_user_idx ON group_members (user_id, state, created_at DESC, group_id DESC);

-- Posts shared with a group: ListGroupPosts, and group posts in members' feeds.
CREATE INDEX posts_group_id_idx ON posts (group_id, id DESC) WHERE group_id IS NOT NULL;
