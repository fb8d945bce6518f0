-- A timeline entry no longer checks its timeline through a foreign key.
-- Postgres checks one per inserted row, each taking FOR KEY SHARE on the
-- same timelines row: a fill writes up to 800 entries, and their checks
-- were 17 of its 37 ms (EXPLAIN ANALYZE). The writers of entries now lock
-- the timelines rows they write to once per statement instead, and the
-- deleters of a timeline delete its entries themselves (store/timelines.go,
-- "Entries and their timeline").
ALTER TABLE timeline_entries DROP CONSTRAINT timeline_entries_user_id_fkey;
