-- Post analytics (docs/analytics.md). Views are counted in memory by each
-- instance and added here in batches (internal/analytics): one row per post
-- and UTC day, incremented by upserts, so any number of instances can add
-- their counts without coordination.
CREATE TABLE post_views_daily (
    post_id TEXT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    day     TEXT NOT NULL, -- UTC day, 'YYYY-MM-DD'
    views   INTEGER NOT NULL,
    PRIMARY KEY (post_id, day)
);

-- Who read a post on which UTC day, once per (post, viewer, day): unique
-- viewers of a day are its rows, unique viewers overall the distinct viewer_id.
CREATE TABLE post_viewers (
    post_id   TEXT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    viewer_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    day       TEXT NOT NULL, -- UTC day, 'YYYY-MM-DD'
    PRIMARY KEY (post_id, viewer_id, day)
);
-- The foreign key's cascade when a user goes.
CREATE INDEX post_viewers_viewer_id_idx ON post_viewers (viewer_id);
