-- SearchGroups: names by prefix (a range of the pattern index, as for
-- usernames), names containing the query (trigram), and every group
-- largest first.
CREATE INDEX groups_name_pattern_idx ON groups (lower(name) text_pattern_ops);
CREATE INDEX groups_name_trgm_idx ON groups USING gin (lower(name) public.gin_trgm_ops);
CREATE INDEX groups_members_count_idx ON groups (members_count DESC, id DESC);
