-- SearchGroups without a query: every group largest first. A name search
-- reads every group's name (the Postgres migration of the same name adds
-- the indexes a larger deployment's searches use).
CREATE INDEX groups_members_count_idx ON groups (members_count DESC, id DESC);
