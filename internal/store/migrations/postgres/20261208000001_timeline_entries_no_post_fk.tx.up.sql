-- A timeline entry no longer checks its post through a foreign key, and
-- the index that found a deleted post's entries for the cascade goes:
-- every entry landed at a random place of timeline_entries_post_idx and
-- paid a check per row, which made a fill of 200 entries most of a first
-- feed page's cost and the fan-out half of a post's. A deleted post's
-- entries are now removed from its readers' timelines by primary key
-- (store.DeletePost, DeleteGroup, DeleteAccount); one left behind by a
-- race is only an id: reads take posts from the posts table and skip it,
-- and the timeline's trim drops it (store/timelines.go).
ALTER TABLE timeline_entries DROP CONSTRAINT timeline_entries_post_id_fkey;
DROP INDEX timeline_entries_post_idx;
