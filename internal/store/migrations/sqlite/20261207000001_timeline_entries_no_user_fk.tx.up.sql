-- A timeline entry no longer checks its timeline through a foreign key
-- (the Postgres migration of the same name says why: a check per row).
-- SQLite cannot drop a constraint, so the table is made again with its
-- rows; its writers and the deleters of a timeline keep entries and
-- timelines together themselves (store/timelines.go).
CREATE TABLE timeline_entries_new (
    user_id TEXT NOT NULL,
    post_id TEXT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, post_id)
) WITHOUT ROWID;
INSERT INTO timeline_entries_new (user_id, post_id)
SELECT e.user_id, e.post_id FROM timeline_entries AS e WHERE e.user_id IN (SELECT t.user_id FROM timelines AS t);
DROP TABLE timeline_entries;
ALTER TABLE timeline_entries_new RENAME TO timeline_entries;
CREATE INDEX timeline_entries_post_idx ON timeline_entries (post_id);
