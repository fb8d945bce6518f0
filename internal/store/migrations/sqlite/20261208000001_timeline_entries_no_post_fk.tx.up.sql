-- A timeline entry no longer checks its post through a foreign key, and
-- the index that found a deleted post's entries for the cascade goes (the
-- Postgres migration of the same name says why). SQLite cannot drop a
-- constraint, so the table is made again with its rows.
CREATE TABLE timeline_entries_new (
    user_id TEXT NOT NULL,
    post_id TEXT NOT NULL,
    PRIMARY KEY (user_id, post_id)
) WITHOUT ROWID;
INSERT INTO timeline_entries_new (user_id, post_id) SELECT e.user_id, e.post_id FROM timeline_entries AS e;
DROP TABLE timeline_entries;
ALTER TABLE timeline_entries_new RENAME TO timeline_entries;
