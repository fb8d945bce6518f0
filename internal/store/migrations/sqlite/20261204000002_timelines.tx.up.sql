-- Materialized home timelines (internal/timeline, store/timelines.go).
-- A user's timeline holds the ids of the newest posts of their home feed,
-- written by the fan-out job after a post commits. SQL stays the truth: a
-- page is read from these ids and then filtered by the feed's visibility
-- rule, so an entry that has become invisible is skipped, never shown.

-- timelines: users who have a timeline. It is complete for every post id
-- >= floor_id (all of history when floor_id is ''); older pages come from
-- the posts themselves. state is 'building' while the first fill runs
-- (fan-out already writes to it) and 'ready' after; only a ready timeline
-- is read.
CREATE TABLE timelines (
    user_id  TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    state    TEXT NOT NULL,
    floor_id TEXT NOT NULL DEFAULT '',
    read_at  TIMESTAMP NOT NULL
);
CREATE INDEX timelines_read_at_idx ON timelines (read_at);

CREATE TABLE timeline_entries (
    user_id TEXT NOT NULL REFERENCES timelines (user_id) ON DELETE CASCADE,
    post_id TEXT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, post_id)
) WITHOUT ROWID;
CREATE INDEX timeline_entries_post_idx ON timeline_entries (post_id);

-- timeline_pending: posts whose fan-out has not run yet. A feed read takes
-- them in the same statement as its timeline's entries, and a fan-out
-- writes the entries and deletes the row in one transaction, so a post is
-- in its readers' feeds from its commit on, whatever the job's delay.
CREATE TABLE timeline_pending (
    post_id    TEXT PRIMARY KEY REFERENCES posts (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL
);

-- timeline_big_authors: authors with so many followers that their posts
-- are not written to every follower's timeline but merged when a follower
-- reads (sticky once set, so no post of theirs falls between the two ways).
CREATE TABLE timeline_big_authors (
    user_id TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    since   TIMESTAMP NOT NULL
);
